# bench/harvest.mk - harvest benchmark (included by bench/bench.mk).
#
#   make bench-harvest   keys/s and ms/key through smp_harvest_message() on
#                        each crypto engine (rnp: 2000 keys, gnupg: 40), a
#                        SQLite keyring per engine in a temp dir and the
#                        daemon's memo of known blocks: NEW keys (outcome
#                        "harvested") and the same keys again (ALREADY
#                        KNOWN: "seen"), crypto calls and gpg processes per
#                        harvest, and issue 9's goals (>= 1,000 new and
#                        >= 10,000 known keys/s). The keys (ed25519 +
#                        cv25519) are made with librnp at start and not
#                        timed. Under a minute.
#   BENCH_HARVEST_ARGS   e.g. "--keys 5000 --gnupg-keys 20 --dir /var/tmp"
ifndef SMP_BENCH_HARVEST_MK
SMP_BENCH_HARVEST_MK := 1

BENCH_TARGETS += bench-harvest

.PHONY: bench-harvest

$(B)/bench/bench_harvest: bench/bench_harvest.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-harvest: $(B)/bench/bench_harvest
	cd $(CURDIR) && ./$(B)/bench/bench_harvest $(BENCH_HARVEST_ARGS)

endif
