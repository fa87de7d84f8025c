-- config: keyring {
-- config:   path = "@TMP@/enc-already.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-already"
-- config: encrypt {
-- config:   default = required
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: ENC3: direction=outbound smp=no .*encrypt=skipped(already-pgp) action=pass
-- Never re-encrypt (SPEC 5): an outbound PGP/MIME message passes untouched.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-pgp-mime.eml", "ENC3") == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
smp.expect(not mt.eom_check(conn, MT_HDRADD, "X-SMP-Encrypted"), "no X-SMP-Encrypted")
mt.disconnect(conn)
