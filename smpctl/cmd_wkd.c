/* cmd_wkd.c - "smpctl wkd export DIR [--domain D]... [--json]" (SPEC.md 6,
 * issue 11): our users' usable keys as a Web Key Directory tree
 * (draft-koch-openpgp-webkey-service) any web server can publish.
 *
 * Our users are the addresses of the domains in outbound.domains (an entry
 * ".example.org" adds each subdomain that has bindings), or of the domains
 * named with --domain. An address's keys are the ones the milter would
 * encrypt to (smp_policy.h): its pinned bindings when it has any, else
 * none when it has a binding in conflict, else its active bindings; each
 * key stored, not revoked, not blocked, not expired. They are written, in
 * the minimal form the keyring stores, for each domain D as
 *
 *   DIR/.well-known/openpgpkey/D/hu/HASH   binary keys, concatenated when
 *                                          an address (or addresses whose
 *                                          local parts differ in case only)
 *                                          has several, ordered by
 *                                          fingerprint
 *   DIR/.well-known/openpgpkey/D/policy    empty; an existing one is kept
 *
 * (the advanced method's layout) and, when the export covers exactly one
 * domain, once more as DIR/.well-known/openpgpkey/hu/ and policy (the
 * direct method's). Every file is written under a temporary name and
 * renamed into place, so a web server serves the old file or the new one,
 * never half of one; a file whose content is unchanged is not rewritten.
 * HASH-named files in a hu/ directory written that no longer stand for a
 * published key are removed, so a revoked or blocked key stops being
 * served; with several domains, the direct method's hu/ is emptied the
 * same way (unless it is a symbolic link, which is never touched).
 * Directories are made 0755, files 0644. One export at a time per DIR
 * (flock on DIR).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smp_config.h"
#include "smp_discovery.h"
#include "smp_keyring.h"
#include "smpctl.h"

#define WKD_USAGE "smpctl wkd export DIR [--domain D]... [--json]"
#define WKD_TOP ".well-known/openpgpkey"
#define WKD_TMP_PREFIX ".smpctl-wkd-"
#define WKD_DOMAIN_MAX 253
#define WKD_ZB32 "ybndrfg8ejkmcpqxot1uwisza345h769"

/* One HASH file: the keys of every address whose local part hashes to it. */
struct wkd_file {
	char hash[33];
	GPtrArray *fprs;  /* char *, sorted before writing */
	GHashTable *mat;  /* fpr -> GBytes of its material */
	size_t addresses;
};

struct wkd_domain {
	char name[WKD_DOMAIN_MAX + 1];
	GHashTable *files; /* hash -> struct wkd_file * */
	size_t addresses, keys, written, unchanged, removed;
};

struct wkd_export {
	const char *dir;
	int dirfd;
	bool json;
	GPtrArray *domains;    /* struct wkd_domain *, sorted by name later */
	GHashTable *by_name;   /* name -> struct wkd_domain * */
	GPtrArray *patterns;   /* ".example.org" entries of outbound.domains */
	struct wkd_domain direct; /* the direct layout's counts */
	const char *direct_of;    /* the one domain exported, or NULL */
	bool direct_skipped;      /* hu/ or policy there is a symbolic link */
	int64_t now;
};

/* ------------------------------------------------------------------ */
/* Domains                                                             */

/* A domain we can name a directory and a URL after: ASCII letters, digits,
 * '-' and '.', labels of 1..63 octets. Lowered into out. */
static bool wkd_domain_ok(const char *d, char out[WKD_DOMAIN_MAX + 1])
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > WKD_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (g_ascii_isalnum(c) || c == '-') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		out[i] = g_ascii_tolower((char)c);
	}
	out[len] = '\0';
	return label > 0;
}

static void wkd_file_free(gpointer p)
{
	struct wkd_file *f = p;

	if (!f)
		return;
	g_ptr_array_free(f->fprs, TRUE);
	g_hash_table_destroy(f->mat);
	g_free(f);
}

static void wkd_domain_free(gpointer p)
{
	struct wkd_domain *d = p;

	if (!d)
		return;
	g_hash_table_destroy(d->files);
	g_free(d);
}

static struct wkd_domain *wkd_domain_add(struct wkd_export *x, const char *name)
{
	struct wkd_domain *d = g_hash_table_lookup(x->by_name, name);

	if (d)
		return d;
	d = g_new0(struct wkd_domain, 1);
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
					 wkd_file_free);
	g_ptr_array_add(x->domains, d);
	g_hash_table_insert(x->by_name, d->name, d);
	return d;
}

/* The export's domain of an address's (lowered) domain, or NULL when the
 * address is none of ours. A subdomain matched by a ".parent" entry gets
 * its own export domain on first sight. */
static struct wkd_domain *wkd_domain_of(struct wkd_export *x, const char *dom)
{
	struct wkd_domain *d = g_hash_table_lookup(x->by_name, dom);
	char name[WKD_DOMAIN_MAX + 1];
	size_t dl = strlen(dom);

	if (d)
		return d;
	for (guint i = 0; i < x->patterns->len; i++) {
		const char *p = g_ptr_array_index(x->patterns, i);
		size_t pl = strlen(p);

		if (dl > pl && g_ascii_strcasecmp(dom + dl - pl, p) == 0 &&
		    wkd_domain_ok(dom, name))
			return wkd_domain_add(x, name);
	}
	return NULL;
}

/* The domains to export: --domain's, else outbound.domains. 0, or an exit
 * status. */
static int wkd_domains_init(struct wkd_export *x, const struct smp_config *cfg,
			    const char *const *opt, size_t nopt)
{
	char name[WKD_DOMAIN_MAX + 1];

	for (size_t i = 0; i < nopt; i++) {
		if (!wkd_domain_ok(opt[i], name)) {
			smpctl_error("wkd export: --domain %s is not a domain name "
				     "(ASCII letters, digits, '-' and '.'; an "
				     "internationalised domain in its xn-- form)",
				     smpctl_quote(opt[i]));
			return EX_DATAERR;
		}
		wkd_domain_add(x, name);
	}
	if (nopt)
		return 0;
	for (size_t i = 0; i < cfg->out_domains.n; i++) {
		const char *v = cfg->out_domains.v[i];

		if (v[0] == '.' && wkd_domain_ok(v + 1, name)) {
			g_ptr_array_add(x->patterns, g_strdup_printf(".%s", name));
		} else if (wkd_domain_ok(v, name)) {
			wkd_domain_add(x, name);
		} else {
			fprintf(stderr, "smpctl: note: outbound.domains entry %s is "
					"no ASCII domain name; not exported\n",
				smpctl_quote(v));
		}
	}
	if (x->domains->len == 0 && x->patterns->len == 0) {
		smpctl_error("wkd export: outbound.domains is empty, so no address "
			     "is ours to publish; set it in %s or name a domain with "
			     "--domain",
			     cfg->path[0] ? cfg->path : "the configuration");
		return EX_CONFIG;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

/* Adds the material of key k for the address local@domain d. */
static void wkd_add_key(struct wkd_domain *d, const char *local, size_t llen,
			const struct smp_key_rec *k, bool *first_of_addr)
{
	struct wkd_file *f;
	char hash[33];

	smp_wkd_hash(local, llen, hash);
	f = g_hash_table_lookup(d->files, hash);
	if (!f) {
		f = g_new0(struct wkd_file, 1);
		memcpy(f->hash, hash, sizeof(hash));
		f->fprs = g_ptr_array_new_with_free_func(g_free);
		f->mat = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
					       (GDestroyNotify)g_bytes_unref);
		g_hash_table_insert(d->files, f->hash, f);
	}
	if (*first_of_addr) {
		f->addresses++;
		d->addresses++;
		*first_of_addr = false;
	}
	if (g_hash_table_contains(f->mat, k->fpr))
		return; /* another address of this file has it already */
	{
		char *fpr = g_strdup(k->fpr);
		g_ptr_array_add(f->fprs, fpr);
		g_hash_table_insert(f->mat, fpr,
				    g_bytes_new(k->material, k->material_len));
	}
	d->keys++;
}

/* The keys of one address (bindings b[0..n), all of it): those the milter
 * would encrypt to, see the top of this file. 0, or -1 on a keyring
 * error. */
static int wkd_address(struct wkd_export *x, struct smp_keyring *kr,
		       struct wkd_domain *d, const struct smp_binding *b,
		       size_t n)
{
	const char *addr = b[0].address, *at = strrchr(addr, '@');
	bool pinned = false, conflict = false, first = true;
	enum smp_bind_state want;

	for (size_t i = 0; i < n; i++) {
		pinned |= b[i].state == SMP_BIND_PINNED;
		conflict |= b[i].state == SMP_BIND_CONFLICT;
	}
	if (!pinned && conflict)
		return 0; /* an admin must decide: the milter encrypts to none */
	want = pinned ? SMP_BIND_PINNED : SMP_BIND_ACTIVE;
	for (size_t i = 0; i < n; i++) {
		struct smp_key_rec k;
		int r;

		if (b[i].state != want)
			continue;
		memset(&k, 0, sizeof(k));
		r = smp_keyring_key_get(kr, b[i].fpr, &k);
		if (r < 0)
			return -1;
		if (r == 0 && !k.revoked && !k.blocked &&
		    (k.expires == 0 || k.expires > x->now) && k.material_len > 0)
			wkd_add_key(d, addr, (size_t)(at - addr), &k, &first);
		smp_key_rec_clear(&k);
	}
	return 0;
}

static int wkd_cmp_binding(const void *a, const void *b)
{
	const struct smp_binding *x = a, *y = b;

	return strcmp(x->address, y->address);
}

/* Every binding, grouped by address; the addresses of our domains go to
 * wkd_address. 0, or -1 on a keyring error. */
static int wkd_collect(struct wkd_export *x, struct smp_keyring *kr)
{
	struct smp_binding *b = NULL;
	size_t n = 0, i = 0;
	int rc = -1;

	if (smp_keyring_bindings_list(kr, -1, &b, &n) < 0)
		return -1;
	if (n > 1)
		qsort(b, n, sizeof(*b), wkd_cmp_binding);
	while (i < n) {
		size_t j = i + 1;
		const char *at = strrchr(b[i].address, '@');
		struct wkd_domain *d;

		while (j < n && strcmp(b[j].address, b[i].address) == 0)
			j++;
		d = at && at != b[i].address ? wkd_domain_of(x, at + 1) : NULL;
		if (d && wkd_address(x, kr, d, b + i, j - i) < 0)
			goto out;
		i = j;
	}
	rc = 0;
out:
	smp_bindings_free(b, n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

/* A directory name under dirfd, made 0755 when missing; its fd, or -1
 * after saying why (path names it for the message). nofollow: a symbolic
 * link there is not followed (-2, nothing said). */
static int wkd_mkdir(int dirfd, const char *name, const char *path,
		     bool nofollow)
{
	int fd;

	if (mkdirat(dirfd, name, 0755) == 0) {
		if (fchmodat(dirfd, name, 0755, 0) < 0) {
			smpctl_error("cannot set the mode of directory %s: %s", path,
				     strerror(errno));
			return -1;
		}
	} else if (errno != EEXIST) {
		smpctl_error("cannot create directory %s: %s", path, strerror(errno));
		return -1;
	}
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0 && nofollow && (errno == ELOOP || errno == ENOTDIR)) {
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			return -2;
	}
	if (fd < 0)
		smpctl_error("cannot open directory %s: %s", path, strerror(errno));
	return fd;
}

/* Does the file name under dirfd hold exactly data[0..len)? */
static bool wkd_same(int dirfd, const char *name, const unsigned char *data,
		     size_t len)
{
	unsigned char buf[65536];
	size_t off = 0;
	struct stat st;
	bool same = false;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size != len || (st.st_mode & 07777) != 0644)
		goto out;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		if (off + (size_t)r > len || memcmp(buf, data + off, (size_t)r))
			goto out;
		off += (size_t)r;
	}
	same = off == len;
out:
	close(fd);
	return same;
}

/* Writes data[0..len) as name under dirfd (0644): a temporary file renamed
 * into place. 1 when the file already held it (not rewritten), 0 when
 * written, -1 after saying why. */
static int wkd_put(int dirfd, const char *name, const char *path,
		   const unsigned char *data, size_t len)
{
	char tmp[128];
	size_t off = 0;
	int fd = -1, rc = -1;

	if (wkd_same(dirfd, name, data, len))
		return 1;
	snprintf(tmp, sizeof(tmp), WKD_TMP_PREFIX "%ld-%s", (long)getpid(), name);
	(void)unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0) {
		smpctl_error("cannot create a temporary file for %s: %s", path,
			     strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0644) < 0)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	smpctl_error("cannot write %s: %s", path, strerror(errno ? errno : EIO));
	(void)unlinkat(dirfd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The empty policy file: made when missing, an existing one is kept (an
 * administrator may have put WKD policy flags into it). 0 or -1. */
static int wkd_policy(int dirfd, const char *path)
{
	struct stat st;

	if (fstatat(dirfd, "policy", &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	return wkd_put(dirfd, "policy", path, (const unsigned char *)"", 0) < 0 ? -1
										: 0;
}

static bool wkd_hash_name(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!strchr(WKD_ZB32, *s))
			return false;
	return true;
}

/* Removes from hu (fd) every HASH-named file not in keep (NULL: none) and
 * every temporary file an interrupted export left. *removed counts the
 * HASH files. 0, or -1 after saying why. */
static int wkd_prune(int hufd, const char *path, GHashTable *keep,
		     size_t *removed)
{
	int fd = dup(hufd), rc = -1;
	DIR *dp;
	struct dirent *de;

	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		smpctl_error("cannot read directory %s: %s", path, strerror(errno));
		return -1;
	}
	rewinddir(dp);
	while ((errno = 0, de = readdir(dp))) {
		bool tmp = strncmp(de->d_name, WKD_TMP_PREFIX,
				   strlen(WKD_TMP_PREFIX)) == 0;

		if (!tmp && (!wkd_hash_name(de->d_name) ||
			     (keep && g_hash_table_contains(keep, de->d_name))))
			continue;
		if (unlinkat(hufd, de->d_name, 0) < 0 && errno != ENOENT) {
			smpctl_error("cannot remove %s/%s: %s", path, de->d_name,
				     strerror(errno));
			goto out;
		}
		if (!tmp)
			(*removed)++;
	}
	if (errno) {
		smpctl_error("cannot read directory %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	closedir(dp);
	return rc;
}

static int wkd_cmp_fpr(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes the hu/ files of d into hufd (path for messages) and prunes the
 * rest. counts go to c. 0, or -1 after saying why. */
static int wkd_write_hu(struct wkd_domain *d, int hufd, const char *path,
			struct wkd_domain *c)
{
	GHashTableIter it;
	gpointer key, val;
	int rc = -1;

	g_hash_table_iter_init(&it, d->files);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		struct wkd_file *f = val;
		GByteArray *data = g_byte_array_new();
		char fpath[PATH_MAX];
		int r;

		g_ptr_array_sort(f->fprs, wkd_cmp_fpr);
		for (guint i = 0; i < f->fprs->len; i++) {
			GBytes *m = g_hash_table_lookup(f->mat,
							g_ptr_array_index(f->fprs, i));
			gsize ml;
			const guint8 *mp = g_bytes_get_data(m, &ml);
			g_byte_array_append(data, mp, (guint)ml);
		}
		snprintf(fpath, sizeof(fpath), "%s/%s", path, f->hash);
		r = wkd_put(hufd, f->hash, fpath, data->data, data->len);
		g_byte_array_free(data, TRUE);
		if (r < 0)
			goto out;
		if (r == 0)
			c->written++;
		else
			c->unchanged++;
	}
	if (wkd_prune(hufd, path, d->files, &c->removed) < 0)
		goto out;
	rc = 0;
out:
	return rc;
}

/* DIR/.well-known/openpgpkey/D/{policy,hu/}. 0, or -1 after saying why. */
static int wkd_write_domain(struct wkd_export *x, int topfd, struct wkd_domain *d)
{
	char path[PATH_MAX];
	int dfd = -1, hufd = -1, rc = -1;

	snprintf(path, sizeof(path), "%s/" WKD_TOP "/%s", x->dir, d->name);
	dfd = wkd_mkdir(topfd, d->name, path, false);
	if (dfd < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/" WKD_TOP "/%s/policy", x->dir, d->name);
	if (wkd_policy(dfd, path) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/" WKD_TOP "/%s/hu", x->dir, d->name);
	hufd = wkd_mkdir(dfd, "hu", path, false);
	if (hufd < 0)
		goto out;
	if (wkd_write_hu(d, hufd, path, d) < 0)
		goto out;
	rc = 0;
out:
	if (hufd >= 0)
		close(hufd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* DIR/.well-known/openpgpkey/{policy,hu/}: the one domain's keys, or
 * (one == NULL) no key at all. A symbolic link at hu or policy is left as
 * it is. 0, or -1 after saying why. */
static int wkd_write_direct(struct wkd_export *x, int topfd,
			    struct wkd_domain *one)
{
	char path[PATH_MAX];
	struct stat st;
	int hufd = -1, rc = -1;

	snprintf(path, sizeof(path), "%s/" WKD_TOP "/hu", x->dir);
	if (fstatat(topfd, "hu", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode)) {
		x->direct_skipped = true;
		return 0;
	}
	if (!one && fstatat(topfd, "hu", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* nothing to empty */
	hufd = wkd_mkdir(topfd, "hu", path, true);
	if (hufd == -2) {
		x->direct_skipped = true;
		return 0;
	}
	if (hufd < 0)
		goto out;
	if (one) {
		snprintf(path, sizeof(path), "%s/" WKD_TOP "/policy", x->dir);
		if (wkd_policy(topfd, path) < 0)
			goto out;
		snprintf(path, sizeof(path), "%s/" WKD_TOP "/hu", x->dir);
		if (wkd_write_hu(one, hufd, path, &x->direct) < 0)
			goto out;
	} else if (wkd_prune(hufd, path, NULL, &x->direct.removed) < 0) {
		goto out;
	}
	rc = 0;
out:
	if (hufd >= 0)
		close(hufd);
	return rc;
}

static int wkd_cmp_domain(gconstpointer a, gconstpointer b)
{
	const struct wkd_domain *x = *(struct wkd_domain *const *)a;
	const struct wkd_domain *y = *(struct wkd_domain *const *)b;

	return strcmp(x->name, y->name);
}

/* The whole tree under x->dirfd. 0, or -1 after saying why. */
static int wkd_write(struct wkd_export *x)
{
	char path[PATH_MAX];
	int wkfd = -1, topfd = -1, rc = -1;

	snprintf(path, sizeof(path), "%s/.well-known", x->dir);
	wkfd = wkd_mkdir(x->dirfd, ".well-known", path, false);
	if (wkfd < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/" WKD_TOP, x->dir);
	topfd = wkd_mkdir(wkfd, "openpgpkey", path, false);
	if (topfd < 0)
		goto out;
	g_ptr_array_sort(x->domains, wkd_cmp_domain);
	for (guint i = 0; i < x->domains->len; i++)
		if (wkd_write_domain(x, topfd, g_ptr_array_index(x->domains, i)) < 0)
			goto out;
	if (x->domains->len == 1)
		x->direct_of = ((struct wkd_domain *)g_ptr_array_index(x->domains, 0))->name;
	if (wkd_write_direct(x, topfd,
			     x->domains->len == 1 ? g_ptr_array_index(x->domains, 0)
						  : NULL) < 0)
		goto out;
	rc = 0;
out:
	if (topfd >= 0)
		close(topfd);
	if (wkfd >= 0)
		close(wkfd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

static void wkd_report(const struct wkd_export *x)
{
	size_t keys = 0, files = 0, removed = x->direct.removed;

	for (guint i = 0; i < x->domains->len; i++) {
		const struct wkd_domain *d = g_ptr_array_index(x->domains, i);
		keys += d->keys;
		files += g_hash_table_size(d->files);
		removed += d->removed;
	}
	if (x->json) {
		json_t *arr = json_array(), *doc;

		for (guint i = 0; i < x->domains->len; i++) {
			const struct wkd_domain *d = g_ptr_array_index(x->domains, i);
			json_array_append_new(
				arr, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
					       "domain", d->name, "addresses",
					       (json_int_t)d->addresses, "keys",
					       (json_int_t)d->keys, "files",
					       (json_int_t)g_hash_table_size(d->files),
					       "written", (json_int_t)d->written,
					       "unchanged", (json_int_t)d->unchanged,
					       "removed", (json_int_t)d->removed));
		}
		doc = json_pack("{s:s, s:I, s:I, s:I, s:o, s:s?, s:b, s:I}",
				"directory", x->dir, "keys", (json_int_t)keys,
				"files", (json_int_t)files, "removed",
				(json_int_t)removed, "domains", arr, "direct",
				x->direct_of, "direct_skipped", x->direct_skipped,
				"direct_removed", (json_int_t)x->direct.removed);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(doc);
	} else {
		printf("wrote %zu key%s for %u domain%s to %s", keys,
		       keys == 1 ? "" : "s", x->domains->len,
		       x->domains->len == 1 ? "" : "s", x->dir);
		if (removed)
			printf(", removed %zu file%s no longer published", removed,
			       removed == 1 ? "" : "s");
		putchar('\n');
	}
	if (x->direct_skipped)
		fprintf(stderr, "smpctl: note: %s/" WKD_TOP "/hu is a symbolic link; "
				"the direct method's files were left as they are\n",
			x->dir);
}

/* ------------------------------------------------------------------ */

/* DIR, made 0755 when missing (its parent must exist), opened and locked
 * against a second export into it. 0, or an exit status. */
static int wkd_open_dir(struct wkd_export *x)
{
	if (mkdir(x->dir, 0755) == 0) {
		if (chmod(x->dir, 0755) < 0) {
			smpctl_error("cannot set the mode of directory %s: %s", x->dir,
				     strerror(errno));
			return EX_CANTCREAT;
		}
	} else if (errno != EEXIST) {
		smpctl_error("cannot create directory %s: %s", x->dir, strerror(errno));
		return EX_CANTCREAT;
	}
	x->dirfd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x->dirfd < 0) {
		smpctl_error("cannot open directory %s: %s", x->dir, strerror(errno));
		return EX_CANTCREAT;
	}
	if (flock(x->dirfd, LOCK_EX) < 0) {
		smpctl_error("cannot lock directory %s: %s", x->dir, strerror(errno));
		return EX_CANTCREAT;
	}
	return 0;
}

static int wkd_export(int argc, char **argv)
{
	const struct smp_config *cfg;
	struct smp_keyring *kr = NULL;
	struct wkd_export x;
	const char **dom = NULL;
	char *dir = NULL;
	size_t ndom = 0, dirlen;
	int rc = EX_USAGE;

	memset(&x, 0, sizeof(x));
	x.dirfd = -1;
	x.domains = g_ptr_array_new_with_free_func(wkd_domain_free);
	x.by_name = g_hash_table_new(g_str_hash, g_str_equal);
	x.patterns = g_ptr_array_new_with_free_func(g_free);
	dom = calloc((size_t)argc + 1, sizeof(*dom));
	if (!dom) {
		smpctl_error("out of memory");
		rc = EX_SOFTWARE;
		goto out;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			x.json = true;
		} else if (!strcmp(argv[i], "--domain") && i + 1 < argc) {
			dom[ndom++] = argv[++i];
		} else if (!strcmp(argv[i], "--domain")) {
			smpctl_error("--domain needs a domain; usage: " WKD_USAGE);
			goto out;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			smpctl_error("unknown option %s; usage: " WKD_USAGE,
				     smpctl_quote(argv[i]));
			goto out;
		} else if (!x.dir) {
			x.dir = argv[i];
		} else {
			smpctl_error("wkd export takes one directory; usage: " WKD_USAGE);
			goto out;
		}
	}
	if (!x.dir || !x.dir[0]) {
		smpctl_error("wkd export needs a directory; usage: " WKD_USAGE);
		goto out;
	}
	/* "www/" and "www" name the same tree, in messages too */
	dirlen = strlen(x.dir);
	while (dirlen > 1 && x.dir[dirlen - 1] == '/')
		dirlen--;
	dir = g_strndup(x.dir, dirlen);
	x.dir = dir;
	cfg = smpctl_config();
	if (!cfg) {
		rc = EX_CONFIG;
		goto out;
	}
	rc = wkd_domains_init(&x, cfg, dom, ndom);
	if (rc)
		goto out;
	kr = smpctl_open_keyring();
	if (!kr) {
		rc = EX_CONFIG;
		goto out;
	}
	x.now = (int64_t)time(NULL);
	if (wkd_collect(&x, kr) < 0) {
		smpctl_error("cannot read the keyring: %s", smp_keyring_errmsg(kr));
		rc = EX_CONFIG;
		goto out;
	}
	rc = wkd_open_dir(&x);
	if (rc)
		goto out;
	if (wkd_write(&x) < 0) {
		rc = EX_CANTCREAT;
		goto out;
	}
	wkd_report(&x);
	rc = 0;
out:
	if (kr)
		smp_keyring_close(kr);
	if (x.dirfd >= 0)
		close(x.dirfd); /* and the lock with it */
	g_hash_table_destroy(x.by_name);
	g_ptr_array_free(x.domains, TRUE);
	g_ptr_array_free(x.patterns, TRUE);
	free(dom);
	g_free(dir);
	return rc;
}

int smpctl_cmd_wkd(int argc, char **argv)
{
	if (argc < 2) {
		smpctl_error("wkd needs a subcommand; usage: " WKD_USAGE);
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "export"))
		return wkd_export(argc - 1, argv + 1);
	smpctl_error("unknown wkd subcommand %s; usage: " WKD_USAGE,
		     smpctl_quote(argv[1]));
	return EX_USAGE;
}
