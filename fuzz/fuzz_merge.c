/* fuzz_merge.c - libFuzzer target for smp_crypto_merge on the rnp crypto
 * engine (lib/smp_crypto.h): a stored key and an update, both untrusted
 * here (the stored key came from an earlier harvest; the update is what a
 * message carries), merged into the minimal form of their union, as the
 * harvest and "smpctl keys import" do.
 *
 * Input: two key blocks, binary or armored, and a flag:
 *
 *   octet 0-1   big-endian: bit 15 set = no address (a revocation's merge,
 *               which keeps the stored user IDs only); bits 0-14 = the
 *               length of the stored block (0: nothing stored), cut to
 *               what the input holds
 *   then        the stored block, then the update (the rest)
 *
 * The address is the email of the first user ID the engine lists for the
 * update's first key (none: no address).
 *
 * Contracts: 0 or 1, never an engine failure; on 0 a key that inspects as
 * the listing the call returned (same fingerprint, user IDs, subkeys and
 * verdicts), with at most the primary key and one encryption subkey when
 * it can encrypt, keeping the address's user ID when one was given; the
 * same input gives the same bytes; and, for a stored key that is itself a
 * merge result (the stored block merged on its own first, as everything
 * a keyring holds is), merging the result with the same update again
 * gives it back unchanged (the harvest's "seen"). An arbitrary stored
 * block can hold an invalid copy of a signature the update brings valid
 * (librnp keeps the first copy of a signature and then drops it as
 * invalid), which no merge ever stores.
 *
 * One engine instance for the whole run, as a worker keeps one. The
 * gnupg engine starts gpg processes per call: not fuzzed, as for
 * fuzz_keyinspect (fuzz/README.md).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "smp_address.h"
#include "smp_crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct smp_crypto *crypto;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	if (smp_crypto_open("rnp", NULL, &crypto, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_merge: %s\n", err);
		abort();
	}
	return 0;
}

static bool has_uid(const struct smp_key_info *k, const char *uid)
{
	for (size_t i = 0; i < k->nuids; i++)
		if (strcmp(k->uids[i].uid, uid) == 0)
			return true;
	return false;
}

static const struct smp_key_sub *find_sub(const struct smp_key_info *k,
					  const char *fpr)
{
	for (size_t i = 0; i < k->nsubkeys; i++)
		if (strcmp(k->subkeys[i].fpr, fpr) == 0)
			return &k->subkeys[i];
	return NULL;
}

/* b says what a says (b: the result inspected again). */
static void same_listing(const struct smp_key_info *a,
			 const struct smp_key_info *b)
{
	FUZZ_ASSERT(strcmp(a->fpr, b->fpr) == 0);
	FUZZ_ASSERT(a->can_encrypt == b->can_encrypt);
	FUZZ_ASSERT(a->expires == b->expires);
	FUZZ_ASSERT(a->expired == b->expired);
	FUZZ_ASSERT(a->revoked == b->revoked);
	FUZZ_ASSERT(a->nuids == b->nuids);
	for (size_t i = 0; i < a->nuids; i++)
		FUZZ_ASSERT(has_uid(b, a->uids[i].uid));
	FUZZ_ASSERT(a->nsubkeys == b->nsubkeys);
	for (size_t i = 0; i < a->nsubkeys; i++) {
		const struct smp_key_sub *s = &a->subkeys[i];
		const struct smp_key_sub *t = find_sub(b, s->fpr);

		FUZZ_ASSERT(t != NULL);
		FUZZ_ASSERT(s->expires == t->expires);
		FUZZ_ASSERT(s->can_encrypt == t->can_encrypt);
	}
}

/* The email of the first listed user ID of the first key in u; NULL
 * when none. */
static char *update_address(const uint8_t *u, size_t ulen)
{
	struct smp_key_info k;
	char *a = NULL;

	if (smp_crypto_inspect(crypto, u, ulen, &k) != 0)
		return NULL;
	for (size_t i = 0; i < k.nuids && !a; i++)
		if (k.uids[i].email[0])
			a = strdup(k.uids[i].email);
	smp_key_info_clear(&k);
	return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *stored, *update;
	size_t slen, ulen;
	bool no_addr;
	char *addr = NULL, *naddr = NULL;
	void *out = NULL, *out2 = NULL, *out3 = NULL;
	size_t olen = 0, olen2 = 0, olen3 = 0;
	struct smp_key_info k, k2, k3;
	int r;

	if (size < 2)
		return 0;
	no_addr = data[0] & 0x80;
	slen = (size_t)(data[0] & 0x7F) << 8 | data[1];
	if (slen > size - 2)
		slen = size - 2;
	stored = data + 2;
	update = stored + slen;
	ulen = size - 2 - slen;
	if (!no_addr)
		addr = update_address(update, ulen);

	r = smp_crypto_merge(crypto, slen ? stored : NULL, slen, update, ulen,
			     addr, &out, &olen, &k);
	FUZZ_ASSERT(r == 0 || r == 1);
	FUZZ_ASSERT((r == 0) == (out != NULL));
	if (r == 1) {
		FUZZ_ASSERT(olen == 0);
		FUZZ_ASSERT(k.fpr[0] == '\0' && k.nuids == 0 &&
			    k.nsubkeys == 0);
		goto done;
	}
	FUZZ_ASSERT(olen > 0);
	FUZZ_ASSERT(k.fpr[0] && k.nuids >= 1 && k.nsubkeys >= 1);
	FUZZ_ASSERT(strcmp(k.subkeys[0].fpr, k.fpr) == 0);
	FUZZ_ASSERT(!k.secret);
	/* the encryption key the minimal form keeps, and nothing else */
	if (k.can_encrypt)
		FUZZ_ASSERT(k.nsubkeys <= 2);
	/* the address's user ID is there, valid */
	if (addr && (naddr = smp_address_normalize(addr)) != NULL) {
		bool found = false;

		for (size_t i = 0; i < k.nuids && !found; i++) {
			char *e = smp_address_normalize(k.uids[i].email);

			found = e && strcmp(e, naddr) == 0 &&
				!k.uids[i].invalid;
			free(e);
		}
		FUZZ_ASSERT(found);
	}
	/* what the call listed is what the result is */
	FUZZ_ASSERT(smp_crypto_inspect(crypto, out, olen, &k2) == 0);
	same_listing(&k, &k2);
	smp_key_info_clear(&k2);

	/* the same input, the same bytes */
	r = smp_crypto_merge(crypto, slen ? stored : NULL, slen, update, ulen,
			     addr, &out2, &olen2, &k2);
	FUZZ_ASSERT(r == 0);
	FUZZ_ASSERT(olen2 == olen && memcmp(out2, out, olen) == 0);
	same_listing(&k, &k2);
	smp_key_info_clear(&k2);

	/* the update again adds nothing to what a merge onto a stored key
	 * that is a merge result gave */
	if (slen) {
		char *sa = update_address(stored, slen);
		void *s0 = NULL;
		size_t s0len = 0;

		r = smp_crypto_merge(crypto, NULL, 0, stored, slen,
				     sa ? sa : addr, &s0, &s0len, NULL);
		free(sa);
		free(out);
		out = NULL;
		olen = 0;
		if (r == 0)
			r = smp_crypto_merge(crypto, s0, s0len, update, ulen,
					     addr, &out, &olen, NULL);
		free(s0);
		if (r != 0)
			goto done;
	}
	r = smp_crypto_merge(crypto, out, olen, update, ulen, addr, &out3,
			     &olen3, &k3);
	FUZZ_ASSERT(r == 0);
	FUZZ_ASSERT(olen3 == olen && memcmp(out3, out, olen) == 0);
	smp_key_info_clear(&k3);
done:
	smp_key_info_clear(&k);
	free(out);
	free(out2);
	free(out3);
	free(addr);
	free(naddr);
	return 0;
}
