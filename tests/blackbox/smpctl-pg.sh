#!/bin/bash
# smpctl against the PostgreSQL keyring backend: the same commands on an
# SQLite keyring and on PostgreSQL give the same output (time stamps
# aside), and "keys migrate --from sqlite:PATH" copies a keyring across,
# idempotently. Prints TAP-style lines.
#
# The server: SMP_TEST_PG_CONNINFO when set (tests/run-tests.sh starts one),
# else one of this script's own (tests/pg/pg-start.sh, unix socket only,
# stopped by PID on exit). Each run works in schemas of its own.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
TMP=$(mktemp -d)
PGDIR=""
cleanup() {
	[ -n "$PGDIR" ] && tests/pg/pg-stop.sh "$PGDIR"
	rm -rf "$TMP"
}
trap cleanup EXIT
K=fixtures/keys

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}

base=${SMP_TEST_PG_CONNINFO:-}
if [ -z "$base" ]; then
	PGDIR=$(mktemp -d /tmp/smppg.XXXXXX)
	if ! base=$(tests/pg/pg-start.sh "$PGDIR"); then
		notok "a PostgreSQL server to test against (tests/pg/pg-start.sh)"
		exit 1
	fi
fi
schema() {
	psql -X -q -v ON_ERROR_STOP=1 "$base" -c "CREATE SCHEMA $1" >/dev/null &&
		printf "%s options='-c search_path=%s'" "$base" "$1"
}
s1=smpctl_pg_$$_a
s2=smpctl_pg_$$_b
ci1=$(schema $s1) && ci2=$(schema $s2)
check "two fresh schemas on the server" test -n "$ci1" -a -n "$ci2"

conf() { # NAME BACKEND TARGET
	if [ "$2" = sqlite ]; then
		printf 'keyring {\n  path = "%s"\n}\ngnupg_home = "%s/%s.gnupg"\n' "$3" "$TMP" "$1"
	else
		printf 'keyring {\n  backend = "postgresql"\n  conninfo = "%s"\n}\ngnupg_home = "%s/%s.gnupg"\n' "$3" "$TMP" "$1"
	fi >"$TMP/$1.conf"
}
conf lite sqlite "$TMP/k.db"
conf pg postgresql "$ci1"
conf pg2 postgresql "$ci2"
S() { local c=$1; shift; "$B/bin/smpctl" -c "$TMP/$c.conf" "$@"; }
# the same command on both, output with times blanked; 0 when equal
both() {
	local a b ra rb
	a=$(S lite "$@" 2>&1); ra=$?
	b=$(S pg "$@" 2>&1); rb=$?
	a=$(sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/TIME/g; s/"[0-9]{10}"/TIME/g' <<<"$a")
	b=$(sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/TIME/g; s/"[0-9]{10}"/TIME/g' <<<"$b")
	if [ "$ra" = "$rb" ] && [ "$a" = "$b" ]; then
		return 0
	fi
	echo "# sqlite (exit $ra): $a" | head -20
	echo "# postgresql (exit $rb): $b" | head -20
	return 1
}

check "import an armored key: same output" both keys import $K/alice.pub.asc
check "import a binary key for one address: same output" both keys import $K/bob.pub.gpg --address bob@example.net
check "import carol: same output" both keys import $K/carol.pub.asc
bob=$(S pg keys list --json | jq -r '.bindings[] | select(.address == "bob@example.net") | .fingerprint')
check "keys list" both keys list
check "keys list --json" both keys list --json
check "keys show ADDRESS" both keys show alice@example.org
check "keys show ADDRESS --json" both keys show alice@example.org --json
check "keys show FPR --json" both keys show "$bob" --json
check "keys show of an unknown address (exit 67)" both keys show nobody@example.org
check "keys export" both keys export alice@example.org
check "keys block" both keys block "$bob"
check "keys list --state blocked" both keys list --state blocked
check "keys pin of a blocked key is refused" both keys pin bob@example.net "$bob"
check "keys unblock" both keys unblock "$bob"
check "keys pin" both keys pin bob@example.net "$bob"
check "keys history" both keys history bob@example.net
check "keys history --json" both keys history bob@example.net --json
check "stats" both stats
check "stats --json" both stats --json
check "keys delete ADDRESS" both keys delete carol@example.com
check "keys delete FPR" both keys delete "$bob"
check "stats after the deletions" both stats --json
check "keys prune" both keys prune --json

# --- keys migrate --from sqlite:PATH -------------------------------------
S lite keys import $K/dave.pub.asc >/dev/null
S lite keys import $K/bob.pub.gpg --address bob@example.net >/dev/null
q() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$TMP/k.db" "$1"; }
nk=$(q 'SELECT COUNT(*) FROM keys')
nb=$(q 'SELECT COUNT(*) FROM bindings')
na=$(q 'SELECT COUNT(DISTINCT address) FROM bindings')
ne=$(q 'SELECT COUNT(*) FROM events')
last=$(q 'SELECT MAX(id) FROM events')
out=$(S pg2 keys migrate --from "sqlite:$TMP/k.db")
rc=$?
check "migrate: exit 0 and a summary" test $rc = 0 -a \
	"$out" = "sqlite:$TMP/k.db: $nk keys copied (0 already there), $nb bindings of $na addresses copied (0 addresses already bound, left as they were), $ne events copied (through event $last of the file)"
strip() { sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/TIME/g'; }
check "migrate: the same bindings, states and sources" \
	test "$(S lite keys list --json | jq -S .)" = "$(S pg2 keys list --json | jq -S .)"
for a in alice@example.org bob@example.net dave@example.net victim@victim.example; do
	check "migrate: $a shows the same" \
		test "$(S lite keys show $a --json | jq -S .)" = "$(S pg2 keys show $a --json | jq -S .)"
	check "migrate: $a's history is the same, times included" \
		test "$(S lite keys history $a --json | jq -S .)" = "$(S pg2 keys history $a --json | jq -S .)"
done
check "migrate: the key material is the same" \
	test "$(S lite keys export dave@example.net)" = "$(S pg2 keys export dave@example.net)"
check "migrate: the counts are the same, plus one 'migrated' event" \
	test "$(S lite stats --json | jq -c '.events += 1')" = "$(S pg2 stats --json | jq -c .)"
out=$(S pg2 keys migrate --from "sqlite:$TMP/k.db")
check "migrate again: nothing copied twice" test $? = 0 -a \
	"$out" = "sqlite:$TMP/k.db: 0 keys copied ($nk already there), 0 bindings of 0 addresses copied ($na addresses already bound, left as they were), 0 events copied (through event $last of the file)"
check "migrate again: the counts did not change but for the new 'migrated' event" \
	test "$(S lite stats --json | jq -c '.events += 2')" = "$(S pg2 stats --json | jq -c .)"
# the file went on being used: the next run copies only what is new
S lite keys import $K/carol.pub.asc >/dev/null
ne2=$(( $(q 'SELECT COUNT(*) FROM events') - ne ))
out=$(S pg2 keys migrate --from "sqlite:$TMP/k.db")
check "migrate after more use: carol's binding, and only the new events" \
	test "$out" = "sqlite:$TMP/k.db: 0 keys copied ($nk already there), 1 binding of 1 address copied ($na addresses already bound, left as they were), $ne2 event$([ $ne2 = 1 ] || echo s) copied (through event $(q 'SELECT MAX(id) FROM events') of the file)"
check "migrate after more use: every event of the file once" \
	test "$(S lite stats --json | jq -c '.events += 3')" = "$(S pg2 stats --json | jq -c .)"
check "migrate: the history records each run" \
	test "$(S pg2 keys history "sqlite:$TMP/k.db" 2>/dev/null | grep -c migrated)" = 3 -o \
	"$(psql -X -At "$ci2" -c "SELECT COUNT(*) FROM events WHERE event = 'migrated'")" = 3
S pg2 keys migrate >/dev/null 2>"$TMP/err"
check "migrate without --from exits 64" test $? = 64 -a "$(wc -l <"$TMP/err")" = 1
S pg2 keys migrate --from "pg:$TMP/k.db" >/dev/null 2>"$TMP/err"
check "migrate --from something else than sqlite: exits 64" test $? = 64
S pg2 keys migrate --from "sqlite:$TMP/missing.db" >/dev/null 2>"$TMP/err"
check "migrate from a missing file exits 66 naming it" test $? = 66 -a "$(grep -c missing.db "$TMP/err")" = 1
S lite keys migrate --from "sqlite:$TMP/k.db" >/dev/null 2>"$TMP/err"
check "migrate a keyring onto itself exits 64" test $? = 64
printf 'not a database at all\n%.0s' $(seq 1 200) >"$TMP/garbage.db"
S pg2 keys migrate --from "sqlite:$TMP/garbage.db" >/dev/null 2>"$TMP/err"
check "migrate from a file that is no keyring exits 78 with one line" test $? = 78 -a "$(wc -l <"$TMP/err")" = 1
# a binding stored before smpctl's address check existed is left out
python3 - "$TMP/k.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
fpr = db.execute("SELECT fpr FROM keys LIMIT 1").fetchone()[0]
db.execute("INSERT INTO bindings (address, fpr, state, source, first_seen, "
           "last_seen) VALUES ('a b@example.org', ?, 'active', 'smp', 1, 1)",
           (fpr,))
db.commit()
PY
out=$(S pg2 keys migrate --from "sqlite:$TMP/k.db")
check "migrate leaves out a binding whose address is none, and says so" \
	test "$(head -1 <<<"$out")" = "sqlite:$TMP/k.db: 1 binding left out: the address is no mail address by smpctl's check (see ADDRESSES in smpctl(8))" -a \
	"$(psql -X -At "$ci2" -c "SELECT COUNT(*) FROM bindings WHERE address = 'a b@example.org'")" = 0
sum=$(sha256sum "$TMP/k.db")
S pg2 keys migrate --from "sqlite:$TMP/k.db" >/dev/null
check "migrate never writes to the file" test "$(sha256sum "$TMP/k.db")" = "$sum"

# the database down: a clear error naming the server, exit 78
conf down postgresql "host=$TMP port=5999 dbname=smpkeys user=milter password=Sekr1t"
S down stats >/dev/null 2>"$TMP/err"
check "server unreachable: exit 78, one line naming it" test $? = 78 -a "$(wc -l <"$TMP/err")" = 1 -a \
	"$(grep -c "PostgreSQL database smpkeys (host $TMP, port 5999, user milter)" "$TMP/err")" = 1
check "... never the password" test "$(grep -c Sekr1t "$TMP/err")" = 0

psql -X -q "$base" -c "DROP SCHEMA $s1 CASCADE" -c "DROP SCHEMA $s2 CASCADE" >/dev/null 2>&1
exit 0
