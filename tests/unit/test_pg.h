/* test_pg.h - a real PostgreSQL server for the keyring tests.
 *
 * The server: SMP_TEST_PG_CONNINFO when set (tests/run-tests.sh starts
 * one with tests/pg/pg-start.sh and sets it), else one of this test
 * binary's own, started the same way in a fresh /tmp directory and
 * stopped by PID (tests/pg/pg-stop.sh) when the binary exits. Never the
 * system's cluster: the servers listen on a unix socket in their own
 * directory only. There is no silent skip: a test that needs the server
 * fails when it cannot have one.
 *
 * Each test gets a schema of its own (tpg_schema_new): the connection
 * string it returns sets search_path to it, so the keyring's tables are
 * created there and dropped with it.
 *
 * All functions are static inline like test_util.h's.
 */
#ifndef SMP_TEST_PG_H
#define SMP_TEST_PG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "fixtures"
#endif
#define TPG_SCRIPTS FIXTURES_DIR "/../tests/pg"

#define TPG_CONNINFO_MAX 512

/* A server of this process's own: its directory and base conninfo. */
struct tpg_server {
	char dir[64];
	char conninfo[TPG_CONNINFO_MAX];
};

static struct tpg_server tpg_own;

static inline int tpg_run(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int tpg_run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* Starts (again, on the same data) the server in srv->dir; 0 or -1. A new
 * srv (dir[0] == '\0') gets a fresh directory. */
static inline int tpg_start(struct tpg_server *srv)
{
	char path[128];
	FILE *f;
	size_t n;

	if (!srv->dir[0]) {
		snprintf(srv->dir, sizeof(srv->dir), "/tmp/smppg.XXXXXX");
		if (!mkdtemp(srv->dir)) {
			srv->dir[0] = '\0';
			return -1;
		}
	}
	if (tpg_run("%s/pg-start.sh %s >/dev/null", TPG_SCRIPTS, srv->dir) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/conninfo", srv->dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(srv->conninfo, 1, sizeof(srv->conninfo) - 1, f);
	fclose(f);
	srv->conninfo[n] = '\0';
	while (n > 0 && (srv->conninfo[n - 1] == '\n'))
		srv->conninfo[--n] = '\0';
	return n ? 0 : -1;
}

/* Stops it by PID; keep: the data stays for tpg_start(). */
static inline void tpg_stop(struct tpg_server *srv, int keep)
{
	if (srv->dir[0])
		tpg_run("%s/pg-stop.sh %s%s", TPG_SCRIPTS, srv->dir,
			keep ? " --keep" : "");
	if (!keep)
		srv->dir[0] = '\0';
}

static inline void tpg_stop_own(void)
{
	tpg_stop(&tpg_own, 0);
}

/* The base conninfo of the server every test uses (see the top). */
static inline const char *tpg_conninfo(void)
{
	const char *env = getenv("SMP_TEST_PG_CONNINFO");

	if (env && *env)
		return env;
	if (tpg_own.conninfo[0])
		return tpg_own.conninfo;
	if (tpg_start(&tpg_own) != 0) {
		tpg_stop(&tpg_own, 0);
		fprintf(stderr, "test_pg: cannot start a PostgreSQL server "
			"with %s/pg-start.sh (Debian package postgresql; "
			"make deps installs it)\n", TPG_SCRIPTS);
		return NULL;
	}
	atexit(tpg_stop_own);
	return tpg_own.conninfo;
}

/* ------------------------------------------------------------------ */
/* Raw access through libpq, independent of the library               */

static inline PGconn *tpg_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect to %s: %s", conninfo,
			 PQerrorMessage(c));
	return c;
}

static inline void tpg_quiet(void *arg, const char *m)
{
	(void)arg;
	(void)m;
}

/* Runs sql; returns 0 or -1 and copies the server's message. */
static inline int tpg_exec(const char *conninfo, const char *sql, char *msg,
			   size_t msglen)
{
	PGconn *c = tpg_connect(conninfo);
	PGresult *r;
	int rc;

	PQsetNoticeProcessor(c, tpg_quiet, NULL);
	r = PQexec(c, sql);
	rc = PQresultStatus(r) == PGRES_COMMAND_OK ||
	     PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
	if (msg)
		snprintf(msg, msglen, "%s",
			 rc ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
				    ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
				    : PQerrorMessage(c)
			    : "");
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* First column of the first row as text ("" for none or NULL). */
static inline const char *tpg_text(const char *conninfo, const char *sql,
				   char *buf, size_t len)
{
	PGconn *c = tpg_connect(conninfo);
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	buf[0] = '\0';
	if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return buf;
}

static inline long long tpg_int(const char *conninfo, const char *sql)
{
	char buf[64];

	return strtoll(tpg_text(conninfo, sql, buf, sizeof(buf)), NULL, 10);
}

/* How the keyring backend names the database of conninfo in its errors
 * ("PostgreSQL database D (host H, port P, user U)"), from libpq. */
static inline void tpg_name(const char *conninfo, char *out, size_t len)
{
	PGconn *c = tpg_connect(conninfo);

	snprintf(out, len, "PostgreSQL database %s (host %s, port %s, user %s)",
		 PQdb(c), PQhost(c), PQport(c), PQuser(c));
	PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* A schema per test                                                   */

/* Creates a fresh schema on the test server; out gets a conninfo whose
 * search_path is that schema, name its name. -1 without a server. */
static inline int tpg_schema_new(char *out, size_t outlen, char *name,
				 size_t namelen)
{
	static unsigned seq;
	const char *base = tpg_conninfo();
	char sql[128], msg[256];

	if (!base)
		return -1;
	snprintf(name, namelen, "kr_%ld_%u", (long)getpid(), ++seq);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", name);
	if (tpg_exec(base, sql, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "test_pg: %s: %s\n", sql, msg);
		return -1;
	}
	snprintf(out, outlen, "%s options='-c search_path=%s'", base, name);
	return 0;
}

static inline void tpg_schema_drop(const char *name)
{
	const char *base = tpg_conninfo();
	char sql[128];

	if (!base || !name[0])
		return;
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", name);
	tpg_exec(base, sql, NULL, 0);
}

#endif
