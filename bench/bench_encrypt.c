/*
 * bench_encrypt.c - outbound encryption throughput (SPEC.md 5, 8, 9): the
 * milter's library path on a crypto engine vs a bare gpgme encrypt loop,
 * in one run.
 *
 *   bench_encrypt --smpctl PATH [--engine rnp|gnupg] [--dir DIR]
 *                 [--small N] [--large N]
 *
 * Setup (not timed): a temporary directory (under DIR, $TMPDIR or /tmp)
 * with a config naming an SQLite keyring and a GnuPG home there;
 * "smpctl -c CONF keys import fixtures/keys/bob.pub.asc" pins bob's key to
 * bob@example.net in the keyring, and "smpctl keys rebuild" puts the
 * keyring into the GnuPG home (whose gpg.conf smp_gpg_open() writes:
 * no-random-seed-file, trust-model always, ...) for the bare gpgme loop
 * and the gnupg engine. Two messages from alice@example.org to bob@example.net, CRLF line
 * ends as the milter buffers them: SMALL, text/plain of about 20 KB, and
 * LARGE, multipart/mixed of about 1 MB (a short text part and a base64
 * attachment of random octets).
 *
 * For each message, the same number of iterations (--small N, default
 * 240; --large N, default 36), alternating in 3 rounds:
 *   (a) library  what the daemon runs per message at end of message
 *                (smp-milter/milter.c eom_encrypt): smp_encrypt_check(),
 *                smp_policy_decide() (default opportunistic) on the
 *                keyring, smp_encrypt_message() to the decided keys on the
 *                engine (--engine, default rnp: the milter's default); one
 *                warm-up call first (the engine reads bob's key into its
 *                cache: rnp parses it, gnupg imports it, one gpg run);
 *   (b) bare     gpgme_op_encrypt() of the same message bytes to bob's key
 *                (gpgme_get_key once, untimed) with
 *                GPGME_ENCRYPT_ALWAYS_TRUST, one reused context on the same
 *                GnuPG home, armored output into a memory buffer.
 * Printed: msgs/s, MB/s (10^6 octets of the input message), ms/msg (mean,
 * p50, max), gpg processes per message (a: the library's own count,
 * smp_encrypted.gpg_runs; b: one gpgme operation is one gpg process; to
 * check independently: strace -f -e trace=execve counts one execve of gpg
 * per message and path, plus the untimed setup), and the ratio (a)/(b) of
 * msgs/s (goal >= 0.8).
 *
 *   (c) 2 threads  (a) and (b) again with two threads at once, each with
 *                its own keyring connection and engine instance (a) or
 *                gpgme context (b), on the one GnuPG home; each thread runs the
 *                same iteration count as above (aggregate msgs/s and the
 *                speed-up over one thread). Then, for the SMALL message, (b)
 *                with two threads on a copy of the home whose gpg.conf
 *                lacks no-random-seed-file: every gpg run then locks and
 *                rewrites the home's random_seed, which serialises
 *                parallel runs (SPEC.md 9).
 *
 * Every pass also stops after BENCH_CAP_S seconds (then it says so). Numbers
 * are printed, never asserted; exit 1 only when the setup fails or an
 * encryption fails.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gpgme.h>

#include "smp_crypto.h"
#include "smp_encrypt.h"
#include "smp_gpg.h"
#include "smp_keyring.h"
#include "smp_policy.h"

#define BENCH_CAP_S 12.0
#define BENCH_ROUNDS 3
#define BOB "bob@example.net"
#define BOB_KEY "fixtures/keys/bob.pub.asc"
#define SMALL_TARGET 20000u
#define LARGE_TARGET 1048576u

static char scratch[1024];
static char home[1100], seedhome[1100], dbpath[1100];

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

static int sh(const char *cmd)
{
	int st = system(cmd);

	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void cleanup(void)
{
	char cmd[2200];

	if (!scratch[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	if (sh(cmd))
		fprintf(stderr, "bench_encrypt: could not remove %s\n", scratch);
	scratch[0] = '\0';
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_encrypt: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	cleanup();
	exit(1);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

struct msg {
	const char *name;
	char *buf;
	size_t len;
	unsigned iters;
};

static void app(char **b, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void app(char **b, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*b + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf failed");
		if ((size_t)n < *cap - *len)
			break;
		*cap = (*cap + (size_t)n) * 2;
		*b = realloc(*b, *cap);
		if (!*b)
			die("out of memory");
	}
	*len += (size_t)n;
}

static void header(char **b, size_t *len, size_t *cap, const char *subject,
		   const char *ctype)
{
	app(b, len, cap,
	    "Received: from client.example.org (client.example.org [192.0.2.25])\r\n"
	    "\tby mx.example.org (Postfix) with ESMTPSA id 4Xb2Q51bQzz9sVv\r\n"
	    "\tfor <" BOB ">; Tue, 4 Mar 2025 10:00:00 +0100 (CET)\r\n"
	    "From: Alice <alice@example.org>\r\n"
	    "To: Bob <" BOB ">\r\n"
	    "Subject: %s\r\n"
	    "Date: Tue, 4 Mar 2025 10:00:00 +0100\r\n"
	    "Message-ID: <bench-encrypt-%s@example.org>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: %s\r\n",
	    subject, subject, ctype);
}

/* Plain text of about target octets. */
static struct msg make_small(unsigned iters)
{
	struct msg m = {.name = "~20 KB text/plain", .iters = iters};
	size_t cap = SMALL_TARGET + 4096, len = 0;
	unsigned line = 0;

	m.buf = malloc(cap);
	if (!m.buf)
		die("out of memory");
	header(&m.buf, &len, &cap, "small", "text/plain; charset=us-ascii");
	app(&m.buf, &len, &cap, "Content-Transfer-Encoding: 7bit\r\n\r\n");
	while (len < SMALL_TARGET)
		app(&m.buf, &len, &cap,
		    "%05u The quarterly figures are attached below, as discussed on Monday.\r\n",
		    ++line);
	m.len = len;
	return m;
}

/* multipart/mixed: a short text and a base64 attachment of random octets,
 * about target octets in all. */
static struct msg make_large(unsigned iters)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct msg m = {.name = "~1 MB multipart", .iters = iters};
	size_t cap = LARGE_TARGET + 8192, len = 0;
	uint64_t x = 0x9e3779b97f4a7c15u;

	m.buf = malloc(cap);
	if (!m.buf)
		die("out of memory");
	header(&m.buf, &len, &cap, "large",
	       "multipart/mixed; boundary=\"bench-encrypt-boundary\"");
	app(&m.buf, &len, &cap,
	    "\r\nThis is a multi-part message in MIME format.\r\n"
	    "--bench-encrypt-boundary\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "Bob, the report is attached.\r\n\r\nAlice\r\n"
	    "--bench-encrypt-boundary\r\n"
	    "Content-Type: application/octet-stream; name=\"report.bin\"\r\n"
	    "Content-Disposition: attachment; filename=\"report.bin\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	while (len < LARGE_TARGET - 200) {
		char l[79];
		for (int i = 0; i < 76; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			l[i] = b64[x & 63];
		}
		l[76] = '\r';
		l[77] = '\n';
		l[78] = '\0';
		app(&m.buf, &len, &cap, "%s", l);
	}
	app(&m.buf, &len, &cap, "--bench-encrypt-boundary--\r\n");
	m.len = len;
	return m;
}

/* ------------------------------------------------------------------ */
/* Passes                                                              */

struct pass {
	unsigned done;
	double secs;
	double *ms;
	unsigned long gpg_runs;   /* (a): smp_encrypted.gpg_runs */
	double pre_ms;            /* (a): check + decide, summed */
	double enc_ms;            /* (a): smp_encrypt_message, summed */
	size_t out_len;           /* of the last output */
};

/* What one thread of (a) needs. */
struct lib_worker {
	struct smp_keyring *kr;
	struct smp_crypto *c;
	const struct smp_policy *pol;
};

/* (a): one message the way eom_encrypt does it. 0 or -1. */
static int lib_once(struct lib_worker *w, const struct msg *m, struct pass *p)
{
	const char *rcpts[1] = {"<" BOB ">"};
	struct smp_encrypt_opts o;
	struct smp_decision d;
	struct smp_encrypted e;
	char err[512];
	double t0 = now_s(), t1;
	int st;

	smp_encrypt_opts_init(&o);
	st = smp_encrypt_check(m->buf, m->len, &o);
	if (st != SMP_ENCRYPT_OK) {
		fprintf(stderr, "bench_encrypt: smp_encrypt_check: %s\n",
			smp_encrypt_status_name(st));
		return -1;
	}
	if (smp_policy_decide(w->pol, w->kr, rcpts, 1, 0, &d) < 0) {
		fprintf(stderr, "bench_encrypt: keyring: %s\n", smp_keyring_errmsg(w->kr));
		return -1;
	}
	if (d.action != SMP_ACTION_ENCRYPT || d.nfprs != 1) {
		fprintf(stderr, "bench_encrypt: policy decided %s, not encrypt\n",
			smp_action_name(d.action));
		smp_decision_clear(&d);
		return -1;
	}
	t1 = now_s();
	st = smp_encrypt_message(w->c, w->kr, m->buf, m->len, (const char *const *)d.fprs,
				 d.nfprs, &o, &e, err, sizeof(err));
	smp_decision_clear(&d);
	if (p) {
		p->pre_ms += (t1 - t0) * 1000.0;
		p->enc_ms += (now_s() - t1) * 1000.0;
		p->gpg_runs += e.gpg_runs;
	}
	if (st != SMP_ENCRYPT_OK) {
		fprintf(stderr, "bench_encrypt: smp_encrypt_message: %s: %s\n",
			smp_encrypt_status_name(st), err);
		return -1;
	}
	if (!memmem(e.body, e.body_len, "-----BEGIN PGP MESSAGE-----", 27)) {
		fprintf(stderr, "bench_encrypt: no PGP MESSAGE in the new body\n");
		smp_encrypted_clear(&e);
		return -1;
	}
	if (p)
		p->out_len = e.body_len;
	smp_encrypted_clear(&e);
	return 0;
}

/* What one thread of (b) needs. */
struct bare_worker {
	gpgme_ctx_t ctx;
	gpgme_key_t keys[2];
};

static int bare_open(struct bare_worker *w, const char *h, const char *fpr)
{
	gpgme_error_t e;

	memset(w, 0, sizeof(*w));
	if ((e = gpgme_new(&w->ctx)) ||
	    (e = gpgme_set_protocol(w->ctx, GPGME_PROTOCOL_OpenPGP)) ||
	    (e = gpgme_ctx_set_engine_info(w->ctx, GPGME_PROTOCOL_OpenPGP, NULL, h))) {
		fprintf(stderr, "bench_encrypt: gpgme context: %s\n", gpgme_strerror(e));
		return -1;
	}
	gpgme_set_armor(w->ctx, 1);
	if ((e = gpgme_get_key(w->ctx, fpr, &w->keys[0], 0))) {
		fprintf(stderr, "bench_encrypt: gpgme_get_key %s in %s: %s\n", fpr, h,
			gpgme_strerror(e));
		return -1;
	}
	return 0;
}

static void bare_close(struct bare_worker *w)
{
	if (w->keys[0])
		gpgme_key_unref(w->keys[0]);
	if (w->ctx)
		gpgme_release(w->ctx);
	memset(w, 0, sizeof(*w));
}

/* (b): one bare gpgme encryption. 0 or -1. */
static int bare_once(struct bare_worker *w, const struct msg *m, struct pass *p)
{
	gpgme_data_t in = NULL, out = NULL;
	gpgme_error_t e;
	size_t n = 0;
	char *res;

	if ((e = gpgme_data_new_from_mem(&in, m->buf, m->len, 0)) ||
	    (e = gpgme_data_new(&out)) ||
	    (e = gpgme_op_encrypt(w->ctx, w->keys, GPGME_ENCRYPT_ALWAYS_TRUST, in, out))) {
		fprintf(stderr, "bench_encrypt: gpgme_op_encrypt: %s\n", gpgme_strerror(e));
		if (in)
			gpgme_data_release(in);
		if (out)
			gpgme_data_release(out);
		return -1;
	}
	gpgme_data_release(in);
	res = gpgme_data_release_and_get_mem(out, &n);
	if (p)
		p->out_len = n;
	gpgme_free(res);
	return n ? 0 : -1;
}

enum path { PATH_LIB, PATH_BARE };

/* One thread's work: n iterations of one path, per-message times into
 * p->ms (allocated by the caller for n). */
struct job {
	enum path path;
	struct lib_worker lw;
	struct bare_worker bw;
	const struct msg *m;
	unsigned n;
	struct pass *p;
	pthread_barrier_t *start;
	double cap_at;
	int rc;
};

static void *job_run(void *arg)
{
	struct job *j = arg;

	if (j->start) {
		/* a warm-up call per thread (a second pooled context), then
		 * both start together */
		j->rc = j->path == PATH_LIB ? lib_once(&j->lw, j->m, NULL)
					    : bare_once(&j->bw, j->m, NULL);
		pthread_barrier_wait(j->start);
		if (j->rc)
			return NULL;
		j->cap_at = now_s() + BENCH_CAP_S;
	}
	for (unsigned i = 0; i < j->n && now_s() < j->cap_at; i++) {
		double t = now_s();

		j->rc = j->path == PATH_LIB ? lib_once(&j->lw, j->m, j->p)
					    : bare_once(&j->bw, j->m, j->p);
		if (j->rc)
			return NULL;
		j->p->ms[j->p->done++] = (now_s() - t) * 1000.0;
	}
	return NULL;
}

static void pass_init(struct pass *p, unsigned n)
{
	memset(p, 0, sizeof(*p));
	p->ms = calloc(n ? n : 1, sizeof(double));
	if (!p->ms)
		die("out of memory");
}

/* Single thread: (a) and (b) alternate in BENCH_ROUNDS rounds, the same
 * number of iterations each. */
static void run_pair(struct job *ja, struct job *jb, const struct msg *m,
		     struct pass *pa, struct pass *pb)
{
	double cap_at = now_s() + 2 * BENCH_CAP_S;

	pass_init(pa, m->iters);
	pass_init(pb, m->iters);
	for (unsigned r = 0; r < BENCH_ROUNDS; r++) {
		unsigned n = m->iters / BENCH_ROUNDS + (r < m->iters % BENCH_ROUNDS);
		struct job *order[2] = {r % 2 ? jb : ja, r % 2 ? ja : jb};

		for (int k = 0; k < 2; k++) {
			struct job *j = order[k];
			struct pass *p = j->p;
			double t0 = now_s();

			j->m = m;
			j->n = n;
			j->start = NULL;
			j->cap_at = cap_at;
			job_run(j);
			p->secs += now_s() - t0;
			if (j->rc)
				die("an encryption failed");
		}
	}
}

/* Two threads of one path at once; merged into *out. */
static void run_two(struct job j[2], const struct msg *m, struct pass *out)
{
	pthread_barrier_t bar;
	pthread_t t[2];
	struct pass p[2];
	double t0;

	pass_init(out, 2 * m->iters);
	if (pthread_barrier_init(&bar, NULL, 3))
		die("pthread_barrier_init failed");
	for (int i = 0; i < 2; i++) {
		pass_init(&p[i], m->iters);
		j[i].m = m;
		j[i].n = m->iters;
		j[i].p = &p[i];
		j[i].start = &bar;
		j[i].rc = 0;
		if (pthread_create(&t[i], NULL, job_run, &j[i]))
			die("pthread_create failed");
	}
	pthread_barrier_wait(&bar);
	t0 = now_s();
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	out->secs = now_s() - t0;
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < 2; i++) {
		if (j[i].rc)
			die("an encryption failed (2 threads)");
		memcpy(out->ms + out->done, p[i].ms, p[i].done * sizeof(double));
		out->done += p[i].done;
		out->gpg_runs += p[i].gpg_runs;
		out->pre_ms += p[i].pre_ms;
		out->enc_ms += p[i].enc_ms;
		free(p[i].ms);
	}
}

static double rate(const struct pass *p)
{
	return p->secs > 0 ? p->done / p->secs : 0.0;
}

static void print_pass(const char *label, const struct pass *p, const struct msg *m,
		       const char *gpg)
{
	double *s = malloc(p->done * sizeof(double) + 1), p50 = 0, max = 0;

	if (s && p->done) {
		memcpy(s, p->ms, p->done * sizeof(double));
		qsort(s, p->done, sizeof(double), cmp_double);
		p50 = s[p->done / 2];
		max = s[p->done - 1];
	}
	free(s);
	printf("  %-40s %5u %7.2f %8.1f %7.2f %7.2f %7.2f %7.1f %7s\n", label, p->done,
	       p->secs, rate(p), rate(p) * (double)m->len / 1e6,
	       p->done ? p->secs * 1000.0 / p->done : 0.0, p50, max, gpg);
}

static void print_head(void)
{
	printf("  %-40s %5s %7s %8s %7s %7s %7s %7s %7s\n", "path", "msgs", "seconds",
	       "msgs/s", "MB/s", "ms/msg", "p50 ms", "max ms", "gpg/msg");
}

/* A copy of the home whose gpg.conf lacks no-random-seed-file. */
static void make_seed_home(void)
{
	char cmd[4600];

	snprintf(seedhome, sizeof(seedhome), "%s/gnupg-seed", scratch);
	snprintf(cmd, sizeof(cmd),
		 "cp -a '%s' '%s' && rm -f '%s/random_seed' && "
		 "sed -i '/^no-random-seed-file/d' '%s/gpg.conf'",
		 home, seedhome, seedhome, seedhome);
	if (sh(cmd))
		die("cannot make %s", seedhome);
}

int main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR"), *smpctl = NULL, *engine = "rnp";
	unsigned small_n = 240, large_n = 36;
	struct smp_policy *pol;
	struct msg msgs[2];
	char path[1200], cmd[4096], err[512], fpr[SMP_FPR_MAX] = "";
	struct job ja, jb, two[2];
	struct smp_keyring *kr2 = NULL;
	struct smp_crypto *c2 = NULL;
	double t_start = now_s();
	FILE *f;

	memset(&ja, 0, sizeof(ja));
	memset(&jb, 0, sizeof(jb));

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--smpctl") && i + 1 < argc)
			smpctl = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			base = argv[++i];
		else if (!strcmp(argv[i], "--engine") && i + 1 < argc &&
			 smp_crypto_engine_known(argv[i + 1]))
			engine = argv[++i];
		else if (!strcmp(argv[i], "--small") && i + 1 < argc)
			small_n = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--large") && i + 1 < argc)
			large_n = (unsigned)strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: bench_encrypt --smpctl PATH [--engine rnp|gnupg] "
					"[--dir DIR] [--small N] [--large N]\n");
			return 64;
		}
	}
	if (!smpctl || small_n < BENCH_ROUNDS || large_n < BENCH_ROUNDS ||
	    small_n > 100000 || large_n > 100000) {
		fprintf(stderr, "bench_encrypt: --smpctl is needed; --small/--large 3..100000\n");
		return 64;
	}
	if (!base || !*base)
		base = "/tmp";
	if (strchr(base, '\'') || strchr(smpctl, '\'')) {
		fprintf(stderr, "bench_encrypt: no quote in paths, please\n");
		return 64;
	}
	if (!smp_gpg_init())
		die("gpgme or gpg is not usable");
	snprintf(scratch, sizeof(scratch), "%s/smp-bench-encrypt.XXXXXX", base);
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "bench_encrypt: mkdtemp %s: %s\n", scratch, strerror(errno));
		return 1;
	}

	/* keyring + GnuPG home with bob's key, through smpctl */
	snprintf(home, sizeof(home), "%s/gnupg", scratch);
	snprintf(dbpath, sizeof(dbpath), "%s/keyring.db", scratch);
	snprintf(path, sizeof(path), "%s/smp-milter.conf", scratch);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f, "keyring {\n  path = \"%s\"\n}\ngnupg_home = \"%s\"\n", dbpath, home);
	if (fclose(f))
		die("cannot write %s", path);
	snprintf(cmd, sizeof(cmd),
		 "'%s' -c '%s' keys import " BOB_KEY " >/dev/null && "
		 "'%s' -c '%s' keys rebuild >/dev/null 2>&1",
		 smpctl, path, smpctl, path);
	if (sh(cmd))
		die("%s failed", cmd);

	/* one keyring connection and engine per thread, as the daemon's pool */
	if (smp_keyring_open("sqlite", dbpath, &ja.lw.kr, err, sizeof(err)) < 0 ||
	    smp_keyring_open("sqlite", dbpath, &kr2, err, sizeof(err)) < 0)
		die("%s", err);
	if (smp_crypto_open(engine, home, &ja.lw.c, err, sizeof(err)) < 0 ||
	    smp_crypto_open(engine, home, &c2, err, sizeof(err)) < 0)
		die("%s", err);
	pol = smp_policy_new(SMP_ENC_OPPORTUNISTIC);
	if (!pol)
		die("out of memory");
	ja.lw.pol = pol;
	ja.path = PATH_LIB;
	{
		const char *rc1[1] = {BOB};
		struct smp_decision d;
		if (smp_policy_decide(pol, ja.lw.kr, rc1, 1, 0, &d) < 0 || d.nfprs != 1)
			die("bob's key is not usable in the keyring");
		snprintf(fpr, sizeof(fpr), "%s", d.fprs[0]);
		smp_decision_clear(&d);
	}
	jb.path = PATH_BARE;
	if (bare_open(&jb.bw, home, fpr))
		die("bare gpgme setup failed");

	msgs[0] = make_small(small_n);
	msgs[1] = make_large(large_n);

	printf("bench_encrypt: PGP/MIME encryption to bob's key (%s), SQLite keyring and GnuPG home in %s\n",
	       BOB_KEY, scratch);
	printf("  gpgme %s, %ld CPUs, load average at start: ", gpgme_check_version(NULL),
	       sysconf(_SC_NPROCESSORS_ONLN));
	if ((f = fopen("/proc/loadavg", "r"))) {
		char la[64] = "";
		if (fgets(la, sizeof(la), f))
			printf("%.*s", (int)strcspn(la, "\n"), la);
		fclose(f);
	}
	printf("\n");
	printf("  (a) library: smp_encrypt_check + smp_policy_decide (opportunistic) + smp_encrypt_message, as eom_encrypt,\n"
	       "               on the %s crypto engine\n", engine);
	printf("  (b) bare:    gpgme_op_encrypt, always-trust, one reused context, armored, same bytes and key\n");

	for (int mi = 0; mi < 2; mi++) {
		struct msg *m = &msgs[mi];
		struct pass pa, pb, pa2, pb2;
		struct pass warm = {0};
		double ra, rb;

		warm.ms = NULL;
		pass_init(&warm, 1);
		if (lib_once(&ja.lw, m, &warm) || bare_once(&jb.bw, m, NULL))
			die("warm-up failed");
		printf("\n== %s: %zu octets in, %zu octets of PGP/MIME body out; %u iterations each path\n",
		       m->name, m->len, warm.out_len, m->iters);
		if (mi == 0)
			printf("  warm-up: %lu gpg run(s) for the first library call (the engine reads the key), not timed\n",
			       warm.gpg_runs);
		free(warm.ms);

		ja.p = &pa;
		jb.p = &pb;
		run_pair(&ja, &jb, m, &pa, &pb);
		print_head();
		{
			char ga[32];
			snprintf(ga, sizeof(ga), "%.2f", pa.done ? (double)pa.gpg_runs / pa.done : 0.0);
			print_pass("(a) library, 1 thread", &pa, m, ga);
		}
		print_pass("(b) bare gpgme, 1 thread", &pb, m, "1");
		ra = rate(&pa);
		rb = rate(&pb);
		printf("  ratio (a)/(b) = %.3f (goal >= 0.8: %s); (a) per message: %.2f ms check+decide, %.2f ms smp_encrypt_message\n",
		       rb > 0 ? ra / rb : 0.0, rb > 0 && ra / rb >= 0.8 ? "met" : "NOT met",
		       pa.done ? pa.pre_ms / pa.done : 0.0, pa.done ? pa.enc_ms / pa.done : 0.0);
		if (pa.done < m->iters || pb.done < m->iters)
			printf("  (stopped after %.0f s)\n", 2 * BENCH_CAP_S);

		/* (c) two threads each */
		memset(two, 0, sizeof(two));
		two[0].path = two[1].path = PATH_LIB;
		two[0].lw = ja.lw;
		two[1].lw.kr = kr2;
		two[1].lw.c = c2;
		two[1].lw.pol = pol;
		run_two(two, m, &pa2);
		memset(two, 0, sizeof(two));
		two[0].path = two[1].path = PATH_BARE;
		two[0].bw = jb.bw;
		if (bare_open(&two[1].bw, home, fpr))
			die("bare gpgme setup failed");
		run_two(two, m, &pb2);
		bare_close(&two[1].bw);
		{
			char ga[32], la[64], lb[64];
			snprintf(ga, sizeof(ga), "%.2f", pa2.done ? (double)pa2.gpg_runs / pa2.done : 0.0);
			snprintf(la, sizeof(la), "(c) library, 2 threads (%.2fx)", ra > 0 ? rate(&pa2) / ra : 0);
			snprintf(lb, sizeof(lb), "(c) bare gpgme, 2 threads (%.2fx)", rb > 0 ? rate(&pb2) / rb : 0);
			print_pass(la, &pa2, m, ga);
			print_pass(lb, &pb2, m, "1");
		}
		if (pa2.done < 2 * m->iters || pb2.done < 2 * m->iters)
			printf("  (a 2-thread pass stopped after %.0f s)\n", BENCH_CAP_S);

		if (mi == 0) {
			struct pass ps;
			struct bare_worker sw[2];

			make_seed_home();
			memset(two, 0, sizeof(two));
			for (int i = 0; i < 2; i++) {
				if (bare_open(&sw[i], seedhome, fpr))
					die("bare gpgme setup failed in %s", seedhome);
				two[i].path = PATH_BARE;
				two[i].bw = sw[i];
			}
			run_two(two, m, &ps);
			{
				char lc[64];
				snprintf(lc, sizeof(lc), "(c) bare, 2 threads, random_seed (%.2fx)",
					 rb > 0 ? rate(&ps) / rb : 0);
				print_pass(lc, &ps, m, "1");
			}
			if (ps.done < 2 * m->iters)
				printf("  (stopped after %.0f s)\n", BENCH_CAP_S);
			printf("  last row: a copy of the home whose gpg.conf lacks no-random-seed-file (x: vs 1 thread with it)\n");
			for (int i = 0; i < 2; i++)
				bare_close(&sw[i]);
			free(ps.ms);
		}
		free(pa.ms);
		free(pb.ms);
		free(pa2.ms);
		free(pb2.ms);
	}
	printf("\n  ms/msg of a 2-thread pass is wall time / messages (p50/max: per message);\n"
	       "  gpg/msg (a): gpg processes the library started (smp_encrypted.gpg_runs)\n");
	printf("  total %.1f s\n", now_s() - t_start);

	bare_close(&jb.bw);
	smp_policy_free(pol);
	smp_crypto_close(ja.lw.c);
	smp_crypto_close(c2);
	smp_keyring_close(ja.lw.kr);
	smp_keyring_close(kr2);
	free(msgs[0].buf);
	free(msgs[1].buf);
	cleanup();
	return 0;
}
