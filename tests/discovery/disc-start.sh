#!/bin/bash
# disc-start.sh - start the throwaway servers of the key discovery tests.
#
#   tests/discovery/disc-start.sh DIR
#
# Makes everything in DIR (created, mode 0700; its path at most 80
# characters) and starts, all on 127.0.0.1 and high ports only:
#   - knotd (Debian knot), authoritative for the test zones, with its own
#     config, run directory, key and zone storage in DIR/knot (the system's
#     knotd, its config and /var/lib/knot are never used). smp.example. is
#     DNSSEC-signed by knot itself (automatic signing, one ECDSA P-256
#     key); its DS record is the trust anchor, DIR/ta.key;
#   - tests/discovery/disc-server.py: the HTTPS server (a test CA made here
#     with the openssl CLI; WKD trees per host under DIR/www, which tests
#     may change while it runs) and a DNS black hole (reads, never answers).
# The zones are under example. (RFC 2606), not test.: libunbound answers
# every name under test. (and invalid., localhost., onion.) NXDOMAIN itself
# (its default local zones) without asking anyone.
# Test keys (ed25519 + cv25519, made with sq) for the addresses below, with
# their secret keys, are in DIR/keys.
#
# Prints shell lines to eval, and writes the same to DIR/env:
#   export SMP_TEST_DISC_DIR=DIR
#   export SMP_TEST_DISC_DNS=127.0.0.1@PORT        knotd (a forwarder)
#   export SMP_TEST_DISC_BLACKHOLE=127.0.0.1@PORT  never answers
#   export SMP_TEST_DISC_HTTPS_PORT=PORT           the HTTPS server
#   export SMP_TEST_DISC_CA=DIR/ca.pem             the test CA (PEM)
#   export SMP_TEST_DISC_TA=DIR/ta.key             DS of smp.example.
# Stop with disc-stop.sh DIR (by the PIDs in DIR/knotd.pid and
# DIR/server.pid).
#
# Files in DIR:
#   cases.tsv   one line per test address: address, case, the WKD file
#               that publishes its key (relative to DIR; "-" for none),
#               its OPENPGPKEY owner name; "#" comments
#   hashes.tsv  local part and WKD hash (disc-util.py's), to check
#               smp_wkd_hash against
#   keys/ADDRESS.sec.asc  the secret key (armored, as sq made it)
#   keys/ADDRESS.pub      its certificate (binary), what is published
#   keys/erin@revoke.smp.example.revoked  that certificate with its key
#               revocation signature: copy it over the WKD file to revoke
#   www/HOST/...          the WKD trees (see disc-server.py)
#   ca.pem, ta.key, knot.conf, zones/, knotd.log, server.log
#
# The addresses and their cases (the same as cases.tsv):
#   alice@wkd-adv.smp.example   WKD advanced method (openpgpkey.wkd-adv...)
#   bob@wkd-direct.smp.example  WKD direct method only (no openpgpkey. name)
#   carol@dane.smp.example      OPENPGPKEY in the signed zone, TTL 1234
#   nobody@nothing.smp.example  nothing: the WKD host answers 404, the
#                               OPENPGPKEY name does not exist (secure
#                               NXDOMAIN, negative TTL 321)
#   x@nosuch.smp.example        no such domain at all
#   dave@wronguid.smp.example   WKD (advanced) and DANE publish a key whose
#                               only UID is mallory@elsewhere.smp.example
#   erin@revoke.smp.example     WKD advanced; a revoked copy in keys/
#   user@http500.smp.example    the WKD host answers 500
#   user@untrusted.smp.example  the WKD host's certificate is from a CA
#                               nobody trusts (tls/otherca.pem)
#   user@hang.smp.example       the WKD host accepts and never answers
#   chunk@chunked.smp.example   WKD advanced, sent without Content-Length
#   user@servfail.smp.example   servfail.smp.example. is delegated (no DS)
#                               to a zone knotd cannot load (no zone
#                               file): SERVFAIL for every name in it
#   mallet@bogus.smp.example    bogus.smp.example. is delegated with a DS
#                               that matches no key and served unsigned:
#                               DNSSEC bogus (WKD host and OPENPGPKEY);
#                               both publish mallet's key
#   ivan@unsigned.example       unsigned.example., no trust anchor covers
#                               it: OPENPGPKEY (insecure, so not a key)
#                               and WKD advanced both published
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 64; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
# knot's control socket (DIR/knot/knot.sock) must fit sun_path
if [ ${#dir} -gt 80 ]; then
	echo "disc-start: $dir is too long" >&2
	exit 64
fi
for t in knotd keymgr sq openssl python3; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "disc-start: $t is missing (make deps: knot, knot-dnssecutils, sq, openssl, python3)" >&2
		exit 69
	fi
done
mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"
rm -rf keys www zones tls knot
mkdir -p keys www zones tls knot
util() { python3 "$here/disc-util.py" "$@"; }

fail() {
	echo "disc-start: $*" >&2
	for f in knotd.log server.log; do
		[ -s "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
	done
	"$here/disc-stop.sh" "$dir" --keep
	exit 1
}

# --- keys --------------------------------------------------------------
# sq warns that its CLI is unstable on every call: not news here
sqq() { sq "$@" 2> >(grep -v 'stable CLI' >&2); }

# newkey ADDRESS [UID-ADDRESS]: keys/ADDRESS.sec.asc, keys/ADDRESS.pub
newkey() {
	local a=$1 uid=${2:-$1}
	sqq key generate --userid "<$uid>" --cannot-authenticate \
		--export "keys/$a.sec.asc" --rev-cert "keys/$a.rev.asc"
	sqq key extract-cert --binary "keys/$a.sec.asc" >"keys/$a.pub"
}

for a in alice@wkd-adv.smp.example bob@wkd-direct.smp.example carol@dane.smp.example \
	erin@revoke.smp.example chunk@chunked.smp.example mallet@bogus.smp.example \
	ivan@unsigned.example; do
	newkey "$a"
done
newkey dave@wronguid.smp.example mallory@elsewhere.smp.example
sqq dearmor "keys/erin@revoke.smp.example.rev.asc" >keys/erin.rev.bin
util revoke keys/erin@revoke.smp.example.pub keys/erin.rev.bin \
	keys/erin@revoke.smp.example.revoked
rm -f keys/erin.rev.bin

# --- WKD trees -------------------------------------------------------------
addresses="alice@wkd-adv.smp.example bob@wkd-direct.smp.example
carol@dane.smp.example nobody@nothing.smp.example x@nosuch.smp.example
dave@wronguid.smp.example erin@revoke.smp.example user@http500.smp.example
user@untrusted.smp.example user@hang.smp.example chunk@chunked.smp.example
user@servfail.smp.example mallet@bogus.smp.example ivan@unsigned.example"
# the names of every address in one python run (each one costs ~0.1 s)
declare -A wkdhash daneowner
printf '# local part\tWKD hash (tests/discovery/disc-util.py)\n' >hashes.tsv
# shellcheck disable=SC2086
while read -r a local h owner; do
	wkdhash[$a]=$h
	daneowner[$a]=$owner
	printf '%s\t%s\n' "$local" "$h" >>hashes.tsv
done < <(util names $addresses)
# more local parts, for the hash check only: case, dots, plus, UTF-8
util names Joe.Doe@x.example UPPER.lower+Tag-1@x.example \
	"$(printf 'J\303\266rg')@x.example" |
	while read -r _ local h _; do printf '%s\t%s\n' "$local" "$h"; done >>hashes.tsv
: >cases.tsv

# wkdfile ADDRESS advanced|direct: the path (relative to DIR) of its key
wkdfile() {
	local domain=${1##*@} h=${wkdhash[$1]}
	if [ "$2" = advanced ]; then
		echo "www/openpgpkey.$domain/.well-known/openpgpkey/$domain/hu/$h"
	else
		echo "www/$domain/.well-known/openpgpkey/hu/$h"
	fi
}

# publish ADDRESS CASE METHOD|- [KEYFILE]: the WKD file, a cases.tsv line
publish() {
	local a=$1 case=$2 method=$3 key=${4:-keys/$1.pub} f="-"
	if [ "$method" != - ]; then
		f=$(wkdfile "$a" "$method")
		mkdir -p "$(dirname "$f")"
		# the policy file of the method (draft section 4.5): empty
		: >"$(dirname "$(dirname "$f")")/policy"
		cp "$key" "$f"
	fi
	printf '%s\t%s\t%s\t%s\n' "$a" "$case" "$f" "${daneowner[$a]}" >>cases.tsv
}

printf '# address\tcase\tWKD file\tOPENPGPKEY owner\n' >>cases.tsv
publish alice@wkd-adv.smp.example wkd-advanced advanced
publish bob@wkd-direct.smp.example wkd-direct direct
publish carol@dane.smp.example dane -
publish nobody@nothing.smp.example nothing -
mkdir -p www/openpgpkey.nothing.smp.example/.well-known/openpgpkey/nothing.smp.example
: >www/openpgpkey.nothing.smp.example/.well-known/openpgpkey/nothing.smp.example/policy
publish x@nosuch.smp.example no-such-domain -
publish dave@wronguid.smp.example wrong-uid advanced
publish erin@revoke.smp.example revoke advanced
publish user@http500.smp.example http-500 -
publish user@untrusted.smp.example tls-untrusted -
publish user@hang.smp.example https-hang -
publish chunk@chunked.smp.example no-content-length advanced
publish user@servfail.smp.example dns-servfail -
publish mallet@bogus.smp.example dns-bogus advanced
publish ivan@unsigned.example dns-unsigned advanced
for h in http500.smp.example:500 untrusted.smp.example: hang.smp.example:hang \
	chunked.smp.example:nolength; do
	mkdir -p "www/openpgpkey.${h%%:*}"
	if [ -n "${h#*:}" ]; then
		echo "${h#*:}" >"www/openpgpkey.${h%%:*}/_behaviour"
	fi
done

# --- TLS: a test CA, a server certificate for every test host, and one
# from a second CA that nobody trusts ----------------------------------------
trusted_names="openpgpkey.wkd-adv.smp.example wkd-direct.smp.example
openpgpkey.nothing.smp.example openpgpkey.wronguid.smp.example
openpgpkey.revoke.smp.example openpgpkey.http500.smp.example
openpgpkey.hang.smp.example openpgpkey.chunked.smp.example
openpgpkey.servfail.smp.example openpgpkey.bogus.smp.example
openpgpkey.unsigned.example"
echo openpgpkey.untrusted.smp.example >tls/untrusted.names

ssl() { openssl "$@" 2>>tls/openssl.log || fail "openssl $1 failed (tls/openssl.log)"; }
# newca NAME SUBJECT
newca() {
	ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 30 -subj "/CN=$2" -keyout "tls/$1.key" -out "tls/$1.pem"
}
# newcert NAME CA NAMES...
newcert() {
	local name=$1 ca=$2 san="" n
	shift 2
	for n in "$@"; do san="$san${san:+,}DNS:$n"; done
	printf '%s\n' "subjectAltName=$san" "basicConstraints=CA:FALSE" \
		"keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" \
		>"tls/$name.ext"
	ssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=$1" -keyout "tls/$name.key" -out "tls/$name.csr"
	ssl x509 -req -in "tls/$name.csr" -CA "tls/$ca.pem" -CAkey "tls/$ca.key" \
		-CAcreateserial -days 30 -extfile "tls/$name.ext" -out "tls/$name.pem"
}
newca ca "smp discovery test CA"
newca otherca "smp discovery untrusted CA"
# shellcheck disable=SC2086
newcert server ca $trusted_names
newcert untrusted otherca openpgpkey.untrusted.smp.example
cp tls/ca.pem ca.pem

# --- DNS zones -------------------------------------------------------------
# rr ADDRESS TTL: the OPENPGPKEY record of ADDRESS's key (keys/ADDRESS.pub,
# or a third argument's file), RDATA in base64 as RFC 7929 shows it
rr() {
	local key=${3:-keys/$1.pub}
	printf '%s %s IN OPENPGPKEY %s\n' "${daneowner[$1]}" "$2" \
		"$(base64 -w 0 <"$key")"
}
bogus_ds=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
	cat <<'EOF'
$ORIGIN smp.example.
$TTL 3600
@                   SOA ns hostmaster 1 3600 600 86400 321
@                   NS ns
ns                  A 127.0.0.1
openpgpkey.wkd-adv  A 127.0.0.1
wkd-direct          A 127.0.0.1
openpgpkey.nothing  A 127.0.0.1
openpgpkey.wronguid A 127.0.0.1
openpgpkey.revoke   A 127.0.0.1
openpgpkey.http500  A 127.0.0.1
openpgpkey.untrusted A 127.0.0.1
openpgpkey.hang     A 127.0.0.1
openpgpkey.chunked  A 127.0.0.1
; bogus.smp.example.: delegated with a DS that matches no key
bogus               NS ns
; servfail.smp.example.: delegated (insecurely: no DS) to a zone knotd
; cannot load. Without the delegation the signed parent's NSEC records
; would prove, rightly, that no name below it exists
servfail            NS ns
EOF
	echo "bogus               DS 4242 13 2 $bogus_ds"
	rr carol@dane.smp.example 1234
	rr dave@wronguid.smp.example 1234
} >zones/smp.example.zone
{
	cat <<'EOF'
$ORIGIN bogus.smp.example.
$TTL 3600
@          SOA ns.smp.example. hostmaster.smp.example. 1 3600 600 86400 321
@          NS ns.smp.example.
openpgpkey A 127.0.0.1
EOF
	rr mallet@bogus.smp.example 1234
} >zones/bogus.smp.example.zone
{
	cat <<'EOF'
$ORIGIN unsigned.example.
$TTL 3600
@          SOA ns hostmaster 1 3600 600 86400 321
@          NS ns
ns         A 127.0.0.1
openpgpkey A 127.0.0.1
EOF
	rr ivan@unsigned.example 1234
} >zones/unsigned.example.zone
# servfail.smp.example.: configured, no zone file, so never loaded

# --- knotd -----------------------------------------------------------------
knot_conf() {
	cat <<EOF
# written by tests/discovery/disc-start.sh; nothing here is the system's
server:
    rundir: "$dir/knot"
    pidfile: "$dir/knot/knot.pid"
    listen: 127.0.0.1@$1
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1
control:
    listen: "$dir/knot/knot.sock"
log:
  - target: stderr
    any: info
database:
    storage: "$dir/knot"
    journal-db-max-size: 64M
    kasp-db-max-size: 16M
    timer-db-max-size: 16M
    catalog-db-max-size: 16M
policy:
  - id: test
    algorithm: ecdsap256sha256
    single-type-signing: on
    dnskey-ttl: 3600
    zone-max-ttl: 3600
    propagation-delay: 0
template:
  - id: default
    storage: "$dir/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: smp.example.
    dnssec-signing: on
    dnssec-policy: test
  - domain: bogus.smp.example.
  - domain: unsigned.example.
  - domain: servfail.smp.example.
EOF
}

knot_ok=0
for _ in 1 2 3; do
	port=$(util freeport)
	knot_conf "$port" >knot.conf
	knotd -c "$dir/knot.conf" >knotd.log 2>&1 </dev/null &
	echo $! >knotd.pid
	# up when the signed zone answers with its RRSIG, and the others too
	if util dnsprobe "$port" smp.example SOA 2 10 &&
		util dnsprobe "$port" bogus.smp.example SOA 1 5 &&
		util dnsprobe "$port" unsigned.example SOA 1 5; then
		knot_ok=1
		break
	fi
	# most likely the port was taken meanwhile: another one
	"$here/disc-stop.sh" "$dir" --keep
done
[ $knot_ok = 1 ] || fail "knotd did not answer (knotd.log)"
dns_port=$port

# the trust anchor: the DS of knot's key for smp.example.
keymgr -c "$dir/knot.conf" smp.example. ds >ta.key.tmp 2>keymgr.log ||
	fail "keymgr ds failed: $(cat keymgr.log)"
grep -q '^smp\.example\. DS ' ta.key.tmp || fail "keymgr gave no DS: $(cat ta.key.tmp)"
mv ta.key.tmp ta.key

# --- HTTPS server and DNS black hole ---------------------------------------
rm -f https.port blackhole.port
python3 "$here/disc-server.py" "$dir" >server.log 2>&1 </dev/null &
echo $! >server.pid
for _ in $(seq 100); do
	[ -s https.port ] && [ -s blackhole.port ] && break
	kill -0 "$(cat server.pid)" 2>/dev/null || fail "disc-server.py exited"
	sleep 0.05
done
[ -s https.port ] || fail "disc-server.py did not start"
https_port=$(cat https.port)
util tcpprobe "$https_port" 10 || fail "the HTTPS server does not accept"

{
	echo "export SMP_TEST_DISC_DIR=$dir"
	echo "export SMP_TEST_DISC_DNS=127.0.0.1@$dns_port"
	echo "export SMP_TEST_DISC_BLACKHOLE=127.0.0.1@$(cat blackhole.port)"
	echo "export SMP_TEST_DISC_HTTPS_PORT=$https_port"
	echo "export SMP_TEST_DISC_CA=$dir/ca.pem"
	echo "export SMP_TEST_DISC_TA=$dir/ta.key"
} >env
cat env
