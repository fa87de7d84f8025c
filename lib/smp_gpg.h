/* smp_gpg.h - the GnuPG home and key work through gpgme (SPEC.md 4, 9).
 *
 * The keyring database is the source of truth; the GnuPG home is only a
 * cache that gpgme needs (encryption reads keys from it) and that
 * smp_gpg_rebuild() regenerates from the database (smpctl keys rebuild).
 *
 * The home directory is created 0700 when missing, and smp_gpg_open()
 * (re)writes its gpg.conf with what gpgme has no per-call flag for:
 *
 *   no-autostart          public keys only: never start gpg-agent/dirmngr
 *   no-random-seed-file   parallel gpg processes would serialise on it
 *   trust-model always    the database decides which key is used
 *   no-auto-check-trustdb
 *   import-options self-sigs-only,import-clean
 *                         third-party signatures never enter the home
 *                         (certificate flooding, CVE-2019-13050)
 *   batch, no-tty, no-greeting, no-auto-key-retrieve
 *
 * and creates the trust database once (gpg 2.2 fails a dry-run import of
 * an expired key without one, even with trust-model always).
 *
 * Costs: every gpgme operation below starts one gpg process, and opening
 * starts a few (engine version checks; one more the first time a home is
 * used). Keep struct smp_gpg objects in a small pool and reuse them. One
 * struct smp_gpg is used by one thread at a time; several of them may
 * share one home (gpg locks its keybox while writing).
 *
 * The keyblock helpers (smp_keyblock_*, in smp_keyblock.c) only read
 * OpenPGP framing and never start a process.
 */
#ifndef SMP_GPG_H
#define SMP_GPG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_keyring.h"

struct smp_gpg;

/* Initialises gpgme (gpgme_check_version must run in the main thread
 * before other threads exist). Returns false when gpgme or gpg is not
 * usable. Safe to call again. */
bool smp_gpg_init(void);

/*
 * Opens (creating when missing) the GnuPG home at home. On error returns
 * -1 with a sentence in err.
 */
int smp_gpg_open(const char *home, struct smp_gpg **out, char *err,
		 size_t errlen);
void smp_gpg_close(struct smp_gpg *g);

/*
 * Is the home still there? A home deleted while open is made again as
 * smp_gpg_open makes it (0700, gpg.conf, trust database; one gpg
 * process): it is a cache, and encryption imports the keys it needs from
 * the keyring database. Returns 0 when it was there, 1 when it was made
 * again, -1 when it cannot be (a file in its place, the parent missing:
 * smp_gpg_errmsg names the path and the system's reason). The operations
 * below do not call it: on a missing home they fail, saying so.
 */
int smp_gpg_check_home(struct smp_gpg *g);
const char *smp_gpg_home(const struct smp_gpg *g);
/* The last error as one sentence ("no error" when none). */
const char *smp_gpg_errmsg(const struct smp_gpg *g);
/* gpg processes this struct has started through gpgme operations since
 * it was opened (inspect, import, export: one each). */
unsigned long smp_gpg_ops(const struct smp_gpg *g);

/* ------------------------------------------------------------------ */
/* Inspection (no import)                                              */

struct smp_gpg_subkey {
	char keyid[17];         /* 16 upper-case hex digits */
	char fpr[SMP_FPR_MAX];
	char algo[32];          /* gpgme_pubkey_algo_string: "rsa3072",
				 * "ed25519", "cv25519", "dsa2048", "elg2048" */
	unsigned pubkey_algo;   /* gpgme_pubkey_algo_t */
	unsigned bits;
	int64_t created, expires;   /* expires 0 = never */
	bool can_encrypt, can_sign, can_certify;
	bool expired, revoked, invalid, disabled;
};

struct smp_gpg_uid {
	char *uid;              /* the whole user ID, as gpg lists it */
	char *email;            /* exact bytes of gpgme_user_id->email ("") */
	bool revoked, invalid;
};

struct smp_gpg_key {
	char fpr[SMP_FPR_MAX];  /* upper-case hex */
	unsigned version;       /* of the primary key packet (0: not found) */
	char algo[32];          /* of the primary key */
	unsigned pubkey_algo, bits;
	int64_t created, expires;   /* of the primary key; 0 = never */
	bool expired, revoked, invalid, disabled;
	bool secret;            /* gpg listed secret material, or the block
				 * holds secret key packets */
	bool can_encrypt;       /* gpg: some subkey can encrypt now */
	size_t nuids;           /* user IDs gpg listed */
	struct smp_gpg_uid *uids;
	size_t nsubkeys;        /* the primary key first */
	struct smp_gpg_subkey *subkeys;
	size_t block;           /* index of its block in smp_keyblock_split */
};

/*
 * Lists the keys in data[0..len) (binary OpenPGP) without importing them
 * (gpgme_op_keylist_from_data: gpg --import --dry-run with the home's
 * import options, so third-party signatures and unusable user IDs are
 * already cleaned away). One gpg process. Keys gpg refuses (v3, unknown
 * algorithms, no valid self-signed user ID, broken packets) are simply
 * not listed; gpg stops at the first block it cannot parse, so hand it
 * well-framed blocks only. Each listed key is matched with its block in
 * the data (same order, same fingerprint) for ->version and ->block.
 * Returns 0 (possibly with *n = 0) or -1 when gpg could not run.
 */
int smp_gpg_inspect(struct smp_gpg *g, const unsigned char *data, size_t len,
		    struct smp_gpg_key **keys, size_t *n);
void smp_gpg_keys_free(struct smp_gpg_key *keys, size_t n);

/* ------------------------------------------------------------------ */
/* Import and minimal export                                            */

struct smp_gpg_import_counts {
	unsigned considered, imported, unchanged, not_imported, secret;
};

/* Imports data into the home (self-signatures only, cleaned). One gpg
 * process. c may be NULL. 0, or -1 when gpg failed. */
int smp_gpg_import(struct smp_gpg *g, const unsigned char *data, size_t len,
		   struct smp_gpg_import_counts *c);

/* Exports the keys with these fingerprints from the home, minimal
 * (export-minimal: self-signatures only, the newest per user ID),
 * binary, concatenated. Missing keys are left out. One gpg process.
 * *out is malloc'd (NULL with *outlen 0 when nothing was exported). */
int smp_gpg_export_minimal(struct smp_gpg *g, const char *const *fprs,
			   size_t nfprs, unsigned char **out, size_t *outlen);

/* The same without gpg's cleaning: the keys as the home holds them (the
 * import options keep self-signatures only, each checked by gpg on
 * import), every subkey kept, expired or revoked or not. GnuPG 2.2's
 * export-minimal drops the subkeys it thinks expired, among them one that
 * expires after 2106 (its 32-bit expiry wraps to a past date). One gpg
 * process. */
int smp_gpg_export(struct smp_gpg *g, const char *const *fprs, size_t nfprs,
		   unsigned char **out, size_t *outlen);

/*
 * The minimal form of key fpr from data, bound to one address: imports it
 * into the home and exports it minimal with only the user IDs whose
 * gpgme email equals keep_address (both after smp_address_normalize);
 * every other user ID and every user attribute is dropped, before the
 * import and again from the export. Three gpg processes (inspect, import,
 * export). Returns 0, 1 when data holds no key fpr or it has no valid
 * user ID for keep_address, -1 on a gpg failure.
 */
int smp_gpg_import_minimal(struct smp_gpg *g, const unsigned char *data,
			   size_t len, const char *fpr,
			   const char *keep_address, unsigned char **out,
			   size_t *outlen);

/*
 * Regenerates the home's public keyring from the database: every key
 * that has a binding (any state) is imported from its stored material
 * into a fresh keyring built in a scratch directory inside the home,
 * which then replaces pubring.kbx in one rename(): a gpg process that
 * reads the home meanwhile sees either the old or the new keyring. The
 * home's gpg.conf and trust database stay. *nkeys (may be NULL) receives
 * the number of keys imported. One gpg process per 500 keys.
 */
int smp_gpg_rebuild(struct smp_gpg *g, struct smp_keyring *kr,
		    size_t *nkeys);

/* ------------------------------------------------------------------ */
/* Keyblock framing (no gpg)                                            */

/* One transferable key inside a buffer of OpenPGP packets. */
struct smp_keyblock {
	size_t off, len;        /* its packets */
	unsigned version;       /* of the primary key packet */
	unsigned algo;          /* its public-key algorithm octet */
	char fpr[SMP_FPR_MAX];  /* v4 SHA-1, v5/v6 SHA-256; "" for v2/v3 */
	unsigned nuids;         /* user ID packets (tag 13) */
	unsigned nattrs;        /* user attribute packets (tag 17) */
	unsigned nsubkeys;
	bool secret;            /* a secret key or subkey packet */
};

/*
 * Splits data[0..len) into transferable keys (each starts at a public or
 * secret key packet). Returns 0, or -1 when the framing is broken, the
 * data does not start with a key packet, or memory ran out (errno set:
 * EINVAL or ENOMEM). *blocks is malloc'd.
 */
int smp_keyblock_split(const unsigned char *data, size_t len,
		       struct smp_keyblock **blocks, size_t *n);

/*
 * Copies one transferable key keeping only the user ID packets whose body
 * equals one of keep[0..nkeep) (whole user ID strings), with their
 * signatures. User attributes, trust and padding packets are dropped; the
 * primary key, its direct signatures and the subkeys stay. *kept (may be
 * NULL) receives the number of user IDs kept. 0 or -1 (EINVAL, ENOMEM).
 */
int smp_keyblock_filter(const unsigned char *block, size_t len,
			const char *const *keep, size_t nkeep,
			unsigned char **out, size_t *outlen, unsigned *kept);

/* The bodies of the user ID packets of one transferable key, as
 * NUL-terminated malloc'd strings (packets holding a NUL are skipped). */
int smp_keyblock_uids(const unsigned char *block, size_t len, char ***uids,
		      size_t *n);
void smp_strv_free(char **v, size_t n);

#endif
