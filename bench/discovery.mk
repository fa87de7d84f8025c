# bench/discovery.mk - key discovery benchmark (included by bench/bench.mk).
#
#   make bench-discovery  (issue 11) messages/s through a throwaway Postfix
#                         + smp-milter to recipients whose keys came from
#                         WKD (looked up once before timing: warm cache) vs
#                         already-harvested recipients (the ratio; goal >=
#                         0.95) and imported (pinned) ones; messages/s to
#                         recipients never looked up before (a WKD lookup
#                         per message); and cold lookups per second of the
#                         WKD and DANE transports alone
#                         (bench/bench_discovery.c, 1 and 8 threads).
#                         Against the servers of tests/discovery (knotd,
#                         the HTTPS WKD server) started in a temp dir and
#                         stopped by PID. Root only; about 80 s, stopped
#                         (SIGTERM: everything it started is stopped by
#                         PID) after BENCH_DISCOVERY_LIMIT s (175).
#   BENCH_DISCOVERY_ARGS  environment for bench/postfix/discovery.sh, e.g.
#                         "BENCH_DISC_MESSAGES=2000 BENCH_DISC_ROUNDS=3"
ifndef SMP_BENCH_DISCOVERY_MK
SMP_BENCH_DISCOVERY_MK := 1

BENCH_TARGETS += bench-discovery
BENCH_DISCOVERY_LIMIT ?= 175

.PHONY: bench-discovery

$(B)/bench/bench_discovery: bench/bench_discovery.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) -lpthread $(ALL_LDFLAGS)

bench-discovery: $(B)/bench/bench_discovery $(MILTER) $(SMPCTL)
	cd $(CURDIR) && env $(BENCH_DISCOVERY_ARGS) B=$(B) BENCH_DISC_BIN=$(B)/bench/bench_discovery \
		timeout -k 30 $(BENCH_DISCOVERY_LIMIT) bash bench/postfix/discovery.sh

endif
