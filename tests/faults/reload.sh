#!/bin/bash
# shellcheck disable=SC2154 # C_*, SINK_*, SMTPD_PORT_*: set by lib.sh (printf -v)
# tests/faults/reload.sh - fault scenario (1): a reload that tightens the
# policy in the middle of a burst over reused SMTP connections.
#
#   B=build bash tests/faults/reload.sh     (as root)
#
# The milter starts with bob@example.net at encrypt = off. FAULTS_RELOAD_N
# (default 200) messages to bob are submitted to "out" at FAULTS_RELOAD_RATE
# a second (default 25) over two sessions; "out" relays them to mx over
# connections it keeps open and reuses. Once a fifth of them has arrived
# (in plain), the config is rewritten with bob at encrypt = required and
# the milter gets SIGHUP; the test waits for "configuration reloaded" in its
# log. SPEC.md 3: the new config applies to every message decided after
# that line, also on SMTP sessions that were already open.
#
# Attribution: the milter logs one line per message with mx's queue ID,
# after its decision; the lines after the "configuration reloaded" line are
# the messages decided after the reload. Each sink dump carries mx's queue
# ID in mx's Received: header. Counted: every message whose queue ID was
# logged after the reload and that reached the sink in plain
# (plaintext_after_reload, must be 0), and (from mx's maillog: smtpd PID,
# "connect from" .. "disconnect from") how many SMTP sessions carried
# messages decided both before and after the reload (must be >= 1, else the
# scenario did not test reused sessions).
#
# Prints "# reload: sent=N delivered=N lost=0 duplicates=0
# plaintext_after_reload=0 ...".
# shellcheck source=tests/faults/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

N=${FAULTS_RELOAD_N:-200}
RATE=${FAULTS_RELOAD_RATE:-25}
P=reload

fl_begin reload
fl_topology "$FL_BASE" "$FL_BOB_OFF"

fl_send "$P" "$N" "$RATE" --sessions 2
started() { [ "$(fl_at_sink "$P")" -ge $((N / 5)) ]; }
if ! pf_wait "$FL_WAIT" started; then
	not_ok "the burst is under way before the reload" "only $(fl_at_sink "$P") at the sink"
fi
at_reload=$(fl_at_sink "$P")
if pf_milter_reload "$FL_BASE" "$FL_BOB_REQ"; then
	ok "mid-burst ($at_reload of $N at the sink) SIGHUP with bob at encrypt = required: 'configuration reloaded' logged"
else
	not_ok "mid-burst SIGHUP with bob at encrypt = required: 'configuration reloaded' logged"
fi
sent_ok=yes
fl_send_wait || sent_ok=no
check "'out' accepted all $N messages ($(cat "$WORK/$P.send"))" test "$sent_ok" = yes
fl_drain "$P" || pf_log "not drained after ${FL_WAIT}s: at sink $(fl_at_sink "$P"), out queue $(pf_queue_count out), mx queue $(pf_queue_count mx)"

line=$(python3 "$FL_PY" split-log --log "$PF_MILTER_LOG" --marker "configuration reloaded" \
	--before "$WORK/before.qids" --after "$WORK/after.qids")
fl_count "$P" --after "$WORK/after.qids" --list-plain 2>"$WORK/plain.list"
sess=$(python3 "$FL_PY" sessions --maillog "$PF_TMP/mx/log/maillog" \
	--before "$WORK/before.qids" --after "$WORK/after.qids")
read -r spanning after_on all_sessions <<<"$sess"
decided_after=$(grep -c . "$WORK/after.qids")
plain_before=$((C_plaintext - C_after_plaintext))
echo "# reload: sent=$C_sent delivered=$C_delivered lost=$C_lost duplicates=$C_duplicates plaintext_after_reload=$C_after_plaintext" \
	"(decided after the reload: $decided_after, delivered: $C_after; plain before it: $plain_before;" \
	"SMTP sessions of mx: $all_sessions, spanning the reload: $spanning, carrying $after_on of the later ones)"

check "the burst started in plain (bob at encrypt = off): $plain_before plain before the reload" \
	test "$plain_before" -gt 0
check "messages were decided after the reload line (milter log line $line): $decided_after, $C_after delivered" \
	test "$line" -gt 0 -a "$C_after" -gt 0
if [ "${spanning:-0}" -gt 0 ]; then
	ok "reused connections: $spanning SMTP sessions of mx carried messages decided before and after the reload ($after_on after)"
else
	not_ok "reused connections: SMTP sessions of mx carried messages decided before and after the reload" \
		"spanning=$spanning of $all_sessions sessions"
fi
if [ "$C_after_plaintext" = 0 ]; then
	ok "0 plaintext messages to bob decided after the reload line (of $C_after)"
else
	not_ok "0 plaintext messages to bob decided after the reload line: $C_after_plaintext of $C_after plain" \
		"$(head -5 "$WORK/plain.list" | tr '\n' ' ')" \
		"milter log after the reload: $(grep -c 'direction=outbound smp=no forged=0 action=pass' <(tail -n +"$line" "$PF_MILTER_LOG")) lines without encrypt=, $(grep -c 'encrypt=pgp-mime' <(tail -n +"$line" "$PF_MILTER_LOG")) with encrypt=pgp-mime"
fi
fl_exact reload
check "no bounce at 'out'" test "$(fl_bounced)" = 0

fl_end
