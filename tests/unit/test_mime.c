/* test_mime.c - unit tests for lib/smp_mime.c */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smp_mime.h"
#include "smp_validate.h"
#include "test_util.h"

static int group_setup(void **state)
{
	(void)state;
	smp_lib_init();
	return 0;
}

#define HDRS                                                              \
	"From: alice@example.org\n"                                       \
	"To: bob@example.org\n"                                           \
	"Subject: Secure Messenger Protocol Message\n"                    \
	"MIME-Version: 1.0\n"

/* ------------------------------------------------------------------ */
/* smp_mime_header_end / smp_mime_header_raw                           */

static void test_header_end(void **state)
{
	(void)state;
	assert_int_equal(smp_mime_header_end("A: b\n\nbody", 10), 6);
	assert_int_equal(smp_mime_header_end("A: b\r\n\r\nbody", 12), 8);
	assert_int_equal(smp_mime_header_end("A: b\nC: d\n", 10), 10);
	assert_int_equal(smp_mime_header_end("\nbody", 5), 1);
	assert_int_equal(smp_mime_header_end("", 0), 0);
	/* a folded header is not its end */
	assert_int_equal(smp_mime_header_end("A: b\n c\n\nx", 10), 9);
}

static char *raw(const char *msg, const char *name)
{
	return smp_mime_header_raw(msg, strlen(msg), name);
}

static void test_header_raw_first(void **state)
{
	char *v;
	(void)state;
	v = raw("From: a\nSubject: one\nSubject: two\n\nbody\n", "Subject");
	assert_non_null(v);
	assert_string_equal(v, " one");
	g_free(v);
	v = raw("From: a\nTo: b\n\n", "To");
	assert_string_equal(v, " b");
	g_free(v);
	/* last line of a message without a body */
	v = raw("From: a\nSubject: x", "Subject");
	assert_string_equal(v, " x");
	g_free(v);
}

static void test_header_raw_folded(void **state)
{
	char *v;
	(void)state;
	v = raw("From: a\nSubject: Secure\n Messenger\n\tProtocol Message\n"
		"To: b\n\nbody\n", "Subject");
	assert_string_equal(v, " Secure\n Messenger\n\tProtocol Message");
	g_free(v);
}

static void test_header_raw_crlf(void **state)
{
	char *v;
	(void)state;
	v = raw("From: a\r\nSubject: Secure Messenger\r\n Protocol Message\r\n"
		"To: b\r\n\r\nbody\r\n", "Subject");
	assert_non_null(v);
	/* the folding CRLF is kept */
	assert_true(strlen(v) >= 36);
	assert_memory_equal(v, " Secure Messenger\r\n Protocol Message", 36);
	g_free(v);
}

static void test_header_raw_case(void **state)
{
	char *v;
	(void)state;
	v = raw("SUBJECT: up\n\n", "Subject");
	assert_string_equal(v, " up");
	g_free(v);
	v = raw("subject:low\n\n", "Subject");
	assert_string_equal(v, "low");
	g_free(v);
}

static void test_header_raw_absent(void **state)
{
	(void)state;
	assert_null(raw("From: a\nTo: b\n\nbody\n", "Subject"));
	assert_null(raw("Subjects: a\nX-Subject: b\n\n", "Subject"));
	assert_null(raw("", "Subject"));
	/* a folded continuation line of another field is no field */
	assert_null(raw("X-A: a\n Subject: b\n\n", "Subject"));
}

static void test_header_raw_in_body(void **state)
{
	(void)state;
	assert_null(raw("From: a\n\nSubject: in the body\n", "Subject"));
	assert_null(raw("From: a\r\n\r\nSubject: in the body\r\n", "Subject"));
}

static void test_header_raw_capped(void **state)
{
	struct tbuf t = {0};
	char *v;
	(void)state;
	tb_str(&t, "Subject: ");
	tb_fill(&t, 'x', 6000);
	tb_str(&t, "\n\n");
	v = raw(tb_cstr(&t), "Subject");
	assert_non_null(v);
	assert_int_equal(strlen(v), 4096);
	assert_int_equal(v[0], ' ');
	assert_int_equal(v[4095], 'x');
	g_free(v);
	tb_free(&t);
}

/* ------------------------------------------------------------------ */
/* smp_mime_prescan                                                    */

static const char MSG_OK[] =
	HDRS
	"Content-Type: multipart/mixed; boundary=\"b1\"\n"
	"\n"
	"--b1\n"
	"Content-Type: text/plain; charset=us-ascii\n"
	"\n"
	"hello\n"
	"--b1\n"
	"Content-Type: application/octet-stream\n"
	"Content-Disposition: attachment; filename=\"encryped-and-signed-data\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"SGVsbG8sIFdvcmxkIQ==\n"
	"--b1--\n";

static bool prescan(const char *msg, unsigned max_parts)
{
	struct smp_limits l;
	smp_limits_init(&l);
	if (max_parts)
		l.max_parts = max_parts;
	return smp_mime_prescan(msg, strlen(msg), &l);
}

static void test_prescan_ok(void **state)
{
	(void)state;
	assert_true(prescan(MSG_OK, 0));
	assert_true(prescan("", 0));
	assert_true(prescan("Subject: x\n\nno content type\n", 0));
}

/* "<field>: text/plain; x=aaaa..." of exactly len bytes, plus eol. */
static void long_field(struct tbuf *t, const char *field, size_t len,
		       const char *eol)
{
	size_t start = t->len;
	tb_printf(t, "%s: text/plain; x=", field);
	tb_fill(t, 'a', len - (t->len - start));
	tb_str(t, eol);
}

static void test_prescan_ct_too_long(void **state)
{
	struct tbuf t = {0};
	(void)state;
	tb_str(&t, HDRS);
	long_field(&t, "Content-Type", SMP_MIME_MAX_CT_BYTES, "\n");
	tb_str(&t, "\nbody\n");
	assert_true(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	tb_str(&t, HDRS);
	long_field(&t, "Content-Type", SMP_MIME_MAX_CT_BYTES + 1, "\n");
	tb_str(&t, "\nbody\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	/* the same for Content-Disposition, in a nested part */
	tb_str(&t, MSG_OK);
	long_field(&t, "Content-Disposition", 5000, "\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	/* lower-case field name */
	tb_str(&t, HDRS);
	long_field(&t, "content-type", 3000, "\n");
	tb_str(&t, "\nbody\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);
}

static void test_prescan_ct_boundary_crlf(void **state)
{
	/* 2,048 bytes of field, unfolded, are allowed; the CRLF that ends
	 * the line is no part of the field. */
	struct tbuf t = {0}, c;
	bool ok;
	(void)state;
	tb_str(&t, HDRS);
	long_field(&t, "Content-Type", SMP_MIME_MAX_CT_BYTES, "\n");
	tb_str(&t, "\nbody\n");
	c = t_to_crlf((const char *)t.p, t.len);
	ok = prescan(tb_cstr(&c), 0);
	tb_free(&c);
	tb_free(&t);
	assert_true(ok);
}

static void test_prescan_ct_continuation(void **state)
{
	struct tbuf t = {0};
	(void)state;
	/* three lines of 800 bytes: none too long, together too long */
	tb_str(&t, HDRS);
	tb_str(&t, "Content-Type: text/plain;\n");
	for (int i = 0; i < 3; i++) {
		tb_str(&t, " x=");
		tb_fill(&t, 'b', 797);
		tb_str(&t, "\n");
	}
	tb_str(&t, "\nbody\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	/* two such lines are fine */
	tb_str(&t, HDRS);
	tb_str(&t, "Content-Type: text/plain;\n");
	for (int i = 0; i < 2; i++) {
		tb_str(&t, "\tx=");
		tb_fill(&t, 'b', 797);
		tb_str(&t, "\n");
	}
	tb_str(&t, "\nbody\n");
	assert_true(prescan(tb_cstr(&t), 0));
	tb_free(&t);
}

static void params_field(struct tbuf *t, const char *field, unsigned n,
			 bool folded)
{
	tb_printf(t, "%s: text/plain", field);
	for (unsigned i = 0; i < n; i++)
		tb_printf(t, ";%sp%u=v", folded ? "\n " : " ", i);
	tb_str(t, "\n");
}

static void test_prescan_params(void **state)
{
	struct tbuf t = {0};
	(void)state;
	tb_str(&t, HDRS);
	params_field(&t, "Content-Type", SMP_MIME_MAX_CT_PARAMS, false);
	tb_str(&t, "\nbody\n");
	assert_true(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	tb_str(&t, HDRS);
	params_field(&t, "Content-Type", SMP_MIME_MAX_CT_PARAMS + 1, false);
	tb_str(&t, "\nbody\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	/* spread over continuation lines */
	tb_str(&t, HDRS);
	params_field(&t, "Content-Type", SMP_MIME_MAX_CT_PARAMS + 1, true);
	tb_str(&t, "\nbody\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);

	tb_str(&t, HDRS);
	params_field(&t, "Content-Disposition", 40, true);
	tb_str(&t, "\nbody\n");
	assert_false(prescan(tb_cstr(&t), 0));
	tb_free(&t);
}

static void test_prescan_space_before_colon(void **state)
{
	/* gmime accepts "Content-Type :" (white space before the colon) as
	 * the Content-Type field, so the bound must apply to it too. */
	struct tbuf t = {0};
	bool params_ok, long_ok;
	(void)state;
	tb_str(&t, HDRS);
	params_field(&t, "Content-Type ", 40, false);
	tb_str(&t, "\nbody\n");
	params_ok = prescan(tb_cstr(&t), 0);
	tb_free(&t);

	tb_str(&t, HDRS);
	long_field(&t, "Content-Type\t", 5000, "\n");
	tb_str(&t, "\nbody\n");
	long_ok = prescan(tb_cstr(&t), 0);
	tb_free(&t);
	assert_false(params_ok);
	assert_false(long_ok);
}

static void test_prescan_max_parts(void **state)
{
	(void)state;
	/* MSG_OK has three Content-Type lines */
	assert_true(prescan(MSG_OK, 3));
	assert_false(prescan(MSG_OK, 2));
	assert_false(prescan(MSG_OK, 1));
}

/* ------------------------------------------------------------------ */
/* smp_mime_parse                                                      */

static void parse(const char *msg, const struct smp_limits *lim,
		  struct smp_mime *m)
{
	struct smp_limits l;
	if (!lim) {
		smp_limits_init(&l);
		lim = &l;
	}
	smp_mime_parse(msg, strlen(msg), lim, m);
}

static const struct smp_leaf *leaf(const struct smp_mime *m, guint i)
{
	assert_true(i < m->leaves->len);
	return &g_array_index(m->leaves, struct smp_leaf, i);
}

static void assert_leaf(const struct smp_mime *m, guint i, enum smp_role role,
			const char *name)
{
	const struct smp_leaf *lf = leaf(m, i);
	assert_int_equal(lf->role, role);
	if (name) {
		assert_non_null(lf->name);
		assert_string_equal(lf->name, name);
	} else {
		assert_null(lf->name);
	}
}

static const char MSG_ROLES[] =
	HDRS
	"Content-Type: multipart/mixed; boundary=\"b1\"\n"
	"\n"
	"preamble\n"
	"--b1\n"
	"Content-Type: text/plain; charset=us-ascii\n"
	"\n"
	"hello\n"
	"--b1\n"
	"Content-Type: application/octet-stream\n"
	"Content-Disposition: attachment; filename=\"encryped-and-signed-data\"\n"
	"\n"
	"xxx\n"
	"--b1\n"
	"Content-Type: application/octet-stream\n"
	"Content-Disposition: attachment; filename=\"encrypted-and-signed-data\"\n"
	"\n"
	"xxx\n"
	"--b1\n"
	"Content-Type: application/pgp-keys\n"
	"Content-Disposition: attachment; filename=\"public-key-1\"\n"
	"\n"
	"xxx\n"
	"--b1\n"
	"Content-Type: application/pdf\n"
	"Content-Disposition: attachment; filename=\"invoice.pdf\"\n"
	"\n"
	"xxx\n"
	"--b1\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"From: carol@example.org\n"
	"Subject: inner\n"
	"\n"
	"inner body\n"
	"--b1--\n";

static void test_parse_roles(void **state)
{
	struct smp_mime m;
	(void)state;
	parse(MSG_ROLES, NULL, &m);
	assert_non_null(m.message);
	assert_false(m.bad_mime);
	/* the attached message's own body part is walked too (secret keys) */
	assert_int_equal(m.nparts, 8);
	assert_int_equal(m.leaves->len, 7);
	assert_leaf(&m, 0, SMP_ROLE_TEXT, NULL);
	assert_leaf(&m, 1, SMP_ROLE_DATA, "encryped-and-signed-data");
	assert_leaf(&m, 2, SMP_ROLE_ALIAS, "encrypted-and-signed-data");
	assert_leaf(&m, 3, SMP_ROLE_KEY, "public-key-1");
	assert_leaf(&m, 4, SMP_ROLE_OTHER, "invoice.pdf");
	assert_leaf(&m, 5, SMP_ROLE_MESSAGE, NULL);
	assert_leaf(&m, 6, SMP_ROLE_NESTED, NULL);
	assert_ptr_equal(leaf(&m, 0)->parent,
			 g_mime_message_get_mime_part(m.message));
	smp_mime_free(&m);
	assert_null(m.message);
	assert_null(m.leaves);
}

static void named_part(struct tbuf *t, const char *name)
{
	tb_printf(t, "--b1\nContent-Type: application/octet-stream\n"
		     "Content-Disposition: attachment; filename=\"%s\"\n\nx\n",
		  name);
}

static void test_parse_names(void **state)
{
	static const struct {
		const char *name;
		enum smp_role role;
	} cases[] = {
		{"ENCRYPED-AND-SIGNED-DATA", SMP_ROLE_DATA},
		{"Encrypted-And-Signed-Data", SMP_ROLE_ALIAS},
		{"PUBLIC-KEY-7", SMP_ROLE_KEY},
		{"public-key-999", SMP_ROLE_KEY},
		{"public-key-12", SMP_ROLE_KEY},
		{"public-key-0", SMP_ROLE_OTHER},
		{"public-key-01", SMP_ROLE_OTHER},
		{"public-key-1000", SMP_ROLE_OTHER},
		{"public-key-", SMP_ROLE_OTHER},
		{"public-key-1a", SMP_ROLE_OTHER},
		{"public-key-1.asc", SMP_ROLE_OTHER},
		{"encryped-and-signed-data.asc", SMP_ROLE_OTHER},
		{"encrypted-and-signed-data.pgp", SMP_ROLE_OTHER},
		{"encryped_and_signed_data", SMP_ROLE_OTHER},
		{"public-key", SMP_ROLE_OTHER},
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	struct tbuf t = {0};
	struct smp_mime m;
	(void)state;
	tb_str(&t, HDRS "Content-Type: multipart/mixed; boundary=b1\n\n");
	for (size_t i = 0; i < n; i++)
		named_part(&t, cases[i].name);
	tb_str(&t, "--b1--\n");
	parse(tb_cstr(&t), NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, n);
	for (size_t i = 0; i < n; i++)
		assert_leaf(&m, (guint)i, cases[i].role, cases[i].name);
	smp_mime_free(&m);
	tb_free(&t);
}

static void test_parse_html_alternative(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/alternative; boundary=\"a\"\n"
		"\n"
		"--a\n"
		"Content-Type: text/plain\n"
		"\n"
		"hi\n"
		"--a\n"
		"Content-Type: text/html\n"
		"\n"
		"<p>hi</p>\n"
		"--a--\n";
	static const char html_first[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: multipart/alternative; boundary=\"a\"\n"
		"\n"
		"--a\n"
		"Content-Type: text/html\n"
		"\n"
		"<p>hi</p>\n"
		"--a\n"
		"Content-Type: text/plain\n"
		"\n"
		"hi\n"
		"--a--\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Disposition: attachment; filename=encryped-and-signed-data\n"
		"\n"
		"x\n"
		"--m--\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 3);
	assert_int_equal(m.leaves->len, 2);
	assert_leaf(&m, 0, SMP_ROLE_TEXT, NULL);
	assert_leaf(&m, 1, SMP_ROLE_HTML, NULL);
	assert_ptr_equal(leaf(&m, 0)->parent, leaf(&m, 1)->parent);
	smp_mime_free(&m);

	parse(html_first, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 5);
	assert_int_equal(m.leaves->len, 3);
	assert_leaf(&m, 0, SMP_ROLE_HTML, NULL);
	assert_leaf(&m, 1, SMP_ROLE_TEXT, NULL);
	assert_leaf(&m, 2, SMP_ROLE_DATA, "encryped-and-signed-data");
	smp_mime_free(&m);
}

static void test_parse_html_not_next_to_text(void **state)
{
	/* the text/html is in another multipart/alternative */
	static const char other_alt[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: text/plain\n"
		"\n"
		"hi\n"
		"--m\n"
		"Content-Type: multipart/alternative; boundary=\"a\"\n"
		"\n"
		"--a\n"
		"Content-Type: text/html\n"
		"\n"
		"<p>hi</p>\n"
		"--a--\n"
		"--m--\n";
	/* text/html directly in multipart/mixed */
	static const char in_mixed[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: text/plain\n"
		"\n"
		"hi\n"
		"--m\n"
		"Content-Type: text/html\n"
		"\n"
		"<p>hi</p>\n"
		"--m--\n";
	/* text/html alone */
	static const char alone[] =
		HDRS
		"Content-Type: text/html\n"
		"\n"
		"<p>hi</p>\n";
	struct smp_mime m;
	(void)state;
	parse(other_alt, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, 2);
	assert_leaf(&m, 0, SMP_ROLE_TEXT, NULL);
	assert_leaf(&m, 1, SMP_ROLE_OTHER, NULL);
	smp_mime_free(&m);

	parse(in_mixed, NULL, &m);
	assert_int_equal(m.leaves->len, 2);
	assert_leaf(&m, 0, SMP_ROLE_TEXT, NULL);
	assert_leaf(&m, 1, SMP_ROLE_OTHER, NULL);
	smp_mime_free(&m);

	parse(alone, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 1);
	assert_int_equal(m.leaves->len, 1);
	assert_leaf(&m, 0, SMP_ROLE_OTHER, NULL);
	assert_null(leaf(&m, 0)->parent);
	smp_mime_free(&m);
}

static void test_parse_text_parts(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: text/plain\n"
		"Content-Disposition: attachment\n"
		"\n"
		"an unnamed attachment\n"
		"--m\n"
		"Content-Type: text/plain\n"
		"Content-Disposition: inline; filename=\"notes.txt\"\n"
		"\n"
		"a named text part\n"
		"--m\n"
		"Content-Type: text/plain\n"
		"\n"
		"the explanation\n"
		"--m\n"
		"Content-Type: text/plain\n"
		"Content-Disposition: inline\n"
		"\n"
		"a second body\n"
		"--m\n"
		"Content-Type: image/png\n"
		"\n"
		"xx\n"
		"--m--\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, 5);
	assert_leaf(&m, 0, SMP_ROLE_OTHER, NULL);
	assert_leaf(&m, 1, SMP_ROLE_OTHER, "notes.txt");
	assert_leaf(&m, 2, SMP_ROLE_TEXT, NULL);
	assert_leaf(&m, 3, SMP_ROLE_OTHER, NULL);
	assert_leaf(&m, 4, SMP_ROLE_OTHER, NULL);
	smp_mime_free(&m);
}

static void test_parse_single_part_text(void **state)
{
	static const char msg[] = HDRS "\nhello\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_non_null(m.message);
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 1);
	assert_int_equal(m.leaves->len, 1);
	assert_leaf(&m, 0, SMP_ROLE_TEXT, NULL);
	assert_null(leaf(&m, 0)->parent);
	smp_mime_free(&m);
}

static void test_parse_rfc2231(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Disposition: attachment; filename*=UTF-8''public-key-1\n"
		"\n"
		"x\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Disposition: attachment;\n"
		" filename*0=encryped-and-;\n"
		" filename*1=signed-data\n"
		"\n"
		"x\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Disposition: attachment;\n"
		" filename*0*=us-ascii'en'public%2Dkey;\n"
		" filename*1=-2\n"
		"\n"
		"x\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Disposition: attachment;\n"
		" filename=\"=?UTF-8?Q?public-key-3?=\"\n"
		"\n"
		"x\n"
		"--m--\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, 4);
	assert_leaf(&m, 0, SMP_ROLE_KEY, "public-key-1");
	assert_leaf(&m, 1, SMP_ROLE_DATA, "encryped-and-signed-data");
	assert_leaf(&m, 2, SMP_ROLE_KEY, "public-key-2");
	assert_leaf(&m, 3, SMP_ROLE_KEY, "public-key-3");
	smp_mime_free(&m);
}

static void test_parse_content_type_name(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: application/octet-stream; name=\"encryped-and-signed-data\"\n"
		"\n"
		"x\n"
		"--m\n"
		"Content-Type: application/pgp-keys; name=public-key-2\n"
		"\n"
		"x\n"
		"--m\n"
		"Content-Type: application/pdf; name=\"public-key-9\"\n"
		"Content-Disposition: attachment; filename=\"report.pdf\"\n"
		"\n"
		"x\n"
		"--m--\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, 3);
	assert_leaf(&m, 0, SMP_ROLE_DATA, "encryped-and-signed-data");
	assert_leaf(&m, 1, SMP_ROLE_KEY, "public-key-2");
	/* the Content-Disposition filename wins */
	assert_leaf(&m, 2, SMP_ROLE_OTHER, "report.pdf");
	smp_mime_free(&m);
}

static void test_parse_bad_no_boundary(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/mixed\n"
		"\n"
		"--b1\n"
		"Content-Type: text/plain\n"
		"\n"
		"hello\n"
		"--b1--\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_true(m.bad_mime);
	smp_mime_free(&m);
}

static void test_parse_bad_empty_multipart(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=b1\n"
		"\n"
		"--b1--\n";
	struct smp_mime m;
	(void)state;
	parse(msg, NULL, &m);
	assert_true(m.bad_mime);
	smp_mime_free(&m);
}

/* depth multiparts nested, a text/plain leaf at nesting level depth. */
static void nested(struct tbuf *t, unsigned depth)
{
	tb_str(t, HDRS);
	for (unsigned i = 0; i < depth; i++)
		tb_printf(t, "Content-Type: multipart/mixed; boundary=\"n%u\"\n"
			     "\n--n%u\n",
			  i, i);
	tb_str(t, "Content-Type: text/plain\n\nleaf\n");
	for (unsigned i = depth; i-- > 0;)
		tb_printf(t, "--n%u--\n", i);
}

static void test_parse_depth(void **state)
{
	struct smp_limits l;
	struct tbuf t = {0};
	struct smp_mime m;
	(void)state;
	smp_limits_init(&l);
	l.max_depth = 2;
	nested(&t, 2); /* leaf at depth 2 */
	parse(tb_cstr(&t), &l, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 3);
	assert_int_equal(m.leaves->len, 1);
	smp_mime_free(&m);
	tb_free(&t);

	nested(&t, 3); /* leaf at depth 3 */
	parse(tb_cstr(&t), &l, &m);
	assert_true(m.bad_mime);
	smp_mime_free(&m);
	tb_free(&t);

	/* defaults: 8 levels are fine, 9 are not */
	smp_limits_init(&l);
	nested(&t, SMP_LIMITS_DEFAULT_DEPTH);
	parse(tb_cstr(&t), &l, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, 1);
	assert_leaf(&m, 0, SMP_ROLE_TEXT, NULL);
	smp_mime_free(&m);
	tb_free(&t);

	nested(&t, SMP_LIMITS_DEFAULT_DEPTH + 1);
	parse(tb_cstr(&t), &l, &m);
	assert_true(m.bad_mime);
	smp_mime_free(&m);
	tb_free(&t);
}

static void test_parse_max_parts(void **state)
{
	struct smp_limits l;
	struct tbuf t = {0};
	struct smp_mime m;
	(void)state;
	smp_limits_init(&l);
	l.max_parts = 4;
	tb_str(&t, HDRS "Content-Type: multipart/mixed; boundary=b1\n\n");
	for (int i = 0; i < 3; i++)
		named_part(&t, "x.bin");
	tb_str(&t, "--b1--\n");
	parse(tb_cstr(&t), &l, &m); /* 1 + 3 parts */
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 4);
	smp_mime_free(&m);
	l.max_parts = 3;
	parse(tb_cstr(&t), &l, &m);
	assert_true(m.bad_mime);
	smp_mime_free(&m);
	tb_free(&t);

	/* default: 100 parts fine, 101 not */
	smp_limits_init(&l);
	tb_str(&t, HDRS "Content-Type: multipart/mixed; boundary=b1\n\n");
	for (int i = 0; i < 99; i++)
		named_part(&t, "x.bin");
	tb_str(&t, "--b1--\n");
	parse(tb_cstr(&t), &l, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.nparts, 100);
	smp_mime_free(&m);
	tb_free(&t);
	tb_str(&t, HDRS "Content-Type: multipart/mixed; boundary=b1\n\n");
	for (int i = 0; i < 100; i++)
		named_part(&t, "x.bin");
	tb_str(&t, "--b1--\n");
	parse(tb_cstr(&t), &l, &m);
	assert_true(m.bad_mime);
	smp_mime_free(&m);
	tb_free(&t);
}

/* ------------------------------------------------------------------ */
/* smp_mime_content                                                    */

static void test_content_decoding(void **state)
{
	static const char msg[] =
		HDRS
		"Content-Type: multipart/mixed; boundary=\"m\"\n"
		"\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Transfer-Encoding: base64\n"
		"Content-Disposition: attachment; filename=a\n"
		"\n"
		"SGVsbG8s\n"
		"IFdvcmxkIQ==\n"
		"--m\n"
		"Content-Type: text/plain; charset=utf-8\n"
		"Content-Transfer-Encoding: quoted-printable\n"
		"\n"
		"caf=C3=A9 =3D soft=\n"
		"break\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Transfer-Encoding: 7bit\n"
		"Content-Disposition: attachment; filename=b\n"
		"\n"
		"plain text\n"
		"--m\n"
		"Content-Type: application/octet-stream\n"
		"Content-Transfer-Encoding: BASE64\n"
		"Content-Disposition: attachment; filename=c\n"
		"\n"
		"AAECA/8=\n"
		"--m--\n";
	static const unsigned char bin[] = {0, 1, 2, 3, 0xFF};
	struct smp_mime m;
	GByteArray *b;
	(void)state;
	parse(msg, NULL, &m);
	assert_false(m.bad_mime);
	assert_int_equal(m.leaves->len, 4);

	b = smp_mime_content(leaf(&m, 0)->obj);
	assert_int_equal(b->len, 13);
	assert_memory_equal(b->data, "Hello, World!", 13);
	g_byte_array_free(b, TRUE);

	b = smp_mime_content(leaf(&m, 1)->obj);
	assert_int_equal(b->len, 17);
	assert_memory_equal(b->data, "caf\xC3\xA9 = softbreak", 17);
	g_byte_array_free(b, TRUE);

	b = smp_mime_content(leaf(&m, 2)->obj);
	assert_int_equal(b->len, 10);
	assert_memory_equal(b->data, "plain text", 10);
	g_byte_array_free(b, TRUE);

	b = smp_mime_content(leaf(&m, 3)->obj);
	assert_int_equal(b->len, sizeof(bin));
	assert_memory_equal(b->data, bin, sizeof(bin));
	g_byte_array_free(b, TRUE);
	smp_mime_free(&m);
}

static void test_content_empty(void **state)
{
	static const char msg[] = HDRS "\n";
	struct smp_mime m;
	GByteArray *b;
	(void)state;
	parse(msg, NULL, &m);
	assert_int_equal(m.leaves->len, 1);
	b = smp_mime_content(leaf(&m, 0)->obj);
	assert_non_null(b);
	assert_int_equal(b->len, 0);
	g_byte_array_free(b, TRUE);
	smp_mime_free(&m);
}

static void test_free_zeroed(void **state)
{
	struct smp_mime m;
	(void)state;
	memset(&m, 0, sizeof(m));
	smp_mime_free(&m);
	assert_null(m.message);
	assert_null(m.leaves);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_end),
		cmocka_unit_test(test_header_raw_first),
		cmocka_unit_test(test_header_raw_folded),
		cmocka_unit_test(test_header_raw_crlf),
		cmocka_unit_test(test_header_raw_case),
		cmocka_unit_test(test_header_raw_absent),
		cmocka_unit_test(test_header_raw_in_body),
		cmocka_unit_test(test_header_raw_capped),
		cmocka_unit_test(test_prescan_ok),
		cmocka_unit_test(test_prescan_ct_too_long),
		cmocka_unit_test(test_prescan_ct_boundary_crlf),
		cmocka_unit_test(test_prescan_ct_continuation),
		cmocka_unit_test(test_prescan_params),
		cmocka_unit_test(test_prescan_space_before_colon),
		cmocka_unit_test(test_prescan_max_parts),
		cmocka_unit_test(test_parse_roles),
		cmocka_unit_test(test_parse_names),
		cmocka_unit_test(test_parse_html_alternative),
		cmocka_unit_test(test_parse_html_not_next_to_text),
		cmocka_unit_test(test_parse_text_parts),
		cmocka_unit_test(test_parse_single_part_text),
		cmocka_unit_test(test_parse_rfc2231),
		cmocka_unit_test(test_parse_content_type_name),
		cmocka_unit_test(test_parse_bad_no_boundary),
		cmocka_unit_test(test_parse_bad_empty_multipart),
		cmocka_unit_test(test_parse_depth),
		cmocka_unit_test(test_parse_max_parts),
		cmocka_unit_test(test_content_decoding),
		cmocka_unit_test(test_content_empty),
		cmocka_unit_test(test_free_zeroed),
	};
	t_filter_from_env();
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
