/* smp_encrypt.h - transparent outbound PGP/MIME encryption (SPEC.md 5,
 * RFC 3156) of one message as the milter buffers it.
 *
 * What becomes of a message:
 *
 *   outer header   every field stays, except the Content-* fields (all of
 *                  them: Content-Type, -Transfer-Encoding, -Disposition,
 *                  -ID, -Description, -Language, ...), which move inside;
 *                  the new Content-Type is multipart/encrypted; a missing
 *                  MIME-Version: 1.0 is added; X-SMP-Encrypted: pgp-mime
 *                  marks the result; with protect_subject every Subject
 *                  reads "..." outside.
 *   outer body     multipart/encrypted; protocol="application/pgp-encrypted"
 *                  with a boundary made here from random octets:
 *                  application/pgp-encrypted ("Version: 1") and
 *                  application/octet-stream (the armored PGP MESSAGE),
 *                  CRLF line ends, 7bit, lines under 78 octets.
 *   inner entity   (what the recipient decrypts) the original Content-*
 *                  fields, byte for byte (line ends of the header made
 *                  CRLF: libmilter hands folded values with bare LF), an
 *                  empty line, then the original body byte for byte.
 *                  With protect_subject (header protection in the style
 *                  of RFC 9788 and its predecessor, the Autocrypt/Enigmail
 *                  "protected headers"): copies of the user-visible fields
 *                  From, To, Cc, Reply-To, Subject, Date, Message-ID,
 *                  In-Reply-To, References come first, and the inner
 *                  Content-Type gets '; protected-headers="v1"' appended to
 *                  its original bytes (a message without Content-Type gets
 *                  "text/plain; charset=us-ascii; protected-headers="v1"").
 *
 * The inner entity is assembled from the original bytes and never passes
 * through gmime's serializer (gmime 3.2.13 issue 165; and re-serialising
 * would change bytes, e.g. refold headers or re-encode). gmime's own
 * GMimeMultipartEncrypted/GMimeGpgContext is not used for the same reason,
 * and because it picks its own boundary and engine. The encryption itself
 * is the crypto interface (smp_crypto_encrypt: AES-256, SEIPD v1 with
 * MDC, armored, CRLF), on whichever engine the caller opened: rnp (in
 * process, no process ever) or gnupg (one gpg process per message).
 *
 * Keys: the keyring database is the only key store. Each fingerprint's
 * minimal key material is read from the keyring (smp_keyring_key_get) and
 * handed to the engine with the payload; the engine keeps keys it has
 * seen parsed (rnp) or imported into its GnuPG home (gnupg) in a bounded
 * cache keyed by fingerprint and material, so a key the keyring changed
 * (a merge, a revocation) is used at the next message. A fingerprint the
 * keyring does not hold (an archive key never imported, a key deleted
 * meanwhile) is SMP_ENCRYPT_NO_KEY: nothing is encrypted.
 *
 * Never encrypted (smp_encrypt_check, no crypto work; returned by
 * smp_encrypt_message too, which then changes nothing):
 *   SMP_ENCRYPT_SKIP_PGP     top-level multipart/encrypted (any protocol),
 *                            application/pgp-encrypted, application/pgp
 *   SMP_ENCRYPT_SKIP_SMIME   top-level application/pkcs7-mime or
 *                            application/x-pkcs7-mime
 *   SMP_ENCRYPT_SKIP_INLINE  a text/plain body part (not an attachment,
 *                            not inside an attached message) with a line
 *                            starting "-----BEGIN PGP MESSAGE-----"
 *   SMP_ENCRYPT_SKIP_SMP     an SMP message (smp_detect_subject on the
 *                            first Subject)
 * A message whose Content-Type fields fail smp_mime_prescan() is not
 * parsed by gmime: only its top-level type (read here from the raw field)
 * and, for a top-level text/plain or a message without Content-Type, its
 * raw body are looked at; such a message is still encrypted (encrypting
 * it is the safe side).
 */
#ifndef SMP_ENCRYPT_H
#define SMP_ENCRYPT_H

#include <stdbool.h>
#include <stddef.h>

#include "smp_crypto.h"
#include "smp_detect.h"
#include "smp_keyring.h"
#include "smp_limits.h"

#define SMP_HDR_ENCRYPTED "X-SMP-Encrypted"
#define SMP_ENCRYPTED_VALUE "pgp-mime"
#define SMP_PROTECTED_SUBJECT "..."

enum smp_encrypt_status {
	SMP_ENCRYPT_ERROR = -1,      /* engine, keyring or memory failure:
				      * err says */
	SMP_ENCRYPT_OK = 0,
	SMP_ENCRYPT_SKIP_PGP,        /* already PGP/MIME encrypted */
	SMP_ENCRYPT_SKIP_SMIME,      /* already S/MIME */
	SMP_ENCRYPT_SKIP_INLINE,     /* inline PGP message in a text body */
	SMP_ENCRYPT_SKIP_SMP,        /* an SMP message */
	SMP_ENCRYPT_NO_KEY,          /* a recipient key is not in the
				      * keyring (or no keyring was given) */
	SMP_ENCRYPT_BAD_KEY,         /* the engine refused a recipient key
				      * (expired, revoked, cannot encrypt;
				      * gnupg: an expiry past 2106) */
};

/* "ok", "error", "already-pgp", "already-smime", "inline-pgp", "smp",
 * "no-key", "bad-key". */
const char *smp_encrypt_status_name(int status);
/* True for the SKIP codes: the message must pass untouched. */
bool smp_encrypt_is_skip(int status);

struct smp_encrypt_opts {
	bool protect_subject;               /* protect_subject = yes */
	enum smp_subject_match match;       /* for SMP detection */
	const struct smp_limits *limits;    /* MIME limits; NULL: defaults */
};

/* protect_subject off, exact match, default limits. */
void smp_encrypt_opts_init(struct smp_encrypt_opts *o);

/* One header change, for the milter to make in array order. */
enum smp_hdr_op {
	SMP_HDR_DELETE = 0,  /* smfi_chgheader(ctx, name, index, NULL) */
	SMP_HDR_CHANGE,      /* smfi_chgheader(ctx, name, index, value) */
	SMP_HDR_ADD,         /* smfi_addheader(ctx, name, value) */
};

struct smp_hdr_edit {
	enum smp_hdr_op op;
	char *name;       /* DELETE/CHANGE: as the message spells it */
	unsigned index;   /* DELETE/CHANGE: 1-based among the fields of that
			   * name (compared case-insensitively), counted in
			   * the original header */
	char *value;      /* CHANGE/ADD: the value without a leading space
			   * (prepend one when the MTA does not keep it,
			   * i.e. without SMFIP_HDR_LEADSPC) */
};

/*
 * The result. The edits come in an order that is safe to apply one after
 * the other: all deletions first, and for every name the highest index
 * first, so that no deletion shifts the index of one still to come; then
 * the Subject changes; then the additions (MIME-Version when missing,
 * Content-Type, X-SMP-Encrypted).
 */
struct smp_encrypted {
	char *body;               /* the new body (smfi_replacebody), CRLF */
	size_t body_len;
	char *content_type;       /* the new outer Content-Type value */
	char *boundary;           /* the boundary in it */
	const char *subject_replacement; /* "..." or NULL: static */
	bool add_mime_version;    /* the message had no MIME-Version */
	struct smp_hdr_edit *edits;
	size_t nedits;
	size_t ndeleted;          /* how many of the edits are deletions */
	unsigned gpg_runs;        /* gpg processes this call started (gnupg:
				   * the encryption, an import of a key new to
				   * its home; rnp: always 0) */
	size_t inner_len;         /* octets encrypted */
};

void smp_encrypted_clear(struct smp_encrypted *e);

/*
 * Would this message be encrypted? SMP_ENCRYPT_OK or a SKIP code; no
 * crypto work. o may be NULL (defaults).
 */
int smp_encrypt_check(const char *msg, size_t len,
		      const struct smp_encrypt_opts *o);

/*
 * Encrypts the message msg[0..len) (RFC 5322 as the milter buffers it:
 * the header fields, an empty line, the body; CRLF or LF line ends) with
 * the engine c to the keys fprs[0..nfprs) (fingerprints, either case,
 * spaces allowed; every recipient's plus the archive keys; a fingerprint
 * given twice is encrypted to once), whose material is read from kr.
 * c and kr are used by this thread only for the duration of the call.
 * Returns SMP_ENCRYPT_OK with *out filled (clear it with
 * smp_encrypted_clear), a SKIP code, SMP_ENCRYPT_NO_KEY (a key not in
 * the keyring, or kr NULL) or SMP_ENCRYPT_BAD_KEY (the engine refused a
 * key), err naming the keys, or SMP_ENCRYPT_ERROR (err says why).
 * Anything but OK leaves *out empty (but for gpg_runs).
 */
int smp_encrypt_message(struct smp_crypto *c, struct smp_keyring *kr,
			const char *msg, size_t len,
			const char *const *fprs, size_t nfprs,
			const struct smp_encrypt_opts *o,
			struct smp_encrypted *out, char *err, size_t errlen);

#endif
