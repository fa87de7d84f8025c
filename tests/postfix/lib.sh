# shellcheck shell=bash disable=SC2034
# tests/postfix/lib.sh - throwaway Postfix instances, smtp-sink and
# smp-milter for the end-to-end tests and the Postfix benchmark.
#
# Source it from bash, then:
#   pf_init                          temp dir + EXIT trap that cleans up
#   pf_sink_start NAME               smtp-sink on 127.0.0.1:<free port>
#   pf_instance_create NAME RELAY    Postfix instance NAME relaying to RELAY
#                                    ("[127.0.0.1]:port"); options via PF_*
#   pf_instance_start NAME / pf_instance_stop NAME
#   pf_milter_start CONF_EXTRA...    build/bin/smp-milter -f on a unix socket
#   pf_milter_kill9 / pf_milter_stop
#   pf_smpctl ARGS...                build/bin/smpctl -c <the milter's config>
#   pf_milter_reload EXTRA... / pf_milter_reload_gnupg HOME EXTRA...
#                                    rewrite the config, SIGHUP, wait
#   pf_sink_count / pf_sink_file / pf_sink_files DIR PATTERN   sink dumps
#
# The milter's keyring database and GnuPG home live under $PF_TMP/milter
# too (keyring.db, gnupg/), never in /var/lib/smp-milter.
#
# Everything lives under one mktemp directory ($PF_TMP): every instance has
# its own config_directory, queue_directory and data_directory there and
# listens on 127.0.0.1 only. The system Postfix instance (/etc/postfix,
# /var/spool/postfix) is never read, written, started or stopped. Every
# process started here is recorded by PID and stopped by PID; nothing is
# killed by name. Postfix must run as root (it does in CI).
#
# Needs: postfix (postfix, postconf, postqueue, sendmail, smtp-sink,
# smtp-source), swaks, ss (iproute2).

PF_ROOT=${PF_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
B=${B:-build}
PF_MILTER_BIN=${PF_MILTER_BIN:-$PF_ROOT/$B/bin/smp-milter}
PF_SMPCTL_BIN=${PF_SMPCTL_BIN:-$PF_ROOT/$B/bin/smpctl}
PF_DAEMON_DIR=${PF_DAEMON_DIR:-$(postconf -dh daemon_directory 2>/dev/null)}
PF_DAEMON_DIR=${PF_DAEMON_DIR:-/usr/lib/postfix/sbin}
PF_TMP=
PF_INSTANCES=()   # names of instances created (stopped by pf_cleanup)
PF_PIDS=()        # other processes we started (sinks, milters)
PF_USED_PORTS=" "
PF_MILTER_PID=
PF_MILTER_SOCK=
PF_MILTER_LOG=
PF_MILTER_CONF=
PF_MILTER_KEYRING=
PF_MILTER_GNUPG=

# TAP lines for the scripts that source this file: ok DESC; not_ok DESC
# [DETAIL...] (each detail a "#   " line). n counts the lines, failed the
# not-ok ones (tests/postfix/e2e.sh keeps its own, which also logs times).
n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
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

# pf_log MSG: a TAP comment on stderr.
pf_log() { printf '# %s\n' "$*" >&2; }

pf_die() {
	printf 'Bail out! %s\n' "$*"
	exit 1
}

# pf_require: fail clearly when the tools are missing or we are not root.
pf_require() {
	local t
	for t in postfix postconf postqueue smtp-sink smtp-source swaks ss; do
		command -v "$t" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
		command -v "$t" >/dev/null 2>&1 ||
			pf_die "$t not found (apt-get install postfix swaks iproute2)"
	done
	[ "$(id -u)" = 0 ] || pf_die "the Postfix tests must run as root"
	getent passwd postfix >/dev/null || pf_die "no 'postfix' user"
	getent group postdrop >/dev/null || pf_die "no 'postdrop' group"
}

# pf_init [PREFIX]: makes $PF_TMP and installs the cleanup trap.
pf_init() {
	pf_require
	PF_TMP=$(mktemp -d "${TMPDIR:-/tmp}/${1:-smp-postfix}.XXXXXX") ||
		pf_die "mktemp failed"
	# Postfix daemons run as 'postfix' and must reach the milter socket.
	chmod 755 "$PF_TMP"
	if ! runuser -u postfix -- test -x "$PF_TMP" 2>/dev/null; then
		rmdir "$PF_TMP"
		pf_die "user postfix cannot reach $PF_TMP: set TMPDIR to a world-searchable directory (e.g. /tmp)"
	fi
	trap pf_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# pf_wait TIMEOUT_S CMD...: runs CMD every 0.1 s until it succeeds; 1 on timeout.
pf_wait() {
	local limit=$(($1 * 10)) i=0
	shift
	while ! "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.1
	done
	return 0
}

pf_port_listening() {
	[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# pf_free_port: a TCP port in 20000-40000 nobody listens on (nor ours).
pf_free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 20001))
		case $PF_USED_PORTS in *" $p "*) continue ;; esac
		pf_port_listening "$p" && continue
		PF_USED_PORTS="$PF_USED_PORTS$p "
		echo "$p"
		return 0
	done
	pf_die "no free TCP port found"
}

pf_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# pf_kill_pid PID: TERM, wait up to 5 s, then KILL; reaps our children.
pf_kill_pid() {
	local pid=$1
	PF_LAST_RC=
	pf_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	pf_wait 5 eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	PF_LAST_RC=$?
	return 0
}

# ---------------------------------------------------------------- smtp-sink

# pf_sink_start NAME [EXTRA smtp-sink OPTIONS...]: starts an smtp-sink that
# dumps every message to a file of its own under $PF_TMP/NAME/mail/.
# Sets SINK_PORT_<NAME> and SINK_DIR_<NAME>. With PF_SINK_NODUMP=1 the sink
# only counts (for the benchmark).
pf_sink_start() {
	local name=$1 port dir pid
	shift
	port=$(pf_free_port)
	dir=$PF_TMP/$name
	mkdir -p "$dir/mail"
	chown postfix "$dir/mail"
	if [ "${PF_SINK_NODUMP:-0}" = 1 ]; then
		smtp-sink -u postfix -h "$name" "$@" "127.0.0.1:$port" 256 \
			>"$dir/sink.log" 2>&1 &
	else
		smtp-sink -u postfix -h "$name" -d "$dir/mail/msg." "$@" \
			"127.0.0.1:$port" 256 >"$dir/sink.log" 2>&1 &
	fi
	pid=$!
	PF_PIDS+=("$pid")
	pf_wait 10 pf_port_listening "$port" || pf_die "smtp-sink $name did not listen on $port"
	printf -v "SINK_PORT_$name" '%s' "$port"
	printf -v "SINK_DIR_$name" '%s' "$dir/mail"
	printf -v "SINK_PID_$name" '%s' "$pid"
}

# pf_sink_count DIR [PATTERN]: messages dumped in DIR (containing PATTERN).
pf_sink_count() {
	local dir=$1 pat=${2:-}
	if [ -z "$pat" ]; then
		find "$dir" -type f -name 'msg.*' | wc -l
	else
		find "$dir" -type f -name 'msg.*' -print0 |
			xargs -0 -r grep -l -F -e "$pat" -- | wc -l
	fi
}

# pf_sink_file DIR PATTERN: the dump file holding PATTERN (first one).
pf_sink_file() {
	find "$1" -type f -name 'msg.*' -print0 | xargs -0 -r grep -l -F -e "$2" -- | head -1
}

# --------------------------------------------------------- Postfix instances

# pf_instance_create NAME RELAYHOST
# Writes $PF_TMP/NAME/{etc,queue,data,log}. Tunables (env):
#   PF_SMTPD=1          run an smtpd on 127.0.0.1:<free port> (SMTPD_PORT_<NAME>)
#   PF_SMTPD_MILTERS    smtpd_milters value (default none)
#   PF_NON_SMTPD_MILTERS non_smtpd_milters value (default none)
#   PF_EXTRA_MAIN       extra main.cf lines
pf_instance_create() {
	local name=$1 relay=$2 dir port=""
	dir=$PF_TMP/$name
	mkdir -p "$dir/etc" "$dir/log" "$dir/queue"
	chmod 755 "$dir" "$dir/queue"
	if [ "${PF_SMTPD:-1}" = 1 ]; then
		port=$(pf_free_port)
	fi
	cat >"$dir/etc/main.cf" <<EOF
# throwaway Postfix instance '$name' of smp-milter's tests (never the system one)
compatibility_level = 3.6
config_directory = $dir/etc
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = $PF_DAEMON_DIR
mail_owner = postfix
setgid_group = postdrop
syslog_name = smp-test-$name
maillog_file = $dir/log/maillog
maillog_file_prefixes = $PF_TMP
multi_instance_enable = no

inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = $name.smp-test.invalid
mydomain = smp-test.invalid
myorigin = \$myhostname
mydestination =
relay_domains =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled here
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relayhost = $relay
append_dot_mydomain = no
biff = no
smtputf8_enable = no
notify_classes =
delay_warning_time = 0
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
in_flow_delay = 0
default_process_limit = 250
default_destination_concurrency_limit = 50
initial_destination_concurrency = 20
smtp_connection_cache_on_demand = yes
message_size_limit = 20480000

# retry deferred mail quickly
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h

smtpd_milters = ${PF_SMTPD_MILTERS:-}
non_smtpd_milters = ${PF_NON_SMTPD_MILTERS:-}
milter_default_action = tempfail
milter_protocol = 6
${PF_EXTRA_MAIN:-}
EOF
	# Every service unchained (chroot n): the milter socket lives in $PF_TMP.
	{
		cat <<'EOF'
# service type  private unpriv  chroot  wakeup  maxproc command + args
EOF
		[ -n "$port" ] && printf '127.0.0.1:%s inet n - n - - smtpd\n' "$port"
		cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	} >"$dir/etc/master.cf"
	PF_INSTANCES+=("$name")
	printf -v "SMTPD_PORT_$name" '%s' "$port"
	printf -v "PF_DIR_$name" '%s' "$dir"
}

pf_conf() { echo "$PF_TMP/$1/etc"; }
pf_queue() { echo "$PF_TMP/$1/queue"; }

pf_master_pid() {
	local f
	f=$(pf_queue "$1")/pid/master.pid
	[ -r "$f" ] && tr -dc 0-9 <"$f"
}

# pf_instance_start NAME: starts the instance and waits for its smtpd.
pf_instance_start() {
	local name=$1 conf port out
	conf=$(pf_conf "$name")
	out=$(postfix -c "$conf" start 2>&1) || {
		printf '%s\n' "$out" >&2
		tail -5 "$PF_TMP/$name/log/maillog" >&2 2>/dev/null
		pf_die "postfix instance $name did not start"
	}
	port=SMTPD_PORT_$name
	port=${!port}
	if [ -n "$port" ]; then
		pf_wait 20 pf_port_listening "$port" ||
			pf_die "instance $name does not listen on 127.0.0.1:$port"
	fi
}

# pf_descendants PID: PIDs of PID's children, recursively.
pf_descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		pf_descendants "$c"
	done
}

# pf_instance_stop NAME: postfix stop, then kill what is left of *this*
# instance (its master from the instance's own master.pid and the master's
# children), by PID.
pf_instance_stop() {
	local name=$1 conf master kids p
	conf=$(pf_conf "$name")
	master=$(pf_master_pid "$name")
	pf_alive "$master" || return 0
	kids=$(pf_descendants "$master")
	postfix -c "$conf" stop >/dev/null 2>&1
	pf_wait 10 eval "! kill -0 $master 2>/dev/null" || kill -KILL "$master" 2>/dev/null
	for p in $kids; do
		pf_alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	return 0
}

# pf_queue_count NAME [SUBDIR...]: queue files in the instance's queue
# (default: maildrop incoming active deferred hold).
pf_queue_count() {
	local q d n=0
	q=$(pf_queue "$1")
	shift
	[ $# -eq 0 ] && set -- maildrop incoming active deferred hold
	for d in "$@"; do
		[ -d "$q/$d" ] && n=$((n + $(find "$q/$d" -type f | wc -l)))
	done
	echo "$n"
}

pf_queue_empty() { [ "$(pf_queue_count "$1")" = 0 ]; }

# pf_sendmail NAME FROM TO FILE: submits FILE to instance NAME via sendmail(1).
pf_sendmail() {
	/usr/sbin/sendmail -C "$(pf_conf "$1")" -f "$2" -- "$3" <"$4"
}

# pf_swaks PORT FILE [swaks options...]: one SMTP transaction to 127.0.0.1:PORT.
pf_swaks() {
	local port=$1 file=$2
	shift 2
	swaks --server 127.0.0.1 --port "$port" --helo client.smp-test.invalid \
		--from alice@example.org --to bob@example.net \
		--data "@$file" --timeout 60 "$@" 2>&1
}

# --------------------------------------------------------------- smp-milter

# pf_milter_config EXTRA_LINES: writes $PF_TMP/milter/smp-milter.conf, with
# the keyring database ($PF_MILTER_KEYRING) and the GnuPG home
# ($PF_MILTER_GNUPG) under $PF_TMP/milter: they survive a restart of the
# milter within one run, and nothing outside $PF_TMP is used.
pf_milter_config() {
	mkdir -p "$PF_TMP/milter"
	touch "$PF_TMP/milter/smp-milter.log"
	PF_MILTER_SOCK=$PF_TMP/milter/smp-milter.sock
	PF_MILTER_CONF=$PF_TMP/milter/smp-milter.conf
	PF_MILTER_LOG=$PF_TMP/milter/smp-milter.log
	PF_MILTER_KEYRING=$PF_TMP/milter/keyring.db
	PF_MILTER_GNUPG=$PF_TMP/milter/gnupg
	cat >"$PF_MILTER_CONF" <<EOF
# smp-milter for the Postfix end-to-end tests
socket = "unix:$PF_MILTER_SOCK"
socket_mode = "0666"
user = ""
group = ""
pidfile = ""
log_level = "info"
keyring {
  path = "$PF_MILTER_KEYRING"
}
gnupg_home = "$PF_MILTER_GNUPG"
$*
EOF
}

# pf_smpctl ARGS...: smpctl on the milter's config (its keyring and GnuPG
# home), e.g. pf_smpctl keys show dave@example.net --json.
pf_smpctl() {
	"$PF_SMPCTL_BIN" -c "$PF_MILTER_CONF" "$@"
}

pf_sock_ready() { [ -S "$1" ]; }

# pf_milter_start [EXTRA_CONFIG_LINES]: (re)writes the config and starts
# smp-milter in the foreground, logging to $PF_MILTER_LOG (appended).
pf_milter_start() {
	[ -x "$PF_MILTER_BIN" ] || pf_die "$PF_MILTER_BIN not built (make)"
	pf_milter_config "$@"
	rm -f "$PF_MILTER_SOCK"
	echo "--- start $(date +%T.%N)" >>"$PF_MILTER_LOG"
	"$PF_MILTER_BIN" -f -c "$PF_MILTER_CONF" >>"$PF_MILTER_LOG" 2>&1 &
	PF_MILTER_PID=$!
	PF_PIDS+=("$PF_MILTER_PID")
	pf_wait 20 pf_sock_ready "$PF_MILTER_SOCK" || {
		tail -5 "$PF_MILTER_LOG" >&2
		pf_die "smp-milter did not create $PF_MILTER_SOCK"
	}
	pf_alive "$PF_MILTER_PID" || pf_die "smp-milter exited at start"
}

# pf_milter_reload [EXTRA_CONFIG_LINES]: rewrites the config and sends
# SIGHUP; waits (10 s at most) for "configuration reloaded" in the log.
pf_milter_reload() {
	local before
	before=$(grep -c 'configuration reloaded' "$PF_MILTER_LOG")
	pf_milter_config "$@"
	kill -HUP "$PF_MILTER_PID" 2>/dev/null || return 1
	# shellcheck disable=SC2016
	pf_wait 10 eval '[ "$(grep -c "configuration reloaded" "$PF_MILTER_LOG")" -gt '"$before"' ]'
}

# pf_milter_reload_gnupg HOME [EXTRA_CONFIG_LINES]: like pf_milter_reload,
# with gnupg_home = HOME instead of $PF_MILTER_GNUPG (e.g. a path that is a
# file, to break it); pf_milter_reload switches back to the usual home.
pf_milter_reload_gnupg() {
	local before home=$1
	shift
	before=$(grep -c 'configuration reloaded' "$PF_MILTER_LOG")
	pf_milter_config "$@"
	sed -i "s|^gnupg_home = .*|gnupg_home = \"$home\"|" "$PF_MILTER_CONF"
	kill -HUP "$PF_MILTER_PID" 2>/dev/null || return 1
	# shellcheck disable=SC2016
	pf_wait 10 eval '[ "$(grep -c "configuration reloaded" "$PF_MILTER_LOG")" -gt '"$before"' ]'
}

# pf_sink_files DIR PATTERN: every dump file holding PATTERN, one a line.
pf_sink_files() {
	find "$1" -type f -name 'msg.*' -print0 | xargs -0 -r grep -l -F -e "$2" -- | sort
}

pf_milter_kill9() {
	kill -KILL "$PF_MILTER_PID" 2>/dev/null
	wait "$PF_MILTER_PID" 2>/dev/null
	echo "--- killed -9 $(date +%T.%N)" >>"$PF_MILTER_LOG"
}

# pf_milter_stop: SIGTERM (a clean stop, so ASan reports leaks), wait.
pf_milter_stop() {
	pf_kill_pid "$PF_MILTER_PID"
}

# ------------------------------------------------------------------ cleanup

pf_cleanup() {
	local rc=$? n p
	trap - EXIT INT TERM
	for n in "${PF_INSTANCES[@]}"; do
		pf_instance_stop "$n"
	done
	for p in "${PF_PIDS[@]}"; do
		pf_kill_pid "$p"
	done
	if [ -n "$PF_TMP" ] && [ -d "$PF_TMP" ]; then
		if [ "${PF_KEEP:-0}" = 1 ]; then
			pf_log "kept $PF_TMP"
		else
			rm -rf "$PF_TMP"
		fi
	fi
	exit $rc
}
