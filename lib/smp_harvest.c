/* smp_harvest.c - the harvest rules of SPEC.md 4, applied through the
 * keyring store in one transaction per message. See smp_harvest.h. */
#include "smp_address.h"
#include "smp_harvest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smp_packets.h"

/* ------------------------------------------------------------------ */
/* Names                                                               */

static const char *const conflict_names[] = {
	[SMP_ON_CONFLICT_FLAG] = "flag",
	[SMP_ON_CONFLICT_KEEP] = "keep",
	[SMP_ON_CONFLICT_REPLACE] = "replace",
};

static const char *const auth_names[] = {
	[SMP_REQUIRE_AUTH_NONE] = "none",
	[SMP_REQUIRE_AUTH_DKIM] = "dkim",
	[SMP_REQUIRE_AUTH_DMARC] = "dmarc",
};

static const char *const outcome_names[SMP_HV_COUNT] = {
	[SMP_HV_REFUSED] = "refused",
	[SMP_HV_HARVESTED] = "harvested",
	[SMP_HV_MERGED] = "merged",
	[SMP_HV_SEEN] = "seen",
	[SMP_HV_CONFLICT] = "conflict",
	[SMP_HV_KEPT] = "kept",
	[SMP_HV_REPLACED] = "replaced",
	[SMP_HV_REVOKED] = "revoked",
};

static const char *const reason_tokens[SMP_HR_COUNT] = {
	[SMP_HR_NONE] = "",
	[SMP_HR_SENDER_MISMATCH] = "sender-mismatch",
	[SMP_HR_OWN_DOMAIN] = "own-domain",
	[SMP_HR_NOT_AUTHENTICATED] = "not-authenticated",
	[SMP_HR_TOO_LARGE] = "too-large",
	[SMP_HR_SECRET] = "secret",
	[SMP_HR_BAD_KEY] = "bad-key",
	[SMP_HR_TOO_MANY_UIDS] = "too-many-uids",
	[SMP_HR_BLOCKED] = "blocked",
	[SMP_HR_UNUSABLE] = "unusable",
	[SMP_HR_REVOKED] = "revoked",
	[SMP_HR_EXPIRED] = "expired",
	[SMP_HR_WEAK_ALGORITHM] = "weak-algorithm",
	[SMP_HR_NO_ENCRYPTION_SUBKEY] = "no-encryption-subkey",
	[SMP_HR_NO_MATCHING_UID] = "no-matching-uid",
	[SMP_HR_DUPLICATE_ADDRESS] = "duplicate-address",
	[SMP_HR_BLOCKED_BINDING] = "blocked-binding",
	[SMP_HR_PINNED] = "pinned",
	[SMP_HR_OLDER_MESSAGE] = "older-message",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

const char *smp_on_conflict_name(enum smp_on_conflict v)
{
	return (unsigned)v < N_OF(conflict_names) ? conflict_names[v] : NULL;
}

int smp_on_conflict_parse(const char *name)
{
	for (size_t i = 0; name && i < N_OF(conflict_names); i++)
		if (strcmp(name, conflict_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *smp_require_auth_name(enum smp_require_auth v)
{
	return (unsigned)v < N_OF(auth_names) ? auth_names[v] : NULL;
}

int smp_require_auth_parse(const char *name)
{
	for (size_t i = 0; name && i < N_OF(auth_names); i++)
		if (strcmp(name, auth_names[i]) == 0)
			return (int)i;
	return -1;
}

unsigned smp_harvest_source_bit(const char *name)
{
	int s = smp_key_source_parse(name);

	if (s < 0 || s == SMP_SRC_ADMIN)
		return 0;
	return SMP_HARVEST_SRC(s);
}

const char *smp_harvest_outcome_name(enum smp_harvest_outcome o)
{
	return (unsigned)o < SMP_HV_COUNT ? outcome_names[o] : NULL;
}

const char *smp_harvest_reason_token(enum smp_harvest_reason r)
{
	return (unsigned)r < SMP_HR_COUNT ? reason_tokens[r] : NULL;
}

void smp_harvest_config_init(struct smp_harvest_config *c)
{
	memset(c, 0, sizeof(*c));
	c->sources = SMP_HARVEST_SRC_DEFAULT;
	c->require_auth = SMP_REQUIRE_AUTH_NONE;
	c->on_conflict = SMP_ON_CONFLICT_FLAG;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */

void smp_harvest_report_clear(struct smp_harvest_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->lines[i].address);
	free(r->lines);
	memset(r, 0, sizeof(*r));
}

size_t smp_harvest_report_format(const struct smp_harvest_report *r,
				 char *buf, size_t size)
{
	size_t len = 0;
	int n;

#define PUT(...)                                                           \
	do {                                                               \
		n = snprintf(buf ? buf + (len < size ? len : size) : NULL, \
			     len < size ? size - len : 0, __VA_ARGS__);    \
		if (n > 0)                                                 \
			len += (size_t)n;                                  \
	} while (0)

	if (buf && size)
		buf[0] = '\0';
	PUT("harvested=%u refused=%u", r->harvested, r->refused);
	for (size_t i = 0; i < r->n; i++) {
		const struct smp_harvest_line *l = &r->lines[i];
		if (l->reason != SMP_HR_NONE)
			PUT(" [%s:%s %s]", outcome_names[l->outcome],
			    reason_tokens[l->reason], l->fpr[0] ? l->fpr : "-");
		else
			PUT(" [%s %s]", outcome_names[l->outcome],
			    l->fpr[0] ? l->fpr : "-");
	}
#undef PUT
	return len;
}

/* ------------------------------------------------------------------ */
/* Authentication-Results (RFC 8601), read minimally                   */

/* Copies v without comments; quoted strings are kept as they are. */
static char *strip_comments(const char *v)
{
	size_t n = strlen(v);
	char *o = malloc(n + 1), *p = o;
	int depth = 0;
	bool quoted = false;

	if (!o)
		return NULL;
	for (const char *s = v; *s; s++) {
		if (quoted) {
			*p++ = *s;
			if (*s == '\\' && s[1])
				*p++ = *++s;
			else if (*s == '"')
				quoted = false;
		} else if (depth) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')')
				depth--;
		} else if (*s == '(') {
			depth = 1;
			*p++ = ' ';
		} else {
			if (*s == '"')
				quoted = true;
			*p++ = *s == '\r' || *s == '\n' || *s == '\t' ? ' ' : *s;
		}
	}
	*p = '\0';
	return o;
}

/* Next token of s (white space separated, ';' its own token); quotes
 * removed. Returns false at the end. */
static bool next_token(char **s, char *tok, size_t size)
{
	char *p = *s;
	size_t n = 0;
	bool quoted = false;

	while (*p == ' ')
		p++;
	if (!*p)
		return false;
	if (*p == ';') {
		snprintf(tok, size, ";");
		*s = p + 1;
		return true;
	}
	for (; *p && (quoted || (*p != ' ' && *p != ';')); p++) {
		if (*p == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && *p == '\\' && p[1])
			p++;
		if (n + 1 < size)
			tok[n++] = *p;
	}
	tok[n] = '\0';
	*s = p;
	return true;
}

/* Copies s into d[0..n), cut short when it does not fit. */
static void scopy(char *d, size_t n, const char *s)
{
	size_t l = strlen(s);

	if (l >= n)
		l = n - 1;
	memcpy(d, s, l);
	d[l] = '\0';
}

/* Is d the sender's domain or a parent domain of it? */
static bool aligned(const char *d, const char *sender_domain)
{
	size_t a = strlen(d), b = strlen(sender_domain);

	if (a == 0)
		return false;
	if (a == b)
		return strcasecmp(d, sender_domain) == 0;
	return b > a && sender_domain[b - a - 1] == '.' &&
	       strcasecmp(sender_domain + (b - a), d) == 0;
}

bool smp_harvest_auth_ok(enum smp_require_auth mode, const char *authserv_id,
			 const char *sender_domain,
			 const char *const *values, size_t n)
{
	char tok[512];

	if (mode == SMP_REQUIRE_AUTH_NONE)
		return true;
	if (!authserv_id || !*authserv_id || !sender_domain || !*sender_domain)
		return false;
	for (size_t i = 0; values && i < n; i++) {
		char *buf, *s;
		bool ours = false, ok = false;

		if (!values[i] || !(buf = strip_comments(values[i])))
			continue;
		s = buf;
		/* authserv-id [version] ; */
		if (next_token(&s, tok, sizeof(tok)) &&
		    strcasecmp(tok, authserv_id) == 0)
			ours = true;
		while (ours && next_token(&s, tok, sizeof(tok)) &&
		       strcmp(tok, ";") != 0)
			;
		/* resinfo ; resinfo ; ... */
		while (ours && !ok) {
			char method[64] = "", result[64] = "";
			bool pass = false, match = false, has_from = false;
			bool first = true, any = false;

			while (next_token(&s, tok, sizeof(tok)) &&
			       strcmp(tok, ";") != 0) {
				char *eq = strchr(tok, '=');
				any = true;
				if (!eq)
					continue;
				*eq = '\0';
				if (first) {
					char *slash = strchr(tok, '/');
					if (slash)
						*slash = '\0';
					scopy(method, sizeof(method), tok);
					scopy(result, sizeof(result), eq + 1);
					first = false;
					continue;
				}
				if (strcasecmp(tok, "header.d") == 0 ||
				    strcasecmp(tok, "header.i") == 0) {
					const char *d = strrchr(eq + 1, '@');
					d = d ? d + 1 : eq + 1;
					if (strcasecmp(method, "dkim") == 0 &&
					    aligned(d, sender_domain))
						match = true;
				} else if (strcasecmp(tok, "header.from") == 0) {
					const char *d = strrchr(eq + 1, '@');
					d = d ? d + 1 : eq + 1;
					has_from = true;
					if (strcasecmp(method, "dmarc") == 0 &&
					    strcasecmp(d, sender_domain) == 0)
						match = true;
				}
			}
			if (!any)
				break;
			pass = strcasecmp(result, "pass") == 0;
			if (mode == SMP_REQUIRE_AUTH_DKIM && pass &&
			    strcasecmp(method, "dkim") == 0 && match)
				ok = true;
			if (mode == SMP_REQUIRE_AUTH_DMARC && pass &&
			    strcasecmp(method, "dmarc") == 0 &&
			    (match || !has_from))
				ok = true;
		}
		free(buf);
		if (ok)
			return true;
	}
	return false;
}


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
	bool live;                   /* handed to gpg */
	bool dup;                    /* a later copy of an earlier key */
	bool revoked_update;         /* revoked, stored, bound: merge it */
	const struct smp_gpg_key *key;   /* gpg's listing of the block */
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
	const struct smp_gpg_key *key;   /* gpg's listing of rec.material */
};

/* The merged minimal key of one fingerprint. */
struct material {
	bool done;
	unsigned char *data;         /* NULL: gpg produced nothing usable */
	size_t len;
	struct smp_gpg_key *key;     /* gpg's listing of data */
	size_t nkey;
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
	struct material m;
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
	struct smp_gpg *g;
	const struct smp_harvest_ctx *ctx;
	struct smp_harvest_report *rep;
	struct smp_limits lim;
	int64_t now, date;
	char *sender;                /* normalised */
	const char *sender_domain;   /* inside sender */
	unsigned long ops0;

	struct cand *c;
	size_t nc;
	struct stored *st;
	size_t nst;
	struct smp_gpg_key *keys;    /* the first inspection */
	size_t nkeys;
	struct subject *sub;
	size_t nsub;
};

static int fail(struct hv *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct hv *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->rep->error, sizeof(h->rep->error), fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct hv *h)
{
	return fail(h, "out of memory");
}

static int db_fail(struct hv *h)
{
	return fail(h, "keyring: %s", smp_keyring_errmsg(h->kr));
}

static int gpg_fail(struct hv *h)
{
	return fail(h, "%s", smp_gpg_errmsg(h->g));
}

static void free_material(struct material *m)
{
	free(m->data);
	free(m->based_on);
	smp_gpg_keys_free(m->key, m->nkey);
	memset(m, 0, sizeof(*m));
}

static void free_state(struct state *s)
{
	smp_bindings_free(s->b, s->nb);
	if (s->have_rec)
		smp_key_rec_clear(&s->rec);
	memset(s, 0, sizeof(*s));
}

static void free_hv(struct hv *h)
{
	for (size_t i = 0; i < h->nc; i++) {
		free(h->c[i].keep);
		free(h->c[i].filtered);
	}
	free(h->c);
	for (size_t i = 0; i < h->nst; i++)
		if (h->st[i].present)
			smp_key_rec_clear(&h->st[i].rec);
	free(h->st);
	smp_gpg_keys_free(h->keys, h->nkeys);
	for (size_t i = 0; i < h->nsub; i++)
		free_material(&h->sub[i].m);
	free(h->sub);
	free(h->sender);
}

/* Reads the sender's bindings and the key record of fpr (may be NULL). */
static int read_state(struct hv *h, const char *fpr, struct state *s)
{
	int r;

	memset(s, 0, sizeof(*s));
	if (smp_keyring_bindings_for(h->kr, h->sender, &s->b, &s->nb) < 0)
		return db_fail(h);
	if (!fpr)
		return 0;
	r = smp_keyring_key_get(h->kr, fpr, &s->rec);
	if (r < 0) {
		free_state(s);
		return db_fail(h);
	}
	s->have_rec = r == 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Message level                                                        */

static bool domain_skipped(const struct smp_harvest_config *cfg,
			   const char *domain)
{
	size_t dl = strlen(domain);

	for (size_t i = 0; i < cfg->n_skip_domains; i++) {
		const char *s = cfg->skip_domains[i];
		size_t sl;

		if (!s || !*s)
			continue;
		sl = strlen(s);
		if (s[0] == '.') {
			if (dl >= sl && strcasecmp(domain + dl - sl, s) == 0)
				return true;
		} else if (strcasecmp(domain, s) == 0) {
			return true;
		}
	}
	return false;
}

static enum smp_harvest_reason message_reason(struct hv *h)
{
	const struct smp_harvest_ctx *ctx = h->ctx;
	char *from;
	bool same;

	if (!h->sender || ctx->nfrom != 1 || !ctx->from || !ctx->from[0])
		return SMP_HR_SENDER_MISMATCH;
	/* the keyring binds only what smp_address_check() takes: a sender
	 * it refuses is refused here, not met as a keyring error later */
	if (smp_address_check(h->sender) != SMP_ADDR_OK)
		return SMP_HR_SENDER_MISMATCH;
	from = smp_address_normalize(ctx->from[0]);
	same = from && strcmp(from, h->sender) == 0;
	free(from);
	if (!same)
		return SMP_HR_SENDER_MISMATCH;
	if (!ctx->outbound && domain_skipped(ctx->cfg, h->sender_domain))
		return SMP_HR_OWN_DOMAIN;
	if (ctx->cfg->require_auth != SMP_REQUIRE_AUTH_NONE &&
	    !smp_harvest_auth_ok(ctx->cfg->require_auth,
				 ctx->cfg->authserv_id, h->sender_domain,
				 ctx->auth_results, ctx->nauth_results))
		return SMP_HR_NOT_AUTHENTICATED;
	return SMP_HR_NONE;
}

/* ------------------------------------------------------------------ */
/* Framing (no gpg)                                                     */

static struct cand *new_cand(struct hv *h, unsigned part,
			     enum smp_key_source src)
{
	struct cand *nc = realloc(h->c, (h->nc + 1) * sizeof(*nc)), *c;

	if (!nc)
		return NULL;
	h->c = nc;
	c = &nc[h->nc++];
	memset(c, 0, sizeof(*c));
	c->part = part;
	c->source = src;
	c->outcome = SMP_HV_REFUSED;
	return c;
}

static enum smp_harvest_reason part_reason(const struct hv *h,
					   const struct smp_key_part *p)
{
	if (p->size > h->lim.max_key_bytes)
		return SMP_HR_TOO_LARGE;
	if (p->kind == SMP_KEY_SECRET)
		return SMP_HR_SECRET;
	if (!p->data || p->size == 0 || p->kind == SMP_KEY_BAD)
		return SMP_HR_BAD_KEY;
	switch (smp_packets_check_keyblock(p->data, p->size, NULL)) {
	case SMP_KEYBLOCK_SECRET:
		return SMP_HR_SECRET;
	case SMP_KEYBLOCK_BAD:
		return SMP_HR_BAD_KEY;
	default:
		return SMP_HR_NONE;
	}
}

static int frame_parts(struct hv *h, const struct smp_key_part *parts,
		       size_t nparts, const bool *use)
{
	const struct smp_harvest_ctx *ctx = h->ctx;
	unsigned nkeys = 0;

	for (size_t i = 0; i < nparts; i++) {
		const struct smp_key_part *p = &parts[i];
		enum smp_key_source src = ctx->part_sources ?
						  ctx->part_sources[i] :
						  ctx->source;
		enum smp_harvest_reason r;
		struct smp_keyblock *kb = NULL;
		size_t nkb = 0;
		struct cand *c;

		if (!use[i])
			continue;
		r = part_reason(h, p);
		if (r == SMP_HR_NONE &&
		    smp_keyblock_split(p->data, p->size, &kb, &nkb) != 0) {
			if (errno == ENOMEM)
				return oom(h);
			r = SMP_HR_BAD_KEY;
		}
		if (r != SMP_HR_NONE) {
			if (!(c = new_cand(h, (unsigned)i, src)))
				return oom(h);
			c->reason = r;
			continue;
		}
		for (size_t k = 0; k < nkb; k++) {
			if (!(c = new_cand(h, (unsigned)i, src))) {
				free(kb);
				return oom(h);
			}
			c->data = p->data + kb[k].off;
			c->len = kb[k].len;
			c->kb = kb[k];
			if (++nkeys > h->lim.max_keys ||
			    c->len > h->lim.max_key_bytes)
				c->reason = SMP_HR_TOO_LARGE;
			else if (c->kb.secret)
				c->reason = SMP_HR_SECRET;
			else if (c->kb.version < 4)
				c->reason = SMP_HR_WEAK_ALGORITHM;
			else if (!c->kb.fpr[0])
				c->reason = SMP_HR_UNUSABLE;
			else if (c->kb.nuids > h->lim.max_uids)
				c->reason = SMP_HR_TOO_MANY_UIDS;
		}
		free(kb);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The stored versions (reads outside the transaction)                 */

static struct stored *find_stored(struct hv *h, const char *fpr)
{
	for (size_t i = 0; i < h->nst; i++)
		if (strcmp(h->st[i].fpr, fpr) == 0)
			return &h->st[i];
	return NULL;
}

/* Reads the key record of every candidate's fingerprint once; a blocked
 * one refuses its candidates right here. */
static int fetch_stored(struct hv *h)
{
	h->st = calloc(h->nc + 1, sizeof(*h->st));
	if (!h->st)
		return oom(h);
	for (size_t i = 0; i < h->nc; i++) {
		struct cand *c = &h->c[i];
		struct stored *s;
		int r;

		if (c->reason != SMP_HR_NONE)
			continue;
		s = find_stored(h, c->kb.fpr);
		if (!s) {
			s = &h->st[h->nst];
			snprintf(s->fpr, sizeof(s->fpr), "%s", c->kb.fpr);
			r = smp_keyring_key_get(h->kr, c->kb.fpr, &s->rec);
			if (r < 0)
				return db_fail(h);
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

/* ------------------------------------------------------------------ */
/* gpg's view                                                           */

/* gpgme_pubkey_algo_t values (RFC 4880 9.1 numbers) */
enum { A_RSA = 1, A_RSA_E = 2, A_RSA_S = 3, A_ELG_E = 16, A_DSA = 17,
       A_ELG = 20 };

static bool algo_weak(unsigned algo, unsigned bits)
{
	switch (algo) {
	case A_RSA:
	case A_RSA_E:
	case A_RSA_S:
		return bits < 2048;
	case A_DSA:
	case A_ELG_E:
	case A_ELG:
		return true;
	default:
		return false;
	}
}

static bool subkey_usable(const struct smp_gpg_subkey *s, int64_t now)
{
	return s->can_encrypt && !s->revoked && !s->invalid && !s->disabled &&
	       !s->expired && (s->expires == 0 || s->expires > now);
}

/* The rules on gpg's listing of one key. */
static enum smp_harvest_reason key_reason(const struct hv *h,
					  const struct smp_gpg_key *k)
{
	bool any_enc = false, strong_enc = false;

	if (k->secret)
		return SMP_HR_SECRET;
	if (k->invalid || k->nsubkeys == 0)
		return SMP_HR_UNUSABLE;
	if (k->revoked)
		return SMP_HR_REVOKED;
	if (k->expired || (k->expires != 0 && k->expires <= h->now))
		return SMP_HR_EXPIRED;
	if ((k->version && k->version < 4) ||
	    algo_weak(k->pubkey_algo, k->bits))
		return SMP_HR_WEAK_ALGORITHM;
	for (size_t i = 0; i < k->nsubkeys; i++) {
		const struct smp_gpg_subkey *s = &k->subkeys[i];
		if (!subkey_usable(s, h->now))
			continue;
		any_enc = true;
		if (!algo_weak(s->pubkey_algo, s->bits))
			strong_enc = true;
	}
	if (!any_enc)
		return SMP_HR_NO_ENCRYPTION_SUBKEY;
	if (!strong_enc)
		return SMP_HR_WEAK_ALGORITHM;
	return SMP_HR_NONE;
}

/* The user IDs of the candidate whose email is the sender (revoked ones
 * too when with_revoked), and its block filtered down to them. */
static int match_uids(struct hv *h, struct cand *c, bool with_revoked)
{
	const struct smp_gpg_key *k = c->key;
	unsigned kept = 0;

	c->nkeep = 0;
	c->keep = calloc(k->nuids + 1, sizeof(*c->keep));
	if (!c->keep)
		return oom(h);
	for (size_t u = 0; u < k->nuids; u++) {
		const struct smp_gpg_uid *id = &k->uids[u];
		char *a;

		if (id->invalid || (id->revoked && !with_revoked))
			continue;
		a = smp_address_normalize(id->email);
		if (a && strcmp(a, h->sender) == 0)
			c->keep[c->nkeep++] = id->uid;
		free(a);
	}
	if (c->nkeep == 0)
		return 0;
	if (smp_keyblock_filter(c->data, c->len, c->keep, c->nkeep,
				&c->filtered, &c->flen, &kept) != 0) {
		if (errno == ENOMEM)
			return oom(h);
		kept = 0;
	}
	if (kept == 0) /* gpg's user ID and the packet differ: not ours */
		c->nkeep = 0;
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

/* One gpg process for every live candidate and the stored versions of
 * their fingerprints (stored first: gpg stops at a block it cannot
 * parse, and only a sender's block can be such). */
static int inspect(struct hv *h)
{
	struct buf b = {0};
	size_t *blk = calloc(h->nc + 1, sizeof(*blk));
	size_t next;
	int rc = -1;

	if (!blk)
		return oom(h);
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
	if (smp_gpg_inspect(h->g, b.p, b.len, &h->keys, &h->nkeys)) {
		rc = gpg_fail(h);
		goto out;
	}
	for (size_t k = 0; k < h->nkeys; k++) {
		const struct smp_gpg_key *key = &h->keys[k];
		bool mine = false;

		for (size_t i = 0; i < h->nc; i++) {
			if (h->c[i].live && key->block == blk[i]) {
				h->c[i].key = key;
				mine = true;
			}
		}
		if (!mine) {
			struct stored *s = find_stored(h, key->fpr);
			if (s && s->present && !s->key)
				s->key = key;
		}
	}
	rc = 0;
	goto out;
nomem:
	rc = oom(h);
out:
	free(b.p);
	free(blk);
	return rc;
}

/* After gpg's listing: the per-key rules and the sender's user IDs. */
static int key_rules(struct hv *h)
{
	for (size_t i = 0; i < h->nc; i++) {
		struct cand *c = &h->c[i];

		if (!c->live)
			continue;
		if (!c->key) {
			c->reason = SMP_HR_UNUSABLE;
			continue;
		}
		c->reason = key_reason(h, c->key);
		if (c->reason != SMP_HR_NONE && c->reason != SMP_HR_REVOKED)
			continue;
		if (match_uids(h, c, c->reason == SMP_HR_REVOKED))
			return -1;
		if (c->nkeep == 0 && c->reason == SMP_HR_NONE)
			c->reason = SMP_HR_NO_MATCHING_UID;
	}
	/* one key twice counts once; a revocation in either copy wins */
	for (size_t i = 0; i < h->nc; i++) {
		struct cand *c = &h->c[i];
		if (!c->live)
			continue;
		for (size_t j = 0; j < i; j++) {
			struct cand *e = &h->c[j];
			if (!e->live || e->dup ||
			    strcmp(e->kb.fpr, c->kb.fpr) != 0)
				continue;
			c->dup = true;
			if (c->reason == SMP_HR_REVOKED &&
			    e->reason == SMP_HR_NONE) {
				e->reason = SMP_HR_REVOKED;
				if (c->nkeep && !e->nkeep) {
					e->keep = c->keep;
					e->nkeep = c->nkeep;
					c->keep = NULL;
					c->nkeep = 0;
				}
			}
			if (e->reason == SMP_HR_NO_MATCHING_UID &&
			    c->reason == SMP_HR_NONE)
				e->reason = SMP_HR_NONE;
			break;
		}
	}
	return 0;
}

/* Does the new listing n say something the stored listing s lacks? */
static bool listing_adds(const struct smp_gpg_key *n,
			 const struct smp_gpg_key *s, const char *const *keep,
			 size_t nkeep)
{
	if (!n || !s)
		return true;
	if (n->expires != s->expires || n->revoked != s->revoked)
		return true;
	for (size_t i = 0; i < n->nsubkeys; i++) {
		const struct smp_gpg_subkey *a = &n->subkeys[i], *b = NULL;
		for (size_t j = 0; j < s->nsubkeys && !b; j++)
			if (strcmp(s->subkeys[j].keyid, a->keyid) == 0)
				b = &s->subkeys[j];
		if (!b || a->expires != b->expires ||
		    a->revoked != b->revoked ||
		    a->can_encrypt != b->can_encrypt ||
		    a->can_sign != b->can_sign)
			return true;
	}
	for (size_t i = 0; i < nkeep; i++) {
		bool found = false;
		for (size_t j = 0; j < s->nuids && !found; j++)
			found = strcmp(s->uids[j].uid, keep[i]) == 0 &&
				!s->uids[j].revoked;
		if (!found)
			return true;
	}
	for (size_t j = 0; j < s->nuids; j++)
		for (size_t i = 0; i < n->nuids; i++)
			if (strcmp(n->uids[i].uid, s->uids[j].uid) == 0 &&
			    n->uids[i].revoked && !s->uids[j].revoked)
				return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Material                                                             */

static bool cand_of(const struct cand *c, const struct subject *sub)
{
	return c->live && c->filtered && strcmp(c->kb.fpr, sub->fpr) == 0 &&
	       (sub->revoke ? c->revoked_update : c->reason == SMP_HR_NONE);
}

/*
 * Merges the stored material (rec, may be NULL) and the subject's
 * candidates (already cut down to the sender's user IDs) in the home,
 * exports the key minimal, keeps only the user IDs of the stored
 * material and the sender's, and lists the result: three gpg processes.
 * m->data stays NULL when gpg took nothing.
 */
static int make_material(struct hv *h, struct subject *sub,
			 const struct smp_key_rec *rec)
{
	struct material *m = &sub->m;
	struct buf in = {0};
	char **stored_uids = NULL;
	size_t nstored_uids = 0, nkeep = 0;
	const char **keep = NULL;
	unsigned char *exp = NULL;
	size_t elen = 0, nkb = 0;
	struct smp_keyblock *kb = NULL;
	int rc = -1;

	free_material(m);
	m->done = true;
	m->had_rec = rec != NULL;
	if (rec && rec->material_len) {
		m->based_on = malloc(rec->material_len);
		if (!m->based_on)
			goto nomem;
		memcpy(m->based_on, rec->material, rec->material_len);
		m->based_len = rec->material_len;
		if (buf_put(&in, rec->material, rec->material_len) ||
		    smp_keyblock_uids(rec->material, rec->material_len,
				      &stored_uids, &nstored_uids))
			goto nomem;
	}
	for (size_t i = 0; i < h->nc; i++) {
		const struct cand *c = &h->c[i];
		if (!cand_of(c, sub))
			continue;
		if (buf_put(&in, c->filtered, c->flen))
			goto nomem;
		nkeep += c->nkeep;
	}
	keep = calloc(nkeep + nstored_uids + 1, sizeof(*keep));
	if (!keep)
		goto nomem;
	nkeep = 0;
	for (size_t i = 0; i < nstored_uids; i++)
		keep[nkeep++] = stored_uids[i];
	for (size_t i = 0; i < h->nc; i++)
		for (size_t u = 0; cand_of(&h->c[i], sub) && u < h->c[i].nkeep;
		     u++)
			keep[nkeep++] = h->c[i].keep[u];

	if (smp_gpg_import(h->g, in.p, in.len, NULL) ||
	    smp_gpg_export_minimal(h->g, &sub->fpr, 1, &exp, &elen)) {
		rc = gpg_fail(h);
		goto out;
	}
	if (elen && smp_keyblock_split(exp, elen, &kb, &nkb) != 0 &&
	    errno == ENOMEM)
		goto nomem;
	for (size_t i = 0; i < nkb; i++) {
		unsigned kept = 0;
		if (strcmp(kb[i].fpr, sub->fpr) != 0)
			continue;
		if (smp_keyblock_filter(exp + kb[i].off, kb[i].len, keep,
					nkeep, &m->data, &m->len, &kept)) {
			if (errno == ENOMEM)
				goto nomem;
		} else if (kept == 0) {
			free(m->data);
			m->data = NULL;
			m->len = 0;
		}
		break;
	}
	if (m->data &&
	    smp_gpg_inspect(h->g, m->data, m->len, &m->key, &m->nkey)) {
		rc = gpg_fail(h);
		goto out;
	}
	if (m->data && (m->nkey != 1 || strcmp(m->key[0].fpr, sub->fpr))) {
		free(m->data);
		m->data = NULL;
		m->len = 0;
	}
	rc = 0;
	goto out;
nomem:
	rc = oom(h);
out:
	free(in.p);
	free(keep);
	free(exp);
	free(kb);
	smp_strv_free(stored_uids, nstored_uids);
	return rc;
}

static bool same_rec(const struct smp_key_rec *a, bool have_a,
		     const struct smp_key_rec *b, bool have_b)
{
	if (!have_a || !have_b)
		return have_a == have_b;
	return a->material_len == b->material_len &&
	       (a->material_len == 0 ||
		memcmp(a->material, b->material, a->material_len) == 0);
}

/* Is m made from what rec holds now? */
static bool material_current(const struct material *m,
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

/* ------------------------------------------------------------------ */
/* Decisions                                                            */

struct decision {
	enum smp_harvest_outcome outcome;
	enum smp_harvest_reason reason;
	const struct smp_binding *bf;   /* the sender's binding of the key */
	bool binding_untouched;         /* pinned: only the key may change */
	bool need_material;             /* a new or changed key to store */
};

static int64_t newest_date(const struct state *s)
{
	int64_t d = 0;

	for (size_t i = 0; i < s->nb; i++)
		if (s->b[i].msg_date > d)
			d = s->b[i].msg_date;
	return d;
}

/* What the rules say for the subject given the stored state; changed:
 * the message brings something the stored key lacks (or none is). */
static void decide(const struct hv *h, const struct subject *sub,
		   const struct state *s, bool changed, struct decision *d)
{
	const struct smp_binding *bf = NULL;
	bool pinned_other = false, competitors = false;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < s->nb; i++) {
		const struct smp_binding *b = &s->b[i];
		if (strcmp(b->fpr, sub->fpr) == 0)
			bf = b;
		else if (b->state == SMP_BIND_PINNED)
			pinned_other = true;
		else if (b->state == SMP_BIND_ACTIVE ||
			 b->state == SMP_BIND_CONFLICT)
			competitors = true;
	}
	d->bf = bf;
	d->outcome = SMP_HV_REFUSED;
	if (s->have_rec && s->rec.blocked) {
		d->reason = SMP_HR_BLOCKED;
		return;
	}
	if (bf && bf->state == SMP_BIND_BLOCKED) {
		d->reason = SMP_HR_BLOCKED_BINDING;
		return;
	}
	if (s->have_rec && s->rec.revoked) {
		/* revoked once, revoked for good (an old copy of the key
		 * does not bring it back) */
		d->reason = SMP_HR_REVOKED;
		return;
	}
	if (sub->revoke) {
		/* the owner revoked a key we hold for this address */
		d->reason = SMP_HR_REVOKED;
		if (s->have_rec && !s->rec.revoked && bf && changed) {
			d->outcome = SMP_HV_REVOKED;
			d->need_material = true;
			d->binding_untouched = bf->state == SMP_BIND_PINNED;
		}
		return;
	}
	if (bf && bf->state == SMP_BIND_PINNED) {
		d->binding_untouched = true;
		d->outcome = changed ? SMP_HV_MERGED : SMP_HV_SEEN;
		d->need_material = changed;
		return;
	}
	if (pinned_other) {
		d->reason = SMP_HR_PINNED;
		return;
	}
	if (h->date < newest_date(s)) {
		d->reason = SMP_HR_OLDER_MESSAGE;
		return;
	}
	if (bf && (bf->state == SMP_BIND_ACTIVE ||
		   bf->state == SMP_BIND_CONFLICT)) {
		d->outcome = changed ? SMP_HV_MERGED : SMP_HV_SEEN;
		d->need_material = changed;
		return;
	}
	d->need_material = changed || !s->have_rec;
	if (!competitors) {
		d->outcome = SMP_HV_HARVESTED;
		return;
	}
	switch (h->ctx->cfg->on_conflict) {
	case SMP_ON_CONFLICT_KEEP:
		d->outcome = SMP_HV_KEPT;
		d->need_material = false;
		break;
	case SMP_ON_CONFLICT_REPLACE:
		d->outcome = SMP_HV_REPLACED;
		break;
	default:
		d->outcome = SMP_HV_CONFLICT;
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */

static bool self_encrypted(const struct hv *h, const struct smp_gpg_key *k)
{
	const struct smp_msg_info *mi = h->ctx->msg;

	if (!mi || !k)
		return false;
	for (size_t i = 0; i < k->nsubkeys; i++) {
		if (!k->subkeys[i].can_encrypt)
			continue;
		for (unsigned e = 0; e < mi->n_esk_kept &&
				     e < SMP_MSG_MAX_ESK_KEPT; e++)
			if (mi->esk[e].type == SMP_ESK_PUBKEY &&
			    strcasecmp(mi->esk[e].keyid,
				       k->subkeys[i].keyid) == 0)
				return true;
	}
	return false;
}

static int event(struct hv *h, const char *address, const char *fpr,
		 const char *what, const char *detail)
{
	struct smp_event e;

	memset(&e, 0, sizeof(e));
	e.at = h->now;
	e.address = (char *)address;
	snprintf(e.fpr, sizeof(e.fpr), "%s", fpr ? fpr : "");
	e.event = (char *)what;
	e.detail = (char *)detail;
	e.message_id = (char *)h->ctx->message_id;
	if (smp_keyring_event_add(h->kr, &e) < 0)
		return db_fail(h);
	return 0;
}

static void enc_keyids(const struct smp_gpg_key *k, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < k->nsubkeys; i++) {
		const struct smp_gpg_subkey *s = &k->subkeys[i];
		size_t need = strlen(s->keyid) + (len ? 1 : 0);
		if (!s->can_encrypt || s->revoked || s->invalid)
			continue;
		if (len + need + 1 > size)
			break;
		len += (size_t)snprintf(out + len, size - len, "%s%s",
					len ? " " : "", s->keyid);
	}
}

static int put_key(struct hv *h, const struct material *m,
		   const struct smp_key_rec *old)
{
	const struct smp_gpg_key *k = &m->key[0];
	struct smp_key_rec r;

	memset(&r, 0, sizeof(r));
	snprintf(r.fpr, sizeof(r.fpr), "%s", k->fpr);
	r.material = m->data;
	r.material_len = m->len;
	snprintf(r.algo, sizeof(r.algo), "%s", k->algo);
	r.bits = k->bits;
	r.created = k->created;
	r.expires = k->expires;
	r.revoked = k->revoked;
	r.blocked = old ? old->blocked : false;
	enc_keyids(k, r.enc_keyids, sizeof(r.enc_keyids));
	r.updated = h->now;
	if (smp_keyring_key_put(h->kr, &r) < 0)
		return db_fail(h);
	return 0;
}

static int put_binding(struct hv *h, const char *fpr,
		       const struct smp_binding *old,
		       enum smp_bind_state state, enum smp_key_source src,
		       bool self_enc)
{
	struct smp_binding b;

	memset(&b, 0, sizeof(b));
	b.address = h->sender;
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	b.state = state;
	b.source = old ? old->source : src;
	b.first_seen = old && old->first_seen ? old->first_seen : h->now;
	b.last_seen = h->now;
	b.msg_date = old && old->msg_date > h->date ? old->msg_date : h->date;
	b.times_seen = (old ? old->times_seen : 0) + 1;
	b.message_id = (char *)h->ctx->message_id;
	b.client_addr = (char *)h->ctx->client_addr;
	b.self_encrypted = self_enc;
	if (smp_keyring_binding_put(h->kr, &b) < 0)
		return db_fail(h);
	return 0;
}

/* Moves the sender's other active/conflict bindings to state. */
static int demote_others(struct hv *h, const struct state *s,
			 const char *fpr, enum smp_bind_state state)
{
	char detail[128];

	for (size_t i = 0; i < s->nb; i++) {
		const struct smp_binding *b = &s->b[i];
		if (strcmp(b->fpr, fpr) == 0 || b->state == state ||
		    (b->state != SMP_BIND_ACTIVE &&
		     b->state != SMP_BIND_CONFLICT))
			continue;
		if (smp_keyring_binding_set_state(h->kr, b->address, b->fpr,
						  state) < 0)
			return db_fail(h);
		snprintf(detail, sizeof(detail), "%s key %s",
			 state == SMP_BIND_CONFLICT ? "in conflict with" :
						      "replaced by",
			 fpr);
		if (event(h, b->address, b->fpr, smp_bind_state_name(state),
			  detail))
			return -1;
	}
	return 0;
}

/* Inside the transaction: reads the state again, decides, writes. */
static int apply_subject(struct hv *h, struct subject *sub)
{
	const struct stored *st = sub->st;
	struct state s;
	struct decision d;
	const struct smp_key_rec *rec;
	struct cand *c = sub->first;
	bool changed;
	int rc = -1;

	if (read_state(h, sub->fpr, &s))
		return -1;
	rec = s.have_rec ? &s.rec : NULL;
	/* stored state changed since gpg looked: assume the key is new */
	changed = sub->changed;
	if (sub->m.done ? !material_current(&sub->m, rec) :
			  !same_rec(rec, rec != NULL, st ? &st->rec : NULL,
				    st != NULL))
		changed = true;
	decide(h, sub, &s, changed, &d);
	if (d.need_material && !material_current(&sub->m, rec) &&
	    make_material(h, sub, rec))
		goto out;
	if (d.need_material && !sub->m.data) {
		d.outcome = SMP_HV_REFUSED;
		d.reason = SMP_HR_UNUSABLE;
	} else if (d.need_material && !sub->revoke &&
		   key_reason(h, &sub->m.key[0]) != SMP_HR_NONE) {
		/* the merge with what gpg or the store knew says no (a
		 * revocation the new copy lacked, say) */
		d.outcome = SMP_HV_REFUSED;
		d.reason = key_reason(h, &sub->m.key[0]);
	} else if (d.need_material && sub->m.len > h->lim.max_key_bytes) {
		d.outcome = SMP_HV_REFUSED;
		d.reason = SMP_HR_TOO_LARGE;
	} else if (d.need_material && d.outcome == SMP_HV_MERGED && rec &&
		   rec->material_len == sub->m.len &&
		   memcmp(rec->material, sub->m.data, sub->m.len) == 0) {
		d.outcome = SMP_HV_SEEN; /* the merge gave the stored key */
		d.need_material = false;
	}
	c->outcome = d.outcome;
	c->reason = d.reason;
	if (d.outcome != SMP_HV_REFUSED)
		c->self_enc = self_encrypted(h, c->key) ||
			      (sub->m.data && self_encrypted(h, sub->m.key));

	if (d.need_material && d.outcome != SMP_HV_REFUSED &&
	    put_key(h, &sub->m, rec))
		goto out;
	switch (d.outcome) {
	case SMP_HV_HARVESTED:
		if (put_binding(h, sub->fpr, d.bf, SMP_BIND_ACTIVE, c->source,
				c->self_enc))
			goto out;
		break;
	case SMP_HV_MERGED:
	case SMP_HV_SEEN:
		if (!d.binding_untouched &&
		    put_binding(h, sub->fpr, d.bf, d.bf->state, c->source,
				c->self_enc))
			goto out;
		break;
	case SMP_HV_CONFLICT:
		if (demote_others(h, &s, sub->fpr, SMP_BIND_CONFLICT) ||
		    put_binding(h, sub->fpr, d.bf, SMP_BIND_CONFLICT,
				c->source, c->self_enc))
			goto out;
		break;
	case SMP_HV_REPLACED:
		if (demote_others(h, &s, sub->fpr, SMP_BIND_REVOKED) ||
		    put_binding(h, sub->fpr, d.bf, SMP_BIND_ACTIVE, c->source,
				c->self_enc))
			goto out;
		break;
	case SMP_HV_REVOKED:
		if (!d.binding_untouched && d.bf &&
		    (d.bf->state == SMP_BIND_ACTIVE ||
		     d.bf->state == SMP_BIND_CONFLICT) &&
		    smp_keyring_binding_set_state(h->kr, h->sender, sub->fpr,
						  SMP_BIND_REVOKED) < 0) {
			db_fail(h);
			goto out;
		}
		break;
	default:
		break;
	}
	rc = 0;
out:
	free_state(&s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The message                                                          */

/* The report lines, in part order, and one event each but "seen". */
static int report_lines(struct hv *h)
{
	struct smp_harvest_report *rep = h->rep;

	rep->lines = calloc(h->nc + 1, sizeof(*rep->lines));
	if (!rep->lines)
		return oom(h);
	for (size_t i = 0; i < h->nc; i++) {
		const struct cand *c = &h->c[i];
		struct smp_harvest_line *l;
		char detail[160];

		if (c->dup)
			continue;
		l = &rep->lines[rep->n++];
		l->part = c->part;
		l->source = c->source;
		snprintf(l->fpr, sizeof(l->fpr), "%s", c->kb.fpr);
		l->outcome = c->outcome;
		l->reason = c->reason;
		if (l->outcome == SMP_HV_REFUSED && l->reason == SMP_HR_NONE)
			l->reason = SMP_HR_UNUSABLE; /* never: be safe */
		l->self_encrypted = c->self_enc;
		if (h->sender && !(l->address = strdup(h->sender)))
			return oom(h);
		rep->count[l->outcome]++;
		/* "seen" changes nothing but the binding's counters
		 * (times_seen, last_seen): no event, or the history would
		 * grow by a row per message per known key */
		if (l->outcome == SMP_HV_SEEN)
			continue;
		if (l->reason != SMP_HR_NONE)
			snprintf(detail, sizeof(detail), "%s; source=%s",
				 reason_tokens[l->reason],
				 smp_key_source_name(l->source));
		else
			snprintf(detail, sizeof(detail),
				 "source=%s; self-encrypted=%s",
				 smp_key_source_name(l->source),
				 l->self_encrypted ? "yes" : "no");
		if (event(h, l->address, l->fpr, outcome_names[l->outcome],
			  detail))
			return -1;
	}
	rep->harvested = rep->count[SMP_HV_HARVESTED] +
			 rep->count[SMP_HV_MERGED] +
			 rep->count[SMP_HV_REPLACED];
	rep->refused = rep->count[SMP_HV_REFUSED] + rep->count[SMP_HV_REVOKED];
	return 0;
}

/* Which fingerprints get written: the one key taken for the sender (when
 * exactly one distinct key passed), and stored keys revoked by their
 * owner. */
static int pick_subjects(struct hv *h)
{
	const char *taken = NULL;
	size_t ntaken = 0;

	h->sub = calloc(h->nc + 1, sizeof(*h->sub));
	if (!h->sub)
		return oom(h);
	for (size_t i = 0; i < h->nc; i++) {
		const struct cand *c = &h->c[i];
		if (c->live && !c->dup && c->reason == SMP_HR_NONE) {
			ntaken++;
			taken = c->kb.fpr;
		}
	}
	if (ntaken > 1) {
		for (size_t i = 0; i < h->nc; i++)
			if (h->c[i].live && h->c[i].reason == SMP_HR_NONE)
				h->c[i].reason = SMP_HR_DUPLICATE_ADDRESS;
		taken = NULL;
	}
	for (size_t i = 0; i < h->nc; i++) {
		struct cand *c = &h->c[i];
		struct stored *st;
		struct subject *sub;
		bool revoke;

		if (!c->live || c->dup)
			continue;
		st = find_stored(h, c->kb.fpr);
		if (st && !st->present)
			st = NULL;
		revoke = c->reason == SMP_HR_REVOKED && c->nkeep > 0 && st;
		if (!revoke && !(taken && c->reason == SMP_HR_NONE))
			continue;
		sub = &h->sub[h->nsub++];
		sub->first = c;
		sub->fpr = c->kb.fpr;
		sub->revoke = revoke;
		sub->st = st;
		for (size_t j = 0; j < h->nc; j++) {
			struct cand *e = &h->c[j];
			if (!e->live || strcmp(e->kb.fpr, c->kb.fpr) != 0)
				continue;
			if (revoke && e->reason == SMP_HR_REVOKED &&
			    e->nkeep && !e->filtered &&
			    smp_keyblock_filter(e->data, e->len, e->keep,
						e->nkeep, &e->filtered,
						&e->flen, NULL) != 0 &&
			    errno == ENOMEM)
				return oom(h);
			e->revoked_update = revoke;
			if (listing_adds(e->key, st ? st->key : NULL,
					 e->keep, e->nkeep))
				sub->changed = true;
		}
	}
	return 0;
}

int smp_harvest_message(struct smp_keyring *kr, struct smp_gpg *g,
			const struct smp_harvest_ctx *ctx,
			const struct smp_key_part *parts, size_t nparts,
			struct smp_harvest_report *rep)
{
	struct hv h;
	bool *use = NULL, in_txn = false;
	size_t nuse = 0, nlive = 0;
	struct state s0;
	enum smp_harvest_reason mr;
	int rc = -1;

	if (!rep)
		return -1;
	memset(rep, 0, sizeof(*rep));
	memset(&h, 0, sizeof(h));
	memset(&s0, 0, sizeof(s0));
	if (!ctx || !ctx->cfg || !parts || nparts == 0)
		return 0;
	if (ctx->outbound && !ctx->cfg->outbound)
		return 0;
	h.kr = kr;
	h.g = g;
	h.ctx = ctx;
	h.rep = rep;
	h.ops0 = smp_gpg_ops(g);
	h.now = ctx->now ? ctx->now : (int64_t)time(NULL);
	/* no Date, or one in the future: now (Autocrypt) */
	h.date = ctx->msg_date > 0 && ctx->msg_date <= h.now ? ctx->msg_date :
							       h.now;
	if (ctx->limits)
		h.lim = *ctx->limits;
	else
		smp_limits_init(&h.lim);

	use = calloc(nparts, sizeof(*use));
	if (!use)
		return oom(&h);
	for (size_t i = 0; i < nparts; i++) {
		enum smp_key_source src = ctx->part_sources ?
						  ctx->part_sources[i] :
						  ctx->source;
		use[i] = (unsigned)src < SMP_SRC_ADMIN &&
			 (ctx->cfg->sources & SMP_HARVEST_SRC(src));
		nuse += use[i];
	}
	if (nuse == 0) {
		rc = 0;
		goto out;
	}
	if (!kr || !g) {
		fail(&h, "no keyring or GnuPG home to harvest into");
		goto out;
	}
	h.sender = smp_address_normalize(ctx->envelope_sender);
	if (h.sender)
		h.sender_domain = strrchr(h.sender, '@') + 1;

	mr = message_reason(&h);
	if (mr != SMP_HR_NONE) {
		for (size_t i = 0; i < nparts; i++) {
			struct cand *c;
			if (!use[i])
				continue;
			c = new_cand(&h, (unsigned)i,
				     ctx->part_sources ? ctx->part_sources[i] :
							 ctx->source);
			if (!c) {
				oom(&h);
				goto out;
			}
			c->reason = mr;
		}
	} else {
		/* framing and blocked keys: no gpg yet */
		if (frame_parts(&h, parts, nparts, use) || fetch_stored(&h))
			goto out;
		for (size_t i = 0; i < h.nc; i++)
			nlive += h.c[i].live;
		/* gpg: one process for what is left, more for a new key */
		if (nlive && (inspect(&h) || key_rules(&h) ||
			      pick_subjects(&h)))
			goto out;
		if (h.nsub && read_state(&h, NULL, &s0))
			goto out;
		for (size_t i = 0; i < h.nsub; i++) {
			struct subject *sub = &h.sub[i];
			struct decision d;

			/* a first decision on what was read: only gpg work
			 * that may count is done before the transaction */
			if (sub->st) {
				s0.rec = sub->st->rec;
				s0.have_rec = true;
			}
			decide(&h, sub, &s0, sub->changed, &d);
			s0.have_rec = false;
			memset(&s0.rec, 0, sizeof(s0.rec));
			if (d.need_material &&
			    make_material(&h, sub, sub->st ? &sub->st->rec :
							     NULL))
				goto out;
		}
	}

	if (smp_keyring_begin(kr) < 0) {
		db_fail(&h);
		goto out;
	}
	in_txn = true;
	/* revocations first: a key replaced in the same message then meets
	 * no active binding of the revoked one */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < h.nsub; i++)
			if (h.sub[i].revoke == (pass == 0) &&
			    apply_subject(&h, &h.sub[i]))
				goto out;
	if (report_lines(&h))
		goto out;
	if (smp_keyring_commit(kr) < 0) {
		db_fail(&h);
		goto out;
	}
	in_txn = false;
	rc = 0;
out:
	if (in_txn)
		smp_keyring_rollback(kr);
	if (rc != 0) {
		char keep[sizeof(rep->error)];
		memcpy(keep, rep->error, sizeof(keep));
		smp_harvest_report_clear(rep);
		memcpy(rep->error, keep, sizeof(keep));
	}
	rep->gpg_ops = smp_gpg_ops(g) - h.ops0;
	free_state(&s0);
	free(use);
	free_hv(&h);
	return rc;
}
