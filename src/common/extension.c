/*-------------------------------------------------------------------------
 *
 * extension.c
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
 * The same holds for every other setting a database owner (ALTER DATABASE
 * ... SET) or a role (ALTER ROLE ... SET) can give the worker's session
 * that changes what its SQL does: pixl_pin_worker_settings() pins them for
 * the whole session (PGC_S_SESSION outranks database and role settings).
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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

#include "common/extension.h"
#include "common/token_format.h"

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

/*
 * Every setting that changes what the worker's SQL does, with the value it
 * is written for:
 *
 *	role: a database owner may make every session of its database run as
 *	  itself (ALTER DATABASE ... SET role); the worker runs as itself.
 *	search_path: names (also pinned per statement, pixl_pin_search_path).
 *	default_transaction_read_only: a read-only database would make every
 *	  write fail (and, before, drop the counts with their dead letters).
 *	default_transaction_isolation: the upserts are written for read
 *	  committed (serializable would fail them, repeatable read too).
 *	session_replication_role: "replica" would skip the triggers and foreign
 *	  keys of the extension's tables (and of anything attached to them).
 *	row_security: "off" makes a query that a policy would filter fail.
 *	standard_conforming_strings: how string literals of SQL text and of the
 *	  functions' bodies are read.
 *	TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output:
 *	  days and hours of timestamptz arithmetic (partitions, daily roll-up)
 *	  and the text form of values (dead letters' detail).
 *	statement_timeout, idle_in_transaction_session_timeout: the worker
 *	  bounds its transactions itself (pixltoken.worker_statement_timeout;
 *	  lock_timeout is set per transaction, usage_worker.c).
 *	default_tablespace, temp_tablespaces, default_table_access_method:
 *	  where and how maintenance creates the dated partitions.
 *	plpgsql.variable_conflict, plpgsql.extra_errors, plpgsql.check_asserts:
 *	  how the extension's PL/pgSQL functions resolve names and which of
 *	  their statements raise (placeholders until PL/pgSQL loads, which then
 *	  takes their values).
 *
 * Not pinned, as they change no result: client_encoding (no client: SPI
 * converts nothing), lc_messages (the language of error texts), lc_time and
 * lc_monetary/lc_numeric (no locale-dependent formatting: to_char is used
 * with 'YYYYMMDD' only), synchronous_commit (durability of the last commits
 * on an OS crash, when shared memory is lost anyway), planner and memory
 * settings; session_preload_libraries and local_preload_libraries are not
 * loaded by background workers.
 */
static const char *const pixl_worker_settings[][2] = {
	{"role", "none"},
	{"search_path", "pg_catalog, pg_temp"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_isolation", "read committed"},
	{"session_replication_role", "origin"},
	{"row_security", "on"},
	{"standard_conforming_strings", "on"},
	{"TimeZone", "UTC"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
	{"statement_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"default_tablespace", ""},
	{"temp_tablespaces", ""},
	{"default_table_access_method", "heap"},
	{"plpgsql.variable_conflict", "error"},
	{"plpgsql.extra_errors", "none"},
	{"plpgsql.check_asserts", "on"},
};

void
pixl_pin_worker_settings(void)
{
	for (int i = 0; i < (int) lengthof(pixl_worker_settings); i++)
		(void) set_config_option(pixl_worker_settings[i][0],
								 pixl_worker_settings[i][1],
								 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, ERROR, false);
}

bool
pixl_extension_maybe_present(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	SnapshotData dirty;
	bool		present;

	InitDirtySnapshot(dirty);
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("pixltoken"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, &dirty, 1, &key);
	present = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return present;
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

ArrayType *
pixl_array(Datum *values, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1];

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	dims[0] = n;
	lbs[0] = 1;
	return construct_md_array(values, nulls, 1, dims, lbs, type,
							  typlen, typbyval, typalign);
}

Datum
pixl_token_id_text(const char *token_id)
{
	return PointerGetDatum(cstring_to_text_with_len(token_id,
													strnlen(token_id, PIXL_TOKEN_ID_LEN)));
}
