/* smp_crypto.h - OpenPGP key inspection, minimal keys and encryption behind
 * one interface (SPEC.md 1, 4, 5, 9; doc/crypto.md).
 *
 * Two engines, chosen by name (crypto.engine):
 *
 *   "rnp"     librnp, in process: no process is started, ever. The
 *             default (SPEC.md 9: about 20 times the messages per second
 *             of a gpg process per message). Needs no key store: the keys
 *             to encrypt to come with the call (their minimal material,
 *             as the keyring database stores it) and are kept parsed in a
 *             bounded cache (LRU, by fingerprint) inside the instance.
 *   "gnupg"   gpgme and gpg 2.2 (lib/smp_gpg.c), one gpg process per
 *             operation, working in a GnuPG home that is a cache of the
 *             keyring database. For sites that want GnuPG.
 *
 * Both engines give the same verdicts on the same key blocks (one test
 * body runs on both: tests/unit/test_crypto.c). Times are 64-bit
 * everywhere: a key created in 2022 that expires in 2122 is usable. GnuPG
 * 2.2 keeps key times in 32 bits and reads such an expiry as a date in
 * 1986; the gnupg engine reads the key's own self-signatures to undo that
 * wrap for inspection, but gpg itself still refuses to encrypt to such a
 * key (smp_crypto_encrypt then refuses it with a sentence saying so).
 *
 * Threads: one struct smp_crypto is used by one thread at a time (librnp
 * objects are not thread-safe; neither is a gpgme context). Open one per
 * worker thread or pool slot; instances share nothing. The gnupg engine
 * initialises gpgme on open: open the first one in the main thread
 * before other threads exist (smp_gpg_init()).
 *
 * Input: every key argument is one or more transferable keys, binary or
 * ASCII-armored (the first armored block is read). Error text: one
 * sentence, from smp_crypto_errmsg() or the err buffer of the call.
 */
#ifndef SMP_CRYPTO_H
#define SMP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_keyring.h"

#define SMP_CRYPTO_ENGINE_DEFAULT "rnp"
/* Keys kept parsed per instance unless smp_crypto_set_cache_max() says
 * otherwise. */
#define SMP_CRYPTO_CACHE_DEFAULT 32
/* Largest key block (decoded) inspection and minimal export accept. */
#define SMP_CRYPTO_MAX_KEYBLOCK (8u << 20)

/* RFC 4880 9.1 public-key algorithm numbers (the key packet's octet). */
enum {
	SMP_PK_RSA = 1,
	SMP_PK_RSA_E = 2,
	SMP_PK_RSA_S = 3,
	SMP_PK_ELG_E = 16,
	SMP_PK_DSA = 17,
	SMP_PK_ECDH = 18,
	SMP_PK_ECDSA = 19,
	SMP_PK_ELG = 20,
	SMP_PK_EDDSA = 22,
};

/* One key of a transferable key: the primary key (always subkeys[0]) or
 * a subkey. */
struct smp_key_sub {
	char keyid[17];          /* 16 upper-case hex digits */
	char fpr[SMP_FPR_MAX];   /* upper-case hex */
	char algo[32];           /* as GnuPG names them: "rsa3072",
				  * "ed25519", "cv25519", "nistp256",
				  * "dsa2048", "elg2048" */
	unsigned pubkey_algo;    /* SMP_PK_* */
	unsigned bits;           /* 255 for the 25519 curves */
	int64_t created;         /* unix time */
	int64_t expires;         /* unix time, 0 = never; may be past 2106 */
	bool can_encrypt, can_sign, can_certify;  /* its key flags */
	bool expired;            /* expires != 0 and <= now, or the primary
				  * key is expired */
	bool revoked;            /* or the primary key is revoked */
	bool invalid;            /* no valid self-signature / binding */
	bool secret;             /* secret key material is present */
};

struct smp_key_uid {
	char *uid;               /* the user ID string */
	char *email;             /* what is inside its <...> (GnuPG's rule:
				  * the first top-level <...> outside a
				  * (comment), trailing blanks removed); ""
				  * when there is none, e.g. a bare
				  * "alice@example.org" */
	bool revoked, invalid;
};

struct smp_key_info {
	char fpr[SMP_FPR_MAX];   /* of the primary key, upper-case hex */
	unsigned version;        /* of the primary key packet */
	char algo[32];           /* the primary key's, as in smp_key_sub */
	unsigned pubkey_algo, bits;
	int64_t created, expires;   /* the primary key's; expires 0 = never */
	bool expired, revoked, invalid;
	bool secret;             /* any secret key material in the block */
	bool can_encrypt;        /* some key (primary or subkey) can encrypt
				  * now: can_encrypt and not expired,
				  * revoked or invalid */
	size_t nuids;            /* user IDs (user attributes, e.g. photo
				  * IDs, are not listed), in the engine's
				  * order (GnuPG lists its primary user ID
				  * first, librnp keeps the packet order);
				  * a revoked key's are all revoked */
	struct smp_key_uid *uids;
	size_t nsubkeys;         /* the primary key first */
	struct smp_key_sub *subkeys;
	size_t block;            /* smp_crypto_inspect_all: index of its
				  * block in the input (smp_keyblock_split
				  * order) */
};

/* A key to encrypt to: its primary fingerprint and its (minimal) key
 * material, e.g. an smp_key_rec's fpr and material from the keyring. */
struct smp_crypto_key {
	const char *fpr;              /* hex, either case, spaces allowed */
	const unsigned char *material; /* binary or armored */
	size_t len;
};

struct smp_crypto_stats {
	unsigned long processes;      /* gpg processes started (gnupg) */
	unsigned long cache_hits;     /* a key found parsed (rnp) or known to
				       * be current in the home (gnupg) */
	unsigned long cache_misses;   /* parsed / imported for this call */
	unsigned long cache_evictions;
	size_t cached, cache_max;
};

struct smp_crypto;

/* Is name an engine of this build ("rnp", "gnupg")? */
bool smp_crypto_engine_known(const char *name);

/*
 * Opens an engine instance. engine NULL or "" means
 * SMP_CRYPTO_ENGINE_DEFAULT. gnupg_home: the GnuPG home of the "gnupg"
 * engine (created 0700 when missing, see smp_gpg_open); ignored by
 * "rnp" (may be NULL). Returns 0, or -1 with one sentence in err.
 */
int smp_crypto_open(const char *engine, const char *gnupg_home,
		    struct smp_crypto **out, char *err, size_t errlen);
void smp_crypto_close(struct smp_crypto *c);
/* "rnp" or "gnupg". */
const char *smp_crypto_engine_name(const struct smp_crypto *c);
/* The last error as one sentence ("no error" when none). */
const char *smp_crypto_errmsg(const struct smp_crypto *c);
void smp_crypto_get_stats(const struct smp_crypto *c,
			  struct smp_crypto_stats *st);
/* Bounds the key cache (at least 1); evicts the least recently used
 * keys beyond it at once. */
void smp_crypto_set_cache_max(struct smp_crypto *c, size_t max);

/*
 * Is what the engine keeps on disk still there? rnp keeps nothing: 0.
 * gnupg: its GnuPG home, a cache, is made again when it was deleted
 * (smp_gpg_check_home; one gpg process): 0 when it was there, 1 when it
 * was made again, -1 when it cannot be (errmsg names the path and why).
 */
int smp_crypto_check(struct smp_crypto *c);
/* The GnuPG home of the gnupg engine; NULL for rnp. */
const char *smp_crypto_home(const struct smp_crypto *c);

/*
 * Inspects the first transferable key in keyblock[0..len) without storing
 * it anywhere. Returns 0 with *out filled (release with
 * smp_key_info_clear), 1 when the data holds no key the engine accepts
 * (not OpenPGP, broken packets, a v2/v3 key, no self-signed user ID;
 * smp_crypto_errmsg says which), -1 on an engine failure.
 */
int smp_crypto_inspect(struct smp_crypto *c, const void *keyblock, size_t len,
		       struct smp_key_info *out);
void smp_key_info_clear(struct smp_key_info *k);

/*
 * Inspects every transferable key in data[0..len) (one gpg process for
 * all of them on gnupg). Keys the engine does not accept are left out;
 * ->block says which block each listed key came from. Returns 0 (possibly
 * with *n = 0) or -1; *keys is released with smp_key_infos_free.
 */
int smp_crypto_inspect_all(struct smp_crypto *c, const void *data, size_t len,
			   struct smp_key_info **keys, size_t *n);
void smp_key_infos_free(struct smp_key_info *keys, size_t n);

/*
 * The minimal form of the first key in keyblock, bound to address: the
 * primary key with its own signatures (direct-key, revocation), one user
 * ID whose email equals address (both after smp_address_normalize; the
 * first valid, unrevoked one) with its self-signatures, and the one
 * encryption key a sender would use (the newest usable encryption
 * subkey, or the primary key when it is the only one) with its binding
 * signatures; every third-party signature, every other user ID, user
 * attribute and subkey is dropped. Binary, malloc'd into *out. What
 * rnp_key_export_autocrypt() gives, also for keys whose primary key can
 * only certify (librnp's own export refuses those). Secret key blocks are
 * refused. The gnupg engine imports the key into its GnuPG home on the
 * way (four gpg processes).
 * Returns 0, 1 when there is no such key, user ID or usable encryption
 * key (errmsg says which), -1 on an engine failure.
 */
int smp_crypto_minimal(struct smp_crypto *c, const void *keyblock, size_t len,
		       const char *address, void **out, size_t *outlen);

/*
 * Merges a stored key with new copies of it (a newer version: a new
 * subkey, an extended expiry, a revocation) into its minimal form.
 * stored: the key's material as the keyring holds it (NULL or slen 0: no
 * stored version); update: one or more transferable keys, of which only
 * the copies of the same key (the stored key's fingerprint, or the first
 * key of update when nothing is stored) are read. The result is the union
 * of their self-signatures (third-party and invalid signatures removed,
 * as smp_crypto_minimal does), cut down to: the primary key with its own
 * signatures (revocations included); every user ID of stored and, when
 * address is given, the first valid, unrevoked user ID whose email is
 * address (as smp_crypto_minimal picks it); and the one encryption key
 * smp_crypto_minimal would keep from the union (the newest usable one,
 * the first of equals; the primary key when it is the only one), so a
 * newer subkey replaces the stored one. When the union has no usable
 * encryption key (the key is revoked or expired), the stored key's
 * subkeys are kept instead, so the revocation or expiry is recorded on
 * them (with nothing stored: every subkey; the result then cannot
 * encrypt, info says so, and the caller decides). Of the update, only
 * user IDs that may be kept reach the engine.
 *
 * With stored NULL and one copy this gives smp_crypto_minimal's result.
 * Binary, malloc'd into *out; info (may be NULL) receives the inspection
 * of the result (release with smp_key_info_clear). The copies are merged
 * into one key at packet level (each user ID and subkey once, with every
 * signature of every copy once), which the engine then cleans: rnp in its
 * scratch FFI; gnupg imports it into its GnuPG home and exports the key
 * minimal, taking the subkeys gpg's export-minimal
 * drops (expired, revoked, or expiring after 2106, which GnuPG 2.2 reads
 * as expired) from a plain export of the home (four to six gpg
 * processes). Both engines keep the same subkeys.
 * Returns 0, 1 when there is no such key or no valid user ID for address
 * (errmsg says which), -1 on an engine failure.
 */
int smp_crypto_merge(struct smp_crypto *c, const void *stored, size_t slen,
		     const void *update, size_t ulen, const char *address,
		     void **out, size_t *outlen, struct smp_key_info *info);

/*
 * Encrypts payload[0..len) (the inner entity of a PGP/MIME message) to
 * keys[0..nkeys): one OpenPGP message, AES-256, integrity-protected
 * (SEIPD v1 + MDC, what GnuPG 2.2 and Sequoia read), not compressed, not
 * signed, ASCII-armored with CRLF line ends. *armored_out is malloc'd and
 * NUL-terminated; *outlen excludes the NUL.
 * Returns 0; 1 when some key was refused (its material does not hold
 * that fingerprint, or it has no usable encryption key: expired,
 * revoked, no encryption subkey; err names every refused fingerprint and
 * why; nothing is encrypted); -1 on an engine failure (err says).
 */
int smp_crypto_encrypt(struct smp_crypto *c, const void *payload, size_t len,
		       const struct smp_crypto_key *keys, size_t nkeys,
		       char **armored_out, size_t *outlen, char *err,
		       size_t errlen);

/* The email part of a user ID as described at struct smp_key_uid;
 * malloc'd ("" when none), NULL when out of memory. */
char *smp_crypto_uid_email(const char *uid);

#endif
