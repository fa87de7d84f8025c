/* smp_result.c - reason tokens and the verdict line (SPEC.md 2). */
#include "smp_result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_tokens[SMP_R_COUNT] = {
	"bad-mime",      "no-data",     "multiple-data",  "bad-armor",
	"not-encrypted", "bad-packets", "no-recipients",  "no-integrity",
	"bad-key",       "secret-key",  "plain-attachment", "too-large",
};

const char *smp_reason_token(unsigned bit)
{
	for (unsigned i = 0; i < SMP_R_COUNT; i++)
		if (bit == (1u << i))
			return reason_tokens[i];
	return NULL;
}

const char *smp_form_name(enum smp_form f)
{
	switch (f) {
	case SMP_FORM_ATTACHMENT:
		return "attachment";
	case SMP_FORM_ALIAS:
		return "attachment-alias";
	case SMP_FORM_INLINE:
		return "inline";
	case SMP_FORM_NONE:
		break;
	}
	return "none";
}

size_t smp_verdict_format(const struct smp_result *r, char *buf, size_t size)
{
	char tmp[SMP_VERDICT_MAX];
	size_t n = 0;

	if (!r->is_smp) {
		n = (size_t)snprintf(tmp, sizeof(tmp), "not smp");
	} else if (r->reasons == 0) {
		n = (size_t)snprintf(tmp, sizeof(tmp),
				     "valid; form=%s; keys=%u; recipients=%u",
				     smp_form_name(r->form), r->nkeys,
				     r->msg.n_esk);
	} else {
		n = (size_t)snprintf(tmp, sizeof(tmp), "invalid; reason=");
		for (unsigned i = 0; i < SMP_R_COUNT; i++) {
			if (!(r->reasons & (1u << i)))
				continue;
			if (tmp[n - 1] != '=')
				tmp[n++] = ',';
			n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%s",
					      reason_tokens[i]);
		}
	}
	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(buf, tmp, c);
		buf[c] = '\0';
	}
	return n;
}

void smp_result_clear(struct smp_result *r)
{
	for (unsigned i = 0; i < r->nkeys; i++) {
		free(r->keys[i].name);
		free(r->keys[i].data);
	}
	free(r->keys);
	memset(r, 0, sizeof(*r));
}
