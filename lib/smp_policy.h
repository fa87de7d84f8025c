/* smp_policy.h - outbound encryption policy (SPEC.md 5): the mode of each
 * recipient, the key it would be encrypted to, and the decision for a whole
 * message.
 *
 * Modes: encrypt = off | opportunistic | required, per recipient, the most
 * specific rule winning: an address rule, then a domain rule, then the
 * default. Address rules compare as smp_address_normalize() does (local
 * part exact, domain case-insensitive). A domain rule "example.org" matches
 * that domain only; ".example.org" matches every subdomain of it (not the
 * domain itself); among domain rules the exact one wins, then the longest
 * matching subdomain rule.
 *
 * Usable key of a recipient (smp_policy_recipient), from the keyring:
 *   - a binding in state pinned, else one in state active (bindings are
 *     looked at newest first); pinned is the administrator's choice, so
 *     when an address has a pinned binding only pinned bindings count (an
 *     unusable pinned key is never replaced silently by another key);
 *   - an address with a binding in state conflict (and no usable pinned
 *     one) has no usable key: "encryption to that address stops until an
 *     admin pins one" (SPEC.md 4);
 *   - the key must be stored, not revoked, not blocked, and not expired
 *     (expires == 0 or expires > now).
 *
 * Class of a recipient (also what split_recipients compares at RCPT time):
 *   mode off                         -> plain
 *   opportunistic or required + key  -> encrypt
 *   opportunistic without a key      -> plain
 *   required without a key           -> refuse (never delivered in plain)
 *
 * Decision for a message (smp_policy_decide), over all envelope recipients:
 *   - every recipient is class encrypt               -> ENCRYPT
 *   - otherwise, when some recipient's mode is required -> REFUSE; the
 *     recipients that stop encryption (class plain or refuse) are marked
 *     blocking and are the ones the 550 names. A required recipient never
 *     receives plain text, also not when it has a key and another
 *     recipient lacks one ("Plaintext is never delivered for a required
 *     recipient");
 *   - otherwise                                      -> PLAIN
 * No recipients at all gives PLAIN.
 *
 * A struct smp_policy is filled once (the configuration) and then only
 * read: lookups from several threads at once are safe.
 */
#ifndef SMP_POLICY_H
#define SMP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_keyring.h"

enum smp_encrypt_mode {
	SMP_ENC_OFF = 0,
	SMP_ENC_OPPORTUNISTIC,
	SMP_ENC_REQUIRED,
};

/* "off", "opportunistic", "required" and back; -1 for an unknown name. */
const char *smp_encrypt_mode_name(enum smp_encrypt_mode m);
int smp_encrypt_mode_parse(const char *name);

struct smp_policy;

/* A policy with only a default. NULL when out of memory. */
struct smp_policy *smp_policy_new(enum smp_encrypt_mode dflt);
void smp_policy_free(struct smp_policy *p);
void smp_policy_set_default(struct smp_policy *p, enum smp_encrypt_mode m);
enum smp_encrypt_mode smp_policy_default(const struct smp_policy *p);

/*
 * Adds a rule. Domain: "example.org" (an "@" in front is allowed) or
 * ".example.org" for its subdomains; ASCII letters are lowered. Address:
 * anything smp_address_normalize() takes. Returns 0 for a new rule, 1 when
 * it replaced an existing rule for the same domain or address (the config
 * parser may warn), -1 with errno EINVAL (not a domain / not an address /
 * bad mode) or ENOMEM.
 */
int smp_policy_add_domain(struct smp_policy *p, const char *domain,
			  enum smp_encrypt_mode m);
int smp_policy_add_address(struct smp_policy *p, const char *address,
			   enum smp_encrypt_mode m);
size_t smp_policy_nrules(const struct smp_policy *p);

/* The same with a key discovery override for the rule (policy "x" {
 * discovery = {...} }): disc is a code of smp_disc_methods_encode()
 * (0..254), or -1 for none (discovery.methods applies). */
int smp_policy_add_domain_disc(struct smp_policy *p, const char *domain,
			       enum smp_encrypt_mode m, int disc);
int smp_policy_add_address_disc(struct smp_policy *p, const char *address,
				enum smp_encrypt_mode m, int disc);
/* The discovery code of the most specific rule for address (the rule that
 * gives its mode), or -1 when that rule has none or only the default
 * applies. */
int smp_policy_discovery_for(const struct smp_policy *p, const char *address);

/* The mode for one recipient (address rule, domain rule, default). A
 * recipient that is not an address (RCPT TO:<postmaster>) gets the
 * default. */
enum smp_encrypt_mode smp_policy_for(const struct smp_policy *p,
				     const char *address);

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

enum smp_rcpt_class {
	SMP_RCPT_PLAIN = 0,
	SMP_RCPT_ENCRYPT,
	SMP_RCPT_REFUSE,
};

/* Why a recipient has no usable key. */
enum smp_nokey {
	SMP_NOKEY_NONE = 0,      /* it has one */
	SMP_NOKEY_POLICY_OFF,    /* mode off: not looked up */
	SMP_NOKEY_NOT_ADDRESS,   /* the recipient is not an address */
	SMP_NOKEY_NO_BINDING,    /* no pinned or active binding */
	SMP_NOKEY_CONFLICT,      /* a binding in conflict, none pinned */
	SMP_NOKEY_REVOKED,       /* binding or key revoked */
	SMP_NOKEY_BLOCKED,       /* binding or key blocked */
	SMP_NOKEY_EXPIRED,       /* the key expired */
	SMP_NOKEY_NOT_STORED,    /* a binding whose key is not stored */
};

/* "off", "not-an-address", "no-key", "conflict", "revoked", "blocked",
 * "expired", "not-stored" ("" for SMP_NOKEY_NONE). */
const char *smp_nokey_name(enum smp_nokey r);
const char *smp_rcpt_class_name(enum smp_rcpt_class c); /* "plain", ... */

struct smp_rcpt_decision {
	char *address;                /* normalised; as given when not one */
	enum smp_encrypt_mode mode;
	enum smp_rcpt_class cls;
	enum smp_nokey why;           /* SMP_NOKEY_NONE when fpr is set */
	char fpr[SMP_FPR_MAX];        /* the key to encrypt to, or "" */
	enum smp_bind_state state;    /* of the chosen binding (with fpr) */
	bool blocking;                /* REFUSE: one of the recipients named */
};

enum smp_action {
	SMP_ACTION_PLAIN = 0,  /* deliver as is */
	SMP_ACTION_ENCRYPT,    /* encrypt to fprs */
	SMP_ACTION_REFUSE,     /* 550 5.7.1 (or 450) naming the blocking ones */
};

const char *smp_action_name(enum smp_action a); /* "plain", ... */

struct smp_decision {
	enum smp_action action;
	struct smp_rcpt_decision *rcpts; /* one per recipient, in order */
	size_t n;
	char **fprs;     /* distinct keys of the class-encrypt recipients, in
			  * recipient order (what to encrypt to, with the
			  * archive keys, when action is ENCRYPT) */
	size_t nfprs;
	size_t nblocking;
};

/*
 * One recipient: mode, usable key, class. now = 0: the current time.
 * Returns 0, or -1 on a keyring error (message in smp_keyring_errmsg) or
 * out of memory; *out is cleared with smp_rcpt_decision_clear().
 */
int smp_policy_recipient(const struct smp_policy *p, struct smp_keyring *kr,
			 const char *rcpt, int64_t now,
			 struct smp_rcpt_decision *out);
void smp_rcpt_decision_clear(struct smp_rcpt_decision *r);

/*
 * The decision for a message to rcpts[0..n) (envelope recipients, as
 * RCPT TO gave them, with or without <>). Reads only; call it outside a
 * keyring transaction or inside one, as the caller likes. Returns 0, or
 * -1 (keyring error, out of memory) with *d cleared.
 */
int smp_policy_decide(const struct smp_policy *p, struct smp_keyring *kr,
		      const char *const *rcpts, size_t n, int64_t now,
		      struct smp_decision *d);
void smp_decision_clear(struct smp_decision *d);

/*
 * The blocking recipients of a REFUSE decision as "a@x, b@y" (each one
 * followed by " (reason)" when with_reason), for the SMTP reply and the
 * log: at most max octets (then ", ..." ends it; max >= 32). malloc'd;
 * "" when none; NULL when out of memory. The addresses are printed only
 * with bytes that are safe in an SMTP reply (other bytes become '?').
 */
char *smp_decision_blocking(const struct smp_decision *d, bool with_reason,
			    size_t max);

#endif
