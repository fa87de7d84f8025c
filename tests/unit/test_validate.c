/* test_validate.c - unit tests for lib/smp_validate.c (whole messages) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smp_armor.h"
#include "smp_validate.h"
#include "test_util.h"

#define BND "=_smp_b"
#define DATA_NAME "encryped-and-signed-data"
#define ALIAS_NAME "encrypted-and-signed-data"
#define EXPLANATION "This is a Secure Messenger Protocol message.\n"

static const unsigned char KEYID[8] = {0xC0, 0xFF, 0xEE, 0x00,
				       0x12, 0x34, 0xAB, 0xCD};

static int group_setup(void **state)
{
	(void)state;
	smp_lib_init();
	return 0;
}

/* ------------------------------------------------------------------ */
/* Building messages                                                   */

/* A synthetic encrypted message: PKESK v3 + SEIPD v1. */
static void payload(struct tbuf *b)
{
	t_pkesk3(b, KEYID);
	t_seipd1(b, 80);
}

/* Armor with the checksum computed by smp_crc24. */
static void armor_lib(struct tbuf *out, const char *label,
		      const unsigned char *d, size_t n)
{
	uint32_t crc = smp_crc24(d, n);
	unsigned char c[3] = {(unsigned char)(crc >> 16),
			      (unsigned char)(crc >> 8), (unsigned char)crc};
	tb_printf(out, "-----BEGIN PGP %s-----\nVersion: test\n\n", label);
	t_b64_append(out, d, n, 64, "\n");
	tb_str(out, "=");
	t_b64_append(out, c, 3, 0, "");
	tb_printf(out, "\n-----END PGP %s-----\n", label);
}

static void armored_payload(struct tbuf *out)
{
	struct tbuf p = {0};
	payload(&p);
	armor_lib(out, "MESSAGE", p.p, p.len);
	tb_free(&p);
}

static void msg_headers(struct tbuf *t, const char *subject)
{
	tb_str(t, "From: alice@example.org\n"
		  "To: bob@example.org\n");
	if (subject)
		tb_printf(t, "Subject: %s\n", subject);
	tb_str(t, "Date: Mon, 01 Jan 2024 00:00:00 +0000\n"
		  "Message-ID: <unit@example.org>\n"
		  "MIME-Version: 1.0\n");
}

static void msg_begin(struct tbuf *t)
{
	msg_headers(t, SMP_SUBJECT);
	tb_str(t, "Content-Type: multipart/mixed; boundary=\"" BND "\"\n"
		  "\n"
		  "This is a multi-part message in MIME format.\n");
}

static void msg_text(struct tbuf *t, const char *text)
{
	tb_printf(t, "--" BND "\nContent-Type: text/plain; charset=us-ascii\n"
		     "\n%s",
		  text);
}

/* A part whose content is base64 transfer-encoded. */
static void msg_b64(struct tbuf *t, const char *ctype, const char *filename,
		    const unsigned char *d, size_t n)
{
	tb_printf(t, "--" BND "\nContent-Type: %s\n", ctype);
	if (filename)
		tb_printf(t, "Content-Disposition: attachment; filename=\"%s\"\n",
			  filename);
	tb_str(t, "Content-Transfer-Encoding: base64\n\n");
	t_b64_append(t, d, n, 76, "\n");
}

/* A part whose content travels as it is (7bit text). */
static void msg_7bit(struct tbuf *t, const char *ctype, const char *filename,
		     const char *text)
{
	tb_printf(t, "--" BND "\nContent-Type: %s\n", ctype);
	if (filename)
		tb_printf(t, "Content-Disposition: attachment; filename=\"%s\"\n",
			  filename);
	tb_printf(t, "Content-Transfer-Encoding: 7bit\n\n%s", text);
}

static void msg_data_binary(struct tbuf *t, const char *name)
{
	struct tbuf p = {0};
	payload(&p);
	msg_b64(t, "application/octet-stream", name, p.p, p.len);
	tb_free(&p);
}

static void msg_key_binary(struct tbuf *t, const char *name)
{
	struct tbuf k = {0};
	t_pubkey_block(&k, "Alice <alice@example.org>");
	msg_b64(t, "application/pgp-keys", name, k.p, k.len);
	tb_free(&k);
}

static void msg_key_armored(struct tbuf *t, const char *name)
{
	struct tbuf k = {0}, a = {0};
	t_pubkey_block(&k, "Alice <alice@example.org>");
	armor_lib(&a, "PUBLIC KEY BLOCK", k.p, k.len);
	msg_7bit(t, "application/pgp-keys", name, tb_cstr(&a));
	tb_free(&a);
	tb_free(&k);
}

static void msg_end(struct tbuf *t)
{
	tb_str(t, "--" BND "--\n");
}

/* The standard valid message: explanation + binary data part. */
static void msg_valid(struct tbuf *t)
{
	msg_begin(t);
	msg_text(t, EXPLANATION);
	msg_data_binary(t, DATA_NAME);
	msg_end(t);
}

/* ------------------------------------------------------------------ */
/* Checking                                                            */

static void run(const char *msg, size_t len, const struct smp_check_opts *o,
		struct smp_result *r, char *verdict)
{
	struct smp_check_opts def;
	if (!o) {
		smp_check_opts_init(&def);
		o = &def;
	}
	assert_int_equal(smp_validate_buffer(msg, len, o, r), 0);
	smp_verdict_format(r, verdict, SMP_VERDICT_MAX);
}

/* Validates t and compares the verdict line. A macro so that a failure
 * names the line of the test. */
#define EXPECT(t, o, want)                                               \
	do {                                                             \
		struct smp_result r_;                                    \
		char v_[SMP_VERDICT_MAX];                                \
		run((const char *)(t)->p, (t)->len, (o), &r_, v_);       \
		assert_string_equal(v_, (want));                         \
		smp_result_clear(&r_);                                   \
	} while (0)

/* ------------------------------------------------------------------ */
/* Valid forms                                                         */

static void test_valid_attachment_binary(void **state)
{
	struct tbuf t = {0}, p = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	msg_valid(&t);
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, "valid; form=attachment; keys=0; recipients=1");
	assert_true(r.is_smp);
	assert_int_equal(r.reasons, 0);
	assert_int_equal(r.form, SMP_FORM_ATTACHMENT);
	assert_int_equal(r.encoding, SMP_ENC_BINARY);
	payload(&p);
	assert_int_equal(r.data_size, p.len);
	assert_int_equal(r.msg.n_esk, 1);
	assert_string_equal(r.msg.esk[0].keyid, "C0FFEE001234ABCD");
	assert_int_equal(r.msg.data_tag, 18);
	smp_result_clear(&r);
	tb_free(&p);
	tb_free(&t);
}

static void test_valid_armored(void **state)
{
	struct tbuf t = {0}, a = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	armored_payload(&a);
	/* armor as 7bit text */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_7bit(&t, "application/octet-stream", DATA_NAME, tb_cstr(&a));
	msg_end(&t);
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, "valid; form=attachment; keys=0; recipients=1");
	assert_int_equal(r.encoding, SMP_ENC_ARMORED);
	assert_string_equal(r.msg.esk[0].keyid, "C0FFEE001234ABCD");
	smp_result_clear(&r);
	tb_free(&t);

	/* armor, base64 transfer-encoded, with leading white space */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	{
		struct tbuf ws = {0};
		tb_str(&ws, "\n  \n");
		tb_put(&ws, a.p, a.len);
		msg_b64(&t, "application/pgp-encrypted", DATA_NAME, ws.p,
			ws.len);
		tb_free(&ws);
	}
	msg_end(&t);
	EXPECT(&t, NULL, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
	tb_free(&a);
}

static void test_valid_alias(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, ALIAS_NAME);
	msg_end(&t);
	EXPECT(&t, NULL, "valid; form=attachment-alias; keys=0; recipients=1");
	tb_free(&t);
}

static void test_valid_inline(void **state)
{
	struct tbuf t = {0}, a = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	armored_payload(&a);
	/* single-part text/plain message */
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: text/plain; charset=us-ascii\n\n"
		   "Hello,\n\nthe message follows.\n\n");
	tb_put(&t, a.p, a.len);
	tb_str(&t, "\nBye\n");
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, "valid; form=inline; keys=0; recipients=1");
	assert_int_equal(r.form, SMP_FORM_INLINE);
	assert_int_equal(r.encoding, SMP_ENC_ARMORED);
	smp_result_clear(&r);
	tb_free(&t);

	/* inline in a multipart, with a key */
	msg_begin(&t);
	{
		struct tbuf body = {0};
		tb_str(&body, "Hello,\n");
		tb_put(&body, a.p, a.len);
		msg_text(&t, tb_cstr(&body));
		tb_free(&body);
	}
	msg_key_armored(&t, "public-key-1");
	msg_end(&t);
	EXPECT(&t, NULL, "valid; form=inline; keys=1; recipients=1");
	tb_free(&t);
	tb_free(&a);
}

static void test_valid_with_keys(void **state)
{
	struct tbuf t = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_key_binary(&t, "public-key-1");
	msg_key_armored(&t, "public-key-2");
	msg_end(&t);
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, "valid; form=attachment; keys=2; recipients=1");
	assert_int_equal(r.nkeys, 2);
	assert_string_equal(r.keys[0].name, "public-key-1");
	assert_int_equal(r.keys[0].kind, SMP_KEY_PUBLIC);
	assert_int_equal(r.keys[0].encoding, SMP_ENC_BINARY);
	assert_int_equal(r.keys[0].nkeys, 1);
	assert_non_null(r.keys[0].data);
	assert_string_equal(r.keys[1].name, "public-key-2");
	assert_int_equal(r.keys[1].encoding, SMP_ENC_ARMORED);
	assert_int_equal(r.keys[1].size, r.keys[0].size);
	smp_result_clear(&r);
	tb_free(&t);
}

static void test_valid_html_alternative(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	tb_str(&t, "--" BND "\n"
		   "Content-Type: multipart/alternative; boundary=\"alt\"\n\n"
		   "--alt\nContent-Type: text/plain\n\n" EXPLANATION
		   "--alt\nContent-Type: text/html\n\n<p>SMP</p>\n"
		   "--alt--\n");
	msg_data_binary(&t, DATA_NAME);
	msg_end(&t);
	EXPECT(&t, NULL, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
}

static void test_valid_no_explanation(void **state)
{
	/* a data part alone, as the whole message */
	struct tbuf t = {0}, p = {0};
	(void)state;
	payload(&p);
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: application/octet-stream\n"
		   "Content-Disposition: attachment; filename=\"" DATA_NAME "\"\n"
		   "Content-Transfer-Encoding: base64\n\n");
	t_b64_append(&t, p.p, p.len, 76, "\n");
	EXPECT(&t, NULL, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
	tb_free(&p);
}

/* ------------------------------------------------------------------ */
/* multiple-data, no-data                                              */

static void test_inline_two_blocks(void **state)
{
	struct tbuf t = {0}, a = {0};
	(void)state;
	armored_payload(&a);
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: text/plain\n\nfirst:\n");
	tb_put(&t, a.p, a.len);
	tb_str(&t, "second:\n");
	tb_put(&t, a.p, a.len);
	EXPECT(&t, NULL, "invalid; reason=multiple-data");
	tb_free(&t);
	tb_free(&a);
}

static void test_two_data_parts(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_data_binary(&t, DATA_NAME);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=multiple-data");
	tb_free(&t);

	/* the draft name and the alias */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_data_binary(&t, ALIAS_NAME);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=multiple-data");
	tb_free(&t);
}

static void test_data_part_and_inline_block(void **state)
{
	struct tbuf t = {0}, a = {0}, body = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	armored_payload(&a);
	tb_str(&body, "Look:\n");
	tb_put(&body, a.p, a.len);
	msg_begin(&t);
	msg_text(&t, tb_cstr(&body));
	msg_data_binary(&t, DATA_NAME);
	msg_end(&t);
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, "invalid; reason=multiple-data");
	assert_int_equal(r.form, SMP_FORM_ATTACHMENT);
	smp_result_clear(&r);
	tb_free(&t);
	tb_free(&a);
	tb_free(&body);
}

static void test_no_data(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: text/plain\n\nhello\n");
	EXPECT(&t, NULL, "invalid; reason=no-data");
	tb_free(&t);
}

/* ------------------------------------------------------------------ */
/* plain-attachment, secret-key                                        */

static void test_plain_attachment(void **state)
{
	static const unsigned char pdf[] = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_b64(&t, "application/pdf", "invoice.pdf", pdf, sizeof(pdf) - 1);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=plain-attachment");
	tb_free(&t);

	/* a second text/plain body */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_text(&t, "PS: another body\n");
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=plain-attachment");
	tb_free(&t);

	/* an attached message */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	tb_str(&t, "--" BND "\nContent-Type: message/rfc822\n\n"
		   "From: carol@example.org\nSubject: hi\n\nhi\n");
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=plain-attachment");
	tb_free(&t);
}

static void test_secret_key_in_attachment(void **state)
{
	struct tbuf t = {0}, k = {0}, sk = {0}, a = {0};
	(void)state;
	t_pubkey_body(&k);
	tb_put(&k, "secretbits", 10);
	t_pkt_new(&sk, 5, k.p, k.len);
	t_pkt_new(&sk, 13, "Alice", 5);
	armor_lib(&a, "PRIVATE KEY BLOCK", sk.p, sk.len);

	/* armored, in key.asc */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "key.asc", tb_cstr(&a));
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=secret-key,plain-attachment");
	tb_free(&t);

	/* binary, in key.gpg */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_b64(&t, "application/octet-stream", "key.gpg", sk.p, sk.len);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=secret-key,plain-attachment");
	tb_free(&t);

	/* a secret subkey packet first, binary */
	{
		struct tbuf ssk = {0};
		t_pkt_new(&ssk, 7, k.p, k.len);
		msg_begin(&t);
		msg_text(&t, EXPLANATION);
		msg_data_binary(&t, DATA_NAME);
		msg_b64(&t, "application/octet-stream", "sub.gpg", ssk.p,
			ssk.len);
		msg_end(&t);
		EXPECT(&t, NULL, "invalid; reason=secret-key,plain-attachment");
		tb_free(&t);
		tb_free(&ssk);
	}

	/* in the explanation text itself */
	msg_begin(&t);
	{
		struct tbuf body = {0};
		tb_str(&body, "my key, oops:\n");
		tb_put(&body, a.p, a.len);
		tb_reserve(&body, 0);
		msg_text(&t, tb_cstr(&body));
		tb_free(&body);
	}
	msg_data_binary(&t, DATA_NAME);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=multiple-data,secret-key");
	tb_free(&t);

	tb_free(&k);
	tb_free(&sk);
	tb_free(&a);
}

static void test_secret_key_in_attached_message(void **state)
{
	/* doc/smp-format.md: message/rfc822 is a leaf of role "other" (not
	 * descended into), and every other leaf part is looked at for a
	 * "-----BEGIN PGP PRIVATE KEY BLOCK-----" line. */
	struct tbuf t = {0}, k = {0}, sk = {0}, a = {0};
	(void)state;
	t_pubkey_body(&k);
	t_pkt_new(&sk, 5, k.p, k.len);
	armor_lib(&a, "PRIVATE KEY BLOCK", sk.p, sk.len);
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	tb_str(&t, "--" BND "\nContent-Type: message/rfc822\n\n"
		   "From: carol@example.org\nSubject: my key\n\n");
	tb_put(&t, a.p, a.len);
	msg_end(&t);
	tb_free(&k);
	tb_free(&sk);
	tb_free(&a);
	{
		struct smp_result r;
		char v[SMP_VERDICT_MAX];
		run((const char *)t.p, t.len, NULL, &r, v);
		smp_result_clear(&r);
		tb_free(&t);
		assert_string_equal(v,
				    "invalid; reason=secret-key,plain-attachment");
	}
}

/* ------------------------------------------------------------------ */
/* Key parts                                                           */

static void test_bad_key(void **state)
{
	struct tbuf t = {0}, sig = {0}, k = {0}, a = {0};
	(void)state;
	/* a signature packet instead of a key */
	t_pkt_new(&sig, 2, "\x04\x00\x01\x08\x00\x00\x00\x00\xAB\xCD", 10);
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_b64(&t, "application/pgp-keys", "public-key-1", sig.p, sig.len);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-key");
	tb_free(&t);

	/* random text */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "public-key-1", "not a key\n");
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-key");
	tb_free(&t);

	/* truncated binary key */
	t_pubkey_block(&k, "Alice");
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_b64(&t, "application/pgp-keys", "public-key-1", k.p, k.len - 4);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-key");
	tb_free(&t);

	/* armored key with a broken checksum */
	armor_lib(&a, "PUBLIC KEY BLOCK", k.p, k.len);
	{
		char *crc = strstr((char *)a.p, "\n=") + 2;
		crc[0] = (char)(crc[0] == 'A' ? 'B' : 'A');
	}
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "public-key-1", tb_cstr(&a));
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-key");
	tb_free(&t);
	tb_free(&a);

	/* armored, but a signature label */
	armor_lib(&a, "SIGNATURE", sig.p, sig.len);
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "public-key-1", tb_cstr(&a));
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-key");
	tb_free(&t);
	tb_free(&a);
	tb_free(&k);
	tb_free(&sig);
}

static void test_secret_key_in_key_part(void **state)
{
	struct tbuf t = {0}, k = {0}, sk = {0}, a = {0};
	(void)state;
	t_pubkey_body(&k);
	tb_put(&k, "secretbits", 10);
	t_pkt_new(&sk, 5, k.p, k.len);
	t_pkt_new(&sk, 13, "Alice", 5);

	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_b64(&t, "application/pgp-keys", "public-key-1", sk.p, sk.len);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=secret-key");
	tb_free(&t);

	armor_lib(&a, "PRIVATE KEY BLOCK", sk.p, sk.len);
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "public-key-1", tb_cstr(&a));
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=secret-key");
	tb_free(&t);
	tb_free(&a);
	tb_free(&k);
	tb_free(&sk);
}

static void test_too_many_keys(void **state)
{
	struct tbuf t = {0};
	struct smp_check_opts o;
	char name[32];
	(void)state;
	smp_check_opts_init(&o);
	o.limits.max_keys = 1;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_key_binary(&t, "public-key-1");
	msg_key_binary(&t, "public-key-2");
	msg_end(&t);
	EXPECT(&t, &o, "invalid; reason=too-large");
	o.limits.max_keys = 2;
	EXPECT(&t, &o, "valid; form=attachment; keys=2; recipients=1");
	tb_free(&t);

	/* defaults: 8 keys fine, 9 too many */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	for (int i = 1; i <= SMP_LIMITS_DEFAULT_KEYS; i++) {
		snprintf(name, sizeof(name), "public-key-%d", i);
		msg_key_binary(&t, name);
	}
	{
		struct tbuf t9 = {0};
		tb_put(&t9, t.p, t.len);
		msg_end(&t);
		EXPECT(&t, NULL, "valid; form=attachment; keys=8; recipients=1");
		msg_key_binary(&t9, "public-key-9");
		msg_end(&t9);
		EXPECT(&t9, NULL, "invalid; reason=too-large");
		tb_free(&t9);
	}
	tb_free(&t);
}

static void test_message_too_large(void **state)
{
	struct tbuf t = {0};
	struct smp_check_opts o;
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	/* no data and a plain attachment, but too large says it all */
	msg_begin(&t);
	msg_text(&t, "hello\n");
	msg_7bit(&t, "application/pdf", "invoice.pdf", "xxxx\n");
	msg_end(&t);
	smp_check_opts_init(&o);
	EXPECT(&t, &o, "invalid; reason=no-data,plain-attachment");
	o.limits.max_message_bytes = t.len - 1;
	run((const char *)t.p, t.len, &o, &r, v);
	assert_string_equal(v, "invalid; reason=too-large");
	assert_true(r.is_smp);
	assert_int_equal(r.reasons, SMP_R_TOO_LARGE);
	smp_result_clear(&r);
	/* exactly at the limit is not too large */
	o.limits.max_message_bytes = t.len;
	EXPECT(&t, &o, "invalid; reason=no-data,plain-attachment");
	tb_free(&t);
}

static void test_key_too_large(void **state)
{
	struct tbuf t = {0}, k = {0};
	struct smp_check_opts o;
	(void)state;
	t_pubkey_block(&k, "Alice <alice@example.org>");
	smp_check_opts_init(&o);

	/* binary */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_key_binary(&t, "public-key-1");
	msg_end(&t);
	o.limits.max_key_bytes = k.len - 1;
	EXPECT(&t, &o, "invalid; reason=too-large");
	o.limits.max_key_bytes = k.len;
	EXPECT(&t, &o, "valid; form=attachment; keys=1; recipients=1");
	tb_free(&t);

	/* armored: the decoded size counts */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_key_armored(&t, "public-key-1");
	msg_end(&t);
	o.limits.max_key_bytes = k.len - 1;
	EXPECT(&t, &o, "invalid; reason=too-large");
	o.limits.max_key_bytes = k.len;
	EXPECT(&t, &o, "valid; form=attachment; keys=1; recipients=1");
	tb_free(&t);
	tb_free(&k);
}

/* ------------------------------------------------------------------ */
/* Data part faults                                                    */

static void data_case(const unsigned char *d, size_t n, const char *want)
{
	struct tbuf t = {0};
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_b64(&t, "application/octet-stream", DATA_NAME, d, n);
	msg_end(&t);
	EXPECT(&t, NULL, want);
	tb_free(&t);
}

static void test_data_faults(void **state)
{
	struct tbuf p = {0}, a = {0};
	(void)state;
	/* SEIPD alone */
	t_seipd1(&p, 40);
	data_case(p.p, p.len, "invalid; reason=no-recipients");
	tb_free(&p);
	/* PKESK + SED */
	t_pkesk3(&p, KEYID);
	t_pkt_new(&p, 9, "0123456789abcdef", 16);
	data_case(p.p, p.len, "invalid; reason=no-integrity");
	tb_free(&p);
	/* junk after the SEIPD packet */
	payload(&p);
	tb_str(&p, "junk");
	data_case(p.p, p.len, "invalid; reason=bad-packets");
	tb_free(&p);
	/* cut off half way */
	payload(&p);
	data_case(p.p, p.len / 2, "invalid; reason=bad-packets");
	tb_free(&p);
	/* plain text */
	data_case((const unsigned char *)"hello world\n", 12,
		  "invalid; reason=not-encrypted");
	/* a DER S/MIME blob */
	data_case((const unsigned char *)"\x30\x82\x01\x0a\x06\x09\x2a\x86", 8,
		  "invalid; reason=not-encrypted");
	/* binary secret key as data */
	{
		struct tbuf k = {0};
		t_pubkey_body(&k);
		t_pkt_new(&p, 5, k.p, k.len);
		data_case(p.p, p.len, "invalid; reason=not-encrypted,secret-key");
		tb_free(&p);
		tb_free(&k);
	}
	/* a literal packet */
	t_pkt_new(&p, 11, "b\0\0\0\0\0hello", 11);
	data_case(p.p, p.len, "invalid; reason=not-encrypted");
	tb_free(&p);
	/* armored detached signature */
	t_pkt_new(&p, 2, "\x04\x00\x01\x08\x00\x00\x00\x00\xAB\xCD", 10);
	armor_lib(&a, "SIGNATURE", p.p, p.len);
	data_case(a.p, a.len, "invalid; reason=not-encrypted");
	tb_free(&a);
	/* armored private key as data */
	armor_lib(&a, "PRIVATE KEY BLOCK", p.p, p.len);
	data_case(a.p, a.len, "invalid; reason=not-encrypted,secret-key");
	tb_free(&a);
	tb_free(&p);
	/* bad armor: a '*' in the base64 */
	armored_payload(&a);
	{
		char *x = strstr((char *)a.p, "\n\n") + 2 + 5;
		*x = '*';
	}
	data_case(a.p, a.len, "invalid; reason=bad-armor");
	tb_free(&a);
	/* bad armor: END label differs */
	armored_payload(&a);
	{
		char *x = strstr((char *)a.p, "-----END PGP MESSAGE");
		memcpy(x, "-----END PGP SIGNATU", 20);
	}
	data_case(a.p, a.len, "invalid; reason=bad-armor");
	tb_free(&a);
}

/* ------------------------------------------------------------------ */
/* The whole armored part is accounted for                             */

/* text with every LF turned into CRLF */
static void to_crlf(struct tbuf *out, const struct tbuf *in)
{
	for (size_t i = 0; i < in->len; i++) {
		if (in->p[i] == '\n')
			tb_byte(out, '\r');
		tb_byte(out, in->p[i]);
	}
}

/* The data part holds text: as 7bit and base64 transfer-encoded. */
static void data_text_case(const struct tbuf *text, const char *want)
{
	struct tbuf t = {0};
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_7bit(&t, "application/octet-stream", DATA_NAME,
		 tb_cstr((struct tbuf *)text));
	msg_end(&t);
	EXPECT(&t, NULL, want);
	tb_free(&t);
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_b64(&t, "application/pgp-encrypted", DATA_NAME, text->p, text->len);
	msg_end(&t);
	EXPECT(&t, NULL, want);
	tb_free(&t);
}

/* The data part: armored payload, then tail. */
static void data_tail_case(const char *tail, const char *want)
{
	struct tbuf a = {0}, c = {0};
	armored_payload(&a);
	tb_str(&a, tail);
	data_text_case(&a, want);
	to_crlf(&c, &a);
	data_text_case(&c, want);
	tb_free(&c);
	tb_free(&a);
}

static void armored_other(struct tbuf *out, const char *label)
{
	struct tbuf k = {0};
	t_pubkey_block(&k, "Alice <alice@example.org>");
	armor_lib(out, label, k.p, k.len);
	tb_free(&k);
}

static void test_data_trailing_white_space(void **state)
{
	(void)state;
	data_tail_case("", "valid; form=attachment; keys=0; recipients=1");
	data_tail_case("\n\n\n", "valid; form=attachment; keys=0; recipients=1");
	data_tail_case("  \t \n \n\t\n",
		       "valid; form=attachment; keys=0; recipients=1");
}

static void test_data_trailing_blocks(void **state)
{
	struct tbuf tail = {0};
	(void)state;
	/* a second encrypted message, right after or after a blank line */
	armored_payload(&tail);
	data_tail_case(tb_cstr(&tail), "invalid; reason=multiple-data");
	tb_free(&tail);
	tb_str(&tail, "\n");
	armored_payload(&tail);
	tb_str(&tail, "\n");
	data_tail_case(tb_cstr(&tail), "invalid; reason=multiple-data");
	tb_free(&tail);
	/* a block of another type: broken armor for the data part */
	armored_other(&tail, "SIGNATURE");
	data_tail_case(tb_cstr(&tail), "invalid; reason=bad-armor");
	tb_free(&tail);
	armored_other(&tail, "PUBLIC KEY BLOCK");
	data_tail_case(tb_cstr(&tail), "invalid; reason=bad-armor");
	tb_free(&tail);
	armored_other(&tail, "PRIVATE KEY BLOCK");
	data_tail_case(tb_cstr(&tail), "invalid; reason=bad-armor,secret-key");
	tb_free(&tail);
	/* a second message block without END line */
	data_tail_case("-----BEGIN PGP MESSAGE-----\n\nQUJD\n",
		       "invalid; reason=multiple-data,bad-armor");
	/* two more, one of them a signature */
	armored_payload(&tail);
	armored_other(&tail, "SIGNATURE");
	data_tail_case(tb_cstr(&tail),
		       "invalid; reason=multiple-data,bad-armor");
	tb_free(&tail);
}

static void test_data_trailing_text(void **state)
{
	(void)state;
	data_tail_case("garbage\n", "invalid; reason=bad-armor");
	data_tail_case("\n-- \nAlice\n", "invalid; reason=bad-armor");
	data_tail_case("x", "invalid; reason=bad-armor");
	data_tail_case("-----END PGP MESSAGE-----\n", "invalid; reason=bad-armor");
	/* a BEGIN line not at the start of a line is text too */
	data_tail_case("see -----BEGIN PGP MESSAGE-----\n",
		       "invalid; reason=bad-armor");
}

static void test_data_leading_text(void **state)
{
	struct tbuf a = {0}, t = {0};
	(void)state;
	armored_payload(&a);
	/* text before the BEGIN line: broken armor (the block itself is
	 * still judged), not "not encrypted" */
	tb_str(&t, "Hello Bob,\n");
	tb_put(&t, a.p, a.len);
	data_text_case(&t, "invalid; reason=bad-armor");
	tb_free(&t);
	tb_str(&t, "Hello Bob,\n");
	tb_put(&t, a.p, a.len);
	armored_payload(&t);
	data_text_case(&t, "invalid; reason=multiple-data,bad-armor");
	tb_free(&t);
	/* an indented BEGIN line starts no block: it is text before the
	 * block that follows it */
	tb_str(&t, "  ");
	tb_put(&t, a.p, a.len);
	data_text_case(&t, "invalid; reason=bad-armor");
	tb_put(&t, a.p, a.len);
	data_text_case(&t, "invalid; reason=bad-armor");
	tb_free(&t);
	/* leading white space alone is fine */
	tb_str(&t, "\n \r\n\t\n");
	tb_put(&t, a.p, a.len);
	data_text_case(&t, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
	/* plain text without any block stays not-encrypted */
	tb_str(&t, "Hello Bob,\nno armor here.\n");
	data_text_case(&t, "invalid; reason=not-encrypted");
	tb_free(&t);
	tb_free(&a);
}

static void test_data_cleartext_signed(void **state)
{
	struct tbuf t = {0};
	(void)state;
	/* its text and closing signature block belong to it */
	tb_str(&t, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
		   "Hello Bob\n");
	armored_other(&t, "SIGNATURE");
	data_text_case(&t, "invalid; reason=not-encrypted");
	/* a further message block after it is not */
	armored_payload(&t);
	data_text_case(&t, "invalid; reason=multiple-data,not-encrypted");
	tb_free(&t);
}

/* The first block is not the data: what follows is still judged. */
static void test_data_first_block_other(void **state)
{
	struct tbuf t = {0};
	(void)state;
	armored_other(&t, "SIGNATURE");
	armored_payload(&t);
	data_text_case(&t, "invalid; reason=multiple-data,not-encrypted");
	tb_free(&t);
	/* a broken first block and a good second one */
	tb_str(&t, "-----BEGIN PGP MESSAGE-----\n\nQU*D\n"
		   "-----END PGP MESSAGE-----\n");
	armored_payload(&t);
	data_text_case(&t, "invalid; reason=multiple-data,bad-armor");
	tb_free(&t);
}

/* Reserved packet tag 0: bad-packets, binary or armored. */
static void test_data_tag0(void **state)
{
	struct tbuf p = {0}, a = {0};
	(void)state;
	t_pkt_new(&p, 0, "abcdefgh", 8);
	payload(&p);
	data_case(p.p, p.len, "invalid; reason=bad-packets");
	armor_lib(&a, "MESSAGE", p.p, p.len);
	data_text_case(&a, "invalid; reason=bad-packets");
	tb_free(&a);
	tb_free(&p);
	/* old format header 0x80, the header octet alone */
	t_pkt_old(&p, 0, 0, "abcdefgh", 8);
	payload(&p);
	data_case(p.p, p.len, "invalid; reason=bad-packets");
	tb_free(&p);
	data_case((const unsigned char *)"\xC0", 1, "invalid; reason=bad-packets");
	data_case((const unsigned char *)"\x80", 1, "invalid; reason=bad-packets");
	/* among the session-key packets */
	t_pkesk3(&p, KEYID);
	t_pkt_new(&p, 0, "abcdefgh", 8);
	t_seipd1(&p, 40);
	data_case(p.p, p.len, "invalid; reason=bad-packets");
	tb_free(&p);
}

/* The inline form: text around the block is the explanation, but further
 * armored blocks are judged as in a data part. */
static void inline_case(const struct tbuf *body, const char *want)
{
	struct tbuf t = {0}, c = {0};
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: text/plain; charset=us-ascii\n\n");
	tb_put(&t, body->p, body->len);
	EXPECT(&t, NULL, want);
	to_crlf(&c, &t);
	EXPECT(&c, NULL, want);
	tb_free(&c);
	tb_free(&t);
}

static void test_inline_rest(void **state)
{
	struct tbuf b = {0}, p = {0};
	(void)state;
	/* text and white space around: fine */
	tb_str(&b, "Hi Bob,\n\n");
	armored_payload(&b);
	tb_str(&b, "\n \n-- \nAlice\n\n");
	inline_case(&b, "valid; form=inline; keys=0; recipients=1");
	/* a signature block after it */
	armored_other(&b, "SIGNATURE");
	inline_case(&b, "invalid; reason=bad-armor");
	tb_free(&b);
	/* a key block pasted after it */
	armored_payload(&b);
	tb_str(&b, "My key:\n");
	armored_other(&b, "PUBLIC KEY BLOCK");
	inline_case(&b, "invalid; reason=bad-armor");
	tb_free(&b);
	/* a second message without END line */
	armored_payload(&b);
	tb_str(&b, "-----BEGIN PGP MESSAGE-----\n\nQUJD\n");
	inline_case(&b, "invalid; reason=multiple-data,bad-armor");
	tb_free(&b);
	/* a broken first block and a good second one */
	tb_str(&b, "-----BEGIN PGP MESSAGE-----\n\nQU*D\n"
		   "-----END PGP MESSAGE-----\n");
	armored_payload(&b);
	inline_case(&b, "invalid; reason=multiple-data,bad-armor");
	tb_free(&b);
	/* tag 0 */
	t_pkt_new(&p, 0, "abcdefgh", 8);
	payload(&p);
	tb_str(&b, "Hi Bob,\n");
	armor_lib(&b, "MESSAGE", p.p, p.len);
	inline_case(&b, "invalid; reason=bad-packets");
	tb_free(&b);
	tb_free(&p);
}

/* A public-key-N part: one key block and white space, nothing else. */
static void key_text_case(const struct tbuf *text, const char *want,
			  enum smp_key_kind kind)
{
	struct tbuf t = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];

	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "public-key-1",
		 tb_cstr((struct tbuf *)text));
	msg_end(&t);
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, want);
	assert_int_equal(r.nkeys, 1);
	assert_int_equal(r.keys[0].kind, kind);
	if (kind == SMP_KEY_PUBLIC)
		assert_non_null(r.keys[0].data);
	else
		assert_null(r.keys[0].data); /* never harvested */
	smp_result_clear(&r);
	tb_free(&t);
}

static void test_key_part_rest(void **state)
{
	struct tbuf k = {0}, bin = {0};
	(void)state;
	armored_other(&k, "PUBLIC KEY BLOCK");
	tb_str(&k, "\n  \n");
	key_text_case(&k, "valid; form=attachment; keys=1; recipients=1",
		      SMP_KEY_PUBLIC);
	tb_str(&k, "junk\n");
	key_text_case(&k, "invalid; reason=bad-key", SMP_KEY_BAD);
	tb_free(&k);
	/* two key blocks in one part */
	armored_other(&k, "PUBLIC KEY BLOCK");
	armored_other(&k, "PUBLIC KEY BLOCK");
	key_text_case(&k, "invalid; reason=bad-key", SMP_KEY_BAD);
	tb_free(&k);
	/* a private key block hidden after the public one */
	armored_other(&k, "PUBLIC KEY BLOCK");
	armored_other(&k, "PRIVATE KEY BLOCK");
	key_text_case(&k, "invalid; reason=secret-key", SMP_KEY_SECRET);
	tb_free(&k);
	/* text before the block */
	tb_str(&k, "My key:\n");
	armored_other(&k, "PUBLIC KEY BLOCK");
	key_text_case(&k, "invalid; reason=bad-key", SMP_KEY_BAD);
	tb_free(&k);
	/* a key block too large: too-large, and judged to its end */
	{
		struct tbuf t = {0};
		struct smp_check_opts o;
		smp_check_opts_init(&o);
		t_pubkey_block(&bin, "Alice <alice@example.org>");
		o.limits.max_key_bytes = bin.len - 1;
		armored_other(&k, "PUBLIC KEY BLOCK");
		tb_str(&k, "\n");
		msg_begin(&t);
		msg_text(&t, EXPLANATION);
		msg_data_binary(&t, DATA_NAME);
		msg_7bit(&t, "application/pgp-keys", "public-key-1", tb_cstr(&k));
		msg_end(&t);
		EXPECT(&t, &o, "invalid; reason=too-large");
		tb_free(&t);
		tb_str(&k, "junk\n");
		msg_begin(&t);
		msg_text(&t, EXPLANATION);
		msg_data_binary(&t, DATA_NAME);
		msg_7bit(&t, "application/pgp-keys", "public-key-1", tb_cstr(&k));
		msg_end(&t);
		EXPECT(&t, &o, "invalid; reason=bad-key,too-large");
		tb_free(&t);
		tb_free(&k);
		tb_free(&bin);
	}
	/* reserved tag 0 in a binary key part: bad-key */
	{
		struct tbuf t = {0};
		t_pubkey_block(&bin, "Alice <alice@example.org>");
		t_pkt_new(&bin, 0, "abcdefgh", 8);
		msg_begin(&t);
		msg_text(&t, EXPLANATION);
		msg_data_binary(&t, DATA_NAME);
		msg_b64(&t, "application/pgp-keys", "public-key-1", bin.p, bin.len);
		msg_end(&t);
		EXPECT(&t, NULL, "invalid; reason=bad-key");
		tb_free(&t);
		tb_free(&bin);
	}
}

/* ------------------------------------------------------------------ */
/* Structure, detection, line ends                                     */

static void test_bad_mime(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: multipart/mixed\n\n--x\n"
		   "Content-Type: text/plain\n\nhello\n--x--\n");
	EXPECT(&t, NULL, "invalid; reason=bad-mime,no-data");
	tb_free(&t);

	/* the pre-scan rejects a long Content-Type before gmime */
	msg_valid(&t);
	tb_str(&t, "Content-Type: text/plain; x=\"");
	tb_fill(&t, 'a', 5000);
	tb_str(&t, "\"\n");
	EXPECT(&t, NULL, "invalid; reason=bad-mime");
	tb_free(&t);
}

static void test_too_many_parts(void **state)
{
	struct tbuf t = {0};
	char name[32];
	(void)state;
	/* 1 multipart + explanation + data + 98 = 101 MIME parts */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	for (int i = 0; i < 98; i++) {
		snprintf(name, sizeof(name), "f%d.txt", i);
		msg_7bit(&t, "text/plain", name, "x\n");
	}
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-mime");
	tb_free(&t);
	/* 100 parts are allowed (and are plain attachments) */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	for (int i = 0; i < 97; i++) {
		snprintf(name, sizeof(name), "f%d.txt", i);
		msg_7bit(&t, "text/plain", name, "x\n");
	}
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=plain-attachment");
	tb_free(&t);
}

static void test_not_smp(void **state)
{
	struct tbuf t = {0};
	struct smp_result r;
	char v[SMP_VERDICT_MAX];
	(void)state;
	msg_headers(&t, "Hello");
	tb_str(&t, "Content-Type: text/plain\n\nhello\n");
	run((const char *)t.p, t.len, NULL, &r, v);
	assert_string_equal(v, "not smp");
	assert_false(r.is_smp);
	assert_int_equal(r.reasons, 0);
	smp_result_clear(&r);
	tb_free(&t);

	msg_headers(&t, "Re: " SMP_SUBJECT);
	tb_str(&t, "\nhello\n");
	EXPECT(&t, NULL, "not smp");
	tb_free(&t);

	/* no Subject header; the SMP subject only in the body */
	msg_headers(&t, NULL);
	tb_str(&t, "\nSubject: " SMP_SUBJECT "\n");
	EXPECT(&t, NULL, "not smp");
	tb_free(&t);

	/* only the first Subject counts */
	msg_headers(&t, "Hello");
	tb_str(&t, "Subject: " SMP_SUBJECT "\n\nhello\n");
	EXPECT(&t, NULL, "not smp");
	tb_free(&t);

	/* not SMP, however large */
	{
		struct smp_check_opts o;
		smp_check_opts_init(&o);
		o.limits.max_message_bytes = 10;
		msg_headers(&t, "Hello");
		tb_str(&t, "\nhello\n");
		EXPECT(&t, &o, "not smp");
		tb_free(&t);
	}
}

static void test_folded_encoded_subject(void **state)
{
	struct tbuf t = {0}, p = {0};
	(void)state;
	payload(&p);
	tb_str(&t, "From: alice@example.org\n"
		   "Subject: =?UTF-8?Q?Secure_Messenger?=\n"
		   " =?UTF-8?Q?_Protocol_Message?=\n"
		   "MIME-Version: 1.0\n"
		   "Content-Type: multipart/mixed; boundary=\"" BND "\"\n\n");
	msg_text(&t, EXPLANATION);
	msg_b64(&t, "application/octet-stream", DATA_NAME, p.p, p.len);
	msg_end(&t);
	EXPECT(&t, NULL, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
	tb_free(&p);
}

static void test_crlf(void **state)
{
	struct tbuf t = {0}, c, a = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_key_armored(&t, "public-key-1");
	msg_end(&t);
	c = t_to_crlf((const char *)t.p, t.len);
	assert_non_null(strstr(tb_cstr(&c), "\r\n\r\n"));
	EXPECT(&c, NULL, "valid; form=attachment; keys=1; recipients=1");
	tb_free(&c);
	tb_free(&t);

	/* a folded, encoded Subject with CRLF */
	{
		struct tbuf p = {0};
		payload(&p);
		tb_str(&t, "From: alice@example.org\n"
			   "Subject: =?UTF-8?Q?Secure_Messenger?=\n"
			   "\t=?UTF-8?Q?_Protocol_Message?=\n"
			   "MIME-Version: 1.0\n"
			   "Content-Type: multipart/mixed; boundary=\"" BND
			   "\"\n\n");
		msg_text(&t, EXPLANATION);
		msg_b64(&t, "application/octet-stream", DATA_NAME, p.p, p.len);
		msg_end(&t);
		c = t_to_crlf((const char *)t.p, t.len);
		EXPECT(&c, NULL, "valid; form=attachment; keys=0; recipients=1");
		tb_free(&c);
		tb_free(&t);
		tb_free(&p);
	}

	/* inline and armored data with CRLF */
	armored_payload(&a);
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: text/plain\n\nHi\n");
	tb_put(&t, a.p, a.len);
	c = t_to_crlf((const char *)t.p, t.len);
	EXPECT(&c, NULL, "valid; form=inline; keys=0; recipients=1");
	tb_free(&c);
	tb_free(&t);

	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_7bit(&t, "application/octet-stream", DATA_NAME, tb_cstr(&a));
	msg_end(&t);
	c = t_to_crlf((const char *)t.p, t.len);
	EXPECT(&c, NULL, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&c);
	tb_free(&t);
	tb_free(&a);
}

static void test_caseless_option(void **state)
{
	struct tbuf t = {0}, p = {0};
	struct smp_check_opts o;
	(void)state;
	payload(&p);
	msg_headers(&t, "SECURE MESSENGER PROTOCOL MESSAGE");
	tb_str(&t, "Content-Type: multipart/mixed; boundary=\"" BND "\"\n\n");
	msg_text(&t, EXPLANATION);
	msg_b64(&t, "application/octet-stream", DATA_NAME, p.p, p.len);
	msg_end(&t);
	smp_check_opts_init(&o);
	assert_int_equal(o.match, SMP_MATCH_EXACT);
	EXPECT(&t, &o, "not smp");
	o.match = SMP_MATCH_CASELESS;
	EXPECT(&t, &o, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
	tb_free(&p);
}

static void test_opts_init(void **state)
{
	struct smp_check_opts o;
	(void)state;
	memset(&o, 0xFF, sizeof(o));
	smp_check_opts_init(&o);
	assert_int_equal(o.match, SMP_MATCH_EXACT);
	assert_int_equal(o.limits.max_message_bytes, 25u * 1024 * 1024);
	assert_int_equal(o.limits.max_parts, 100);
	assert_int_equal(o.limits.max_depth, 8);
	assert_int_equal(o.limits.max_key_bytes, 64u * 1024);
	assert_int_equal(o.limits.max_keys, 8);
	assert_int_equal(o.limits.max_uids, 16);
}

/* Empty parts. gmime gives an empty GByteArray whose data is NULL for
 * them; these run last because under SANITIZE=1 a sanitizer report ends
 * the program. */

static void test_empty_body(void **state)
{
	/* no Content-Type at all, empty body: an empty explanation */
	struct tbuf t = {0};
	(void)state;
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "\n");
	EXPECT(&t, NULL, "invalid; reason=no-data");
	tb_free(&t);
}

static void test_empty_explanation(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, "");
	msg_data_binary(&t, DATA_NAME);
	msg_end(&t);
	EXPECT(&t, NULL, "valid; form=attachment; keys=0; recipients=1");
	tb_free(&t);
}

static void test_empty_attachment(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pdf", "empty.pdf", "");
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=plain-attachment");
	tb_free(&t);
}

static void test_empty_key_part(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_data_binary(&t, DATA_NAME);
	msg_7bit(&t, "application/pgp-keys", "public-key-1", "");
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=bad-key");
	tb_free(&t);
}

static void test_empty_data_part(void **state)
{
	struct tbuf t = {0};
	(void)state;
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_7bit(&t, "application/octet-stream", DATA_NAME, "");
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=not-encrypted");
	tb_free(&t);
	/* base64, and as the whole message: the content may be NULL */
	msg_begin(&t);
	msg_text(&t, EXPLANATION);
	msg_b64(&t, "application/octet-stream", DATA_NAME,
		(const unsigned char *)"", 0);
	msg_end(&t);
	EXPECT(&t, NULL, "invalid; reason=not-encrypted");
	tb_free(&t);
	msg_headers(&t, SMP_SUBJECT);
	tb_str(&t, "Content-Type: application/octet-stream; name=\"" DATA_NAME
		   "\"\nContent-Transfer-Encoding: base64\n");
	EXPECT(&t, NULL, "invalid; reason=not-encrypted");
	tb_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_attachment_binary),
		cmocka_unit_test(test_valid_armored),
		cmocka_unit_test(test_valid_alias),
		cmocka_unit_test(test_valid_inline),
		cmocka_unit_test(test_valid_with_keys),
		cmocka_unit_test(test_valid_html_alternative),
		cmocka_unit_test(test_valid_no_explanation),
		cmocka_unit_test(test_inline_two_blocks),
		cmocka_unit_test(test_two_data_parts),
		cmocka_unit_test(test_data_part_and_inline_block),
		cmocka_unit_test(test_no_data),
		cmocka_unit_test(test_plain_attachment),
		cmocka_unit_test(test_secret_key_in_attachment),
		cmocka_unit_test(test_secret_key_in_attached_message),
		cmocka_unit_test(test_bad_key),
		cmocka_unit_test(test_secret_key_in_key_part),
		cmocka_unit_test(test_too_many_keys),
		cmocka_unit_test(test_message_too_large),
		cmocka_unit_test(test_key_too_large),
		cmocka_unit_test(test_data_faults),
		cmocka_unit_test(test_data_trailing_white_space),
		cmocka_unit_test(test_data_trailing_blocks),
		cmocka_unit_test(test_data_trailing_text),
		cmocka_unit_test(test_data_leading_text),
		cmocka_unit_test(test_data_cleartext_signed),
		cmocka_unit_test(test_data_first_block_other),
		cmocka_unit_test(test_data_tag0),
		cmocka_unit_test(test_inline_rest),
		cmocka_unit_test(test_key_part_rest),
		cmocka_unit_test(test_bad_mime),
		cmocka_unit_test(test_too_many_parts),
		cmocka_unit_test(test_not_smp),
		cmocka_unit_test(test_folded_encoded_subject),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_caseless_option),
		cmocka_unit_test(test_opts_init),
		cmocka_unit_test(test_empty_data_part),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_empty_explanation),
		cmocka_unit_test(test_empty_attachment),
		cmocka_unit_test(test_empty_key_part),
	};
	t_filter_from_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
