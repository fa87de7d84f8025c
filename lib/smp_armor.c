/* smp_armor.c - strict OpenPGP ASCII armor decoding with CRC-24 check.
 *
 * GLib's base64 decoder skips characters outside the alphabet, which is
 * exactly what a validator must not do, so the armor body is checked and
 * decoded here in one pass.
 */
#include "smp_armor.h"
#include "smp_b64.h"

#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARMOR_DASHES "-----"
#define ARMOR_BEGIN "-----BEGIN PGP "
#define ARMOR_END "-----END PGP "

static uint32_t crc24_table[256];
static pthread_once_t crc24_once = PTHREAD_ONCE_INIT;

static void crc24_table_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = (uint32_t)i << 16;
		for (int k = 0; k < 8; k++) {
			c <<= 1;
			if (c & 0x1000000)
				c ^= 0x1864CFB;
		}
		crc24_table[i] = c & 0xFFFFFF;
	}
}

uint32_t smp_crc24(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xB704CE;

	pthread_once(&crc24_once, crc24_table_init);
	while (n--)
		crc = ((crc << 8) ^ crc24_table[((crc >> 16) ^ *p++) & 0xFF]) &
		      0xFFFFFF;
	return crc;
}

/* 0..63 for alphabet characters, 64 for '=', 0xFF for anything else
 * (the alphabet itself is smp_b64.c's table). */
static unsigned b64_value(unsigned char c)
{
	if (c == '=')
		return 64;
	return smp_b64_val[c] < 0 ? 0xFF : (unsigned)smp_b64_val[c];
}

/* A line of the input: [start, end) without the line break and without
 * trailing white space; next is where the following line starts. */
struct armor_line {
	const char *start;
	const char *end;
	const char *next;
};

static bool line_next(const char *p, const char *lim, struct armor_line *l)
{
	const char *nl;

	if (p >= lim)
		return false;
	nl = memchr(p, '\n', (size_t)(lim - p));
	l->start = p;
	l->next = nl ? nl + 1 : lim;
	l->end = nl ? nl : lim;
	while (l->end > l->start &&
	       (l->end[-1] == '\r' || l->end[-1] == ' ' || l->end[-1] == '\t'))
		l->end--;
	return true;
}

static size_t line_len(const struct armor_line *l)
{
	return (size_t)(l->end - l->start);
}

static bool line_starts(const struct armor_line *l, const char *s)
{
	size_t n = strlen(s);
	return line_len(l) >= n && memcmp(l->start, s, n) == 0;
}

bool smp_armor_find(const char *text, size_t len, size_t *off)
{
	const size_t blen = sizeof(ARMOR_BEGIN) - 1;
	const char *p = text, *lim;

	if (len == 0)
		return false; /* text may be NULL then */
	lim = text + len;
	while (p < lim) {
		const char *hit = memmem(p, (size_t)(lim - p), ARMOR_BEGIN, blen);
		if (!hit)
			return false;
		if (hit == text || hit[-1] == '\n') {
			*off = (size_t)(hit - text);
			return true;
		}
		p = hit + 1;
	}
	return false;
}

/* Label between "-----BEGIN PGP " (or END) and the closing dashes. */
static bool line_label(const struct armor_line *l, size_t prefix,
		       const char **lab, size_t *lab_len)
{
	size_t n = line_len(l);

	if (n < prefix + 5 || memcmp(l->end - 5, ARMOR_DASHES, 5) != 0)
		return false;
	*lab = l->start + prefix;
	*lab_len = n - prefix - 5;
	return *lab_len > 0;
}

static enum smp_armor_type label_type(const char *lab, size_t n)
{
	static const struct {
		const char *label;
		enum smp_armor_type type;
	} map[] = {
		{"MESSAGE", SMP_ARMOR_MESSAGE},
		{"PUBLIC KEY BLOCK", SMP_ARMOR_PUBLIC_KEY},
		{"PRIVATE KEY BLOCK", SMP_ARMOR_PRIVATE_KEY},
		{"SECRET KEY BLOCK", SMP_ARMOR_PRIVATE_KEY},
		{"SIGNATURE", SMP_ARMOR_SIGNATURE},
		{"SIGNED MESSAGE", SMP_ARMOR_SIGNED},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strlen(map[i].label) == n && memcmp(map[i].label, lab, n) == 0)
			return map[i].type;
	return SMP_ARMOR_UNKNOWN;
}

/* "Key: value" with a key of letters, digits and '-'. */
static bool is_header_line(const struct armor_line *l)
{
	const char *p = l->start;

	if (p >= l->end || !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
		return false;
	while (p < l->end && (*p == '-' || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
		p++;
	return p + 1 < l->end && p[0] == ':' && p[1] == ' ';
}

static bool has_colon(const struct armor_line *l)
{
	return memchr(l->start, ':', line_len(l)) != NULL;
}

/* Base64 decoder state carried across lines. With out == NULL the
 * octets are only counted and checksummed (smp_armor_parse). */
struct b64_state {
	unsigned char *out;
	size_t len, cap;
	uint32_t crc;   /* CRC-24 of the octets so far */
	uint32_t acc;
	unsigned nacc;  /* sextets in acc */
	unsigned npad;  /* '=' seen */
	size_t nchars;  /* alphabet characters + padding */
};

/* Emits one decoded octet; the caller checked the bound. */
static void b64_put(struct b64_state *s, unsigned char c)
{
	s->crc = ((s->crc << 8) ^ crc24_table[((s->crc >> 16) ^ c) & 0xFF]) &
		 0xFFFFFF;
	if (s->out)
		s->out[s->len] = c;
	s->len++;
}

static enum smp_armor_status b64_line(struct b64_state *s,
				      const struct armor_line *l)
{
	for (const char *p = l->start; p < l->end; p++) {
		unsigned v = b64_value((unsigned char)*p);
		if (v == 0xFF)
			return SMP_ARMOR_EBASE64;
		s->nchars++;
		if (v == 64) {
			/* padding: only as the 3rd/4th char of a quantum */
			if (s->nacc + s->npad < 2)
				return SMP_ARMOR_EBASE64;
			s->npad++;
			if (s->nacc + s->npad > 4)
				return SMP_ARMOR_EBASE64;
			continue;
		}
		if (s->npad)
			return SMP_ARMOR_EBASE64; /* data after padding */
		s->acc = (s->acc << 6) | v;
		if (++s->nacc == 4) {
			if (s->len + 3 > s->cap)
				return SMP_ARMOR_ETOOBIG;
			b64_put(s, (unsigned char)(s->acc >> 16));
			b64_put(s, (unsigned char)(s->acc >> 8));
			b64_put(s, (unsigned char)s->acc);
			s->acc = 0;
			s->nacc = 0;
		}
	}
	return SMP_ARMOR_OK;
}

static enum smp_armor_status b64_finish(struct b64_state *s)
{
	unsigned n = s->nacc;

	if (n == 0 && s->npad == 0)
		return SMP_ARMOR_OK;
	if (n + s->npad != 4 || n < 2)
		return SMP_ARMOR_EBASE64;
	if (s->len + (n - 1) > s->cap)
		return SMP_ARMOR_ETOOBIG;
	if (n == 2) {
		b64_put(s, (unsigned char)(s->acc >> 4));
	} else {
		b64_put(s, (unsigned char)(s->acc >> 10));
		b64_put(s, (unsigned char)(s->acc >> 2));
	}
	s->nacc = 0;
	return SMP_ARMOR_OK;
}

static bool crc_line_value(const struct armor_line *l, uint32_t *crc)
{
	uint32_t v = 0;

	if (line_len(l) != 5)
		return false;
	for (int i = 1; i < 5; i++) {
		unsigned c = b64_value((unsigned char)l->start[i]);
		if (c > 63)
			return false;
		v = (v << 6) | c;
	}
	*crc = v;
	return true;
}

/* smp_armor_decode (keep: the octets are stored, at most max_out) and
 * smp_armor_parse (nothing stored, no bound). */
static enum smp_armor_status armor_read(const char *text, size_t len,
					size_t max_out, bool keep,
					struct smp_armor *out)
{
	const char *lim, *p;
	const char *lab, *elab;
	size_t lab_len, elab_len, off;
	struct armor_line l;
	struct b64_state s = {0};
	enum smp_armor_status st;
	uint32_t crc = 0;
	bool have_crc = false;

	memset(out, 0, sizeof(*out));
	pthread_once(&crc24_once, crc24_table_init);
	s.crc = 0xB704CE;
	if (!smp_armor_find(text, len, &off))
		return SMP_ARMOR_ENOBEGIN; /* also for len 0, text NULL */
	lim = text + len;
	out->begin_off = off;
	line_next(text + off, lim, &l);
	if (!line_label(&l, sizeof(ARMOR_BEGIN) - 1, &lab, &lab_len))
		return SMP_ARMOR_EHEADER;
	out->type = label_type(lab, lab_len);
	p = l.next;

	if (out->type == SMP_ARMOR_SIGNED) {
		/* Cleartext signature: the text is not armored data; only
		 * the label matters to the caller. */
		out->end_off = (size_t)(p - text);
		return SMP_ARMOR_OK;
	}

	/* Armor headers, ended by an empty line. Tolerate a missing empty
	 * line when the first line is already base64. */
	while (line_next(p, lim, &l)) {
		if (line_len(&l) == 0) {
			p = l.next;
			break;
		}
		if (!has_colon(&l))
			break; /* data starts; no header block */
		if (!is_header_line(&l))
			return SMP_ARMOR_EHEADER;
		p = l.next;
	}
	if (p >= lim)
		return SMP_ARMOR_ENOEND;

	/* Output can't exceed 3/4 of the remaining text. */
	s.cap = (size_t)(lim - p) / 4 * 3 + 3;
	if (keep) {
		if (s.cap > max_out)
			s.cap = max_out;
		s.out = malloc(s.cap ? s.cap : 1);
		if (!s.out)
			return SMP_ARMOR_ENOMEM;
	}

	st = SMP_ARMOR_ENOEND;
	while (line_next(p, lim, &l)) {
		p = l.next;
		if (line_starts(&l, ARMOR_DASHES)) {
			if (!line_starts(&l, ARMOR_END)) {
				st = SMP_ARMOR_ENOEND;
				goto fail;
			}
			if (!line_label(&l, sizeof(ARMOR_END) - 1, &elab,
					&elab_len) ||
			    elab_len != lab_len || memcmp(elab, lab, lab_len)) {
				st = SMP_ARMOR_EMISMATCH;
				goto fail;
			}
			st = SMP_ARMOR_OK;
			break;
		}
		if (line_len(&l) == 0)
			continue;
		if (l.start[0] == '=' && !have_crc &&
		    (line_len(&l) == 5 || s.nacc + s.npad == 0)) {
			if (!crc_line_value(&l, &crc)) {
				st = SMP_ARMOR_ECRC;
				goto fail;
			}
			have_crc = true;
			continue;
		}
		if (have_crc) {
			st = SMP_ARMOR_ECRC; /* data after the checksum */
			goto fail;
		}
		st = b64_line(&s, &l);
		if (st != SMP_ARMOR_OK)
			goto fail;
		st = SMP_ARMOR_ENOEND;
	}
	if (st != SMP_ARMOR_OK)
		goto fail;
	st = b64_finish(&s);
	if (st != SMP_ARMOR_OK)
		goto fail;
	if (s.nchars == 0) {
		st = SMP_ARMOR_EEMPTY;
		goto fail;
	}
	if (have_crc && s.crc != crc) {
		st = SMP_ARMOR_ECRC;
		goto fail;
	}
	out->data = s.out;
	out->len = s.len;
	out->has_crc = have_crc;
	out->end_off = (size_t)(p - text);
	return SMP_ARMOR_OK;
fail:
	free(s.out);
	return st;
}

enum smp_armor_status smp_armor_decode(const char *text, size_t len,
				       size_t max_out, struct smp_armor *out)
{
	return armor_read(text, len, max_out, true, out);
}

enum smp_armor_status smp_armor_parse(const char *text, size_t len,
				      struct smp_armor *out)
{
	return armor_read(text, len, 0, false, out);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void smp_armor_scan_rest(const char *text, size_t len, size_t off,
			 struct smp_armor_rest *rest)
{
	const size_t blen = sizeof(ARMOR_BEGIN) - 1;
	size_t p = off < len ? off : len;

	memset(rest, 0, sizeof(*rest));
	while (p < len) {
		const char *nl;
		struct smp_armor b;

		if (is_space(text[p])) {
			p++;
			continue;
		}
		/* A BEGIN line counts only at the start of a line. */
		if ((p == 0 || text[p - 1] == '\n') && len - p >= blen &&
		    memcmp(text + p, ARMOR_BEGIN, blen) == 0) {
			enum smp_armor_status st =
				smp_armor_parse(text + p, len - p, &b);
			rest->blocks[b.type]++;
			if (st == SMP_ARMOR_OK) {
				p += b.end_off;
				continue;
			}
			/* Where a broken block ends is unknown: go on
			 * after its BEGIN line, looking for more blocks. */
			rest->broken++;
		} else {
			rest->text = true;
		}
		nl = memchr(text + p, '\n', len - p);
		if (!nl)
			break;
		p = (size_t)(nl + 1 - text);
	}
}

/* The line number of text[off]. */
static unsigned line_of(const char *text, size_t off)
{
	unsigned n = 1;

	for (size_t i = 0; i < off; i++)
		n += text[i] == '\n';
	return n;
}

enum smp_armor_status smp_armor_decode_all(const char *text, size_t len,
					   enum smp_armor_type type,
					   size_t max_out,
					   struct smp_armor_all *out)
{
	const size_t blen = sizeof(ARMOR_BEGIN) - 1;
	enum smp_armor_status st = SMP_ARMOR_OK;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	for (;;) {
		struct smp_armor a;
		size_t at = off;
		unsigned char *grown;

		while (at < len && is_space(text[at]))
			at++;
		if (at == len)
			break;
		out->err_off = at;
		/* a BEGIN line, at the start of a line, or stray text */
		if ((at > 0 && text[at - 1] != '\n') || len - at < blen ||
		    memcmp(text + at, ARMOR_BEGIN, blen) != 0) {
			st = SMP_ARMOR_ETEXT;
			break;
		}
		st = smp_armor_decode(text + at, len - at, max_out - out->len, &a);
		if (st == SMP_ARMOR_OK &&
		    (a.type != type || type == SMP_ARMOR_SIGNED ||
		     type == SMP_ARMOR_UNKNOWN)) {
			out->err_type = a.type;
			st = SMP_ARMOR_ETYPE;
		}
		if (st != SMP_ARMOR_OK) {
			smp_armor_free(&a);
			break;
		}
		if (!out->data) {
			out->data = a.data; /* the first block's octets */
			out->len = a.len;
		} else {
			grown = realloc(out->data, out->len + a.len);
			if (!grown) {
				smp_armor_free(&a);
				st = SMP_ARMOR_ENOMEM;
				break;
			}
			memcpy(grown + out->len, a.data, a.len);
			out->data = grown;
			out->len += a.len;
			smp_armor_free(&a);
		}
		out->nblocks++;
		off = at + a.end_off;
	}
	if (st == SMP_ARMOR_OK && out->nblocks == 0) {
		st = SMP_ARMOR_ENOBEGIN;
		out->err_off = len;
	}
	if (st != SMP_ARMOR_OK) {
		free(out->data);
		out->data = NULL;
		out->len = 0;
		out->err_line = line_of(text, out->err_off);
	}
	return st;
}

void smp_armor_all_free(struct smp_armor_all *a)
{
	if (!a)
		return;
	free(a->data);
	a->data = NULL;
	a->len = 0;
}

void smp_armor_free(struct smp_armor *a)
{
	if (!a)
		return;
	free(a->data);
	a->data = NULL;
	a->len = 0;
}

const char *smp_armor_strerror(enum smp_armor_status st)
{
	switch (st) {
	case SMP_ARMOR_OK:
		return "ok";
	case SMP_ARMOR_ENOBEGIN:
		return "no BEGIN PGP line";
	case SMP_ARMOR_ENOEND:
		return "no END PGP line";
	case SMP_ARMOR_EMISMATCH:
		return "END line does not match BEGIN line";
	case SMP_ARMOR_EHEADER:
		return "malformed armor header line";
	case SMP_ARMOR_EBASE64:
		return "invalid base64 data";
	case SMP_ARMOR_ECRC:
		return "CRC-24 checksum missing, malformed or mismatched";
	case SMP_ARMOR_EEMPTY:
		return "armor holds no data";
	case SMP_ARMOR_ETOOBIG:
		return "armored data exceeds the size limit";
	case SMP_ARMOR_ENOMEM:
		return "out of memory";
	case SMP_ARMOR_ETEXT:
		return "text outside the armored blocks (only white space may "
		       "surround them)";
	case SMP_ARMOR_ETYPE:
		return "an armored block of another type";
	}
	return "unknown armor error";
}

char *smp_armor_encode(enum smp_armor_type type, const unsigned char *data,
		       size_t len)
{
	const char *label;
	unsigned char crc[3];
	uint32_t c = smp_crc24(data, len);
	gchar *b64, *crc64;
	GString *out;

	switch (type) {
	case SMP_ARMOR_MESSAGE:
		label = "MESSAGE";
		break;
	case SMP_ARMOR_PUBLIC_KEY:
		label = "PUBLIC KEY BLOCK";
		break;
	case SMP_ARMOR_PRIVATE_KEY:
		label = "PRIVATE KEY BLOCK";
		break;
	case SMP_ARMOR_SIGNATURE:
		label = "SIGNATURE";
		break;
	default:
		return NULL;
	}
	crc[0] = (unsigned char)(c >> 16);
	crc[1] = (unsigned char)(c >> 8);
	crc[2] = (unsigned char)c;
	b64 = g_base64_encode(data, len); /* glib: the plain encoding */
	crc64 = g_base64_encode(crc, 3);
	out = g_string_sized_new(strlen(b64) * 66 / 64 + 128);
	g_string_append_printf(out, "-----BEGIN PGP %s-----\n\n", label);
	for (size_t i = 0, n = strlen(b64); i < n; i += 64) {
		g_string_append_len(out, b64 + i, (gssize)(n - i < 64 ? n - i : 64));
		g_string_append_c(out, '\n');
	}
	g_string_append_printf(out, "=%s\n-----END PGP %s-----\n", crc64, label);
	g_free(b64);
	g_free(crc64);
	{
		/* hand back malloc'd memory, as the rest of the API does */
		char *ret = strdup(out->str);
		g_string_free(out, TRUE);
		return ret;
	}
}
