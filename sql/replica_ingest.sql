-- pixl_ingest_usage: the primary's side of usage shipped by
-- hot standbys.  The shipping itself runs in test/t/051_standby_usage.pl;
-- here: who may call it, bad input (each with its SQLSTATE), and the
-- at-most-once rule on (node, incarnation, seq) with empty batches.
\i test/helpers/setup.sql

-- nobody but the owner, until granted; resetting nodes: platform admins
SELECT has_function_privilege('public', 'pixl_ingest_usage(integer, bigint, bigint, real, text, bytea)', 'EXECUTE') AS public_ingest,
	   has_function_privilege('public', 'pixl_replica_reset_node(integer)', 'EXECUTE') AS public_reset,
	   has_table_privilege('public', 'pixl_replica_nodes', 'SELECT') AS public_nodes;

-- the node-id layout of request ids, defined once in SQL, is the server's:
-- node ids go up to pixltoken.node_id's bound (15 for 4 bits), and the
-- replica tables refuse the next one (a check violation)
SELECT pixl_node_id_bits() AS bits,
	   (1 << pixl_node_id_bits()) - 1 = (SELECT max_val::int FROM pg_settings
										  WHERE name = 'pixltoken.node_id') AS same_as_setting;
SELECT (pg_temp.err($$INSERT INTO pixl_replica_nodes (node_id, incarnation, last_seq) VALUES (16, 1, 0)$$)).state;

-- pg_temp.header(), pg_temp.batch(), pg_temp.event() ... (64-bit layout)
\set ECHO none
\i test/helpers/batch.sql
\set ECHO all

-- bad arguments: PX064, nothing written
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(0, 42, 1, 0.5, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(16, 42, 1, 0.5, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 0, 0.5, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, -1, 1, 0.5, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 1.5, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 'NaN', 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, NULL, 0.5, 'n', '\x00')$$);
-- damaged batches
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', '\x00')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', '\x000102030405060708090a0b0c0d0e0f1011121314151617')$$);
SELECT state, message, hint
  FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(3, 8, 8, 0, 0))$$);

-- this build's sizes, from the detail of a refused header
SELECT (regexp_match(detail, 'records of (\d+) bytes and counts of (\d+) bytes;'))[1]::int AS rsize,
	   (regexp_match(detail, 'records of (\d+) bytes and counts of (\d+) bytes;'))[2]::int AS csize
  FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(1, 0, 0, 0, 0))$$) \gset
SELECT :rsize > 0 AND :csize > 0 AS sizes_known;
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(4, %s, %s, 1, 0))$$, :rsize, :csize));
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(4, %s, %s, -1, 0))$$, :rsize, :csize));
-- 1.1's version with this build's sizes: refused (1.1's are smaller)
SELECT state, message FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(2, %s, %s, 0, 0))$$, :rsize, :csize));
-- a record of an unknown kind (all zeros)
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(4, %s, %s, 1, 0) || decode(repeat('00', %s + 8), 'hex'))$$, :rsize, :csize, :rsize));
SELECT count(*) AS nodes_after_bad_input FROM pixl_replica_nodes;

-- at most once: node 1 (incarnation 42) sends empty batches 1, 1, 3, 2
SELECT pg_temp.batch('{}') AS empty \gset
SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'standby-a', :'empty') AS batch_1;
SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'standby-a', :'empty') AS batch_1_again;
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 3, 0.5, 'standby-a', %L)$$, :'empty'));
SELECT pixl_ingest_usage(1, 42, 2, 0.25, 'standby-a', :'empty') AS batch_2;
SELECT node_id, incarnation, node_name, last_seq, share FROM pixl_replica_nodes;
-- another standby with node id 1 (another incarnation) is refused
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 43, 1, 0.5, 'standby-b', %L)$$, :'empty'));
-- a first contact may start at any batch (a node reset, or registered on
-- a primary lost in a failover)
SELECT pixl_ingest_usage(2, 77, 5, 0.25, NULL, :'empty') AS node_2_batch_5;
SELECT node_id, incarnation, node_name, last_seq, share FROM pixl_replica_nodes ORDER BY node_id;

-- version 4 (1.2): an int64 after the counts says how many verifications
-- the node's crashes lost since its previous batch: added to the node's
-- counts_lost with the batch, once (a duplicate adds nothing); out of
-- range, or missing, refuses the batch (PX064)
SELECT pg_temp.header(4, :rsize, :csize, 0, 0) || pg_temp.i64(7) AS lost_7 \gset
SELECT pixl_ingest_usage(4, 88, 1, 0.25, 'standby-d', :'lost_7') AS node_4_batch_1;
SELECT pixl_ingest_usage(4, 88, 1, 0.25, 'standby-d', :'lost_7') AS node_4_batch_1_again;
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(4, 88, 2, 0.25, 'standby-d', %L)$$,
	pg_temp.header(4, :rsize, :csize, 0, 0) || pg_temp.i64(-1)));
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(4, 88, 2, 0.25, 'standby-d', %L)$$,
	pg_temp.header(4, :rsize, :csize, 0, 0) || pg_temp.i64((1 << 28) + 1)));
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(4, 88, 2, 0.25, 'standby-d', %L)$$,
	pg_temp.header(4, :rsize, :csize, 0, 0)));
-- version 3 says nothing was lost
SELECT pixl_ingest_usage(4, 88, 2, 0.25, 'standby-d', pg_temp.batch_no_scopes('{}')) AS node_4_batch_2;
SELECT node_id, last_seq, counts_lost FROM pixl_replica_nodes ORDER BY node_id;
DELETE FROM pixl_replica_nodes WHERE node_id = 4;

-- forgetting a node: replica operators only (pixl_replica_operator, a
-- cluster-wide NOLOGIN role), not platform admins, who read usage
SELECT has_function_privilege('pixl_replica_operator', 'pixl_replica_reset_node(integer)', 'EXECUTE') AS operator_reset,
	   has_function_privilege('pixl_platform_admin', 'pixl_replica_reset_node(integer)', 'EXECUTE') AS platform_admin_reset,
	   (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'pixl_replica_operator') AS operator_can_login;
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_ri_nobody;
RESET client_min_messages;
CREATE ROLE regress_ri_nobody;
GRANT EXECUTE ON FUNCTION pixl_replica_reset_node(integer) TO regress_ri_nobody;
SET ROLE regress_ri_nobody;
SELECT * FROM pg_temp.err('SELECT pixl_replica_reset_node(1)');
RESET ROLE;
SELECT pixl_replica_reset_node(1) AS forgotten, pixl_replica_reset_node(1) AS again;
-- now the other standby may take node id 1
SELECT pixl_ingest_usage(1, 43, 1, 0.5, 'standby-b', :'empty') AS standby_b_batch_1;
SELECT node_id, incarnation, node_name, last_seq FROM pixl_replica_nodes ORDER BY node_id;

-- a platform admin (who may read usage) may not reset nodes, even granted
-- EXECUTE; a member of pixl_replica_operator may
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_ri_admin;
DROP ROLE IF EXISTS regress_ri_operator;
RESET client_min_messages;
CREATE ROLE regress_ri_admin IN ROLE pixl_platform_admin;
CREATE ROLE regress_ri_operator IN ROLE pixl_replica_operator;
GRANT EXECUTE ON FUNCTION pixl_replica_reset_node(integer) TO regress_ri_admin;
SET ROLE regress_ri_admin;
SELECT * FROM pg_temp.err('SELECT pixl_replica_reset_node(2)');
RESET ROLE;
SET ROLE regress_ri_operator;
SELECT pixl_replica_reset_node(2) AS operator_forgot_node_2;
RESET ROLE;

------------------------------------------------------------------------------
-- What a batch may hold: every field checked on the primary before anything
-- is written; a bad one refuses the whole batch (PX064) with a detail that
-- names the item and the field.  Node 3, incarnation 300.
------------------------------------------------------------------------------
-- the hand-made layout is this build's
SELECT :rsize = 360 AND :csize = 1424 AS layout_matches_build;
SELECT getdatabaseencoding() AS db_encoding;
SELECT pixl_set_store_plan('ri-store', 'enterprise');
SELECT token_id AS tok FROM pixl_create_token('ri-store', 'ingest', ARRAY['products:read']) \gset
SELECT date_trunc('hour', now()) AS hour, date_trunc('hour', now()) + interval '1 minute' AS at \gset
SELECT pg_temp.us(:'at') * 16 + 3 AS rid3, pg_temp.us(:'at') * 16 AS rid0 \gset

-- a good batch, for reference: one event, one response to it, a count of 7
-- with that response (12.5 ms) and another one that turned a success into
-- an error (1.5 ms)
SELECT pg_temp.batch(ARRAY[pg_temp.event(3, :'at', 200, :'tok', 'GET', '/ok'),
						   pg_temp.response(:rid3, 201, 12.5)],
					 ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/ok', 7, 1, 0, 0, :'at',
										 responses => 2, errors_up => 1, us_sum => 14000,
										 lat => pg_temp.lat('{12.5, 1.5}'))]) AS good \gset

CREATE FUNCTION pg_temp.refused(records bytea[], counts bytea[] DEFAULT '{}')
	RETURNS TABLE (state text, message text, detail text) LANGUAGE sql AS
	$$SELECT state, message, detail
		FROM pg_temp.err(format('SELECT pixl_ingest_usage(3, 300, 1, 0.5, ''n3'', %L)',
								pg_temp.batch(records, counts)))$$;
-- counts: last_used of year 294277, before 2000, hour not aligned, hour
-- in the future, an endpoint that is not UTF-8, INT64_MAX, negative, over
-- the ceiling summed over the batch, unterminated method
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/ok', 1),
	pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, last_used_us => 9223371331200000000)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, last_used_us => -1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'at', :'tok', 'GET', '/x', 1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour'::timestamptz + interval '3 days', :'tok', 'GET', '/x', 1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x' || '\xff'::bytea, 1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 9223372036854775807)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, errors => -1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 200000000),
	pg_temp.count(:'hour', :'tok', 'GET', '/y', 200000000)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', decode(repeat('41', 16), 'hex'), '/x', 1)]);
-- response counters: negative, over the ceiling, time sum over its ceiling
-- (a second per response at the count ceiling), summed over the batch
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, responses => -1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, errors_down => 268435457)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, us_sum => -1)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, us_sum => 268435456000001)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, responses => 1, us_sum => 200000000000000),
	pg_temp.count(:'hour', :'tok', 'GET', '/y', 1, responses => 1, us_sum => 200000000000000)]);
-- latency histograms: a bucket over the ceiling, a bucket of 2^32 - 1 (a
-- uint32 read as a count, not as -1), the buckets summed over the ceiling
-- in one item and over the batch
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, lat => '{0, 268435457}')]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, lat => array_fill(0::bigint, ARRAY[248]) || 4294967295::bigint)]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, lat => '{200000000, 200000000}')]);
SELECT * FROM pg_temp.refused('{}', ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/x', 1, lat => '{0, 0, 200000000}'),
	pg_temp.count(:'hour', :'tok', 'GET', '/y', 1, lat => '{0, 0, 200000000}')]);
-- events: a request id of another node (the primary's), a time in the
-- future, an endpoint that is not UTF-8, a flag byte that is not a bool,
-- a status a verification never has
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.event(0, :'at', 200, :'tok', 'GET', '/x')]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.event(3, now() + interval '3 days', 200, :'tok', 'GET', '/x')]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.event(3, :'at', 200, :'tok', 'GET', '\xc328'::bytea)]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.event(3, :'at', 200, :'tok', 'GET', '/x', flag => 2)]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.event(3, :'at', 201, :'tok', 'GET', '/x')]);
-- responses: bound to the node: node 3 cannot answer for the primary's
-- (guessable) request ids; status and time as pixl_log_response checks
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.response(:rid0, 500, 1)]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.response(:rid3 + 16 * 86400000000 * 3, 500, 1)]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.response(:rid3, 600, 1)]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.response(:rid3, 200, 'NaN')]);
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.response(:rid3, 200, 86400001)]);
-- a bad item after a good one: nothing of the batch was written
SELECT * FROM pg_temp.refused(ARRAY[pg_temp.event(3, :'at', 200, :'tok', 'GET', '/ok'),
									pg_temp.response(:rid0, 500, 1)],
	ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/ok', 7)]);
SELECT count(*) AS node_3_rows FROM pixl_replica_nodes WHERE node_id = 3;
SELECT count(*) AS hourly_rows FROM pixl_usage_hourly WHERE token_id = :'tok';
SELECT count(*) AS activity_rows FROM pixl_token_activity WHERE token_id = :'tok';

-- the good batch is applied; its count is 7
SELECT pixl_ingest_usage(3, 300, 1, 0.5, 'n3', :'good') AS good_batch;
SELECT requests, errors, response_ms_sum, response_ms_count, latency FROM pixl_usage_hourly WHERE token_id = :'tok';
SELECT last_used_at = :'at'::timestamptz AS last_used_ok FROM pixl_token_activity WHERE token_id = :'tok';
SELECT status, response_ms FROM pixl_usage_events WHERE request_id = :rid3;
-- the store's usage sums (platform admins read them)
SELECT requests, errors FROM pixl_usage_by_store WHERE store_id = 'ri-store';

-- Tombstone: once node 3 is reset, its old incarnation stays refused for
-- ever (PX065); the re-sent batch does not count twice.  A new incarnation
-- (a rebuilt standby) may take the node id.
SELECT pixl_replica_reset_node(3) AS node_3_reset;
SELECT state, message FROM pg_temp.err(format('SELECT pixl_ingest_usage(3, 300, 1, 0.5, ''n3'', %L)', :'good'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_ingest_usage(3, 300, 2, 0.5, ''n3'', %L)', :'empty'));
SELECT requests FROM pixl_usage_hourly WHERE token_id = :'tok';
SELECT pixl_ingest_usage(3, 301, 1, 0.5, 'n3-rebuilt', :'empty') AS new_incarnation;
SELECT node_id, incarnation, node_name, last_seq FROM pixl_replica_nodes WHERE node_id = 3;
SELECT node_id, incarnation, last_seq FROM pixl_replica_retired ORDER BY node_id, incarnation;

------------------------------------------------------------------------------
-- Weighted calls: an event's cost (1 to 100) and charged (0 to its cost, an
-- admitted call only), a count's cost and charged (negative: refunds of
-- calls shipped before) are checked, and folded into the rollups' cost and
-- charged exactly.  A standby of 1.1 (version 2, no cost or charged) is
-- still taken: its calls weigh 1 each and were not charged.  Node 4.
------------------------------------------------------------------------------
SELECT token_id AS tok4 FROM pixl_create_token('ri-store', 'weighted', ARRAY['products:read']) \gset
SELECT pg_temp.us(:'at') * 16 + 4 AS rid4 \gset
CREATE FUNCTION pg_temp.refused4(records bytea[], counts bytea[] DEFAULT '{}')
	RETURNS TABLE (state text, message text, detail text) LANGUAGE sql AS
	$$SELECT state, message, detail
		FROM pg_temp.err(format('SELECT pixl_ingest_usage(4, 400, 1, 0.5, ''n4'', %L)',
								pg_temp.batch(records, counts)))$$;
SELECT * FROM pg_temp.refused4(ARRAY[pg_temp.event(4, :'at', 200, :'tok4', 'GET', '/w', cost => 0)]);
SELECT * FROM pg_temp.refused4(ARRAY[pg_temp.event(4, :'at', 200, :'tok4', 'GET', '/w', cost => 101)]);
SELECT * FROM pg_temp.refused4(ARRAY[pg_temp.event(4, :'at', 200, :'tok4', 'GET', '/w', cost => 2, charged => 3)]);
SELECT * FROM pg_temp.refused4(ARRAY[pg_temp.event(4, :'at', 200, :'tok4', 'GET', '/w', cost => 2, charged => -1)]);
SELECT * FROM pg_temp.refused4(ARRAY[pg_temp.event(4, :'at', 429, :'tok4', 'GET', '/w', cost => 2, charged => 2)]);
SELECT * FROM pg_temp.refused4('{}', ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 1, cost => -1)]);
SELECT * FROM pg_temp.refused4('{}', ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 1, cost => 268435457)]);
SELECT * FROM pg_temp.refused4('{}', ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 1, charged => -268435457)]);
SELECT * FROM pg_temp.refused4('{}', ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 1, cost => 200000000),
	pg_temp.count(:'hour', :'tok4', 'GET', '/v', 1, cost => 200000000)]);
SELECT * FROM pg_temp.refused4('{}', ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 1, charged => 200000000),
	pg_temp.count(:'hour', :'tok4', 'GET', '/v', 1, charged => -200000000)]);
SELECT count(*) AS node_4_rows FROM pixl_replica_nodes WHERE node_id = 4;

-- 3 calls weighing 7, 5 of it charged; then a refund of 2 of those
SELECT pixl_ingest_usage(4, 400, 1, 0.5, 'n4',
	pg_temp.batch(ARRAY[pg_temp.event(4, :'at', 200, :'tok4', 'GET', '/w', cost => 5, charged => 5)],
				  ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 3, 0, 0, 0, :'at',
									  cost => 7, charged => 5)])) AS weighted_batch;
SELECT requests, cost, charged FROM pixl_usage_hourly WHERE token_id = :'tok4';
SELECT pixl_ingest_usage(4, 400, 2, 0.5, 'n4',
	pg_temp.batch('{}', ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 0, charged => -2)])) AS refund_batch;
SELECT requests, cost, charged FROM pixl_usage_hourly WHERE token_id = :'tok4';
-- 1.1's batch: 4 calls weigh 4, none charged (its event too)
SELECT pixl_ingest_usage(4, 400, 3, 0.5, 'n4',
	pg_temp.batch_1_1(ARRAY[pg_temp.event(4, :'at', 200, :'tok4', 'GET', '/w', rid => :rid4 + 16, cost => 9, charged => 9)],
					  ARRAY[pg_temp.count(:'hour', :'tok4', 'GET', '/w', 4, 0, 0, 0, :'at',
										  cost => 50, charged => 50)])) AS batch_of_1_1;
SELECT requests, cost, charged FROM pixl_usage_hourly WHERE token_id = :'tok4';
SELECT count(*) AS raw_rows FROM pixl_usage_events WHERE token_id = :'tok4';

------------------------------------------------------------------------------
-- Scopes: a count's scopes_used (the scopes its admitted calls required)
-- holds bits of the eleven scopes only, and is OR-ed into the rollup row,
-- not added.  A standby that did not record scopes yet (version 3) is
-- still taken: its counts exercised no scope.  Node 5.
------------------------------------------------------------------------------
SELECT token_id AS tok5 FROM pixl_create_token('ri-store', 'scoped', ARRAY['products:read', 'orders:read']) \gset
SELECT state, message, detail
  FROM pg_temp.err(format('SELECT pixl_ingest_usage(5, 500, 1, 0.5, ''n5'', %L)',
						  pg_temp.batch('{}', ARRAY[pg_temp.count(:'hour', :'tok5', 'GET', '/s', 1, scopes => 2048)])));
SELECT state, detail
  FROM pg_temp.err(format('SELECT pixl_ingest_usage(5, 500, 1, 0.5, ''n5'', %L)',
						  pg_temp.batch('{}', ARRAY[pg_temp.count(:'hour', :'tok5', 'GET', '/s', 1, scopes => -1)])));
SELECT count(*) AS node_5_rows FROM pixl_replica_nodes WHERE node_id = 5;
-- products:read and orders:read (1 | 4), then orders:read (4) again: 5
SELECT pixl_ingest_usage(5, 500, 1, 0.5, 'n5',
	pg_temp.batch('{}', ARRAY[pg_temp.count(:'hour', :'tok5', 'GET', '/s', 2, scopes => 5)])) AS scoped_batch;
SELECT pixl_ingest_usage(5, 500, 2, 0.5, 'n5',
	pg_temp.batch('{}', ARRAY[pg_temp.count(:'hour', :'tok5', 'GET', '/s', 1, scopes => 4)])) AS scoped_again;
SELECT requests, scopes_used FROM pixl_usage_hourly WHERE token_id = :'tok5';
-- version 3: taken, no scope (its count's scopes_used bytes are not there)
SELECT pixl_ingest_usage(5, 500, 3, 0.5, 'n5',
	pg_temp.batch_no_scopes('{}', ARRAY[pg_temp.count(:'hour', :'tok5', 'GET', '/t', 3, scopes => 2)])) AS batch_without_scopes;
SELECT endpoint, requests, scopes_used FROM pixl_usage_hourly WHERE token_id = :'tok5' ORDER BY endpoint;

------------------------------------------------------------------------------
-- Credentials over plain HTTP on a standby: its 403's record carries the
-- exposure, and the primary revokes (or notifies) when it takes the batch,
-- once.  Only a 403 may carry one, and only revoke (1) or notify (2).
-- Node 6.
------------------------------------------------------------------------------
SELECT token_id AS tok6 FROM pixl_create_token('ri-store', 'sent over http', ARRAY['products:read']) \gset
CREATE FUNCTION pg_temp.refused6(records bytea[])
	RETURNS TABLE (state text, message text, detail text) LANGUAGE sql AS
	$$SELECT state, message, detail
		FROM pg_temp.err(format('SELECT pixl_ingest_usage(6, 600, 1, 0.5, ''n6'', %L)',
								pg_temp.batch(records)))$$;
SELECT * FROM pg_temp.refused6(ARRAY[pg_temp.event(6, :'at', 403, :'tok6', 'GET', '/h', exposure => 3)]);
SELECT * FROM pg_temp.refused6(ARRAY[pg_temp.event(6, :'at', 200, :'tok6', 'GET', '/h', exposure => 1)]);
SELECT status FROM pixl_tokens WHERE token_id = :'tok6';
SELECT pixl_ingest_usage(6, 600, 1, 0.5, 'n6',
	pg_temp.batch(ARRAY[pg_temp.event(6, :'at', 403, :'tok6', 'GET', '/h', exposure => 1),
						pg_temp.event(6, :'at', 403, :'tok6', 'GET', '/h', rid => pg_temp.us(:'at') * 16 + 6 + 16, exposure => 1)])) AS exposed_batch;
SELECT status FROM pixl_tokens WHERE token_id = :'tok6';
SELECT count(*) AS expose_rows, min(detail->>'source') AS source, min(detail->>'action') AS action
  FROM pixl_audit WHERE token_id = :'tok6' AND action = 'expose';
-- the same batch again is a duplicate; a later one finds the token exposed
SELECT pixl_ingest_usage(6, 600, 1, 0.5, 'n6',
	pg_temp.batch(ARRAY[pg_temp.event(6, :'at', 403, :'tok6', 'GET', '/h', exposure => 1)])) AS same_batch;
SELECT pixl_ingest_usage(6, 600, 2, 0.5, 'n6',
	pg_temp.batch(ARRAY[pg_temp.event(6, :'at', 403, :'tok6', 'GET', '/h', rid => pg_temp.us(:'at') * 16 + 6 + 32, exposure => 1)])) AS later_batch;
SELECT count(*) AS expose_rows FROM pixl_audit WHERE token_id = :'tok6' AND action = 'expose';

DELETE FROM pixl_replica_nodes;
DELETE FROM pixl_replica_retired;
REVOKE EXECUTE ON FUNCTION pixl_replica_reset_node(integer) FROM regress_ri_nobody, regress_ri_admin;
DROP ROLE regress_ri_nobody;
DROP ROLE regress_ri_admin;
DROP ROLE regress_ri_operator;
