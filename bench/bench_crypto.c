/*
 * bench_crypto.c - encryption through the crypto interface (lib/smp_crypto.h)
 * on each engine vs bare library loops, side by side (SPEC.md 8, 9).
 *
 *   bench_crypto [--seconds S] [--dir DIR]
 *
 * Payloads (the inner entity of a PGP/MIME message, CRLF, as the milter
 * hands it over): 5 KB text, 100 KB and 1 MB (a short text part and a
 * base64 attachment of random octets). Recipient: bob's fixture key
 * (ed25519 + cv25519), its material handed in as the keyring stores it.
 *
 * Paths, each timed separately, alternating in 3 rounds per payload, each
 * pass bounded by S/3 seconds (default S = 4) and 5,000 messages:
 *   rnp          smp_crypto_encrypt() on the rnp engine (warm: the key is
 *                parsed once, then found in the cache)
 *   bare librnp  rnp_op_encrypt_* on one FFI with bob's key imported and
 *                located once: the same settings (armor, AES-256, no AEAD,
 *                no compression), output to memory
 *   gnupg        smp_crypto_encrypt() on the gnupg engine (warm: the key is
 *                in its GnuPG home; one gpg process per message)
 *   bare gpgme   gpgme_op_encrypt() to bob's key (looked up once) on one
 *                context on the same GnuPG home, always-trust, armored
 * Printed: msgs/s, MB/s (10^6 octets of payload), ms/msg (mean, p50, max),
 * gpg processes per message (gnupg: the engine's own count; bare gpgme: one
 * per gpgme operation, by construction), and each engine's msgs/s over its
 * bare loop.
 * Numbers are printed, never asserted; exit 1 only when the setup or an
 * encryption fails.
 */
#include <errno.h>
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
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

#include "smp_crypto.h"
#include "smp_gpg.h"

#define BOB_KEY "fixtures/keys/bob.pub.gpg"
#define ROUNDS 3
#define MAX_ITERS 5000

static char scratch[1024], home[1100];
static double pass_cap = 4.0 / ROUNDS;

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

static void cleanup(void)
{
	char cmd[1200];
	int st;

	if (!scratch[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	st = system(cmd);
	if (st != 0)
		fprintf(stderr, "bench_crypto: could not remove %s\n", scratch);
	scratch[0] = '\0';
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_crypto: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	cleanup();
	exit(1);
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	size_t cap = 0, len = 0, r;

	if (!f)
		die("cannot open %s: %s (run from the repository root)", path,
		    strerror(errno));
	do {
		if (len + 65536 > cap) {
			cap = (len + 65536) * 2;
			p = realloc(p, cap);
			if (!p)
				die("out of memory");
		}
		r = fread(p + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	fclose(f);
	*n = len;
	return p;
}

/* ------------------------------------------------------------------ */
/* Payloads                                                            */

struct payload {
	const char *name;
	char *buf;
	size_t len;
};

static struct payload make_payload(const char *name, size_t target)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct payload p = {.name = name};
	size_t len = 0, line = 0;
	uint32_t x = 0x9E3779B9u ^ (uint32_t)target;

	p.buf = malloc(target + 1024);
	if (!p.buf)
		die("out of memory");
	if (target <= 8192) {
		len += (size_t)sprintf(p.buf, "Content-Type: text/plain; "
				       "charset=us-ascii\r\n"
				       "Content-Transfer-Encoding: 7bit\r\n\r\n");
		while (len < target)
			len += (size_t)sprintf(p.buf + len,
					       "%05zu The quarterly figures "
					       "are attached, as discussed on "
					       "Monday.\r\n",
					       ++line);
	} else {
		len += (size_t)sprintf(
			p.buf,
			"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
			"--b1\r\nContent-Type: text/plain\r\n\r\nSee the "
			"attachment.\r\n--b1\r\nContent-Type: "
			"application/octet-stream\r\nContent-Transfer-Encoding: "
			"base64\r\n\r\n");
		while (len < target - 16) {
			for (int i = 0; i < 76; i++) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				p.buf[len++] = b64[x & 63];
			}
			p.buf[len++] = '\r';
			p.buf[len++] = '\n';
		}
		len += (size_t)sprintf(p.buf + len, "--b1--\r\n");
	}
	p.len = len;
	return p;
}

/* ------------------------------------------------------------------ */
/* The four paths                                                      */

struct path {
	const char *name;
	double *ms;
	size_t n, cap;
	double secs;
	unsigned long procs;     /* gpg processes during the timed passes */
};

static void record(struct path *p, double ms)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 1024;
		p->ms = realloc(p->ms, p->cap * sizeof(*p->ms));
		if (!p->ms)
			die("out of memory");
	}
	p->ms[p->n++] = ms;
}

static struct smp_crypto *rnp_eng, *gnupg_eng;
static struct smp_crypto_key bob;
static char bob_fpr[SMP_FPR_MAX];

static rnp_ffi_t bare_ffi;
static rnp_key_handle_t bare_key;
static gpgme_ctx_t bare_ctx;
static gpgme_key_t bare_gkey;

static void one_engine(struct smp_crypto *c, const struct payload *pl)
{
	char *out = NULL, err[512];
	size_t on = 0;

	if (smp_crypto_encrypt(c, pl->buf, pl->len, &bob, 1, &out, &on, err,
			       sizeof(err)) != 0)
		die("%s engine: %s", smp_crypto_engine_name(c), err);
	free(out);
}

static void one_bare_rnp(const struct payload *pl)
{
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_encrypt_t op = NULL;
	uint8_t *buf = NULL;
	size_t blen = 0;
	rnp_result_t r;

	if ((r = rnp_input_from_memory(&in, (const uint8_t *)pl->buf, pl->len,
				       false)) ||
	    (r = rnp_output_to_memory(&o, 0)) ||
	    (r = rnp_op_encrypt_create(&op, bare_ffi, in, o)) ||
	    (r = rnp_op_encrypt_set_armor(op, true)) ||
	    (r = rnp_op_encrypt_set_cipher(op, "AES256")) ||
	    (r = rnp_op_encrypt_set_aead(op, "None")) ||
	    (r = rnp_op_encrypt_set_compression(op, "Uncompressed", 0)) ||
	    (r = rnp_op_encrypt_add_recipient(op, bare_key)) ||
	    (r = rnp_op_encrypt_execute(op)) ||
	    (r = rnp_output_memory_get_buf(o, &buf, &blen, false)))
		die("bare librnp: %s", rnp_result_to_string(r));
	if (blen < 100)
		die("bare librnp: short output");
	rnp_op_encrypt_destroy(op);
	rnp_input_destroy(in);
	rnp_output_destroy(o);
}

static void one_bare_gpgme(const struct payload *pl)
{
	gpgme_data_t in = NULL, o = NULL;
	gpgme_key_t keys[2] = {bare_gkey, NULL};
	gpgme_error_t e;

	if ((e = gpgme_data_new_from_mem(&in, pl->buf, pl->len, 0)) ||
	    (e = gpgme_data_new(&o)) ||
	    (e = gpgme_op_encrypt(bare_ctx, keys, GPGME_ENCRYPT_ALWAYS_TRUST,
				  in, o)))
		die("bare gpgme: %s", gpgme_strerror(e));
	gpgme_data_release(in);
	gpgme_data_release(o);
}

static void run_pass(int which, struct path *p, const struct payload *pl)
{
	double start = now_s();
	struct smp_crypto_stats s0, s1;

	if (which == 2)
		smp_crypto_get_stats(gnupg_eng, &s0);
	for (unsigned i = 0; i < MAX_ITERS; i++) {
		double t0 = now_s();

		switch (which) {
		case 0:
			one_engine(rnp_eng, pl);
			break;
		case 1:
			one_bare_rnp(pl);
			break;
		case 2:
			one_engine(gnupg_eng, pl);
			break;
		default:
			one_bare_gpgme(pl);
			p->procs++;
			break;
		}
		record(p, (now_s() - t0) * 1000.0);
		if (now_s() - start >= pass_cap)
			break;
	}
	p->secs += now_s() - start;
	if (which == 2) {
		smp_crypto_get_stats(gnupg_eng, &s1);
		p->procs += s1.processes - s0.processes;
	}
}

static double rate(const struct path *p)
{
	return p->secs > 0 ? (double)p->n / p->secs : 0;
}

static void print_path(const struct path *p, const struct payload *pl)
{
	double sum = 0, *s = malloc(p->n * sizeof(*s));

	if (!s)
		die("out of memory");
	memcpy(s, p->ms, p->n * sizeof(*s));
	qsort(s, p->n, sizeof(*s), cmp_double);
	for (size_t i = 0; i < p->n; i++)
		sum += s[i];
	printf("  %-12s %6zu msgs %9.1f msgs/s %8.2f MB/s   ms/msg mean %7.3f "
	       "p50 %7.3f max %8.3f   gpg/msg %.2f\n",
	       p->name, p->n, rate(p), rate(p) * (double)pl->len / 1e6,
	       sum / (double)p->n, s[p->n / 2], s[p->n - 1],
	       p->n ? (double)p->procs / (double)p->n : 0);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */

static void setup(const char *dir)
{
	const char *t = getenv("TMPDIR");
	unsigned char *mat;
	size_t mlen;
	struct smp_key_info info;
	char err[512];
	rnp_input_t in = NULL;
	gpgme_error_t e;

	snprintf(scratch, sizeof(scratch), "%s/smp-bench-crypto.XXXXXX",
		 dir ? dir : (t && *t ? t : "/tmp"));
	if (!mkdtemp(scratch))
		die("mkdtemp %s: %s", scratch, strerror(errno));
	snprintf(home, sizeof(home), "%s/gnupg", scratch);

	if (!smp_gpg_init())
		die("gpgme is not usable");
	mat = slurp(BOB_KEY, &mlen);
	if (smp_crypto_open("rnp", NULL, &rnp_eng, err, sizeof(err)) ||
	    smp_crypto_open("gnupg", home, &gnupg_eng, err, sizeof(err)))
		die("%s", err);
	if (smp_crypto_inspect(rnp_eng, mat, mlen, &info))
		die("inspect bob: %s", smp_crypto_errmsg(rnp_eng));
	snprintf(bob_fpr, sizeof(bob_fpr), "%s", info.fpr);
	smp_key_info_clear(&info);
	bob.fpr = bob_fpr;
	bob.material = mat;
	bob.len = mlen;

	/* bare librnp: one FFI, the key imported and located once */
	if (rnp_ffi_create(&bare_ffi, "GPG", "GPG") ||
	    rnp_input_from_memory(&in, mat, mlen, false) ||
	    rnp_import_keys(bare_ffi, in, RNP_LOAD_SAVE_PUBLIC_KEYS, NULL) ||
	    rnp_locate_key(bare_ffi, "fingerprint", bob_fpr, &bare_key) ||
	    !bare_key)
		die("bare librnp setup failed");
	rnp_input_destroy(in);

	/* warm-up: the engines load bob (the gnupg one imports him into
	 * its home, which the bare gpgme loop then uses) */
	{
		struct payload w = make_payload("warm-up", 1000);
		one_engine(rnp_eng, &w);
		one_engine(gnupg_eng, &w);
		free(w.buf);
	}
	if ((e = gpgme_new(&bare_ctx)) ||
	    (e = gpgme_set_protocol(bare_ctx, GPGME_PROTOCOL_OpenPGP)) ||
	    (e = gpgme_ctx_set_engine_info(bare_ctx, GPGME_PROTOCOL_OpenPGP,
					   NULL, home)) ||
	    (e = gpgme_get_key(bare_ctx, bob_fpr, &bare_gkey, 0)))
		die("bare gpgme setup: %s", gpgme_strerror(e));
	gpgme_set_armor(bare_ctx, 1);
	gpgme_set_offline(bare_ctx, 1);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	struct payload pl[3];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			double s = atof(argv[++i]);
			if (s <= 0)
				die("--seconds wants a positive number");
			pass_cap = s / ROUNDS;
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else {
			fprintf(stderr, "usage: bench_crypto [--seconds S] "
					"[--dir DIR]\n");
			return 64;
		}
	}
	setup(dir);
	pl[0] = make_payload("5 KB", 5 * 1024);
	pl[1] = make_payload("100 KB", 100 * 1024);
	pl[2] = make_payload("1 MB", 1024 * 1024);

	printf("bench_crypto: encryption of one payload to one cv25519 key "
	       "(bob), armored, AES-256;\n"
	       "each path up to %.1f s per payload in %d rounds\n",
	       pass_cap * ROUNDS, ROUNDS);
	for (int k = 0; k < 3; k++) {
		struct path p[4] = {
			{.name = "rnp"},
			{.name = "bare librnp"},
			{.name = "gnupg"},
			{.name = "bare gpgme"},
		};

		for (int r = 0; r < ROUNDS; r++)
			for (int w = 0; w < 4; w++)
				run_pass(w, &p[w], &pl[k]);
		printf("\n%s payload (%zu octets):\n", pl[k].name, pl[k].len);
		for (int w = 0; w < 4; w++)
			print_path(&p[w], &pl[k]);
		printf("  rnp engine / bare librnp:   %.2f of the msgs/s\n",
		       rate(&p[1]) > 0 ? rate(&p[0]) / rate(&p[1]) : 0);
		printf("  gnupg engine / bare gpgme:  %.2f of the msgs/s\n",
		       rate(&p[3]) > 0 ? rate(&p[2]) / rate(&p[3]) : 0);
		printf("  rnp engine / gnupg engine:  %.1f times the msgs/s\n",
		       rate(&p[2]) > 0 ? rate(&p[0]) / rate(&p[2]) : 0);
		for (int w = 0; w < 4; w++)
			free(p[w].ms);
	}
	{
		struct smp_crypto_stats st;
		smp_crypto_get_stats(rnp_eng, &st);
		printf("\nrnp engine key cache: %lu hits, %lu misses, %lu gpg "
		       "processes\n",
		       st.cache_hits, st.cache_misses, st.processes);
	}
	for (int k = 0; k < 3; k++)
		free(pl[k].buf);
	gpgme_key_unref(bare_gkey);
	gpgme_release(bare_ctx);
	rnp_key_handle_destroy(bare_key);
	rnp_ffi_destroy(bare_ffi);
	smp_crypto_close(rnp_eng);
	smp_crypto_close(gnupg_eng);
	free((void *)bob.material);
	cleanup();
	return 0;
}
