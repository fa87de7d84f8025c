/* fuzz_armor.c - libFuzzer target for the ASCII armor decoder */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "smp_armor.h"

#define FUZZ_ARMOR_MAX_OUT ((size_t)1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_armor_check(const char *text, size_t len, size_t max_out,
			     enum smp_armor_status st, const struct smp_armor *a)
{
	FUZZ_ASSERT(smp_armor_strerror(st) != NULL);
	if (st != SMP_ARMOR_OK) {
		FUZZ_ASSERT(a->data == NULL);
		return;
	}
	FUZZ_ASSERT(a->len <= max_out);
	if (a->type == SMP_ARMOR_SIGNED) {
		/* Cleartext signature: only the label is reported. */
		FUZZ_ASSERT(a->len == 0);
	} else {
		FUZZ_ASSERT(a->data != NULL && a->len > 0);
	}
	FUZZ_ASSERT(a->begin_off < a->end_off && a->end_off <= len);
	FUZZ_ASSERT(memcmp(text + a->begin_off, "-----BEGIN PGP ", 15) == 0);
	/* Touch every decoded byte so ASan sees the whole buffer. */
	if (a->len > 0)
		(void)smp_crc24(a->data, a->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct smp_armor a;
	enum smp_armor_status st;
	size_t off = 0;
	bool found;

	found = smp_armor_find(text, size, &off);
	if (found)
		FUZZ_ASSERT(off < size);

	memset(&a, 0, sizeof(a));
	st = smp_armor_decode(text, size, FUZZ_ARMOR_MAX_OUT, &a);
	fuzz_armor_check(text, size, FUZZ_ARMOR_MAX_OUT, st, &a);
	if (st == SMP_ARMOR_OK)
		FUZZ_ASSERT(found);
	if (st == SMP_ARMOR_OK && a.len > 0) {
		size_t small = a.len - 1;
		struct smp_armor b;
		enum smp_armor_status st2;

		smp_armor_free(&a);

		/* The same block with a bound one byte too small. */
		memset(&b, 0, sizeof(b));
		st2 = smp_armor_decode(text, size, small, &b);
		FUZZ_ASSERT(st2 != SMP_ARMOR_OK);
		fuzz_armor_check(text, size, small, st2, &b);
		smp_armor_free(&b);
	} else {
		smp_armor_free(&a);
	}
	return 0;
}
