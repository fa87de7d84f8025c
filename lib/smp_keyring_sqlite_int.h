/* smp_keyring_sqlite_int.h - private to the SQLite keyring backend: what
 * its two files share. smp_keyring_sqlite.c owns the connection (file
 * health, errors, the statement cache, transactions, open, migrations,
 * close, the ops table); smp_keyring_sqlite_rows.c the rows (keys,
 * bindings, events, the replay log, pruning, statistics, ops->exec).
 *
 * Not installed, not for the daemon, smpctl or smp_keyring.c: they go
 * through smp_keyring.h and the ops table.
 */
#ifndef SMP_KEYRING_SQLITE_INT_H
#define SMP_KEYRING_SQLITE_INT_H

#include <sqlite3.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "smp_keyring_backend.h"

/* Statements only this backend has, numbered after the portable ones. */
enum {
	L_BEGIN_WRITE = SMP_KR_Q__COUNT,
	L_BEGIN_READ,
	L_COMMIT,
	L_ROLLBACK,
	L_HAS_VERSION_TABLE,
	L__END
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

static inline struct ksq *K(struct smp_keyring *kr)
{
	return (struct ksq *)kr;
}

/* ------------------------------------------------------------------ */
/* smp_keyring_sqlite.c: health, errors, statements, transactions      */

/* What a row reader returns when memory ran out (not a damaged row). */
extern const char smp_ksq_oom[];

/* A row no keyring writes: the file is damaged, or another program's.
 * errmsg: "cannot <what><arg>: <bad> in keyring database P". -1. */
int smp_ksq_bad_row(struct ksq *s, const char *what, const char *arg,
		    const char *bad);

/* "what was being done: SQLite's reason", right where SQLite failed. -1. */
int smp_ksq_fail(struct ksq *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Statement q, prepared once per connection; NULL with SQLite's error. */
sqlite3_stmt *smp_ksq_prep(struct ksq *s, unsigned q);

/* Back to the start, the (SQLITE_STATIC) parameters dropped: a statement
 * left stepping would keep its read transaction (and snapshot) open. */
static inline void release(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static inline bool b_text(sqlite3_stmt *st, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, i) == SQLITE_OK;
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) == SQLITE_OK;
}

static inline bool b_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v) == SQLITE_OK;
}

static inline bool b_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	/* a NULL pointer would bind SQL NULL, not an empty blob */
	return sqlite3_bind_blob64(st, i, p ? p : "", (sqlite3_uint64)n,
				   SQLITE_STATIC) == SQLITE_OK;
}

/* Steps a statement that returns no rows: SQLITE_OK or the error. */
static inline int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs one of the argument-less statements (BEGIN, COMMIT, ...). */
int smp_ksq_run_q(struct ksq *s, unsigned q);

void smp_ksq_rollback_quietly(struct ksq *s);

/* Every write happens inside a write transaction: the caller's, or one
 * of its own (*own) that smp_ksq_wend() ends (commits when rc >= 0, else
 * rolls back; returns rc, or -1 when the commit fails). */
int smp_ksq_wbegin(struct ksq *s, bool *own, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int smp_ksq_wend(struct ksq *s, bool own, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ */
/* smp_keyring_sqlite_rows.c: the ops on rows (smp_keyring_backend.h)  */

int smp_ksq_key_get(struct smp_keyring *kr, const char *fpr,
		    struct smp_key_rec *out);
int smp_ksq_key_put(struct smp_keyring *kr, const struct smp_key_rec *k);
int smp_ksq_key_delete(struct smp_keyring *kr, const char *fpr, int64_t now);
int smp_ksq_key_set_blocked(struct smp_keyring *kr, const char *fpr,
			    bool blocked, int64_t now);
int smp_ksq_bindings_for(struct smp_keyring *kr, const char *address,
			 struct smp_binding **out, size_t *n);
int smp_ksq_bindings_of_key(struct smp_keyring *kr, const char *fpr,
			    struct smp_binding **out, size_t *n);
int smp_ksq_bindings_list(struct smp_keyring *kr, int state,
			  struct smp_binding **out, size_t *n);
int smp_ksq_binding_put(struct smp_keyring *kr, const struct smp_binding *b);
int smp_ksq_binding_set_state(struct smp_keyring *kr, const char *address,
			      const char *fpr, enum smp_bind_state state);
int smp_ksq_binding_delete(struct smp_keyring *kr, const char *address,
			   const char *fpr, int64_t now);
int smp_ksq_event_add(struct smp_keyring *kr, const struct smp_event *e);
int smp_ksq_events_for(struct smp_keyring *kr, const char *address,
		       struct smp_event **out, size_t *n);
int smp_ksq_events_of_key(struct smp_keyring *kr, const char *fpr,
			  struct smp_event **out, size_t *n);
int smp_ksq_replay_check(struct smp_keyring *kr, const char *digest,
			 const char *recipient, int64_t now, int64_t window,
			 bool *seen);
int smp_ksq_replay_prune(struct smp_keyring *kr, int64_t now, int64_t window);
int smp_ksq_prune(struct smp_keyring *kr, int64_t now, int64_t events_before,
		  int64_t replay_before, unsigned long *events,
		  unsigned long *replay_entries);
int smp_ksq_stats(struct smp_keyring *kr, struct smp_keyring_stats *out);
int smp_ksq_exec(struct smp_keyring *kr, struct smp_kr_stmt *x, size_t n,
		 bool write, const char *what);

#endif
