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
#include "utils/lsyscache.h"

#include "pixltoken.h"
#include "scopes.h"

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

void
pixl_report_unknown_scope(const char *name, size_t len)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_UNKNOWN_SCOPE),
			 errmsg("unknown scope \"%.*s\"", (int) Min(len, 200), name),
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
