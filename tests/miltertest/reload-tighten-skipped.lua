-- config: keyring {
-- config:   path = "@TMP@/reload-skip.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-reload-skip"
-- config: encrypt {
-- config:   default = off
-- config: }
-- reload-config: keyring {
-- reload-config:   path = "@TMP@/reload-skip.db"
-- reload-config: }
-- reload-config: gnupg_home = "@TMP@/gnupg-reload-skip"
-- reload-config: encrypt {
-- reload-config:   default = off
-- reload-config:   policy "example.net" {
-- reload-config:     encrypt = required
-- reload-config:   }
-- reload-config: }
-- log: RLD1: configuration reloaded during the transaction; the new one needs the body, which was not kept; action=tempfail
-- Reload (SPEC 3): bob@example.net becomes required while a message to him
-- is in its transaction. Under the old config (encrypt off) its body was
-- skipped, so the new config cannot encrypt it: 451 4.3.0, never plain.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.before_eom = smp.reload
local reply = smp.send_fixture(conn, "not-smp-plain.eml", "RLD1")
smp.before_eom = nil
smp.expect(reply == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.3.0",
	"smp-milter: policy changed during the transaction, try again"),
	"451 4.3.0 after the reload")
smp.expect(not mt.eom_check(conn, MT_BODYCHANGE), "no body change")
-- the next message on the same connection is decided by the new config:
-- bob has no key, required refuses it
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "RLD1B") == SMFIR_REPLYCODE,
	"a reply code for the next message")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"smp-milter: encryption required, no usable key for: bob@example.net"),
	"550 5.7.1 for the next message on the same session")
mt.disconnect(conn)
