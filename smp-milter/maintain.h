/* maintain.h - the daemon's housekeeping thread: keyring.events_keep and
 * replay.window applied at most hourly, off the message path. */
#ifndef SMP_MILTER_MAINTAIN_H
#define SMP_MILTER_MAINTAIN_H

/* Starts the thread (after the privilege drop). 0, or -1 with errno. */
int smp_maintain_start(void);

/* Stops it and waits for it; a prune in progress finishes first. */
void smp_maintain_stop(void);

/* A message used the keyring: from now on it is pruned (a keyring the
 * daemon never needed is not opened, nor created, just to prune it). */
void smp_maintain_keyring_used(void);

#endif
