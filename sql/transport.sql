-- Credentials over plain HTTP (draft-ietf-httpapi-privacy): the transport
-- overloads answer 403 insecure_transport, the same for every token; a
-- known token is revoked (exposed) by the usage worker, or only notified by
-- the store's setting; its next secure use answers 401 exposed; NULL and
-- 'https' change nothing; the eighth argument makes no call ambiguous.
\i test/helpers/setup.sql

CREATE FUNCTION pg_temp.wait_for(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXECUTE q INTO ok;
		IF ok THEN RETURN true; END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END
$$;
SELECT pg_temp.wait_for($$SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = current_database()$$) AS serving;

SELECT pixl_set_store_plan('tr-a', 'pro');
SELECT pixl_set_store_plan('tr-n', 'pro');
SELECT pixl_set_insecure_transport_action('tr-n', 'notify');
SELECT store_id, insecure_transport_action FROM pixl_stores WHERE store_id LIKE 'tr-%' ORDER BY 1;
SELECT token_id AS vid, token AS vtok FROM pixl_create_token('tr-a', 'valid', ARRAY['orders:read']) \gset
SELECT token_id AS v2id, token AS v2tok FROM pixl_create_token('tr-a', 'valid 2', ARRAY['orders:read']) \gset
SELECT token_id AS rid, token AS rtok FROM pixl_create_token('tr-a', 'revoked', ARRAY['orders:read']) \gset
SELECT pixl_revoke_token(:'rid');
SELECT token_id AS nid, token AS ntok FROM pixl_create_token('tr-n', 'notify only', ARRAY['orders:read']) \gset
SELECT token_id AS sid, token AS stok FROM pixl_create_token('tr-a', 'secure', ARRAY['orders:read']) \gset

-- the same answer for a valid token (twice: the second finds it marked),
-- a revoked one, an unknown one with a valid checksum, garbage, a token
-- id, a missing token, and a valid token of a notify-only store; whole
-- rows compared, HTTP headers and problem body included
CREATE TEMP TABLE tr_cases (n int, label text, token text);
INSERT INTO tr_cases VALUES
	(1, 'valid', :'vtok'),
	(2, 'valid again', :'vtok'),
	(3, 'revoked', :'rtok'),
	(4, 'unknown', 'sk_live_' || repeat('A', 32) || pixl_token_checksum('sk_live_' || repeat('A', 32))),
	(5, 'garbage', 'sk_live_nope'),
	(6, 'token id', :'vid'),
	(7, 'missing', NULL),
	(8, 'notify store', :'ntok'),
	(9, 'not a token at all', repeat('x', 1000));
CREATE TEMP TABLE tr_http AS
SELECT c.n, c.label, v.*
  FROM (SELECT * FROM tr_cases ORDER BY n) c,
	   LATERAL pixl_verify_token_http(c.token, 'orders:read', 'tr-a', 'GET', '/orders', '192.0.2.1', 1, 'http') v
 ORDER BY c.n;
SELECT count(*) AS cases,
	   count(DISTINCT (status, reason, token_id, store_id, mode, scopes, rate_limit,
					   remaining, reset_at, retry_after_ms, request_id, metadata,
					   previous_secret_used, staleness_ms, www_authenticate,
					   ratelimit_policy, ratelimit, retry_after, problem)) AS distinct_answers
  FROM tr_http;
\x on
SELECT status, reason, token_id, store_id, mode, scopes, rate_limit, remaining,
	   reset_at, retry_after_ms, request_id, metadata, previous_secret_used,
	   staleness_ms, www_authenticate, ratelimit_policy, ratelimit, retry_after, problem
  FROM tr_http WHERE n = 1;
\x off

-- the other two shapes: the same row for every case too
SELECT count(DISTINCT (v.*)::text) AS distinct_answers, min((v.*)::text) AS answer
  FROM tr_cases c,
	   LATERAL pixl_verify_request(c.token, 'orders:read', NULL, 'GET', '/orders', NULL, 1, 'http') v;
SELECT count(DISTINCT (v.*)::text) AS distinct_answers, min((v.*)::text) AS answer
  FROM tr_cases c,
	   LATERAL pixl_verify_token(c.token, 'orders:read', NULL, 'GET', '/orders', NULL, 1, 'http') v;

-- named arguments resolve to the transport overload
SELECT status, reason FROM pixl_verify_request(token => :'vtok', scope => 'orders:read', store_id => 'tr-a',
	method => 'GET', endpoint => '/orders', ip => NULL, cost => 1, transport => 'http');

-- the next secure use of the valid token: 401 exposed at once (marked on
-- this node until the worker's revocation is in the registry), and after
SELECT status, reason, token_id = :'vid' AS same_token, www_authenticate, problem
  FROM pixl_verify_token_http(:'vtok', 'orders:read', 'tr-a', 'GET', '/orders', NULL, 1, 'https');
SELECT status, reason FROM pixl_verify_request(:'vtok', 'orders:read');
SELECT pg_temp.wait_for(format($$SELECT status = 'exposed' FROM pixl_tokens WHERE token_id = %L$$, :'vid')) AS revoked;
SELECT status, revoked_at IS NOT NULL AS revoked FROM pixl_tokens WHERE token_id = :'vid';
SELECT revoked_reason FROM pixl_token_registry WHERE token_id = :'vid';
SELECT status, reason FROM pixl_verify_request(:'vtok', 'orders:read', NULL, NULL, NULL, NULL, 1, 'https');
-- exactly one expose event, with its source; the revoked token untouched
SELECT action, store_id, detail->>'source' AS source, detail->>'action' AS what,
	   detail ? 'seen_at' AS has_seen_at, detail->>'hint' = (SELECT hint FROM pixl_tokens WHERE token_id = :'vid') AS hint
  FROM pixl_audit WHERE token_id = :'vid' AND action = 'expose';
SELECT count(*) AS audit_rows FROM pixl_audit WHERE token_id = :'rid' AND action = 'expose';
SELECT revoked_reason FROM pixl_token_registry WHERE token_id = :'rid';

-- notify only: the token stays valid, one expose event with action notify
SELECT status, reason FROM pixl_verify_request(:'ntok', 'orders:read', NULL, NULL, NULL, NULL, 1, 'https');
SELECT pg_temp.wait_for(format($$SELECT count(*) = 1 FROM pixl_audit WHERE token_id = %L AND action = 'expose'$$, :'nid')) AS notified;
SELECT store_id, detail->>'source' AS source, detail->>'action' AS what
  FROM pixl_audit WHERE token_id = :'nid' AND action = 'expose';
SELECT status FROM pixl_tokens WHERE token_id = :'nid';
-- again over HTTP: still 403, no second notification within a day (the
-- revocation of v2, queued after it, shows the worker got that far)
SELECT status, reason FROM pixl_verify_request(:'ntok', 'orders:read', NULL, NULL, NULL, NULL, 1, 'http');
SELECT status, reason FROM pixl_verify_request(:'v2tok', 'orders:read', NULL, NULL, NULL, NULL, 1, 'http');
SELECT pg_temp.wait_for(format($$SELECT status = 'exposed' FROM pixl_tokens WHERE token_id = %L$$, :'v2id')) AS v2_revoked;
SELECT count(*) AS notifications FROM pixl_audit WHERE token_id = :'nid' AND action = 'expose';
SELECT status, reason FROM pixl_verify_request(:'ntok', 'orders:read', NULL, NULL, NULL, NULL, 1, 'https');

-- usage counts the 403s of known tokens (the two of the first statement
-- at least: later ones may come after the revocation, which has none)
SELECT pg_temp.wait_for(format($$SELECT coalesce(sum(errors), 0) >= 2 FROM pixl_usage_hourly WHERE token_id = %L$$, :'vid')) AS counted;
-- and its recent calls show the client: method, endpoint, address
SELECT pg_temp.wait_for(format($$SELECT coalesce(bool_or(ip = '192.0.2.1' AND method = 'GET' AND endpoint = '/orders'), false)
								  FROM pixl_recent_calls(%L, 403)$$, :'vid')) AS in_recent_calls;

-- this node's counters
SELECT insecure_rejections >= 30 AS rejections, revocations,
	   notifications >= 1 AS notified, capped, unqueued
  FROM pixl_transport_stats();
SELECT pg_temp.wait_for($$SELECT marked = 0 FROM pixl_transport_stats()$$) AS marks_cleared;

-- NULL (unknown) and 'https' (any case) verify as before
SELECT status, reason FROM pixl_verify_request(:'stok', 'orders:read', 'tr-a', 'GET', '/orders', NULL, 1, NULL);
SELECT status, reason FROM pixl_verify_request(:'stok', 'orders:read', 'tr-a', 'GET', '/orders', NULL, 1, 'https');
SELECT status, reason, token_id = :'sid' AS same_token, ratelimit_policy
  FROM pixl_verify_token_http(:'stok', 'orders:read', 'tr-a', 'GET', '/orders', NULL, 1, 'HTTPS');
SELECT status, reason FROM pixl_verify_request(:'stok', 'orders:write', 'tr-a', 'GET', '/orders', NULL, 1, NULL);
SELECT status, reason FROM pixl_verify_request('sk_live_nope', 'orders:read', 'tr-a', 'GET', '/orders', NULL, 1, 'HTTP');
SELECT status FROM pixl_tokens WHERE token_id = :'sid';

-- a bad transport is the caller's bug, whatever the token; so are a bad
-- cost and scope, checked first
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_verify_request('x', 'orders:read', NULL, NULL, NULL, NULL, 1, 'ftp')$$);
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_verify_token_http(NULL, '*', NULL, NULL, NULL, NULL, 1, '')$$);
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_verify_token('x', '*', NULL, NULL, NULL, NULL, 1, 'https ')$$);
SELECT state FROM pg_temp.err($$SELECT * FROM pixl_verify_request('x', 'orders:read', NULL, NULL, NULL, NULL, 0, 'http')$$);
SELECT state FROM pg_temp.err($$SELECT * FROM pixl_verify_request('x', NULL, NULL, NULL, NULL, NULL, 1, 'http')$$);

-- every earlier call form still resolves (no ambiguity) to its function
SELECT p.oid::regprocedure, p.prosrc
  FROM pg_proc p
 WHERE p.proname IN ('pixl_verify_token', 'pixl_verify_request', 'pixl_verify_token_http')
 ORDER BY p.proname, p.pronargs;
SELECT status FROM pixl_verify_request('x', '*');
SELECT status FROM pixl_verify_request('x', '*', NULL, NULL, NULL, NULL, 1);
SELECT status FROM pixl_verify_request(token => 'x', scope => '*', cost => 1, store_id => NULL, method => NULL, endpoint => NULL, ip => NULL);
SELECT status FROM pixl_verify_token('x');
SELECT status FROM pixl_verify_token_http('x', '*', ip => '192.0.2.1');
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_verify_request('x', '*', NULL, NULL, NULL, NULL, 1, 'http', 2)$$);
-- no defaults: a named call gives all eight
SELECT state FROM pg_temp.err($$SELECT * FROM pixl_verify_request(token => 'x', scope => '*', transport => 'http')$$);

-- the store setting: its admins and platform admins; revoke or notify only
SELECT * FROM pg_temp.err($$SELECT pixl_set_insecure_transport_action('tr-a', 'ignore')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_insecure_transport_action('tr-a', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_insecure_transport_action('tr-none', 'notify')$$);
SELECT pixl_set_insecure_transport_action('tr-n', 'revoke');
SELECT detail FROM pixl_audit WHERE store_id = 'tr-n' AND action = 'plan' AND detail ? 'insecure_transport_action' ORDER BY audit_id;
CREATE ROLE tr_other_admin;
GRANT EXECUTE ON FUNCTION pixl_set_insecure_transport_action(text, text) TO tr_other_admin;
SET ROLE tr_other_admin;
SELECT state FROM pg_temp.err($$SELECT pixl_set_insecure_transport_action('tr-a', 'notify')$$);
RESET ROLE;
SELECT insecure_transport_action FROM pixl_stores WHERE store_id = 'tr-a';
-- the worker's function is no one's but the owner's
SELECT has_function_privilege('tr_other_admin', 'pixl_expose_insecure(text[], text[], timestamptz[])', 'EXECUTE') AS worker_fn,
	   has_function_privilege('tr_other_admin', 'pixl_transport_stats()', 'EXECUTE') AS stats,
	   has_function_privilege('tr_other_admin', 'pixl_verify_request(text, text, text, text, text, inet, int, text)', 'EXECUTE') AS verify;
REVOKE ALL ON FUNCTION pixl_set_insecure_transport_action(text, text) FROM tr_other_admin;
DROP ROLE tr_other_admin;
