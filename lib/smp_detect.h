/* smp_detect.h - is this a Secure Messenger Protocol message? */
#ifndef SMP_DETECT_H
#define SMP_DETECT_H

#include <stdbool.h>

#define SMP_SUBJECT "Secure Messenger Protocol Message"
#define SMP_SUBJECT_RAW_MAX 4096 /* longer raw Subject values never match */

enum smp_subject_match {
	SMP_MATCH_EXACT = 0, /* detect.subject_match = exact (default) */
	SMP_MATCH_CASELESS,  /* detect.subject_match = caseless */
};

/*
 * raw is a Subject header value as it travels (may be folded, may hold
 * RFC 2047 encoded-words). True when, decoded, unfolded and trimmed, it
 * equals SMP_SUBJECT under the given match mode.
 */
bool smp_detect_subject(const char *raw, enum smp_subject_match mode);

#endif
