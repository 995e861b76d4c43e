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

-- Incarnations forgotten by pixl_replica_reset_node: refused for ever
-- (PX065), so that a batch the old incarnation sends again is never
-- counted twice.  Not dumped, as pixl_replica_nodes.
CREATE TABLE @extschema@.pixl_replica_retired (
	node_id		smallint NOT NULL CHECK (node_id BETWEEN 1 AND 15),
	incarnation	bigint NOT NULL CHECK (incarnation > 0),
	node_name	text,
	last_seq	bigint NOT NULL,
	retired_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	retired_by	name NOT NULL,
	PRIMARY KEY (node_id, incarnation)
);
COMMENT ON TABLE @extschema@.pixl_replica_retired IS
	'Incarnations of standbys forgotten by pixl_replica_reset_node: their batches are refused for ever';
REVOKE ALL ON @extschema@.pixl_replica_retired FROM PUBLIC;

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

-- Forgets a standby, so that a rebuilt one (a new incarnation) may take its
-- node id.  The forgotten incarnation is retired for ever.  Replication
-- operators only, for the calling role and for the caller (a wrapper with
-- a caller ticket, as in 11_store_admins.sql).
CREATE FUNCTION @extschema@.pixl_replica_reset_node_impl(caller_ticket bigint, node_id integer)
	RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	v_row	@extschema@.pixl_replica_nodes;
	v_role	oid := @extschema@.pixl_calling_role();
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_replica_reset_node(integer)');
	v_denied	oid;
BEGIN
	-- the calling role first, then the role the call runs with
	SELECT who.role INTO v_denied
	  FROM pg_catalog.unnest(ARRAY[v_role, v_caller]) WITH ORDINALITY AS who(role, n)
	 WHERE NOT (coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
						   WHERE r.oid OPERATOR(pg_catalog.=) who.role), false)
				OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
							WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_replica_operator'
							  AND pg_catalog.pg_has_role(who.role, r.oid, 'USAGE')))
	 ORDER BY who.n LIMIT 1;
	IF FOUND THEN
		PERFORM @extschema@.pixl_raise_hidden('PX040',
			'only replication operators may reset replica nodes',
			@extschema@.pixl_borrow_detail(v_denied),
			'Replication operators are superusers and members of pixl_replica_operator.');
	END IF;
	DELETE FROM @extschema@.pixl_replica_nodes n
		WHERE n.node_id OPERATOR(pg_catalog.=) pixl_replica_reset_node_impl.node_id
		RETURNING * INTO v_row;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	INSERT INTO @extschema@.pixl_replica_retired
		(node_id, incarnation, node_name, last_seq, retired_by)
	VALUES (v_row.node_id, v_row.incarnation, v_row.node_name, v_row.last_seq,
			v_role::regrole::text)
	ON CONFLICT DO NOTHING;
	RAISE LOG 'pixltoken: replica node % (%) forgotten by %: last batch %',
		v_row.node_id, v_row.node_name, v_role::regrole, v_row.last_seq;
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
	'Forgets a standby that ships usage, so that another (or a rebuilt one) may use its node id; the forgotten incarnation is refused for ever';
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node(integer) TO pixl_replica_operator;
