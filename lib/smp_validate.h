/* smp_validate.h - detect and validate an SMP message */
#ifndef SMP_VALIDATE_H
#define SMP_VALIDATE_H

#include <stddef.h>

#include "smp_detect.h"
#include "smp_limits.h"
#include "smp_result.h"

struct smp_check_opts {
	struct smp_limits limits;
	enum smp_subject_match match;
};

/* Defaults: smp_limits_init() and exact subject match. */
void smp_check_opts_init(struct smp_check_opts *o);

/* Initialises gmime once per process; safe from several threads. */
void smp_lib_init(void);

/*
 * Checks the RFC 5322 message msg[0..len) (LF or CRLF line ends). Fills
 * *r (call smp_result_clear() afterwards). Returns 0, or -1 on an internal
 * failure (out of memory) with errno set; a malformed message is never an
 * internal failure, it gets reason bits.
 */
int smp_validate_buffer(const char *msg, size_t len,
			const struct smp_check_opts *o, struct smp_result *r);

#endif
