/* cmd_migrate.c - "smpctl keys migrate --from sqlite:PATH" (SPEC.md 6):
 * copies one host's SQLite keyring into the configured keyring, normally
 * the PostgreSQL database several hosts share. What is copied and why a
 * second run changes nothing: smp_keyring_copy.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_config.h"
#include "smp_keyring.h"
#include "smp_keyring_copy.h"
#include "smpctl.h"

static const char migrate_usage[] = "smpctl keys migrate --from sqlite:PATH";

int smpctl_cmd_keys_migrate(int argc, char **argv)
{
	const struct smp_config *cfg;
	struct smp_keyring_copied n;
	struct smp_keyring *kr = NULL;
	const char *from = NULL, *target;
	char real[PATH_MAX], err[1024];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc && !from) {
			from = argv[++i];
		} else {
			smpctl_error("unexpected argument %s; usage: %s",
				     smpctl_quote(argv[i]), migrate_usage);
			return EX_USAGE;
		}
	}
	if (!from) {
		smpctl_error("keys migrate needs --from; usage: %s", migrate_usage);
		return EX_USAGE;
	}
	if (strncmp(from, "sqlite:", 7) != 0 || !from[7]) {
		smpctl_error("%s is not sqlite:PATH (only an SQLite keyring can be "
			     "copied); usage: %s", smpctl_quote(from), migrate_usage);
		return EX_USAGE;
	}
	if (!realpath(from + 7, real)) {
		smpctl_error("cannot read %s: %s", smpctl_quote(from + 7),
			     strerror(errno));
		return EX_NOINPUT;
	}
	cfg = smpctl_config();
	if (!cfg)
		return EX_CONFIG;
	if (!strcmp(cfg->keyring_backend, "sqlite")) {
		char self[PATH_MAX];
		if (realpath(cfg->keyring_path, self) && !strcmp(self, real)) {
			smpctl_error("%s is the configured keyring itself "
				     "(keyring.path); set keyring.backend = "
				     "postgresql and keyring.conninfo to copy it "
				     "there", smpctl_quote(real));
			return EX_USAGE;
		}
	}
	target = strcmp(cfg->keyring_backend, "sqlite") ? cfg->keyring_conninfo
							: cfg->keyring_path;
	if (smp_keyring_open(cfg->keyring_backend, target, &kr, err,
			     sizeof(err)) < 0) {
		smpctl_error("%s", err);
		return EX_CONFIG;
	}
	if (smp_keyring_copy_sqlite(real, kr, &n, err, sizeof(err)) != 0) {
		smpctl_error("%s", err);
		smp_keyring_close(kr);
		return EX_CONFIG;
	}
	smp_keyring_close(kr);
	if (n.not_addresses)
		printf("sqlite:%s: %lu binding%s left out: the address is no mail "
		       "address by smpctl's check (see ADDRESSES in smpctl(8))\n",
		       real, n.not_addresses, n.not_addresses == 1 ? "" : "s");
	printf("sqlite:%s: %lu key%s copied (%lu already there), %lu binding%s "
	       "of %lu address%s copied (%lu address%s already bound, left as "
	       "%s), %lu event%s copied (through event %lld of the file)\n",
	       real, n.keys, n.keys == 1 ? "" : "s", n.keys_present, n.bindings,
	       n.bindings == 1 ? "" : "s", n.addresses,
	       n.addresses == 1 ? "" : "es", n.addresses_kept,
	       n.addresses_kept == 1 ? "" : "es",
	       n.addresses_kept == 1 ? "it was" : "they were", n.events,
	       n.events == 1 ? "" : "s", (long long)n.events_through);
	return 0;
}
