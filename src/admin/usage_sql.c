/*-------------------------------------------------------------------------
 *
 * usage_sql.c
 *		SQL entry points of the usage pipeline: pixl_log_response(),
 *		pixl_log_responses() and pixl_stats().
 *
 * Versioned entry points (pg_stat_statements style): the 1.0 SQL
 * definitions keep their C symbols (pixl_log_response takes a bigint id,
 * pixl_stats returns 12 columns); 1.1 adds pixl_log_response_1_1 (text id),
 * pixl_log_response_sealed (1.1's definition of the bigint form, for app
 * servers written against 1.0: the sealed ids of pixl_verify_token,
 * request_id.c), pixl_log_responses and pixl_stats_1_1.  Each SRF checks
 * the column count of the descriptor it was given.  A report is handled
 * the same whichever id form it comes with.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/extension.h"
#include "common/node.h"
#include "common/preload.h"
#include "common/request_id.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_pending.h"
#include "usage/usage_ring.h"
#include "usage/usage_route.h"
#include "usage/usage_stats.h"
#include "verify/quota.h"
#include "verify/rate_limit.h"
#include "writer/replica_ship.h"

PG_FUNCTION_INFO_V1(pixl_log_response);
PG_FUNCTION_INFO_V1(pixl_log_response_1_1);
PG_FUNCTION_INFO_V1(pixl_log_response_sealed);
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
 * the standby's own request ids (replica_batch.c): say so now rather
 * than lose the report on the way.
 */
static void
check_response_node(int64 request_id)
{
	if (pixl_node_id > 0 && RecoveryInProgress() &&
		PIXL_REQUEST_ID_NODE(request_id) != pixl_node_id)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_RESPONSE_OTHER_NODE),
				 errmsg("request id was issued by node %d, not by this standby (node %d)",
						PIXL_REQUEST_ID_NODE(request_id), pixl_node_id),
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
 * event arrives later, then discarded.  This library's pixl_verify_token
 * hands out sealed ids (request_id.c); an id that does not open is taken
 * as it is, as 1.0 took it (one handed out by the 1.0 library before the
 * restart): a database not yet updated keeps 1.0's rules.
 */
Datum
pixl_log_response(PG_FUNCTION_ARGS)
{
	int64		request_id;
	bool		kept;
	bool		pending;

	pixl_require_preload();
	require_args(fcinfo);
	if (PG_GETARG_INT64(0) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_REQUEST_ID),
				 errmsg("invalid request id %lld", (long long) PG_GETARG_INT64(0)),
				 errhint("Pass the request_id returned by pixl_verify_token.")));
	if (!pixl_request_id_unseal(PG_GETARG_INT64(0), &request_id, &kept, &pending))
		request_id = PG_GETARG_INT64(0);
	check_response(PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2));
	queue_response(request_id, PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2));
	PG_RETURN_VOID();
}

/*
 * Is there a row of request_id in pixl_usage_pending_responses (written out
 * by the worker, usage_pending.c)?  Read as the extension's owner: the
 * table is nobody else's, and the caller only learns what its own valid id
 * already tells.
 */
static bool
pending_row_exists(int64 request_id)
{
	PixlExtension ext = pixl_extension_lookup();
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
	int			rc;
	bool		found;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];

	if (!ext.found ||
		!OidIsValid(get_relname_relid("pixl_usage_pending_responses", ext.namespace)))
		return false;
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(ext.owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nestlevel = pixl_pin_search_path();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int64GetDatum(request_id);
	rc = SPI_execute_with_args(psprintf("SELECT 1 FROM %s.pixl_usage_pending_responses p"
										" WHERE p.request_id OPERATOR(pg_catalog.=) $1",
										ext.schema),
							   1, argtypes, args, NULL, false, 1);
	found = (rc == SPI_OK_SELECT && SPI_processed > 0);
	SPI_finish();
	pixl_restore_search_path(nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec);
	return found;
}

typedef enum PixlReport
{
	PIXL_REPORT_COUNTED,
	PIXL_REPORT_IGNORED,		/* nothing to count it in (README) */
	PIXL_REPORT_REFUSED			/* reported before, or its entry was lost */
} PixlReport;

/*
 * Counts one response in the aggregates of its verification
 * (usage_pending.c): exactly once per request.  With dry_run, only says
 * what it would do.
 */
static PixlReport
count_response(int64 request_id, bool pending, int32 status,
			   float8 response_ms, bool dry_run)
{
	PixlClaim	c;
	PixlQuotaCharge charge;
	PixlAggKey	counted_under;

	/*
	 * No entry was made (table full, nothing kept), or a standby's request
	 * reported on the primary: its entry is on the standby
	 */
	if (!pending ||
		(!RecoveryInProgress() && PIXL_REQUEST_ID_NODE(request_id) != pixl_node_id))
		return PIXL_REPORT_IGNORED;
	c = pixl_usage_pending_claim(request_id, (int16) status, response_ms, dry_run,
								 &charge, &counted_under);
	/*
	 * a final status the plan does not count gives the charge back, once
	 * (the claim hands it out once), and only within its period; the
	 * usage counts it gave back too (charged, usage_aggregate.c), so that
	 * the rollups, from which the allowances are seeded, agree
	 */
	if (c == PIXL_CLAIM_COUNTED && charge.charged > 0 &&
		!pixl_quota_status_counts(charge.counts, status) &&
		pixl_quota_refund(charge.store_key, charge.token_key,
						  charge.period, charge.billing_day,
						  charge.charged, pixl_rate_limit_now()) &&
		!pixl_usage_aggregate_refund(&counted_under, charge.charged))
		ereport(LOG,
				(errmsg("pixltoken: a refund was lost from the usage counts: the usage count table is full"),
				 errhint("Raise pixltoken.aggregate_entries.")));
	if (c == PIXL_CLAIM_ABSENT)
	{
		/* written out? (a standby writes nothing out) */
		if (RecoveryInProgress() || !pending_row_exists(request_id))
			return PIXL_REPORT_REFUSED;
		if (dry_run)
			return PIXL_REPORT_COUNTED;
		c = pixl_usage_pending_add_late(request_id, (int16) status, response_ms);
	}
	return c == PIXL_CLAIM_TAKEN ? PIXL_REPORT_REFUSED : PIXL_REPORT_COUNTED;
}

static void
refuse_report(const char *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_RESPONSE_REPORTED),
			 errmsg("the response of request \"%s\" was already reported, or its verification is no longer known",
					id),
			 errdetail("A request's response is counted once; a report after a crash may find its verification lost."),
			 errhint("Report each request's response once.")));
}

/* One report of an id already checked: counted once, then its raw row. */
static void
report_one(int64 request_id, bool kept, bool pending, int32 status,
		   float8 response_ms, const char *shown_id)
{
	PixlReport	r;

	check_response(status, response_ms);
	check_response_node(request_id);
	r = count_response(request_id, pending, status, response_ms, false);
	if (r == PIXL_REPORT_REFUSED)
		refuse_report(shown_id);
	if (r == PIXL_REPORT_IGNORED)
		pixl_usage_count_response_ignored();
	if (kept)
		queue_response(request_id, status, response_ms);
}

/*
 * 1.1: pixl_log_response(request_id text, status int, response_ms float8)
 *
 * The id must be a text form made by this cluster (request_id.c): a forged
 * or mistyped one is an error and touches nothing.  The response is
 * counted in the aggregates of its verification exactly once
 * (usage_pending.c); a second report is refused (PX068).  Its raw row, when
 * it was kept, gets the status and time too (by the worker).
 */
Datum
pixl_log_response_1_1(PG_FUNCTION_ARGS)
{
	int64		request_id;
	bool		kept;
	bool		pending;

	pixl_require_preload();
	require_args(fcinfo);
	request_id = pixl_request_id_parse(PG_GETARG_TEXT_PP(0), &kept, &pending);
	report_one(request_id, kept, pending, PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2),
			   text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * 1.1: pixl_log_response(request_id bigint, status int, response_ms float8)
 *
 * The same for the sealed bigint id that pixl_verify_token (1.0's result
 * type) hands out: an id that does not open under this cluster's key, or
 * is older than PIXL_SEALED_MAX_AGE_USECS, is refused (PX032) and touches
 * nothing.
 */
Datum
pixl_log_response_sealed(PG_FUNCTION_ARGS)
{
	int64		request_id;
	bool		kept;
	bool		pending;

	pixl_require_preload();
	require_args(fcinfo);
	if (!pixl_request_id_unseal(PG_GETARG_INT64(0), &request_id, &kept, &pending))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_REQUEST_ID),
				 errmsg("invalid request id %lld", (long long) PG_GETARG_INT64(0)),
				 errdetail("It was not made by pixl_verify_token of this cluster in the last %d days.",
						   (int) (PIXL_SEALED_MAX_AGE_USECS / USECS_PER_DAY)),
				 errhint("Pass the request_id returned by pixl_verify_token.")));
	report_one(request_id, kept, pending, PG_GETARG_INT32(1), PG_GETARG_FLOAT8(2),
			   psprintf(INT64_FORMAT, PG_GETARG_INT64(0)));
	PG_RETURN_VOID();
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * pixl_log_responses(request_ids text[], statuses int[], response_ms float8[])
 *
 * The batched form: every element is checked first (id, status, time, and
 * that no report of it was counted before, nor twice in the array), then
 * all are counted; so one bad element is an error and nothing is counted.
 * A report of one of them racing in from another session between the two
 * steps is counted once (the other is ignored).  Returns how many
 * responses were counted (int: a number in every client language).
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
	int64	   *sorted;
	bool	   *kept;
	bool	   *pending;
	int32		counted = 0;

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
	sorted = palloc(sizeof(int64) * Max(n, 1));
	kept = palloc(sizeof(bool) * Max(n, 1));
	pending = palloc(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (id_nulls[i] || status_nulls[i] || ms_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("element %d of the response arrays is NULL", i + 1),
					 errhint("Every request id, status and response time must be given.")));
		parsed[i] = pixl_request_id_parse(DatumGetTextPP(ids[i]), &kept[i], &pending[i]);
		check_response(DatumGetInt32(statuses[i]), DatumGetFloat8(ms[i]));
		check_response_node(parsed[i]);
		sorted[i] = parsed[i];
	}
	qsort(sorted, n, sizeof(int64), cmp_int64);
	for (int i = 1; i < n; i++)
	{
		if (sorted[i] == sorted[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_RESPONSE_REPORTED),
					 errmsg("request id %016llx appears twice in the response arrays",
							(unsigned long long) sorted[i]),
					 errhint("Report each request's response once.")));
	}
	for (int i = 0; i < n; i++)
	{
		if (count_response(parsed[i], pending[i], DatumGetInt32(statuses[i]),
						   DatumGetFloat8(ms[i]), true) == PIXL_REPORT_REFUSED)
			refuse_report(text_to_cstring(DatumGetTextPP(ids[i])));
	}
	for (int i = 0; i < n; i++)
	{
		if (count_response(parsed[i], pending[i], DatumGetInt32(statuses[i]),
						   DatumGetFloat8(ms[i]), false) == PIXL_REPORT_COUNTED)
			counted++;
		else
			pixl_usage_count_response_ignored();
		if (kept[i])
			queue_response(parsed[i], DatumGetInt32(statuses[i]),
						   DatumGetFloat8(ms[i]));
	}
	PG_RETURN_INT32(counted);
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
