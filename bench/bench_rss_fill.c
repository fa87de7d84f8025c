/*
 * bench_rss_fill.c - fills a fresh SQLite keyring for the resident-memory
 * bench (bench/rss.sh, make bench-rss).
 *
 *   bench_rss_fill --db PATH [--keys N] [--real R]
 *
 * N keys (default 100,000), each bound (active, source smp) to its own
 * address user%07u@rss%03u.example (i % 500 domains). The first R
 * (default 2,000) are real keys made with librnp here (ed25519 primary
 * key, cv25519 encryption subkey, one user ID: the minimal form the
 * milter stores), so mail to those addresses is encrypted; the others
 * carry the material of real key i % R under a fingerprint of their own
 * (the same size on disk; never a recipient in the bench, so never
 * parsed). Written in transactions of 1,000. Prints the fill time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

#include "smp_keyring.h"

#define BATCH 1000

struct rkey {
	char fpr[SMP_FPR_MAX];
	char keyid[17];
	int64_t created;
	unsigned char *data;
	size_t len;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "bench_rss_fill: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	exit(1);
}

static void addr_of(char *out, size_t len, unsigned i)
{
	snprintf(out, len, "user%07u@rss%03u.example", i, i % 500);
}

/* Key i, made in ffi (emptied afterwards). */
static void make_key(rnp_ffi_t ffi, unsigned i, struct rkey *k)
{
	rnp_op_generate_t op = NULL;
	rnp_key_handle_t primary = NULL, sub = NULL;
	rnp_output_t out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char addr[64], uid[128], *fpr = NULL, *kid = NULL;
	uint32_t created = 0;

	addr_of(addr, sizeof(addr), i);
	snprintf(uid, sizeof(uid), "RSS Bench User %u <%s>", i, addr);
	if (rnp_op_generate_create(&op, ffi, "EDDSA") ||
	    rnp_op_generate_set_userid(op, uid) ||
	    rnp_op_generate_set_expiration(op, 0) ||
	    rnp_op_generate_execute(op) ||
	    rnp_op_generate_get_key(op, &primary))
		die("librnp cannot make a key for", addr);
	rnp_op_generate_destroy(op);
	if (rnp_op_generate_subkey_create(&op, ffi, primary, "ECDH") ||
	    rnp_op_generate_set_curve(op, "Curve25519") ||
	    rnp_op_generate_set_expiration(op, 0) ||
	    rnp_op_generate_execute(op) ||
	    rnp_op_generate_get_key(op, &sub))
		die("librnp cannot make a subkey for", addr);
	rnp_op_generate_destroy(op);
	if (rnp_output_to_memory(&out, 0) ||
	    rnp_key_export(primary, out, RNP_KEY_EXPORT_PUBLIC |
						 RNP_KEY_EXPORT_SUBKEYS) ||
	    rnp_output_memory_get_buf(out, &buf, &len, false) ||
	    rnp_key_get_fprint(primary, &fpr) ||
	    rnp_key_get_keyid(sub, &kid) ||
	    rnp_key_get_creation(primary, &created))
		die("librnp cannot export", addr);
	snprintf(k->fpr, sizeof(k->fpr), "%s", fpr);
	snprintf(k->keyid, sizeof(k->keyid), "%s", kid);
	k->created = created;
	k->data = malloc(len);
	if (!k->data)
		die("out of memory", NULL);
	memcpy(k->data, buf, len);
	k->len = len;
	rnp_buffer_destroy(fpr);
	rnp_buffer_destroy(kid);
	rnp_output_destroy(out);
	rnp_key_handle_destroy(sub);
	rnp_key_handle_destroy(primary);
	rnp_unload_keys(ffi, RNP_KEY_UNLOAD_PUBLIC | RNP_KEY_UNLOAD_SECRET);
}

int main(int argc, char **argv)
{
	const char *db = NULL;
	unsigned long keys = 100000, real = 2000;
	struct smp_keyring *kr = NULL;
	struct rkey *rk;
	rnp_ffi_t ffi = NULL;
	char err[256];
	double t0, t1, t2;
	size_t bytes = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--db") && i + 1 < argc)
			db = argv[++i];
		else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			keys = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--real") && i + 1 < argc)
			real = strtoul(argv[++i], NULL, 10);
		else
			db = NULL, i = argc;
	}
	if (!db || real < 1 || keys < real) {
		fprintf(stderr, "usage: bench_rss_fill --db PATH [--keys N] "
				"[--real R] (1 <= R <= N)\n");
		return 2;
	}
	rk = calloc(real, sizeof(*rk));
	if (!rk || rnp_ffi_create(&ffi, "GPG", "GPG") != RNP_SUCCESS ||
	    rnp_set_timestamp(ffi, (uint64_t)time(NULL) - 3600) != RNP_SUCCESS)
		die("librnp cannot start", NULL);
	t0 = now_s();
	for (unsigned i = 0; i < real; i++)
		make_key(ffi, i, &rk[i]);
	rnp_ffi_destroy(ffi);
	t1 = now_s();

	if (smp_keyring_open("sqlite", db, &kr, err, sizeof(err)) != 0)
		die("cannot open the keyring", err);
	for (unsigned long i = 0; i < keys; i++) {
		const struct rkey *src = &rk[i % real];
		struct smp_key_rec k;
		struct smp_binding b;
		char addr[64];

		if (i % BATCH == 0 && smp_keyring_begin(kr) != 0)
			die("begin", smp_keyring_errmsg(kr));
		memset(&k, 0, sizeof(k));
		if (i < real)
			snprintf(k.fpr, sizeof(k.fpr), "%s", src->fpr);
		else
			snprintf(k.fpr, sizeof(k.fpr), "%08X%032lu",
				 0x55AA0000u, i);
		k.material = src->data;
		k.material_len = src->len;
		snprintf(k.algo, sizeof(k.algo), "ed25519");
		k.bits = 255;
		k.created = src->created;
		snprintf(k.enc_keyids, sizeof(k.enc_keyids), "%.16s",
			 i < real ? src->keyid : k.fpr + 24);
		k.updated = src->created;
		if (smp_keyring_key_put(kr, &k) != 0)
			die("key_put", smp_keyring_errmsg(kr));
		addr_of(addr, sizeof(addr), (unsigned)i);
		memset(&b, 0, sizeof(b));
		b.address = addr;
		snprintf(b.fpr, sizeof(b.fpr), "%s", k.fpr);
		b.state = SMP_BIND_ACTIVE;
		b.source = SMP_SRC_SMP;
		b.first_seen = b.last_seen = src->created;
		b.msg_date = src->created;
		b.times_seen = 1;
		b.message_id = (char *)"<rss-bench@example.org>";
		b.client_addr = (char *)"192.0.2.25";
		if (smp_keyring_binding_put(kr, &b) != 0)
			die("binding_put", smp_keyring_errmsg(kr));
		bytes += src->len;
		if ((i % BATCH == BATCH - 1 || i + 1 == keys) &&
		    smp_keyring_commit(kr) != 0)
			die("commit", smp_keyring_errmsg(kr));
	}
	smp_keyring_close(kr);
	t2 = now_s();
	printf("   keyring: %lu keys (%lu real ed25519/cv25519 keys made with "
	       "librnp in %.1f s, the rest with copies of their material), "
	       "%lu bindings, %.1f MB of key material, written in %.1f s\n",
	       keys, real, t1 - t0, keys, (double)bytes / 1e6, t2 - t1);
	for (unsigned i = 0; i < real; i++)
		free(rk[i].data);
	free(rk);
	return 0;
}
