/* smp_policy.c - outbound encryption policy and the per-message decision.
 * See smp_policy.h. */
#include "smp_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

struct smp_policy {
	enum smp_encrypt_mode dflt;
	GHashTable *addresses; /* normalised address -> mode + 1 */
	GHashTable *domains;   /* lower-case domain or .domain -> mode + 1 */
};

#define DOMAIN_MAX 255

static const char *const mode_names[] = {
	[SMP_ENC_OFF] = "off",
	[SMP_ENC_OPPORTUNISTIC] = "opportunistic",
	[SMP_ENC_REQUIRED] = "required",
};

const char *smp_encrypt_mode_name(enum smp_encrypt_mode m)
{
	if ((unsigned)m < sizeof(mode_names) / sizeof(mode_names[0]))
		return mode_names[m];
	return "unknown";
}

int smp_encrypt_mode_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(mode_names) / sizeof(mode_names[0]);
	     i++)
		if (strcmp(name, mode_names[i]) == 0)
			return (int)i;
	return -1;
}

static bool mode_ok(enum smp_encrypt_mode m)
{
	return m == SMP_ENC_OFF || m == SMP_ENC_OPPORTUNISTIC ||
	       m == SMP_ENC_REQUIRED;
}

static const char *const nokey_names[] = {
	[SMP_NOKEY_NONE] = "",
	[SMP_NOKEY_POLICY_OFF] = "off",
	[SMP_NOKEY_NOT_ADDRESS] = "not-an-address",
	[SMP_NOKEY_NO_BINDING] = "no-key",
	[SMP_NOKEY_CONFLICT] = "conflict",
	[SMP_NOKEY_REVOKED] = "revoked",
	[SMP_NOKEY_BLOCKED] = "blocked",
	[SMP_NOKEY_EXPIRED] = "expired",
	[SMP_NOKEY_NOT_STORED] = "not-stored",
};

const char *smp_nokey_name(enum smp_nokey r)
{
	if ((unsigned)r < sizeof(nokey_names) / sizeof(nokey_names[0]))
		return nokey_names[r];
	return "unknown";
}

const char *smp_rcpt_class_name(enum smp_rcpt_class c)
{
	switch (c) {
	case SMP_RCPT_PLAIN:
		return "plain";
	case SMP_RCPT_ENCRYPT:
		return "encrypt";
	case SMP_RCPT_REFUSE:
		return "refuse";
	}
	return "unknown";
}

const char *smp_action_name(enum smp_action a)
{
	switch (a) {
	case SMP_ACTION_PLAIN:
		return "plain";
	case SMP_ACTION_ENCRYPT:
		return "encrypt";
	case SMP_ACTION_REFUSE:
		return "refuse";
	}
	return "unknown";
}

/* ------------------------------------------------------------------ */
/* Rules                                                               */

struct smp_policy *smp_policy_new(enum smp_encrypt_mode dflt)
{
	struct smp_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->dflt = mode_ok(dflt) ? dflt : SMP_ENC_OFF;
	p->addresses = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					     NULL);
	p->domains = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					   NULL);
	return p;
}

void smp_policy_free(struct smp_policy *p)
{
	if (!p)
		return;
	g_hash_table_destroy(p->addresses);
	g_hash_table_destroy(p->domains);
	free(p);
}

void smp_policy_set_default(struct smp_policy *p, enum smp_encrypt_mode m)
{
	if (p && mode_ok(m))
		p->dflt = m;
}

enum smp_encrypt_mode smp_policy_default(const struct smp_policy *p)
{
	return p ? p->dflt : SMP_ENC_OFF;
}

size_t smp_policy_nrules(const struct smp_policy *p)
{
	if (!p)
		return 0;
	return g_hash_table_size(p->addresses) + g_hash_table_size(p->domains);
}

/* A rule's value: mode + 1 in the low byte, discovery code + 1 (0: the
 * rule says nothing about discovery) in the next. */
#define RULE_VALUE(m, disc) (((int)(m) + 1) | (((disc) < 0 ? 0 : (disc) + 1) << 8))
#define RULE_MODE(v) ((enum smp_encrypt_mode)(((v) & 0xff) - 1))
#define RULE_DISC(v) ((((v) >> 8) & 0xff) - 1)

/* Stores key (g_malloc'd, taken) -> value: 0 new, 1 replaced. */
static int put_rule(GHashTable *t, char *key, int value)
{
	bool had = g_hash_table_contains(t, key);

	g_hash_table_insert(t, key, GINT_TO_POINTER(value));
	return had ? 1 : 0;
}

/* A domain rule: [@].example.org or [@]example.org; letters, digits, '-',
 * '.', '_' and non-ASCII octets (IDN in UTF-8) only, no empty label. */
static char *domain_key(const char *d)
{
	size_t n;
	char *k;

	if (!d)
		return NULL;
	while (*d == ' ' || *d == '\t')
		d++;
	if (*d == '@')
		d++;
	n = strlen(d);
	while (n && (d[n - 1] == ' ' || d[n - 1] == '\t'))
		n--;
	if (n == 0 || n > DOMAIN_MAX)
		return NULL;
	k = g_strndup(d, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];
		bool dot = c == '.';

		if (c >= 'A' && c <= 'Z')
			k[i] = (char)(c - 'A' + 'a');
		else if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
			 c != '-' && c != '_' && !dot && c < 0x80)
			goto bad;
		/* no empty label; a leading dot is the subdomain marker */
		if (dot && (i + 1 == n || k[i + 1] == '.'))
			goto bad;
	}
	return k;
bad:
	g_free(k);
	return NULL;
}

int smp_policy_add_domain(struct smp_policy *p, const char *domain,
			  enum smp_encrypt_mode m)
{
	return smp_policy_add_domain_disc(p, domain, m, -1);
}

int smp_policy_add_address(struct smp_policy *p, const char *address,
			   enum smp_encrypt_mode m)
{
	return smp_policy_add_address_disc(p, address, m, -1);
}

int smp_policy_add_domain_disc(struct smp_policy *p, const char *domain,
			       enum smp_encrypt_mode m, int disc)
{
	char *k;

	if (!p || !mode_ok(m) || disc > 254) {
		errno = EINVAL;
		return -1;
	}
	k = domain_key(domain);
	if (!k) {
		errno = EINVAL;
		return -1;
	}
	return put_rule(p->domains, k, RULE_VALUE(m, disc));
}

int smp_policy_add_address_disc(struct smp_policy *p, const char *address,
				enum smp_encrypt_mode m, int disc)
{
	char *a;

	if (!p || !mode_ok(m) || disc > 254) {
		errno = EINVAL;
		return -1;
	}
	a = smp_address_normalize(address);
	if (!a) {
		if (errno != ENOMEM)
			errno = EINVAL;
		return -1;
	}
	{
		char *k = g_strdup(a);

		free(a);
		return put_rule(p->addresses, k, RULE_VALUE(m, disc));
	}
}

static bool lookup(GHashTable *t, const char *key, int *v)
{
	gpointer x = g_hash_table_lookup(t, key);

	if (!x)
		return false;
	*v = GPOINTER_TO_INT(x);
	return true;
}

/* The value of the rule for norm (a normalised address), the most
 * specific one; false when only the default applies. */
static bool rule_of(const struct smp_policy *p, const char *norm, int *v)
{
	const char *dom, *s;

	if (lookup(p->addresses, norm, v))
		return true;
	dom = strrchr(norm, '@');
	if (!dom)
		return false;
	dom++;
	if (lookup(p->domains, dom, v))
		return true;
	/* ".b.example.org", ".example.org", ".org": the longest first */
	for (s = strchr(dom, '.'); s; s = strchr(s + 1, '.'))
		if (lookup(p->domains, s, v))
			return true;
	return false;
}

static enum smp_encrypt_mode mode_of(const struct smp_policy *p,
				     const char *norm)
{
	int v;

	return rule_of(p, norm, &v) ? RULE_MODE(v) : p->dflt;
}

int smp_policy_discovery_for(const struct smp_policy *p, const char *address)
{
	char *a;
	int v, d = -1;

	if (!p)
		return -1;
	a = smp_address_normalize(address);
	if (a && rule_of(p, a, &v))
		d = RULE_DISC(v);
	free(a);
	return d;
}

enum smp_encrypt_mode smp_policy_for(const struct smp_policy *p,
				     const char *address)
{
	enum smp_encrypt_mode m;
	char *a;

	if (!p)
		return SMP_ENC_OFF;
	a = smp_address_normalize(address);
	if (!a)
		return p->dflt;
	m = mode_of(p, a);
	free(a);
	return m;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

/* Is the key of binding b usable now? SMP_NOKEY_NONE when it is. */
static int key_usable(struct smp_keyring *kr, const struct smp_binding *b,
		      int64_t now, enum smp_nokey *why)
{
	struct smp_key_rec k;
	int r;

	memset(&k, 0, sizeof(k));
	r = smp_keyring_key_get(kr, b->fpr, &k);
	if (r < 0)
		return -1;
	if (r == 1)
		*why = SMP_NOKEY_NOT_STORED;
	else if (k.revoked)
		*why = SMP_NOKEY_REVOKED;
	else if (k.blocked)
		*why = SMP_NOKEY_BLOCKED;
	else if (k.expires != 0 && k.expires <= now)
		*why = SMP_NOKEY_EXPIRED;
	else
		*why = SMP_NOKEY_NONE;
	smp_key_rec_clear(&k);
	return 0;
}

/* The first usable binding in state st (newest first): its index, or -1;
 * *first_why: why the first one of that state is not usable. -2 on a
 * keyring error. */
static long pick(struct smp_keyring *kr, const struct smp_binding *b,
		 size_t n, enum smp_bind_state st, int64_t now,
		 bool *seen, enum smp_nokey *first_why)
{
	*seen = false;
	for (size_t i = 0; i < n; i++) {
		enum smp_nokey why;

		if (b[i].state != st)
			continue;
		if (key_usable(kr, &b[i], now, &why) < 0)
			return -2;
		if (why == SMP_NOKEY_NONE)
			return (long)i;
		if (!*seen)
			*first_why = why;
		*seen = true;
	}
	return -1;
}

static int find_key(struct smp_keyring *kr, const char *addr, int64_t now,
		    struct smp_rcpt_decision *r)
{
	struct smp_binding *b = NULL;
	size_t n = 0;
	enum smp_nokey why = SMP_NOKEY_NO_BINDING;
	bool seen = false, conflict = false;
	long i;
	int rc = -1;

	if (smp_keyring_bindings_for(kr, addr, &b, &n) < 0)
		return -1;
	/* pinned: the administrator's choice, and the only one then */
	i = pick(kr, b, n, SMP_BIND_PINNED, now, &seen, &why);
	if (i == -2)
		goto out;
	if (i < 0 && !seen) {
		for (size_t k = 0; k < n; k++)
			conflict |= b[k].state == SMP_BIND_CONFLICT;
		if (conflict) {
			why = SMP_NOKEY_CONFLICT;
		} else {
			i = pick(kr, b, n, SMP_BIND_ACTIVE, now, &seen, &why);
			if (i == -2)
				goto out;
		}
	}
	if (i >= 0) {
		snprintf(r->fpr, sizeof(r->fpr), "%s", b[i].fpr);
		r->state = b[i].state;
		r->why = SMP_NOKEY_NONE;
	} else if (!seen && !conflict) {
		/* only blocked or revoked bindings, or none */
		why = SMP_NOKEY_NO_BINDING;
		for (size_t k = 0; k < n; k++) {
			if (b[k].state == SMP_BIND_BLOCKED) {
				why = SMP_NOKEY_BLOCKED;
				break;
			}
			if (b[k].state == SMP_BIND_REVOKED)
				why = SMP_NOKEY_REVOKED;
		}
		r->why = why;
	} else {
		r->why = why;
	}
	rc = 0;
out:
	smp_bindings_free(b, n);
	return rc;
}

void smp_rcpt_decision_clear(struct smp_rcpt_decision *r)
{
	if (!r)
		return;
	free(r->address);
	memset(r, 0, sizeof(*r));
}

int smp_policy_recipient(const struct smp_policy *p, struct smp_keyring *kr,
			 const char *rcpt, int64_t now,
			 struct smp_rcpt_decision *r)
{
	char *a;

	memset(r, 0, sizeof(*r));
	if (now == 0)
		now = (int64_t)time(NULL);
	a = smp_address_normalize(rcpt);
	if (a) {
		r->address = a;
		r->mode = p ? mode_of(p, a) : SMP_ENC_OFF;
	} else {
		r->address = strdup(rcpt ? rcpt : "");
		if (!r->address)
			return -1;
		r->mode = smp_policy_default(p);
	}
	if (r->mode == SMP_ENC_OFF) {
		r->why = SMP_NOKEY_POLICY_OFF;
	} else if (!a) {
		r->why = SMP_NOKEY_NOT_ADDRESS;
	} else if (find_key(kr, a, now, r) < 0) {
		smp_rcpt_decision_clear(r);
		return -1;
	}
	if (r->mode == SMP_ENC_OFF)
		r->cls = SMP_RCPT_PLAIN;
	else if (r->fpr[0])
		r->cls = SMP_RCPT_ENCRYPT;
	else
		r->cls = r->mode == SMP_ENC_REQUIRED ? SMP_RCPT_REFUSE
						     : SMP_RCPT_PLAIN;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The message                                                         */

void smp_decision_clear(struct smp_decision *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->rcpts && i < d->n; i++)
		smp_rcpt_decision_clear(&d->rcpts[i]);
	free(d->rcpts);
	for (size_t i = 0; d->fprs && i < d->nfprs; i++)
		free(d->fprs[i]);
	free(d->fprs);
	memset(d, 0, sizeof(*d));
}

int smp_policy_decide(const struct smp_policy *p, struct smp_keyring *kr,
		      const char *const *rcpts, size_t n, int64_t now,
		      struct smp_decision *d)
{
	bool all_encrypt = n > 0, any_required = false;

	memset(d, 0, sizeof(*d));
	if (now == 0)
		now = (int64_t)time(NULL);
	if (n) {
		d->rcpts = calloc(n, sizeof(*d->rcpts));
		d->fprs = calloc(n, sizeof(*d->fprs));
		if (!d->rcpts || !d->fprs)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		struct smp_rcpt_decision *r = &d->rcpts[i];
		bool dup = false;

		if (smp_policy_recipient(p, kr, rcpts[i], now, r) < 0)
			goto fail;
		d->n = i + 1;
		any_required |= r->mode == SMP_ENC_REQUIRED;
		if (r->cls != SMP_RCPT_ENCRYPT) {
			all_encrypt = false;
			continue;
		}
		for (size_t k = 0; k < d->nfprs && !dup; k++)
			dup = strcmp(d->fprs[k], r->fpr) == 0;
		if (!dup) {
			d->fprs[d->nfprs] = strdup(r->fpr);
			if (!d->fprs[d->nfprs])
				goto fail;
			d->nfprs++;
		}
	}
	if (all_encrypt) {
		d->action = SMP_ACTION_ENCRYPT;
	} else if (any_required) {
		d->action = SMP_ACTION_REFUSE;
		for (size_t i = 0; i < n; i++) {
			if (d->rcpts[i].cls != SMP_RCPT_ENCRYPT) {
				d->rcpts[i].blocking = true;
				d->nblocking++;
			}
		}
	} else {
		d->action = SMP_ACTION_PLAIN;
	}
	return 0;
fail:
	smp_decision_clear(d);
	return -1;
}

/* Appends s to g with bytes unsafe in an SMTP reply replaced. */
static void append_safe(GString *g, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		g_string_append_c(g, c >= 0x21 && c < 0x7F ? (char)c : '?');
	}
}

char *smp_decision_blocking(const struct smp_decision *d, bool with_reason,
			    size_t max)
{
	GString *g = g_string_new(NULL);
	char *out;
	bool cut = false;

	if (max < 32)
		max = 32;
	for (size_t i = 0; d && i < d->n; i++) {
		const struct smp_rcpt_decision *r = &d->rcpts[i];
		size_t before = g->len;

		if (!r->blocking)
			continue;
		if (before)
			g_string_append(g, ", ");
		append_safe(g, r->address);
		if (with_reason) {
			g_string_append(g, " (");
			g_string_append(g, r->mode == SMP_ENC_OFF
						   ? "encryption off"
						   : smp_nokey_name(r->why));
			g_string_append(g, ")");
		}
		if (g->len > max - 5) {
			g_string_truncate(g, before);
			cut = true;
			break;
		}
	}
	if (cut)
		g_string_append(g, g->len ? ", ..." : "...");
	out = strdup(g->str);
	g_string_free(g, TRUE);
	return out;
}
