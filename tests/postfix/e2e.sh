#!/bin/bash
# shellcheck disable=SC2154 # SINK_*/SMTPD_PORT_* are set by lib.sh (printf -v)
# tests/postfix/e2e.sh - smp-milter behind a real, throwaway Postfix.
#
#   B=build bash tests/postfix/e2e.sh        (as root; B=build-san for ASan)
#
# Prints TAP-style "ok N - ..." / "not ok N - ..." lines, like the
# tests/blackbox/*.sh scripts. Everything runs on 127.0.0.1 under one mktemp
# directory (see lib.sh): an smtp-sink that dumps every message it receives
# to a file, a Postfix instance "mx" whose smtpd_milters is smp-milter's
# unix socket, and for the kill test a second instance "out" that relays to
# "mx" and so retries deferred mail like any sending MTA would. The system
# Postfix instance is never touched. PF_KEEP=1 keeps the temp dir.
#
# Scenarios:
#   tag        verdict header at the sink for valid/invalid SMP mail; plain
#              mail passes untouched; forged X-SMP-* headers are removed
#   actions    on_invalid = reject (550 5.7.0 at SMTP, nothing delivered),
#              tempfail (451 4.7.0), quarantine (held in Postfix's hold queue)
#   harvest    through Postfix into the keyring (SPEC.md 4): dave's SMP
#              message carrying his key arrives with "harvested=1;
#              refused=0" and smpctl then shows an active binding for
#              dave@example.net (and none for the key's other user ID);
#              mallory's key whose only user ID is victim@victim.example
#              arrives with "refused=1" (no-matching-uid) and nothing is
#              bound to the victim
#   kill       smp-milter killed with SIGKILL part-way through 40 messages:
#              mx answers 4xx (milter_default_action = tempfail), "out"
#              defers; after a restart every message arrives, once, with
#              its verdict header
#
# The milter's keyring database and GnuPG home are under the temp dir
# (lib.sh). The replay check is off: the same fixture is sent again and
# again on purpose. Everything reaches mx from 127.0.0.1, which the default
# outbound.networks makes outbound (not harvested); the harvest scenario
# reloads the milter with outbound.networks = 192.0.2.0/24 so that mx's
# mail counts as inbound, and switches back afterwards.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/postfix/lib.sh
. tests/postfix/lib.sh

WAIT=${E2E_WAIT:-60}   # upper bound of every wait, seconds
N_KILL=${E2E_KILL_MESSAGES:-40}

n=0
failed=0
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
	[ "${E2E_TIMES:-0}" = 1 ] && pf_log "t=$(elapsed)s"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	local l
	for l in "$@"; do
		printf '#   %s\n' "$l"
	done
}
# check DESC CMD...: ok when CMD succeeds.
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

if [ "$(id -u)" != 0 ]; then
	# Postfix instances need root; CI runs as root. E2E_REQUIRE=1 fails instead.
	[ "${E2E_REQUIRE:-0}" = 1 ] && pf_die "tests/postfix/e2e.sh must run as root"
	echo "ok 1 - # SKIP the Postfix end-to-end tests need root"
	echo "1..1"
	exit 0
fi
pf_init smp-e2e
WORK=$PF_TMP/work
mkdir -p "$WORK"

# ------------------------------------------------------------- test messages
# From fixtures/expect.tsv (FILE<TAB>EXIT<TAB>VERDICT) when it is there;
# otherwise small messages made here (the valid one with a throwaway gpg key).

FIX=fixtures/messages
TSV=fixtures/expect.tsv

# pick EXIT PREFERRED...: first preferred file listed with EXIT, else the
# first LF-only file listed with EXIT. Prints "FILE<TAB>VERDICT".
pick() {
	local want=$1 f
	shift
	for f in "$@"; do
		awk -F'\t' -v f="$f" -v e="$want" '$1 == f && $2 == e { print $1 "\t" $3; found = 1; exit }
			END { exit !found }' "$TSV" && return 0
	done
	awk -F'\t' -v e="$want" '$1 !~ /^#/ && $2 == e && $1 !~ /crlf/ { print $1 "\t" $3; exit }' "$TSV"
}

make_inline_messages() {
	local g=$WORK/gnupg
	mkdir -m 700 "$g"
	cat >"$WORK/plain.eml" <<'EOF'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: Lunch on Thursday?
Message-ID: <e2e-plain@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

are we still on for lunch on Thursday?
EOF
	cat >"$WORK/invalid.eml" <<'EOF'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: Secure Messenger Protocol Message
Message-ID: <e2e-invalid@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

This should have been encrypted, but it is not.
EOF
	gpg --homedir "$g" --batch --quiet --passphrase '' --quick-gen-key \
		'SMP e2e <e2e@example.net>' default default never 2>/dev/null || return 1
	{
		cat <<'EOF'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: Secure Messenger Protocol Message
Message-ID: <e2e-valid@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

EOF
		echo 'secret' | gpg --homedir "$g" --batch --quiet --trust-model always \
			--armor --encrypt -r e2e@example.net
	} >"$WORK/valid.eml" || return 1
	gpgconf --homedir "$g" --kill all >/dev/null 2>&1
	VALID=$WORK/valid.eml
	VALID_VERDICT='valid; form=inline; keys=0; recipients=1'
	INVALID=$WORK/invalid.eml
	INVALID_VERDICT='invalid; reason=no-data'
	PLAIN=$WORK/plain.eml
}

if [ -r "$TSV" ]; then
	IFS=$'\t' read -r VALID VALID_VERDICT < <(pick 0 valid-attachment-armored-key1.eml valid-two-recipients.eml)
	IFS=$'\t' read -r INVALID INVALID_VERDICT < <(pick 1 bad-armor-crc-mismatch.eml no-data-text-only.eml)
	IFS=$'\t' read -r PLAIN _ < <(pick 2 not-smp-plain.eml)
	VALID=$FIX/$VALID INVALID=$FIX/$INVALID PLAIN=$FIX/$PLAIN
	for f in "$VALID" "$INVALID" "$PLAIN"; do
		[ -f "$f" ] || pf_die "fixture $f listed in $TSV is missing"
	done
else
	make_inline_messages || pf_die "cannot make test messages (gpg)"
fi
pf_log "valid:   $VALID ($VALID_VERDICT)"
pf_log "invalid: $INVALID ($INVALID_VERDICT)"
pf_log "plain:   $PLAIN"

# msg ID SRC [EXTRA HEADER LINES...]: SRC with "X-E2E-Id: ID" (and the extra
# header lines) prepended; prints the new file's path.
msg() {
	local id=$1 src=$2 out=$WORK/$1.eml
	shift 2
	{
		printf 'X-E2E-Id: %s\n' "$id"
		for h in "$@"; do printf '%s\n' "$h"; done
		cat "$src"
	} >"$out"
	echo "$out"
}

# ------------------------------------------------------------- sink helpers

sink_file() { pf_sink_file "$SINK_DIR_sink" "X-E2E-Id: $1"; }
sink_has() { [ -n "$(sink_file "$1")" ]; }

# headers FILE: the message's header lines (unfolded, CR stripped).
headers() {
	tr -d '\r' <"$1" | awk '/^$/ { exit } /^[ \t]/ { h = h $0; next }
		{ if (h != "") print h; h = $0 } END { if (h != "") print h }'
}
# status_values FILE: the value of every X-SMP-Status header, trimmed.
status_values() {
	headers "$1" | awk 'tolower($0) ~ /^x-smp-status:/ {
		sub(/^[^:]*:[ \t]*/, ""); sub(/[ \t]+$/, ""); print }'
}
status_count() { headers "$1" | grep -ci '^x-smp-status:'; }
smp_header_count() { headers "$1" | grep -ci '^x-smp-'; }

# deliver ID FILE [SWAKS OPTIONS...]: send FILE via swaks to mx, wait until
# the sink has it. Keeps the swaks transcript in $WORK/ID.swaks; sets GOT
# (the sink's file, empty on timeout). Options (e.g. --from) override
# pf_swaks' defaults.
deliver() {
	pf_swaks "$SMTPD_PORT_mx" "$2" "${@:3}" >"$WORK/$1.swaks"
	GOT=
	if pf_wait "$WAIT" sink_has "$1"; then
		GOT=$(sink_file "$1")
	fi
}

# expect_verdict DESC ID WANT: the sink copy of ID has one X-SMP-Status = WANT.
expect_verdict() {
	local desc=$1 id=$2 want=$3 got c
	local f
	f=$(sink_file "$id")
	if [ -z "$f" ]; then
		not_ok "$desc" "message $id never reached the sink"
		return
	fi
	c=$(status_count "$f")
	got=$(status_values "$f")
	if [ "$c" = 1 ] && [ "$got" = "$want" ]; then
		ok "$desc"
	else
		not_ok "$desc" "want one 'X-SMP-Status: $want'" "got $c: $(headers "$f" | grep -i '^x-smp-' | tr '\n' '|')"
	fi
}

# ------------------------------------------------------------------ set up

# Every milter config of this test: no replay check (see the top).
MILTER_BASE=$'replay {\n  enabled = false\n}\n'
milter_start() { pf_milter_start "$MILTER_BASE" "$@"; }

pf_sink_start sink
PF_SMTPD_MILTERS="unix:$PF_TMP/milter/smp-milter.sock" \
	pf_instance_create mx "[127.0.0.1]:$SINK_PORT_sink"
milter_start 'on_invalid = "tag"'
pf_instance_start mx
pf_log "sink 127.0.0.1:$SINK_PORT_sink, mx 127.0.0.1:$SMTPD_PORT_mx, tmp $PF_TMP"

# ------------------------------------------------------- (a) on_invalid = tag

deliver tag-valid "$(msg tag-valid "$VALID")"
expect_verdict "valid SMP message arrives at the sink with X-SMP-Status: $VALID_VERDICT" tag-valid "$VALID_VERDICT"

f=$(sink_file tag-valid)
line=$( [ -n "$f" ] && headers "$f" | grep -i '^x-smp-status:' | head -1)
if [ "${line#X-SMP-Status: }" != "$line" ] && [ "${line#X-SMP-Status:  }" = "$line" ]; then
	ok "verdict header is written 'X-SMP-Status: <verdict>' (one space after the colon)"
else
	not_ok "verdict header is written 'X-SMP-Status: <verdict>' (one space after the colon)" \
		"got '$line'" "(milter negotiated SMFIP_HDR_LEADSPC, so Postfix adds the value verbatim)"
fi

deliver tag-invalid "$(msg tag-invalid "$INVALID")"
expect_verdict "invalid SMP message (on_invalid = tag) is delivered with X-SMP-Status: $INVALID_VERDICT" tag-invalid "$INVALID_VERDICT"

deliver tag-plain "$(msg tag-plain "$PLAIN")"
if [ -n "$GOT" ] && [ "$(smp_header_count "$GOT")" = 0 ]; then
	ok "plain message arrives without any X-SMP-* header"
else
	not_ok "plain message arrives without any X-SMP-* header" "sink file: ${GOT:-none}"
fi
# body FILE: from the first empty line on, CRs and trailing empty lines dropped
body() {
	tr -d '\r' <"$1" | awk 'b { print } /^$/ { b = 1 }' | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
}
if [ -n "$GOT" ] && [ "$(body "$GOT")" = "$(body "$PLAIN")" ]; then
	ok "plain message body arrives unchanged"
else
	not_ok "plain message body arrives unchanged"
fi

deliver tag-forged "$(msg tag-forged "$PLAIN" 'X-SMP-Status: valid; form=attachment; keys=1; recipients=1' \
	'X-SMP-Harvest: forged too' 'x-smp-status: valid; lower case')"
if [ -n "$GOT" ] && [ "$(smp_header_count "$GOT")" = 0 ]; then
	ok "forged X-SMP-Status / X-SMP-* headers on a plain message are removed"
else
	not_ok "forged X-SMP-Status / X-SMP-* headers on a plain message are removed" \
		"left: $( [ -n "$GOT" ] && headers "$GOT" | grep -i '^x-smp-' | tr '\n' '|')"
fi

deliver tag-forged-smp "$(msg tag-forged-smp "$INVALID" 'X-SMP-Status: valid; form=inline; keys=0; recipients=1')"
expect_verdict "forged X-SMP-Status on an invalid SMP message is replaced by the real verdict" tag-forged-smp "$INVALID_VERDICT"

# the milter's log line for the valid message names its Postfix queue ID
qid=$(grep -o 'with ESMTP id [0-9A-F]*' "$(sink_file tag-valid)" 2>/dev/null | awk '{print $4}' | tail -1)
check "smp-milter logged the verdict with the Postfix queue ID ($qid)" \
	grep -q "^smp-milter\[info\]: $qid: .*verdict=\"$VALID_VERDICT\".*action=tag" "$PF_MILTER_LOG"

# ------------------------------------------------------- (a2) harvest
# Through Postfix into the keyring (SPEC.md 4). swaks sends each fixture
# with its own headers (--data) and the From: address as envelope sender.
# mx's mail comes from 127.0.0.1: with outbound.networks = 192.0.2.0/24 it
# is inbound, so it is harvested (outbound mail is not, by default).

HV_DAVE=harvest-dave-self-encrypted.eml
HV_PLANTED=harvest-planted-uid.eml
# tsv_verdict FILE: the fixture's verdict from expect.tsv
tsv_verdict() { awk -F'\t' -v f="$1" '$1 == f { print $3; found = 1; exit } END { exit !found }' "$TSV" 2>/dev/null; }
# bound ADDRESS: smpctl shows a binding for ADDRESS (exit 0); 67 = none
bound() { pf_smpctl keys show "$1" >/dev/null 2>&1; }

if [ -f "$FIX/$HV_DAVE" ] && [ -f "$FIX/$HV_PLANTED" ] && v=$(tsv_verdict "$HV_DAVE") && pv=$(tsv_verdict "$HV_PLANTED"); then
	pf_milter_reload "$MILTER_BASE" 'on_invalid = "tag"' $'outbound {\n  networks = {"192.0.2.0/24"}\n}' ||
		pf_die "smp-milter did not log 'configuration reloaded' after SIGHUP"
	deliver hv-dave "$(msg hv-dave "$FIX/$HV_DAVE")" --from dave@example.net
	expect_verdict "harvest: dave's SMP message with his key arrives with X-SMP-Status: $v; harvested=1; refused=0" \
		hv-dave "$v; harvested=1; refused=0"
	j=$(pf_smpctl keys show dave@example.net --json 2>"$WORK/hv-dave.err")
	rc=$?
	if [ $rc = 0 ] && jq -e '[.bindings[] | select(.address == "dave@example.net")] | length == 1' <<<"$j" >/dev/null 2>&1 &&
		jq -e '.bindings[0] | .state == "active" and .source == "smp" and .times_seen == 1 and .self_encrypted == true and .message_id == "<harvest-dave-self-encrypted.0107@mail.example.org>"' <<<"$j" >/dev/null 2>&1; then
		ok "harvest: smpctl keys show dave@example.net --json then finds one active binding (source smp, self-encrypted, the message's Message-ID)"
	else
		not_ok "harvest: smpctl keys show dave@example.net --json then finds one active binding" \
			"exit $rc: $(tr -d '\n' <<<"$j" | head -c 400) $(cat "$WORK/hv-dave.err")"
	fi
	# dave's key also carries the user ID victim@victim.example: dropped
	if ! bound victim@victim.example; then
		ok "harvest: the key's other user ID (victim@victim.example) is bound to nobody"
	else
		not_ok "harvest: the key's other user ID (victim@victim.example) is bound to nobody" \
			"$(pf_smpctl keys show victim@victim.example 2>&1 | head -3 | tr '\n' '|')"
	fi

	deliver hv-planted "$(msg hv-planted "$FIX/$HV_PLANTED")" --from mallory@example.net
	expect_verdict "harvest: a key whose only user ID is someone else's arrives with X-SMP-Status: $pv; harvested=0; refused=1" \
		hv-planted "$pv; harvested=0; refused=1"
	check "harvest: smp-milter logged the refusal as no-matching-uid" \
		grep -qE 'harvested=0 refused=1 \[refused:no-matching-uid [0-9A-F]{40}\]' "$PF_MILTER_LOG"
	pf_smpctl keys show victim@victim.example >/dev/null 2>&1
	rc=$?
	addrs=$(pf_smpctl keys list --json 2>/dev/null | jq -r '[.bindings[].address] | sort | join(",")')
	if [ $rc = 67 ] && [ "$addrs" = "dave@example.net" ]; then
		ok "harvest: after the planting attempt victim@victim.example still has no binding (smpctl exit 67; bound: $addrs)"
	else
		not_ok "harvest: after the planting attempt victim@victim.example still has no binding" \
			"smpctl keys show exit $rc, bound addresses: $addrs"
	fi
else
	ok "# SKIP harvest: $FIX/$HV_DAVE, $HV_PLANTED or their line in $TSV missing"
fi

# ------------------------------------------- (b) on_invalid = reject/tempfail/quarantine

# Switches on_invalid with SIGHUP: Postfix opens one milter connection per
# SMTP session and smp-milter takes the config at connection start, so the
# next swaks session sees the new setting.
reload_milter() {
	pf_milter_reload "$MILTER_BASE" "$@" || pf_die "smp-milter did not log 'configuration reloaded' after SIGHUP"
}

reload_milter 'on_invalid = "reject"'
out=$(pf_swaks "$SMTPD_PORT_mx" "$(msg rej-invalid "$INVALID")")
reason=${INVALID_VERDICT#invalid; }
if printf '%s\n' "$out" | grep -q "^<\*\* *550 5\.7\.0 .*${reason}"; then
	ok "on_invalid = reject: invalid SMP message refused at SMTP with 550 5.7.0 ($reason)"
else
	not_ok "on_invalid = reject: invalid SMP message refused at SMTP with 550 5.7.0 ($reason)" \
		"$(printf '%s\n' "$out" | grep -E '^(<\*\*|<-  [0-9]{3})' | tail -3 | tr '\n' '|')"
fi
deliver rej-valid "$(msg rej-valid "$VALID")"
expect_verdict "on_invalid = reject: a valid SMP message is still delivered and tagged" rej-valid "$VALID_VERDICT"
deliver rej-plain "$(msg rej-plain "$PLAIN")"
check "on_invalid = reject: a plain message is still delivered" test -n "$GOT"
pf_wait 10 pf_queue_empty mx
check "on_invalid = reject: the refused message never reaches the sink (sent before the two above)" \
	test "$(pf_sink_count "$SINK_DIR_sink" 'X-E2E-Id: rej-invalid')" = 0

reload_milter 'on_invalid = "tempfail"'
out=$(pf_swaks "$SMTPD_PORT_mx" "$(msg tf-invalid "$INVALID")")
if printf '%s\n' "$out" | grep -q "^<\*\* *451 4\.7\.0 "; then
	ok "on_invalid = tempfail: invalid SMP message answered 451 4.7.0 at SMTP"
else
	not_ok "on_invalid = tempfail: invalid SMP message answered 451 4.7.0 at SMTP" \
		"$(printf '%s\n' "$out" | grep -E '^(<\*\*|<-  [0-9]{3})' | tail -3 | tr '\n' '|')"
fi

reload_milter 'on_invalid = "quarantine"'
held_before=$(pf_queue_count mx hold)
out=$(pf_swaks "$SMTPD_PORT_mx" "$(msg q-invalid "$INVALID")")
deliver q-valid "$(msg q-valid "$VALID")"
if printf '%s\n' "$out" | grep -q '^<-  *250 ' && [ "$(pf_queue_count mx hold)" = $((held_before + 1)) ] &&
	[ "$(pf_sink_count "$SINK_DIR_sink" 'X-E2E-Id: q-invalid')" = 0 ]; then
	ok "on_invalid = quarantine: invalid SMP message accepted and held in Postfix's hold queue"
else
	not_ok "on_invalid = quarantine: invalid SMP message accepted and held in Postfix's hold queue" \
		"hold queue: $(pf_queue_count mx hold), at sink: $(pf_sink_count "$SINK_DIR_sink" 'X-E2E-Id: q-invalid')"
fi
expect_verdict "on_invalid = quarantine: a valid SMP message is delivered and tagged" q-valid "$VALID_VERDICT"
# drop the held message so that "mx" drains
postsuper -c "$(pf_conf mx)" -d ALL hold >/dev/null 2>&1

# ------------------------------------------- (c) milter killed mid-run

reload_milter 'on_invalid = "tag"'
# "out" opens a new session per delivery (no connection cache): an SMTP
# session of mx whose milter connection failed stays in default-action
# (tempfail) mode to its end, and a cached session would keep it alive.
PF_SMTPD=0 PF_EXTRA_MAIN='smtp_connection_cache_on_demand = no' pf_instance_create out "[127.0.0.1]:$SMTPD_PORT_mx"
pf_instance_start out

for i in $(seq -f '%03g' 1 "$N_KILL"); do
	msg "kill-$i" "$VALID" >/dev/null
done
kill_count() { pf_sink_count "$SINK_DIR_sink" 'X-E2E-Id: kill-'; }
at_least() { [ "$(kill_count)" -ge "$1" ]; }

# Submit to "out" with sendmail(1), one message every 0.1 s, in the background.
(
	for i in $(seq -f '%03g' 1 "$N_KILL"); do
		pf_sendmail out alice@example.org bob@example.net "$WORK/kill-$i.eml" ||
			echo "sendmail failed for kill-$i" >&2
		sleep 0.1
	done
) &
submitter=$!
PF_PIDS+=("$submitter")

if pf_wait "$WAIT" at_least 5; then
	pf_milter_kill9
	at_kill=$(kill_count)
	ok "killed smp-milter (SIGKILL) after $at_kill of $N_KILL messages had arrived"
else
	pf_milter_kill9
	at_kill=$(kill_count)
	not_ok "killed smp-milter (SIGKILL) after a few messages had arrived" "only $at_kill arrived in ${WAIT}s"
fi
pf_wait "$WAIT" eval "! kill -0 $submitter 2>/dev/null"
wait "$submitter" 2>/dev/null

# Every message not delivered now sits in out's deferred queue, with mx's
# 4xx as the reason. Wait until the active/incoming queues are drained.
# (Deferred mail is retried every second or two, so a message may be in the
# active queue at any moment; "deferred" below is a snapshot.)
picked_up_and_deferred() {
	[ "$(pf_queue_count out maildrop incoming)" = 0 ] &&
		[ "$(pf_queue_count out deferred)" -gt 0 ]
}
pf_wait "$WAIT" picked_up_and_deferred
deferred=$(pf_queue_count out deferred)
queued=$(pf_queue_count out)
queue_listing=$(postqueue -c "$(pf_conf out)" -p 2>&1)
if [ "$deferred" -gt 0 ] && printf '%s\n' "$queue_listing" | grep -q '451 4\.7\.1'; then
	ok "during the outage 'out' queues $queued messages, $deferred deferred (postqueue -p: mx said 451 4.7.1)"
else
	not_ok "during the outage 'out' queues deferred messages (postqueue -p: mx said 451 4.7.1)" \
		"deferred=$deferred queued=$queued" "$(printf '%s\n' "$queue_listing" | head -5 | tr '\n' '|')"
fi
accounted() { [ $(($(pf_queue_count out) + $(pf_queue_count mx) + $(kill_count))) = "$N_KILL" ]; }
if pf_wait 10 accounted; then
	ok "during the outage nothing is lost: queued at out + mx + delivered = $N_KILL"
else
	not_ok "during the outage nothing is lost: queued at out + mx + delivered = $N_KILL" \
		"out=$(pf_queue_count out) mx=$(pf_queue_count mx) sink=$(kill_count)"
fi

out=$(pf_swaks "$SMTPD_PORT_mx" "$(msg probe-outage "$VALID")")
if printf '%s\n' "$out" | grep -q '^<\*\* *4[0-9][0-9] '; then
	ok "while smp-milter is down mx answers SMTP with 4xx ($(printf '%s\n' "$out" | grep -m1 '^<\*\*' | cut -c5-40))"
else
	not_ok "while smp-milter is down mx answers SMTP with 4xx" \
		"$(printf '%s\n' "$out" | grep -E '^(<\*\*|<-  [0-9]{3})' | tail -3 | tr '\n' '|')"
fi

# A few retry rounds against the dead milter: nothing may get through.
pf_wait 10 pf_queue_empty mx
during=$(kill_count)
sleep 3
if [ "$during" -lt "$N_KILL" ] && [ "$(kill_count)" = "$during" ]; then
	ok "no message gets through while smp-milter is down ($during of $N_KILL delivered)"
else
	not_ok "no message gets through while smp-milter is down" "during=$during now=$(kill_count)"
fi

milter_start 'on_invalid = "tag"'
postqueue -c "$(pf_conf out)" -f
all_there() {
	if [ "$(kill_count)" -ge "$N_KILL" ] && pf_queue_empty out && pf_queue_empty mx; then
		return 0
	fi
	# re-flush every ~5 s (a cached session may still hit the old outage)
	tick=$((${tick:-0} + 1))
	[ $((tick % 50)) = 0 ] && postqueue -c "$(pf_conf out)" -f
	return 1
}
pf_wait "$WAIT" all_there
got=$(kill_count)
if [ "$got" = "$N_KILL" ] && pf_queue_empty out; then
	ok "after the restart every message is delivered: sent $N_KILL, received $got"
else
	not_ok "after the restart every message is delivered: sent $N_KILL, received $got" \
		"out queue: $(pf_queue_count out), mx queue: $(pf_queue_count mx)"
fi

ids=$(find "$SINK_DIR_sink" -type f -name 'msg.*' -print0 | xargs -0 -r grep -h -o 'X-E2E-Id: kill-[0-9]*' | sort)
if [ "$(printf '%s\n' "$ids" | sort -u)" = "$(seq -f 'X-E2E-Id: kill-%03g' 1 "$N_KILL")" ] &&
	[ "$(printf '%s\n' "$ids" | wc -l)" = "$N_KILL" ]; then
	ok "each of the $N_KILL messages arrived exactly once"
else
	not_ok "each of the $N_KILL messages arrived exactly once" \
		"duplicates: $(printf '%s\n' "$ids" | uniq -d | tr '\n' ' ')"
fi

bad=0
for f in $(find "$SINK_DIR_sink" -type f -name 'msg.*' -print0 | xargs -0 -r grep -l 'X-E2E-Id: kill-'); do
	if [ "$(status_count "$f")" != 1 ] || [ "$(status_values "$f")" != "$VALID_VERDICT" ]; then
		bad=$((bad + 1))
	fi
done
check "every message of the kill test carries exactly one X-SMP-Status: $VALID_VERDICT ($bad without)" test "$bad" = 0
check "the 'out' log shows deferrals with mx's 451 4.7.1" \
	grep -q 'status=deferred.*451 4\.7\.1' "$PF_TMP/out/log/maillog"

# ------------------------------------------------------------------ shut down

pf_milter_stop
check "smp-milter exits 0 on SIGTERM (exit $PF_LAST_RC)" test "$PF_LAST_RC" = 0
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$PF_MILTER_LOG"; then
	not_ok "no sanitizer report in smp-milter's log" "$(grep -m3 -E 'Sanitizer|runtime error:' "$PF_MILTER_LOG")"
else
	ok "no sanitizer report in smp-milter's log"
fi
check "smp-milter logged no internal error" eval "! grep -q 'internal error' '$PF_MILTER_LOG'"

if [ "$failed" -gt 0 ]; then
	pf_log "--- smp-milter log (tail)"
	tail -20 "$PF_MILTER_LOG" | sed 's/^/# /' >&2
	pf_log "--- mx maillog (tail)"
	tail -20 "$PF_TMP/mx/log/maillog" | sed 's/^/# /' >&2
fi
echo "1..$n"
[ "$failed" = 0 ]
