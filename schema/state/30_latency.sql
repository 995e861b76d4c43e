------------------------------------------------------------------------------
-- Latency histograms (src/latency.c): response times in base-2 exponential
-- buckets, 8 per doubling from 1/16 ms to 2^27 ms (37.3 h).  Exact counts,
-- so they merge by adding: a quantile has the rank percentile_disc takes
-- and is within 4.43 % of percentile_disc's value (1/32 ms below 1/16 ms),
-- whatever was merged.  The type comes before the rollup tables that have
-- a column of it; its functions and aggregates are in code/10_latency.sql.
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

