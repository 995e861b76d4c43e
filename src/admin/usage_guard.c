/*-------------------------------------------------------------------------
 *
 * usage_guard.c
 *		DROP INDEX on the indexes of the usage partitions, refused before
 *		it starts.
 *
 * The usage partitions and their indexes live in the extension's schema,
 * whose owner (PG15: the database owner owns public) may drop any object
 * in it.  The sql_drop event trigger of 30_usage.sql refuses such drops
 * (PX063), but DROP INDEX CONCURRENTLY commits its first steps before
 * sql_drop fires, so the refusal there would leave the index invalid and
 * no longer maintained.  This ddl_command_start trigger reads the
 * statement's targets from its parse tree and refuses, before anything
 * happens, the drop of an index whose table is a usage partition
 * (pixl_usage_events_YYYYMMDD or pixl_usage_events_default) of the
 * extension's schema, unless the current role is (a member of) the
 * extension's owner, as maintenance and superusers are.  Names are looked
 * up without locks and missing ones skipped: the drop itself resolves
 * them again, and a name that resolves to another relation then is not
 * one of ours.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/event_trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "common/errcodes.h"
#include "common/extension.h"

/* pixl_usage_events_YYYYMMDD or pixl_usage_events_default */
static bool
pixl_is_usage_partition_name(const char *name)
{
	const char *prefix = "pixl_usage_events_";
	const char *rest;

	if (strncmp(name, prefix, strlen(prefix)) != 0)
		return false;
	rest = name + strlen(prefix);
	if (strcmp(rest, "default") == 0)
		return true;
	if (strlen(rest) != 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (!isdigit((unsigned char) rest[i]))
			return false;
	return true;
}

PG_FUNCTION_INFO_V1(pixl_guard_usage_index_drop);

Datum
pixl_guard_usage_index_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	DropStmt   *stmt;
	PixlExtension ext;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pixl_guard_usage_index_drop: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();
	stmt = (DropStmt *) trigdata->parsetree;
	if (stmt->removeType != OBJECT_INDEX)
		PG_RETURN_VOID();

	ext = pixl_extension_lookup();
	if (!ext.found || is_member_of_role(GetUserId(), ext.owner))
		PG_RETURN_VOID();

	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList(castNode(List, lfirst(lc)));
		Oid			index = RangeVarGetRelid(rv, NoLock, true);
		Oid			table;
		char	   *table_name;

		if (!OidIsValid(index) || get_rel_relkind(index) != RELKIND_INDEX)
			continue;
		table = IndexGetRelation(index, true);
		if (!OidIsValid(table) || get_rel_namespace(table) != ext.namespace)
			continue;
		table_name = get_rel_name(table);
		if (table_name && pixl_is_usage_partition_name(table_name))
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_USAGE_PARTITION_GUARD),
					 errmsg("index %s of a usage partition can only be dropped by pixl_run_maintenance()",
							get_rel_name(index)),
					 errhint("The indexes of usage partitions go with their partitions, which maintenance drops past pixltoken.usage_retention.")));
	}
	PG_RETURN_VOID();
}
