-- config: keyring {
-- config:   path = "@TMP@/disc-wkd.db"
-- config: }
-- config: encrypt {
-- config:   policy ".smp.example" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- config: discovery {
-- config:   methods = {wkd, dane}
-- config:   ca_file = "@DISC_CA@"
-- config:   https_port = @DISC_PORT@
-- config:   dns_forwarders = {"@DISC_DNS@"}
-- config:   dns_trust_anchor_file = "@DISC_TA@"
-- config: }
-- log: DW1: discovery rcpt=<alice@wkd-adv.smp.example>: key [0-9A-F]\{40,64\} from wkd (https://openpgpkey.wkd-adv.smp.example
-- log: DW1: direction=outbound smp=no .*encrypt=pgp-mime.* action=pass
-- check: $SMPCTL keys show alice@wkd-adv.smp.example | grep -q 'wkd'
-- Key discovery (SPEC 5, doc/discovery.md): alice has never written to us
-- and nothing was imported; her domain publishes her key by WKD. At RCPT
-- the milter finds it, the rules take it (source wkd), and the required
-- policy then encrypts to it at end of message.
dofile(os.getenv("MT_COMMON"))
smp.rcpt = "<alice@wkd-adv.smp.example>"
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "DW1") == SMFIR_CONTINUE, "continue")
smp.expect(smp.rcpt_replies[1] == SMFIR_CONTINUE, "RCPT accepted")
smp.expect_encrypted(conn)
mt.disconnect(conn)
