-- Plan quotas and privileges: a store admin cannot raise its own
-- allowance by any path (a plan is platform-admin data: choosing one,
-- editing one), and an edit of a plan's allowance is audited.
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_qp_admin;
DROP ROLE IF EXISTS regress_qp_platform;
RESET client_min_messages;
CREATE ROLE regress_qp_admin;
CREATE ROLE regress_qp_platform IN ROLE pixl_platform_admin;
-- README's store-admin grants, and pixl_set_store_plan granted by mistake
GRANT EXECUTE ON FUNCTION
	pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
	pixl_events_since(bigint, int), pixl_set_store_plan(text, text)
	TO regress_qp_admin, regress_qp_platform;
GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO regress_qp_admin, regress_qp_platform;

SELECT pixl_set_store_plan('qp-a', 'starter');
SELECT pixl_grant_store('regress_qp_admin', 'qp-a') AS granted;

-- The store admin: no plan of its choosing, not even a smaller one (the
-- plan is what the store pays for), no edit of the plans or the stores.
SET ROLE regress_qp_admin;
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('qp-a', 'enterprise')$$);
\x off
SELECT (pg_temp.err($$SELECT pixl_set_store_plan('qp-a', 'free')$$)).state AS smaller_plan,
	   (pg_temp.err($$SELECT pixl_set_store_plan('qp-a', 'starter')$$)).state AS same_plan,
	   (pg_temp.err($$SELECT pixl_set_store_plan('qp-other', 'free')$$)).state AS other_store,
	   (pg_temp.err($$UPDATE pixl_plans SET max_rate_limit = 1000 WHERE plan = 'starter'$$)).state AS edit_plan,
	   (pg_temp.err($$INSERT INTO pixl_plans VALUES ('mine', 60, 1000, 10)$$)).state AS add_plan,
	   (pg_temp.err($$UPDATE pixl_stores SET plan = 'enterprise' WHERE store_id = 'qp-a'$$)).state AS edit_store;
RESET ROLE;
SELECT store_id, plan FROM pixl_stores WHERE store_id = 'qp-a';

-- A platform admin moves the store, audited as before.
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('qp_metered', 60, 600, 10, 1000);
SET ROLE regress_qp_platform;
SELECT pixl_set_store_plan('qp-a', 'qp_metered');
RESET ROLE;
SELECT action, store_id, detail FROM pixl_audit WHERE store_id = 'qp-a' ORDER BY audit_id;

-- The other paths to an allowance: the billing day (moving it would start
-- a fresh period) is for platform admins; a token's own allowance only at
-- or below the plan's.
SELECT token_id AS t1, token AS s1 FROM pixl_create_token('qp-a', 'One', ARRAY['orders:read']) \gset
SELECT token_id AS t2, token AS s2 FROM pixl_create_token('qp-a', 'Two', ARRAY['orders:read']) \gset
GRANT EXECUTE ON FUNCTION pixl_set_token_quota(text, bigint), pixl_set_store_billing_day(text, int),
	pixl_store_quota(text) TO regress_qp_admin, regress_qp_platform;
GRANT SELECT ON pixl_quota_burndown TO regress_qp_admin;
SET ROLE regress_qp_admin;
SELECT (pg_temp.err($$SELECT pixl_set_store_billing_day('qp-a', 5)$$)).state AS billing_day,
	   (pg_temp.err(format('SELECT pixl_set_token_quota(%L, 1001)', :'t1'))).state AS token_above_plan,
	   (pg_temp.err(format('SELECT pixl_set_token_quota(%L, 500)', :'t1'))).state AS token_below_plan;
RESET ROLE;
SELECT billing_day FROM pixl_stores WHERE store_id = 'qp-a';

-- An edit of a plan's allowance is audited (action plan_quota, no store:
-- platform admins see it); other edits of a plan and edits that change
-- nothing are not.
SELECT max(audit_id) AS before_edit FROM pixl_audit \gset
UPDATE pixl_plans SET period_quota = 2000 WHERE plan = 'qp_metered';
UPDATE pixl_plans SET max_rate_limit = 500 WHERE plan = 'qp_metered';
UPDATE pixl_plans SET period_quota = 2000 WHERE plan = 'qp_metered';
UPDATE pixl_plans SET quota_counts = '2xx' WHERE plan = 'qp_metered';
UPDATE pixl_plans SET period_quota = NULL, quota_counts = 'all' WHERE plan = 'qp_metered';
SELECT action, token_id, store_id, actor = session_user AS by_me, detail
  FROM pixl_audit WHERE audit_id > :before_edit AND action = 'plan_quota' ORDER BY audit_id;
-- a platform admin granted UPDATE on pixl_plans (README's recipe) is
-- audited too, without rights on pixl_audit
GRANT UPDATE ON pixl_plans TO regress_qp_platform;
SET ROLE regress_qp_platform;
UPDATE pixl_plans SET period_quota = 1500 WHERE plan = 'qp_metered';
UPDATE pixl_plans SET period_quota = NULL WHERE plan = 'qp_metered';
RESET ROLE;
REVOKE UPDATE ON pixl_plans FROM regress_qp_platform;
SELECT detail->>'old_period_quota' AS old, detail->>'new_period_quota' AS new
  FROM pixl_audit WHERE audit_id > :before_edit AND action = 'plan_quota'
   AND '1500' IN (detail->>'old_period_quota', detail->>'new_period_quota') ORDER BY audit_id;
SET ROLE regress_qp_admin;
SELECT count(*) AS admin_sees FROM pixl_events_since(:before_edit) WHERE action = 'plan_quota_changed';
RESET ROLE;
SET ROLE regress_qp_platform;
SELECT action, detail->>'plan' AS plan, detail->>'new_period_quota' AS new_quota
  FROM pixl_events_since(:before_edit) WHERE action = 'plan_quota_changed' ORDER BY audit_id;
RESET ROLE;

-- A change of a plan's allowance takes effect at the next verification of
-- every token on it, as a rate cap does: the token cached with 3 is
-- evicted, raised to 5 it is admitted at once, lowered to 2 refused.
UPDATE pixl_plans SET period_quota = 3 WHERE plan = 'qp_metered';
SELECT n, v.status, v.reason
  FROM generate_series(1, 4) n,
	   LATERAL pixl_verify_request(:'s2', 'orders:read', 'qp-a', 'GET', '/x', ('10.0.0.' || n)::inet) v;
SELECT (pixl_cache_stats()).entries > 0 AS cached;
UPDATE pixl_plans SET period_quota = 5 WHERE plan = 'qp_metered';
SELECT status, reason FROM pixl_verify_request(:'s2', 'orders:read', 'qp-a');
UPDATE pixl_plans SET period_quota = 2 WHERE plan = 'qp_metered';
SELECT status, reason FROM pixl_verify_request(:'s2', 'orders:read', 'qp-a');
UPDATE pixl_plans SET period_quota = 1000 WHERE plan = 'qp_metered';

-- Where the store stands: its row exact (4 charged, then 10 more), the
-- tokens' from the rollups once folded (One has an allowance of its own,
-- Two has none); the burn-down the same; store admins for their stores
-- only, an unknown store PX056 for whoever may see it.
SELECT status FROM pixl_verify_request(:'s1', 'orders:read', 'qp-a', 'GET', '/x', '10.0.0.9', cost => 10);
CREATE FUNCTION pg_temp.folded(store text, want bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		IF (SELECT sum(q.used) FROM pixl_store_quota(store) q WHERE q.token_id IS NOT NULL) = want THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END
$$;
SELECT pg_temp.folded('qp-a', 14) AS folded;
SET ROLE regress_qp_admin;
SELECT token_id = :'t1' AS is_t1, token_id = :'t2' AS is_t2, allowance, used, remaining, exact,
	   period_start = pixl_quota_period_start(now()) AS this_period,
	   period_end = pixl_quota_period_end(period_start) AS period_end_ok
  FROM pixl_store_quota('qp-a') ORDER BY token_id IS NOT NULL, token_id = :'t2';
SELECT (pg_temp.err($$SELECT * FROM pixl_store_quota('qp-other')$$)).state AS other_store,
	   (pg_temp.err($$SELECT * FROM pixl_store_quota('qp-nope')$$)).state AS unknown_not_mine;
SELECT store_id, allowance, used, remaining, day = date_trunc('day', now(), 'UTC') AS today
  FROM pixl_quota_burndown ORDER BY day DESC LIMIT 1;
RESET ROLE;
\x on
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_store_quota('qp-nope')$$);
\x off
-- a period ends on the same day of the next month, 00:00 UTC, whatever the
-- session's time zone
SET timezone = 'America/New_York';
SELECT pixl_quota_period_end('2026-02-15 00:00 UTC') AT TIME ZONE 'UTC' AS from_feb_15,
	   pixl_quota_period_end('2026-12-01 00:00 UTC') AT TIME ZONE 'UTC' AS from_dec_1,
	   pixl_quota_period_end('2026-03-01 00:00 UTC') AT TIME ZONE 'UTC' AS across_dst;
SET timezone = 'UTC';

-- Clean up.
REVOKE ALL ON pixl_tokens, pixl_audit, pixl_plans, pixl_quota_burndown FROM regress_qp_admin, regress_qp_platform;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM regress_qp_admin, regress_qp_platform;
DELETE FROM pixl_store_admins WHERE role_name LIKE 'regress\_qp\_%';
DROP ROLE regress_qp_admin;
DROP ROLE regress_qp_platform;
