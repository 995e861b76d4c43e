-- Fails with a hint when the library is not in shared_preload_libraries,
-- so CREATE EXTENSION stops before creating anything half-usable.  First
-- of the install script (which runs this directory, then code/).
CREATE FUNCTION pixl_assert_preloaded() RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_assert_preloaded'
	LANGUAGE C VOLATILE PARALLEL SAFE;

SELECT @extschema@.pixl_assert_preloaded();
