-- config: keyring {
-- config:   path = "@TMP@/disc-onerr.db"
-- config: }
-- config: encrypt {
-- config:   default = opportunistic
-- config: }
-- config: discovery {
-- config:   methods = {wkd, dane}
-- config:   on_error = tempfail
-- config:   timeout = 1
-- config:   ca_file = "@DISC_CA@"
-- config:   https_port = @DISC_PORT@
-- config:   dns_forwarders = {"@DISC_BLACKHOLE@"}
-- config:   dns_trust_anchor_file = "@DISC_TA@"
-- config: }
-- log: DT1: discovery rcpt=<carol@dane.smp.example>: lookup failed (wkd, dane): .*; 451 4.4.3
-- discovery.on_error = tempfail (doc/discovery.md): an opportunistic
-- recipient whose lookup times out (the DNS server never answers) is
-- deferred too, so that an attacker who can break DNS cannot force
-- plaintext; the time budget (discovery.timeout) bounds the wait.
dofile(os.getenv("MT_COMMON"))
smp.rcpt = "<carol@dane.smp.example>"
local conn = smp.connect(smp.outbound_ip)
smp.send_fixture(conn, "not-smp-plain.eml", "DT1")
smp.expect(smp.rcpt_replies[1] == SMFIR_REPLYCODE, "RCPT tempfailed with a reply")
mt.disconnect(conn)
