/* smpctl.h - shared bits of the smpctl commands */
#ifndef SMPCTL_H
#define SMPCTL_H

/* sysexits(3) codes used by smpctl */
#include <sysexits.h>

#define SMPCTL_NAME "smpctl"

/*
 * Prints "smpctl: <message>" and a newline to stderr, one line: every octet
 * of the message that is not printable ASCII (a control character from an
 * argument, a file name or a library message, a line break, UTF-8) is
 * written as \xNN, so nothing reaches the terminal raw. Messages longer
 * than SMPCTL_ERROR_MAX octets are cut and end in "...".
 */
#define SMPCTL_ERROR_MAX 2048
void smpctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * An argument quoted for an error sentence (smp_quote_arg: 'text', other
 * than printable ASCII as \xNN, cut after 80 octets). The result lives in
 * one of SMPCTL_QUOTE_SLOTS static buffers used in turn, so up to that many
 * may appear in one smpctl_error() call.
 */
#define SMPCTL_QUOTE_SLOTS 4
const char *smpctl_quote(const char *arg);

/* Exit codes of "smpctl check" besides the sysexits ones. */
enum {
	SMPCTL_CHECK_VALID = 0,
	SMPCTL_CHECK_INVALID = 1,
	SMPCTL_CHECK_NOT_SMP = 2,
};

struct smp_config;

/*
 * The configuration for this run: -c FILE, else the default path when it
 * exists, else built-in defaults. NULL after printing a "file:line: what"
 * error (exit EX_CONFIG then).
 */
const struct smp_config *smpctl_config(void);

struct smp_keyring;
struct smp_crypto;
/* The configured keyring (keyring.backend: its path or conninfo) and
 * crypto engine (crypto.engine; gnupg_home for gnupg). NULL after one
 * error sentence on stderr (exit EX_CONFIG then). */
struct smp_keyring *smpctl_open_keyring(void);
struct smp_crypto *smpctl_open_crypto(void);

int smpctl_cmd_check(int argc, char **argv);
int smpctl_cmd_check_config(int argc, char **argv);
int smpctl_cmd_keys(int argc, char **argv);
/* argv[0] is "migrate" (cmd_migrate.c) */
int smpctl_cmd_keys_migrate(int argc, char **argv);
/* argv[0] is "refresh" (cmd_refresh.c) */
int smpctl_cmd_keys_refresh(int argc, char **argv);
int smpctl_cmd_stats(int argc, char **argv);
/* argv[0] is "wkd" (cmd_wkd.c) */
int smpctl_cmd_wkd(int argc, char **argv);

#endif
