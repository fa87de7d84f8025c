/*
 * bench_keyring.c - keyring database figures (SPEC.md 8: "keyring lookup
 * latency with 100k keys").
 *
 *   bench_keyring [--keys N] [--lookups N] [--stores N] [--dir DIR]
 *                 [--pg CONNINFO]
 *
 * Builds a fresh SQLite keyring in a temporary directory under DIR
 * (default $TMPDIR or /tmp) with N keys (default 100,000), each with
 * small fake material and one address binding, written in transactions of
 * 1,000; with --pg (bench/keyring.mk passes a throwaway server it starts
 * with tests/pg/pg-start.sh --durable), the same again in a fresh schema
 * of that PostgreSQL database, dropped afterwards, so both backends are
 * measured in one run. Then measures, on each database:
 * - lookup latency: smp_keyring_bindings_for() on random existing
 *   addresses (a recipient with a key) and on absent ones (the usual case
 *   for an outbound recipient), 20,000 each; p50, p99 and max in us.
 * - store rate, one transaction per key as the milter harvests: for a new
 *   key, look up the address and the key, store key + binding + a
 *   "harvested" event, commit; for an already-known key (the same keys
 *   again), look up both, store the key (merge) and the updated binding,
 *   commit. keys/s over 2,000 keys each.
 * Every loop also stops after BENCH_CAP_S seconds so the whole run stays
 * under a minute on a slow disk. Numbers are printed, never asserted.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "smp_keyring.h"

#define BENCH_BATCH 1000
#define BENCH_CAP_S 12.0
#define BENCH_MATERIAL 96

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: reproducible, no libc rand() state. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void fpr_of(char out[SMP_FPR_MAX], unsigned i)
{
	snprintf(out, SMP_FPR_MAX, "%08X%032u", 0xBE0C4000u, i);
}

static void addr_of(char *out, size_t len, unsigned i)
{
	snprintf(out, len, "user%07u@domain%03u.example", i, i % 500);
}

static void die(struct smp_keyring *kr, const char *what)
{
	fprintf(stderr, "bench_keyring: %s: %s\n", what,
		smp_keyring_errmsg(kr));
	exit(1);
}

static void fill_key(struct smp_key_rec *k, unsigned char *mat, unsigned i)
{
	memset(k, 0, sizeof(*k));
	fpr_of(k->fpr, i);
	for (unsigned j = 0; j < BENCH_MATERIAL; j++)
		mat[j] = (unsigned char)(i * 131 + j * 7);
	k->material = mat;
	k->material_len = BENCH_MATERIAL;
	snprintf(k->algo, sizeof(k->algo), "ed25519");
	k->bits = 255;
	k->created = 1700000000;
	snprintf(k->enc_keyids, sizeof(k->enc_keyids), "%016X", i);
	k->updated = 1700000000 + (int64_t)i;
}

static void fill_bind(struct smp_binding *b, char *addr, unsigned i,
		      unsigned times)
{
	memset(b, 0, sizeof(*b));
	b->address = addr;
	fpr_of(b->fpr, i);
	b->state = SMP_BIND_ACTIVE;
	b->source = SMP_SRC_SMP;
	b->first_seen = b->last_seen = 1700000000 + (int64_t)i + times;
	b->msg_date = b->last_seen - 30;
	b->times_seen = times;
	b->message_id = (char *)"<bench@example.org>";
	b->client_addr = (char *)"192.0.2.25";
	b->self_encrypted = true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Lookups of n addresses (existing when hit, else absent); fills the
 * sorted latencies in ns and returns how many ran. */
static size_t lookups(struct smp_keyring *kr, unsigned keys, size_t n,
		      int hit, uint64_t *lat)
{
	char addr[96];
	double start = now_s();
	size_t i;

	for (i = 0; i < n && now_s() - start < BENCH_CAP_S; i++) {
		struct smp_binding *b = NULL;
		size_t nb = 0;
		struct timespec t0, t1;
		unsigned r = (unsigned)(rng() % keys);

		if (hit)
			addr_of(addr, sizeof(addr), r);
		else
			snprintf(addr, sizeof(addr), "nobody%07u@domain%03u.example",
				 r, r % 500);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (smp_keyring_bindings_for(kr, addr, &b, &nb) != 0)
			die(kr, "lookup");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (nb != (hit ? 1u : 0u)) {
			fprintf(stderr, "bench_keyring: %s: %zu bindings\n",
				addr, nb);
			exit(1);
		}
		smp_bindings_free(b, nb);
		lat[i] = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ULL +
			 (uint64_t)(t1.tv_nsec - t0.tv_nsec);
	}
	qsort(lat, i, sizeof(*lat), cmp_u64);
	return i;
}

static void print_lat(const char *label, const uint64_t *lat, size_t n)
{
	printf("  %-34s %7zu %9.1f %9.1f %9.1f\n", label, n,
	       (double)lat[n / 2] / 1e3, (double)lat[(n * 99) / 100] / 1e3,
	       (double)lat[n - 1] / 1e3);
}

/* One harvest transaction per key, keys [from, from + n). known: the
 * keys are in the database already (the update path). */
static size_t stores(struct smp_keyring *kr, unsigned from, size_t n,
		     int known, double *secs)
{
	unsigned char mat[BENCH_MATERIAL];
	char addr[96];
	double start = now_s();
	size_t i;

	for (i = 0; i < n && now_s() - start < BENCH_CAP_S; i++) {
		unsigned id = from + (unsigned)i;
		struct smp_binding *b = NULL, nb;
		struct smp_key_rec k, old;
		size_t cnt = 0;
		unsigned times = 0;
		int rc;

		addr_of(addr, sizeof(addr), id);
		fill_key(&k, mat, id);
		if (smp_keyring_begin(kr) != 0)
			die(kr, "begin");
		if (smp_keyring_bindings_for(kr, addr, &b, &cnt) != 0)
			die(kr, "lookup");
		if (cnt)
			times = b[0].times_seen;
		smp_bindings_free(b, cnt);
		rc = smp_keyring_key_get(kr, k.fpr, &old);
		if (rc < 0)
			die(kr, "key_get");
		if ((rc == 0) != (known != 0) || (cnt != 0) != (known != 0)) {
			fprintf(stderr, "bench_keyring: key %u: unexpected "
				"state\n", id);
			exit(1);
		}
		smp_key_rec_clear(&old);
		if (smp_keyring_key_put(kr, &k) != 0)
			die(kr, "key_put");
		fill_bind(&nb, addr, id, times + 1);
		if (smp_keyring_binding_put(kr, &nb) != 0)
			die(kr, "binding_put");
		if (!known) {
			struct smp_event ev;
			memset(&ev, 0, sizeof(ev));
			ev.address = addr;
			memcpy(ev.fpr, k.fpr, sizeof(ev.fpr));
			ev.event = (char *)"harvested";
			ev.message_id = (char *)"<bench@example.org>";
			if (smp_keyring_event_add(kr, &ev) != 0)
				die(kr, "event_add");
		}
		if (smp_keyring_commit(kr) != 0)
			die(kr, "commit");
	}
	*secs = now_s() - start;
	return i;
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[1024];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(dir);
}

static long long file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static void pg_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Runs sql on the PostgreSQL server at conninfo; 0 or -1 (said on
 * stderr). */
static int pg_exec(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = NULL;
	int rc = -1;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_keyring: %s", PQerrorMessage(c));
		goto out;
	}
	PQsetNoticeProcessor(c, pg_quiet, NULL);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "bench_keyring: %s: %s", sql,
			PQerrorMessage(c));
		goto out;
	}
	rc = 0;
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* A fresh schema for the run on the PostgreSQL server at conninfo:
 * *target gets a conninfo whose search_path is that schema. drop: remove
 * it again. 0 or -1 (said on stderr). */
static int pg_schema(const char *conninfo, char *schema, size_t slen,
		     char *target, size_t tlen, int drop)
{
	char sql[160];

	if (!drop)
		snprintf(schema, slen, "bench_keyring_%ld", (long)getpid());
	snprintf(sql, sizeof(sql), drop ? "DROP SCHEMA %s CASCADE"
					: "CREATE SCHEMA %s", schema);
	if (pg_exec(conninfo, sql) != 0)
		return -1;
	if (!drop)
		snprintf(target, tlen, "%s options='-c search_path=%s'",
			 conninfo, schema);
	return 0;
}


/* The whole run on one keyring. PostgreSQL (pg_base set): the tables
 * are vacuumed and analysed after the fill, as autovacuum would soon do
 * on a real server, and the stores are measured a second time on a
 * connection with synchronous_commit off (target_async). */
static void run_backend(const char *backend, const char *target,
			const char *what, unsigned keys, size_t n_lookups,
			size_t n_stores, const char *pg_base,
			const char *target_async)
{
	char err[512], addr[96];
	unsigned char mat[BENCH_MATERIAL];
	struct smp_keyring *kr = NULL;
	struct smp_keyring_stats st;
	uint64_t *lat;
	double t, fill_s, secs;
	size_t n;

	if (smp_keyring_open(backend, target, &kr, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_keyring: %s\n", err);
		exit(1);
	}

	/* the database: keys + bindings in transactions of BENCH_BATCH */
	t = now_s();
	for (unsigned i = 0; i < keys; i++) {
		struct smp_key_rec k;
		struct smp_binding b;

		if (i % BENCH_BATCH == 0 && smp_keyring_begin(kr) != 0)
			die(kr, "begin");
		fill_key(&k, mat, i);
		if (smp_keyring_key_put(kr, &k) != 0)
			die(kr, "key_put");
		addr_of(addr, sizeof(addr), i);
		fill_bind(&b, addr, i, 1);
		if (smp_keyring_binding_put(kr, &b) != 0)
			die(kr, "binding_put");
		if ((i % BENCH_BATCH == BENCH_BATCH - 1 || i == keys - 1) &&
		    smp_keyring_commit(kr) != 0)
			die(kr, "commit");
	}
	fill_s = now_s() - t;
	if (smp_keyring_stats(kr, &st) != 0)
		die(kr, "stats");
	if (pg_base && pg_exec(target, "VACUUM ANALYZE keys, bindings, "
			       "events") != 0)
		exit(1);

	printf("keyring benchmark: %s\n", what);
	printf("  database: %lu keys, %lu bindings; filled in %.2f s "
	       "(%.0f keys/s in transactions of %d)\n",
	       st.keys, st.bindings[SMP_BIND_ACTIVE], fill_s,
	       (double)keys / fill_s, BENCH_BATCH);

	lat = calloc(n_lookups, sizeof(*lat));
	if (!lat)
		die(kr, "out of memory");
	printf("\n  %-34s %7s %9s %9s %9s\n", "address lookup (bindings_for)",
	       "count", "p50 us", "p99 us", "max us");
	n = lookups(kr, keys, n_lookups, 1, lat);
	print_lat("existing address (1 binding)", lat, n);
	n = lookups(kr, keys, n_lookups, 0, lat);
	print_lat("absent address", lat, n);
	free(lat);

	printf("\n  %-34s %7s %9s %9s\n", "store, 1 transaction per key",
	       "count", "keys/s", "us/key");
	n = stores(kr, keys, n_stores, 0, &secs);
	printf("  %-34s %7zu %9.0f %9.1f\n",
	       "new key (+binding, +event)", n, (double)n / secs,
	       secs * 1e6 / (double)n);
	n = stores(kr, keys, n, 1, &secs);
	printf("  %-34s %7zu %9.0f %9.1f\n",
	       "known key (merge, binding update)", n, (double)n / secs,
	       secs * 1e6 / (double)n);
	smp_keyring_close(kr);
	if (!target_async)
		return;
	if (smp_keyring_open(backend, target_async, &kr, err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "bench_keyring: %s\n", err);
		exit(1);
	}
	n = stores(kr, keys + (unsigned)n_stores, n_stores, 0, &secs);
	printf("  %-34s %7zu %9.0f %9.1f\n",
	       "new key, synchronous_commit=off", n, (double)n / secs,
	       secs * 1e6 / (double)n);
	n = stores(kr, keys + (unsigned)n_stores, n, 1, &secs);
	printf("  %-34s %7zu %9.0f %9.1f\n",
	       "known key, synchronous_commit=off", n, (double)n / secs,
	       secs * 1e6 / (double)n);
	smp_keyring_close(kr);
}

int main(int argc, char **argv)
{
	unsigned keys = 100000;
	size_t n_lookups = 20000, n_stores = 2000;
	const char *base = getenv("TMPDIR"), *pg = NULL;
	char dir[512], path[560], wal[600], what[1024];
	char schema[64], target[1024], async[1024];

	if (!base || !*base)
		base = "/tmp";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			keys = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--lookups") && i + 1 < argc)
			n_lookups = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--stores") && i + 1 < argc)
			n_stores = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			base = argv[++i];
		else if (!strcmp(argv[i], "--pg") && i + 1 < argc)
			pg = argv[++i];
		else {
			fprintf(stderr, "usage: bench_keyring [--keys N] "
				"[--lookups N] [--stores N] [--dir DIR] "
				"[--pg CONNINFO]\n");
			return 64;
		}
	}
	if (keys < 1 || n_lookups < 1 || n_stores < 1) {
		fprintf(stderr, "bench_keyring: counts must be positive\n");
		return 64;
	}
	snprintf(dir, sizeof(dir), "%s/bench-keyring.XXXXXX", base);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench_keyring: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/keyring.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	snprintf(what, sizeof(what), "SQLite %s, WAL, synchronous=NORMAL, "
		 "in %s", sqlite3_libversion(), dir);
	run_backend("sqlite", path, what, keys, n_lookups, n_stores, NULL,
		    NULL);
	printf("  file: %.1f MB (+ %.1f MB WAL)\n",
	       (double)file_size(path) / 1e6,
	       (double)(file_size(wal) > 0 ? file_size(wal) : 0) / 1e6);
	rm_dir(dir);

	if (!pg)
		return 0;
	if (pg_schema(pg, schema, sizeof(schema), target, sizeof(target), 0))
		return 1;
	{
		PGconn *c = PQconnectdb(pg);
		const char *v = PQparameterStatus(c, "server_version");
		snprintf(what, sizeof(what), "PostgreSQL %s (libpq %d), %s, "
			 "schema %s", v ? v : "?", PQlibVersion(),
			 PQhost(c) && PQhost(c)[0] == '/' ? "unix socket"
							  : "TCP", schema);
		PQfinish(c);
	}
	printf("\n");
	snprintf(async, sizeof(async), "%s options='-c search_path=%s -c "
		 "synchronous_commit=off'", pg, schema);
	run_backend("postgresql", target, what, keys, n_lookups, n_stores, pg,
		    async);
	return pg_schema(pg, schema, sizeof(schema), target, sizeof(target),
			 1) ? 1 : 0;
}
