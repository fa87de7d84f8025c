/* test_discovery_names.c - the names key discovery asks for
 * (lib/smp_discovery_names.c): the WKD hash and URLs against the vectors of
 * draft-koch-openpgp-webkey-service, the OPENPGPKEY owner name against
 * RFC 7929 section 3, and what is not an address or does not fit. */
#include "test_util.h"

#include "smp_discovery.h"

#define JOE_HASH "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
/* RFC 7929 section 3 gives the QNAME without the final dot; the zone's
 * owner name (and ours) has it. */
#define HUGH_QNAME                                                        \
	"c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6"       \
	"._openpgpkey.example.com."

static void test_wkd_hash_vector(void **state)
{
	char h[33];

	(void)state;
	smp_wkd_hash("Joe.Doe", 7, h);
	assert_string_equal(h, JOE_HASH);
	/* lowered before hashing: every case hashes the same */
	smp_wkd_hash("joe.doe", 7, h);
	assert_string_equal(h, JOE_HASH);
	smp_wkd_hash("JOE.DOE", 7, h);
	assert_string_equal(h, JOE_HASH);
	/* only len octets count */
	smp_wkd_hash("Joe.Doe@Example.ORG", 7, h);
	assert_string_equal(h, JOE_HASH);
}

static void test_wkd_hash_shape(void **state)
{
	static const char zb32[] = "ybndrfg8ejkmcpqxot1uwisza345h769";
	char h[33], h2[33];

	(void)state;
	/* SHA-1("") = da39a3ee5e6b4b0d3255bfef95601890afd80709, in
	 * z-base-32 (computed independently) */
	smp_wkd_hash("", 0, h);
	assert_string_equal(h, "5eh48516ppfo4c1iz9z3kaya1nz7obaj");
	/* only ASCII letters are lowered: UTF-8 octets are hashed as they are */
	smp_wkd_hash("J\xc3\x96rg", 5, h);
	smp_wkd_hash("j\xc3\xb6rg", 5, h2);
	assert_string_not_equal(h, h2);
	assert_int_equal(strlen(h), 32);
	for (size_t i = 0; i < 32; i++)
		assert_non_null(strchr(zb32, h[i]));
}

static void test_wkd_urls_vector(void **state)
{
	char adv[512], dir[512];

	(void)state;
	assert_int_equal(smp_wkd_urls("Joe.Doe@Example.ORG", 443, adv, sizeof(adv),
				      dir, sizeof(dir)),
			 0);
	assert_string_equal(adv, "https://openpgpkey.example.org/.well-known/"
				 "openpgpkey/example.org/hu/" JOE_HASH
				 "?l=Joe.Doe");
	assert_string_equal(dir, "https://example.org/.well-known/openpgpkey/"
				 "hu/" JOE_HASH "?l=Joe.Doe");
}

static void test_wkd_urls_port(void **state)
{
	char adv[512], dir[512];

	(void)state;
	assert_int_equal(smp_wkd_urls("Joe.Doe@Example.ORG", 8443, adv,
				      sizeof(adv), dir, sizeof(dir)),
			 0);
	assert_string_equal(adv, "https://openpgpkey.example.org:8443/"
				 ".well-known/openpgpkey/example.org/hu/" JOE_HASH
				 "?l=Joe.Doe");
	assert_string_equal(dir, "https://example.org:8443/.well-known/"
				 "openpgpkey/hu/" JOE_HASH "?l=Joe.Doe");
	assert_int_equal(smp_wkd_urls("Joe.Doe@Example.ORG", 0, adv, sizeof(adv),
				      dir, sizeof(dir)),
			 -1);
	assert_string_equal(adv, "");
	assert_string_equal(dir, "");
	assert_int_equal(smp_wkd_urls("Joe.Doe@Example.ORG", 65536, adv,
				      sizeof(adv), dir, sizeof(dir)),
			 -1);
}

static void test_wkd_urls_encoding(void **state)
{
	char adv[512], dir[512], h[33], want[512];

	(void)state;
	/* unreserved characters stay, everything else is %XX */
	assert_int_equal(smp_wkd_urls("a-b_c.d~e+f/g=h%i'j@x.org", 443, adv,
				      sizeof(adv), dir, sizeof(dir)),
			 0);
	smp_wkd_hash("a-b_c.d~e+f/g=h%i'j", 19, h);
	snprintf(want, sizeof(want),
		 "https://x.org/.well-known/openpgpkey/hu/%s"
		 "?l=a-b_c.d~e%%2Bf%%2Fg%%3Dh%%25i%%27j",
		 h);
	assert_string_equal(dir, want);
	/* UTF-8 octets are encoded one by one */
	assert_int_equal(smp_wkd_urls("J\xc3\xb6rg@x.org", 443, adv, sizeof(adv),
				      dir, sizeof(dir)),
			 0);
	assert_non_null(strstr(dir, "?l=J%C3%B6rg"));
	/* a quoted local part: split at the last '@', quotes part of it */
	assert_int_equal(smp_wkd_urls("\"a@b\"@X.Org", 443, adv, sizeof(adv),
				      dir, sizeof(dir)),
			 0);
	smp_wkd_hash("\"a@b\"", 5, h);
	snprintf(want, sizeof(want),
		 "https://openpgpkey.x.org/.well-known/openpgpkey/x.org/hu/%s"
		 "?l=%%22a%%40b%%22",
		 h);
	assert_string_equal(adv, want);
	/* the angle-bracket form normalises to the same */
	assert_int_equal(smp_wkd_urls("<Joe.Doe@Example.ORG>", 443, adv,
				      sizeof(adv), dir, sizeof(dir)),
			 0);
	assert_string_equal(dir, "https://example.org/.well-known/openpgpkey/"
				 "hu/" JOE_HASH "?l=Joe.Doe");
}

static const char *const not_addresses[] = {
	"",
	"joe",
	"@example.org",
	"joe@",
	"joe@@example.org",
	"joe doe@example.org",
	"joe@exa mple.org",
	"joe@example.org\r\n",
	"joe@[192.0.2.1]",           /* a literal is no host for WKD or DNS */
	"joe@b\xc3\xbc" "cher.example", /* UTF-8 domain: no A-label here */
	"joe@example..org",
	"joe@-example.org",
	"\xff@example.org",
	NULL,
};

static void test_not_addresses(void **state)
{
	char adv[512], dir[512], q[512];

	(void)state;
	for (size_t i = 0; not_addresses[i]; i++) {
		strcpy(adv, "x");
		strcpy(dir, "x");
		strcpy(q, "x");
		if (smp_wkd_urls(not_addresses[i], 443, adv, sizeof(adv), dir,
				 sizeof(dir)) != -1)
			fail_msg("wkd accepted #%zu '%s'", i, not_addresses[i]);
		assert_string_equal(adv, "");
		assert_string_equal(dir, "");
		if (smp_dane_qname(not_addresses[i], q, sizeof(q)) != -1)
			fail_msg("dane accepted #%zu '%s'", i, not_addresses[i]);
		assert_string_equal(q, "");
	}
	assert_int_equal(smp_wkd_urls(NULL, 443, adv, sizeof(adv), dir,
				      sizeof(dir)),
			 -1);
	assert_int_equal(smp_dane_qname(NULL, q, sizeof(q)), -1);
}

static void test_wkd_urls_small(void **state)
{
	const char *a = "Joe.Doe@Example.ORG";
	char adv[512], dir[512];
	size_t alen, dlen;

	(void)state;
	assert_int_equal(smp_wkd_urls(a, 443, adv, sizeof(adv), dir, sizeof(dir)),
			 0);
	alen = strlen(adv);
	dlen = strlen(dir);
	/* exactly enough (with the NUL) works, one less does not */
	assert_int_equal(smp_wkd_urls(a, 443, adv, alen + 1, dir, dlen + 1), 0);
	assert_int_equal(strlen(adv), alen);
	assert_int_equal(strlen(dir), dlen);
	memset(adv, 'x', sizeof(adv));
	assert_int_equal(smp_wkd_urls(a, 443, adv, alen, dir, sizeof(dir)), -1);
	assert_string_equal(adv, "");
	assert_string_equal(dir, "");
	assert_int_equal(adv[alen], 'x'); /* nothing written past the size */
	memset(dir, 'x', sizeof(dir));
	assert_int_equal(smp_wkd_urls(a, 443, adv, sizeof(adv), dir, dlen), -1);
	assert_string_equal(adv, "");
	assert_string_equal(dir, "");
	assert_int_equal(dir[dlen], 'x');
	/* a percent escape does not fit halfway */
	assert_int_equal(smp_wkd_urls("a+b@x.org", 443, adv, sizeof(adv), dir,
				      sizeof(dir)),
			 0);
	dlen = strlen(dir);
	assert_int_equal(smp_wkd_urls("a+b@x.org", 443, adv, sizeof(adv), dir,
				      dlen - 1),
			 -1);
	assert_int_equal(smp_wkd_urls(a, 443, NULL, 0, dir, sizeof(dir)), -1);
	assert_int_equal(smp_wkd_urls(a, 443, adv, sizeof(adv), NULL, 0), -1);
}

static void test_dane_vector(void **state)
{
	char q[256];

	(void)state;
	assert_int_equal(smp_dane_qname("hugh@example.com", q, sizeof(q)), 0);
	assert_string_equal(q, HUGH_QNAME);
	/* the domain is lowered, the local part hashed as given */
	assert_int_equal(smp_dane_qname("hugh@EXAMPLE.Com", q, sizeof(q)), 0);
	assert_string_equal(q, HUGH_QNAME);
	assert_int_equal(smp_dane_qname("Hugh@example.com", q, sizeof(q)), 0);
	assert_string_not_equal(q, HUGH_QNAME);
	assert_int_equal(strlen(q), strlen(HUGH_QNAME));
	assert_non_null(strstr(q, "._openpgpkey.example.com."));
}

static void test_dane_small(void **state)
{
	char q[256];
	size_t n = strlen(HUGH_QNAME);

	(void)state;
	assert_int_equal(smp_dane_qname("hugh@example.com", q, n + 1), 0);
	assert_string_equal(q, HUGH_QNAME);
	memset(q, 'x', sizeof(q));
	assert_int_equal(smp_dane_qname("hugh@example.com", q, n), -1);
	assert_string_equal(q, "");
	assert_int_equal(smp_dane_qname("hugh@example.com", q, 0), -1);
	assert_int_equal(q[0], '\0');
	assert_int_equal(smp_dane_qname("hugh@example.com", NULL, 0), -1);
}

/* A domain that is a valid address's but makes the owner name longer
 * than DNS allows (255 octets on the wire). */
static void test_dane_long_domain(void **state)
{
	char addr[300], q[512];
	size_t pos = 0;

	(void)state;
	pos += (size_t)snprintf(addr, sizeof(addr), "a@");
	/* three labels of 63 and one of 40: 232 octets of domain */
	for (int i = 0; i < 3; i++) {
		memset(addr + pos, 'a' + i, 63);
		pos += 63;
		addr[pos++] = '.';
	}
	memset(addr + pos, 'z', 40);
	pos += 40;
	addr[pos] = '\0';
	assert_int_equal(smp_dane_qname(addr, q, sizeof(q)), -1);
	assert_string_equal(q, "");
	/* ... which is an address: WKD takes it */
	assert_int_equal(smp_wkd_urls(addr, 443, q, sizeof(q), q + 256,
				      sizeof(q) - 256),
			 -1); /* 300-odd characters do not fit in 256 */
	{
		char adv[1024], dir[1024];
		assert_int_equal(smp_wkd_urls(addr, 443, adv, sizeof(adv), dir,
					      sizeof(dir)),
				 0);
	}
	/* a long local part is fine: it is hashed */
	{
		char big[260];
		memset(big, 'l', 200);
		strcpy(big + 200, "@example.com");
		assert_int_equal(smp_dane_qname(big, q, sizeof(q)), 0);
		assert_int_equal(strlen(q), strlen(HUGH_QNAME));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wkd_hash_vector),
		cmocka_unit_test(test_wkd_hash_shape),
		cmocka_unit_test(test_wkd_urls_vector),
		cmocka_unit_test(test_wkd_urls_port),
		cmocka_unit_test(test_wkd_urls_encoding),
		cmocka_unit_test(test_not_addresses),
		cmocka_unit_test(test_wkd_urls_small),
		cmocka_unit_test(test_dane_vector),
		cmocka_unit_test(test_dane_small),
		cmocka_unit_test(test_dane_long_domain),
	};

	t_filter_from_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
