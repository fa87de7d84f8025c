/* keywork.c - harvest and replay check for one message, with a keyring
 * connection and crypto engine borrowed from the pool. */
#include "keywork.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keypool.h"
#include "log.h"
#include "maintain.h"
#include "smp_extract.h"
#include "smp_harvest.h"


/* The mailbox addresses of a From: value (a group counts as unusable). */
static char **from_addresses(const char *raw, size_t *n)
{
	InternetAddressList *list;
	char **v;
	int len;

	*n = 0;
	if (!raw)
		return NULL;
	list = internet_address_list_parse(NULL, raw);
	if (!list)
		return NULL;
	len = internet_address_list_length(list);
	v = calloc((size_t)len + 1, sizeof(char *));
	for (int i = 0; v && i < len; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		const char *addr = INTERNET_ADDRESS_IS_MAILBOX(ia)
					   ? internet_address_mailbox_get_addr(
						     INTERNET_ADDRESS_MAILBOX(ia))
					   : "";
		v[(*n)++] = strdup(addr ? addr : "");
	}
	g_object_unref(list);
	return v;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int64_t parse_date(const char *raw)
{
	GDateTime *dt;
	int64_t t;

	if (!raw)
		return 0;
	dt = g_mime_utils_header_decode_date(raw);
	if (!dt)
		return 0;
	t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

static bool has_public_keys(const struct smp_result *r)
{
	if (!r)
		return false;
	for (unsigned i = 0; i < r->nkeys; i++)
		if (r->keys[i].kind == SMP_KEY_PUBLIC && r->keys[i].data)
			return true;
	return false;
}

static void harvest_config(const struct smp_config *cfg, struct smp_harvest_config *h)
{
	smp_harvest_config_init(h);
	h->sources = (cfg->harvest_smp ? SMP_HARVEST_SRC(SMP_SRC_SMP) : 0) |
		     (cfg->harvest_autocrypt ? SMP_HARVEST_SRC(SMP_SRC_AUTOCRYPT) : 0) |
		     (cfg->harvest_pgp_keys ? SMP_HARVEST_SRC(SMP_SRC_PGP_KEYS) : 0);
	h->outbound = cfg->harvest_outbound;
	h->skip_domains = cfg->skip_domains.v;
	h->n_skip_domains = cfg->skip_domains.n;
	h->require_auth = (enum smp_require_auth)cfg->require_auth;
	h->authserv_id = cfg->authserv_id;
	h->on_conflict = (enum smp_on_conflict)cfg->on_conflict;
}

/* The keys to harvest: valid SMP key parts, then the other sources. */
static int gather_keys(const struct smp_keywork_in *in, const struct smp_result *r,
		       struct smp_found_keys *fk, struct smp_key_part **parts,
		       enum smp_key_source **sources, size_t *n)
{
	const struct smp_config *cfg = in->cfg;
	size_t nsmp = cfg->harvest_smp && r && r->reasons == 0 ? r->nkeys : 0;

	*n = 0;
	if (cfg->harvest_autocrypt && in->nautocrypt > 0) {
		size_t nfrom = 0;
		char **from = from_addresses(in->nfrom_headers == 1 ? in->from_raw : NULL,
					     &nfrom);
		int rc = nfrom == 1 ? smp_extract_autocrypt(in->autocrypt, in->nautocrypt,
							    from[0],
							    &cfg->check.limits, fk)
				    : 0;
		strv_free(from, nfrom);
		if (rc < 0)
			return -1;
	}
	if (cfg->harvest_pgp_keys && in->msg &&
	    smp_extract_pgp_keys(in->msg, in->msglen, &cfg->check, fk) < 0)
		return -1;
	if (nsmp + fk->n == 0)
		return 0;
	*parts = calloc(nsmp + fk->n, sizeof(**parts));
	*sources = calloc(nsmp + fk->n, sizeof(**sources));
	if (!*parts || !*sources)
		return -1;
	for (size_t i = 0; i < nsmp; i++) {
		(*parts)[*n] = r->keys[i]; /* shallow: owned by r */
		(*sources)[(*n)++] = SMP_SRC_SMP;
	}
	for (size_t i = 0; i < fk->n; i++) {
		(*parts)[*n] = fk->parts[i]; /* shallow: owned by fk */
		(*sources)[(*n)++] = fk->sources[i];
	}
	return 0;
}

static int do_harvest(struct smp_keyslot *slot, const struct smp_keywork_in *in,
		      const struct smp_result *r, const struct smp_key_part *parts,
		      const enum smp_key_source *sources, size_t nparts,
		      struct smp_keywork_out *out, char *err, size_t errlen)
{
	struct smp_harvest_config hcfg;
	struct smp_harvest_ctx hctx;
	struct smp_harvest_report rep = {0};
	struct smp_crypto *cr;
	size_t nfrom = 0;
	char **from = NULL;
	int rc = -1;

	cr = smp_keyslot_crypto(slot, in->cfg, err, errlen);
	if (!cr)
		return -1;
	harvest_config(in->cfg, &hcfg);
	/* two From: headers are as unusable as two addresses in one */
	from = from_addresses(in->nfrom_headers == 1 ? in->from_raw : NULL, &nfrom);
	memset(&hctx, 0, sizeof(hctx));
	hctx.cfg = &hcfg;
	hctx.limits = &in->cfg->check.limits;
	hctx.envelope_sender = in->env_from;
	hctx.from = (const char *const *)from;
	hctx.nfrom = in->nfrom_headers == 1 ? nfrom : 2;
	hctx.outbound = in->outbound;
	hctx.auth_results = in->auth_results;
	hctx.nauth_results = in->nauth_results;
	hctx.msg_date = parse_date(in->date_raw);
	hctx.message_id = in->message_id;
	hctx.client_addr = in->client_addr;
	hctx.msg = r ? &r->msg : NULL;
	hctx.source = SMP_SRC_SMP;
	hctx.part_sources = sources;
	hctx.memo = smp_keyslot_memo(slot);
	if (in->nfrom_headers != 1 && !from) {
		/* no From list to hand over: point at a harmless empty one */
		static const char *const none[2] = {"", ""};
		hctx.from = none;
	}
	if (smp_harvest_message(slot->kr, cr, &hctx, parts, nparts, &rep) < 0) {
		snprintf(err, errlen, "harvest failed: %s", rep.error);
		goto out;
	}
	out->harvest_ran = rep.n > 0; /* lines only where a key was considered */
	out->harvested = rep.harvested;
	out->refused = rep.refused;
	smp_harvest_report_format(&rep, out->detail, sizeof(out->detail));
	rc = 0;
out:
	smp_harvest_report_clear(&rep);
	strv_free(from, nfrom);
	return rc;
}

static int do_replay(struct smp_keyslot *slot, const struct smp_keywork_in *in,
		     const struct smp_result *r, struct smp_keywork_out *out,
		     char *err, size_t errlen)
{
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < in->nrcpts; i++) {
		bool seen = false;
		if (smp_keyring_replay_check(slot->kr, r->msg.digest, in->rcpts[i], now,
					     in->cfg->replay_window, &seen) < 0) {
			snprintf(err, errlen, "replay check failed: %s",
				 smp_keyring_errmsg(slot->kr));
			return -1;
		}
		out->replay |= seen;
	}
	return 0; /* the replay log is pruned by maintain.c */
}

int smp_keywork_message(const struct smp_keywork_in *in,
			const struct smp_result *r, struct smp_keywork_out *out,
			char *err, size_t errlen)
{
	struct smp_found_keys fk = {0};
	struct smp_key_part *parts = NULL;
	enum smp_key_source *sources = NULL;
	size_t nparts = 0;
	bool replay = r && in->cfg->replay_enabled && r->reasons == 0 &&
		      r->msg.digest[0] && in->nrcpts > 0;
	struct smp_keyslot *slot = NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (r && r->reasons)
		return 0; /* nothing is harvested from an invalid SMP message */
	if (r && !has_public_keys(r) && !in->nautocrypt && !in->msg && !replay)
		return 0;
	if (gather_keys(in, r, &fk, &parts, &sources, &nparts) < 0) {
		snprintf(err, errlen, "out of memory gathering keys");
		rc = -1;
		goto out;
	}
	if (nparts == 0 && !replay)
		goto out; /* no database, no crypto work for this message */
	slot = smp_keypool_get(in->cfg, err, errlen);
	if (!slot) {
		rc = -1;
		goto out;
	}
	if (nparts > 0)
		rc = do_harvest(slot, in, r, parts, sources, nparts, out, err, errlen);
	if (rc == 0 && replay)
		rc = do_replay(slot, in, r, out, err, errlen);
	smp_keypool_put(slot);
	smp_maintain_keyring_used(); /* pruned hourly from now on */
out:
	free(parts);
	free(sources);
	smp_found_keys_clear(&fk);
	return rc;
}
