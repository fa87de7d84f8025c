-- config: keyring {
-- config:   path = "@TMP@/enc-split.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-split"
-- config: encrypt {
-- config:   default = opportunistic
-- config:   split_recipients = yes
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: ENC7: split_recipients: recipient class plain differs from the first recipient's (encrypt): 452 4.5.3
-- log: ENC7: direction=outbound smp=no .*encrypt=pgp-mime
-- log: ENC8: direction=outbound smp=no .*encrypt=plain action=pass
-- split_recipients = yes (SPEC 5): a recipient whose class differs from the
-- first recipient's gets 452 4.5.3 at RCPT; the rest of the transaction
-- (bob, who has a key) is encrypted. The refused recipient, sent on its own,
-- goes plain.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.rcpts = {"<bob@example.net>", "<carol@example.com>"}
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC7") == SMFIR_CONTINUE, "continue")
smp.expect(smp.rcpt_replies[1] == SMFIR_CONTINUE, "first recipient accepted")
smp.expect(smp.rcpt_replies[2] == SMFIR_REPLYCODE, "second recipient: a reply code (452)")
smp.expect_encrypted(conn)
smp.rcpts = {"<carol@example.com>"}
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC8") == SMFIR_CONTINUE, "continue")
smp.expect(smp.rcpt_replies[1] == SMFIR_CONTINUE, "carol alone accepted")
smp.expect_untouched(conn)
mt.disconnect(conn)
