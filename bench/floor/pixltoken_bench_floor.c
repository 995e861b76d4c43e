/*-------------------------------------------------------------------------
 *
 * pixltoken_bench_floor.c
 *		The call-shape floor of bench/run.sh: what PostgreSQL itself costs
 *		for `SELECT status FROM pixl_verify_request(...)`.
 *
 * pixl_bench_floor() has pixl_verify_request's signature and result row (the
 * SQL script copies them from the installed function) and returns one row,
 * status 200, the way pixl_verify_request does (materialized, result
 * descriptor resolved once per backend).  pixl_bench_floor_lookup() adds the
 * work a warm verification cannot avoid: the SHA-256 of the token (with a
 * digest context kept per backend, floor_sha256) and one probe of a
 * backend-local hash table keyed by it (entered on first sight, so after
 * one pass over the tokens every probe is a hit).  Nothing else:
 * no argument checks, no rate limit, no usage event.
 *
 * Built for the benchmark only (bench/floor/Makefile); never installed by
 * the extension.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#ifdef USE_OPENSSL
#include <openssl/evp.h>
#endif

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(pixl_bench_floor);
PG_FUNCTION_INFO_V1(pixl_bench_floor_lookup);

/* Result descriptors, resolved once per backend and function (as verify.c does). */
#define FLOOR_MAX_FUNCS 4
static Oid	desc_fn[FLOOR_MAX_FUNCS];
static TupleDesc desc_of[FLOOR_MAX_FUNCS];

/* An entry about the size of a cached token row's fixed part. */
typedef struct FloorEntry
{
	uint8		hash[PG_SHA256_DIGEST_LENGTH];
	int32		rate_limit;
	int64		hits;
	char		store_id[64];
} FloorEntry;

static HTAB *floor_cache = NULL;

static TupleDesc
floor_desc(FunctionCallInfo fcinfo)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	TupleDesc	desc;
	MemoryContext old;
	int			i;

	for (i = 0; i < FLOOR_MAX_FUNCS && desc_fn[i] != InvalidOid; i++)
		if (desc_fn[i] == fn)
			return desc_of[i];
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (i == FLOOR_MAX_FUNCS)
		return desc;			/* more functions than slots: resolve per call */
	old = MemoryContextSwitchTo(TopMemoryContext);
	desc_of[i] = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(old);
	desc_fn[i] = fn;
	return desc_of[i];
}

/* One row: status 200, reason 'ok', plausible values of the other simple types. */
static Datum
floor_return(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	Tuplestorestate *tupstore;
	MemoryContext old;
	int			i;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	desc = floor_desc(fcinfo);
	values = palloc(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		nulls[i] = false;
		switch (att->atttypid)
		{
			case INT4OID:
				values[i] = Int32GetDatum(i == 0 ? 200 : 0);
				break;
			case INT8OID:
				values[i] = Int64GetDatum(0);
				break;
			case BOOLOID:
				values[i] = BoolGetDatum(false);
				break;
			case TEXTOID:
				values[i] = CStringGetTextDatum(i == 1 ? "ok" : "floor");
				break;
			case TIMESTAMPTZOID:
				values[i] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
				break;
			default:
				nulls[i] = true;
				values[i] = (Datum) 0;
				break;
		}
	}

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupstore = tuplestore_begin_heap(false, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tupstore;
	rsinfo->setDesc = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(old);
	tuplestore_putvalues(tupstore, desc, values, nulls);
	return (Datum) 0;
}

Datum
pixl_bench_floor(PG_FUNCTION_ARGS)
{
	return floor_return(fcinfo);
}

/*
 * The SHA-256 as cheaply as it can be had: with OpenSSL, one digest
 * context per backend and the algorithm fetched once (what pixltoken's
 * token_format.c does; pg_cryptohash sets a context up on every call),
 * else PostgreSQL's own implementation, which has no set-up.
 */
static void
floor_sha256(const uint8 *data, size_t len, uint8 *out)
{
#ifdef USE_OPENSSL
	static EVP_MD_CTX *ctx = NULL;
	static EVP_MD *md = NULL;
	unsigned int outlen;

	if (ctx == NULL)
	{
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
		ctx = EVP_MD_CTX_new();
		if (md == NULL || ctx == NULL)
			elog(ERROR, "could not set up SHA-256");
	}
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
		EVP_DigestUpdate(ctx, data, len) != 1 ||
		EVP_DigestFinal_ex(ctx, out, &outlen) != 1)
		elog(ERROR, "could not compute SHA-256 hash");
#else
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, data, len) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
	{
		pg_cryptohash_free(ctx);
		elog(ERROR, "could not compute SHA-256 hash");
	}
	pg_cryptohash_free(ctx);
#endif
}

Datum
pixl_bench_floor_lookup(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0))
	{
		text	   *token = PG_GETARG_TEXT_PP(0);
		uint8		hash[PG_SHA256_DIGEST_LENGTH];
		FloorEntry *entry;
		bool		found;

		floor_sha256((const uint8 *) VARDATA_ANY(token),
					 VARSIZE_ANY_EXHDR(token), hash);

		if (floor_cache == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = PG_SHA256_DIGEST_LENGTH;
			ctl.entrysize = sizeof(FloorEntry);
			ctl.hcxt = TopMemoryContext;
			floor_cache = hash_create("pixltoken bench floor", 256, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		entry = hash_search(floor_cache, hash, HASH_ENTER, &found);
		if (!found)
		{
			entry->rate_limit = 1000;
			entry->hits = 0;
			strlcpy(entry->store_id, "floor", sizeof(entry->store_id));
		}
		entry->hits++;
	}
	return floor_return(fcinfo);
}
