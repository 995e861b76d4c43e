-- Weighted calls in usage: every counted verification adds its cost to the
-- rollups' cost (403 and 429 too) and what the period allowance charged to
-- charged; a response report whose final status the plan does not count
-- gives the charge back to the allowance and to charged, once.  The worker
-- folds them (pixltoken.fold_interval is 100 ms here).
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

-- a plan whose allowance counts 2xx final statuses only
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota, quota_counts)
VALUES ('cost_plan', 60, 1000, 10, 100, '2xx');
SELECT pixl_set_store_plan('cost-a', 'cost_plan');
SELECT token_id AS tok, token AS secret
  FROM pixl_create_token('cost-a', 'weighted', ARRAY['orders:read'], rate_limit => 1000) \gset

-- two admitted calls of cost 3, one of cost 5 refused for its scope (403:
-- counted, not charged), one of cost 1 on another endpoint
SELECT status, request_id AS rid1 FROM pixl_verify_request(:'secret', 'orders:read', NULL, 'GET', '/orders', NULL, 3) \gset
SELECT status, request_id AS rid2 FROM pixl_verify_request(:'secret', 'orders:read', NULL, 'GET', '/orders', NULL, 3) \gset
SELECT status, request_id AS rid3 FROM pixl_verify_request(:'secret', 'orders:write', NULL, 'GET', '/orders', NULL, 5) \gset
SELECT status FROM pixl_verify_request(:'secret', 'orders:read', NULL, 'GET', '/items', NULL, 1);
SELECT used FROM pixl_quota_used('cost-a');
-- the first ends in a 500: refunded; the second in a 200; the 403 charged
-- nothing; a second report of the first is refused and refunds nothing
SELECT pixl_log_response(:'rid1', 500, 10);
SELECT pixl_log_response(:'rid2', 200, 10);
SELECT pixl_log_response(:'rid3', 403, 1);
SELECT state FROM pg_temp.err(format('SELECT pixl_log_response(%L, 500, 10)', :'rid1'));
SELECT used FROM pixl_quota_used('cost-a');
-- (the refund comes just after its response: wait for both to be folded)
SELECT pg_temp.wait_for(format('SELECT sum(response_ms_count) = 3 AND sum(charged) = 4 FROM pixl_usage_hourly WHERE token_id = %L', :'tok')) AS folded;
SELECT endpoint, requests, errors, cost, charged
  FROM pixl_usage_hourly WHERE token_id = :'tok' ORDER BY endpoint;
-- the store's charged in the rollups is its counter
SELECT (SELECT sum(charged) FROM pixl_usage_hourly WHERE token_id = :'tok')
	   = (SELECT used FROM pixl_quota_used('cost-a')) AS rollups_match_counter;
