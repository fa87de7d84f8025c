#!/bin/bash
# Checks systemd/smp-milter.service and its companions. Prints TAP-style
# lines ("ok N - ...", "not ok N - ...", "ok N - # SKIP ...").
#   - "systemd-analyze verify" accepts a copy of the unit whose
#     /usr/sbin/smp-milter is the built $B/bin/smp-milter (and whose
#     Documentation= man pages resolve to doc/*.8 and doc/*.5 when man(1)
#     is there);
#   - the start-up and hardening directives are present;
#   - the sysusers.d and tmpfiles.d snippets apply to a scratch root;
#   - etc/smp-milter.conf, which ExecStartPre checks, passes -t as shipped
#     and with every option uncommented.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
case $B in /*) MILTER=$B/bin/smp-milter ;; *) MILTER=$PWD/$B/bin/smp-milter ;; esac
UNIT=systemd/smp-milter.service
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - # SKIP $*"; }

# 1. systemd-analyze verify on a copy that runs the built binary
if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze is not installed"
elif [ ! -x "$MILTER" ]; then
	notok "$MILTER is not built (run make first)"
else
	mkdir -p "$TMP/unit"
	sed "s#/usr/sbin/smp-milter#$MILTER#g" "$UNIT" >"$TMP/unit/smp-milter.service"
	manopt=--man=no
	if command -v man >/dev/null 2>&1; then
		# let the Documentation= lines find the pages in doc/
		mkdir -p "$TMP/man/man5" "$TMP/man/man8"
		cp doc/*.5 "$TMP/man/man5/" 2>/dev/null
		cp doc/*.8 "$TMP/man/man8/" 2>/dev/null
		manopt=--man=yes
	fi
	if out=$(MANPATH="$TMP/man" systemd-analyze verify "$manopt" \
		"$TMP/unit/smp-milter.service" 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify $manopt accepts the unit (ExecStart=$MILTER)"
	else
		notok "systemd-analyze verify: $out"
	fi
	if sec=$(systemd-analyze security --offline=yes "$TMP/unit/smp-milter.service" 2>/dev/null); then
		echo "# $(printf '%s\n' "$sec" | grep 'Overall exposure' | sed 's/^→ *//')"
	fi
fi

# 2. directives: "Key=value" must be a line of the unit (values as written)
has() { grep -qxF -- "$1" "$UNIT"; }
# shellcheck disable=SC2016 # $MAINPID is literal in the unit
for d in \
	"Type=simple" \
	"ExecStart=/usr/sbin/smp-milter -f -c /etc/smp-milter/smp-milter.conf" \
	"ExecStartPre=/usr/sbin/smp-milter -t -c /etc/smp-milter/smp-milter.conf" \
	'ExecReload=/bin/kill -HUP $MAINPID' \
	"CapabilityBoundingSet=CAP_CHOWN CAP_SETUID CAP_SETGID" \
	"NoNewPrivileges=yes" \
	"ProtectSystem=strict" \
	"ProtectHome=yes" \
	"PrivateTmp=yes" \
	"PrivateDevices=yes" \
	"ProtectKernelTunables=yes" \
	"ProtectKernelModules=yes" \
	"ProtectKernelLogs=yes" \
	"ProtectControlGroups=yes" \
	"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
	"RestrictNamespaces=yes" \
	"LockPersonality=yes" \
	"MemoryDenyWriteExecute=yes" \
	"SystemCallArchitectures=native" \
	"SystemCallFilter=@system-service" \
	"RuntimeDirectory=smp-milter" \
	"RuntimeDirectoryMode=0750" \
	"StateDirectory=smp-milter"; do
	if has "$d"; then ok "unit has $d"; else notok "unit lacks the line $d"; fi
done
# the daemon must start as root to open and chown its socket, then drops
# privileges itself: a User= line would break socket_owner/socket_group
if grep -qE '^User=' "$UNIT"; then
	notok "unit sets User= (smp-milter must start as root and drop itself)"
else
	ok "unit has no User= (the daemon drops privileges itself)"
fi

# 3. sysusers.d and tmpfiles.d snippets, applied to a scratch root
if [ "$(id -u)" != 0 ] || ! command -v systemd-sysusers >/dev/null 2>&1 ||
	! command -v systemd-tmpfiles >/dev/null 2>&1; then
	skip "sysusers/tmpfiles check needs root, systemd-sysusers and systemd-tmpfiles"
else
	R=$TMP/root
	mkdir -p "$R/etc"
	: >"$R/etc/passwd"
	: >"$R/etc/group"
	: >"$R/etc/shadow"
	: >"$R/etc/gshadow"
	if out=$(systemd-sysusers --root="$R" - <systemd/smp-milter.sysusers 2>&1) &&
		grep -q '^smp-milter:x:[0-9]*:[0-9]*:.*:/var/lib/smp-milter:' "$R/etc/passwd" &&
		grep -q '^smp-milter:x:[0-9]*:' "$R/etc/group"; then
		ok "sysusers.d snippet creates user and group smp-milter"
	else
		notok "sysusers.d snippet: $out"
	fi
	gid=$(awk -F: '$1 == "smp-milter" { print $3 }' "$R/etc/group")
	if out=$(systemd-tmpfiles --root="$R" --create - <systemd/smp-milter.tmpfiles 2>&1) &&
		[ "$(stat -c '%a %u %g' "$R/run/smp-milter" 2>/dev/null)" = "750 0 $gid" ]; then
		ok "tmpfiles.d snippet makes /run/smp-milter root:smp-milter 0750"
	else
		notok "tmpfiles.d snippet: $out $(stat -c '%a %u %g' "$R/run/smp-milter" 2>&1)"
	fi
fi

# 4. the example configuration that ExecStartPre checks
if [ ! -x "$MILTER" ]; then
	notok "$MILTER is not built: cannot check etc/smp-milter.conf"
else
	if out=$("$MILTER" -t -c etc/smp-milter.conf 2>&1); then
		ok "etc/smp-milter.conf passes smp-milter -t"
	else
		notok "etc/smp-milter.conf: $out"
	fi
	# "# name = default" lines become "name = default"
	sed -E 's/^([[:space:]]*)# ([a-z_]+ = .*)$/\1\2/' etc/smp-milter.conf >"$TMP/all.conf"
	if out=$("$MILTER" -t -c "$TMP/all.conf" 2>&1); then
		ok "etc/smp-milter.conf with every option uncommented passes -t"
	else
		notok "etc/smp-milter.conf uncommented: $out"
	fi
	# every option lib/smp_config.c defines is shown in the example
	missing=""
	while read -r o; do
		grep -qE "^[[:space:]]*$o = " "$TMP/all.conf" || missing="$missing $o"
	done < <(sed -nE 's/.*CFG_(STR|INT|STR_LIST|BOOL)(_CB)?\("([a-z_]+)".*/\3/p' lib/smp_config.c)
	if [ -z "$missing" ]; then
		ok "etc/smp-milter.conf shows every option of lib/smp_config.c"
	else
		notok "etc/smp-milter.conf lacks:$missing"
	fi
fi
