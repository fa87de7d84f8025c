#!/bin/bash
# shellcheck disable=SC2154 # C_*, SINK_*, SMTPD_PORT_*: set by lib.sh (printf -v)
# tests/faults/lock.sh - fault scenario (4): another process holds
# BEGIN EXCLUSIVE on the keyring database for longer than a keyring write
# waits for it.
#
#   B=build bash tests/faults/lock.sh     (as root)
#
# The keyring is SQLite in WAL mode: a reader is not blocked by another
# connection's EXCLUSIVE transaction, a writer is. A write waits through
# the busy timeout and its retries (KR_BUSY_TIMEOUT_MS, KR_BEGIN_RETRIES,
# KR_BACKOFF_MS in lib/smp_keyring_sqlite.c: about 21 s today); the lock is
# held that long plus FAULTS_LOCK_EXTRA seconds (default 8), by python3's
# sqlite3 module in a process of its own.
#
# While it is held, two streams go to "out" for bob@example.net (encrypt =
# required): FAULTS_LOCK_BOB (default 60) plain messages from alice (keyring
# reads only) and FAULTS_LOCK_HV (default 20) messages from carol with an
# Autocrypt: header carrying her key (harvest.outbound = true: a keyring
# write per message). Expected: mx answers 4xx for a message whose write
# could not get the lock ("out" defers it, nothing is lost or bounced): at
# least one, the first harvest message reaches the milter within the
# FAULTS_LOCK_EXTRA seconds (how many more depends on how many keyring
# connections the milter has open: opening another waits for the busy
# ones, so with one open connection the others queue behind it), and
# after the release everything is delivered exactly once, none in plain,
# and carol's key is in "smpctl keys show carol@example.com" (it could only
# be stored after the release). Prints "# lock: ..." lines with the counts.
# shellcheck source=tests/faults/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

NB=${FAULTS_LOCK_BOB:-60}
NH=${FAULTS_LOCK_HV:-20}
EXTRA=${FAULTS_LOCK_EXTRA:-8}

fl_begin lock
BOUND=$(python3 "$FL_PY" busy-bound "${FAULTS_KEYRING_SRC:-$PF_ROOT/lib/smp_keyring_sqlite.c}")
HOLD=$((BOUND + EXTRA))
fl_topology "$FL_BASE" "$FL_BOB_REQ" "$FL_HARVEST"

# one message of each kind first: the milter's pool is open and warm
fl_send lockwarm 1 0
fl_send_wait
fl_drain lockwarm 30 || pf_log "the warm-up message did not arrive"

out_mark=$(fl_maillog_lines out)
log_mark=$(fl_milterlog_lines)
python3 "$FL_PY" lock --db "$PF_MILTER_KEYRING" --seconds "$HOLD" --ready "$WORK/lock.state" \
	>"$WORK/lock.out" 2>&1 &
LOCKER=$!
PF_PIDS+=("$LOCKER")
locked() { grep -q '^locked' "$WORK/lock.state" 2>/dev/null; }
if pf_wait 10 locked; then
	ok "another process holds BEGIN EXCLUSIVE on the keyring for ${HOLD}s (a write waits ${BOUND}s at most)"
else
	not_ok "another process holds BEGIN EXCLUSIVE on the keyring" "$(cat "$WORK/lock.out")"
fi

fl_send lockhv "$NH" 2 --from carol@example.com --autocrypt "$FL_KEYS/carol.pub.gpg"
HV_PID=$FL_SENDER_PID
fl_send lockbob "$NB" 6
BOB_PID=$FL_SENDER_PID

released() { grep -q '^released' "$WORK/lock.state" 2>/dev/null; }
pf_wait $((HOLD + 15)) released || pf_log "the locker did not report the release"
t_rel=$(date +%s)
out_release=$(fl_maillog_lines out)
log_release=$(fl_milterlog_lines)
at_release_hv=$(fl_at_sink lockhv)
at_release_bob=$(fl_at_sink lockbob)
sent_ok=yes
FL_SENDER_PID=$HV_PID
fl_send_wait || sent_ok=no
FL_SENDER_PID=$BOB_PID
fl_send_wait || sent_ok=no
check "'out' accepted all $NH + $NB messages ($(cat "$WORK/lockhv.send"); $(cat "$WORK/lockbob.send"))" test "$sent_ok" = yes
fl_drain lockhv || pf_log "harvest stream not drained after ${FL_WAIT}s"
fl_drain lockbob || pf_log "bob stream not drained after ${FL_WAIT}s"
t_done=$(date +%s)

deferred=$(fl_maillog_since out "$out_mark" | head -n $((out_release - out_mark)) |
	grep -c 'status=deferred (host 127\.0\.0\.1\[127\.0\.0\.1\] said: 4[0-9][0-9] ')
deferred_after=$(fl_deferred_4xx "$out_release")
milter_err=$(fl_milterlog_since "$log_mark" | head -n $((log_release - log_mark)) |
	grep -E 'action=tempfail|error' | head -1)
echo "# lock: held ${HOLD}s: deferred_4xx=$deferred while held; at the release $at_release_hv of $NH harvest and $at_release_bob of $NB" \
	"other messages delivered; after it: deferred_4xx=$deferred_after, all delivered $((t_done - t_rel))s after the release"
pf_log "milter during the lock: ${milter_err:-(nothing)}"

if [ "$deferred" -gt 0 ]; then
	ok "while the lock was held mx answered 4xx and 'out' deferred ($deferred deferrals: $(fl_maillog_since out "$out_mark" | head -n $((out_release - out_mark)) | grep -o 'said: 4[0-9][0-9] [0-9.]*' | sort | uniq -c | sort -rn | head -2 | tr -s ' ' | tr '\n' ','))"
else
	not_ok "while the lock was held mx answered 4xx and 'out' deferred" \
		"milter log during the lock: $(fl_milterlog_since "$log_mark" | head -n $((log_release - log_mark)) | grep -v '^smp-milter\[info\].*action=pass' | head -3 | tr '\n' '|')"
fi
for P in lockhv lockbob; do
	fl_count "$P" --list-plain 2>"$WORK/$P.plain"
	echo "# lock ($P): sent=$C_sent delivered=$C_delivered lost=$C_lost duplicates=$C_duplicates plaintext=$C_plaintext"
	fl_exact "lock ($P)"
	if [ "$C_plaintext" = 0 ]; then
		ok "lock ($P): nothing to bob (required) arrived in plain ($C_encrypted PGP/MIME)"
	else
		not_ok "lock ($P): nothing to bob (required) arrived in plain: plaintext=$C_plaintext" \
			"$(head -3 "$WORK/$P.plain" | tr '\n' ' ')"
	fi
done
check "no bounce at 'out'" test "$(fl_bounced)" = 0
if fl_keyring_has carol@example.com; then
	ok "recovery: carol's key, harvested from a message after the release, is in 'smpctl keys show carol@example.com'"
else
	not_ok "recovery: carol's key, harvested after the release, is in 'smpctl keys show carol@example.com'" \
		"$(cat "$WORK/show.err" "$WORK/show.json" | head -3 | tr '\n' ' ')" \
		"milter harvest lines: $(grep -c 'harvest=' "$PF_MILTER_LOG")"
fi

fl_end
