/* test_policy.c - unit tests for lib/smp_policy.c: rule precedence, and
 * the per-message decision against a real SQLite keyring holding the
 * fixture keys (fingerprints from gpg --show-keys, not from libsmp).
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
#include <time.h>
#include <unistd.h>

#include "smp_keyring.h"
#include "smp_policy.h"
#include "test_pg.h"
#include "test_util.h"

#define KEYS FIXTURES_DIR "/keys/"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */


static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st;
	(void)f;
	(void)w;
	return remove(p);
}

static char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p = malloc(512);

	assert_non_null(p);
	snprintf(p, 512, "%s/smp-test-policy.XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(p));
	return p;
}

/* The primary fingerprint of a fixture key, as gpg --show-keys says. */
static char *show_home; /* an empty GnuPG home for gpg --show-keys */

static void fpr_of(const char *name, char out[SMP_FPR_MAX])
{
	char cmd[1024], line[4096];
	FILE *p;
	bool pub = false;

	out[0] = '\0';
	snprintf(cmd, sizeof(cmd),
		 "gpg --homedir '%s' --batch --no-tty --with-colons "
		 "--show-keys '" KEYS "%s.pub.gpg' 2>/dev/null",
		 show_home, name);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "pub:", 4) == 0)
			pub = true;
		else if (pub && !out[0] && strncmp(line, "fpr:", 4) == 0) {
			char *f = line + 4;
			for (int i = 0; i < 8 && f; i++)
				f = strchr(f, ':') ? strchr(f, ':') + 1 : NULL;
			assert_non_null(f);
			snprintf(out, SMP_FPR_MAX, "%.40s", f);
		}
	}
	pclose(p);
	assert_int_equal(strlen(out), 40);
}

/* The backend the running group uses: the keyring-backed tests run on
 * an SQLite file and again on PostgreSQL (test_pg.h). */
static const char *kr_backend = "sqlite";

struct env {
	char *dir;
	char schema[64];
	struct smp_keyring *kr;
	struct smp_policy *p;
	int64_t now;
};

static char FPR_BOB[SMP_FPR_MAX], FPR_CAROL[SMP_FPR_MAX],
	FPR_ALICE[SMP_FPR_MAX], FPR_DAVE[SMP_FPR_MAX],
	FPR_REVOKED[SMP_FPR_MAX], FPR_EXPIRED[SMP_FPR_MAX],
	FPR_OTHER[SMP_FPR_MAX];

static int group_setup(void **state)
{
	(void)state;
	show_home = tmpdir();
	fpr_of("bob", FPR_BOB);
	fpr_of("carol", FPR_CAROL);
	fpr_of("alice", FPR_ALICE);
	fpr_of("dave", FPR_DAVE);
	fpr_of("revoked", FPR_REVOKED);
	fpr_of("expired", FPR_EXPIRED);
	fpr_of("alice-other", FPR_OTHER);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	nftw(show_home, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(show_home);
	return 0;
}

/* Stores fixture key name with its material; expires/revoked given. */
static void put_key(struct env *e, const char *name, const char *fpr,
		    int64_t expires, bool revoked)
{
	struct smp_key_rec k;
	char path[512];

	memset(&k, 0, sizeof(k));
	snprintf(path, sizeof(path), KEYS "%s.pub.gpg", name);
	k.material = slurp(path, &k.material_len);
	snprintf(k.fpr, sizeof(k.fpr), "%s", fpr);
	snprintf(k.algo, sizeof(k.algo), "ed25519");
	k.bits = 255;
	k.created = 1740787200; /* 2025-03-01 */
	k.expires = expires;
	k.revoked = revoked;
	snprintf(k.enc_keyids, sizeof(k.enc_keyids), "0123456789ABCDEF");
	assert_int_equal(smp_keyring_key_put(e->kr, &k), 0);
	free(k.material);
}

static void bind(struct env *e, const char *addr, const char *fpr,
		 enum smp_bind_state st, int64_t seen)
{
	struct smp_binding b;

	memset(&b, 0, sizeof(b));
	b.address = (char *)addr;
	snprintf(b.fpr, sizeof(b.fpr), "%s", fpr);
	b.state = st;
	b.source = SMP_SRC_SMP;
	b.first_seen = seen;
	b.last_seen = seen;
	b.msg_date = seen;
	b.times_seen = 1;
	assert_int_equal(smp_keyring_binding_put(e->kr, &b), 0);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char path[TPG_CONNINFO_MAX + 128], err[512];

	assert_non_null(e);
	e->dir = tmpdir();
	if (strcmp(kr_backend, "postgresql") == 0) {
		if (tpg_schema_new(path, sizeof(path), e->schema,
				   sizeof(e->schema)) != 0)
			fail_msg("no PostgreSQL server for the test");
	} else {
		snprintf(path, sizeof(path), "%s/keyring.db", e->dir);
	}
	if (smp_keyring_open(kr_backend, path, &e->kr, err, sizeof(err)) != 0)
		fail_msg("keyring: %s", err);
	e->now = (int64_t)time(NULL);
	e->p = smp_policy_new(SMP_ENC_OPPORTUNISTIC);
	assert_non_null(e->p);
	put_key(e, "bob", FPR_BOB, 0, false);
	put_key(e, "carol", FPR_CAROL, 0, false);
	bind(e, "bob@example.net", FPR_BOB, SMP_BIND_ACTIVE, e->now - 100);
	bind(e, "carol@example.com", FPR_CAROL, SMP_BIND_ACTIVE,
	     e->now - 100);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	smp_policy_free(e->p);
	smp_keyring_close(e->kr);
	nftw(e->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(e->dir);
	if (e->schema[0])
		tpg_schema_drop(e->schema);
	free(e);
	return 0;
}

static void decide(struct env *e, const char *const *r, size_t n,
		   struct smp_decision *d)
{
	assert_int_equal(smp_policy_decide(e->p, e->kr, r, n, e->now, d), 0);
	assert_int_equal(d->n, n);
}

/* ------------------------------------------------------------------ */
/* Rules                                                               */

static void test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(smp_encrypt_mode_name(SMP_ENC_OFF), "off");
	assert_string_equal(smp_encrypt_mode_name(SMP_ENC_OPPORTUNISTIC),
			    "opportunistic");
	assert_string_equal(smp_encrypt_mode_name(SMP_ENC_REQUIRED),
			    "required");
	assert_int_equal(smp_encrypt_mode_parse("off"), SMP_ENC_OFF);
	assert_int_equal(smp_encrypt_mode_parse("opportunistic"),
			 SMP_ENC_OPPORTUNISTIC);
	assert_int_equal(smp_encrypt_mode_parse("required"), SMP_ENC_REQUIRED);
	assert_int_equal(smp_encrypt_mode_parse("Required"), -1);
	assert_int_equal(smp_encrypt_mode_parse(""), -1);
	assert_int_equal(smp_encrypt_mode_parse(NULL), -1);
	assert_string_equal(smp_action_name(SMP_ACTION_REFUSE), "refuse");
	assert_string_equal(smp_rcpt_class_name(SMP_RCPT_ENCRYPT), "encrypt");
	assert_string_equal(smp_nokey_name(SMP_NOKEY_CONFLICT), "conflict");
}

static void test_lookup_precedence(void **state)
{
	struct smp_policy *p = smp_policy_new(SMP_ENC_OFF);

	(void)state;
	assert_non_null(p);
	assert_int_equal(smp_policy_for(p, "bob@example.net"), SMP_ENC_OFF);

	assert_int_equal(smp_policy_add_domain(p, "Example.NET",
					       SMP_ENC_OPPORTUNISTIC),
			 0);
	assert_int_equal(smp_policy_add_address(p, "bob@EXAMPLE.net",
						SMP_ENC_REQUIRED),
			 0);
	assert_int_equal(smp_policy_add_domain(p, ".corp.example",
					       SMP_ENC_REQUIRED),
			 0);
	assert_int_equal(smp_policy_add_domain(p, "@eu.corp.example",
					       SMP_ENC_OFF),
			 0);
	assert_int_equal(smp_policy_nrules(p), 4);

	/* address rule: domain case-insensitive, local part exact */
	assert_int_equal(smp_policy_for(p, "bob@example.net"),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(p, "<bob@Example.Net>"),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(p, " bob@EXAMPLE.NET "),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(p, "Bob@example.net"),
			 SMP_ENC_OPPORTUNISTIC); /* domain rule */
	/* domain rule */
	assert_int_equal(smp_policy_for(p, "carol@example.net"),
			 SMP_ENC_OPPORTUNISTIC);
	assert_int_equal(smp_policy_for(p, "carol@EXAMPLE.NET"),
			 SMP_ENC_OPPORTUNISTIC);
	/* a domain rule is not one for its subdomains */
	assert_int_equal(smp_policy_for(p, "carol@mx.example.net"),
			 SMP_ENC_OFF);
	/* subdomain rules, the longest match first; not the domain itself */
	assert_int_equal(smp_policy_for(p, "a@x.corp.example"),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(p, "a@x.y.corp.example"),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(p, "a@eu.corp.example"), SMP_ENC_OFF);
	assert_int_equal(smp_policy_for(p, "a@corp.example"), SMP_ENC_OFF);
	/* default, and the default for what is no address */
	assert_int_equal(smp_policy_for(p, "x@example.org"), SMP_ENC_OFF);
	smp_policy_set_default(p, SMP_ENC_OPPORTUNISTIC);
	assert_int_equal(smp_policy_for(p, "x@example.org"),
			 SMP_ENC_OPPORTUNISTIC);
	assert_int_equal(smp_policy_for(p, "<postmaster>"),
			 SMP_ENC_OPPORTUNISTIC);
	assert_int_equal(smp_policy_for(p, ""), SMP_ENC_OPPORTUNISTIC);

	/* an exact domain rule beats a subdomain rule */
	assert_int_equal(smp_policy_add_domain(p, "x.corp.example",
					       SMP_ENC_OPPORTUNISTIC),
			 0);
	assert_int_equal(smp_policy_for(p, "a@x.corp.example"),
			 SMP_ENC_OPPORTUNISTIC);
	/* an address rule beats every domain rule */
	assert_int_equal(smp_policy_add_address(p, "a@x.corp.example",
						SMP_ENC_OFF),
			 0);
	assert_int_equal(smp_policy_for(p, "a@X.Corp.Example"), SMP_ENC_OFF);
	smp_policy_free(p);
}

static void test_rule_validation(void **state)
{
	struct smp_policy *p = smp_policy_new(SMP_ENC_OFF);

	(void)state;
	errno = 0;
	assert_int_equal(smp_policy_add_domain(p, "", SMP_ENC_OFF), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(smp_policy_add_domain(p, ".", SMP_ENC_OFF), -1);
	assert_int_equal(smp_policy_add_domain(p, "a..b", SMP_ENC_OFF), -1);
	assert_int_equal(smp_policy_add_domain(p, "exa mple.org", SMP_ENC_OFF),
			 -1);
	assert_int_equal(smp_policy_add_domain(p, "a@b.org", SMP_ENC_OFF), -1);
	assert_int_equal(smp_policy_add_domain(p, "b.org.", SMP_ENC_OFF), -1);
	assert_int_equal(smp_policy_add_domain(p, "b.org", (enum smp_encrypt_mode)7),
			 -1);
	errno = 0;
	assert_int_equal(smp_policy_add_address(p, "no-at-sign", SMP_ENC_OFF),
			 -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(smp_policy_add_address(p, "@example.org", SMP_ENC_OFF),
			 -1);
	assert_int_equal(smp_policy_nrules(p), 0);
	/* the same rule again replaces it and says so */
	assert_int_equal(smp_policy_add_domain(p, "b.org", SMP_ENC_OFF), 0);
	assert_int_equal(smp_policy_add_domain(p, "B.ORG", SMP_ENC_REQUIRED), 1);
	assert_int_equal(smp_policy_for(p, "x@b.org"), SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_add_address(p, "x@b.org", SMP_ENC_OFF), 0);
	assert_int_equal(smp_policy_add_address(p, "<x@B.org>",
						SMP_ENC_OPPORTUNISTIC),
			 1);
	assert_int_equal(smp_policy_for(p, "x@b.org"), SMP_ENC_OPPORTUNISTIC);
	assert_int_equal(smp_policy_nrules(p), 2);
	smp_policy_free(p);
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

static void test_decide_all_keys(void **state)
{
	struct env *e = *state;
	const char *r[] = {"<bob@example.net>", "carol@Example.COM",
			   "bob@example.net"};
	struct smp_decision d;

	decide(e, r, 3, &d);
	assert_int_equal(d.action, SMP_ACTION_ENCRYPT);
	assert_int_equal(d.nblocking, 0);
	/* distinct keys, in recipient order */
	assert_int_equal(d.nfprs, 2);
	assert_string_equal(d.fprs[0], FPR_BOB);
	assert_string_equal(d.fprs[1], FPR_CAROL);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(d.rcpts[i].cls, SMP_RCPT_ENCRYPT);
		assert_int_equal(d.rcpts[i].mode, SMP_ENC_OPPORTUNISTIC);
		assert_int_equal(d.rcpts[i].why, SMP_NOKEY_NONE);
		assert_int_equal(d.rcpts[i].state, SMP_BIND_ACTIVE);
		assert_false(d.rcpts[i].blocking);
	}
	assert_string_equal(d.rcpts[0].address, "bob@example.net");
	assert_string_equal(d.rcpts[1].address, "carol@example.com");
	assert_string_equal(d.rcpts[1].fpr, FPR_CAROL);
	smp_decision_clear(&d);

	/* required everywhere changes nothing when all have keys */
	smp_policy_set_default(e->p, SMP_ENC_REQUIRED);
	decide(e, r, 2, &d);
	assert_int_equal(d.action, SMP_ACTION_ENCRYPT);
	smp_decision_clear(&d);

	/* no recipients: nothing to encrypt for */
	decide(e, r, 0, &d);
	assert_int_equal(d.action, SMP_ACTION_PLAIN);
	smp_decision_clear(&d);
}

static void test_decide_missing_opportunistic(void **state)
{
	struct env *e = *state;
	const char *r[] = {"bob@example.net", "dave@example.net"};
	struct smp_decision d;

	decide(e, r, 2, &d);
	assert_int_equal(d.action, SMP_ACTION_PLAIN);
	assert_int_equal(d.nblocking, 0);
	assert_int_equal(d.rcpts[0].cls, SMP_RCPT_ENCRYPT);
	assert_int_equal(d.rcpts[1].cls, SMP_RCPT_PLAIN);
	assert_int_equal(d.rcpts[1].why, SMP_NOKEY_NO_BINDING);
	assert_string_equal(d.rcpts[1].fpr, "");
	assert_false(d.rcpts[1].blocking);
	/* the keys that were found are still listed */
	assert_int_equal(d.nfprs, 1);
	smp_decision_clear(&d);
}

static void test_decide_required_missing(void **state)
{
	struct env *e = *state;
	const char *r[] = {"bob@example.net", "dave@example.net",
			   "carol@example.com"};
	struct smp_decision d;
	char *s;

	assert_int_equal(smp_policy_add_address(e->p, "dave@example.net",
						SMP_ENC_REQUIRED),
			 0);
	decide(e, r, 3, &d);
	assert_int_equal(d.action, SMP_ACTION_REFUSE);
	assert_int_equal(d.nblocking, 1);
	assert_true(d.rcpts[1].blocking);
	assert_int_equal(d.rcpts[1].cls, SMP_RCPT_REFUSE);
	assert_int_equal(d.rcpts[1].mode, SMP_ENC_REQUIRED);
	assert_false(d.rcpts[0].blocking);
	assert_false(d.rcpts[2].blocking);
	s = smp_decision_blocking(&d, false, 512);
	assert_string_equal(s, "dave@example.net");
	free(s);
	s = smp_decision_blocking(&d, true, 512);
	assert_string_equal(s, "dave@example.net (no-key)");
	free(s);
	smp_decision_clear(&d);
}

/* A required recipient never gets plain text, also when it has a key
 * itself and another recipient lacks one: the other one is named. */
static void test_decide_required_with_key_other_missing(void **state)
{
	struct env *e = *state;
	const char *r[] = {"bob@example.net", "dave@example.net",
			   "erin@example.org"};
	struct smp_decision d;
	char *s;

	assert_int_equal(smp_policy_add_domain(e->p, "example.net",
					       SMP_ENC_REQUIRED),
			 0);
	assert_int_equal(smp_policy_add_address(e->p, "dave@example.net",
						SMP_ENC_OPPORTUNISTIC),
			 0);
	decide(e, r, 3, &d);
	assert_int_equal(d.action, SMP_ACTION_REFUSE);
	assert_int_equal(d.rcpts[0].mode, SMP_ENC_REQUIRED);
	assert_int_equal(d.rcpts[0].cls, SMP_RCPT_ENCRYPT);
	assert_int_equal(d.rcpts[1].cls, SMP_RCPT_PLAIN);
	assert_int_equal(d.rcpts[2].cls, SMP_RCPT_PLAIN);
	assert_int_equal(d.nblocking, 2);
	s = smp_decision_blocking(&d, false, 512);
	assert_string_equal(s, "dave@example.net, erin@example.org");
	free(s);
	/* truncated to what fits */
	s = smp_decision_blocking(&d, false, 32);
	assert_string_equal(s, "dave@example.net, ...");
	free(s);
	smp_decision_clear(&d);

	/* without the required one, the same mixed message goes plain */
	{
		const char *r2[] = {"dave@example.net", "erin@example.org"};
		decide(e, r2, 2, &d);
		assert_int_equal(d.action, SMP_ACTION_PLAIN);
		smp_decision_clear(&d);
	}
}

static void test_decide_off(void **state)
{
	struct env *e = *state;
	const char *r[] = {"bob@example.net", "carol@example.com"};
	struct smp_decision d;
	char *s;

	/* carol has a key but her policy is off: the message goes plain */
	assert_int_equal(smp_policy_add_address(e->p, "carol@example.com",
						SMP_ENC_OFF),
			 0);
	decide(e, r, 2, &d);
	assert_int_equal(d.action, SMP_ACTION_PLAIN);
	assert_int_equal(d.rcpts[1].cls, SMP_RCPT_PLAIN);
	assert_int_equal(d.rcpts[1].why, SMP_NOKEY_POLICY_OFF);
	assert_string_equal(d.rcpts[1].fpr, "");
	smp_decision_clear(&d);

	/* off next to required: refused, naming the off one */
	assert_int_equal(smp_policy_add_address(e->p, "bob@example.net",
						SMP_ENC_REQUIRED),
			 0);
	decide(e, r, 2, &d);
	assert_int_equal(d.action, SMP_ACTION_REFUSE);
	s = smp_decision_blocking(&d, true, 512);
	assert_string_equal(s, "carol@example.com (encryption off)");
	free(s);
	smp_decision_clear(&d);

	/* everything off */
	smp_policy_set_default(e->p, SMP_ENC_OFF);
	{
		const char *r2[] = {"dave@example.net"};
		decide(e, r2, 1, &d);
		assert_int_equal(d.action, SMP_ACTION_PLAIN);
		smp_decision_clear(&d);
	}
}

static void test_not_an_address(void **state)
{
	struct env *e = *state;
	const char *r[] = {"<postmaster>"};
	struct smp_decision d;

	smp_policy_set_default(e->p, SMP_ENC_REQUIRED);
	decide(e, r, 1, &d);
	assert_int_equal(d.action, SMP_ACTION_REFUSE);
	assert_int_equal(d.rcpts[0].why, SMP_NOKEY_NOT_ADDRESS);
	assert_string_equal(d.rcpts[0].address, "<postmaster>");
	smp_decision_clear(&d);
}

/* One recipient with mode required: its class and reason. */
static void expect_unusable(struct env *e, const char *addr,
			    enum smp_nokey why)
{
	struct smp_rcpt_decision r;

	assert_int_equal(smp_policy_recipient(e->p, e->kr, addr, e->now, &r),
			 0);
	assert_int_equal(r.mode, SMP_ENC_REQUIRED);
	assert_int_equal(r.cls, SMP_RCPT_REFUSE);
	assert_string_equal(r.fpr, "");
	if (r.why != why)
		fail_msg("%s: reason %s, want %s", addr, smp_nokey_name(r.why),
			 smp_nokey_name(why));
	smp_rcpt_decision_clear(&r);
}

static void test_unusable_keys(void **state)
{
	struct env *e = *state;

	smp_policy_set_default(e->p, SMP_ENC_REQUIRED);
	/* a revoked key */
	put_key(e, "revoked", FPR_REVOKED, 0, true);
	bind(e, "revoked@example.org", FPR_REVOKED, SMP_BIND_ACTIVE, e->now);
	expect_unusable(e, "revoked@example.org", SMP_NOKEY_REVOKED);
	/* an expired key (the fixture expired 2020-12-31) */
	put_key(e, "expired", FPR_EXPIRED, 1609372800, false);
	bind(e, "expired@example.org", FPR_EXPIRED, SMP_BIND_ACTIVE, e->now);
	expect_unusable(e, "expired@example.org", SMP_NOKEY_EXPIRED);
	/* expiry is compared with now: expires == now is expired */
	put_key(e, "dave", FPR_DAVE, e->now, false);
	bind(e, "dave@example.net", FPR_DAVE, SMP_BIND_ACTIVE, e->now);
	expect_unusable(e, "dave@example.net", SMP_NOKEY_EXPIRED);
	put_key(e, "dave", FPR_DAVE, e->now + 60, false);
	{
		struct smp_rcpt_decision r;
		assert_int_equal(smp_policy_recipient(e->p, e->kr,
						      "dave@example.net",
						      e->now, &r),
				 0);
		assert_int_equal(r.cls, SMP_RCPT_ENCRYPT);
		assert_string_equal(r.fpr, FPR_DAVE);
		smp_rcpt_decision_clear(&r);
	}
	/* a blocked key (smpctl keys block) */
	assert_int_equal(smp_keyring_key_set_blocked(e->kr, FPR_CAROL, true),
			 0);
	expect_unusable(e, "carol@example.com", SMP_NOKEY_BLOCKED);
	/* a blocked binding */
	put_key(e, "alice", FPR_ALICE, 0, false);
	bind(e, "alice@example.org", FPR_ALICE, SMP_BIND_BLOCKED, e->now);
	expect_unusable(e, "alice@example.org", SMP_NOKEY_BLOCKED);
	/* a revoked binding (replaced) */
	bind(e, "alice@example.org", FPR_ALICE, SMP_BIND_REVOKED, e->now);
	expect_unusable(e, "alice@example.org", SMP_NOKEY_REVOKED);
	/* a conflict: both bindings in conflict, no key */
	put_key(e, "alice-other", FPR_OTHER, 0, false);
	bind(e, "alice@example.org", FPR_ALICE, SMP_BIND_CONFLICT, e->now);
	bind(e, "alice@example.org", FPR_OTHER, SMP_BIND_CONFLICT, e->now);
	expect_unusable(e, "alice@example.org", SMP_NOKEY_CONFLICT);
	/* an active binding next to one in conflict: still no key */
	bind(e, "alice@example.org", FPR_ALICE, SMP_BIND_ACTIVE, e->now);
	expect_unusable(e, "alice@example.org", SMP_NOKEY_CONFLICT);
	/* no binding at all */
	expect_unusable(e, "nobody@example.org", SMP_NOKEY_NO_BINDING);
}

static void test_pinned_preferred(void **state)
{
	struct env *e = *state;
	struct smp_rcpt_decision r;

	/* bob: a newer active binding of another key, an older pinned one */
	put_key(e, "alice-other", FPR_OTHER, 0, false);
	bind(e, "bob@example.net", FPR_OTHER, SMP_BIND_ACTIVE, e->now - 10);
	assert_int_equal(smp_keyring_binding_set_state(e->kr, "bob@example.net",
						       FPR_BOB,
						       SMP_BIND_PINNED),
			 0);
	assert_int_equal(smp_policy_recipient(e->p, e->kr, "bob@example.net",
					      e->now, &r),
			 0);
	assert_string_equal(r.fpr, FPR_BOB);
	assert_int_equal(r.state, SMP_BIND_PINNED);
	assert_int_equal(r.cls, SMP_RCPT_ENCRYPT);
	smp_rcpt_decision_clear(&r);

	/* pinned next to bindings in conflict: the pinned one wins */
	bind(e, "bob@example.net", FPR_OTHER, SMP_BIND_CONFLICT, e->now - 10);
	assert_int_equal(smp_policy_recipient(e->p, e->kr, "bob@example.net",
					      e->now, &r),
			 0);
	assert_string_equal(r.fpr, FPR_BOB);
	smp_rcpt_decision_clear(&r);

	/* an unusable pinned key is not silently replaced by an active one */
	bind(e, "bob@example.net", FPR_OTHER, SMP_BIND_ACTIVE, e->now - 10);
	assert_int_equal(smp_keyring_key_set_blocked(e->kr, FPR_BOB, true), 0);
	assert_int_equal(smp_policy_recipient(e->p, e->kr, "bob@example.net",
					      e->now, &r),
			 0);
	assert_string_equal(r.fpr, "");
	assert_int_equal(r.why, SMP_NOKEY_BLOCKED);
	assert_int_equal(r.cls, SMP_RCPT_PLAIN); /* opportunistic */
	smp_rcpt_decision_clear(&r);

	/* without the pin, the active one is used */
	assert_int_equal(smp_keyring_binding_delete(e->kr, "bob@example.net",
						    FPR_BOB),
			 0);
	assert_int_equal(smp_policy_recipient(e->p, e->kr, "bob@example.net",
					      e->now, &r),
			 0);
	assert_string_equal(r.fpr, FPR_OTHER);
	assert_int_equal(r.state, SMP_BIND_ACTIVE);
	smp_rcpt_decision_clear(&r);
}

/* Of several active bindings the newest usable one is taken. */
static void test_newest_active(void **state)
{
	struct env *e = *state;
	struct smp_rcpt_decision r;

	put_key(e, "alice", FPR_ALICE, 0, false);
	put_key(e, "alice-other", FPR_OTHER, 0, true); /* revoked */
	bind(e, "alice@example.org", FPR_ALICE, SMP_BIND_ACTIVE, e->now - 50);
	bind(e, "alice@example.org", FPR_OTHER, SMP_BIND_ACTIVE, e->now - 5);
	assert_int_equal(smp_policy_recipient(e->p, e->kr,
					      "alice@example.org", e->now, &r),
			 0);
	assert_string_equal(r.fpr, FPR_ALICE);
	smp_rcpt_decision_clear(&r);
}

/* A keyring that cannot be read is an error, never "no key". */
static void test_keyring_error(void **state)
{
	struct env *e = *state;
	const char *r[] = {"bob@example.net"};
	struct smp_decision d;

	assert_int_equal(smp_policy_decide(e->p, NULL, r, 1, e->now, &d), -1);
	assert_null(d.rcpts);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.action, SMP_ACTION_PLAIN);
	/* mode off needs no keyring */
	smp_policy_set_default(e->p, SMP_ENC_OFF);
	assert_int_equal(smp_policy_decide(e->p, NULL, r, 1, e->now, &d), 0);
	assert_int_equal(d.action, SMP_ACTION_PLAIN);
	smp_decision_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mode_names),
		cmocka_unit_test(test_lookup_precedence),
		cmocka_unit_test(test_rule_validation),
		cmocka_unit_test_setup_teardown(test_decide_all_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_decide_missing_opportunistic,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_decide_required_missing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_decide_required_with_key_other_missing, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_decide_off, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_not_an_address, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unusable_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pinned_preferred, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_newest_active, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keyring_error, setup,
						teardown),
	};

	int failed;

	t_filter_from_env();
	failed = cmocka_run_group_tests_name("policy on sqlite", tests,
					     group_setup, group_teardown);
	/* the keyring-backed tests again (the first three need none) */
	kr_backend = "postgresql";
	failed += _cmocka_run_group_tests("policy on postgresql", tests + 3,
					  sizeof(tests) / sizeof(tests[0]) - 3,
					  group_setup, group_teardown);
	return failed;
}
