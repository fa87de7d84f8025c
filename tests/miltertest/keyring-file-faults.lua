-- valgrind: skip (gpgme fails under valgrind; the sanitizer build runs this scenario)
-- config: keyring {
-- config:   path = "@TMP@/kr-faults/keyring.db"
-- config: }
-- config: gnupg_home = "@TMP@/gnupg-kr-faults"
-- config: crypto {
-- config:   engine = gnupg
-- config: }
-- config: encrypt {
-- config:   policy "example.net" {
-- config:     encrypt = required
-- config:   }
-- config: }
-- setup: mkdir -p @TMP@/kr-faults && $SMPCTL keys import fixtures/keys/bob.pub.asc
-- log: keyring: keyring database .*/kr-faults/keyring.db was deleted while in use; closing its connections
-- log: KRF2: encryption failed: .*keyring database .*/kr-faults/keyring.db is missing .*action=tempfail
-- log: KRF3: encryption failed: .*is missing .*action=tempfail
-- log: keyring database .*/kr-faults/keyring.db opened again: keyring work resumes
-- log: keyring: keyring database .*/kr-faults/keyring.db was replaced by another file while in use
-- log: keyring: keyring database .*/kr-faults/keyring.db is damaged: it no longer starts with an SQLite header
-- log: KRF6: encryption failed: .*file is not a database.*action=tempfail
-- log: GnuPG home .*/gnupg-kr-faults was missing: created it again
-- log: KRF8: direction=outbound smp=no .*encrypt=pgp-mime.* action=pass
-- log: keyring directory .*/kr-faults was missing: created it again (mode 0700)
-- log: KRF9: encryption failed: .*is missing .*action=tempfail
-- log: KRF10: direction=outbound smp=no .*encrypt=pgp-mime.* action=pass
-- check: test -s @TMP@/kr-faults/keyring.db && $SMPCTL keys show bob@example.net
-- The keyring file deleted, replaced and overwritten under the running
-- daemon, and its GnuPG home deleted (SPEC 3.5, doc/keyring.md "When the
-- keyring or the GnuPG home goes away"). Mail for a required recipient:
-- while the file is missing or garbage, 451 4.3.0 (never 5xx, never
-- plain, and the file is not made again empty); once a good file is back,
-- encrypted again without a restart. A file replaced by a good one just
-- serves; a deleted GnuPG home, or keyring directory, is made again.
dofile(os.getenv("MT_COMMON"))
local tmp = smp.socket:match("^unix:(.*)/milter%.sock$")
local dir = tmp .. "/kr-faults"
local db = dir .. "/keyring.db"
local saved = tmp .. "/kr-faults-saved.db"

local function sh(cmd)
	local ok = os.execute(cmd)
	if ok ~= true and ok ~= 0 then smp.fail("command failed: " .. cmd) end
end

local function encrypted(qid)
	local conn = smp.connect(smp.outbound_ip)
	smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", qid) == SMFIR_CONTINUE,
		qid .. ": continue")
	smp.expect_encrypted(conn)
	mt.disconnect(conn)
end

local function deferred(qid)
	local conn = smp.connect(smp.outbound_ip)
	smp.expect(smp.send_fixture(conn, "not-smp-plain.eml", qid) == SMFIR_REPLYCODE,
		qid .. ": a reply code")
	smp.expect(mt.eom_check(conn, MT_SMTPREPLY, "451", "4.3.0",
		"smp-milter: temporary failure encrypting the message"), qid .. ": 451 4.3.0")
	smp.expect(not mt.eom_check(conn, MT_BODYCHANGE), qid .. ": no body change")
	mt.disconnect(conn)
end

-- the daemon has the keyring open
encrypted("KRF1")
sh("cp '" .. db .. "' '" .. saved .. "'")

-- deleted: deferred, and the file is not made again
sh("rm '" .. db .. "'")
deferred("KRF2")
deferred("KRF3")
sh("test ! -e '" .. db .. "'")

-- restored: served again without a restart
sh("cp '" .. saved .. "' '" .. db .. "'")
encrypted("KRF4")

-- replaced by rename with a good keyring: served
sh("cp '" .. saved .. "' '" .. dir .. "/new.db' && mv '" .. dir .. "/new.db' '" .. db .. "'")
encrypted("KRF5")

-- overwritten in place with garbage: deferred until a good file is back
sh("head -c 8192 /dev/urandom >'" .. db .. "'")
deferred("KRF6")
sh("cp '" .. saved .. "' '" .. db .. "'")
encrypted("KRF7")

-- the GnuPG home deleted: made again, bob's key imported from the keyring
sh("rm -rf '" .. tmp .. "/gnupg-kr-faults'")
encrypted("KRF8")

-- the whole directory deleted: made again, deferred until the file is back
sh("rm -rf '" .. dir .. "'")
deferred("KRF9")
sh("test -d '" .. dir .. "' && test ! -e '" .. db .. "'")
sh("cp '" .. saved .. "' '" .. db .. "'")
encrypted("KRF10")
