/* smp_keyring_backend.h - private: what a keyring backend module provides.
 *
 * smp_keyring.c owns everything that does not depend on the database:
 * argument checks, address and fingerprint normalisation, defaults for
 * time stamps, and dispatch through the table below. A backend module
 * (smp_keyring_sqlite.c now, a PostgreSQL module later) receives only
 * checked, normalised arguments: addresses as smp_address_normalize()
 * returns them, fingerprints in upper-case hex, states and sources in
 * range, time stamps filled in. It owns the connection, the statements,
 * the transactions and the error text.
 *
 * Not installed, not for the daemon or smpctl: include smp_keyring.h.
 */
#ifndef SMP_KEYRING_BACKEND_H
#define SMP_KEYRING_BACKEND_H

#include "smp_keyring.h"

#define SMP_KR_ERRMSG_MAX 1536

/* The common head of every backend's connection struct (its first member,
 * so a backend casts struct smp_keyring * to its own type). */
struct smp_keyring {
	const struct smp_keyring_ops *ops;
	char errmsg[SMP_KR_ERRMSG_MAX];
	bool created;   /* this open made the database (see smp_keyring_created) */
};

/* The statements of the keyring, portable SQL in smp_keyring_schema.h
 * (smp_kr_sql[]): a backend prepares them; the rows smp_keyring.c owns
 * itself are read and written with them through ops->exec. */
enum smp_kr_q {
	SMP_KR_Q_VERSION_GET,
	SMP_KR_Q_VERSION_ADD,
	SMP_KR_Q_KEY_GET,
	SMP_KR_Q_KEY_PUT,
	SMP_KR_Q_KEY_DELETE,
	SMP_KR_Q_KEY_DELETE_EVENTS,
	SMP_KR_Q_KEY_SET_BLOCKED,
	SMP_KR_Q_BIND_FOR,
	SMP_KR_Q_BIND_OF_KEY,
	SMP_KR_Q_BIND_ALL,
	SMP_KR_Q_BIND_STATE,
	SMP_KR_Q_BIND_PUT,
	SMP_KR_Q_BIND_SET_STATE,
	SMP_KR_Q_BIND_DELETE_ONE,
	SMP_KR_Q_BIND_DELETE_ONE_EVENTS,
	SMP_KR_Q_BIND_DELETE_ADDR,
	SMP_KR_Q_BIND_DELETE_ADDR_EVENTS,
	SMP_KR_Q_EVENT_ADD,
	SMP_KR_Q_EVENTS_FOR,
	SMP_KR_Q_EVENTS_OF_KEY,
	SMP_KR_Q_EVENTS_PRUNE,
	SMP_KR_Q_REPLAY_CHECK,
	SMP_KR_Q_REPLAY_PRUNE,
	SMP_KR_Q_STATS_KEYS,
	SMP_KR_Q_STATS_ADDRESSES,
	SMP_KR_Q_STATS_STATES,
	SMP_KR_Q_STATS_EVENTS,
	SMP_KR_Q_STATS_REPLAY,
	SMP_KR_Q_STATS_DISCOVERY,
	/* read and written by smp_keyring.c through ops->exec (below) */
	SMP_KR_Q_DISC_GET,
	SMP_KR_Q_DISC_PUT,
	SMP_KR_Q_DISC_DELETE,
	SMP_KR_Q_DISC_DUE,
	SMP_KR_Q_DISC_DUE_ANY,
	SMP_KR_Q_BLOCK_GET,
	SMP_KR_Q_BLOCK_PUT,
	SMP_KR_Q_BLOCK_TRIM,
	SMP_KR_Q__COUNT
};

/* One parameter of an ops->exec statement: text (NULL: SQL NULL), or a
 * 64-bit integer when is_int. */
struct smp_kr_arg {
	const char *text;
	int64_t num;
	bool is_int;
};

/* One result row of an ops->exec statement: every column as text (NULL
 * for SQL NULL; integers in decimal), valid during the call only.
 * Returns 0 to go on, or -1 to stop with its own sentence in errmsg. */
typedef int (*smp_kr_row_fn)(struct smp_keyring *kr, void *arg,
			     const char *const *col, int ncol);

#define SMP_KR_EXEC_MAX_ARGS 12
#define SMP_KR_EXEC_MAX_COLS 16

/* One statement of an ops->exec call. */
struct smp_kr_stmt {
	unsigned q;                    /* enum smp_kr_q */
	struct smp_kr_arg arg[SMP_KR_EXEC_MAX_ARGS];
	int nargs;
	smp_kr_row_fn row;             /* NULL: rows are not read */
	void *row_arg;
	long changed;                  /* out: rows a write changed */
};

/* Same contracts as the public functions of the same names. */
struct smp_keyring_ops {
	const char *name;
	/* flags: SMP_KEYRING_NO_CREATE */
	int (*open)(const char *target, unsigned flags, struct smp_keyring **out,
		    char *err, size_t errlen);
	void (*close)(struct smp_keyring *kr);
	/* smp_keyring_check: is the connection still on the database its
	 * target names, and usable? 0, or -1 with the reason in errmsg. Once
	 * -1, always -1: the caller closes it and opens again. */
	int (*check)(struct smp_keyring *kr);
	int (*schema_version)(struct smp_keyring *kr);

	int (*begin)(struct smp_keyring *kr);
	int (*commit)(struct smp_keyring *kr);
	int (*rollback)(struct smp_keyring *kr);

	int (*key_get)(struct smp_keyring *kr, const char *fpr,
		       struct smp_key_rec *out);
	int (*key_put)(struct smp_keyring *kr, const struct smp_key_rec *k);
	int (*key_delete)(struct smp_keyring *kr, const char *fpr, int64_t now);
	int (*key_set_blocked)(struct smp_keyring *kr, const char *fpr,
			       bool blocked, int64_t now);

	int (*bindings_for)(struct smp_keyring *kr, const char *address,
			    struct smp_binding **out, size_t *n);
	int (*bindings_of_key)(struct smp_keyring *kr, const char *fpr,
			       struct smp_binding **out, size_t *n);
	int (*bindings_list)(struct smp_keyring *kr, int state,
			     struct smp_binding **out, size_t *n);
	int (*binding_put)(struct smp_keyring *kr, const struct smp_binding *b);
	int (*binding_set_state)(struct smp_keyring *kr, const char *address,
				 const char *fpr, enum smp_bind_state state);
	int (*binding_delete)(struct smp_keyring *kr, const char *address,
			      const char *fpr, int64_t now);

	int (*event_add)(struct smp_keyring *kr, const struct smp_event *e);
	int (*events_for)(struct smp_keyring *kr, const char *address,
			  struct smp_event **out, size_t *n);
	int (*events_of_key)(struct smp_keyring *kr, const char *fpr,
			     struct smp_event **out, size_t *n);

	int (*replay_check)(struct smp_keyring *kr, const char *digest,
			    const char *recipient, int64_t now, int64_t window,
			    bool *seen);
	int (*replay_prune)(struct smp_keyring *kr, int64_t now, int64_t window);
	/* smp_keyring_prune: deletes events with at < events_before and
	 * replay entries with seen < replay_before (INT64_MIN: that table is
	 * left alone), records SMP_EVENT_EVENTS_PRUNED at now (detail from
	 * smp_kr_pruned_detail) when events went, and counts both. */
	int (*prune)(struct smp_keyring *kr, int64_t now, int64_t events_before,
		     int64_t replay_before, unsigned long *events,
		     unsigned long *replay_entries);

	int (*stats)(struct smp_keyring *kr, struct smp_keyring_stats *st);

	/* The tables whose rows need nothing of a backend's own (the
	 * discovery cache, the known key blocks: smp_keyring.c owns their
	 * rows): runs the n portable statements st[] in order; with write,
	 * in one write transaction (the caller's, or one of its own that
	 * commits at the end and rolls back on an error), else as reads
	 * outside any lock. 0, or -1 with "cannot <what>: why" in errmsg (or
	 * a row function's own sentence). */
	int (*exec)(struct smp_keyring *kr, struct smp_kr_stmt *st, size_t n,
		    bool write, const char *what);
};

extern const struct smp_keyring_ops smp_keyring_sqlite_ops;
extern const struct smp_keyring_ops smp_keyring_pg_ops;

/* Writes a sentence into kr->errmsg; returns -1 so that callers can
 * "return smp_kr_error(...)". */
int smp_kr_error(struct smp_keyring *kr, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The detail of an SMP_EVENT_EVENTS_PRUNED event: "N events before
 * 2026-11-22T08:12:04Z". */
void smp_kr_pruned_detail(char *buf, size_t size, unsigned long events,
			  int64_t before);

#endif
