/*
 * bench_validate.c - libsmp validation throughput vs a bare gmime parse.
 *
 *   bench_validate [--seconds S] [--size BYTES] [FILE...]
 *
 * Workloads: (a) the messages given (default: every .eml file in
 * fixtures/messages), all checked once per iteration; (b) a generated valid
 * SMP message of about BYTES (default 1 MiB): a PKESK v3 and a SEIPD packet
 * with a random body, base64'd into an attachment named
 * encryped-and-signed-data. For each, smp_validate_buffer() and a bare
 * gmime parse of the same bytes run the same number of iterations,
 * alternating in three rounds, for about S seconds (default 1.5) each.
 * Printed: messages/s, MB/s (10^6 bytes) and the ratio of validate time to
 * parse time.
 */
#include <errno.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmime/gmime.h>

#include "smp_validate.h"

#define BENCH_ROUNDS 3
#define BENCH_DEFAULT_GLOB "fixtures/messages/*.eml"
#define BENCH_BOUNDARY "smp-bench-boundary"

struct bench_msg {
	char *buf;
	size_t len;
};

struct bench_set {
	char label[64];
	struct bench_msg *msgs;
	size_t n;
	size_t cap;
	size_t bytes;
};

struct bench_timing {
	unsigned long iters;
	double validate_s;
	double parse_s;
};

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		fprintf(stderr, "bench_validate: out of memory\n");
		exit(1);
	}
	return p;
}

static void bench_set_add(struct bench_set *s, char *buf, size_t len)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->msgs = bench_xrealloc(s->msgs, s->cap * sizeof(*s->msgs));
	}
	s->msgs[s->n].buf = buf;
	s->msgs[s->n].len = len;
	s->n++;
	s->bytes += len;
}

static void bench_set_free(struct bench_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->msgs[i].buf);
	free(s->msgs);
	memset(s, 0, sizeof(*s));
}

/* Reads a whole file; returns NULL (errno set) on failure. */
static char *bench_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? 2 * cap : 65536;
			buf = bench_xrealloc(buf, cap);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* xorshift64*: deterministic filler for the synthetic packets. */
static uint64_t bench_rand_state = 0x9E3779B97F4A7C15ull;

static unsigned char bench_rand_byte(void)
{
	bench_rand_state ^= bench_rand_state >> 12;
	bench_rand_state ^= bench_rand_state << 25;
	bench_rand_state ^= bench_rand_state >> 27;
	return (unsigned char)((bench_rand_state * 0x2545F4914F6CDD1Dull) >> 56);
}

/* Appends an OpenPGP new-format packet header for tag and body length n. */
static size_t bench_pkt_header(unsigned char *p, unsigned tag, size_t n)
{
	p[0] = (unsigned char)(0xC0 | tag);
	if (n < 192) {
		p[1] = (unsigned char)n;
		return 2;
	}
	if (n < 8384) {
		p[1] = (unsigned char)(((n - 192) >> 8) + 192);
		p[2] = (unsigned char)((n - 192) & 0xFF);
		return 3;
	}
	p[1] = 0xFF;
	p[2] = (unsigned char)(n >> 24);
	p[3] = (unsigned char)(n >> 16);
	p[4] = (unsigned char)(n >> 8);
	p[5] = (unsigned char)n;
	return 6;
}

/* PKESK v3 (RSA, 2048-bit MPI) + SEIPD v1 with body_len random octets. */
static unsigned char *bench_make_packets(size_t body_len, size_t *len)
{
	const size_t pkesk_len = 1 + 8 + 1 + 2 + 256;
	unsigned char *p = bench_xrealloc(NULL, pkesk_len + body_len + 16);
	size_t n = 0, i;

	n += bench_pkt_header(p + n, 1, pkesk_len);
	p[n++] = 3; /* version */
	for (i = 0; i < 8; i++)
		p[n++] = bench_rand_byte(); /* key ID */
	p[n++] = 1;                          /* RSA */
	p[n++] = 0x08;                       /* MPI of 2048 bits */
	p[n++] = 0x00;
	p[n++] = (unsigned char)(0x80 | bench_rand_byte());
	for (i = 1; i < 256; i++)
		p[n++] = bench_rand_byte();

	n += bench_pkt_header(p + n, 18, body_len);
	p[n++] = 1; /* SEIPD version 1 */
	for (i = 1; i < body_len; i++)
		p[n++] = bench_rand_byte();
	*len = n;
	return p;
}

/* Base64 with 76-character CRLF-terminated lines. */
static size_t bench_base64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, n = 0, col = 0;

	for (i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (unsigned)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[n++] = tab[(v >> 18) & 63];
		out[n++] = tab[(v >> 12) & 63];
		out[n++] = left > 1 ? tab[(v >> 6) & 63] : '=';
		out[n++] = left > 2 ? tab[v & 63] : '=';
		col += 4;
		if (col == 76 || i + 3 >= len) {
			out[n++] = '\r';
			out[n++] = '\n';
			col = 0;
		}
	}
	return n;
}

/* A valid attachment-form SMP message of about size bytes. */
static char *bench_make_message(size_t size, size_t *len)
{
	static const char head[] =
		"From: Bench Sender <sender@example.org>\r\n"
		"To: Bench Recipient <recipient@example.org>\r\n"
		"Subject: " SMP_SUBJECT "\r\n"
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
		"Message-ID: <bench-synthetic@example.org>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"" BENCH_BOUNDARY
		"\"\r\n"
		"\r\n"
		"This is a multi-part message in MIME format.\r\n"
		"--" BENCH_BOUNDARY "\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"\r\n"
		"This message is encrypted with the Secure Messenger "
		"Protocol.\r\n"
		"\r\n"
		"--" BENCH_BOUNDARY "\r\n"
		"Content-Type: application/octet-stream; "
		"name=\"encryped-and-signed-data\"\r\n"
		"Content-Disposition: attachment; "
		"filename=\"encryped-and-signed-data\"\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n";
	static const char tail[] = "\r\n--" BENCH_BOUNDARY "--\r\n";
	size_t body_len, pkt_len, n;
	unsigned char *pkts;
	char *msg;

	/* Each 78-octet base64 line carries 57 octets. */
	body_len = size > 4096 ? (size - 2048) / 78 * 57 : 1024;
	pkts = bench_make_packets(body_len, &pkt_len);
	msg = bench_xrealloc(NULL, sizeof(head) + pkt_len / 57 * 78 + 160 +
					   sizeof(tail));
	memcpy(msg, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	n += bench_base64(pkts, pkt_len, msg + n);
	memcpy(msg + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	free(pkts);
	*len = n;
	return msg;
}

static int bench_validate_one(const struct bench_msg *m,
			      const struct smp_check_opts *o,
			      struct smp_result *r)
{
	memset(r, 0, sizeof(*r));
	return smp_validate_buffer(m->buf, m->len, o, r);
}

static void bench_parse_one(const struct bench_msg *m)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *message;

	stream = g_mime_stream_mem_new_with_buffer(m->buf, m->len);
	parser = g_mime_parser_new_with_stream(stream);
	message = g_mime_parser_construct_message(parser, NULL);
	if (message != NULL)
		g_object_unref(message);
	g_object_unref(parser);
	g_object_unref(stream);
}

static double bench_run_validate(const struct bench_set *s,
				 const struct smp_check_opts *o,
				 unsigned long iters)
{
	struct smp_result r;
	double t0 = bench_now();
	unsigned long it;
	size_t i;

	for (it = 0; it < iters; it++) {
		for (i = 0; i < s->n; i++) {
			if (bench_validate_one(&s->msgs[i], o, &r) != 0) {
				perror("bench_validate: smp_validate_buffer");
				exit(1);
			}
			smp_result_clear(&r);
		}
	}
	return bench_now() - t0;
}

static double bench_run_parse(const struct bench_set *s, unsigned long iters)
{
	double t0 = bench_now();
	unsigned long it;
	size_t i;

	for (it = 0; it < iters; it++)
		for (i = 0; i < s->n; i++)
			bench_parse_one(&s->msgs[i]);
	return bench_now() - t0;
}

/* Same iteration count for both, alternating, about seconds each. */
static void bench_measure(const struct bench_set *s,
			  const struct smp_check_opts *o, double seconds,
			  struct bench_timing *t)
{
	double one;
	int round;

	/* Warm-up, then calibrate on validation. */
	bench_run_parse(s, 1);
	one = bench_run_validate(s, o, 1);
	if (one < 1e-6)
		one = 1e-6;
	t->iters = (unsigned long)(seconds / BENCH_ROUNDS / one) + 1;
	t->validate_s = 0;
	t->parse_s = 0;
	for (round = 0; round < BENCH_ROUNDS; round++) {
		t->parse_s += bench_run_parse(s, t->iters);
		t->validate_s += bench_run_validate(s, o, t->iters);
	}
}

static void bench_print_header(void)
{
	printf("%-30s %5s %10s %7s | %10s %10s | %10s %10s | %6s\n", "workload",
	       "msgs", "bytes", "iters", "valid m/s", "valid MB/s",
	       "parse m/s", "parse MB/s", "ratio");
	printf("%.*s\n", 116,
	       "----------------------------------------------------------"
	       "----------------------------------------------------------");
}

static void bench_print_row(const struct bench_set *s,
			    const struct bench_timing *t)
{
	double msgs = (double)s->n * (double)t->iters * BENCH_ROUNDS;
	double mb = (double)s->bytes * (double)t->iters * BENCH_ROUNDS / 1e6;

	printf("%-30s %5zu %10zu %7lu | %10.1f %10.2f | %10.1f %10.2f | "
	       "%5.2fx\n",
	       s->label, s->n, s->bytes, t->iters * BENCH_ROUNDS,
	       msgs / t->validate_s, mb / t->validate_s, msgs / t->parse_s,
	       mb / t->parse_s, t->validate_s / t->parse_s);
}

/* Loads the fixtures; counts what validation says about them. */
static int bench_load(struct bench_set *s, int argc, char **argv,
		      const struct smp_check_opts *o)
{
	glob_t g;
	char **paths;
	size_t npaths, i, skipped = 0;
	unsigned valid = 0, invalid = 0, not_smp = 0;
	int use_glob = argc == 0;

	memset(&g, 0, sizeof(g));
	if (use_glob) {
		if (glob(BENCH_DEFAULT_GLOB, 0, NULL, &g) != 0)
			g.gl_pathc = 0;
		paths = g.gl_pathv;
		npaths = g.gl_pathc;
	} else {
		paths = argv;
		npaths = (size_t)argc;
	}
	for (i = 0; i < npaths; i++) {
		struct smp_result r;
		struct bench_msg m;

		m.buf = bench_read_file(paths[i], &m.len);
		if (m.buf == NULL) {
			fprintf(stderr, "bench_validate: %s: %s\n", paths[i],
				strerror(errno));
			if (use_glob)
				globfree(&g);
			return -1;
		}
		/* Validation refuses these unparsed; gmime would parse them. */
		if (m.len > o->limits.max_message_bytes) {
			free(m.buf);
			skipped++;
			continue;
		}
		if (bench_validate_one(&m, o, &r) != 0) {
			perror("bench_validate: smp_validate_buffer");
			exit(1);
		}
		if (!r.is_smp)
			not_smp++;
		else if (r.reasons == 0)
			valid++;
		else
			invalid++;
		smp_result_clear(&r);
		bench_set_add(s, m.buf, m.len);
	}
	if (use_glob)
		globfree(&g);
	snprintf(s->label, sizeof(s->label), "fixtures (%zu messages)", s->n);
	printf("fixtures: %zu messages, %zu bytes: %u valid, %u invalid, "
	       "%u not smp",
	       s->n, s->bytes, valid, invalid, not_smp);
	if (skipped > 0)
		printf("; %zu larger than max_message_bytes left out", skipped);
	printf("\n");
	return 0;
}

static void bench_usage(void)
{
	fprintf(stderr,
		"usage: bench_validate [--seconds S] [--size BYTES] [FILE...]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	struct smp_check_opts o;
	struct bench_set fix, syn;
	struct bench_timing t;
	struct smp_result r;
	char verdict[SMP_VERDICT_MAX];
	double seconds = 1.5;
	size_t size = 1024 * 1024;
	char *end;
	int i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (i + 1 >= argc)
			bench_usage();
		if (strcmp(argv[i], "--seconds") == 0) {
			seconds = strtod(argv[++i], &end);
			if (*end != '\0' || !(seconds > 0))
				bench_usage();
		} else if (strcmp(argv[i], "--size") == 0) {
			size = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || size == 0)
				bench_usage();
		} else {
			bench_usage();
		}
	}

	smp_lib_init();
	smp_check_opts_init(&o);
	memset(&fix, 0, sizeof(fix));
	memset(&syn, 0, sizeof(syn));

	if (bench_load(&fix, argc - i, argv + i, &o) != 0)
		return 1;

	{
		struct bench_msg m;

		m.buf = bench_make_message(size, &m.len);
		bench_set_add(&syn, m.buf, m.len);
	}
	snprintf(syn.label, sizeof(syn.label), "synthetic valid (%.2f MB)",
		 (double)syn.bytes / 1e6);
	if (bench_validate_one(&syn.msgs[0], &o, &r) != 0) {
		perror("bench_validate: smp_validate_buffer");
		return 1;
	}
	smp_verdict_format(&r, verdict, sizeof(verdict));
	printf("synthetic: %zu bytes: %s\n", syn.bytes, verdict);
	if (!r.is_smp || r.reasons != 0 || r.form != SMP_FORM_ATTACHMENT) {
		fprintf(stderr, "bench_validate: the synthetic message is not "
				"valid SMP\n");
		smp_result_clear(&r);
		return 1;
	}
	smp_result_clear(&r);

	printf("smp_validate_buffer vs bare gmime parse (same bytes, same "
	       "iterations, %d alternating rounds, ~%.1f s each);\n"
	       "ratio = validate time / parse time (goal <= 1.30)\n\n",
	       BENCH_ROUNDS, seconds);
	bench_print_header();
	if (fix.n > 0) {
		bench_measure(&fix, &o, seconds, &t);
		bench_print_row(&fix, &t);
	} else {
		printf("%-30s (none found)\n", "fixtures");
	}
	bench_measure(&syn, &o, seconds, &t);
	bench_print_row(&syn, &t);

	bench_set_free(&fix);
	bench_set_free(&syn);
	return 0;
}
