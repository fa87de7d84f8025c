-- config: keyring {
-- config:   path = "@TMP@/enc-reqtf.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-reqtf"
-- config: encrypt {
-- config:   required_action = tempfail
-- config:   policy "bob@example.net" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- log: ENC5: direction=outbound smp=no .*encrypt=refused(bob@example.net (no-key)) action=tempfail
-- required_action = tempfail: a required recipient without a key gets
-- 450 4.7.1 instead of 550 (SPEC 5).
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC5") == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "450", "4.7.1",
	"smp-milter: encryption required, no usable key for: bob@example.net"),
	"450 4.7.1 naming bob@example.net")
mt.disconnect(conn)
