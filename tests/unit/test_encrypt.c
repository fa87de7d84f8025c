/* test_encrypt.c - unit tests for lib/smp_encrypt.c: PGP/MIME encryption
 * with the real fixture keys in a real SQLite keyring (the only key
 * store), on each crypto engine: one test body, two engines (every test
 * runs as "rnp: NAME" and as "gnupg: NAME", the latter with a GnuPG home
 * in a temporary directory).
 *
 * Checks are independent of libsmp: the result is decrypted by the gpg
 * command line in separate GnuPG homes holding bob's or carol's secret
 * key and by Sequoia's sq with the same secret key, the new message (the
 * edits applied the way an MTA applies milter header changes) is parsed
 * by gmime, and processes are counted by interposing fork(), which gpgme
 * calls once per gpg process it starts (the rnp engine must start none).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "smp_crypto.h"
#include "smp_encrypt.h"
#include "smp_keyring.h"
#include "test_util.h"

#define KEYS FIXTURES_DIR "/keys/"

/* ------------------------------------------------------------------ */
/* Counting gpg processes                                              */

static unsigned long forks;

pid_t fork(void);
pid_t fork(void)
{
	static pid_t (*real_fork)(void);

	if (!real_fork)
		*(void **)&real_fork = dlsym(RTLD_NEXT, "fork");
	forks++;
	return real_fork();
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */


static void spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st;
	(void)f;
	(void)w;
	return remove(p);
}

static void rmrf(const char *dir)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static char *root; /* everything of this run lives below it */

static char *path_in(const char *dir, const char *name)
{
	char *p = malloc(1024);

	assert_non_null(p);
	snprintf(p, 1024, "%s/%s", dir, name);
	return p;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* The primary fingerprint of a fixture key, as gpg --show-keys says. */
static void fpr_of(const char *name, char out[SMP_FPR_MAX])
{
	char cmd[1024], line[4096];
	FILE *p;
	bool pub = false;

	out[0] = '\0';
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s/show' --batch --no-tty --with-colons "
		 "--show-keys '" KEYS "%s.pub.gpg' 2>/dev/null",
		 root, name);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "pub:", 4) == 0) {
			pub = true;
		} else if (pub && !out[0] && strncmp(line, "fpr:", 4) == 0) {
			char *f = line;
			for (int i = 0; i < 9 && f; i++) {
				f = strchr(f, ':');
				if (f)
					f++;
			}
			assert_non_null(f);
			snprintf(out, SMP_FPR_MAX, "%.40s", f);
		}
	}
	pclose(p);
	assert_int_equal(strlen(out), 40);
}

static char FPR_BOB[SMP_FPR_MAX], FPR_CAROL[SMP_FPR_MAX],
	FPR_DAVE[SMP_FPR_MAX], FPR_EXPIRED[SMP_FPR_MAX],
	FPR_FUTURE[SMP_FPR_MAX];

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */

static int group_setup(void **state)
{
	const char *t = getenv("TMPDIR");
	char *show;

	(void)state;
	root = malloc(512);
	assert_non_null(root);
	snprintf(root, 512, "%s/smp-test-enc.XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(root));
	show = path_in(root, "show");
	assert_int_equal(mkdir(show, 0700), 0);
	free(show);
	fpr_of("bob", FPR_BOB);
	fpr_of("carol", FPR_CAROL);
	fpr_of("dave", FPR_DAVE);
	fpr_of("expired", FPR_EXPIRED);
	fpr_of("future2122", FPR_FUTURE);
	/* the recipients' own homes, with their secret keys */
	for (int i = 0; i < 2; i++) {
		const char *who = i ? "carol" : "bob";
		assert_int_equal(sh("mkdir -m 700 '%s/%s' && gpg --homedir "
				    "'%s/%s' --batch --no-tty --quiet --import "
				    "'" KEYS "%s.sec.asc' 2>/dev/null",
				    root, who, root, who, who),
				 0);
	}
	g_mime_init();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sh("gpgconf --homedir '%s/bob' --kill all >/dev/null 2>&1", root);
	sh("gpgconf --homedir '%s/carol' --kill all >/dev/null 2>&1", root);
	rmrf(root);
	free(root);
	return 0;
}

struct env {
	char *dir, *home;
	const char *engine;
	struct smp_crypto *c;
	struct smp_keyring *kr;
};

static bool gnupg(const struct env *e)
{
	return strcmp(e->engine, "gnupg") == 0;
}

static void put_key(struct smp_keyring *kr, const char *name,
		    const char *fpr, const char *addr)
{
	struct smp_key_rec k;
	struct smp_binding b;
	char path[512];

	memset(&k, 0, sizeof(k));
	snprintf(path, sizeof(path), KEYS "%s.pub.gpg", name);
	k.material = slurp(path, &k.material_len);
	snprintf(k.fpr, sizeof(k.fpr), "%s", fpr);
	snprintf(k.algo, sizeof(k.algo), "ed25519");
	k.bits = 255;
	k.created = 1740787200;
	assert_int_equal(smp_keyring_key_put(kr, &k), 0);
	free(k.material);
	memset(&b, 0, sizeof(b));
	b.address = (char *)addr;
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	b.state = SMP_BIND_ACTIVE;
	b.source = SMP_SRC_SMP;
	b.times_seen = 1;
	assert_int_equal(smp_keyring_binding_put(kr, &b), 0);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[512], *db;

	assert_non_null(e);
	e->engine = *state;
	e->dir = path_in(root, "envXXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->home = path_in(e->dir, "gnupg");
	db = path_in(e->dir, "keyring.db");
	if (smp_crypto_open(e->engine, e->home, &e->c, err, sizeof(err)))
		fail_msg("smp_crypto_open %s: %s", e->engine, err);
	if (smp_keyring_open("sqlite", db, &e->kr, err, sizeof(err)))
		fail_msg("smp_keyring_open: %s", err);
	put_key(e->kr, "bob", FPR_BOB, "bob@example.net");
	put_key(e->kr, "carol", FPR_CAROL, "carol@example.com");
	free(db);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	smp_crypto_close(e->c);
	smp_keyring_close(e->kr);
	rmrf(e->dir);
	free(e->dir);
	free(e->home);
	free(e);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* A message: the header fields outside the MIME ones, the MIME fields
 * (which move inside), the body. */
struct msg {
	struct tbuf outer;   /* header fields that stay outside */
	struct tbuf content; /* the Content-* fields, in message order */
	struct tbuf body;
	struct tbuf all;     /* the whole message */
};

static void msg_build(struct msg *m)
{
	m->all.len = 0;
	tb_put(&m->all, m->outer.p, m->outer.len);
	tb_put(&m->all, m->content.p, m->content.len);
	tb_str(&m->all, "\r\n");
	tb_put(&m->all, m->body.p, m->body.len);
}

static void msg_free(struct msg *m)
{
	tb_free(&m->outer);
	tb_free(&m->content);
	tb_free(&m->body);
	tb_free(&m->all);
}

static void std_outer(struct msg *m, const char *subject)
{
	tb_str(&m->outer,
	       "Received: from client.example.org (client [192.0.2.7])\r\n"
	       "\tby mx.example.org (Postfix) with ESMTPS id 4Xy\r\n"
	       "From: Alice Example <alice@example.org>\r\n"
	       "To: Bob Example <bob@example.net>\r\n"
	       "Cc: carol@example.com\r\n");
	tb_printf(&m->outer, "Subject: %s\r\n", subject);
	tb_str(&m->outer,
	       "Date: Fri, 14 Mar 2025 21:04:00 +0000\r\n"
	       "Message-ID: <enc-test-1@example.org>\r\n"
	       "MIME-Version: 1.0\r\n");
}

static void text_message(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	std_outer(m, "Quarterly figures");
	tb_str(&m->content,
	       "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n"
	       "Content-Description: the figures\r\n");
	tb_str(&m->body,
	       "Hello Bob,\r\n"
	       "\r\n"
	       "the numbers are in: 42 =E2=82=AC.\r\n"
	       "From here on, trailing white space stays:   \r\n"
	       ".\r\n"
	       "-- \r\n"
	       "Alice\r\n");
	msg_build(m);
}

static void html_message(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	std_outer(m, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=");
	/* folded, the way a MUA writes it */
	tb_str(&m->content,
	       "Content-Type: multipart/alternative;\r\n"
	       " boundary=\"------------alt0123456789\"\r\n");
	tb_str(&m->body,
	       "This is a multi-part message in MIME format.\r\n"
	       "--------------alt0123456789\r\n"
	       "Content-Type: text/plain; charset=UTF-8\r\n"
	       "Content-Transfer-Encoding: 7bit\r\n"
	       "\r\n"
	       "Hello *Bob*\r\n"
	       "\r\n"
	       "--------------alt0123456789\r\n"
	       "Content-Type: text/html; charset=UTF-8\r\n"
	       "Content-Transfer-Encoding: 7bit\r\n"
	       "\r\n"
	       "<html><body><p>Hello <b>Bob</b></p></body></html>\r\n"
	       "\r\n"
	       "--------------alt0123456789--\r\n");
	msg_build(m);
}

static void attachment_message(struct msg *m, size_t nbytes)
{
	unsigned char *bin = malloc(nbytes);
	uint32_t x = 2463534242u;

	assert_non_null(bin);
	for (size_t i = 0; i < nbytes; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		bin[i] = (unsigned char)x;
	}
	memset(m, 0, sizeof(*m));
	std_outer(m, "The archive");
	tb_str(&m->content,
	       "Content-Type: multipart/mixed; boundary=\"=_mixed_42\"\r\n");
	tb_str(&m->body,
	       "--=_mixed_42\r\n"
	       "Content-Type: text/plain; charset=us-ascii\r\n"
	       "\r\n"
	       "The archive is attached.\r\n"
	       "\r\n"
	       "--=_mixed_42\r\n"
	       "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
	       "Content-Transfer-Encoding: base64\r\n"
	       "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
	       "\r\n");
	t_b64_append(&m->body, bin, nbytes, 76, "\r\n");
	tb_str(&m->body, "\r\n--=_mixed_42--\r\n");
	free(bin);
	msg_build(m);
}

/* ------------------------------------------------------------------ */
/* Checking a result                                                   */

/* The armored PGP MESSAGE inside the new body. */
static void armor_of(const struct smp_encrypted *r, const char **p,
		     size_t *n)
{
	const char *b = memmem(r->body, r->body_len,
			       "\r\n-----BEGIN PGP MESSAGE-----\r\n", 31);
	const char *e;

	assert_non_null(b);
	b += 2;
	e = memmem(b, r->body_len - (size_t)(b - r->body),
		   "\r\n-----END PGP MESSAGE-----\r\n", 29);
	assert_non_null(e);
	*p = b;
	*n = (size_t)(e + 29 - b);
}

/* Decrypts the result's PGP MESSAGE in who's home ("bob", "carol"). */
static unsigned char *decrypt_as(const char *who,
				 const struct smp_encrypted *r, size_t *n)
{
	char *in = path_in(root, "cipher.asc"), *out = path_in(root, "plain");
	const char *a;
	size_t an;
	unsigned char *p;

	armor_of(r, &a, &an);
	spit(in, a, an);
	unlink(out);
	if (sh("gpg --homedir '%s/%s' --batch --no-tty --quiet "
	       "--pinentry-mode loopback --passphrase '' --output '%s' "
	       "--decrypt '%s' 2>/dev/null",
	       root, who, out, in) != 0)
		fail_msg("gpg could not decrypt as %s", who);
	p = slurp(out, n);
	/* and Sequoia reads the same */
	unlink(out);
	if (sh("sq decrypt --recipient-key '" KEYS "%s.sec.asc' "
	       "--output '%s' '%s' 2>/dev/null",
	       who, out, in) != 0)
		fail_msg("sq could not decrypt as %s", who);
	{
		size_t sn;
		unsigned char *sp = slurp(out, &sn);
		assert_int_equal(sn, *n);
		assert_memory_equal(sp, p, sn);
		free(sp);
	}
	free(in);
	free(out);
	return p;
}

/* Does h[0..hl) hold the string lit? */
static bool has(const void *h, size_t hl, const char *lit)
{
	return memmem(h, hl, lit, strlen(lit)) != NULL;
}

/* Asserts a == b (lengths and bytes), printing where they differ. */
static void same_bytes(const void *a, size_t an, const void *b, size_t bn)
{
	const unsigned char *x = a, *y = b;
	size_t i = 0;

	while (i < an && i < bn && x[i] == y[i])
		i++;
	if (i != an || an != bn)
		fail_msg("differ at offset %zu (lengths %zu and %zu)", i, an,
			 bn);
}

/* Applies the edits to the message's header as an MTA does with
 * smfi_chgheader (index: the n-th field of that name, now) and
 * smfi_addheader, and returns the new message with the new body. */
static struct tbuf apply_edits(const char *msg, size_t len,
			       const struct smp_encrypted *r)
{
	struct fld {
		char *name;
		char *raw; /* the whole field, line ends included */
	} f[128];
	size_t nf = 0, p = 0, body = len;
	struct tbuf out = {0};

	while (p < len) {
		const char *nl = memchr(msg + p, '\n', len - p);
		size_t e = nl ? (size_t)(nl - msg) + 1 : len;

		if (e - p <= 2 && (msg[p] == '\r' || msg[p] == '\n')) {
			body = e;
			break;
		}
		if (msg[p] == ' ' || msg[p] == '\t') {
			size_t ol = strlen(f[nf - 1].raw);
			f[nf - 1].raw = realloc(f[nf - 1].raw, ol + e - p + 1);
			memcpy(f[nf - 1].raw + ol, msg + p, e - p);
			f[nf - 1].raw[ol + e - p] = '\0';
		} else {
			const char *c = memchr(msg + p, ':', e - p);
			assert_non_null(c);
			assert_true(nf < 128);
			f[nf].name = strndup(msg + p, (size_t)(c - msg) - p);
			f[nf].raw = strndup(msg + p, e - p);
			nf++;
		}
		p = e;
	}
	for (size_t i = 0; i < r->nedits; i++) {
		const struct smp_hdr_edit *ed = &r->edits[i];
		unsigned seen = 0;
		size_t k;

		if (ed->op == SMP_HDR_ADD) {
			f[nf].name = strdup(ed->name);
			f[nf].raw = malloc(strlen(ed->name) +
					   strlen(ed->value) + 5);
			sprintf(f[nf].raw, "%s: %s\r\n", ed->name, ed->value);
			nf++;
			continue;
		}
		for (k = 0; k < nf; k++)
			if (strcasecmp(f[k].name, ed->name) == 0 &&
			    ++seen == ed->index)
				break;
		if (k == nf)
			fail_msg("edit %zu: no field %s #%u", i, ed->name,
				 ed->index);
		if (ed->op == SMP_HDR_DELETE) {
			free(f[k].name);
			free(f[k].raw);
			memmove(&f[k], &f[k + 1], (nf - k - 1) * sizeof(f[0]));
			nf--;
		} else {
			free(f[k].raw);
			f[k].raw = malloc(strlen(ed->name) +
					  strlen(ed->value) + 5);
			sprintf(f[k].raw, "%s: %s\r\n", ed->name, ed->value);
		}
	}
	for (size_t i = 0; i < nf; i++) {
		tb_str(&out, f[i].raw);
		free(f[i].name);
		free(f[i].raw);
	}
	(void)body;
	tb_str(&out, "\r\n");
	tb_put(&out, r->body, r->body_len);
	return out;
}

/* The new message is RFC 3156 PGP/MIME, as gmime reads it; the header
 * has no Content-* field but the new Content-Type. */
static void check_structure(const struct tbuf *m,
			    const struct smp_encrypted *r)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer((const char *)m->p,
							   m->len);
	GMimeParser *ps = g_mime_parser_new_with_stream(s);
	GMimeMessage *msg = g_mime_parser_construct_message(ps, NULL);
	GMimeObject *top, *p0, *p1;
	GMimeContentType *ct;
	GByteArray *v;
	GMimeStream *vs;
	const char *hend;

	assert_non_null(msg);
	top = g_mime_message_get_mime_part(msg);
	assert_true(GMIME_IS_MULTIPART_ENCRYPTED(top));
	ct = g_mime_object_get_content_type(top);
	assert_string_equal(g_mime_content_type_get_parameter(ct, "protocol"),
			    "application/pgp-encrypted");
	assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(top)), 2);
	p0 = g_mime_multipart_get_part(GMIME_MULTIPART(top), 0);
	p1 = g_mime_multipart_get_part(GMIME_MULTIPART(top), 1);
	assert_true(g_mime_content_type_is_type(
		g_mime_object_get_content_type(p0), "application",
		"pgp-encrypted"));
	assert_true(g_mime_content_type_is_type(
		g_mime_object_get_content_type(p1), "application",
		"octet-stream"));
	vs = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(
		g_mime_part_get_content(GMIME_PART(p0)), vs);
	v = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(vs));
	assert_true(v->len >= 10 && memcmp(v->data, "Version: 1", 10) == 0);
	g_object_unref(vs);
	g_object_unref(msg);
	g_object_unref(ps);
	g_object_unref(s);

	/* header: one Content-Type (ours), no other Content-* field,
	 * MIME-Version once, the marker */
	hend = memmem(m->p, m->len, "\r\n\r\n", 4);
	assert_non_null(hend);
	{
		size_t hl = (size_t)(hend - (const char *)m->p) + 2;
		char *h = strndup((const char *)m->p, hl);
		char *q = h;
		unsigned ctn = 0, mv = 0, mark = 0;

		for (char *line = strtok(q, "\n"); line;
		     line = strtok(NULL, "\n")) {
			if (strncasecmp(line, "Content-", 8) == 0) {
				assert_true(strncasecmp(line, "Content-Type: ",
							14) == 0);
				assert_true(strncmp(line + 14, r->content_type,
						    strlen(r->content_type)) ==
					    0);
				ctn++;
			}
			if (strncasecmp(line, "MIME-Version:", 13) == 0)
				mv++;
			if (strncmp(line, "X-SMP-Encrypted: pgp-mime", 25) == 0)
				mark++;
		}
		assert_int_equal(ctn, 1);
		assert_int_equal(mv, 1);
		assert_int_equal(mark, 1);
		free(h);
	}
	/* 7bit, CRLF, lines under 78 octets */
	for (size_t i = 0, col = 0; i < r->body_len; i++) {
		unsigned char c = (unsigned char)r->body[i];
		assert_true(c < 128 && c != 0);
		if (c == '\n') {
			assert_true(i > 0 && r->body[i - 1] == '\r');
			col = 0;
		} else {
			if (c == '\r')
				assert_true(i + 1 < r->body_len &&
					    r->body[i + 1] == '\n');
			assert_true(++col < 78);
		}
	}
}

/* Encrypts m to fprs, checks the structure, decrypts as each of who[],
 * and checks the decrypted entity is the Content-* fields and the body,
 * byte for byte. */
static void round_trip(struct env *e, struct msg *m, const char *const *fprs,
		       size_t nfprs, const char *const *who, size_t nwho)
{
	struct smp_encrypted r;
	struct tbuf nm, want = {0};
	char err[512] = "";
	int rc;

	rc = smp_encrypt_message(e->c, e->kr, (const char *)m->all.p,
				 m->all.len, fprs, nfprs, NULL, &r, err,
				 sizeof(err));
	if (rc != SMP_ENCRYPT_OK)
		fail_msg("smp_encrypt_message: %s: %s",
			 smp_encrypt_status_name(rc), err);
	assert_non_null(strstr(r.content_type, "multipart/encrypted; "));
	assert_non_null(strstr(r.content_type,
			       "protocol=\"application/pgp-encrypted\""));
	assert_non_null(strstr(r.content_type, r.boundary));
	assert_null(r.subject_replacement);
	assert_false(r.add_mime_version);
	nm = apply_edits((const char *)m->all.p, m->all.len, &r);
	check_structure(&nm, &r);
	/* everything outside but the Content-* fields is unchanged */
	assert_true(nm.len > m->outer.len &&
		    memcmp(nm.p, m->outer.p, m->outer.len) == 0);
	tb_put(&want, m->content.p, m->content.len);
	tb_str(&want, "\r\n");
	tb_put(&want, m->body.p, m->body.len);
	assert_int_equal(r.inner_len, want.len);
	for (size_t i = 0; i < nwho; i++) {
		size_t pn;
		unsigned char *plain = decrypt_as(who[i], &r, &pn);
		same_bytes(plain, pn, want.p, want.len);
		free(plain);
	}
	tb_free(&want);
	tb_free(&nm);
	smp_encrypted_clear(&r);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void test_text_round_trip(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_BOB, FPR_CAROL};
	const char *who[] = {"bob", "carol"};

	text_message(&m);
	round_trip(e, &m, fprs, 2, who, 2);
	msg_free(&m);
}

static void test_html_round_trip(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_BOB};
	const char *who[] = {"bob"};

	html_message(&m);
	round_trip(e, &m, fprs, 1, who, 1);
	msg_free(&m);
}

static void test_attachment_round_trip(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_BOB, FPR_CAROL};
	const char *who[] = {"bob", "carol"};

	attachment_message(&m, 2 * 1024 * 1024);
	assert_true(m.all.len > 2 * 1024 * 1024);
	round_trip(e, &m, fprs, 2, who, 2);
	msg_free(&m);
}

/* Only bob's key: carol cannot read it. */
static void test_only_the_recipients(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_BOB};
	struct smp_encrypted r;
	char err[512], *in, *out;
	const char *a;
	size_t an;

	text_message(&m);
	assert_int_equal(smp_encrypt_message(e->c, e->kr,
					     (const char *)m.all.p, m.all.len,
					     fprs, 1, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_OK);
	in = path_in(root, "cipher2.asc");
	out = path_in(root, "plain2");
	armor_of(&r, &a, &an);
	spit(in, a, an);
	assert_int_not_equal(sh("gpg --homedir '%s/carol' --batch --no-tty "
				"--quiet --pinentry-mode loopback --passphrase "
				"'' --output '%s' --decrypt '%s' 2>/dev/null",
				root, out, in),
			     0);
	free(in);
	free(out);
	smp_encrypted_clear(&r);
	msg_free(&m);
}

/* Folded header values with bare LF (as libmilter hands them), LF-only
 * body: the inner header gets CRLF, the body stays byte for byte. */
static void test_line_ends(void **state)
{
	struct env *e = *state;
	static const char msg[] =
		"From: alice@example.org\n"
		"To: bob@example.net\n"
		"Subject: lf\n"
		"Content-Type: text/plain;\n\tcharset=\"iso-8859-1\"\r\n"
		"Content-Transfer-Encoding: 8bit\n"
		"\n"
		"line one\n"
		"line \xe9two\n";
	static const char want[] =
		"Content-Type: text/plain;\r\n\tcharset=\"iso-8859-1\"\r\n"
		"Content-Transfer-Encoding: 8bit\r\n"
		"\r\n"
		"line one\n"
		"line \xe9two\n";
	const char *fprs[] = {FPR_BOB};
	struct smp_encrypted r;
	char err[512];
	unsigned char *plain;
	size_t pn;

	assert_int_equal(smp_encrypt_message(e->c, e->kr, msg,
					     sizeof(msg) - 1, fprs, 1, NULL,
					     &r, err, sizeof(err)),
			 SMP_ENCRYPT_OK);
	/* no MIME-Version: one is added */
	assert_true(r.add_mime_version);
	plain = decrypt_as("bob", &r, &pn);
	same_bytes(plain, pn, want, sizeof(want) - 1);
	free(plain);
	/* edits: two deletions, then the additions */
	assert_int_equal(r.ndeleted, 2);
	assert_int_equal(r.edits[0].op, SMP_HDR_DELETE);
	assert_string_equal(r.edits[0].name, "Content-Transfer-Encoding");
	assert_int_equal(r.edits[0].index, 1);
	assert_string_equal(r.edits[1].name, "Content-Type");
	assert_int_equal(r.edits[2].op, SMP_HDR_ADD);
	assert_string_equal(r.edits[2].name, "MIME-Version");
	assert_string_equal(r.edits[2].value, "1.0");
	assert_string_equal(r.edits[3].name, "Content-Type");
	assert_string_equal(r.edits[3].value, r.content_type);
	assert_string_equal(r.edits[4].name, "X-SMP-Encrypted");
	assert_string_equal(r.edits[4].value, "pgp-mime");
	assert_int_equal(r.nedits, 5);
	smp_encrypted_clear(&r);
}

/* Several fields of one name: deleted highest index first; a message
 * without a body; a message without Content-Type. */
static void test_edits_order(void **state)
{
	struct env *e = *state;
	static const char msg[] =
		"Content-Type: text/plain\r\n"
		"From: alice@example.org\r\n"
		"Content-ID: <a@x>\r\n"
		"content-type: text/plain; charset=utf-8\r\n"
		"CONTENT-ID: <b@x>\r\n"
		"MIME-Version: 1.0\r\n";
	static const char plain_msg[] = "From: a@example.org\r\n"
					"Subject: no MIME\r\n"
					"\r\n"
					"hi\r\n";
	const char *fprs[] = {FPR_BOB};
	struct smp_encrypted r;
	char err[512];
	struct tbuf nm;
	unsigned char *plain;
	size_t pn;

	assert_int_equal(smp_encrypt_message(e->c, e->kr, msg, sizeof(msg) - 1,
					     fprs, 1, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_OK);
	assert_int_equal(r.ndeleted, 4);
	assert_string_equal(r.edits[0].name, "CONTENT-ID");
	assert_int_equal(r.edits[0].index, 2);
	assert_string_equal(r.edits[1].name, "content-type");
	assert_int_equal(r.edits[1].index, 2);
	assert_string_equal(r.edits[2].name, "Content-ID");
	assert_int_equal(r.edits[2].index, 1);
	assert_string_equal(r.edits[3].name, "Content-Type");
	assert_int_equal(r.edits[3].index, 1);
	assert_false(r.add_mime_version);
	nm = apply_edits(msg, sizeof(msg) - 1, &r);
	check_structure(&nm, &r);
	tb_free(&nm);
	plain = decrypt_as("bob", &r, &pn);
	{
		static const char w[] =
			"Content-Type: text/plain\r\n"
			"Content-ID: <a@x>\r\n"
			"content-type: text/plain; charset=utf-8\r\n"
			"CONTENT-ID: <b@x>\r\n"
			"\r\n";
		same_bytes(plain, pn, w, sizeof(w) - 1);
	}
	free(plain);
	smp_encrypted_clear(&r);

	/* no Content-* field at all: the entity is the empty line + body */
	assert_int_equal(smp_encrypt_message(e->c, e->kr, plain_msg,
					     sizeof(plain_msg) - 1, fprs, 1,
					     NULL, &r, err, sizeof(err)),
			 SMP_ENCRYPT_OK);
	assert_int_equal(r.ndeleted, 0);
	assert_true(r.add_mime_version);
	plain = decrypt_as("bob", &r, &pn);
	same_bytes(plain, pn, "\r\nhi\r\n", 6);
	free(plain);
	smp_encrypted_clear(&r);
}

static void test_protect_subject(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_BOB};
	struct smp_encrypt_opts o;
	struct smp_encrypted r;
	struct tbuf nm, want = {0};
	char err[512];
	unsigned char *plain;
	size_t pn;
	const char *sep;

	html_message(&m);
	smp_encrypt_opts_init(&o);
	o.protect_subject = true;
	assert_int_equal(smp_encrypt_message(e->c, e->kr,
					     (const char *)m.all.p, m.all.len,
					     fprs, 1, &o, &r, err, sizeof(err)),
			 SMP_ENCRYPT_OK);
	assert_non_null(r.subject_replacement);
	assert_string_equal(r.subject_replacement, "...");
	nm = apply_edits((const char *)m.all.p, m.all.len, &r);
	check_structure(&nm, &r);
	/* outside: Subject is "...", the real one is gone */
	assert_true(has(nm.p, nm.len, "\r\nSubject: ...\r\n"));
	assert_false(has(nm.p, nm.len, "Gr=C3=BC"));
	tb_free(&nm);

	plain = decrypt_as("bob", &r, &pn);
	sep = memmem(plain, pn, "\r\n\r\n", 4);
	assert_non_null(sep);
	/* the original Content-Type bytes, then the marker parameter */
	tb_str(&want, "Content-Type: multipart/alternative;\r\n"
		      " boundary=\"------------alt0123456789\""
		      "; protected-headers=\"v1\"\r\n");
	assert_true(pn > want.len && memcmp(plain, want.p, want.len) == 0);
	/* the user-visible fields, verbatim */
	{
		size_t hl = (size_t)(sep - (char *)plain) + 2;
		assert_true(has(plain, hl, "\r\nSubject: =?UTF-8?Q?Gr=C3=BC"
					   "=C3=9Fe?=\r\n"));
		assert_true(has(plain, hl, "\r\nFrom: Alice Example "
					   "<alice@example.org>\r\n"));
		assert_true(has(plain, hl, "\r\nTo: Bob Example "
					   "<bob@example.net>\r\n"));
		assert_true(has(plain, hl, "\r\nMessage-ID: "
					   "<enc-test-1@example.org>\r\n"));
		/* trace fields stay outside only */
		assert_false(has(plain, hl, "Received:"));
		assert_false(has(plain, hl, "MIME-Version:"));
	}
	/* the body, byte for byte */
	same_bytes(sep + 4, pn - (size_t)(sep + 4 - (char *)plain), m.body.p,
		   m.body.len);
	free(plain);
	tb_free(&want);
	smp_encrypted_clear(&r);

	/* without a Content-Type, one is made for the marker */
	{
		static const char msg[] = "From: a@example.org\r\n"
					  "Subject: secret plans\r\n"
					  "\r\n"
					  "hi\r\n";
		static const char w[] =
			"Content-Type: text/plain; charset=us-ascii; "
			"protected-headers=\"v1\"\r\n"
			"From: a@example.org\r\n"
			"Subject: secret plans\r\n"
			"\r\n"
			"hi\r\n";
		assert_int_equal(smp_encrypt_message(e->c, e->kr, msg,
						     sizeof(msg) - 1, fprs, 1,
						     &o, &r, err, sizeof(err)),
				 SMP_ENCRYPT_OK);
		plain = decrypt_as("bob", &r, &pn);
		same_bytes(plain, pn, w, sizeof(w) - 1);
		free(plain);
		smp_encrypted_clear(&r);
	}
	msg_free(&m);
}

/* rnp: no process at all, ever. gnupg: the keys are imported from their
 * keyring material once (one gpg process), then one gpg process per
 * message. */
static void test_processes(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_BOB, FPR_CAROL};
	struct smp_encrypted r;
	char err[512];
	unsigned long before;
	struct stat st;

	text_message(&m);
	before = forks;
	assert_int_equal(smp_encrypt_message(e->c, e->kr,
					     (const char *)m.all.p, m.all.len,
					     fprs, 2, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_OK);
	print_message("%s: first message: %lu processes, gpg_runs %u\n",
		      e->engine, forks - before, r.gpg_runs);
	assert_int_equal(forks - before, r.gpg_runs);
	assert_int_equal(r.gpg_runs, gnupg(e) ? 2 : 0);
	smp_encrypted_clear(&r);

	for (int i = 0; i < 3; i++) {
		before = forks;
		assert_int_equal(smp_encrypt_message(e->c, e->kr,
						     (const char *)m.all.p,
						     m.all.len, fprs, 2, NULL,
						     &r, err, sizeof(err)),
				 SMP_ENCRYPT_OK);
		assert_int_equal(forks - before, gnupg(e) ? 1 : 0);
		assert_int_equal(r.gpg_runs, gnupg(e) ? 1 : 0);
		smp_encrypted_clear(&r);
	}
	/* no GnuPG home is made or needed by rnp */
	if (!gnupg(e))
		assert_int_not_equal(stat(e->home, &st), 0);
	msg_free(&m);
}

/* A key whose material the keyring changed (a merge, say; here carol's
 * record gets the copy with bob's certification, same fingerprint) is
 * read again at the next message; a key the keyring lost is "no key" at
 * the next message, without any process. */
static void test_keyring_is_the_key_store(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_CAROL};
	struct smp_encrypted r;
	char err[512];
	unsigned long before;
	unsigned char *plain;
	size_t pn;
	struct smp_crypto_stats cs;

	text_message(&m);
	assert_int_equal(smp_encrypt_message(e->c, e->kr,
					     (const char *)m.all.p, m.all.len,
					     fprs, 1, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_OK);
	smp_encrypted_clear(&r);
	{
		struct smp_key_rec k;
		size_t n;
		assert_int_equal(smp_keyring_key_get(e->kr, FPR_CAROL, &k), 0);
		free(k.material);
		k.material = slurp(KEYS "carol-certified.pub.gpg", &n);
		k.material_len = n;
		assert_int_equal(smp_keyring_key_put(e->kr, &k), 0);
		smp_key_rec_clear(&k);
	}
	smp_crypto_get_stats(e->c, &cs);
	before = cs.cache_misses;
	assert_int_equal(smp_encrypt_message(e->c, e->kr,
					     (const char *)m.all.p, m.all.len,
					     fprs, 1, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_OK);
	smp_crypto_get_stats(e->c, &cs);
	assert_int_equal(cs.cache_misses, before + 1);
	plain = decrypt_as("carol", &r, &pn);
	free(plain);
	smp_encrypted_clear(&r);

	/* deleted from the keyring: no key, nothing encrypted, no process */
	assert_int_equal(smp_keyring_key_delete(e->kr, FPR_CAROL), 0);
	before = forks;
	assert_int_equal(smp_encrypt_message(e->c, e->kr,
					     (const char *)m.all.p, m.all.len,
					     fprs, 1, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_NO_KEY);
	assert_non_null(strstr(err, FPR_CAROL));
	assert_non_null(strstr(err, "not in the keyring"));
	assert_int_equal(forks - before, 0);
	assert_null(r.body);
	msg_free(&m);
}

/* The fixture key that expires in 2122: rnp encrypts to it (gpg and sq
 * decrypt it with its secret key); gnupg refuses it, saying why. */
static void test_key_expiring_2122(void **state)
{
	struct env *e = *state;
	struct msg m;
	const char *fprs[] = {FPR_FUTURE};
	struct smp_encrypted r;
	char err[512];
	int rc;

	put_key(e->kr, "future2122", FPR_FUTURE, "future@example.org");
	text_message(&m);
	rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
				 m.all.len, fprs, 1, NULL, &r, err,
				 sizeof(err));
	if (gnupg(e)) {
		assert_int_equal(rc, SMP_ENCRYPT_BAD_KEY);
		assert_non_null(strstr(err, FPR_FUTURE));
		assert_non_null(strstr(err, "past 2106"));
		assert_null(r.body);
	} else {
		const char *a;
		size_t an;
		char *in = path_in(e->dir, "future.asc");
		char *out = path_in(e->dir, "future.out");
		char *home = path_in(e->dir, "future-home");

		if (rc != SMP_ENCRYPT_OK)
			fail_msg("%s: %s", smp_encrypt_status_name(rc), err);
		armor_of(&r, &a, &an);
		spit(in, a, an);
		assert_int_equal(sh("sq decrypt --recipient-key '" KEYS
				    "future2122.sec.asc' --output '%s' '%s' "
				    "2>/dev/null",
				    out, in),
				 0);
		assert_int_equal(sh("mkdir -m 700 '%s' && gpg --homedir '%s' "
				    "--batch --quiet --import '" KEYS
				    "future2122.sec.asc' 2>/dev/null && gpg "
				    "--homedir '%s' --batch --no-tty --quiet "
				    "--pinentry-mode loopback --passphrase '' "
				    "--decrypt '%s' >/dev/null 2>&1; rc=$?; "
				    "gpgconf --homedir '%s' --kill all; "
				    "exit $rc",
				    home, home, home, in, home),
				 0);
		smp_encrypted_clear(&r);
		free(in);
		free(out);
		free(home);
	}
	msg_free(&m);
}

static void test_key_errors(void **state)
{
	struct env *e = *state;
	struct msg m;
	struct smp_encrypted r;
	char err[512];
	int rc;

	text_message(&m);
	/* dave's key is not in the keyring */
	{
		const char *fprs[] = {FPR_BOB, FPR_DAVE};
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 2, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_NO_KEY);
		assert_non_null(strstr(err, FPR_DAVE));
		assert_null(strstr(err, FPR_BOB));
		assert_null(r.body);
		assert_int_equal(r.nedits, 0);
	}
	/* without a keyring there is no key */
	{
		const char *fprs[] = {FPR_CAROL};
		rc = smp_encrypt_message(e->c, NULL, (const char *)m.all.p,
					 m.all.len, fprs, 1, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_NO_KEY);
		assert_non_null(strstr(err, FPR_CAROL));
	}
	/* an expired key in the keyring: the engine refuses it, and
	 * nothing is encrypted to the good one either */
	{
		const char *fprs[] = {FPR_BOB, FPR_EXPIRED};
		put_key(e->kr, "expired", FPR_EXPIRED, "expired@example.org");
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 2, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_BAD_KEY);
		assert_non_null(strstr(err, FPR_EXPIRED));
		assert_null(strstr(err, FPR_BOB));
		assert_null(r.body);
	}
	/* the same fingerprint twice (an archive key that is also a
	 * recipient's): encrypted to once */
	{
		const char *fprs[] = {FPR_BOB, FPR_BOB};
		unsigned char *plain;
		size_t pn;
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 2, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_OK);
		plain = decrypt_as("bob", &r, &pn);
		free(plain);
		smp_encrypted_clear(&r);
	}
	/* no engine */
	{
		const char *fprs[] = {FPR_BOB};
		rc = smp_encrypt_message(NULL, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 1, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_ERROR);
	}
	/* not fingerprints, or none */
	{
		const char *fprs[] = {"bob@example.net"};
		const char *fprs2[] = {"0123\nABCD"};
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 1, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_ERROR);
		assert_non_null(strstr(err, "not a fingerprint"));
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs2, 1, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_ERROR);
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 0, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_ERROR);
	}
	/* fingerprints in lower case and with spaces are fine */
	{
		char low[SMP_FPR_MAX + 16];
		const char *fprs[] = {low};
		size_t o = 0;
		for (size_t i = 0; FPR_BOB[i]; i++) {
			if (i && i % 4 == 0)
				low[o++] = ' ';
			low[o++] = (char)(FPR_BOB[i] | 0x20);
		}
		low[o] = '\0';
		rc = smp_encrypt_message(e->c, e->kr, (const char *)m.all.p,
					 m.all.len, fprs, 1, NULL, &r, err,
					 sizeof(err));
		assert_int_equal(rc, SMP_ENCRYPT_OK);
		smp_encrypted_clear(&r);
	}
	msg_free(&m);
}

/* Never re-encrypted, and no gpg process for those. */
static void expect_skip(struct env *e, const char *msg, int want)
{
	const char *fprs[] = {FPR_BOB};
	struct smp_encrypted r;
	char err[512];
	unsigned long before = forks;
	int rc;

	assert_int_equal(smp_encrypt_check(msg, strlen(msg), NULL), want);
	rc = smp_encrypt_message(e->c, e->kr, msg, strlen(msg), fprs, 1,
				 NULL, &r, err, sizeof(err));
	if (rc != want)
		fail_msg("got %s, want %s", smp_encrypt_status_name(rc),
			 smp_encrypt_status_name(want));
	assert_true(smp_encrypt_is_skip(rc));
	assert_null(r.body);
	assert_int_equal(r.gpg_runs, 0);
	assert_int_equal(forks - before, 0);
}

static void test_never_reencrypt(void **state)
{
	struct env *e = *state;

	expect_skip(e,
		    "From: a@example.org\r\n"
		    "Subject: hi\r\n"
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: multipart/encrypted;\r\n"
		    "\tprotocol=\"application/pgp-encrypted\";\r\n"
		    "\tboundary=\"b\"\r\n"
		    "\r\n"
		    "--b\r\n"
		    "Content-Type: application/pgp-encrypted\r\n"
		    "\r\n"
		    "Version: 1\r\n"
		    "--b\r\n"
		    "Content-Type: application/octet-stream\r\n"
		    "\r\n"
		    "-----BEGIN PGP MESSAGE-----\r\n"
		    "\r\n"
		    "hQ==\r\n"
		    "-----END PGP MESSAGE-----\r\n"
		    "--b--\r\n",
		    SMP_ENCRYPT_SKIP_PGP);
	/* case and comments do not hide it */
	expect_skip(e,
		    "Subject: hi\r\n"
		    "Content-Type: (x) Multipart/Encrypted; boundary=b\r\n"
		    "\r\n"
		    "--b--\r\n",
		    SMP_ENCRYPT_SKIP_PGP);
	expect_skip(e,
		    "Subject: hi\r\n"
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
		    " name=smime.p7m\r\n"
		    "Content-Transfer-Encoding: base64\r\n"
		    "\r\n"
		    "MIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n",
		    SMP_ENCRYPT_SKIP_SMIME);
	expect_skip(e,
		    "Subject: hi\r\n"
		    "Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n"
		    "\r\n"
		    "MIAG\r\n",
		    SMP_ENCRYPT_SKIP_SMIME);
	/* inline PGP in a text/plain body */
	expect_skip(e,
		    "From: a@example.org\r\n"
		    "Subject: hi\r\n"
		    "\r\n"
		    "-----BEGIN PGP MESSAGE-----\r\n"
		    "\r\n"
		    "hQEMA1234\r\n"
		    "-----END PGP MESSAGE-----\r\n",
		    SMP_ENCRYPT_SKIP_INLINE);
	/* ... after some text, in the text part of an alternative,
	 * quoted-printable encoded */
	expect_skip(e,
		    "Subject: hi\r\n"
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: multipart/alternative; boundary=\"a\"\r\n"
		    "\r\n"
		    "--a\r\n"
		    "Content-Type: text/plain; charset=us-ascii\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n"
		    "\r\n"
		    "Hi,\r\n"
		    "=2D----BEGIN PGP MESSAGE-----\r\n"
		    "\r\n"
		    "hQEMA1234\r\n"
		    "-----END PGP MESSAGE-----\r\n"
		    "--a\r\n"
		    "Content-Type: text/html\r\n"
		    "\r\n"
		    "<p>x</p>\r\n"
		    "--a--\r\n",
		    SMP_ENCRYPT_SKIP_INLINE);
	/* an SMP message, also RFC 2047 encoded */
	expect_skip(e,
		    "From: a@example.org\r\n"
		    "Subject: Secure Messenger Protocol Message\r\n"
		    "\r\n"
		    "hi\r\n",
		    SMP_ENCRYPT_SKIP_SMP);
	expect_skip(e,
		    "From: a@example.org\r\n"
		    "Subject: =?UTF-8?Q?Secure_Messenger_Protocol_Message?=\r\n"
		    "\r\n"
		    "hi\r\n",
		    SMP_ENCRYPT_SKIP_SMP);
}

/* What looks like it but is not: encrypted. */
static void test_not_skipped(void **state)
{
	struct env *e = *state;
	static const char *const msgs[] = {
		/* a quoted armor line is no inline PGP message */
		"Subject: hi\r\n\r\n> -----BEGIN PGP MESSAGE-----\r\n",
		/* an attached PGP message is an attachment */
		"Subject: hi\r\n"
		"Content-Type: multipart/mixed; boundary=m\r\n"
		"\r\n"
		"--m\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"see attachment\r\n"
		"--m\r\n"
		"Content-Type: text/plain; name=msg.asc\r\n"
		"Content-Disposition: attachment; filename=msg.asc\r\n"
		"\r\n"
		"-----BEGIN PGP MESSAGE-----\r\n"
		"\r\n"
		"hQ==\r\n"
		"-----END PGP MESSAGE-----\r\n"
		"--m--\r\n",
		/* signed is not encrypted */
		"Subject: hi\r\n"
		"Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
		" protocol=\"application/pgp-signature\"; boundary=s\r\n"
		"\r\n"
		"--s\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"signed\r\n"
		"--s\r\n"
		"Content-Type: application/pgp-signature\r\n"
		"\r\n"
		"-----BEGIN PGP SIGNATURE-----\r\n"
		"\r\n"
		"iQ==\r\n"
		"-----END PGP SIGNATURE-----\r\n"
		"--s--\r\n",
		/* a subject that only contains the SMP subject */
		"Subject: Re: Secure Messenger Protocol Message\r\n\r\nx\r\n",
	};
	const char *fprs[] = {FPR_BOB};

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct smp_encrypted r;
		char err[512];
		int rc = smp_encrypt_message(e->c, e->kr, msgs[i],
					     strlen(msgs[i]), fprs, 1, NULL,
					     &r, err, sizeof(err));
		if (rc != SMP_ENCRYPT_OK)
			fail_msg("message %zu: %s %s", i,
				 smp_encrypt_status_name(rc), err);
		smp_encrypted_clear(&r);
	}
}

/* Content-Type fields over smp_mime_prescan's bounds never reach gmime;
 * the raw checks still work and the bytes still go through verbatim. */
static void test_hostile_content_type(void **state)
{
	struct env *e = *state;
	struct tbuf m = {0}, ct = {0}, want = {0};
	const char *fprs[] = {FPR_BOB};
	struct smp_encrypted r;
	char err[512];
	unsigned char *plain;
	size_t pn;

	tb_str(&ct, "Content-Type: text/plain");
	for (int i = 0; i < 200; i++)
		tb_printf(&ct, ";\r\n p%d=\"%0100d\"", i, i);
	tb_str(&ct, "\r\n");
	tb_str(&m, "From: a@example.org\r\nSubject: long\r\n");
	tb_put(&m, ct.p, ct.len);
	tb_str(&m, "\r\nbody\r\n");
	assert_int_equal(smp_encrypt_message(e->c, e->kr, (const char *)m.p,
					     m.len, fprs, 1, NULL, &r, err,
					     sizeof(err)),
			 SMP_ENCRYPT_OK);
	plain = decrypt_as("bob", &r, &pn);
	tb_put(&want, ct.p, ct.len);
	tb_str(&want, "\r\nbody\r\n");
	same_bytes(plain, pn, want.p, want.len);
	free(plain);
	smp_encrypted_clear(&r);

	/* ... and an inline PGP body behind it is still seen */
	m.len = 0;
	tb_str(&m, "Subject: long\r\n");
	tb_put(&m, ct.p, ct.len);
	tb_str(&m, "\r\n-----BEGIN PGP MESSAGE-----\r\n");
	assert_int_equal(smp_encrypt_check((const char *)m.p, m.len, NULL),
			 SMP_ENCRYPT_SKIP_INLINE);
	tb_free(&m);
	tb_free(&ct);
	tb_free(&want);
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(smp_encrypt_status_name(SMP_ENCRYPT_OK), "ok");
	assert_string_equal(smp_encrypt_status_name(SMP_ENCRYPT_SKIP_PGP),
			    "already-pgp");
	assert_string_equal(smp_encrypt_status_name(SMP_ENCRYPT_SKIP_SMIME),
			    "already-smime");
	assert_string_equal(smp_encrypt_status_name(SMP_ENCRYPT_SKIP_INLINE),
			    "inline-pgp");
	assert_string_equal(smp_encrypt_status_name(SMP_ENCRYPT_SKIP_SMP),
			    "smp");
	assert_string_equal(smp_encrypt_status_name(SMP_ENCRYPT_NO_KEY),
			    "no-key");
	assert_false(smp_encrypt_is_skip(SMP_ENCRYPT_OK));
	assert_false(smp_encrypt_is_skip(SMP_ENCRYPT_NO_KEY));
	assert_true(smp_encrypt_is_skip(SMP_ENCRYPT_SKIP_SMP));
}

static const struct {
	const char *name;
	CMUnitTestFunction f;
} engine_tests[] = {
	{"text_round_trip", test_text_round_trip},
	{"html_round_trip", test_html_round_trip},
	{"attachment_round_trip", test_attachment_round_trip},
	{"only_the_recipients", test_only_the_recipients},
	{"line_ends", test_line_ends},
	{"edits_order", test_edits_order},
	{"protect_subject", test_protect_subject},
	{"processes", test_processes},
	{"keyring_is_the_key_store", test_keyring_is_the_key_store},
	{"key_expiring_2122", test_key_expiring_2122},
	{"key_errors", test_key_errors},
	{"never_reencrypt", test_never_reencrypt},
	{"not_skipped", test_not_skipped},
	{"hostile_content_type", test_hostile_content_type},
};

#define N_ENGINE_TESTS (sizeof(engine_tests) / sizeof(engine_tests[0]))

/* One test body, two engines: every engine test runs once as
 * "rnp: NAME" and once as "gnupg: NAME", in one group (one summary). */
int main(void)
{
	static const char *const engines[] = {"rnp", "gnupg"};
	static char names[2 * N_ENGINE_TESTS][64];
	struct CMUnitTest tests[2 * N_ENGINE_TESTS + 1] = {
		[2 * N_ENGINE_TESTS] = cmocka_unit_test(test_status_names),
	};

	for (size_t e = 0; e < 2; e++) {
		for (size_t i = 0; i < N_ENGINE_TESTS; i++) {
			size_t k = e * N_ENGINE_TESTS + i;

			snprintf(names[k], sizeof(names[k]), "%s: %s",
				 engines[e], engine_tests[i].name);
			tests[k].name = names[k];
			tests[k].test_func = engine_tests[i].f;
			tests[k].setup_func = setup;
			tests[k].teardown_func = teardown;
			tests[k].initial_state = (void *)engines[e];
		}
	}
	t_filter_from_env();
	return cmocka_run_group_tests_name("encrypt", tests, group_setup,
					   group_teardown);
}
