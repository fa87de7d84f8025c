#!/bin/bash
# shellcheck disable=SC2154 # C_*, SINK_*, SMTPD_PORT_*: set by the libs (printf -v)
# tests/pg/twohost.sh - two MTA hosts, one PostgreSQL keyring (SPEC.md 4),
# end to end through real throwaway Postfix instances.
#
#   B=build bash tests/pg/twohost.sh     (as root)
#
# Topology (tests/postfix/lib.sh, tests/faults/lib.sh):
#
#   faults.py --> "out" --> "mx"  (host A: smp-milter A) --+
#   faults.py --> "outb" --> "mxb" (host B: smp-milter B) --+--> smtp-sink
#
# Both milters use keyring.backend = postgresql on one throwaway server
# (tests/pg/pg-start.sh: unix socket only, stopped by PID at the end), each
# with its own GnuPG home. harvest.sources = {smp, autocrypt} with
# harvest.outbound = true (mail from 127.0.0.1 is outbound); encrypt:
# bob@example.net and carol@example.com required, alice@example.org
# opportunistic. bob's key is imported once (smpctl on host A).
#
#   shared     carol's key arrives at host A in an Autocrypt header; host B
#              (which never saw it) then encrypts a message to carol with it
#              (PGP/MIME at the sink, no plaintext), and smpctl on host B
#              shows the binding host A stored
#   conflict   alice's key harvested at A, then a message to alice through
#              B is encrypted; alice-other's key arrives at A: both
#              bindings go to conflict, and the next message to alice
#              through B arrives in plain (opportunistic: no usable key)
#   outage     a stream of TWOHOST_N messages (default 60) to bob through A
#              at TWOHOST_RATE a second (default 10); mid-stream the
#              database server is stopped (immediate shutdown) for
#              TWOHOST_DOWN seconds at least (default 3) and until "out"
#              saw a 4xx from mx; then started again. Checked: mx answered
#              4xx meanwhile, the milter's log names the server and never
#              the password (the conninfo has one), every message arrives
#              exactly once, encrypted,
#              none bounced, the milters are the processes they were (no
#              restart), and after the outage a key harvested at A is used
#              by B again.
#
# Prints TAP lines and the plan.
. "$(dirname "$(readlink -f "$0")")/../faults/lib.sh"

N=${TWOHOST_N:-60}
RATE=${TWOHOST_RATE:-10}
DOWN=${TWOHOST_DOWN:-3}
KEYS=$PF_ROOT/fixtures/keys

fl_begin twohost-pg
command -v psql >/dev/null 2>&1 || pf_die "psql not found (Debian package postgresql)"

# ------------------------------------------------------------- the database
PGD=$(mktemp -d /tmp/smppg.XXXXXX) || pf_die "mktemp failed"
trap 'rc=$?; tests/pg/pg-stop.sh "$PGD"; (exit $rc); pf_cleanup' EXIT
ci_base=$(tests/pg/pg-start.sh "$PGD") || pf_die "cannot start PostgreSQL (tests/pg/pg-start.sh)"
psql -X -q -v ON_ERROR_STOP=1 "$ci_base" -c "CREATE SCHEMA keyring" >/dev/null ||
	pf_die "cannot create the schema"
# a password the (trust-authenticated) server never asks for: it must
# never show in a log
CI="$ci_base password=Sekr1tPw options='-c search_path=keyring'"

# ------------------------------------------------------------- two milters
MILTER_CONF=$'replay {\n  enabled = false\n}
discovery {\n  methods = {off}\n}
harvest {\n  sources = {smp, autocrypt}\n  outbound = true\n}
encrypt {\n  default = off
  policy "bob@example.net" {\n    encrypt = required\n  }
  policy "carol@example.com" {\n    encrypt = required\n  }
  policy "alice@example.org" {\n    encrypt = opportunistic\n  }\n}'

# milter_start HOST: smp-milter for HOST under $PF_TMP/HOST (config, socket,
# log, GnuPG home), keyring on the shared database. Sets MPID_HOST.
milter_start() {
	local h=$1 d=$PF_TMP/$1 pid
	mkdir -p "$d"
	cat >"$d/smp-milter.conf" <<EOF
# smp-milter of host $h (tests/pg/twohost.sh)
socket = "unix:$d/smp-milter.sock"
socket_mode = "0666"
user = ""
group = ""
pidfile = ""
log_level = "info"
keyring {
  backend = "postgresql"
  conninfo = "$CI"
}
gnupg_home = "$d/gnupg"
$MILTER_CONF
EOF
	"$PF_MILTER_BIN" -f -c "$d/smp-milter.conf" >>"$d/smp-milter.log" 2>&1 &
	pid=$!
	PF_PIDS+=("$pid")
	printf -v "MPID_$h" '%s' "$pid"
	pf_wait 20 pf_sock_ready "$d/smp-milter.sock" || {
		tail -5 "$d/smp-milter.log" >&2
		pf_die "smp-milter of host $h did not start"
	}
}
S() { local h=$1; shift; "$PF_SMPCTL_BIN" -c "$PF_TMP/$h/smp-milter.conf" "$@"; }
mlog() { cat "$PF_TMP/$1/smp-milter.log"; }

pf_sink_start sink
for h in hosta hostb; do milter_start $h; done
S hosta keys import "$KEYS/bob.pub.asc" >"$WORK/import.out" 2>&1 ||
	pf_die "smpctl keys import bob.pub.asc failed: $(cat "$WORK/import.out")"
cache="smtp_connection_cache_destinations = 127.0.0.1
smtp_connection_cache_time_limit = 2s
smtp_destination_concurrency_limit = 8
smtp_initial_destination_concurrency = 8"
PF_SMTPD_MILTERS="unix:$PF_TMP/hosta/smp-milter.sock" \
	pf_instance_create mx "[127.0.0.1]:$SINK_PORT_sink"
PF_SMTPD_MILTERS="unix:$PF_TMP/hostb/smp-milter.sock" \
	pf_instance_create mxb "[127.0.0.1]:$SINK_PORT_sink"
PF_EXTRA_MAIN=$cache pf_instance_create out "[127.0.0.1]:$SMTPD_PORT_mx"
PF_EXTRA_MAIN=$cache pf_instance_create outb "[127.0.0.1]:$SMTPD_PORT_mxb"
for i in mx mxb out outb; do pf_instance_start $i; done
pf_log "sink :$SINK_PORT_sink, A: out :$SMTPD_PORT_out -> mx :$SMTPD_PORT_mx, B: outb :$SMTPD_PORT_outb -> mxb :$SMTPD_PORT_mxb, tmp $PF_TMP, db $PGD"

# via HOST PREFIX FROM TO [KEY]: one message through HOST's "out", waited
# for at the sink (FL_WAIT at most); 1 when it did not arrive.
via() {
	local h=$1 prefix=$2 from=$3 to=$4 key=${5:-} port args=()
	if [ "$h" = hosta ]; then port=$SMTPD_PORT_out; else port=$SMTPD_PORT_outb; fi
	[ -n "$key" ] && args=(--autocrypt "$KEYS/$key.pub.gpg")
	python3 "$FL_PY" send --port "$port" --prefix "$prefix" --count 1 \
		--from "$from" --to "$to" --sent "$WORK/$prefix.sent" "${args[@]}" \
		>"$WORK/$prefix.send" 2>&1 || return 1
	pf_wait "$FL_WAIT" eval '[ "$(fl_at_sink '"$prefix"')" -ge 1 ]'
}
# state ADDRESS FPR-PREFIX HOST: the state of ADDRESS's binding to the key
# whose fingerprint starts so (smpctl keys show --json on HOST), or none
state() {
	S "$3" keys show "$1" --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {}
b = [x["state"] for x in d.get("bindings", []) if x.get("fingerprint") == sys.argv[1]]
print(b[0] if b else "none")' "$2"
}
fpr() { gpg --batch --with-colons --show-keys "$KEYS/$1.pub.gpg" 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}'; }

# ------------------------------------------------------------------ shared
via hosta ac-carol carol@example.com dave@example.net carol
check "shared: carol's Autocrypt message passed host A" test "$(fl_at_sink ac-carol)" = 1
carol=$(fpr carol)
check "shared: host B's smpctl shows the binding host A harvested (active)" \
	test "$(state carol@example.com "$carol" hostb)" = active
via hostb to-carol dave@example.net carol@example.com
fl_count to-carol --rcpt carol@example.com
check "shared: host B encrypted to carol with the key host A harvested ($FL_COUNTS)" \
	test "$C_delivered" = 1 -a "$C_encrypted" = 1 -a "$C_plaintext" = 0
check "shared: host B's log says encrypt=pgp-mime" grep -q 'encrypt=pgp-mime' "$PF_TMP/hostb/smp-milter.log"

# ---------------------------------------------------------------- conflict
alice=$(fpr alice)
other=$(fpr alice-other)
via hosta ac-alice alice@example.org dave@example.net alice
via hostb to-alice1 dave@example.net alice@example.org
fl_count to-alice1 --rcpt alice@example.org
check "conflict: before it, host B encrypts to alice ($FL_COUNTS)" \
	test "$C_delivered" = 1 -a "$C_encrypted" = 1
sleep 1   # a later Date: than the first key's message
via hosta ac-alice-other alice@example.org dave@example.net alice-other
check "conflict: alice-other's key at host A puts both of alice's bindings in conflict" \
	test "$(state alice@example.org "$alice" hostb)" = conflict -a \
	"$(state alice@example.org "$other" hostb)" = conflict
via hostb to-alice2 dave@example.net alice@example.org
fl_count to-alice2 --rcpt alice@example.org
check "conflict: host B no longer encrypts to alice (opportunistic: plain) ($FL_COUNTS)" \
	test "$C_delivered" = 1 -a "$C_encrypted" = 0 -a "$C_plaintext" = 1

# ------------------------------------------------------------------ outage
pida=$MPID_hosta
pidb=$MPID_hostb
loga=$(wc -l <"$PF_TMP/hosta/smp-milter.log")
out_mark=$(fl_maillog_lines out)
fl_send load "$N" "$RATE"
pf_wait "$FL_WAIT" eval '[ "$(fl_at_sink load)" -ge 5 ]' || pf_log "the stream did not start"
t0=$(date +%s)
tests/pg/pg-stop.sh "$PGD" --keep
got_4xx() { [ "$(fl_deferred_4xx "$out_mark")" -gt 0 ]; }
pf_wait 15 got_4xx
while [ $(($(date +%s) - t0)) -lt "$DOWN" ]; do sleep 0.2; done
deferred=$(fl_deferred_4xx "$out_mark")
replies=$(fl_maillog_since out "$out_mark" | grep -o 'said: 4[0-9][0-9] [0-9.]*' | sort | uniq -c | sort -rn | tr -s ' ' | tr '\n' ',')
tests/pg/pg-start.sh "$PGD" >/dev/null || pf_die "PostgreSQL did not start again"
up=$(($(date +%s) - t0))
fl_flush
check "outage: while the database was down (${up}s) mx answered 4xx and 'out' deferred ($deferred:${replies%,})" \
	test "$deferred" -gt 0
named=$(tail -n +"$((loga + 1))" "$PF_TMP/hosta/smp-milter.log" | grep -F -m1 "PostgreSQL database postgres (host $PGD, port 5432")
check "outage: the milter's log names the server ($(cut -c1-220 <<<"$named"))" test -n "$named"
check "outage: ... and never the password" test "$(cat "$PF_TMP"/host?/smp-milter.log | grep -c Sekr1tPw)" = 0
sent_ok=yes
fl_send_wait || sent_ok=no
check "outage: 'out' accepted all $N messages ($(cat "$WORK/load.send"))" test "$sent_ok" = yes
fl_drain load || pf_log "not everything arrived within $FL_WAIT s"
fl_count load --rcpt bob@example.net
fl_exact outage
check "outage: none in plain, none bounced ($FL_COUNTS)" test "$C_plaintext" = 0 -a "$(fl_bounced)" = 0
alive_both() { pf_alive "$pida" && pf_alive "$pidb"; }
check "outage: both milters are the processes they were (no restart)" alive_both
via hosta ac-dave dave@example.net carol@example.com dave
dave=$(fpr dave)
check "outage: afterwards host A harvests again and host B sees it" \
	test "$(state dave@example.net "$dave" hostb)" = active
via hostb to-bob dave@example.net bob@example.net
fl_count to-bob --rcpt bob@example.net
check "outage: afterwards host B encrypts again ($FL_COUNTS)" test "$C_delivered" = 1 -a "$C_encrypted" = 1

if [ "$failed" -gt 0 ]; then
	for h in hosta hostb; do
		pf_log "--- smp-milter $h log (tail)"
		tail -15 "$PF_TMP/$h/smp-milter.log" | sed 's/^/# /' >&2
	done
	pf_log "--- out maillog (tail)"
	tail -8 "$PF_TMP/out/log/maillog" | sed 's/^/# /' >&2
fi
pf_log "took $(fl_elapsed) s"
echo "1..$n"
[ "$failed" = 0 ]
