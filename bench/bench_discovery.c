/*
 * bench_discovery.c - cold key lookups per second (issue 11, "What it
 * must show"): WKD and DANE lookups of addresses nobody asked for before,
 * against the real test servers of tests/discovery on loopback, through
 * the same transports the milter uses (lib/smp_discovery_wkd.c,
 * smp_discovery_dane.c: libcurl with the test CA, libunbound with the
 * test zone's trust anchor, DNSSEC-validated).
 *
 *   bench_discovery --config CONF --addresses FILE --method wkd|dane
 *                   [--threads N] [--timeout-ms MS]
 *
 * CONF is an smp-milter.conf whose discovery { } points at the servers
 * (ca_file, https_port, dns_forwarders, dns_trust_anchor_file); one
 * struct smp_disc_net is made from it (as the daemon makes one) and
 * shared by N threads (default 1) that take the addresses of FILE (one a
 * line) in turn, each asked once by METHOD with a deadline of MS
 * (default 5000) from its start. Every lookup is cold for its address:
 * the WKD file or OPENPGPKEY record of an address is fetched once; what
 * libunbound keeps between lookups is what a running daemon keeps too
 * (the WKD host's A record, the zone's DNSKEY), and each WKD lookup is a
 * new TLS connection (one curl handle per lookup, as in the daemon).
 *
 * With --full DB, each lookup is the whole of what the milter does for
 * a recipient without a key (smp_discovery_recipient: the keyring check,
 * the fetch, the harvest rules on what was found, the keyring write of
 * the key and binding, source wkd/dane, and of the cache entry) into the
 * SQLite keyring DB (made when missing), each thread with its own
 * keyring connection and rnp engine, as a milter worker has; the
 * addresses' published keys must then pass the rules (UID = address).
 *
 * Printed, one line: lookups, seconds, lookups/s, found/none/error and
 * the mean, p50, p99 and max latency. Exit 1 when the setup fails or any
 * lookup was not FOUND (--full: HAVE from the network) - the bench
 * publishes a key for every address.
 *
 *   bench_discovery --harvest-into DB --keys DIR --addresses FILE
 *
 * The other mode, for the Postfix part of the bench: makes the addresses
 * of FILE "already-harvested recipients" of the SQLite keyring DB (the
 * milter's): each one's key DIR/ADDRESS.pub (binary) goes through
 * smp_harvest_message() as the milter harvests an inbound SMP message
 * from ADDRESS carrying it (rnp engine, default harvest rules): a binding
 * in state active, source smp. Exit 1 unless every key was harvested.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp_config.h"
#include "smp_crypto.h"
#include "smp_discovery.h"
#include "smp_harvest.h"
#include "smp_keyring.h"
#include "smp_limits.h"
#include "smp_result.h"

struct job {
	struct smp_disc_net *net;
	char **addr;
	size_t n;
	atomic_size_t next;
	int method;          /* SMP_DISC_WKD or SMP_DISC_DANE */
	int64_t timeout_ms;
	double *lat_ms;      /* per address */
	atomic_uint found, none, error;
	char first_error[1024];
	pthread_mutex_t lock;
	const char *full_db;              /* --full: the keyring */
	const struct smp_config *cfg;
	struct smp_disc_methods methods;  /* --full: the one method */
};

static double now_s(void);

/* --full: one smp_discovery_recipient per address, own keyring + engine. */
static void *worker_full(void *arg)
{
	struct job *j = arg;
	struct smp_keyring *kr = NULL;
	struct smp_crypto *c = NULL;
	struct smp_harvest_config hc;
	char err[512];
	size_t i;

	if (smp_keyring_open("sqlite", j->full_db, &kr, err, sizeof(err)) != 0 ||
	    smp_crypto_open("rnp", NULL, &c, err, sizeof(err)) != 0) {
		pthread_mutex_lock(&j->lock);
		if (!j->first_error[0])
			snprintf(j->first_error, sizeof(j->first_error), "%s", err);
		pthread_mutex_unlock(&j->lock);
		if (kr)
			smp_keyring_close(kr);
		return NULL;
	}
	smp_harvest_config_init(&hc);
	hc.on_conflict = (enum smp_on_conflict)j->cfg->on_conflict;
	while ((i = atomic_fetch_add(&j->next, 1)) < j->n) {
		struct smp_disc_ctx dx;
		struct smp_disc_result r;
		double t0 = now_s();
		int rc;

		memset(&dx, 0, sizeof(dx));
		dx.net = j->net;
		dx.kr = kr;
		dx.crypto = c;
		dx.cfg = &j->cfg->disc;
		dx.methods = &j->methods;
		dx.harvest = &hc;
		dx.limits = &j->cfg->check.limits;
		dx.deadline_ms = smp_disc_now_ms() + j->timeout_ms;
		rc = smp_discovery_recipient(&dx, j->addr[i], &r);
		j->lat_ms[i] = (now_s() - t0) * 1000.0;
		if (rc == 0 && r.outcome == SMP_DISC_HAVE && !r.bound && !r.cached) {
			atomic_fetch_add(&j->found, 1);
			continue;
		}
		if (rc == 0 && r.outcome == SMP_DISC_NOKEY)
			atomic_fetch_add(&j->none, 1);
		else
			atomic_fetch_add(&j->error, 1);
		pthread_mutex_lock(&j->lock);
		if (!j->first_error[0])
			snprintf(j->first_error, sizeof(j->first_error),
				 "%s: %s%s%s: %.900s", j->addr[i],
				 rc ? "failed" : smp_disc_outcome_name(r.outcome),
				 r.cached ? " (cached)" : "",
				 r.bound ? " (bound)" : "", r.detail);
		pthread_mutex_unlock(&j->lock);
	}
	smp_crypto_close(c);
	smp_keyring_close(kr);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	size_t i;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->n) {
		struct smp_disc_answer a = {0}; /* cleared (freed) by the call */
		double t0 = now_s();
		int64_t deadline = smp_disc_now_ms() + j->timeout_ms;

		if (j->method == SMP_DISC_WKD)
			smp_disc_wkd(j->net, j->addr[i], deadline, &a);
		else
			smp_disc_dane(j->net, j->addr[i], deadline, &a);
		j->lat_ms[i] = (now_s() - t0) * 1000.0;
		if (a.status == SMP_DISC_FOUND) {
			atomic_fetch_add(&j->found, 1);
		} else {
			if (a.status == SMP_DISC_NONE)
				atomic_fetch_add(&j->none, 1);
			else
				atomic_fetch_add(&j->error, 1);
			pthread_mutex_lock(&j->lock);
			if (!j->first_error[0])
				snprintf(j->first_error, sizeof(j->first_error),
					 "%s: %s %s", j->addr[i],
					 smp_disc_status_name(a.status),
					 a.status == SMP_DISC_ERROR ? a.error
								     : a.origin);
			pthread_mutex_unlock(&j->lock);
		}
		smp_disc_answer_clear(&a);
	}
	return NULL;
}

static char **read_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[512], **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				exit(1);
		}
		v[(*n)++] = strdup(line);
	}
	fclose(f);
	return v;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* --harvest-into: every address's key harvested from "its" message. */
static int harvest_all(const char *db, const char *dir, char **addr, size_t n)
{
	struct smp_keyring *kr = NULL;
	struct smp_crypto *c = NULL;
	struct smp_harvest_config hc;
	struct smp_limits lim;
	char err[512], path[1024], msgid[128];
	unsigned done = 0;

	if (smp_keyring_open("sqlite", db, &kr, err, sizeof(err)) != 0 ||
	    smp_crypto_open("rnp", NULL, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_discovery: %s\n", err);
		return 1;
	}
	smp_harvest_config_init(&hc);
	smp_limits_init(&lim);
	for (size_t i = 0; i < n; i++) {
		const char *from[1] = {addr[i]};
		struct smp_harvest_ctx ctx;
		struct smp_key_part part;
		struct smp_harvest_report rep = {0};
		size_t len;
		unsigned char *data;

		snprintf(path, sizeof(path), "%s/%s.pub", dir, addr[i]);
		data = slurp(path, &len);
		if (!data) {
			fprintf(stderr, "bench_discovery: cannot read %s\n", path);
			break;
		}
		memset(&ctx, 0, sizeof(ctx));
		ctx.cfg = &hc;
		ctx.limits = &lim;
		ctx.envelope_sender = addr[i];
		ctx.from = from;
		ctx.nfrom = 1;
		ctx.outbound = false;
		snprintf(msgid, sizeof(msgid), "<bench-disc-%zu@bench.example>", i);
		ctx.message_id = msgid;
		ctx.client_addr = "192.0.2.25";
		ctx.source = SMP_SRC_SMP;
		memset(&part, 0, sizeof(part));
		part.name = (char *)"public-key-1";
		part.kind = SMP_KEY_PUBLIC;
		part.encoding = SMP_ENC_BINARY;
		part.nkeys = 1;
		part.data = data;
		part.size = len;
		if (smp_harvest_message(kr, c, &ctx, &part, 1, &rep) < 0)
			fprintf(stderr, "bench_discovery: harvest of %s failed: %s\n",
				addr[i], rep.error);
		else if (rep.n == 1 && rep.lines[0].outcome == SMP_HV_HARVESTED)
			done++;
		else
			fprintf(stderr, "bench_discovery: %s not harvested (%s)\n",
				addr[i], rep.n == 1 ? smp_harvest_reason_token(rep.lines[0].reason) : "?");
		smp_harvest_report_clear(&rep);
		free(data);
	}
	smp_crypto_close(c);
	smp_keyring_close(kr);
	printf("harvested %u of %zu keys into %s\n", done, n, db);
	return done == n ? 0 : 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_discovery --config CONF --addresses FILE "
			"--method wkd|dane [--threads N] [--timeout-ms MS] [--full DB]\n"
			"       bench_discovery --harvest-into DB --keys DIR "
			"--addresses FILE\n");
	exit(64);
}

int main(int argc, char **argv)
{
	const char *conf = NULL, *file = NULL, *method = NULL;
	const char *hdb = NULL, *keydir = NULL, *full = NULL;
	unsigned threads = 1;
	int64_t timeout_ms = 5000;
	char err[512];

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--config"))
			conf = argv[++i];
		else if (!strcmp(argv[i], "--addresses"))
			file = argv[++i];
		else if (!strcmp(argv[i], "--method"))
			method = argv[++i];
		else if (!strcmp(argv[i], "--threads"))
			threads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--timeout-ms"))
			timeout_ms = strtoll(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--harvest-into"))
			hdb = argv[++i];
		else if (!strcmp(argv[i], "--keys"))
			keydir = argv[++i];
		else if (!strcmp(argv[i], "--full"))
			full = argv[++i];
		else
			usage();
	}
	if (hdb) {
		char **v;
		size_t n;

		if (!keydir || !file)
			usage();
		v = read_lines(file, &n);
		if (!v || !n) {
			fprintf(stderr, "bench_discovery: no addresses in %s\n", file);
			return 1;
		}
		int hrc = harvest_all(hdb, keydir, v, n);
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return hrc;
	}
	if (!conf || !file || !method || threads < 1 || threads > 256 ||
	    timeout_ms < 1)
		usage();

	struct job j;
	memset(&j, 0, sizeof(j));
	pthread_mutex_init(&j.lock, NULL);
	j.method = smp_disc_method_parse(method);
	if (j.method < 0)
		usage();
	j.timeout_ms = timeout_ms;
	j.full_db = full;
	j.methods.n = 1;
	j.methods.m[0] = (enum smp_disc_method)j.method;

	struct smp_config *cfg = smp_config_load(conf, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "bench_discovery: %s\n", err);
		return 1;
	}
	j.cfg = cfg;
	struct smp_disc_net_config nc;
	smp_config_disc_net(cfg, &nc);
	j.net = smp_disc_net_new(&nc, err, sizeof(err));
	if (!j.net) {
		fprintf(stderr, "bench_discovery: %s\n", err);
		return 1;
	}
	j.addr = read_lines(file, &j.n);
	if (!j.addr || !j.n) {
		fprintf(stderr, "bench_discovery: no addresses in %s\n", file);
		return 1;
	}
	j.lat_ms = calloc(j.n, sizeof(double));
	pthread_t *tid = calloc(threads, sizeof(pthread_t));
	if (!j.lat_ms || !tid)
		return 1;

	double t0 = now_s();
	for (unsigned t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, full ? worker_full : worker, &j);
	for (unsigned t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	double secs = now_s() - t0;

	double sum = 0;
	for (size_t i = 0; i < j.n; i++)
		sum += j.lat_ms[i];
	qsort(j.lat_ms, j.n, sizeof(double), cmp_double);
	printf("%-4s %s%2u thread%s: %zu cold lookups in %.2f s = %.1f lookups/s "
	       "(%s %u, none %u, error %u); latency ms mean %.1f p50 %.1f "
	       "p99 %.1f max %.1f\n",
	       method, full ? "full " : "", threads, threads == 1 ? " " : "s", j.n, secs,
	       (double)j.n / secs, full ? "stored" : "found", atomic_load(&j.found), atomic_load(&j.none),
	       atomic_load(&j.error), sum / (double)j.n, j.lat_ms[j.n / 2],
	       j.lat_ms[(j.n * 99) / 100 < j.n ? (j.n * 99) / 100 : j.n - 1],
	       j.lat_ms[j.n - 1]);
	if (j.first_error[0])
		printf("     first failure: %s\n", j.first_error);

	int rc = atomic_load(&j.found) == j.n ? 0 : 1;
	for (size_t i = 0; i < j.n; i++)
		free(j.addr[i]);
	free(j.addr);
	free(j.lat_ms);
	free(tid);
	smp_disc_net_free(j.net);
	smp_config_free(cfg);
	return rc;
}
