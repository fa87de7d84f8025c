/* test_packets.c - unit tests for lib/smp_packets.c */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smp_packets.h"
#include "smp_result.h"
#include "test_util.h"

static const unsigned char KEYID_A[8] = {0x01, 0x23, 0x45, 0x67,
					 0x89, 0xAB, 0xCD, 0xEF};
static const unsigned char KEYID_B[8] = {0xFE, 0xDC, 0xBA, 0x98,
					 0x76, 0x54, 0x32, 0x10};

static unsigned char body_bytes[70000];

static void fill_body(void)
{
	for (size_t i = 0; i < sizeof(body_bytes); i++)
		body_bytes[i] = (unsigned char)(i * 7 + 3);
}

static enum smp_pkt_status next1(const struct tbuf *b, struct smp_packet *p)
{
	struct smp_pkt_iter it;
	smp_pkt_iter_init(&it, b->p, b->len);
	return smp_pkt_next(&it, p);
}

/* One packet spanning the whole buffer. */
static void check_single(const struct tbuf *b, unsigned tag, bool nf,
			 size_t hdr_len, size_t body_len)
{
	struct smp_pkt_iter it;
	struct smp_packet p;

	smp_pkt_iter_init(&it, b->p, b->len);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, tag);
	assert_int_equal(p.new_format, nf);
	assert_false(p.partial);
	assert_false(p.indeterminate);
	assert_int_equal(p.offset, 0);
	assert_int_equal(p.body_len, body_len);
	assert_int_equal(p.first_len, body_len);
	assert_ptr_equal(p.first, b->p + hdr_len);
	assert_int_equal(it.off, b->len);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_END);
}

/* ------------------------------------------------------------------ */
/* smp_pkt_next: length forms                                          */

static void test_old_one_octet(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_old(&b, 2, 0, body_bytes, 5);
	assert_int_equal(b.p[0], 0x88);
	check_single(&b, 2, false, 2, 5);
	tb_free(&b);
	t_pkt_old(&b, 15, 0, body_bytes, 255);
	check_single(&b, 15, false, 2, 255);
	tb_free(&b);
}

static void test_old_two_octet(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_old(&b, 6, 1, body_bytes, 300);
	assert_int_equal(b.p[0], 0x99);
	check_single(&b, 6, false, 3, 300);
	tb_free(&b);
}

static void test_old_four_octet(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_old(&b, 11, 2, body_bytes, 66000);
	check_single(&b, 11, false, 5, 66000);
	tb_free(&b);
}

static void test_old_indeterminate(void **state)
{
	struct tbuf b = {0};
	struct smp_pkt_iter it;
	struct smp_packet p;
	(void)state;
	t_pkt_old(&b, 9, 3, body_bytes, 1234);
	assert_int_equal(b.p[0], 0xA7);
	smp_pkt_iter_init(&it, b.p, b.len);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, 9);
	assert_false(p.new_format);
	assert_true(p.indeterminate);
	assert_int_equal(p.body_len, 1234);
	assert_int_equal(p.first_len, 1234);
	assert_ptr_equal(p.first, b.p + 1);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_END);
	tb_free(&b);
}

static void test_new_one_octet(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_new(&b, 18, body_bytes, 191);
	assert_int_equal(b.p[0], 0xD2);
	assert_int_equal(b.p[1], 191);
	check_single(&b, 18, true, 2, 191);
	tb_free(&b);
	t_pkt_new(&b, 60, body_bytes, 0);
	check_single(&b, 60, true, 2, 0);
	tb_free(&b);
}

static void test_new_two_octet(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_new(&b, 1, body_bytes, 192);
	assert_int_equal(b.p[1], 192);
	assert_int_equal(b.p[2], 0);
	check_single(&b, 1, true, 3, 192);
	tb_free(&b);
	t_pkt_new(&b, 1, body_bytes, 8383);
	assert_int_equal(b.p[1], 223);
	assert_int_equal(b.p[2], 255);
	check_single(&b, 1, true, 3, 8383);
	tb_free(&b);
	t_pkt_new(&b, 1, body_bytes, 1000);
	check_single(&b, 1, true, 3, 1000);
	tb_free(&b);
}

static void test_new_five_octet(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_new(&b, 20, body_bytes, 70000);
	assert_int_equal(b.p[1], 255);
	check_single(&b, 20, true, 6, 70000);
	tb_free(&b);
	t_pkt_new5(&b, 2, body_bytes, 7);
	check_single(&b, 2, true, 6, 7);
	tb_free(&b);
}

static void test_sequence_offsets(void **state)
{
	struct tbuf b = {0};
	struct smp_pkt_iter it;
	struct smp_packet p;
	(void)state;
	t_pkt_old(&b, 10, 0, "PGP", 3);      /* 0..4 */
	t_pkt_new(&b, 1, body_bytes, 200);   /* 5..207 */
	t_pkt_new5(&b, 18, body_bytes, 10);  /* 208..223 */
	smp_pkt_iter_init(&it, b.p, b.len);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, 10);
	assert_int_equal(p.offset, 0);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, 1);
	assert_int_equal(p.offset, 5);
	assert_int_equal(p.body_len, 200);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, 18);
	assert_int_equal(p.offset, 208);
	assert_int_equal(p.body_len, 10);
	assert_int_equal(it.off, 224);
	assert_int_equal(b.len, 224);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_END);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_END);
	tb_free(&b);
}

static void test_empty_input(void **state)
{
	struct smp_pkt_iter it;
	struct smp_packet p;
	(void)state;
	smp_pkt_iter_init(&it, (const unsigned char *)"", 0);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_END);
	assert_false(smp_pkt_looks_binary((const unsigned char *)"", 0));
	assert_false(smp_pkt_looks_binary((const unsigned char *)"A", 1));
	assert_true(smp_pkt_looks_binary((const unsigned char *)"\x85", 1));
}

static void test_bad_header(void **state)
{
	static const unsigned char nobit[] = {0x45, 0x01, 0x00};
	static const unsigned char oldzero[] = {0x80, 0x01, 0x00};
	static const unsigned char newzero[] = {0xC0, 0x01, 0x00};
	struct smp_pkt_iter it;
	struct smp_packet p;
	(void)state;
	smp_pkt_iter_init(&it, nobit, sizeof(nobit));
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_EHEADER);
	assert_int_equal(it.off, 0);
	smp_pkt_iter_init(&it, oldzero, sizeof(oldzero));
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_EHEADER);
	smp_pkt_iter_init(&it, newzero, sizeof(newzero));
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_EHEADER);
}

/* ------------------------------------------------------------------ */
/* smp_pkt_next: truncation                                            */

static void expect_trunc(const unsigned char *d, size_t n)
{
	struct smp_pkt_iter it;
	struct smp_packet p;
	smp_pkt_iter_init(&it, d, n);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_ETRUNCATED);
	assert_int_equal(it.off, 0);
}

static void test_truncated_header(void **state)
{
	(void)state;
	expect_trunc((const unsigned char *)"\xC1", 1);             /* no length */
	expect_trunc((const unsigned char *)"\xC1\xC5", 2);         /* 2-octet */
	expect_trunc((const unsigned char *)"\xC1\xFF\x00\x00", 4); /* 5-octet */
	expect_trunc((const unsigned char *)"\x84", 1);             /* old 1 */
	expect_trunc((const unsigned char *)"\x85\x01", 2);         /* old 2 */
	expect_trunc((const unsigned char *)"\x86\x00\x00\x01", 4); /* old 4 */
}

static void test_truncated_body(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pkt_new(&b, 18, body_bytes, 100);
	expect_trunc(b.p, b.len - 1);
	tb_free(&b);
	t_pkt_new(&b, 18, body_bytes, 5000);
	expect_trunc(b.p, b.len - 1);
	tb_free(&b);
	t_pkt_new(&b, 18, body_bytes, 10000);
	expect_trunc(b.p, b.len - 1);
	tb_free(&b);
	t_pkt_old(&b, 1, 0, body_bytes, 20);
	expect_trunc(b.p, b.len - 1);
	tb_free(&b);
	t_pkt_old(&b, 1, 1, body_bytes, 300);
	expect_trunc(b.p, b.len - 1);
	tb_free(&b);
	t_pkt_old(&b, 1, 2, body_bytes, 300);
	expect_trunc(b.p, b.len - 1);
	tb_free(&b);
	/* a five-octet length near SIZE_MAX must not wrap */
	expect_trunc((const unsigned char *)"\xD2\xFF\xFF\xFF\xFF\xFF\x01", 7);
	expect_trunc((const unsigned char *)"\x8A\xFF\xFF\xFF\xFF\x01", 6);
}

static void test_truncated_second_packet(void **state)
{
	struct tbuf b = {0};
	struct smp_pkt_iter it;
	struct smp_packet p;
	(void)state;
	t_pkt_new(&b, 1, body_bytes, 12);
	t_pkt_new(&b, 18, body_bytes, 40);
	smp_pkt_iter_init(&it, b.p, b.len - 10);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_ETRUNCATED);
	assert_int_equal(it.off, 14); /* stays at the bad packet */
	tb_free(&b);
}

/* ------------------------------------------------------------------ */
/* smp_pkt_next: partial lengths                                       */

static void test_partial_chain(void **state)
{
	struct tbuf b = {0};
	struct smp_pkt_iter it;
	struct smp_packet p;
	(void)state;
	tb_byte(&b, 0xD2);                 /* SEIPD */
	tb_byte(&b, t_partial_octet(9));   /* 512 */
	tb_put(&b, body_bytes, 512);
	tb_byte(&b, t_partial_octet(0));   /* 1 */
	tb_put(&b, body_bytes, 1);
	tb_byte(&b, t_partial_octet(10));  /* 1024 */
	tb_put(&b, body_bytes, 1024);
	tb_byte(&b, 200);                  /* two-octet definite: 200 */
	tb_byte(&b, 8);                    /* (200-192)<<8 + 8 + 192 = 2248 */
	tb_put(&b, body_bytes, 2248);
	t_pkt_new(&b, 21, body_bytes, 3);  /* something after it */
	smp_pkt_iter_init(&it, b.p, b.len);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, 18);
	assert_true(p.partial);
	assert_int_equal(p.body_len, 512 + 1 + 1024 + 2248);
	assert_int_equal(p.first_len, 512);
	assert_ptr_equal(p.first, b.p + 2);
	assert_int_equal(it.off, b.len - 5);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_OK);
	assert_int_equal(p.tag, 21);
	assert_int_equal(smp_pkt_next(&it, &p), SMP_PKT_END);
	tb_free(&b);
}

static void test_partial_ends_with_zero(void **state)
{
	struct tbuf b = {0};
	struct smp_packet p;
	(void)state;
	tb_byte(&b, 0xCB);                 /* literal */
	tb_byte(&b, t_partial_octet(11));  /* 2048 */
	tb_put(&b, body_bytes, 2048);
	tb_byte(&b, 0);                    /* final chunk: empty */
	assert_int_equal(next1(&b, &p), SMP_PKT_OK);
	assert_int_equal(p.body_len, 2048);
	assert_true(p.partial);
	tb_free(&b);
}

static void test_partial_on_each_data_tag(void **state)
{
	static const unsigned tags[] = {8, 9, 11, 18, 20};
	(void)state;
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		struct tbuf b = {0};
		struct smp_packet p;
		tb_byte(&b, 0xC0 | tags[i]);
		tb_byte(&b, t_partial_octet(9));
		tb_put(&b, body_bytes, 512);
		tb_byte(&b, 5);
		tb_put(&b, body_bytes, 5);
		assert_int_equal(next1(&b, &p), SMP_PKT_OK);
		assert_int_equal(p.tag, tags[i]);
		assert_int_equal(p.body_len, 517);
		tb_free(&b);
	}
}

static void test_partial_non_data_tag(void **state)
{
	static const unsigned tags[] = {1, 2, 3, 5, 6, 10, 13, 14, 21};
	(void)state;
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		struct tbuf b = {0};
		struct smp_packet p;
		tb_byte(&b, 0xC0 | tags[i]);
		tb_byte(&b, t_partial_octet(9));
		tb_put(&b, body_bytes, 512);
		tb_byte(&b, 5);
		tb_put(&b, body_bytes, 5);
		assert_int_equal(next1(&b, &p), SMP_PKT_EPARTIAL);
		tb_free(&b);
	}
}

static void test_partial_first_chunk_small(void **state)
{
	struct tbuf b = {0};
	struct smp_packet p;
	(void)state;
	tb_byte(&b, 0xD2);
	tb_byte(&b, t_partial_octet(8));   /* 256 < 512 */
	tb_put(&b, body_bytes, 256);
	tb_byte(&b, 5);
	tb_put(&b, body_bytes, 5);
	assert_int_equal(next1(&b, &p), SMP_PKT_EPARTIAL);
	tb_free(&b);
	tb_byte(&b, 0xD2);
	tb_byte(&b, t_partial_octet(0));   /* 1 */
	tb_put(&b, body_bytes, 1);
	tb_byte(&b, 0);
	assert_int_equal(next1(&b, &p), SMP_PKT_EPARTIAL);
	tb_free(&b);
}

static void test_partial_chain_unterminated(void **state)
{
	struct tbuf b = {0};
	struct smp_packet p;
	(void)state;
	tb_byte(&b, 0xD2);
	tb_byte(&b, t_partial_octet(9));
	tb_put(&b, body_bytes, 512);
	assert_int_equal(next1(&b, &p), SMP_PKT_ETRUNCATED);
	/* a chunk that claims more than is there */
	tb_byte(&b, t_partial_octet(10));
	tb_put(&b, body_bytes, 100);
	assert_int_equal(next1(&b, &p), SMP_PKT_ETRUNCATED);
	tb_free(&b);
}

/* ------------------------------------------------------------------ */
/* smp_packets_check_message                                           */

static void check_msg(const struct tbuf *b, struct smp_msg_info *info)
{
	memset(info, 0xA5, sizeof(*info)); /* must be reset by the callee */
	smp_packets_check_message(b->p, b->len, info);
}

static void test_msg_pkesk_seipd(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 100);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 1);
	assert_int_equal(info.n_esk_kept, 1);
	assert_int_equal(info.esk[0].type, SMP_ESK_PUBKEY);
	assert_int_equal(info.esk[0].version, 3);
	assert_int_equal(info.esk[0].algo, 1);
	assert_string_equal(info.esk[0].keyid, "0123456789ABCDEF");
	assert_int_equal(info.data_tag, 18);
	assert_false(info.secret_key);
	tb_free(&b);
}

static void test_msg_old_format_headers(void **state)
{
	struct tbuf b = {0}, body = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3_body(&body, KEYID_B);
	t_pkt_old(&b, 1, 1, body.p, body.len);
	t_pkt_old(&b, 9, 3, body_bytes, 40); /* indeterminate SED */
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_NO_INTEGRITY);
	assert_int_equal(info.n_esk, 1);
	assert_string_equal(info.esk[0].keyid, "FEDCBA9876543210");
	assert_int_equal(info.data_tag, 9);
	tb_free(&b);
	tb_free(&body);
}

static void test_msg_two_pkesk_skesk(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_pkesk3(&b, KEYID_B);
	t_skesk4(&b);
	t_seipd1(&b, 30);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 3);
	assert_int_equal(info.n_esk_kept, 3);
	assert_string_equal(info.esk[0].keyid, "0123456789ABCDEF");
	assert_string_equal(info.esk[1].keyid, "FEDCBA9876543210");
	assert_int_equal(info.esk[2].type, SMP_ESK_SYMMETRIC);
	assert_int_equal(info.esk[2].version, 4);
	assert_int_equal(info.esk[2].algo, 9);
	assert_string_equal(info.esk[2].keyid, "");
	tb_free(&b);
}

static void test_msg_marker_first(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkt_old(&b, 10, 0, "PGP", 3);
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 1);
	assert_int_equal(info.data_tag, 18);
	tb_free(&b);
}

static void test_msg_seipd_alone(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_seipd1(&b, 30);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_NO_RECIPIENTS);
	assert_int_equal(info.n_esk, 0);
	assert_int_equal(info.data_tag, 18);
	tb_free(&b);
}

static void test_msg_sed(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_pkt_new(&b, 9, body_bytes, 40);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_NO_INTEGRITY);
	assert_int_equal(info.n_esk, 1);
	assert_int_equal(info.data_tag, 9);
	tb_free(&b);
}

static void test_msg_aead(void **state)
{
	static const unsigned char aead[] = {1, 9, 1, 16, 0, 0, 0, 0};
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_skesk4(&b);
	t_pkt_new(&b, 20, aead, sizeof(aead));
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 1);
	assert_int_equal(info.data_tag, 20);
	tb_free(&b);
}

static void test_msg_partial_seipd(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	tb_byte(&b, 0xD2);
	tb_byte(&b, t_partial_octet(9));
	tb_byte(&b, 1);
	tb_put(&b, body_bytes, 511);
	tb_byte(&b, 10);
	tb_put(&b, body_bytes, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 1);
	/* now cut the chain off */
	b.len -= 11;
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_trailing_garbage(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	tb_str(&b, "junk");
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	/* a well-framed packet after the data is garbage too */
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	t_pkt_new(&b, 11, body_bytes, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	/* two encrypted data packets */
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	t_seipd1(&b, 30);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_trailing_padding(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	t_pkt_new(&b, 21, body_bytes, 32);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 1);
	assert_int_equal(info.data_tag, 18);
	tb_free(&b);
}

static void test_msg_pkesk_only(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	assert_int_equal(info.data_tag, 0);
	tb_free(&b);
}

static void expect_not_encrypted_first(unsigned tag, bool secret)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	struct tbuf k = {0};

	t_pubkey_body(&k);
	if (tag == 5 || tag == 6 || tag == 7 || tag == 14)
		t_pkt_new(&b, tag, k.p, k.len);
	else
		t_pkt_new(&b, tag, body_bytes, 20);
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_NOT_ENCRYPTED);
	assert_int_equal(info.secret_key, secret);
	assert_int_equal(info.n_esk, 0);
	tb_free(&b);
	tb_free(&k);
}

static void test_msg_not_encrypted(void **state)
{
	(void)state;
	expect_not_encrypted_first(SMP_TAG_SIGNATURE, false);
	expect_not_encrypted_first(SMP_TAG_ONEPASS, false);
	expect_not_encrypted_first(SMP_TAG_LITERAL, false);
	expect_not_encrypted_first(SMP_TAG_COMPRESSED, false);
	expect_not_encrypted_first(SMP_TAG_PUBLIC_KEY, false);
	expect_not_encrypted_first(SMP_TAG_USER_ID, false);
}

static void test_msg_secret_key_first(void **state)
{
	(void)state;
	expect_not_encrypted_first(SMP_TAG_SECRET_KEY, true);
	expect_not_encrypted_first(SMP_TAG_SECRET_SUBKEY, true);
}

static void test_msg_pkesk_short(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	static const unsigned char short_body[] = {3, 1, 2, 3, 4, 5, 6, 7, 8};
	(void)state;
	t_pkt_new(&b, 1, short_body, sizeof(short_body)); /* 9 < 10 */
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	t_pkt_new(&b, 1, short_body, 0); /* empty */
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	/* exactly 10 octets is enough */
	{
		unsigned char ten[10] = {3, 1, 2, 3, 4, 5, 6, 7, 8, 18};
		t_pkt_new(&b, 1, ten, sizeof(ten));
		t_seipd1(&b, 10);
		check_msg(&b, &info);
		assert_int_equal(info.reasons, 0);
		assert_string_equal(info.esk[0].keyid, "0102030405060708");
		assert_int_equal(info.esk[0].algo, 18);
		tb_free(&b);
	}
}

static void test_msg_pkesk_bad_version(void **state)
{
	struct tbuf b = {0}, body = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3_body(&body, KEYID_A);
	body.p[0] = 4;
	t_pkt_new(&b, 1, body.p, body.len);
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	tb_free(&body);
}

static void test_msg_pkesk_v6(void **state)
{
	struct tbuf b = {0}, body = {0};
	struct smp_msg_info info;
	unsigned char fp6[32], fp4[20];
	(void)state;
	for (unsigned i = 0; i < 32; i++)
		fp6[i] = (unsigned char)(0xA0 + i);
	for (unsigned i = 0; i < 20; i++)
		fp4[i] = (unsigned char)(0x10 + i);

	/* v6 recipient key: key ID = first 8 octets of the fingerprint */
	tb_byte(&body, 6);
	tb_byte(&body, 33);
	tb_byte(&body, 6);
	tb_put(&body, fp6, 32);
	tb_byte(&body, 25); /* X25519 */
	tb_put(&body, body_bytes, 40);
	t_pkt_new(&b, 1, body.p, body.len);
	tb_free(&body);

	/* v4 recipient key: key ID = last 8 octets of the fingerprint */
	tb_byte(&body, 6);
	tb_byte(&body, 21);
	tb_byte(&body, 4);
	tb_put(&body, fp4, 20);
	tb_byte(&body, 18); /* ECDH */
	tb_put(&body, body_bytes, 40);
	t_pkt_new(&b, 1, body.p, body.len);
	tb_free(&body);

	/* anonymous recipient */
	tb_byte(&body, 6);
	tb_byte(&body, 0);
	tb_byte(&body, 25);
	tb_put(&body, body_bytes, 40);
	t_pkt_new(&b, 1, body.p, body.len);
	tb_free(&body);

	t_seipd1(&b, 40);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 3);
	assert_int_equal(info.esk[0].version, 6);
	assert_string_equal(info.esk[0].keyid, "A0A1A2A3A4A5A6A7");
	assert_int_equal(info.esk[0].algo, 25);
	assert_string_equal(info.esk[1].keyid, "1C1D1E1F20212223");
	assert_int_equal(info.esk[1].algo, 18);
	assert_string_equal(info.esk[2].keyid, "0000000000000000");
	assert_int_equal(info.esk[2].algo, 25);
	tb_free(&b);
}

static void test_msg_pkesk_v6_short(void **state)
{
	struct tbuf b = {0}, body = {0};
	struct smp_msg_info info;
	(void)state;
	/* count says 33 but the fingerprint is cut off */
	tb_byte(&body, 6);
	tb_byte(&body, 33);
	tb_byte(&body, 6);
	tb_put(&body, body_bytes, 20);
	t_pkt_new(&b, 1, body.p, body.len);
	t_seipd1(&b, 40);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	tb_free(&body);
	/* count 21 with a v6 key version */
	tb_byte(&body, 6);
	tb_byte(&body, 21);
	tb_byte(&body, 6);
	tb_put(&body, body_bytes, 30);
	t_pkt_new(&b, 1, body.p, body.len);
	t_seipd1(&b, 40);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	tb_free(&body);
}

static void test_msg_skesk_versions(void **state)
{
	static const unsigned char v5[] = {5, 9, 2, 3, 8, 0, 0};
	static const unsigned char v6[] = {6, 20, 9, 2, 3, 8, 0};
	static const unsigned char v7[] = {7, 9, 0, 8};
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkt_new(&b, 3, v5, sizeof(v5));
	t_pkt_new(&b, 3, v6, sizeof(v6));
	t_seipd1(&b, 40);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, 2);
	assert_int_equal(info.esk[0].version, 5);
	assert_int_equal(info.esk[0].algo, 9);
	assert_int_equal(info.esk[1].version, 6);
	assert_int_equal(info.esk[1].algo, 9);
	tb_free(&b);

	t_pkt_new(&b, 3, v7, sizeof(v7));
	t_seipd1(&b, 40);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_first_octet_no_bit7(void **state)
{
	struct smp_msg_info info;
	static const char txt[] = "Hello, this is plain text";
	static const unsigned char der[] = {0x30, 0x82, 0x01, 0x0A, 0x02};
	(void)state;
	memset(&info, 0xA5, sizeof(info));
	smp_packets_check_message((const unsigned char *)txt, strlen(txt),
				  &info);
	assert_int_equal(info.reasons, SMP_R_NOT_ENCRYPTED);
	assert_false(info.secret_key);
	smp_packets_check_message(der, sizeof(der), &info);
	assert_int_equal(info.reasons, SMP_R_NOT_ENCRYPTED);
	assert_int_equal(info.n_esk, 0);
}

/* The reserved tag 0 is broken OpenPGP framing, not "not OpenPGP":
 * bad-packets wherever it stands, on both the direct and base64 paths. */
static void expect_tag0(const struct tbuf *b)
{
	struct smp_msg_info info, viab64;
	struct tbuf text = {0};
	struct smp_b64 idx;

	check_msg(b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	assert_false(info.secret_key);
	assert_string_equal(info.digest, "");
	t_b64_append(&text, b->p, b->len, 76, "\n");
	assert_true(smp_b64_index(&idx, (const char *)text.p, text.len));
	memset(&viab64, 0xA5, sizeof(viab64));
	smp_packets_check_message_b64(&idx, &viab64);
	assert_int_equal(viab64.reasons, SMP_R_BAD_PACKETS);
	tb_free(&text);
}

static void test_msg_tag0(void **state)
{
	struct tbuf b = {0};
	(void)state;
	/* first packet, new format (0xC0) and old format (0x80..0x83) */
	t_pkt_new(&b, 0, body_bytes, 20);
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	expect_tag0(&b);
	tb_free(&b);
	for (unsigned lt = 0; lt < 4; lt++) {
		t_pkt_old(&b, 0, lt, body_bytes, 20);
		if (lt != 3) {
			t_pkesk3(&b, KEYID_A);
			t_seipd1(&b, 30);
		}
		expect_tag0(&b);
		tb_free(&b);
	}
	/* the header octet alone */
	tb_byte(&b, 0xC0);
	expect_tag0(&b);
	tb_free(&b);
	/* after a marker packet */
	t_pkt_old(&b, 10, 0, "PGP", 3);
	t_pkt_new(&b, 0, body_bytes, 5);
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	expect_tag0(&b);
	tb_free(&b);
	/* among the session-key packets */
	t_pkesk3(&b, KEYID_A);
	t_pkt_new(&b, 0, body_bytes, 5);
	t_seipd1(&b, 30);
	expect_tag0(&b);
	tb_free(&b);
	/* after the encrypted data */
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 30);
	t_pkt_old(&b, 0, 0, body_bytes, 5);
	expect_tag0(&b);
	tb_free(&b);
}

static void test_msg_empty(void **state)
{
	struct smp_msg_info info;
	(void)state;
	memset(&info, 0xA5, sizeof(info));
	smp_packets_check_message((const unsigned char *)"", 0, &info);
	assert_int_equal(info.reasons, SMP_R_NOT_ENCRYPTED);
	assert_int_equal(info.n_esk, 0);
	assert_int_equal(info.data_tag, 0);
}

static void test_msg_unexpected_between(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_pkt_new(&b, 11, body_bytes, 10); /* literal */
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	t_pkesk3(&b, KEYID_A);
	t_pkt_new(&b, 2, body_bytes, 10); /* signature */
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_partial_on_pkesk(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	tb_byte(&b, 0xC1);
	tb_byte(&b, t_partial_octet(9));
	tb_byte(&b, 3);
	tb_put(&b, body_bytes, 511);
	tb_byte(&b, 0);
	t_seipd1(&b, 10);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_truncated(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 200);
	b.len -= 100; /* cut off half way */
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	/* a length octet claiming more than there is */
	t_pkesk3(&b, KEYID_A);
	t_seipd1(&b, 20);
	assert_int_equal(b.p[b.len - 22], 21);
	b.p[b.len - 22] = 100;
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_seipd_bad_version(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	(void)state;
	t_pkesk3(&b, KEYID_A);
	t_pkt_new(&b, 18, "\x03xxxxxxxx", 9);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
	t_pkesk3(&b, KEYID_A);
	t_pkt_new(&b, 18, "", 0);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, SMP_R_BAD_PACKETS);
	tb_free(&b);
}

static void test_msg_many_esk(void **state)
{
	struct tbuf b = {0};
	struct smp_msg_info info;
	unsigned char id[8] = {0};
	const unsigned total = SMP_MSG_MAX_ESK_KEPT + 6;
	(void)state;
	for (unsigned i = 0; i < total; i++) {
		id[7] = (unsigned char)i;
		t_pkesk3(&b, id);
	}
	t_seipd1(&b, 20);
	check_msg(&b, &info);
	assert_int_equal(info.reasons, 0);
	assert_int_equal(info.n_esk, total);
	assert_int_equal(info.n_esk_kept, SMP_MSG_MAX_ESK_KEPT);
	assert_string_equal(info.esk[0].keyid, "0000000000000000");
	assert_string_equal(info.esk[SMP_MSG_MAX_ESK_KEPT - 1].keyid,
			    "000000000000003F");
	tb_free(&b);
}

/* ------------------------------------------------------------------ */
/* smp_packets_check_keyblock                                          */

static void test_key_public(void **state)
{
	struct tbuf b = {0};
	unsigned n = 99;
	(void)state;
	t_pubkey_block(&b, "Alice <alice@example.org>");
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, &n),
			 SMP_KEYBLOCK_PUBLIC);
	assert_int_equal(n, 1);
	/* nkeys may be NULL */
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_PUBLIC);
	tb_free(&b);
}

static void test_key_two_keys(void **state)
{
	struct tbuf b = {0};
	unsigned n = 99;
	static const unsigned char trust[] = {0, 0};
	(void)state;
	t_pubkey_block(&b, "Alice <alice@example.org>");
	t_pkt_old(&b, 12, 0, trust, sizeof(trust));
	t_pubkey_block(&b, "Bob <bob@example.org>");
	t_pkt_new(&b, 17, body_bytes, 30); /* user attribute */
	t_pkt_new(&b, 21, body_bytes, 16); /* padding */
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, &n),
			 SMP_KEYBLOCK_PUBLIC);
	assert_int_equal(n, 2);
	tb_free(&b);
}

static void test_key_secret(void **state)
{
	struct tbuf b = {0}, k = {0};
	unsigned n = 99;
	(void)state;
	t_pubkey_body(&k);
	tb_put(&k, body_bytes, 30);
	t_pkt_new(&b, 5, k.p, k.len);
	t_pkt_new(&b, 13, "x", 1);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, &n),
			 SMP_KEYBLOCK_SECRET);
	assert_int_equal(n, 1);
	tb_free(&b);
	/* a secret subkey inside an otherwise public block */
	t_pubkey_block(&b, "Alice");
	t_pkt_new(&b, 7, k.p, k.len);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, &n),
			 SMP_KEYBLOCK_SECRET);
	tb_free(&b);
	tb_free(&k);
}

static void test_key_starts_with_sig(void **state)
{
	struct tbuf b = {0};
	unsigned n = 99;
	(void)state;
	t_pkt_new(&b, 2, body_bytes, 20);
	t_pubkey_block(&b, "Alice");
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, &n),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
	t_pkt_new(&b, 13, "Alice", 5);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, &n),
			 SMP_KEYBLOCK_BAD);
	assert_int_equal(n, 0);
	tb_free(&b);
}

static void test_key_literal_inside(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pubkey_block(&b, "Alice");
	t_pkt_new(&b, 11, body_bytes, 20);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
	t_pubkey_block(&b, "Alice");
	t_seipd1(&b, 20);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
}

/* A reserved tag 0 packet makes a key block unparseable (bad-key). */
static void test_key_tag0(void **state)
{
	struct tbuf b = {0}, k = {0};
	(void)state;
	t_pkt_new(&b, 0, body_bytes, 10);
	t_pubkey_block(&b, "Alice");
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
	t_pubkey_block(&b, "Alice");
	t_pkt_old(&b, 0, 0, body_bytes, 10);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
	/* secret key material still wins */
	t_pubkey_body(&k);
	t_pkt_new(&b, 5, k.p, k.len);
	t_pkt_new(&b, 0, body_bytes, 10);
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_SECRET);
	tb_free(&b);
	tb_free(&k);
}

static void test_key_truncated(void **state)
{
	struct tbuf b = {0};
	(void)state;
	t_pubkey_block(&b, "Alice <alice@example.org>");
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len - 3, NULL),
			 SMP_KEYBLOCK_BAD);
	assert_int_equal(smp_packets_check_keyblock(b.p, 1, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
}

static void test_key_empty(void **state)
{
	unsigned n = 99;
	(void)state;
	assert_int_equal(smp_packets_check_keyblock((const unsigned char *)"",
						    0, &n),
			 SMP_KEYBLOCK_BAD);
	assert_int_equal(n, 0);
}

static void test_key_bad_key_packet(void **state)
{
	struct tbuf b = {0};
	static const unsigned char v2[] = {2, 0, 0, 0, 0, 1, 0, 8, 1};
	static const unsigned char tiny[] = {4, 0, 0, 0, 0};
	(void)state;
	t_pkt_new(&b, 6, v2, sizeof(v2));
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
	t_pkt_new(&b, 6, tiny, sizeof(tiny));
	assert_int_equal(smp_packets_check_keyblock(b.p, b.len, NULL),
			 SMP_KEYBLOCK_BAD);
	tb_free(&b);
	/* text is no key block */
	assert_int_equal(smp_packets_check_keyblock(
				 (const unsigned char *)"hello", 5, NULL),
			 SMP_KEYBLOCK_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_one_octet),
		cmocka_unit_test(test_old_two_octet),
		cmocka_unit_test(test_old_four_octet),
		cmocka_unit_test(test_old_indeterminate),
		cmocka_unit_test(test_new_one_octet),
		cmocka_unit_test(test_new_two_octet),
		cmocka_unit_test(test_new_five_octet),
		cmocka_unit_test(test_sequence_offsets),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_truncated_header),
		cmocka_unit_test(test_truncated_body),
		cmocka_unit_test(test_truncated_second_packet),
		cmocka_unit_test(test_partial_chain),
		cmocka_unit_test(test_partial_ends_with_zero),
		cmocka_unit_test(test_partial_on_each_data_tag),
		cmocka_unit_test(test_partial_non_data_tag),
		cmocka_unit_test(test_partial_first_chunk_small),
		cmocka_unit_test(test_partial_chain_unterminated),
		cmocka_unit_test(test_msg_pkesk_seipd),
		cmocka_unit_test(test_msg_old_format_headers),
		cmocka_unit_test(test_msg_two_pkesk_skesk),
		cmocka_unit_test(test_msg_marker_first),
		cmocka_unit_test(test_msg_seipd_alone),
		cmocka_unit_test(test_msg_sed),
		cmocka_unit_test(test_msg_aead),
		cmocka_unit_test(test_msg_partial_seipd),
		cmocka_unit_test(test_msg_trailing_garbage),
		cmocka_unit_test(test_msg_trailing_padding),
		cmocka_unit_test(test_msg_pkesk_only),
		cmocka_unit_test(test_msg_not_encrypted),
		cmocka_unit_test(test_msg_secret_key_first),
		cmocka_unit_test(test_msg_pkesk_short),
		cmocka_unit_test(test_msg_pkesk_bad_version),
		cmocka_unit_test(test_msg_pkesk_v6),
		cmocka_unit_test(test_msg_pkesk_v6_short),
		cmocka_unit_test(test_msg_skesk_versions),
		cmocka_unit_test(test_msg_first_octet_no_bit7),
		cmocka_unit_test(test_msg_tag0),
		cmocka_unit_test(test_msg_empty),
		cmocka_unit_test(test_msg_unexpected_between),
		cmocka_unit_test(test_msg_partial_on_pkesk),
		cmocka_unit_test(test_msg_truncated),
		cmocka_unit_test(test_msg_seipd_bad_version),
		cmocka_unit_test(test_msg_many_esk),
		cmocka_unit_test(test_key_public),
		cmocka_unit_test(test_key_two_keys),
		cmocka_unit_test(test_key_secret),
		cmocka_unit_test(test_key_starts_with_sig),
		cmocka_unit_test(test_key_literal_inside),
		cmocka_unit_test(test_key_tag0),
		cmocka_unit_test(test_key_truncated),
		cmocka_unit_test(test_key_empty),
		cmocka_unit_test(test_key_bad_key_packet),
	};
	fill_body();
	t_filter_from_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
