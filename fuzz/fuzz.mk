# fuzz/fuzz.mk - libFuzzer targets (included by the top-level Makefile).
#
#   make fuzz-build                 build $(B)/fuzz/fuzz_{armor,packets,message,address,keyinspect,merge}
#   make fuzz [FUZZ_SECONDS=300]    run each target that long
#   make fuzz-check [FUZZ_CHECK_SECONDS=30]   the short run of make check
#
# The library is compiled again here, with clang and the fuzzer and
# sanitizer instrumentation, into $(B)/fuzz/obj/; gmime is the system's.
# fuzz/run-fuzz.sh TARGET SECONDS runs one target (see its header).

FUZZ_TARGETS       := armor packets message address keyinspect merge
FUZZ_SECONDS       ?= 300
FUZZ_CHECK_SECONDS ?= 30

FUZZ_BUILD    := $(B)/fuzz
FUZZ_BINS     := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_LIB_OBJS := $(patsubst lib/%.c,$(FUZZ_BUILD)/obj/%.o,$(LIB_SRCS))
FUZZ_LIB      := $(FUZZ_BUILD)/libsmp-fuzz.a

FUZZ_SAN      := address,undefined
FUZZ_BASE_CFLAGS = -std=gnu11 -O1 -g -fno-omit-frame-pointer \
		 -fno-sanitize-recover=undefined -D_GNU_SOURCE -Ilib $(PKG_CFLAGS)
# The library and the targets build with the full warning set under clang
# too (clang adds some diagnostics gcc lacks).
FUZZ_CFLAGS     = $(FUZZ_BASE_CFLAGS) $(WARN)
FUZZ_LIB_CFLAGS = $(FUZZ_BASE_CFLAGS) $(WARN)

.PHONY: fuzz-build

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/obj/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_LIB_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(FUZZ_LIB) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

fuzz: fuzz-build
	B=$(B) ./fuzz/run-fuzz.sh all $(FUZZ_SECONDS)

fuzz-check: fuzz-build
	B=$(B) ./fuzz/run-fuzz.sh all $(FUZZ_CHECK_SECONDS)
