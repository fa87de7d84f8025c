/* smp_keyring_pg_rows.c - the PostgreSQL keyring backend's rows: the ops
 * functions that read and write keys, bindings, events, the replay log
 * and the rows smp_keyring.c owns (ops->exec), pruning and the
 * statistics, and the readers that turn a result row into a struct.
 *
 * Separate from smp_keyring_pg.c, which owns the connection: errors and
 * recovery, preparing and running statements (smp_kpg_run), transactions
 * (smp_kpg_wbegin, smp_kpg_wend), the advisory locks (smp_kpg_lock_in_txn),
 * open, migrations and close. The concurrency rules these functions rely
 * on are at the top of smp_keyring_pg.c.
 */
#include <libpq-fe.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_keyring_pg_int.h"

/* ---------------------------------------------------------------------- */
/* Reading rows                                                           */

static bool col_fixed(const PGresult *r, int row, int i, char *dst,
		      size_t size)
{
	const char *t = PQgetvalue(r, row, i);
	size_t n = (size_t)PQgetlength(r, row, i);

	if (PQgetisnull(r, row, i)) {
		dst[0] = '\0';
		return true;
	}
	if (n >= size)
		return false;
	memcpy(dst, t, n);
	dst[n] = '\0';
	return true;
}

/* A malloc'd copy (NULL stays NULL); false on ENOMEM. */
static bool col_dup(const PGresult *r, int row, int i, char **dst)
{
	*dst = NULL;
	if (PQgetisnull(r, row, i))
		return true;
	*dst = strdup(PQgetvalue(r, row, i));
	return *dst != NULL;
}

int64_t smp_kpg_col_i64(const PGresult *r, int row, int i)
{
	if (PQgetisnull(r, row, i))
		return 0;
	return (int64_t)strtoll(PQgetvalue(r, row, i), NULL, 10);
}

/* Columns of SMP_KR_KEY_COLS. NULL, or what is wrong with the row. */
static const char *row_key(const PGresult *r, int row, struct smp_key_rec *k)
{
	unsigned char *m;
	size_t n = 0;
	int64_t bits;

	memset(k, 0, sizeof(*k));
	if (!col_fixed(r, row, 0, k->fpr, sizeof(k->fpr)) ||
	    !col_fixed(r, row, 2, k->algo, sizeof(k->algo)) ||
	    !col_fixed(r, row, 8, k->enc_keyids, sizeof(k->enc_keyids)))
		return "a stored text is longer than this program allows";
	m = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 1), &n);
	if (!m)
		return "out of memory";
	k->material = malloc(n ? n : 1);
	if (!k->material) {
		PQfreemem(m);
		return "out of memory";
	}
	if (n)
		memcpy(k->material, m, n);
	PQfreemem(m);
	k->material_len = n;
	bits = smp_kpg_col_i64(r, row, 3);
	k->bits = bits < 0 || bits > UINT32_MAX ? 0 : (unsigned)bits;
	k->created = smp_kpg_col_i64(r, row, 4);
	k->expires = smp_kpg_col_i64(r, row, 5);
	k->revoked = smp_kpg_col_i64(r, row, 6) != 0;
	k->blocked = smp_kpg_col_i64(r, row, 7) != 0;
	k->updated = smp_kpg_col_i64(r, row, 9);
	return NULL;
}

/* Columns of SMP_KR_BIND_COLS. */
static const char *row_binding(const PGresult *r, int row,
			       struct smp_binding *b)
{
	int state, source;
	int64_t times;

	memset(b, 0, sizeof(*b));
	state = smp_bind_state_parse(PQgetvalue(r, row, 2));
	source = smp_key_source_parse(PQgetvalue(r, row, 3));
	if (state < 0)
		return "a binding has an unknown state";
	if (source < 0)
		return "a binding has an unknown source";
	if (!col_fixed(r, row, 1, b->fpr, sizeof(b->fpr)))
		return "a stored fingerprint is too long";
	if (!col_dup(r, row, 0, &b->address) || !b->address ||
	    !col_dup(r, row, 8, &b->message_id) ||
	    !col_dup(r, row, 9, &b->client_addr))
		return "out of memory";
	b->state = (enum smp_bind_state)state;
	b->source = (enum smp_key_source)source;
	b->first_seen = smp_kpg_col_i64(r, row, 4);
	b->last_seen = smp_kpg_col_i64(r, row, 5);
	b->msg_date = smp_kpg_col_i64(r, row, 6);
	times = smp_kpg_col_i64(r, row, 7);
	b->times_seen = times < 0 ? 0 : times > UINT32_MAX ? UINT32_MAX
							   : (unsigned)times;
	b->self_encrypted = smp_kpg_col_i64(r, row, 10) != 0;
	return NULL;
}

/* Columns of SMP_KR_EVENT_COLS. */
static const char *row_event(const PGresult *r, int row, struct smp_event *e)
{
	memset(e, 0, sizeof(*e));
	if (!col_fixed(r, row, 3, e->fpr, sizeof(e->fpr)))
		return "a stored fingerprint is too long";
	if (!col_dup(r, row, 2, &e->address) || !col_dup(r, row, 4, &e->event) ||
	    !e->event || !col_dup(r, row, 5, &e->detail) ||
	    !col_dup(r, row, 6, &e->message_id))
		return "out of memory";
	e->id = smp_kpg_col_i64(r, row, 0);
	e->at = smp_kpg_col_i64(r, row, 1);
	return NULL;
}

static void event_clear(struct smp_event *e)
{
	free(e->address);
	free(e->event);
	free(e->detail);
	free(e->message_id);
	memset(e, 0, sizeof(*e));
}

enum row_kind { ROW_BINDING, ROW_EVENT };

/* Runs query q with one text parameter (NULL: none) into a list. On error
 * the message says "cannot <what><arg>: why". */
static int list_q(struct kpg *s, unsigned q, const char *param,
		  enum row_kind kind, void **out, size_t *n, const char *what)
{
	size_t elem = kind == ROW_BINDING ? sizeof(struct smp_binding)
					  : sizeof(struct smp_event);
	const char *arg = param ? param : "", *bad = NULL;
	struct params p = {0};
	unsigned char *v = NULL;
	PGresult *res = NULL;
	size_t cnt = 0;
	int rows, ret = -1;

	if (param)
		p_text(&p, param);
	res = smp_kpg_run(s, q, &p);
	if (!res) {
		smp_kpg_fail(s, "cannot %s%s", what, arg);
		goto out;
	}
	rows = PQntuples(res);
	if (rows > 0) {
		v = calloc((size_t)rows, elem);
		if (!v) {
			smp_kr_error(&s->base, "cannot %s%s: out of memory",
				     what, arg);
			goto out;
		}
	}
	for (int i = 0; i < rows; i++) {
		if (kind == ROW_BINDING) {
			struct smp_binding *b = (struct smp_binding *)v + cnt;
			bad = row_binding(res, i, b);
			if (bad)
				smp_binding_clear(b);
		} else {
			struct smp_event *e = (struct smp_event *)v + cnt;
			bad = row_event(res, i, e);
			if (bad)
				event_clear(e);
		}
		if (bad) {
			smp_kr_error(&s->base, "cannot %s%s: %s", what, arg,
				     bad);
			goto out;
		}
		cnt++;
	}
	ret = 0;
out:
	PQclear(res);
	if (ret != 0) {
		if (kind == ROW_BINDING)
			smp_bindings_free((struct smp_binding *)v, cnt);
		else
			smp_events_free((struct smp_event *)v, cnt);
		v = NULL, cnt = 0;
	}
	*out = v;
	*n = cnt;
	return ret;
}

/* Rows a write changed (PQcmdTuples), 0 when it says nothing. */
static long changed(const PGresult *res)
{
	return strtol(PQcmdTuples((PGresult *)res), NULL, 10);
}

/* Runs a write with no rows to read: 0, or -1 (s->why). *n (may be NULL)
 * gets the rows changed. */
int smp_kpg_write_q(struct kpg *s, unsigned q, const struct params *p,
		    long *n)
{
	PGresult *res = smp_kpg_run(s, q, p);

	if (!res)
		return -1;
	if (n)
		*n = changed(res);
	PQclear(res);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */

int smp_kpg_key_get(struct smp_keyring *kr, const char *fpr,
		    struct smp_key_rec *out)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	PGresult *res = NULL;
	const char *bad;
	int ret = -1;

	if (smp_kpg_lock_in_txn(s, KPG_LOCK_KEY, fpr) != 0) {
		smp_kpg_fail(s, "cannot read key %s", fpr);
		goto out;
	}
	p_text(&p, fpr);
	res = smp_kpg_run(s, SMP_KR_Q_KEY_GET, &p);
	if (!res) {
		smp_kpg_fail(s, "cannot read key %s", fpr);
		goto out;
	}
	if (PQntuples(res) == 0) {
		ret = 1;
		goto out;
	}
	bad = row_key(res, 0, out);
	if (bad) {
		smp_key_rec_clear(out);
		smp_kr_error(kr, "cannot read key %s: %s", fpr, bad);
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	return ret;
}

int smp_kpg_key_put(struct smp_keyring *kr, const struct smp_key_rec *k)
{
	struct kpg *s = K(kr);
	struct params p = {0};

	p_text(&p, k->fpr);
	p_blob(&p, k->material, k->material_len);
	p_text(&p, k->algo);
	p_i64(&p, k->bits);
	p_i64(&p, k->created);
	p_i64(&p, k->expires);
	p_i64(&p, k->revoked);
	p_i64(&p, k->blocked);
	p_text(&p, k->enc_keyids);
	p_i64(&p, k->updated);
	if (k->material_len > INT_MAX)
		return smp_kr_error(kr, "cannot store key %s: its material is "
				    "too large", k->fpr);
	if (smp_kpg_write_q(s, SMP_KR_Q_KEY_PUT, &p, NULL) != 0)
		return smp_kpg_fail(s, "cannot store key %s", k->fpr);
	return 0;
}

/* Records the bindings about to go, then deletes the key; the bindings
 * follow through ON DELETE CASCADE. */
int smp_kpg_key_delete(struct smp_keyring *kr, const char *fpr,
		       int64_t now)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	char detail[64];
	long nbind = 0, nkey = 0;
	bool own;
	int ret = -1;

	if (smp_kpg_wbegin(s, &own, "cannot delete key %s", fpr) != 0)
		return -1;
	p_i64(&p, now);
	p_text(&p, "key deleted");
	p_text(&p, fpr);
	if (smp_kpg_write_q(s, SMP_KR_Q_KEY_DELETE_EVENTS, &p, &nbind) != 0)
		goto bad;
	memset(&p, 0, sizeof(p));
	p_text(&p, fpr);
	if (smp_kpg_write_q(s, SMP_KR_Q_KEY_DELETE, &p, &nkey) != 0)
		goto bad;
	if (nkey == 0) {
		ret = 1;
		goto out;
	}
	snprintf(detail, sizeof(detail), "with %ld binding%s", nbind,
		 nbind == 1 ? "" : "s");
	memset(&p, 0, sizeof(p));
	p_i64(&p, now);
	p_text(&p, NULL);
	p_text(&p, fpr);
	p_text(&p, SMP_EVENT_KEY_DELETED);
	p_text(&p, detail);
	p_text(&p, NULL);
	if (smp_kpg_write_q(s, SMP_KR_Q_EVENT_ADD, &p, NULL) != 0)
		goto bad;
	ret = 0;
	goto out;
bad:
	smp_kpg_fail(s, "cannot delete key %s", fpr);
out:
	return smp_kpg_wend(s, own, ret, "cannot delete key %s", fpr);
}

int smp_kpg_key_set_blocked(struct smp_keyring *kr, const char *fpr,
			    bool blocked, int64_t now)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	long n = 0;

	p_i64(&p, blocked);
	p_i64(&p, now);
	p_text(&p, fpr);
	if (smp_kpg_write_q(s, SMP_KR_Q_KEY_SET_BLOCKED, &p, &n) != 0)
		return smp_kpg_fail(s, "cannot %s key %s",
				    blocked ? "block" : "unblock", fpr);
	return n == 0 ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Bindings                                                               */

int smp_kpg_bindings_for(struct smp_keyring *kr, const char *address,
			 struct smp_binding **out, size_t *n)
{
	struct kpg *s = K(kr);

	if (smp_kpg_lock_in_txn(s, KPG_LOCK_ADDRESS, address) != 0) {
		*out = NULL;
		*n = 0;
		return smp_kpg_fail(s, "cannot read the bindings of %s",
				    address);
	}
	return list_q(s, SMP_KR_Q_BIND_FOR, address, ROW_BINDING,
		      (void **)out, n, "read the bindings of ");
}

int smp_kpg_bindings_of_key(struct smp_keyring *kr, const char *fpr,
			    struct smp_binding **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_BIND_OF_KEY, fpr, ROW_BINDING,
		      (void **)out, n, "read the bindings of key ");
}

int smp_kpg_bindings_list(struct smp_keyring *kr, int state,
			  struct smp_binding **out, size_t *n)
{
	if (state < 0)
		return list_q(K(kr), SMP_KR_Q_BIND_ALL, NULL, ROW_BINDING,
			      (void **)out, n, "list the bindings");
	return list_q(K(kr), SMP_KR_Q_BIND_STATE,
		      smp_bind_state_name((enum smp_bind_state)state),
		      ROW_BINDING, (void **)out, n, "list the bindings in state ");
}

int smp_kpg_binding_put(struct smp_keyring *kr, const struct smp_binding *b)
{
	struct kpg *s = K(kr);
	struct params p = {0};

	p_text(&p, b->address);
	p_text(&p, b->fpr);
	p_text(&p, smp_bind_state_name(b->state));
	p_text(&p, smp_key_source_name(b->source));
	p_i64(&p, b->first_seen);
	p_i64(&p, b->last_seen);
	p_i64(&p, b->msg_date);
	p_i64(&p, b->times_seen);
	p_text(&p, b->message_id);
	p_text(&p, b->client_addr);
	p_i64(&p, b->self_encrypted);
	if (smp_kpg_write_q(s, SMP_KR_Q_BIND_PUT, &p, NULL) != 0)
		return smp_kpg_fail(s, "cannot store binding %s %s", b->address,
				    b->fpr);
	return 0;
}

int smp_kpg_binding_set_state(struct smp_keyring *kr, const char *address,
			      const char *fpr, enum smp_bind_state state)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	long n = 0;

	p_text(&p, smp_bind_state_name(state));
	p_text(&p, address);
	p_text(&p, fpr);
	if (smp_kpg_write_q(s, SMP_KR_Q_BIND_SET_STATE, &p, &n) != 0)
		return smp_kpg_fail(s, "cannot change binding %s %s", address,
				    fpr);
	return n == 0 ? 1 : 0;
}

int smp_kpg_binding_delete(struct smp_keyring *kr, const char *address,
			   const char *fpr, int64_t now)
{
	struct kpg *s = K(kr);
	const char *f = fpr ? fpr : "(all keys)";
	struct params p = {0};
	long n = 0;
	bool own;
	int ret = -1;

	if (smp_kpg_wbegin(s, &own, "cannot delete binding %s %s", address,
			   f) != 0)
		return -1;
	p_i64(&p, now);
	p_text(&p, "deleted");
	p_text(&p, address);
	if (fpr)
		p_text(&p, fpr);
	if (smp_kpg_write_q(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE_EVENTS
			   : SMP_KR_Q_BIND_DELETE_ADDR_EVENTS, &p, NULL) != 0)
		goto bad;
	memset(&p, 0, sizeof(p));
	p_text(&p, address);
	if (fpr)
		p_text(&p, fpr);
	if (smp_kpg_write_q(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE
			   : SMP_KR_Q_BIND_DELETE_ADDR, &p, &n) != 0)
		goto bad;
	ret = n == 0 ? 1 : 0;
	goto out;
bad:
	smp_kpg_fail(s, "cannot delete binding %s %s", address, f);
out:
	return smp_kpg_wend(s, own, ret, "cannot delete binding %s %s", address,
			    f);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                 */

int smp_kpg_event_add(struct smp_keyring *kr, const struct smp_event *e)
{
	struct kpg *s = K(kr);
	struct params p = {0};

	p_i64(&p, e->at);
	p_text(&p, e->address);
	p_text(&p, e->fpr);
	p_text(&p, e->event);
	p_text(&p, e->detail);
	p_text(&p, e->message_id);
	if (smp_kpg_write_q(s, SMP_KR_Q_EVENT_ADD, &p, NULL) != 0)
		return smp_kpg_fail(s, "cannot record event %s", e->event);
	return 0;
}

int smp_kpg_events_for(struct smp_keyring *kr, const char *address,
		       struct smp_event **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_EVENTS_FOR, address, ROW_EVENT,
		      (void **)out, n, "read the history of ");
}

int smp_kpg_events_of_key(struct smp_keyring *kr, const char *fpr,
			  struct smp_event **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_EVENTS_OF_KEY, fpr, ROW_EVENT,
		      (void **)out, n, "read the history of key ");
}

/* ---------------------------------------------------------------------- */
/* Replay log                                                             */

/* now - window without wrapping below INT64_MIN (window >= 0). */
static int64_t cutoff(int64_t now, int64_t window)
{
	return now < INT64_MIN + window ? INT64_MIN : now - window;
}

int smp_kpg_replay_check(struct smp_keyring *kr, const char *digest,
			 const char *recipient, int64_t now, int64_t window,
			 bool *seen)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	long n = 0;

	p_text(&p, digest);
	p_text(&p, recipient);
	p_i64(&p, now);
	p_i64(&p, cutoff(now, window));
	*seen = false;
	if (smp_kpg_write_q(s, SMP_KR_Q_REPLAY_CHECK, &p, &n) != 0)
		return smp_kpg_fail(s, "cannot check replay of %s", recipient);
	/* no row changed: the pair is there and still inside the window */
	*seen = n == 0;
	return 0;
}

int smp_kpg_replay_prune(struct smp_keyring *kr, int64_t now,
			 int64_t window)
{
	struct kpg *s = K(kr);
	struct params p = {0};

	p_i64(&p, cutoff(now, window));
	if (smp_kpg_write_q(s, SMP_KR_Q_REPLAY_PRUNE, &p, NULL) != 0)
		return smp_kpg_fail(s, "cannot prune the replay log");
	return 0;
}

/* Deletes with one cutoff parameter; *n gets the rows deleted. */
static int delete_before(struct kpg *s, unsigned q, int64_t before,
			 unsigned long *n)
{
	struct params p = {0};
	long c = 0;

	p_i64(&p, before);
	if (smp_kpg_write_q(s, q, &p, &c) != 0)
		return -1;
	*n = c < 0 ? 0 : (unsigned long)c;
	return 0;
}

int smp_kpg_prune(struct smp_keyring *kr, int64_t now, int64_t events_before,
		  int64_t replay_before, unsigned long *events,
		  unsigned long *replay_entries)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	char detail[96];
	bool own;
	int ret = -1;

	*events = *replay_entries = 0;
	if (smp_kpg_wbegin(s, &own, "cannot prune %s", s->name) != 0)
		return -1;
	if (events_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_EVENTS_PRUNE, events_before,
			  events) != 0) {
		smp_kpg_fail(s, "cannot prune the event history in %s",
			     s->name);
		goto out;
	}
	if (*events > 0) {
		/* the pruning itself stays on record (no address, no key) */
		smp_kr_pruned_detail(detail, sizeof(detail), *events,
				     events_before);
		p_i64(&p, now);
		p_text(&p, NULL);
		p_text(&p, "");
		p_text(&p, SMP_EVENT_EVENTS_PRUNED);
		p_text(&p, detail);
		p_text(&p, NULL);
		if (smp_kpg_write_q(s, SMP_KR_Q_EVENT_ADD, &p, NULL) != 0) {
			smp_kpg_fail(s, "cannot record event %s",
				     SMP_EVENT_EVENTS_PRUNED);
			goto out;
		}
	}
	if (replay_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_REPLAY_PRUNE, replay_before,
			  replay_entries) != 0) {
		smp_kpg_fail(s, "cannot prune the replay log in %s", s->name);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		*events = *replay_entries = 0;
	return smp_kpg_wend(s, own, ret, "cannot prune %s", s->name);
}

/* ---------------------------------------------------------------------- */
/* Statistics                                                             */

static int count_q(struct kpg *s, unsigned q, unsigned long *v)
{
	PGresult *res = smp_kpg_run(s, q, NULL);

	if (!res)
		return -1;
	*v = PQntuples(res) ? (unsigned long)smp_kpg_col_i64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/* Several counts from one snapshot: a REPEATABLE READ transaction around
 * them (inside the caller's, its own snapshot rules). */
int smp_kpg_stats(struct smp_keyring *kr, struct smp_keyring_stats *out)
{
	struct kpg *s = K(kr);
	PGresult *res = NULL;
	int ret = -1;

	if (!s->txn) {
		if (smp_kpg_begin_q(s, "BEGIN ISOLATION LEVEL REPEATABLE READ "
			       "READ ONLY") != 0)
			goto bad;
		s->own = true;
	}
	if (count_q(s, SMP_KR_Q_STATS_KEYS, &out->keys) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_ADDRESSES, &out->addresses) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_EVENTS, &out->events) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_REPLAY, &out->replay_entries) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_DISCOVERY, &out->discovery) != 0)
		goto bad;
	res = smp_kpg_run(s, SMP_KR_Q_STATS_STATES, NULL);
	if (!res)
		goto bad;
	for (int i = 0; i < PQntuples(res); i++) {
		int state = smp_bind_state_parse(PQgetvalue(res, i, 0));
		if (state < 0) {
			smp_kr_error(kr, "cannot count the contents of %s: a "
				     "binding has an unknown state", s->name);
			goto out;
		}
		out->bindings[state] =
		    (unsigned long)smp_kpg_col_i64(res, i, 1);
	}
	if (s->own) {
		s->own = false;
		if (smp_kpg_commit_q(s) != 0)
			goto bad;
	}
	ret = 0;
	goto out;
bad:
	smp_kpg_fail(s, "cannot count the contents of %s", s->name);
out:
	PQclear(res);
	if (s->own) {
		s->own = false;
		smp_kpg_rollback_quietly(s);
	}
	if (ret != 0)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---------------------------------------------------------------------- */
/* The rows smp_keyring.c owns (ops->exec)                                */

/* One statement: its parameters, each row to x->row. */
static int exec_one(struct kpg *s, struct smp_kr_stmt *x, const char *what)
{
	const char *col[SMP_KR_EXEC_MAX_COLS];
	struct params p = {0};
	PGresult *res;
	int nc, ret = -1;

	for (int i = 0; i < x->nargs && i < KPG_MAX_PARAMS; i++) {
		if (x->arg[i].is_int)
			p_i64(&p, x->arg[i].num);
		else
			p_text(&p, x->arg[i].text);
	}
	res = smp_kpg_run(s, x->q, &p);
	if (!res)
		return smp_kpg_fail(s, "cannot %s", what);
	nc = PQnfields(res);
	if (nc > SMP_KR_EXEC_MAX_COLS)
		nc = SMP_KR_EXEC_MAX_COLS;
	for (int r = 0; x->row && r < PQntuples(res); r++) {
		for (int c = 0; c < nc; c++)
			col[c] = PQgetisnull(res, r, c) ? NULL
							: PQgetvalue(res, r, c);
		if (x->row(&s->base, x->row_arg, col, nc) != 0)
			goto out;
	}
	x->changed = changed(res);
	ret = 0;
out:
	PQclear(res);
	return ret;
}

/* A single write is atomic on its own (autocommit); several get a
 * transaction, as elsewhere in this file. */
int smp_kpg_exec(struct smp_keyring *kr, struct smp_kr_stmt *x, size_t n,
		 bool write, const char *what)
{
	struct kpg *s = K(kr);
	bool own = false;
	int ret = -1;

	if (write && n > 1 && smp_kpg_wbegin(s, &own, "cannot %s", what) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (exec_one(s, &x[i], what) != 0)
			goto out;
	ret = 0;
out:
	return smp_kpg_wend(s, own, ret, "cannot %s", what);
}
