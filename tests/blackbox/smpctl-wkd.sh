#!/bin/bash
# smpctl wkd export DIR [--domain D] against a real SQLite keyring with the
# fixture keys: the WKD tree (hashed paths computed here independently, the
# files equal to "smpctl keys export" dearmored), only our domains, --domain,
# keys that stop being usable leave the tree, atomic and idempotent writes,
# the direct method's layout, errors and exit codes. Prints TAP-style lines.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
K=fixtures/keys
W=$TMP/www
T=$W/.well-known/openpgpkey
printf 'keyring {\n  path = "%s/k.db"\n}\ngnupg_home = "%s/gnupg"\noutbound {\n  domains = {"example.org", "Example.COM"}\n}\n' \
	"$TMP" "$TMP" >"$TMP/c.conf"
S() { "$B/bin/smpctl" -c "$TMP/c.conf" "$@"; }

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
jqt() { jq -e "$@" >/dev/null; }

# The WKD hash, written here from the draft: SHA-1 of the local part with
# ASCII letters lowered, z-base-32.
wkdhash() {
	python3 - "$1" <<'PY'
import hashlib, sys
local = sys.argv[1].encode()
local = bytes(c + 32 if 65 <= c <= 90 else c for c in local)
n = int.from_bytes(hashlib.sha1(local).digest(), "big")
al = "ybndrfg8ejkmcpqxot1uwisza345h769"
print("".join(al[(n >> (155 - 5 * i)) & 31] for i in range(32)))
PY
}
# The binary key of an armored block on stdin, into file $1.
dearmor() {
	python3 -c '
import base64, sys
lines = sys.stdin.read().splitlines()
body, started = [], False
for l in lines[lines.index([x for x in lines if x.startswith("-----BEGIN")][0]) + 1:]:
    if not started:
        started = l.strip() == ""
        continue
    if l.startswith("=") or l.startswith("-----END"):
        break
    body.append(l.strip())
sys.stdout.buffer.write(base64.b64decode("".join(body)))' >"$1"
}
fpr_of() { S keys list --json | jq -r --arg a "$1" '.bindings[] | select(.address == $a) | .fingerprint' | head -1; }
sql() { python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute(sys.argv[2]); db.commit()' "$TMP/k.db" "$1"; }
mode() { stat -c %a "$1"; }

for k in alice bob rsa3072 quoted expired; do
	S keys import $K/$k.pub.asc >/dev/null || echo "# import $k failed"
done
alice=$(fpr_of alice@example.org)
rita=$(fpr_of rita@example.com)
h_alice=$(wkdhash alice)
h_rita=$(wkdhash rita)
h_quoted=$(wkdhash '"john..doe"')
h_bob=$(wkdhash bob)
h_expired=$(wkdhash expired)

check "the hash of the draft's example is its published value" test "$(wkdhash Joe.Doe)" = iy9q119eutrkn8s1mk4r39qejnbu3n5q

out=$(S wkd export "$W")
check "export: exit 0 and the summary line" test $? = 0 -a "$out" = "wrote 3 keys for 2 domains to $W"
check "alice's key at example.org/hu/HASH" test -f "$T/example.org/hu/$h_alice"
check "rita's and the quoted local part's keys at example.com/hu/HASH" test -f "$T/example.com/hu/$h_rita" -a -f "$T/example.com/hu/$h_quoted"
S keys export alice@example.org | dearmor "$TMP/alice.bin"
S keys export rita@example.com | dearmor "$TMP/rita.bin"
S keys export '"john..doe"@example.com' | dearmor "$TMP/quoted.bin"
check "the published file is the keyring's key, binary (smpctl keys export dearmored)" \
	cmp -s "$T/example.org/hu/$h_alice" "$TMP/alice.bin"
check "the same for rita and the quoted local part" \
	bash -c "cmp -s '$T/example.com/hu/$h_rita' '$TMP/rita.bin' && cmp -s '$T/example.com/hu/$h_quoted' '$TMP/quoted.bin'"
check "the foreign domain (example.net) is not exported" \
	bash -c "[ ! -e '$T/example.net' ] && ! find '$W' -name '$h_bob' | grep -q ."
check "an expired key is not published" test ! -e "$T/example.org/hu/$h_expired"
check "each domain has an empty policy file" test -f "$T/example.org/policy" -a ! -s "$T/example.org/policy" -a -f "$T/example.com/policy"
check "directories are 0755, files 0644" test "$(mode "$W")$(mode "$T")$(mode "$T/example.org/hu")$(mode "$T/example.org/hu/$h_alice")$(mode "$T/example.com/policy")" = 755755755644644
check "two domains: no direct-method layout" test ! -e "$T/hu" -a ! -e "$T/policy"
mkdir -m 700 "$TMP/gpg"
check "gpg reads the published file: alice's fingerprint and user ID" \
	bash -c "GNUPGHOME='$TMP/gpg' gpg --batch --with-colons --show-keys '$T/example.org/hu/$h_alice' 2>/dev/null | grep -q '^fpr:::::::::$alice:' && GNUPGHOME='$TMP/gpg' gpg --batch --with-colons --show-keys '$T/example.org/hu/$h_alice' 2>/dev/null | grep -q '<alice@example.org>'"

# a second run changes nothing: no file is rewritten
ino=$(stat -c %i "$T/example.org/hu/$h_alice")
j=$(S wkd export "$W" --json)
check "a second run: same counts, every file unchanged (--json)" jqt \
	'.keys == 3 and .files == 3 and .removed == 0 and ([.domains[].written] | add) == 0 and ([.domains[].unchanged] | add) == 3 and ([.domains[].domain] == ["example.com", "example.org"]) and .direct == null' <<<"$j"
check "an unchanged file is not replaced (same inode)" test "$(stat -c %i "$T/example.org/hu/$h_alice")" = "$ino"

# an address with two usable keys: both, concatenated, by fingerprint
S keys import $K/alice-other.pub.asc >/dev/null
other=$(S keys list --json | jq -r '.bindings[] | select(.address == "alice@example.org" and .state == "pinned") | .fingerprint')
S wkd export "$W" >/dev/null
S keys export "$other" | dearmor "$TMP/other.bin"
check "a new pin replaces the published key (the old one went to conflict)" cmp -s "$T/example.org/hu/$h_alice" "$TMP/other.bin"
sql "UPDATE bindings SET state = 'pinned' WHERE address = 'alice@example.org'"
S wkd export "$W" >/dev/null
if [[ "$alice" < "$other" ]]; then cat "$TMP/alice.bin" "$TMP/other.bin"; else cat "$TMP/other.bin" "$TMP/alice.bin"; fi >"$TMP/both.bin"
check "two usable pinned keys: one file, both keys, ordered by fingerprint" cmp -s "$T/example.org/hu/$h_alice" "$TMP/both.bin"

# keys that stop being usable stop being published
S keys block "$other" >/dev/null
S wkd export "$W" >/dev/null
check "a key blocked afterwards disappears from the file" cmp -s "$T/example.org/hu/$h_alice" "$TMP/alice.bin"
S keys block "$alice" >/dev/null
out=$(S wkd export "$W")
check "with every key blocked the file is removed, and the summary says so" \
	test ! -e "$T/example.org/hu/$h_alice" -a "$out" = "wrote 2 keys for 2 domains to $W, removed 1 file no longer published"
sql "UPDATE keys SET revoked = 1 WHERE fpr = '$rita'"
S wkd export "$W" >/dev/null
check "a key revoked afterwards (as a refresh would mark it) is removed" test ! -e "$T/example.com/hu/$h_rita" -a -f "$T/example.com/hu/$h_quoted"
S keys unblock "$alice" >/dev/null
S keys pin alice@example.org "$alice" >/dev/null
S wkd export "$W" >/dev/null
check "pinned again: published again" cmp -s "$T/example.org/hu/$h_alice" "$TMP/alice.bin"
sql "UPDATE bindings SET state = 'active' WHERE address = 'alice@example.org'"
sql "UPDATE bindings SET state = 'conflict' WHERE address = 'alice@example.org' AND fpr = '$other'"
S keys unblock "$other" >/dev/null
S wkd export "$W" >/dev/null
check "an address with a binding in conflict (nothing pinned) publishes nothing" test ! -e "$T/example.org/hu/$h_alice"
sql "UPDATE bindings SET state = 'active' WHERE address = 'alice@example.org' AND fpr = '$alice'"
sql "DELETE FROM bindings WHERE address = 'alice@example.org' AND fpr = '$other'"
S wkd export "$W" >/dev/null
check "an active binding is published" cmp -s "$T/example.org/hu/$h_alice" "$TMP/alice.bin"

# what else lives in the tree: temporary leftovers go, other files stay
touch "$T/example.org/hu/.smpctl-wkd-99999-$h_alice" "$T/example.org/hu/README" "$T/example.org/hu/$h_bob"
printf 'protocol-version: 5\n' >"$T/example.org/policy"
S wkd export "$W" >/dev/null
check "a stale HASH file and a temporary leftover are removed" test ! -e "$T/example.org/hu/$h_bob" -a ! -e "$T/example.org/hu/.smpctl-wkd-99999-$h_alice"
check "a file that is no HASH name is left alone" test -e "$T/example.org/hu/README"
check "an existing policy file is kept as the administrator wrote it" test "$(cat "$T/example.org/policy")" = "protocol-version: 5"

# --domain: only that domain, and the direct method's layout for it
D=$TMP/one
out=$(S wkd export "$D" --domain EXAMPLE.org)
check "--domain: only that domain" test $? = 0 -a "$out" = "wrote 1 key for 1 domain to $D" -a ! -e "$D/.well-known/openpgpkey/example.com"
check "--domain: the advanced layout holds alice's key" cmp -s "$D/.well-known/openpgpkey/example.org/hu/$h_alice" "$TMP/alice.bin"
check "one domain: the direct layout too (hu/HASH and policy)" \
	bash -c "cmp -s '$D/.well-known/openpgpkey/hu/$h_alice' '$TMP/alice.bin' && [ -f '$D/.well-known/openpgpkey/policy' ]"
j=$(S wkd export "$D" --domain example.net --json)
check "--domain of a domain that is not ours exports it when asked" jqt \
	'.keys == 1 and .direct == "example.net" and .domains[0].domain == "example.net"' <<<"$j"
check "... and the direct layout follows it (alice's file removed, bob's written)" \
	test ! -e "$D/.well-known/openpgpkey/hu/$h_alice" -a -f "$D/.well-known/openpgpkey/hu/$h_bob"
j=$(S wkd export "$D" --domain example.net --domain example.org --json)
check "two --domain: both, and the direct layout is emptied" jqt \
	'.keys == 2 and .direct == null and .direct_removed == 1' <<<"$j"
check "... its hu/ holds no key file any more" test -z "$(ls "$D/.well-known/openpgpkey/hu")"
rm -rf "$D/.well-known/openpgpkey/hu"
ln -s example.org/hu "$D/.well-known/openpgpkey/hu"
S wkd export "$D" --domain example.net --domain example.org >/dev/null 2>"$TMP/err"
check "a symbolic link at the direct hu/ is never written through or emptied" \
	test -L "$D/.well-known/openpgpkey/hu" -a -f "$D/.well-known/openpgpkey/example.org/hu/$h_alice"
check "... and a note says so" grep -q "is a symbolic link" "$TMP/err"

# subdomains by a ".domain" entry of outbound.domains
printf 'keyring {\n  path = "%s/k.db"\n}\ngnupg_home = "%s/gnupg"\noutbound {\n  domains = {".example.org"}\n}\n' \
	"$TMP" "$TMP" >"$TMP/sub.conf"
sql "UPDATE bindings SET address = 'alice@mail.example.org' WHERE address = 'alice@example.org'"
out=$("$B/bin/smpctl" -c "$TMP/sub.conf" wkd export "$TMP/sub")
check "a .example.org entry exports each subdomain with keys, not the domain" \
	test "$out" = "wrote 1 key for 1 domain to $TMP/sub" -a -f "$TMP/sub/.well-known/openpgpkey/mail.example.org/hu/$h_alice" -a ! -e "$TMP/sub/.well-known/openpgpkey/example.org"
sql "UPDATE bindings SET address = 'alice@example.org' WHERE address = 'alice@mail.example.org'"

# errors
clean_err() { test "$1" = "$2" -a "$(wc -l <"$TMP/err")" = 1 && grep -q '^smpctl: ' "$TMP/err"; }
S wkd export >/dev/null 2>"$TMP/err"
check "no directory: exit 64, one line" clean_err $? 64
S wkd export "$W" "$D" >/dev/null 2>"$TMP/err"
check "two directories: exit 64" clean_err $? 64
S wkd export "$W" --frob >/dev/null 2>"$TMP/err"
check "an unknown option: exit 64" clean_err $? 64
S wkd export "$W" --domain >/dev/null 2>"$TMP/err"
check "--domain without a value: exit 64" clean_err $? 64
S wkd frob >/dev/null 2>"$TMP/err"
check "an unknown wkd subcommand: exit 64" clean_err $? 64
S wkd >/dev/null 2>"$TMP/err"
check "wkd without a subcommand: exit 64" clean_err $? 64
S wkd export "$W" --domain 'a/../b' >/dev/null 2>"$TMP/err"
check "a --domain that is no domain name: exit 65" clean_err $? 65
S wkd export "$W" --domain "$(printf 'x\033y.org')" >/dev/null 2>"$TMP/err"
rc=$?
check "... a control character in it: exit 65, not echoed raw" \
	bash -c "[ $rc = 65 ] && ! grep -q \$'\\033' '$TMP/err' && grep -q 'x\\\\x1by.org' '$TMP/err'"
touch "$TMP/afile"
S wkd export "$TMP/afile" >/dev/null 2>"$TMP/err"
check "DIR is a file: exit 73" clean_err $? 73
S wkd export "$TMP/no/such/dir" >/dev/null 2>"$TMP/err"
check "DIR's parent does not exist: exit 73" clean_err $? 73
mkdir -p "$TMP/ro/.well-known/openpgpkey/example.org"
touch "$TMP/ro/.well-known/openpgpkey/example.org/hu"
S wkd export "$TMP/ro" >/dev/null 2>"$TMP/err"
check "a file where hu/ should be: exit 73 naming it" \
	bash -c "clean_err() { test \$1 = \$2 -a \$(wc -l <'$TMP/err') = 1; }; clean_err $? 73 && grep -q 'example.org/hu' '$TMP/err'"
printf 'keyring {\n  path = "%s/k.db"\n}\ngnupg_home = "%s/gnupg"\n' "$TMP" "$TMP" >"$TMP/none.conf"
"$B/bin/smpctl" -c "$TMP/none.conf" wkd export "$TMP/none" >/dev/null 2>"$TMP/err"
check "no outbound.domains and no --domain: exit 78, one sentence" clean_err $? 78
check "... and nothing is created" test ! -e "$TMP/none"
printf 'keyring {\n  path = "%s/missing/k.db"\n}\noutbound {\n  domains = {"example.org"}\n}\n' "$TMP" >"$TMP/bad.conf"
"$B/bin/smpctl" -c "$TMP/bad.conf" wkd export "$TMP/bad" >/dev/null 2>"$TMP/err"
check "a keyring that cannot be opened: exit 78" clean_err $? 78
check "the usage lists wkd export" bash -c "'$B/bin/smpctl' --help | grep -q 'wkd export DIR'"
