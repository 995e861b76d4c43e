
------------------------------------------------------------------------------
-- Verification: the hot path (src/verify.c, token_cache.c, rate_limit.c)
------------------------------------------------------------------------------

-- Not STRICT (a NULL token is a 401 "missing"), VOLATILE (rate limit and
-- clock), PARALLEL UNSAFE (it uses a fresh snapshot and shared counters).
-- It reads the registry as the registry's owner, so EXECUTE is all an
-- app-server role needs; README.md shows that grant.
CREATE FUNCTION pixl_verify_token(token text,
								  scope text DEFAULT NULL,
								  store_id text DEFAULT NULL,
								  method text DEFAULT NULL,
								  endpoint text DEFAULT NULL,
								  ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_token'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) IS
	'Verifies an API token for one request: status 200, 401, 403 or 429 with the reason and rate-limit state; never raises for a bad token';
REVOKE ALL ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) FROM PUBLIC;

-- Shared memory the rate limiter needs for a number of tracked tokens, to
-- size pixltoken.max_tracked_tokens.
CREATE FUNCTION pixl_rate_limit_shmem_size(tokens int) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_rate_limit_shmem_size'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pixl_rate_limit_shmem_size(int) IS
	'Bytes of shared memory the rate limiter asks for to track this many tokens';
