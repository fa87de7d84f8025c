/* smp_keyring_pg_int.h - private to the PostgreSQL keyring backend: what
 * its two files share. smp_keyring_pg.c owns the connection (errors,
 * recovery, statements, transactions, advisory locks, open, migrations,
 * close, the ops table); smp_keyring_pg_rows.c the rows (keys, bindings,
 * events, the replay log, pruning, statistics, ops->exec).
 *
 * Not installed, not for the daemon, smpctl or smp_keyring.c: they go
 * through smp_keyring.h and the ops table.
 */
#ifndef SMP_KEYRING_PG_INT_H
#define SMP_KEYRING_PG_INT_H

#include <libpq-fe.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "smp_keyring_backend.h"

/* Advisory lock namespaces (the first key of the two-key form). */
#define KPG_LOCK_MIGRATE 0x534D5000 /* "SMP\0": schema migrations */
#define KPG_LOCK_ADDRESS 0x534D5041 /* "SMPA": one address's bindings */
#define KPG_LOCK_KEY 0x534D504B     /* "SMPK": one key's record */

#define KPG_MAX_PARAMS 12
#define KPG_NAME_MAX 256

/* Statements only this backend has, numbered after the portable ones
 * ('?' placeholders like those); transaction control goes through
 * PQexec. */
enum {
	L_LOCK = SMP_KR_Q__COUNT,
	L_MIGRATE_LOCK,
	L_MIGRATE_UNLOCK,
	L_HAS_VERSION_TABLE,
	L__END
};

struct kpg {
	struct smp_keyring base;   /* first: see smp_keyring_backend.h */
	PGconn *conn;
	char name[KPG_NAME_MAX];   /* "PostgreSQL database D (host H, ...)" */
	char why[SMP_KR_ERRMSG_MAX / 2]; /* the last failure's reason */
	int version;
	unsigned flags;            /* SMP_KEYRING_NO_CREATE */
	bool txn;                  /* an smp_keyring_begin() is open */
	bool own;                  /* a transaction of this module's own */
	char *sql[L__END];         /* with $1, $2, ... */
	int nparams[L__END];
	bool prepared[L__END];     /* on this connection (cleared by a reset) */
};

static inline struct kpg *K(struct smp_keyring *kr)
{
	return (struct kpg *)kr;
}

/* Parameters of one statement, all text but key material (binary). */
struct params {
	int n;
	const char *v[KPG_MAX_PARAMS];
	int len[KPG_MAX_PARAMS];
	int fmt[KPG_MAX_PARAMS];
	char num[KPG_MAX_PARAMS][24];
};

static inline void p_text(struct params *p, const char *v)
{
	p->v[p->n] = v;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static inline void p_i64(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
	p_text(p, p->num[p->n]);
}

static inline void p_blob(struct params *p, const void *d, size_t n)
{
	/* a NULL value would be SQL NULL, not an empty string */
	p->v[p->n] = d ? (const char *)d : "";
	p->len[p->n] = (int)n;
	p->fmt[p->n] = 1;
	p->n++;
}

/* ------------------------------------------------------------------ */
/* smp_keyring_pg.c: errors, statements, transactions, locks           */

/* "what was being done: why" (s->why). -1. */
int smp_kpg_fail(struct kpg *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Runs statement q (prepared on first use on this connection). The
 * result, or NULL with the reason in s->why. */
PGresult *smp_kpg_run(struct kpg *s, unsigned q, const struct params *p);

/* BEGIN, reconnecting once if the connection turns out to be gone. */
int smp_kpg_begin_q(struct kpg *s, const char *sql);
/* COMMIT; an aborted transaction is a failure. 0 or -1 (s->why). */
int smp_kpg_commit_q(struct kpg *s);
void smp_kpg_rollback_quietly(struct kpg *s);

/* Every write made of several statements runs in a transaction: the
 * caller's, or one of its own (*own) that smp_kpg_wend() ends (commits
 * when rc >= 0, else rolls back; returns rc, or -1 when the commit
 * fails). */
int smp_kpg_wbegin(struct kpg *s, bool *own, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int smp_kpg_wend(struct kpg *s, bool own, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Inside the caller's transaction: an advisory lock on name (namespace
 * ns, KPG_LOCK_*), held until it ends; nothing outside one. */
int smp_kpg_lock_in_txn(struct kpg *s, int ns, const char *name);

/* ------------------------------------------------------------------ */
/* smp_keyring_pg_rows.c: row helpers, the ops on rows                 */

/* Column i of row as an integer (0 for NULL). */
int64_t smp_kpg_col_i64(const PGresult *r, int row, int i);
/* Runs a write with no rows to read: 0, or -1 (s->why). *n (may be NULL)
 * gets the rows changed. */
int smp_kpg_write_q(struct kpg *s, unsigned q, const struct params *p,
		    long *n);

int smp_kpg_key_get(struct smp_keyring *kr, const char *fpr,
		    struct smp_key_rec *out);
int smp_kpg_key_put(struct smp_keyring *kr, const struct smp_key_rec *k);
int smp_kpg_key_delete(struct smp_keyring *kr, const char *fpr, int64_t now);
int smp_kpg_key_set_blocked(struct smp_keyring *kr, const char *fpr,
			    bool blocked, int64_t now);
int smp_kpg_bindings_for(struct smp_keyring *kr, const char *address,
			 struct smp_binding **out, size_t *n);
int smp_kpg_bindings_of_key(struct smp_keyring *kr, const char *fpr,
			    struct smp_binding **out, size_t *n);
int smp_kpg_bindings_list(struct smp_keyring *kr, int state,
			  struct smp_binding **out, size_t *n);
int smp_kpg_binding_put(struct smp_keyring *kr, const struct smp_binding *b);
int smp_kpg_binding_set_state(struct smp_keyring *kr, const char *address,
			      const char *fpr, enum smp_bind_state state);
int smp_kpg_binding_delete(struct smp_keyring *kr, const char *address,
			   const char *fpr, int64_t now);
int smp_kpg_event_add(struct smp_keyring *kr, const struct smp_event *e);
int smp_kpg_events_for(struct smp_keyring *kr, const char *address,
		       struct smp_event **out, size_t *n);
int smp_kpg_events_of_key(struct smp_keyring *kr, const char *fpr,
			  struct smp_event **out, size_t *n);
int smp_kpg_replay_check(struct smp_keyring *kr, const char *digest,
			 const char *recipient, int64_t now, int64_t window,
			 bool *seen);
int smp_kpg_replay_prune(struct smp_keyring *kr, int64_t now, int64_t window);
int smp_kpg_prune(struct smp_keyring *kr, int64_t now, int64_t events_before,
		  int64_t replay_before, unsigned long *events,
		  unsigned long *replay_entries);
int smp_kpg_stats(struct smp_keyring *kr, struct smp_keyring_stats *out);
int smp_kpg_exec(struct smp_keyring *kr, struct smp_kr_stmt *x, size_t n,
		 bool write, const char *what);

#endif
