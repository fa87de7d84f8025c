#!/bin/sh
# Runs one libFuzzer target (or all of them) for a bounded time on its run
# corpus and prints one summary line per target:
#
#   fuzz TARGET: N execs in S s, 0 crashes
#
#   fuzz/run-fuzz.sh TARGET SECONDS      TARGET: armor, packets, message,
#                                        address, keyinspect, merge or all
#
# The binaries come from $B/fuzz/ (B defaults to build; `make fuzz-build`
# builds them). The run corpus fuzz/corpus-run/TARGET/ (not committed) is
# rebuilt from fuzz/corpus/TARGET/ and the fixtures by fuzz/seed-corpus.sh,
# and keeps what earlier runs found. A crash, leak, timeout or out-of-memory
# input is saved as fuzz/crashes/TARGET-<kind>-<sha1>, the end of the
# libFuzzer log is printed, and the exit status is 1.
set -u

FUZZ_TARGETS="armor packets message address keyinspect merge"

usage() {
	echo "usage: $0 armor|packets|message|address|keyinspect|merge|all SECONDS" >&2
	exit 64
}
[ $# -eq 2 ] || usage
case $2 in '' | *[!0-9]*) usage ;; esac
[ "$2" -gt 0 ] || usage

cd "$(dirname "$0")/.." || exit 1
B=${B:-build}

# max_len FOR TARGET: the largest input libFuzzer generates.
fuzz_max_len() {
	case $1 in
	armor) echo 65536 ;;
	packets) echo 65536 ;;
	message) echo 65536 ;;
	address) echo 1024 ;;
	keyinspect) echo 65536 ;;
	merge) echo 65536 ;;
	esac
}

# fuzz_stat LOG NAME: the value of libFuzzer's final stat::NAME, or 0.
fuzz_stat() {
	v=$(sed -n "s/^stat::$2:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1)
	echo "${v:-0}"
}

fuzz_one() {
	t=$1
	secs=$2
	bin=$B/fuzz/fuzz_$t
	run=fuzz/corpus-run/$t
	log=$B/fuzz/$t.log
	if [ ! -x "$bin" ]; then
		echo "fuzz $t: $bin not built (run make fuzz-build)" >&2
		return 1
	fi
	if ! fuzz/seed-corpus.sh "$t" "$run"; then
		echo "fuzz $t: cannot build the run corpus $run" >&2
		return 1
	fi
	mkdir -p fuzz/crashes
	dict=
	[ -f "fuzz/$t.dict" ] && dict=-dict=fuzz/$t.dict

	start=$(date +%s)
	# shellcheck disable=SC2086
	ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$bin" -max_total_time="$secs" -print_final_stats=1 \
		-rss_limit_mb=2048 -timeout=10 -max_len="$(fuzz_max_len "$t")" \
		-artifact_prefix="fuzz/crashes/$t-" $dict "$run" >"$log" 2>&1
	rc=$?
	elapsed=$(($(date +%s) - start))

	execs=$(fuzz_stat "$log" number_of_executed_units)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $t: $execs execs in $elapsed s, 0 crashes"
		return 0
	fi
	artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
	echo "fuzz $t: $execs execs in $elapsed s, 1 crash (exit $rc): ${artifact:-no reproducer written}"
	echo "---- last lines of $log ----" >&2
	tail -n 80 "$log" >&2
	echo "----" >&2
	return 1
}

if [ "$1" = all ]; then
	targets=$FUZZ_TARGETS
else
	case " $FUZZ_TARGETS " in *" $1 "*) ;; *) usage ;; esac
	targets=$1
fi
status=0
for t in $targets; do
	fuzz_one "$t" "$2" || status=1
done
exit $status
