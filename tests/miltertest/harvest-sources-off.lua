-- config: keyring {
-- config:   path = "@TMP@/keyring-sources-off.db"
-- config: }
-- log: AC2: direction=inbound smp=no forged=0 action=pass
-- check: ! $SMPCTL keys show dave@example.net
-- By default (harvest.sources = {smp}) an Autocrypt: header or a
-- pgp-keys attachment of ordinary mail is not harvested, and its body is
-- not buffered.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
smp.sender = "<dave@example.net>"
smp.expect(smp.send_fixture(conn, "harvest-autocrypt-header.eml", "AC2") == SMFIR_CONTINUE, "autocrypt")
smp.expect(smp.send_fixture(conn, "harvest-pgp-keys-attachment.eml", "PK2") == SMFIR_CONTINUE, "pgp-keys")
smp.expect_untouched(conn)
mt.disconnect(conn)
