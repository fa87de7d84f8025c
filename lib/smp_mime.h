/* smp_mime.h - bounded MIME parsing and part roles (gmime 3) */
#ifndef SMP_MIME_H
#define SMP_MIME_H

#include <gmime/gmime.h>
#include <stdbool.h>
#include <stddef.h>

#include "smp_limits.h"

/* Bounds on Content-Type / Content-Disposition fields before gmime sees
 * them (gmime 3.2.13 issue 165, pairwise duplicate parameter checks). */
#define SMP_MIME_MAX_CT_BYTES 2048
#define SMP_MIME_MAX_CT_PARAMS 32

enum smp_role {
	SMP_ROLE_OTHER = 0,  /* anything else: a plain attachment */
	SMP_ROLE_DATA,       /* encryped-and-signed-data */
	SMP_ROLE_ALIAS,      /* encrypted-and-signed-data */
	SMP_ROLE_KEY,        /* public-key-N */
	SMP_ROLE_TEXT,       /* the explanation text/plain body */
	SMP_ROLE_HTML,       /* a text/html alternative of it */
	SMP_ROLE_MESSAGE,    /* message/rfc822: a plain attachment */
	SMP_ROLE_NESTED,     /* a part inside it: only checked for secret keys */
};

struct smp_leaf {
	GMimeObject *obj;     /* borrowed from the message */
	GMimeObject *parent;  /* enclosing multipart, or NULL */
	enum smp_role role;
	const char *name;     /* borrowed; NULL when unnamed */
};

struct smp_mime {
	GMimeMessage *message;
	bool bad_mime;        /* parser warnings or limits exceeded */
	bool cut_short;       /* the walk stopped at a limit */
	unsigned nparts;
	GArray *leaves;       /* of struct smp_leaf */
};

/* Offset just past the top-level header block (after its empty line). */
size_t smp_mime_header_end(const char *msg, size_t len);

/*
 * The raw value (folding kept) of the first top-level header called name,
 * g_malloc'd, at most 4 KiB of it; NULL when absent.
 */
char *smp_mime_header_raw(const char *msg, size_t len, const char *name);

/*
 * Checks the Content-Type/Content-Disposition bounds above and counts
 * Content-Type fields against l->max_parts. False: do not parse.
 */
bool smp_mime_prescan(const char *msg, size_t len, const struct smp_limits *l);

/* Parses and walks the message. Never fails on bad input: a message gmime
 * cannot construct leaves m->message NULL and sets m->bad_mime. */
void smp_mime_parse(const char *msg, size_t len, const struct smp_limits *l,
		    struct smp_mime *m);

void smp_mime_free(struct smp_mime *m);

/* The transfer-decoded content of a leaf part; g_byte_array_free(b, TRUE) it. */
GByteArray *smp_mime_content(GMimeObject *part);

/*
 * The content of a leaf part as it travels (transfer encoding not undone),
 * borrowed from the parser's buffer: valid while the message lives. False
 * when it is not held in memory that way.
 */
bool smp_mime_raw(GMimeObject *part, const unsigned char **data, size_t *len,
		  GMimeContentEncoding *enc);

/* A part's decoded content: borrowed when no decoding is needed. */
struct smp_content {
	const unsigned char *data;
	size_t len;
	GByteArray *owned;
};

void smp_content_get(GMimeObject *part, struct smp_content *c);
void smp_content_release(struct smp_content *c);

#endif
