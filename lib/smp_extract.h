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
 * Every application/pgp-keys part of msg[0..len), with the same pre-scan
 * and limits as validation (not those inside an attached message/rfc822).
 * A part is binary OpenPGP (its first octet looks like a packet header) or
 * armored: one or more "PGP PUBLIC KEY BLOCK"s and nothing else but white
 * space before, between and after them (smp_armor_decode_all). The octets
 * of all its blocks, one after the other, make one found part, just as a
 * binary part holding several keys does; the harvest then takes each key
 * (up to limits.max_keys in the message). The part is added only when that
 * is a well-framed public key block within max_key_bytes (in all, not per
 * armored block); otherwise it is skipped whole, without a reason: text
 * around or between the blocks, another kind of block (a private key
 * included), a malformed block, secret key packets, too large. (An SMP
 * message's public-key-N part must hold exactly one block: there the
 * format says so, and anything else makes the message invalid, bad-key;
 * here several keys in one part are common and harmless, since every key
 * goes through the harvest rules on its own.) Returns the number of parts
 * added, or -1 when out of memory.
 */
int smp_extract_pgp_keys(const char *msg, size_t len,
			 const struct smp_check_opts *o, struct smp_found_keys *fk);

void smp_found_keys_clear(struct smp_found_keys *fk);

#endif
