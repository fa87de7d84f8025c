-- config: on_invalid = reject
-- An invalid SMP message is refused with 550 5.7.0 naming the reasons;
-- a valid one on the same connection still passes.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(1, "bad-packets")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_REPLYCODE, "a reply code")
local reasons = verdict:gsub("^invalid; ", "")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.0", "invalid SMP message: " .. reasons),
	"550 5.7.0 invalid SMP message: " .. reasons)
local vfile, vverdict = smp.fixture_with(0, "keys=0")
smp.expect(smp.send_fixture(conn, vfile) == SMFIR_CONTINUE, "valid message continues")
smp.expect(smp.status_inserted(conn, vverdict), "valid verdict header")
mt.disconnect(conn)
