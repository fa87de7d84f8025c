-- config: keyring {
-- config:   path = "@TMP@/enc-broken.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-broken"
-- config: crypto {
-- config:   engine = gnupg
-- config: }
-- config: on_error = accept
-- config: encrypt {
-- config:   policy "example.net" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- setup: $SMPCTL keys import fixtures/keys/bob.pub.asc
-- setup: rm -rf @TMP@/gnupg-enc-broken && echo broken >@TMP@/gnupg-enc-broken
-- log: ENC9: encryption failed: .*action=tempfail
-- log: ENC9: direction=outbound smp=no .*encrypt=failed(.* action=tempfail
-- A broken GnuPG home (a file where the directory should be) under the
-- gnupg crypto engine: encryption fails, and for a required recipient that
-- is always 451 4.3.0, even with on_error = accept (SPEC 3.5: plaintext
-- never goes out for a required recipient). The default engine (rnp) needs
-- no GnuPG home: encrypt-rnp-no-gnupg.lua.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", "ENC9") == SMFIR_REPLYCODE, "a reply code")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.3.0",
	"smp-milter: temporary failure encrypting the message"), "451 4.3.0")
smp.expect(not mt.eom_check(conn, MT_BODYCHANGE), "no body change")
mt.disconnect(conn)
