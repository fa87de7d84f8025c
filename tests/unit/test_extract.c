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

/* A message with one application/pgp-keys part holding body. */
static gchar *pgp_keys_msg(const char *body)
{
	return g_strdup_printf(
		"From: a@example.org\nSubject: keys\nMIME-Version: 1.0\n"
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
		"Content-Type: text/plain\n\nhi\n--b\n"
		"Content-Type: application/pgp-keys; name=keys.asc\n\n%s\n--b--\n",
		body);
}

/* What smp_extract_pgp_keys finds in a part holding body: -1 none,
 * else the number of keys of the one part found. */
static int keys_in_part(const char *body, const struct smp_check_opts *o,
			struct smp_found_keys *fk)
{
	gchar *m = pgp_keys_msg(body);
	int n = smp_extract_pgp_keys(m, strlen(m), o, fk);

	g_free(m);
	assert_true(n == 0 || n == 1);
	assert_int_equal(fk->n, (size_t)n);
	return n ? (int)fk->parts[0].nkeys : -1;
}

/* A pgp-keys part holding several armored PGP PUBLIC KEY BLOCKs: the keys
 * of every block, as one part (the octets of the blocks one after the
 * other, as a binary part with several keys); anything else than white
 * space around or between them, another kind of block or a broken one,
 * and the part is skipped whole (SMP's public-key-N parts hold exactly
 * one block, and nothing else either). */
static void test_pgp_keys_several_blocks(void **state)
{
	struct smp_check_opts o;
	struct smp_found_keys fk = {0};
	gsize al, bl, cl, abin, bbin, cbin, sl;
	gchar *a = fixture("keys/alice.pub.asc", &al);
	gchar *b = fixture("keys/bob.pub.asc", &bl);
	gchar *c = fixture("keys/carol.pub.asc", &cl);
	gchar *ab = fixture("keys/alice.pub.gpg", &abin);
	gchar *bb = fixture("keys/bob.pub.gpg", &bbin);
	gchar *cb = fixture("keys/carol.pub.gpg", &cbin);
	gchar *sec = fixture("keys/dave.sec.asc", &sl);
	gchar *body, *crlf;
	(void)state;
	smp_check_opts_init(&o);

	/* three blocks, blank lines between: three keys, in order */
	body = g_strdup_printf("%s\n\n%s\n%s", a, b, c);
	assert_int_equal(keys_in_part(body, &o, &fk), 3);
	assert_int_equal(fk.sources[0], SMP_SRC_PGP_KEYS);
	assert_string_equal(fk.parts[0].name, "keys.asc");
	assert_int_equal(fk.parts[0].size, abin + bbin + cbin);
	assert_memory_equal(fk.parts[0].data, ab, abin);
	assert_memory_equal(fk.parts[0].data + abin, bb, bbin);
	assert_memory_equal(fk.parts[0].data + abin + bbin, cb, cbin);
	smp_found_keys_clear(&fk);
	/* the same with CRLF line ends and white space around (base64
	 * transfer encoding leaves the part's CRLFs as they are) */
	crlf = g_strdup(body);
	{
		GString *g = g_string_new(" \t\r\n");
		for (const char *p = crlf; *p; p++) {
			if (*p == '\n')
				g_string_append_c(g, '\r');
			g_string_append_c(g, *p);
		}
		g_string_append(g, "\r\n \r\n");
		g_free(crlf);
		crlf = g_string_free(g, FALSE);
	}
	{
		gchar *b64 = g_base64_encode((const guchar *)crlf, strlen(crlf));
		gchar *m = g_strdup_printf(
			"From: a@example.org\nSubject: keys\nMIME-Version: 1.0\n"
			"Content-Type: application/pgp-keys\n"
			"Content-Transfer-Encoding: base64\n\n%s\n", b64);
		assert_int_equal(smp_extract_pgp_keys(m, strlen(m), &o, &fk), 1);
		assert_int_equal(fk.parts[0].nkeys, 3);
		assert_int_equal(fk.parts[0].size, abin + bbin + cbin);
		smp_found_keys_clear(&fk);
		g_free(m);
		g_free(b64);
	}
	g_free(crlf);
	/* together over limits.max_key_bytes, though each block is not:
	 * the part is too large, as a binary part of three keys is */
	o.limits.max_key_bytes = abin + bbin + cbin - 1;
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	o.limits.max_key_bytes = abin + bbin + cbin;
	assert_int_equal(keys_in_part(body, &o, &fk), 3);
	smp_found_keys_clear(&fk);
	g_free(body);

	/* text after the last block (a signature, a note): skipped */
	body = g_strdup_printf("%s%s\n-- \nAlice\n", a, b);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	/* text between two blocks, or before the first */
	body = g_strdup_printf("%sand Bob's:\n%s", a, b);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	body = g_strdup_printf("My key:\n%s", a);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	/* a secret key block after a public one: the whole part */
	body = g_strdup_printf("%s%s", a, sec);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	/* another kind of block */
	body = g_strdup_printf("%s-----BEGIN PGP SIGNATURE-----\n\nQUJD\n"
			       "-----END PGP SIGNATURE-----\n", a);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	/* a broken second block (no END line) */
	body = g_strdup_printf("%s-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n", a);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	/* a block whose octets are no public key, after a good one */
	body = g_strdup_printf("%s-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nQUJD\n"
			       "-----END PGP PUBLIC KEY BLOCK-----\n", a);
	assert_int_equal(keys_in_part(body, &o, &fk), -1);
	g_free(body);
	/* one block, white space only after it: still its key */
	body = g_strdup_printf("%s\n \n\t\n", a);
	assert_int_equal(keys_in_part(body, &o, &fk), 1);
	smp_found_keys_clear(&fk);
	g_free(body);

	g_free(a);
	g_free(b);
	g_free(c);
	g_free(ab);
	g_free(bb);
	g_free(cb);
	g_free(sec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_autocrypt_valid),
		cmocka_unit_test(test_autocrypt_refused),
		cmocka_unit_test(test_pgp_keys_part),
		cmocka_unit_test(test_pgp_keys_several_blocks),
	};
	smp_lib_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
