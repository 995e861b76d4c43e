------------------------------------------------------------------------------
-- Analytics (the user guide's "Viewing Token Usage")
------------------------------------------------------------------------------

-- The start of a period: today is the last 24 hours, year the last 365 days.
CREATE OR REPLACE FUNCTION pixl_usage_period_start(period text) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	CASE period
		WHEN 'today' THEN RETURN now() - interval '24 hours';
		WHEN '7d' THEN RETURN now() - interval '7 days';
		WHEN '30d' THEN RETURN now() - interval '30 days';
		WHEN 'year' THEN RETURN now() - interval '365 days';
		WHEN 'all' THEN RETURN '-infinity';
		ELSE
			RAISE EXCEPTION 'unknown period %', @extschema@.pixl_quote(period)
				USING ERRCODE = 'PX015',
					  HINT = 'Valid periods are today, 7d, 30d, year and all.';
	END CASE;
END
$$;

-- Every read of usage goes through the one stitching of the rollups below:
-- each hour is counted once, from pixl_usage_daily for the UTC days that
-- maintenance rolled up (those before pixl_usage_daily_state.rolled_up_until)
-- and from pixl_usage_hourly for every later hour.  The rows are those of
-- the rollup tables, every column (SELECT *: pixl_usage_daily and
-- pixl_usage_hourly have the same columns in the same order, in a fresh and
-- an upgraded install alike), so a column added to the rollups reaches
-- every reader.  Internal: pixl_usage_by_day and pixl_usage_rows read it.
CREATE OR REPLACE VIEW @extschema@.pixl_usage_rollups AS
SELECT d.*
  FROM @extschema@.pixl_usage_daily d
 WHERE d.bucket < coalesce((SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s),
						   '-infinity')
UNION ALL
SELECT h.*
  FROM @extschema@.pixl_usage_hourly h
 WHERE h.bucket >= coalesce((SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s),
							'-infinity');

COMMENT ON VIEW @extschema@.pixl_usage_rollups IS
	'Internal: every rollup row counted once, daily rows for the days rolled up, hourly rows after them';


-- Usage of a token since a moment, per method, endpoint and bucket, from
-- the rollups only (never the raw events, which are kept for the recent
-- calls and as a sample, not for every request), starting with since's own
-- hour in whole: a period's start is rounded down to its UTC hour.  The
-- whole UTC days from since on come from pixl_usage_rollups, the hours
-- before the first of them from pixl_usage_hourly.  by_day false reads
-- every hour from pixl_usage_hourly (for buckets that are not UTC days).
-- With the rows' latency histograms (NULL on rows of before 1.1 that have
-- responses).
CREATE OR REPLACE FUNCTION @extschema@.pixl_usage_rows(token_id text, since timestamptz, by_day boolean DEFAULT true)
	RETURNS SETOF @extschema@.pixl_usage_rollups
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_hour	timestamptz := date_trunc('hour', since, 'UTC');	-- first hour
	v_day	timestamptz := date_trunc('day', v_hour, 'UTC');	-- first whole day
BEGIN
	IF v_day < v_hour THEN
		v_day := v_day + interval '1 day';
	END IF;
	IF NOT by_day THEN
		v_day := 'infinity';
	END IF;
	RETURN QUERY
		SELECT r.*
		  FROM @extschema@.pixl_usage_rollups r
		 WHERE r.token_id = pixl_usage_rows.token_id AND r.bucket >= v_day
		UNION ALL
		SELECT h.*
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = pixl_usage_rows.token_id AND h.bucket >= v_hour AND h.bucket < v_day;
END
$$;


-- The arguments of pixl_recent_calls; its implementation checks the token
-- first (1.0 did that here).
CREATE OR REPLACE FUNCTION pixl_check_recent_calls(token_id text, status int, lim int)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF status IS NOT NULL AND status NOT BETWEEN 100 AND 599 THEN
		RAISE EXCEPTION 'invalid HTTP status %', status
			USING ERRCODE = 'PX016',
				  HINT = 'An HTTP status is between 100 and 599, or NULL for every status.';
	END IF;
	IF lim IS NULL OR lim NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'invalid limit %', coalesce(lim::text, 'NULL')
			USING ERRCODE = 'PX031',
				  HINT = 'Ask for 1 to 1000 calls.';
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION pixl_usage_summary(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (total_requests bigint, requests_today bigint,
				   avg_response_ms double precision, error_rate double precision,
				   p50_ms double precision, p95_ms double precision,
				   p99_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_usage_summary_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_usage_summary(text, text) IS
	'Total requests of the period, requests of the last 24 hours, average response time, error rate (percent of status >= 400), and the 50th, 95th and 99th percentile response times (within 4.43 %; NULL if the period has responses folded before 1.1)';

CREATE OR REPLACE FUNCTION pixl_usage_timeline(token_id text, period text)
	RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint,
				   p95_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_usage_timeline_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_usage_timeline(text, text) IS
	'Requests, errors and the 95th percentile response time per hour (today, 7d), day (30d, year) or month (all), empty buckets included';

CREATE OR REPLACE FUNCTION pixl_usage_endpoints(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (method text, endpoint text, requests bigint,
				   success_rate double precision, avg_response_ms double precision,
				   p95_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_usage_endpoints_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_usage_endpoints(text, text) IS
	'Requests, success rate (percent of status < 400), average and 95th percentile response time per method and endpoint, most called first';

CREATE OR REPLACE FUNCTION pixl_recent_calls(token_id text, status int DEFAULT NULL, lim int DEFAULT 20)
	RETURNS TABLE (at timestamptz, method text, endpoint text, status int,
				   ip inet, response_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_recent_calls_impl(@extschema@.pixl_caller_ticket(), $1, $2, $3);
$$;

COMMENT ON FUNCTION pixl_recent_calls(text, int, int) IS
	'The latest calls of a token, newest first, optionally of one status';
