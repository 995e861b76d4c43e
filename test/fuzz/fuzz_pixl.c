/*-------------------------------------------------------------------------
 *
 * fuzz_pixl.c
 *		libFuzzer harness for the token parser and checksum
 *		(src/common/token_format.c) and the scope parser (src/common/scopes.c).
 *
 * Each input is checked against oracles, not only for crashes:
 *	- pixl_check_format says "ok" only for 46 bytes with a live/test prefix,
 *	  base62 after it and a checksum equal to zlib's CRC-32 in base62, and
 *	  says what pixl_check_shape then pixl_checksum_ok say;
 *	- pixl_checksum equals zlib's crc32() of the same bytes;
 *	- after pixl_redact_secrets nothing shaped like a secret is left and the
 *	  length is the same (also across SQL string continuation);
 *	- pixl_redact_node_dump keeps the length (and stays inside the string);
 *	- pixl_scope_bits_from_array accepts exactly the one-dimensional lists,
 *	  indexed from 1, of distinct known scopes, one bit per scope;
 *	- an unknown-scope message (PX001) holds no secret, and is valid UTF-8
 *	  whenever the input is (the clipping at a character boundary).
 * The first byte chooses the array shape (bit 0: 2-D, bit 1: lower bound
 * 2, bit 2: empty elements are NULL); the rest is split at ','.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <zlib.h>

#include "mb/pg_wchar.h"
#include "utils/array.h"

#include "fuzz.h"
#include "common/scopes.h"
#include "common/token_format.h"

static const char digits62[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

ArrayType *
fuzz_text_array(Datum *elems, bool *nulls, int nelems, int ndim, int lb)
{
	int			nbytes = 0;
	int			hdr;
	ArrayType  *a;
	char	   *p;
	bool		hasnull = false;

	for (int i = 0; i < nelems; i++)
	{
		if (nulls && nulls[i])
			hasnull = true;
		else
			nbytes += INTALIGN(VARSIZE(DatumGetPointer(elems[i])));
	}
	hdr = hasnull ? ARR_OVERHEAD_WITHNULLS(ndim, nelems) : ARR_OVERHEAD_NONULLS(ndim);
	a = palloc0(hdr + nbytes);
	SET_VARSIZE(a, hdr + nbytes);
	a->ndim = nelems > 0 ? ndim : 0;
	a->dataoffset = hasnull ? hdr : 0;
	a->elemtype = 25;			/* TEXTOID */
	if (nelems > 0)
	{
		ARR_DIMS(a)[0] = nelems;
		ARR_LBOUND(a)[0] = lb;
		if (ndim == 2)
		{
			ARR_DIMS(a)[1] = 1;
			ARR_LBOUND(a)[1] = 1;
		}
	}
	p = (char *) a + hdr;
	for (int i = 0; i < nelems; i++)
	{
		if (hasnull && !nulls[i])
			ARR_NULLBITMAP(a)[i / 8] |= 1 << (i % 8);
		if (nulls && nulls[i])
			continue;
		memcpy(p, DatumGetPointer(elems[i]), VARSIZE(DatumGetPointer(elems[i])));
		p += INTALIGN(VARSIZE(DatumGetPointer(elems[i])));
	}
	return a;
}

static void
check_message(const char *in, size_t len)
{
	if (pixl_contains_secret(fuzz_errmsg, strlen(fuzz_errmsg)))
		__builtin_trap();		/* a message echoed a secret */
	if (pg_encoding_verifymbstr(PG_UTF8, in, (int) len) == (int) len &&
		pg_encoding_verifymbstr(PG_UTF8, fuzz_errmsg, (int) strlen(fuzz_errmsg)) !=
		(int) strlen(fuzz_errmsg))
		__builtin_trap();		/* clipped inside a character */
}

static void
check_token(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data;
	PixlFormatVerdict v = pixl_check_format(s, size);
	char		sum[PIXL_CHECKSUM_LEN];
	uLong		crc = crc32(0L, data, (uInt) size);
	char		expect[PIXL_CHECKSUM_LEN];

	/* the checksum is zlib's CRC-32 in base62, most significant first */
	pixl_checksum(s, size, sum);
	for (int i = PIXL_CHECKSUM_LEN - 1; i >= 0; i--)
	{
		expect[i] = digits62[crc % 62];
		crc /= 62;
	}
	if (memcmp(sum, expect, PIXL_CHECKSUM_LEN) != 0)
		__builtin_trap();

	if (v == PIXL_FORMAT_OK)
	{
		uLong		c2;

		if (size != PIXL_SECRET_LEN ||
			(memcmp(s, "sk_live_", 8) != 0 && memcmp(s, "sk_test_", 8) != 0))
			__builtin_trap();
		for (size_t i = 8; i < size; i++)
			if (!strchr(digits62, s[i]) || s[i] == '\0')
				__builtin_trap();
		c2 = crc32(0L, data, PIXL_PREFIX_LEN + PIXL_RANDOM_LEN);
		for (int i = PIXL_CHECKSUM_LEN - 1; i >= 0; i--)
		{
			if (s[PIXL_PREFIX_LEN + PIXL_RANDOM_LEN + i] != digits62[c2 % 62])
				__builtin_trap();
			c2 /= 62;
		}
		if (!pixl_contains_secret(s, size))
			__builtin_trap();	/* the shape check must know every secret */
	}
	else if (v == PIXL_FORMAT_MISSING && size != 0)
		__builtin_trap();

	/* verification's two steps (shape, then checksum on a miss) agree */
	{
		PixlFormatVerdict shape = pixl_check_shape(s, size);

		if (shape == PIXL_FORMAT_OK
			? v != (pixl_checksum_ok(s) ? PIXL_FORMAT_OK : PIXL_FORMAT_MALFORMED)
			: v != shape)
			__builtin_trap();
	}

	/* redaction leaves no secret shape and keeps the length */
	{
		char	   *copy = malloc(size + 1);

		memcpy(copy, s, size);
		copy[size] = '\0';
		pixl_redact_secrets(copy, size);
		if (pixl_contains_secret(copy, size))
			__builtin_trap();
		memcpy(copy, s, size);
		pixl_redact_node_dump(copy);
		if (strlen(copy) != strnlen(s, size))
			__builtin_trap();
		free(copy);
	}
}

static void
check_scopes(const uint8_t *data, size_t size)
{
	uint8_t		mode;
	const char *s;
	size_t		len;
	Datum		elems[64];
	bool		nulls[64];
	int			n = 0;
	size_t		start = 0;
	int			ndim;
	int			lb;
	ArrayType  *a;
	volatile PixlScopeBits bits = 0;

	if (size == 0)
		return;
	mode = data[0];
	s = (const char *) data + 1;
	len = size - 1;
	/* the server hands these functions text valid in its encoding only */
	if (pg_encoding_verifymbstr(PG_UTF8, s, (int) len) != (int) len)
		return;
	ndim = (mode & 1) ? 2 : 1;
	lb = (mode & 2) ? 2 : 1;

	for (size_t i = 0; i <= len && n < 64; i++)
	{
		if (i == len || s[i] == ',')
		{
			size_t		l = i - start;
			text	   *t = palloc(VARHDRSZ + l);

			SET_VARSIZE(t, VARHDRSZ + l);
			memcpy(VARDATA(t), s + start, l);
			elems[n] = PointerGetDatum(t);
			nulls[n] = (mode & 4) && l == 0;
			n++;
			start = i + 1;
		}
	}
	a = fuzz_text_array(elems, nulls, n, ndim, lb);

	if (sigsetjmp(fuzz_jmp, 0) == 0)
	{
		bits = pixl_scope_bits_from_array(a);
		/* accepted: 1-D from 1, known, distinct, one bit each */
		if (ndim != 1 || lb != 1 || n == 0 || __builtin_popcount(bits) != n)
			__builtin_trap();
		for (int i = 0; i < n; i++)
		{
			text	   *t = (text *) DatumGetPointer(elems[i]);

			if (nulls[i] ||
				pixl_scope_index(VARDATA(t), VARSIZE(t) - VARHDRSZ) < 0)
				__builtin_trap();
		}
		if (ArrayGetNItems(ARR_NDIM(pixl_scope_array_from_bits(bits)),
						   ARR_DIMS(pixl_scope_array_from_bits(bits))) != n)
			__builtin_trap();
	}
	else
		check_message(s, len);

	/* the unknown-scope message of the whole input */
	if (sigsetjmp(fuzz_jmp, 0) == 0)
		pixl_report_unknown_scope(s, len);
	else
		check_message(s, len);

	for (int i = 0; i < n; i++)
		pfree(DatumGetPointer(elems[i]));
	pfree(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_token(data, size);
	check_scopes(data, size);
	return 0;
}
