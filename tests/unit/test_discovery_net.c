/* test_discovery_net.c - the discovery transports (lib/smp_discovery_wkd.c,
 * smp_discovery_dane.c, smp_discovery_net.c) against real servers on
 * loopback (test_disc.h, tests/discovery/disc-start.sh): knotd serving
 * DNSSEC-signed zones, an HTTPS server with a test CA and WKD trees, and a
 * DNS black hole. Each case is one address of disc-start.sh's list.
 *
 * FOUND must give exactly the published bytes, NONE only when nothing is
 * published, and every failure (HTTP 500, an untrusted certificate, a
 * server that never answers, SERVFAIL, DNSSEC bogus, a resolver that never
 * answers, an answer over max_bytes) ERROR with a sentence naming what was
 * asked, inside the deadline.
 */
#include "test_util.h"
#include "test_disc.h"

#include <pthread.h>

#include "smp_discovery.h"

#define DEADLINE_MS 8000 /* for lookups that should answer at once */
#define SLACK_MS 1500    /* how late a timed-out lookup may return */

static struct smp_disc_net *net; /* knotd, the test CA and trust anchor */

static int group_setup(void **state)
{
	(void)state;
	if (tdisc_setup())
		return -1;
	net = tdisc_net(NULL, NULL, 0);
	return net ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	smp_disc_net_free(net);
	net = NULL;
	return 0;
}

/* The certificate disc-start.sh published for address. */
static unsigned char *published(const char *address, size_t *n)
{
	char rel[160], path[320];

	snprintf(rel, sizeof(rel), "keys/%s.pub", address);
	return slurp(tdisc_path(path, sizeof(path), rel), n);
}

static void assert_found(const struct smp_disc_answer *a, const char *address)
{
	size_t n;
	unsigned char *key = published(address, &n);

	if (a->status != SMP_DISC_FOUND)
		fail_msg("%s: %s, not found: %s (%s)", address,
			 smp_disc_status_name(a->status), a->error, a->origin);
	assert_int_equal(a->len, n);
	assert_memory_equal(a->data, key, n);
	free(key);
}

static void assert_none(const struct smp_disc_answer *a, const char *address)
{
	if (a->status != SMP_DISC_NONE)
		fail_msg("%s: %s, not none: %s (%s)", address,
			 smp_disc_status_name(a->status), a->error, a->origin);
	assert_null(a->data);
	assert_int_equal(a->len, 0);
}

/* ERROR whose sentence holds each of the NULL-terminated words. */
static void assert_error(const struct smp_disc_answer *a, const char *address,
			 ...)
{
	va_list ap;
	const char *w;

	if (a->status != SMP_DISC_ERROR)
		fail_msg("%s: %s, not error (%s)", address,
			 smp_disc_status_name(a->status), a->origin);
	assert_null(a->data);
	assert_true(a->error[0] != '\0');
	va_start(ap, address);
	while ((w = va_arg(ap, const char *)))
		if (!strstr(a->error, w))
			fail_msg("%s: the error \"%s\" does not say \"%s\"",
				 address, a->error, w);
	va_end(ap);
}

static int64_t in(int64_t ms)
{
	return smp_disc_now_ms() + ms;
}

/* The advanced and direct URL of address on the test port. */
static void urls(const char *address, char adv[512], char dir[512])
{
	assert_int_equal(smp_wkd_urls(address, tdisc.https_port, adv, 512, dir,
				      512),
			 0);
}

/* ------------------------------------------------------------------ */
/* The names the servers were built with                               */

/* disc-util.py's WKD hashes and OPENPGPKEY owners (a second
 * implementation) are smp_wkd_hash's and smp_dane_qname's. */
static void test_names_agree(void **state)
{
	char path[320], line[512], h[33], q[300];
	unsigned hashes = 0, owners = 0;
	FILE *f;

	(void)state;
	f = fopen(tdisc_path(path, sizeof(path), "hashes.tsv"), "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t');

		if (line[0] == '#' || !tab)
			continue;
		*tab = '\0';
		tab[1 + strcspn(tab + 1, "\n")] = '\0';
		smp_wkd_hash(line, strlen(line), h);
		assert_string_equal(h, tab + 1);
		hashes++;
	}
	fclose(f);
	f = fopen(tdisc_path(path, sizeof(path), "cases.tsv"), "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *col[4];
		char *p = line;
		int k;

		if (line[0] == '#')
			continue;
		line[strcspn(line, "\n")] = '\0';
		for (k = 0; k < 4 && p; k++) {
			col[k] = p;
			p = strchr(p, '\t');
			if (p)
				*p++ = '\0';
		}
		assert_int_equal(k, 4);
		assert_int_equal(smp_dane_qname(col[0], q, sizeof(q)), 0);
		assert_string_equal(q, col[3]);
		owners++;
	}
	fclose(f);
	assert_true(hashes >= 5);
	assert_true(owners >= 10);
}

/* ------------------------------------------------------------------ */
/* WKD                                                                 */

static void test_wkd_advanced_found(void **state)
{
	struct smp_disc_answer a = {0};
	char adv[512], dir[512];

	(void)state;
	urls("alice@wkd-adv.smp.example", adv, dir);
	assert_int_equal(smp_disc_wkd(net, "alice@wkd-adv.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "alice@wkd-adv.smp.example");
	assert_int_equal(a.method, SMP_DISC_WKD);
	assert_string_equal(a.origin, adv);
	assert_int_equal(a.ttl, -1);
	assert_string_equal(a.error, "");
	smp_disc_answer_clear(&a);
	assert_null(a.data);

	/* the same key for the address in another case: the URL's domain
	 * is lowered, the hash is of the lowered local part */
	assert_int_equal(smp_disc_wkd(net, "Alice@WKD-Adv.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "alice@wkd-adv.smp.example");
	smp_disc_answer_clear(&a);
}

static void test_wkd_direct_found(void **state)
{
	struct smp_disc_answer a = {0};
	char adv[512], dir[512];

	(void)state;
	urls("bob@wkd-direct.smp.example", adv, dir);
	assert_int_equal(smp_disc_wkd(net, "bob@wkd-direct.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "bob@wkd-direct.smp.example");
	/* openpgpkey.wkd-direct.smp.example does not exist: the direct URL */
	assert_string_equal(a.origin, dir);
	smp_disc_answer_clear(&a);
}

/* A body without Content-Length (read to the end of the connection). */
static void test_wkd_no_content_length_found(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "chunk@chunked.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "chunk@chunked.smp.example");
	smp_disc_answer_clear(&a);
}

/* WKD's host names may come from an unsigned zone: TLS authenticates. */
static void test_wkd_insecure_dns_found(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "ivan@unsigned.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "ivan@unsigned.example");
	smp_disc_answer_clear(&a);
}

static void test_wkd_none_404(void **state)
{
	struct smp_disc_answer a = {0};
	char adv[512], dir[512];

	(void)state;
	urls("nobody@nothing.smp.example", adv, dir);
	assert_int_equal(smp_disc_wkd(net, "nobody@nothing.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "nobody@nothing.smp.example");
	/* the advanced host exists: the direct URL is never asked */
	assert_string_equal(a.origin, adv);
	assert_int_equal(a.ttl, -1);
	smp_disc_answer_clear(&a);

	/* the advanced host of alice's domain, another local part: 404 */
	assert_int_equal(smp_disc_wkd(net, "nobody@wkd-adv.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "nobody@wkd-adv.smp.example");
	smp_disc_answer_clear(&a);
}

static void test_wkd_none_no_such_domain(void **state)
{
	struct smp_disc_answer a = {0};
	char adv[512], dir[512];

	(void)state;
	urls("x@nosuch.smp.example", adv, dir);
	assert_int_equal(smp_disc_wkd(net, "x@nosuch.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "x@nosuch.smp.example");
	assert_string_equal(a.origin, dir);
	smp_disc_answer_clear(&a);
}

static void test_wkd_error_http_500(void **state)
{
	struct smp_disc_answer a = {0};
	char adv[512], dir[512];

	(void)state;
	urls("user@http500.smp.example", adv, dir);
	assert_int_equal(smp_disc_wkd(net, "user@http500.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "user@http500.smp.example", "HTTP 500",
		     "https://openpgpkey.http500.smp.example:", NULL);
	assert_string_equal(a.origin, adv);
	smp_disc_answer_clear(&a);
}

static void test_wkd_error_tls_untrusted(void **state)
{
	struct smp_disc_answer a = {0};
	struct smp_disc_net *other;
	char path[320];

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "user@untrusted.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "user@untrusted.smp.example",
		     "https://openpgpkey.untrusted.smp.example:", NULL);
	smp_disc_answer_clear(&a);

	/* trusting the other CA instead turns it round: that host answers
	 * (404, nothing published there) and alice's host fails */
	other = tdisc_net(NULL, tdisc_path(path, sizeof(path), "tls/otherca.pem"),
			  0);
	assert_int_equal(smp_disc_wkd(other, "user@untrusted.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "user@untrusted.smp.example");
	smp_disc_answer_clear(&a);
	assert_int_equal(smp_disc_wkd(other, "alice@wkd-adv.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "alice@wkd-adv.smp.example",
		     "https://openpgpkey.wkd-adv.smp.example:", NULL);
	smp_disc_answer_clear(&a);
	smp_disc_net_free(other);
}

static void test_wkd_error_timeout(void **state)
{
	struct smp_disc_answer a = {0};
	int64_t t0 = smp_disc_now_ms(), took;

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "user@hang.smp.example", t0 + 1500, &a),
			 0);
	took = smp_disc_now_ms() - t0;
	assert_error(&a, "user@hang.smp.example", "timed out",
		     "https://openpgpkey.hang.smp.example:", NULL);
	if (took > 1500 + SLACK_MS)
		fail_msg("a 1.5 s deadline returned after %lld ms",
			 (long long)took);
	smp_disc_answer_clear(&a);
}

/* max_bytes: a body of exactly max_bytes is taken, one more is ERROR,
 * with Content-Length (curl refuses it early) and without (the write
 * callback stops it). */
static void test_wkd_error_oversize(void **state)
{
	static const char *const who[] = {"alice@wkd-adv.smp.example",
					  "chunk@chunked.smp.example"};
	struct smp_disc_answer a = {0};
	char want[64];

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		size_t n;
		unsigned char *key = published(who[i], &n);
		struct smp_disc_net *exact = tdisc_net(NULL, NULL, n);
		struct smp_disc_net *small = tdisc_net(NULL, NULL, n - 1);
		struct smp_disc_net *tiny = tdisc_net(NULL, NULL, 100);

		assert_int_equal(smp_disc_wkd(exact, who[i], in(DEADLINE_MS), &a), 0);
		assert_found(&a, who[i]);
		smp_disc_answer_clear(&a);
		assert_int_equal(smp_disc_wkd(small, who[i], in(DEADLINE_MS), &a), 0);
		snprintf(want, sizeof(want), "larger than %zu bytes", n - 1);
		assert_error(&a, who[i], want, "https://openpgpkey.", NULL);
		smp_disc_answer_clear(&a);
		assert_int_equal(smp_disc_wkd(tiny, who[i], in(DEADLINE_MS), &a), 0);
		assert_error(&a, who[i], "larger than 100 bytes", NULL);
		smp_disc_answer_clear(&a);
		smp_disc_net_free(exact);
		smp_disc_net_free(small);
		smp_disc_net_free(tiny);
		free(key);
	}
}

static void test_wkd_error_servfail(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "user@servfail.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "user@servfail.smp.example", "SERVFAIL",
		     "openpgpkey.servfail.smp.example", NULL);
	smp_disc_answer_clear(&a);
}

static void test_wkd_error_bogus(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	/* the key is published on the HTTPS server: only DNSSEC stops it */
	assert_int_equal(smp_disc_wkd(net, "mallet@bogus.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "mallet@bogus.smp.example", "bogus",
		     "openpgpkey.bogus.smp.example", NULL);
	smp_disc_answer_clear(&a);
}

static void test_wkd_error_dns_timeout(void **state)
{
	struct smp_disc_answer a = {0};
	struct smp_disc_net *bh = tdisc_net(tdisc.blackhole, NULL, 0);
	int64_t t0 = smp_disc_now_ms(), took;

	(void)state;
	assert_int_equal(smp_disc_wkd(bh, "alice@wkd-adv.smp.example", t0 + 1000,
				      &a),
			 0);
	took = smp_disc_now_ms() - t0;
	assert_error(&a, "alice@wkd-adv.smp.example", "timed out",
		     "openpgpkey.wkd-adv.smp.example", NULL);
	if (took > 1000 + SLACK_MS)
		fail_msg("a 1 s deadline returned after %lld ms", (long long)took);
	smp_disc_answer_clear(&a);
	smp_disc_net_free(bh);
}

/* The tree is read on every request: a key replaced by its revoked copy
 * is what the next lookup gets. */
static void test_wkd_sees_changes(void **state)
{
	struct smp_disc_answer a = {0};
	char wkd[512], path[320], cmd[1200], h[33];
	unsigned char *revoked;
	size_t n;

	(void)state;
	smp_wkd_hash("erin", 4, h);
	snprintf(wkd, sizeof(wkd),
		 "%s/www/openpgpkey.revoke.smp.example/.well-known/openpgpkey/"
		 "revoke.smp.example/hu/%s",
		 tdisc.dir, h);
	assert_int_equal(smp_disc_wkd(net, "erin@revoke.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "erin@revoke.smp.example");
	smp_disc_answer_clear(&a);

	tdisc_path(path, sizeof(path), "keys/erin@revoke.smp.example.revoked");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, wkd);
	assert_int_equal(system(cmd), 0);
	revoked = slurp(path, &n);
	assert_int_equal(smp_disc_wkd(net, "erin@revoke.smp.example",
				      in(DEADLINE_MS), &a),
			 0);
	assert_int_equal(a.status, SMP_DISC_FOUND);
	assert_int_equal(a.len, n);
	assert_memory_equal(a.data, revoked, n);
	smp_disc_answer_clear(&a);
	free(revoked);

	/* put the original back for whoever runs after */
	snprintf(cmd, sizeof(cmd), "cp '%s/keys/erin@revoke.smp.example.pub' '%s'",
		 tdisc.dir, wkd);
	assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------------ */
/* DANE                                                                */

static void test_dane_found(void **state)
{
	struct smp_disc_answer a = {0};
	char q[300];

	(void)state;
	assert_int_equal(smp_dane_qname("carol@dane.smp.example", q, sizeof(q)), 0);
	assert_int_equal(smp_disc_dane(net, "carol@dane.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "carol@dane.smp.example");
	assert_int_equal(a.method, SMP_DISC_DANE);
	assert_string_equal(a.origin, q);
	/* the record's TTL (1234 in the zone; less when cached a while) */
	assert_true(a.ttl > 1100 && a.ttl <= 1234);
	smp_disc_answer_clear(&a);

	/* a key with a wrong UID is still what was published: the rules
	 * are the policy layer's */
	assert_int_equal(smp_disc_dane(net, "dave@wronguid.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "dave@wronguid.smp.example");
	smp_disc_answer_clear(&a);
}

static void test_dane_none_nxdomain(void **state)
{
	struct smp_disc_answer a = {0};
	char q[300];

	(void)state;
	assert_int_equal(smp_dane_qname("nobody@nothing.smp.example", q, sizeof(q)),
			 0);
	assert_int_equal(smp_disc_dane(net, "nobody@nothing.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "nobody@nothing.smp.example");
	assert_string_equal(a.origin, q);
	/* the negative TTL: the SOA's minimum, 321 */
	assert_true(a.ttl > 200 && a.ttl <= 321);
	smp_disc_answer_clear(&a);

	assert_int_equal(smp_disc_dane(net, "x@nosuch.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "x@nosuch.smp.example");
	/* a WKD-only domain publishes no OPENPGPKEY */
	assert_int_equal(smp_disc_dane(net, "alice@wkd-adv.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "alice@wkd-adv.smp.example");
	smp_disc_answer_clear(&a);
}

/* A record in a zone no trust anchor covers is not a key (RFC 7929). */
static void test_dane_none_unsigned(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	assert_int_equal(smp_disc_dane(net, "ivan@unsigned.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_none(&a, "ivan@unsigned.example");
	smp_disc_answer_clear(&a);
}

static void test_dane_error_servfail(void **state)
{
	struct smp_disc_answer a = {0};
	char q[300];

	(void)state;
	assert_int_equal(smp_dane_qname("user@servfail.smp.example", q, sizeof(q)),
			 0);
	assert_int_equal(smp_disc_dane(net, "user@servfail.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "user@servfail.smp.example", "SERVFAIL", q, NULL);
	smp_disc_answer_clear(&a);
}

static void test_dane_error_bogus(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	/* the record is in the zone: only DNSSEC stops it */
	assert_int_equal(smp_disc_dane(net, "mallet@bogus.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "mallet@bogus.smp.example", "bogus",
		     "._openpgpkey.bogus.smp.example.", NULL);
	smp_disc_answer_clear(&a);
}

static void test_dane_error_timeout(void **state)
{
	struct smp_disc_answer a = {0};
	struct smp_disc_net *bh = tdisc_net(tdisc.blackhole, NULL, 0);
	int64_t t0 = smp_disc_now_ms(), took;

	(void)state;
	assert_int_equal(smp_disc_dane(bh, "carol@dane.smp.example", t0 + 1000, &a),
			 0);
	took = smp_disc_now_ms() - t0;
	assert_error(&a, "carol@dane.smp.example", "timed out",
		     "._openpgpkey.dane.smp.example.", NULL);
	if (took > 1000 + SLACK_MS)
		fail_msg("a 1 s deadline returned after %lld ms", (long long)took);
	smp_disc_answer_clear(&a);
	smp_disc_net_free(bh);
}

static void test_dane_error_oversize(void **state)
{
	struct smp_disc_answer a = {0};
	size_t n;
	unsigned char *key = published("carol@dane.smp.example", &n);
	struct smp_disc_net *exact = tdisc_net(NULL, NULL, n);
	struct smp_disc_net *small = tdisc_net(NULL, NULL, n - 1);
	char want[64];

	(void)state;
	assert_int_equal(smp_disc_dane(exact, "carol@dane.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	assert_found(&a, "carol@dane.smp.example");
	smp_disc_answer_clear(&a);
	assert_int_equal(smp_disc_dane(small, "carol@dane.smp.example",
				       in(DEADLINE_MS), &a),
			 0);
	snprintf(want, sizeof(want), "larger than %zu bytes", n - 1);
	assert_error(&a, "carol@dane.smp.example", want, NULL);
	smp_disc_answer_clear(&a);
	smp_disc_net_free(exact);
	smp_disc_net_free(small);
	free(key);
}

/* ------------------------------------------------------------------ */
/* Both                                                                */

/* A deadline already past: ERROR at once, nothing asked. */
static void test_deadline_passed(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "alice@wkd-adv.smp.example",
				      smp_disc_now_ms() - 1, &a),
			 0);
	assert_error(&a, "alice@wkd-adv.smp.example", "timed out", NULL);
	smp_disc_answer_clear(&a);
	assert_int_equal(smp_disc_dane(net, "carol@dane.smp.example",
				       smp_disc_now_ms() - 1, &a),
			 0);
	assert_error(&a, "carol@dane.smp.example", "timed out", NULL);
	smp_disc_answer_clear(&a);
}

static void test_not_an_address(void **state)
{
	struct smp_disc_answer a = {0};

	(void)state;
	assert_int_equal(smp_disc_wkd(net, "no-at-sign", in(DEADLINE_MS), &a), 0);
	assert_error(&a, "no-at-sign", "no-at-sign", NULL);
	smp_disc_answer_clear(&a);
	assert_int_equal(smp_disc_dane(net, "x@[127.0.0.1]", in(DEADLINE_MS), &a),
			 0);
	assert_error(&a, "x@[127.0.0.1]", "x@[127.0.0.1]", NULL);
	smp_disc_answer_clear(&a);
}

static void test_net_config_errors(void **state)
{
	const char *bad[1] = {"127.0.0.1@notaport"};
	const char *good[1] = {"127.0.0.1@53"};
	struct smp_disc_net_config c = {0};
	char err[256];

	(void)state;
	c.dns_trust_anchor_file = "/nonexistent/ta.key";
	assert_null(smp_disc_net_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ta.key"));

	c.dns_trust_anchor_file = tdisc.ta;
	c.ca_file = "/nonexistent/ca.pem";
	assert_null(smp_disc_net_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));

	c.ca_file = tdisc.ca;
	c.dns_forwarders = bad;
	c.n_dns_forwarders = 1;
	assert_null(smp_disc_net_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "127.0.0.1@notaport"));
	bad[0] = "dns.example.org";
	assert_null(smp_disc_net_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "dns.example.org"));

	c.dns_forwarders = good;
	c.dns_recursive = true;
	assert_null(smp_disc_net_new(&c, err, sizeof(err)));
	assert_true(err[0] != '\0');

	/* and the same with nothing wrong makes a net (nothing is asked) */
	c.dns_recursive = false;
	{
		struct smp_disc_net *n = smp_disc_net_new(&c, err, sizeof(err));

		if (!n)
			fail_msg("%s", err);
		smp_disc_net_free(n);
	}
}

/* Several threads on one net at once: every answer is its own. */
#define NTHREADS 8
#define NROUNDS 6

struct worker {
	pthread_t t;
	unsigned id;
	unsigned bad;
	char why[300];
};

static void *worker_run(void *arg)
{
	static const struct {
		const char *address;
		int dane;
		enum smp_disc_status want;
	} jobs[] = {
		{"alice@wkd-adv.smp.example", 0, SMP_DISC_FOUND},
		{"carol@dane.smp.example", 1, SMP_DISC_FOUND},
		{"bob@wkd-direct.smp.example", 0, SMP_DISC_FOUND},
		{"nobody@nothing.smp.example", 1, SMP_DISC_NONE},
		{"mallet@bogus.smp.example", 1, SMP_DISC_ERROR},
		{"x@nosuch.smp.example", 0, SMP_DISC_NONE},
		{"dave@wronguid.smp.example", 1, SMP_DISC_FOUND},
		{"user@servfail.smp.example", 1, SMP_DISC_ERROR},
	};
	struct worker *w = arg;
	const size_t njobs = sizeof(jobs) / sizeof(jobs[0]);

	for (unsigned r = 0; r < NROUNDS; r++) {
		size_t j = (w->id + r) % njobs;
		struct smp_disc_answer a = {0};
		int rc = jobs[j].dane
				 ? smp_disc_dane(net, jobs[j].address,
						 in(DEADLINE_MS), &a)
				 : smp_disc_wkd(net, jobs[j].address,
						in(DEADLINE_MS), &a);

		if (rc || a.status != jobs[j].want) {
			w->bad++;
			snprintf(w->why, sizeof(w->why), "%s: %s (%s)",
				 jobs[j].address, smp_disc_status_name(a.status),
				 a.error);
		} else if (a.status == SMP_DISC_FOUND) {
			char rel[160], path[320];
			FILE *f;
			unsigned char buf[8192];
			size_t n;

			snprintf(rel, sizeof(rel), "keys/%s.pub", jobs[j].address);
			f = fopen(tdisc_path(path, sizeof(path), rel), "rb");
			n = f ? fread(buf, 1, sizeof(buf), f) : 0;
			if (f)
				fclose(f);
			if (n != a.len || memcmp(buf, a.data, n)) {
				w->bad++;
				snprintf(w->why, sizeof(w->why),
					 "%s: another key", jobs[j].address);
			}
		}
		smp_disc_answer_clear(&a);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct worker w[NTHREADS];

	(void)state;
	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i].id = i;
		assert_int_equal(pthread_create(&w[i].t, NULL, worker_run, &w[i]),
				 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++)
		pthread_join(w[i].t, NULL);
	for (unsigned i = 0; i < NTHREADS; i++)
		if (w[i].bad)
			fail_msg("thread %u: %u wrong, last %s", i, w[i].bad,
				 w[i].why);
}

/* Timeouts on one net while other threads' answers come: each waits its
 * own deadline, the others are not held up. */
static void *blackhole_run(void *arg)
{
	struct smp_disc_net *bh = arg;
	struct smp_disc_answer a = {0};

	smp_disc_dane(bh, "carol@dane.smp.example", in(600), &a);
	smp_disc_answer_clear(&a);
	return NULL;
}

static void test_threads_timeouts(void **state)
{
	/* knotd and the black hole both: a query to the black hole
	 * never finishes, one to knotd does */
	const char *fw[1] = {tdisc.blackhole};
	struct smp_disc_net_config c = {
		.ca_file = tdisc.ca,
		.https_port = tdisc.https_port,
		.dns_forwarders = fw,
		.n_dns_forwarders = 1,
		.dns_trust_anchor_file = tdisc.ta,
	};
	char err[256];
	struct smp_disc_net *bh = smp_disc_net_new(&c, err, sizeof(err));
	pthread_t t[4];
	struct smp_disc_answer a = {0};
	int64_t t0, took;

	(void)state;
	if (!bh)
		fail_msg("%s", err);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, blackhole_run, bh), 0);
	/* one of those four pumps; this one, with a later deadline, waits
	 * its turn and then times out on its own clock */
	t0 = smp_disc_now_ms();
	assert_int_equal(smp_disc_dane(bh, "carol@dane.smp.example", t0 + 1200, &a),
			 0);
	took = smp_disc_now_ms() - t0;
	assert_error(&a, "carol@dane.smp.example", "timed out", NULL);
	if (took < 1100 || took > 1200 + SLACK_MS)
		fail_msg("a 1.2 s deadline returned after %lld ms",
			 (long long)took);
	smp_disc_answer_clear(&a);
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	smp_disc_net_free(bh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_agree),
		cmocka_unit_test(test_wkd_advanced_found),
		cmocka_unit_test(test_wkd_direct_found),
		cmocka_unit_test(test_wkd_no_content_length_found),
		cmocka_unit_test(test_wkd_insecure_dns_found),
		cmocka_unit_test(test_wkd_none_404),
		cmocka_unit_test(test_wkd_none_no_such_domain),
		cmocka_unit_test(test_wkd_error_http_500),
		cmocka_unit_test(test_wkd_error_tls_untrusted),
		cmocka_unit_test(test_wkd_error_timeout),
		cmocka_unit_test(test_wkd_error_oversize),
		cmocka_unit_test(test_wkd_error_servfail),
		cmocka_unit_test(test_wkd_error_bogus),
		cmocka_unit_test(test_wkd_error_dns_timeout),
		cmocka_unit_test(test_wkd_sees_changes),
		cmocka_unit_test(test_dane_found),
		cmocka_unit_test(test_dane_none_nxdomain),
		cmocka_unit_test(test_dane_none_unsigned),
		cmocka_unit_test(test_dane_error_servfail),
		cmocka_unit_test(test_dane_error_bogus),
		cmocka_unit_test(test_dane_error_timeout),
		cmocka_unit_test(test_dane_error_oversize),
		cmocka_unit_test(test_deadline_passed),
		cmocka_unit_test(test_not_an_address),
		cmocka_unit_test(test_net_config_errors),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_threads_timeouts),
	};

	t_filter_from_env();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
