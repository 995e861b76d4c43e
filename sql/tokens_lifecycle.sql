-- Rotate, revoke, update, and the statuses shown by pixl_tokens.
\i test/helpers/setup.sql

SELECT pixl_set_store_plan('life-a', 'growth');
BEGIN;
SELECT token_id AS id, token AS secret0
  FROM pixl_create_token('life-a', 'Shop Sync', ARRAY['orders:write', 'products:read'],
						 expires_at => now() + interval '10 days', rate_limit => 200) \gset
SELECT hint AS hint0, created_at AS created0 FROM pixl_tokens WHERE token_id = :'id' \gset
COMMIT;

------------------------------------------------------------------------------
-- Rotate: a new secret for the same id and settings; only its hash is kept.
------------------------------------------------------------------------------
SELECT pixl_rotate_token(:'id') AS secret1 \gset
SELECT :'secret1' ~ '^sk_live_[0-9A-Za-z]{38}$' AS shape,
	   pixl_token_format(:'secret1') AS format, :'secret1' <> :'secret0' AS new_secret;
SELECT token_id = :'id' AS same_id, store_id, name, mode, scopes, rate_limit,
	   expires_at IS NOT NULL AS keeps_expiry, status,
	   hint <> :'hint0' AS new_hint, right(hint, 4) = right(:'secret1', 4) AS hint_tail,
	   created_at = :'created0' AS same_created_at, rotated_at IS NOT NULL AS rotated
  FROM pixl_tokens WHERE token_id = :'id';
SELECT secret_hash = digest(:'secret1', 'sha256') AS hash_of_new,
	   previous_hash IS NULL AS no_grace, previous_valid_until IS NULL AS no_grace_end
  FROM pixl_token_registry WHERE token_id = :'id';
-- with a grace period, the old hash is kept until then
BEGIN;
SELECT pixl_rotate_token(:'id', '1 hour') AS secret2 \gset
SELECT secret_hash = digest(:'secret2', 'sha256') AS hash_of_new,
	   previous_hash = digest(:'secret1', 'sha256') AS previous_is_old,
	   previous_valid_until - clock_timestamp() BETWEEN interval '59 minutes' AND interval '1 hour' AS grace_1h
  FROM pixl_token_registry WHERE token_id = :'id';
COMMIT;
-- the largest grace; then a rotation without grace ends the grace period
SELECT length(pixl_rotate_token(:'id', '7 days')) AS len;
SELECT length(pixl_rotate_token(:'id')) AS len;
SELECT previous_hash IS NULL AS grace_ended FROM pixl_token_registry WHERE token_id = :'id';
SELECT detail->>'grace' AS grace, detail->>'old_hint' <> detail->>'new_hint' AS hints_differ
  FROM pixl_audit WHERE token_id = :'id' AND action = 'rotate' ORDER BY audit_id;
-- test tokens stay test tokens
SELECT token_id AS tid FROM pixl_create_token('life-a', 'Test', ARRAY['orders:read'], mode => 'test') \gset
SELECT left(pixl_rotate_token(:'tid'), 8) AS prefix;

-- errors: grace out of range, unknown token, a secret instead of the id
\x on
SELECT * FROM pg_temp.err(format('SELECT pixl_rotate_token(%L, %L)', :'id', '-1 second'));
SELECT * FROM pg_temp.err(format('SELECT pixl_rotate_token(%L, %L)', :'id', '7 days 1 second'));
SELECT * FROM pg_temp.err(format('SELECT pixl_rotate_token(%L, NULL)', :'id'));
SELECT * FROM pg_temp.err($$SELECT pixl_rotate_token('tok_0000000000000000')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_rotate_token(NULL)$$);
SELECT state, message, strpos(message || detail || hint, :'secret1') = 0 AS secret_not_echoed
  FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', :'secret1'));
\x off

------------------------------------------------------------------------------
-- Update: NULL leaves a field unchanged; each field; the same validation.
------------------------------------------------------------------------------
SELECT count(*) AS audit_before FROM pixl_audit WHERE token_id = :'id' \gset
SELECT pixl_update_token(:'id');
SELECT pixl_update_token(:'id', name => 'Shop Sync', scopes => ARRAY['products:read', 'orders:write'],
						 rate_limit => 200);
SELECT count(*) - :audit_before AS audit_rows_for_no_ops FROM pixl_audit WHERE token_id = :'id';
SELECT name, scopes, rate_limit, expires_at IS NOT NULL AS has_expiry, status
  FROM pixl_tokens WHERE token_id = :'id';
SELECT pixl_update_token(:'id', name => 'Shop Sync v2');
SELECT name, scopes, rate_limit, expires_at IS NOT NULL AS has_expiry FROM pixl_tokens WHERE token_id = :'id';
SELECT pixl_update_token(:'id', scopes => ARRAY['analytics:read']);
SELECT name, scopes, rate_limit, expires_at IS NOT NULL AS has_expiry FROM pixl_tokens WHERE token_id = :'id';
SELECT pixl_update_token(:'id', rate_limit => 300);
SELECT name, scopes, rate_limit, effective_rate_limit FROM pixl_tokens WHERE token_id = :'id';
SELECT pixl_update_token(:'id', expires_at => '2999-01-01 00:00:00+00');
SELECT expires_at FROM pixl_tokens WHERE token_id = :'id';
-- 'infinity' clears the expiry
SELECT pixl_update_token(:'id', expires_at => 'infinity');
SELECT expires_at, status FROM pixl_tokens WHERE token_id = :'id';
SELECT pixl_update_token(:'id', expires_at => 'infinity');
-- several fields at once, one audit row
SELECT pixl_update_token(:'id', name => 'Shop Sync', rate_limit => 100, expires_at => '2999-01-01 00:00:00+00');
SELECT name, scopes, rate_limit, expires_at FROM pixl_tokens WHERE token_id = :'id';
SELECT regexp_replace(detail::text, '"[0-9T:-]+\.[0-9]+\+00:00"', '"(created + 10 days)"') AS detail
  FROM pixl_audit WHERE token_id = :'id' AND action = 'update' ORDER BY audit_id;
-- errors (nothing changes)
\x on
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, name => %L)', :'id', ''));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, name => %L)', :'id', '  '));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, scopes => %L)', :'id', '{}'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, scopes => %L)', :'id', '{orders:read,orders:read}'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, scopes => %L)', :'id', '{orders:delete}'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, scopes => %L)', :'id', '{orders:read,NULL}'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, rate_limit => 0)', :'id'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, rate_limit => 1001)', :'id'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, rate_limit => 301)', :'id'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, expires_at => %L)', :'id', '2001-01-01 00:00:00+00'));
SELECT * FROM pg_temp.err($$SELECT pixl_update_token('tok_0000000000000000', name => 'x')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_update_token(NULL, name => 'x')$$);
\x off
SELECT name, scopes, rate_limit, expires_at FROM pixl_tokens WHERE token_id = :'id';
-- a store on a smaller plan: the limit is checked against its maximum
SELECT pixl_set_store_plan('life-a', 'starter');
SELECT rate_limit, effective_rate_limit FROM pixl_tokens WHERE token_id = :'id';
\x on
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, rate_limit => 121)', :'id'));
\x off
SELECT pixl_update_token(:'id', rate_limit => 120);
SELECT rate_limit, effective_rate_limit FROM pixl_tokens WHERE token_id = :'id';
SELECT pixl_set_store_plan('life-a', 'growth');

------------------------------------------------------------------------------
-- Statuses: active, expired (an expiry two seconds ahead, polled), revoked.
------------------------------------------------------------------------------
SELECT token_id AS exp_id FROM pixl_create_token('life-a', 'Short', ARRAY['orders:read'],
	expires_at => clock_timestamp() + interval '1.5 seconds') \gset
SELECT status FROM pixl_tokens WHERE token_id = :'exp_id';
DO $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
	WHILE (SELECT status FROM pixl_tokens WHERE name = 'Short' AND store_id = 'life-a') = 'active'
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT status, expires_at <= clock_timestamp() AS past_expiry FROM pixl_tokens WHERE token_id = :'exp_id';
-- an expired token cannot be rotated, but can be updated, and extended
\x on
SELECT state, replace(message, :'exp_id', '<id>') AS message,
	   detail ~ '^It expired at .+\.$' AS detail_ok, hint
  FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', :'exp_id'));
\x off
SELECT pixl_update_token(:'exp_id', name => 'Short (old)');
SELECT name, status FROM pixl_tokens WHERE token_id = :'exp_id';
SELECT pixl_update_token(:'exp_id', expires_at => 'infinity');
SELECT name, status FROM pixl_tokens WHERE token_id = :'exp_id';
SELECT length(pixl_rotate_token(:'exp_id')) AS rotated_after_extension;

------------------------------------------------------------------------------
-- Revoke: irreversible; the row stays, with revoked_at.
------------------------------------------------------------------------------
SELECT pixl_rotate_token(:'id') AS in_grace \gset
SELECT pixl_rotate_token(:'id', '1 day') AS current_secret \gset
SELECT pixl_revoke_token(:'id');
SELECT status, revoked_at IS NOT NULL AS revoked_at_set, name, scopes FROM pixl_tokens WHERE token_id = :'id';
-- revocation covers a secret still in its rotation grace too: both answer
-- "revoked", not "unknown"
SELECT previous_hash IS NOT NULL AS previous_kept
  FROM pixl_token_registry WHERE token_id = :'id';
SELECT 'current' AS secret, status, reason FROM pixl_verify_token(:'current_secret')
UNION ALL
SELECT 'in grace', status, reason FROM pixl_verify_token(:'in_grace');
SELECT count(*) AS audit_rows_before FROM pixl_audit WHERE token_id = :'id' \gset
\x on
SELECT state, replace(message, :'id', '<id>') AS message, detail ~ '^It was revoked at .*; revocation cannot be undone\.$' AS detail_ok, hint
  FROM pg_temp.err(format('SELECT pixl_revoke_token(%L)', :'id'));
SELECT state, replace(message, :'id', '<id>') AS message, hint FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', :'id'));
SELECT state, replace(message, :'id', '<id>') AS message, hint FROM pg_temp.err(format('SELECT pixl_update_token(%L, name => %L)', :'id', 'Back'));
SELECT state, replace(message, :'id', '<id>') AS message, hint FROM pg_temp.err(format('SELECT pixl_update_token(%L, expires_at => %L)', :'id', 'infinity'));
SELECT * FROM pg_temp.err($$SELECT pixl_revoke_token('tok_0000000000000000')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_revoke_token(NULL)$$);
\x off
SELECT count(*) - :audit_rows_before AS new_audit_rows FROM pixl_audit WHERE token_id = :'id';
SELECT status FROM pixl_tokens WHERE token_id = :'id';
-- a revoked token that has also expired is shown as revoked
SELECT pixl_revoke_token(:'exp_id');
SELECT name, status FROM pixl_tokens WHERE store_id = 'life-a' ORDER BY name;
