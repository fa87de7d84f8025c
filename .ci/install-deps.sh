#!/bin/sh
# Installs the Debian 12 packages smp-milter builds, tests and runs with.
# Only what is missing is installed; nothing is installed when all is there.
set -eu

PKGS="build-essential pkg-config gnupg
libgmime-3.0-dev libgpgme-dev librnp-dev sq libmilter-dev libconfuse-dev libcmocka-dev
libsqlite3-dev libpq-dev libjansson-dev
clang libclang-rt-14-dev jq
postfix swaks iproute2 procps miltertest valgrind systemd python3 strace
postgresql
libcurl4-openssl-dev libunbound-dev libevent-dev nettle-dev dns-root-data knot knot-dnssecutils openssl"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run 'make deps' as root, or: apt-get install$missing" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# postgresql: the keyring tests start throwaway servers of their own from
# its binaries (tests/pg/pg-start.sh, a unix socket in a temp directory);
# the system cluster the package may set up is never used.
# knot: the discovery tests start a knotd of their own (tests/discovery/
# disc-start.sh: config, keys and zones in a temp directory, 127.0.0.1 and a
# high port); the system knotd the package may start is never used.
# libevent-dev, nettle-dev: libunbound.pc requires them (pkg-config fails
# without them, though nothing links them).
# tests/postfix runs throwaway Postfix instances of its own: install postfix
# without configuring or starting the system instance.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
