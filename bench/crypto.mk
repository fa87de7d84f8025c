# bench/crypto.mk - crypto engine benchmark (included by bench/bench.mk).
#
#   make bench-crypto    encryption of a 5 KB, a 100 KB and a 1 MB payload to
#                        bob's fixture key through smp_crypto_encrypt() on the
#                        rnp and on the gnupg engine, next to a bare librnp
#                        and a bare gpgme loop with the same settings:
#                        msgs/s, MB/s, ms/msg, gpg processes per message, and
#                        the ratios. About 50 s.
#   BENCH_CRYPTO_ARGS    e.g. "--seconds 10 --dir /var/tmp"
ifndef SMP_BENCH_CRYPTO_MK
SMP_BENCH_CRYPTO_MK := 1

BENCH_TARGETS += bench-crypto

.PHONY: bench-crypto

$(B)/bench/bench_crypto: bench/bench_crypto.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-crypto: $(B)/bench/bench_crypto
	cd $(CURDIR) && ./$(B)/bench/bench_crypto $(BENCH_CRYPTO_ARGS)

endif
