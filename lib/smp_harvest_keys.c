/* smp_harvest_keys.c - the key work of a harvest: the stored versions
 * of the candidates' fingerprints, inspection, and the material written
 * to the keyring. See smp_harvest.h. */
#include "smp_harvest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_harvest_int.h"

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
		if (s->present && s->rec.blocked)
			c->reason = SMP_HR_BLOCKED;
		else
			c->live = true;
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
		if (h->st[i].present &&
		    buf_put(&b, h->st[i].rec.material,
			    h->st[i].rec.material_len))
			goto nomem;
	next = count_blocks(b.p, b.len);
	for (size_t i = 0; i < h->nc; i++) {
		if (!h->c[i].live)
			continue;
		blk[i] = next++;
		if (buf_put(&b, h->c[i].data, h->c[i].len))
			goto nomem;
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
			if (h->c[i].live && key->block == blk[i]) {
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

