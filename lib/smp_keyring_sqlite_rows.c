/* smp_keyring_sqlite_rows.c - the SQLite keyring backend's rows: the
 * ops functions that read and write keys, bindings, events, the replay
 * log and the rows smp_keyring.c owns (ops->exec), pruning and the
 * statistics, and the readers that turn a result row into a struct.
 *
 * Separate from smp_keyring_sqlite.c, which owns the connection: the file
 * and its health, errors, the statement cache, transactions, open,
 * migrations and close. This file only binds, steps and reads statements,
 * inside the write transactions that smp_ksq_wbegin() and smp_ksq_wend()
 * give it (the concurrency rules are at the top of smp_keyring_sqlite.c).
 */
#include <sqlite3.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_keyring_sqlite_int.h"

/* ---------------------------------------------------------------------- */
/* Reading rows                                                           */

/* Copies a text column into a fixed buffer; false when it does not fit. */
static bool col_fixed(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);

	if (!t) {
		dst[0] = '\0';
		return true;
	}
	if (n >= size)
		return false;
	memcpy(dst, t, n);
	dst[n] = '\0';
	return true;
}

/* A malloc'd copy of a text column (NULL stays NULL); false on ENOMEM. */
static bool col_dup(sqlite3_stmt *st, int i, char **dst)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);

	*dst = NULL;
	if (!t)
		return sqlite3_column_type(st, i) == SQLITE_NULL;
	*dst = malloc(n + 1);
	if (!*dst)
		return false;
	memcpy(*dst, t, n);
	(*dst)[n] = '\0';
	return true;
}

static int64_t col_i64(sqlite3_stmt *st, int i)
{
	return (int64_t)sqlite3_column_int64(st, i);
}

/* Columns of SMP_KR_KEY_COLS. NULL, or what is wrong with the row. */
static const char *row_key(sqlite3_stmt *st, struct smp_key_rec *k)
{
	const void *m;
	size_t n;
	int64_t bits;

	memset(k, 0, sizeof(*k));
	if (!col_fixed(st, 0, k->fpr, sizeof(k->fpr)) ||
	    !col_fixed(st, 2, k->algo, sizeof(k->algo)) ||
	    !col_fixed(st, 8, k->enc_keyids, sizeof(k->enc_keyids)))
		return "a stored text is longer than this program allows";
	m = sqlite3_column_blob(st, 1);
	n = (size_t)sqlite3_column_bytes(st, 1);
	k->material = malloc(n ? n : 1);
	if (!k->material)
		return smp_ksq_oom;
	if (n)
		memcpy(k->material, m, n);
	k->material_len = n;
	bits = col_i64(st, 3);
	k->bits = bits < 0 || bits > UINT32_MAX ? 0 : (unsigned)bits;
	k->created = col_i64(st, 4);
	k->expires = col_i64(st, 5);
	k->revoked = col_i64(st, 6) != 0;
	k->blocked = col_i64(st, 7) != 0;
	k->updated = col_i64(st, 9);
	return NULL;
}

/* A stored value as an error message may show it: NULL, or at most 40
 * octets of text with anything but printable ASCII as '?'. */
static void col_shown(sqlite3_stmt *st, int i, char *out, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = 0;

	if (!t) {
		snprintf(out, size, "NULL");
		return;
	}
	out[n++] = '\'';
	for (; *t && n + 3 < size && n < 41; t++)
		out[n++] = *t >= 0x20 && *t < 0x7F ? (char)*t : '?';
	out[n++] = '\'';
	out[n] = '\0';
}

/* Columns of SMP_KR_BIND_COLS. NULL, or what is wrong with the row (may
 * be written into bad[badlen]). */
static const char *row_binding(sqlite3_stmt *st, struct smp_binding *b,
			       char *bad, size_t badlen)
{
	int state, source;
	int64_t times;
	char v[48];

	memset(b, 0, sizeof(*b));
	state = smp_bind_state_parse((const char *)sqlite3_column_text(st, 2));
	source = smp_key_source_parse((const char *)sqlite3_column_text(st, 3));
	if (state < 0 || source < 0) {
		col_shown(st, state < 0 ? 2 : 3, v, sizeof(v));
		snprintf(bad, badlen, "a binding has an unknown %s %s",
			 state < 0 ? "state" : "source", v);
		return bad;
	}
	if (!col_fixed(st, 1, b->fpr, sizeof(b->fpr)))
		return "a stored fingerprint is too long";
	if (!col_dup(st, 0, &b->address) || !b->address ||
	    !col_dup(st, 8, &b->message_id) || !col_dup(st, 9, &b->client_addr))
		return smp_ksq_oom;
	b->state = (enum smp_bind_state)state;
	b->source = (enum smp_key_source)source;
	b->first_seen = col_i64(st, 4);
	b->last_seen = col_i64(st, 5);
	b->msg_date = col_i64(st, 6);
	times = col_i64(st, 7);
	b->times_seen = times < 0 ? 0 : times > UINT32_MAX ? UINT32_MAX
							   : (unsigned)times;
	b->self_encrypted = col_i64(st, 10) != 0;
	return NULL;
}

/* Columns of SMP_KR_EVENT_COLS. */
static const char *row_event(sqlite3_stmt *st, struct smp_event *e)
{
	memset(e, 0, sizeof(*e));
	if (!col_fixed(st, 3, e->fpr, sizeof(e->fpr)))
		return "a stored fingerprint is too long";
	if (!col_dup(st, 2, &e->address) || !col_dup(st, 4, &e->event) ||
	    !e->event || !col_dup(st, 5, &e->detail) ||
	    !col_dup(st, 6, &e->message_id))
		return smp_ksq_oom;
	e->id = col_i64(st, 0);
	e->at = col_i64(st, 1);
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

/* Steps st to the end, one element per row (bindings or events). On error
 * *out is freed and the message says "cannot <what><arg>: why". */
enum row_kind { ROW_BINDING, ROW_EVENT };

static int read_rows(struct ksq *s, sqlite3_stmt *st, enum row_kind kind,
		     void **out, size_t *n, const char *what, const char *arg)
{
	size_t elem = kind == ROW_BINDING ? sizeof(struct smp_binding)
					  : sizeof(struct smp_event);
	unsigned char *v = NULL;
	size_t cnt = 0, cap = 0;
	const char *bad;
	char badbuf[128];
	int rc, ret = -1;

	for (;;) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			smp_ksq_fail(s, "cannot %s%s", what, arg);
			goto out;
		}
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			unsigned char *nv = realloc(v, ncap * elem);
			if (!nv) {
				smp_kr_error(&s->base, "cannot %s%s: out of "
					     "memory", what, arg);
				goto out;
			}
			v = nv, cap = ncap;
		}
		if (kind == ROW_BINDING) {
			struct smp_binding *b = (struct smp_binding *)v + cnt;
			bad = row_binding(st, b, badbuf, sizeof(badbuf));
			if (bad)
				smp_binding_clear(b);
		} else {
			struct smp_event *e = (struct smp_event *)v + cnt;
			bad = row_event(st, e);
			if (bad)
				event_clear(e);
		}
		if (bad) {
			smp_ksq_bad_row(s, what, arg, bad);
			goto out;
		}
		cnt++;
	}
	ret = 0;
out:
	release(st);
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

/* Runs query q with one text parameter (NULL: none) into a list. */
static int list_q(struct ksq *s, unsigned q, const char *param,
		  enum row_kind kind, void **out, size_t *n, const char *what)
{
	sqlite3_stmt *st = smp_ksq_prep(s, q);

	if (!st || (param && !b_text(st, 1, param))) {
		smp_ksq_fail(s, "cannot %s%s", what, param ? param : "");
		release(st);
		return -1;
	}
	return read_rows(s, st, kind, out, n, what, param ? param : "");
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */

int smp_ksq_key_get(struct smp_keyring *kr, const char *fpr,
		    struct smp_key_rec *out)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = smp_ksq_prep(s, SMP_KR_Q_KEY_GET);
	const char *bad;
	int rc, ret = -1;

	if (!st || !b_text(st, 1, fpr)) {
		smp_ksq_fail(s, "cannot read key %s", fpr);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 1;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		smp_ksq_fail(s, "cannot read key %s", fpr);
		goto out;
	}
	bad = row_key(st, out);
	if (bad) {
		smp_key_rec_clear(out);
		smp_ksq_bad_row(s, "read key ", fpr, bad);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return ret;
}

int smp_ksq_key_put(struct smp_keyring *kr, const struct smp_key_rec *k)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot store key %s", k->fpr) != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_KEY_PUT);
	if (!st || !b_text(st, 1, k->fpr) ||
	    !b_blob(st, 2, k->material, k->material_len) ||
	    !b_text(st, 3, k->algo) || !b_i64(st, 4, k->bits) ||
	    !b_i64(st, 5, k->created) || !b_i64(st, 6, k->expires) ||
	    !b_i64(st, 7, k->revoked) || !b_i64(st, 8, k->blocked) ||
	    !b_text(st, 9, k->enc_keyids) || !b_i64(st, 10, k->updated) ||
	    run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot store key %s", k->fpr);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot store key %s", k->fpr);
}

/* Records the bindings about to go, then deletes the key; the bindings
 * follow through ON DELETE CASCADE (foreign_keys is on). */
int smp_ksq_key_delete(struct smp_keyring *kr, const char *fpr,
		       int64_t now)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	char detail[64];
	int nbind;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot delete key %s", fpr) != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_KEY_DELETE_EVENTS);
	if (!st || !b_i64(st, 1, now) || !b_text(st, 2, "key deleted") ||
	    !b_text(st, 3, fpr) || run(st) != SQLITE_OK)
		goto bad;
	nbind = sqlite3_changes(s->db);
	release(st);

	st = smp_ksq_prep(s, SMP_KR_Q_KEY_DELETE);
	if (!st || !b_text(st, 1, fpr) || run(st) != SQLITE_OK)
		goto bad;
	if (sqlite3_changes(s->db) == 0) {
		ret = 1;
		goto out;
	}
	release(st);

	snprintf(detail, sizeof(detail), "with %d binding%s", nbind,
		 nbind == 1 ? "" : "s");
	st = smp_ksq_prep(s, SMP_KR_Q_EVENT_ADD);
	if (!st || !b_i64(st, 1, now) || !b_text(st, 2, NULL) ||
	    !b_text(st, 3, fpr) || !b_text(st, 4, SMP_EVENT_KEY_DELETED) ||
	    !b_text(st, 5, detail) || !b_text(st, 6, NULL) ||
	    run(st) != SQLITE_OK)
		goto bad;
	ret = 0;
	goto out;
bad:
	smp_ksq_fail(s, "cannot delete key %s", fpr);
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot delete key %s", fpr);
}

int smp_ksq_key_set_blocked(struct smp_keyring *kr, const char *fpr,
			    bool blocked, int64_t now)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot %s key %s",
			   blocked ? "block" : "unblock", fpr) != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_KEY_SET_BLOCKED);
	if (!st || !b_i64(st, 1, blocked) || !b_i64(st, 2, now) ||
	    !b_text(st, 3, fpr) || run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot %s key %s",
			     blocked ? "block" : "unblock", fpr);
		goto out;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot %s key %s",
			    blocked ? "block" : "unblock", fpr);
}

/* ---------------------------------------------------------------------- */
/* Bindings                                                               */

int smp_ksq_bindings_for(struct smp_keyring *kr, const char *address,
			 struct smp_binding **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_BIND_FOR, address, ROW_BINDING,
		      (void **)out, n, "read the bindings of ");
}

int smp_ksq_bindings_of_key(struct smp_keyring *kr, const char *fpr,
			    struct smp_binding **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_BIND_OF_KEY, fpr, ROW_BINDING,
		      (void **)out, n, "read the bindings of key ");
}

int smp_ksq_bindings_list(struct smp_keyring *kr, int state,
			  struct smp_binding **out, size_t *n)
{
	if (state < 0)
		return list_q(K(kr), SMP_KR_Q_BIND_ALL, NULL, ROW_BINDING,
			      (void **)out, n, "list the bindings");
	return list_q(K(kr), SMP_KR_Q_BIND_STATE,
		      smp_bind_state_name((enum smp_bind_state)state),
		      ROW_BINDING, (void **)out, n, "list the bindings in state ");
}

int smp_ksq_binding_put(struct smp_keyring *kr, const struct smp_binding *b)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot store binding %s %s", b->address,
			   b->fpr) != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_BIND_PUT);
	if (!st || !b_text(st, 1, b->address) || !b_text(st, 2, b->fpr) ||
	    !b_text(st, 3, smp_bind_state_name(b->state)) ||
	    !b_text(st, 4, smp_key_source_name(b->source)) ||
	    !b_i64(st, 5, b->first_seen) || !b_i64(st, 6, b->last_seen) ||
	    !b_i64(st, 7, b->msg_date) || !b_i64(st, 8, b->times_seen) ||
	    !b_text(st, 9, b->message_id) || !b_text(st, 10, b->client_addr) ||
	    !b_i64(st, 11, b->self_encrypted) || run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot store binding %s %s", b->address,
			     b->fpr);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot store binding %s %s",
			    b->address, b->fpr);
}

int smp_ksq_binding_set_state(struct smp_keyring *kr, const char *address,
			      const char *fpr, enum smp_bind_state state)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot change binding %s %s", address,
			   fpr) != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_BIND_SET_STATE);
	if (!st || !b_text(st, 1, smp_bind_state_name(state)) ||
	    !b_text(st, 2, address) || !b_text(st, 3, fpr) ||
	    run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot change binding %s %s", address, fpr);
		goto out;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot change binding %s %s", address,
			    fpr);
}

int smp_ksq_binding_delete(struct smp_keyring *kr, const char *address,
			   const char *fpr, int64_t now)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	const char *f = fpr ? fpr : "(all keys)";
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot delete binding %s %s", address,
			   f) != 0)
		return -1;
	st = smp_ksq_prep(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE_EVENTS
			 : SMP_KR_Q_BIND_DELETE_ADDR_EVENTS);
	if (!st || !b_i64(st, 1, now) || !b_text(st, 2, "deleted") ||
	    !b_text(st, 3, address) || (fpr && !b_text(st, 4, fpr)) ||
	    run(st) != SQLITE_OK)
		goto bad;
	release(st);

	st = smp_ksq_prep(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE : SMP_KR_Q_BIND_DELETE_ADDR);
	if (!st || !b_text(st, 1, address) || (fpr && !b_text(st, 2, fpr)) ||
	    run(st) != SQLITE_OK)
		goto bad;
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
	goto out;
bad:
	smp_ksq_fail(s, "cannot delete binding %s %s", address, f);
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot delete binding %s %s", address,
			    f);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                 */

int smp_ksq_event_add(struct smp_keyring *kr, const struct smp_event *e)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot record event %s", e->event) != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_EVENT_ADD);
	if (!st || !b_i64(st, 1, e->at) || !b_text(st, 2, e->address) ||
	    !b_text(st, 3, e->fpr) || !b_text(st, 4, e->event) ||
	    !b_text(st, 5, e->detail) || !b_text(st, 6, e->message_id) ||
	    run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot record event %s", e->event);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot record event %s", e->event);
}

int smp_ksq_events_for(struct smp_keyring *kr, const char *address,
		       struct smp_event **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_EVENTS_FOR, address, ROW_EVENT,
		      (void **)out, n, "read the history of ");
}

int smp_ksq_events_of_key(struct smp_keyring *kr, const char *fpr,
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

int smp_ksq_replay_check(struct smp_keyring *kr, const char *digest,
			 const char *recipient, int64_t now, int64_t window,
			 bool *seen)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot check replay of %s", recipient) !=
	    0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_REPLAY_CHECK);
	if (!st || !b_text(st, 1, digest) || !b_text(st, 2, recipient) ||
	    !b_i64(st, 3, now) || !b_i64(st, 4, cutoff(now, window)) ||
	    run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot check replay of %s", recipient);
		goto out;
	}
	/* no row changed: the pair is there and still inside the window */
	*seen = sqlite3_changes(s->db) == 0;
	ret = 0;
out:
	release(st);
	ret = smp_ksq_wend(s, own, ret, "cannot check replay of %s", recipient);
	if (ret != 0)
		*seen = false;
	return ret;
}

int smp_ksq_replay_prune(struct smp_keyring *kr, int64_t now,
			 int64_t window)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (smp_ksq_wbegin(s, &own, "cannot prune the replay log") != 0)
		return -1;
	st = smp_ksq_prep(s, SMP_KR_Q_REPLAY_PRUNE);
	if (!st || !b_i64(st, 1, cutoff(now, window)) ||
	    run(st) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot prune the replay log");
		goto out;
	}
	ret = 0;
out:
	release(st);
	return smp_ksq_wend(s, own, ret, "cannot prune the replay log");
}

/* Deletes with one cutoff parameter; *n gets the rows deleted. */
static int delete_before(struct ksq *s, unsigned q, int64_t before,
			 unsigned long *n)
{
	sqlite3_stmt *st = smp_ksq_prep(s, q);
	int rc = SQLITE_OK;

	if (!st)
		return sqlite3_errcode(s->db);
	if (!b_i64(st, 1, before) || (rc = run(st)) != SQLITE_OK) {
		if (rc == SQLITE_OK)
			rc = sqlite3_errcode(s->db);
		return rc;   /* not reset: smp_ksq_fail() needs the message */
	}
	*n = (unsigned long)sqlite3_changes(s->db);
	release(st);
	return SQLITE_OK;
}

int smp_ksq_prune(struct smp_keyring *kr, int64_t now, int64_t events_before,
		  int64_t replay_before, unsigned long *events,
		  unsigned long *replay_entries)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st;
	char detail[96];
	bool own;
	int ret = -1;

	*events = *replay_entries = 0;
	if (smp_ksq_wbegin(s, &own, "cannot prune %s", s->path) != 0)
		return -1;
	if (events_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_EVENTS_PRUNE, events_before,
			  events) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot prune the event history in %s",
			     s->path);
		goto out;
	}
	if (*events > 0) {
		/* the pruning itself stays on record (no address, no key) */
		smp_kr_pruned_detail(detail, sizeof(detail), *events,
				     events_before);
		st = smp_ksq_prep(s, SMP_KR_Q_EVENT_ADD);
		if (!st || !b_i64(st, 1, now) || !b_text(st, 2, NULL) ||
		    !b_text(st, 3, "") ||
		    !b_text(st, 4, SMP_EVENT_EVENTS_PRUNED) ||
		    !b_text(st, 5, detail) || !b_text(st, 6, NULL) ||
		    run(st) != SQLITE_OK) {
			smp_ksq_fail(s, "cannot record event %s",
				     SMP_EVENT_EVENTS_PRUNED);
			release(st);
			goto out;
		}
		release(st);
	}
	if (replay_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_REPLAY_PRUNE, replay_before,
			  replay_entries) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot prune the replay log in %s", s->path);
		goto out;
	}
	ret = 0;
out:
	release(s->st[SMP_KR_Q_EVENTS_PRUNE]);
	release(s->st[SMP_KR_Q_REPLAY_PRUNE]);
	if (ret != 0)
		*events = *replay_entries = 0;
	return smp_ksq_wend(s, own, ret, "cannot prune %s", s->path);
}

/* ---------------------------------------------------------------------- */
/* Statistics                                                             */

static int count_q(struct ksq *s, unsigned q, unsigned long *v)
{
	sqlite3_stmt *st = smp_ksq_prep(s, q);
	int rc;

	if (!st)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return -1;   /* not reset: smp_ksq_fail() needs the message */
	*v = (unsigned long)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* Several counts from one snapshot: a read transaction around them. */
int smp_ksq_stats(struct smp_keyring *kr, struct smp_keyring_stats *out)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own = false;
	int rc, ret = -1;

	if (!s->txn) {
		if (smp_ksq_run_q(s, L_BEGIN_READ) != SQLITE_OK)
			goto bad;
		own = true;
	}
	if (count_q(s, SMP_KR_Q_STATS_KEYS, &out->keys) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_ADDRESSES, &out->addresses) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_EVENTS, &out->events) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_REPLAY, &out->replay_entries) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_DISCOVERY, &out->discovery) != 0)
		goto bad;
	st = smp_ksq_prep(s, SMP_KR_Q_STATS_STATES);
	if (!st)
		goto bad;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = smp_bind_state_parse(
			(const char *)sqlite3_column_text(st, 0));
		if (state < 0) {
			char v[48], what[96];
			col_shown(st, 0, v, sizeof(v));
			snprintf(what, sizeof(what), "a binding has an unknown "
				 "state %s", v);
			smp_ksq_bad_row(s, "count the bindings", "", what);
			goto out;
		}
		out->bindings[state] = (unsigned long)sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		goto bad;
	release(st);
	st = NULL;
	if (own) {
		own = false;
		if (smp_ksq_run_q(s, L_COMMIT) != SQLITE_OK)
			goto bad;
	}
	ret = 0;
	goto out;
bad:
	smp_ksq_fail(s, "cannot count the contents of %s", s->path);
out:
	release(st);
	for (unsigned q = SMP_KR_Q_STATS_KEYS; q <= SMP_KR_Q_STATS_DISCOVERY; q++)
		if (s->st[q])
			sqlite3_reset(s->st[q]);
	if (own)
		smp_ksq_rollback_quietly(s);
	if (ret != 0)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---------------------------------------------------------------------- */
/* The rows smp_keyring.c owns (ops->exec)                                */

/* One statement: its parameters bound, each row to x->row. */
static int exec_one(struct ksq *s, struct smp_kr_stmt *x, const char *what)
{
	sqlite3_stmt *st = smp_ksq_prep(s, x->q);
	const char *col[SMP_KR_EXEC_MAX_COLS];
	int rc, nc, ret = -1;

	if (!st)
		goto bad;
	for (int i = 0; i < x->nargs; i++) {
		const struct smp_kr_arg *a = &x->arg[i];
		if (!(a->is_int ? b_i64(st, i + 1, a->num)
				: b_text(st, i + 1, a->text)))
			goto bad;
	}
	nc = sqlite3_column_count(st);
	if (nc > SMP_KR_EXEC_MAX_COLS)
		nc = SMP_KR_EXEC_MAX_COLS;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int c = 0; c < nc; c++) {
			col[c] = (const char *)sqlite3_column_text(st, c);
			/* NULL for a value that is not NULL: out of memory */
			if (!col[c] && sqlite3_column_type(st, c) != SQLITE_NULL) {
				smp_kr_error(&s->base, "cannot %s: %s", what,
					     smp_ksq_oom);
				goto out;
			}
		}
		if (x->row && x->row(&s->base, x->row_arg, col, nc) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		goto bad;
	x->changed = sqlite3_changes(s->db);
	ret = 0;
	goto out;
bad:
	smp_ksq_fail(s, "cannot %s", what);
out:
	release(st);
	return ret;
}

int smp_ksq_exec(struct smp_keyring *kr, struct smp_kr_stmt *x, size_t n,
		 bool write, const char *what)
{
	struct ksq *s = K(kr);
	bool own = false;
	int ret = -1;

	if (write && smp_ksq_wbegin(s, &own, "cannot %s", what) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (exec_one(s, &x[i], what) != 0)
			goto out;
	ret = 0;
out:
	return write ? smp_ksq_wend(s, own, ret, "cannot %s", what) : ret;
}
