/* keypool.h - keyring connections and gpgme contexts for the workers.
 *
 * A keyring connection and a gpgme context each serve one thread at a time
 * (lib/smp_keyring.h, lib/smp_gpg.h), and every gpgme context costs gpg
 * processes to set up, so the daemon keeps a small pool of pairs, opened on
 * first use (after the privilege drop) and reused by every message. A
 * reload that changes keyring.* or gnupg_home retires the old pairs as
 * they come back.
 */
#ifndef SMP_MILTER_KEYPOOL_H
#define SMP_MILTER_KEYPOOL_H

#include "smp_config.h"
#include "smp_gpg.h"
#include "smp_keyring.h"

#define SMP_KEYPOOL_SIZE 4

struct smp_keyslot {
	struct smp_keyring *kr;
	struct smp_gpg *gpg;      /* opened only when a message needs it */
	char *target, *home;      /* what they were opened with */
	bool busy;
};

/* Takes a slot for cfg's keyring, waiting while all are busy. NULL with a
 * sentence in err when the keyring cannot be opened. */
struct smp_keyslot *smp_keypool_get(const struct smp_config *cfg, char *err,
				    size_t errlen);

/* The slot's gpgme context, opened on first use. NULL with err set. */
struct smp_gpg *smp_keyslot_gpg(struct smp_keyslot *s, const struct smp_config *cfg,
				char *err, size_t errlen);

void smp_keypool_put(struct smp_keyslot *s);

/* Closes every slot (at exit). */
void smp_keypool_shutdown(void);

#endif
