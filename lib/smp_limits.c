/* smp_limits.c - default work bounds. */
#include "smp_limits.h"

void smp_limits_init(struct smp_limits *l)
{
	l->max_message_bytes = SMP_LIMITS_DEFAULT_MESSAGE_BYTES;
	l->max_parts = SMP_LIMITS_DEFAULT_PARTS;
	l->max_depth = SMP_LIMITS_DEFAULT_DEPTH;
	l->max_key_bytes = SMP_LIMITS_DEFAULT_KEY_BYTES;
	l->max_keys = SMP_LIMITS_DEFAULT_KEYS;
	l->max_uids = SMP_LIMITS_DEFAULT_UIDS;
}
