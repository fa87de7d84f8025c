#!/bin/bash
# shellcheck disable=SC2154 # SINK_*/SMTPD_PORT_* are set by lib.sh (printf -v)
# bench/postfix/throughput.sh - Postfix end-to-end throughput with smp-milter
# vs a pass-through milter vs no milter vs smp-milter with outbound
# encryption on, on each crypto engine, measured in one run, and
# smp-milter's resident memory with 100 concurrent SMTP sessions.
#
#   B=build PASSMILTER=build/bench/passmilter bash bench/postfix/throughput.sh
#   (or: make bench-postfix; root only)
#
# Five throwaway Postfix instances on 127.0.0.1 (tests/postfix/lib.sh), the
# same config except smtpd_milters: "none", "pass" (bench/postfix/passmilter
# on a unix socket), "smp" (smp-milter on a unix socket, on_invalid=tag,
# log_level=info to a file; encryption off, the default), "enc" (a second
# smp-milter, the same config plus encrypt { default = opportunistic }, on
# the default crypto engine rnp, with its own keyring under
# $PF_TMP/milter-enc, into which fixtures/keys/bob.pub.asc is imported with
# smpctl keys import) and "encg" (the same as enc with crypto.engine =
# gnupg: one gpg process per encrypted message, its GnuPG home under
# $PF_TMP/milter-encg). Mail from 127.0.0.1 is outbound
# (outbound.networks default) and every message goes to bob@example.net,
# so enc and encg encrypt the plain half of the mix (PGP/MIME) and pass the
# SMP half untouched (never re-encrypted).
# All relay to one smtp-sink (no dump files).
# Per run, 4 smtp-source processes x 5 sessions = 20 concurrent SMTP sessions
# send MESSAGES messages: 1/4 plain text, 1/4 plain with a PDF attachment,
# 1/4 valid SMP (attachment form), 1/4 invalid SMP (bad armor); each message
# on its own SMTP session (smtp-source's default). Throughput = MESSAGES /
# (time from the first connection until the instance's queue is empty, i.e.
# every message was delivered to the sink). ROUNDS rounds, each running the
# five configurations in a rotated order; medians are reported, and the
# ratios enc/smp and encg/smp (what turning encryption on costs end to end,
# per engine; issue 9's goal for the default engine: >= 0.90).
# Numbers are printed, never asserted.
#
# Tunables: BENCH_POSTFIX_MESSAGES (default 1500 per run),
# BENCH_POSTFIX_ROUNDS (3; it was 5 before "enc" was added: the run stays
# bounded), BENCH_POSTFIX_MEM_MESSAGES (4000), BENCH_POSTFIX_CACHE_KEYS
# (crypto.cache_keys of enc and encg; unset: the default).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/postfix/lib.sh
. tests/postfix/lib.sh

MESSAGES=${BENCH_POSTFIX_MESSAGES:-1500}
ROUNDS=${BENCH_POSTFIX_ROUNDS:-3}
MEM_MESSAGES=${BENCH_POSTFIX_MEM_MESSAGES:-4000}
CACHE_KEYS=${BENCH_POSTFIX_CACHE_KEYS:-}
case $CACHE_KEYS in *[!0-9]* | 0*) pf_die "BENCH_POSTFIX_CACHE_KEYS: not a positive number" ;; esac
PASSMILTER=${PASSMILTER:-$B/bench/passmilter}
RUN_LIMIT=180 # seconds, upper bound of one run

if [ "$(id -u)" != 0 ]; then
	echo "bench-postfix: skipped (throwaway Postfix instances need root)"
	exit 0
fi
[ -x "$PASSMILTER" ] || pf_die "$PASSMILTER not built (make $B/bench/passmilter)"
[ -x "$PF_SMPCTL_BIN" ] || pf_die "$PF_SMPCTL_BIN not built (make $PF_SMPCTL_BIN)"
pf_init smp-bench

# ------------------------------------------------------------- the mix

FIX=fixtures/messages
MIX=()
for f in not-smp-plain.eml not-smp-pdf-attachment.eml valid-attachment-armored-key1.eml \
	bad-armor-crc-mismatch.eml; do
	[ -f "$FIX/$f" ] && MIX+=("$FIX/$f")
done
if [ ${#MIX[@]} != 4 ]; then
	# no fixtures: smtp-source's generated messages, half with the SMP subject
	pf_log "fixtures missing: using generated messages"
	MIX=(gen:plain gen:plain gen:smp gen:smp)
fi
# The memory run adds the 90 KB valid SMP message (buffered whole by smp-milter).
MEM_MIX=("${MIX[@]}")
[ -f "$FIX/valid-key-64k-exact.eml" ] && MEM_MIX[1]=$FIX/valid-key-64k-exact.eml

# ------------------------------------------------------------- set up

PF_SINK_NODUMP=1 pf_sink_start sink
RELAY="[127.0.0.1]:$SINK_PORT_sink"

mkdir -p "$PF_TMP/pass"
PASS_SOCK=$PF_TMP/pass/pass.sock
"$PASSMILTER" -p "unix:$PASS_SOCK" >"$PF_TMP/pass/pass.log" 2>&1 &
PASS_PID=$!
PF_PIDS+=("$PASS_PID")
pf_wait 20 pf_sock_ready "$PASS_SOCK" || pf_die "passmilter did not create its socket"

pf_milter_start 'on_invalid = "tag"'
SMP_PID=$PF_MILTER_PID
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
SMP_RSS_START=$(rss_kb "$SMP_PID")
PASS_RSS_START=$(rss_kb "$PASS_PID")

# enc_milter NAME ENGINE: one more smp-milter with encryption on, on ENGINE
# (its own keyring and, for gnupg, GnuPG home, under $PF_TMP/milter-NAME);
# sets ENC_SOCK_<NAME>, ENC_LOG_<NAME>, ENC_PID_<NAME>.
enc_milter() {
	local name=$1 engine=$2 dir=$PF_TMP/milter-$1 pid
	mkdir -p "$dir"
	cat >"$dir/smp-milter.conf" <<EOF
# smp-milter with outbound encryption ($engine) for bench/postfix/throughput.sh
socket = "unix:$dir/smp-milter.sock"
socket_mode = "0666"
user = ""
group = ""
pidfile = ""
log_level = "info"
on_invalid = "tag"
keyring {
  path = "$dir/keyring.db"
}
gnupg_home = "$dir/gnupg"
crypto {
  engine = $engine${CACHE_KEYS:+
  cache_keys = $CACHE_KEYS}
}
encrypt {
  default = opportunistic
}
discovery {
  methods = {off}
}
EOF
	"$PF_SMPCTL_BIN" -c "$dir/smp-milter.conf" keys import fixtures/keys/bob.pub.asc >>"$dir/smp-milter.log" 2>&1 ||
		pf_die "smpctl keys import fixtures/keys/bob.pub.asc failed (see $dir/smp-milter.log)"
	"$PF_MILTER_BIN" -f -c "$dir/smp-milter.conf" >>"$dir/smp-milter.log" 2>&1 &
	pid=$!
	PF_PIDS+=("$pid")
	pf_wait 20 pf_sock_ready "$dir/smp-milter.sock" || pf_die "smp-milter ($name) did not create its socket"
	printf -v "ENC_SOCK_$name" '%s' "$dir/smp-milter.sock"
	printf -v "ENC_LOG_$name" '%s' "$dir/smp-milter.log"
	printf -v "ENC_PID_$name" '%s' "$pid"
}
enc_milter enc rnp
enc_milter encg gnupg

PF_SMTPD_MILTERS='' pf_instance_create none "$RELAY"
PF_SMTPD_MILTERS="unix:$PASS_SOCK" pf_instance_create pass "$RELAY"
PF_SMTPD_MILTERS="unix:$PF_MILTER_SOCK" pf_instance_create smp "$RELAY"
PF_SMTPD_MILTERS="unix:$ENC_SOCK_enc" pf_instance_create enc "$RELAY"
PF_SMTPD_MILTERS="unix:$ENC_SOCK_encg" pf_instance_create encg "$RELAY"
for i in none pass smp enc encg; do pf_instance_start "$i"; done
declare -A MPID=([none]="")
MPID[pass]=$PASS_PID
MPID[smp]=$SMP_PID
MPID[enc]=$ENC_PID_enc
MPID[encg]=$ENC_PID_encg

sent_count() { grep -c 'status=sent' "$PF_TMP/$1/log/maillog" 2>/dev/null; }
bad_count() { grep -cE 'status=(deferred|bounced)|milter-reject' "$PF_TMP/$1/log/maillog" 2>/dev/null; }
now() { date +%s.%N; }

# send INSTANCE TOTAL SESSIONS_PER_SOURCE KEEP(0/1) FILES...: one smtp-source
# per file, TOTAL/#files messages each; returns the number of failed sources.
send() {
	local inst=$1 total=$2 per=$3 keep=$4 port f n pids=() fails=0 p
	shift 4
	port=SMTPD_PORT_$inst
	port=${!port}
	n=$((total / $#))
	for f in "$@"; do
		local args=(-s "$per" -m "$n" -M client.smp-test.invalid -f alice@example.org -t bob@example.net)
		[ "$keep" = 1 ] && args+=(-d)
		case $f in
		gen:plain) args+=(-l 2000 -S "Lunch on Thursday?") ;;
		gen:smp) args+=(-l 2000 -S "Secure Messenger Protocol Message") ;;
		*) args+=(-F "$f") ;;
		esac
		timeout "$RUN_LIMIT" smtp-source "${args[@]}" "127.0.0.1:$port" \
			>>"$PF_TMP/smtp-source.log" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || fails=$((fails + 1))
	done
	return "$fails"
}

# cpu_ticks PID: utime + stime of PID (all threads), in clock ticks.
cpu_ticks() { [ -n "$1" ] && awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK=$(getconf CLK_TCK)

# run INSTANCE TOTAL: prints "msgs/s smtp_msgs/s delivered bad rc milter_cpu_us_per_msg"
run() {
	local inst=$1 total=$2 t0 t1 t2 s0 b0 rc c0 c1
	s0=$(sent_count "$inst")
	b0=$(bad_count "$inst")
	c0=$(cpu_ticks "${MPID[$inst]}")
	t0=$(now)
	send "$inst" "$total" 5 0 "${MIX[@]}"
	rc=$?
	t1=$(now)
	pf_wait "$RUN_LIMIT" pf_queue_empty "$inst" || rc=$((rc + 100))
	# the queue is empty once the last "removed" is logged; "sent" precedes it
	t2=$(now)
	c1=$(cpu_ticks "${MPID[$inst]}")
	awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v n="$total" -v s=$(($(sent_count "$inst") - s0)) \
		-v b=$(($(bad_count "$inst") - b0)) -v rc="$rc" -v cpu=$((c1 - c0)) -v hz="$TICK" \
		'BEGIN { printf "%.1f %.1f %d %d %d %.0f\n", n / (t2 - t0), n / (t1 - t0), s, b, rc, cpu / hz * 1e6 / n }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "== Postfix end-to-end throughput (smp-milter vs pass-through milter vs no milter)"
echo "   $MESSAGES messages per run, 20 concurrent SMTP sessions (4 x smtp-source -s 5),"
echo "   one message per session; mix: $(for f in "${MIX[@]}"; do basename "$f"; done | tr '\n' ' ')"
echo "   milters on unix sockets; $(nproc) CPUs; Postfix $(postconf -dh mail_version)"
echo "   enc: smp-milter with encrypt { default = opportunistic } and bob's key imported, crypto.engine = rnp;"
echo "   encg: the same with crypto.engine = gnupg; crypto.cache_keys = ${CACHE_KEYS:-the default}"
echo "   recipient bob@example.net: the plain half of the mix is encrypted, the SMP half passes as is"

# pgp_count LOG: messages an encrypting milter has encrypted so far.
pgp_count() { grep -c 'encrypt=pgp-mime' "$1" 2>/dev/null; }

# warm-up: spawn each instance's daemons (and the encrypting milters'
# keyring connections and crypto engines)
for i in none pass smp enc encg; do run "$i" 200 >/dev/null; done
ENC_BEFORE=$(pgp_count "$ENC_LOG_enc")
ENCG_BEFORE=$(pgp_count "$ENC_LOG_encg")

declare -A E2E SMTP CPU
configs=(none pass smp enc encg)
printf '   %-6s %-26s %-26s %-26s %-26s %-26s\n' round "none" "pass" "smp" "enc (rnp)" "encg (gnupg)"
for r in $(seq 1 "$ROUNDS"); do
	line=$(printf '   %-6s' "$r")
	order=("${configs[@]:$(((r - 1) % ${#configs[@]}))}" "${configs[@]:0:$(((r - 1) % ${#configs[@]}))}")
	declare -A cell=()
	for c in "${order[@]}"; do
		read -r e s d b rc cpu < <(run "$c" "$MESSAGES")
		E2E[$c]+="$e "
		SMTP[$c]+="$s "
		CPU[$c]+="$cpu "
		note=""
		[ "$d" != "$MESSAGES" ] && note=" delivered=$d"
		[ "$b" != 0 ] && note="$note deferred/rejected=$b"
		[ "$rc" != 0 ] && note="$note FAILED($rc)"
		cell[$c]=$(printf '%7.1f msgs/s (smtp %6.1f)%s' "$e" "$s" "$note")
	done
	for c in "${configs[@]}"; do line+=$(printf ' %-26s' "${cell[$c]}"); done
	echo "$line"
	unset cell
done
declare -A MED
# shellcheck disable=SC2086 # the lists are split on purpose
for c in "${configs[@]}"; do
	MED[$c]=$(printf '%s\n' ${E2E[$c]} | median)
done
printf '   median end-to-end msgs/s: none %s, pass %s, smp %s\n' "${MED[none]}" "${MED[pass]}" "${MED[smp]}"
# shellcheck disable=SC2086
printf '   median milter CPU time per message (user+sys): pass %s us, smp %s us\n' \
	"$(printf '%s\n' ${CPU[pass]} | median)" "$(printf '%s\n' ${CPU[smp]} | median)"
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews msgs/s)"
awk -v n="${MED[none]}" -v p="${MED[pass]}" -v s="${MED[smp]}" 'BEGIN {
	printf "   ratio smp/pass = %.3f (goal >= 0.9: %s)\n", s / p, (s / p >= 0.9 ? "met" : "NOT met")
	printf "   ratio smp/none = %.3f, pass/none = %.3f\n", s / n, p / n }'
# shellcheck disable=SC2154 # ENC_LOG_* are set by enc_milter (printf -v)
for e in enc encg; do
	log=ENC_LOG_$e
	before=ENC_BEFORE
	[ "$e" = encg ] && before=ENCG_BEFORE
	done_n=$(($(pgp_count "${!log}") - ${!before}))
	failed_n=$(grep -c 'encryption failed' "${!log}" 2>/dev/null)
	# shellcheck disable=SC2086
	printf '   %s (encryption on, crypto.engine = %s): median %s msgs/s, milter CPU per message %s us%s;\n' \
		"$e" "$( [ "$e" = enc ] && echo rnp || echo gnupg)" "${MED[$e]}" "$(printf '%s\n' ${CPU[$e]} | median)" \
		"$( [ "$e" = encg ] && echo ' (gpg processes not included)')"
	printf '   %d of %d messages encrypted (pgp-mime), %d encryption failures\n' \
		"$done_n" $((ROUNDS * MESSAGES)) "${failed_n:-0}"
done
awk -v s="${MED[smp]}" -v e="${MED[enc]}" -v g="${MED[encg]}" 'BEGIN {
	printf "   ratio enc/smp = %.3f with rnp (goal >= 0.90: %s); encg/smp = %.3f with gnupg\n", e / s, (e / s >= 0.9 ? "met" : "NOT met"), g / s }'

# ------------------------------------------------------------- memory
# 100 concurrent SMTP sessions that stay open (smtp-source -d), so 100 milter
# connections are open at once; VmRSS/Threads sampled every 50 ms.

# conns SOCKET: established connections to a unix socket (libmilter's worker
# pool means threads are no measure of connections).
conns() { ss -xHn 2>/dev/null | awk -v s="$1" '$2 == "ESTAB" && $5 == s' | wc -l; }

# mem_run INSTANCE PID SOCKET: prints
# "peak_rss_kb peak_conns peak_threads hwm_kb rss_before_kb rss_after_kb"
mem_run() {
	local inst=$1 pid=$2 sock=$3 before peak=0 pc=0 thr=0 r t c sender
	before=$(rss_kb "$pid")
	# reset VmHWM, so that afterwards it is the peak of this run alone
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null
	send "$inst" "$MEM_MESSAGES" 25 1 "${MEM_MIX[@]}" &
	sender=$!
	while kill -0 "$sender" 2>/dev/null; do
		r=$(rss_kb "$pid")
		t=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		c=$(conns "$sock")
		[ "${r:-0}" -gt "$peak" ] && peak=$r
		[ "${t:-0}" -gt "$thr" ] && thr=$t
		[ "${c:-0}" -gt "$pc" ] && pc=$c
		sleep 0.05
	done
	wait "$sender"
	pf_wait "$RUN_LIMIT" pf_queue_empty "$inst"
	echo "$peak $pc $thr $(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status") $before $(rss_kb "$pid")"
}

echo
echo "== resident memory with 100 concurrent SMTP sessions (4 x smtp-source -s 25 -d, $MEM_MESSAGES messages)"
echo "   mix: $(for f in "${MEM_MIX[@]}"; do basename "$f"; done | tr '\n' ' ')"
read -r sp sc st sh sb sa < <(mem_run smp "$SMP_PID" "$PF_MILTER_SOCK")
read -r pp pc pt ph pb pa < <(mem_run pass "$PASS_PID" "$PASS_SOCK")
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
echo "   smp-milter: peak RSS $(mib "$sh") (VmHWM; sampled VmRSS peak $(mib "$sp")) with up to $sc open milter connections ($st threads)"
echo "               VmRSS at start $(mib "$SMP_RSS_START"), before this run $(mib "$sb"), after it $(mib "$sa")"
echo "   passmilter: peak RSS $(mib "$ph") (VmHWM; sampled VmRSS peak $(mib "$pp")) with up to $pc open milter connections ($pt threads)"
echo "               VmRSS at start $(mib "$PASS_RSS_START"), before this run $(mib "$pb"), after it $(mib "$pa")"
if grep -q 'internal error' "$PF_MILTER_LOG"; then
	echo "   note: smp-milter logged internal errors: $(grep -c 'internal error' "$PF_MILTER_LOG")"
fi
