/* confhold.c - reference-counted holder of the running configuration. */
#include <pthread.h>
#include <stdlib.h>

#include "smp_milter.h"

struct held {
	struct smp_config *cfg;
	unsigned long gen; /* generation: 1, 2, ... one per smp_conf_set */
	unsigned refs;
	struct held *next; /* retired configs still referenced */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct held *current;
static struct held *retired;
static unsigned long generation;

static void drop_locked(struct held *h)
{
	struct held **pp;

	if (--h->refs > 0)
		return;
	for (pp = &retired; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	smp_config_free(h->cfg);
	free(h);
}

void smp_conf_set(struct smp_config *c)
{
	struct held *h = calloc(1, sizeof(*h));

	if (!h) {
		smp_config_free(c);
		return;
	}
	h->cfg = c;
	h->refs = 1; /* the "current" reference */
	pthread_mutex_lock(&lock);
	h->gen = ++generation;
	if (current) {
		current->next = retired;
		retired = current;
		drop_locked(current);
	}
	current = h;
	pthread_mutex_unlock(&lock);
}

struct smp_config *smp_conf_get_gen(unsigned long *gen)
{
	struct smp_config *c = NULL;

	pthread_mutex_lock(&lock);
	if (current) {
		current->refs++;
		c = current->cfg;
	}
	if (gen)
		*gen = current ? current->gen : 0;
	pthread_mutex_unlock(&lock);
	return c;
}

struct smp_config *smp_conf_get(void)
{
	return smp_conf_get_gen(NULL);
}

unsigned long smp_conf_generation(void)
{
	unsigned long g;

	pthread_mutex_lock(&lock);
	g = current ? current->gen : 0;
	pthread_mutex_unlock(&lock);
	return g;
}

void smp_conf_put(struct smp_config *c)
{
	pthread_mutex_lock(&lock);
	if (current && current->cfg == c) {
		drop_locked(current);
	} else {
		for (struct held *h = retired; h; h = h->next)
			if (h->cfg == c) {
				drop_locked(h);
				break;
			}
	}
	pthread_mutex_unlock(&lock);
}

void smp_conf_shutdown(void)
{
	pthread_mutex_lock(&lock);
	if (current) {
		struct held *h = current;
		current = NULL;
		h->next = retired;
		retired = h;
		drop_locked(h);
	}
	pthread_mutex_unlock(&lock);
}
