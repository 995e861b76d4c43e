/*-------------------------------------------------------------------------
 *
 * token_cache.c
 *		Per-backend cache of token rows, kept honest by transactional
 *		relcache invalidation.
 *
 * Verification looks a secret's SHA-256 up in a backend-local hash table.
 * On a miss the row is read with SPI through a saved plan, under a fresh
 * latest snapshot (not the caller's transaction snapshot: a verification
 * inside a long transaction must still see a revocation that committed a
 * moment ago), and as the registry's owner, so that an app-server role needs
 * nothing but EXECUTE on pixl_verify_token().
 *
 * Invalidation.  Statement triggers on pixl_token_registry, pixl_stores and
 * pixl_plans call pixl_invalidate_token_cache(), which queues a relcache
 * invalidation of the registry.  PostgreSQL sends it to other backends when
 * the transaction commits (and drops it on abort), after the commit became
 * visible to snapshots.  Every verification calls
 * AcceptInvalidationMessages() first, and our relcache callback flushes the
 * whole cache for the registry (or for a reset of all relations).  Hence:
 *
 *	- a committed change is seen by the next verification on every
 *	  connection: its message is consumed before the lookup;
 *	- an uncommitted change is never seen by another connection: nothing is
 *	  sent, and the latest snapshot does not see it;
 *	- a row loaded while a change commits cannot stay stale: either the
 *	  load's snapshot sees the commit, or the message arrives after the
 *	  snapshot was taken and flushes the cache before the next lookup.
 *
 * The callback only sets a flag; the flush happens at the start of the next
 * lookup.  So an entry a caller holds stays valid until its next lookup, even
 * if a message is processed in between (SPI may do that while locking).
 *
 * Unknown hashes are not cached: garbage with a valid checksum costs one
 * index probe, and cannot fill the cache.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pixltoken.h"
#include "scopes.h"
#include "token_cache.h"
#include "token_format.h"

#define REGISTRY_NAME	"pixl_token_registry"

/*
 * The cache holds at most pixltoken.token_cache_size entries (about 300
 * bytes each with their store id and scopes array).  Past that, one entry is
 * evicted per insertion, so a backend that sees more tokens than it can hold
 * still hits for the ones it keeps instead of starting over empty.
 */

static MemoryContext cache_cxt = NULL;
static HTAB *token_cache = NULL;
static bool flush_pending = false;

/* Resolved once per backend, again only if the registry disappears. */
static Oid	registry_relid = InvalidOid;
static Oid	registry_owner = InvalidOid;
static Oid	registry_schema = InvalidOid;
static bool check_registry = false;
static SPIPlanPtr load_plan = NULL;
static bool callback_registered = false;

PG_FUNCTION_INFO_V1(pixl_invalidate_token_cache);

static void
token_cache_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == registry_relid)
	{
		flush_pending = true;
		/* a dropped and re-created extension gets a new registry */
		check_registry = true;
	}
}

static void
token_cache_flush(void)
{
	elog(DEBUG2, "pixltoken: token cache flushed");
	if (cache_cxt != NULL)
		MemoryContextReset(cache_cxt);
	token_cache = NULL;			/* it lived in cache_cxt */
	flush_pending = false;
}

/*
 * Makes room for one entry.  Keys are SHA-256 hashes, so the first entry of
 * a sequential scan is as good a victim as any.
 */
static void
token_cache_evict_one(void)
{
	HASH_SEQ_STATUS scan;
	PixlCachedToken *victim;

	hash_seq_init(&scan, token_cache);
	victim = hash_seq_search(&scan);
	if (victim == NULL)
		return;
	hash_seq_term(&scan);
	pfree(victim->store_id);
	pfree(victim->scopes);
	hash_search(token_cache, victim->hash, HASH_REMOVE, NULL);
}

static void
token_cache_create(void)
{
	HASHCTL		ctl;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext,
										  "pixltoken token cache",
										  ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = PIXL_HASH_LEN;
	ctl.entrysize = sizeof(PixlCachedToken);
	ctl.hcxt = cache_cxt;
	token_cache = hash_create("pixltoken token cache", 256, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Finds the registry in the extension's schema, its owner, and prepares the
 * saved plan that loads one row.  Runs on the first miss of a backend, and
 * after an invalidation only if the registry no longer exists.
 */
static void
resolve_registry(Oid schema)
{
	HeapTuple	tup;
	char	   *query;
	Oid			argtypes[1] = {BYTEAOID};
	const char *nsp;
	SPIPlanPtr	plan;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(token_cache_relcache_callback, (Datum) 0);
		callback_registered = true;
	}

	if (load_plan != NULL)
	{
		SPI_freeplan(load_plan);
		load_plan = NULL;
	}
	registry_relid = InvalidOid;

	nsp = get_namespace_name(schema);
	registry_relid = get_relname_relid(REGISTRY_NAME, schema);
	if (nsp == NULL || !OidIsValid(registry_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s of extension pixltoken does not exist",
						REGISTRY_NAME),
				 errhint("Install the extension with CREATE EXTENSION pixltoken.")));

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(registry_relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", registry_relid);
	registry_owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	registry_schema = schema;

	/*
	 * Everything schema-qualified, operators included: the plan runs as the
	 * owner and must not pick up objects from the caller's search_path.
	 * secret_hash and previous_hash are both UNIQUE, so this is a BitmapOr
	 * of two index probes; the current secret wins the (theoretical) tie.
	 */
	nsp = quote_identifier(nsp);
	query = psprintf("SELECT t.token_id, t.store_id, t.mode, t.scope_bits,"
					 " pg_catalog.int4smaller(t.rate_limit, p.max_rate_limit),"
					 " t.expires_at, t.revoked_at IS NOT NULL,"
					 " t.secret_hash OPERATOR(pg_catalog.<>) $1,"
					 " t.previous_valid_until"
					 " FROM %s.pixl_token_registry t"
					 " JOIN %s.pixl_stores s"
					 " ON s.store_id OPERATOR(pg_catalog.=) t.store_id"
					 " JOIN %s.pixl_plans p"
					 " ON p.plan OPERATOR(pg_catalog.=) s.plan"
					 " WHERE t.secret_hash OPERATOR(pg_catalog.=) $1"
					 " OR t.previous_hash OPERATOR(pg_catalog.=) $1"
					 " ORDER BY 8 LIMIT 1",
					 nsp, nsp, nsp);
	plan = SPI_prepare(query, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	load_plan = plan;
	check_registry = false;
}

/*
 * Reads the row of a hash into *entry; its store id and scopes are
 * allocated in the caller's memory context.  Returns false when no token
 * has this hash.
 */
static bool
load_token(const uint8 *hash, Oid schema, PixlCachedToken *entry)
{
	Oid			save_userid;
	int			save_sec_context;
	bytea	   *param;
	Datum		values[1];
	int			ret;
	bool		found = false;
	MemoryContext caller_cxt = CurrentMemoryContext;

	elog(DEBUG2, "pixltoken: token cache miss, loading from the registry");
	param = (bytea *) palloc(VARHDRSZ + PIXL_HASH_LEN);
	SET_VARSIZE(param, VARHDRSZ + PIXL_HASH_LEN);
	memcpy(VARDATA(param), hash, PIXL_HASH_LEN);
	values[0] = PointerGetDatum(param);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * Run as the registry's owner.  An error unwinds the user id with the
	 * (sub)transaction abort.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	if (!OidIsValid(registry_relid) || schema != registry_schema ||
		load_plan == NULL)
		resolve_registry(schema);
	else if (check_registry)
	{
		/* after an invalidation: one syscache probe, not a catalog scan */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(registry_relid)))
			resolve_registry(schema);
		check_registry = false;
	}

	SetUserIdAndSecContext(registry_owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ret = SPI_execute_snapshot(load_plan, values, NULL,
							   GetLatestSnapshot(), InvalidSnapshot,
							   true, false, 1);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed: %s",
			 SPI_result_code_string(ret));

	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		text	   *t;
		char	   *mode;
		MemoryContext old;

		d = SPI_getbinval(tup, desc, 1, &isnull);
		t = DatumGetTextPP(d);
		if (VARSIZE_ANY_EXHDR(t) != PIXL_TOKEN_ID_LEN)
			elog(ERROR, "invalid token id in %s", REGISTRY_NAME);
		memcpy(entry->token_id, VARDATA_ANY(t), PIXL_TOKEN_ID_LEN);

		mode = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		entry->mode = pixl_parse_mode(mode);
		entry->scope_bits = (PixlScopeBits) DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		entry->rate_limit = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		d = SPI_getbinval(tup, desc, 6, &isnull);
		entry->has_expiry = !isnull;
		entry->expires_at = isnull ? 0 : DatumGetTimestampTz(d);
		entry->revoked = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		entry->is_previous = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		d = SPI_getbinval(tup, desc, 9, &isnull);
		entry->valid_until = isnull ? 0 : DatumGetTimestampTz(d);

		/*
		 * Copied out of SPI's memory, which SPI_finish frees, into the
		 * caller's; the caller copies them into the cache once it has made
		 * room.
		 */
		old = MemoryContextSwitchTo(caller_cxt);
		entry->store_id = DatumGetTextPCopy(SPI_getbinval(tup, desc, 2, &isnull));
		entry->scopes = pixl_scope_array_from_bits(entry->scope_bits);
		MemoryContextSwitchTo(old);
		found = true;
	}

	SPI_finish();
	pfree(param);
	return found;
}

const PixlCachedToken *
pixl_token_cache_lookup(const uint8 *hash, Oid schema)
{
	PixlCachedToken *entry;
	PixlCachedToken loaded;
	bool		found;

	if (flush_pending)
		token_cache_flush();
	if (token_cache == NULL)
		token_cache_create();

	entry = hash_search(token_cache, hash, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	memset(&loaded, 0, sizeof(loaded));
	if (!load_token(hash, schema, &loaded))
		return NULL;

	/*
	 * A message processed during the load set flush_pending: the entry is
	 * still inserted (the caller uses it for this one request, which is
	 * concurrent with that commit) and is flushed before the next lookup.
	 */
	if (hash_get_num_entries(token_cache) >= pixl_token_cache_size)
		token_cache_evict_one();
	entry = hash_search(token_cache, hash, HASH_ENTER, &found);
	memcpy(entry->token_id, loaded.token_id,
		   sizeof(PixlCachedToken) - offsetof(PixlCachedToken, token_id));
	entry->store_id = (text *) MemoryContextAlloc(cache_cxt,
												  VARSIZE(loaded.store_id));
	memcpy(entry->store_id, loaded.store_id, VARSIZE(loaded.store_id));
	entry->scopes = (ArrayType *) MemoryContextAlloc(cache_cxt,
													 VARSIZE(loaded.scopes));
	memcpy(entry->scopes, loaded.scopes, VARSIZE(loaded.scopes));
	pfree(loaded.store_id);
	pfree(loaded.scopes);
	return entry;
}

/*
 * Statement trigger on the registry, stores and plans: any change of them
 * may change what a verification answers, so it invalidates the registry's
 * relcache entry, which every backend's callback above watches.  The message
 * goes out at commit, and is discarded on rollback.
 */
Datum
pixl_invalidate_token_cache(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pixl_invalidate_token_cache: not called by trigger manager");

	relid = get_relname_relid(REGISTRY_NAME,
							  RelationGetNamespace(trigdata->tg_relation));
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	else
		CacheInvalidateRelcache(trigdata->tg_relation);
	PG_RETURN_POINTER(NULL);
}
