# smp-milter - top-level build.
#   make            build libsmp, smpctl
#   make check      install missing packages, build, run every test
#   make check SANITIZE=1   the same with ASan+UBSan
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS (default 300)
#   make bench      print throughput figures
#   make install    DESTDIR=... PREFIX=... (default /usr/local)

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man

CC      ?= cc
CLANG   ?= clang
PKG_CONFIG ?= pkg-config

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
B := build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B := build
SAN_FLAGS :=
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
OPT      ?= -O2 -g
PKGS     := gmime-3.0 jansson libconfuse sqlite3 gpgme librnp libpq libcurl libunbound
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

ALL_CFLAGS = -std=gnu11 $(OPT) $(WARN) $(SAN_FLAGS) -D_GNU_SOURCE -Ilib $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(patsubst lib/%.c,$(B)/lib/%.o,$(LIB_SRCS))
LIBSMP   := $(B)/libsmp.a

SMPCTL_SRCS := $(wildcard smpctl/*.c)
SMPCTL_OBJS := $(patsubst smpctl/%.c,$(B)/smpctl/%.o,$(SMPCTL_SRCS))
SMPCTL      := $(B)/bin/smpctl

MILTER_SRCS := $(wildcard smp-milter/*.c)
MILTER_OBJS := $(patsubst smp-milter/%.c,$(B)/smp-milter/%.o,$(MILTER_SRCS))
MILTER      := $(B)/bin/smp-milter

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))

.PHONY: all deps check test clean install fuzz fuzz-check bench run
.DELETE_ON_ERROR:

all: $(LIBSMP) $(SMPCTL) $(MILTER)

deps:
	@./.ci/install-deps.sh

$(B)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBSMP): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/smpctl/%.o: smpctl/%.c $(wildcard smpctl/*.h) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ismpctl -c $< -o $@

$(SMPCTL): $(SMPCTL_OBJS) $(LIBSMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(SMPCTL_OBJS) $(LIBSMP) $(PKG_LIBS)

$(B)/tests/%: tests/unit/%.c $(LIBSMP) $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -DFIXTURES_DIR='"$(CURDIR)/fixtures"' -o $@ $< $(LIBSMP) $(PKG_LIBS) $(CMOCKA_LIBS) $(ALL_LDFLAGS)

$(B)/smp-milter/%.o: smp-milter/%.c $(wildcard smp-milter/*.h) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ismp-milter -c $< -o $@

$(MILTER): $(MILTER_OBJS) $(LIBSMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(MILTER_OBJS) $(LIBSMP) $(PKG_LIBS) -lmilter -lpthread

# Every test: unit tests, smpctl black-box tests, short fuzz runs.
check: deps
	$(MAKE) all tests-build fuzz-build
	B=$(B) ./tests/run-tests.sh

tests-build: $(UNIT_BINS)

test: all tests-build
	B=$(B) ./tests/run-tests.sh --no-fuzz

-include fuzz/fuzz.mk
-include bench/bench.mk

SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/smp-milter \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	install -m 0755 $(SMPCTL) $(DESTDIR)$(BINDIR)/smpctl
	install -m 0755 $(MILTER) $(DESTDIR)$(SBINDIR)/smp-milter
	install -m 0644 doc/smp-milter.8 doc/smpctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 doc/smp-milter.conf.5 $(DESTDIR)$(MANDIR)/man5/
	[ -e $(DESTDIR)$(SYSCONFDIR)/smp-milter/smp-milter.conf ] || \
		install -m 0640 etc/smp-milter.conf $(DESTDIR)$(SYSCONFDIR)/smp-milter/smp-milter.conf
	sed -e 's|/usr/sbin/smp-milter|$(SBINDIR)/smp-milter|g' \
	    -e 's|/etc/smp-milter/|$(SYSCONFDIR)/smp-milter/|g' systemd/smp-milter.service \
		>$(DESTDIR)$(UNITDIR)/smp-milter.service
	install -m 0644 systemd/smp-milter.sysusers $(DESTDIR)$(SYSUSERSDIR)/smp-milter.conf
	install -m 0644 systemd/smp-milter.tmpfiles $(DESTDIR)$(TMPFILESDIR)/smp-milter.conf

# make run: build, write a local config under ./var, run in the foreground.
RUN_SOCKET ?= unix:$(CURDIR)/var/run/smp-milter.sock
run: deps
	$(MAKE) all
	@mkdir -p var/run var/lib
	@[ -e var/smp-milter.conf ] || printf '%s\n' \
		'# local development config written by "make run"' \
		'socket = "$(RUN_SOCKET)"' \
		'socket_mode = "0666"' \
		'user = ""' 'group = ""' \
		'pidfile = "$(CURDIR)/var/run/smp-milter.pid"' \
		'keyring {' '  path = "$(CURDIR)/var/lib/keyring.db"' '}' \
		'gnupg_home = "$(CURDIR)/var/lib/gnupg"' \
		'log_level = debug' >var/smp-milter.conf
	@echo "smp-milter: config var/smp-milter.conf, socket $(RUN_SOCKET)"
	@echo "Hook it into Postfix with:"
	@echo "  postconf -e 'smtpd_milters = $(RUN_SOCKET)' 'non_smtpd_milters = $(RUN_SOCKET)'"
	@echo "  postconf -e 'milter_default_action = tempfail'"
	exec $(MILTER) -f -c var/smp-milter.conf

clean:
	rm -rf build build-san
