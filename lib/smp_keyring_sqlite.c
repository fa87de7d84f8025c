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
 *
 * A file deleted or replaced under an open connection (see "Health"
 * below): SQLite keeps working on the old inode, and it finds the -wal and
 * -shm files by name, so a connection on the old file and one on the new
 * file share one write-ahead log and read each other's pages (a binding
 * with "an unknown state" was one way this showed). So every write
 * transaction first checks that the path still names the open file, and a
 * connection that is no longer usable folds its log into the old file and
 * empties it when it is closed.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smp_keyring_backend.h"
#include "smp_keyring_schema.h"

#define KR_BUSY_TIMEOUT_MS 5000
#define KR_BEGIN_RETRIES 3     /* further attempts after the busy timeout */
#define KR_BACKOFF_MS 20       /* first pause; x4 each time: 20, 80, 320 */
#define KR_RETIRE_TIMEOUT_MS 1000 /* closing an unusable connection */

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

/* Where a connection stands (smp_keyring_check); once not KH_OK, for good. */
enum kr_health {
	KH_OK = 0,
	KH_DELETED,                /* nothing at the path any more */
	KH_REPLACED,               /* another file at the path */
	KH_UNREACHABLE,            /* the path cannot be examined */
	KH_DAMAGED,                /* corrupt, unreadable, not a keyring */
};

struct ksq {
	struct smp_keyring base;   /* first: see smp_keyring_backend.h */
	sqlite3 *db;
	char *path;
	int version;
	unsigned flags;            /* SMP_KEYRING_NO_CREATE */
	bool txn;                  /* an smp_keyring_begin() is open */
	sqlite3_stmt *st[L__END];  /* prepared on first use, kept */
	bool watching;             /* dev and ino known: open finished */
	dev_t dev;                 /* the file opened, as stat() saw it */
	ino_t ino;
	enum kr_health health;
	char why[640];             /* the sentence for health != KH_OK */
};

/* begin_write(): the connection is unusable (s->why), not an SQLite code */
#define KR_UNUSABLE (-1)

static struct ksq *K(struct smp_keyring *kr)
{
	return (struct ksq *)kr;
}

/* ---------------------------------------------------------------------- */
/* Health: is the open file still the one at the path, and sound?         */

/* What a row reader returns when memory ran out (not a damaged row). */
static const char kr_oom[] = "out of memory";

/* Marks the connection unusable for good (the first reason stays). -1. */
__attribute__((format(printf, 3, 4)))
static int unusable(struct ksq *s, enum kr_health h, const char *fmt, ...)
{
	va_list ap;

	if (s->health != KH_OK)
		return -1;
	s->health = h;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* The path against the open file: a stat() of the path, and SQLite's own
 * test of its descriptor (SQLITE_FCNTL_HAS_MOVED). Nothing is opened
 * here: closing another descriptor of the database file would drop
 * SQLite's POSIX locks on it. */
static enum kr_health path_state(struct ksq *s, int *eno)
{
	struct stat st;
	int moved = 0;

	*eno = 0;
	if (!s->watching)
		return KH_OK;   /* still opening */
	if (stat(s->path, &st) != 0) {
		*eno = errno;
		return *eno == ENOENT || *eno == ENOTDIR ? KH_DELETED
							 : KH_UNREACHABLE;
	}
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED,
				 &moved) != SQLITE_OK)
		moved = 0;
	if (moved || st.st_dev != s->dev || st.st_ino != s->ino)
		return KH_REPLACED;
	return KH_OK;
}

/* Does the open file still start with SQLite's header? Read through
 * SQLite's own descriptor (see path_state). */
static bool header_ok(struct ksq *s)
{
	static const char magic[16] = "SQLite format 3";
	sqlite3_file *f = NULL;
	char buf[16];

	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER,
				 &f) != SQLITE_OK || !f || !f->pMethods)
		return true;   /* cannot tell: the queries will */
	if (f->pMethods->xRead(f, buf, (int)sizeof(buf), 0) != SQLITE_OK)
		return false;  /* shorter than a header */
	return memcmp(buf, magic, sizeof(buf)) == 0;
}

/* 0 while the connection is usable, else -1 with the sentence in s->why.
 * header: also read the first octets of the file. */
static int usable(struct ksq *s, bool header)
{
	int eno;

	if (s->health != KH_OK)
		return -1;
	switch (path_state(s, &eno)) {
	case KH_OK:
		break;
	case KH_DELETED:
		return unusable(s, KH_DELETED, "keyring database %s was deleted "
				"while in use", s->path);
	case KH_REPLACED:
		return unusable(s, KH_REPLACED, "keyring database %s was "
				"replaced by another file while in use", s->path);
	default:
		return unusable(s, KH_UNREACHABLE, "keyring database %s cannot "
				"be examined: %s", s->path, strerror(eno));
	}
	if (header && !header_ok(s))
		return unusable(s, KH_DAMAGED, "keyring database %s is damaged: "
				"it no longer starts with an SQLite header "
				"(overwritten?)", s->path);
	return 0;
}

/* SQLite errors after which a connection is not used again: the file is
 * damaged, unreadable, or not what the statements expect. Lock waits,
 * constraints and a full disk leave it usable. */
static bool damaging(int code)
{
	switch (code & 0xFF) {
	case SQLITE_ERROR:
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_SCHEMA:
	case SQLITE_MISUSE:
	case SQLITE_FORMAT:
	case SQLITE_NOTADB:
		return true;
	default:
		return false;
	}
}

/* After an SQLite error (errmsg already says what failed, with SQLite's
 * reason): is the file gone, replaced or damaged? Says so in errmsg. */
static void after_error(struct ksq *s, int code)
{
	char *m = s->base.errmsg;
	size_t n = strlen(m);

	if (usable(s, false) == 0 && damaging(code))
		unusable(s, KH_DAMAGED, "keyring database %s is damaged or "
			 "unreadable: %s", s->path, sqlite3_errstr(code));
	if (s->health == KH_OK)
		return;
	if (s->health != KH_DAMAGED)
		snprintf(m + n, sizeof(s->base.errmsg) - n, "; %s", s->why);
	else if (!strstr(m, s->path))
		snprintf(m + n, sizeof(s->base.errmsg) - n,
			 " (keyring database %s)", s->path);
}

/* A row no keyring writes: the file is damaged, or another program's.
 * errmsg: "cannot <what><arg>: <bad> in keyring database P". */
static int bad_row(struct ksq *s, const char *what, const char *arg,
		   const char *bad)
{
	smp_kr_error(&s->base, "cannot %s%s: %s in keyring database %s", what,
		     arg, bad, s->path);
	if (bad != kr_oom)
		unusable(s, KH_DAMAGED, "keyring database %s is damaged or not "
			 "a keyring: %s", s->path, bad);
	return -1;
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
	int code = sqlite3_extended_errcode(s->db);

	va_start(ap, fmt);
	failv(s, sqlite3_errmsg(s->db), fmt, ap);
	va_end(ap);
	after_error(s, code);
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

static void rollback_quietly(struct ksq *s)
{
	/* SQLite may already have rolled back (disk full, I/O error) */
	if (!sqlite3_get_autocommit(s->db))
		run_q(s, L_ROLLBACK);
}

/* BEGIN IMMEDIATE with bounded retries (see the top of the file), only on
 * a file that is still the one at the path: checked before, and again
 * once the lock is held (the file may have been replaced meanwhile).
 * SQLITE_OK, SQLite's code, or KR_UNUSABLE (s->why says why). */
static int begin_write(struct ksq *s)
{
	int rc;

	if (usable(s, false) != 0)
		return KR_UNUSABLE;
	for (unsigned i = 0;; i++) {
		rc = run_q(s, L_BEGIN_WRITE);
		if ((rc & 0xFF) != SQLITE_BUSY || i == KR_BEGIN_RETRIES)
			break;
		sleep_ms(KR_BACKOFF_MS << (2 * i));
	}
	if (rc == SQLITE_OK && usable(s, false) != 0) {
		rollback_quietly(s);
		return KR_UNUSABLE;
	}
	return rc;
}

/* The reason begin_write() failed with rc. */
static const char *begin_error(struct ksq *s, int rc)
{
	return rc == KR_UNUSABLE ? s->why : sqlite3_errmsg(s->db);
}

/* Before a COMMIT: 0, or -1 when the file is no longer the one at the
 * path (then nothing may be committed into it). */
static int commit_ok(struct ksq *s)
{
	return usable(s, false);
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
	} else {
		int brc = begin_write(s);
		if (brc != SQLITE_OK) {
			int code = sqlite3_extended_errcode(s->db);
			rc = failv(s, begin_error(s, brc), fmt, ap);
			if (brc != KR_UNUSABLE)
				after_error(s, code);
		} else {
			*own = true;
		}
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
	if (rc >= 0 && commit_ok(s) != 0) {
		va_start(ap, fmt);
		rc = failv(s, s->why, fmt, ap);
		va_end(ap);
	} else if (rc >= 0) {
		int code;
		if (run_q(s, L_COMMIT) == SQLITE_OK)
			return rc;
		code = sqlite3_extended_errcode(s->db);
		va_start(ap, fmt);
		rc = failv(s, sqlite3_errmsg(s->db), fmt, ap);
		va_end(ap);
		after_error(s, code);
	}
	rollback_quietly(s);
	return rc;
}

static int ksq_begin(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);
	int rc;

	if (s->txn)
		return smp_kr_error(kr, "cannot start a transaction on %s: "
				    "one is already open", s->path);
	rc = begin_write(s);
	if (rc == KR_UNUSABLE)
		return smp_kr_error(kr, "cannot start a transaction: %s",
				    s->why);
	if (rc != SQLITE_OK)
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
	if (commit_ok(s) != 0) {
		rollback_quietly(s);
		return smp_kr_error(kr, "cannot commit: %s (rolled back)",
				    s->why);
	}
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
		return kr_oom;
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
		return kr_oom;
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
		return kr_oom;
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
			bad_row(s, what, arg, bad);
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
		bad_row(s, "read key ", fpr, bad);
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
	    count_q(s, SMP_KR_Q_STATS_REPLAY, &out->replay_entries) != 0 ||
	    count_q(s, SMP_KR_Q_STATS_DISCOVERY, &out->discovery) != 0)
		goto bad;
	st = prep(s, SMP_KR_Q_STATS_STATES);
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
			bad_row(s, "count the bindings", "", what);
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
	for (unsigned q = SMP_KR_Q_STATS_KEYS; q <= SMP_KR_Q_STATS_DISCOVERY; q++)
		if (s->st[q])
			sqlite3_reset(s->st[q]);
	if (own)
		rollback_quietly(s);
	if (ret != 0)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---------------------------------------------------------------------- */
/* The rows smp_keyring.c owns (ops->exec)                                */

/* One statement: its parameters bound, each row to x->row. */
static int exec_one(struct ksq *s, struct smp_kr_stmt *x, const char *what)
{
	sqlite3_stmt *st = prep(s, x->q);
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
					     kr_oom);
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
	fail(s, "cannot %s", what);
out:
	release(st);
	return ret;
}

static int ksq_exec(struct smp_keyring *kr, struct smp_kr_stmt *x, size_t n,
		    bool write, const char *what)
{
	struct ksq *s = K(kr);
	bool own = false;
	int ret = -1;

	if (write && wbegin(s, &own, "cannot %s", what) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (exec_one(s, &x[i], what) != 0)
			goto out;
	ret = 0;
out:
	return write ? wend(s, own, ret, "cannot %s", what) : ret;
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

/* SMP_KEYRING_NO_CREATE: a file without the keyring schema (an empty
 * one) is refused before anything is written to it. */
static int must_hold_keyring(struct ksq *s)
{
	int v;

	if (read_version(s, &v) != 0)
		return fail(s, "cannot open keyring database %s", s->path);
	if (v == 0)
		return smp_kr_error(&s->base, "cannot open keyring database "
				    "%s: it holds no keyring (an empty file)",
				    s->path);
	return 0;
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
	s->base.created = v == 0;
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

/* Removes the -wal and -shm files at s's path (SQLite's names for them). */
static void drop_log(struct ksq *s)
{
	char p[4096];

	if (snprintf(p, sizeof(p), "%s-wal", s->path) < (int)sizeof(p))
		unlink(p);
	if (snprintf(p, sizeof(p), "%s-shm", s->path) < (int)sizeof(p))
		unlink(p);
}

/*
 * Before closing a connection that is no longer usable: its write-ahead
 * log (found by name: it is also the log of any file later put at the
 * path) is folded into the old file and truncated, so that no file later
 * put at the path reads the old file's pages from it. When another file
 * is at the path, SQLite must not delete the -wal and -shm files at close
 * either: that file's connections may be using them. A log that cannot
 * be folded in because the file is damaged (overwritten in place: SQLite
 * answers corrupt or not a database) can never be used again; it would
 * only be replayed onto a good file restored at the path, so it is
 * removed, unless another file is at the path already.
 */
static void retire(struct ksq *s)
{
	enum kr_health at;
	int eno, rc;

	rollback_quietly(s);
	sqlite3_busy_timeout(s->db, KR_RETIRE_TIMEOUT_MS);
	rc = sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_TRUNCATE,
				       NULL, NULL);
	at = path_state(s, &eno);
	if (at == KH_REPLACED ||
	    (rc & 0xFF) == SQLITE_CORRUPT || (rc & 0xFF) == SQLITE_NOTADB)
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				  (int *)NULL);
	if (at != KH_REPLACED &&
	    ((rc & 0xFF) == SQLITE_CORRUPT || (rc & 0xFF) == SQLITE_NOTADB))
		drop_log(s);
}

static void ksq_close(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);

	if (!s)
		return;
	for (size_t i = 0; i < L__END; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db && s->watching && s->health != KH_OK)
		retire(s);
	/* an open transaction is rolled back by the close */
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

static int ksq_check(struct smp_keyring *kr)
{
	struct ksq *s = K(kr);

	if (usable(s, true) != 0)
		return smp_kr_error(kr, "%s", s->why);
	return 0;
}

/* SQLite could not open the file: its reason, and the system's. */
static void open_error(struct ksq *s, int rc)
{
	int eno = s->db ? sqlite3_system_errno(s->db) : 0;
	const char *why = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	if (eno)
		smp_kr_error(&s->base, "cannot open keyring database %s: %s "
			     "(%s)", s->path, why, strerror(eno));
	else
		smp_kr_error(&s->base, "cannot open keyring database %s: %s",
			     s->path, why);
}

/* Remembers which file was opened (see path_state). */
static int watch(struct ksq *s)
{
	struct stat st;
	int moved = 0;

	if (stat(s->path, &st) != 0)
		return smp_kr_error(&s->base, "cannot open keyring database "
				    "%s: %s", s->path, strerror(errno));
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED,
				 &moved) == SQLITE_OK && moved)
		return smp_kr_error(&s->base, "cannot open keyring database "
				    "%s: it was replaced while being opened",
				    s->path);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->watching = true;
	return 0;
}

static int ksq_open(const char *target, unsigned flags,
		    struct smp_keyring **out, char *err, size_t errlen)
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
	s->flags = flags;
	rc = sqlite3_open_v2(target, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
				     (flags & SMP_KEYRING_NO_CREATE
					      ? 0 : SQLITE_OPEN_CREATE),
			     NULL);
	if (rc != SQLITE_OK) {
		open_error(s, rc);
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
	if ((flags & SMP_KEYRING_NO_CREATE) && must_hold_keyring(s) != 0)
		goto bad;
	/* WAL persists in the file; asking again costs nothing. NORMAL is
	 * durable across crashes of the process and consistent across power
	 * loss in WAL mode (the last commits may be lost, never half). */
	if (pragma(s, "PRAGMA journal_mode = WAL", "wal") != 0 ||
	    pragma(s, "PRAGMA synchronous = NORMAL", NULL) != 0 ||
	    pragma(s, "PRAGMA foreign_keys = ON", NULL) != 0 ||
	    pragma(s, "PRAGMA foreign_keys", "1") != 0 ||
	    migrate(s) != 0 || watch(s) != 0)
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
	.check = ksq_check,
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
	.exec = ksq_exec,
};
