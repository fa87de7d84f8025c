/* smp_keyring_sqlite.c - the SQLite keyring backend (SPEC.md 4): one file
 * in WAL mode, shared by the milter's connections and smpctl.
 *
 * Everything specific to SQLite lives here: the pragmas, BEGIN IMMEDIATE,
 * the busy timeout and retries, the statement cache and the sqlite_master
 * probe. The SQL itself comes from smp_keyring_schema.h.
 *
 * Concurrency, and why it never surfaces "database is locked":
 * - WAL: readers never block writers and writers never block readers.
 * - Every write runs in a transaction begun with BEGIN IMMEDIATE, i.e. it
 *   takes the write lock before reading anything. A transaction that read
 *   first and then wanted to write would have to upgrade its lock, and
 *   SQLite cannot wait for that (the other writer may be waiting for it):
 *   it fails at once with SQLITE_BUSY whatever the busy timeout says.
 * - BEGIN IMMEDIATE waits for the lock through the busy timeout (5 s) and
 *   is retried a few times after growing pauses; only after all of that
 *   does a caller see an error (and the message then follows on_error).
 * - A connection is used by one thread at a time (see smp_keyring.h), so
 *   it is opened without SQLite's per-connection mutex.
 */
#include <sqlite3.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp_keyring_backend.h"
#include "smp_keyring_schema.h"

#define KR_BUSY_TIMEOUT_MS 5000
#define KR_BEGIN_RETRIES 3     /* further attempts after the busy timeout */
#define KR_BACKOFF_MS 20       /* first pause; x4 each time: 20, 80, 320 */

/* Statements only this backend has, numbered after the portable ones. */
enum {
	L_BEGIN_WRITE = SMP_KR_Q__COUNT,
	L_BEGIN_READ,
	L_COMMIT,
	L_ROLLBACK,
	L_HAS_VERSION_TABLE,
	L__END
};

static const char *const local_sql[L__END - SMP_KR_Q__COUNT] = {
	[L_BEGIN_WRITE - SMP_KR_Q__COUNT] = "BEGIN IMMEDIATE",
	[L_BEGIN_READ - SMP_KR_Q__COUNT] = "BEGIN",
	[L_COMMIT - SMP_KR_Q__COUNT] = "COMMIT",
	[L_ROLLBACK - SMP_KR_Q__COUNT] = "ROLLBACK",
	[L_HAS_VERSION_TABLE - SMP_KR_Q__COUNT] =
		("SELECT COUNT(*) FROM sqlite_master "
		 "WHERE type = 'table' AND name = 'schema_version'"),
};

struct ksq {
	struct smp_keyring base;   /* first: see smp_keyring_backend.h */
	sqlite3 *db;
	char *path;
	int version;
	bool txn;                  /* an smp_keyring_begin() is open */
	sqlite3_stmt *st[L__END];  /* prepared on first use, kept */
};

static struct ksq *K(struct smp_keyring *kr)
{
	return (struct ksq *)kr;
}

/* ---------------------------------------------------------------------- */
/* Errors, statements, binding                                            */

__attribute__((format(printf, 3, 0)))
static int failv(struct ksq *s, const char *detail, const char *fmt,
		 va_list ap)
{
	char *m = s->base.errmsg;
	size_t n;

	vsnprintf(m, sizeof(s->base.errmsg), fmt, ap);
	n = strlen(m);
	snprintf(m + n, sizeof(s->base.errmsg) - n, ": %s", detail);
	return -1;
}

/* "what was being done: SQLite's reason". Called right where SQLite
 * failed, before any other call can replace its message. */
__attribute__((format(printf, 2, 3)))
static int fail(struct ksq *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	failv(s, sqlite3_errmsg(s->db), fmt, ap);
	va_end(ap);
	return -1;
}

static const char *sql_of(unsigned q)
{
	return q < SMP_KR_Q__COUNT ? smp_kr_sql[q]
				   : local_sql[q - SMP_KR_Q__COUNT];
}

/* Statement q, prepared once per connection (PERSISTENT tells SQLite it
 * will be reused many times). NULL with SQLite's error on failure. */
static sqlite3_stmt *prep(struct ksq *s, unsigned q)
{
	if (!s->st[q] &&
	    sqlite3_prepare_v3(s->db, sql_of(q), -1, SQLITE_PREPARE_PERSISTENT,
			       &s->st[q], NULL) != SQLITE_OK)
		s->st[q] = NULL;
	return s->st[q];
}

/* Back to the start, the (SQLITE_STATIC) parameters dropped: a statement
 * left stepping would keep its read transaction (and snapshot) open. */
static void release(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static bool b_text(sqlite3_stmt *st, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, i) == SQLITE_OK;
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) == SQLITE_OK;
}

static bool b_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v) == SQLITE_OK;
}

static bool b_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	/* a NULL pointer would bind SQL NULL, not an empty blob */
	return sqlite3_bind_blob64(st, i, p ? p : "", (sqlite3_uint64)n,
				   SQLITE_STATIC) == SQLITE_OK;
}

/* Steps a statement that returns no rows: SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs one of the argument-less statements (BEGIN, COMMIT, ...). */
static int run_q(struct ksq *s, unsigned q)
{
	sqlite3_stmt *st = prep(s, q);
	int rc;

	if (!st)
		return sqlite3_errcode(s->db);
	sqlite3_reset(st);
	rc = run(st);
	if (rc != SQLITE_OK)
		return rc;   /* left for the caller's fail(); reset on reuse */
	sqlite3_reset(st);
	return SQLITE_OK;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000),
			      (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------- */
/* Transactions                                                           */

/* BEGIN IMMEDIATE with bounded retries (see the top of the file). */
static int begin_write(struct ksq *s)
{
	int rc;

	for (unsigned i = 0;; i++) {
		rc = run_q(s, L_BEGIN_WRITE);
		if ((rc & 0xFF) != SQLITE_BUSY || i == KR_BEGIN_RETRIES)
			return rc;
		sleep_ms(KR_BACKOFF_MS << (2 * i));
	}
}

static void rollback_quietly(struct ksq *s)
{
	/* SQLite may already have rolled back (disk full, I/O error) */
	if (!sqlite3_get_autocommit(s->db))
		run_q(s, L_ROLLBACK);
}

/* Every write happens inside a write transaction: the caller's, or one
 * of its own (*own) that wend() ends. what/...: the error prefix. */
__attribute__((format(printf, 3, 4)))
static int wbegin(struct ksq *s, bool *own, const char *fmt, ...)
{
	va_list ap;
	int rc = 0;

	*own = false;
	va_start(ap, fmt);
	if (s->txn) {
		/* never write outside the caller's transaction: after an
		 * error SQLite may have ended it on its own */
		if (sqlite3_get_autocommit(s->db))
			rc = failv(s, "the transaction was rolled back after "
				   "an earlier error", fmt, ap);
	} else if (begin_write(s) != SQLITE_OK) {
		rc = failv(s, sqlite3_errmsg(s->db), fmt, ap);
	} else {
		*own = true;
	}
	va_end(ap);
	return rc;
}

/* Ends wbegin()'s own transaction: commits when rc >= 0, else rolls back.
 * Returns rc, or -1 when the commit fails (then rolled back). */
__attribute__((format(printf, 4, 5)))
static int wend(struct ksq *s, bool own, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!own)
		return rc;
	if (rc >= 0) {
		if (run_q(s, L_COMMIT) == SQLITE_OK)
			return rc;
		va_start(ap, fmt);
		rc = failv(s, sqlite3_errmsg(s->db), fmt, ap);
		va_end(ap);
	}
	rollback_quietly(s);
	return rc;
}

static int ksq_begin(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);

	if (s->txn)
		return smp_kr_error(kr, "cannot start a transaction on %s: "
				    "one is already open", s->path);
	if (begin_write(s) != SQLITE_OK)
		return fail(s, "cannot start a transaction on %s", s->path);
	s->txn = true;
	return 0;
}

static int ksq_commit(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);

	if (!s->txn)
		return smp_kr_error(kr, "cannot commit to %s: no transaction "
				    "is open", s->path);
	s->txn = false;
	if (sqlite3_get_autocommit(s->db))
		return smp_kr_error(kr, "cannot commit to %s: the transaction "
				    "was rolled back after an earlier error",
				    s->path);
	if (run_q(s, L_COMMIT) != SQLITE_OK) {
		fail(s, "cannot commit to %s", s->path);
		rollback_quietly(s);
		return -1;
	}
	return 0;
}

/* Rolling back when nothing is open is not an error: cleanup paths call
 * it without knowing how far they got. */
static int ksq_rollback(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);

	if (!s->txn)
		return 0;
	s->txn = false;
	if (sqlite3_get_autocommit(s->db))
		return 0;
	if (run_q(s, L_ROLLBACK) != SQLITE_OK)
		return fail(s, "cannot roll back on %s", s->path);
	return 0;
}

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
		return "out of memory";
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

/* Columns of SMP_KR_BIND_COLS. */
static const char *row_binding(sqlite3_stmt *st, struct smp_binding *b)
{
	int state, source;
	int64_t times;

	memset(b, 0, sizeof(*b));
	state = smp_bind_state_parse((const char *)sqlite3_column_text(st, 2));
	source = smp_key_source_parse((const char *)sqlite3_column_text(st, 3));
	if (state < 0)
		return "a binding has an unknown state";
	if (source < 0)
		return "a binding has an unknown source";
	if (!col_fixed(st, 1, b->fpr, sizeof(b->fpr)))
		return "a stored fingerprint is too long";
	if (!col_dup(st, 0, &b->address) || !b->address ||
	    !col_dup(st, 8, &b->message_id) || !col_dup(st, 9, &b->client_addr))
		return "out of memory";
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
		return "out of memory";
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
	int rc, ret = -1;

	for (;;) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			fail(s, "cannot %s%s", what, arg);
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
			bad = row_binding(st, b);
			if (bad)
				smp_binding_clear(b);
		} else {
			struct smp_event *e = (struct smp_event *)v + cnt;
			bad = row_event(st, e);
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
	sqlite3_stmt *st = prep(s, q);

	if (!st || (param && !b_text(st, 1, param))) {
		fail(s, "cannot %s%s", what, param ? param : "");
		release(st);
		return -1;
	}
	return read_rows(s, st, kind, out, n, what, param ? param : "");
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */

static int ksq_key_get(struct smp_keyring *kr, const char *fpr,
		       struct smp_key_rec *out)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = prep(s, SMP_KR_Q_KEY_GET);
	const char *bad;
	int rc, ret = -1;

	if (!st || !b_text(st, 1, fpr)) {
		fail(s, "cannot read key %s", fpr);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 1;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		fail(s, "cannot read key %s", fpr);
		goto out;
	}
	bad = row_key(st, out);
	if (bad) {
		smp_key_rec_clear(out);
		smp_kr_error(kr, "cannot read key %s: %s", fpr, bad);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return ret;
}

static int ksq_key_put(struct smp_keyring *kr, const struct smp_key_rec *k)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot store key %s", k->fpr) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_KEY_PUT);
	if (!st || !b_text(st, 1, k->fpr) ||
	    !b_blob(st, 2, k->material, k->material_len) ||
	    !b_text(st, 3, k->algo) || !b_i64(st, 4, k->bits) ||
	    !b_i64(st, 5, k->created) || !b_i64(st, 6, k->expires) ||
	    !b_i64(st, 7, k->revoked) || !b_i64(st, 8, k->blocked) ||
	    !b_text(st, 9, k->enc_keyids) || !b_i64(st, 10, k->updated) ||
	    run(st) != SQLITE_OK) {
		fail(s, "cannot store key %s", k->fpr);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return wend(s, own, ret, "cannot store key %s", k->fpr);
}

/* Records the bindings about to go, then deletes the key; the bindings
 * follow through ON DELETE CASCADE (foreign_keys is on). */
static int ksq_key_delete(struct smp_keyring *kr, const char *fpr,
			  int64_t now)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	char detail[64];
	int nbind;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot delete key %s", fpr) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_KEY_DELETE_EVENTS);
	if (!st || !b_i64(st, 1, now) || !b_text(st, 2, "key deleted") ||
	    !b_text(st, 3, fpr) || run(st) != SQLITE_OK)
		goto bad;
	nbind = sqlite3_changes(s->db);
	release(st);

	st = prep(s, SMP_KR_Q_KEY_DELETE);
	if (!st || !b_text(st, 1, fpr) || run(st) != SQLITE_OK)
		goto bad;
	if (sqlite3_changes(s->db) == 0) {
		ret = 1;
		goto out;
	}
	release(st);

	snprintf(detail, sizeof(detail), "with %d binding%s", nbind,
		 nbind == 1 ? "" : "s");
	st = prep(s, SMP_KR_Q_EVENT_ADD);
	if (!st || !b_i64(st, 1, now) || !b_text(st, 2, NULL) ||
	    !b_text(st, 3, fpr) || !b_text(st, 4, SMP_EVENT_KEY_DELETED) ||
	    !b_text(st, 5, detail) || !b_text(st, 6, NULL) ||
	    run(st) != SQLITE_OK)
		goto bad;
	ret = 0;
	goto out;
bad:
	fail(s, "cannot delete key %s", fpr);
out:
	release(st);
	return wend(s, own, ret, "cannot delete key %s", fpr);
}

static int ksq_key_set_blocked(struct smp_keyring *kr, const char *fpr,
			       bool blocked, int64_t now)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot %s key %s", blocked ? "block" : "unblock",
		   fpr) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_KEY_SET_BLOCKED);
	if (!st || !b_i64(st, 1, blocked) || !b_i64(st, 2, now) ||
	    !b_text(st, 3, fpr) || run(st) != SQLITE_OK) {
		fail(s, "cannot %s key %s", blocked ? "block" : "unblock", fpr);
		goto out;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
out:
	release(st);
	return wend(s, own, ret, "cannot %s key %s",
		    blocked ? "block" : "unblock", fpr);
}

/* ---------------------------------------------------------------------- */
/* Bindings                                                               */

static int ksq_bindings_for(struct smp_keyring *kr, const char *address,
			    struct smp_binding **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_BIND_FOR, address, ROW_BINDING,
		      (void **)out, n, "read the bindings of ");
}

static int ksq_bindings_of_key(struct smp_keyring *kr, const char *fpr,
			       struct smp_binding **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_BIND_OF_KEY, fpr, ROW_BINDING,
		      (void **)out, n, "read the bindings of key ");
}

static int ksq_bindings_list(struct smp_keyring *kr, int state,
			     struct smp_binding **out, size_t *n)
{
	if (state < 0)
		return list_q(K(kr), SMP_KR_Q_BIND_ALL, NULL, ROW_BINDING,
			      (void **)out, n, "list the bindings");
	return list_q(K(kr), SMP_KR_Q_BIND_STATE,
		      smp_bind_state_name((enum smp_bind_state)state),
		      ROW_BINDING, (void **)out, n, "list the bindings in state ");
}

static int ksq_binding_put(struct smp_keyring *kr, const struct smp_binding *b)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot store binding %s %s", b->address,
		   b->fpr) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_BIND_PUT);
	if (!st || !b_text(st, 1, b->address) || !b_text(st, 2, b->fpr) ||
	    !b_text(st, 3, smp_bind_state_name(b->state)) ||
	    !b_text(st, 4, smp_key_source_name(b->source)) ||
	    !b_i64(st, 5, b->first_seen) || !b_i64(st, 6, b->last_seen) ||
	    !b_i64(st, 7, b->msg_date) || !b_i64(st, 8, b->times_seen) ||
	    !b_text(st, 9, b->message_id) || !b_text(st, 10, b->client_addr) ||
	    !b_i64(st, 11, b->self_encrypted) || run(st) != SQLITE_OK) {
		fail(s, "cannot store binding %s %s", b->address, b->fpr);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return wend(s, own, ret, "cannot store binding %s %s", b->address,
		    b->fpr);
}

static int ksq_binding_set_state(struct smp_keyring *kr, const char *address,
				 const char *fpr, enum smp_bind_state state)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot change binding %s %s", address, fpr) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_BIND_SET_STATE);
	if (!st || !b_text(st, 1, smp_bind_state_name(state)) ||
	    !b_text(st, 2, address) || !b_text(st, 3, fpr) ||
	    run(st) != SQLITE_OK) {
		fail(s, "cannot change binding %s %s", address, fpr);
		goto out;
	}
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
out:
	release(st);
	return wend(s, own, ret, "cannot change binding %s %s", address, fpr);
}

static int ksq_binding_delete(struct smp_keyring *kr, const char *address,
			      const char *fpr, int64_t now)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	const char *f = fpr ? fpr : "(all keys)";
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot delete binding %s %s", address, f) != 0)
		return -1;
	st = prep(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE_EVENTS
			 : SMP_KR_Q_BIND_DELETE_ADDR_EVENTS);
	if (!st || !b_i64(st, 1, now) || !b_text(st, 2, "deleted") ||
	    !b_text(st, 3, address) || (fpr && !b_text(st, 4, fpr)) ||
	    run(st) != SQLITE_OK)
		goto bad;
	release(st);

	st = prep(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE : SMP_KR_Q_BIND_DELETE_ADDR);
	if (!st || !b_text(st, 1, address) || (fpr && !b_text(st, 2, fpr)) ||
	    run(st) != SQLITE_OK)
		goto bad;
	ret = sqlite3_changes(s->db) == 0 ? 1 : 0;
	goto out;
bad:
	fail(s, "cannot delete binding %s %s", address, f);
out:
	release(st);
	return wend(s, own, ret, "cannot delete binding %s %s", address, f);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                 */

static int ksq_event_add(struct smp_keyring *kr, const struct smp_event *e)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot record event %s", e->event) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_EVENT_ADD);
	if (!st || !b_i64(st, 1, e->at) || !b_text(st, 2, e->address) ||
	    !b_text(st, 3, e->fpr) || !b_text(st, 4, e->event) ||
	    !b_text(st, 5, e->detail) || !b_text(st, 6, e->message_id) ||
	    run(st) != SQLITE_OK) {
		fail(s, "cannot record event %s", e->event);
		goto out;
	}
	ret = 0;
out:
	release(st);
	return wend(s, own, ret, "cannot record event %s", e->event);
}

static int ksq_events_for(struct smp_keyring *kr, const char *address,
			  struct smp_event **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_EVENTS_FOR, address, ROW_EVENT,
		      (void **)out, n, "read the history of ");
}

static int ksq_events_of_key(struct smp_keyring *kr, const char *fpr,
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

static int ksq_replay_check(struct smp_keyring *kr, const char *digest,
			    const char *recipient, int64_t now, int64_t window,
			    bool *seen)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot check replay of %s", recipient) != 0)
		return -1;
	st = prep(s, SMP_KR_Q_REPLAY_CHECK);
	if (!st || !b_text(st, 1, digest) || !b_text(st, 2, recipient) ||
	    !b_i64(st, 3, now) || !b_i64(st, 4, cutoff(now, window)) ||
	    run(st) != SQLITE_OK) {
		fail(s, "cannot check replay of %s", recipient);
		goto out;
	}
	/* no row changed: the pair is there and still inside the window */
	*seen = sqlite3_changes(s->db) == 0;
	ret = 0;
out:
	release(st);
	ret = wend(s, own, ret, "cannot check replay of %s", recipient);
	if (ret != 0)
		*seen = false;
	return ret;
}

static int ksq_replay_prune(struct smp_keyring *kr, int64_t now,
			    int64_t window)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot prune the replay log") != 0)
		return -1;
	st = prep(s, SMP_KR_Q_REPLAY_PRUNE);
	if (!st || !b_i64(st, 1, cutoff(now, window)) ||
	    run(st) != SQLITE_OK) {
		fail(s, "cannot prune the replay log");
		goto out;
	}
	ret = 0;
out:
	release(st);
	return wend(s, own, ret, "cannot prune the replay log");
}

/* Deletes with one cutoff parameter; *n gets the rows deleted. */
static int delete_before(struct ksq *s, unsigned q, int64_t before,
			 unsigned long *n)
{
	sqlite3_stmt *st = prep(s, q);
	int rc = SQLITE_OK;

	if (!st)
		return sqlite3_errcode(s->db);
	if (!b_i64(st, 1, before) || (rc = run(st)) != SQLITE_OK) {
		if (rc == SQLITE_OK)
			rc = sqlite3_errcode(s->db);
		return rc;   /* not reset: fail() needs the message */
	}
	*n = (unsigned long)sqlite3_changes(s->db);
	release(st);
	return SQLITE_OK;
}

static int ksq_prune(struct smp_keyring *kr, int64_t now, int64_t events_before,
		     int64_t replay_before, unsigned long *events,
		     unsigned long *replay_entries)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st;
	char detail[96];
	bool own;
	int ret = -1;

	*events = *replay_entries = 0;
	if (wbegin(s, &own, "cannot prune %s", s->path) != 0)
		return -1;
	if (events_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_EVENTS_PRUNE, events_before,
			  events) != SQLITE_OK) {
		fail(s, "cannot prune the event history in %s", s->path);
		goto out;
	}
	if (*events > 0) {
		/* the pruning itself stays on record (no address, no key) */
		smp_kr_pruned_detail(detail, sizeof(detail), *events,
				     events_before);
		st = prep(s, SMP_KR_Q_EVENT_ADD);
		if (!st || !b_i64(st, 1, now) || !b_text(st, 2, NULL) ||
		    !b_text(st, 3, "") ||
		    !b_text(st, 4, SMP_EVENT_EVENTS_PRUNED) ||
		    !b_text(st, 5, detail) || !b_text(st, 6, NULL) ||
		    run(st) != SQLITE_OK) {
			fail(s, "cannot record event %s",
			     SMP_EVENT_EVENTS_PRUNED);
			release(st);
			goto out;
		}
		release(st);
	}
	if (replay_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_REPLAY_PRUNE, replay_before,
			  replay_entries) != SQLITE_OK) {
		fail(s, "cannot prune the replay log in %s", s->path);
		goto out;
	}
	ret = 0;
out:
	release(s->st[SMP_KR_Q_EVENTS_PRUNE]);
	release(s->st[SMP_KR_Q_REPLAY_PRUNE]);
	if (ret != 0)
		*events = *replay_entries = 0;
	return wend(s, own, ret, "cannot prune %s", s->path);
}

/* ---------------------------------------------------------------------- */
/* Statistics                                                             */

static int count_q(struct ksq *s, unsigned q, unsigned long *v)
{
	sqlite3_stmt *st = prep(s, q);
	int rc;

	if (!st)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return -1;   /* not reset: fail() needs the message */
	*v = (unsigned long)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* Several counts from one snapshot: a read transaction around them. */
static int ksq_stats(struct smp_keyring *kr, struct smp_keyring_stats *out)
{
	struct ksq *s = K(kr);
	sqlite3_stmt *st = NULL;
	bool own = false;
	int rc, ret = -1;

	if (!s->txn) {
		if (run_q(s, L_BEGIN_READ) != SQLITE_OK)
			goto bad;
		own = true;
	}
	if (count_q(s, SMP_KR_Q_STATS_KEYS, &out->keys) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_ADDRESSES, &out->addresses) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_EVENTS, &out->events) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_REPLAY, &out->replay_entries) != 0)
		goto bad;
	st = prep(s, SMP_KR_Q_STATS_STATES);
	if (!st)
		goto bad;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = smp_bind_state_parse(
			(const char *)sqlite3_column_text(st, 0));
		if (state < 0) {
			smp_kr_error(kr, "cannot count the bindings in %s: a "
				     "binding has an unknown state", s->path);
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
		if (run_q(s, L_COMMIT) != SQLITE_OK)
			goto bad;
	}
	ret = 0;
	goto out;
bad:
	fail(s, "cannot count the contents of %s", s->path);
out:
	release(st);
	for (unsigned q = SMP_KR_Q_STATS_KEYS; q <= SMP_KR_Q_STATS_REPLAY; q++)
		if (s->st[q])
			sqlite3_reset(s->st[q]);
	if (own)
		rollback_quietly(s);
	if (ret != 0)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Open, schema, close                                                    */

static int ksq_schema_version(struct smp_keyring *kr)
{
	return K(kr)->version;
}

/* 0 for a new, empty database. */
static int read_version(struct ksq *s, int *v)
{
	sqlite3_stmt *st;
	int rc;

	*v = 0;
	st = prep(s, L_HAS_VERSION_TABLE);
	if (!st || sqlite3_step(st) != SQLITE_ROW)
		return -1;
	rc = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (rc == 0)
		return 0;
	st = prep(s, SMP_KR_Q_VERSION_GET);
	if (!st || sqlite3_step(st) != SQLITE_ROW)
		return -1;
	*v = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return 0;
}

static int too_new(struct ksq *s, int v)
{
	return smp_kr_error(&s->base, "cannot open keyring database %s: its "
			    "schema version is %d, newer than the %d this "
			    "program knows; use a newer smp-milter and smpctl",
			    s->path, v, SMP_KR_SCHEMA_VERSION);
}

/* Applies every migration newer than the stored version, all in one
 * transaction: a failure leaves the database as it was. */
static int migrate(struct ksq *s)
{
	sqlite3_stmt *st;
	int v, ret = -1;

	if (read_version(s, &v) != 0)
		return fail(s, "cannot open keyring database %s", s->path);
	if (v > SMP_KR_SCHEMA_VERSION)
		return too_new(s, v);
	if (v == SMP_KR_SCHEMA_VERSION)
		goto done;

	if (begin_write(s) != SQLITE_OK)
		return fail(s, "cannot create the schema in %s", s->path);
	/* another process may have migrated while we waited for the lock */
	if (read_version(s, &v) != 0) {
		fail(s, "cannot open keyring database %s", s->path);
		goto out;
	}
	if (v > SMP_KR_SCHEMA_VERSION) {
		too_new(s, v);
		goto out;
	}
	for (size_t i = 0; i < SMP_KR_N_MIGRATIONS; i++) {
		const struct smp_kr_migration *m = &smp_kr_migrations[i];
		if (m->version <= v)
			continue;
		if (sqlite3_exec(s->db, m->portable, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(s->db, m->sqlite, NULL, NULL, NULL) != SQLITE_OK) {
			fail(s, "cannot migrate %s to schema version %d",
			     s->path, m->version);
			goto out;
		}
		st = prep(s, SMP_KR_Q_VERSION_ADD);
		if (!st || !b_i64(st, 1, m->version) ||
		    !b_i64(st, 2, (int64_t)time(NULL)) || run(st) != SQLITE_OK) {
			fail(s, "cannot migrate %s to schema version %d",
			     s->path, m->version);
			release(st);
			goto out;
		}
		release(st);
	}
	if (run_q(s, L_COMMIT) != SQLITE_OK) {
		fail(s, "cannot create the schema in %s", s->path);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		rollback_quietly(s);
		return ret;
	}
done:
	s->version = SMP_KR_SCHEMA_VERSION;
	return 0;
}

/* A pragma; with expect, its single result must be that text. */
static int pragma(struct ksq *s, const char *sql, const char *expect)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		fail(s, "cannot open keyring database %s", s->path);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		fail(s, "cannot open keyring database %s", s->path);
		goto out;
	}
	if (expect) {
		const char *got = rc == SQLITE_ROW
			? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (!got || strcmp(got, expect) != 0) {
			smp_kr_error(&s->base, "cannot open keyring database "
				     "%s: \"%s\" gave \"%s\", not \"%s\"",
				     s->path, sql, got ? got : "", expect);
			goto out;
		}
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static void ksq_close(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);

	if (!s)
		return;
	for (size_t i = 0; i < L__END; i++)
		sqlite3_finalize(s->st[i]);
	/* an open transaction is rolled back by the close */
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

static int ksq_open(const char *target, struct smp_keyring **out, char *err,
		    size_t errlen)
{
	struct ksq *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(target))) {
		free(s);
		snprintf(err, errlen, "cannot open keyring database %s: out "
			 "of memory", target);
		return -1;
	}
	s->base.ops = &smp_keyring_sqlite_ops;
	rc = sqlite3_open_v2(target, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		if (s->db)
			fail(s, "cannot open keyring database %s", target);
		else
			smp_kr_error(&s->base, "cannot open keyring database "
				     "%s: %s", target, sqlite3_errstr(rc));
		goto bad;
	}
	/* SQLite falls back to read-only when it may not write the file;
	 * the milter and smpctl both write (WAL needs the directory too) */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		smp_kr_error(&s->base, "cannot open keyring database %s: the "
			     "file is read-only (it and its directory must be "
			     "writable)", target);
		goto bad;
	}
	sqlite3_busy_timeout(s->db, KR_BUSY_TIMEOUT_MS);
	/* WAL persists in the file; asking again costs nothing. NORMAL is
	 * durable across crashes of the process and consistent across power
	 * loss in WAL mode (the last commits may be lost, never half). */
	if (pragma(s, "PRAGMA journal_mode = WAL", "wal") != 0 ||
	    pragma(s, "PRAGMA synchronous = NORMAL", NULL) != 0 ||
	    pragma(s, "PRAGMA foreign_keys = ON", NULL) != 0 ||
	    pragma(s, "PRAGMA foreign_keys", "1") != 0 ||
	    migrate(s) != 0)
		goto bad;
	*out = &s->base;
	return 0;
bad:
	snprintf(err, errlen, "%s", s->base.errmsg);
	ksq_close(&s->base);
	return -1;
}

const struct smp_keyring_ops smp_keyring_sqlite_ops = {
	.name = "sqlite",
	.open = ksq_open,
	.close = ksq_close,
	.schema_version = ksq_schema_version,
	.begin = ksq_begin,
	.commit = ksq_commit,
	.rollback = ksq_rollback,
	.key_get = ksq_key_get,
	.key_put = ksq_key_put,
	.key_delete = ksq_key_delete,
	.key_set_blocked = ksq_key_set_blocked,
	.bindings_for = ksq_bindings_for,
	.bindings_of_key = ksq_bindings_of_key,
	.bindings_list = ksq_bindings_list,
	.binding_put = ksq_binding_put,
	.binding_set_state = ksq_binding_set_state,
	.binding_delete = ksq_binding_delete,
	.event_add = ksq_event_add,
	.events_for = ksq_events_for,
	.events_of_key = ksq_events_of_key,
	.replay_check = ksq_replay_check,
	.replay_prune = ksq_replay_prune,
	.prune = ksq_prune,
	.stats = ksq_stats,
};
