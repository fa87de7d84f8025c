-- config: keyring {
-- config:   path = "/nonexistent-smp-test-dir/keyring.db"
-- config: }
-- config: limits {
-- config:   max_message_bytes = 2000
-- config: }
-- config: encrypt {
-- config:   default = opportunistic
-- config:   policy "example.com" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- log: ENC12: over limits.max_message_bytes: not encrypted
-- log: ENC12: direction=outbound smp=no .*encrypt=plain(too-large) action=pass
-- log: ENC13: direction=outbound smp=no .*encrypt=refused(too-large) action=reject
-- A message over limits.max_message_bytes is not buffered, so it cannot be
-- encrypted: under opportunistic it passes plain (with a log line); for a
-- required recipient it is refused (required_action), never sent plain.
dofile(os.getenv("MT_COMMON"))
local text = smp.read(smp.fixtures .. "/messages/not-smp-plain.eml") .. string.rep("padding line\n", 300)
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_message(conn, text, "ENC12") == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
smp.rcpt = "<carol@example.com>"
smp.expect(smp.send_message(conn, text, "ENC13") == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"smp-milter: encryption required, but the message is too large to encrypt"),
	"550 5.7.1 too large to encrypt")
mt.disconnect(conn)
