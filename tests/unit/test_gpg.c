/* test_gpg.c - unit tests for lib/smp_gpg.c with the real fixture keys
 * (fixtures/make-fixtures.sh), a real GnuPG home in a temporary directory
 * and a real SQLite keyring.
 *
 * Expected values come from gpg itself (gpg --show-keys in a separate
 * throwaway home) and from a small packet walker written here, never from
 * the library under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smp_armor.h"
#include "smp_gpg.h"
#include "smp_keyring.h"
#include "test_util.h"

#define KEYS FIXTURES_DIR "/keys/"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */


/* fixtures/keys/NAME.pub.gpg */
static unsigned char *pub(const char *name, size_t *n)
{
	char path[512];
	snprintf(path, sizeof(path), KEYS "%s.pub.gpg", name);
	return slurp(path, n);
}

/* fixtures/keys/NAME.sec.asc, dearmored */
static unsigned char *sec(const char *name, size_t *n)
{
	char path[512];
	size_t tn;
	unsigned char *t;
	struct smp_armor a;

	snprintf(path, sizeof(path), KEYS "%s.sec.asc", name);
	t = slurp(path, &tn);
	assert_int_equal(smp_armor_decode((const char *)t, tn, 1 << 20, &a),
			 SMP_ARMOR_OK);
	free(t);
	*n = a.len;
	return a.data;
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

static char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p = malloc(512);

	assert_non_null(p);
	snprintf(p, 512, "%s/smp-test-gpg.XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(p));
	return p;
}

/* What gpg --show-keys says about a key file (independent of libsmp). */
struct shown {
	char fpr[41];
	char keyid[17];
	char algo_field[8];   /* pub field 4 (algorithm number) */
	unsigned bits;
	long created, expires;
	char validity;        /* pub field 2 */
	unsigned nuids, nsubs;
	char uid[4][1024];
	char subid[4][17];
	char subcap[4][16];
};

static char *show_home;

static void gpg_show(const char *file, struct shown *s)
{
	char cmd[1024], line[4096];
	FILE *p;
	bool in_pub = false;

	memset(s, 0, sizeof(*s));
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s' --batch --no-tty --with-colons "
		 "--show-keys '%s' 2>/dev/null",
		 show_home, file);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char *f[21] = {0}, *q = line;
		int nf = 0;

		line[strcspn(line, "\n")] = '\0';
		while (nf < 21) {
			f[nf++] = q;
			q = strchr(q, ':');
			if (!q)
				break;
			*q++ = '\0';
		}
		if (strcmp(f[0], "pub") == 0 && !s->fpr[0]) {
			in_pub = true;
			s->validity = f[1][0];
			s->bits = (unsigned)atoi(f[2]);
			snprintf(s->algo_field, sizeof(s->algo_field), "%s",
				 f[3]);
			snprintf(s->keyid, sizeof(s->keyid), "%s", f[4]);
			s->created = atol(f[5]);
			s->expires = f[6] && *f[6] ? atol(f[6]) : 0;
		} else if (strcmp(f[0], "fpr") == 0 && in_pub && !s->fpr[0]) {
			snprintf(s->fpr, sizeof(s->fpr), "%s", f[9]);
		} else if (strcmp(f[0], "uid") == 0 && in_pub &&
			   s->nuids < 4 && nf > 9) {
			snprintf(s->uid[s->nuids++], sizeof(s->uid[0]), "%s",
				 f[9]);
		} else if (strcmp(f[0], "sub") == 0 && in_pub &&
			   s->nsubs < 4) {
			snprintf(s->subid[s->nsubs], 17, "%s", f[4]);
			snprintf(s->subcap[s->nsubs++], 16, "%s", f[11]);
		} else if (strcmp(f[0], "pub") == 0) {
			in_pub = false;
		}
	}
	pclose(p);
	assert_int_equal(strlen(s->fpr), 40);
}

static void show_pub(const char *name, struct shown *s)
{
	char path[512];
	snprintf(path, sizeof(path), KEYS "%s.pub.gpg", name);
	gpg_show(path, s);
}

/* An independent OpenPGP packet walker: tags, bodies, signature issuers. */
struct tpkt {
	unsigned tag;
	const unsigned char *body;
	size_t len;
};

static size_t walk(const unsigned char *d, size_t n, struct tpkt *out,
		   size_t max)
{
	size_t off = 0, k = 0;

	while (off < n) {
		unsigned c = d[off++], tag;
		size_t len;

		assert_true(c & 0x80);
		if (c & 0x40) {
			unsigned l0;
			tag = c & 0x3F;
			l0 = d[off++];
			if (l0 < 192) {
				len = l0;
			} else if (l0 < 224) {
				len = ((size_t)(l0 - 192) << 8) + d[off++] + 192;
			} else {
				assert_int_equal(l0, 255);
				len = (size_t)d[off] << 24 | (size_t)d[off + 1] << 16 |
				      (size_t)d[off + 2] << 8 | d[off + 3];
				off += 4;
			}
		} else {
			unsigned lt = c & 3;
			tag = (c >> 2) & 15;
			assert_true(lt < 3);
			len = 0;
			for (unsigned i = 0; i < (1u << lt); i++)
				len = len << 8 | d[off++];
		}
		assert_true(off + len <= n);
		assert_true(k < max);
		out[k].tag = tag;
		out[k].body = d + off;
		out[k].len = len;
		k++;
		off += len;
	}
	return k;
}

/* Issuer key ID of a v4 signature (subpacket 16, or the last 8 octets of
 * subpacket 33), upper-case hex; "" when none. */
static void sig_issuer(const struct tpkt *p, char out[17])
{
	const unsigned char *b = p->body;
	size_t pos = 4;

	out[0] = '\0';
	if (p->len < 6 || b[0] != 4)
		return;
	for (int area = 0; area < 2; area++) {
		size_t alen = (size_t)b[pos] << 8 | b[pos + 1], end;
		pos += 2;
		end = pos + alen;
		while (pos < end) {
			size_t sl = b[pos++];
			unsigned type;
			if (sl >= 192 && sl < 255) {
				sl = ((sl - 192) << 8) + b[pos++] + 192;
			} else if (sl == 255) {
				sl = (size_t)b[pos] << 24 | (size_t)b[pos + 1] << 16 |
				     (size_t)b[pos + 2] << 8 | b[pos + 3];
				pos += 4;
			}
			type = b[pos] & 0x7F;
			if (type == 16 && sl == 9) {
				for (int i = 0; i < 8; i++)
					sprintf(out + 2 * i, "%02X", b[pos + 1 + i]);
				return;
			}
			if (type == 33 && sl == 22) {
				for (int i = 0; i < 8; i++)
					sprintf(out + 2 * i, "%02X",
						b[pos + 14 + i]);
				return;
			}
			pos += sl;
		}
	}
}

static unsigned count_tag(const struct tpkt *p, size_t n, unsigned tag)
{
	unsigned c = 0;
	for (size_t i = 0; i < n; i++)
		c += p[i].tag == tag;
	return c;
}

static bool has_uid(const struct tpkt *p, size_t n, const char *uid)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].tag == 13 && p[i].len == strlen(uid) &&
		    memcmp(p[i].body, uid, p[i].len) == 0)
			return true;
	return false;
}

/* The keys in a GnuPG home, by gpg itself: count of pub lines; fills
 * fprs (up to max). */
static unsigned home_keys(const char *home, char fprs[][41], unsigned max)
{
	char cmd[1024], line[4096];
	unsigned n = 0;
	bool want = false;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s' --batch --no-tty --with-colons "
		 "--list-keys 2>/dev/null",
		 home);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "pub:", 4) == 0) {
			want = true;
			continue;
		}
		if (want && strncmp(line, "fpr:", 4) == 0) {
			if (n < max)
				snprintf(fprs[n], 41, "%.40s", line + 12);
			n++;
			want = false;
		}
	}
	pclose(p);
	return n;
}

/* The user IDs and signature issuers of one key in a home, by gpg. */
static void home_sigs(const char *home, const char *fpr, char *out,
		      size_t size)
{
	char cmd[1024], line[4096];
	size_t len = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s' --batch --no-tty --with-colons "
		 "--list-sigs '%s' 2>/dev/null",
		 home, fpr);
	p = popen(cmd, "r");
	assert_non_null(p);
	out[0] = '\0';
	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "uid:", 4) && strncmp(line, "sig:", 4))
			continue;
		if (len + strlen(line) + 1 < size) {
			memcpy(out + len, line, strlen(line) + 1);
			len += strlen(line);
		}
	}
	pclose(p);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

struct fx {
	char *dir;
	char home[600];
	struct smp_gpg *g;
};

static int group_setup(void **state)
{
	char *d = tmpdir();
	(void)state;
	show_home = malloc(600);
	snprintf(show_home, 600, "%s/show", d);
	mkdir(show_home, 0700);
	/* the show home is not ours: a plain empty one */
	free(d);
	return 0;
}

static int group_teardown(void **state)
{
	char *slash;
	(void)state;
	slash = strrchr(show_home, '/');
	*slash = '\0';
	rmrf(show_home);
	free(show_home);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	f->dir = tmpdir();
	snprintf(f->home, sizeof(f->home), "%s/gnupg", f->dir);
	if (smp_gpg_open(f->home, &f->g, err, sizeof(err)) != 0)
		fail_msg("smp_gpg_open: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	smp_gpg_close(f->g);
	rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static const struct smp_gpg_key *inspect1(struct fx *f, const char *name,
					  struct smp_gpg_key **keys,
					  size_t *n)
{
	size_t len;
	unsigned char *d = pub(name, &len);

	assert_int_equal(smp_gpg_inspect(f->g, d, len, keys, n), 0);
	free(d);
	assert_int_equal(*n, 1);
	return &(*keys)[0];
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

static void test_open_creates_home(void **state)
{
	struct fx *f = *state;
	struct stat st, st2;
	char path[700], err[512];
	size_t n;
	unsigned char *conf;
	struct smp_gpg *g2;

	assert_int_equal(stat(f->home, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/gpg.conf", f->home);
	conf = slurp(path, &n);
	conf = realloc(conf, n + 1);
	conf[n] = '\0';
	assert_non_null(strstr((char *)conf,
			       "\nimport-options self-sigs-only,import-clean\n"));
	assert_non_null(strstr((char *)conf, "\nno-autostart\n"));
	assert_non_null(strstr((char *)conf, "\ntrust-model always\n"));
	assert_non_null(strstr((char *)conf, "\nno-random-seed-file\n"));
	/* export-minimal is asked for per call (smp_gpg_export_minimal):
	 * smp_gpg_export gets the key as the home holds it */
	assert_null(strstr((char *)conf, "export-options"));
	free(conf);
	snprintf(path, sizeof(path), "%s/trustdb.gpg", f->home);
	assert_int_equal(stat(path, &st), 0);
	assert_string_equal(smp_gpg_home(f->g), f->home);

	/* a second open keeps the same gpg.conf file (not rewritten) */
	snprintf(path, sizeof(path), "%s/gpg.conf", f->home);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smp_gpg_open(f->home, &g2, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	/* an existing home: no gpg process for the trust database */
	assert_int_equal(smp_gpg_ops(g2), 0);
	smp_gpg_close(g2);

	/* a gpg.conf someone edited is put back */
	{
		FILE *w = fopen(path, "w");
		fputs("trust-model pgp\n", w);
		fclose(w);
	}
	assert_int_equal(smp_gpg_open(f->home, &g2, err, sizeof(err)), 0);
	conf = slurp(path, &n);
	assert_true(n > 100);
	free(conf);
	smp_gpg_close(g2);
}

static void test_open_errors(void **state)
{
	struct smp_gpg *g = NULL;
	char err[512];
	struct fx *f = *state;
	char path[700];

	assert_int_equal(smp_gpg_open("/nonexistent-dir/x/y", &g, err,
				      sizeof(err)), -1);
	assert_null(g);
	assert_non_null(strstr(err, "/nonexistent-dir/x/y"));
	snprintf(path, sizeof(path), "%s/gpg.conf", f->home);
	assert_int_equal(smp_gpg_open(path, &g, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a directory"));
	assert_int_equal(smp_gpg_open("", &g, err, sizeof(err)), -1);
}

/* ------------------------------------------------------------------ */
/* Inspection                                                          */

static void test_inspect_alice(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_key *keys;
	size_t n;
	const struct smp_gpg_key *k;
	struct shown s;
	unsigned long ops = smp_gpg_ops(f->g);

	show_pub("alice", &s);
	k = inspect1(f, "alice", &keys, &n);
	assert_int_equal(smp_gpg_ops(f->g), ops + 1);
	assert_string_equal(k->fpr, s.fpr);
	assert_int_equal(k->version, 4);
	assert_string_equal(k->algo, "ed25519");
	assert_int_equal(k->bits, s.bits);
	assert_int_equal(k->created, s.created);
	assert_int_equal(k->created, 1740819600); /* 2025-03-01 09:00 UTC */
	assert_int_equal(k->expires, 0);
	assert_false(k->expired);
	assert_false(k->revoked);
	assert_false(k->secret);
	assert_false(k->invalid);
	assert_true(k->can_encrypt);
	assert_int_equal(k->block, 0);
	assert_int_equal(k->nuids, 1);
	assert_string_equal(k->uids[0].uid, "Alice Example <alice@example.org>");
	assert_string_equal(k->uids[0].email, "alice@example.org");
	assert_int_equal(k->nsubkeys, 2);
	assert_string_equal(k->subkeys[0].keyid, s.keyid);
	assert_string_equal(k->subkeys[0].algo, "ed25519");
	assert_true(k->subkeys[0].can_sign);
	assert_false(k->subkeys[0].can_encrypt);
	assert_string_equal(k->subkeys[1].keyid, s.subid[0]);
	assert_string_equal(k->subkeys[1].algo, "cv25519");
	assert_true(k->subkeys[1].can_encrypt);
	assert_false(k->subkeys[1].can_sign);
	assert_false(k->subkeys[1].expired);
	assert_int_equal(strlen(k->subkeys[1].fpr), 40);
	smp_gpg_keys_free(keys, n);
}

static void test_inspect_algorithms(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_key *keys;
	size_t n;
	const struct smp_gpg_key *k;

	k = inspect1(f, "rsa3072", &keys, &n);
	assert_string_equal(k->algo, "rsa3072");
	assert_int_equal(k->bits, 3072);
	assert_int_equal(k->pubkey_algo, 1);
	assert_string_equal(k->subkeys[1].algo, "rsa3072");
	assert_true(k->subkeys[1].can_encrypt);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "weak1024", &keys, &n);
	assert_string_equal(k->algo, "rsa1024");
	assert_int_equal(k->bits, 1024);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "dsa", &keys, &n);
	assert_string_equal(k->algo, "dsa2048");
	assert_int_equal(k->pubkey_algo, 17);
	assert_string_equal(k->subkeys[1].algo, "elg2048");
	assert_true(k->subkeys[1].can_encrypt);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "elgonly", &keys, &n);
	assert_string_equal(k->algo, "ed25519");
	assert_string_equal(k->subkeys[1].algo, "elg2048");
	smp_gpg_keys_free(keys, n);
}

static void test_inspect_states(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_key *keys;
	size_t n, len;
	const struct smp_gpg_key *k;
	unsigned char *d;
	struct shown s;

	show_pub("expired", &s);
	k = inspect1(f, "expired", &keys, &n);
	assert_true(k->expired);
	assert_int_equal(k->expires, s.expires);
	assert_true(k->expires > 0 && k->expires < 1609459200 + 86400);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "revoked", &keys, &n);
	assert_true(k->revoked);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "revoked-prior", &keys, &n);
	assert_false(k->revoked);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "signonly", &keys, &n);
	assert_false(k->can_encrypt);
	assert_int_equal(k->nsubkeys, 1);
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "manyuid", &keys, &n);
	assert_int_equal(k->nuids, 20);
	smp_gpg_keys_free(keys, n);

	/* a secret key block */
	d = sec("alice", &len);
	assert_int_equal(smp_gpg_inspect(f->g, d, len, &keys, &n), 0);
	assert_int_equal(n, 1);
	assert_true(keys[0].secret);
	smp_gpg_keys_free(keys, n);
	free(d);
}

static void test_inspect_addresses(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_key *keys;
	size_t n;
	const struct smp_gpg_key *k;
	char longaddr[300];
	size_t l = 0;

	k = inspect1(f, "quoted", &keys, &n);
	assert_string_equal(k->uids[0].email, "\"john..doe\"@example.com");
	smp_gpg_keys_free(keys, n);

	k = inspect1(f, "unicode", &keys, &n);
	assert_string_equal(k->uids[0].email, "j\xc3\xb6rg@example.com");
	assert_string_equal(k->uids[0].uid,
			    "J\xc3\xb6rg M\xc3\xbcller <j\xc3\xb6rg@example.com>");
	smp_gpg_keys_free(keys, n);

	for (int i = 1; i <= 9; i++)
		l += (size_t)snprintf(longaddr + l, sizeof(longaddr) - l,
				      "a-very-long-local-part-%02d.", i);
	snprintf(longaddr + l, sizeof(longaddr) - l, "end@example.com");
	assert_int_equal(strchr(longaddr, '@') - longaddr, 237);
	k = inspect1(f, "longlocal", &keys, &n);
	assert_string_equal(k->uids[0].email, longaddr);
	smp_gpg_keys_free(keys, n);

	/* two user IDs: both listed with their emails */
	k = inspect1(f, "dave", &keys, &n);
	assert_int_equal(k->nuids, 2);
	assert_true((strcmp(k->uids[0].email, "dave@example.net") == 0 &&
		     strcmp(k->uids[1].email, "victim@victim.example") == 0) ||
		    (strcmp(k->uids[1].email, "dave@example.net") == 0 &&
		     strcmp(k->uids[0].email, "victim@victim.example") == 0));
	smp_gpg_keys_free(keys, n);
}

static void test_inspect_several_and_garbage(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_key *keys;
	size_t n, la, lb;
	unsigned char *a = pub("alice", &la), *b = pub("bob", &lb);
	struct shown sa, sb;
	unsigned char junk[400];
	char fprs[4][41];

	show_pub("alice", &sa);
	show_pub("bob", &sb);
	a = realloc(a, la + lb);
	memcpy(a + la, b, lb);
	assert_int_equal(smp_gpg_inspect(f->g, a, la + lb, &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].fpr, sa.fpr);
	assert_string_equal(keys[1].fpr, sb.fpr);
	assert_int_equal(keys[0].block, 0);
	assert_int_equal(keys[1].block, 1);
	smp_gpg_keys_free(keys, n);

	/* inspection imports nothing */
	assert_int_equal(home_keys(f->home, fprs, 4), 0);

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	assert_int_equal(smp_gpg_inspect(f->g, junk, sizeof(junk), &keys, &n),
			 0);
	assert_int_equal(n, 0);
	assert_null(keys);
	/* half a key: gpg lists nothing usable from it */
	assert_int_equal(smp_gpg_inspect(f->g, b, lb / 2, &keys, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_true(keys[i].invalid || keys[i].nuids == 0);
	smp_gpg_keys_free(keys, n);
	assert_int_equal(smp_gpg_inspect(f->g, b, 0, &keys, &n), 0);
	assert_int_equal(n, 0);
	free(a);
	free(b);
}

/* A gpg that cannot work (its home gone) is an error, not "no keys". */
static void test_gpg_failure_detected(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_key *keys;
	size_t n, len;
	unsigned char *d = pub("alice", &len), *out;
	size_t outlen;

	rmrf(f->home);
	assert_int_equal(smp_gpg_inspect(f->g, d, len, &keys, &n), -1);
	assert_non_null(strstr(smp_gpg_errmsg(f->g), f->home));
	assert_int_equal(smp_gpg_import(f->g, d, len, NULL), -1);
	assert_int_equal(smp_gpg_import_minimal(f->g, d, len, "00", "a@b.c",
						&out, &outlen), -1);
	free(d);
}

/* ------------------------------------------------------------------ */
/* Keyblock framing                                                    */

static void test_keyblock_split(void **state)
{
	const char *names[] = {"alice", "bob", "dave", "manyuid", "oversized",
			       "rsa3072"};
	unsigned char *all = NULL;
	size_t len = 0, n;
	struct smp_keyblock *kb;
	struct shown s;
	(void)state;

	for (size_t i = 0; i < 6; i++) {
		size_t l;
		unsigned char *d = pub(names[i], &l);
		all = realloc(all, len + l);
		memcpy(all + len, d, l);
		len += l;
		free(d);
	}
	assert_int_equal(smp_keyblock_split(all, len, &kb, &n), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < 6; i++) {
		show_pub(names[i], &s);
		assert_string_equal(kb[i].fpr, s.fpr);
		assert_int_equal(kb[i].version, 4);
		assert_false(kb[i].secret);
	}
	assert_int_equal(kb[0].off, 0);
	assert_int_equal(kb[5].off + kb[5].len, len);
	assert_int_equal(kb[2].nuids, 2);
	assert_int_equal(kb[3].nuids, 20);
	assert_int_equal(kb[4].nattrs, 1);
	assert_int_equal(kb[0].algo, 22); /* EdDSA */
	assert_int_equal(kb[5].algo, 1);  /* RSA */
	free(kb);

	/* broken framing, or not starting with a key */
	assert_int_equal(smp_keyblock_split(all, len - 3, &kb, &n), -1);
	assert_int_equal(errno, EINVAL);
	free(all);
	{
		size_t l;
		unsigned char *d = sec("alice", &l);
		assert_int_equal(smp_keyblock_split(d, l, &kb, &n), 0);
		assert_int_equal(n, 1);
		assert_true(kb[0].secret);
		free(kb);
		free(d);
	}
}

static void test_keyblock_filter(void **state)
{
	size_t len, olen, n;
	unsigned char *d = pub("dave", &len), *o;
	const char *keep[] = {"Dave Example <dave@example.net>"};
	struct tpkt in[64], out[64];
	size_t nin = walk(d, len, in, 64), nout;
	unsigned kept;
	char **uids;
	(void)state;

	assert_int_equal(count_tag(in, nin, 13), 2);
	assert_int_equal(smp_keyblock_filter(d, len, keep, 1, &o, &olen, &kept),
			 0);
	assert_int_equal(kept, 1);
	nout = walk(o, olen, out, 64);
	assert_int_equal(count_tag(out, nout, 13), 1);
	assert_true(has_uid(out, nout, keep[0]));
	assert_false(has_uid(out, nout, "Victim Example <victim@victim.example>"));
	assert_int_equal(count_tag(out, nout, 6), 1);
	assert_int_equal(count_tag(out, nout, 14), count_tag(in, nin, 14));
	/* the victim user ID's signature went with it */
	assert_int_equal(count_tag(out, nout, 2), count_tag(in, nin, 2) - 1);

	assert_int_equal(smp_keyblock_uids(o, olen, &uids, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(uids[0], keep[0]);
	smp_strv_free(uids, n);
	free(o);

	/* nothing to keep: the key without user IDs */
	assert_int_equal(smp_keyblock_filter(d, len, NULL, 0, &o, &olen, &kept),
			 0);
	assert_int_equal(kept, 0);
	nout = walk(o, olen, out, 64);
	assert_int_equal(count_tag(out, nout, 13), 0);
	free(o);
	free(d);

	/* a photo ID (user attribute) is always dropped */
	d = pub("oversized", &len);
	{
		const char *k2[] = {"Big Key <big@example.org>"};
		assert_int_equal(smp_keyblock_filter(d, len, k2, 1, &o, &olen,
						     &kept), 0);
		assert_int_equal(kept, 1);
		assert_true(olen < 4096);
		nout = walk(o, olen, out, 64);
		assert_int_equal(count_tag(out, nout, 17), 0);
		free(o);
	}
	free(d);
}

/* ------------------------------------------------------------------ */
/* Import and minimal export                                           */

static void test_import_minimal_one_uid(void **state)
{
	struct fx *f = *state;
	size_t len, olen, n;
	unsigned char *d = pub("dave", &len), *o;
	struct shown s;
	struct tpkt out[64];
	size_t nout;
	struct smp_gpg_key *keys;
	unsigned long ops = smp_gpg_ops(f->g);
	char sigs[8192];

	show_pub("dave", &s);
	assert_int_equal(smp_gpg_import_minimal(f->g, d, len, s.fpr,
						"Dave@Example.NET", &o, &olen),
			 1); /* the local part is exact: "Dave" is not "dave" */
	assert_int_equal(smp_gpg_import_minimal(f->g, d, len, s.fpr,
						"dave@EXAMPLE.net", &o, &olen),
			 0);
	assert_int_equal(smp_gpg_ops(f->g), ops + 1 + 3);
	nout = walk(o, olen, out, 64);
	assert_int_equal(count_tag(out, nout, 13), 1);
	assert_true(has_uid(out, nout, "Dave Example <dave@example.net>"));
	assert_int_equal(count_tag(out, nout, 14), 1);
	/* gpg reads it back as dave's key with one user ID */
	assert_int_equal(smp_gpg_inspect(f->g, o, olen, &keys, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].fpr, s.fpr);
	assert_int_equal(keys[0].nuids, 1);
	assert_string_equal(keys[0].uids[0].email, "dave@example.net");
	assert_true(keys[0].can_encrypt);
	smp_gpg_keys_free(keys, n);
	/* and the GnuPG home never saw the other user ID */
	home_sigs(f->home, s.fpr, sigs, sizeof(sigs));
	assert_non_null(strstr(sigs, "dave@example.net"));
	assert_null(strstr(sigs, "victim"));
	free(o);

	/* no such address on the key, or no such key */
	assert_int_equal(smp_gpg_import_minimal(f->g, d, len, s.fpr,
						"nobody@example.net", &o,
						&olen), 1);
	assert_int_equal(smp_gpg_import_minimal(f->g, d, len,
						"0123456789ABCDEF0123456789ABCDEF01234567",
						"dave@example.net", &o, &olen),
			 1);
	assert_null(o);
	free(d);
}

/* Third-party signatures never reach the home or the output
 * (CVE-2019-13050). */
static void test_import_minimal_strips_third_party(void **state)
{
	struct fx *f = *state;
	size_t len, olen;
	unsigned char *d = pub("carol-certified", &len), *o;
	struct shown carol, bob;
	struct tpkt in[64], out[64];
	size_t nin, nout;
	bool foreign = false;
	char issuer[17], sigs[8192];

	show_pub("carol-certified", &carol);
	show_pub("bob", &bob);
	nin = walk(d, len, in, 64);
	for (size_t i = 0; i < nin; i++) {
		if (in[i].tag != 2)
			continue;
		sig_issuer(&in[i], issuer);
		if (strcmp(issuer, bob.keyid) == 0)
			foreign = true;
	}
	assert_true(foreign); /* the fixture does carry bob's certification */

	assert_int_equal(smp_gpg_import_minimal(f->g, d, len, carol.fpr,
						"carol@example.com", &o, &olen),
			 0);
	nout = walk(o, olen, out, 64);
	assert_true(count_tag(out, nout, 2) >= 2);
	for (size_t i = 0; i < nout; i++) {
		if (out[i].tag != 2)
			continue;
		sig_issuer(&out[i], issuer);
		assert_string_equal(issuer, carol.keyid);
	}
	free(o);
	home_sigs(f->home, carol.fpr, sigs, sizeof(sigs));
	assert_non_null(strstr(sigs, carol.keyid));
	assert_null(strstr(sigs, bob.keyid));
	free(d);
}

static void test_import_minimal_addresses(void **state)
{
	struct fx *f = *state;
	struct {
		const char *name, *addr, *uid;
	} t[] = {
		{"quoted", "\"john..doe\"@example.com",
		 "John Doe <\"john..doe\"@example.com>"},
		{"unicode", "j\xc3\xb6rg@example.com",
		 "J\xc3\xb6rg M\xc3\xbcller <j\xc3\xb6rg@example.com>"},
	};

	for (size_t i = 0; i < 2; i++) {
		size_t len, olen;
		unsigned char *d = pub(t[i].name, &len), *o;
		struct shown s;
		struct tpkt out[64];
		size_t nout;

		show_pub(t[i].name, &s);
		assert_int_equal(smp_gpg_import_minimal(f->g, d, len, s.fpr,
							t[i].addr, &o, &olen),
				 0);
		nout = walk(o, olen, out, 64);
		assert_int_equal(count_tag(out, nout, 13), 1);
		assert_true(has_uid(out, nout, t[i].uid));
		free(o);
		free(d);
	}
	/* a different letter case in the local part is another address */
	{
		size_t len, olen;
		unsigned char *d = pub("unicode", &len), *o;
		struct shown s;
		show_pub("unicode", &s);
		assert_int_equal(smp_gpg_import_minimal(f->g, d, len, s.fpr,
							"J\xc3\xb6rg@example.com",
							&o, &olen), 1);
		free(d);
	}
}

static void test_export(void **state)
{
	struct fx *f = *state;
	size_t la, lb, olen;
	unsigned char *a = pub("alice", &la), *b = pub("bob", &lb), *o;
	struct smp_gpg_import_counts c;
	struct shown sa, sb;
	const char *both[2];
	struct tpkt out[64];
	size_t nout;

	show_pub("alice", &sa);
	show_pub("bob", &sb);
	both[0] = sa.fpr;
	both[1] = sb.fpr;
	/* nothing there yet */
	assert_int_equal(smp_gpg_export_minimal(f->g, both, 2, &o, &olen), 0);
	assert_null(o);
	assert_int_equal(olen, 0);
	assert_int_equal(smp_gpg_import(f->g, a, la, &c), 0);
	assert_int_equal(c.considered, 1);
	assert_int_equal(c.imported, 1);
	assert_int_equal(smp_gpg_import(f->g, a, la, &c), 0);
	assert_int_equal(c.unchanged, 1);
	assert_int_equal(smp_gpg_import(f->g, b, lb, NULL), 0);
	assert_int_equal(smp_gpg_export_minimal(f->g, both, 2, &o, &olen), 0);
	nout = walk(o, olen, out, 64);
	assert_int_equal(count_tag(out, nout, 6), 2);
	free(o);
	free(a);
	free(b);
	/* the key that expires in 2122 (GnuPG 2.2 reads 1986): the plain
	 * export keeps both of its subkeys, the encryption one included */
	{
		size_t lf;
		unsigned char *fk = pub("future2122", &lf);
		struct shown sf;
		const char *one[1];

		show_pub("future2122", &sf);
		one[0] = sf.fpr;
		assert_int_equal(smp_gpg_import(f->g, fk, lf, NULL), 0);
		assert_int_equal(smp_gpg_export(f->g, one, 1, &o, &olen), 0);
		nout = walk(o, olen, out, 64);
		assert_int_equal(count_tag(out, nout, 6), 1);
		assert_int_equal(count_tag(out, nout, 14), 2);
		assert_int_equal(count_tag(out, nout, 13), 1);
		free(o);
		free(fk);
	}
}

/* ------------------------------------------------------------------ */
/* Rebuild                                                              */

static void put_key(struct smp_keyring *kr, const char *name,
		    const char *addr, struct shown *s)
{
	struct smp_key_rec k;
	struct smp_binding b;
	size_t len;
	unsigned char *d = pub(name, &len);

	show_pub(name, s);
	memset(&k, 0, sizeof(k));
	snprintf(k.fpr, sizeof(k.fpr), "%s", s->fpr);
	k.material = d;
	k.material_len = len;
	snprintf(k.algo, sizeof(k.algo), "ed25519");
	assert_int_equal(smp_keyring_key_put(kr, &k), 0);
	memset(&b, 0, sizeof(b));
	b.address = (char *)addr;
	snprintf(b.fpr, sizeof(b.fpr), "%s", s->fpr);
	b.state = SMP_BIND_ACTIVE;
	assert_int_equal(smp_keyring_binding_put(kr, &b), 0);
	free(d);
}

static void test_rebuild(void **state)
{
	struct fx *f = *state;
	struct smp_keyring *kr;
	char db[700], err[512], fprs[8][41];
	struct shown sa, sb, sc;
	size_t lc, n;
	unsigned char *c = pub("carol", &lc);
	unsigned found = 0;

	snprintf(db, sizeof(db), "%s/keyring.db", f->dir);
	if (smp_keyring_open("sqlite", db, &kr, err, sizeof(err)))
		fail_msg("keyring: %s", err);
	put_key(kr, "alice", "alice@example.org", &sa);
	put_key(kr, "bob", "bob@example.net", &sb);
	/* carol is in the cache only: a rebuild drops her */
	show_pub("carol", &sc);
	assert_int_equal(smp_gpg_import(f->g, c, lc, NULL), 0);
	assert_int_equal(home_keys(f->home, fprs, 8), 1);

	assert_int_equal(smp_gpg_rebuild(f->g, kr, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(home_keys(f->home, fprs, 8), 2);
	for (int i = 0; i < 2; i++)
		found |= (strcmp(fprs[i], sa.fpr) == 0 ? 1u : 0u) |
			 (strcmp(fprs[i], sb.fpr) == 0 ? 2u : 0u);
	assert_int_equal(found, 3);
	/* no scratch directory left behind */
	{
		char cmd[800];
		snprintf(cmd, sizeof(cmd), "ls -d '%s'/rebuild.* 2>/dev/null",
			 f->home);
		FILE *p = popen(cmd, "r");
		char line[700];
		assert_null(fgets(line, sizeof(line), p));
		pclose(p);
	}
	/* an empty keyring gives an empty cache */
	assert_int_equal(smp_keyring_key_delete(kr, sa.fpr), 0);
	assert_int_equal(smp_keyring_key_delete(kr, sb.fpr), 0);
	assert_int_equal(smp_gpg_rebuild(f->g, kr, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(home_keys(f->home, fprs, 8), 0);
	smp_keyring_close(kr);
	free(c);
}

/* A home deleted while open is made again by smp_gpg_check_home (the
 * daemon asks before each message's gpg work); until then operations
 * fail with a sentence naming the home and the cause. */
static void test_home_recreated(void **state)
{
	struct fx *f = *state;
	struct smp_gpg_import_counts c;
	char path[700], want[800];
	struct stat sb;
	size_t len;
	unsigned char *d = pub("alice", &len);
	FILE *fp;

	assert_int_equal(smp_gpg_check_home(f->g), 0);
	rmrf(f->home);
	assert_int_equal(smp_gpg_import(f->g, d, len, &c), -1);
	snprintf(want, sizeof(want), "gpg import failed: the GnuPG home %s is "
		 "gone (No such file or directory)", f->home);
	assert_string_equal(smp_gpg_errmsg(f->g), want);

	assert_int_equal(smp_gpg_check_home(f->g), 1);
	assert_int_equal(stat(f->home, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/gpg.conf", f->home);
	assert_int_equal(stat(path, &sb), 0);
	snprintf(path, sizeof(path), "%s/trustdb.gpg", f->home);
	assert_int_equal(stat(path, &sb), 0);
	/* the same context works again */
	assert_int_equal(smp_gpg_import(f->g, d, len, &c), 0);
	assert_int_equal(c.imported, 1);
	assert_int_equal(smp_gpg_check_home(f->g), 0);

	/* what cannot be made again is an error naming the path */
	rmrf(f->home);
	fp = fopen(f->home, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(smp_gpg_check_home(f->g), -1);
	snprintf(want, sizeof(want), "the GnuPG home %s is not a directory",
		 f->home);
	assert_string_equal(smp_gpg_errmsg(f->g), want);
	rmrf(f->dir);
	assert_int_equal(smp_gpg_check_home(f->g), -1);
	snprintf(want, sizeof(want), "cannot create the GnuPG home %s: No "
		 "such file or directory", f->home);
	assert_string_equal(smp_gpg_errmsg(f->g), want);
	assert_int_equal(smp_gpg_check_home(NULL), -1);
	free(d);
}

/* gpg's own status codes are told in words: a keyring gpg cannot create
 * (here pubring.kbx a dangling symbolic link) is not "status ERROR
 * add_keyblock_resource 33587281". */
static void test_status_in_words(void **state)
{
	struct fx *f = *state;
	char path[700];
	size_t len;
	unsigned char *d = pub("alice", &len);
	const char *m;

	snprintf(path, sizeof(path), "%s/pubring.kbx", f->home);
	unlink(path);
	assert_int_equal(symlink("/nonexistent-smp-test/pubring.kbx", path), 0);
	assert_int_equal(smp_gpg_import(f->g, d, len, NULL), -1);
	m = smp_gpg_errmsg(f->g);
	assert_non_null(strstr(m, f->home));
	assert_non_null(strstr(m, "add_keyblock_resource: No such file or "
				  "directory"));
	if (strstr(m, "status ") || strstr(m, "33587"))
		fail_msg("not in words: %s", m);
	assert_int_equal(smp_gpg_check_home(f->g), 0);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_home, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inspect_alice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inspect_algorithms, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inspect_states, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inspect_addresses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inspect_several_and_garbage,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpg_failure_detected,
						setup, teardown),
		cmocka_unit_test(test_keyblock_split),
		cmocka_unit_test(test_keyblock_filter),
		cmocka_unit_test_setup_teardown(test_import_minimal_one_uid,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_import_minimal_strips_third_party, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_minimal_addresses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_home_recreated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_in_words, setup,
						teardown),
	};

	t_filter_from_env();
	return cmocka_run_group_tests_name("gpg", tests, group_setup,
					   group_teardown);
}
