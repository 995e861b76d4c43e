-- Token guards of 1.1: IP allowlists, metadata, disable / enable, leak
-- reports, rotation telemetry.  Every bad argument has its own SQLSTATE and
-- leaves nothing written.
\i test/helpers/setup.sql

CREATE FUNCTION pg_temp.v(tok text, ip inet DEFAULT NULL, scope text DEFAULT NULL)
	RETURNS TABLE (status int, reason text, remaining int, has_request_id boolean,
				   metadata jsonb, previous_secret_used boolean)
	LANGUAGE sql AS $$
	SELECT v.status, v.reason, v.remaining, v.request_id IS NOT NULL, v.metadata, v.previous_secret_used
	  FROM pixl_verify_request(tok, coalesce(scope, '*'), NULL, NULL, NULL, ip) v;
$$;

SELECT pixl_set_store_plan('grd-a', 'pro');

------------------------------------------------------------------------------
-- IP allowlist
------------------------------------------------------------------------------
SELECT token_id AS ipid, token AS iptok
  FROM pixl_create_token('grd-a', 'Office only', ARRAY['orders:read'], rate_limit => 10,
						 allowed_ips => ARRAY['203.0.113.0/24', '198.51.100.7', '2001:db8::/32']) \gset
SELECT allowed_ips FROM pixl_tokens WHERE token_id = :'ipid';
-- inside: 200 (quota 10 -> 9); outside, IPv6 outside, no address: 403
-- ip_not_allowed, no request id, no quota used (the next 200 has 8 left)
SELECT 'inside' AS ip, * FROM pg_temp.v(:'iptok', '203.0.113.77')
UNION ALL SELECT 'host', * FROM pg_temp.v(:'iptok', '198.51.100.7')
UNION ALL SELECT 'outside', * FROM pg_temp.v(:'iptok', '192.0.2.1')
UNION ALL SELECT 'v6 outside', * FROM pg_temp.v(:'iptok', '2001:db9::1')
UNION ALL SELECT 'none', * FROM pg_temp.v(:'iptok', NULL)
UNION ALL SELECT 'v6 inside', * FROM pg_temp.v(:'iptok', '2001:db8::42');
-- an IPv4-mapped IPv6 address (a server listening on :: sees these) is its
-- IPv4 address: inside 200 (6 left), outside 403, whatever its spelling
SELECT 'mapped inside' AS ip, * FROM pg_temp.v(:'iptok', '::ffff:203.0.113.9')
UNION ALL SELECT 'mapped host', * FROM pg_temp.v(:'iptok', '::ffff:c633:6407')
UNION ALL SELECT 'mapped outside', * FROM pg_temp.v(:'iptok', '::ffff:192.0.2.1')
UNION ALL SELECT 'compatible', * FROM pg_temp.v(:'iptok', '::203.0.113.9');
-- an allowlist written with mapped networks keeps admitting mapped callers
SELECT token_id AS mapid, token AS maptok
  FROM pixl_create_token('grd-a', 'Mapped list', ARRAY['orders:read'],
						 allowed_ips => ARRAY['::ffff:203.0.113.0/120']) \gset
SELECT status, reason FROM pg_temp.v(:'maptok', '::ffff:203.0.113.9');
-- the allowlist is checked after revocation-type checks, before store and
-- scope: a wrong scope from outside is still ip_not_allowed
SELECT status, reason FROM pg_temp.v(:'iptok', '192.0.2.1', 'orders:write');
-- update: a new list applies at once; '{}' removes it; NULL keeps it
SELECT pixl_update_token(:'ipid', allowed_ips => ARRAY['192.0.2.0/24']);
SELECT status, reason FROM pg_temp.v(:'iptok', '192.0.2.1');
SELECT status, reason FROM pg_temp.v(:'iptok', '203.0.113.77');
SELECT pixl_update_token(:'ipid', name => 'Renamed');
SELECT allowed_ips FROM pixl_tokens WHERE token_id = :'ipid';
SELECT pixl_update_token(:'ipid', allowed_ips => '{}');
SELECT allowed_ips IS NULL AS any_address FROM pixl_tokens WHERE token_id = :'ipid';
SELECT status, reason FROM pg_temp.v(:'iptok', NULL);
SELECT action, detail->'allowed_ips' AS allowed_ips FROM pixl_audit
 WHERE token_id = :'ipid' AND action = 'update' ORDER BY audit_id;
-- bad allowlists: each its own SQLSTATE, nothing created or changed
SELECT count(*) AS tokens_before FROM pixl_tokens WHERE store_id = 'grd-a' \gset
SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'], allowed_ips => ARRAY['10.0.0.1/8'])$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'], allowed_ips => ARRAY['10.0.0.0/8', 'office'])$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'], allowed_ips => ARRAY['10.0.0.0/33'])$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'], allowed_ips => ARRAY['10.0.0.0/8', NULL])$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'],
			allowed_ips => ARRAY(SELECT '10.0.' || n || '.0/24' FROM generate_series(0, 100) n))$$)
UNION ALL SELECT state, message FROM pg_temp.err(format($$SELECT pixl_update_token(%L, allowed_ips => ARRAY['::1/200'])$$, :'ipid'));
SELECT count(*) = :tokens_before AS nothing_created FROM pixl_tokens WHERE store_id = 'grd-a';
SELECT allowed_ips IS NULL AS unchanged FROM pixl_tokens WHERE token_id = :'ipid';

------------------------------------------------------------------------------
-- Metadata
------------------------------------------------------------------------------
SELECT token_id AS mid, token AS mtok
  FROM pixl_create_token('grd-a', 'With metadata', ARRAY['orders:read'],
						 metadata => '{"customer": "acme", "tier": 2}') \gset
SELECT status, metadata FROM pg_temp.v(:'mtok');
SELECT metadata FROM pixl_tokens WHERE token_id = :'mid';
SELECT pixl_update_token(:'mid', metadata => '{"customer": "acme", "tier": 3}');
SELECT status, metadata FROM pg_temp.v(:'mtok');
-- JSON null removes it; SQL NULL leaves it
SELECT pixl_update_token(:'mid', metadata => 'null');
SELECT status, metadata IS NULL AS no_metadata FROM pg_temp.v(:'mtok');
-- bad metadata
SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'], metadata => '[1, 2]')$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'], metadata => '"text"')$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_create_token('grd-a', 'x', ARRAY['orders:read'],
			metadata => jsonb_build_object('blob', repeat('x', 5000)))$$)
UNION ALL SELECT state, message FROM pg_temp.err(format($$SELECT pixl_update_token(%L, metadata => jsonb_build_object('blob', repeat('x', 5000)))$$, :'mid'));
SELECT count(*) = :tokens_before + 1 AS nothing_created FROM pixl_tokens WHERE store_id = 'grd-a';

------------------------------------------------------------------------------
-- Disable / enable
------------------------------------------------------------------------------
SELECT token_id AS did, token AS dtok
  FROM pixl_create_token('grd-a', 'To disable', ARRAY['orders:read']) \gset
SELECT pixl_disable_token(:'did', 'suspicious traffic');
SELECT status, reason, has_request_id FROM pg_temp.v(:'dtok');
SELECT status, disabled_at IS NOT NULL AS has_disabled_at, disabled_reason
  FROM pixl_tokens WHERE token_id = :'did';
SELECT state, message FROM pg_temp.err(format('SELECT pixl_disable_token(%L)', :'did'), :'did')
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_disable_token(%L, %L)', :'did', ''))
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_disable_token(%L, %L)', :'did', repeat('r', 201)))
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_disable_token(%L, %L)', :'did', E'bad\nreason'))
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_disable_token('tok_0000000000000000')$$);
-- a disabled token can still be rotated and updated; enabling restores it
SELECT pixl_update_token(:'did', name => 'Still disabled');
SELECT pixl_enable_token(:'did');
SELECT status, reason FROM pg_temp.v(:'dtok');
SELECT status, disabled_at, disabled_reason FROM pixl_tokens WHERE token_id = :'did';
SELECT state, message FROM pg_temp.err(format('SELECT pixl_enable_token(%L)', :'did'), :'did');
-- revoked tokens cannot be enabled (nor disabled)
SELECT pixl_disable_token(:'did');
SELECT pixl_revoke_token(:'did');
SELECT state, message FROM pg_temp.err(format('SELECT pixl_enable_token(%L)', :'did'), :'did');
SELECT status, reason FROM pg_temp.v(:'dtok');
SELECT action, detail - 'hint' - 'disabled_at' AS detail, detail ? 'disabled_at' AS has_disabled_at
  FROM pixl_audit WHERE token_id = :'did' AND action <> 'create' ORDER BY audit_id;

------------------------------------------------------------------------------
-- Leak reports
------------------------------------------------------------------------------
SELECT token_id AS lid, token AS ltok
  FROM pixl_create_token('grd-a', 'Leaky', ARRAY['orders:read']) \gset
SELECT token_id AS hid, token AS htok
  FROM pixl_create_token('grd-a', 'Leaky by hash', ARRAY['orders:read']) \gset
-- the answer is the same for a known and an unknown (well-formed) secret
SELECT pixl_report_leaked(:'ltok', 'github secret scanning: acme/app') IS NULL AS answer_known,
	   pixl_report_leaked((pixl_new_secret('live')).token, 'pastebin') IS NULL AS answer_unknown;
SELECT status, reason, has_request_id FROM pg_temp.v(:'ltok');
SELECT status, revoked_at IS NOT NULL AS revoked FROM pixl_tokens WHERE token_id = :'lid';
SELECT action, detail - 'hint' AS detail, detail::text LIKE '%' || :'ltok' || '%' AS holds_secret
  FROM pixl_audit WHERE token_id = :'lid' AND action = 'expose';
-- by SHA-256 only
SELECT pixl_report_leaked(sha256(convert_to(:'htok', 'UTF8')), 'scanner');
SELECT status, reason FROM pg_temp.v(:'htok');
-- reported again (already exposed): same answer, audited again
SELECT pixl_report_leaked(:'ltok', 'second report') IS NULL AS answer;
SELECT count(*) AS expose_audits FROM pixl_audit WHERE token_id = :'lid' AND action = 'expose';
-- an exposed token is revoked: it cannot be rotated, revoked or enabled
SELECT state, message FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', :'lid'), :'lid')
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_revoke_token(%L)', :'lid'), :'lid')
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_enable_token(%L)', :'lid'), :'lid');
-- a previous secret in its grace period: leaking it revokes the token
SELECT token_id AS gid, token AS gtok
  FROM pixl_create_token('grd-a', 'Rotated', ARRAY['orders:read']) \gset
SELECT pixl_rotate_token(:'gid', grace => '1 hour') AS gtok2 \gset
SELECT set_config('grd.gid', :'gid', false) IS NOT NULL AS set;
SELECT 'old' AS secret, status, reason, previous_secret_used FROM pg_temp.v(:'gtok')
UNION ALL SELECT 'new', status, reason, previous_secret_used FROM pg_temp.v(:'gtok2');
SELECT previous_secret_valid_until > now() AS in_grace FROM pixl_tokens WHERE token_id = :'gid';
-- the usage worker counts uses of the previous secret (bounded waits: for
-- the worker to serve this database and to count the use just above, then
-- for the count of two more uses)
DO $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '120 s';
BEGIN
	WHILE (NOT EXISTS (SELECT FROM pixl_stats() s
						WHERE s.datname = current_database() AND s.worker_state = 'serving')
		   OR coalesce((SELECT t.previous_secret_uses FROM pixl_tokens t
						 WHERE t.token_id = current_setting('grd.gid')), 0) < 1)
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT coalesce(previous_secret_uses, 0) AS uses_before FROM pixl_tokens WHERE token_id = :'gid' \gset
SELECT n, v.status, v.previous_secret_used
  FROM generate_series(1, 2) n, LATERAL pg_temp.v(CASE WHEN n > 0 THEN :'gtok' END) v ORDER BY n;
SELECT set_config('grd.uses', (:uses_before + 2)::text, false) IS NOT NULL AS set;
DO $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
	WHILE coalesce((SELECT t.previous_secret_uses FROM pixl_tokens t
					 WHERE t.token_id = current_setting('grd.gid')), 0)
		  < current_setting('grd.uses')::bigint
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT previous_secret_uses - :uses_before AS new_uses,
	   previous_secret_last_used_at > now() - interval '1 minute' AS recent
  FROM pixl_tokens WHERE token_id = :'gid';
SELECT pixl_report_leaked(:'gtok', 'old laptop');
SELECT 'old' AS secret, status, reason FROM pg_temp.v(:'gtok')
UNION ALL SELECT 'new', status, reason FROM pg_temp.v(:'gtok2');
SELECT detail->>'which_secret' AS which FROM pixl_audit WHERE token_id = :'gid' AND action = 'expose';
-- bad reports: own SQLSTATEs, and no message holds the reported text
SELECT state, message FROM pg_temp.err(format('SELECT pixl_report_leaked(%L, %L)', 'sk_live_' || repeat('A', 38), 'x'))
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_report_leaked(%L, %L)', :'lid', 'x'))
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_report_leaked(NULL::text, 'x')$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_report_leaked('\x0102'::bytea, 'x')$$)
UNION ALL SELECT state, message FROM pg_temp.err($$SELECT pixl_report_leaked(NULL::bytea, 'x')$$)
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_report_leaked(%L, NULL)', :'htok'))
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_report_leaked(%L, %L)', :'htok', ' '))
UNION ALL SELECT state, message FROM pg_temp.err(format('SELECT pixl_report_leaked(%L, %L)', :'htok', repeat('s', 201)));
SELECT name, status FROM pixl_tokens WHERE token_id IN (:'lid', :'hid', :'gid', :'ipid') ORDER BY name;
