/*-------------------------------------------------------------------------
 *
 * scopes.c
 *		The eleven scopes of the user guide, as bits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "mb/pg_wchar.h"
#include "utils/lsyscache.h"

#include "common/errcodes.h"
#include "common/scopes.h"
#include "common/token_format.h"

/* The guide's order; a scope's bit is its position here. */
static const char *const scope_names[PIXL_NUM_SCOPES] = {
	"products:read",
	"products:write",
	"orders:read",
	"orders:write",
	"customers:read",
	"customers:write",
	"analytics:read",
	"webhooks:read",
	"webhooks:write",
	"settings:read",
	"settings:write",
};

#define SCOPE_HINT \
	"Valid scopes are products:read, products:write, orders:read, " \
	"orders:write, customers:read, customers:write, analytics:read, " \
	"webhooks:read, webhooks:write, settings:read and settings:write."

int
pixl_scope_index(const char *name, size_t len)
{
	for (int i = 0; i < PIXL_NUM_SCOPES; i++)
		if (strlen(scope_names[i]) == len && memcmp(scope_names[i], name, len) == 0)
			return i;
	return -1;
}

/* X:read is granted by X:read or by X:write, the scope right after it. */
PixlScopeBits
pixl_scope_accepting_mask(int idx)
{
	PixlScopeBits mask = (PixlScopeBits) 1 << idx;
	const char *name = scope_names[idx];
	size_t		len = strlen(name);

	if (len > 5 && strcmp(name + len - 5, ":read") == 0 &&
		idx + 1 < PIXL_NUM_SCOPES &&
		strncmp(scope_names[idx + 1], name, len - 4) == 0)
		mask |= (PixlScopeBits) 1 << (idx + 1);
	return mask;
}

/*
 * The bad value as echoed in PX001: at most 200 bytes cut at a character
 * boundary (so a client in another encoding gets PX001, not 22021), control
 * characters shown as '?', and the characters of anything shaped like a
 * secret masked.  The statement is never logged with the error: it may
 * hold a secret, in this argument or another.
 */
void
pixl_report_unknown_scope(const char *name, size_t len)
{
	int			n = pg_mbcliplen(name, (int) Min(len, (size_t) PG_INT32_MAX),
								 (int) Min(len, 200));
	char	   *shown = palloc(n + 1);

	memcpy(shown, name, n);
	shown[n] = '\0';
	for (int i = 0; i < n; i++)
		if ((unsigned char) shown[i] < 0x20 || shown[i] == 0x7f)
			shown[i] = '?';
	pixl_redact_secrets(shown, n);
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_UNKNOWN_SCOPE),
			 errmsg("unknown scope \"%s\"", shown),
			 errhidestmt(true),
			 errhint(SCOPE_HINT)));
	pg_unreachable();
}

PixlScopeBits
pixl_scope_bits_from_array(ArrayType *scopes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	PixlScopeBits bits = 0;

	/*
	 * One dimension starting at 1, as ARRAY[...] and '{...}' build it: a 2-D
	 * array would be read flat, and '[5:6]={...}' is almost surely a bug of
	 * the caller's code.  The empty array has no dimension at all.
	 */
	if (ARR_NDIM(scopes) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_SCOPE_ARRAY_SHAPE),
				 errmsg("scope list must be a one-dimensional array, not %d-dimensional",
						ARR_NDIM(scopes)),
				 errhint("Pass the scopes as a flat list, e.g. ARRAY['products:read', 'orders:read'].")));
	if (ARR_NDIM(scopes) == 1 && ARR_LBOUND(scopes)[0] != 1)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_SCOPE_ARRAY_SHAPE),
				 errmsg("scope list must start at index 1, not %d", ARR_LBOUND(scopes)[0]),
				 errhint("Pass the scopes as a plain list, e.g. ARRAY['products:read', 'orders:read'].")));

	deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	if (nelems == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_EMPTY_SCOPES),
				 errmsg("a token needs at least one scope"),
				 errhint(SCOPE_HINT)));

	for (int i = 0; i < nelems; i++)
	{
		text	   *t;
		int			idx;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_UNKNOWN_SCOPE),
					 errmsg("scope list contains a NULL"),
					 errhint(SCOPE_HINT)));
		t = DatumGetTextPP(elems[i]);
		idx = pixl_scope_index(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		if (idx < 0)
			pixl_report_unknown_scope(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		if (bits & ((PixlScopeBits) 1 << idx))
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_DUPLICATE_SCOPE),
					 errmsg("duplicate scope \"%s\"", scope_names[idx]),
					 errhint("List each scope once.")));
		bits |= (PixlScopeBits) 1 << idx;
	}
	return bits;
}

ArrayType *
pixl_scope_array_from_bits(PixlScopeBits bits)
{
	Datum		elems[PIXL_NUM_SCOPES];
	int			n = 0;

	for (int i = 0; i < PIXL_NUM_SCOPES; i++)
		if (bits & ((PixlScopeBits) 1 << i))
			elems[n++] = CStringGetTextDatum(scope_names[i]);
	return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}
