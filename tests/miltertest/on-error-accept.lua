-- config: keyring {
-- config:   path = "/nonexistent-smp-test-dir/keyring.db"
-- config: }
-- config: on_error = accept
-- log: TESTQID: internal error: .*action=accept
-- With on_error = accept the same failure lets the message through.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
smp.sender = "<dave@example.net>"
smp.expect(smp.send_fixture(conn, "harvest-dave-self-encrypted.eml") == SMFIR_ACCEPT, "accept")
mt.disconnect(conn)
