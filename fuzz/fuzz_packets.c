/* fuzz_packets.c - libFuzzer target for OpenPGP packet framing */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "smp_packets.h"
#include "smp_result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_packets_walk(const unsigned char *buf, size_t len)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	enum smp_pkt_status st;
	size_t prev = 0;
	bool first = true;

	smp_pkt_iter_init(&it, buf, len);
	for (;;) {
		memset(&pkt, 0, sizeof(pkt));
		st = smp_pkt_next(&it, &pkt);
		if (st != SMP_PKT_OK)
			break;
		FUZZ_ASSERT(pkt.offset < len);
		FUZZ_ASSERT(first || pkt.offset > prev);
		FUZZ_ASSERT(it.off > pkt.offset && it.off <= len);
		FUZZ_ASSERT(pkt.first_len <= pkt.body_len);
		FUZZ_ASSERT(pkt.body_len <= len);
		if (pkt.first_len > 0) {
			FUZZ_ASSERT(pkt.first >= buf + pkt.offset);
			FUZZ_ASSERT(pkt.first + pkt.first_len <= buf + len);
			/* Read the chunk so ASan checks the bounds. */
			FUZZ_ASSERT(pkt.first[0] == buf[pkt.first - buf]);
			FUZZ_ASSERT(pkt.first[pkt.first_len - 1] ==
				    buf[pkt.first - buf + pkt.first_len - 1]);
		}
		prev = pkt.offset;
		first = false;
	}
	FUZZ_ASSERT(st == SMP_PKT_END || st == SMP_PKT_EHEADER ||
		    st == SMP_PKT_ETRUNCATED || st == SMP_PKT_EPARTIAL);
	if (st == SMP_PKT_END)
		FUZZ_ASSERT(it.off == len);
}

static void fuzz_packets_message(const unsigned char *buf, size_t len)
{
	struct smp_msg_info info;
	unsigned i;

	memset(&info, 0, sizeof(info));
	smp_packets_check_message(buf, len, &info);
	FUZZ_ASSERT(info.n_esk_kept <= SMP_MSG_MAX_ESK_KEPT);
	FUZZ_ASSERT(info.n_esk_kept <= info.n_esk);
	FUZZ_ASSERT(info.data_tag == 0 || info.data_tag == SMP_TAG_SED ||
		    info.data_tag == SMP_TAG_SEIPD ||
		    info.data_tag == SMP_TAG_AEAD);
	FUZZ_ASSERT((info.reasons & ~((1u << SMP_R_COUNT) - 1)) == 0);
	for (i = 0; i < info.n_esk_kept; i++) {
		const struct smp_esk *e = &info.esk[i];

		FUZZ_ASSERT(e->type == SMP_ESK_PUBKEY ||
			    e->type == SMP_ESK_SYMMETRIC);
		if (e->type == SMP_ESK_PUBKEY)
			FUZZ_ASSERT(memchr(e->keyid, '\0', sizeof(e->keyid)));
	}
}

/*
 * Differential check of the base64 fast path: the input bytes, base64
 * encoded in lines of line_len characters, must index, read back exactly,
 * and give the same packet verdict as the direct walk over the bytes.
 */
static void fuzz_packets_b64(const unsigned char *buf, size_t len,
			     size_t line_len, bool crlf)
{
	struct smp_msg_info direct, viab64;
	struct smp_b64 b;
	gchar *enc;
	GString *text;
	unsigned char *back;
	size_t n;

	if (len == 0)
		return;
	enc = g_base64_encode(buf, len);
	n = strlen(enc);
	text = g_string_sized_new(n + n / line_len * 2 + 2);
	for (size_t i = 0; i < n; i += line_len) {
		g_string_append_len(text, enc + i, (gssize)(n - i < line_len ? n - i : line_len));
		g_string_append(text, crlf ? "\r\n" : "\n");
	}
	FUZZ_ASSERT(smp_b64_index(&b, text->str, text->len));
	FUZZ_ASSERT(b.out_len == len);
	back = malloc(len);
	FUZZ_ASSERT(back != NULL);
	FUZZ_ASSERT(smp_b64_read(&b, 0, back, len));
	FUZZ_ASSERT(memcmp(back, buf, len) == 0);
	FUZZ_ASSERT(!smp_b64_read(&b, len, back, 1));
	free(back);
	smp_packets_check_message(buf, len, &direct);
	smp_packets_check_message_b64(&b, &viab64);
	FUZZ_ASSERT(direct.reasons == viab64.reasons);
	FUZZ_ASSERT(direct.n_esk == viab64.n_esk && direct.data_tag == viab64.data_tag);
	FUZZ_ASSERT(direct.n_esk_kept == viab64.n_esk_kept);
	FUZZ_ASSERT(strcmp(direct.digest, viab64.digest) == 0);
	for (unsigned i = 0; i < direct.n_esk_kept; i++) {
		FUZZ_ASSERT(direct.esk[i].type == viab64.esk[i].type);
		FUZZ_ASSERT(direct.esk[i].version == viab64.esk[i].version);
		FUZZ_ASSERT(direct.esk[i].algo == viab64.esk[i].algo);
		FUZZ_ASSERT(strcmp(direct.esk[i].keyid, viab64.esk[i].keyid) == 0);
	}
	g_string_free(text, TRUE);
	g_free(enc);
}

/* Arbitrary text that indexes must decode exactly as GLib decodes it. */
static void fuzz_packets_b64_text(const unsigned char *data, size_t size)
{
	struct smp_b64 b;
	guchar *ref;
	gsize reflen;
	gchar *copy;
	unsigned char *out;

	if (!smp_b64_index(&b, (const char *)data, size))
		return;
	copy = g_strndup((const char *)data, size);
	ref = g_base64_decode(copy, &reflen);
	FUZZ_ASSERT(reflen == b.out_len);
	out = malloc(b.out_len + 1);
	FUZZ_ASSERT(out != NULL);
	FUZZ_ASSERT(smp_b64_read(&b, 0, out, b.out_len));
	FUZZ_ASSERT(memcmp(out, ref, reflen) == 0);
	free(out);
	g_free(ref);
	g_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned nkeys = 0;
	enum smp_keyblock_kind kind;

	(void)smp_pkt_looks_binary(data, size);
	fuzz_packets_walk(data, size);
	fuzz_packets_message(data, size);
	fuzz_packets_b64(data, size, 76, false);
	fuzz_packets_b64(data, size, 64, true);
	fuzz_packets_b64(data, size, 4 + 4 * (size % 7), size & 1);
	fuzz_packets_b64_text(data, size);

	kind = smp_packets_check_keyblock(data, size, &nkeys);
	FUZZ_ASSERT(kind == SMP_KEYBLOCK_PUBLIC || kind == SMP_KEYBLOCK_SECRET ||
		    kind == SMP_KEYBLOCK_BAD);
	FUZZ_ASSERT(kind != SMP_KEYBLOCK_PUBLIC || nkeys > 0);
	FUZZ_ASSERT(smp_packets_check_keyblock(data, size, NULL) == kind);
	return 0;
}
