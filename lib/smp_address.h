/* smp_address.h - the one mail address syntax check (RFC 5321 Mailbox, with
 * RFC 6531 UTF-8), a quoting helper for naming an untrusted argument in an
 * error sentence, and an escaping one for untrusted stored text in output.
 *
 * smp_address_check() is what "a mail address" means to smpctl (every
 * command that takes an ADDRESS) and to the keyring, which stores a binding
 * only for an address it accepts. The grammar, in RFC 5321/6531 terms:
 *
 *   Mailbox    = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *   Dot-string = Atom *("." Atom)          Atom = 1*atext
 *   atext      = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" /
 *                "+" / "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" /
 *                "}" / "~" / UTF8-non-ascii
 *   Quoted-string = DQUOTE 1*( qtext / "\" %d33-126 ) DQUOTE
 *   qtext      = %d33 / %d35-91 / %d93-126 / UTF8-non-ascii
 *   Domain     = label *("." label)        1 to 63 octets each;
 *   label      = ( ALPHA / DIGIT / UTF8-non-ascii ), then those and "-",
 *                not ending in "-"
 *   address-literal = "[" IPv4-address "]" / "[IPv6:" IPv6-address "]"
 *
 * and, beyond the ABNF:
 *   - at most SMP_ADDRESS_LEN_MAX (254) octets in all: RFC 5321's 256-octet
 *     path less its angle brackets. The local part is bounded by that
 *     only: RFC 5321 4.5.3.1 lists its 64 octets among the sizes every
 *     server must accept and asks implementations to impose no limits
 *     where they can; real senders exceed it, and the milter harvests
 *     and matches them (tests/unit/test_harvest.c "longlocal").
 *   - no white space and no control character anywhere, not even inside a
 *     quoted local part (RFC 5321 allows a space there; an address with a
 *     space cannot be shown in a column or passed through a script
 *     unharmed, and a space is never needed by a real mailbox).
 *   - UTF-8 (RFC 6531 SMTPUTF8) is accepted in the local part and in
 *     domain labels when it is well formed (no overlong form, surrogate or
 *     code point above U+10FFFF) and is not a C1 control, a Unicode space
 *     or an invisible/formatting character (soft hyphen, zero-width
 *     characters, bidirectional controls, BOM, tag characters). Labels are
 *     not checked against IDNA2008.
 *   - no "<>", no surrounding white space, no source route, no comment, no
 *     General-address-literal (no standard tag exists besides IPv6), no
 *     empty quoted string "".
 * The check does not change case: compare addresses after
 * smp_address_normalize() (smp_keyring.h), which keeps the local part and
 * lowers the domain. An address this check accepts is also one
 * smp_address_normalize() takes, and its normalised form passes the check
 * again (the fuzz target checks both).
 */
#ifndef SMP_ADDRESS_H
#define SMP_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

#define SMP_ADDRESS_LEN_MAX 254 /* octets of a whole address */
#define SMP_ADDRESS_LABEL_MAX 63 /* octets of one domain label */

enum smp_address_status {
	SMP_ADDR_OK = 0,
	SMP_ADDR_EMPTY,       /* NULL or "" */
	SMP_ADDR_TOO_LONG,    /* more than SMP_ADDRESS_LEN_MAX octets */
	SMP_ADDR_CONTROL,     /* C0/C1 control, DEL, NUL or invisible character */
	SMP_ADDR_SPACE,       /* white space (ASCII or Unicode) */
	SMP_ADDR_BAD_UTF8,    /* an octet >= 0x80 that is not well-formed UTF-8 */
	SMP_ADDR_NO_AT,       /* no "@" at all */
	SMP_ADDR_NO_LOCAL,    /* nothing before the "@" */
	SMP_ADDR_BAD_LOCAL,   /* the local part is no dot-string */
	SMP_ADDR_BAD_QUOTED,  /* the quoted local part is malformed */
	SMP_ADDR_NO_DOMAIN,   /* nothing after the "@" */
	SMP_ADDR_BAD_DOMAIN,  /* the domain is not labels as above */
	SMP_ADDR_BAD_LITERAL, /* [...] that is no IPv4 or IPv6 address */
};

/*
 * Checks that addr is one mail address as described above. Reads at most
 * SMP_ADDRESS_LEN_MAX + 1 octets of addr, so a huge argument costs nothing.
 */
enum smp_address_status smp_address_check(const char *addr);

/* The same for addr[0..len), which need not be NUL-terminated (a NUL in
 * it is a control character). */
enum smp_address_status smp_address_check_mem(const char *addr, size_t len);

/*
 * Why st is not an address, as the end of a sentence "'x' is not a mail
 * address: <this>", e.g. "it holds white space". "" for SMP_ADDR_OK; never
 * NULL.
 */
const char *smp_address_strerror(enum smp_address_status st);

/*
 * Untrusted text quoted for one line of a message to a terminal or log:
 * 'text' in single quotes, printable ASCII as it is except "'" and "\"
 * (written \' and \\), every other octet as \xNN, and after
 * SMP_QUOTE_ARG_SHOWN octets the quote is closed and "... (N octets)"
 * follows. NULL is written as (none). The result is printable ASCII only
 * and always NUL-terminated; a buffer of SMP_QUOTE_ARG_SIZE holds any
 * result, a smaller one gets it cut. Returns buf.
 */
#define SMP_QUOTE_ARG_SHOWN 80
#define SMP_QUOTE_ARG_SIZE (2 + 4 * SMP_QUOTE_ARG_SHOWN + 40)
char *smp_quote_arg(char *buf, size_t size, const char *arg);

/* The same for arg[0..len). */
char *smp_quote_mem(char *buf, size_t size, const char *arg, size_t len);

/*
 * Untrusted stored text as one field of a line of text output, e.g. a
 * Message-ID in smpctl's keys show and keys history: printable ASCII stays
 * as it is, except the space, written \x20 (the field stays one word), and
 * "\", written \\; every other octet (control character, DEL, any octet
 * >= 0x80) is \xNN as in smp_quote_arg(). No quotes and no length cut, so
 * an ordinary Message-ID shows unchanged and in full. The result is
 * printable ASCII without white space, malloc'd; NULL for NULL text or
 * when out of memory.
 */
char *smp_escape_field(const char *text);

/* Length of the well-formed UTF-8 sequence at p (n >= 1 octets there) and
 * its code point in *cp (cp may be NULL); 0 if there is none (stray
 * continuation octet, overlong form, surrogate, beyond U+10FFFF,
 * truncated). ASCII is a sequence of one. */
size_t smp_utf8_seq(const unsigned char *p, size_t n, uint32_t *cp);

#endif
