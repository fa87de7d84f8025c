-- config: keyring {
-- config:   path = "@TMP@/keyring.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg"
-- log: HV1: direction=inbound smp=valid verdict="valid; form=attachment; keys=1; recipients=2; harvested=1; refused=0"
-- log: HV2: .*harvested=0; refused=1.*no-matching-uid
-- check: $SMPCTL keys show dave@example.net | grep -q 'state=active'
-- check: ! $SMPCTL keys list | grep -q victim
-- Harvest (SPEC 3.3, 4): a valid SMP message from dave carrying dave's key
-- binds it to dave; a key whose only user ID is someone else's address
-- (the planting attempt) is refused and bound to nobody.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect()
smp.sender = "<dave@example.net>"
smp.expect(smp.send_fixture(conn, "harvest-dave-self-encrypted.eml", "HV1") == SMFIR_CONTINUE, "continue")
smp.expect(smp.status_inserted(conn, "valid; form=attachment; keys=1; recipients=2; harvested=1; refused=0"),
	"verdict with harvest counts")
local text = smp.read(smp.fixtures .. "/messages/harvest-planted-uid.eml")
local from = text:match("\nFrom:[^\n]*<([^>]+)>") or text:match("^From:[^\n]*<([^>]+)>")
smp.sender = "<" .. from .. ">"
smp.expect(smp.send_message(conn, text, "HV2") == SMFIR_CONTINUE, "continue")
mt.disconnect(conn)
