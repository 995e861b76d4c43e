/*-------------------------------------------------------------------------
 *
 * usage_sql.c
 *		SQL entry points of the usage pipeline: pixl_log_response() and
 *		pixl_stats().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pixltoken.h"
#include "rate_limit.h"
#include "usage_queue.h"

PG_FUNCTION_INFO_V1(pixl_log_response);
PG_FUNCTION_INFO_V1(pixl_stats);

/*
 * pixl_log_response(request_id bigint, status int, response_ms float8)
 *
 * Queues the final status and response time of an earlier verification;
 * the worker applies them to its usage row.  A request id without a usage
 * row (a 401, say, which is not counted in usage) is kept for an hour in
 * pixl_usage_unmatched_responses in case its event arrives later, then
 * discarded.
 */
Datum
pixl_log_response(PG_FUNCTION_ARGS)
{
	int64		request_id;
	int32		status;
	float8		response_ms;
	PixlUsageResponse r;

	pixl_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pixl_log_response arguments must not be NULL"),
				 errhint("Pass the request_id returned by pixl_verify_token, the HTTP status and the response time in milliseconds.")));
	request_id = PG_GETARG_INT64(0);
	status = PG_GETARG_INT32(1);
	response_ms = PG_GETARG_FLOAT8(2);

	if (request_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_REQUEST_ID),
				 errmsg("invalid request id %lld", (long long) request_id),
				 errhint("Pass the request_id returned by pixl_verify_token.")));
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

	memset(&r, 0, sizeof(r));
	r.request_id = request_id;
	r.at = (TimestampTz) (request_id / 16);
	r.status = (int16) status;
	r.response_ms = response_ms;
	pixl_usage_record_response(&r);
	PG_RETURN_VOID();
}

/*
 * pixl_stats(): one row per database of pixltoken.database, and one row
 * (datname NULL) for the databases without a queue of their own.
 */
Datum
pixl_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		tracked;
	int64		full_rejections;
	TimestampTz now = GetCurrentTimestamp();
	int			n;

	pixl_require_preload();
	InitMaterializedSRF(fcinfo, 0);

	tracked = pixl_rate_limit_tracked_tokens();
	full_rejections = pixl_rate_limit_table_full_rejections();
	n = pixl_usage_queue_count();

	for (int i = 0; i <= n; i++)
	{
		PixlQueueStats s;
		Datum		values[12];
		bool		nulls[12];
		TimestampTz since;

		pixl_usage_queue_stats(i, &s);
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
		values[6] = Int64GetDatum(s.written_through);
		values[7] = Int64GetDatum(s.waited);
		values[8] = Int64GetDatum(s.dropped);
		values[9] = Int64GetDatum(s.responses_applied);

		/* lag: age of the oldest queued record; 0 when the queue is empty */
		since = s.queued > 0 ? s.oldest_queued : now;
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

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
