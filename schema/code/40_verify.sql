------------------------------------------------------------------------------
-- Verification, the hot path (src/verify.c, token_cache.c, rate_limit.c,
-- http_answer.c, verify_context.c), and the rate limiter's figures.
------------------------------------------------------------------------------

-- Shared memory the rate limiter needs for a number of tracked tokens, to
-- size pixltoken.max_tracked_tokens.
CREATE OR REPLACE FUNCTION pixl_rate_limit_shmem_size(tokens int) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_rate_limit_shmem_size'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION pixl_rate_limit_shmem_size(int) IS
	'Bytes of shared memory the rate limiter asks for to track this many tokens';

------------------------------------------------------------------------------
-- The rate limiter's table (src/rate_limit.c): size, fair share per store,
-- bulk evictions, and whether windows still start full after a crash.
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pixl_rate_limit_stats(OUT tokens_tracked bigint,
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


------------------------------------------------------------------------------
-- Verification (src/verify.c, http_answer.c, verify_context.c)
------------------------------------------------------------------------------

-- pixl_verify_token keeps 1.0's result type for ever (eleven columns,
-- request_id bigint): a statement an app server prepared under 1.0 ("SELECT
-- * FROM pixl_verify_token($1, ...)") is planned again after the update and
-- must find the same columns.  CREATE OR REPLACE keeps its oid and grants;
-- the 1.1 symbol counts usage as 1.1 does, and its request_id is the sealed
-- bigint form (src/request_id.c: unforgeable, taken by pixl_log_response
-- (bigint, ...)).  A NULL scope still means "no scope check" here, as in
-- 1.0; 1.1's functions below refuse it.
CREATE OR REPLACE FUNCTION pixl_verify_token(token text,
											 scope text DEFAULT NULL,
											 store_id text DEFAULT NULL,
											 method text DEFAULT NULL,
											 endpoint text DEFAULT NULL,
											 ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_1_1'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;


-- 1.1's verification: 1.0's ten first columns, request_id as opaque text,
-- then metadata, previous_secret_used and staleness_ms (on a hot standby,
-- how old its view of the primary may be, in ms, src/standby.c; NULL on a
-- primary and on a standby that cannot tell; bigint: a standby's lag has no
-- upper bound, int ms would end at 24.8 days).  Later versions only ever
-- add columns at the end, so a statement that names its columns survives
-- every update (README, "Upgrading").  A scope is required: NULL is an
-- error (PX081), '*' asks for none.
--
-- Not STRICT (a NULL token is a 401 "missing"), VOLATILE (rate limit and
-- clock), PARALLEL UNSAFE (fresh snapshot, shared counters, RLS context).
-- It reads the registry directly (no SQL), so EXECUTE is all an app-server
-- role needs (whoever could execute pixl_verify_token may execute it);
-- README.md shows that grant.
CREATE OR REPLACE FUNCTION pixl_verify_request(token text,
									scope text DEFAULT NULL,
									store_id text DEFAULT NULL,
									method text DEFAULT NULL,
									endpoint text DEFAULT NULL,
									ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_request'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) IS
	'1.0''s verification, with 1.0''s result columns for app servers written against 1.0: status 200, 401, 403, 429 or 503; new code calls pixl_verify_request';

COMMENT ON FUNCTION pixl_verify_request(text, text, text, text, text, inet) IS
	'Verifies an API token for one request: status 200, 401, 403, 429 or 503 (a hot standby too far behind) with the reason, rate-limit state and staleness; never raises for a bad token; columns are only ever added at the end';


-- The same verification, and the finished HTTP answer: header values ready
-- to copy (NULL when the header does not apply) and the RFC 9457 problem
-- body (NULL on 200).  README.md has the mapping table.  Like
-- pixl_verify_request, its columns are only ever added at the end (after
-- problem), and its scope is required.
CREATE OR REPLACE FUNCTION pixl_verify_token_http(token text,
									   scope text DEFAULT NULL,
									   store_id text DEFAULT NULL,
									   method text DEFAULT NULL,
									   endpoint text DEFAULT NULL,
									   ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint,
				   www_authenticate text, ratelimit_policy text, ratelimit text,
				   retry_after text, problem jsonb)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_http'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

COMMENT ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) IS
	'pixl_verify_token plus WWW-Authenticate, RateLimit-Policy, RateLimit, Retry-After and a problem+json body';


-- The token and store the last verification of this transaction admitted
-- (200), else NULL; for row-level security policies.  C statics, not
-- settings: no SET reaches them; cleared at transaction end.
CREATE OR REPLACE FUNCTION pixl_current_token() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_current_token'
	LANGUAGE C STABLE PARALLEL RESTRICTED;

CREATE OR REPLACE FUNCTION pixl_current_store() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_current_store'
	LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION pixl_current_token() IS
	'Token id admitted by the last verification of this transaction, or NULL';

COMMENT ON FUNCTION pixl_current_store() IS
	'Store id of the token admitted by the last verification of this transaction, or NULL';


-- The cost overloads (1.2): the same verifications, charging cost (1 to
-- 100, else PX053) to the minute window and to the period allowance
-- (src/verify/quota.c).  No argument has a default, so that a call without
-- cost still resolves to the functions above: every argument is given,
-- positionally or by name (cost => n).  Their result columns are those of
-- the function of the same name above.
CREATE OR REPLACE FUNCTION pixl_verify_token(token text, scope text, store_id text,
											 method text, endpoint text, ip inet, cost int)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_cost'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

CREATE OR REPLACE FUNCTION pixl_verify_request(token text, scope text, store_id text,
											   method text, endpoint text, ip inet, cost int)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_request_cost'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

CREATE OR REPLACE FUNCTION pixl_verify_token_http(token text, scope text, store_id text,
												  method text, endpoint text, ip inet, cost int)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint,
				   www_authenticate text, ratelimit_policy text, ratelimit text,
				   retry_after text, problem jsonb)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_http_cost'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet, int) IS
	'pixl_verify_token charging a weighted call: cost 1 to 100 against the minute window and the period allowance';

COMMENT ON FUNCTION pixl_verify_request(text, text, text, text, text, inet, int) IS
	'pixl_verify_request charging a weighted call: cost 1 to 100 against the minute window and the period allowance';

COMMENT ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet, int) IS
	'pixl_verify_token_http charging a weighted call: cost 1 to 100 against the minute window and the period allowance';


-- The transport overloads (1.2): the same verifications, cost as above,
-- and the scheme the request arrived by: 'https', 'http' or NULL (unknown:
-- as the functions above; anything else is PX057).  Over 'http' the answer
-- is 403 insecure_transport with no other column, the same for every
-- token (draft-ietf-httpapi-privacy), and a known token is revoked with
-- reason exposed by the usage worker, or only notified, by the store's
-- insecure_transport_action (src/verify/verify.c, src/usage/exposure.c).
-- No argument has a default, so that every earlier call form still
-- resolves to the functions above: all eight are given, positionally or
-- by name.
CREATE OR REPLACE FUNCTION pixl_verify_token(token text, scope text, store_id text,
											 method text, endpoint text, ip inet, cost int,
											 transport text)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_transport'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

CREATE OR REPLACE FUNCTION pixl_verify_request(token text, scope text, store_id text,
											   method text, endpoint text, ip inet, cost int,
											   transport text)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_request_transport'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

CREATE OR REPLACE FUNCTION pixl_verify_token_http(token text, scope text, store_id text,
												  method text, endpoint text, ip inet, cost int,
												  transport text)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint,
				   www_authenticate text, ratelimit_policy text, ratelimit text,
				   retry_after text, problem jsonb)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_http_transport'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;

COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet, int, text) IS
	'pixl_verify_token with cost and the request''s transport: over ''http'' a 403 insecure_transport, the same for every token, and a known token is exposed';

COMMENT ON FUNCTION pixl_verify_request(text, text, text, text, text, inet, int, text) IS
	'pixl_verify_request with cost and the request''s transport: over ''http'' a 403 insecure_transport, the same for every token, and a known token is exposed';

COMMENT ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet, int, text) IS
	'pixl_verify_token_http with cost and the request''s transport: over ''http'' a 403 insecure_transport, the same for every token, and a known token is exposed';

-- This node's counters of requests that came over plain HTTP, since it
-- started (src/usage/exposure.c): every 403 insecure_transport; the
-- revocations and notifications admitted within
-- pixltoken.insecure_revocations_per_minute (a store at most a quarter of
-- it); those left out by it; those
-- admitted that could not be queued for the worker (no usage kept on this
-- node, or its queue full); and the
-- tokens marked now (answered 401 exposed here until the worker's
-- revocation is in the registry).
CREATE OR REPLACE FUNCTION pixl_transport_stats(OUT insecure_rejections bigint,
												OUT revocations bigint,
												OUT notifications bigint,
												OUT capped bigint,
												OUT unqueued bigint,
												OUT marked int)
	AS 'MODULE_PATHNAME', 'pixl_transport_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION pixl_transport_stats() IS
	'Requests over plain HTTP on this node: 403 insecure_transport answers, exposures handed to the worker (revocations, notifications), capped, unqueued, and tokens marked now';
