-- config: on_invalid = tempfail
-- An invalid SMP message is deferred with 451 4.7.0 naming the reasons.
dofile(os.getenv("MT_COMMON"))
local file, verdict = smp.fixture_with(1, "plain-attachment")
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_REPLYCODE, "a reply code")
local reasons = verdict:gsub("^invalid; ", "")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.7.0", "invalid SMP message: " .. reasons),
	"451 4.7.0 invalid SMP message: " .. reasons)
mt.disconnect(conn)
