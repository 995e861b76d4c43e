/*-------------------------------------------------------------------------
 *
 * usage_extension.h
 *		Finding the extension and running its SQL immune to search_path.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_EXTENSION_H
#define PIXL_USAGE_EXTENSION_H

#include "postgres.h"

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

#endif							/* PIXL_USAGE_EXTENSION_H */
