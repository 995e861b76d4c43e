-- The node id of a request id: its low bits hold the id of the node that
-- verified the request (pixltoken.node_id, 1 to 2^bits - 1 on a node that
-- ships its usage, 0 on a primary), the bits above them the verification's
-- time in microseconds since 2000-01-01 (src/request_id.c; the C side
-- spells the same width PIXL_NODE_ID_BITS).  The one definition of the
-- layout in SQL: the replica tables' checks and the ids of backfilled
-- events use it.  Created before the tables whose checks call it, and
-- included by the upgrade that introduced it (schema/upgrades/1.1--1.2.sql).
CREATE OR REPLACE FUNCTION @extschema@.pixl_node_id_bits() RETURNS int
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN 4;

COMMENT ON FUNCTION @extschema@.pixl_node_id_bits() IS
	'Low bits of a request id that hold the node id (node ids are 1 to 2^bits - 1)';
