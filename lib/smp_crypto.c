/* smp_crypto.c - the engine-neutral half of the crypto interface: argument
 * checks, dearmoring and splitting key blocks, inspection, encryption, the
 * key cache (LRU) and dispatch to the engine modules. The rest of that
 * half: smp_crypto_minimal.c (the minimal key and the merge: which user ID
 * and encryption key are kept) and smp_crypto_filter.c (the packet filter
 * that keeps them). See smp_crypto.h and smp_crypto_backend.h. */
#include "smp_crypto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "smp_armor.h"
#include "smp_crypto_backend.h"
#include "smp_crypto_int.h"
#include "smp_gpg.h"
#include "smp_packets.h"

static const struct smp_crypto_ops *const engines[] = {
	&smp_crypto_rnp_ops,
	&smp_crypto_gnupg_ops,
};

_Static_assert(SMP_PKT_FPR_MAX == SMP_FPR_MAX, "one fingerprint size");

#define N_ENGINES (sizeof(engines) / sizeof(engines[0]))

/* ------------------------------------------------------------------ */
/* Errors                                                              */

int smp_crypto_error(struct smp_crypto *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return -1;
}

void smp_crypto_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *smp_crypto_errmsg(const struct smp_crypto *c)
{
	if (!c)
		return "no crypto engine";
	return c->errmsg[0] ? c->errmsg : "no error";
}

/* ------------------------------------------------------------------ */
/* Open, close                                                         */

bool smp_crypto_engine_known(const char *name)
{
	for (size_t i = 0; name && i < N_ENGINES; i++)
		if (strcmp(name, engines[i]->name) == 0)
			return true;
	return false;
}

int smp_crypto_open(const char *engine, const char *gnupg_home,
		    struct smp_crypto **out, char *err, size_t errlen)
{
	const struct smp_crypto_ops *ops = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!out || !err || errlen == 0)
		return -1;
	err[0] = '\0';
	if (!engine || !*engine)
		engine = SMP_CRYPTO_ENGINE_DEFAULT;
	for (size_t i = 0; i < N_ENGINES; i++)
		if (strcmp(engine, engines[i]->name) == 0)
			ops = engines[i];
	if (!ops) {
		snprintf(err, errlen, "unknown crypto engine '%.64s' (this "
			 "build has: rnp, gnupg)", engine);
		return -1;
	}
	rc = ops->open(gnupg_home, out, err, errlen);
	if (rc == 0) {
		(*out)->ops = ops;
		(*out)->cache.max = SMP_CRYPTO_CACHE_DEFAULT;
		(*out)->st.cache_max = SMP_CRYPTO_CACHE_DEFAULT;
	}
	return rc;
}

static void cache_free(struct smp_crypto_cache *ca)
{
	for (size_t i = 0; i < ca->n; i++)
		free(ca->e[i].material);
	free(ca->e);
	memset(ca, 0, sizeof(*ca));
}

void smp_crypto_close(struct smp_crypto *c)
{
	struct smp_crypto_cache ca;

	if (!c)
		return;
	ca = c->cache;
	c->ops->close(c);
	cache_free(&ca);
}

const char *smp_crypto_engine_name(const struct smp_crypto *c)
{
	return c ? c->ops->name : NULL;
}

void smp_crypto_get_stats(const struct smp_crypto *c,
			  struct smp_crypto_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!c)
		return;
	*st = c->st;
	st->cached = c->cache.n;
	st->cache_max = c->cache.max;
}

int smp_crypto_check(struct smp_crypto *c)
{
	if (!c)
		return -1;
	return c->ops->check ? c->ops->check(c) : 0;
}

/* ------------------------------------------------------------------ */
/* Cache (LRU by fingerprint)                                          */

static struct smp_crypto_cache_entry *cache_find(struct smp_crypto *c,
						 const char *fpr)
{
	for (size_t i = 0; i < c->cache.n; i++)
		if (strcmp(c->cache.e[i].fpr, fpr) == 0)
			return &c->cache.e[i];
	return NULL;
}

static void cache_drop(struct smp_crypto *c, size_t i, bool evict)
{
	struct smp_crypto_cache *ca = &c->cache;
	char fpr[SMP_FPR_MAX];

	memcpy(fpr, ca->e[i].fpr, sizeof(fpr));
	free(ca->e[i].material);
	ca->e[i] = ca->e[--ca->n];
	if (evict) {
		c->st.cache_evictions++;
		c->ops->evict(c, fpr);
	}
}

/* Evicts least recently used entries until at most keep remain. */
static void cache_trim(struct smp_crypto *c, size_t keep)
{
	while (c->cache.n > keep) {
		size_t lru = 0;
		for (size_t i = 1; i < c->cache.n; i++)
			if (c->cache.e[i].used < c->cache.e[lru].used)
				lru = i;
		cache_drop(c, lru, true);
	}
}

int smp_crypto_cache_lookup(struct smp_crypto *c, const char *fpr,
			    const unsigned char *material, size_t len)
{
	struct smp_crypto_cache_entry *e = cache_find(c, fpr);

	if (!e)
		return 0;
	if (e->len != len || memcmp(e->material, material, len) != 0)
		return 2;
	e->used = ++c->cache.tick;
	return 1;
}

int smp_crypto_cache_put(struct smp_crypto *c, const char *fpr,
			 const unsigned char *material, size_t len)
{
	struct smp_crypto_cache *ca = &c->cache;
	struct smp_crypto_cache_entry *e = cache_find(c, fpr);
	unsigned char *copy = malloc(len ? len : 1);

	if (!copy)
		return -1;
	if (len)
		memcpy(copy, material, len);
	if (!e) {
		cache_trim(c, ca->max > 0 ? ca->max - 1 : 0);
		if (ca->n == ca->cap) {
			size_t nc = ca->cap ? ca->cap * 2 : 16;
			struct smp_crypto_cache_entry *ne =
				realloc(ca->e, nc * sizeof(*ne));
			if (!ne) {
				free(copy);
				return -1;
			}
			ca->e = ne;
			ca->cap = nc;
		}
		e = &ca->e[ca->n++];
		memset(e, 0, sizeof(*e));
		snprintf(e->fpr, sizeof(e->fpr), "%s", fpr);
	}
	free(e->material);
	e->material = copy;
	e->len = len;
	e->used = ++ca->tick;
	return 0;
}

void smp_crypto_cache_forget(struct smp_crypto *c, const char *fpr)
{
	for (size_t i = 0; i < c->cache.n; i++) {
		if (strcmp(c->cache.e[i].fpr, fpr) == 0) {
			cache_drop(c, i, false);
			return;
		}
	}
}

void smp_crypto_set_cache_max(struct smp_crypto *c, size_t max)
{
	if (!c)
		return;
	if (max < 1)
		max = 1;
	c->cache.max = max;
	c->st.cache_max = max;
	cache_trim(c, max);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

bool smp_crypto_fpr_clean(const char *in, char out[SMP_FPR_MAX])
{
	size_t n = 0;

	for (const char *p = in; p && *p; p++) {
		char ch = *p;
		if (ch == ' ')
			continue;
		if (!g_ascii_isxdigit(ch) || n + 1 >= SMP_FPR_MAX)
			return false;
		out[n++] = g_ascii_toupper(ch);
	}
	out[n] = '\0';
	return n >= 32;
}

void smp_crypto_algo_name(unsigned pubkey_algo, unsigned bits,
			  const char *curve, char *out, size_t size)
{
	const char *c = curve ? curve : "";

	switch (pubkey_algo) {
	case SMP_PK_RSA:
	case SMP_PK_RSA_E:
	case SMP_PK_RSA_S:
		snprintf(out, size, "rsa%u", bits);
		return;
	case SMP_PK_DSA:
		snprintf(out, size, "dsa%u", bits);
		return;
	case SMP_PK_ELG_E:
	case SMP_PK_ELG:
		snprintf(out, size, "elg%u", bits);
		return;
	default:
		break;
	}
	if (g_ascii_strcasecmp(c, "Ed25519") == 0) {
		snprintf(out, size, "ed25519");
	} else if (g_ascii_strcasecmp(c, "Curve25519") == 0 ||
		   g_ascii_strcasecmp(c, "cv25519") == 0) {
		snprintf(out, size, "cv25519");
	} else if (g_ascii_strncasecmp(c, "NIST P-", 7) == 0) {
		snprintf(out, size, "nistp%.8s", c + 7);
	} else if (g_ascii_strncasecmp(c, "brainpool", 9) == 0) {
		snprintf(out, size, "%.31s", c); /* brainpoolP256r1 */
	} else if (*c) {
		snprintf(out, size, "%.31s", c);
		for (char *p = out; *p; p++)
			*p = g_ascii_tolower(*p);
	} else {
		snprintf(out, size, "unknown%u", bits);
	}
}

void smp_crypto_info_finish(struct smp_key_info *k)
{
	const struct smp_key_sub *p;

	k->can_encrypt = false;
	if (k->nsubkeys == 0)
		return;
	p = &k->subkeys[0];
	for (size_t i = 1; i < k->nsubkeys; i++) {
		k->subkeys[i].expired |= p->expired;
		k->subkeys[i].revoked |= p->revoked;
	}
	/* as GnuPG lists them: a revoked key's user IDs are revoked */
	for (size_t i = 0; p->revoked && i < k->nuids; i++)
		k->uids[i].revoked = true;
	for (size_t i = 0; i < k->nsubkeys; i++) {
		const struct smp_key_sub *s = &k->subkeys[i];
		if (s->can_encrypt && !s->expired && !s->revoked && !s->invalid)
			k->can_encrypt = true;
		if (s->secret)
			k->secret = true;
	}
	snprintf(k->algo, sizeof(k->algo), "%s", p->algo);
	k->pubkey_algo = p->pubkey_algo;
	k->bits = p->bits;
	k->created = p->created;
	k->expires = p->expires;
	k->expired = p->expired;
	k->revoked = p->revoked;
	k->invalid = p->invalid;
}

char *smp_crypto_uid_email(const char *uid)
{
	/* GnuPG's reading (gpgme's user ID parser): outside a (comment),
	 * the first '<' opens the email, nested '<' '>' are counted, the
	 * matching '>' closes it; trailing blanks are removed. */
	const char *start = NULL;
	int in_email = 0, in_comment = 0;

	for (const char *p = uid ? uid : ""; *p; p++) {
		if (in_email) {
			if (*p == '<') {
				in_email++;
			} else if (*p == '>' && --in_email == 0) {
				size_t n = (size_t)(p - start);
				while (n && (start[n - 1] == ' ' ||
					     start[n - 1] == '\t'))
					n--;
				return strndup(start, n);
			}
		} else if (in_comment) {
			if (*p == '(')
				in_comment++;
			else if (*p == ')')
				in_comment--;
		} else if (*p == '<') {
			in_email = 1;
			start = p + 1;
		} else if (*p == '(') {
			in_comment = 1;
		}
	}
	return strdup("");
}

void smp_key_info_clear(struct smp_key_info *k)
{
	if (!k)
		return;
	for (size_t i = 0; k->uids && i < k->nuids; i++) {
		free(k->uids[i].uid);
		free(k->uids[i].email);
	}
	free(k->uids);
	free(k->subkeys);
	memset(k, 0, sizeof(*k));
}

void smp_key_infos_free(struct smp_key_info *keys, size_t n)
{
	for (size_t i = 0; keys && i < n; i++)
		smp_key_info_clear(&keys[i]);
	free(keys);
}

/* ------------------------------------------------------------------ */
/* Input                                                               */

/* The binary form of data: itself, or its first armored block decoded
 * into *owned. 0, 1 (not OpenPGP data; errmsg says why), -1 (memory). */
int smp_crypto_to_binary(struct smp_crypto *c, const void *data, size_t len,
			 const unsigned char **bin, size_t *blen,
			 unsigned char **owned)
{
	const unsigned char *d = data;
	struct smp_armor a;
	enum smp_armor_status st;
	size_t off;

	*owned = NULL;
	*bin = NULL;
	*blen = 0;
	if (!d || len == 0) {
		smp_crypto_error(c, "no key data");
		return 1;
	}
	if (smp_pkt_looks_binary(d, len)) {
		if (len > SMP_CRYPTO_MAX_KEYBLOCK) {
			smp_crypto_error(c, "key data of %zu octets is over "
					 "the %u-octet limit", len,
					 SMP_CRYPTO_MAX_KEYBLOCK);
			return 1;
		}
		*bin = d;
		*blen = len;
		return 0;
	}
	if (!smp_armor_find(data, len, &off)) {
		smp_crypto_error(c, "the key data is neither binary OpenPGP "
				 "nor ASCII-armored");
		return 1;
	}
	st = smp_armor_decode(data, len, SMP_CRYPTO_MAX_KEYBLOCK, &a);
	if (st == SMP_ARMOR_ENOMEM) {
		smp_crypto_error(c, "out of memory");
		return -1;
	}
	if (st != SMP_ARMOR_OK) {
		smp_crypto_error(c, "the key's ASCII armor is broken: %s",
				 smp_armor_strerror(st));
		return 1;
	}
	*owned = a.data;
	*bin = a.data;
	*blen = a.len;
	return 0;
}

/* Splits bin into transferable keys. 0, 1 (not a key block), -1. */
int smp_crypto_split(struct smp_crypto *c, const unsigned char *bin, size_t len,
		     struct smp_keyblock **blocks, size_t *n)
{
	if (smp_keyblock_split(bin, len, blocks, n) == 0)
		return 0;
	if (errno == ENOMEM) {
		smp_crypto_error(c, "out of memory");
		return -1;
	}
	smp_crypto_error(c, "the data is not a well-framed OpenPGP key "
			 "block");
	return 1;
}

/* ------------------------------------------------------------------ */
/* Inspection                                                          */

/* GnuPG's rule, for both engines: a key without a user ID that was ever
 * validly self-signed (valid now, or revoked since) is not a key. */
bool smp_crypto_has_good_uid(const struct smp_key_info *k)
{
	for (size_t i = 0; i < k->nuids; i++)
		if (!k->uids[i].invalid || k->uids[i].revoked)
			return true;
	return false;
}

/* Drops the listed keys without a good user ID (errmsg says so). */
static void drop_uidless(struct smp_crypto *c, struct smp_key_info *keys,
			 size_t *n)
{
	size_t w = 0;

	for (size_t i = 0; i < *n; i++) {
		if (smp_crypto_has_good_uid(&keys[i])) {
			keys[w++] = keys[i];
			continue;
		}
		smp_crypto_error(c, "key %s has no validly self-signed user "
				 "ID", keys[i].fpr);
		smp_key_info_clear(&keys[i]);
	}
	*n = w;
}

int smp_crypto_inspect_all(struct smp_crypto *c, const void *data, size_t len,
			   struct smp_key_info **keys, size_t *n)
{
	const unsigned char *bin;
	unsigned char *owned = NULL;
	struct smp_keyblock *blocks = NULL;
	size_t blen, nblocks = 0;
	int rc;

	if (keys)
		*keys = NULL;
	if (n)
		*n = 0;
	if (!c || !keys || !n)
		return -1;
	c->errmsg[0] = '\0';
	rc = smp_crypto_to_binary(c, data, len, &bin, &blen, &owned);
	if (rc == 0)
		rc = smp_crypto_split(c, bin, blen, &blocks, &nblocks);
	if (rc == 0) {
		rc = c->ops->inspect(c, bin, blen, blocks, nblocks, keys, n);
		if (rc == 0)
			drop_uidless(c, *keys, n);
	} else if (rc == 1)
		rc = 0; /* nothing listed; errmsg says why */
	free(blocks);
	free(owned);
	return rc;
}

/* Inspects only the first block of bin. 0, 1, -1 as smp_crypto_inspect. */
int smp_crypto_inspect_first(struct smp_crypto *c, const unsigned char *bin,
			     size_t blen, const struct smp_keyblock *b0,
			     struct smp_key_info *out)
{
	struct smp_keyblock one = *b0;
	struct smp_key_info *keys = NULL;
	size_t n = 0;

	(void)blen;
	one.off = 0;
	if (c->ops->inspect(c, bin + b0->off, b0->len, &one, 1, &keys, &n))
		return -1;
	drop_uidless(c, keys, &n);
	if (n == 0) {
		if (!c->errmsg[0])
			smp_crypto_error(c, "the %s engine did not accept the "
					 "key", c->ops->name);
		free(keys);
		return 1;
	}
	*out = keys[0];
	for (size_t i = 1; i < n; i++)
		smp_key_info_clear(&keys[i]);
	free(keys);
	out->block = 0;
	return 0;
}

int smp_crypto_inspect(struct smp_crypto *c, const void *keyblock, size_t len,
		       struct smp_key_info *out)
{
	const unsigned char *bin;
	unsigned char *owned = NULL;
	struct smp_keyblock *blocks = NULL;
	size_t blen, nblocks = 0;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!c || !out)
		return -1;
	c->errmsg[0] = '\0';
	rc = smp_crypto_to_binary(c, keyblock, len, &bin, &blen, &owned);
	if (rc == 0)
		rc = smp_crypto_split(c, bin, blen, &blocks, &nblocks);
	if (rc == 0)
		rc = smp_crypto_inspect_first(c, bin, blen, &blocks[0], out);
	free(blocks);
	free(owned);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Encryption                                                          */

/* Appends "FPR (why)" to the refusal list in buf. */
static void refuse(char *buf, size_t size, const char *fpr, const char *why)
{
	size_t n = strlen(buf);

	if (n + 1 < size)
		snprintf(buf + n, size - n, "%s%s (%s)", n ? ", " : "", fpr,
			 why);
}

int smp_crypto_encrypt(struct smp_crypto *c, const void *payload, size_t len,
		       const struct smp_crypto_key *keys, size_t nkeys,
		       char **armored_out, size_t *outlen, char *err,
		       size_t errlen)
{
	struct smp_crypto_kbin *kb = NULL;
	unsigned char **owned = NULL;
	char refused[1024] = "";
	int rc = -1;

	if (armored_out)
		*armored_out = NULL;
	if (outlen)
		*outlen = 0;
	if (err && errlen)
		err[0] = '\0';
	if (!c || !armored_out || !outlen || (!payload && len)) {
		smp_crypto_seterr(err, errlen, "bad arguments");
		return -1;
	}
	c->errmsg[0] = '\0';
	if (!keys || nkeys == 0) {
		smp_crypto_seterr(err, errlen, "no key to encrypt to");
		return -1;
	}
	kb = calloc(nkeys, sizeof(*kb));
	owned = calloc(nkeys, sizeof(*owned));
	if (!kb || !owned) {
		smp_crypto_seterr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		const unsigned char *bin;
		struct smp_keyblock *blocks = NULL;
		size_t blen, nb = 0;
		int r;

		if (!smp_crypto_fpr_clean(keys[i].fpr, kb[i].fpr)) {
			smp_crypto_seterr(err, errlen, "'%.80s' is not a "
					  "fingerprint",
					  keys[i].fpr ? keys[i].fpr : "");
			goto out;
		}
		r = smp_crypto_to_binary(c, keys[i].material, keys[i].len, &bin,
					 &blen, &owned[i]);
		if (r == 0)
			r = smp_crypto_split(c, bin, blen, &blocks, &nb);
		if (r < 0) {
			smp_crypto_seterr(err, errlen, "%s", c->errmsg);
			goto out;
		}
		if (r > 0) {
			refuse(refused, sizeof(refused), kb[i].fpr,
			       "its key material is not an OpenPGP key");
			continue;
		}
		for (size_t b = 0; b < nb; b++) {
			if (strcmp(blocks[b].fpr, kb[i].fpr) == 0) {
				kb[i].material = bin + blocks[b].off;
				kb[i].len = blocks[b].len;
				break;
			}
		}
		free(blocks);
		if (!kb[i].material)
			refuse(refused, sizeof(refused), kb[i].fpr,
			       "its key material holds no key with this "
			       "fingerprint");
	}
	if (refused[0]) {
		smp_crypto_seterr(err, errlen, "refused keys: %s", refused);
		rc = 1;
		goto out;
	}
	rc = c->ops->encrypt(c, payload ? payload : "", len, kb, nkeys,
			     armored_out, outlen, err, errlen);
out:
	for (size_t i = 0; owned && i < nkeys; i++)
		free(owned[i]);
	free(owned);
	free(kb);
	return rc;
}
