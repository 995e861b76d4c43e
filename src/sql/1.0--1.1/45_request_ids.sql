
------------------------------------------------------------------------------
-- 1.0's bigint request ids could be guessed: any caller could rewrite
-- another store's usage row with them, and JavaScript rounds them.  1.1's
-- pixl_verify_request hands out unforgeable text ids (40_verify.sql), and
-- pixl_verify_token, which keeps 1.0's result type for app servers written
-- against 1.0, hands out sealed bigint ids (src/request_id.c: a keyed
-- permutation, as unforgeable as the text form's MAC).  So 1.0's
-- pixl_log_response(bigint, ...) stays, for those app servers' reports
-- (single, or batched as "SELECT pixl_log_response(id, ...) FROM
-- unnest($1::bigint[], ...)"), now taking only sealed ids of this cluster
-- (PX032 otherwise) and counting each response once, as the text form
-- does.  CREATE OR REPLACE keeps its grants; whoever could report
-- responses before may do so with the text forms too; pixl_stats
-- (re-created with new columns by 30_usage.sql) keeps its grants too.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_log_response(request_id bigint, status int,
														 response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response_sealed'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pixl_log_response(bigint, int, double precision) IS
	'Reports the final HTTP status and response time of a request verified by pixl_verify_token (its sealed bigint id), once; counted in the rollups, and on its usage row if kept';
SELECT set_config('pixl_upgrade.acl_log', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_log_response(bigint, int, double precision)'::pg_catalog.regprocedure;

SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_log'), '')::aclitem[],
		'@extschema@.pixl_log_response(text, int, double precision)'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_log'), '')::aclitem[],
		'@extschema@.pixl_log_responses(text[], int[], double precision[])'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_stats'), '')::aclitem[],
		'@extschema@.pixl_stats()');
