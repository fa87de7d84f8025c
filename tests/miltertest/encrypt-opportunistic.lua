-- config: keyring {
-- config:   path = "@TMP@/enc-opp.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-opp"
-- config: encrypt {
-- config:   default = opportunistic
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: ENC1: direction=outbound smp=no .* encrypt=pgp-mime.* action=pass
-- Outbound encryption (SPEC 5): under opportunistic, mail from an outbound
-- client to bob, who has a usable key, leaves as PGP/MIME: body replaced,
-- Content-Type now multipart/encrypted, X-SMP-Encrypted: pgp-mime added.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC1") == SMFIR_CONTINUE, "continue")
smp.expect_encrypted(conn)
smp.expect(not mt.eom_check(conn, MT_HDRCHANGE, "Subject"), "Subject kept (protect_subject = no)")
mt.disconnect(conn)
