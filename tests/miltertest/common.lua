-- common.lua - helpers shared by the miltertest scenario scripts.
-- The runner (tests/blackbox/miltertest.sh) sets MILTER_SOCKET and FIXTURES.

smp = {}

smp.socket = os.getenv("MILTER_SOCKET")
-- envelope of the next message: a scenario may change these
smp.sender = "<sender@example.org>"
smp.rcpt = "<bob@example.net>"
smp.fixtures = os.getenv("FIXTURES")

-- Loads the scenario's "-- reload-config:" config and returns once the
-- daemon has logged the reload (the runner's $MILTER_RELOAD).
function smp.reload()
	local ok = os.execute(os.getenv("MILTER_RELOAD"))
	if ok ~= true and ok ~= 0 then smp.fail("reload failed") end
end
mt.set_timeout(30)

function smp.fail(msg)
	-- miltertest does not print the error text itself
	io.stderr:write("miltertest: " .. msg .. "\n")
	error(msg, 2)
end

-- A fresh connection from a client at ip (default 192.0.2.10: inbound).
function smp.connect(ip)
	local conn = mt.connect(smp.socket, 40, 0.25)
	if conn == nil then smp.fail("cannot connect to " .. smp.socket) end
	if mt.conninfo(conn, "client.example", ip or "192.0.2.10") ~= nil then
		smp.fail("conninfo failed")
	end
	return conn
end

-- Reads a whole file.
function smp.read(path)
	local f = io.open(path, "rb")
	if f == nil then smp.fail("cannot open " .. path) end
	local s = f:read("*a")
	f:close()
	return s
end

-- Sends MAIL, the headers and the body of an RFC 5322 message text, then
-- end of message. auth, when given, is sent as {auth_authen} with MAIL.
-- Returns the reply to eom.
function smp.send_message(conn, text, qid, auth)
	text = text:gsub("\r\n", "\n")
	local hend = text:find("\n\n", 1, true)
	local head, body
	if hend then
		head = text:sub(1, hend)
		body = text:sub(hend + 2)
	else
		head, body = text, ""
	end
	if auth then
		mt.macro(conn, SMFIC_MAIL, "i", qid or "TESTQID", "{auth_authen}", auth)
	else
		mt.macro(conn, SMFIC_MAIL, "i", qid or "TESTQID")
	end
	if mt.mailfrom(conn, smp.sender) ~= nil then smp.fail("MAIL failed") end
	-- smp.rcpts (a list), when set, replaces smp.rcpt; the reply to each
	-- RCPT is kept in smp.rcpt_replies
	smp.rcpt_replies = {}
	for _, r in ipairs(smp.rcpts or {smp.rcpt}) do
		if mt.rcptto(conn, r) ~= nil then smp.fail("RCPT failed") end
		table.insert(smp.rcpt_replies, mt.getreply(conn))
	end
	-- unfold into (name, value) keeping continuation lines
	local name, value = nil, nil
	local function flush()
		if name then
			if mt.header(conn, name, value) ~= nil then smp.fail("header failed") end
		end
	end
	for line in head:gmatch("([^\n]*)\n") do
		if line:match("^[ \t]") and name then
			value = value .. "\n" .. line
		else
			flush()
			name, value = line:match("^([^:]+):[ \t]?(.*)$")
		end
	end
	flush()
	if mt.eoh(conn) ~= nil then smp.fail("eoh failed") end
	body = body:gsub("\n", "\r\n")
	local pos = 1
	while pos <= #body do
		local chunk = body:sub(pos, pos + 65535 - 1)
		if mt.bodystring(conn, chunk) ~= nil then smp.fail("body failed") end
		if mt.getreply(conn) == SMFIR_SKIP then break end
		pos = pos + 65535
	end
	-- smp.before_eom, when set, runs between the body and end of message
	-- (e.g. a reload mid-transaction)
	if smp.before_eom then smp.before_eom() end
	if mt.eom(conn) ~= nil then smp.fail("eom failed") end
	return mt.getreply(conn)
end

function smp.send_fixture(conn, name, qid, auth)
	return smp.send_message(conn, smp.read(smp.fixtures .. "/messages/" .. name), qid, auth)
end

-- The expected verdict of a fixture, from fixtures/expect.tsv.
function smp.expected(name)
	for line in io.lines(smp.fixtures .. "/expect.tsv") do
		local f, rc, v = line:match("^([^\t]+)\t(%d+)\t(.*)$")
		if f == name then return v, tonumber(rc) end
	end
	smp.fail("no expectation for " .. name)
end

-- The first fixture whose expected exit code is rc (0 valid, 1 invalid, 2 not SMP).
function smp.fixture_with(rc, pattern)
	for line in io.lines(smp.fixtures .. "/expect.tsv") do
		local f, r, v = line:match("^([^\t]+)\t(%d+)\t(.*)$")
		if f and tonumber(r) == rc and (pattern == nil or v:find(pattern, 1, true)) then
			return f, v
		end
	end
	smp.fail("no fixture with exit code " .. rc)
end

function smp.expect(cond, what)
	if not cond then smp.fail("expected: " .. what) end
end

-- No modification of any kind at end of message.
function smp.expect_untouched(conn)
	smp.expect(not mt.eom_check(conn, MT_HDRINSERT, "X-SMP-Status"), "no X-SMP-Status inserted")
	smp.expect(not mt.eom_check(conn, MT_HDRADD, "X-SMP-Status"), "no X-SMP-Status added")
	smp.expect(not mt.eom_check(conn, MT_HDRDELETE, "X-SMP-Status"), "no header deleted")
	smp.expect(not mt.eom_check(conn, MT_QUARANTINE), "no quarantine")
	smp.expect(not mt.eom_check(conn, MT_BODYCHANGE), "no body change")
end

-- Was "X-SMP-Status: verdict" inserted at end of message? miltertest, like
-- Postfix, negotiates SMFIP_HDR_LEADSPC, so the value keeps its leading space.
function smp.status_inserted(conn, verdict)
	return mt.eom_check(conn, MT_HDRINSERT, "X-SMP-Status", " " .. verdict)
end

-- The outbound client address (inside the default outbound.networks).
smp.outbound_ip = "127.0.0.1"

-- Was the message encrypted at end of message (SPEC 5)? Body replaced,
-- Content-Type removed and added anew, X-SMP-Encrypted: pgp-mime added.
function smp.expect_encrypted(conn)
	smp.expect(mt.eom_check(conn, MT_BODYCHANGE), "body replaced")
	smp.expect(mt.eom_check(conn, MT_HDRDELETE, "Content-Type"), "Content-Type removed")
	smp.expect(mt.eom_check(conn, MT_HDRADD, "Content-Type"), "Content-Type added")
	smp.expect(mt.eom_check(conn, MT_HDRADD, "X-SMP-Encrypted", " pgp-mime"),
		"X-SMP-Encrypted: pgp-mime added")
	local ct = mt.getheader(conn, "Content-Type", 0)
	smp.expect(ct ~= nil and ct:find("multipart/encrypted", 1, true) ~= nil,
		"Content-Type multipart/encrypted, got " .. tostring(ct))
end
