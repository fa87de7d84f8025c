/* fuzz_keyinspect.c - libFuzzer target for key inspection and minimal
 * keys on the rnp crypto engine (lib/smp_crypto.h): smp_crypto_inspect,
 * smp_crypto_inspect_all and smp_crypto_minimal on untrusted key blocks,
 * binary or armored, as a harvest meets them; and the gnupg engine's own
 * parser, smp_crypto_raw_expiry (the 64-bit expiry from the
 * self-signatures), which needs no gpg.
 *
 * One engine instance for the whole run (as a worker thread keeps one):
 * what one input leaves behind in it must not change the next verdict.
 * The gnupg engine starts a gpg process per call (some 10 ms): too slow
 * to fuzz usefully; see fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "smp_crypto.h"
#include "smp_crypto_backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct smp_crypto *crypto;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	if (smp_crypto_open("rnp", NULL, &crypto, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_keyinspect: %s\n", err);
		abort();
	}
	return 0;
}

static void check_info(const struct smp_key_info *k)
{
	bool any = false;
	size_t fl = strlen(k->fpr);

	FUZZ_ASSERT(fl == 40 || fl == 64);
	FUZZ_ASSERT(k->nsubkeys >= 1 && k->subkeys);
	FUZZ_ASSERT(strcmp(k->subkeys[0].fpr, k->fpr) == 0);
	FUZZ_ASSERT(k->version >= 4);
	FUZZ_ASSERT(k->nuids >= 1 && k->uids);
	FUZZ_ASSERT(k->created == k->subkeys[0].created);
	FUZZ_ASSERT(k->expires == k->subkeys[0].expires);
	for (size_t i = 0; i < k->nsubkeys; i++) {
		const struct smp_key_sub *s = &k->subkeys[i];

		FUZZ_ASSERT(strlen(s->keyid) == 16);
		FUZZ_ASSERT(s->created >= 0 && s->created <= (int64_t)UINT32_MAX);
		/* 64-bit: creation plus a 32-bit interval, never wrapped */
		FUZZ_ASSERT(s->expires == 0 ||
			    (s->expires > s->created &&
			     s->expires - s->created <= (int64_t)UINT32_MAX));
		FUZZ_ASSERT(s->algo[0] != '\0');
		if (s->can_encrypt && !s->expired && !s->revoked &&
		    !s->invalid)
			any = true;
		if (i > 0) {
			FUZZ_ASSERT(!k->subkeys[0].expired || s->expired);
			FUZZ_ASSERT(!k->subkeys[0].revoked || s->revoked);
		}
	}
	FUZZ_ASSERT(k->can_encrypt == any);
	for (size_t i = 0; i < k->nuids; i++) {
		FUZZ_ASSERT(k->uids[i].uid && k->uids[i].email);
		FUZZ_ASSERT(strlen(k->uids[i].email) <= strlen(k->uids[i].uid));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smp_key_info k, again;
	struct smp_key_info *all = NULL;
	size_t n = 0;
	int r;

	r = smp_crypto_inspect(crypto, data, size, &k);
	FUZZ_ASSERT(r == 0 || r == 1);
	if (r == 1)
		FUZZ_ASSERT(k.nsubkeys == 0 && k.nuids == 0);
	if (r == 0) {
		check_info(&k);
		/* the same input, the same verdict (the engine keeps no
		 * state between calls) */
		FUZZ_ASSERT(smp_crypto_inspect(crypto, data, size, &again) ==
			    0);
		FUZZ_ASSERT(strcmp(again.fpr, k.fpr) == 0);
		FUZZ_ASSERT(again.can_encrypt == k.can_encrypt);
		FUZZ_ASSERT(again.expires == k.expires);
		smp_key_info_clear(&again);
	}

	/* the gnupg engine's 64-bit expiry reader, for every key listed and
	 * for a wrapped value taken from the input */
	for (size_t i = 0; r == 0 && i <= k.nsubkeys; i++) {
		const char *fpr = i < k.nsubkeys ? k.subkeys[i].fpr : k.fpr;
		uint32_t wrapped = i < k.nsubkeys
			? (uint32_t)k.subkeys[i].expires
			: (size >= 4 ? (uint32_t)data[0] << 24 |
				       (uint32_t)data[1] << 16 |
				       (uint32_t)data[2] << 8 | data[3]
				     : 0);
		int64_t exp = 0;

		if (smp_crypto_raw_expiry(data, size, fpr, wrapped, &exp)) {
			FUZZ_ASSERT(exp > (int64_t)UINT32_MAX);
			FUZZ_ASSERT((uint32_t)exp == wrapped);
			/* librnp read the same interval */
			if (i < k.nsubkeys)
				FUZZ_ASSERT(exp == k.subkeys[i].expires);
		}
	}

	r = smp_crypto_inspect_all(crypto, data, size, &all, &n);
	FUZZ_ASSERT(r == 0);
	for (size_t i = 0; i < n; i++) {
		check_info(&all[i]);
		FUZZ_ASSERT(i == 0 || all[i].block > all[i - 1].block);
	}
	smp_key_infos_free(all, n);

	if (k.nuids > 0 && k.uids[0].email[0]) {
		void *min = NULL;
		size_t mlen = 0;

		r = smp_crypto_minimal(crypto, data, size, k.uids[0].email,
				       &min, &mlen);
		FUZZ_ASSERT(r == 0 || r == 1);
		FUZZ_ASSERT((r == 0) == (min != NULL));
		if (r == 0) {
			/* the minimal key is the same key, one user ID, and
			 * usable for encryption */
			FUZZ_ASSERT(smp_crypto_inspect(crypto, min, mlen,
						       &again) == 0);
			FUZZ_ASSERT(strcmp(again.fpr, k.fpr) == 0);
			FUZZ_ASSERT(again.nuids == 1);
			FUZZ_ASSERT(again.can_encrypt);
			smp_key_info_clear(&again);
		}
		free(min);
	}
	smp_key_info_clear(&k);
	return 0;
}
