/* smp_config.h - the smp-milter.conf file (libconfuse), SPEC.md 7 */
#ifndef SMP_CONFIG_H
#define SMP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "smp_discovery.h"
#include "smp_policy.h"
#include "smp_validate.h"

#define SMP_CONFIG_DEFAULT_PATH "/etc/smp-milter/smp-milter.conf"

enum smp_on_invalid {
	SMP_ON_INVALID_TAG = 0,
	SMP_ON_INVALID_QUARANTINE,
	SMP_ON_INVALID_REJECT,
	SMP_ON_INVALID_TEMPFAIL,
};

enum smp_on_error { SMP_ON_ERROR_TEMPFAIL = 0, SMP_ON_ERROR_ACCEPT };

enum smp_conf_conflict { SMP_CONF_CONFLICT_FLAG = 0, SMP_CONF_CONFLICT_KEEP,
			 SMP_CONF_CONFLICT_REPLACE };
enum smp_conf_auth { SMP_CONF_AUTH_NONE = 0, SMP_CONF_AUTH_DKIM,
		     SMP_CONF_AUTH_DMARC };
enum smp_conf_replay { SMP_CONF_REPLAY_TAG = 0, SMP_CONF_REPLAY_INVALID };
enum smp_conf_required_action { SMP_CONF_REQUIRED_REJECT = 0,
				 SMP_CONF_REQUIRED_TEMPFAIL };

/* A list of strings from the file. */
struct smp_strlist {
	char **v;
	size_t n;
};

/* An address prefix of outbound.networks. */
struct smp_net {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct smp_config {
	char *path;               /* file it came from ("" for defaults) */
	char *socket;             /* libmilter connection spec */
	char *socket_owner;       /* unix socket owner; "" = user */
	char *socket_group;       /* unix socket group; "" = group */
	mode_t socket_mode;
	char *user, *group;       /* privileges dropped to; "" = stay */
	char *pidfile;            /* "" = none */
	int log_level;            /* syslog priority: LOG_ERR..LOG_DEBUG */
	unsigned timeout;         /* libmilter MTA read/write timeout, s */
	enum smp_on_invalid on_invalid;
	enum smp_on_error on_error;
	char *quarantine_reason;
	struct smp_check_opts check; /* limits.* and detect.subject_match */
	struct smp_net *out_nets;
	size_t n_out_nets;
	char **out_daemons;
	size_t n_out_daemons;
	struct smp_strlist out_domains;  /* outbound.domains: our own domains */

	/* keyring { } and gnupg_home */
	char *keyring_backend;           /* "sqlite" (or "postgresql") */
	char *keyring_path;              /* sqlite database file */
	char *keyring_conninfo;          /* postgresql conninfo */
	long keyring_events_keep;        /* days of event history; 0 = all */
	char *gnupg_home;                /* used by crypto.engine = gnupg */

	/* crypto { } (lib/smp_crypto.h, doc/crypto.md) */
	char *crypto_engine;             /* "rnp" (default) or "gnupg" */
	long crypto_cache_keys;          /* keys kept parsed per pool slot */

	/* harvest { } */
	bool harvest_smp, harvest_autocrypt, harvest_pgp_keys; /* sources */
	bool harvest_outbound;
	struct smp_strlist skip_domains; /* default: outbound.domains */
	enum smp_conf_auth require_auth;
	char *authserv_id;
	enum smp_conf_conflict on_conflict;

	/* replay { } */
	bool replay_enabled;
	long replay_window;              /* seconds */
	enum smp_conf_replay replay_action;

	/* encrypt { } (SPEC.md 5) */
	enum smp_encrypt_mode encrypt_default;
	bool encrypt_protect_subject;
	enum smp_conf_required_action encrypt_required_action;
	bool encrypt_split_recipients;
	struct smp_strlist encrypt_archive_keys; /* fingerprints, upper case */
	struct smp_policy *encrypt_policy;       /* default + policy "x" { } */
	bool encrypt_any;  /* the default or some rule is not off: only then
			    * may a message be encrypted */

	/* discovery { } (lib/smp_discovery.h, doc/discovery.md); a policy
	 * section's discovery = {...} is kept in encrypt_policy
	 * (smp_policy_discovery_for) */
	struct smp_disc_config disc;
	char *disc_ca_file;              /* "" = the system's CA bundle */
	unsigned disc_https_port;
	struct smp_strlist disc_dns_forwarders;
	bool disc_dns_recursive;
	char *disc_dns_trust_anchor_file;
	struct smp_strlist disc_dns_trust_anchors;
	bool disc_any;     /* some recipient may be looked up: discovery
			    * methods (global or a rule's) and encrypt_any */
};

/* The discovery methods for one recipient: its policy rule's discovery =
 * {...} when that rule has one, else discovery.methods. */
void smp_config_disc_methods(const struct smp_config *c, const char *address,
			     struct smp_disc_methods *out);

/* The transport settings of c as smp_disc_net_new() takes them (pointers
 * into c). */
void smp_config_disc_net(const struct smp_config *c,
			 struct smp_disc_net_config *out);

/*
 * Loads path (NULL: the default path). An empty file gives every default.
 * On error returns NULL and writes "file:line: what" (or "file: what")
 * into err.
 */
struct smp_config *smp_config_load(const char *path, char *err, size_t errlen);

/* Every default, as an empty file gives. NULL when out of memory. */
struct smp_config *smp_config_defaults(void);

void smp_config_free(struct smp_config *c);

/* Is addr inside one of outbound.networks? */
bool smp_config_outbound_addr(const struct smp_config *c,
			      const struct sockaddr *addr);

/* Is daemon (the MTA's {daemon_name}) in outbound.daemons? */
bool smp_config_outbound_daemon(const struct smp_config *c, const char *daemon);

/* Parses "a.b.c.d/len", "x::y/len" or a bare address. */
bool smp_net_parse(const char *s, struct smp_net *net);

/* Is spec a libmilter socket spec smp-milter accepts? (unix:/path,
 * local:/path, /path, inet:port@host, inet6:port@host) */
bool smp_socket_spec_valid(const char *spec);

const char *smp_on_invalid_name(enum smp_on_invalid a);

#endif
