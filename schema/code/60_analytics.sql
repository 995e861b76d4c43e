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


-- Scopes granted but not exercised: per token, its granted scopes, the
-- scopes its admitted calls (status 200) required in the last days days
-- (scopes_used of the rollups, as of the last fold), the granted ones
-- never exercised, and the narrower set it could have: the exercised
-- scopes its grant still admits (X:read served by an X:write grant counts
-- as X:read: the write was never exercised).  NULL narrower set when
-- nothing was exercised: no call named a scope (a route that asks for '*'
-- exercises none), or none was admitted, and no set can be derived.  A
-- refused call (403 insufficient_scope, 429) exercised nothing.  Rollup
-- rows written before 1.2, by pixl_backfill_usage and through 1.0's
-- pixl_verify_token kept no scopes.  The window starts at the UTC hour of
-- now() - days, stitched like pixl_usage_rows: whole UTC days from
-- pixl_usage_rollups, the hours before the first of them from
-- pixl_usage_hourly.  for_token_id NULL: every token not revoked of the
-- caller's stores (a platform admin: of every store).  (for_token_id, not
-- token_id: that is a result column.)
-- The rows of pixl_token_scope_use and of pixl_token_hygiene's scope
-- columns: for_token_id, or (NULL) every token not revoked, of the stores
-- that both the calling role and caller may see (pixl_role_denied checks
-- the calling role whatever caller says, so PUBLIC may call this).
CREATE OR REPLACE FUNCTION pixl_scope_use_rows(for_token_id text, days int, caller oid)
	RETURNS TABLE (token_id text, store_id text, granted text[], exercised text[],
				   unused text[], narrower_scopes text[], requests bigint,
				   since timestamptz)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	WITH win AS (
		SELECT h AS v_hour,
			   CASE WHEN date_trunc('day', h, 'UTC') < h
					THEN date_trunc('day', h, 'UTC') + interval '1 day'
					ELSE date_trunc('day', h, 'UTC') END AS v_day
		  FROM (SELECT date_trunc('hour', now() - make_interval(days => $2), 'UTC') AS h) x
	), toks AS (
		SELECT t.token_id, t.store_id, t.scope_bits
		  FROM @extschema@.pixl_token_registry t
		 WHERE CASE WHEN $1 IS NOT NULL THEN t.token_id = $1
					ELSE t.revoked_at IS NULL END
		   AND @extschema@.pixl_role_denied(t.store_id, $3) IS NULL
	), used AS (
		SELECT u.token_id, bit_or(u.scopes_used) AS bits, sum(u.requests)::bigint AS requests
		  FROM (SELECT r.token_id, r.scopes_used, r.requests
				  FROM @extschema@.pixl_usage_rollups r, win w
				 WHERE r.bucket >= w.v_day AND r.token_id IN (SELECT k.token_id FROM toks k)
				UNION ALL
				SELECT h.token_id, h.scopes_used, h.requests
				  FROM @extschema@.pixl_usage_hourly h, win w
				 WHERE h.bucket >= w.v_hour AND h.bucket < w.v_day
				   AND h.token_id IN (SELECT k.token_id FROM toks k)) u
		 GROUP BY u.token_id
	)
	SELECT k.token_id, k.store_id,
		   @extschema@.pixl_scope_names(k.scope_bits),
		   @extschema@.pixl_scope_names(coalesce(x.bits, 0)),
		   @extschema@.pixl_scope_names(k.scope_bits & ~coalesce(x.bits, 0)),
		   CASE WHEN coalesce(x.bits, 0) = 0 THEN NULL
				ELSE ARRAY(SELECT e.name
							 FROM unnest(@extschema@.pixl_scope_names(x.bits)) WITH ORDINALITY AS e(name, n)
							WHERE e.name = ANY (@extschema@.pixl_scope_names(k.scope_bits))
							   OR (e.name LIKE '%:read'
								   AND left(e.name, -5) || ':write' = ANY (@extschema@.pixl_scope_names(k.scope_bits)))
							ORDER BY e.n) END,
		   coalesce(x.requests, 0),
		   (SELECT w.v_hour FROM win w)
	  FROM toks k
	  LEFT JOIN used x ON x.token_id = k.token_id
	 ORDER BY k.store_id, k.token_id;
$$;

CREATE OR REPLACE FUNCTION pixl_token_scope_use_impl(caller_ticket bigint, for_token_id text, days int)
	RETURNS TABLE (token_id text, store_id text, granted text[], exercised text[],
				   unused text[], narrower_scopes text[], requests bigint,
				   since timestamptz)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_token_scope_use(text, integer)');
BEGIN
	IF days IS NULL OR days NOT BETWEEN 1 AND 3650 THEN
		RAISE EXCEPTION 'invalid number of days %', coalesce(days::text, 'NULL')
			USING ERRCODE = 'PX031',
				  HINT = 'Ask for 1 to 3650 days (90 is the default).';
	END IF;
	IF for_token_id IS NOT NULL THEN
		PERFORM @extschema@.pixl_check_usage_token(for_token_id, v_caller);
	END IF;
	RETURN QUERY SELECT * FROM @extschema@.pixl_scope_use_rows(for_token_id, days, v_caller);
END
$$;

CREATE OR REPLACE FUNCTION pixl_token_scope_use(for_token_id text DEFAULT NULL, days int DEFAULT 90)
	RETURNS TABLE (token_id text, store_id text, granted text[], exercised text[],
				   unused text[], narrower_scopes text[], requests bigint,
				   since timestamptz)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_token_scope_use_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_token_scope_use(text, integer) IS
	'Per token (NULL: every token not revoked of the caller''s stores): the scopes granted, those its admitted calls required in the last days days (as of the last fold), the granted ones never exercised, and the narrower set it could have (NULL when none was exercised)';
