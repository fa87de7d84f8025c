/* smp_keyring_copy.c - an SQLite keyring file copied into an open keyring
 * (see smp_keyring_copy.h). The file is read with plain SELECTs over the
 * columns every schema version has; everything is written through the
 * public keyring API, so the destination's own rules (normalisation,
 * sticky flags, locks) apply. */
#include "smp_keyring_copy.h"

#include "smp_address.h"

#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COPY_CHUNK 200   /* keys or addresses per transaction */

struct cp {
	sqlite3 *db;
	struct smp_keyring *dst;
	const char *path;        /* the real path */
	char subject[PATH_MAX + 8];
	char *err;
	size_t errlen;
	bool in_txn;
	unsigned in_chunk;
	struct smp_keyring_copied *out;
};

__attribute__((format(printf, 2, 3)))
static int cp_fail(struct cp *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int src_fail(struct cp *c, const char *what)
{
	return cp_fail(c, "cannot read %s from %s: %s", what, c->path,
		       sqlite3_errmsg(c->db));
}

static int dst_fail(struct cp *c, const char *what)
{
	return cp_fail(c, "cannot copy %s: %s", what,
		       smp_keyring_errmsg(c->dst));
}

/* Chunked transactions on the destination. */
static int chunk_step(struct cp *c)
{
	if (!c->in_txn) {
		if (smp_keyring_begin(c->dst) != 0)
			return dst_fail(c, "into the keyring");
		c->in_txn = true;
		c->in_chunk = 0;
	}
	return 0;
}

static int chunk_end(struct cp *c, bool force)
{
	if (!c->in_txn || (!force && ++c->in_chunk < COPY_CHUNK))
		return 0;
	c->in_txn = false;
	if (smp_keyring_commit(c->dst) != 0)
		return dst_fail(c, "into the keyring");
	return 0;
}

static void text_col(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* ---------------------------------------------------------------------- */

static int copy_keys(struct cp *c)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	if (sqlite3_prepare_v2(c->db, "SELECT fpr, material, algo, bits, "
			       "created, expires, revoked, blocked, "
			       "enc_keyids, updated FROM keys ORDER BY fpr",
			       -1, &st, NULL) != SQLITE_OK) {
		src_fail(c, "the keys");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct smp_key_rec k, have;
		int64_t bits = sqlite3_column_int64(st, 3);
		int r;

		memset(&k, 0, sizeof(k));
		text_col(st, 0, k.fpr, sizeof(k.fpr));
		k.material = (unsigned char *)sqlite3_column_blob(st, 1);
		k.material_len = (size_t)sqlite3_column_bytes(st, 1);
		text_col(st, 2, k.algo, sizeof(k.algo));
		k.bits = bits < 0 || bits > UINT_MAX ? 0 : (unsigned)bits;
		k.created = sqlite3_column_int64(st, 4);
		k.expires = sqlite3_column_int64(st, 5);
		k.revoked = sqlite3_column_int64(st, 6) != 0;
		k.blocked = sqlite3_column_int64(st, 7) != 0;
		text_col(st, 8, k.enc_keyids, sizeof(k.enc_keyids));
		k.updated = sqlite3_column_int64(st, 9);
		if (chunk_step(c) != 0)
			goto out;
		r = smp_keyring_key_get(c->dst, k.fpr, &have);
		if (r < 0) {
			dst_fail(c, "the keys");
			goto out;
		}
		if (r == 0) {
			/* kept, but the sticky flags come along */
			if ((k.revoked && !have.revoked) ||
			    (k.blocked && !have.blocked)) {
				have.revoked |= k.revoked;
				have.blocked |= k.blocked;
				if (smp_keyring_key_put(c->dst, &have) != 0) {
					smp_key_rec_clear(&have);
					dst_fail(c, "the keys");
					goto out;
				}
			}
			smp_key_rec_clear(&have);
			c->out->keys_present++;
		} else if (smp_keyring_key_put(c->dst, &k) != 0) {
			dst_fail(c, "the keys");
			goto out;
		} else {
			c->out->keys++;
		}
		if (chunk_end(c, false) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		src_fail(c, "the keys");
		goto out;
	}
	ret = chunk_end(c, true);
out:
	sqlite3_finalize(st);
	return ret;
}

static int copy_bindings(struct cp *c)
{
	sqlite3_stmt *st = NULL;
	char cur[SMP_ADDRESS_MAX + 1] = "";
	bool skip = false, bad = false;
	int rc, ret = -1;

	if (sqlite3_prepare_v2(c->db, "SELECT address, fpr, state, source, "
			       "first_seen, last_seen, msg_date, times_seen, "
			       "message_id, client_addr, self_encrypted FROM "
			       "bindings ORDER BY address, fpr", -1, &st,
			       NULL) != SQLITE_OK) {
		src_fail(c, "the bindings");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *addr = (const char *)sqlite3_column_text(st, 0);
		int state, source;
		int64_t times = sqlite3_column_int64(st, 7);
		struct smp_binding b;

		if (!addr || strlen(addr) > SMP_ADDRESS_MAX) {
			cp_fail(c, "cannot read the bindings from %s: an "
				"address is missing or too long", c->path);
			goto out;
		}
		if (strcmp(addr, cur) != 0) {
			struct smp_binding *have = NULL;
			size_t n = 0;

			/* an address at a time: its bindings in one chunk */
			if (cur[0] && chunk_end(c, false) != 0)
				goto out;
			snprintf(cur, sizeof(cur), "%s", addr);
			/* stored before smp_address_check() existed */
			bad = smp_address_check(cur) != SMP_ADDR_OK;
			if (!bad && chunk_step(c) != 0)
				goto out;
			if (!bad && smp_keyring_bindings_for(c->dst, cur, &have,
							     &n) != 0) {
				dst_fail(c, "the bindings");
				goto out;
			}
			smp_bindings_free(have, n);
			skip = n > 0;
			if (!bad)
				*(skip ? &c->out->addresses_kept
				       : &c->out->addresses) += 1;
		}
		if (bad) {
			c->out->not_addresses++;
			continue;
		}
		if (skip)
			continue;
		state = smp_bind_state_parse(
			(const char *)sqlite3_column_text(st, 2));
		source = smp_key_source_parse(
			(const char *)sqlite3_column_text(st, 3));
		if (state < 0 || source < 0) {
			cp_fail(c, "cannot read the bindings of %s from %s: an "
				"unknown state or source", cur, c->path);
			goto out;
		}
		memset(&b, 0, sizeof(b));
		b.address = cur;
		text_col(st, 1, b.fpr, sizeof(b.fpr));
		b.state = (enum smp_bind_state)state;
		b.source = (enum smp_key_source)source;
		b.first_seen = sqlite3_column_int64(st, 4);
		b.last_seen = sqlite3_column_int64(st, 5);
		b.msg_date = sqlite3_column_int64(st, 6);
		b.times_seen = times < 0 ? 0 : times > UINT_MAX ? UINT_MAX
								: (unsigned)times;
		b.message_id = (char *)sqlite3_column_text(st, 8);
		b.client_addr = (char *)sqlite3_column_text(st, 9);
		b.self_encrypted = sqlite3_column_int64(st, 10) != 0;
		if (smp_keyring_binding_put(c->dst, &b) != 0) {
			dst_fail(c, "the bindings");
			goto out;
		}
		c->out->bindings++;
	}
	if (rc != SQLITE_DONE) {
		src_fail(c, "the bindings");
		goto out;
	}
	ret = chunk_end(c, true);
out:
	sqlite3_finalize(st);
	return ret;
}

/* The last file event an earlier run copied: from its "migrated" events. */
static int copied_before(struct cp *c, int64_t *id)
{
	struct smp_event *e = NULL;
	size_t n = 0;

	*id = 0;
	if (smp_keyring_events_for(c->dst, c->subject, &e, &n) != 0)
		return dst_fail(c, "the history");
	for (size_t i = 0; i < n; i++) {
		long long v;
		if (strcmp(e[i].event, SMP_EVENT_MIGRATED) == 0 && e[i].detail &&
		    sscanf(e[i].detail, "through event %lld", &v) == 1 &&
		    v > *id)
			*id = v;
	}
	smp_events_free(e, n);
	return 0;
}

static int copy_events(struct cp *c)
{
	sqlite3_stmt *st = NULL;
	struct smp_event m;
	char detail[256];
	int rc, ret = -1;

	if (copied_before(c, &c->out->events_before) != 0)
		return -1;
	c->out->events_through = c->out->events_before;
	if (sqlite3_prepare_v2(c->db, "SELECT id, at, address, fpr, event, "
			       "detail, message_id FROM events WHERE id > ? "
			       "ORDER BY id", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, c->out->events_before) != SQLITE_OK) {
		src_fail(c, "the history");
		goto out;
	}
	if (smp_keyring_begin(c->dst) != 0) {
		dst_fail(c, "the history");
		goto out;
	}
	c->in_txn = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct smp_event e;

		memset(&e, 0, sizeof(e));
		e.at = sqlite3_column_int64(st, 1);
		e.address = (char *)sqlite3_column_text(st, 2);
		text_col(st, 3, e.fpr, sizeof(e.fpr));
		e.event = (char *)sqlite3_column_text(st, 4);
		e.detail = (char *)sqlite3_column_text(st, 5);
		e.message_id = (char *)sqlite3_column_text(st, 6);
		if (!e.event || !*e.event) {
			cp_fail(c, "cannot read the history from %s: event "
				"%lld has no name", c->path,
				(long long)sqlite3_column_int64(st, 0));
			goto out;
		}
		/* key-level events may carry an empty fingerprint */
		if (smp_keyring_event_add(c->dst, &e) != 0) {
			dst_fail(c, "the history");
			goto out;
		}
		c->out->events++;
		c->out->events_through = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		src_fail(c, "the history");
		goto out;
	}
	snprintf(detail, sizeof(detail), "through event %" PRId64 " of the "
		 "file: %lu keys, %lu bindings, %lu events copied",
		 c->out->events_through, c->out->keys, c->out->bindings,
		 c->out->events);
	memset(&m, 0, sizeof(m));
	m.address = c->subject;
	m.event = (char *)SMP_EVENT_MIGRATED;
	m.detail = detail;
	if (smp_keyring_event_add(c->dst, &m) != 0) {
		dst_fail(c, "the history");
		goto out;
	}
	c->in_txn = false;
	if (smp_keyring_commit(c->dst) != 0) {
		dst_fail(c, "the history");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* ---------------------------------------------------------------------- */

/* "file:PATH?mode=ro" with the octets a URI path cannot hold escaped. */
static int uri_path(char *out, size_t size, const char *path)
{
	size_t o = (size_t)snprintf(out, size, "file:");

	for (const char *p = path; *p; p++) {
		if (o + 4 >= size)
			return -1;
		if (*p == '%' || *p == '?' || *p == '#')
			o += (size_t)snprintf(out + o, size - o, "%%%02X",
					      (unsigned char)*p);
		else
			out[o++] = *p;
	}
	if (o + sizeof("?mode=ro") > size)
		return -1;
	memcpy(out + o, "?mode=ro", sizeof("?mode=ro"));
	return 0;
}

static int source_version(struct cp *c, int *v)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	*v = 0;
	if (sqlite3_prepare_v2(c->db, "SELECT MAX(version) FROM "
			       "schema_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		cp_fail(c, "cannot read %s: it is not a keyring database (%s)",
			c->path, sqlite3_errmsg(c->db));
		goto out;
	}
	*v = sqlite3_column_int(st, 0);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

int smp_keyring_copy_sqlite(const char *path, struct smp_keyring *dst,
			    struct smp_keyring_copied *out, char *err,
			    size_t errlen)
{
	struct smp_keyring_copied dummy;
	char real[PATH_MAX], uri[PATH_MAX * 3 + 32];
	struct cp c;
	int v, ret = -1;

	if (!out)
		out = &dummy;
	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.err = err;
	c.errlen = errlen;
	c.dst = dst;
	c.out = out;
	c.path = path;
	if (!path || !dst)
		return cp_fail(&c, "nothing to copy from or to");
	if (!realpath(path, real))
		return cp_fail(&c, "cannot read %s: %s", path, strerror(errno));
	c.path = real;
	snprintf(c.subject, sizeof(c.subject), "sqlite:%s", real);
	/* read-only: the copy never changes the file (no migration either) */
	if (uri_path(uri, sizeof(uri), real) != 0) {
		cp_fail(&c, "cannot read %s: the path is too long", real);
		goto out;
	}
	if (sqlite3_open_v2(uri, &c.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
			    NULL) != SQLITE_OK) {
		cp_fail(&c, "cannot read %s: %s", real,
			c.db ? sqlite3_errmsg(c.db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(c.db, 5000);
	/* one snapshot for everything read */
	if (sqlite3_exec(c.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		src_fail(&c, "the keyring");
		goto out;
	}
	if (source_version(&c, &v) != 0)
		goto out;
	if (v < 1 || v > smp_keyring_schema_version(dst)) {
		cp_fail(&c, "cannot copy %s: its schema version is %d, the "
			"keyring's %d (open the file once with this version "
			"of smpctl, or use a newer one)", real, v,
			smp_keyring_schema_version(dst));
		goto out;
	}
	if (copy_keys(&c) != 0 || copy_bindings(&c) != 0 ||
	    copy_events(&c) != 0)
		goto out;
	ret = 0;
out:
	if (c.in_txn)
		smp_keyring_rollback(dst);
	if (c.db) {
		sqlite3_exec(c.db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(c.db);
	}
	return ret;
}
