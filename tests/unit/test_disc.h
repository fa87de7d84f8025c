/* test_disc.h - the real servers of the key discovery tests: knotd with
 * the DNSSEC-signed test zones, the HTTPS server with the WKD trees and
 * the DNS black hole (tests/discovery/disc-start.sh says what each serves,
 * and the test addresses and their cases).
 *
 * The servers: the ones SMP_TEST_DISC_DIR and the other SMP_TEST_DISC_*
 * variables name (tests/run-tests.sh starts them once for every test
 * binary), else this binary's own, started by disc-start.sh in a fresh
 * /tmp directory and stopped by PID (disc-stop.sh) when it exits. There
 * is no silent skip: a test that needs them fails when it cannot have
 * them.
 *
 * All functions are static inline like test_util.h's.
 */
#ifndef SMP_TEST_DISC_H
#define SMP_TEST_DISC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smp_discovery.h"

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "fixtures"
#endif
#define TDISC_SCRIPTS FIXTURES_DIR "/../tests/discovery"

struct tdisc_env {
	char dir[128];       /* DIR of disc-start.sh */
	char dns[64];        /* knotd: "127.0.0.1@PORT", a forwarder */
	char blackhole[64];  /* never answers: "127.0.0.1@PORT" */
	unsigned https_port;
	char ca[192];        /* the test CA, PEM */
	char ta[192];        /* the trust anchor (DS of smp.example.) */
};

static struct tdisc_env tdisc;
static char tdisc_own[64]; /* the directory of our own servers, or "" */

static inline void tdisc_stop_own(void)
{
	char cmd[256];

	if (!tdisc_own[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s/disc-stop.sh %s", TDISC_SCRIPTS,
		 tdisc_own);
	if (system(cmd) != 0)
		fprintf(stderr, "test_disc: %s failed\n", cmd);
	tdisc_own[0] = '\0';
}

static inline int tdisc_copy(char *dst, size_t len, const char *v)
{
	if (!v || !*v || strlen(v) >= len)
		return -1;
	strcpy(dst, v);
	return 0;
}

/* One "export NAME=VALUE" line of DIR/env into tdisc. */
static inline void tdisc_take(const char *name, const char *v, int *missing)
{
	if (!strcmp(name, "SMP_TEST_DISC_DIR"))
		*missing += tdisc_copy(tdisc.dir, sizeof(tdisc.dir), v) ? 1 : 0;
	else if (!strcmp(name, "SMP_TEST_DISC_DNS"))
		*missing += tdisc_copy(tdisc.dns, sizeof(tdisc.dns), v) ? 1 : 0;
	else if (!strcmp(name, "SMP_TEST_DISC_BLACKHOLE"))
		*missing += tdisc_copy(tdisc.blackhole, sizeof(tdisc.blackhole),
				       v) ? 1 : 0;
	else if (!strcmp(name, "SMP_TEST_DISC_HTTPS_PORT"))
		tdisc.https_port = v ? (unsigned)strtoul(v, NULL, 10) : 0;
	else if (!strcmp(name, "SMP_TEST_DISC_CA"))
		*missing += tdisc_copy(tdisc.ca, sizeof(tdisc.ca), v) ? 1 : 0;
	else if (!strcmp(name, "SMP_TEST_DISC_TA"))
		*missing += tdisc_copy(tdisc.ta, sizeof(tdisc.ta), v) ? 1 : 0;
}

static const char *const tdisc_vars[] = {
	"SMP_TEST_DISC_DIR", "SMP_TEST_DISC_DNS", "SMP_TEST_DISC_BLACKHOLE",
	"SMP_TEST_DISC_HTTPS_PORT", "SMP_TEST_DISC_CA", "SMP_TEST_DISC_TA",
};

/* Fills tdisc (see the top); 0, or -1 with a message on stderr. */
static inline int tdisc_setup(void)
{
	char path[192], line[512];
	int missing = 0;
	FILE *f;

	if (tdisc.dir[0])
		return 0;
	if (getenv("SMP_TEST_DISC_DIR") && *getenv("SMP_TEST_DISC_DIR")) {
		for (size_t i = 0; i < sizeof(tdisc_vars) / sizeof(tdisc_vars[0]); i++)
			tdisc_take(tdisc_vars[i], getenv(tdisc_vars[i]), &missing);
	} else {
		char cmd[256];

		snprintf(tdisc_own, sizeof(tdisc_own), "/tmp/smpdisc.XXXXXX");
		if (!mkdtemp(tdisc_own)) {
			tdisc_own[0] = '\0';
			fprintf(stderr, "test_disc: mkdtemp failed\n");
			return -1;
		}
		atexit(tdisc_stop_own);
		snprintf(cmd, sizeof(cmd), "%s/disc-start.sh %s >/dev/null",
			 TDISC_SCRIPTS, tdisc_own);
		if (system(cmd) != 0) {
			fprintf(stderr, "test_disc: cannot start the discovery "
				"test servers with %s (Debian packages knot, "
				"knot-dnssecutils, sq, python3, openssl; make "
				"deps installs them)\n", cmd);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/env", tdisc_own);
		f = fopen(path, "r");
		if (!f) {
			fprintf(stderr, "test_disc: no %s\n", path);
			return -1;
		}
		while (fgets(line, sizeof(line), f)) {
			char *eq, *name = line;

			line[strcspn(line, "\n")] = '\0';
			if (!strncmp(name, "export ", 7))
				name += 7;
			eq = strchr(name, '=');
			if (!eq)
				continue;
			*eq = '\0';
			tdisc_take(name, eq + 1, &missing);
		}
		fclose(f);
	}
	if (missing || !tdisc.dir[0] || !tdisc.https_port ||
	    tdisc.https_port > 65535) {
		fprintf(stderr, "test_disc: the SMP_TEST_DISC_* variables are "
			"incomplete (tests/discovery/disc-start.sh prints them)\n");
		tdisc.dir[0] = '\0';
		return -1;
	}
	return 0;
}

/* DIR/rel into buf. */
static inline const char *tdisc_path(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", tdisc.dir, rel);
	return buf;
}

/* A net on the test servers: forwarder fwd (NULL: knotd), the test CA
 * (ca NULL) and trust anchor, max_bytes (0: the default). */
static inline struct smp_disc_net *tdisc_net(const char *fwd, const char *ca,
					     size_t max_bytes)
{
	const char *fw[1] = {fwd ? fwd : tdisc.dns};
	struct smp_disc_net_config c = {
		.ca_file = ca ? ca : tdisc.ca,
		.https_port = tdisc.https_port,
		.dns_forwarders = fw,
		.n_dns_forwarders = 1,
		.dns_trust_anchor_file = tdisc.ta,
		.max_bytes = max_bytes,
	};
	char err[256];
	struct smp_disc_net *n = smp_disc_net_new(&c, err, sizeof(err));

	if (!n)
		fail_msg("smp_disc_net_new: %s", err);
	return n;
}

#endif
