#!/bin/bash
# shellcheck disable=SC2154 # C_*, SINK_*, SMTPD_PORT_*: set by lib.sh (printf -v)
# tests/faults/kill9.sh - fault scenario (3): smp-milter killed with SIGKILL
# in the middle of a load, then started again (a new process on the same
# socket, the same keyring).
#
#   B=build bash tests/faults/kill9.sh     (as root)
#
# bob@example.net is at encrypt = required throughout. FAULTS_KILL_N
# (default 200) messages to bob are submitted to "out" at FAULTS_KILL_RATE
# a second (default 25) over two sessions. Once a quarter has arrived the
# milter gets SIGKILL; FAULTS_KILL_DOWN seconds later (default 2) it is
# started again. mx has milter_default_action = tempfail, so while the
# milter is down (and on the SMTP sessions whose milter connection died:
# Postfix keeps such a session in tempfail mode to its end) mx answers 4xx
# and "out" defers and retries. "out" retires a reused connection after
# 10 s (smtp_connection_reuse_time_limit), so those sessions end within the
# test's bound; postqueue -f every 5 s while waiting.
#
# Exact counts: every Message-ID delivered exactly once (lost 0,
# duplicates 0), none in plain (bob is required: a message the milter
# never decided must not pass either), and at least one 4xx deferral at
# "out" while the milter was down. Prints "# kill9: sent=N delivered=N
# lost=0 duplicates=0 plaintext=0 deferred_4xx=M".
# shellcheck source=tests/faults/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

N=${FAULTS_KILL_N:-200}
RATE=${FAULTS_KILL_RATE:-25}
DOWN=${FAULTS_KILL_DOWN:-2}
P=kill9

fl_begin kill9
FL_OUT_EXTRA='smtp_connection_reuse_time_limit = 10s' fl_topology "$FL_BASE" "$FL_BOB_REQ"

fl_send "$P" "$N" "$RATE" --sessions 2
started() { [ "$(fl_at_sink "$P")" -ge $((N / 4)) ]; }
pf_wait "$FL_WAIT" started ||
	not_ok "the load is under way before the kill" "only $(fl_at_sink "$P") at the sink"
out_mark=$(fl_maillog_lines out)
old_pid=$PF_MILTER_PID
pf_milter_kill9
at_kill=$(fl_at_sink "$P")
sleep "$DOWN"
during=$(fl_at_sink "$P")
pf_milter_start "$FL_BASE" "$FL_BOB_REQ"
if [ "$PF_MILTER_PID" != "$old_pid" ] && pf_alive "$PF_MILTER_PID"; then
	ok "smp-milter killed with SIGKILL after $at_kill of $N had arrived; a new process (PID $PF_MILTER_PID) started on the same socket ${DOWN}s later"
else
	not_ok "smp-milter killed with SIGKILL and started again"
fi
sent_ok=yes
fl_send_wait || sent_ok=no
check "'out' accepted all $N messages ($(cat "$WORK/$P.send"))" test "$sent_ok" = yes
fl_drain "$P" || pf_log "not drained after ${FL_WAIT}s: at sink $(fl_at_sink "$P"), out queue $(pf_queue_count out), mx queue $(pf_queue_count mx)"

fl_count "$P" --list-plain 2>"$WORK/plain.list"
deferred=$(fl_deferred_4xx "$out_mark")
echo "# kill9: sent=$C_sent delivered=$C_delivered lost=$C_lost duplicates=$C_duplicates plaintext=$C_plaintext" \
	"deferred_4xx=$deferred (at the kill: $at_kill delivered, ${DOWN}s later: $during)"

if [ "$deferred" -gt 0 ]; then
	ok "while the milter was down mx answered 4xx and 'out' deferred ($deferred deferrals: $(fl_maillog_since out "$out_mark" | grep -o 'said: 4[0-9][0-9] [0-9.]*' | sort | uniq -c | sort -rn | head -2 | tr -s ' ' | tr '\n' ','))"
else
	not_ok "while the milter was down mx answered 4xx and 'out' deferred"
fi
fl_exact kill9
if [ "$C_plaintext" = 0 ] && [ "$C_encrypted" = "$C_delivered" ]; then
	ok "no message to bob (required) arrived in plain ($C_encrypted PGP/MIME)"
else
	not_ok "no message to bob (required) arrived in plain: plaintext=$C_plaintext, PGP/MIME $C_encrypted of $C_delivered" \
		"$(head -5 "$WORK/plain.list" | tr '\n' ' ')"
fi
check "no bounce at 'out'" test "$(fl_bounced)" = 0
check "the restarted smp-milter logged no internal error" \
	eval "! sed -n '/^--- start/h; /^--- start/!H; \${x;p}' '$PF_MILTER_LOG' | grep -q 'internal error'"

fl_end
