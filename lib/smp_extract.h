/* smp_extract.h - OpenPGP keys that travel outside SMP key parts:
 * Autocrypt: headers and application/pgp-keys parts (SPEC.md 3.3, when
 * harvest.sources enables them). What is found goes to smp_harvest. */
#ifndef SMP_EXTRACT_H
#define SMP_EXTRACT_H

#include <stddef.h>

#include "smp_keyring.h"
#include "smp_result.h"
#include "smp_validate.h"

struct smp_found_keys {
	struct smp_key_part *parts;      /* kind SMP_KEY_PUBLIC, data set */
	enum smp_key_source *sources;    /* one per part */
	size_t n;
};

/*
 * Autocrypt Level 1 headers: values is every Autocrypt: header of the
 * message. A header counts when it has addr= and keydata=, no unknown
 * critical attribute, and addr equals from_addr (case-insensitively);
 * when more than one counts, none does (Autocrypt 1.1 section 2.3). Its
 * keydata must be a well-framed public key no larger than max_key_bytes.
 * Returns the number of keys added to fk, or -1 when out of memory.
 */
int smp_extract_autocrypt(const char *const *values, size_t n,
			  const char *from_addr, const struct smp_limits *l,
			  struct smp_found_keys *fk);

/*
 * Every application/pgp-keys part of msg[0..len) (armored or binary, each
 * a well-framed public key block within max_key_bytes), with the same
 * pre-scan and limits as validation. Returns the number added, or -1.
 */
int smp_extract_pgp_keys(const char *msg, size_t len,
			 const struct smp_check_opts *o, struct smp_found_keys *fk);

void smp_found_keys_clear(struct smp_found_keys *fk);

#endif
