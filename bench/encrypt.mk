# bench/encrypt.mk - outbound encryption benchmark (included by bench/bench.mk).
#
#   make bench-encrypt   PGP/MIME encryption throughput (msgs/s, MB/s) for a
#                        ~20 KB and a ~1 MB message to bob's fixture key:
#                        (a) the milter's library path (smp_encrypt_check,
#                        smp_policy_decide, smp_encrypt_message on the
#                        default crypto engine, rnp; --engine gnupg in
#                        BENCH_ENCRYPT_ARGS for the other) vs (b) a
#                        bare gpgme encrypt loop over the same bytes and key,
#                        the ratio (a)/(b), gpg processes per message; (c)
#                        both with 2 threads, and 2 threads on a GnuPG home
#                        without no-random-seed-file (SPEC.md 9). Keyring
#                        (bob's key imported with smpctl keys import) and
#                        GnuPG home in a temp dir. Under ~90 s.
#   BENCH_ENCRYPT_ARGS   e.g. "--small 300 --large 40 --dir /var/tmp"
ifndef SMP_BENCH_ENCRYPT_MK
SMP_BENCH_ENCRYPT_MK := 1

BENCH_TARGETS += bench-encrypt

.PHONY: bench-encrypt

$(B)/bench/bench_encrypt: bench/bench_encrypt.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) -lpthread $(ALL_LDFLAGS)

bench-encrypt: $(B)/bench/bench_encrypt $(SMPCTL)
	cd $(CURDIR) && ./$(B)/bench/bench_encrypt --smpctl $(SMPCTL) $(BENCH_ENCRYPT_ARGS)

# bench/postfix/throughput.sh's "enc" configuration imports bob's key with
# smpctl: one more prerequisite of bench-postfix (bench/postfix.mk).
bench-postfix: $(SMPCTL)

endif
