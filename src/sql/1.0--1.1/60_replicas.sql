------------------------------------------------------------------------------
-- Replicas (issue #11): how current a hot standby's view is (src/standby.c).
------------------------------------------------------------------------------

-- One row.  On a primary: is_standby false, basis 'primary', staleness and
-- last_replayed_commit NULL.  On a standby: staleness is how old its view of
-- the primary may be (NULL when it cannot tell, which counts as beyond any
-- bound), measured by the rule named in basis ('caught_up', 'behind',
-- 'no_stream', 'unknown'; src/standby.c, docs/replicas.md).  bound is
-- pixltoken.max_standby_staleness, NULL when unset (0).
CREATE FUNCTION @extschema@.pixl_replica_status(
	OUT is_standby boolean, OUT staleness interval,
	OUT last_replayed_commit timestamptz, OUT bound interval,
	OUT basis text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pixl_replica_status'
	LANGUAGE C VOLATILE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.pixl_replica_status() IS
	'Whether this node is a hot standby, how stale its view of the primary may be, and the bound past which verification answers 503 stale';
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_status() FROM PUBLIC;

------------------------------------------------------------------------------
-- Usage shipped from hot standbys (src/usage_ship.c, src/usage_ingest.c).
------------------------------------------------------------------------------

-- One row per standby that ships: (node_id, incarnation) names it, last_seq
-- is the last batch applied.  Not dumped: a restored database has new
-- standbys, which register afresh.
CREATE TABLE @extschema@.pixl_replica_nodes (
	node_id		smallint PRIMARY KEY CHECK (node_id BETWEEN 1 AND 15),
	incarnation	bigint NOT NULL CHECK (incarnation > 0),
	node_name	text,
	last_seq	bigint NOT NULL CHECK (last_seq >= 0),
	share		real CHECK (share > 0 AND share <= 1),
	first_seen	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_ack_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.pixl_replica_nodes IS
	'Hot standbys that ship their usage here: the last batch applied of each, and its rate_limit_share';
REVOKE ALL ON @extschema@.pixl_replica_nodes FROM PUBLIC;

CREATE FUNCTION @extschema@.pixl_ingest_usage(node_id integer,
	incarnation bigint, seq bigint, share real, node_name text, batch bytea)
	RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_ingest_usage'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) IS
	'Applies a batch of usage shipped by a hot standby, at most once: applied or duplicate (grant it to the role the standbys connect as)';
REVOKE ALL ON FUNCTION @extschema@.pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) FROM PUBLIC;

-- Forgets a standby, so that a rebuilt one (a new incarnation) may take its
-- node id, or one whose spool was lost may start over.  Platform admins
-- (the calling role and the caller: a wrapper with a caller ticket, as in
-- 11_store_admins.sql).
CREATE FUNCTION @extschema@.pixl_replica_reset_node_impl(caller_ticket bigint, node_id integer)
	RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	v_row	@extschema@.pixl_replica_nodes;
BEGIN
	PERFORM @extschema@.pixl_assert_platform_admin('reset replica nodes',
		@extschema@.pixl_redeem_caller_ticket(caller_ticket, '@extschema@.pixl_replica_reset_node(integer)'));
	DELETE FROM @extschema@.pixl_replica_nodes n
		WHERE n.node_id OPERATOR(pg_catalog.=) pixl_replica_reset_node_impl.node_id
		RETURNING * INTO v_row;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	RAISE LOG 'pixltoken: replica node % (%) forgotten by %: last batch %',
		v_row.node_id, v_row.node_name, @extschema@.pixl_calling_role()::regrole, v_row.last_seq;
	RETURN true;
END;
$$;
CREATE FUNCTION @extschema@.pixl_replica_reset_node(node_id integer)
	RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT @extschema@.pixl_replica_reset_node_impl(@extschema@.pixl_caller_ticket(), $1);
$$;
COMMENT ON FUNCTION @extschema@.pixl_replica_reset_node(integer) IS
	'Forgets a standby that ships usage, so that another (or a rebuilt one) may use its node id';
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node(integer) TO pixl_platform_admin;
