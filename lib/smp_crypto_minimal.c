/* smp_crypto_minimal.c - the minimal key and the merge, engine-neutral:
 * smp_crypto_minimal (one user ID for the address and one encryption key,
 * nothing else) and smp_crypto_merge (a stored key and an update into one
 * block with only the user IDs that may be kept), and the choice of that
 * user ID and encryption key.
 *
 * Separate from smp_crypto.c (argument checks, dearmoring, splitting,
 * inspection, encryption, the key cache, dispatch): this file decides
 * what a stored key is cut down to. The engines only clean a block for it
 * (ops->clean); the packets are cut by smp_crypto_filter.c, the same for
 * both engines. See smp_crypto.h.
 */
#include "smp_crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_crypto_backend.h"
#include "smp_crypto_int.h"
#include "smp_gpg.h"
#include "smp_packets.h"

/* ------------------------------------------------------------------ */
/* Minimal key                                                         */

static bool usable_enc(const struct smp_key_sub *s)
{
	return s->can_encrypt && !s->expired && !s->revoked && !s->invalid;
}

/* The newest usable encryption subkey (the first of equals), else the
 * primary key when it can encrypt; NULL when none. */
static const struct smp_key_sub *pick_enc(const struct smp_key_info *k)
{
	const struct smp_key_sub *best = NULL;

	for (size_t i = 1; i < k->nsubkeys; i++) {
		const struct smp_key_sub *s = &k->subkeys[i];
		if (usable_enc(s) && (!best || s->created > best->created))
			best = s;
	}
	if (!best && k->nsubkeys && usable_enc(&k->subkeys[0]))
		best = &k->subkeys[0];
	return best;
}

/* The first valid, unrevoked user ID whose email is addr (normalised). */
static const struct smp_key_uid *pick_uid(const struct smp_key_info *k,
					  const char *addr)
{
	for (size_t i = 0; i < k->nuids; i++) {
		const struct smp_key_uid *u = &k->uids[i];
		char *a;
		bool same;

		if (u->revoked || u->invalid)
			continue;
		a = smp_address_normalize(u->email);
		same = a && strcmp(a, addr) == 0;
		free(a);
		if (same)
			return u;
	}
	return NULL;
}

int smp_crypto_minimal(struct smp_crypto *c, const void *keyblock, size_t len,
		       const char *address, void **out, size_t *outlen)
{
	const unsigned char *bin;
	unsigned char *owned = NULL, *clean = NULL, *res = NULL, *norm = NULL;
	struct smp_keyblock *blocks = NULL, b0;
	struct smp_key_info k, k2;
	const struct smp_key_uid *u;
	const struct smp_key_sub *e;
	char *addr = NULL, encfpr[SMP_FPR_MAX];
	size_t blen, nblocks = 0, clen = 0, rlen = 0, nlen = 0;
	bool kept_uid, kept_sub;
	int rc;

	memset(&k, 0, sizeof(k));
	memset(&k2, 0, sizeof(k2));
	if (out)
		*out = NULL;
	if (outlen)
		*outlen = 0;
	if (!c || !out || !outlen)
		return -1;
	c->errmsg[0] = '\0';
	addr = smp_address_normalize(address ? address : "");
	if (!addr) {
		smp_crypto_error(c, "'%.80s' is not an address",
				 address ? address : "");
		return 1;
	}
	rc = smp_crypto_to_binary(c, keyblock, len, &bin, &blen, &owned);
	if (rc == 0)
		rc = smp_crypto_split(c, bin, blen, &blocks, &nblocks);
	if (rc)
		goto out;
	if (blocks[0].secret) {
		rc = 1;
		smp_crypto_error(c, "the key block holds secret key material");
		goto out;
	}
	/* each user ID and subkey once (see smp_crypto_filter_keep) */
	if (smp_crypto_dedup_key(bin + blocks[0].off, blocks[0].len, &norm,
				 &nlen)) {
		rc = smp_crypto_error(c, "out of memory");
		goto out;
	}
	b0 = blocks[0];
	b0.off = 0;
	b0.len = nlen;
	rc = smp_crypto_inspect_first(c, norm, nlen, &b0, &k);
	if (rc)
		goto out;
	rc = 1;
	u = pick_uid(&k, addr);
	if (!u) {
		smp_crypto_error(c, "key %s has no valid user ID for %.200s",
				 k.fpr, addr);
		goto out;
	}
	e = pick_enc(&k);
	if (!e) {
		smp_crypto_error(c, "key %s has no usable encryption key "
				 "(expired, revoked or none)", k.fpr);
		goto out;
	}
	snprintf(encfpr, sizeof(encfpr), "%s", e->fpr);
	rc = c->ops->clean(c, norm, nlen, k.fpr,
			   e == &k.subkeys[0] ? NULL : encfpr, addr, &clean,
			   &clen, NULL);
	if (rc)
		goto out;
	if (smp_crypto_filter_minimal(clean, clen, u->uid,
				      e == &k.subkeys[0] ? NULL : encfpr, &res,
				      &rlen, &kept_uid, &kept_sub)) {
		rc = smp_crypto_error(c, "out of memory");
		goto out;
	}
	rc = 1;
	if (!kept_uid || (e != &k.subkeys[0] && !kept_sub)) {
		smp_crypto_error(c, "the %s engine dropped the user ID or the "
				 "encryption subkey of key %s while cleaning "
				 "it", c->ops->name, k.fpr);
		goto out;
	}
	/* what is left must still be the same, usable key */
	rc = smp_crypto_inspect(c, res, rlen, &k2);
	if (rc)
		goto out;
	rc = 1;
	if (strcmp(k2.fpr, k.fpr) != 0 || !k2.can_encrypt || k2.nuids != 1) {
		smp_crypto_error(c, "the minimal form of key %s is not usable",
				 k.fpr);
		goto out;
	}
	*out = res;
	*outlen = rlen;
	res = NULL;
	rc = 0;
out:
	smp_key_info_clear(&k);
	smp_key_info_clear(&k2);
	free(res);
	free(clean);
	free(norm);
	free(blocks);
	free(owned);
	free(addr);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Merge                                                               */

/* Appends v to a growing list; -1 when out of memory. */
static int strv_add(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -1;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

/* The fingerprints of the subkey packets of one transferable key, into
 * subs[0..*n) (at most max). */
static void subkey_fprs(const unsigned char *blk, size_t len,
			char (*subs)[SMP_FPR_MAX], size_t max, size_t *n)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	bool seen_primary = false;

	*n = 0;
	smp_pkt_iter_init(&it, blk, len);
	while (*n < max && smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		if (pkt.tag == SMP_TAG_PUBLIC_KEY) {
			if (seen_primary)
				return;
			seen_primary = true;
		} else if (pkt.tag == SMP_TAG_PUBLIC_SUBKEY) {
			smp_pkt_key_fpr(pkt.first, pkt.body_len, subs[*n]);
			if (subs[*n][0])
				(*n)++;
		}
	}
}

/* Is the email of user ID uid the normalised address addr? */
static bool uid_is(const char *uid, const char *addr)
{
	char *e = smp_crypto_uid_email(uid), *a = NULL;
	bool same;

	if (e)
		a = smp_address_normalize(e);
	same = a && strcmp(a, addr) == 0;
	free(e);
	free(a);
	return same;
}

#define MERGE_MAX_SUBS 64

/* Is every user ID k lists among keep[0..n)? */
static bool nkeep_all_listed(const struct smp_key_info *k,
			     const char *const *keep, size_t n)
{
	for (size_t i = 0; i < k->nuids; i++) {
		bool in = false;
		for (size_t j = 0; j < n && !in; j++)
			in = strcmp(k->uids[i].uid, keep[j]) == 0;
		if (!in)
			return false;
	}
	return true;
}

/* k with only the primary key and the subkeys subs[0..n) into *out. */
static int prune_info(struct smp_crypto *c, const struct smp_key_info *k,
		      const char *const *subs, size_t n,
		      struct smp_key_info *out)
{
	*out = *k;
	out->uids = calloc(k->nuids + 1, sizeof(*out->uids));
	out->subkeys = calloc(k->nsubkeys + 1, sizeof(*out->subkeys));
	out->nuids = 0;
	out->nsubkeys = 0;
	if (!out->uids || !out->subkeys)
		goto nomem;
	for (size_t i = 0; i < k->nuids; i++) {
		struct smp_key_uid *u = &out->uids[out->nuids++];
		*u = k->uids[i];
		u->uid = strdup(k->uids[i].uid);
		u->email = strdup(k->uids[i].email);
		if (!u->uid || !u->email)
			goto nomem;
	}
	for (size_t i = 0; i < k->nsubkeys; i++) {
		bool in = i == 0;
		for (size_t j = 0; j < n && !in; j++)
			in = strcmp(k->subkeys[i].fpr, subs[j]) == 0;
		if (in)
			out->subkeys[out->nsubkeys++] = k->subkeys[i];
	}
	out->secret = false;
	smp_crypto_info_finish(out);
	out->block = 0;
	return 0;
nomem:
	smp_key_info_clear(out);
	return smp_crypto_error(c, "out of memory");
}

int smp_crypto_merge(struct smp_crypto *c, const void *stored, size_t slen,
		     const void *update, size_t ulen, const char *address,
		     void **out, size_t *outlen, struct smp_key_info *info)
{
	const unsigned char *sbin = NULL, *ubin = NULL;
	unsigned char *sowned = NULL, *uowned = NULL, *in = NULL;
	unsigned char *clean = NULL, *res = NULL, *part = NULL;
	struct smp_keyblock *sb = NULL, *ub = NULL, *cb = NULL;
	struct smp_key_info k, k2;
	char **suids = NULL, **uuids = NULL, *addr = NULL;
	const char **keep = NULL, **subs = NULL;
	char fpr[SMP_FPR_MAX], encfpr[SMP_FPR_MAX];
	char (*ssubs)[SMP_FPR_MAX] = NULL;
	size_t sblen = 0, ublen = 0, nsb = 0, nub = 0, nsuids = 0, nuuids = 0;
	size_t inlen = 0, clen = 0, rlen = 0, plen = 0, nkeep = 0, nsubs = 0;
	size_t nssubs = 0, ku = 0, ks = 0, ncb = 0, ncopies = 0;
	const struct smp_key_sub *e;
	int rc;

	memset(&k, 0, sizeof(k));
	memset(&k2, 0, sizeof(k2));
	if (out)
		*out = NULL;
	if (outlen)
		*outlen = 0;
	if (info)
		memset(info, 0, sizeof(*info));
	if (!c || !out || !outlen)
		return -1;
	c->errmsg[0] = '\0';
	if (address) {
		addr = smp_address_normalize(address);
		if (!addr) {
			smp_crypto_error(c, "'%.80s' is not an address",
					 address);
			return 1;
		}
	}
	/* the inputs, binary and split; the key is the stored one's, or the
	 * first of the update */
	rc = 0;
	if (stored && slen) {
		rc = smp_crypto_to_binary(c, stored, slen, &sbin, &sblen,
					  &sowned);
		if (rc == 0)
			rc = smp_crypto_split(c, sbin, sblen, &sb, &nsb);
	}
	if (rc == 0)
		rc = smp_crypto_to_binary(c, update, ulen, &ubin, &ublen,
					  &uowned);
	if (rc == 0)
		rc = smp_crypto_split(c, ubin, ublen, &ub, &nub);
	if (rc)
		goto out;
	rc = 1;
	snprintf(fpr, sizeof(fpr), "%s", nsb ? sb[0].fpr : ub[0].fpr);
	if ((nsb && sb[0].secret) || !fpr[0]) {
		smp_crypto_error(c, "%s", nsb && sb[0].secret ?
				 "the stored key holds secret key material" :
				 "a version 2 or 3 key is not accepted");
		goto out;
	}
	if (nsb && smp_keyblock_uids(sbin + sb[0].off, sb[0].len, &suids,
				     &nsuids))
		goto nomem;
	ssubs = calloc(MERGE_MAX_SUBS, sizeof(*ssubs));
	in = malloc(sblen + ublen + 1);
	if (!ssubs || !in)
		goto nomem;
	if (nsb) {
		subkey_fprs(sbin + sb[0].off, sb[0].len, ssubs, MERGE_MAX_SUBS,
			    &nssubs);
		/* only the user IDs that can be kept (a user ID with a NUL
		 * in it cannot): librnp checks a signature found under two
		 * user IDs against one of them only, so what the result no
		 * longer holds changed what it held
		 * (smp_crypto_filter_keep) */
		if (smp_crypto_filter_keep(sbin + sb[0].off, sb[0].len,
					   (const char *const *)suids, nsuids,
					   NULL, 0, FK_ALL_SUBS, &part, &plen,
					   &ku, &ks))
			goto nomem;
		memcpy(in, part, plen);
		inlen = plen;
		free(part);
		part = NULL;
	}
	/* every copy of the key in the update, with only the user IDs that
	 * may be kept (the stored ones, the address's): nothing else is
	 * handed to the engine */
	for (size_t i = 0; i < nub; i++) {
		const unsigned char *blk = ubin + ub[i].off;
		size_t nk = 0;

		if (strcmp(ub[i].fpr, fpr) != 0)
			continue;
		if (ub[i].secret) {
			smp_crypto_error(c, "the key block holds secret key "
					 "material");
			goto out;
		}
		if (smp_keyblock_uids(blk, ub[i].len, &uuids, &nuuids))
			goto nomem;
		free(keep);
		keep = calloc(nuuids + nsuids + 1, sizeof(*keep));
		if (!keep)
			goto nomem;
		for (size_t u = 0; u < nuuids; u++) {
			bool mine = addr && uid_is(uuids[u], addr);
			for (size_t j = 0; !mine && j < nsuids; j++)
				mine = strcmp(uuids[u], suids[j]) == 0;
			if (mine)
				keep[nk++] = uuids[u];
		}
		if (nk && smp_keyblock_filter(blk, ub[i].len, keep, nk, &part,
					      &plen, NULL)) {
			if (errno == ENOMEM)
				goto nomem;
			nk = 0;
		}
		if (nk) {
			memcpy(in + inlen, part, plen);
			inlen += plen;
			ncopies++;
		}
		free(part);
		part = NULL;
		smp_strv_free(uuids, nuuids);
		uuids = NULL;
		nuuids = 0;
	}
	free(keep);
	keep = NULL;
	if (inlen == 0) {
		smp_crypto_error(c, "no copy of key %s with a user ID for "
				 "%.200s", fpr, addr ? addr : "the address");
		goto out;
	}
	/* the union of every copy, made here (one key, each user ID and
	 * subkey once: see smp_crypto_filter_keep), then self-signatures
	 * only (the engine; no address: a merge of several copies; one copy
	 * and nothing stored is cleaned as smp_crypto_minimal does, which
	 * the gnupg engine does without its GnuPG home's older copies) */
	if (smp_crypto_filter_keep(in, inlen, NULL, 0, NULL, 0,
				   FK_ALL_UIDS | FK_ALL_SUBS | FK_COPIES, &part,
				   &plen, &ku, &ks))
		goto nomem;
	free(in);
	in = part;
	inlen = plen;
	part = NULL;
	rc = c->ops->clean(c, in, inlen, fpr, NULL,
			   nsb || ncopies > 1 ? NULL : addr, &clean, &clen, &k);
	if (rc)
		goto out;
	if (!k.fpr[0]) {
		rc = smp_crypto_split(c, clean, clen, &cb, &ncb);
		if (rc == 0)
			rc = smp_crypto_inspect_first(c, clean, clen, &cb[0],
						      &k);
		if (rc)
			goto out;
	} else if (!smp_crypto_has_good_uid(&k)) {
		rc = 1;
		smp_crypto_error(c, "key %s has no validly self-signed user "
				 "ID", k.fpr);
		goto out;
	}
	rc = 1;
	if (strcmp(k.fpr, fpr) != 0) {
		smp_crypto_error(c, "the %s engine gave another key than %s",
				 c->ops->name, fpr);
		goto out;
	}
	/* user IDs: the stored ones, and the address's first valid one */
	for (size_t j = 0; j < nsuids; j++)
		if (strv_add(&keep, &nkeep, suids[j]))
			goto nomem;
	if (addr) {
		const struct smp_key_uid *u = pick_uid(&k, addr);
		bool have = false;

		if (!u) {
			smp_crypto_error(c, "key %s has no valid user ID for "
					 "%.200s", fpr, addr);
			goto out;
		}
		for (size_t j = 0; j < nkeep && !have; j++)
			have = strcmp(keep[j], u->uid) == 0;
		if (!have && strv_add(&keep, &nkeep, u->uid))
			goto nomem;
	}
	if (nkeep == 0) {
		smp_crypto_error(c, "key %s: no user ID to keep", fpr);
		goto out;
	}
	/* the encryption key: the newest usable one of the union (as the
	 * minimal key has it); none usable (revoked, expired): the stored
	 * key's subkeys, so that what revokes them is kept with them */
	e = pick_enc(&k);
	if (e && e != &k.subkeys[0]) {
		snprintf(encfpr, sizeof(encfpr), "%s", e->fpr);
		subs = calloc(1, sizeof(*subs));
		if (!subs)
			goto nomem;
		subs[nsubs++] = encfpr;
	} else if (!e && nsb) {
		subs = calloc(nssubs + 1, sizeof(*subs));
		if (!subs)
			goto nomem;
		for (size_t j = 0; j < nssubs; j++)
			subs[nsubs++] = ssubs[j];
	} else if (!e) {
		/* nothing stored, nothing usable: every subkey, for the
		 * caller to judge (a signing-only key an admin imports) */
		subs = calloc(k.nsubkeys + 1, sizeof(*subs));
		if (!subs)
			goto nomem;
		for (size_t j = 1; j < k.nsubkeys; j++)
			subs[nsubs++] = k.subkeys[j].fpr;
	}
	if (smp_crypto_filter_keep(clean, clen, keep, nkeep, subs, nsubs, 0,
				   &res, &rlen, &ku, &ks))
		goto nomem;
	if (ku == 0 || ks < (e ? nsubs : 0)) {
		smp_crypto_error(c, "the %s engine dropped the user ID or the "
				 "encryption subkey of key %s while merging "
				 "it", c->ops->name, fpr);
		goto out;
	}
	/* what is left must still be the same key: parsed again, unless
	 * only subkeys were cut (every user ID, so the primary key's
	 * self-signatures, stayed): then it is the listing of the union
	 * without them */
	if (ku == k.nuids && nkeep_all_listed(&k, keep, nkeep))
		rc = prune_info(c, &k, subs, nsubs, &k2);
	else
		rc = smp_crypto_inspect(c, res, rlen, &k2);
	if (rc)
		goto out;
	rc = 1;
	if (strcmp(k2.fpr, fpr) != 0 || k2.nuids == 0) {
		smp_crypto_error(c, "the merged form of key %s is not a key",
				 fpr);
		goto out;
	}
	*out = res;
	*outlen = rlen;
	res = NULL;
	if (info) {
		*info = k2;
		memset(&k2, 0, sizeof(k2));
	}
	rc = 0;
	goto out;
nomem:
	rc = smp_crypto_error(c, "out of memory");
out:
	smp_key_info_clear(&k);
	smp_key_info_clear(&k2);
	smp_strv_free(suids, nsuids);
	smp_strv_free(uuids, nuuids);
	free(keep);
	free(subs);
	free(ssubs);
	free(part);
	free(res);
	free(clean);
	free(in);
	free(sb);
	free(ub);
	free(cb);
	free(sowned);
	free(uowned);
	free(addr);
	return rc;
}
