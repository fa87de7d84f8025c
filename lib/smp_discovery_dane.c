/* smp_discovery_dane.c - the DANE transport (smp_discovery.h): one
 * OPENPGPKEY query (RFC 7929) through the net's validating libunbound
 * context, read as FOUND only when the answer is DNSSEC-secure.
 *
 * Nothing is parsed here: libunbound gives the records' data, the policy
 * layer hands them to the crypto engine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "smp_discovery_net.h"

/* Fills out from the answer to the OPENPGPKEY query q; 0 or -1 (out of
 * memory). */
static int dane_read(struct smp_disc_net *n, const struct smp_dnet_query *q,
		     int64_t started, struct smp_disc_answer *out)
{
	const struct ub_result *r = q->result;
	char rb[16];
	size_t total = 0;
	unsigned char *p;

	if (q->timed_out) {
		smp_dnet_errorf(out, "DNS query for %s OPENPGPKEY timed out after %lld ms",
			 q->name, (long long)(smp_disc_now_ms() - started));
		return 0;
	}
	if (q->err || !r) {
		smp_dnet_errorf(out, "DNS query for %s OPENPGPKEY failed: %s", q->name,
			 ub_strerror(q->err));
		return q->err == UB_NOMEM ? -1 : 0;
	}
	if (r->bogus) {
		/* checked before the rcode: libunbound answers a bogus
		 * answer with SERVFAIL, and this says why */
		smp_dnet_errorf(out, "DNSSEC validation of %s OPENPGPKEY failed (bogus): %s",
			 q->name, r->why_bogus ? r->why_bogus : "no reason given");
		return 0;
	}
	out->ttl = r->ttl >= 0 ? r->ttl : 0;
	if (r->rcode == SMP_DNET_NXDOMAIN) {
		out->status = SMP_DISC_NONE;
		return 0;
	}
	if (r->rcode != SMP_DNET_NOERROR) {
		out->ttl = -1;
		smp_dnet_errorf(out, "DNS query for %s OPENPGPKEY failed: %s", q->name,
			 smp_dnet_rcode_name(r->rcode, rb, sizeof(rb)));
		return 0;
	}
	/* NODATA, or data from a zone no trust anchor covers (RFC 7929
	 * section 7: keys from DNS need DNSSEC): nothing published */
	if (!r->havedata || !r->secure) {
		out->status = SMP_DISC_NONE;
		return 0;
	}
	for (size_t i = 0; r->data[i]; i++) {
		total += (size_t)r->len[i];
		if (total > n->max_bytes) {
			out->ttl = -1;
			smp_dnet_errorf(out, "the OPENPGPKEY records of %s are larger than %zu bytes",
				 q->name, n->max_bytes);
			return 0;
		}
	}
	if (total == 0) {
		out->ttl = -1;
		smp_dnet_errorf(out, "the OPENPGPKEY record of %s is empty", q->name);
		return 0;
	}
	p = malloc(total);
	if (!p) {
		out->ttl = -1;
		smp_dnet_errorf(out, "out of memory reading the OPENPGPKEY records of %s",
			 q->name);
		return -1;
	}
	total = 0;
	for (size_t i = 0; r->data[i]; i++) {
		memcpy(p + total, r->data[i], (size_t)r->len[i]);
		total += (size_t)r->len[i];
	}
	out->data = p;
	out->len = total;
	out->status = SMP_DISC_FOUND;
	return 0;
}

int smp_disc_dane(struct smp_disc_net *n, const char *address,
		  int64_t deadline_ms, struct smp_disc_answer *out)
{
	struct smp_dnet_query q = {0};
	int64_t started = smp_disc_now_ms();
	int rc = 0;

	smp_dnet_answer_start(out, SMP_DISC_DANE);
	if (smp_dane_qname(address, out->origin, sizeof(out->origin))) {
		out->origin[0] = '\0';
		smp_dnet_errorf(out, "\"%.200s\" is not an address DANE can look up",
			 address);
		goto out;
	}
	if (started >= deadline_ms) {
		smp_dnet_errorf(out, "DNS query for %s OPENPGPKEY timed out before it was sent",
			 out->origin);
		goto out;
	}
	q.name = out->origin;
	q.rrtype = SMP_DNET_OPENPGPKEY;
	smp_dnet_resolve(n, &q, 1, deadline_ms);
	rc = dane_read(n, &q, started, out);
out:
	smp_dnet_query_clear(&q);
	return rc;
}
