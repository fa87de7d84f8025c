/* cmd_refresh.c - "smpctl keys refresh [ADDRESS] [--json]" (SPEC.md 6): asks
 * WKD / DANE again, by hand, for one address or for every address whose
 * key came from the network (the discovery cache's found entries), and
 * puts the answers through the same rules as the daemon's background
 * refresh (smp_discovery_refresh): a revocation or a new expiry lands in
 * the keyring and in "keys history". Exit 0 when every lookup answered,
 * 75 (EX_TEMPFAIL) when one failed (the stored key is left alone), 64/78
 * as every command. doc/discovery.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "smp_address.h"
#include "smp_config.h"
#include "smp_crypto.h"
#include "smp_discovery.h"
#include "smp_keyring.h"
#include "smpctl.h"

static const char refresh_usage[] = "smpctl keys refresh [ADDRESS] [--json]";

struct refresh_run {
	const struct smp_config *cfg;
	struct smp_disc_net *net;
	struct smp_keyring *kr;
	struct smp_crypto *crypto;
	struct smp_harvest_config hc;
	json_t *json;             /* --json: the array of results */
	unsigned n, failed;
};

/* One address; false when its lookup failed or the keyring did. */
static bool refresh_one(struct refresh_run *run, const char *address)
{
	struct smp_disc_methods ms;
	struct smp_disc_ctx dx;
	struct smp_disc_result r;
	int rc;

	smp_config_disc_methods(run->cfg, address, &ms);
	memset(&dx, 0, sizeof(dx));
	dx.net = run->net;
	dx.kr = run->kr;
	dx.crypto = run->crypto;
	dx.cfg = &run->cfg->disc;
	dx.methods = &ms;
	dx.harvest = &run->hc;
	dx.limits = &run->cfg->check.limits;
	dx.deadline_ms = smp_disc_now_ms() + run->cfg->disc.timeout_ms;
	memset(&r, 0, sizeof(r));
	rc = smp_discovery_refresh(&dx, address, &r);
	run->n++;
	if (rc < 0 || r.outcome == SMP_DISC_FAILED)
		run->failed++;
	if (run->json) {
		json_array_append_new(
			run->json,
			json_pack("{s:s, s:s, s:s, s:s, s:s}", "address", address, "outcome",
				  rc < 0 ? "error" : smp_disc_outcome_name(r.outcome),
				  "method", r.method, "fpr", r.fpr, "detail", r.detail));
	} else {
		char q[SMP_QUOTE_ARG_SIZE];

		/* printable ASCII only on the terminal */
		smp_quote_arg(q, sizeof(q), address);
		printf("%s: %s%s%s%s%s\n", q,
		       rc < 0 ? "error" : smp_disc_outcome_name(r.outcome),
		       r.fpr[0] ? " " : "", r.fpr, r.detail[0] ? ": " : "", r.detail);
	}
	return rc == 0 && r.outcome != SMP_DISC_FAILED;
}

int smpctl_cmd_keys_refresh(int argc, char **argv)
{
	struct refresh_run run;
	struct smp_disc_net_config nc;
	struct smp_disc_entry *due = NULL;
	size_t ndue = 0;
	const char *address = NULL;
	bool json = false;
	char err[1024];
	int rc = EX_CONFIG;

	memset(&run, 0, sizeof(run));
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] != '-' && !address) {
			address = argv[i];
		} else {
			smpctl_error("unexpected argument %s; usage: %s",
				     smpctl_quote(argv[i]), refresh_usage);
			return EX_USAGE;
		}
	}
	if (address && smp_address_check(address) != SMP_ADDR_OK) {
		smpctl_error("%s is not a mail address: %s", smpctl_quote(address),
			     smp_address_strerror(smp_address_check(address)));
		return EX_DATAERR;
	}
	run.cfg = smpctl_config();
	if (!run.cfg)
		return EX_CONFIG;
	smp_harvest_config_init(&run.hc);
	run.hc.on_conflict = (enum smp_on_conflict)run.cfg->on_conflict;
	run.kr = smpctl_open_keyring();
	if (!run.kr)
		return EX_CONFIG;
	run.crypto = smpctl_open_crypto();
	if (!run.crypto)
		goto out;
	smp_config_disc_net(run.cfg, &nc);
	run.net = smp_disc_net_new(&nc, err, sizeof(err));
	if (!run.net) {
		smpctl_error("discovery: %s", err);
		goto out;
	}
	if (address) {
		struct smp_disc_methods ms;

		smp_config_disc_methods(run.cfg, address, &ms);
		if (!ms.n) {
			smpctl_error("key discovery is off for %s (discovery.methods or "
				     "its policy section)", smpctl_quote(address));
			rc = EX_USAGE;
			goto out;
		}
	} else if (smp_keyring_disc_due(run.kr, "found", INT64_MAX, 0, &due, &ndue) < 0) {
		smpctl_error("cannot list the keys from the network: %s",
			     smp_keyring_errmsg(run.kr));
		goto out;
	}
	if (json)
		run.json = json_array();
	if (address) {
		refresh_one(&run, address);
	} else {
		for (size_t i = 0; i < ndue; i++) {
			struct smp_disc_methods ms;

			smp_config_disc_methods(run.cfg, due[i].address, &ms);
			if (ms.n)
				refresh_one(&run, due[i].address);
		}
	}
	if (run.json) {
		char *s = json_dumps(run.json, JSON_INDENT(2));

		if (s)
			puts(s);
		free(s);
	} else if (!address) {
		printf("refreshed %u address%s, %u failed\n", run.n, run.n == 1 ? "" : "es",
		       run.failed);
	}
	rc = run.failed ? EX_TEMPFAIL : 0;
out:
	json_decref(run.json);
	smp_disc_entries_free(due, ndue);
	smp_disc_net_free(run.net);
	smp_crypto_close(run.crypto);
	smp_keyring_close(run.kr);
	return rc;
}
