-- The pixltoken demo: the user guide, step by step, as SQL.
-- Run by demo/run.sh against a throwaway cluster.
\pset footer off
\pset null '∅'
\set VERBOSITY terse

\echo
\echo '### A DBA installs the extension (the library is in shared_preload_libraries)'
CREATE EXTENSION pixltoken;
-- the usage worker notices the new extension within a second
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN EXISTS (SELECT FROM pixl_stats()
						   WHERE datname = current_database() AND worker_state = 'serving');
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;

\echo
\echo '### Plans, as in the guide''s "Rate Limits" table'
SELECT * FROM pixl_plans ORDER BY max_rate_limit;

\echo
\echo '### A store on the "starter" plan (max 120 req/min)'
SELECT pixl_set_store_plan('acme-games', 'starter') \g /dev/null
SELECT store_id, plan FROM pixl_stores;

\echo
\echo '### Settings > API Tokens > Create Key: "Mobile App", products:write + orders:read, 5 req/min'
\echo '### The secret is shown this once; only its SHA-256 hash is stored.'
SELECT token_id, token FROM pixl_create_token(
	store_id => 'acme-games', name => 'Mobile App',
	scopes => ARRAY['products:write', 'orders:read'], rate_limit => 5) \gset mobile_
SELECT :'mobile_token_id' AS token_id, :'mobile_token' AS "token (copy it now!)";

\echo
\echo '### "Analytics Dashboard": analytics:read, expires in 90 days'
SELECT token_id, token FROM pixl_create_token(
	'acme-games', 'Analytics Dashboard', ARRAY['analytics:read'],
	expires_at => now() + interval '90 days') \gset dash_

\echo
\echo '### The token list (no secret, no hash: a hint only)'
SELECT token_id, name, hint, scopes, rate_limit, effective_rate_limit,
	   expires_at::date AS expires, status
  FROM pixl_tokens ORDER BY created_at;

\echo
\echo '### An app server verifies each request: SELECT status, reason, ... FROM pixl_verify_request(...) (name the columns: later versions only add some)'
\echo '### 200: valid, in scope (products:write grants products:read), same store'
SELECT status, reason, token_id, store_id, scopes, rate_limit, remaining, request_id IS NOT NULL AS has_request_id
  FROM pixl_verify_request(:'mobile_token', 'products:read', 'acme-games', 'GET', '/v1/store/products', '203.0.113.7');

\echo
\echo '### Every kind of 401 (no table is touched for the first four)'
SELECT label, v.status, v.reason
  FROM (VALUES
		('no token',                  NULL),
		('copy-paste: extra space',   ' ' || :'mobile_token'),
		('Bearer left in',            'Bearer ' || :'mobile_token'),
		('a character missing',       left(:'mobile_token', -1)),
		('token id instead of secret', :'mobile_token_id'),
		('well-formed, unknown',      'sk_live_' || repeat('0', 32) || pixl_token_checksum('sk_live_' || repeat('0', 32)))
	   ) AS t(label, tok),
	   LATERAL pixl_verify_request(t.tok, 'products:read') v;

\echo
\echo '### 403: lacking scope, and another store'
SELECT 'needs orders:write' AS label, status, reason, remaining
  FROM pixl_verify_request(:'mobile_token', 'orders:write', 'acme-games', 'PUT', '/v1/store/orders/1001', '203.0.113.7')
UNION ALL
SELECT 'store other-shop', status, reason, remaining
  FROM pixl_verify_request(:'mobile_token', 'products:read', 'other-shop', 'GET', '/v1/store/products', '203.0.113.7');

\echo
\echo '### Rotate "Mobile App": same id and settings, new secret; the old one stops at commit'
SELECT pixl_rotate_token(:'mobile_token_id') AS new_token \gset
SELECT 'old secret' AS which, status, reason FROM pixl_verify_request(:'mobile_token', 'products:read', 'acme-games', 'GET', '/v1/store/products', '203.0.113.7')
UNION ALL
SELECT 'new secret', status, reason FROM pixl_verify_request(:'new_token', 'products:read', 'acme-games', 'GET', '/v1/store/products', '203.0.113.7');

\echo
\echo '### 429: the 5 req/min limit of "Mobile App" (rotation keeps the window; 200s and 403s count; never more than 5 in any 60 s)'
SELECT n, v.status, v.reason, v.remaining, v.retry_after_ms,
	   CASE WHEN v.status = 429 THEN 'Retry-After: ' || ceil(v.retry_after_ms / 1000.0) END AS "Retry-After",
	   format('"default";q=%s;w=60', v.rate_limit) AS "RateLimit-Policy",
	   format('"default";r=%s;t=%s', v.remaining,
			  greatest(0, ceil(extract(epoch FROM v.reset_at - clock_timestamp())))) AS "RateLimit"
  FROM generate_series(1, 4) AS n,
	   LATERAL pixl_verify_request(:'new_token', 'orders:read', 'acme-games',
								 'GET', '/v1/store/orders', ('203.0.113.' || n)::inet) v;

\echo
\echo '### The same verification as a finished HTTP answer: pixl_verify_token_http(...) adds the headers and an RFC 9457 body'
SELECT label, v.status, v.reason, v.www_authenticate AS "WWW-Authenticate",
	   v.ratelimit AS "RateLimit", v.retry_after AS "Retry-After", v.problem->>'title' AS "problem title"
  FROM (VALUES
		(1, '200',                 :'dash_token', 'analytics:read', 'acme-games'),
		(2, 'no token',            NULL,          '*',              NULL),
		(3, 'a character missing', left(:'dash_token', -1), '*',    NULL),
		(4, 'lacking scope',       :'dash_token', 'orders:write',   NULL),
		(5, 'another store',       :'dash_token', '*',              'other-shop'),
		(6, 'over the limit',      :'new_token',  'orders:read',    NULL)
	   ) AS t(n, label, tok, scope, store),
	   LATERAL pixl_verify_token_http(t.tok, t.scope, t.store, 'GET', '/v1/store/x', '203.0.113.7') v
 ORDER BY t.n;
\echo '### The problem+json body of the 429 (never a secret or a store id)'
SELECT jsonb_pretty(problem) AS "application/problem+json"
  FROM pixl_verify_token_http(:'new_token', 'orders:read', 'acme-games', 'GET', '/v1/store/orders', '203.0.113.7');

\echo
\echo '### A monthly allowance: plan "metered" sells 10 calls a period (weighted by cost), shared by all tokens of a store'
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('metered', 60, 600, 10, 10);
SELECT pixl_set_store_plan('tiny-shop', 'metered') \g /dev/null
SELECT token FROM pixl_create_token('tiny-shop', 'Report exporter', ARRAY['analytics:read']) \gset exporter_
\echo '### Each export costs 4 (cost => 4): two fit in 10; the third is 429 quota_exceeded until the period ends'
SELECT n, v.status, v.reason, v.ratelimit_policy AS "RateLimit-Policy", v.ratelimit AS "RateLimit",
	   v.retry_after::int / 86400 || ' days' AS "Retry-After (rounded)", v.problem->>'title' AS "problem title"
  FROM generate_series(1, 3) AS n,
	   LATERAL pixl_verify_token_http(:'exporter_token', 'analytics:read', 'tiny-shop', 'GET', '/v1/reports/export',
									  ('203.0.113.' || n)::inet, cost => 4) v;
\echo '### The problem+json body of that 429'
SELECT jsonb_pretty(problem) AS "application/problem+json"
  FROM pixl_verify_token_http(:'exporter_token', 'analytics:read', 'tiny-shop', 'GET', '/v1/reports/export',
							  '203.0.113.7', cost => 4);
\echo '### Where the store stands (the store row is exact; token rows as of the last fold)'
SELECT coalesce(token_id, '(store)') AS "for", allowance, used, remaining, period_end::date AS resets, exact
  FROM pixl_store_quota('tiny-shop');
\echo '### At 80 % the worker sent a quota_warning event, once (read with pixl_events_since, woken by NOTIFY pixltoken)'
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN EXISTS (SELECT FROM pixl_audit WHERE store_id = 'tiny-shop' AND action = 'quota_warning');
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT action, store_id, detail->>'used' AS used, detail->>'allowance' AS allowance, detail->>'percent' AS percent
  FROM pixl_events_since(0) WHERE action LIKE 'quota%';

\echo
\echo '### An office-only token (IP allowlist), suspended and resumed; a leaked secret reported by a scanner'
SELECT token_id, token FROM pixl_create_token('acme-games', 'Office POS', ARRAY['orders:read'],
	allowed_ips => ARRAY['203.0.113.0/24'], metadata => '{"terminal": "POS-1"}') \gset pos_
SELECT 'from the office' AS label, status, reason, metadata
  FROM pixl_verify_request(:'pos_token', 'orders:read', NULL, 'GET', '/v1/store/orders', '203.0.113.9')
UNION ALL
SELECT 'from elsewhere (no quota used)', status, reason, metadata
  FROM pixl_verify_request(:'pos_token', 'orders:read', NULL, 'GET', '/v1/store/orders', '192.0.2.1');
SELECT pixl_disable_token(:'pos_token_id', 'terminal sent for repair') \g /dev/null
SELECT 'disabled' AS label, status, reason FROM pixl_verify_request(:'pos_token', '*', NULL, NULL, NULL, '203.0.113.9');
SELECT pixl_enable_token(:'pos_token_id') \g /dev/null
SELECT 'enabled again' AS label, status, reason FROM pixl_verify_request(:'pos_token', '*', NULL, NULL, NULL, '203.0.113.9');
SELECT pixl_report_leaked(:'pos_token', 'github secret scanning: acme/pos-app') \g /dev/null
SELECT 'after the leak report' AS label, status, reason FROM pixl_verify_request(:'pos_token', '*', NULL, NULL, NULL, '203.0.113.9');
SELECT name, status, allowed_ips, metadata FROM pixl_tokens WHERE token_id = :'pos_token_id';

\echo
\echo '### The app reports its final status and response time (optional second call)'
SELECT request_id AS req FROM pixl_verify_request(:'dash_token', 'analytics:read', 'acme-games', 'GET', '/v1/store/analytics', '198.51.100.23') \gset
SELECT pixl_log_response(:'req', 200, 42.5) \g /dev/null
SELECT request_id AS req FROM pixl_verify_request(:'dash_token', 'analytics:read', 'acme-games', 'GET', '/v1/store/analytics/export', '198.51.100.23') \gset
SELECT pixl_log_response(:'req', 500, 812.0) \g /dev/null

\echo
\echo '### Revoke "Analytics Dashboard": irreversible, instant for every connection'
SELECT pixl_revoke_token(:'dash_token_id') \g /dev/null
SELECT status, reason FROM pixl_verify_request(:'dash_token', 'analytics:read', 'acme-games', 'GET', '/v1/store/analytics', '198.51.100.23');
SELECT name, hint, status, revoked_at IS NOT NULL AS revoked FROM pixl_tokens ORDER BY created_at;

\echo
\echo '### Usage: the worker drains the shared-memory queue into partitioned tables (waiting for it)'
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN (SELECT events_queued = 0 FROM pixl_stats() WHERE datname = current_database());
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT datname, worker_state, tokens_tracked, events_queued, events_flushed,
	   events_written_through, events_dropped, responses_applied, flush_lag
  FROM pixl_stats() WHERE datname = current_database();
SELECT count(*) AS usage_rows FROM pixl_usage_events;

\echo
\echo '### Usage page of "Mobile App" (history survives rotation)'
SELECT * FROM pixl_usage_summary(:'mobile_token_id', 'today');
SELECT * FROM pixl_usage_endpoints(:'mobile_token_id', 'today');
SELECT * FROM pixl_usage_timeline(:'mobile_token_id', 'today') WHERE requests > 0;
SELECT at::time(0) AS at, method, endpoint, status, ip, response_ms FROM pixl_recent_calls(:'mobile_token_id');

\echo
\echo '### Usage page of the revoked "Analytics Dashboard" (history preserved), only errors'
SELECT * FROM pixl_usage_summary(:'dash_token_id', 'today');
SELECT at::time(0) AS at, method, endpoint, status, ip, response_ms FROM pixl_recent_calls(:'dash_token_id', status => 500);

\echo
\echo '### The audit trail: who did what, when (no secret, no hash)'
SELECT at::time(0) AS at, actor, action, token_id, store_id, detail FROM pixl_audit ORDER BY audit_id;
