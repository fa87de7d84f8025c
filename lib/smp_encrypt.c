/* smp_encrypt.c - transparent outbound PGP/MIME encryption of one message.
 * See smp_encrypt.h. */
#include "smp_encrypt.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <glib.h>

#include "smp_mime.h"
#include "smp_validate.h"

#define PGP_MESSAGE_LINE "-----BEGIN PGP MESSAGE-----"
#define PROTECTED_PARAM "; protected-headers=\"v1\""

/* ------------------------------------------------------------------ */
/* Names, errors                                                       */

const char *smp_encrypt_status_name(int status)
{
	switch (status) {
	case SMP_ENCRYPT_ERROR:
		return "error";
	case SMP_ENCRYPT_OK:
		return "ok";
	case SMP_ENCRYPT_SKIP_PGP:
		return "already-pgp";
	case SMP_ENCRYPT_SKIP_SMIME:
		return "already-smime";
	case SMP_ENCRYPT_SKIP_INLINE:
		return "inline-pgp";
	case SMP_ENCRYPT_SKIP_SMP:
		return "smp";
	case SMP_ENCRYPT_NO_KEY:
		return "no-key";
	case SMP_ENCRYPT_BAD_KEY:
		return "bad-key";
	}
	return "unknown";
}

bool smp_encrypt_is_skip(int status)
{
	return status == SMP_ENCRYPT_SKIP_PGP ||
	       status == SMP_ENCRYPT_SKIP_SMIME ||
	       status == SMP_ENCRYPT_SKIP_INLINE ||
	       status == SMP_ENCRYPT_SKIP_SMP;
}

void smp_encrypt_opts_init(struct smp_encrypt_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->protect_subject = false;
	o->match = SMP_MATCH_EXACT;
	o->limits = NULL;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The header                                                          */

struct field {
	size_t start, end;    /* the whole field, its line ends included */
	size_t name_len;      /* msg[start..start+name_len) */
	size_t vstart;        /* just past the colon */
	unsigned index;       /* 1-based among fields of the same name */
};

struct header {
	struct field *f;
	size_t n;
	size_t body;          /* offset of the body */
};

static void header_free(struct header *h)
{
	free(h->f);
	memset(h, 0, sizeof(*h));
}

static size_t line_end(const char *msg, size_t len, size_t p, size_t *next)
{
	const char *nl = memchr(msg + p, '\n', len - p);
	size_t e = nl ? (size_t)(nl - msg) : len;

	*next = nl ? e + 1 : len;
	return e;
}

/* Length of a field name at msg[p..e): printable ASCII up to the colon,
 * white space allowed before it. 0 when the line is not a field. */
static size_t field_name(const char *msg, size_t p, size_t e, size_t *colon)
{
	size_t q = p, n;

	while (q < e && msg[q] != ':' && msg[q] > 32 && msg[q] < 127)
		q++;
	n = q - p;
	while (q < e && (msg[q] == ' ' || msg[q] == '\t'))
		q++;
	if (n == 0 || q >= e || msg[q] != ':')
		return 0;
	*colon = q;
	return n;
}

static bool name_is(const char *msg, const struct field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	       strncasecmp(msg + f->start, name, f->name_len) == 0;
}

/* Splits the header into fields; lines that are no field (and their
 * continuations) are skipped. -1 when out of memory. */
static int header_parse(const char *msg, size_t len, struct header *h)
{
	size_t p = 0, next, cap = 0;
	struct field *cur = NULL;
	/* lower-case name -> fields of that name so far (the index) */
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal,
						 g_free, NULL);

	memset(h, 0, sizeof(*h));
	h->body = len;
	while (p < len) {
		size_t e = line_end(msg, len, p, &next), colon, nl;

		if (e == p || (e == p + 1 && msg[p] == '\r')) {
			h->body = next;
			break;
		}
		if (msg[p] == ' ' || msg[p] == '\t') {
			if (cur)
				cur->end = next;
			p = next;
			continue;
		}
		cur = NULL;
		nl = field_name(msg, p, e, &colon);
		if (nl) {
			if (h->n == cap) {
				size_t nc = cap ? cap * 2 : 32;
				struct field *nf =
					realloc(h->f, nc * sizeof(*nf));
				if (!nf) {
					header_free(h);
					g_hash_table_destroy(seen);
					return -1;
				}
				h->f = nf;
				cap = nc;
			}
			cur = &h->f[h->n++];
			cur->start = p;
			cur->end = next;
			cur->name_len = nl;
			cur->vstart = colon + 1;
			{
				char *key = g_ascii_strdown(msg + p,
							    (gssize)nl);
				guint k = GPOINTER_TO_UINT(
						  g_hash_table_lookup(seen, key)) +
					  1;
				cur->index = k;
				g_hash_table_insert(seen, key,
						    GUINT_TO_POINTER(k));
			}
		}
		p = next;
	}
	g_hash_table_destroy(seen);
	return 0;
}

static bool is_content_field(const char *msg, const struct field *f)
{
	return f->name_len > 8 && strncasecmp(msg + f->start, "Content-", 8) == 0;
}

static const struct field *first_field(const char *msg, const struct header *h,
				       const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (name_is(msg, &h->f[i], name))
			return &h->f[i];
	return NULL;
}

/* The user-visible fields copied inside with protect_subject. */
static const char *const protected_names[] = {
	"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References",
};

static bool is_protected(const char *msg, const struct field *f)
{
	for (size_t i = 0; i < sizeof(protected_names) / sizeof(protected_names[0]);
	     i++)
		if (name_is(msg, f, protected_names[i]))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Top-level type from the raw field                                   */

/* Skips white space, line breaks and (nested) comments. */
static const char *skip_cfws(const char *p, const char *e)
{
	while (p < e) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
		} else if (*p == '(') {
			int depth = 0;
			for (; p < e; p++) {
				if (*p == '\\' && p + 1 < e) {
					p++;
				} else if (*p == '(') {
					depth++;
				} else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
			}
		} else {
			break;
		}
	}
	return p;
}

static bool tspecial_end(char c)
{
	return c == ';' || c == '/' || c == '(' || c == ' ' || c == '\t' ||
	       c == '\r' || c == '\n' || c == '"' || c == ',';
}

/* "type/subtype" of a raw Content-Type value, lower case, into out; ""
 * when it does not parse (RFC 2045: then text/plain). */
static void raw_type(const char *v, size_t n, char *out, size_t size)
{
	const char *p = v, *e = v + n, *t, *s;
	size_t tl, sl;

	out[0] = '\0';
	p = skip_cfws(p, e);
	for (t = p; p < e && !tspecial_end(*p); p++)
		;
	tl = (size_t)(p - t);
	p = skip_cfws(p, e);
	if (tl == 0 || p >= e || *p != '/')
		return;
	p = skip_cfws(p + 1, e);
	for (s = p; p < e && !tspecial_end(*p); p++)
		;
	sl = (size_t)(p - s);
	if (sl == 0 || tl + sl + 2 > size)
		return;
	for (size_t i = 0; i < tl; i++)
		out[i] = g_ascii_tolower(t[i]);
	out[tl] = '/';
	for (size_t i = 0; i < sl; i++)
		out[tl + 1 + i] = g_ascii_tolower(s[i]);
	out[tl + 1 + sl] = '\0';
}

static int skip_for_type(const char *type)
{
	if (strcmp(type, "multipart/encrypted") == 0 ||
	    strcmp(type, "application/pgp-encrypted") == 0 ||
	    strcmp(type, "application/pgp") == 0)
		return SMP_ENCRYPT_SKIP_PGP;
	if (strcmp(type, "application/pkcs7-mime") == 0 ||
	    strcmp(type, "application/x-pkcs7-mime") == 0)
		return SMP_ENCRYPT_SKIP_SMIME;
	return SMP_ENCRYPT_OK;
}

/* ------------------------------------------------------------------ */
/* The check                                                           */

/* A line starting with the PGP MESSAGE armor line? */
static bool has_pgp_message(const unsigned char *p, size_t n)
{
	const size_t ml = sizeof(PGP_MESSAGE_LINE) - 1;
	const unsigned char *s = p, *e = p + n, *hit;

	while (s < e && (hit = memmem(s, (size_t)(e - s), PGP_MESSAGE_LINE,
				      ml))) {
		if (hit == p || hit[-1] == '\n')
			return true;
		s = hit + 1;
	}
	return false;
}

/* Walks the parsed message: a text/plain body part with an inline PGP
 * message? Leaves of attached messages and attachments do not count. */
static bool inline_pgp_parsed(const struct smp_mime *m)
{
	for (guint i = 0; m->leaves && i < m->leaves->len; i++) {
		struct smp_leaf *lf =
			&g_array_index(m->leaves, struct smp_leaf, i);
		GMimeContentType *ct;
		const char *disp;
		struct smp_content c;
		bool hit;

		if (lf->role == SMP_ROLE_NESTED ||
		    lf->role == SMP_ROLE_MESSAGE || !GMIME_IS_PART(lf->obj))
			continue;
		ct = g_mime_object_get_content_type(lf->obj);
		if (ct && !g_mime_content_type_is_type(ct, "text", "plain"))
			continue;
		disp = g_mime_object_get_disposition(lf->obj);
		if (disp && g_ascii_strcasecmp(disp, "attachment") == 0)
			continue;
		smp_content_get(lf->obj, &c);
		hit = c.data && has_pgp_message(c.data, c.len);
		smp_content_release(&c);
		if (hit)
			return true;
	}
	return false;
}

static int check(const char *msg, size_t len, const struct header *h,
		 const struct smp_encrypt_opts *o)
{
	struct smp_limits dl;
	const struct smp_limits *l = o->limits;
	const struct field *ctf = first_field(msg, h, "Content-Type");
	char type[128] = "";
	char *subject;
	bool smp;
	int rc;

	smp_lib_init();
	subject = smp_mime_header_raw(msg, len, "Subject");
	smp = smp_detect_subject(subject, o->match);
	g_free(subject);
	if (smp)
		return SMP_ENCRYPT_SKIP_SMP;
	if (ctf)
		raw_type(msg + ctf->vstart, ctf->end - ctf->vstart, type,
			 sizeof(type));
	rc = skip_for_type(type);
	if (rc != SMP_ENCRYPT_OK)
		return rc;
	if (!l) {
		smp_limits_init(&dl);
		l = &dl;
	}
	if (smp_mime_prescan(msg, len, l)) {
		struct smp_mime m;
		bool parsed, hit = false;

		smp_mime_parse(msg, len, l, &m);
		parsed = m.message != NULL &&
			 g_mime_message_get_mime_part(m.message) != NULL;
		if (parsed) {
			GMimeObject *top = g_mime_message_get_mime_part(m.message);
			GMimeContentType *ct = g_mime_object_get_content_type(top);
			if (ct && (g_mime_content_type_is_type(ct, "multipart",
							       "encrypted") ||
				   g_mime_content_type_is_type(ct, "application",
							       "pgp-encrypted")))
				rc = SMP_ENCRYPT_SKIP_PGP;
			else if (ct && (g_mime_content_type_is_type(
						ct, "application", "pkcs7-mime") ||
					g_mime_content_type_is_type(
						ct, "application", "x-pkcs7-mime")))
				rc = SMP_ENCRYPT_SKIP_SMIME;
			else
				hit = inline_pgp_parsed(&m);
		}
		smp_mime_free(&m);
		if (rc != SMP_ENCRYPT_OK)
			return rc;
		if (parsed)
			return hit ? SMP_ENCRYPT_SKIP_INLINE : SMP_ENCRYPT_OK;
	}
	/* not parsed: only a single text body can be looked at, raw */
	if ((!type[0] || strcmp(type, "text/plain") == 0) && h->body < len &&
	    has_pgp_message((const unsigned char *)msg + h->body,
			    len - h->body))
		return SMP_ENCRYPT_SKIP_INLINE;
	return SMP_ENCRYPT_OK;
}

int smp_encrypt_check(const char *msg, size_t len,
		      const struct smp_encrypt_opts *o)
{
	struct smp_encrypt_opts d;
	struct header h;
	int rc;

	if (!o) {
		smp_encrypt_opts_init(&d);
		o = &d;
	}
	if (header_parse(msg, len, &h))
		return SMP_ENCRYPT_ERROR;
	rc = check(msg, len, &h, o);
	header_free(&h);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The inner entity                                                    */

/* Appends msg[s..e) with bare LF made CRLF. */
static void append_crlf(GString *g, const char *msg, size_t s, size_t e)
{
	for (size_t i = s; i < e; i++) {
		if (msg[i] == '\n' && (i == s || msg[i - 1] != '\r'))
			g_string_append_c(g, '\r');
		g_string_append_c(g, msg[i]);
	}
}

/* Appends one field, ending it with CRLF also when it ended without a
 * line break (the last line of a message without a body). */
static void append_field(GString *g, const char *msg, const struct field *f,
			 bool protect_param)
{
	size_t e = f->end;

	if (!protect_param) {
		append_crlf(g, msg, f->start, e);
	} else {
		/* the value up to its last line end, the parameter, CRLF */
		if (e > f->start && msg[e - 1] == '\n')
			e--;
		if (e > f->start && msg[e - 1] == '\r')
			e--;
		append_crlf(g, msg, f->start, e);
		g_string_append(g, PROTECTED_PARAM);
		g_string_append(g, "\r\n");
		return;
	}
	if (g->len < 2 || g->str[g->len - 1] != '\n')
		g_string_append(g, "\r\n");
}

static bool has_protected_param(const char *msg, const struct field *f)
{
	const char *p = msg + f->vstart;
	size_t n = f->end - f->vstart;
	static const char want[] = "protected-headers";

	for (size_t i = 0; i + sizeof(want) - 1 <= n; i++)
		if (g_ascii_strncasecmp(p + i, want, sizeof(want) - 1) == 0)
			return true;
	return false;
}

/* The header of the inner entity (its empty line included). */
static GString *inner_header(const char *msg, const struct header *h,
			     bool protect)
{
	GString *g = g_string_sized_new(1024);
	bool have_ct = false;

	for (size_t i = 0; i < h->n; i++) {
		const struct field *f = &h->f[i];
		bool ct;

		if (!is_content_field(msg, f))
			continue;
		ct = name_is(msg, f, "Content-Type");
		append_field(g, msg, f, protect && ct && !have_ct &&
						!has_protected_param(msg, f));
		have_ct |= ct;
	}
	if (protect && !have_ct)
		g_string_append(g, "Content-Type: text/plain; charset=us-ascii"
				PROTECTED_PARAM "\r\n");
	if (protect)
		for (size_t i = 0; i < h->n; i++)
			if (is_protected(msg, &h->f[i]))
				append_field(g, msg, &h->f[i], false);
	g_string_append(g, "\r\n");
	return g;
}

/* ------------------------------------------------------------------ */
/* Fingerprints, keys                                                  */

/* Upper-case hex without spaces; false unless 32..64 hex digits. */
static bool fpr_clean(const char *in, char out[SMP_FPR_MAX])
{
	size_t n = 0;

	for (const char *p = in; p && *p; p++) {
		char c = *p;
		if (c == ' ')
			continue;
		if (!g_ascii_isxdigit(c) || n + 1 >= SMP_FPR_MAX)
			return false;
		out[n++] = g_ascii_toupper(c);
	}
	out[n] = '\0';
	return n >= 32;
}

/* The keys to encrypt to: every fingerprint once, with its material from
 * the keyring. The ones the keyring lacks (or kr is NULL) are listed in
 * missing. 0, or -1 (a keyring failure or memory; err says). */
struct keyset {
	char (*fpr)[SMP_FPR_MAX];
	struct smp_key_rec *rec;
	struct smp_crypto_key *keys;
	size_t n;
};

static void keyset_free(struct keyset *ks)
{
	for (size_t i = 0; ks->rec && i < ks->n; i++)
		smp_key_rec_clear(&ks->rec[i]);
	free(ks->fpr);
	free(ks->rec);
	free(ks->keys);
	memset(ks, 0, sizeof(*ks));
}

static int keyset_load(struct keyset *ks, struct smp_keyring *kr,
		       const char *const *fprs, size_t nfprs, GString *missing,
		       char *err, size_t errlen)
{
	memset(ks, 0, sizeof(*ks));
	ks->fpr = calloc(nfprs, sizeof(*ks->fpr));
	ks->rec = calloc(nfprs, sizeof(*ks->rec));
	ks->keys = calloc(nfprs, sizeof(*ks->keys));
	if (!ks->fpr || !ks->rec || !ks->keys) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nfprs; i++) {
		char f[SMP_FPR_MAX];
		bool dup = false;
		int r;

		if (!fpr_clean(fprs[i], f)) {
			seterr(err, errlen, "'%.80s' is not a fingerprint",
			       fprs[i] ? fprs[i] : "");
			return -1;
		}
		for (size_t j = 0; j < ks->n && !dup; j++)
			dup = strcmp(ks->fpr[j], f) == 0;
		if (dup)
			continue; /* an archive key that is also a recipient's */
		r = kr ? smp_keyring_key_get(kr, f, &ks->rec[ks->n]) : 1;
		if (r < 0) {
			seterr(err, errlen, "keyring: %s",
			       smp_keyring_errmsg(kr));
			return -1;
		}
		if (r > 0 || !ks->rec[ks->n].material ||
		    !ks->rec[ks->n].material_len) {
			smp_key_rec_clear(&ks->rec[ks->n]);
			g_string_append_printf(missing, "%s%s",
					       missing->len ? ", " : "", f);
			continue;
		}
		memcpy(ks->fpr[ks->n], f, SMP_FPR_MAX);
		ks->keys[ks->n].fpr = ks->fpr[ks->n];
		ks->keys[ks->n].material = ks->rec[ks->n].material;
		ks->keys[ks->n].len = ks->rec[ks->n].material_len;
		ks->n++;
	}
	return 0;
}

/* gpg processes the engine has started (0 on rnp). */
static unsigned long processes(const struct smp_crypto *c)
{
	struct smp_crypto_stats st;

	smp_crypto_get_stats(c, &st);
	return st.processes;
}

/* ------------------------------------------------------------------ */
/* The body                                                            */

static void make_boundary(char *out, size_t size)
{
	unsigned char r[16];
	static const char hex[] = "0123456789abcdef";
	size_t o;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (size_t i = 0; i < sizeof(r); i += 4) {
			guint32 v = g_random_int();
			memcpy(r + i, &v, 4);
		}
	o = (size_t)snprintf(out, size, "smp-");
	for (size_t i = 0; i < sizeof(r) && o + 2 < size; i++) {
		out[o++] = hex[r[i] >> 4];
		out[o++] = hex[r[i] & 15];
	}
	out[o] = '\0';
}

/* Everything of the body up to where the armor goes. */
static void body_head(GString *b, const char *boundary)
{
	g_string_append_printf(
		b,
		"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
		"--%s\r\n"
		"Content-Type: application/pgp-encrypted\r\n"
		"Content-Description: PGP/MIME version identification\r\n"
		"\r\n"
		"Version: 1\r\n"
		"\r\n"
		"--%s\r\n"
		"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
		"Content-Description: OpenPGP encrypted message\r\n"
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n"
		"\r\n",
		boundary, boundary);
}

/* ------------------------------------------------------------------ */
/* Edits                                                               */

static bool add_edit(struct smp_encrypted *o, size_t *cap, enum smp_hdr_op op,
		     const char *name, size_t name_len, unsigned index,
		     const char *value)
{
	struct smp_hdr_edit *ed;

	if (o->nedits == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct smp_hdr_edit *nv = realloc(o->edits, nc * sizeof(*nv));
		if (!nv)
			return false;
		o->edits = nv;
		*cap = nc;
	}
	ed = &o->edits[o->nedits];
	memset(ed, 0, sizeof(*ed));
	ed->op = op;
	ed->index = index;
	ed->name = strndup(name, name_len);
	ed->value = value ? strdup(value) : NULL;
	o->nedits++;
	return ed->name && (!value || ed->value);
}

static bool make_edits(const char *msg, const struct header *h, bool protect,
		       struct smp_encrypted *o)
{
	size_t cap = 0;

	/* deletions from the last field back: for every name the highest
	 * index first, so that none shifts one still to come */
	for (size_t i = h->n; i-- > 0;) {
		const struct field *f = &h->f[i];
		if (!is_content_field(msg, f))
			continue;
		if (!add_edit(o, &cap, SMP_HDR_DELETE, msg + f->start,
			      f->name_len, f->index, NULL))
			return false;
		o->ndeleted++;
	}
	if (protect) {
		for (size_t i = 0; i < h->n; i++) {
			const struct field *f = &h->f[i];
			if (!name_is(msg, f, "Subject"))
				continue;
			if (!add_edit(o, &cap, SMP_HDR_CHANGE, msg + f->start,
				      f->name_len, f->index,
				      SMP_PROTECTED_SUBJECT))
				return false;
			o->subject_replacement = SMP_PROTECTED_SUBJECT;
		}
	}
	o->add_mime_version = first_field(msg, h, "MIME-Version") == NULL;
	if (o->add_mime_version &&
	    !add_edit(o, &cap, SMP_HDR_ADD, "MIME-Version", 12, 0, "1.0"))
		return false;
	return add_edit(o, &cap, SMP_HDR_ADD, "Content-Type", 12, 0,
			o->content_type) &&
	       add_edit(o, &cap, SMP_HDR_ADD, SMP_HDR_ENCRYPTED,
			strlen(SMP_HDR_ENCRYPTED), 0, SMP_ENCRYPTED_VALUE);
}

void smp_encrypted_clear(struct smp_encrypted *e)
{
	if (!e)
		return;
	free(e->body);
	free(e->content_type);
	free(e->boundary);
	for (size_t i = 0; e->edits && i < e->nedits; i++) {
		free(e->edits[i].name);
		free(e->edits[i].value);
	}
	free(e->edits);
	memset(e, 0, sizeof(*e));
}

/* ------------------------------------------------------------------ */
/* Encryption                                                          */

int smp_encrypt_message(struct smp_crypto *c, struct smp_keyring *kr,
			const char *msg, size_t len,
			const char *const *fprs, size_t nfprs,
			const struct smp_encrypt_opts *o,
			struct smp_encrypted *out, char *err, size_t errlen)
{
	struct smp_encrypt_opts dopts;
	struct header h;
	struct keyset ks = {0};
	GString *inner = NULL, *body = NULL, *missing = NULL;
	char boundary[64], *armor = NULL;
	size_t alen = 0;
	unsigned long procs0 = ULONG_MAX;
	int rc = SMP_ENCRYPT_ERROR, r;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (!o) {
		smp_encrypt_opts_init(&dopts);
		o = &dopts;
	}
	if (!msg) {
		seterr(err, errlen, "no message");
		return SMP_ENCRYPT_ERROR;
	}
	if (header_parse(msg, len, &h)) {
		seterr(err, errlen, "out of memory");
		return SMP_ENCRYPT_ERROR;
	}
	rc = check(msg, len, &h, o);
	if (rc != SMP_ENCRYPT_OK)
		goto out;
	rc = SMP_ENCRYPT_ERROR;
	if (!c) {
		seterr(err, errlen, "no crypto engine");
		goto out;
	}
	procs0 = processes(c);
	if (nfprs == 0 || !fprs) {
		seterr(err, errlen, "no key to encrypt to");
		goto out;
	}
	/* the keys' material from the keyring: the only key store */
	missing = g_string_new(NULL);
	if (keyset_load(&ks, kr, fprs, nfprs, missing, err, errlen))
		goto out;
	if (missing->len) {
		seterr(err, errlen, "keys not in the keyring: %s",
		       missing->str);
		rc = SMP_ENCRYPT_NO_KEY;
		goto out;
	}

	/* the inner entity: the Content-* fields (CRLF), the body */
	inner = inner_header(msg, &h, o->protect_subject);
	out->inner_len = inner->len + (len - h.body);
	g_string_append_len(inner, msg + h.body, (gssize)(len - h.body));
	r = smp_crypto_encrypt(c, inner->str, inner->len, ks.keys, ks.n,
			       &armor, &alen, err, errlen);
	if (r != 0) {
		rc = r > 0 ? SMP_ENCRYPT_BAD_KEY : SMP_ENCRYPT_ERROR;
		goto out;
	}

	make_boundary(boundary, sizeof(boundary));
	body = g_string_sized_new(alen + 1024);
	body_head(body, boundary);
	g_string_append_len(body, armor, (gssize)alen);
	/* the closing delimiter; the armor ends with CRLF */
	if (body->len < 2 || body->str[body->len - 1] != '\n')
		g_string_append(body, "\r\n");
	g_string_append_printf(body, "\r\n--%s--\r\n", boundary);

	out->boundary = strdup(boundary);
	out->content_type = malloc(sizeof(boundary) + 80);
	if (out->content_type)
		snprintf(out->content_type, sizeof(boundary) + 80,
			 "multipart/encrypted; "
			 "protocol=\"application/pgp-encrypted\"; "
			 "boundary=\"%s\"",
			 boundary);
	if (!out->boundary || !out->content_type ||
	    !make_edits(msg, &h, o->protect_subject, out)) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	/* GLib >= 2.46 allocates with the system malloc(): the caller may
	 * free() the string's buffer */
	out->body_len = body->len;
	out->body = g_string_free(body, FALSE);
	body = NULL;
	rc = SMP_ENCRYPT_OK;
out:
	if (rc != SMP_ENCRYPT_OK)
		smp_encrypted_clear(out);
	if (c && procs0 != ULONG_MAX)
		out->gpg_runs = (unsigned)(processes(c) - procs0);
	free(armor);
	if (inner)
		g_string_free(inner, TRUE);
	if (body)
		g_string_free(body, TRUE);
	if (missing)
		g_string_free(missing, TRUE);
	keyset_free(&ks);
	header_free(&h);
	return rc;
}
