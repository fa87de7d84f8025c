/* smp_extract.c - keys from Autocrypt headers and application/pgp-keys
 * parts, checked for framing (smp_packets) before anything spawns gpg. */
#include "smp_extract.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smp_armor.h"
#include "smp_mime.h"
#include "smp_packets.h"

/* Adds a copy of data as a public key part when it is one. 1 added, 0 not
 * a usable key, -1 out of memory. */
static int add_key(struct smp_found_keys *fk, const unsigned char *data,
		   size_t len, const char *name, enum smp_key_source src,
		   const struct smp_limits *l)
{
	struct smp_key_part *parts, *k;
	enum smp_key_source *srcs;
	unsigned nkeys = 0;

	if (len == 0 || len > l->max_key_bytes ||
	    smp_packets_check_keyblock(data, len, &nkeys) != SMP_KEYBLOCK_PUBLIC)
		return 0;
	parts = realloc(fk->parts, (fk->n + 1) * sizeof(*parts));
	if (!parts)
		return -1;
	fk->parts = parts;
	srcs = realloc(fk->sources, (fk->n + 1) * sizeof(*srcs));
	if (!srcs)
		return -1;
	fk->sources = srcs;
	k = &fk->parts[fk->n];
	memset(k, 0, sizeof(*k));
	k->name = strdup(name);
	k->data = malloc(len);
	if (!k->name || !k->data) {
		free(k->name);
		free(k->data);
		return -1;
	}
	memcpy(k->data, data, len);
	k->size = len;
	k->kind = SMP_KEY_PUBLIC;
	k->encoding = SMP_ENC_BINARY;
	k->nkeys = nkeys;
	fk->sources[fk->n++] = src;
	return 1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One Autocrypt header: its addr and decoded keydata (g_free'd by the
 * caller). False when it does not count. */
static bool parse_autocrypt(const char *v, char **addr, guchar **key, gsize *klen)
{
	gchar **attrs = g_strsplit(v, ";", 0);
	GString *b64 = NULL;
	bool ok = true;

	*addr = NULL;
	*key = NULL;
	for (int i = 0; attrs[i] && ok; i++) {
		char *a = g_strstrip(attrs[i]), *eq = strchr(a, '=');
		if (!*a)
			continue;
		if (!eq) {
			ok = false;
			break;
		}
		*eq = '\0';
		g_strstrip(a);
		if (!strcmp(a, "addr") && !*addr) {
			*addr = g_strdup(g_strstrip(eq + 1));
		} else if (!strcmp(a, "keydata") && !b64) {
			b64 = g_string_new(NULL);
			for (const char *p = eq + 1; *p; p++) {
				if (is_space(*p))
					continue;
				if (!g_ascii_isalnum(*p) && *p != '+' && *p != '/' && *p != '=') {
					ok = false;
					break;
				}
				g_string_append_c(b64, *p);
			}
		} else if (!strcmp(a, "prefer-encrypt") || a[0] == '_') {
			/* known, or non-critical */
		} else {
			ok = false; /* unknown critical attribute: ignore the header */
		}
	}
	g_strfreev(attrs);
	if (ok && *addr && b64 && b64->len > 0 && b64->len % 4 == 0)
		*key = g_base64_decode(b64->str, klen);
	if (b64)
		g_string_free(b64, TRUE);
	if (!ok || !*key) {
		g_free(*addr);
		g_free(*key);
		*addr = NULL;
		*key = NULL;
		return false;
	}
	return true;
}

int smp_extract_autocrypt(const char *const *values, size_t n,
			  const char *from_addr, const struct smp_limits *l,
			  struct smp_found_keys *fk)
{
	guchar *key = NULL, *k;
	gsize klen = 0, kl;
	char *addr;
	unsigned counted = 0;
	int rc;

	if (!from_addr)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!parse_autocrypt(values[i], &addr, &k, &kl))
			continue;
		if (!g_ascii_strcasecmp(addr, from_addr)) {
			counted++;
			g_free(key);
			key = k;
			klen = kl;
		} else {
			g_free(k);
		}
		g_free(addr);
	}
	rc = counted == 1 ? add_key(fk, key, klen, "autocrypt", SMP_SRC_AUTOCRYPT, l) : 0;
	g_free(key);
	return rc;
}

static bool is_pgp_keys(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	return ct && g_mime_content_type_is_type(ct, "application", "pgp-keys");
}

int smp_extract_pgp_keys(const char *msg, size_t len,
			 const struct smp_check_opts *o, struct smp_found_keys *fk)
{
	const struct smp_limits *l = &o->limits;
	struct smp_mime m;
	int added = 0;

	if (len > l->max_message_bytes || !smp_mime_prescan(msg, len, l))
		return 0;
	smp_mime_parse(msg, len, l, &m);
	for (guint i = 0; m.message && i < m.leaves->len; i++) {
		const struct smp_leaf *lf = &g_array_index(m.leaves, struct smp_leaf, i);
		struct smp_content c;
		int rc = 0;

		if (lf->role == SMP_ROLE_MESSAGE || lf->role == SMP_ROLE_NESTED ||
		    !GMIME_IS_PART(lf->obj) || !is_pgp_keys(lf->obj))
			continue;
		smp_content_get(lf->obj, &c);
		if (c.len && !smp_pkt_looks_binary(c.data, c.len) &&
		    smp_armor_find((const char *)c.data, c.len, &(size_t){0})) {
			/* armored: one or more PGP PUBLIC KEY BLOCKs and white
			 * space, nothing else (smp_extract.h) */
			struct smp_armor_all a;
			enum smp_armor_status st = smp_armor_decode_all(
				(const char *)c.data, c.len, SMP_ARMOR_PUBLIC_KEY,
				l->max_key_bytes, &a);
			if (st == SMP_ARMOR_OK)
				rc = add_key(fk, a.data, a.len, lf->name ? lf->name : "pgp-keys",
					     SMP_SRC_PGP_KEYS, l);
			else if (st == SMP_ARMOR_ENOMEM)
				rc = -1;
			smp_armor_all_free(&a);
		} else {
			rc = add_key(fk, c.data, c.len, lf->name ? lf->name : "pgp-keys",
				     SMP_SRC_PGP_KEYS, l);
		}
		smp_content_release(&c);
		if (rc < 0) {
			added = -1;
			break;
		}
		added += rc;
	}
	smp_mime_free(&m);
	return added;
}

void smp_found_keys_clear(struct smp_found_keys *fk)
{
	for (size_t i = 0; i < fk->n; i++) {
		free(fk->parts[i].name);
		free(fk->parts[i].data);
	}
	free(fk->parts);
	free(fk->sources);
	memset(fk, 0, sizeof(*fk));
}
