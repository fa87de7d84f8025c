/* smpctl.c - the smp-milter admin CLI: command dispatch. */
#include "smpctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void smpctl_error(const char *fmt, ...)
{
	va_list ap;

	fputs(SMPCTL_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{"check", smpctl_cmd_check},
};

static int usage(FILE *f)
{
	fputs("usage: smpctl check [FILE|-] [--json]\n"
	      "  check   validate an SMP message; exit 0 valid, 1 invalid, "
	      "2 not SMP\n",
	      f);
	return f == stdout ? 0 : EX_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return usage(stdout);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	smpctl_error("unknown command '%s' (try 'smpctl --help')", argv[1]);
	return EX_USAGE;
}
