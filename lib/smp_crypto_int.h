/* smp_crypto_int.h - private to the engine-neutral half of the crypto
 * interface, what its three files share: smp_crypto.c (input,
 * inspection, encryption, the cache, dispatch), smp_crypto_minimal.c
 * (the minimal key and the merge) and smp_crypto_filter.c (the packet
 * filter). Engines include smp_crypto_backend.h; everyone else
 * smp_crypto.h.
 */
#ifndef SMP_CRYPTO_INT_H
#define SMP_CRYPTO_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "smp_crypto_backend.h"

/* ------------------------------------------------------------------ */
/* smp_crypto.c: input and inspection                                  */

/* The binary form of data: itself, or its first armored block decoded
 * into *owned. 0, 1 (not OpenPGP data; errmsg says why), -1 (memory). */
int smp_crypto_to_binary(struct smp_crypto *c, const void *data, size_t len,
			 const unsigned char **bin, size_t *blen,
			 unsigned char **owned);

/* Splits bin into transferable keys. 0, 1 (not a key block), -1. */
int smp_crypto_split(struct smp_crypto *c, const unsigned char *bin, size_t len,
		     struct smp_keyblock **blocks, size_t *n);

/* GnuPG's rule, for both engines: a key without a user ID that was ever
 * validly self-signed (valid now, or revoked since) is not a key. */
bool smp_crypto_has_good_uid(const struct smp_key_info *k);

/* Inspects only the first block of bin. 0, 1, -1 as smp_crypto_inspect. */
int smp_crypto_inspect_first(struct smp_crypto *c, const unsigned char *bin,
			     size_t blen, const struct smp_keyblock *b0,
			     struct smp_key_info *out);

/* ------------------------------------------------------------------ */
/* smp_crypto_filter.c: the packet filter                              */

/* smp_crypto_filter_keep's all: every user ID (uids unused), every
 * subkey (subs unused); FK_COPIES: blk holds copies of one key, one after
 * the other, and the result is their union. */
#define FK_ALL_UIDS 1u
#define FK_ALL_SUBS 2u
#define FK_COPIES   4u

/* Copies the first transferable key of blk keeping the primary key, the
 * user IDs uids[0..nuids) and the subkeys subs[0..nsubs) (or all, see
 * FK_*), each once, with their signatures (the full contract is at the
 * definition). 0, or -1 when out of memory. */
int smp_crypto_filter_keep(const unsigned char *blk, size_t len,
			   const char *const *uids, size_t nuids,
			   const char *const *subs, size_t nsubs, unsigned all,
			   unsigned char **out, size_t *outlen,
			   size_t *kept_uids, size_t *kept_subs);

/* blk[0..len) (one transferable key) with each user ID and subkey once
 * (smp_crypto_filter_keep with every one of them), into *out. */
int smp_crypto_dedup_key(const unsigned char *blk, size_t len,
			 unsigned char **out, size_t *outlen);

/* smp_crypto_filter_keep for one user ID and at most one subkey (subfpr
 * NULL). */
int smp_crypto_filter_minimal(const unsigned char *blk, size_t len,
			      const char *uid, const char *subfpr,
			      unsigned char **out, size_t *outlen,
			      bool *kept_uid, bool *kept_sub);

#endif
