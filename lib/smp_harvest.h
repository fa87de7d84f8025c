/* smp_harvest.h - the harvest rules of SPEC.md 4: which keys a message may
 * put into the keyring database, and how.
 *
 * smp_harvest_message() takes the key parts of one message (public-key-N
 * parts of an SMP message, and where harvest.sources enables them the
 * application/pgp-keys parts and Autocrypt: headers of any message,
 * decoded to binary by the caller) and applies every rule through the
 * keyring store in ONE transaction per message: either everything it
 * decided is written (bindings, keys, events) or, on a database or crypto
 * engine failure, nothing is, and it returns -1 so the caller can apply
 * on_error. Key inspection and the minimal key material go through the
 * crypto interface (smp_crypto.h, either engine: rnp in process, gnupg
 * with a gpg process per operation).
 *
 * The rules, in the order they are applied; each refusal has a reason
 * token (smp_harvest_reason_token), is logged in the report and appended
 * to the event history as event "refused" with the token as detail:
 *
 * Message level (no crypto work for these):
 *   outbound mail is not harvested unless harvest.outbound (no report);
 *   parts of a source not in harvest.sources are ignored (no report);
 *   sender-mismatch     the envelope sender and exactly one From address
 *                       must be the same address (smp_address_normalize);
 *                       the null sender never matches
 *   own-domain          inbound mail from a domain in skip_domains
 *                       ("corp.example" is that domain; ".corp.example"
 *                       its subdomains)
 *   not-authenticated   require_auth = dkim|dmarc and no
 *                       Authentication-Results header whose authserv-id
 *                       is ours says pass for the sender (see
 *                       smp_harvest_auth_ok)
 * Per key, before any crypto work (packet framing only):
 *   too-large           the part or the key is over limits.max_key_bytes,
 *                       or more than limits.max_keys keys in the message
 *   secret              secret key packets (the whole part is refused)
 *   bad-key             not a well-framed transferable public key
 *   weak-algorithm      a v2/v3 key
 *   too-many-uids       more user ID packets than limits.max_uids
 *   blocked             the fingerprint is blocked (smpctl keys block);
 *                       a blocked key is never harvested again
 * (the blocked test reads the database; no crypto work yet)
 * Per key, from the engine's listing (one inspection for all keys):
 *   unusable            the engine does not accept the key (no valid
 *                       self-signed user ID, unsupported version or
 *                       algorithm, broken packets inside)
 *   secret, revoked, expired (against ctx->now)
 *   weak-algorithm      primary RSA < 2048 bits, DSA, ElGamal; or every
 *                       usable encryption subkey is weak (RSA < 2048,
 *                       ElGamal: "ElGamal-only")
 *   no-encryption-subkey  no usable (valid, not expired, not revoked)
 *                       encryption-capable subkey
 *   no-matching-uid     no valid user ID whose email is the sender (the
 *                       planting attempt). A key that has the sender's
 *                       user ID and others is bound only to the sender;
 *                       the other user IDs (and user attributes) are
 *                       dropped before anything is stored or imported.
 * Per address (every taken key is bound only to the sender):
 *   duplicate-address   two different keys for the address in one message:
 *                       neither is taken (the same key twice counts once)
 *   blocked-binding     the (address, key) binding is blocked
 *   pinned              the address has a pinned binding of another key
 *                       (a pinned binding of the same key: only the key
 *                       material may be merged; the binding is untouched)
 *   older-message       the message Date is older than the newest one
 *                       already seen for the address (Autocrypt's rule);
 *                       a missing Date or one in the future counts as now
 *
 * Outcomes of a key that passed every rule:
 *   harvested  new binding, state active
 *   merged     same fingerprint, and the key gained something its minimal
 *              form keeps (a newer encryption subkey, a new expiry, a user
 *              ID for a new address, revocation of a subkey): the stored
 *              material is replaced by smp_crypto_merge() of the stored
 *              and the new key; the binding's last_seen, times_seen,
 *              msg_date, message_id, client_addr are updated
 *   seen       same fingerprint, nothing new: only the binding's counters
 *              (times_seen, last_seen, msg_date, message_id, client_addr)
 *              change, and no event is recorded (every other line of the
 *              report is one event in the history)
 *   conflict   on_conflict = flag: a different key for an address that has
 *              an active (or conflict) binding: the new binding and the
 *              old ones go to state conflict; no encryption to the address
 *              until an admin pins one (smpctl keys pin)
 *   kept       on_conflict = keep: the new key is not stored, the event is
 *              logged
 *   replaced   on_conflict = replace: old bindings revoked, new active
 *   revoked    a key already stored for the address arrives revoked by its
 *              owner: the revocation is merged into the stored key and the
 *              address's active/conflict binding of it goes to revoked (the
 *              report also counts it as refused with reason "revoked")
 *
 * Every binding written records whether one of the key's encryption
 * subkeys is among the message's session-key recipients (self_encrypted:
 * a sender normally encrypts to itself), shown by smpctl keys show.
 *
 * A key whose stored copy is revoked is never taken again (refused
 * "revoked"), whatever copy a later message carries; a merge whose result
 * the engine finds revoked or expired is refused with that reason.
 *
 * The stored material is the minimal key (smp_crypto_merge: self-
 * signatures only, the user IDs of the bound addresses, the newest usable
 * encryption subkey), so "seen" is decided by comparing the listings: a
 * copy that only carries what the minimal form drops anyway (signing
 * subkeys, older encryption subkeys, other user IDs) is "seen".
 *
 * Cost (SPEC.md 9), in crypto calls (rep->crypto_ops) and gpg processes
 * (rep->gpg_ops: always 0 on the rnp engine):
 *   0 when no part is left after the message-level and framing rules (no
 *     key parts, outbound, a source not enabled, sender mismatch, own
 *     domain, not authenticated, secret, too large, too many user IDs,
 *     v3, blocked fingerprint);
 *   0 calls for a key block seen before (see smp_harvest_memo below):
 *     the worker's memo (ctx->memo) knows it, or else the keyring's
 *     known_blocks table does (one indexed read: after a restart, with
 *     no memo, and for a block another host on the keyring saw);
 *   1 call (one inspection of all new keys together with the stored
 *     versions of the same fingerprints; 1 gpg process) when nothing
 *     changes: "seen", and every refusal decided from the listing;
 *   2 calls (the inspection, smp_crypto_merge; 5 gpg processes on gnupg)
 *     for a new or changed key; one more merge for each stored key
 *     revoked by its owner in the same message.
 * All crypto work runs before the transaction starts (smp_keyring_begin
 * takes the database's write lock), on what was read before it; inside
 * the transaction the state is read again and the rules are applied to
 * it, and only if the stored key changed in between is the merge redone
 * there.
 *
 * The gnupg engine's GnuPG home is a cache: a key imported there but then
 * not stored (kept, refused at the last step, rolled back) does no harm,
 * because the database decides which key an address gets, and encryption
 * hands the engine the stored material (smp_crypto_encrypt).
 *
 * Addresses: the envelope sender, the From address and each user ID's
 * email (gpgme's reading of it, on both engines, byte for byte) are
 * compared after smp_address_normalize (domain in lower case, local part
 * exact): quoted local parts, UTF-8 and very long local parts are stored
 * and found exactly as they are.
 */
#ifndef SMP_HARVEST_H
#define SMP_HARVEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_crypto.h"
#include "smp_gpg.h"
#include "smp_keyring.h"
#include "smp_limits.h"
#include "smp_result.h"

/* ------------------------------------------------------------------ */
/* Configuration (harvest.* in smp-milter.conf)                        */

enum smp_on_conflict {
	SMP_ON_CONFLICT_FLAG = 0, /* default */
	SMP_ON_CONFLICT_KEEP,
	SMP_ON_CONFLICT_REPLACE,
};

enum smp_require_auth {
	SMP_REQUIRE_AUTH_NONE = 0, /* default */
	SMP_REQUIRE_AUTH_DKIM,
	SMP_REQUIRE_AUTH_DMARC,
};

/* harvest.sources: bits by enum smp_key_source. */
#define SMP_HARVEST_SRC(s) (1u << (s))
#define SMP_HARVEST_SRC_DEFAULT SMP_HARVEST_SRC(SMP_SRC_SMP)

struct smp_harvest_config {
	unsigned sources;              /* SMP_HARVEST_SRC() bits; 0 = off */
	bool outbound;                 /* harvest.outbound: also outbound mail */
	char **skip_domains;           /* harvest.skip_domains (lower case) */
	size_t n_skip_domains;
	enum smp_require_auth require_auth;
	char *authserv_id;             /* ours; required for dkim|dmarc */
	enum smp_on_conflict on_conflict;
};

/* The defaults: sources smp, no outbound, no skip domains (the config
 * module fills in the domains of outbound), require_auth none,
 * on_conflict flag. Owns nothing. */
void smp_harvest_config_init(struct smp_harvest_config *c);

/* "flag", "keep", "replace" and back; -1 for an unknown name. */
const char *smp_on_conflict_name(enum smp_on_conflict v);
int smp_on_conflict_parse(const char *name);
/* "none", "dkim", "dmarc" and back; -1 for an unknown name. */
const char *smp_require_auth_name(enum smp_require_auth v);
int smp_require_auth_parse(const char *name);
/* One source name ("smp", "autocrypt", "pgp-keys") to its bit; 0 for an
 * unknown name ("admin", "wkd" and "dane" are sources of bindings, not
 * harvest sources). */
unsigned smp_harvest_source_bit(const char *name);

/* ------------------------------------------------------------------ */
/* One message                                                         */

struct smp_harvest_ctx {
	const struct smp_harvest_config *cfg;
	const struct smp_limits *limits;   /* max_key_bytes, max_keys, max_uids */
	const char *envelope_sender;       /* MAIL FROM, with or without <> */
	const char *const *from;           /* every address of From:, as
					    * addr-specs ("a@b.example") */
	size_t nfrom;
	bool outbound;
	/* raw values of every Authentication-Results header, in order */
	const char *const *auth_results;
	size_t nauth_results;
	int64_t msg_date;                  /* Date: as unix time; 0 = none */
	const char *message_id;            /* may be NULL */
	const char *client_addr;           /* may be NULL */
	const struct smp_msg_info *msg;    /* session-key packets; may be NULL */
	enum smp_key_source source;        /* of every part ... */
	const enum smp_key_source *part_sources; /* ... or one per part */
	int64_t now;                       /* 0: time(NULL) */
	struct smp_harvest_memo *memo;     /* known key blocks; NULL: none
					    * (every key is inspected) */
};

enum smp_harvest_outcome {
	SMP_HV_REFUSED = 0,
	SMP_HV_HARVESTED,
	SMP_HV_MERGED,
	SMP_HV_SEEN,
	SMP_HV_CONFLICT,
	SMP_HV_KEPT,
	SMP_HV_REPLACED,
	SMP_HV_REVOKED,
};
#define SMP_HV_COUNT 8

enum smp_harvest_reason {
	SMP_HR_NONE = 0,
	SMP_HR_SENDER_MISMATCH,
	SMP_HR_OWN_DOMAIN,
	SMP_HR_NOT_AUTHENTICATED,
	SMP_HR_TOO_LARGE,
	SMP_HR_SECRET,
	SMP_HR_BAD_KEY,
	SMP_HR_TOO_MANY_UIDS,
	SMP_HR_BLOCKED,
	SMP_HR_UNUSABLE,
	SMP_HR_REVOKED,
	SMP_HR_EXPIRED,
	SMP_HR_WEAK_ALGORITHM,
	SMP_HR_NO_ENCRYPTION_SUBKEY,
	SMP_HR_NO_MATCHING_UID,
	SMP_HR_DUPLICATE_ADDRESS,
	SMP_HR_BLOCKED_BINDING,
	SMP_HR_PINNED,
	SMP_HR_OLDER_MESSAGE,
};
#define SMP_HR_COUNT 19

/* "harvested", "merged", ... / "sender-mismatch", ...; NULL when out of
 * range (SMP_HR_NONE gives ""). */
const char *smp_harvest_outcome_name(enum smp_harvest_outcome o);
const char *smp_harvest_reason_token(enum smp_harvest_reason r);

/* One decision: one key of one part (or a whole part refused before its
 * keys were looked at: fpr ""). */
struct smp_harvest_line {
	unsigned part;                  /* index into parts[] */
	char fpr[SMP_FPR_MAX];          /* "" when not known */
	char *address;                  /* the sender (normalised), or NULL */
	enum smp_key_source source;
	enum smp_harvest_outcome outcome;
	enum smp_harvest_reason reason; /* SMP_HR_NONE unless refused/revoked */
	bool self_encrypted;
};

struct smp_harvest_report {
	unsigned count[SMP_HV_COUNT];   /* lines per outcome */
	unsigned harvested;             /* harvested + merged + replaced */
	unsigned refused;               /* refused + revoked */
	size_t n;
	struct smp_harvest_line *lines;
	unsigned long gpg_ops;          /* gpg processes for this message
					 * (gnupg engine; 0 on rnp) */
	unsigned crypto_ops;            /* smp_crypto calls for this message
					 * (inspections, merges) */
	unsigned known;                 /* keys decided without crypto work
					 * (the memo or the keyring's known
					 * blocks, see smp_harvest_memo) */
	unsigned known_stored;          /* of those, decided by the keyring's
					 * known blocks (the memo did not
					 * know them) */
	char error[512];                /* the failure, when -1 was returned */
};

void smp_harvest_report_clear(struct smp_harvest_report *r);

/*
 * The log form: "harvested=1 refused=2" followed by one item per line,
 * e.g. " [harvested 821340FF...] [refused:weak-algorithm 4A3C...]"
 * (fingerprints in full, "-" when not known). Returns the length needed,
 * like snprintf; buf is always NUL-terminated when size > 0.
 */
size_t smp_harvest_report_format(const struct smp_harvest_report *r,
				 char *buf, size_t size);

/*
 * Applies the harvest rules to the key parts of one message (see the top
 * of this file). parts[i].data/size/kind are used (kind SMP_KEY_SECRET and
 * SMP_KEY_BAD are refused; the framing is checked again here). kr and c
 * (either engine) are used by this thread only for the duration of the
 * call. rep is filled on success (and cleared first; call
 * smp_harvest_report_clear afterwards). Returns 0, or -1 on a database or
 * crypto engine failure: then the transaction was rolled back, nothing
 * was written, rep->error says what failed, and the caller applies
 * on_error.
 */
int smp_harvest_message(struct smp_keyring *kr, struct smp_crypto *c,
			const struct smp_harvest_ctx *ctx,
			const struct smp_key_part *parts, size_t nparts,
			struct smp_harvest_report *rep);

/*
 * Known key blocks (issue 9: a known key seen again costs no crypto
 * work), on two levels that record and decide the same way:
 * - the memo, in memory: one per thread at a time, like the keyring
 *   connection beside it; bounded (least recently used go first);
 *   recorded once the message's transaction is committed;
 * - the keyring's known_blocks table (smp_keyring_block_get/put), written
 *   inside the message's transaction (rolled back with it), read only
 *   where the memo does not decide (no memo, an entry it lacks or one
 *   that no longer holds): it outlives a restart, and every host on a
 *   shared keyring reads what the others saw. At most
 *   SMP_KEYRING_BLOCKS_PER_KEY blocks per key; they go with the key. A
 *   row that already says what the message would write is written again
 *   (its seen refreshed) at most once a day, so a known key costs no
 *   writes beyond its binding's counters.
 * For each key block a harvest took or saw (harvested, merged, seen,
 * conflict, replaced) both remember the SHA-256 of the block as the
 * message carried it, its fingerprint, the SHA-256 of the material the
 * keyring held for it after the message, and until when that key can
 * encrypt. The same block again is decided without inspecting it when the
 * keyring still holds exactly that material (the record is read anyway),
 * the key is neither revoked nor blocked, its expiry has not come, and
 * the sender already has a binding of it (whose state the rules then
 * judge as for any key): the outcome is then what it was, "seen" (or the
 * refusal the binding's state gives). Anything else (another block, a
 * changed, revoked or expired key, a sender the key was never bound to)
 * takes the full path. rep->known counts the keys decided so,
 * rep->known_stored those of them the table decided.
 */
struct smp_harvest_memo;

#define SMP_HARVEST_MEMO_DEFAULT 4096

struct smp_harvest_memo *smp_harvest_memo_new(size_t max);
void smp_harvest_memo_free(struct smp_harvest_memo *m);
/* Blocks remembered, and lookups that decided a key. */
void smp_harvest_memo_stats(const struct smp_harvest_memo *m, size_t *n,
			    unsigned long *hits);

/*
 * The require_auth check: among the Authentication-Results values, only
 * those whose authserv-id equals authserv_id (ASCII case-insensitive) are
 * read (comments removed). dkim: a "dkim=pass" result whose header.d (or
 * the domain of header.i) is the sender's domain or a parent domain of it
 * (relaxed alignment; a dkim=pass for another domain does not count).
 * dmarc: a "dmarc=pass" result whose header.from, when present, is the
 * sender's domain. none: always true. False when authserv_id is empty.
 */
bool smp_harvest_auth_ok(enum smp_require_auth mode, const char *authserv_id,
			 const char *sender_domain,
			 const char *const *values, size_t n);

#endif
