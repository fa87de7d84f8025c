-- A valid SMP message is accepted and gets one X-SMP-Status header with
-- the verdict line smpctl prints for it.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(0, "keys=0")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_CONTINUE, "continue for " .. file)
smp.expect(smp.status_inserted(conn, verdict), "X-SMP-Status: " .. verdict)
smp.expect(not mt.eom_check(conn, MT_QUARANTINE), "no quarantine")
mt.disconnect(conn)
