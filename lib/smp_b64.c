/* smp_b64.c - regular-shape base64 indexing and random-access decoding. */
#include "smp_b64.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* 0..63 for the base64 alphabet, -1 for anything else ('=' too). */
const signed char smp_b64_val[256] = {
#define X -1
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  62, X,  X,  X,  63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X,  X,  X,  X,  X,  X,
	X,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X,  X,  X,  X,  X,
	X,  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
#undef X
};

static bool valid_scalar(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (smp_b64_val[p[i]] < 0)
			return false;
	return true;
}

#ifdef __SSE2__
/* All 16 octets in [A-Za-z0-9+/]? (signed compares: octets >= 0x80 fail)
 * Inlined: it runs once per 16 octets of a 1 MB part. */
static inline __attribute__((always_inline)) bool valid16(const unsigned char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
#define IN(lo, hi) _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8((char)((lo) - 1))), \
				 _mm_cmplt_epi8(v, _mm_set1_epi8((char)((hi) + 1))))
	__m128i ok = _mm_or_si128(_mm_or_si128(IN('A', 'Z'), IN('a', 'z')), IN('0', '9'));
#undef IN
	ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('+')));
	ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('/')));
	return _mm_movemask_epi8(ok) == 0xFFFF;
}
#endif

/* n octets all base64 alphabet characters (no padding)? */
static bool valid_run(const unsigned char *p, size_t n)
{
#ifdef __SSE2__
	size_t i = 0;
	if (n < 16)
		return valid_scalar(p, n);
	for (; i + 16 <= n; i += 16)
		if (!valid16(p + i))
			return false;
	return i == n || valid16(p + n - 16); /* overlapping tail */
#else
	return valid_scalar(p, n);
#endif
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool smp_b64_index(struct smp_b64 *b, const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	const char *nl = memchr(text, '\n', len);
	size_t line, eol, stride, pos, last_len, pad = 0, end = len;

	memset(b, 0, sizeof(*b));
	/* trailing white space (blank lines) is not data */
	while (end > 0 && is_space(text[end - 1]))
		end--;
	if (end == 0)
		return false;
	if (!nl || (size_t)(nl - text) >= end) {
		line = end; /* a single line */
		eol = 0;
	} else {
		line = (size_t)(nl - text);
		eol = 1;
		if (line > 0 && text[line - 1] == '\r') {
			line--;
			eol = 2;
		}
	}
	if (line == 0 || line % 4)
		return false;
	stride = line + eol;
	/* full lines: exact length, same line break */
	for (pos = 0; eol && pos + stride <= end; pos += stride) {
		if (eol == 2 && t[pos + line] != '\r')
			return false;
		if (t[pos + stride - 1] != '\n')
			return false;
		if (!valid_run(t + pos, line))
			return false;
	}
	/* the last line: up to line characters, '=' padding at its end */
	last_len = end - pos;
	if (last_len > line || (eol == 0 && pos != 0))
		return false;
	while (pad < 2 && last_len > pad && text[pos + last_len - 1 - pad] == '=')
		pad++;
	if (!valid_run(t + pos, last_len - pad))
		return false;
	b->text = text;
	b->line = line;
	b->stride = eol ? stride : line + 1;
	b->nchars = pos / stride * line + last_len;
	if (b->nchars % 4)
		return false;
	if (pad && last_len == 0)
		return false;
	b->out_len = b->nchars / 4 * 3 - pad;
	return true;
}

/* The character at base64 index i. */
static unsigned char char_at(const struct smp_b64 *b, size_t i)
{
	return (unsigned char)b->text[i / b->line * b->stride + i % b->line];
}

bool smp_b64_read(const struct smp_b64 *b, size_t off, unsigned char *out,
		  size_t n)
{
	if (off > b->out_len || n > b->out_len - off)
		return false;
	while (n > 0) {
		size_t q = off / 3, k = off % 3;
		unsigned v = 0;
		unsigned char o[3];

		for (int j = 0; j < 4; j++) {
			signed char c = smp_b64_val[char_at(b, q * 4 + (size_t)j)];
			v = (v << 6) | (unsigned)(c < 0 ? 0 : c); /* '=' is 0 */
		}
		o[0] = (unsigned char)(v >> 16);
		o[1] = (unsigned char)(v >> 8);
		o[2] = (unsigned char)v;
		for (; k < 3 && n > 0; k++, n--, off++)
			*out++ = o[k];
	}
	return true;
}
