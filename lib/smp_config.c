/* smp_config.c - smp-milter.conf parsing and checking with libconfuse.
 *
 * Every option has a default, so an empty file is a working config. Bad
 * values are refused while parsing, so every error names the file and line.
 */
#include "smp_config.h"

#include <arpa/inet.h>
#include <confuse.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "smp_crypto.h"
#include "smp_keyring.h"

/* libconfuse reports errors through a callback without a user pointer;
 * loading is rare (start, SIGHUP, smpctl), so one guarded buffer will do. */
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char err_buf[512];
static cfg_t *err_top; /* the file being parsed: sections lack its line */
/* The policy rules of the file being parsed so far (under err_lock): each
 * policy section is checked against them as it is read, once. */
static struct smp_policy *validate_rules;
static unsigned validate_nrules;

__attribute__((format(printf, 2, 0)))
static void on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	size_t n = 0;

	if (err_buf[0])
		return; /* keep the first error */
	/* a section's cfg_t counts lines but does not know the file name */
	const char *file = cfg && cfg->filename ? cfg->filename
			   : err_top             ? err_top->filename
						 : NULL;
	int line = cfg && cfg->line ? cfg->line : err_top ? err_top->line : 0;

	if (file && line)
		n = (size_t)snprintf(err_buf, sizeof(err_buf), "%s:%d: ", file, line);
	else if (file)
		n = (size_t)snprintf(err_buf, sizeof(err_buf), "%s: ", file);
	if (n < sizeof(err_buf))
		vsnprintf(err_buf + n, sizeof(err_buf) - n, fmt, ap);
}

static const char *const on_invalid_names[] = {"tag", "quarantine", "reject",
					       "tempfail", NULL};
static const char *const on_error_names[] = {"tempfail", "accept", NULL};
static const char *const match_names[] = {"exact", "caseless", NULL};
static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{"err", LOG_ERR},       {"error", LOG_ERR}, {"warning", LOG_WARNING},
	{"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG},
};

static int name_index(const char *const *names, const char *v)
{
	for (int i = 0; names[i]; i++)
		if (!strcasecmp(names[i], v))
			return i;
	return -1;
}

/* Parse callback for a string option restricted to a list of names. */
static int enum_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value,
		   void *result, const char *const *names)
{
	char choices[128] = "";

	if (name_index(names, value) >= 0) {
		*(const char **)result = value;
		return 0;
	}
	for (int i = 0; names[i]; i++) {
		strncat(choices, i ? ", " : "", sizeof(choices) - strlen(choices) - 1);
		strncat(choices, names[i], sizeof(choices) - strlen(choices) - 1);
	}
	cfg_error(cfg, "%s: '%s' is not one of %s", cfg_opt_name(opt), value,
		  choices);
	return -1;
}

static int on_invalid_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, on_invalid_names);
}

static int on_error_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, on_error_names);
}

static int match_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, match_names);
}

static int log_level_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (!strcasecmp(log_levels[i].name, v)) {
			*(const char **)r = v;
			return 0;
		}
	cfg_error(cfg, "%s: '%s' is not one of err, warning, notice, info, debug",
		  cfg_opt_name(opt), v);
	return -1;
}

static int socket_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	if (smp_socket_spec_valid(v)) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a socket spec (unix:/path, "
		       "inet:port@host or inet6:port@host)",
		  cfg_opt_name(opt), v);
	return -1;
}

static int mode_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	char *end;
	unsigned long m = strtoul(v, &end, 8);

	if (*v && !*end && m <= 07777) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not an octal file mode like \"0660\"",
		  cfg_opt_name(opt), v);
	return -1;
}

static const char *const conflict_names[] = {"flag", "keep", "replace", NULL};
static const char *const auth_names[] = {"none", "dkim", "dmarc", NULL};
static const char *const replay_names[] = {"tag", "invalid", NULL};
static const char *const source_names[] = {"smp", "autocrypt", "pgp-keys", NULL};
static const char *const backend_names[] = {"sqlite", "postgresql", NULL};

static int conflict_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, conflict_names);
}

static int auth_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, auth_names);
}

static int replay_action_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, replay_names);
}

static int source_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, source_names);
}

/* discovery.methods and a policy's discovery: wkd, dane, or off alone */
static int disc_method_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	if (smp_disc_method_parse(v) >= 0 || strcmp(v, "off") == 0) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not one of wkd, dane, off", cfg_opt_name(opt), v);
	return -1;
}

static const char *const disc_on_error_names[] = {"plain", "tempfail", NULL};

static int disc_on_error_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, disc_on_error_names);
}

/* A methods list from the file: "off" alone is no methods; a method named
 * twice counts once. -1 (with cfg_error) for off beside a method. */
static int disc_methods_from(cfg_t *cfg, cfg_t *sec, const char *name,
			     struct smp_disc_methods *m)
{
	unsigned n = cfg_size(sec, name);

	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(sec, name, i);
		int k = smp_disc_method_parse(v);
		bool dup = false;

		if (k < 0) {
			if (n > 1) {
				if (cfg)
					cfg_error(cfg, "%s: 'off' cannot stand beside a "
						       "method", name);
				return -1;
			}
			continue;
		}
		for (unsigned j = 0; j < m->n; j++)
			dup |= m->m[j] == (enum smp_disc_method)k;
		if (!dup && m->n < SMP_DISC_N_METHODS)
			m->m[m->n++] = (enum smp_disc_method)k;
	}
	return 0;
}

static int backend_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, backend_names);
}

static const char *const encmode_names[] = {"off", "opportunistic", "required",
					     NULL};
static const char *const required_action_names[] = {"reject", "tempfail", NULL};

static int encmode_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, encmode_names);
}

static int required_action_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	return enum_cb(cfg, opt, v, r, required_action_names);
}

/* An OpenPGP fingerprint: 40 (v4) or 64 (v5/v6) hex digits. */
static bool fpr_valid(const char *v)
{
	size_t n = 0;

	for (; v[n]; n++)
		if (!isxdigit((unsigned char)v[n]))
			return false;
	return n == 40 || n == 64;
}

static int fpr_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	if (fpr_valid(v)) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a key fingerprint (40 or 64 hex digits)",
		  cfg_opt_name(opt), v);
	return -1;
}

/* Adds the rule of one policy "title" { } section to p: an address when
 * the title holds an '@' after its first character, else a domain.
 * Returns what smp_policy_add_* returns. */
static int policy_add(struct smp_policy *p, cfg_t *sec)
{
	const char *t = cfg_title(sec), *mode = cfg_getstr(sec, "encrypt");
	int m = mode ? smp_encrypt_mode_parse(mode) : -1, disc = -1;

	if (!t || m < 0) {
		errno = EINVAL;
		return -1;
	}
	if (cfg_size(sec, "discovery")) {
		struct smp_disc_methods dm;

		if (disc_methods_from(NULL, sec, "discovery", &dm) < 0) {
			errno = EINVAL;
			return -1;
		}
		disc = smp_disc_methods_encode(&dm);
	}
	if (strchr(t + (t[0] == '@'), '@'))
		return smp_policy_add_address_disc(p, t, (enum smp_encrypt_mode)m, disc);
	return smp_policy_add_domain_disc(p, t, (enum smp_encrypt_mode)m, disc);
}

/* discovery { methods = ... }: off stands alone. */
static int disc_validate(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, 0);
	struct smp_disc_methods dm;

	return sec ? disc_methods_from(cfg, sec, "methods", &dm) : 0;
}

/* Checks each policy "title" { encrypt = ... } as it ends: a mode is
 * given, the title is a domain or an address, and no earlier section
 * names the same domain or address (spelt differently). */
static int policy_validate(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned n = cfg_opt_size(opt);
	cfg_t *sec = n ? cfg_opt_getnsec(opt, n - 1) : NULL;
	struct smp_policy *p;
	int rc = 0;

	if (!sec)
		return 0;
	if (!cfg_getstr(sec, "encrypt")) {
		cfg_error(cfg, "policy \"%s\": no encrypt = off | opportunistic | "
			       "required", cfg_title(sec));
		return -1;
	}
	{
		struct smp_disc_methods dm;

		if (disc_methods_from(cfg, sec, "discovery", &dm) < 0)
			return -1;
	}
	/* the earlier sections are in validate_rules already: adding only
	 * the new one keeps a file of N rules at N additions, not N*N/2 */
	if (!validate_rules || validate_nrules + 1 != n) {
		smp_policy_free(validate_rules);
		validate_rules = smp_policy_new(SMP_ENC_OFF);
		validate_nrules = 0;
		for (unsigned i = 0; validate_rules && i + 1 < n && rc == 0; i++)
			rc = policy_add(validate_rules, cfg_opt_getnsec(opt, i)) < 0 ? -1 : 0;
		validate_nrules = n - 1;
	}
	p = validate_rules;
	if (!p) {
		cfg_error(cfg, "out of memory");
		return -1;
	}
	if (rc == 0) {
		rc = policy_add(p, sec);
		validate_nrules = n;
		if (rc < 0)
			cfg_error(cfg, "policy \"%s\": not a domain (example.org, "
				       ".example.org for its subdomains) or an "
				       "address", cfg_title(sec));
		else if (rc > 0)
			cfg_error(cfg, "policy \"%s\": a second rule for the same "
				       "domain or address", cfg_title(sec));
	}
	return rc ? -1 : 0;
}

/* "3600", "90s", "30m", "12h", "7d", "2w" -> seconds */
static bool parse_interval(const char *v, long *out)
{
	char *end;
	long n = strtol(v, &end, 10), mul = 1;

	if (end == v || n < 0)
		return false;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	case 'w':
		mul = 7 * 86400;
		break;
	default:
		return false;
	}
	if (*end && end[1])
		return false;
	if (n > (1L << 40) / mul)
		return false;
	*out = n * mul;
	return true;
}

static int interval_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	long secs;

	if (parse_interval(v, &secs)) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a duration like 3600, 30m, 12h or 7d",
		  cfg_opt_name(opt), v);
	return -1;
}

/* The daemon detaches to "/": file options must be absolute paths. */
static int abspath_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	if (v[0] == '/') {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not an absolute path", cfg_opt_name(opt), v);
	return -1;
}

static int abspath_or_empty_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	if (!v[0]) {
		*(const char **)r = v;
		return 0;
	}
	return abspath_cb(cfg, opt, v, r);
}

static int port_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*v && !*end && n >= 1 && n <= 65535) {
		*(long *)r = n;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a port number (1 to 65535)", cfg_opt_name(opt), v);
	return -1;
}

/* A domain, or ".domain" meaning its subdomains (harvest.skip_domains). */
static int domain_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	const char *d = v[0] == '.' ? v + 1 : v;
	bool ok = *d && d[0] != '.' && !strchr(v, '@') && !strchr(v, ' ');

	if (ok) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a domain name", cfg_opt_name(opt), v);
	return -1;
}

static int network_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	struct smp_net net;

	if (smp_net_parse(v, &net)) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a network (address or address/prefix)",
		  cfg_opt_name(opt), v);
	return -1;
}

/* Integer options: value must lie in [1, max]. */
static int positive_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	char *end;
	long long n = strtoll(v, &end, 0);

	if (*v && !*end && n >= 1 && n <= (1LL << 31) - 1) {
		*(long *)r = (long)n;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a whole number from 1 to 2147483647",
		  cfg_opt_name(opt), v);
	return -1;
}

/* keyring.events_keep: days of event history kept, 0 (keep every event)
 * or 1 to SMP_EVENTS_KEEP_MAX (a hundred years). */
#define SMP_EVENTS_KEEP_MAX 36500

static int events_keep_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	char *end;
	long long n = strtoll(v, &end, 10);

	if (*v && !*end && n >= 0 && n <= SMP_EVENTS_KEEP_MAX) {
		*(long *)r = (long)n;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a number of days from 0 (keep every "
		  "event) to %d", cfg_opt_name(opt), v, SMP_EVENTS_KEEP_MAX);
	return -1;
}

/* crypto.engine: an engine of this build (smp_crypto_engine_known). */
static int engine_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	if (smp_crypto_engine_known(v)) {
		*(const char **)r = v;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not one of rnp, gnupg", cfg_opt_name(opt), v);
	return -1;
}

/* crypto.cache_keys: 1 to SMP_CRYPTO_CACHE_MAX keys. */
#define SMP_CRYPTO_CACHE_MAX 1000000

static int cache_keys_cb(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *r)
{
	char *end;
	long long n = strtoll(v, &end, 10);

	if (*v && !*end && n >= 1 && n <= SMP_CRYPTO_CACHE_MAX) {
		*(long *)r = (long)n;
		return 0;
	}
	cfg_error(cfg, "%s: '%s' is not a number of keys from 1 to %d",
		  cfg_opt_name(opt), v, SMP_CRYPTO_CACHE_MAX);
	return -1;
}

#define STR(s) #s
#define XSTR(s) STR(s)

static cfg_opt_t detect_opts[] = {
	CFG_STR_CB("subject_match", "exact", CFGF_NONE, match_cb),
	CFG_END()};

static cfg_opt_t limits_opts[] = {
	CFG_INT_CB("max_message_bytes", (long)SMP_LIMITS_DEFAULT_MESSAGE_BYTES,
		   CFGF_NONE, positive_cb),
	CFG_INT_CB("max_parts", SMP_LIMITS_DEFAULT_PARTS, CFGF_NONE, positive_cb),
	CFG_INT_CB("max_depth", SMP_LIMITS_DEFAULT_DEPTH, CFGF_NONE, positive_cb),
	CFG_INT_CB("max_key_bytes", (long)SMP_LIMITS_DEFAULT_KEY_BYTES, CFGF_NONE,
		   positive_cb),
	CFG_INT_CB("max_keys", SMP_LIMITS_DEFAULT_KEYS, CFGF_NONE, positive_cb),
	CFG_INT_CB("max_uids", SMP_LIMITS_DEFAULT_UIDS, CFGF_NONE, positive_cb),
	CFG_END()};

static cfg_opt_t outbound_opts[] = {
	CFG_STR_LIST_CB("networks", "{127.0.0.0/8, ::1/128}", CFGF_NONE,
			network_cb),
	CFG_STR_LIST("daemons", "{}", CFGF_NONE),
	CFG_STR_LIST_CB("domains", "{}", CFGF_NONE, domain_cb),
	CFG_END()};

static cfg_opt_t keyring_opts[] = {
	CFG_STR_CB("backend", "sqlite", CFGF_NONE, backend_cb),
	CFG_STR_CB("path", "/var/lib/smp-milter/data/keyring.db", CFGF_NONE, abspath_cb),
	CFG_STR("conninfo", "", CFGF_NONE),
	CFG_INT_CB("events_keep", SMP_KEYRING_EVENTS_KEEP_DAYS, CFGF_NONE,
		   events_keep_cb),
	CFG_END()};

static cfg_opt_t crypto_opts[] = {
	CFG_STR_CB("engine", SMP_CRYPTO_ENGINE_DEFAULT, CFGF_NONE, engine_cb),
	CFG_INT_CB("cache_keys", SMP_CRYPTO_CACHE_DEFAULT, CFGF_NONE,
		   cache_keys_cb),
	CFG_END()};

static cfg_opt_t harvest_opts[] = {
	CFG_STR_LIST_CB("sources", "{smp}", CFGF_NONE, source_cb),
	CFG_BOOL("outbound", cfg_false, CFGF_NONE),
	CFG_STR_LIST_CB("skip_domains", NULL, CFGF_NODEFAULT, domain_cb),
	CFG_STR_CB("require_auth", "none", CFGF_NONE, auth_cb),
	CFG_STR("authserv_id", "", CFGF_NONE),
	CFG_STR_CB("on_conflict", "flag", CFGF_NONE, conflict_cb),
	CFG_END()};

static cfg_opt_t replay_opts[] = {
	CFG_BOOL("enabled", cfg_true, CFGF_NONE),
	CFG_STR_CB("window", "7d", CFGF_NONE, interval_cb),
	CFG_STR_CB("action", "tag", CFGF_NONE, replay_action_cb),
	CFG_END()};

static cfg_opt_t policy_opts[] = {
	CFG_STR_CB("encrypt", NULL, CFGF_NODEFAULT, encmode_cb),
	CFG_STR_LIST_CB("discovery", NULL, CFGF_NODEFAULT, disc_method_cb),
	CFG_END()};

static cfg_opt_t discovery_opts[] = {
	CFG_STR_LIST_CB("methods", "{wkd, dane}", CFGF_NONE, disc_method_cb),
	CFG_STR_CB("timeout", "5s", CFGF_NONE, interval_cb),
	CFG_STR_CB("on_error", "plain", CFGF_NONE, disc_on_error_cb),
	CFG_STR_CB("positive_ttl", "1d", CFGF_NONE, interval_cb),
	CFG_STR_CB("negative_ttl", "1h", CFGF_NONE, interval_cb),
	CFG_STR_CB("error_ttl", "60s", CFGF_NONE, interval_cb),
	CFG_INT_CB("refresh_per_minute", 60, CFGF_NONE, positive_cb),
	CFG_STR_CB("ca_file", "", CFGF_NONE, abspath_or_empty_cb),
	CFG_INT_CB("https_port", 443, CFGF_NONE, port_cb),
	CFG_STR_LIST("dns_forwarders", "{}", CFGF_NONE),
	CFG_BOOL("dns_recursive", cfg_false, CFGF_NONE),
	CFG_STR_CB("dns_trust_anchor_file", "/usr/share/dns/root.key", CFGF_NONE,
		   abspath_or_empty_cb),
	CFG_STR_LIST("dns_trust_anchors", "{}", CFGF_NONE),
	CFG_END()};

static cfg_opt_t encrypt_opts[] = {
	CFG_STR_CB("default", "off", CFGF_NONE, encmode_cb),
	CFG_BOOL("protect_subject", cfg_false, CFGF_NONE),
	CFG_STR_CB("required_action", "reject", CFGF_NONE, required_action_cb),
	CFG_BOOL("split_recipients", cfg_false, CFGF_NONE),
	CFG_STR_LIST_CB("archive_keys", "{}", CFGF_NONE, fpr_cb),
	CFG_SEC("policy", policy_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END()};

static cfg_opt_t top_opts[] = {
	CFG_STR_CB("socket", "unix:/run/smp-milter/smp-milter.sock", CFGF_NONE,
		   socket_cb),
	CFG_STR("socket_owner", "", CFGF_NONE),
	CFG_STR("socket_group", "", CFGF_NONE),
	CFG_STR_CB("socket_mode", "0660", CFGF_NONE, mode_cb),
	CFG_STR("user", "smp-milter", CFGF_NONE),
	CFG_STR("group", "smp-milter", CFGF_NONE),
	CFG_STR("pidfile", "", CFGF_NONE),
	CFG_STR_CB("log_level", "info", CFGF_NONE, log_level_cb),
	CFG_INT_CB("timeout", 300, CFGF_NONE, positive_cb),
	CFG_STR_CB("on_invalid", "tag", CFGF_NONE, on_invalid_cb),
	CFG_STR_CB("on_error", "tempfail", CFGF_NONE, on_error_cb),
	CFG_STR("quarantine_reason", "smp-milter: invalid SMP message",
		CFGF_NONE),
	CFG_SEC("detect", detect_opts, CFGF_NONE),
	CFG_SEC("limits", limits_opts, CFGF_NONE),
	CFG_SEC("outbound", outbound_opts, CFGF_NONE),
	CFG_SEC("keyring", keyring_opts, CFGF_NONE),
	CFG_STR_CB("gnupg_home", "/var/lib/smp-milter/data/gnupg", CFGF_NONE,
		   abspath_cb),
	CFG_SEC("crypto", crypto_opts, CFGF_NONE),
	CFG_SEC("harvest", harvest_opts, CFGF_NONE),
	CFG_SEC("replay", replay_opts, CFGF_NONE),
	CFG_SEC("encrypt", encrypt_opts, CFGF_NONE),
	CFG_SEC("discovery", discovery_opts, CFGF_NONE),
	CFG_END()};

static int dup_str(char **dst, const char *s)
{
	*dst = strdup(s ? s : "");
	return *dst ? 0 : -1;
}

static int strlist_from(cfg_t *sec, const char *name, struct smp_strlist *l)
{
	l->n = cfg_size(sec, name);
	l->v = calloc(l->n + 1, sizeof(char *));
	if (!l->v)
		return -1;
	for (size_t i = 0; i < l->n; i++)
		if (dup_str(&l->v[i], cfg_getnstr(sec, name, (unsigned)i)))
			return -1;
	return 0;
}

static void strlist_free(struct smp_strlist *l)
{
	if (l->v)
		for (size_t i = 0; i < l->n; i++)
			free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static long interval_of(cfg_t *sec, const char *name)
{
	long secs = 0;

	parse_interval(cfg_getstr(sec, name), &secs);
	return secs;
}

/* discovery { } into c. -1: out of memory. */
static int disc_from(cfg_t *d, struct smp_config *c)
{
	smp_disc_config_init(&c->disc);
	disc_methods_from(NULL, d, "methods", &c->disc.methods);
	c->disc.timeout_ms = (int64_t)interval_of(d, "timeout") * 1000;
	if (c->disc.timeout_ms < 1000)
		c->disc.timeout_ms = 1000;
	c->disc.on_error_tempfail =
		name_index(disc_on_error_names, cfg_getstr(d, "on_error")) == 1;
	c->disc.positive_ttl = interval_of(d, "positive_ttl");
	c->disc.negative_ttl = interval_of(d, "negative_ttl");
	c->disc.error_ttl = interval_of(d, "error_ttl");
	c->disc.refresh_per_minute = (unsigned)cfg_getint(d, "refresh_per_minute");
	c->disc_https_port = (unsigned)cfg_getint(d, "https_port");
	c->disc_dns_recursive = cfg_getbool(d, "dns_recursive");
	if (dup_str(&c->disc_ca_file, cfg_getstr(d, "ca_file")) ||
	    dup_str(&c->disc_dns_trust_anchor_file,
		    cfg_getstr(d, "dns_trust_anchor_file")) ||
	    strlist_from(d, "dns_forwarders", &c->disc_dns_forwarders) ||
	    strlist_from(d, "dns_trust_anchors", &c->disc_dns_trust_anchors))
		return -1;
	return 0;
}

void smp_config_disc_methods(const struct smp_config *c, const char *address,
			     struct smp_disc_methods *out)
{
	int code = smp_policy_discovery_for(c->encrypt_policy, address);

	if (code < 0)
		*out = c->disc.methods;
	else
		smp_disc_methods_decode(code, out);
}

void smp_config_disc_net(const struct smp_config *c,
			 struct smp_disc_net_config *out)
{
	memset(out, 0, sizeof(*out));
	out->ca_file = c->disc_ca_file;
	out->https_port = c->disc_https_port;
	out->dns_forwarders = (const char *const *)c->disc_dns_forwarders.v;
	out->n_dns_forwarders = c->disc_dns_forwarders.n;
	out->dns_recursive = c->disc_dns_recursive;
	out->dns_trust_anchor_file = c->disc_dns_trust_anchor_file;
	out->dns_trust_anchors = (const char *const *)c->disc_dns_trust_anchors.v;
	out->n_dns_trust_anchors = c->disc_dns_trust_anchors.n;
	out->max_bytes = c->check.limits.max_key_bytes;
}

/* Copies the parsed values into a struct smp_config. */
static struct smp_config *from_cfg(cfg_t *cfg, const char *path)
{
	struct smp_config *c = calloc(1, sizeof(*c));
	cfg_t *detect = cfg_getsec(cfg, "detect");
	cfg_t *limits = cfg_getsec(cfg, "limits");
	cfg_t *out = cfg_getsec(cfg, "outbound");
	cfg_t *kr = cfg_getsec(cfg, "keyring");
	cfg_t *cr = cfg_getsec(cfg, "crypto");
	cfg_t *hv = cfg_getsec(cfg, "harvest");
	cfg_t *rp = cfg_getsec(cfg, "replay");
	cfg_t *enc = cfg_getsec(cfg, "encrypt");
	const char *lvl = cfg_getstr(cfg, "log_level");

	if (!c)
		return NULL;
	if (dup_str(&c->path, path) || dup_str(&c->socket, cfg_getstr(cfg, "socket")) ||
	    dup_str(&c->socket_owner, cfg_getstr(cfg, "socket_owner")) ||
	    dup_str(&c->socket_group, cfg_getstr(cfg, "socket_group")) ||
	    dup_str(&c->user, cfg_getstr(cfg, "user")) ||
	    dup_str(&c->group, cfg_getstr(cfg, "group")) ||
	    dup_str(&c->pidfile, cfg_getstr(cfg, "pidfile")) ||
	    dup_str(&c->quarantine_reason, cfg_getstr(cfg, "quarantine_reason")))
		goto fail;
	c->socket_mode = (mode_t)strtoul(cfg_getstr(cfg, "socket_mode"), NULL, 8);
	c->log_level = LOG_INFO;
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (!strcasecmp(log_levels[i].name, lvl))
			c->log_level = log_levels[i].level;
	c->timeout = (unsigned)cfg_getint(cfg, "timeout");
	c->on_invalid = (enum smp_on_invalid)name_index(
		on_invalid_names, cfg_getstr(cfg, "on_invalid"));
	c->on_error = (enum smp_on_error)name_index(on_error_names,
						    cfg_getstr(cfg, "on_error"));

	smp_check_opts_init(&c->check);
	c->check.match = name_index(match_names, cfg_getstr(detect, "subject_match")) == 1
				 ? SMP_MATCH_CASELESS
				 : SMP_MATCH_EXACT;
	c->check.limits.max_message_bytes = (size_t)cfg_getint(limits, "max_message_bytes");
	c->check.limits.max_parts = (unsigned)cfg_getint(limits, "max_parts");
	c->check.limits.max_depth = (unsigned)cfg_getint(limits, "max_depth");
	c->check.limits.max_key_bytes = (size_t)cfg_getint(limits, "max_key_bytes");
	c->check.limits.max_keys = (unsigned)cfg_getint(limits, "max_keys");
	c->check.limits.max_uids = (unsigned)cfg_getint(limits, "max_uids");

	c->n_out_nets = cfg_size(out, "networks");
	c->out_nets = calloc(c->n_out_nets + 1, sizeof(*c->out_nets));
	if (!c->out_nets)
		goto fail;
	for (size_t i = 0; i < c->n_out_nets; i++)
		smp_net_parse(cfg_getnstr(out, "networks", (unsigned)i), &c->out_nets[i]);
	c->n_out_daemons = cfg_size(out, "daemons");
	c->out_daemons = calloc(c->n_out_daemons + 1, sizeof(char *));
	if (!c->out_daemons)
		goto fail;
	for (size_t i = 0; i < c->n_out_daemons; i++)
		if (dup_str(&c->out_daemons[i], cfg_getnstr(out, "daemons", (unsigned)i)))
			goto fail;
	if (strlist_from(out, "domains", &c->out_domains))
		goto fail;

	if (dup_str(&c->keyring_backend,
		    backend_names[name_index(backend_names, cfg_getstr(kr, "backend"))]) ||
	    dup_str(&c->keyring_path, cfg_getstr(kr, "path")) ||
	    dup_str(&c->keyring_conninfo, cfg_getstr(kr, "conninfo")) ||
	    dup_str(&c->gnupg_home, cfg_getstr(cfg, "gnupg_home")) ||
	    dup_str(&c->crypto_engine, cfg_getstr(cr, "engine")) ||
	    dup_str(&c->authserv_id, cfg_getstr(hv, "authserv_id")))
		goto fail;
	for (unsigned i = 0; i < cfg_size(hv, "sources"); i++) {
		int k = name_index(source_names, cfg_getnstr(hv, "sources", i));
		c->harvest_smp |= k == 0;
		c->harvest_autocrypt |= k == 1;
		c->harvest_pgp_keys |= k == 2;
	}
	c->keyring_events_keep = cfg_getint(kr, "events_keep");
	c->crypto_cache_keys = cfg_getint(cr, "cache_keys");
	c->harvest_outbound = cfg_getbool(hv, "outbound");
	/* skip_domains defaults to our own domains (outbound.domains) */
	if (strlist_from(cfg_size(hv, "skip_domains") ? hv : out,
			 cfg_size(hv, "skip_domains") ? "skip_domains" : "domains",
			 &c->skip_domains))
		goto fail;
	c->require_auth = (enum smp_conf_auth)name_index(auth_names,
							 cfg_getstr(hv, "require_auth"));
	c->on_conflict = (enum smp_conf_conflict)name_index(
		conflict_names, cfg_getstr(hv, "on_conflict"));
	c->replay_enabled = cfg_getbool(rp, "enabled");
	parse_interval(cfg_getstr(rp, "window"), &c->replay_window);
	c->replay_action = (enum smp_conf_replay)name_index(replay_names,
							    cfg_getstr(rp, "action"));

	c->encrypt_default =
		(enum smp_encrypt_mode)name_index(encmode_names, cfg_getstr(enc, "default"));
	c->encrypt_protect_subject = cfg_getbool(enc, "protect_subject");
	c->encrypt_required_action = (enum smp_conf_required_action)name_index(
		required_action_names, cfg_getstr(enc, "required_action"));
	c->encrypt_split_recipients = cfg_getbool(enc, "split_recipients");
	if (strlist_from(enc, "archive_keys", &c->encrypt_archive_keys))
		goto fail;
	for (size_t i = 0; i < c->encrypt_archive_keys.n; i++)
		for (char *q = c->encrypt_archive_keys.v[i]; *q; q++)
			*q = (char)toupper((unsigned char)*q);
	if (disc_from(cfg_getsec(cfg, "discovery"), c) < 0)
		goto fail;
	c->encrypt_policy = smp_policy_new(c->encrypt_default);
	if (!c->encrypt_policy)
		goto fail;
	c->encrypt_any = c->encrypt_default != SMP_ENC_OFF;
	for (unsigned i = 0; i < cfg_size(enc, "policy"); i++) {
		cfg_t *sec = cfg_getnsec(enc, "policy", i);
		const char *mode = cfg_getstr(sec, "encrypt");
		/* checked while parsing (policy_validate) */
		if (policy_add(c->encrypt_policy, sec) < 0)
			goto fail;
		c->encrypt_any |= mode && smp_encrypt_mode_parse(mode) != SMP_ENC_OFF;
		c->disc_any |= cfg_size(sec, "discovery") &&
			       strcmp(cfg_getnstr(sec, "discovery", 0), "off") != 0;
	}
	c->disc_any = c->encrypt_any && (c->disc_any || c->disc.methods.n);
	return c;
fail:
	smp_config_free(c);
	return NULL;
}

struct smp_config *smp_config_load(const char *path, char *err, size_t errlen)
{
	struct smp_config *c = NULL;
	cfg_t *cfg;
	int rc;

	if (!path)
		path = SMP_CONFIG_DEFAULT_PATH;
	pthread_mutex_lock(&err_lock);
	err_buf[0] = '\0';
	cfg = cfg_init(top_opts, CFGF_NONE);
	if (!cfg) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	cfg_set_error_function(cfg, on_cfg_error);
	cfg_set_validate_func(cfg, "encrypt|policy", policy_validate);
	cfg_set_validate_func(cfg, "discovery", disc_validate);
	err_top = cfg;
	rc = cfg_parse(cfg, path);
	err_top = NULL;
	smp_policy_free(validate_rules);
	validate_rules = NULL;
	validate_nrules = 0;
	if (rc == CFG_FILE_ERROR) {
		snprintf(err, errlen, "%s: cannot read the file: %m", path);
	} else if (rc != CFG_SUCCESS) {
		snprintf(err, errlen, "%s", err_buf[0] ? err_buf : "parse error");
	} else {
		c = from_cfg(cfg, path);
		if (!c) {
			snprintf(err, errlen, "%s: out of memory", path);
		} else if (c->require_auth != SMP_CONF_AUTH_NONE && !*c->authserv_id) {
			snprintf(err, errlen, "%s: harvest.require_auth = %s needs "
				 "harvest.authserv_id (our own authserv-id)", path,
				 auth_names[c->require_auth]);
			smp_config_free(c);
			c = NULL;
		}
	}
	cfg_free(cfg);
out:
	pthread_mutex_unlock(&err_lock);
	return c;
}

struct smp_config *smp_config_defaults(void)
{
	struct smp_config *c;
	cfg_t *cfg = cfg_init(top_opts, CFGF_NONE);

	if (!cfg)
		return NULL;
	c = from_cfg(cfg, "");
	cfg_free(cfg);
	return c;
}

void smp_config_free(struct smp_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->socket);
	free(c->socket_owner);
	free(c->socket_group);
	free(c->user);
	free(c->group);
	free(c->pidfile);
	free(c->quarantine_reason);
	free(c->out_nets);
	if (c->out_daemons)
		for (size_t i = 0; i < c->n_out_daemons; i++)
			free(c->out_daemons[i]);
	free(c->out_daemons);
	strlist_free(&c->out_domains);
	strlist_free(&c->skip_domains);
	free(c->keyring_backend);
	free(c->keyring_path);
	free(c->keyring_conninfo);
	free(c->gnupg_home);
	free(c->crypto_engine);
	free(c->authserv_id);
	strlist_free(&c->encrypt_archive_keys);
	free(c->disc_ca_file);
	free(c->disc_dns_trust_anchor_file);
	strlist_free(&c->disc_dns_forwarders);
	strlist_free(&c->disc_dns_trust_anchors);
	smp_policy_free(c->encrypt_policy);
	free(c);
}

bool smp_net_parse(const char *s, struct smp_net *net)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned max;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	memset(net, 0, sizeof(*net));
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	net->prefix = max;
	if (slash) {
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || p > max)
			return false;
		net->prefix = (unsigned)p;
	}
	return true;
}

static bool prefix_match(const unsigned char *a, const unsigned char *b,
			 unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full))
		return false;
	if (rest) {
		unsigned char mask = (unsigned char)(0xFF << (8 - rest));
		return (a[full] & mask) == (b[full] & mask);
	}
	return true;
}

bool smp_config_outbound_addr(const struct smp_config *c,
			      const struct sockaddr *addr)
{
	unsigned char a[16];
	int fam;

	if (!addr)
		return false;
	if (addr->sa_family == AF_INET) {
		fam = AF_INET;
		memcpy(a, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
	} else if (addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
			&((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			fam = AF_INET;
			memcpy(a, a6->s6_addr + 12, 4);
		} else {
			fam = AF_INET6;
			memcpy(a, a6->s6_addr, 16);
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < c->n_out_nets; i++)
		if (c->out_nets[i].family == fam &&
		    prefix_match(a, c->out_nets[i].addr, c->out_nets[i].prefix))
			return true;
	return false;
}

bool smp_config_outbound_daemon(const struct smp_config *c, const char *daemon)
{
	if (!daemon)
		return false;
	for (size_t i = 0; i < c->n_out_daemons; i++)
		if (!strcmp(c->out_daemons[i], daemon))
			return true;
	return false;
}

bool smp_socket_spec_valid(const char *spec)
{
	const char *p, *at;
	char *end;
	unsigned long port;

	if (spec[0] == '/')
		return spec[1] != '\0';
	if (!strncmp(spec, "unix:", 5) || !strncmp(spec, "local:", 6)) {
		p = strchr(spec, ':') + 1;
		return p[0] == '/' && p[1] != '\0';
	}
	if (!strncmp(spec, "inet:", 5))
		p = spec + 5;
	else if (!strncmp(spec, "inet6:", 6))
		p = spec + 6;
	else
		return false;
	port = strtoul(p, &end, 10);
	if (end == p || port < 1 || port > 65535)
		return false;
	at = end;
	if (*at == '\0')
		return true; /* all interfaces */
	return *at == '@' && at[1] != '\0';
}

const char *smp_on_invalid_name(enum smp_on_invalid a)
{
	return on_invalid_names[a];
}
