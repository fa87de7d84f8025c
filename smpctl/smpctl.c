/* smpctl.c - the smp-milter admin CLI: command dispatch. */
#include "smpctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "smp_address.h"
#include "smp_config.h"
#include "smp_crypto.h"
#include "smp_keyring.h"

static const char *config_path;   /* -c */
static struct smp_config *config; /* loaded on first use */

void smpctl_error(const char *fmt, ...)
{
	static const char hex[] = "0123456789abcdef";
	char msg[SMPCTL_ERROR_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(cannot format the error message)");
	fputs(SMPCTL_NAME ": ", stderr);
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		if (*p >= 0x20 && *p < 0x7F) {
			fputc(*p, stderr);
		} else {
			fputs("\\x", stderr);
			fputc(hex[*p >> 4], stderr);
			fputc(hex[*p & 0xF], stderr);
		}
	}
	if (n > 0 && (size_t)n >= sizeof(msg))
		fputs("...", stderr);
	fputc('\n', stderr);
}

const char *smpctl_quote(const char *arg)
{
	static char slot[SMPCTL_QUOTE_SLOTS][SMP_QUOTE_ARG_SIZE];
	static unsigned next;
	char *buf = slot[next++ % SMPCTL_QUOTE_SLOTS];

	return smp_quote_arg(buf, SMP_QUOTE_ARG_SIZE, arg);
}

const struct smp_config *smpctl_config(void)
{
	char err[512];
	const char *path = config_path;

	if (config)
		return config;
	if (!path && access(SMP_CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = SMP_CONFIG_DEFAULT_PATH;
	config = path ? smp_config_load(path, err, sizeof(err)) : smp_config_defaults();
	if (!config)
		smpctl_error("%s", path ? err : "out of memory");
	return config;
}

int smpctl_cmd_check_config(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		smpctl_error("check-config takes no arguments; usage: smpctl -c "
			     "FILE check-config");
		return EX_USAGE;
	}
	if (!smpctl_config())
		return EX_CONFIG;
	printf("%s: configuration OK\n",
	       config->path[0] ? config->path : "(built-in defaults)");
	return 0;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{"check", smpctl_cmd_check},
	{"check-config", smpctl_cmd_check_config},
	{"keys", smpctl_cmd_keys},
	{"stats", smpctl_cmd_stats},
	{"wkd", smpctl_cmd_wkd},
};

static int usage(FILE *f)
{
	fputs("usage: smpctl [-c CONF] COMMAND ...\n"
	      "  check [FILE|-] [--json]  validate an SMP message; exit 0 valid,\n"
	      "                           1 invalid, 2 not SMP\n"
	      "  check-config             validate the configuration file\n"
	      "  keys list [--state S] [--json]   address bindings\n"
	      "  keys show ADDRESS|FPR [--json]   one address or key\n"
	      "  keys export ADDRESS|FPR          armored key on stdout\n"
	      "  keys pin ADDRESS FPR | block FPR | unblock FPR\n"
	      "  keys delete ADDRESS|FPR | history ADDRESS [--json]\n"
	      "  keys import FILE [--address A]   add a key, pinned (source admin)\n"
	      "  keys rebuild                     regenerate the GnuPG cache\n"
	      "  keys migrate --from sqlite:PATH  copy an SQLite keyring into this one\n"
	      "  stats [--json]                   keyring counts\n"
	      "  wkd export DIR [--domain D] [--json]  our users' keys as a WKD tree\n",
	      f);
	return f == stdout ? 0 : EX_USAGE;
}

int main(int argc, char **argv)
{
	int i = 1, rc = EX_USAGE;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(stdout);
		if (!strcmp(argv[i], "-c") && i + 1 < argc) {
			config_path = argv[i + 1];
			i += 2;
			continue;
		}
		if (!strcmp(argv[i], "-c")) {
			smpctl_error("-c needs a configuration file (try 'smpctl --help')");
			return EX_USAGE;
		}
		smpctl_error("unknown option %s (try 'smpctl --help')",
			     smpctl_quote(argv[i]));
		return EX_USAGE;
	}
	if (i >= argc)
		return usage(stderr);
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(argv[i], commands[k].name)) {
			rc = commands[k].run(argc - i, argv + i);
			smp_config_free(config);
			return rc;
		}
	smpctl_error("unknown command %s (try 'smpctl --help')", smpctl_quote(argv[i]));
	return EX_USAGE;
}

struct smp_keyring *smpctl_open_keyring(void)
{
	const struct smp_config *cfg = smpctl_config();
	struct smp_keyring *kr = NULL;
	char err[512];

	if (!cfg)
		return NULL;
	if (smp_keyring_open(cfg->keyring_backend,
			     strcmp(cfg->keyring_backend, "sqlite") ? cfg->keyring_conninfo
								     : cfg->keyring_path,
			     &kr, err, sizeof(err)) < 0) {
		smpctl_error("%s", err);
		return NULL;
	}
	return kr;
}

struct smp_crypto *smpctl_open_crypto(void)
{
	const struct smp_config *cfg = smpctl_config();
	struct smp_crypto *c = NULL;
	char err[512];

	if (!cfg)
		return NULL;
	if (smp_crypto_open(cfg->crypto_engine, cfg->gnupg_home, &c, err,
			    sizeof(err)) < 0) {
		smpctl_error("crypto engine %s: %s", cfg->crypto_engine, err);
		return NULL;
	}
	return c;
}
