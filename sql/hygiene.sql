-- Token hygiene policies (README "Token hygiene"): a policy per store,
-- defaulted by its plan; enforced at create, update and rotate; tightening
-- clamps existing tokens' expiry in the same transaction (audited); store
-- admins may only tighten; the inactivity sweep; the pixl_token_hygiene view.
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_hy_admin;
DROP ROLE IF EXISTS regress_hy_other;
DROP ROLE IF EXISTS regress_hy_platform;
RESET client_min_messages;
CREATE ROLE regress_hy_admin;
CREATE ROLE regress_hy_other;
CREATE ROLE regress_hy_platform IN ROLE pixl_platform_admin;
DO $g$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['regress_hy_admin', 'regress_hy_other', 'regress_hy_platform'] LOOP
		EXECUTE format($$GRANT EXECUTE ON FUNCTION
			pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
			pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
			pixl_rotate_token(text, interval),
			pixl_set_store_policy(text, interval, boolean, interval, text, interval) TO %I$$, r);
		EXECUTE format('GRANT SELECT ON pixl_token_hygiene, pixl_store_hygiene_policies TO %I', r);
	END LOOP;
END
$g$;

-- Seeded plans carry no rule: nothing changes for existing users.
SELECT plan, max_lifetime, expiry_required, inactive_after, inactive_action, inactive_warning
  FROM pixl_plans ORDER BY max_rate_limit;
-- a plan of this suite's own, so that no other suite sees its policy
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens) VALUES ('hy_plan', 60, 1000, 100);
SELECT pixl_set_store_plan('hy-a', 'hy_plan');
SELECT pixl_grant_store('regress_hy_admin', 'hy-a');
SELECT pixl_set_store_plan('hy-b', 'pro');
SELECT pixl_grant_store('regress_hy_other', 'hy-b');
SELECT store_id, plan, max_lifetime, expiry_required, inactive_after, inactive_action,
	   inactive_warning, store_override
  FROM pixl_store_hygiene_policies WHERE store_id LIKE 'hy-%' ORDER BY store_id;
-- no policy: any expiry, or none
SELECT count(*) FROM pixl_create_token('hy-a', 'Forever', ARRAY['orders:read']);

-- ---------------------------------------------------------------------------
-- Who may set it: a store admin of the store (only stricter than the plan),
-- a platform admin (anything); anyone else gets PX040.
-- ---------------------------------------------------------------------------
SET ROLE regress_hy_other;
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', max_lifetime => '30 days')$$);
RESET ROLE;
-- a plan rule: hy_plan stores get tokens of at most 90 days, with inactivity
-- warnings 5 days before the disable after 60 days of no use
UPDATE pixl_plans SET max_lifetime = '90 days', inactive_after = '60 days', inactive_warning = '5 days'
 WHERE plan = 'hy_plan';
SET ROLE regress_hy_admin;
-- looser than the plan: refused, whichever rule
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', max_lifetime => '120 days')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', inactive_after => '61 days')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', inactive_action => 'notify')$$);
-- invalid values
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', max_lifetime => '1 hour')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', inactive_action => 'explode')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', inactive_warning => '60 days')$$);
-- stricter: allowed
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a', max_lifetime => '90 days', expiry_required => true, inactive_action => 'revoke')$$);
SELECT store_id, max_lifetime, expiry_required, inactive_after, inactive_action, inactive_warning, store_override
  FROM pixl_store_hygiene_policies ORDER BY store_id;
-- then back to the plan's policy
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-a')$$);
RESET ROLE;
-- a platform admin may loosen a store beyond its plan
SET ROLE regress_hy_platform;
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_policy('hy-b', max_lifetime => '400 days', expiry_required => false)$$);
SELECT pixl_set_store_policy('hy-b');
RESET ROLE;
SELECT store_id, max_lifetime, inactive_after, inactive_action, inactive_warning, store_override
  FROM pixl_store_hygiene_policies WHERE store_id LIKE 'hy-%' ORDER BY store_id;

-- The plan edit clamped the token without expiry of hy-a (created just now:
-- to now + 90 days) and audited it with a 'policy' row for the store.
SELECT action, token_id IS NOT NULL AS has_token,
	   detail->'old' AS old, detail->'new' AS new, detail->'clamped' AS clamped, detail->>'plan' AS plan
  FROM pixl_audit WHERE store_id = 'hy-a' AND action IN ('policy', 'clamp') ORDER BY audit_id;
SELECT name, expires_at - created_at AS lifetime FROM pixl_tokens WHERE store_id = 'hy-a';

-- ---------------------------------------------------------------------------
-- Enforcement at create, update and rotate
-- ---------------------------------------------------------------------------
SET ROLE regress_hy_admin;
-- none, or beyond the maximum: refused
SELECT state, message, detail FROM pg_temp.err($$SELECT pixl_create_token('hy-a', 'No expiry', ARRAY['orders:read'])$$);
SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('hy-a', 'Too long', ARRAY['orders:read'], expires_at => now() + interval '91 days')$$,
	'\w{3} \w{3} \d\d [0-9:.]+ \d{4} UTC');
SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('hy-a', 'Too long', ARRAY['orders:read'], expires_at => 'infinity')$$);
-- within: fine
SELECT token_id AS t30 FROM pixl_create_token('hy-a', 'Month', ARRAY['orders:read'],
	expires_at => now() + interval '30 days') \gset
SELECT token_id AS t90 FROM pixl_create_token('hy-a', 'Quarter', ARRAY['orders:read'],
	expires_at => now() + interval '90 days') \gset
-- update: no expiry, or beyond creation + 90 days, refused; shorter fine
SELECT state, message FROM pg_temp.err(format($$SELECT pixl_update_token(%L, expires_at => 'infinity')$$, :'t30'));
SELECT state, hint FROM pg_temp.err(format($$SELECT pixl_update_token(%L, expires_at => now() + interval '100 days')$$, :'t30'),
	'\w{3} \w{3} \d\d [0-9:.]+ \d{4} UTC');
SELECT * FROM pg_temp.err(format($$SELECT pixl_update_token(%L, expires_at => now() + interval '60 days')$$, :'t30'));
-- other changes are not checked against the expiry
SELECT * FROM pg_temp.err(format($$SELECT pixl_update_token(%L, name => 'Month renamed')$$, :'t30'));
RESET ROLE;

-- An old token (created 200 days ago, backdated) rotated: the rotation starts
-- a new lifetime and its expiry beyond it becomes now + 90 days, audited.
UPDATE pixl_token_registry SET created_at = now() - interval '200 days', expires_at = now() + interval '200 days'
 WHERE token_id = :'t90';
SET ROLE regress_hy_admin;
SELECT pixl_rotate_token(:'t90') IS NOT NULL AS rotated;
RESET ROLE;
SELECT expires_at = rotated_at + interval '90 days' AS expiry_from_rotation FROM pixl_tokens WHERE token_id = :'t90';
SELECT detail ? 'expires_at' AS audited FROM pixl_audit WHERE token_id = :'t90' AND action = 'rotate';

-- expiry_required alone (store hy-b, by a platform admin): a token without
-- expiry is refused at create and cannot be rotated before it gets one;
-- any expiry will do.
SELECT pixl_set_store_policy('hy-b', expiry_required => true);
SELECT token_id AS tb FROM pixl_create_token('hy-b', 'Old style', ARRAY['orders:read'], expires_at => now() + interval '1 day') \gset
UPDATE pixl_token_registry SET expires_at = NULL WHERE token_id = :'tb';
SET ROLE regress_hy_other;
SELECT state, message, detail FROM pg_temp.err($$SELECT pixl_create_token('hy-b', 'No expiry', ARRAY['orders:read'])$$);
SELECT state, message, hint FROM pg_temp.err(format($$SELECT pixl_rotate_token(%L)$$, :'tb'), 'tok_[0-9A-Za-z]{16}');
SELECT * FROM pg_temp.err(format($$SELECT pixl_update_token(%L, expires_at => now() + interval '5 years')$$, :'tb'));
SELECT * FROM pg_temp.err(format($$SELECT pixl_rotate_token(%L) IS NOT NULL$$, :'tb'));
RESET ROLE;

-- ---------------------------------------------------------------------------
-- The clamp: tightening shortens the expiry of the store's active tokens to
-- creation/rotation + max_lifetime, never sooner than now + the warning
-- lead, never later than their own; in the same transaction (a rollback
-- undoes the clamps and their audit rows).
-- ---------------------------------------------------------------------------
SELECT token_id AS c_new FROM pixl_create_token('hy-c', 'New', ARRAY['orders:read']) \gset
SELECT token_id AS c_old FROM pixl_create_token('hy-c', 'Old', ARRAY['orders:read']) \gset
SELECT token_id AS c_short FROM pixl_create_token('hy-c', 'Short', ARRAY['orders:read'], expires_at => now() + interval '2 days') \gset
SELECT token_id AS c_revoked FROM pixl_create_token('hy-c', 'Revoked', ARRAY['orders:read']) \gset
SELECT pixl_revoke_token(:'c_revoked');
UPDATE pixl_token_registry SET created_at = now() - interval '400 days' WHERE token_id = :'c_old';
SELECT max(audit_id) AS before_clamp FROM pixl_audit \gset
BEGIN;
SELECT pixl_set_store_policy('hy-c', max_lifetime => '30 days', inactive_warning => '3 days') AS clamped;
SELECT name,
	   CASE WHEN expires_at IS NULL THEN 'none'
			WHEN abs(extract(epoch FROM expires_at - (created_at + interval '30 days'))) < 1 THEN 'created + 30 days'
			WHEN abs(extract(epoch FROM expires_at - (now() + interval '3 days'))) < 5 THEN 'now + 3 days'
			WHEN abs(extract(epoch FROM expires_at - (created_at + interval '2 days'))) < 5 THEN 'its own'
			ELSE expires_at::text END AS expiry
  FROM pixl_tokens WHERE store_id = 'hy-c' ORDER BY name;
SELECT action, t.name, (a.detail->>'old_expires_at') IS NULL AS had_none, a.detail->>'max_lifetime' AS max_lifetime
  FROM pixl_audit a LEFT JOIN pixl_tokens t USING (token_id)
 WHERE a.audit_id > :before_clamp ORDER BY a.action, t.name;
SELECT action FROM pixl_events_since(:before_clamp) ORDER BY audit_id;
ROLLBACK;
SELECT name, expires_at IS NULL AS no_expiry FROM pixl_tokens WHERE store_id = 'hy-c' AND name IN ('New', 'Old') ORDER BY name;
SELECT count(*) AS audit_rows_after_rollback FROM pixl_audit WHERE audit_id > :before_clamp;
SELECT count(*) AS policy_rows_after_rollback FROM pixl_store_policies WHERE store_id = 'hy-c';
-- the same, committed: a second identical call changes nothing
SELECT pixl_set_store_policy('hy-c', max_lifetime => '30 days', inactive_warning => '3 days') AS clamped;
SELECT pixl_set_store_policy('hy-c', max_lifetime => '30 days', inactive_warning => '3 days') AS clamped_again;
SELECT count(*) FILTER (WHERE action = 'policy') AS policy_rows, count(*) FILTER (WHERE action = 'clamp') AS clamp_rows
  FROM pixl_audit WHERE audit_id > :before_clamp;
-- moving a store to a plan with a rule applies it too
SELECT token_id AS d1 FROM pixl_create_token('hy-d', 'D', ARRAY['orders:read']) \gset
SELECT pixl_set_store_plan('hy-d', 'hy_plan');
SELECT action, detail->>'old_plan' AS old_plan, detail->>'new_plan' AS new_plan, detail->'clamped' AS clamped
  FROM pixl_audit WHERE store_id = 'hy-d' AND action IN ('plan', 'policy', 'clamp') ORDER BY audit_id;

-- ---------------------------------------------------------------------------
-- The inactivity sweep (the usage worker calls it; here directly).  Store
-- hy-e: disable after 30 days of no use, warning 7 days before.  In a
-- transaction, so that the worker's own sweep sees none of it until the
-- steps checked here are taken.
-- ---------------------------------------------------------------------------
BEGIN;
SELECT pixl_set_store_policy('hy-e', inactive_after => '30 days');
SELECT token_id AS e_idle, token AS e_idle_secret FROM pixl_create_token('hy-e', 'Idle', ARRAY['orders:read']) \gset
SELECT token_id AS e_soon FROM pixl_create_token('hy-e', 'Soon', ARRAY['orders:read']) \gset
SELECT token_id AS e_used FROM pixl_create_token('hy-e', 'Used', ARRAY['orders:read']) \gset
SELECT token_id AS e_fresh, token AS e_fresh_secret FROM pixl_create_token('hy-e', 'Fresh', ARRAY['orders:read']) \gset
-- Idle: created 40 days ago, never used; Soon: last used 25 days ago;
-- Used: created 100 days ago, used yesterday; Fresh: new
UPDATE pixl_token_registry SET created_at = now() - interval '40 days' WHERE token_id = :'e_idle';
UPDATE pixl_token_registry SET created_at = now() - interval '100 days' WHERE token_id IN (:'e_soon', :'e_used');
INSERT INTO pixl_token_activity (token_id, last_used_at) VALUES
	(:'e_soon', now() - interval '25 days'), (:'e_used', now() - interval '1 day');
-- first sweep: warnings for Idle and Soon, both due in 7 days (Soon would
-- be due in 5, but the warning always comes a full lead before the action),
-- nothing for the others
SELECT t.name, s.action, round(extract(epoch FROM s.due_at - now()) / 86400) AS due_in_days
  FROM pixl_hygiene_sweep() s JOIN pixl_tokens t USING (token_id)
 WHERE s.store_id = 'hy-e' ORDER BY t.name;
-- again: nothing (once per period)
SELECT count(*) AS second_sweep FROM pixl_hygiene_sweep() WHERE store_id = 'hy-e';
SELECT name, status, days_since_last_use, secret_age_days, no_expiry, policy_breaches, inactive_action,
	   days_until_inactive_action
  FROM pixl_token_hygiene WHERE store_id = 'hy-e' ORDER BY name;
-- time passes: the warning was sent 8 days ago
UPDATE pixl_hygiene_sent SET due_at = due_at - interval '8 days' WHERE token_id IN (:'e_idle', :'e_soon');
UPDATE pixl_token_registry SET created_at = created_at - interval '8 days' WHERE token_id IN (:'e_idle', :'e_soon');
UPDATE pixl_hygiene_sent SET clock_from = clock_from - interval '8 days' WHERE token_id = :'e_idle';
UPDATE pixl_token_activity SET last_used_at = last_used_at - interval '8 days' WHERE token_id = :'e_soon';
UPDATE pixl_hygiene_sent SET clock_from = clock_from - interval '8 days' WHERE token_id = :'e_soon';
SELECT t.name, s.action FROM pixl_hygiene_sweep() s JOIN pixl_tokens t USING (token_id)
 WHERE s.store_id = 'hy-e' ORDER BY t.name;
SELECT count(*) AS once FROM pixl_hygiene_sweep() WHERE store_id = 'hy-e';
SELECT name, status, disabled_reason FROM pixl_tokens WHERE store_id = 'hy-e' ORDER BY name;
SELECT t.name, a.action, a.detail->>'reason' AS reason, a.detail->>'action' AS planned, a.actor = session_user AS actor
  FROM pixl_audit a JOIN pixl_tokens t USING (token_id)
 WHERE a.store_id = 'hy-e' AND a.action IN ('inactive_soon', 'disable') ORDER BY a.action = 'disable', t.name;
COMMIT;
-- the 401 names the reason in the problem's detail; a reason a store admin
-- typed is never shown
SELECT v.status, v.reason, v.www_authenticate, v.problem
  FROM pixl_verify_token_http(:'e_idle_secret', 'orders:read') v;
SELECT pixl_disable_token(:'e_fresh', 'inactive? ask bob at 555-0100');
SELECT v.status, v.reason, v.problem->>'detail' AS detail
  FROM pixl_verify_token_http(:'e_fresh_secret', 'orders:read') v;
SELECT pixl_enable_token(:'e_fresh');
BEGIN;
-- enable undoes it and restarts the clock: no new warning at once
SELECT pixl_enable_token(:'e_idle');
SELECT count(*) AS after_enable FROM pixl_hygiene_sweep() WHERE store_id = 'hy-e';
SELECT name, status, days_until_inactive_action FROM pixl_token_hygiene WHERE token_id = :'e_idle';
-- a use after the warning starts a new period: a new warning when it is idle again
UPDATE pixl_token_activity SET last_used_at = now() - interval '24 days' WHERE token_id = :'e_used';
SELECT t.name, s.action FROM pixl_hygiene_sweep() s JOIN pixl_tokens t USING (token_id)
 WHERE s.store_id = 'hy-e' ORDER BY t.name;
UPDATE pixl_token_activity SET last_used_at = now() - interval '23 days 12 hours' WHERE token_id = :'e_used';
SELECT t.name, s.action FROM pixl_hygiene_sweep() s JOIN pixl_tokens t USING (token_id)
 WHERE s.store_id = 'hy-e' ORDER BY t.name;

-- revoke and notify
SELECT pixl_set_store_policy('hy-f', inactive_after => '10 days', inactive_action => 'revoke', inactive_warning => '0');
SELECT token_id AS f1 FROM pixl_create_token('hy-f', 'F', ARRAY['orders:read']) \gset
UPDATE pixl_token_registry SET created_at = now() - interval '11 days' WHERE token_id = :'f1';
SELECT action FROM pixl_hygiene_sweep() WHERE store_id = 'hy-f' ORDER BY action DESC;
SELECT status FROM pixl_tokens WHERE token_id = :'f1';
SELECT action, detail->>'reason' AS reason FROM pixl_audit WHERE token_id = :'f1' AND action = 'revoke';
SELECT pixl_set_store_policy('hy-g', inactive_after => '10 days', inactive_action => 'notify', inactive_warning => '0');
SELECT token_id AS g1 FROM pixl_create_token('hy-g', 'G', ARRAY['orders:read']) \gset
UPDATE pixl_token_registry SET created_at = now() - interval '11 days' WHERE token_id = :'g1';
SELECT action FROM pixl_hygiene_sweep() WHERE store_id = 'hy-g';
SELECT count(*) AS nothing_more FROM pixl_hygiene_sweep() WHERE store_id = 'hy-g';
SELECT status FROM pixl_tokens WHERE token_id = :'g1';

COMMIT;

-- ---------------------------------------------------------------------------
-- The view: store admins see only their stores' tokens; the figures.
-- ---------------------------------------------------------------------------
SET ROLE regress_hy_admin;
SELECT DISTINCT store_id FROM pixl_token_hygiene ORDER BY store_id;
SELECT DISTINCT store_id FROM pixl_store_hygiene_policies ORDER BY store_id;
RESET ROLE;
SELECT token_id AS h1, token AS h1_secret FROM pixl_create_token('hy-h', 'H', ARRAY['orders:read'],
	expires_at => now() + interval '10 days') \gset
SELECT pixl_rotate_token(:'h1', '1 hour') IS NOT NULL AS rotated;
INSERT INTO pixl_token_activity (token_id, last_used_at, previous_secret_last_used_at, previous_secret_uses)
VALUES (:'h1', now() - interval '3 days', now() - interval '1 minute', 2);
SELECT name, days_since_last_use, secret_age_days, no_expiry, expiring_soon, previous_secret_in_use,
	   policy_breaches, inactive_action, inactive_action_at, days_until_inactive_action
  FROM pixl_token_hygiene WHERE store_id = 'hy-h';
-- breaches: a token whose expiry (left by a clamp) is past creation +
-- max_lifetime, one idle past inactive_after, one without an expiry where
-- one is required
SELECT name, policy_breaches FROM pixl_token_hygiene WHERE store_id IN ('hy-c', 'hy-g') ORDER BY name;
SELECT pixl_set_store_policy('hy-h', expiry_required => true);
UPDATE pixl_token_registry SET expires_at = NULL WHERE token_id = :'h1';
SELECT policy_breaches FROM pixl_token_hygiene WHERE token_id = :'h1';

-- the plan goes: its stores back to free (their policy loosens: nothing is
-- clamped, only audited)
SELECT pixl_set_store_plan(s, 'free') FROM unnest(ARRAY['hy-a', 'hy-d']) s;
SELECT action, detail->'clamped' AS clamped FROM pixl_audit
 WHERE store_id IN ('hy-a', 'hy-d') AND action IN ('policy', 'clamp') AND detail->>'new_plan' = 'free' ORDER BY audit_id;
DELETE FROM pixl_plans WHERE plan = 'hy_plan';
-- this suite's store grants go too (other suites list them)
SELECT pixl_revoke_store('regress_hy_admin', 'hy-a'), pixl_revoke_store('regress_hy_other', 'hy-b');
