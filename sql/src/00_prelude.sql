/* pixltoken 1.0 — install script, assembled from sql/src/ by the Makefile. */

\echo Use "CREATE EXTENSION pixltoken" to load this file. \quit

-- Fails with a hint when the library is not in shared_preload_libraries,
-- so CREATE EXTENSION stops before creating anything half-usable.
CREATE FUNCTION pixl_assert_preloaded() RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_assert_preloaded'
	LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION pixl_assert_preloaded() FROM PUBLIC;
SELECT @extschema@.pixl_assert_preloaded();
