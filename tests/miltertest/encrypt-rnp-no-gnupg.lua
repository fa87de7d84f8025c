-- config: keyring {
-- config:   path = "@TMP@/enc-rnp.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-rnp"
-- config: crypto {
-- config:   cache_keys = 2
-- config: }
-- config: encrypt {
-- config:   policy "example.net" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- setup: rm -rf @TMP@/gnupg-enc-rnp && echo broken >@TMP@/gnupg-enc-rnp
-- log: ENC10: direction=outbound smp=no .*encrypt=pgp-mime.* action=pass
-- check: test -f @TMP@/gnupg-enc-rnp && grep -qx broken @TMP@/gnupg-enc-rnp
-- The default crypto engine (rnp) reads keys from the keyring database
-- only: with gnupg_home a file (as encrypt-broken-gnupg.lua breaks it for
-- the gnupg engine), mail to a required recipient is still encrypted, and
-- the file is left alone (no GnuPG home is made or read).
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC10") == SMFIR_CONTINUE, "continue")
smp.expect_encrypted(conn)
mt.disconnect(conn)
