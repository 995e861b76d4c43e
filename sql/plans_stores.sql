-- Plans and stores: the seeded plans, pixl_set_store_plan, stores created on
-- "free" by pixl_create_token, and plan changes capping effective limits.
\i test/helpers/setup.sql

-- The guide's table of plans, exactly.
SELECT plan, default_rate_limit, max_rate_limit
  FROM pixl_plans
 WHERE plan IN ('free', 'starter', 'growth', 'pro', 'enterprise')
 ORDER BY max_rate_limit;

-- Creating a store, then changing its plan; setting the same plan again is
-- a no-op (no audit row).
SELECT count(*) AS audit_before FROM pixl_audit WHERE store_id = 'plans-a' \gset
SELECT pixl_set_store_plan('plans-a', 'growth');
SELECT store_id, plan, created_at = updated_at AS untouched
  FROM pixl_stores WHERE store_id = 'plans-a';
SELECT pixl_set_store_plan('plans-a', 'pro');
SELECT pixl_set_store_plan('plans-a', 'pro');
SELECT store_id, plan FROM pixl_stores WHERE store_id = 'plans-a';
SELECT action, token_id, detail FROM pixl_audit
 WHERE store_id = 'plans-a' ORDER BY audit_id;

-- Errors: unknown plan (the hint lists the plans), invalid store ids.
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('plans-a', 'platinum')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('plans-a', 'Pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('plans-a', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan(NULL, 'pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('', 'pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan(' plans-b', 'pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('plans-b ', 'pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan(E'plans\tb', 'pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan(repeat('s', 129), 'pro')$$);
\x off
-- a 128-character id is fine
SELECT pixl_set_store_plan(repeat('s', 128), 'free');
SELECT count(*) AS long_store FROM pixl_stores WHERE store_id = repeat('s', 128);
-- nothing was written by the failed calls
SELECT plan FROM pixl_stores WHERE store_id = 'plans-a';
SELECT count(*) AS bad_stores FROM pixl_stores WHERE store_id ~ '^\s|\s$|[[:cntrl:]]|^$';
SELECT count(*) - :audit_before AS new_audit_rows FROM pixl_audit WHERE store_id = 'plans-a';

-- A token for an unknown store creates the store on "free", with an audit row.
SELECT count(*) AS tokens FROM pixl_create_token('plans-new', 'First', ARRAY['orders:read']);
SELECT store_id, plan FROM pixl_stores WHERE store_id = 'plans-new';
SELECT action, token_id IS NULL AS no_token, detail - 'hint' AS detail FROM pixl_audit
 WHERE store_id = 'plans-new' ORDER BY audit_id;
-- a free store cannot give a token more than 60
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('plans-new', 'Second', ARRAY['orders:read'], rate_limit => 61)$$);
\x off

-- Downgrade caps the effective limit of every token of the store at once;
-- the tokens' own limits are kept, and an upgrade restores them.
SELECT pixl_set_store_plan('plans-c', 'enterprise');
SELECT count(*) FROM pixl_create_token('plans-c', 'L1000', ARRAY['products:read'], rate_limit => 1000);
SELECT count(*) FROM pixl_create_token('plans-c', 'L500', ARRAY['products:read'], rate_limit => 500);
SELECT count(*) FROM pixl_create_token('plans-c', 'L100', ARRAY['products:read'], rate_limit => 100);
SELECT count(*) FROM pixl_create_token('plans-c', 'Default', ARRAY['products:read']);
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
SELECT pixl_set_store_plan('plans-c', 'starter');
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
SELECT pixl_set_store_plan('plans-c', 'free');
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
SELECT pixl_set_store_plan('plans-c', 'pro');
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
SELECT pixl_set_store_plan('plans-c', 'enterprise');
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
SELECT detail FROM pixl_audit WHERE store_id = 'plans-c' AND action = 'plan'
 ORDER BY audit_id;

-- Operators may edit plans: a custom plan, and a changed maximum, take
-- effect for the store's tokens at once.
INSERT INTO pixl_plans VALUES ('partner', 60, 2000);
INSERT INTO pixl_plans VALUES ('partner', 100, 50);
INSERT INTO pixl_plans VALUES ('Partner', 60, 500);
INSERT INTO pixl_plans VALUES ('partner', 60, 800);
SELECT pixl_set_store_plan('plans-c', 'partner');
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
UPDATE pixl_plans SET max_rate_limit = 200 WHERE plan = 'partner';
SELECT name, rate_limit, effective_rate_limit FROM pixl_tokens
 WHERE store_id = 'plans-c' ORDER BY rate_limit DESC, name;
-- a plan in use cannot be deleted
DELETE FROM pixl_plans WHERE plan = 'partner';
SELECT pixl_set_store_plan('plans-c', 'enterprise');
DELETE FROM pixl_plans WHERE plan = 'partner';
-- the unknown-plan hint lists the plans there are
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('plans-c', 'partner')$$);
\x off

-- Restoring a dump: the dump holds only custom plans and changed seeded
-- plans (the untouched seed comes back with CREATE EXTENSION).  Inserting a
-- seeded plan over its untouched seed row replaces the values (this is what
-- a restore does); over a changed row it is a duplicate as usual.
SELECT count(*) AS dumped_plan_rows FROM pixl_plans
 WHERE (plan, default_rate_limit, max_rate_limit) NOT IN
	   (('free', 60, 60), ('starter', 60, 120), ('growth', 60, 300),
		('pro', 60, 600), ('enterprise', 60, 1000));
INSERT INTO pixl_plans VALUES ('pro', 60, 650);
SELECT plan, default_rate_limit, max_rate_limit FROM pixl_plans WHERE plan = 'pro';
INSERT INTO pixl_plans VALUES ('pro', 60, 700);
UPDATE pixl_plans SET max_rate_limit = 600 WHERE plan = 'pro';
SELECT plan, default_rate_limit, max_rate_limit FROM pixl_plans WHERE plan = 'pro';
