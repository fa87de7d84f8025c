#!/bin/bash
# Harvest under concurrency (SPEC.md 4: the SQLite keyring is "safe for the
# milter and smpctl at once"): the real smp-milter daemon with a keyring and
# its own GnuPG home in a temp dir, driven by many miltertest sessions IN
# PARALLEL, while smpctl reads the same database in a loop.
#
#   B=build bash tests/blackbox/harvest-concurrency.sh
#
# - first, alone, one planting attempt (harvest-planted-uid.eml: refused,
#   no-matching-uid, nothing bound), which also sets up the GnuPG home's
#   keybox (see the warm-up below); then, all at once:
# - HC_DAVE_SESSIONS (default 20) background miltertest processes, each
#   sending harvest-dave-self-encrypted.eml (envelope sender
#   dave@example.net) HC_PER_SESSION (default 5) times on one connection:
#   the first harvest of dave's key races with its "seen" updates;
# - one session each for the other fixtures that harvest cleanly from other
#   senders (alice: harvest-alice-updated.eml; user@corp.example:
#   harvest-own-domain.eml, harvested because no outbound domain is set),
#   HC_PER_SESSION times each;
# - meanwhile a loop runs "smpctl keys list" and "smpctl keys show
#   dave@example.net --json" until the senders are done.
# Checked: every miltertest exits 0, every message gets SMFIR_CONTINUE and
# an X-SMP-Status header, the daemon logs one line per message and no
# "database is locked" / "internal error"; every smpctl run succeeds
# (exit 0 and empty stderr; "show" may exit 67 only before dave's first
# binding exists); afterwards dave has exactly one binding, active, with
# times_seen = the number of dave messages (no lost update), and no
# (address, fingerprint) pair is listed twice.
# Prints TAP-style lines and a "# figures:" comment. Every wait is bounded
# (HC_WAIT seconds, default 120); the daemon is stopped by PID. HC_KEEP=1
# keeps the temp dir (log, keyring) for a look.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
MILTER=$PWD/$B/bin/smp-milter
SMPCTL=$PWD/$B/bin/smpctl
SESSIONS=${HC_DAVE_SESSIONS:-20}
PER=${HC_PER_SESSION:-5}
WAIT=${HC_WAIT:-120}
TMP=$(mktemp -d)
PID=
LOOP_PID=
MT_PIDS=()
cleanup() {
	local p
	for p in "${MT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	[ -n "$LOOP_PID" ] && kill -9 "$LOOP_PID" 2>/dev/null
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null
		for ((i = 0; i < 50; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$PID" 2>/dev/null
	fi
	if [ "${HC_KEEP:-0}" = 1 ]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	local l
	for l in "$@"; do printf '#   %s\n' "$l"; done
}

for t in miltertest jq; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "ok 1 - # SKIP $t is not installed"
		exit 0
	fi
done
if [ ! -x "$MILTER" ] || [ ! -x "$SMPCTL" ]; then
	echo "Bail out! $MILTER / $SMPCTL not built (make)"
	exit 1
fi

CONF=$TMP/milter.conf
{
	printf 'socket = "unix:%s/milter.sock"\nuser = ""\ngroup = ""\n' "$TMP"
	printf 'pidfile = "%s/milter.pid"\nlog_level = debug\n' "$TMP"
	printf 'keyring {\n  path = "%s/k.db"\n}\ngnupg_home = "%s/gnupg"\n' "$TMP" "$TMP"
	# the same message again and again: it is not a replay here
	printf 'replay {\n  enabled = false\n}\n'
} >"$CONF"
S() { "$SMPCTL" -c "$CONF" "$@"; }

# One miltertest session: HC_COUNT times HC_FIXTURE from HC_SENDER on one
# connection; each reply must be SMFIR_CONTINUE with an X-SMP-Status
# inserted. Prints "status: <value>" per message for the log.
cat >"$TMP/session.lua" <<'EOF'
dofile(os.getenv("MT_COMMON"))
local fixture = os.getenv("HC_FIXTURE")
local count = tonumber(os.getenv("HC_COUNT"))
local tag = os.getenv("HC_TAG")
smp.sender = "<" .. os.getenv("HC_SENDER") .. ">"
local conn = smp.connect()
for i = 1, count do
	local qid = string.format("%s-%03d", tag, i)
	local reply = smp.send_fixture(conn, fixture, qid)
	smp.expect(reply == SMFIR_CONTINUE, qid .. ": SMFIR_CONTINUE (got " .. tostring(reply) .. ")")
	smp.expect(mt.eom_check(conn, MT_HDRINSERT, "X-SMP-Status"), qid .. ": X-SMP-Status inserted")
	io.stdout:write(qid .. " continue+status\n")
end
mt.disconnect(conn)
EOF
export MILTER_SOCKET="unix:$TMP/milter.sock" FIXTURES="$PWD/fixtures"
export MT_COMMON="$PWD/tests/miltertest/common.lua"

# ------------------------------------------------------------ the daemon
"$MILTER" -f -c "$CONF" >"$TMP/milter.log" 2>&1 &
PID=$!
for ((i = 0; i < WAIT * 10; i++)); do
	[ -S "$TMP/milter.sock" ] && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
if [ -S "$TMP/milter.sock" ] && kill -0 "$PID" 2>/dev/null; then
	ok "daemon started with a keyring and GnuPG home in a temp dir"
else
	notok "daemon did not start" "$(tail -5 "$TMP/milter.log")"
	echo "1..$n"
	exit 1
fi

# ------------------------------------------------------------ warm-up
# Optionally (HC_WARM=1) one message first, alone: the planting attempt
# (mallory's key whose only user ID is victim@victim.example) is refused and
# bound to nobody, and its gpg run creates the GnuPG home's keybox. By
# default the parallel sessions start on a fresh home: gpg 2.2 imports
# running in parallel on one home used to fail ("no writable keyring
# found"); lib/smp_gpg.c now serialises imports with a lock file.
if [ "${HC_WARM:-0}" = 1 ]; then
	HC_TAG=WARM HC_FIXTURE=harvest-planted-uid.eml HC_SENDER=mallory@example.net HC_COUNT=1 \
		timeout "$WAIT" miltertest -s "$TMP/session.lua" >"$TMP/mt.warm" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -qE '^smp-milter\[info\]: WARM-001: .*harvested=0; refused=1".*\[refused:no-matching-uid ' "$TMP/milter.log" &&
		S keys list --json | jq -e '.bindings | length == 0' >/dev/null; then
		ok "warm-up: the planted key (only user ID victim@victim.example) is refused, no-matching-uid, nothing bound"
	else
		notok "warm-up: the planted key is refused, no-matching-uid, nothing bound" "miltertest exit $rc" \
			"$(grep 'WARM-001' "$TMP/milter.log" | head -1)"
	fi
fi

# ------------------------------------------------------------ smpctl loop
# Runs until $TMP/stop exists (or WAIT seconds). One line per run in
# $TMP/smpctl.runs: "<what> <exit> <stderr bytes>"; stderr kept per failure.
smpctl_loop() {
	local t0=$SECONDS k=0 rc seen_dave=0
	while [ ! -e "$TMP/stop" ] && [ $((SECONDS - t0)) -lt "$WAIT" ]; do
		k=$((k + 1))
		S keys list >/dev/null 2>"$TMP/loop.err"
		rc=$?
		echo "list $rc $(wc -c <"$TMP/loop.err")" >>"$TMP/smpctl.runs"
		[ -s "$TMP/loop.err" ] && cp "$TMP/loop.err" "$TMP/loop.err.$k.list"
		S keys show dave@example.net --json >"$TMP/loop.out" 2>"$TMP/loop.err"
		rc=$?
		if [ $rc = 67 ] && [ $seen_dave = 0 ]; then
			# no binding yet: only allowed before the first successful show
			echo "show-before 0 0" >>"$TMP/smpctl.runs"
		else
			[ $rc = 0 ] && seen_dave=1
			# --json must be one valid JSON document
			if [ $rc = 0 ] && ! jq -e . "$TMP/loop.out" >/dev/null 2>&1; then
				rc=json
			fi
			echo "show $rc $(wc -c <"$TMP/loop.err")" >>"$TMP/smpctl.runs"
			[ -s "$TMP/loop.err" ] && cp "$TMP/loop.err" "$TMP/loop.err.$k.show"
		fi
	done
}
: >"$TMP/smpctl.runs"
smpctl_loop &
LOOP_PID=$!

# ------------------------------------------------------------ the senders
# session TAG FIXTURE SENDER: one background miltertest
session() {
	HC_TAG=$1 HC_FIXTURE=$2 HC_SENDER=$3 HC_COUNT=$PER \
		timeout "$WAIT" miltertest -s "$TMP/session.lua" >"$TMP/mt.$1.out" 2>&1 &
	MT_PIDS+=($!)
	TAGS+=("$1")
}
TAGS=()
T0=$(date +%s.%N)
for ((s = 1; s <= SESSIONS; s++)); do
	session "$(printf 'DAVE%02d' "$s")" harvest-dave-self-encrypted.eml dave@example.net
done
session ALICE harvest-alice-updated.eml alice@example.org
session CORP harvest-own-domain.eml user@corp.example
NDAVE=$((SESSIONS * PER))
NMSG=$(((SESSIONS + 2) * PER))

mt_fail=()
for i in "${!MT_PIDS[@]}"; do
	wait "${MT_PIDS[$i]}"
	rc=$?
	[ $rc = 0 ] || mt_fail+=("${TAGS[$i]}: exit $rc: $(grep -v 'continue+status' "$TMP/mt.${TAGS[$i]}.out" | head -3 | tr '\n' '|')")
done
MT_PIDS=()
T1=$(date +%s.%N)
touch "$TMP/stop"
wait "$LOOP_PID"
LOOP_PID=

if [ ${#mt_fail[@]} = 0 ]; then
	ok "all $((SESSIONS + 2)) parallel miltertest sessions exited 0"
else
	notok "all $((SESSIONS + 2)) parallel miltertest sessions exited 0" "${mt_fail[@]}"
fi
got=$(cat "$TMP"/mt.*.out | grep -c 'continue+status')
if [ "$got" = "$NMSG" ]; then
	ok "every one of the $NMSG messages got SMFIR_CONTINUE and an X-SMP-Status header"
else
	notok "every one of the $NMSG messages got SMFIR_CONTINUE and an X-SMP-Status header" "only $got"
fi

# one log line per message, with the harvest counts in the verdict
logged=$(grep -cE '^smp-milter\[[a-z]+\]: (DAVE[0-9]+|ALICE|CORP)-[0-9]{3}: direction=inbound smp=valid verdict="valid; .*; harvested=[0-9]+; refused=0".*action=tag' "$TMP/milter.log")
if [ "$logged" = "$NMSG" ]; then
	ok "the daemon logged $NMSG verdict lines with harvest counts and refused=0"
else
	notok "the daemon logged $NMSG verdict lines with harvest counts and refused=0" "got $logged" \
		"$(grep -E '(DAVE|ALICE|CORP)[0-9]*-[0-9]{3}:' "$TMP/milter.log" | grep -vE 'refused=0' | head -3 | tr '\n' '|')"
fi
bad=$(grep -ciE 'database is locked|internal error' "$TMP/milter.log")
if [ "$bad" = 0 ]; then
	ok "no 'database is locked' / 'internal error' in the daemon's log"
else
	notok "no 'database is locked' / 'internal error' in the daemon's log" \
		"$(grep -iE 'database is locked|internal error' "$TMP/milter.log" | head -3 | tr '\n' '|')"
fi
first=$(grep -cE '^smp-milter\[[a-z]+\]: DAVE[0-9]+-[0-9]{3}: .*harvested=1; refused=0' "$TMP/milter.log")
if [ "$first" = 1 ]; then
	ok "dave's key was harvested exactly once (harvested=1 on one message, seen on the other $((NDAVE - 1)))"
else
	notok "dave's key was harvested exactly once" "$first messages say harvested=1"
fi

# smpctl
runs=$(wc -l <"$TMP/smpctl.runs")
bad_runs=$(awk '$1 != "show-before" && ($2 != 0 || $3 != 0)' "$TMP/smpctl.runs" | wc -l)
if [ "$runs" -gt 0 ] && [ "$bad_runs" = 0 ]; then
	ok "every one of $runs concurrent smpctl runs succeeded (exit 0, nothing on stderr)"
else
	notok "every one of $runs concurrent smpctl runs succeeded (exit 0, nothing on stderr)" \
		"$bad_runs failed: $(awk '$1 != "show-before" && ($2 != 0 || $3 != 0)' "$TMP/smpctl.runs" | sort | uniq -c | tr '\n' '|')" \
		"$(cat "$TMP"/loop.err.* 2>/dev/null | sort | uniq -c | head -3 | tr '\n' '|')"
fi
shows=$(grep -c '^show ' "$TMP/smpctl.runs")
if [ "$shows" -gt 0 ]; then
	ok "smpctl keys show read dave's binding $shows times while the harvest ran"
else
	notok "smpctl keys show read dave's binding while the harvest ran" "never got there"
fi

# the end state
j=$(S keys show dave@example.net --json 2>"$TMP/show.err")
rc=$?
nb=$(jq '[.bindings[] | select(.address == "dave@example.net")] | length' <<<"$j" 2>/dev/null)
st=$(jq -r '.bindings[0].state' <<<"$j" 2>/dev/null)
ts=$(jq -r '.bindings[0].times_seen' <<<"$j" 2>/dev/null)
if [ $rc = 0 ] && [ "$nb" = 1 ] && [ "$st" = active ]; then
	ok "afterwards dave@example.net has exactly one binding, state active"
else
	notok "afterwards dave@example.net has exactly one binding, state active" \
		"exit $rc, $nb bindings, state $st: $(head -c 300 <<<"$j") $(cat "$TMP/show.err")"
fi
if [ "$ts" = "$NDAVE" ]; then
	ok "dave's times_seen = $NDAVE, the number of dave messages (no lost update)"
else
	notok "dave's times_seen = $NDAVE, the number of dave messages (no lost update)" "times_seen = $ts"
fi
L=$(S keys list --json 2>"$TMP/list.err")
rc=$?
dups=$(jq -r '.bindings[] | "\(.address) \(.fingerprint)"' <<<"$L" 2>/dev/null | sort | uniq -d | wc -l)
total=$(jq '.bindings | length' <<<"$L" 2>/dev/null)
addrs=$(jq -r '[.bindings[].address] | sort | join(",")' <<<"$L" 2>/dev/null)
if [ $rc = 0 ] && [ "$dups" = 0 ] && [ "$addrs" = "alice@example.org,dave@example.net,user@corp.example" ]; then
	ok "keys list --json: $total bindings (alice, dave, user@corp.example), no duplicates"
else
	notok "keys list --json: one binding per sender, no duplicates" "exit $rc, $dups duplicated, addresses: $addrs"
fi
for a in alice@example.org user@corp.example; do
	t=$(S keys show "$a" --json 2>/dev/null | jq -r '.bindings[0] | "\(.state) \(.times_seen)"')
	if [ "$t" = "active $PER" ]; then
		ok "$a: active, times_seen = $PER"
	else
		notok "$a: active, times_seen = $PER" "got '$t'"
	fi
done

# stop by PID: a clean exit
kill -TERM "$PID"
for ((i = 0; i < WAIT * 10; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
	notok "daemon still running after SIGTERM"
else
	wait "$PID"
	rc=$?
	PID=
	if [ $rc = 0 ]; then ok "SIGTERM stops the daemon with exit 0"; else notok "daemon exit status $rc after SIGTERM"; fi
fi

wall=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
rate=$(awk -v a="$T0" -v b="$T1" -v m="$NMSG" 'BEGIN { printf "%.1f", m / (b - a) }')
echo "# figures: $NMSG messages ($NDAVE from dave in $SESSIONS sessions, $((2 * PER)) from 2 other senders) in $((SESSIONS + 2)) parallel sessions, wall ${wall} s, ${rate} msgs/s; smpctl runs completed: $runs ($shows dave shows)"
if [ "$failed" -gt 0 ]; then
	echo "# --- milter log (tail)"
	tail -20 "$TMP/milter.log" | sed 's/^/#   /'
fi
echo "1..$n"
[ "$failed" = 0 ]
