# shellcheck shell=bash disable=SC2034,SC2154
# tests/faults/lib.sh - what the fault scenarios share, on top of
# tests/postfix/lib.sh (throwaway Postfix instances, smtp-sink, smp-milter).
#
# Topology (fl_topology):
#
#   faults.py send --SMTP--> "out" --SMTP, cached--> "mx" --SMTP--> smtp-sink
#                            (no milter, retries          | smtpd_milters =
#                             every 1-2 s)                | smp-milter (unix)
#
# "out" is a Postfix instance with an smtpd on 127.0.0.1 and relayhost =
# mx; it keeps its connections to mx open and reuses them
# (smtp_connection_cache_destinations = $relayhost), so a milter connection
# of mx lives as long as such an SMTP session. "mx" has
# milter_default_action = tempfail. Mail reaches mx from 127.0.0.1, which
# smp-milter's default outbound.networks makes outbound: encryption
# applies. bob@example.net's key (fixtures/keys/bob.pub.asc) is imported
# into the milter's keyring, under the test's temp dir.
#
# Counting (fl_count): every message has a Message-ID <PREFIX-NNNN@...>;
# faults.py count reads every sink dump: delivered = distinct Message-IDs
# that were sent, lost = sent - delivered, duplicates, plaintext = dumps to
# bob that are not PGP/MIME (multipart/encrypted + X-SMP-Encrypted, and the
# body's plaintext marker not visible).
set -u
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." || exit 1
# shellcheck source=tests/postfix/lib.sh
. tests/postfix/lib.sh

FL_WAIT=${FAULTS_WAIT:-60}   # upper bound of a wait for mail, seconds
FL_KEYS=$PF_ROOT/fixtures/keys
FL_PY=$PF_ROOT/tests/faults/faults.py
FL_T0=$(date +%s)

# check DESC CMD...: ok when CMD succeeds.
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

fl_elapsed() { echo $(($(date +%s) - FL_T0)); }

# fl_begin NAME: root or skip; temp dir and cleanup trap (pf_init).
fl_begin() {
	if [ "$(id -u)" != 0 ]; then
		[ "${E2E_REQUIRE:-0}" = 1 ] && pf_die "tests/faults/$1.sh must run as root"
		echo "ok 1 - # SKIP the fault scenarios need root (real Postfix instances)"
		echo "1..1"
		exit 0
	fi
	command -v python3 >/dev/null 2>&1 || pf_die "python3 not found"
	python3 -c 'import sqlite3' 2>/dev/null || pf_die "python3 has no sqlite3 module"
	pf_init "smp-faults-$1"
	WORK=$PF_TMP/work
	mkdir -p "$WORK"
}

# The milter's configuration lines every scenario starts from.
# (key discovery off: bob's key is imported; no test domain is published)
FL_BASE=$'replay {\n  enabled = false\n}\ndiscovery {\n  methods = {off}\n}'
FL_BOB_OFF=$'encrypt {\n  default = off\n  policy "bob@example.net" {\n    encrypt = off\n  }\n}'
FL_BOB_REQ=$'encrypt {\n  default = off\n  policy "bob@example.net" {\n    encrypt = required\n  }\n}'
# harvest from our own (outbound) mail too: Autocrypt headers
FL_HARVEST=$'harvest {\n  sources = {smp, autocrypt}\n  outbound = true\n}'

# fl_topology MILTER_CONFIG_LINES...: sink, mx, out, the milter (with those
# config lines), bob's key imported. FL_OUT_EXTRA: more main.cf lines for
# "out"; FL_CACHE_TIME: how long "out" keeps an idle connection (5s).
fl_topology() {
	pf_sink_start sink
	PF_SMTPD_MILTERS="unix:$PF_TMP/milter/smp-milter.sock" \
		pf_instance_create mx "[127.0.0.1]:$SINK_PORT_sink"
	PF_SMTPD=1 PF_EXTRA_MAIN="# reuse the connections to mx
smtp_connection_cache_destinations = 127.0.0.1
smtp_connection_cache_time_limit = ${FL_CACHE_TIME:-5s}
smtp_destination_concurrency_limit = 8
smtp_initial_destination_concurrency = 8
${FL_OUT_EXTRA:-}" pf_instance_create out "[127.0.0.1]:$SMTPD_PORT_mx"
	pf_milter_start "$@"
	pf_smpctl keys import "$FL_KEYS/bob.pub.asc" >"$WORK/import.out" 2>&1 ||
		pf_die "smpctl keys import bob.pub.asc failed: $(cat "$WORK/import.out")"
	pf_instance_start mx
	pf_instance_start out
	pf_log "sink :$SINK_PORT_sink, mx :$SMTPD_PORT_mx, out :$SMTPD_PORT_out, tmp $PF_TMP"
}

# fl_send PREFIX COUNT RATE [faults.py send options...]: submits to "out"
# in the background (FL_SENDER_PID); accepted Message-IDs go to
# $WORK/PREFIX.sent, its summary to $WORK/PREFIX.send.
fl_send() {
	local prefix=$1 count=$2 rate=$3
	shift 3
	python3 "$FL_PY" send --port "$SMTPD_PORT_out" --prefix "$prefix" \
		--count "$count" --rate "$rate" --sent "$WORK/$prefix.sent" "$@" \
		>"$WORK/$prefix.send" 2>"$WORK/$prefix.send.err" &
	FL_SENDER_PID=$!
	PF_PIDS+=("$FL_SENDER_PID")
}

# fl_send_wait: waits (FL_WAIT at most) for the sender; 1 if it failed.
fl_send_wait() {
	pf_wait "$FL_WAIT" eval "! kill -0 $FL_SENDER_PID 2>/dev/null" || {
		pf_kill_pid "$FL_SENDER_PID"
		return 1
	}
	wait "$FL_SENDER_PID"
}

fl_sent() {
	if [ -f "$WORK/$1.sent" ]; then grep -c . "$WORK/$1.sent"; else echo 0; fi
}
fl_at_sink() { pf_sink_count "$SINK_DIR_sink" "Message-ID: <$1-"; }

# fl_flush: "out" retries its deferred mail now.
fl_flush() { postqueue -c "$(pf_conf out)" -f >/dev/null 2>&1; }

# fl_drain PREFIX [SECONDS]: waits until every sent message of PREFIX is at
# the sink and both queues are empty, flushing "out" every 5 s; 1 on
# timeout.
fl_drain() {
	local prefix=$1 limit=${2:-$FL_WAIT} i=0 want
	while :; do
		want=$(fl_sent "$prefix")
		if [ "$(fl_at_sink "$prefix")" -ge "$want" ] && pf_queue_empty out &&
			pf_queue_empty mx; then
			return 0
		fi
		i=$((i + 1))
		[ $i -ge $((limit * 2)) ] && return 1
		[ $((i % 10)) = 0 ] && fl_flush
		sleep 0.5
	done
}

# fl_count PREFIX [faults.py count options]: sets C_sent, C_delivered,
# C_lost, C_duplicates, C_unknown, C_plaintext, C_encrypted (and C_after,
# C_after_plaintext with --after FILE).
fl_count() {
	local prefix=$1 line kv
	shift
	line=$(python3 "$FL_PY" count --sink "$SINK_DIR_sink" --prefix "$prefix" \
		--sent "$WORK/$prefix.sent" "$@") || pf_die "faults.py count failed"
	for kv in $line; do
		printf -v "C_${kv%%=*}" '%s' "${kv#*=}"
	done
	FL_COUNTS=$line
}

# fl_maillog_lines NAME: lines in the instance's maillog so far.
fl_maillog_lines() { wc -l <"$PF_TMP/$1/log/maillog"; }
# fl_maillog_since NAME LINE: the maillog after line LINE.
fl_maillog_since() { tail -n +"$(($2 + 1))" "$PF_TMP/$1/log/maillog"; }
fl_milterlog_lines() { wc -l <"$PF_MILTER_LOG"; }
fl_milterlog_since() { tail -n +"$(($1 + 1))" "$PF_MILTER_LOG"; }

# fl_deferred_4xx SINCE: deliveries "out" deferred with a 4xx from mx
# after maillog line SINCE.
fl_deferred_4xx() {
	fl_maillog_since out "$1" | grep -c 'status=deferred (host 127\.0\.0\.1\[127\.0\.0\.1\] said: 4[0-9][0-9] '
}
fl_bounced() { grep -c 'status=bounced' "$PF_TMP/out/log/maillog"; }

# fl_exact NAME: the ok/not ok lines of the exact counts of the last
# fl_count (lost 0, duplicates 0, unknown 0, delivered = sent > 0).
fl_exact() {
	local name=$1
	if [ "$C_sent" -gt 0 ] && [ "$C_delivered" = "$C_sent" ] && [ "$C_lost" = 0 ]; then
		ok "$name: every message sent is delivered (sent=$C_sent delivered=$C_delivered lost=$C_lost)"
	else
		not_ok "$name: every message sent is delivered (sent=$C_sent delivered=$C_delivered lost=$C_lost)" \
			"out queue: $(pf_queue_count out), mx queue: $(pf_queue_count mx), bounced at out: $(fl_bounced)" \
			"$(postqueue -c "$(pf_conf out)" -p 2>/dev/null | grep -E '^ *\(' | sort | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' '|')"
	fi
	if [ "$C_duplicates" = 0 ] && [ "$C_unknown" = 0 ]; then
		ok "$name: every Message-ID arrives exactly once (duplicates=$C_duplicates)"
	else
		not_ok "$name: every Message-ID arrives exactly once (duplicates=$C_duplicates unknown=$C_unknown)"
	fi
}

# fl_integrity DB: python3's sqlite3 says PRAGMA integrity_check = ok.
fl_integrity() {
	python3 -c 'import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
r = c.execute("PRAGMA integrity_check").fetchall()
print(r[0][0] if len(r) == 1 else r)
sys.exit(0 if r == [("ok",)] else 1)' "$1" 2>&1
}

# fl_keyring_has ADDRESS: smpctl keys show ADDRESS finds a binding for it.
fl_keyring_has() {
	pf_smpctl keys show "$1" --json >"$WORK/show.json" 2>"$WORK/show.err" &&
		grep -qF "\"$1\"" "$WORK/show.json"
}

# fl_binding ADDRESS: "TIMES_SEEN MESSAGE-ID" of ADDRESS's binding as
# smpctl keys show --json has it, or "none".
fl_binding() {
	pf_smpctl keys show "$1" --json 2>"$WORK/show.err" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print("none")
    sys.exit(0)
b = [x for x in d.get("bindings", []) if x.get("address") == sys.argv[1]]
print("%s %s" % (b[0].get("times_seen"), b[0].get("message_id")) if b else "none")' "$1"
}

# fl_report_logs: on failure, the tails of the logs on stderr.
fl_report_logs() {
	[ "$failed" -gt 0 ] || return 0
	pf_log "--- smp-milter log (tail)"
	tail -25 "$PF_MILTER_LOG" | sed 's/^/# /' >&2
	pf_log "--- out maillog (tail)"
	tail -8 "$PF_TMP/out/log/maillog" | sed 's/^/# /' >&2
}

# fl_end: smp-milter stopped (SIGTERM: exit 0, no sanitizer report in its
# log); the plan; exit status.
fl_end() {
	pf_milter_stop
	check "smp-milter exits 0 on SIGTERM (exit ${PF_LAST_RC:-?})" test "${PF_LAST_RC:-}" = 0
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$PF_MILTER_LOG"; then
		not_ok "no sanitizer report in smp-milter's log" \
			"$(grep -m3 -E 'Sanitizer|runtime error:' "$PF_MILTER_LOG")"
	else
		ok "no sanitizer report in smp-milter's log"
	fi
	fl_report_logs
	pf_log "took $(fl_elapsed) s"
	echo "1..$n"
	[ "$failed" = 0 ]
}
