-- Ordinary mail passes with no modification at all, and its body is
-- skipped (not buffered) once the headers are complete.
dofile(os.getenv("MT_COMMON"))
local file = smp.fixture_with(2)
local conn = smp.connect()
smp.expect(smp.send_fixture(conn, file) == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
-- a body chunk after the headers of a non-SMP message is answered with skip
mt.macro(conn, SMFIC_MAIL, "i", "SKIPQID")
smp.expect(mt.mailfrom(conn, "<a@example.org>") == nil, "MAIL")
smp.expect(mt.header(conn, "Subject", "Quarterly report") == nil, "header")
smp.expect(mt.eoh(conn) == nil, "eoh")
smp.expect(mt.bodystring(conn, string.rep("x", 1000) .. "\r\n") == nil, "body")
smp.expect(mt.getreply(conn) == SMFIR_SKIP, "body skipped for non-SMP mail")
smp.expect(mt.eom(conn) == nil, "eom")
smp.expect_untouched(conn)
mt.disconnect(conn)
