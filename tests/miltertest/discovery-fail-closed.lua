-- config: keyring {
-- config:   path = "@TMP@/disc-fail.db"
-- config: }
-- config: encrypt {
-- config:   policy ".smp.example" {
-- config:     encrypt = required
-- config:   }
-- config:   policy "servfail.smp.example" {
-- config:     encrypt = opportunistic
-- config:   }
-- config: }
-- config: discovery {
-- config:   methods = {wkd, dane}
-- config:   timeout = 30s
-- config:   ca_file = "@DISC_CA@"
-- config:   https_port = @DISC_PORT@
-- config:   dns_forwarders = {"@DISC_DNS@"}
-- config:   dns_trust_anchor_file = "@DISC_TA@"
-- config: }
-- log: DF1: discovery rcpt=<user@http500.smp.example>: lookup failed (wkd, dane): wkd: .*500.*; 451 4.4.3
-- log: DF1: discovery rcpt=<mallet@bogus.smp.example>: lookup failed .*; 451 4.4.3
-- log: DF1: discovery rcpt=<user@servfail.smp.example>: lookup failed .*discovery.on_error = plain: may go in plain
-- log: DF1: discovery rcpt=<alice@wkd-adv.smp.example>: key
-- Fail closed (SPEC 5): a lookup error for a required recipient (HTTP 500,
-- DNSSEC bogus) is never read as "no key": the RCPT gets 451 4.4.3 and the
-- client retries it later; alice, whose key is found, is accepted. An
-- opportunistic recipient whose lookup fails (SERVFAIL) goes on with
-- discovery.on_error = plain (the default). The four lookups share one
-- budget per message: a generous one, so that under valgrind alice's
-- lookup is not the one that runs out of it.
dofile(os.getenv("MT_COMMON"))
smp.rcpts = {"<user@http500.smp.example>", "<mallet@bogus.smp.example>",
	"<user@servfail.smp.example>", "<alice@wkd-adv.smp.example>"}
local conn = smp.connect(smp.outbound_ip)
smp.send_fixture(conn, "not-smp-plain.eml", "DF1")
smp.expect(smp.rcpt_replies[1] == SMFIR_REPLYCODE, "http500: RCPT tempfailed with a reply, got " .. tostring(smp.rcpt_replies[1]))
smp.expect(smp.rcpt_replies[2] == SMFIR_REPLYCODE, "bogus: RCPT tempfailed with a reply")
smp.expect(smp.rcpt_replies[3] == SMFIR_CONTINUE, "servfail, opportunistic: RCPT accepted")
smp.expect(smp.rcpt_replies[4] == SMFIR_CONTINUE, "alice: RCPT accepted")
mt.disconnect(conn)
smp.rcpts = nil
