/* test_verdict.c - unit tests for lib/smp_result.c */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smp_result.h"
#include "test_util.h"

#define ALL_REASONS ((1u << SMP_R_COUNT) - 1)
#define ALL_TEXT                                                        \
	"invalid; reason=bad-mime,no-data,multiple-data,bad-armor,"     \
	"not-encrypted,bad-packets,no-recipients,no-integrity,bad-key," \
	"secret-key,plain-attachment,too-large"

static void expect(const struct smp_result *r, const char *want)
{
	char buf[SMP_VERDICT_MAX];
	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(smp_verdict_format(r, buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

static void test_valid_forms(void **state)
{
	struct smp_result r;
	(void)state;
	memset(&r, 0, sizeof(r));
	r.is_smp = true;
	r.form = SMP_FORM_ATTACHMENT;
	r.nkeys = 1;
	r.msg.n_esk = 2;
	expect(&r, "valid; form=attachment; keys=1; recipients=2");
	r.form = SMP_FORM_ALIAS;
	r.nkeys = 0;
	r.msg.n_esk = 1;
	expect(&r, "valid; form=attachment-alias; keys=0; recipients=1");
	r.form = SMP_FORM_INLINE;
	expect(&r, "valid; form=inline; keys=0; recipients=1");
	r.form = SMP_FORM_NONE;
	r.msg.n_esk = 0;
	expect(&r, "valid; form=none; keys=0; recipients=0");
	r.form = SMP_FORM_ATTACHMENT;
	r.nkeys = 4294967295u;
	r.msg.n_esk = 4294967295u;
	expect(&r, "valid; form=attachment; keys=4294967295; "
		   "recipients=4294967295");
}

static void test_invalid_each_reason(void **state)
{
	static const char *const tok[SMP_R_COUNT] = {
		"bad-mime",      "no-data",      "multiple-data", "bad-armor",
		"not-encrypted", "bad-packets",  "no-recipients", "no-integrity",
		"bad-key",       "secret-key",   "plain-attachment", "too-large",
	};
	struct smp_result r;
	char want[128];
	(void)state;
	memset(&r, 0, sizeof(r));
	r.is_smp = true;
	r.form = SMP_FORM_ATTACHMENT;
	r.nkeys = 3;
	r.msg.n_esk = 3;
	for (unsigned i = 0; i < SMP_R_COUNT; i++) {
		r.reasons = 1u << i;
		snprintf(want, sizeof(want), "invalid; reason=%s", tok[i]);
		expect(&r, want);
	}
}

static void test_invalid_one(void **state)
{
	struct smp_result r;
	(void)state;
	memset(&r, 0, sizeof(r));
	r.is_smp = true;
	r.reasons = SMP_R_BAD_ARMOR;
	expect(&r, "invalid; reason=bad-armor");
}

static void test_invalid_two_in_table_order(void **state)
{
	struct smp_result r;
	(void)state;
	memset(&r, 0, sizeof(r));
	r.is_smp = true;
	r.reasons = SMP_R_PLAIN_ATTACHMENT | SMP_R_BAD_ARMOR;
	expect(&r, "invalid; reason=bad-armor,plain-attachment");
	r.reasons = SMP_R_TOO_LARGE | SMP_R_BAD_MIME;
	expect(&r, "invalid; reason=bad-mime,too-large");
	r.reasons = SMP_R_SECRET_KEY | SMP_R_PLAIN_ATTACHMENT;
	expect(&r, "invalid; reason=secret-key,plain-attachment");
}

static void test_invalid_all(void **state)
{
	struct smp_result r;
	(void)state;
	memset(&r, 0, sizeof(r));
	r.is_smp = true;
	r.reasons = ALL_REASONS;
	expect(&r, ALL_TEXT);
	assert_true(strlen(ALL_TEXT) < SMP_VERDICT_MAX);
}

static void test_not_smp(void **state)
{
	struct smp_result r;
	(void)state;
	memset(&r, 0, sizeof(r));
	expect(&r, "not smp");
	/* reasons do not matter when it is not SMP */
	r.reasons = ALL_REASONS;
	r.form = SMP_FORM_INLINE;
	expect(&r, "not smp");
}

static void test_truncation(void **state)
{
	struct smp_result r;
	char buf[32];
	const char *full = "valid; form=attachment; keys=1; recipients=2";
	(void)state;
	memset(&r, 0, sizeof(r));
	r.is_smp = true;
	r.form = SMP_FORM_ATTACHMENT;
	r.nkeys = 1;
	r.msg.n_esk = 2;

	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(smp_verdict_format(&r, buf, 8), strlen(full));
	assert_string_equal(buf, "valid; ");
	assert_int_equal(buf[8], 'Z'); /* nothing written past size */

	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(smp_verdict_format(&r, buf, 1), strlen(full));
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'Z');

	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(smp_verdict_format(&r, buf, 0), strlen(full));
	assert_int_equal(buf[0], 'Z');
	assert_int_equal(smp_verdict_format(&r, NULL, 0), strlen(full));

	/* exactly long enough, and one short */
	{
		char exact[64];
		size_t n = strlen(full);
		memset(exact, 'Z', sizeof(exact));
		assert_int_equal(smp_verdict_format(&r, exact, n + 1), n);
		assert_string_equal(exact, full);
		memset(exact, 'Z', sizeof(exact));
		assert_int_equal(smp_verdict_format(&r, exact, n), n);
		assert_int_equal(strlen(exact), n - 1);
		assert_memory_equal(exact, full, n - 1);
	}

	/* invalid verdict truncated */
	r.reasons = ALL_REASONS;
	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(smp_verdict_format(&r, buf, sizeof(buf)),
			 strlen(ALL_TEXT));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_memory_equal(buf, ALL_TEXT, sizeof(buf) - 1);
}

static void test_reason_token(void **state)
{
	(void)state;
	assert_string_equal(smp_reason_token(SMP_R_BAD_MIME), "bad-mime");
	assert_string_equal(smp_reason_token(SMP_R_NO_DATA), "no-data");
	assert_string_equal(smp_reason_token(SMP_R_MULTIPLE_DATA),
			    "multiple-data");
	assert_string_equal(smp_reason_token(SMP_R_BAD_ARMOR), "bad-armor");
	assert_string_equal(smp_reason_token(SMP_R_NOT_ENCRYPTED),
			    "not-encrypted");
	assert_string_equal(smp_reason_token(SMP_R_BAD_PACKETS), "bad-packets");
	assert_string_equal(smp_reason_token(SMP_R_NO_RECIPIENTS),
			    "no-recipients");
	assert_string_equal(smp_reason_token(SMP_R_NO_INTEGRITY),
			    "no-integrity");
	assert_string_equal(smp_reason_token(SMP_R_BAD_KEY), "bad-key");
	assert_string_equal(smp_reason_token(SMP_R_SECRET_KEY), "secret-key");
	assert_string_equal(smp_reason_token(SMP_R_PLAIN_ATTACHMENT),
			    "plain-attachment");
	assert_string_equal(smp_reason_token(SMP_R_TOO_LARGE), "too-large");
}

static void test_reason_token_not_one_bit(void **state)
{
	(void)state;
	assert_null(smp_reason_token(0));
	assert_null(smp_reason_token(SMP_R_BAD_MIME | SMP_R_NO_DATA));
	assert_null(smp_reason_token(SMP_R_SECRET_KEY | SMP_R_TOO_LARGE));
	assert_null(smp_reason_token(1u << SMP_R_COUNT));
	assert_null(smp_reason_token(1u << 31));
	assert_null(smp_reason_token(~0u));
}

static void test_form_name(void **state)
{
	(void)state;
	assert_string_equal(smp_form_name(SMP_FORM_NONE), "none");
	assert_string_equal(smp_form_name(SMP_FORM_ATTACHMENT), "attachment");
	assert_string_equal(smp_form_name(SMP_FORM_ALIAS), "attachment-alias");
	assert_string_equal(smp_form_name(SMP_FORM_INLINE), "inline");
	assert_string_equal(smp_form_name((enum smp_form)42), "none");
}

static void test_result_clear_zeroed(void **state)
{
	struct smp_result r, zero;
	(void)state;
	memset(&r, 0, sizeof(r));
	memset(&zero, 0, sizeof(zero));
	smp_result_clear(&r);
	assert_memory_equal(&r, &zero, sizeof(r));
	smp_result_clear(&r); /* twice is fine */
	assert_memory_equal(&r, &zero, sizeof(r));
}

static void test_result_clear_owned(void **state)
{
	struct smp_result r, zero;
	(void)state;
	memset(&r, 0, sizeof(r));
	memset(&zero, 0, sizeof(zero));
	r.is_smp = true;
	r.reasons = SMP_R_BAD_KEY;
	r.nkeys = 2;
	r.keys = calloc(2, sizeof(*r.keys));
	assert_non_null(r.keys);
	r.keys[0].name = strdup("public-key-1");
	r.keys[0].data = malloc(10);
	r.keys[1].name = strdup("public-key-2");
	r.msg.n_esk = 5;
	smp_result_clear(&r); /* ASan reports leaks or double frees */
	assert_memory_equal(&r, &zero, sizeof(r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_forms),
		cmocka_unit_test(test_invalid_each_reason),
		cmocka_unit_test(test_invalid_one),
		cmocka_unit_test(test_invalid_two_in_table_order),
		cmocka_unit_test(test_invalid_all),
		cmocka_unit_test(test_not_smp),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_reason_token),
		cmocka_unit_test(test_reason_token_not_one_bit),
		cmocka_unit_test(test_form_name),
		cmocka_unit_test(test_result_clear_zeroed),
		cmocka_unit_test(test_result_clear_owned),
	};
	t_filter_from_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
