
------------------------------------------------------------------------------
-- 1.0's bigint request ids go (issue #7 item 4): any caller could guess
-- them and rewrite another store's usage row, and JavaScript rounds them.
-- pixl_verify_token 1.1 hands out unforgeable text ids (40_verify.sql), so
-- nothing in 1.1 makes a bigint id any more.  Whoever could report
-- responses before may do so with the text forms; pixl_stats (re-created
-- with new columns by 30_usage.sql) keeps its grants too.  The C symbol
-- pixl_log_response stays for databases not yet updated from 1.0.
------------------------------------------------------------------------------
SELECT set_config('pixl_upgrade.acl_log', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_log_response(bigint, int, double precision)'::pg_catalog.regprocedure;
DROP FUNCTION @extschema@.pixl_log_response(bigint, int, double precision);

SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_log'), '')::aclitem[],
		'@extschema@.pixl_log_response(text, int, double precision)'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_log'), '')::aclitem[],
		'@extschema@.pixl_log_responses(text[], int[], double precision[])'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_stats'), '')::aclitem[],
		'@extschema@.pixl_stats()');
