#!/bin/bash
# Runs every test and prints one summary line "N passed, N failed".
#   B=build tests/run-tests.sh [--no-fuzz]
# Unit tests are cmocka binaries under $B/tests; black-box tests are
# tests/blackbox/*.sh printing TAP-style "ok"/"not ok" lines; fuzz targets
# run for FUZZ_CHECK_SECONDS each on the fixture corpus; the fault scenarios
# tests/faults/*.sh (real Postfix) print the same TAP lines.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
FUZZ=1
[ "${1:-}" = "--no-fuzz" ] && FUZZ=0

passed=0
failed=0
failures=()

note_fail() {
	failed=$((failed + 1))
	failures+=("$1")
}

export CMOCKA_MESSAGE_OUTPUT=stdout

# One throwaway PostgreSQL server (unix socket only, its own directory,
# stopped by PID on exit) for every test of the postgresql keyring backend
# (tests/unit/test_pg.h, tests/blackbox/smpctl-pg.sh). When it cannot
# start, those tests fail: they never skip.
pg_dir=""
disc_dir=""
stop_servers() {
	[ -n "$pg_dir" ] && tests/pg/pg-stop.sh "$pg_dir"
	[ -n "$disc_dir" ] && tests/discovery/disc-stop.sh "$disc_dir"
}
trap stop_servers EXIT
if [ -z "${SMP_TEST_PG_CONNINFO:-}" ]; then
	pg_dir=$(mktemp -d /tmp/smppg.XXXXXX)
	if pg_ci=$(tests/pg/pg-start.sh "$pg_dir"); then
		export SMP_TEST_PG_CONNINFO=$pg_ci
	else
		note_fail "PostgreSQL test server (tests/pg/pg-start.sh)"
	fi
fi
# The key discovery test servers (tests/discovery/disc-start.sh: knotd with
# DNSSEC-signed test zones, an HTTPS server with a test CA and WKD trees, a
# DNS black hole; all on 127.0.0.1, stopped by PID on exit) for the tests of
# tests/unit/test_disc.h. When they cannot start, those tests fail.
if [ -z "${SMP_TEST_DISC_DIR:-}" ]; then
	disc_dir=$(mktemp -d /tmp/smpdisc.XXXXXX)
	if disc_env=$(tests/discovery/disc-start.sh "$disc_dir"); then
		eval "$disc_env"
	else
		note_fail "discovery test servers (tests/discovery/disc-start.sh)"
	fi
fi
for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	# a binary may run several groups (the keyring tests: one per
	# backend): their counts add up
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s += $1} END {if (NR) print s}')
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s += $1} END {if (NR) print s}')
	passed=$((passed + ${p:-0}))
	if [ -n "$f" ] && [ "$f" -gt 0 ]; then
		failed=$((failed + f))
		failures+=("$name: $f failed")
	elif [ $rc -ne 0 ] || [ -z "$p" ]; then
		note_fail "$name: exited $rc"
	fi
done

for t in tests/blackbox/*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	echo "== $name"
	out=$(B="$B" bash "$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | grep -c '^ok ')
	f=$(printf '%s\n' "$out" | grep -c '^not ok ')
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -gt 0 ] && failures+=("$name: $f failed")
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		note_fail "$name: exited $rc"
	fi
done

# Fault scenarios (tests/faults/README.md): real Postfix instances, TAP
# lines like the black-box tests, each under a timeout. FAULT_SCENARIOS
# picks some ("" for none).
for f in ${FAULT_SCENARIOS-reload keyring kill9 lock}; do
	t=tests/faults/$f.sh
	[ -f "$t" ] || continue
	echo "== faults/$f"
	out=$(B="$B" timeout -k 15 "${FAULTS_TIMEOUT:-240}" bash "$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | grep -c '^ok ')
	f_=$(printf '%s\n' "$out" | grep -c '^not ok ')
	passed=$((passed + p))
	failed=$((failed + f_))
	[ "$f_" -gt 0 ] && failures+=("faults/$f: $f_ failed")
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		note_fail "faults/$f: timed out after ${FAULTS_TIMEOUT:-240} s"
	elif [ $rc -ne 0 ] && [ "$f_" -eq 0 ]; then
		note_fail "faults/$f: exited $rc"
	fi
done

if [ $FUZZ = 1 ]; then
	for target in armor packets message address keyinspect merge; do
		echo "== fuzz $target (${FUZZ_CHECK_SECONDS:-30} s)"
		if B="$B" ./fuzz/run-fuzz.sh "$target" "${FUZZ_CHECK_SECONDS:-30}"; then
			passed=$((passed + 1))
		else
			note_fail "fuzz $target"
		fi
	done
fi

echo
for f in "${failures[@]}"; do
	echo "FAILED: $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
