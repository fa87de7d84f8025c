/* test_b64.c - random-access base64 (lib/smp_b64.c) */
#include "test_util.h"

#include <glib.h>

#include "smp_b64.h"
#include "smp_packets.h"
#include "smp_result.h"

/* base64 of data in lines of line_len characters, LF or CRLF (GLib). */
static char *encode_lines(const unsigned char *data, size_t n, size_t line_len,
			  const char *eol)
{
	gchar *enc = g_base64_encode(data, n);
	GString *s = g_string_new(NULL);
	size_t len = strlen(enc);

	for (size_t i = 0; i < len; i += line_len) {
		g_string_append_len(s, enc + i, (gssize)(len - i < line_len ? len - i : line_len));
		g_string_append(s, eol);
	}
	g_free(enc);
	return g_string_free(s, FALSE);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
}

/* Every offset and length reads back the original bytes. */
static void roundtrip(size_t n, size_t line_len, const char *eol)
{
	unsigned char *data = malloc(n + 1), *out = malloc(n + 1);
	char *text;
	struct smp_b64 b;

	fill(data, n, (unsigned)(n * 31 + line_len));
	text = encode_lines(data, n, line_len, eol);
	assert_true(smp_b64_index(&b, text, strlen(text)));
	assert_int_equal(b.out_len, n);
	assert_true(smp_b64_read(&b, 0, out, n));
	assert_memory_equal(out, data, n);
	for (size_t off = 0; off < n; off += 7) {
		size_t k = n - off < 11 ? n - off : 11;
		assert_true(smp_b64_read(&b, off, out, k));
		assert_memory_equal(out, data + off, k);
	}
	assert_false(smp_b64_read(&b, n, out, 1));
	assert_false(smp_b64_read(&b, n > 0 ? n - 1 : 0, out, 2));
	g_free(text);
	free(data);
	free(out);
}

static void test_roundtrip_lf_76(void **state)
{
	(void)state;
	for (size_t n = 1; n < 200; n++)
		roundtrip(n, 76, "\n");
	roundtrip(100000, 76, "\n");
}

static void test_roundtrip_crlf_64(void **state)
{
	(void)state;
	for (size_t n = 1; n < 200; n += 3)
		roundtrip(n, 64, "\r\n");
	roundtrip(65536, 64, "\r\n");
}

static void test_single_line(void **state)
{
	struct smp_b64 b;
	unsigned char out[5];
	(void)state;
	assert_true(smp_b64_index(&b, "aGVsbG8=", 8));
	assert_int_equal(b.out_len, 5);
	assert_true(smp_b64_read(&b, 0, out, 5));
	assert_memory_equal(out, "hello", 5);
	/* trailing blank lines and spaces are not data */
	assert_true(smp_b64_index(&b, "aGVsbG8=\r\n\r\n  \n", 15));
	assert_int_equal(b.out_len, 5);
}

static void test_irregular_refused(void **state)
{
	struct smp_b64 b;
	(void)state;
	/* a short line in the middle */
	assert_false(smp_b64_index(&b, "QUJDRA==\nQUJD\nQUJD\n", 19));
	assert_false(smp_b64_index(&b, "QUJDREVG\nQUJD\nQUJDREVG\n", 23));
	/* mixed line ends */
	assert_false(smp_b64_index(&b, "QUJDREVG\r\nQUJDREVG\nQUJD\r\n", 25));
	/* a line longer than the first */
	assert_false(smp_b64_index(&b, "QUJD\nQUJDREVG\n", 14));
	/* line length not a multiple of 4 */
	assert_false(smp_b64_index(&b, "QUJDR\nQUJDR\n", 12));
	/* empty */
	assert_false(smp_b64_index(&b, "\r\n\r\n", 4));
}

static void test_bad_characters_refused(void **state)
{
	struct smp_b64 b;
	(void)state;
	assert_false(smp_b64_index(&b, "QUJD*EVG\nQUJD\n", 14));
	assert_false(smp_b64_index(&b, "QUJDREVGQUJDREVGQUJDREVGQUJD\xc3\xa9VG\nQUJD\n", 38));
	assert_false(smp_b64_index(&b, "QUJDREVG QUJDREVGQUJDREVGQUJDREVG\nQUJD\n", 38));
	/* padding in the middle of the data */
	assert_false(smp_b64_index(&b, "QUI=QUJD\nQUJD\n", 14));
	/* three padding characters */
	assert_false(smp_b64_index(&b, "QUJDREVG\nQ===\n", 14));
	/* a character count not a multiple of 4 at the end */
	assert_false(smp_b64_index(&b, "QUJDREVG\nQUJ\n", 13));
}

/* The fast path gives the same packet verdict as the direct walk. */
static void test_packets_same_verdict(void **state)
{
	/* PKESK v3 (10-octet body + 2 MPI octets) then SEIPD v1, new format */
	unsigned char msg[64] = {0xC1, 12, 3, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 0,
				 0xD2, 20, 1};
	struct smp_msg_info a, c;
	struct smp_b64 b;
	char *text;
	(void)state;
	text = encode_lines(msg, 36, 8, "\r\n");
	assert_true(smp_b64_index(&b, text, strlen(text)));
	smp_packets_check_message(msg, 36, &a);
	smp_packets_check_message_b64(&b, &c);
	assert_int_equal(a.reasons, 0);
	assert_int_equal(c.reasons, 0);
	assert_int_equal(c.n_esk, 1);
	assert_string_equal(c.esk[0].keyid, "0102030405060708");
	/* the replay digest names the payload the same way on both paths */
	assert_int_equal(strlen(a.digest), 64);
	assert_string_equal(a.digest, c.digest);
	g_free(text);
	/* trailing garbage is seen the same way */
	msg[36] = 0x00;
	text = encode_lines(msg, 37, 8, "\n");
	assert_true(smp_b64_index(&b, text, strlen(text)));
	smp_packets_check_message_b64(&b, &c);
	assert_int_equal(c.reasons, SMP_R_BAD_PACKETS);
	assert_string_equal(c.digest, ""); /* no digest for a broken payload */
	g_free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_lf_76),
		cmocka_unit_test(test_roundtrip_crlf_64),
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_irregular_refused),
		cmocka_unit_test(test_bad_characters_refused),
		cmocka_unit_test(test_packets_same_verdict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
