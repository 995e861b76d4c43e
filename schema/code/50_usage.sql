------------------------------------------------------------------------------
-- Usage: writing events and counts into the rollups, responses,
-- maintenance (partitions, the daily roll-up, retention), backfills and
-- the guards of the usage tables (state/40_usage.sql).
------------------------------------------------------------------------------

-- pixltoken.usage_retention as an interval (the GUC is in minutes).
CREATE OR REPLACE FUNCTION pixl_usage_retention() RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT s.setting::bigint FROM pg_catalog.pg_settings s
					  WHERE s.name = 'pixltoken.usage_retention'), 90 * 24 * 60)
		   * interval '1 minute';
$$;


------------------------------------------------------------------------------
-- Writers of usage and the daily roll-up: writers hold pixl_usage_daily_state
-- in ROW EXCLUSIVE mode from before their first usage-table access to their
-- commit; maintenance takes SHARE ROW EXCLUSIVE (which waits for writers and
-- blocks new ones) to roll a day up and move rolled_up_until.  So a writer
-- adds an event of a rolled-up day to pixl_usage_daily exactly when its
-- hourly row is not part of what maintenance summed.  Replaces 1.0's
-- advisory lock, which any role could take and so stall the worker.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_usage_daily_until() RETURNS timestamptz
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	LOCK TABLE @extschema@.pixl_usage_daily_state IN ROW EXCLUSIVE MODE;
	RETURN (SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s);
END
$$;


-- The one place that adds to the rollups (REVIEW: the arithmetic was
-- written five times).  Adds counts per (token, hour, method, endpoint) to
-- pixl_usage_hourly, and to pixl_usage_daily for days already rolled up.
-- A token's hour holds at most pixltoken.max_endpoints_per_hour distinct
-- (method, endpoint) rows: counts of further ones go to its
-- (method '', endpoint '(other)') row.  Deltas (a response changing a
-- row's status) come through here too, with requests 0.  The calls that
-- come this way (1.0's entry point, backfills) weigh 1 each and were not
-- charged to an allowance: cost grows by requests, charged not at all
-- (weighted and charged calls are counted in shared memory and folded by
-- the worker, src/writer/usage_fold.c).  latencies: the
-- histograms of the response times (pixl_latency, code/10_latency.sql), added
-- to a row's unless the row has responses but no histogram (written
-- before 1.1): that one stays NULL rather than become a partial one.
CREATE OR REPLACE FUNCTION @extschema@.pixl_rollup_add(token_ids text[], buckets timestamptz[],
											methods text[], endpoints text[],
											requests bigint[], errors bigint[],
											ms_sums double precision[],
											ms_counts bigint[],
											rate_limited bigint[],
											latencies @extschema@.pixl_latency[])
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_daily	timestamptz := coalesce(@extschema@.pixl_usage_daily_until(), '-infinity');
	v_cap	int := coalesce(nullif(current_setting('pixltoken.max_endpoints_per_hour', true), '')::int, 100);
BEGIN
	WITH src AS (
		SELECT u.token_id, date_trunc('hour', u.bucket, 'UTC') AS bucket,
			   coalesce(u.method, '') AS method, coalesce(u.endpoint, '') AS endpoint,
			   sum(u.requests)::bigint AS requests, sum(u.errors)::bigint AS errors,
			   sum(u.ms_sum) AS ms_sum, sum(u.ms_count)::bigint AS ms_count,
			   sum(u.rate_limited)::bigint AS rate_limited,
			   @extschema@.pixl_latency_merge(u.latency) AS latency
		  FROM unnest(token_ids, buckets, methods, endpoints, requests, errors,
					  ms_sums, ms_counts, rate_limited, latencies)
			AS u(token_id, bucket, method, endpoint, requests, errors, ms_sum, ms_count,
				 rate_limited, latency)
		 GROUP BY 1, 2, 3, 4
	), known AS (
		SELECT s.*,
			   (s.method = '' AND s.endpoint = '(other)')
			   OR EXISTS (SELECT 1 FROM @extschema@.pixl_usage_hourly h
						   WHERE h.token_id = s.token_id AND h.bucket = s.bucket
							 AND h.method = s.method AND h.endpoint = s.endpoint) AS present
		  FROM src s
	), room AS (
		SELECT k.*,
			   v_cap - (SELECT count(*) FROM @extschema@.pixl_usage_hourly h
						 WHERE h.token_id = k.token_id AND h.bucket = k.bucket
						   AND NOT (h.method = '' AND h.endpoint = '(other)')) AS free,
			   row_number() OVER (PARTITION BY k.token_id, k.bucket, k.present
								  ORDER BY k.requests DESC, k.method, k.endpoint) AS rn
		  FROM known k
	), agg AS (
		SELECT r.token_id, r.bucket,
			   CASE WHEN r.present OR r.rn <= r.free THEN r.method ELSE '' END AS method,
			   CASE WHEN r.present OR r.rn <= r.free THEN r.endpoint ELSE '(other)' END AS endpoint,
			   sum(r.requests)::bigint AS requests, sum(r.errors)::bigint AS errors,
			   sum(r.ms_sum) AS ms_sum, sum(r.ms_count)::bigint AS ms_count,
			   sum(r.rate_limited)::bigint AS rate_limited,
			   @extschema@.pixl_latency_merge(r.latency) AS latency
		  FROM room r
		 GROUP BY 1, 2, 3, 4
	), hourly AS (
		INSERT INTO @extschema@.pixl_usage_hourly AS h
			(token_id, bucket, method, endpoint, requests, errors,
			 response_ms_sum, response_ms_count, rate_limited, latency, cost)
		SELECT a.token_id, a.bucket, a.method, a.endpoint, a.requests, a.errors,
			   a.ms_sum, a.ms_count, a.rate_limited, a.latency, a.requests
		  FROM agg a
		ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
		   SET requests = h.requests + excluded.requests,
			   errors = h.errors + excluded.errors,
			   response_ms_sum = h.response_ms_sum + excluded.response_ms_sum,
			   response_ms_count = h.response_ms_count + excluded.response_ms_count,
			   rate_limited = h.rate_limited + excluded.rate_limited,
			   latency = CASE WHEN h.latency IS NULL AND h.response_ms_count > 0 THEN NULL
							  ELSE @extschema@.pixl_latency_add(h.latency, excluded.latency) END,
			   cost = h.cost + excluded.cost
	)
	INSERT INTO @extschema@.pixl_usage_daily AS d
		(token_id, bucket, method, endpoint, requests, errors,
		 response_ms_sum, response_ms_count, rate_limited, latency, cost)
	SELECT a.token_id, date_trunc('day', a.bucket, 'UTC'), a.method, a.endpoint,
		   sum(a.requests), sum(a.errors), sum(a.ms_sum), sum(a.ms_count),
		   sum(a.rate_limited), @extschema@.pixl_latency_merge(a.latency), sum(a.requests)
	  FROM agg a
	 WHERE a.bucket < v_daily
	 GROUP BY 1, 2, 3, 4
	ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
	   SET requests = d.requests + excluded.requests,
		   errors = d.errors + excluded.errors,
		   response_ms_sum = d.response_ms_sum + excluded.response_ms_sum,
		   response_ms_count = d.response_ms_count + excluded.response_ms_count,
		   rate_limited = d.rate_limited + excluded.rate_limited,
		   latency = CASE WHEN d.latency IS NULL AND d.response_ms_count > 0 THEN NULL
						  ELSE @extschema@.pixl_latency_add(d.latency, excluded.latency) END,
		   cost = d.cost + excluded.cost;
END
$$;


-- last_used_at (and the previous secret's use) of tokens, once per token.
CREATE OR REPLACE FUNCTION @extschema@.pixl_activity_add(token_ids text[], last_used timestamptz[],
											  previous_uses bigint[],
											  previous_last timestamptz[])
	RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO @extschema@.pixl_token_activity AS a
		(token_id, last_used_at, previous_secret_last_used_at, previous_secret_uses)
	SELECT u.token_id, max(u.last_used), max(u.previous_last), coalesce(sum(u.previous_uses), 0)
	  FROM unnest(token_ids, last_used, previous_uses, previous_last)
		AS u(token_id, last_used, previous_uses, previous_last)
	 WHERE u.last_used IS NOT NULL
	   AND EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry r WHERE r.token_id = u.token_id)
	 GROUP BY u.token_id
	ON CONFLICT (token_id) DO UPDATE
	   SET last_used_at = greatest(a.last_used_at, excluded.last_used_at),
		   previous_secret_last_used_at = greatest(a.previous_secret_last_used_at,
												   excluded.previous_secret_last_used_at),
		   previous_secret_uses = a.previous_secret_uses + excluded.previous_secret_uses;
$$;


CREATE OR REPLACE FUNCTION @extschema@.pixl_write_pending(request_ids bigint[], ats timestamptz[],
											   token_ids text[], buckets timestamptz[],
											   methods text[], endpoints text[],
											   verify_statuses int[])
	RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO @extschema@.pixl_usage_pending_responses
		(request_id, at, token_id, bucket, method, endpoint, verify_status)
	SELECT u.request_id, u.at, u.token_id, u.bucket, u.method, u.endpoint, u.verify_status
	  FROM unnest(request_ids, ats, token_ids, buckets, methods, endpoints, verify_statuses)
		AS u(request_id, at, token_id, bucket, method, endpoint, verify_status)
	ON CONFLICT (request_id) DO NOTHING;
$$;


-- Late reports: each deletes its request's row and adds its response to
-- the rollups of the row's key, in this one transaction; a report whose
-- row is gone adds nothing.  Returns the responses added.
CREATE OR REPLACE FUNCTION @extschema@.pixl_apply_late_responses(request_ids bigint[], statuses int[],
													  response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
	v_tok	text[];
	v_at	timestamptz[];
	v_meth	text[];
	v_end	text[];
	v_err	bigint[];
	v_ms	double precision[];
	v_lat	@extschema@.pixl_latency[];
BEGIN
	PERFORM @extschema@.pixl_usage_daily_until();	-- lock order: see above
	WITH d AS (
		DELETE FROM @extschema@.pixl_usage_pending_responses p
		 USING unnest(request_ids, statuses, response_ms) AS u(request_id, status, response_ms)
		 WHERE p.request_id = u.request_id
		RETURNING p.token_id, p.bucket, p.method, p.endpoint, p.verify_status,
				  u.status, u.response_ms
	)
	SELECT count(*), array_agg(d.token_id), array_agg(d.bucket), array_agg(d.method),
		   array_agg(d.endpoint),
		   array_agg(((d.status >= 400)::int - (d.verify_status >= 400)::int)::bigint),
		   array_agg(d.response_ms),
		   array_agg(@extschema@.pixl_latency_add(NULL::@extschema@.pixl_latency, d.response_ms))
	  INTO n, v_tok, v_at, v_meth, v_end, v_err, v_ms, v_lat
	  FROM d;
	IF n > 0 THEN
		PERFORM @extschema@.pixl_rollup_add(v_tok, v_at, v_meth, v_end,
			array_fill(0::bigint, ARRAY[n::int]), v_err, v_ms,
			array_fill(1::bigint, ARRAY[n::int]), array_fill(0::bigint, ARRAY[n::int]), v_lat);
	END IF;
	RETURN n;
END
$$;


-- Responses that arrived before their event (rare) land on the rows just
-- inserted.
CREATE OR REPLACE FUNCTION @extschema@.pixl_match_unmatched(request_ids bigint[]) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ids		bigint[];
	v_ats		timestamptz[];
	v_statuses	int[];
	v_ms		double precision[];
BEGIN
	IF EXISTS (SELECT 1 FROM @extschema@.pixl_usage_unmatched_responses) THEN
		WITH m AS (
			DELETE FROM @extschema@.pixl_usage_unmatched_responses u
			 WHERE u.request_id = ANY (request_ids)
			RETURNING u.request_id, u.at, u.status, u.response_ms
		)
		SELECT array_agg(m.request_id), array_agg(m.at), array_agg(m.status::int),
			   array_agg(m.response_ms)
		  INTO v_ids, v_ats, v_statuses, v_ms
		  FROM m;
		IF v_ids IS NOT NULL THEN
			PERFORM @extschema@.pixl_apply_responses(v_ids, v_ats, v_statuses, v_ms);
		END IF;
	END IF;
END
$$;


-- Inserts events with their counts (1.0's worker path, and backfills):
-- raw rows, then the rollups and last_used_at of the rows inserted.
CREATE OR REPLACE FUNCTION @extschema@.pixl_insert_usage(request_ids bigint[], ats timestamptz[],
														 token_ids text[], methods text[],
														 endpoints text[], ips inet[],
														 statuses int[], verify_statuses int[],
														 response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
	v_tok	text[];
	v_at	timestamptz[];
	v_meth	text[];
	v_end	text[];
	v_err	bigint[];
	v_ms	double precision[];
	v_msc	bigint[];
	v_rl	bigint[];
	v_lat	@extschema@.pixl_latency[];
BEGIN
	PERFORM @extschema@.pixl_usage_daily_until();	-- lock order: see above
	WITH ins AS (
		INSERT INTO @extschema@.pixl_usage_events AS e
			(at, request_id, token_id, store_id, method, endpoint, ip,
			 status, verify_status, response_ms)
		SELECT u.at, u.request_id, u.token_id, r.store_id, u.method, u.endpoint,
			   u.ip, u.status, u.verify_status, u.response_ms
		  FROM unnest(request_ids, ats, token_ids, methods, endpoints, ips,
					  statuses, verify_statuses, response_ms)
			AS u(request_id, at, token_id, method, endpoint, ip, status,
				 verify_status, response_ms)
		  LEFT JOIN @extschema@.pixl_token_registry r ON r.token_id = u.token_id
		ON CONFLICT DO NOTHING
		RETURNING e.at, e.token_id, e.method, e.endpoint, e.status, e.response_ms,
				  e.verify_status
	)
	SELECT count(*), array_agg(i.token_id), array_agg(i.at), array_agg(i.method),
		   array_agg(i.endpoint), array_agg((i.status >= 400)::int::bigint),
		   array_agg(coalesce(i.response_ms, 0)),
		   array_agg((i.response_ms IS NOT NULL)::int::bigint),
		   array_agg((i.verify_status = 429)::int::bigint),
		   array_agg(@extschema@.pixl_latency_add(NULL::@extschema@.pixl_latency, i.response_ms))
	  INTO n, v_tok, v_at, v_meth, v_end, v_err, v_ms, v_msc, v_rl, v_lat
	  FROM ins i;
	IF n > 0 THEN
		PERFORM @extschema@.pixl_rollup_add(v_tok, v_at, v_meth, v_end,
			array_fill(1::bigint, ARRAY[n::int]), v_err, v_ms, v_msc, v_rl, v_lat);
		PERFORM @extschema@.pixl_activity_add(v_tok, v_at,
			array_fill(0::bigint, ARRAY[n::int]), array_fill(NULL::timestamptz, ARRAY[n::int]));
	END IF;
	PERFORM @extschema@.pixl_match_unmatched(request_ids);
	RETURN n;
END
$$;


-- What the worker writes for queued verification events.
CREATE OR REPLACE FUNCTION pixl_store_events(request_ids bigint[], ats timestamptz[],
								  token_ids text[], methods text[],
								  endpoints text[], ips inet[], statuses int[])
	RETURNS bigint
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_insert_usage(request_ids, ats, token_ids, methods,
		endpoints, ips, statuses, statuses,
		array_fill(NULL::double precision, ARRAY[cardinality(request_ids)]));
$$;


-- Sets the final status and response time of usage rows (what
-- pixl_recent_calls shows).  The rollups are not touched: every response
-- reaches them through the aggregates (usage_pending.c), raw row or not.
-- A request's response is reported once (PX068 refuses a second).
-- Responses without a row yet go to pixl_usage_unmatched_responses.
-- Returns the rows updated.
CREATE OR REPLACE FUNCTION @extschema@.pixl_apply_responses(request_ids bigint[], ats timestamptz[],
															statuses int[],
															response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
BEGIN
	WITH src AS (
		SELECT DISTINCT ON (u.request_id) u.request_id, u.at, u.status, u.response_ms
		  FROM unnest(request_ids, ats, statuses, response_ms) WITH ORDINALITY
			AS u(request_id, at, status, response_ms, ord)
		 ORDER BY u.request_id, u.ord DESC
	), upd AS (
		UPDATE @extschema@.pixl_usage_events e
		   SET status = s.status, response_ms = s.response_ms
		  FROM src s
		 WHERE e.request_id = s.request_id AND e.at = s.at
		RETURNING e.request_id
	), unmatched AS (
		INSERT INTO @extschema@.pixl_usage_unmatched_responses AS x
			(request_id, at, status, response_ms)
		SELECT s.request_id, s.at, s.status, s.response_ms
		  FROM src s
		 WHERE NOT EXISTS (SELECT 1 FROM upd u WHERE u.request_id = s.request_id)
		ON CONFLICT (request_id) DO UPDATE
		   SET status = excluded.status, response_ms = excluded.response_ms,
			   received_at = excluded.received_at
	)
	SELECT count(*) INTO n FROM upd u;
	RETURN n;
END
$$;


------------------------------------------------------------------------------
-- Maintenance
------------------------------------------------------------------------------

-- The partition of one UTC day, created if missing.  1.1: the schema is
-- written as @extschema@ gives it (already quoted), never through %I again,
-- so a schema name that needs quotes works.
CREATE OR REPLACE FUNCTION @extschema@.pixl_create_usage_partition(day date) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_name	text := 'pixl_usage_events_' || to_char(day, 'YYYYMMDD');
	v_from	timestamptz := day::timestamp AT TIME ZONE 'UTC';
	v_to	timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(format('%s.%I', '@extschema@', v_name)) IS NOT NULL THEN
		RETURN false;
	END IF;
	EXECUTE format('CREATE TABLE %s.%I (LIKE @extschema@.pixl_usage_events INCLUDING DEFAULTS)',
				   '@extschema@', v_name);
	EXECUTE format('ALTER TABLE %s.%I ADD PRIMARY KEY (request_id, at)', '@extschema@', v_name);
	EXECUTE format('CREATE INDEX %I ON %s.%I (token_id, at)', v_name || '_token_at', '@extschema@', v_name);
	EXECUTE format('REVOKE ALL ON %s.%I FROM PUBLIC', '@extschema@', v_name);
	EXECUTE format('WITH m AS (DELETE FROM @extschema@.pixl_usage_events_default WHERE at >= $1 AND at < $2 RETURNING *) '
				   'INSERT INTO %s.%I SELECT * FROM m', '@extschema@', v_name)
		USING v_from, v_to;
	EXECUTE format('ALTER TABLE @extschema@.pixl_usage_events ATTACH PARTITION %s.%I FOR VALUES FROM (%L) TO (%L)',
				   '@extschema@', v_name, v_from, v_to);
	RETURN true;
END
$$;


-- pixltoken.rollup_retention as an interval, NULL for ever (0).
CREATE OR REPLACE FUNCTION @extschema@.pixl_rollup_retention() RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT nullif(coalesce(nullif(current_setting('pixltoken.rollup_retention', true), '')::bigint, 0), 0)
		   * interval '1 minute';
$$;


-- Drops parent's day partitions (<parent>_YYYYMMDD) whose whole day lies
-- before cutoff; returns how many.  For the maintenance of raw usage and
-- of lifecycle events, which run as the owner (the drop guard below lets
-- only the owner drop them).
CREATE OR REPLACE FUNCTION @extschema@.pixl_drop_day_partitions(parent regclass, cutoff timestamptz) RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_pattern	text := '^' || (SELECT c.relname FROM pg_catalog.pg_class c
								 WHERE c.oid OPERATOR(pg_catalog.=) parent) || '_[0-9]{8}$';
	v_dropped	int := 0;
	r			record;
BEGIN
	FOR r IN
		SELECT c.relname
		  FROM pg_catalog.pg_inherits i
		  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
		 WHERE i.inhparent OPERATOR(pg_catalog.=) parent
		   AND c.relname ~ v_pattern
		   AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff
		 ORDER BY 1
	LOOP
		EXECUTE format('DROP TABLE %s.%I', '@extschema@', r.relname);
		v_dropped := v_dropped + 1;
	END LOOP;
	RETURN v_dropped;
END
$$;


-- 1.1: no advisory locks (see pixl_usage_maintenance_lock and
-- pixl_usage_daily_until); a retention shorter than pixltoken.usage_retention
-- is refused (PX062), so a role granted this function cannot wipe history;
-- rollups past pixltoken.rollup_retention and dead letters past the raw
-- retention are purged.
CREATE OR REPLACE FUNCTION @extschema@.pixl_run_maintenance(retention interval DEFAULT NULL,
															OUT partitions_created int,
															OUT partitions_dropped int,
															OUT rows_purged bigint)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET lock_timeout = '2s'	-- a long query on the default partition: retry later
AS $$
DECLARE
	v_setting	interval := @extschema@.pixl_usage_retention();
	v_retention	interval := coalesce(retention, v_setting);
	v_rollups	interval := @extschema@.pixl_rollup_retention();
	v_cutoff	timestamptz;
	v_today		date := (now() AT TIME ZONE 'UTC')::date;
	v_day		date;
	v_n			bigint;
	v_until		timestamptz := date_trunc('day', now(), 'UTC');
	v_done		timestamptz;
BEGIN
	IF v_retention <= interval '0' THEN
		RAISE EXCEPTION 'invalid usage retention %', v_retention
			USING ERRCODE = 'PX030',
				  HINT = 'Use a positive interval, e.g. ''90 days''.';
	END IF;
	IF v_retention < v_setting THEN
		RAISE EXCEPTION 'usage retention % is shorter than pixltoken.usage_retention (%)',
			v_retention, v_setting
			USING ERRCODE = 'PX062',
				  HINT = 'Pass NULL or a longer interval; to keep less, lower pixltoken.usage_retention (a server setting).';
	END IF;
	BEGIN
		LOCK TABLE @extschema@.pixl_usage_maintenance_lock IN EXCLUSIVE MODE NOWAIT;
	EXCEPTION WHEN lock_not_available THEN
		RETURN;					-- another run is under way
	END;
	v_cutoff := now() - v_retention;
	partitions_created := 0;
	partitions_dropped := 0;
	rows_purged := 0;

	-- Roll the days that are over up into pixl_usage_daily, first (before
	-- any partition lock: see pixl_usage_daily_until).  Writers wait for
	-- this transaction to end, so only once a day; if they keep their lock
	-- past lock_timeout the roll-up is left to the next run.
	SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
	IF v_done IS NULL OR v_done < v_until THEN
		BEGIN
			LOCK TABLE @extschema@.pixl_usage_daily_state IN SHARE ROW EXCLUSIVE MODE;
			-- a new snapshot: every writer that saw the old state has committed
			SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
			-- the hourly rows are the truth: a daily row is replaced, not added to
			-- (a day with an hour of responses but no histogram has none)
			INSERT INTO @extschema@.pixl_usage_daily AS d
				(token_id, bucket, method, endpoint, requests, errors,
				 response_ms_sum, response_ms_count, rate_limited, latency, cost, charged,
				 scopes_used)
			SELECT h.token_id, date_trunc('day', h.bucket, 'UTC'), h.method, h.endpoint,
				   sum(h.requests), sum(h.errors), sum(h.response_ms_sum), sum(h.response_ms_count),
				   sum(h.rate_limited),
				   CASE WHEN bool_or(h.latency IS NULL AND h.response_ms_count > 0) THEN NULL
						ELSE @extschema@.pixl_latency_merge(h.latency) END,
				   sum(h.cost), sum(h.charged), bit_or(h.scopes_used)
			  FROM @extschema@.pixl_usage_hourly h
			 WHERE h.bucket >= coalesce(v_done, '-infinity') AND h.bucket < v_until
			 GROUP BY 1, 2, 3, 4
			ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
			   SET requests = excluded.requests, errors = excluded.errors,
				   response_ms_sum = excluded.response_ms_sum,
				   response_ms_count = excluded.response_ms_count,
				   rate_limited = excluded.rate_limited,
				   latency = excluded.latency,
				   cost = excluded.cost, charged = excluded.charged,
				   scopes_used = excluded.scopes_used;
			INSERT INTO @extschema@.pixl_usage_daily_state AS s (rolled_up_until)
			VALUES (greatest(v_until, v_done))
			ON CONFLICT (singleton) DO UPDATE SET rolled_up_until = excluded.rolled_up_until;
		EXCEPTION WHEN lock_not_available THEN
			NULL;				-- writers busy: the next run rolls these days up
		END;
	END IF;

	FOR v_day IN
		SELECT v_today + k FROM generate_series(-1, 7) AS k
		 WHERE v_today + k + 1 > (v_cutoff AT TIME ZONE 'UTC')::date
		UNION
		SELECT DISTINCT (e.at AT TIME ZONE 'UTC')::date
		  FROM @extschema@.pixl_usage_events_default e
		 WHERE e.at >= v_cutoff AND e.at < 'infinity'
		ORDER BY 1
	LOOP
		IF @extschema@.pixl_create_usage_partition(v_day) THEN
			partitions_created := partitions_created + 1;
		END IF;
	END LOOP;

	partitions_dropped := @extschema@.pixl_drop_day_partitions('@extschema@.pixl_usage_events', v_cutoff);

	DELETE FROM @extschema@.pixl_usage_events_default e WHERE e.at < v_cutoff;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	rows_purged := v_n;
	DELETE FROM @extschema@.pixl_usage_unmatched_responses u
	 WHERE u.received_at < now() - interval '1 hour';
	DELETE FROM @extschema@.pixl_usage_pending_responses p
	 WHERE p.at < now() - interval '1 day';
	DELETE FROM @extschema@.pixl_usage_dead_letters x WHERE x.at < v_cutoff;
	IF v_rollups IS NOT NULL THEN
		DELETE FROM @extschema@.pixl_usage_hourly h WHERE h.bucket < now() - v_rollups;
		GET DIAGNOSTICS v_n = ROW_COUNT;
		rows_purged := rows_purged + v_n;
		DELETE FROM @extschema@.pixl_usage_daily d WHERE d.bucket < date_trunc('day', now() - v_rollups, 'UTC');
		GET DIAGNOSTICS v_n = ROW_COUNT;
		rows_purged := rows_purged + v_n;
	END IF;
END
$$;

COMMENT ON FUNCTION @extschema@.pixl_run_maintenance(interval) IS
	'Creates usage partitions ahead, drops raw usage past pixltoken.usage_retention (never a shorter retention) and rollups past pixltoken.rollup_retention; the worker calls it every minute';


------------------------------------------------------------------------------
-- Dated usage partitions are not members of the extension (pg_dump must
-- dump them), and they live in the extension's schema: the owner of that
-- schema (PG15: the database owner owns public) could DROP them, which the
-- schema owner may do to any table in it, and their indexes (and those of
-- the default partition), which are not attached to an index of the
-- parent.  This event trigger refuses the drop of a
-- pixl_usage_events_YYYYMMDD partition of the extension's schema (and of a
-- lifecycle events partition, pixl_events_YYYYMMDD), and of
-- an index named after a usage partition (pixl_usage_events_YYYYMMDD_* or
-- pixl_usage_events_default_*: the names pixl_create_usage_partition and
-- 1.0 give them; a dropped index's table is gone from the catalogs by
-- sql_drop), unless the current role is (a member of) the extension's
-- owner, as maintenance (SECURITY DEFINER) and superusers are.  PX063.
-- pixl_guard_usage_indexes does the same for ALTER INDEX (and ALTER TABLE
-- naming an index) on an index of a usage partition.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_guard_usage_partitions() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_owner		oid;
	v_schema	name;
	r			record;
BEGIN
	SELECT e.extowner, n.nspname INTO v_owner, v_schema
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	 WHERE e.extname OPERATOR(pg_catalog.=) 'pixltoken';
	IF v_owner IS NULL OR pg_catalog.pg_has_role(v_owner, 'MEMBER') THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT o.object_type, o.object_name
		  FROM pg_catalog.pg_event_trigger_dropped_objects() o
		 WHERE o.schema_name OPERATOR(pg_catalog.=) v_schema
		   AND ((o.object_type OPERATOR(pg_catalog.=) 'table'
				 AND o.object_name OPERATOR(pg_catalog.~) '^pixl_(usage_)?events_[0-9]{8}$')
				OR (o.object_type OPERATOR(pg_catalog.=) 'index'
					AND o.object_name OPERATOR(pg_catalog.~) '^pixl_usage_events_([0-9]{8}|default)_'))
		 ORDER BY o.object_type OPERATOR(pg_catalog.=) 'index'
	LOOP
		IF r.object_type OPERATOR(pg_catalog.=) 'index' THEN
			RAISE EXCEPTION 'index % of a usage partition can only be dropped by pixl_run_maintenance()', r.object_name
				USING ERRCODE = 'PX063',
					  HINT = 'The indexes of usage partitions go with their partitions, which maintenance drops past pixltoken.usage_retention.';
		END IF;
		IF r.object_name OPERATOR(pg_catalog.~) '^pixl_events_' THEN
			RAISE EXCEPTION 'events partition % can only be dropped by pixl_events_maintenance()', r.object_name
				USING ERRCODE = 'PX063',
					  HINT = 'Lifecycle events past pixltoken.event_retention are dropped by maintenance; lower that setting to keep less.';
		END IF;
		RAISE EXCEPTION 'usage partition % can only be dropped by pixl_run_maintenance()', r.object_name
			USING ERRCODE = 'PX063',
				  HINT = 'Raw usage past pixltoken.usage_retention is dropped by maintenance; lower that setting to keep less.';
	END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS pixl_guard_usage_partitions;
CREATE EVENT TRIGGER pixl_guard_usage_partitions ON sql_drop
	EXECUTE FUNCTION @extschema@.pixl_guard_usage_partitions();


-- DROP INDEX [CONCURRENTLY] of a usage partition's index, refused before
-- it starts (src/usage_guard.c: CONCURRENTLY commits its first steps
-- before sql_drop fires).
CREATE OR REPLACE FUNCTION @extschema@.pixl_guard_usage_index_drop() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'pixl_guard_usage_index_drop'
	LANGUAGE C;

DROP EVENT TRIGGER IF EXISTS pixl_guard_usage_index_drop;
CREATE EVENT TRIGGER pixl_guard_usage_index_drop ON ddl_command_start
	WHEN TAG IN ('DROP INDEX')
	EXECUTE FUNCTION @extschema@.pixl_guard_usage_index_drop();


CREATE OR REPLACE FUNCTION @extschema@.pixl_guard_usage_indexes() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_owner		oid;
	v_schema	oid;
	r			record;
BEGIN
	SELECT e.extowner, e.extnamespace INTO v_owner, v_schema
	  FROM pg_catalog.pg_extension e
	 WHERE e.extname OPERATOR(pg_catalog.=) 'pixltoken';
	IF v_owner IS NULL OR pg_catalog.pg_has_role(v_owner, 'MEMBER') THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT ic.relname AS index_name
		  FROM pg_catalog.pg_event_trigger_ddl_commands() c
		  JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) c.objid
		  JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) ic.oid
		  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) i.indrelid
		 WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
		   AND t.relnamespace OPERATOR(pg_catalog.=) v_schema
		   AND t.relname OPERATOR(pg_catalog.~) '^pixl_usage_events_([0-9]{8}|default)$'
	LOOP
		RAISE EXCEPTION 'index % of a usage partition can only be changed by pixl_run_maintenance()', r.index_name
			USING ERRCODE = 'PX063',
				  HINT = 'The indexes of usage partitions are made and dropped with their partitions by maintenance.';
	END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS pixl_guard_usage_indexes;
CREATE EVENT TRIGGER pixl_guard_usage_indexes ON ddl_command_end
	WHEN TAG IN ('ALTER INDEX', 'ALTER TABLE')
	EXECUTE FUNCTION @extschema@.pixl_guard_usage_indexes();


------------------------------------------------------------------------------
-- Loading historical usage: two events of one microsecond, in two calls,
-- are two events.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_backfill_usage(token_ids text[], ats timestamptz[],
									methods text[] DEFAULT NULL,
									endpoints text[] DEFAULT NULL,
									statuses int[] DEFAULT NULL,
									response_ms double precision[] DEFAULT NULL,
									ips inet[] DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			int := coalesce(cardinality(token_ids), 0);
	v_bad		text;
	v_status	int;
	v_ms		double precision;
	v_cutoff	timestamptz := now() - @extschema@.pixl_usage_retention();
	v_day		date;
	v_ids		bigint[];
	v_vs		int[];
BEGIN
	IF cardinality(ats) IS DISTINCT FROM n
	   OR coalesce(cardinality(methods), n) <> n OR coalesce(cardinality(endpoints), n) <> n
	   OR coalesce(cardinality(statuses), n) <> n OR coalesce(cardinality(response_ms), n) <> n
	   OR coalesce(cardinality(ips), n) <> n THEN
		RAISE EXCEPTION 'usage arrays of different lengths'
			USING ERRCODE = 'PX031',
				  HINT = format('Pass %s elements in every array that is not NULL (one per event).', n);
	END IF;
	IF n = 0 THEN
		RETURN 0;
	END IF;

	SELECT t INTO v_bad FROM unnest(token_ids) AS t
	 WHERE t IS NULL OR NOT EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry g WHERE g.token_id = t)
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'token % does not exist', @extschema@.pixl_quote(v_bad)
			USING ERRCODE = 'PX011',
				  HINT = 'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.';
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(ats) AS a WHERE a IS NULL OR NOT isfinite(a)) THEN
		RAISE EXCEPTION 'invalid event time %',
			(SELECT coalesce(a::text, 'NULL') FROM unnest(ats) AS a WHERE a IS NULL OR NOT isfinite(a) LIMIT 1)
			USING ERRCODE = 'PX031',
				  HINT = 'Every event needs a finite time.';
	END IF;
	SELECT s INTO v_status FROM unnest(statuses) AS s WHERE s IS NULL OR s NOT BETWEEN 100 AND 599 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid HTTP status %', coalesce(v_status::text, 'NULL')
			USING ERRCODE = 'PX016',
				  HINT = 'An HTTP status is between 100 and 599.';
	END IF;
	SELECT m INTO v_ms FROM unnest(response_ms) AS m
	 WHERE m < 0 OR m = 'NaN' OR m IN ('Infinity', '-Infinity') LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid response time % ms', v_ms
			USING ERRCODE = 'PX017',
				  HINT = 'A response time is a finite number of milliseconds, 0 or more.';
	END IF;

	-- before the partition locks below (see pixl_usage_daily_until)
	PERFORM @extschema@.pixl_usage_daily_until();
	-- partitions for the days still within retention
	FOR v_day IN
		SELECT DISTINCT (a AT TIME ZONE 'UTC')::date FROM unnest(ats) AS a WHERE a >= v_cutoff
	LOOP
		PERFORM @extschema@.pixl_create_usage_partition(v_day);
	END LOOP;

	-- ids: the microsecond shifted left by pixl_node_id_bits(), as request
	-- ids are, plus a count; those of one microsecond continue after those
	-- already stored for it
	-- (1.0 restarted at the microsecond's first id in every call, and ON
	-- CONFLICT then silently dropped a second call's event of the same
	-- microsecond)
	SELECT array_agg(x.id ORDER BY x.ord), array_agg(x.vs ORDER BY x.ord)
	  INTO v_ids, v_vs
	  FROM (SELECT u.ord,
				   greatest((((extract(epoch FROM u.at) - 946684800) * 1000000)::bigint
							<< @extschema@.pixl_node_id_bits()) - 1,
							(SELECT max(e.request_id) FROM @extschema@.pixl_usage_events e
							  WHERE e.at = u.at))
				   + row_number() OVER (PARTITION BY u.at ORDER BY u.ord) AS id,
				   CASE WHEN u.st IN (403, 429) THEN u.st ELSE 200 END AS vs
			  FROM unnest(ats, statuses) WITH ORDINALITY AS u(at, st, ord)) x;

	-- analytics keys as verification makes them (usage_route.c): the
	-- endpoint is its path, no secret is kept in either
	IF methods IS NOT NULL THEN
		methods := ARRAY(SELECT @extschema@.pixl_mask_secrets(m)
						   FROM unnest(methods) WITH ORDINALITY AS u(m, o) ORDER BY o);
	END IF;
	IF endpoints IS NOT NULL THEN
		endpoints := ARRAY(SELECT @extschema@.pixl_mask_secrets(substring(e FROM '^[^?#]*'))
							 FROM unnest(endpoints) WITH ORDINALITY AS u(e, o) ORDER BY o);
	END IF;
	n := @extschema@.pixl_insert_usage(
		v_ids, ats, token_ids,
		coalesce(methods, array_fill(NULL::text, ARRAY[n])),
		coalesce(endpoints, array_fill(NULL::text, ARRAY[n])),
		coalesce(ips, array_fill(NULL::inet, ARRAY[n])),
		coalesce(statuses, array_fill(200, ARRAY[n])),
		v_vs,
		coalesce(response_ms, array_fill(NULL::double precision, ARRAY[n])));
	-- raw events past the retention are only in the rollups, as if
	-- maintenance had already run
	DELETE FROM @extschema@.pixl_usage_events_default e
	 WHERE e.at < v_cutoff AND e.request_id = ANY (v_ids);
	RETURN n;
END
$$;

COMMENT ON FUNCTION pixl_backfill_usage(text[], timestamptz[], text[], text[], int[], double precision[], inet[]) IS
	'Loads historical usage events with explicit times into raw events, rollups and last_used_at';


------------------------------------------------------------------------------
-- Responses (src/usage_sql.c), by the text request ids of
-- pixl_verify_request (src/request_id.c: a keyed MAC, unforgeable, exact
-- in every client language).  1.0's bigint form is below.
------------------------------------------------------------------------------

-- Not STRICT: NULL arguments are an error that says so.
CREATE OR REPLACE FUNCTION @extschema@.pixl_log_response(request_id text, status int,
											  response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response_1_1'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;


CREATE OR REPLACE FUNCTION @extschema@.pixl_log_responses(request_ids text[], statuses int[],
											   response_ms double precision[])
	RETURNS int
	AS 'MODULE_PATHNAME', 'pixl_log_responses'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Usage pipeline and rate limiter counters: 1.0's columns, then the
-- counters added since.
CREATE OR REPLACE FUNCTION @extschema@.pixl_stats(OUT datname text, OUT worker_state text,
									   OUT tokens_tracked bigint,
									   OUT rate_limit_full_rejections bigint,
									   OUT events_queued bigint, OUT events_flushed bigint,
									   OUT events_written_through bigint,
									   OUT events_waited bigint,
									   OUT events_dropped bigint,
									   OUT responses_applied bigint,
									   OUT flush_lag interval, OUT last_flush_at timestamptz,
									   OUT events_sampled_out bigint,
									   OUT counts_folded bigint,
									   OUT counts_lost bigint,
									   OUT responses_ignored bigint,
									   OUT dead_letters bigint,
									   OUT last_error text,
									   OUT last_error_at timestamptz,
									   OUT aggregate_entries bigint,
									   OUT queue_capacity bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_stats_1_1'
	LANGUAGE C VOLATILE PARALLEL SAFE ROWS 2;

COMMENT ON FUNCTION @extschema@.pixl_stats() IS
	'Usage pipeline and rate limiter counters: one row per database of pixltoken.database, one (datname NULL) for all others';


------------------------------------------------------------------------------
-- 1.0's bigint request ids could be guessed: any caller could rewrite
-- another store's usage row with them, and JavaScript rounds them.  1.1's
-- pixl_verify_request hands out unforgeable text ids (code/40_verify.sql), and
-- pixl_verify_token, which keeps 1.0's result type for app servers written
-- against 1.0, hands out sealed bigint ids (src/request_id.c: a keyed
-- permutation, as unforgeable as the text form's MAC).  So 1.0's
-- pixl_log_response(bigint, ...) stays, for those app servers' reports
-- (single, or batched as "SELECT pixl_log_response(id, ...) FROM
-- unnest($1::bigint[], ...)"), now taking only sealed ids of this cluster
-- (PX032 otherwise) and counting each response once, as the text form
-- does.  Whoever could report responses with it under 1.0 was given
-- the text forms by the 1.0 -> 1.1 upgrade.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_log_response(request_id bigint, status int,
														 response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response_sealed'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pixl_log_response(text, int, double precision) IS
	'Reports the final HTTP status and response time of a verified request, once; counted in the rollups, and on its usage row if kept';

COMMENT ON FUNCTION @extschema@.pixl_log_responses(text[], int[], double precision[]) IS
	'pixl_log_response for many requests at once; all or nothing; returns how many were counted';

COMMENT ON FUNCTION @extschema@.pixl_log_response(bigint, int, double precision) IS
	'Reports the final HTTP status and response time of a request verified by pixl_verify_token (its sealed bigint id), once; counted in the rollups, and on its usage row if kept';
