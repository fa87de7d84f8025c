#!/bin/bash
# Drives the real smp-milter daemon with miltertest: one Lua script per
# scenario in tests/miltertest/. One daemon serves every scenario; each
# scenario's "-- config:" lines become the config, loaded with SIGHUP (so
# reload is exercised throughout). "-- setup:" lines are shell commands run
# after the reload and before the scenario (e.g. "$SMPCTL keys import ..."
# to prepare its keyring); "-- check:" lines run after it. "-- reload-config:"
# lines are a second config the scenario loads mid-transaction by running
# $MILTER_RELOAD (it returns once the daemon logged the reload). In config, setup
# and check lines @TMP@ is the runner's temporary directory. "-- log:" lines are patterns the daemon's
# log must show for that scenario. Also: config check exit codes, reload of a
# bad config, privilege drop, clean stop on SIGTERM.
# MILTER_WRAPPER (e.g. valgrind ...) runs the daemon under a wrapper.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
MILTER=$PWD/$B/bin/smp-milter
TMP=$(mktemp -d)
PID=
WAIT=${MILTER_WAIT:-30}
cleanup() {
	[ -n "${KEEP_LOG:-}" ] && cp "$TMP/milter.log" "$KEEP_LOG" 2>/dev/null
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
	[ -n "${PID2:-}" ] && kill -9 "$PID2" 2>/dev/null
	[ -n "${PID3:-}" ] && kill -9 "$PID3" 2>/dev/null
	[ -n "${DISC_OWN:-}" ] && tests/discovery/disc-stop.sh "$DISC_OWN"
	rm -rf "$TMP"
}
trap cleanup EXIT
# The key discovery test servers (tests/discovery/disc-start.sh): run-tests.sh's
# (SMP_TEST_DISC_*), else our own. In config lines @DISC_DNS@, @DISC_CA@,
# @DISC_TA@, @DISC_PORT@ and @DISC_BLACKHOLE@ name them.
DISC_OWN=
if [ -z "${SMP_TEST_DISC_DIR:-}" ]; then
	DISC_OWN=$(mktemp -d /tmp/smpdisc.XXXXXX)
	if disc_env=$(tests/discovery/disc-start.sh "$DISC_OWN"); then
		eval "$disc_env"
	fi
fi
subst() {
	sed -e "s|@TMP@|$TMP|g" -e "s|@DISC_DNS@|${SMP_TEST_DISC_DNS:-}|g" \
		-e "s|@DISC_CA@|${SMP_TEST_DISC_CA:-}|g" -e "s|@DISC_TA@|${SMP_TEST_DISC_TA:-}|g" \
		-e "s|@DISC_PORT@|${SMP_TEST_DISC_HTTPS_PORT:-}|g" \
		-e "s|@DISC_BLACKHOLE@|${SMP_TEST_DISC_BLACKHOLE:-}|g"
}
export MILTER_SOCKET="unix:$TMP/milter.sock" FIXTURES="$PWD/fixtures"
# miltertest reads each end-of-message request into a 1024-octet buffer:
# the daemon replaces an encrypted body in chunks smaller than that here
export SMP_MILTER_BODY_CHUNK=900
export MT_COMMON="$PWD/tests/miltertest/common.lua"

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }

base_config() {
	printf 'socket = "unix:%s/milter.sock"\nuser = ""\ngroup = ""\n' "$TMP"
	printf 'pidfile = "%s/milter.pid"\nlog_level = debug\n' "$TMP"
	printf 'keyring {\n  path = "%s/keyring-base.db"\n}\ngnupg_home = "%s/gnupg"\n' "$TMP" "$TMP"
	# scenarios reuse fixtures: only the replay scenarios remember payloads
	printf 'replay {\n  enabled = false\n}\n'
	# key discovery only where a scenario turns it on (discovery-*.lua):
	# the others' recipients are published nowhere
	printf 'discovery {\n  methods = {off}\n}\n'
}

# wait_log PATTERN COUNT: until the log holds COUNT lines matching PATTERN
wait_log() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		[ "$(grep -c -- "$1" "$TMP/milter.log")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# 1. config check (-t)
printf '' >"$TMP/empty.conf"
"$MILTER" -t -c "$TMP/empty.conf" >/dev/null 2>&1
[ $? = 0 ] && ok "an empty config file is valid (-t exits 0)" || notok "empty config -t"
"$MILTER" -t -c etc/smp-milter.conf >/dev/null 2>&1
[ $? = 0 ] && ok "etc/smp-milter.conf is valid" || notok "etc/smp-milter.conf -t"
while IFS='|' read -r text want; do
	printf '%b' "$text" >"$TMP/bad.conf"
	err=$("$MILTER" -t -c "$TMP/bad.conf" 2>&1)
	rc=$?
	if [ $rc = 78 ] && [[ "$err" == *"$TMP/bad.conf:$want"* ]]; then
		ok "-t refuses '${text//\\n/ }' with exit 78: $err"
	else
		notok "-t on '${text//\\n/ }': want 78 and 'bad.conf:$want', got $rc '$err'"
	fi
done <<'LIST'
frobnicate = 1|1: no such option 'frobnicate'
on_invalid = rejekt|1: on_invalid: 'rejekt'
on_error = maybe|1: on_error: 'maybe'
\n\nlimits {\n  max_parts = 0\n}|4: max_parts
outbound {\n  networks = {"10.0.0.0/8", "300.1.2.3"}\n}|2: networks: '300.1.2.3'
outbound {\n  networks = {"fe80::/129"}\n}|2: networks
socket = "inet:99999@127.0.0.1"|1: socket
socket = "tcp:8890"|1: socket
socket = "unix:"|1: socket
socket_mode = "0999"|1: socket_mode
detect {\n  subject_match = fuzzy\n}|2: subject_match
log_level = loud|1: log_level
encrypt {\n  default = sometimes\n}|2: default
encrypt {\n  policy "example.net" {\n    encrypt = always\n  }\n}|3: encrypt
LIST
"$MILTER" -t -c "$TMP/missing.conf" >/dev/null 2>&1
[ $? = 78 ] && ok "-t on a missing file exits 78" || notok "-t missing file"
# key discovery: -t says what it will do, and finds an unreadable trust
# anchor file before the first recipient would get 451 for it
printf 'encrypt {\n  default = opportunistic\n}\n' >"$TMP/disc.conf"
out=$("$MILTER" -t -c "$TMP/disc.conf" 2>/dev/null)
[[ "$out" == *"key discovery: wkd, dane (timeout 5000 ms, on_error plain)"* ]] &&
	ok "-t reports key discovery" || notok "-t discovery report: $out"
printf 'encrypt {\n  default = opportunistic\n}\ndiscovery {\n  dns_trust_anchor_file = "%s/none.key"\n}\n' "$TMP" >"$TMP/disc.conf"
err=$("$MILTER" -t -c "$TMP/disc.conf" 2>&1)
rc=$?
[ $rc = 78 ] && [[ "$err" == *"discovery.dns_trust_anchor_file"*"cannot read it"* ]] &&
	ok "-t refuses an unreadable DNS trust anchor file (exit 78)" ||
	notok "-t unreadable trust anchor: $rc '$err'"

# 2. the scenarios, one daemon, config swapped by SIGHUP
base_config >"$TMP/milter.conf"
${MILTER_WRAPPER:-} "$MILTER" -f -c "$TMP/milter.conf" >"$TMP/milter.log" 2>&1 &
PID=$!
if wait_log "starting on" 1 && for ((i = 0; i < WAIT * 10; i++)); do [ -S "$TMP/milter.sock" ] && break; sleep 0.1; done && [ -S "$TMP/milter.sock" ]; then
	ok "daemon started on a unix socket"
	# under valgrind the main thread may still be running code when a
	# signal comes, and valgrind then hands it to libmilter's signal
	# thread, which stops the milter (see 3c): let it reach its wait
	[ -n "${MILTER_WRAPPER:-}" ] && sleep 1
else
	notok "daemon did not start"; cat "$TMP/milter.log"; exit 1
fi
reloads=0
# $MILTER_RELOAD: load $TMP/milter.next.conf now, return once it is logged
cat >"$TMP/reload.sh" <<RELOAD
#!/bin/bash
n=\$(grep -c "configuration reloaded" "$TMP/milter.log")
cp "$TMP/milter.next.conf" "$TMP/milter.conf"
kill -HUP $PID
for ((i = 0; i < $WAIT * 10; i++)); do
	[ "\$(grep -c "configuration reloaded" "$TMP/milter.log")" -gt "\$n" ] && exit 0
	sleep 0.1
done
exit 1
RELOAD
chmod +x "$TMP/reload.sh"
export MILTER_RELOAD="$TMP/reload.sh"
run_scenario() { # run_scenario SCRIPT [extra config text]
	local s=$1 name
	name=$(basename "$s" .lua)
	{ base_config; sed -n 's/^-- config: \{0,1\}//p' "$s" | subst; printf '%b' "${2:-}"; } >"$TMP/milter.conf"
	{ base_config; sed -n 's/^-- reload-config: \{0,1\}//p' "$s" | subst; } >"$TMP/milter.next.conf"
	kill -HUP "$PID"
	reloads=$((reloads + 1))
	if ! wait_log "configuration reloaded" "$reloads"; then
		notok "$name: config not reloaded"; return
	fi
	local setup_failed=""
	while IFS= read -r cmd; do
		[ -z "$cmd" ] && continue
		SMPCTL="$PWD/$B/bin/smpctl -c $TMP/milter.conf" bash -c "$cmd" >"$TMP/setup.out" 2>&1 ||
			setup_failed="$setup_failed setup($cmd): $(head -c 300 "$TMP/setup.out")"
	done < <(sed -n 's/^-- setup: //p' "$s" | subst)
	if [ -n "$setup_failed" ]; then
		notok "$name:$setup_failed"; return
	fi
	local before
	before=$(wc -l <"$TMP/milter.log")
	if out=$(miltertest -s "$s" 2>&1); then
		local missing=""
		while IFS= read -r pat; do
			[ -z "$pat" ] && continue
			tail -n +"$((before + 1))" "$TMP/milter.log" | grep -q -e "$pat" || missing="$missing [$pat]"
		done < <(sed -n 's/^-- log: //p' "$s")
		while IFS= read -r chk; do
			[ -z "$chk" ] && continue
			SMPCTL="$PWD/$B/bin/smpctl -c $TMP/milter.conf" bash -c "$chk" >/dev/null 2>&1 ||
				missing="$missing check($chk)"
		done < <(sed -n 's/^-- check: //p' "$s" | subst)
		if [ -z "$missing" ]; then ok "$name"; else notok "$name: log lacks$missing"; fi
	else
		notok "$name: $out"
	fi
	# a scenario may have reloaded by itself ($MILTER_RELOAD)
	reloads=$(grep -c "configuration reloaded" "$TMP/milter.log")
}
for s in tests/miltertest/*.lua; do
	[ "$(basename "$s")" = common.lua ] && continue
	if [ -n "${MILTER_WRAPPER:-}" ] && grep -q '^-- valgrind: skip' "$s"; then
		ok "# SKIP $(basename "$s" .lua): $(sed -n 's/^-- valgrind: skip //p' "$s")"
		continue
	fi
	run_scenario "$s"
done

# 3. a bad config on SIGHUP is refused and the running one kept
run_scenario tests/miltertest/invalid-reject.lua
printf 'on_invalid = tag\nthis is not a config\n' >>"$TMP/milter.conf"
kill -HUP "$PID"
if wait_log "reload failed, keeping the running configuration: $TMP/milter.conf:[0-9]*:" 1 &&
	miltertest -s tests/miltertest/invalid-reject.lua >/dev/null 2>&1; then
	ok "a bad config on SIGHUP is logged with file:line and the old one kept"
else
	notok "bad config reload"
fi
grep -q "TESTQID: direction=inbound smp=invalid verdict=\"invalid; reason=" "$TMP/milter.log" &&
	grep -q 'action=reject ms=[0-9]*$' "$TMP/milter.log" &&
	ok "one log line per message: queue ID, direction, verdict, action, ms" ||
	notok "log line format"

# 3c. SIGHUPs in a burst (a reload sent twice, a config tool): each is a
# reload, none stops the milter (libmilter's own signal thread would stop
# it on a SIGHUP it took). Not under valgrind: valgrind delivers a
# process-directed signal to any thread that waits for it, not to the
# thread-group leader first as Linux does, so there libmilter's thread
# takes some of them whatever the daemon does.
if [ -n "${MILTER_WRAPPER:-}" ]; then
	ok "# SKIP SIGHUP burst: valgrind routes signals to libmilter's thread"
else
	# a big configuration (20,000 address policies, some 2 s) takes a while to read:
	# the SIGHUPs arrive while one is being read
	{ base_config; printf 'encrypt {\n  default = off\n'
	  for ((i = 0; i < 20000; i++)); do printf '  policy "u%d@example.com" {\n    encrypt = opportunistic\n  }\n' "$i"; done
	  printf '}\n'; } >"$TMP/milter.conf"
	before=$(grep -c "configuration reloaded" "$TMP/milter.log")
	for ((i = 0; i < 20; i++)); do kill -HUP "$PID"; sleep 0.02; done
	wait_log "configuration reloaded" $((before + 1))
	sleep 1
	if kill -0 "$PID" 2>/dev/null && ! grep -q "smp-milter stopped" "$TMP/milter.log" &&
		miltertest -s tests/miltertest/valid-smp-tagged.lua >/dev/null 2>&1; then
		ok "20 SIGHUPs 20 ms apart: reloaded ($(($(grep -c "configuration reloaded" "$TMP/milter.log") - before)) times), still serving"
	else
		notok "20 SIGHUPs 20 ms apart stopped the milter"; tail -5 "$TMP/milter.log"
	fi
fi

# 4. SIGTERM stops it cleanly
kill -TERM "$PID"
for ((i = 0; i < WAIT * 10; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
	notok "daemon still running after SIGTERM"
else
	wait "$PID"
	rc=$?
	[ $rc = 0 ] && ok "SIGTERM stops the daemon with exit 0" || { notok "exit status $rc after SIGTERM"; tail -30 "$TMP/milter.log"; }
	[ ! -e "$TMP/milter.pid" ] && ok "pidfile removed at exit" || notok "pidfile left behind"
fi
PID=

# 4b. housekeeping: once a message used the keyring, the housekeeping
# thread prunes it (not on the message's path), once an hour. A daemon of
# its own, whose keyring no scenario breaks; it looks every second.
printf 'socket = "unix:%s/hk.sock"\nuser = ""\ngroup = ""\npidfile = "%s/hk.pid"\n' "$TMP" "$TMP" >"$TMP/hk.conf"
printf 'keyring {\n  path = "%s/hk.db"\n}\ngnupg_home = "%s/gnupg-hk"\n' "$TMP" "$TMP" >>"$TMP/hk.conf"
SMP_MILTER_MAINTAIN_TICK=1 ${MILTER_WRAPPER:-} "$MILTER" -f -c "$TMP/hk.conf" >"$TMP/hk.log" 2>&1 &
PID3=$!
for ((i = 0; i < WAIT * 10; i++)); do [ -S "$TMP/hk.sock" ] && break; sleep 0.1; done
sleep 2
grep -q "keyring prune" "$TMP/hk.log" && notok "pruned before the keyring was used" ||
	ok "no prune while no message used the keyring"
if MILTER_SOCKET="unix:$TMP/hk.sock" miltertest -s tests/miltertest/valid-smp-tagged.lua >/dev/null 2>&1; then
	for ((i = 0; i < WAIT * 10; i++)); do grep -q "keyring prune" "$TMP/hk.log" && break; sleep 0.1; done
	sleep 2
	np=$(grep -c "keyring pruned: events=[0-9]* (events_keep=400 days) replay_entries=[0-9]*" "$TMP/hk.log")
	nall=$(grep -c "keyring prune" "$TMP/hk.log")
	[ "$np" = 1 ] && [ "$nall" = 1 ] &&
		ok "the housekeeping thread pruned the keyring once after its first use" ||
		{ notok "housekeeping: $np good prune lines, $nall in all"; grep "prune" "$TMP/hk.log"; }
else
	notok "housekeeping: a valid SMP message through the second daemon failed"
fi
kill -TERM "$PID3"
wait "$PID3" 2>/dev/null
PID3=

# 4c. background refresh (doc/discovery.md): the housekeeping thread asks
# the network again for a key from WKD once its cache entry is due (here:
# made due by hand), so a revocation the owner's domain publishes stops
# encryption to it without anyone doing anything. A daemon of its own.
E=erin@revoke.smp.example
wkd=$(awk -F'\t' -v a=$E '$1 == a {print $3}' "${SMP_TEST_DISC_DIR:-/nonexistent}/cases.tsv" 2>/dev/null)
if [ -n "$wkd" ]; then
	{
		printf 'socket = "unix:%s/rf.sock"\nuser = ""\ngroup = ""\nlog_level = debug\n' "$TMP"
		printf 'keyring {\n  path = "%s/rf.db"\n}\nreplay {\n  enabled = false\n}\n' "$TMP"
		printf 'encrypt {\n  policy ".smp.example" {\n    encrypt = required\n  }\n}\n'
		printf 'discovery {\n  ca_file = "%s"\n  https_port = %s\n' "$SMP_TEST_DISC_CA" "$SMP_TEST_DISC_HTTPS_PORT"
		printf '  dns_forwarders = {"%s"}\n  dns_trust_anchor_file = "%s"\n}\n' "$SMP_TEST_DISC_DNS" "$SMP_TEST_DISC_TA"
	} >"$TMP/rf.conf"
	for v in encrypted refused; do
		cat >"$TMP/rf-$v.lua" <<LUA
dofile(os.getenv("MT_COMMON"))
smp.rcpt = "<$E>"
local conn = smp.connect(smp.outbound_ip)
local r = smp.send_fixture(conn, "not-smp-plain.eml", "RF-$v")
if "$v" == "encrypted" then
	smp.expect(r == SMFIR_CONTINUE, "continue")
	smp.expect_encrypted(conn)
else
	smp.expect(r == SMFIR_REPLYCODE, "refused with a reply code")
end
mt.disconnect(conn)
LUA
	done
	SMP_MILTER_MAINTAIN_TICK=1 ${MILTER_WRAPPER:-} "$MILTER" -f -c "$TMP/rf.conf" >"$TMP/rf.log" 2>&1 &
	PID3=$!
	for ((i = 0; i < WAIT * 10; i++)); do [ -S "$TMP/rf.sock" ] && break; sleep 0.1; done
	if MILTER_SOCKET="unix:$TMP/rf.sock" miltertest -s "$TMP/rf-encrypted.lua" >"$TMP/rf.out" 2>&1; then
		ok "refresh: erin, known only by WKD, gets encrypted mail"
	else
		notok "refresh: first message to erin: $(head -c 300 "$TMP/rf.out")"
	fi
	cp "$SMP_TEST_DISC_DIR/$wkd" "$TMP/erin.keep"
	cp "$SMP_TEST_DISC_DIR/keys/$E.revoked" "$SMP_TEST_DISC_DIR/$wkd"
	python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('UPDATE discovery SET expires = 0'); c.commit()" "$TMP/rf.db"
	for ((i = 0; i < WAIT * 10; i++)); do grep -q "discovery refresh <$E>" "$TMP/rf.log" && break; sleep 0.1; done
	cp "$TMP/erin.keep" "$SMP_TEST_DISC_DIR/$wkd"
	grep -q "discovery refresh <$E>: nokey.*revoked" "$TMP/rf.log" &&
		ok "refresh: the housekeeping thread fetched the revocation by itself" ||
		notok "refresh: no refresh of erin's key logged: $(grep 'discovery' "$TMP/rf.log" | tail -3)"
	if MILTER_SOCKET="unix:$TMP/rf.sock" miltertest -s "$TMP/rf-refused.lua" >"$TMP/rf.out" 2>&1; then
		ok "refresh: encryption to erin stopped (required: refused, not plain)"
	else
		notok "refresh: message to erin after the revocation: $(head -c 300 "$TMP/rf.out")"
	fi
	kill -TERM "$PID3"
	wait "$PID3" 2>/dev/null
	PID3=
else
	notok "refresh: the discovery test servers are not running (tests/discovery/disc-start.sh)"
fi

# 5. privilege drop and socket ownership (root only)
if [ "$(id -u)" = 0 ] && getent passwd nobody >/dev/null; then
	grp=$(id -gn nobody)
	mkdir -p "$TMP/run" && chmod 0755 "$TMP" "$TMP/run"
	printf 'socket = "unix:%s/run/s.sock"\nuser = "nobody"\ngroup = "%s"\nsocket_mode = "0660"\npidfile = "%s/run/p.pid"\n' \
		"$TMP" "$grp" "$TMP" >"$TMP/drop.conf"
	"$MILTER" -f -c "$TMP/drop.conf" >"$TMP/drop.log" 2>&1 &
	PID2=$!
	for ((i = 0; i < 100; i++)); do [ -S "$TMP/run/s.sock" ] && break; sleep 0.1; done
	sleep 0.2
	uid=$(awk '/^Uid:/ {print $2}' /proc/$PID2/status 2>/dev/null)
	sock=$(stat -c '%U:%G %a' "$TMP/run/s.sock" 2>/dev/null)
	[ "$uid" = "$(id -u nobody)" ] && ok "privileges dropped to nobody after start-up" || notok "running as uid '$uid'"
	[ "$sock" = "nobody:$grp 660" ] && ok "unix socket owned nobody:$grp mode 660" || notok "socket is '$sock'"
	[ "$(cat "$TMP/run/p.pid" 2>/dev/null)" = "$PID2" ] && ok "pidfile holds the daemon's PID" || notok "pidfile"
	kill -9 "$PID2"
	PID2=
else
	ok "# SKIP privilege drop needs root and user nobody"
fi
