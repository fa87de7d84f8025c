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

/* smp_armor_decode_all: OK only for blocks of the type and white space,
 * as smp_armor_scan_rest judges what follows the first block; the octets
 * within the bound; nothing kept on failure, the fault inside the text. */
static void fuzz_armor_all(const char *text, size_t len)
{
	struct smp_armor_all all;
	struct smp_armor first;
	enum smp_armor_status st;

	st = smp_armor_decode_all(text, len, SMP_ARMOR_PUBLIC_KEY,
				  FUZZ_ARMOR_MAX_OUT, &all);
	FUZZ_ASSERT(smp_armor_strerror(st) != NULL);
	if (st != SMP_ARMOR_OK) {
		FUZZ_ASSERT(all.data == NULL && all.len == 0);
		FUZZ_ASSERT(all.err_off <= len && all.err_line >= 1);
		return;
	}
	FUZZ_ASSERT(all.nblocks >= 1 && all.len <= FUZZ_ARMOR_MAX_OUT);
	FUZZ_ASSERT(all.data != NULL && all.len > 0);
	(void)smp_crc24(all.data, all.len);
	/* the first block is the one smp_armor_decode finds, only white
	 * space before it; scan_rest sees key blocks only after it */
	FUZZ_ASSERT(smp_armor_decode(text, len, FUZZ_ARMOR_MAX_OUT, &first) ==
		    SMP_ARMOR_OK);
	FUZZ_ASSERT(first.type == SMP_ARMOR_PUBLIC_KEY && first.len <= all.len);
	FUZZ_ASSERT(memcmp(first.data, all.data, first.len) == 0);
	for (size_t i = 0; i < first.begin_off; i++)
		FUZZ_ASSERT(strchr(" \t\r\n", text[i]) && text[i]);
	{
		struct smp_armor_rest rest;
		unsigned other = 0;

		smp_armor_scan_rest(text, len, first.end_off, &rest);
		for (unsigned k = 0; k < SMP_ARMOR_NTYPES; k++)
			if (k != SMP_ARMOR_PUBLIC_KEY)
				other += rest.blocks[k];
		FUZZ_ASSERT(!rest.text && rest.broken == 0 && other == 0);
		FUZZ_ASSERT(rest.blocks[SMP_ARMOR_PUBLIC_KEY] + 1 == all.nblocks);
	}
	smp_armor_free(&first);
	smp_armor_all_free(&all);
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
	fuzz_armor_all(text, size);
	return 0;
}
