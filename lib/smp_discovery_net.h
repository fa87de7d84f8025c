/* smp_discovery_net.h - inside the discovery transports (not for callers:
 * they use smp_discovery.h). The net object smp_discovery_net.c makes and
 * the DNS queries smp_discovery_wkd.c and smp_discovery_dane.c both ask
 * through its libunbound context.
 */
#ifndef SMP_DISCOVERY_NET_H
#define SMP_DISCOVERY_NET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_discovery.h"

struct ub_ctx;
struct ub_result;

/*
 * Several threads share one net: ub_resolve_async and ub_cancel are
 * thread-safe in libunbound, but ub_process hands out every thread's
 * answers (it runs their callbacks in the thread that calls it). So one
 * thread at a time "pumps" (polls ub_fd, then calls ub_process under
 * lock); the callbacks mark their queries done under the same lock and
 * the pump wakes the others (cond) when it is done, one of whom pumps
 * next if its own queries are still out.
 */
struct smp_disc_net {
	struct ub_ctx *ub;
	pthread_mutex_t lock; /* ub_process, queries' done flags, pumping */
	pthread_cond_t cond;  /* on CLOCK_MONOTONIC: answers came */
	bool pumping;         /* a thread is in poll/ub_process */
	char *ca_file;        /* NULL: the system's trust store */
	unsigned https_port;
	size_t max_bytes;
};

/* One DNS question and, once done, its answer. */
struct smp_dnet_query {
	const char *name;
	int rrtype;
	/* filled by smp_dnet_resolve */
	int async_id;
	bool done;                /* answered (or failed): err, result */
	bool timed_out;           /* the deadline came first */
	int err;                  /* libunbound error (ub_strerror), 0 */
	struct ub_result *result; /* when done and err == 0 */
};

#define SMP_DNET_A 1
#define SMP_DNET_AAAA 28
#define SMP_DNET_OPENPGPKEY 61
#define SMP_DNET_NOERROR 0
#define SMP_DNET_SERVFAIL 2
#define SMP_DNET_NXDOMAIN 3

/* Asks q[0..nq) at once and waits until every one is answered or
 * deadline_ms has passed (those still out are cancelled and marked
 * timed_out). Each q[i] must have name and rrtype set; the rest is
 * overwritten. Returns the number of queries that timed out. */
size_t smp_dnet_resolve(struct smp_disc_net *n, struct smp_dnet_query *q,
			size_t nq, int64_t deadline_ms);
/* Frees q->result. */
void smp_dnet_query_clear(struct smp_dnet_query *q);

/* Clears out and makes it an ERROR of method m with no TTL yet: what a
 * lookup that stops early answers. */
void smp_dnet_answer_start(struct smp_disc_answer *out,
			   enum smp_disc_method m);

/* out->error = the sentence (truncated to fit: the URL or name it names
 * comes first, out->origin has it whole). */
void smp_dnet_errorf(struct smp_disc_answer *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A short text for rcode ("SERVFAIL", "REFUSED", "rcode 11"). */
const char *smp_dnet_rcode_name(int rcode, char *buf, size_t buflen);

#endif
