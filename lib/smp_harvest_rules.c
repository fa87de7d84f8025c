/* smp_harvest_rules.c - the harvest rules of SPEC.md 4: message level
 * (sender, own domains, Authentication-Results), framing, per key and
 * per address. See smp_harvest.h for the rules and their order. */
#include "smp_address.h"
#include "smp_harvest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smp_harvest_int.h"
#include "smp_packets.h"

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

enum smp_harvest_reason smp_hv_message_reason(struct hv *h)
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
/* Framing (no crypto work)                                             */

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

int smp_hv_frame_parts(struct hv *h, const struct smp_key_part *parts,
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
				return smp_hv_oom(h);
			r = SMP_HR_BAD_KEY;
		}
		if (r != SMP_HR_NONE) {
			if (!(c = smp_hv_new_cand(h, (unsigned)i, src)))
				return smp_hv_oom(h);
			c->reason = r;
			continue;
		}
		for (size_t k = 0; k < nkb; k++) {
			if (!(c = smp_hv_new_cand(h, (unsigned)i, src))) {
				free(kb);
				return smp_hv_oom(h);
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
/* The engine's view of a key                                           */

/* RFC 4880 9.1 algorithm numbers (struct smp_key_sub's pubkey_algo) */
enum { A_RSA = SMP_PK_RSA, A_RSA_E = SMP_PK_RSA_E, A_RSA_S = SMP_PK_RSA_S,
       A_ELG_E = SMP_PK_ELG_E, A_DSA = SMP_PK_DSA, A_ELG = SMP_PK_ELG };

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

static bool subkey_usable(const struct smp_key_sub *s, int64_t now)
{
	return s->can_encrypt && !s->revoked && !s->invalid && !s->expired &&
	       (s->expires == 0 || s->expires > now);
}

/* The rules on the engine's listing of one key. */
enum smp_harvest_reason smp_hv_key_reason(const struct hv *h,
					  const struct smp_key_info *k)
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
		const struct smp_key_sub *s = &k->subkeys[i];
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
	const struct smp_key_info *k = c->key;
	unsigned kept = 0;

	c->nkeep = 0;
	c->keep = calloc(k->nuids + 1, sizeof(*c->keep));
	if (!c->keep)
		return smp_hv_oom(h);
	for (size_t u = 0; u < k->nuids; u++) {
		const struct smp_key_uid *id = &k->uids[u];
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
			return smp_hv_oom(h);
		kept = 0;
	}
	if (kept == 0) /* the listed user ID and the packet differ */
		c->nkeep = 0;
	return 0;
}

int smp_hv_key_rules(struct hv *h)
{
	for (size_t i = 0; i < h->nc; i++) {
		struct cand *c = &h->c[i];

		if (!c->live || c->known)
			continue; /* known: as it was, see smp_hv_memo_check */
		if (!c->key) {
			c->reason = SMP_HR_UNUSABLE;
			continue;
		}
		c->reason = smp_hv_key_reason(h, c->key);
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

/* The encryption key a minimal form of k keeps (smp_crypto_merge): the
 * newest usable encryption subkey, the first of equals; else the primary
 * key when it encrypts; else NULL. */
static const struct smp_key_sub *newest_enc(const struct smp_key_info *k,
					    int64_t now)
{
	const struct smp_key_sub *best = NULL;

	for (size_t i = 1; i < k->nsubkeys; i++) {
		const struct smp_key_sub *s = &k->subkeys[i];
		if (subkey_usable(s, now) && (!best || s->created > best->created))
			best = s;
	}
	if (!best && k->nsubkeys && subkey_usable(&k->subkeys[0], now))
		best = &k->subkeys[0];
	return best;
}

static const struct smp_key_sub *sub_by_fpr(const struct smp_key_info *k,
					    const char *fpr)
{
	for (size_t i = 0; i < k->nsubkeys; i++)
		if (strcmp(k->subkeys[i].fpr, fpr) == 0)
			return &k->subkeys[i];
	return NULL;
}

/* Does the new listing n say something the stored (minimal) listing s
 * lacks, i.e. would merging them change the stored key? A new expiry or
 * revocation of the key or of a stored subkey, an encryption subkey newer
 * than the stored one, the sender's user ID missing (or revoked) there,
 * a stored user ID revoked. Subkeys and user IDs the minimal form drops
 * anyway (signing subkeys, older encryption subkeys, other people's user
 * IDs) are no news. */
bool smp_hv_listing_adds(const struct hv *h, const struct smp_key_info *n,
			 const struct smp_key_info *s, const char *const *keep,
			 size_t nkeep)
{
	const struct smp_key_sub *e, *es;
	bool found = nkeep == 0;

	if (!n || !s)
		return true;
	if (n->expires != s->expires || n->revoked != s->revoked)
		return true;
	for (size_t i = 0; i < n->nsubkeys; i++) {
		const struct smp_key_sub *a = &n->subkeys[i];
		const struct smp_key_sub *b = sub_by_fpr(s, a->fpr);
		if (b && (a->expires != b->expires || a->revoked != b->revoked))
			return true;
	}
	e = newest_enc(n, h->now);
	if (e && !sub_by_fpr(s, e->fpr)) {
		es = newest_enc(s, h->now);
		if (!es || es->created < e->created)
			return true;
	}
	for (size_t i = 0; i < nkeep && !found; i++)
		for (size_t j = 0; j < s->nuids && !found; j++)
			found = strcmp(s->uids[j].uid, keep[i]) == 0 &&
				!s->uids[j].revoked;
	if (!found)
		return true;
	for (size_t j = 0; j < s->nuids; j++)
		for (size_t i = 0; i < n->nuids; i++)
			if (strcmp(n->uids[i].uid, s->uids[j].uid) == 0 &&
			    n->uids[i].revoked && !s->uids[j].revoked)
				return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                            */

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
void smp_hv_decide(const struct hv *h, const struct subject *sub,
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

