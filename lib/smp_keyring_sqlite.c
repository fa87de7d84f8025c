/* smp_keyring_sqlite.c - the SQLite keyring backend (SPEC.md 4): one file
 * in WAL mode, shared by the milter's connections and smpctl.
 *
 * Everything specific to SQLite lives in this backend: the pragmas, BEGIN
 * IMMEDIATE, the busy timeout and retries, the statement cache and the
 * sqlite_master probe. The SQL itself comes from smp_keyring_schema.h.
 * The backend is split by role:
 *   smp_keyring_sqlite.c       this file: the connection (file health,
 *                              errors, the statement cache, transactions,
 *                              open, migrations, close) and the ops table
 *   smp_keyring_sqlite_rows.c  the rows: keys, bindings, events, the
 *                              replay log, pruning, statistics, ops->exec
 *   smp_keyring_sqlite_int.h   what the two share (struct ksq, helpers)
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smp_keyring_schema.h"
#include "smp_keyring_sqlite_int.h"

#define KR_BUSY_TIMEOUT_MS 5000
#define KR_BEGIN_RETRIES 3     /* further attempts after the busy timeout */
#define KR_BACKOFF_MS 20       /* first pause; x4 each time: 20, 80, 320 */
#define KR_RETIRE_TIMEOUT_MS 1000 /* closing an unusable connection */

/* The statements only this backend has (smp_keyring_sqlite_int.h). */
static const char *const local_sql[L__END - SMP_KR_Q__COUNT] = {
	[L_BEGIN_WRITE - SMP_KR_Q__COUNT] = "BEGIN IMMEDIATE",
	[L_BEGIN_READ - SMP_KR_Q__COUNT] = "BEGIN",
	[L_COMMIT - SMP_KR_Q__COUNT] = "COMMIT",
	[L_ROLLBACK - SMP_KR_Q__COUNT] = "ROLLBACK",
	[L_HAS_VERSION_TABLE - SMP_KR_Q__COUNT] =
		("SELECT COUNT(*) FROM sqlite_master "
		 "WHERE type = 'table' AND name = 'schema_version'"),
};

/* begin_write(): the connection is unusable (s->why), not an SQLite code */
#define KR_UNUSABLE (-1)

/* ---------------------------------------------------------------------- */
/* Health: is the open file still the one at the path, and sound?         */

/* What a row reader returns when memory ran out (not a damaged row). */
const char smp_ksq_oom[] = "out of memory";

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
int smp_ksq_bad_row(struct ksq *s, const char *what, const char *arg,
		    const char *bad)
{
	smp_kr_error(&s->base, "cannot %s%s: %s in keyring database %s", what,
		     arg, bad, s->path);
	if (bad != smp_ksq_oom)
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
int smp_ksq_fail(struct ksq *s, const char *fmt, ...)
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
sqlite3_stmt *smp_ksq_prep(struct ksq *s, unsigned q)
{
	if (!s->st[q] &&
	    sqlite3_prepare_v3(s->db, sql_of(q), -1, SQLITE_PREPARE_PERSISTENT,
			       &s->st[q], NULL) != SQLITE_OK)
		s->st[q] = NULL;
	return s->st[q];
}

/* Runs one of the argument-less statements (BEGIN, COMMIT, ...). */
int smp_ksq_run_q(struct ksq *s, unsigned q)
{
	sqlite3_stmt *st = smp_ksq_prep(s, q);
	int rc;

	if (!st)
		return sqlite3_errcode(s->db);
	sqlite3_reset(st);
	rc = run(st);
	if (rc != SQLITE_OK)
		return rc;   /* left for the caller's smp_ksq_fail(); reset on
			      * reuse */
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

void smp_ksq_rollback_quietly(struct ksq *s)
{
	/* SQLite may already have rolled back (disk full, I/O error) */
	if (!sqlite3_get_autocommit(s->db))
		smp_ksq_run_q(s, L_ROLLBACK);
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
		rc = smp_ksq_run_q(s, L_BEGIN_WRITE);
		if ((rc & 0xFF) != SQLITE_BUSY || i == KR_BEGIN_RETRIES)
			break;
		sleep_ms(KR_BACKOFF_MS << (2 * i));
	}
	if (rc == SQLITE_OK && usable(s, false) != 0) {
		smp_ksq_rollback_quietly(s);
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
 * of its own (*own) that smp_ksq_wend() ends. what/...: the error
 * prefix. */
__attribute__((format(printf, 3, 4)))
int smp_ksq_wbegin(struct ksq *s, bool *own, const char *fmt, ...)
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

/* Ends smp_ksq_wbegin()'s own transaction: commits when rc >= 0, else
 * rolls back. Returns rc, or -1 when the commit fails (then rolled
 * back). */
__attribute__((format(printf, 4, 5)))
int smp_ksq_wend(struct ksq *s, bool own, int rc, const char *fmt, ...)
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
		if (smp_ksq_run_q(s, L_COMMIT) == SQLITE_OK)
			return rc;
		code = sqlite3_extended_errcode(s->db);
		va_start(ap, fmt);
		rc = failv(s, sqlite3_errmsg(s->db), fmt, ap);
		va_end(ap);
		after_error(s, code);
	}
	smp_ksq_rollback_quietly(s);
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
		return smp_ksq_fail(s, "cannot start a transaction on %s",
				    s->path);
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
		smp_ksq_rollback_quietly(s);
		return smp_kr_error(kr, "cannot commit: %s (rolled back)",
				    s->why);
	}
	if (smp_ksq_run_q(s, L_COMMIT) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot commit to %s", s->path);
		smp_ksq_rollback_quietly(s);
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
	if (smp_ksq_run_q(s, L_ROLLBACK) != SQLITE_OK)
		return smp_ksq_fail(s, "cannot roll back on %s", s->path);
	return 0;
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
	st = smp_ksq_prep(s, L_HAS_VERSION_TABLE);
	if (!st || sqlite3_step(st) != SQLITE_ROW)
		return -1;
	rc = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (rc == 0)
		return 0;
	st = smp_ksq_prep(s, SMP_KR_Q_VERSION_GET);
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
		return smp_ksq_fail(s, "cannot open keyring database %s",
				    s->path);
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
		return smp_ksq_fail(s, "cannot open keyring database %s",
				    s->path);
	if (v > SMP_KR_SCHEMA_VERSION)
		return too_new(s, v);
	if (v == SMP_KR_SCHEMA_VERSION)
		goto done;

	if (begin_write(s) != SQLITE_OK)
		return smp_ksq_fail(s, "cannot create the schema in %s",
				    s->path);
	/* another process may have migrated while we waited for the lock */
	if (read_version(s, &v) != 0) {
		smp_ksq_fail(s, "cannot open keyring database %s", s->path);
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
			smp_ksq_fail(s,
				     "cannot migrate %s to schema version %d",
				     s->path, m->version);
			goto out;
		}
		st = smp_ksq_prep(s, SMP_KR_Q_VERSION_ADD);
		if (!st || !b_i64(st, 1, m->version) ||
		    !b_i64(st, 2, (int64_t)time(NULL)) || run(st) != SQLITE_OK) {
			smp_ksq_fail(s,
				     "cannot migrate %s to schema version %d",
				     s->path, m->version);
			release(st);
			goto out;
		}
		release(st);
	}
	if (smp_ksq_run_q(s, L_COMMIT) != SQLITE_OK) {
		smp_ksq_fail(s, "cannot create the schema in %s", s->path);
		goto out;
	}
	s->base.created = v == 0;
	ret = 0;
out:
	if (ret != 0) {
		smp_ksq_rollback_quietly(s);
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
		smp_ksq_fail(s, "cannot open keyring database %s", s->path);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		smp_ksq_fail(s, "cannot open keyring database %s", s->path);
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

	smp_ksq_rollback_quietly(s);
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
	.key_get = smp_ksq_key_get,
	.key_put = smp_ksq_key_put,
	.key_delete = smp_ksq_key_delete,
	.key_set_blocked = smp_ksq_key_set_blocked,
	.bindings_for = smp_ksq_bindings_for,
	.bindings_of_key = smp_ksq_bindings_of_key,
	.bindings_list = smp_ksq_bindings_list,
	.binding_put = smp_ksq_binding_put,
	.binding_set_state = smp_ksq_binding_set_state,
	.binding_delete = smp_ksq_binding_delete,
	.event_add = smp_ksq_event_add,
	.events_for = smp_ksq_events_for,
	.events_of_key = smp_ksq_events_of_key,
	.replay_check = smp_ksq_replay_check,
	.replay_prune = smp_ksq_replay_prune,
	.prune = smp_ksq_prune,
	.stats = smp_ksq_stats,
	.exec = smp_ksq_exec,
};
