/*-------------------------------------------------------------------------
 *
 * verify.c
 *		pixl_verify_token(): the hot path of every API request.
 *
 * The checks run cheapest first, and each answers with a row instead of an
 * error: the format and checksum (no table is touched for garbage), the
 * SHA-256 and the per-backend cache (token_cache.c), revocation, expiry
 * (clock time), the store, the scope (one AND), and last the shared-memory
 * rate limit (rate_limit.c).  Only a scope argument that is not one of the
 * eleven raises: that is a bug of the caller, not of the presented token.
 *
 * Nothing here writes to a table, takes a transaction id or calls a
 * sequence; verifications of an existing token (200, 403, 429) get a
 * request id and a usage event from usage_queue.c.  The secret never leaves
 * this function except as its hash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pixltoken.h"
#include "rate_limit.h"
#include "scopes.h"
#include "token_cache.h"
#include "token_format.h"
#include "token_inval.h"
#include "usage_queue.h"
#include "verify.h"

/* Anything longer than this cannot be a secret: rejected before detoasting. */
#define VERIFY_MAX_TOKEN_BYTES	256

/* Result columns of pixl_verify_token */
enum
{
	COL_STATUS,
	COL_REASON,
	COL_TOKEN_ID,
	COL_STORE_ID,
	COL_MODE,
	COL_SCOPES,
	COL_RATE_LIMIT,
	COL_REMAINING,
	COL_RESET_AT,
	COL_RETRY_AFTER_MS,
	COL_REQUEST_ID,
	VERIFY_NCOLS
};

/* Arguments */
enum
{
	ARG_TOKEN,
	ARG_SCOPE,
	ARG_STORE_ID,
	ARG_METHOD,
	ARG_ENDPOINT,
	ARG_IP
};

/* Built once per backend: the result row type and the extension's schema. */
static TupleDesc verify_desc = NULL;
static Oid	verify_fn_oid = InvalidOid;
static Oid	verify_schema = InvalidOid;

PG_FUNCTION_INFO_V1(pixl_verify_token);

void
pixl_verify_module_init(void)
{
	pixl_token_inval_init();
}

static void
verify_init(FunctionCallInfo fcinfo)
{
	TupleDesc	desc;
	MemoryContext old;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != VERIFY_NCOLS)
		elog(ERROR, "pixl_verify_token must return %d columns", VERIFY_NCOLS);
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (verify_desc != NULL)
		FreeTupleDesc(verify_desc);
	verify_desc = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(old);
	verify_schema = get_func_namespace(fcinfo->flinfo->fn_oid);
	verify_fn_oid = fcinfo->flinfo->fn_oid;
}

/* Copies at most maxbytes-1 bytes of a text argument, cut at a character. */
static void
copy_clipped(FunctionCallInfo fcinfo, int argno, char *dst, int maxbytes)
{
	text	   *t;
	int			len;

	dst[0] = '\0';
	if (PG_ARGISNULL(argno))
		return;
	/* a slice is enough, however long the argument is */
	t = DatumGetTextPSlice(PG_GETARG_DATUM(argno), 0, maxbytes);
	len = VARSIZE_ANY_EXHDR(t);
	len = pg_mbcliplen(VARDATA_ANY(t), len, Min(len, maxbytes - 1));
	memcpy(dst, VARDATA_ANY(t), len);
	dst[len] = '\0';
}

static void
record_usage(FunctionCallInfo fcinfo, int64 request_id, TimestampTz at,
			 const PixlCachedToken *tok, int status)
{
	PixlUsageEvent ev;

	memset(&ev, 0, sizeof(ev));
	ev.request_id = request_id;
	ev.at = at;
	ev.dbid = MyDatabaseId;
	ev.status = (int16) status;
	memcpy(ev.token_id, tok->token_id, PIXL_TOKEN_ID_LEN);
	copy_clipped(fcinfo, ARG_METHOD, ev.method, PIXL_METHOD_MAX);
	copy_clipped(fcinfo, ARG_ENDPOINT, ev.endpoint, PIXL_ENDPOINT_MAX);
	if (!PG_ARGISNULL(ARG_IP))
	{
		inet	   *ip = PG_GETARG_INET_PP(ARG_IP);

		ev.has_ip = true;
		memcpy(&ev.ip, VARDATA_ANY(ip),
			   Min(VARSIZE_ANY_EXHDR(ip), sizeof(inet_struct)));
	}
	pixl_usage_record(&ev);
}

/*
 * The unknown-scope error, without the statement in the server log: the
 * statement may carry the caller's secret as a literal.
 */
static void
report_unknown_scope(text *scope)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		pixl_report_unknown_scope(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->hide_stmt = true;
		ReThrowError(edata);
	}
	PG_END_TRY();
}

Datum
pixl_verify_token(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[VERIFY_NCOLS];
	bool		nulls[VERIFY_NCOLS];
	int			scope_idx = -1;
	int			status;
	const char *reason;
	const PixlCachedToken *tok = NULL;
	MemoryContext old;
	Tuplestorestate *tupstore;

	pixl_require_preload();

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (verify_desc == NULL || verify_fn_oid != fcinfo->flinfo->fn_oid)
		verify_init(fcinfo);

	/* A caller's bug, whatever the token: raise before anything else. */
	if (!PG_ARGISNULL(ARG_SCOPE))
	{
		text	   *scope = PG_GETARG_TEXT_PP(ARG_SCOPE);

		scope_idx = pixl_scope_index(VARDATA_ANY(scope),
									 VARSIZE_ANY_EXHDR(scope));
		if (scope_idx < 0)
			report_unknown_scope(scope);
	}

	memset(nulls, true, sizeof(nulls));

	/* 1. format and checksum, without detoasting anything oversized */
	if (PG_ARGISNULL(ARG_TOKEN))
	{
		status = 401;
		reason = "missing";
	}
	else if (toast_raw_datum_size(PG_GETARG_DATUM(ARG_TOKEN)) >
			 VARHDRSZ + VERIFY_MAX_TOKEN_BYTES)
	{
		status = 401;
		reason = "malformed";
	}
	else
	{
		text	   *token = PG_GETARG_TEXT_PP(ARG_TOKEN);
		const char *p = VARDATA_ANY(token);
		size_t		len = VARSIZE_ANY_EXHDR(token);

		switch (pixl_check_format(p, len))
		{
			case PIXL_FORMAT_MISSING:
				status = 401;
				reason = "missing";
				break;
			case PIXL_FORMAT_MALFORMED:
				status = 401;
				reason = "malformed";
				break;
			case PIXL_FORMAT_TOKEN_ID:
				status = 401;
				reason = "token_id_not_secret";
				break;
			case PIXL_FORMAT_OK:
			default:
				{
					uint8		hash[PIXL_HASH_LEN];

					/* 2. the row, from the cache or the registry */
					pixl_hash_secret(p, len, hash);
					AcceptInvalidationMessages();
					tok = pixl_token_cache_lookup(hash, verify_schema);
					status = 0;
					reason = NULL;
				}
				break;
		}
	}

	if (status == 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		/* 3. checks of the row that end in 401 */
		if (tok == NULL ||
			(tok->is_previous && now >= tok->valid_until))
		{
			status = 401;
			reason = "unknown";
			tok = NULL;
		}
		else if (tok->revoked)
		{
			status = 401;
			reason = "revoked";
		}
		else if (tok->has_expiry && now >= tok->expires_at)
		{
			status = 401;
			reason = "expired";
		}
		if (status == 401 && tok != NULL)
		{
			nulls[COL_TOKEN_ID] = false;
			values[COL_TOKEN_ID] = PointerGetDatum(cstring_to_text_with_len(tok->token_id, PIXL_TOKEN_ID_LEN));
			nulls[COL_STORE_ID] = false;
			values[COL_STORE_ID] = PointerGetDatum(tok->store_id);
		}
	}

	if (status == 0)
	{
		PixlRateKey key;
		PixlRateDecision decision;
		TimestampTz at;
		int64		request_id;

		/* 4. store and scope: 403, still charged to the rate limit */
		status = 200;
		reason = "ok";
		if (!PG_ARGISNULL(ARG_STORE_ID))
		{
			text	   *store = PG_GETARG_TEXT_PP(ARG_STORE_ID);

			if (VARSIZE_ANY_EXHDR(store) != VARSIZE_ANY_EXHDR(tok->store_id) ||
				memcmp(VARDATA_ANY(store), VARDATA_ANY(tok->store_id),
					   VARSIZE_ANY_EXHDR(store)) != 0)
			{
				status = 403;
				reason = "wrong_store";
			}
		}
		if (status == 200 && scope_idx >= 0 &&
			(tok->scope_bits & pixl_scope_accepting_mask(scope_idx)) == 0)
		{
			status = 403;
			reason = "insufficient_scope";
		}

		/* 5. the rolling minute, at the request's own time */
		request_id = pixl_next_request_id(&at);
		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		memcpy(key.token_id, tok->token_id, PIXL_TOKEN_ID_LEN);
		pixl_rate_limit_check(&key, tok->rate_limit, at,
							  status == 200 ? PIXL_RATE_ADMIT : PIXL_RATE_CHARGE,
							  &decision);
		if (!decision.accepted)
		{
			status = 429;
			reason = "rate_limited";
			nulls[COL_RETRY_AFTER_MS] = false;
			values[COL_RETRY_AFTER_MS] = Int32GetDatum(decision.retry_after_ms);
		}

		record_usage(fcinfo, request_id, at, tok, status);

		nulls[COL_TOKEN_ID] = false;
		values[COL_TOKEN_ID] = PointerGetDatum(cstring_to_text_with_len(tok->token_id, PIXL_TOKEN_ID_LEN));
		nulls[COL_STORE_ID] = false;
		values[COL_STORE_ID] = PointerGetDatum(tok->store_id);
		nulls[COL_MODE] = false;
		values[COL_MODE] = CStringGetTextDatum(pixl_mode_name(tok->mode));
		nulls[COL_SCOPES] = false;
		values[COL_SCOPES] = PointerGetDatum(tok->scopes);
		nulls[COL_RATE_LIMIT] = false;
		values[COL_RATE_LIMIT] = Int32GetDatum(tok->rate_limit);
		nulls[COL_REMAINING] = false;
		values[COL_REMAINING] = Int32GetDatum(decision.remaining);
		nulls[COL_RESET_AT] = false;
		values[COL_RESET_AT] = TimestampTzGetDatum(decision.reset_at);
		nulls[COL_REQUEST_ID] = false;
		values[COL_REQUEST_ID] = Int64GetDatum(request_id);
	}

	nulls[COL_STATUS] = false;
	values[COL_STATUS] = Int32GetDatum(status);
	nulls[COL_REASON] = false;
	values[COL_REASON] = CStringGetTextDatum(reason);

	/* one row, materialized; the executor frees the descriptor we hand it */
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupstore = tuplestore_begin_heap(false, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tupstore;
	rsinfo->setDesc = CreateTupleDescCopy(verify_desc);
	MemoryContextSwitchTo(old);
	tuplestore_putvalues(tupstore, verify_desc, values, nulls);

	return (Datum) 0;
}
