/* smp_harvest.c - the harvest rules of SPEC.md 4, applied through the
 * keyring store in one transaction per message: names, the report, and
 * the orchestration (which keys are written, and how). See smp_harvest.h;
 * the rules are in smp_harvest_rules.c, the key work in
 * smp_harvest_keys.c. */
#include "smp_address.h"
#include "smp_harvest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smp_harvest_int.h"
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

	/* admin, wkd and dane are sources of bindings, not of mail */
	if (s < 0 || s >= SMP_SRC_ADMIN)
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
/* Shared helpers                                                      */

int smp_hv_fail(struct hv *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->rep->error, sizeof(h->rep->error), fmt, ap);
	va_end(ap);
	return -1;
}

int smp_hv_oom(struct hv *h)
{
	return smp_hv_fail(h, "out of memory");
}

int smp_hv_db_fail(struct hv *h)
{
	return smp_hv_fail(h, "keyring: %s", smp_keyring_errmsg(h->kr));
}

int smp_hv_crypto_fail(struct hv *h)
{
	return smp_hv_fail(h, "%s", smp_crypto_errmsg(h->cr));
}

void smp_hv_free_state(struct state *s)
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
	smp_key_infos_free(h->keys, h->nkeys);
	for (size_t i = 0; i < h->nsub; i++)
		smp_hv_free_material(&h->sub[i].m);
	free(h->sub);
	free(h->sender);
	smp_bindings_free(h->sb, h->nsb);
}

/* Reads the sender's bindings and the key record of fpr (may be NULL). */
int smp_hv_read_state(struct hv *h, const char *fpr, struct state *s)
{
	int r;

	memset(s, 0, sizeof(*s));
	if (smp_keyring_bindings_for(h->kr, h->sender, &s->b, &s->nb) < 0)
		return smp_hv_db_fail(h);
	if (!fpr)
		return 0;
	r = smp_keyring_key_get(h->kr, fpr, &s->rec);
	if (r < 0) {
		smp_hv_free_state(s);
		return smp_hv_db_fail(h);
	}
	s->have_rec = r == 0;
	return 0;
}

struct cand *smp_hv_new_cand(struct hv *h, unsigned part,
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

/* ------------------------------------------------------------------ */
/* Writing                                                              */

/* The same from a key record's encryption subkey IDs (a known key,
 * which is not listed). */
static bool self_encrypted_ids(const struct hv *h, const char *ids)
{
	const struct smp_msg_info *mi = h->ctx->msg;

	if (!mi || !ids)
		return false;
	for (unsigned e = 0; e < mi->n_esk_kept && e < SMP_MSG_MAX_ESK_KEPT; e++) {
		const char *id = mi->esk[e].keyid, *p = ids;
		size_t n = strlen(id);

		if (mi->esk[e].type != SMP_ESK_PUBKEY || n == 0)
			continue;
		while ((p = strcasestr(p, id))) {
			if ((p == ids || p[-1] == ' ') &&
			    (p[n] == ' ' || p[n] == '\0'))
				return true;
			p += n;
		}
	}
	return false;
}

static bool self_encrypted(const struct hv *h, const struct smp_key_info *k)
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
		return smp_hv_db_fail(h);
	return 0;
}

static void enc_keyids(const struct smp_key_info *k, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < k->nsubkeys; i++) {
		const struct smp_key_sub *s = &k->subkeys[i];
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
	const struct smp_key_info *k = &m->key;
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
		return smp_hv_db_fail(h);
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
		return smp_hv_db_fail(h);
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
			return smp_hv_db_fail(h);
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

/* What the keyring's known blocks and the memo will know of the
 * subject's blocks once the transaction is committed: the material the
 * keyring then holds and until when it encrypts (from the listing of what
 * was merged, or of the stored key). Written whether or not there is a
 * memo: the keyring's known blocks are the second level of it. */
static void remember(struct hv *h, struct subject *sub,
		     const struct decision *d, const struct smp_key_rec *rec)
{
	const struct smp_key_info *k = NULL;

	sub->remember = false;
	if (sub->revoke)
		return;
	switch (d->outcome) {
	case SMP_HV_HARVESTED:
	case SMP_HV_MERGED:
	case SMP_HV_SEEN:
	case SMP_HV_CONFLICT:
	case SMP_HV_REPLACED:
		break;
	default:
		return;
	}
	if (d->need_material && sub->m.data) {
		smp_hv_sha256(sub->m.data, sub->m.len, sub->remember_mat);
		k = &sub->m.key;
	} else if (rec) {
		smp_hv_sha256(rec->material, rec->material_len,
			      sub->remember_mat);
		k = sub->st && sub->st->key && sub->st->rec.material_len ==
							 rec->material_len &&
				    memcmp(sub->st->rec.material, rec->material,
					   rec->material_len) == 0 ?
			    sub->st->key :
			    NULL;
		if (!k && sub->known) {
			/* not listed: as the memo or the known blocks had
			 * it (every copy of a known key says the same) */
			sub->remember_until = sub->first->known_until;
			sub->remember = true;
			return;
		}
	}
	if (!k)
		return;
	sub->remember_until = smp_hv_key_until(h, k);
	sub->remember = true;
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

	if (smp_hv_read_state(h, sub->fpr, &s))
		return -1;
	rec = s.have_rec ? &s.rec : NULL;
	/* stored state changed since the engine looked: assume the key is
	 * new (not for a known block: it was in the stored key, and a merge
	 * only adds to that; revoked and blocked are judged from s) */
	changed = sub->changed;
	if (!sub->known &&
	    (sub->m.done ? !smp_hv_material_current(&sub->m, rec) :
			   !smp_hv_same_rec(rec, rec != NULL,
					    st ? &st->rec : NULL, st != NULL)))
		changed = true;
	smp_hv_decide(h, sub, &s, changed, &d);
	if (d.need_material && !smp_hv_material_current(&sub->m, rec) &&
	    smp_hv_make_material(h, sub, rec))
		goto out;
	if (d.need_material && !sub->m.data) {
		d.outcome = SMP_HV_REFUSED;
		d.reason = SMP_HR_UNUSABLE;
	} else if (d.need_material && !sub->revoke &&
		   smp_hv_key_reason(h, &sub->m.key) != SMP_HR_NONE) {
		/* the merge with what the store knew says no (a revocation
		 * the new copy lacked, say) */
		d.outcome = SMP_HV_REFUSED;
		d.reason = smp_hv_key_reason(h, &sub->m.key);
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
			      (sub->m.data && self_encrypted(h, &sub->m.key)) ||
			      (c->known && rec &&
			       self_encrypted_ids(h, rec->enc_keyids));
	remember(h, sub, &d, rec);

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
			smp_hv_db_fail(h);
			goto out;
		}
		break;
	default:
		break;
	}
	rc = 0;
out:
	smp_hv_free_state(&s);
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
		return smp_hv_oom(h);
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
			return smp_hv_oom(h);
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
	for (size_t i = 0; i < h->nc; i++) {
		rep->known += h->c[i].known && !h->c[i].dup;
		rep->known_stored += h->c[i].known_stored && !h->c[i].dup;
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
		return smp_hv_oom(h);
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
		st = smp_hv_find_stored(h, c->kb.fpr);
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
		sub->known = true;
		for (size_t j = 0; j < h->nc; j++) {
			struct cand *e = &h->c[j];
			if (!e->live || strcmp(e->kb.fpr, c->kb.fpr) != 0)
				continue;
			sub->known &= e->known;
			if (revoke && e->reason == SMP_HR_REVOKED &&
			    e->nkeep && !e->filtered &&
			    smp_keyblock_filter(e->data, e->len, e->keep,
						e->nkeep, &e->filtered,
						&e->flen, NULL) != 0 &&
			    errno == ENOMEM)
				return smp_hv_oom(h);
			e->revoked_update = revoke;
			if (!e->known &&
			    smp_hv_listing_adds(h, e->key,
						st ? st->key : NULL, e->keep,
						e->nkeep))
				sub->changed = true;
		}
	}
	return 0;
}

/* gpg processes the engine has started (0 on rnp). */
static unsigned long processes(const struct smp_crypto *cr)
{
	struct smp_crypto_stats st;

	smp_crypto_get_stats(cr, &st);
	return st.processes;
}

int smp_harvest_message(struct smp_keyring *kr, struct smp_crypto *cr,
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
	h.cr = cr;
	h.ctx = ctx;
	h.rep = rep;
	h.procs0 = processes(cr);
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
		return smp_hv_oom(&h);
	for (size_t i = 0; i < nparts; i++) {
		enum smp_key_source src = ctx->part_sources ?
						  ctx->part_sources[i] :
						  ctx->source;
		/* admin never (smpctl keys import has its own path); wkd and
		 * dane only from key discovery, which sets their bit
		 * (harvest.sources cannot name them) */
		use[i] = src != SMP_SRC_ADMIN && (unsigned)src < 32 &&
			 (ctx->cfg->sources & SMP_HARVEST_SRC(src));
		nuse += use[i];
	}
	if (nuse == 0) {
		rc = 0;
		goto out;
	}
	if (!kr || !cr) {
		smp_hv_fail(&h, "no keyring or crypto engine to harvest with");
		goto out;
	}
	h.sender = smp_address_normalize(ctx->envelope_sender);
	if (h.sender)
		h.sender_domain = strrchr(h.sender, '@') + 1;

	mr = smp_hv_message_reason(&h);
	if (mr != SMP_HR_NONE) {
		for (size_t i = 0; i < nparts; i++) {
			struct cand *c;
			if (!use[i])
				continue;
			c = smp_hv_new_cand(&h, (unsigned)i,
				     ctx->part_sources ? ctx->part_sources[i] :
							 ctx->source);
			if (!c) {
				smp_hv_oom(&h);
				goto out;
			}
			c->reason = mr;
		}
	} else {
		/* framing and blocked keys: no crypto work yet */
		if (smp_hv_frame_parts(&h, parts, nparts, use) ||
		    smp_hv_fetch_stored(&h))
			goto out;
		for (size_t i = 0; i < h.nc; i++)
			nlive += h.c[i].live;
		/* one inspection for what is left, a merge for a new or
		 * changed key */
		if (nlive && (smp_hv_inspect(&h) || smp_hv_key_rules(&h) ||
			      pick_subjects(&h)))
			goto out;
		if (h.nsub && smp_hv_read_state(&h, NULL, &s0))
			goto out;
		for (size_t i = 0; i < h.nsub; i++) {
			struct subject *sub = &h.sub[i];
			struct decision d;

			/* a first decision on what was read: only crypto
			 * work that may count is done before the
			 * transaction */
			if (sub->st) {
				s0.rec = sub->st->rec;
				s0.have_rec = true;
			}
			smp_hv_decide(&h, sub, &s0, sub->changed, &d);
			s0.have_rec = false;
			memset(&s0.rec, 0, sizeof(s0.rec));
			if (d.need_material &&
			    smp_hv_make_material(&h, sub,
						 sub->st ? &sub->st->rec : NULL))
				goto out;
		}
	}

	if (smp_keyring_begin(kr) < 0) {
		smp_hv_db_fail(&h);
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
	if (report_lines(&h) || smp_hv_blocks_write(&h))
		goto out;
	if (smp_keyring_commit(kr) < 0) {
		smp_hv_db_fail(&h);
		goto out;
	}
	in_txn = false;
	smp_hv_memo_record(&h);
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
	rep->gpg_ops = processes(cr) - h.procs0;
	rep->crypto_ops = h.calls;
	smp_hv_free_state(&s0);
	free(use);
	free_hv(&h);
	return rc;
}

