/*-------------------------------------------------------------------------
 *
 * usage_fold.c
 *		Folds the shared-memory counts of usage_aggregate.c into the
 *		rollups and pixl_token_activity (the worker's transaction).
 *
 * A fold is a few set-based statements per snapshot, whatever its size:
 * one upsert into pixl_usage_hourly (a snapshot's keys are unique, so
 * every key is one row), one into pixl_usage_daily for hours of days that
 * maintenance already rolled up (rare: counts that waited across
 * midnight), and one into pixl_token_activity with the token's uses merged
 * here first (an upsert may touch a row once).  No PL/pgSQL, no per-key
 * re-check: the endpoint cap is enforced when a count enters shared
 * memory (usage_aggregate.c), and a key of the snapshot is written under
 * its own name.
 *
 * The daily rollups follow the protocol of 30_usage.sql: the fold holds
 * pixl_usage_daily_state in ROW EXCLUSIVE mode from before its first
 * rollup write to its commit, and adds an hour to pixl_usage_daily exactly
 * when that hour's day is before rolled_up_until.
 *
 * Cost and charged (weighted calls, and what they charged to the period
 * allowance, net of refunds) go to the rollups' cost and charged columns;
 * a schema that has none (1.1, until ALTER EXTENSION ... UPDATE) folds
 * without them, as 1.1 did.  The scopes a key's admitted calls required
 * go to scopes_used, OR-ed into the row's (a set: folding a bit again
 * changes nothing, usage_aggregate.c "Scopes"); without that column, not.
 *
 * The worker decides how often to fold (usage_worker.c): every
 * pixltoken.fold_interval, not with every batch of raw rows, so a key
 * that takes many verifications between folds costs one row write.
 * Every statement names its schema and runs with search_path pinned.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "usage/latency.h"
#include "writer/usage_fold.h"

/* Columns handed to the statements as parallel arrays. */
typedef struct FoldColumns
{
	int			n;
	Datum	   *token;
	Datum	   *bucket;
	Datum	   *method;
	Datum	   *endpoint;
	Datum	   *requests;
	Datum	   *errors;
	Datum	   *ms_sum;
	Datum	   *ms_count;
	Datum	   *rate_limited;
	Datum	   *latency;
	bool	   *latency_null;
	Datum	   *cost;
	Datum	   *charged;
	Datum	   *scopes;
} FoldColumns;

/* One token's uses in a snapshot, merged. */
typedef struct FoldActivity
{
	char		token_id[PIXL_TOKEN_ID_LEN];	/* hash key */
	TimestampTz last_used;
	TimestampTz previous_last;	/* 0: none */
	int64		previous_uses;
} FoldActivity;

static void
fold_columns_init(FoldColumns *c, int max)
{
	c->n = 0;
	c->token = palloc(sizeof(Datum) * max);
	c->bucket = palloc(sizeof(Datum) * max);
	c->method = palloc(sizeof(Datum) * max);
	c->endpoint = palloc(sizeof(Datum) * max);
	c->requests = palloc(sizeof(Datum) * max);
	c->errors = palloc(sizeof(Datum) * max);
	c->ms_sum = palloc(sizeof(Datum) * max);
	c->ms_count = palloc(sizeof(Datum) * max);
	c->rate_limited = palloc(sizeof(Datum) * max);
	c->latency = palloc(sizeof(Datum) * max);
	c->latency_null = palloc(sizeof(bool) * max);
	c->cost = palloc(sizeof(Datum) * max);
	c->charged = palloc(sizeof(Datum) * max);
	c->scopes = palloc(sizeof(Datum) * max);
}

static void
fold_columns_add(FoldColumns *c, const PixlAggSnapshot *a)
{
	int			i = c->n++;

	c->token[i] = pixl_token_id_text(a->key.token_id);
	c->bucket[i] = TimestampTzGetDatum(a->key.hour);
	c->method[i] = CStringGetTextDatum(a->key.method);
	c->endpoint[i] = CStringGetTextDatum(a->key.endpoint);
	c->requests[i] = Int64GetDatum(a->requests);
	/* final statuses: a response may turn a verification into an error or back */
	c->errors[i] = Int64GetDatum(a->errors + a->response_errors_up -
								 a->response_errors_down);
	c->ms_sum[i] = Float8GetDatum((double) a->response_us_sum / 1000.0);
	c->ms_count[i] = Int64GetDatum(a->responses);
	c->rate_limited[i] = Int64GetDatum(a->rate_limited);
	c->latency[i] = pixl_latency_from_counts(a->latency, a->responses,
											 &c->latency_null[i]);
	c->cost[i] = Int64GetDatum(a->cost);
	c->charged[i] = Int64GetDatum(a->charged);
	c->scopes[i] = Int32GetDatum(a->scopes_used);
}

/*
 * Upserts the columns into schema.table; by_day groups hours into their
 * UTC day first (several hours of a day are one daily row).  with_cost:
 * the table has cost and charged; with_scopes: scopes_used.
 */
static void
fold_rollup(const PixlExtension *ext, Oid latency_array, const char *table,
			bool by_day, bool with_cost, bool with_scopes, const FoldColumns *c)
{
	Oid			argtypes[13] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, FLOAT8ARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, latency_array, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID};
	Datum		args[13];
	const char *schema = ext->schema;
	char	   *sql;
	int			rc;

	args[0] = PointerGetDatum(pixl_array(c->token, NULL, c->n, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(c->bucket, NULL, c->n, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(c->method, NULL, c->n, TEXTOID));
	args[3] = PointerGetDatum(pixl_array(c->endpoint, NULL, c->n, TEXTOID));
	args[4] = PointerGetDatum(pixl_array(c->requests, NULL, c->n, INT8OID));
	args[5] = PointerGetDatum(pixl_array(c->errors, NULL, c->n, INT8OID));
	args[6] = PointerGetDatum(pixl_array(c->ms_sum, NULL, c->n, FLOAT8OID));
	args[7] = PointerGetDatum(pixl_array(c->ms_count, NULL, c->n, INT8OID));
	args[8] = PointerGetDatum(pixl_array(c->rate_limited, NULL, c->n, INT8OID));
	args[9] = PointerGetDatum(pixl_array(c->latency, c->latency_null, c->n,
										 get_element_type(latency_array)));
	args[10] = PointerGetDatum(pixl_array(c->cost, NULL, c->n, INT8OID));
	args[11] = PointerGetDatum(pixl_array(c->charged, NULL, c->n, INT8OID));
	args[12] = PointerGetDatum(pixl_array(c->scopes, NULL, c->n, INT4OID));

	/*
	 * A row that had responses before rollups had histograms (latency NULL,
	 * response_ms_count > 0) keeps NULL: its percentiles would be wrong.
	 */
	sql = psprintf("INSERT INTO %s.%s AS r (token_id, bucket, method, endpoint, requests, "
				   "errors, response_ms_sum, response_ms_count, rate_limited, latency%s%s) "
				   "SELECT u.t, %s, u.m, u.e, %s%s%s "
				   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
				   "pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
				   "pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8), "
				   "pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11), "
				   "pg_catalog.unnest($12), pg_catalog.unnest($13)) "
				   "AS u(t, b, m, e, req, err, ms, msc, rl, lat, co, ch, sc) %s "
				   "ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE "
				   "SET requests = r.requests OPERATOR(pg_catalog.+) excluded.requests, "
				   "errors = r.errors OPERATOR(pg_catalog.+) excluded.errors, "
				   "response_ms_sum = r.response_ms_sum OPERATOR(pg_catalog.+) excluded.response_ms_sum, "
				   "response_ms_count = r.response_ms_count OPERATOR(pg_catalog.+) excluded.response_ms_count, "
				   "rate_limited = r.rate_limited OPERATOR(pg_catalog.+) excluded.rate_limited, "
				   "latency = CASE WHEN r.latency IS NULL AND r.response_ms_count OPERATOR(pg_catalog.>) 0 THEN NULL "
				   "ELSE %s.pixl_latency_add(r.latency, excluded.latency) END%s%s",
				   schema, table,
				   with_cost ? ", cost, charged" : "",
				   with_scopes ? ", scopes_used" : "",
				   by_day ? "pg_catalog.date_trunc('day', u.b, 'UTC')" : "u.b",
				   by_day ? psprintf("pg_catalog.sum(u.req), pg_catalog.sum(u.err), pg_catalog.sum(u.ms), "
									 "pg_catalog.sum(u.msc), pg_catalog.sum(u.rl), "
									 "%s.pixl_latency_merge(u.lat)", schema)
				   : "u.req, u.err, u.ms, u.msc, u.rl, u.lat",
				   !with_cost ? "" : by_day
				   ? ", pg_catalog.sum(u.co), pg_catalog.sum(u.ch)" : ", u.co, u.ch",
				   !with_scopes ? "" : by_day
				   ? ", pg_catalog.bit_or(u.sc)" : ", u.sc",
				   by_day ? "GROUP BY 1, 2, 3, 4" : "",
				   schema,
				   with_cost ? ", cost = r.cost OPERATOR(pg_catalog.+) excluded.cost, "
				   "charged = r.charged OPERATOR(pg_catalog.+) excluded.charged" : "",
				   with_scopes ? ", scopes_used = r.scopes_used OPERATOR(pg_catalog.|) excluded.scopes_used" : "");
	rc = SPI_execute_with_args(sql, 13, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	pfree(sql);
}

/* The last use (and previous-secret uses) of each token, one row each. */
static void
fold_activity(const char *schema, const PixlAggSnapshot *aggs, int n)
{
	HASHCTL		ctl;
	HTAB	   *tokens;
	HASH_SEQ_STATUS seq;
	FoldActivity *a;
	Datum	   *token;
	Datum	   *last;
	Datum	   *prev_last;
	bool	   *prev_last_null;
	Datum	   *prev_uses;
	int			k = 0;
	Oid			argtypes[4] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	Datum		args[4];
	char	   *sql;
	int			rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = PIXL_TOKEN_ID_LEN;
	ctl.entrysize = sizeof(FoldActivity);
	ctl.hcxt = CurrentMemoryContext;
	tokens = hash_create("pixltoken fold activity", n, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < n; i++)
	{
		bool		found;

		/* a key with responses only was used before: nothing to move */
		if (aggs[i].last_used == 0)
			continue;
		a = hash_search(tokens, aggs[i].key.token_id, HASH_ENTER, &found);
		if (!found)
		{
			a->last_used = 0;
			a->previous_last = 0;
			a->previous_uses = 0;
		}
		a->last_used = Max(a->last_used, aggs[i].last_used);
		a->previous_last = Max(a->previous_last, aggs[i].previous_secret_last);
		a->previous_uses += aggs[i].previous_secret_uses;
	}
	if (hash_get_num_entries(tokens) == 0)
		return;

	token = palloc(sizeof(Datum) * n);
	last = palloc(sizeof(Datum) * n);
	prev_last = palloc(sizeof(Datum) * n);
	prev_last_null = palloc(sizeof(bool) * n);
	prev_uses = palloc(sizeof(Datum) * n);
	hash_seq_init(&seq, tokens);
	while ((a = hash_seq_search(&seq)) != NULL)
	{
		token[k] = pixl_token_id_text(a->token_id);
		last[k] = TimestampTzGetDatum(a->last_used);
		prev_last_null[k] = (a->previous_last == 0);
		prev_last[k] = TimestampTzGetDatum(a->previous_last);
		prev_uses[k] = Int64GetDatum(a->previous_uses);
		k++;
	}
	args[0] = PointerGetDatum(pixl_array(token, NULL, k, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(last, NULL, k, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(prev_last, prev_last_null, k, TIMESTAMPTZOID));
	args[3] = PointerGetDatum(pixl_array(prev_uses, NULL, k, INT8OID));

	/* a token deleted meanwhile gets no activity row back */
	sql = psprintf("INSERT INTO %s.pixl_token_activity AS a (token_id, last_used_at, "
				   "previous_secret_last_used_at, previous_secret_uses) "
				   "SELECT u.t, u.l, u.pl, u.pu "
				   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
				   "pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(t, l, pl, pu) "
				   "WHERE EXISTS (SELECT 1 FROM %s.pixl_token_registry g "
				   "WHERE g.token_id OPERATOR(pg_catalog.=) u.t) "
				   "ON CONFLICT (token_id) DO UPDATE "
				   "SET last_used_at = GREATEST(a.last_used_at, excluded.last_used_at), "
				   "previous_secret_last_used_at = GREATEST(a.previous_secret_last_used_at, "
				   "excluded.previous_secret_last_used_at), "
				   "previous_secret_uses = a.previous_secret_uses OPERATOR(pg_catalog.+) excluded.previous_secret_uses",
				   schema, schema);
	rc = SPI_execute_with_args(sql, 4, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	pfree(sql);
}

/*
 * rolled_up_until of the daily rollups, -infinity when none; takes the
 * writers' lock on pixl_usage_daily_state first (see the top).
 */
static TimestampTz
fold_daily_until(const char *schema)
{
	char	   *sql;
	bool		isnull;
	Datum		d;
	TimestampTz until = DT_NOBEGIN;

	sql = psprintf("LOCK TABLE %s.pixl_usage_daily_state IN ROW EXCLUSIVE MODE", schema);
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock pixl_usage_daily_state");
	pfree(sql);
	sql = psprintf("SELECT s.rolled_up_until FROM %s.pixl_usage_daily_state s", schema);
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pixl_usage_daily_state");
	if (SPI_processed > 0)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			until = DatumGetTimestampTz(d);
	}
	pfree(sql);
	return until;
}

/* Do the rollups have this column (cost and charged, scopes_used: 1.2 on)? */
static bool
fold_has_column(const PixlExtension *ext, const char *column)
{
	Oid			hourly = get_relname_relid("pixl_usage_hourly", ext->namespace);

	return OidIsValid(hourly) && get_attnum(hourly, column) != InvalidAttrNumber;
}

/* The type pixl_latency[] of the extension's schema (not through search_path). */
static Oid
fold_latency_array_type(const PixlExtension *ext)
{
	Oid			type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("pixl_latency"),
									   ObjectIdGetDatum(ext->namespace));
	Oid			array = OidIsValid(type) ? get_array_type(type) : InvalidOid;

	if (!OidIsValid(array))
		elog(ERROR, "type pixl_latency of extension pixltoken not found");
	return array;
}

int64
pixl_usage_seed_quotas(const PixlExtension *ext, const PixlAggCharged *charged, int n)
{
	Oid			argtypes[3] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	Datum		args[3];
	Datum	   *tokens = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *hours = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *amounts = palloc(sizeof(Datum) * Max(n, 1));
	const char *s = ext->schema;
	char	   *sql;
	int			rc;

	if (!OidIsValid(pixl_extension_function(ext, "pixl_quota_seed", 4)))
		return -1;
	for (int i = 0; i < n; i++)
	{
		tokens[i] = pixl_token_id_text(charged[i].token_id);
		hours[i] = TimestampTzGetDatum(charged[i].hour);
		amounts[i] = Int64GetDatum(charged[i].charged);
	}
	args[0] = PointerGetDatum(pixl_array(tokens, NULL, n, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(hours, NULL, n, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(amounts, NULL, n, INT8OID));

	/*
	 * A period starts at a UTC midnight, so daily rollup rows fall wholly in
	 * or out of it; periods are at most a month, so older rows are not read.
	 * A store's count is its tokens' (a token keeps its store).  Only what
	 * charged something this period is seeded: a counter is kept until the
	 * server stops, and idle stores must not fill the table (quota.c).
	 */
	sql = psprintf("WITH stores AS ("
				   " SELECT st.store_id, %1$s.pixl_quota_period_start(pg_catalog.now(), st.billing_day) AS start"
				   " FROM %1$s.pixl_stores st JOIN %1$s.pixl_plans p ON p.plan OPERATOR(pg_catalog.=) st.plan"
				   " WHERE p.period_quota IS NOT NULL), "
				   "tokens AS ("
				   " SELECT g.token_id, g.store_id,"
				   " %1$s.pixl_quota_period_start(pg_catalog.now(), st.billing_day) AS start"
				   " FROM %1$s.pixl_token_registry g"
				   " JOIN %1$s.pixl_stores st ON st.store_id OPERATOR(pg_catalog.=) g.store_id"
				   " WHERE g.period_quota IS NOT NULL), "
				   "since AS (SELECT pg_catalog.min(x.start) AS start FROM"
				   " (SELECT start FROM stores UNION ALL SELECT start FROM tokens) x), "
				   "charged AS ("
				   " SELECT r.token_id, r.bucket, r.charged FROM %1$s.pixl_usage_rollups r"
				   " WHERE r.bucket OPERATOR(pg_catalog.>=) (SELECT since.start FROM since)"
				   " AND r.charged OPERATOR(pg_catalog.<>) 0"
				   " UNION ALL"
				   " SELECT u.t, u.b, u.c FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				   " pg_catalog.unnest($3)) AS u(t, b, c)), "
				   "store_sums AS ("
				   " SELECT x.store_id, pg_catalog.sum(c.charged) AS used FROM stores x"
				   " JOIN %1$s.pixl_token_registry g ON g.store_id OPERATOR(pg_catalog.=) x.store_id"
				   " JOIN charged c ON c.token_id OPERATOR(pg_catalog.=) g.token_id"
				   " AND c.bucket OPERATOR(pg_catalog.>=) x.start GROUP BY 1), "
				   "token_sums AS ("
				   " SELECT y.token_id, pg_catalog.sum(c.charged) AS used FROM tokens y"
				   " JOIN charged c ON c.token_id OPERATOR(pg_catalog.=) y.token_id"
				   " AND c.bucket OPERATOR(pg_catalog.>=) y.start GROUP BY 1), "
				   "seeds AS ("
				   " SELECT x.store_id, NULL::pg_catalog.text AS token_id, x.start, ss.used"
				   " FROM stores x JOIN store_sums ss"
				   " ON ss.store_id OPERATOR(pg_catalog.=) x.store_id"
				   " UNION ALL"
				   " SELECT y.store_id, y.token_id, y.start, ts.used"
				   " FROM tokens y JOIN token_sums ts"
				   " ON ts.token_id OPERATOR(pg_catalog.=) y.token_id) "
				   "SELECT %1$s.pixl_quota_seed(z.store_id, z.start, z.used::pg_catalog.int8, z.token_id)"
				   " FROM seeds z WHERE z.used OPERATOR(pg_catalog.>) 0",
				   s);
	rc = SPI_execute_with_args(sql, 3, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	pfree(sql);
	return (int64) SPI_processed;
}

void
pixl_usage_fold(const PixlExtension *ext, const PixlAggSnapshot *aggs, int n)
{
	FoldColumns hourly;
	FoldColumns daily;
	TimestampTz until;
	Oid			latency_array;
	bool		with_cost;
	bool		with_scopes;

	if (n == 0)
		return;
	latency_array = fold_latency_array_type(ext);
	with_cost = fold_has_column(ext, "charged");
	with_scopes = fold_has_column(ext, "scopes_used");
	until = fold_daily_until(ext->schema);
	fold_columns_init(&hourly, n);
	fold_columns_init(&daily, n);
	for (int i = 0; i < n; i++)
	{
		fold_columns_add(&hourly, &aggs[i]);
		if (aggs[i].key.hour < until)
			fold_columns_add(&daily, &aggs[i]);
	}
	fold_rollup(ext, latency_array, "pixl_usage_hourly", false, with_cost,
				with_scopes, &hourly);
	if (daily.n > 0)
		fold_rollup(ext, latency_array, "pixl_usage_daily", true, with_cost,
					with_scopes, &daily);
	fold_activity(ext->schema, aggs, n);
}
