-- config: keyring {
-- config:   path = "@TMP@/enc-mixed.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-mixed"
-- config: encrypt {
-- config:   default = opportunistic
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: ENC6: direction=outbound smp=no .*encrypt=plain action=pass
-- Mixed recipients under opportunistic (SPEC 5): bob has a key, carol has
-- none, no split_recipients: the message goes plain, untouched.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.rcpts = {"<bob@example.net>", "<carol@example.com>"}
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC6") == SMFIR_CONTINUE, "continue")
smp.expect(smp.rcpt_replies[2] == SMFIR_CONTINUE, "both recipients accepted")
smp.expect_untouched(conn)
smp.expect(not mt.eom_check(conn, MT_HDRADD, "X-SMP-Encrypted"), "no X-SMP-Encrypted")
mt.disconnect(conn)
