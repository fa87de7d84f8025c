/* smp_packets.c - OpenPGP packet framing and sequence checks.
 *
 * Only the framing is examined: header octets, lengths, partial-length
 * chains, the order of packet tags and a few fixed-size fields of
 * session-key packets. Nothing is decrypted and no process is spawned.
 */
#include "smp_packets.h"

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smp_result.h"

void smp_pkt_iter_init(struct smp_pkt_iter *it, const unsigned char *buf,
		       size_t len)
{
	it->buf = buf;
	it->b64 = NULL;
	it->len = len;
	it->off = 0;
}

void smp_pkt_iter_init_b64(struct smp_pkt_iter *it, const struct smp_b64 *b)
{
	it->buf = NULL;
	it->b64 = b;
	it->len = b->out_len;
	it->off = 0;
}

/* Copies n octets at p (in range) into dst. */
static void fetch(const struct smp_pkt_iter *it, size_t p, unsigned char *dst,
		  size_t n)
{
	if (it->buf)
		memcpy(dst, it->buf + p, n);
	else
		smp_b64_read(it->b64, p, dst, n);
}

static unsigned octet(const struct smp_pkt_iter *it, size_t p)
{
	unsigned char c;

	if (it->buf)
		return it->buf[p];
	smp_b64_read(it->b64, p, &c, 1);
	return c;
}

bool smp_pkt_looks_binary(const unsigned char *buf, size_t len)
{
	return len > 0 && (buf[0] & 0x80);
}

static bool tag_may_be_partial(unsigned tag)
{
	return tag == SMP_TAG_COMPRESSED || tag == SMP_TAG_SED ||
	       tag == SMP_TAG_LITERAL || tag == SMP_TAG_SEIPD ||
	       tag == SMP_TAG_AEAD;
}

/* Reads a big-endian number of n octets at p. */
static size_t be(const struct smp_pkt_iter *it, size_t p, unsigned n)
{
	unsigned char b[4];
	size_t v = 0;

	fetch(it, p, b, n);
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | b[i];
	return v;
}

/* Points pkt->first at the first body octets (decoded into it->head). */
static void set_first(struct smp_pkt_iter *it, struct smp_packet *pkt,
		      size_t p, size_t n)
{
	pkt->first_len = n;
	if (it->buf) {
		pkt->first = it->buf + p;
		pkt->first_avail = n;
		return;
	}
	pkt->first_avail = n < SMP_PKT_HEAD ? n : SMP_PKT_HEAD;
	fetch(it, p, it->head, pkt->first_avail);
	pkt->first = it->head;
}

enum smp_pkt_status smp_pkt_next(struct smp_pkt_iter *it,
				 struct smp_packet *pkt)
{
	size_t n = it->len, p = it->off, blen;
	unsigned c;

	if (p >= n)
		return SMP_PKT_END;
	memset(pkt, 0, sizeof(*pkt));
	pkt->offset = p;
	c = octet(it, p++);
	if (!(c & 0x80))
		return SMP_PKT_EHEADER;

	if (!(c & 0x40)) { /* old format */
		static const unsigned lensz[3] = {1, 2, 4};
		unsigned lt = c & 3;
		pkt->tag = (c >> 2) & 0x0F;
		if (pkt->tag == 0)
			return SMP_PKT_EHEADER;
		if (lt == 3) {
			pkt->indeterminate = true;
			blen = n - p;
		} else {
			if (n - p < lensz[lt])
				return SMP_PKT_ETRUNCATED;
			blen = be(it, p, lensz[lt]);
			p += lensz[lt];
			if (blen > n - p)
				return SMP_PKT_ETRUNCATED;
		}
		set_first(it, pkt, p, blen);
		pkt->body_len = blen;
		it->off = p + blen;
		return SMP_PKT_OK;
	}

	/* new format: possibly a chain of partial lengths */
	pkt->new_format = true;
	pkt->tag = c & 0x3F;
	if (pkt->tag == 0)
		return SMP_PKT_EHEADER;
	for (bool first = true;; first = false) {
		unsigned l0;
		bool partial = false;

		if (p >= n)
			return SMP_PKT_ETRUNCATED;
		l0 = octet(it, p++);
		if (l0 < 192) {
			blen = l0;
		} else if (l0 < 224) {
			if (p >= n)
				return SMP_PKT_ETRUNCATED;
			blen = ((size_t)(l0 - 192) << 8) + octet(it, p++) + 192;
		} else if (l0 == 255) {
			if (n - p < 4)
				return SMP_PKT_ETRUNCATED;
			blen = be(it, p, 4);
			p += 4;
		} else {
			partial = true;
			blen = (size_t)1 << (l0 & 0x1F);
			if (!tag_may_be_partial(pkt->tag) || (first && blen < 512))
				return SMP_PKT_EPARTIAL;
			pkt->partial = true;
		}
		if (blen > n - p)
			return SMP_PKT_ETRUNCATED;
		if (first)
			set_first(it, pkt, p, blen);
		pkt->body_len += blen;
		p += blen;
		if (!partial)
			break;
	}
	it->off = p;
	return SMP_PKT_OK;
}

static void hex_keyid(char out[17], const unsigned char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 0xF];
	}
	out[16] = '\0';
}

/* Sanity of a session-key packet; fills *esk. False: malformed. */
static bool parse_esk(const struct smp_packet *pkt, struct smp_esk *esk)
{
	const unsigned char *b = pkt->first;
	size_t n = pkt->body_len < pkt->first_avail ? pkt->body_len : pkt->first_avail;
	static const unsigned char zero[8];

	memset(esk, 0, sizeof(*esk));
	if (n < 1)
		return false;
	esk->version = b[0];
	if (pkt->tag == SMP_TAG_PKESK) {
		esk->type = SMP_ESK_PUBKEY;
		if (esk->version == 3) {
			if (n < 10)
				return false;
			hex_keyid(esk->keyid, b + 1);
			esk->algo = b[9];
			return true;
		}
		if (esk->version == 6) {
			/* version, count, [key version, fingerprint], algo */
			size_t cnt;
			if (n < 3)
				return false;
			cnt = b[1];
			if (n < 2 + cnt + 1)
				return false;
			if (cnt == 0) {
				hex_keyid(esk->keyid, zero);
			} else if (b[2] == 4 && cnt == 21) {
				hex_keyid(esk->keyid, b + 3 + 12);
			} else if (b[2] == 6 && cnt == 33) {
				hex_keyid(esk->keyid, b + 3);
			} else {
				return false;
			}
			esk->algo = b[2 + cnt];
			return true;
		}
		return false;
	}
	esk->type = SMP_ESK_SYMMETRIC;
	if (esk->version == 4) {
		if (n < 4) /* version, cipher, S2K type, hash */
			return false;
		esk->algo = b[1];
		return true;
	}
	if (esk->version == 5 || esk->version == 6) {
		if (n < 4) /* version, count, cipher, AEAD mode ... */
			return false;
		esk->algo = b[esk->version == 6 ? 2 : 1];
		return true;
	}
	return false;
}

static bool is_data_tag(unsigned tag)
{
	return tag == SMP_TAG_SED || tag == SMP_TAG_SEIPD || tag == SMP_TAG_AEAD;
}

static bool is_ignorable(unsigned tag)
{
	return tag == SMP_TAG_MARKER || tag == SMP_TAG_PADDING;
}

/* Feeds what names one payload into the replay digest. */
static void digest_packet(GChecksum *sum, const struct smp_packet *pkt)
{
	unsigned char hdr[9];
	size_t n = pkt->first_avail < SMP_PKT_HEAD ? pkt->first_avail : SMP_PKT_HEAD;
	uint64_t len = pkt->body_len;

	hdr[0] = (unsigned char)pkt->tag;
	for (int i = 0; i < 8; i++)
		hdr[1 + i] = (unsigned char)(len >> (56 - 8 * i));
	g_checksum_update(sum, hdr, sizeof(hdr));
	if (pkt->tag != SMP_TAG_SED && pkt->tag != SMP_TAG_SEIPD &&
	    pkt->tag != SMP_TAG_AEAD)
		g_checksum_update(sum, pkt->first, n);
}

static void check_message(struct smp_pkt_iter *itp, struct smp_msg_info *info)
{
	struct smp_pkt_iter it = *itp;
	struct smp_packet pkt;
	enum smp_pkt_status st;
	bool seen_first = false, seen_data = false;
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);

	memset(info, 0, sizeof(*info));
	while ((st = smp_pkt_next(&it, &pkt)) == SMP_PKT_OK) {
		if (is_ignorable(pkt.tag))
			continue;
		if (seen_data) {
			info->reasons |= SMP_R_BAD_PACKETS; /* after the data */
			goto out;
		}
		if (!seen_first) {
			seen_first = true;
			if (pkt.tag != SMP_TAG_PKESK && pkt.tag != SMP_TAG_SKESK &&
			    !is_data_tag(pkt.tag)) {
				info->reasons |= SMP_R_NOT_ENCRYPTED;
				if (pkt.tag == SMP_TAG_SECRET_KEY ||
				    pkt.tag == SMP_TAG_SECRET_SUBKEY)
					info->secret_key = true;
				goto out;
			}
		}
		if (pkt.tag == SMP_TAG_PKESK || pkt.tag == SMP_TAG_SKESK) {
			struct smp_esk esk;
			if (!parse_esk(&pkt, &esk)) {
				info->reasons |= SMP_R_BAD_PACKETS;
				goto out;
			}
			if (info->n_esk_kept < SMP_MSG_MAX_ESK_KEPT)
				info->esk[info->n_esk_kept++] = esk;
			info->n_esk++;
			digest_packet(sum, &pkt);
		} else if (is_data_tag(pkt.tag)) {
			seen_data = true;
			info->data_tag = pkt.tag;
			if (pkt.first_avail < 1 && pkt.tag != SMP_TAG_SED) {
				info->reasons |= SMP_R_BAD_PACKETS;
				goto out;
			}
			if ((pkt.tag == SMP_TAG_SEIPD && pkt.first[0] != 1 &&
			     pkt.first[0] != 2) ||
			    (pkt.tag == SMP_TAG_AEAD && pkt.first[0] != 1)) {
				info->reasons |= SMP_R_BAD_PACKETS;
				goto out;
			}
			if (pkt.tag == SMP_TAG_SED)
				info->reasons |= SMP_R_NO_INTEGRITY;
			if (info->n_esk == 0)
				info->reasons |= SMP_R_NO_RECIPIENTS;
			digest_packet(sum, &pkt);
		} else {
			info->reasons |= SMP_R_BAD_PACKETS; /* unexpected tag */
			goto out;
		}
	}
	if (st != SMP_PKT_END) {
		/* Data whose very first octet is no packet header (bit 7
		 * clear) is not OpenPGP. A header with the reserved tag 0 is
		 * OpenPGP framing gone wrong: bad-packets, like any other
		 * broken header. */
		if (st == SMP_PKT_EHEADER && !seen_first && it.off == 0 &&
		    !(octet(&it, 0) & 0x80))
			info->reasons |= SMP_R_NOT_ENCRYPTED;
		else
			info->reasons |= SMP_R_BAD_PACKETS;
		goto out;
	}
	if (!seen_first)
		info->reasons |= SMP_R_NOT_ENCRYPTED; /* empty */
	else if (!seen_data)
		info->reasons |= SMP_R_BAD_PACKETS; /* session keys, no data */
	else if (info->reasons == 0)
		snprintf(info->digest, sizeof(info->digest), "%s",
			 g_checksum_get_string(sum));
out:
	g_checksum_free(sum);
}

void smp_packets_check_message(const unsigned char *buf, size_t len,
			       struct smp_msg_info *info)
{
	struct smp_pkt_iter it;

	smp_pkt_iter_init(&it, buf, len);
	check_message(&it, info);
}

void smp_packets_check_message_b64(const struct smp_b64 *b,
				   struct smp_msg_info *info)
{
	struct smp_pkt_iter it;

	smp_pkt_iter_init_b64(&it, b);
	check_message(&it, info);
}

enum smp_keyblock_kind smp_packets_check_keyblock(const unsigned char *buf,
						  size_t len, unsigned *nkeys)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	enum smp_pkt_status st;
	unsigned keys = 0;
	bool first = true, secret = false, bad = false;

	smp_pkt_iter_init(&it, buf, len);
	while ((st = smp_pkt_next(&it, &pkt)) == SMP_PKT_OK) {
		switch (pkt.tag) {
		case SMP_TAG_SECRET_KEY:
		case SMP_TAG_SECRET_SUBKEY:
			secret = true;
			if (pkt.tag == SMP_TAG_SECRET_KEY)
				keys++;
			break;
		case SMP_TAG_PUBLIC_KEY:
			keys++;
			/* version 3..6, creation time, algorithm */
			if (pkt.body_len < 6 || pkt.first_avail < 1 ||
			    pkt.first[0] < 3 || pkt.first[0] > 6)
				bad = true;
			break;
		case SMP_TAG_SIGNATURE:
		case SMP_TAG_USER_ID:
		case SMP_TAG_USER_ATTR:
		case SMP_TAG_PUBLIC_SUBKEY:
		case SMP_TAG_TRUST:
		case SMP_TAG_PADDING:
			if (first)
				bad = true; /* a key block starts with a key */
			break;
		default:
			bad = true;
		}
		first = false;
	}
	if (nkeys)
		*nkeys = keys;
	if (secret)
		return SMP_KEYBLOCK_SECRET;
	if (st != SMP_PKT_END || bad || keys == 0)
		return SMP_KEYBLOCK_BAD;
	return SMP_KEYBLOCK_PUBLIC;
}

void smp_pkt_key_fpr(const unsigned char *body, size_t len,
		     char out[SMP_PKT_FPR_MAX])
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char head[5], dig[32];
	gsize diglen = sizeof(dig);
	GChecksum *cs;
	size_t hl;

	out[0] = '\0';
	if (len < 1)
		return;
	if (body[0] == 4 && len <= 0xFFFF) {
		head[0] = 0x99;
		head[1] = (unsigned char)(len >> 8);
		head[2] = (unsigned char)len;
		hl = 3;
		cs = g_checksum_new(G_CHECKSUM_SHA1);
	} else if (body[0] == 5 || body[0] == 6) {
		head[0] = body[0] == 5 ? 0x9A : 0x9B;
		head[1] = (unsigned char)(len >> 24);
		head[2] = (unsigned char)(len >> 16);
		head[3] = (unsigned char)(len >> 8);
		head[4] = (unsigned char)len;
		hl = 5;
		cs = g_checksum_new(G_CHECKSUM_SHA256);
	} else {
		return;
	}
	if (!cs)
		return;
	g_checksum_update(cs, head, (gssize)hl);
	g_checksum_update(cs, body, (gssize)len);
	g_checksum_get_digest(cs, dig, &diglen);
	g_checksum_free(cs);
	for (gsize i = 0; i < diglen; i++) {
		out[2 * i] = hex[dig[i] >> 4];
		out[2 * i + 1] = hex[dig[i] & 15];
	}
	out[2 * diglen] = '\0';
}
