
------------------------------------------------------------------------------
-- Latency histograms (src/latency.c): response times in base-2 exponential
-- buckets, 8 per doubling from 1/16 ms to 2^27 ms (37.3 h).  Exact counts,
-- so they merge by adding: a quantile has the rank percentile_disc takes
-- and is within 4.43 % of percentile_disc's value (1/32 ms below 1/16 ms),
-- whatever was merged.  Before the rollups and the analytics that use it
-- (30_usage.sql, 11_store_admins.sql), hence this fragment's place.
------------------------------------------------------------------------------
CREATE TYPE @extschema@.pixl_latency;

CREATE FUNCTION @extschema@.pixl_latency_in(cstring) RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_in'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_out(@extschema@.pixl_latency) RETURNS cstring
	AS 'MODULE_PATHNAME', 'pixl_latency_out'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_recv(internal) RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_recv'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_send(@extschema@.pixl_latency) RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_latency_send'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.pixl_latency (
	INPUT = @extschema@.pixl_latency_in,
	OUTPUT = @extschema@.pixl_latency_out,
	RECEIVE = @extschema@.pixl_latency_recv,
	SEND = @extschema@.pixl_latency_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE @extschema@.pixl_latency IS
	'Response-time histogram: {lower_ms: count, ...}, 8 buckets per doubling; quantiles within 4.43 %, merged without loss';

-- Non-strict: NULL is no histogram (NULL + h = h), so that an upsert can
-- write pixl_latency_add(row.latency, excluded.latency).
CREATE FUNCTION @extschema@.pixl_latency_add(a @extschema@.pixl_latency, b @extschema@.pixl_latency)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_add'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, @extschema@.pixl_latency) IS
	'The sum of two histograms (NULL counts as none)';
CREATE FUNCTION @extschema@.pixl_latency_add(h @extschema@.pixl_latency, response_ms double precision)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_add_ms'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, double precision) IS
	'The histogram with one response time (ms) more (NULL histogram: none; NULL time: unchanged)';

CREATE FUNCTION @extschema@.pixl_latency_count(h @extschema@.pixl_latency) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_latency_count'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_count(@extschema@.pixl_latency) IS
	'Response times counted in a histogram';

CREATE FUNCTION @extschema@.pixl_latency_quantile(h @extschema@.pixl_latency, fraction double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME', 'pixl_latency_quantile'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_quantile(@extschema@.pixl_latency, double precision) IS
	'The response time (ms) at a fraction (0.95: p95), at percentile_disc''s rank and within 4.43 % of its value; NULL when empty';

CREATE FUNCTION @extschema@.pixl_latency_quantiles(h @extschema@.pixl_latency, fractions double precision[])
	RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pixl_latency_quantiles'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_quantiles(@extschema@.pixl_latency, double precision[]) IS
	'pixl_latency_quantile for each fraction; NULL when empty';

CREATE FUNCTION @extschema@.pixl_latency_buckets(h @extschema@.pixl_latency,
	OUT lower_ms double precision, OUT upper_ms double precision, OUT count bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_latency_buckets'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 40;
COMMENT ON FUNCTION @extschema@.pixl_latency_buckets(@extschema@.pixl_latency) IS
	'The buckets with a count: [lower_ms, upper_ms) and the count (for heatmaps)';

-- Aggregates: dense counts as internal state, with combine and
-- serialization functions, so that they run in parallel.
CREATE FUNCTION @extschema@.pixl_latency_merge_trans(internal, @extschema@.pixl_latency)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_merge_trans'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_of_trans(internal, double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_of_trans'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_final(internal)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_serialize(internal)
	RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_latency_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_deserialize(bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE @extschema@.pixl_latency_merge(@extschema@.pixl_latency) (
	SFUNC = @extschema@.pixl_latency_merge_trans,
	STYPE = internal,
	SSPACE = 2008,
	FINALFUNC = @extschema@.pixl_latency_final,
	COMBINEFUNC = @extschema@.pixl_latency_combine,
	SERIALFUNC = @extschema@.pixl_latency_serialize,
	DESERIALFUNC = @extschema@.pixl_latency_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.pixl_latency_merge(@extschema@.pixl_latency) IS
	'The sum of histograms (NULLs skipped; NULL when all are NULL)';

CREATE AGGREGATE @extschema@.pixl_latency_of(double precision) (
	SFUNC = @extschema@.pixl_latency_of_trans,
	STYPE = internal,
	SSPACE = 2008,
	FINALFUNC = @extschema@.pixl_latency_final,
	COMBINEFUNC = @extschema@.pixl_latency_combine,
	SERIALFUNC = @extschema@.pixl_latency_serialize,
	DESERIALFUNC = @extschema@.pixl_latency_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.pixl_latency_of(double precision) IS
	'The histogram of response times in ms (NULLs skipped; NULL when all are NULL)';

-- Pure functions of their arguments, for everyone (as the type is).
GRANT EXECUTE ON FUNCTION
	@extschema@.pixl_latency_add(@extschema@.pixl_latency, @extschema@.pixl_latency),
	@extschema@.pixl_latency_add(@extschema@.pixl_latency, double precision),
	@extschema@.pixl_latency_count(@extschema@.pixl_latency),
	@extschema@.pixl_latency_quantile(@extschema@.pixl_latency, double precision),
	@extschema@.pixl_latency_quantiles(@extschema@.pixl_latency, double precision[]),
	@extschema@.pixl_latency_buckets(@extschema@.pixl_latency)
	TO PUBLIC;

-- The histogram of each rollup row's response times.  NULL on rows with
-- responses written before 1.1 (response_ms_count > 0): their quantiles
-- are unknown, and such a row never gets a histogram later (the rollup
-- functions keep it NULL, so no partial histogram passes for a whole one).
ALTER TABLE @extschema@.pixl_usage_hourly ADD COLUMN latency @extschema@.pixl_latency;
ALTER TABLE @extschema@.pixl_usage_daily ADD COLUMN latency @extschema@.pixl_latency;

-- Usage of a token since a moment, per method, endpoint and bucket, from
-- the rollups only (1.1: never the raw events, which are kept for the
-- recent calls and as a sample, not for every request): the whole UTC
-- days rolled up (when by_day) from pixl_usage_daily, every other hour
-- from pixl_usage_hourly, starting with since's own hour in whole: a
-- period's start is rounded down to its UTC hour.  Each hour is counted at
-- one level only.  With the rows' latency histograms (NULL on rows of
-- before 1.1 that have responses).
DROP FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean);
CREATE FUNCTION @extschema@.pixl_usage_rows(token_id text, since timestamptz, by_day boolean DEFAULT true)
	RETURNS TABLE (bucket timestamptz, method text, endpoint text,
				   requests bigint, errors bigint,
				   response_ms_sum double precision, response_ms_count bigint,
				   latency @extschema@.pixl_latency)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_hour	timestamptz := date_trunc('hour', since, 'UTC');	-- first hour
	v_day	timestamptz := date_trunc('day', v_hour, 'UTC');	-- first whole day
	v_until	timestamptz := '-infinity';		-- days before it are in pixl_usage_daily
BEGIN
	IF v_day < v_hour THEN
		v_day := v_day + interval '1 day';
	END IF;
	IF by_day THEN
		v_until := coalesce((SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s),
							'-infinity');
	END IF;
	IF v_until <= v_day THEN
		-- no whole day rolled up: every hour from the hourly rollups
		v_day := 'infinity';
		v_until := 'infinity';
	END IF;
	RETURN QUERY
		SELECT d.bucket, d.method, d.endpoint, d.requests, d.errors,
			   d.response_ms_sum, d.response_ms_count, d.latency
		  FROM @extschema@.pixl_usage_daily d
		 WHERE d.token_id = pixl_usage_rows.token_id AND d.bucket >= v_day AND d.bucket < v_until
		UNION ALL
		SELECT h.bucket, h.method, h.endpoint, h.requests, h.errors,
			   h.response_ms_sum, h.response_ms_count, h.latency
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = pixl_usage_rows.token_id
		   AND ((h.bucket >= v_hour AND h.bucket < v_day) OR h.bucket >= v_until);
END
$$;
REVOKE ALL ON FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean) FROM PUBLIC;
