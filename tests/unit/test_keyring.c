/* test_keyring.c - unit tests for lib/smp_keyring*.c, one test body for
 * both backends: the whole group runs on real SQLite files in a fresh
 * temporary directory per test, then again on PostgreSQL, in a fresh
 * schema per test on the server test_pg.h provides (a group that cannot
 * have it fails). Raw SQL through a separate connection (sqlite3 or
 * libpq) checks what is really stored. The tests of what only one
 * backend has (SQLite files: the schema as sqlite_master shows it, file
 * permissions, a file deleted or replaced under the milter; PostgreSQL:
 * test_keyring_pg.c) run in that backend's group only. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smp_keyring.h"
#include "test_pg.h"
#include "test_util.h"

#define T0 1700000000   /* a fixed "now" for the time stamps */
#define ERR_SAMPLE 512

/* The backend the running group tests (see main). */
static const char *kr_backend = "sqlite";

static bool on_pg(void)
{
	return strcmp(kr_backend, "postgresql") == 0;
}

/* The database's own words for a binding of a key it does not hold. */
static const char *fk_failed(void)
{
	return on_pg() ? "insert or update on table \"bindings\" violates "
			 "foreign key constraint \"bindings_fpr_fkey\""
		       : "FOREIGN KEY constraint failed";
}

struct fix {
	char dir[64];
	/* the SQLite file, or the conninfo of the test's PostgreSQL schema */
	char path[200];
	char name[200];   /* how the backend names it in errors */
	char schema[64];
	struct smp_keyring *kr;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char err[512];
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/kr.XXXXXX",
		 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	if (on_pg()) {
		if (tpg_schema_new(f->path, sizeof(f->path), f->schema,
				   sizeof(f->schema)) != 0 ||
		    strlen(f->path) + 1 >= sizeof(f->path))
			return -1;
		tpg_name(f->path, f->name, sizeof(f->name));
	} else {
		snprintf(f->path, sizeof(f->path), "%s/keyring.db", f->dir);
		snprintf(f->name, sizeof(f->name), "%s", f->path);
	}
	if (smp_keyring_open(kr_backend, f->path, &f->kr, err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	return 0;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat sb;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			chmod(p, 0700);
			rm_tree(p);
		} else {
			unlink(p);
		}
	}
	closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fix *f = *state;

	smp_keyring_close(f->kr);
	rm_tree(f->dir);
	if (f->schema[0])
		tpg_schema_drop(f->schema);
	free(f);
	return 0;
}

static void reopen(struct fix *f)
{
	char err[512];

	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(smp_keyring_open(kr_backend, f->path, &f->kr, err,
					  sizeof(err)), 0);
}

/* ------------------------------------------------------------------ */
/* Raw access, independent of the library                             */

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
					 NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* PostgreSQL: SQLite's codes for what the tests tell apart (a refused
 * change: a constraint, or a trigger that raises; anything else). */
static int raw_exec_pg(const char *conninfo, const char *sql, char *msg,
		       size_t msglen)
{
	PGconn *c = tpg_connect(conninfo);
	PGresult *r;
	const char *st, *m;
	int rc = SQLITE_OK;

	PQsetNoticeProcessor(c, tpg_quiet, NULL);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		rc = st && (!strncmp(st, "23", 2) || !strcmp(st, "P0001"))
			     ? SQLITE_CONSTRAINT : SQLITE_ERROR;
	}
	m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	if (msg)
		snprintf(msg, msglen, "%s", rc != SQLITE_OK && m ? m : "");
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* Runs sql; returns the SQLite code and copies the message. */
static int raw_exec(const char *path, const char *sql, char *msg,
		    size_t msglen)
{
	sqlite3 *db;
	char *m = NULL;
	int rc;

	if (on_pg())
		return raw_exec_pg(path, sql, msg, msglen);
	db = raw_open(path);
	rc = sqlite3_exec(db, sql, NULL, NULL, &m);
	if (msg)
		snprintf(msg, msglen, "%s", m ? m : "");
	sqlite3_free(m);
	sqlite3_close(db);
	return rc;
}

static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	long long v;

	if (on_pg())
		return tpg_int(path, sql);
	db = raw_open(path);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* First column of the first row as text ("" for none); into buf. */
static const char *raw_text(const char *path, const char *sql, char *buf,
			    size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;

	if (on_pg())
		return tpg_text(path, sql, buf, len);
	db = raw_open(path);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	buf[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(buf, len, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return buf;
}

/* The query plan of sql (EXPLAIN QUERY PLAN's detail column, every row
 * joined) into buf. */
static const char *raw_plan(const char *path, const char *sql, char *buf,
			    size_t len)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	char q[512];
	size_t n = 0;

	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	buf[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW && n < len)
		n += (size_t)snprintf(buf + n, len - n, "%s; ",
				      sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Builders                                                            */

/* 40 hex digits: tag in the first four, n in decimal digits after. */
static void fpr_of(char out[SMP_FPR_MAX], unsigned tag, unsigned n)
{
	snprintf(out, SMP_FPR_MAX, "%04X%036u", tag & 0xFFFF, n);
}

static void mk_key(struct smp_key_rec *k, const char *fpr, unsigned seed)
{
	static unsigned char mat[3][8];

	memset(k, 0, sizeof(*k));
	snprintf(k->fpr, sizeof(k->fpr), "%s", fpr);
	for (unsigned i = 0; i < 8; i++)
		mat[seed % 3][i] = (unsigned char)(seed * 31 + i * 7);
	k->material = mat[seed % 3];
	k->material_len = 8;
	snprintf(k->algo, sizeof(k->algo), "ed25519");
	k->bits = 255;
	k->created = T0 - 1000;
	k->expires = 0;
	snprintf(k->enc_keyids, sizeof(k->enc_keyids), "0123456789ABCDEF");
	k->updated = T0;
}

static void mk_bind(struct smp_binding *b, const char *addr, const char *fpr,
		    int64_t seen)
{
	memset(b, 0, sizeof(*b));
	b->address = (char *)addr;
	snprintf(b->fpr, sizeof(b->fpr), "%s", fpr);
	b->state = SMP_BIND_ACTIVE;
	b->source = SMP_SRC_SMP;
	b->first_seen = seen;
	b->last_seen = seen;
	b->msg_date = seen - 60;
	b->times_seen = 1;
	b->message_id = (char *)"<m1@example.org>";
	b->client_addr = (char *)"192.0.2.1";
	b->self_encrypted = true;
}

static void put_key(struct smp_keyring *kr, const char *fpr, unsigned seed)
{
	struct smp_key_rec k;
	mk_key(&k, fpr, seed);
	assert_int_equal(smp_keyring_key_put(kr, &k), 0);
}

static void put_bind(struct smp_keyring *kr, const char *addr, const char *fpr,
		     int64_t seen)
{
	struct smp_binding b;
	mk_bind(&b, addr, fpr, seen);
	if (smp_keyring_binding_put(kr, &b) != 0)
		fail_msg("binding_put: %s", smp_keyring_errmsg(kr));
}

/* A discovery entry: status, method, expires (fetched T0, the origin
 * and detail named after the address). */
static void put_disc(struct smp_keyring *kr, const char *addr,
		     const char *status, const char *method, int64_t expires)
{
	struct smp_disc_entry e;
	char origin[128], detail[128];

	memset(&e, 0, sizeof(e));
	e.address = (char *)addr;
	snprintf(e.status, sizeof(e.status), "%s", status);
	snprintf(e.method, sizeof(e.method), "%s", method);
	snprintf(origin, sizeof(origin), "https://example.org/%s", addr);
	snprintf(detail, sizeof(detail), "about %s", addr);
	e.origin = origin;
	e.detail = detail;
	if (strcmp(status, "found") == 0)
		snprintf(e.fpr, sizeof(e.fpr), "%040u", 7u);
	e.fetched = T0;
	e.expires = expires;
	if (smp_keyring_disc_put(kr, &e) != 0)
		fail_msg("disc_put: %s", smp_keyring_errmsg(kr));
}

/* ------------------------------------------------------------------ */
/* Names and addresses                                                 */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(smp_bind_state_name(SMP_BIND_ACTIVE), "active");
	assert_string_equal(smp_bind_state_name(SMP_BIND_CONFLICT), "conflict");
	assert_string_equal(smp_bind_state_name(SMP_BIND_PINNED), "pinned");
	assert_string_equal(smp_bind_state_name(SMP_BIND_BLOCKED), "blocked");
	assert_string_equal(smp_bind_state_name(SMP_BIND_REVOKED), "revoked");
	assert_null(smp_bind_state_name((enum smp_bind_state)5));
	assert_int_equal(smp_bind_state_parse("pinned"), SMP_BIND_PINNED);
	assert_int_equal(smp_bind_state_parse("revoked"), SMP_BIND_REVOKED);
	assert_int_equal(smp_bind_state_parse("Active"), -1);
	assert_int_equal(smp_bind_state_parse(""), -1);
	assert_int_equal(smp_bind_state_parse(NULL), -1);
	assert_string_equal(smp_key_source_name(SMP_SRC_SMP), "smp");
	assert_string_equal(smp_key_source_name(SMP_SRC_AUTOCRYPT), "autocrypt");
	assert_string_equal(smp_key_source_name(SMP_SRC_PGP_KEYS), "pgp-keys");
	assert_string_equal(smp_key_source_name(SMP_SRC_ADMIN), "admin");
	assert_string_equal(smp_key_source_name(SMP_SRC_WKD), "wkd");
	assert_string_equal(smp_key_source_name(SMP_SRC_DANE), "dane");
	assert_null(smp_key_source_name((enum smp_key_source)6));
	assert_int_equal(smp_key_source_parse("pgp-keys"), SMP_SRC_PGP_KEYS);
	assert_int_equal(smp_key_source_parse("admin"), SMP_SRC_ADMIN);
	assert_int_equal(smp_key_source_parse("wkd"), SMP_SRC_WKD);
	assert_int_equal(smp_key_source_parse("dane"), SMP_SRC_DANE);
	assert_int_equal(smp_key_source_parse("WKD"), -1);
	assert_int_equal(smp_key_source_parse("pgp_keys"), -1);
}

static void expect_norm(const char *in, const char *want)
{
	char *got = smp_address_normalize(in);
	if (!want) {
		if (got)
			fail_msg("'%s' gave '%s', expected NULL",
				 in ? in : "(null)", got);
		return;
	}
	if (!got)
		fail_msg("'%s' gave NULL, expected '%s'", in, want);
	assert_string_equal(got, want);
	free(got);
}

static void test_address_normalize(void **state)
{
	char local[201], in[300], want[300];
	char big[SMP_ADDRESS_MAX + 2];
	(void)state;

	expect_norm("alice@example.org", "alice@example.org");
	expect_norm("Alice@Example.ORG", "Alice@example.org");
	expect_norm("  <Bob@EXAMPLE.com>\t", "Bob@example.com");
	expect_norm("< bob@example.com >", "bob@example.com");
	expect_norm("\"john..doe\"@Example.org", "\"john..doe\"@example.org");
	expect_norm("\"a@b\"@Example.ORG", "\"a@b\"@example.org");
	expect_norm("\"john doe\"@example.org", "\"john doe\"@example.org");
	expect_norm("\"a\tb\"@example.org", "\"a\tb\"@example.org");
	/* UTF-8 local part exact; only ASCII letters of the domain lowered */
	expect_norm("J\xc3\xb6rg@B\xc3\x9c" "CHER.Example",
		    "J\xc3\xb6rg@b\xc3\x9c" "cher.example");
	expect_norm("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.org",
		    "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.org");
	/* 200-character local part, mixed case, kept byte for byte */
	for (int i = 0; i < 200; i++)
		local[i] = (char)("AbCdEfGhIj"[i % 10]);
	local[200] = '\0';
	snprintf(in, sizeof(in), "%s@Example.ORG", local);
	snprintf(want, sizeof(want), "%s@example.org", local);
	expect_norm(in, want);
	/* exactly SMP_ADDRESS_MAX octets is fine, one more is not */
	memset(big, 'x', sizeof(big));
	memcpy(big + SMP_ADDRESS_MAX - 12, "@example.org", 12);
	big[SMP_ADDRESS_MAX] = '\0';
	{
		char *got = smp_address_normalize(big);
		assert_non_null(got);
		assert_int_equal(strlen(got), SMP_ADDRESS_MAX);
		free(got);
	}
	memset(big, 'x', sizeof(big));
	memcpy(big + SMP_ADDRESS_MAX + 1 - 12, "@example.org", 12);
	big[SMP_ADDRESS_MAX + 1] = '\0';
	expect_norm(big, NULL);

	expect_norm(NULL, NULL);
	expect_norm("", NULL);
	expect_norm("   ", NULL);
	expect_norm("<>", NULL);
	expect_norm("alice", NULL);
	expect_norm("@example.org", NULL);
	expect_norm("alice@", NULL);
	expect_norm("<alice@example.org", NULL);
	expect_norm("alice@example.org>", NULL);
	expect_norm("al\r\nice@example.org", NULL);
	expect_norm("alice@example.org\n", NULL);
	expect_norm("alice\n@example.org", NULL);
	expect_norm("alice@exa mple.org", NULL);
	expect_norm("alice@exa\tmple.org", NULL);
	expect_norm("alice@exa<mple.org", NULL);
	expect_norm("\xff" "alice@example.org", NULL);        /* not UTF-8 */
	expect_norm("\xc0\xaf" "alice@example.org", NULL);    /* overlong */
	expect_norm("\xed\xa0\x80" "a@example.org", NULL);    /* surrogate */
	expect_norm("alice@example.\xc3", NULL);              /* truncated */
}

/* ------------------------------------------------------------------ */
/* Open, schema                                                        */

static void test_open_creates_schema(void **state)
{
	struct fix *f = *state;
	char buf[64];

	assert_int_equal(smp_keyring_schema_version(f->kr), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM schema_version"), 3);
	assert_int_equal(raw_int(f->path, "SELECT MAX(version) FROM schema_version"), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM sqlite_master "
				 "WHERE type = 'table' AND name IN ('keys', "
				 "'bindings', 'events', 'replay', "
				 "'schema_version', 'discovery', "
				 "'known_blocks')"), 7);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM sqlite_master "
				 "WHERE type = 'trigger'"), 2);
	/* prune's DELETE has its index (version 2) */
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM sqlite_master "
				 "WHERE type = 'index' AND name = 'events_at'"), 1);
	/* the refresher's and the known blocks' trim's (version 3) */
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM sqlite_master "
				 "WHERE type = 'index' AND name IN "
				 "('discovery_expires', 'known_blocks_fpr')"), 2);
	assert_string_equal(raw_text(f->path, "PRAGMA journal_mode", buf,
				     sizeof(buf)), "wal");
	assert_string_equal(smp_keyring_errmsg(f->kr), "no error");
}

static void test_reopen_keeps_data(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX];
	struct smp_key_rec k;
	struct smp_binding *b = NULL;
	size_t n = 0;

	fpr_of(fpr, 1, 1);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "alice@example.org", fpr, T0);
	reopen(f);
	reopen(f);   /* a second open of a migrated file changes nothing */
	assert_int_equal(smp_keyring_schema_version(f->kr), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM schema_version"), 3);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &k), 0);
	assert_string_equal(k.fpr, fpr);
	smp_key_rec_clear(&k);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(b[0].fpr, fpr);
	smp_bindings_free(b, n);
}

static void test_newer_schema_refused(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char err[512], want[512];

	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(raw_exec(f->path, "INSERT INTO schema_version "
				  "(version, applied) VALUES (99, 0)", NULL, 0),
			 SQLITE_OK);
	assert_int_equal(smp_keyring_open(kr_backend, f->path, &kr, err,
					  sizeof(err)), -1);
	assert_null(kr);
	snprintf(want, sizeof(want), "cannot open keyring database %s: its "
		 "schema version is 99, newer than the 3 this program knows; "
		 "use a newer smp-milter and smpctl", f->name);
	assert_string_equal(err, want);
	/* the file was not touched */
	assert_int_equal(raw_int(f->path, "SELECT MAX(version) FROM schema_version"), 99);
}

static void test_open_errors(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char err[512], want[512], path[256];
	FILE *fp;

	assert_int_equal(smp_keyring_open("oracle", f->path, &kr, err,
					  sizeof(err)), -1);
	assert_string_equal(err, "unknown keyring backend 'oracle' (this "
			    "build has: sqlite, postgresql)");
	assert_int_equal(smp_keyring_open("sqlite", "", &kr, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "no keyring database given for the sqlite "
			    "backend");
	/* a directory that does not exist: impossible even for root */
	snprintf(path, sizeof(path), "%s/no/such/dir/keyring.db", f->dir);
	assert_int_equal(smp_keyring_open("sqlite", path, &kr, err,
					  sizeof(err)), -1);
	assert_null(kr);
	snprintf(want, sizeof(want), "cannot open keyring database %s: "
		 "unable to open database file (No such file or "
		 "directory)", path);
	assert_string_equal(err, want);
	/* the target is a directory */
	assert_int_equal(smp_keyring_open("sqlite", f->dir, &kr, err,
					  sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot open keyring database %s: "
		 "unable to open database file (Is a directory)", f->dir);
	assert_string_equal(err, want);
	/* a file that is not a database */
	snprintf(path, sizeof(path), "%s/garbage.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 64; i++)
		fputs("this is not an SQLite database file at all\n", fp);
	fclose(fp);
	assert_int_equal(smp_keyring_open("sqlite", path, &kr, err,
					  sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot open keyring database %s: "
		 "file is not a database", path);
	assert_string_equal(err, want);
	assert_null(kr);
}

/* A read-only file in a read-only directory: root ignores permissions,
 * so only an ordinary user can run this part. */
static void test_open_read_only(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char err[512], want[512], dir[128], path[160];

	if (geteuid() == 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/ro", f->dir);
	snprintf(path, sizeof(path), "%s/keyring.db", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(smp_keyring_open("sqlite", path, &kr, err,
					  sizeof(err)), 0);
	smp_keyring_close(kr);
	kr = NULL;
	assert_int_equal(chmod(path, 0444), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	assert_int_equal(smp_keyring_open("sqlite", path, &kr, err,
					  sizeof(err)), -1);
	assert_null(kr);
	snprintf(want, sizeof(want), "cannot open keyring database %s: the "
		 "file is read-only (it and its directory must be writable)",
		 path);
	assert_string_equal(err, want);
	chmod(dir, 0700);
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

static void test_key_put_get_replace(void **state)
{
	struct fix *f = *state;
	struct smp_key_rec k, g;
	char fpr[SMP_FPR_MAX], lower[SMP_FPR_MAX], spaced[80];
	unsigned char mat2[300];

	fpr_of(fpr, 0xABCD, 7);
	mk_key(&k, fpr, 1);
	k.expires = T0 + 86400;
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);

	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	assert_string_equal(g.fpr, fpr);
	assert_int_equal(g.material_len, 8);
	assert_memory_equal(g.material, k.material, 8);
	assert_string_equal(g.algo, "ed25519");
	assert_int_equal(g.bits, 255);
	assert_int_equal(g.created, T0 - 1000);
	assert_int_equal(g.expires, T0 + 86400);
	assert_false(g.revoked);
	assert_false(g.blocked);
	assert_string_equal(g.enc_keyids, "0123456789ABCDEF");
	assert_int_equal(g.updated, T0);
	smp_key_rec_clear(&g);
	assert_null(g.material);

	/* any case, with gpg's spaces, with 0x: the same key */
	for (size_t i = 0; i <= strlen(fpr); i++)
		lower[i] = (char)(fpr[i] >= 'A' && fpr[i] <= 'F' ? fpr[i] + 32
								 : fpr[i]);
	assert_int_equal(smp_keyring_key_get(f->kr, lower, &g), 0);
	assert_string_equal(g.fpr, fpr);
	smp_key_rec_clear(&g);
	snprintf(spaced, sizeof(spaced), "0x%.4s %.4s %s", lower, lower + 4,
		 lower + 8);
	assert_int_equal(smp_keyring_key_get(f->kr, spaced, &g), 0);
	assert_string_equal(g.fpr, fpr);
	smp_key_rec_clear(&g);

	/* replace: new material, new subkeys, new expiry */
	for (size_t i = 0; i < sizeof(mat2); i++)
		mat2[i] = (unsigned char)(255 - i % 256);
	k.material = mat2;
	k.material_len = sizeof(mat2);
	snprintf(k.algo, sizeof(k.algo), "rsa3072");
	k.bits = 3072;
	k.expires = T0 + 2 * 86400;
	snprintf(k.enc_keyids, sizeof(k.enc_keyids), "1111 2222");
	k.updated = T0 + 5;
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	assert_int_equal(g.material_len, sizeof(mat2));
	assert_memory_equal(g.material, mat2, sizeof(mat2));
	assert_string_equal(g.algo, "rsa3072");
	assert_int_equal(g.bits, 3072);
	assert_int_equal(g.expires, T0 + 2 * 86400);
	assert_string_equal(g.enc_keyids, "1111 2222");
	assert_int_equal(g.updated, T0 + 5);
	smp_key_rec_clear(&g);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 1);

	/* unknown key */
	fpr_of(lower, 0xABCD, 8);
	assert_int_equal(smp_keyring_key_get(f->kr, lower, &g), 1);
	assert_null(g.material);
}

static void test_key_flags_sticky(void **state)
{
	struct fix *f = *state;
	struct smp_key_rec k, g;
	char fpr[SMP_FPR_MAX], other[SMP_FPR_MAX];

	fpr_of(fpr, 2, 2);
	mk_key(&k, fpr, 2);
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	assert_int_equal(smp_keyring_key_set_blocked(f->kr, fpr, true), 0);
	k.revoked = true;
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	/* an old copy without revocation, harvested again */
	k.revoked = false;
	k.blocked = false;
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	assert_true(g.revoked);
	assert_true(g.blocked);
	smp_key_rec_clear(&g);
	/* only set_blocked unblocks */
	assert_int_equal(smp_keyring_key_set_blocked(f->kr, fpr, false), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	assert_false(g.blocked);
	assert_true(g.revoked);
	smp_key_rec_clear(&g);
	fpr_of(other, 2, 3);
	assert_int_equal(smp_keyring_key_set_blocked(f->kr, other, true), 1);
}

static void test_key_delete_cascades(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], keep[SMP_FPR_MAX];
	struct smp_binding *b = NULL;
	struct smp_event *e = NULL;
	size_t n = 0;

	fpr_of(fpr, 3, 1);
	fpr_of(keep, 3, 2);
	put_key(f->kr, fpr, 1);
	put_key(f->kr, keep, 2);
	put_bind(f->kr, "alice@example.org", fpr, T0);
	put_bind(f->kr, "alice@example.net", fpr, T0);
	put_bind(f->kr, "alice@example.org", keep, T0);

	assert_int_equal(smp_keyring_key_delete(f->kr, fpr), 0);
	assert_int_equal(smp_keyring_bindings_of_key(f->kr, fpr, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_null(b);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(b[0].fpr, keep);
	smp_bindings_free(b, n);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 1);

	/* history: one event per binding removed, then the key's */
	assert_int_equal(smp_keyring_events_of_key(f->kr, fpr, &e, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(e[0].event, "binding-deleted");
	assert_string_equal(e[1].event, "binding-deleted");
	assert_string_equal(e[0].detail, "key deleted");
	assert_string_equal(e[1].detail, "key deleted");
	/* the two bindings, in either order */
	assert_true((!strcmp(e[0].address, "alice@example.org") &&
		     !strcmp(e[1].address, "alice@example.net")) ||
		    (!strcmp(e[0].address, "alice@example.net") &&
		     !strcmp(e[1].address, "alice@example.org")));
	assert_string_equal(e[2].event, SMP_EVENT_KEY_DELETED);
	assert_null(e[2].address);
	assert_string_equal(e[2].fpr, fpr);
	assert_string_equal(e[2].detail, "with 2 bindings");
	assert_null(e[2].message_id);
	assert_true(e[0].id < e[1].id && e[1].id < e[2].id);
	smp_events_free(e, n);

	assert_int_equal(smp_keyring_key_delete(f->kr, fpr), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 3);
	assert_int_equal(smp_keyring_key_delete(f->kr, keep), 0);
	assert_int_equal(smp_keyring_events_of_key(f->kr, keep, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[1].detail, "with 1 binding");
	smp_events_free(e, n);
}

/* ------------------------------------------------------------------ */
/* Bindings                                                            */

static void test_binding_put_update(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], want[512];
	struct smp_binding b, *l = NULL;
	size_t n = 0;

	fpr_of(fpr, 4, 1);
	put_key(f->kr, fpr, 1);
	mk_bind(&b, "Alice@Example.ORG", fpr, T0);
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), 0);

	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@EXAMPLE.org",
						  &l, &n), 0);
	assert_int_equal(n, 0);   /* the local part is exact */
	assert_int_equal(smp_keyring_bindings_for(f->kr, "<Alice@example.org>",
						  &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].address, "Alice@example.org");
	assert_string_equal(l[0].fpr, fpr);
	assert_int_equal(l[0].state, SMP_BIND_ACTIVE);
	assert_int_equal(l[0].source, SMP_SRC_SMP);
	assert_int_equal(l[0].first_seen, T0);
	assert_int_equal(l[0].last_seen, T0);
	assert_int_equal(l[0].msg_date, T0 - 60);
	assert_int_equal(l[0].times_seen, 1);
	assert_string_equal(l[0].message_id, "<m1@example.org>");
	assert_string_equal(l[0].client_addr, "192.0.2.1");
	assert_true(l[0].self_encrypted);
	smp_bindings_free(l, n);

	/* seen again: first_seen stays, msg_date never goes back */
	b.first_seen = T0 + 100;
	b.last_seen = T0 + 100;
	b.msg_date = T0 - 3600;
	b.times_seen = 2;
	b.source = SMP_SRC_AUTOCRYPT;
	b.message_id = (char *)"<m2@example.org>";
	b.client_addr = NULL;
	b.self_encrypted = false;
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "Alice@example.org",
						  &l, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].first_seen, T0);
	assert_int_equal(l[0].last_seen, T0 + 100);
	assert_int_equal(l[0].msg_date, T0 - 60);
	assert_int_equal(l[0].times_seen, 2);
	assert_int_equal(l[0].source, SMP_SRC_AUTOCRYPT);
	assert_string_equal(l[0].message_id, "<m2@example.org>");
	assert_null(l[0].client_addr);
	assert_false(l[0].self_encrypted);
	smp_bindings_free(l, n);
	b.msg_date = T0 + 50;
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), 0);
	assert_int_equal(raw_int(f->path, "SELECT msg_date FROM bindings"),
			 T0 + 50);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 1);

	/* state changes */
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "Alice@example.org",
						       fpr, SMP_BIND_PINNED), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "Alice@example.org",
						  &l, &n), 0);
	assert_int_equal(l[0].state, SMP_BIND_PINNED);
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "bob@example.org",
						       fpr, SMP_BIND_PINNED), 1);

	/* the key must exist first */
	fpr_of(fpr, 4, 2);
	mk_bind(&b, "bob@example.org", fpr, T0);
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	snprintf(want, sizeof(want), "cannot store binding bob@example.org "
		 "%s: %s", fpr, fk_failed());
	assert_string_equal(smp_keyring_errmsg(f->kr), want);

	/* defaults: last_seen 0 is now, first_seen 0 is last_seen */
	put_key(f->kr, fpr, 2);
	mk_bind(&b, "bob@example.org", fpr, 0);
	b.first_seen = 0;
	b.last_seen = 0;
	{
		int64_t before = (int64_t)time(NULL);
		assert_int_equal(smp_keyring_binding_put(f->kr, &b), 0);
		assert_int_equal(smp_keyring_bindings_for(f->kr,
				 "bob@example.org", &l, &n), 0);
		assert_true(l[0].last_seen >= before &&
			    l[0].last_seen <= (int64_t)time(NULL));
		assert_int_equal(l[0].first_seen, l[0].last_seen);
		smp_bindings_free(l, n);
	}

	/* the discovery sources are stored and read back by name; a
	 * source past them is refused */
	b.source = SMP_SRC_WKD;
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "bob@example.org",
						  &l, &n), 0);
	assert_int_equal(l[0].source, SMP_SRC_WKD);
	smp_bindings_free(l, n);
	assert_string_equal(raw_text(f->path, "SELECT source FROM bindings "
				     "WHERE address = 'bob@example.org'", want,
				     sizeof(want)), "wkd");
	b.source = SMP_SRC_DANE;
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), 0);
	assert_int_equal(smp_keyring_bindings_of_key(f->kr, fpr, &l, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].source, SMP_SRC_DANE);
	smp_bindings_free(l, n);
	b.source = (enum smp_key_source)(SMP_SRC_DANE + 1);
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), "unknown key source 6");
}

static void test_bindings_lists(void **state)
{
	struct fix *f = *state;
	char k1[SMP_FPR_MAX], k2[SMP_FPR_MAX], k3[SMP_FPR_MAX];
	struct smp_binding *l = NULL;
	size_t n = 0;

	fpr_of(k1, 5, 1);
	fpr_of(k2, 5, 2);
	fpr_of(k3, 5, 3);
	put_key(f->kr, k1, 1);
	put_key(f->kr, k2, 2);
	put_key(f->kr, k3, 3);
	put_bind(f->kr, "carol@example.org", k1, T0 + 10);
	put_bind(f->kr, "carol@example.org", k2, T0 + 30);
	put_bind(f->kr, "carol@example.org", k3, T0 + 20);
	put_bind(f->kr, "alice@example.org", k1, T0);
	put_bind(f->kr, "bob@example.org", k2, T0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "carol@example.org",
						       k1, SMP_BIND_CONFLICT), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "carol@example.org",
						       k2, SMP_BIND_CONFLICT), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "bob@example.org",
						       k2, SMP_BIND_BLOCKED), 0);

	/* for an address: newest first */
	assert_int_equal(smp_keyring_bindings_for(f->kr, "carol@example.org",
						  &l, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(l[0].fpr, k2);
	assert_string_equal(l[1].fpr, k3);
	assert_string_equal(l[2].fpr, k1);
	smp_bindings_free(l, n);

	/* of a key: by address */
	assert_int_equal(smp_keyring_bindings_of_key(f->kr, k1, &l, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].address, "alice@example.org");
	assert_string_equal(l[1].address, "carol@example.org");
	assert_int_equal(l[1].state, SMP_BIND_CONFLICT);
	smp_bindings_free(l, n);

	/* all, by address then fingerprint */
	assert_int_equal(smp_keyring_bindings_list(f->kr, -1, &l, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(l[0].address, "alice@example.org");
	assert_string_equal(l[1].address, "bob@example.org");
	assert_string_equal(l[2].address, "carol@example.org");
	assert_string_equal(l[2].fpr, k1);
	assert_string_equal(l[3].fpr, k2);
	assert_string_equal(l[4].fpr, k3);
	smp_bindings_free(l, n);

	assert_int_equal(smp_keyring_bindings_list(f->kr, SMP_BIND_CONFLICT,
						   &l, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].fpr, k1);
	assert_string_equal(l[1].fpr, k2);
	assert_int_equal(l[0].state, SMP_BIND_CONFLICT);
	assert_int_equal(l[1].state, SMP_BIND_CONFLICT);
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_bindings_list(f->kr, SMP_BIND_BLOCKED,
						   &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].address, "bob@example.org");
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_bindings_list(f->kr, SMP_BIND_PINNED,
						   &l, &n), 0);
	assert_int_equal(n, 0);
	assert_null(l);
	assert_int_equal(smp_keyring_bindings_list(f->kr, 9, &l, &n), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr),
			    "unknown binding state 9");
}

static void test_binding_delete(void **state)
{
	struct fix *f = *state;
	char k1[SMP_FPR_MAX], k2[SMP_FPR_MAX];
	struct smp_event *e = NULL;
	size_t n = 0;

	fpr_of(k1, 6, 1);
	fpr_of(k2, 6, 2);
	put_key(f->kr, k1, 1);
	put_key(f->kr, k2, 2);
	put_bind(f->kr, "dave@example.org", k1, T0);
	put_bind(f->kr, "dave@example.org", k2, T0);
	put_bind(f->kr, "erin@example.org", k2, T0);

	assert_int_equal(smp_keyring_binding_delete(f->kr, "dave@example.org",
						    k1), 0);
	assert_int_equal(smp_keyring_binding_delete(f->kr, "dave@example.org",
						    k1), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 2);
	assert_int_equal(smp_keyring_binding_delete(f->kr, "Dave@Example.org",
						    NULL), 1);
	assert_int_equal(smp_keyring_binding_delete(f->kr, "dave@Example.org",
						    NULL), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 1);
	/* keys stay */
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 2);
	assert_int_equal(smp_keyring_events_for(f->kr, "dave@example.org",
						&e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].event, SMP_EVENT_BINDING_DELETED);
	assert_string_equal(e[0].fpr, k1);
	assert_string_equal(e[0].detail, "deleted");
	assert_string_equal(e[1].event, SMP_EVENT_BINDING_DELETED);
	assert_string_equal(e[1].fpr, k2);
	smp_events_free(e, n);
}

/* Addresses with quotes, UTF-8 and very long local parts: stored and
 * found exactly, byte for byte (checked with raw SQL too). */
static void test_addresses_exact(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], local[201], addr[300], sql[600], buf[400];
	struct smp_binding *l = NULL;
	size_t n = 0;
	const char *quoted = "\"john..doe\"@example.org";
	const char *utf8 = "J\xc3\xb6rg.M\xc3\xbcller@example.org";
	const char *cjk = "\xe7\x94\xa8\xe6\x88\xb7@example.org";

	fpr_of(fpr, 7, 1);
	put_key(f->kr, fpr, 1);
	for (int i = 0; i < 200; i++)
		local[i] = (char)("aB1.-_+="[i % 8]);
	local[200] = '\0';
	snprintf(addr, sizeof(addr), "%s@EXAMPLE.org", local);

	put_bind(f->kr, "\"john..doe\"@Example.ORG", fpr, T0);
	put_bind(f->kr, utf8, fpr, T0);
	put_bind(f->kr, cjk, fpr, T0);
	put_bind(f->kr, addr, fpr, T0);
	put_bind(f->kr, "Alice@Example.ORG", fpr, T0);
	put_bind(f->kr, "alice@example.org", fpr, T0);

	assert_int_equal(smp_keyring_bindings_for(f->kr, quoted, &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].address, quoted);
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "john..doe@example.org",
						  &l, &n), 0);
	assert_int_equal(n, 0);

	assert_int_equal(smp_keyring_bindings_for(f->kr, utf8, &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].address, utf8);
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_bindings_for(f->kr, cjk, &l, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(l[0].address, cjk, strlen(cjk) + 1);
	smp_bindings_free(l, n);

	assert_int_equal(smp_keyring_bindings_for(f->kr, addr, &l, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(l[0].address), 200 + strlen("@example.org"));
	assert_memory_equal(l[0].address, local, 200);
	assert_string_equal(l[0].address + 200, "@example.org");
	smp_bindings_free(l, n);

	/* same domain, different local parts */
	assert_int_equal(smp_keyring_bindings_for(f->kr, "Alice@example.org",
						  &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].address, "Alice@example.org");
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@EXAMPLE.ORG",
						  &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].address, "alice@example.org");
	smp_bindings_free(l, n);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "ALICE@example.org",
						  &l, &n), 0);
	assert_int_equal(n, 0);

	/* what is in the file */
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 6);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings WHERE "
				 "address = '\"john..doe\"@example.org'"), 1);
	snprintf(buf, sizeof(buf), "%s@example.org", local);
	assert_string_equal(raw_text(f->path, "SELECT address FROM bindings "
				     "WHERE length(address) > 100", sql,
				     sizeof(sql)), buf);
	/* UTF-8 bytes as given: hex of the stored value */
	assert_string_equal(raw_text(f->path, on_pg() ?
				     "SELECT upper(encode(convert_to(address, "
				     "'UTF8'), 'hex')) FROM bindings WHERE "
				     "substr(address, 1, 1) = 'J'" :
				     "SELECT hex(address) FROM "
				     "bindings WHERE substr(address, 1, 1) = 'J'", buf,
				     sizeof(buf)),
			    "4AC3B672672E4DC3BC6C6C6572406578616D706C652E6F7267");
}

/* ------------------------------------------------------------------ */
/* Events                                                              */

static void test_events_append_list(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX];
	struct smp_event ev, *e = NULL;
	size_t n = 0;
	const char *names[] = {"harvested", "conflict", "refused"};

	fpr_of(fpr, 8, 1);
	for (int i = 0; i < 3; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.at = T0 + 10 - i;    /* ids, not times, give the order */
		ev.address = (char *)"Frank@Example.ORG";
		snprintf(ev.fpr, sizeof(ev.fpr), "%s", fpr);
		ev.event = (char *)names[i];
		ev.detail = i == 1 ? NULL : (char *)"detail text";
		ev.message_id = (char *)"<e@example.org>";
		assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	}
	/* another address, and a key-level event without address */
	ev.address = (char *)"grace@example.org";
	ev.event = (char *)"harvested";
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	ev.address = NULL;
	ev.event = (char *)"admin-note";
	ev.at = 0;   /* now */
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);

	assert_int_equal(smp_keyring_events_for(f->kr, "Frank@example.org",
						&e, &n), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(e[i].event, names[i]);
		assert_int_equal(e[i].at, T0 + 10 - i);
		assert_string_equal(e[i].address, "Frank@example.org");
		assert_string_equal(e[i].fpr, fpr);
		assert_string_equal(e[i].message_id, "<e@example.org>");
		if (i > 0)
			assert_true(e[i].id > e[i - 1].id);
	}
	assert_string_equal(e[0].detail, "detail text");
	assert_null(e[1].detail);
	smp_events_free(e, n);

	assert_int_equal(smp_keyring_events_of_key(f->kr, fpr, &e, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(e[3].address, "grace@example.org");
	assert_null(e[4].address);
	assert_string_equal(e[4].event, "admin-note");
	assert_true(e[4].at >= T0);
	smp_events_free(e, n);

	assert_int_equal(smp_keyring_events_for(f->kr, "nobody@example.org",
						&e, &n), 0);
	assert_int_equal(n, 0);
	assert_null(e);

	/* an event about something that is not an address is kept as given */
	memset(&ev, 0, sizeof(ev));
	ev.address = (char *)"postmaster";
	ev.event = (char *)"refused";
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	assert_int_equal(smp_keyring_events_for(f->kr, "postmaster", &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].fpr, "");
	smp_events_free(e, n);

	ev.event = NULL;
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), "no event name given");
}

static void test_events_append_only(void **state)
{
	struct fix *f = *state;
	struct smp_event ev;
	char msg[256], buf[64];

	memset(&ev, 0, sizeof(ev));
	ev.at = 0;   /* now */
	ev.address = (char *)"heidi@example.org";
	ev.event = (char *)"harvested";
	ev.detail = (char *)"original";
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	ev.at = T0;  /* long ago: prunable, but still never changed */
	ev.detail = (char *)"old";
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);

	/* the library is open on the file meanwhile: WAL lets both in */
	assert_int_equal(raw_exec(f->path, "UPDATE events SET detail = 'forged'",
				  msg, sizeof(msg)), SQLITE_CONSTRAINT);
	assert_string_equal(msg, "events are append-only");
	assert_int_equal(raw_exec(f->path, "UPDATE events SET at = at - 1000 "
				  "WHERE detail = 'original'", msg,
				  sizeof(msg)), SQLITE_CONSTRAINT);
	assert_string_equal(msg, "events are append-only");
	/* an event younger than a day cannot be deleted by anyone */
	assert_int_equal(raw_exec(f->path, "DELETE FROM events", msg,
				  sizeof(msg)), SQLITE_CONSTRAINT);
	assert_string_equal(msg, "events are append-only: only events older "
			    "than a day can be pruned");
	assert_int_equal(raw_exec(f->path, "DELETE FROM events WHERE detail = "
				  "'original'", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 2);
	assert_string_equal(raw_text(f->path, "SELECT detail FROM events ORDER "
				     "BY id", buf, sizeof(buf)), "original");
}

/* n events for addr, recorded at `at` (detail "tag"). */
static void add_events(struct smp_keyring *kr, const char *addr, int64_t at,
		       const char *tag, int n)
{
	struct smp_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.at = at;
	ev.address = (char *)addr;
	ev.event = (char *)"harvested";
	ev.detail = (char *)tag;
	for (int i = 0; i < n; i++)
		if (smp_keyring_event_add(kr, &ev) != 0)
			fail_msg("event_add: %s", smp_keyring_errmsg(kr));
}

#define DAY 86400
#define KEEP (400 * (int64_t)DAY)

static void test_prune_events(void **state)
{
	struct fix *f = *state;
	struct smp_keyring_pruned p;
	struct smp_event *e = NULL;
	size_t n = 0;
	int64_t now = T0 + 1000 * (int64_t)DAY, cut = now - KEEP;
	bool seen;

	/* 5 old (one second before the cutoff and much older), 4 young
	 * (exactly at the cutoff, and newer) */
	add_events(f->kr, "ivan@example.org", cut - 1, "old", 2);
	add_events(f->kr, "ivan@example.org", T0, "old", 2);
	add_events(f->kr, "judy@example.org", cut - 3 * DAY, "old", 1);
	add_events(f->kr, "ivan@example.org", cut, "young", 2);
	add_events(f->kr, "judy@example.org", cut + 1, "young", 1);
	add_events(f->kr, "judy@example.org", now - DAY, "young", 1);
	/* replay entries: one old, one inside a 7-day window */
	assert_int_equal(smp_keyring_replay_check(f->kr, "AA", "x@example.org",
						  now - 8 * DAY, 7 * DAY, &seen), 0);
	assert_int_equal(smp_keyring_replay_check(f->kr, "BB", "x@example.org",
						  now - DAY, 7 * DAY, &seen), 0);

	memset(&p, 0xFF, sizeof(p));
	assert_int_equal(smp_keyring_prune(f->kr, now, KEEP, 7 * DAY, &p), 0);
	assert_int_equal(p.events, 5);
	assert_int_equal(p.replay_entries, 1);
	assert_int_equal(p.events_before, cut);
	assert_int_equal(p.replay_before, now - 7 * DAY);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'old'"), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'young'"), 4);
	assert_int_equal(raw_int(f->path, "SELECT MIN(at) FROM events"), cut);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM replay"), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM replay WHERE "
				 "digest = 'BB'"), 1);

	/* the pruning left a record of itself: no address, at now, newest */
	assert_int_equal(smp_keyring_events_for(f->kr, "ivan@example.org",
						&e, &n), 0);
	assert_int_equal(n, 2);
	smp_events_free(e, n);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 5);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "event = '" SMP_EVENT_EVENTS_PRUNED "' AND "
				 "address IS NULL AND fpr = '' AND at = "
				 "1786400000 AND id = (SELECT MAX(id) FROM "
				 "events) AND detail = '5 events before "
				 "2025-07-06T22:13:20Z'"), 1);

	/* again: nothing left to remove, and no record of nothing */
	assert_int_equal(smp_keyring_prune(f->kr, now, KEEP, 7 * DAY, &p), 0);
	assert_int_equal(p.events, 0);
	assert_int_equal(p.replay_entries, 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 5);

	/* a day later the event exactly at the old cutoff goes too */
	assert_int_equal(smp_keyring_prune(f->kr, now + DAY, KEEP, 7 * DAY,
					   &p), 0);
	assert_int_equal(p.events, 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'young'"), 1);
}

static void test_prune_keep_and_limits(void **state)
{
	struct fix *f = *state;
	struct smp_keyring_pruned p;
	char want[512];
	int64_t now = T0 + 1000 * (int64_t)DAY;

	add_events(f->kr, "kim@example.org", T0, "old", 3);

	/* events_keep = 0 keeps every event; replay_window < 0 skips */
	assert_int_equal(smp_keyring_prune(f->kr, now, 0, -1, &p), 0);
	assert_int_equal(p.events, 0);
	assert_int_equal(p.events_before, 0);
	assert_int_equal(p.replay_before, 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 3);

	/* less than a day, or negative: refused before touching anything */
	assert_int_equal(smp_keyring_prune(f->kr, now, DAY - 1, 0, &p), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), "cannot prune the "
			    "event history: events_keep of 86399 seconds is "
			    "less than a day");
	assert_int_equal(smp_keyring_prune(f->kr, now, -DAY, 0, NULL), -1);
	assert_int_equal(smp_keyring_prune(NULL, now, DAY, 0, &p), -1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 3);

	/* the schema, not only the library, guards the last day: a "now"
	 * far in the future would reach events recorded a moment ago (the
	 * old "tail" after it is the newest, which prune always keeps) */
	add_events(f->kr, "kim@example.org", 0, "young", 1);
	add_events(f->kr, "kim@example.org", T0, "tail", 1);
	assert_int_equal(smp_keyring_prune(f->kr, (int64_t)time(NULL) +
					   30 * DAY, DAY, -1, &p), -1);
	snprintf(want, sizeof(want), "cannot prune the event history in %s: "
		 "events are append-only: only events older than a day can "
		 "be pruned", f->name);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_int_equal(p.events, 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 5);

	/* now = 0 is the current time: the old ones go, the young one and
	 * the newest stay */
	assert_int_equal(smp_keyring_prune(f->kr, 0, DAY, -1, &p), 0);
	assert_int_equal(p.events, 3);
	assert_true(p.events_before >= (int64_t)time(NULL) - DAY - 5);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'young'"), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'tail'"), 1);

	/* inside a transaction it is part of it */
	add_events(f->kr, "kim@example.org", T0, "old", 2);
	add_events(f->kr, "kim@example.org", 0, "young", 1);
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	assert_int_equal(smp_keyring_prune(f->kr, now, KEEP, -1, &p), 0);
	assert_int_equal(p.events, 3);   /* the 2 old and the tail */
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'old'"), 2);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'tail'"), 1);
}

/* An event id is never handed out twice: the newest event stays even
 * when it is old (an event may be recorded with a time in the past). */
static void test_prune_keeps_newest_id(void **state)
{
	struct fix *f = *state;
	struct smp_keyring_pruned p;
	int64_t now = T0 + 1000 * (int64_t)DAY;
	long long max_id;

	add_events(f->kr, "leo@example.org", now - DAY, "young", 1);
	add_events(f->kr, "leo@example.org", T0, "old", 3);
	max_id = raw_int(f->path, "SELECT MAX(id) FROM events");
	assert_int_equal(smp_keyring_prune(f->kr, now, KEEP, -1, &p), 0);
	assert_int_equal(p.events, 2);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'old'"), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "detail = 'old' AND id = "
				 "(SELECT MAX(id) - 1 FROM events)"), 1);
	/* the events-pruned record came after it */
	assert_int_equal(raw_int(f->path, "SELECT MAX(id) FROM events"),
			 max_id + 1);

	/* everything old by then, the events-pruned record (the newest)
	 * included: it stays, the two others go */
	assert_int_equal(smp_keyring_prune(f->kr, now + 500 * DAY, KEEP, -1,
					   &p), 0);
	assert_int_equal(p.events, 2);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events WHERE "
				 "event = 'events-pruned'"), 2);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 2);
	add_events(f->kr, "leo@example.org", 0, "young", 1);
	assert_int_equal(raw_int(f->path, "SELECT MAX(id) FROM events"),
			 max_id + 3);
}

/* A version 1 database (as released: every DELETE refused, no events_at
 * index) is upgraded in place when opened, its contents kept. */
static void test_migrate_from_v1(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], msg[256], buf[512];
	struct smp_keyring_pruned p;
	struct smp_binding *b = NULL;
	size_t n = 0;

	fpr_of(fpr, 2, 1);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "liam@example.org", fpr, T0);
	add_events(f->kr, "liam@example.org", T0, "old", 3);
	smp_keyring_close(f->kr);
	f->kr = NULL;
	/* back to version 1 exactly as its migration step created it */
	assert_int_equal(raw_exec(f->path,
		"DROP TABLE known_blocks;"
		"DROP TABLE discovery;"
		"DROP INDEX events_at;"
		"DROP TRIGGER events_no_delete;"
		"CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
		"BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
		"DELETE FROM schema_version WHERE version >= 2;", msg,
		sizeof(msg)), SQLITE_OK);
	assert_int_equal(raw_exec(f->path, "DELETE FROM events", msg,
				  sizeof(msg)), SQLITE_CONSTRAINT);
	assert_string_equal(msg, "events are append-only");

	reopen(f);
	assert_int_equal(smp_keyring_schema_version(f->kr), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM schema_version"), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM known_blocks"), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM sqlite_master "
				 "WHERE type = 'index' AND name = 'events_at'"), 1);
	assert_non_null(strstr(raw_text(f->path, "SELECT sql FROM sqlite_master "
					"WHERE name = 'events_no_delete'", buf,
					sizeof(buf)), "WHEN OLD.at >="));
	assert_int_equal(smp_keyring_bindings_for(f->kr, "liam@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	smp_bindings_free(b, n);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 3);
	/* the query plan of prune uses the new index */
	if (!strstr(raw_plan(f->path, "DELETE FROM events WHERE at < 5 AND "
			     "id < (SELECT MAX(id) FROM events)", buf,
			     sizeof(buf)), "INDEX events_at"))
		fail_msg("prune's DELETE does not use events_at: %s", buf);
	assert_int_equal(smp_keyring_prune(f->kr, T0 + 500 * (int64_t)DAY,
					   KEEP, 7 * DAY, &p), 0);
	assert_int_equal(p.events, 2);   /* the newest stays */
}

/* ------------------------------------------------------------------ */
/* Replay log                                                          */

static void test_replay(void **state)
{
	struct fix *f = *state;
	const int64_t W = 7 * 86400;
	const char *d1 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
	const char *d2 = "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752";
	struct smp_keyring_stats st;
	bool seen = true;

	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "ivan@example.org",
						  T0, W, &seen), 0);
	assert_false(seen);
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "ivan@example.org",
						  T0 + 10, W, &seen), 0);
	assert_true(seen);
	/* recipient normalised: same domain in other case is the same */
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "<ivan@EXAMPLE.org>",
						  T0 + 20, W, &seen), 0);
	assert_true(seen);
	/* other recipient, other payload: new */
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "judy@example.org",
						  T0 + 30, W, &seen), 0);
	assert_false(seen);
	assert_int_equal(smp_keyring_replay_check(f->kr, d2, "ivan@example.org",
						  T0 + 40, W, &seen), 0);
	assert_false(seen);
	/* the window counts from the first sighting: still inside at T0+W */
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "ivan@example.org",
						  T0 + W, W, &seen), 0);
	assert_true(seen);
	/* after it, new again, and the entry restarts at that time */
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "ivan@example.org",
						  T0 + W + 1, W, &seen), 0);
	assert_false(seen);
	assert_int_equal(raw_int(f->path, "SELECT seen FROM replay WHERE "
				 "recipient = 'ivan@example.org' AND digest "
				 "LIKE '9F86%'"), T0 + W + 1);
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "ivan@example.org",
						  T0 + W + 2, W, &seen), 0);
	assert_true(seen);
	/* a recipient that is not an address (RCPT TO:<postmaster>) */
	assert_int_equal(smp_keyring_replay_check(f->kr, d2, "postmaster",
						  T0, W, &seen), 0);
	assert_false(seen);
	assert_int_equal(smp_keyring_replay_check(f->kr, d2, "postmaster",
						  T0 + 1, W, &seen), 0);
	assert_true(seen);

	/* prune: entries seen before now - W go */
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.replay_entries, 4);
	assert_int_equal(smp_keyring_replay_prune(f->kr, T0 + W + 35, W), 0);
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	/* left: d1/ivan (T0+W+1), d2/ivan (T0+40), d1/judy (T0+30) went,
	 * d2/postmaster (T0) went */
	assert_int_equal(st.replay_entries, 2);
	assert_int_equal(raw_int(f->path, "SELECT MIN(seen) FROM replay"), T0 + 40);
	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "judy@example.org",
						  T0 + W + 36, W, &seen), 0);
	assert_false(seen);

	assert_int_equal(smp_keyring_replay_check(f->kr, d1, "ivan@example.org",
						  T0, -1, &seen), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr),
			    "negative replay window -1");
	assert_int_equal(smp_keyring_replay_check(f->kr, "", "ivan@example.org",
						  T0, W, &seen), -1);
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

static void test_transactions(void **state)
{
	struct fix *f = *state;
	char k1[SMP_FPR_MAX], k2[SMP_FPR_MAX], want[512];
	struct smp_keyring_stats st;
	struct smp_event ev;
	struct smp_binding b;
	struct smp_key_rec g;

	fpr_of(k1, 9, 1);
	fpr_of(k2, 9, 2);
	memset(&ev, 0, sizeof(ev));
	ev.address = (char *)"kim@example.org";
	ev.event = (char *)"harvested";

	/* rollback leaves nothing */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_key(f->kr, k1, 1);
	put_bind(f->kr, "kim@example.org", k1, T0);
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.keys, 0);
	assert_int_equal(st.addresses, 0);
	assert_int_equal(st.events, 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 0);

	/* a failure half way (the binding names an unknown key): the
	 * caller rolls back and the key stored before is gone too */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_key(f->kr, k1, 1);
	mk_bind(&b, "kim@example.org", k2, T0);
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	snprintf(want, sizeof(want), "cannot store binding kim@example.org "
		 "%s: %s", k2, fk_failed());
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, k1, &g), 1);

	/* commit keeps everything; other connections see it after */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_key(f->kr, k1, 1);
	put_bind(f->kr, "kim@example.org", k1, T0);
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 0);
	assert_int_equal(smp_keyring_commit(f->kr), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM events"), 1);

	/* misuse */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	assert_int_equal(smp_keyring_begin(f->kr), -1);
	snprintf(want, sizeof(want), "cannot start a transaction on %s: one "
		 "is already open", f->name);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_int_equal(smp_keyring_commit(f->kr), 0);
	assert_int_equal(smp_keyring_commit(f->kr), -1);
	snprintf(want, sizeof(want), "cannot commit to %s: no transaction is "
		 "open", f->name);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_int_equal(smp_keyring_rollback(f->kr), 0);

	/* closing with a transaction open rolls it back */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_key(f->kr, k2, 2);
	reopen(f);
	assert_int_equal(smp_keyring_key_get(f->kr, k2, &g), 1);
}

/* While one connection holds the write lock, another's write waits for
 * it (busy timeout) instead of failing. */
static void *late_commit(void *arg)
{
	struct smp_keyring *kr = arg;
	struct timespec ts = {0, 300 * 1000000L};

	nanosleep(&ts, NULL);
	return (void *)(intptr_t)smp_keyring_commit(kr);
}

static void test_writer_waits(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr2 = NULL;
	char err[512], k1[SMP_FPR_MAX], k2[SMP_FPR_MAX];
	pthread_t t;
	void *rv;

	fpr_of(k1, 10, 1);
	fpr_of(k2, 10, 2);
	assert_int_equal(smp_keyring_open(kr_backend, f->path, &kr2, err,
					  sizeof(err)), 0);
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_key(f->kr, k1, 1);
	assert_int_equal(pthread_create(&t, NULL, late_commit, f->kr), 0);
	/* blocks until the other commits, about 300 ms */
	put_key(kr2, k2, 2);
	assert_int_equal(pthread_join(t, &rv), 0);
	assert_int_equal((intptr_t)rv, 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 2);
	smp_keyring_close(kr2);
}

/* ------------------------------------------------------------------ */
/* Concurrency: writers in threads, each with its own connection, like
 * milter sessions; one reader listing in a loop, like smpctl keys list. */

struct worker {
	const char *path;
	unsigned id, msgs;
	pthread_barrier_t *go;
	volatile int *writers_left;
	pthread_mutex_t *mu;
	int failures;
	char first_error[ERR_SAMPLE];
	unsigned long reads;
};

static void note_failure(struct worker *w, const char *what,
			 struct smp_keyring *kr)
{
	pthread_mutex_lock(w->mu);
	if (w->failures++ == 0)
		snprintf(w->first_error, sizeof(w->first_error), "%s: %s",
			 what, kr ? smp_keyring_errmsg(kr) : "");
	pthread_mutex_unlock(w->mu);
}

/* One message: a key of its own, and a key shared by all writers whose
 * binding counts how many wrote it (a read-modify-write that would lose
 * updates if two transactions interleaved). */
static int one_message(struct smp_keyring *kr, unsigned id, unsigned i,
		       struct worker *w)
{
	char own[SMP_FPR_MAX], shared[SMP_FPR_MAX], a_own[64], a_shared[64];
	struct smp_binding *l = NULL, b;
	struct smp_event ev;
	unsigned times = 0;
	size_t n = 0;

	fpr_of(own, 0x100 + id, i);
	fpr_of(shared, 0xFFFF, i);
	snprintf(a_own, sizeof(a_own), "w%u-%u@example.org", id, i);
	snprintf(a_shared, sizeof(a_shared), "user%u@Example.org", i);
	if (smp_keyring_begin(kr) != 0)
		goto bad;
	if (smp_keyring_bindings_for(kr, a_shared, &l, &n) != 0)
		goto bad;
	for (size_t j = 0; j < n; j++)
		if (!strcmp(l[j].fpr, shared))
			times = l[j].times_seen;
	smp_bindings_free(l, n);
	{
		struct smp_key_rec k;
		mk_key(&k, shared, i);
		if (smp_keyring_key_put(kr, &k) != 0)
			goto bad;
		mk_key(&k, own, id);
		if (smp_keyring_key_put(kr, &k) != 0)
			goto bad;
	}
	mk_bind(&b, a_shared, shared, T0 + i);
	b.times_seen = times + 1;
	if (smp_keyring_binding_put(kr, &b) != 0)
		goto bad;
	mk_bind(&b, a_own, own, T0 + i);
	if (smp_keyring_binding_put(kr, &b) != 0)
		goto bad;
	memset(&ev, 0, sizeof(ev));
	ev.at = T0 + i;
	ev.address = a_own;
	snprintf(ev.fpr, sizeof(ev.fpr), "%s", own);
	ev.event = (char *)"harvested";
	if (smp_keyring_event_add(kr, &ev) != 0)
		goto bad;
	if (smp_keyring_commit(kr) != 0)
		goto bad;
	return 0;
bad:
	note_failure(w, "writer", kr);
	smp_keyring_rollback(kr);
	return -1;
}

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	struct smp_keyring *kr = NULL;
	char err[512];

	if (smp_keyring_open(kr_backend, w->path, &kr, err, sizeof(err)) != 0) {
		snprintf(w->first_error, sizeof(w->first_error), "%s", err);
		w->failures++;
		pthread_barrier_wait(w->go);
		goto out;
	}
	pthread_barrier_wait(w->go);
	for (unsigned i = 0; i < w->msgs; i++)
		one_message(kr, w->id, i, w);
out:
	smp_keyring_close(kr);
	__atomic_sub_fetch(w->writers_left, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Lists and counts until the writers are done: never an error, never a
 * duplicate, never fewer rows than the time before. */
static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct smp_keyring *kr = NULL;
	struct smp_keyring_stats st;
	struct smp_binding *l = NULL;
	size_t n = 0, last = 0;
	char err[512];

	if (smp_keyring_open(kr_backend, w->path, &kr, err, sizeof(err)) != 0) {
		snprintf(w->first_error, sizeof(w->first_error), "%s", err);
		w->failures++;
		pthread_barrier_wait(w->go);
		return NULL;
	}
	pthread_barrier_wait(w->go);
	do {
		if (smp_keyring_bindings_list(kr, -1, &l, &n) != 0) {
			note_failure(w, "reader list", kr);
			continue;
		}
		if (n < last)
			note_failure(w, "reader saw fewer bindings", NULL);
		last = n;
		for (size_t j = 1; j < n; j++)
			if (!strcmp(l[j].address, l[j - 1].address) &&
			    !strcmp(l[j].fpr, l[j - 1].fpr))
				note_failure(w, "reader saw a duplicate", NULL);
		smp_bindings_free(l, n);
		if (smp_keyring_stats(kr, &st) != 0)
			note_failure(w, "reader stats", kr);
		w->reads++;
	} while (__atomic_load_n(w->writers_left, __ATOMIC_SEQ_CST) > 0);
	smp_keyring_close(kr);
	return NULL;
}

static void run_concurrent(struct fix *f, unsigned writers, unsigned msgs)
{
	pthread_t t[32];
	struct worker w[32];
	pthread_barrier_t go;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	int left = (int)writers;
	struct smp_binding *l = NULL;
	size_t n = 0, shared = 0;
	struct smp_keyring_stats st;

	assert_true(writers + 1 <= 32);
	assert_int_equal(pthread_barrier_init(&go, NULL, writers + 1), 0);
	for (unsigned i = 0; i <= writers; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].path = f->path;
		w[i].id = i;
		w[i].msgs = msgs;
		w[i].go = &go;
		w[i].writers_left = &left;
		w[i].mu = &mu;
		assert_int_equal(pthread_create(&t[i], NULL,
						i < writers ? writer_main
							    : reader_main,
						&w[i]), 0);
	}
	for (unsigned i = 0; i <= writers; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&go);
	for (unsigned i = 0; i <= writers; i++)
		if (w[i].failures)
			fail_msg("%s %u: %d failures, first: %s",
				 i < writers ? "writer" : "reader", i,
				 w[i].failures, w[i].first_error);
	assert_true(w[writers].reads > 0);

	/* every row there, exactly once; no lost update on the shared ones */
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.keys, writers * msgs + msgs);
	assert_int_equal(st.addresses, writers * msgs + msgs);
	assert_int_equal(st.bindings[SMP_BIND_ACTIVE], writers * msgs + msgs);
	assert_int_equal(st.events, writers * msgs);
	assert_int_equal(smp_keyring_bindings_list(f->kr, -1, &l, &n), 0);
	assert_int_equal(n, writers * msgs + msgs);
	for (size_t j = 0; j < n; j++) {
		if (strncmp(l[j].address, "user", 4) == 0) {
			shared++;
			assert_int_equal(l[j].times_seen, writers);
		} else {
			assert_int_equal(l[j].times_seen, 1);
		}
		if (j > 0)
			assert_false(!strcmp(l[j].address, l[j - 1].address) &&
				     !strcmp(l[j].fpr, l[j - 1].fpr));
	}
	assert_int_equal(shared, msgs);
	smp_bindings_free(l, n);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM (SELECT "
				 "DISTINCT address, fpr FROM bindings) AS t"),
			 writers * msgs + msgs);
	for (unsigned id = 0; id < writers; id++) {
		char a[64];
		snprintf(a, sizeof(a), "w%u-%u@example.org", id, msgs - 1);
		assert_int_equal(smp_keyring_bindings_for(f->kr, a, &l, &n), 0);
		assert_int_equal(n, 1);
		smp_bindings_free(l, n);
	}
}

static void test_concurrent_two_writers(void **state)
{
	run_concurrent(*state, 2, 200);
}

static void test_concurrent_20_sessions(void **state)
{
	run_concurrent(*state, 20, 25);
}

/* ------------------------------------------------------------------ */
/* Arguments, statistics                                               */

static void test_bad_arguments(void **state)
{
	struct fix *f = *state;
	struct smp_key_rec k;
	struct smp_binding b, *l = NULL;
	size_t n = 7;
	char fpr[SMP_FPR_MAX];

	assert_int_equal(smp_keyring_key_get(f->kr, "XYZ", &k), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), "'XYZ' is not a key "
			    "fingerprint (32, 40 or 64 hex digits)");
	assert_int_equal(smp_keyring_key_get(f->kr, "ABCD", &k), -1);
	assert_int_equal(smp_keyring_key_delete(f->kr, NULL), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr),
			    "no key fingerprint given");
	assert_int_equal(smp_keyring_bindings_for(f->kr, "nobody", &l, &n), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr),
			    "'nobody' is not a usable mail address");
	assert_null(l);
	assert_int_equal(n, 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "a@b.org", NULL, &n),
			 -1);
	assert_string_equal(smp_keyring_errmsg(f->kr),
			    "no place for the result given");

	fpr_of(fpr, 11, 1);
	put_key(f->kr, fpr, 1);
	mk_bind(&b, "a@b.org", fpr, T0);
	b.state = (enum smp_bind_state)7;
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), "unknown binding state 7");
	mk_bind(&b, "a@b.org", fpr, T0);
	b.source = (enum smp_key_source)9;
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), "unknown key source 9");
	mk_bind(&b, "a@b\r\n.org", fpr, T0);
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr),
			    "'a@b\r\n.org' is not a usable mail address");
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "a@b.org", fpr,
				(enum smp_bind_state)5), -1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 0);

	/* 32 (v3) and 64 (v5/v6) digit fingerprints are keys too */
	mk_key(&k, "0123456789abcdef0123456789ABCDEF", 1);
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	mk_key(&k, "0123456789ABCDEF0123456789ABCDEF"
		   "0123456789ABCDEF0123456789abcdef", 1);
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, "0123456789ABCDEF0123456789"
					     "ABCDEF0123456789ABCDEF0123456789"
					     "ABCDEF", &k), 0);
	assert_string_equal(k.fpr, "0123456789ABCDEF0123456789ABCDEF"
			    "0123456789ABCDEF0123456789ABCDEF");
	smp_key_rec_clear(&k);

	assert_int_equal(smp_keyring_begin(NULL), -1);
	assert_string_equal(smp_keyring_errmsg(NULL), "no keyring");
}

static void test_stats(void **state)
{
	struct fix *f = *state;
	struct smp_keyring_stats st;
	char k[5][SMP_FPR_MAX];
	struct smp_event ev;
	bool seen;

	memset(&st, 0xFF, sizeof(st));
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.keys, 0);
	assert_int_equal(st.addresses, 0);
	for (int i = 0; i <= SMP_BIND_REVOKED; i++)
		assert_int_equal(st.bindings[i], 0);
	assert_int_equal(st.events, 0);
	assert_int_equal(st.replay_entries, 0);
	assert_int_equal(st.discovery, 0);

	for (int i = 0; i < 5; i++) {
		fpr_of(k[i], 12, (unsigned)i);
		put_key(f->kr, k[i], (unsigned)i);
	}
	put_bind(f->kr, "a@example.org", k[0], T0);
	put_bind(f->kr, "a@example.org", k[1], T0);
	put_bind(f->kr, "b@example.org", k[1], T0);
	put_bind(f->kr, "c@example.org", k[2], T0);
	put_bind(f->kr, "d@example.org", k[3], T0);
	put_bind(f->kr, "e@example.org", k[4], T0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "a@example.org",
				k[0], SMP_BIND_CONFLICT), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "a@example.org",
				k[1], SMP_BIND_CONFLICT), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "c@example.org",
				k[2], SMP_BIND_PINNED), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "d@example.org",
				k[3], SMP_BIND_BLOCKED), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "e@example.org",
				k[4], SMP_BIND_REVOKED), 0);
	memset(&ev, 0, sizeof(ev));
	ev.event = (char *)"note";
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	assert_int_equal(smp_keyring_replay_check(f->kr, "AA", "x@example.org",
						  T0, 10, &seen), 0);
	put_disc(f->kr, "x@example.org", "none", "", T0 + 60);
	put_disc(f->kr, "y@example.org", "error", "", T0 + 60);

	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.keys, 5);
	assert_int_equal(st.addresses, 5);
	assert_int_equal(st.bindings[SMP_BIND_ACTIVE], 1);
	assert_int_equal(st.bindings[SMP_BIND_CONFLICT], 2);
	assert_int_equal(st.bindings[SMP_BIND_PINNED], 1);
	assert_int_equal(st.bindings[SMP_BIND_BLOCKED], 1);
	assert_int_equal(st.bindings[SMP_BIND_REVOKED], 1);
	assert_int_equal(st.events, 2);
	assert_int_equal(st.replay_entries, 1);
	assert_int_equal(st.discovery, 2);

	/* inside a transaction, stats see its own writes */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.events, 3);
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.events, 2);
}

/* ------------------------------------------------------------------ */
/* Health: the file deleted, replaced or damaged under a connection    */

/* errmsg must hold the text fmt makes. */
__attribute__((format(printf, 2, 3)))
static void assert_err_has(struct smp_keyring *kr, const char *fmt, ...)
{
	char want[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	if (!strstr(smp_keyring_errmsg(kr), want))
		fail_msg("errmsg \"%s\" lacks \"%s\"", smp_keyring_errmsg(kr),
			 want);
}

/* A consistent copy of the database (what an administrator's backup is),
 * taken through SQLite so that it includes the write-ahead log. */
static void backup_to(const char *path, const char *dest)
{
	char sql[300], msg[256];

	unlink(dest);
	snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", dest);
	if (raw_exec(path, sql, msg, sizeof(msg)) != SQLITE_OK)
		fail_msg("VACUUM INTO %s: %s", dest, msg);
}

/* Every write path refuses with the connection's health sentence. */
static void assert_writes_refused(struct smp_keyring *kr, const char *why)
{
	char fpr[SMP_FPR_MAX];
	struct smp_key_rec k;
	struct smp_event e;
	bool seen = true;

	fpr_of(fpr, 0x7E57, 99);
	mk_key(&k, fpr, 9);
	assert_int_equal(smp_keyring_key_put(kr, &k), -1);
	assert_err_has(kr, "%s", why);
	assert_int_equal(smp_keyring_begin(kr), -1);
	assert_err_has(kr, "%s", why);
	assert_int_equal(smp_keyring_replay_check(kr, "D1G", "bob@example.org",
						  T0, 60, &seen), -1);
	assert_false(seen);
	assert_err_has(kr, "%s", why);
	memset(&e, 0, sizeof(e));
	e.event = (char *)"harvested";
	e.address = (char *)"alice@example.org";
	assert_int_equal(smp_keyring_event_add(kr, &e), -1);
	assert_err_has(kr, "%s", why);
}

static void test_health_fresh(void **state)
{
	struct fix *f = *state;
	char err[512];

	assert_true(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_check(f->kr), 0);
	assert_string_equal(smp_keyring_errmsg(f->kr), "no error");
	reopen(f);
	assert_false(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_check(f->kr), 0);
	assert_int_equal(smp_keyring_check(NULL), -1);
	/* NO_CREATE opens an existing keyring as usual */
	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(smp_keyring_open_flags(kr_backend, f->path,
						SMP_KEYRING_NO_CREATE, &f->kr,
						err, sizeof(err)), 0);
	assert_false(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_check(f->kr), 0);
}

/* NO_CREATE: neither a missing file nor an empty one becomes a keyring. */
static void test_health_no_create(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char err[512], want[512], path[160];
	struct stat sb;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/missing.db", f->dir);
	assert_int_equal(smp_keyring_open_flags("sqlite", path,
						SMP_KEYRING_NO_CREATE, &kr,
						err, sizeof(err)), -1);
	assert_null(kr);
	snprintf(want, sizeof(want), "cannot open keyring database %s: "
		 "unable to open database file (No such file or directory)",
		 path);
	assert_string_equal(err, want);
	assert_int_equal(stat(path, &sb), -1);

	snprintf(path, sizeof(path), "%s/empty.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(smp_keyring_open_flags("sqlite", path,
						SMP_KEYRING_NO_CREATE, &kr,
						err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot open keyring database %s: it "
		 "holds no keyring (an empty file)", path);
	assert_string_equal(err, want);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);   /* nothing written into it */
	/* without the flag it becomes a new keyring, and says so */
	assert_int_equal(smp_keyring_open("sqlite", path, &kr, err,
					  sizeof(err)), 0);
	assert_true(smp_keyring_created(kr));
	smp_keyring_close(kr);
}

/* Deleted while open: noticed, nothing written into the deleted file, a
 * missing file is not recreated by a NO_CREATE open, and once restored
 * the keyring opens again with the restored contents. */
static void test_health_deleted(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char fpr[SMP_FPR_MAX], fpr2[SMP_FPR_MAX], err[512], want[512];
	char backup[160];
	struct smp_binding *b = NULL;
	struct smp_key_rec k;
	struct stat sb;
	size_t n = 0;

	fpr_of(fpr, 0xDE1, 1);
	fpr_of(fpr2, 0xDE1, 2);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "alice@example.org", fpr, T0);
	snprintf(backup, sizeof(backup), "%s/backup.db", f->dir);
	backup_to(f->path, backup);
	assert_int_equal(smp_keyring_check(f->kr), 0);

	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(smp_keyring_check(f->kr), -1);
	snprintf(want, sizeof(want), "keyring database %s was deleted while "
		 "in use", f->path);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_writes_refused(f->kr, want);
	/* the deleted file did not get the key */
	assert_int_equal(smp_keyring_key_get(f->kr, fpr2, &k), 1);

	/* the daemon reopens without creating: still missing */
	assert_int_equal(smp_keyring_open_flags("sqlite", f->path,
						SMP_KEYRING_NO_CREATE, &kr,
						err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_non_null(strstr(err, f->path));
	assert_int_equal(stat(f->path, &sb), -1);

	/* restored: the old connection stays retired, a new one serves */
	assert_int_equal(rename(backup, f->path), 0);
	assert_int_equal(smp_keyring_check(f->kr), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(smp_keyring_open_flags("sqlite", f->path,
						SMP_KEYRING_NO_CREATE, &f->kr,
						err, sizeof(err)), 0);
	assert_false(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_check(f->kr), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(b[0].fpr, fpr);
	smp_bindings_free(b, n);
	put_key(f->kr, fpr2, 2);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 2);
}

/* Replaced by rename while two connections (two pool slots) have the old
 * file open: both notice, neither writes, and once they are closed a
 * connection to the new file reads only the new file's contents, also
 * while another process holds the new file open (it shares the old
 * file's -wal and -shm names). */
static void test_health_replaced(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr2 = NULL, *other = NULL;
	char fa[SMP_FPR_MAX], fb[SMP_FPR_MAX], fc[SMP_FPR_MAX], err[512];
	char opath[160], want[512];
	struct smp_binding *b = NULL;
	size_t n = 0;
	sqlite3 *raw;

	fpr_of(fa, 0xAA, 1);
	fpr_of(fb, 0xBB, 2);
	fpr_of(fc, 0xCC, 3);
	assert_int_equal(smp_keyring_open(kr_backend, f->path, &kr2, err,
					  sizeof(err)), 0);
	/* alice only in the old file, and still in its write-ahead log */
	put_key(f->kr, fa, 1);
	put_bind(f->kr, "alice@example.org", fa, T0);
	snprintf(opath, sizeof(opath), "%s/other.db", f->dir);
	assert_int_equal(smp_keyring_open("sqlite", opath, &other, err,
					  sizeof(err)), 0);
	put_key(other, fb, 2);
	put_bind(other, "bob@example.net", fb, T0);
	smp_keyring_close(other);
	other = NULL;

	assert_int_equal(rename(opath, f->path), 0);
	/* another process (smpctl) opens the new file meanwhile */
	raw = raw_open(f->path);
	snprintf(want, sizeof(want), "keyring database %s was replaced by "
		 "another file while in use", f->path);
	assert_int_equal(smp_keyring_check(f->kr), -1);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_writes_refused(f->kr, want);
	assert_int_equal(smp_keyring_check(kr2), -1);
	assert_string_equal(smp_keyring_errmsg(kr2), want);
	assert_writes_refused(kr2, want);
	smp_keyring_close(f->kr);
	smp_keyring_close(kr2);
	f->kr = kr2 = NULL;

	assert_int_equal(smp_keyring_open_flags("sqlite", f->path,
						SMP_KEYRING_NO_CREATE, &f->kr,
						err, sizeof(err)), 0);
	assert_int_equal(smp_keyring_check(f->kr), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "bob@example.net",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(b[0].fpr, fb);
	smp_bindings_free(b, n);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 0);
	put_key(f->kr, fc, 3);
	sqlite3_close(raw);
	/* what is on disk: the new file and the new key, nothing of alice */
	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys"), 2);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM keys WHERE "
				 "fpr LIKE '00AA%'"), 0);
	assert_string_equal(raw_text(f->path, "PRAGMA quick_check", want,
				     sizeof(want)), "ok");
	reopen(f);
}

/* Overwritten in place with garbage: the header check notices it, the
 * keyring cannot be opened again until a good file is back, and the
 * error names the file. */
static void test_health_garbage(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char fpr[SMP_FPR_MAX], err[512], want[512], backup[160];
	struct smp_binding *b = NULL;
	size_t n = 0;
	FILE *fp;

	fpr_of(fpr, 0x6A6, 1);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "alice@example.org", fpr, T0);
	snprintf(backup, sizeof(backup), "%s/backup.db", f->dir);
	backup_to(f->path, backup);
	/* all of it in the file (the last close checkpoints), some cached */
	reopen(f);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), 0);
	smp_bindings_free(b, n);

	fp = fopen(f->path, "r+");
	assert_non_null(fp);
	for (int i = 0; i < 256; i++)
		fputs("this is not an SQLite database file at all\n", fp);
	fclose(fp);
	assert_int_equal(smp_keyring_check(f->kr), -1);
	snprintf(want, sizeof(want), "keyring database %s is damaged: it no "
		 "longer starts with an SQLite header (overwritten?)", f->path);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_writes_refused(f->kr, want);
	smp_keyring_close(f->kr);
	f->kr = NULL;

	assert_int_equal(smp_keyring_open_flags("sqlite", f->path,
						SMP_KEYRING_NO_CREATE, &kr,
						err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot open keyring database %s: file "
		 "is not a database", f->path);
	assert_string_equal(err, want);
	/* without NO_CREATE too: garbage is never taken for a keyring */
	assert_int_equal(smp_keyring_open("sqlite", f->path, &kr, err,
					  sizeof(err)), -1);
	assert_string_equal(err, want);

	assert_int_equal(rename(backup, f->path), 0);
	assert_int_equal(smp_keyring_open_flags("sqlite", f->path,
						SMP_KEYRING_NO_CREATE, &f->kr,
						err, sizeof(err)), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	smp_bindings_free(b, n);
	assert_int_equal(smp_keyring_check(f->kr), 0);
}

/* Overwritten in place while its write-ahead log still held recent
 * pages, after queries failed on it: the log cannot be folded into the
 * garbage any more, and must not be replayed onto the good file restored
 * at the path either. */
static void test_health_garbage_with_log(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr2 = NULL;
	char fpr[SMP_FPR_MAX], addr[64], err[512], backup[160], buf[64];
	struct smp_binding *b = NULL;
	size_t n = 0;
	FILE *fp;

	assert_int_equal(smp_keyring_open(kr_backend, f->path, &kr2, err,
					  sizeof(err)), 0);
	fpr_of(fpr, 0x6A7, 1);
	put_key(f->kr, fpr, 1);
	for (int i = 0; i < 300; i++) {
		snprintf(addr, sizeof(addr), "user%03d@example.org", i);
		put_bind(f->kr, addr, fpr, T0);
	}
	snprintf(backup, sizeof(backup), "%s/backup.db", f->dir);
	backup_to(f->path, backup);
	/* more pages in the log only, then the file is overwritten */
	for (int i = 300; i < 600; i++) {
		snprintf(addr, sizeof(addr), "user%03d@example.org", i);
		put_bind(kr2, addr, fpr, T0);
	}
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 512; i++)
		fputs("garbage garbage garbage garbage\n", fp);
	fclose(fp);
	/* the daemon meets it in queries before a check */
	assert_int_equal(smp_keyring_bindings_for(f->kr, "user001@example.org",
						  &b, &n), -1);
	assert_int_equal(smp_keyring_check(f->kr), -1);
	assert_int_equal(smp_keyring_check(kr2), -1);
	smp_keyring_close(kr2);
	smp_keyring_close(f->kr);
	f->kr = NULL;

	assert_int_equal(rename(backup, f->path), 0);
	assert_int_equal(smp_keyring_open_flags("sqlite", f->path,
						SMP_KEYRING_NO_CREATE, &f->kr,
						err, sizeof(err)), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "user001@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	smp_bindings_free(b, n);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "user450@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 0);
	put_bind(f->kr, "new@example.org", fpr, T0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM bindings"), 301);
	assert_string_equal(raw_text(f->path, "PRAGMA integrity_check", buf,
				     sizeof(buf)), "ok");
	assert_int_equal(smp_keyring_check(f->kr), 0);
}

/* Damage behind an intact header: the query fails with SQLite's reason
 * and the file's name, and the connection is retired from then on. */
static void test_health_corrupt_pages(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], addr[64], err[512], want[512];
	struct smp_binding *b = NULL;
	size_t n = 0;
	long long root, psize;
	FILE *fp;

	fpr_of(fpr, 0xC0, 1);
	put_key(f->kr, fpr, 1);
	for (int i = 0; i < 200; i++) {
		snprintf(addr, sizeof(addr), "user%03d@example.org", i);
		put_bind(f->kr, addr, fpr, T0);
	}
	smp_keyring_close(f->kr);   /* the last close checkpoints */
	f->kr = NULL;
	root = raw_int(f->path, "SELECT rootpage FROM sqlite_master WHERE "
		       "name = 'bindings'");
	psize = raw_int(f->path, "PRAGMA page_size");
	assert_true(root > 1);
	/* the root page of the bindings table overwritten */
	fp = fopen(f->path, "r+");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, (long)((root - 1) * psize), SEEK_SET), 0);
	for (long long i = 0; i < psize; i++)
		fputc(0x5A, fp);
	fclose(fp);

	assert_int_equal(smp_keyring_open("sqlite", f->path, &f->kr, err,
					  sizeof(err)), 0);
	assert_int_equal(smp_keyring_check(f->kr), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "user007@example.org",
						  &b, &n), -1);
	assert_null(b);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), f->path));
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "malformed"));
	assert_int_equal(smp_keyring_check(f->kr), -1);
	assert_err_has(f->kr, "keyring database %s is damaged or unreadable: "
		       "database disk image is malformed", f->path);
	snprintf(want, sizeof(want), "keyring database %s is damaged",
		 f->path);
	assert_writes_refused(f->kr, want);
}

/* A stored value outside what the library writes (another program's
 * file, or pages of another file read through a shared write-ahead log):
 * a clear error naming the value and the file, never a guess. */
static void test_health_unknown_state(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], want[512];
	struct smp_binding *b = NULL;
	struct smp_keyring_stats st;
	size_t n = 0;

	fpr_of(fpr, 0x57A, 1);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "alice@example.org", fpr, T0);
	assert_int_equal(raw_exec(f->path, "UPDATE bindings SET state = "
				  "'act\x01ve'", NULL, 0), SQLITE_OK);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "alice@example.org",
						  &b, &n), -1);
	assert_null(b);
	assert_int_equal(n, 0);
	snprintf(want, sizeof(want), "cannot read the bindings of "
		 "alice@example.org: a binding has an unknown state 'act?ve' "
		 "in keyring database %s", f->path);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);
	assert_int_equal(smp_keyring_check(f->kr), -1);
	snprintf(want, sizeof(want), "keyring database %s is damaged or not a "
		 "keyring: a binding has an unknown state 'act?ve'", f->path);
	assert_string_equal(smp_keyring_errmsg(f->kr), want);

	reopen(f);
	assert_int_equal(smp_keyring_stats(f->kr, &st), -1);
	assert_err_has(f->kr, "a binding has an unknown state 'act?ve' in "
		       "keyring database %s", f->path);
	reopen(f);
	assert_int_equal(raw_exec(f->path, "UPDATE bindings SET state = "
				  "'active', source = 'smtp'", NULL, 0), SQLITE_OK);
	assert_int_equal(smp_keyring_bindings_of_key(f->kr, fpr, &b, &n), -1);
	assert_err_has(f->kr, "a binding has an unknown source 'smtp' in "
		       "keyring database %s", f->path);
}

/* ------------------------------------------------------------------ */
/* Schema version 3: the discovery cache and the known key blocks      */

/* A version 2 keyring (as released: no discovery, no known_blocks) is
 * upgraded in place when opened, its contents kept. */
static void test_migrate_from_v2(void **state)
{
	struct fix *f = *state;
	char fpr[SMP_FPR_MAX], msg[256];
	struct smp_binding *b = NULL;
	struct smp_known_block kb;
	struct smp_disc_entry e;
	size_t n = 0;

	fpr_of(fpr, 0x32, 1);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "vera@example.org", fpr, T0);
	smp_keyring_close(f->kr);
	f->kr = NULL;
	/* back to version 2 exactly as its migration step left it */
	assert_int_equal(raw_exec(f->path,
		"DROP TABLE known_blocks;"
		"DROP TABLE discovery;"
		"DELETE FROM schema_version WHERE version = 3;", msg,
		sizeof(msg)), SQLITE_OK);
	assert_int_equal(raw_int(f->path, "SELECT MAX(version) FROM "
				 "schema_version"), 2);

	reopen(f);
	assert_false(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_schema_version(f->kr), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM schema_version"), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM discovery"), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM known_blocks"), 0);
	assert_int_equal(raw_int(f->path, on_pg() ?
		"SELECT COUNT(*) FROM pg_indexes WHERE schemaname = "
		"current_schema() AND indexname IN ('discovery_expires', "
		"'known_blocks_fpr')" :
		"SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND "
		"name IN ('discovery_expires', 'known_blocks_fpr')"), 2);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "vera@example.org",
						  &b, &n), 0);
	assert_int_equal(n, 1);
	smp_bindings_free(b, n);
	/* the new tables work, the known blocks with their key */
	put_disc(f->kr, "vera@example.org", "found", "dane", T0 + 60);
	assert_int_equal(smp_keyring_disc_get(f->kr, "vera@example.org", &e), 0);
	assert_string_equal(e.method, "dane");
	smp_disc_entry_clear(&e);
	memset(&kb, 0, sizeof(kb));
	memset(kb.digest, 'a', 64);
	memset(kb.material, 'b', 64);
	snprintf(kb.fpr, sizeof(kb.fpr), "%s", fpr);
	assert_int_equal(smp_keyring_block_put(f->kr, &kb), 0);
	assert_int_equal(smp_keyring_key_delete(f->kr, fpr), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM known_blocks"), 0);
	/* a second open changes nothing */
	reopen(f);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM schema_version"), 3);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM discovery"), 1);
}

static void test_discovery_cache(void **state)
{
	struct fix *f = *state;
	struct smp_disc_entry e, g;
	char buf[256];
	int64_t before;

	memset(&g, 0x5A, sizeof(g));
	assert_int_equal(smp_keyring_disc_get(f->kr, "alice@example.org", &g), 1);
	assert_null(g.address);
	assert_null(g.origin);

	/* stored under the normalised address, the fingerprint in upper
	 * case; what was stored comes back */
	memset(&e, 0, sizeof(e));
	e.address = (char *)"<Alice@Example.ORG>";
	snprintf(e.status, sizeof(e.status), "found");
	snprintf(e.method, sizeof(e.method), "wkd");
	e.origin = (char *)"https://openpgpkey.example.org/.well-known/"
			   "openpgpkey/example.org/hu/x?l=Alice";
	snprintf(e.fpr, sizeof(e.fpr), "0x12ab 34cd 56ef 7890 1234 "
		 "5678 9abc def0 1234 5678");
	e.fetched = T0;
	e.expires = T0 + 3600;
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), 0);
	assert_int_equal(smp_keyring_disc_get(f->kr, "alice@example.org", &g), 1);
	assert_int_equal(smp_keyring_disc_get(f->kr, "Alice@EXAMPLE.org", &g), 0);
	assert_string_equal(g.address, "Alice@example.org");
	assert_string_equal(g.status, "found");
	assert_string_equal(g.method, "wkd");
	assert_string_equal(g.origin, e.origin);
	assert_string_equal(g.fpr, "12AB34CD56EF7890123456789ABCDEF012345678");
	assert_int_equal(g.fetched, T0);
	assert_int_equal(g.expires, T0 + 3600);
	assert_non_null(g.detail);
	assert_string_equal(g.detail, "");
	smp_disc_entry_clear(&g);
	assert_null(g.address);
	assert_string_equal(raw_text(f->path, "SELECT address FROM discovery",
				     buf, sizeof(buf)), "Alice@example.org");

	/* a later answer replaces it: one row per address */
	memset(&e, 0, sizeof(e));
	e.address = (char *)"Alice@example.org";
	snprintf(e.status, sizeof(e.status), "error");
	e.fetched = T0 + 10;
	e.expires = T0 + 310;
	e.detail = (char *)"SERVFAIL from 192.0.2.53 for "
			   "x._openpgpkey.example.org.";
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM discovery"), 1);
	assert_int_equal(smp_keyring_disc_get(f->kr, "Alice@example.org", &g), 0);
	assert_string_equal(g.status, "error");
	assert_string_equal(g.method, "");
	assert_string_equal(g.origin, "");
	assert_string_equal(g.fpr, "");
	assert_string_equal(g.detail, e.detail);
	assert_int_equal(g.fetched, T0 + 10);
	assert_int_equal(g.expires, T0 + 310);
	smp_disc_entry_clear(&g);
	/* "none" may name a key that was published but refused; fetched 0
	 * is now */
	snprintf(e.status, sizeof(e.status), "none");
	snprintf(e.method, sizeof(e.method), "dane");
	snprintf(e.fpr, sizeof(e.fpr), "%040u", 3u);
	e.fetched = 0;
	before = (int64_t)time(NULL);
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), 0);
	assert_int_equal(smp_keyring_disc_get(f->kr, "Alice@example.org", &g), 0);
	assert_string_equal(g.status, "none");
	assert_string_equal(g.method, "dane");
	assert_true(g.fetched >= before && g.fetched <= (int64_t)time(NULL));
	smp_disc_entry_clear(&g);

	/* refused: another status or method, a found without its key, a
	 * bad fingerprint, something that is not an address */
	snprintf(e.status, sizeof(e.status), "maybe");
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "cannot store the "
			       "discovery entry of Alice@example.org: unknown "
			       "status"));
	snprintf(e.status, sizeof(e.status), "found");
	snprintf(e.method, sizeof(e.method), "ldap");
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "unknown method"));
	snprintf(e.method, sizeof(e.method), "wkd");
	e.fpr[0] = '\0';
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "a found entry needs "
			       "the key's fingerprint"));
	snprintf(e.fpr, sizeof(e.fpr), "XYZ");
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "is not a key "
			       "fingerprint"));
	snprintf(e.fpr, sizeof(e.fpr), "%040u", 3u);
	e.address = (char *)"alice";
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), -1);
	e.address = NULL;
	assert_int_equal(smp_keyring_disc_put(f->kr, &e), -1);
	assert_int_equal(smp_keyring_disc_put(f->kr, NULL), -1);
	assert_int_equal(smp_keyring_disc_get(f->kr, "Alice@example.org", NULL),
			 -1);
	assert_int_equal(smp_keyring_disc_get(f->kr, "alice", &g), -1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM discovery"), 1);
	assert_string_equal(raw_text(f->path, "SELECT status FROM discovery",
				     buf, sizeof(buf)), "none");

	/* a stored value no keyring writes is an error, never a guess */
	assert_int_equal(raw_exec(f->path, "UPDATE discovery SET status = "
				  "'stale'", NULL, 0), SQLITE_OK);
	assert_int_equal(smp_keyring_disc_get(f->kr, "Alice@example.org", &g),
			 -1);
	assert_null(g.address);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "a discovery entry "
			       "has an unknown status 'stale'"));

	/* delete: 1 when there is nothing (any more) */
	assert_int_equal(smp_keyring_disc_delete(f->kr, "<Alice@EXAMPLE.org>"), 0);
	assert_int_equal(smp_keyring_disc_delete(f->kr, "Alice@example.org"), 1);
	assert_int_equal(smp_keyring_disc_get(f->kr, "Alice@example.org", &g), 1);
	assert_int_equal(smp_keyring_disc_delete(f->kr, "alice"), -1);

	/* inside a transaction, rolled back with it */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_disc(f->kr, "bob@example.org", "none", "", T0);
	assert_int_equal(smp_keyring_disc_get(f->kr, "bob@example.org", &g), 0);
	smp_disc_entry_clear(&g);
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	assert_int_equal(smp_keyring_disc_get(f->kr, "bob@example.org", &g), 1);
}

static void expect_due(struct smp_keyring *kr, const char *status,
		       int64_t before, size_t limit, const char *want)
{
	struct smp_disc_entry *e = (struct smp_disc_entry *)1;
	char got[256] = "";
	size_t n = 99, len = 0;

	if (smp_keyring_disc_due(kr, status, before, limit, &e, &n) != 0)
		fail_msg("disc_due: %s", smp_keyring_errmsg(kr));
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s",
					i ? " " : "", e[i].address);
	if (n == 0)
		assert_null(e);
	smp_disc_entries_free(e, n);
	assert_string_equal(got, want);
}

/* What a refresher works through: soonest expiry first, by status. */
static void test_discovery_due(void **state)
{
	struct fix *f = *state;
	struct smp_disc_entry *e = NULL;
	size_t n = 0;

	expect_due(f->kr, NULL, T0 + 1000, 0, "");
	put_disc(f->kr, "a@example.org", "found", "wkd", T0 + 300);
	put_disc(f->kr, "b@example.org", "none", "", T0 + 100);
	put_disc(f->kr, "c@example.org", "error", "", T0 + 200);
	put_disc(f->kr, "d@example.org", "found", "dane", T0 + 5000);
	put_disc(f->kr, "E@example.org", "error", "", T0 + 100);
	put_disc(f->kr, "e@example.org", "error", "", T0 + 100);

	/* ties in byte order of the address */
	expect_due(f->kr, NULL, T0 + 1000, 0,
		   "E@example.org b@example.org e@example.org c@example.org "
		   "a@example.org");
	expect_due(f->kr, NULL, T0 + 1000, 2, "E@example.org b@example.org");
	expect_due(f->kr, "error", T0 + 1000, 0,
		   "E@example.org e@example.org c@example.org");
	expect_due(f->kr, "found", T0 + 6000, 0,
		   "a@example.org d@example.org");
	expect_due(f->kr, "found", T0 + 300, 0, "");   /* strictly before */
	expect_due(f->kr, "found", T0 + 301, 1, "a@example.org");
	expect_due(f->kr, NULL, INT64_MIN, 0, "");

	/* the entries themselves, complete */
	assert_int_equal(smp_keyring_disc_due(f->kr, "found", T0 + 6000, 0, &e,
					      &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[1].method, "dane");
	assert_string_equal(e[1].origin, "https://example.org/d@example.org");
	assert_string_equal(e[1].detail, "about d@example.org");
	assert_string_equal(e[1].fpr, "0000000000000000000000000000000000000007");
	assert_int_equal(e[1].fetched, T0);
	assert_int_equal(e[1].expires, T0 + 5000);
	smp_disc_entries_free(e, n);

	assert_int_equal(smp_keyring_disc_due(f->kr, "stale", T0, 0, &e, &n), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "unknown status"));
	assert_int_equal(smp_keyring_disc_due(f->kr, NULL, T0, 0, NULL, &n), -1);
}

/* A digest of 64 hex digits made of one octet repeated. */
static void digest_of(char out[65], unsigned char c)
{
	memset(out, c, 64);
	out[64] = '\0';
}

static void put_block(struct smp_keyring *kr, const char *digest,
		      const char *fpr, int64_t seen)
{
	struct smp_known_block b;

	memset(&b, 0, sizeof(b));
	snprintf(b.digest, sizeof(b.digest), "%s", digest);
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	digest_of(b.material, 'f');
	b.usable_until = T0 + 86400;
	b.seen = seen;
	if (smp_keyring_block_put(kr, &b) != 0)
		fail_msg("block_put: %s", smp_keyring_errmsg(kr));
}

static void test_known_blocks(void **state)
{
	struct fix *f = *state;
	char k1[SMP_FPR_MAX], k2[SMP_FPR_MAX], d[65], sql[256];
	struct smp_known_block b, g;
	int64_t before;

	fpr_of(k1, 0xB1, 1);
	fpr_of(k2, 0xB1, 2);
	put_key(f->kr, k1, 1);
	put_key(f->kr, k2, 2);
	digest_of(d, 'a');
	memset(&g, 0x5A, sizeof(g));
	assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 1);
	assert_string_equal(g.fpr, "");

	/* digests in either case, stored in lower case */
	memset(&b, 0, sizeof(b));
	digest_of(b.digest, 'A');
	for (int i = 0; k1[i]; i++)
		b.fpr[i] = (char)(k1[i] >= 'A' && k1[i] <= 'F' ? k1[i] + 32
							       : k1[i]);
	digest_of(b.material, 'C');
	b.usable_until = T0 + 86400;
	b.seen = T0;
	assert_int_equal(smp_keyring_block_put(f->kr, &b), 0);
	assert_int_equal(smp_keyring_block_get(f->kr, b.digest, &g), 0);
	assert_string_equal(g.digest, d);
	assert_string_equal(g.fpr, k1);
	digest_of(d, 'c');
	assert_string_equal(g.material, d);
	assert_int_equal(g.usable_until, T0 + 86400);
	assert_int_equal(g.seen, T0);

	/* the same block again: updated, but seen never goes back */
	digest_of(b.material, 'd');
	b.usable_until = 0;
	b.seen = T0 - 50;
	assert_int_equal(smp_keyring_block_put(f->kr, &b), 0);
	assert_int_equal(smp_keyring_block_get(f->kr, b.digest, &g), 0);
	digest_of(d, 'd');
	assert_string_equal(g.material, d);
	assert_int_equal(g.usable_until, 0);
	assert_int_equal(g.seen, T0);
	b.seen = 0;   /* now */
	before = (int64_t)time(NULL);
	assert_int_equal(smp_keyring_block_put(f->kr, &b), 0);
	assert_int_equal(smp_keyring_block_get(f->kr, b.digest, &g), 0);
	assert_true(g.seen >= before && g.seen <= (int64_t)time(NULL));
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM known_blocks"), 1);

	/* refused: digests that are none, a key the keyring lacks */
	snprintf(b.digest, sizeof(b.digest), "xyz");
	assert_int_equal(smp_keyring_block_put(f->kr, &b), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "cannot store a known "
			       "key block: 'xyz' is not a SHA-256 digest"));
	digest_of(b.digest, 'e');
	b.digest[63] = '\0';
	assert_int_equal(smp_keyring_block_put(f->kr, &b), -1);
	digest_of(b.digest, 'e');
	b.material[10] = 'g';
	assert_int_equal(smp_keyring_block_put(f->kr, &b), -1);
	digest_of(b.material, 'e');
	fpr_of(b.fpr, 0xB1, 3);
	assert_int_equal(smp_keyring_block_put(f->kr, &b), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "cannot store a known "
			       "key block: "));
	assert_int_equal(smp_keyring_block_get(f->kr, "abc", &g), -1);
	assert_int_equal(smp_keyring_block_get(f->kr, NULL, &g), -1);
	assert_int_equal(smp_keyring_block_get(f->kr, b.digest, NULL), -1);
	assert_int_equal(smp_keyring_block_put(f->kr, NULL), -1);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM known_blocks"), 1);

	/* at most SMP_KEYRING_BLOCKS_PER_KEY per key: the least recently
	 * seen go (not the first block: it was seen now); another key's
	 * rows stay */
	digest_of(d, '1');
	put_block(f->kr, d, k2, T0);
	for (int i = 0; i < 10; i++) {
		snprintf(d, sizeof(d), "%064d", i);
		put_block(f->kr, d, k1, T0 + 100 + i);
	}
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM known_blocks WHERE "
		 "fpr = '%s'", k1);
	assert_int_equal(raw_int(f->path, sql), SMP_KEYRING_BLOCKS_PER_KEY);
	digest_of(d, 'a');
	assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(d, sizeof(d), "%064d", i);
		assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 1);
	}
	snprintf(d, sizeof(d), "%064d", 3);
	assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 0);
	assert_int_equal(g.seen, T0 + 103);
	/* seen again, a block moves up: the next new one drops another */
	put_block(f->kr, d, k1, T0 + 200);
	snprintf(d, sizeof(d), "%064d", 10);
	put_block(f->kr, d, k1, T0 + 201);
	snprintf(d, sizeof(d), "%064d", 3);
	assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 0);
	snprintf(d, sizeof(d), "%064d", 4);
	assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 1);
	assert_int_equal(raw_int(f->path, sql), SMP_KEYRING_BLOCKS_PER_KEY);

	/* inside a transaction, rolled back with it */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	digest_of(d, '2');
	put_block(f->kr, d, k2, T0);
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM known_blocks WHERE "
		 "fpr = '%s'", k2);
	assert_int_equal(raw_int(f->path, sql), 1);

	/* they go with their key */
	assert_int_equal(smp_keyring_key_delete(f->kr, k1), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM known_blocks"), 1);
	digest_of(d, '1');
	assert_int_equal(smp_keyring_block_get(f->kr, d, &g), 0);
	assert_string_equal(g.fpr, k2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* The tests of what every backend does, run in each backend's group. */
#define COMMON_TESTS \
	T(test_reopen_keeps_data), \
	T(test_newer_schema_refused), \
	T(test_key_put_get_replace), \
	T(test_key_flags_sticky), \
	T(test_key_delete_cascades), \
	T(test_binding_put_update), \
	T(test_bindings_lists), \
	T(test_binding_delete), \
	T(test_addresses_exact), \
	T(test_events_append_list), \
	T(test_events_append_only), \
	T(test_prune_events), \
	T(test_prune_keep_and_limits), \
	T(test_prune_keeps_newest_id), \
	T(test_replay), \
	T(test_transactions), \
	T(test_writer_waits), \
	T(test_concurrent_two_writers), \
	T(test_concurrent_20_sessions), \
	T(test_bad_arguments), \
	T(test_stats), \
	T(test_health_fresh), \
	T(test_migrate_from_v2), \
	T(test_discovery_cache), \
	T(test_discovery_due), \
	T(test_known_blocks)

int main(void)
{
	const struct CMUnitTest sqlite_tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_address_normalize),
		COMMON_TESTS,
		/* SQLite files only */
		T(test_open_creates_schema),
		T(test_open_errors),
		T(test_open_read_only),
		T(test_migrate_from_v1),
		T(test_health_no_create),
		T(test_health_deleted),
		T(test_health_replaced),
		T(test_health_garbage),
		T(test_health_garbage_with_log),
		T(test_health_corrupt_pages),
		T(test_health_unknown_state),
	};
	const struct CMUnitTest pg_tests[] = {
		COMMON_TESTS,
	};
	int failed;

	t_filter_from_env();
	failed = cmocka_run_group_tests_name("keyring on sqlite", sqlite_tests,
					     NULL, NULL);
	kr_backend = "postgresql";
	failed += cmocka_run_group_tests_name("keyring on postgresql",
					      pg_tests, NULL, NULL);
	return failed;
}
