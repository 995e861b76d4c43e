------------------------------------------------------------------------------
-- The rate limiter's table (src/rate_limit.c): size, fair share per store,
-- bulk evictions, and whether windows still start full after a crash.
------------------------------------------------------------------------------

CREATE FUNCTION pixl_rate_limit_stats(OUT tokens_tracked bigint,
									  OUT max_tracked_tokens int,
									  OUT store_share int,
									  OUT sweeps bigint,
									  OUT tokens_evicted bigint,
									  OUT table_full_rejections bigint,
									  OUT store_share_rejections bigint,
									  OUT full_windows_until timestamptz)
	AS 'MODULE_PATHNAME', 'pixl_rate_limit_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION pixl_rate_limit_stats() IS
	'Rate-limit table: tracked tokens, capacity, per-store share, eviction passes and evicted tokens, fail-closed rejections (all, and for a store''s share), and until when windows start full after a crash';
REVOKE ALL ON FUNCTION pixl_rate_limit_stats() FROM PUBLIC;
