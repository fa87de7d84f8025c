/* smp_keyring_schema.h - private: the keyring schema, its migrations and
 * the statements, as portable SQL shared by every backend module.
 *
 * Included only by backend modules (the arrays are static and each backend
 * uses all of them).
 *
 * Portability rules kept here (SQLite 3.24+ and PostgreSQL 9.5+):
 * - types: TEXT, INTEGER (32 bit), BIGINT (unix times, counters), BLOB.
 *   PostgreSQL maps BLOB to BYTEA (its module substitutes the word in
 *   the DDL). Booleans are INTEGER 0/1 with a CHECK, not BOOLEAN, so the
 *   same statements bind and read them on both.
 * - upserts are INSERT ... ON CONFLICT (cols) DO UPDATE SET ..., which
 *   both speak. Never INSERT OR REPLACE: on SQLite it deletes the old row
 *   first, which would cascade to the key's bindings.
 * - no MAX(a, b)/GREATEST: CASE WHEN instead. Parameters whose type the
 *   statement cannot infer (in a SELECT list) are written CAST(? AS ...).
 * - placeholders are '?', in order; no statement has a '?' anywhere else,
 *   so the PostgreSQL module can rewrite them to $1, $2, ... mechanically.
 * - text is compared byte for byte (addresses are exact). SQLite's default
 *   BINARY collation does this; PostgreSQL needs the database in UTF8
 *   (smp_address_normalize refuses invalid UTF-8 for this reason) and
 *   ORDER BY ... COLLATE "C" to list in the same order.
 * What differs, and so lives in the per-backend part of a migration:
 * - events.id: SQLite "INTEGER PRIMARY KEY" (the rowid: assigned on
 *   insert as one more than the largest id; never reused because prune,
 *   the only way rows go, never deletes the row with the largest id);
 *   PostgreSQL
 *   "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY".
 * - append-only events: SQLite triggers with RAISE(ABORT); PostgreSQL a
 *   trigger function that raises an exception (and REVOKE UPDATE). Both
 *   refuse every UPDATE, and a DELETE of any row less than
 *   SMP_KR_EVENTS_MIN_AGE seconds old by the database's own clock (from
 *   version 2; version 1 refused every DELETE): only prune removes rows.
 * - transactions: SQLite "BEGIN IMMEDIATE" for writers (in the module);
 *   PostgreSQL "BEGIN" plus SELECT ... FOR UPDATE where it reads first.
 * - pragmas (WAL, synchronous, foreign_keys, busy timeout) are SQLite's.
 *
 * Migrations: an ordered list; at open every step newer than the stored
 * version is applied, all in one transaction, each step inserting its
 * version into schema_version. Never edit a released step: add one.
 */
#ifndef SMP_KEYRING_SCHEMA_H
#define SMP_KEYRING_SCHEMA_H

#include <stddef.h>

#include "smp_keyring.h"
#include "smp_keyring_backend.h"

#define SMP_KR_SCHEMA_VERSION 3

/* ---------------------------------------------------------------------- */
/* Version 1                                                              */

#define SMP_KR_V1_PORTABLE                                                    \
	"CREATE TABLE schema_version ("                                       \
	"  version INTEGER NOT NULL PRIMARY KEY,"                             \
	"  applied BIGINT NOT NULL"                                           \
	");"                                                                  \
	"CREATE TABLE keys ("                                                 \
	"  fpr        TEXT    NOT NULL PRIMARY KEY,"                          \
	"  material   BLOB    NOT NULL,"                                      \
	"  algo       TEXT    NOT NULL,"                                      \
	"  bits       INTEGER NOT NULL DEFAULT 0,"                            \
	"  created    BIGINT  NOT NULL DEFAULT 0,"                            \
	"  expires    BIGINT  NOT NULL DEFAULT 0,"                            \
	"  revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),"  \
	"  blocked    INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),"  \
	"  enc_keyids TEXT    NOT NULL DEFAULT '',"                           \
	"  updated    BIGINT  NOT NULL"                                       \
	");"                                                                  \
	"CREATE TABLE bindings ("                                             \
	"  address        TEXT    NOT NULL,"                                  \
	"  fpr            TEXT    NOT NULL"                                   \
	"                 REFERENCES keys (fpr) ON DELETE CASCADE,"           \
	"  state          TEXT    NOT NULL,"                                  \
	"  source         TEXT    NOT NULL,"                                  \
	"  first_seen     BIGINT  NOT NULL,"                                  \
	"  last_seen      BIGINT  NOT NULL,"                                  \
	"  msg_date       BIGINT  NOT NULL DEFAULT 0,"                        \
	"  times_seen     BIGINT  NOT NULL DEFAULT 0,"                        \
	"  message_id     TEXT,"                                              \
	"  client_addr    TEXT,"                                              \
	"  self_encrypted INTEGER NOT NULL DEFAULT 0"                         \
	"                 CHECK (self_encrypted IN (0, 1)),"                  \
	"  PRIMARY KEY (address, fpr)"                                        \
	");"                                                                  \
	"CREATE INDEX bindings_fpr ON bindings (fpr);"                        \
	"CREATE INDEX bindings_state ON bindings (state, address);"           \
	"CREATE TABLE replay ("                                               \
	"  digest    TEXT   NOT NULL,"                                        \
	"  recipient TEXT   NOT NULL,"                                        \
	"  seen      BIGINT NOT NULL,"                                        \
	"  PRIMARY KEY (digest, recipient)"                                   \
	");"                                                                  \
	"CREATE INDEX replay_seen ON replay (seen);"

/* events: all columns but id are portable; see the header comment. */
#define SMP_KR_EVENTS_COLUMNS                                                 \
	"  at         BIGINT NOT NULL,"                                       \
	"  address    TEXT,"                                                  \
	"  fpr        TEXT   NOT NULL DEFAULT '',"                            \
	"  event      TEXT   NOT NULL,"                                       \
	"  detail     TEXT,"                                                  \
	"  message_id TEXT"

#define SMP_KR_EVENTS_INDEXES                                                 \
	"CREATE INDEX events_address ON events (address, id);"                \
	"CREATE INDEX events_fpr ON events (fpr, id);"

#define SMP_KR_V1_SQLITE                                                      \
	"CREATE TABLE events ("                                               \
	"  id INTEGER PRIMARY KEY,"                                           \
	SMP_KR_EVENTS_COLUMNS                                                 \
	");"                                                                  \
	SMP_KR_EVENTS_INDEXES                                                 \
	"CREATE TRIGGER events_no_update BEFORE UPDATE ON events "            \
	"BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"           \
	"CREATE TRIGGER events_no_delete BEFORE DELETE ON events "            \
	"BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"

/* ---------------------------------------------------------------------- */
/* Version 2: pruning the event history (keyring.events_keep)             */

/* The youngest an event may be and still be deleted, in seconds: the
 * append-only trigger refuses to delete anything newer, whatever a caller
 * asks for (smp_keyring_prune refuses a shorter events_keep up front). */
#define SMP_KR_EVENTS_MIN_AGE 86400
#define SMP_KR_EVENTS_MIN_AGE_SQL "86400"

/* prune's "DELETE FROM events WHERE at < ?" walks this index. */
#define SMP_KR_V2_PORTABLE "CREATE INDEX events_at ON events (at);"

/* UPDATE stays refused; DELETE only of rows older than the minimum age.
 * PostgreSQL: the trigger function raises when TG_OP = 'UPDATE' or
 * OLD.at >= extract(epoch from now()) - SMP_KR_EVENTS_MIN_AGE. */
#define SMP_KR_V2_SQLITE                                                      \
	"DROP TRIGGER events_no_delete;"                                      \
	"CREATE TRIGGER events_no_delete BEFORE DELETE ON events "            \
	"WHEN OLD.at >= CAST(strftime('%s', 'now') AS INTEGER) - "            \
	SMP_KR_EVENTS_MIN_AGE_SQL " "                                         \
	"BEGIN SELECT RAISE(ABORT, 'events are append-only: only events "     \
	"older than a day can be pruned'); END;"

/* ---------------------------------------------------------------------- */
/* Version 3: the discovery cache and the known key blocks                */

/* discovery: the last key discovery's answer per address (issue 11);
 * known_blocks: key blocks a harvest took or saw, so that the same block
 * again is decided without crypto work after a restart and on every host
 * (issue 9). Both are caches: nothing else refers to them. The PostgreSQL
 * part gives them the grants the keys table has (see smp_keyring_pg.c). */
#define SMP_KR_V3_PORTABLE                                                    \
	"CREATE TABLE discovery ("                                            \
	"  address TEXT   NOT NULL PRIMARY KEY,"                              \
	"  status  TEXT   NOT NULL,"                                          \
	"  method  TEXT   NOT NULL DEFAULT '',"                               \
	"  origin  TEXT   NOT NULL DEFAULT '',"                               \
	"  fpr     TEXT   NOT NULL DEFAULT '',"                               \
	"  fetched BIGINT NOT NULL,"                                          \
	"  expires BIGINT NOT NULL,"                                          \
	"  detail  TEXT   NOT NULL DEFAULT ''"                                \
	");"                                                                  \
	"CREATE INDEX discovery_expires ON discovery (status, expires);"      \
	"CREATE TABLE known_blocks ("                                         \
	"  digest       TEXT   NOT NULL PRIMARY KEY,"                         \
	"  fpr          TEXT   NOT NULL"                                      \
	"               REFERENCES keys (fpr) ON DELETE CASCADE,"             \
	"  material     TEXT   NOT NULL,"                                     \
	"  usable_until BIGINT NOT NULL,"                                     \
	"  seen         BIGINT NOT NULL"                                      \
	");"                                                                  \
	"CREATE INDEX known_blocks_fpr ON known_blocks (fpr, seen);"

struct smp_kr_migration {
	int version;
	const char *portable;   /* run by every backend */
	const char *sqlite;     /* then the SQLite-only part */
};

static const struct smp_kr_migration smp_kr_migrations[] = {
	{1, SMP_KR_V1_PORTABLE, SMP_KR_V1_SQLITE},
	{2, SMP_KR_V2_PORTABLE, SMP_KR_V2_SQLITE},
	{3, SMP_KR_V3_PORTABLE, ""},
};

#define SMP_KR_N_MIGRATIONS \
	(sizeof(smp_kr_migrations) / sizeof(smp_kr_migrations[0]))

/* ---------------------------------------------------------------------- */
/* Statements                                                             */

/* Numbered by enum smp_kr_q (smp_keyring_backend.h). */

/* Column lists, in the order the backends read them. */
#define SMP_KR_KEY_COLS                                                       \
	"fpr, material, algo, bits, created, expires, revoked, blocked, "     \
	"enc_keyids, updated"
#define SMP_KR_BIND_COLS                                                      \
	"address, fpr, state, source, first_seen, last_seen, msg_date, "      \
	"times_seen, message_id, client_addr, self_encrypted"
#define SMP_KR_EVENT_COLS "id, at, address, fpr, event, detail, message_id"
#define SMP_KR_DISC_COLS                                                      \
	"address, status, method, origin, fpr, fetched, expires, detail"
#define SMP_KR_BLOCK_COLS "digest, fpr, material, usable_until, seen"

/* Events written for each binding a deletion removes: (at, detail, ...). */
#define SMP_KR_BIND_DELETED_EVENTS                                            \
	"INSERT INTO events (at, address, fpr, event, detail, message_id) "   \
	"SELECT CAST(? AS BIGINT), address, fpr, "                            \
	"'" SMP_EVENT_BINDING_DELETED "', "                                   \
	"CAST(? AS TEXT), NULL FROM bindings "

static const char *const smp_kr_sql[SMP_KR_Q__COUNT] = {
	[SMP_KR_Q_VERSION_GET] = "SELECT MAX(version) FROM schema_version",
	[SMP_KR_Q_VERSION_ADD] =
		"INSERT INTO schema_version (version, applied) VALUES (?, ?)",

	[SMP_KR_Q_KEY_GET] =
		"SELECT " SMP_KR_KEY_COLS " FROM keys WHERE fpr = ?",
	/* revoked and blocked are sticky: see smp_keyring.h */
	[SMP_KR_Q_KEY_PUT] =
		"INSERT INTO keys (" SMP_KR_KEY_COLS ") "
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
		"ON CONFLICT (fpr) DO UPDATE SET "
		"material = excluded.material, algo = excluded.algo, "
		"bits = excluded.bits, created = excluded.created, "
		"expires = excluded.expires, "
		"revoked = CASE WHEN keys.revoked = 1 OR excluded.revoked = 1 "
		"THEN 1 ELSE 0 END, "
		"blocked = CASE WHEN keys.blocked = 1 OR excluded.blocked = 1 "
		"THEN 1 ELSE 0 END, "
		"enc_keyids = excluded.enc_keyids, updated = excluded.updated",
	[SMP_KR_Q_KEY_DELETE] = "DELETE FROM keys WHERE fpr = ?",
	[SMP_KR_Q_KEY_DELETE_EVENTS] =
		SMP_KR_BIND_DELETED_EVENTS "WHERE fpr = ?",
	[SMP_KR_Q_KEY_SET_BLOCKED] =
		"UPDATE keys SET blocked = ?, updated = ? WHERE fpr = ?",

	[SMP_KR_Q_BIND_FOR] =
		"SELECT " SMP_KR_BIND_COLS " FROM bindings WHERE address = ? "
		"ORDER BY last_seen DESC, fpr",
	[SMP_KR_Q_BIND_OF_KEY] =
		"SELECT " SMP_KR_BIND_COLS " FROM bindings WHERE fpr = ? "
		"ORDER BY address",
	[SMP_KR_Q_BIND_ALL] =
		"SELECT " SMP_KR_BIND_COLS " FROM bindings "
		"ORDER BY address, fpr",
	[SMP_KR_Q_BIND_STATE] =
		"SELECT " SMP_KR_BIND_COLS " FROM bindings WHERE state = ? "
		"ORDER BY address, fpr",
	/* first_seen stays; msg_date never goes back (monotonic) */
	[SMP_KR_Q_BIND_PUT] =
		"INSERT INTO bindings (" SMP_KR_BIND_COLS ") "
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
		"ON CONFLICT (address, fpr) DO UPDATE SET "
		"state = excluded.state, source = excluded.source, "
		"last_seen = excluded.last_seen, "
		"msg_date = CASE WHEN excluded.msg_date > bindings.msg_date "
		"THEN excluded.msg_date ELSE bindings.msg_date END, "
		"times_seen = excluded.times_seen, "
		"message_id = excluded.message_id, "
		"client_addr = excluded.client_addr, "
		"self_encrypted = excluded.self_encrypted",
	[SMP_KR_Q_BIND_SET_STATE] =
		"UPDATE bindings SET state = ? WHERE address = ? AND fpr = ?",
	[SMP_KR_Q_BIND_DELETE_ONE] =
		"DELETE FROM bindings WHERE address = ? AND fpr = ?",
	[SMP_KR_Q_BIND_DELETE_ONE_EVENTS] =
		SMP_KR_BIND_DELETED_EVENTS "WHERE address = ? AND fpr = ?",
	[SMP_KR_Q_BIND_DELETE_ADDR] = "DELETE FROM bindings WHERE address = ?",
	[SMP_KR_Q_BIND_DELETE_ADDR_EVENTS] =
		SMP_KR_BIND_DELETED_EVENTS "WHERE address = ?",

	[SMP_KR_Q_EVENT_ADD] =
		"INSERT INTO events (at, address, fpr, event, detail, message_id) "
		"VALUES (?, ?, ?, ?, ?, ?)",
	[SMP_KR_Q_EVENTS_FOR] =
		"SELECT " SMP_KR_EVENT_COLS " FROM events WHERE address = ? "
		"ORDER BY id",
	[SMP_KR_Q_EVENTS_OF_KEY] =
		"SELECT " SMP_KR_EVENT_COLS " FROM events WHERE fpr = ? "
		"ORDER BY id",
	/* one indexed DELETE (events_at); the trigger refuses young rows.
	 * The newest row (largest id) always stays, so that the largest id
	 * never goes down and SQLite never hands out an id again. */
	[SMP_KR_Q_EVENTS_PRUNE] =
		"DELETE FROM events WHERE at < ? "
		"AND id < (SELECT MAX(id) FROM events)",

	/* One statement, so atomic: inserts a new pair, or restarts an
	 * expired one (seen < ?4 = now - window); a pair seen within the
	 * window is left alone and the statement changes no row. */
	[SMP_KR_Q_REPLAY_CHECK] =
		"INSERT INTO replay (digest, recipient, seen) VALUES (?, ?, ?) "
		"ON CONFLICT (digest, recipient) DO UPDATE SET "
		"seen = excluded.seen WHERE replay.seen < ?",
	[SMP_KR_Q_REPLAY_PRUNE] = "DELETE FROM replay WHERE seen < ?",

	[SMP_KR_Q_STATS_KEYS] = "SELECT COUNT(*) FROM keys",
	[SMP_KR_Q_STATS_ADDRESSES] =
		"SELECT COUNT(DISTINCT address) FROM bindings",
	[SMP_KR_Q_STATS_STATES] =
		"SELECT state, COUNT(*) FROM bindings GROUP BY state",
	[SMP_KR_Q_STATS_EVENTS] = "SELECT COUNT(*) FROM events",
	[SMP_KR_Q_STATS_REPLAY] = "SELECT COUNT(*) FROM replay",
	[SMP_KR_Q_STATS_DISCOVERY] = "SELECT COUNT(*) FROM discovery",

	[SMP_KR_Q_DISC_GET] =
		"SELECT " SMP_KR_DISC_COLS " FROM discovery WHERE address = ?",
	/* the last lookup's answer replaces the one before, whatever it was */
	[SMP_KR_Q_DISC_PUT] =
		"INSERT INTO discovery (" SMP_KR_DISC_COLS ") "
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
		"ON CONFLICT (address) DO UPDATE SET "
		"status = excluded.status, method = excluded.method, "
		"origin = excluded.origin, fpr = excluded.fpr, "
		"fetched = excluded.fetched, expires = excluded.expires, "
		"detail = excluded.detail",
	[SMP_KR_Q_DISC_DELETE] = "DELETE FROM discovery WHERE address = ?",
	/* (status, expires < before, limit); discovery_expires serves the
	 * first; the second, any status, reads the table in expiry order */
	[SMP_KR_Q_DISC_DUE] =
		"SELECT " SMP_KR_DISC_COLS " FROM discovery "
		"WHERE status = ? AND expires < ? "
		"ORDER BY expires, address LIMIT ?",
	[SMP_KR_Q_DISC_DUE_ANY] =
		"SELECT " SMP_KR_DISC_COLS " FROM discovery "
		"WHERE expires < ? ORDER BY expires, address LIMIT ?",

	[SMP_KR_Q_BLOCK_GET] =
		"SELECT " SMP_KR_BLOCK_COLS " FROM known_blocks WHERE digest = ?",
	/* seen never goes back (two hosts may write the same block) */
	[SMP_KR_Q_BLOCK_PUT] =
		"INSERT INTO known_blocks (" SMP_KR_BLOCK_COLS ") "
		"VALUES (?, ?, ?, ?, ?) "
		"ON CONFLICT (digest) DO UPDATE SET "
		"fpr = excluded.fpr, material = excluded.material, "
		"usable_until = excluded.usable_until, "
		"seen = CASE WHEN excluded.seen > known_blocks.seen "
		"THEN excluded.seen ELSE known_blocks.seen END",
	/* (fpr, fpr, how many stay): the most recently seen stay */
	[SMP_KR_Q_BLOCK_TRIM] =
		"DELETE FROM known_blocks WHERE fpr = ? AND digest NOT IN "
		"(SELECT digest FROM known_blocks WHERE fpr = ? "
		"ORDER BY seen DESC, digest LIMIT ?)",
};

#endif
