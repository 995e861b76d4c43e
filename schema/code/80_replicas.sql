------------------------------------------------------------------------------
-- Replicas: how current a hot standby's view is (src/standby.c).
------------------------------------------------------------------------------

-- One row.  On a primary: is_standby false, basis 'primary', staleness and
-- last_replayed_commit NULL.  On a standby: staleness is how old its view of
-- the primary may be (NULL when it cannot tell, which counts as beyond any
-- bound), measured by the rule named in basis ('caught_up', 'behind',
-- 'no_stream', 'unknown'; src/standby.c, docs/replicas.md).  bound is
-- pixltoken.max_standby_staleness, NULL when unset (0).
CREATE OR REPLACE FUNCTION @extschema@.pixl_replica_status(
	OUT is_standby boolean, OUT staleness interval,
	OUT last_replayed_commit timestamptz, OUT bound interval,
	OUT basis text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pixl_replica_status'
	LANGUAGE C VOLATILE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION @extschema@.pixl_replica_status() IS
	'Whether this node is a hot standby, how stale its view of the primary may be, and the bound past which verification answers 503 stale';


CREATE OR REPLACE FUNCTION @extschema@.pixl_ingest_usage(node_id integer,
	incarnation bigint, seq bigint, share real, node_name text, batch bytea)
	RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_ingest_usage'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION @extschema@.pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) IS
	'Applies a batch of usage shipped by a hot standby, at most once: applied or duplicate (grant it to the role the standbys connect as)';


-- Forgets a standby, so that a rebuilt one (a new incarnation) may take its
-- node id.  The forgotten incarnation is retired for ever.  Replication
-- operators only, for the calling role and for the caller (a wrapper with
-- a caller ticket, as in code/20_store_admins.sql).
CREATE OR REPLACE FUNCTION @extschema@.pixl_replica_reset_node_impl(caller_ticket bigint, node_id integer)
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

CREATE OR REPLACE FUNCTION @extschema@.pixl_replica_reset_node(node_id integer)
	RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT @extschema@.pixl_replica_reset_node_impl(@extschema@.pixl_caller_ticket(), $1);
$$;

COMMENT ON FUNCTION @extschema@.pixl_replica_reset_node(integer) IS
	'Forgets a standby that ships usage, so that another (or a rebuilt one) may use its node id; the forgotten incarnation is refused for ever';
