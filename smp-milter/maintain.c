/* maintain.c - the housekeeping thread.
 *
 * Pruning (smp_keyring_prune: events older than keyring.events_keep, replay
 * entries older than replay.window) waits for the keyring's write lock like
 * any write, so it runs here and never between a message's decision and
 * its reply. Once a minute the thread looks whether an hour has passed
 * since the last prune (a clock set back makes it due again); it borrows a
 * keyring connection from the pool like a worker. A failure is logged and
 * tried again an hour later; nothing else depends on it.
 *
 * Each tick it also refreshes the keys that came from WKD or DANE whose
 * refresh is due (discwork.h): at most discovery.refresh_per_minute a
 * minute, spread over the ticks; their cache entries expire at a random
 * 75-95% of the TTL, so the lookups of keys found together spread out.
 */
#include "maintain.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "discwork.h"
#include "keypool.h"
#include "log.h"
#include "smp_milter.h"

#define MAINTAIN_PRUNE_EVERY 3600 /* seconds between prunes */
#define MAINTAIN_TICK 60          /* seconds between looks */

/* Seconds between looks: MAINTAIN_TICK, or SMP_MILTER_MAINTAIN_TICK from
 * the environment (1..60, a test hook: the tests see the first prune
 * without waiting a minute). */
static long maintain_tick(void)
{
	const char *v = getenv("SMP_MILTER_MAINTAIN_TICK");
	char *end;
	long n;

	if (!v || !*v)
		return MAINTAIN_TICK;
	n = strtol(v, &end, 10);
	return !*end && n >= 1 && n <= MAINTAIN_TICK ? n : MAINTAIN_TICK;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t tid;
static bool running, stopping;
static int keyring_used; /* atomic */

void smp_maintain_keyring_used(void)
{
	__atomic_store_n(&keyring_used, 1, __ATOMIC_RELAXED);
}

static void maintain_prune(void)
{
	struct smp_config *cfg = smp_conf_get();
	struct smp_keyslot *slot;
	struct smp_keyring_pruned p;
	char err[512];

	if (!cfg)
		return;
	slot = smp_keypool_get(cfg, err, sizeof(err));
	if (!slot) {
		smp_log(LOG_WARNING, "keyring prune failed (tried again in an hour): %s",
			err);
		goto out;
	}
	if (smp_keyring_prune(slot->kr, (int64_t)time(NULL),
			      (int64_t)cfg->keyring_events_keep * 86400,
			      cfg->replay_window, &p) < 0)
		smp_log(LOG_WARNING, "keyring prune failed (tried again in an hour): %s",
			smp_keyring_errmsg(slot->kr));
	else
		smp_log(LOG_INFO, "keyring pruned: events=%lu (events_keep=%ld days) "
			"replay_entries=%lu (replay.window=%lds)",
			p.events, cfg->keyring_events_keep, p.replay_entries,
			cfg->replay_window);
	smp_keypool_put(slot);
out:
	smp_conf_put(cfg);
}

/* Key discovery refresh (discwork.h): discovery.refresh_per_minute,
 * spread over the ticks. */
static void maintain_refresh(long tick)
{
	struct smp_config *cfg = smp_conf_get();
	unsigned max;

	if (!cfg)
		return;
	max = (unsigned)((cfg->disc.refresh_per_minute * (unsigned long)tick + 59) / 60);
	if (cfg->disc_any)
		smp_discwork_refresh_due(cfg, max ? max : 1, &stopping);
	smp_conf_put(cfg);
}

static void *maintain_main(void *arg)
{
	time_t last = 0, next_refresh = 0;
	long tick = maintain_tick();
	sigset_t sigs;

	(void)arg;
	/* SIGHUP, SIGTERM and SIGINT are the main thread's (main.c) */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	pthread_mutex_lock(&lock);
	while (!stopping) {
		struct timespec until;
		time_t now = time(NULL);

		if (__atomic_load_n(&keyring_used, __ATOMIC_RELAXED) &&
		    (last == 0 || now < last || now - last >= MAINTAIN_PRUNE_EVERY)) {
			last = now;
			pthread_mutex_unlock(&lock);
			maintain_prune();
			pthread_mutex_lock(&lock);
			continue;
		}
		if (now >= next_refresh) {
			next_refresh = now + tick;
			pthread_mutex_unlock(&lock);
			maintain_refresh(tick);
			pthread_mutex_lock(&lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += tick;
		pthread_cond_timedwait(&wake, &lock, &until);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int smp_maintain_start(void)
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&wake, &ca);
	pthread_condattr_destroy(&ca);
	if (rc == 0)
		rc = pthread_create(&tid, NULL, maintain_main, NULL);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	running = true;
	return 0;
}

void smp_maintain_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(tid, NULL);
	running = false;
}
