-- Small oracles and limits: a store admin gets the same answer
-- for a store id outside the alphabet whether or not a 1.0-era store has
-- it; metadata nesting is bounded; pixl_raise_hidden checks its arguments;
-- free text that is stored (disable reason, leak source, metadata) never
-- holds a secret.
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_lim_admin;
RESET client_min_messages;
CREATE ROLE regress_lim_admin;
GRANT EXECUTE ON FUNCTION
	pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
	pixl_set_store_plan(text, text), pixl_disable_token(text, text)
	TO regress_lim_admin;
GRANT SELECT ON pixl_tokens, pixl_audit TO regress_lim_admin;
SELECT pixl_set_store_plan('lim-a', 'pro');
SELECT pixl_grant_store('regress_lim_admin', 'lim-a') AS granted;
-- a store of 1.0, whose id is outside the 1.1 alphabet (grandfathered)
INSERT INTO pixl_stores (store_id, plan) VALUES ('lim old store', 'free');

-- PX040 for a store that is not the caller's, whether or not it exists:
-- the alphabet check (PX044) only answers for the caller's own stores.
SET ROLE regress_lim_admin;
SELECT q, (pg_temp.err(q)).state, (pg_temp.err(q)).message
  FROM unnest(ARRAY[
	$$SELECT pixl_set_store_plan('lim old store', 'pro')$$,
	$$SELECT pixl_set_store_plan('lim new store', 'pro')$$,
	$$SELECT * FROM pixl_create_token('lim old store', 'n', ARRAY['orders:read'])$$,
	$$SELECT * FROM pixl_create_token('lim new store', 'n', ARRAY['orders:read'])$$]) AS q;
RESET ROLE;
-- a platform admin still gets PX044 for a new id outside the alphabet
SELECT (pg_temp.err($$SELECT pixl_set_store_plan('lim new store', 'pro')$$)).state AS platform_new;
SELECT count(*) AS grandfathered_works
  FROM pixl_create_token('lim old store', 'Legacy', ARRAY['orders:read']);

-- Metadata nesting: at most 32 levels (the object itself is level 1), so
-- that no client's JSON decoder recurses deeply on every verification.
SELECT token_id AS id FROM pixl_create_token('lim-a', 'Nested', ARRAY['orders:read'],
	metadata => ('{"a": ' || repeat('[', 31) || repeat(']', 31) || '}')::jsonb) \gset
SELECT jsonb_path_query_first(metadata, 'strict $.a') IS NOT NULL AS depth_32_kept
  FROM pixl_token_registry WHERE token_id = :'id';
\x on
SELECT * FROM pg_temp.err(format($$SELECT pixl_update_token(%L, metadata => %L)$$, :'id',
	'{"a": ' || repeat('[', 32) || repeat(']', 32) || '}'));
\x off
SELECT (pg_temp.err(format($$SELECT * FROM pixl_create_token('lim-a', 'n', ARRAY['orders:read'], metadata => %L)$$,
	'{"a": ' || repeat('[', 2000) || repeat(']', 2000) || '}'))).state AS depth_2001,
	   (pg_temp.err(format($$SELECT * FROM pixl_create_token('lim-a', 'n', ARRAY['orders:read'], metadata => %L)$$,
	'{"a": ' || repeat('{"b": ', 40) || '1' || repeat('}', 40) || '}'))).state AS objects_41,
	   (pg_temp.err(format($$SELECT * FROM pixl_create_token('lim-a', 'n', ARRAY['orders:read'], metadata => %L)$$,
	'{"a": "' || repeat('[', 100) || '"}'))).state AS brackets_in_a_string;
-- only the last one was made
SELECT count(*) AS made FROM pixl_token_registry WHERE name = 'n';

-- pixl_raise_hidden: its own arguments are checked (PX051), not XX000
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_raise_hidden('PX045', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_raise_hidden('px045', 'lower case')$$);
\x off
SELECT (pg_temp.err($$SELECT pixl_raise_hidden('PX04', 'short')$$)).state AS short,
	   (pg_temp.err($$SELECT pixl_raise_hidden('PX0450', 'long')$$)).state AS long,
	   (pg_temp.err($$SELECT pixl_raise_hidden('00000', 'success')$$)).state AS success_class,
	   (pg_temp.err($$SELECT pixl_raise_hidden(NULL, 'no state')$$)).state AS default_state,
	   (pg_temp.err($$SELECT pixl_raise_hidden('PX045', 'ok', 'detail', 'hint')$$)).state AS given_state;

-- Free text that is stored: a disable reason (and a leak source) keeps
-- the action and masks the secret; metadata with a secret is refused
-- (PX045) like a token name, wherever in the document it is.
SELECT token AS secret FROM pixl_create_token('lim-a', 'Free text', ARRAY['orders:read']) \gset
SELECT token_id AS ft FROM pixl_tokens WHERE name = 'Free text' \gset
SET ROLE regress_lim_admin;
SELECT pixl_disable_token(:'ft', 'found ' || :'secret' || ' in a log');
\x on
SELECT * FROM pg_temp.err(format($$SELECT pixl_update_token(%L, metadata => %L)$$, :'ft',
	jsonb_build_object('deep', jsonb_build_object('key', 'x ' || :'secret'))));
\x off
SELECT (pg_temp.err(format($$SELECT * FROM pixl_create_token('lim-a', 'n2', ARRAY['orders:read'], metadata => %L)$$,
	jsonb_build_object(:'secret', 1)))).state AS secret_as_key;
RESET ROLE;
SELECT replace(disabled_reason, :'secret', '<secret>') AS reason_stored
  FROM pixl_token_registry WHERE token_id = :'ft';
SELECT pixl_report_leaked(:'secret', 'pasted as ' || :'secret');
SELECT action, replace((detail - 'hint')::text, :'secret', '<secret>') AS detail
  FROM pixl_audit WHERE token_id = :'ft' AND action IN ('disable', 'expose') ORDER BY audit_id;
SELECT count(*) AS rows_with_secret
  FROM pixl_token_registry t
 WHERE t.disabled_reason LIKE '%' || substr(:'secret', 9, 10) || '%'
	OR t.metadata::text LIKE '%' || substr(:'secret', 9, 10) || '%';

-- Clean up.
REVOKE ALL ON pixl_tokens, pixl_audit FROM regress_lim_admin;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM regress_lim_admin;
DELETE FROM pixl_store_admins WHERE role_name = 'regress_lim_admin';
DROP ROLE regress_lim_admin;
