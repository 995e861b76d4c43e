------------------------------------------------------------------------------
-- Usage: raw events, hourly rollups, maintenance, analytics
-- (src/usage_queue.c, usage_worker.c and usage_store.c feed these tables)
------------------------------------------------------------------------------

-- One row per counted verification (status 200, 403 or 429).  Partitioned
-- by day (UTC), partitions named pixl_usage_events_YYYYMMDD and created by
-- pixl_run_maintenance(); the default partition takes any event no dated
-- partition covers, so an event is never rejected.  request_id / 16 is the
-- row's at (in microseconds since 2000-01-01), which lets a late
-- pixl_log_response() find its row's partition.
CREATE TABLE pixl_usage_events (
	at				timestamptz NOT NULL,
	request_id		bigint NOT NULL,
	token_id		text NOT NULL,
	store_id		text,
	method			text,
	endpoint		text,
	ip				inet,
	status			smallint NOT NULL,	-- final if reported, else verify_status
	verify_status	smallint NOT NULL,
	response_ms		double precision
) PARTITION BY RANGE (at);
-- Keys and indexes are per partition, not on the parent (an extension
-- member): pg_dump then restores dated partitions, which are not members,
-- with their own indexes and no clash with ones an ATTACH would create.
CREATE TABLE pixl_usage_events_default PARTITION OF pixl_usage_events
	(PRIMARY KEY (request_id, at)) DEFAULT;
CREATE INDEX pixl_usage_events_default_token_at ON pixl_usage_events_default (token_id, at);
COMMENT ON TABLE pixl_usage_events IS
	'Raw usage events, one per counted verification; daily partitions past pixltoken.usage_retention are dropped';

-- Hourly rollups (UTC hours), kept for ever.  method and endpoint are ''
-- when the verification gave none.  Maintained with every write of events
-- and responses, so they are as current as the raw events.
CREATE TABLE pixl_usage_hourly (
	token_id			text NOT NULL,
	bucket				timestamptz NOT NULL,
	method				text NOT NULL,
	endpoint			text NOT NULL,
	requests			bigint NOT NULL,
	errors				bigint NOT NULL,	-- final status >= 400
	response_ms_sum		double precision NOT NULL,
	response_ms_count	bigint NOT NULL,
	PRIMARY KEY (token_id, bucket, method, endpoint)
);
COMMENT ON TABLE pixl_usage_hourly IS
	'Usage per token, UTC hour, method and endpoint; what the analytics read for hours not rolled up by day';
-- Lets maintenance read one day of rollups (rows arrive in time order, so a
-- BRIN index stays tight and costs ingestion next to nothing).
CREATE INDEX pixl_usage_hourly_bucket_brin ON pixl_usage_hourly USING brin (bucket);

-- Daily rollups (UTC days) of closed days, kept for ever: the sum of the
-- day's hourly rows.  A busy token has 24 times fewer rows here, so 30d,
-- year and all-time analytics read a few pages instead of thousands of
-- scattered hourly rows; the key includes the counters for index-only
-- scans.  pixl_run_maintenance() rolls up each day once it is over; events
-- and responses for days already rolled up (backfills, late responses) are
-- added here as well as to the hourly rollups.
CREATE TABLE pixl_usage_daily (
	token_id			text NOT NULL,
	bucket				timestamptz NOT NULL,	-- UTC midnight
	method				text NOT NULL,
	endpoint			text NOT NULL,
	requests			bigint NOT NULL,
	errors				bigint NOT NULL,	-- final status >= 400
	response_ms_sum		double precision NOT NULL,
	response_ms_count	bigint NOT NULL,
	PRIMARY KEY (token_id, bucket, method, endpoint)
		INCLUDE (requests, errors, response_ms_sum, response_ms_count)
);
COMMENT ON TABLE pixl_usage_daily IS
	'Usage per token, UTC day, method and endpoint, for the days before pixl_usage_daily_state.rolled_up_until';

-- How far the daily rollups go: every day before rolled_up_until (a UTC
-- midnight) is in pixl_usage_daily, no later day is.  No row: nothing is
-- rolled up yet (the install script adds none, so that a restored dump's
-- row is the only one).  Changed only by maintenance, under the exclusive
-- advisory lock that writers of usage share (see pixl_usage_daily_lock).
CREATE TABLE pixl_usage_daily_state (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	rolled_up_until		timestamptz NOT NULL
);

-- Responses whose usage row was not found (yet): kept for an hour in case
-- their event is still on its way, then purged by maintenance.  A 401 has
-- a request id but no usage row, so its response ends here.
CREATE TABLE pixl_usage_unmatched_responses (
	request_id		bigint PRIMARY KEY,
	at				timestamptz NOT NULL,
	status			smallint NOT NULL,
	response_ms		double precision NOT NULL,
	received_at		timestamptz NOT NULL DEFAULT now()
);

-- Dated partitions are created later, outside the extension script, so
-- pg_dump dumps them (definition and rows) as ordinary tables; the members
-- below need marking to have their rows dumped.
SELECT pg_catalog.pg_extension_config_dump('pixl_usage_events_default', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_usage_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_usage_daily', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_usage_daily_state', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_usage_unmatched_responses', '');

------------------------------------------------------------------------------
-- Writing usage (called by the worker and by write-through in C, and by
-- pixl_backfill_usage; granted to no one)
------------------------------------------------------------------------------

-- Writers of usage and the daily roll-up of maintenance: writers hold this
-- advisory lock shared from before their first table access to their
-- commit, maintenance takes it exclusive to roll a day up and move
-- pixl_usage_daily_state.rolled_up_until.  So a writer adds an event of a
-- rolled-up day to pixl_usage_daily exactly when its hourly row is not part
-- of what maintenance summed.  Maintenance takes it before any other lock
-- of its own, and writers before theirs, so the two never wait in opposite
-- orders (a deadlock).  The key is hashtext('pixltoken daily rollup').
CREATE FUNCTION pixl_usage_daily_until() RETURNS timestamptz
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock_shared(hashtext('pixltoken daily rollup'));
	RETURN (SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s);
END
$$;

-- Inserts events and adds them to the rollups and last_used_at.  An event
-- already present (same request_id and at: a batch written again after a
-- worker died between commit and dequeue) is skipped, rollups included.
-- Events of days already rolled up by day (a backfill) go to
-- pixl_usage_daily too.
CREATE FUNCTION pixl_insert_usage(request_ids bigint[], ats timestamptz[],
								  token_ids text[], methods text[],
								  endpoints text[], ips inet[],
								  statuses int[], verify_statuses int[],
								  response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	v_ids		bigint[];
	v_ats		timestamptz[];
	v_statuses	int[];
	v_ms		double precision[];
	v_daily		timestamptz := @extschema@.pixl_usage_daily_until();
BEGIN
	WITH src AS (
		SELECT u.*
		  FROM unnest(request_ids, ats, token_ids, methods, endpoints, ips,
					  statuses, verify_statuses, response_ms)
			AS u(request_id, at, token_id, method, endpoint, ip, status,
				 verify_status, response_ms)
	), ins AS (
		INSERT INTO @extschema@.pixl_usage_events AS e
			(at, request_id, token_id, store_id, method, endpoint, ip,
			 status, verify_status, response_ms)
		SELECT s.at, s.request_id, s.token_id, r.store_id, s.method, s.endpoint,
			   s.ip, s.status, s.verify_status, s.response_ms
		  FROM src s
		  LEFT JOIN @extschema@.pixl_token_registry r ON r.token_id = s.token_id
		ON CONFLICT DO NOTHING
		RETURNING e.at, e.token_id, e.method, e.endpoint, e.status, e.response_ms
	), rollup AS (
		INSERT INTO @extschema@.pixl_usage_hourly AS h
			(token_id, bucket, method, endpoint, requests, errors,
			 response_ms_sum, response_ms_count)
		SELECT i.token_id, date_trunc('hour', i.at, 'UTC'),
			   coalesce(i.method, ''), coalesce(i.endpoint, ''),
			   count(*), count(*) FILTER (WHERE i.status >= 400),
			   coalesce(sum(i.response_ms), 0), count(i.response_ms)
		  FROM ins i
		 GROUP BY 1, 2, 3, 4
		ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
		   SET requests = h.requests + excluded.requests,
			   errors = h.errors + excluded.errors,
			   response_ms_sum = h.response_ms_sum + excluded.response_ms_sum,
			   response_ms_count = h.response_ms_count + excluded.response_ms_count
	), daily AS (
		INSERT INTO @extschema@.pixl_usage_daily AS d
			(token_id, bucket, method, endpoint, requests, errors,
			 response_ms_sum, response_ms_count)
		SELECT i.token_id, date_trunc('day', i.at, 'UTC'),
			   coalesce(i.method, ''), coalesce(i.endpoint, ''),
			   count(*), count(*) FILTER (WHERE i.status >= 400),
			   coalesce(sum(i.response_ms), 0), count(i.response_ms)
		  FROM ins i
		 WHERE i.at < v_daily
		 GROUP BY 1, 2, 3, 4
		ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
		   SET requests = d.requests + excluded.requests,
			   errors = d.errors + excluded.errors,
			   response_ms_sum = d.response_ms_sum + excluded.response_ms_sum,
			   response_ms_count = d.response_ms_count + excluded.response_ms_count
	), activity AS (
		INSERT INTO @extschema@.pixl_token_activity AS a (token_id, last_used_at)
		SELECT i.token_id, max(i.at)
		  FROM ins i
		 WHERE EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry r
						WHERE r.token_id = i.token_id)
		 GROUP BY i.token_id
		ON CONFLICT (token_id) DO UPDATE
		   SET last_used_at = greatest(a.last_used_at, excluded.last_used_at)
	)
	SELECT count(*) INTO n FROM ins;

	-- responses that arrived before their event (rare: written through)
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
	RETURN n;
END
$$;

-- What the worker writes for queued verification events.
CREATE FUNCTION pixl_store_events(request_ids bigint[], ats timestamptz[],
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

-- Sets the final status and response time of usage rows and moves their
-- rollups along (old values out, new values in).  The last report of a
-- request wins.  Responses without a row go to
-- pixl_usage_unmatched_responses.  Returns the rows updated.  A late
-- response on a day already rolled up by day moves its daily row too.
CREATE FUNCTION pixl_apply_responses(request_ids bigint[], ats timestamptz[],
									 statuses int[], response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
	v_daily	timestamptz := @extschema@.pixl_usage_daily_until();
BEGIN
	WITH src AS (
		SELECT DISTINCT ON (u.request_id) u.request_id, u.at, u.status, u.response_ms
		  FROM unnest(request_ids, ats, statuses, response_ms) WITH ORDINALITY
			AS u(request_id, at, status, response_ms, ord)
		 ORDER BY u.request_id, u.ord DESC
	), upd AS (
		-- o is the row as it was before this statement
		UPDATE @extschema@.pixl_usage_events e
		   SET status = s.status, response_ms = s.response_ms
		  FROM src s, @extschema@.pixl_usage_events o
		 WHERE e.request_id = s.request_id AND e.at = s.at
		   AND o.request_id = s.request_id AND o.at = s.at
		RETURNING e.request_id, e.token_id, e.at, e.method, e.endpoint,
				  o.status AS old_status, o.response_ms AS old_ms,
				  e.status AS new_status, e.response_ms AS new_ms
	), rollup AS (
		UPDATE @extschema@.pixl_usage_hourly h
		   SET errors = h.errors + d.errors,
			   response_ms_sum = h.response_ms_sum + d.ms_sum,
			   response_ms_count = h.response_ms_count + d.ms_count
		  FROM (SELECT u.token_id, date_trunc('hour', u.at, 'UTC') AS bucket,
					   coalesce(u.method, '') AS method,
					   coalesce(u.endpoint, '') AS endpoint,
					   sum((u.new_status >= 400)::int - (u.old_status >= 400)::int) AS errors,
					   sum(coalesce(u.new_ms, 0) - coalesce(u.old_ms, 0)) AS ms_sum,
					   sum((u.new_ms IS NOT NULL)::int - (u.old_ms IS NOT NULL)::int) AS ms_count
				  FROM upd u
				 GROUP BY 1, 2, 3, 4) d
		 WHERE h.token_id = d.token_id AND h.bucket = d.bucket
		   AND h.method = d.method AND h.endpoint = d.endpoint
	), daily AS (
		UPDATE @extschema@.pixl_usage_daily h
		   SET errors = h.errors + d.errors,
			   response_ms_sum = h.response_ms_sum + d.ms_sum,
			   response_ms_count = h.response_ms_count + d.ms_count
		  FROM (SELECT u.token_id, date_trunc('day', u.at, 'UTC') AS bucket,
					   coalesce(u.method, '') AS method,
					   coalesce(u.endpoint, '') AS endpoint,
					   sum((u.new_status >= 400)::int - (u.old_status >= 400)::int) AS errors,
					   sum(coalesce(u.new_ms, 0) - coalesce(u.old_ms, 0)) AS ms_sum,
					   sum((u.new_ms IS NOT NULL)::int - (u.old_ms IS NOT NULL)::int) AS ms_count
				  FROM upd u
				 WHERE u.at < v_daily
				 GROUP BY 1, 2, 3, 4) d
		 WHERE h.token_id = d.token_id AND h.bucket = d.bucket
		   AND h.method = d.method AND h.endpoint = d.endpoint
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
	SELECT count(*) INTO n FROM upd;
	RETURN n;
END
$$;

------------------------------------------------------------------------------
-- pixl_log_response and pixl_stats (src/usage_sql.c)
------------------------------------------------------------------------------

-- Queued like a verification event; errors only for invalid arguments.
-- Not STRICT: NULL arguments are an error that says so.
CREATE FUNCTION pixl_log_response(request_id bigint, status int,
								  response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pixl_log_response(bigint, int, double precision) IS
	'Reports the final HTTP status and response time of a verified request; lands on its usage row';

CREATE FUNCTION pixl_stats(OUT datname text, OUT worker_state text,
						   OUT tokens_tracked bigint,
						   OUT rate_limit_full_rejections bigint,
						   OUT events_queued bigint, OUT events_flushed bigint,
						   OUT events_written_through bigint,
						   OUT events_waited bigint,
						   OUT events_dropped bigint,
						   OUT responses_applied bigint,
						   OUT flush_lag interval, OUT last_flush_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION pixl_stats() IS
	'Usage pipeline and rate limiter counters: one row per database of pixltoken.database, one (datname NULL) for all others';

------------------------------------------------------------------------------
-- Maintenance (pg_partman's split: the logic is here, the worker calls it
-- every minute, an operator may call it any time)
------------------------------------------------------------------------------

-- The partition of one UTC day, created if missing; rows of that day
-- waiting in the default partition move into it.  Returns true if created.
CREATE FUNCTION pixl_create_usage_partition(day date) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_name	text := 'pixl_usage_events_' || to_char(day, 'YYYYMMDD');
	v_from	timestamptz := day::timestamp AT TIME ZONE 'UTC';
	v_to	timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(format('%I.%I', '@extschema@', v_name)) IS NOT NULL THEN
		RETURN false;
	END IF;
	EXECUTE format('CREATE TABLE %I.%I (LIKE %I.pixl_usage_events INCLUDING DEFAULTS)',
				   '@extschema@', v_name, '@extschema@');
	EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY (request_id, at)', '@extschema@', v_name);
	EXECUTE format('CREATE INDEX %I ON %I.%I (token_id, at)', v_name || '_token_at', '@extschema@', v_name);
	EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', '@extschema@', v_name);
	EXECUTE format('WITH m AS (DELETE FROM %I.pixl_usage_events_default WHERE at >= $1 AND at < $2 RETURNING *) '
				   'INSERT INTO %I.%I SELECT * FROM m',
				   '@extschema@', '@extschema@', v_name)
		USING v_from, v_to;
	EXECUTE format('ALTER TABLE %I.pixl_usage_events ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
				   '@extschema@', '@extschema@', v_name, v_from, v_to);
	RETURN true;
END
$$;

-- pixltoken.usage_retention as an interval (the GUC is in minutes).
CREATE FUNCTION pixl_usage_retention() RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT s.setting::bigint FROM pg_catalog.pg_settings s
					  WHERE s.name = 'pixltoken.usage_retention'), 90 * 24 * 60)
		   * interval '1 minute';
$$;

-- Creates the partitions of yesterday .. 7 days ahead (and of any day
-- within retention whose rows wait in the default partition), drops the
-- partitions, and default-partition rows, older than the retention, and
-- purges unmatched responses older than an hour.  Runs never overlap: a
-- second concurrent call returns at once with NULLs.
CREATE FUNCTION pixl_run_maintenance(retention interval DEFAULT NULL,
									 OUT partitions_created int,
									 OUT partitions_dropped int,
									 OUT rows_purged bigint)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET lock_timeout = '2s'	-- a long query on the default partition: retry later
AS $$
DECLARE
	v_retention	interval := coalesce(retention, @extschema@.pixl_usage_retention());
	v_cutoff	timestamptz;
	v_today		date := (now() AT TIME ZONE 'UTC')::date;
	v_day		date;
	v_n			bigint;
	v_until		timestamptz := date_trunc('day', now(), 'UTC');
	v_done		timestamptz;
	r			record;
BEGIN
	IF v_retention <= interval '0' THEN
		RAISE EXCEPTION 'invalid usage retention %', v_retention
			USING ERRCODE = 'PX030',
				  HINT = 'Use a positive interval, e.g. ''90 days''.';
	END IF;
	IF NOT pg_try_advisory_xact_lock(hashtext('pixltoken maintenance')) THEN
		RETURN;					-- another run is under way
	END IF;
	v_cutoff := now() - v_retention;
	partitions_created := 0;
	partitions_dropped := 0;
	rows_purged := 0;

	-- Roll the days that are over up into pixl_usage_daily, first (before
	-- any partition lock: see pixl_usage_daily_until).  Writers wait for
	-- this transaction to end, so only once a day; if they keep the lock
	-- past lock_timeout the roll-up is left to the next run.
	SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
	IF v_done IS NULL OR v_done < v_until THEN
		BEGIN
			PERFORM pg_advisory_xact_lock(hashtext('pixltoken daily rollup'));
			-- a new snapshot: every writer that saw the old state has committed
			SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
			-- the hourly rows are the truth: a daily row is replaced, not added to
			INSERT INTO @extschema@.pixl_usage_daily AS d
				(token_id, bucket, method, endpoint, requests, errors,
				 response_ms_sum, response_ms_count)
			SELECT h.token_id, date_trunc('day', h.bucket, 'UTC'), h.method, h.endpoint,
				   sum(h.requests), sum(h.errors), sum(h.response_ms_sum), sum(h.response_ms_count)
			  FROM @extschema@.pixl_usage_hourly h
			 WHERE h.bucket >= coalesce(v_done, '-infinity') AND h.bucket < v_until
			 GROUP BY 1, 2, 3, 4
			ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
			   SET requests = excluded.requests, errors = excluded.errors,
				   response_ms_sum = excluded.response_ms_sum,
				   response_ms_count = excluded.response_ms_count;
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

	FOR r IN
		SELECT c.relname
		  FROM pg_inherits i
		  JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = '@extschema@.pixl_usage_events'::regclass
		   AND c.relname ~ '^pixl_usage_events_[0-9]{8}$'
		   AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= v_cutoff
		 ORDER BY 1
	LOOP
		EXECUTE format('DROP TABLE %I.%I', '@extschema@', r.relname);
		partitions_dropped := partitions_dropped + 1;
	END LOOP;

	DELETE FROM @extschema@.pixl_usage_events_default e WHERE e.at < v_cutoff;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	rows_purged := v_n;
	DELETE FROM @extschema@.pixl_usage_unmatched_responses u
	 WHERE u.received_at < now() - interval '1 hour';
END
$$;
COMMENT ON FUNCTION pixl_run_maintenance(interval) IS
	'Creates usage partitions ahead, drops raw usage past pixltoken.usage_retention (rollups stay); the worker calls it every minute';

------------------------------------------------------------------------------
-- Loading historical usage
------------------------------------------------------------------------------

-- Loads events with explicit times (a migration, or tests): raw rows (for
-- days still within the retention), rollups and last_used_at, as the worker
-- would have written them.  Arrays are parallel; methods, endpoints,
-- response_ms and ips may be NULL; statuses default to 200.  Request ids are
-- at * 16 + n (n counting events of the same microsecond in this call), so
-- loading the same microsecond of the same data twice is a unique error.
CREATE FUNCTION pixl_backfill_usage(token_ids text[], ats timestamptz[],
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

	SELECT array_agg(x.id ORDER BY x.ord), array_agg(x.vs ORDER BY x.ord)
	  INTO v_ids, v_vs
	  FROM (SELECT u.ord,
				   ((extract(epoch FROM u.at) - 946684800) * 1000000)::bigint * 16
				   + row_number() OVER (PARTITION BY u.at ORDER BY u.ord) - 1 AS id,
				   CASE WHEN u.st IN (403, 429) THEN u.st ELSE 200 END AS vs
			  FROM unnest(ats, statuses) WITH ORDINALITY AS u(at, st, ord)) x;

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
-- Analytics (the user guide's "Viewing Token Usage")
------------------------------------------------------------------------------

-- The start of a period: today is the last 24 hours, year the last 365 days.
CREATE FUNCTION pixl_usage_period_start(period text) RETURNS timestamptz
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

-- Analytics are for existing tokens (revoked ones included); an unknown id
-- is the same error as in the management functions.
CREATE FUNCTION pixl_check_usage_token(token_id text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry t
					WHERE t.token_id = pixl_check_usage_token.token_id) THEN
		RAISE EXCEPTION 'token % does not exist', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX011',
				  HINT = 'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.';
	END IF;
END
$$;

-- Usage of a token since a moment, per method, endpoint and bucket: the
-- whole UTC days rolled up (when by_day) from pixl_usage_daily, the other
-- whole hours after since's hour from pixl_usage_hourly, since's own hour
-- from the raw events (exact to the microsecond while they are retained).
-- Each moment is counted at one level only.  A year of a busy token is
-- then ~365 x endpoints daily rows plus at most two days of hourly ones,
-- instead of 24 times as many scattered hourly rows.
--
-- PL/pgSQL with EXECUTE, not an (uninlinable: SET search_path) SQL
-- function: the bounds reach the planner as constants, so the raw branch
-- is planned over the one partition of since's hour, not ~100 with
-- run-time pruning (planning that was most of a "today" call), and a
-- STABLE function reads rolled_up_until and the rollups in one snapshot.
CREATE FUNCTION pixl_usage_rows(token_id text, since timestamptz, by_day boolean DEFAULT true)
	RETURNS TABLE (bucket timestamptz, method text, endpoint text,
				   requests bigint, errors bigint,
				   response_ms_sum double precision, response_ms_count bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_hour	timestamptz := date_trunc('hour', since, 'UTC');
	v_first	timestamptz := v_hour + interval '1 hour';	-- first whole hour
	v_day	timestamptz := date_trunc('day', v_first, 'UTC');	-- first whole day
	v_until	timestamptz := '-infinity';		-- days before it are in pixl_usage_daily
BEGIN
	IF v_day < v_first THEN
		v_day := v_day + interval '1 day';
	END IF;
	IF by_day THEN
		v_until := coalesce((SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s),
							'-infinity');
	END IF;
	IF v_until <= v_day THEN
		-- no whole day rolled up: every whole hour from the hourly rollups
		v_day := 'infinity';
		v_until := 'infinity';
	END IF;
	RETURN QUERY EXECUTE $q$
		SELECT d.bucket, d.method, d.endpoint, d.requests, d.errors,
			   d.response_ms_sum, d.response_ms_count
		  FROM @extschema@.pixl_usage_daily d
		 WHERE d.token_id = $1 AND d.bucket >= $4 AND d.bucket < $5
		UNION ALL
		SELECT h.bucket, h.method, h.endpoint, h.requests, h.errors,
			   h.response_ms_sum, h.response_ms_count
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = $1 AND h.bucket >= $3 AND h.bucket < $4
		UNION ALL
		SELECT h.bucket, h.method, h.endpoint, h.requests, h.errors,
			   h.response_ms_sum, h.response_ms_count
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = $1 AND h.bucket >= $5
		UNION ALL
		SELECT $6, coalesce(e.method, ''), coalesce(e.endpoint, ''),
			   count(*), count(*) FILTER (WHERE e.status >= 400),
			   coalesce(sum(e.response_ms), 0), count(e.response_ms)
		  FROM @extschema@.pixl_usage_events e
		 WHERE e.token_id = $1 AND e.at >= $2 AND e.at < $3
		 GROUP BY 2, 3
		$q$ USING token_id, since, v_first, v_day, v_until, v_hour;
END
$$;

CREATE FUNCTION pixl_usage_summary(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (total_requests bigint, requests_today bigint,
				   avg_response_ms double precision, error_rate double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	-- today's total is requests_today: one pass
	RETURN QUERY
	SELECT coalesce(sum(u.requests), 0)::bigint,
		   CASE WHEN period = 'today' THEN coalesce(sum(u.requests), 0)::bigint
				ELSE (SELECT coalesce(sum(t.requests), 0)::bigint
						FROM @extschema@.pixl_usage_rows(pixl_usage_summary.token_id,
														 now() - interval '24 hours') t)
		   END,
		   sum(u.response_ms_sum) / nullif(sum(u.response_ms_count), 0),
		   100.0::double precision * sum(u.errors) / nullif(sum(u.requests), 0)
	  FROM @extschema@.pixl_usage_rows(pixl_usage_summary.token_id, v_since) u;
END
$$;
COMMENT ON FUNCTION pixl_usage_summary(text, text) IS
	'Total requests of the period, requests of the last 24 hours, average response time and error rate (percent of status >= 400)';

CREATE FUNCTION pixl_usage_timeline(token_id text, period text)
	RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
	v_unit	text := CASE WHEN period IN ('today', '7d') THEN 'hour'
						 WHEN period IN ('30d', 'year') THEN 'day'
						 ELSE 'month' END;
	v_first	timestamptz;
	-- Daily rollups are UTC days: they fit day and month buckets only when
	-- the session's days are UTC days too; otherwise hourly rows (slower,
	-- same answer).
	v_by_day	boolean := v_unit <> 'hour'
		AND lower(current_setting('TimeZone')) IN
			('utc', 'etc/utc', 'uct', 'etc/uct', 'gmt', 'etc/gmt', 'gmt0', 'etc/gmt0',
			 'gmt+0', 'etc/gmt+0', 'gmt-0', 'etc/gmt-0', 'greenwich', 'etc/greenwich',
			 'universal', 'etc/universal', 'zulu', 'etc/zulu');
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	IF period = 'all' THEN
		SELECT least(min(t.created_at), (SELECT min(h.bucket) FROM @extschema@.pixl_usage_hourly h
										  WHERE h.token_id = pixl_usage_timeline.token_id))
		  INTO v_first
		  FROM @extschema@.pixl_token_registry t
		 WHERE t.token_id = pixl_usage_timeline.token_id;
	ELSE
		v_first := v_since;
	END IF;
	v_first := date_trunc(v_unit, v_first);

	RETURN QUERY
	SELECT g.b, coalesce(sum(u.requests), 0)::bigint, coalesce(sum(u.errors), 0)::bigint
	  FROM generate_series(v_first, date_trunc(v_unit, now()), ('1 ' || v_unit)::interval) AS g(b)
	  LEFT JOIN @extschema@.pixl_usage_rows(pixl_usage_timeline.token_id, v_since, v_by_day) u
		ON greatest(date_trunc(v_unit, u.bucket), v_first) = g.b
	 GROUP BY g.b
	 ORDER BY g.b;
END
$$;
COMMENT ON FUNCTION pixl_usage_timeline(text, text) IS
	'Requests and errors per hour (today, 7d), day (30d, year) or month (all), empty buckets included';

CREATE FUNCTION pixl_usage_endpoints(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (method text, endpoint text, requests bigint,
				   success_rate double precision, avg_response_ms double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	RETURN QUERY
	SELECT nullif(u.method, ''), nullif(u.endpoint, ''), sum(u.requests)::bigint,
		   100.0::double precision * (sum(u.requests) - sum(u.errors)) / sum(u.requests),
		   sum(u.response_ms_sum) / nullif(sum(u.response_ms_count), 0)
	  FROM @extschema@.pixl_usage_rows(pixl_usage_endpoints.token_id, v_since) u
	 GROUP BY u.method, u.endpoint
	HAVING sum(u.requests) > 0
	 ORDER BY 3 DESC, 1, 2;
END
$$;
COMMENT ON FUNCTION pixl_usage_endpoints(text, text) IS
	'Requests, success rate (percent of status < 400) and average response time per method and endpoint, most called first';

CREATE FUNCTION pixl_check_recent_calls(token_id text, status int, lim int)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
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

-- SQL, not PL/pgSQL: the argument status and the result column status
-- share their name (the public contract).
CREATE FUNCTION pixl_recent_calls(token_id text, status int DEFAULT NULL, lim int DEFAULT 20)
	RETURNS TABLE (at timestamptz, method text, endpoint text, status int,
				   ip inet, response_ms double precision)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_check_recent_calls($1, $2, $3);
	SELECT e.at, e.method, e.endpoint, e.status::int, e.ip, e.response_ms
	  FROM @extschema@.pixl_usage_events e
	 WHERE e.token_id = $1
	   AND ($2 IS NULL OR e.status = $2)
	 ORDER BY e.at DESC, e.request_id DESC
	 LIMIT $3;
$$;
COMMENT ON FUNCTION pixl_recent_calls(text, int, int) IS
	'The latest calls of a token, newest first, optionally of one status';

REVOKE ALL ON pixl_usage_events, pixl_usage_events_default, pixl_usage_hourly,
	pixl_usage_daily, pixl_usage_daily_state, pixl_usage_unmatched_responses FROM PUBLIC;
REVOKE ALL ON FUNCTION
	pixl_insert_usage(bigint[], timestamptz[], text[], text[], text[], inet[], int[], int[], double precision[]),
	pixl_store_events(bigint[], timestamptz[], text[], text[], text[], inet[], int[]),
	pixl_apply_responses(bigint[], timestamptz[], int[], double precision[]),
	pixl_log_response(bigint, int, double precision),
	pixl_stats(),
	pixl_create_usage_partition(date),
	pixl_usage_retention(),
	pixl_run_maintenance(interval),
	pixl_backfill_usage(text[], timestamptz[], text[], text[], int[], double precision[], inet[]),
	pixl_usage_period_start(text),
	pixl_check_usage_token(text),
	pixl_usage_rows(text, timestamptz, boolean),
	pixl_usage_daily_until(),
	pixl_usage_summary(text, text),
	pixl_usage_timeline(text, text),
	pixl_usage_endpoints(text, text),
	pixl_check_recent_calls(text, int, int),
	pixl_recent_calls(text, int, int)
	FROM PUBLIC;
