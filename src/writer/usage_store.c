/*-------------------------------------------------------------------------
 *
 * usage_store.c
 *		Writes usage records and counts into the tables of the current
 *		database (the worker's transaction).
 *
 * Raw rows of 1.1 (their counts come from usage_aggregate.c) are written
 * the way COPY FROM writes: grouped by day partition, table_multi_insert()
 * and one index insertion per row, no executor per row and no ON CONFLICT;
 * but no constraint is checked and no trigger fired, as the partitions have
 * none (see pixl_insert_partition()).
 * Exactly once without a progress marker: records leave the ring right
 * after their transaction commits, with interrupts held in between
 * (usage_worker.c), so a record is written again only if the worker dies
 * in that window, which only a crash can do, and a crash reinitialises the
 * ring.  Should a duplicate ever reach a partition, its primary key raises
 * and the record goes to the dead-letter table, never in twice.
 *
 * Counts are folded by usage_fold.c; responses to raw rows are turned
 * into arrays and handed to pixl_apply_responses() of the extension's
 * schema (schema/code/50_usage.sql).
 * Events queued under a 1.0 schema, which raw rows alone count, go to
 * 1.0's pixl_store_events().  Every statement names the schema of what it
 * calls and runs with search_path pinned (extension.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <sys/socket.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "storage/lmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/extension.h"
#include "common/subtransaction.h"
#include "usage/latency.h"
#include "writer/usage_fold.h"
#include "writer/usage_recent.h"
#include "writer/usage_store.h"

int
pixl_usage_schema_version(const PixlExtension *ext)
{
	/* a table only 1.1 has: a function's signature may change again */
	return OidIsValid(get_relname_relid("pixl_usage_pending_responses", ext->namespace))
		? PIXL_SCHEMA_1_1 : PIXL_SCHEMA_1_0;
}

static Datum
pixl_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

/*
 * SELECT schema.fn($1, ..., $nargs): the one way this file calls the SQL
 * functions of the extension (schema comes quoted from extension.c;
 * search_path is pinned by the caller).
 */
static void
pixl_call_usage_function(const char *schema, const char *fn, int nargs,
						 Oid *argtypes, Datum *args)
{
	StringInfoData sql;
	int			rc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s.%s(", schema, fn);
	for (int i = 1; i <= nargs; i++)
		appendStringInfo(&sql, "%s$%d", i > 1 ? ", " : "", i);
	appendStringInfoChar(&sql, ')');
	rc = SPI_execute_with_args(sql.data, nargs, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	pfree(sql.data);
}

/*
 * The previous-secret uses among the events that carry their own counts
 * (not counted in usage_aggregate.c): one pixl_activity_add() call.
 */
static void
pixl_store_previous_secret_uses(const char *nspname,
								const PixlUsageRecord *recs, int n)
{
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	Datum	   *ats = palloc(sizeof(Datum) * n);
	Datum	   *uses = palloc(sizeof(Datum) * n);
	Oid			argtypes[4] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID};
	Datum		args[4];
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageEvent *ev = &recs[i].u.event;

		if (recs[i].kind != PIXL_RECORD_EVENT || ev->counted ||
			!ev->previous_secret)
			continue;
		tokens[k] = PointerGetDatum(cstring_to_text_with_len(ev->token_id,
															 strnlen(ev->token_id, PIXL_TOKEN_ID_LEN)));
		ats[k] = TimestampTzGetDatum(ev->at);
		uses[k] = Int64GetDatum(1);
		k++;
	}
	if (k == 0)
		return;

	args[0] = PointerGetDatum(pixl_array(tokens, NULL, k, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(ats, NULL, k, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(uses, NULL, k, INT8OID));
	args[3] = args[1];
	pixl_call_usage_function(nspname, "pixl_activity_add", 4, argtypes, args);
}

/*
 * Tokens that came over plain HTTP (usage/exposure.c): one
 * pixl_expose_insecure() call revokes or notifies them, in the
 * transaction that stores their records, so exactly once (a record is
 * stored once; the function also leaves an exposed token alone).
 */
static void
pixl_store_exposures(const char *nspname, const PixlUsageRecord *recs, int n)
{
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	Datum	   *actions = palloc(sizeof(Datum) * n);
	Datum	   *ats = palloc(sizeof(Datum) * n);
	Oid			argtypes[3] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageEvent *ev = &recs[i].u.event;

		if (recs[i].kind != PIXL_RECORD_EVENT ||
			ev->exposure == PIXL_EXPOSURE_NONE)
			continue;
		tokens[k] = PointerGetDatum(cstring_to_text_with_len(ev->token_id,
															 strnlen(ev->token_id, PIXL_TOKEN_ID_LEN)));
		actions[k] = CStringGetTextDatum(ev->exposure == PIXL_EXPOSURE_NOTIFY ?
										 "notify" : "revoke");
		ats[k] = TimestampTzGetDatum(ev->at);
		k++;
	}
	if (k == 0)
		return;
	args[0] = PointerGetDatum(pixl_array(tokens, NULL, k, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(actions, NULL, k, TEXTOID));
	args[2] = PointerGetDatum(pixl_array(ats, NULL, k, TIMESTAMPTZOID));
	pixl_call_usage_function(nspname, "pixl_expose_insecure", 3, argtypes, args);
}

/*
 * Raw rows that carry their own counts (queued before the worker looked,
 * or for a 1.0 schema): 1.0's pixl_store_events() writes rows, rollups and
 * last_used_at.
 */
static void
pixl_store_event_batch(const char *nspname, int schema,
					   const PixlUsageRecord *recs, int n, int nevents)
{
	Datum	   *ids = palloc(sizeof(Datum) * nevents);
	Datum	   *ats = palloc(sizeof(Datum) * nevents);
	Datum	   *tokens = palloc(sizeof(Datum) * nevents);
	Datum	   *methods = palloc(sizeof(Datum) * nevents);
	bool	   *method_nulls = palloc(sizeof(bool) * nevents);
	Datum	   *endpoints = palloc(sizeof(Datum) * nevents);
	bool	   *endpoint_nulls = palloc(sizeof(bool) * nevents);
	Datum	   *ips = palloc(sizeof(Datum) * nevents);
	bool	   *ip_nulls = palloc(sizeof(bool) * nevents);
	Datum	   *statuses = palloc(sizeof(Datum) * nevents);
	Oid			argtypes[7] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, INETARRAYOID, INT4ARRAYOID};
	Datum		args[7];
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageEvent *ev;
		char		token_id[PIXL_TOKEN_ID_LEN + 1];

		if (recs[i].kind != PIXL_RECORD_EVENT ||
			(recs[i].u.event.counted && schema == PIXL_SCHEMA_1_1))
			continue;
		ev = &recs[i].u.event;
		memcpy(token_id, ev->token_id, PIXL_TOKEN_ID_LEN);
		token_id[PIXL_TOKEN_ID_LEN] = '\0';
		ids[k] = Int64GetDatum(ev->request_id);
		ats[k] = TimestampTzGetDatum(ev->at);
		tokens[k] = CStringGetTextDatum(token_id);
		methods[k] = pixl_text_or_null(ev->method, &method_nulls[k]);
		endpoints[k] = pixl_text_or_null(ev->endpoint, &endpoint_nulls[k]);
		ip_nulls[k] = !ev->has_ip;
		if (ev->has_ip)
		{
			inet	   *ip = palloc0(sizeof(inet));

			ip->inet_data = ev->ip;
			SET_INET_VARSIZE(ip);
			ips[k] = InetPGetDatum(ip);
		}
		else
			ips[k] = (Datum) 0;
		statuses[k] = Int32GetDatum(ev->status);
		k++;
	}

	args[0] = PointerGetDatum(pixl_array(ids, NULL, k, INT8OID));
	args[1] = PointerGetDatum(pixl_array(ats, NULL, k, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(tokens, NULL, k, TEXTOID));
	args[3] = PointerGetDatum(pixl_array(methods, method_nulls, k, TEXTOID));
	args[4] = PointerGetDatum(pixl_array(endpoints, endpoint_nulls, k, TEXTOID));
	args[5] = PointerGetDatum(pixl_array(ips, ip_nulls, k, INETOID));
	args[6] = PointerGetDatum(pixl_array(statuses, NULL, k, INT4OID));

	pixl_call_usage_function(nspname, "pixl_store_events", 7, argtypes, args);

	/*
	 * 1.0's pixl_store_events() knows nothing of the previous secret: under
	 * a 1.1 schema its uses go to pixl_token_activity here, in the same
	 * transaction (a 1.0 schema has no column for them).
	 */
	if (schema == PIXL_SCHEMA_1_1)
		pixl_store_previous_secret_uses(nspname, recs, n);
}

static void
pixl_apply_response_batch(const char *schema, const PixlUsageRecord *recs,
						  int n, int nresponses)
{
	Datum	   *ids = palloc(sizeof(Datum) * nresponses);
	Datum	   *ats = palloc(sizeof(Datum) * nresponses);
	Datum	   *statuses = palloc(sizeof(Datum) * nresponses);
	Datum	   *ms = palloc(sizeof(Datum) * nresponses);
	Oid			argtypes[4] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT4ARRAYOID,
	FLOAT8ARRAYOID};
	Datum		args[4];
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageResponse *r;

		if (recs[i].kind != PIXL_RECORD_RESPONSE)
			continue;
		r = &recs[i].u.response;
		ids[k] = Int64GetDatum(r->request_id);
		ats[k] = TimestampTzGetDatum(r->at);
		statuses[k] = Int32GetDatum(r->status);
		ms[k] = Float8GetDatum(r->response_ms);
		k++;
	}

	args[0] = PointerGetDatum(pixl_array(ids, NULL, k, INT8OID));
	args[1] = PointerGetDatum(pixl_array(ats, NULL, k, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(statuses, NULL, k, INT4OID));
	args[3] = PointerGetDatum(pixl_array(ms, NULL, k, FLOAT8OID));

	pixl_call_usage_function(schema, "pixl_apply_responses", 4, argtypes, args);
}

/* ---- raw rows the way COPY FROM writes them ---- */

#define PIXL_NCOLS	10
static const char *const pixl_event_columns[PIXL_NCOLS] = {
	"at", "request_id", "token_id", "store_id", "method", "endpoint", "ip",
	"status", "verify_status", "response_ms"
};

typedef struct PixlStoreIdEntry
{
	char		token_id[PIXL_TOKEN_ID_LEN];	/* hash key */
	Datum		store_id;		/* text, or 0: no such token */
} PixlStoreIdEntry;

/*
 * The worker's cache of token -> store (a token's store never changes;
 * the cache is emptied on every relcache invalidation of the registry,
 * which its triggers send on every change, and when it grows too big).
 */
#define PIXL_STORE_CACHE_MAX	65536

static MemoryContext store_cache_cxt = NULL;
static HTAB *store_cache = NULL;
static Oid	store_cache_registry = InvalidOid;
static bool store_cache_valid = false;

static void
pixl_store_cache_inval(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == store_cache_registry)
		store_cache_valid = false;
}

/* The (possibly emptied) cache for the registry of ext. */
static HTAB *
pixl_store_cache(const PixlExtension *ext)
{
	Oid			registry = get_relname_relid("pixl_token_registry", ext->namespace);
	HASHCTL		info;

	if (store_cache_cxt == NULL)
	{
		store_cache_cxt = AllocSetContextCreate(TopMemoryContext,
												"pixltoken store ids",
												ALLOCSET_DEFAULT_SIZES);
		CacheRegisterRelcacheCallback(pixl_store_cache_inval, (Datum) 0);
	}
	if (store_cache != NULL && store_cache_valid &&
		registry == store_cache_registry &&
		hash_get_num_entries(store_cache) < PIXL_STORE_CACHE_MAX)
		return store_cache;

	MemoryContextReset(store_cache_cxt);
	memset(&info, 0, sizeof(info));
	info.keysize = PIXL_TOKEN_ID_LEN;
	info.entrysize = sizeof(PixlStoreIdEntry);
	info.hcxt = store_cache_cxt;
	store_cache = hash_create("pixltoken store ids", 1024, &info,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	store_cache_registry = registry;
	store_cache_valid = true;
	return store_cache;
}

/*
 * The store of every token of the batch: from the cache, and one SPI query
 * for the tokens not in it.
 */
static HTAB *
pixl_store_ids(const PixlExtension *ext, const PixlUsageRecord *recs, int n)
{
	HTAB	   *map = pixl_store_cache(ext);
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	int			k = 0;
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		args[1];
	int			rc;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageEvent *ev = &recs[i].u.event;
		bool		found;
		PixlStoreIdEntry *e;

		if (recs[i].kind != PIXL_RECORD_EVENT || !ev->counted)
			continue;
		e = hash_search(map, ev->token_id, HASH_ENTER, &found);
		if (!found)
		{
			e->store_id = (Datum) 0;
			tokens[k++] = PointerGetDatum(cstring_to_text_with_len(ev->token_id,
																   strnlen(ev->token_id, PIXL_TOKEN_ID_LEN)));
		}
	}
	if (k == 0)
		return map;
	args[0] = PointerGetDatum(pixl_array(tokens, NULL, k, TEXTOID));
	rc = SPI_execute_with_args(psprintf("SELECT r.token_id, r.store_id FROM %s.pixl_token_registry r"
										" WHERE r.token_id OPERATOR(pg_catalog.=) ANY ($1)",
										ext->schema),
							   1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));

	/*
	 * The answers are kept in the cache; an invalidation taken in while the
	 * query ran (the registry changed) empties it before the next batch.
	 */
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char		key[PIXL_TOKEN_ID_LEN];
		char	   *tok = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		char	   *store = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		PixlStoreIdEntry *e;

		if (tok == NULL || strlen(tok) > PIXL_TOKEN_ID_LEN)
			continue;
		memset(key, 0, sizeof(key));
		memcpy(key, tok, strlen(tok));
		e = hash_search(map, key, HASH_FIND, NULL);
		if (e && store)
		{
			MemoryContext old = MemoryContextSwitchTo(store_cache_cxt);

			e->store_id = CStringGetTextDatum(store);
			MemoryContextSwitchTo(old);
		}
	}
	return map;
}

/*
 * The partition of pixl_usage_events that takes rows of the UTC day of at:
 * the dated one if it exists and is attached to pixl_usage_events (a table
 * of that name that is not is ignored), else the default partition.
 */
static Oid
pixl_partition_for(const PixlExtension *ext, Oid parent, Oid default_part,
				   TimestampTz at)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		name[NAMEDATALEN];
	Oid			relid;

	if (timestamp2tm(at, NULL, &tm, &fsec, NULL, NULL) != 0)
		return default_part;
	snprintf(name, sizeof(name), "pixl_usage_events_%04d%02d%02d",
			 tm.tm_year, tm.tm_mon, tm.tm_mday);
	relid = get_relname_relid(name, ext->namespace);
	if (!OidIsValid(relid) || !get_rel_relispartition(relid) ||
		get_partition_parent(relid, false) != parent)
		return default_part;
	return relid;
}

/*
 * Inserts the rows of recs[idx[0..k-1]] into partition relid.  Unlike COPY
 * FROM, it checks no constraint and fires no trigger: the extension's usage
 * partitions have neither CHECK constraints nor triggers (asserted below),
 * every column they declare NOT NULL is filled here by construction, and
 * the partition was chosen for the row's UTC day (pixl_partition_for()), so
 * its partition constraint holds.
 */
static void
pixl_insert_partition(Oid relid, const PixlUsageRecord *recs, const int *idx,
					  int k, HTAB *stores, EState *estate)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);

	/*
	 * The slots get an unpinned copy of the descriptor: a slot of the
	 * relation's own (reference-counted) descriptor pins it in the resource
	 * owner, and a thousand pins and unpins per batch cost about a tenth of
	 * the worker's time per event.
	 */
	TupleDesc	slot_desc = CreateTupleDescCopy(desc);
	const TupleTableSlotOps *slot_ops = table_slot_callbacks(rel);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * k);
	AttrNumber	attnums[PIXL_NCOLS];
	CommandId	cid = GetCurrentCommandId(true);

	for (int c = 0; c < PIXL_NCOLS; c++)
	{
		attnums[c] = InvalidAttrNumber;
		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped &&
				strcmp(NameStr(att->attname), pixl_event_columns[c]) == 0)
				attnums[c] = att->attnum;
		}
	}

	Assert(desc->constr == NULL || desc->constr->num_check == 0);
	Assert(rel->trigdesc == NULL);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);

	for (int j = 0; j < k; j++)
	{
		const PixlUsageEvent *ev = &recs[idx[j]].u.event;
		TupleTableSlot *slot = MakeSingleTupleTableSlot(slot_desc, slot_ops);
		PixlStoreIdEntry *se = hash_search(stores, ev->token_id, HASH_FIND, NULL);
		Datum		v[PIXL_NCOLS];
		bool		nul[PIXL_NCOLS];

		memset(nul, 0, sizeof(nul));
		v[0] = TimestampTzGetDatum(ev->at);
		v[1] = Int64GetDatum(ev->request_id);
		v[2] = PointerGetDatum(cstring_to_text_with_len(ev->token_id,
														strnlen(ev->token_id, PIXL_TOKEN_ID_LEN)));
		nul[3] = (se == NULL || se->store_id == (Datum) 0);
		v[3] = nul[3] ? (Datum) 0 : se->store_id;
		v[4] = pixl_text_or_null(ev->method, &nul[4]);
		v[5] = pixl_text_or_null(ev->endpoint, &nul[5]);
		nul[6] = !ev->has_ip;
		if (ev->has_ip)
		{
			inet	   *ip = palloc0(sizeof(inet));

			ip->inet_data = ev->ip;
			SET_INET_VARSIZE(ip);
			v[6] = InetPGetDatum(ip);
		}
		else
			v[6] = (Datum) 0;
		v[7] = Int16GetDatum(ev->status);
		v[8] = Int16GetDatum(ev->status);
		nul[9] = true;
		v[9] = (Datum) 0;

		ExecClearTuple(slot);
		for (int a = 0; a < desc->natts; a++)
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
		}
		for (int c = 0; c < PIXL_NCOLS; c++)
		{
			if (attnums[c] == InvalidAttrNumber)
				continue;
			slot->tts_values[attnums[c] - 1] = v[c];
			slot->tts_isnull[attnums[c] - 1] = nul[c];
		}
		ExecStoreVirtualTuple(slot);
		slots[j] = slot;
	}

	table_multi_insert(rel, slots, k, cid, 0, NULL);
	for (int j = 0; j < k; j++)
	{
		List	   *recheck;

		recheck = ExecInsertIndexTuples(rri, slots[j], estate, false, false,
										NULL, NIL);
		list_free(recheck);
		ExecDropSingleTupleTableSlot(slots[j]);
	}
	ExecCloseIndices(rri);
	table_close(rel, NoLock);
}

static void
pixl_store_raw_fast(const PixlExtension *ext, const PixlUsageRecord *recs,
					int n, int ncounted)
{
	Oid			parent = get_relname_relid("pixl_usage_events", ext->namespace);
	Oid			default_part = get_relname_relid("pixl_usage_events_default",
												 ext->namespace);
	HTAB	   *stores;
	EState	   *estate;
	Oid		   *part = palloc(sizeof(Oid) * n);
	bool	   *done = palloc0(sizeof(bool) * n);
	int		   *idx = palloc(sizeof(int) * n);
	Datum	   *ids = palloc(sizeof(Datum) * ncounted);
	int			nids = 0;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1];

	if (!OidIsValid(parent) || !OidIsValid(default_part))
		elog(ERROR, "pixltoken: table pixl_usage_events is missing");

	/* the parent first, as the executor's partition routing locks it */
	LockRelationOid(parent, RowExclusiveLock);
	stores = pixl_store_ids(ext, recs, n);
	estate = CreateExecutorState();

	{
		TimestampTz last_day = -1;
		Oid			last_part = InvalidOid;

		for (int i = 0; i < n; i++)
		{
			TimestampTz day;

			if (recs[i].kind != PIXL_RECORD_EVENT || !recs[i].u.event.counted)
			{
				done[i] = true;
				continue;
			}
			ids[nids++] = Int64GetDatum(recs[i].u.event.request_id);
			day = recs[i].u.event.at - recs[i].u.event.at % USECS_PER_DAY;
			if (day != last_day)
			{
				last_part = pixl_partition_for(ext, parent, default_part,
											   recs[i].u.event.at);
				last_day = day;
			}
			part[i] = last_part;
		}
	}

	/* one multi-insert per partition */
	for (int i = 0; i < n; i++)
	{
		int			k = 0;

		if (done[i])
			continue;
		for (int j = i; j < n; j++)
		{
			if (!done[j] && part[j] == part[i])
			{
				idx[k++] = j;
				done[j] = true;
			}
		}
		pixl_insert_partition(part[i], recs, idx, k, stores, estate);
	}
	FreeExecutorState(estate);

	/* responses that arrived before their rows (rare) */
	args[0] = PointerGetDatum(pixl_array(ids, NULL, nids, INT8OID));
	pixl_call_usage_function(ext->schema, "pixl_match_unmatched", 1, argtypes, args);
}

void
pixl_usage_store_batch(const PixlExtension *ext, int schema,
					   const PixlUsageRecord *recs, int n,
					   const PixlAggSnapshot *aggs, int nagg)
{
	int			counted = 0;
	int			uncounted = 0;
	int			nresponses = 0;
	int			nexposures = 0;
	int			nestlevel;

	for (int i = 0; i < n; i++)
	{
		if (recs[i].kind == PIXL_RECORD_EVENT)
		{
			if (recs[i].u.event.exposure != PIXL_EXPOSURE_NONE)
				nexposures++;
			/*
			 * A 1.0 schema (the extension was re-created at 1.0 while raw
			 * rows were queued) cannot take counts: such a row carries its
			 * own, and the count left in shared memory is folded after the
			 * update (README: a version change may count that moment twice).
			 */
			if (recs[i].u.event.counted && schema == PIXL_SCHEMA_1_1)
				counted++;
			else
				uncounted++;
		}
		else if (recs[i].kind == PIXL_RECORD_RESPONSE)
			nresponses++;
	}

	nestlevel = pixl_pin_search_path();
	/* request_log = recent: the calls are kept by usage_recent.c */
	if (counted > 0 && !pixl_usage_recent_keeps_calls())
		pixl_store_raw_fast(ext, recs, n, counted);
	if (uncounted > 0)
		pixl_store_event_batch(ext->schema, schema, recs, n, uncounted);
	if (nagg > 0)
		pixl_usage_fold(ext, aggs, nagg);
	if (nresponses > 0 && !pixl_usage_recent_keeps_calls())
		pixl_apply_response_batch(ext->schema, recs, n, nresponses);
	if (nexposures > 0)
		pixl_store_exposures(ext->schema, recs, n);
	pixl_restore_search_path(nestlevel);
}

/*
 * The worker's pending verifications (usage_pending.c): those written out
 * go to pixl_usage_pending_responses, late reports are applied (their rows
 * deleted, their responses added to the rollups) by pixl_apply_late_responses.
 */
void
pixl_usage_store_pending(const PixlExtension *ext, const PixlPendingItem *spill,
						 int nspill, const PixlPendingItem *late, int nlate)
{
	int			nestlevel = pixl_pin_search_path();

	if (nspill > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * nspill);
		Datum	   *ats = palloc(sizeof(Datum) * nspill);
		Datum	   *tokens = palloc(sizeof(Datum) * nspill);
		Datum	   *buckets = palloc(sizeof(Datum) * nspill);
		Datum	   *methods = palloc(sizeof(Datum) * nspill);
		Datum	   *endpoints = palloc(sizeof(Datum) * nspill);
		Datum	   *statuses = palloc(sizeof(Datum) * nspill);
		Oid			argtypes[7] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
			TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID};
		Datum		args[7];

		for (int i = 0; i < nspill; i++)
		{
			const PixlPendingItem *p = &spill[i];

			ids[i] = Int64GetDatum(p->request_id);
			ats[i] = TimestampTzGetDatum(p->at);
			tokens[i] = PointerGetDatum(cstring_to_text_with_len(p->key.token_id,
																 strnlen(p->key.token_id, PIXL_TOKEN_ID_LEN)));
			buckets[i] = TimestampTzGetDatum(p->key.hour);
			methods[i] = CStringGetTextDatum(p->key.method);
			endpoints[i] = CStringGetTextDatum(p->key.endpoint);
			statuses[i] = Int32GetDatum(p->verify_status);
		}
		args[0] = PointerGetDatum(pixl_array(ids, NULL, nspill, INT8OID));
		args[1] = PointerGetDatum(pixl_array(ats, NULL, nspill, TIMESTAMPTZOID));
		args[2] = PointerGetDatum(pixl_array(tokens, NULL, nspill, TEXTOID));
		args[3] = PointerGetDatum(pixl_array(buckets, NULL, nspill, TIMESTAMPTZOID));
		args[4] = PointerGetDatum(pixl_array(methods, NULL, nspill, TEXTOID));
		args[5] = PointerGetDatum(pixl_array(endpoints, NULL, nspill, TEXTOID));
		args[6] = PointerGetDatum(pixl_array(statuses, NULL, nspill, INT4OID));
		pixl_call_usage_function(ext->schema, "pixl_write_pending", 7, argtypes, args);
	}
	if (nlate > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * nlate);
		Datum	   *statuses = palloc(sizeof(Datum) * nlate);
		Datum	   *ms = palloc(sizeof(Datum) * nlate);
		Oid			argtypes[3] = {INT8ARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID};
		Datum		args[3];

		for (int i = 0; i < nlate; i++)
		{
			ids[i] = Int64GetDatum(late[i].request_id);
			statuses[i] = Int32GetDatum(late[i].status);
			/* in microseconds, as the aggregates sum them */
			ms[i] = Float8GetDatum(rint(late[i].response_ms * 1000.0) / 1000.0);
		}
		args[0] = PointerGetDatum(pixl_array(ids, NULL, nlate, INT8OID));
		args[1] = PointerGetDatum(pixl_array(statuses, NULL, nlate, INT4OID));
		args[2] = PointerGetDatum(pixl_array(ms, NULL, nlate, FLOAT8OID));
		pixl_call_usage_function(ext->schema, "pixl_apply_late_responses", 3, argtypes, args);
	}
	pixl_restore_search_path(nestlevel);
}

/* The JSON string of s. */
static const char *
json_text(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	escape_json(&buf, s);
	return buf.data;
}

/*
 * Keeps a record (or a count) that cannot be written in the dead-letter
 * table, with its error.  Returns false when that fails too (1.0 schema).
 */
static bool
pixl_usage_store_dead_letter(const PixlExtension *ext,
							 const PixlUsageRecord *rec,
							 const PixlAggSnapshot *agg,
							 const char *error)
{
	Oid			argtypes[5] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *detail;
	int			nestlevel;
	int			rc;

	if (agg)
	{
		args[0] = CStringGetTextDatum("count");
		nulls[1] = 'n';
		args[1] = (Datum) 0;
		args[2] = PointerGetDatum(cstring_to_text_with_len(agg->key.token_id,
														   strnlen(agg->key.token_id, PIXL_TOKEN_ID_LEN)));
		detail = psprintf("{\"bucket\": %s, \"method\": %s, \"endpoint\": %s, "
						  "\"requests\": " INT64_FORMAT ", \"errors\": " INT64_FORMAT ", "
						  "\"rate_limited\": " INT64_FORMAT ", "
						  "\"previous_secret_uses\": " INT64_FORMAT ", "
						  "\"responses\": " INT64_FORMAT ", "
						  "\"response_errors_up\": " INT64_FORMAT ", "
						  "\"response_errors_down\": " INT64_FORMAT ", "
						  "\"response_us_sum\": " INT64_FORMAT ", "
						  "\"cost\": " INT64_FORMAT ", \"charged\": " INT64_FORMAT ", "
						  "\"scopes_used\": %d, \"latency\": %s}",
						  json_text(timestamptz_to_str(agg->key.hour)),
						  json_text(agg->key.method), json_text(agg->key.endpoint),
						  agg->requests, agg->errors, agg->rate_limited,
						  agg->previous_secret_uses, agg->responses,
						  agg->response_errors_up, agg->response_errors_down,
						  agg->response_us_sum, agg->cost, agg->charged,
						  agg->scopes_used, json_text(pixl_latency_counts_text(agg->latency)));
	}
	else if (rec->kind == PIXL_RECORD_EVENT)
	{
		const PixlUsageEvent *ev = &rec->u.event;

		args[0] = CStringGetTextDatum("event");
		args[1] = Int64GetDatum(ev->request_id);
		args[2] = PointerGetDatum(cstring_to_text_with_len(ev->token_id,
														   strnlen(ev->token_id, PIXL_TOKEN_ID_LEN)));
		detail = psprintf("{\"at\": %s, \"method\": %s, \"endpoint\": %s, \"status\": %d, "
						  "\"cost\": %d, \"charged\": %d}",
						  json_text(timestamptz_to_str(ev->at)),
						  json_text(ev->method), json_text(ev->endpoint), ev->status,
						  ev->cost, ev->charged);
	}
	else
	{
		const PixlUsageResponse *r = &rec->u.response;

		args[0] = CStringGetTextDatum("response");
		args[1] = Int64GetDatum(r->request_id);
		nulls[2] = 'n';
		args[2] = (Datum) 0;
		detail = psprintf("{\"status\": %d, \"response_ms\": %.17g}",
						  r->status, r->response_ms);
	}
	args[3] = CStringGetTextDatum(detail);
	args[4] = CStringGetTextDatum(error);

	nestlevel = pixl_pin_search_path();
	rc = SPI_execute_with_args(psprintf("INSERT INTO %s.pixl_usage_dead_letters (kind, request_id, token_id, detail, error)"
										" VALUES ($1, $2, $3, $4::pg_catalog.jsonb, $5)",
										ext->schema),
							   5, argtypes, args, nulls, false, 0);
	pixl_restore_search_path(nestlevel);
	return rc == SPI_OK_INSERT;
}

bool
pixl_usage_error_is_transient(int sqlerrcode)
{
	/* read-only: a standby promoted under us, or a read-only transaction */
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_READ_ONLY_SQL_TRANSACTION ||
		sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE ||
		sqlerrcode == ERRCODE_QUERY_CANCELED ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;
}

/* What a subtransaction of this file works on. */
typedef struct PixlStoreWork
{
	const PixlExtension *ext;
	const PixlUsageRecord *recs;
	int			n;
	const PixlAggSnapshot *aggs;
	int			nagg;
	const char *error;			/* the dead letter's */
	bool		ok;
} PixlStoreWork;

static void
pixl_store_work(void *arg)
{
	PixlStoreWork *w = arg;

	pixl_usage_store_batch(w->ext, pixl_usage_schema_version(w->ext),
						   w->recs, w->n, w->aggs, w->nagg);
}

static void
pixl_dead_letter_work(void *arg)
{
	PixlStoreWork *w = arg;

	w->ok = pixl_usage_store_dead_letter(w->ext, w->recs, w->aggs, w->error);
}

/*
 * Writes records and counts in a subtransaction.  NULL when written; else
 * the error, with the subtransaction rolled back.  Transient errors are
 * re-thrown: they fail the whole attempt, to be retried as it is.
 */
static ErrorData *
pixl_store_sub(const PixlExtension *ext, const PixlUsageRecord *recs, int n,
			   const PixlAggSnapshot *aggs, int nagg)
{
	PixlStoreWork w = {ext, recs, n, aggs, nagg, NULL, false};
	ErrorData  *edata = pixl_try_subtransaction(pixl_store_work, &w);

	if (edata && pixl_usage_error_is_transient(edata->sqlerrcode))
		ReThrowError(edata);
	return edata;
}

const char *
pixl_usage_store_one(const PixlExtension *ext, const PixlUsageRecord *rec,
					 const PixlAggSnapshot *agg, bool *kept)
{
	ErrorData  *edata = pixl_store_sub(ext, rec, rec ? 1 : 0, agg, agg ? 1 : 0);

	*kept = false;
	if (edata == NULL)
		return NULL;
	{
		PixlStoreWork w = {ext, rec, 0, agg, 0, edata->message, false};
		ErrorData  *dl_error = pixl_try_subtransaction(pixl_dead_letter_work, &w);

		if (dl_error || !w.ok)
		{
			const char *why = dl_error ? dl_error->message : "no row inserted";

			/*
			 * A 1.1 schema has the table: the item stays where it is, to be
			 * tried again (a 1.0 schema has none, so the item is dropped,
			 * as 1.0 did).
			 */
			*kept = pixl_usage_schema_version(ext) == PIXL_SCHEMA_1_1;
			ereport(LOG,
					(errmsg("pixltoken could not keep a usage %s that failed (%s) in pixl_usage_dead_letters: %s",
							agg ? "count" : "record", edata->message, why),
					 errdetail(*kept ? "It stays queued and is tried again." :
							   "It is dropped: the installed schema has no dead-letter table.")));
			return psprintf("could not write a dead letter (%s) for usage that failed: %s",
							why, edata->message);
		}
	}
	ereport(LOG,
			(errmsg("pixltoken put a usage %s into pixl_usage_dead_letters: %s",
					agg ? "count" : "record", edata->message)));
	return edata->message;
}

int
pixl_usage_store_batch_isolating(const PixlExtension *ext,
								 const PixlUsageRecord *recs, int n,
								 const PixlAggSnapshot *aggs, int nagg,
								 const char **last_error)
{
	int			dead = 0;

	if (pixl_store_sub(ext, recs, n, aggs, nagg) == NULL)
		return 0;
	for (int i = 0; i < n + nagg; i++)
	{
		bool		kept;
		const char *error = pixl_usage_store_one(ext, i < n ? &recs[i] : NULL,
												 i < n ? NULL : &aggs[i - n],
												 &kept);

		/* nothing is applied: the sender keeps the batch and sends it again */
		if (kept)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("usage batch not applied: %s", error)));
		if (error)
		{
			dead++;
			*last_error = error;
		}
	}
	return dead;
}
