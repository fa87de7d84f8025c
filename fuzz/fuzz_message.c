/* fuzz_message.c - libFuzzer target for whole-message validation */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "smp_extract.h"
#include "smp_detect.h"
#include "smp_result.h"
#include "smp_validate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smp_check_opts fuzz_message_opts;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	smp_lib_init();
	smp_check_opts_init(&fuzz_message_opts);
	/* Small limits so the fuzzer reaches every limit check quickly. */
	fuzz_message_opts.limits.max_message_bytes = 256 * 1024;
	fuzz_message_opts.limits.max_parts = 24;
	fuzz_message_opts.limits.max_depth = 4;
	fuzz_message_opts.limits.max_key_bytes = 16 * 1024;
	fuzz_message_opts.limits.max_keys = 3;
	fuzz_message_opts.limits.max_uids = 4;
	return 0;
}

static void fuzz_message_validate(const char *msg, size_t len,
				  enum smp_subject_match match)
{
	struct smp_check_opts o = fuzz_message_opts;
	struct smp_result r;
	char verdict[SMP_VERDICT_MAX];
	char tiny[8];
	size_t n;
	unsigned i;

	o.match = match;
	memset(&r, 0, sizeof(r));
	if (smp_validate_buffer(msg, len, &o, &r) != 0) {
		smp_result_clear(&r);
		return;
	}
	FUZZ_ASSERT((r.reasons & ~((1u << SMP_R_COUNT) - 1)) == 0);
	FUZZ_ASSERT(r.nkeys == 0 || r.keys != NULL);
	for (i = 0; i < r.nkeys; i++)
		FUZZ_ASSERT(r.keys[i].name != NULL);
	FUZZ_ASSERT(smp_form_name(r.form) != NULL);

	n = smp_verdict_format(&r, verdict, sizeof(verdict));
	FUZZ_ASSERT(n < sizeof(verdict));
	FUZZ_ASSERT(strlen(verdict) == n);
	n = smp_verdict_format(&r, tiny, sizeof(tiny));
	FUZZ_ASSERT(strlen(tiny) == (n < sizeof(tiny) ? n : sizeof(tiny) - 1));

	smp_result_clear(&r);
	FUZZ_ASSERT(r.keys == NULL && r.nkeys == 0);
	smp_result_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;
	bool exact, caseless;

	/* libFuzzer's buffer is exactly size bytes: overreads hit ASan. */
	fuzz_message_validate((const char *)data, size,
			      size > 0 && (data[0] & 1) ? SMP_MATCH_CASELESS
							: SMP_MATCH_EXACT);

	/* The whole input as a Subject value (up to its first NUL). */
	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	exact = smp_detect_subject(copy, SMP_MATCH_EXACT);
	caseless = smp_detect_subject(copy, SMP_MATCH_CASELESS);
	FUZZ_ASSERT(!exact || caseless);

	/* The whole input as an Autocrypt: header value, and as a message
	 * holding application/pgp-keys parts (harvest.sources). */
	{
		struct smp_found_keys fk = {0};
		const char *values[1] = {copy};
		FUZZ_ASSERT(smp_extract_autocrypt(values, 1, "dave@example.net",
						  &fuzz_message_opts.limits, &fk) >= 0);
		FUZZ_ASSERT(smp_extract_pgp_keys((const char *)data, size,
						 &fuzz_message_opts, &fk) >= 0);
		for (size_t i = 0; i < fk.n; i++)
			FUZZ_ASSERT(fk.parts[i].kind == SMP_KEY_PUBLIC &&
				    fk.parts[i].size <= fuzz_message_opts.limits.max_key_bytes);
		smp_found_keys_clear(&fk);
	}

	free(copy);
	return 0;
}
