#!/bin/sh
# Builds the run corpus of one fuzz target from the committed seeds in
# fuzz/corpus/TARGET/ and the test fixtures (fixtures/messages/*.eml,
# fixtures/keys/*). Run from anywhere; writes only below OUTDIR.
#
#   fuzz/seed-corpus.sh TARGET OUTDIR     TARGET: armor, packets, message,
#                                         address, keyinspect or merge
#
# armor:   committed seeds, fixtures/keys/*.asc, every armored block found in
#          the fixture keys and messages
# packets: committed seeds, binary fixture keys, the dearmored blocks, and the
#          base64 MIME parts of the fixture messages that decode to OpenPGP
# message: committed seeds, fixtures/messages/*.eml
# keyinspect: committed seeds, every fixture key file (binary and armored,
#          public and secret)
# merge:   committed seeds, and pairs of fixture public keys in fuzz_merge's
#          input format (two length octets, the stored block, the update):
#          each key with nothing stored, each key merged with itself (with
#          and without an address), and the fixtures' real updates (a second
#          encryption subkey, a revocation, a third-party certification,
#          another key of the same address), binary and armored
set -eu

usage() {
	echo "usage: $0 armor|packets|message|address|keyinspect|merge OUTDIR" >&2
	exit 64
}
[ $# -eq 2 ] || usage
target=$1
out=$2
case $target in armor | packets | message | address | keyinspect | merge) ;; *) usage ;; esac

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

# merge_seed NAME NOADDR STORED UPDATE: writes fuzz_merge's input
# (NOADDR 1: no address; STORED "" : nothing stored) to the corpus as
# fix-merge-NAME, unless it would not fit 64 KiB (-max_len).
merge_seed() {
	slen=0
	[ -n "$3" ] && slen=$(wc -c <"$3")
	ulen=$(wc -c <"$4")
	[ $((2 + slen + ulen)) -le 65536 ] || return 0
	hi=$((slen / 256))
	[ "$2" = 1 ] && hi=$((hi + 128))
	lo=$((slen % 256))
	{
		# shellcheck disable=SC2059
		printf "\\$(printf %03o "$hi")\\$(printf %03o "$lo")"
		[ -n "$3" ] && cat "$3"
		cat "$4"
	} >"$out/fix-merge-$1"
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
merge)
	k=fixtures/keys
	for f in "$k"/*.pub.gpg; do
		n=$(basename "$f" .pub.gpg)
		merge_seed "$n-new" 0 "" "$f"
		merge_seed "$n-again" 0 "$f" "$f"
		merge_seed "$n-again-noaddr" 1 "$f" "$f"
	done
	merge_seed alice-updated 0 "$k/alice.pub.gpg" "$k/alice-updated.pub.gpg"
	merge_seed alice-updated-asc 0 "$k/alice.pub.asc" \
		"$k/alice-updated.pub.asc"
	merge_seed alice-other 0 "$k/alice.pub.gpg" "$k/alice-other.pub.gpg"
	merge_seed revoked 1 "$k/revoked-prior.pub.gpg" "$k/revoked.pub.gpg"
	merge_seed revoked-addr 0 "$k/revoked-prior.pub.gpg" \
		"$k/revoked.pub.gpg"
	merge_seed carol-certified 0 "$k/carol.pub.gpg" \
		"$k/carol-certified.pub.gpg"
	merge_seed future2122-asc 0 "$k/future2122.pub.asc" \
		"$k/future2122.pub.asc"
	# two copies of a key in one update, and two keys
	cat "$k/alice.pub.gpg" "$k/alice-updated.pub.gpg" >"$tmp/two.gpg"
	merge_seed alice-two-copies 0 "" "$tmp/two.gpg"
	cat "$k/bob.pub.gpg" "$k/alice.pub.gpg" >"$tmp/other.gpg"
	merge_seed alice-behind-bob 0 "$k/alice.pub.gpg" "$tmp/other.gpg"
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
