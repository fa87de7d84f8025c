/* discwork.h - key discovery for the workers (lib/smp_discovery.h,
 * doc/discovery.md): at RCPT time, for an outbound recipient whose policy
 * wants encryption and who has no usable key; and the background refresh
 * of keys that came from the network (maintain.c).
 *
 * A keyring connection from the pool (keypool.h) is held only while the
 * keyring is read or written, never while the network is asked: a slow
 * domain must not stop other messages from getting a connection.
 */
#ifndef SMP_MILTER_DISCWORK_H
#define SMP_MILTER_DISCWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp_config.h"

enum smp_discwork_verdict {
	SMP_DISCWORK_CONTINUE = 0, /* go on; the decision at end of message
				    * reads what discovery stored */
	SMP_DISCWORK_TEMPFAIL,     /* answer the RCPT with code/xcode/text */
};

struct smp_discwork_reply {
	char code[4], xcode[8];
	char text[256];
};

/*
 * One recipient at RCPT time. mode: its encrypt mode (not off). *deadline
 * is the message's discovery budget on smp_disc_now_ms()'s clock (0: not
 * started; set at the first lookup to now + discovery.timeout, so that
 * all recipients of a message share one budget). Fail closed: a lookup
 * error (or a keyring/engine failure) for a required recipient, or for an
 * opportunistic one with discovery.on_error = tempfail, is TEMPFAIL (451
 * 4.4.3 / 451 4.3.0), never "no key".
 */
enum smp_discwork_verdict smp_discwork_rcpt(const struct smp_config *cfg,
					    const char *qid, const char *rcpt,
					    enum smp_encrypt_mode mode,
					    int64_t *deadline,
					    struct smp_discwork_reply *reply);

/*
 * Background refresh (maintain.c): refreshes at most max entries whose
 * refresh is due (found keys whose cache entry has expired: it is set to
 * expire at 75-95% of the TTL, so before the TTL runs out), soonest
 * first, stopping early when *stop becomes true. Returns how many were
 * refreshed.
 */
unsigned smp_discwork_refresh_due(const struct smp_config *cfg, unsigned max,
				  const bool *stop /* read between entries */);

/* Frees the discovery network contexts (at exit). */
void smp_discwork_shutdown(void);

#endif
