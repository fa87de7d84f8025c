#!/bin/sh
# pg-start.sh - start a throwaway PostgreSQL server for the tests.
#
#   tests/pg/pg-start.sh DIR [--durable]
#
# Creates DIR (mode 0700) if needed, runs initdb into DIR/data the first
# time (UTF8, C locale, trust authentication, bootstrap superuser
# "smptest"), and starts the server with its unix socket in DIR and no TCP
# listener at all (listen_addresses=''), so it can never collide with or be
# reached like the system's cluster. Prints the libpq conninfo to reach
# it, one line:
#   host=DIR port=5432 user=smptest dbname=postgres
# and writes the same line to DIR/conninfo. Running it again on a DIR whose
# server was stopped starts it again on the same data (restart tests).
#
# Unit tests run without fsync (the data is thrown away; commits still
# survive the immediate shutdowns of restart tests); --durable keeps
# PostgreSQL's defaults (fsync, synchronous_commit) for the benchmark.
#
# As root, initdb and postgres refuse to run: they run as the unprivileged
# user "nobody" (runuser), which then owns DIR. Stop it with pg-stop.sh DIR,
# which kills it by the PID in DIR/data/postmaster.pid.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 DIR [--durable]" >&2; exit 64; }
dir=$1
durable=0
[ "${2:-}" = "--durable" ] && durable=1

pgbin=${PGBIN:-}
if [ -z "$pgbin" ]; then
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && pgbin=$d
	done
fi
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
	echo "pg-start: no PostgreSQL server binaries (Debian package postgresql; or set PGBIN)" >&2
	exit 69
fi

# the socket path must fit sun_path (107 octets) with "/.s.PGSQL.5432"
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
if [ ${#dir} -gt 90 ]; then
	echo "pg-start: $dir is too long for a unix socket directory" >&2
	exit 64
fi

as=""
if [ "$(id -u)" = 0 ]; then
	as="runuser -u nobody --"
fi
mkdir -p "$dir"
chmod 0700 "$dir"
[ -n "$as" ] && chown nobody "$dir"

if [ ! -f "$dir/data/PG_VERSION" ]; then
	if ! $as "$pgbin/initdb" -D "$dir/data" -U smptest --auth=trust \
		-E UTF8 --locale=C -N >"$dir/initdb.log" 2>&1; then
		echo "pg-start: initdb failed:" >&2
		cat "$dir/initdb.log" >&2
		exit 1
	fi
fi

opts="-k $dir -c listen_addresses='' -c max_connections=200"
opts="$opts -c shared_buffers=64MB -c max_locks_per_transaction=256"
if [ $durable = 0 ]; then
	opts="$opts -c fsync=off -c full_page_writes=off"
fi
if ! $as "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	-o "$opts" start >"$dir/pg_ctl.log" 2>&1; then
	echo "pg-start: the server did not start:" >&2
	cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null
	exit 1
fi
ci="host=$dir port=5432 user=smptest dbname=postgres"
printf '%s\n' "$ci" >"$dir/conninfo"
printf '%s\n' "$ci"
