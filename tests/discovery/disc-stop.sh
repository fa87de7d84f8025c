#!/bin/sh
# disc-stop.sh - stop the servers disc-start.sh started, by their PIDs.
#
#   tests/discovery/disc-stop.sh DIR [--keep]
#
# Sends SIGTERM to the PIDs in DIR/knotd.pid and DIR/server.pid (only if
# that process is still the one started there: its command line names
# knotd or disc-server.py), waits for each to go (at most 10 s, then
# SIGKILL), and removes DIR unless --keep is given. Nothing else is ever
# signalled; a DIR with nothing running is not an error.
set -u

[ $# -ge 1 ] || { echo "usage: $0 DIR [--keep]" >&2; exit 64; }
dir=$1
keep=0
[ "${2:-}" = "--keep" ] && keep=1

# stop PIDFILE WHAT: WHAT is a word the process's command line must hold
stop() {
	[ -f "$1" ] || return 0
	pid=$(head -n 1 "$1")
	case $pid in
	'' | *[!0-9]*) rm -f "$1"; return 0 ;;
	esac
	if kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2"; then
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null; do
			i=$((i + 1))
			if [ $i -ge 100 ]; then
				kill -KILL "$pid" 2>/dev/null
				break
			fi
			sleep 0.1
		done
	fi
	rm -f "$1"
}

stop "$dir/server.pid" disc-server.py
stop "$dir/knotd.pid" knotd
if [ $keep = 0 ]; then
	rm -rf "$dir"
fi
exit 0
