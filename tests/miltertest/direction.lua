-- config: outbound {
-- config:   networks = {"198.51.100.0/24"}
-- config:   daemons = {"submission"}
-- config: }
-- log: TESTQID1: direction=inbound
-- log: TESTQID2: direction=outbound
-- log: TESTQID3: direction=outbound
-- log: TESTQID4: direction=outbound
-- Direction (SPEC 3): outbound when the client authenticated, is in
-- outbound.networks, or came in through a daemon in outbound.daemons.
dofile(os.getenv("MT_COMMON"))
local file = smp.fixture_with(2)
local conn = smp.connect("192.0.2.10")
smp.send_fixture(conn, file, "TESTQID1")
mt.disconnect(conn)
conn = smp.connect("198.51.100.7")
smp.send_fixture(conn, file, "TESTQID2")
mt.disconnect(conn)
conn = smp.connect("192.0.2.10")
smp.send_fixture(conn, file, "TESTQID3", "alice")
mt.disconnect(conn)
conn = mt.connect(smp.socket, 40, 0.25)
mt.macro(conn, SMFIC_CONNECT, "{daemon_name}", "submission")
mt.conninfo(conn, "client.example", "192.0.2.10")
smp.send_fixture(conn, file, "TESTQID4")
mt.disconnect(conn)
