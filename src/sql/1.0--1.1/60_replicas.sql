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
