-- pixl_create_token: defaults, what is stored, and every validation error
-- (with nothing written).
\i test/helpers/setup.sql

-- Defaults: live, the plan's default limit (60), no expiry.
SELECT token_id AS id1, token AS secret1
  FROM pixl_create_token('create-a', 'Mobile App', ARRAY['products:read']) \gset
SELECT :'id1' ~ '^tok_[0-9A-Za-z]{16}$' AS id_shape,
	   :'secret1' ~ '^sk_live_[0-9A-Za-z]{38}$' AS secret_shape,
	   pixl_token_format(:'secret1') AS format;
SELECT store_id, name, mode, scopes, rate_limit, effective_rate_limit,
	   expires_at, status, created_at <= now() AS created_before_now,
	   last_used_at, rotated_at, revoked_at,
	   hint = left(:'secret1', 8)
		|| CASE WHEN getdatabaseencoding() = 'UTF8' THEN U&'\2026' ELSE '...' END
		|| right(:'secret1', 4) AS hint_is_prefix_and_last_4,
	   strpos(hint, substr(:'secret1', 9, 32)) = 0 AS hint_hides_random_part
  FROM pixl_tokens WHERE token_id = :'id1';
-- Only the SHA-256 of the secret is stored; the secret is nowhere.
SELECT secret_hash = digest(:'secret1', 'sha256') AS stored_hash_is_sha256,
	   previous_hash IS NULL AS no_previous_hash
  FROM pixl_token_registry WHERE token_id = :'id1';
SELECT count(*) AS columns_holding_the_secret
  FROM pixl_token_registry t, jsonb_each_text(to_jsonb(t)) kv
 WHERE kv.value LIKE '%' || substr(:'secret1', 9, 32) || '%';
-- pixl_tokens has the SPEC's columns and no hash
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'pixl_tokens'::regclass AND attnum > 0
 ORDER BY attnum;

-- Every option: test mode, a limit within the plan, an expiry, all eleven
-- scopes given out of order (listed in the guide's order).
SELECT pixl_set_store_plan('create-b', 'growth');
BEGIN;
SELECT token_id AS id2, token AS secret2
  FROM pixl_create_token('create-b', 'Analytics Dashboard',
						 ARRAY['settings:write', 'products:read', 'products:write',
							   'orders:read', 'orders:write', 'customers:read',
							   'customers:write', 'analytics:read', 'webhooks:read',
							   'webhooks:write', 'settings:read'],
						 expires_at => now() + interval '30 days',
						 rate_limit => 300, mode => 'test') \gset
SELECT :'secret2' ~ '^sk_test_[0-9A-Za-z]{38}$' AS secret_shape,
	   pixl_token_format(:'secret2') AS format;
SELECT store_id, name, mode, scopes, rate_limit, effective_rate_limit,
	   expires_at = now() + interval '30 days' AS expires_in_30_days, status,
	   left(hint, 8) AS hint_prefix
  FROM pixl_tokens WHERE token_id = :'id2';
COMMIT;
-- the bounds: limit 1, limit = plan maximum; 'infinity' means no expiry
SELECT count(*) FROM pixl_create_token('create-b', 'One', ARRAY['orders:read'], rate_limit => 1);
SELECT count(*) FROM pixl_create_token('create-b', 'Never', ARRAY['orders:read'], expires_at => 'infinity');
SELECT name, rate_limit, expires_at, status FROM pixl_tokens
 WHERE store_id = 'create-b' AND name IN ('One', 'Never') ORDER BY name;
-- names are not unique, and two tokens never share a secret or id
SELECT count(*) FROM pixl_create_token('create-a', 'Mobile App', ARRAY['products:read']);
SELECT count(*) AS tokens, count(DISTINCT token_id) AS ids, count(DISTINCT hint) > 1 AS hints_differ
  FROM pixl_tokens WHERE store_id = 'create-a' AND name = 'Mobile App';
SELECT count(*) AS same_hash FROM pixl_token_registry a JOIN pixl_token_registry b
	ON a.secret_hash = b.secret_hash AND a.token_id <> b.token_id;

-- Every validation error, each with its own SQLSTATE; nothing is written.
SELECT (SELECT count(*) FROM pixl_token_registry) AS registry_before,
	   (SELECT count(*) FROM pixl_stores) AS stores_before,
	   (SELECT count(*) FROM pixl_audit) AS audit_before \gset
\x on
-- scopes
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:delete'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read', 'Orders:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY[' products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read', 'orders:read', 'products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY[]::text[])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read', NULL])$$);
-- name
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', '', ARRAY['products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', '   ', ARRAY['products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', NULL, ARRAY['products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', repeat('n', 201), ARRAY['products:read'])$$);
-- rate limit (the store create-x does not exist: it would be on "free")
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], rate_limit => 0)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], rate_limit => -5)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], rate_limit => 1001)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], rate_limit => 61)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-b', 'n', ARRAY['products:read'], rate_limit => 301)$$);
-- expiry
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], expires_at => '2001-02-03 04:05:06+00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], expires_at => '-infinity')$$);
SELECT state, message ~ '^expiry .* is in the past$' AS message_ok
  FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], expires_at => now())$$);
-- mode
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], mode => 'prod')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], mode => 'Live')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], mode => NULL)$$);
-- store id
SELECT * FROM pg_temp.err($$SELECT pixl_create_token(NULL, 'n', ARRAY['products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('', 'n', ARRAY['products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('create-x ', 'n', ARRAY['products:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token(E'create\nx', 'n', ARRAY['products:read'])$$);
\x off
-- the same, outside any subtransaction: the statement fails and leaves nothing
SELECT pixl_create_token('create-x', 'n', ARRAY['products:read', 'products:read']);
SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], rate_limit => 61);
SELECT pixl_create_token('create-x', 'n', ARRAY['products:read'], mode => 'prod');
SELECT (SELECT count(*) FROM pixl_token_registry) - :registry_before AS new_tokens,
	   (SELECT count(*) FROM pixl_stores) - :stores_before AS new_stores,
	   (SELECT count(*) FROM pixl_audit) - :audit_before AS new_audit_rows,
	   (SELECT count(*) FROM pixl_stores WHERE store_id = 'create-x') AS store_x;
