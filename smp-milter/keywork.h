/* keywork.h - the keyring steps of one SMP message: harvest (SPEC 3.3,
 * 4) and the replay check (SPEC 2). */
#ifndef SMP_MILTER_KEYWORK_H
#define SMP_MILTER_KEYWORK_H

#include <stdbool.h>
#include <stddef.h>

#include "smp_config.h"
#include "smp_result.h"

struct smp_keywork_in {
	const struct smp_config *cfg;
	const char *env_from;              /* MAIL FROM address */
	const char *const *rcpts;          /* envelope recipients */
	size_t nrcpts;
	const char *from_raw;              /* the From: header, raw */
	unsigned nfrom_headers;            /* more than one: no harvest */
	const char *date_raw;              /* Date:, raw; may be NULL */
	const char *message_id;
	const char *const *auth_results;   /* every Authentication-Results */
	size_t nauth_results;
	const char *client_addr;
	bool outbound;
	/* other key sources (harvest.sources): raw Autocrypt: values, and the
	 * buffered message for application/pgp-keys parts (NULL if not kept) */
	const char *const *autocrypt;
	size_t nautocrypt;
	const char *msg;
	size_t msglen;
};

struct smp_keywork_out {
	bool harvest_ran;                  /* key parts were considered */
	unsigned harvested, refused;
	bool replay;                       /* the payload was seen before */
	char detail[1024];                 /* for the log line */
};

/*
 * Harvests r's public-key-N parts (r may be NULL for a non-SMP message)
 * and the Autocrypt/pgp-keys keys harvest.sources enables, and checks r's
 * payload for a replay.
 * Returns 0, or -1 on a database or crypto engine failure (nothing half-written:
 * the caller applies on_error) with err set.
 */
int smp_keywork_message(const struct smp_keywork_in *in,
			const struct smp_result *r, struct smp_keywork_out *out,
			char *err, size_t errlen);

#endif
