/* smp_result.h - the structured outcome of checking one message */
#ifndef SMP_RESULT_H
#define SMP_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "smp_packets.h"

/* Reason bits, in the order of SPEC.md section 2 (the output order). */
enum smp_reason {
	SMP_R_BAD_MIME = 1u << 0,
	SMP_R_NO_DATA = 1u << 1,
	SMP_R_MULTIPLE_DATA = 1u << 2,
	SMP_R_BAD_ARMOR = 1u << 3,
	SMP_R_NOT_ENCRYPTED = 1u << 4,
	SMP_R_BAD_PACKETS = 1u << 5,
	SMP_R_NO_RECIPIENTS = 1u << 6,
	SMP_R_NO_INTEGRITY = 1u << 7,
	SMP_R_BAD_KEY = 1u << 8,
	SMP_R_SECRET_KEY = 1u << 9,
	SMP_R_PLAIN_ATTACHMENT = 1u << 10,
	SMP_R_TOO_LARGE = 1u << 11,
};
#define SMP_R_COUNT 12

enum smp_form {
	SMP_FORM_NONE = 0,   /* no data found */
	SMP_FORM_ATTACHMENT, /* part named encryped-and-signed-data */
	SMP_FORM_ALIAS,      /* part named encrypted-and-signed-data */
	SMP_FORM_INLINE,     /* armored PGP MESSAGE in a text/plain body */
};

enum smp_encoding { SMP_ENC_NONE = 0, SMP_ENC_BINARY, SMP_ENC_ARMORED };

enum smp_key_kind { SMP_KEY_PUBLIC = 0, SMP_KEY_SECRET, SMP_KEY_BAD };

/* One public-key-N part. */
struct smp_key_part {
	char *name;               /* as found, e.g. "public-key-1" */
	size_t size;              /* decoded OpenPGP bytes (0 when unreadable) */
	enum smp_key_kind kind;
	enum smp_encoding encoding;
	unsigned nkeys;           /* primary keys in the block */
	unsigned char *data;      /* decoded binary key block, for harvesting */
};

struct smp_result {
	bool is_smp;              /* detection said yes */
	unsigned reasons;         /* SMP_R_* bits; 0 = valid */
	enum smp_form form;
	enum smp_encoding encoding;   /* of the encrypted data */
	size_t data_size;             /* decoded encrypted data bytes */
	unsigned nkeys;
	struct smp_key_part *keys;    /* nkeys entries */
	struct smp_msg_info msg;      /* session-key packets etc. */
};

/* Frees what a result owns and zeroes it; safe on a zeroed result. */
void smp_result_clear(struct smp_result *r);

/* "bad-mime", "no-data", ... for one SMP_R_* bit; NULL for others. */
const char *smp_reason_token(unsigned bit);

/* "attachment", "attachment-alias", "inline" or "none". */
const char *smp_form_name(enum smp_form f);

/*
 * Writes the verdict line ("valid; form=attachment; keys=1; recipients=2"
 * or "invalid; reason=bad-armor,plain-attachment") into buf. Returns the
 * length it needs (like snprintf); buf is always NUL-terminated when
 * size > 0. SMP_VERDICT_MAX always suffices.
 */
#define SMP_VERDICT_MAX 256
size_t smp_verdict_format(const struct smp_result *r, char *buf, size_t size);

#endif
