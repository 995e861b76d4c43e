------------------------------------------------------------------------------
-- Usage shipped from hot standbys (src/usage_ship.c, src/usage_ingest.c).
------------------------------------------------------------------------------

-- One row per standby that ships: (node_id, incarnation) names it, last_seq
-- is the last batch applied.  Not dumped: a restored database has new
-- standbys, which register afresh.
CREATE TABLE @extschema@.pixl_replica_nodes (
	node_id		smallint PRIMARY KEY CHECK (node_id BETWEEN 1 AND (1 << @extschema@.pixl_node_id_bits()) - 1),
	incarnation	bigint NOT NULL CHECK (incarnation > 0),
	node_name	text,
	last_seq	bigint NOT NULL CHECK (last_seq >= 0),
	share		real CHECK (share > 0 AND share <= 1),
	first_seen	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_ack_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- verifications the standby's crashes lost before it shipped them (1.2)
	counts_lost	bigint NOT NULL DEFAULT 0 CHECK (counts_lost >= 0)
);

COMMENT ON TABLE @extschema@.pixl_replica_nodes IS
	'Hot standbys that ship their usage here: the last batch applied of each, its rate_limit_share, and the verifications its crashes lost';


-- Incarnations forgotten by pixl_replica_reset_node: refused for ever
-- (PX065), so that a batch the old incarnation sends again is never
-- counted twice.  Not dumped, as pixl_replica_nodes.
CREATE TABLE @extschema@.pixl_replica_retired (
	node_id		smallint NOT NULL CHECK (node_id BETWEEN 1 AND (1 << @extschema@.pixl_node_id_bits()) - 1),
	incarnation	bigint NOT NULL CHECK (incarnation > 0),
	node_name	text,
	last_seq	bigint NOT NULL,
	retired_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	retired_by	name NOT NULL,
	PRIMARY KEY (node_id, incarnation)
);

COMMENT ON TABLE @extschema@.pixl_replica_retired IS
	'Incarnations of standbys forgotten by pixl_replica_reset_node: their batches are refused for ever';


-- Replication operators: the NOLOGIN role pixl_replica_operator (members
-- with INHERIT) and superusers reset nodes.  Not platform admins, who read
-- every store's usage: resetting a node decides what is counted.  The role
-- is cluster-wide, created by the first CREATE EXTENSION (or upgrade) that
-- misses it, as pixl_platform_admin.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_replica_operator') THEN
		CREATE ROLE pixl_replica_operator NOLOGIN;
	END IF;
END
$$;
