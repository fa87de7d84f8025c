-- config: keyring {
-- config:   path = "@TMP@/enc-subj.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-subj"
-- config: encrypt {
-- config:   default = opportunistic
-- config:   protect_subject = yes
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: ENC10: direction=outbound smp=no .*encrypt=pgp-mime
-- protect_subject = yes (SPEC 5): the real Subject moves inside the
-- encrypted part; outside it reads "...".
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC10") == SMFIR_CONTINUE, "continue")
smp.expect_encrypted(conn)
smp.expect(mt.eom_check(conn, MT_HDRCHANGE, "Subject", " ..."), "Subject changed to ...")
mt.disconnect(conn)
