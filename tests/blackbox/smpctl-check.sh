#!/bin/bash
# smpctl check over every fixture message, compared with fixtures/expect.tsv
# (exit code and verdict line), plus the CLI's usage, input and --json
# behaviour. Prints TAP-style lines.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
SMPCTL=$B/bin/smpctl
EXPECT=fixtures/expect.tsv
MSGS=fixtures/messages
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
jqt() { jq -e "$@" >/dev/null; }
jqt() { jq -e "$@" >/dev/null; }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}

# 1. the expectation table
declare -A listed
while IFS=$'\t' read -r file want_rc want_verdict; do
	case "$file" in '' | '#'*) continue ;; esac
	listed[$file]=1
	got=$("$SMPCTL" check "$MSGS/$file" 2>"$TMP/err")
	rc=$?
	if [ "$rc" = "$want_rc" ] && [ "$got" = "$want_verdict" ] && [ ! -s "$TMP/err" ]; then
		ok "$file: $got"
	else
		notok "$file: want [$want_rc] '$want_verdict', got [$rc] '$got' $(cat "$TMP/err")"
	fi
done <"$EXPECT"

# every fixture message has an expectation
for f in "$MSGS"/*.eml; do
	b=$(basename "$f")
	[ -n "${listed[$b]:-}" ] || notok "$b has no line in $EXPECT"
done
check "expectation table lists messages" test "${#listed[@]}" -gt 40

# 2. --json agrees with the plain verdict and carries the details
for file in "${!listed[@]}"; do
	plain=$("$SMPCTL" check "$MSGS/$file")
	prc=$?
	json=$("$SMPCTL" check --json "$MSGS/$file")
	jrc=$?
	if [ "$prc" != "$jrc" ] || [ "$(jq -r .verdict <<<"$json")" != "$plain" ]; then
		notok "--json verdict differs for $file"
		continue
	fi
	# reasons array == tokens of the verdict
	want=$(sed -n 's/^invalid; reason=//p' <<<"$plain")
	got=$(jq -r '.reasons | join(",")' <<<"$json")
	if [ "$want" != "$got" ]; then
		notok "--json reasons for $file: want '$want' got '$got'"
		continue
	fi
	# valid messages: recipients listed == recipients= in the verdict
	if [ "$prc" = 0 ]; then
		r=$(sed -n 's/.*recipients=\([0-9]*\).*/\1/p' <<<"$plain")
		k=$(sed -n 's/.*keys=\([0-9]*\).*/\1/p' <<<"$plain")
		if [ "$(jq '.recipients | length' <<<"$json")" != "$r" ] ||
			[ "$(jq '.public_keys | length' <<<"$json")" != "$k" ]; then
			notok "--json recipients/keys count for $file"
			continue
		fi
	fi
done
ok "--json agrees with the verdict line for every fixture"

# 3. --json details on known fixtures
v=$(ls "$MSGS"/valid-*.eml | head -1)
check "--json is one JSON document" jqt 'type == "object"' <<<"$("$SMPCTL" check --json "$v")"
j=$("$SMPCTL" check --json "$MSGS/$(awk -F'\t' '$3 ~ /keys=[1-9]/ {print $1; exit}' "$EXPECT")")
check "--json lists public-key parts with name, size, type" \
	jqt '.public_keys[0] | (.name | test("^public-key-[0-9]+$")) and .size > 0 and .type == "public"' <<<"$j"
j=$("$SMPCTL" check --json "$MSGS/$(awk -F'\t' '$3 ~ /recipients=[1-9]/ {print $1; exit}' "$EXPECT")")
check "--json lists session-key packets with 16-hex-digit key IDs" \
	jqt '[.recipients[] | select(.type == "public-key") | .key_id | test("^[0-9A-F]{16}$")] | length > 0 and all' <<<"$j"

# 4. stdin, not smp, usage and input errors
check "reads the message from standard input with '-'" \
	bash -c "\"$SMPCTL\" check - <\"$v\" >/dev/null"
check "reads standard input when no FILE is given" \
	bash -c "\"$SMPCTL\" check <\"$v\" >/dev/null"
printf 'From: a@example.org\nSubject: hello\n\nhi\n' >"$TMP/plain.eml"
out=$("$SMPCTL" check "$TMP/plain.eml")
check "a non-SMP message exits 2 and prints 'not smp'" test $? = 2 -a "$out" = "not smp"
"$SMPCTL" check --bogus "$v" >/dev/null 2>"$TMP/err"
check "an unknown option exits 64 with one sentence" test $? = 64 -a "$(wc -l <"$TMP/err")" = 1
"$SMPCTL" check "$v" "$v" >/dev/null 2>"$TMP/err"
check "two files exit 64" test $? = 64
"$SMPCTL" >/dev/null 2>&1
check "no command exits 64" test $? = 64
"$SMPCTL" frobnicate >/dev/null 2>&1
check "an unknown command exits 64" test $? = 64
"$SMPCTL" check "$TMP/does-not-exist.eml" >/dev/null 2>"$TMP/err"
rc=$?
check "a missing file exits 66 naming it" test $rc = 66 -a "$(grep -c does-not-exist.eml "$TMP/err")" = 1
"$SMPCTL" check "$TMP" >/dev/null 2>"$TMP/err"
check "a directory exits 66" test $? = 66
# no raw control octet from an argument reaches the terminal
# clean_err RC WANT: RC is WANT, $TMP/err one line of printable ASCII
clean_err() {
	[ "$1" = "$2" ] && [ "$(wc -l <"$TMP/err")" = 1 ] &&
		! tr -d '\n' <"$TMP/err" | LC_ALL=C grep -q '[^ -~]'
}
"$SMPCTL" check "$TMP/no"$'\x1b]0;title\x07\nsuch'.eml >/dev/null 2>"$TMP/err"
check "a missing file named with ESC, BEL and LF exits 66 with one clean line" clean_err $? 66
check "... the name shown escaped" grep -qF 'no\x1b]0;title\x07\x0asuch.eml' "$TMP/err"
"$SMPCTL" check $'--\x1b[2J' "$v" >/dev/null 2>"$TMP/err"
check "an unknown option with an ESC exits 64 with one clean line" clean_err $? 64
"$SMPCTL" check "$v" $'\x1b[2J' >/dev/null 2>"$TMP/err"
check "a second FILE with an ESC exits 64 with one clean line" clean_err $? 64
"$SMPCTL" $'\x9b31m' >/dev/null 2>"$TMP/err"
check "an unknown command with a C1 octet exits 64 with one clean line" clean_err $? 64
check "... shown as \\x9b" grep -qF "'\x9b31m'" "$TMP/err"
"$SMPCTL" -c >/dev/null 2>"$TMP/err"
check "-c without a file exits 64 with one sentence" clean_err $? 64
cp "$v" "$TMP/"$'x\xff.eml'
j=$("$SMPCTL" check --json "$TMP/"$'x\xff.eml')
check "--json with a file name that is not UTF-8 still names it (quoted)" \
	jqt '.file | endswith("x\\xff.eml'"'"'")' <<<"$j"

# 5. a message over the 25 MiB limit is too-large, read only that far
{
	printf 'From: a@example.org\nSubject: Secure Messenger Protocol Message\n'
	printf 'MIME-Version: 1.0\nContent-Type: text/plain\n\n'
	head -c $((19 * 1024 * 1024)) /dev/zero | base64 -w 76
} >"$TMP/huge.eml"
out=$("$SMPCTL" check "$TMP/huge.eml")
check "a 26 MB SMP message is 'invalid; reason=too-large'" test $? = 1 -a "$out" = "invalid; reason=too-large"
sed -i 's/^Subject: .*/Subject: big report/' "$TMP/huge.eml"
out=$("$SMPCTL" check "$TMP/huge.eml")
check "a 26 MB non-SMP message is 'not smp'" test $? = 2 -a "$out" = "not smp"

# 6. -c CONF: the config's detect and limits apply; check-config
printf 'detect {\n  subject_match = caseless\n}\n' >"$TMP/caseless.conf"
"$SMPCTL" check "$MSGS/not-smp-caseless.eml" >/dev/null
rc1=$?
"$SMPCTL" -c "$TMP/caseless.conf" check "$MSGS/not-smp-caseless.eml" >/dev/null
rc2=$?
check "-c with subject_match = caseless turns a lower-case subject into SMP" test $rc1 = 2 -a $rc2 != 2
printf 'limits {\n  max_message_bytes = 1000\n}\n' >"$TMP/small.conf"
out=$("$SMPCTL" -c "$TMP/small.conf" check "$v")
check "-c with a small max_message_bytes makes a valid message too-large" test "$out" = "invalid; reason=too-large"
printf 'on_invalid = maybe\n' >"$TMP/bad.conf"
"$SMPCTL" -c "$TMP/bad.conf" check "$v" >/dev/null 2>"$TMP/err"
check "a bad config exits 78 naming file and line" test $? = 78 -a "$(grep -c "$TMP/bad.conf:1: on_invalid" "$TMP/err")" = 1
"$SMPCTL" -c "$TMP/bad.conf" check-config >/dev/null 2>&1
check "check-config on a bad file exits 78" test $? = 78
"$SMPCTL" -c "$TMP/caseless.conf" check-config >/dev/null
check "check-config on a good file exits 0" test $? = 0
"$SMPCTL" -c etc/smp-milter.conf check-config >/dev/null
check "check-config accepts etc/smp-milter.conf" test $? = 0
