-- Forged X-SMP-* headers are removed from a non-SMP message, which gets
-- no verdict header of its own.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
local msg = "From: mallory@example.com\nTo: bob@example.net\nSubject: hello\n" ..
	"X-SMP-Status: valid; form=attachment; keys=1; recipients=1\n" ..
	"X-SMP-Status: valid; form=inline; keys=0; recipients=1\n" ..
	"X-Smp-Encrypted: pgp-mime\n\nhi\n"
smp.expect(smp.send_message(conn, msg) == SMFIR_CONTINUE, "continue")
smp.expect(mt.eom_check(conn, MT_HDRDELETE, "X-SMP-Status"), "X-SMP-Status deleted")
smp.expect(mt.eom_check(conn, MT_HDRDELETE, "X-Smp-Encrypted"), "X-Smp-Encrypted deleted")
smp.expect(not mt.eom_check(conn, MT_HDRINSERT, "X-SMP-Status"), "no verdict on non-SMP mail")
mt.disconnect(conn)
