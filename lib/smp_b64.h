/* smp_b64.h - random access to base64 transfer-encoded data
 *
 * gmime decodes a part's transfer encoding as a stream; checking the
 * packet framing of a 1 MB payload then costs a full decode and copy. The
 * framing check only needs a few bytes at known offsets (packet headers,
 * partial-length chunk headers), so for the usual shape of base64 (every
 * line the same length) this module maps a decoded offset to its place in
 * the text and decodes just there. It checks every character of the text
 * first, so what it reads is exactly what a full decode would give; any
 * other shape is left to gmime's full decode.
 */
#ifndef SMP_B64_H
#define SMP_B64_H

#include <stdbool.h>
#include <stddef.h>

/* 0..63 for the base64 alphabet, -1 for anything else ('=' too). */
extern const signed char smp_b64_val[256];

struct smp_b64 {
	const char *text;
	size_t line;     /* base64 characters per full line (a multiple of 4) */
	size_t stride;   /* line + its line break (1 or 2 octets) */
	size_t nchars;   /* base64 characters, padding included */
	size_t out_len;  /* decoded length */
};

/*
 * Indexes text[0..len) when it is regular base64: lines of one length
 * (a multiple of 4) ended by LF or CRLF alike, a last line no longer, '='
 * padding only at the very end, nothing but white space after it, and only
 * base64 characters. False otherwise (then decode it in full).
 */
bool smp_b64_index(struct smp_b64 *b, const char *text, size_t len);

/* Decodes n octets at decoded offset off into out. False: out of range. */
bool smp_b64_read(const struct smp_b64 *b, size_t off, unsigned char *out,
		  size_t n);

#endif
