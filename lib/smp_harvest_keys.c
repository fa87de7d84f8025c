/* smp_harvest_keys.c - the key work of a harvest: the stored versions
 * of the candidates' fingerprints, inspection, and the material written
 * to the keyring. See smp_harvest.h. */
#include "smp_harvest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "smp_harvest_int.h"

/* ------------------------------------------------------------------ */
/* The memo of known key blocks (see smp_harvest.h)                    */

struct memo_entry {
	char digest[65];             /* of the block, hex: the hash key */
	char fpr[SMP_FPR_MAX];
	unsigned char mat[32];       /* SHA-256 of the stored material */
	int64_t until;               /* 0 = never */
	int64_t stored_seen;         /* the keyring row's seen, as this memo
				      * last wrote or read it */
	GList link;                  /* in lru, data = the entry */
};

struct smp_harvest_memo {
	GHashTable *by_digest;       /* digest -> entry (owned by lru) */
	GQueue lru;                  /* most recently used first */
	size_t max;
	unsigned long hits;
};

struct smp_harvest_memo *smp_harvest_memo_new(size_t max)
{
	struct smp_harvest_memo *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->by_digest = g_hash_table_new(g_str_hash, g_str_equal);
	g_queue_init(&m->lru);
	m->max = max ? max : SMP_HARVEST_MEMO_DEFAULT;
	return m;
}

void smp_harvest_memo_free(struct smp_harvest_memo *m)
{
	GList *l;

	if (!m)
		return;
	while ((l = g_queue_pop_head_link(&m->lru)))
		free(l->data);
	g_hash_table_destroy(m->by_digest);
	free(m);
}

void smp_harvest_memo_stats(const struct smp_harvest_memo *m, size_t *n,
			    unsigned long *hits)
{
	if (n)
		*n = m ? m->lru.length : 0;
	if (hits)
		*hits = m ? m->hits : 0;
}

static struct memo_entry *memo_find(struct smp_harvest_memo *m,
				    const char *digest)
{
	struct memo_entry *e = g_hash_table_lookup(m->by_digest, digest);

	if (e) {
		g_queue_unlink(&m->lru, &e->link);
		g_queue_push_head_link(&m->lru, &e->link);
	}
	return e;
}

/* Remembers (or refreshes) one block; nothing when out of memory (the
 * memo only saves work). */
static void memo_put(struct smp_harvest_memo *m, const char *digest,
		     const char *fpr, const unsigned char mat[32],
		     int64_t until, int64_t stored_seen)
{
	struct memo_entry *e = memo_find(m, digest);

	if (!e) {
		while (m->lru.length >= m->max) {
			GList *l = g_queue_pop_tail_link(&m->lru);
			struct memo_entry *old = l->data;
			g_hash_table_remove(m->by_digest, old->digest);
			free(old);
		}
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		memcpy(e->digest, digest, sizeof(e->digest));
		e->link.data = e;
		g_queue_push_head_link(&m->lru, &e->link);
		g_hash_table_insert(m->by_digest, e->digest, e);
	}
	snprintf(e->fpr, sizeof(e->fpr), "%s", fpr);
	memcpy(e->mat, mat, sizeof(e->mat));
	e->until = until;
	e->stored_seen = stored_seen;
}

void smp_hv_sha256(const void *d, size_t n, unsigned char out[32])
{
	GChecksum *cs = g_checksum_new(G_CHECKSUM_SHA256);
	gsize len = 32;

	memset(out, 0, 32);
	if (!cs)
		return;
	g_checksum_update(cs, d, (gssize)n);
	g_checksum_get_digest(cs, out, &len);
	g_checksum_free(cs);
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
	unsigned char b[32];

	smp_hv_sha256(d, n, b);
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Does the sender have a binding of fpr (any state)? Reads the sender's
 * bindings once. -1 on a database failure. */
static int sender_bound(struct hv *h, const char *fpr)
{
	if (!h->have_sb) {
		if (smp_keyring_bindings_for(h->kr, h->sender, &h->sb,
					     &h->nsb) < 0)
			return smp_hv_db_fail(h);
		h->have_sb = true;
	}
	for (size_t i = 0; i < h->nsb; i++)
		if (strcmp(h->sb[i].fpr, fpr) == 0)
			return 1;
	return 0;
}

/* Does what a memo entry or a known_blocks row says (the block's key,
 * the SHA-256 of the keyring's material for it then, until when it
 * encrypts) still hold for the stored key s? */
static bool still_holds(struct hv *h, const struct cand *c, struct stored *s,
			const char *fpr, const unsigned char mat[32],
			int64_t until)
{
	if (strcmp(fpr, c->kb.fpr) != 0 || (until && until <= h->now))
		return false;
	if (!s->have_mat) {
		smp_hv_sha256(s->rec.material, s->rec.material_len, s->mat);
		s->have_mat = true;
	}
	return memcmp(s->mat, mat, sizeof(s->mat)) == 0;
}

/* 64 hex digits to 32 octets; false when they are not. */
static bool unhex32(const char *hex, unsigned char out[32])
{
	for (size_t i = 0; i < 32; i++) {
		unsigned v = 0;
		for (size_t k = 0; k < 2; k++) {
			char x = hex[2 * i + k];
			v <<= 4;
			if (x >= '0' && x <= '9')
				v |= (unsigned)(x - '0');
			else if (x >= 'a' && x <= 'f')
				v |= (unsigned)(x - 'a' + 10);
			else
				return false;
		}
		out[i] = (unsigned char)v;
	}
	return hex[64] == '\0';
}

/*
 * Two levels, the same rule: the worker's memo first (no query), then the
 * keyring's known blocks (one indexed read; they outlive a restart and
 * hold what every host on the keyring saw). Either decides the block only
 * when the keyring still holds the material it names for a key that is
 * neither revoked, blocked nor expired, and the sender already has a
 * binding of it; else the block takes the full path.
 */
int smp_hv_memo_check(struct hv *h, struct cand *c, struct stored *s)
{
	struct smp_harvest_memo *m = h->ctx->memo;
	const struct memo_entry *e;
	struct smp_known_block kb;
	unsigned char mat[32];
	bool stored = false;
	int64_t until, seen;
	int r;

	sha256_hex(c->data, c->len, c->digest);
	if (!s->present || s->rec.revoked || s->rec.blocked ||
	    (s->rec.expires && s->rec.expires <= h->now))
		return 0;
	e = m ? memo_find(m, c->digest) : NULL;
	if (e && still_holds(h, c, s, e->fpr, e->mat, e->until)) {
		until = e->until;
		seen = e->stored_seen;
	} else {
		r = smp_keyring_block_get(h->kr, c->digest, &kb);
		if (r < 0)
			return smp_hv_db_fail(h);
		if (r > 0 || !unhex32(kb.material, mat) ||
		    !still_holds(h, c, s, kb.fpr, mat, kb.usable_until))
			return 0; /* unknown, or the keyring's key changed since */
		until = kb.usable_until;
		seen = kb.seen;
		stored = true;
	}
	r = sender_bound(h, c->kb.fpr);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	c->known = true;
	c->known_stored = stored;
	c->known_until = until;
	c->known_seen = seen;
	memcpy(c->known_mat, s->mat, sizeof(c->known_mat));
	if (!stored)
		m->hits++;
	return 0;
}

/* Is c a block of sub that the memo and the known blocks record? */
static bool recorded(const struct subject *sub, const struct cand *c)
{
	return sub->remember && c->live && c->digest[0] &&
	       (c->reason == SMP_HR_NONE || c->known) &&
	       strcmp(c->kb.fpr, sub->fpr) == 0;
}

static void hex32(const unsigned char in[32], char out[65])
{
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* Does the keyring row of known block c already say what sub would
 * write, seen recently enough (SMP_HV_BLOCK_SEEN_STEP)? */
static bool row_current(const struct hv *h, const struct subject *sub,
			const struct cand *c)
{
	return c->known && c->known_seen &&
	       c->known_seen > h->now - SMP_HV_BLOCK_SEEN_STEP &&
	       c->known_until == sub->remember_until &&
	       memcmp(c->known_mat, sub->remember_mat,
		      sizeof(c->known_mat)) == 0;
}

int smp_hv_blocks_write(struct hv *h)
{
	struct smp_known_block kb;

	for (size_t i = 0; i < h->nsub; i++) {
		const struct subject *sub = &h->sub[i];

		for (size_t j = 0; j < h->nc; j++) {
			const struct cand *c = &h->c[j];

			if (!recorded(sub, c) || row_current(h, sub, c))
				continue;
			memset(&kb, 0, sizeof(kb));
			memcpy(kb.digest, c->digest, sizeof(kb.digest));
			snprintf(kb.fpr, sizeof(kb.fpr), "%s", sub->fpr);
			hex32(sub->remember_mat, kb.material);
			kb.usable_until = sub->remember_until;
			kb.seen = h->now;
			if (smp_keyring_block_put(h->kr, &kb) < 0)
				return smp_hv_db_fail(h);
		}
	}
	return 0;
}

void smp_hv_memo_record(struct hv *h)
{
	struct smp_harvest_memo *m = h->ctx->memo;

	if (!m)
		return;
	for (size_t i = 0; i < h->nsub; i++) {
		const struct subject *sub = &h->sub[i];

		for (size_t j = 0; j < h->nc; j++) {
			const struct cand *c = &h->c[j];
			if (recorded(sub, c))
				memo_put(m, c->digest, sub->fpr,
					 sub->remember_mat,
					 sub->remember_until,
					 row_current(h, sub, c) ? c->known_seen
								: h->now);
		}
	}
}

int64_t smp_hv_key_until(const struct hv *h, const struct smp_key_info *k)
{
	const struct smp_key_sub *best = NULL;
	int64_t until = k->expires;

	for (size_t i = 1; i < k->nsubkeys; i++) {
		const struct smp_key_sub *s = &k->subkeys[i];
		if (s->can_encrypt && !s->revoked && !s->invalid &&
		    (s->expires == 0 || s->expires > h->now) &&
		    (!best || s->created > best->created))
			best = s;
	}
	if (best && best->expires && (!until || best->expires < until))
		until = best->expires;
	return until;
}

void smp_hv_free_material(struct material *m)
{
	free(m->data);
	free(m->based_on);
	smp_key_info_clear(&m->key);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* The stored versions (reads outside the transaction)                 */

struct stored *smp_hv_find_stored(struct hv *h, const char *fpr)
{
	for (size_t i = 0; i < h->nst; i++)
		if (strcmp(h->st[i].fpr, fpr) == 0)
			return &h->st[i];
	return NULL;
}

/* Reads the key record of every candidate's fingerprint once; a blocked
 * one refuses its candidates right here. */
int smp_hv_fetch_stored(struct hv *h)
{
	h->st = calloc(h->nc + 1, sizeof(*h->st));
	if (!h->st)
		return smp_hv_oom(h);
	for (size_t i = 0; i < h->nc; i++) {
		struct cand *c = &h->c[i];
		struct stored *s;
		int r;

		if (c->reason != SMP_HR_NONE)
			continue;
		s = smp_hv_find_stored(h, c->kb.fpr);
		if (!s) {
			s = &h->st[h->nst];
			snprintf(s->fpr, sizeof(s->fpr), "%s", c->kb.fpr);
			r = smp_keyring_key_get(h->kr, c->kb.fpr, &s->rec);
			if (r < 0)
				return smp_hv_db_fail(h);
			s->present = r == 0;
			h->nst++;
		}
		if (s->present && s->rec.blocked) {
			c->reason = SMP_HR_BLOCKED;
			continue;
		}
		c->live = true;
		if (smp_hv_memo_check(h, c, s))
			return -1;
	}
	return 0;
}

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static int buf_put(struct buf *b, const unsigned char *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = (b->len + n) * 2 + 64;
		unsigned char *np = realloc(b->p, nc);
		if (!np)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

static size_t count_blocks(const unsigned char *d, size_t n)
{
	struct smp_keyblock *kb;
	size_t nkb;

	if (n == 0 || smp_keyblock_split(d, n, &kb, &nkb) != 0)
		return 0;
	free(kb);
	return nkb;
}

/* Is some live candidate of fpr not known (so inspected)? */
static bool unknown_of(const struct hv *h, const char *fpr)
{
	for (size_t i = 0; i < h->nc; i++)
		if (h->c[i].live && !h->c[i].known &&
		    strcmp(h->c[i].kb.fpr, fpr) == 0)
			return true;
	return false;
}

/* One inspection (one gpg process on gnupg) of every live candidate and
 * the stored versions of their fingerprints (stored first: gpg stops at a
 * block it cannot parse, and only a sender's block can be such). */
int smp_hv_inspect(struct hv *h)
{
	struct buf b = {0};
	size_t *blk = calloc(h->nc + 1, sizeof(*blk));
	size_t next;
	int rc = -1;

	if (!blk)
		return smp_hv_oom(h);
	for (size_t i = 0; i < h->nst; i++)
		if (h->st[i].present && unknown_of(h, h->st[i].fpr) &&
		    buf_put(&b, h->st[i].rec.material,
			    h->st[i].rec.material_len))
			goto nomem;
	next = count_blocks(b.p, b.len);
	for (size_t i = 0; i < h->nc; i++) {
		if (!h->c[i].live || h->c[i].known)
			continue;
		blk[i] = next++;
		if (buf_put(&b, h->c[i].data, h->c[i].len))
			goto nomem;
	}
	if (b.len == 0) {
		rc = 0; /* every key is known: no crypto work at all */
		goto out;
	}
	h->calls++;
	if (smp_crypto_inspect_all(h->cr, b.p, b.len, &h->keys, &h->nkeys)) {
		rc = smp_hv_crypto_fail(h);
		goto out;
	}
	for (size_t k = 0; k < h->nkeys; k++) {
		const struct smp_key_info *key = &h->keys[k];
		bool mine = false;

		for (size_t i = 0; i < h->nc; i++) {
			if (h->c[i].live && !h->c[i].known &&
			    key->block == blk[i]) {
				h->c[i].key = key;
				mine = true;
			}
		}
		if (!mine) {
			struct stored *s = smp_hv_find_stored(h, key->fpr);
			if (s && s->present && !s->key)
				s->key = key;
		}
	}
	rc = 0;
	goto out;
nomem:
	rc = smp_hv_oom(h);
out:
	free(b.p);
	free(blk);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Material                                                             */

static bool cand_of(const struct cand *c, const struct subject *sub)
{
	return c->live && c->filtered && strcmp(c->kb.fpr, sub->fpr) == 0 &&
	       (sub->revoke ? c->revoked_update : c->reason == SMP_HR_NONE);
}

/*
 * The material of the subject: smp_crypto_merge of the stored material
 * (rec, may be NULL) and the subject's candidates (already cut down to
 * the sender's user IDs), bound to the sender (a revocation keeps the
 * stored user IDs only). m->data stays NULL when the merge gave nothing
 * usable.
 */
int smp_hv_make_material(struct hv *h, struct subject *sub,
			 const struct smp_key_rec *rec)
{
	struct material *m = &sub->m;
	struct buf in = {0};
	void *out = NULL;
	size_t outlen = 0;
	int r, rc = -1;

	smp_hv_free_material(m);
	m->done = true;
	m->had_rec = rec != NULL;
	if (rec && rec->material_len) {
		m->based_on = malloc(rec->material_len);
		if (!m->based_on)
			goto nomem;
		memcpy(m->based_on, rec->material, rec->material_len);
		m->based_len = rec->material_len;
	}
	for (size_t i = 0; i < h->nc; i++) {
		const struct cand *c = &h->c[i];
		if (cand_of(c, sub) && buf_put(&in, c->filtered, c->flen))
			goto nomem;
	}
	if (in.len == 0) {
		rc = 0; /* nothing of the message to merge */
		goto out;
	}
	h->calls++;
	r = smp_crypto_merge(h->cr, rec ? rec->material : NULL,
			     rec ? rec->material_len : 0, in.p, in.len,
			     sub->revoke ? NULL : h->sender, &out, &outlen,
			     &m->key);
	if (r < 0) {
		rc = smp_hv_crypto_fail(h);
		goto out;
	}
	if (r == 0 && strcmp(m->key.fpr, sub->fpr) == 0) {
		m->data = out;
		m->len = outlen;
		out = NULL;
	} else {
		smp_key_info_clear(&m->key);
	}
	rc = 0;
	goto out;
nomem:
	rc = smp_hv_oom(h);
out:
	free(in.p);
	free(out);
	return rc;
}

bool smp_hv_same_rec(const struct smp_key_rec *a, bool have_a,
		     const struct smp_key_rec *b, bool have_b)
{
	if (!have_a || !have_b)
		return have_a == have_b;
	return a->material_len == b->material_len &&
	       (a->material_len == 0 ||
		memcmp(a->material, b->material, a->material_len) == 0);
}

/* Is m made from what rec holds now? */
bool smp_hv_material_current(const struct material *m,
			     const struct smp_key_rec *rec)
{
	if (!m->done)
		return false;
	if (!rec)
		return !m->had_rec;
	return m->had_rec && rec->material_len == m->based_len &&
	       (m->based_len == 0 ||
		memcmp(rec->material, m->based_on, m->based_len) == 0);
}

