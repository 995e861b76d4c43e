-- The per-backend token cache: answers stay right when it holds fewer tokens
-- than the backend sees (entries are evicted one at a time), and eviction
-- does not get in the way of transactional invalidation.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pixltoken;
RESET client_min_messages;

SELECT pixl_set_store_plan('cache-a', 'enterprise');
CREATE TEMP TABLE cache_tokens AS
SELECT n, c.token_id, c.token
  FROM generate_series(1, 40) AS n,
	   LATERAL pixl_create_token('cache-a', 'Cache ' || n, ARRAY['orders:read'],
								 rate_limit => 1000) c;

-- a cache of 16 entries for 40 tokens, three passes over all of them (the
-- argument depends on pass so that every pass really calls the function)
SET pixltoken.token_cache_size = 16;
SELECT count(*) FILTER (WHERE v.status = 200 AND v.token_id = t.token_id) AS ok,
	   count(*) AS calls
  FROM generate_series(1, 3) AS pass,
	   LATERAL (SELECT * FROM cache_tokens ORDER BY n) t,
	   LATERAL pixl_verify_token(t.token || repeat('', pass), 'orders:read', 'cache-a') v;

-- a revoke and a scope change are seen at once, evicted entry or not
SELECT pixl_revoke_token(token_id) FROM cache_tokens WHERE n = 1;
SELECT pixl_update_token(token_id, scopes => ARRAY['products:read']) FROM cache_tokens WHERE n = 40;
SELECT t.n, v.status, v.reason
  FROM cache_tokens t, LATERAL pixl_verify_token(t.token, 'orders:read', 'cache-a') v
 WHERE t.n IN (1, 2, 39, 40)
 ORDER BY t.n;

-- out-of-range sizes are refused
SET pixltoken.token_cache_size = 0;
RESET pixltoken.token_cache_size;

-- Misses read the registry by OID in the extension's schema: a caller's
-- search_path with look-alike tables and operators changes nothing
CREATE SCHEMA cache_evil;
CREATE TABLE cache_evil.pixl_token_registry (LIKE pixl_token_registry);
CREATE TABLE cache_evil.pixl_stores (LIKE pixl_stores);
CREATE FUNCTION cache_evil.byteaeq_evil(bytea, bytea) RETURNS boolean
	LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR cache_evil.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = cache_evil.byteaeq_evil);
SET search_path = cache_evil, public, pg_catalog;
SET pixltoken.token_cache_size = 16;
SELECT token_id AS fresh_id, token AS fresh FROM public.pixl_create_token('cache-a', 'Fresh', ARRAY['orders:read']) \gset
-- (the fresh token is a miss for sure)
SELECT v.status, v.reason, v.token_id = :'fresh_id' AS own_row,
	   (SELECT misses FROM public.pixl_cache_stats()) > 0 AS had_misses
  FROM public.pixl_verify_token(:'fresh', 'orders:read', 'cache-a') v;
SELECT t.n, v.status, v.reason, v.token_id = t.token_id AS own_row
  FROM pg_temp.cache_tokens t, LATERAL public.pixl_verify_token(t.token, 'orders:read', 'cache-a') v
 WHERE t.n IN (1, 2, 39)
 ORDER BY t.n;
RESET search_path;
RESET pixltoken.token_cache_size;
DROP SCHEMA cache_evil CASCADE;

-- Each C entry point checks the column count of the definition it is
-- called with: a stale definition fails cleanly
CREATE FUNCTION pg_temp.stale_verify(token text, scope text DEFAULT NULL, store_id text DEFAULT NULL,
									 method text DEFAULT NULL, endpoint text DEFAULT NULL, ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS '$libdir/pixltoken', 'pixl_verify_request' LANGUAGE C;
SELECT status FROM pg_temp.stale_verify(NULL);

-- Bulk changes: a transaction that changes more tokens than it tracks one
-- by one (256) publishes one "everything" item, and a backend that missed
-- more items than the ring holds (4096) flushes its whole cache: both end
-- in one flush, and answers stay right
CREATE TEMP TABLE bulk_tokens AS
SELECT n, c.token_id, c.token
  FROM generate_series(1, 300) AS n,
	   LATERAL pixl_create_token('cache-a', 'Bulk ' || n, ARRAY['orders:read'], rate_limit => 1000) c;
SELECT count(*) FILTER (WHERE v.status = 200) AS ok
  FROM bulk_tokens t, LATERAL pixl_verify_token(t.token) v;
SELECT flushes AS flushes_before FROM pixl_cache_stats() \gset
SELECT count(pixl_update_token(token_id, name => 'Bulk renamed ' || n)) AS renamed FROM bulk_tokens;
SELECT count(*) FILTER (WHERE v.status = 200) AS ok,
	   (SELECT flushes FROM pixl_cache_stats()) - :flushes_before AS flushes
  FROM bulk_tokens t, LATERAL pixl_verify_token(t.token) v;
-- 5,000 items in 25 transactions of 200, none verified in between
SELECT flushes AS flushes_before, generation AS generation_before FROM pixl_cache_stats() \gset
DO $$
BEGIN
	FOR round IN 1 .. 25 LOOP
		PERFORM pixl_update_token(token_id, rate_limit => 900 + round)
		   FROM pg_temp.bulk_tokens WHERE n <= 200;
		COMMIT;
	END LOOP;
END
$$;
SELECT count(*) FILTER (WHERE v.status = 200 AND v.rate_limit = 925) AS ok_new_limit,
	   (SELECT generation FROM pixl_cache_stats()) - :generation_before >= 5000 AS ring_overrun,
	   (SELECT flushes FROM pixl_cache_stats()) - :flushes_before AS flushes
  FROM bulk_tokens t, LATERAL pixl_verify_token(t.token) v
 WHERE t.n <= 200;

-- The checksum is checked on a cache miss only: a hit proves it, as every
-- cached hash was loaded after its secret's checksum passed.  A secret with
-- a wrong checksum character still answers 401 malformed without a probe of
-- the registry, on a new backend (cold) and with the real secret cached
-- (warm); the control, a changed random character with its checksum made
-- right, is well formed and costs the probes of an unknown secret.
SELECT token AS cs_tok FROM pixl_create_token('cache-a', 'Checksum', ARRAY['orders:read']) \gset
SELECT left(:'cs_tok', -1) || CASE WHEN right(:'cs_tok', 1) = 'a' THEN 'b' ELSE 'a' END AS cs_bad \gset
SELECT left(:'cs_tok', 12) || CASE WHEN substr(:'cs_tok', 13, 1) = 'a' THEN 'b' ELSE 'a' END
	   || substr(:'cs_tok', 14, 27) AS cs_body \gset
SELECT :'cs_body' || pixl_token_checksum(:'cs_body') AS cs_unknown \gset
SELECT pixl_token_format(:'cs_bad') AS bad_format, pixl_token_format(:'cs_unknown') AS unknown_format;
\c
-- probes of the extension's tables in this transaction, and cache misses
-- (pending statistics are not flushed inside a transaction block)
CREATE FUNCTION pg_temp.probes() RETURNS TABLE (probes bigint, misses bigint, hits bigint)
	LANGUAGE sql AS $$
	SELECT (SELECT coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)
			  FROM pg_stat_xact_user_tables
			 WHERE relname IN ('pixl_token_registry', 'pixl_stores', 'pixl_plans')),
		   c.misses, c.hits
	  FROM pixl_cache_stats() c
$$;
-- cold: nothing cached in this backend
BEGIN;
SELECT probes AS p0, misses AS m0, hits AS h0 FROM pg_temp.probes() \gset
SELECT status, reason, token_id FROM pixl_verify_token(:'cs_bad', 'orders:read');
SELECT probes - :p0 AS probes, misses - :m0 AS misses, hits - :h0 AS hits FROM pg_temp.probes();
COMMIT;
BEGIN;
SELECT probes AS p0, misses AS m0, hits AS h0 FROM pg_temp.probes() \gset
SELECT status, reason, token_id FROM pixl_verify_token(:'cs_unknown', 'orders:read');
SELECT probes - :p0 > 0 AS probed, misses - :m0 AS misses, hits - :h0 AS hits FROM pg_temp.probes();
COMMIT;
-- warm: the real secret is cached, its bad-checksum twin is still garbage
SELECT status, reason FROM pixl_verify_token(:'cs_tok', 'orders:read');
BEGIN;
SELECT probes AS p0, misses AS m0, hits AS h0 FROM pg_temp.probes() \gset
SELECT status, reason, token_id FROM pixl_verify_token(:'cs_bad', 'orders:read');
SELECT status, reason FROM pixl_verify_token(:'cs_tok', 'orders:read');
SELECT probes - :p0 AS probes, misses - :m0 AS misses, hits - :h0 AS hits FROM pg_temp.probes();
COMMIT;
-- the HTTP form answers the same
SELECT status, reason, www_authenticate IS NOT NULL AS challenge FROM pixl_verify_token_http(:'cs_bad', 'orders:read');
