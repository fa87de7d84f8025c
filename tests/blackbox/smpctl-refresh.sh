#!/bin/bash
# smpctl keys refresh [ADDRESS] (SPEC.md 6, doc/discovery.md) against the
# real discovery test servers (tests/discovery: knotd with a DNSSEC-signed
# zone, HTTPS with a test CA): run-tests.sh's (SMP_TEST_DISC_*), else our
# own, stopped by PID at exit. Prints TAP-style lines.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
TMP=$(mktemp -d)
DISC_OWN=
cleanup() {
	[ -n "$DISC_OWN" ] && tests/discovery/disc-stop.sh "$DISC_OWN"
	rm -rf "$TMP"
}
trap cleanup EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
jqt() { jq -e "$@" >/dev/null; }
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
if [ -z "${SMP_TEST_DISC_DIR:-}" ]; then
	DISC_OWN=$(mktemp -d /tmp/smpdisc.XXXXXX)
	env=$(tests/discovery/disc-start.sh "$DISC_OWN") || { notok "discovery test servers did not start"; exit 1; }
	eval "$env"
fi
D=$SMP_TEST_DISC_DIR
conf() { # conf METHODS
	cat <<CONF
keyring {
  path = "$TMP/k.db"
}
discovery {
  methods = $1
  ca_file = "$SMP_TEST_DISC_CA"
  https_port = $SMP_TEST_DISC_HTTPS_PORT
  dns_forwarders = {"$SMP_TEST_DISC_DNS"}
  dns_trust_anchor_file = "$SMP_TEST_DISC_TA"
  timeout = 2
}
encrypt {
  policy "nothing.smp.example" {
    encrypt = required
    discovery = {off}
  }
}
CONF
}
conf '{wkd, dane}' >"$TMP/c.conf"
S() { "$B/bin/smpctl" -c "$TMP/c.conf" "$@"; }
A=alice@wkd-adv.smp.example
E=erin@revoke.smp.example

out=$(S keys refresh $A)
check "refresh ADDRESS: a key published by WKD is found (exit 0)" test $? = 0
check "  and reported as have with its fingerprint and URL" \
	bash -c "grep -Eq \"^'$A': have [0-9A-F]{40} \\(?https://openpgpkey\" <<<\"\$1\" || grep -Eq \"^'$A': have [0-9A-F]{40}: https://openpgpkey\" <<<\"\$1\"" _ "$out"
j=$(S keys show $A --json)
check "keys show: source wkd, state active" \
	jqt '.bindings[0].source == "wkd" and .bindings[0].state == "active"' <<<"$j"
S keys refresh carol@dane.smp.example >/dev/null
check "refresh of a DANE-published address: source dane" \
	test "$(S keys show carol@dane.smp.example --json | jq -r '.bindings[0].source')" = dane
S keys refresh $E >/dev/null
check "erin's key found (WKD)" test "$(S keys show $E --json | jq -r '.bindings[0].state')" = active

# the owner's domain publishes the revocation; refresh of everything
wkd=$(awk -F'\t' -v a=$E '$1 == a {print $3}' "$D/cases.tsv")
cp "$D/$wkd" "$TMP/erin.keep"
cp "$D/keys/$E.revoked" "$D/$wkd"
out=$(S keys refresh)
rc=$?
cp "$TMP/erin.keep" "$D/$wkd"
check "refresh (all): exit 0" test $rc = 0
check "  and every address from the network is refreshed (3, 0 failed)" \
	grep -q "^refreshed 3 addresses, 0 failed$" <<<"$out"
check "the revocation reached the keyring: erin's binding is revoked" \
	test "$(S keys show $E --json | jq -r '.bindings[0].state')" = revoked
check "keys history shows it" bash -c "$B/bin/smpctl -c $TMP/c.conf keys history $E | grep -q revoked"
check "alice's key is unchanged" \
	test "$(S keys show $A --json | jq -r '.bindings[0].state')" = active

S keys refresh user@http500.smp.example >"$TMP/out" 2>&1
check "a lookup that fails exits 75 (EX_TEMPFAIL) and says failed" \
	bash -c "test $? = 75 && grep -q 'failed' '$TMP/out'"
j=$(S keys refresh user@servfail.smp.example --json)
check "--json: one document with the outcome" \
	jqt '.[0].address == "user@servfail.smp.example" and .[0].outcome == "failed"' <<<"$j"
S keys refresh 'not an address' >/dev/null 2>&1
check "a malformed address exits 65" test $? = 65
S keys refresh nobody@nothing.smp.example >/dev/null 2>&1
check "an address whose policy turns discovery off exits 64" test $? = 64
conf '{off}' >"$TMP/c.conf"
S keys refresh $A >/dev/null 2>&1
check "discovery.methods = {off}: refresh ADDRESS exits 64" test $? = 64
