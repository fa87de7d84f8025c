#!/bin/sh
# pg-stop.sh - stop a server pg-start.sh started, by its PID.
#
#   tests/pg/pg-stop.sh DIR [--keep]
#
# Sends SIGQUIT (immediate shutdown) to the postmaster whose PID is the
# first line of DIR/data/postmaster.pid, waits for it to go (at most 30 s,
# then SIGKILL), and removes DIR unless --keep is given (pg-start.sh DIR
# then starts the same data again). Nothing else is ever signalled; a DIR
# with no running server is not an error.
set -u

[ $# -ge 1 ] || { echo "usage: $0 DIR [--keep]" >&2; exit 64; }
dir=$1
keep=0
[ "${2:-}" = "--keep" ] && keep=1

pidfile=$dir/data/postmaster.pid
if [ -f "$pidfile" ]; then
	pid=$(head -n 1 "$pidfile")
	case $pid in
	'' | *[!0-9]*) pid="" ;;
	esac
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -QUIT "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null; do
			i=$((i + 1))
			if [ $i -ge 300 ]; then
				kill -KILL "$pid" 2>/dev/null
				break
			fi
			sleep 0.1
		done
	fi
	# an immediate shutdown leaves the file; the next start checks the PID
	[ $keep = 1 ] || rm -f "$pidfile"
fi
if [ $keep = 0 ]; then
	rm -rf "$dir"
fi
exit 0
