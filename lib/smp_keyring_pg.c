/* smp_keyring_pg.c - the PostgreSQL keyring backend (SPEC.md 4): one
 * database shared by the milters of several MTA hosts and their smpctl.
 *
 * Everything specific to PostgreSQL lives here: libpq, the connection and
 * its recovery, the placeholder rewrite, the per-backend half of every
 * migration, the locks. The SQL itself comes from smp_keyring_schema.h.
 *
 * Concurrency, across hosts as much as inside one process:
 * - Transactions run at READ COMMITTED. Every statement sees what was
 *   committed before it started, and a single statement (an upsert, the
 *   replay check) is atomic on its own: outside smp_keyring_begin() each
 *   single-statement write runs in autocommit, and the ones made of
 *   several statements (deleting a key or a binding with its events) run
 *   in a transaction of their own.
 * - A transaction that reads first and writes after (the harvest: the
 *   sender's bindings, then a decision, then the writes) must not decide
 *   on what another host is changing at the same moment. Inside
 *   smp_keyring_begin() reading the bindings of an address first takes a
 *   transaction-scoped advisory lock on that address
 *   (pg_advisory_xact_lock), and reading a key takes one on its
 *   fingerprint; both are held until commit or rollback. A second host
 *   harvesting for the same address waits there, then reads (a new
 *   statement, so a new snapshot) what the first committed: two hosts
 *   harvesting two different keys for one address at once end with one
 *   active binding and one conflict, never two active bindings, and no
 *   event is lost. Readers outside a transaction (the encryption lookups)
 *   take no lock and never wait.
 * - Locks are waited for at most statement_timeout (5 s unless the
 *   connection string or the server sets one); PostgreSQL breaks a
 *   deadlock by failing one of the transactions. Either way the caller
 *   gets an error and applies on_error (a temporary failure: the MTA
 *   retries the message).
 * - Migrations run in one transaction under an advisory lock too, so two
 *   hosts starting at once against an empty database do not race.
 *
 * The connection: keyring.conninfo is handed to libpq as it is (key=value
 * pairs or a postgresql:// URI; passfile, PGPASSFILE, sslmode, ... all as
 * libpq reads them), with defaults it may override: connect_timeout 10 s,
 * TCP keepalives, application_name. When the server goes away (restart,
 * network), the call that notices fails with a sentence naming the server
 * (database, host, port, user: never the password), and the next call
 * outside a transaction reconnects (PQreset). Reads and BEGIN, which
 * change nothing, are retried once on a fresh connection at once; a write
 * is never retried blindly (it may have been done).
 */
#include <libpq-fe.h>

#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp_keyring_backend.h"
#include "smp_keyring_schema.h"

/* Advisory lock namespaces (the first key of the two-key form). */
#define KPG_LOCK_MIGRATE 0x534D5000 /* "SMP\0": schema migrations */
#define KPG_LOCK_ADDRESS 0x534D5041 /* "SMPA": one address's bindings */
#define KPG_LOCK_KEY 0x534D504B     /* "SMPK": one key's record */

#define KPG_MAX_PARAMS 12
#define KPG_NAME_MAX 256
#define KPG_LINE_MAX 400 /* one libpq message, flattened */

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

static const char *const local_sql[L__END - SMP_KR_Q__COUNT] = {
	[L_LOCK - SMP_KR_Q__COUNT] =
		"SELECT pg_advisory_xact_lock(CAST(? AS INTEGER), "
		"CAST(? AS INTEGER))",
	/* session-level, taken before the migration's transaction begins,
	 * so that it starts after the previous holder's commit and sees it
	 * (catalog caches included) */
	[L_MIGRATE_LOCK - SMP_KR_Q__COUNT] =
		"SELECT pg_advisory_lock(CAST(? AS INTEGER), 0)",
	[L_MIGRATE_UNLOCK - SMP_KR_Q__COUNT] =
		"SELECT pg_advisory_unlock(CAST(? AS INTEGER), 0)",
	[L_HAS_VERSION_TABLE - SMP_KR_Q__COUNT] =
		"SELECT CASE WHEN to_regclass('schema_version') IS NULL "
		"THEN 0 ELSE 1 END",
};

/* Session settings, one round trip after every (re)connection: limits
 * only where the connection string, the role or the server set none. */
#define KPG_SESSION_SQL                                                       \
	"SELECT set_config('statement_timeout', CASE WHEN "                   \
	"current_setting('statement_timeout') = '0' THEN '5s' ELSE "          \
	"current_setting('statement_timeout') END, false), "                  \
	"set_config('idle_in_transaction_session_timeout', CASE WHEN "        \
	"current_setting('idle_in_transaction_session_timeout') = '0' THEN "  \
	"'60s' ELSE current_setting('idle_in_transaction_session_timeout') "  \
	"END, false)"

/* The PostgreSQL half of each migration, by version (the portable half
 * is smp_kr_migrations[]). The events table: see smp_keyring_schema.h. */
#define KPG_EVENTS_FUNCTION                                                   \
	"CREATE FUNCTION smp_events_append_only() RETURNS trigger "           \
	"LANGUAGE plpgsql AS $$ BEGIN "                                       \
	"RAISE EXCEPTION 'events are append-only'; "                          \
	"END $$;"

static const char *const pg_migrations[] = {
	[0] = NULL,
	[1] = "CREATE TABLE events ("
	      "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	      SMP_KR_EVENTS_COLUMNS
	      ");"
	      SMP_KR_EVENTS_INDEXES
	      KPG_EVENTS_FUNCTION
	      "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
	      "FOR EACH ROW EXECUTE PROCEDURE smp_events_append_only();"
	      "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
	      "FOR EACH ROW EXECUTE PROCEDURE smp_events_append_only();"
	      "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
	      "FOR EACH STATEMENT EXECUTE PROCEDURE smp_events_append_only();",
	/* DELETE of events older than SMP_KR_EVENTS_MIN_AGE by the server's
	 * clock (prune); UPDATE, TRUNCATE and younger rows stay refused */
	[2] = "CREATE OR REPLACE FUNCTION smp_events_append_only() "
	      "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	      "IF TG_OP = 'DELETE' THEN "
	      "IF OLD.at < CAST(extract(epoch FROM now()) AS BIGINT) - "
	      SMP_KR_EVENTS_MIN_AGE_SQL " THEN RETURN OLD; END IF; "
	      "RAISE EXCEPTION 'events are append-only: only events older "
	      "than a day can be pruned'; "
	      "END IF; "
	      "RAISE EXCEPTION 'events are append-only'; "
	      "END $$;",
	/* the discovery cache and the known key blocks get the rights the
	 * keys table has, role by role: a milter role given the grants of
	 * doc/keyring.md (DML only, no DDL) goes on working once the owner
	 * has migrated, instead of failing every harvest */
	[3] = "DO $$ DECLARE r record; BEGIN "
	      "FOR r IN SELECT DISTINCT a.grantee, a.privilege_type "
	      "FROM pg_class c, aclexplode(c.relacl) a "
	      "WHERE c.oid = to_regclass('keys') AND a.grantee <> c.relowner "
	      "AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', "
	      "'DELETE') LOOP "
	      "EXECUTE format('GRANT %s ON discovery, known_blocks TO %s', "
	      "r.privilege_type, CASE WHEN r.grantee = 0 THEN 'PUBLIC' "
	      "ELSE quote_ident(pg_get_userbyid(r.grantee)) END); "
	      "END LOOP; END $$;",
};

/* A new schema version needs its PostgreSQL half here before this builds. */
_Static_assert(sizeof(pg_migrations) / sizeof(pg_migrations[0]) ==
		       SMP_KR_SCHEMA_VERSION + 1,
	       "every schema migration needs its PostgreSQL part");

/* Statements that only read: safe to send again after a reconnection. */
static bool reads_only(unsigned q)
{
	switch (q) {
	case SMP_KR_Q_VERSION_GET:
	case SMP_KR_Q_KEY_GET:
	case SMP_KR_Q_BIND_FOR:
	case SMP_KR_Q_BIND_OF_KEY:
	case SMP_KR_Q_BIND_ALL:
	case SMP_KR_Q_BIND_STATE:
	case SMP_KR_Q_EVENTS_FOR:
	case SMP_KR_Q_EVENTS_OF_KEY:
	case SMP_KR_Q_DISC_GET:
	case SMP_KR_Q_DISC_DUE:
	case SMP_KR_Q_DISC_DUE_ANY:
	case SMP_KR_Q_BLOCK_GET:
	case L_HAS_VERSION_TABLE:
		return true;
	default:
		return false;
	}
}

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

static struct kpg *K(struct smp_keyring *kr)
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

static void p_text(struct params *p, const char *v)
{
	p->v[p->n] = v;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void p_i64(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
	p_text(p, p->num[p->n]);
}

static void p_blob(struct params *p, const void *d, size_t n)
{
	/* a NULL value would be SQL NULL, not an empty string */
	p->v[p->n] = d ? (const char *)d : "";
	p->len[p->n] = (int)n;
	p->fmt[p->n] = 1;
	p->n++;
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */

/* A libpq message as one line: its lines joined with "; ", without the
 * tab-indented hint lines libpq adds ("Is the server running ...?"),
 * runs of white space as one space, and no trailing period. */
static void one_line(char *dst, size_t size, const char *src)
{
	size_t n = 0;
	bool space = false, hint = false, bol = true;

	if (!src)
		src = "";
	for (; *src && n + 3 < size; src++) {
		if (*src == '\n') {
			bol = true;
			hint = false;
			continue;
		}
		if (bol) {
			bol = false;
			hint = *src == '\t';
			if (!hint && n > 0) {
				while (n > 0 && (dst[n - 1] == '.' ||
						 dst[n - 1] == ' '))
					n--;
				dst[n++] = ';';
				space = true;
			}
		}
		if (hint)
			continue;
		if (*src == '\t' || *src == '\r' || *src == ' ') {
			space = n > 0;
			continue;
		}
		if (space)
			dst[n++] = ' ';
		space = false;
		dst[n++] = *src;
	}
	while (n > 0 && (dst[n - 1] == '.' || dst[n - 1] == ';'))
		n--;
	dst[n] = '\0';
}

/* The reason a result (may be NULL) failed: the server's primary message,
 * or libpq's when there is none; a lost connection says which server. */
static void set_why(struct kpg *s, const PGresult *res)
{
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			    : NULL;
	char line[KPG_LINE_MAX];

	one_line(line, sizeof(line), m ? m : PQerrorMessage(s->conn));
	/* no SQLSTATE: libpq's own failure. After a failed send libpq still
	 * says CONNECTION_OK until it reads the end of the stream: let it. */
	if ((!res || !PQresultErrorField(res, PG_DIAG_SQLSTATE)) &&
	    PQstatus(s->conn) == CONNECTION_OK)
		PQconsumeInput(s->conn);
	if (!line[0])
		snprintf(line, sizeof(line), "no answer from the server");
	if (PQstatus(s->conn) != CONNECTION_OK)
		snprintf(s->why, sizeof(s->why), "lost the connection to %s "
			 "(%s)", s->name, line);
	else
		snprintf(s->why, sizeof(s->why), "%s", line);
}

/* "what was being done: why". */
__attribute__((format(printf, 2, 3)))
static int fail(struct kpg *s, const char *fmt, ...)
{
	char *m = s->base.errmsg;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(m, sizeof(s->base.errmsg), fmt, ap);
	va_end(ap);
	n = strlen(m);
	snprintf(m + n, sizeof(s->base.errmsg) - n, ": %s", s->why);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* The connection                                                         */

static void describe(struct kpg *s)
{
	const char *db = PQdb(s->conn), *host = PQhost(s->conn),
		   *port = PQport(s->conn), *user = PQuser(s->conn);

	snprintf(s->name, sizeof(s->name),
		 "PostgreSQL database %s (host %s, port %s, user %s)",
		 db && *db ? db : "?", host && *host ? host : "?",
		 port && *port ? port : "?", user && *user ? user : "?");
}

static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* After every (re)connection: prepared statements are gone, and the
 * session limits are set again. */
static int session_setup(struct kpg *s)
{
	PGresult *res;
	int ret = -1;

	memset(s->prepared, 0, sizeof(s->prepared));
	PQsetNoticeProcessor(s->conn, quiet_notices, NULL);
	res = PQexec(s->conn, KPG_SESSION_SQL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		set_why(s, res);
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	return ret;
}

/* Outside a transaction: notices a connection the server closed while it
 * sat idle (a restart sends a message and closes), and connects again. */
static int conn_ready(struct kpg *s)
{
	if (s->txn || s->own)
		return 0;
	if (PQstatus(s->conn) == CONNECTION_OK) {
		struct pollfd pfd = {.fd = PQsocket(s->conn), .events = POLLIN};
		if (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0)
			PQconsumeInput(s->conn);
		if (PQstatus(s->conn) == CONNECTION_OK)
			return 0;
	}
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		char line[KPG_LINE_MAX];
		one_line(line, sizeof(line), PQerrorMessage(s->conn));
		snprintf(s->why, sizeof(s->why), "cannot reach %s (%s)",
			 s->name, line);
		return -1;
	}
	return session_setup(s);
}

/* Did the statement fail only because the connection is gone, with
 * nothing open that a retry would miss? */
static bool retry_after(struct kpg *s, bool was_idle)
{
	return was_idle && !s->txn && !s->own &&
	       PQstatus(s->conn) != CONNECTION_OK && conn_ready(s) == 0;
}

static bool res_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

/* Runs statement q (prepared on first use on this connection). The
 * result, or NULL with the reason in s->why. */
static PGresult *run(struct kpg *s, unsigned q, const struct params *p)
{
	bool was_idle, again = reads_only(q);
	PGresult *res = NULL;
	char name[16];

	if (conn_ready(s) != 0)
		return NULL;
	if ((s->txn || s->own) &&
	    PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
		snprintf(s->why, sizeof(s->why), "the transaction was rolled "
			 "back after an earlier error");
		return NULL;
	}
	if ((s->txn || s->own) && PQstatus(s->conn) != CONNECTION_OK) {
		snprintf(s->why, sizeof(s->why), "lost the connection to %s; "
			 "the transaction was rolled back", s->name);
		return NULL;
	}
	if (p && p->n != s->nparams[q]) {
		snprintf(s->why, sizeof(s->why), "statement %u takes %d "
			 "parameters, not %d", q, s->nparams[q], p->n);
		return NULL;
	}
	snprintf(name, sizeof(name), "smp_kr_%u", q);
	for (;;) {
		was_idle = PQtransactionStatus(s->conn) == PQTRANS_IDLE;
		if (!s->prepared[q]) {
			res = PQprepare(s->conn, name, s->sql[q], s->nparams[q],
					NULL);
			if (PQresultStatus(res) == PGRES_COMMAND_OK) {
				s->prepared[q] = true;
				PQclear(res);
				res = NULL;
			}
		}
		if (s->prepared[q])
			res = PQexecPrepared(s->conn, name, p ? p->n : 0,
					     p ? p->v : NULL, p ? p->len : NULL,
					     p ? p->fmt : NULL, 0);
		if (res_ok(res))
			return res;
		set_why(s, res);
		PQclear(res);
		res = NULL;
		if (!again || !retry_after(s, was_idle))
			return NULL;
		again = false;
	}
}

/* Transaction control and DDL: the simple protocol. 0 or -1 (s->why). */
static int exec_simple(struct kpg *s, const char *sql)
{
	PGresult *res = PQexec(s->conn, sql);
	int ret = 0;

	if (!res_ok(res)) {
		set_why(s, res);
		ret = -1;
	}
	PQclear(res);
	return ret;
}

/* BEGIN, reconnecting once if the connection turns out to be gone. */
static int begin_q(struct kpg *s, const char *sql)
{
	bool was_idle;

	if (conn_ready(s) != 0)
		return -1;
	was_idle = PQtransactionStatus(s->conn) == PQTRANS_IDLE;
	if (exec_simple(s, sql) == 0)
		return 0;
	if (!retry_after(s, was_idle))
		return -1;
	return exec_simple(s, sql);
}

static void rollback_quietly(struct kpg *s)
{
	if (PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		PGresult *res = PQexec(s->conn, "ROLLBACK");
		PQclear(res);
	}
}

/* COMMIT; an aborted transaction answers COMMIT with ROLLBACK, which is a
 * failure here. */
static int commit_q(struct kpg *s)
{
	PGresult *res;
	int ret = -1;

	if (PQstatus(s->conn) != CONNECTION_OK) {
		snprintf(s->why, sizeof(s->why), "lost the connection to %s; "
			 "the transaction was rolled back", s->name);
		return -1;
	}
	if (PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
		snprintf(s->why, sizeof(s->why), "the transaction was rolled "
			 "back after an earlier error");
		rollback_quietly(s);
		return -1;
	}
	res = PQexec(s->conn, "COMMIT");
	if (!res_ok(res)) {
		set_why(s, res);
		goto out;
	}
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		snprintf(s->why, sizeof(s->why), "the server rolled the "
			 "transaction back");
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Transactions                                                           */

#define BEGIN_RC "BEGIN ISOLATION LEVEL READ COMMITTED"

/* Every write made of several statements runs in a transaction: the
 * caller's, or one of its own (*own) that wend() ends. */
__attribute__((format(printf, 3, 4)))
static int wbegin(struct kpg *s, bool *own, const char *fmt, ...)
{
	char what[SMP_KR_ERRMSG_MAX / 2];
	va_list ap;

	*own = false;
	if (s->txn)
		return 0;   /* run() reports an aborted or lost transaction */
	if (begin_q(s, BEGIN_RC) == 0) {
		*own = s->own = true;
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(s, "%s", what);
}

/* Ends wbegin()'s own transaction: commits when rc >= 0, else rolls back.
 * Returns rc, or -1 when the commit fails. */
__attribute__((format(printf, 4, 5)))
static int wend(struct kpg *s, bool own, int rc, const char *fmt, ...)
{
	char what[SMP_KR_ERRMSG_MAX / 2];
	va_list ap;

	if (!own)
		return rc;
	s->own = false;
	if (rc >= 0) {
		if (commit_q(s) == 0)
			return rc;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		rc = fail(s, "%s", what);
	}
	rollback_quietly(s);
	return rc;
}

static int kpg_begin(struct smp_keyring *kr)
{
	struct kpg *s = K(kr);

	if (s->txn)
		return smp_kr_error(kr, "cannot start a transaction on %s: "
				    "one is already open", s->name);
	if (begin_q(s, BEGIN_RC) != 0)
		return fail(s, "cannot start a transaction on %s", s->name);
	s->txn = true;
	return 0;
}

static int kpg_commit(struct smp_keyring *kr)
{
	struct kpg *s = K(kr);

	if (!s->txn)
		return smp_kr_error(kr, "cannot commit to %s: no transaction "
				    "is open", s->name);
	s->txn = false;
	if (commit_q(s) != 0) {
		fail(s, "cannot commit to %s", s->name);
		rollback_quietly(s);
		return -1;
	}
	return 0;
}

/* Rolling back when nothing is open is not an error (see smp_keyring.h);
 * neither is a connection that is gone (the server rolled back). */
static int kpg_rollback(struct smp_keyring *kr)
{
	struct kpg *s = K(kr);

	if (!s->txn)
		return 0;
	s->txn = false;
	if (PQstatus(s->conn) != CONNECTION_OK ||
	    PQtransactionStatus(s->conn) == PQTRANS_IDLE)
		return 0;
	if (exec_simple(s, "ROLLBACK") != 0)
		return fail(s, "cannot roll back on %s", s->name);
	return 0;
}

/* Inside the caller's transaction: an advisory lock on name, held until
 * it ends (see the top of the file). Outside one there is nothing to
 * hold it for. */
static int lock_in_txn(struct kpg *s, int ns, const char *name)
{
	struct params p = {0};
	PGresult *res;
	uint32_t h = 2166136261u;   /* FNV-1a */

	if (!s->txn)
		return 0;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = (h ^ *c) * 16777619u;
	p_i64(&p, ns);
	p_i64(&p, (int64_t)(h & 0x7FFFFFFF));
	res = run(s, L_LOCK, &p);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

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

static int64_t col_i64(const PGresult *r, int row, int i)
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
	bits = col_i64(r, row, 3);
	k->bits = bits < 0 || bits > UINT32_MAX ? 0 : (unsigned)bits;
	k->created = col_i64(r, row, 4);
	k->expires = col_i64(r, row, 5);
	k->revoked = col_i64(r, row, 6) != 0;
	k->blocked = col_i64(r, row, 7) != 0;
	k->updated = col_i64(r, row, 9);
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
	b->first_seen = col_i64(r, row, 4);
	b->last_seen = col_i64(r, row, 5);
	b->msg_date = col_i64(r, row, 6);
	times = col_i64(r, row, 7);
	b->times_seen = times < 0 ? 0 : times > UINT32_MAX ? UINT32_MAX
							   : (unsigned)times;
	b->self_encrypted = col_i64(r, row, 10) != 0;
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
	e->id = col_i64(r, row, 0);
	e->at = col_i64(r, row, 1);
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
	res = run(s, q, &p);
	if (!res) {
		fail(s, "cannot %s%s", what, arg);
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
static int write_q(struct kpg *s, unsigned q, const struct params *p,
		   long *n)
{
	PGresult *res = run(s, q, p);

	if (!res)
		return -1;
	if (n)
		*n = changed(res);
	PQclear(res);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */

static int kpg_key_get(struct smp_keyring *kr, const char *fpr,
		       struct smp_key_rec *out)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	PGresult *res = NULL;
	const char *bad;
	int ret = -1;

	if (lock_in_txn(s, KPG_LOCK_KEY, fpr) != 0) {
		fail(s, "cannot read key %s", fpr);
		goto out;
	}
	p_text(&p, fpr);
	res = run(s, SMP_KR_Q_KEY_GET, &p);
	if (!res) {
		fail(s, "cannot read key %s", fpr);
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

static int kpg_key_put(struct smp_keyring *kr, const struct smp_key_rec *k)
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
	if (write_q(s, SMP_KR_Q_KEY_PUT, &p, NULL) != 0)
		return fail(s, "cannot store key %s", k->fpr);
	return 0;
}

/* Records the bindings about to go, then deletes the key; the bindings
 * follow through ON DELETE CASCADE. */
static int kpg_key_delete(struct smp_keyring *kr, const char *fpr,
			  int64_t now)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	char detail[64];
	long nbind = 0, nkey = 0;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot delete key %s", fpr) != 0)
		return -1;
	p_i64(&p, now);
	p_text(&p, "key deleted");
	p_text(&p, fpr);
	if (write_q(s, SMP_KR_Q_KEY_DELETE_EVENTS, &p, &nbind) != 0)
		goto bad;
	memset(&p, 0, sizeof(p));
	p_text(&p, fpr);
	if (write_q(s, SMP_KR_Q_KEY_DELETE, &p, &nkey) != 0)
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
	if (write_q(s, SMP_KR_Q_EVENT_ADD, &p, NULL) != 0)
		goto bad;
	ret = 0;
	goto out;
bad:
	fail(s, "cannot delete key %s", fpr);
out:
	return wend(s, own, ret, "cannot delete key %s", fpr);
}

static int kpg_key_set_blocked(struct smp_keyring *kr, const char *fpr,
			       bool blocked, int64_t now)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	long n = 0;

	p_i64(&p, blocked);
	p_i64(&p, now);
	p_text(&p, fpr);
	if (write_q(s, SMP_KR_Q_KEY_SET_BLOCKED, &p, &n) != 0)
		return fail(s, "cannot %s key %s",
			    blocked ? "block" : "unblock", fpr);
	return n == 0 ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Bindings                                                               */

static int kpg_bindings_for(struct smp_keyring *kr, const char *address,
			    struct smp_binding **out, size_t *n)
{
	struct kpg *s = K(kr);

	if (lock_in_txn(s, KPG_LOCK_ADDRESS, address) != 0) {
		*out = NULL;
		*n = 0;
		return fail(s, "cannot read the bindings of %s", address);
	}
	return list_q(s, SMP_KR_Q_BIND_FOR, address, ROW_BINDING,
		      (void **)out, n, "read the bindings of ");
}

static int kpg_bindings_of_key(struct smp_keyring *kr, const char *fpr,
			       struct smp_binding **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_BIND_OF_KEY, fpr, ROW_BINDING,
		      (void **)out, n, "read the bindings of key ");
}

static int kpg_bindings_list(struct smp_keyring *kr, int state,
			     struct smp_binding **out, size_t *n)
{
	if (state < 0)
		return list_q(K(kr), SMP_KR_Q_BIND_ALL, NULL, ROW_BINDING,
			      (void **)out, n, "list the bindings");
	return list_q(K(kr), SMP_KR_Q_BIND_STATE,
		      smp_bind_state_name((enum smp_bind_state)state),
		      ROW_BINDING, (void **)out, n, "list the bindings in state ");
}

static int kpg_binding_put(struct smp_keyring *kr, const struct smp_binding *b)
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
	if (write_q(s, SMP_KR_Q_BIND_PUT, &p, NULL) != 0)
		return fail(s, "cannot store binding %s %s", b->address,
			    b->fpr);
	return 0;
}

static int kpg_binding_set_state(struct smp_keyring *kr, const char *address,
				 const char *fpr, enum smp_bind_state state)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	long n = 0;

	p_text(&p, smp_bind_state_name(state));
	p_text(&p, address);
	p_text(&p, fpr);
	if (write_q(s, SMP_KR_Q_BIND_SET_STATE, &p, &n) != 0)
		return fail(s, "cannot change binding %s %s", address, fpr);
	return n == 0 ? 1 : 0;
}

static int kpg_binding_delete(struct smp_keyring *kr, const char *address,
			      const char *fpr, int64_t now)
{
	struct kpg *s = K(kr);
	const char *f = fpr ? fpr : "(all keys)";
	struct params p = {0};
	long n = 0;
	bool own;
	int ret = -1;

	if (wbegin(s, &own, "cannot delete binding %s %s", address, f) != 0)
		return -1;
	p_i64(&p, now);
	p_text(&p, "deleted");
	p_text(&p, address);
	if (fpr)
		p_text(&p, fpr);
	if (write_q(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE_EVENTS
			   : SMP_KR_Q_BIND_DELETE_ADDR_EVENTS, &p, NULL) != 0)
		goto bad;
	memset(&p, 0, sizeof(p));
	p_text(&p, address);
	if (fpr)
		p_text(&p, fpr);
	if (write_q(s, fpr ? SMP_KR_Q_BIND_DELETE_ONE
			   : SMP_KR_Q_BIND_DELETE_ADDR, &p, &n) != 0)
		goto bad;
	ret = n == 0 ? 1 : 0;
	goto out;
bad:
	fail(s, "cannot delete binding %s %s", address, f);
out:
	return wend(s, own, ret, "cannot delete binding %s %s", address, f);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                 */

static int kpg_event_add(struct smp_keyring *kr, const struct smp_event *e)
{
	struct kpg *s = K(kr);
	struct params p = {0};

	p_i64(&p, e->at);
	p_text(&p, e->address);
	p_text(&p, e->fpr);
	p_text(&p, e->event);
	p_text(&p, e->detail);
	p_text(&p, e->message_id);
	if (write_q(s, SMP_KR_Q_EVENT_ADD, &p, NULL) != 0)
		return fail(s, "cannot record event %s", e->event);
	return 0;
}

static int kpg_events_for(struct smp_keyring *kr, const char *address,
			  struct smp_event **out, size_t *n)
{
	return list_q(K(kr), SMP_KR_Q_EVENTS_FOR, address, ROW_EVENT,
		      (void **)out, n, "read the history of ");
}

static int kpg_events_of_key(struct smp_keyring *kr, const char *fpr,
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

static int kpg_replay_check(struct smp_keyring *kr, const char *digest,
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
	if (write_q(s, SMP_KR_Q_REPLAY_CHECK, &p, &n) != 0)
		return fail(s, "cannot check replay of %s", recipient);
	/* no row changed: the pair is there and still inside the window */
	*seen = n == 0;
	return 0;
}

static int kpg_replay_prune(struct smp_keyring *kr, int64_t now,
			    int64_t window)
{
	struct kpg *s = K(kr);
	struct params p = {0};

	p_i64(&p, cutoff(now, window));
	if (write_q(s, SMP_KR_Q_REPLAY_PRUNE, &p, NULL) != 0)
		return fail(s, "cannot prune the replay log");
	return 0;
}

/* Deletes with one cutoff parameter; *n gets the rows deleted. */
static int delete_before(struct kpg *s, unsigned q, int64_t before,
			 unsigned long *n)
{
	struct params p = {0};
	long c = 0;

	p_i64(&p, before);
	if (write_q(s, q, &p, &c) != 0)
		return -1;
	*n = c < 0 ? 0 : (unsigned long)c;
	return 0;
}

static int kpg_prune(struct smp_keyring *kr, int64_t now, int64_t events_before,
		     int64_t replay_before, unsigned long *events,
		     unsigned long *replay_entries)
{
	struct kpg *s = K(kr);
	struct params p = {0};
	char detail[96];
	bool own;
	int ret = -1;

	*events = *replay_entries = 0;
	if (wbegin(s, &own, "cannot prune %s", s->name) != 0)
		return -1;
	if (events_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_EVENTS_PRUNE, events_before,
			  events) != 0) {
		fail(s, "cannot prune the event history in %s", s->name);
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
		if (write_q(s, SMP_KR_Q_EVENT_ADD, &p, NULL) != 0) {
			fail(s, "cannot record event %s",
			     SMP_EVENT_EVENTS_PRUNED);
			goto out;
		}
	}
	if (replay_before != INT64_MIN &&
	    delete_before(s, SMP_KR_Q_REPLAY_PRUNE, replay_before,
			  replay_entries) != 0) {
		fail(s, "cannot prune the replay log in %s", s->name);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		*events = *replay_entries = 0;
	return wend(s, own, ret, "cannot prune %s", s->name);
}

/* ---------------------------------------------------------------------- */
/* Statistics                                                             */

static int count_q(struct kpg *s, unsigned q, unsigned long *v)
{
	PGresult *res = run(s, q, NULL);

	if (!res)
		return -1;
	*v = PQntuples(res) ? (unsigned long)col_i64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/* Several counts from one snapshot: a REPEATABLE READ transaction around
 * them (inside the caller's, its own snapshot rules). */
static int kpg_stats(struct smp_keyring *kr, struct smp_keyring_stats *out)
{
	struct kpg *s = K(kr);
	PGresult *res = NULL;
	int ret = -1;

	if (!s->txn) {
		if (begin_q(s, "BEGIN ISOLATION LEVEL REPEATABLE READ "
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
	res = run(s, SMP_KR_Q_STATS_STATES, NULL);
	if (!res)
		goto bad;
	for (int i = 0; i < PQntuples(res); i++) {
		int state = smp_bind_state_parse(PQgetvalue(res, i, 0));
		if (state < 0) {
			smp_kr_error(kr, "cannot count the contents of %s: a "
				     "binding has an unknown state", s->name);
			goto out;
		}
		out->bindings[state] = (unsigned long)col_i64(res, i, 1);
	}
	if (s->own) {
		s->own = false;
		if (commit_q(s) != 0)
			goto bad;
	}
	ret = 0;
	goto out;
bad:
	fail(s, "cannot count the contents of %s", s->name);
out:
	PQclear(res);
	if (s->own) {
		s->own = false;
		rollback_quietly(s);
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
	res = run(s, x->q, &p);
	if (!res)
		return fail(s, "cannot %s", what);
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
static int kpg_exec(struct smp_keyring *kr, struct smp_kr_stmt *x, size_t n,
		    bool write, const char *what)
{
	struct kpg *s = K(kr);
	bool own = false;
	int ret = -1;

	if (write && n > 1 && wbegin(s, &own, "cannot %s", what) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (exec_one(s, &x[i], what) != 0)
			goto out;
	ret = 0;
out:
	return wend(s, own, ret, "cannot %s", what);
}

/* ---------------------------------------------------------------------- */
/* Open, schema, close                                                    */

static int kpg_schema_version(struct smp_keyring *kr)
{
	return K(kr)->version;
}

/* A connection the server dropped is connected again by the next call
 * (see the top of the file): nothing here is ever unusable for good, so
 * the daemon's pool keeps it. */
static int kpg_check(struct smp_keyring *kr)
{
	(void)kr;
	return 0;
}

/* '?' -> $1, $2, ... (the portability rules in smp_keyring_schema.h
 * promise no '?' anywhere else). NULL on ENOMEM. */
static char *rewrite_params(const char *sql, int *nparams)
{
	size_t len = strlen(sql), q = 0, o = 0;
	char *out;
	int n = 0;

	for (const char *c = sql; *c; c++)
		q += *c == '?';
	out = malloc(len + q * 4 + 1);
	if (!out)
		return NULL;
	for (const char *c = sql; *c; c++) {
		if (*c == '?')
			o += (size_t)sprintf(out + o, "$%d", ++n);
		else
			out[o++] = *c;
	}
	out[o] = '\0';
	*nparams = n;
	return out;
}

static bool is_word(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/* The portable DDL in PostgreSQL's words: BLOB is BYTEA, and every TEXT
 * column compares and sorts byte for byte (COLLATE "C"), as in SQLite.
 * Only whole words outside quotes. NULL on ENOMEM. */
static char *ddl_for_pg(const char *ddl)
{
	static const struct { const char *from, *to; } subst[] = {
		{"BLOB", "BYTEA"},
		{"TEXT", "TEXT COLLATE \"C\""},
	};
	size_t len = strlen(ddl), o = 0;
	char *out = malloc(len * 3 + 1);
	bool quoted = false;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t w = 0;
		bool done = false;

		if (ddl[i] == '\'')
			quoted = !quoted;
		if (!quoted && (i == 0 || !is_word(ddl[i - 1]))) {
			while (i + w < len && is_word(ddl[i + w]))
				w++;
			for (size_t k = 0; w && k < 2 && !done; k++) {
				size_t fl = strlen(subst[k].from);
				if (w == fl && !memcmp(ddl + i, subst[k].from, fl)) {
					o += (size_t)sprintf(out + o, "%s",
							     subst[k].to);
					i += w;
					done = true;
				}
			}
		}
		if (!done)
			out[o++] = ddl[i++];
	}
	out[o] = '\0';
	return out;
}

/* 0 for a database without the keyring schema. */
static int read_version(struct kpg *s, int *v)
{
	PGresult *res;

	*v = 0;
	res = run(s, L_HAS_VERSION_TABLE, NULL);
	if (!res)
		return -1;
	if (col_i64(res, 0, 0) == 0) {
		PQclear(res);
		return 0;
	}
	PQclear(res);
	res = run(s, SMP_KR_Q_VERSION_GET, NULL);
	if (!res)
		return -1;
	*v = (int)col_i64(res, 0, 0);
	PQclear(res);
	return 0;
}

static int too_new(struct kpg *s, int v)
{
	return smp_kr_error(&s->base, "cannot open keyring database %s: its "
			    "schema version is %d, newer than the %d this "
			    "program knows; use a newer smp-milter and smpctl",
			    s->name, v, SMP_KR_SCHEMA_VERSION);
}

/* One migration step's DDL (portable, then PostgreSQL's), converted. */
static int run_ddl(struct kpg *s, const char *ddl)
{
	char *sql;
	int ret;

	if (!ddl || !*ddl)
		return 0;
	sql = ddl_for_pg(ddl);
	if (!sql) {
		snprintf(s->why, sizeof(s->why), "out of memory");
		return -1;
	}
	ret = exec_simple(s, sql);
	free(sql);
	return ret;
}

/* Applies every migration newer than the stored version, all in one
 * transaction, holding an advisory lock from before it begins until after
 * it ends: two hosts starting at once apply them once, and a failure
 * leaves the database as it was. */
static int migrate(struct kpg *s)
{
	struct params p = {0};
	PGresult *res = NULL;
	bool locked = false;
	int v, ret = -1;

	if (read_version(s, &v) != 0)
		return fail(s, "cannot open keyring database %s", s->name);
	if (v > SMP_KR_SCHEMA_VERSION)
		return too_new(s, v);
	if (v == 0 && (s->flags & SMP_KEYRING_NO_CREATE))
		return smp_kr_error(&s->base, "cannot open keyring database "
				    "%s: it holds no keyring (no schema_version "
				    "table in the search path)", s->name);
	if (v == SMP_KR_SCHEMA_VERSION)
		goto done;

	p_i64(&p, KPG_LOCK_MIGRATE);
	res = run(s, L_MIGRATE_LOCK, &p);
	if (!res) {
		fail(s, "cannot create the schema in %s", s->name);
		goto out;
	}
	PQclear(res);
	res = NULL;
	locked = true;
	if (begin_q(s, BEGIN_RC) != 0) {
		fail(s, "cannot create the schema in %s", s->name);
		goto out;
	}
	s->own = true;
	/* another host may have migrated while we waited for the lock */
	if (read_version(s, &v) != 0) {
		fail(s, "cannot open keyring database %s", s->name);
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
		memset(&p, 0, sizeof(p));
		p_i64(&p, m->version);
		p_i64(&p, (int64_t)time(NULL));
		if (run_ddl(s, m->portable) != 0 ||
		    run_ddl(s, pg_migrations[m->version]) != 0 ||
		    write_q(s, SMP_KR_Q_VERSION_ADD, &p, NULL) != 0) {
			fail(s, "cannot migrate %s to schema version %d",
			     s->name, m->version);
			goto out;
		}
	}
	s->own = false;
	if (commit_q(s) != 0) {
		fail(s, "cannot create the schema in %s", s->name);
		goto out;
	}
	s->base.created = v == 0;
	ret = 0;
out:
	if (s->own) {
		s->own = false;
		rollback_quietly(s);
	}
	if (locked) {
		memset(&p, 0, sizeof(p));
		p_i64(&p, KPG_LOCK_MIGRATE);
		PQclear(run(s, L_MIGRATE_UNLOCK, &p));
	}
	if (ret != 0)
		return ret;
done:
	s->version = SMP_KR_SCHEMA_VERSION;
	return 0;
}

static void kpg_close(struct smp_keyring *kr)
{
	struct kpg *s = K(kr);

	if (!s)
		return;
	/* an open transaction is rolled back by the server */
	PQfinish(s->conn);
	for (size_t i = 0; i < L__END; i++)
		free(s->sql[i]);
	free(s);
}

/* A libpq message about the connection string may quote parts of it (a
 * URI whole): those parts are left out, a password may be among them. */
static void conninfo_error(char *err, size_t errlen, const char *msg)
{
	char line[KPG_LINE_MAX], out[SMP_KR_ERRMSG_MAX / 2];
	size_t o = 0;
	bool quoted = false;

	one_line(line, sizeof(line), msg);
	for (const char *c = line; *c && o + 4 < sizeof(out); c++) {
		if (*c == '"') {
			if (!quoted) {
				memcpy(out + o, "\"...", 4);
				o += 4;
			} else {
				out[o++] = '"';
			}
			quoted = !quoted;
		} else if (!quoted) {
			out[o++] = *c;
		}
	}
	out[o] = '\0';
	snprintf(err, errlen, "cannot open the PostgreSQL keyring: "
		 "keyring.conninfo is not a libpq connection string or URI: "
		 "%s", out);
}

static int kpg_open(const char *target, unsigned flags,
		    struct smp_keyring **out, char *err, size_t errlen)
{
	/* defaults first: what the connection string says overrides them
	 * (expand_dbname); client_encoding last, so nothing overrides it */
	static const char *const keys[] = {
		"connect_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "fallback_application_name", "dbname",
		"client_encoding", NULL,
	};
	const char *vals[] = {
		"10", "30", "10", "3", "smp-milter", target, "UTF8", NULL,
	};
	PQconninfoOption *opts;
	struct kpg *s;
	char *perr = NULL;
	const char *enc;

	opts = PQconninfoParse(target, &perr);
	if (!opts) {
		conninfo_error(err, errlen, perr ? perr : "out of memory");
		PQfreemem(perr);
		return -1;
	}
	PQconninfoFree(opts);

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "cannot open the PostgreSQL keyring: out "
			 "of memory");
		return -1;
	}
	s->base.ops = &smp_keyring_pg_ops;
	s->flags = flags;
	for (unsigned q = 0; q < L__END; q++) {
		s->sql[q] = rewrite_params(q < SMP_KR_Q__COUNT ? smp_kr_sql[q] :
					   local_sql[q - SMP_KR_Q__COUNT],
					   &s->nparams[q]);
		if (!s->sql[q]) {
			snprintf(err, errlen, "cannot open the PostgreSQL "
				 "keyring: out of memory");
			kpg_close(&s->base);
			return -1;
		}
	}
	s->conn = PQconnectdbParams(keys, vals, 1);
	if (!s->conn) {
		snprintf(err, errlen, "cannot open the PostgreSQL keyring: out "
			 "of memory");
		kpg_close(&s->base);
		return -1;
	}
	describe(s);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		char line[KPG_LINE_MAX];
		one_line(line, sizeof(line), PQerrorMessage(s->conn));
		smp_kr_error(&s->base, "cannot open keyring database %s: %s",
			     s->name, line);
		goto bad;
	}
	enc = PQparameterStatus(s->conn, "server_encoding");
	if (!enc || strcmp(enc, "UTF8") != 0) {
		smp_kr_error(&s->base, "cannot open keyring database %s: its "
			     "encoding is %s; the keyring needs UTF8 (CREATE "
			     "DATABASE ... ENCODING 'UTF8')", s->name,
			     enc ? enc : "unknown");
		goto bad;
	}
	if (session_setup(s) != 0) {
		fail(s, "cannot open keyring database %s", s->name);
		goto bad;
	}
	if (migrate(s) != 0)
		goto bad;
	*out = &s->base;
	return 0;
bad:
	snprintf(err, errlen, "%s", s->base.errmsg);
	kpg_close(&s->base);
	return -1;
}

const struct smp_keyring_ops smp_keyring_pg_ops = {
	.name = "postgresql",
	.open = kpg_open,
	.close = kpg_close,
	.check = kpg_check,
	.schema_version = kpg_schema_version,
	.begin = kpg_begin,
	.commit = kpg_commit,
	.rollback = kpg_rollback,
	.key_get = kpg_key_get,
	.key_put = kpg_key_put,
	.key_delete = kpg_key_delete,
	.key_set_blocked = kpg_key_set_blocked,
	.bindings_for = kpg_bindings_for,
	.bindings_of_key = kpg_bindings_of_key,
	.bindings_list = kpg_bindings_list,
	.binding_put = kpg_binding_put,
	.binding_set_state = kpg_binding_set_state,
	.binding_delete = kpg_binding_delete,
	.event_add = kpg_event_add,
	.events_for = kpg_events_for,
	.events_of_key = kpg_events_of_key,
	.replay_check = kpg_replay_check,
	.replay_prune = kpg_replay_prune,
	.prune = kpg_prune,
	.stats = kpg_stats,
	.exec = kpg_exec,
};
