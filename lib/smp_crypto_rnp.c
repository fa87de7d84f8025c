/* smp_crypto_rnp.c - the "rnp" crypto engine: librnp (0.16), in process.
 *
 * An instance owns two librnp FFI objects, used by one thread at a time:
 *
 *   ffi       the key cache: the keys encrypted to, each imported once
 *             from the material the caller hands in and kept parsed until
 *             the LRU bookkeeping in smp_crypto.c evicts it (then it is
 *             removed from ffi) or the caller hands in other material for
 *             the same fingerprint (then it is removed and imported again).
 *   scratch   inspection and cleaning of untrusted key blocks: one block
 *             is imported, read and exported, and scratch is emptied
 *             again before the call returns, so nothing a sender sent
 *             ever meets the keys we encrypt to.
 *
 * Nothing is read from or written to disk; no process is started.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

#include "smp_crypto_backend.h"
#include "smp_packets.h"

struct rnp_engine {
	struct smp_crypto base;
	rnp_ffi_t ffi;
	rnp_ffi_t scratch;
	bool in_call;          /* evictions during an encryption wait */
	char (*deferred)[SMP_FPR_MAX];
	size_t ndeferred, capdeferred;
};

static struct rnp_engine *eng(struct smp_crypto *c)
{
	return (struct rnp_engine *)c;
}

static int rnp_fail(struct smp_crypto *c, const char *what, rnp_result_t r)
{
	return smp_crypto_error(c, "librnp %s failed: %s", what,
				rnp_result_to_string(r));
}

/* ------------------------------------------------------------------ */
/* Open, close                                                         */

static void rnp_close(struct smp_crypto *c)
{
	struct rnp_engine *e = eng(c);

	if (e->ffi)
		rnp_ffi_destroy(e->ffi);
	if (e->scratch)
		rnp_ffi_destroy(e->scratch);
	free(e->deferred);
	free(e);
}

static int rnp_open(const char *gnupg_home, struct smp_crypto **out, char *err,
		    size_t errlen)
{
	struct rnp_engine *e = calloc(1, sizeof(*e));
	rnp_result_t r;

	(void)gnupg_home;
	if (!e) {
		smp_crypto_seterr(err, errlen, "out of memory");
		return -1;
	}
	if ((r = rnp_ffi_create(&e->ffi, "GPG", "GPG")) != RNP_SUCCESS ||
	    (r = rnp_ffi_create(&e->scratch, "GPG", "GPG")) != RNP_SUCCESS) {
		smp_crypto_seterr(err, errlen, "librnp cannot start: %s",
				  rnp_result_to_string(r));
		rnp_close(&e->base);
		return -1;
	}
	*out = &e->base;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reading a key                                                        */

static void unload(rnp_ffi_t ffi)
{
	rnp_unload_keys(ffi, RNP_KEY_UNLOAD_PUBLIC | RNP_KEY_UNLOAD_SECRET);
}

/*
 * Imports data[0..len) (one transferable key, binary) into ffi.
 *
 * librnp reads its input as ASCII armor when "-----BEGIN PGP " comes
 * before the first NUL octet of its first kilobyte, and a binary key has
 * no NUL octet for a long way (an ed25519 key packet seldom has one): a
 * key whose user ID holds that text (a self-signed user ID can hold
 * anything) then failed to import, the key a merge had just made among
 * them (fuzz_merge, fuzz/crashes/merge-armor-text-in-uid). The first
 * packet is handed over with an old-format four-octet length instead,
 * whose first octets are 0.
 */
static rnp_result_t import(rnp_ffi_t ffi, const unsigned char *data,
			   size_t len, uint32_t flags)
{
	rnp_input_t in = NULL;
	rnp_result_t r;
	unsigned char *copy = NULL;
	struct smp_pkt_iter it;
	struct smp_packet p;

	smp_pkt_iter_init(&it, data, len);
	if (len && (data[0] & 0x80) && smp_pkt_next(&it, &p) == SMP_PKT_OK &&
	    !p.partial && !p.indeterminate && p.tag < 16 &&
	    p.body_len < ((size_t)1 << 24)) {
		size_t hl = (size_t)(p.first - data);

		copy = malloc(len - hl + 5);
		if (!copy)
			return RNP_ERROR_OUT_OF_MEMORY;
		copy[0] = (unsigned char)(0x80 | p.tag << 2 | 2);
		copy[1] = 0;
		copy[2] = (unsigned char)(p.body_len >> 16);
		copy[3] = (unsigned char)(p.body_len >> 8);
		copy[4] = (unsigned char)p.body_len;
		memcpy(copy + 5, data + hl, len - hl);
		data = copy;
		len = len - hl + 5;
	}
	r = rnp_input_from_memory(&in, data, len, false);
	if (r == RNP_SUCCESS)
		r = rnp_import_keys(ffi, in, flags | RNP_LOAD_SAVE_PERMISSIVE,
				    NULL);
	if (in)
		rnp_input_destroy(in);
	free(copy);
	return r;
}

/* The first primary key in ffi (scratch holds one key at a time). */
static rnp_key_handle_t first_primary(rnp_ffi_t ffi)
{
	rnp_identifier_iterator_t it = NULL;
	rnp_key_handle_t h = NULL;
	const char *id = NULL;

	if (rnp_identifier_iterator_create(ffi, &it, "fingerprint"))
		return NULL;
	while (!h && rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS &&
	       id) {
		rnp_key_handle_t k = NULL;
		bool primary = false;

		if (rnp_locate_key(ffi, "fingerprint", id, &k) || !k)
			continue;
		if (rnp_key_is_primary(k, &primary) == RNP_SUCCESS && primary)
			h = k;
		else
			rnp_key_handle_destroy(k);
	}
	rnp_identifier_iterator_destroy(it);
	return h;
}

static unsigned algo_number(const char *alg)
{
	static const struct {
		const char *name;
		unsigned n;
	} map[] = {
		{"RSA", SMP_PK_RSA},     {"DSA", SMP_PK_DSA},
		{"ELGAMAL", SMP_PK_ELG_E}, {"ECDH", SMP_PK_ECDH},
		{"ECDSA", SMP_PK_ECDSA}, {"EDDSA", SMP_PK_EDDSA},
	};

	for (size_t i = 0; alg && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(alg, map[i].name) == 0)
			return map[i].n;
	return 0;
}

static void copy_buf(char *dst, size_t size, char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
	if (src)
		rnp_buffer_destroy(src);
}

/* One key (primary or subkey) as librnp sees it. primary: the already
 * filled primary key (NULL for the primary itself). */
static void read_sub(rnp_key_handle_t h, const struct smp_key_sub *primary,
		     unsigned raw_algo, int64_t now, struct smp_key_sub *s)
{
	char *str = NULL, *curve = NULL;
	uint32_t u32 = 0;
	bool b = false;

	memset(s, 0, sizeof(*s));
	if (rnp_key_get_keyid(h, &str) == RNP_SUCCESS)
		copy_buf(s->keyid, sizeof(s->keyid), str);
	str = NULL;
	if (rnp_key_get_fprint(h, &str) == RNP_SUCCESS)
		copy_buf(s->fpr, sizeof(s->fpr), str);
	str = NULL;
	if (rnp_key_get_alg(h, &str) == RNP_SUCCESS) {
		s->pubkey_algo = algo_number(str);
		rnp_buffer_destroy(str);
	}
	if (raw_algo)
		s->pubkey_algo = raw_algo;
	if (rnp_key_get_bits(h, &u32) == RNP_SUCCESS)
		s->bits = u32;
	if (rnp_key_get_curve(h, &curve) != RNP_SUCCESS)
		curve = NULL;
	smp_crypto_algo_name(s->pubkey_algo, s->bits, curve, s->algo,
			     sizeof(s->algo));
	if (curve)
		rnp_buffer_destroy(curve);
	if (rnp_key_get_creation(h, &u32) == RNP_SUCCESS)
		s->created = u32;
	/* seconds after creation: the sum is taken in 64 bits */
	if (rnp_key_get_expiration(h, &u32) == RNP_SUCCESS && u32)
		s->expires = s->created + (int64_t)u32;
	s->expired = s->expires != 0 && s->expires <= now;
	if (rnp_key_is_revoked(h, &b) == RNP_SUCCESS)
		s->revoked = b;
	b = false;
	if (rnp_key_allows_usage(h, "encrypt", &b) == RNP_SUCCESS)
		s->can_encrypt = b;
	b = false;
	if (rnp_key_allows_usage(h, "sign", &b) == RNP_SUCCESS)
		s->can_sign = b;
	b = false;
	if (rnp_key_allows_usage(h, "certify", &b) == RNP_SUCCESS)
		s->can_certify = b;
	b = false;
	if (rnp_key_have_secret(h, &b) == RNP_SUCCESS)
		s->secret = b;
	/* librnp's validity includes expiry, revocation and, for a subkey,
	 * the primary key's state: "invalid" is what is left */
	b = false;
	if (rnp_key_is_valid(h, &b) != RNP_SUCCESS)
		b = false;
	s->invalid = !b && !s->expired && !s->revoked &&
		     !(primary && (primary->expired || primary->revoked ||
				   primary->invalid));
}

/* User IDs (not user attributes). 0, or -1 when out of memory. */
static int read_uids(rnp_key_handle_t h, struct smp_key_info *k)
{
	size_t n = 0;

	if (rnp_key_get_uid_count(h, &n) != RNP_SUCCESS || n == 0)
		return 0;
	k->uids = calloc(n, sizeof(*k->uids));
	if (!k->uids)
		return -1;
	for (size_t i = 0; i < n; i++) {
		rnp_uid_handle_t u = NULL;
		struct smp_key_uid *d;
		uint32_t type = 0;
		void *data = NULL;
		size_t dlen = 0;
		bool b = false;

		if (rnp_key_get_uid_handle_at(h, i, &u) != RNP_SUCCESS || !u)
			continue;
		if (rnp_uid_get_type(u, &type) != RNP_SUCCESS ||
		    type != RNP_USER_ID ||
		    rnp_uid_get_data(u, &data, &dlen) != RNP_SUCCESS ||
		    !data || memchr(data, '\0', dlen)) {
			if (data)
				rnp_buffer_destroy(data);
			rnp_uid_handle_destroy(u);
			continue;
		}
		d = &k->uids[k->nuids++];
		d->uid = strndup(data, dlen);
		rnp_buffer_destroy(data);
		d->email = d->uid ? smp_crypto_uid_email(d->uid) : NULL;
		if (rnp_uid_is_revoked(u, &b) == RNP_SUCCESS)
			d->revoked = b;
		b = false;
		if (rnp_uid_is_valid(u, &b) != RNP_SUCCESS)
			b = false;
		d->invalid = !b && !d->revoked;
		rnp_uid_handle_destroy(u);
		if (!d->uid || !d->email)
			return -1;
	}
	return 0;
}

/* Fills k from the primary key h of block b. 0 or -1. */
static int read_key(struct smp_crypto *c, rnp_key_handle_t h,
		    const struct smp_keyblock *b, struct smp_key_info *k)
{
	size_t nsub = 0;
	int64_t now = (int64_t)time(NULL);

	memset(k, 0, sizeof(*k));
	if (rnp_key_get_subkey_count(h, &nsub) != RNP_SUCCESS)
		nsub = 0;
	k->subkeys = calloc(nsub + 1, sizeof(*k->subkeys));
	if (!k->subkeys)
		return smp_crypto_error(c, "out of memory");
	read_sub(h, NULL, b->algo, now, &k->subkeys[0]);
	k->nsubkeys = 1;
	for (size_t i = 0; i < nsub; i++) {
		rnp_key_handle_t s = NULL;

		if (rnp_key_get_subkey_at(h, i, &s) != RNP_SUCCESS || !s)
			continue;
		read_sub(s, &k->subkeys[0], 0, now, &k->subkeys[k->nsubkeys++]);
		rnp_key_handle_destroy(s);
	}
	snprintf(k->fpr, sizeof(k->fpr), "%s", k->subkeys[0].fpr);
	k->version = b->version;
	k->secret = b->secret;
	if (read_uids(h, k) < 0)
		return smp_crypto_error(c, "out of memory");
	smp_crypto_info_finish(k);
	return 0;
}

static int rnp_inspect(struct smp_crypto *c, const unsigned char *data,
		       size_t len, const struct smp_keyblock *blocks,
		       size_t nblocks, struct smp_key_info **keys, size_t *n)
{
	struct rnp_engine *e = eng(c);
	struct smp_key_info *v = calloc(nblocks ? nblocks : 1, sizeof(*v));
	size_t cnt = 0;
	int rc = -1;

	(void)len;
	*keys = NULL;
	*n = 0;
	if (!v)
		return smp_crypto_error(c, "out of memory");
	for (size_t i = 0; i < nblocks; i++) {
		const struct smp_keyblock *b = &blocks[i];
		rnp_key_handle_t h = NULL;
		rnp_result_t r;
		int k;

		if (b->version < 4) {
			smp_crypto_error(c, "a version %u key is not "
					 "accepted", b->version);
			continue;
		}
		r = import(e->scratch, data + b->off, b->len,
			   RNP_LOAD_SAVE_PUBLIC_KEYS |
				   RNP_LOAD_SAVE_SECRET_KEYS);
		if (r != RNP_SUCCESS) {
			rnp_fail(c, "key import", r);
			unload(e->scratch);
			continue;
		}
		h = first_primary(e->scratch);
		if (!h) {
			smp_crypto_error(c, "librnp found no primary key in "
					 "the key block");
			unload(e->scratch);
			continue;
		}
		k = read_key(c, h, b, &v[cnt]);
		rnp_key_handle_destroy(h);
		unload(e->scratch);
		if (k < 0) {
			smp_key_info_clear(&v[cnt]);
			goto out;
		}
		if (k > 0) {
			smp_key_info_clear(&v[cnt]);
			continue;
		}
		v[cnt++].block = i;
	}
	rc = 0;
out:
	if (rc) {
		smp_key_infos_free(v, cnt);
		return -1;
	}
	*keys = v;
	*n = cnt;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Cleaning (minimal key)                                              */

static int rnp_clean(struct smp_crypto *c, const unsigned char *block,
		     size_t len, const char *fpr, const char *encfpr,
		     const char *address, unsigned char **out, size_t *outlen,
		     struct smp_key_info *info)
{
	struct rnp_engine *e = eng(c);
	struct smp_keyblock *kb = NULL;
	size_t nkb = 0;
	rnp_key_handle_t h = NULL;
	rnp_output_t o = NULL;
	uint8_t *buf = NULL;
	size_t blen = 0;
	rnp_result_t r;
	int rc = -1;

	(void)encfpr;
	(void)address;
	*out = NULL;
	*outlen = 0;
	/* one import per copy of the key (librnp merges them): librnp
	 * looks for ASCII armor again where each key starts (see import) */
	if (smp_keyblock_split(block, len, &kb, &nkb) != 0) {
		free(kb);
		kb = NULL;
		nkb = 0;
	}
	r = RNP_SUCCESS;
	for (size_t i = 0; i < nkb && r == RNP_SUCCESS; i++)
		r = import(e->scratch, block + kb[i].off, kb[i].len,
			   RNP_LOAD_SAVE_PUBLIC_KEYS);
	if (nkb == 0)
		r = import(e->scratch, block, len, RNP_LOAD_SAVE_PUBLIC_KEYS);
	if (r != RNP_SUCCESS) {
		rnp_fail(c, "key import", r);
		rc = 1;
		goto out;
	}
	r = rnp_locate_key(e->scratch, "fingerprint", fpr, &h);
	if (r != RNP_SUCCESS || !h) {
		smp_crypto_error(c, "librnp did not find key %s in its block",
				 fpr);
		rc = 1;
		goto out;
	}
	/* third-party certifications (CVE-2019-13050) and signatures that
	 * do not verify go; the key's, its user IDs' and its subkeys'
	 * valid self-signatures stay */
	r = rnp_key_remove_signatures(h,
				      RNP_KEY_SIGNATURE_NON_SELF_SIG |
					      RNP_KEY_SIGNATURE_UNKNOWN_KEY |
					      RNP_KEY_SIGNATURE_INVALID,
				      NULL, NULL);
	if (r != RNP_SUCCESS) {
		rnp_fail(c, "signature removal", r);
		goto out;
	}
	if ((r = rnp_output_to_memory(&o, 0)) != RNP_SUCCESS ||
	    (r = rnp_key_export(h, o, RNP_KEY_EXPORT_PUBLIC |
					      RNP_KEY_EXPORT_SUBKEYS)) !=
		    RNP_SUCCESS ||
	    (r = rnp_output_memory_get_buf(o, &buf, &blen, false)) !=
		    RNP_SUCCESS) {
		rnp_fail(c, "key export", r);
		goto out;
	}
	*out = malloc(blen ? blen : 1);
	if (!*out) {
		smp_crypto_error(c, "out of memory");
		goto out;
	}
	memcpy(*out, buf, blen);
	*outlen = blen;
	/* the key as it now is, its signatures verified by the removal
	 * above: read without importing it again */
	if (info && nkb > 0 && read_key(c, h, &kb[0], info) != 0) {
		free(*out);
		*out = NULL;
		*outlen = 0;
		goto out;
	}
	rc = 0;
out:
	free(kb);
	if (h)
		rnp_key_handle_destroy(h);
	if (o)
		rnp_output_destroy(o);
	unload(e->scratch);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The key cache                                                        */

static void remove_key(rnp_ffi_t ffi, const char *fpr)
{
	rnp_key_handle_t h = NULL;

	if (rnp_locate_key(ffi, "fingerprint", fpr, &h) == RNP_SUCCESS && h) {
		rnp_key_remove(h, RNP_KEY_REMOVE_PUBLIC |
					  RNP_KEY_REMOVE_SECRET |
					  RNP_KEY_REMOVE_SUBKEYS);
		rnp_key_handle_destroy(h);
	}
}

static void rnp_evict(struct smp_crypto *c, const char *fpr)
{
	struct rnp_engine *e = eng(c);

	/* a key an encryption in progress holds stays until it is done */
	if (e->in_call) {
		if (e->ndeferred == e->capdeferred) {
			size_t nc = e->capdeferred ? e->capdeferred * 2 : 8;
			char(*nd)[SMP_FPR_MAX] =
				realloc(e->deferred, nc * sizeof(*nd));
			if (!nd) {
				remove_key(e->ffi, fpr);
				return;
			}
			e->deferred = nd;
			e->capdeferred = nc;
		}
		snprintf(e->deferred[e->ndeferred++], SMP_FPR_MAX, "%s", fpr);
		return;
	}
	remove_key(e->ffi, fpr);
}

/* Removes the deferred evictions, except keys the cache holds again. */
static void flush_deferred(struct rnp_engine *e)
{
	for (size_t i = 0; i < e->ndeferred; i++) {
		bool back = false;
		for (size_t j = 0; j < e->base.cache.n && !back; j++)
			back = strcmp(e->base.cache.e[j].fpr,
				      e->deferred[i]) == 0;
		if (!back)
			remove_key(e->ffi, e->deferred[i]);
	}
	e->ndeferred = 0;
}

/* The handle of key k in ffi, imported (again) when the cache does not
 * hold it from this very material. NULL with why set when refused; -1 in
 * *fatal on an error. */
static rnp_key_handle_t load_key(struct rnp_engine *e,
				 const struct smp_crypto_kbin *k,
				 const char **why, int *fatal)
{
	struct smp_crypto *c = &e->base;
	rnp_key_handle_t h = NULL;
	int st = smp_crypto_cache_lookup(c, k->fpr, k->material, k->len);

	if (st == 1 &&
	    rnp_locate_key(e->ffi, "fingerprint", k->fpr, &h) == RNP_SUCCESS &&
	    h) {
		c->st.cache_hits++;
		return h;
	}
	c->st.cache_misses++;
	remove_key(e->ffi, k->fpr);
	smp_crypto_cache_forget(c, k->fpr);
	if (import(e->ffi, k->material, k->len, RNP_LOAD_SAVE_PUBLIC_KEYS) !=
		    RNP_SUCCESS ||
	    rnp_locate_key(e->ffi, "fingerprint", k->fpr, &h) != RNP_SUCCESS ||
	    !h) {
		remove_key(e->ffi, k->fpr);
		*why = "librnp cannot read its key material";
		return NULL;
	}
	if (smp_crypto_cache_put(c, k->fpr, k->material, k->len)) {
		rnp_key_handle_destroy(h);
		remove_key(e->ffi, k->fpr);
		smp_crypto_error(c, "out of memory");
		*fatal = -1;
		return NULL;
	}
	return h;
}

/* Why librnp has no encryption key in h: revoked, expired, or none. */
static const char *unusable_why(rnp_key_handle_t h)
{
	uint32_t created = 0, exp = 0;
	bool b = false;

	if (rnp_key_is_revoked(h, &b) == RNP_SUCCESS && b)
		return "revoked";
	if (rnp_key_get_creation(h, &created) == RNP_SUCCESS &&
	    rnp_key_get_expiration(h, &exp) == RNP_SUCCESS && exp &&
	    (int64_t)created + exp <= (int64_t)time(NULL))
		return "expired";
	return "no usable encryption key: expired, revoked or none";
}

/* ------------------------------------------------------------------ */
/* Encryption                                                          */

static int rnp_encrypt(struct smp_crypto *c, const unsigned char *payload,
		       size_t len, const struct smp_crypto_kbin *keys,
		       size_t nkeys, char **out, size_t *outlen, char *err,
		       size_t errlen)
{
	struct rnp_engine *e = eng(c);
	rnp_key_handle_t *h = calloc(nkeys, sizeof(*h));
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_encrypt_t op = NULL;
	char refused[1024] = "";
	uint8_t *buf = NULL;
	size_t blen = 0, rl;
	rnp_result_t r;
	int rc = -1, fatal = 0;

	if (!h) {
		smp_crypto_seterr(err, errlen, "out of memory");
		return -1;
	}
	e->in_call = true;
	for (size_t i = 0; i < nkeys; i++) {
		const char *why = NULL;
		rnp_key_handle_t sub = NULL;

		h[i] = load_key(e, &keys[i], &why, &fatal);
		if (fatal) {
			smp_crypto_seterr(err, errlen, "%s", c->errmsg);
			goto out;
		}
		if (h[i] &&
		    rnp_key_get_default_key(h[i], "encrypt", 0, &sub) ==
			    RNP_SUCCESS &&
		    sub) {
			rnp_key_handle_destroy(sub);
			continue;
		}
		if (h[i])
			why = unusable_why(h[i]);
		rl = strlen(refused);
		snprintf(refused + rl, sizeof(refused) - rl, "%s%s (%s)",
			 rl ? ", " : "", keys[i].fpr, why);
	}
	if (refused[0]) {
		smp_crypto_seterr(err, errlen, "refused keys: %s", refused);
		rc = 1;
		goto out;
	}
	if ((r = rnp_input_from_memory(&in, payload, len, false)) ||
	    (r = rnp_output_to_memory(&o, 0)) ||
	    (r = rnp_op_encrypt_create(&op, e->ffi, in, o)) ||
	    (r = rnp_op_encrypt_set_armor(op, true)) ||
	    (r = rnp_op_encrypt_set_cipher(op, "AES256")) ||
	    (r = rnp_op_encrypt_set_aead(op, "None")) ||
	    (r = rnp_op_encrypt_set_compression(op, "Uncompressed", 0))) {
		smp_crypto_seterr(err, errlen, "librnp encryption setup "
				  "failed: %s", rnp_result_to_string(r));
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if ((r = rnp_op_encrypt_add_recipient(op, h[i]))) {
			smp_crypto_seterr(err, errlen, "librnp refused key %s "
					  "as a recipient: %s", keys[i].fpr,
					  rnp_result_to_string(r));
			rc = 1;
			goto out;
		}
	}
	if ((r = rnp_op_encrypt_execute(op)) ||
	    (r = rnp_output_memory_get_buf(o, &buf, &blen, false))) {
		smp_crypto_seterr(err, errlen, "librnp encryption failed: %s",
				  rnp_result_to_string(r));
		goto out;
	}
	*out = malloc(blen + 1);
	if (!*out) {
		smp_crypto_seterr(err, errlen, "out of memory");
		goto out;
	}
	memcpy(*out, buf, blen);
	(*out)[blen] = '\0';
	*outlen = blen;
	rc = 0;
out:
	if (op)
		rnp_op_encrypt_destroy(op);
	if (in)
		rnp_input_destroy(in);
	if (o)
		rnp_output_destroy(o);
	for (size_t i = 0; i < nkeys; i++)
		if (h[i])
			rnp_key_handle_destroy(h[i]);
	free(h);
	e->in_call = false;
	flush_deferred(e);
	return rc;
}

const struct smp_crypto_ops smp_crypto_rnp_ops = {
	.name = "rnp",
	.open = rnp_open,
	.close = rnp_close,
	.inspect = rnp_inspect,
	.clean = rnp_clean,
	.encrypt = rnp_encrypt,
	.evict = rnp_evict,
};
