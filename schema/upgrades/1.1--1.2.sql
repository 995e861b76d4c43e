-- 1.1 -> 1.2: the state changes.  The Makefile replaces each "--#include
-- <file>" line with that file and appends schema/code/, which (re)creates
-- every function, view, trigger, policy, grant and comment.

-- pixl_usage_rows returns the rows of the one stitching of the rollups
-- (pixl_usage_rollups, every column) instead of its own column list: a
-- result type CREATE OR REPLACE cannot change.  Internal, granted to no one.
DROP FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean);

-- The node-id layout of request ids, defined once, and the replica
-- tables' checks that spelled it as 15.
--#include schema/state/05_node_id.sql
ALTER TABLE @extschema@.pixl_replica_nodes
	DROP CONSTRAINT pixl_replica_nodes_node_id_check,
	ADD CONSTRAINT pixl_replica_nodes_node_id_check
		CHECK (node_id BETWEEN 1 AND (1 << @extschema@.pixl_node_id_bits()) - 1);
ALTER TABLE @extschema@.pixl_replica_retired
	DROP CONSTRAINT pixl_replica_retired_node_id_check,
	ADD CONSTRAINT pixl_replica_retired_node_id_check
		CHECK (node_id BETWEEN 1 AND (1 << @extschema@.pixl_node_id_bits()) - 1);

-- Weighted calls and the period allowance in the rollups (the usage
-- worker's fold writes them; rows of before count 0).
ALTER TABLE @extschema@.pixl_usage_hourly
	ADD COLUMN cost bigint NOT NULL DEFAULT 0,
	ADD COLUMN charged bigint NOT NULL DEFAULT 0;
ALTER TABLE @extschema@.pixl_usage_daily
	ADD COLUMN cost bigint NOT NULL DEFAULT 0,
	ADD COLUMN charged bigint NOT NULL DEFAULT 0;
