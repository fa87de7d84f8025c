/* smp_keyring.c - the backend-neutral half of the keyring (SPEC.md 4):
 * state and source names, address and fingerprint normalisation, argument
 * checks and dispatch to the backend module. */
#include "smp_keyring.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp_address.h"
#include "smp_keyring_backend.h"

static const char *const state_names[] = {
	[SMP_BIND_ACTIVE] = "active",
	[SMP_BIND_CONFLICT] = "conflict",
	[SMP_BIND_PINNED] = "pinned",
	[SMP_BIND_BLOCKED] = "blocked",
	[SMP_BIND_REVOKED] = "revoked",
};

static const char *const source_names[] = {
	[SMP_SRC_SMP] = "smp",
	[SMP_SRC_AUTOCRYPT] = "autocrypt",
	[SMP_SRC_PGP_KEYS] = "pgp-keys",
	[SMP_SRC_ADMIN] = "admin",
	[SMP_SRC_WKD] = "wkd",
	[SMP_SRC_DANE] = "dane",
};

#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))
#define N_SOURCES (sizeof(source_names) / sizeof(source_names[0]))

_Static_assert(N_SOURCES == SMP_SRC_LAST + 1, "every key source has a name");

const char *smp_bind_state_name(enum smp_bind_state s)
{
	return (unsigned)s < N_STATES ? state_names[s] : NULL;
}

int smp_bind_state_parse(const char *name)
{
	for (size_t i = 0; name && i < N_STATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *smp_key_source_name(enum smp_key_source s)
{
	return (unsigned)s < N_SOURCES ? source_names[s] : NULL;
}

int smp_key_source_parse(const char *name)
{
	for (size_t i = 0; name && i < N_SOURCES; i++)
		if (strcmp(name, source_names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Addresses                                                              */

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

char *smp_address_normalize(const char *addr)
{
	const unsigned char *b, *e, *at = NULL;
	char *out;
	size_t len;

	if (!addr)
		return NULL;
	b = (const unsigned char *)addr;
	len = strlen(addr);
	/* bound the scan itself, not only the result */
	if (len > SMP_ADDRESS_MAX + 64)
		return NULL;
	e = b + len;
	while (b < e && is_wsp(*b))
		b++;
	while (e > b && is_wsp(e[-1]))
		e--;
	if (b < e && *b == '<') {
		if (e[-1] != '>' || e - b < 2)
			return NULL;
		b++, e--;
		while (b < e && is_wsp(*b))
			b++;
		while (e > b && is_wsp(e[-1]))
			e--;
	} else if (b < e && e[-1] == '>') {
		return NULL;
	}
	len = (size_t)(e - b);
	if (len == 0 || len > SMP_ADDRESS_MAX)
		return NULL;

	for (size_t i = 0; i < len;) {
		size_t n = smp_utf8_seq(b + i, len - i, NULL);
		if (n == 0)
			return NULL;
		if (b[i] == '@')
			at = b + i;
		i += n;
	}
	if (!at || at == b || at == e - 1)
		return NULL;
	/* local part: exact, but never a line break or other control */
	for (const unsigned char *p = b; p < at; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
			return NULL;
	for (const unsigned char *p = at + 1; p < e; p++)
		if (*p <= 0x20 || *p == 0x7F || *p == '<' || *p == '>')
			return NULL;

	out = malloc(len + 1);
	if (!out)
		return NULL;
	memcpy(out, b, len);
	out[len] = '\0';
	for (size_t i = (size_t)(at - b) + 1; i < len; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] - 'A' + 'a');
	return out;
}

/* ---------------------------------------------------------------------- */
/* Errors and argument checks                                             */

int smp_kr_error(struct smp_keyring *kr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kr->errmsg, sizeof(kr->errmsg), fmt, ap);
	va_end(ap);
	return -1;
}

const char *smp_keyring_errmsg(struct smp_keyring *kr)
{
	if (!kr)
		return "no keyring";
	return kr->errmsg[0] ? kr->errmsg : "no error";
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* Upper-case hex of 32 (v3), 40 (v4) or 64 (v5, v6) digits; a leading
 * "0x" and spaces (gpg prints fingerprints in groups) are dropped. */
static int fpr_norm(struct smp_keyring *kr, const char *in,
		    char out[SMP_FPR_MAX])
{
	const char *p = in;
	size_t n = 0;

	if (!in)
		return smp_kr_error(kr, "no key fingerprint given");
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	for (; *p; p++) {
		if (*p == ' ')
			continue;
		if (!is_hex((unsigned char)*p) || n >= SMP_FPR_MAX - 1)
			goto bad;
		out[n++] = (char)((*p >= 'a' && *p <= 'f') ? *p - 'a' + 'A' : *p);
	}
	out[n] = '\0';
	if (n != 32 && n != 40 && n != 64)
		goto bad;
	return 0;
bad:
	out[0] = '\0';
	return smp_kr_error(kr, "'%.80s' is not a key fingerprint "
			    "(32, 40 or 64 hex digits)", in);
}

/* The normalised address, or NULL with the error set. */
static char *addr_norm(struct smp_keyring *kr, const char *in)
{
	char *a;

	if (!in) {
		smp_kr_error(kr, "no address given");
		return NULL;
	}
	a = smp_address_normalize(in);
	if (!a)
		smp_kr_error(kr, "'%.300s' is not a usable mail address", in);
	return a;
}

/* An address to store a binding for: normalised, and one mail address as
 * smp_address_check() (smp_address.h) says, so no caller can bind a key to
 * anything else. Lookups stay with addr_norm(): what was stored can always
 * be found, changed and deleted. */
static char *addr_norm_strict(struct smp_keyring *kr, const char *in,
			      const char *what)
{
	char q[SMP_QUOTE_ARG_SIZE];
	enum smp_address_status st;
	char *a = addr_norm(kr, in);

	if (!a)
		return NULL;
	st = smp_address_check(a);
	if (st != SMP_ADDR_OK) {
		smp_kr_error(kr, "cannot store %s for %s: not a mail address: %s",
			     what, smp_quote_arg(q, sizeof(q), in),
			     smp_address_strerror(st));
		free(a);
		return NULL;
	}
	return a;
}

/* Where a value need not be an address (event subjects, RCPT TO:
 * <postmaster>): normalised when it is one, else a copy as given. */
static char *addr_norm_or_copy(const char *in)
{
	char *a = smp_address_normalize(in);
	return a ? a : strdup(in);
}

/* Lists: both result pointers are required; *n = 0 from the start so a
 * failed call leaves an empty list (the callers clear *out). */
static bool out_args(struct smp_keyring *kr, const void *out, size_t *n)
{
	if (!out || !n) {
		smp_kr_error(kr, "no place for the result given");
		return false;
	}
	*n = 0;
	return true;
}

/* The fixed-size text fields of the public structs must hold a NUL. */
static bool fixed_ok(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* ---------------------------------------------------------------------- */
/* Open, close, transactions                                              */

static const struct smp_keyring_ops *const backends[] = {
	&smp_keyring_sqlite_ops,
	&smp_keyring_pg_ops,
};

int smp_keyring_open(const char *backend, const char *target,
		     struct smp_keyring **out, char *err, size_t errlen)
{
	return smp_keyring_open_flags(backend, target, 0, out, err, errlen);
}

int smp_keyring_open_flags(const char *backend, const char *target,
			   unsigned flags, struct smp_keyring **out, char *err,
			   size_t errlen)
{
	const struct smp_keyring_ops *ops = NULL;

	if (out)
		*out = NULL;
	if (!out || !err || errlen == 0)
		return -1;
	err[0] = '\0';
	if (!backend || !*backend)
		backend = "sqlite";
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backend, backends[i]->name) == 0)
			ops = backends[i];
	if (!ops) {
		snprintf(err, errlen, "unknown keyring backend '%.64s' "
			 "(this build has: sqlite, postgresql)", backend);
		return -1;
	}
	if (!target || !*target) {
		snprintf(err, errlen, "no keyring database given for the %s "
			 "backend", ops->name);
		return -1;
	}
	return ops->open(target, flags, out, err, errlen);
}

void smp_keyring_close(struct smp_keyring *kr)
{
	if (kr)
		kr->ops->close(kr);
}

bool smp_keyring_created(struct smp_keyring *kr)
{
	return kr && kr->created;
}

int smp_keyring_check(struct smp_keyring *kr)
{
	return kr ? kr->ops->check(kr) : -1;
}

int smp_keyring_schema_version(struct smp_keyring *kr)
{
	return kr ? kr->ops->schema_version(kr) : -1;
}

int smp_keyring_begin(struct smp_keyring *kr)
{
	return kr ? kr->ops->begin(kr) : -1;
}

int smp_keyring_commit(struct smp_keyring *kr)
{
	return kr ? kr->ops->commit(kr) : -1;
}

int smp_keyring_rollback(struct smp_keyring *kr)
{
	return kr ? kr->ops->rollback(kr) : -1;
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */

int smp_keyring_key_get(struct smp_keyring *kr, const char *fpr,
			struct smp_key_rec *out)
{
	char f[SMP_FPR_MAX];

	if (!kr)
		return -1;
	if (!out)
		return smp_kr_error(kr, "no place for the key given");
	memset(out, 0, sizeof(*out));
	if (fpr_norm(kr, fpr, f) != 0)
		return -1;
	return kr->ops->key_get(kr, f, out);
}

int smp_keyring_key_put(struct smp_keyring *kr, const struct smp_key_rec *k)
{
	struct smp_key_rec c;

	if (!kr)
		return -1;
	if (!k)
		return smp_kr_error(kr, "no key given");
	if (!fixed_ok(k->fpr, sizeof(k->fpr)))
		return smp_kr_error(kr, "cannot store key: unterminated "
				    "fingerprint");
	c = *k;
	if (fpr_norm(kr, k->fpr, c.fpr) != 0)
		return -1;
	if (!k->material && k->material_len)
		return smp_kr_error(kr, "cannot store key %s: no key material",
				    c.fpr);
	if (!fixed_ok(k->algo, sizeof(k->algo)) ||
	    !fixed_ok(k->enc_keyids, sizeof(k->enc_keyids)))
		return smp_kr_error(kr, "cannot store key %s: unterminated "
				    "algorithm or key ID text", c.fpr);
	if (c.updated == 0)
		c.updated = now_s();
	return kr->ops->key_put(kr, &c);
}

int smp_keyring_key_delete(struct smp_keyring *kr, const char *fpr)
{
	char f[SMP_FPR_MAX];

	if (!kr)
		return -1;
	if (fpr_norm(kr, fpr, f) != 0)
		return -1;
	return kr->ops->key_delete(kr, f, now_s());
}

int smp_keyring_key_set_blocked(struct smp_keyring *kr, const char *fpr,
				bool blocked)
{
	char f[SMP_FPR_MAX];

	if (!kr)
		return -1;
	if (fpr_norm(kr, fpr, f) != 0)
		return -1;
	return kr->ops->key_set_blocked(kr, f, blocked, now_s());
}

void smp_key_rec_clear(struct smp_key_rec *k)
{
	if (!k)
		return;
	free(k->material);
	memset(k, 0, sizeof(*k));
}

/* ---------------------------------------------------------------------- */
/* Bindings                                                               */

int smp_keyring_bindings_for(struct smp_keyring *kr, const char *address,
			     struct smp_binding **out, size_t *n)
{
	char *a;
	int rc;

	if (!kr || !out_args(kr, out, n))
		return -1;
	*out = NULL;
	a = addr_norm(kr, address);
	if (!a)
		return -1;
	rc = kr->ops->bindings_for(kr, a, out, n);
	free(a);
	return rc;
}

int smp_keyring_bindings_of_key(struct smp_keyring *kr, const char *fpr,
				struct smp_binding **out, size_t *n)
{
	char f[SMP_FPR_MAX];

	if (!kr || !out_args(kr, out, n))
		return -1;
	*out = NULL;
	if (fpr_norm(kr, fpr, f) != 0)
		return -1;
	return kr->ops->bindings_of_key(kr, f, out, n);
}

int smp_keyring_bindings_list(struct smp_keyring *kr, int state,
			      struct smp_binding **out, size_t *n)
{
	if (!kr || !out_args(kr, out, n))
		return -1;
	*out = NULL;
	if (state > SMP_BIND_REVOKED)
		return smp_kr_error(kr, "unknown binding state %d", state);
	return kr->ops->bindings_list(kr, state < 0 ? -1 : state, out, n);
}

int smp_keyring_binding_put(struct smp_keyring *kr, const struct smp_binding *b)
{
	struct smp_binding c;
	int rc;

	if (!kr)
		return -1;
	if (!b)
		return smp_kr_error(kr, "no binding given");
	if ((unsigned)b->state > SMP_BIND_REVOKED)
		return smp_kr_error(kr, "unknown binding state %d",
				    (int)b->state);
	if ((unsigned)b->source > SMP_SRC_LAST)
		return smp_kr_error(kr, "unknown key source %d", (int)b->source);
	if (!fixed_ok(b->fpr, sizeof(b->fpr)))
		return smp_kr_error(kr, "cannot store binding: unterminated "
				    "fingerprint");
	c = *b;
	if (fpr_norm(kr, b->fpr, c.fpr) != 0)
		return -1;
	c.address = addr_norm_strict(kr, b->address, "a binding");
	if (!c.address)
		return -1;
	if (c.last_seen == 0)
		c.last_seen = now_s();
	if (c.first_seen == 0)
		c.first_seen = c.last_seen;
	rc = kr->ops->binding_put(kr, &c);
	free(c.address);
	return rc;
}

int smp_keyring_binding_set_state(struct smp_keyring *kr, const char *address,
				  const char *fpr, enum smp_bind_state state)
{
	char f[SMP_FPR_MAX];
	char *a;
	int rc;

	if (!kr)
		return -1;
	if ((unsigned)state > SMP_BIND_REVOKED)
		return smp_kr_error(kr, "unknown binding state %d", (int)state);
	if (fpr_norm(kr, fpr, f) != 0)
		return -1;
	a = addr_norm(kr, address);
	if (!a)
		return -1;
	rc = kr->ops->binding_set_state(kr, a, f, state);
	free(a);
	return rc;
}

int smp_keyring_binding_delete(struct smp_keyring *kr, const char *address,
			       const char *fpr)
{
	char f[SMP_FPR_MAX];
	char *a;
	int rc;

	if (!kr)
		return -1;
	if (fpr && fpr_norm(kr, fpr, f) != 0)
		return -1;
	a = addr_norm(kr, address);
	if (!a)
		return -1;
	rc = kr->ops->binding_delete(kr, a, fpr ? f : NULL, now_s());
	free(a);
	return rc;
}

void smp_binding_clear(struct smp_binding *b)
{
	if (!b)
		return;
	free(b->address);
	free(b->message_id);
	free(b->client_addr);
	memset(b, 0, sizeof(*b));
}

void smp_bindings_free(struct smp_binding *b, size_t n)
{
	if (!b)
		return;
	for (size_t i = 0; i < n; i++)
		smp_binding_clear(&b[i]);
	free(b);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                 */

int smp_keyring_event_add(struct smp_keyring *kr, const struct smp_event *e)
{
	struct smp_event c;
	int rc;

	if (!kr)
		return -1;
	if (!e || !e->event || !*e->event)
		return smp_kr_error(kr, "no event name given");
	if (!fixed_ok(e->fpr, sizeof(e->fpr)))
		return smp_kr_error(kr, "cannot record event %s: unterminated "
				    "fingerprint", e->event);
	c = *e;
	if (e->fpr[0] && fpr_norm(kr, e->fpr, c.fpr) != 0)
		return -1;
	if (!e->fpr[0])
		c.fpr[0] = '\0';
	c.address = NULL;
	if (e->address) {
		c.address = addr_norm_or_copy(e->address);
		if (!c.address)
			return smp_kr_error(kr, "cannot record event %s: out "
					    "of memory", e->event);
	}
	if (c.at == 0)
		c.at = now_s();
	rc = kr->ops->event_add(kr, &c);
	free(c.address);
	return rc;
}

int smp_keyring_events_for(struct smp_keyring *kr, const char *address,
			   struct smp_event **out, size_t *n)
{
	char *a;
	int rc;

	if (!kr || !out_args(kr, out, n))
		return -1;
	*out = NULL;
	if (!address)
		return smp_kr_error(kr, "no address given");
	/* events may name something that is not an address (see add) */
	a = addr_norm_or_copy(address);
	if (!a)
		return smp_kr_error(kr, "out of memory");
	rc = kr->ops->events_for(kr, a, out, n);
	free(a);
	return rc;
}

int smp_keyring_events_of_key(struct smp_keyring *kr, const char *fpr,
			      struct smp_event **out, size_t *n)
{
	char f[SMP_FPR_MAX];

	if (!kr || !out_args(kr, out, n))
		return -1;
	*out = NULL;
	if (fpr_norm(kr, fpr, f) != 0)
		return -1;
	return kr->ops->events_of_key(kr, f, out, n);
}

void smp_events_free(struct smp_event *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].address);
		free(e[i].event);
		free(e[i].detail);
		free(e[i].message_id);
	}
	free(e);
}

/* ---------------------------------------------------------------------- */
/* Replay log, statistics                                                 */

int smp_keyring_replay_check(struct smp_keyring *kr, const char *digest,
			     const char *recipient, int64_t now, int64_t window,
			     bool *seen)
{
	char *r;
	int rc;

	if (!kr)
		return -1;
	if (!seen)
		return smp_kr_error(kr, "no place for the result given");
	*seen = false;
	if (!digest || !*digest || !recipient || !*recipient)
		return smp_kr_error(kr, "replay check without a digest or "
				    "recipient");
	if (window < 0)
		return smp_kr_error(kr, "negative replay window %lld",
				    (long long)window);
	r = addr_norm_or_copy(recipient);
	if (!r)
		return smp_kr_error(kr, "out of memory");
	rc = kr->ops->replay_check(kr, digest, r, now, window, seen);
	free(r);
	return rc;
}

int smp_keyring_replay_prune(struct smp_keyring *kr, int64_t now,
			     int64_t window)
{
	if (!kr)
		return -1;
	if (window < 0)
		return smp_kr_error(kr, "negative replay window %lld",
				    (long long)window);
	return kr->ops->replay_prune(kr, now, window);
}

void smp_kr_pruned_detail(char *buf, size_t size, unsigned long events,
			  int64_t before)
{
	time_t t = (time_t)before;
	struct tm tm;
	char when[32] = "?";

	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(buf, size, "%lu event%s before %s", events,
		 events == 1 ? "" : "s", when);
}

/* now - span, or INT64_MIN where that would wrap (span >= 0). */
static int64_t before_of(int64_t now, int64_t span)
{
	return now < INT64_MIN + span ? INT64_MIN : now - span;
}

int smp_keyring_prune(struct smp_keyring *kr, int64_t now, int64_t events_keep,
		      int64_t replay_window, struct smp_keyring_pruned *out)
{
	struct smp_keyring_pruned p;
	int64_t ev_before, rp_before;
	int rc;

	memset(&p, 0, sizeof(p));
	if (out)
		*out = p;
	if (!kr)
		return -1;
	if (events_keep < 0 ||
	    (events_keep > 0 && events_keep < SMP_KEYRING_EVENTS_KEEP_MIN))
		return smp_kr_error(kr, "cannot prune the event history: "
				    "events_keep of %lld seconds is less "
				    "than a day", (long long)events_keep);
	if (now == 0)
		now = now_s();
	ev_before = events_keep ? before_of(now, events_keep) : INT64_MIN;
	rp_before = replay_window >= 0 ? before_of(now, replay_window)
				       : INT64_MIN;
	rc = kr->ops->prune(kr, now, ev_before, rp_before, &p.events,
			    &p.replay_entries);
	if (rc != 0)
		return rc;
	p.events_before = events_keep ? ev_before : 0;
	p.replay_before = replay_window >= 0 ? rp_before : 0;
	if (out)
		*out = p;
	return 0;
}

int smp_keyring_stats(struct smp_keyring *kr, struct smp_keyring_stats *st)
{
	if (!kr)
		return -1;
	if (!st)
		return smp_kr_error(kr, "no place for the result given");
	memset(st, 0, sizeof(*st));
	return kr->ops->stats(kr, st);
}

/* ---------------------------------------------------------------------- */
/* Rows through ops->exec: the discovery cache and the known key blocks  */

static void q_init(struct smp_kr_stmt *st, unsigned q)
{
	memset(st, 0, sizeof(*st));
	st->q = q;
}

static void q_text(struct smp_kr_stmt *st, const char *v)
{
	if (st->nargs < SMP_KR_EXEC_MAX_ARGS)
		st->arg[st->nargs++].text = v;
}

static void q_int(struct smp_kr_stmt *st, int64_t v)
{
	if (st->nargs < SMP_KR_EXEC_MAX_ARGS) {
		st->arg[st->nargs].num = v;
		st->arg[st->nargs++].is_int = true;
	}
}

static int64_t col_int(const char *t)
{
	return t ? (int64_t)strtoll(t, NULL, 10) : 0;
}

/* Copies a column into a fixed field; false when it does not fit. */
static bool col_fixed(const char *t, char *dst, size_t size)
{
	size_t n = t ? strlen(t) : 0;

	if (n >= size)
		return false;
	memcpy(dst, t ? t : "", n + 1);
	return true;
}

/* "what" for the error sentences: "<verb> <address>" (a normalised
 * address holds no control characters; the other messages show it as it
 * is too). */
static void what_of(char *buf, size_t size, const char *verb, const char *a)
{
	snprintf(buf, size, "%s %s", verb, a);
}

/* 64 hex digits (SHA-256), into lower case; -1 with the error set. */
static int digest_norm(struct smp_keyring *kr, const char *in, char out[65],
		       const char *what)
{
	char q[SMP_QUOTE_ARG_SIZE];
	size_t n = 0;

	for (; in && in[n] && n < 64; n++) {
		if (!is_hex((unsigned char)in[n]))
			break;
		out[n] = (char)(in[n] >= 'A' && in[n] <= 'F' ? in[n] - 'A' + 'a'
							     : in[n]);
	}
	out[n] = '\0';
	if (n == 64 && in[n] == '\0')
		return 0;
	out[0] = '\0';
	return smp_kr_error(kr, "cannot %s: %s is not a SHA-256 digest (64 "
			    "hex digits)", what,
			    in ? smp_quote_arg(q, sizeof(q), in) : "NULL");
}

/* ---------------------------------------------------------------------- */
/* Discovery cache                                                        */

static bool disc_status_ok(const char *v)
{
	return strcmp(v, "found") == 0 || strcmp(v, "none") == 0 ||
	       strcmp(v, "error") == 0;
}

/* The methods are the names of the sources their keys are stored with. */
static bool disc_method_ok(const char *v)
{
	return !*v || strcmp(v, source_names[SMP_SRC_WKD]) == 0 ||
	       strcmp(v, source_names[SMP_SRC_DANE]) == 0;
}

/* The rows of a discovery query, as they are read. */
struct disc_rows {
	struct smp_disc_entry *v;
	size_t n, cap;
	const char *what;
};

/* One row of SMP_KR_DISC_COLS. A value no keyring writes is an error,
 * never a guess. */
static int disc_row(struct smp_keyring *kr, void *arg, const char *const *col,
		    int ncol)
{
	struct disc_rows *r = arg;
	struct smp_disc_entry *e;
	char q[SMP_QUOTE_ARG_SIZE];

	if (ncol != 8 || !col[0] || !col[1] || !col[2])
		return smp_kr_error(kr, "cannot %s: a discovery entry is not "
				    "as this program writes it", r->what);
	if (!disc_status_ok(col[1]) || !disc_method_ok(col[2]))
		return smp_kr_error(kr, "cannot %s: a discovery entry has an "
				    "unknown %s %s", r->what,
				    disc_status_ok(col[1]) ? "method" : "status",
				    smp_quote_arg(q, sizeof(q),
						  disc_status_ok(col[1]) ? col[2]
									 : col[1]));
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 8;
		struct smp_disc_entry *nv = realloc(r->v, nc * sizeof(*nv));
		if (!nv)
			return smp_kr_error(kr, "cannot %s: out of memory",
					    r->what);
		r->v = nv, r->cap = nc;
	}
	e = &r->v[r->n];
	memset(e, 0, sizeof(*e));
	if (!col_fixed(col[1], e->status, sizeof(e->status)) ||
	    !col_fixed(col[2], e->method, sizeof(e->method)) ||
	    !col_fixed(col[4], e->fpr, sizeof(e->fpr)))
		return smp_kr_error(kr, "cannot %s: a stored text is longer "
				    "than this program allows", r->what);
	e->address = strdup(col[0]);
	e->origin = strdup(col[3] ? col[3] : "");
	e->detail = strdup(col[7] ? col[7] : "");
	e->fetched = col_int(col[5]);
	e->expires = col_int(col[6]);
	r->n++;   /* counted first: a partial entry is freed with the rest */
	if (!e->address || !e->origin || !e->detail)
		return smp_kr_error(kr, "cannot %s: out of memory", r->what);
	return 0;
}

void smp_disc_entry_clear(struct smp_disc_entry *e)
{
	if (!e)
		return;
	free(e->address);
	free(e->origin);
	free(e->detail);
	memset(e, 0, sizeof(*e));
}

void smp_disc_entries_free(struct smp_disc_entry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++)
		smp_disc_entry_clear(&e[i]);
	free(e);
}

int smp_keyring_disc_get(struct smp_keyring *kr, const char *address,
			 struct smp_disc_entry *out)
{
	struct disc_rows r = {0};
	struct smp_kr_stmt st;
	char what[SMP_ADDRESS_MAX + 64];
	char *a;
	int rc;

	if (!kr)
		return -1;
	if (!out)
		return smp_kr_error(kr, "no place for the result given");
	memset(out, 0, sizeof(*out));
	a = addr_norm(kr, address);
	if (!a)
		return -1;
	what_of(what, sizeof(what), "read the discovery entry of", a);
	r.what = what;
	q_init(&st, SMP_KR_Q_DISC_GET);
	q_text(&st, a);
	st.row = disc_row;
	st.row_arg = &r;
	rc = kr->ops->exec(kr, &st, 1, false, what);
	if (rc == 0 && r.n == 0)
		rc = 1;
	else if (rc == 0)
		*out = r.v[--r.n];   /* the address is the key: one row */
	smp_disc_entries_free(r.v, r.n);
	free(a);
	return rc;
}

int smp_keyring_disc_put(struct smp_keyring *kr, const struct smp_disc_entry *e)
{
	char what[SMP_ADDRESS_MAX + 64], q[SMP_QUOTE_ARG_SIZE];
	char f[SMP_FPR_MAX] = "";
	struct smp_kr_stmt st;
	char *a;
	int rc = -1;

	if (!kr)
		return -1;
	if (!e)
		return smp_kr_error(kr, "no discovery entry given");
	if (!fixed_ok(e->status, sizeof(e->status)) ||
	    !fixed_ok(e->method, sizeof(e->method)) ||
	    !fixed_ok(e->fpr, sizeof(e->fpr)))
		return smp_kr_error(kr, "cannot store a discovery entry: "
				    "unterminated status, method or fingerprint");
	a = addr_norm_strict(kr, e->address, "a discovery entry");
	if (!a)
		return -1;
	what_of(what, sizeof(what), "store the discovery entry of", a);
	if (!disc_status_ok(e->status)) {
		smp_kr_error(kr, "cannot %s: unknown status %s (found, none or "
			     "error)", what, smp_quote_arg(q, sizeof(q), e->status));
		goto out;
	}
	if (!disc_method_ok(e->method)) {
		smp_kr_error(kr, "cannot %s: unknown method %s (wkd, dane or "
			     "none)", what, smp_quote_arg(q, sizeof(q), e->method));
		goto out;
	}
	if (e->fpr[0] && fpr_norm(kr, e->fpr, f) != 0)
		goto out;
	if (!f[0] && strcmp(e->status, "found") == 0) {
		smp_kr_error(kr, "cannot %s: a found entry needs the key's "
			     "fingerprint", what);
		goto out;
	}
	q_init(&st, SMP_KR_Q_DISC_PUT);
	q_text(&st, a);
	q_text(&st, e->status);
	q_text(&st, e->method);
	q_text(&st, e->origin ? e->origin : "");
	q_text(&st, f);
	q_int(&st, e->fetched ? e->fetched : now_s());
	q_int(&st, e->expires);
	q_text(&st, e->detail ? e->detail : "");
	rc = kr->ops->exec(kr, &st, 1, true, what);
out:
	free(a);
	return rc;
}

int smp_keyring_disc_delete(struct smp_keyring *kr, const char *address)
{
	char what[SMP_ADDRESS_MAX + 64];
	struct smp_kr_stmt st;
	char *a;
	int rc;

	if (!kr)
		return -1;
	a = addr_norm(kr, address);
	if (!a)
		return -1;
	what_of(what, sizeof(what), "delete the discovery entry of", a);
	q_init(&st, SMP_KR_Q_DISC_DELETE);
	q_text(&st, a);
	rc = kr->ops->exec(kr, &st, 1, true, what);
	if (rc == 0 && st.changed == 0)
		rc = 1;
	free(a);
	return rc;
}

int smp_keyring_disc_due(struct smp_keyring *kr, const char *status,
			 int64_t before, size_t limit,
			 struct smp_disc_entry **out, size_t *n)
{
	struct disc_rows r = {0};
	struct smp_kr_stmt st;
	char q[SMP_QUOTE_ARG_SIZE];
	int rc;

	if (!kr || !out_args(kr, out, n))
		return -1;
	*out = NULL;
	if (status && !disc_status_ok(status))
		return smp_kr_error(kr, "cannot list the discovery entries due: "
				    "unknown status %s (found, none or error)",
				    smp_quote_arg(q, sizeof(q), status));
	r.what = "list the discovery entries due";
	q_init(&st, status ? SMP_KR_Q_DISC_DUE : SMP_KR_Q_DISC_DUE_ANY);
	if (status)
		q_text(&st, status);
	q_int(&st, before);
	/* no limit: one no query reaches (SQLite's -1 is PostgreSQL's error) */
	q_int(&st, limit == 0 || limit > (size_t)INT64_MAX ? INT64_MAX
							   : (int64_t)limit);
	st.row = disc_row;
	st.row_arg = &r;
	rc = kr->ops->exec(kr, &st, 1, false, r.what);
	if (rc != 0) {
		smp_disc_entries_free(r.v, r.n);
		return rc;
	}
	*out = r.v;
	*n = r.n;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Known key blocks                                                       */

struct block_row_arg {
	struct smp_known_block *b;
	bool found;
	const char *what;
};

/* The row of SMP_KR_BLOCK_COLS. */
static int block_row(struct smp_keyring *kr, void *arg, const char *const *col,
		     int ncol)
{
	struct block_row_arg *r = arg;
	struct smp_known_block *b = r->b;

	if (ncol != 5 || !col_fixed(col[0], b->digest, sizeof(b->digest)) ||
	    !col_fixed(col[1], b->fpr, sizeof(b->fpr)) ||
	    !col_fixed(col[2], b->material, sizeof(b->material)))
		return smp_kr_error(kr, "cannot %s: a known block is not as "
				    "this program writes it", r->what);
	b->usable_until = col_int(col[3]);
	b->seen = col_int(col[4]);
	r->found = true;
	return 0;
}

int smp_keyring_block_get(struct smp_keyring *kr, const char *digest,
			  struct smp_known_block *out)
{
	struct block_row_arg r;
	struct smp_kr_stmt st;
	char d[65];
	int rc;

	if (!kr)
		return -1;
	if (!out)
		return smp_kr_error(kr, "no place for the result given");
	/* before out is cleared: digest may be out->digest */
	rc = digest_norm(kr, digest, d, "read a known key block");
	memset(out, 0, sizeof(*out));
	if (rc != 0)
		return -1;
	r.b = out;
	r.found = false;
	r.what = "read a known key block";
	q_init(&st, SMP_KR_Q_BLOCK_GET);
	q_text(&st, d);
	st.row = block_row;
	st.row_arg = &r;
	rc = kr->ops->exec(kr, &st, 1, false, r.what);
	if (rc != 0 || !r.found)
		memset(out, 0, sizeof(*out));
	return rc != 0 ? rc : r.found ? 0 : 1;
}

int smp_keyring_block_put(struct smp_keyring *kr,
			  const struct smp_known_block *b)
{
	static const char what[] = "store a known key block";
	struct smp_kr_stmt st[2];
	char d[65], m[65], f[SMP_FPR_MAX];

	if (!kr)
		return -1;
	if (!b)
		return smp_kr_error(kr, "no known key block given");
	if (!fixed_ok(b->digest, sizeof(b->digest)) ||
	    !fixed_ok(b->fpr, sizeof(b->fpr)) ||
	    !fixed_ok(b->material, sizeof(b->material)))
		return smp_kr_error(kr, "cannot %s: unterminated digest or "
				    "fingerprint", what);
	if (digest_norm(kr, b->digest, d, what) != 0 ||
	    digest_norm(kr, b->material, m, what) != 0 ||
	    fpr_norm(kr, b->fpr, f) != 0)
		return -1;
	q_init(&st[0], SMP_KR_Q_BLOCK_PUT);
	q_text(&st[0], d);
	q_text(&st[0], f);
	q_text(&st[0], m);
	q_int(&st[0], b->usable_until);
	q_int(&st[0], b->seen ? b->seen : now_s());
	/* in the same transaction: never more than the bound per key */
	q_init(&st[1], SMP_KR_Q_BLOCK_TRIM);
	q_text(&st[1], f);
	q_text(&st[1], f);
	q_int(&st[1], SMP_KEYRING_BLOCKS_PER_KEY);
	return kr->ops->exec(kr, st, 2, true, what);
}
