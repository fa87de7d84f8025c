/* milter.c - the libmilter callbacks: collect, call libsmp, act.
 *
 * State lives in a connection context (smfi_setpriv) with a message context
 * inside it; libmilter runs callbacks on a worker pool, so nothing is kept
 * in thread-locals or globals. Non-SMP messages are not buffered (the body
 * is skipped as soon as the headers are complete) unless a pgp-keys harvest
 * or outbound encryption (SPEC 5: an outbound message with a recipient
 * whose encrypt mode is not off) needs the body. Encryption happens at end
 * of message: forged X-SMP-* headers are removed first, then the header
 * edits of smp_encrypt_message() are made in their order, then the body is
 * replaced (Postfix takes no header change after smfi_replacebody).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "discwork.h"
#include "keypool.h"
#include "keywork.h"
#include "log.h"
#include "smp_encrypt.h"
#include "smp_milter.h"
#include "smp_policy.h"
#include "smp_validate.h"

#define HDR_STATUS "X-SMP-Status"
#define HDR_PREFIX "X-SMP-"
#define REPLACEBODY_CHUNK 65536

/* What the MTA agreed to in negotiation. */
struct proto {
	bool skip;       /* SMFIS_SKIP understood */
	bool nr_hdr;     /* header replies off */
	bool nr_eoh;
	bool nr_conn;
	bool nr_mail;
	bool nr_rcpt;
	bool leadspc;    /* header values keep their leading space */
	bool chgbody;    /* SMFIF_CHGBODY granted: a body may be replaced */
};

/* A growable list of strings. */
struct strlist {
	char **v;
	size_t n;
};

/* X-SMP-* headers seen, by name, to delete at end of message. */
struct forged {
	char *name;
	int count;
};

struct msgctx {
	/* the configuration current at MAIL and its generation; at end of
	 * message the current one is adopted (msg_adopt_current) */
	struct smp_config *cfg;
	unsigned long gen;
	bool auth;            /* {auth_authen} was set at MAIL */
	char *subject_raw;    /* the first Subject (detection again on reload) */
	char *buf;            /* headers (+ body when SMP) as received */
	size_t len, cap;
	bool have_subject;
	bool is_smp;
	bool too_large;       /* over limits.max_message_bytes: not buffered */
	bool outbound;
	size_t total;         /* bytes seen, buffered or not */
	struct forged *forged;  /* every X-SMP-* name seen, no limit */
	unsigned nforged;
	struct timespec start;
	const char *error;    /* internal failure to report at body/eom */
	/* what the keyring steps need (only kept for SMP messages) */
	char *env_from;
	struct strlist rcpts;
	char *from_raw, *date_raw, *message_id;
	unsigned nfrom;
	struct strlist auth_results;
	struct strlist autocrypt;  /* Autocrypt: values (harvest.sources) */
	char *ctype_raw;           /* top-level Content-Type */
	bool want_body;            /* buffer the body: SMP, pgp-keys harvest,
				    * or encryption */
	/* outbound encryption (SPEC 5) */
	bool may_encrypt;          /* outbound, a recipient's mode is not off */
	bool any_required;         /* a recipient's mode is required: plain
				    * text never passes, errors tempfail */
	bool want_encrypt;         /* may_encrypt and not SMP: decide at eom */
	bool have_class;           /* split_recipients: class of the first */
	enum smp_rcpt_class first_class;
	int64_t disc_deadline;     /* key discovery budget (discwork.h) */
	bool disc_failed;          /* a lookup failed closed where no RCPT
				    * reply could be sent (SMFIP_NR_RCPT was
				    * negotiated before a reload turned
				    * discovery on): the message is
				    * tempfailed at end of message */
};

struct connctx {
	struct smp_config *cfg;   /* the config the connection negotiated
				   * with; each message holds its own */
	struct proto proto;
	struct sockaddr_storage addr;
	bool have_addr;
	char *daemon_name;        /* {daemon_name} at connect, or NULL */
	char client[64];          /* client address as text, "" if unknown */
	struct msgctx *msg;
};

static struct connctx *conn_get(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool strlist_add(struct strlist *l, const char *s)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(char *));

	if (!v)
		return false;
	l->v = v;
	l->v[l->n] = strdup(s);
	return l->v[l->n++] != NULL;
}

/* "<a@b>" -> "a@b" (malloc'd) */
static char *strip_brackets(const char *a)
{
	size_t n = strlen(a);

	if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
		return strndup(a + 1, n - 2);
	return strdup(a);
}

static void msg_free(struct msgctx *m)
{
	if (!m)
		return;
	if (m->cfg)
		smp_conf_put(m->cfg);
	free(m->subject_raw);
	free(m->env_from);
	strlist_free(&m->rcpts);
	free(m->from_raw);
	free(m->date_raw);
	free(m->message_id);
	strlist_free(&m->auth_results);
	strlist_free(&m->autocrypt);
	free(m->ctype_raw);
	for (unsigned i = 0; i < m->nforged; i++)
		free(m->forged[i].name);
	free(m->forged);
	free(m->buf);
	free(m);
}

static void conn_free(struct connctx *c)
{
	if (!c)
		return;
	msg_free(c->msg);
	if (c->cfg)
		smp_conf_put(c->cfg);
	free(c->daemon_name);
	free(c);
}

/* Allocates the connection context on first use. */
static struct connctx *conn_ensure(SMFICTX *ctx)
{
	struct connctx *c = conn_get(ctx);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cfg = smp_conf_get();
	if (!c->cfg || smfi_setpriv(ctx, c) != MI_SUCCESS) {
		conn_free(c);
		return NULL;
	}
	return c;
}

static const char *queue_id(SMFICTX *ctx)
{
	const char *id = smfi_getsymval(ctx, "i");
	return id ? id : "NOQUEUE";
}

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 +
	       (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* on_error: what an internal failure answers. */
static sfsistat internal_error(SMFICTX *ctx, struct connctx *c, const char *what)
{
	/* a message for a required recipient never passes unencrypted; a
	 * message follows the config it holds, a connection its own */
	const struct smp_config *cfg = c && c->msg && c->msg->cfg ? c->msg->cfg
				     : c                          ? c->cfg
								  : NULL;
	bool accept = cfg && cfg->on_error == SMP_ON_ERROR_ACCEPT &&
		      !(c->msg && c->msg->any_required);

	smp_log(LOG_ERR, "%s: internal error: %s; action=%s", queue_id(ctx), what,
		accept ? "accept" : "tempfail");
	if (accept)
		return SMFIS_ACCEPT;
	smfi_setreply(ctx, "451", "4.3.0", "smp-milter: temporary internal error");
	return SMFIS_TEMPFAIL;
}

static bool buf_append(struct msgctx *m, const void *p, size_t n)
{
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap : 16384;
		char *nb;
		while (cap < m->len + n)
			cap *= 2;
		nb = realloc(m->buf, cap);
		if (!nb)
			return false;
		m->buf = nb;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	return true;
}

static void buf_drop(struct msgctx *m)
{
	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
}

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			     unsigned long f2, unsigned long f3,
			     unsigned long *pf0, unsigned long *pf1,
			     unsigned long *pf2, unsigned long *pf3)
{
	struct connctx *c = conn_ensure(ctx);
	unsigned long want = SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA;
	unsigned long optional = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
				 SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_SKIP |
				 SMFIP_HDR_LEADSPC;

	(void)f2;
	(void)f3;
	if (!c)
		return SMFIS_REJECT; /* libmilter: fail the negotiation */
	/* split_recipients and key discovery (a lookup error tempfails the
	 * recipient) answer at RCPT time: no SMFIP_NR_RCPT then */
	if ((c->cfg->encrypt_split_recipients && c->cfg->encrypt_any) ||
	    c->cfg->disc_any)
		optional &= ~(unsigned long)SMFIP_NR_RCPT;
	*pf0 = (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_CHGBODY) & f0;
	*pf1 = (want | optional) & f1;
	*pf2 = 0;
	*pf3 = 0;
	c->proto.skip = f1 & SMFIP_SKIP;
	c->proto.nr_hdr = f1 & SMFIP_NR_HDR;
	c->proto.nr_eoh = f1 & SMFIP_NR_EOH;
	c->proto.nr_conn = f1 & SMFIP_NR_CONN;
	c->proto.nr_mail = f1 & SMFIP_NR_MAIL;
	c->proto.nr_rcpt = *pf1 & SMFIP_NR_RCPT;
	c->proto.chgbody = f0 & SMFIF_CHGBODY;
	c->proto.leadspc = f1 & SMFIP_HDR_LEADSPC;
	return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	struct connctx *c = conn_ensure(ctx);
	sfsistat ok;

	(void)host;
	if (!c)
		return internal_error(ctx, NULL, "out of memory at connect");
	ok = c->proto.nr_conn ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
		size_t n = addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
						      : sizeof(struct sockaddr_in6);
		memcpy(&c->addr, addr, n);
		c->have_addr = true;
		inet_ntop(addr->sa_family,
			  addr->sa_family == AF_INET
				  ? (const void *)&((const struct sockaddr_in *)(const void *)addr)->sin_addr
				  : (const void *)&((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr,
			  c->client, sizeof(c->client));
	}
	{
		const char *dn = smfi_getsymval(ctx, "{daemon_name}");
		if (dn && !(c->daemon_name = strdup(dn)))
			return internal_error(ctx, c, "out of memory at connect");
	}
	return ok;
}

/* Outbound (SPEC 3) under cfg: authenticated, or a client address in
 * outbound.networks, or an MTA daemon in outbound.daemons. */
static bool msg_outbound(const struct connctx *c, const struct smp_config *cfg,
			 bool auth)
{
	return auth ||
	       (c->have_addr &&
		smp_config_outbound_addr(cfg, (const struct sockaddr *)&c->addr)) ||
	       smp_config_outbound_daemon(cfg, c->daemon_name);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct connctx *c = conn_ensure(ctx);
	const char *auth;

	if (!c)
		return internal_error(ctx, NULL, "out of memory at MAIL");
	msg_free(c->msg);
	c->msg = calloc(1, sizeof(*c->msg));
	if (!c->msg || !(c->msg->env_from = strip_brackets(argv[0] ? argv[0] : "")))
		return internal_error(ctx, c, "out of memory at MAIL");
	clock_gettime(CLOCK_MONOTONIC, &c->msg->start);
	/* the config current now decides until end of message, where a newer
	 * one is adopted or the message tempfailed (msg_adopt_current) */
	c->msg->cfg = smp_conf_get_gen(&c->msg->gen);
	if (!c->msg->cfg)
		return internal_error(ctx, c, "no configuration at MAIL");
	auth = smfi_getsymval(ctx, "{auth_authen}");
	c->msg->auth = auth && *auth;
	c->msg->outbound = msg_outbound(c, c->msg->cfg, c->msg->auth);
	return c->proto.nr_mail ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/*
 * split_recipients (SPEC 5): true when rcpt's class (plain, encrypt,
 * refuse) differs from the transaction's first recipient's; the reply
 * (452 4.5.3) is set. A keyring failure here splits nothing: the decision
 * at end of message meets it again and acts on it.
 */
static bool split_recipient(SMFICTX *ctx, struct msgctx *m, const char *rcpt, enum smp_encrypt_mode mode)
{
	struct smp_rcpt_decision d;
	enum smp_rcpt_class cls = SMP_RCPT_PLAIN;
	char err[256];

	if (mode != SMP_ENC_OFF) {
		struct smp_keyslot *slot = smp_keypool_get(m->cfg, err, sizeof(err));
		int rc;

		if (!slot) {
			smp_log(LOG_WARNING, "%s: split_recipients: %s", queue_id(ctx), err);
			return false;
		}
		memset(&d, 0, sizeof(d));
		rc = smp_policy_recipient(m->cfg->encrypt_policy, slot->kr, rcpt, 0, &d);
		if (rc < 0)
			smp_log(LOG_WARNING, "%s: split_recipients: keyring: %s",
				queue_id(ctx), smp_keyring_errmsg(slot->kr));
		smp_keypool_put(slot);
		if (rc < 0)
			return false;
		cls = d.cls;
		smp_rcpt_decision_clear(&d);
	}
	if (!m->have_class) {
		m->have_class = true;
		m->first_class = cls;
		return false;
	}
	if (cls == m->first_class)
		return false;
	smp_log(LOG_INFO, "%s: split_recipients: recipient class %s differs from "
		"the first recipient's (%s): 452 4.5.3", queue_id(ctx),
		smp_rcpt_class_name(cls), smp_rcpt_class_name(m->first_class));
	smfi_setreply(ctx, "452", "4.5.3",
		      "smp-milter: send to this recipient in a separate transaction "
		      "(encryption class differs)");
	return true;
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct connctx *c = conn_get(ctx);
	struct msgctx *m = c ? c->msg : NULL;
	enum smp_encrypt_mode mode = SMP_ENC_OFF;
	sfsistat ok;
	char *r;

	if (!c)
		return SMFIS_CONTINUE;
	ok = c->proto.nr_rcpt ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	if (!m || m->error || !argv[0])
		return ok;
	r = strip_brackets(argv[0]);
	if (!r) {
		m->error = "out of memory noting recipients";
		return ok;
	}
	if (m->outbound && m->cfg->encrypt_any) {
		mode = smp_policy_for(m->cfg->encrypt_policy, r);
		/* before split_recipients: its class counts a key found now */
		if (mode != SMP_ENC_OFF && m->cfg->disc_any) {
			struct smp_discwork_reply reply;

			if (smp_discwork_rcpt(m->cfg, queue_id(ctx), r, mode,
					      &m->disc_deadline, &reply) ==
			    SMP_DISCWORK_TEMPFAIL) {
				if (!c->proto.nr_rcpt) {
					smfi_setreply(ctx, reply.code, reply.xcode,
						      reply.text);
					free(r);
					return SMFIS_TEMPFAIL;
				}
				m->disc_failed = true;
			}
		}
		if (m->cfg->encrypt_split_recipients && !c->proto.nr_rcpt &&
		    split_recipient(ctx, m, r, mode)) {
			free(r);
			return SMFIS_TEMPFAIL;
		}
		m->may_encrypt |= mode != SMP_ENC_OFF;
		m->any_required |= mode == SMP_ENC_REQUIRED;
	}
	if (!strlist_add(&m->rcpts, r))
		m->error = "out of memory noting recipients";
	free(r);
	return ok;
}

/* Keeps the headers the keyring steps read. False: out of memory. */
static bool note_header(const struct smp_config *cfg, struct msgctx *m,
			const char *name, const char *value)
{
	if (!strcasecmp(name, "Autocrypt"))
		return !cfg->harvest_autocrypt || strlist_add(&m->autocrypt, value);
	if (!strcasecmp(name, "Content-Type"))
		return m->ctype_raw || (m->ctype_raw = strdup(value));
	if (!strcasecmp(name, "From")) {
		if (m->nfrom++ == 0 && !(m->from_raw = strdup(value)))
			return false;
	} else if (!strcasecmp(name, "Date")) {
		if (!m->date_raw && !(m->date_raw = strdup(value)))
			return false;
	} else if (!strcasecmp(name, "Message-ID")) {
		while (*value == ' ' || *value == '\t')
			value++;
		if (!m->message_id && !(m->message_id = strdup(value)))
			return false;
	} else if (!strcasecmp(name, "Authentication-Results")) {
		return strlist_add(&m->auth_results, value);
	}
	return true;
}

static bool note_forged(struct msgctx *m, const char *name)
{
	struct forged *f;

	for (unsigned i = 0; i < m->nforged; i++)
		if (!strcasecmp(m->forged[i].name, name)) {
			m->forged[i].count++;
			return true;
		}
	f = realloc(m->forged, (m->nforged + 1) * sizeof(*f));
	if (!f)
		return false;
	m->forged = f;
	f[m->nforged].name = strdup(name);
	if (!f[m->nforged].name)
		return false;
	f[m->nforged++].count = 1;
	return true;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct connctx *c = conn_get(ctx);
	struct msgctx *m = c ? c->msg : NULL;
	sfsistat ok;
	size_t nlen, vlen;

	if (!c)
		return SMFIS_CONTINUE;
	ok = c->proto.nr_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	if (!m || m->error)
		return ok; /* header replies may be off: report at eom */
	if (!strncasecmp(name, HDR_PREFIX, strlen(HDR_PREFIX)) && !note_forged(m, name))
		m->error = "out of memory noting X-SMP headers";
	if (!note_header(m->cfg, m, name, value))
		m->error = "out of memory noting headers";
	if (!m->have_subject && !strcasecmp(name, "Subject")) {
		m->have_subject = true;
		m->is_smp = smp_detect_subject(value, m->cfg->check.match);
		if (!(m->subject_raw = strdup(value)))
			m->error = "out of memory noting the Subject";
	}
	nlen = strlen(name);
	vlen = strlen(value);
	m->total += nlen + vlen + 4;
	if (m->too_large)
		return ok;
	if (m->total > m->cfg->check.limits.max_message_bytes) {
		m->too_large = true;
		buf_drop(m);
		return ok;
	}
	/* Rebuild the header as it travelled: "Name:" + value + CRLF. */
	if (!buf_append(m, name, nlen) || !buf_append(m, ":", 1) ||
	    (!c->proto.leadspc && !buf_append(m, " ", 1)) ||
	    !buf_append(m, value, vlen) || !buf_append(m, "\r\n", 2))
		m->error = "out of memory buffering headers";
	return ok;
}

/* With harvest.sources = pgp-keys, a message whose top-level type could
 * hold an application/pgp-keys part is buffered too. */
static bool may_hold_pgp_keys(const struct smp_config *cfg, const struct msgctx *m)
{
	const char *t = m->ctype_raw;

	if (!cfg->harvest_pgp_keys || !t)
		return false;
	while (*t == ' ' || *t == '\t')
		t++;
	return !strncasecmp(t, "multipart/", 10) ||
	       !strncasecmp(t, "application/pgp-keys", 20);
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct connctx *c = conn_get(ctx);
	struct msgctx *m = c ? c->msg : NULL;

	if (!c)
		return SMFIS_CONTINUE;
	if (!m)
		return c->proto.nr_eoh ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	m->want_encrypt = m->may_encrypt && !m->is_smp;
	m->want_body = m->is_smp || may_hold_pgp_keys(m->cfg, m) || m->want_encrypt;
	if (!m->want_body)
		buf_drop(m); /* nothing more is needed of this message */
	else if (!m->too_large && !m->error && !buf_append(m, "\r\n", 2))
		m->error = "out of memory buffering headers";
	return c->proto.nr_eoh ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct connctx *c = conn_get(ctx);
	struct msgctx *m = c ? c->msg : NULL;

	if (!m)
		return internal_error(ctx, c, "body without a message");
	if (m->error)
		return internal_error(ctx, c, m->error);
	m->total += len;
	if (!m->want_body || m->too_large)
		return c->proto.skip ? SMFIS_SKIP : SMFIS_CONTINUE;
	if (m->total > m->cfg->check.limits.max_message_bytes) {
		m->too_large = true;
		buf_drop(m);
		return c->proto.skip ? SMFIS_SKIP : SMFIS_CONTINUE;
	}
	if (!buf_append(m, chunk, len))
		return internal_error(ctx, c, "out of memory buffering the body");
	return SMFIS_CONTINUE;
}

static bool remove_forged(SMFICTX *ctx, const struct msgctx *m)
{
	for (unsigned i = 0; i < m->nforged; i++)
		for (int k = m->forged[i].count; k >= 1; k--)
			if (smfi_chgheader(ctx, (char *)m->forged[i].name, k, NULL) !=
			    MI_SUCCESS)
				return false;
	return true;
}

static void keywork_in_init(struct smp_keywork_in *in, const struct connctx *c,
			    const struct msgctx *m)
{
	memset(in, 0, sizeof(*in));
	in->cfg = m->cfg;
	in->env_from = m->env_from;
	in->rcpts = (const char *const *)m->rcpts.v;
	in->nrcpts = m->rcpts.n;
	in->from_raw = m->from_raw;
	in->nfrom_headers = m->nfrom;
	in->date_raw = m->date_raw;
	in->message_id = m->message_id;
	in->auth_results = (const char *const *)m->auth_results.v;
	in->nauth_results = m->auth_results.n;
	in->client_addr = c->client[0] ? c->client : NULL;
	in->outbound = m->outbound;
	in->autocrypt = (const char *const *)m->autocrypt.v;
	in->nautocrypt = m->autocrypt.n;
}

/* required_action: 550 5.7.1 (reject) or 450 4.7.1 (tempfail). */
static sfsistat encrypt_refuse(SMFICTX *ctx, const struct msgctx *m,
			       const char *why)
{
	char text[600];

	snprintf(text, sizeof(text), "smp-milter: encryption required, %s", why);
	for (char *p = text; *p; p++)
		if (*p == '%') /* libmilter reads '%' as a format character */
			*p = '?';
	if (m->cfg->encrypt_required_action == SMP_CONF_REQUIRED_TEMPFAIL) {
		smfi_setreply(ctx, "450", "4.7.1", text);
		return SMFIS_TEMPFAIL;
	}
	smfi_setreply(ctx, "550", "5.7.1", text);
	return SMFIS_REJECT;
}

/* Encryption failed (gpg, keyring, unusable key, MTA): tempfail, or with
 * on_error = accept and no required recipient, pass in plain. */
static sfsistat encrypt_failed(SMFICTX *ctx, const struct msgctx *m,
			       const char *what)
{
	bool accept = m->cfg->on_error == SMP_ON_ERROR_ACCEPT && !m->any_required;

	smp_log(LOG_ERR, "%s: encryption failed: %s; action=%s", queue_id(ctx), what,
		accept ? "pass" : "tempfail");
	if (accept)
		return SMFIS_CONTINUE;
	smfi_setreply(ctx, "451", "4.3.0",
		      "smp-milter: temporary failure encrypting the message");
	return SMFIS_TEMPFAIL;
}

static bool reload_wants_encryption(const struct connctx *c,
				    const struct msgctx *m);
static sfsistat decide_again(SMFICTX *ctx, const char *why);

/*
 * Octets per smfi_replacebody call: 64 KiB, or SMP_MILTER_BODY_CHUNK from
 * the environment (a test hook: miltertest reads every end-of-message
 * request into a 1024-octet stack buffer, so the test runner asks for
 * chunks it can take).
 */
static size_t body_chunk = REPLACEBODY_CHUNK;
static pthread_once_t body_chunk_once = PTHREAD_ONCE_INIT;

static void body_chunk_init(void)
{
	const char *v = getenv("SMP_MILTER_BODY_CHUNK");
	char *end;
	unsigned long n;

	if (!v || !*v)
		return;
	n = strtoul(v, &end, 10);
	if (!*end && n >= 64 && n <= REPLACEBODY_CHUNK)
		body_chunk = n;
}

/* The header edits in their order, then the new body in chunks: Postfix
 * takes no header change after a body replacement. */
static bool apply_encrypted(SMFICTX *ctx, const struct connctx *c,
			    const struct smp_encrypted *e)
{
	for (size_t i = 0; i < e->nedits; i++) {
		const struct smp_hdr_edit *h = &e->edits[i];
		char *v = NULL;
		int rc;

		if (h->value && asprintf(&v, "%s%s", c->proto.leadspc ? " " : "",
					 h->value) < 0)
			return false;
		switch (h->op) {
		case SMP_HDR_DELETE:
			rc = smfi_chgheader(ctx, h->name, (int)h->index, NULL);
			break;
		case SMP_HDR_CHANGE:
			rc = smfi_chgheader(ctx, h->name, (int)h->index, v);
			break;
		default:
			rc = smfi_addheader(ctx, h->name, v);
			break;
		}
		free(v);
		if (rc != MI_SUCCESS)
			return false;
	}
	pthread_once(&body_chunk_once, body_chunk_init);
	for (size_t off = 0; off < e->body_len; off += body_chunk) {
		size_t n = e->body_len - off;
		if (n > body_chunk)
			n = body_chunk;
		if (smfi_replacebody(ctx, (unsigned char *)e->body + off, (int)n) !=
		    MI_SUCCESS)
			return false;
	}
	return true;
}

/*
 * Outbound encryption of a buffered non-SMP message (SPEC 5): decide,
 * then refuse, pass, or encrypt and apply. desc receives the log's
 * encrypt= value.
 */
static sfsistat eom_encrypt(SMFICTX *ctx, struct connctx *c, struct msgctx *m,
			    char *desc, size_t desclen)
{
	const struct smp_config *cfg = m->cfg;
	struct smp_decision d;
	struct smp_encrypted e;
	struct smp_encrypt_opts o;
	struct smp_keyslot *slot = NULL;
	struct smp_crypto *cr;
	const char **fprs = NULL;
	size_t nf = 0;
	char err[512], *list = NULL;
	sfsistat rc = SMFIS_CONTINUE;
	int st;

	memset(&d, 0, sizeof(d));
	memset(&e, 0, sizeof(e));
	if (m->too_large || !m->buf) {
		snprintf(desc, desclen, "%s(too-large)",
			 m->any_required ? "refused" : "plain");
		smp_log(LOG_NOTICE, "%s: over limits.max_message_bytes: not encrypted",
			queue_id(ctx));
		return m->any_required
			       ? encrypt_refuse(ctx, m, "but the message is too large "
							"to encrypt")
			       : SMFIS_CONTINUE;
	}
	smp_encrypt_opts_init(&o);
	o.protect_subject = cfg->encrypt_protect_subject;
	o.match = cfg->check.match;
	o.limits = &cfg->check.limits;
	/* never re-encrypt: no keyring, no crypto work for these */
	st = smp_encrypt_check(m->buf, m->len, &o);
	if (st == SMP_ENCRYPT_SKIP_INLINE && m->any_required) {
		/* text may travel around the armored block: never re-encrypted,
		 * never sent in plain to a required recipient either */
		snprintf(desc, desclen, "refused(inline-pgp)");
		return encrypt_refuse(ctx, m, "but an inline PGP message is not "
					      "encrypted again");
	}
	if (smp_encrypt_is_skip(st)) {
		snprintf(desc, desclen, "skipped(%s)", smp_encrypt_status_name(st));
		return SMFIS_CONTINUE;
	}
	slot = smp_keypool_get(cfg, err, sizeof(err));
	if (!slot)
		goto failed;
	if (smp_policy_decide(cfg->encrypt_policy, slot->kr,
			      (const char *const *)m->rcpts.v, m->rcpts.n, 0, &d) < 0) {
		snprintf(err, sizeof(err), "keyring: %s", smp_keyring_errmsg(slot->kr));
		goto failed;
	}
	/* split_recipients promised one class per transaction at RCPT time;
	 * if the decision now sees another, the message is sent again */
	for (size_t i = 0; m->have_class && i < d.n; i++)
		if (d.rcpts[i].cls != m->first_class) {
			snprintf(desc, desclen, "tempfail(class-changed)");
			snprintf(err, sizeof(err), "split_recipients: %s is now of "
				 "class %s, the transaction's is %s",
				 d.rcpts[i].address, smp_rcpt_class_name(d.rcpts[i].cls),
				 smp_rcpt_class_name(m->first_class));
			rc = decide_again(ctx, err);
			goto out;
		}
	switch (d.action) {
	case SMP_ACTION_PLAIN:
		snprintf(desc, desclen, "plain");
		goto out;
	case SMP_ACTION_REFUSE: {
		char *why = smp_decision_blocking(&d, true, 400);
		list = smp_decision_blocking(&d, false, 400);
		if (!why || !list) {
			free(why);
			snprintf(err, sizeof(err), "out of memory");
			goto failed;
		}
		snprintf(desc, desclen, "refused(%s)", why);
		free(why);
		snprintf(err, sizeof(err), "no usable key for: %s", list);
		rc = encrypt_refuse(ctx, m, err);
		goto out;
	}
	case SMP_ACTION_ENCRYPT:
		break;
	}
	if (!c->proto.chgbody) {
		snprintf(err, sizeof(err), "the MTA does not allow body changes");
		goto failed;
	}
	cr = smp_keyslot_crypto(slot, cfg, err, sizeof(err));
	if (!cr)
		goto failed;
	fprs = calloc(d.nfprs + cfg->encrypt_archive_keys.n + 1, sizeof(*fprs));
	if (!fprs) {
		snprintf(err, sizeof(err), "out of memory");
		goto failed;
	}
	for (size_t i = 0; i < d.nfprs; i++)
		fprs[nf++] = d.fprs[i];
	for (size_t i = 0; i < cfg->encrypt_archive_keys.n; i++)
		fprs[nf++] = cfg->encrypt_archive_keys.v[i];
	err[0] = '\0';
	st = smp_encrypt_message(cr, slot->kr, m->buf, m->len, fprs, nf, &o, &e, err,
				 sizeof(err));
	smp_keypool_put(slot);
	slot = NULL;
	if (smp_encrypt_is_skip(st)) {
		snprintf(desc, desclen, "skipped(%s)", smp_encrypt_status_name(st));
		goto out;
	}
	if (st != SMP_ENCRYPT_OK) {
		char what[600];
		snprintf(what, sizeof(what), "%s: %s", smp_encrypt_status_name(st), err);
		snprintf(desc, desclen, "failed(%s)", what);
		rc = encrypt_failed(ctx, m, what);
		goto out;
	}
	if (!apply_encrypted(ctx, c, &e)) {
		snprintf(err, sizeof(err), "cannot change the message at the MTA");
		goto failed;
	}
	snprintf(desc, desclen, "pgp-mime(keys=%zu)", nf);
	goto out;
failed:
	snprintf(desc, desclen, "failed(%s)", err);
	rc = encrypt_failed(ctx, m, err);
out:
	if (slot)
		smp_keypool_put(slot);
	free(fprs);
	free(list);
	smp_decision_clear(&d);
	smp_encrypted_clear(&e);
	return rc;
}

/* End of a non-SMP message: the other key sources may have work, and
 * outbound mail may be encrypted. */
static sfsistat eom_plain(SMFICTX *ctx, struct connctx *c, struct msgctx *m,
			  const char *dir, unsigned forged)
{
	struct smp_keywork_in in;
	struct smp_keywork_out kw;
	char err[512], enc[768] = "";
	sfsistat rc = SMFIS_CONTINUE;

	keywork_in_init(&in, c, m);
	if (m->want_body && !m->too_large && m->buf && may_hold_pgp_keys(m->cfg, m)) {
		in.msg = m->buf;
		in.msglen = m->len;
	}
	if ((in.nautocrypt || in.msg) &&
	    smp_keywork_message(&in, NULL, &kw, err, sizeof(err)) < 0)
		return internal_error(ctx, c, err);
	if (!in.nautocrypt && !in.msg)
		kw.harvest_ran = false;
	if (m->want_encrypt)
		rc = eom_encrypt(ctx, c, m, enc, sizeof(enc));
	if (rc == SMFIS_CONTINUE && strncmp(enc, "pgp-mime", 8) &&
	    reload_wants_encryption(c, m)) {
		snprintf(enc, sizeof(enc), "tempfail(reloaded)");
		rc = decide_again(ctx, "configuration reloaded while the message "
				       "was decided");
	}
	smp_log(LOG_INFO, "%s: direction=%s smp=no forged=%u%s%s%s%s action=%s ms=%ld",
		queue_id(ctx), dir, forged, kw.harvest_ran ? " harvest=" : "",
		kw.harvest_ran ? kw.detail : "", enc[0] ? " encrypt=" : "", enc,
		rc == SMFIS_REJECT     ? "reject"
		: rc == SMFIS_TEMPFAIL ? "tempfail"
				       : "pass",
		elapsed_ms(&m->start));
	return rc;
}

/*
 * SPEC 3, Reload: a message is decided by the configuration current when
 * it is decided, whatever SMTP session it came on. When a reload happened
 * since MAIL, the current config is adopted if what was gathered under the
 * old one is enough for it: a body that was skipped cannot be validated or
 * encrypted now. Otherwise the message is tempfailed and the client sends
 * it again, under the new config. Recipients split at RCPT time are
 * checked against the decision in eom_encrypt (split_disagrees).
 * True: the message goes on with m->cfg current. False: *why is set.
 */
static bool msg_adopt_current(SMFICTX *ctx, const struct connctx *c,
			      struct msgctx *m, const char **why)
{
	struct smp_config *cur;
	unsigned long gen;
	bool outbound, may_encrypt = false, any_required = false, is_smp;

	if (smp_conf_generation() == m->gen)
		return true;
	cur = smp_conf_get_gen(&gen);
	if (!cur) {
		*why = "no configuration";
		return false;
	}
	outbound = msg_outbound(c, cur, m->auth);
	if (outbound && cur->encrypt_any)
		for (size_t i = 0; i < m->rcpts.n; i++) {
			enum smp_encrypt_mode mode =
				smp_policy_for(cur->encrypt_policy, m->rcpts.v[i]);
			may_encrypt |= mode != SMP_ENC_OFF;
			any_required |= mode == SMP_ENC_REQUIRED;
		}
	is_smp = m->subject_raw && smp_detect_subject(m->subject_raw, cur->check.match);
	if ((is_smp || may_encrypt) && !m->want_body) {
		m->any_required |= any_required; /* on_error never accepts it */
		smp_conf_put(cur);
		*why = "configuration reloaded during the transaction; the new one "
		       "needs the body, which was not kept";
		return false;
	}
	smp_log(LOG_INFO, "%s: configuration reloaded since MAIL: decided with "
		"generation %lu (was %lu)", queue_id(ctx), gen, m->gen);
	smp_conf_put(m->cfg);
	m->cfg = cur;
	m->gen = gen;
	m->outbound = outbound;
	m->may_encrypt = may_encrypt;
	m->any_required = any_required;
	m->is_smp = is_smp;
	m->want_encrypt = may_encrypt && !is_smp;
	return true;
}

/*
 * A reload while this message was being decided: true when the config
 * now current could want it encrypted, so that it does not pass in plain
 * after the reload was logged.
 */
static bool reload_wants_encryption(const struct connctx *c, const struct msgctx *m)
{
	struct smp_config *cur;
	bool want = false;

	if (smp_conf_generation() == m->gen)
		return false;
	cur = smp_conf_get();
	if (!cur)
		return true;
	if (msg_outbound(c, cur, m->auth) && cur->encrypt_any)
		for (size_t i = 0; i < m->rcpts.n && !want; i++)
			want = smp_policy_for(cur->encrypt_policy, m->rcpts.v[i]) !=
			       SMP_ENC_OFF;
	smp_conf_put(cur);
	return want;
}

/* 451 4.3.0 for a message that must be decided again (a reload or a
 * keyring change between RCPT and end of message). */
static sfsistat decide_again(SMFICTX *ctx, const char *why)
{
	smp_log(LOG_NOTICE, "%s: %s; action=tempfail", queue_id(ctx), why);
	smfi_setreply(ctx, "451", "4.3.0",
		      "smp-milter: policy changed during the transaction, "
		      "try again");
	return SMFIS_TEMPFAIL;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	struct connctx *c = conn_get(ctx);
	struct msgctx *m = c ? c->msg : NULL;
	struct smp_result r = {0};
	char verdict[SMP_VERDICT_MAX + 64], text[SMP_VERDICT_MAX + 128];
	struct smp_keywork_out kw = {0};
	size_t vlen;
	bool invalid;
	const char *action = "pass", *dir;
	sfsistat rc = SMFIS_CONTINUE;
	unsigned forged = 0;

	if (!m)
		return internal_error(ctx, c, "end of message without a message");
	if (m->error) {
		rc = internal_error(ctx, c, m->error);
		goto out;
	}
	{
		const char *why = NULL;
		if (!msg_adopt_current(ctx, c, m, &why)) {
			rc = decide_again(ctx, why);
			goto out;
		}
	}
	if (m->disc_failed) {
		smp_log(LOG_WARNING, "%s: a recipient's key lookup failed and its RCPT "
			"could not be answered: 451 4.4.3 for the message",
			queue_id(ctx));
		smfi_setreply(ctx, "451", "4.4.3",
			      "smp-milter: a recipient's key could not be looked up, "
			      "try again later");
		rc = SMFIS_TEMPFAIL;
		goto out;
	}
	dir = m->outbound ? "outbound" : "inbound";
	for (unsigned i = 0; i < m->nforged; i++)
		forged += (unsigned)m->forged[i].count;
	if (!remove_forged(ctx, m)) {
		rc = internal_error(ctx, c, "cannot remove forged X-SMP headers");
		goto out;
	}
	if (!m->is_smp) {
		rc = eom_plain(ctx, c, m, dir, forged);
		goto out;
	}
	if (m->too_large) {
		r.is_smp = true;
		r.reasons = SMP_R_TOO_LARGE;
	} else if (smp_validate_buffer(m->buf, m->len, &m->cfg->check, &r) < 0) {
		rc = internal_error(ctx, c, strerror(errno));
		goto out;
	}
	buf_drop(m);
	{
		struct smp_keywork_in in;
		char err[512];
		keywork_in_init(&in, c, m);
		if (smp_keywork_message(&in, &r, &kw, err, sizeof(err)) < 0) {
			rc = internal_error(ctx, c, err);
			goto out;
		}
	}
	/* with SMFIP_HDR_LEADSPC the MTA inserts the value exactly as given */
	verdict[0] = ' ';
	smp_verdict_format(&r, verdict + 1, sizeof(verdict) - 1);
	vlen = strlen(verdict);
	if (kw.harvest_ran)
		vlen += (size_t)snprintf(verdict + vlen, sizeof(verdict) - vlen,
					 "; harvested=%u; refused=%u", kw.harvested,
					 kw.refused);
	if (kw.replay)
		snprintf(verdict + vlen, sizeof(verdict) - vlen, "; replay=yes");
	invalid = r.reasons || (kw.replay && m->cfg->replay_action == SMP_CONF_REPLAY_INVALID);
	if (smfi_insheader(ctx, 0, HDR_STATUS, verdict + !c->proto.leadspc) !=
	    MI_SUCCESS) {
		rc = internal_error(ctx, c, "cannot add the X-SMP-Status header");
		goto out;
	}
	action = "tag";
	if (invalid) {
		switch (m->cfg->on_invalid) {
		case SMP_ON_INVALID_TAG:
			break;
		case SMP_ON_INVALID_QUARANTINE:
			action = "quarantine";
			if (smfi_quarantine(ctx, m->cfg->quarantine_reason) != MI_SUCCESS) {
				rc = internal_error(ctx, c, "cannot quarantine");
				goto out;
			}
			break;
		case SMP_ON_INVALID_REJECT:
			action = "reject";
			snprintf(text, sizeof(text), "invalid SMP message: %s",
				 r.reasons ? verdict + 1 + strlen("invalid; ")
					   : "replay=yes");
			smfi_setreply(ctx, "550", "5.7.0", text);
			rc = SMFIS_REJECT;
			break;
		case SMP_ON_INVALID_TEMPFAIL:
			action = "tempfail";
			snprintf(text, sizeof(text), "invalid SMP message: %s",
				 r.reasons ? verdict + 1 + strlen("invalid; ")
					   : "replay=yes");
			smfi_setreply(ctx, "451", "4.7.0", text);
			rc = SMFIS_TEMPFAIL;
			break;
		}
	}
	/* SMP mail is never re-encrypted, but an invalid one may be plain
	 * text: it never goes out that way to a required recipient (SPEC 5). */
	if (r.reasons && m->outbound && m->any_required && rc == SMFIS_CONTINUE) {
		action = "refuse-required";
		rc = encrypt_refuse(ctx, m, "but an invalid SMP message is not "
					    "encrypted");
	} else if (r.reasons && rc == SMFIS_CONTINUE && reload_wants_encryption(c, m)) {
		action = "tempfail";
		rc = decide_again(ctx, "configuration reloaded while the message "
				       "was decided");
	}
	smp_log(LOG_INFO,
		"%s: direction=%s smp=%s verdict=\"%s\" forged=%u%s%s%s action=%s ms=%ld",
		queue_id(ctx), dir, invalid ? "invalid" : "valid", verdict + 1, forged,
		kw.harvest_ran ? " harvest=" : "", kw.harvest_ran ? kw.detail : "",
		m->may_encrypt ? " encrypt=skipped(smp)" : "", action,
		elapsed_ms(&m->start));
out:
	smp_result_clear(&r);
	msg_free(c->msg);
	c->msg = NULL;
	return rc;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct connctx *c = conn_get(ctx);

	if (c) {
		msg_free(c->msg);
		c->msg = NULL;
	}
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	conn_free(conn_get(ctx));
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

struct smfiDesc smp_milter_desc = {
	.xxfi_name = SMP_MILTER_NAME,
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_CHGBODY,
	.xxfi_connect = cb_connect,
	.xxfi_envfrom = cb_envfrom,
	.xxfi_envrcpt = cb_envrcpt,
	.xxfi_header = cb_header,
	.xxfi_eoh = cb_eoh,
	.xxfi_body = cb_body,
	.xxfi_eom = cb_eom,
	.xxfi_abort = cb_abort,
	.xxfi_close = cb_close,
	.xxfi_negotiate = cb_negotiate,
};
