/* fuzz_packets.c - libFuzzer target for OpenPGP packet framing */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned nkeys = 0;
	enum smp_keyblock_kind kind;

	(void)smp_pkt_looks_binary(data, size);
	fuzz_packets_walk(data, size);
	fuzz_packets_message(data, size);

	kind = smp_packets_check_keyblock(data, size, &nkeys);
	FUZZ_ASSERT(kind == SMP_KEYBLOCK_PUBLIC || kind == SMP_KEYBLOCK_SECRET ||
		    kind == SMP_KEYBLOCK_BAD);
	FUZZ_ASSERT(kind != SMP_KEYBLOCK_PUBLIC || nkeys > 0);
	FUZZ_ASSERT(smp_packets_check_keyblock(data, size, NULL) == kind);
	return 0;
}
