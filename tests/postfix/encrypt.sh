#!/bin/bash
# shellcheck disable=SC2154 # SINK_*/SMTPD_PORT_* are set by lib.sh (printf -v)
# tests/postfix/encrypt.sh - smp-milter's outbound PGP/MIME encryption
# (SPEC.md 5) end to end, through real throwaway Postfix instances.
#
#   B=build bash tests/postfix/encrypt.sh     (as root; B=build-san for ASan)
#
# TAP-style "ok N - ..." / "not ok N - ..." lines, plan at the end. Uses
# lib.sh: everything on 127.0.0.1 under one mktemp directory, an smtp-sink
# that dumps every transaction to a file, an instance "mx" with smp-milter
# in smtpd_milters relaying to the sink, and an instance "out" (no smtpd,
# no milter, no connection cache) relaying to mx, to which mail is given
# with sendmail(1): "out" is the MTA client that retries what mx answered
# with a 4xx. PF_KEEP=1 keeps the temp dir. Every wait is bounded
# (ENC_WAIT, default 60 s).
#
# Keys: bob's public key (fixtures/keys/bob.pub.asc) is pinned with
# "smpctl keys import"; carol@example.com has no key in the milter's
# keyring. Decryption uses bob's secret key (fixtures/keys/bob.sec.asc),
# on the armored application/octet-stream part taken from the sink's dump
# (python3 email), twice: by gpg (the key imported into a scratch
# GNUPGHOME) and by Sequoia (sq decrypt --recipient-key); both must give
# the same octets.
#
# The milter runs the default crypto engine (rnp: librnp in process, keys
# from the keyring database only). From the first message to the end of
# the rnp part (round trips, inbound, already, required, mixed, split, and
# a broken gnupg_home that rnp does not need), strace follows the daemon:
# it must execute no program at all (no gpg, no gpgconf, nothing). Then
# the broken-home scenario runs again with crypto.engine = gnupg.
#
# Scenarios (encrypt.default = opportunistic unless said otherwise):
#   round trip  text/plain (quoted-printable, UTF-8), multipart/alternative
#               (text + HTML) and multipart/mixed with a 2 MB binary
#               attachment (base64), each sent with swaks to mx for bob:
#               it arrives as multipart/encrypted (RFC 3156 structure,
#               X-SMP-Encrypted: pgp-mime, no plaintext marker at the
#               sink); decrypted with bob's secret key, the entity's
#               Content-* header lines and its body equal the original's
#               byte for byte AFTER NORMALISING LINE ENDS ONLY (CRLF -> LF
#               on both sides: swaks sends CRLF, the dump and the fixture
#               files are LF); the milter logs encrypt=pgp-mime
#   inbound     outbound.networks = 192.0.2.0/24 (SIGHUP): the same text
#               message from 127.0.0.1 is inbound and arrives untouched
#               (Content-* lines and body as sent, no X-SMP-Encrypted)
#   already     a PGP/MIME message (encrypted to bob here with gpg) arrives
#               untouched
#   required    policy "req.example" { encrypt = required }: a message to
#               zed@req.example (no key) is refused at SMTP with 550 5.7.1
#               and nothing reaches the sink
#   mixed       bob + carol under opportunistic, one SMTP transaction: one
#               plain transaction at the sink with both recipients
#   split       split_recipients = yes, bob + carol given to "out": mx
#               answers 452 4.5.3 for the second class, Postfix retries,
#               and the sink gets two transactions: one PGP/MIME to bob
#               only (decrypts to the original), one plain to carol only
#   no home     rnp, bob required, gnupg_home pointed (SIGHUP) at a path
#               that is a file: the message arrives encrypted (rnp reads
#               no GnuPG home) and the file is left alone
#   broken home crypto.engine = gnupg, bob required, gnupg_home a file: the
#               message given to "out" is deferred with mx's 451 4.3.0
#               and nothing reaches the sink; gnupg_home back (SIGHUP),
#               postqueue -f: it arrives once, encrypted, and decrypts to
#               the original
#   subject     protect_subject = yes: the outer Subject is "...", the
#               decrypted entity carries the real Subject and its
#               Content-Type gets protected-headers="v1"
set -u
cd "$(dirname "$(readlink -f "$0")")/../.." || exit 1
# shellcheck source=tests/postfix/lib.sh
. tests/postfix/lib.sh

WAIT=${ENC_WAIT:-60}   # upper bound of every wait, seconds


if [ "$(id -u)" != 0 ]; then
	[ "${E2E_REQUIRE:-0}" = 1 ] && pf_die "tests/postfix/encrypt.sh must run as root"
	echo "ok 1 - # SKIP the Postfix end-to-end tests need root"
	echo "1..1"
	exit 0
fi
command -v gpg >/dev/null 2>&1 || pf_die "gpg not found"
command -v sq >/dev/null 2>&1 || pf_die "sq (Sequoia) not found"
command -v strace >/dev/null 2>&1 || pf_die "strace not found"
command -v python3 >/dev/null 2>&1 || pf_die "python3 not found"
pf_init smp-enc
WORK=$PF_TMP/work
mkdir -p "$WORK"
KEYS=fixtures/keys
PY=$WORK/pgpmime.py
cat >"$PY" <<'PYEOF'
#!/usr/bin/env python3
"""tests/postfix/pgpmime.py - helpers of tests/postfix/encrypt.sh.

  pgpmime.py extract DUMP          the armored application/octet-stream part
                                   of the multipart/encrypted message in an
                                   smtp-sink dump, on stdout (exit 1 if the
                                   message is not RFC 3156 PGP/MIME)
  pgpmime.py same-entity ORIG DEC  exit 0 when the decrypted entity DEC has
                                   the Content-* header lines and the body
                                   of the message file ORIG, byte for byte
                                   after normalising line ends (CRLF -> LF)
  pgpmime.py untouched ORIG DUMP   exit 0 when the message in the sink dump
                                   DUMP has ORIG's Content-* header lines and
                                   body (line ends normalised; the dump's
                                   trailing empty line, added by smtp-sink,
                                   dropped) and no X-SMP-Encrypted header
  pgpmime.py header FILE NAME      the values of header NAME (unfolded), one
                                   a line
Differences are printed on stderr.
"""
import email
import email.policy
import sys


def lf(b):
    return b.replace(b"\r\n", b"\n")


def split(raw):
    """(header lines, body) of a message or entity, line ends LF."""
    raw = lf(raw)
    if raw.startswith(b"\n"):
        return [], raw[1:]
    i = raw.find(b"\n\n")
    if i < 0:
        return raw.split(b"\n"), b""
    return raw[:i].split(b"\n"), raw[i + 2:]


def fields(lines):
    """[(name lower, raw bytes of the field incl. continuation lines)]"""
    out = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\n" + line)
        elif b":" in line:
            out.append((line.split(b":", 1)[0].strip().lower(), line))
    return out


def content_fields(lines):
    return [raw for name, raw in fields(lines) if name.startswith(b"content-")]


def show(b, n=200):
    return repr(b[:n]) + ("..." if len(b) > n else "")


def diff(what, a, b):
    if a == b:
        return True
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    sys.stderr.write("%s differ: lengths %d vs %d, first difference at %d: %s vs %s\n"
                     % (what, len(a), len(b), i, show(a[i:i + 60]), show(b[i:i + 60])))
    return False


def main(argv):
    cmd = argv[1]
    if cmd == "extract":
        msg = email.message_from_bytes(open(argv[2], "rb").read(),
                                       policy=email.policy.compat32)
        if msg.get_content_type() != "multipart/encrypted" or \
                msg.get_param("protocol") != "application/pgp-encrypted":
            sys.stderr.write("not PGP/MIME: Content-Type %s\n" % msg.get("Content-Type"))
            return 1
        parts = msg.get_payload()
        if len(parts) != 2 or parts[0].get_content_type() != "application/pgp-encrypted" \
                or parts[1].get_content_type() != "application/octet-stream":
            sys.stderr.write("bad parts: %s\n" % [p.get_content_type() for p in parts])
            return 1
        if "Version: 1" not in parts[0].get_payload():
            sys.stderr.write("no 'Version: 1' in the control part\n")
            return 1
        sys.stdout.write(parts[1].get_payload())
        return 0
    if cmd == "same-entity":
        oh, ob = split(open(argv[2], "rb").read())
        dh, db = split(open(argv[3], "rb").read())
        ok = diff("Content-* header lines", b"\n".join(content_fields(oh)),
                  b"\n".join(content_fields(dh)))
        return 0 if diff("bodies", ob, db) and ok else 1
    if cmd == "untouched":
        oh, ob = split(open(argv[2], "rb").read())
        dh, db = split(open(argv[3], "rb").read())
        if db.endswith(b"\n"):
            db = db[:-1]  # smtp-sink's empty line after the message
        ok = diff("Content-* header lines", b"\n".join(content_fields(oh)),
                  b"\n".join(content_fields(dh)))
        if any(n == b"x-smp-encrypted" for n, _ in fields(dh)):
            sys.stderr.write("X-SMP-Encrypted present\n")
            ok = False
        return 0 if diff("bodies", ob, db) and ok else 1
    if cmd == "header":
        h, _ = split(open(argv[2], "rb").read())
        want = argv[3].lower().encode()
        for name, raw in fields(h):
            if name == want:
                v = raw.split(b":", 1)[1].replace(b"\n", b"").strip()
                sys.stdout.write(v.decode("utf-8", "replace") + "\n")
        return 0
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
PYEOF

# ------------------------------------------------------------- test messages

# text/plain, quoted-printable UTF-8, a folded Content-Type
cat >"$WORK/text.src" <<'MSG'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: Quarterly numbers (confidential)
Message-ID: <enc-text@example.org>
MIME-Version: 1.0
Content-Type: text/plain;
	charset=utf-8; format=flowed
Content-Transfer-Encoding: quoted-printable

Hi Bob,

the numbers for Q3 are attached in my head: revenue up 12 =E2=82=AC.
A line with trailing spaces   =20
.a line starting with a dot (SMTP dot-stuffing)
..two dots

-- 
Alice
MSG

# multipart/alternative: text + HTML
cat >"$WORK/html.src" <<'MSG'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: Newsletter draft
Message-ID: <enc-html@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="=_alt_b0undary_42"

This is a multi-part message in MIME format.

--=_alt_b0undary_42
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Plain version of the draft.

--=_alt_b0undary_42
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: 7bit

<html><body><p>HTML version of the <b>draft</b>.</p></body></html>

--=_alt_b0undary_42--
MSG

# multipart/mixed with a 2 MB (2,097,152 octets) random binary attachment
{
	cat <<'MSG'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: The blob
Message-ID: <enc-bin@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-7f3a"

--mixed-7f3a
Content-Type: text/plain; charset=us-ascii

The blob is attached.

--mixed-7f3a
Content-Type: application/octet-stream; name="blob.bin"
Content-Disposition: attachment; filename="blob.bin"
Content-Transfer-Encoding: base64

MSG
	head -c 2097152 /dev/urandom | base64 -w 76
	printf '\n--mixed-7f3a--\n'
} >"$WORK/bin.src"

# A PGP/MIME message made here (encrypted to bob with a scratch gpg home).
SCRATCH=$WORK/gnupg-scratch
mkdir -m 700 "$SCRATCH"
gpg --homedir "$SCRATCH" --batch --quiet --import "$KEYS/bob.pub.asc" 2>/dev/null
{
	cat <<'MSG'
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: Already encrypted
Message-ID: <enc-already@example.org>
MIME-Version: 1.0
Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";
	boundary="pgp-already-1"

This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)
--pgp-already-1
Content-Type: application/pgp-encrypted
Content-Description: PGP/MIME version identification

Version: 1

--pgp-already-1
Content-Type: application/octet-stream; name="encrypted.asc"
Content-Description: OpenPGP encrypted message
Content-Disposition: inline; filename="encrypted.asc"

MSG
	printf 'Content-Type: text/plain\n\nalready encrypted by the MUA\n' |
		gpg --homedir "$SCRATCH" --batch --quiet --trust-model always --armor \
			--encrypt -r bob@example.net
	printf '\n--pgp-already-1--\n'
} >"$WORK/already.src" || pf_die "cannot make the PGP/MIME fixture (gpg)"
gpgconf --homedir "$SCRATCH" --kill all >/dev/null 2>&1

# bob's secret key, for decrypting what arrives
DEC=$WORK/gnupg-bob
mkdir -m 700 "$DEC"
gpg --homedir "$DEC" --batch --quiet --import "$KEYS/bob.sec.asc" 2>/dev/null ||
	pf_die "cannot import $KEYS/bob.sec.asc"

# msg ID SRC: SRC with "X-E2E-Id: ID" in front; prints the new file's path.
msg() {
	local out=$WORK/$1.eml
	{ printf 'X-E2E-Id: %s\n' "$1"; cat "$2"; } >"$out"
	echo "$out"
}

sink_file() { pf_sink_file "$SINK_DIR_sink" "X-E2E-Id: $1"; }
sink_has() { [ -n "$(sink_file "$1")" ]; }
sink_count() { pf_sink_count "$SINK_DIR_sink" "X-E2E-Id: $1"; }
hdr() { python3 "$PY" header "$1" "$2"; }
# rcpts FILE: the envelope recipients of a dumped transaction, sorted, ","
rcpts() { hdr "$1" X-Rcpt-Args | sed 's/^<//; s/>.*//' | sort | paste -sd, -; }

# deliver ID FILE [SWAKS OPTIONS...]: swaks to mx; waits for the sink.
# Sets GOT (the dump file, empty on timeout); transcript in $WORK/ID.swaks.
# swaks (20201014) sends an empty line of its own before the final "."
# when the data ends with a newline, so it gets FILE without its last LF:
# then exactly FILE's lines go over the wire (CRLF).
deliver() {
	head -c -1 "$2" >"$WORK/$1.data"
	pf_swaks "$SMTPD_PORT_mx" "$WORK/$1.data" "${@:3}" >"$WORK/$1.swaks"
	GOT=
	pf_wait "$WAIT" sink_has "$1" && GOT=$(sink_file "$1")
}

# decrypt DUMP OUT: bob's secret key on the PGP/MIME dump, by gpg into
# OUT and by sq into OUT.sq; 0 when both decrypt it to the same octets.
decrypt() {
	python3 "$PY" extract "$1" >"$2.asc" 2>"$2.err" || return 1
	rm -f "$2" "$2.sq"
	gpg --homedir "$DEC" --batch --pinentry-mode loopback --passphrase '' \
		--decrypt --output "$2" "$2.asc" 2>>"$2.err" || return 1
	sq decrypt --recipient-key "$KEYS/bob.sec.asc" --output "$2.sq" "$2.asc" \
		2>>"$2.err" || { echo "sq could not decrypt it" >>"$2.err"; return 1; }
	cmp -s "$2" "$2.sq" || { echo "gpg and sq decrypted different octets" >>"$2.err"; return 1; }
}

# check_encrypted DESC ID SRC: the dump of ID is PGP/MIME and decrypts to
# SRC's Content-* lines and body (line ends normalised).
check_encrypted() {
	local desc=$1 id=$2 src=$3 f
	f=$(sink_file "$id")
	if [ -z "$f" ]; then
		not_ok "$desc" "$id never reached the sink"
		return
	fi
	check_encrypted_file "$desc" "$f" "$src" "$id"
}
check_encrypted_file() {
	local desc=$1 f=$2 src=$3 id=$4 x
	x=$(hdr "$f" X-SMP-Encrypted)
	if [ "$x" != pgp-mime ]; then
		not_ok "$desc" "X-SMP-Encrypted: '$x' in $f" "Content-Type: $(hdr "$f" Content-Type)"
	elif ! decrypt "$f" "$WORK/$id.dec"; then
		not_ok "$desc" "extract/decrypt failed: $(tr '\n' '|' <"$WORK/$id.dec.err" | head -c 400)"
	elif ! python3 "$PY" same-entity "$src" "$WORK/$id.dec" 2>"$WORK/$id.cmp"; then
		not_ok "$desc" "$(cat "$WORK/$id.cmp")"
	else
		ok "$desc"
	fi
}

# check_untouched DESC ID SRC
check_untouched() {
	local desc=$1 id=$2 src=$3 f
	f=$(sink_file "$id")
	if [ -z "$f" ]; then
		not_ok "$desc" "$id never reached the sink"
	elif ! python3 "$PY" untouched "$src" "$f" 2>"$WORK/$id.cmp"; then
		not_ok "$desc" "$(cat "$WORK/$id.cmp")"
	else
		ok "$desc"
	fi
}

# log_has ID REGEX: the milter's log line for the message with Message-ID
# <enc-ID...> is found by its queue ID (from the sink's Received header).
qid_of() { grep -o 'with ESMTP id [0-9A-F]*' "$1" | awk '{ print $4 }' | tail -1; }
log_check() {
	local desc=$1 f=$2 re=$3 q
	q=$( [ -n "$f" ] && qid_of "$f")
	if [ -n "$q" ] && grep -qE "^smp-milter\[info\]: $q: .*$re" "$PF_MILTER_LOG"; then
		ok "$desc"
	else
		not_ok "$desc" "queue ID '${q}', log: $( [ -n "$q" ] && grep -F "$q:" "$PF_MILTER_LOG" | tail -2 | tr '\n' '|')"
	fi
}

# ------------------------------------------------------------------ set up

# key discovery off: these tests are about keys the keyring holds (tests/postfix/discovery.sh
# tests discovery)
MILTER_BASE=$'replay {\n  enabled = false\n}\ndiscovery {\n  methods = {off}\n}\n'
ENC_OPP=$'encrypt {\n  default = opportunistic\n  policy "req.example" {\n    encrypt = required\n  }\n}'
ENC_SPLIT=$'encrypt {\n  default = opportunistic\n  split_recipients = yes\n}'
ENC_BOB_REQ=$'encrypt {\n  default = opportunistic\n  policy "bob@example.net" {\n    encrypt = required\n  }\n}'
ENC_SUBJ=$'encrypt {\n  default = opportunistic\n  protect_subject = yes\n}'
INBOUND=$'outbound {\n  networks = {"192.0.2.0/24"}\n}'
CRYPTO_GNUPG=$'crypto {\n  engine = gnupg\n}'
reload() { pf_milter_reload "$MILTER_BASE" "$@" || pf_die "smp-milter did not log 'configuration reloaded' after SIGHUP"; }

pf_sink_start sink
PF_SMTPD_MILTERS="unix:$PF_TMP/milter/smp-milter.sock" \
	pf_instance_create mx "[127.0.0.1]:$SINK_PORT_sink"
PF_SMTPD=0 PF_EXTRA_MAIN='smtp_connection_cache_on_demand = no' \
	pf_instance_create out "[127.0.0.1]:$SMTPD_PORT_mx"
pf_milter_start "$MILTER_BASE" "$ENC_OPP"
pf_smpctl keys import "$KEYS/bob.pub.asc" >"$WORK/import.out" 2>&1 ||
	pf_die "smpctl keys import $KEYS/bob.pub.asc failed: $(cat "$WORK/import.out")"
pf_instance_start mx
pf_instance_start out
pf_log "sink 127.0.0.1:$SINK_PORT_sink, mx 127.0.0.1:$SMTPD_PORT_mx, tmp $PF_TMP"

# the default engine starts no process: strace follows the daemon (and
# anything it would start) from here to the end of the rnp part
if grep -q 'crypto engine rnp' "$PF_MILTER_LOG"; then
	ok "smp-milter runs the default crypto engine, rnp (start-up log)"
else
	not_ok "smp-milter runs the default crypto engine, rnp (start-up log)" "$(grep -m1 starting "$PF_MILTER_LOG")"
fi
STRACE_OUT=$WORK/milter.strace
strace -f -qq -e trace=execve,execveat -o "$STRACE_OUT" -p "$PF_MILTER_PID" 2>"$WORK/strace.err" &
STRACE_PID=$!
PF_PIDS+=("$STRACE_PID")
traced() { grep -q "^TracerPid:[[:space:]]*[1-9]" "/proc/$PF_MILTER_PID/status"; }
pf_wait 10 traced || pf_die "strace did not attach to smp-milter: $(cat "$WORK/strace.err")"

# ------------------------------------------------------------ round trips

for kind in text html bin; do
	case $kind in
	text) what="text/plain (quoted-printable, folded Content-Type)" ;;
	html) what="multipart/alternative text + HTML" ;;
	bin) what="multipart/mixed with a 2 MB binary attachment" ;;
	esac
	deliver "rt-$kind" "$(msg "rt-$kind" "$WORK/$kind.src")"
	if [ -n "$GOT" ] && [ "$(hdr "$GOT" Content-Type | grep -c '^multipart/encrypted; *protocol="application/pgp-encrypted"')" = 1 ]; then
		ok "$what to bob arrives at the sink as multipart/encrypted (rcpt $(rcpts "$GOT"))"
	else
		not_ok "$what to bob arrives at the sink as multipart/encrypted" \
			"sink file: ${GOT:-none}" "Content-Type: $( [ -n "$GOT" ] && hdr "$GOT" Content-Type)" \
			"swaks: $(grep -E '^(<\*\*|<-  [0-9]{3})' "$WORK/rt-$kind.swaks" | tail -2 | tr '\n' '|')"
	fi
	check_encrypted "$what: decrypted with bob's secret key by gpg and by sq, Content-* lines and body equal the original byte for byte (line ends normalised to LF)" \
		"rt-$kind" "$WORK/$kind.src"
	log_check "$what: smp-milter logged direction=outbound ... encrypt=pgp-mime" "$GOT" 'direction=outbound .*encrypt=pgp-mime'
done
f=$(sink_file rt-text)
if [ -n "$f" ] && ! grep -q 'Quarterly numbers\|=E2=82=AC\|two dots' <(sed -n '/^$/,$p' "$f"); then
	ok "no plaintext of the text message in the sink's body (Subject stays outside without protect_subject)"
else
	not_ok "no plaintext of the text message in the sink's body"
fi

# ---------------------------------------------------------------- inbound

reload "$ENC_OPP" "$INBOUND"
deliver in-text "$(msg in-text "$WORK/text.src")"
check_untouched "inbound (outbound.networks = 192.0.2.0/24) message to bob arrives untouched (Content-* lines and body as sent, no X-SMP-Encrypted)" \
	in-text "$WORK/text.src"
log_check "inbound: smp-milter logged direction=inbound and no encrypt= field (not considered for encryption)" "$GOT" 'direction=inbound smp=no forged=[0-9]+ action=pass'
reload "$ENC_OPP"

# ------------------------------------------------------- already encrypted

deliver already "$(msg already "$WORK/already.src")"
check_untouched "an already PGP/MIME-encrypted message to bob arrives untouched" already "$WORK/already.src"
log_check "already encrypted: smp-milter logged it as skipped" "$GOT" 'encrypt=[^ ]*(already-pgp|skip)'

# --------------------------------------------------- required without a key

out=$(pf_swaks "$SMTPD_PORT_mx" "$(msg req-nokey "$WORK/text.src")" --to zed@req.example)
printf '%s\n' "$out" >"$WORK/req-nokey.swaks"
if printf '%s\n' "$out" | grep -q '^<\*\* *550 5\.7\.1 .*zed@req\.example'; then
	ok "required recipient without a key: refused at SMTP with 550 5.7.1 naming zed@req.example"
else
	not_ok "required recipient without a key: refused at SMTP with 550 5.7.1 naming zed@req.example" \
		"$(printf '%s\n' "$out" | grep -E '^(<\*\*|<-  [0-9]{3})' | tail -3 | tr '\n' '|')"
fi
# a later message through the same path proves the sink has caught up
deliver req-after "$(msg req-after "$WORK/html.src")"
pf_wait 10 pf_queue_empty mx
if [ "$(sink_count req-nokey)" = 0 ] && pf_queue_empty mx; then
	ok "required without a key: nothing reaches the sink (and mx queues nothing)"
else
	not_ok "required without a key: nothing reaches the sink" "at sink: $(sink_count req-nokey), mx queue: $(pf_queue_count mx)"
fi

# ------------------------------------------ mixed recipients, opportunistic

deliver mixed "$(msg mixed "$WORK/text.src")" --to bob@example.net,carol@example.com
if [ -n "$GOT" ] && [ "$(sink_count mixed)" = 1 ] && [ "$(rcpts "$GOT")" = "bob@example.net,carol@example.com" ]; then
	ok "mixed bob (key) + carol (no key), opportunistic: one transaction to both at the sink"
else
	not_ok "mixed bob + carol, opportunistic: one transaction to both at the sink" \
		"dumps: $(sink_count mixed), rcpts: $( [ -n "$GOT" ] && rcpts "$GOT")"
fi
check_untouched "mixed, opportunistic: the message goes plain (untouched)" mixed "$WORK/text.src"
log_check "mixed, opportunistic: smp-milter logged encrypt=plain action=pass" "$GOT" 'direction=outbound .*encrypt=plain action=pass'

# ------------------------------------------------------- split_recipients

reload "$ENC_SPLIT"
m=$(msg split "$WORK/text.src")
/usr/sbin/sendmail -C "$(pf_conf out)" -f alice@example.org -- bob@example.net carol@example.com <"$m" 2>>"$WORK/postfix.err"
two() { [ "$(sink_count split)" -ge 2 ] && pf_queue_empty out && pf_queue_empty mx; }
pf_wait "$WAIT" two
files=$(pf_sink_files "$SINK_DIR_sink" "X-E2E-Id: split")
enc_f='' plain_f=''
for f in $files; do
	if [ "$(hdr "$f" X-SMP-Encrypted)" = pgp-mime ]; then enc_f="$enc_f $f"; else plain_f="$plain_f $f"; fi
done
enc_f=${enc_f# } plain_f=${plain_f# }
if [ "$(sink_count split)" = 2 ] && [ -n "$enc_f" ] && [ -n "$plain_f" ] &&
	[ "$(rcpts "$enc_f")" = bob@example.net ] && [ "$(rcpts "$plain_f")" = carol@example.com ]; then
	ok "split_recipients: bob + carol via 'out' arrive as two transactions: one encrypted to bob, one plain to carol"
else
	not_ok "split_recipients: bob + carol via 'out' arrive as two transactions: one encrypted to bob, one plain to carol" \
		"dumps: $(sink_count split), encrypted: [$enc_f] rcpt $( [ -n "$enc_f" ] && rcpts "${enc_f%% *}"), plain: [$plain_f] rcpt $( [ -n "$plain_f" ] && rcpts "${plain_f%% *}")"
fi
if grep -q 'split_recipients: recipient class .* differs .*452 4\.5\.3' "$PF_MILTER_LOG" &&
	grep -q 'status=deferred.*452 4\.5\.3' "$PF_TMP/out/log/maillog"; then
	ok "split_recipients: mx answered 452 4.5.3 for the second class and 'out' deferred that recipient"
else
	not_ok "split_recipients: mx answered 452 4.5.3 for the second class and 'out' deferred that recipient" \
		"$(grep 'status=' "$PF_TMP/out/log/maillog" | tail -3 | tr '\n' '|')"
fi
if [ -n "$enc_f" ] && [ "${enc_f// /}" = "$enc_f" ]; then
	check_encrypted_file "split_recipients: bob's copy decrypts to the original (line ends normalised)" "$enc_f" "$WORK/text.src" split-bob
else
	not_ok "split_recipients: bob's copy decrypts to the original" "encrypted dumps: [$enc_f]"
fi
if [ -n "$plain_f" ] && [ "${plain_f// /}" = "$plain_f" ] && python3 "$PY" untouched "$WORK/split.eml" "$plain_f" 2>"$WORK/split-carol.cmp"; then
	ok "split_recipients: carol's copy is the original, untouched"
else
	not_ok "split_recipients: carol's copy is the original, untouched" "plain dumps: [$plain_f] $(cat "$WORK/split-carol.cmp" 2>/dev/null)"
fi

# ------------------------------------------- rnp: no GnuPG home needed

BROKEN=$PF_TMP/milter/gnupg-broken
echo broken >"$BROKEN"
pf_milter_reload_gnupg "$BROKEN" "$MILTER_BASE" "$ENC_BOB_REQ" ||
	pf_die "smp-milter did not log 'configuration reloaded' after SIGHUP (gnupg_home a file)"
m=$(msg nohome "$WORK/text.src")
pf_sendmail out alice@example.org bob@example.net "$m" 2>>"$WORK/postfix.err"
arrived_nohome() { sink_has nohome && pf_queue_empty out && pf_queue_empty mx; }
pf_wait "$WAIT" arrived_nohome
if [ "$(sink_count nohome)" = 1 ] && [ "$(cat "$BROKEN")" = broken ]; then
	ok "rnp, gnupg_home a file: the required message to bob arrives once (rnp reads no GnuPG home; the file is untouched)"
else
	not_ok "rnp, gnupg_home a file: the required message to bob arrives once" \
		"at sink: $(sink_count nohome), out queue: $(pf_queue_count out)"
fi
check_encrypted "rnp, gnupg_home a file: it is encrypted and decrypts to the original" nohome "$WORK/text.src"

# the end of the rnp part: what did the daemon execute?
kill "$STRACE_PID" 2>/dev/null
wait "$STRACE_PID" 2>/dev/null
nexec=$(grep -c 'execve' "$STRACE_OUT" 2>/dev/null)
nmsg=$(grep -c 'encrypt=pgp-mime' "$PF_MILTER_LOG")
if [ -f "$STRACE_OUT" ] && [ "${nexec:-1}" = 0 ] && [ "$nmsg" -ge 5 ]; then
	ok "rnp: smp-milter executed no program (0 execve under strace -f) while it encrypted $nmsg messages"
else
	not_ok "rnp: smp-milter executed no program while it encrypted" \
		"execve: ${nexec:-?}, encrypted: $nmsg" "$(grep -m3 execve "$STRACE_OUT" 2>/dev/null | tr '\n' '|')"
fi

# ------------------------------------------ gnupg engine: broken GnuPG home

pf_milter_reload_gnupg "$BROKEN" "$MILTER_BASE" "$ENC_BOB_REQ" "$CRYPTO_GNUPG" ||
	pf_die "smp-milter did not log 'configuration reloaded' after SIGHUP (broken gnupg_home)"
# the same strace on the gnupg engine, to show it sees gpg when there is one
STRACE_OUT=$WORK/milter-gnupg.strace
strace -f -qq -e trace=execve,execveat -o "$STRACE_OUT" -p "$PF_MILTER_PID" 2>"$WORK/strace.err" &
STRACE_PID=$!
PF_PIDS+=("$STRACE_PID")
pf_wait 10 traced || pf_die "strace did not attach to smp-milter: $(cat "$WORK/strace.err")"
m=$(msg broken "$WORK/text.src")
pf_sendmail out alice@example.org bob@example.net "$m" 2>>"$WORK/postfix.err"
deferred_451() { grep -q 'status=deferred.*451 4\.3\.0' "$PF_TMP/out/log/maillog"; }
if pf_wait "$WAIT" deferred_451; then
	ok "gnupg engine, broken gnupg_home (a file): the required message is deferred by 'out' with mx's 451 4.3.0"
else
	not_ok "gnupg engine, broken gnupg_home (a file): the required message is deferred by 'out' with mx's 451 4.3.0" \
		"$(grep 'status=' "$PF_TMP/out/log/maillog" | tail -2 | tr '\n' '|')"
fi
sleep 3   # a few retry rounds (1-2 s backoff) against the broken home
if [ "$(sink_count broken)" = 0 ] && [ "$(pf_queue_count out)" -ge 1 ] &&
	grep -q 'encryption failed: .*action=tempfail' "$PF_MILTER_LOG"; then
	ok "gnupg engine, broken gnupg_home: nothing reaches the sink, the message waits in 'out' (milter logged 'encryption failed ... action=tempfail')"
else
	not_ok "gnupg engine, broken gnupg_home: nothing reaches the sink, the message waits in 'out'" \
		"at sink: $(sink_count broken), out queue: $(pf_queue_count out)"
fi
reload "$ENC_BOB_REQ" "$CRYPTO_GNUPG"
postqueue -c "$(pf_conf out)" -f 2>>"$WORK/postfix.err"
arrived() { sink_has broken && pf_queue_empty out && pf_queue_empty mx; }
pf_wait "$WAIT" arrived
if [ "$(sink_count broken)" = 1 ]; then
	ok "gnupg engine, gnupg_home fixed (SIGHUP) + postqueue -f: the message arrives once"
else
	not_ok "gnupg engine, gnupg_home fixed (SIGHUP) + postqueue -f: the message arrives once" \
		"at sink: $(sink_count broken), out queue: $(pf_queue_count out)"
fi
check_encrypted "gnupg engine: after the fix it arrives encrypted and decrypts to the original (line ends normalised)" broken "$WORK/text.src"
kill "$STRACE_PID" 2>/dev/null
wait "$STRACE_PID" 2>/dev/null
nexec=$(grep -c 'execve("[^"]*/gpg"' "$STRACE_OUT" 2>/dev/null)
if [ "${nexec:-0}" -ge 1 ]; then
	ok "gnupg engine: the same strace sees the daemon execute gpg ($nexec times): the rnp count above is not blind"
else
	not_ok "gnupg engine: the same strace sees the daemon execute gpg" "$(head -3 "$STRACE_OUT" 2>/dev/null | tr '\n' '|')"
fi

# ------------------------------------------------------- protect_subject

reload "$ENC_SUBJ"   # back to the default engine, rnp
deliver subj "$(msg subj "$WORK/text.src")"
s_out=$( [ -n "$GOT" ] && hdr "$GOT" Subject)
if [ -n "$GOT" ] && [ "$s_out" = "..." ]; then
	ok "protect_subject: the outer Subject is '...'"
else
	not_ok "protect_subject: the outer Subject is '...'" "got '$s_out' (${GOT:-no sink file})"
fi
if [ -n "$GOT" ] && decrypt "$GOT" "$WORK/subj.dec" &&
	[ "$(hdr "$WORK/subj.dec" Subject)" = "Quarterly numbers (confidential)" ] &&
	hdr "$WORK/subj.dec" Content-Type | grep -q 'protected-headers="v1"'; then
	ok "protect_subject: the decrypted entity has 'Subject: Quarterly numbers (confidential)' and protected-headers=\"v1\""
else
	not_ok "protect_subject: the decrypted entity has the real Subject and protected-headers=\"v1\"" \
		"inner Subject: '$(hdr "$WORK/subj.dec" Subject 2>/dev/null)'" "inner Content-Type: '$(hdr "$WORK/subj.dec" Content-Type 2>/dev/null)'"
fi
# the body is still the original's (the Content-Type differs by the parameter)
if [ -f "$WORK/subj.dec" ] && [ "$(python3 -c '
import sys
a = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
b = open(sys.argv[2], "rb").read().replace(b"\r\n", b"\n")
print(a.split(b"\n\n", 1)[1] == b.split(b"\n\n", 1)[1])' "$WORK/text.src" "$WORK/subj.dec")" = True ]; then
	ok "protect_subject: the decrypted body equals the original (line ends normalised)"
else
	not_ok "protect_subject: the decrypted body equals the original"
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
gpgconf --homedir "$DEC" --kill all >/dev/null 2>&1

if [ "$failed" -gt 0 ]; then
	pf_log "--- smp-milter log (tail)"
	tail -25 "$PF_MILTER_LOG" | sed 's/^/# /' >&2
	pf_log "--- out maillog (tail)"
	tail -10 "$PF_TMP/out/log/maillog" | sed 's/^/# /' >&2
fi
echo "1..$n"
[ "$failed" = 0 ]
