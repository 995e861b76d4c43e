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
