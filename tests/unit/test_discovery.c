/* test_discovery.c - key discovery's policy layer (lib/smp_discovery.c)
 * against real servers: knotd with a DNSSEC-signed zone and an HTTPS
 * server with a test CA (tests/discovery/disc-start.sh; run-tests.sh
 * starts them once and exports SMP_TEST_DISC_*; alone, this binary
 * starts its own and stops them by PID at exit: test_disc.h), a real keyring (SQLite,
 * then PostgreSQL) and the rnp engine. The cases are disc-start.sh's
 * addresses. */
#include "test_util.h"
#include "test_pg.h"
#include "test_disc.h"

#include <ftw.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "smp_crypto.h"
#include "smp_discovery.h"
#include "smp_harvest.h"
#include "smp_keyring.h"
#include "smp_limits.h"
#include "smp_validate.h"

static const char *kr_backend = "sqlite";

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s;
	(void)f;
	(void)w;
	return remove(p);
}

static void rmrf(const char *dir)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

struct fx {
	char dir[256], db[TPG_CONNINFO_MAX + 128], schema[64];
	struct smp_keyring *kr;
	struct smp_crypto *c;
	struct smp_disc_net *net;
	struct smp_disc_config dc;
	struct smp_harvest_config hc;
	struct smp_limits lim;
	struct smp_disc_ctx dx;
	struct smp_disc_result r;
};

static struct smp_disc_net *net_with(const char *forwarder)
{
	return tdisc_net(forwarder, NULL, 65536);
}

static int group_setup(void **state)
{
	(void)state;
	smp_lib_init();
	if (tdisc_setup() != 0)
		fail_msg("the discovery test servers did not start "
			 "(tests/discovery/disc-start.sh)");
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *t = getenv("TMPDIR");
	char err[512];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/smp-test-disc.XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	if (strcmp(kr_backend, "postgresql") == 0) {
		if (tpg_schema_new(f->db, sizeof(f->db), f->schema, sizeof(f->schema)))
			fail_msg("no PostgreSQL server for the test");
	} else {
		snprintf(f->db, sizeof(f->db), "%s/keyring.db", f->dir);
	}
	if (smp_keyring_open(kr_backend, f->db, &f->kr, err, sizeof(err)))
		fail_msg("keyring: %s", err);
	if (smp_crypto_open("rnp", NULL, &f->c, err, sizeof(err)))
		fail_msg("rnp: %s", err);
	f->net = net_with(NULL);
	smp_disc_config_init(&f->dc);
	smp_harvest_config_init(&f->hc);
	smp_limits_init(&f->lim);
	f->dx.net = f->net;
	f->dx.kr = f->kr;
	f->dx.crypto = f->c;
	f->dx.cfg = &f->dc;
	f->dx.harvest = &f->hc;
	f->dx.limits = &f->lim;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	smp_disc_net_free(f->net);
	smp_crypto_close(f->c);
	smp_keyring_close(f->kr);
	rmrf(f->dir);
	if (f->schema[0])
		tpg_schema_drop(f->schema);
	free(f);
	return 0;
}

/* One lookup with a fresh budget of ms milliseconds. */
static void look(struct fx *f, const char *address, int64_t ms)
{
	f->dx.deadline_ms = smp_disc_now_ms() + ms;
	memset(&f->r, 0, sizeof(f->r));
	if (smp_discovery_recipient(&f->dx, address, &f->r) != 0)
		fail_msg("smp_discovery_recipient(%s): %s", address, f->r.detail);
}

static void refresh(struct fx *f, const char *address)
{
	f->dx.deadline_ms = smp_disc_now_ms() + 5000;
	memset(&f->r, 0, sizeof(f->r));
	if (smp_discovery_refresh(&f->dx, address, &f->r) != 0)
		fail_msg("smp_discovery_refresh(%s): %s", address, f->r.detail);
}

static void expect(struct fx *f, enum smp_disc_outcome o, const char *address)
{
	if (f->r.outcome != o)
		fail_msg("%s: outcome %s, want %s (%s)", address,
			 smp_disc_outcome_name(f->r.outcome), smp_disc_outcome_name(o),
			 f->r.detail);
}

/* The one binding of address: its source, state, key and client_addr
 * (which must hold origin: the URL or the DNS name asked). */
static void expect_binding(struct fx *f, const char *address, const char *source,
			   const char *origin, enum smp_bind_state state)
{
	struct smp_binding *b = NULL;
	size_t n = 0;

	assert_int_equal(smp_keyring_bindings_for(f->kr, address, &b, &n), 0);
	if (n != 1)
		fail_msg("%s: %zu bindings, want 1", address, n);
	assert_string_equal(smp_key_source_name(b[0].source), source);
	assert_int_equal(b[0].state, state);
	assert_string_equal(b[0].fpr, f->r.fpr);
	if (!b[0].client_addr || !strstr(b[0].client_addr, origin))
		fail_msg("%s: client_addr %s, want one holding %s", address,
			 b[0].client_addr ? b[0].client_addr : "(null)", origin);
	smp_bindings_free(b, n);
}

static void expect_cache(struct fx *f, const char *address, const char *status,
			 int64_t min_ttl, int64_t max_ttl)
{
	struct smp_disc_entry e;
	int64_t ttl;

	memset(&e, 0, sizeof(e));
	assert_int_equal(smp_keyring_disc_get(f->kr, address, &e), 0);
	ttl = e.expires - e.fetched;
	if (strcmp(e.status, status) != 0 || ttl < min_ttl || ttl > max_ttl)
		fail_msg("%s: cache %s for %lld s, want %s for %lld..%lld s", address,
			 e.status, (long long)ttl, status, (long long)min_ttl,
			 (long long)max_ttl);
	smp_disc_entry_clear(&e);
}

static void test_wkd_advanced(void **state)
{
	struct fx *f = *state;
	const char *a = "alice@wkd-adv.smp.example";

	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	assert_string_equal(f->r.method, "wkd");
	assert_false(f->r.cached);
	assert_int_equal(f->r.lookups, 1); /* WKD answered: DANE not asked */
	expect_binding(f, a, "wkd", "https://openpgpkey.wkd-adv.smp.example", SMP_BIND_ACTIVE);
	/* found: refreshed at 75-95% of positive_ttl */
	expect_cache(f, a, "found", 86400 * 75 / 100, 86400 * 95 / 100);
	/* the key is bound now: no lookup at all */
	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	assert_true(f->r.bound);
	assert_int_equal(f->r.lookups, 0);
}

static void test_wkd_direct(void **state)
{
	struct fx *f = *state;
	const char *a = "bob@wkd-direct.smp.example";

	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	expect_binding(f, a, "wkd", "https://wkd-direct.smp.example", SMP_BIND_ACTIVE);
}

static void test_dane(void **state)
{
	struct fx *f = *state;
	const char *a = "carol@dane.smp.example";

	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	assert_string_equal(f->r.method, "dane");
	assert_int_equal(f->r.lookups, 2); /* WKD: none, then DANE */
	expect_binding(f, a, "dane", "._openpgpkey.dane.smp.example.", SMP_BIND_ACTIVE);
	/* the record's TTL (1234 s) is shorter than positive_ttl */
	expect_cache(f, a, "found", 1234 * 75 / 100, 1234 * 95 / 100);
}

static void test_order_decides(void **state)
{
	struct fx *f = *state;
	struct smp_disc_methods only_dane = {1, {SMP_DISC_DANE}};
	const char *a = "alice@wkd-adv.smp.example";

	f->dx.methods = &only_dane;
	look(f, a, 5000);
	expect(f, SMP_DISC_NOKEY, a);
	assert_int_equal(f->r.lookups, 1);
}

static void test_not_published_cached(void **state)
{
	struct fx *f = *state;
	const char *a = "nobody@nothing.smp.example";

	look(f, a, 5000);
	expect(f, SMP_DISC_NOKEY, a);
	assert_false(f->r.cached);
	assert_int_equal(f->r.lookups, 2);
	/* the NXDOMAIN's negative TTL (321 s) is shorter than negative_ttl */
	expect_cache(f, a, "none", 321, 321);
	look(f, a, 5000);
	expect(f, SMP_DISC_NOKEY, a);
	assert_true(f->r.cached);
	assert_int_equal(f->r.lookups, 0);

	look(f, "x@nosuch.smp.example", 5000);
	expect(f, SMP_DISC_NOKEY, "x@nosuch.smp.example");
}

static void test_wrong_uid_refused(void **state)
{
	struct fx *f = *state;
	const char *a = "dave@wronguid.smp.example";
	struct smp_binding *b = NULL;
	size_t n = 9;

	look(f, a, 5000);
	expect(f, SMP_DISC_NOKEY, a);
	if (!strstr(f->r.detail, "no-matching-uid"))
		fail_msg("detail: %s", f->r.detail);
	assert_int_equal(smp_keyring_bindings_for(f->kr, a, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, "mallory@elsewhere.smp.example",
						  &b, &n), 0);
	assert_int_equal(n, 0);
	expect_cache(f, a, "none", 60, 3600);
}

/* The WKD file of address (cases.tsv), relative to the servers' DIR. */
static void wkd_file(const char *address, char *out, size_t outlen)
{
	char path[512], line[1024];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/cases.tsv", tdisc.dir);
	fp = fopen(path, "r");
	assert_non_null(fp);
	out[0] = '\0';
	while (fgets(line, sizeof(line), fp)) {
		char *tab1 = strchr(line, '\t'), *tab2, *tab3;

		if (line[0] == '#' || !tab1)
			continue;
		*tab1 = '\0';
		tab2 = strchr(tab1 + 1, '\t');
		if (!tab2 || strcmp(line, address) != 0)
			continue;
		tab3 = strchr(tab2 + 1, '\t');
		if (tab3)
			*tab3 = '\0';
		snprintf(out, outlen, "%s/%s", tdisc.dir, tab2 + 1);
	}
	fclose(fp);
	if (!out[0])
		fail_msg("%s is not in cases.tsv", address);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

static void test_revoked_after_first_use(void **state)
{
	struct fx *f = *state;
	const char *a = "erin@revoke.smp.example";
	char file[1024], keep[1100], revoked[1024];
	struct smp_event *ev = NULL;
	size_t n = 0;
	bool seen = false;

	wkd_file(a, file, sizeof(file));
	snprintf(keep, sizeof(keep), "%s.orig", file);
	snprintf(revoked, sizeof(revoked), "%s/keys/%s.revoked",
		 tdisc.dir, a);
	copy_file(file, keep);
	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	expect_binding(f, a, "wkd", "https://", SMP_BIND_ACTIVE);
	/* the owner's domain publishes the revocation */
	copy_file(revoked, file);
	refresh(f, a);
	copy_file(keep, file);
	expect(f, SMP_DISC_NOKEY, a);
	expect_binding(f, a, "wkd", "https://", SMP_BIND_REVOKED);
	/* encryption stops: no usable key, and none is looked up again */
	look(f, a, 5000);
	expect(f, SMP_DISC_NOKEY, a);
	assert_int_equal(f->r.lookups, 0);
	assert_int_equal(smp_keyring_events_for(f->kr, a, &ev, &n), 0);
	for (size_t i = 0; i < n; i++)
		seen |= strcmp(ev[i].event, "revoked") == 0;
	smp_events_free(ev, n);
	assert_true(seen);
}

static void test_refresh_keeps_key_on_failure(void **state)
{
	struct fx *f = *state;
	const char *a = "alice@wkd-adv.smp.example";
	struct smp_disc_net *dead = net_with(tdisc.blackhole);
	struct smp_disc_net *good = f->net;

	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	f->dx.net = dead;
	f->dx.deadline_ms = smp_disc_now_ms() + 1500;
	memset(&f->r, 0, sizeof(f->r));
	assert_int_equal(smp_discovery_refresh(&f->dx, a, &f->r), 0);
	f->dx.net = good;
	smp_disc_net_free(dead);
	expect(f, SMP_DISC_FAILED, a);
	/* the key stays, the entry stays found and is retried after error_ttl */
	expect_binding(f, a, "wkd", "https://", SMP_BIND_ACTIVE);
	expect_cache(f, a, "found", 60, 60);
	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
}

static void test_blocked_binding_skipped(void **state)
{
	struct fx *f = *state;
	const char *a = "bob@wkd-direct.smp.example";

	look(f, a, 5000);
	expect(f, SMP_DISC_HAVE, a);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, a, f->r.fpr,
						       SMP_BIND_BLOCKED), 0);
	look(f, a, 5000);
	expect(f, SMP_DISC_SKIPPED, a);
	assert_int_equal(f->r.lookups, 0);
	/* a refresh leaves it alone too */
	refresh(f, a);
	expect(f, SMP_DISC_SKIPPED, a);
}

/* Every lookup error is FAILED, never NOKEY, and is cached as an error
 * (error_ttl) so that the address keeps failing closed. */
static void failed_case(struct fx *f, const char *a, const char *want, int64_t ms)
{
	look(f, a, ms);
	expect(f, SMP_DISC_FAILED, a);
	if (want && !strstr(f->r.detail, want))
		fail_msg("%s: detail '%s' lacks '%s'", a, f->r.detail, want);
	expect_cache(f, a, "error", 60, 60);
	look(f, a, ms);
	expect(f, SMP_DISC_FAILED, a);
	assert_true(f->r.cached);
}

static void test_errors_fail_closed(void **state)
{
	struct fx *f = *state;

	failed_case(f, "user@http500.smp.example", "500", 5000);
	failed_case(f, "user@untrusted.smp.example", "wkd", 5000);
	failed_case(f, "user@hang.smp.example", "wkd", 1500);
	failed_case(f, "user@servfail.smp.example", NULL, 5000);
	failed_case(f, "mallet@bogus.smp.example", NULL, 5000);
}

/* An address no method can name is not looked up (SKIPPED, no lookup):
 * failing closed on it would hold its mail for nothing. */
static void test_unnamed_address_skipped(void **state)
{
	struct fx *f = *state;

	look(f, "user@[192.0.2.1]", 5000);
	expect(f, SMP_DISC_SKIPPED, "user@[192.0.2.1]");
	assert_int_equal(f->r.lookups, 0);
	look(f, "user@b\xc3\xbc" "cher.smp.example", 5000);
	expect(f, SMP_DISC_SKIPPED, "user@b\xc3\xbc" "cher.smp.example");
	assert_int_equal(f->r.lookups, 0);
}

static void test_dns_timeout_fails_closed(void **state)
{
	struct fx *f = *state;
	struct smp_disc_net *dead = net_with(tdisc.blackhole);

	f->dx.net = dead;
	look(f, "carol@dane.smp.example", 1500);
	smp_disc_net_free(dead);
	f->dx.net = f->net;
	expect(f, SMP_DISC_FAILED, "carol@dane.smp.example");
	expect_cache(f, "carol@dane.smp.example", "error", 60, 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wkd_advanced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wkd_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dane, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order_decides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_published_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_uid_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_after_first_use, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refresh_keeps_key_on_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blocked_binding_skipped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_errors_fail_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_timeout_fails_closed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unnamed_address_skipped, setup,
						teardown),
	};
	int failed;

	t_filter_from_env();
	failed = cmocka_run_group_tests_name("discovery", tests, group_setup, NULL);
	kr_backend = "postgresql";
	failed += cmocka_run_group_tests_name("discovery on postgresql", tests,
					      group_setup, NULL);
	return failed;
}
