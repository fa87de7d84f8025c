# bench/postfix.mk - Postfix end-to-end benchmark and test (included by
# bench/bench.mk, which includes every bench/*.mk; guarded against a second
# inclusion).
#
#   make bench-postfix   Postfix throughput: no milter vs bench/postfix/passmilter
#                        vs smp-milter (20 sessions, SMP + plain mix) vs
#                        smp-milter with encryption on, per crypto engine
#                        (rnp, gnupg), and smp-milter's resident memory with
#                        100 sessions.
#                        Root only; a throwaway Postfix instance on 127.0.0.1.
#   make test-postfix    tests/postfix/e2e.sh (throwaway Postfix + smp-milter)
#   BENCH_POSTFIX_ARGS   extra arguments/env, e.g. BENCH_POSTFIX_MESSAGES=4000
ifndef SMP_BENCH_POSTFIX_MK
SMP_BENCH_POSTFIX_MK := 1

BENCH_TARGETS += bench-postfix
PASSMILTER := $(B)/bench/passmilter

.PHONY: bench-postfix test-postfix

$(PASSMILTER): bench/postfix/passmilter.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< -lmilter -lpthread $(ALL_LDFLAGS)

bench-postfix: $(PASSMILTER) $(MILTER)
	cd $(CURDIR) && B=$(B) PASSMILTER=$(PASSMILTER) bash bench/postfix/throughput.sh

test-postfix: $(MILTER)
	cd $(CURDIR) && B=$(B) bash tests/postfix/e2e.sh

endif
