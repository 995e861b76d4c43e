-- pixl_ingest_usage (issue #11.3): the primary's side of usage shipped by
-- hot standbys.  The shipping itself runs in test/t/051_standby_usage.pl;
-- here: who may call it, bad input (each with its SQLSTATE), and the
-- at-most-once rule on (node, incarnation, seq) with empty batches.
\i test/helpers/setup.sql

-- nobody but the owner, until granted; resetting nodes: platform admins
SELECT has_function_privilege('public', 'pixl_ingest_usage(integer, bigint, bigint, real, text, bytea)', 'EXECUTE') AS public_ingest,
	   has_function_privilege('public', 'pixl_replica_reset_node(integer)', 'EXECUTE') AS public_reset,
	   has_table_privilege('public', 'pixl_replica_nodes', 'SELECT') AS public_nodes;

-- a batch header: magic, version, record size, count size, records, counts
-- (little-endian uint32s, as on every platform PostgreSQL 15 ships for)
CREATE FUNCTION pg_temp.u32(v bigint) RETURNS bytea LANGUAGE sql AS
	$$SELECT substr(int4send(v::int), 4, 1) || substr(int4send(v::int), 3, 1) ||
			 substr(int4send(v::int), 2, 1) || substr(int4send(v::int), 1, 1)$$;
CREATE FUNCTION pg_temp.header(version int, rsize int, csize int, nrec int, ncount int)
	RETURNS bytea LANGUAGE sql AS
	$$SELECT pg_temp.u32(1347963970) || pg_temp.u32(version) || pg_temp.u32(rsize) ||
			 pg_temp.u32(csize) || pg_temp.u32(nrec) || pg_temp.u32(ncount)$$;

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
  FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(2, 8, 8, 0, 0))$$);

-- this build's sizes, from the detail of a refused header
SELECT (regexp_match(detail, 'records of (\d+) bytes and counts of (\d+) bytes;'))[1]::int AS rsize,
	   (regexp_match(detail, 'records of (\d+) bytes and counts of (\d+) bytes;'))[2]::int AS csize
  FROM pg_temp.err($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(1, 0, 0, 0, 0))$$) \gset
SELECT :rsize > 0 AND :csize > 0 AS sizes_known;
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(1, %s, %s, 1, 0))$$, :rsize, :csize));
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(1, %s, %s, -1, 0))$$, :rsize, :csize));
-- a record of an unknown kind (all zeros)
SELECT * FROM pg_temp.err(format($$SELECT pixl_ingest_usage(1, 42, 1, 0.5, 'n', pg_temp.header(1, %s, %s, 1, 0) || decode(repeat('00', %s), 'hex'))$$, :rsize, :csize, :rsize));
SELECT count(*) AS nodes_after_bad_input FROM pixl_replica_nodes;

-- at most once: node 1 (incarnation 42) sends empty batches 1, 1, 3, 2
SELECT pg_temp.header(1, :rsize, :csize, 0, 0) AS empty \gset
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

-- forgetting a node: platform admins only
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

DELETE FROM pixl_replica_nodes;
REVOKE EXECUTE ON FUNCTION pixl_replica_reset_node(integer) FROM regress_ri_nobody;
DROP ROLE regress_ri_nobody;
