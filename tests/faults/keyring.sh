#!/bin/bash
# shellcheck disable=SC2154 # C_*, SINK_*, SMTPD_PORT_*: set by lib.sh (printf -v)
# tests/faults/keyring.sh - fault scenario (2): the keyring database file
# is deleted and restored, replaced by a rename, overwritten with garbage
# and restored, while mail flows, without restarting smp-milter.
#
#   B=build bash tests/faults/keyring.sh     (as root)
#
# bob@example.net is at encrypt = required (his key is in the keyring),
# harvest.sources = {smp, autocrypt} with harvest.outbound = true. The
# keyring is $PF_TMP/milter/keyring.db. For each case a stream of
# FAULTS_KEYRING_N (default 60) messages to bob goes to "out" at
# FAULTS_KEYRING_RATE a second (default 10); once a few have arrived:
#
#   delete   rm keyring.db; FAULTS_KEYRING_BROKEN seconds (default 3) at
#            least, and until "out" saw a 4xx from mx (15 s at most); then
#            restored: a copy made before (sqlite3 backup API) renamed into
#            place
#   rename   a copy of the current database (backup API) renamed over
#            keyring.db (never broken: no 4xx required)
#   garbage  keyring.db overwritten in place with 64 KiB of random octets;
#            broken and restored like "delete"
#
# Then postqueue -f at "out". Checked for each case: while broken mx
# answered 4xx (deferred at "out", nothing bounced) and a milter log line
# since the break names the keyring file; every Message-ID delivered
# exactly once, none in plain; the milter is the same process (no
# restart); and a key harvested after the recovery (an Autocrypt: header
# from carol, alice, dave) is in "smpctl keys show ADDRESS" (times_seen 1,
# that message's Message-ID) - smpctl opens keyring.db by its path, so the
# key must have been stored in the file that is there now. Then a second
# message with the same key (a later Date).
#
# Durability, at the end of each case: smp-milter is stopped (SIGTERM: its
# SQLite connections close and checkpoint), and keyring.db must pass
# PRAGMA integrity_check, hold bob's key, and the harvested binding with
# times_seen 2 and the second message's Message-ID.
# (This is needed: SQLite finds the WAL by the file's name, so a milter
# still writing through a connection to the deleted or renamed-over file
# shares keyring.db-wal with the new file: smpctl sees its writes, and
# checkpoints them into the new file when it closes, but what the milter
# writes after that goes to the old file or a WAL that is gone.)
# Then the milter is started again for the next case, with a good keyring
# (put back, and said so, if the case left it broken). "out" drops idle
# connections after 2 s and the test waits 3 s before the stop, so no SMTP
# session of mx outlives the milter process it was opened with.
#
# Prints "# keyring-CASE: sent=N delivered=N lost=0 duplicates=0
# plaintext=0 deferred_4xx=M".
# shellcheck source=tests/faults/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

N=${FAULTS_KEYRING_N:-60}
RATE=${FAULTS_KEYRING_RATE:-10}
BROKEN=${FAULTS_KEYRING_BROKEN:-3}
CONF=("$FL_BASE" "$FL_BOB_REQ" "$FL_HARVEST")

fl_begin keyring
FL_CACHE_TIME=2s fl_topology "${CONF[@]}"
KR=$PF_MILTER_KEYRING

# put_back GOOD: GOOD copied next to keyring.db and renamed over it.
put_back() {
	cp "$1" "$KR.restore" && mv -f "$KR.restore" "$KR"
}

# run_case NAME BROKEN(yes|no) HARVEST_ADDRESS HARVEST_KEY
run_case() {
	local name=$1 broken=$2 addr=$3 key=$4 P=kr-$1 out_mark log_mark
	local deferred replies named t0 good=$WORK/good-$1.db pid0 integ at_break at_restore b f0=$failed

	fl_send "$P-warm" 1 0
	fl_send_wait
	fl_drain "$P-warm" 30 || pf_log "$name: the warm-up message did not arrive"
	pid0=$PF_MILTER_PID
	python3 "$FL_PY" backup --db "$KR" --to "$good" || pf_die "cannot copy $KR"
	fl_send "$P" "$N" "$RATE"
	# shellcheck disable=SC2016
	pf_wait "$FL_WAIT" eval '[ "$(fl_at_sink "$P")" -ge 5 ]' ||
		pf_log "$name: the stream did not start"
	log_mark=$(fl_milterlog_lines)
	out_mark=$(fl_maillog_lines out)
	at_break=$(fl_at_sink "$P")
	t0=$(date +%s)
	case $name in
	delete) rm -f "$KR" ;;
	rename)
		python3 "$FL_PY" backup --db "$KR" --to "$KR.new" || pf_die "cannot copy $KR"
		mv -f "$KR.new" "$KR"
		;;
	garbage) head -c 65536 /dev/urandom >"$KR" ;;
	esac
	if [ "$broken" = yes ]; then
		# broken for BROKEN s at least, and until out saw a 4xx (15 s at most)
		got_4xx() { [ "$(fl_deferred_4xx "$out_mark")" -gt 0 ]; }
		pf_wait 15 got_4xx
		while [ $(($(date +%s) - t0)) -lt "$BROKEN" ]; do sleep 0.2; done
		deferred=$(fl_deferred_4xx "$out_mark")
		replies=$(fl_maillog_since out "$out_mark" | grep -o 'said: 4[0-9][0-9] [0-9.]*' | sort | uniq -c | sort -rn | tr -s ' ' | tr '\n' ',')
		named=$(fl_milterlog_since "$log_mark" | grep -F -m1 "$KR")
		at_restore=$(fl_at_sink "$P")
		put_back "$good"
		fl_flush
		if [ "$deferred" -gt 0 ]; then
			ok "keyring $name: while broken ($(($(date +%s) - t0))s) mx answered 4xx and 'out' deferred ($deferred deferrals:${replies%,})"
		else
			not_ok "keyring $name: while broken mx answered 4xx and 'out' deferred" \
				"$((at_restore - at_break)) of the stream delivered while broken" \
				"milter log meanwhile: $(fl_milterlog_since "$log_mark" | grep -v 'encrypt=pgp-mime' | head -3 | tr '\n' '|')"
		fi
		if [ -n "$named" ]; then
			ok "keyring $name: the milter's log names the keyring file ($(cut -c1-200 <<<"$named"))"
		else
			not_ok "keyring $name: the milter's log names the keyring file" \
				"no line with $KR since the break; last: $(tail -1 "$PF_MILTER_LOG" | cut -c1-160)"
		fi
	fi
	sent_ok=yes
	fl_send_wait || sent_ok=no
	check "keyring $name: 'out' accepted all $N messages ($(cat "$WORK/$P.send"))" test "$sent_ok" = yes
	fl_drain "$P" || pf_log "$name: not drained after ${FL_WAIT}s: at sink $(fl_at_sink "$P"), out queue $(pf_queue_count out)"
	fl_count "$P" --list-plain 2>"$WORK/$P.plain"
	deferred=$(fl_deferred_4xx "$out_mark")
	echo "# keyring-$name: sent=$C_sent delivered=$C_delivered lost=$C_lost duplicates=$C_duplicates plaintext=$C_plaintext deferred_4xx=$deferred"
	fl_exact "keyring $name"
	if [ "$C_plaintext" = 0 ]; then
		ok "keyring $name: nothing to bob (required) arrived in plain ($C_encrypted PGP/MIME)"
	else
		not_ok "keyring $name: nothing to bob (required) arrived in plain: plaintext=$C_plaintext" \
			"$(head -3 "$WORK/$P.plain" | tr '\n' ' ')"
	fi
	# a key harvested after the recovery is in the file smpctl opens
	fl_send "$P-hv1" 1 0 --from "$addr" --autocrypt "$FL_KEYS/$key"
	fl_send_wait
	fl_drain "$P-hv1" 20 || pf_log "$name: the harvest message did not arrive"
	b=$(fl_binding "$addr")
	if [ "$b" = "1 <$P-hv1-0001@faults.smp-test.invalid>" ]; then
		ok "keyring $name: a key harvested after the recovery is in 'smpctl keys show $addr' (times_seen 1, from $P-hv1)"
	else
		not_ok "keyring $name: a key harvested after the recovery is in 'smpctl keys show $addr'" \
			"binding: $b $(head -c 200 "$WORK/show.err")" \
			"milter: $(grep 'harvest=\|harvest failed' "$PF_MILTER_LOG" | tail -1 | cut -c1-200)"
	fi
	# and the same key again, from a later message (Date one second on)
	sleep 1
	fl_send "$P-hv2" 1 0 --from "$addr" --autocrypt "$FL_KEYS/$key"
	fl_send_wait
	fl_drain "$P-hv2" 20 || pf_log "$name: the second harvest message did not arrive"
	if [ "$PF_MILTER_PID" = "$pid0" ] && pf_alive "$pid0"; then
		ok "keyring $name: recovered without a restart (smp-milter PID $pid0 ran throughout)"
	else
		not_ok "keyring $name: recovered without a restart" "smp-milter PID $pid0 is gone"
	fi

	# durability: stop the milter, look at the file
	sleep 3   # out's idle connections to mx are closed (2 s)
	pf_milter_stop
	integ=$(fl_integrity "$KR")
	b=$(fl_binding "$addr")
	if [ "$integ" = ok ] && fl_keyring_has bob@example.net && [ "$b" = "2 <$P-hv2-0001@faults.smp-test.invalid>" ]; then
		ok "keyring $name: after smp-milter stops, keyring.db passes integrity_check, has bob's key and $addr's seen twice (last from $P-hv2)"
	else
		not_ok "keyring $name: after smp-milter stops, keyring.db passes integrity_check, has bob's key and $addr's seen twice (last from $P-hv2)" \
			"integrity_check: $integ" \
			"bob: $(fl_keyring_has bob@example.net && echo yes || echo no), $addr: ${b:-none}"
	fi
	if [ "$integ" != ok ] || ! fl_keyring_has bob@example.net; then
		pf_log "$name left keyring.db broken: putting back the copy made before the case"
		put_back "$good"
	fi
	if [ "$failed" -gt "$f0" ]; then
		pf_log "$name: milter log since the break (without the encrypted ones):"
		fl_milterlog_since "$log_mark" | grep -v 'encrypt=pgp-mime(keys=1) action=pass' | head -8 | sed 's/^/#   /' >&2
	fi
	pf_milter_start "${CONF[@]}"
}

run_case delete yes carol@example.com carol.pub.gpg
run_case rename no alice@example.org alice.pub.gpg
run_case garbage yes dave@example.net dave.pub.gpg

check "no bounce at 'out'" test "$(fl_bounced)" = 0
fl_end
