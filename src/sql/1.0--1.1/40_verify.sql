
------------------------------------------------------------------------------
-- Verification 1.1 (issue #9; src/verify.c, http_answer.c, verify_context.c)
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
COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) IS
	'1.0''s verification, with 1.0''s result columns for app servers written against 1.0: status 200, 401, 403, 429 or 503; new code calls pixl_verify_request';
SELECT set_config('pixl_upgrade.acl_verify', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_verify_token(text, text, text, text, text, inet)'::pg_catalog.regprocedure;

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
CREATE FUNCTION pixl_verify_request(token text,
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
COMMENT ON FUNCTION pixl_verify_request(text, text, text, text, text, inet) IS
	'Verifies an API token for one request: status 200, 401, 403, 429 or 503 (a hot standby too far behind) with the reason, rate-limit state and staleness; never raises for a bad token; columns are only ever added at the end';
REVOKE ALL ON FUNCTION pixl_verify_request(text, text, text, text, text, inet) FROM PUBLIC;
SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_verify'), '')::aclitem[],
		'@extschema@.pixl_verify_request(text, text, text, text, text, inet)');

-- The same verification, and the finished HTTP answer: header values ready
-- to copy (NULL when the header does not apply) and the RFC 9457 problem
-- body (NULL on 200).  README.md has the mapping table.  Like
-- pixl_verify_request, its columns are only ever added at the end (after
-- problem), and its scope is required.
CREATE FUNCTION pixl_verify_token_http(token text,
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
REVOKE ALL ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) FROM PUBLIC;
SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_verify'), '')::aclitem[],
		'@extschema@.pixl_verify_token_http(text, text, text, text, text, inet)');

-- The token and store the last verification of this transaction admitted
-- (200), else NULL; for row-level security policies.  C statics, not
-- settings: no SET reaches them; cleared at transaction end.
CREATE FUNCTION pixl_current_token() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_current_token'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION pixl_current_store() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_current_store'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pixl_current_token() IS
	'Token id admitted by the last verification of this transaction, or NULL';
COMMENT ON FUNCTION pixl_current_store() IS
	'Store id of the token admitted by the last verification of this transaction, or NULL';
-- harmless to anyone (they only reveal what the caller's own transaction
-- verified): granted to PUBLIC so that policies of any role can use them
REVOKE ALL ON FUNCTION pixl_current_token(), pixl_current_store() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pixl_current_token(), pixl_current_store() TO PUBLIC;


------------------------------------------------------------------------------
-- pixl_tokens 1.1
------------------------------------------------------------------------------

-- Rotation telemetry: the usage worker maintains these from verification
-- events of a previous secret (the pipeline's fragment may have added them
-- already); pixl_rotate_token() starts them over.
ALTER TABLE @extschema@.pixl_token_activity
	ADD COLUMN IF NOT EXISTS previous_secret_last_used_at timestamptz,
	ADD COLUMN IF NOT EXISTS previous_secret_uses bigint NOT NULL DEFAULT 0;

-- 1.0's columns unchanged (status gains 'exposed' and 'disabled'), new ones
-- at the end; only the stores the caller may see (security_barrier, as in
-- 11_store_admins.sql: CREATE OR REPLACE VIEW resets options not given).
CREATE OR REPLACE VIEW pixl_tokens WITH (security_barrier = true) AS
SELECT t.token_id,
	   t.store_id,
	   t.name,
	   t.mode,
	   t.hint,
	   @extschema@.pixl_scope_names(t.scope_bits) AS scopes,
	   t.rate_limit,
	   least(t.rate_limit, p.max_rate_limit) AS effective_rate_limit,
	   t.expires_at,
	   CASE WHEN t.revoked_reason = 'exposed' THEN 'exposed'
			WHEN t.revoked_at IS NOT NULL THEN 'revoked'
			WHEN t.disabled_at IS NOT NULL THEN 'disabled'
			WHEN t.expires_at <= clock_timestamp() THEN 'expired'
			ELSE 'active' END AS status,
	   t.created_at,
	   a.last_used_at,
	   t.rotated_at,
	   t.revoked_at,
	   t.allowed_ips,
	   t.metadata,
	   t.disabled_at,
	   t.disabled_reason,
	   CASE WHEN t.previous_valid_until > clock_timestamp()
			THEN t.previous_valid_until END AS previous_secret_valid_until,
	   a.previous_secret_last_used_at,
	   coalesce(a.previous_secret_uses, 0) AS previous_secret_uses
  FROM @extschema@.pixl_token_registry t
  JOIN @extschema@.pixl_stores s ON s.store_id = t.store_id
  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
 WHERE @extschema@.pixl_store_visible(t.store_id);
