/*-------------------------------------------------------------------------
 *
 * usage_extension.c
 *		Finding the extension and running its SQL immune to search_path.
 *
 * The usage worker runs as a superuser and writes with the extension
 * owner's rights; any SQL it runs must mean the same whatever search_path
 * the database, the role or an attacker set.  So the extension, its schema
 * and owner, and the functions we call, are found through the catalog's C
 * API (an index scan of pg_extension, the pg_proc syscache), never through
 * a query whose operators or functions search_path could resolve to a
 * user's object; and every statement runs with search_path pinned to
 * "pg_catalog, pg_temp" (what PostgreSQL 17's RestrictSearchPath does),
 * while the statements themselves name the schema of every object.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

#include "usage_extension.h"

PixlExtension
pixl_extension_lookup(void)
{
	PixlExtension ext;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	memset(&ext, 0, sizeof(ext));
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("pixltoken"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_extension form = (Form_pg_extension) GETSTRUCT(tup);

		ext.found = true;
		ext.oid = form->oid;
		ext.namespace = form->extnamespace;
		ext.owner = form->extowner;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (ext.found)
	{
		char	   *nspname = get_namespace_name(ext.namespace);

		if (nspname == NULL)
			ext.found = false;	/* schema dropped under us */
		else
			ext.schema = pstrdup(quote_identifier(nspname));
	}
	return ext;
}

int
pixl_pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
pixl_restore_search_path(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

Oid
pixl_extension_function(const PixlExtension *ext, const char *name, int nargs)
{
	CatCList   *list;
	Oid			result = InvalidOid;

	if (!ext->found)
		return InvalidOid;
	list = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(name));
	for (int i = 0; i < list->n_members; i++)
	{
		HeapTuple	tup = &list->members[i]->tuple;
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (proc->pronamespace == ext->namespace && proc->pronargs == nargs)
		{
			result = proc->oid;
			break;
		}
	}
	ReleaseSysCacheList(list);
	return result;
}
