-- pixl_audit: one row per create, rotate, update, revoke and plan change, by
-- session_user, in the same transaction, never with a secret or a hash.
\i test/helpers/setup.sql

CREATE TEMP TABLE seen_secrets (secret text);
SELECT now() AS t0 \gset

SELECT pixl_set_store_plan('audit-a', 'pro');
SELECT pixl_set_store_plan('audit-a', 'growth');
WITH t AS (SELECT * FROM pixl_create_token('audit-a', 'Audited', ARRAY['orders:read', 'webhooks:write'],
										   expires_at => '2999-06-01 00:00:00+00', rate_limit => 250,
										   mode => 'test')),
	 s AS (INSERT INTO seen_secrets SELECT token FROM t)
SELECT token_id AS id FROM t \gset
WITH r AS (SELECT pixl_rotate_token(:'id', '5 minutes') AS secret)
INSERT INTO seen_secrets SELECT secret FROM r;
WITH r AS (SELECT pixl_rotate_token(:'id') AS secret)
INSERT INTO seen_secrets SELECT secret FROM r;
SELECT pixl_update_token(:'id', name => 'Audited 2', scopes => ARRAY['orders:read'], rate_limit => 100,
						 expires_at => 'infinity');
SELECT pixl_revoke_token(:'id');

-- One row per change, in order, by session_user, at clock time.
SELECT action, token_id = :'id' AS this_token, store_id, actor = session_user AS actor_is_session_user,
	   at >= :'t0' AND at <= clock_timestamp() AS at_ok
  FROM pixl_audit WHERE store_id = 'audit-a' ORDER BY audit_id;
SELECT count(DISTINCT at) = count(*) AS distinct_times FROM pixl_audit WHERE store_id = 'audit-a';
-- What each row says (the hints are random: checked, not shown).
SELECT action, detail - '{hint,old_hint,new_hint}'::text[] AS detail
  FROM pixl_audit WHERE store_id = 'audit-a' ORDER BY audit_id;
SELECT action,
	   (detail->>'hint') ~ '^sk_test_.{1,3}[0-9A-Za-z]{4}$' AS hint_ok,
	   (detail->>'old_hint') ~ '^sk_test_.{1,3}[0-9A-Za-z]{4}$' AS old_hint_ok,
	   (detail->>'new_hint') ~ '^sk_test_.{1,3}[0-9A-Za-z]{4}$' AS new_hint_ok
  FROM pixl_audit WHERE store_id = 'audit-a' AND action IN ('create', 'rotate', 'revoke')
 ORDER BY audit_id;
-- the hint of each rotation row matches the hint the token then had
SELECT (SELECT detail->>'new_hint' FROM pixl_audit WHERE token_id = :'id' AND action = 'rotate'
		 ORDER BY audit_id DESC LIMIT 1) = hint AS last_rotation_hint_is_current
  FROM pixl_tokens WHERE token_id = :'id';

-- Never a secret or a hash: neither the secrets nor their random parts, nor
-- the SHA-256 in hex or base64, appear in any audit row.
SELECT count(*) AS secrets_seen FROM seen_secrets;
SELECT count(*) AS leaks
  FROM pixl_audit a, seen_secrets s
 WHERE a.detail::text LIKE '%' || substr(s.secret, 9, 32) || '%'
	OR a.detail::text LIKE '%' || encode(digest(s.secret, 'sha256'), 'hex') || '%'
	OR a.detail::text LIKE '%' || encode(digest(s.secret, 'sha256'), 'base64') || '%'
	OR a.detail::text LIKE '%' || encode(digest(s.secret, 'sha256'), 'escape') || '%';
SELECT count(*) AS hash_like_values
  FROM pixl_audit a, jsonb_each_text(to_jsonb(a) - 'detail' || a.detail) kv
 WHERE kv.value ~ '[0-9a-f]{64}|\\x[0-9a-f]{16}';
-- the columns of pixl_audit are the SPEC's (plus audit_id)
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'pixl_audit'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- Written in the same transaction: a rollback takes the audit rows with it.
SELECT count(*) AS audit_before FROM pixl_audit \gset
BEGIN;
SELECT pixl_set_store_plan('audit-b', 'starter');
SELECT token_id AS rb_id FROM pixl_create_token('audit-b', 'Rolled back', ARRAY['settings:read']) \gset
SELECT length(pixl_rotate_token(:'rb_id')) AS len;
SELECT pixl_update_token(:'rb_id', name => 'Still rolled back');
SELECT pixl_revoke_token(:'rb_id');
SELECT array_agg(action ORDER BY audit_id) AS in_transaction FROM pixl_audit WHERE store_id = 'audit-b';
ROLLBACK;
SELECT count(*) - :audit_before AS audit_rows_after_rollback,
	   (SELECT count(*) FROM pixl_stores WHERE store_id = 'audit-b') AS store,
	   (SELECT count(*) FROM pixl_token_registry WHERE token_id = :'rb_id') AS token
  FROM pixl_audit;
-- and a subtransaction rolled back to a savepoint, likewise
BEGIN;
SELECT token_id AS sp_id FROM pixl_create_token('audit-b', 'Kept', ARRAY['settings:read']) \gset
SAVEPOINT s;
SELECT pixl_revoke_token(:'sp_id');
ROLLBACK TO SAVEPOINT s;
SELECT pixl_update_token(:'sp_id', name => 'Kept and renamed');
COMMIT;
SELECT action, detail - 'hint' AS detail FROM pixl_audit WHERE store_id = 'audit-b' ORDER BY audit_id;
SELECT status FROM pixl_tokens WHERE token_id = :'sp_id';
-- a failing call writes nothing either
SELECT count(*) AS audit_before FROM pixl_audit \gset
SELECT pixl_update_token(:'sp_id', name => 'Kept', rate_limit => 61);
SELECT pixl_set_store_plan('audit-b', 'gold');
SELECT count(*) - :audit_before AS new_audit_rows FROM pixl_audit;

DROP TABLE seen_secrets;
