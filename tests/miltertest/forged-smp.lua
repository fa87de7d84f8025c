-- A forged X-SMP-Status on an invalid SMP message is removed and replaced
-- by the real verdict.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(1, "not-encrypted")
local text = smp.read(smp.fixtures .. "/messages/" .. file)
text = "X-SMP-Status: valid; form=attachment; keys=0; recipients=1\n" .. text
local conn = smp.connect()
smp.expect(smp.send_message(conn, text) == SMFIR_CONTINUE, "continue")
smp.expect(mt.eom_check(conn, MT_HDRDELETE, "X-SMP-Status"), "forged header deleted")
smp.expect(smp.status_inserted(conn, verdict), "real verdict " .. verdict)
mt.disconnect(conn)
