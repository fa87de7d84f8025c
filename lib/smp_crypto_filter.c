/* smp_crypto_filter.c - the OpenPGP packet filter of the minimal key and
 * the merge, engine-neutral: smp_crypto_filter_keep copies one
 * transferable key keeping the primary key, the user IDs and the subkeys
 * asked for, each once, with their signatures, each signature once;
 * smp_crypto_dedup_key and smp_crypto_filter_minimal are its two common
 * uses. Also smp_crypto_pkt_fpr (a key packet's fingerprint, a secret key
 * packet's too), which the engines use.
 *
 * Separate from smp_crypto_minimal.c, which decides what is kept (which
 * user ID, which encryption key): this file only works on packets. It
 * needs no engine and no struct smp_crypto, and it is what fuzz_merge
 * exercises hardest.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_crypto_backend.h"
#include "smp_crypto_int.h"
#include "smp_packets.h"

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
 * smp_crypto_filter_keep, by a hash of their bodies (an open-addressing
 * table; a slot belongs to the component whose number it carries, so
 * moving on to the next component empties it at no cost). */
struct sigset {
	struct sigslot {
		uint64_t h;
		size_t idx;              /* the first copy, in kept[] */
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

/* What makes a signature the signature it is, for librnp (which keeps
 * one of two packets it takes for one signature, and judges both by
 * that one): its body without the unhashed subpacket area and the two
 * octets of the hash that follow it, neither of which the signature
 * covers (anyone can change them): body[0..*a) and body[*b..len); the
 * unhashed area ends at *u. The whole body for versions other than 4
 * and 6 or a body too short. */
static void sig_ident(const unsigned char *body, size_t len, size_t *a,
		      size_t *u_end, size_t *b)
{
	size_t w, h, u;

	*a = *b = *u_end = len;
	if (len < 1 || (body[0] != 4 && body[0] != 6))
		return;
	w = body[0] == 4 ? 2 : 4;        /* the octets of a count */
	if (len < 4 + w)
		return;
	h = 0;
	for (size_t i = 0; i < w; i++)
		h = h << 8 | body[4 + i];
	if (h > len - 4 - w || len - 4 - w - h < w)
		return;
	u = 0;
	for (size_t i = 0; i < w; i++)
		u = u << 8 | body[4 + w + h + i];
	if (u > len - 4 - 2 * w - h || len - 4 - 2 * w - h - u < 2)
		return;
	*a = 4 + w + h;
	*u_end = *a + w + u;
	*b = *u_end + 2;
}

static uint64_t sig_hash(const unsigned char *body, size_t len)
{
	size_t a, e, b;

	sig_ident(body, len, &a, &e, &b);
	return fnv1a(body, a) ^ (fnv1a(body + b, len - b) * 31);
}

static bool sig_same(const unsigned char *x, size_t xl,
		     const unsigned char *y, size_t yl)
{
	size_t xa, xe, xb, ya, ye, yb;

	sig_ident(x, xl, &xa, &xe, &xb);
	sig_ident(y, yl, &ya, &ye, &yb);
	return xa == ya && xl - xb == yl - yb && memcmp(x, y, xa) == 0 &&
	       memcmp(x + xb, y + yb, xl - xb) == 0;
}


/* The user IDs and subkeys smp_crypto_filter_keep keeps: a user ID's
 * body or a subkey's fingerprint, and the rank of its first appearance
 * in the block (SIZE_MAX: not yet seen). */
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

/* One packet smp_crypto_filter_keep keeps: where it is in blk, its
 * component (0: the primary key, 1 + i: comps[i]) and that component's
 * rank. */
struct kept_pkt {
	size_t off, end, seq;
	size_t boff, blen;           /* a signature's body */
	size_t rep, best;            /* the first copy of the signature and
				      * the copy written */
	size_t comp, rank;
	unsigned cls;                /* 0 the primary key, 1 a user ID, 2 a
				      * subkey: user IDs come before
				      * subkeys (RFC 4880 11.1) */
	bool head;                   /* the key, user ID or subkey packet */
};

static int kept_cmp(const void *a, const void *b)
{
	const struct kept_pkt *x = a, *y = b;

	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->head != y->head)
		return x->head ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The first copy in k[] (one component's signatures) of signature i:
 * i itself when it is new; -1 when out of memory. */
static long sigset_rep(struct sigset *s, const struct kept_pkt *k,
		       const unsigned char *blk, size_t i)
{
	const unsigned char *body = blk + k[i].boff;
	size_t len = k[i].blen, x;
	uint64_t h = sig_hash(body, len);

	if (2 * (s->n + 1) > s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 64;
		struct sigslot *nt = calloc(nc, sizeof(*nt));

		if (!nt)
			return -1;
		for (size_t j = 0; j < s->cap; j++) {
			if (s->t[j].comp != s->comp)
				continue;
			for (x = s->t[j].h & (nc - 1); nt[x].comp;
			     x = (x + 1) & (nc - 1))
				;
			nt[x] = s->t[j];
		}
		free(s->t);
		s->t = nt;
		s->cap = nc;
	}
	for (x = h & (s->cap - 1); s->t[x].comp == s->comp;
	     x = (x + 1) & (s->cap - 1)) {
		const struct kept_pkt *r = &k[s->t[x].idx];

		if (s->t[x].h == h &&
		    sig_same(blk + r->boff, r->blen, body, len))
			return (long)s->t[x].idx;
	}
	s->t[x].h = h;
	s->t[x].idx = i;
	s->t[x].comp = s->comp;
	s->n++;
	return (long)i;
}

static unsigned hexval(char c)
{
	return c >= '0' && c <= '9' ? (unsigned)(c - '0')
	       : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
	       : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 0;
}

/* Does no issuer key ID subpacket in the unhashed area of signature
 * body[0..len) name another key than keyid? (Of two copies of one
 * signature the one that does is kept only when there is no other: gpg
 * takes the key ID from there, and with another one a self-signature is
 * no longer one.) */
static bool issuer_ok(const unsigned char *b, size_t len,
		      const unsigned char keyid[8])
{
	size_t a, e, w, after;

	sig_ident(b, len, &a, &e, &after);
	if (a == len)
		return true;
	w = b[0] == 4 ? 2 : 4;
	for (size_t off = a + w; off < e;) {
		size_t sl;

		if (b[off] < 192) {
			sl = b[off];
			off += 1;
		} else if (b[off] < 255 && off + 2 <= e) {
			sl = ((size_t)(b[off] - 192) << 8) + b[off + 1] + 192;
			off += 2;
		} else if (b[off] == 255 && off + 5 <= e) {
			sl = (size_t)b[off + 1] << 24 | (size_t)b[off + 2] << 16 |
			     (size_t)b[off + 3] << 8 | b[off + 4];
			off += 5;
		} else {
			return true;
		}
		if (sl == 0 || sl > e - off)
			return true;
		if ((b[off] & 0x7F) == 16 && sl == 9 &&
		    memcmp(b + off + 1, keyid, 8) != 0)
			return false;
		off += sl;
	}
	return true;
}

/*
 * Copies the first transferable key of blk keeping the primary key and
 * its own signatures, the user ID packets whose bodies are among
 * uids[0..nuids) with their signatures, and the subkeys whose
 * fingerprints are among subs[0..nsubs) with theirs (FK_ALL_UIDS: every
 * user ID, uids unused; FK_ALL_SUBS: every subkey, subs unused), the
 * user IDs before the subkeys, each in the order they first appear.
 * FK_COPIES: copies of the same key (the same key packet) that follow
 * the first count as part of it, so the result is their union. A user ID
 * or subkey that blk holds twice is written once, with the signatures of
 * every copy after it, and a signature a key, user ID or subkey already
 * has is kept once, the first copy of it (the same body but for the
 * unhashed subpackets and the two octets of the hash: sig_ident), or the
 * first whose unhashed issuer does not name another key. librnp keeps a repeated user ID
 * apart, drops the valid self-signature of the second copy when the
 * first one's is invalid, can export one signature twice, judges two
 * copies of a signature that differ in what it does not cover by one of
 * them (and keeps or drops both), and
 * cannot merge two copies of a key whose first user ID holds the text
 * that starts ASCII armor, so that a merge failed or changed the key
 * again at the next one (fuzz_merge): the merge hands the engine the
 * union of the copies made here, one key without repeats, and cuts the
 * engine's output with this too. Trust, padding, user attribute packets
 * and everything else are dropped. *kept_uids / *kept_subs count the
 * user IDs and subkeys written.
 */
int smp_crypto_filter_keep(const unsigned char *blk, size_t len,
			   const char *const *uids, size_t nuids,
			   const char *const *subs, size_t nsubs, unsigned all,
			   unsigned char **out, size_t *outlen,
			   size_t *kept_uids, size_t *kept_subs)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	struct comps cs = {0};
	size_t nk = 0, cap = 0, nranks = 1, n = 0, cur = 0;
	struct kept_pkt *k = NULL;
	struct sigset sigs = {.comp = 1};
	unsigned char *o = malloc(len ? len : 1);
	bool seen_primary = false, in_comp = false;
	const unsigned char *pbody = NULL;   /* the primary key's */
	size_t pblen = 0;
	unsigned char keyid[8] = {0};        /* the primary key's */

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
			if (seen_primary &&
			    (!(all & FK_COPIES) || pkt.body_len != pblen ||
			     pkt.first_avail != pblen ||
			     memcmp(pkt.first, pbody, pblen) != 0))
				goto sorted;
			if (seen_primary) {
				/* another copy: its signatures follow */
				in_comp = true;
				cur = 0;
				continue;
			}
			seen_primary = in_comp = head = true;
			pbody = pkt.first;
			pblen = pkt.body_len;
			cur = 0;
			{
				char f[SMP_FPR_MAX];
				size_t fl, at;

				smp_pkt_key_fpr(pkt.first, pkt.body_len, f);
				fl = strlen(f);
				/* v4: the low 64 bits; v6: the high ones */
				at = fl == 40 ? 24 : 0;
				for (size_t q = 0; fl >= 32 && q < 8; q++)
					keyid[q] = (unsigned char)(
						hexval(f[at + 2 * q]) << 4 |
						hexval(f[at + 2 * q + 1]));
			}
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
		k[nk].boff = (size_t)(pkt.first - blk);
		k[nk].blen = pkt.body_len;
		k[nk].seq = nk;
		k[nk].comp = cur;
		k[nk].head = head;
		nk++;
	}
sorted:
	for (size_t i = 0; i < nk; i++) {
		k[i].rank = k[i].comp ? cs.c[k[i].comp - 1].rank : 0;
		k[i].cls = !k[i].comp ? 0 : cs.c[k[i].comp - 1].sub ? 2 : 1;
	}
	if (nk)
		qsort(k, nk, sizeof(*k), kept_cmp);
	/* each signature once per component: the first copy, or the first
	 * whose unhashed issuer does not name another key */
	for (size_t i = 0; i < nk; i++) {
		long r;

		k[i].rep = k[i].best = i;
		if (k[i].head) {
			sigset_next(&sigs);
			continue;
		}
		r = sigset_rep(&sigs, k, blk, i);
		if (r < 0)
			goto nomem;
		k[i].rep = (size_t)r;
		if ((size_t)r != i &&
		    !issuer_ok(blk + k[k[r].best].boff, k[k[r].best].blen,
			       keyid) &&
		    issuer_ok(blk + k[i].boff, k[i].blen, keyid))
			k[r].best = i;
	}
	for (size_t i = 0; i < nk; i++) {
		const unsigned char *p = blk + k[i].off;
		size_t plen = k[i].end - k[i].off;

		if (!k[i].head && k[k[i].rep].best != i)
			continue;
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
 * (smp_crypto_filter_keep with every one of them), into *out. */
int smp_crypto_dedup_key(const unsigned char *blk, size_t len,
			 unsigned char **out, size_t *outlen)
{
	size_t ku, ks;

	return smp_crypto_filter_keep(blk, len, NULL, 0, NULL, 0,
				      FK_ALL_UIDS | FK_ALL_SUBS, out, outlen,
				      &ku, &ks);
}

/* smp_crypto_filter_keep for one user ID and at most one subkey (subfpr
 * NULL). */
int smp_crypto_filter_minimal(const unsigned char *blk, size_t len,
			      const char *uid, const char *subfpr,
			      unsigned char **out, size_t *outlen,
			      bool *kept_uid, bool *kept_sub)
{
	size_t ku = 0, ks = 0;
	int rc = smp_crypto_filter_keep(blk, len, &uid, 1, &subfpr,
					subfpr ? 1 : 0, 0, out, outlen, &ku,
					&ks);

	*kept_uid = ku > 0;
	*kept_sub = ks > 0;
	return rc;
}
