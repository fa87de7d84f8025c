/* main.c - smp-milter start-up, privilege drop, signals and reload.
 *
 * Start-up order (as milter-regex and clamav-milter do it): smfi_setconn,
 * smfi_register, smfi_opensocket as root, chown/chmod of a unix socket,
 * pidfile, privilege drop, then smfi_main in a thread of its own.
 *
 * Signals: libmilter's own signal thread sigwaits for SIGHUP, SIGTERM and
 * SIGINT and stops the milter on any of them, so a SIGHUP it takes is a
 * stop, not a reload. On Linux a process-directed signal goes to the
 * thread-group leader whenever the leader does not block it (and has no
 * signal pending), before any other thread. So the main thread never
 * blocks the three: a handler writes them into a pipe that the main thread
 * reads, and every other thread blocks them from its first instruction
 * (a SIGHUP arriving while a reload is being read waits in the pipe; the
 * same SIGHUP twice before the first is taken is one). Waiting in
 * sigwait() instead left the leader unable to take a signal while it was
 * reading a new configuration or starting the threads: a second SIGHUP
 * then stopped the milter (seen under valgrind).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "discwork.h"
#include "keypool.h"
#include "smp_encrypt.h"
#include "log.h"
#include "maintain.h"
#include "smp_gpg.h"
#include "smp_milter.h"

struct options {
	const char *config;
	bool test;
	bool foreground;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: smp-milter [-f] [-t] [-c FILE]\n"
		   "  -c FILE  configuration file (default %s)\n"
		   "  -f       stay in the foreground, log to stderr\n"
		   "  -t       check the configuration and exit (0 good, 78 bad)\n"
		   "  -V       print the version\n",
		SMP_CONFIG_DEFAULT_PATH);
}

/* "unix:/path", "local:/path" or "/path": the path; else NULL. */
static const char *unix_path(const char *spec)
{
	if (spec[0] == '/')
		return spec;
	if (!strncmp(spec, "unix:", 5))
		return spec + 5;
	if (!strncmp(spec, "local:", 6))
		return spec + 6;
	return NULL;
}

static int lookup_ids(const struct smp_config *c, const char *user,
		      const char *group, uid_t *uid, gid_t *gid)
{
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (user && *user) {
		struct passwd *pw = getpwnam(user);
		if (!pw) {
			smp_log(LOG_ERR, "%s: user '%s' does not exist", c->path, user);
			return -1;
		}
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	if (group && *group) {
		struct group *gr = getgrnam(group);
		if (!gr) {
			smp_log(LOG_ERR, "%s: group '%s' does not exist", c->path, group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

static int setup_socket(const struct smp_config *c)
{
	const char *path = unix_path(c->socket);
	const char *owner = *c->socket_owner ? c->socket_owner : c->user;
	const char *group = *c->socket_group ? c->socket_group : c->group;
	uid_t uid;
	gid_t gid;

	if (smfi_setconn(c->socket) != MI_SUCCESS) {
		smp_log(LOG_ERR, "cannot use socket %s", c->socket);
		return -1;
	}
	if (smfi_settimeout((int)c->timeout) != MI_SUCCESS ||
	    smfi_register(smp_milter_desc) != MI_SUCCESS) {
		smp_log(LOG_ERR, "smfi_register failed");
		return -1;
	}
	if (smfi_opensocket(true) != MI_SUCCESS) {
		smp_log(LOG_ERR, "cannot open socket %s", c->socket);
		return -1;
	}
	if (!path)
		return 0;
	if (chmod(path, c->socket_mode) < 0) {
		smp_log(LOG_ERR, "cannot chmod %s: %s", path, strerror(errno));
		return -1;
	}
	if (geteuid() != 0)
		return 0; /* only root can give the socket away */
	if (lookup_ids(c, owner, group, &uid, &gid) < 0)
		return -1;
	if (chown(path, uid, gid) < 0) {
		smp_log(LOG_ERR, "cannot chown %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	if (!*path)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		smp_log(LOG_ERR, "cannot write pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		smp_log(LOG_ERR, "cannot write pidfile %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int drop_privileges(const struct smp_config *c)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0 || (!*c->user && !*c->group))
		return 0;
	if (lookup_ids(c, c->user, c->group, &uid, &gid) < 0)
		return -1;
	if (gid != (gid_t)-1 && (setgroups(1, &gid) < 0 || setgid(gid) < 0)) {
		smp_log(LOG_ERR, "cannot change group to %s: %s", c->group, strerror(errno));
		return -1;
	}
	if (uid != (uid_t)-1 && setuid(uid) < 0) {
		smp_log(LOG_ERR, "cannot change user to %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (uid != 0 && uid != (uid_t)-1 && setuid(0) == 0) {
		smp_log(LOG_ERR, "privileges could be regained after the drop");
		return -1;
	}
	return 0;
}

/* The signals only the main thread takes (see the top of this file). */
static void block_main_signals(void)
{
	sigset_t sigs;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
}

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;

	if (write(signal_pipe[1], &b, 1) < 0) {
		/* the pipe is full: that signal is already waiting in it */
	}
	errno = saved;
}

static void *milter_thread(void *arg)
{
	int *rc = arg;

	block_main_signals(); /* libmilter's threads inherit this */
	*rc = smfi_main();
	/* wake the signal loop in main() when libmilter stops on its own */
	kill(getpid(), SIGTERM);
	return NULL;
}

static void reload(const char *path)
{
	char err[512];
	struct smp_config *old = smp_conf_get(), *c;

	c = smp_config_load(path, err, sizeof(err));
	if (!c) {
		smp_log(LOG_ERR, "reload failed, keeping the running configuration: %s", err);
		smp_conf_put(old);
		return;
	}
	if (old && (strcmp(old->socket, c->socket) || strcmp(old->user, c->user) ||
		    strcmp(old->group, c->group) || strcmp(old->pidfile, c->pidfile) ||
		    strcmp(old->socket_owner, c->socket_owner) ||
		    strcmp(old->socket_group, c->socket_group) ||
		    old->socket_mode != c->socket_mode || old->timeout != c->timeout))
		smp_log(LOG_WARNING, "reload: changes to socket, socket_owner, "
				     "socket_group, socket_mode, user, group, pidfile "
				     "and timeout take effect at the next restart");
	smp_log_set_level(c->log_level);
	/* a switch to the gnupg engine: gpgme's first call in this thread */
	if (!strcmp(c->crypto_engine, "gnupg") && !smp_gpg_init())
		smp_log(LOG_WARNING, "reload: crypto.engine = gnupg, but gpgme or "
				     "gpg is not usable");
	smp_conf_set(c);
	smp_conf_put(old);
	smp_log(LOG_NOTICE, "configuration reloaded from %s", path);
}

/* -t: the files key discovery reads at its first lookup (the DNS trust
 * anchors, the HTTPS CA bundle) must be readable now, when discovery may
 * act: found here, not by the first recipient's 451. */
static int discovery_files_check(const struct smp_config *cfg)
{
	const char *files[2][2] = {
		{"discovery.dns_trust_anchor_file", cfg->disc_dns_trust_anchor_file},
		{"discovery.ca_file", cfg->disc_ca_file},
	};

	if (!cfg->disc_any)
		return 0;
	for (size_t i = 0; i < 2; i++) {
		const char *path = files[i][1];

		if (path && *path && access(path, R_OK) != 0) {
			fprintf(stderr, "smp-milter: %s: %s = \"%s\": cannot read it: %s\n",
				cfg->path, files[i][0], path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void discovery_describe(const struct smp_config *cfg)
{
	char m[32];

	if (!cfg->disc_any) {
		printf("key discovery: off (%s)\n",
		       cfg->encrypt_any ? "no methods" : "no encrypt policy wants keys");
		return;
	}
	smp_disc_methods_format(&cfg->disc.methods, m, sizeof(m));
	printf("key discovery: %s (timeout %lld ms, on_error %s)\n", m,
	       (long long)cfg->disc.timeout_ms,
	       cfg->disc.on_error_tempfail ? "tempfail" : "plain");
}

int main(int argc, char **argv)
{
	struct options o = {SMP_CONFIG_DEFAULT_PATH, false, false};
	struct smp_config *cfg;
	char err[512], *pidfile = NULL;
	struct sigaction sa;
	sigset_t sigs;
	unsigned char sigbytes[64];
	pthread_t tid;
	int opt, milter_rc = MI_SUCCESS;
	bool stopping = false;

	while ((opt = getopt(argc, argv, "c:ftVh")) != -1) {
		switch (opt) {
		case 'c':
			o.config = optarg;
			break;
		case 'f':
			o.foreground = true;
			break;
		case 't':
			o.test = true;
			break;
		case 'V':
			printf("smp-milter %s\n", SMP_MILTER_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "smp-milter: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}

	cfg = smp_config_load(o.config, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "smp-milter: %s\n", err);
		return EX_CONFIG;
	}
	if (o.test) {
		uid_t uid;
		gid_t gid;
		/* a missing user only matters when started as root: warn */
		smp_log_open(true, LOG_ERR);
		if (lookup_ids(cfg, cfg->user, cfg->group, &uid, &gid) < 0)
			fprintf(stderr, "smp-milter: warning: start-up as root will "
					"fail until that user and group exist\n");
		if (discovery_files_check(cfg) < 0) {
			smp_config_free(cfg);
			return EX_CONFIG;
		}
		printf("%s: configuration OK\n", o.config);
		printf("crypto engine: %s\n", cfg->crypto_engine);
		discovery_describe(cfg);
		smp_config_free(cfg);
		return 0;
	}
	smp_lib_init();
	smp_log_open(o.foreground, cfg->log_level);
	/* gpgme wants its first call in the main thread, before threads;
	 * the rnp engine starts no process, so gpg is not even asked */
	if (!strcmp(cfg->crypto_engine, "gnupg") && !smp_gpg_init())
		smp_log(LOG_WARNING, "gpgme or gpg is not usable: key harvesting "
				     "will fail (and follow on_error)");

	if (setup_socket(cfg) < 0)
		goto fail;
	if (!o.foreground && daemon(0, 0) < 0) {
		smp_log(LOG_ERR, "cannot detach: %s", strerror(errno));
		goto fail;
	}
	if (write_pidfile(cfg->pidfile) < 0 || drop_privileges(cfg) < 0)
		goto fail;
	pidfile = strdup(cfg->pidfile);

	if (pipe2(signal_pipe, O_CLOEXEC) < 0 ||
	    fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
		smp_log(LOG_ERR, "cannot make the signal pipe: %s", strerror(errno));
		goto fail;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigaction(SIGHUP, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0) {
		smp_log(LOG_ERR, "cannot install signal handlers: %s", strerror(errno));
		goto fail;
	}
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL); /* the main thread takes them */
	signal(SIGPIPE, SIG_IGN);

	smp_conf_set(cfg); /* owned there now; only this thread frees it */
	if (smp_maintain_start() < 0) /* pruning stops; mail goes on */
		smp_log(LOG_ERR, "cannot start the housekeeping thread: %s",
			strerror(errno));
	if (pthread_create(&tid, NULL, milter_thread, &milter_rc) != 0) {
		smp_log(LOG_ERR, "cannot start the milter thread");
		cfg = NULL;
		goto fail;
	}
	/* logged once every thread runs: whoever sends a signal after seeing
	 * this line finds the main thread about to wait for it */
	smp_log(LOG_NOTICE, "smp-milter %s starting on %s (config %s, crypto engine %s)",
		SMP_MILTER_VERSION, cfg->socket, o.config, cfg->crypto_engine);
	cfg = NULL;
	while (!stopping) {
		/* every signal that came in since the last look: SIGHUPs that
		 * waited while a configuration was read make one reload */
		ssize_t n = read(signal_pipe[0], sigbytes, sizeof(sigbytes));
		bool hup = false;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* cannot happen: the write end stays open */
			smp_log(LOG_ERR, "signal pipe: %s", n < 0 ? strerror(errno) : "closed");
			n = 1;
			sigbytes[0] = SIGTERM;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (sigbytes[i] == SIGHUP)
				hup = true;
			else
				stopping = true;
		}
		if (stopping)
			smfi_stop();
		else if (hup)
			reload(o.config);
	}
	pthread_join(tid, NULL);
	smp_maintain_stop();
	smp_keypool_shutdown();
	smp_discwork_shutdown();
	smp_log(LOG_NOTICE, "smp-milter stopped");
	smp_conf_shutdown();
	if (pidfile && *pidfile && unlink(pidfile) < 0)
		smp_log(LOG_WARNING, "cannot remove pidfile %s: %s", pidfile,
			strerror(errno));
	free(pidfile);
	smp_log_close();
	return milter_rc == MI_SUCCESS ? 0 : EX_SOFTWARE;
fail:
	smp_config_free(cfg);
	smp_log_close();
	return EX_OSERR;
}
