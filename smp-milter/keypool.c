/* keypool.c - a small pool of keyring connections and gpgme contexts. */
#include "keypool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed = PTHREAD_COND_INITIALIZER;
static struct smp_keyslot slots[SMP_KEYPOOL_SIZE];

static const char *keyring_target(const struct smp_config *cfg)
{
	return strcmp(cfg->keyring_backend, "sqlite") ? cfg->keyring_conninfo
						       : cfg->keyring_path;
}

static void slot_close(struct smp_keyslot *s)
{
	if (s->gpg)
		smp_gpg_close(s->gpg);
	if (s->kr)
		smp_keyring_close(s->kr);
	free(s->target);
	free(s->home);
	s->kr = NULL;
	s->gpg = NULL;
	s->target = s->home = NULL;
}

struct smp_keyslot *smp_keypool_get(const struct smp_config *cfg, char *err,
				    size_t errlen)
{
	const char *target = keyring_target(cfg);
	struct smp_keyslot *s = NULL;

	pthread_mutex_lock(&lock);
	for (;;) {
		/* prefer a free slot already open on this keyring */
		for (int i = 0; i < SMP_KEYPOOL_SIZE && !s; i++)
			if (!slots[i].busy && slots[i].kr &&
			    !strcmp(slots[i].target, target))
				s = &slots[i];
		for (int i = 0; i < SMP_KEYPOOL_SIZE && !s; i++)
			if (!slots[i].busy)
				s = &slots[i];
		if (s)
			break;
		pthread_cond_wait(&freed, &lock);
	}
	s->busy = true;
	pthread_mutex_unlock(&lock);

	/* opening happens outside the lock: it may take a while */
	if (s->kr && strcmp(s->target, target))
		slot_close(s); /* the config moved to another keyring */
	if (!s->kr) {
		s->target = strdup(target);
		if (!s->target || smp_keyring_open(cfg->keyring_backend, target, &s->kr,
						   err, errlen) < 0) {
			if (!s->target)
				snprintf(err, errlen, "out of memory");
			slot_close(s);
			smp_keypool_put(s);
			return NULL;
		}
	}
	return s;
}

struct smp_gpg *smp_keyslot_gpg(struct smp_keyslot *s, const struct smp_config *cfg,
				char *err, size_t errlen)
{
	if (s->gpg && strcmp(s->home, cfg->gnupg_home)) {
		smp_gpg_close(s->gpg);
		s->gpg = NULL;
		free(s->home);
		s->home = NULL;
	}
	if (!s->gpg) {
		s->home = strdup(cfg->gnupg_home);
		if (!s->home) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		if (smp_gpg_open(cfg->gnupg_home, &s->gpg, err, errlen) < 0) {
			free(s->home);
			s->home = NULL;
			s->gpg = NULL;
			return NULL;
		}
	}
	return s->gpg;
}

void smp_keypool_put(struct smp_keyslot *s)
{
	pthread_mutex_lock(&lock);
	s->busy = false;
	pthread_cond_signal(&freed);
	pthread_mutex_unlock(&lock);
}

void smp_keypool_shutdown(void)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < SMP_KEYPOOL_SIZE; i++)
		slot_close(&slots[i]);
	pthread_mutex_unlock(&lock);
}
