/*-------------------------------------------------------------------------
 *
 * usage_store.c
 *		Writes usage records and counts into the tables of the current
 *		database (the worker's transaction).
 *
 * Records and counts are turned into arrays and handed to the SQL
 * functions of the extension's schema (src/sql/1.0--1.1/30_usage.sql),
 * which hold the logic: pixl_store_raw_events() (raw rows only: the counts
 * come from usage_aggregate.c), pixl_fold_usage() (counts into the rollups
 * and pixl_token_activity, one upsert per key) and pixl_apply_responses().
 * Events queued under a 1.0 schema, which raw rows alone count, go to
 * 1.0's pixl_store_events().  Every statement names the schema of what it
 * calls and runs with search_path pinned (usage_extension.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pixltoken.h"
#include "usage_extension.h"
#include "usage_queue.h"
#include "usage_store.h"

int
pixl_usage_schema_version(const PixlExtension *ext)
{
	return OidIsValid(pixl_extension_function(ext, "pixl_fold_usage", 9))
		? PIXL_SCHEMA_1_1 : PIXL_SCHEMA_1_0;
}

static Datum
pixl_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

static ArrayType *
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

static void
pixl_store_event_batch(const char *schema, const PixlUsageRecord *recs, int n,
					   int nevents, bool counted)
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
	char	   *sql;
	int			k = 0;
	int			rc;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageEvent *ev;
		char		token_id[PIXL_TOKEN_ID_LEN + 1];

		if (recs[i].kind != PIXL_RECORD_EVENT ||
			recs[i].u.event.counted != counted)
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

	sql = psprintf("SELECT %s.%s($1, $2, $3, $4, $5, $6, $7)", schema,
				   counted ? "pixl_store_raw_events" : "pixl_store_events");
	rc = SPI_execute_with_args(sql, 7, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
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
	char	   *sql;
	int			k = 0;
	int			rc;

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

	sql = psprintf("SELECT %s.pixl_apply_responses($1, $2, $3, $4)", schema);
	rc = SPI_execute_with_args(sql, 4, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

static void
pixl_fold_batch(const char *schema, const PixlAggSnapshot *aggs, int n)
{
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	Datum	   *buckets = palloc(sizeof(Datum) * n);
	Datum	   *methods = palloc(sizeof(Datum) * n);
	Datum	   *endpoints = palloc(sizeof(Datum) * n);
	Datum	   *requests = palloc(sizeof(Datum) * n);
	Datum	   *errors = palloc(sizeof(Datum) * n);
	Datum	   *last_used = palloc(sizeof(Datum) * n);
	bool	   *last_used_nulls = palloc(sizeof(bool) * n);
	Datum	   *prev_uses = palloc(sizeof(Datum) * n);
	Datum	   *prev_last = palloc(sizeof(Datum) * n);
	bool	   *prev_last_nulls = palloc(sizeof(bool) * n);
	Oid			argtypes[9] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID,
	INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[9];
	int			rc;

	for (int i = 0; i < n; i++)
	{
		const PixlAggSnapshot *a = &aggs[i];

		tokens[i] = PointerGetDatum(cstring_to_text_with_len(a->key.token_id,
															 strnlen(a->key.token_id, PIXL_TOKEN_ID_LEN)));
		buckets[i] = TimestampTzGetDatum(a->key.hour);
		methods[i] = CStringGetTextDatum(a->key.method);
		endpoints[i] = CStringGetTextDatum(a->key.endpoint);
		requests[i] = Int64GetDatum(a->requests);
		errors[i] = Int64GetDatum(a->errors);
		last_used_nulls[i] = (a->last_used == 0);
		last_used[i] = TimestampTzGetDatum(a->last_used);
		prev_uses[i] = Int64GetDatum(a->previous_secret_uses);
		prev_last_nulls[i] = (a->previous_secret_last == 0);
		prev_last[i] = TimestampTzGetDatum(a->previous_secret_last);
	}
	args[0] = PointerGetDatum(pixl_array(tokens, NULL, n, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(buckets, NULL, n, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(methods, NULL, n, TEXTOID));
	args[3] = PointerGetDatum(pixl_array(endpoints, NULL, n, TEXTOID));
	args[4] = PointerGetDatum(pixl_array(requests, NULL, n, INT8OID));
	args[5] = PointerGetDatum(pixl_array(errors, NULL, n, INT8OID));
	args[6] = PointerGetDatum(pixl_array(last_used, last_used_nulls, n, TIMESTAMPTZOID));
	args[7] = PointerGetDatum(pixl_array(prev_uses, NULL, n, INT8OID));
	args[8] = PointerGetDatum(pixl_array(prev_last, prev_last_nulls, n, TIMESTAMPTZOID));

	rc = SPI_execute_with_args(psprintf("SELECT %s.pixl_fold_usage($1, $2, $3, $4, $5, $6, $7, $8, $9)",
										schema),
							   9, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

void
pixl_usage_store_batch(const PixlExtension *ext,
					   const PixlUsageRecord *recs, int n,
					   const PixlAggSnapshot *aggs, int nagg)
{
	int			counted = 0;
	int			uncounted = 0;
	int			nresponses = 0;
	int			nestlevel;

	for (int i = 0; i < n; i++)
	{
		if (recs[i].kind == PIXL_RECORD_EVENT)
		{
			if (recs[i].u.event.counted)
				counted++;
			else
				uncounted++;
		}
		else if (recs[i].kind == PIXL_RECORD_RESPONSE)
			nresponses++;
	}

	nestlevel = pixl_pin_search_path();
	if (counted > 0)
		pixl_store_event_batch(ext->schema, recs, n, counted, true);
	if (uncounted > 0)
		pixl_store_event_batch(ext->schema, recs, n, uncounted, false);
	if (nagg > 0)
		pixl_fold_batch(ext->schema, aggs, nagg);
	if (nresponses > 0)
		pixl_apply_response_batch(ext->schema, recs, n, nresponses);
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

bool
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
						  "\"previous_secret_uses\": " INT64_FORMAT "}",
						  json_text(timestamptz_to_str(agg->key.hour)),
						  json_text(agg->key.method), json_text(agg->key.endpoint),
						  agg->requests, agg->errors, agg->previous_secret_uses);
	}
	else if (rec->kind == PIXL_RECORD_EVENT)
	{
		const PixlUsageEvent *ev = &rec->u.event;

		args[0] = CStringGetTextDatum("event");
		args[1] = Int64GetDatum(ev->request_id);
		args[2] = PointerGetDatum(cstring_to_text_with_len(ev->token_id,
														   strnlen(ev->token_id, PIXL_TOKEN_ID_LEN)));
		detail = psprintf("{\"at\": %s, \"method\": %s, \"endpoint\": %s, \"status\": %d}",
						  json_text(timestamptz_to_str(ev->at)),
						  json_text(ev->method), json_text(ev->endpoint), ev->status);
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
