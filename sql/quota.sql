-- Plan quotas: a period allowance per store shared by its tokens, a
-- token's own lower allowance, weighted calls (cost), the period's
-- arithmetic and its billing-day anchor, 429 quota_exceeded in the plain
-- and the HTTP form, who may set what, and the errors.
\i test/helpers/setup.sql

-- 1. The period: 00:00 UTC on the billing day (NULL: the 1st), of this
-- month once it has come, else of the month before.
SELECT ts, day, pixl_quota_period_start(ts, day::smallint) AS period_start
  FROM (VALUES
	('2026-03-15 12:00+00'::timestamptz, NULL::smallint),
	('2026-03-01 00:00+00', NULL),
	('2026-02-28 23:59:59.999999+00', NULL),
	('2026-01-14 23:59:59+00', 15),		-- the period from Dec 15
	('2026-01-15 00:00+00', 15),		-- Jan 15 .. Feb 15: 31 days
	('2026-02-14 23:59:59+00', 15),
	('2026-02-15 00:00+00', 15),		-- Feb 15 .. Mar 15: 28 days
	('2026-03-14 23:59:59+00', 15),
	('2028-02-29 12:00+00', 28),		-- a leap day: from Feb 28
	('2027-01-01 00:00+00', 28),		-- over the year's end: Dec 28
	('2026-12-31 23:00+00', 1)
  ) v(ts, day);
-- the length of those periods
SELECT day, s, pixl_quota_period_start(s + interval '1 month 1 day', day::smallint) - s AS length
  FROM (VALUES (15::smallint, '2026-01-15 00:00+00'::timestamptz),
			   (15, '2026-02-15 00:00+00'), (NULL, '2026-02-01 00:00+00'),
			   (NULL, '2028-02-01 00:00+00'), (28, '2026-01-28 00:00+00')) v(day, s);
-- in UTC whatever the session's time zone (local date Feb 28 here)
SET timezone = 'America/Los_Angeles';
SELECT pixl_quota_period_start('2026-03-01 02:00+00') = '2026-03-01 00:00+00' AS utc_anchor;
SET timezone = 'UTC';
SELECT * FROM pg_temp.err($$SELECT pixl_quota_period_start(now(), 0::smallint)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_quota_period_start(now(), 29::smallint)$$);

-- 2. A store's allowance, shared by its tokens; a refused call is charged
-- to nothing, neither the allowance nor the minute window.
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('quota_five', 60, 1000, 10, 5), ('quota_ten', 60, 1000, 10, 10);
SELECT pixl_set_store_plan('quota-a', 'quota_five');
SELECT token_id AS a1, token AS a1tok
  FROM pixl_create_token('quota-a', 'A1', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT token_id AS a2, token AS a2tok
  FROM pixl_create_token('quota-a', 'A2', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT n, status, reason, remaining
  FROM generate_series(1, 3) n, LATERAL pixl_verify_request(:'a1tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
SELECT n, status, reason, remaining
  FROM generate_series(4, 6) n, LATERAL pixl_verify_request(:'a2tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
-- the refused call: retry_after_ms to the period's end (an int: at most
-- 24.8 days), the window untouched
SELECT status, reason, remaining AS window_remaining,
	   abs(retry_after_ms - least(extract(epoch FROM
		   (pixl_quota_period_start(now()) + interval '1 month') - clock_timestamp()) * 1000, 2147483647)) < 2000 AS retry_to_period_end
  FROM pixl_verify_request(:'a1tok', 'orders:read');
-- 1.0's shape says the same
SELECT status, reason FROM pixl_verify_token(:'a1tok', 'orders:read');
SELECT period_start = pixl_quota_period_start(now()) AS this_period, used FROM pixl_quota_used('quota-a');
SELECT counters >= 1 AS has_counters, table_full_rejections FROM pixl_quota_stats();
-- a store without an allowance keeps 1.1's behaviour: no counter
SELECT pixl_set_store_plan('quota-none', 'pro');
SELECT token, token_id AS nid FROM pixl_create_token('quota-none', 'N', ARRAY['orders:read']) \gset none_
SELECT count(*) FILTER (WHERE status = 200) AS admitted
  FROM generate_series(1, 8) n, LATERAL pixl_verify_request(:'none_token', 'orders:read', method => 'GET' || left(n::text, 0)) v;
SELECT count(*) AS counters FROM pixl_quota_used('quota-none');

-- 3. Weighted calls: cost is charged to the window and to the allowance.
SELECT pixl_set_store_plan('quota-b', 'quota_ten');
SELECT token_id AS b1, token AS b1tok
  FROM pixl_create_token('quota-b', 'B1', ARRAY['orders:read'], rate_limit => 12) \gset
SELECT n, status, reason, remaining
  FROM (VALUES (1, 4), (2, 4), (3, 4), (4, 2), (5, 3), (6, 1)) c(n, cost),
	   LATERAL pixl_verify_request(:'b1tok', 'orders:read', NULL, NULL, NULL, NULL, cost)
 ORDER BY n;
SELECT used FROM pixl_quota_used('quota-b');
-- by name, and in the other two shapes
SELECT status, reason FROM pixl_verify_token(token => :'b1tok', scope => 'orders:read', store_id => NULL,
											 method => NULL, endpoint => NULL, ip => NULL, cost => 1);
SELECT status, reason FROM pixl_verify_token_http(:'b1tok', 'orders:read', NULL, NULL, NULL, NULL, 1);
-- the window alone refuses a cost larger than its room: rate_limited
SELECT pixl_set_store_plan('quota-c', 'quota_ten');
SELECT token AS c1tok FROM pixl_create_token('quota-c', 'C1', ARRAY['orders:read'], rate_limit => 5) \gset
SELECT n, status, reason, remaining
  FROM (VALUES (1, 4), (2, 2), (3, 1)) c(n, cost),
	   LATERAL pixl_verify_request(:'c1tok', 'orders:read', NULL, NULL, NULL, NULL, cost)
 ORDER BY n;
SELECT used FROM pixl_quota_used('quota-c');
-- costs out of range
SELECT * FROM pg_temp.err(format($$SELECT * FROM pixl_verify_request(%L, 'orders:read', NULL, NULL, NULL, NULL, 0)$$, :'c1tok'));
SELECT * FROM pg_temp.err(format($$SELECT * FROM pixl_verify_request(%L, 'orders:read', NULL, NULL, NULL, NULL, 101)$$, :'c1tok'));
SELECT * FROM pg_temp.err(format($$SELECT * FROM pixl_verify_token_http(%L, 'orders:read', NULL, NULL, NULL, NULL, NULL)$$, :'c1tok'));
-- a bad cost is the caller's bug even for garbage
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_verify_token('garbage', NULL, NULL, NULL, NULL, NULL, -1)$$);

-- 4. The HTTP form: a second RateLimit-Policy item for the period,
-- RateLimit of the binding policy, Retry-After to the period's end, and a
-- problem body of its own.
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('quota_three', 60, 1000, 10, 3);
SELECT pixl_set_store_plan('quota-h', 'quota_three');
SELECT token AS htok FROM pixl_create_token('quota-h', 'H', ARRAY['orders:read'], rate_limit => 60) \gset
CREATE TEMP TABLE http_quota AS
SELECT n, h.*, clock_timestamp() AS at,
	   pixl_quota_period_start(now()) AS p_start,
	   pixl_quota_period_start(now()) + interval '1 month' AS p_end
  FROM generate_series(1, 4) n, LATERAL pixl_verify_token_http(:'htok', 'orders:read', method => 'GET' || left(n::text, 0)) h;
SELECT n, status, reason,
	   ratelimit_policy = format('"default";q=60;w=60, "monthly";q=3;w=%s',
								 extract(epoch FROM p_end - p_start)::bigint) AS policy_ok,
	   regexp_replace(ratelimit, 't=\d+$', 't=<t>') AS ratelimit,
	   abs(substring(ratelimit FROM 't=(\d+)$')::numeric - ceil(extract(epoch FROM p_end - at))) <= 2 AS t_to_period_end,
	   retry_after IS NULL OR retry_after = substring(ratelimit FROM 't=(\d+)$') AS retry_after_is_t,
	   www_authenticate
  FROM http_quota ORDER BY n;
SELECT problem - 'detail' AS problem,
	   regexp_replace(problem->>'detail', '\d+ seconds', '<n> seconds') AS detail
  FROM http_quota WHERE n = 4;
-- the minute's policy binds when it has fewer calls left
SELECT pixl_set_store_plan('quota-h2', 'quota_ten');
SELECT token AS h2tok FROM pixl_create_token('quota-h2', 'H2', ARRAY['orders:read'], rate_limit => 2) \gset
SELECT n, status, reason, regexp_replace(ratelimit, 't=\d+$', 't=<t>') AS ratelimit, retry_after,
	   problem->>'reason' AS problem_reason
  FROM generate_series(1, 3) n, LATERAL pixl_verify_token_http(:'h2tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
-- without an allowance: 1.1's headers, one item
SELECT ratelimit_policy FROM pixl_verify_token_http(:'none_token', 'orders:read');

-- 5. A token's own allowance: counted against it and the store.
SELECT pixl_set_store_plan('quota-d', 'quota_five');
SELECT token_id AS d1, token AS d1tok FROM pixl_create_token('quota-d', 'D1', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT token_id AS d2, token AS d2tok FROM pixl_create_token('quota-d', 'D2', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT pixl_set_token_quota(:'d1', 2);
-- D1: 2 of its own; D2 then has the store's 3 left
SELECT n, status, reason FROM generate_series(1, 3) n, LATERAL pixl_verify_request(:'d1tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
SELECT n, status, reason FROM generate_series(4, 7) n, LATERAL pixl_verify_request(:'d2tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
-- the HTTP form names the token's allowance when it binds
SELECT regexp_replace(ratelimit_policy, 'w=\d+$', 'w=<w>') AS policy, reason
  FROM pixl_verify_token_http(:'d1tok', 'orders:read');
-- a change takes effect at once in a session that has the token cached
SELECT pixl_set_store_plan('quota-e', 'quota_ten');
SELECT token_id AS e1, token AS e1tok FROM pixl_create_token('quota-e', 'E1', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT status FROM pixl_verify_request(:'e1tok', 'orders:read');
SELECT pixl_set_token_quota(:'e1', 1);
SELECT n, status, reason FROM generate_series(1, 2) n, LATERAL pixl_verify_request(:'e1tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
SELECT pixl_set_token_quota(:'e1', NULL);
SELECT status, reason FROM pixl_verify_request(:'e1tok', 'orders:read');
-- a plan lowered below the token's own: the lower wins, at once
SELECT pixl_set_token_quota(:'e1', 8);
UPDATE pixl_plans SET period_quota = 3 WHERE plan = 'quota_ten';
SELECT status, reason FROM pixl_verify_request(:'e1tok', 'orders:read');
SELECT regexp_replace(ratelimit_policy, 'w=\d+$', 'w=<w>') AS policy
  FROM pixl_verify_token_http(:'e1tok', 'orders:read');
UPDATE pixl_plans SET period_quota = 10 WHERE plan = 'quota_ten';
-- errors: above the plan's, out of range; audited changes
SELECT * FROM pg_temp.err(format($$SELECT pixl_set_token_quota(%L, 11)$$, :'e1'));
SELECT * FROM pg_temp.err(format($$SELECT pixl_set_token_quota(%L, 0)$$, :'e1'));
SELECT * FROM pg_temp.err(format($$SELECT pixl_set_token_quota(%L, 100000000000001)$$, :'e1'));
SELECT * FROM pg_temp.err($$SELECT pixl_set_token_quota('tok_0000000000000000', 1)$$);
SELECT action, detail FROM pixl_audit WHERE token_id = :'e1' AND action = 'update' ORDER BY audit_id;
-- the tables refuse what the functions refuse
SELECT * FROM pg_temp.err($$UPDATE pixl_plans SET period_quota = 0 WHERE plan = 'quota_ten'$$);
SELECT * FROM pg_temp.err($$UPDATE pixl_plans SET quota_counts = '4xx' WHERE plan = 'quota_ten'$$);
SELECT * FROM pg_temp.err($$UPDATE pixl_stores SET billing_day = 29 WHERE store_id = 'quota-e'$$,
						  '\w{3} \w{3} \d\d [0-9:.]+ \d{4} UTC');

-- 6. The billing day: the period runs from the last 28th, 00:00 UTC, and a
-- change takes effect at once (here 1 call before it, 2 after); platform
-- admins only.
SELECT pixl_set_store_plan('quota-f', 'quota_three');
SELECT token AS ftok FROM pixl_create_token('quota-f', 'F', ARRAY['orders:read'], rate_limit => 1000) \gset
-- on the limiter's clock, the 5th of next month at 12:00 UTC, so that the
-- 28th is behind and the 1st ahead of it whatever day the suite runs
SELECT date_trunc('month', now()) + interval '1 month 4 days 12 hours' AS fake \gset
SELECT set_config('pixltoken.test_clock_offset',
				  ceil(extract(epoch FROM :'fake'::timestamptz - now()))::int::text, false) IS NOT NULL AS moved;
SELECT status FROM pixl_verify_request(:'ftok', 'orders:read');
SELECT pixl_set_store_billing_day('quota-f', 28);
SELECT n, status, reason,
	   abs(retry_after_ms - extract(epoch FROM
		   (pixl_quota_period_start(:'fake', 28::smallint) + interval '1 month') - :'fake'::timestamptz) * 1000) < 2000 AS retry_to_28th
  FROM generate_series(1, 4) n, LATERAL pixl_verify_request(:'ftok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
-- the call before the move still counts: moving the day back never hands
-- out a fresh allowance (the counter keeps its start, the 1st, until the
-- next period starts on the 28th)
SELECT period_start = date_trunc('month', :'fake'::timestamptz) AS carried, used FROM pixl_quota_used('quota-f');
SELECT set_config('pixltoken.test_clock_offset', '0', false) IS NOT NULL AS back;
SELECT action, store_id, detail FROM pixl_audit WHERE store_id = 'quota-f' AND action = 'plan' ORDER BY audit_id;
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_billing_day('quota-f', 29)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_billing_day('quota-f', 0)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_billing_day('quota-nowhere', 3)$$);
SELECT pixl_set_store_billing_day('quota-f', NULL);

-- 7. The period's end: the next period starts from nothing.
SELECT pixl_set_store_plan('quota-g', 'quota_three');
SELECT token AS gtok FROM pixl_create_token('quota-g', 'G', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT n, status, reason FROM generate_series(1, 4) n, LATERAL pixl_verify_request(:'gtok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
-- a second after the period's end
SELECT set_config('pixltoken.test_clock_offset',
				  (ceil(extract(epoch FROM (pixl_quota_period_start(now()) + interval '1 month') - now())) + 1)::int::text,
				  false) IS NOT NULL AS moved;
SELECT n, status, reason FROM generate_series(1, 4) n, LATERAL pixl_verify_request(:'gtok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
SELECT period_start = pixl_quota_period_start(now()) + interval '1 month' AS next_period, used
  FROM pixl_quota_used('quota-g');
-- back to the real clock
SELECT set_config('pixltoken.test_clock_offset', '0', false) IS NOT NULL AS back;

-- 8. Store admins: a token's allowance only at or below the plan's; plans
-- and billing days stay platform data.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_quota_admin;
DROP ROLE IF EXISTS regress_quota_platform;
RESET client_min_messages;
CREATE ROLE regress_quota_admin;
CREATE ROLE regress_quota_platform IN ROLE pixl_platform_admin;
SELECT pixl_grant_store('regress_quota_admin', 'quota-e');
GRANT EXECUTE ON FUNCTION pixl_set_token_quota(text, bigint), pixl_set_store_billing_day(text, int)
	TO regress_quota_admin, regress_quota_platform;
SET ROLE regress_quota_admin;
SELECT pixl_set_token_quota(:'e1', 10);
SELECT * FROM pg_temp.err(format($$SELECT pixl_set_token_quota(%L, 11)$$, :'e1'));
SELECT * FROM pg_temp.err(format($$SELECT pixl_set_token_quota(%L, 1)$$, :'a1'), 'tok_\w+');
SELECT * FROM pg_temp.err($$UPDATE pixl_plans SET period_quota = 1000000 WHERE plan = 'quota_ten'$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_billing_day('quota-e', 3)$$);
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_quota_used('quota-e')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_quota_seed('quota-e', now(), 0)$$);
RESET ROLE;
SET ROLE regress_quota_platform;
SELECT pixl_set_store_billing_day('quota-e', 3);
RESET ROLE;
SELECT billing_day FROM pixl_stores WHERE store_id = 'quota-e';

-- 9. Seeding (the worker's, after a start): raises, never lowers.
SELECT pixl_set_store_plan('quota-s', 'quota_five');
SELECT token_id AS s1, token AS s1tok FROM pixl_create_token('quota-s', 'S1', ARRAY['orders:read'], rate_limit => 1000) \gset
-- a call before the first seed is not in the rollups: the first seed adds
SELECT status FROM pixl_verify_request(:'s1tok', 'orders:read');
SELECT pixl_quota_seed('quota-s', pixl_quota_period_start(now()), 2) AS first_adds;
SELECT pixl_quota_seed('quota-s', pixl_quota_period_start(now()), 2) AS never_lowers;
SELECT pixl_quota_seed('quota-s', pixl_quota_period_start(now()), 4) AS raises;
SELECT pixl_quota_seed('quota-s', pixl_quota_period_start(now()) - interval '1 month', 5) AS older_period_ignored;
SELECT n, status, reason FROM generate_series(1, 2) n, LATERAL pixl_verify_request(:'s1tok', 'orders:read', method => 'GET' || left(n::text, 0)) v;
SELECT pixl_set_token_quota(:'s1', 2);
SELECT pixl_quota_seed('quota-s', pixl_quota_period_start(now()), 2, :'s1') AS token_seeded;
SELECT * FROM pg_temp.err($$SELECT pixl_quota_seed('quota-s', now(), -1)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_quota_seed('quota-s', now(), 1, 'tok_short')$$);

-- 10. 1.1's calls still resolve to 1.1's functions
SELECT proname, pronargs, pronargdefaults FROM pg_proc
 WHERE proname IN ('pixl_verify_token', 'pixl_verify_request', 'pixl_verify_token_http')
 ORDER BY proname, pronargs;
SELECT status FROM pixl_verify_request(:'none_token', '*');
SELECT status FROM pixl_verify_token_http(:'none_token', '*', ip => NULL);

-- 11. Refunds: a response report whose final status the plan does not
-- count gives the call's charge back, once, within its period.
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota, quota_counts)
VALUES ('quota_2xx', 60, 1000, 10, 5, '2xx'), ('quota_23xx', 60, 1000, 10, 5, '2xx_3xx'),
	   ('quota_all', 60, 1000, 10, 5, 'all');
SELECT pixl_set_store_plan('quota-r1', 'quota_2xx');
SELECT token_id AS r1, token AS r1tok FROM pixl_create_token('quota-r1', 'R1', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT request_id AS ra FROM pixl_verify_request(:'r1tok', 'orders:read') \gset
SELECT request_id AS rb FROM pixl_verify_request(:'r1tok', 'orders:read') \gset
SELECT request_id AS rc FROM pixl_verify_request(:'r1tok', 'orders:read', NULL, NULL, NULL, NULL, 2) \gset
SELECT used AS charged FROM pixl_quota_used('quota-r1');
SELECT pixl_log_response(:'ra', 404, 3.0);
SELECT used AS after_404 FROM pixl_quota_used('quota-r1');
-- the same report again is refused, and refunds nothing
SELECT * FROM pg_temp.err(format($$SELECT pixl_log_response(%L, 404, 3.0)$$, :'ra'), '"[^"]+"');
SELECT used AS after_repeat FROM pixl_quota_used('quota-r1');
SELECT pixl_log_response(:'rb', 201, 3.0);
SELECT used AS after_201 FROM pixl_quota_used('quota-r1');
-- a weighted call gives back its cost
SELECT pixl_log_response(:'rc', 503, 3.0);
SELECT used AS after_503 FROM pixl_quota_used('quota-r1');
-- '2xx_3xx': a redirect counts, a 4xx does not
SELECT pixl_set_store_plan('quota-r2', 'quota_23xx');
SELECT token AS r2tok FROM pixl_create_token('quota-r2', 'R2', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT request_id AS ra FROM pixl_verify_request(:'r2tok', 'orders:read') \gset
SELECT request_id AS rb FROM pixl_verify_request(:'r2tok', 'orders:read') \gset
SELECT pixl_log_response(:'ra', 302, 3.0);
SELECT used AS after_302 FROM pixl_quota_used('quota-r2');
SELECT pixl_log_response(:'rb', 429, 3.0);
SELECT used AS after_429 FROM pixl_quota_used('quota-r2');
-- 'all': every final status counts
SELECT pixl_set_store_plan('quota-r3', 'quota_all');
SELECT token AS r3tok FROM pixl_create_token('quota-r3', 'R3', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT request_id AS ra FROM pixl_verify_request(:'r3tok', 'orders:read') \gset
SELECT pixl_log_response(:'ra', 500, 3.0);
SELECT used AS after_500 FROM pixl_quota_used('quota-r3');
-- a token's own allowance gets its charge back too
SELECT pixl_set_store_plan('quota-r4', 'quota_2xx');
SELECT token_id AS r4, token AS r4tok FROM pixl_create_token('quota-r4', 'R4', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT pixl_set_token_quota(:'r4', 1);
SELECT request_id AS ra, status FROM pixl_verify_request(:'r4tok', 'orders:read') \gset
SELECT status, reason FROM pixl_verify_request(:'r4tok', 'orders:read');
SELECT pixl_log_response(:'ra', 400, 3.0);
SELECT status, reason FROM pixl_verify_request(:'r4tok', 'orders:read');
-- a report in the next period refunds nothing
SELECT pixl_set_store_plan('quota-r5', 'quota_2xx');
SELECT token AS r5tok FROM pixl_create_token('quota-r5', 'R5', ARRAY['orders:read'], rate_limit => 1000) \gset
SELECT request_id AS ra FROM pixl_verify_request(:'r5tok', 'orders:read') \gset
SELECT set_config('pixltoken.test_clock_offset',
				  (ceil(extract(epoch FROM (pixl_quota_period_start(now()) + interval '1 month') - now())) + 1)::int::text,
				  false) IS NOT NULL AS moved;
SELECT pixl_log_response(:'ra', 404, 3.0);
SELECT set_config('pixltoken.test_clock_offset', '0', false) IS NOT NULL AS back;
SELECT period_start = pixl_quota_period_start(now()) AS same_period, used AS not_refunded FROM pixl_quota_used('quota-r5');
-- a 403 or 429 of the verification itself is never charged
SELECT status, reason FROM pixl_verify_request(:'r5tok', 'orders:write');
SELECT used FROM pixl_quota_used('quota-r5');

-- leave no grant behind for the suites after this one
SELECT pixl_revoke_store('regress_quota_admin', 'quota-e');
REVOKE EXECUTE ON FUNCTION pixl_set_token_quota(text, bigint), pixl_set_store_billing_day(text, int)
	FROM regress_quota_admin, regress_quota_platform;
DROP ROLE regress_quota_admin;
DROP ROLE regress_quota_platform;
