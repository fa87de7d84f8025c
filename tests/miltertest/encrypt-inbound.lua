-- config: keyring {
-- config:   path = "@TMP@/enc-inb.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-inb"
-- config: encrypt {
-- config:   default = required
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: ENC2: direction=inbound smp=no forged=0 action=pass
-- Inbound mail is never encrypted (SPEC 5), not even under
-- default = required and to a recipient with a key; its body is skipped.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC2") == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
smp.expect(not mt.eom_check(conn, MT_HDRADD, "X-SMP-Encrypted"), "no X-SMP-Encrypted")
mt.disconnect(conn)
