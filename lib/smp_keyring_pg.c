/* smp_keyring_pg.c - the PostgreSQL keyring backend (SPEC.md 4): one
 * database shared by the milters of several MTA hosts and their smpctl.
 *
 * Everything specific to PostgreSQL lives in this backend: libpq, the
 * connection and its recovery, the placeholder rewrite, the per-backend
 * half of every migration, the locks. The SQL itself comes from
 * smp_keyring_schema.h. The backend is split by role:
 *   smp_keyring_pg.c       this file: the connection (errors, recovery,
 *                          statements, transactions, advisory locks,
 *                          open, migrations, close) and the ops table
 *   smp_keyring_pg_rows.c  the rows: row readers, keys, bindings,
 *                          events, the replay log, pruning, statistics,
 *                          ops->exec
 *   smp_keyring_pg_int.h   what the two share (struct kpg, parameters)
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

#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp_keyring_pg_int.h"
#include "smp_keyring_schema.h"

#define KPG_LINE_MAX 400 /* one libpq message, flattened */

/* The statements only this backend has (smp_keyring_pg_int.h). */
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
int smp_kpg_fail(struct kpg *s, const char *fmt, ...)
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
PGresult *smp_kpg_run(struct kpg *s, unsigned q, const struct params *p)
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
int smp_kpg_begin_q(struct kpg *s, const char *sql)
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

void smp_kpg_rollback_quietly(struct kpg *s)
{
	if (PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		PGresult *res = PQexec(s->conn, "ROLLBACK");
		PQclear(res);
	}
}

/* COMMIT; an aborted transaction answers COMMIT with ROLLBACK, which is a
 * failure here. */
int smp_kpg_commit_q(struct kpg *s)
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
		smp_kpg_rollback_quietly(s);
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
 * caller's, or one of its own (*own) that smp_kpg_wend() ends. */
__attribute__((format(printf, 3, 4)))
int smp_kpg_wbegin(struct kpg *s, bool *own, const char *fmt, ...)
{
	char what[SMP_KR_ERRMSG_MAX / 2];
	va_list ap;

	*own = false;
	if (s->txn)
		return 0;   /* smp_kpg_run() reports an aborted or lost
			     * transaction */
	if (smp_kpg_begin_q(s, BEGIN_RC) == 0) {
		*own = s->own = true;
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return smp_kpg_fail(s, "%s", what);
}

/* Ends smp_kpg_wbegin()'s own transaction: commits when rc >= 0, else
 * rolls back. Returns rc, or -1 when the commit fails. */
__attribute__((format(printf, 4, 5)))
int smp_kpg_wend(struct kpg *s, bool own, int rc, const char *fmt, ...)
{
	char what[SMP_KR_ERRMSG_MAX / 2];
	va_list ap;

	if (!own)
		return rc;
	s->own = false;
	if (rc >= 0) {
		if (smp_kpg_commit_q(s) == 0)
			return rc;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		rc = smp_kpg_fail(s, "%s", what);
	}
	smp_kpg_rollback_quietly(s);
	return rc;
}

static int kpg_begin(struct smp_keyring *kr)
{
	struct kpg *s = K(kr);

	if (s->txn)
		return smp_kr_error(kr, "cannot start a transaction on %s: "
				    "one is already open", s->name);
	if (smp_kpg_begin_q(s, BEGIN_RC) != 0)
		return smp_kpg_fail(s, "cannot start a transaction on %s",
				    s->name);
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
	if (smp_kpg_commit_q(s) != 0) {
		smp_kpg_fail(s, "cannot commit to %s", s->name);
		smp_kpg_rollback_quietly(s);
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
		return smp_kpg_fail(s, "cannot roll back on %s", s->name);
	return 0;
}

/* Inside the caller's transaction: an advisory lock on name, held until
 * it ends (see the top of the file). Outside one there is nothing to
 * hold it for. */
int smp_kpg_lock_in_txn(struct kpg *s, int ns, const char *name)
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
	res = smp_kpg_run(s, L_LOCK, &p);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
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
	res = smp_kpg_run(s, L_HAS_VERSION_TABLE, NULL);
	if (!res)
		return -1;
	if (smp_kpg_col_i64(res, 0, 0) == 0) {
		PQclear(res);
		return 0;
	}
	PQclear(res);
	res = smp_kpg_run(s, SMP_KR_Q_VERSION_GET, NULL);
	if (!res)
		return -1;
	*v = (int)smp_kpg_col_i64(res, 0, 0);
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
		return smp_kpg_fail(s, "cannot open keyring database %s",
				    s->name);
	if (v > SMP_KR_SCHEMA_VERSION)
		return too_new(s, v);
	if (v == 0 && (s->flags & SMP_KEYRING_NO_CREATE))
		return smp_kr_error(&s->base, "cannot open keyring database "
				    "%s: it holds no keyring (no schema_version "
				    "table in the search path)", s->name);
	if (v == SMP_KR_SCHEMA_VERSION)
		goto done;

	p_i64(&p, KPG_LOCK_MIGRATE);
	res = smp_kpg_run(s, L_MIGRATE_LOCK, &p);
	if (!res) {
		smp_kpg_fail(s, "cannot create the schema in %s", s->name);
		goto out;
	}
	PQclear(res);
	res = NULL;
	locked = true;
	if (smp_kpg_begin_q(s, BEGIN_RC) != 0) {
		smp_kpg_fail(s, "cannot create the schema in %s", s->name);
		goto out;
	}
	s->own = true;
	/* another host may have migrated while we waited for the lock */
	if (read_version(s, &v) != 0) {
		smp_kpg_fail(s, "cannot open keyring database %s", s->name);
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
		    smp_kpg_write_q(s, SMP_KR_Q_VERSION_ADD, &p, NULL) != 0) {
			smp_kpg_fail(s,
				     "cannot migrate %s to schema version %d",
				     s->name, m->version);
			goto out;
		}
	}
	s->own = false;
	if (smp_kpg_commit_q(s) != 0) {
		smp_kpg_fail(s, "cannot create the schema in %s", s->name);
		goto out;
	}
	s->base.created = v == 0;
	ret = 0;
out:
	if (s->own) {
		s->own = false;
		smp_kpg_rollback_quietly(s);
	}
	if (locked) {
		memset(&p, 0, sizeof(p));
		p_i64(&p, KPG_LOCK_MIGRATE);
		PQclear(smp_kpg_run(s, L_MIGRATE_UNLOCK, &p));
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
		smp_kpg_fail(s, "cannot open keyring database %s", s->name);
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
	.key_get = smp_kpg_key_get,
	.key_put = smp_kpg_key_put,
	.key_delete = smp_kpg_key_delete,
	.key_set_blocked = smp_kpg_key_set_blocked,
	.bindings_for = smp_kpg_bindings_for,
	.bindings_of_key = smp_kpg_bindings_of_key,
	.bindings_list = smp_kpg_bindings_list,
	.binding_put = smp_kpg_binding_put,
	.binding_set_state = smp_kpg_binding_set_state,
	.binding_delete = smp_kpg_binding_delete,
	.event_add = smp_kpg_event_add,
	.events_for = smp_kpg_events_for,
	.events_of_key = smp_kpg_events_of_key,
	.replay_check = smp_kpg_replay_check,
	.replay_prune = smp_kpg_replay_prune,
	.prune = smp_kpg_prune,
	.stats = smp_kpg_stats,
	.exec = smp_kpg_exec,
};
