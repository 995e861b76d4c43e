/*-------------------------------------------------------------------------
 *
 * token_cache.c
 *		Per-backend cache of token rows: loaded by direct index probes,
 *		evicted token by token at commit (token_inval.c).
 *
 * Verification looks a secret's SHA-256 up in a backend-local hash table.
 * On a miss the row is read without SPI or the executor: one probe of the
 * registry's unique index on secret_hash (then, if nothing, on
 * previous_hash), a heap fetch under a fresh latest snapshot (not the
 * caller's transaction snapshot: a verification inside a long or repeatable
 * read transaction must still see a revocation that committed a moment
 * ago), and one probe each of the primary keys of pixl_stores and
 * pixl_plans for the plan's maximum rate limit (and, from 1.2 on, the
 * allowances: the plan's period_quota and quota_counts, the store's
 * billing_day and insecure_transport_action, the token's own period_quota;
 * a change of any of them fires
 * the same row triggers, so it evicts at commit like a plan's rate cap).
 * Relations are found by name in the extension's schema through the
 * catalog caches, columns by name (so one library serves the 1.0, 1.1 and
 * 1.2 layouts), and nothing
 * depends on the caller's search_path or privileges: no SQL runs at all.
 *
 * Invalidation.  Row triggers on the registry, stores and plans queue what
 * changed (pixl_token_cache_row_changed); token_inval.c publishes it at
 * commit and every lookup starts by catching up with what was published:
 * the changed secrets are evicted, a store's tokens on a store's plan
 * change, a plan's tokens on a plan edit, everything on TRUNCATE or when the
 * ring overflowed.  See token_inval.c for why this is exact at commit time.
 *
 * The triggers also send a relcache invalidation of the registry.  On a
 * primary it only makes us look up the relations again at the next miss (an
 * ALTER EXTENSION UPDATE adds columns, a re-created extension has new
 * relations); on a hot standby, which never sees the shared-memory ring, it
 * is the only news of a change and flushes the whole cache.
 *
 * Unknown hashes are not cached: garbage with a valid checksum costs one
 * index probe, and cannot fill the cache.  The caller checks the secret's
 * checksum only between a miss (pixl_token_cache_find) and the load
 * (pixl_token_cache_load), so every cached hash is that of a secret with a
 * valid checksum (verify.c says why a hit then needs no checksum).
 *
 * Links.  An entry also remembers where the shared-memory steps of its
 * last verification found the token's rate-limit slot (a slot index in
 * rate_key, rate_limit.c) and its usage count entry (usage_link,
 * usage_aggregate.c), so that a hit costs one hash lookup: the owners of
 * those tables check such a link under their own locks, by the key stored
 * in the slot or entry, and fall back to their lookup when it is stale.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/scopes.h"
#include "common/token_format.h"
#include "verify/token_cache.h"
#include "verify/token_inval.h"

#define REGISTRY_NAME	"pixl_token_registry"
#define STORES_NAME		"pixl_stores"
#define PLANS_NAME		"pixl_plans"

/*
 * The cache holds at most pixltoken.token_cache_size entries.  Past that,
 * one entry is evicted per insertion, so a backend that sees more tokens
 * than it can hold still hits for the ones it keeps.
 */
static MemoryContext cache_cxt = NULL;
static MemoryContext load_cxt = NULL;
static HTAB *token_cache = NULL;
static bool flush_pending = false;
static bool cached_as_standby = false;	/* looked up during recovery */
static uint64 seen_generation = 0;
static bool seen_valid = false;

/* pixltoken.token_cache_size */
static int	pixl_token_cache_size = 16384;

/* Counters of pixl_cache_stats(), this backend only. */
static int64 stat_hits = 0;
static int64 stat_misses = 0;
static int64 stat_evictions = 0;
static int64 stat_flushes = 0;

/* Where the rows are: resolved at the first miss, again after a change. */
typedef struct RegistryInfo
{
	bool		valid;
	Oid			schema;
	Oid			registry;
	Oid			secret_idx;
	Oid			previous_idx;
	Oid			stores;
	Oid			stores_idx;
	Oid			plans;
	Oid			plans_idx;
	AttrNumber	token_id;
	AttrNumber	store_id;
	AttrNumber	mode;
	AttrNumber	scope_bits;
	AttrNumber	rate_limit;
	AttrNumber	expires_at;
	AttrNumber	revoked_at;
	AttrNumber	previous_valid_until;
	AttrNumber	allowed_ips;	/* 1.1 columns: InvalidAttrNumber in 1.0 */
	AttrNumber	metadata;
	AttrNumber	disabled_at;
	AttrNumber	disabled_reason;
	AttrNumber	revoked_reason;
	AttrNumber	store_plan;
	AttrNumber	plan_max;
	AttrNumber	token_quota;	/* 1.2 columns: InvalidAttrNumber before */
	AttrNumber	billing_day;
	AttrNumber	insecure_action;
	AttrNumber	plan_quota;
	AttrNumber	plan_quota_counts;
} RegistryInfo;

static RegistryInfo info;
static bool callback_registered = false;

void
pixl_token_cache_init(void)
{
	DefineCustomIntVariable("pixltoken.token_cache_size",
							"Tokens each backend keeps in its verification cache.",
							"About 300 bytes each; past this, one entry is evicted per new token.",
							&pixl_token_cache_size,
							16384, 16, 10000000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(pixl_invalidate_token_cache);
PG_FUNCTION_INFO_V1(pixl_token_cache_row_changed);
PG_FUNCTION_INFO_V1(pixl_cache_stats);

static void
free_entry_parts(PixlCachedToken *e)
{
	if (e->store_id)
		pfree(e->store_id);
	if (e->scopes)
		pfree(e->scopes);
	if (e->metadata)
		pfree(e->metadata);
	if (e->allowed_ips)
		pfree(e->allowed_ips);
}

static void
token_cache_flush(void)
{
	if (token_cache != NULL && hash_get_num_entries(token_cache) > 0)
	{
		elog(DEBUG2, "pixltoken: token cache flushed");
		stat_flushes++;
	}
	if (cache_cxt != NULL)
		MemoryContextReset(cache_cxt);
	token_cache = NULL;			/* it lived in cache_cxt */
	flush_pending = false;
}

static void
evict_entry(PixlCachedToken *e)
{
	uint8		key[PIXL_HASH_LEN];

	memcpy(key, e->hash, PIXL_HASH_LEN);
	free_entry_parts(e);
	hash_search(token_cache, key, HASH_REMOVE, NULL);
	stat_evictions++;
}

/* token_inval.c's callback: one published (or own) change. */
static void
token_cache_apply(const PixlInvalItem *item)
{
	if (item->dbid != MyDatabaseId)
		return;
	if (item->kind == PIXL_INVAL_ALL)
	{
		if (token_cache != NULL && hash_get_num_entries(token_cache) > 0)
			token_cache_flush();
		return;
	}
	if (token_cache == NULL)
		return;
	if (item->kind == PIXL_INVAL_SECRET)
	{
		PixlCachedToken *e = hash_search(token_cache, item->key, HASH_FIND, NULL);

		if (e != NULL)
		{
			elog(DEBUG2, "pixltoken: token cache entry evicted");
			evict_entry(e);
		}
	}
	else
	{
		HASH_SEQ_STATUS scan;
		PixlCachedToken *e;
		uint32		h;

		memcpy(&h, item->key, sizeof(h));
		hash_seq_init(&scan, token_cache);
		while ((e = hash_seq_search(&scan)) != NULL)
		{
			if ((item->kind == PIXL_INVAL_STORE && e->store_hash == h) ||
				(item->kind == PIXL_INVAL_PLAN && e->plan_hash == h))
				evict_entry(e);
		}
	}
}

static void
token_cache_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == info.registry)
	{
		/* look the relations and columns up again at the next miss */
		info.valid = false;
		/* a standby learns of changes only this way */
		if (RecoveryInProgress())
			flush_pending = true;
	}
	/* COMMIT PREPARED of a transaction that changed tokens (token_inval.c) */
	if (relid == InvalidOid || relid == info.plans)
		flush_pending = true;
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
	evict_entry(victim);
}

/*
 * The table's hash of a key: its first four bytes.  A key is a SHA-256, so
 * they are as uniform as any hash of it would be, and nobody can aim keys
 * at one bucket: only hashes of real tokens' secrets, made by
 * pg_strong_random(), are ever entered (unknown hashes are not cached).
 */
static uint32
secret_hash_hash(const void *key, Size keysize)
{
	uint32		h;

	memcpy(&h, key, sizeof(h));
	return h;
}

static void
token_cache_create(void)
{
	HASHCTL		ctl;

	if (cache_cxt == NULL)
	{
		cache_cxt = AllocSetContextCreate(TopMemoryContext,
										  "pixltoken token cache",
										  ALLOCSET_DEFAULT_SIZES);
		load_cxt = AllocSetContextCreate(TopMemoryContext,
										 "pixltoken token load",
										 ALLOCSET_SMALL_SIZES);
		pixl_token_inval_set_apply(token_cache_apply);
	}
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(token_cache_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	ctl.keysize = PIXL_HASH_LEN;
	ctl.entrysize = sizeof(PixlCachedToken);
	ctl.hash = secret_hash_hash;
	ctl.hcxt = cache_cxt;
	token_cache = hash_create("pixltoken token cache", 256, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_CONTEXT);
}

static Oid
relation_in_schema(const char *name, Oid schema)
{
	Oid			relid = get_relname_relid(name, schema);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s of extension pixltoken does not exist", name),
				 errhint("Install the extension with CREATE EXTENSION pixltoken.")));
	return relid;
}

static AttrNumber
column(Oid relid, const char *name, bool required)
{
	AttrNumber	att = get_attnum(relid, name);

	if (att == InvalidAttrNumber && required)
		elog(ERROR, "column %s of pixltoken's tables does not exist", name);
	return att;
}

static bool
index_is_btree(Oid indexoid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(indexoid));
	bool		result;

	if (!HeapTupleIsValid(tup))
		return false;
	result = ((Form_pg_class) GETSTRUCT(tup))->relam == BTREE_AM_OID;
	ReleaseSysCache(tup);
	return result;
}

/* The valid, unique, non-partial single-column btree index on att. */
static Oid
unique_index_on(Oid relid, AttrNumber att)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			result = InvalidOid;

	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		Form_pg_index idx;

		if (!HeapTupleIsValid(tup))
			continue;
		idx = (Form_pg_index) GETSTRUCT(tup);
		if (idx->indisunique && idx->indisvalid && idx->indnatts == 1 &&
			idx->indkey.values[0] == att &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			index_is_btree(indexoid))
			result = indexoid;
		ReleaseSysCache(tup);
		if (OidIsValid(result))
			break;
	}
	list_free(indexes);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(result))
		elog(ERROR, "pixltoken: no unique index on column %d of relation %u",
			 att, relid);
	return result;
}

static void
resolve_registry(Oid schema)
{
	RegistryInfo r;

	memset(&r, 0, sizeof(r));
	r.schema = schema;
	r.registry = relation_in_schema(REGISTRY_NAME, schema);
	r.stores = relation_in_schema(STORES_NAME, schema);
	r.plans = relation_in_schema(PLANS_NAME, schema);

	r.token_id = column(r.registry, "token_id", true);
	r.store_id = column(r.registry, "store_id", true);
	r.mode = column(r.registry, "mode", true);
	r.scope_bits = column(r.registry, "scope_bits", true);
	r.rate_limit = column(r.registry, "rate_limit", true);
	r.expires_at = column(r.registry, "expires_at", true);
	r.revoked_at = column(r.registry, "revoked_at", true);
	r.previous_valid_until = column(r.registry, "previous_valid_until", true);
	r.allowed_ips = column(r.registry, "allowed_ips", false);
	r.metadata = column(r.registry, "metadata", false);
	r.disabled_at = column(r.registry, "disabled_at", false);
	r.disabled_reason = column(r.registry, "disabled_reason", false);
	r.revoked_reason = column(r.registry, "revoked_reason", false);
	r.store_plan = column(r.stores, "plan", true);
	r.plan_max = column(r.plans, "max_rate_limit", true);
	r.token_quota = column(r.registry, "period_quota", false);
	r.billing_day = column(r.stores, "billing_day", false);
	r.insecure_action = column(r.stores, "insecure_transport_action", false);
	r.plan_quota = column(r.plans, "period_quota", false);
	r.plan_quota_counts = column(r.plans, "quota_counts", false);

	r.secret_idx = unique_index_on(r.registry, column(r.registry, "secret_hash", true));
	r.previous_idx = unique_index_on(r.registry, column(r.registry, "previous_hash", true));
	r.stores_idx = unique_index_on(r.stores, column(r.stores, "store_id", true));
	r.plans_idx = unique_index_on(r.plans, column(r.plans, "plan", true));

	r.valid = true;
	info = r;
}

/* One equality probe of a unique index; the row (if any) lands in slot. */
static bool
probe(Relation heap, Oid indexoid, RegProcedure eq, Datum key,
	  Snapshot snap, TupleTableSlot *slot)
{
	Relation	index = index_open(indexoid, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData skey;
	bool		found;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, eq, key);
	skey.sk_collation = index->rd_indcollation[0];
	scan = index_beginscan(heap, index, snap, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	return found;
}

static Datum
get_att(TupleTableSlot *slot, AttrNumber att, bool *isnull)
{
	if (att == InvalidAttrNumber)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return slot_getattr(slot, att, isnull);
}

/* The allowed_ips cidr[] as a contiguous array of full-header inets. */
static void
decode_allowed_ips(Datum d, PixlCachedToken *e)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *enulls;
	int			n;
	int			k = 0;

	deconstruct_array(arr, CIDROID, -1, false, TYPALIGN_INT,
					  &elems, &enulls, &n);
	e->allowed_ips = palloc0(Max(n, 1) * sizeof(inet));
	for (int i = 0; i < n; i++)
	{
		inet	   *src;
		int			len;

		if (enulls[i])
			continue;
		src = DatumGetInetPP(elems[i]);
		len = Min(VARSIZE_ANY_EXHDR(src), sizeof(inet_struct));
		memcpy(&e->allowed_ips[k].inet_data, VARDATA_ANY(src), len);
		SET_VARSIZE(&e->allowed_ips[k], VARHDRSZ + len);
		k++;
	}
	e->n_allowed_ips = k;
}

/*
 * Reads the row of a hash into *entry (pointers allocated in load_cxt).
 * Returns false when no token has this hash.
 */
static bool
load_token(const uint8 *hash, PixlCachedToken *e)
{
	Snapshot	snap;
	Relation	rel;
	TupleTableSlot *slot;
	bytea	   *param;
	bool		found;
	bool		isnull;
	Datum		d;
	text	   *t = NULL;
	int			limit = 0;
	int64		token_quota = 0;
	int64		plan_quota = 0;
	int			billing_day = 1;
	int			counts = PIXL_QUOTA_COUNTS_ALL;

	elog(DEBUG2, "pixltoken: token cache miss, loading from the registry");
	param = (bytea *) palloc(VARHDRSZ + PIXL_HASH_LEN);
	SET_VARSIZE(param, VARHDRSZ + PIXL_HASH_LEN);
	memcpy(VARDATA(param), hash, PIXL_HASH_LEN);

	snap = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snap);	/* for detoasting metadata */

	rel = table_open(info.registry, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	e->is_previous = false;
	found = probe(rel, info.secret_idx, F_BYTEAEQ, PointerGetDatum(param),
				  snap, slot);
	if (!found)
	{
		found = probe(rel, info.previous_idx, F_BYTEAEQ,
					  PointerGetDatum(param), snap, slot);
		e->is_previous = found;
	}
	if (found)
	{
		char	   *mode;

		t = DatumGetTextPP(slot_getattr(slot, info.token_id, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(t) != PIXL_TOKEN_ID_LEN)
			elog(ERROR, "invalid token id in %s", REGISTRY_NAME);
		memcpy(e->token_id, VARDATA_ANY(t), PIXL_TOKEN_ID_LEN);
		e->store_id = DatumGetTextPCopy(slot_getattr(slot, info.store_id, &isnull));
		mode = TextDatumGetCString(slot_getattr(slot, info.mode, &isnull));
		e->mode = pixl_parse_mode(mode);
		e->scope_bits = (PixlScopeBits) DatumGetInt32(slot_getattr(slot, info.scope_bits, &isnull));
		e->rate_limit = DatumGetInt32(slot_getattr(slot, info.rate_limit, &isnull));
		d = slot_getattr(slot, info.expires_at, &isnull);
		e->has_expiry = !isnull;
		e->expires_at = isnull ? 0 : DatumGetTimestampTz(d);
		(void) slot_getattr(slot, info.revoked_at, &isnull);
		e->revoked = !isnull;
		d = slot_getattr(slot, info.previous_valid_until, &isnull);
		e->valid_until = isnull ? 0 : DatumGetTimestampTz(d);
		(void) get_att(slot, info.disabled_at, &isnull);
		e->disabled = !isnull;
		d = get_att(slot, info.disabled_reason, &isnull);
		e->disabled_inactive = e->disabled && !isnull &&
			strcmp(TextDatumGetCString(d), "inactive") == 0;
		d = get_att(slot, info.revoked_reason, &isnull);
		e->exposed = e->revoked && !isnull &&
			strcmp(TextDatumGetCString(d), "exposed") == 0;
		d = get_att(slot, info.allowed_ips, &isnull);
		e->n_allowed_ips = -1;
		e->allowed_ips = NULL;
		if (!isnull)
			decode_allowed_ips(d, e);
		d = get_att(slot, info.metadata, &isnull);
		e->metadata = isnull ? NULL : DatumGetJsonbPCopy(d);
		d = get_att(slot, info.token_quota, &isnull);
		token_quota = isnull ? 0 : DatumGetInt64(d);
		e->scopes = pixl_scope_array_from_bits(e->scope_bits);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);

	if (found)
	{
		/* the store's plan, and that plan's maximum */
		rel = table_open(info.stores, AccessShareLock);
		slot = table_slot_create(rel, NULL);
		found = probe(rel, info.stores_idx, F_TEXTEQ,
					  PointerGetDatum(e->store_id), snap, slot);
		t = found ? DatumGetTextPCopy(slot_getattr(slot, info.store_plan, &isnull)) : NULL;
		if (found)
		{
			d = get_att(slot, info.billing_day, &isnull);
			billing_day = isnull ? 1 : DatumGetInt16(d);
			d = get_att(slot, info.insecure_action, &isnull);
			e->insecure_notify = !isnull &&
				strcmp(TextDatumGetCString(d), "notify") == 0;
		}
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, AccessShareLock);
	}
	if (found)
	{
		rel = table_open(info.plans, AccessShareLock);
		slot = table_slot_create(rel, NULL);
		found = probe(rel, info.plans_idx, F_TEXTEQ, PointerGetDatum(t),
					  snap, slot);
		limit = found ? DatumGetInt32(slot_getattr(slot, info.plan_max, &isnull)) : 0;
		if (found)
		{
			d = get_att(slot, info.plan_quota, &isnull);
			plan_quota = isnull ? 0 : DatumGetInt64(d);
			d = get_att(slot, info.plan_quota_counts, &isnull);
			if (!isnull)
			{
				char	   *c = TextDatumGetCString(d);

				if (strcmp(c, "2xx") == 0)
					counts = PIXL_QUOTA_COUNTS_2XX;
				else if (strcmp(c, "2xx_3xx") == 0)
					counts = PIXL_QUOTA_COUNTS_2XX_3XX;
			}
		}
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, AccessShareLock);
		if (found)
		{
			e->rate_limit = Min(e->rate_limit, limit);
			e->store_hash = pixl_inval_name_hash(VARDATA_ANY(e->store_id),
												 VARSIZE_ANY_EXHDR(e->store_id));
			e->plan_hash = pixl_inval_name_hash(VARDATA_ANY(t),
												VARSIZE_ANY_EXHDR(t));
			pixl_rate_key_init(&e->rate_key, MyDatabaseId, e->token_id,
							   VARDATA_ANY(e->store_id),
							   VARSIZE_ANY_EXHDR(e->store_id));
			pixl_quota_key_init(&e->quota_key, MyDatabaseId, e->token_id,
								e->rate_key.store_key, plan_quota,
								token_quota, billing_day, counts);
		}
	}

	PopActiveSnapshot();
	UnregisterSnapshot(snap);
	return found;
}

static void *
copy_into_cache(const void *src, Size size)
{
	void	   *dst;

	if (src == NULL)
		return NULL;
	dst = MemoryContextAlloc(cache_cxt, size);
	memcpy(dst, src, size);
	return dst;
}

PixlCachedToken *
pixl_token_cache_find(const uint8 *hash)
{
	PixlCachedToken *entry;

	if (!seen_valid)
	{
		/* a backend's first lookup: an empty cache has nothing to evict */
		seen_generation = pixl_inval_generation();
		seen_valid = true;
	}

	/*
	 * Promoted since this backend cached as a standby: a change replayed
	 * just before may reach us as a relcache invalidation only now, when it
	 * no longer flushes (the callback checks RecoveryInProgress()), and the
	 * ring never carries it.  Flush once.  (Promotion has been seen to reset
	 * every backend's caches anyway; this does not depend on it.)
	 */
	if (cached_as_standby != RecoveryInProgress())
	{
		if (cached_as_standby)
			flush_pending = true;
		cached_as_standby = !cached_as_standby;
	}
	/* every change published so far; the load below reads after this */
	pixl_inval_catch_up(&seen_generation);
	if (flush_pending)
		token_cache_flush();
	if (token_cache == NULL)
		token_cache_create();

	entry = hash_search(token_cache, hash, HASH_FIND, NULL);
	if (entry != NULL)
		stat_hits++;
	return entry;
}

PixlCachedToken *
pixl_token_cache_load(const uint8 *hash, Oid schema)
{
	PixlCachedToken *entry;
	PixlCachedToken loaded;
	MemoryContext old;
	bool		found;

	Assert(token_cache != NULL);
	stat_misses++;

	if (!info.valid || info.schema != schema)
		resolve_registry(schema);

	MemoryContextReset(load_cxt);
	old = MemoryContextSwitchTo(load_cxt);
	memset(&loaded, 0, sizeof(loaded));
	found = load_token(hash, &loaded);
	MemoryContextSwitchTo(old);
	if (!found)
		return NULL;

	/*
	 * A change committed during the load is in the ring beyond
	 * seen_generation: the next lookup evicts this entry if it is stale.
	 */
	if (hash_get_num_entries(token_cache) >= pixl_token_cache_size)
		token_cache_evict_one();
	entry = hash_search(token_cache, hash, HASH_ENTER, &found);
	memcpy(entry->token_id, loaded.token_id,
		   sizeof(PixlCachedToken) - offsetof(PixlCachedToken, token_id));
	entry->usage_link = NULL;	/* found by the first count */
	entry->store_id = copy_into_cache(loaded.store_id, VARSIZE(loaded.store_id));
	entry->scopes = copy_into_cache(loaded.scopes, VARSIZE(loaded.scopes));
	entry->metadata = loaded.metadata ?
		copy_into_cache(loaded.metadata, VARSIZE(loaded.metadata)) : NULL;
	entry->allowed_ips = loaded.allowed_ips ?
		copy_into_cache(loaded.allowed_ips,
						Max(loaded.n_allowed_ips, 1) * sizeof(inet)) : NULL;
	MemoryContextReset(load_cxt);
	return entry;
}

/*
 * The registry's relcache invalidation, for hot standbys (see above); and
 * the marker a prepared transaction would send (pixl_plans).
 */
static void
invalidate_registry_relcache(Relation rel)
{
	Oid			relid = get_relname_relid(REGISTRY_NAME,
										  RelationGetNamespace(rel));

	pixl_inval_set_prepare_marker(get_relname_relid(PLANS_NAME,
													RelationGetNamespace(rel)));
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	else
		CacheInvalidateRelcache(rel);
}

/*
 * 1.0's statement trigger (kept for a 1.0 schema on a 1.1 library): every
 * change evicts every cached token of the database, at commit.
 */
Datum
pixl_invalidate_token_cache(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pixl_invalidate_token_cache: not called by trigger manager");
	invalidate_registry_relcache(trigdata->tg_relation);
	pixl_inval_queue(PIXL_INVAL_ALL, NULL, 0);
	PG_RETURN_POINTER(NULL);
}

static void
queue_name(PixlInvalKind kind, HeapTuple tup, TupleDesc desc, const char *col)
{
	int			att = SPI_fnumber(desc, col);
	bool		isnull;
	Datum		d;
	text	   *t;
	uint32		h;

	if (att <= 0)
	{
		pixl_inval_queue(PIXL_INVAL_ALL, NULL, 0);
		return;
	}
	d = heap_getattr(tup, att, desc, &isnull);
	if (isnull)
		return;
	t = DatumGetTextPP(d);
	h = pixl_inval_name_hash(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	pixl_inval_queue(kind, (const uint8 *) &h, sizeof(h));
}

static void
queue_hash(HeapTuple tup, TupleDesc desc, const char *col, bool local)
{
	int			att = SPI_fnumber(desc, col);
	bool		isnull;
	Datum		d;
	bytea	   *b;

	if (att <= 0)
	{
		pixl_inval_queue(PIXL_INVAL_ALL, NULL, 0);
		return;
	}
	d = heap_getattr(tup, att, desc, &isnull);
	if (isnull)
		return;
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != PIXL_HASH_LEN)
		return;
	if (local)
		pixl_inval_queue_local((const uint8 *) VARDATA_ANY(b));
	else
		pixl_inval_queue(PIXL_INVAL_SECRET, (const uint8 *) VARDATA_ANY(b),
						 PIXL_HASH_LEN);
}

/*
 * 1.1's trigger: AFTER UPDATE OR DELETE FOR EACH ROW on the registry
 * (argument 'token', and AFTER INSERT), pixl_stores ('store') and
 * pixl_plans ('plan'), and AFTER TRUNCATE FOR EACH STATEMENT on all three.
 * Queues what the old row named: its secret hashes, its store, its plan.
 * A new secret (insert, rotation) is queued only locally: no other backend
 * can have cached it, but this one may have, until the transaction aborts.
 */
Datum
pixl_token_cache_row_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pixl_token_cache_row_changed: not called by trigger manager");
	invalidate_registry_relcache(td->tg_relation);
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		td->tg_trigger->tgnargs < 1)
	{
		pixl_inval_queue(PIXL_INVAL_ALL, NULL, 0);
		PG_RETURN_POINTER(NULL);
	}
	desc = RelationGetDescr(td->tg_relation);
	what = td->tg_trigger->tgargs[0];
	if (strcmp(what, "token") == 0)
	{
		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			queue_hash(td->tg_trigtuple, desc, "secret_hash", true);
		else
		{
			queue_hash(td->tg_trigtuple, desc, "secret_hash", false);
			queue_hash(td->tg_trigtuple, desc, "previous_hash", false);
		}
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
			queue_hash(td->tg_newtuple, desc, "secret_hash", true);
	}
	else if (strcmp(what, "store") == 0)
		queue_name(PIXL_INVAL_STORE, td->tg_trigtuple, desc, "store_id");
	else if (strcmp(what, "plan") == 0)
		queue_name(PIXL_INVAL_PLAN, td->tg_trigtuple, desc, "plan");
	else
		pixl_inval_queue(PIXL_INVAL_ALL, NULL, 0);
	PG_RETURN_POINTER(NULL);
}

/* This backend's cache counters (a monitoring and test aid). */
Datum
pixl_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != 6)
		elog(ERROR, "pixl_cache_stats must return 6 columns");
	values[0] = Int64GetDatum(stat_hits);
	values[1] = Int64GetDatum(stat_misses);
	values[2] = Int64GetDatum(stat_evictions);
	values[3] = Int64GetDatum(stat_flushes);
	values[4] = Int64GetDatum(token_cache ? hash_get_num_entries(token_cache) : 0);
	values[5] = Int64GetDatum((int64) pixl_inval_generation());
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
