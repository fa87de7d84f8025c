/* smp_keyring_copy.h - copies an SQLite keyring file into an open keyring
 * (smpctl keys migrate --from sqlite:PATH): the way from one host's file
 * to the PostgreSQL keyring several hosts share.
 *
 * What is copied, and why running it again changes nothing:
 * - keys: each fingerprint the destination does not hold yet; one it
 *   holds keeps its record, but a revoked or blocked flag of the source
 *   is carried over (both are sticky: an old copy must not undo them);
 * - bindings: all the bindings of each address the destination has no
 *   binding for yet; an address that has any there is left as it is
 *   (counted): the destination is the truth once hosts use it, and adding
 *   the file's bindings next to its own could make two active keys; a
 *   binding whose address smp_address_check() refuses (stored before
 *   that check existed) is left out and counted: no key can be bound to
 *   it any more;
 * - events: in their order, with their times, each once: the copy leaves
 *   a "migrated" event whose subject is "sqlite:" and the file's real path
 *   and whose detail says through which event of the file it copied; the
 *   next run copies only the events after that one (a file that went on
 *   being used can be copied again before the switch).
 * Not copied: the caches, which fill again by themselves (the replay
 * log, the discovery cache, the known key blocks: a known block of the
 * file would name the file's material, not the destination's).
 * The file is opened read-only and read in one snapshot. Keys and bindings
 * are written in transactions of a few hundred rows, the events and the
 * "migrated" event in one last transaction: a run that fails half way
 * leaves whole rows, and the next run completes it.
 */
#ifndef SMP_KEYRING_COPY_H
#define SMP_KEYRING_COPY_H

#include <stdint.h>

#include "smp_keyring.h"

#define SMP_EVENT_MIGRATED "migrated"

struct smp_keyring_copied {
	unsigned long keys;             /* keys stored */
	unsigned long keys_present;     /* already there (flags carried over) */
	unsigned long bindings;         /* bindings stored */
	unsigned long addresses;        /* addresses they belong to */
	unsigned long addresses_kept;   /* addresses already bound there */
	unsigned long not_addresses;    /* bindings left out: their address
					 * is none by smp_address_check() */
	unsigned long events;           /* events copied by this run */
	int64_t events_before;          /* the last file event an earlier run
					 * copied (0: none) */
	int64_t events_through;         /* the last file event copied now */
};

/*
 * Copies the SQLite keyring at path into dst (any backend, normally
 * PostgreSQL; not the same file). 0, or -1 with one sentence in err
 * naming the file or the destination's error.
 */
int smp_keyring_copy_sqlite(const char *path, struct smp_keyring *dst,
			    struct smp_keyring_copied *out, char *err,
			    size_t errlen);

#endif
