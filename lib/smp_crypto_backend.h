/* smp_crypto_backend.h - private: what a crypto engine module provides.
 *
 * The engine-neutral half owns everything that does not depend on the
 * engine: smp_crypto.c the argument checks, dearmoring and splitting the
 * input into transferable keys, fingerprint normalisation, the key
 * cache's bookkeeping (LRU) and the error text; smp_crypto_minimal.c the
 * choice of the user ID and the encryption key of a minimal key, and the
 * merge; smp_crypto_filter.c the packet filter that cuts them out (the
 * three share smp_crypto_int.h). An engine module (smp_crypto_rnp.c,
 * smp_crypto_gnupg.c) receives only binary, well-framed key blocks and
 * normalised fingerprints, and owns its library objects.
 *
 * Not installed, not for the daemon or smpctl: include smp_crypto.h.
 */
#ifndef SMP_CRYPTO_BACKEND_H
#define SMP_CRYPTO_BACKEND_H

#include "smp_crypto.h"
#include "smp_gpg.h"

#define SMP_CRYPTO_ERRMSG_MAX 512

/* One key the cache knows: its fingerprint and the exact material it was
 * loaded from (a different material for the same fingerprint, e.g. after
 * a merge in the keyring, makes the entry stale). */
struct smp_crypto_cache_entry {
	char fpr[SMP_FPR_MAX];
	unsigned char *material;
	size_t len;
	uint64_t used;               /* tick of the last use */
};

struct smp_crypto_cache {
	struct smp_crypto_cache_entry *e;
	size_t n, cap, max;
	uint64_t tick;
};

/* The common head of every engine's instance (its first member, so an
 * engine casts struct smp_crypto * to its own type). */
struct smp_crypto {
	const struct smp_crypto_ops *ops;
	char errmsg[SMP_CRYPTO_ERRMSG_MAX];
	struct smp_crypto_stats st;
	struct smp_crypto_cache cache;
};

/* A key to encrypt to, as the engine gets it. */
struct smp_crypto_kbin {
	char fpr[SMP_FPR_MAX];        /* upper-case hex */
	const unsigned char *material; /* binary: the first block of the
					* caller's material, which is key fpr */
	size_t len;
};

struct smp_crypto_ops {
	const char *name;
	int (*open)(const char *gnupg_home, struct smp_crypto **out,
		    char *err, size_t errlen);
	/* Frees the instance and everything in it (the cache's entries are
	 * freed by smp_crypto.c afterwards: no evict calls). */
	void (*close)(struct smp_crypto *c);
	/* Lists the keys of data[0..len), which smp_keyblock_split cut into
	 * blocks[0..nblocks). Same contract as smp_crypto_inspect_all. */
	int (*inspect)(struct smp_crypto *c, const unsigned char *data,
		       size_t len, const struct smp_keyblock *blocks,
		       size_t nblocks, struct smp_key_info **keys, size_t *n);
	/* The key fpr of block[0..len) with only self-signatures (third-party
	 * and invalid signatures removed) and, where the engine can, only the
	 * user IDs of address; it must keep the encryption subkey encfpr
	 * (NULL: the primary key encrypts). address NULL: keep every user
	 * ID; smp_crypto_merge passes NULL when it merged a stored version
	 * and new copies (or several copies) into one key itself
	 * (smp_crypto_filter_keep, FK_COPIES: librnp cannot always merge
	 * them) with only user IDs it may keep. block may hold several
	 * copies of key fpr; the result is then their union, one
	 * transferable key. Binary, malloc'd. info (may be NULL):
	 * an engine that can read the cleaned key without parsing it again
	 * fills it as inspect would (rnp: the signatures were just verified);
	 * otherwise it stays zeroed (info->fpr "") and the caller inspects
	 * *out. 0, 1 (nothing usable), -1. */
	int (*clean)(struct smp_crypto *c, const unsigned char *block,
		     size_t len, const char *fpr, const char *encfpr,
		     const char *address, unsigned char **out, size_t *outlen,
		     struct smp_key_info *info);
	/* Same contract as smp_crypto_encrypt, on checked arguments. */
	int (*encrypt)(struct smp_crypto *c, const unsigned char *payload,
		       size_t len, const struct smp_crypto_kbin *keys,
		       size_t nkeys, char **out, size_t *outlen, char *err,
		       size_t errlen);
	/* The cache dropped fpr: forget what the engine holds for it. */
	void (*evict)(struct smp_crypto *c, const char *fpr);
	/* What the engine keeps on disk still there (smp_crypto_check);
	 * NULL: nothing on disk. */
	int (*check)(struct smp_crypto *c);
};

extern const struct smp_crypto_ops smp_crypto_rnp_ops;
extern const struct smp_crypto_ops smp_crypto_gnupg_ops;

/* Writes a sentence into c->errmsg; returns -1. */
int smp_crypto_error(struct smp_crypto *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same into a caller's buffer (err may be NULL). */
void smp_crypto_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Cache. lookup: 0 not there, 1 there and current (marked used), 2 there
 * but loaded from other material (stale: the engine reloads it and calls
 * put). put records fpr as loaded from material (copied), evicting the
 * least recently used entries beyond max through c->ops->evict; -1 when
 * out of memory. forget drops an entry without calling evict. */
int smp_crypto_cache_lookup(struct smp_crypto *c, const char *fpr,
			    const unsigned char *material, size_t len);
int smp_crypto_cache_put(struct smp_crypto *c, const char *fpr,
			 const unsigned char *material, size_t len);
void smp_crypto_cache_forget(struct smp_crypto *c, const char *fpr);

/* Upper-case hex without spaces into out; false unless 32..64 hex
 * digits. */
bool smp_crypto_fpr_clean(const char *in, char out[SMP_FPR_MAX]);

/* GnuPG's name for a key: "rsa3072", "ed25519", "cv25519", "nistp256",
 * "dsa2048", "elg2048"; curve is the OID-less curve name as librnp or
 * gpgme gives it (may be NULL for non-EC keys). */
void smp_crypto_algo_name(unsigned pubkey_algo, unsigned bits,
			  const char *curve, char *out, size_t size);

/* Computes the key-level can_encrypt and the subkeys' inherited expired
 * and revoked flags from the primary key's. */
void smp_crypto_info_finish(struct smp_key_info *k);

/* Fingerprint (upper-case hex) of a v4 (SHA-1) or v5/v6 (SHA-256) key
 * packet body; "" for other versions. secret: the body is a secret key
 * packet's (v4 only: its public part is hashed). */
void smp_crypto_pkt_fpr(const unsigned char *body, size_t len, bool secret,
			char out[SMP_FPR_MAX]);

/* The 64-bit expiry of key fpr (primary or subkey) in block[0..len), as
 * its self-signatures say, when it lies past 2106 and its low 32 bits
 * equal wrapped (what a 32-bit implementation computed): then *expires
 * is set and true returned. See smp_crypto_gnupg.c. */
bool smp_crypto_raw_expiry(const unsigned char *block, size_t len,
			   const char *fpr, uint32_t wrapped,
			   int64_t *expires);

#endif
