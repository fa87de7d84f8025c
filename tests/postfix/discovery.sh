#!/bin/bash
# shellcheck disable=SC2154 # SINK_*/SMTPD_PORT_* are set by lib.sh (printf -v)
# tests/postfix/discovery.sh - key discovery (WKD and DANE, issue 11,
# SPEC.md 5 "Key discovery") end to end, through real throwaway Postfix
# instances and real discovery servers on loopback.
#
#   B=build bash tests/postfix/discovery.sh     (as root)
#
# TAP-style "ok N - ..." / "not ok N - ..." lines, plan at the end; not
# root: one "ok 1 - # SKIP" line (DISC_E2E_REQUIRE=1 makes that a failure).
# PF_KEEP=1 keeps the temp dir (the discovery servers are stopped anyway).
# Every wait is bounded (DISC_E2E_WAIT, default 40 s). About 20 s.
#
# Set up, all on 127.0.0.1 or unix sockets, all stopped by PID from the
# EXIT trap (also on failure):
#   - tests/discovery/disc-start.sh in $PF_TMP/disc: knotd with the
#     DNSSEC-signed test zone (smp.example.) and the broken ones, the HTTPS
#     WKD server with its test CA, and the test keys with their secret
#     keys (disc/keys/ADDRESS.sec.asc); stopped with disc-stop.sh. The
#     addresses are taken from disc/cases.tsv by their case;
#   - tests/postfix/lib.sh: an smtp-sink dumping every transaction, an
#     instance "mx" with smp-milter in smtpd_milters relaying to the sink,
#     and an instance "out" (no smtpd, no milter) relaying to mx, to which
#     mail is given with sendmail(1): "out" is the MTA client that keeps
#     what mx answers with a 4xx in its queue and retries it (every 1-2 s).
#     "out" discards the bounces it makes (the senders are @example.org),
#     so no DSN carrying a message's text ever reaches the sink.
# Mail reaches mx from 127.0.0.1: outbound (outbound.networks default).
# The milter's discovery { } points at the test servers: ca_file the test
# CA, https_port the server's, dns_forwarders knotd, the trust anchor the
# DS of the test zone; methods wkd, dane; timeout 5s, the default (the
# hanging WKD host costs it once: the error is cached for error_ttl; a
# shorter budget could let a slow machine time out a good lookup, which
# the cache would then keep). Policy: every subdomain of the test zone
# (".smp.example") encrypt = required; everything else off.
#
# Scenarios (ZONE = the test zone):
#   wkd      alice@wkd-adv.ZONE has no key in the keyring (nothing harvested
#            or imported: the keyring is empty); a message to her arrives at
#            the sink as multipart/encrypted with X-SMP-Encrypted: pgp-mime
#            and none of its plaintext; her secret key decrypts it with gpg
#            and with sq (the same octets, holding the original text);
#            smpctl keys show says source wkd, the origin her WKD URL
#   dane     the same for carol@dane.ZONE (OPENPGPKEY), source dane, the
#            origin her OPENPGPKEY name
#   cache    a second message to alice arrives encrypted too, and the HTTPS
#            server's log still holds exactly one GET of her WKD file (the
#            observable: the server's log, not the milter's wording)
#   errors   user@http500, user@untrusted, user@hang, user@servfail and
#            mallet@bogus (all required): mx's milter answers their RCPT
#            with 451 4.4.3 (Postfix logs milter-reject: RCPT), "out"
#            defers each message (status=deferred, 451 4.4.3) and keeps it
#            queued; the milter's log line for each names its own reason
#            (500, certificate, timed out, SERVFAIL, bogus: a wrong CA or
#            trust anchor would fail them all alike); counted exactly: sent 5, deferred 5, still queued 5,
#            delivered 0, plaintext at the sink 0 - counted again at the
#            very end, after every retry and reload
#   nothing  nobody@nothing.ZONE (nothing published), required: 550 5.7.1
#            at SMTP (swaks straight to mx), and given to "out" (null
#            sender) it bounces with 550, is not deferred, never reaches
#            the sink; then an address policy makes nobody opportunistic
#            (SIGHUP): the message goes in plain (that is the policy), and
#            the negative answer comes from the cache: still one GET of
#            nobody's WKD file
#   on_error opportunistic recipients whose lookup fails (other@ and
#            third@http500.ZONE): discovery.on_error = plain delivers
#            other's message in plain; with on_error = tempfail (SIGHUP)
#            third's is deferred with 451 4.4.3 and reaches nothing
set -u
cd "$(dirname "$(readlink -f "$0")")/../.." || exit 1
# shellcheck source=tests/postfix/lib.sh
. tests/postfix/lib.sh

WAIT=${DISC_E2E_WAIT:-40}   # upper bound of every wait, seconds
T0=$(date +%s)


if [ "$(id -u)" != 0 ]; then
	[ "${DISC_E2E_REQUIRE:-0}" = 1 ] && pf_die "tests/postfix/discovery.sh must run as root"
	echo "ok 1 - # SKIP the Postfix end-to-end tests need root"
	echo "1..1"
	exit 0
fi
for t in gpg gpgconf sq python3 knotd keymgr openssl; do
	command -v "$t" >/dev/null 2>&1 || pf_die "$t not found (make deps)"
done
pf_init smp-disc
WORK=$PF_TMP/work
DISC=$PF_TMP/disc
mkdir -p "$WORK"

# the discovery servers go with everything else, by their PIDs
disc_cleanup() {
	local rc=$?
	[ -f "$DISC/env" ] || [ -f "$DISC/knotd.pid" ] || [ -f "$DISC/server.pid" ] &&
		tests/discovery/disc-stop.sh "$DISC" --keep >/dev/null 2>&1
	[ -n "${DEC:-}" ] && gpgconf --homedir "$DEC" --kill all >/dev/null 2>&1
	(exit "$rc")
	pf_cleanup
}
trap disc_cleanup EXIT

tests/discovery/disc-start.sh "$DISC" >"$WORK/disc-start.out" 2>&1 ||
	pf_die "tests/discovery/disc-start.sh failed: $(tail -5 "$WORK/disc-start.out" | tr '\n' '|')"
# shellcheck source=/dev/null
. "$DISC/env"
SLOG=$DISC/server.log

# the test addresses by their case in disc/cases.tsv (disc-start.sh's
# header), so that a renamed test zone needs no change here
addr_of() {
	awk -F'\t' -v c="$1" '$1 !~ /^#/ && $2 == c { print $1; exit }' "$DISC/cases.tsv"
}
ALICE=$(addr_of wkd-advanced)
CAROL=$(addr_of dane)
NOBODY=$(addr_of nothing)
ERRS=""
for c in http-500 tls-untrusted https-hang dns-servfail dns-bogus; do
	a=$(addr_of "$c")
	[ -n "$a" ] || pf_die "no address of case $c in $DISC/cases.tsv"
	ERRS="$ERRS${ERRS:+ }$a"
done
[ -n "$ALICE" ] && [ -n "$CAROL" ] && [ -n "$NOBODY" ] ||
	pf_die "cases wkd-advanced, dane, nothing missing from $DISC/cases.tsv"
H500=${ERRS%% *}
H500=${H500#*@}      # the domain whose WKD host answers 500
ZONE=${ALICE#*@}
ZONE=${ZONE#*.}      # the signed test zone: every test domain is under it
OTHER=other@$H500    # two more addresses there, made opportunistic
THIRD=third@$H500
wkdhash() { python3 tests/discovery/disc-util.py wkdhash "$1"; }
ALICE_HASH=$(wkdhash alice)
NOBODY_HASH=$(wkdhash nobody)
# gets HASH: GET requests for a WKD file with that hash in the server's log
gets() { grep -c "\"GET [^ \"]*/hu/$1" "$SLOG"; }

# ------------------------------------------------------------ messages

# msg ID: a small text message with "X-E2E-Id: ID" and a plaintext marker
# (PLAIN-ID) in its body; prints its path.
msg() {
	local f=$WORK/$1.eml
	cat >"$f" <<EOF
X-E2E-Id: $1
From: Sender Example <sender@example.org>
To: <recipient@example.net>
Subject: discovery test $1
Message-ID: <disc-$1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

The secret of $1 is PLAIN-$1, and nobody on the way may read it.
EOF
	echo "$f"
}

sink_file() { pf_sink_file "$SINK_DIR_sink" "X-E2E-Id: $1"; }
sink_has() { [ -n "$(sink_file "$1")" ]; }
sink_count() { pf_sink_count "$SINK_DIR_sink" "X-E2E-Id: $1"; }
# plain_count ID: dumps at the sink holding ID's plaintext marker
plain_count() { pf_sink_count "$SINK_DIR_sink" "PLAIN-$1"; }
# hdr FILE NAME: the value of header NAME in FILE (first one, unfolded)
hdr() {
	python3 - "$1" "$2" <<'PY'
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.compat32)
v = m.get(sys.argv[2])
print("" if v is None else " ".join(str(v).split()))
PY
}
# extract DUMP: the armored application/octet-stream part of a PGP/MIME dump
extract() {
	python3 - "$1" <<'PY'
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.compat32)
if m.get_content_type() != "multipart/encrypted" or m.get_param("protocol") != "application/pgp-encrypted":
    sys.exit("not PGP/MIME: %s" % m.get("Content-Type"))
p = m.get_payload()
if len(p) != 2 or p[1].get_content_type() != "application/octet-stream":
    sys.exit("bad parts")
sys.stdout.write(p[1].get_payload())
PY
}

# out_status RCPT STATUS: "out"'s maillog has a line for RCPT with status=STATUS
out_log() { cat "$PF_TMP/out/log/maillog" 2>/dev/null; }
mx_log() { cat "$PF_TMP/mx/log/maillog" 2>/dev/null; }
out_has() { out_log | grep -q "to=<$1>.*status=$2"; }
out_count() { out_log | grep -c "to=<$1>.*status=$2"; }

# send ID RCPT [FROM]: submits message ID to "out" for RCPT
send() {
	pf_sendmail out "${3:-sender@example.org}" "$2" "$(msg "$1")" 2>>"$WORK/sendmail.err"
}

# decrypt DUMP ADDRESS OUT: ADDRESS's secret key on the PGP/MIME dump, by
# gpg into OUT and by sq into OUT.sq; 0 when both give the same octets.
DEC=$WORK/gnupg-dec
mkdir -m 700 "$DEC"
decrypt() {
	local sec=$DISC/keys/$2.sec.asc
	extract "$1" >"$3.asc" 2>"$3.err" || return 1
	rm -f "$3" "$3.sq"
	gpg --homedir "$DEC" --batch --quiet --import "$sec" 2>>"$3.err" || return 1
	gpg --homedir "$DEC" --batch --pinentry-mode loopback --passphrase '' \
		--decrypt --output "$3" "$3.asc" 2>>"$3.err" || { echo "gpg could not decrypt it" >>"$3.err"; return 1; }
	sq decrypt --recipient-key "$sec" --output "$3.sq" "$3.asc" 2>>"$3.err" ||
		{ echo "sq could not decrypt it" >>"$3.err"; return 1; }
	cmp -s "$3" "$3.sq" || { echo "gpg and sq decrypted different octets" >>"$3.err"; return 1; }
}

# keyjson ADDRESS FIELD: FIELD of the newest binding of ADDRESS (smpctl
# keys show --json), "" when there is none
keyjson() {
	pf_smpctl keys show "$1" --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(0)
b = d.get("bindings") or []
print(b[0].get(sys.argv[1]) or "" if b else "")' "$2"
}

# check_found DESC ID ADDRESS SOURCE ORIGIN_RE: the message ID to ADDRESS
# arrived encrypted, decrypts with ADDRESS's secret key to the original
# text, and the keyring has a binding from SOURCE whose origin matches.
check_found() {
	local desc=$1 id=$2 a=$3 src=$4 ore=$5 f ct x s o
	f=$(sink_file "$id")
	if [ -z "$f" ]; then
		not_ok "$desc: the message arrives at the sink" \
			"out: $(out_log | grep "to=<$a>" | tail -1)" "mx: $(mx_log | grep -E "reject|to=<$a>" | tail -1)"
		return
	fi
	ct=$(hdr "$f" Content-Type)
	x=$(hdr "$f" X-SMP-Encrypted)
	if [[ $ct == multipart/encrypted*application/pgp-encrypted* ]] && [ "$x" = pgp-mime ] &&
		[ "$(plain_count "$id")" = 0 ]; then
		ok "$desc: arrives as multipart/encrypted, X-SMP-Encrypted: pgp-mime, no plaintext at the sink"
	else
		not_ok "$desc: arrives as multipart/encrypted, X-SMP-Encrypted: pgp-mime, no plaintext at the sink" \
			"Content-Type: $ct" "X-SMP-Encrypted: '$x'" "dumps with the plaintext: $(plain_count "$id")"
	fi
	if decrypt "$f" "$a" "$WORK/$id.dec" && grep -q "PLAIN-$id" "$WORK/$id.dec"; then
		ok "$desc: decrypts with $a's secret key by gpg and by sq (same octets, the original text)"
	else
		not_ok "$desc: decrypts with $a's secret key by gpg and by sq" \
			"$(cat "$WORK/$id.dec.err" 2>/dev/null | tr '\n' '|' | head -c 400)"
	fi
	s=$(keyjson "$a" source)
	o=$(keyjson "$a" client_address)
	if [ "$s" = "$src" ] && [[ $o =~ $ore ]]; then
		ok "$desc: smpctl keys show $a: source $src, from $o"
	else
		not_ok "$desc: smpctl keys show $a: source $src, origin matching $ore" \
			"source '$s', origin '$o'" "$(pf_smpctl keys show "$a" 2>&1 | head -3 | tr '\n' '|')"
	fi
}

# ------------------------------------------------------------------ set up

disc_conf() {
	cat <<EOF
replay {
  enabled = false
}
discovery {
  methods = {wkd, dane}
  timeout = 5s
  on_error = ${1:-plain}
  ca_file = "$SMP_TEST_DISC_CA"
  https_port = $SMP_TEST_DISC_HTTPS_PORT
  dns_forwarders = {"$SMP_TEST_DISC_DNS"}
  dns_recursive = false
  dns_trust_anchor_file = "$SMP_TEST_DISC_TA"
}
EOF
}
# every subdomain of the test zone required, three addresses opportunistic
ENC_REQ="encrypt {
  default = off
  policy \".$ZONE\" {
    encrypt = required
  }
}"
ENC_OPP="encrypt {
  default = off
  policy \".$ZONE\" {
    encrypt = required
  }
  policy \"$NOBODY\" {
    encrypt = opportunistic
  }
  policy \"$OTHER\" {
    encrypt = opportunistic
  }
  policy \"$THIRD\" {
    encrypt = opportunistic
  }
}"
reload() { pf_milter_reload "$@" || pf_die "smp-milter did not log 'configuration reloaded' after SIGHUP"; }

pf_sink_start sink
PF_SMTPD_MILTERS="unix:$PF_TMP/milter/smp-milter.sock" \
	pf_instance_create mx "[127.0.0.1]:$SINK_PORT_sink"
# "out" discards the bounces it would send to the senders (example.org):
# a DSN carries the message, and it must not reach the sink through mx
PF_SMTPD=0 PF_EXTRA_MAIN=$'smtp_connection_cache_on_demand = no\ntransport_maps = inline:{example.org=discard:}' \
	pf_instance_create out "[127.0.0.1]:$SMTPD_PORT_mx"
pf_milter_start "$(disc_conf plain)" "$ENC_REQ"
pf_instance_start mx
pf_instance_start out
pf_log "sink 127.0.0.1:$SINK_PORT_sink, mx 127.0.0.1:$SMTPD_PORT_mx, DNS $SMP_TEST_DISC_DNS, HTTPS 127.0.0.1:$SMP_TEST_DISC_HTTPS_PORT, tmp $PF_TMP"

# --------------------------------------------------------------- WKD, DANE

before_a=$(keyjson "$ALICE" fingerprint)
before_c=$(keyjson "$CAROL" fingerprint)
if [ -z "$before_a" ] && [ -z "$before_c" ] && [ "$(pf_smpctl stats --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["keys"] + d["addresses"])' 2>/dev/null)" = 0 ]; then
	ok "before: no key or binding for $ALICE or $CAROL (the keyring is empty: nothing harvested or imported)"
else
	not_ok "before: no key or binding for $ALICE or $CAROL" "alice '$before_a', carol '$before_c'" \
		"$(pf_smpctl stats 2>&1 | tr '\n' '|')"
fi

send wkd1 "$ALICE"
send dane1 "$CAROL"
arrived() { sink_has wkd1 && sink_has dane1; }
pf_wait "$WAIT" arrived
check_found "WKD (advanced) $ALICE, required" wkd1 "$ALICE" wkd "openpgpkey\.${ALICE#*@}.*/hu/$ALICE_HASH"
check_found "DANE $CAROL, required" dane1 "$CAROL" dane "_openpgpkey\.${CAROL#*@}"

# ------------------------------------------------------------------ cache

g1=$(gets "$ALICE_HASH")
send wkd2 "$ALICE"
pf_wait "$WAIT" sink_has wkd2
f=$(sink_file wkd2)
g2=$(gets "$ALICE_HASH")
if [ -n "$f" ] && [ "$(hdr "$f" X-SMP-Encrypted)" = pgp-mime ] && [ "$(plain_count wkd2)" = 0 ] &&
	decrypt "$f" "$ALICE" "$WORK/wkd2.dec" && grep -q PLAIN-wkd2 "$WORK/wkd2.dec"; then
	ok "cache: a second message to $ALICE arrives encrypted and decrypts with her key"
else
	not_ok "cache: a second message to $ALICE arrives encrypted and decrypts with her key" \
		"sink file: ${f:-none}" "$(cat "$WORK/wkd2.dec.err" 2>/dev/null | tr '\n' '|' | head -c 300)"
fi
if [ "$g1" = 1 ] && [ "$g2" = 1 ]; then
	ok "cache: the HTTPS server served alice's WKD file once for both messages (no second lookup)"
else
	not_ok "cache: the HTTPS server served alice's WKD file once for both messages" \
		"GETs after the first message: $g1, after the second: $g2" \
		"$(grep "/hu/$ALICE_HASH" "$SLOG" | tail -3 | tr '\n' '|')"
fi

# --------------------------------------------------------- lookup errors

i=0
for a in $ERRS; do
	i=$((i + 1))
	send "err$i" "$a"
done
all_deferred() {
	local a
	for a in $ERRS; do out_log | grep -q "to=<$a>.*status=deferred.*451 4\.4\.3" || return 1; done
}
pf_wait "$WAIT" all_deferred
i=0
for a in $ERRS; do
	i=$((i + 1))
	l=$(out_log | grep "to=<$a>.*status=" | head -1)
	r=$(mx_log | grep -c "milter-reject: RCPT from .*451 4\.4\.3.*to=<$a>")
	if [[ $l == *status=deferred*"451 4.4.3"* ]] && [ "$r" -ge 1 ]; then
		ok "lookup error, required $a: 451 4.4.3 at RCPT, deferred by 'out'"
	else
		not_ok "lookup error, required $a: 451 4.4.3 at RCPT, deferred by 'out'" \
			"out: ${l:-no status line}" "mx milter-rejects at RCPT: $r" \
			"$(mx_log | grep -E "milter|to=<$a>" | tail -2 | tr '\n' '|')"
	fi
done

# each failed for its own reason (a wrong CA or trust anchor would fail
# them all alike): the milter's log line for the recipient names it
reason_of() {
	case $1 in
	*@http500.*) echo '500' ;;
	*@untrusted.*) echo 'certificate' ;;
	*@hang.*) echo 'timed out' ;;
	*@servfail.*) echo 'SERVFAIL' ;;
	*@bogus.*) echo 'bogus' ;;
	esac
}
for a in $ERRS; do
	why=$(reason_of "$a")
	l=$(grep -F "rcpt=<$a>" "$PF_MILTER_LOG" | grep -m1 -i 'lookup failed')
	if [ -n "$l" ] && [[ $l == *"$why"* ]]; then
		ok "lookup error, required $a: the milter logged the lookup as failed, for its reason ('$why')"
	else
		not_ok "lookup error, required $a: the milter logged the lookup as failed, for its reason ('$why')" \
			"${l:-no 'lookup failed' line for rcpt=<$a>}"
	fi
done

# count_errors: "sent deferred delivered plaintext" for the error messages
NERR=$(echo "$ERRS" | wc -w)
count_errors() {
	local a i=0 def=0 del=0 pl=0
	for a in $ERRS; do
		i=$((i + 1))
		out_has "$a" deferred && def=$((def + 1))
		del=$((del + $(sink_count "err$i") + $(out_count "$a" sent)))
		pl=$((pl + $(plain_count "err$i")))
	done
	echo "$i $def $del $pl $(pf_queue_count out)"
}
sleep 2 # a retry round or two
read -r c_sent c_def c_del c_pl c_q < <(count_errors)
if [ "$c_sent" = "$NERR" ] && [ "$c_def" = "$NERR" ] && [ "$c_del" = 0 ] && [ "$c_pl" = 0 ] && [ "$c_q" = "$NERR" ]; then
	ok "lookup errors: sent $c_sent, deferred $c_def, still queued in 'out' $c_q, delivered 0, plaintext at the sink 0"
else
	not_ok "lookup errors: sent $NERR, deferred $NERR, queued $NERR, delivered 0, plaintext 0" \
		"sent $c_sent, deferred $c_def, queued $c_q, delivered $c_del, plaintext $c_pl"
fi

# ------------------------------------------------ nothing published

sw=$(pf_swaks "$SMTPD_PORT_mx" "$(msg none-swaks)" --from sender@example.org --to "$NOBODY")
printf '%s\n' "$sw" >"$WORK/none-swaks.swaks"
if printf '%s\n' "$sw" | grep -q '^<\*\* *550 5\.7\.1'; then
	ok "nothing published, required $NOBODY: refused at SMTP with 550 5.7.1"
else
	not_ok "nothing published, required $NOBODY: refused at SMTP with 550 5.7.1" \
		"$(printf '%s\n' "$sw" | grep -E '^(<\*\*|<-  [0-9]{3})' | tail -3 | tr '\n' '|')"
fi
send none1 "$NOBODY" '<>'
pf_wait "$WAIT" out_has "$NOBODY" bounced
l=$(out_log | grep "to=<$NOBODY>.*status=" | head -1)
if [[ $l == *status=bounced*" 550 "* ]] && ! out_has "$NOBODY" deferred &&
	[ "$(sink_count none1)" = 0 ] && [ "$(sink_count none-swaks)" = 0 ] &&
	[ "$(plain_count none1)" = 0 ] && [ "$(plain_count none-swaks)" = 0 ]; then
	ok "nothing published, required: bounced by 'out' with 550 (not deferred), nothing at the sink"
else
	not_ok "nothing published, required: bounced by 'out' with 550 (not deferred), nothing at the sink" \
		"out: ${l:-no status line}" "at the sink: $(sink_count none1) + $(sink_count none-swaks)"
fi
gn1=$(gets "$NOBODY_HASH")

# --------------------------------------------- opportunistic: policy, on_error

reload "$(disc_conf plain)" "$ENC_OPP"
send none2 "$NOBODY"
send oerr1 "$OTHER"
both() { sink_has none2 && sink_has oerr1; }
pf_wait "$WAIT" both
f=$(sink_file none2)
gn2=$(gets "$NOBODY_HASH")
if [ -n "$f" ] && [ -z "$(hdr "$f" X-SMP-Encrypted)" ] && [ "$(plain_count none2)" = 1 ]; then
	ok "nothing published, opportunistic $NOBODY: delivered in plain (the policy)"
else
	not_ok "nothing published, opportunistic $NOBODY: delivered in plain" "sink file: ${f:-none}" \
		"out: $(out_log | grep "to=<$NOBODY>" | tail -1)"
fi
if [ "$gn1" = 1 ] && [ "$gn2" = 1 ]; then
	ok "nothing published: the negative answer is cached (one GET of nobody's WKD file for both messages)"
else
	not_ok "nothing published: the negative answer is cached (one GET of nobody's WKD file)" \
		"GETs after the required message: $gn1, after the opportunistic one: $gn2"
fi
f=$(sink_file oerr1)
if [ -n "$f" ] && [ -z "$(hdr "$f" X-SMP-Encrypted)" ] && [ "$(plain_count oerr1)" = 1 ]; then
	ok "lookup error, opportunistic, discovery.on_error = plain: $OTHER delivered in plain"
else
	not_ok "lookup error, opportunistic, discovery.on_error = plain: $OTHER delivered in plain" \
		"sink file: ${f:-none}" "out: $(out_log | grep "to=<$OTHER>" | tail -1)"
fi

reload "$(disc_conf tempfail)" "$ENC_OPP"
send oerr2 "$THIRD"
pf_wait "$WAIT" out_has "$THIRD" deferred
l=$(out_log | grep "to=<$THIRD>.*status=" | head -1)
sleep 1
if [[ $l == *status=deferred*"451 4.4.3"* ]] && [ "$(sink_count oerr2)" = 0 ] && [ "$(plain_count oerr2)" = 0 ]; then
	ok "lookup error, opportunistic, discovery.on_error = tempfail: $THIRD deferred with 451 4.4.3, nothing at the sink"
else
	not_ok "lookup error, opportunistic, discovery.on_error = tempfail: deferred with 451 4.4.3" \
		"out: ${l:-no status line}" "at the sink: $(sink_count oerr2)"
fi

# ------------------------------------------- the errors, once more, at the end

read -r c_sent c_def c_del c_pl c_q < <(count_errors)
if [ "$c_sent" = "$NERR" ] && [ "$c_def" = "$NERR" ] && [ "$c_del" = 0 ] && [ "$c_pl" = 0 ]; then
	ok "at the end (after retries and reloads), the required lookup-error messages: sent $c_sent, deferred $c_def, delivered 0, plaintext at the sink 0 ('out' queue: $c_q)"
else
	not_ok "at the end, the required lookup-error messages: sent $NERR, deferred $NERR, delivered 0, plaintext 0" \
		"sent $c_sent, deferred $c_def, delivered $c_del, plaintext $c_pl, 'out' queue $c_q"
fi

# ------------------------------------------------------------------ shut down

pf_milter_stop
if [ "$PF_LAST_RC" = 0 ]; then
	ok "smp-milter exits 0 on SIGTERM"
else
	not_ok "smp-milter exits 0 on SIGTERM (exit $PF_LAST_RC)"
fi
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|internal error' "$PF_MILTER_LOG"; then
	not_ok "no sanitizer report or internal error in smp-milter's log" "$(grep -m3 -E 'Sanitizer|runtime error:|internal error' "$PF_MILTER_LOG")"
else
	ok "no sanitizer report or internal error in smp-milter's log"
fi

if [ "$failed" -gt 0 ]; then
	pf_log "--- smp-milter log (tail)"
	tail -25 "$PF_MILTER_LOG" | sed 's/^/# /' >&2
	pf_log "--- out maillog (tail)"
	tail -10 "$PF_TMP/out/log/maillog" | sed 's/^/# /' >&2
	pf_log "--- HTTPS server log (tail)"
	tail -10 "$SLOG" | sed 's/^/# /' >&2
fi
pf_log "took $(($(date +%s) - T0)) s"
echo "1..$n"
[ "$failed" = 0 ]
