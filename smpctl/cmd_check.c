/* cmd_check.c - "smpctl check [FILE|-] [--json]" (SPEC.md 6). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smp_config.h"
#include "smp_validate.h"
#include "smpctl.h"

/*
 * Reads fd into a malloc'd buffer, at most max bytes: a longer input is
 * cut at max + 1 so the validator sees it is too large. -1 on read error.
 */
static int read_all(int fd, size_t max, char **out, size_t *outlen)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap), *nb;

	if (!buf)
		return -1;
	for (;;) {
		ssize_t n;
		if (len == cap) {
			if (cap > max)
				break;
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb)
				goto fail;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			len = max + 1;
			break;
		}
	}
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	return -1;
}

static const char *key_kind_name(enum smp_key_kind k)
{
	switch (k) {
	case SMP_KEY_PUBLIC:
		return "public";
	case SMP_KEY_SECRET:
		return "secret";
	case SMP_KEY_BAD:
		break;
	}
	return "invalid";
}

static const char *encoding_name(enum smp_encoding e)
{
	switch (e) {
	case SMP_ENC_BINARY:
		return "binary";
	case SMP_ENC_ARMORED:
		return "armored";
	case SMP_ENC_NONE:
		break;
	}
	return NULL;
}

static json_t *result_json(const char *file, const struct smp_result *r,
			   const char *verdict)
{
	json_t *doc = json_object(), *reasons = json_array(),
	       *keys = json_array(), *recips = json_array(),
	       *name = json_string(file);

	/* a file name that is not UTF-8 is no JSON string: shown quoted */
	json_object_set_new(doc, "file", name ? name : json_string(smpctl_quote(file)));
	json_object_set_new(doc, "smp", json_boolean(r->is_smp));
	json_object_set_new(doc, "valid", json_boolean(r->is_smp && !r->reasons));
	json_object_set_new(doc, "verdict", json_string(verdict));
	for (unsigned i = 0; i < SMP_R_COUNT; i++)
		if (r->reasons & (1u << i))
			json_array_append_new(reasons,
					      json_string(smp_reason_token(1u << i)));
	json_object_set_new(doc, "reasons", reasons);
	json_object_set_new(doc, "form", r->form == SMP_FORM_NONE
						 ? json_null()
						 : json_string(smp_form_name(r->form)));
	if (r->form != SMP_FORM_NONE)
		json_object_set_new(doc, "data",
				    json_pack("{s:s?, s:I}", "encoding",
					      encoding_name(r->encoding), "size",
					      (json_int_t)r->data_size));
	else
		json_object_set_new(doc, "data", json_null());
	for (unsigned i = 0; i < r->nkeys; i++) {
		const struct smp_key_part *k = &r->keys[i];
		json_array_append_new(
			keys, json_pack("{s:s, s:I, s:s, s:s?}", "name", k->name,
					"size", (json_int_t)k->size, "type",
					key_kind_name(k->kind), "encoding",
					encoding_name(k->encoding)));
	}
	json_object_set_new(doc, "public_keys", keys);
	for (unsigned i = 0; i < r->msg.n_esk_kept; i++) {
		const struct smp_esk *e = &r->msg.esk[i];
		if (e->type == SMP_ESK_PUBKEY)
			json_array_append_new(
				recips, json_pack("{s:s, s:s, s:i, s:i}", "type",
						  "public-key", "key_id", e->keyid,
						  "algorithm", (int)e->algo,
						  "version", (int)e->version));
		else
			json_array_append_new(
				recips, json_pack("{s:s, s:i, s:i}", "type",
						  "symmetric", "cipher", (int)e->algo,
						  "version", (int)e->version));
	}
	json_object_set_new(doc, "recipients", recips);
	json_object_set_new(doc, "payload_digest",
			    r->msg.digest[0] ? json_string(r->msg.digest) : json_null());
	json_object_set_new(doc, "recipient_count", json_integer(r->msg.n_esk));
	return doc;
}

int smpctl_cmd_check(int argc, char **argv)
{
	const char *file = NULL;
	const struct smp_config *cfg;
	struct smp_check_opts opts;
	struct smp_result r;
	char verdict[SMP_VERDICT_MAX];
	bool json = false;
	char *msg = NULL;
	size_t len = 0;
	int fd, rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			smpctl_error("check: unknown option %s; usage: smpctl "
				     "check [FILE|-] [--json]",
				     smpctl_quote(argv[i]));
			return EX_USAGE;
		} else if (file) {
			smpctl_error("check: more than one FILE given (%s and "
				     "%s); usage: smpctl check [FILE|-] [--json]",
				     smpctl_quote(file), smpctl_quote(argv[i]));
			return EX_USAGE;
		} else {
			file = argv[i];
		}
	}
	if (!file)
		file = "-";

	cfg = smpctl_config();
	if (!cfg)
		return EX_CONFIG;
	opts = cfg->check; /* detect.subject_match and limits.* */
	fd = strcmp(file, "-") ? open(file, O_RDONLY) : STDIN_FILENO;
	if (fd < 0 || read_all(fd, opts.limits.max_message_bytes, &msg, &len) < 0) {
		smpctl_error("cannot read %s: %s",
			     strcmp(file, "-") ? file : "standard input",
			     strerror(errno));
		if (fd > STDIN_FILENO)
			close(fd);
		return EX_NOINPUT;
	}
	if (fd > STDIN_FILENO)
		close(fd);

	if (smp_validate_buffer(msg, len, &opts, &r) < 0) {
		smpctl_error("cannot check %s: %s", file, strerror(errno));
		free(msg);
		return EX_SOFTWARE;
	}
	free(msg);
	smp_verdict_format(&r, verdict, sizeof(verdict));
	if (json) {
		json_t *doc = result_json(file, &r, verdict);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(doc);
	} else {
		puts(verdict);
	}
	rc = !r.is_smp ? SMPCTL_CHECK_NOT_SMP
	     : r.reasons ? SMPCTL_CHECK_INVALID
			 : SMPCTL_CHECK_VALID;
	smp_result_clear(&r);
	if (fflush(stdout) != 0) {
		smpctl_error("cannot write the verdict: %s", strerror(errno));
		return EX_IOERR;
	}
	return rc;
}
