/* smp_discovery_net.c - the net object of the discovery transports
 * (smp_discovery.h): one libunbound context (DNSSEC-validating, the DNS of
 * both DANE and the WKD host names) and the HTTPS settings each WKD
 * lookup's curl handle is made with; the clock deadlines are on; the DNS
 * query loop both transports use.
 *
 * Threads: a net may be used by several threads at once. libunbound runs
 * its resolver in a thread of its own (ub_ctx_async(ctx, 1)) and its API
 * is thread-safe; how answers reach the right thread is described at
 * struct smp_disc_net (smp_discovery_net.h). Each WKD lookup makes its
 * own curl handle, so curl needs nothing shared but curl_global_init,
 * done once for the process here.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "smp_discovery_net.h"
#include "smp_limits.h"

#define DNET_ROOT_KEY "/usr/share/dns/root.key"

/* ------------------------------------------------------------------ */
/* Answers and the clock                                               */

void smp_dnet_answer_start(struct smp_disc_answer *out,
			   enum smp_disc_method m)
{
	/* smp_disc_answer_clear (smp_discovery.c) zeroes it all, and zero
	 * is FOUND: an answer starts as ERROR until it is known better */
	smp_disc_answer_clear(out);
	out->status = SMP_DISC_ERROR;
	out->method = m;
	out->ttl = -1;
}

int64_t smp_disc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void smp_dnet_errorf(struct smp_disc_answer *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
}

const char *smp_dnet_rcode_name(int rcode, char *buf, size_t buflen)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
		"REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
		"NOTZONE",
	};

	if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	snprintf(buf, buflen, "rcode %d", rcode);
	return buf;
}

/* ------------------------------------------------------------------ */
/* curl_global_init, once per process                                  */

static pthread_once_t dnet_curl_once = PTHREAD_ONCE_INIT;
static CURLcode dnet_curl_rc = CURLE_FAILED_INIT;

static void dnet_curl_init(void)
{
	/* before any thread makes a handle: curl_global_init is not
	 * thread-safe on every TLS back end */
	dnet_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------------ */
/* The net object                                                      */

/* "addr" or "addr@port", addr an IPv4 or IPv6 address: 0 or -1. */
static int dnet_forwarder_ok(const char *s)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *at = strchr(s, '@');
	size_t alen = at ? (size_t)(at - s) : strlen(s);

	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bin) != 1 &&
	    inet_pton(AF_INET6, addr, bin) != 1)
		return -1;
	if (at) {
		char *end;
		unsigned long port;

		if (at[1] < '0' || at[1] > '9')
			return -1;
		errno = 0;
		port = strtoul(at + 1, &end, 10);
		if (errno || *end || port == 0 || port > 65535)
			return -1;
	}
	return 0;
}

/* A file we can open for reading: 0, or -1 with a sentence in err. */
static int dnet_readable(const char *what, const char *path, char *err,
			 size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(err, errlen, "%s %s cannot be read: %s", what, path,
			 strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* A libunbound call's result: 0, or -1 with a sentence in err. */
static int dnet_ub_ok(int rc, const char *what, char *err, size_t errlen)
{
	if (rc == 0)
		return 0;
	snprintf(err, errlen, "DNS resolver: %s: %s", what, ub_strerror(rc));
	return -1;
}

struct smp_disc_net *smp_disc_net_new(const struct smp_disc_net_config *cfg,
				      char *err, size_t errlen)
{
	struct smp_disc_net *n = NULL;
	pthread_condattr_t ca;
	bool lock_made = false, cond_made = false;
	const char *ta_file;
	char what[320];
	int ok = 0;

	if (errlen)
		err[0] = '\0';
	pthread_once(&dnet_curl_once, dnet_curl_init);
	if (dnet_curl_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl could not be initialised: %s",
			 curl_easy_strerror(dnet_curl_rc));
		goto out;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	n->https_port = cfg->https_port ? cfg->https_port : 443;
	if (n->https_port > 65535) {
		snprintf(err, errlen, "HTTPS port %u is not a port",
			 cfg->https_port);
		goto out;
	}
	n->max_bytes = cfg->max_bytes ? cfg->max_bytes
				      : SMP_LIMITS_DEFAULT_KEY_BYTES;
	if (cfg->ca_file && cfg->ca_file[0]) {
		if (dnet_readable("the CA file", cfg->ca_file, err, errlen))
			goto out;
		n->ca_file = strdup(cfg->ca_file);
		if (!n->ca_file) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (pthread_mutex_init(&n->lock, NULL)) {
		snprintf(err, errlen, "cannot make a mutex");
		goto out;
	}
	lock_made = true;
	/* the waits are on the deadlines' clock */
	if (pthread_condattr_init(&ca) == 0) {
		if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
		    pthread_cond_init(&n->cond, &ca) == 0)
			cond_made = true;
		pthread_condattr_destroy(&ca);
	}
	if (!cond_made) {
		snprintf(err, errlen, "cannot make a condition variable");
		goto out;
	}

	n->ub = ub_ctx_create();
	if (!n->ub) {
		snprintf(err, errlen, "DNS resolver: cannot create a libunbound context");
		goto out;
	}
	/* answers are waited for with ub_fd/ub_process (deadlines); the
	 * resolver itself runs in a thread, not a forked process */
	if (dnet_ub_ok(ub_ctx_async(n->ub, 1), "threads", err, errlen))
		goto out;

	ta_file = cfg->dns_trust_anchor_file && cfg->dns_trust_anchor_file[0]
			  ? cfg->dns_trust_anchor_file
			  : DNET_ROOT_KEY;
	/* libunbound reads the file only at the first query, and then only
	 * says "initialization failure": see it can be read now */
	if (dnet_readable("the DNS trust anchor file", ta_file, err, errlen))
		goto out;
	snprintf(what, sizeof(what), "trust anchor file %s", ta_file);
	if (dnet_ub_ok(ub_ctx_add_ta_file(n->ub, ta_file), what, err, errlen))
		goto out;
	for (size_t i = 0; i < cfg->n_dns_trust_anchors; i++) {
		snprintf(what, sizeof(what), "trust anchor \"%.200s\"",
			 cfg->dns_trust_anchors[i]);
		if (dnet_ub_ok(ub_ctx_add_ta(n->ub, cfg->dns_trust_anchors[i]),
			       what, err, errlen))
			goto out;
	}

	if (cfg->dns_recursive) {
		/* from the root servers: never to a loopback address a
		 * delegation may name (the default) */
		if (cfg->n_dns_forwarders) {
			snprintf(err, errlen,
				 "DNS forwarders and recursive resolution exclude each other");
			goto out;
		}
	} else {
		/* a forwarder on this host (a local validating resolver,
		 * systemd-resolved) is the usual case: allow loopback */
		if (dnet_ub_ok(ub_ctx_set_option(n->ub, "do-not-query-localhost:",
						 "no"),
			       "do-not-query-localhost", err, errlen))
			goto out;
		/* with one or two forwarders, one TCP error (a large answer
		 * falls back to TCP) made libunbound mark the forwarder down
		 * and answer SERVFAIL to every query for its infra TTL: a
		 * burst of failed-closed recipients. Keep probing it instead
		 * (make bench-discovery, DANE with 8 threads: failed in 13 of
		 * 40 runs without, see doc/discovery.md) */
		if (dnet_ub_ok(ub_ctx_set_option(n->ub, "infra-keep-probing:", "yes"),
			       "infra-keep-probing", err, errlen))
			goto out;
		for (size_t i = 0; i < cfg->n_dns_forwarders; i++) {
			const char *f = cfg->dns_forwarders[i];

			if (!f || dnet_forwarder_ok(f)) {
				snprintf(err, errlen,
					 "DNS forwarder \"%.200s\" is not an address (ADDR or ADDR@PORT)",
					 f ? f : "");
				goto out;
			}
			snprintf(what, sizeof(what), "forwarder %s", f);
			if (dnet_ub_ok(ub_ctx_set_fwd(n->ub, f), what, err, errlen))
				goto out;
		}
		if (!cfg->n_dns_forwarders &&
		    dnet_ub_ok(ub_ctx_resolvconf(n->ub, NULL),
			       "the nameservers of /etc/resolv.conf", err, errlen))
			goto out;
	}
	ok = 1;
out:
	if (!ok && n) {
		if (n->ub)
			ub_ctx_delete(n->ub);
		if (cond_made)
			pthread_cond_destroy(&n->cond);
		if (lock_made)
			pthread_mutex_destroy(&n->lock);
		free(n->ca_file);
		free(n);
		n = NULL;
	}
	return n;
}

void smp_disc_net_free(struct smp_disc_net *n)
{
	if (!n)
		return;
	/* stops libunbound's thread; queries still out are dropped */
	ub_ctx_delete(n->ub);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	free(n->ca_file);
	free(n);
}

/* ------------------------------------------------------------------ */
/* DNS queries                                                         */

/* libunbound's callback, run by ub_process in whichever thread pumps,
 * always under n->lock (see struct smp_disc_net). */
static void dnet_answer(void *arg, int err, struct ub_result *result)
{
	struct smp_dnet_query *q = arg;

	q->err = err;
	q->result = result;
	q->done = true;
}

static void dnet_abstime(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

size_t smp_dnet_resolve(struct smp_disc_net *n, struct smp_dnet_query *q,
			size_t nq, int64_t deadline_ms)
{
	size_t timed_out = 0;
	int fd = ub_fd(n->ub);

	for (size_t i = 0; i < nq; i++) {
		q[i].async_id = 0;
		q[i].done = false;
		q[i].timed_out = false;
		q[i].err = 0;
		q[i].result = NULL;
	}
	/* asked outside the lock: the callback cannot run before we take
	 * it (only ub_process runs callbacks, and only under it) */
	for (size_t i = 0; i < nq; i++) {
		int rc = ub_resolve_async(n->ub, q[i].name, q[i].rrtype,
					  1 /* IN */, &q[i], dnet_answer,
					  &q[i].async_id);
		if (rc) {
			pthread_mutex_lock(&n->lock);
			q[i].err = rc;
			q[i].done = true;
			pthread_mutex_unlock(&n->lock);
		}
	}

	pthread_mutex_lock(&n->lock);
	for (;;) {
		size_t left = 0;
		int64_t now;

		for (size_t i = 0; i < nq; i++)
			left += !q[i].done;
		if (!left)
			break;
		now = smp_disc_now_ms();
		if (now >= deadline_ms) {
			for (size_t i = 0; i < nq; i++) {
				if (q[i].done)
					continue;
				/* still out: its answer will be dropped */
				ub_cancel(n->ub, q[i].async_id);
				q[i].timed_out = true;
				q[i].done = true;
				timed_out++;
			}
			break;
		}
		if (!n->pumping) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int64_t wait = deadline_ms - now;
			int rc;

			n->pumping = true;
			pthread_mutex_unlock(&n->lock);
			if (fd >= 0)
				poll(&pfd, 1, wait > INT_MAX ? INT_MAX : (int)wait);
			pthread_mutex_lock(&n->lock);
			rc = fd >= 0 ? ub_process(n->ub) : UB_PIPE;
			n->pumping = false;
			pthread_cond_broadcast(&n->cond);
			if (rc) {
				/* the pipe to libunbound's thread broke:
				 * nothing more will come */
				for (size_t i = 0; i < nq; i++) {
					if (q[i].done)
						continue;
					ub_cancel(n->ub, q[i].async_id);
					q[i].err = rc;
					q[i].done = true;
				}
			}
		} else {
			struct timespec ts;

			dnet_abstime(deadline_ms, &ts);
			pthread_cond_timedwait(&n->cond, &n->lock, &ts);
		}
	}
	pthread_mutex_unlock(&n->lock);
	return timed_out;
}

void smp_dnet_query_clear(struct smp_dnet_query *q)
{
	if (q->result)
		ub_resolve_free(q->result);
	q->result = NULL;
}
