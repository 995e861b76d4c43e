/*-------------------------------------------------------------------------
 *
 * extension.h
 *		Finding the extension and running its SQL immune to search_path.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_EXTENSION_H
#define PIXL_EXTENSION_H

#include "postgres.h"

#include "utils/array.h"

/*
 * pixltoken as installed in the current database (needs a transaction):
 * found is false when it is not installed.  schema is the quoted schema
 * name, ready to prefix a function name (palloc'd).
 */
typedef struct PixlExtension
{
	bool		found;
	Oid			oid;
	Oid			namespace;
	Oid			owner;
	char	   *schema;
} PixlExtension;

extern PixlExtension pixl_extension_lookup(void);

/*
 * Is pixltoken installed here, or being created or dropped by a
 * transaction still in progress (a dirty read of pg_extension; needs a
 * transaction)?
 */
extern bool pixl_extension_maybe_present(void);

/*
 * Pins, for the worker's whole session, every setting a database owner or
 * role could set that changes what the worker's SQL does (outside a
 * transaction, right after connecting).
 */
extern void pixl_pin_worker_settings(void);

/*
 * Pins search_path to "pg_catalog, pg_temp" until pixl_restore_search_path
 * (or the end of the (sub)transaction, on error).  Returns the GUC nest
 * level to hand back.
 */
extern int	pixl_pin_search_path(void);
extern void pixl_restore_search_path(int nestlevel);

/*
 * The oid of function name(nargs arguments) in the extension's schema, or
 * InvalidOid: looked up in the catalog, never through search_path.
 */
extern Oid	pixl_extension_function(const PixlExtension *ext, const char *name,
									int nargs);

/* Arguments for the extension's SQL functions. */

/* A one-dimensional array of n values of type (nulls may be NULL). */
extern ArrayType *pixl_array(Datum *values, bool *nulls, int n, Oid type);

/* A token id (PIXL_TOKEN_ID_LEN bytes, not terminated) as text. */
extern Datum pixl_token_id_text(const char *token_id);

#endif							/* PIXL_EXTENSION_H */
