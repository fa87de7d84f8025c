/* smp_limits.h - bounds on the work done for one message */
#ifndef SMP_LIMITS_H
#define SMP_LIMITS_H

#include <stddef.h>

/*
 * Every number here bounds work an untrusted message can cause. Exceeding
 * max_message_bytes, max_key_bytes or max_keys gives the reason "too-large";
 * exceeding max_parts or max_depth gives "bad-mime".
 */
struct smp_limits {
	size_t max_message_bytes; /* whole message, headers included */
	unsigned max_parts;       /* MIME parts (leaves and containers) */
	unsigned max_depth;       /* MIME nesting depth, top level = 0 */
	size_t max_key_bytes;     /* one public-key-N part, decoded */
	unsigned max_keys;        /* public-key-N parts per message */
	unsigned max_uids;        /* user IDs per key (harvesting) */
};

#define SMP_LIMITS_DEFAULT_MESSAGE_BYTES ((size_t)25 * 1024 * 1024)
#define SMP_LIMITS_DEFAULT_PARTS 100
#define SMP_LIMITS_DEFAULT_DEPTH 8
#define SMP_LIMITS_DEFAULT_KEY_BYTES ((size_t)64 * 1024)
#define SMP_LIMITS_DEFAULT_KEYS 8
#define SMP_LIMITS_DEFAULT_UIDS 16

/* Fills *l with the defaults above. */
void smp_limits_init(struct smp_limits *l);

#endif
