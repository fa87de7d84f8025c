/* keypool.c - a small pool of keyring connections and crypto engines, and
 * what keeps them on the right files (see keypool.h). */
#include "keypool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

/* The same health sentence is logged once within this many seconds,
 * unless the keyring was opened meanwhile (two workers may notice one
 * event). */
#define HEALTH_LOG_QUIET 10
#define WHY_MAX 512

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed = PTHREAD_COND_INITIALIZER;
static struct smp_keyslot slots[SMP_KEYPOOL_SIZE];
/* Guarded by lock: */
static bool exclusive;          /* a worker is opening (exclusive_begin) */
static char *known;             /* a target opened once: never created again */
static bool open_failing;       /* the last open failed: say when it works */
static char last_why[WHY_MAX];
static time_t last_why_at;

/* Serialises making a GnuPG home (and so the line that says so). */
static pthread_mutex_t home_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *keyring_target(const struct smp_config *cfg)
{
	return strcmp(cfg->keyring_backend, "sqlite") ? cfg->keyring_conninfo
						       : cfg->keyring_path;
}

static bool is_sqlite(const struct smp_config *cfg)
{
	return !cfg->keyring_backend[0] || !strcmp(cfg->keyring_backend, "sqlite");
}

static void set_live(struct smp_keyslot *s, bool live)
{
	pthread_mutex_lock(&lock);
	s->live = live;
	pthread_cond_broadcast(&freed); /* exclusive_begin may wait for it */
	pthread_mutex_unlock(&lock);
}

static void slot_close_kr(struct smp_keyslot *s)
{
	smp_harvest_memo_free(s->memo);
	s->memo = NULL;
	if (s->kr)
		smp_keyring_close(s->kr);
	s->kr = NULL;
	free(s->target);
	s->target = NULL;
	set_live(s, false);
}

static void slot_close_crypto(struct smp_keyslot *s)
{
	smp_crypto_close(s->crypto);
	s->crypto = NULL;
	free(s->engine);
	free(s->home);
	s->engine = s->home = NULL;
}

static void slot_close(struct smp_keyslot *s)
{
	slot_close_crypto(s);
	slot_close_kr(s);
}

/* Logs why a connection is dropped, once per event. */
static void log_unusable(const char *why)
{
	time_t now = time(NULL);
	bool say;

	pthread_mutex_lock(&lock);
	say = strcmp(last_why, why) != 0 || now - last_why_at > HEALTH_LOG_QUIET ||
	      now < last_why_at;
	if (say) {
		snprintf(last_why, sizeof(last_why), "%s", why);
		last_why_at = now;
	}
	pthread_mutex_unlock(&lock);
	if (say)
		smp_log(LOG_WARNING, "keyring: %s; closing its connections and "
			"opening it again", why);
}

/*
 * Closes the other live connections that smp_keyring_check() fails, and
 * with all, every other one to target too (a damaged or replaced file is
 * a property of the file, not of one connection: and closing one may fold
 * its log into the file, which can make it look sound to another). The
 * caller is exclusive: nobody else uses them. True when one failed.
 */
static bool close_stale(struct smp_keyslot *self, const char *target, bool all)
{
	struct smp_keyslot *live[SMP_KEYPOOL_SIZE];
	size_t n = 0;
	bool any = false;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < SMP_KEYPOOL_SIZE; i++)
		if (&slots[i] != self && slots[i].live)
			live[n++] = &slots[i];
	pthread_mutex_unlock(&lock);
	for (size_t i = 0; i < n; i++) {
		if (smp_keyring_check(live[i]->kr) != 0) {
			log_unusable(smp_keyring_errmsg(live[i]->kr));
			any = true;
		} else if (!all || strcmp(live[i]->target, target)) {
			continue;
		}
		slot_close_kr(live[i]);
	}
	return any;
}

/*
 * Opening is exclusive: it waits until no other worker holds an open
 * connection (they finish their message), closes the idle ones that are
 * no longer usable, and only then opens. Connections to an old and a new
 * file at the same path never coexist in this process: they would share
 * one write-ahead log and -shm file, and closing one drops the process's
 * POSIX locks on the -shm file for the other (SQLite in another process
 * may then truncate it under us). Workers that arrive meanwhile wait in
 * smp_keypool_get; one that waits here first closes its own connection
 * (the exclusive worker waits for it).
 */
static void exclusive_begin(struct smp_keyslot *self)
{
	bool others;

	pthread_mutex_lock(&lock);
	while (exclusive) {
		if (self->live) {
			pthread_mutex_unlock(&lock);
			slot_close_kr(self);
			pthread_mutex_lock(&lock);
			continue;
		}
		pthread_cond_wait(&freed, &lock);
	}
	exclusive = true;
	do {
		others = false;
		for (int i = 0; i < SMP_KEYPOOL_SIZE; i++)
			others |= &slots[i] != self && slots[i].busy && slots[i].live;
		if (others)
			pthread_cond_wait(&freed, &lock);
	} while (others);
	pthread_mutex_unlock(&lock);
}

static void exclusive_end(void)
{
	pthread_mutex_lock(&lock);
	exclusive = false;
	pthread_cond_broadcast(&freed);
	pthread_mutex_unlock(&lock);
}

/* The directory of an SQLite keyring that was open before, made again
 * (0700) when missing. */
static int keyring_dir(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	struct stat st;
	size_t n;

	if (!slash)
		return 0;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sizeof(dir)) {
		snprintf(err, errlen, "keyring path %.200s... is too long", path);
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	if (stat(dir, &st) == 0)
		return 0; /* not a directory: SQLite's error says so */
	if (errno != ENOENT) {
		snprintf(err, errlen, "cannot reach the keyring directory %s: %s",
			 dir, strerror(errno));
		return -1;
	}
	if (mkdir(dir, 0700) == 0) {
		smp_log(LOG_WARNING, "keyring directory %s was missing: created it "
			"again (mode 0700)", dir);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	snprintf(err, errlen, "cannot create the keyring directory %s: %s", dir,
		 strerror(errno));
	return -1;
}

/* Opens s's keyring: created only the first time this process opens
 * target. */
static int slot_open(struct smp_keyslot *s, const struct smp_config *cfg,
		     const char *target, char *err, size_t errlen)
{
	unsigned flags;
	bool was_failing;
	struct stat st;

	pthread_mutex_lock(&lock);
	flags = known && !strcmp(known, target) ? SMP_KEYRING_NO_CREATE : 0;
	pthread_mutex_unlock(&lock);
	/* a directory that was there is made again; at the first open a
	 * missing one is an error (a typo must not become a new keyring) */
	if ((flags & SMP_KEYRING_NO_CREATE) && is_sqlite(cfg) &&
	    keyring_dir(target, err, errlen) != 0)
		goto fail;
	set_live(s, true);
	s->target = strdup(target);
	if (!s->target) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (smp_keyring_open_flags(cfg->keyring_backend, target, flags, &s->kr, err,
				   errlen) < 0) {
		if ((flags & SMP_KEYRING_NO_CREATE) && is_sqlite(cfg) &&
		    stat(target, &st) != 0 && errno == ENOENT)
			snprintf(err, errlen, "keyring database %s is missing (deleted "
				 "while smp-milter was running?) and is not made again "
				 "empty: restore it, or restart smp-milter to start a "
				 "new, empty one", target);
		goto fail;
	}
	if (smp_keyring_created(s->kr))
		smp_log(LOG_NOTICE, "created a new, empty keyring database %s", target);
	pthread_mutex_lock(&lock);
	if (!known || strcmp(known, target)) {
		free(known);
		known = strdup(target); /* NULL: created again next time, no worse */
	}
	was_failing = open_failing;
	open_failing = false;
	last_why[0] = '\0'; /* the next event is logged again */
	pthread_mutex_unlock(&lock);
	if (was_failing)
		smp_log(LOG_NOTICE, "keyring database %s opened again: keyring work "
			"resumes", target);
	return 0;
fail:
	pthread_mutex_lock(&lock);
	open_failing = true;
	pthread_mutex_unlock(&lock);
	free(s->target);
	s->target = NULL;
	s->kr = NULL;
	set_live(s, false);
	return -1;
}

/*
 * Opens s's keyring, exclusively (see exclusive_begin). failed: s's own
 * connection was found unusable: it is closed here, where its log can be
 * folded and emptied (nobody reads it), and so is every other connection
 * to the same file. The file may be replaced between the check of the
 * others and the open: so they are checked again afterwards, and when
 * one fails now, the new connection is closed too and opened again with
 * nothing else open.
 */
static int open_exclusive(struct smp_keyslot *s, const struct smp_config *cfg,
			  const char *target, bool failed, char *err, size_t errlen)
{
	int rc;

	exclusive_begin(s);
	if (s->kr)
		slot_close_kr(s);
	close_stale(s, target, failed);
	for (int tries = 1;; tries++) {
		bool changed;

		rc = slot_open(s, cfg, target, err, errlen);
		if (rc < 0)
			break;
		changed = close_stale(s, target, false);
		if (smp_keyring_check(s->kr) != 0)
			snprintf(err, errlen, "%s", smp_keyring_errmsg(s->kr));
		else if (!changed)
			break;
		else
			snprintf(err, errlen, "keyring database %s changed while it "
				 "was being opened", target);
		slot_close_kr(s);
		if (tries == 3) {
			rc = -1;
			break;
		}
	}
	exclusive_end();
	return rc;
}

struct smp_keyslot *smp_keypool_get(const struct smp_config *cfg, char *err,
				    size_t errlen)
{
	const char *target = keyring_target(cfg);
	struct smp_keyslot *s = NULL;
	bool failed;

	pthread_mutex_lock(&lock);
	for (;;) {
		/* prefer a free slot already open on this keyring */
		for (int i = 0; i < SMP_KEYPOOL_SIZE && !s && !exclusive; i++)
			if (!slots[i].busy && slots[i].live &&
			    !strcmp(slots[i].target, target))
				s = &slots[i];
		for (int i = 0; i < SMP_KEYPOOL_SIZE && !s && !exclusive; i++)
			if (!slots[i].busy)
				s = &slots[i];
		if (s)
			break;
		pthread_cond_wait(&freed, &lock);
	}
	s->busy = true;
	pthread_mutex_unlock(&lock);

	/* opening and checking happen outside the lock: they may take a while */
	if (s->kr && strcmp(s->target, target))
		slot_close_kr(s); /* the config moved to another keyring */
	failed = s->kr && smp_keyring_check(s->kr) != 0;
	if (failed)
		log_unusable(smp_keyring_errmsg(s->kr));
	if ((!s->kr || failed) &&
	    open_exclusive(s, cfg, target, failed, err, errlen) < 0) {
		smp_keypool_put(s);
		return NULL;
	}
	return s;
}

static bool is_gnupg(const char *engine)
{
	return strcmp(engine, "gnupg") == 0;
}

struct smp_crypto *smp_keyslot_crypto(struct smp_keyslot *s,
				      const struct smp_config *cfg, char *err,
				      size_t errlen)
{
	const char *engine = cfg->crypto_engine;
	const char *home = is_gnupg(engine) ? cfg->gnupg_home : NULL;
	struct stat st;
	bool missing = false;
	int rc;

	if (s->crypto && (strcmp(s->engine, engine) ||
			  (home && strcmp(s->home, home))))
		slot_close_crypto(s); /* a reload chose another engine or home */
	if (!s->crypto) {
		s->engine = strdup(engine);
		s->home = home ? strdup(home) : NULL;
		if (!s->engine || (home && !s->home)) {
			slot_close_crypto(s);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		/* rnp: in memory only; gnupg: the home is made when missing */
		if (home) {
			pthread_mutex_lock(&home_lock);
			missing = stat(home, &st) != 0 && errno == ENOENT;
		}
		rc = smp_crypto_open(engine, home, &s->crypto, err, errlen);
		if (home)
			pthread_mutex_unlock(&home_lock);
		if (rc < 0) {
			s->crypto = NULL;
			slot_close_crypto(s);
			return NULL;
		}
		if (missing)
			smp_log(LOG_NOTICE, "created the GnuPG home %s (mode 0700)",
				home);
	} else if (home) {
		/* a home deleted meanwhile is a cache: made again, the keys
		 * come back from the keyring as messages need them */
		pthread_mutex_lock(&home_lock);
		rc = smp_crypto_check(s->crypto);
		pthread_mutex_unlock(&home_lock);
		if (rc < 0) {
			snprintf(err, errlen, "%s", smp_crypto_errmsg(s->crypto));
			return NULL;
		}
		if (rc == 1)
			smp_log(LOG_WARNING, "GnuPG home %s was missing: created it "
				"again (mode 0700)", home);
	}
	smp_crypto_set_cache_max(s->crypto, (size_t)cfg->crypto_cache_keys);
	return s->crypto;
}

struct smp_harvest_memo *smp_keyslot_memo(struct smp_keyslot *s)
{
	if (!s->memo)
		s->memo = smp_harvest_memo_new(SMP_HARVEST_MEMO_DEFAULT);
	return s->memo;
}

void smp_keypool_put(struct smp_keyslot *s)
{
	pthread_mutex_lock(&lock);
	s->busy = false;
	pthread_cond_broadcast(&freed);
	pthread_mutex_unlock(&lock);
}

void smp_keypool_shutdown(void)
{
	for (int i = 0; i < SMP_KEYPOOL_SIZE; i++)
		slot_close(&slots[i]);
	pthread_mutex_lock(&lock);
	free(known);
	known = NULL;
	pthread_mutex_unlock(&lock);
}
