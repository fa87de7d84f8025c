#!/bin/bash
# shellcheck disable=SC2154 # SINK_*/SMTPD_PORT_* are set by lib.sh (printf -v)
# bench/postfix/discovery.sh - what key discovery (issue 11) costs:
#   (i)  messages/s through Postfix to recipients whose keys came from WKD
#        (looked up once before timing: the cache is warm) vs the same
#        number of messages to already-harvested recipients, in one run,
#        with the ratio (goal >= 0.95), and to recipients whose keys were
#        imported (smpctl keys import: pinned); and messages/s to
#        recipients nobody asked for before (every message one WKD lookup
#        at RCPT time: cold, end to end);
#   (ii) cold lookups per second (bench/bench_discovery.c, one struct
#        smp_disc_net as the daemon has): the whole of a lookup as the
#        milter makes it (smp_discovery_recipient: keyring check, fetch,
#        harvest rules, keyring write; 8 threads, each with its own
#        keyring connection and rnp engine, on a fresh SQLite keyring),
#        and the WKD and DANE transports alone (1 and 8 threads).
#
#   B=build BENCH_DISC_BIN=build/bench/bench_discovery bash bench/postfix/discovery.sh
#   (or: make bench-discovery; root only)
#
# Servers: tests/discovery/disc-start.sh in the temp dir (knotd with the
# DNSSEC-signed test zone, the HTTPS WKD server with its test CA; stopped
# by PID with disc-stop.sh from the EXIT trap). Keys: made here with sq
# (ed25519 + cv25519, one UID = the address; about 15 ms each), published
# in the WKD tree of wkd-adv.ZONE (advanced method) or, for DANE, as
# OPENPGPKEY records added to the signed zone through knotc (one
# transaction; knot signs them). Every address whose key goes through the
# harvest rules has its own key; the transports-only sets publish one
# shared key under every name (a transport does not read the key).
# Postfix: one throwaway instance "mx" (tests/postfix/lib.sh) with
# smp-milter (encrypt { default = off; policy ".ZONE" required },
# discovery { } pointed at the test servers) relaying to a counting
# smtp-sink. Every address of both sets is under wkd-adv.ZONE, so they
# take the same policy rule:
#   wkd  RCPTS addresses w1..wN whose keys are only in WKD; before timing
#        one message to each (the milter looks each up and stores it,
#        source wkd, state active) - checked: RCPTS bindings from wkd;
#   hv   RCPTS addresses h1..hN whose keys were harvested, published
#        nowhere: each key put through smp_harvest_message() as from an
#        inbound SMP message of its owner (bench_discovery --harvest-into,
#        into the milter's keyring): state active, source smp;
#   imp  RCPTS addresses i1..iN whose keys were imported (smpctl keys
#        import: pinned, source admin), published nowhere.
# A run: RCPTS smtp-source processes (one session each, so RCPTS
# concurrent SMTP sessions), one per recipient, MESSAGES messages in all
# (fixtures/messages/not-smp-plain.eml, each encrypted by the milter);
# msgs/s = MESSAGES / (first connection .. queue empty). ROUNDS rounds,
# each wkd, hv and imp in turn (order rotated); medians. The HTTPS
# server's log must show no GET during the timed runs (the cache decided).
# cold: COLD_PF more addresses c1..cN (WKD only), one message each, the
# same RCPTS concurrent sessions: msgs/s where every message costs a
# lookup + the harvest rules + a keyring write + the encryption.
# Numbers are printed, never asserted.
#
# Tunables: BENCH_DISC_MESSAGES (1000 per run), BENCH_DISC_ROUNDS (5),
# BENCH_DISC_RCPTS (20), BENCH_DISC_COLD_PF (200), BENCH_DISC_COLD_FULL
# (100 per method), BENCH_DISC_COLD (100: transports-only addresses per
# method for 1 thread; twice as many for 8 threads).
# About 80 s here (make bench-discovery stops it after 175 s at most).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/postfix/lib.sh
. tests/postfix/lib.sh

MESSAGES=${BENCH_DISC_MESSAGES:-1000}
ROUNDS=${BENCH_DISC_ROUNDS:-5}
RCPTS=${BENCH_DISC_RCPTS:-20}
COLD_PF=${BENCH_DISC_COLD_PF:-200}
COLD=${BENCH_DISC_COLD:-100}
COLD_FULL=${BENCH_DISC_COLD_FULL:-100}
BENCH_DISC_BIN=${BENCH_DISC_BIN:-$B/bench/bench_discovery}
RUN_LIMIT=120 # seconds, upper bound of one run
MSG=fixtures/messages/not-smp-plain.eml

if [ "$(id -u)" != 0 ]; then
	echo "bench-discovery: skipped (throwaway Postfix instances need root)"
	exit 0
fi
for t in sq knotd knotc keymgr openssl python3; do
	command -v "$t" >/dev/null 2>&1 || pf_die "$t not found (make deps)"
done
[ -x "$BENCH_DISC_BIN" ] || pf_die "$BENCH_DISC_BIN not built"
[ -f "$MSG" ] || pf_die "$MSG missing"
T0=$(date +%s)
pf_init smp-bdisc
DISC=$PF_TMP/disc
WORK=$PF_TMP/work
mkdir -p "$WORK"
disc_cleanup() {
	local rc=$?
	[ -f "$DISC/knotd.pid" ] || [ -f "$DISC/server.pid" ] &&
		tests/discovery/disc-stop.sh "$DISC" --keep >/dev/null 2>&1
	(exit "$rc")
	pf_cleanup
}
trap disc_cleanup EXIT

tests/discovery/disc-start.sh "$DISC" >"$WORK/disc-start.out" 2>&1 ||
	pf_die "tests/discovery/disc-start.sh failed: $(tail -5 "$WORK/disc-start.out" | tr '\n' '|')"
# shellcheck source=/dev/null
. "$DISC/env"
SLOG=$DISC/server.log
ALICE=$(awk -F'\t' '$2 == "wkd-advanced" { print $1; exit }' "$DISC/cases.tsv")
CAROL=$(awk -F'\t' '$2 == "dane" { print $1; exit }' "$DISC/cases.tsv")
WKD_DOM=${ALICE#*@}   # wkd-adv.ZONE: its WKD host is openpgpkey.WKD_DOM
DANE_DOM=${CAROL#*@}  # dane.ZONE
ZONE=${WKD_DOM#*.}
[ -n "$ALICE" ] && [ -n "$CAROL" ] || pf_die "no wkd-advanced or dane case in $DISC/cases.tsv"

# ------------------------------------------------------------------ keys

KEYS=$WORK/keys
mkdir -p "$KEYS"
# addresses: LIST NAME PREFIX DOMAIN N
addresses() {
	local i
	for i in $(seq 1 "$4"); do echo "$2$i@$3"; done >"$WORK/$1.list"
}
addresses wkd w "$WKD_DOM" "$RCPTS"
addresses hv h "$WKD_DOM" "$RCPTS"
addresses imp i "$WKD_DOM" "$RCPTS"
addresses coldpf c "$WKD_DOM" "$COLD_PF"
addresses fullwkd f "$WKD_DOM" "$COLD_FULL"
addresses fulldane f "$DANE_DOM" "$COLD_FULL"
addresses wkd1 k "$WKD_DOM" "$COLD"
addresses wkd8 m "$WKD_DOM" $((COLD * 2))
addresses dane1 k "$DANE_DOM" "$COLD"
addresses dane8 m "$DANE_DOM" $((COLD * 2))
cat "$WORK"/{wkd,hv,imp,coldpf,fullwkd,fulldane}.list >"$WORK/all.list"
echo "shared@$WKD_DOM" >>"$WORK/all.list"
t=$(date +%s.%N)
# one key per address, UID = the address (sq key generate, 4 at a time)
# shellcheck disable=SC2016
xargs -P 4 -I{} sh -c 'sq key generate --userid "<$1>" --cannot-authenticate \
	--export "$2/$1.sec" 2>/dev/null && sq key extract-cert --binary "$2/$1.sec" >"$2/$1.pub" 2>/dev/null' \
	_ {} "$KEYS" <"$WORK/all.list"
nkeys=$(find "$KEYS" -name '*.pub' -size +0 | wc -l)
[ "$nkeys" = "$(wc -l <"$WORK/all.list")" ] || pf_die "sq made $nkeys of $(wc -l <"$WORK/all.list") keys"
KEYGEN_S=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# publish: the WKD files (advanced method) of every wkd-adv address but
# the imported ones, and one transaction of OPENPGPKEY records
python3 - "$DISC" "$KEYS" "$WORK" "$ZONE" "shared@$WKD_DOM" <<'PY' || pf_die "publishing the bench keys failed"
import base64, importlib.util, os, sys
disc, keys, work, zone, shared = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("du", "tests/discovery/disc-util.py")
du = importlib.util.module_from_spec(spec)
spec.loader.exec_module(du)
def lst(n):
    return [l.strip() for l in open(os.path.join(work, n + ".list")) if l.strip()]
def key(n, a):
    own = n not in ("wkd1", "wkd8", "dane1", "dane8")
    return open(os.path.join(keys, (a if own else shared) + ".pub"), "rb").read()
for n in ("wkd", "coldpf", "fullwkd", "wkd1", "wkd8"):
    for a in lst(n):
        local, dom = a.rsplit("@", 1)
        d = os.path.join(disc, "www", "openpgpkey." + dom, ".well-known", "openpgpkey", dom, "hu")
        os.makedirs(d, exist_ok=True)
        data = key(n, a)
        with open(os.path.join(d, du.wkdhash(local)), "wb") as f:
            f.write(data)
with open(os.path.join(work, "knotc.in"), "w") as f:
    f.write("zone-begin %s\n" % zone)
    for n in ("fulldane", "dane1", "dane8"):
        for a in lst(n):
            owner = du.daneowner(a)
            data = key(n, a)
            f.write("zone-set %s %s 3600 OPENPGPKEY %s\n"
                    % (zone, owner, base64.b64encode(data).decode()))
    f.write("zone-commit %s\n" % zone)
PY
knotc -c "$DISC/knot.conf" <"$WORK/knotc.in" >"$WORK/knotc.out" 2>&1 ||
	pf_die "knotc failed: $(grep -v '^OK' "$WORK/knotc.out" | head -3 | tr '\n' '|')"
grep -qv '^OK$' "$WORK/knotc.out" && pf_die "knotc: $(grep -v '^OK$' "$WORK/knotc.out" | head -3 | tr '\n' '|')"

# -------------------------------------------------------------- Postfix

cat >"$WORK/discovery.conf" <<EOF
on_invalid = "tag"
encrypt {
  default = off
  policy ".$ZONE" {
    encrypt = required
  }
}
discovery {
  methods = {wkd, dane}
  timeout = 5s
  ca_file = "$SMP_TEST_DISC_CA"
  https_port = $SMP_TEST_DISC_HTTPS_PORT
  dns_forwarders = {"$SMP_TEST_DISC_DNS"}
  dns_recursive = false
  dns_trust_anchor_file = "$SMP_TEST_DISC_TA"
}
EOF
PF_SINK_NODUMP=1 pf_sink_start sink
PF_SMTPD_MILTERS="unix:$PF_TMP/milter/smp-milter.sock" pf_instance_create mx "[127.0.0.1]:$SINK_PORT_sink"
pf_milter_start "$(cat "$WORK/discovery.conf")"
while read -r a; do
	pf_smpctl keys import "$KEYS/$a.pub" >>"$WORK/import.out" 2>&1 ||
		pf_die "smpctl keys import $a failed: $(tail -2 "$WORK/import.out")"
done <"$WORK/imp.list"
"$BENCH_DISC_BIN" --harvest-into "$PF_MILTER_KEYRING" --keys "$KEYS" --addresses "$WORK/hv.list" \
	>"$WORK/harvest.out" 2>&1 || pf_die "harvesting the hv keys failed: $(tail -3 "$WORK/harvest.out" | tr '\n' '|')"
pf_instance_start mx
PORT=$SMTPD_PORT_mx

sent_count() { grep -c 'status=sent' "$PF_TMP/mx/log/maillog" 2>/dev/null; }
bad_count() { grep -cE 'status=(deferred|bounced)|milter-reject' "$PF_TMP/mx/log/maillog" 2>/dev/null; }
pgp_count() { grep -c 'encrypt=pgp-mime' "$PF_MILTER_LOG"; }
gets() { grep -c '"GET ' "$SLOG"; }
now() { date +%s.%N; }

# send LIST PER_RCPT: one smtp-source per address of LIST (one session
# each), PER_RCPT messages each; the number of failed sources
send() {
	local a pids=() fails=0 p
	while read -r a; do
		timeout "$RUN_LIMIT" smtp-source -s 1 -m "$2" -M client.smp-test.invalid \
			-f sender@example.org -t "$a" -F "$MSG" "127.0.0.1:$PORT" \
			>>"$WORK/smtp-source.log" 2>&1 &
		pids+=($!)
	done <"$WORK/$1.list"
	for p in "${pids[@]}"; do
		wait "$p" || fails=$((fails + 1))
	done
	return "$fails"
}

# run LIST PER_RCPT: "msgs/s delivered bad encrypted gets rc"
run() {
	local total s0 b0 e0 g0 t0 t2 rc
	total=$(($(wc -l <"$WORK/$1.list") * $2))
	s0=$(sent_count) b0=$(bad_count) e0=$(pgp_count) g0=$(gets)
	t0=$(now)
	send "$1" "$2"
	rc=$?
	pf_wait "$RUN_LIMIT" pf_queue_empty mx || rc=$((rc + 100))
	t2=$(now)
	awk -v t0="$t0" -v t2="$t2" -v n="$total" -v s=$(($(sent_count) - s0)) -v b=$(($(bad_count) - b0)) \
		-v e=$(($(pgp_count) - e0)) -v g=$(($(gets) - g0)) -v rc="$rc" \
		'BEGIN { printf "%.1f %d %d %d %d %d\n", n / (t2 - t0), s, b, e, g, rc }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

PER=$((MESSAGES / RCPTS))
MESSAGES=$((PER * RCPTS))
echo "== key discovery (issue 11): Postfix throughput to WKD-discovered (warm cache) vs harvested vs imported recipients"
echo "   $MESSAGES messages per run ($(basename "$MSG"), each encrypted), $RCPTS concurrent SMTP sessions"
echo "   (one smtp-source -s 1 per recipient, $PER messages each), $ROUNDS rounds, medians;"
echo "   $(nproc) CPUs; Postfix $(postconf -dh mail_version); $nkeys test keys made with sq in $KEYGEN_S s"

# warm-up: every wkd recipient looked up once (through the milter), and
# Postfix's and the milter's processes spawned for both sets
read -r wr _ wb we wg _ < <(run wkd 1)
nwkd=$(pf_smpctl keys list --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
rows = d if isinstance(d, list) else d.get("bindings", [])
print(sum(1 for b in rows if b.get("source") == "wkd"))' 2>/dev/null)
echo "   warm-up: $RCPTS messages to the wkd set at $wr msgs/s: $we encrypted, $wb deferred/rejected, $wg WKD GETs; bindings with source wkd now: ${nwkd:-?}"
run hv 1 >/dev/null
run imp 1 >/dev/null

declare -A E
configs=(wkd hv imp)
printf '   %-6s %-34s %-34s %-34s\n' round "wkd (discovered, cache warm)" "hv (harvested, active)" "imp (imported, pinned)"
for r in $(seq 1 "$ROUNDS"); do
	k=$(((r - 1) % 3))
	order=("${configs[@]:$k}" "${configs[@]:0:$k}")
	declare -A cell=()
	for c in "${order[@]}"; do
		read -r e s b enc g rc < <(run "$c" "$PER")
		E[$c]+="$e "
		note=""
		[ "$s" != "$MESSAGES" ] && note=" delivered=$s"
		[ "$enc" != "$MESSAGES" ] && note="$note encrypted=$enc"
		[ "$b" != 0 ] && note="$note deferred/rejected=$b"
		[ "$g" != 0 ] && note="$note GETs=$g"
		[ "$rc" != 0 ] && note="$note FAILED($rc)"
		cell[$c]=$(printf '%7.1f msgs/s%s' "$e" "$note")
	done
	printf '   %-6s %-34s %-34s %-34s\n' "$r" "${cell[wkd]}" "${cell[hv]}" "${cell[imp]}"
	unset cell
done
# shellcheck disable=SC2086 # split on purpose
MW=$(printf '%s\n' ${E[wkd]} | median)
# shellcheck disable=SC2086
MH=$(printf '%s\n' ${E[hv]} | median)
# shellcheck disable=SC2086
MI=$(printf '%s\n' ${E[imp]} | median)
awk -v w="$MW" -v h="$MH" -v i="$MI" 'BEGIN {
	printf "   median: wkd %.1f msgs/s, hv %.1f msgs/s, imp %.1f msgs/s\n", w, h, i
	printf "   ratio wkd/hv = %.3f (warm cache vs already-harvested; goal >= 0.95: %s); wkd/imp = %.3f\n", w / h, (w / h >= 0.95 ? "met" : "NOT met"), w / i }'

# cold, end to end: every message one lookup
split -n "l/$RCPTS" -d "$WORK/coldpf.list" "$WORK/coldpart."
g0=$(gets) s0=$(sent_count) b0=$(bad_count) e0=$(pgp_count)
t0=$(now)
pids=()
for f in "$WORK"/coldpart.*; do
	(
		while read -r a; do
			timeout "$RUN_LIMIT" smtp-source -s 1 -m 1 -M client.smp-test.invalid \
				-f sender@example.org -t "$a" -F "$MSG" "127.0.0.1:$PORT" >>"$WORK/smtp-source.log" 2>&1
		done <"$f"
	) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
pf_wait "$RUN_LIMIT" pf_queue_empty mx
t2=$(now)
echo
echo "== cold recipients through Postfix: $COLD_PF messages to $COLD_PF addresses never looked up before (WKD), $RCPTS concurrent sessions"
awk -v t0="$t0" -v t2="$t2" -v n="$COLD_PF" -v s=$(($(sent_count) - s0)) -v b=$(($(bad_count) - b0)) \
	-v e=$(($(pgp_count) - e0)) -v g=$(($(gets) - g0)) 'BEGIN {
	printf "   %.1f msgs/s (each: a WKD lookup at RCPT, the harvest rules, a keyring write, the encryption); delivered %d, encrypted %d, deferred/rejected %d, WKD GETs %d\n", n / (t2 - t0), s, e, b, g }'

# ---------------------------------------------------------- transports

echo
echo "== cold lookups per second, whole (smp_discovery_recipient: check, fetch, harvest rules, keyring write; fresh SQLite keyring, rnp)"
for m in wkd dane; do
	"$BENCH_DISC_BIN" --config "$WORK/discovery.conf" --addresses "$WORK/full$m.list" --method "$m" --threads 8 \
		--full "$WORK/full.db" | sed 's/^/   /'
done
echo
echo "== cold lookups per second, transports only (one smp_disc_net, distinct addresses)"
for m in wkd dane; do
	"$BENCH_DISC_BIN" --config "$WORK/discovery.conf" --addresses "$WORK/${m}1.list" --method "$m" --threads 1 | sed 's/^/   /'
	"$BENCH_DISC_BIN" --config "$WORK/discovery.conf" --addresses "$WORK/${m}8.list" --method "$m" --threads 8 | sed 's/^/   /'
done
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews the numbers); took $(($(date +%s) - T0)) s"
if grep -q 'internal error' "$PF_MILTER_LOG"; then
	echo "   note: smp-milter logged internal errors: $(grep -c 'internal error' "$PF_MILTER_LOG")"
fi
