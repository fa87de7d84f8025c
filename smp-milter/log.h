/* log.h - smp-milter logging: syslog, or stderr in the foreground */
#ifndef SMP_MILTER_LOG_H
#define SMP_MILTER_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* to_stderr: -f; level: the syslog priority at and above which to log. */
void smp_log_open(bool to_stderr, int level);
void smp_log_set_level(int level);
void smp_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smp_log_close(void);

#endif
