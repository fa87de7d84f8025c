/* log.c - one log function for the daemon (syslog or stderr). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static bool log_stderr;
static int log_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void smp_log_open(bool to_stderr, int level)
{
	log_stderr = to_stderr;
	log_level = level;
	if (!to_stderr)
		openlog("smp-milter", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void smp_log_set_level(int level)
{
	log_level = level;
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void smp_log(int prio, const char *fmt, ...)
{
	va_list ap;

	if (prio > log_level)
		return;
	va_start(ap, fmt);
	if (log_stderr) {
		char msg[2048];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		pthread_mutex_lock(&log_lock);
		fprintf(stderr, "smp-milter[%s]: %s\n", prio_name(prio), msg);
		fflush(stderr);
		pthread_mutex_unlock(&log_lock);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}

void smp_log_close(void)
{
	if (!log_stderr)
		closelog();
}
