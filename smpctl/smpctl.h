/* smpctl.h - shared bits of the smpctl commands */
#ifndef SMPCTL_H
#define SMPCTL_H

/* sysexits(3) codes used by smpctl */
#include <sysexits.h>

#define SMPCTL_NAME "smpctl"

/* Prints "smpctl: <message>" to stderr. */
void smpctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

int smpctl_cmd_check(int argc, char **argv);
int smpctl_cmd_check_config(int argc, char **argv);
int smpctl_cmd_keys(int argc, char **argv);
int smpctl_cmd_stats(int argc, char **argv);

#endif
