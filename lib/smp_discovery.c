/* smp_discovery.c - key discovery policy: the cache in the keyring, the
 * methods in order inside the message's time budget, the harvest rules
 * applied to what the network gave. See smp_discovery.h and
 * doc/discovery.md. The transports are smp_discovery_{wkd,dane}.c. */
#include "smp_discovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "smp_armor.h"
#include "smp_policy.h"

/* The shortest a found key is trusted before asking again, whatever a DNS
 * TTL says: a zone with TTL 0 must not cost a lookup per message. */
#define DISC_MIN_TTL 60

static const char *const method_names[SMP_DISC_N_METHODS] = {
	[SMP_DISC_WKD] = "wkd",
	[SMP_DISC_DANE] = "dane",
};

const char *smp_disc_method_name(enum smp_disc_method m)
{
	return (unsigned)m < SMP_DISC_N_METHODS ? method_names[m] : "unknown";
}

int smp_disc_method_parse(const char *name)
{
	for (int i = 0; name && i < SMP_DISC_N_METHODS; i++)
		if (strcmp(name, method_names[i]) == 0)
			return i;
	return -1;
}

static const char *const status_names[] = {
	[SMP_DISC_FOUND] = "found",
	[SMP_DISC_NONE] = "none",
	[SMP_DISC_ERROR] = "error",
};

const char *smp_disc_status_name(enum smp_disc_status s)
{
	return (unsigned)s < 3 ? status_names[s] : "unknown";
}

int smp_disc_status_parse(const char *name)
{
	for (int i = 0; name && i < 3; i++)
		if (strcmp(name, status_names[i]) == 0)
			return i;
	return -1;
}

const char *smp_disc_outcome_name(enum smp_disc_outcome o)
{
	switch (o) {
	case SMP_DISC_HAVE:
		return "have";
	case SMP_DISC_NOKEY:
		return "nokey";
	case SMP_DISC_FAILED:
		return "failed";
	case SMP_DISC_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

void smp_disc_answer_clear(struct smp_disc_answer *a)
{
	if (!a)
		return;
	free(a->data);
	memset(a, 0, sizeof(*a));
}

void smp_disc_config_init(struct smp_disc_config *dc)
{
	memset(dc, 0, sizeof(*dc));
	dc->methods.n = 2;
	dc->methods.m[0] = SMP_DISC_WKD;
	dc->methods.m[1] = SMP_DISC_DANE;
	dc->timeout_ms = 5000;
	dc->positive_ttl = 86400;
	dc->negative_ttl = 3600;
	dc->error_ttl = 60;
	dc->refresh_per_minute = 60;
}

/* code = 1 + n + 4 * m[0] + 8 * m[1]: fits a byte, 0 is never a code. */
int smp_disc_methods_encode(const struct smp_disc_methods *m)
{
	int code = 1 + (int)(m->n > SMP_DISC_N_METHODS ? SMP_DISC_N_METHODS : m->n);

	for (unsigned i = 0; i < m->n && i < SMP_DISC_N_METHODS; i++)
		code += (int)m->m[i] << (2 + i);
	return code;
}

void smp_disc_methods_decode(int code, struct smp_disc_methods *m)
{
	memset(m, 0, sizeof(*m));
	if (code < 1)
		return;
	code -= 1;
	m->n = (unsigned)(code & 3);
	if (m->n > SMP_DISC_N_METHODS)
		m->n = SMP_DISC_N_METHODS;
	for (unsigned i = 0; i < m->n; i++)
		m->m[i] = (enum smp_disc_method)((code >> (2 + i)) & 1);
}

void smp_disc_methods_format(const struct smp_disc_methods *m, char *buf,
			     size_t size)
{
	size_t used = 0;

	if (!size)
		return;
	buf[0] = '\0';
	if (!m->n) {
		snprintf(buf, size, "off");
		return;
	}
	for (unsigned i = 0; i < m->n && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
					 smp_disc_method_name(m->m[i]));
}

