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
 * and because its context cannot be pointed at our GnuPG home, picks its
 * own boundary and lists every recipient key first (one more gpg run per
 * key). The encryption itself is gpgme: gpgme_op_encrypt_ext with the
 * fingerprints as recipient strings and always-trust (the keyring decides
 * which key is used), so encrypting costs exactly one gpg process when
 * the keys are in the GnuPG home.
 *
 * gpgme contexts: a context bound to a GnuPG home costs one gpg process to
 * make (engine version check). This module keeps a small process-wide pool
 * of idle contexts per home (thread-safe), so that a warm daemon starts
 * exactly one gpg process per encrypted message. smp_encrypt_cleanup()
 * releases the pool.
 *
 * Missing keys: the GnuPG home is a cache of the keyring. When gpg says a
 * recipient key is not there (and a keyring was given), the keys' stored
 * material is imported from the keyring (one gpg process, through
 * smp_gpg_import) and the encryption is tried once more.
 *
 * Never encrypted (smp_encrypt_check, no gpg process; returned by
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

#include "smp_detect.h"
#include "smp_gpg.h"
#include "smp_keyring.h"
#include "smp_limits.h"

#define SMP_HDR_ENCRYPTED "X-SMP-Encrypted"
#define SMP_ENCRYPTED_VALUE "pgp-mime"
#define SMP_PROTECTED_SUBJECT "..."

enum smp_encrypt_status {
	SMP_ENCRYPT_ERROR = -1,      /* gpg or memory failure: err says */
	SMP_ENCRYPT_OK = 0,
	SMP_ENCRYPT_SKIP_PGP,        /* already PGP/MIME encrypted */
	SMP_ENCRYPT_SKIP_SMIME,      /* already S/MIME */
	SMP_ENCRYPT_SKIP_INLINE,     /* inline PGP message in a text body */
	SMP_ENCRYPT_SKIP_SMP,        /* an SMP message */
	SMP_ENCRYPT_NO_KEY,          /* a recipient key is neither in the
				      * GnuPG home nor in the keyring */
	SMP_ENCRYPT_BAD_KEY,         /* gpg refused a recipient key (expired,
				      * revoked, cannot encrypt) */
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
	unsigned gpg_runs;        /* gpg processes this call started (the
				   * encryption, an import, a new context) */
	size_t inner_len;         /* octets encrypted */
};

void smp_encrypted_clear(struct smp_encrypted *e);

/*
 * Would this message be encrypted? SMP_ENCRYPT_OK or a SKIP code; never
 * starts gpg. o may be NULL (defaults).
 */
int smp_encrypt_check(const char *msg, size_t len,
		      const struct smp_encrypt_opts *o);

/*
 * Encrypts the message msg[0..len) (RFC 5322 as the milter buffers it:
 * the header fields, an empty line, the body; CRLF or LF line ends) to
 * the keys fprs[0..nfprs) (fingerprints; every recipient's plus the
 * archive keys). kr may be NULL (then missing keys are not imported).
 * Returns SMP_ENCRYPT_OK with *out filled (clear it with
 * smp_encrypted_clear), a SKIP code, SMP_ENCRYPT_NO_KEY or
 * SMP_ENCRYPT_BAD_KEY (err names the keys), or SMP_ENCRYPT_ERROR (err
 * says why). Anything but OK leaves *out empty.
 */
int smp_encrypt_message(struct smp_gpg *g, struct smp_keyring *kr,
			const char *msg, size_t len,
			const char *const *fprs, size_t nfprs,
			const struct smp_encrypt_opts *o,
			struct smp_encrypted *out, char *err, size_t errlen);

/*
 * Makes sure the keys fprs[0..n) are in the GnuPG home of g: lists them
 * there (one gpg process) and imports the missing ones from their
 * material in the keyring (one more gpg process, only when some are
 * missing). *missing (may be NULL) receives how many are still missing
 * afterwards (not in the keyring either, or gpg did not take them).
 * Returns 0 or -1 (gpg or keyring failure, err says).
 */
int smp_encrypt_ensure_keys(struct smp_gpg *g, struct smp_keyring *kr,
			    const char *const *fprs, size_t n,
			    size_t *missing, char *err, size_t errlen);

/* Releases the pool of idle gpgme contexts (at exit, or after a reload
 * that changed gnupg_home). Contexts in use are released when returned. */
void smp_encrypt_cleanup(void);

#endif
