-- config: keyring {
-- config:   path = "@TMP@/enc-reqnokey.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-reqnokey"
-- config: encrypt {
-- config:   default = off
-- config:   policy "example.net" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- log: ENC4: direction=outbound smp=no .*encrypt=refused(bob@example.net (no-key)) action=reject
-- encrypt = required (SPEC 5), a recipient without a key: the message is
-- refused with 550 5.7.1 naming that recipient; nothing is delivered plain.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC4") == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"smp-milter: encryption required, no usable key for: bob@example.net"),
	"550 5.7.1 naming bob@example.net")
mt.disconnect(conn)
