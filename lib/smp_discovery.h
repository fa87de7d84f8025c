/* smp_discovery.h - keys for recipients who never wrote to us (SPEC.md 5,
 * "Key discovery"; doc/discovery.md): the Web Key Directory
 * (draft-koch-openpgp-webkey-service, advanced and direct methods over
 * HTTPS, libcurl) and DNS OPENPGPKEY records (RFC 7929, DNSSEC-validated
 * through libunbound).
 *
 * Three layers, one file each:
 *   smp_discovery_names.c  the names: WKD hashed local part (z-base-32 of
 *                          SHA-1), WKD URLs, the OPENPGPKEY owner name;
 *   smp_discovery_wkd.c,   the transports: one lookup of one address by
 *   smp_discovery_dane.c   one method, answering FOUND (the published key
 *                          bytes), NONE (nothing published: 404, NXDOMAIN,
 *                          NODATA, an unsigned zone) or ERROR (anything
 *                          else: timeout, SERVFAIL, DNSSEC bogus, TLS, an
 *                          HTTP status other than 200/404, over the size
 *                          limit). ERROR is never NONE: the caller fails
 *                          closed on it;
 *   smp_discovery.c        the policy: the cache in the keyring, methods in
 *                          order inside a time budget, the harvest rules
 *                          applied to what was found (smp_harvest.h, source
 *                          wkd or dane), refresh.
 *
 * Threads: a struct smp_disc_net may be used by several threads at once
 * (its libunbound context is thread-safe; each lookup makes its own curl
 * handle). Everything else here is per call.
 */
#ifndef SMP_DISCOVERY_H
#define SMP_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_crypto.h"
#include "smp_harvest.h"
#include "smp_keyring.h"

/* ------------------------------------------------------------------ */
/* Methods and answers                                                 */

enum smp_disc_method {
	SMP_DISC_WKD = 0,
	SMP_DISC_DANE,
};
#define SMP_DISC_N_METHODS 2

/* discovery.methods (and a policy section's): the methods in order; n = 0
 * is "off". */
struct smp_disc_methods {
	unsigned n;
	enum smp_disc_method m[SMP_DISC_N_METHODS];
};

/* "wkd", "dane" and back; -1 for an unknown name. */
const char *smp_disc_method_name(enum smp_disc_method m);
int smp_disc_method_parse(const char *name);
/* The source a key found by m is stored with (SMP_SRC_WKD, SMP_SRC_DANE). */
enum smp_key_source smp_disc_method_source(enum smp_disc_method m);

enum smp_disc_status {
	SMP_DISC_FOUND = 0, /* a key was published (data, len) */
	SMP_DISC_NONE,      /* nothing is published for the address */
	SMP_DISC_ERROR,     /* the lookup failed: never read as NONE */
};

/* "found", "none", "error" and back; -1 for an unknown name. */
const char *smp_disc_status_name(enum smp_disc_status s);
int smp_disc_status_parse(const char *name);

struct smp_disc_answer {
	enum smp_disc_status status;
	enum smp_disc_method method;
	unsigned char *data;  /* FOUND: the key bytes as served (binary or
			       * armored, one or more keys), malloc'd */
	size_t len;
	char origin[512];     /* the URL or DNS name asked last */
	int64_t ttl;          /* seconds the answer may be cached, from the
			       * source (DNS: the record's or the negative
			       * TTL); -1: the source gave none (WKD) */
	char error[256];      /* ERROR: one sentence, naming origin */
};

void smp_disc_answer_clear(struct smp_disc_answer *a);

/* ------------------------------------------------------------------ */
/* Names (smp_discovery_names.c)                                       */

/* The WKD hash of a local part: z-base-32 of the SHA-1 of the local part
 * mapped to lower case (ASCII letters only), 32 characters + NUL. */
void smp_wkd_hash(const char *local, size_t len, char out[33]);

/* The URLs WKD asks for address ("Joe.Doe@Example.ORG"): advanced
 * https://openpgpkey.example.org[:port]/.well-known/openpgpkey/example.org/hu/HASH?l=Joe.Doe
 * and direct
 * https://example.org[:port]/.well-known/openpgpkey/hu/HASH?l=Joe.Doe
 * (the l= value percent-encoded; port only when it is not 443). The
 * domain is lowered. -1 when address is not an address or a buffer is
 * too small. */
int smp_wkd_urls(const char *address, unsigned port, char *advanced,
		 size_t alen, char *direct, size_t dlen);

/* The OPENPGPKEY owner name of address (RFC 7929 section 3): the first
 * 28 octets of the SHA-256 of the local part as given, in hex, then
 * "._openpgpkey." and the domain (lowered), with a final dot. -1 when
 * not an address or out is too small. */
int smp_dane_qname(const char *address, char *out, size_t outlen);

/* ------------------------------------------------------------------ */
/* Transports (smp_discovery_wkd.c, smp_discovery_dane.c)             */

struct smp_disc_net_config {
	const char *ca_file;        /* HTTPS trust: a PEM bundle; NULL or
				     * "": the system's */
	unsigned https_port;        /* 443; tests use another */
	const char *const *dns_forwarders; /* "addr" or "addr@port"; none:
				     * the nameservers of /etc/resolv.conf */
	size_t n_dns_forwarders;
	bool dns_recursive;         /* resolve from the root servers
				     * instead of forwarding */
	const char *dns_trust_anchor_file; /* zone-file DS or DNSKEY lines;
				     * NULL: /usr/share/dns/root.key */
	const char *const *dns_trust_anchors; /* more, one record each */
	size_t n_dns_trust_anchors;
	size_t max_bytes;           /* largest answer taken (limits.
				     * max_key_bytes); more is ERROR */
};

struct smp_disc_net;

/* NULL with a sentence in err (a trust anchor file that cannot be read,
 * a forwarder that is not an address, ...). */
struct smp_disc_net *smp_disc_net_new(const struct smp_disc_net_config *cfg,
				      char *err, size_t errlen);
void smp_disc_net_free(struct smp_disc_net *n);

/* Monotonic milliseconds: the clock deadlines are on. */
int64_t smp_disc_now_ms(void);

/*
 * One lookup of address by one method, finished by deadline_ms (on
 * smp_disc_now_ms's clock; past it the lookup is ERROR "timed out").
 * out must be zeroed or hold an earlier answer: it is cleared first (its
 * data freed) and always filled; returns 0, or -1 only when out
 * of memory (out->status is then ERROR too).
 *
 * WKD: the advanced URL first. Its host (openpgpkey.DOMAIN) is resolved
 * through the net's DNS (libunbound; a bogus answer is ERROR), and only
 * when that name does not exist (NXDOMAIN or no address) is the direct
 * URL asked, whose host is resolved the same way (no address: NONE).
 * curl connects to the address found (CURLOPT_RESOLVE), verifies the
 * certificate against ca_file and the host name, follows no redirect,
 * and takes at most max_bytes. 200 with a body: FOUND; 404: NONE;
 * anything else: ERROR.
 *
 * DANE: an OPENPGPKEY query for smp_dane_qname(address), DNSSEC-
 * validated. Secure answer: FOUND (all records' data concatenated), ttl
 * from the answer. Secure NXDOMAIN/NODATA: NONE, ttl the negative TTL.
 * Insecure (unsigned zone): NONE (RFC 7929 keys need DNSSEC). Bogus,
 * SERVFAIL, timeout: ERROR.
 */
int smp_disc_wkd(struct smp_disc_net *n, const char *address,
		 int64_t deadline_ms, struct smp_disc_answer *out);
int smp_disc_dane(struct smp_disc_net *n, const char *address,
		  int64_t deadline_ms, struct smp_disc_answer *out);

/* ------------------------------------------------------------------ */
/* Policy: cache, order, rules (smp_discovery.c)                       */

/* discovery { } of smp-milter.conf (doc/discovery.md). */
struct smp_disc_config {
	struct smp_disc_methods methods; /* default wkd, dane */
	int64_t timeout_ms;        /* budget per message (discovery.timeout) */
	bool on_error_tempfail;    /* opportunistic recipients on ERROR */
	int64_t positive_ttl;      /* seconds a found key is trusted before
				    * it is fetched again (a DNS answer's
				    * own TTL shortens it) */
	int64_t negative_ttl;      /* seconds "nothing published" is kept */
	int64_t error_ttl;         /* seconds a failed lookup is kept (the
				    * address tempfails meanwhile) */
	unsigned refresh_per_minute; /* background refresh rate */
};

/* Defaults: wkd, dane; 5 s; on_error plain; 1 day, 1 hour, 60 s; 60. */
void smp_disc_config_init(struct smp_disc_config *dc);

/* A methods list <-> a small code (0..255) a policy rule can hold. */
int smp_disc_methods_encode(const struct smp_disc_methods *m);
void smp_disc_methods_decode(int code, struct smp_disc_methods *m);
/* "wkd, dane" / "off" */
void smp_disc_methods_format(const struct smp_disc_methods *m, char *buf,
			     size_t size);

enum smp_disc_outcome {
	SMP_DISC_HAVE = 0,   /* a usable key: one was bound already, or one
			      * was found and stored */
	SMP_DISC_NOKEY,      /* nothing usable published (or what was
			      * published was refused by the rules) */
	SMP_DISC_FAILED,     /* a lookup failed and nothing was found: fail
			      * closed (never read as NOKEY) */
	SMP_DISC_SKIPPED,    /* not looked up: no methods, not an address,
			      * or a binding an admin must settle (conflict,
			      * blocked) */
};

/* "have", "nokey", "failed", "skipped" */
const char *smp_disc_outcome_name(enum smp_disc_outcome o);

struct smp_disc_result {
	enum smp_disc_outcome outcome;
	bool cached;               /* decided by the keyring's cache */
	bool bound;                /* HAVE because a binding was there */
	unsigned lookups;          /* network lookups made */
	char method[8];            /* the method that answered, or "" */
	char fpr[SMP_FPR_MAX];     /* HAVE/NOKEY: the key published, or "" */
	char detail[512];          /* FAILED: the error; NOKEY: why */
};

/* What one discovery call works with; everything is borrowed. */
struct smp_disc_ctx {
	struct smp_disc_net *net;
	struct smp_keyring *kr;    /* used by this thread only */
	struct smp_crypto *crypto; /* idem */
	const struct smp_disc_config *cfg;
	const struct smp_disc_methods *methods; /* NULL: cfg->methods */
	const struct smp_harvest_config *harvest; /* on_conflict */
	const struct smp_limits *limits;
	int64_t now;               /* unix time; 0: time(NULL) */
	int64_t deadline_ms;       /* on smp_disc_now_ms's clock */
};

/*
 * The key of one recipient (SPEC.md 5, "Key discovery"):
 *   1. a usable binding (pinned, else active; key stored, not revoked,
 *      blocked or expired) -> HAVE, nothing asked. A binding in conflict
 *      or blocked -> SKIPPED: an admin settles those, not the network;
 *   2. the cache (table discovery of the keyring, shared by every host on
 *      a PostgreSQL keyring): an answer not yet expired decides: "none"
 *      -> NOKEY, "error" -> FAILED (fail closed until error_ttl runs out);
 *      "found" whose key is no longer usable is asked again;
 *   3. the methods in order, each with what is left of the deadline,
 *      until one publishes a key (that method decides). A published key
 *      that passes the harvest rules (UID = the address, not expired or
 *      revoked, usable encryption subkey, strong algorithm, size limits;
 *      self-signatures only; on_conflict against existing bindings;
 *      pinned and blocked never changed) is stored with source wkd or
 *      dane and client_addr = the URL or DNS name it came from -> HAVE;
 *      one the rules refuse -> NOKEY (the reason in detail). No key
 *      published: FAILED when a method failed, else NOKEY. The
 *      answer is cached: found for positive_ttl (or the DNS TTL when
 *      shorter; at least 60 s) less a random 5-25% so refreshes spread;
 *      none for negative_ttl (or the DNS negative TTL when shorter);
 *      error for error_ttl.
 * Returns 0 with *out filled, or -1 on a keyring or crypto engine failure
 * (out->detail says which; the caller tempfails).
 */
int smp_discovery_recipient(const struct smp_disc_ctx *dx, const char *address,
			    struct smp_disc_result *out);

/*
 * The same in three steps, so that a caller holding a pooled keyring
 * connection can give it back while the network is asked (the daemon):
 *   check: keyring only. *need false: out is the answer (HAVE because a
 *          binding is usable, SKIPPED, or a cached NOKEY/FAILED); true:
 *          ask the network (refresh: always true unless SKIPPED);
 *   fetch: network only, no keyring: the methods in order until one
 *          publishes a key (FOUND: that method decides, later ones are not
 *          asked) or all are asked;
 *   store: keyring and crypto engine: the rules, the cache, *out.
 * smp_discovery_recipient is check + fetch + store.
 */
struct smp_disc_answers {
	struct smp_disc_answer a[SMP_DISC_N_METHODS];
	unsigned n;
};

int smp_discovery_check(const struct smp_disc_ctx *dx, const char *address,
			bool refresh, bool *need, struct smp_disc_result *out);
/* -1 only when out of memory. */
int smp_discovery_fetch(struct smp_disc_net *net,
			const struct smp_disc_methods *methods,
			const char *address, int64_t deadline_ms,
			struct smp_disc_answers *out);
int smp_discovery_store(const struct smp_disc_ctx *dx, const char *address,
			const struct smp_disc_answers *ans, bool refresh,
			struct smp_disc_result *out);
void smp_disc_answers_clear(struct smp_disc_answers *a);

/*
 * Refresh (the daemon's housekeeping thread, smpctl keys refresh): asks the
 * network again for address whatever the cache and the bindings say, and
 * puts what it finds through the same rules, so that a revocation or a new
 * expiry the owner's domain published reaches the keyring (as "revoked" /
 * "merged" events in keys history). A failed lookup leaves the stored key
 * and binding alone and is tried again after error_ttl. Nothing published
 * any more: the cache says none; the stored key stays usable until it
 * expires or is revoked. Same return convention.
 */
int smp_discovery_refresh(const struct smp_disc_ctx *dx, const char *address,
			  struct smp_disc_result *out);

#endif
