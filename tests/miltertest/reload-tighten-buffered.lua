-- config: keyring {
-- config:   path = "@TMP@/reload-buf.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-reload-buf"
-- config: encrypt {
-- config:   default = opportunistic
-- config: }
-- reload-config: keyring {
-- reload-config:   path = "@TMP@/reload-buf.db"
-- reload-config: }
-- reload-config: gnupg_home = "@TMP@/gnupg-reload-buf"
-- reload-config: encrypt {
-- reload-config:   default = required
-- reload-config: }
-- log: RLD2: configuration reloaded since MAIL: decided with generation
-- log: RLD2: direction=outbound smp=no .*encrypt=refused(bob@example.net (no-key)) action=reject
-- Reload (SPEC 3): the message's body was kept (opportunistic), the
-- policy becomes required mid-transaction: the message is decided by the
-- new config. Bob has no key, so under opportunistic it would have gone
-- plain; under required it is refused.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.before_eom = smp.reload
local reply = smp.send_fixture(conn, "not-smp-plain.eml", "RLD2")
smp.before_eom = nil
smp.expect(reply == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"smp-milter: encryption required, no usable key for: bob@example.net"),
	"550 5.7.1: decided by the config current at end of message")
mt.disconnect(conn)
