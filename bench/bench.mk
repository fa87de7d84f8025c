# bench/bench.mk - benchmarks (included by the top-level Makefile).
#
#   make bench          run every benchmark in BENCH_TARGETS, one at a time
#   make bench-validate libsmp validation throughput vs a bare gmime parse
#
# To add a benchmark, add a rule for a phony target and append its name to
# BENCH_TARGETS, here or in another bench/*.mk (included below):
#   BENCH_TARGETS += bench-foo
# Numbers are printed, never asserted. Benchmarks run from the repo root.

BENCH_TARGETS += bench-validate
BENCH_BUILD   := $(B)/bench
BENCH_CFLAGS   = $(ALL_CFLAGS) -O2

.PHONY: bench-validate

$(BENCH_BUILD)/bench_validate: bench/bench_validate.c $(LIBSMP) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(LIBSMP) $(PKG_LIBS) $(ALL_LDFLAGS)

bench-validate: $(BENCH_BUILD)/bench_validate
	cd $(CURDIR) && ./$(BENCH_BUILD)/bench_validate

include $(filter-out bench/bench.mk,$(sort $(wildcard bench/*.mk)))

# Sequential on purpose (even under make -j): benchmarks must not overlap.
bench:
	@set -e; for t in $(BENCH_TARGETS); do \
		$(MAKE) --no-print-directory $$t; \
	done
