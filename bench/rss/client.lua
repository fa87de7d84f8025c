-- bench/rss/client.lua - one milter session of bench/rss/rss.sh: connects
-- as an outbound client (127.0.0.1), waits until the file RSS_GO exists
-- (so that every session is open at once), then sends RSS_MESSAGES
-- messages on this one connection, each to a random recipient with a real
-- key in the bench keyring (user%07u@rss%03u.example, i < RSS_REAL),
-- alternating a plain text and a PDF attachment message. Prints
-- "sent N encrypted E" on stdout.
local sock = os.getenv("MILTER_SOCKET")
local go = os.getenv("RSS_GO")
local n = tonumber(os.getenv("RSS_MESSAGES"))
local real = tonumber(os.getenv("RSS_REAL"))
local id = tonumber(os.getenv("RSS_ID"))
local fix = os.getenv("FIXTURES") .. "/messages/"
math.randomseed(id * 7919 + 17)
mt.set_timeout(120)

local function fail(msg)
	io.stderr:write("rss client " .. id .. ": " .. msg .. "\n")
	error(msg, 2)
end

local function read(path)
	local f = io.open(path, "rb")
	if f == nil then fail("cannot open " .. path) end
	local s = f:read("*a")
	f:close()
	return s
end

-- split a message into its header fields and its body (CRLF)
local function split(text)
	text = text:gsub("\r\n", "\n")
	local hend = text:find("\n\n", 1, true)
	local head, body = text:sub(1, hend), text:sub(hend + 2)
	local hdrs, name, value = {}, nil, nil
	for line in head:gmatch("([^\n]*)\n") do
		if line:match("^[ \t]") and name then
			value = value .. "\n" .. line
		else
			if name then table.insert(hdrs, {name, value}) end
			name, value = line:match("^([^:]+):[ \t]?(.*)$")
		end
	end
	if name then table.insert(hdrs, {name, value}) end
	return hdrs, (body:gsub("\n", "\r\n"))
end

local msgs = {
	{split(read(fix .. "not-smp-plain.eml"))},
	{split(read(fix .. "not-smp-pdf-attachment.eml"))},
}

local conn = mt.connect(sock, 40, 0.25)
if conn == nil then fail("cannot connect to " .. sock) end
if mt.conninfo(conn, "client.example", "127.0.0.1") ~= nil then fail("conninfo") end
while not io.open(go, "r") do os.execute("sleep 0.05") end

local enc = 0
for i = 1, n do
	local r = math.random(0, real - 1)
	local rcpt = string.format("<user%07d@rss%03d.example>", r, r % 500)
	local m = msgs[(i % 2) + 1]
	local hdrs, body = m[1], m[2]
	mt.macro(conn, SMFIC_MAIL, "i", string.format("RSS%03d%05d", id, i))
	if mt.mailfrom(conn, "<alice@example.org>") ~= nil then fail("MAIL") end
	if mt.rcptto(conn, rcpt) ~= nil then fail("RCPT") end
	for _, h in ipairs(hdrs) do
		if mt.header(conn, h[1], h[2]) ~= nil then fail("header") end
	end
	if mt.eoh(conn) ~= nil then fail("eoh") end
	local pos = 1
	while pos <= #body do
		if mt.bodystring(conn, body:sub(pos, pos + 65534)) ~= nil then fail("body") end
		if mt.getreply(conn) == SMFIR_SKIP then break end
		pos = pos + 65535
	end
	if mt.eom(conn) ~= nil then fail("eom") end
	if mt.getreply(conn) ~= SMFIR_CONTINUE then fail("eom reply not continue") end
	if mt.eom_check(conn, MT_HDRADD, "X-SMP-Encrypted", " pgp-mime") then enc = enc + 1 end
end
mt.disconnect(conn)
print(string.format("sent %d encrypted %d", n, enc))
