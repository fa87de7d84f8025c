/* smp_crypto_gnupg.c - the "gnupg" crypto engine: gpgme and gpg 2.2, over
 * lib/smp_gpg.c (inspection, import, minimal export) and one gpgme
 * context of its own for encryption.
 *
 * Costs (SPEC.md 9): every operation starts a gpg process; opening starts
 * a few (engine checks). Inspection: one for any number of keys. Minimal
 * key: four (inspect, then smp_gpg_import_minimal's three), five when
 * gpg's export-minimal dropped the encryption subkey (see below). Merge:
 * import and export-minimal, one more export when a subkey was dropped,
 * and the caller's listings. Encryption:
 * one, plus one import for keys this instance has not yet put into the
 * home from the material it was given (the key cache records which).
 *
 * 64-bit times: GnuPG 2.2 keeps key times in 32 bits and adds a key's
 * creation time and its expiration interval modulo 2^32, so a key created
 * in 2022 that expires in 2122 is listed as expired in 1986. For every key
 * gpg lists with an expiry, the self-signatures in the key block itself
 * are read (smp_crypto_raw_expiry): when one carries a key expiration
 * interval whose 64-bit sum with the creation time lies past 2106 and
 * wraps to exactly what gpg reported, that sum is the expiry, and the
 * expired flags are computed again from it. gpg's export-minimal drops
 * such a subkey as expired: the minimal key and the merge take it from a
 * plain export of the home instead (add_lost_subkeys). gpg itself still
 * refuses to encrypt to such a key; the refusal says why.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gpgme.h>

#include "smp_crypto_backend.h"
#include "smp_gpg.h"
#include "smp_packets.h"

struct gnupg_engine {
	struct smp_crypto base;
	struct smp_gpg *g;
	gpgme_ctx_t ctx;             /* encryption */
	unsigned long own_ops;       /* gpg processes started through ctx */
};

static struct gnupg_engine *eng(struct smp_crypto *c)
{
	return (struct gnupg_engine *)c;
}

static void sync_ops(struct gnupg_engine *e)
{
	e->base.st.processes = smp_gpg_ops(e->g) + e->own_ops;
}

/* ------------------------------------------------------------------ */
/* 64-bit expiry from the key block                                     */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The key expiration interval (subpacket 9) in the hashed area of a v4
 * signature body of one of the types in [lo, hi] or equal to also; 0
 * when none. */
static uint32_t sig_key_expiry(const unsigned char *b, size_t n, unsigned lo,
			       unsigned hi, unsigned also)
{
	size_t hlen, off;

	if (n < 6 || b[0] != 4)
		return 0;
	if (!((b[1] >= lo && b[1] <= hi) || b[1] == also))
		return 0;
	hlen = (size_t)b[4] << 8 | b[5];
	if (6 + hlen > n)
		return 0;
	off = 6;
	while (off < 6 + hlen) {
		size_t sl;
		unsigned type;

		if (b[off] < 192) {
			sl = b[off];
			off += 1;
		} else if (b[off] < 255) {
			if (off + 2 > 6 + hlen)
				return 0;
			sl = ((size_t)(b[off] - 192) << 8) + b[off + 1] + 192;
			off += 2;
		} else {
			if (off + 5 > 6 + hlen)
				return 0;
			sl = be32(b + off + 1);
			off += 5;
		}
		if (sl == 0 || sl > 6 + hlen - off)
			return 0;
		type = b[off] & 0x7F;
		if (type == 9 && sl == 5)
			return be32(b + off + 1);
		off += sl;
	}
	return 0;
}

bool smp_crypto_raw_expiry(const unsigned char *block, size_t len,
			   const char *fpr, uint32_t wrapped,
			   int64_t *expires)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	bool target = false, primary = false, seen_primary = false;
	int64_t created = 0;

	smp_pkt_iter_init(&it, block, len);
	while (smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		if (pkt.partial || pkt.indeterminate)
			return false;
		if (pkt.tag == SMP_TAG_PUBLIC_KEY ||
		    pkt.tag == SMP_TAG_PUBLIC_SUBKEY ||
		    pkt.tag == SMP_TAG_SECRET_KEY ||
		    pkt.tag == SMP_TAG_SECRET_SUBKEY) {
			bool is_primary = pkt.tag == SMP_TAG_PUBLIC_KEY ||
					  pkt.tag == SMP_TAG_SECRET_KEY;
			char f[SMP_FPR_MAX];

			if (is_primary && seen_primary)
				return false; /* the next key */
			seen_primary |= is_primary;
			primary = is_primary;
			smp_crypto_pkt_fpr(pkt.first, pkt.body_len,
					   pkt.tag == SMP_TAG_SECRET_KEY ||
						   pkt.tag ==
							   SMP_TAG_SECRET_SUBKEY,
					   f);
			target = pkt.body_len >= 5 && pkt.first[0] == 4 &&
				 strcmp(f, fpr) == 0;
			if (target)
				created = be32(pkt.first + 1);
			continue;
		}
		if (pkt.tag != SMP_TAG_SIGNATURE || !target)
			continue;
		{
			/* primary: user ID certifications 0x10-0x13 and
			 * direct-key 0x1F; subkey: binding 0x18 */
			uint32_t iv = primary
				? sig_key_expiry(pkt.first, pkt.body_len,
						 0x10, 0x13, 0x1F)
				: sig_key_expiry(pkt.first, pkt.body_len,
						 0x18, 0x18, 0x18);
			int64_t sum = created + (int64_t)iv;

			if (iv && sum > (int64_t)UINT32_MAX &&
			    (uint32_t)sum == wrapped) {
				*expires = sum;
				return true;
			}
		}
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Open, close                                                         */

static void gnupg_close(struct smp_crypto *c)
{
	struct gnupg_engine *e = eng(c);

	if (e->ctx)
		gpgme_release(e->ctx);
	smp_gpg_close(e->g);
	free(e);
}

static int gnupg_open(const char *home, struct smp_crypto **out, char *err,
		      size_t errlen)
{
	struct gnupg_engine *e;
	gpgme_error_t ge;

	if (!home || !*home) {
		smp_crypto_seterr(err, errlen, "the gnupg crypto engine needs "
				  "a GnuPG home (gnupg_home)");
		return -1;
	}
	if (!smp_gpg_init()) {
		smp_crypto_seterr(err, errlen, "gpgme or its gpg engine is "
				  "not usable");
		return -1;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		smp_crypto_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (smp_gpg_open(home, &e->g, err, errlen)) {
		free(e);
		return -1;
	}
	if ((ge = gpgme_new(&e->ctx)) ||
	    (ge = gpgme_set_protocol(e->ctx, GPGME_PROTOCOL_OpenPGP)) ||
	    (ge = gpgme_ctx_set_engine_info(e->ctx, GPGME_PROTOCOL_OpenPGP,
					    NULL, home)) ||
	    (ge = gpgme_set_keylist_mode(e->ctx, GPGME_KEYLIST_MODE_LOCAL))) {
		smp_crypto_seterr(err, errlen, "gpgme setup for %s failed: %s",
				  home, gpgme_strerror(ge));
		gnupg_close(&e->base);
		return -1;
	}
	e->own_ops++; /* the engine info check */
	gpgme_set_armor(e->ctx, 1);
	gpgme_set_textmode(e->ctx, 0);
	gpgme_set_offline(e->ctx, 1);
	sync_ops(e);
	*out = &e->base;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Inspection                                                          */

/* gpgme's algorithm numbers are RFC 4880's except for the ECC ones. */
static unsigned rfc_algo(unsigned gpgme_algo)
{
	switch (gpgme_algo) {
	case GPGME_PK_ECDSA:
		return SMP_PK_ECDSA;
	case GPGME_PK_ECDH:
		return SMP_PK_ECDH;
	case GPGME_PK_EDDSA:
		return SMP_PK_EDDSA;
	default:
		return gpgme_algo;
	}
}

static int convert(const struct smp_gpg_key *g, const unsigned char *block,
		   size_t blen, int64_t now, struct smp_key_info *k)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->fpr, sizeof(k->fpr), "%s", g->fpr);
	k->version = g->version;
	k->uids = calloc(g->nuids ? g->nuids : 1, sizeof(*k->uids));
	k->subkeys = calloc(g->nsubkeys ? g->nsubkeys : 1,
			    sizeof(*k->subkeys));
	if (!k->uids || !k->subkeys)
		return -1;
	for (size_t i = 0; i < g->nuids; i++) {
		struct smp_key_uid *d = &k->uids[k->nuids++];
		d->uid = strdup(g->uids[i].uid);
		d->email = strdup(g->uids[i].email);
		d->revoked = g->uids[i].revoked;
		d->invalid = g->uids[i].invalid;
		if (!d->uid || !d->email)
			return -1;
	}
	for (size_t i = 0; i < g->nsubkeys; i++) {
		const struct smp_gpg_subkey *s = &g->subkeys[i];
		struct smp_key_sub *d = &k->subkeys[k->nsubkeys++];
		int64_t raw;

		snprintf(d->keyid, sizeof(d->keyid), "%s", s->keyid);
		snprintf(d->fpr, sizeof(d->fpr), "%s", s->fpr);
		snprintf(d->algo, sizeof(d->algo), "%s", s->algo);
		d->pubkey_algo = rfc_algo(s->pubkey_algo);
		d->bits = s->bits;
		d->created = s->created;
		d->expires = s->expires;
		if (d->expires > 0 && d->expires <= (int64_t)UINT32_MAX &&
		    block &&
		    smp_crypto_raw_expiry(block, blen, d->fpr,
					  (uint32_t)d->expires, &raw))
			d->expires = raw;
		/* gpg's expired flag came from the 32-bit time */
		d->expired = d->expires != 0 && d->expires <= now;
		d->can_encrypt = s->can_encrypt;
		d->can_sign = s->can_sign;
		d->can_certify = s->can_certify;
		d->revoked = s->revoked;
		d->invalid = s->invalid;
		d->secret = g->secret;
	}
	smp_crypto_info_finish(k);
	k->secret = g->secret;
	k->block = g->block;
	return 0;
}

static int gnupg_inspect(struct smp_crypto *c, const unsigned char *data,
			 size_t len, const struct smp_keyblock *blocks,
			 size_t nblocks, struct smp_key_info **keys, size_t *n)
{
	struct gnupg_engine *e = eng(c);
	struct smp_gpg_key *gk = NULL;
	struct smp_key_info *v = NULL;
	size_t gn = 0, cnt = 0, cursor = 0;
	int64_t now = (int64_t)time(NULL);
	int rc = -1;

	*keys = NULL;
	*n = 0;
	if (smp_gpg_inspect(e->g, data, len, &gk, &gn)) {
		smp_crypto_error(c, "%s", smp_gpg_errmsg(e->g));
		goto out;
	}
	if (gn == 0) {
		smp_crypto_error(c, "gpg did not accept the key (a v3 key, "
				 "broken packets or no validly self-signed "
				 "user ID)");
		rc = 0;
		goto out;
	}
	v = calloc(gn, sizeof(*v));
	if (!v) {
		smp_crypto_error(c, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < gn; i++) {
		size_t b = gk[i].block;

		/* smp_gpg matches blocks by fingerprint, which secret key
		 * blocks lack there: take the next block in order */
		if (b >= nblocks) {
			for (b = cursor; b < nblocks; b++)
				if (blocks[b].secret)
					break;
		}
		if (b < nblocks) {
			gk[i].block = b;
			if (!gk[i].version)
				gk[i].version = blocks[b].version;
			cursor = b + 1;
		}
		if (convert(&gk[i], b < nblocks ? data + blocks[b].off : NULL,
			    b < nblocks ? blocks[b].len : 0, now, &v[cnt])) {
			smp_key_info_clear(&v[cnt]);
			smp_crypto_error(c, "out of memory");
			goto out;
		}
		cnt++;
	}
	*keys = v;
	*n = cnt;
	v = NULL;
	rc = 0;
out:
	smp_key_infos_free(v, cnt);
	smp_gpg_keys_free(gk, gn);
	sync_ops(e);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Cleaning (minimal key)                                              */

/* Does the binary key block hold a subkey with fingerprint fpr? */
static bool has_subkey(const unsigned char *d, size_t n, const char *fpr)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;

	smp_pkt_iter_init(&it, d, n);
	while (smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		char f[SMP_FPR_MAX];

		if (pkt.tag != SMP_TAG_PUBLIC_SUBKEY)
			continue;
		smp_crypto_pkt_fpr(pkt.first, pkt.body_len, false, f);
		if (strcmp(f, fpr) == 0)
			return true;
	}
	return false;
}

/* Does out lack a subkey that in has? */
static bool lost_subkey(const unsigned char *in, size_t inlen,
			const unsigned char *out, size_t outlen)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;

	smp_pkt_iter_init(&it, in, inlen);
	while (smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		char f[SMP_FPR_MAX];

		if (pkt.tag != SMP_TAG_PUBLIC_SUBKEY)
			continue;
		smp_crypto_pkt_fpr(pkt.first, pkt.body_len, false, f);
		if (f[0] && !has_subkey(out, outlen, f))
			return true;
	}
	return false;
}

/*
 * Adds to *out, gpg's minimal export of key fpr, every subkey the key in
 * block (what was imported) has and *out lacks, with its binding
 * signatures, as the home holds them (smp_gpg_export: one gpg process,
 * only when something was lost). export-minimal drops every subkey
 * GnuPG 2.2 thinks expired or revoked, and it thinks a subkey that
 * expires after 2106 expired in the past (its 32-bit sum wraps): the
 * usable encryption subkey of such a key was lost, and so were the
 * expired and revoked subkeys that a merge keeps to record the expiry or
 * revocation (as the rnp engine does). The home holds only what gpg's
 * import checked: self-signatures (import-options self-sigs-only), the
 * subkeys with a valid binding signature.
 */
static int add_lost_subkeys(struct gnupg_engine *e, const unsigned char *block,
			    size_t len, const char *fpr, unsigned char **out,
			    size_t *outlen)
{
	struct smp_crypto *c = &e->base;
	const char *one[1] = {fpr};
	unsigned char *full = NULL, *o;
	size_t flen = 0, n = *outlen;
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	bool copy = false;

	if (!lost_subkey(block, len, *out, *outlen))
		return 0;
	if (smp_gpg_export(e->g, one, 1, &full, &flen)) {
		sync_ops(e);
		return smp_crypto_error(c, "%s", smp_gpg_errmsg(e->g));
	}
	sync_ops(e);
	o = realloc(*out, n + flen + 1);
	if (!o) {
		free(full);
		return smp_crypto_error(c, "out of memory");
	}
	smp_pkt_iter_init(&it, full, flen);
	while (smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		if (pkt.tag == SMP_TAG_PUBLIC_SUBKEY) {
			char f[SMP_FPR_MAX];

			smp_crypto_pkt_fpr(pkt.first, pkt.body_len, false, f);
			copy = f[0] && has_subkey(block, len, f) &&
			       !has_subkey(o, n, f);
		} else if (pkt.tag == SMP_TAG_PUBLIC_KEY && pkt.offset > 0) {
			break; /* another key: not asked for */
		} else if (pkt.tag != SMP_TAG_SIGNATURE) {
			copy = false;
		}
		if (copy && pkt.tag != SMP_TAG_TRUST) {
			memcpy(o + n, full + pkt.offset, it.off - pkt.offset);
			n += it.off - pkt.offset;
		}
	}
	free(full);
	*out = o;
	*outlen = n;
	return 0;
}

static int gnupg_clean(struct smp_crypto *c, const unsigned char *block,
		       size_t len, const char *fpr, const char *encfpr,
		       const char *address, unsigned char **out,
		       size_t *outlen, struct smp_key_info *info)
{
	struct gnupg_engine *e = eng(c);
	struct smp_keyblock *kb = NULL;
	size_t nkb = 0;
	int r;

	(void)info; /* gpg's listing is one more process: the caller's */
	if (smp_keyblock_split(block, len, &kb, &nkb) != 0) {
		if (errno == ENOMEM)
			return smp_crypto_error(c, "out of memory");
		nkb = 1; /* gpg says what is wrong with it */
	}
	free(kb);
	if (nkb > 1 || !address) {
		/* a merge (smp_crypto_merge): every copy into the home, where
		 * gpg checks and merges them, then the key out of it minimal,
		 * with the subkeys export-minimal dropped; the caller handed
		 * in only user IDs it may keep */
		const char *one[1] = {fpr};

		r = smp_gpg_import(e->g, block, len, NULL);
		if (r == 0)
			r = smp_gpg_export_minimal(e->g, one, 1, out, outlen);
		sync_ops(e);
		if (r)
			return smp_crypto_error(c, "%s", smp_gpg_errmsg(e->g));
		if (!*out || !*outlen) {
			free(*out);
			*out = NULL;
			*outlen = 0;
			smp_crypto_error(c, "gpg did not import key %s", fpr);
			return 1;
		}
	} else {
		/* import (self-signatures only, cleaned) and export-minimal
		 * with only the user IDs of address */
		r = smp_gpg_import_minimal(e->g, block, len, fpr, address, out,
					   outlen);
		sync_ops(e);
		if (r) {
			smp_crypto_error(c, "%s", smp_gpg_errmsg(e->g));
			return r;
		}
		/* only the encryption subkey matters here */
		if (encfpr ? has_subkey(*out, *outlen, encfpr) :
			     !lost_subkey(block, len, *out, *outlen))
			return 0;
	}
	r = add_lost_subkeys(e, block, len, fpr, out, outlen);
	if (r) {
		free(*out);
		*out = NULL;
		*outlen = 0;
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Encryption                                                          */

static void gnupg_evict(struct smp_crypto *c, const char *fpr)
{
	/* the GnuPG home keeps the key: it is a cache of the keyring that
	 * smpctl keys rebuild regenerates */
	(void)c;
	(void)fpr;
}

/* Imports the material of keys[i] for every i with todo[i] (one gpg
 * process) and records them in the cache. */
static int import_keys(struct gnupg_engine *e,
		       const struct smp_crypto_kbin *keys, size_t nkeys,
		       const bool *todo, char *err, size_t errlen)
{
	struct smp_crypto *c = &e->base;
	unsigned char *buf;
	size_t total = 0, off = 0;
	int rc = -1;

	for (size_t i = 0; i < nkeys; i++)
		if (todo[i])
			total += keys[i].len;
	if (total == 0)
		return 0;
	buf = malloc(total);
	if (!buf) {
		smp_crypto_seterr(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (!todo[i])
			continue;
		memcpy(buf + off, keys[i].material, keys[i].len);
		off += keys[i].len;
	}
	if (smp_gpg_import(e->g, buf, total, NULL)) {
		smp_crypto_seterr(err, errlen, "importing keys into the GnuPG "
				  "home: %s", smp_gpg_errmsg(e->g));
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (todo[i] && smp_crypto_cache_put(c, keys[i].fpr,
						    keys[i].material,
						    keys[i].len)) {
			smp_crypto_seterr(err, errlen, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	free(buf);
	sync_ops(e);
	return rc;
}

/* Why gpg refused key k: for an expiry past 2106 that gpg reads as
 * expired, say so. */
static void refusal(struct gnupg_engine *e, const struct smp_crypto_kbin *k,
		    gpgme_error_t reason, char *buf, size_t size)
{
	struct smp_key_info *info = NULL;
	struct smp_keyblock one = {0};
	size_t n = 0, bl = strlen(buf);
	const char *why = gpgme_strerror(reason);
	char more[160] = "";

	one.len = k->len;
	if (gpg_err_code(reason) != GPG_ERR_NO_PUBKEY &&
	    gnupg_inspect(&e->base, k->material, k->len, &one, 1, &info,
			  &n) == 0 &&
	    n == 1 && info[0].can_encrypt) {
		for (size_t i = 0; i < info[0].nsubkeys; i++)
			if (info[0].subkeys[i].expires > (int64_t)UINT32_MAX)
				snprintf(more, sizeof(more),
					 ": its expiry lies past 2106, which "
					 "GnuPG 2.2 reads as expired (use the "
					 "rnp engine)");
	}
	smp_key_infos_free(info, n);
	if (bl + 1 < size)
		snprintf(buf + bl, size - bl, "%s%s (%s%s)", bl ? ", " : "",
			 k->fpr, why, more);
}

/* gpg's LF line ends to CRLF; malloc'd, NUL-terminated. */
static char *to_crlf(const char *p, size_t n, size_t *outlen)
{
	size_t lf = 0, o = 0;
	char *r;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			lf++;
	r = malloc(n + lf + 1);
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			r[o++] = '\r';
		r[o++] = p[i];
	}
	r[o] = '\0';
	*outlen = o;
	return r;
}

/* One gpg encryption. 0 done; 1 refused (refused[] filled, missing[i]
 * set for keys gpg does not have); -1 error. */
static int run_gpg(struct gnupg_engine *e, const unsigned char *payload,
		   size_t len, const struct smp_crypto_kbin *keys,
		   size_t nkeys, const char *recp, bool *missing,
		   char *refused, size_t rsize, char **out, size_t *outlen,
		   char *err, size_t errlen)
{
	gpgme_data_t in = NULL, o = NULL;
	gpgme_encrypt_result_t res;
	gpgme_error_t ge;
	char *mem = NULL;
	size_t mlen = 0;
	int rc = -1;

	if ((ge = gpgme_data_new_from_mem(&in, (const char *)payload, len,
					  0)) ||
	    (ge = gpgme_data_new(&o))) {
		smp_crypto_seterr(err, errlen, "gpgme data: %s",
				  gpgme_strerror(ge));
		goto out;
	}
	e->own_ops++;
	ge = gpgme_op_encrypt_ext(e->ctx, NULL, recp,
				  GPGME_ENCRYPT_ALWAYS_TRUST |
					  GPGME_ENCRYPT_NO_ENCRYPT_TO,
				  in, o);
	if (!ge) {
		mem = gpgme_data_release_and_get_mem(o, &mlen);
		o = NULL;
		if (!mem) {
			smp_crypto_seterr(err, errlen, "out of memory");
			goto out;
		}
		*out = to_crlf(mem, mlen, outlen);
		if (!*out) {
			smp_crypto_seterr(err, errlen, "out of memory");
			goto out;
		}
		rc = 0;
		goto out;
	}
	res = gpgme_op_encrypt_result(e->ctx);
	if (res && res->invalid_recipients) {
		for (gpgme_invalid_key_t k = res->invalid_recipients; k;
		     k = k->next) {
			char f[SMP_FPR_MAX] = "";
			size_t i;

			if (!k->fpr || !smp_crypto_fpr_clean(k->fpr, f))
				continue;
			for (i = 0; i < nkeys; i++)
				if (strcmp(keys[i].fpr, f) == 0)
					break;
			if (i == nkeys)
				continue;
			if (gpg_err_code(k->reason) == GPG_ERR_NO_PUBKEY)
				missing[i] = true;
			refusal(e, &keys[i], k->reason, refused, rsize);
		}
		rc = 1;
		goto out;
	}
	smp_crypto_seterr(err, errlen, "gpg encryption failed: %s",
			  gpgme_strerror(ge));
out:
	if (mem)
		gpgme_free(mem);
	if (in)
		gpgme_data_release(in);
	if (o)
		gpgme_data_release(o);
	return rc;
}

static int gnupg_encrypt(struct smp_crypto *c, const unsigned char *payload,
			 size_t len, const struct smp_crypto_kbin *keys,
			 size_t nkeys, char **out, size_t *outlen, char *err,
			 size_t errlen)
{
	struct gnupg_engine *e = eng(c);
	bool *todo = calloc(nkeys, sizeof(*todo));
	bool *missing = calloc(nkeys, sizeof(*missing));
	char *recp = malloc(nkeys * SMP_FPR_MAX + 1);
	char refused[1024];
	size_t rl = 0;
	int rc = -1;

	if (!todo || !missing || !recp) {
		smp_crypto_seterr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		rl += (size_t)snprintf(recp + rl, SMP_FPR_MAX + 1, "%s\n",
				       keys[i].fpr);
		if (smp_crypto_cache_lookup(c, keys[i].fpr, keys[i].material,
					    keys[i].len) == 1) {
			c->st.cache_hits++;
		} else {
			c->st.cache_misses++;
			todo[i] = true;
		}
	}
	if (import_keys(e, keys, nkeys, todo, err, errlen))
		goto out;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool again = false;

		refused[0] = '\0';
		memset(missing, 0, nkeys * sizeof(*missing));
		rc = run_gpg(e, payload, len, keys, nkeys, recp, missing,
			     refused, sizeof(refused), out, outlen, err,
			     errlen);
		sync_ops(e);
		if (rc <= 0)
			goto out;
		/* a key the cache thought was in the home is not (the
		 * home was rebuilt): import those once and try again */
		for (size_t i = 0; i < nkeys; i++) {
			todo[i] = missing[i] && !todo[i];
			again |= todo[i];
		}
		if (!again || attempt > 0)
			break;
		for (size_t i = 0; i < nkeys; i++)
			if (todo[i])
				smp_crypto_cache_forget(c, keys[i].fpr);
		if (import_keys(e, keys, nkeys, todo, err, errlen)) {
			rc = -1;
			goto out;
		}
	}
	smp_crypto_seterr(err, errlen, "refused keys: %s",
			  refused[0] ? refused : "gpg refused the recipients");
	rc = 1;
out:
	free(todo);
	free(missing);
	free(recp);
	sync_ops(e);
	return rc;
}

static int gnupg_check(struct smp_crypto *c)
{
	struct gnupg_engine *e = eng(c);
	int r = smp_gpg_check_home(e->g);

	sync_ops(e);
	if (r < 0)
		smp_crypto_error(c, "%s", smp_gpg_errmsg(e->g));
	if (r == 1) {
		/* a new home holds none of the keys the cache remembers */
		while (c->cache.n)
			smp_crypto_cache_forget(c, c->cache.e[0].fpr);
	}
	return r;
}

const char *smp_crypto_home(const struct smp_crypto *c)
{
	if (!c || c->ops != &smp_crypto_gnupg_ops)
		return NULL;
	return smp_gpg_home(((const struct gnupg_engine *)c)->g);
}

const struct smp_crypto_ops smp_crypto_gnupg_ops = {
	.name = "gnupg",
	.open = gnupg_open,
	.close = gnupg_close,
	.inspect = gnupg_inspect,
	.clean = gnupg_clean,
	.encrypt = gnupg_encrypt,
	.evict = gnupg_evict,
	.check = gnupg_check,
};
