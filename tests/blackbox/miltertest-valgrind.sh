#!/bin/bash
# The miltertest scenarios again, with the daemon under valgrind: no
# invalid reads/writes, no uninitialised use, no definite or indirect leaks.
# Skipped for the sanitizer build (ASan and valgrind do not mix; LeakSanitizer
# checks the daemon's exit there instead).
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
if [ "$B" != build ] || ! command -v valgrind >/dev/null; then
	echo "ok 1 - # SKIP valgrind run needs the plain build and valgrind"
	exit 0
fi
VG=$(mktemp)
trap 'rm -f "$VG"' EXIT
MILTER_WAIT=120 MILTER_WRAPPER="valgrind --quiet --child-silent-after-fork=yes --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=yes --log-file=$VG" \
	B=$B bash tests/blackbox/miltertest.sh | sed -e 's/^ok /ok (valgrind) /' -e 's/^not ok /not ok (valgrind) /' | sed -E 's/^(not )?ok \(valgrind\) ([0-9]+) /\1ok \2 (valgrind) /'
if [ -s "$VG" ]; then
	echo "not ok 999 - valgrind reported problems:"
	sed 's/^/#   /' "$VG" | head -60
else
	echo "ok 999 - valgrind: no errors, no definite or indirect leaks"
fi
