-- config: on_invalid = quarantine
-- config: quarantine_reason = "smp test quarantine"
-- An invalid SMP message is tagged and put on hold (quarantined).
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(1, "no-data")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_CONTINUE, "continue")
smp.expect(smp.status_inserted(conn, verdict), "X-SMP-Status: " .. verdict)
smp.expect(mt.eom_check(conn, MT_QUARANTINE, "smp test quarantine"), "quarantined with the configured reason")
mt.disconnect(conn)
