/* smp_detect.c - SMP detection from the Subject header (SPEC.md 2). */
#include "smp_detect.h"

#include <gmime/gmime.h>
#include <string.h>

#include "smp_validate.h"

/*
 * Unfolds a raw header value: every line break together with the run of
 * white space around it becomes one space. Returns a g_malloc'd string.
 */
static char *unfold(const char *raw)
{
	size_t n = strlen(raw);
	char *out = g_malloc(n + 1), *o = out;

	for (const char *p = raw; *p;) {
		if (*p == '\r' || *p == '\n') {
			while (o > out && (o[-1] == ' ' || o[-1] == '\t'))
				o--;
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

bool smp_detect_subject(const char *raw, enum smp_subject_match mode)
{
	const size_t want = sizeof(SMP_SUBJECT) - 1;
	char *unfolded, *decoded = NULL;
	const char *s, *e;
	bool match = false;

	if (!raw)
		return false;
	/* A subject far longer than ours can't match; don't decode it. */
	if (strlen(raw) > 16 * want)
		return false;
	smp_lib_init();
	unfolded = unfold(raw);
	s = unfolded;
	if (strstr(unfolded, "=?")) {
		decoded = g_mime_utils_header_decode_text(NULL, unfolded);
		if (decoded)
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
