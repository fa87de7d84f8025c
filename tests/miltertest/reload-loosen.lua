-- config: keyring {
-- config:   path = "@TMP@/reload-loose.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-reload-loose"
-- config: encrypt {
-- config:   default = required
-- config: }
-- reload-config: keyring {
-- reload-config:   path = "@TMP@/reload-loose.db"
-- reload-config: }
-- reload-config: gnupg_home = "@TMP@/gnupg-reload-loose"
-- reload-config: encrypt {
-- reload-config:   default = off
-- reload-config: }
-- log: RLD3: configuration reloaded since MAIL: decided with generation
-- log: RLD3: direction=outbound smp=no .*action=pass
-- Reload (SPEC 3), the other way: required becomes off mid-transaction;
-- the config current at end of message decides, so the message passes
-- (under the old one it would have been refused: bob has no key).
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.before_eom = smp.reload
local reply = smp.send_fixture(conn, "not-smp-plain.eml", "RLD3")
smp.before_eom = nil
smp.expect(reply == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
mt.disconnect(conn)
