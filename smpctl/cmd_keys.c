/* cmd_keys.c - "smpctl keys ..." and "smpctl stats" (SPEC.md 6): query and
 * edit the keyring database. Every change is one transaction and leaves an
 * event in the history. */
#include <errno.h>
#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp_address.h"
#include "smp_armor.h"
#include "smp_config.h"
#include "smp_crypto.h"
#include "smp_gpg.h"
#include "smp_keyring.h"
#include "smp_packets.h"
#include "smpctl.h"

#define NOT_FOUND 67 /* EX_NOUSER: no such address or key */

static int db_error(struct smp_keyring *kr, const char *what)
{
	smpctl_error("%s: %s", what, smp_keyring_errmsg(kr));
	return EX_CONFIG;
}

static void fmt_time(int64_t t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		snprintf(buf, n, "-");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *time_json(int64_t t)
{
	char buf[32];

	if (t <= 0)
		return json_null();
	fmt_time(t, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *binding_json(const struct smp_binding *b)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:s?, s:s?, s:b}",
			 "address", b->address, "fingerprint", b->fpr, "state",
			 smp_bind_state_name(b->state), "source",
			 smp_key_source_name(b->source), "first_seen",
			 time_json(b->first_seen), "last_seen", time_json(b->last_seen),
			 "message_date", time_json(b->msg_date), "times_seen",
			 (json_int_t)b->times_seen, "message_id", b->message_id,
			 "client_address", b->client_addr, "self_encrypted",
			 b->self_encrypted);
}

static json_t *key_json(const struct smp_key_rec *k)
{
	return json_pack("{s:s, s:s, s:i, s:o, s:o, s:b, s:b, s:s, s:I}", "fingerprint",
			 k->fpr, "algorithm", k->algo, "bits", (int)k->bits,
			 "created", time_json(k->created), "expires",
			 time_json(k->expires), "revoked", k->revoked, "blocked",
			 k->blocked, "encryption_subkeys", k->enc_keyids, "size",
			 (json_int_t)k->material_len);
}

static void print_json(json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(doc);
}

static void print_binding_row(const struct smp_binding *b)
{
	char seen[32];

	fmt_time(b->last_seen, seen, sizeof(seen));
	printf("%-40s %-40s %-8s %-9s %s\n", b->address, b->fpr,
	       smp_bind_state_name(b->state), smp_key_source_name(b->source), seen);
}

/* Parses [--json] and [--state S] and positional arguments. */
struct args {
	bool json;
	int state;        /* -1: any */
	const char *pos[3];
	int npos;
	const char *address_opt;
};

static int parse_args(int argc, char **argv, bool allow_state, int maxpos,
		      struct args *a, const char *usage)
{
	memset(a, 0, sizeof(*a));
	a->state = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			a->json = true;
		} else if (allow_state && !strcmp(argv[i], "--state") && i + 1 < argc) {
			a->state = smp_bind_state_parse(argv[++i]);
			if (a->state < 0) {
				smpctl_error("unknown state %s (active, conflict, pinned, "
					     "blocked, revoked)", smpctl_quote(argv[i]));
				return EX_USAGE;
			}
		} else if (!strcmp(argv[i], "--address") && i + 1 < argc) {
			a->address_opt = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			smpctl_error("unknown option %s; usage: %s", smpctl_quote(argv[i]),
				     usage);
			return EX_USAGE;
		} else if (a->npos < maxpos) {
			a->pos[a->npos++] = argv[i];
		} else {
			smpctl_error("too many arguments; usage: %s", usage);
			return EX_USAGE;
		}
	}
	return 0;
}

static bool is_address(const char *s)
{
	return strchr(s, '@') != NULL;
}

static int cmd_list(struct smp_keyring *kr, const struct args *a)
{
	struct smp_binding *b = NULL;
	size_t n = 0;

	if (smp_keyring_bindings_list(kr, a->state, &b, &n) < 0)
		return db_error(kr, "cannot list bindings");
	if (a->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, binding_json(&b[i]));
		print_json(json_pack("{s:o}", "bindings", arr));
	} else {
		for (size_t i = 0; i < n; i++)
			print_binding_row(&b[i]);
	}
	smp_bindings_free(b, n);
	return 0;
}

static int cmd_show(struct smp_keyring *kr, const struct args *a)
{
	struct smp_binding *b = NULL;
	size_t n = 0;
	json_t *keys = json_array(), *binds = json_array();
	int rc = 0;

	if (is_address(a->pos[0]))
		rc = smp_keyring_bindings_for(kr, a->pos[0], &b, &n);
	else
		rc = smp_keyring_bindings_of_key(kr, a->pos[0], &b, &n);
	if (rc < 0) {
		json_decref(keys);
		json_decref(binds);
		return db_error(kr, "cannot look up bindings");
	}
	if (!is_address(a->pos[0]) && n == 0) {
		struct smp_key_rec k;
		if (smp_keyring_key_get(kr, a->pos[0], &k) == 0) {
			json_array_append_new(keys, key_json(&k));
			smp_key_rec_clear(&k);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct smp_key_rec k;
		bool dup = false;
		json_array_append_new(binds, binding_json(&b[i]));
		for (size_t j = 0; j < i; j++)
			dup |= !strcmp(b[j].fpr, b[i].fpr);
		if (!dup && smp_keyring_key_get(kr, b[i].fpr, &k) == 0) {
			json_array_append_new(keys, key_json(&k));
			smp_key_rec_clear(&k);
		}
	}
	smp_bindings_free(b, n);
	if (json_array_size(keys) == 0 && json_array_size(binds) == 0) {
		json_decref(keys);
		json_decref(binds);
		smpctl_error("no key or binding for %s in the keyring", a->pos[0]);
		return NOT_FOUND;
	}
	if (a->json) {
		print_json(json_pack("{s:s, s:o, s:o}", "query", a->pos[0], "bindings",
				     binds, "keys", keys));
		return 0;
	}
	for (size_t i = 0; i < json_array_size(binds); i++) {
		json_t *o = json_array_get(binds, i);
		/* what a sender wrote: escaped, never raw to the terminal */
		char *mid = smp_escape_field(
			json_string_value(json_object_get(o, "message_id")));

		if (json_is_string(json_object_get(o, "message_id")) && !mid) {
			json_decref(keys);
			json_decref(binds);
			smpctl_error("out of memory");
			return EX_SOFTWARE;
		}
		printf("binding  %s -> %s\n         state=%s source=%s seen=%lld times, "
		       "last %s, message date %s, self-encrypted=%s\n         "
		       "message-id %s from %s\n",
		       json_string_value(json_object_get(o, "address")),
		       json_string_value(json_object_get(o, "fingerprint")),
		       json_string_value(json_object_get(o, "state")),
		       json_string_value(json_object_get(o, "source")),
		       (long long)json_integer_value(json_object_get(o, "times_seen")),
		       json_is_string(json_object_get(o, "last_seen"))
			       ? json_string_value(json_object_get(o, "last_seen")) : "-",
		       json_is_string(json_object_get(o, "message_date"))
			       ? json_string_value(json_object_get(o, "message_date")) : "-",
		       json_is_true(json_object_get(o, "self_encrypted")) ? "yes" : "no",
		       mid ? mid : "-",
		       json_is_string(json_object_get(o, "client_address"))
			       ? json_string_value(json_object_get(o, "client_address")) : "-");
		free(mid);
	}
	for (size_t i = 0; i < json_array_size(keys); i++) {
		json_t *o = json_array_get(keys, i);
		printf("key      %s %s/%lld created %s expires %s%s%s\n",
		       json_string_value(json_object_get(o, "fingerprint")),
		       json_string_value(json_object_get(o, "algorithm")),
		       (long long)json_integer_value(json_object_get(o, "bits")),
		       json_is_string(json_object_get(o, "created"))
			       ? json_string_value(json_object_get(o, "created")) : "-",
		       json_is_string(json_object_get(o, "expires"))
			       ? json_string_value(json_object_get(o, "expires")) : "never",
		       json_is_true(json_object_get(o, "revoked")) ? " REVOKED" : "",
		       json_is_true(json_object_get(o, "blocked")) ? " BLOCKED" : "");
	}
	json_decref(keys);
	json_decref(binds);
	return 0;
}

/* The fingerprint to export for ADDRESS|FPR: a pinned, else active binding. */
static int resolve_fpr(struct smp_keyring *kr, const char *q, char *fpr)
{
	struct smp_binding *b = NULL;
	size_t n = 0;
	int best = -1;

	if (!is_address(q)) {
		snprintf(fpr, SMP_FPR_MAX, "%s", q);
		return 0;
	}
	if (smp_keyring_bindings_for(kr, q, &b, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (b[i].state == SMP_BIND_PINNED)
			best = (int)i;
		else if (b[i].state == SMP_BIND_ACTIVE && best < 0)
			best = (int)i;
	}
	if (best >= 0)
		snprintf(fpr, SMP_FPR_MAX, "%s", b[best].fpr);
	smp_bindings_free(b, n);
	return best >= 0 ? 0 : 1;
}

static int cmd_export(struct smp_keyring *kr, const struct args *a)
{
	char fpr[SMP_FPR_MAX];
	struct smp_key_rec k;
	char *armored;
	int rc = resolve_fpr(kr, a->pos[0], fpr);

	if (rc < 0)
		return db_error(kr, "cannot look up bindings");
	if (rc > 0) {
		smpctl_error("%s has no active or pinned key in the keyring", a->pos[0]);
		return NOT_FOUND;
	}
	rc = smp_keyring_key_get(kr, fpr, &k);
	if (rc < 0)
		return db_error(kr, "cannot read the key");
	if (rc > 0) {
		smpctl_error("no key %s in the keyring", fpr);
		return NOT_FOUND;
	}
	armored = smp_armor_encode(SMP_ARMOR_PUBLIC_KEY, k.material, k.material_len);
	smp_key_rec_clear(&k);
	if (!armored) {
		smpctl_error("out of memory");
		return EX_SOFTWARE;
	}
	fputs(armored, stdout);
	free(armored);
	return 0;
}

static int add_event(struct smp_keyring *kr, const char *address, const char *fpr,
		     const char *event)
{
	struct smp_event e = {0};

	e.address = (char *)address;
	snprintf(e.fpr, sizeof(e.fpr), "%s", fpr ? fpr : "");
	e.event = (char *)event;
	e.detail = (char *)"by smpctl";
	return smp_keyring_event_add(kr, &e);
}

/* Runs fn inside one transaction. */
static int in_tx(struct smp_keyring *kr, const char *what,
		 int (*fn)(struct smp_keyring *, const struct args *),
		 const struct args *a)
{
	int rc;

	if (smp_keyring_begin(kr) < 0)
		return db_error(kr, what);
	rc = fn(kr, a);
	if (rc != 0) {
		smp_keyring_rollback(kr);
		return rc < 0 ? db_error(kr, what) : rc;
	}
	if (smp_keyring_commit(kr) < 0)
		return db_error(kr, what);
	return 0;
}

/* Pins address to key k: the pinned one is used, other active or
 * pinned keys of the address go to conflict. */
static int pin_address(struct smp_keyring *kr, const char *address,
		       const struct smp_key_rec *kp, enum smp_key_source source,
		       const char *event)
{
	struct smp_binding *b = NULL, nb;
	size_t n = 0;
	bool found = false;
	int rc = 0;
	const struct smp_key_rec k = *kp;

	if (smp_keyring_bindings_for(kr, address, &b, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(b[i].fpr, k.fpr))
			found = true;
	/* other keys of the address stop being used: the pinned one wins */
	for (size_t i = 0; i < n && rc == 0; i++)
		if (strcmp(b[i].fpr, k.fpr) &&
		    (b[i].state == SMP_BIND_ACTIVE || b[i].state == SMP_BIND_PINNED))
			rc = smp_keyring_binding_set_state(kr, address, b[i].fpr,
							   SMP_BIND_CONFLICT);
	smp_bindings_free(b, n);
	if (rc == 0 && found) {
		rc = smp_keyring_binding_set_state(kr, address, k.fpr, SMP_BIND_PINNED);
	} else if (rc == 0) {
		memset(&nb, 0, sizeof(nb));
		nb.address = (char *)address;
		snprintf(nb.fpr, sizeof(nb.fpr), "%s", k.fpr);
		nb.state = SMP_BIND_PINNED;
		nb.source = source;
		nb.times_seen = 1;
		rc = smp_keyring_binding_put(kr, &nb);
	}
	if (rc == 0)
		rc = add_event(kr, address, k.fpr, event);
	return rc;
}

static int do_pin(struct smp_keyring *kr, const struct args *a)
{
	struct smp_key_rec k;
	int rc = smp_keyring_key_get(kr, a->pos[1], &k);

	if (rc < 0)
		return -1;
	if (rc > 0) {
		smpctl_error("no key %s in the keyring (import it first)", a->pos[1]);
		return NOT_FOUND;
	}
	if (k.blocked) {
		smpctl_error("key %s is blocked; unblock it first", k.fpr);
		smp_key_rec_clear(&k);
		return EX_DATAERR;
	}
	rc = pin_address(kr, a->pos[0], &k, SMP_SRC_ADMIN, "pinned");
	smp_key_rec_clear(&k);
	return rc;
}

static int set_key_blocked(struct smp_keyring *kr, const char *fpr, bool blocked)
{
	struct smp_binding *b = NULL;
	size_t n = 0;
	int rc = smp_keyring_key_set_blocked(kr, fpr, blocked);

	if (rc != 0)
		return rc;
	if (smp_keyring_bindings_of_key(kr, fpr, &b, &n) < 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (blocked)
			rc = smp_keyring_binding_set_state(kr, b[i].address, b[i].fpr,
							   SMP_BIND_BLOCKED);
		else if (b[i].state == SMP_BIND_BLOCKED)
			/* back, but not trusted blindly: an admin pins it */
			rc = smp_keyring_binding_set_state(kr, b[i].address, b[i].fpr,
							   SMP_BIND_CONFLICT);
	}
	smp_bindings_free(b, n);
	if (rc == 0)
		rc = add_event(kr, NULL, fpr, blocked ? "blocked" : "unblocked");
	return rc;
}

static int do_block(struct smp_keyring *kr, const struct args *a)
{
	int rc = set_key_blocked(kr, a->pos[0], true);
	if (rc > 0) {
		smpctl_error("no key %s in the keyring", a->pos[0]);
		return NOT_FOUND;
	}
	return rc;
}

static int do_unblock(struct smp_keyring *kr, const struct args *a)
{
	int rc = set_key_blocked(kr, a->pos[0], false);
	if (rc > 0) {
		smpctl_error("no key %s in the keyring", a->pos[0]);
		return NOT_FOUND;
	}
	return rc;
}

static int do_delete(struct smp_keyring *kr, const struct args *a)
{
	int rc;

	if (is_address(a->pos[0]))
		rc = smp_keyring_binding_delete(kr, a->pos[0], NULL);
	else
		rc = smp_keyring_key_delete(kr, a->pos[0]);
	if (rc > 0) {
		smpctl_error("no key or binding for %s in the keyring", a->pos[0]);
		return NOT_FOUND;
	}
	return rc; /* the keyring records the deletion events itself */
}

static int cmd_history(struct smp_keyring *kr, const struct args *a)
{
	struct smp_event *e = NULL;
	struct smp_binding *b = NULL;
	size_t n = 0, nb = 0;
	char at[32], first[32];
	char *norm = smp_address_normalize(a->pos[0]);
	int rc = 0;

	if (smp_keyring_events_for(kr, a->pos[0], &e, &n) < 0) {
		free(norm);
		return db_error(kr, "cannot read the history");
	}
	/* "seen" is no event: how often and when last, from the bindings */
	if (norm && smp_keyring_bindings_for(kr, norm, &b, &nb) < 0) {
		free(norm);
		smp_events_free(e, n);
		return db_error(kr, "cannot read the history");
	}
	free(norm);
	if (a->json) {
		json_t *arr = json_array(), *barr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(
				arr, json_pack("{s:I, s:o, s:s?, s:s, s:s, s:s?, s:s?}", "id",
					       (json_int_t)e[i].id, "at", time_json(e[i].at),
					       "address", e[i].address, "fingerprint",
					       e[i].fpr, "event", e[i].event, "detail",
					       e[i].detail, "message_id", e[i].message_id));
		for (size_t i = 0; i < nb; i++)
			json_array_append_new(barr, binding_json(&b[i]));
		print_json(json_pack("{s:s, s:o, s:o}", "address", a->pos[0], "events", arr,
				     "bindings", barr));
	} else {
		/* Message-IDs are what senders wrote: escaped, never raw */
		for (size_t i = 0; i < n && rc == 0; i++) {
			char *mid = smp_escape_field(e[i].message_id);

			if (e[i].message_id && !mid) {
				rc = EX_SOFTWARE;
				break;
			}
			fmt_time(e[i].at, at, sizeof(at));
			printf("%s %-10s %-40s %s%s%s\n", at, e[i].event,
			       e[i].fpr[0] ? e[i].fpr : "-", e[i].detail ? e[i].detail : "",
			       mid ? " " : "", mid ? mid : "");
			free(mid);
		}
		for (size_t i = 0; i < nb && rc == 0; i++) {
			char *mid = smp_escape_field(b[i].message_id);

			if (b[i].message_id && !mid) {
				rc = EX_SOFTWARE;
				break;
			}
			fmt_time(b[i].last_seen, at, sizeof(at));
			fmt_time(b[i].first_seen, first, sizeof(first));
			printf("%s %-10s %-40s %u time%s since %s, now %s%s%s\n", at, "seen",
			       b[i].fpr, b[i].times_seen, b[i].times_seen == 1 ? "" : "s",
			       first, smp_bind_state_name(b[i].state),
			       mid ? " " : "", mid ? mid : "");
			free(mid);
		}
		if (rc)
			smpctl_error("out of memory");
	}
	smp_bindings_free(b, nb);
	smp_events_free(e, n);
	return rc;
}

/*
 * Reads a key file: binary OpenPGP (its first octet looks like a packet
 * header), or armored: one or more PGP PUBLIC KEY BLOCKs and nothing else
 * but white space before, between and after them. The octets of all blocks,
 * one after the other, are the keys to import, as a binary file of those
 * keys would be. Anything else in an armored file is an error naming the
 * file and the line (exit 65): a key file with text around its blocks may
 * not be what the administrator meant to import.
 */
static int read_key_file(const char *path, unsigned char **out, size_t *outlen)
{
	gchar *text = NULL;
	gsize len = 0;
	GError *gerr = NULL;
	size_t at;

	if (!g_file_get_contents(path, &text, &len, &gerr)) {
		smpctl_error("cannot read %s: %s", path, gerr->message);
		g_error_free(gerr);
		return EX_NOINPUT;
	}
	if (!smp_pkt_looks_binary((const unsigned char *)text, len) &&
	    smp_armor_find(text, len, &at)) {
		struct smp_armor_all a;
		enum smp_armor_status st = smp_armor_decode_all(
			text, len, SMP_ARMOR_PUBLIC_KEY, 4 << 20, &a);

		g_free(text);
		switch (st) {
		case SMP_ARMOR_OK:
			*out = a.data;
			*outlen = a.len;
			return 0;
		case SMP_ARMOR_ENOMEM:
			smpctl_error("out of memory reading %s", path);
			return EX_SOFTWARE;
		case SMP_ARMOR_ETEXT:
			smpctl_error("%s: line %u: text outside the PGP PUBLIC KEY "
				     "BLOCKs; a key file holds those blocks and white "
				     "space only", path, a.err_line);
			break;
		case SMP_ARMOR_ETYPE:
			if (a.err_type == SMP_ARMOR_PRIVATE_KEY)
				smpctl_error("%s: line %u: a PGP PRIVATE KEY BLOCK: secret "
					     "key material; import only public keys",
					     path, a.err_line);
			else
				smpctl_error("%s: line %u: not a PGP PUBLIC KEY BLOCK",
					     path, a.err_line);
			break;
		default:
			smpctl_error("%s: line %u: %s", path, a.err_line,
				     smp_armor_strerror(st));
		}
		return EX_DATAERR;
	}
	*out = malloc(len ? len : 1);
	if (!*out) {
		g_free(text);
		smpctl_error("out of memory reading %s", path);
		return EX_SOFTWARE;
	}
	memcpy(*out, text, len);
	*outlen = len;
	g_free(text);
	return 0;
}


static void fill_key_rec(struct smp_key_rec *k, const struct smp_key_info *ki)
{
	size_t used = 0;

	memset(k, 0, sizeof(*k));
	snprintf(k->fpr, sizeof(k->fpr), "%s", ki->fpr);
	snprintf(k->algo, sizeof(k->algo), "%s", ki->algo);
	k->bits = ki->bits;
	k->created = ki->created;
	k->expires = ki->expires;
	k->revoked = ki->revoked;
	for (size_t i = 0; i < ki->nsubkeys; i++) {
		if (!ki->subkeys[i].can_encrypt || used + 18 > sizeof(k->enc_keyids))
			continue;
		used += (size_t)snprintf(k->enc_keyids + used, sizeof(k->enc_keyids) - used,
					 "%s%s", used ? " " : "", ki->subkeys[i].keyid);
	}
}

/*
 * The material of one key to import: the key block blk merged
 * (smp_crypto_merge: self-signatures only) into what the keyring holds for
 * it, with the user ID of each address in addrs[0..n) (kept[i] says which
 * the key had). 0 with *k filled (material set) and *nkept > 0; 1 when no
 * address was taken; -1 on an engine failure (said), -2 when the keyring
 * cannot be read.
 */
static int import_material(struct smp_keyring *kr, struct smp_crypto *c,
			   const char *file, const unsigned char *blk, size_t len,
			   const char *fpr, const char *const *addrs, size_t n,
			   bool *kept, size_t *nkept, struct smp_key_rec *k)
{
	struct smp_key_rec old;
	struct smp_key_info info;
	void *cur = NULL;
	size_t curlen = 0;
	int r, have_old;

	memset(&info, 0, sizeof(info));
	*nkept = 0;
	have_old = smp_keyring_key_get(kr, fpr, &old);
	if (have_old < 0)
		return -2;
	for (size_t i = 0; i < n; i++) {
		void *next = NULL;
		size_t nlen = 0;
		struct smp_key_info ni;
		const void *base = cur ? cur : have_old == 0 ? old.material : NULL;
		size_t blen = cur ? curlen : have_old == 0 ? old.material_len : 0;

		kept[i] = false;
		r = smp_crypto_merge(c, base, blen, blk, len, addrs[i], &next, &nlen,
				     &ni);
		if (r < 0) {
			smpctl_error("%s: key %s: %s", file, fpr, smp_crypto_errmsg(c));
			free(cur);
			smp_key_info_clear(&info);
			if (have_old == 0)
				smp_key_rec_clear(&old);
			return -1;
		}
		if (r > 0)
			continue; /* the key has no valid user ID for it */
		free(cur);
		cur = next;
		curlen = nlen;
		smp_key_info_clear(&info);
		info = ni;
		kept[i] = true;
		(*nkept)++;
	}
	if (have_old == 0)
		smp_key_rec_clear(&old);
	if (!cur)
		return 1;
	fill_key_rec(k, &info);
	k->material = cur;
	k->material_len = curlen;
	smp_key_info_clear(&info);
	return 0;
}

/* keys import FILE [--address A]: source=admin, state=pinned. The key is
 * read with the configured crypto engine and stored minimal: self-
 * signatures only, the user IDs of the pinned addresses, the newest usable
 * encryption subkey (smp_crypto_merge), merged into what was stored. */
static int cmd_import(struct smp_keyring *kr, const struct args *a)
{
	struct smp_key_info *keys = NULL;
	struct smp_keyblock *blocks = NULL;
	struct smp_crypto *c = NULL;
	unsigned char *data = NULL;
	size_t len = 0, n = 0, nblocks = 0, bound = 0;
	int rc = read_key_file(a->pos[0], &data, &len);

	if (rc)
		return rc;
	c = smpctl_open_crypto();
	if (!c) {
		rc = EX_CONFIG;
		goto out;
	}
	if (smp_crypto_inspect_all(c, data, len, &keys, &n) < 0) {
		smpctl_error("%s: the %s crypto engine cannot read the key: %s", a->pos[0],
			     smp_crypto_engine_name(c), smp_crypto_errmsg(c));
		rc = EX_DATAERR;
		goto out;
	}
	if (n == 0 || smp_keyblock_split(data, len, &blocks, &nblocks) != 0) {
		smpctl_error("%s holds no OpenPGP key", a->pos[0]);
		rc = EX_DATAERR;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (keys[i].secret || keys[i].block >= nblocks) {
			smpctl_error("%s holds secret key material; import only public keys",
				     a->pos[0]);
			rc = EX_DATAERR;
			goto out;
		}
	if (smp_keyring_begin(kr) < 0) {
		rc = db_error(kr, "cannot change the keyring");
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct smp_keyblock *b = &blocks[keys[i].block];
		const char **addrs = calloc(keys[i].nuids + 1, sizeof(*addrs));
		bool *kept = calloc(keys[i].nuids + 1, sizeof(*kept));
		size_t na = 0, nkept = 0;
		struct smp_key_rec k;
		int r;

		memset(&k, 0, sizeof(k));
		if (!addrs || !kept) {
			free(addrs);
			free(kept);
			smpctl_error("out of memory");
			rc = EX_SOFTWARE;
			break;
		}
		if (a->address_opt) {
			addrs[na++] = a->address_opt;
		} else {
			for (size_t u = 0; u < keys[i].nuids; u++) {
				const char *email = keys[i].uids[u].email;
				enum smp_address_status ast;
				bool dup = false;

				if (!email || !*email || keys[i].uids[u].revoked ||
				    keys[i].uids[u].invalid)
					continue;
				ast = smp_address_check(email);
				if (ast != SMP_ADDR_OK) {
					smpctl_error("%s: key %s: user ID email %s is not a mail "
						     "address (%s); not pinned", a->pos[0],
						     keys[i].fpr, smpctl_quote(email),
						     smp_address_strerror(ast));
					continue;
				}
				for (size_t j = 0; j < na && !dup; j++)
					dup = strcmp(addrs[j], email) == 0;
				if (!dup)
					addrs[na++] = email;
			}
		}
		r = na ? import_material(kr, c, a->pos[0], data + b->off, b->len,
					 keys[i].fpr, addrs, na, kept, &nkept, &k)
		       : 1;
		if (r == -2) {
			rc = -1;
		} else if (r < 0) {
			rc = EX_SOFTWARE;
		} else if (r > 0) {
			/* no user ID of this key for the address(es) */
		} else if (smp_keyring_key_put(kr, &k) < 0) {
			rc = -1;
		} else {
			for (size_t j = 0; j < na && rc == 0; j++) {
				if (!kept[j])
					continue;
				rc = pin_address(kr, addrs[j], &k, SMP_SRC_ADMIN, "imported");
				bound += rc == 0;
			}
		}
		smp_key_rec_clear(&k);
		free(addrs);
		free(kept);
	}
	if (rc == 0 && bound == 0) {
		smpctl_error("%s: no key has a user ID %s%s", a->pos[0],
			     a->address_opt ? "for " : "with an email address",
			     a->address_opt ? a->address_opt : "");
		rc = EX_DATAERR;
	}
	if (rc != 0) {
		smp_keyring_rollback(kr);
		if (rc < 0)
			rc = db_error(kr, "cannot import");
		goto out;
	}
	if (smp_keyring_commit(kr) < 0) {
		rc = db_error(kr, "cannot import");
		goto out;
	}
	printf("%s: %zu key%s, %zu address%s pinned\n", a->pos[0], n, n == 1 ? "" : "s",
	       bound, bound == 1 ? "" : "es");
out:
	smp_key_infos_free(keys, n);
	free(blocks);
	smp_crypto_close(c);
	free(data);
	return rc;
}

/* keys rebuild: the gnupg engine's GnuPG home regenerated from the keyring.
 * With crypto.engine = rnp nothing reads a GnuPG home; the same command
 * then writes one at gnupg_home as an export for inspection with gpg
 * (gpg --homedir DIR --list-keys), and says so on stderr. */
static int cmd_rebuild(struct smp_keyring *kr, const struct args *a)
{
	const struct smp_config *cfg = smpctl_config();
	struct smp_gpg *g = NULL;
	size_t nkeys = 0;
	char err[512];

	(void)a;
	if (!cfg)
		return EX_CONFIG;
	if (smp_gpg_open(cfg->gnupg_home, &g, err, sizeof(err)) < 0) {
		smpctl_error("%s", err);
		return EX_CONFIG;
	}
	if (smp_gpg_rebuild(g, kr, &nkeys) < 0) {
		smpctl_error("cannot rebuild the GnuPG cache in %s: %s", smp_gpg_home(g),
			     smp_gpg_errmsg(g));
		smp_gpg_close(g);
		return EX_SOFTWARE;
	}
	printf("%s: %zu key%s imported from the keyring\n", smp_gpg_home(g), nkeys,
	       nkeys == 1 ? "" : "s");
	if (strcmp(cfg->crypto_engine, "gnupg") != 0)
		fprintf(stderr, "smpctl: note: crypto.engine = %s reads keys from the keyring "
				"only; %s is an export for inspection with gpg, the milter "
				"does not use it\n",
			cfg->crypto_engine, smp_gpg_home(g));
	smp_gpg_close(g);
	return 0;
}

/* Longest fingerprint argument: "0x", 64 hex digits, spaces between. */
#define FPR_ARG_MAX 160

/* Shaped like a fingerprint: 32, 40 or 64 hex digits, maybe spaced (as gpg
 * prints them) or 0x-prefixed. Bounded: a huge argument is not read. */
static bool fpr_arg_ok(const char *q)
{
	size_t hex = 0, len = strnlen(q, FPR_ARG_MAX + 1);

	if (len > FPR_ARG_MAX)
		return false;
	if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X'))
		q += 2;
	for (; *q; q++) {
		if (g_ascii_isxdigit(*q))
			hex++;
		else if (*q != ' ')
			return false;
	}
	return hex == 32 || hex == 40 || hex == 64;
}

/*
 * The ADDRESS, FPR or ADDRESS|FPR argument q of "keys cmd": an argument with
 * an '@' must pass smp_address_check(), one without must be a fingerprint.
 * Anything else is a data error (65, SPEC 6), reported as one sentence that
 * quotes q safely; nothing reaches the keyring.
 */
static int check_arg(const char *cmd, const char *q, bool want_address, bool want_fpr)
{
	enum smp_address_status st;

	if (want_address && strchr(q, '@')) {
		st = smp_address_check(q);
		if (st == SMP_ADDR_OK)
			return 0;
		smpctl_error("keys %s: %s is not a mail address: %s", cmd, smpctl_quote(q),
			     smp_address_strerror(st));
		return EX_DATAERR;
	}
	if (want_fpr && fpr_arg_ok(q))
		return 0;
	if (want_address && want_fpr)
		smpctl_error("keys %s: %s is neither a mail address nor a key fingerprint "
			     "(32, 40 or 64 hex digits)", cmd, smpctl_quote(q));
	else if (want_fpr)
		smpctl_error("keys %s: %s is not a key fingerprint (32, 40 or 64 hex "
			     "digits)", cmd, smpctl_quote(q));
	else
		smpctl_error("keys %s: %s is not a mail address: %s", cmd, smpctl_quote(q),
			     smp_address_strerror(smp_address_check(q)));
	return EX_DATAERR;
}

/* keys prune: keyring.events_keep and replay.window, now. */
static int cmd_prune(struct smp_keyring *kr, const struct args *a)
{
	const struct smp_config *cfg = smpctl_config();
	struct smp_keyring_pruned p;
	char ev[32], rp[32];

	if (smp_keyring_prune(kr, 0, (int64_t)cfg->keyring_events_keep * 86400,
			      cfg->replay_window, &p) < 0)
		return db_error(kr, "cannot prune the keyring");
	if (a->json) {
		print_json(json_pack("{s:I, s:I, s:o, s:I, s:o, s:I}", "events",
				     (json_int_t)p.events, "events_keep_days",
				     (json_int_t)cfg->keyring_events_keep, "events_before",
				     time_json(p.events_before), "replay_entries",
				     (json_int_t)p.replay_entries, "replay_before",
				     time_json(p.replay_before), "replay_window",
				     (json_int_t)cfg->replay_window));
		return 0;
	}
	fmt_time(p.events_before, ev, sizeof(ev));
	fmt_time(p.replay_before, rp, sizeof(rp));
	if (cfg->keyring_events_keep > 0)
		printf("events: %lu removed (recorded before %s; events_keep = %ld days)\n",
		       p.events, ev, cfg->keyring_events_keep);
	else
		printf("events: none removed (events_keep = 0 keeps every event)\n");
	printf("replay log: %lu entr%s removed (first seen before %s; replay.window = %ld s)\n",
	       p.replay_entries, p.replay_entries == 1 ? "y" : "ies", rp, cfg->replay_window);
	return 0;
}

static const char keys_usage[] =
	"smpctl keys list [--state S] [--json] | show ADDRESS|FPR [--json] | "
	"export ADDRESS|FPR | pin ADDRESS FPR | block FPR | unblock FPR | "
	"delete ADDRESS|FPR | history ADDRESS [--json] | import FILE [--address A] | "
	"rebuild | prune [--json] | refresh [ADDRESS] [--json] | "
	"migrate --from sqlite:PATH";

int smpctl_cmd_keys(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;
		bool state, writes;
		int (*run)(struct smp_keyring *, const struct args *);
	} subs[] = {
		{"list", 0, true, false, cmd_list},
		{"show", 1, false, false, cmd_show},
		{"export", 1, false, false, cmd_export},
		{"pin", 2, false, true, do_pin},
		{"block", 1, false, true, do_block},
		{"unblock", 1, false, true, do_unblock},
		{"delete", 1, false, true, do_delete},
		{"history", 1, false, false, cmd_history},
		{"import", 1, false, false, cmd_import},
		{"rebuild", 0, false, false, cmd_rebuild},
		{"prune", 0, false, false, cmd_prune},
	};
	struct smp_keyring *kr;
	struct args a;
	int rc;

	if (argc < 2) {
		smpctl_error("keys needs a subcommand; usage: %s", keys_usage);
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "migrate"))
		return smpctl_cmd_keys_migrate(argc - 1, argv + 1);
	if (!strcmp(argv[1], "refresh"))
		return smpctl_cmd_keys_refresh(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name))
			continue;
		rc = parse_args(argc - 1, argv + 1, subs[i].state, subs[i].nargs, &a,
				keys_usage);
		if (rc)
			return rc;
		if (a.npos != subs[i].nargs) {
			smpctl_error("keys %s takes %d argument%s; usage: %s", subs[i].name,
				     subs[i].nargs, subs[i].nargs == 1 ? "" : "s", keys_usage);
			return EX_USAGE;
		}
		if (a.address_opt && strcmp(subs[i].name, "import")) {
			smpctl_error("keys %s takes no --address; usage: %s", subs[i].name,
				     keys_usage);
			return EX_USAGE;
		}
		if (a.address_opt) {
			rc = check_arg(subs[i].name, a.address_opt, true, false);
			if (rc)
				return rc;
		}
		if (strcmp(subs[i].name, "import") && a.npos > 0) {
			/* pin ADDRESS FPR; history ADDRESS; block, unblock FPR;
			 * show, export, delete ADDRESS|FPR */
			bool pin = !strcmp(subs[i].name, "pin");
			bool addr = strcmp(subs[i].name, "block") && strcmp(subs[i].name, "unblock");
			bool fpr = strcmp(subs[i].name, "history") && !pin;

			rc = check_arg(subs[i].name, a.pos[0], addr, fpr);
			if (rc == 0 && pin)
				rc = check_arg(subs[i].name, a.pos[1], false, true);
			if (rc)
				return rc;
		}
		kr = smpctl_open_keyring();
		if (!kr)
			return EX_CONFIG;
		rc = subs[i].writes ? in_tx(kr, "cannot change the keyring", subs[i].run, &a)
				    : subs[i].run(kr, &a);
		smp_keyring_close(kr);
		return rc;
	}
	smpctl_error("unknown keys subcommand %s; usage: %s", smpctl_quote(argv[1]),
		     keys_usage);
	return EX_USAGE;
}

int smpctl_cmd_stats(int argc, char **argv)
{
	struct smp_keyring_stats st;
	struct smp_keyring *kr;
	struct args a;
	int rc = parse_args(argc, argv, false, 0, &a, "smpctl stats [--json]");

	if (rc)
		return rc;
	if (a.address_opt) {
		smpctl_error("stats takes no --address; usage: smpctl stats [--json]");
		return EX_USAGE;
	}
	kr = smpctl_open_keyring();
	if (!kr)
		return EX_CONFIG;
	if (smp_keyring_stats(kr, &st) < 0) {
		rc = db_error(kr, "cannot count");
		smp_keyring_close(kr);
		return rc;
	}
	smp_keyring_close(kr);
	if (a.json) {
		json_t *states = json_object();
		for (int s = 0; s <= SMP_BIND_REVOKED; s++)
			json_object_set_new(states, smp_bind_state_name((enum smp_bind_state)s),
					    json_integer((json_int_t)st.bindings[s]));
		print_json(json_pack("{s:I, s:I, s:o, s:I, s:I, s:I}", "keys",
				     (json_int_t)st.keys, "addresses",
				     (json_int_t)st.addresses, "bindings", states, "events",
				     (json_int_t)st.events, "replay_entries",
				     (json_int_t)st.replay_entries, "discovery",
				     (json_int_t)st.discovery));
		return 0;
	}
	printf("keys          %lu\naddresses     %lu\n", st.keys, st.addresses);
	for (int s = 0; s <= SMP_BIND_REVOKED; s++)
		printf("  %-11s %lu\n", smp_bind_state_name((enum smp_bind_state)s),
		       st.bindings[s]);
	printf("events        %lu\nreplay log    %lu\ndiscovery     %lu\n", st.events,
	       st.replay_entries, st.discovery);
	return 0;
}
