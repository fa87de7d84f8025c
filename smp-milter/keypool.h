/* keypool.h - keyring connections and crypto engines for the workers.
 *
 * A keyring connection and a crypto engine instance (lib/smp_crypto.h)
 * each serve one thread at a time: librnp's objects are not thread-safe,
 * and neither is a gpgme context. So the daemon keeps a small pool of
 * slots, each with one keyring connection and one engine instance beside
 * it, opened on first use (after the privilege drop) and reused by every
 * message; an instance is never shared between threads. With the default
 * engine (crypto.engine = rnp) no process is started and no GnuPG home is
 * made, ever: the keyring database is the only key store, and each slot's
 * engine keeps the keys it encrypts to parsed (crypto.cache_keys). A
 * reload that changes keyring.*, crypto.engine or (for gnupg) gnupg_home
 * retires the old ones as they come back.
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
 * - with crypto.engine = gnupg, a GnuPG home that is missing is made
 *   again (logged) before a message's gpg work.
 * Errors name the path and the system's reason.
 */
#ifndef SMP_MILTER_KEYPOOL_H
#define SMP_MILTER_KEYPOOL_H

#include "smp_config.h"
#include "smp_crypto.h"
#include "smp_harvest.h"
#include "smp_keyring.h"

#define SMP_KEYPOOL_SIZE 4

struct smp_keyslot {
	struct smp_keyring *kr;
	struct smp_crypto *crypto; /* opened only when a message needs it */
	char *target;             /* what kr was opened with */
	char *engine, *home;      /* what crypto was opened with (home:
				   * gnupg only, else NULL) */
	struct smp_harvest_memo *memo; /* known key blocks of kr's keyring
				   * (smp_keyslot_memo) */
	bool busy;
	bool live;                /* kr is open or being opened (guarded by
				   * the pool's lock) */
};

/* Takes a slot for cfg's keyring, waiting while all are busy. NULL with a
 * sentence in err when the keyring cannot be opened (or is missing, see
 * above): the caller fails the message as on_error says. */
struct smp_keyslot *smp_keypool_get(const struct smp_config *cfg, char *err,
				    size_t errlen);

/* The slot's crypto engine (cfg's crypto.engine, cache_keys), opened on
 * first use; for gnupg its home made again when it went missing. NULL
 * with err set. */
struct smp_crypto *smp_keyslot_crypto(struct smp_keyslot *s,
				      const struct smp_config *cfg, char *err,
				      size_t errlen);

/* The slot's memo of known key blocks (lib/smp_harvest.h), made on first
 * use and dropped with the keyring connection; NULL when out of memory
 * (then every key is inspected). */
struct smp_harvest_memo *smp_keyslot_memo(struct smp_keyslot *s);

void smp_keypool_put(struct smp_keyslot *s);

/* Closes every slot (at exit). */
void smp_keypool_shutdown(void);

#endif
