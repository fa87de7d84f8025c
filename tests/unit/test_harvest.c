/* test_harvest.c - unit tests for lib/smp_harvest*.c: every harvest rule
 * of SPEC.md 4 with the real fixture keys (fixtures/make-fixtures.sh), a
 * real SQLite keyring in a temporary directory and each crypto engine
 * (one test body, two engines: every test runs as "rnp: NAME" and as
 * "gnupg: NAME", the latter with a real GnuPG home). A second group runs
 * the rnp tests again on a PostgreSQL keyring ("rnp on postgresql:
 * NAME", a schema of its own per test on the server test_pg.h provides).
 * Each test asserts the outcome and reason the report gives, what the
 * store then holds (bindings, keys, events) and the crypto work it cost.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <glib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smp_armor.h"
#include "smp_crypto.h"
#include "smp_harvest.h"
#include "smp_keyring.h"
#include "smp_packets.h"
#include "smp_validate.h"
#include "test_pg.h"
#include "test_util.h"

#define KEYS FIXTURES_DIR "/keys/"
#define MSGS FIXTURES_DIR "/messages/"

#define NOW ((int64_t)1742428800)    /* 2025-03-20 00:00 UTC */
#define DAY ((int64_t)86400)
#define DATE1 ((int64_t)1741939200)  /* 2025-03-14 */

/* ------------------------------------------------------------------ */
/* Helpers                                                             */


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

/* The fingerprint and the encryption subkey IDs of a key file, by gpg
 * (independent of libsmp). */
struct shown {
	char fpr[41];
	char enc[4][17];
	unsigned nenc;
};

static char *show_home;

static void show(const char *name, struct shown *s)
{
	char cmd[1024], line[4096];
	FILE *p;
	bool pub = false;

	memset(s, 0, sizeof(*s));
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s' --batch --no-tty --with-colons "
		 "--show-keys '" KEYS "%s.pub.gpg' 2>/dev/null",
		 show_home, name);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char *f[16] = {0}, *q = line;
		int nf = 0;
		while (nf < 16) {
			f[nf++] = q;
			q = strchr(q, ':');
			if (!q)
				break;
			*q++ = '\0';
		}
		if (strcmp(f[0], "pub") == 0)
			pub = true;
		else if (strcmp(f[0], "fpr") == 0 && pub && !s->fpr[0])
			snprintf(s->fpr, sizeof(s->fpr), "%s", f[9]);
		else if (strcmp(f[0], "sub") == 0 && nf > 11 &&
			 strchr(f[11], 'e') && s->nenc < 4)
			snprintf(s->enc[s->nenc++], 17, "%s", f[4]);
	}
	pclose(p);
	assert_int_equal(strlen(s->fpr), 40);
}

static const char *fpr_of(const char *name)
{
	static char buf[8][41];
	static int i;
	struct shown s;

	show(name, &s);
	i = (i + 1) % 8;
	memcpy(buf[i], s.fpr, 41);
	return buf[i];
}

/* A key part as libsmp's validator hands it over. */
static void part_from(struct smp_key_part *p, unsigned char *data, size_t n)
{
	memset(p, 0, sizeof(*p));
	p->name = strdup("public-key-1");
	p->data = data;
	p->size = n;
	p->encoding = SMP_ENC_BINARY;
	switch (smp_packets_check_keyblock(data, n, &p->nkeys)) {
	case SMP_KEYBLOCK_SECRET:
		p->kind = SMP_KEY_SECRET;
		break;
	case SMP_KEYBLOCK_BAD:
		p->kind = SMP_KEY_BAD;
		break;
	default:
		p->kind = SMP_KEY_PUBLIC;
	}
}

static void part_pub(struct smp_key_part *p, const char *name)
{
	char path[512];
	size_t n;
	unsigned char *d;

	snprintf(path, sizeof(path), KEYS "%s.pub.gpg", name);
	d = slurp(path, &n);
	part_from(p, d, n);
}

static void part_sec(struct smp_key_part *p, const char *name)
{
	char path[512];
	size_t n;
	unsigned char *t;
	struct smp_armor a;

	snprintf(path, sizeof(path), KEYS "%s.sec.asc", name);
	t = slurp(path, &n);
	assert_int_equal(smp_armor_decode((const char *)t, n, 1 << 20, &a),
			 SMP_ARMOR_OK);
	free(t);
	part_from(p, a.data, a.len);
}

static void parts_free(struct smp_key_part *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].data);
	}
}

/* The packets of d[0..n) as (tag, body) pairs, whatever the header
 * format; at most max. */
struct pkt {
	unsigned tag;
	const unsigned char *body;
	size_t len;
};

static size_t packets(const unsigned char *d, size_t n, struct pkt *out,
		      size_t max)
{
	size_t off = 0, np = 0;

	while (off < n && np < max) {
		unsigned h = d[off++], tag;
		size_t len = 0;
		if (h & 0x40) {
			unsigned l0 = d[off++];
			tag = h & 0x3F;
			if (l0 < 192)
				len = l0;
			else if (l0 < 224)
				len = ((size_t)(l0 - 192) << 8) + d[off++] + 192;
			else {
				len = (size_t)d[off] << 24 | (size_t)d[off + 1] << 16 |
				      (size_t)d[off + 2] << 8 | d[off + 3];
				off += 4;
			}
		} else {
			tag = (h >> 2) & 15;
			for (unsigned i = 0; i < (1u << (h & 3)); i++)
				len = len << 8 | d[off++];
		}
		assert_true(off + len <= n);
		out[np].tag = tag;
		out[np].body = d + off;
		out[np].len = len;
		np++;
		off += len;
	}
	return np;
}

/* The user ID packets of a key, by the independent walker packets(): how
 * many, and whether one of them is want. */
static unsigned uids_in(const unsigned char *d, size_t n, const char *want,
			bool *found)
{
	size_t max = n / 2 + 1, np;
	struct pkt *p = calloc(max, sizeof(*p)); /* a packet is >= 2 octets */
	unsigned c = 0;

	assert_non_null(p);
	np = packets(d, n, p, max);
	*found = false;
	for (size_t i = 0; i < np; i++) {
		if (p[i].tag != 13)
			continue;
		c++;
		if (want && p[i].len == strlen(want) &&
		    memcmp(p[i].body, want, p[i].len) == 0)
			*found = true;
	}
	free(p);
	return c;
}

/* The same packets, bodies byte for byte (trust packets aside). */
static void same_packets(const unsigned char *a, size_t an,
			 const unsigned char *b, size_t bn)
{
	struct pkt pa[64], pb[64];
	size_t na = packets(a, an, pa, 64), nb = packets(b, bn, pb, 64);
	size_t i = 0, j = 0;

	for (;;) {
		while (i < na && pa[i].tag == 12)
			i++;
		while (j < nb && pb[j].tag == 12)
			j++;
		if (i == na || j == nb)
			break;
		assert_int_equal(pa[i].tag, pb[j].tag);
		assert_int_equal(pa[i].len, pb[j].len);
		assert_memory_equal(pa[i].body, pb[j].body, pa[i].len);
		i++;
		j++;
	}
	assert_int_equal(i, na);
	assert_int_equal(j, nb);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

/* The keyring backend of the running group ("sqlite" or "postgresql"). */
static const char *kr_backend = "sqlite";

static bool on_pg(void)
{
	return strcmp(kr_backend, "postgresql") == 0;
}

struct fx {
	char dir[512], home[600], db[TPG_CONNINFO_MAX + 128], schema[64];
	struct smp_keyring *kr;
	const char *engine;
	struct smp_crypto *c;
	struct smp_harvest_memo *memo;
	struct smp_harvest_config cfg;
	char *skip[2];
	struct smp_limits lim;
	struct smp_harvest_ctx ctx;
	const char *from[2];
	struct smp_harvest_report rep;
	char msgid[64];
	int nmsg;
};

static int group_setup(void **state)
{
	const char *t = getenv("TMPDIR");
	(void)state;
	show_home = malloc(512);
	snprintf(show_home, 512, "%s/smp-test-show.XXXXXX",
		 t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(show_home));
	smp_lib_init();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	rmrf(show_home);
	free(show_home);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *t = getenv("TMPDIR");
	char err[512];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/smp-test-harvest.XXXXXX",
		 t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->home, sizeof(f->home), "%s/gnupg", f->dir);
	/* f->db: the file, or the conninfo of the test's own schema */
	if (on_pg()) {
		if (tpg_schema_new(f->db, sizeof(f->db), f->schema,
				   sizeof(f->schema)) != 0)
			fail_msg("no PostgreSQL server for the test");
	} else {
		snprintf(f->db, sizeof(f->db), "%s/keyring.db", f->dir);
	}
	if (smp_keyring_open(kr_backend, f->db, &f->kr, err, sizeof(err)))
		fail_msg("keyring: %s", err);
	f->engine = *state;
	if (smp_crypto_open(f->engine, f->home, &f->c, err, sizeof(err)))
		fail_msg("crypto engine %s: %s", f->engine, err);
	/* as the daemon has one per pool slot */
	f->memo = smp_harvest_memo_new(0);
	assert_non_null(f->memo);
	smp_harvest_config_init(&f->cfg);
	f->skip[0] = "corp.example";
	f->cfg.skip_domains = f->skip;
	f->cfg.n_skip_domains = 1;
	smp_limits_init(&f->lim);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	smp_harvest_report_clear(&f->rep);
	smp_crypto_close(f->c);
	smp_harvest_memo_free(f->memo);
	smp_keyring_close(f->kr);
	rmrf(f->dir);
	if (f->schema[0])
		tpg_schema_drop(f->schema);
	free(f);
	return 0;
}

/* A message from sender (envelope and the one From), dated date. */
static void msg(struct fx *f, const char *sender, int64_t date)
{
	memset(&f->ctx, 0, sizeof(f->ctx));
	f->ctx.cfg = &f->cfg;
	f->ctx.limits = &f->lim;
	f->ctx.envelope_sender = sender;
	f->from[0] = sender;
	f->ctx.from = f->from;
	f->ctx.nfrom = 1;
	f->ctx.msg_date = date;
	snprintf(f->msgid, sizeof(f->msgid), "<m%d@mail.example>", ++f->nmsg);
	f->ctx.message_id = f->msgid;
	f->ctx.client_addr = "192.0.2.25";
	f->ctx.source = SMP_SRC_SMP;
	f->ctx.now = NOW;
	f->ctx.memo = f->memo;
}

/* Harvests the named public keys (pub) in one message. */
static int harvest_n(struct fx *f, const char *const *names, size_t n)
{
	struct smp_key_part p[8];
	int rc;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		part_pub(&p[i], names[i]);
	smp_harvest_report_clear(&f->rep);
	rc = smp_harvest_message(f->kr, f->c, &f->ctx, p, n, &f->rep);
	parts_free(p, n);
	return rc;
}

static int harvest1(struct fx *f, const char *name)
{
	return harvest_n(f, &name, 1);
}

static void expect_line(struct fx *f, size_t i, const char *fpr,
			enum smp_harvest_outcome o,
			enum smp_harvest_reason r)
{
	const struct smp_harvest_line *l;

	assert_true(i < f->rep.n);
	l = &f->rep.lines[i];
	if (l->outcome != o || l->reason != r)
		fail_msg("line %zu: %s/%s, expected %s/%s", i,
			 smp_harvest_outcome_name(l->outcome),
			 smp_harvest_reason_token(l->reason),
			 smp_harvest_outcome_name(o),
			 smp_harvest_reason_token(r));
	if (fpr)
		assert_string_equal(l->fpr, fpr);
}

static bool gnupg(const struct fx *f)
{
	return strcmp(f->engine, "gnupg") == 0;
}

/* The last harvest cost calls smp_crypto calls: on rnp no gpg process
 * ever; on gnupg at least one per call and none without one. */
static void cost(const struct fx *f, unsigned calls)
{
	if (f->rep.crypto_ops != calls)
		fail_msg("%u crypto calls, expected %u", f->rep.crypto_ops,
			 calls);
	if (!gnupg(f) || calls == 0)
		assert_int_equal(f->rep.gpg_ops, 0);
	else
		assert_true(f->rep.gpg_ops >= calls);
}

/* The one harvest of name from sender must be refused with r. */
static void expect_refused(struct fx *f, const char *name, const char *sender,
			   enum smp_harvest_reason r, const char *fpr)
{
	struct smp_binding *b;
	size_t n;

	msg(f, sender, DATE1);
	assert_int_equal(harvest1(f, name), 0);
	assert_int_equal(f->rep.n, 1);
	expect_line(f, 0, fpr, SMP_HV_REFUSED, r);
	assert_int_equal(f->rep.refused, 1);
	assert_int_equal(f->rep.harvested, 0);
	assert_int_equal(smp_keyring_bindings_for(f->kr, sender, &b, &n), 0);
	assert_int_equal(n, 0);
	if (fpr && *fpr) {
		struct smp_key_rec k;
		assert_int_equal(smp_keyring_key_get(f->kr, fpr, &k), 1);
	}
}

static struct smp_binding *get_binding(struct fx *f, const char *addr,
				       const char *fpr, struct smp_binding *out)
{
	struct smp_binding *b;
	size_t n;
	bool found = false;

	assert_int_equal(smp_keyring_bindings_for(f->kr, addr, &b, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(b[i].fpr, fpr) == 0) {
			*out = b[i];
			memset(&b[i], 0, sizeof(b[i]));
			found = true;
		}
	}
	smp_bindings_free(b, n);
	return found ? out : NULL;
}

static size_t nbindings(struct fx *f, const char *addr)
{
	struct smp_binding *b;
	size_t n;

	assert_int_equal(smp_keyring_bindings_for(f->kr, addr, &b, &n), 0);
	smp_bindings_free(b, n);
	return n;
}

/* The last event recorded for addr. */
static void last_event(struct fx *f, const char *addr, const char *event,
		       const char *detail_prefix, const char *fpr)
{
	struct smp_event *e;
	size_t n;

	assert_int_equal(smp_keyring_events_for(f->kr, addr, &e, &n), 0);
	assert_true(n > 0);
	assert_string_equal(e[n - 1].event, event);
	if (detail_prefix)
		assert_memory_equal(e[n - 1].detail, detail_prefix,
				    strlen(detail_prefix));
	if (fpr)
		assert_string_equal(e[n - 1].fpr, fpr);
	assert_string_equal(e[n - 1].message_id, f->msgid);
	smp_events_free(e, n);
}

static size_t nevents(struct fx *f, const char *addr)
{
	struct smp_event *e;
	size_t n;

	assert_int_equal(smp_keyring_events_for(f->kr, addr, &e, &n), 0);
	smp_events_free(e, n);
	return n;
}

/* ------------------------------------------------------------------ */
/* Harvested                                                           */

static void test_harvest_matching_sender(void **state)
{
	struct fx *f = *state;
	struct shown s;
	struct smp_binding b;
	struct smp_key_rec k;
	bool found;
	char log[512];

	show("alice", &s);
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	assert_int_equal(f->rep.n, 1);
	expect_line(f, 0, s.fpr, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_string_equal(f->rep.lines[0].address, "alice@example.org");
	assert_int_equal(f->rep.harvested, 1);
	assert_int_equal(f->rep.refused, 0);
	/* a new key: the inspection, the merge into its minimal form */
	cost(f, 2);
	smp_harvest_report_format(&f->rep, log, sizeof(log));
	assert_non_null(strstr(log, "harvested=1 refused=0 [harvested "));
	assert_non_null(strstr(log, s.fpr));

	assert_non_null(get_binding(f, "alice@example.org", s.fpr, &b));
	assert_int_equal(b.state, SMP_BIND_ACTIVE);
	assert_int_equal(b.source, SMP_SRC_SMP);
	assert_int_equal(b.times_seen, 1);
	assert_int_equal(b.first_seen, NOW);
	assert_int_equal(b.last_seen, NOW);
	assert_int_equal(b.msg_date, DATE1);
	assert_string_equal(b.message_id, f->msgid);
	assert_string_equal(b.client_addr, "192.0.2.25");
	assert_false(b.self_encrypted);
	smp_binding_clear(&b);

	assert_int_equal(smp_keyring_key_get(f->kr, s.fpr, &k), 0);
	assert_string_equal(k.algo, "ed25519");
	assert_int_equal(k.created, 1740819600);
	assert_int_equal(k.expires, 0);
	assert_false(k.revoked);
	assert_string_equal(k.enc_keyids, s.enc[0]);
	assert_int_equal(uids_in(k.material, k.material_len,
				 "Alice Example <alice@example.org>", &found),
			 1);
	assert_true(found);
	smp_key_rec_clear(&k);
	last_event(f, "alice@example.org", "harvested",
		   "source=smp; self-encrypted=no", s.fpr);
}

/* The real fixture messages through the validator: the self-encryption
 * signal comes from the session-key packets. */
static void harvest_eml(struct fx *f, const char *file, struct smp_result *r)
{
	char path[512];
	size_t n;
	unsigned char *m;
	struct smp_check_opts o;

	snprintf(path, sizeof(path), MSGS "%s", file);
	m = slurp(path, &n);
	smp_check_opts_init(&o);
	memset(r, 0, sizeof(*r));
	assert_int_equal(smp_validate_buffer((const char *)m, n, &o, r), 0);
	assert_int_equal(r->reasons, 0);
	free(m);
	f->ctx.msg = &r->msg;
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, r->keys,
					     r->nkeys, &f->rep), 0);
}

static void test_self_encryption_signal(void **state)
{
	struct fx *f = *state;
	struct smp_result r;
	struct smp_binding b;
	const char *dave = fpr_of("dave");

	msg(f, "dave@example.net", DATE1);
	harvest_eml(f, "harvest-dave-self-encrypted.eml", &r);
	expect_line(f, 0, dave, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_true(f->rep.lines[0].self_encrypted);
	assert_non_null(get_binding(f, "dave@example.net", dave, &b));
	assert_true(b.self_encrypted);
	smp_binding_clear(&b);
	last_event(f, "dave@example.net", "harvested",
		   "source=smp; self-encrypted=yes", dave);
	smp_result_clear(&r);

	msg(f, "dave@example.net", DATE1 + DAY);
	harvest_eml(f, "harvest-dave-not-self-encrypted.eml", &r);
	expect_line(f, 0, dave, SMP_HV_SEEN, SMP_HR_NONE);
	assert_false(f->rep.lines[0].self_encrypted);
	/* the same key block again: known, no crypto work at all */
	cost(f, 0);
	assert_int_equal(f->rep.known, 1);
	assert_non_null(get_binding(f, "dave@example.net", dave, &b));
	assert_false(b.self_encrypted);
	assert_int_equal(b.times_seen, 2);
	smp_binding_clear(&b);
	smp_result_clear(&r);
}

/* ------------------------------------------------------------------ */
/* Planting                                                            */

static void test_planting_refused(void **state)
{
	struct fx *f = *state;

	/* mallory sends a key whose only user ID is the victim's */
	expect_refused(f, "planted", "mallory@example.net",
		       SMP_HR_NO_MATCHING_UID, fpr_of("planted"));
	assert_int_equal(nbindings(f, "victim@victim.example"), 0);
	last_event(f, "mallory@example.net", "refused",
		   "no-matching-uid; source=smp", fpr_of("planted"));
	assert_int_equal(nevents(f, "victim@victim.example"), 0);

	/* or claims to be the victim in From: only */
	msg(f, "mallory@example.net", DATE1);
	f->from[0] = "victim@victim.example";
	assert_int_equal(harvest1(f, "planted"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SENDER_MISMATCH);
	cost(f, 0);
	assert_int_equal(nbindings(f, "victim@victim.example"), 0);
}

/* A key with the sender's user ID and someone else's: bound to the
 * sender only, the other user ID dropped before storing. */
static void test_other_uid_not_bound(void **state)
{
	struct fx *f = *state;
	const char *dave = fpr_of("dave");
	struct smp_key_rec k;
	struct smp_binding *b;
	size_t n;
	bool found;
	char out[8192], cmd[1024];
	FILE *p;

	msg(f, "dave@example.net", DATE1);
	assert_int_equal(harvest1(f, "dave"), 0);
	expect_line(f, 0, dave, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(nbindings(f, "dave@example.net"), 1);
	assert_int_equal(nbindings(f, "victim@victim.example"), 0);
	assert_int_equal(smp_keyring_bindings_of_key(f->kr, dave, &b, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(b[0].address, "dave@example.net");
	smp_bindings_free(b, n);
	assert_int_equal(smp_keyring_key_get(f->kr, dave, &k), 0);
	assert_int_equal(uids_in(k.material, k.material_len,
				 "Dave Example <dave@example.net>", &found), 1);
	assert_true(found);
	uids_in(k.material, k.material_len,
		"Victim Example <victim@victim.example>", &found);
	assert_false(found);
	smp_key_rec_clear(&k);
	/* nor does the gnupg engine's GnuPG cache hold the victim's user
	 * ID (the rnp engine has no GnuPG home: none is made) */
	if (gnupg(f)) {
		snprintf(cmd, sizeof(cmd),
			 "gpg --homedir '%s' --batch --with-colons "
			 "--list-keys 2>&1",
			 f->home);
		p = popen(cmd, "r");
		out[fread(out, 1, sizeof(out) - 1, p)] = '\0';
		pclose(p);
		assert_non_null(strstr(out, "dave@example.net"));
		assert_null(strstr(out, "victim"));
	} else {
		struct stat st;
		assert_int_not_equal(stat(f->home, &st), 0);
	}

	/* the victim's address cannot be reached through dave's key */
	msg(f, "mallory@example.net", DATE1 + DAY);
	assert_int_equal(harvest1(f, "dave"), 0);
	expect_line(f, 0, dave, SMP_HV_REFUSED, SMP_HR_NO_MATCHING_UID);
}

/* Third-party signatures never reach the store (CVE-2019-13050). */
static void test_third_party_signatures_stripped(void **state)
{
	struct fx *f = *state;
	const char *carol = fpr_of("carol-certified");
	struct smp_key_rec k;
	size_t ncert, nstored;
	unsigned char *cert = slurp(KEYS "carol-certified.pub.gpg", &ncert);

	msg(f, "carol@example.com", DATE1);
	assert_int_equal(harvest1(f, "carol-certified"), 0);
	expect_line(f, 0, carol, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(smp_keyring_key_get(f->kr, carol, &k), 0);
	nstored = k.material_len;
	/* bob's certification (one signature packet) is gone: the stored
	 * key is the uncertified carol key exactly, packet for packet (the
	 * rnp engine writes new-format packet headers) */
	{
		size_t nplain;
		unsigned char *plain = slurp(KEYS "carol.pub.gpg", &nplain);
		same_packets(k.material, nstored, plain, nplain);
		assert_true(ncert > nplain);
		free(plain);
	}
	smp_key_rec_clear(&k);
	free(cert);
}

/* ------------------------------------------------------------------ */
/* Message-level refusals                                              */

static void test_own_domain(void **state)
{
	struct fx *f = *state;
	const char *corp = fpr_of("corp");

	expect_refused(f, "corp", "user@corp.example", SMP_HR_OWN_DOMAIN, "");
	cost(f, 0);
	last_event(f, "user@corp.example", "refused", "own-domain", "");

	/* ".corp.example" means the subdomains (not corp.example) */
	f->skip[0] = ".corp.example";
	msg(f, "user@mail.CORP.example", DATE1);
	assert_int_equal(harvest1(f, "corp"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_OWN_DOMAIN);
	msg(f, "user@xcorp.example", DATE1);
	assert_int_equal(harvest1(f, "corp"), 0);
	expect_line(f, 0, corp, SMP_HV_REFUSED, SMP_HR_NO_MATCHING_UID);
	f->skip[0] = "corp.example";

	/* outbound mail is not harvested unless harvest.outbound */
	msg(f, "user@corp.example", DATE1);
	f->ctx.outbound = true;
	assert_int_equal(harvest1(f, "corp"), 0);
	assert_int_equal(f->rep.n, 0);
	cost(f, 0);
	f->cfg.outbound = true;
	assert_int_equal(harvest1(f, "corp"), 0);
	expect_line(f, 0, corp, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(nbindings(f, "user@corp.example"), 1);
}

static void test_sender_mismatch(void **state)
{
	struct fx *f = *state;
	const char *two[2] = {"alice@example.org", "bob@example.net"};

	msg(f, "alice@example.org", DATE1);
	f->from[0] = "bob@example.net";
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SENDER_MISMATCH);
	cost(f, 0);

	msg(f, "alice@example.org", DATE1);
	f->ctx.from = two;
	f->ctx.nfrom = 2;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SENDER_MISMATCH);

	msg(f, "<>", DATE1); /* a bounce */
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SENDER_MISMATCH);
	assert_null(f->rep.lines[0].address);

	msg(f, "alice@example.org", DATE1);
	f->ctx.nfrom = 0;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SENDER_MISMATCH);

	/* angle brackets and the domain's case do not matter */
	msg(f, "<alice@EXAMPLE.org>", DATE1);
	f->from[0] = "alice@example.ORG";
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, NULL, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(nbindings(f, "alice@example.org"), 1);
	/* four messages from alice (the bounce has no address) */
	assert_int_equal(nevents(f, "alice@example.org"), 4);
	assert_int_equal(nevents(f, "<>"), 0);
}

static void test_require_auth(void **state)
{
	struct fx *f = *state;
	const char *ar_ok[] = {
		"mx.example.net;\r\n dkim=pass (2048-bit key) header.d=example.org "
		"header.s=sel header.b=abcd; spf=pass smtp.mailfrom=example.org"};
	const char *ar_foreign[] = {
		"evil.example; dkim=pass header.d=example.org"};
	const char *ar_other_domain[] = {
		"mx.example.net; dkim=pass header.d=evil.example"};

	f->cfg.require_auth = SMP_REQUIRE_AUTH_DKIM;
	f->cfg.authserv_id = "mx.example.net";

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_NOT_AUTHENTICATED);
	cost(f, 0);

	f->ctx.auth_results = ar_foreign;
	f->ctx.nauth_results = 1;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_NOT_AUTHENTICATED);

	f->ctx.auth_results = ar_other_domain;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_NOT_AUTHENTICATED);
	assert_int_equal(nbindings(f, "alice@example.org"), 0);
	last_event(f, "alice@example.org", "refused", "not-authenticated",
		   "");

	f->ctx.auth_results = ar_ok;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, fpr_of("alice"), SMP_HV_HARVESTED, SMP_HR_NONE);
}

static void test_auth_results_parser(void **state)
{
	const char *dom = "mail.example.org";
	(void)state;
#define OK1(mode, v) \
	smp_harvest_auth_ok(mode, "MX.Example.NET", dom, (const char *[]){v}, 1)

	assert_true(smp_harvest_auth_ok(SMP_REQUIRE_AUTH_NONE, NULL, NULL,
					NULL, 0));
	assert_true(OK1(SMP_REQUIRE_AUTH_DKIM,
			"mx.example.net; dkim=pass header.d=mail.example.org"));
	/* relaxed alignment: a parent domain signs */
	assert_true(OK1(SMP_REQUIRE_AUTH_DKIM,
			"mx.example.net 1; dkim=pass header.i=@example.org"));
	assert_false(OK1(SMP_REQUIRE_AUTH_DKIM,
			 "mx.example.net; dkim=pass header.d=ample.org"));
	assert_false(OK1(SMP_REQUIRE_AUTH_DKIM,
			 "mx.example.net; dkim=fail header.d=example.org"));
	assert_false(OK1(SMP_REQUIRE_AUTH_DKIM,
			 "mx.example.net; dkim=pass"));
	assert_false(OK1(SMP_REQUIRE_AUTH_DKIM, "mx.example.net; none"));
	/* a comment that looks like a pass does not count */
	assert_false(OK1(SMP_REQUIRE_AUTH_DKIM,
			 "mx.example.net; dkim=fail (dkim=pass "
			 "header.d=example.org) header.d=example.org"));
	/* comments and quotes around the authserv-id */
	assert_true(OK1(SMP_REQUIRE_AUTH_DKIM,
			"(ours) \"mx.example.net\" ; spf=fail; DKIM=Pass "
			"header.d=\"example.org\""));
	assert_false(OK1(SMP_REQUIRE_AUTH_DKIM,
			 "mx.example.net.evil; dkim=pass header.d=example.org"));
	assert_true(OK1(SMP_REQUIRE_AUTH_DMARC,
			"mx.example.net; dmarc=pass header.from=mail.example.org"));
	assert_true(OK1(SMP_REQUIRE_AUTH_DMARC,
			"mx.example.net; dmarc=pass (p=reject)"));
	assert_false(OK1(SMP_REQUIRE_AUTH_DMARC,
			 "mx.example.net; dmarc=pass header.from=evil.example"));
	assert_false(OK1(SMP_REQUIRE_AUTH_DMARC,
			 "mx.example.net; dkim=pass header.d=mail.example.org"));
	assert_false(smp_harvest_auth_ok(SMP_REQUIRE_AUTH_DKIM, "", dom,
					 (const char *[]){"; dkim=pass "
							  "header.d=mail.example.org"},
					 1));
	/* several headers: ours may be any of them */
	assert_true(smp_harvest_auth_ok(
		SMP_REQUIRE_AUTH_DKIM, "mx.example.net", dom,
		(const char *[]){"other.example; dkim=pass header.d=x.example",
				 "mx.example.net; dkim=pass "
				 "header.d=mail.example.org"},
		2));
#undef OK1
}

/* ------------------------------------------------------------------ */
/* Per-key refusals                                                    */

static void test_weak_algorithms(void **state)
{
	struct fx *f = *state;

	expect_refused(f, "weak1024", "weak1024@example.org",
		       SMP_HR_WEAK_ALGORITHM, fpr_of("weak1024"));
	expect_refused(f, "dsa", "dsa@example.org", SMP_HR_WEAK_ALGORITHM,
		       fpr_of("dsa"));
	expect_refused(f, "elgonly", "elgonly@example.org",
		       SMP_HR_WEAK_ALGORITHM, fpr_of("elgonly"));
	last_event(f, "elgonly@example.org", "refused",
		   "weak-algorithm; source=smp", fpr_of("elgonly"));
	/* RSA 3072 is fine */
	msg(f, "rita@example.com", DATE1);
	assert_int_equal(harvest1(f, "rsa3072"), 0);
	expect_line(f, 0, fpr_of("rsa3072"), SMP_HV_HARVESTED, SMP_HR_NONE);
}

static void test_expired_revoked_signonly(void **state)
{
	struct fx *f = *state;

	expect_refused(f, "expired", "expired@example.org", SMP_HR_EXPIRED,
		       fpr_of("expired"));
	expect_refused(f, "revoked", "revoked@example.org", SMP_HR_REVOKED,
		       fpr_of("revoked"));
	expect_refused(f, "signonly", "signonly@example.org",
		       SMP_HR_NO_ENCRYPTION_SUBKEY, fpr_of("signonly"));
	last_event(f, "signonly@example.org", "refused",
		   "no-encryption-subkey", fpr_of("signonly"));
}

static void test_secret_oversized_manyuid(void **state)
{
	struct fx *f = *state;
	struct smp_key_part p;

	/* secret key material: refused without gpg */
	msg(f, "alice@example.org", DATE1);
	part_sec(&p, "alice");
	assert_int_equal(p.kind, SMP_KEY_SECRET);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1,
					     &f->rep), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SECRET);
	cost(f, 0);
	/* the same bytes labelled as a public key by a careless caller */
	p.kind = SMP_KEY_PUBLIC;
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1,
					     &f->rep), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SECRET);
	parts_free(&p, 1);
	assert_int_equal(nbindings(f, "alice@example.org"), 0);

	expect_refused(f, "oversized", "big@example.org", SMP_HR_TOO_LARGE, "");
	cost(f, 0);
	expect_refused(f, "manyuid", "manyuid@example.org",
		       SMP_HR_TOO_MANY_UIDS, fpr_of("manyuid"));
	cost(f, 0);
	last_event(f, "manyuid@example.org", "refused", "too-many-uids",
		   fpr_of("manyuid"));

	/* the limits are the configured ones */
	f->lim.max_uids = 20;
	msg(f, "manyuid@example.org", DATE1);
	assert_int_equal(harvest1(f, "manyuid"), 0);
	expect_line(f, 0, fpr_of("manyuid"), SMP_HV_HARVESTED, SMP_HR_NONE);
	f->lim.max_key_bytes = 200;
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_TOO_LARGE);
}

static void test_bad_parts(void **state)
{
	struct fx *f = *state;
	struct smp_key_part p[3];
	unsigned char junk[64];
	size_t n;
	unsigned char *half = slurp(KEYS "bob.pub.gpg", &n);

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 37);
	msg(f, "bob@example.net", DATE1);
	part_from(&p[0], malloc(sizeof(junk)), sizeof(junk));
	memcpy(p[0].data, junk, sizeof(junk));
	part_from(&p[1], half, n / 2);
	part_pub(&p[2], "bob");
	p[0].kind = SMP_KEY_PUBLIC; /* the framing is checked again anyway */
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, p, 3,
					     &f->rep), 0);
	assert_int_equal(f->rep.n, 3);
	expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_BAD_KEY);
	expect_line(f, 1, "", SMP_HV_REFUSED, SMP_HR_BAD_KEY);
	expect_line(f, 2, fpr_of("bob"), SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(f->rep.lines[2].part, 2);
	parts_free(p, 3);
}

/* ------------------------------------------------------------------ */
/* One address, two keys                                               */

static void test_two_keys_one_address(void **state)
{
	struct fx *f = *state;
	const char *both[] = {"alice", "alice-other"};
	const char *twice[] = {"alice", "alice"};

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest_n(f, both, 2), 0);
	assert_int_equal(f->rep.n, 2);
	expect_line(f, 0, fpr_of("alice"), SMP_HV_REFUSED,
		    SMP_HR_DUPLICATE_ADDRESS);
	expect_line(f, 1, fpr_of("alice-other"), SMP_HV_REFUSED,
		    SMP_HR_DUPLICATE_ADDRESS);
	assert_int_equal(f->rep.refused, 2);
	cost(f, 1);
	assert_int_equal(nbindings(f, "alice@example.org"), 0);
	assert_int_equal(nevents(f, "alice@example.org"), 2);

	/* the same key twice is one key */
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest_n(f, twice, 2), 0);
	assert_int_equal(f->rep.n, 1);
	expect_line(f, 0, fpr_of("alice"), SMP_HV_HARVESTED, SMP_HR_NONE);
}

static void test_conflict_flag_then_pin(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice"), *o = fpr_of("alice-other");
	struct smp_binding b;

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_HARVESTED, SMP_HR_NONE);

	msg(f, "alice@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "alice-other"), 0);
	expect_line(f, 0, o, SMP_HV_CONFLICT, SMP_HR_NONE);
	assert_int_equal(f->rep.harvested, 0);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_CONFLICT);
	smp_binding_clear(&b);
	assert_non_null(get_binding(f, "alice@example.org", o, &b));
	assert_int_equal(b.state, SMP_BIND_CONFLICT);
	smp_binding_clear(&b);
	last_event(f, "alice@example.org", "conflict", "source=smp", o);
	{
		/* the old key's move to conflict is in the history too */
		struct smp_event *e;
		size_t n;
		bool seen = false;
		assert_int_equal(smp_keyring_events_for(f->kr,
							"alice@example.org",
							&e, &n), 0);
		for (size_t i = 0; i < n; i++)
			if (strcmp(e[i].event, "conflict") == 0 &&
			    strcmp(e[i].fpr, a) == 0)
				seen = true;
		assert_true(seen);
		smp_events_free(e, n);
	}

	/* still in conflict, whichever key comes again */
	msg(f, "alice@example.org", DATE1 + 2 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_CONFLICT);
	smp_binding_clear(&b);

	/* an admin pins the new key (smpctl keys pin): the old key is then
	 * refused, and the pinned binding is never touched */
	assert_int_equal(smp_keyring_binding_set_state(f->kr,
						       "alice@example.org", o,
						       SMP_BIND_PINNED), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr,
						       "alice@example.org", a,
						       SMP_BIND_REVOKED), 0);
	msg(f, "alice@example.org", DATE1 + 3 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_PINNED);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_REVOKED);
	smp_binding_clear(&b);

	assert_non_null(get_binding(f, "alice@example.org", o, &b));
	assert_int_equal(b.times_seen, 1);
	smp_binding_clear(&b);
	assert_int_equal(harvest1(f, "alice-other"), 0);
	expect_line(f, 0, o, SMP_HV_SEEN, SMP_HR_NONE);
	assert_non_null(get_binding(f, "alice@example.org", o, &b));
	assert_int_equal(b.state, SMP_BIND_PINNED);
	assert_int_equal(b.times_seen, 1); /* untouched */
	smp_binding_clear(&b);
}

static void test_conflict_keep(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice"), *o = fpr_of("alice-other");
	struct smp_binding b;
	struct smp_key_rec k;

	f->cfg.on_conflict = SMP_ON_CONFLICT_KEEP;
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	msg(f, "alice@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "alice-other"), 0);
	expect_line(f, 0, o, SMP_HV_KEPT, SMP_HR_NONE);
	cost(f, 1);
	assert_int_equal(nbindings(f, "alice@example.org"), 1);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_ACTIVE);
	smp_binding_clear(&b);
	assert_int_equal(smp_keyring_key_get(f->kr, o, &k), 1);
	last_event(f, "alice@example.org", "kept", NULL, o);
}

static void test_conflict_replace(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice"), *o = fpr_of("alice-other");
	struct smp_binding b;

	f->cfg.on_conflict = SMP_ON_CONFLICT_REPLACE;
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	msg(f, "alice@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "alice-other"), 0);
	expect_line(f, 0, o, SMP_HV_REPLACED, SMP_HR_NONE);
	assert_int_equal(f->rep.harvested, 1);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_REVOKED);
	smp_binding_clear(&b);
	assert_non_null(get_binding(f, "alice@example.org", o, &b));
	assert_int_equal(b.state, SMP_BIND_ACTIVE);
	smp_binding_clear(&b);
}

/* ------------------------------------------------------------------ */
/* Same key again                                                      */

/* "seen" is the binding's counter and last-seen time, not an event: a
 * thousand messages with a known key add no row to the history. */
static void test_seen_adds_no_events(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice");
	struct smp_keyring_stats st;
	struct smp_binding b;
	unsigned long before;
	char last_msgid[64];

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	before = st.events;
	assert_int_equal(before, 1);

	for (int i = 1; i <= 1000; i++) {
		msg(f, "alice@example.org", DATE1 + i);
		f->ctx.now = NOW + i;
		if (harvest1(f, "alice") != 0)
			fail_msg("harvest %d: %s", i, f->rep.error);
		expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	}
	snprintf(last_msgid, sizeof(last_msgid), "%s", f->msgid);
	assert_int_equal(smp_keyring_stats(f->kr, &st), 0);
	assert_int_equal(st.events, before);
	{
		struct smp_event *e;
		size_t n;
		assert_int_equal(smp_keyring_events_for(f->kr,
							"alice@example.org",
							&e, &n), 0);
		assert_int_equal(n, 1);
		assert_string_equal(e[0].event, "harvested");
		assert_string_equal(e[0].message_id, "<m1@mail.example>");
		smp_events_free(e, n);
	}

	/* the counters on the binding say it all */
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.times_seen, 1001);
	assert_int_equal(b.first_seen, NOW);
	assert_int_equal(b.last_seen, NOW + 1000);
	assert_int_equal(b.msg_date, DATE1 + 1000);
	assert_string_equal(b.message_id, last_msgid);
	smp_binding_clear(&b);
}

/* name's public key with a second cv25519 encryption subkey made a day
 * after the fixtures (gpg with a faked clock, from the fixture's secret
 * key), as a key part. */
static void part_rotated(struct fx *f, struct smp_key_part *p,
			 const char *name)
{
	char cmd[4096], home[800], path[800], fpr[64] = "";
	unsigned char *d;
	FILE *pp;
	size_t n;

	snprintf(home, sizeof(home), "%s/rot-%s", f->dir, name);
	snprintf(path, sizeof(path), "%s/rot-%s.gpg", f->dir, name);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -m 700 '%s' && gpg --homedir '%s' --batch --quiet "
		 "--import '" KEYS "%s.sec.asc' 2>/dev/null && "
		 "gpg --homedir '%s' --with-colons --list-keys 2>/dev/null | "
		 "awk -F: '/^fpr/ { print $10; exit }'",
		 home, home, name, home);
	pp = popen(cmd, "r");
	assert_non_null(pp);
	assert_non_null(fgets(fpr, sizeof(fpr), pp));
	pclose(pp);
	fpr[strcspn(fpr, "\n")] = '\0';
	assert_int_equal(strlen(fpr), 40);
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s' --batch --pinentry-mode loopback "
		 "--passphrase '' --faked-system-time %lld! --quick-add-key "
		 "%s cv25519 encr never 2>/dev/null && gpg --homedir '%s' "
		 "--export %s >'%s' && gpgconf --homedir '%s' --kill all",
		 home, (long long)1740819600 + DAY, fpr, home, fpr, path,
		 home);
	assert_int_equal(system(cmd), 0);
	d = slurp(path, &n);
	part_from(p, d, n);
}

static void test_merge_updated_key(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice");
	struct shown alice, upd;
	struct smp_key_part p;
	struct smp_key_rec k;
	struct smp_binding b;
	size_t before;

	show("alice", &alice);
	show("alice-updated", &upd);
	assert_string_equal(upd.fpr, a);
	assert_int_equal(upd.nenc, 2);
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	before = k.material_len;
	assert_string_equal(k.enc_keyids, alice.enc[0]);
	smp_key_rec_clear(&k);

	/* the same version again: nothing new, no crypto work (the block
	 * is known), no event */
	msg(f, "alice@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	assert_int_equal(f->rep.harvested, 0);
	assert_int_equal(nevents(f, "alice@example.org"), 1);

	/* a second encryption subkey made at the same second as the first
	 * (alice-updated): the minimal key keeps the first of equals, so
	 * nothing changes */
	msg(f, "alice@example.org", DATE1 + 2 * DAY);
	assert_int_equal(harvest1(f, "alice-updated"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	assert_int_equal(k.material_len, before);
	smp_key_rec_clear(&k);

	/* a newer version: an encryption subkey a day younger */
	msg(f, "alice@example.org", DATE1 + 3 * DAY);
	part_rotated(f, &p, "alice");
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1,
					     &f->rep),
			 0);
	parts_free(&p, 1);
	expect_line(f, 0, a, SMP_HV_MERGED, SMP_HR_NONE);
	cost(f, 2);
	assert_int_equal(f->rep.harvested, 1);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	/* the new subkey replaces the old one in the minimal key */
	assert_int_equal(strlen(k.enc_keyids), 16);
	assert_string_not_equal(k.enc_keyids, alice.enc[0]);
	assert_null(strstr(k.enc_keyids, upd.enc[1]));
	before = k.material_len;
	smp_key_rec_clear(&k);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_ACTIVE);
	assert_int_equal(b.times_seen, 4);
	assert_int_equal(b.msg_date, DATE1 + 3 * DAY);
	assert_int_equal(b.first_seen, NOW);
	smp_binding_clear(&b);
	last_event(f, "alice@example.org", "merged", NULL, a);

	/* the old version later on adds nothing: seen, material kept */
	msg(f, "alice@example.org", DATE1 + 4 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 1);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	assert_int_equal(k.material_len, before);
	smp_key_rec_clear(&k);
}

static void test_older_message_changes_nothing(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice"), *o = fpr_of("alice-other");
	struct smp_key_rec k;
	struct smp_binding b;
	size_t before;

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	before = k.material_len;
	smp_key_rec_clear(&k);

	msg(f, "alice@example.org", DATE1 - DAY);
	assert_int_equal(harvest1(f, "alice-updated"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_OLDER_MESSAGE);
	assert_int_equal(harvest1(f, "alice-other"), 0);
	expect_line(f, 0, o, SMP_HV_REFUSED, SMP_HR_OLDER_MESSAGE);
	cost(f, 1);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	assert_int_equal(k.material_len, before);
	smp_key_rec_clear(&k);
	assert_int_equal(smp_keyring_key_get(f->kr, o, &k), 1);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.state, SMP_BIND_ACTIVE);
	assert_int_equal(b.times_seen, 1);
	assert_int_equal(b.msg_date, DATE1);
	smp_binding_clear(&b);
	last_event(f, "alice@example.org", "refused", "older-message", o);

	/* a Date in the future counts as now */
	msg(f, "alice@example.org", NOW + 365 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.msg_date, NOW);
	smp_binding_clear(&b);
}

static void test_blocked_never_reharvested(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice");
	struct smp_binding b;

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	/* smpctl keys block FPR, and the address forgotten */
	assert_int_equal(smp_keyring_key_set_blocked(f->kr, a, true), 0);
	assert_int_equal(smp_keyring_binding_delete(f->kr, "alice@example.org",
						    NULL), 0);
	msg(f, "alice@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_BLOCKED);
	cost(f, 0);
	assert_int_equal(nbindings(f, "alice@example.org"), 0);
	/* nor through an update of it */
	assert_int_equal(harvest1(f, "alice-updated"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_BLOCKED);
	last_event(f, "alice@example.org", "refused", "blocked", a);

	/* a blocked binding (this address, this key) is not changed */
	msg(f, "bob@example.net", DATE1);
	assert_int_equal(harvest1(f, "bob"), 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr, "bob@example.net",
						       fpr_of("bob"),
						       SMP_BIND_BLOCKED), 0);
	msg(f, "bob@example.net", DATE1 + DAY);
	assert_int_equal(harvest1(f, "bob"), 0);
	expect_line(f, 0, fpr_of("bob"), SMP_HV_REFUSED,
		    SMP_HR_BLOCKED_BINDING);
	assert_non_null(get_binding(f, "bob@example.net", fpr_of("bob"), &b));
	assert_int_equal(b.state, SMP_BIND_BLOCKED);
	assert_int_equal(b.times_seen, 1);
	smp_binding_clear(&b);
}

/* The owner revokes a key we hold: the revocation is merged and the
 * binding revoked. */
static void test_revocation_of_known_key(void **state)
{
	struct fx *f = *state;
	const char *r = fpr_of("revoked");
	struct smp_binding b;
	struct smp_key_rec k;

	assert_string_equal(r, fpr_of("revoked-prior"));
	msg(f, "revoked@example.org", DATE1);
	assert_int_equal(harvest1(f, "revoked-prior"), 0);
	expect_line(f, 0, r, SMP_HV_HARVESTED, SMP_HR_NONE);
	msg(f, "revoked@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "revoked"), 0);
	expect_line(f, 0, r, SMP_HV_REVOKED, SMP_HR_REVOKED);
	assert_int_equal(f->rep.refused, 1);
	assert_non_null(get_binding(f, "revoked@example.org", r, &b));
	assert_int_equal(b.state, SMP_BIND_REVOKED);
	smp_binding_clear(&b);
	assert_int_equal(smp_keyring_key_get(f->kr, r, &k), 0);
	assert_true(k.revoked);
	smp_key_rec_clear(&k);
	last_event(f, "revoked@example.org", "revoked", "revoked", r);
	/* and the old copy does not bring it back */
	msg(f, "revoked@example.org", DATE1 + 2 * DAY);
	assert_int_equal(harvest1(f, "revoked-prior"), 0);
	expect_line(f, 0, r, SMP_HV_REFUSED, SMP_HR_REVOKED);
	assert_non_null(get_binding(f, "revoked@example.org", r, &b));
	assert_int_equal(b.state, SMP_BIND_REVOKED);
	smp_binding_clear(&b);
	assert_int_equal(smp_keyring_key_get(f->kr, r, &k), 0);
	assert_true(k.revoked);
	smp_key_rec_clear(&k);
}

/* ------------------------------------------------------------------ */
/* Addresses                                                            */

static void test_addresses_exact(void **state)
{
	struct fx *f = *state;
	char longaddr[300];
	size_t l = 0;
	struct {
		const char *name, *addr, *other;
	} t[3] = {
		{"quoted", "\"john..doe\"@example.com", "\"John..doe\"@example.com"},
		{"unicode", "j\xc3\xb6rg@example.com", "jorg@example.com"},
		{"longlocal", NULL, NULL},
	};
	struct smp_binding b;

	for (int i = 1; i <= 9; i++)
		l += (size_t)snprintf(longaddr + l, sizeof(longaddr) - l,
				      "a-very-long-local-part-%02d.", i);
	snprintf(longaddr + l, sizeof(longaddr) - l, "end@example.com");
	t[2].addr = longaddr;
	t[2].other = "a-very-long-local-part-01@example.com";

	for (int i = 0; i < 3; i++) {
		const char *fpr = fpr_of(t[i].name);
		char upper[300];

		msg(f, t[i].addr, DATE1);
		assert_int_equal(harvest1(f, t[i].name), 0);
		expect_line(f, 0, fpr, SMP_HV_HARVESTED, SMP_HR_NONE);
		assert_string_equal(f->rep.lines[0].address, t[i].addr);
		assert_non_null(get_binding(f, t[i].addr, fpr, &b));
		assert_string_equal(b.address, t[i].addr);
		smp_binding_clear(&b);
		/* the domain's case does not matter, the local part's does */
		snprintf(upper, sizeof(upper), "%s", t[i].addr);
		for (char *p = strrchr(upper, '@'); *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		assert_non_null(get_binding(f, upper, fpr, &b));
		smp_binding_clear(&b);
		assert_int_equal(nbindings(f, t[i].other), 0);
	}
}

/* A fresh ed25519/cv25519 key with the user IDs uids[0..n), made here by
 * gpg in a throwaway home under the test's directory (at the fixtures'
 * faked time, so no clock sees it as made in the future): for addresses
 * no fixture key can have without regenerating every fixture. Its binary
 * public key as a part; *fpr gets its fingerprint. */
static void part_generated(struct fx *f, const char *const *uids, size_t n,
			   struct smp_key_part *p, char fpr[41])
{
	char home[700], out[720], cmd[4096], line[512];
	const char *gpg = "gpg --homedir \"$H\" --batch --quiet --no-tty "
			  "--faked-system-time 20250301T000000! --passphrase '' "
			  "--pinentry-mode loopback";
	size_t len;
	FILE *pp;
	int o;

	snprintf(home, sizeof(home), "%s/gen", f->dir);
	snprintf(out, sizeof(out), "%s/gen.pub.gpg", f->dir);
	assert_int_equal(mkdir(home, 0700), 0);
	assert_true(setenv("H", home, 1) == 0);
	for (size_t i = 0; i < n; i++) {
		/* each user ID through the environment: no shell quoting */
		assert_true(setenv("U", uids[i], 1) == 0);
		if (i == 0)
			o = snprintf(cmd, sizeof(cmd), "%s --quick-gen-key \"$U\" "
				     "future-default default never 2>/dev/null", gpg);
		else
			o = snprintf(cmd, sizeof(cmd), "%s --quick-add-uid \"$F\" "
				     "\"$U\" 2>/dev/null", gpg);
		assert_true(o > 0 && (size_t)o < sizeof(cmd));
		if (system(cmd) != 0)
			fail_msg("gpg could not make a key with user ID %s", uids[i]);
		if (i == 0) {
			snprintf(cmd, sizeof(cmd), "gpg --homedir \"$H\" --batch "
				 "--with-colons --list-keys 2>/dev/null");
			pp = popen(cmd, "r");
			assert_non_null(pp);
			fpr[0] = '\0';
			while (fgets(line, sizeof(line), pp))
				if (!fpr[0] && strncmp(line, "fpr:", 4) == 0)
					sscanf(line, "fpr:::::::::%40[0-9A-F]", fpr);
			pclose(pp);
			assert_int_equal(strlen(fpr), 40);
			assert_true(setenv("F", fpr, 1) == 0);
		}
	}
	assert_true(setenv("O", out, 1) == 0);
	assert_int_equal(system("gpg --homedir \"$H\" --batch --quiet --export "
				"\"$F\" >\"$O\" 2>/dev/null"), 0);
	/* only this home's agent */
	(void)!system("gpgconf --homedir \"$H\" --kill all >/dev/null 2>&1");
	unsetenv("H");
	unsetenv("U");
	unsetenv("F");
	unsetenv("O");
	{
		unsigned char *d = slurp(out, &len);
		part_from(p, d, len);
	}
	assert_int_equal(p->kind, SMP_KEY_PUBLIC);
}

/* A sender smp_address_check() refuses (white space in a quoted local
 * part; 255 octets) is refused as sender-mismatch before any key work,
 * even when the key has a user ID for exactly that address: the keyring
 * binds no such address, and meeting it there was a keyring error that
 * sent the message to on_error. The same key harvests for a mail address
 * and for one of 254 octets. */
static void test_sender_not_an_address(void **state)
{
	struct fx *f = *state;
	char l254[300], l255[300], fpr[41];
	struct smp_key_part p;
	struct smp_binding b;
	struct smp_key_rec k;
	const char *space = "\"john doe\"@example.com";

	memset(l254, 'l', 242);
	snprintf(l254 + 242, sizeof(l254) - 242, "@example.org");
	memset(l255, 'l', 243);
	snprintf(l255 + 243, sizeof(l255) - 243, "@example.org");
	assert_int_equal(strlen(l254), 254);
	assert_int_equal(strlen(l255), 255);
	{
		char u[3][320];
		const char *uids[4];
		snprintf(u[0], sizeof(u[0]), "John Doe <%s>", space);
		snprintf(u[1], sizeof(u[1]), "<%s>", l255);
		snprintf(u[2], sizeof(u[2]), "<%s>", l254);
		uids[0] = u[0];
		uids[1] = u[1];
		uids[2] = u[2];
		uids[3] = "John <john@example.com>";
		part_generated(f, uids, 4, &p, fpr);
	}

	for (int i = 0; i < 2; i++) {
		const char *sender = i == 0 ? space : l255;

		msg(f, sender, DATE1);
		smp_harvest_report_clear(&f->rep);
		assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1,
						     &f->rep), 0);
		assert_int_equal(f->rep.n, 1);
		expect_line(f, 0, "", SMP_HV_REFUSED, SMP_HR_SENDER_MISMATCH);
		assert_int_equal(f->rep.refused, 1);
		assert_int_equal(f->rep.harvested, 0);
		cost(f, 0);
		assert_int_equal(nbindings(f, sender), 0);
		assert_int_equal(smp_keyring_key_get(f->kr, fpr, &k), 1);
	}

	/* the key itself is fine: harvested for its other addresses */
	msg(f, "john@example.com", DATE1);
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1, &f->rep), 0);
	expect_line(f, 0, fpr, SMP_HV_HARVESTED, SMP_HR_NONE);
	msg(f, l254, DATE1);
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1, &f->rep), 0);
	expect_line(f, 0, fpr, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_non_null(get_binding(f, l254, fpr, &b));
	smp_binding_clear(&b);
	assert_int_equal(nbindings(f, space), 0);
	assert_int_equal(nbindings(f, l255), 0);
	parts_free(&p, 1);
}

/* ------------------------------------------------------------------ */
/* Sources                                                              */

static void test_sources(void **state)
{
	struct fx *f = *state;
	struct smp_key_part p[2];
	enum smp_key_source src[2] = {SMP_SRC_AUTOCRYPT, SMP_SRC_SMP};
	struct smp_binding b;

	msg(f, "alice@example.org", DATE1);
	f->ctx.source = SMP_SRC_AUTOCRYPT;
	assert_int_equal(harvest1(f, "alice"), 0); /* not enabled */
	assert_int_equal(f->rep.n, 0);
	cost(f, 0);
	assert_int_equal(nevents(f, "alice@example.org"), 0);

	f->cfg.sources |= SMP_HARVEST_SRC(SMP_SRC_AUTOCRYPT);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, fpr_of("alice"), SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(f->rep.lines[0].source, SMP_SRC_AUTOCRYPT);
	assert_non_null(get_binding(f, "alice@example.org", fpr_of("alice"),
				    &b));
	assert_int_equal(b.source, SMP_SRC_AUTOCRYPT);
	smp_binding_clear(&b);
	last_event(f, "alice@example.org", "harvested", "source=autocrypt",
		   NULL);

	/* one message, two sources: one key each, for one address */
	msg(f, "alice@example.org", DATE1 + DAY);
	part_pub(&p[0], "alice");
	part_pub(&p[1], "alice-other");
	f->ctx.part_sources = src;
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, p, 2,
					     &f->rep), 0);
	expect_line(f, 0, NULL, SMP_HV_REFUSED, SMP_HR_DUPLICATE_ADDRESS);
	expect_line(f, 1, NULL, SMP_HV_REFUSED, SMP_HR_DUPLICATE_ADDRESS);
	assert_int_equal(f->rep.lines[1].source, SMP_SRC_SMP);
	parts_free(p, 2);

	assert_int_equal(smp_harvest_source_bit("pgp-keys"),
			 SMP_HARVEST_SRC(SMP_SRC_PGP_KEYS));
	assert_int_equal(smp_harvest_source_bit("admin"), 0);
	/* key discovery's sources are not mail */
	assert_int_equal(smp_harvest_source_bit("wkd"), 0);
	assert_int_equal(smp_harvest_source_bit("dane"), 0);
	assert_int_equal(smp_harvest_source_bit("x"), 0);
}

static void test_no_parts_no_work(void **state)
{
	struct fx *f = *state;
	struct smp_key_part p;

	msg(f, "alice@example.org", DATE1);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 0,
					     &f->rep), 0);
	assert_int_equal(f->rep.n, 0);
	cost(f, 0);
	assert_int_equal(nevents(f, "alice@example.org"), 0);
}

/* A known key seen again (the same block) costs no crypto work; anything
 * that may change the outcome takes the full path again. */
static void test_known_key_no_crypto(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice"), *fut = fpr_of("future2122");
	struct smp_binding b;
	struct smp_key_rec k;
	struct smp_harvest_report first;
	size_t n;
	unsigned long hits;

	/* without a memo, the keyring's known blocks decide (the first
	 * harvest recorded the block there) */
	msg(f, "alice@example.org", DATE1);
	f->ctx.memo = NULL;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_HARVESTED, SMP_HR_NONE);
	cost(f, 2);
	assert_int_equal(f->rep.known, 0);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	assert_int_equal(f->rep.known, 1);
	assert_int_equal(f->rep.known_stored, 1);
	smp_harvest_memo_stats(f->memo, &n, &hits);
	assert_int_equal(n, 0);

	/* with it: the first "seen" is decided by the keyring and
	 * remembered, the next ones by the memo, and not even parsed */
	msg(f, "alice@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	assert_int_equal(f->rep.known_stored, 1);
	first = f->rep;
	memset(&f->rep, 0, sizeof(f->rep));
	smp_harvest_report_clear(&first);
	for (int i = 2; i < 12; i++) {
		msg(f, "alice@example.org", DATE1 + i * DAY);
		assert_int_equal(harvest1(f, "alice"), 0);
		expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
		cost(f, 0);
		assert_int_equal(f->rep.known, 1);
		assert_int_equal(f->rep.known_stored, 0);
	}
	smp_harvest_memo_stats(f->memo, &n, &hits);
	assert_int_equal(n, 1);
	assert_int_equal(hits, 10);
	/* the binding's counters still count every message */
	assert_non_null(get_binding(f, "alice@example.org", a, &b));
	assert_int_equal(b.times_seen, 13);
	assert_int_equal(b.msg_date, NOW); /* a Date past NOW counts as NOW */
	smp_binding_clear(&b);

	/* another sender with the same block: the full path (not bound) */
	msg(f, "bob@example.net", DATE1 + 12 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_NO_MATCHING_UID);
	cost(f, 1);

	/* the binding blocked: the rules judge it as for any key */
	assert_int_equal(smp_keyring_binding_set_state(f->kr,
						       "alice@example.org", a,
						       SMP_BIND_BLOCKED), 0);
	msg(f, "alice@example.org", DATE1 + 13 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_BLOCKED_BINDING);
	cost(f, 0);
	assert_int_equal(smp_keyring_binding_set_state(f->kr,
						       "alice@example.org", a,
						       SMP_BIND_ACTIVE), 0);

	/* the keyring's key changed (an admin stored other material): the
	 * block is inspected again */
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	free(k.material);
	k.material = slurp(KEYS "alice-updated.pub.gpg", &k.material_len);
	assert_int_equal(smp_keyring_key_put(f->kr, &k), 0);
	smp_key_rec_clear(&k);
	msg(f, "alice@example.org", DATE1 + 14 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 1);

	/* the key blocked: refused before anything, as always */
	assert_int_equal(smp_keyring_key_set_blocked(f->kr, a, true), 0);
	msg(f, "alice@example.org", DATE1 + 15 * DAY);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_REFUSED, SMP_HR_BLOCKED);
	cost(f, 0);

	/* a key that expires (in 2122): known until then, refused after */
	msg(f, "future@example.org", DATE1);
	assert_int_equal(harvest1(f, "future2122"), 0);
	expect_line(f, 0, fut, SMP_HV_HARVESTED, SMP_HR_NONE);
	msg(f, "future@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "future2122"), 0);
	expect_line(f, 0, fut, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	msg(f, "future@example.org", DATE1 + 2 * DAY);
	f->ctx.now = 4801798800LL + DAY;
	assert_int_equal(harvest1(f, "future2122"), 0);
	expect_line(f, 0, fut, SMP_HV_REFUSED, SMP_HR_EXPIRED);
	cost(f, 1);
}

/* The SHA-256 of d, hex, into out (as the keyring stores digests). */
static void sha256_hex(const void *d, size_t n, char out[65])
{
	gchar *h = g_compute_checksum_for_data(G_CHECKSUM_SHA256, d, n);

	assert_non_null(h);
	snprintf(out, 65, "%s", h);
	g_free(h);
}

/* The keyring's known blocks, the memo's second level: a block seen
 * before costs no crypto work after a restart (a new, empty memo) or on
 * another host; once the stored key changed (a merge), the row no longer
 * decides until the block is seen with the new key. */
static void test_known_blocks_persisted(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice");
	struct smp_harvest_memo *fresh = NULL;
	struct smp_known_block kb;
	struct smp_key_part p;
	struct smp_key_rec k;
	char digest[65], mat[65];
	unsigned long hits;
	size_t n;

	/* memo A (the fixture's) */
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_HARVESTED, SMP_HR_NONE);
	cost(f, 2);
	/* the row: the block as the message carried it, the material the
	 * keyring holds since */
	part_pub(&p, "alice");
	sha256_hex(p.data, p.size, digest);
	parts_free(&p, 1);
	assert_int_equal(smp_keyring_block_get(f->kr, digest, &kb), 0);
	assert_string_equal(kb.fpr, a);
	assert_int_equal(kb.seen, NOW);
	assert_int_equal(kb.usable_until, 0);   /* alice's key never expires */
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	sha256_hex(k.material, k.material_len, mat);
	smp_key_rec_clear(&k);
	assert_string_equal(kb.material, mat);

	/* a restart: a new, empty memo. No crypto work, and the memo
	 * learns the block from the keyring */
	fresh = smp_harvest_memo_new(0);
	assert_non_null(fresh);
	msg(f, "alice@example.org", DATE1 + DAY);
	f->ctx.memo = fresh;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	assert_int_equal(f->rep.known, 1);
	assert_int_equal(f->rep.known_stored, 1);
	smp_harvest_memo_stats(fresh, &n, &hits);
	assert_int_equal(n, 1);
	assert_int_equal(hits, 0);
	msg(f, "alice@example.org", DATE1 + 2 * DAY);
	f->ctx.memo = fresh;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	assert_int_equal(f->rep.known_stored, 0);
	smp_harvest_memo_stats(fresh, &n, &hits);
	assert_int_equal(hits, 1);
	smp_harvest_memo_free(fresh);

	/* a merge (an encryption subkey a day younger) changes the stored
	 * key: the old block's row names the old material */
	msg(f, "alice@example.org", DATE1 + 3 * DAY);
	part_rotated(f, &p, "alice");
	smp_harvest_report_clear(&f->rep);
	assert_int_equal(smp_harvest_message(f->kr, f->c, &f->ctx, &p, 1,
					     &f->rep), 0);
	parts_free(&p, 1);
	expect_line(f, 0, a, SMP_HV_MERGED, SMP_HR_NONE);
	cost(f, 2);
	assert_int_equal(smp_keyring_block_get(f->kr, digest, &kb), 0);
	assert_string_equal(kb.material, mat);
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 0);
	sha256_hex(k.material, k.material_len, mat);
	smp_key_rec_clear(&k);
	assert_string_not_equal(kb.material, mat);
	/* after a restart it does not decide: inspected (seen: the merged
	 * key has all of it), and the row now names the new material */
	fresh = smp_harvest_memo_new(0);
	assert_non_null(fresh);
	msg(f, "alice@example.org", DATE1 + 4 * DAY);
	f->ctx.memo = fresh;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 1);
	assert_int_equal(f->rep.known, 0);
	smp_harvest_memo_free(fresh);
	assert_int_equal(smp_keyring_block_get(f->kr, digest, &kb), 0);
	assert_string_equal(kb.material, mat);
	assert_int_equal(kb.seen, NOW);
	/* another restart (or another host, no memo at all): decided */
	msg(f, "alice@example.org", DATE1 + 5 * DAY);
	f->ctx.memo = NULL;
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_SEEN, SMP_HR_NONE);
	cost(f, 0);
	assert_int_equal(f->rep.known_stored, 1);

	/* a known block's row is not written again for every message: its
	 * seen is refreshed once a day */
	msg(f, "alice@example.org", DATE1 + 6 * DAY);
	f->ctx.now = NOW + DAY - 1;
	assert_int_equal(harvest1(f, "alice"), 0);
	cost(f, 0);
	assert_int_equal(smp_keyring_block_get(f->kr, digest, &kb), 0);
	assert_int_equal(kb.seen, NOW);
	msg(f, "alice@example.org", DATE1 + 7 * DAY);
	f->ctx.now = NOW + DAY;
	assert_int_equal(harvest1(f, "alice"), 0);
	cost(f, 0);
	assert_int_equal(smp_keyring_block_get(f->kr, digest, &kb), 0);
	assert_int_equal(kb.seen, NOW + DAY);
	assert_string_equal(kb.material, mat);

	/* the rows go with their key */
	assert_int_equal(smp_keyring_key_delete(f->kr, a), 0);
	assert_int_equal(smp_keyring_block_get(f->kr, digest, &kb), 1);
}

/* A key created in 2022 that expires in 2122 (past the 32-bit wrap of
 * 2106): harvested on both engines with its 64-bit expiry. */
static void test_key_expiring_2122(void **state)
{
	struct fx *f = *state;
	const char *fpr = fpr_of("future2122");
	struct smp_key_rec k;

	msg(f, "future@example.org", DATE1);
	assert_int_equal(harvest1(f, "future2122"), 0);
	expect_line(f, 0, fpr, SMP_HV_HARVESTED, SMP_HR_NONE);
	assert_int_equal(smp_keyring_key_get(f->kr, fpr, &k), 0);
	assert_int_equal(k.created, 1646125200);
	assert_int_equal(k.expires, 4801798800LL);
	assert_false(k.revoked);
	assert_int_equal(strlen(k.enc_keyids), 16);
	smp_key_rec_clear(&k);
	msg(f, "future@example.org", DATE1 + DAY);
	assert_int_equal(harvest1(f, "future2122"), 0);
	expect_line(f, 0, fpr, SMP_HV_SEEN, SMP_HR_NONE);
}

/* ------------------------------------------------------------------ */
/* Failures: nothing half-written                                       */

static void test_crypto_failure_writes_nothing(void **state)
{
	struct fx *f = *state;

	msg(f, "alice@example.org", DATE1);
	if (gnupg(f)) {
		/* gpg fails: the GnuPG home is gone */
		rmrf(f->home);
		assert_int_equal(harvest1(f, "alice"), -1);
		assert_non_null(strstr(f->rep.error, f->home));
	} else {
		/* no engine at all */
		struct smp_crypto *c = f->c;
		f->c = NULL;
		assert_int_equal(harvest1(f, "alice"), -1);
		f->c = c;
		assert_non_null(strstr(f->rep.error, "crypto engine"));
	}
	assert_int_equal(f->rep.n, 0);
	assert_int_equal(nbindings(f, "alice@example.org"), 0);
	assert_int_equal(nevents(f, "alice@example.org"), 0);
}

/* Runs sql on the test's keyring database, beside the library. */
static void raw_exec(struct fx *f, const char *sql)
{
	char msg[256];
	sqlite3 *db;

	if (on_pg()) {
		if (tpg_exec(f->db, sql, msg, sizeof(msg)) != 0)
			fail_msg("%s: %s", sql, msg);
		return;
	}
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_db_failure_rolls_back(void **state)
{
	struct fx *f = *state;
	const char *a = fpr_of("alice");
	struct smp_key_rec k;

	/* binding inserts fail (after the key was written) */
	raw_exec(f, on_pg() ?
		 "CREATE FUNCTION inject() RETURNS trigger LANGUAGE plpgsql "
		 "AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;"
		 "CREATE TRIGGER inject BEFORE INSERT ON bindings FOR EACH ROW "
		 "EXECUTE PROCEDURE inject();" :
		 "CREATE TRIGGER inject BEFORE INSERT ON bindings BEGIN SELECT "
		 "RAISE(ABORT, 'injected failure'); END;");
	msg(f, "alice@example.org", DATE1);
	assert_int_equal(harvest1(f, "alice"), -1);
	assert_non_null(strstr(f->rep.error, "injected failure"));
	assert_int_equal(smp_keyring_key_get(f->kr, a, &k), 1);
	assert_int_equal(nevents(f, "alice@example.org"), 0);
	raw_exec(f, on_pg() ? "DROP TRIGGER inject ON bindings" :
			      "DROP TRIGGER inject");
	/* and the next try works (the GnuPG cache already has the key) */
	assert_int_equal(harvest1(f, "alice"), 0);
	expect_line(f, 0, a, SMP_HV_HARVESTED, SMP_HR_NONE);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(smp_on_conflict_name(SMP_ON_CONFLICT_FLAG), "flag");
	assert_int_equal(smp_on_conflict_parse("replace"),
			 SMP_ON_CONFLICT_REPLACE);
	assert_int_equal(smp_on_conflict_parse("x"), -1);
	assert_string_equal(smp_require_auth_name(SMP_REQUIRE_AUTH_DMARC),
			    "dmarc");
	assert_int_equal(smp_require_auth_parse("none"), SMP_REQUIRE_AUTH_NONE);
	assert_string_equal(smp_harvest_reason_token(SMP_HR_NO_MATCHING_UID),
			    "no-matching-uid");
	assert_string_equal(smp_harvest_outcome_name(SMP_HV_KEPT), "kept");
	for (int r = 1; r < SMP_HR_COUNT; r++)
		assert_true(*smp_harvest_reason_token((enum smp_harvest_reason)r));
	assert_null(smp_harvest_reason_token(SMP_HR_COUNT));
	{
		struct smp_harvest_config c;
		smp_harvest_config_init(&c);
		assert_int_equal(c.sources, SMP_HARVEST_SRC(SMP_SRC_SMP));
		assert_int_equal(c.on_conflict, SMP_ON_CONFLICT_FLAG);
		assert_int_equal(c.require_auth, SMP_REQUIRE_AUTH_NONE);
		assert_false(c.outbound);
	}
}

static const struct {
	const char *name;
	CMUnitTestFunction f;
} engine_tests[] = {
	{"harvest_matching_sender", test_harvest_matching_sender},
	{"self_encryption_signal", test_self_encryption_signal},
	{"planting_refused", test_planting_refused},
	{"other_uid_not_bound", test_other_uid_not_bound},
	{"third_party_signatures_stripped",
	 test_third_party_signatures_stripped},
	{"own_domain", test_own_domain},
	{"sender_mismatch", test_sender_mismatch},
	{"require_auth", test_require_auth},
	{"weak_algorithms", test_weak_algorithms},
	{"expired_revoked_signonly", test_expired_revoked_signonly},
	{"secret_oversized_manyuid", test_secret_oversized_manyuid},
	{"bad_parts", test_bad_parts},
	{"two_keys_one_address", test_two_keys_one_address},
	{"conflict_flag_then_pin", test_conflict_flag_then_pin},
	{"conflict_keep", test_conflict_keep},
	{"conflict_replace", test_conflict_replace},
	{"seen_adds_no_events", test_seen_adds_no_events},
	{"merge_updated_key", test_merge_updated_key},
	{"older_message_changes_nothing", test_older_message_changes_nothing},
	{"blocked_never_reharvested", test_blocked_never_reharvested},
	{"revocation_of_known_key", test_revocation_of_known_key},
	{"addresses_exact", test_addresses_exact},
	{"sender_not_an_address", test_sender_not_an_address},
	{"sources", test_sources},
	{"no_parts_no_work", test_no_parts_no_work},
	{"crypto_failure_writes_nothing", test_crypto_failure_writes_nothing},
	{"db_failure_rolls_back", test_db_failure_rolls_back},
	{"key_expiring_2122", test_key_expiring_2122},
	{"known_key_no_crypto", test_known_key_no_crypto},
	{"known_blocks_persisted", test_known_blocks_persisted},
};

#define N_ENGINE_TESTS (sizeof(engine_tests) / sizeof(engine_tests[0]))
#define N_COMMON 2

/* One test body, two engines: every engine test runs once as
 * "rnp: NAME" and once as "gnupg: NAME", in one group (one summary). */
int main(void)
{
	static const char *const engines[] = {"rnp", "gnupg"};
	static char names[2 * N_ENGINE_TESTS][64], pg_names[N_ENGINE_TESTS][80];
	struct CMUnitTest pg_tests[N_ENGINE_TESTS];
	int failed;
	struct CMUnitTest tests[2 * N_ENGINE_TESTS + N_COMMON] = {
		[2 * N_ENGINE_TESTS] = cmocka_unit_test(test_auth_results_parser),
		[2 * N_ENGINE_TESTS + 1] = cmocka_unit_test(test_names),
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
	/* the rnp tests again on a PostgreSQL keyring */
	for (size_t i = 0; i < N_ENGINE_TESTS; i++) {
		snprintf(pg_names[i], sizeof(pg_names[i]), "rnp on postgresql: %s",
			 engine_tests[i].name);
		pg_tests[i] = tests[i];
		pg_tests[i].name = pg_names[i];
	}
	t_filter_from_env();
	failed = cmocka_run_group_tests_name("harvest", tests, group_setup,
					     group_teardown);
	kr_backend = "postgresql";
	failed += cmocka_run_group_tests_name("harvest on postgresql", pg_tests,
					      group_setup, group_teardown);
	return failed;
}
