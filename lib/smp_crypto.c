/* smp_crypto.c - the engine-neutral half of the crypto interface: argument
 * checks, dearmoring and splitting key blocks, the minimal key's user ID
 * and encryption key choice and its packet filter, the key cache (LRU)
 * and dispatch to the engine modules. See smp_crypto.h and
 * smp_crypto_backend.h. */
#include "smp_crypto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "smp_armor.h"
#include "smp_crypto_backend.h"
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
static int to_binary(struct smp_crypto *c, const void *data, size_t len,
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
static int split(struct smp_crypto *c, const unsigned char *bin, size_t len,
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
static bool has_good_uid(const struct smp_key_info *k)
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
		if (has_good_uid(&keys[i])) {
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
	rc = to_binary(c, data, len, &bin, &blen, &owned);
	if (rc == 0)
		rc = split(c, bin, blen, &blocks, &nblocks);
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
static int inspect_first(struct smp_crypto *c, const unsigned char *bin,
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
	rc = to_binary(c, keyblock, len, &bin, &blen, &owned);
	if (rc == 0)
		rc = split(c, bin, blen, &blocks, &nblocks);
	if (rc == 0)
		rc = inspect_first(c, bin, blen, &blocks[0], out);
	free(blocks);
	free(owned);
	return rc;
}

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

/* Length of an MPI at p (RFC 4880 3.2), 0 when it runs past n. */
static size_t mpi_len(const unsigned char *p, size_t n)
{
	size_t l;

	if (n < 2)
		return 0;
	l = 2 + (((size_t)p[0] << 8 | p[1]) + 7) / 8;
	return l <= n ? l : 0;
}

/* Length of the public part of a v4 key packet body (a secret key
 * packet's body starts with it); 0 for another version, an unknown
 * algorithm or a body too short. */
static size_t v4_public_len(const unsigned char *b, size_t n)
{
	size_t off = 6;
	unsigned mpis;
	bool oid = false, kdf = false;

	if (n < 6 || b[0] != 4)
		return 0;
	switch (b[5]) {
	case SMP_PK_RSA:
	case SMP_PK_RSA_E:
	case SMP_PK_RSA_S:
		mpis = 2;
		break;
	case SMP_PK_ELG_E:
	case SMP_PK_ELG:
		mpis = 3;
		break;
	case SMP_PK_DSA:
		mpis = 4;
		break;
	case SMP_PK_ECDSA:
	case SMP_PK_EDDSA:
		oid = true;
		mpis = 1;
		break;
	case SMP_PK_ECDH:
		oid = kdf = true;
		mpis = 1;
		break;
	default:
		return 0;
	}
	if (oid) {
		if (off >= n || b[off] == 0 || b[off] == 0xFF ||
		    off + 1 + b[off] > n)
			return 0;
		off += 1 + (size_t)b[off];
	}
	for (unsigned i = 0; i < mpis; i++) {
		size_t l = mpi_len(b + off, n - off);
		if (!l)
			return 0;
		off += l;
	}
	if (kdf) {
		if (off >= n || off + 1 + b[off] > n)
			return 0;
		off += 1 + (size_t)b[off];
	}
	return off;
}

void smp_crypto_pkt_fpr(const unsigned char *body, size_t len, bool secret,
			char out[SMP_FPR_MAX])
{
	if (secret) {
		len = v4_public_len(body, len);
		if (!len) {
			out[0] = '\0';
			return;
		}
	}
	smp_pkt_key_fpr(body, len, out);
}

/* The signatures kept for the current key, user ID or subkey of
 * filter_keep, by a hash of their bodies (an open-addressing table; a
 * slot belongs to the component whose number it carries, so moving on
 * to the next component empties it at no cost). */
struct sigset {
	struct sigslot {
		uint64_t h;
		size_t off, len;         /* the body, in the output */
		unsigned comp;           /* 0: never used */
	} *t;
	size_t cap, n;
	unsigned comp;
};

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void sigset_next(struct sigset *s)
{
	s->comp++;
	s->n = 0;
}

/* Is body[0..len) among the signatures kept for the component (their
 * bodies in o)? If not, it is recorded as kept at o + off. -1 when out of
 * memory. */
static int sigset_seen(struct sigset *s, const unsigned char *o,
		       const unsigned char *body, size_t len, size_t off)
{
	uint64_t h = fnv1a(body, len);
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 64;
		struct sigslot *nt = calloc(nc, sizeof(*nt));

		if (!nt)
			return -1;
		for (size_t j = 0; j < s->cap; j++) {
			if (s->t[j].comp != s->comp)
				continue;
			for (i = s->t[j].h & (nc - 1); nt[i].comp;
			     i = (i + 1) & (nc - 1))
				;
			nt[i] = s->t[j];
		}
		free(s->t);
		s->t = nt;
		s->cap = nc;
	}
	for (i = h & (s->cap - 1); s->t[i].comp == s->comp;
	     i = (i + 1) & (s->cap - 1)) {
		if (s->t[i].h == h && s->t[i].len == len &&
		    memcmp(o + s->t[i].off, body, len) == 0)
			return 1;
	}
	s->t[i].h = h;
	s->t[i].off = off;
	s->t[i].len = len;
	s->t[i].comp = s->comp;
	s->n++;
	return 0;
}

/* The user IDs and subkeys filter_keep keeps: a user ID's body or a
 * subkey's fingerprint, and the rank of its first appearance in the
 * block (SIZE_MAX: not yet seen). */
struct comp {
	const unsigned char *p;      /* a user ID's body */
	size_t n, rank;
	char fpr[SMP_FPR_MAX];       /* a subkey's fingerprint */
	bool sub;
};

struct comps {
	struct comp *c;
	size_t n, cap;
};

static int comps_add(struct comps *cs, const unsigned char *p, size_t n,
		     bool sub)
{
	if (cs->n == cs->cap) {
		size_t nc = cs->cap ? 2 * cs->cap : 16;
		struct comp *ncs = realloc(cs->c, nc * sizeof(*ncs));

		if (!ncs)
			return -1;
		cs->c = ncs;
		cs->cap = nc;
	}
	memset(&cs->c[cs->n], 0, sizeof(cs->c[cs->n]));
	if (sub)
		snprintf(cs->c[cs->n].fpr, sizeof(cs->c[cs->n].fpr), "%.*s",
			 (int)(n < SMP_FPR_MAX ? n : SMP_FPR_MAX - 1), p);
	else
		cs->c[cs->n].p = p;
	cs->c[cs->n].n = n;
	cs->c[cs->n].rank = SIZE_MAX;
	cs->c[cs->n].sub = sub;
	cs->n++;
	return 0;
}

/* The index of the component p[0..n) (a user ID's body, or a subkey's
 * fingerprint when sub); with add, appended when missing. -1: not one to
 * keep; -2: out of memory. */
static long comps_find(struct comps *cs, const unsigned char *p, size_t n,
		       bool sub, bool add)
{
	for (size_t i = 0; i < cs->n; i++)
		if (cs->c[i].sub == sub && cs->c[i].n == n &&
		    memcmp(sub ? (const unsigned char *)cs->c[i].fpr :
				 cs->c[i].p,
			   p, n) == 0)
			return (long)i;
	if (!add)
		return -1;
	return comps_add(cs, p, n, sub) ? -2 : (long)(cs->n - 1);
}

/* One packet filter_keep keeps: where it is in blk, its component (0:
 * the primary key, 1 + i: comps[i]) and that component's rank. */
struct kept_pkt {
	size_t off, end, seq;
	size_t comp, rank;
	bool head;                   /* the key, user ID or subkey packet */
};

static int kept_cmp(const void *a, const void *b)
{
	const struct kept_pkt *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->head != y->head)
		return x->head ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Copies the first transferable key of blk keeping the primary key and
 * its own signatures, the user ID packets whose bodies are among
 * uids[0..nuids) with their signatures, and the subkeys whose
 * fingerprints are among subs[0..nsubs) with theirs (FK_ALL_UIDS: every
 * user ID, uids unused; FK_ALL_SUBS: every subkey, subs unused), in the
 * order they first appear. A user
 * ID or subkey that blk holds twice is written once, with the signatures
 * of every copy after it, and a signature a key, user ID or subkey
 * already has (the same packet body) is kept once. librnp keeps a
 * repeated user ID apart, drops the valid self-signature of the second
 * copy when the first one's is invalid, and can export one signature
 * twice, so that each merge changed the key again (fuzz_merge): the
 * merge hands the engine blocks without repeats, and cuts the engine's
 * output with this too. Trust, padding, user attribute packets and
 * everything else are dropped. *kept_uids / *kept_subs count the user
 * IDs and subkeys written.
 */
#define FK_ALL_UIDS 1u
#define FK_ALL_SUBS 2u

static int filter_keep(const unsigned char *blk, size_t len,
		       const char *const *uids, size_t nuids,
		       const char *const *subs, size_t nsubs, unsigned all,
		       unsigned char **out, size_t *outlen, size_t *kept_uids,
		       size_t *kept_subs)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	struct comps cs = {0};
	size_t nk = 0, cap = 0, nranks = 1, n = 0, cur = 0;
	struct kept_pkt *k = NULL;
	struct sigset sigs = {.comp = 1};
	unsigned char *o = malloc(len ? len : 1);
	bool seen_primary = false, in_comp = false;

	*out = NULL;
	*outlen = 0;
	*kept_uids = 0;
	*kept_subs = 0;
	if (!o)
		goto nomem;
	for (size_t i = 0; !(all & FK_ALL_UIDS) && i < nuids; i++)
		if (comps_add(&cs, (const unsigned char *)uids[i],
			      strlen(uids[i]), false))
			goto nomem;
	for (size_t i = 0; !(all & FK_ALL_SUBS) && i < nsubs; i++)
		if (comps_add(&cs, (const unsigned char *)subs[i],
			      strlen(subs[i]), true))
			goto nomem;
	smp_pkt_iter_init(&it, blk, len);
	while (smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		bool head = false;
		long j = -1;

		if (pkt.partial || pkt.indeterminate)
			break;
		switch (pkt.tag) {
		case SMP_TAG_PUBLIC_KEY:
			if (seen_primary)
				goto sorted;
			seen_primary = in_comp = head = true;
			cur = 0;
			break;
		case SMP_TAG_SIGNATURE:
			break;
		case SMP_TAG_USER_ID:
			j = comps_find(&cs, pkt.first, pkt.body_len, false,
				       all & FK_ALL_UIDS);
			break;
		case SMP_TAG_PUBLIC_SUBKEY: {
			char f[SMP_FPR_MAX];

			smp_pkt_key_fpr(pkt.first, pkt.body_len, f);
			j = f[0] ? comps_find(&cs, (const unsigned char *)f,
					      strlen(f), true,
					      all & FK_ALL_SUBS)
				 : -1;
			break;
		}
		case SMP_TAG_TRUST:
		case SMP_TAG_PADDING:
			continue;
		default:
			/* user attributes, secret key packets, anything
			 * else: dropped with what follows */
			in_comp = false;
			continue;
		}
		if (j == -2)
			goto nomem;
		if (pkt.tag == SMP_TAG_USER_ID ||
		    pkt.tag == SMP_TAG_PUBLIC_SUBKEY) {
			in_comp = head = j >= 0;
			cur = 1 + (size_t)j;
		}
		if (!in_comp)
			continue;
		if (head && cur > 0 && cs.c[cur - 1].rank != SIZE_MAX)
			continue; /* a second copy: its signatures only */
		if (head && cur > 0) {
			cs.c[cur - 1].rank = nranks++;
			if (cs.c[cur - 1].sub)
				(*kept_subs)++;
			else
				(*kept_uids)++;
		}
		if (nk == cap) {
			size_t nc = cap ? 2 * cap : 32;
			struct kept_pkt *nkp = realloc(k, nc * sizeof(*k));

			if (!nkp)
				goto nomem;
			k = nkp;
			cap = nc;
		}
		k[nk].off = pkt.offset;
		k[nk].end = it.off;
		k[nk].seq = nk;
		k[nk].comp = cur;
		k[nk].head = head;
		nk++;
	}
sorted:
	for (size_t i = 0; i < nk; i++)
		k[i].rank = k[i].comp ? cs.c[k[i].comp - 1].rank : 0;
	if (nk)
		qsort(k, nk, sizeof(*k), kept_cmp);
	for (size_t i = 0; i < nk; i++) {
		const unsigned char *p = blk + k[i].off;
		size_t plen = k[i].end - k[i].off;

		if (k[i].head) {
			sigset_next(&sigs);
		} else {
			struct smp_pkt_iter one;
			struct smp_packet sig;
			int seen;

			smp_pkt_iter_init(&one, p, plen);
			if (smp_pkt_next(&one, &sig) != SMP_PKT_OK)
				continue;
			seen = sigset_seen(&sigs, o, sig.first, sig.body_len,
					   n + (size_t)(sig.first - p));
			if (seen < 0)
				goto nomem;
			if (seen)
				continue;
		}
		memcpy(o + n, p, plen);
		n += plen;
	}
	free(sigs.t);
	free(cs.c);
	free(k);
	*out = o;
	*outlen = n;
	return 0;
nomem:
	free(sigs.t);
	free(cs.c);
	free(k);
	free(o);
	return -1;
}

/* blk[0..len) (one transferable key) with each user ID and subkey once
 * (filter_keep with every one of them), into *out. */
static int dedup_key(const unsigned char *blk, size_t len, unsigned char **out,
		     size_t *outlen)
{
	size_t ku, ks;

	return filter_keep(blk, len, NULL, 0, NULL, 0,
			   FK_ALL_UIDS | FK_ALL_SUBS, out, outlen, &ku, &ks);
}

/* filter_keep for one user ID and at most one subkey (subfpr NULL). */
static int filter_minimal(const unsigned char *blk, size_t len,
			  const char *uid, const char *subfpr,
			  unsigned char **out, size_t *outlen, bool *kept_uid,
			  bool *kept_sub)
{
	size_t ku = 0, ks = 0;
	int rc = filter_keep(blk, len, &uid, 1, &subfpr, subfpr ? 1 : 0, 0,
			     out, outlen, &ku, &ks);

	*kept_uid = ku > 0;
	*kept_sub = ks > 0;
	return rc;
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
	rc = to_binary(c, keyblock, len, &bin, &blen, &owned);
	if (rc == 0)
		rc = split(c, bin, blen, &blocks, &nblocks);
	if (rc)
		goto out;
	if (blocks[0].secret) {
		rc = 1;
		smp_crypto_error(c, "the key block holds secret key material");
		goto out;
	}
	/* each user ID and subkey once (see filter_keep) */
	if (dedup_key(bin + blocks[0].off, blocks[0].len, &norm, &nlen)) {
		rc = smp_crypto_error(c, "out of memory");
		goto out;
	}
	b0 = blocks[0];
	b0.off = 0;
	b0.len = nlen;
	rc = inspect_first(c, norm, nlen, &b0, &k);
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
	if (filter_minimal(clean, clen, u->uid,
			   e == &k.subkeys[0] ? NULL : encfpr, &res, &rlen,
			   &kept_uid, &kept_sub)) {
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
	size_t nssubs = 0, ku = 0, ks = 0, ncb = 0;
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
		rc = to_binary(c, stored, slen, &sbin, &sblen, &sowned);
		if (rc == 0)
			rc = split(c, sbin, sblen, &sb, &nsb);
	}
	if (rc == 0)
		rc = to_binary(c, update, ulen, &ubin, &ublen, &uowned);
	if (rc == 0)
		rc = split(c, ubin, ublen, &ub, &nub);
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
		/* each user ID and subkey once, here and below, and only
		 * the user IDs that can be kept (a user ID with a NUL in it
		 * cannot): librnp loses the self-signature of a repeated
		 * user ID, and checks a signature found under two user IDs
		 * against one of them only, so what the result no longer
		 * holds changed what it held (filter_keep) */
		if (filter_keep(sbin + sb[0].off, sb[0].len,
				(const char *const *)suids, nsuids, NULL, 0,
				FK_ALL_SUBS, &part, &plen, &ku, &ks))
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
			unsigned char *d = NULL;
			size_t dlen = 0;

			if (dedup_key(part, plen, &d, &dlen))
				goto nomem;
			memcpy(in + inlen, d, dlen);
			inlen += dlen;
			free(d);
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
	/* the union of every copy, self-signatures only */
	rc = c->ops->clean(c, in, inlen, fpr, NULL, addr, &clean, &clen, &k);
	if (rc)
		goto out;
	if (!k.fpr[0]) {
		rc = split(c, clean, clen, &cb, &ncb);
		if (rc == 0)
			rc = inspect_first(c, clean, clen, &cb[0], &k);
		if (rc)
			goto out;
	} else if (!has_good_uid(&k)) {
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
	if (filter_keep(clean, clen, keep, nkeep, subs, nsubs, 0, &res,
			&rlen, &ku, &ks))
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
		r = to_binary(c, keys[i].material, keys[i].len, &bin, &blen,
			      &owned[i]);
		if (r == 0)
			r = split(c, bin, blen, &blocks, &nb);
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
