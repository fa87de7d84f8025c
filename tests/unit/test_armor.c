/* test_armor.c - unit tests for lib/smp_armor.c */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smp_armor.h"
#include "test_util.h"

#define BIG ((size_t)1 << 20)

/* 0, 1, 2, ... n-1 mod 256 with a twist so no two buffers look alike. */
static void fill_bytes(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 8)) & 0xFF);
}

static enum smp_armor_status dec(const char *s, size_t max,
				 struct smp_armor *a)
{
	return smp_armor_decode(s, strlen(s), max, a);
}

/* ------------------------------------------------------------------ */
/* CRC-24                                                              */

static void test_crc24_empty(void **state)
{
	(void)state;
	assert_int_equal(smp_crc24((const unsigned char *)"", 0), 0xB704CE);
}

static void test_crc24_check_string(void **state)
{
	(void)state;
	assert_int_equal(smp_crc24((const unsigned char *)"123456789", 9),
			 0x21CF02);
}

static void test_crc24_single_bytes(void **state)
{
	unsigned char b[1];
	(void)state;
	for (unsigned v = 0; v < 256; v++) {
		b[0] = (unsigned char)v;
		assert_int_equal(smp_crc24(b, 1), t_crc24(b, 1));
	}
	b[0] = 'a';
	/* hand-computed with the bitwise reference */
	assert_int_equal(smp_crc24(b, 1), t_crc24((const unsigned char *)"a", 1));
}

static void test_crc24_long_buffer(void **state)
{
	unsigned char buf[4099];
	(void)state;
	fill_bytes(buf, sizeof(buf), 3);
	for (size_t n = 0; n <= sizeof(buf); n += 97)
		assert_int_equal(smp_crc24(buf, n), t_crc24(buf, n));
	assert_int_equal(smp_crc24(buf, sizeof(buf)),
			 t_crc24(buf, sizeof(buf)));
	/* the result always fits 24 bits */
	assert_int_equal(smp_crc24(buf, sizeof(buf)) & ~0xFFFFFFu, 0);
}

/* ------------------------------------------------------------------ */
/* Valid blocks                                                        */

static void check_roundtrip(size_t n, const char *eol, int with_crc,
			    const char *const *headers)
{
	unsigned char *data = malloc(n ? n : 1);
	struct tbuf t = {0};
	struct smp_armor a;

	assert_non_null(data);
	fill_bytes(data, n, (unsigned)n);
	t_armor(&t, "MESSAGE", data, n, headers, with_crc, eol);
	assert_int_equal(smp_armor_decode((const char *)t.p, t.len, BIG, &a),
			 SMP_ARMOR_OK);
	assert_int_equal(a.type, SMP_ARMOR_MESSAGE);
	assert_int_equal(a.len, n);
	assert_non_null(a.data);
	assert_memory_equal(a.data, data, n);
	assert_int_equal(a.has_crc, with_crc ? true : false);
	assert_int_equal(a.begin_off, 0);
	assert_int_equal(a.end_off, t.len);
	smp_armor_free(&a);
	assert_null(a.data);
	assert_int_equal(a.len, 0);
	tb_free(&t);
	free(data);
}

static void test_decode_valid_lf(void **state)
{
	(void)state;
	check_roundtrip(200, "\n", 1, NULL);
}

static void test_decode_valid_crlf(void **state)
{
	(void)state;
	check_roundtrip(200, "\r\n", 1, NULL);
}

static void test_decode_all_tail_lengths(void **state)
{
	(void)state;
	/* 0, 1 and 2 padding characters; one or several lines */
	for (size_t n = 1; n <= 100; n++) {
		check_roundtrip(n, "\n", 1, NULL);
		check_roundtrip(n, "\r\n", 0, NULL);
	}
}

static void test_decode_all_byte_values(void **state)
{
	unsigned char data[256];
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	for (unsigned i = 0; i < 256; i++)
		data[i] = (unsigned char)i;
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 1, "\n");
	assert_int_equal(smp_armor_decode((const char *)t.p, t.len, BIG, &a),
			 SMP_ARMOR_OK);
	assert_int_equal(a.len, 256);
	assert_memory_equal(a.data, data, 256);
	smp_armor_free(&a);
	tb_free(&t);
}

static void test_decode_known_text(void **state)
{
	/* "Hello, World!" = SGVsbG8sIFdvcmxkIQ== */
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\nSGVsbG8sIFdvcmxkIQ==\n");
	t_crc_line(&t, t_crc24((const unsigned char *)"Hello, World!", 13), "\n");
	tb_str(&t, "-----END PGP MESSAGE-----\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_OK);
	assert_int_equal(a.len, 13);
	assert_memory_equal(a.data, "Hello, World!", 13);
	assert_true(a.has_crc);
	smp_armor_free(&a);
	tb_free(&t);
}

static void test_decode_headers(void **state)
{
	static const char *const hdrs[] = {
		"Version: GnuPG v2",
		"Comment: https://example.org/some: thing",
		"Hash: SHA256",
		NULL,
	};
	(void)state;
	check_roundtrip(77, "\n", 1, hdrs);
	check_roundtrip(77, "\r\n", 1, hdrs);
}

static void test_decode_unaligned_lines(void **state)
{
	/* Line breaks in the middle of base64 quanta. */
	unsigned char data[50];
	struct tbuf b64 = {0}, t = {0};
	struct smp_armor a;
	(void)state;
	fill_bytes(data, sizeof(data), 9);
	t_b64_append(&b64, data, sizeof(data), 0, "");
	tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\n");
	for (size_t i = 0; i < b64.len; i += 7) {
		size_t k = b64.len - i < 7 ? b64.len - i : 7;
		tb_put(&t, b64.p + i, k);
		tb_str(&t, "\n");
	}
	t_crc_line(&t, t_crc24(data, sizeof(data)), "\n");
	tb_str(&t, "-----END PGP MESSAGE-----\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_OK);
	assert_int_equal(a.len, sizeof(data));
	assert_memory_equal(a.data, data, sizeof(data));
	smp_armor_free(&a);
	tb_free(&b64);
	tb_free(&t);
}

static void test_decode_missing_crc_accepted(void **state)
{
	unsigned char data[40];
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	fill_bytes(data, sizeof(data), 1);
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 0, "\n");
	assert_null(strstr(tb_cstr(&t), "\n="));
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_OK);
	assert_false(a.has_crc);
	assert_int_equal(a.len, sizeof(data));
	assert_memory_equal(a.data, data, sizeof(data));
	smp_armor_free(&a);
	tb_free(&t);
}

static void test_decode_trailing_whitespace(void **state)
{
	unsigned char data[10];
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	fill_bytes(data, sizeof(data), 5);
	tb_str(&t, "-----BEGIN PGP MESSAGE-----  \t\n");
	tb_str(&t, "Version: 1 \t\n");
	tb_str(&t, " \t\n"); /* blank line with white space */
	t_b64_append(&t, data, sizeof(data), 0, "");
	tb_str(&t, "\t  \r\n");
	t_crc_line(&t, t_crc24(data, sizeof(data)), "");
	tb_str(&t, "   \n");
	tb_str(&t, "-----END PGP MESSAGE----- \t \n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_OK);
	assert_int_equal(a.len, sizeof(data));
	assert_memory_equal(a.data, data, sizeof(data));
	assert_true(a.has_crc);
	smp_armor_free(&a);
	tb_free(&t);
}

static void test_decode_no_final_newline(void **state)
{
	unsigned char data[5] = {1, 2, 3, 4, 5};
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 1, "\n");
	t.len--; /* drop the final LF */
	assert_int_equal(smp_armor_decode((const char *)t.p, t.len, BIG, &a),
			 SMP_ARMOR_OK);
	assert_int_equal(a.len, 5);
	assert_memory_equal(a.data, data, 5);
	assert_int_equal(a.end_off, t.len);
	smp_armor_free(&a);
	tb_free(&t);
}

static void test_decode_text_around(void **state)
{
	unsigned char data[30];
	struct tbuf t = {0};
	struct smp_armor a;
	size_t begin, end;
	(void)state;
	fill_bytes(data, sizeof(data), 8);
	tb_str(&t, "Hello,\nsee below -----BEGIN PGP not here\n\n");
	begin = t.len;
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 1, "\n");
	end = t.len;
	tb_str(&t, "regards\n-----BEGIN PGP MESSAGE-----\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_OK);
	assert_int_equal(a.begin_off, begin);
	assert_int_equal(a.end_off, end);
	assert_int_equal(a.len, sizeof(data));
	assert_memory_equal(a.data, data, sizeof(data));
	smp_armor_free(&a);
	tb_free(&t);
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static void test_decode_crc_mismatch(void **state)
{
	unsigned char data[48], other[48];
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	fill_bytes(data, sizeof(data), 2);
	memcpy(other, data, sizeof(data));
	other[17] ^= 0x01;
	tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\n");
	t_b64_append(&t, data, sizeof(data), 64, "\n");
	t_crc_line(&t, t_crc24(other, sizeof(other)), "\n");
	tb_str(&t, "-----END PGP MESSAGE-----\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_ECRC);
	assert_null(a.data);
	tb_free(&t);
}

static void test_decode_flipped_data_char(void **state)
{
	/* One base64 character changed: CRC no longer matches. */
	unsigned char data[48];
	struct tbuf t = {0};
	struct smp_armor a;
	char *p;
	(void)state;
	fill_bytes(data, sizeof(data), 4);
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 1, "\n");
	p = strstr((char *)t.p, "\n\n") + 2 + 10;
	*p = (char)(*p == 'A' ? 'B' : 'A');
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_ECRC);
	tb_free(&t);
}

static void test_decode_crc_malformed(void **state)
{
	struct smp_armor a;
	(void)state;
	/* three characters */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n=abc\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_ECRC);
	/* a non-alphabet character */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n=ab*d\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_ECRC);
	/* five characters */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n=abcde\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_ECRC);
}

static void test_decode_data_after_crc(void **state)
{
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\nQUJD\n");
	t_crc_line(&t, t_crc24((const unsigned char *)"ABC", 3), "\n");
	tb_str(&t, "QUJD\n-----END PGP MESSAGE-----\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_ECRC);
	tb_free(&t);
}

static void test_decode_bad_char(void **state)
{
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQU*D\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	assert_null(a.data);
	/* an inner space is not white space to skip */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQU JD\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	/* URL-safe alphabet is not the armor alphabet */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQU-_\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
}

static void test_decode_bad_padding(void **state)
{
	struct smp_armor a;
	(void)state;
	/* too few characters, no padding */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJ\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	/* half the padding */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQQ=\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	/* three padding characters */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQ===\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	/* data after padding */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQQ=A\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQQ==QUJD\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
	/* a single character */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJDQ\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EBASE64);
}

static void test_decode_end_mismatch(void **state)
{
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n"
			     "-----END PGP SIGNATURE-----\n", BIG, &a),
			 SMP_ARMOR_EMISMATCH);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n"
			     "-----END PGP MESSAGE----\n", BIG, &a),
			 SMP_ARMOR_EMISMATCH);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n"
			     "-----END PGP MESSAGES-----\n", BIG, &a),
			 SMP_ARMOR_EMISMATCH);
	assert_null(a.data);
}

static void test_decode_no_end(void **state)
{
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n", BIG, &a),
			 SMP_ARMOR_ENOEND);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQUJD\n=Pbp2\n",
			     BIG, &a),
			 SMP_ARMOR_ENOEND);
	/* headers and then the end of input */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\nVersion: 1\n", BIG,
			     &a),
			 SMP_ARMOR_ENOEND);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_ENOEND);
	assert_null(a.data);
}

static void test_decode_no_begin(void **state)
{
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec("QUJD\n-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_ENOBEGIN);
	assert_int_equal(smp_armor_decode("", 0, BIG, &a), SMP_ARMOR_ENOBEGIN);
	assert_int_equal(dec("-----BEGIN PGP", BIG, &a), SMP_ARMOR_ENOBEGIN);
	assert_int_equal(dec("-----BEGIN SOMETHING ELSE-----\n\nQUJD\n"
			     "-----END SOMETHING ELSE-----\n", BIG, &a),
			 SMP_ARMOR_ENOBEGIN);
	assert_null(a.data);
}

static void test_decode_bad_header(void **state)
{
	struct smp_armor a;
	(void)state;
	/* no space after the colon */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\nVersion:1.0\n\nQUJD\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EHEADER);
	/* a space inside the key */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\nMy Key: v\n\nQUJD\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EHEADER);
	/* a colon first */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n: v\n\nQUJD\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EHEADER);
	/* a good header, then a bad one */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\nVersion: 1\nx;y: z\n"
			     "\nQUJD\n-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EHEADER);
	/* a BEGIN line without its closing dashes */
	assert_int_equal(dec("-----BEGIN PGP MESSAGE\n\nQUJD\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EHEADER);
	/* a BEGIN line with an empty label */
	assert_int_equal(dec("-----BEGIN PGP -----\n\nQUJD\n"
			     "-----END PGP -----\n", BIG, &a),
			 SMP_ARMOR_EHEADER);
	assert_null(a.data);
}

static void test_decode_empty(void **state)
{
	struct tbuf t = {0};
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EEMPTY);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n"
			     "-----END PGP MESSAGE-----\n", BIG, &a),
			 SMP_ARMOR_EEMPTY);
	/* only a checksum (of nothing) */
	tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\n");
	t_crc_line(&t, t_crc24(NULL, 0), "\n");
	tb_str(&t, "-----END PGP MESSAGE-----\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_EEMPTY);
	assert_null(a.data);
	tb_free(&t);
}

static void check_limit(size_t n)
{
	unsigned char *data = malloc(n);
	struct tbuf t = {0};
	struct smp_armor a;

	assert_non_null(data);
	fill_bytes(data, n, 6);
	t_armor(&t, "MESSAGE", data, n, NULL, 1, "\n");
	assert_int_equal(dec(tb_cstr(&t), n, &a), SMP_ARMOR_OK);
	assert_int_equal(a.len, n);
	assert_memory_equal(a.data, data, n);
	smp_armor_free(&a);
	assert_int_equal(dec(tb_cstr(&t), n - 1, &a), SMP_ARMOR_ETOOBIG);
	assert_null(a.data);
	tb_free(&t);
	free(data);
}

static void test_decode_too_big(void **state)
{
	struct smp_armor a;
	(void)state;
	check_limit(3);   /* full quantum */
	check_limit(4);   /* one byte in the last quantum */
	check_limit(5);   /* two bytes in the last quantum */
	check_limit(1000);
	assert_int_equal(dec("-----BEGIN PGP MESSAGE-----\n\nQQ==\n"
			     "-----END PGP MESSAGE-----\n", 0, &a),
			 SMP_ARMOR_ETOOBIG);
}

/* ------------------------------------------------------------------ */
/* Labels, find                                                        */

static enum smp_armor_type label_of(const char *label)
{
	unsigned char data[4] = {0x99, 1, 2, 3};
	struct tbuf t = {0};
	struct smp_armor a;
	enum smp_armor_type ty;

	t_armor(&t, label, data, sizeof(data), NULL, 1, "\n");
	assert_int_equal(dec(tb_cstr(&t), BIG, &a), SMP_ARMOR_OK);
	assert_int_equal(a.len, 4);
	assert_memory_equal(a.data, data, 4);
	ty = a.type;
	smp_armor_free(&a);
	tb_free(&t);
	return ty;
}

static void test_label_types(void **state)
{
	(void)state;
	assert_int_equal(label_of("MESSAGE"), SMP_ARMOR_MESSAGE);
	assert_int_equal(label_of("PUBLIC KEY BLOCK"), SMP_ARMOR_PUBLIC_KEY);
	assert_int_equal(label_of("PRIVATE KEY BLOCK"), SMP_ARMOR_PRIVATE_KEY);
	assert_int_equal(label_of("SECRET KEY BLOCK"), SMP_ARMOR_PRIVATE_KEY);
	assert_int_equal(label_of("SIGNATURE"), SMP_ARMOR_SIGNATURE);
	assert_int_equal(label_of("ARMORED FILE"), SMP_ARMOR_UNKNOWN);
	assert_int_equal(label_of("MESSAGE, PART 1/2"), SMP_ARMOR_UNKNOWN);
	assert_int_equal(label_of("message"), SMP_ARMOR_UNKNOWN);
}

static void test_label_signed_message(void **state)
{
	static const char txt[] =
		"-----BEGIN PGP SIGNED MESSAGE-----\n"
		"Hash: SHA256\n"
		"\n"
		"Hello\n"
		"-----BEGIN PGP SIGNATURE-----\n"
		"\n"
		"QUJD\n"
		"-----END PGP SIGNATURE-----\n";
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec(txt, BIG, &a), SMP_ARMOR_OK);
	assert_int_equal(a.type, SMP_ARMOR_SIGNED);
	assert_int_equal(a.begin_off, 0);
	smp_armor_free(&a);
}

static void test_find(void **state)
{
	size_t off = 12345;
	static const char two[] = "x\n-----BEGIN PGP MESSAGE-----\n";
	static const char crlf[] = "x\r\n-----BEGIN PGP MESSAGE-----\r\n";
	(void)state;
	assert_true(smp_armor_find("-----BEGIN PGP MESSAGE-----\n", 28, &off));
	assert_int_equal(off, 0);
	assert_true(smp_armor_find(two, strlen(two), &off));
	assert_int_equal(off, 2);
	assert_true(smp_armor_find(crlf, strlen(crlf), &off));
	assert_int_equal(off, 3);
	/* the length bounds the search */
	assert_false(smp_armor_find(two, 10, &off));
	assert_false(smp_armor_find("", 0, &off));
	assert_false(smp_armor_find("-----BEGIN PGP", 14, &off));
}

static void test_find_not_at_line_start(void **state)
{
	static const char mid[] = "see: -----BEGIN PGP MESSAGE-----\n\nQUJD\n"
				  "-----END PGP MESSAGE-----\n";
	static const char sp[] = " -----BEGIN PGP MESSAGE-----\n\nQUJD\n"
				 "-----END PGP MESSAGE-----\n";
	static const char later[] = "a -----BEGIN PGP X-----\n"
				    "-----BEGIN PGP MESSAGE-----\n";
	size_t off = 777;
	struct smp_armor a;
	(void)state;
	assert_false(smp_armor_find(mid, strlen(mid), &off));
	assert_false(smp_armor_find(sp, strlen(sp), &off));
	assert_int_equal(off, 777);
	assert_int_equal(dec(mid, BIG, &a), SMP_ARMOR_ENOBEGIN);
	assert_int_equal(dec(sp, BIG, &a), SMP_ARMOR_ENOBEGIN);
	/* a later line-start occurrence is found */
	assert_true(smp_armor_find(later, strlen(later), &off));
	assert_int_equal(off, 24);
}

/* ------------------------------------------------------------------ */
/* smp_armor_parse: the checks without keeping the octets              */

static void test_parse_matches_decode(void **state)
{
	static const size_t sizes[] = {1, 2, 3, 47, 48, 49, 1000, 70000};
	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *data = malloc(n);
		struct tbuf t = {0};
		struct smp_armor a, b;

		assert_non_null(data);
		fill_bytes(data, n, (unsigned)i);
		t_armor(&t, "MESSAGE", data, n, NULL, 1, i % 2 ? "\r\n" : "\n");
		tb_str(&t, "trailing text\n");
		assert_int_equal(smp_armor_decode((const char *)t.p, t.len, BIG,
						  &a),
				 SMP_ARMOR_OK);
		/* no bound: larger than any max_out would allow */
		assert_int_equal(smp_armor_parse((const char *)t.p, t.len, &b),
				 SMP_ARMOR_OK);
		assert_null(b.data);
		assert_int_equal(b.len, a.len);
		assert_int_equal(b.type, a.type);
		assert_int_equal(b.has_crc, a.has_crc);
		assert_int_equal(b.begin_off, a.begin_off);
		assert_int_equal(b.end_off, a.end_off);
		smp_armor_free(&a);
		tb_free(&t);
		free(data);
	}
}

static void test_parse_errors(void **state)
{
	unsigned char data[48];
	struct tbuf t = {0};
	struct smp_armor b;
	char *x;
	(void)state;
	fill_bytes(data, sizeof(data), 4);
	/* the checksum is still checked */
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 1, "\n");
	x = strstr((char *)t.p, "\n\n") + 2 + 10;
	*x = (char)(*x == 'A' ? 'B' : 'A');
	assert_int_equal(smp_armor_parse((const char *)t.p, t.len, &b),
			 SMP_ARMOR_ECRC);
	assert_null(b.data);
	tb_free(&t);
	{
		static const char star[] = "-----BEGIN PGP MESSAGE-----\n\nQU*D\n"
					   "-----END PGP MESSAGE-----\n";
		assert_int_equal(smp_armor_parse(star, strlen(star), &b),
				 SMP_ARMOR_EBASE64);
	}
	assert_int_equal(smp_armor_parse("no armor", 8, &b), SMP_ARMOR_ENOBEGIN);
}

/* A failed decode still says where the block began and what it is. */
static void test_decode_failure_keeps_begin(void **state)
{
	static const char txt[] = "text\n-----BEGIN PGP SIGNATURE-----\n\nQUJD\n";
	static const char nolabel[] = "-----BEGIN PGP MESSAGE\n\nQUJD\n";
	struct smp_armor a;
	(void)state;
	assert_int_equal(dec(txt, BIG, &a), SMP_ARMOR_ENOEND);
	assert_int_equal(a.begin_off, 5);
	assert_int_equal(a.type, SMP_ARMOR_SIGNATURE);
	assert_null(a.data);
	assert_int_equal(dec(nolabel, BIG, &a), SMP_ARMOR_EHEADER);
	assert_int_equal(a.begin_off, 0);
	assert_int_equal(a.type, SMP_ARMOR_UNKNOWN);
}

/* ------------------------------------------------------------------ */
/* smp_armor_scan_rest: what follows a block                           */

static unsigned rest_blocks(const struct smp_armor_rest *r)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SMP_ARMOR_NTYPES; i++)
		n += r->blocks[i];
	return n;
}

/* One block, then tail; scans from the first block's end. */
static void scan_after_block(const char *tail, const char *eol,
			     struct smp_armor_rest *r)
{
	unsigned char data[20];
	struct tbuf t = {0};
	struct smp_armor a;

	fill_bytes(data, sizeof(data), 9);
	t_armor(&t, "MESSAGE", data, sizeof(data), NULL, 1, eol);
	tb_str(&t, tail);
	assert_int_equal(smp_armor_decode((const char *)t.p, t.len, BIG, &a),
			 SMP_ARMOR_OK);
	memset(r, 0xA5, sizeof(*r)); /* must be reset by the callee */
	smp_armor_scan_rest((const char *)t.p, t.len, a.end_off, r);
	smp_armor_free(&a);
	tb_free(&t);
}

static void test_rest_white_space(void **state)
{
	static const char *const tails[] = {
		"", "\n", "\r\n", "\n\n\n", "\r\n\r\n", "   ", " \t \r\n  \n\t\n",
	};
	struct smp_armor_rest r;
	(void)state;
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		scan_after_block(tails[i], "\n", &r);
		assert_int_equal(rest_blocks(&r), 0);
		assert_int_equal(r.broken, 0);
		assert_false(r.text);
		scan_after_block(tails[i], "\r\n", &r);
		assert_int_equal(rest_blocks(&r), 0);
		assert_false(r.text);
	}
	/* the END line without a line break, at the very end */
	{
		static const char one[] = "-----BEGIN PGP MESSAGE-----\n\nQUJD\n"
					  "-----END PGP MESSAGE-----";
		struct smp_armor a;
		assert_int_equal(dec(one, BIG, &a), SMP_ARMOR_OK);
		assert_int_equal(a.end_off, strlen(one));
		smp_armor_scan_rest(one, strlen(one), a.end_off, &r);
		assert_int_equal(rest_blocks(&r), 0);
		assert_false(r.text);
		smp_armor_free(&a);
	}
	/* an offset at or past the end */
	smp_armor_scan_rest("abc", 3, 3, &r);
	assert_false(r.text);
	smp_armor_scan_rest("abc", 3, 99, &r);
	assert_false(r.text);
	assert_int_equal(rest_blocks(&r), 0);
}

static void test_rest_text(void **state)
{
	struct smp_armor_rest r;
	(void)state;
	scan_after_block("x", "\n", &r);
	assert_true(r.text);
	assert_int_equal(rest_blocks(&r), 0);
	scan_after_block("\n\n-- \nAlice\n", "\r\n", &r);
	assert_true(r.text);
	/* a NUL, a form feed: not white space here */
	scan_after_block("\f\n", "\n", &r);
	assert_true(r.text);
	{
		static const char nul[] = "-----BEGIN PGP MESSAGE-----\n\nQUJD\n"
					  "-----END PGP MESSAGE-----\n\0\n";
		smp_armor_scan_rest(nul, sizeof(nul) - 1, sizeof(nul) - 3, &r);
		assert_true(r.text);
	}
	/* a BEGIN line not at the start of a line is text, not a block */
	scan_after_block("see -----BEGIN PGP MESSAGE-----\n\nQUJD\n"
			 "-----END PGP MESSAGE-----\n",
			 "\n", &r);
	assert_true(r.text);
	assert_int_equal(rest_blocks(&r), 0);
	/* a stray END line */
	scan_after_block("-----END PGP MESSAGE-----\n", "\n", &r);
	assert_true(r.text);
	assert_int_equal(rest_blocks(&r), 0);
}

static void test_rest_blocks(void **state)
{
	unsigned char d2[30];
	struct tbuf tail = {0};
	struct smp_armor_rest r;
	static const char *const labels[] = {
		"MESSAGE", "SIGNATURE", "PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK",
		"ARMORED FILE",
	};
	static const enum smp_armor_type types[] = {
		SMP_ARMOR_MESSAGE, SMP_ARMOR_SIGNATURE, SMP_ARMOR_PUBLIC_KEY,
		SMP_ARMOR_PRIVATE_KEY, SMP_ARMOR_UNKNOWN,
	};
	(void)state;
	fill_bytes(d2, sizeof(d2), 17);
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		/* directly after the END line, and after blank lines */
		t_armor(&tail, labels[i], d2, sizeof(d2), NULL, 1, "\n");
		scan_after_block(tb_cstr(&tail), "\n", &r);
		assert_int_equal(r.blocks[types[i]], 1);
		assert_int_equal(rest_blocks(&r), 1);
		assert_int_equal(r.broken, 0);
		assert_false(r.text);
		tb_free(&tail);
		tb_str(&tail, "\r\n \r\n");
		t_armor(&tail, labels[i], d2, sizeof(d2), NULL, 0, "\r\n");
		tb_str(&tail, "\r\n");
		scan_after_block(tb_cstr(&tail), "\r\n", &r);
		assert_int_equal(r.blocks[types[i]], 1);
		assert_int_equal(rest_blocks(&r), 1);
		assert_false(r.text);
		tb_free(&tail);
	}
	/* several, with text between */
	t_armor(&tail, "MESSAGE", d2, sizeof(d2), NULL, 1, "\n");
	tb_str(&tail, "between\n");
	t_armor(&tail, "MESSAGE", d2, 7, NULL, 1, "\n");
	t_armor(&tail, "SIGNATURE", d2, 5, NULL, 1, "\n");
	scan_after_block(tb_cstr(&tail), "\n", &r);
	assert_int_equal(r.blocks[SMP_ARMOR_MESSAGE], 2);
	assert_int_equal(r.blocks[SMP_ARMOR_SIGNATURE], 1);
	assert_int_equal(r.broken, 0);
	assert_true(r.text);
	tb_free(&tail);
}

static void test_rest_broken_blocks(void **state)
{
	unsigned char d2[30];
	struct tbuf tail = {0};
	struct smp_armor_rest r;
	(void)state;
	fill_bytes(d2, sizeof(d2), 23);
	/* no END line */
	scan_after_block("-----BEGIN PGP MESSAGE-----\n\nQUJD\n", "\n", &r);
	assert_int_equal(r.blocks[SMP_ARMOR_MESSAGE], 1);
	assert_int_equal(r.broken, 1);
	/* only the BEGIN line, no line break */
	scan_after_block("-----BEGIN PGP MESSAGE-----", "\n", &r);
	assert_int_equal(r.blocks[SMP_ARMOR_MESSAGE], 1);
	assert_int_equal(r.broken, 1);
	/* an unreadable label */
	scan_after_block("-----BEGIN PGP MESSAGE\n\nQUJD\n", "\n", &r);
	assert_int_equal(r.blocks[SMP_ARMOR_UNKNOWN], 1);
	assert_int_equal(r.broken, 1);
	/* a broken block, then a good one: both are found */
	tb_str(&tail, "-----BEGIN PGP MESSAGE-----\n\nQU*D\n"
		      "-----END PGP MESSAGE-----\n");
	t_armor(&tail, "PUBLIC KEY BLOCK", d2, sizeof(d2), NULL, 1, "\n");
	scan_after_block(tb_cstr(&tail), "\n", &r);
	assert_int_equal(r.blocks[SMP_ARMOR_MESSAGE], 1);
	assert_int_equal(r.blocks[SMP_ARMOR_PUBLIC_KEY], 1);
	assert_int_equal(r.broken, 1);
	tb_free(&tail);
	/* a block cut short by the next BEGIN line */
	tb_str(&tail, "-----BEGIN PGP MESSAGE-----\n\nQUJD\n");
	t_armor(&tail, "MESSAGE", d2, sizeof(d2), NULL, 1, "\n");
	scan_after_block(tb_cstr(&tail), "\n", &r);
	assert_int_equal(r.blocks[SMP_ARMOR_MESSAGE], 2);
	assert_int_equal(r.broken, 1);
	tb_free(&tail);
}

/* Many further blocks and BEGIN lines: one pass, no allocation each. */
static void test_rest_many(void **state)
{
	struct tbuf t = {0};
	struct smp_armor_rest r;
	(void)state;
	for (int i = 0; i < 20000; i++)
		tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\nQUJD\n"
			   "-----END PGP MESSAGE-----\n");
	for (int i = 0; i < 20000; i++)
		tb_str(&t, "-----BEGIN PGP MESSAGE-----\n");
	smp_armor_scan_rest((const char *)t.p, t.len, 0, &r);
	assert_int_equal(r.blocks[SMP_ARMOR_MESSAGE], 40000);
	assert_int_equal(r.broken, 20000);
	assert_false(r.text);
	tb_free(&t);
}

/* ------------------------------------------------------------------ */
/* smp_armor_decode_all: several blocks of one type, nothing else      */

#define PUBKEY "PUBLIC KEY BLOCK"

/* Three blocks of 30, 31 and 32 octets (pre, then between, then post
 * around them); want: their octets in order. */
static void three_blocks(struct tbuf *t, const char *pre, const char *mid,
			 const char *post, const char *eol, unsigned char *want)
{
	size_t o = 0;

	tb_str(t, pre);
	for (size_t i = 0; i < 3; i++) {
		fill_bytes(want + o, 30 + i, (unsigned)(40 + i));
		if (i)
			tb_str(t, mid);
		t_armor(t, PUBKEY, want + o, 30 + i, NULL, (int)(i != 1), eol);
		o += 30 + i;
	}
	tb_str(t, post);
}

static enum smp_armor_status dec_all(const struct tbuf *t, size_t max,
				     struct smp_armor_all *a)
{
	memset(a, 0xA5, sizeof(*a)); /* must be reset by the callee */
	return smp_armor_decode_all((const char *)t->p, t->len,
				    SMP_ARMOR_PUBLIC_KEY, max, a);
}

static void test_all_blocks(void **state)
{
	static const char *const ws[][3] = {
		{"", "", ""},
		{"\n", "\n\n", "\n"},
		{" \t\r\n", "\r\n \r\n", "\r\n\t \r\n  "},
		{"\n\n", "\t\n", ""},
	};
	unsigned char want[93];
	struct smp_armor_all a;
	(void)state;
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
		for (int crlf = 0; crlf < 2; crlf++) {
			struct tbuf t = {0};
			three_blocks(&t, ws[i][0], ws[i][1], ws[i][2],
				     crlf ? "\r\n" : "\n", want);
			assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_OK);
			assert_int_equal(a.nblocks, 3);
			assert_int_equal(a.len, sizeof(want));
			assert_memory_equal(a.data, want, sizeof(want));
			smp_armor_all_free(&a);
			assert_null(a.data);
			/* the bound is on all blocks together */
			assert_int_equal(dec_all(&t, sizeof(want), &a), SMP_ARMOR_OK);
			smp_armor_all_free(&a);
			assert_int_equal(dec_all(&t, sizeof(want) - 1, &a),
					 SMP_ARMOR_ETOOBIG);
			assert_null(a.data);
			assert_int_equal(a.nblocks, 2);
			tb_free(&t);
		}
	}
	/* one block is all blocks */
	{
		struct tbuf t = {0};
		fill_bytes(want, 10, 1);
		t_armor(&t, PUBKEY, want, 10, NULL, 1, "\n");
		assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_OK);
		assert_int_equal(a.nblocks, 1);
		assert_int_equal(a.len, 10);
		assert_memory_equal(a.data, want, 10);
		smp_armor_all_free(&a);
		tb_free(&t);
	}
}

static void test_all_no_block(void **state)
{
	struct smp_armor_all a;
	(void)state;
	assert_int_equal(smp_armor_decode_all(NULL, 0, SMP_ARMOR_PUBLIC_KEY, BIG, &a),
			 SMP_ARMOR_ENOBEGIN);
	assert_null(a.data);
	assert_int_equal(smp_armor_decode_all(" \n\r\n\t", 5, SMP_ARMOR_PUBLIC_KEY,
					      BIG, &a), SMP_ARMOR_ENOBEGIN);
	assert_int_equal(a.nblocks, 0);
	/* text without any block is stray text, at its first octet */
	assert_int_equal(smp_armor_decode_all("\n\nhello\n", 8, SMP_ARMOR_PUBLIC_KEY,
					      BIG, &a), SMP_ARMOR_ETEXT);
	assert_int_equal(a.err_off, 2);
	assert_int_equal(a.err_line, 3);
	smp_armor_all_free(NULL);
}

/* Stray text before, between or after the blocks, a BEGIN line that does
 * not start its line: the whole text fails, at the text. */
static void test_all_text(void **state)
{
	static const struct {
		const char *pre, *mid, *post;
		size_t postlen; /* 0: strlen */
		unsigned nblocks, line;
	} c[] = {
		/* blocks of 5, 4 and 5 lines */
		{"My keys:\n", "", "", 0, 0, 1},
		{"\n x\n", "", "", 0, 0, 2},
		{"", "and\n", "", 0, 1, 6},
		{"", "\n\n-\n", "", 0, 1, 8},
		{"", "", "-- \nAlice\n", 0, 3, 15},
		{"", "", "\n\n\x0c", 0, 3, 17},
		{"", "", "\n\0", 2, 3, 16},
		{"", "", "x", 0, 3, 15},
		/* a BEGIN line indented: not a BEGIN line */
		{"", " ", "", 0, 1, 6},
	};
	unsigned char want[93];
	struct smp_armor_all a;
	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct tbuf t = {0};
		three_blocks(&t, c[i].pre, c[i].mid, "", "\n", want);
		/* post may hold a NUL: appended by length */
		tb_put(&t, c[i].post, c[i].postlen ? c[i].postlen : strlen(c[i].post));
		assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_ETEXT);
		assert_null(a.data);
		assert_int_equal(a.len, 0);
		if (a.nblocks != c[i].nblocks || a.err_line != c[i].line)
			fail_msg("case %zu: %u blocks, line %u; expected %u, %u", i,
				 a.nblocks, a.err_line, c[i].nblocks, c[i].line);
		assert_true(a.err_off < t.len);
		assert_false(t.p[a.err_off] == ' ' || t.p[a.err_off] == '\n');
		tb_free(&t);
	}
}

/* A block of another type, or a broken one, anywhere: that block's
 * status, at its BEGIN line. */
static void test_all_other_blocks(void **state)
{
	unsigned char d[20];
	struct smp_armor_all a;
	struct tbuf t = {0};
	(void)state;
	fill_bytes(d, sizeof(d), 5);

	t_armor(&t, PUBKEY, d, sizeof(d), NULL, 1, "\n");
	t_armor(&t, "PRIVATE KEY BLOCK", d, sizeof(d), NULL, 1, "\n");
	assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_ETYPE);
	assert_int_equal(a.err_type, SMP_ARMOR_PRIVATE_KEY);
	assert_int_equal(a.nblocks, 1);
	assert_int_equal(a.err_line, 6);
	assert_null(a.data);
	tb_free(&t);

	t_armor(&t, "MESSAGE", d, sizeof(d), NULL, 1, "\n");
	t_armor(&t, PUBKEY, d, sizeof(d), NULL, 1, "\n");
	assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_ETYPE);
	assert_int_equal(a.err_type, SMP_ARMOR_MESSAGE);
	assert_int_equal(a.nblocks, 0);
	assert_int_equal(a.err_off, 0);
	tb_free(&t);

	/* the second block's checksum is wrong */
	t_armor(&t, PUBKEY, d, sizeof(d), NULL, 1, "\n");
	tb_str(&t, "\n");
	tb_str(&t, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n=AAAA\n"
		   "-----END PGP PUBLIC KEY BLOCK-----\n");
	assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_ECRC);
	assert_int_equal(a.nblocks, 1);
	assert_int_equal(a.err_line, 7);
	tb_free(&t);

	/* no END line after a good block */
	t_armor(&t, PUBKEY, d, sizeof(d), NULL, 1, "\n");
	tb_str(&t, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n");
	assert_int_equal(dec_all(&t, BIG, &a), SMP_ARMOR_ENOEND);
	assert_int_equal(a.nblocks, 1);
	tb_free(&t);

	/* a cleartext-signed message is never "all blocks" of a type */
	tb_str(&t, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhi\n");
	assert_int_equal(smp_armor_decode_all((const char *)t.p, t.len,
					      SMP_ARMOR_SIGNED, BIG, &a),
			 SMP_ARMOR_ETYPE);
	tb_free(&t);

	/* what other types are for: all blocks of that type */
	t_armor(&t, "MESSAGE", d, sizeof(d), NULL, 1, "\n");
	t_armor(&t, "MESSAGE", d, sizeof(d), NULL, 0, "\n");
	assert_int_equal(smp_armor_decode_all((const char *)t.p, t.len,
					      SMP_ARMOR_MESSAGE, BIG, &a),
			 SMP_ARMOR_OK);
	assert_int_equal(a.len, 2 * sizeof(d));
	smp_armor_all_free(&a);
	tb_free(&t);
}

/* decode_all takes exactly what smp_armor_scan_rest, after a first block
 * of the type with only white space before it, calls further blocks of
 * that type only, none broken, no text. */
static void test_all_matches_scan_rest(void **state)
{
	static const char *const tails[] = {
		"", "\n", " \r\n\t",
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n-----END PGP PUBLIC KEY BLOCK-----\n",
		"\n\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n-----END PGP PUBLIC KEY BLOCK-----",
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n",
		"-----BEGIN PGP MESSAGE-----\n\nQUJD\n-----END PGP MESSAGE-----\n",
		"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nQUJD\n-----END PGP PRIVATE KEY BLOCK-----\n",
		"-----BEGIN PGP SIGNATURE-----\n\nQUJD\n-----END PGP SIGNATURE-----\n",
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQU!D\n-----END PGP PUBLIC KEY BLOCK-----\n",
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n-----END PGP MESSAGE-----\n",
		"-----BEGIN PGP X-----\n\nQUJD\n-----END PGP X-----\n",
		" -----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n-----END PGP PUBLIC KEY BLOCK-----\n",
		"x", "\n-- \n", "\n\n\n.",
	};
	static const char *const heads[] = {"", "\n \t\r\n", "a\n"};
	unsigned char d[16];
	(void)state;
	fill_bytes(d, sizeof(d), 2);
	for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
			struct tbuf t = {0};
			struct smp_armor first;
			struct smp_armor_rest r;
			struct smp_armor_all a;
			bool clean;
			enum smp_armor_status st;

			tb_str(&t, heads[h]);
			t_armor(&t, PUBKEY, d, sizeof(d), NULL, 1, "\n");
			tb_str(&t, tails[i]);
			assert_int_equal(smp_armor_decode((const char *)t.p, t.len,
							  BIG, &first), SMP_ARMOR_OK);
			smp_armor_scan_rest((const char *)t.p, t.len, first.end_off, &r);
			clean = !r.text && r.broken == 0 && heads[h][0] != 'a';
			for (unsigned k = 0; k < SMP_ARMOR_NTYPES; k++)
				if (k != SMP_ARMOR_PUBLIC_KEY && r.blocks[k])
					clean = false;
			st = dec_all(&t, BIG, &a);
			if ((st == SMP_ARMOR_OK) != clean)
				fail_msg("head %zu tail %zu: %s, scan_rest says %s", h, i,
					 smp_armor_strerror(st), clean ? "clean" : "not");
			if (st == SMP_ARMOR_OK)
				assert_int_equal(a.nblocks,
						 1 + r.blocks[SMP_ARMOR_PUBLIC_KEY]);
			smp_armor_all_free(&a);
			smp_armor_free(&first);
			tb_free(&t);
		}
	}
}

/* Empty input, also as a NULL pointer (an empty MIME part's content). */
static void test_empty_input(void **state)
{
	struct smp_armor a;
	struct smp_armor_rest r;
	size_t off = 5;
	(void)state;
	assert_false(smp_armor_find(NULL, 0, &off));
	assert_int_equal(off, 5);
	assert_int_equal(smp_armor_decode(NULL, 0, BIG, &a), SMP_ARMOR_ENOBEGIN);
	assert_null(a.data);
	assert_int_equal(smp_armor_parse(NULL, 0, &a), SMP_ARMOR_ENOBEGIN);
	memset(&r, 0xA5, sizeof(r));
	smp_armor_scan_rest(NULL, 0, 0, &r);
	assert_int_equal(r.broken, 0);
	assert_false(r.text);
	smp_armor_scan_rest("", 0, 3, &r);
	assert_false(r.text);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(smp_armor_strerror(SMP_ARMOR_OK), "ok");
	assert_string_equal(smp_armor_strerror(SMP_ARMOR_ENOEND),
			    "no END PGP line");
	assert_string_equal(smp_armor_strerror(SMP_ARMOR_ECRC),
			    "CRC-24 checksum missing, malformed or mismatched");
	assert_string_equal(smp_armor_strerror(SMP_ARMOR_ETYPE),
			    "an armored block of another type");
	assert_non_null(strstr(smp_armor_strerror(SMP_ARMOR_ETEXT),
			       "only white space"));
	assert_string_equal(smp_armor_strerror((enum smp_armor_status)99),
			    "unknown armor error");
}

static void test_free_null(void **state)
{
	struct smp_armor a;
	(void)state;
	memset(&a, 0, sizeof(a));
	smp_armor_free(NULL);
	smp_armor_free(&a);
	assert_null(a.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc24_empty),
		cmocka_unit_test(test_crc24_check_string),
		cmocka_unit_test(test_crc24_single_bytes),
		cmocka_unit_test(test_crc24_long_buffer),
		cmocka_unit_test(test_decode_valid_lf),
		cmocka_unit_test(test_decode_valid_crlf),
		cmocka_unit_test(test_decode_all_tail_lengths),
		cmocka_unit_test(test_decode_all_byte_values),
		cmocka_unit_test(test_decode_known_text),
		cmocka_unit_test(test_decode_headers),
		cmocka_unit_test(test_decode_unaligned_lines),
		cmocka_unit_test(test_decode_missing_crc_accepted),
		cmocka_unit_test(test_decode_trailing_whitespace),
		cmocka_unit_test(test_decode_no_final_newline),
		cmocka_unit_test(test_decode_text_around),
		cmocka_unit_test(test_decode_crc_mismatch),
		cmocka_unit_test(test_decode_flipped_data_char),
		cmocka_unit_test(test_decode_crc_malformed),
		cmocka_unit_test(test_decode_data_after_crc),
		cmocka_unit_test(test_decode_bad_char),
		cmocka_unit_test(test_decode_bad_padding),
		cmocka_unit_test(test_decode_end_mismatch),
		cmocka_unit_test(test_decode_no_end),
		cmocka_unit_test(test_decode_no_begin),
		cmocka_unit_test(test_decode_bad_header),
		cmocka_unit_test(test_decode_empty),
		cmocka_unit_test(test_decode_too_big),
		cmocka_unit_test(test_label_types),
		cmocka_unit_test(test_label_signed_message),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_find_not_at_line_start),
		cmocka_unit_test(test_parse_matches_decode),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_decode_failure_keeps_begin),
		cmocka_unit_test(test_rest_white_space),
		cmocka_unit_test(test_rest_text),
		cmocka_unit_test(test_rest_blocks),
		cmocka_unit_test(test_rest_broken_blocks),
		cmocka_unit_test(test_rest_many),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_all_blocks),
		cmocka_unit_test(test_all_no_block),
		cmocka_unit_test(test_all_text),
		cmocka_unit_test(test_all_other_blocks),
		cmocka_unit_test(test_all_matches_scan_rest),
		cmocka_unit_test(test_free_null),
	};
	t_filter_from_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
