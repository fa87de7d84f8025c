/* discwork.c - key discovery for the workers and the housekeeping thread.
 * See discwork.h. */
#include "discwork.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <glib.h>

#include "keypool.h"
#include "log.h"
#include "smp_discovery.h"

/* ------------------------------------------------------------------ */
/* Network contexts: one per set of transport settings. A reload that
 * changes them makes a new one; the old one stays until exit (a worker
 * may still be using it, and reloads are rare), so no reference counts. */

struct net_entry {
	struct net_entry *next;
	char *sig;
	struct smp_disc_net *net;
};

static pthread_mutex_t nets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct net_entry *nets;

static char *net_signature(const struct smp_disc_net_config *nc)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s, "%s|%u|%d|%s|%zu", nc->ca_file ? nc->ca_file : "",
			       nc->https_port, nc->dns_recursive,
			       nc->dns_trust_anchor_file ? nc->dns_trust_anchor_file : "",
			       nc->max_bytes);
	for (size_t i = 0; i < nc->n_dns_forwarders; i++)
		g_string_append_printf(s, "|f:%s", nc->dns_forwarders[i]);
	for (size_t i = 0; i < nc->n_dns_trust_anchors; i++)
		g_string_append_printf(s, "|t:%s", nc->dns_trust_anchors[i]);
	return g_string_free(s, FALSE);
}

static struct smp_disc_net *net_for(const struct smp_config *cfg, char *err,
				    size_t errlen)
{
	struct smp_disc_net_config nc;
	struct smp_disc_net *net = NULL;
	struct net_entry *e;
	char *sig;

	smp_config_disc_net(cfg, &nc);
	sig = net_signature(&nc);
	pthread_mutex_lock(&nets_lock);
	for (e = nets; e; e = e->next)
		if (strcmp(e->sig, sig) == 0)
			break;
	if (e) {
		net = e->net;
		goto out;
	}
	net = smp_disc_net_new(&nc, err, errlen);
	if (!net)
		goto out;
	e = calloc(1, sizeof(*e));
	if (!e) {
		smp_disc_net_free(net);
		net = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	e->sig = sig;
	sig = NULL;
	e->net = net;
	e->next = nets;
	nets = e;
out:
	pthread_mutex_unlock(&nets_lock);
	g_free(sig);
	return net;
}

void smp_discwork_shutdown(void)
{
	pthread_mutex_lock(&nets_lock);
	while (nets) {
		struct net_entry *e = nets;

		nets = e->next;
		smp_disc_net_free(e->net);
		g_free(e->sig);
		free(e);
	}
	pthread_mutex_unlock(&nets_lock);
}

/* ------------------------------------------------------------------ */

static void dctx_init(struct smp_disc_ctx *dx, const struct smp_config *cfg,
		      struct smp_harvest_config *hc,
		      const struct smp_disc_methods *ms, int64_t deadline)
{
	smp_harvest_config_init(hc);
	hc->on_conflict = (enum smp_on_conflict)cfg->on_conflict;
	memset(dx, 0, sizeof(*dx));
	dx->cfg = &cfg->disc;
	dx->methods = ms;
	dx->harvest = hc;
	dx->limits = &cfg->check.limits;
	dx->deadline_ms = deadline;
}

/*
 * check, fetch, store with a pooled connection held only around the
 * keyring steps. 0 with *r filled, -1 with err (keyring, engine, network
 * context failure).
 */
static int discover(const struct smp_config *cfg, const char *rcpt,
		    const struct smp_disc_methods *ms, int64_t deadline, bool refresh,
		    struct smp_disc_result *r, char *err, size_t errlen)
{
	struct smp_harvest_config hc;
	struct smp_disc_ctx dx;
	struct smp_disc_answers ans;
	struct smp_keyslot *slot;
	bool need = false;
	int rc = -1;

	memset(&ans, 0, sizeof(ans));
	dctx_init(&dx, cfg, &hc, ms, deadline);
	slot = smp_keypool_get(cfg, err, errlen);
	if (!slot)
		return -1;
	dx.kr = slot->kr;
	rc = smp_discovery_check(&dx, rcpt, refresh, &need, r);
	if (rc < 0)
		snprintf(err, errlen, "%s", r->detail);
	smp_keypool_put(slot);
	if (rc < 0 || !need)
		return rc;
	dx.net = net_for(cfg, err, errlen);
	if (!dx.net)
		return -1;
	if (smp_discovery_fetch(dx.net, ms, rcpt, deadline, &ans) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	slot = smp_keypool_get(cfg, err, errlen);
	if (!slot)
		goto out;
	dx.kr = slot->kr;
	dx.crypto = smp_keyslot_crypto(slot, cfg, err, errlen);
	if (dx.crypto) {
		rc = smp_discovery_store(&dx, rcpt, &ans, refresh, r);
		if (rc < 0)
			snprintf(err, errlen, "%s", r->detail);
	}
	smp_keypool_put(slot);
out:
	smp_disc_answers_clear(&ans);
	return rc;
}

static void set_reply(struct smp_discwork_reply *reply, const char *code,
		      const char *xcode, const char *text)
{
	snprintf(reply->code, sizeof(reply->code), "%s", code);
	snprintf(reply->xcode, sizeof(reply->xcode), "%s", xcode);
	snprintf(reply->text, sizeof(reply->text), "%s", text);
}

enum smp_discwork_verdict smp_discwork_rcpt(const struct smp_config *cfg,
					    const char *qid, const char *rcpt,
					    enum smp_encrypt_mode mode,
					    int64_t *deadline,
					    struct smp_discwork_reply *reply)
{
	struct smp_disc_methods ms;
	struct smp_disc_result r;
	bool closed = mode == SMP_ENC_REQUIRED || cfg->disc.on_error_tempfail;
	char err[512] = "", ms_text[32];

	smp_config_disc_methods(cfg, rcpt, &ms);
	if (!ms.n || mode == SMP_ENC_OFF)
		return SMP_DISCWORK_CONTINUE;
	if (!*deadline)
		*deadline = smp_disc_now_ms() + cfg->disc.timeout_ms;
	memset(&r, 0, sizeof(r));
	if (discover(cfg, rcpt, &ms, *deadline, false, &r, err, sizeof(err)) < 0) {
		/* internal: the keyring or the engine. A required recipient is
		 * never let through on it; opportunistic follows on_error */
		closed = mode == SMP_ENC_REQUIRED || cfg->on_error == SMP_ON_ERROR_TEMPFAIL;
		smp_log(LOG_ERR, "%s: discovery rcpt=<%s>: %s; %s", qid, rcpt, err,
			closed ? "451 4.3.0" : "going on without a key");
		if (!closed)
			return SMP_DISCWORK_CONTINUE;
		set_reply(reply, "451", "4.3.0",
			  "smp-milter: temporary failure looking up the recipient's key");
		return SMP_DISCWORK_TEMPFAIL;
	}
	smp_disc_methods_format(&ms, ms_text, sizeof(ms_text));
	switch (r.outcome) {
	case SMP_DISC_HAVE:
		if (!r.bound)
			smp_log(LOG_INFO, "%s: discovery rcpt=<%s>: key %s from %s (%s)",
				qid, rcpt, r.fpr, r.method, r.detail);
		return SMP_DISCWORK_CONTINUE;
	case SMP_DISC_SKIPPED:
		smp_log(LOG_DEBUG, "%s: discovery rcpt=<%s>: not looked up: %s", qid,
			rcpt, r.detail);
		return SMP_DISCWORK_CONTINUE;
	case SMP_DISC_NOKEY:
		smp_log(LOG_INFO, "%s: discovery rcpt=<%s>: no usable key (%s): %s", qid,
			rcpt, ms_text, r.detail);
		return SMP_DISCWORK_CONTINUE;
	case SMP_DISC_FAILED:
		break;
	}
	smp_log(closed ? LOG_WARNING : LOG_NOTICE,
		"%s: discovery rcpt=<%s>: lookup failed (%s): %s; %s", qid, rcpt,
		ms_text, r.detail,
		closed ? "451 4.4.3" : "discovery.on_error = plain: may go in plain");
	if (!closed)
		return SMP_DISCWORK_CONTINUE;
	set_reply(reply, "451", "4.4.3",
		  "smp-milter: the recipient's key could not be looked up, try again later");
	return SMP_DISCWORK_TEMPFAIL;
}

unsigned smp_discwork_refresh_due(const struct smp_config *cfg, unsigned max,
				  const bool *stop)
{
	struct smp_disc_entry *due = NULL;
	struct smp_keyslot *slot;
	size_t n = 0;
	unsigned done = 0;
	char err[512];

	if (!cfg->disc_any || !max)
		return 0;
	slot = smp_keypool_get(cfg, err, sizeof(err));
	if (!slot) {
		smp_log(LOG_WARNING, "discovery refresh: %s", err);
		return 0;
	}
	if (smp_keyring_disc_due(slot->kr, "found", (int64_t)time(NULL), max, &due,
				 &n) < 0) {
		smp_log(LOG_WARNING, "discovery refresh: keyring: %s",
			smp_keyring_errmsg(slot->kr));
		n = 0;
	}
	smp_keypool_put(slot);
	for (size_t i = 0; i < n && !__atomic_load_n(stop, __ATOMIC_RELAXED); i++) {
		struct smp_disc_methods ms;
		struct smp_disc_result r;

		smp_config_disc_methods(cfg, due[i].address, &ms);
		if (!ms.n)
			continue;
		memset(&r, 0, sizeof(r));
		if (discover(cfg, due[i].address, &ms,
			     smp_disc_now_ms() + cfg->disc.timeout_ms, true, &r, err,
			     sizeof(err)) < 0) {
			smp_log(LOG_WARNING, "discovery refresh <%s>: %s", due[i].address,
				err);
			continue;
		}
		done++;
		smp_log(LOG_INFO, "discovery refresh <%s>: %s%s%s%s%s", due[i].address,
			smp_disc_outcome_name(r.outcome), r.fpr[0] ? " key " : "", r.fpr,
			r.detail[0] ? ": " : "", r.detail);
	}
	smp_disc_entries_free(due, n);
	return done;
}
