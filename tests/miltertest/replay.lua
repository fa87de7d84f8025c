-- config: keyring {
-- config:   path = "@TMP@/keyring-replay.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg"
-- config: replay {
-- config:   enabled = true
-- config: }
-- log: RP1: direction=inbound smp=valid verdict="valid; form=attachment; keys=0; recipients=1"
-- log: RP2: direction=inbound smp=valid verdict="valid; form=attachment; keys=0; recipients=1; replay=yes"
-- log: RP3: direction=inbound smp=valid verdict="valid; form=attachment; keys=0; recipients=1" forged
-- Replay (SPEC 2): the same SMP payload to the same recipient again is
-- marked replay=yes; to another recipient it is not.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(0, "keys=0; recipients=1")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file, "RP1") == SMFIR_CONTINUE, "first")
smp.expect(smp.status_inserted(conn, verdict), "no replay the first time")
smp.expect(smp.send_fixture(conn, file, "RP2") == SMFIR_CONTINUE, "second")
smp.expect(smp.status_inserted(conn, verdict .. "; replay=yes"), "replay=yes the second time")
smp.rcpt = "<carol@example.com>"
smp.expect(smp.send_fixture(conn, file, "RP3") == SMFIR_CONTINUE, "other recipient")
smp.expect(smp.status_inserted(conn, verdict), "no replay for another recipient")
mt.disconnect(conn)
