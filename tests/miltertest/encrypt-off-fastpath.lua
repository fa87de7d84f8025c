-- config: keyring {
-- config:   path = "/nonexistent-smp-test-dir/keyring.db"
-- config: }
-- config: encrypt {
-- config:   default = off
-- config:   policy "example.com" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- log: ENC11: direction=outbound smp=no forged=0 action=pass
-- Encryption off for every recipient of a message (SPEC 5): nothing
-- changes, the body is skipped (not buffered) and the keyring is not
-- touched (it cannot even be opened here), also when other domains have
-- rules.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC11") == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
mt.macro(conn, SMFIC_MAIL, "i", "ENC11B")
smp.expect(mt.mailfrom(conn, "<a@example.org>") == nil, "MAIL")
smp.expect(mt.rcptto(conn, "<bob@example.net>") == nil, "RCPT")
smp.expect(mt.header(conn, "Subject", "Quarterly report") == nil, "header")
smp.expect(mt.eoh(conn) == nil, "eoh")
smp.expect(mt.bodystring(conn, string.rep("x", 1000) .. "\r\n") == nil, "body")
smp.expect(mt.getreply(conn) == SMFIR_SKIP, "body skipped: no encryption applies")
smp.expect(mt.eom(conn) == nil, "eom")
smp.expect_untouched(conn)
mt.disconnect(conn)
