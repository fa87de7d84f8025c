/* smp_keyring.h - the keyring database (SPEC.md 4): keys, address
 * bindings, the event history and the replay log, behind one interface.
 *
 * One backend module per database (smp_keyring_sqlite.c now, PostgreSQL
 * later): the SQL and the schema are portable, and everything specific to
 * a database lives in its module. Every call returns 0 on success, 1 for
 * "not found" where that can happen, and -1 on a database error with the
 * message available from smp_keyring_errmsg(). Strings handed out are
 * malloc'd and freed by the *_clear() functions.
 *
 * Threads: one struct smp_keyring is one database connection and must not
 * be used by two threads at once (the SQLite connection is opened without
 * its own mutex). The daemon opens one per worker thread, or keeps a small
 * pool of them guarded by a mutex and holds one for a whole message (its
 * transaction). Any number of connections, in any number of processes
 * (the milter and smpctl), may use the same database at the same time:
 * every write runs in a transaction that takes the write lock up front
 * (BEGIN IMMEDIATE), waits up to 5 s for it and retries, so concurrent
 * writers queue instead of failing with "database is locked".
 *
 * Lists: a query that matches nothing returns 0 with *n = 0 and *out =
 * NULL. Addresses are normalised (smp_address_normalize) on the way in by
 * every function that takes one; fingerprints may be given in either case
 * and with spaces, and are stored and returned in upper-case hex.
 */
#ifndef SMP_KEYRING_H
#define SMP_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMP_FPR_MAX 65 /* 64 hex digits (v5/v6) + NUL; v4 uses 40 */
#define SMP_ADDRESS_MAX 1024 /* longest address smp_address_normalize takes */

/* Events the keyring records by itself; all others come from callers. */
#define SMP_EVENT_KEY_DELETED "key-deleted"
#define SMP_EVENT_BINDING_DELETED "binding-deleted"
#define SMP_EVENT_EVENTS_PRUNED "events-pruned"

/* keyring.events_keep: the default, and the least smp_keyring_prune
 * takes (the schema refuses to delete younger events), in seconds. */
#define SMP_KEYRING_EVENTS_KEEP_DAYS 400
#define SMP_KEYRING_EVENTS_KEEP_MIN 86400

enum smp_bind_state {
	SMP_BIND_ACTIVE = 0,
	SMP_BIND_CONFLICT,
	SMP_BIND_PINNED,
	SMP_BIND_BLOCKED,
	SMP_BIND_REVOKED,
};

/* Where a binding's key came from. The first three are harvest.sources
 * (mail we received); admin is smpctl keys pin/import; wkd and dane are
 * key discovery (the domain of the address published the key: a Web Key
 * Directory, DNS OPENPGPKEY records), never harvest sources. */
enum smp_key_source {
	SMP_SRC_SMP = 0,
	SMP_SRC_AUTOCRYPT,
	SMP_SRC_PGP_KEYS,
	SMP_SRC_ADMIN,
	SMP_SRC_WKD,
	SMP_SRC_DANE,
};
#define SMP_SRC_LAST SMP_SRC_DANE

/* "active", "conflict", ... and back; -1 for an unknown name. */
const char *smp_bind_state_name(enum smp_bind_state s);
int smp_bind_state_parse(const char *name);
const char *smp_key_source_name(enum smp_key_source s);
int smp_key_source_parse(const char *name);

struct smp_key_rec {
	char fpr[SMP_FPR_MAX];      /* upper-case hex */
	unsigned char *material;    /* minimal binary key (self-sigs only) */
	size_t material_len;
	char algo[32];              /* e.g. "rsa3072", "ed25519" */
	unsigned bits;
	int64_t created;            /* unix time */
	int64_t expires;            /* 0 = never */
	bool revoked;
	bool blocked;               /* smpctl keys block FPR */
	char enc_keyids[256];       /* encryption subkey IDs, space-separated */
	int64_t updated;
};

struct smp_binding {
	char *address;              /* local part exact, domain lower-case */
	char fpr[SMP_FPR_MAX];
	enum smp_bind_state state;
	enum smp_key_source source;
	int64_t first_seen, last_seen;
	int64_t msg_date;           /* newest message Date: seen (monotonic) */
	unsigned times_seen;
	char *message_id;           /* of the message it last came from */
	char *client_addr;
	bool self_encrypted;        /* key's subkey among the session keys */
};

struct smp_event {
	int64_t id;
	int64_t at;
	char *address;              /* may be NULL (key-level events) */
	char fpr[SMP_FPR_MAX];      /* may be "" */
	char *event;                /* "harvested", "refused", "conflict", ... */
	char *detail;               /* free text: the reason, the admin, ... */
	char *message_id;
};

struct smp_keyring_stats {
	unsigned long keys, addresses;
	unsigned long bindings[SMP_BIND_REVOKED + 1]; /* per state */
	unsigned long events, replay_entries;
	unsigned long discovery;    /* discovery cache entries */
};

/* What smp_keyring_prune removed. */
struct smp_keyring_pruned {
	unsigned long events;          /* event rows */
	unsigned long replay_entries;  /* replay log entries */
	int64_t events_before;         /* the cutoffs applied (unix time); */
	int64_t replay_before;         /* events_before 0: events kept */
};

struct smp_keyring;

/*
 * Opens (creating and migrating the schema when needed) a keyring.
 * backend "sqlite": target is the database file (WAL mode, busy timeout,
 * safe for the milter and smpctl at once). On error returns -1 with a
 * sentence in err.
 */
int smp_keyring_open(const char *backend, const char *target,
		     struct smp_keyring **out, char *err, size_t errlen);

/* smp_keyring_open_flags: a database that does not exist, or holds no
 * keyring schema yet (an empty file), is an error ("... does not exist" /
 * "... holds no keyring") instead of becoming a new, empty keyring. The
 * daemon opens a keyring it already had open this way: a file deleted
 * while it runs must not silently turn into an empty one. */
#define SMP_KEYRING_NO_CREATE 0x1u

int smp_keyring_open_flags(const char *backend, const char *target,
			   unsigned flags, struct smp_keyring **out, char *err,
			   size_t errlen);
/* True when this open created the keyring (a new file, or an empty one
 * that got the schema). */
bool smp_keyring_created(struct smp_keyring *kr);

/*
 * Closes the connection. One that smp_keyring_check() found unusable is
 * closed with care for whatever now lives at its path: its write-ahead
 * log is folded into the old file and emptied (or, when the file was
 * overwritten and SQLite cannot fold it in any more, removed), so that a
 * file later put at the path never sees pages of the old one. The daemon
 * closes every connection to the old file before it opens the new one
 * (smp-milter/keypool.c): the two would share the -wal and -shm files.
 */
void smp_keyring_close(struct smp_keyring *kr);
const char *smp_keyring_errmsg(struct smp_keyring *kr);
int smp_keyring_schema_version(struct smp_keyring *kr);

/*
 * Is the connection still usable? 0 when its database file is still the
 * one at its path and nothing said the file is damaged; -1 otherwise, with
 * one sentence naming the file in smp_keyring_errmsg():
 *   "keyring database P was deleted while in use"
 *   "keyring database P was replaced by another file while in use"
 *   "keyring database P is damaged: <why>" (a corruption, I/O or "not a
 *       database" error from SQLite, or stored values no keyring holds)
 * The answer comes from a stat() of the path against the open file, and
 * from the errors seen so far; it costs no query. Once -1, always -1:
 * close the connection and open it again (smp_keyring_open_flags with
 * SMP_KEYRING_NO_CREATE to refuse an empty new keyring).
 *
 * The same test runs by itself before every write transaction starts and
 * before it commits, so nothing is ever written into a deleted or
 * replaced file (the write fails with that sentence), and after every
 * SQLite error (whose message then says so).
 */
int smp_keyring_check(struct smp_keyring *kr);

/* One transaction per message (nothing is half-written). begin takes the
 * database's single write lock (waiting for it, see above) and every
 * other writer waits until commit or rollback: do the slow work (gpg,
 * parsing) before begin, and only the reads and writes inside. Outside
 * a transaction each write call is a transaction of its own. A failed
 * commit rolls back; rollback with nothing open does nothing and returns
 * 0; begin while one is open is an error; close rolls an open one back.
 * After a -1 inside a transaction, roll back. */
int smp_keyring_begin(struct smp_keyring *kr);
int smp_keyring_commit(struct smp_keyring *kr);
int smp_keyring_rollback(struct smp_keyring *kr);

/* Keys, by fingerprint. put inserts or replaces (a merge is the caller's
 * new material for the same fingerprint). revoked and blocked are sticky:
 * put can set them but never clears them (an old copy of a key must not
 * undo a revocation; only key_set_blocked unblocks). updated = 0: now.
 * delete removes the key and, with it, every binding of the key, and
 * records one SMP_EVENT_BINDING_DELETED event per binding and one
 * SMP_EVENT_KEY_DELETED event ("with N binding(s)"); 1 if no such key. */
int smp_keyring_key_get(struct smp_keyring *kr, const char *fpr,
			struct smp_key_rec *out);
int smp_keyring_key_put(struct smp_keyring *kr, const struct smp_key_rec *k);
int smp_keyring_key_delete(struct smp_keyring *kr, const char *fpr);
int smp_keyring_key_set_blocked(struct smp_keyring *kr, const char *fpr,
				bool blocked);
void smp_key_rec_clear(struct smp_key_rec *k);

/* Bindings of one address (all fingerprints, any state), newest first. */
int smp_keyring_bindings_for(struct smp_keyring *kr, const char *address,
			     struct smp_binding **out, size_t *n);
/* Bindings of one fingerprint (all addresses). */
int smp_keyring_bindings_of_key(struct smp_keyring *kr, const char *fpr,
				struct smp_binding **out, size_t *n);
/* All bindings, optionally only one state (state < 0: all), by address. */
int smp_keyring_bindings_list(struct smp_keyring *kr, int state,
			      struct smp_binding **out, size_t *n);
/* Insert or update the (address, fpr) binding; the key must be stored
 * first. An update keeps the stored first_seen and never lowers msg_date;
 * every other field is taken from b. last_seen = 0: now; first_seen = 0:
 * last_seen. set_state returns 1 when there is no such binding; delete
 * returns 1 when nothing was deleted and records an
 * SMP_EVENT_BINDING_DELETED event per binding removed. */
int smp_keyring_binding_put(struct smp_keyring *kr, const struct smp_binding *b);
int smp_keyring_binding_set_state(struct smp_keyring *kr, const char *address,
				  const char *fpr, enum smp_bind_state state);
int smp_keyring_binding_delete(struct smp_keyring *kr, const char *address,
			       const char *fpr /* NULL: all of the address */);
void smp_binding_clear(struct smp_binding *b);
void smp_bindings_free(struct smp_binding *b, size_t n);

/* The append-only history: the schema refuses every UPDATE, and every
 * DELETE of an event less than SMP_KEYRING_EVENTS_KEEP_MIN seconds old (by
 * the database's clock); rows leave only through smp_keyring_prune, oldest
 * first. add: at = 0 means now; id is assigned by the database. Lists are
 * in the order the events were added. events_of_key: the events naming
 * fpr. */
int smp_keyring_event_add(struct smp_keyring *kr, const struct smp_event *e);
int smp_keyring_events_for(struct smp_keyring *kr, const char *address,
			   struct smp_event **out, size_t *n);
int smp_keyring_events_of_key(struct smp_keyring *kr, const char *fpr,
			      struct smp_event **out, size_t *n);
void smp_events_free(struct smp_event *e, size_t n);

/*
 * Replay log (SPEC.md 2): records (digest, recipient) seen at now and says
 * whether it was already seen within window seconds. prune removes entries
 * older than now - window.
 * *seen is true when the pair was first recorded at t >= now - window; the
 * time of that first sighting is kept (a replay does not extend the
 * window). An entry older than the window counts as new and restarts at
 * now. The recipient is normalised when it is an address and taken as
 * given otherwise (RCPT TO:<postmaster>). One atomic statement: two
 * connections checking the same pair at once see exactly one "false".
 */
int smp_keyring_replay_check(struct smp_keyring *kr, const char *digest,
			     const char *recipient, int64_t now, int64_t window,
			     bool *seen);
int smp_keyring_replay_prune(struct smp_keyring *kr, int64_t now,
			     int64_t window);

/*
 * Applies keyring.events_keep and replay.window (smpctl keys prune, and the
 * daemon at most hourly), in one write transaction:
 * - the events recorded before now - events_keep are deleted (one indexed
 *   DELETE), except the newest event of all (largest id), which always
 *   stays so that no id is ever handed out twice; events_keep = 0 keeps
 *   every event; 0 < events_keep < SMP_KEYRING_EVENTS_KEEP_MIN is an
 *   error. When any were deleted, one
 *   SMP_EVENT_EVENTS_PRUNED event (no address; detail "N events before
 *   <UTC time>") records it, at now;
 * - the replay entries first seen before now - replay_window are deleted
 *   (as smp_keyring_replay_prune); replay_window < 0 leaves them alone.
 * now = 0: the current time. *out (may be NULL) gets the counts and the
 * cutoffs. Inside an open smp_keyring_begin() it is part of that
 * transaction.
 */
int smp_keyring_prune(struct smp_keyring *kr, int64_t now, int64_t events_keep,
		      int64_t replay_window, struct smp_keyring_pruned *out);

int smp_keyring_stats(struct smp_keyring *kr, struct smp_keyring_stats *st);

/*
 * The discovery cache (issue 11, doc/discovery.md): per address, the
 * outcome of the last key discovery, shared by every host on the keyring.
 *   status   "found" (fpr: the key it gave, required), "none" (nothing
 *            published) or "error" (the lookup failed; detail says how)
 *   method   "wkd", "dane" (the names of SMP_SRC_WKD, SMP_SRC_DANE) or
 *            "": which method answered
 *   origin   the URL or DNS name asked
 *   fetched  when the lookup was made
 *   expires  until when the answer is used (a refresh is due before it)
 *   detail   the error sentence, or why a published key was refused
 * get: 1 when the address has no entry; origin and detail are never NULL.
 * put: inserts or replaces the address's entry; the address must be one
 * mail address (as for bindings), another status or method is an error;
 * fetched = 0: now; NULL origin or detail: "". delete: 1 when there was
 * none. due: the entries of status (NULL: any) whose expires < before,
 * soonest first (then by address), at most limit (0: no limit): what a
 * refresher works through.
 */
struct smp_disc_entry {
	char *address;
	char status[8];             /* "found", "none", "error" */
	char method[8];             /* "wkd", "dane", "" */
	char *origin;
	char fpr[SMP_FPR_MAX];
	int64_t fetched, expires;
	char *detail;
};

int smp_keyring_disc_get(struct smp_keyring *kr, const char *address,
			 struct smp_disc_entry *out);
int smp_keyring_disc_put(struct smp_keyring *kr,
			 const struct smp_disc_entry *e);
int smp_keyring_disc_delete(struct smp_keyring *kr, const char *address);
int smp_keyring_disc_due(struct smp_keyring *kr, const char *status,
			 int64_t before, size_t limit,
			 struct smp_disc_entry **out, size_t *n);
void smp_disc_entry_clear(struct smp_disc_entry *e);
void smp_disc_entries_free(struct smp_disc_entry *e, size_t n);

/*
 * Known key blocks (issue 9, the harvest's second-level memo: see
 * smp_harvest_memo in smp_harvest.h): for a key block a harvest took or
 * saw, the SHA-256 of the block as a message carried it, its fingerprint,
 * the SHA-256 of the keyring's material for that key after the message,
 * until when that key can encrypt (0: no expiry) and when the block was
 * last seen. Digests are 64 hex digits, stored in lower case. Rows go
 * with their key (smp_keyring_key_delete), and nothing else refers to
 * them.
 * get: 1 when the block is unknown. put: inserts or updates by digest
 * (seen = 0: now; seen never goes back); the key must be stored first.
 * Keeps at most SMP_KEYRING_BLOCKS_PER_KEY rows per fingerprint, dropping
 * the least recently seen, in the same transaction.
 */
#define SMP_KEYRING_BLOCKS_PER_KEY 8

struct smp_known_block {
	char digest[65];
	char fpr[SMP_FPR_MAX];
	char material[65];
	int64_t usable_until;
	int64_t seen;
};

int smp_keyring_block_get(struct smp_keyring *kr, const char *digest,
			  struct smp_known_block *out);
int smp_keyring_block_put(struct smp_keyring *kr,
			  const struct smp_known_block *b);

/* Normalises an address for storage and lookup: the domain in lower case,
 * the local part exactly as given. malloc'd; NULL when not an address.
 * Surrounding white space and one pair of <> are removed; the split is at
 * the last '@' (a quoted local part may hold one); only ASCII letters of
 * the domain are lowered. NULL for: no '@', an empty local part or
 * domain, CR, LF or other control characters (TAB only inside the local
 * part), white space or <> in the domain, invalid UTF-8, or more than
 * SMP_ADDRESS_MAX octets. "Alice@Example.ORG" -> "Alice@example.org". */
char *smp_address_normalize(const char *addr);

#endif
