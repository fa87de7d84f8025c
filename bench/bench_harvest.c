/*
 * bench_harvest.c - harvest rate through smp_harvest_message() on each
 * crypto engine (SPEC.md 4, 9): keys/s and ms/key for NEW keys and for
 * ALREADY-KNOWN keys, with a real SQLite keyring in a temporary directory
 * (and, for the gnupg engine, a real GnuPG home beside it); with --pg
 * (bench/harvest.mk passes a throwaway durable server it starts with
 * tests/pg/pg-start.sh --durable) the rnp pass once more on a PostgreSQL
 * keyring, in a fresh schema dropped afterwards.
 *
 *   bench_harvest [--keys K] [--gnupg-keys G] [--dir DIR] [--pg CONNINFO]
 *
 * At start (not timed) K + 1 fresh keys (default K = 2000), each an
 * ed25519 primary with a cv25519 encryption subkey and the user ID
 * "Bench User N <uN@bench.example>", are made with librnp in process (at
 * a clock one hour back, so no key is "in the future"), each exported in
 * binary on its own. Key u0 is harvested once per engine, untimed (a warm
 * start: the gnupg engine creates its home's keybox then).
 *
 * Then, per engine (rnp: keys u1..uK; gnupg: u1..uG, default G = 40: a
 * gpg process per inspection), each with a keyring of its own, one call
 * of smp_harvest_message() per key, as the milter makes it for an
 * inbound SMP message from that key's address (envelope sender = From =
 * uN@bench.example, default harvest config and limits, one part: kind
 * SMP_KEY_PUBLIC, the binary key):
 *   new keys    every key once: outcome "harvested" expected;
 *   known keys  the same messages again: outcome "seen" expected (with
 *               the daemon's memo of known blocks, smp_harvest_memo: the
 *               new pass remembered every block, so no crypto work);
 *   restarted   the same messages with a new, empty memo: decided
 *               by the keyring's known_blocks table (one read per key),
 *               still no crypto work.
 * Printed: keys/s, ms/key (mean, p50, max), crypto calls and gpg
 * processes per harvest (the report's crypto_ops and gpg_ops), and the
 * goals of issue 9 (>= 1,000 new and >= 10,000 known keys/s). Each pass
 * also stops after BENCH_CAP_S seconds. Numbers are printed, never
 * asserted; the exit status is 1 only when the setup fails or a harvest
 * returns -1.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

#include "smp_crypto.h"
#include "smp_gpg.h"
#include "smp_harvest.h"
#include "smp_keyring.h"
#include "smp_limits.h"
#include "smp_result.h"

#define BENCH_CAP_S 30.0
#define BENCH_MAX_KEYS 100000

struct bkey {
	char addr[64];
	char fpr[SMP_FPR_MAX];
	unsigned char *data;
	size_t len;
};

static char scratch[1024];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Runs a shell command; 0 when it exited 0. */
static int sh(const char *cmd)
{
	int st = system(cmd);

	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void cleanup(void)
{
	char cmd[4300];

	if (!scratch[0])
		return;
	snprintf(cmd, sizeof(cmd),
		 "gpgconf --homedir '%s/gnupg' --kill all >/dev/null 2>&1; "
		 "rm -rf '%s'",
		 scratch, scratch);
	if (sh(cmd))
		fprintf(stderr, "bench_harvest: could not remove %s\n", scratch);
	scratch[0] = '\0';
}

static void die(const char *fmt, const char *arg)
	__attribute__((format(printf, 1, 0), noreturn));
static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "bench_harvest: ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
	fprintf(stderr, "\n");
	cleanup();
	exit(1);
}

/* Makes n keys u0..u(n-1) with librnp (one FFI, a clock one hour back)
 * and exports each on its own. */
static struct bkey *make_keys(unsigned n, double *secs)
{
	rnp_ffi_t ffi = NULL;
	struct bkey *keys = calloc(n, sizeof(*keys));
	double t0 = now_s();

	if (!keys || rnp_ffi_create(&ffi, "GPG", "GPG") != RNP_SUCCESS ||
	    rnp_set_timestamp(ffi, (uint64_t)time(NULL) - 3600) != RNP_SUCCESS)
		die("%s", "librnp cannot start");
	for (unsigned i = 0; i < n; i++) {
		struct bkey *k = &keys[i];
		rnp_op_generate_t op = NULL;
		rnp_key_handle_t primary = NULL, sub = NULL;
		rnp_output_t out = NULL;
		uint8_t *buf = NULL;
		size_t len = 0;
		char uid[128], *fpr = NULL;

		snprintf(k->addr, sizeof(k->addr), "u%u@bench.example", i);
		snprintf(uid, sizeof(uid), "Bench User %u <%s>", i, k->addr);
		if (rnp_op_generate_create(&op, ffi, "EDDSA") ||
		    rnp_op_generate_set_userid(op, uid) ||
		    rnp_op_generate_set_expiration(op, 0) ||
		    rnp_op_generate_execute(op) ||
		    rnp_op_generate_get_key(op, &primary))
			die("librnp cannot make key %s", uid);
		rnp_op_generate_destroy(op);
		if (rnp_op_generate_subkey_create(&op, ffi, primary, "ECDH") ||
		    rnp_op_generate_set_curve(op, "Curve25519") ||
		    rnp_op_generate_set_expiration(op, 0) ||
		    rnp_op_generate_execute(op) ||
		    rnp_op_generate_get_key(op, &sub))
			die("librnp cannot make the subkey of %s", uid);
		rnp_op_generate_destroy(op);
		if (rnp_output_to_memory(&out, 0) ||
		    rnp_key_export(primary, out, RNP_KEY_EXPORT_PUBLIC |
							 RNP_KEY_EXPORT_SUBKEYS) ||
		    rnp_output_memory_get_buf(out, &buf, &len, false) ||
		    rnp_key_get_fprint(primary, &fpr))
			die("librnp cannot export %s", uid);
		snprintf(k->fpr, sizeof(k->fpr), "%s", fpr);
		rnp_buffer_destroy(fpr);
		k->data = malloc(len);
		if (!k->data)
			die("%s", "out of memory");
		memcpy(k->data, buf, len);
		k->len = len;
		rnp_output_destroy(out);
		rnp_key_handle_destroy(sub);
		rnp_key_handle_destroy(primary);
		/* one key at a time in the FFI */
		rnp_unload_keys(ffi, RNP_KEY_UNLOAD_PUBLIC | RNP_KEY_UNLOAD_SECRET);
	}
	rnp_ffi_destroy(ffi);
	*secs = now_s() - t0;
	return keys;
}

struct pass {
	const char *name;
	enum smp_harvest_outcome want;
	unsigned done, as_wanted;
	unsigned count[SMP_HV_COUNT];
	unsigned long gpg_ops, crypto_ops;
	double secs;
	double *ms;
};

/* One smp_harvest_message() call as the milter makes it for an inbound
 * SMP message from k->addr carrying k's key. Returns the outcome of its
 * one line, or -1. */
static struct smp_harvest_memo *memo; /* the engine's, as a pool slot's */

static int harvest_one(struct smp_keyring *kr, struct smp_crypto *c,
		       const struct smp_harvest_config *cfg,
		       const struct smp_limits *lim, const struct bkey *k,
		       unsigned serial, unsigned long *gpg_ops,
		       unsigned long *crypto_ops)
{
	const char *from[1] = {k->addr};
	char msgid[128];
	struct smp_harvest_ctx ctx;
	struct smp_key_part part;
	struct smp_harvest_report rep = {0};
	int outcome;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.limits = lim;
	ctx.envelope_sender = k->addr;
	ctx.from = from;
	ctx.nfrom = 1;
	ctx.outbound = false;
	snprintf(msgid, sizeof(msgid), "<bench-%u@bench.example>", serial);
	ctx.message_id = msgid;
	ctx.client_addr = "192.0.2.25";
	ctx.source = SMP_SRC_SMP;
	ctx.memo = memo;
	memset(&part, 0, sizeof(part));
	part.name = (char *)"public-key-1";
	part.kind = SMP_KEY_PUBLIC;
	part.encoding = SMP_ENC_BINARY;
	part.nkeys = 1;
	part.data = k->data;
	part.size = k->len;
	if (smp_harvest_message(kr, c, &ctx, &part, 1, &rep) < 0) {
		fprintf(stderr, "bench_harvest: harvest of %s failed: %s\n",
			k->addr, rep.error);
		smp_harvest_report_clear(&rep);
		return -1;
	}
	outcome = rep.n == 1 ? (int)rep.lines[0].outcome : -2;
	if (rep.n == 1 && rep.lines[0].outcome == SMP_HV_REFUSED)
		fprintf(stderr, "bench_harvest: %s refused: %s\n", k->addr,
			smp_harvest_reason_token(rep.lines[0].reason));
	*gpg_ops += rep.gpg_ops;
	*crypto_ops += rep.crypto_ops;
	smp_harvest_report_clear(&rep);
	return outcome;
}

static int run_pass(struct pass *p, struct smp_keyring *kr, struct smp_crypto *c,
		    const struct smp_harvest_config *cfg,
		    const struct smp_limits *lim, const struct bkey *keys,
		    unsigned n, unsigned *serial)
{
	double t0 = now_s();

	p->ms = calloc(n, sizeof(double));
	if (!p->ms)
		return -1;
	for (unsigned i = 0; i < n && now_s() - t0 < BENCH_CAP_S; i++) {
		double t = now_s();
		int o = harvest_one(kr, c, cfg, lim, &keys[i], (*serial)++,
				    &p->gpg_ops, &p->crypto_ops);

		if (o == -1)
			return -1;
		p->ms[p->done++] = (now_s() - t) * 1000.0;
		if (o >= 0 && o < SMP_HV_COUNT)
			p->count[o]++;
		if (o == (int)p->want)
			p->as_wanted++;
	}
	p->secs = now_s() - t0;
	return 0;
}

static void print_pass(const struct pass *p)
{
	double *s = malloc(p->done * sizeof(double) + 1);
	double p50 = 0, max = 0;

	if (s && p->done) {
		memcpy(s, p->ms, p->done * sizeof(double));
		qsort(s, p->done, sizeof(double), cmp_double);
		p50 = s[p->done / 2];
		max = s[p->done - 1];
	}
	free(s);
	printf("  %-21s %5u %8.3f %9.1f %8.3f %8.3f %8.2f %7.2f %7.2f   %u/%u %s\n",
	       p->name, p->done, p->secs, p->secs > 0 ? p->done / p->secs : 0.0,
	       p->done ? p->secs * 1000.0 / p->done : 0.0, p50, max,
	       p->done ? (double)p->crypto_ops / p->done : 0.0,
	       p->done ? (double)p->gpg_ops / p->done : 0.0, p->as_wanted,
	       p->done, smp_harvest_outcome_name(p->want));
}

static void pg_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* CREATE SCHEMA (create) or DROP SCHEMA ... CASCADE on the database of
 * conninfo; 0 or -1 (said on stderr). */
static int pg_schema(const char *conninfo, const char *schema, int create)
{
	PGconn *pc = PQconnectdb(conninfo);
	PGresult *r = NULL;
	char sql[160];
	int rc = -1;

	if (PQstatus(pc) != CONNECTION_OK) {
		fprintf(stderr, "bench_harvest: %s", PQerrorMessage(pc));
		goto out;
	}
	PQsetNoticeProcessor(pc, pg_quiet, NULL);
	snprintf(sql, sizeof(sql), create ? "CREATE SCHEMA %s"
					  : "DROP SCHEMA %s CASCADE", schema);
	r = PQexec(pc, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "bench_harvest: %s: %s", sql, PQerrorMessage(pc));
		goto out;
	}
	rc = 0;
out:
	PQclear(r);
	PQfinish(pc);
	return rc;
}

/* One engine: its own keyring (and GnuPG home), a warm-up key, then the
 * new and the known pass over keys[1..n]. *rates receives new and known
 * keys/s. pg: the keyring is on PostgreSQL (that conninfo) instead of an
 * SQLite file. */
static void run_engine(const char *engine, const char *pg,
		       const struct bkey *keys, unsigned n, double rates[2])
{
	struct smp_harvest_config cfg;
	struct smp_limits lim;
	struct smp_keyring *kr = NULL;
	struct smp_crypto *c = NULL;
	struct pass fresh = {.name = "new keys (harvested)", .want = SMP_HV_HARVESTED};
	struct pass known = {.name = "known keys (seen)", .want = SMP_HV_SEEN};
	struct pass restart = {.name = "restarted (seen)", .want = SMP_HV_SEEN};
	char path[1200], home[1200], err[512];
	unsigned serial = 1;
	unsigned long warm_ops = 0, warm_calls = 0;
	struct smp_crypto_stats st;
	double t0;
	int warm;

	if (pg)
		snprintf(path, sizeof(path), "%s", pg);
	else
		snprintf(path, sizeof(path), "%s/keyring-%s.db", scratch, engine);
	snprintf(home, sizeof(home), "%s/gnupg", scratch);
	if (smp_keyring_open(pg ? "postgresql" : "sqlite", path, &kr, err,
			     sizeof(err)) < 0 ||
	    smp_crypto_open(engine, home, &c, err, sizeof(err)) < 0)
		die("%s", err);
	memo = smp_harvest_memo_new(SMP_HARVEST_MEMO_DEFAULT);
	if (!memo)
		die("%s", "out of memory");
	smp_harvest_config_init(&cfg);
	smp_limits_init(&lim);

	t0 = now_s();
	warm = harvest_one(kr, c, &cfg, &lim, &keys[0], serial++, &warm_ops,
			   &warm_calls);
	if (warm == -1)
		die("%s", "warm-up harvest failed");
	printf("\n%s engine: keyring %s%s%s\n", engine,
	       pg ? "on PostgreSQL (a schema of its own)" : path,
	       strcmp(engine, "gnupg") ? "" : ", GnuPG home ",
	       strcmp(engine, "gnupg") ? "" : home);
	printf("  warm-up: one key harvested (%s) in %.1f ms, %lu gpg processes (not timed)\n",
	       warm >= 0 ? smp_harvest_outcome_name((enum smp_harvest_outcome)warm) : "?",
	       (now_s() - t0) * 1000.0, warm_ops);
	if (run_pass(&fresh, kr, c, &cfg, &lim, keys + 1, n, &serial) ||
	    run_pass(&known, kr, c, &cfg, &lim, keys + 1, n, &serial))
		die("%s", "a harvest failed");
	/* the daemon restarted: its memory is empty, the keyring is not */
	smp_harvest_memo_free(memo);
	memo = smp_harvest_memo_new(SMP_HARVEST_MEMO_DEFAULT);
	if (!memo || run_pass(&restart, kr, c, &cfg, &lim, keys + 1, n, &serial))
		die("%s", "a harvest failed");
	printf("  %-21s %5s %8s %9s %8s %8s %8s %7s %7s   %s\n", "pass", "keys",
	       "seconds", "keys/s", "ms/key", "p50 ms", "max ms", "crypto",
	       "gpg", "outcome");
	print_pass(&fresh);
	print_pass(&known);
	print_pass(&restart);
	if (fresh.as_wanted != fresh.done || known.as_wanted != known.done ||
	    restart.as_wanted != restart.done) {
		printf("  (outcomes other than expected:");
		for (int o = 0; o < SMP_HV_COUNT; o++)
			if (fresh.count[o] + known.count[o] + restart.count[o])
				printf(" %s=%u", smp_harvest_outcome_name((enum smp_harvest_outcome)o),
				       fresh.count[o] + known.count[o] +
					       restart.count[o]);
		printf(")\n");
	}
	if (fresh.done < n || known.done < n || restart.done < n)
		printf("  (stopped after %.0f s per pass)\n", BENCH_CAP_S);
	smp_crypto_get_stats(c, &st);
	printf("  known/new speed-up: %.1fx; gpg processes in all: %lu\n",
	       fresh.secs > 0 && known.secs > 0 && known.done ?
		       (known.done / known.secs) / (fresh.done / fresh.secs) : 0.0,
	       st.processes);
	rates[0] = fresh.secs > 0 ? fresh.done / fresh.secs : 0;
	rates[1] = known.secs > 0 ? known.done / known.secs : 0;
	free(fresh.ms);
	free(known.ms);
	free(restart.ms);
	smp_crypto_close(c);
	smp_keyring_close(kr);
	smp_harvest_memo_free(memo);
	memo = NULL;
}

int main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR");
	unsigned nkeys = 2000, ngnupg = 40;
	struct bkey *keys;
	const char *pg = NULL;
	char schema[64], target[1400];
	double gen_s, rnp_r[2], gpg_r[2], pg_r[2] = {0, 0};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
			nkeys = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--gnupg-keys") && i + 1 < argc) {
			ngnupg = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			base = argv[++i];
		} else if (!strcmp(argv[i], "--pg") && i + 1 < argc) {
			pg = argv[++i];
		} else {
			fprintf(stderr, "usage: bench_harvest [--keys K] "
					"[--gnupg-keys G] [--dir DIR] "
					"[--pg CONNINFO]\n");
			return 64;
		}
	}
	if (nkeys < 1 || nkeys > BENCH_MAX_KEYS) {
		fprintf(stderr, "bench_harvest: --keys must be 1..%d\n", BENCH_MAX_KEYS);
		return 64;
	}
	if (ngnupg > nkeys)
		ngnupg = nkeys;
	if (!base || !*base)
		base = "/tmp";
	if (strchr(base, '\'')) {
		fprintf(stderr, "bench_harvest: no quote in the directory, please\n");
		return 64;
	}
	snprintf(scratch, sizeof(scratch), "%s/smp-bench-harvest.XXXXXX", base);
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "bench_harvest: mkdtemp %s: %s\n", scratch, strerror(errno));
		return 1;
	}

	/* u0 is the warm-up key, u1..uK are timed */
	keys = make_keys(nkeys + 1, &gen_s);
	printf("bench_harvest: smp_harvest_message() on each crypto engine, a SQLite keyring per engine in %s\n",
	       scratch);
	printf("  %u fresh keys (ed25519 + cv25519 subkey) made with librnp in %.2f s (not timed)\n",
	       nkeys + 1, gen_s);
	printf("  one inbound SMP message per key (sender = From = the key's address), default harvest config;\n"
	       "  crypto = smp_crypto calls per key, gpg = gpg processes per key\n");
	run_engine("rnp", NULL, keys, nkeys, rnp_r);
	run_engine("gnupg", NULL, keys, ngnupg, gpg_r);
	if (pg) {
		snprintf(schema, sizeof(schema), "bench_harvest_%ld", (long)getpid());
		if (pg_schema(pg, schema, 1) != 0)
			die("%s", "cannot create a schema on the PostgreSQL server");
		snprintf(target, sizeof(target), "%s options='-c search_path=%s'",
			 pg, schema);
		run_engine("rnp", target, keys, nkeys, pg_r);
		pg_schema(pg, schema, 0);
	}
	printf("\nsummary (keys/s)        new        known\n");
	printf("  rnp engine      %10.1f %12.1f\n", rnp_r[0], rnp_r[1]);
	printf("  gnupg engine    %10.1f %12.1f\n", gpg_r[0], gpg_r[1]);
	if (pg)
		printf("  rnp, PostgreSQL %10.1f %12.1f\n", pg_r[0], pg_r[1]);
	printf("  goals (issue 9)     1000.0      10000.0   rnp: new %s, known %s\n",
	       rnp_r[0] >= 1000 ? "met" : "NOT met",
	       rnp_r[1] >= 10000 ? "met" : "NOT met");

	for (unsigned i = 0; i <= nkeys; i++)
		free(keys[i].data);
	free(keys);
	cleanup();
	return 0;
}
