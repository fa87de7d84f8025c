/* smp_mime.c - bounded MIME parsing with gmime and SMP part roles. */
#include "smp_mime.h"

#include <string.h>
#include <strings.h>

#define HEADER_VALUE_MAX 4096

/* Next line of msg[p..len): returns its end (before LF), sets *next. */
static size_t line_end(const char *msg, size_t len, size_t p, size_t *next)
{
	const char *nl = memchr(msg + p, '\n', len - p);
	size_t e = nl ? (size_t)(nl - msg) : len;

	*next = nl ? e + 1 : len;
	return e;
}

static bool is_blank_line(const char *msg, size_t p, size_t e)
{
	return e == p || (e == p + 1 && msg[p] == '\r');
}

size_t smp_mime_header_end(const char *msg, size_t len)
{
	size_t p = 0, next;

	while (p < len) {
		size_t e = line_end(msg, len, p, &next);
		if (is_blank_line(msg, p, e))
			return next;
		p = next;
	}
	return len;
}

/*
 * Does the line msg[p..e) start a field called name (case-insensitive)?
 * White space before the colon is allowed, as gmime allows it. Returns the
 * offset just past the colon, or 0.
 */
static size_t field_is(const char *msg, size_t p, size_t e, const char *name)
{
	size_t n = strlen(name), q = p + n;

	if (e - p <= n || strncasecmp(msg + p, name, n) != 0)
		return 0;
	while (q < e && (msg[q] == ' ' || msg[q] == '\t'))
		q++;
	return q < e && msg[q] == ':' ? q + 1 : 0;
}

char *smp_mime_header_raw(const char *msg, size_t len, const char *name)
{
	size_t hend = smp_mime_header_end(msg, len), p = 0, next;

	while (p < hend) {
		size_t e = line_end(msg, hend, p, &next), vstart, vend;
		vstart = field_is(msg, p, e, name);
		if (!vstart) {
			p = next;
			continue;
		}
		vend = e;
		/* continuation lines */
		while (next < hend && (msg[next] == ' ' || msg[next] == '\t'))
			vend = line_end(msg, hend, next, &next);
		if (vend - vstart > HEADER_VALUE_MAX)
			vend = vstart + HEADER_VALUE_MAX;
		return g_strndup(msg + vstart, vend - vstart);
	}
	return NULL;
}

/* Length of msg[p..e) without a trailing CR; counts its ';' into *semis. */
static size_t line_measure(const char *msg, size_t p, size_t e, size_t *semis)
{
	if (e > p && msg[e - 1] == '\r')
		e--;
	for (const char *q = msg + p; (q = memchr(q, ';', (size_t)(msg + e - q))); q++)
		(*semis)++;
	return e - p;
}

/*
 * Finds header fields by their colon: memchr() skips base64 bodies (which
 * hold no colon) at memory speed, and only a colon whose line starts with
 * "Content-Type" or "Content-Disposition" is looked at further.
 */
bool smp_mime_prescan(const char *msg, size_t len, const struct smp_limits *l)
{
	const char *end = msg + len, *p = msg, *colon;
	unsigned ctypes = 0;

	while (p < end && (colon = memchr(p, ':', (size_t)(end - p)))) {
		const char *ls = colon;
		size_t s, e, next, total, semis = 0;
		bool ct;

		/* back to the line start; field names here are short */
		while (ls > msg && ls[-1] != '\n' && colon - ls < 40)
			ls--;
		p = colon + 1;
		if (ls > msg && ls[-1] != '\n')
			continue;
		s = (size_t)(ls - msg);
		e = line_end(msg, len, s, &next);
		ct = field_is(msg, s, e, "Content-Type") != 0;
		if (!ct && !field_is(msg, s, e, "Content-Disposition"))
			continue;
		if (ct && ++ctypes > l->max_parts)
			return false;
		total = line_measure(msg, s, e, &semis);
		while (next < len && (msg[next] == ' ' || msg[next] == '\t')) {
			size_t cs = next, ce = line_end(msg, len, cs, &next);
			total += line_measure(msg, cs, ce, &semis);
			if (total > SMP_MIME_MAX_CT_BYTES)
				return false;
		}
		if (total > SMP_MIME_MAX_CT_BYTES || semis > SMP_MIME_MAX_CT_PARAMS)
			return false;
		p = msg + next;
	}
	return true;
}

static void on_parser_warning(gint64 offset, GMimeParserWarning code,
			      const gchar *item, gpointer user_data)
{
	struct smp_mime *m = user_data;

	(void)offset;
	(void)item;
	switch (code) {
	case GMIME_WARN_MALFORMED_MULTIPART:
	case GMIME_CRIT_CONFLICTING_HEADER:
	case GMIME_CRIT_CONFLICTING_PARAMETER:
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
	case GMIME_CRIT_NESTING_OVERFLOW:
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		m->bad_mime = true;
		break;
	default:
		break;
	}
}

/* public-key-N, N in 1..999 without a leading zero. */
static bool is_key_name(const char *name)
{
	const char *d = name + 11;
	size_t n;

	if (g_ascii_strncasecmp(name, "public-key-", 11) != 0)
		return false;
	n = strlen(d);
	if (n < 1 || n > 3 || d[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++)
		if (d[i] < '0' || d[i] > '9')
			return false;
	return true;
}

static enum smp_role named_role(const char *name)
{
	if (g_ascii_strcasecmp(name, "encryped-and-signed-data") == 0)
		return SMP_ROLE_DATA;
	if (g_ascii_strcasecmp(name, "encrypted-and-signed-data") == 0)
		return SMP_ROLE_ALIAS;
	if (is_key_name(name))
		return SMP_ROLE_KEY;
	return SMP_ROLE_OTHER;
}

static bool is_type(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	return ct && g_mime_content_type_is_type(ct, type, subtype);
}

struct walk {
	struct smp_mime *m;
	const struct smp_limits *l;
	GMimeObject *text_parent; /* parent of the explanation, once found */
	bool have_text;
	bool nested;              /* inside an attached message/rfc822 */
};

static enum smp_role leaf_role(struct walk *w, GMimeObject *obj,
			       GMimeObject *parent, const char **name)
{
	const char *disp = g_mime_object_get_disposition(obj);
	bool attachment = disp && g_ascii_strcasecmp(disp, "attachment") == 0;

	*name = g_mime_part_get_filename(GMIME_PART(obj));
	if (*name)
		return named_role(*name);
	if (attachment)
		return SMP_ROLE_OTHER;
	if (is_type(obj, "text", "plain") && !w->have_text) {
		w->have_text = true;
		w->text_parent = parent;
		return SMP_ROLE_TEXT;
	}
	if (is_type(obj, "text", "html") && parent &&
	    is_type(parent, "multipart", "alternative"))
		return SMP_ROLE_HTML; /* checked against text_parent later */
	return SMP_ROLE_OTHER;
}

static void walk_object(struct walk *w, GMimeObject *obj, GMimeObject *parent,
			unsigned depth)
{
	struct smp_leaf leaf = {obj, parent, SMP_ROLE_OTHER, NULL};

	if (w->m->cut_short)
		return;
	if (++w->m->nparts > w->l->max_parts || depth > w->l->max_depth) {
		w->m->bad_mime = true;
		w->m->cut_short = true;
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		if (n <= 0)
			w->m->bad_mime = true;
		for (int i = 0; i < n && !w->m->cut_short; i++)
			walk_object(w, g_mime_multipart_get_part(mp, i), obj,
				    depth + 1);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner =
			g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		bool was_nested = w->nested;
		leaf.role = SMP_ROLE_MESSAGE;
		g_array_append_val(w->m->leaves, leaf);
		/* look inside only for secret keys (SPEC: "or any part") */
		if (inner && g_mime_message_get_mime_part(inner)) {
			w->nested = true;
			walk_object(w, g_mime_message_get_mime_part(inner), obj,
				    depth + 1);
			w->nested = was_nested;
		}
		return;
	}
	if (GMIME_IS_PART(obj))
		leaf.role = w->nested ? SMP_ROLE_NESTED
				      : leaf_role(w, obj, parent, &leaf.name);
	g_array_append_val(w->m->leaves, leaf);
}

void smp_mime_parse(const char *msg, size_t len, const struct smp_limits *l,
		    struct smp_mime *m)
{
	GMimeParserOptions *opts = g_mime_parser_options_new();
	GMimeStream *stream;
	GMimeParser *parser;
	struct walk w = {m, l, NULL, false, false};

	memset(m, 0, sizeof(*m));
	m->leaves = g_array_new(FALSE, FALSE, sizeof(struct smp_leaf));
	g_mime_parser_options_set_warning_callback(opts, on_parser_warning, m);
	stream = g_mime_stream_mem_new_with_buffer(msg, len);
	parser = g_mime_parser_new_with_stream(stream);
	m->message = g_mime_parser_construct_message(parser, opts);
	g_object_unref(parser);
	g_object_unref(stream);
	g_mime_parser_options_free(opts);

	if (!m->message || !g_mime_message_get_mime_part(m->message)) {
		m->bad_mime = true;
		return;
	}
	walk_object(&w, g_mime_message_get_mime_part(m->message), NULL, 0);
	/* An html alternative counts as explanation only next to it. */
	for (guint i = 0; i < m->leaves->len; i++) {
		struct smp_leaf *lf = &g_array_index(m->leaves, struct smp_leaf, i);
		if (lf->role == SMP_ROLE_HTML &&
		    (!w.have_text || lf->parent != w.text_parent))
			lf->role = SMP_ROLE_OTHER;
	}
}

void smp_mime_free(struct smp_mime *m)
{
	if (m->message)
		g_object_unref(m->message);
	if (m->leaves)
		g_array_free(m->leaves, TRUE);
	memset(m, 0, sizeof(*m));
}

GByteArray *smp_mime_content(GMimeObject *part)
{
	GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(part));
	GMimeStream *out = g_mime_stream_mem_new();
	GByteArray *bytes;

	if (content)
		g_mime_data_wrapper_write_to_stream(content, out);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(out), FALSE);
	g_object_unref(out);
	return bytes;
}

bool smp_mime_raw(GMimeObject *part, const unsigned char **data, size_t *len,
		  GMimeContentEncoding *enc)
{
	GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(part));
	GMimeStream *st;
	GByteArray *ba;
	gint64 start, end;

	if (!content)
		return false;
	st = g_mime_data_wrapper_get_stream(content);
	if (!st || !GMIME_IS_STREAM_MEM(st))
		return false;
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(st));
	if (!ba)
		return false;
	start = st->bound_start;
	end = st->bound_end < 0 ? (gint64)ba->len : st->bound_end;
	if (start < 0 || end < start || end > (gint64)ba->len)
		return false;
	*data = ba->data + start;
	*len = (size_t)(end - start);
	*enc = g_mime_data_wrapper_get_encoding(content);
	return true;
}

static bool is_identity(GMimeContentEncoding enc)
{
	return enc == GMIME_CONTENT_ENCODING_DEFAULT ||
	       enc == GMIME_CONTENT_ENCODING_7BIT ||
	       enc == GMIME_CONTENT_ENCODING_8BIT ||
	       enc == GMIME_CONTENT_ENCODING_BINARY;
}

void smp_content_get(GMimeObject *part, struct smp_content *c)
{
	GMimeContentEncoding enc;

	memset(c, 0, sizeof(*c));
	if (smp_mime_raw(part, &c->data, &c->len, &enc) && is_identity(enc))
		return;
	c->owned = smp_mime_content(part);
	c->data = c->owned->data;
	c->len = c->owned->len;
}

void smp_content_release(struct smp_content *c)
{
	if (c->owned)
		g_byte_array_free(c->owned, TRUE);
	memset(c, 0, sizeof(*c));
}
