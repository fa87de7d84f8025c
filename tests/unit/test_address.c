/* test_address.c - the mail address syntax check and the argument quoting
 * (lib/smp_address.c), and the keyring refusing to bind a key to anything
 * that check refuses. */
#include "test_util.h"

#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include "smp_address.h"
#include "smp_keyring.h"

#define SQLI "a'; DROP TABLE keys;--@x.org"

struct addr_case {
	const char *addr;
	enum smp_address_status want;
};

static const char *status_name(enum smp_address_status st)
{
	static const char *const names[] = {
		"OK", "EMPTY", "TOO_LONG", "CONTROL", "SPACE", "BAD_UTF8", "NO_AT",
		"NO_LOCAL", "BAD_LOCAL", "BAD_QUOTED", "NO_DOMAIN", "BAD_DOMAIN",
		"BAD_LITERAL",
	};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static void expect_status(const char *addr, enum smp_address_status want)
{
	enum smp_address_status got = smp_address_check(addr);
	char q[SMP_QUOTE_ARG_SIZE];

	if (got != want)
		fail_msg("%s: got %s, want %s", smp_quote_arg(q, sizeof(q), addr),
			 status_name(got), status_name(want));
	/* the length-bounded form agrees on a NUL-terminated string */
	if (addr && smp_address_check_mem(addr, strlen(addr)) != got)
		fail_msg("%s: check_mem differs", smp_quote_arg(q, sizeof(q), addr));
}

/* n octets of c, then suffix, in a malloc'd string */
static char *repeat(char c, size_t n, const char *suffix)
{
	size_t sl = strlen(suffix);
	char *s = malloc(n + sl + 1);

	assert_non_null(s);
	memset(s, c, n);
	memcpy(s + n, suffix, sl + 1);
	return s;
}

/* ------------------------------------------------------------------ */
/* Accepted                                                            */

static void test_good_addresses(void **state)
{
	static const char *const good[] = {
		"alice@example.org",
		"Alice@Example.ORG",
		"a@b",
		"postmaster@localhost",
		"first.last@sub.example.co.uk",
		"o'reilly@example.com",
		"user+tag@example.org",
		"!#$%&'*+-/=?^_`{|}~@example.org",
		"a.b.c@x-y.example",
		"x@xn--bcher-kva.example",
		"a@1.2.3.4",
		"\"john..doe\"@example.com",
		"\"a@b\"@example.org",
		"\"a;b\"@example.org",
		"\"a\\\"b\"@example.org",
		"\"a\\\\b\"@example.org",
		"J\xc3\xb6rg@example.com",
		"j\xc3\xb6rg@b\xc3\xbc" "cher.example",
		"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.org",
		"\xf0\x9f\x98\x80@example.org",
		"a@[192.0.2.1]",
		"a@[IPv6:2001:db8::1]",
		"a@[ipv6:::1]",
		"a@[IPv6:::ffff:192.0.2.1]",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		expect_status(good[i], SMP_ADDR_OK);
}

/* 254 octets in all; the local part is bounded by that only. */
static void test_lengths(void **state)
{
	char *s, *label;
	(void)state;

	/* exactly 254: a 242-octet local part */
	s = repeat('x', SMP_ADDRESS_LEN_MAX - 12, "@example.org");
	assert_int_equal(strlen(s), 254);
	expect_status(s, SMP_ADDR_OK);
	free(s);
	/* 255 */
	s = repeat('x', SMP_ADDRESS_LEN_MAX - 11, "@example.org");
	expect_status(s, SMP_ADDR_TOO_LONG);
	free(s);
	/* 64 and 65 octets of local part are both addresses */
	s = repeat('l', 64, "@example.org");
	expect_status(s, SMP_ADDR_OK);
	free(s);
	s = repeat('l', 65, "@example.org");
	expect_status(s, SMP_ADDR_OK);
	free(s);
	/* a 100 kB argument, with a control octet in it too */
	s = repeat('x', 100000, "@example.org");
	expect_status(s, SMP_ADDR_TOO_LONG);
	s[50000] = '\x1b';
	expect_status(s, SMP_ADDR_TOO_LONG);
	free(s);
	/* a domain label of 63 octets, and of 64 */
	label = repeat('d', 63, ".org");
	s = malloc(strlen(label) + 3);
	assert_non_null(s);
	snprintf(s, strlen(label) + 3, "a@%s", label);
	expect_status(s, SMP_ADDR_OK);
	free(s);
	free(label);
	label = repeat('d', 64, ".org");
	s = malloc(strlen(label) + 3);
	assert_non_null(s);
	snprintf(s, strlen(label) + 3, "a@%s", label);
	expect_status(s, SMP_ADDR_BAD_DOMAIN);
	free(s);
	free(label);
}

/* smp_address_check reads at most 255 octets: an unterminated string that
 * ends right before an inaccessible page is refused without touching it. */
static void test_bounded_scan(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *m;
	char *s;
	(void)state;

	m = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	s = (char *)m + pg - (SMP_ADDRESS_LEN_MAX + 1);
	memset(s, 'x', SMP_ADDRESS_LEN_MAX + 1); /* no NUL before the guard */
	assert_int_equal(smp_address_check(s), SMP_ADDR_TOO_LONG);
	munmap(m, (size_t)pg * 2);
}

/* ------------------------------------------------------------------ */
/* Refused                                                             */

static void test_bad_addresses(void **state)
{
	static const struct addr_case bad[] = {
		{NULL, SMP_ADDR_EMPTY},
		{"", SMP_ADDR_EMPTY},
		/* the review's cases */
		{SQLI, SMP_ADDR_SPACE},
		{"a b@x.org", SMP_ADDR_SPACE},
		{"a;b@x.org", SMP_ADDR_BAD_LOCAL},
		{"a'b;@x.org", SMP_ADDR_BAD_LOCAL},
		{"a@x;y.org", SMP_ADDR_BAD_DOMAIN},
		{"a\x01@x.org", SMP_ADDR_CONTROL},
		{"xyz", SMP_ADDR_NO_AT},
		/* white space and controls anywhere, quoted or not */
		{" a@x.org", SMP_ADDR_SPACE},
		{"a@x.org ", SMP_ADDR_SPACE},
		{"\"a b\"@x.org", SMP_ADDR_SPACE},
		{"\"a\\ b\"@x.org", SMP_ADDR_SPACE},
		{"a\tb@x.org", SMP_ADDR_CONTROL},
		{"\"a\tb\"@x.org", SMP_ADDR_CONTROL},
		{"a\x1b[31m@x.org", SMP_ADDR_CONTROL},
		{"a\x7f@x.org", SMP_ADDR_CONTROL},
		{"alice@example.org\n", SMP_ADDR_CONTROL},
		{"al\r\nice@example.org", SMP_ADDR_CONTROL},
		{"a@exa\x08mple.org", SMP_ADDR_CONTROL},
		/* Unicode: C1, spaces, invisible and bidi characters */
		{"a\xc2\x85@x.org", SMP_ADDR_CONTROL},         /* NEL */
		{"a\xc2\x9b" "2J@x.org", SMP_ADDR_CONTROL},    /* CSI */
		{"a\xc2\xa0" "b@x.org", SMP_ADDR_SPACE},       /* NBSP */
		{"a\xe3\x80\x80" "b@x.org", SMP_ADDR_SPACE},   /* ideographic */
		{"a\xe2\x80\xa8" "b@x.org", SMP_ADDR_SPACE},   /* line separator */
		{"a\xe2\x80\x8b" "b@x.org", SMP_ADDR_CONTROL}, /* zero width */
		{"a\xe2\x80\xae" "b@x.org", SMP_ADDR_CONTROL}, /* RLO */
		{"a\xe2\x81\xa6" "b@x.org", SMP_ADDR_CONTROL}, /* LRI */
		{"\xef\xbb\xbf" "a@x.org", SMP_ADDR_CONTROL},  /* BOM */
		{"a\xc2\xad" "b@x.org", SMP_ADDR_CONTROL},     /* soft hyphen */
		{"a@x\xe2\x80\x8d.org", SMP_ADDR_CONTROL},     /* ZWJ in domain */
		{"a\xf3\xa0\x80\x81@x.org", SMP_ADDR_CONTROL}, /* tag */
		/* not UTF-8 */
		{"\xff" "alice@example.org", SMP_ADDR_BAD_UTF8},
		{"\xc0\xaf" "alice@example.org", SMP_ADDR_BAD_UTF8},
		{"\xed\xa0\x80" "a@example.org", SMP_ADDR_BAD_UTF8},
		{"\xf4\x90\x80\x80" "a@example.org", SMP_ADDR_BAD_UTF8},
		{"alice@example.\xc3", SMP_ADDR_BAD_UTF8},
		{"a\x80@x.org", SMP_ADDR_BAD_UTF8},
		/* structure */
		{"alice", SMP_ADDR_NO_AT},
		{"@example.org", SMP_ADDR_NO_LOCAL},
		{"alice@", SMP_ADDR_NO_DOMAIN},
		{"a@b@example.org", SMP_ADDR_BAD_DOMAIN},
		{".a@x.org", SMP_ADDR_BAD_LOCAL},
		{"a.@x.org", SMP_ADDR_BAD_LOCAL},
		{"a..b@x.org", SMP_ADDR_BAD_LOCAL},
		{"<a@x.org>", SMP_ADDR_BAD_LOCAL},
		{"a@x.org>", SMP_ADDR_BAD_DOMAIN},
		{"a(comment)@x.org", SMP_ADDR_BAD_LOCAL},
		{"a,b@x.org", SMP_ADDR_BAD_LOCAL},
		{"a\"b@x.org", SMP_ADDR_BAD_LOCAL},
		{"a\\b@x.org", SMP_ADDR_BAD_LOCAL},
		{"@route,@x:a@x.org", SMP_ADDR_NO_LOCAL},
		{"a:b@x.org", SMP_ADDR_BAD_LOCAL},
		/* quoted local parts */
		{"\"\"@x.org", SMP_ADDR_BAD_QUOTED},
		{"\"abc@x.org", SMP_ADDR_BAD_QUOTED},
		{"\"a\"b@x.org", SMP_ADDR_BAD_QUOTED},
		{"\"a\"\"b\"@x.org", SMP_ADDR_BAD_QUOTED},
		{"\"a\\\"@x.org", SMP_ADDR_BAD_QUOTED},
		{"\"a\\\xc3\xb6\"@x.org", SMP_ADDR_BAD_QUOTED},
		{"\"a@b\"", SMP_ADDR_BAD_QUOTED},
		/* domains */
		{"a@-x.org", SMP_ADDR_BAD_DOMAIN},
		{"a@x-.org", SMP_ADDR_BAD_DOMAIN},
		{"a@x..org", SMP_ADDR_BAD_DOMAIN},
		{"a@x.org.", SMP_ADDR_BAD_DOMAIN},
		{"a@.x.org", SMP_ADDR_BAD_DOMAIN},
		{"a@x_y.org", SMP_ADDR_BAD_DOMAIN},
		{"a@x'.org", SMP_ADDR_BAD_DOMAIN},
		{"a@x/y", SMP_ADDR_BAD_DOMAIN},
		{"a@\"x\".org", SMP_ADDR_BAD_DOMAIN},
		/* address literals */
		{"a@[1.2.3]", SMP_ADDR_BAD_LITERAL},
		{"a@[256.1.1.1]", SMP_ADDR_BAD_LITERAL},
		{"a@[2001:db8::1]", SMP_ADDR_BAD_LITERAL},
		{"a@[IPv6:zz::1]", SMP_ADDR_BAD_LITERAL},
		{"a@[IPv6:192.0.2.1]", SMP_ADDR_BAD_LITERAL},
		{"a@[tag:content]", SMP_ADDR_BAD_LITERAL},
		{"a@[192.0.2.1", SMP_ADDR_BAD_LITERAL},
		{"a@[]", SMP_ADDR_BAD_LITERAL},
		{"a@[", SMP_ADDR_BAD_LITERAL},
		{"a@[192.0.2.1]x", SMP_ADDR_BAD_LITERAL},
		{"a@[IPv6:2001:db8::1%eth0]", SMP_ADDR_BAD_LITERAL},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_status(bad[i].addr, bad[i].want);
}

/* A NUL inside the length-bounded form is a control character. */
static void test_check_mem(void **state)
{
	(void)state;
	assert_int_equal(smp_address_check_mem("a\0b@x.org", 9), SMP_ADDR_CONTROL);
	assert_int_equal(smp_address_check_mem("a@x.org\0", 8), SMP_ADDR_CONTROL);
	/* only len octets count: the rest of the string is not read */
	assert_int_equal(smp_address_check_mem("a@x.org junk", 7), SMP_ADDR_OK);
	assert_int_equal(smp_address_check_mem("a@x.org", 0), SMP_ADDR_EMPTY);
	assert_int_equal(smp_address_check_mem(NULL, 5), SMP_ADDR_EMPTY);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(smp_address_strerror(SMP_ADDR_OK), "");
	for (int s = SMP_ADDR_EMPTY; s <= SMP_ADDR_BAD_LITERAL; s++) {
		const char *m = smp_address_strerror((enum smp_address_status)s);
		assert_non_null(m);
		assert_true(strlen(m) > 5);
	}
	assert_string_equal(smp_address_strerror(SMP_ADDR_SPACE), "it holds white space");
	assert_non_null(smp_address_strerror((enum smp_address_status)99));
}

/* Whatever the check accepts, the keyring's normalisation takes, and its
 * result passes again. */
static void test_normalize_agrees(void **state)
{
	static const char *const good[] = {
		"Alice@Example.ORG", "\"john..doe\"@Example.COM",
		"J\xc3\xb6rg@B\xc3\x9c" "CHER.Example", "a@[IPv6:2001:DB8::1]",
	};
	char *n;
	(void)state;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(smp_address_check(good[i]), SMP_ADDR_OK);
		n = smp_address_normalize(good[i]);
		assert_non_null(n);
		assert_int_equal(smp_address_check(n), SMP_ADDR_OK);
		free(n);
	}
	n = smp_address_normalize("Alice@Example.ORG");
	assert_string_equal(n, "Alice@example.org");
	free(n);
}

/* ------------------------------------------------------------------ */
/* Quoting                                                             */

static void expect_quote(const char *arg, const char *want)
{
	char buf[SMP_QUOTE_ARG_SIZE];

	assert_ptr_equal(smp_quote_arg(buf, sizeof(buf), arg), buf);
	assert_string_equal(buf, want);
}

static void test_quote(void **state)
{
	char buf[SMP_QUOTE_ARG_SIZE], want[SMP_QUOTE_ARG_SIZE];
	char *big;
	(void)state;

	expect_quote("abc", "'abc'");
	expect_quote("", "''");
	expect_quote(NULL, "(none)");
	expect_quote(SQLI, "'a\\'; DROP TABLE keys;--@x.org'");
	expect_quote("back\\slash", "'back\\\\slash'");
	expect_quote("a\x01" "b", "'a\\x01b'");
	expect_quote("\x1b[2J\r\n\x7f", "'\\x1b[2J\\x0d\\x0a\\x7f'");
	expect_quote("J\xc3\xb6rg", "'J\\xc3\\xb6rg'");
	expect_quote("\xc2\x9b" "31m", "'\\xc2\\x9b31m'");
	/* with a NUL, by length */
	assert_string_equal(smp_quote_mem(buf, sizeof(buf), "a\0b", 3), "'a\\x00b'");

	/* 80 octets shown, then the length */
	big = repeat('x', 102400, "");
	smp_quote_arg(buf, sizeof(buf), big);
	snprintf(want, sizeof(want), "'%.80s'... (102400 octets)", big);
	assert_string_equal(buf, want);
	free(big);
	big = repeat('x', 80, "");
	smp_quote_arg(buf, sizeof(buf), big);
	assert_int_equal(strlen(buf), 82); /* exactly 80: nothing cut */
	free(big);

	/* the worst case fits the documented size */
	big = repeat('\x01', 1000, "");
	smp_quote_arg(buf, sizeof(buf), big);
	assert_int_equal(strncmp(buf + 1 + 80 * 4, "'... (1000 octets)", 18), 0);
	assert_true(strlen(buf) < SMP_QUOTE_ARG_SIZE);
	free(big);

	/* a small buffer: cut, terminated */
	smp_quote_arg(buf, 5, "abcdef");
	assert_string_equal(buf, "'abc");
	assert_ptr_equal(smp_quote_arg(NULL, 0, "x"), NULL);
}

static void expect_field(const char *text, const char *want)
{
	char *e = smp_escape_field(text);

	assert_non_null(e);
	assert_string_equal(e, want);
	free(e);
}

/* A stored Message-ID for a text output field: printable ASCII as it is
 * but space and backslash, everything else \xNN, nothing cut. */
static void test_escape_field(void **state)
{
	char *big, *e;
	(void)state;

	expect_field("<m1.x+y=z_%{}@mail.example>", "<m1.x+y=z_%{}@mail.example>");
	expect_field("'\"!~", "'\"!~");
	expect_field("", "");
	expect_field("a b\tc", "a\\x20b\\x09c");
	expect_field("back\\slash", "back\\\\slash");
	expect_field("\x1b]0;pwned\x07<x@y>\x1b[2J\r\n\x7f",
		     "\\x1b]0;pwned\\x07<x@y>\\x1b[2J\\x0d\\x0a\\x7f");
	expect_field("J\xc3\xb6rg\xc2\x9b", "J\\xc3\\xb6rg\\xc2\\x9b");
	assert_null(smp_escape_field(NULL));
	/* every octet: printable ASCII, no space, and read back the same */
	big = malloc(256);
	assert_non_null(big);
	for (int i = 1; i < 256; i++)
		big[i - 1] = (char)i;
	big[255] = '\0';
	e = smp_escape_field(big);
	assert_non_null(e);
	for (const char *p = e; *p; p++)
		assert_true(*p > 0x20 && *p < 0x7F);
	{
		char back[256];
		size_t n = 0;
		for (const char *p = e; *p;) {
			if (p[0] == '\\' && p[1] == '\\') {
				back[n++] = '\\';
				p += 2;
			} else if (p[0] == '\\' && p[1] == 'x') {
				unsigned v;
				assert_int_equal(sscanf(p + 2, "%2x", &v), 1);
				back[n++] = (char)v;
				p += 4;
			} else {
				back[n++] = *p++;
			}
		}
		assert_int_equal(n, 255);
		assert_memory_equal(back, big, 255);
	}
	free(e);
	free(big);
	/* long: nothing cut */
	big = repeat('\x01', 5000, "");
	e = smp_escape_field(big);
	assert_int_equal(strlen(e), 4 * 5000);
	free(e);
	free(big);
}

/* Every octet value comes out as printable ASCII. */
static void test_quote_every_octet(void **state)
{
	char in[256], buf[4 * 256 + 64];
	(void)state;

	for (int i = 0; i < 256; i++) {
		in[0] = (char)i;
		smp_quote_mem(buf, sizeof(buf), in, 1);
		for (const char *p = buf; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7F);
		if (i >= 0x20 && i < 0x7F && i != '\'' && i != '\\')
			assert_int_equal(strlen(buf), 3);
		else if (i == '\'' || i == '\\')
			assert_int_equal(strlen(buf), 4);
		else
			assert_int_equal(strlen(buf), 6);
	}
}

/* ------------------------------------------------------------------ */
/* The keyring stores no binding for a non-address                     */

struct kfix {
	char dir[64];
	char path[128];
	struct smp_keyring *kr;
};

static int kr_setup(void **state)
{
	struct kfix *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char err[512];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/addr.XXXXXX",
		 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/keyring.db", f->dir);
	if (smp_keyring_open("sqlite", f->path, &f->kr, err, sizeof(err)) != 0) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int kr_teardown(void **state)
{
	struct kfix *f = *state;
	DIR *d;
	struct dirent *de;
	char p[512];

	smp_keyring_close(f->kr);
	d = opendir(f->dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int put_binding(struct smp_keyring *kr, const char *addr, const char *fpr)
{
	struct smp_binding b;

	memset(&b, 0, sizeof(b));
	b.address = (char *)addr;
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	b.state = SMP_BIND_PINNED;
	b.source = SMP_SRC_ADMIN;
	b.times_seen = 1;
	return smp_keyring_binding_put(kr, &b);
}

static void test_keyring_refuses(void **state)
{
	static const char fpr[] = "5B640B8004FC81ABF3007D8A927A7BAB74DF034D";
	static unsigned char mat[8] = {0x99, 0, 1, 2, 3, 4, 5, 6};
	struct kfix *f = *state;
	struct smp_key_rec k;
	struct smp_binding *l = NULL;
	size_t n = 0;
	const char *msg;
	char *long_local = repeat('l', 65, "@example.org");
	char *too_long = repeat('x', 300, "@example.org");

	memset(&k, 0, sizeof(k));
	snprintf(k.fpr, sizeof(k.fpr), "%s", fpr);
	k.material = mat;
	k.material_len = sizeof(mat);
	snprintf(k.algo, sizeof(k.algo), "ed25519");
	k.bits = 255;
	k.created = 1700000000;
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);

	/* normalisation takes these; the syntax check does not */
	assert_int_equal(put_binding(f->kr, SQLI, fpr), -1);
	msg = smp_keyring_errmsg(f->kr);
	assert_non_null(strstr(msg, "not a mail address: it holds white space"));
	assert_non_null(strstr(msg, "'a\\'; DROP TABLE keys;--@x.org'"));
	assert_int_equal(put_binding(f->kr, "a;b@x.org", fpr), -1);
	assert_int_equal(put_binding(f->kr, "\"john doe\"@example.org", fpr), -1);
	assert_int_equal(put_binding(f->kr, too_long, fpr), -1);
	assert_non_null(strstr(smp_keyring_errmsg(f->kr), "... (312 octets)"));
	/* and normalisation already refused these */
	assert_int_equal(put_binding(f->kr, "a\x1b@x.org", fpr), -1);
	assert_int_equal(put_binding(f->kr, "xyz", fpr), -1);
	assert_int_equal(smp_keyring_bindings_list(f->kr, -1, &l, &n), 0);
	assert_int_equal(n, 0);

	/* addresses are stored, <> and domain case normalised */
	assert_int_equal(put_binding(f->kr, "<Alice@Example.ORG>", fpr), 0);
	assert_int_equal(put_binding(f->kr, long_local, fpr), 0);
	assert_int_equal(put_binding(f->kr, "\"john..doe\"@example.org", fpr), 0);
	assert_int_equal(smp_keyring_bindings_list(f->kr, -1, &l, &n), 0);
	assert_int_equal(n, 3);
	smp_bindings_free(l, n);
	l = NULL;
	assert_int_equal(smp_keyring_bindings_for(f->kr, "Alice@example.org", &l, &n), 0);
	assert_int_equal(n, 1);
	smp_bindings_free(l, n);
	free(long_local);
	free(too_long);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_addresses),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_bounded_scan),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_check_mem),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_normalize_agrees),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_quote_every_octet),
		cmocka_unit_test(test_escape_field),
		cmocka_unit_test_setup_teardown(test_keyring_refuses, kr_setup, kr_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
