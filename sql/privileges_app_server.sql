-- Privileges of an app-server role: EXECUTE on pixl_verify_request and
-- pixl_log_response is enough to verify and report; nothing else.  (An app
-- written against 1.0 has EXECUTE on pixl_verify_token and
-- pixl_log_response(bigint, ...): the same, with 1.0's result type.)
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_pixl_app;
RESET client_min_messages;
CREATE ROLE regress_pixl_app;
-- README's app-server grant
GRANT EXECUTE ON FUNCTION pixl_verify_request(text, text, text, text, text, inet),
						  pixl_log_response(text, int, double precision)
	TO regress_pixl_app;

SELECT pixl_set_store_plan('app-a', 'growth');
SELECT token_id AS id, token AS secret
  FROM pixl_create_token('app-a', 'App', ARRAY['orders:write'], rate_limit => 250) \gset

SET ROLE regress_pixl_app;
SELECT status, reason, token_id = :'id' AS same_id, store_id, mode, scopes, rate_limit
  FROM pixl_verify_request(:'secret', 'orders:read', 'app-a');
SELECT request_id AS req FROM pixl_verify_request(:'secret', 'orders:read', 'app-a') \gset
SELECT pixl_log_response(:'req', 204, 3.5);
SELECT status, reason FROM pixl_verify_request(:'id', 'orders:read');
SELECT status, reason FROM pixl_verify_request(NULL, '*');
-- 1.0's functions are not granted by this
SELECT (pg_temp.err($$SELECT * FROM pixl_verify_token('x')$$)).state;
-- nothing else: no management, no table, no hash
SELECT rel, (pg_temp.err(q)).state, (pg_temp.err(q)).message
  FROM (VALUES
	('create', $$SELECT pixl_create_token('app-a', 'n', ARRAY['orders:read'])$$),
	('rotate', format('SELECT pixl_rotate_token(%L)', :'id')),
	('revoke', format('SELECT pixl_revoke_token(%L)', :'id')),
	('update', format('SELECT pixl_update_token(%L, name => %L)', :'id', 'x')),
	('plan', $$SELECT pixl_set_store_plan('app-a', 'free')$$),
	('hash', $$SELECT pixl_secret_hash('x')$$),
	('tokens', 'SELECT 1 FROM pixl_tokens'),
	('registry', 'SELECT 1 FROM pixl_token_registry'),
	('audit', 'SELECT 1 FROM pixl_audit'),
	('plans', 'SELECT 1 FROM pixl_plans'),
	('stores', 'SELECT 1 FROM pixl_stores'),
	('summary', format('SELECT * FROM pixl_usage_summary(%L)', :'id')),
	('recent', format('SELECT * FROM pixl_recent_calls(%L)', :'id')),
	('events', 'SELECT 1 FROM pixl_usage_events'),
	('hourly', 'SELECT 1 FROM pixl_usage_hourly')) v(rel, q);
RESET ROLE;

REVOKE ALL ON FUNCTION pixl_verify_request(text, text, text, text, text, inet),
					   pixl_log_response(text, int, double precision) FROM regress_pixl_app;
DROP ROLE regress_pixl_app;
