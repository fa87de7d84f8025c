/* test_keyring_race.c - two hosts harvesting different keys for the same
 * addresses at the same moment, on both backends (SQLite in a temporary
 * file, PostgreSQL on a real server: test_pg.h). Each "host" is a thread
 * with a keyring connection of its own.
 *
 * The invariant (SPEC.md 4, conflicts): per address exactly one host's
 * key is harvested and every other host's key ends in conflict (on_conflict
 * = flag); never two active bindings; every outcome is in the history (no
 * lost event).
 *
 * test_race_*: the harvest's pattern (smp_harvest_message: read the
 * address's bindings, decide, write, in one transaction) with a pause
 * between the read and the writes, so that the transactions of all hosts
 * overlap for certain. Without the backend's locking (SQLite: BEGIN
 * IMMEDIATE; PostgreSQL: the per-address advisory lock) two hosts would
 * both read "no key" and both bind theirs as active (checked: with the
 * lock taken out, the PostgreSQL test fails at the first address).
 *
 * test_harvest_race_*: the real harvest (smp_harvest_message, rnp engine)
 * of the fixture keys alice and alice-other for alice@example.org,
 * started at once from two hosts, round after round (whether the two
 * transactions overlap is up to the scheduler here).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smp_crypto.h"
#include "smp_harvest.h"
#include "smp_keyring.h"
#include "smp_validate.h"
#include "test_pg.h"
#include "test_util.h"

#define KEYS FIXTURES_DIR "/keys/"
#define T0 1700000000
#define HOSTS 4
#define ADDRS 12
#define PAUSE_MS 15
#define ROUNDS 8         /* real harvest race */

/* One keyring for the test, on the backend the test was given. */
struct store {
	const char *backend;
	char target[TPG_CONNINFO_MAX + 128];
	char dir[64];        /* sqlite: the temporary directory */
	char schema[64];     /* postgresql: the test's schema */
};

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st;
	(void)f;
	(void)w;
	return remove(p);
}

static void store_new(struct store *s, const char *backend)
{
	memset(s, 0, sizeof(*s));
	s->backend = backend;
	if (strcmp(backend, "sqlite") == 0) {
		snprintf(s->dir, sizeof(s->dir), "/tmp/smp-race.XXXXXX");
		assert_non_null(mkdtemp(s->dir));
		snprintf(s->target, sizeof(s->target), "%s/keyring.db", s->dir);
	} else {
		assert_int_equal(tpg_schema_new(s->target, sizeof(s->target),
						s->schema, sizeof(s->schema)),
				 0);
	}
}

static void store_drop(struct store *s)
{
	if (s->dir[0])
		nftw(s->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	if (s->schema[0])
		tpg_schema_drop(s->schema);
}

static struct smp_keyring *store_open(const struct store *s)
{
	struct smp_keyring *kr = NULL;
	char err[512];

	if (smp_keyring_open(s->backend, s->target, &kr, err, sizeof(err)))
		fail_msg("open %s: %s", s->backend, err);
	return kr;
}

static void fpr_of(char out[SMP_FPR_MAX], unsigned host, unsigned i)
{
	snprintf(out, SMP_FPR_MAX, "%04X%036u", 0xA000 + host, i);
}

static void addr_of(char *out, size_t n, unsigned i)
{
	snprintf(out, n, "user%u@Race.example", i);
}

/* The invariant for one address: outcomes[h] is what host h was told. */
static void check_address(struct smp_keyring *kr, const char *addr,
			  const char *const *fprs, const int *outcomes,
			  unsigned hosts, int harvested, int conflict)
{
	struct smp_binding *b = NULL;
	struct smp_event *e = NULL;
	size_t nb = 0, ne = 0;
	unsigned nh = 0, nc = 0, active = 0;

	for (unsigned h = 0; h < hosts; h++) {
		nh += outcomes[h] == harvested;
		nc += outcomes[h] == conflict;
	}
	if (nh != 1 || nc != hosts - 1)
		fail_msg("%s: %u harvested and %u conflict outcomes for %u "
			 "hosts", addr, nh, nc, hosts);
	assert_int_equal(smp_keyring_bindings_for(kr, addr, &b, &nb), 0);
	assert_int_equal(nb, hosts);
	for (size_t i = 0; i < nb; i++)
		active += b[i].state == SMP_BIND_ACTIVE;
	if (active > 1)
		fail_msg("%s: %u active bindings", addr, active);
	/* with more than one host, all of them are in conflict */
	for (size_t i = 0; hosts > 1 && i < nb; i++)
		assert_int_equal(b[i].state, SMP_BIND_CONFLICT);
	smp_bindings_free(b, nb);
	/* every host's outcome has its event */
	assert_int_equal(smp_keyring_events_for(kr, addr, &e, &ne), 0);
	for (unsigned h = 0; h < hosts; h++) {
		const char *want = outcomes[h] == harvested ? "harvested"
							    : "conflict";
		bool found = false;
		for (size_t i = 0; i < ne; i++)
			if (!strcmp(e[i].fpr, fprs[h]) &&
			    !strcmp(e[i].event, want) && e[i].detail &&
			    strstr(e[i].detail, "source=smp"))
				found = true;
		if (!found)
			fail_msg("%s: host %u's '%s' event is missing", addr, h,
				 want);
	}
	smp_events_free(e, ne);
}

/* ------------------------------------------------------------------ */
/* Keyring level                                                       */

enum { OUT_HARVESTED = 1, OUT_CONFLICT = 2 };

struct host {
	const struct store *st;
	unsigned id;
	pthread_barrier_t *go;
	int outcome[ADDRS];
	char err[512];
};

static int ev(struct smp_keyring *kr, const char *addr, const char *fpr,
	      const char *what, const char *detail)
{
	struct smp_event e;

	memset(&e, 0, sizeof(e));
	e.address = (char *)addr;
	snprintf(e.fpr, sizeof(e.fpr), "%s", fpr);
	e.event = (char *)what;
	e.detail = (char *)detail;
	return smp_keyring_event_add(kr, &e);
}

/* What smp_harvest_message does for one new key with on_conflict = flag,
 * with a pause where the harvest would compare keys. */
static int harvest_like(struct smp_keyring *kr, unsigned host, unsigned i,
			int *outcome)
{
	struct timespec pause = {0, PAUSE_MS * 1000000L};
	struct smp_binding *b = NULL, nb;
	struct smp_key_rec k;
	unsigned char mat[16];
	char addr[64], fpr[SMP_FPR_MAX];
	size_t n = 0;
	bool other = false;

	addr_of(addr, sizeof(addr), i);
	fpr_of(fpr, host, i);
	if (smp_keyring_begin(kr) != 0 ||
	    smp_keyring_bindings_for(kr, addr, &b, &n) != 0)
		goto bad;
	nanosleep(&pause, NULL);
	for (size_t j = 0; j < n; j++)
		if ((b[j].state == SMP_BIND_ACTIVE ||
		     b[j].state == SMP_BIND_CONFLICT) && strcmp(b[j].fpr, fpr))
			other = true;
	memset(&k, 0, sizeof(k));
	snprintf(k.fpr, sizeof(k.fpr), "%s", fpr);
	memset(mat, (int)host, sizeof(mat));
	k.material = mat;
	k.material_len = sizeof(mat);
	snprintf(k.algo, sizeof(k.algo), "ed25519");
	if (smp_keyring_key_put(kr, &k) != 0)
		goto bad;
	for (size_t j = 0; other && j < n; j++) {
		if (b[j].state != SMP_BIND_ACTIVE)
			continue;
		if (smp_keyring_binding_set_state(kr, addr, b[j].fpr,
						  SMP_BIND_CONFLICT) != 0 ||
		    ev(kr, addr, b[j].fpr, "conflict", "in conflict") != 0)
			goto bad;
	}
	memset(&nb, 0, sizeof(nb));
	nb.address = addr;
	snprintf(nb.fpr, sizeof(nb.fpr), "%s", fpr);
	nb.state = other ? SMP_BIND_CONFLICT : SMP_BIND_ACTIVE;
	nb.source = SMP_SRC_SMP;
	nb.times_seen = 1;
	if (smp_keyring_binding_put(kr, &nb) != 0 ||
	    ev(kr, addr, fpr, other ? "conflict" : "harvested",
	       "source=smp") != 0 ||
	    smp_keyring_commit(kr) != 0)
		goto bad;
	smp_bindings_free(b, n);
	*outcome = other ? OUT_CONFLICT : OUT_HARVESTED;
	return 0;
bad:
	smp_bindings_free(b, n);
	smp_keyring_rollback(kr);
	return -1;
}

static void *host_main(void *arg)
{
	struct host *h = arg;
	struct smp_keyring *kr = NULL;
	char err[512];

	if (smp_keyring_open(h->st->backend, h->st->target, &kr, err,
			     sizeof(err)))
		snprintf(h->err, sizeof(h->err), "open: %.400s", err);
	for (unsigned i = 0; i < ADDRS; i++) {
		/* every host starts on address i at the same moment */
		pthread_barrier_wait(h->go);
		if (kr && !h->err[0] &&
		    harvest_like(kr, h->id, i, &h->outcome[i]) != 0)
			snprintf(h->err, sizeof(h->err), "address %u: %s", i,
				 smp_keyring_errmsg(kr));
	}
	smp_keyring_close(kr);
	return NULL;
}

static void race(const char *backend)
{
	struct store st;
	struct host h[HOSTS];
	pthread_t t[HOSTS];
	pthread_barrier_t go;
	struct smp_keyring *kr;

	store_new(&st, backend);
	kr = store_open(&st);   /* creates the schema before the race */
	assert_int_equal(pthread_barrier_init(&go, NULL, HOSTS), 0);
	for (unsigned i = 0; i < HOSTS; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].st = &st;
		h[i].id = i;
		h[i].go = &go;
		assert_int_equal(pthread_create(&t[i], NULL, host_main, &h[i]),
				 0);
	}
	for (unsigned i = 0; i < HOSTS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&go);
	for (unsigned i = 0; i < HOSTS; i++)
		if (h[i].err[0])
			fail_msg("host %u: %s", i, h[i].err);
	for (unsigned i = 0; i < ADDRS; i++) {
		char addr[64], fprs[HOSTS][SMP_FPR_MAX];
		const char *fp[HOSTS];
		int out[HOSTS];
		for (unsigned j = 0; j < HOSTS; j++) {
			fpr_of(fprs[j], j, i);
			fp[j] = fprs[j];
			out[j] = h[j].outcome[i];
		}
		addr_of(addr, sizeof(addr), i);
		check_address(kr, addr, fp, out, HOSTS, OUT_HARVESTED,
			      OUT_CONFLICT);
	}
	smp_keyring_close(kr);
	store_drop(&st);
}

static void test_race_sqlite(void **state)
{
	(void)state;
	race("sqlite");
}

static void test_race_postgresql(void **state)
{
	(void)state;
	race("postgresql");
}

/* ------------------------------------------------------------------ */
/* The real harvest                                                    */

struct hhost {
	const struct store *st;
	const char *key;         /* fixture name */
	char home[128];          /* its GnuPG home (the rnp engine needs none) */
	pthread_barrier_t *go;
	struct smp_harvest_report rep;
	int rc;
	char err[512];
};

static void part_pub(struct smp_key_part *p, const char *name)
{
	char path[512];
	size_t n;

	snprintf(path, sizeof(path), KEYS "%s.pub.gpg", name);
	memset(p, 0, sizeof(*p));
	p->data = slurp(path, &n);
	p->size = n;
	p->name = (char *)"public-key-1";
	p->encoding = SMP_ENC_BINARY;
	p->kind = SMP_KEY_PUBLIC;
	p->nkeys = 1;
}

static void *hhost_main(void *arg)
{
	struct hhost *h = arg;
	struct smp_harvest_config cfg;
	struct smp_harvest_ctx ctx;
	struct smp_keyring *kr = NULL;
	struct smp_crypto *c = NULL;
	struct smp_key_part part;
	const char *from[1] = {"alice@example.org"};
	char err[512];

	smp_harvest_config_init(&cfg);
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	ctx.envelope_sender = from[0];
	ctx.from = from;
	ctx.nfrom = 1;
	ctx.msg_date = T0;
	ctx.now = T0 + 60;
	ctx.message_id = h->key;
	ctx.client_addr = "192.0.2.25";
	ctx.source = SMP_SRC_SMP;
	part_pub(&part, h->key);
	if (smp_keyring_open(h->st->backend, h->st->target, &kr, err,
			     sizeof(err)) ||
	    smp_crypto_open("rnp", h->home, &c, err, sizeof(err))) {
		snprintf(h->err, sizeof(h->err), "%s", err);
		pthread_barrier_wait(h->go);
		goto out;
	}
	pthread_barrier_wait(h->go);
	h->rc = smp_harvest_message(kr, c, &ctx, &part, 1, &h->rep);
	if (h->rc != 0)
		snprintf(h->err, sizeof(h->err), "%s", h->rep.error);
out:
	free(part.data);
	if (c)
		smp_crypto_close(c);
	smp_keyring_close(kr);
	return NULL;
}

static void harvest_race(const char *backend)
{
	static const char *const keys[2] = {"alice", "alice-other"};
	char tmp[64], fprs[2][SMP_FPR_MAX];
	const char *fp[2] = {fprs[0], fprs[1]};
	unsigned first[2] = {0, 0};

	smp_lib_init();
	snprintf(tmp, sizeof(tmp), "/tmp/smp-hrace.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	for (unsigned round = 0; round < ROUNDS; round++) {
		struct store st;
		struct hhost h[2];
		pthread_t t[2];
		pthread_barrier_t go;
		struct smp_keyring *kr;
		int out[2];

		store_new(&st, backend);
		kr = store_open(&st);
		assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
		for (unsigned i = 0; i < 2; i++) {
			memset(&h[i], 0, sizeof(h[i]));
			h[i].st = &st;
			h[i].key = keys[i];
			h[i].go = &go;
			snprintf(h[i].home, sizeof(h[i].home), "%s/home%u", tmp,
				 i);
			assert_int_equal(pthread_create(&t[i], NULL,
							hhost_main, &h[i]), 0);
		}
		for (unsigned i = 0; i < 2; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		pthread_barrier_destroy(&go);
		for (unsigned i = 0; i < 2; i++) {
			if (h[i].rc != 0 || h[i].err[0])
				fail_msg("round %u, host %u: %s", round, i,
					 h[i].err);
			assert_int_equal(h[i].rep.n, 1);
			snprintf(fprs[i], sizeof(fprs[i]), "%s",
				 h[i].rep.lines[0].fpr);
			out[i] = (int)h[i].rep.lines[0].outcome;
			if (out[i] == SMP_HV_HARVESTED)
				first[i]++;
		}
		check_address(kr, "alice@example.org", fp, out, 2,
			      SMP_HV_HARVESTED, SMP_HV_CONFLICT);
		for (unsigned i = 0; i < 2; i++)
			smp_harvest_report_clear(&h[i].rep);
		smp_keyring_close(kr);
		store_drop(&st);
	}
	/* which host won is up to the race; print it, never assert it */
	printf("harvest race on %s: alice first %u times, alice-other first "
	       "%u times\n", backend, first[0], first[1]);
	nftw(tmp, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_harvest_race_sqlite(void **state)
{
	(void)state;
	harvest_race("sqlite");
}

static void test_harvest_race_postgresql(void **state)
{
	(void)state;
	harvest_race("postgresql");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_race_sqlite),
		cmocka_unit_test(test_race_postgresql),
		cmocka_unit_test(test_harvest_race_sqlite),
		cmocka_unit_test(test_harvest_race_postgresql),
	};

	t_filter_from_env();
	return cmocka_run_group_tests_name("keyring_race", tests, NULL, NULL);
}
