# bench/harvest.mk - harvest benchmark (included by bench/bench.mk).
#
#   make bench-harvest   keys/s and ms/key through smp_harvest_message() on
#                        each crypto engine (rnp: 2000 keys, gnupg: 40), a
#                        SQLite keyring per engine in a temp dir and the
#                        daemon's memo of known blocks: NEW keys (outcome
#                        "harvested") and the same keys again (ALREADY
#                        KNOWN: "seen"; and once more with a new, empty
#                        memo, as after a restart: the keyring's
#                        known_blocks decide), crypto calls and gpg
#                        processes per harvest, and issue 9's goals (>= 1,000 new and
#                        >= 10,000 known keys/s). The keys (ed25519 +
#                        cv25519) are made with librnp at start and not
#                        timed. Then the rnp pass again on a PostgreSQL
#                        keyring (a throwaway server on a unix socket,
#                        tests/pg/pg-start.sh --durable, stopped by PID
#                        afterwards). About a minute.
#   BENCH_HARVEST_ARGS   e.g. "--keys 5000 --gnupg-keys 20 --dir /var/tmp"
#   BENCH_HARVEST_PG     a conninfo to use an existing PostgreSQL server
#                        instead (a schema is created and dropped); "none"
#                        for SQLite only
ifndef SMP_BENCH_HARVEST_MK
SMP_BENCH_HARVEST_MK := 1

BENCH_TARGETS += bench-harvest
BENCH_HARVEST_PG ?=

.PHONY: bench-harvest

$(B)/bench/bench_harvest: bench/bench_harvest.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-harvest: $(B)/bench/bench_harvest
	@cd $(CURDIR) && \
	if [ "$(BENCH_HARVEST_PG)" = none ]; then \
		./$(B)/bench/bench_harvest $(BENCH_HARVEST_ARGS); \
	elif [ -n "$(BENCH_HARVEST_PG)" ]; then \
		./$(B)/bench/bench_harvest $(BENCH_HARVEST_ARGS) --pg "$(BENCH_HARVEST_PG)"; \
	else \
		d=$$(mktemp -d /tmp/smppg-bench.XXXXXX) && \
		trap 'tests/pg/pg-stop.sh "$$d"' EXIT INT TERM && \
		ci=$$(tests/pg/pg-start.sh "$$d" --durable) && \
		./$(B)/bench/bench_harvest $(BENCH_HARVEST_ARGS) --pg "$$ci"; \
	fi

endif
