-- Input that 1.0 accepted silently, each with its own SQLSTATE, and values
-- shaped like secrets, which no message echoes.
\i test/helpers/setup.sql
SELECT getdatabaseencoding() AS db_encoding;

-- Look-alike store ids: PX044, the bad characters spelled out.
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan(E'\u200Bshop-1', 'free')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token(E'shop-1\u00A0', 'n', ARRAY['orders:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('shop/1', 'n', ARRAY['orders:read'])$$);
\x off
-- 1.0's rules keep their 1.0 code (PX010)
SELECT (pg_temp.err($$SELECT pixl_set_store_plan(' shop-1', 'free')$$)).state AS leading_space,
	   (pg_temp.err($$SELECT pixl_set_store_plan(E'shop\t1', 'free')$$)).state AS control,
	   (pg_temp.err($$SELECT pixl_set_store_plan('', 'free')$$)).state AS empty;
-- the alphabet: ASCII letters and digits first, then also . _ : -
SELECT pixl_set_store_plan('Shop_1.eu:main-2', 'free');
-- a store that exists with an id outside the alphabet keeps working
INSERT INTO pixl_stores (store_id, plan) VALUES ('old store é', 'free');
SELECT count(*) AS grandfathered FROM pixl_create_token('old store é', 'Legacy', ARRAY['orders:read']);
SELECT count(*) AS stores_made FROM pixl_stores WHERE store_id ~ '^\u200B|\u00A0$|/';

-- Token names: control and invisible characters are PX042.
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('shop-1', E'Mobile\nApp', ARRAY['orders:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('shop-1', E'\u202Eppa eliboM', ARRAY['orders:read'])$$);
\x off
SELECT pixl_set_store_plan('shop-1', 'free');
SELECT token_id AS id FROM pixl_create_token('shop-1', 'Mobile App', ARRAY['orders:read']) \gset
SELECT (pg_temp.err(format('SELECT pixl_update_token(%L, name => %L)', :'id', E'Tab\there'))).state AS update_tab,
	   (pg_temp.err(format('SELECT pixl_update_token(%L, name => %L)', :'id', E'zero\u200Bwidth'))).state AS update_zwsp;
-- ordinary Unicode names are fine
SELECT pixl_update_token(:'id', name => 'Kasse Zürich 🛒');

-- Scope arrays: one dimension, from index 1 (PX043).
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('shop-1', 'n', ARRAY[['orders:read'], ['orders:write']])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('shop-1', 'n', '[2:3]={orders:read,orders:write}')$$);
\x off
SELECT (pg_temp.err(format('SELECT pixl_update_token(%L, scopes => %L)', :'id', '{{orders:read}}'))).state AS update_2d;
SELECT pixl_scope_names(pixl_scope_bits('[1:2]={orders:read,products:read}')) AS from_index_1;

-- Secrets where something else belongs: never echoed, whatever argument.
SELECT token AS secret FROM pixl_create_token('shop-1', 'Secret source', ARRAY['orders:read']) \gset
SELECT replace(q, :'secret', '<secret>') AS statement, (pg_temp.err(q)).state,
	   position(right(:'secret', 38) IN (pg_temp.err(q)).message) = 0 AS not_echoed,
	   (pg_temp.err(q)).message
  FROM unnest(ARRAY[
	format('SELECT pixl_rotate_token(%L)', :'secret'),
	format('SELECT pixl_revoke_token(%L)', ' ' || :'secret'),
	format('SELECT pixl_update_token(%L, name => %L)', 'x' || :'secret', 'n'),
	format('SELECT * FROM pixl_usage_summary(%L)', :'secret'),
	format('SELECT * FROM pixl_recent_calls(%L)', 'id:' || :'secret'),
	format('SELECT * FROM pixl_verify_token(%L, %L)', :'secret', :'secret'),
	format('SELECT * FROM pixl_create_token(%L, %L, ARRAY[%L])', 'shop-1', 'n', :'secret'),
	format('SELECT * FROM pixl_create_token(%L, %L, ARRAY[%L])', 'shop-1', :'secret', 'orders:read'),
	format('SELECT * FROM pixl_create_token(%L, %L, ARRAY[%L])', :'secret', 'n', 'orders:read'),
	format('SELECT * FROM pixl_create_token(%L, %L, ARRAY[%L], mode => %L)', 'shop-1', 'n', 'orders:read', :'secret'),
	format('SELECT pixl_set_store_plan(%L, %L)', 'shop-1', :'secret')]) AS q
 ORDER BY 1;

-- PX001 clips the echoed value at a character: a LATIN1 client gets
-- PX001, not 22021 (a cut UTF-8 character that cannot be converted).
SET client_encoding = 'LATIN1';
\set VERBOSITY sqlstate
SELECT pixl_scope_bits(ARRAY['a' || repeat(chr(233), 150)]);
SELECT * FROM pixl_verify_token(NULL, 'a' || repeat(chr(233), 150));
\set VERBOSITY default
RESET client_encoding;
