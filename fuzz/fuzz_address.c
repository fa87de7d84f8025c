/* fuzz_address.c - libFuzzer target for the mail address check and the
 * argument quoting (lib/smp_address.c) */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "smp_address.h"
#include "smp_keyring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What an accepted address must look like, whatever the grammar says. */
static void fuzz_address_accepted(const char *buf, size_t size)
{
	char *str, *norm;

	FUZZ_ASSERT(size > 0 && size <= SMP_ADDRESS_LEN_MAX);
	FUZZ_ASSERT(memchr(buf, '@', size) != NULL);
	for (size_t i = 0; i < size; i++) {
		unsigned char c = (unsigned char)buf[i];
		FUZZ_ASSERT(c >= 0x21 && c != 0x7F);
	}
	str = malloc(size + 1);
	FUZZ_ASSERT(str != NULL);
	memcpy(str, buf, size);
	str[size] = '\0';
	FUZZ_ASSERT(smp_address_check(str) == SMP_ADDR_OK);
	/* the keyring's normalisation takes it, changes no length, and its
	 * result (domain lowered) passes again: what smpctl accepts the
	 * keyring stores */
	norm = smp_address_normalize(str);
	FUZZ_ASSERT(norm != NULL);
	FUZZ_ASSERT(strlen(norm) == size);
	FUZZ_ASSERT(smp_address_check(norm) == SMP_ADDR_OK);
	free(norm);
	free(str);
}

static void fuzz_quote_check(const char *q, size_t bufsize)
{
	size_t n = strlen(q);

	FUZZ_ASSERT(n < bufsize);
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT(q[i] >= 0x20 && q[i] < 0x7F);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum smp_address_status st;
	char q[SMP_QUOTE_ARG_SIZE];
	char *buf, *str;
	size_t small;

	/* exactly size octets, no NUL after them: ASan sees any over-read */
	buf = malloc(size ? size : 1);
	FUZZ_ASSERT(buf != NULL);
	if (size)
		memcpy(buf, data, size);

	st = smp_address_check_mem(buf, size);
	FUZZ_ASSERT(smp_address_strerror(st) != NULL);
	FUZZ_ASSERT((st == SMP_ADDR_OK) == (smp_address_strerror(st)[0] == '\0'));
	if (size > SMP_ADDRESS_LEN_MAX)
		FUZZ_ASSERT(st == SMP_ADDR_TOO_LONG);
	if (st == SMP_ADDR_OK)
		fuzz_address_accepted(buf, size);

	/* the NUL-terminated form agrees when there is no NUL inside */
	if (!memchr(buf, '\0', size)) {
		str = malloc(size + 1);
		FUZZ_ASSERT(str != NULL);
		if (size)
			memcpy(str, buf, size);
		str[size] = '\0';
		FUZZ_ASSERT(smp_address_check(str) == st);
		/* quoting: printable ASCII only, always terminated */
		fuzz_quote_check(smp_quote_arg(q, sizeof(q), str), sizeof(q));
		free(str);
	}
	fuzz_quote_check(smp_quote_mem(q, sizeof(q), buf, size), sizeof(q));
	FUZZ_ASSERT(q[0] == '\'');
	/* a buffer too small for the result is cut, still terminated */
	small = size ? 1 + (unsigned char)buf[0] % sizeof(q) : 1;
	fuzz_quote_check(smp_quote_mem(q, small, buf, size), small);
	free(buf);
	return 0;
}
