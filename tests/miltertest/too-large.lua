-- config: limits {
-- config:   max_message_bytes = 20000
-- config: }
-- An SMP message over the size limit is not buffered and is tagged
-- too-large; a non-SMP message over it passes untouched.
dofile(os.getenv("MT_COMMON"))
local big = "From: a@example.org\nTo: b@example.net\nSubject: Secure Messenger Protocol Message\n" ..
	"MIME-Version: 1.0\nContent-Type: text/plain\n\n" .. string.rep(string.rep("A", 76) .. "\n", 600)
local conn = smp.connect()
smp.expect(smp.send_message(conn, big) == SMFIR_CONTINUE, "continue")
smp.expect(smp.status_inserted(conn, "invalid; reason=too-large"), "too-large verdict")
local plain = big:gsub("Subject: [^\n]*", "Subject: big plain mail")
smp.expect(smp.send_message(conn, plain) == SMFIR_CONTINUE, "continue")
smp.expect_untouched(conn)
mt.disconnect(conn)
