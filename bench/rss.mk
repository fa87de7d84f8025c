# bench/rss.mk - resident memory benchmark (included by bench/bench.mk).
#
#   make bench-rss       smp-milter's peak RSS (VmHWM) with 100,000 keys in
#                        an SQLite keyring and 100 concurrent milter
#                        sessions (miltertest clients, each message a
#                        keyring lookup and an encryption) on the rnp
#                        engine: issue 9's goal, under 64 MB. No root, no
#                        Postfix. About 10 seconds. See bench/rss/rss.sh.
#   BENCH_RSS_ARGS       environment for it, e.g. "BENCH_RSS_SESSIONS=200
#                        BENCH_RSS_ENGINE=gnupg"
ifndef SMP_BENCH_RSS_MK
SMP_BENCH_RSS_MK := 1

BENCH_TARGETS += bench-rss

.PHONY: bench-rss

$(B)/bench/bench_rss_fill: bench/bench_rss_fill.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-rss: $(B)/bench/bench_rss_fill $(MILTER)
	cd $(CURDIR) && env B=$(B) $(BENCH_RSS_ARGS) bash bench/rss/rss.sh

endif
