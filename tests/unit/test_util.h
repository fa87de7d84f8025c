/* test_util.h - helpers shared by the libsmp unit tests.
 *
 * Everything here is independent of libsmp (own base64, own CRC-24, own
 * OpenPGP packet header writer) so that the tests do not check the library
 * against itself. All functions are static inline: each test file uses a
 * different subset and -Werror must not trip over unused ones.
 */
#ifndef SMP_TEST_UTIL_H
#define SMP_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* A growable byte buffer, always NUL-terminated after len.            */

struct tbuf {
	unsigned char *p;
	size_t len, cap;
};

static inline void tb_reserve(struct tbuf *b, size_t more)
{
	if (b->len + more + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + more + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
}

static inline void tb_put(struct tbuf *b, const void *d, size_t n)
{
	tb_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void tb_byte(struct tbuf *b, unsigned c)
{
	unsigned char x = (unsigned char)c;
	tb_put(b, &x, 1);
}

static inline void tb_fill(struct tbuf *b, unsigned c, size_t n)
{
	tb_reserve(b, n);
	memset(b->p + b->len, (int)c, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void tb_str(struct tbuf *b, const char *s)
{
	tb_put(b, s, strlen(s));
}

static inline void tb_printf(struct tbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	tb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static inline const char *tb_cstr(struct tbuf *b)
{
	tb_reserve(b, 0);
	b->p[b->len] = '\0';
	return (const char *)b->p;
}

static inline void tb_free(struct tbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ */
/* Base64 (RFC 4648) and CRC-24 (RFC 4880 6.1), written independently.  */

static inline void t_b64_quantum(struct tbuf *out, const unsigned char *p,
				 size_t n)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v = (uint32_t)p[0] << 16;
	if (n > 1)
		v |= (uint32_t)p[1] << 8;
	if (n > 2)
		v |= p[2];
	tb_byte(out, (unsigned char)al[(v >> 18) & 63]);
	tb_byte(out, (unsigned char)al[(v >> 12) & 63]);
	tb_byte(out, n > 1 ? (unsigned char)al[(v >> 6) & 63] : '=');
	tb_byte(out, n > 2 ? (unsigned char)al[v & 63] : '=');
}

/* Appends base64 of p[0..n) to out; a line break (eol) after every
 * wrap characters and after the last line when wrap > 0. */
static inline void t_b64_append(struct tbuf *out, const unsigned char *p,
				size_t n, size_t wrap, const char *eol)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i += 3) {
		t_b64_quantum(out, p + i, n - i < 3 ? n - i : 3);
		col += 4;
		if (wrap && col >= wrap) {
			tb_str(out, eol);
			col = 0;
		}
	}
	if (wrap && col)
		tb_str(out, eol);
}

static inline uint32_t t_crc24(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xB704CE;

	for (size_t i = 0; i < n; i++) {
		crc ^= (uint32_t)p[i] << 16;
		for (int k = 0; k < 8; k++) {
			crc <<= 1;
			if (crc & 0x1000000)
				crc ^= 0x1864CFB;
		}
	}
	return crc & 0xFFFFFF;
}

/* "=XXXX" for a CRC-24 value. */
static inline void t_crc_line(struct tbuf *out, uint32_t crc, const char *eol)
{
	unsigned char c[3] = {(unsigned char)(crc >> 16),
			      (unsigned char)(crc >> 8), (unsigned char)crc};
	tb_byte(out, '=');
	t_b64_append(out, c, 3, 0, "");
	tb_str(out, eol);
}

/*
 * An armored block: BEGIN line, headers (each "K: v" line of the
 * NULL-terminated list), empty line, base64 lines of 64 characters,
 * "=CRC" line when with_crc, END line. eol is "\n" or "\r\n".
 */
static inline void t_armor(struct tbuf *out, const char *label,
			   const unsigned char *data, size_t n,
			   const char *const *headers, int with_crc,
			   const char *eol)
{
	tb_printf(out, "-----BEGIN PGP %s-----%s", label, eol);
	for (size_t i = 0; headers && headers[i]; i++)
		tb_printf(out, "%s%s", headers[i], eol);
	tb_str(out, eol);
	t_b64_append(out, data, n, 64, eol);
	if (with_crc)
		t_crc_line(out, t_crc24(data, n), eol);
	tb_printf(out, "-----END PGP %s-----%s", label, eol);
}

/* ------------------------------------------------------------------ */
/* OpenPGP packet headers.                                              */

/* New format, the shortest definite length encoding. */
static inline void t_pkt_new(struct tbuf *b, unsigned tag, const void *body,
			     size_t n)
{
	tb_byte(b, 0xC0 | tag);
	if (n < 192) {
		tb_byte(b, (unsigned)n);
	} else if (n < 8384) {
		tb_byte(b, (unsigned)(((n - 192) >> 8) + 192));
		tb_byte(b, (unsigned)((n - 192) & 0xFF));
	} else {
		tb_byte(b, 0xFF);
		tb_byte(b, (unsigned)(n >> 24));
		tb_byte(b, (unsigned)(n >> 16));
		tb_byte(b, (unsigned)(n >> 8));
		tb_byte(b, (unsigned)n);
	}
	tb_put(b, body, n);
}

/* New format with a five-octet length whatever the size. */
static inline void t_pkt_new5(struct tbuf *b, unsigned tag, const void *body,
			      size_t n)
{
	tb_byte(b, 0xC0 | tag);
	tb_byte(b, 0xFF);
	tb_byte(b, (unsigned)(n >> 24));
	tb_byte(b, (unsigned)(n >> 16));
	tb_byte(b, (unsigned)(n >> 8));
	tb_byte(b, (unsigned)n);
	tb_put(b, body, n);
}

/* Old format; lt 0/1/2 = 1/2/4-octet length, 3 = indeterminate. */
static inline void t_pkt_old(struct tbuf *b, unsigned tag, unsigned lt,
			     const void *body, size_t n)
{
	tb_byte(b, 0x80 | (tag << 2) | lt);
	if (lt == 0) {
		tb_byte(b, (unsigned)n);
	} else if (lt == 1) {
		tb_byte(b, (unsigned)(n >> 8));
		tb_byte(b, (unsigned)n);
	} else if (lt == 2) {
		tb_byte(b, (unsigned)(n >> 24));
		tb_byte(b, (unsigned)(n >> 16));
		tb_byte(b, (unsigned)(n >> 8));
		tb_byte(b, (unsigned)n);
	}
	tb_put(b, body, n);
}

/* A partial-length chunk header octet for 2^e octets. */
static inline unsigned t_partial_octet(unsigned e)
{
	return 224 + e;
}

/* A PKESK v3 body: version, key ID, algorithm 1 (RSA), a small MPI. */
static inline void t_pkesk3_body(struct tbuf *b, const unsigned char keyid[8])
{
	static const unsigned char mpi[] = {0x00, 0x08, 0xA5};
	tb_byte(b, 3);
	tb_put(b, keyid, 8);
	tb_byte(b, 1);
	tb_put(b, mpi, sizeof(mpi));
}

static inline void t_pkesk3(struct tbuf *b, const unsigned char keyid[8])
{
	struct tbuf body = {0};
	t_pkesk3_body(&body, keyid);
	t_pkt_new(b, 1, body.p, body.len);
	tb_free(&body);
}

/* SKESK v4: version 4, cipher 9 (AES-256), S2K simple (0) with SHA-256. */
static inline void t_skesk4(struct tbuf *b)
{
	static const unsigned char body[] = {4, 9, 0, 8};
	t_pkt_new(b, 3, body, sizeof(body));
}

/* SEIPD v1 with n octets of pseudo ciphertext. */
static inline void t_seipd1(struct tbuf *b, size_t n)
{
	struct tbuf body = {0};
	tb_byte(&body, 1);
	for (size_t i = 0; i < n; i++)
		tb_byte(&body, (unsigned)((i * 37 + 11) & 0xFF));
	t_pkt_new(b, 18, body.p, body.len);
	tb_free(&body);
}

/* A minimal v4 Public-Key packet body: version, time, RSA, n, e. */
static inline void t_pubkey_body(struct tbuf *b)
{
	static const unsigned char body[] = {
		4, 0x5F, 0x00, 0x00, 0x00, 1,   /* v4, created, RSA */
		0x00, 0x10, 0xC3, 0x5A,         /* MPI n (16 bits) */
		0x00, 0x11, 0x01, 0x00, 0x01,   /* MPI e = 65537 */
	};
	tb_put(b, body, sizeof(body));
}

/* Transferable public key: key, user ID, signature, subkey, signature. */
static inline void t_pubkey_block(struct tbuf *b, const char *uid)
{
	static const unsigned char sig[] = {4, 0x13, 1, 8, 0, 0, 0, 0,
					    0xAB, 0xCD, 0x00, 0x08, 0x77};
	struct tbuf k = {0};
	t_pubkey_body(&k);
	t_pkt_new(b, 6, k.p, k.len);
	t_pkt_new(b, 13, uid, strlen(uid));
	t_pkt_new(b, 2, sig, sizeof(sig));
	t_pkt_new(b, 14, k.p, k.len);
	t_pkt_new(b, 2, sig, sizeof(sig));
	tb_free(&k);
}

/* Replaces every LF not preceded by CR with CRLF; returns a new buffer. */
static inline struct tbuf t_to_crlf(const char *s, size_t n)
{
	struct tbuf o = {0};
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			tb_byte(&o, '\r');
		tb_byte(&o, (unsigned char)s[i]);
	}
	tb_reserve(&o, 0);
	return o;
}

/* SMP_TEST_FILTER=pattern runs only the matching tests (cmocka globs);
 * handy under SANITIZE=1, where the first report ends the program. */
static inline void t_filter_from_env(void)
{
	const char *f = getenv("SMP_TEST_FILTER");
	if (f && *f)
		cmocka_set_test_filter(f);
}


/* ------------------------------------------------------------------ */
/* A whole file, malloc'd (fails the test when it cannot be read).     */

static inline unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	size_t cap = 0, len = 0, r;

	if (!f)
		fail_msg("cannot open %s", path);
	do {
		if (len + 65536 > cap) {
			cap = (len + 65536) * 2;
			p = realloc(p, cap);
			assert_non_null(p);
		}
		r = fread(p + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	fclose(f);
	*n = len;
	return p;
}

#endif
