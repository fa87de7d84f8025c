/* keypool.h - keyring connections and gpgme contexts for the workers.
 *
 * A keyring connection and a gpgme context each serve one thread at a time
 * (lib/smp_keyring.h, lib/smp_gpg.h), and every gpgme context costs gpg
 * processes to set up, so the daemon keeps a small pool of pairs, opened on
 * first use (after the privilege drop) and reused by every message. A
 * reload that changes keyring.* or gnupg_home retires the old pairs as
 * they come back.
 *
 * What the daemon owns on disk is watched (doc/keyring.md, "When the
 * keyring or the GnuPG home goes away"):
 * - each time a connection is taken, smp_keyring_check() asks whether its
 *   file is still the one at keyring.path and undamaged. One that is not
 *   is logged once, closed, and every other connection to the old file is
 *   closed too (after the busy ones come back) before a new one opens:
 *   connections to the old and the new file must never be open at once,
 *   they would share one write-ahead log. Then the keyring is opened again;
 *   a file replaced by a good one just serves;
 * - a keyring this process has had open once is never created again: a
 *   file deleted while the daemon runs makes every message that needs the
 *   keyring fail (the caller tempfails it) until the file is back. The
 *   first open of a path creates a missing file (first start; logged).
 *   Its directory, when it goes missing later, is made again (mode 0700,
 *   logged), so that the file can be restored into it;
 * - a GnuPG home that is missing is made again (logged) before a
 *   message's gpg work.
 * Errors name the path and the system's reason.
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
	bool live;                /* kr is open or being opened (guarded by
				   * the pool's lock) */
};

/* Takes a slot for cfg's keyring, waiting while all are busy. NULL with a
 * sentence in err when the keyring cannot be opened (or is missing, see
 * above): the caller fails the message as on_error says. */
struct smp_keyslot *smp_keypool_get(const struct smp_config *cfg, char *err,
				    size_t errlen);

/* The slot's gpgme context, opened on first use; its home made again when
 * it went missing. NULL with err set. */
struct smp_gpg *smp_keyslot_gpg(struct smp_keyslot *s, const struct smp_config *cfg,
				char *err, size_t errlen);

void smp_keypool_put(struct smp_keyslot *s);

/* Closes every slot (at exit). */
void smp_keypool_shutdown(void);

#endif
