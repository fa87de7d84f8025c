-- config: on_invalid = tag
-- An invalid SMP message is tagged with its reasons and delivered.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(1, "bad-armor")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_CONTINUE, "continue")
smp.expect(smp.status_inserted(conn, verdict), "X-SMP-Status: " .. verdict)
smp.expect(not mt.eom_check(conn, MT_QUARANTINE), "no quarantine")
mt.disconnect(conn)
