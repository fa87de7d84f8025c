/* smp_discovery.c - key discovery policy: the cache in the keyring, the
 * methods in order inside the message's time budget, the harvest rules
 * applied to what the network gave. See smp_discovery.h and
 * doc/discovery.md. The transports are smp_discovery_{wkd,dane}.c. */
#include "smp_discovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "smp_armor.h"
#include "smp_policy.h"

/* The shortest a found key is trusted before asking again, whatever a DNS
 * TTL says: a zone with TTL 0 must not cost a lookup per message. */
#define DISC_MIN_TTL 60

static const char *const method_names[SMP_DISC_N_METHODS] = {
	[SMP_DISC_WKD] = "wkd",
	[SMP_DISC_DANE] = "dane",
};

const char *smp_disc_method_name(enum smp_disc_method m)
{
	return (unsigned)m < SMP_DISC_N_METHODS ? method_names[m] : "unknown";
}

int smp_disc_method_parse(const char *name)
{
	for (int i = 0; name && i < SMP_DISC_N_METHODS; i++)
		if (strcmp(name, method_names[i]) == 0)
			return i;
	return -1;
}

static const char *const status_names[] = {
	[SMP_DISC_FOUND] = "found",
	[SMP_DISC_NONE] = "none",
	[SMP_DISC_ERROR] = "error",
};

const char *smp_disc_status_name(enum smp_disc_status s)
{
	return (unsigned)s < 3 ? status_names[s] : "unknown";
}

int smp_disc_status_parse(const char *name)
{
	for (int i = 0; name && i < 3; i++)
		if (strcmp(name, status_names[i]) == 0)
			return i;
	return -1;
}

const char *smp_disc_outcome_name(enum smp_disc_outcome o)
{
	switch (o) {
	case SMP_DISC_HAVE:
		return "have";
	case SMP_DISC_NOKEY:
		return "nokey";
	case SMP_DISC_FAILED:
		return "failed";
	case SMP_DISC_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

void smp_disc_answer_clear(struct smp_disc_answer *a)
{
	if (!a)
		return;
	free(a->data);
	memset(a, 0, sizeof(*a));
}

void smp_disc_config_init(struct smp_disc_config *dc)
{
	memset(dc, 0, sizeof(*dc));
	dc->methods.n = 2;
	dc->methods.m[0] = SMP_DISC_WKD;
	dc->methods.m[1] = SMP_DISC_DANE;
	dc->timeout_ms = 5000;
	dc->positive_ttl = 86400;
	dc->negative_ttl = 3600;
	dc->error_ttl = 60;
	dc->refresh_per_minute = 60;
}

/* code = 1 + n + 4 * m[0] + 8 * m[1]: fits a byte, 0 is never a code. */
int smp_disc_methods_encode(const struct smp_disc_methods *m)
{
	int code = 1 + (int)(m->n > SMP_DISC_N_METHODS ? SMP_DISC_N_METHODS : m->n);

	for (unsigned i = 0; i < m->n && i < SMP_DISC_N_METHODS; i++)
		code += (int)m->m[i] << (2 + i);
	return code;
}

void smp_disc_methods_decode(int code, struct smp_disc_methods *m)
{
	memset(m, 0, sizeof(*m));
	if (code < 1)
		return;
	code -= 1;
	m->n = (unsigned)(code & 3);
	if (m->n > SMP_DISC_N_METHODS)
		m->n = SMP_DISC_N_METHODS;
	for (unsigned i = 0; i < m->n; i++)
		m->m[i] = (enum smp_disc_method)((code >> (2 + i)) & 1);
}

void smp_disc_methods_format(const struct smp_disc_methods *m, char *buf,
			     size_t size)
{
	size_t used = 0;

	if (!size)
		return;
	buf[0] = '\0';
	if (!m->n) {
		snprintf(buf, size, "off");
		return;
	}
	for (unsigned i = 0; i < m->n && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
					 smp_disc_method_name(m->m[i]));
}

/* ------------------------------------------------------------------ */

/* Does the address have a usable key, one an admin must settle, or
 * none? 0, or -1 on a keyring error. */
static int bound_key(const struct smp_disc_ctx *dx, struct smp_policy *req,
		     const char *address, int64_t now, enum smp_nokey *why,
		     char fpr[SMP_FPR_MAX])
{
	struct smp_rcpt_decision d;

	memset(&d, 0, sizeof(d));
	if (smp_policy_recipient(req, dx->kr, address, now, &d) < 0)
		return -1;
	*why = d.why;
	snprintf(fpr, SMP_FPR_MAX, "%s", d.fpr);
	smp_rcpt_decision_clear(&d);
	return 0;
}

/* A WKD server may send the key armored; the rules take binary. The
 * armor is undone here (a second block after the first is refused by
 * smp_armor_decode's caller rules like any other part). */
static int answer_binary(const struct smp_disc_answer *a, unsigned char **out,
			 size_t *outlen, size_t max)
{
	struct smp_armor ar;
	size_t at;

	if (smp_armor_find((const char *)a->data, a->len, &at)) {
		if (smp_armor_decode((const char *)a->data, a->len, max, &ar) !=
		    SMP_ARMOR_OK)
			return -1;
		if (ar.type != SMP_ARMOR_PUBLIC_KEY) {
			smp_armor_free(&ar);
			return -1;
		}
		*out = ar.data;
		*outlen = ar.len;
		return 0;
	}
	*out = malloc(a->len ? a->len : 1);
	if (!*out)
		return -1;
	memcpy(*out, a->data, a->len);
	*outlen = a->len;
	return 0;
}

/*
 * Puts a published key through the harvest rules as if the address had
 * sent it to us (sender = From = the address), from source wkd/dane with
 * client_addr = where it came from. *taken: the address now has a binding
 * of a key from this answer that the rules took (harvested, merged, seen,
 * replaced); else why holds the refusal. 0, or -1 on a keyring/crypto
 * failure (err).
 */
static int apply_rules(const struct smp_disc_ctx *dx, const char *address,
		       const struct smp_disc_answer *a, int64_t now, bool *taken,
		       char *fpr, char *why, size_t whylen, char *err, size_t errlen)
{
	struct smp_harvest_config hc;
	struct smp_harvest_ctx hx;
	struct smp_harvest_report rep;
	struct smp_key_part part;
	const char *from[1] = {address};
	unsigned char *bin = NULL;
	size_t binlen = 0;
	int rc = -1;

	*taken = false;
	fpr[0] = '\0';
	memset(&rep, 0, sizeof(rep));
	if (answer_binary(a, &bin, &binlen, dx->limits->max_key_bytes) < 0) {
		snprintf(why, whylen, "bad-key (not an OpenPGP key block)");
		return 0;
	}
	smp_harvest_config_init(&hc);
	/* the same rules as a harvested key, but no message-level ones: no
	 * own-domain skip (our own WKD may publish our users' keys), no
	 * Authentication-Results (the channel is HTTPS or DNSSEC) */
	if (dx->harvest)
		hc.on_conflict = dx->harvest->on_conflict;
	hc.sources = SMP_HARVEST_SRC(smp_disc_method_source(a->method));
	memset(&hx, 0, sizeof(hx));
	hx.cfg = &hc;
	hx.limits = dx->limits;
	hx.envelope_sender = address;
	hx.from = from;
	hx.nfrom = 1;
	hx.msg_date = now;
	hx.client_addr = a->origin;
	hx.source = smp_disc_method_source(a->method);
	hx.now = now;
	memset(&part, 0, sizeof(part));
	part.name = (char *)"discovered";
	part.kind = SMP_KEY_PUBLIC;
	part.data = bin;
	part.size = binlen;
	if (smp_harvest_message(dx->kr, dx->crypto, &hx, &part, 1, &rep) < 0) {
		snprintf(err, errlen, "storing the key from %.200s: %.250s", a->origin, rep.error);
		goto out;
	}
	why[0] = '\0';
	for (size_t i = 0; i < rep.n; i++) {
		const struct smp_harvest_line *l = &rep.lines[i];

		if (l->fpr[0] && !fpr[0])
			snprintf(fpr, SMP_FPR_MAX, "%s", l->fpr);
		switch (l->outcome) {
		case SMP_HV_HARVESTED:
		case SMP_HV_MERGED:
		case SMP_HV_SEEN:
		case SMP_HV_REPLACED:
			*taken = true;
			snprintf(fpr, SMP_FPR_MAX, "%s", l->fpr);
			break;
		case SMP_HV_REFUSED:
		case SMP_HV_REVOKED:
			if (!why[0])
				snprintf(why, whylen, "refused: %s",
					 smp_harvest_reason_token(l->reason));
			break;
		default:
			if (!why[0])
				snprintf(why, whylen, "%s",
					 smp_harvest_outcome_name(l->outcome));
			break;
		}
	}
	if (!*taken && !why[0])
		snprintf(why, whylen, "no key in the answer");
	rc = 0;
out:
	smp_harvest_report_clear(&rep);
	free(bin);
	return rc;
}

static int64_t clamp_ttl(int64_t conf, int64_t src)
{
	int64_t t = conf;

	if (src >= 0 && src < t)
		t = src;
	return t < DISC_MIN_TTL ? DISC_MIN_TTL : t;
}

/* Spreads refreshes: a found key is due again after 75-95% of its TTL. */
static int64_t jittered(int64_t ttl)
{
	return ttl - ttl * (5 + g_random_int_range(0, 21)) / 100;
}

static int cache_put(const struct smp_disc_ctx *dx, const char *address,
		     const char *status, const char *method, const char *origin,
		     const char *fpr, int64_t now, int64_t ttl, const char *detail)
{
	struct smp_disc_entry e;

	memset(&e, 0, sizeof(e));
	e.address = (char *)address;
	snprintf(e.status, sizeof(e.status), "%s", status);
	snprintf(e.method, sizeof(e.method), "%s", method ? method : "");
	e.origin = (char *)(origin ? origin : "");
	snprintf(e.fpr, sizeof(e.fpr), "%s", fpr ? fpr : "");
	e.fetched = now;
	e.expires = now + ttl;
	e.detail = (char *)(detail ? detail : "");
	return smp_keyring_disc_put(dx->kr, &e);
}

void smp_disc_answers_clear(struct smp_disc_answers *a)
{
	for (unsigned i = 0; a && i < SMP_DISC_N_METHODS; i++)
		smp_disc_answer_clear(&a->a[i]);
	if (a)
		a->n = 0;
}

int smp_discovery_fetch(struct smp_disc_net *net,
			const struct smp_disc_methods *ms, const char *address,
			int64_t deadline_ms, struct smp_disc_answers *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < ms->n && i < SMP_DISC_N_METHODS; i++) {
		struct smp_disc_answer *a = &out->a[out->n++];
		enum smp_disc_method m = ms->m[i];

		if (smp_disc_now_ms() >= deadline_ms) {
			a->status = SMP_DISC_ERROR;
			a->method = m;
			a->ttl = -1;
			snprintf(a->error, sizeof(a->error),
				 "not asked: the discovery time budget is used up");
			continue;
		}
		if ((m == SMP_DISC_DANE ? smp_disc_dane(net, address, deadline_ms, a)
					: smp_disc_wkd(net, address, deadline_ms, a)) < 0)
			return -1;
		a->method = m;
		if (a->status == SMP_DISC_FOUND)
			break;
	}
	return 0;
}

int smp_discovery_store(const struct smp_disc_ctx *dx, const char *address,
			const struct smp_disc_answers *ans, bool refresh,
			struct smp_disc_result *out)
{
	int64_t now = dx->now ? dx->now : (int64_t)time(NULL);
	int64_t neg_ttl = dx->cfg->negative_ttl;
	char failure[512] = "", nokey[512] = "", origin[512] = "", err[512];
	const struct smp_disc_answer *found = NULL;
	struct smp_policy *req = NULL;
	enum smp_nokey why;
	char *norm = smp_address_normalize(address);
	int rc = -1;

	out->lookups = ans->n;
	if (!norm) {
		snprintf(out->detail, sizeof(out->detail), "not an address");
		return -1;
	}
	for (unsigned i = 0; i < ans->n; i++) {
		const struct smp_disc_answer *a = &ans->a[i];
		const char *mn = smp_disc_method_name(a->method);

		if (a->status == SMP_DISC_FOUND) {
			found = a;
			break;
		}
		if (a->status == SMP_DISC_ERROR && !failure[0])
			snprintf(failure, sizeof(failure), "%s: %s", mn, a->error);
		if (a->status == SMP_DISC_NONE) {
			if (a->ttl >= 0 && a->ttl < neg_ttl)
				neg_ttl = a->ttl;
			if (!nokey[0])
				snprintf(nokey, sizeof(nokey), "%s: nothing published at %.400s",
					 mn, a->origin);
		}
	}
	if (found) {
		bool taken;
		char fpr[SMP_FPR_MAX], whyr[256];

		if (apply_rules(dx, norm, found, now, &taken, fpr, whyr, sizeof(whyr),
				err, sizeof(err)) < 0) {
			snprintf(out->detail, sizeof(out->detail), "%s", err);
			goto out;
		}
		snprintf(out->method, sizeof(out->method), "%s",
			 smp_disc_method_name(found->method));
		snprintf(out->fpr, sizeof(out->fpr), "%s", fpr);
		if (taken) {
			req = smp_policy_new(SMP_ENC_REQUIRED);
			if (!req) {
				snprintf(out->detail, sizeof(out->detail), "out of memory");
				goto out;
			}
			/* a key the rules took may still not be usable (a
			 * conflict flagged): the encryption decision judges */
			if (bound_key(dx, req, norm, now, &why, fpr) < 0)
				goto out;
			if (why == SMP_NOKEY_NONE) {
				out->outcome = SMP_DISC_HAVE;
				snprintf(out->detail, sizeof(out->detail), "%s", found->origin);
			} else {
				out->outcome = SMP_DISC_NOKEY;
				snprintf(out->detail, sizeof(out->detail),
					 "the key from %.400s is not usable: %s", found->origin,
					 smp_nokey_name(why));
			}
			rc = cache_put(dx, norm, "found", out->method, found->origin,
				       out->fpr, now,
				       jittered(clamp_ttl(dx->cfg->positive_ttl, found->ttl)),
				       why == SMP_NOKEY_NONE ? "" : out->detail);
			goto out;
		}
		out->outcome = SMP_DISC_NOKEY;
		snprintf(out->detail, sizeof(out->detail), "%s: %.80s (%.400s)", out->method,
			 whyr, found->origin);
		snprintf(origin, sizeof(origin), "%s", found->origin);
		rc = cache_put(dx, norm, "none", out->method, origin, out->fpr, now,
			       clamp_ttl(neg_ttl, -1), out->detail);
		goto out;
	}
	out->outcome = failure[0] ? SMP_DISC_FAILED : SMP_DISC_NOKEY;
	snprintf(out->detail, sizeof(out->detail), "%s",
		 failure[0] ? failure : nokey[0] ? nokey : "no discovery method configured");
	/* a refresh that failed, or found nothing published any more, keeps a
	 * found entry found (its stored key stays, see smp_discovery.h) and
	 * asks again after error_ttl / negative_ttl */
	if (refresh) {
		struct smp_disc_entry old;
		int g = smp_keyring_disc_get(dx->kr, norm, &old);

		if (g < 0)
			goto out;
		if (g == 0 && strcmp(old.status, "found") == 0) {
			rc = cache_put(dx, norm, "found", old.method, old.origin, old.fpr,
				       now,
				       failure[0] ? dx->cfg->error_ttl
						  : clamp_ttl(neg_ttl, -1),
				       out->detail);
			smp_disc_entry_clear(&old);
			goto out;
		}
		if (g == 0)
			smp_disc_entry_clear(&old);
	}
	if (failure[0])
		rc = cache_put(dx, norm, "error", "", "", "", now, dx->cfg->error_ttl,
			       failure);
	else
		rc = cache_put(dx, norm, "none", "", "", "", now, clamp_ttl(neg_ttl, -1),
			       out->detail);
out:
	if (rc < 0 && !out->detail[0])
		snprintf(out->detail, sizeof(out->detail), "keyring: %s",
			 smp_keyring_errmsg(dx->kr));
	smp_policy_free(req);
	free(norm);
	return rc;
}

int smp_discovery_check(const struct smp_disc_ctx *dx, const char *address,
			bool refresh, bool *need, struct smp_disc_result *out)
{
	const struct smp_disc_methods *ms = dx->methods ? dx->methods : &dx->cfg->methods;
	int64_t now = dx->now ? dx->now : (int64_t)time(NULL);
	struct smp_policy *req = NULL;
	struct smp_disc_entry e;
	enum smp_nokey why = SMP_NOKEY_NO_BINDING;
	char *norm = NULL;
	int rc = -1, g;

	*need = false;
	memset(out, 0, sizeof(*out));
	memset(&e, 0, sizeof(e));
	norm = smp_address_normalize(address);
	if (!norm || !ms->n) {
		out->outcome = SMP_DISC_SKIPPED;
		snprintf(out->detail, sizeof(out->detail), "%s",
			 norm ? "discovery is off" : "not an address");
		rc = 0;
		goto out;
	}
	/* an address no method can name (an address literal, a domain not
	 * in ASCII: its A-label is not computed) is not looked up: asking
	 * would only ever fail, and failing closed would hold its mail until
	 * the queue lifetime runs out */
	{
		char a[1024], d[1024];

		if (smp_wkd_urls(norm, 443, a, sizeof(a), d, sizeof(d)) < 0 &&
		    smp_dane_qname(norm, a, sizeof(a)) < 0) {
			out->outcome = SMP_DISC_SKIPPED;
			snprintf(out->detail, sizeof(out->detail),
				 "no WKD or DANE name for this address");
			rc = 0;
			goto out;
		}
	}
	/* the usable-key test of the encryption decision itself: a policy
	 * that wants encryption for everyone */
	req = smp_policy_new(SMP_ENC_REQUIRED);
	if (!req) {
		snprintf(out->detail, sizeof(out->detail), "out of memory");
		goto out;
	}
	if (bound_key(dx, req, norm, now, &why, out->fpr) < 0)
		goto out;
	rc = 0;
	if (why == SMP_NOKEY_CONFLICT || why == SMP_NOKEY_BLOCKED) {
		out->outcome = SMP_DISC_SKIPPED;
		snprintf(out->detail, sizeof(out->detail), "a binding in state %s",
			 smp_nokey_name(why));
		goto out;
	}
	if (refresh) {
		*need = true;
		goto out;
	}
	if (why == SMP_NOKEY_NONE) {
		out->outcome = SMP_DISC_HAVE;
		out->bound = true;
		goto out;
	}
	out->fpr[0] = '\0';
	g = smp_keyring_disc_get(dx->kr, norm, &e);
	if (g < 0) {
		rc = -1;
		goto out;
	}
	/* a cached found whose key is not usable any more is asked again */
	if (g == 0 && e.expires > now && strcmp(e.status, "found") != 0) {
		bool err = strcmp(e.status, "error") == 0;

		out->outcome = err ? SMP_DISC_FAILED : SMP_DISC_NOKEY;
		out->cached = true;
		snprintf(out->method, sizeof(out->method), "%s", e.method);
		snprintf(out->fpr, sizeof(out->fpr), "%s", e.fpr);
		snprintf(out->detail, sizeof(out->detail), "%s (cached)", e.detail);
		goto out;
	}
	*need = true;
out:
	if (rc < 0 && !out->detail[0])
		snprintf(out->detail, sizeof(out->detail), "keyring: %s",
			 smp_keyring_errmsg(dx->kr));
	smp_disc_entry_clear(&e);
	smp_policy_free(req);
	free(norm);
	return rc;
}

static int discover(const struct smp_disc_ctx *dx, const char *address,
		    bool refresh, struct smp_disc_result *out)
{
	const struct smp_disc_methods *ms = dx->methods ? dx->methods : &dx->cfg->methods;
	struct smp_disc_answers ans;
	bool need;
	int rc;

	if (smp_discovery_check(dx, address, refresh, &need, out) < 0)
		return -1;
	if (!need)
		return 0;
	if (smp_discovery_fetch(dx->net, ms, address, dx->deadline_ms, &ans) < 0) {
		smp_disc_answers_clear(&ans);
		snprintf(out->detail, sizeof(out->detail), "out of memory");
		return -1;
	}
	rc = smp_discovery_store(dx, address, &ans, refresh, out);
	smp_disc_answers_clear(&ans);
	return rc;
}

int smp_discovery_recipient(const struct smp_disc_ctx *dx, const char *address,
			    struct smp_disc_result *out)
{
	return discover(dx, address, false, out);
}

int smp_discovery_refresh(const struct smp_disc_ctx *dx, const char *address,
			  struct smp_disc_result *out)
{
	return discover(dx, address, true, out);
}

enum smp_key_source smp_disc_method_source(enum smp_disc_method m)
{
	return m == SMP_DISC_DANE ? SMP_SRC_DANE : SMP_SRC_WKD;
}
