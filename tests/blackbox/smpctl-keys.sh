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
j=$(S stats --json)
check "stats --json counts keys, addresses and states" jqt \
	'.keys == 2 and .addresses == 2 and .bindings.pinned == 2' <<<"$j"
out=$(S keys rebuild)
check "rebuild re-imports both keys into the GnuPG cache" test "$out" = "$TMP/gnupg: 2 keys imported from the keyring"
check "the rebuilt cache holds alice's key" \
	bash -c "GNUPGHOME=$TMP/gnupg gpg --batch --with-colons --list-keys 2>/dev/null | grep -q '^fpr:::::::::$alice:'"
S keys delete alice@example.org && S keys show alice@example.org >/dev/null 2>&1
check "delete ADDRESS removes the binding" test $? = 67
S keys delete "$bob"
check "delete FPR removes the key" test "$(S stats --json | jq .keys)" = 1
S keys show xyz >/dev/null 2>"$TMP/err"
check "show of something that is neither address nor fingerprint exits 65" test $? = 65 -a "$(grep -c "'xyz' is not" "$TMP/err")" = 1
S keys pin alice@example.org 1234 >/dev/null 2>&1
check "pin with a malformed fingerprint exits 65" test $? = 65
S keys frobnicate >/dev/null 2>&1
check "an unknown keys subcommand exits 64" test $? = 64
S keys pin only-one-argument >/dev/null 2>&1
check "a missing argument exits 64" test $? = 64
printf 'keyring {\n  path = "/nonexistent-dir-%s/k.db"\n}\n' "$$" >"$TMP/bad.conf"
"$B/bin/smpctl" -c "$TMP/bad.conf" keys list >/dev/null 2>"$TMP/err"
check "an unusable database exits 78 naming it" test $? = 78 -a "$(grep -c nonexistent-dir "$TMP/err")" = 1
