/* smp_packets.h - OpenPGP packet framing (RFC 4880 section 4, RFC 9580) */
#ifndef SMP_PACKETS_H
#define SMP_PACKETS_H

#include <stdbool.h>
#include <stddef.h>

#include "smp_b64.h"

/* Packet tags used by the checks. */
enum {
	SMP_TAG_PKESK = 1,
	SMP_TAG_SIGNATURE = 2,
	SMP_TAG_SKESK = 3,
	SMP_TAG_ONEPASS = 4,
	SMP_TAG_SECRET_KEY = 5,
	SMP_TAG_PUBLIC_KEY = 6,
	SMP_TAG_SECRET_SUBKEY = 7,
	SMP_TAG_COMPRESSED = 8,
	SMP_TAG_SED = 9,
	SMP_TAG_MARKER = 10,
	SMP_TAG_LITERAL = 11,
	SMP_TAG_TRUST = 12,
	SMP_TAG_USER_ID = 13,
	SMP_TAG_PUBLIC_SUBKEY = 14,
	SMP_TAG_USER_ATTR = 17,
	SMP_TAG_SEIPD = 18,
	SMP_TAG_MDC = 19,
	SMP_TAG_AEAD = 20,
	SMP_TAG_PADDING = 21,
};

enum smp_pkt_status {
	SMP_PKT_OK = 0,
	SMP_PKT_END,         /* no more input */
	SMP_PKT_EHEADER,     /* first octet lacks bit 7, or reserved tag 0 */
	SMP_PKT_ETRUNCATED,  /* header or body runs past the end of input */
	SMP_PKT_EPARTIAL,    /* partial length where it is not allowed */
};

struct smp_packet {
	unsigned tag;
	bool new_format;
	bool partial;        /* body was sent in partial-length chunks */
	bool indeterminate;  /* old format length type 3: runs to the end */
	size_t offset;       /* offset of the packet header */
	size_t body_len;     /* total body length, all chunks */
	const unsigned char *first;  /* first body chunk */
	size_t first_len;
	size_t first_avail;  /* octets readable at first (<= first_len) */
};

#define SMP_PKT_HEAD 320 /* body octets decoded for base64 input */

struct smp_pkt_iter {
	const unsigned char *buf;    /* the packets, or NULL: read from b64 */
	const struct smp_b64 *b64;
	size_t len;
	size_t off;
	unsigned char head[SMP_PKT_HEAD];
};

void smp_pkt_iter_init(struct smp_pkt_iter *it, const unsigned char *buf,
		       size_t len);

/* Iterates packets inside regular base64 text without decoding it all;
 * pkt->first then holds only the first SMP_PKT_HEAD body octets. */
void smp_pkt_iter_init_b64(struct smp_pkt_iter *it, const struct smp_b64 *b);

/*
 * Reads the next packet header and skips its body. Returns SMP_PKT_OK and
 * fills *pkt, SMP_PKT_END at the end of input, or an error (the iterator
 * then stays where the bad packet starts).
 */
enum smp_pkt_status smp_pkt_next(struct smp_pkt_iter *it,
				 struct smp_packet *pkt);

/* Does the first octet of buf look like an OpenPGP packet header? */
bool smp_pkt_looks_binary(const unsigned char *buf, size_t len);

/* What an encrypted message's packet sequence says. */
enum smp_esk_type { SMP_ESK_PUBKEY, SMP_ESK_SYMMETRIC };

struct smp_esk {
	enum smp_esk_type type;
	unsigned version;
	unsigned algo;       /* public-key algorithm (PKESK) or cipher (SKESK) */
	char keyid[17];      /* 16 hex digits, upper case; PKESK only */
};

#define SMP_MSG_MAX_ESK_KEPT 64

/* Reason bits from smp_packets_check_message (a subset of SMP_R_*). */
struct smp_msg_info {
	unsigned reasons;        /* SMP_R_BAD_PACKETS | NOT_ENCRYPTED | ... */
	unsigned n_esk;          /* session-key packets counted */
	unsigned n_esk_kept;     /* entries filled in esk[] */
	struct smp_esk esk[SMP_MSG_MAX_ESK_KEPT];
	unsigned data_tag;       /* 9, 18, 20, or 0 when none */
	bool secret_key;         /* the data is secret key material */
	/* SHA-256 over the session-key packets (their first SMP_PKT_HEAD
	 * octets: random per encryption) and the data packet's tag and
	 * length: names one payload for the replay check. "" when none. */
	char digest[65];
};

/*
 * Checks that buf is an OpenPGP encrypted message: optional marker
 * packets, session-key packets (tags 1, 3), then exactly one encrypted
 * data packet (tags 9, 18, 20) and nothing after it.
 */
void smp_packets_check_message(const unsigned char *buf, size_t len,
			       struct smp_msg_info *info);

/* The same check on base64 text indexed by smp_b64_index(). */
void smp_packets_check_message_b64(const struct smp_b64 *b,
				   struct smp_msg_info *info);

enum smp_keyblock_kind {
	SMP_KEYBLOCK_PUBLIC = 0,  /* well-framed transferable public key(s) */
	SMP_KEYBLOCK_SECRET,      /* holds secret key packets */
	SMP_KEYBLOCK_BAD,         /* not a public key block */
};

/*
 * Classifies a binary key block. *nkeys receives the number of primary
 * keys found (may be NULL).
 */
enum smp_keyblock_kind smp_packets_check_keyblock(const unsigned char *buf,
						  size_t len, unsigned *nkeys);

/*
 * The fingerprint of a public key packet body (RFC 4880 12.2, RFC 9580
 * 5.5.4) in upper-case hex: v4 SHA-1 over 0x99, a two-octet length and the
 * body; v5 and v6 SHA-256 over 0x9A / 0x9B, a four-octet length and the
 * body. out holds at least SMP_PKT_FPR_MAX octets; "" for another version
 * or a v4 body over 65535 octets.
 */
#define SMP_PKT_FPR_MAX 65
void smp_pkt_key_fpr(const unsigned char *body, size_t len,
		     char out[SMP_PKT_FPR_MAX]);

#endif
