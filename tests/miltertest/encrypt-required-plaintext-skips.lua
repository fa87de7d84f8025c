-- config: keyring {
-- config:   path = "@TMP@/enc-reqskip.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-enc-reqskip"
-- config: encrypt {
-- config:   default = required
-- config: }
-- log: ENC20: direction=outbound smp=no .*encrypt=refused(inline-pgp) action=reject
-- log: ENC21: direction=outbound smp=invalid .*action=refuse-required
-- Never re-encrypt (SPEC 5) meets "plaintext is never delivered for a
-- required recipient": an inline PGP message may carry text around its
-- armored block, and an invalid SMP message may be plain text, so neither
-- goes out to a required recipient: 550 5.7.1.
dofile(os.getenv("MT_COMMON"))
local conn = smp.connect(smp.outbound_ip)
local inline = "From: a@example.org\nTo: bob@example.net\nSubject: hi\n" ..
	"MIME-Version: 1.0\nContent-Type: text/plain\n\nMy secret plan, in clear.\n" ..
	"-----BEGIN PGP MESSAGE-----\n\nhQEMA1234\n=abcd\n-----END PGP MESSAGE-----\n"
smp.expect(smp.send_message(conn, inline, "ENC20") == SMFIR_REPLYCODE, "inline refused")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"smp-milter: encryption required, but an inline PGP message is not encrypted again"),
	"550 5.7.1 for inline PGP")
local file = smp.fixture_with(1, "no-data")
smp.expect(smp.send_fixture(conn, file, "ENC21") == SMFIR_REPLYCODE, "invalid SMP refused")
smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"smp-milter: encryption required, but an invalid SMP message is not encrypted"),
	"550 5.7.1 for an invalid SMP message")
mt.disconnect(conn)
