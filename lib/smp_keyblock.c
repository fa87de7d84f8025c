/* smp_keyblock.c - OpenPGP keyblock framing (declared in smp_gpg.h):
 * splitting a buffer into transferable keys (smp_keyblock_split), keeping
 * some user IDs of one key (smp_keyblock_filter), listing its user IDs
 * (smp_keyblock_uids), and smp_strv_free for those lists.
 *
 * Separate from smp_gpg.c because it only reads packet framing: no gpgme,
 * no gpg process, no GnuPG home. Its callers are not only the gnupg
 * engine: the rnp engine, the engine-neutral smp_crypto*.c and the
 * harvest use it too.
 */
#include "smp_gpg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp_packets.h"

/* ------------------------------------------------------------------ */
/* Keyblock framing                                                    */

int smp_keyblock_split(const unsigned char *data, size_t len,
		       struct smp_keyblock **blocks, size_t *n)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	enum smp_pkt_status st;
	struct smp_keyblock *v = NULL, *cur = NULL;
	size_t cnt = 0, cap = 0;

	*blocks = NULL;
	*n = 0;
	smp_pkt_iter_init(&it, data, len);
	while ((st = smp_pkt_next(&it, &pkt)) == SMP_PKT_OK) {
		size_t end = it.off;

		if (pkt.partial || pkt.indeterminate)
			goto inval;
		if (pkt.tag == SMP_TAG_PUBLIC_KEY ||
		    pkt.tag == SMP_TAG_SECRET_KEY) {
			if (cnt == cap) {
				size_t nc = cap ? cap * 2 : 4;
				struct smp_keyblock *nv =
					realloc(v, nc * sizeof(*v));
				if (!nv) {
					free(v);
					errno = ENOMEM;
					return -1;
				}
				v = nv;
				cap = nc;
			}
			cur = &v[cnt++];
			memset(cur, 0, sizeof(*cur));
			cur->off = pkt.offset;
			/* version, creation time, [v2/v3: validity days,]
			 * algorithm */
			cur->version = pkt.body_len ? pkt.first[0] : 0;
			if (cur->version >= 4 && pkt.body_len >= 6)
				cur->algo = pkt.first[5];
			else if (cur->version < 4 && pkt.body_len >= 8)
				cur->algo = pkt.first[7];
			if (pkt.tag == SMP_TAG_SECRET_KEY)
				cur->secret = true;
			else
				smp_pkt_key_fpr(pkt.first, pkt.body_len, cur->fpr);
		} else if (!cur) {
			goto inval;
		} else if (pkt.tag == SMP_TAG_USER_ID) {
			cur->nuids++;
		} else if (pkt.tag == SMP_TAG_USER_ATTR) {
			cur->nattrs++;
		} else if (pkt.tag == SMP_TAG_PUBLIC_SUBKEY) {
			cur->nsubkeys++;
		} else if (pkt.tag == SMP_TAG_SECRET_SUBKEY) {
			cur->nsubkeys++;
			cur->secret = true;
		} else if (pkt.tag != SMP_TAG_SIGNATURE &&
			   pkt.tag != SMP_TAG_TRUST &&
			   pkt.tag != SMP_TAG_PADDING) {
			goto inval;
		}
		cur->len = end - cur->off;
	}
	if (st != SMP_PKT_END || cnt == 0)
		goto inval;
	*blocks = v;
	*n = cnt;
	return 0;
inval:
	free(v);
	errno = EINVAL;
	return -1;
}

static bool in_set(const unsigned char *p, size_t n, const char *const *set,
		   size_t nset)
{
	for (size_t i = 0; i < nset; i++)
		if (set[i] && strlen(set[i]) == n && memcmp(set[i], p, n) == 0)
			return true;
	return false;
}

int smp_keyblock_filter(const unsigned char *block, size_t len,
			const char *const *keep, size_t nkeep,
			unsigned char **out, size_t *outlen, unsigned *kept)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	enum smp_pkt_status st;
	unsigned char *o;
	size_t on = 0;
	unsigned nkept = 0;
	bool first = true, keep_sigs = true;

	*out = NULL;
	*outlen = 0;
	if (kept)
		*kept = 0;
	o = malloc(len ? len : 1);
	if (!o) {
		errno = ENOMEM;
		return -1;
	}
	smp_pkt_iter_init(&it, block, len);
	while ((st = smp_pkt_next(&it, &pkt)) == SMP_PKT_OK) {
		size_t plen = it.off - pkt.offset;
		bool copy = false;

		if (first != (pkt.tag == SMP_TAG_PUBLIC_KEY ||
			      pkt.tag == SMP_TAG_SECRET_KEY))
			goto inval; /* one key, and it comes first */
		switch (pkt.tag) {
		case SMP_TAG_PUBLIC_KEY:
		case SMP_TAG_SECRET_KEY:
		case SMP_TAG_PUBLIC_SUBKEY:
		case SMP_TAG_SECRET_SUBKEY:
			copy = keep_sigs = true;
			break;
		case SMP_TAG_USER_ID:
			copy = keep_sigs = !pkt.partial &&
					   in_set(pkt.first, pkt.body_len,
						  keep, nkeep);
			if (copy)
				nkept++;
			break;
		case SMP_TAG_USER_ATTR:
			keep_sigs = false;
			break;
		case SMP_TAG_SIGNATURE:
			copy = keep_sigs;
			break;
		case SMP_TAG_TRUST:
		case SMP_TAG_PADDING:
			break;
		default:
			goto inval;
		}
		first = false;
		if (copy) {
			memcpy(o + on, block + pkt.offset, plen);
			on += plen;
		}
	}
	if (st != SMP_PKT_END || first)
		goto inval;
	*out = o;
	*outlen = on;
	if (kept)
		*kept = nkept;
	return 0;
inval:
	free(o);
	errno = EINVAL;
	return -1;
}

void smp_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int smp_keyblock_uids(const unsigned char *block, size_t len, char ***uids,
		      size_t *n)
{
	struct smp_pkt_iter it;
	struct smp_packet pkt;
	char **v = NULL;
	size_t cnt = 0;

	*uids = NULL;
	*n = 0;
	smp_pkt_iter_init(&it, block, len);
	while (smp_pkt_next(&it, &pkt) == SMP_PKT_OK) {
		char **nv, *s;

		if (pkt.tag != SMP_TAG_USER_ID || pkt.partial ||
		    memchr(pkt.first, '\0', pkt.body_len))
			continue;
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		s = nv ? malloc(pkt.body_len + 1) : NULL;
		if (!s) {
			smp_strv_free(nv ? nv : v, cnt);
			errno = ENOMEM;
			return -1;
		}
		v = nv;
		memcpy(s, pkt.first, pkt.body_len);
		s[pkt.body_len] = '\0';
		v[cnt++] = s;
	}
	*uids = v;
	*n = cnt;
	return 0;
}
