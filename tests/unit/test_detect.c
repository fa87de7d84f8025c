/* test_detect.c - unit tests for lib/smp_detect.c */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smp_detect.h"
#include "smp_validate.h"
#include "test_util.h"

#define EX SMP_MATCH_EXACT
#define CL SMP_MATCH_CASELESS

static int group_setup(void **state)
{
	(void)state;
	smp_lib_init();
	return 0;
}

/* Same answer in both modes (a macro so failures name the line). */
#define both(raw, want)                                                  \
	do {                                                             \
		assert_int_equal(smp_detect_subject((raw), EX), (want)); \
		assert_int_equal(smp_detect_subject((raw), CL), (want)); \
	} while (0)

static void test_exact(void **state)
{
	(void)state;
	assert_string_equal(SMP_SUBJECT, "Secure Messenger Protocol Message");
	both("Secure Messenger Protocol Message", true);
}

static void test_surrounding_whitespace(void **state)
{
	(void)state;
	both(" Secure Messenger Protocol Message", true);
	both("  \t Secure Messenger Protocol Message \t ", true);
	/* a raw header value as smp_mime_header_raw returns it */
	both(" Secure Messenger Protocol Message\r", true);
	both("Secure Messenger Protocol Message\r\n", true);
}

static void test_folded_crlf_space(void **state)
{
	(void)state;
	both("Secure Messenger\r\n Protocol Message", true);
	both(" Secure\r\n Messenger\r\n Protocol\r\n Message", true);
	both("Secure Messenger\r\n      Protocol Message", true);
}

static void test_folded_lf_tab(void **state)
{
	(void)state;
	both("Secure\n\tMessenger Protocol Message", true);
	both("Secure Messenger Protocol\n\t\tMessage", true);
}

static void test_folded_after_trailing_space(void **state)
{
	/* doc/smp-format.md: the line break and the white space *after* it
	 * become one space; the space before it stays. That leaves two
	 * spaces, and inner white space is not collapsed: not SMP. */
	(void)state;
	both("Secure Messenger \r\n Protocol Message", false);
}

static void test_rfc2047_b(void **state)
{
	(void)state;
	both("=?UTF-8?B?U2VjdXJlIE1lc3NlbmdlciBQcm90b2NvbCBNZXNzYWdl?=", true);
	both("=?utf-8?b?U2VjdXJlIE1lc3NlbmdlciBQcm90b2NvbCBNZXNzYWdl?=", true);
	both(" =?UTF-8?B?U2VjdXJlIE1lc3NlbmdlciBQcm90b2NvbCBNZXNzYWdl?=\r", true);
}

static void test_rfc2047_q(void **state)
{
	(void)state;
	both("=?UTF-8?Q?Secure_Messenger_Protocol_Message?=", true);
	both("=?iso-8859-1?q?Secure=20Messenger=20Protocol=20Message?=", true);
	/* an encoded-word between plain words */
	both("Secure =?UTF-8?Q?Messenger?= Protocol Message", true);
}

static void test_rfc2047_split(void **state)
{
	(void)state;
	/* white space between adjacent encoded-words is dropped */
	both("=?UTF-8?Q?Secure_Messenger_?= =?UTF-8?Q?Protocol_Message?=",
	     true);
	/* "Secure Messenge" + "r Protocol Message": no padding inside */
	both("=?UTF-8?B?U2VjdXJlIE1lc3Nlbmdl?= "
	     "=?UTF-8?B?ciBQcm90b2NvbCBNZXNzYWdl?=",
	     true);
	/* split and folded */
	both("=?UTF-8?Q?Secure_Messenger?=\r\n =?UTF-8?Q?_Protocol_Message?=",
	     true);
}

static void test_rfc2047_split_b_padded(void **state)
{
	/* Each B encoded-word is decoded on its own (RFC 2047 5.); the
	 * first word here ends in '=' padding, as MUAs that split long
	 * subjects produce. "Secure Messenger " + "Protocol Message". */
	(void)state;
	both("=?UTF-8?B?U2VjdXJlIE1lc3NlbmdlciA=?= "
	     "=?UTF-8?B?UHJvdG9jb2wgTWVzc2FnZQ==?=",
	     true);
	both("=?UTF-8?B?U2VjdXJlIE1lc3NlbmdlciA=?=\r\n "
	     "=?UTF-8?B?UHJvdG9jb2wgTWVzc2FnZQ==?=",
	     true);
}

static void test_rfc2047_not_smp(void **state)
{
	(void)state;
	/* encoded "Re: Secure Messenger Protocol Message" */
	both("=?UTF-8?B?UmU6IFNlY3VyZSBNZXNzZW5nZXIgUHJvdG9jb2wgTWVzc2FnZQ==?=",
	     false);
	/* unterminated encoded-word stays as it is */
	both("=?UTF-8?Q?Secure_Messenger_Protocol_Message", false);
}

static void test_caseless(void **state)
{
	(void)state;
	assert_false(smp_detect_subject("SECURE MESSENGER PROTOCOL MESSAGE", EX));
	assert_true(smp_detect_subject("SECURE MESSENGER PROTOCOL MESSAGE", CL));
	assert_false(smp_detect_subject("secure messenger protocol message", EX));
	assert_true(smp_detect_subject("secure messenger protocol message", CL));
	assert_false(smp_detect_subject("Secure messenger Protocol Message", EX));
	assert_true(smp_detect_subject("Secure messenger Protocol Message", CL));
	/* encoded upper case */
	assert_false(smp_detect_subject(
		"=?UTF-8?B?U0VDVVJFIE1FU1NFTkdFUiBQUk9UT0NPTCBNRVNTQUdF?=", EX));
	assert_true(smp_detect_subject(
		"=?UTF-8?B?U0VDVVJFIE1FU1NFTkdFUiBQUk9UT0NPTCBNRVNTQUdF?=", CL));
	/* caseless does not relax anything else */
	assert_false(smp_detect_subject("RE: SECURE MESSENGER PROTOCOL MESSAGE",
					CL));
}

static void test_reply_forward(void **state)
{
	(void)state;
	both("Re: Secure Messenger Protocol Message", false);
	both("Fwd: Secure Messenger Protocol Message", false);
	both("Secure Messenger Protocol Message (2)", false);
	both("[list] Secure Messenger Protocol Message", false);
}

static void test_inner_whitespace(void **state)
{
	(void)state;
	both("Secure  Messenger Protocol Message", false);
	both("Secure Messenger Protocol  Message", false);
	both("Secure\tMessenger Protocol Message", false);
	both("SecureMessenger Protocol Message", false);
}

static void test_other_subjects(void **state)
{
	(void)state;
	both(NULL, false);
	both("", false);
	both("   ", false);
	both("Secure Messenger Protocol Messag", false);
	both("Secure Messenger Protocol Message.", false);
	both("Secure Messenger Protocol Messages", false);
	both("Hello", false);
}

static void test_very_long(void **state)
{
	struct tbuf t = {0};
	(void)state;
	tb_str(&t, SMP_SUBJECT);
	tb_fill(&t, 'x', 100000);
	both(tb_cstr(&t), false);
	tb_free(&t);
	tb_fill(&t, 'A', 600);
	tb_str(&t, " Secure Messenger Protocol Message");
	both(tb_cstr(&t), false);
	tb_free(&t);
}

static void test_long_whitespace_padding(void **state)
{
	/* The doc trims white space at both ends and sets no length cap:
	 * a subject padded with 600 spaces is still the SMP subject. */
	struct tbuf t = {0};
	bool ex, cl;
	(void)state;
	tb_fill(&t, ' ', 300);
	tb_str(&t, SMP_SUBJECT);
	tb_fill(&t, ' ', 300);
	ex = smp_detect_subject(tb_cstr(&t), EX);
	cl = smp_detect_subject(tb_cstr(&t), CL);
	tb_free(&t);
	assert_true(ex);
	assert_true(cl);
}

static void test_unicode_lookalike(void **state)
{
	(void)state;
	/* Cyrillic small ie U+0435 for the first 'e' */
	both("S\xD0\xB5" "cure Messenger Protocol Message", false);
	both("=?UTF-8?B?U9C1Y3VyZSBNZXNzZW5nZXIgUHJvdG9jb2wgTWVzc2FnZQ==?=",
	     false);
	/* no-break space U+00A0 between the words */
	both("Secure\xC2\xA0Messenger Protocol Message", false);
	/* long s U+017F (upper case is 'S') and Kelvin sign style tricks */
	both("Secure Me\xC5\xBF\xC5\xBF" "enger Protocol Message", false);
	/* fullwidth capital S U+FF33 */
	both("\xEF\xBC\xB3" "ecure Messenger Protocol Message", false);
	/* Latin-1 e-acute encoded */
	both("=?ISO-8859-1?Q?S=E9cure_Messenger_Protocol_Message?=", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_surrounding_whitespace),
		cmocka_unit_test(test_folded_crlf_space),
		cmocka_unit_test(test_folded_lf_tab),
		cmocka_unit_test(test_folded_after_trailing_space),
		cmocka_unit_test(test_rfc2047_b),
		cmocka_unit_test(test_rfc2047_q),
		cmocka_unit_test(test_rfc2047_split),
		cmocka_unit_test(test_rfc2047_split_b_padded),
		cmocka_unit_test(test_rfc2047_not_smp),
		cmocka_unit_test(test_caseless),
		cmocka_unit_test(test_reply_forward),
		cmocka_unit_test(test_inner_whitespace),
		cmocka_unit_test(test_other_subjects),
		cmocka_unit_test(test_very_long),
		cmocka_unit_test(test_long_whitespace_padding),
		cmocka_unit_test(test_unicode_lookalike),
	};
	t_filter_from_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
