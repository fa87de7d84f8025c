/* smp_armor.h - OpenPGP ASCII armor (RFC 4880 section 6) decoding */
#ifndef SMP_ARMOR_H
#define SMP_ARMOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smp_armor_type {
	SMP_ARMOR_UNKNOWN = 0,  /* BEGIN PGP <something else> */
	SMP_ARMOR_MESSAGE,      /* PGP MESSAGE */
	SMP_ARMOR_PUBLIC_KEY,   /* PGP PUBLIC KEY BLOCK */
	SMP_ARMOR_PRIVATE_KEY,  /* PGP PRIVATE KEY BLOCK (or SECRET KEY BLOCK) */
	SMP_ARMOR_SIGNATURE,    /* PGP SIGNATURE */
	SMP_ARMOR_SIGNED,       /* PGP SIGNED MESSAGE (cleartext signature) */
};
#define SMP_ARMOR_NTYPES (SMP_ARMOR_SIGNED + 1)

enum smp_armor_status {
	SMP_ARMOR_OK = 0,
	SMP_ARMOR_ENOBEGIN,  /* no "-----BEGIN PGP ...-----" line */
	SMP_ARMOR_ENOEND,    /* no END line */
	SMP_ARMOR_EMISMATCH, /* END label differs from BEGIN label */
	SMP_ARMOR_EHEADER,   /* malformed armor header line */
	SMP_ARMOR_EBASE64,   /* bad base64 character, padding or length */
	SMP_ARMOR_ECRC,      /* CRC-24 line malformed or mismatched */
	SMP_ARMOR_EEMPTY,    /* no data between header and END */
	SMP_ARMOR_ETOOBIG,   /* decoded data exceeds the caller's bound */
	SMP_ARMOR_ENOMEM,
	/* only from smp_armor_decode_all(): */
	SMP_ARMOR_ETEXT,     /* text outside the blocks, not white space */
	SMP_ARMOR_ETYPE,     /* a block of another type than wanted */
};

struct smp_armor {
	enum smp_armor_type type;
	unsigned char *data; /* decoded bytes, malloc'd; NULL on error */
	size_t len;
	bool has_crc;        /* a checksum line was present (and matched) */
	size_t begin_off;    /* offset of the BEGIN line in the input */
	size_t end_off;      /* offset just past the END line */
};

/*
 * Finds the first line starting with "-----BEGIN PGP " in text[0..len).
 * Returns true and sets *off to its offset.
 */
bool smp_armor_find(const char *text, size_t len, size_t *off);

/*
 * Decodes the first armored block in text[0..len). Lines may end in LF or
 * CRLF. Decoded output larger than max_out gives SMP_ARMOR_ETOOBIG. On
 * success out->data must be released with smp_armor_free(). On failure
 * out->data is NULL; begin_off and type are still set once a BEGIN line
 * was found (type SMP_ARMOR_UNKNOWN when its label is unreadable).
 * Nothing after the END line is looked at: see smp_armor_scan_rest().
 */
enum smp_armor_status smp_armor_decode(const char *text, size_t len,
				       size_t max_out, struct smp_armor *out);

/*
 * The same checks as smp_armor_decode() without keeping the octets: no
 * allocation, no size bound, out->data stays NULL and out->len is the
 * decoded length. For finding whether and where a block ends.
 */
enum smp_armor_status smp_armor_parse(const char *text, size_t len,
				      struct smp_armor *out);

/* What follows an armored block (smp_armor_scan_rest). */
struct smp_armor_rest {
	/* further blocks, well-formed or not, by the label of their BEGIN
	 * line (SMP_ARMOR_UNKNOWN also for an unreadable label) */
	unsigned blocks[SMP_ARMOR_NTYPES];
	unsigned broken;  /* how many of them have malformed armor */
	bool text;        /* anything else but white space (SP, HT, CR, LF) */
};

/*
 * Accounts for text[off..len), usually what follows a block (off = its
 * end_off): every further line starting "-----BEGIN PGP " is parsed as a
 * block (smp_armor_parse) and counted, white space is skipped, any other
 * octet sets rest->text. After a malformed block the scan goes on with the
 * line after its BEGIN line.
 */
void smp_armor_scan_rest(const char *text, size_t len, size_t off,
			 struct smp_armor_rest *rest);

void smp_armor_free(struct smp_armor *a);

/* Every block of a text that holds nothing else (smp_armor_decode_all). */
struct smp_armor_all {
	unsigned char *data; /* the octets of all blocks, one after the other;
				malloc'd, NULL on failure */
	size_t len;
	unsigned nblocks;    /* blocks decoded (on failure: those before the
				fault) */
	/* On failure: where the fault starts (the BEGIN line of the block at
	 * fault, or the first octet of the stray text), its line number
	 * (1 = the first) and, for SMP_ARMOR_ETYPE, the other block's type. */
	size_t err_off;
	unsigned err_line;
	enum smp_armor_type err_type;
};

/*
 * Decodes text[0..len) that holds one or more armored blocks labelled type
 * (not SMP_ARMOR_SIGNED or _UNKNOWN) and nothing else but white space (SP,
 * HT, CR, LF) before, between and after them: the form of a key file or of
 * an application/pgp-keys part with several keys in it. Each BEGIN line
 * must start a line. On success out->data holds the decoded octets of all
 * blocks in order (for key blocks: a sequence of transferable keys, as a
 * binary file of several keys is), at most max_out octets in all
 * (SMP_ARMOR_ETOOBIG otherwise). The first fault in text order fails the
 * whole text: SMP_ARMOR_ENOBEGIN (no block at all), SMP_ARMOR_ETEXT (text
 * that is not white space, anywhere outside the blocks), SMP_ARMOR_ETYPE
 * (a block of another type, a private key block included), or a block's
 * own smp_armor_decode() status. Accepts exactly what, after a first block
 * of that type with only white space before it, smp_armor_scan_rest()
 * reports as further blocks of that type only, none broken and no text.
 * Release with smp_armor_all_free().
 */
enum smp_armor_status smp_armor_decode_all(const char *text, size_t len,
					   enum smp_armor_type type,
					   size_t max_out,
					   struct smp_armor_all *out);

void smp_armor_all_free(struct smp_armor_all *a);

/* One short English phrase for a status, e.g. "CRC-24 checksum mismatch". */
const char *smp_armor_strerror(enum smp_armor_status st);

/*
 * Armors data as a "-----BEGIN PGP <type>-----" block with 64-character
 * base64 lines and a CRC-24 line (RFC 4880 section 6.2). malloc'd text;
 * NULL when out of memory or for SMP_ARMOR_UNKNOWN/SMP_ARMOR_SIGNED.
 */
char *smp_armor_encode(enum smp_armor_type type, const unsigned char *data,
		       size_t len);

/* CRC-24 of RFC 4880 section 6.1 (init 0xB704CE, poly 0x1864CFB). */
uint32_t smp_crc24(const unsigned char *p, size_t n);

#endif
