/*-------------------------------------------------------------------------
 *
 * usage_sql.c
 *		SQL entry points of the usage pipeline: pixl_log_response(),
 *		pixl_log_responses() and pixl_stats().
 *
 * Versioned entry points (pg_stat_statements style): the 1.0 SQL
 * definitions keep their C symbols (pixl_log_response takes a bigint id,
 * pixl_stats returns 12 columns); 1.1 adds pixl_log_response_1_1 (text id),
 * pixl_log_responses and pixl_stats_1_1.  Each SRF checks the column count
 * of the descriptor it was given.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pixltoken.h"
#include "rate_limit.h"
#include "request_id.h"
#include "usage_aggregate.h"
#include "usage_ring.h"
#include "usage_route.h"
#include "usage_ship.h"
#include "usage_stats.h"

PG_FUNCTION_INFO_V1(pixl_log_response);
PG_FUNCTION_INFO_V1(pixl_log_response_1_1);
PG_FUNCTION_INFO_V1(pixl_log_responses);
PG_FUNCTION_INFO_V1(pixl_stats);
PG_FUNCTION_INFO_V1(pixl_stats_1_1);

#define PIXL_STATS_COLS_1_0		12
#define PIXL_STATS_COLS_1_1		21

/* Refuses what cannot be applied or summed; nothing is queued then. */
static void
check_response(int32 status, float8 response_ms)
{
	if (status < 100 || status > 599)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_STATUS),
				 errmsg("invalid HTTP status %d", status),
				 errhint("An HTTP status is between 100 and 599.")));
	if (isnan(response_ms) || isinf(response_ms) || response_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_RESPONSE_TIME),
				 errmsg("invalid response time %g ms", response_ms),
				 errhint("A response time is a finite number of milliseconds, 0 or more.")));
	if (response_ms > PIXL_MAX_RESPONSE_MS)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_RESPONSE_TIME_TOO_LARGE),
				 errmsg("response time %g ms is too large", response_ms),
				 errhint("A response time is at most %.0f ms (a day).", PIXL_MAX_RESPONSE_MS)));
}

/*
 * A standby ships responses to its primary, which takes them only for
 * the standby's own request ids (usage_batch.c): say so now rather
 * than lose the report on the way.
 */
static void
check_response_node(int64 request_id)
{
	if (pixl_node_id > 0 && RecoveryInProgress() &&
		(request_id & 15) != pixl_node_id)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_RESPONSE_OTHER_NODE),
				 errmsg("request id was issued by node %d, not by this standby (node %d)",
						(int) (request_id & 15), pixl_node_id),
				 errhint("Log the response on the node that verified the request, or on the primary.")));
}

static void
queue_response(int64 request_id, int32 status, float8 response_ms)
{
	PixlUsageResponse r;

	check_response_node(request_id);

	memset(&r, 0, sizeof(r));
	r.request_id = request_id;
	r.at = PIXL_REQUEST_ID_TIME(request_id);
	r.status = (int16) status;
	r.response_ms = response_ms;
	pixl_usage_record_response(&r);
}

static void
require_args(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pixl_log_response arguments must not be NULL"),
				 errhint("Pass the request_id returned by pixl_verify_token, the HTTP status and the response time in milliseconds.")));
}

/*
 * 1.0: pixl_log_response(request_id bigint, status int, response_ms float8)
 *
 * Queues the final status and response time of an earlier verification;
 * the worker applies them to its usage row.  A request id without a usage
 * row is kept for an hour in pixl_usage_unmatched_responses in case its
 * event arrives later, then discarded.
 */
Datum
pixl_log_response(PG_FUNCTION_ARGS)
{
	int64		request_id;

	pixl_require_preload();
	require_args(fcinfo);
	request_id = PG_GETARG_INT64(0);
	if (request_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_REQUEST_ID),
				 errmsg("invalid request id %lld", (long long) request_id),
				 errhint("Pass the request_id returned by pixl_verify_token.")));
	check_response(PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2));
	queue_response(request_id, PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2));
	PG_RETURN_VOID();
}

/*
 * 1.1: pixl_log_response(request_id text, status int, response_ms float8)
 *
 * The id must be a text form made by this cluster (request_id.c): a forged
 * or mistyped one is an error and touches nothing.  An id whose raw row
 * was not kept (a 429 not sampled, a full queue) is accepted and ignored:
 * the request is counted in the rollups with its verification status, and
 * it has no row to carry a response (counted in responses_ignored).
 */
Datum
pixl_log_response_1_1(PG_FUNCTION_ARGS)
{
	int64		request_id;
	bool		kept;

	pixl_require_preload();
	require_args(fcinfo);
	request_id = pixl_request_id_parse(PG_GETARG_TEXT_PP(0), &kept);
	check_response(PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2));
	if (kept)
		queue_response(request_id, PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2));
	else
		pixl_usage_count_response_ignored();
	PG_RETURN_VOID();
}

/*
 * pixl_log_responses(request_ids text[], statuses int[], response_ms float8[])
 *
 * The batched form: every element is checked first, then all are queued;
 * so one bad element is an error and nothing is queued.  Returns how many
 * responses were queued (ids without a kept row are not).
 */
Datum
pixl_log_responses(PG_FUNCTION_ARGS)
{
	Datum	   *ids;
	bool	   *id_nulls;
	Datum	   *statuses;
	bool	   *status_nulls;
	Datum	   *ms;
	bool	   *ms_nulls;
	int			n;
	int			n2;
	int			n3;
	int64	   *parsed;
	bool	   *kept;
	int64		queued = 0;

	pixl_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pixl_log_responses arguments must not be NULL"),
				 errhint("Pass three arrays of the same length: request ids, HTTP statuses, response times in milliseconds.")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT,
					  &ids, &id_nulls, &n);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), INT4OID, 4, true, TYPALIGN_INT,
					  &statuses, &status_nulls, &n2);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), FLOAT8OID, 8, FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &ms, &ms_nulls, &n3);
	if (n != n2 || n != n3)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_RESPONSE_ARRAYS),
				 errmsg("response arrays of different lengths (%d, %d, %d)", n, n2, n3),
				 errhint("Pass one request id, one status and one response time per response.")));
	parsed = palloc(sizeof(int64) * Max(n, 1));
	kept = palloc(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (id_nulls[i] || status_nulls[i] || ms_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("element %d of the response arrays is NULL", i + 1),
					 errhint("Every request id, status and response time must be given.")));
		parsed[i] = pixl_request_id_parse(DatumGetTextPP(ids[i]), &kept[i]);
		check_response(DatumGetInt32(statuses[i]), DatumGetFloat8(ms[i]));
		check_response_node(parsed[i]);
	}
	for (int i = 0; i < n; i++)
	{
		if (kept[i])
		{
			queue_response(parsed[i], DatumGetInt32(statuses[i]),
						   DatumGetFloat8(ms[i]));
			queued++;
		}
		else
			pixl_usage_count_response_ignored();
	}
	PG_RETURN_INT64(queued);
}

/*
 * pixl_stats(): one row per database of pixltoken.database, and one row
 * (datname NULL) for the databases without a queue of their own.  The 1.0
 * definition has 12 columns; 1.1 appends the rest.
 */
static Datum
pixl_stats_internal(FunctionCallInfo fcinfo, int ncols)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		tracked;
	int64		full_rejections;
	int64		agg_entries;
	TimestampTz now = GetCurrentTimestamp();
	int			n;

	pixl_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != ncols)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pixl_stats returns %d columns, its definition has %d",
						ncols, rsinfo->setDesc->natts),
				 errhint("Run ALTER EXTENSION pixltoken UPDATE.")));

	tracked = pixl_rate_limit_tracked_tokens();
	full_rejections = pixl_rate_limit_table_full_rejections();
	agg_entries = pixl_usage_aggregate_entries();
	n = pixl_usage_ring_count();

	for (int i = 0; i <= n; i++)
	{
		PixlUsageStats s;
		Datum		values[PIXL_STATS_COLS_1_1];
		bool		nulls[PIXL_STATS_COLS_1_1];
		TimestampTz since;

		pixl_usage_stats_get(i, &s);
		memset(nulls, 0, sizeof(nulls));
		if (s.dbname)
			values[0] = CStringGetTextDatum(s.dbname);
		else
			nulls[0] = true;
		values[1] = CStringGetTextDatum(s.dbname ? pixl_worker_state_name(s.state)
										: "no worker");
		values[2] = Int64GetDatum(tracked);
		values[3] = Int64GetDatum(full_rejections);
		values[4] = Int64GetDatum(s.queued);
		values[5] = Int64GetDatum(s.flushed);
		values[6] = Int64GetDatum(0);	/* written through: never, since 1.1 */
		values[7] = Int64GetDatum(0);	/* waited: never, since 1.1 */
		values[8] = Int64GetDatum(s.dropped);
		values[9] = Int64GetDatum(s.responses_applied);

		/*
		 * lag: age of the oldest queued record, or of a standby's batch
		 * waiting in its spool; 0 when there is neither
		 */
		since = s.queued > 0 ? s.oldest_queued : now;
		if (s.spooled_since != 0)
			since = Min(since, s.spooled_since);
		if (s.dbname == NULL)
			nulls[10] = true;
		else
			values[10] = DirectFunctionCall2(timestamp_mi,
											 TimestampTzGetDatum(now),
											 TimestampTzGetDatum(Min(since, now)));
		if (s.last_flush != 0)
			values[11] = TimestampTzGetDatum(s.last_flush);
		else
			nulls[11] = true;

		if (ncols > PIXL_STATS_COLS_1_0)
		{
			values[12] = Int64GetDatum(s.sampled_out);
			values[13] = Int64GetDatum(s.counts_folded);
			values[14] = Int64GetDatum(s.counts_lost);
			values[15] = Int64GetDatum(s.responses_ignored);
			values[16] = Int64GetDatum(s.dead_letters);
			if (s.last_error[0] != '\0')
				values[17] = CStringGetTextDatum(s.last_error);
			else
				nulls[17] = true;
			if (s.last_error_at != 0)
				values[18] = TimestampTzGetDatum(s.last_error_at);
			else
				nulls[18] = true;
			values[19] = Int64GetDatum(agg_entries);
			values[20] = Int64GetDatum(pixl_usage_ring_capacity());
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
pixl_stats(PG_FUNCTION_ARGS)
{
	return pixl_stats_internal(fcinfo, PIXL_STATS_COLS_1_0);
}

Datum
pixl_stats_1_1(PG_FUNCTION_ARGS)
{
	return pixl_stats_internal(fcinfo, PIXL_STATS_COLS_1_1);
}
