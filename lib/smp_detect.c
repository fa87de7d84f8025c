/* smp_detect.c - SMP detection from the Subject header (SPEC.md 2). */
#include "smp_detect.h"

#include <gmime/gmime.h>
#include <string.h>

#include "smp_validate.h"

/*
 * Unfolds a raw header value: every line break, together with the run of
 * white space after it, becomes one space. Returns a g_malloc'd string.
 */
static char *unfold(const char *raw)
{
	size_t n = strlen(raw);
	char *out = g_malloc(n + 1), *o = out;

	for (const char *p = raw; *p;) {
		if (*p == '\r' || *p == '\n') {
			while (*p == '\r' || *p == '\n' || *p == ' ' || *p == '\t')
				p++;
			*o++ = ' ';
			continue;
		}
		*o++ = *p++;
	}
	*o = '\0';
	return out;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_encoded_word(const char *w, size_t n)
{
	return n >= 8 && w[0] == '=' && w[1] == '?' && w[n - 2] == '?' &&
	       w[n - 1] == '=';
}

/*
 * RFC 2047 decoding, one encoded-word at a time: gmime 3.2.13 joins
 * adjacent B-encoded words before decoding and so loses everything after
 * a padded first word (upstream issue 133). White space between two
 * encoded-words is dropped (RFC 2047 section 6.2); other text is kept.
 */
static char *decode_words(const char *s)
{
	GString *out = g_string_sized_new(strlen(s));
	bool prev_ew = false;

	while (*s) {
		const char *ws = s, *w;
		size_t wn;
		bool ew;

		while (is_ws(*s))
			s++;
		w = s;
		while (*s && !is_ws(*s))
			s++;
		wn = (size_t)(s - w);
		ew = is_encoded_word(w, wn);
		if (!(ew && prev_ew) || wn == 0)
			g_string_append_len(out, ws, w - ws);
		if (ew) {
			char *word = g_strndup(w, wn);
			char *dec = g_mime_utils_header_decode_text(NULL, word);
			g_string_append(out, dec ? dec : word);
			g_free(dec);
			g_free(word);
		} else {
			g_string_append_len(out, w, (gssize)wn);
		}
		if (wn)
			prev_ew = ew;
	}
	return g_string_free(out, FALSE);
}

bool smp_detect_subject(const char *raw, enum smp_subject_match mode)
{
	const size_t want = sizeof(SMP_SUBJECT) - 1;
	char *unfolded, *decoded = NULL;
	const char *s, *e;
	bool match = false;

	if (!raw)
		return false;
	/* bounded work: a raw Subject over 4 KiB is never SMP */
	if (strlen(raw) > SMP_SUBJECT_RAW_MAX)
		return false;
	smp_lib_init();
	unfolded = unfold(raw);
	s = unfolded;
	if (strstr(unfolded, "=?")) {
		decoded = decode_words(unfolded);
		s = decoded;
	}
	while (is_ws(*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_ws(e[-1]))
		e--;
	if ((size_t)(e - s) == want) {
		if (mode == SMP_MATCH_CASELESS)
			match = g_ascii_strncasecmp(s, SMP_SUBJECT, want) == 0;
		else
			match = memcmp(s, SMP_SUBJECT, want) == 0;
	}
	g_free(decoded);
	g_free(unfolded);
	return match;
}
