------------------------------------------------------------------------------
-- Latency histograms: the functions and aggregates of the type
-- pixl_latency (state/30_latency.sql; src/latency.c).  Pure functions of
-- their arguments, for everyone (as the type is).
------------------------------------------------------------------------------

-- Non-strict: NULL is no histogram (NULL + h = h), so that an upsert can
-- write pixl_latency_add(row.latency, excluded.latency).
CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_add(a @extschema@.pixl_latency, b @extschema@.pixl_latency)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_add'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_add(h @extschema@.pixl_latency, response_ms double precision)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_add_ms'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, @extschema@.pixl_latency) IS
	'The sum of two histograms (NULL counts as none)';

COMMENT ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, double precision) IS
	'The histogram with one response time (ms) more (NULL histogram: none; NULL time: unchanged)';


CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_count(h @extschema@.pixl_latency) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_latency_count'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.pixl_latency_count(@extschema@.pixl_latency) IS
	'Response times counted in a histogram';


CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_quantile(h @extschema@.pixl_latency, fraction double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME', 'pixl_latency_quantile'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.pixl_latency_quantile(@extschema@.pixl_latency, double precision) IS
	'The response time (ms) at a fraction (0.95: p95), at percentile_disc''s rank and within 4.43 % of its value; NULL when empty';


CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_quantiles(h @extschema@.pixl_latency, fractions double precision[])
	RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pixl_latency_quantiles'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.pixl_latency_quantiles(@extschema@.pixl_latency, double precision[]) IS
	'pixl_latency_quantile for each fraction; NULL when empty';


CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_buckets(h @extschema@.pixl_latency,
	OUT lower_ms double precision, OUT upper_ms double precision, OUT count bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_latency_buckets'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 40;

COMMENT ON FUNCTION @extschema@.pixl_latency_buckets(@extschema@.pixl_latency) IS
	'The buckets with a count: [lower_ms, upper_ms) and the count (for heatmaps)';


-- Aggregates: dense counts as internal state, with combine and
-- serialization functions, so that they run in parallel.
CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_merge_trans(internal, @extschema@.pixl_latency)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_merge_trans'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_of_trans(internal, double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_of_trans'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_final(internal)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_serialize(internal)
	RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_latency_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@.pixl_latency_deserialize(bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;


CREATE OR REPLACE AGGREGATE @extschema@.pixl_latency_merge(@extschema@.pixl_latency) (
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


CREATE OR REPLACE AGGREGATE @extschema@.pixl_latency_of(double precision) (
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
