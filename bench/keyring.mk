# bench/keyring.mk - keyring database benchmark (included by bench/bench.mk).
#
#   make bench-keyring   address lookup latency (p50/p99/max) with 100,000
#                        keys, and store rates (keys/s, one transaction per
#                        key as the milter does) for new and for
#                        already-known keys: on an SQLite keyring, then on
#                        PostgreSQL (a throwaway server on a unix socket,
#                        started with tests/pg/pg-start.sh --durable, so
#                        with fsync and synchronous_commit on, and stopped
#                        by PID afterwards). About two minutes.
#   BENCH_KEYRING_ARGS   e.g. "--keys 200000 --dir /var/lib/smp-milter"
#   BENCH_KEYRING_PG     a conninfo to measure an existing PostgreSQL
#                        server instead (a schema is created and dropped);
#                        "none" to measure SQLite only
ifndef SMP_BENCH_KEYRING_MK
SMP_BENCH_KEYRING_MK := 1

BENCH_TARGETS += bench-keyring
BENCH_KEYRING_PG ?=

.PHONY: bench-keyring

$(B)/bench/bench_keyring: bench/bench_keyring.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-keyring: $(B)/bench/bench_keyring
	@cd $(CURDIR) && \
	if [ "$(BENCH_KEYRING_PG)" = none ]; then \
		./$(B)/bench/bench_keyring $(BENCH_KEYRING_ARGS); \
	elif [ -n "$(BENCH_KEYRING_PG)" ]; then \
		./$(B)/bench/bench_keyring $(BENCH_KEYRING_ARGS) --pg "$(BENCH_KEYRING_PG)"; \
	else \
		d=$$(mktemp -d /tmp/smppg-bench.XXXXXX) && \
		trap 'tests/pg/pg-stop.sh "$$d"' EXIT INT TERM && \
		ci=$$(tests/pg/pg-start.sh "$$d" --durable) && \
		./$(B)/bench/bench_keyring $(BENCH_KEYRING_ARGS) --pg "$$ci"; \
	fi

endif
