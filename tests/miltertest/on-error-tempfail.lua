-- config: keyring {
-- config:   path = "/nonexistent-smp-test-dir/keyring.db"
-- config: }
-- config: on_error = tempfail
-- log: TESTQID: internal error: .*action=tempfail
-- An internal failure (the keyring database cannot be opened, so the
-- harvest cannot run) answers 451 4.3.0: nothing passes half-checked.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
smp.sender = "<dave@example.net>"
smp.expect(smp.send_fixture(conn, "harvest-dave-self-encrypted.eml") == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.3.0", "smp-milter: temporary internal error"),
	"451 4.3.0 smp-milter: temporary internal error")
mt.disconnect(conn)
