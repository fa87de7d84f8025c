# bench/keyring.mk - keyring database benchmark (included by bench/bench.mk).
#
#   make bench-keyring   address lookup latency (p50/p99/max) with 100,000
#                        keys in an SQLite keyring, and store rates (keys/s,
#                        one transaction per key as the milter does) for new
#                        and for already-known keys. Under a minute.
#   BENCH_KEYRING_ARGS   e.g. "--keys 200000 --dir /var/lib/smp-milter"
ifndef SMP_BENCH_KEYRING_MK
SMP_BENCH_KEYRING_MK := 1

BENCH_TARGETS += bench-keyring

.PHONY: bench-keyring

$(B)/bench/bench_keyring: bench/bench_keyring.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-keyring: $(B)/bench/bench_keyring
	cd $(CURDIR) && ./$(B)/bench/bench_keyring $(BENCH_KEYRING_ARGS)

endif
