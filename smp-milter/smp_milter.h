/* smp_milter.h - pieces of the daemon shared between its modules */
#ifndef SMP_MILTER_H
#define SMP_MILTER_H

#include <libmilter/mfapi.h>

#include "smp_config.h"

#define SMP_MILTER_NAME "smp-milter"
#define SMP_MILTER_VERSION "0.1.0"

/* confhold.c: the running configuration, swapped on SIGHUP. Every
 * smp_conf_set() starts a new generation (1, 2, ...). A connection holds a
 * reference for what it negotiated; each message holds the one current at
 * MAIL and compares generations when it is decided (SPEC 3, Reload). */
void smp_conf_set(struct smp_config *c);      /* takes ownership */
struct smp_config *smp_conf_get(void);        /* +1 reference */
/* +1 reference to the current config; *gen receives its generation */
struct smp_config *smp_conf_get_gen(unsigned long *gen);
unsigned long smp_conf_generation(void);      /* the current generation */
void smp_conf_put(struct smp_config *c);      /* -1 reference */
void smp_conf_shutdown(void);                 /* drops the current one */

/* milter.c: the libmilter callbacks. */
extern struct smfiDesc smp_milter_desc;

#endif
