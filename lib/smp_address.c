/* smp_address.c - the mail address syntax check (see smp_address.h for the
 * grammar and the reasons behind it) and the quoting of untrusted text for
 * error sentences. No allocation, no locale: plain octets. */
#include "smp_address.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest address literal content that can be an IPv4 or IPv6 address
 * ("IPv6:" and a full IPv6 with an embedded IPv4 fit with room). */
#define ADDR_LITERAL_MAX 64

/* ---------------------------------------------------------------------- */
/* Characters                                                             */

size_t smp_utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned c = p[0];
	size_t len;
	uint32_t min, v;

	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, min = 0x80, v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3, min = 0x800, v = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, min = 0x10000, v = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	if (cp)
		*cp = v;
	return len;
}

struct addr_range {
	uint32_t lo, hi;
};

/* Unicode white space (besides the C1 NEL). */
static const struct addr_range addr_spaces[] = {
	{0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200A},
	{0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
	{0x3000, 0x3000},
};

/* C1 controls and characters that print as nothing or reorder what
 * follows: soft hyphen, Arabic letter mark, Mongolian vowel separator,
 * zero-width and bidirectional controls, word joiner and invisible
 * operators, noncharacters, BOM, interlinear annotation, tags. */
static const struct addr_range addr_invisible[] = {
	{0x0080, 0x009F}, {0x00AD, 0x00AD}, {0x061C, 0x061C},
	{0x180E, 0x180E}, {0x200B, 0x200F}, {0x202A, 0x202E},
	{0x2060, 0x206F}, {0xFDD0, 0xFDEF}, {0xFEFF, 0xFEFF},
	{0xFFF9, 0xFFFB}, {0xFFFE, 0xFFFF}, {0xE0000, 0xE007F},
};

static bool addr_in(const struct addr_range *r, size_t n, uint32_t cp)
{
	for (size_t i = 0; i < n; i++)
		if (cp >= r[i].lo && cp <= r[i].hi)
			return true;
	return false;
}

/* Every octet: no control, no white space, well-formed UTF-8 of code
 * points that are neither. */
static enum smp_address_status addr_chars(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n;

		if (p[i] < 0x20 || p[i] == 0x7F)
			return SMP_ADDR_CONTROL;
		if (p[i] == ' ')
			return SMP_ADDR_SPACE;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		n = smp_utf8_seq(p + i, len - i, &cp);
		if (n == 0)
			return SMP_ADDR_BAD_UTF8;
		if (addr_in(addr_spaces, sizeof(addr_spaces) / sizeof(addr_spaces[0]), cp))
			return SMP_ADDR_SPACE;
		if (addr_in(addr_invisible,
			    sizeof(addr_invisible) / sizeof(addr_invisible[0]), cp))
			return SMP_ADDR_CONTROL;
		i += n;
	}
	return SMP_ADDR_OK;
}

/* Octets of the UTF-8 sequence led by c (already checked well formed). */
static size_t addr_seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static bool addr_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* RFC 5322 atext, ASCII part. */
static bool addr_is_atext(unsigned char c)
{
	return addr_is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* ---------------------------------------------------------------------- */
/* Local part                                                             */

/* "..." up to the '@' that must follow the closing quote. */
static enum smp_address_status addr_quoted(const unsigned char *p, size_t len,
					   size_t *at)
{
	size_t i = 1, chars = 0;

	while (i < len && p[i] != '"') {
		if (p[i] == '\\') {
			/* quoted-pairSMTP, less the space */
			if (i + 1 >= len || p[i + 1] < 0x21 || p[i + 1] > 0x7E)
				return SMP_ADDR_BAD_QUOTED;
			i += 2;
		} else {
			i += addr_seq_len(p[i]);
		}
		chars++;
	}
	if (i >= len || chars == 0)
		return SMP_ADDR_BAD_QUOTED;
	if (i + 1 >= len || p[i + 1] != '@')
		return SMP_ADDR_BAD_QUOTED;
	*at = i + 1;
	return SMP_ADDR_OK;
}

/* Atom *("." Atom) up to the first '@'. */
static enum smp_address_status addr_dot_string(const unsigned char *p, size_t len,
					       size_t *at)
{
	size_t i = 0;
	bool after_dot = true; /* at the start, as after a dot */

	while (i < len && p[i] != '@') {
		if (p[i] == '.') {
			if (after_dot)
				return SMP_ADDR_BAD_LOCAL;
			after_dot = true;
			i++;
		} else if (p[i] >= 0x80 || addr_is_atext(p[i])) {
			after_dot = false;
			i += addr_seq_len(p[i]);
		} else {
			return SMP_ADDR_BAD_LOCAL;
		}
	}
	if (i == 0)
		return SMP_ADDR_NO_LOCAL;
	if (after_dot)
		return SMP_ADDR_BAD_LOCAL;
	*at = i;
	return SMP_ADDR_OK;
}

/* ---------------------------------------------------------------------- */
/* Domain                                                                 */

static enum smp_address_status addr_literal(const unsigned char *d, size_t n)
{
	char buf[ADDR_LITERAL_MAX + 1];
	unsigned char bin[16];
	size_t in = n - 2;

	if (n < 3 || d[n - 1] != ']' || in > ADDR_LITERAL_MAX)
		return SMP_ADDR_BAD_LITERAL;
	memcpy(buf, d + 1, in);
	buf[in] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, bin) == 1 ? SMP_ADDR_OK
							     : SMP_ADDR_BAD_LITERAL;
	return inet_pton(AF_INET, buf, bin) == 1 ? SMP_ADDR_OK : SMP_ADDR_BAD_LITERAL;
}

static enum smp_address_status addr_domain(const unsigned char *d, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return SMP_ADDR_NO_DOMAIN;
	if (d[0] == '[')
		return addr_literal(d, n);
	for (;;) {
		size_t start = i;

		while (i < n && d[i] != '.') {
			if (d[i] >= 0x80)
				i += addr_seq_len(d[i]);
			else if (addr_is_alnum(d[i]) || d[i] == '-')
				i++;
			else
				return SMP_ADDR_BAD_DOMAIN;
		}
		if (i == start || i - start > SMP_ADDRESS_LABEL_MAX ||
		    d[start] == '-' || d[i - 1] == '-')
			return SMP_ADDR_BAD_DOMAIN;
		if (i == n)
			return SMP_ADDR_OK;
		i++; /* the dot; a label must follow */
	}
}

/* ---------------------------------------------------------------------- */
/* The check                                                              */

enum smp_address_status smp_address_check_mem(const char *addr, size_t len)
{
	const unsigned char *p = (const unsigned char *)addr;
	enum smp_address_status st;
	size_t at = 0;

	if (!addr || len == 0)
		return SMP_ADDR_EMPTY;
	if (len > SMP_ADDRESS_LEN_MAX)
		return SMP_ADDR_TOO_LONG;
	st = addr_chars(p, len);
	if (st != SMP_ADDR_OK)
		return st;
	if (!memchr(p, '@', len))
		return SMP_ADDR_NO_AT;
	st = p[0] == '"' ? addr_quoted(p, len, &at) : addr_dot_string(p, len, &at);
	if (st != SMP_ADDR_OK)
		return st;
	return addr_domain(p + at + 1, len - at - 1);
}

enum smp_address_status smp_address_check(const char *addr)
{
	if (!addr)
		return SMP_ADDR_EMPTY;
	/* strnlen: never scan more than one octet past the limit */
	return smp_address_check_mem(addr, strnlen(addr, SMP_ADDRESS_LEN_MAX + 1));
}

const char *smp_address_strerror(enum smp_address_status st)
{
	switch (st) {
	case SMP_ADDR_OK:
		return "";
	case SMP_ADDR_EMPTY:
		return "it is empty";
	case SMP_ADDR_TOO_LONG:
		return "it is longer than 254 octets";
	case SMP_ADDR_CONTROL:
		return "it holds a control or invisible character";
	case SMP_ADDR_SPACE:
		return "it holds white space";
	case SMP_ADDR_BAD_UTF8:
		return "it is not valid UTF-8";
	case SMP_ADDR_NO_AT:
		return "it has no '@'";
	case SMP_ADDR_NO_LOCAL:
		return "nothing comes before the '@'";
	case SMP_ADDR_BAD_LOCAL:
		return "the part before the '@' is not words of letters, digits and "
		       "!#$%&'*+-/=?^_`{|}~ joined by single dots";
	case SMP_ADDR_BAD_QUOTED:
		return "the quoted part before the '@' is empty, not closed, not "
		       "followed by the '@', or escapes a character that is not "
		       "printable ASCII";
	case SMP_ADDR_NO_DOMAIN:
		return "nothing comes after the '@'";
	case SMP_ADDR_BAD_DOMAIN:
		return "the domain is not labels of letters, digits and '-' joined "
		       "by single dots (1 to 63 octets each, no '-' at either end)";
	case SMP_ADDR_BAD_LITERAL:
		return "the domain literal is not [IPv4 address] or [IPv6:IPv6 "
		       "address]";
	}
	return "it is not a mail address";
}

/* ---------------------------------------------------------------------- */
/* Quoting                                                                */

char *smp_quote_mem(char *buf, size_t size, const char *arg, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)arg;
	char tmp[SMP_QUOTE_ARG_SIZE];
	size_t o = 0, shown = len < SMP_QUOTE_ARG_SHOWN ? len : SMP_QUOTE_ARG_SHOWN;

	if (!buf || size == 0)
		return buf;
	if (!arg) {
		snprintf(buf, size, "(none)");
		return buf;
	}
	tmp[o++] = '\'';
	for (size_t i = 0; i < shown; i++) {
		if (p[i] == '\'' || p[i] == '\\') {
			tmp[o++] = '\\';
			tmp[o++] = (char)p[i];
		} else if (p[i] >= 0x20 && p[i] < 0x7F) {
			tmp[o++] = (char)p[i];
		} else {
			tmp[o++] = '\\';
			tmp[o++] = 'x';
			tmp[o++] = hex[p[i] >> 4];
			tmp[o++] = hex[p[i] & 0xF];
		}
	}
	tmp[o++] = '\'';
	tmp[o] = '\0';
	if (len > shown)
		snprintf(tmp + o, sizeof(tmp) - o, "... (%zu octets)", len);
	snprintf(buf, size, "%s", tmp);
	return buf;
}

char *smp_quote_arg(char *buf, size_t size, const char *arg)
{
	return smp_quote_mem(buf, size, arg, arg ? strlen(arg) : 0);
}

char *smp_escape_field(const char *text)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)text;
	size_t len, o = 0;
	char *out;

	if (!text)
		return NULL;
	len = strlen(text);
	if (len > (SIZE_MAX - 1) / 4)
		return NULL;
	out = malloc(4 * len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (p[i] > 0x20 && p[i] < 0x7F) {
			out[o++] = (char)p[i];
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 0xF];
		}
	}
	out[o] = '\0';
	return out;
}
