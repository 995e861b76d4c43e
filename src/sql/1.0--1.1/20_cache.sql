
------------------------------------------------------------------------------
-- Token cache: per-token invalidation (issue #8.6; src/token_cache.c,
-- src/token_inval.c).  1.0's statement triggers emptied every backend's
-- whole cache on any change; row triggers now name what changed (the old
-- row's secret hashes, store or plan), published to every backend at
-- commit.  TRUNCATE still empties the database's caches.
------------------------------------------------------------------------------

DROP TRIGGER pixl_token_registry_invalidate ON @extschema@.pixl_token_registry;
DROP TRIGGER pixl_stores_invalidate ON @extschema@.pixl_stores;
DROP TRIGGER pixl_plans_invalidate ON @extschema@.pixl_plans;
-- (its C symbol stays, for a 1.0 schema running on this library)
DROP FUNCTION pixl_invalidate_token_cache();

CREATE FUNCTION pixl_token_cache_row_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'pixl_token_cache_row_changed'
	LANGUAGE C;
REVOKE ALL ON FUNCTION pixl_token_cache_row_changed() FROM PUBLIC;

CREATE TRIGGER pixl_token_registry_invalidate
	AFTER INSERT OR UPDATE OR DELETE ON @extschema@.pixl_token_registry
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('token');
CREATE TRIGGER pixl_token_registry_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_token_registry
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();
CREATE TRIGGER pixl_stores_invalidate
	AFTER UPDATE OR DELETE ON @extschema@.pixl_stores
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('store');
CREATE TRIGGER pixl_stores_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_stores
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();
CREATE TRIGGER pixl_plans_invalidate
	AFTER UPDATE OR DELETE ON @extschema@.pixl_plans
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('plan');
CREATE TRIGGER pixl_plans_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_plans
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();

-- The calling backend's token cache: hits and misses since the backend
-- started, entries evicted (by a change or to make room), whole flushes,
-- entries held, and the shared invalidation generation.  For monitoring and
-- for the tests of per-token eviction.
CREATE FUNCTION pixl_cache_stats(OUT hits bigint, OUT misses bigint,
								 OUT evictions bigint, OUT flushes bigint,
								 OUT entries bigint, OUT generation bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pixl_cache_stats'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pixl_cache_stats() IS
	'This backend''s token cache: hits, misses, evictions, flushes, entries, invalidation generation';
REVOKE ALL ON FUNCTION pixl_cache_stats() FROM PUBLIC;
