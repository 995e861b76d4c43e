-- pixl_verify_token_http: the HTTP answer of every status and reason
-- (WWW-Authenticate per RFC 6750, RateLimit-Policy / RateLimit per
-- draft-ietf-httpapi-ratelimit-headers-11, Retry-After, RFC 9457 problem
-- bodies), and the 1.1 columns of pixl_verify_request.
\i test/helpers/setup.sql

SELECT pixl_set_store_plan('http-a', 'pro');
SELECT token_id AS id, token AS tok
  FROM pixl_create_token('http-a', 'HTTP', ARRAY['orders:read'], rate_limit => 2,
						 metadata => '{"customer": "acme"}') \gset
SELECT token_id AS iid, token AS itok
  FROM pixl_create_token('http-a', 'HTTP allowlisted', ARRAY['orders:read'],
						 allowed_ips => ARRAY['192.0.2.0/24']) \gset
SELECT token_id AS rid, token AS rtok FROM pixl_create_token('http-a', 'HTTP revoked', ARRAY['orders:read']) \gset
SELECT pixl_revoke_token(:'rid');
SELECT token_id AS did, token AS dtok FROM pixl_create_token('http-a', 'HTTP disabled', ARRAY['orders:read']) \gset
SELECT pixl_disable_token(:'did');
SELECT token_id AS xid, token AS xtok FROM pixl_create_token('http-a', 'HTTP exposed', ARRAY['orders:read']) \gset
SELECT pixl_report_leaked(:'xtok', 'test');
SELECT token_id AS eid, token AS etok
  FROM pixl_create_token('http-a', 'HTTP expired', ARRAY['orders:read'],
						 expires_at => clock_timestamp() + interval '1 s') \gset
SELECT pg_sleep(1.2);

-- one row per case, in order; charged cases come in the order that spends
-- the quota of 2: 200, 403 insufficient_scope, then 429 for the third
CREATE TEMP TABLE http_cases (n int, label text, token text, scope text, store text, ip inet);
INSERT INTO http_cases VALUES
	(1, 'ok', :'tok', 'orders:read', 'http-a', NULL),
	(2, 'insufficient_scope', :'tok', 'orders:write', NULL, NULL),
	(3, 'rate_limited', :'tok', 'orders:read', NULL, NULL),
	(4, 'wrong_store', :'itok', NULL, 'http-other-store', '192.0.2.1'),
	(5, 'ip_not_allowed', :'itok', NULL, NULL, '198.51.100.1'),
	(6, 'missing', NULL, NULL, NULL, NULL),
	(7, 'malformed', 'sk_live_nope', NULL, NULL, NULL),
	(8, 'token_id_not_secret', :'id', NULL, NULL, NULL),
	(9, 'unknown', 'sk_live_' || repeat('A', 38), NULL, NULL, NULL),
	(10, 'revoked', :'rtok', NULL, NULL, NULL),
	(11, 'disabled', :'dtok', NULL, NULL, NULL),
	(12, 'exposed', :'xtok', NULL, NULL, NULL),
	(13, 'expired', :'etok', NULL, NULL, NULL);
-- the unknown token needs a valid checksum
UPDATE http_cases SET token = 'sk_live_' || repeat('A', 32) || pixl_token_checksum('sk_live_' || repeat('A', 32))
 WHERE n = 9;

CREATE TEMP TABLE http_results AS
SELECT c.n, c.label, v.*
  FROM (SELECT * FROM http_cases ORDER BY n) c,
	   LATERAL pixl_verify_token_http(c.token, coalesce(c.scope, '*'), c.store, 'GET', '/x', c.ip) v
 ORDER BY c.n;

SELECT n, status, reason, label = reason AS as_planned FROM http_results ORDER BY n;
\x on
-- (the seconds of t and Retry-After depend on timing: checked below)
SELECT n, status, www_authenticate, ratelimit_policy,
	   regexp_replace(ratelimit, 't=\d+$', 't=<s>') AS ratelimit,
	   regexp_replace(retry_after, '^\d+$', '<s>') AS retry_after,
	   regexp_replace(problem::text, 'retry in \d+ seconds', 'retry in <s> seconds')::jsonb AS problem
  FROM http_results ORDER BY n;
\x off
-- never a secret, a token id or another store's id in a problem or header
SELECT r.n FROM http_results r, http_cases c
 WHERE r.n = c.n
   AND (r.problem::text LIKE '%sk\_%' OR r.problem::text LIKE '%tok\_%'
		OR r.problem::text LIKE '%http-a%' OR r.problem::text LIKE '%http-other%'
		OR r.www_authenticate LIKE '%tok\_%');
-- the 1.1 columns agree with pixl_verify_request's, the metadata included
SELECT n, token_id IS NOT NULL AS has_id, request_id IS NOT NULL AS has_rid,
	   metadata, previous_secret_used, retry_after_ms IS NOT NULL AS has_retry_ms
  FROM http_results ORDER BY n;
-- staleness_ms: NULL on a primary, whatever the answer, in both functions
-- (a hot standby fills it: test/t/050_standby.pl)
SELECT count(*) AS answers, count(staleness_ms) AS with_staleness FROM http_results;
SELECT v.status, v.reason, v.staleness_ms IS NULL AS no_staleness
  FROM (VALUES (1, 'sk_live_nope'), (2, :'rtok')) t(n, tok),
	   LATERAL pixl_verify_request(t.tok, '*') v ORDER BY t.n;
-- One model, one rounding: Retry-After is retry_after_ms rounded up, and on
-- a 429 the t of RateLimit is the same number (a request leaves the window
-- at the end of the 61st second after its own: t may be 61 with w=60,
-- never more); the detail says the same wait
SELECT n, retry_after::int = ceil(retry_after_ms / 1000.0) AS retry_after_rounds_up,
	   retry_after::int BETWEEN 58 AND 61 AS retry_after_about_a_minute,
	   substring(ratelimit FROM 't=(\d+)') = retry_after AS t_is_retry_after,
	   problem->>'detail' LIKE '%retry in ' || retry_after || ' seconds.' AS detail_agrees
  FROM http_results WHERE n = 3;
SELECT n, substring(ratelimit FROM 't=(\d+)')::int BETWEEN 55 AND 61 AS t_within_window
  FROM http_results WHERE ratelimit IS NOT NULL ORDER BY n;
-- many 429s in a row: always the same number in both headers
SELECT count(*) AS rejections,
	   count(*) FILTER (WHERE substring(v.ratelimit FROM 't=(\d+)') = v.retry_after) AS agreeing
  FROM generate_series(1, 200) g,
	   LATERAL pixl_verify_token_http(CASE WHEN g > 0 THEN :'tok' END, 'orders:read') v
 WHERE v.status = 429;

-- the scope is required: NULL is an error (PX081) in 1.1's functions, '*'
-- asks for none; 1.0's pixl_verify_token keeps 1.0's reading of NULL (no
-- scope check), for app servers written against 1.0
SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_verify_token_http('sk_live_nope')$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_verify_token_http('sk_live_nope', NULL)$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_verify_request('sk_live_nope')$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_verify_request(NULL, NULL, 'http-a')$$);
SELECT 'http' AS fn, status, reason, www_authenticate FROM pixl_verify_token_http(:'itok', '*', NULL, NULL, NULL, '192.0.2.9')
UNION ALL SELECT 'request', status, reason, NULL FROM pixl_verify_request(:'itok', '*', NULL, NULL, NULL, '192.0.2.9')
UNION ALL SELECT '1.0 NULL', status, reason, NULL FROM pixl_verify_token(:'itok', NULL, NULL, NULL, NULL, '192.0.2.9')
UNION ALL SELECT '1.0 *', status, reason, NULL FROM pixl_verify_token(:'itok', '*', NULL, NULL, NULL, '192.0.2.9')
UNION ALL SELECT '1.0 scope', status, reason, NULL FROM pixl_verify_token(:'itok', 'orders:write', NULL, NULL, NULL, '192.0.2.9');

-- settings: realm and base URI; a realm that cannot be quoted is refused
SET pixltoken.http_realm = 'shop api';
SET pixltoken.problem_base_uri = 'https://errors.example.com/api-token/';
SELECT www_authenticate, problem->>'type' AS type FROM pixl_verify_token_http(NULL, '*');
SET pixltoken.http_realm = 'say "hi"';
SET pixltoken.http_realm = E'line\nbreak';
RESET pixltoken.http_realm;
RESET pixltoken.problem_base_uri;

-- the result columns of both functions
SELECT p.proname, pg_get_function_result(p.oid) AS result
  FROM pg_proc p WHERE p.proname IN ('pixl_verify_token', 'pixl_verify_request', 'pixl_verify_token_http') ORDER BY 1;
