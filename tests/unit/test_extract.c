/* test_extract.c - keys from Autocrypt headers and application/pgp-keys
 * parts (lib/smp_extract.c), with the fixture keys and messages. */
#include "test_util.h"

#include <glib.h>

#include "smp_extract.h"

static gchar *fixture(const char *name, gsize *len)
{
	gchar *path = g_build_filename(FIXTURES_DIR, name, NULL), *text = NULL;
	assert_true(g_file_get_contents(path, &text, len, NULL));
	g_free(path);
	return text;
}

/* "addr=A; keydata=<base64 of dave's binary key>" */
static gchar *autocrypt_value(const char *addr, const char *extra)
{
	gsize len;
	gchar *key = fixture("keys/dave.pub.gpg", &len);
	gchar *b64 = g_base64_encode((const guchar *)key, len);
	gchar *v = g_strdup_printf("addr=%s;%s keydata=\r\n %s", addr, extra, b64);
	g_free(key);
	g_free(b64);
	return v;
}

static void test_autocrypt_valid(void **state)
{
	struct smp_check_opts o;
	struct smp_found_keys fk = {0};
	gchar *v = autocrypt_value("dave@example.net", " prefer-encrypt=mutual; _note=x;");
	const char *vals[1] = {v};
	gsize len;
	gchar *key = fixture("keys/dave.pub.gpg", &len);
	(void)state;
	smp_check_opts_init(&o);
	assert_int_equal(smp_extract_autocrypt(vals, 1, "Dave@Example.NET", &o.limits, &fk), 1);
	assert_int_equal(fk.n, 1);
	assert_int_equal(fk.sources[0], SMP_SRC_AUTOCRYPT);
	assert_int_equal(fk.parts[0].kind, SMP_KEY_PUBLIC);
	assert_int_equal(fk.parts[0].size, len);
	assert_memory_equal(fk.parts[0].data, key, len);
	smp_found_keys_clear(&fk);
	assert_int_equal(fk.n, 0);
	g_free(key);
	g_free(v);
}

static void test_autocrypt_refused(void **state)
{
	struct smp_check_opts o;
	struct smp_found_keys fk = {0};
	gchar *other = autocrypt_value("mallory@example.com", "");
	gchar *crit = autocrypt_value("dave@example.net", " critical-thing=1;");
	gchar *ok = autocrypt_value("dave@example.net", "");
	const char *v1[1] = {other}, *v2[1] = {crit}, *v3[2] = {ok, ok};
	const char *v4[1] = {"addr=dave@example.net; keydata=!!!!"};
	const char *v5[1] = {"addr=dave@example.net; keydata=bm90IGEga2V5"};
	(void)state;
	smp_check_opts_init(&o);
	/* addr is not the From address */
	assert_int_equal(smp_extract_autocrypt(v1, 1, "dave@example.net", &o.limits, &fk), 0);
	/* an unknown attribute without '_' voids the header */
	assert_int_equal(smp_extract_autocrypt(v2, 1, "dave@example.net", &o.limits, &fk), 0);
	/* two headers for the From address: none counts */
	assert_int_equal(smp_extract_autocrypt(v3, 2, "dave@example.net", &o.limits, &fk), 0);
	/* bad base64, and base64 that is no key */
	assert_int_equal(smp_extract_autocrypt(v4, 1, "dave@example.net", &o.limits, &fk), 0);
	assert_int_equal(smp_extract_autocrypt(v5, 1, "dave@example.net", &o.limits, &fk), 0);
	/* no From address */
	assert_int_equal(smp_extract_autocrypt(v1, 1, NULL, &o.limits, &fk), 0);
	/* over max_key_bytes */
	o.limits.max_key_bytes = 100;
	{
		const char *v6[1] = {ok};
		assert_int_equal(smp_extract_autocrypt(v6, 1, "dave@example.net", &o.limits, &fk), 0);
	}
	assert_int_equal(fk.n, 0);
	g_free(other);
	g_free(crit);
	g_free(ok);
}

static void test_pgp_keys_part(void **state)
{
	struct smp_check_opts o;
	struct smp_found_keys fk = {0};
	gsize len, klen;
	gchar *msg = fixture("messages/harvest-pgp-keys-attachment.eml", &len);
	gchar *key = fixture("keys/dave.pub.gpg", &klen);
	(void)state;
	smp_check_opts_init(&o);
	assert_int_equal(smp_extract_pgp_keys(msg, len, &o, &fk), 1);
	assert_int_equal(fk.sources[0], SMP_SRC_PGP_KEYS);
	assert_string_equal(fk.parts[0].name, "dave-pubkey.gpg");
	assert_int_equal(fk.parts[0].size, klen);
	assert_memory_equal(fk.parts[0].data, key, klen);
	smp_found_keys_clear(&fk);
	/* an armored key in a pgp-keys part, built here */
	{
		gchar *asc = fixture("keys/alice.pub.asc", &klen);
		gchar *m = g_strdup_printf(
			"From: a@example.org\nSubject: key\nMIME-Version: 1.0\n"
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
			"Content-Type: text/plain\n\nhi\n--b\n"
			"Content-Type: application/pgp-keys\n\n%s\n--b\n"
			"Content-Type: application/pgp-keys\n\nnot a key\n--b--\n", asc);
		assert_int_equal(smp_extract_pgp_keys(m, strlen(m), &o, &fk), 1);
		assert_int_equal(fk.n, 1);
		smp_found_keys_clear(&fk);
		g_free(m);
		g_free(asc);
	}
	/* a plain message has none */
	assert_int_equal(smp_extract_pgp_keys("Subject: x\n\nhello\n", 18, &o, &fk), 0);
	g_free(msg);
	g_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_autocrypt_valid),
		cmocka_unit_test(test_autocrypt_refused),
		cmocka_unit_test(test_pgp_keys_part),
	};
	smp_lib_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
