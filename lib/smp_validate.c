/* smp_validate.c - the SMP structure rules of SPEC.md 2 and
 * doc/smp-format.md, applied to the parts smp_mime.c found. */
#include "smp_validate.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "smp_armor.h"
#include "smp_mime.h"
#include "smp_packets.h"

#define PRIVATE_KEY_LINE "-----BEGIN PGP PRIVATE KEY BLOCK-----"
#define SECRET_KEY_LINE "-----BEGIN PGP SECRET KEY BLOCK-----"

static void lib_init_once(void)
{
	g_mime_init();
}

void smp_lib_init(void)
{
	static GOnce once = G_ONCE_INIT;
	g_once(&once, (GThreadFunc)(void (*)(void))lib_init_once, NULL);
}

void smp_check_opts_init(struct smp_check_opts *o)
{
	smp_limits_init(&o->limits);
	o->match = SMP_MATCH_EXACT;
}

/* Offset of the first non-white octet. */
static size_t skip_ws(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
			 p[i] == '\n'))
		i++;
	return i;
}

static bool starts_armor(const unsigned char *p, size_t n)
{
	size_t i = skip_ws(p, n);
	return n - i >= 15 && memcmp(p + i, "-----BEGIN PGP ", 15) == 0;
}

/*
 * Accounts for what surrounds the first armored block of t[0..n), as
 * smp_armor_decode() left *a with status st: rest->blocks counts the
 * further blocks, rest->text says there is non-white content before the
 * block (the inline form passes the text from the BEGIN line on) or after
 * it when !text_ok (text_ok: the inline form's explanation text).
 */
static void scan_around(const char *t, size_t n, enum smp_armor_status st,
			const struct smp_armor *a, bool text_ok,
			struct smp_armor_rest *rest)
{
	struct smp_armor b;
	size_t off;

	memset(rest, 0, sizeof(*rest));
	if (st == SMP_ARMOR_ENOBEGIN)
		return; /* no block at all: the caller has a reason already */
	if (st == SMP_ARMOR_OK) {
		off = a->end_off;
	} else if (st == SMP_ARMOR_ETOOBIG &&
		   smp_armor_parse(t, n, &b) == SMP_ARMOR_OK) {
		off = b.end_off; /* well-formed, only too large to keep */
	} else {
		/* Where the block ends is unknown: the scan goes on from the
		 * line after its BEGIN line (the block has its reason). */
		const char *nl = memchr(t + a->begin_off, '\n', n - a->begin_off);
		off = nl ? (size_t)(nl + 1 - t) : n;
		text_ok = true;
	}
	smp_armor_scan_rest(t, n, off, rest);
	if (st == SMP_ARMOR_OK && a->type == SMP_ARMOR_SIGNED) {
		/* A cleartext-signed message (not-encrypted anyway): its text
		 * and the signature block closing it belong to it. */
		text_ok = true;
		if (rest->blocks[SMP_ARMOR_SIGNATURE] > 0)
			rest->blocks[SMP_ARMOR_SIGNATURE]--;
	}
	if (text_ok)
		rest->text = false;
	if (skip_ws((const unsigned char *)t, a->begin_off) < a->begin_off)
		rest->text = true;
}

/* Further blocks other than those labelled type. */
static unsigned blocks_except(const struct smp_armor_rest *rest,
			      enum smp_armor_type type)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SMP_ARMOR_NTYPES; i++)
		if (i != type)
			n += rest->blocks[i];
	return n;
}

/* The data's reasons for what surrounds its block: a further PGP MESSAGE
 * block is one more encrypted data; any other further block, a malformed
 * one or stray content is broken armor; a private key block is also
 * secret key material. */
static unsigned data_rest_reasons(const struct smp_armor_rest *rest)
{
	unsigned reasons = 0;

	if (rest->blocks[SMP_ARMOR_MESSAGE] > 0)
		reasons |= SMP_R_MULTIPLE_DATA;
	if (blocks_except(rest, SMP_ARMOR_MESSAGE) > 0 || rest->broken > 0 ||
	    rest->text)
		reasons |= SMP_R_BAD_ARMOR;
	if (rest->blocks[SMP_ARMOR_PRIVATE_KEY] > 0)
		reasons |= SMP_R_SECRET_KEY;
	return reasons;
}

/* A key part's: a private key block is secret-key, anything else bad-key. */
static unsigned key_rest_reasons(const struct smp_armor_rest *rest)
{
	unsigned reasons = 0;

	if (blocks_except(rest, SMP_ARMOR_PRIVATE_KEY) > 0 || rest->broken > 0 ||
	    rest->text)
		reasons |= SMP_R_BAD_KEY;
	if (rest->blocks[SMP_ARMOR_PRIVATE_KEY] > 0)
		reasons |= SMP_R_SECRET_KEY;
	return reasons;
}

/* Checks one encrypted-data payload (binary, or text holding armor); the
 * inline form passes the body from the BEGIN line on, with text_ok.
 * Fills *info; returns reason bits. -1: out of memory. */
static int check_data(const unsigned char *p, size_t n, size_t max_out,
		      bool text_ok, struct smp_msg_info *info,
		      enum smp_encoding *enc)
{
	struct smp_armor_rest rest;
	struct smp_armor a;
	enum smp_armor_status st;
	unsigned reasons = 0;
	size_t at;

	memset(info, 0, sizeof(*info));
	if (!starts_armor(p, n)) {
		*enc = SMP_ENC_BINARY;
		if (smp_pkt_looks_binary(p, n)) {
			smp_packets_check_message(p, n, info);
			return (int)(info->reasons |
				     (info->secret_key ? SMP_R_SECRET_KEY : 0));
		}
		/* Text: not OpenPGP, unless an armored block follows the
		 * text (scan_around() then calls the text bad armor). An
		 * empty part (p may be NULL) is not OpenPGP either. */
		if (n == 0 || !smp_armor_find((const char *)p, n, &at))
			return SMP_R_NOT_ENCRYPTED;
	}
	*enc = SMP_ENC_ARMORED;
	st = smp_armor_decode((const char *)p, n, max_out, &a);
	if (st == SMP_ARMOR_ENOMEM)
		return -1;
	if (st == SMP_ARMOR_ETOOBIG) {
		reasons = SMP_R_TOO_LARGE;
	} else if (st != SMP_ARMOR_OK) {
		reasons = SMP_R_BAD_ARMOR;
	} else {
		switch (a.type) {
		case SMP_ARMOR_MESSAGE:
			smp_packets_check_message(a.data, a.len, info);
			reasons = info->reasons |
				  (info->secret_key ? SMP_R_SECRET_KEY : 0);
			break;
		case SMP_ARMOR_PRIVATE_KEY:
			reasons = SMP_R_NOT_ENCRYPTED | SMP_R_SECRET_KEY;
			break;
		default:
			reasons = SMP_R_NOT_ENCRYPTED;
		}
	}
	smp_armor_free(&a);
	scan_around((const char *)p, n, st, &a, text_ok, &rest);
	return (int)(reasons | data_rest_reasons(&rest));
}

/* Checks one public-key-N part; appends it to r->keys. */
static int check_key(GMimeObject *obj, const char *name,
		     const struct smp_limits *l, struct smp_result *r)
{
	struct smp_content cc, *c = &cc;
	struct smp_key_part *k, *keys;
	unsigned rest_reasons = 0;
	int reasons = 0;

	keys = realloc(r->keys, (r->nkeys + 1) * sizeof(*keys));
	if (!keys)
		return -1;
	smp_content_get(obj, c);
	r->keys = keys;
	k = &r->keys[r->nkeys++];
	memset(k, 0, sizeof(*k));
	k->name = strdup(name);
	k->kind = SMP_KEY_BAD;
	if (!k->name) {
		reasons = -1;
		goto out;
	}
	if (starts_armor(c->data, c->len)) {
		struct smp_armor a;
		enum smp_armor_status st =
			smp_armor_decode((const char *)c->data, c->len,
					 l->max_key_bytes, &a);
		k->encoding = SMP_ENC_ARMORED;
		if (st != SMP_ARMOR_ENOMEM) {
			/* The part holds the one key block and nothing else */
			struct smp_armor_rest rest;
			scan_around((const char *)c->data, c->len, st, &a, false,
				    &rest);
			rest_reasons = key_rest_reasons(&rest);
		}
		if (st == SMP_ARMOR_ENOMEM) {
			reasons = -1;
		} else if (st == SMP_ARMOR_ETOOBIG) {
			reasons = SMP_R_TOO_LARGE;
		} else if (st != SMP_ARMOR_OK) {
			reasons = SMP_R_BAD_KEY;
		} else if (a.type == SMP_ARMOR_PRIVATE_KEY) {
			k->kind = SMP_KEY_SECRET;
			k->size = a.len;
			reasons = SMP_R_SECRET_KEY;
		} else if (a.type != SMP_ARMOR_PUBLIC_KEY) {
			k->size = a.len;
			reasons = SMP_R_BAD_KEY;
		} else {
			k->size = a.len;
			k->data = a.data; /* kept for harvesting */
			a.data = NULL;
		}
		smp_armor_free(&a);
		if (!k->data)
			goto out;
	} else {
		k->encoding = SMP_ENC_BINARY;
		k->size = c->len;
		if (c->len > l->max_key_bytes) {
			reasons = SMP_R_TOO_LARGE;
			goto out;
		}
		k->data = malloc(c->len ? c->len : 1);
		if (!k->data) {
			reasons = -1;
			goto out;
		}
		if (c->len)
			memcpy(k->data, c->data, c->len);
	}
	switch (smp_packets_check_keyblock(k->data, k->size, &k->nkeys)) {
	case SMP_KEYBLOCK_PUBLIC:
		k->kind = SMP_KEY_PUBLIC;
		break;
	case SMP_KEYBLOCK_SECRET:
		k->kind = SMP_KEY_SECRET;
		reasons |= SMP_R_SECRET_KEY;
		break;
	case SMP_KEYBLOCK_BAD:
		reasons |= SMP_R_BAD_KEY;
		break;
	}
out:
	if (reasons >= 0 && rest_reasons) {
		reasons |= (int)rest_reasons;
		if (rest_reasons & SMP_R_SECRET_KEY)
			k->kind = SMP_KEY_SECRET;
		else if (k->kind == SMP_KEY_PUBLIC)
			k->kind = SMP_KEY_BAD;
	}
	if (k->kind != SMP_KEY_PUBLIC) {
		free(k->data);
		k->data = NULL;
	}
	smp_content_release(c);
	return reasons;
}

/* Secret key material in a part that is not a key part. */
static bool holds_secret_key(const struct smp_content *c)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;

	if (c->len == 0)
		return false;
	if (memmem(c->data, c->len, PRIVATE_KEY_LINE, sizeof(PRIVATE_KEY_LINE) - 1) ||
	    memmem(c->data, c->len, SECRET_KEY_LINE, sizeof(SECRET_KEY_LINE) - 1))
		return true;
	smp_pkt_iter_init(&it, c->data, c->len);
	return smp_pkt_next(&it, &pkt) == SMP_PKT_OK &&
	       (pkt.tag == SMP_TAG_SECRET_KEY || pkt.tag == SMP_TAG_SECRET_SUBKEY);
}

/* Counts armored blocks in text; *first gets the offset of the first. */
static unsigned count_armor(const struct smp_content *c, size_t *first)
{
	const char *t = (const char *)c->data;
	size_t off = 0, at;
	unsigned n = 0;

	while (off < c->len && smp_armor_find(t + off, c->len - off, &at)) {
		if (n++ == 0)
			*first = off + at;
		off += at + 1;
	}
	return n;
}

/*
 * Fast path for the usual payload: binary OpenPGP data in regular base64.
 * The packet framing is read in place (smp_b64.h) instead of decoding the
 * whole part. Returns reason bits, or -2 when the fast path does not apply.
 */
static int check_data_b64(GMimeObject *obj, struct smp_msg_info *info,
			  size_t *size)
{
	const unsigned char *raw;
	unsigned char peek[64];
	GMimeContentEncoding enc;
	struct smp_b64 b;
	size_t k;

	if (!smp_mime_raw(obj, &raw, &k, &enc) || enc != GMIME_CONTENT_ENCODING_BASE64 ||
	    !smp_b64_index(&b, (const char *)raw, k))
		return -2;
	k = b.out_len < sizeof(peek) ? b.out_len : sizeof(peek);
	smp_b64_read(&b, 0, peek, k);
	if (!smp_pkt_looks_binary(peek, k))
		return -2; /* text, armor in base64: decode it in full */
	memset(info, 0, sizeof(*info));
	*size = b.out_len;
	smp_packets_check_message_b64(&b, info);
	return (int)(info->reasons | (info->secret_key ? SMP_R_SECRET_KEY : 0));
}

static int check_data_part(GMimeObject *obj, const struct smp_limits *l,
			   struct smp_msg_info *info, enum smp_encoding *enc,
			   size_t *size)
{
	struct smp_content c;
	int rc = check_data_b64(obj, info, size);

	if (rc != -2) {
		*enc = SMP_ENC_BINARY;
		return rc;
	}
	smp_content_get(obj, &c);
	rc = check_data(c.data, c.len, l->max_message_bytes, false, info, enc);
	*size = c.len;
	smp_content_release(&c);
	return rc;
}

static int check_parts(const struct smp_mime *m, const struct smp_check_opts *o,
		       struct smp_result *r)
{
	const struct smp_limits *l = &o->limits;
	struct smp_content text = {0}, c;
	bool have_text = false;
	unsigned ndata = 0;
	int rc;

	for (guint i = 0; i < m->leaves->len; i++) {
		const struct smp_leaf *lf =
			&g_array_index(m->leaves, struct smp_leaf, i);

		switch (lf->role) {
		case SMP_ROLE_DATA:
		case SMP_ROLE_ALIAS: {
			struct smp_msg_info info;
			enum smp_encoding enc;
			size_t size = 0;
			rc = check_data_part(lf->obj, l, &info, &enc, &size);
			if (ndata++ == 0) {
				r->form = lf->role == SMP_ROLE_DATA ? SMP_FORM_ATTACHMENT
								    : SMP_FORM_ALIAS;
				r->encoding = enc;
				r->data_size = size;
				r->msg = info;
			}
			if (rc < 0)
				goto fail;
			r->reasons |= (unsigned)rc;
			break;
		}
		case SMP_ROLE_KEY:
			rc = check_key(lf->obj, lf->name, l, r);
			if (rc < 0)
				goto fail;
			r->reasons |= (unsigned)rc;
			break;
		case SMP_ROLE_TEXT:
			smp_content_get(lf->obj, &text);
			have_text = true;
			if (holds_secret_key(&text))
				r->reasons |= SMP_R_SECRET_KEY;
			break;
		case SMP_ROLE_HTML:
		case SMP_ROLE_OTHER:
		case SMP_ROLE_NESTED:
			smp_content_get(lf->obj, &c);
			if (holds_secret_key(&c))
				r->reasons |= SMP_R_SECRET_KEY;
			smp_content_release(&c);
			if (lf->role == SMP_ROLE_OTHER)
				r->reasons |= SMP_R_PLAIN_ATTACHMENT;
			break;
		case SMP_ROLE_MESSAGE:
			r->reasons |= SMP_R_PLAIN_ATTACHMENT;
			break;
		}
	}

	if (have_text) {
		size_t at = 0;
		unsigned blocks = count_armor(&text, &at);
		if (blocks > 0 && ndata > 0) {
			r->reasons |= SMP_R_MULTIPLE_DATA;
		} else if (blocks > 0) {
			/* Text around the block is the explanation; further
			 * armored blocks are judged by scan_around(). */
			enum smp_encoding enc;
			r->form = SMP_FORM_INLINE;
			rc = check_data(text.data + at, text.len - at,
					l->max_message_bytes, true, &r->msg, &enc);
			if (rc < 0)
				goto fail;
			r->reasons |= (unsigned)rc;
			r->encoding = enc;
			r->data_size = text.len - at;
		}
		smp_content_release(&text);
	}
	if (ndata > 1)
		r->reasons |= SMP_R_MULTIPLE_DATA;
	/* A walk cut short at a limit may have missed the data. */
	if (r->form == SMP_FORM_NONE && !m->cut_short)
		r->reasons |= SMP_R_NO_DATA;
	if (r->nkeys > l->max_keys)
		r->reasons |= SMP_R_TOO_LARGE;
	return 0;
fail:
	smp_content_release(&text);
	return -1;
}

int smp_validate_buffer(const char *msg, size_t len,
			const struct smp_check_opts *o, struct smp_result *r)
{
	struct smp_mime m;
	char *subject;
	int rc;

	memset(r, 0, sizeof(*r));
	smp_lib_init();
	subject = smp_mime_header_raw(msg, len, "Subject");
	r->is_smp = smp_detect_subject(subject, o->match);
	g_free(subject);
	if (!r->is_smp)
		return 0;
	if (len > o->limits.max_message_bytes) {
		r->reasons = SMP_R_TOO_LARGE;
		return 0;
	}
	if (!smp_mime_prescan(msg, len, &o->limits)) {
		r->reasons = SMP_R_BAD_MIME;
		return 0;
	}
	smp_mime_parse(msg, len, &o->limits, &m);
	if (m.bad_mime)
		r->reasons |= SMP_R_BAD_MIME;
	rc = m.message ? check_parts(&m, o, r) : 0;
	if (!m.message)
		r->reasons |= SMP_R_NO_DATA;
	smp_mime_free(&m);
	if (rc < 0) {
		smp_result_clear(r);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}
