/*
 * bench_harvest.c - harvest rate through smp_harvest_message() (SPEC.md 4,
 * 9): keys/s and ms/key for NEW keys and for ALREADY-KNOWN keys, with a
 * real GnuPG home and a real SQLite keyring in a temporary directory.
 *
 *   bench_harvest [--keys K] [--dir DIR]
 *
 * At start (not timed) K fresh keys (default 40), each an ed25519 primary
 * with a cv25519 encryption subkey and the user ID
 * "Bench User N <uN@bench.example>", are made by ONE gpg --batch
 * --gen-key run in a scratch GnuPG home (at a faked system time one hour
 * back, so no key is "in the future" for the gpg runs that follow), and
 * exported in binary; smp_keyblock_split() cuts the export into one key
 * each. One more key (u0) is harvested once, untimed, so that the first
 * timed harvest does not pay for creating the home's keybox.
 *
 * Then, one call of smp_harvest_message() per key, as the milter makes it
 * for an inbound SMP message from that key's address (envelope sender =
 * From = uN@bench.example, default harvest config and limits, one part:
 * kind SMP_KEY_PUBLIC, the binary key):
 *   new keys    every key once: outcome "harvested" expected;
 *   known keys  the same messages again: outcome "seen" expected.
 * Printed: keys/s, ms/key (mean, p50, max) and gpg processes per harvest
 * (the report's gpg_ops). Each pass also stops after BENCH_CAP_S seconds.
 * Numbers are printed, never asserted; the exit status is 1 only when the
 * setup fails or a harvest returns -1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smp_gpg.h"
#include "smp_harvest.h"
#include "smp_keyring.h"
#include "smp_limits.h"
#include "smp_result.h"

#define BENCH_CAP_S 45.0
#define BENCH_MAX_KEYS 1000

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
	/* the scratch home's gpg-agent, then the directory */
	snprintf(cmd, sizeof(cmd),
		 "gpgconf --homedir '%s/gen' --kill all >/dev/null 2>&1; rm -rf '%s'",
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

/* Reads a whole stream (binary) into a malloc'd buffer. */
static unsigned char *slurp(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0, r;
	unsigned char *p = malloc(cap);

	while (p && (r = fread(p + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			unsigned char *q = realloc(p, cap *= 2);
			if (!q) {
				free(p);
				return NULL;
			}
			p = q;
		}
	}
	*len = n;
	return p;
}

/* The email of "Name <addr>" (or the whole string). */
static void uid_email(const char *uid, char *out, size_t len)
{
	const char *lt = strrchr(uid, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	if (lt && gt)
		snprintf(out, len, "%.*s", (int)(gt - lt - 1), lt + 1);
	else
		snprintf(out, len, "%s", uid);
}

/* Makes n keys u0..u(n-1) in DIR/gen and returns them, split. */
static struct bkey *make_keys(unsigned n, double *secs)
{
	char path[1200], cmd[8192];
	struct smp_keyblock *kb = NULL;
	struct bkey *keys;
	unsigned char *all;
	size_t alen = 0, nkb = 0;
	FILE *f;
	double t0 = now_s();
	long fake = (long)time(NULL) - 3600;

	snprintf(path, sizeof(path), "%s/gen", scratch);
	if (mkdir(path, 0700))
		die("cannot create %s", path);
	snprintf(path, sizeof(path), "%s/gen.params", scratch);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	for (unsigned i = 0; i < n; i++)
		fprintf(f,
			"Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\n"
			"Subkey-Type: ecdh\nSubkey-Curve: cv25519\n"
			"Subkey-Usage: encrypt\nName-Real: Bench User %u\n"
			"Name-Email: u%u@bench.example\nExpire-Date: 0\n"
			"%%no-protection\n%%commit\n",
			i, i);
	if (fclose(f))
		die("cannot write %s", path);
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s/gen' --batch --quiet --no-tty "
		 "--faked-system-time %ld --gen-key '%s' >/dev/null 2>'%s/gen.err'",
		 scratch, fake, path, scratch);
	if (sh(cmd)) {
		snprintf(cmd, sizeof(cmd), "cat '%s/gen.err' >&2", scratch);
		(void)sh(cmd);
		die("gpg --gen-key failed in %s/gen", scratch);
	}
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s/gen' --batch --no-tty --export 2>/dev/null",
		 scratch);
	f = popen(cmd, "r");
	if (!f)
		die("cannot run %s", "gpg --export");
	all = slurp(f, &alen);
	if (pclose(f) != 0 || !all || alen == 0)
		die("gpg --export from %s/gen failed", scratch);
	if (smp_keyblock_split(all, alen, &kb, &nkb) || nkb != n)
		die("the export does not hold the keys made (%s)", "smp_keyblock_split");
	keys = calloc(n, sizeof(*keys));
	if (!keys)
		die("%s", "out of memory");
	for (size_t i = 0; i < nkb; i++) {
		char **uids = NULL;
		size_t nu = 0;
		struct bkey *k = &keys[i];

		if (smp_keyblock_uids(all + kb[i].off, kb[i].len, &uids, &nu) || nu != 1)
			die("key %s: not one user ID", kb[i].fpr);
		uid_email(uids[0], k->addr, sizeof(k->addr));
		smp_strv_free(uids, nu);
		snprintf(k->fpr, sizeof(k->fpr), "%s", kb[i].fpr);
		k->len = kb[i].len;
		k->data = malloc(k->len);
		if (!k->data)
			die("%s", "out of memory");
		memcpy(k->data, all + kb[i].off, k->len);
	}
	free(kb);
	free(all);
	snprintf(cmd, sizeof(cmd), "gpgconf --homedir '%s/gen' --kill all >/dev/null 2>&1",
		 scratch);
	(void)sh(cmd);
	*secs = now_s() - t0;
	return keys;
}

struct pass {
	const char *name;
	enum smp_harvest_outcome want;
	unsigned done, as_wanted;
	unsigned count[SMP_HV_COUNT];
	unsigned long gpg_ops;
	double secs;
	double *ms;
};

/* One smp_harvest_message() call as the milter makes it for an inbound
 * SMP message from k->addr carrying k's key. Returns the outcome of its
 * one line, or -1. */
static int harvest_one(struct smp_keyring *kr, struct smp_gpg *g,
		       const struct smp_harvest_config *cfg,
		       const struct smp_limits *lim, const struct bkey *k,
		       unsigned serial, unsigned long *gpg_ops)
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
	memset(&part, 0, sizeof(part));
	part.name = (char *)"public-key-1";
	part.kind = SMP_KEY_PUBLIC;
	part.encoding = SMP_ENC_BINARY;
	part.nkeys = 1;
	part.data = k->data;
	part.size = k->len;
	if (smp_harvest_message(kr, g, &ctx, &part, 1, &rep) < 0) {
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
	smp_harvest_report_clear(&rep);
	return outcome;
}

static int run_pass(struct pass *p, struct smp_keyring *kr, struct smp_gpg *g,
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
		int o = harvest_one(kr, g, cfg, lim, &keys[i], (*serial)++, &p->gpg_ops);

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
	printf("%-22s %5u %8.3f %8.1f %8.2f %8.2f %8.2f %10.2f   %u/%u %s\n",
	       p->name, p->done, p->secs, p->secs > 0 ? p->done / p->secs : 0.0,
	       p->done ? p->secs * 1000.0 / p->done : 0.0, p50, max,
	       p->done ? (double)p->gpg_ops / p->done : 0.0, p->as_wanted,
	       p->done, smp_harvest_outcome_name(p->want));
}

int main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR");
	unsigned nkeys = 40, serial = 1;
	struct smp_harvest_config cfg;
	struct smp_limits lim;
	struct smp_keyring *kr = NULL;
	struct smp_gpg *g = NULL;
	struct pass fresh = {.name = "new keys (harvested)", .want = SMP_HV_HARVESTED};
	struct pass known = {.name = "known keys (seen)", .want = SMP_HV_SEEN};
	struct bkey *keys;
	char path[1200], err[512];
	double gen_s, t0;
	unsigned long warm_ops = 0;
	int warm;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
			nkeys = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			base = argv[++i];
		} else {
			fprintf(stderr, "usage: bench_harvest [--keys K] [--dir DIR]\n");
			return 64;
		}
	}
	if (nkeys < 1 || nkeys > BENCH_MAX_KEYS) {
		fprintf(stderr, "bench_harvest: --keys must be 1..%d\n", BENCH_MAX_KEYS);
		return 64;
	}
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

	snprintf(path, sizeof(path), "%s/keyring.db", scratch);
	if (smp_keyring_open("sqlite", path, &kr, err, sizeof(err)) < 0)
		die("%s", err);
	snprintf(path, sizeof(path), "%s/gnupg", scratch);
	if (smp_gpg_open(path, &g, err, sizeof(err)) < 0)
		die("%s", err);
	smp_harvest_config_init(&cfg);
	smp_limits_init(&lim);

	t0 = now_s();
	warm = harvest_one(kr, g, &cfg, &lim, &keys[0], serial++, &warm_ops);
	if (warm == -1)
		die("%s", "warm-up harvest failed");
	printf("bench_harvest: smp_harvest_message() with a real GnuPG home and SQLite keyring in %s\n",
	       scratch);
	printf("  %u fresh keys (ed25519 + cv25519 subkey) made in %.2f s by one gpg --gen-key run (not timed)\n",
	       nkeys + 1, gen_s);
	printf("  warm-up: one key harvested (%s) in %.1f ms, %lu gpg processes (creates the home's keybox; not timed)\n",
	       warm >= 0 ? smp_harvest_outcome_name((enum smp_harvest_outcome)warm) : "?",
	       (now_s() - t0) * 1000.0, warm_ops);
	printf("  one inbound SMP message per key (sender = From = the key's address), default harvest config\n\n");

	if (run_pass(&fresh, kr, g, &cfg, &lim, keys + 1, nkeys, &serial) ||
	    run_pass(&known, kr, g, &cfg, &lim, keys + 1, nkeys, &serial))
		die("%s", "a harvest failed");

	printf("%-22s %5s %8s %8s %8s %8s %8s %10s   %s\n", "pass", "keys", "seconds",
	       "keys/s", "ms/key", "p50 ms", "max ms", "gpg/key", "outcome");
	print_pass(&fresh);
	print_pass(&known);
	if (fresh.as_wanted != fresh.done || known.as_wanted != known.done) {
		printf("  (outcomes other than expected:");
		for (int o = 0; o < SMP_HV_COUNT; o++)
			if (fresh.count[o] + known.count[o])
				printf(" %s=%u", smp_harvest_outcome_name((enum smp_harvest_outcome)o),
				       fresh.count[o] + known.count[o]);
		printf(")\n");
	}
	if (fresh.done < nkeys || known.done < nkeys)
		printf("  (stopped after %.0f s per pass)\n", BENCH_CAP_S);
	printf("  known/new speed-up: %.1fx; gpg processes counted by smp_gpg_ops(): %lu in all\n",
	       fresh.secs > 0 && known.secs > 0 && known.done ?
		       (known.done / known.secs) / (fresh.done / fresh.secs) : 0.0,
	       smp_gpg_ops(g));

	for (unsigned i = 0; i <= nkeys; i++)
		free(keys[i].data);
	free(keys);
	free(fresh.ms);
	free(known.ms);
	smp_gpg_close(g);
	smp_keyring_close(kr);
	cleanup();
	return 0;
}
