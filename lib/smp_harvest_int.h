/* smp_harvest_int.h - private: the working state of one message's harvest
 * and the functions the harvest modules share (see smp_harvest.h).
 *
 *   smp_harvest.c        names, report, the transaction: which keys are
 *                        written and how (orchestration)
 *   smp_harvest_rules.c  the rules of SPEC.md 4: message level (sender,
 *                        own domains, Authentication-Results), framing,
 *                        per key, per address (decisions)
 *   smp_harvest_keys.c   candidates' stored versions, key inspection and
 *                        the material written to the keyring
 *
 * Not installed, not for the daemon or smpctl: include smp_harvest.h.
 */
#ifndef SMP_HARVEST_INT_H
#define SMP_HARVEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_crypto.h"
#include "smp_gpg.h" /* smp_keyblock_* */
#include "smp_harvest.h"
#include "smp_keyring.h"

/* ------------------------------------------------------------------ */
/* Working state of one message                                         */

/* One transferable key of one part, or a whole part refused before its
 * keys were split (data NULL, fpr ""). */
struct cand {
	unsigned part;
	enum smp_key_source source;
	const unsigned char *data;   /* the block, inside the part */
	size_t len;
	struct smp_keyblock kb;
	enum smp_harvest_reason reason;
	enum smp_harvest_outcome outcome;
	bool self_enc;
	bool live;                   /* past the rules before crypto */
	bool dup;                    /* a later copy of an earlier key */
	bool known;                  /* the memo or the keyring's known
				      * blocks know this very block: no
				      * crypto work (smp_harvest_memo) */
	bool known_stored;           /* ... and it was the keyring's */
	int64_t known_until;         /* known: until when it encrypts, as
				      * they said (0: no expiry) */
	unsigned char known_mat[32]; /* known: the material they named */
	int64_t known_seen;          /* known: the keyring row's seen, as
				      * last written or read (0: unknown) */
	char digest[65];             /* SHA-256 of the block, hex */
	bool revoked_update;         /* revoked, stored, bound: merge it */
	const struct smp_key_info *key;  /* the engine's listing of the block */
	const char **keep;           /* its valid user IDs for the sender */
	size_t nkeep;
	unsigned char *filtered;     /* the block with only those */
	size_t flen;
};

/* What the store held for one fingerprint before the transaction. */
struct stored {
	char fpr[SMP_FPR_MAX];
	bool present;
	struct smp_key_rec rec;
	unsigned char mat[32];       /* SHA-256 of rec.material (have_mat) */
	bool have_mat;
	const struct smp_key_info *key;  /* the listing of rec.material */
};

/* The merged minimal key of one fingerprint. */
struct material {
	bool done;
	unsigned char *data;         /* NULL: the merge gave nothing usable */
	size_t len;
	struct smp_key_info key;     /* the listing of data (when data) */
	bool had_rec;                /* merged with a stored version: */
	unsigned char *based_on;     /* its material */
	size_t based_len;
};

/* One fingerprint to write: the key taken for the sender, or a stored key
 * its owner revoked. */
struct subject {
	struct cand *first;
	const char *fpr;
	bool revoke;
	const struct stored *st;     /* NULL when nothing was stored */
	bool changed;                /* brings something the store lacks */
	bool known;                  /* every copy of it is known (memo) */
	struct material m;
	/* for the memo (once the transaction is committed) and the
	 * keyring's known blocks (inside it) */
	bool remember;
	unsigned char remember_mat[32];  /* SHA-256 of the material stored */
	int64_t remember_until;
};

/* The sender's bindings and one key record, as read. */
struct state {
	struct smp_binding *b;
	size_t nb;
	struct smp_key_rec rec;
	bool have_rec;
};

struct hv {
	struct smp_keyring *kr;
	struct smp_crypto *cr;
	const struct smp_harvest_ctx *ctx;
	struct smp_harvest_report *rep;
	struct smp_limits lim;
	int64_t now, date;
	char *sender;                /* normalised */
	const char *sender_domain;   /* inside sender */
	unsigned long procs0;        /* the engine's processes at the start */
	unsigned calls;              /* smp_crypto calls made (inspections,
				      * merges) */

	struct cand *c;
	size_t nc;
	struct stored *st;
	size_t nst;
	struct smp_key_info *keys;   /* the first inspection */
	size_t nkeys;
	struct subject *sub;
	size_t nsub;
	struct smp_binding *sb;      /* the sender's bindings, for the memo */
	size_t nsb;
	bool have_sb;
};

struct decision {
	enum smp_harvest_outcome outcome;
	enum smp_harvest_reason reason;
	const struct smp_binding *bf;   /* the sender's binding of the key */
	bool binding_untouched;         /* pinned: only the key may change */
	bool need_material;             /* a new or changed key to store */
};

/* smp_harvest.c */
int smp_hv_fail(struct hv *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int smp_hv_oom(struct hv *h);
int smp_hv_db_fail(struct hv *h);
int smp_hv_crypto_fail(struct hv *h);
struct cand *smp_hv_new_cand(struct hv *h, unsigned part,
			     enum smp_key_source src);
/* Reads the sender's bindings and the key record of fpr (may be NULL). */
int smp_hv_read_state(struct hv *h, const char *fpr, struct state *s);
void smp_hv_free_state(struct state *s);

/* smp_harvest_rules.c */
enum smp_harvest_reason smp_hv_message_reason(struct hv *h);
int smp_hv_frame_parts(struct hv *h, const struct smp_key_part *parts,
		       size_t nparts, const bool *use);
enum smp_harvest_reason smp_hv_key_reason(const struct hv *h,
					  const struct smp_key_info *k);
int smp_hv_key_rules(struct hv *h);
bool smp_hv_listing_adds(const struct hv *h, const struct smp_key_info *n,
			 const struct smp_key_info *s, const char *const *keep,
			 size_t nkeep);
void smp_hv_decide(const struct hv *h, const struct subject *sub,
		   const struct state *s, bool changed, struct decision *d);

/* A known block whose keyring row already says what a harvest would
 * write and was seen less than this long ago is not written again: its
 * seen (which only orders the rows of a key for the trim) is refreshed at
 * most once a day, instead of two more statements for every message
 * with a known key. */
#define SMP_HV_BLOCK_SEEN_STEP 86400

/* smp_harvest_keys.c */
void smp_hv_sha256(const void *d, size_t n, unsigned char out[32]);
/* The candidates the memo, or else the keyring's known blocks, know
 * (fetch_stored calls it). */
int smp_hv_memo_check(struct hv *h, struct cand *c, struct stored *s);
/* Writes the blocks of the subjects marked remember to the keyring's
 * known blocks (inside the transaction). */
int smp_hv_blocks_write(struct hv *h);
/* Records the same in the memo (after the commit). */
void smp_hv_memo_record(struct hv *h);
/* When k's minimal form stops being usable: the earlier of the primary
 * key's expiry and its encryption key's (0 = never). */
int64_t smp_hv_key_until(const struct hv *h, const struct smp_key_info *k);
struct stored *smp_hv_find_stored(struct hv *h, const char *fpr);
int smp_hv_fetch_stored(struct hv *h);
int smp_hv_inspect(struct hv *h);
int smp_hv_make_material(struct hv *h, struct subject *sub,
			 const struct smp_key_rec *rec);
void smp_hv_free_material(struct material *m);
bool smp_hv_same_rec(const struct smp_key_rec *a, bool have_a,
		     const struct smp_key_rec *b, bool have_b);
bool smp_hv_material_current(const struct material *m,
			     const struct smp_key_rec *rec);

#endif
