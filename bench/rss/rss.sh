#!/bin/bash
# bench/rss/rss.sh - smp-milter's resident memory with a big keyring and
# many concurrent sessions, on one crypto engine (issue 9's goal, rnp
# engine: "RSS under 64 MB with 100k keys in the keyring and 100
# concurrent sessions"). Printed, never asserted.
#
#   B=build bash bench/rss/rss.sh      (or: make bench-rss)
#
# 1. $B/bench/bench_rss_fill fills a fresh SQLite keyring (in a mktemp
#    directory) with BENCH_RSS_KEYS keys (100,000) and one address binding
#    each; BENCH_RSS_REAL (2,000) of them are real ed25519/cv25519 keys.
# 2. smp-milter starts on it (unix socket in that directory, no privilege
#    drop, crypto.engine = BENCH_RSS_ENGINE (rnp), encrypt { default =
#    opportunistic }, log_level info to a file).
# 3. BENCH_RSS_SESSIONS (100) miltertest clients (bench/rss/client.lua)
#    connect as outbound clients; once all are connected (or after 20 s)
#    they each send BENCH_RSS_MESSAGES (20) messages on their one
#    connection, plain text and PDF attachment in turn, each to a random
#    one of the real-keyed addresses: every message is a keyring lookup and
#    an encryption, and each pool slot's key cache fills up
#    (crypto.cache_keys, 256 per slot by default; BENCH_RSS_CACHE_KEYS
#    sets it).
# VmHWM is reset (clear_refs 5) just before the clients connect; VmRSS,
# threads and open connections are sampled every 50 ms while they run.
# No root, no Postfix. About 10 seconds.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
MILTER=$PWD/$B/bin/smp-milter
FILL=$PWD/$B/bench/bench_rss_fill
KEYS=${BENCH_RSS_KEYS:-100000}
REAL=${BENCH_RSS_REAL:-2000}
SESSIONS=${BENCH_RSS_SESSIONS:-100}
MESSAGES=${BENCH_RSS_MESSAGES:-20}
ENGINE=${BENCH_RSS_ENGINE:-rnp}
CACHE=${BENCH_RSS_CACHE_KEYS:-} # crypto.cache_keys; empty: the default
for x in "$MILTER" "$FILL"; do
	[ -x "$x" ] || { echo "bench-rss: $x not built" >&2; exit 1; }
done
command -v miltertest >/dev/null || { echo "bench-rss: skipped (no miltertest)"; exit 0; }

D=$(mktemp -d /tmp/smp-bench-rss.XXXXXX)
MPID=
CPIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local p
	for p in "${CPIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "$MPID" ]; then
		kill "$MPID" 2>/dev/null
		wait "$MPID" 2>/dev/null
	fi
	rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== smp-milter resident memory: $KEYS keys in the keyring, $SESSIONS concurrent milter sessions, crypto.engine = $ENGINE${CACHE:+, crypto.cache_keys = $CACHE}"
"$FILL" --db "$D/keyring.db" --keys "$KEYS" --real "$REAL" || exit 1
echo "   keyring file: $(du -m "$D/keyring.db" | cut -f1) MB"

cat >"$D/smp-milter.conf" <<CONF
socket = "unix:$D/smp-milter.sock"
user = ""
group = ""
pidfile = ""
log_level = "info"
keyring {
  path = "$D/keyring.db"
}
gnupg_home = "$D/gnupg"
crypto {
  engine = $ENGINE
$([ -n "$CACHE" ] && echo "  cache_keys = $CACHE")
}
encrypt {
  default = opportunistic
}
discovery {
  methods = {off}
}
CONF
# miltertest reads each end-of-message request into a 1024-octet buffer
SMP_MILTER_BODY_CHUNK=900 "$MILTER" -f -c "$D/smp-milter.conf" >"$D/smp-milter.log" 2>&1 &
MPID=$!
for _ in $(seq 200); do [ -S "$D/smp-milter.sock" ] && break; sleep 0.1; done
[ -S "$D/smp-milter.sock" ] || { echo "bench-rss: smp-milter did not start:" >&2; cat "$D/smp-milter.log" >&2; exit 1; }

kb() { awk -v k="^$2:" '$0 ~ k { print $2 }' "/proc/$1/status" 2>/dev/null; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
conns() { ss -xHn 2>/dev/null | awk -v s="$D/smp-milter.sock" '$2 == "ESTAB" && $5 == s' | wc -l; }

START_RSS=$(kb "$MPID" VmRSS)
echo 5 >"/proc/$MPID/clear_refs" 2>/dev/null || echo "   (VmHWM could not be reset: it includes start-up)"
t0=$(date +%s.%N)
for i in $(seq 1 "$SESSIONS"); do
	MILTER_SOCKET="unix:$D/smp-milter.sock" FIXTURES=$PWD/fixtures RSS_GO=$D/go \
		RSS_MESSAGES=$MESSAGES RSS_REAL=$REAL RSS_ID=$i \
		miltertest -s bench/rss/client.lua >"$D/client.$i.out" 2>&1 &
	CPIDS+=($!)
done
for _ in $(seq 200); do [ "$(conns)" -ge "$SESSIONS" ] && break; sleep 0.1; done
CONNECTED=$(conns)
touch "$D/go"
peak=0 pc=0 thr=0
running() { local p; for p in "${CPIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
	r=$(kb "$MPID" VmRSS); t=$(kb "$MPID" Threads); c=$(conns)
	[ "${r:-0}" -gt "$peak" ] && peak=$r
	[ "${t:-0}" -gt "$thr" ] && thr=$t
	[ "${c:-0}" -gt "$pc" ] && pc=$c
	sleep 0.05
done
fails=0
for p in "${CPIDS[@]}"; do wait "$p" || fails=$((fails + 1)); done
CPIDS=()
t1=$(date +%s.%N)
sent=$(cat "$D"/client.*.out | awk '/^sent/ { s += $2; e += $4 } END { print s + 0, e + 0 }')
HWM=$(kb "$MPID" VmHWM)
END_RSS=$(kb "$MPID" VmRSS)
read -r s e <<<"$sent"
echo "   $SESSIONS miltertest clients x $MESSAGES messages (plain text / PDF attachment, random real-keyed recipient):"
echo "   $s messages in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, $e encrypted (pgp-mime), $fails clients failed"
echo "   sessions open at once: $CONNECTED before the start signal, up to $pc while sending; up to $thr threads"
echo "   smp-milter peak RSS $(mib "$HWM") (VmHWM; sampled VmRSS peak $(mib "$peak")); VmRSS at start $(mib "$START_RSS"), at the end $(mib "$END_RSS")"
awk -v h="$HWM" 'BEGIN { printf "   goal: RSS under 64 MB (64 MiB) with 100k keys and 100 sessions: %s\n", (h < 65536 ? "met" : "NOT met") }'
if [ "$fails" != 0 ]; then
	echo "   first client error: $(cat "$D"/client.*.out | grep -v '^sent' | head -1)"
fi
n=$(grep -c 'internal error\|encryption failed' "$D/smp-milter.log")
[ "$n" != 0 ] && echo "   note: smp-milter logged $n internal errors / encryption failures, e.g. $(grep -m1 'internal error\|encryption failed' "$D/smp-milter.log")"
exit 0
