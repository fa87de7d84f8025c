#!/bin/sh
# Builds the run corpus of one fuzz target from the committed seeds in
# fuzz/corpus/TARGET/ and the test fixtures (fixtures/messages/*.eml,
# fixtures/keys/*). Run from anywhere; writes only below OUTDIR.
#
#   fuzz/seed-corpus.sh TARGET OUTDIR     TARGET: armor, packets, message,
#                                         address or keyinspect
#
# armor:   committed seeds, fixtures/keys/*.asc, every armored block found in
#          the fixture keys and messages
# packets: committed seeds, binary fixture keys, the dearmored blocks, and the
#          base64 MIME parts of the fixture messages that decode to OpenPGP
# message: committed seeds, fixtures/messages/*.eml
# keyinspect: committed seeds, every fixture key file (binary and armored,
#          public and secret)
set -eu

usage() {
	echo "usage: $0 armor|packets|message|address|keyinspect OUTDIR" >&2
	exit 64
}
[ $# -eq 2 ] || usage
target=$1
out=$2
case $target in armor | packets | message | address | keyinspect) ;; *) usage ;; esac

cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Fixtures larger than this are left out (libFuzzer truncates to -max_len).
max_bytes=1048576

# small FILE: true when FILE is a regular file no larger than max_bytes.
small() {
	[ -f "$1" ] && [ "$(wc -c <"$1")" -le "$max_bytes" ]
}

# copy_seeds DIR PREFIX: copies every small file of DIR into the corpus.
copy_seeds() {
	for f in "$1"/*; do
		small "$f" || continue
		cp -f "$f" "$out/$2$(basename "$f")"
	done
}

# armor_blocks FILE PREFIX: writes each armored block of FILE to
# PREFIX1.asc, PREFIX2.asc, ...
armor_blocks() {
	awk -v pfx="$2" '
	/^-----BEGIN PGP / { n++; f = pfx n ".asc"; on = 1 }
	on { print > f }
	on && /^-----END PGP / { on = 0; close(f) }
	' "$1"
}

# dearmor FILE: the base64 body of the armored block in FILE, decoded.
dearmor() {
	awk '
	{ sub(/\r$/, "") }
	NR == 1 { next }
	/^-----END PGP / || (body && /^=/) { exit }
	!body && ($0 == "" || $0 !~ /: /) { body = 1; if ($0 == "") next }
	body { print }
	' "$1" | base64 -d 2>/dev/null || true
}

# mime_base64 FILE PREFIX: writes the base64 body of each MIME part of FILE
# to PREFIX1.b64, PREFIX2.b64, ... (a rough scan, good enough for seeds).
mime_base64() {
	awk -v pfx="$2" '
	BEGIN { state = "hdr" }
	{ sub(/\r$/, "") }
	state == "b64" {
		if ($0 ~ /^[A-Za-z0-9+\/=]+$/) { print > f; next }
		close(f); state = "body"
	}
	state == "hdr" && tolower($0) ~ /^content-transfer-encoding:[ \t]*base64/ { b64 = 1 }
	state == "hdr" && $0 == "" {
		if (b64) { n++; f = pfx n ".b64"; state = "b64" } else state = "body"
		b64 = 0; next
	}
	/^--/ { state = "hdr"; b64 = 0 }
	' "$1"
}

# is_openpgp FILE: the first octet has bit 7 set.
is_openpgp() {
	b=$(od -An -tu1 -N1 "$1" | tr -d ' ')
	[ -n "$b" ] && [ "$b" -ge 128 ]
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Armored blocks of every fixture key and message, into $tmp/blocks/.
mkdir -p "$tmp/blocks"
for f in fixtures/keys/*.asc fixtures/messages/*.eml; do
	small "$f" || continue
	name=$(basename "$f")
	armor_blocks "$f" "$tmp/blocks/${name%.*}-"
done

copy_seeds "fuzz/corpus/$target" ""
case $target in
message)
	copy_seeds fixtures/messages fix-
	;;
keyinspect)
	copy_seeds fixtures/keys fix-
	rm -f "$out/fix-README"
	;;
armor)
	for f in fixtures/keys/*.asc; do
		if small "$f"; then
			cp -f "$f" "$out/fix-$(basename "$f")"
		fi
	done
	copy_seeds "$tmp/blocks" fix-block-
	;;
packets)
	for f in fixtures/keys/*; do
		case $f in *.gpg | *.pgp | *.bin) ;; *) continue ;; esac
		if small "$f"; then
			cp -f "$f" "$out/fix-$(basename "$f")"
		fi
	done
	for f in "$tmp"/blocks/*.asc; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .asc)
		dearmor "$f" >"$tmp/$name.bin"
		if [ -s "$tmp/$name.bin" ]; then
			cp -f "$tmp/$name.bin" "$out/fix-dearmor-$name.bin"
		fi
	done
	mkdir -p "$tmp/parts"
	for f in fixtures/messages/*.eml; do
		small "$f" || continue
		name=$(basename "$f" .eml)
		mime_base64 "$f" "$tmp/parts/$name-"
	done
	for f in "$tmp"/parts/*.b64; do
		[ -f "$f" ] || continue
		bin=${f%.b64}.bin
		base64 -d <"$f" >"$bin" 2>/dev/null || continue
		if is_openpgp "$bin"; then
			cp -f "$bin" "$out/fix-part-$(basename "$bin")"
		fi
	done
	;;
esac
exit 0
