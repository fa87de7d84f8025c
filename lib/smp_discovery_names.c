/* smp_discovery_names.c - the names key discovery asks for (smp_discovery.h):
 * the WKD hashed local part (draft-koch-openpgp-webkey-service section 3.1:
 * z-base-32 of the SHA-1 of the lowered local part), the WKD advanced and
 * direct URLs, and the RFC 7929 OPENPGPKEY owner name.
 *
 * An address is split at its last '@' (smp_address_normalize's rule, which
 * also lowers the domain) and must be one mail address as smp_address_check
 * says. Its domain must be a host name a URL and a DNS query can carry as
 * it is: ASCII letters, digits, '-' and '.'; an address literal or a UTF-8
 * domain (which would need its IDNA A-label form) is refused (-1).
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp_address.h"
#include "smp_discovery.h"
#include "smp_keyring.h"

#define NAMES_ZB32 "ybndrfg8ejkmcpqxot1uwisza345h769"
#define NAMES_DANE_OCTETS 28 /* RFC 7929 section 3: SHA-256 cut to 28 */

/* digest of d[0..n) by type into out (outlen octets); 0 or -1. */
static int names_digest(GChecksumType type, const void *d, size_t n,
			unsigned char *out, size_t outlen)
{
	GChecksum *cs = g_checksum_new(type);
	gsize len = outlen;
	int rc = -1;

	memset(out, 0, outlen);
	if (!cs)
		goto out;
	g_checksum_update(cs, d, (gssize)n);
	g_checksum_get_digest(cs, out, &len);
	if (len != outlen)
		goto out;
	rc = 0;
out:
	if (cs)
		g_checksum_free(cs);
	return rc;
}

void smp_wkd_hash(const char *local, size_t len, char out[33])
{
	unsigned char lower[SMP_ADDRESS_MAX];
	unsigned char dg[20];
	GChecksum *cs = NULL;
	size_t bit = 0;

	out[0] = '\0';
	cs = g_checksum_new(G_CHECKSUM_SHA1);
	if (!cs)
		return;
	/* lowered in bounded chunks: a local part of any length hashes */
	for (size_t off = 0; off < len;) {
		size_t k = len - off < sizeof(lower) ? len - off : sizeof(lower);
		for (size_t i = 0; i < k; i++) {
			unsigned char c = (unsigned char)local[off + i];
			lower[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
		}
		g_checksum_update(cs, lower, (gssize)k);
		off += k;
	}
	{
		gsize dl = sizeof(dg);
		g_checksum_get_digest(cs, dg, &dl);
	}
	g_checksum_free(cs);
	/* 160 bits = 32 groups of 5, most significant first */
	for (size_t i = 0; i < 32; i++, bit += 5) {
		unsigned v = 0;
		for (size_t b = 0; b < 5; b++) {
			size_t p = bit + b;
			v = (v << 1) | ((dg[p / 8] >> (7 - p % 8)) & 1u);
		}
		out[i] = NAMES_ZB32[v];
	}
	out[32] = '\0';
}

/* An address split at its last '@': the local part as given (*local, llen
 * octets) and the lowered domain (*domain, NUL-terminated), both inside
 * *norm (malloc'd; the caller frees it). -1 when addr is not an address or
 * its domain is no ASCII host name. */
static int names_split(const char *addr, char **norm, const char **local,
		       size_t *llen, const char **domain)
{
	char *a, *at;

	*norm = NULL;
	a = smp_address_normalize(addr);
	if (!a)
		return -1;
	if (smp_address_check(a) != SMP_ADDR_OK)
		goto bad;
	at = strrchr(a, '@');
	if (!at || at == a || at[1] == '\0')
		goto bad;
	for (const char *p = at + 1; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			goto bad;
	}
	*norm = a;
	*local = a;
	*llen = (size_t)(at - a);
	*domain = at + 1;
	return 0;
bad:
	free(a);
	return -1;
}

/* Appends s[0..n) to buf (size) at *pos, percent-encoding all but RFC 3986
 * unreserved characters when enc; -1 (and nothing more written) when it
 * does not fit with its NUL. */
static int names_put(char *buf, size_t size, size_t *pos, const char *s,
		     size_t n, bool enc)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = !enc || (c >= 'A' && c <= 'Z') ||
			     (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			     c == '-' || c == '.' || c == '_' || c == '~';
		size_t need = plain ? 1 : 3;

		if (*pos + need >= size)
			return -1;
		if (plain) {
			buf[(*pos)++] = (char)c;
		} else {
			buf[(*pos)++] = '%';
			buf[(*pos)++] = hex[c >> 4];
			buf[(*pos)++] = hex[c & 15];
		}
	}
	buf[*pos] = '\0';
	return 0;
}

static int names_puts(char *buf, size_t size, size_t *pos, const char *s)
{
	return names_put(buf, size, pos, s, strlen(s), false);
}

/* https://HOST[:port]PATH where PATH is "/.well-known/openpgpkey/"
 * [domain "/"] "hu/" hash "?l=" local. */
static int names_wkd_url(char *buf, size_t size, const char *host_prefix,
			 const char *domain, bool with_domain, unsigned port,
			 const char *hash, const char *local, size_t llen)
{
	char portstr[16] = "";
	size_t pos = 0;

	if (!buf || size == 0)
		return -1;
	buf[0] = '\0';
	if (port != 443)
		snprintf(portstr, sizeof(portstr), ":%u", port);
	if (names_puts(buf, size, &pos, "https://") < 0 ||
	    names_puts(buf, size, &pos, host_prefix) < 0 ||
	    names_puts(buf, size, &pos, domain) < 0 ||
	    names_puts(buf, size, &pos, portstr) < 0 ||
	    names_puts(buf, size, &pos, "/.well-known/openpgpkey/") < 0)
		goto bad;
	if (with_domain && (names_puts(buf, size, &pos, domain) < 0 ||
			    names_puts(buf, size, &pos, "/") < 0))
		goto bad;
	if (names_puts(buf, size, &pos, "hu/") < 0 ||
	    names_puts(buf, size, &pos, hash) < 0 ||
	    names_puts(buf, size, &pos, "?l=") < 0 ||
	    names_put(buf, size, &pos, local, llen, true) < 0)
		goto bad;
	return 0;
bad:
	buf[0] = '\0';
	return -1;
}

int smp_wkd_urls(const char *address, unsigned port, char *advanced,
		 size_t alen, char *direct, size_t dlen)
{
	char *norm = NULL;
	const char *local, *domain;
	size_t llen;
	char hash[33];
	int rc = -1;

	if (advanced && alen)
		advanced[0] = '\0';
	if (direct && dlen)
		direct[0] = '\0';
	if (port == 0 || port > 65535)
		goto out;
	if (names_split(address, &norm, &local, &llen, &domain) < 0)
		goto out;
	smp_wkd_hash(local, llen, hash);
	if (names_wkd_url(advanced, alen, "openpgpkey.", domain, true, port,
			  hash, local, llen) < 0)
		goto out;
	if (names_wkd_url(direct, dlen, "", domain, false, port, hash, local,
			  llen) < 0) {
		advanced[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	free(norm);
	return rc;
}

int smp_dane_qname(const char *address, char *out, size_t outlen)
{
	char *norm = NULL;
	const char *local, *domain;
	size_t llen;
	unsigned char dg[32];
	char hex[2 * NAMES_DANE_OCTETS + 1];
	int n, rc = -1;

	if (!out || outlen == 0)
		goto out;
	out[0] = '\0';
	if (names_split(address, &norm, &local, &llen, &domain) < 0)
		goto out;
	if (names_digest(G_CHECKSUM_SHA256, local, llen, dg, sizeof(dg)) < 0)
		goto out;
	for (size_t i = 0; i < NAMES_DANE_OCTETS; i++)
		snprintf(hex + 2 * i, 3, "%02x", dg[i]);
	n = snprintf(out, outlen, "%s._openpgpkey.%s.", hex, domain);
	/* a DNS name is at most 255 octets on the wire: 254 characters in
	 * this form, final dot included */
	if (n < 0 || (size_t)n >= outlen || n > 254) {
		out[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	free(norm);
	return rc;
}
