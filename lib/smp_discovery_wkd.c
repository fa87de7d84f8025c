/* smp_discovery_wkd.c - the WKD transport (smp_discovery.h): the advanced
 * URL, or the direct one when the advanced host does not exist, fetched
 * with libcurl.
 *
 * DNS: the host names are resolved through the net's libunbound context
 * (A and AAAA at once), never the system resolver: curl is handed the
 * addresses (CURLOPT_RESOLVE) and has no proxy, so it looks nothing up
 * itself. A bogus answer is an ERROR even though WKD does not need DNSSEC
 * (TLS authenticates the server): someone is tampering with the answers.
 *
 * HTTPS: https only, no redirects, the certificate verified against the
 * configured CA file (or the system's) and the host name, at most
 * max_bytes taken, everything inside the caller's deadline.
 *
 * Nothing is parsed here: the body goes to the policy layer as it came.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "smp_discovery_net.h"

#define WKD_MAX_ADDRS 8
#define WKD_ADDR_LEN (INET6_ADDRSTRLEN + 2) /* "[v6]" */
#define WKD_URL_MAX 512
#define WKD_HOST_MAX 256
#define WKD_USER_AGENT "smp-milter"

enum wkd_host {
	WKD_HOST_ADDR,  /* addresses found */
	WKD_HOST_NONE,  /* the name does not exist or has no address */
	WKD_HOST_ERROR, /* out->error says why */
};

struct wkd_addrs {
	size_t n;
	char a[WKD_MAX_ADDRS][WKD_ADDR_LEN];
};

/* The host part of url (one of smp_wkd_urls'), through curl's parser: 0
 * or -1. */
static int wkd_url_host(const char *url, char *host, size_t hostlen)
{
	CURLU *u = curl_url();
	char *h = NULL;
	int rc = -1;

	if (!u)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK)
		goto out;
	if (strlen(h) >= hostlen)
		goto out;
	strcpy(host, h);
	rc = 0;
out:
	curl_free(h);
	curl_url_cleanup(u);
	return rc;
}

/* Appends the addresses of an A or AAAA answer to a. */
static void wkd_take_addrs(const struct ub_result *r, struct wkd_addrs *a)
{
	for (size_t i = 0; r->data[i] && a->n < WKD_MAX_ADDRS; i++) {
		char s[INET6_ADDRSTRLEN];

		if (r->qtype == SMP_DNET_A && r->len[i] == 4 &&
		    inet_ntop(AF_INET, r->data[i], s, sizeof(s)))
			snprintf(a->a[a->n++], WKD_ADDR_LEN, "%s", s);
		else if (r->qtype == SMP_DNET_AAAA && r->len[i] == 16 &&
			 inet_ntop(AF_INET6, r->data[i], s, sizeof(s)))
			snprintf(a->a[a->n++], WKD_ADDR_LEN, "[%s]", s);
	}
}

/* The addresses of host (for url, which the sentences name). */
static enum wkd_host wkd_resolve(struct smp_disc_net *n, const char *host,
				 const char *url, int64_t deadline_ms,
				 struct wkd_addrs *a, struct smp_disc_answer *out)
{
	struct smp_dnet_query q[2] = {
		{.name = host, .rrtype = SMP_DNET_A},
		{.name = host, .rrtype = SMP_DNET_AAAA},
	};
	int64_t started = smp_disc_now_ms();
	enum wkd_host ret = WKD_HOST_ERROR;
	const struct smp_dnet_query *failed = NULL;
	char rb[16];

	a->n = 0;
	if (started >= deadline_ms) {
		smp_dnet_errorf(out, "DNS lookup of %s timed out before it was sent (for %s)",
			 host, url);
		return WKD_HOST_ERROR;
	}
	if (smp_dnet_resolve(n, q, 2, deadline_ms)) {
		smp_dnet_errorf(out, "DNS lookup of %s timed out after %lld ms (for %s)", host,
			 (long long)(smp_disc_now_ms() - started), url);
		goto out;
	}
	/* bogus first: tampering, whatever the other answer says */
	for (size_t i = 0; i < 2; i++) {
		const struct ub_result *r = q[i].result;

		if (!q[i].err && r && r->bogus) {
			smp_dnet_errorf(out, "DNSSEC validation of %s failed (bogus): %s (for %s)",
				 host, r->why_bogus ? r->why_bogus : "no reason given",
				 url);
			goto out;
		}
	}
	for (size_t i = 0; i < 2; i++) {
		const struct ub_result *r = q[i].result;

		if (q[i].err || !r)
			failed = &q[i];
		else if (r->rcode == SMP_DNET_NOERROR && r->havedata)
			wkd_take_addrs(r, a);
		else if (r->rcode != SMP_DNET_NOERROR &&
			 r->rcode != SMP_DNET_NXDOMAIN)
			failed = &q[i];
	}
	if (a->n) {
		/* one family answered: a failure of the other (servers that
		 * fail AAAA queries) does not keep us from the host */
		ret = WKD_HOST_ADDR;
	} else if (failed) {
		smp_dnet_errorf(out, "DNS lookup of %s (%s) failed: %s (for %s)", host,
			 failed->rrtype == SMP_DNET_A ? "A" : "AAAA",
			 failed->err || !failed->result
				 ? ub_strerror(failed->err)
				 : smp_dnet_rcode_name(failed->result->rcode, rb,
						       sizeof(rb)),
			 url);
	} else {
		ret = WKD_HOST_NONE;
	}
out:
	smp_dnet_query_clear(&q[0]);
	smp_dnet_query_clear(&q[1]);
	return ret;
}

struct wkd_body {
	unsigned char *p;
	size_t len, cap, max;
	bool too_big, nomem;
};

/* curl's write callback: keeps at most max bytes. Returning less than
 * it was given makes curl stop with CURLE_WRITE_ERROR. */
static size_t wkd_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wkd_body *b = arg;
	size_t n = size * nmemb;

	if (n > b->max - b->len) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		unsigned char *p;

		while (cap < b->len + n)
			cap *= 2;
		if (cap > b->max)
			cap = b->max;
		p = realloc(b->p, cap);
		if (!p) {
			b->nomem = true;
			return 0;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return n;
}

/* GET url from host at addresses a; fills out; 0 or -1 (out of memory). */
static int wkd_fetch(struct smp_disc_net *n, const char *url,
		     const char *host, const struct wkd_addrs *a,
		     int64_t deadline_ms, struct smp_disc_answer *out)
{
	char resolve[WKD_HOST_MAX + 8 + WKD_MAX_ADDRS * (WKD_ADDR_LEN + 1)];
	char cerr[CURL_ERROR_SIZE] = "";
	struct wkd_body body = {.max = n->max_bytes};
	struct curl_slist *rl = NULL;
	CURL *c = NULL;
	CURLcode rc;
	long code = 0;
	int64_t started = smp_disc_now_ms(), left = deadline_ms - started;
	size_t off;
	int ret = 0;

	if (left <= 0) {
		smp_dnet_errorf(out, "WKD fetch of %s timed out before it was sent", url);
		goto out;
	}
	off = (size_t)snprintf(resolve, sizeof(resolve), "%s:%u:", host,
			       n->https_port);
	for (size_t i = 0; i < a->n && off < sizeof(resolve); i++)
		off += (size_t)snprintf(resolve + off, sizeof(resolve) - off,
					"%s%s", i ? "," : "", a->a[i]);
	if (off >= sizeof(resolve)) {
		smp_dnet_errorf(out, "WKD fetch of %s: too many addresses", url);
		goto out;
	}
	c = curl_easy_init();
	rl = curl_slist_append(NULL, resolve);
	if (!c || !rl) {
		smp_dnet_errorf(out, "out of memory fetching %s", url);
		ret = -1;
		goto out;
	}
#define WKD_SET(opt, val)                                                   \
	do {                                                                \
		if (curl_easy_setopt(c, opt, val) != CURLE_OK) {            \
			smp_dnet_errorf(out, \
				 "WKD fetch of %s: libcurl refused %s", url, \
				 #opt);                                     \
			goto out;                                           \
		}                                                           \
	} while (0)
	WKD_SET(CURLOPT_URL, url);
	WKD_SET(CURLOPT_PROTOCOLS_STR, "https");
	WKD_SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	WKD_SET(CURLOPT_FOLLOWLOCATION, 0L);
	/* the addresses libunbound found; no proxy from the environment,
	 * which would resolve and connect on its own */
	WKD_SET(CURLOPT_RESOLVE, rl);
	WKD_SET(CURLOPT_PROXY, "");
	WKD_SET(CURLOPT_SSL_VERIFYPEER, 1L);
	WKD_SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (n->ca_file) {
		/* this bundle only: not the system's directory besides */
		WKD_SET(CURLOPT_CAINFO, n->ca_file);
		WKD_SET(CURLOPT_CAPATH, (char *)NULL);
	}
	WKD_SET(CURLOPT_TIMEOUT_MS, (long)left);
	WKD_SET(CURLOPT_CONNECTTIMEOUT_MS, (long)left);
	/* threads: no SIGALRM for timeouts */
	WKD_SET(CURLOPT_NOSIGNAL, 1L);
	/* 4xx and 5xx bodies are never read (a 404's size is no error) */
	WKD_SET(CURLOPT_FAILONERROR, 1L);
	WKD_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)n->max_bytes);
	WKD_SET(CURLOPT_WRITEFUNCTION, wkd_write);
	WKD_SET(CURLOPT_WRITEDATA, &body);
	WKD_SET(CURLOPT_ERRORBUFFER, cerr);
	WKD_SET(CURLOPT_USERAGENT, WKD_USER_AGENT);
#undef WKD_SET

	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (body.nomem) {
		smp_dnet_errorf(out, "out of memory reading %s", url);
		ret = -1;
	} else if (code == 404 &&
		   (rc == CURLE_OK || rc == CURLE_HTTP_RETURNED_ERROR ||
		    rc == CURLE_FILESIZE_EXCEEDED || body.too_big)) {
		/* the status is the answer, whatever came after it */
		out->status = SMP_DISC_NONE;
	} else if (body.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		smp_dnet_errorf(out, "WKD answer from %s is larger than %zu bytes", url,
			 n->max_bytes);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		smp_dnet_errorf(out, "WKD fetch of %s timed out after %lld ms", url,
			 (long long)(smp_disc_now_ms() - started));
	} else if (rc == CURLE_HTTP_RETURNED_ERROR ||
		   (rc == CURLE_OK && code != 200)) {
		smp_dnet_errorf(out, "WKD server answered HTTP %ld for %s", code, url);
	} else if (rc != CURLE_OK) {
		smp_dnet_errorf(out, "WKD fetch of %s failed: %s%s%s", url,
			 curl_easy_strerror(rc), cerr[0] ? ": " : "", cerr);
	} else if (body.len == 0) {
		smp_dnet_errorf(out, "WKD server answered HTTP 200 with an empty body for %s",
			 url);
	} else {
		out->status = SMP_DISC_FOUND;
		out->data = body.p;
		out->len = body.len;
		body.p = NULL;
	}
out:
	free(body.p);
	curl_slist_free_all(rl);
	if (c)
		curl_easy_cleanup(c);
	return ret;
}

int smp_disc_wkd(struct smp_disc_net *n, const char *address,
		 int64_t deadline_ms, struct smp_disc_answer *out)
{
	char adv[WKD_URL_MAX], dir[WKD_URL_MAX], host[WKD_HOST_MAX];
	struct wkd_addrs a;
	enum wkd_host h;
	int rc = 0;

	smp_dnet_answer_start(out, SMP_DISC_WKD);
	if (smp_wkd_urls(address, n->https_port, adv, sizeof(adv), dir,
			 sizeof(dir))) {
		smp_dnet_errorf(out, "\"%.200s\" is not an address WKD can look up", address);
		goto out;
	}

	/* the advanced method, when its host name exists */
	snprintf(out->origin, sizeof(out->origin), "%s", adv);
	if (wkd_url_host(adv, host, sizeof(host))) {
		smp_dnet_errorf(out, "WKD URL %s has no host name", adv);
		goto out;
	}
	h = wkd_resolve(n, host, adv, deadline_ms, &a, out);
	if (h == WKD_HOST_ERROR)
		goto out;
	if (h == WKD_HOST_ADDR) {
		rc = wkd_fetch(n, adv, host, &a, deadline_ms, out);
		goto out;
	}

	/* the direct method: a domain with no address publishes nothing */
	snprintf(out->origin, sizeof(out->origin), "%s", dir);
	if (wkd_url_host(dir, host, sizeof(host))) {
		smp_dnet_errorf(out, "WKD URL %s has no host name", dir);
		goto out;
	}
	h = wkd_resolve(n, host, dir, deadline_ms, &a, out);
	if (h == WKD_HOST_NONE)
		out->status = SMP_DISC_NONE;
	else if (h == WKD_HOST_ADDR)
		rc = wkd_fetch(n, dir, host, &a, deadline_ms, out);
out:
	return rc;
}
