-- config: keyring {
-- config:   path = "@TMP@/keyring-sources.db"
-- config: }
-- config: harvest {
-- config:   sources = {smp, autocrypt, pgp-keys}
-- config: }
-- log: AC1: direction=inbound smp=no forged=0 harvest=harvested=1 refused=0 \[harvested
-- log: PK1: direction=inbound smp=no forged=0 harvest=harvested=0 refused=0 \[seen
-- check: $SMPCTL keys show dave@example.net --json | jq -e '.bindings[0].source == "autocrypt" and .bindings[0].times_seen == 2'
-- With harvest.sources enabling them, keys are harvested from the
-- Autocrypt: header and from application/pgp-keys parts of ordinary mail.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
smp.sender = "<dave@example.net>"
smp.expect(smp.send_fixture(conn, "harvest-autocrypt-header.eml", "AC1") == SMFIR_CONTINUE, "autocrypt")
smp.expect_untouched(conn)
smp.expect(smp.send_fixture(conn, "harvest-pgp-keys-attachment.eml", "PK1") == SMFIR_CONTINUE, "pgp-keys")
smp.expect_untouched(conn)
mt.disconnect(conn)
