-- config: keyring {
-- config:   path = "@TMP@/keyring-replay2.db"
-- config: }
-- config: on_invalid = reject
-- config: replay {
-- config:   enabled = true
-- config:   action = invalid
-- config: }
-- With replay.action = invalid a replayed payload is treated as invalid:
-- here on_invalid = reject refuses it.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(0, "keys=0; recipients=1")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_CONTINUE, "first passes")
smp.expect(smp.send_fixture(conn, file) == SMFIR_REPLYCODE, "replay refused")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.0", "invalid SMP message: replay=yes"),
	"550 5.7.0 naming the replay")
mt.disconnect(conn)
