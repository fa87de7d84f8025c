#!/bin/bash
# smpctl keys ... and stats against a real SQLite keyring and GnuPG home,
# with the fixture keys. Prints TAP-style lines.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
K=fixtures/keys
printf 'keyring {\n  path = "%s/k.db"\n}\ngnupg_home = "%s/gnupg"\n' "$TMP" "$TMP" >"$TMP/c.conf"
S() { "$B/bin/smpctl" -c "$TMP/c.conf" "$@"; }

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
jqt() { jq -e "$@" >/dev/null; }
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
fpr_of() { S keys list --json | jq -r --arg a "$1" '.bindings[] | select(.address == $a) | .fingerprint' | head -1; }

out=$(S keys import $K/alice.pub.asc)
check "import an armored key: exit 0, one address pinned" test $? = 0 -a "$out" = "$K/alice.pub.asc: 1 key, 1 address pinned"
S keys import $K/bob.pub.gpg --address bob@example.net >/dev/null
check "import a binary key for one address" test $? = 0
alice=$(fpr_of alice@example.org)
bob=$(fpr_of bob@example.net)
check "fingerprints are 40 upper-case hex digits" bash -c "[[ '$alice' =~ ^[0-9A-F]{40}$ && '$bob' =~ ^[0-9A-F]{40}$ ]]"
j=$(S keys show alice@example.org --json)
check "show --json: pinned, source admin, key details" jqt \
	'.bindings[0].state == "pinned" and .bindings[0].source == "admin" and (.keys[0].algorithm | length > 0) and .keys[0].size > 0' <<<"$j"
check "show by fingerprint finds the same binding" \
	test "$(S keys show "$alice" --json | jq -r '.bindings[0].address')" = alice@example.org
S keys show nobody@example.org >/dev/null 2>"$TMP/err"
check "show of an unknown address exits 67 with one sentence" test $? = 67 -a "$(wc -l <"$TMP/err")" = 1
S keys export alice@example.org >"$TMP/alice.asc"
check "export prints an armored public key block" grep -q -- "-----BEGIN PGP PUBLIC KEY BLOCK-----" "$TMP/alice.asc"
mkdir -m 700 "$TMP/verify"
GNUPGHOME=$TMP/verify gpg --batch --quiet --import "$TMP/alice.asc" 2>/dev/null
check "gpg reads the exported key back with the same fingerprint" \
	bash -c "GNUPGHOME=$TMP/verify gpg --batch --with-colons --fingerprint 2>/dev/null | grep -q '^fpr:::::::::$alice:'"
S keys import $K/alice.sec.asc >/dev/null 2>&1
check "importing secret key material is refused (exit 65)" test $? = 65
S keys import $K/carol.pub.asc --address nobody@example.org >/dev/null 2>&1
check "import --address that is no user ID of the key is refused" test $? = 65
S keys import "$TMP/missing.asc" >/dev/null 2>&1
check "import of a missing file exits 66" test $? = 66

S keys block "$bob" && st=$(S keys show bob@example.net --json | jq -r '.bindings[0].state')
check "block: the binding goes to blocked" test "$st" = blocked
check "list --state blocked lists only bob" test "$(S keys list --state blocked | awk '{print $1}')" = bob@example.net
S keys pin bob@example.net "$bob" >/dev/null 2>&1
check "a blocked key cannot be pinned" test $? = 65
S keys unblock "$bob" && st=$(S keys show bob@example.net --json | jq -r '.bindings[0].state')
check "unblock: back as conflict, waiting for an admin" test "$st" = conflict
S keys pin bob@example.net "$bob" && st=$(S keys show bob@example.net --json | jq -r '.bindings[0].state')
check "pin: the binding is pinned" test "$st" = pinned
h=$(S keys history bob@example.net --json | jq -r '[.events[].event] | join(",")')
check "history lists imported and pinned in order" test "$h" = "imported,pinned"
j=$(S keys history bob@example.net --json)
check "history --json carries the binding's times seen and last seen" jqt \
	'.bindings[0].times_seen == 1 and (.bindings[0].last_seen | test("^[0-9-]+T[0-9:]+Z$"))' <<<"$j"
check "history ends with the binding's seen line (times and last seen)" \
	bash -c "S() { \"$B/bin/smpctl\" -c \"$TMP/c.conf\" \"\$@\"; }; S keys history bob@example.net | tail -1 | grep -Eq '^[0-9T:-]+Z seen +$bob 1 time since [0-9T:-]+Z, now pinned'"
j=$(S stats --json)
check "stats --json counts keys, addresses and states" jqt \
	'.keys == 2 and .addresses == 2 and .bindings.pinned == 2 and .discovery == 0' <<<"$j"
# keys prune: events recorded before now - events_keep go, newer ones stay
# (3 written as if long ago, then one now: prune always keeps the newest)
python3 - "$TMP/k.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.executemany("INSERT INTO events (at, address, fpr, event, detail) "
               "VALUES (?, 'old@example.org', '', 'harvested', 'long ago')",
               [(1000000000,), (1000000001,), (1000000002,)])
db.execute("INSERT INTO events (at, address, fpr, event, detail) "
           "VALUES (?, 'new@example.org', '', 'harvested', 'now')",
           (int(time.time()),))
db.commit()
PY
ev0=$(S stats --json | jq .events)
out=$(S keys prune)
check "prune removes the 3 old events and says so" test $? = 0 -a \
	"$(head -1 <<<"$out" | sed 's/before [0-9T:-]*Z/before T/')" = "events: 3 removed (recorded before T; events_keep = 400 days)"
check "prune reports the replay log too" grep -Eq '^replay log: 0 entries removed \(first seen before [0-9T:-]+Z; replay.window = 604800 s\)$' <<<"$out"
check "the pruned address has no history left" test -z "$(S keys history old@example.org)"
check "newer events stay; one events-pruned record is added" \
	test "$(S stats --json | jq .events)" = $((ev0 - 3 + 1)) -a "$(S keys history bob@example.net --json | jq -r '[.events[].event] | join(",")')" = "imported,pinned" -a "$(S keys history new@example.org --json | jq '.events | length')" = 1
j=$(S keys prune --json)
check "prune --json: nothing left to remove" jqt \
	'.events == 0 and .replay_entries == 0 and .events_keep_days == 400 and (.events_before | test("Z$")) and .replay_window == 604800' <<<"$j"
printf 'keyring {\n  path = "%s/k.db"\n  events_keep = 0\n}\ngnupg_home = "%s/gnupg"\n' "$TMP" "$TMP" >"$TMP/keep.conf"
out=$("$B/bin/smpctl" -c "$TMP/keep.conf" keys prune | head -1)
check "events_keep = 0 keeps every event" test "$out" = "events: none removed (events_keep = 0 keeps every event)"
S keys prune extra >/dev/null 2>&1
check "prune takes no argument (exit 64)" test $? = 64
# keys found by key discovery (sources wkd and dane) and the discovery
# cache, as the daemon writes them
python3 - "$TMP/k.db" "$alice" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
for a, src in (("wendy@example.org", "wkd"), ("dana@example.org", "dane")):
    db.execute("INSERT INTO bindings (address, fpr, state, source, first_seen, "
               "last_seen, times_seen) VALUES (?, ?, 'active', ?, ?, ?, 1)",
               (a, sys.argv[2], src, now, now))
db.execute("INSERT INTO discovery (address, status, fetched, expires) "
           "VALUES ('nokey@example.org', 'none', ?, ?)", (now, now + 3600))
db.commit()
PY
check "show --json names the source wkd" \
	test "$(S keys show wendy@example.org --json | jq -r '.bindings[0].source')" = wkd
check "list prints the source dane" grep -Eq '^dana@example.org +[0-9A-F]{40} +active +dane ' <<<"$(S keys list)"
check "show prints source=dane" grep -q 'state=active source=dane ' <<<"$(S keys show dana@example.org)"
check "stats counts the discovery cache (text and --json)" \
	test "$(S stats | grep '^discovery ')" = "discovery     1" -a "$(S stats --json | jq .discovery)" = 1
# A Message-ID is what a sender wrote: in text output it is escaped
# (printable ASCII as it is but space and \, the rest \xNN) so that no
# control sequence of a hostile mail reaches the terminal; --json carries
# it as it is (jansson escapes it).
python3 - "$TMP/k.db" "$alice" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
evil = "<x\x1b]0;pwned\x07 a\\b\x1b[2J\r\n\xe9@evil.example>"
for a, mid in (("mallory@example.org", evil), ("olga@example.org", "<m1.x+y=z_%{}@mail.example>")):
    db.execute("INSERT INTO bindings (address, fpr, state, source, first_seen, "
               "last_seen, times_seen, message_id) VALUES (?, ?, 'active', 'smp', ?, ?, 1, ?)",
               (a, sys.argv[2], now, now, mid))
    db.execute("INSERT INTO events (at, address, fpr, event, detail, message_id) "
               "VALUES (?, ?, ?, 'harvested', 'source=smp', ?)", (now, a, sys.argv[2], mid))
db.commit()
PY
shown='<x\x1b]0;pwned\x07\x20a\\b\x1b[2J\x0d\x0a\xc3\xa9@evil.example>'
# clean_out FILE: every line printable ASCII only
clean_out() { ! LC_ALL=C grep -q '[^ -~]' "$1"; }
S keys show mallory@example.org >"$TMP/out"
check "show prints a hostile Message-ID escaped: printable ASCII only" \
	clean_out "$TMP/out"
check "... as $shown" grep -qF "message-id $shown from -" "$TMP/out"
S keys history mallory@example.org >"$TMP/out"
check "history escapes it: printable ASCII only" clean_out "$TMP/out"
check "... in the event line and the seen line" test "$(grep -cF " $shown" "$TMP/out")" = 2
check "... each still one line" test "$(wc -l <"$TMP/out")" = 2
check "show --json carries the Message-ID as it was" \
	test "$(S keys show mallory@example.org --json | jq -r '.bindings[0].message_id' | od -An -tx1)" = \
	"$(printf '<x\033]0;pwned\007 a\\b\033[2J\r\n\303\251@evil.example>\n' | od -An -tx1)"
check "history --json too" \
	test "$(S keys history mallory@example.org --json | jq -r '.events[0].message_id, .bindings[0].message_id' | od -An -tx1)" = \
	"$(printf '<x\033]0;pwned\007 a\\b\033[2J\r\n\303\251@evil.example>\n<x\033]0;pwned\007 a\\b\033[2J\r\n\303\251@evil.example>\n' | od -An -tx1)"
check "an ordinary Message-ID is shown unchanged" \
	test "$(S keys show olga@example.org | grep -c 'message-id <m1.x+y=z_%{}@mail.example> from -$')" = 1 -a \
	"$(S keys history olga@example.org | grep -c ' <m1.x+y=z_%{}@mail.example>$')" = 2
S keys delete mallory@example.org && S keys delete olga@example.org
S keys delete wendy@example.org && S keys delete dana@example.org
out=$(S keys rebuild)
check "rebuild re-imports both keys into the GnuPG cache" test "$out" = "$TMP/gnupg: 2 keys imported from the keyring"
check "the rebuilt cache holds alice's key" \
	bash -c "GNUPGHOME=$TMP/gnupg gpg --batch --with-colons --list-keys 2>/dev/null | grep -q '^fpr:::::::::$alice:'"
S keys delete alice@example.org && S keys show alice@example.org >/dev/null 2>&1
check "delete ADDRESS removes the binding" test $? = 67
S keys delete "$bob"
check "delete FPR removes the key" test "$(S stats --json | jq .keys)" = 1
S keys show xyz >/dev/null 2>"$TMP/err"
check "show of something that is neither address nor fingerprint exits 65" test $? = 65 -a "$(grep -c "'xyz' is neither a mail address nor a key fingerprint" "$TMP/err")" = 1
S keys pin alice@example.org 1234 >/dev/null 2>&1
check "pin with a malformed fingerprint exits 65" test $? = 65
S keys frobnicate >/dev/null 2>&1
check "an unknown keys subcommand exits 64" test $? = 64
S keys pin only-one-argument >/dev/null 2>&1
check "a missing argument exits 64" test $? = 64

# Address syntax (smpctl(8) ADDRESSES): every ADDRESS argument passes one
# check; anything else exits 65 with one sentence quoting it, stores nothing,
# and no raw control octet reaches the terminal.
nbind() { S keys list --json | jq '.bindings | length'; }
# clean_err RC WANT: RC is WANT, and $TMP/err is one line of printable ASCII
# (no control octet, no octet >= 0x80)
clean_err() {
	[ "$1" = "$2" ] && [ "$(wc -l <"$TMP/err")" = 1 ] &&
		! tr -d '\n' <"$TMP/err" | LC_ALL=C grep -q '[^ -~]'
}
before=$(nbind)
S keys pin "a'; DROP TABLE keys;--@x.org" "$alice" >/dev/null 2>"$TMP/err"
rc=$?
check "pin of the SQL string exits 65 with one clean line" clean_err $rc 65
check "... saying why, the argument quoted" grep -qF "keys pin: 'a\\'; DROP TABLE keys;--@x.org' is not a mail address: it holds white space" "$TMP/err"
check "... and stores nothing" test "$(nbind)" = "$before" -a "$(S keys list | grep -c DROP)" = 0
for bad in 'a b@x.org' 'a;b@x.org' 'a@x;y.org' '"a b"@x.org' '<a@x.org>' 'a..b@x.org' 'a@-x.org' '@x.org' 'a@'; do
	S keys pin "$bad" "$alice" >/dev/null 2>"$TMP/err"
	rc=$?
	check "pin '$bad' exits 65 with one clean line, nothing stored" \
		test $rc = 65 -a "$(nbind)" = "$before" -a "$(grep -c 'is not a mail address' "$TMP/err")" = 1
done
S keys pin $'a\x1b[31m@x.org' "$alice" >/dev/null 2>"$TMP/err"
rc=$?
check "pin with an ESC in the address exits 65 with one clean line" clean_err $rc 65
check "... the ESC shown as \\x1b, nothing stored" \
	test "$(grep -cF "'a\\x1b[31m@x.org'" "$TMP/err")" = 1 -a "$(nbind)" = "$before"
S keys show $'al\x01ice@example.org' >/dev/null 2>"$TMP/err"
check "show with a control octet exits 65 with one clean line" clean_err $? 65
S keys show $'\x1b]0;pwned\x07' >/dev/null 2>"$TMP/err"
check "show of a terminal escape (no @) exits 65 with one clean line" clean_err $? 65
big=$(head -c 102400 /dev/zero | tr '\0' x)
S keys show "$big@x.org" >/dev/null 2>"$TMP/err"
check "show of a 100 kB address exits 65 (not 78) with one clean line" clean_err $? 65
check "... short: 80 octets shown, the length named" \
	test "$(wc -c <"$TMP/err")" -lt 400 -a "$(grep -c '(102406 octets)' "$TMP/err")" = 1
S keys block "$big" >/dev/null 2>"$TMP/err"
check "block of a 100 kB non-fingerprint exits 65, short" test $? = 65 -a "$(wc -c <"$TMP/err")" -lt 400
S keys pin "$big@x.org" "$alice" >/dev/null 2>&1
check "pin of a 100 kB address exits 65, nothing stored" test $? = 65 -a "$(nbind)" = "$before"
S keys pin "$(head -c 243 /dev/zero | tr '\0' l)@example.org" "$alice" >/dev/null 2>"$TMP/err"
check "a 255-octet address is refused (65): longer than 254 octets" \
	test $? = 65 -a "$(grep -c 'longer than 254 octets' "$TMP/err")" = 1
S keys delete 'a;b@x.org' >/dev/null 2>&1
check "delete of a malformed address exits 65" test $? = 65
S keys export 'a b@x.org' >/dev/null 2>&1
check "export of a malformed address exits 65" test $? = 65
S keys history "$alice" >/dev/null 2>"$TMP/err"
check "history takes an address only: a fingerprint exits 65" \
	test $? = 65 -a "$(grep -c "it has no '@'" "$TMP/err")" = 1
S keys block alice@example.org >/dev/null 2>"$TMP/err"
check "block takes a fingerprint only: an address exits 65" \
	test $? = 65 -a "$(grep -c 'is not a key fingerprint' "$TMP/err")" = 1
S keys import $K/carol.pub.asc --address 'carol@example.com;' >/dev/null 2>"$TMP/err"
check "import --address with a malformed address exits 65, nothing stored" \
	test $? = 65 -a "$(nbind)" = "$before" -a "$(S stats --json | jq .keys)" = 1
S keys show alice@example.org --address alice@example.org >/dev/null 2>&1
check "--address with another command than import is a usage error (64)" test $? = 64
S keys $'\x1b[2Jfrob' >/dev/null 2>"$TMP/err"
check "an unknown subcommand with an ESC exits 64 with one clean line" clean_err $? 64
S keys list --state $'\x07bell' >/dev/null 2>"$TMP/err"
check "an unknown state with a BEL exits 64 with one clean line" clean_err $? 64
"$B/bin/smpctl" -c "$TMP/no"$'\x1b[31m'"such.conf" keys list >/dev/null 2>"$TMP/err"
check "a config path with an ESC exits 78 with one clean line" clean_err $? 78
check "... the path shown escaped" grep -qF 'no\x1b[31msuch.conf' "$TMP/err"
# what the check accepts
for good in '"john..doe"@example.org' "o'reilly@example.org" $'j\xc3\xb6rg@example.org' \
	"$(head -c 65 /dev/zero | tr '\0' l)@example.org" 'x@[192.0.2.1]'; do
	S keys pin "$good" "$alice" >/dev/null 2>&1
	rc=$?
	check "pin '$good' is accepted and found again" \
		test $rc = 0 -a "$(S keys show "$good" --json | jq -r '.bindings[0].state')" = pinned
done
S keys pin 'Dora@EXAMPLE.org' "$alice" && S keys show dora@example.org >/dev/null 2>&1
check "the local part is exact: Dora@ is not dora@ (67)" test $? = 67
check "... and the domain is lowered: Dora@example.org is listed" \
	test "$(S keys list | grep -c '^Dora@example.org ')" = 1

# keys import pins only user IDs whose email is a mail address
G=$TMP/gen
mkdir -m 700 "$G"
GNUPGHOME=$G gpg --batch --quiet --passphrase '' --quick-gen-key 'Joe <joe;x@example.org>' ed25519 cert,sign never 2>/dev/null
jfpr=$(GNUPGHOME=$G gpg --batch --with-colons --list-keys 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}')
GNUPGHOME=$G gpg --batch --quiet --quick-add-uid "$jfpr" 'Joe <joe@example.org>' 2>/dev/null
GNUPGHOME=$G gpg --batch --armor --export "$jfpr" >"$TMP/joe.asc" 2>/dev/null
GNUPGHOME=$G gpgconf --kill gpg-agent 2>/dev/null
out=$(S keys import "$TMP/joe.asc" 2>"$TMP/err")
rc=$?
check "import of a key with a malformed user ID email pins only the good one" \
	test $rc = 0 -a "$out" = "$TMP/joe.asc: 1 key, 1 address pinned" -a "$(S keys list | grep -c '^joe')" = 1
check "... and warns once, naming the malformed email quoted" clean_err 0 0
check "... as 'joe;x@example.org'" grep -qF "user ID email 'joe;x@example.org' is not a mail address" "$TMP/err"

# keys import of a file with several armored blocks: every PGP PUBLIC KEY
# BLOCK is imported (as their keys in one binary file would be); anything
# else but white space around or between them is refused, naming the file
# and line, and nothing is stored. On keyrings of their own.
kconf() { printf 'keyring {\n  path = "%s/%s.db"\n}\ngnupg_home = "%s/gnupg-%s"\n' "$TMP" "$1" "$TMP" "$1" >"$TMP/$1.conf"; }
kconf m && kconf one && kconf r
M() { "$B/bin/smpctl" -c "$TMP/m.conf" "$@"; }
R() { "$B/bin/smpctl" -c "$TMP/r.conf" "$@"; }
{ cat $K/alice.pub.asc; printf '\n\n'; cat $K/bob.pub.asc $K/carol.pub.asc; printf ' \n\t\n'; } >"$TMP/three.asc"
out=$(M keys import "$TMP/three.asc" 2>"$TMP/err")
check "import of three armored blocks imports all three keys" \
	test $? = 0 -a "$out" = "$TMP/three.asc: 3 keys, 3 addresses pinned" -a ! -s "$TMP/err"
check "... each pinned to its address" \
	test "$(M keys list --state pinned | awk '{print $1}' | sort | tr '\n' ' ')" = "alice@example.org bob@example.net carol@example.com "
# each block goes the same way as the same key imported alone
"$B/bin/smpctl" -c "$TMP/one.conf" keys import $K/carol.pub.asc >/dev/null
check "... stored as the key imported from its own file is" \
	cmp -s <(M keys export carol@example.com) <("$B/bin/smpctl" -c "$TMP/one.conf" keys export carol@example.com)
cat $K/alice.pub.gpg $K/bob.pub.gpg >"$TMP/two.gpg"
sed 's/$/\r/' "$TMP/three.asc" >"$TMP/three-crlf.asc"
check "... the same as a binary file of those keys, and with CRLF lines" \
	test "$(M keys import "$TMP/two.gpg")" = "$TMP/two.gpg: 2 keys, 2 addresses pinned" -a \
	"$(M keys import "$TMP/three-crlf.asc")" = "$TMP/three-crlf.asc: 3 keys, 3 addresses pinned"
out=$(R keys import "$TMP/three.asc" --address bob@example.net)
check "--address with several blocks pins the one key with that user ID" \
	test $? = 0 -a "$out" = "$TMP/three.asc: 3 keys, 1 address pinned" -a \
	"$(R keys list | awk '{print $1}')" = bob@example.net
R keys delete "$(R keys list --json | jq -r '.bindings[0].fingerprint')"
# refused_import FILE LINE WHAT: exit 65, one clean line naming FILE, line
# LINE and WHAT, nothing stored
refused_import() {
	R keys import "$1" >/dev/null 2>"$TMP/err"
	local rc=$?
	clean_err $rc 65 && grep -qF "$1: line $2: $3" "$TMP/err" &&
		[ "$(R stats --json | jq .keys)" = 0 ] && [ -z "$(R keys list)" ]
}
{ cat $K/alice.pub.asc; printf '\n-- \nAlice\n'; } >"$TMP/trail.asc"
al=$(wc -l <$K/alice.pub.asc)
check "text after the last block is refused (65), naming file and line, nothing stored" \
	refused_import "$TMP/trail.asc" $((al + 2)) "text outside the PGP PUBLIC KEY BLOCKs"
{ cat $K/alice.pub.asc; echo "and Bob's:"; cat $K/bob.pub.asc; } >"$TMP/between.asc"
check "text between two blocks is refused the same way" \
	refused_import "$TMP/between.asc" $((al + 1)) "text outside the PGP PUBLIC KEY BLOCKs"
{ echo "My key:"; cat $K/alice.pub.asc; } >"$TMP/before.asc"
check "text before the first block is refused the same way" \
	refused_import "$TMP/before.asc" 1 "text outside the PGP PUBLIC KEY BLOCKs"
printf 'x' >>"$TMP/three.asc"
check "one stray octet at the very end is refused" \
	refused_import "$TMP/three.asc" "$(wc -l <"$TMP/three.asc" | awk '{print $1 + 1}')" "text outside"
cat $K/alice.pub.asc $K/alice.sec.asc >"$TMP/pubsec.asc"
check "a private key block after a public one: secret key material, nothing stored" \
	refused_import "$TMP/pubsec.asc" $((al + 1)) "a PGP PRIVATE KEY BLOCK: secret key material"
{ cat $K/alice.pub.asc; printf -- '-----BEGIN PGP SIGNATURE-----\n\nQUJD\n-----END PGP SIGNATURE-----\n'; } >"$TMP/sig.asc"
check "another kind of block after a public one is refused" \
	refused_import "$TMP/sig.asc" $((al + 1)) "not a PGP PUBLIC KEY BLOCK"
{ cat $K/alice.pub.asc; printf -- '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n'; } >"$TMP/broken.asc"
check "a broken second block is refused with its armor error" \
	refused_import "$TMP/broken.asc" $((al + 1)) "no END PGP line"

printf 'keyring {\n  path = "/nonexistent-dir-%s/k.db"\n}\n' "$$" >"$TMP/bad.conf"
"$B/bin/smpctl" -c "$TMP/bad.conf" keys list >/dev/null 2>"$TMP/err"
check "an unusable database exits 78 naming it" test $? = 78 -a "$(grep -c nonexistent-dir "$TMP/err")" = 1
