/* test_keyring_pg.c - what only the PostgreSQL keyring backend has, on a
 * real server (test_pg.h): the schema as PostgreSQL holds it, two hosts
 * migrating at once, connection strings and errors that never show a
 * password, reconnection after the server restarts, a role without DDL
 * rights, and the per-address lock that keeps two hosts' harvests apart.
 * The operations themselves are tested on both backends by
 * test_keyring.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smp_keyring.h"
#include "test_pg.h"
#include "test_util.h"

#define T0 1700000000

struct fix {
	char schema[64];
	char ci[TPG_CONNINFO_MAX + 128];
	struct smp_keyring *kr;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char err[512];

	if (!f)
		return -1;
	*state = f;
	if (tpg_schema_new(f->ci, sizeof(f->ci), f->schema,
			   sizeof(f->schema)) != 0)
		return -1;
	if (smp_keyring_open("postgresql", f->ci, &f->kr, err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (!f)
		return 0;
	smp_keyring_close(f->kr);
	tpg_schema_drop(f->schema);
	free(f);
	return 0;
}

static void fpr_of(char out[SMP_FPR_MAX], unsigned tag, unsigned n)
{
	snprintf(out, SMP_FPR_MAX, "%04X%036u", tag & 0xFFFF, n);
}

static void put_key(struct smp_keyring *kr, const char *fpr, unsigned seed)
{
	static unsigned char mat[8];
	struct smp_key_rec k;

	memset(&k, 0, sizeof(k));
	snprintf(k.fpr, sizeof(k.fpr), "%s", fpr);
	for (unsigned i = 0; i < 8; i++)
		mat[i] = (unsigned char)(seed * 31 + i * 7);
	k.material = mat;
	k.material_len = sizeof(mat);
	snprintf(k.algo, sizeof(k.algo), "ed25519");
	k.bits = 255;
	k.updated = T0;
	if (smp_keyring_key_put(kr, &k) != 0)
		fail_msg("key_put: %s", smp_keyring_errmsg(kr));
}

static void put_bind(struct smp_keyring *kr, const char *addr, const char *fpr,
		     enum smp_bind_state state)
{
	struct smp_binding b;

	memset(&b, 0, sizeof(b));
	b.address = (char *)addr;
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	b.state = state;
	b.source = SMP_SRC_SMP;
	b.first_seen = b.last_seen = T0;
	b.times_seen = 1;
	if (smp_keyring_binding_put(kr, &b) != 0)
		fail_msg("binding_put: %s", smp_keyring_errmsg(kr));
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* The schema                                                          */

static void test_schema(void **state)
{
	struct fix *f = *state;
	char sql[512], buf[128], msg[256];
	struct smp_keyring *kr2 = NULL;
	char err[512];

	assert_int_equal(smp_keyring_schema_version(f->kr),
			 tpg_int(f->ci, "SELECT MAX(version) FROM schema_version"));
	assert_true(smp_keyring_schema_version(f->kr) >= 1);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM information_schema"
		 ".tables WHERE table_schema = '%s' AND table_name IN ('keys', "
		 "'bindings', 'events', 'replay', 'schema_version', "
		 "'discovery', 'known_blocks')", f->schema);
	assert_int_equal(tpg_int(f->ci, sql), 7);
	/* material is bytea; every text column sorts byte for byte */
	snprintf(sql, sizeof(sql), "SELECT data_type FROM information_schema"
		 ".columns WHERE table_schema = '%s' AND table_name = 'keys' "
		 "AND column_name = 'material'", f->schema);
	assert_string_equal(tpg_text(f->ci, sql, buf, sizeof(buf)), "bytea");
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM information_schema"
		 ".columns WHERE table_schema = '%s' AND data_type = 'text' AND "
		 "collation_name IS DISTINCT FROM 'C'", f->schema);
	assert_int_equal(tpg_int(f->ci, sql), 0);
	/* events: identity ids, append-only (UPDATE, DELETE, TRUNCATE) */
	assert_int_equal(tpg_exec(f->ci, "INSERT INTO events (at, event) "
				  "VALUES (1, 'x')", NULL, 0), 0);
	assert_int_equal(tpg_exec(f->ci, "UPDATE events SET event = 'y'",
				  msg, sizeof(msg)), -1);
	assert_string_equal(msg, "events are append-only");
	assert_int_equal(tpg_exec(f->ci, "TRUNCATE events", msg, sizeof(msg)),
			 -1);
	assert_string_equal(msg, "events are append-only");
	assert_int_equal(tpg_exec(f->ci, "INSERT INTO events (id, at, event) "
				  "VALUES (99, 1, 'x')", NULL, 0), -1);
	assert_int_equal(tpg_int(f->ci, "SELECT COUNT(*) FROM events"), 1);

	/* a second open of a migrated schema changes nothing */
	assert_int_equal(smp_keyring_open("postgresql", f->ci, &kr2, err,
					  sizeof(err)), 0);
	smp_keyring_close(kr2);
	assert_int_equal(tpg_int(f->ci, "SELECT COUNT(*) FROM schema_version"),
			 smp_keyring_schema_version(f->kr));
}

/* Bindings list in byte order (COLLATE "C"), whatever the server's
 * locale: upper case before lower case, as SQLite lists them. */
static void test_byte_order(void **state)
{
	struct fix *f = *state;
	struct smp_binding *b = NULL;
	char fpr[SMP_FPR_MAX];
	size_t n = 0;

	fpr_of(fpr, 1, 1);
	put_key(f->kr, fpr, 1);
	put_bind(f->kr, "b@example.org", fpr, SMP_BIND_ACTIVE);
	put_bind(f->kr, "B@example.org", fpr, SMP_BIND_ACTIVE);
	put_bind(f->kr, "a@example.org", fpr, SMP_BIND_ACTIVE);
	put_bind(f->kr, "\xc3\xa4@example.org", fpr, SMP_BIND_ACTIVE);
	assert_int_equal(smp_keyring_bindings_list(f->kr, -1, &b, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(b[0].address, "B@example.org");
	assert_string_equal(b[1].address, "a@example.org");
	assert_string_equal(b[2].address, "b@example.org");
	assert_string_equal(b[3].address, "\xc3\xa4@example.org");
	smp_bindings_free(b, n);
}

/* Key material is binary: every octet value survives. */
static void test_material_binary(void **state)
{
	struct fix *f = *state;
	unsigned char mat[512];
	struct smp_key_rec k, g;
	char fpr[SMP_FPR_MAX];

	for (size_t i = 0; i < sizeof(mat); i++)
		mat[i] = (unsigned char)i;
	fpr_of(fpr, 2, 1);
	memset(&k, 0, sizeof(k));
	snprintf(k.fpr, sizeof(k.fpr), "%s", fpr);
	k.material = mat;
	k.material_len = sizeof(mat);
	snprintf(k.algo, sizeof(k.algo), "rsa4096");
	k.bits = 4096;
	k.created = -5;
	k.expires = INT64_C(253402300799);
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	assert_int_equal(g.material_len, sizeof(mat));
	assert_memory_equal(g.material, mat, sizeof(mat));
	assert_int_equal(g.created, -5);
	assert_int_equal(g.expires, INT64_C(253402300799));
	smp_key_rec_clear(&g);
	/* empty material is empty, not NULL */
	k.material = NULL;
	k.material_len = 0;
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	assert_int_equal(g.material_len, 0);
	smp_key_rec_clear(&g);
}

/* A version 1 schema (as its migration step made it) is upgraded in
 * place: the index prune walks, and a trigger that lets old events go. */
static void test_migrate_from_v1(void **state)
{
	struct fix *f = *state;
	struct smp_keyring_pruned p;
	char msg[256], fpr[SMP_FPR_MAX], sql[256];
	struct smp_event ev;

	fpr_of(fpr, 7, 1);
	put_key(f->kr, fpr, 1);
	memset(&ev, 0, sizeof(ev));
	ev.at = T0;
	ev.address = (char *)"liam@example.org";
	ev.event = (char *)"harvested";
	for (int i = 0; i < 3; i++)
		assert_int_equal(smp_keyring_event_add(f->kr, &ev), 0);
	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(tpg_exec(f->ci,
		"DROP TABLE known_blocks, discovery;"
		"DROP INDEX events_at;"
		"CREATE OR REPLACE FUNCTION smp_events_append_only() RETURNS "
		"trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
		"'events are append-only'; END $$;"
		"DELETE FROM schema_version WHERE version >= 2;", msg,
		sizeof(msg)), 0);
	assert_int_equal(tpg_exec(f->ci, "DELETE FROM events", msg,
				  sizeof(msg)), -1);
	assert_string_equal(msg, "events are append-only");

	assert_int_equal(smp_keyring_open("postgresql", f->ci, &f->kr, msg,
					  sizeof(msg)), 0);
	assert_false(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_schema_version(f->kr), 3);
	assert_int_equal(tpg_int(f->ci, "SELECT COUNT(*) FROM schema_version"),
			 3);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM pg_indexes WHERE "
		 "schemaname = '%s' AND indexname = 'events_at'", f->schema);
	assert_int_equal(tpg_int(f->ci, sql), 1);
	assert_int_equal(smp_keyring_prune(f->kr, T0 + 500 * 86400,
					   400 * 86400, -1, &p), 0);
	assert_int_equal(p.events, 2);   /* the newest stays */
}

/* NO_CREATE (the daemon reopening a keyring it had): a database without
 * the schema is refused, and nothing is created in it. */
static void test_no_create(void **state)
{
	struct fix *f = *state;
	char ci[TPG_CONNINFO_MAX + 128], schema[64], err[512], sql[256];
	struct smp_keyring *kr = NULL;

	assert_true(smp_keyring_created(f->kr));
	assert_int_equal(smp_keyring_check(f->kr), 0);
	assert_int_equal(tpg_schema_new(ci, sizeof(ci), schema, sizeof(schema)),
			 0);
	assert_int_equal(smp_keyring_open_flags("postgresql", ci,
						SMP_KEYRING_NO_CREATE, &kr,
						err, sizeof(err)), -1);
	assert_null(kr);
	assert_non_null(strstr(err, "it holds no keyring"));
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM information_schema"
		 ".tables WHERE table_schema = '%s'", schema);
	assert_int_equal(tpg_int(ci, sql), 0);
	/* an existing one opens as usual */
	assert_int_equal(smp_keyring_open_flags("postgresql", f->ci,
						SMP_KEYRING_NO_CREATE, &kr,
						err, sizeof(err)), 0);
	assert_false(smp_keyring_created(kr));
	smp_keyring_close(kr);
	tpg_schema_drop(schema);
}

/* ------------------------------------------------------------------ */
/* Two hosts opening an empty database at once                        */

struct opener {
	const char *ci;
	pthread_barrier_t *go;
	int rc;
	char err[512];
};

static void *open_main(void *arg)
{
	struct opener *o = arg;
	struct smp_keyring *kr = NULL;

	pthread_barrier_wait(o->go);
	o->rc = smp_keyring_open("postgresql", o->ci, &kr, o->err,
				 sizeof(o->err));
	smp_keyring_close(kr);
	return NULL;
}

static void test_concurrent_migration(void **state)
{
	char ci[TPG_CONNINFO_MAX + 128], schema[64];
	struct opener o[8];
	pthread_t t[8];
	pthread_barrier_t go;

	(void)state;
	for (int round = 0; round < 3; round++) {
		assert_int_equal(tpg_schema_new(ci, sizeof(ci), schema,
						sizeof(schema)), 0);
		assert_int_equal(pthread_barrier_init(&go, NULL, 8), 0);
		for (int i = 0; i < 8; i++) {
			memset(&o[i], 0, sizeof(o[i]));
			o[i].ci = ci;
			o[i].go = &go;
			assert_int_equal(pthread_create(&t[i], NULL, open_main,
							&o[i]), 0);
		}
		for (int i = 0; i < 8; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		pthread_barrier_destroy(&go);
		for (int i = 0; i < 8; i++)
			if (o[i].rc != 0)
				fail_msg("open %d: %s", i, o[i].err);
		/* each version applied once */
		assert_int_equal(tpg_int(ci, "SELECT COUNT(*) FROM "
					 "schema_version"),
				 tpg_int(ci, "SELECT MAX(version) FROM "
					 "schema_version"));
		tpg_schema_drop(schema);
	}
}

/* ------------------------------------------------------------------ */
/* Connection strings and errors                                       */

static void test_open_errors(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	char err[512], ci[1024], want[1024], dir[64];
	const char *base = tpg_conninfo();

	assert_non_null(base);
	/* not a connection string: libpq's reason, never what was quoted */
	assert_int_equal(smp_keyring_open("postgresql", "host=/tmp "
					  "password=Sekr1t bogus", &kr, err,
					  sizeof(err)), -1);
	assert_null(kr);
	assert_null(strstr(err, "Sekr1t"));
	assert_non_null(strstr(err, "keyring.conninfo is not a libpq "
			       "connection string or URI"));
	assert_int_equal(smp_keyring_open("postgresql", "postgresql://milter:"
					  "Sekr1t%zz@db.example.org/smp", &kr,
					  err, sizeof(err)), -1);
	assert_null(strstr(err, "Sekr1t"));
	assert_int_equal(smp_keyring_open("postgresql", "host=/tmp "
					  "nosuchoption=1", &kr, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid connection option"));

	/* no server there: the error names it, never the password */
	snprintf(dir, sizeof(dir), "/tmp/smppg-none.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ci, sizeof(ci), "host=%s port=5999 dbname=smpkeys user=milter "
		 "password=Sekr1t", dir);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), -1);
	assert_null(kr);
	snprintf(want, sizeof(want), "cannot open keyring database PostgreSQL "
		 "database smpkeys (host %s, port 5999, user milter): "
		 "connection to server on socket \"%s/.s.PGSQL.5999\" failed: "
		 "No such file or directory", dir, dir);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("got: %s\nwanted it to start with: %s", err, want);
	assert_null(strstr(err, "Sekr1t"));
	assert_null(strchr(err, '\n'));
	rmdir(dir);
	/* the same as a URI */
	snprintf(ci, sizeof(ci), "postgresql://milter:Sekr1t@/smpkeys?host=%s"
		 "&port=5999", dir);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), -1);
	assert_null(strstr(err, "Sekr1t"));
	assert_non_null(strstr(err, "PostgreSQL database smpkeys"));

	/* a database that does not exist */
	snprintf(ci, sizeof(ci), "%s dbname=no_such_db", base);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "database \"no_such_db\" does not exist"));

	/* a database that is not UTF8 */
	tpg_exec(base, "DROP DATABASE IF EXISTS smp_latin1", NULL, 0);
	assert_int_equal(tpg_exec(base, "CREATE DATABASE smp_latin1 TEMPLATE "
				  "template0 ENCODING 'LATIN1' LC_COLLATE 'C' "
				  "LC_CTYPE 'C'", err, sizeof(err)), 0);
	snprintf(ci, sizeof(ci), "%s dbname=smp_latin1", base);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "its encoding is LATIN1; the keyring "
			       "needs UTF8"));
	tpg_exec(base, "DROP DATABASE smp_latin1", NULL, 0);

	/* a schema newer than this program */
	smp_keyring_close(f->kr);
	f->kr = NULL;
	assert_int_equal(tpg_exec(f->ci, "INSERT INTO schema_version (version,"
				  " applied) VALUES (99, 0)", NULL, 0), 0);
	assert_int_equal(smp_keyring_open("postgresql", f->ci, &kr, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "its schema version is 99, newer than"));
}

/* ------------------------------------------------------------------ */
/* The server goes away and comes back                                 */

/* A server of the test's own, stopped by the teardown even when the test
 * fails half way. */
static struct tpg_server own_srv;
static struct smp_keyring *own_kr;

static int setup_own(void **state)
{
	(void)state;
	memset(&own_srv, 0, sizeof(own_srv));
	own_kr = NULL;
	if (tpg_start(&own_srv) != 0) {
		tpg_stop(&own_srv, 0);
		return -1;
	}
	return 0;
}

static int teardown_own(void **state)
{
	(void)state;
	smp_keyring_close(own_kr);
	own_kr = NULL;
	tpg_stop(&own_srv, 0);
	return 0;
}

static void test_reconnect(void **state)
{
	struct tpg_server *srv = &own_srv;
	struct smp_keyring *kr = NULL;
	struct smp_binding *b = NULL;
	struct smp_key_rec g;
	char err[512], fpr[SMP_FPR_MAX], fpr2[SMP_FPR_MAX];
	size_t n = 0;

	(void)state;
	assert_int_equal(smp_keyring_open("postgresql", srv->conninfo, &own_kr,
					  err, sizeof(err)), 0);
	kr = own_kr;
	fpr_of(fpr, 3, 1);
	fpr_of(fpr2, 3, 2);
	put_key(kr, fpr, 1);

	/* restarted while idle: the next call reconnects by itself */
	tpg_stop(srv, 1);
	assert_int_equal(tpg_start(srv), 0);
	assert_int_equal(smp_keyring_key_get(kr, fpr, &g), 0);
	smp_key_rec_clear(&g);
	put_key(kr, fpr2, 2);

	/* down: every call fails with a sentence naming the server */
	tpg_stop(srv, 1);
	assert_int_equal(smp_keyring_key_get(kr, fpr, &g), -1);
	assert_non_null(strstr(smp_keyring_errmsg(kr), "cannot read key "));
	assert_non_null(strstr(smp_keyring_errmsg(kr), srv->dir));
	assert_non_null(strstr(smp_keyring_errmsg(kr), "PostgreSQL database "
			       "postgres (host "));
	assert_int_equal(smp_keyring_bindings_for(kr, "a@example.org", &b, &n),
			 -1);
	assert_int_equal(smp_keyring_begin(kr), -1);
	assert_non_null(strstr(smp_keyring_errmsg(kr), "cannot start a "
			       "transaction on PostgreSQL database postgres"));
	/* back: no reopen needed */
	assert_int_equal(tpg_start(srv), 0);
	assert_int_equal(smp_keyring_key_get(kr, fpr2, &g), 0);
	smp_key_rec_clear(&g);

	/* lost inside a transaction: that transaction fails, the next one
	 * works on a new connection */
	assert_int_equal(smp_keyring_begin(kr), 0);
	put_bind(kr, "a@example.org", fpr, SMP_BIND_ACTIVE);
	tpg_stop(srv, 1);
	assert_int_equal(tpg_start(srv), 0);
	assert_int_equal(smp_keyring_bindings_for(kr, "a@example.org", &b, &n),
			 -1);
	assert_non_null(strstr(smp_keyring_errmsg(kr), "lost the connection"));
	assert_int_equal(smp_keyring_commit(kr), -1);
	assert_int_equal(smp_keyring_rollback(kr), 0);
	assert_int_equal(smp_keyring_begin(kr), 0);
	assert_int_equal(smp_keyring_bindings_for(kr, "a@example.org", &b, &n),
			 0);
	assert_int_equal(n, 0);   /* the lost transaction left nothing */
	put_bind(kr, "a@example.org", fpr, SMP_BIND_ACTIVE);
	assert_int_equal(smp_keyring_commit(kr), 0);
	assert_int_equal(smp_keyring_bindings_for(kr, "a@example.org", &b, &n),
			 0);
	assert_int_equal(n, 1);
	smp_bindings_free(b, n);
}

/* ------------------------------------------------------------------ */
/* A role with no DDL rights (the milter's, after migration), with the
 * grants doc/keyring.md gives it                                      */

/* What schema version 3 added, on a connection of a role with DML
 * rights only: the discovery cache and the known key blocks of key fpr
 * (stored), which go with the key. */
static void restricted_v3(struct smp_keyring *kr, const char *fpr)
{
	struct smp_disc_entry e, *l = NULL;
	struct smp_known_block b;
	size_t n = 0;

	memset(&e, 0, sizeof(e));
	e.address = (char *)"a@example.org";
	snprintf(e.status, sizeof(e.status), "none");
	e.expires = T0;
	if (smp_keyring_disc_put(kr, &e) != 0)
		fail_msg("disc_put: %s", smp_keyring_errmsg(kr));
	assert_int_equal(smp_keyring_disc_get(kr, "a@example.org", &e), 0);
	smp_disc_entry_clear(&e);
	assert_int_equal(smp_keyring_disc_due(kr, NULL, T0 + 1, 0, &l, &n), 0);
	assert_int_equal(n, 1);
	smp_disc_entries_free(l, n);
	assert_int_equal(smp_keyring_disc_delete(kr, "a@example.org"), 0);
	e.address = (char *)"a@example.org";   /* cleared by the get */
	snprintf(e.status, sizeof(e.status), "error");
	assert_int_equal(smp_keyring_disc_put(kr, &e), 0);
	memset(&b, 0, sizeof(b));
	memset(b.digest, 'a', 64);
	memset(b.material, 'b', 64);
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	if (smp_keyring_block_put(kr, &b) != 0)
		fail_msg("block_put: %s", smp_keyring_errmsg(kr));
	assert_int_equal(smp_keyring_block_get(kr, b.digest, &b), 0);
}

/* A role given the grants of schema version 2 (doc/keyring.md) before
 * the owner migrated to version 3 may use the new tables as it uses the
 * keys table: the migration grants them role by role. */
static void test_migrate_v3_grants(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	struct smp_keyring_stats st;
	char sql[1024], ci[TPG_CONNINFO_MAX + 256], err[512], fpr[SMP_FPR_MAX];

	smp_keyring_close(f->kr);
	f->kr = NULL;
	tpg_exec(f->ci, "DROP ROLE IF EXISTS smp_milter_t", NULL, 0);
	tpg_exec(f->ci, "DROP ROLE IF EXISTS smp_report_t", NULL, 0);
	snprintf(sql, sizeof(sql),
		 "DROP TABLE known_blocks, discovery;"
		 "DELETE FROM schema_version WHERE version = 3;"
		 "CREATE ROLE smp_milter_t LOGIN;"
		 "CREATE ROLE smp_report_t LOGIN;"
		 "GRANT USAGE ON SCHEMA %s TO smp_milter_t, smp_report_t;"
		 "GRANT SELECT, INSERT, UPDATE, DELETE ON keys, bindings, "
		 "replay TO smp_milter_t;"
		 "GRANT SELECT, INSERT, DELETE ON events TO smp_milter_t;"
		 "GRANT SELECT ON schema_version TO smp_milter_t;"
		 "GRANT SELECT ON keys TO smp_report_t;",
		 f->schema);
	assert_int_equal(tpg_exec(f->ci, sql, err, sizeof(err)), 0);
	/* the milter's role cannot migrate: it refuses to start */
	snprintf(ci, sizeof(ci), "%s user=smp_milter_t", f->ci);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot migrate PostgreSQL database "));
	/* the owner migrates (smpctl of the new version) */
	assert_int_equal(smp_keyring_open("postgresql", f->ci, &f->kr, err,
					  sizeof(err)), 0);
	assert_int_equal(smp_keyring_schema_version(f->kr), 3);
	assert_int_equal(tpg_int(f->ci, "SELECT CASE WHEN has_table_privilege("
				 "'smp_milter_t', 'known_blocks', 'SELECT, "
				 "INSERT, UPDATE, DELETE') AND has_table_privilege("
				 "'smp_milter_t', 'discovery', 'SELECT, INSERT, "
				 "UPDATE, DELETE') THEN 1 ELSE 0 END"), 1);
	/* role by role, right by right: a role that may only read the keys
	 * may only read the new tables */
	assert_int_equal(tpg_int(f->ci, "SELECT CASE WHEN has_table_privilege("
				 "'smp_report_t', 'discovery', 'SELECT') AND NOT "
				 "has_table_privilege('smp_report_t', 'discovery', "
				 "'INSERT') AND NOT has_table_privilege("
				 "'smp_report_t', 'known_blocks', 'DELETE') THEN 1 "
				 "ELSE 0 END"), 1);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), 0);
	fpr_of(fpr, 0x33, 1);
	put_key(kr, fpr, 1);
	restricted_v3(kr, fpr);
	assert_int_equal(smp_keyring_key_delete(kr, fpr), 0);
	assert_int_equal(smp_keyring_stats(kr, &st), 0);
	assert_int_equal(st.discovery, 1);
	assert_int_equal(tpg_int(f->ci, "SELECT COUNT(*) FROM known_blocks"), 0);
	smp_keyring_close(kr);
	snprintf(sql, sizeof(sql), "REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM "
		 "smp_milter_t, smp_report_t;"
		 "REVOKE ALL ON SCHEMA %s FROM smp_milter_t, smp_report_t;"
		 "DROP ROLE smp_milter_t; DROP ROLE smp_report_t", f->schema,
		 f->schema);
	assert_int_equal(tpg_exec(f->ci, sql, err, sizeof(err)), 0);
}

static void test_restricted_role(void **state)
{
	struct fix *f = *state;
	struct smp_keyring *kr = NULL;
	struct smp_keyring_stats st;
	struct smp_event ev, *e = NULL;
	char sql[1024], ci[TPG_CONNINFO_MAX + 256], err[512], fpr[SMP_FPR_MAX];
	bool seen;
	size_t n = 0;

	tpg_exec(f->ci, "DROP ROLE IF EXISTS smp_milter_t", NULL, 0);
	snprintf(sql, sizeof(sql),
		 "CREATE ROLE smp_milter_t LOGIN;"
		 "GRANT USAGE ON SCHEMA %s TO smp_milter_t;"
		 "GRANT SELECT, INSERT, UPDATE, DELETE ON keys, bindings, "
		 "replay, discovery, known_blocks TO smp_milter_t;"
		 "GRANT SELECT, INSERT, DELETE ON events TO smp_milter_t;"
		 "GRANT SELECT ON schema_version TO smp_milter_t;",
		 f->schema);
	assert_int_equal(tpg_exec(f->ci, sql, err, sizeof(err)), 0);
	snprintf(ci, sizeof(ci), "%s user=smp_milter_t", f->ci);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), 0);
	fpr_of(fpr, 4, 1);
	put_key(kr, fpr, 1);
	put_bind(kr, "a@example.org", fpr, SMP_BIND_ACTIVE);
	memset(&ev, 0, sizeof(ev));
	ev.event = (char *)"note";
	ev.address = (char *)"a@example.org";
	assert_int_equal(smp_keyring_event_add(kr, &ev), 0);
	assert_int_equal(smp_keyring_events_for(kr, "a@example.org", &e, &n), 0);
	assert_int_equal(n, 1);
	smp_events_free(e, n);
	assert_int_equal(smp_keyring_replay_check(kr, "D", "a@example.org", T0,
						  60, &seen), 0);
	assert_int_equal(smp_keyring_begin(kr), 0);
	assert_int_equal(smp_keyring_binding_set_state(kr, "a@example.org", fpr,
						       SMP_BIND_PINNED), 0);
	assert_int_equal(smp_keyring_commit(kr), 0);
	assert_int_equal(smp_keyring_binding_delete(kr, "a@example.org", NULL),
			 0);
	restricted_v3(kr, fpr);
	assert_int_equal(smp_keyring_key_delete(kr, fpr), 0);
	assert_int_equal(smp_keyring_stats(kr, &st), 0);
	assert_int_equal(st.discovery, 1);
	/* pruning deletes old events (and only old ones) */
	ev.at = 1000000000;
	assert_int_equal(smp_keyring_event_add(kr, &ev), 0);
	assert_int_equal(smp_keyring_event_add(kr, &ev), 0);
	ev.at = 0;   /* now: the newest row, which prune always keeps */
	assert_int_equal(smp_keyring_event_add(kr, &ev), 0);
	{
		struct smp_keyring_pruned pr;
		assert_int_equal(smp_keyring_prune(kr, 0, 400 * 86400, 3600,
						   &pr), 0);
		assert_int_equal(pr.events, 2);
		assert_int_equal(pr.replay_entries, 1);
	}
	assert_int_equal(tpg_exec(ci, "DELETE FROM events", err,
				  sizeof(err)), -1);
	assert_string_equal(err, "events are append-only: only events older "
			    "than a day can be pruned");
	assert_int_equal(tpg_exec(ci, "CREATE TABLE x (a INTEGER)", err,
				  sizeof(err)), -1);
	assert_non_null(strstr(err, "permission denied for schema"));
	smp_keyring_close(kr);
	kr = NULL;
	/* but it may not create the schema */
	assert_int_equal(tpg_exec(f->ci, "DROP TABLE bindings, known_blocks, "
				  "keys, events, replay, discovery, "
				  "schema_version", NULL, 0), 0);
	assert_int_equal(smp_keyring_open("postgresql", ci, &kr, err,
					  sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot migrate PostgreSQL database "));
	assert_non_null(strstr(err, "permission denied for schema"));
	snprintf(sql, sizeof(sql), "REVOKE ALL ON SCHEMA %s FROM smp_milter_t;"
		 "DROP ROLE smp_milter_t", f->schema);
	tpg_exec(f->ci, sql, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Reading an address's bindings in a transaction locks the address    */

struct locker {
	const char *ci;
	double waited;
	int rc;
	size_t n;
	char err[512];
};

static void *second_host(void *arg)
{
	struct locker *l = arg;
	struct smp_keyring *kr = NULL;
	struct smp_binding *b = NULL;
	double t0;

	if (smp_keyring_open("postgresql", l->ci, &kr, l->err,
			     sizeof(l->err)) != 0) {
		l->rc = -1;
		return NULL;
	}
	t0 = mono();
	l->rc = smp_keyring_begin(kr);
	if (l->rc == 0)
		l->rc = smp_keyring_bindings_for(kr, "Alice@example.org", &b,
						 &l->n);
	l->waited = mono() - t0;
	if (l->rc != 0)
		snprintf(l->err, sizeof(l->err), "%s", smp_keyring_errmsg(kr));
	smp_bindings_free(b, l->n);
	smp_keyring_rollback(kr);
	smp_keyring_close(kr);
	return NULL;
}

static void test_address_lock(void **state)
{
	struct fix *f = *state;
	struct smp_binding *b = NULL;
	struct locker l;
	struct timespec pause = {0, 400 * 1000000L};
	char fpr[SMP_FPR_MAX];
	pthread_t t;
	size_t n = 0;
	double t0;

	fpr_of(fpr, 5, 1);
	put_key(f->kr, fpr, 1);
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "Alice@Example.ORG",
						  &b, &n), 0);
	assert_int_equal(n, 0);
	put_bind(f->kr, "Alice@example.org", fpr, SMP_BIND_ACTIVE);

	memset(&l, 0, sizeof(l));
	l.ci = f->ci;
	assert_int_equal(pthread_create(&t, NULL, second_host, &l), 0);
	nanosleep(&pause, NULL);
	t0 = mono();
	assert_int_equal(smp_keyring_commit(f->kr), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (l.rc != 0)
		fail_msg("second host: %s", l.err);
	/* it waited for the commit, then saw the binding */
	assert_true(l.waited >= 0.3);
	assert_true(mono() - t0 < 5);
	assert_int_equal(l.n, 1);

	/* another address is not held up; neither is a read outside a
	 * transaction */
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "Alice@example.org",
						  &b, &n), 0);
	smp_bindings_free(b, n);
	{
		struct smp_keyring *kr2 = NULL;
		char err[512];
		assert_int_equal(smp_keyring_open("postgresql", f->ci, &kr2,
						  err, sizeof(err)), 0);
		t0 = mono();
		assert_int_equal(smp_keyring_bindings_for(kr2,
				 "Alice@example.org", &b, &n), 0);
		assert_int_equal(n, 1);
		smp_bindings_free(b, n);
		assert_int_equal(smp_keyring_begin(kr2), 0);
		assert_int_equal(smp_keyring_bindings_for(kr2,
				 "bob@example.org", &b, &n), 0);
		assert_int_equal(smp_keyring_commit(kr2), 0);
		assert_true(mono() - t0 < 0.3);
		smp_keyring_close(kr2);
	}
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
}

/* Errors inside a transaction: the rest of it fails clearly, commit
 * says so, and the connection is fine afterwards. */
static void test_error_in_transaction(void **state)
{
	struct fix *f = *state;
	struct smp_binding b;
	struct smp_key_rec g;
	char fpr[SMP_FPR_MAX], other[SMP_FPR_MAX];

	fpr_of(fpr, 6, 1);
	fpr_of(other, 6, 2);
	assert_int_equal(smp_keyring_begin(f->kr), 0);
	put_key(f->kr, fpr, 1);
	/* a binding of a key that is not stored: a foreign key violation */
	memset(&b, 0, sizeof(b));
	b.address = (char *)"a@example.org";
	snprintf(b.fpr, sizeof(b.fpr), "%s", other);
	assert_int_equal(smp_keyring_binding_put(f->kr, &b), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "violates foreign "
			       "key constraint"));
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "the transaction was "
			       "rolled back after an earlier error"));
	assert_int_equal(smp_keyring_commit(f->kr), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "cannot commit to "
			       "PostgreSQL database"));
	assert_int_equal(smp_keyring_rollback(f->kr), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 1);
	put_key(f->kr, fpr, 1);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &g), 0);
	smp_key_rec_clear(&g);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_schema),
		T(test_byte_order),
		T(test_material_binary),
		T(test_migrate_from_v1),
		T(test_no_create),
		cmocka_unit_test(test_concurrent_migration),
		T(test_open_errors),
		cmocka_unit_test_setup_teardown(test_reconnect, setup_own,
						teardown_own),
		T(test_restricted_role),
		T(test_migrate_v3_grants),
		T(test_address_lock),
		T(test_error_in_transaction),
	};

	t_filter_from_env();
	return cmocka_run_group_tests_name("keyring_pg", tests, NULL, NULL);
}
