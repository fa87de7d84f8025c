/* passmilter.c - a pass-through milter for bench/postfix/throughput.sh.
 *
 * It negotiates exactly what smp-milter negotiates (same actions, same
 * SMFIP_NO* / SMFIP_NR_* / SMFIP_SKIP steps) and registers the same
 * callbacks, so Postfix talks to it with the same round trips, but it does
 * no work: every callback just continues (or answers nothing where replies
 * are off) and the body is skipped at its first chunk. The difference
 * between it and smp-milter is the cost of smp-milter's own work.
 *
 *   passmilter -p unix:/path/to/socket [-m mode]   (foreground; SIGTERM stops)
 */
#include <libmilter/mfapi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct conn {
	bool skip, nr_conn, nr_mail, nr_hdr, nr_eoh;
};

static struct conn *conn_get(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (!c && (c = calloc(1, sizeof(*c))) != NULL && smfi_setpriv(ctx, c) != MI_SUCCESS) {
		free(c);
		c = NULL;
	}
	return c;
}

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			     unsigned long f2, unsigned long f3, unsigned long *pf0,
			     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	struct conn *c = conn_get(ctx);
	/* the same request as smp-milter's cb_negotiate */
	unsigned long want = SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA;
	unsigned long optional = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR |
				 SMFIP_NR_EOH | SMFIP_SKIP | SMFIP_HDR_LEADSPC;

	(void)f2;
	(void)f3;
	if (!c)
		return SMFIS_REJECT;
	*pf0 = (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE) & f0;
	*pf1 = (want | optional) & f1;
	*pf2 = 0;
	*pf3 = 0;
	c->skip = f1 & SMFIP_SKIP;
	c->nr_conn = f1 & SMFIP_NR_CONN;
	c->nr_mail = f1 & SMFIP_NR_MAIL;
	c->nr_hdr = f1 & SMFIP_NR_HDR;
	c->nr_eoh = f1 & SMFIP_NR_EOH;
	return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	struct conn *c = conn_get(ctx);

	(void)host;
	(void)addr;
	return c && c->nr_conn ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = conn_get(ctx);

	(void)argv;
	return c && c->nr_mail ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = smfi_getpriv(ctx);

	(void)name;
	(void)value;
	return c && c->nr_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	return c && c->nr_eoh ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = smfi_getpriv(ctx);

	(void)chunk;
	(void)len;
	return c && c->skip ? SMFIS_SKIP : SMFIS_CONTINUE;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "passmilter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
	.xxfi_connect = cb_connect,
	.xxfi_envfrom = cb_envfrom,
	.xxfi_header = cb_header,
	.xxfi_eoh = cb_eoh,
	.xxfi_body = cb_body,
	.xxfi_eom = cb_eom,
	.xxfi_abort = cb_abort,
	.xxfi_close = cb_close,
	.xxfi_negotiate = cb_negotiate,
};

int main(int argc, char **argv)
{
	const char *spec = NULL;
	mode_t mode = 0666;
	int opt;

	while ((opt = getopt(argc, argv, "p:m:")) != -1) {
		switch (opt) {
		case 'p':
			spec = optarg;
			break;
		case 'm':
			mode = (mode_t)strtoul(optarg, NULL, 8);
			break;
		default:
			fprintf(stderr, "usage: passmilter -p unix:/path [-m mode]\n");
			return 64;
		}
	}
	if (!spec || strncmp(spec, "unix:", 5)) {
		fprintf(stderr, "usage: passmilter -p unix:/path [-m mode]\n");
		return 64;
	}
	if (smfi_setconn((char *)spec) != MI_SUCCESS || smfi_settimeout(300) != MI_SUCCESS ||
	    smfi_register(desc) != MI_SUCCESS || smfi_opensocket(true) != MI_SUCCESS) {
		fprintf(stderr, "passmilter: cannot listen on %s\n", spec);
		return 71;
	}
	if (chmod(spec + 5, mode) < 0) {
		perror("passmilter: chmod");
		return 71;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 70;
}
