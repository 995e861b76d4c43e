-- THROWAWAY SHIM — NOT PART OF THE EXTENSION.  Remove this file (and the
-- lines of test/examples.sh and examples/node/bench/run.sh that run it: grep
-- THROWAWAY) once verify's pixl_verify_token_http has landed; from then on
-- it creates nothing anyway.  It lets the examples run against the 1.1
-- interfaces the team fixed before they all exist.  Run as a superuser
-- after CREATE EXTENSION and examples/roles.sql (it grants what it creates
-- to app_server itself).
--
-- While pixl_verify_token is 1.0's, its request ids are bigints: the shim
-- hands them out as decimal text.  The pipeline's 1.1 text-id
-- pixl_log_response(s) would refuse decimal ids, so app_server gets shim
-- versions of both in a schema of its own, first on its search_path, that
-- pass the ids to 1.0's pixl_log_response(bigint).
SELECT to_regprocedure('pixl_verify_token_http(text,text,text,text,text,inet)') IS NULL AS need_http
\gset
\if :need_http
\echo 'examples: SHIM pixl_verify_token_http (the real one has not landed)'
CREATE FUNCTION pixl_verify_token_http(token text, scope text DEFAULT NULL,
		store_id text DEFAULT NULL, method text DEFAULT NULL,
		endpoint text DEFAULT NULL, ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   www_authenticate text, ratelimit_policy text, ratelimit text,
				   retry_after text, problem jsonb)
	LANGUAGE sql VOLATILE
	SET search_path = public, pg_catalog
AS $$
	SELECT v.status, v.reason, v.token_id, v.store_id, v.mode, v.scopes,
		   v.rate_limit, v.remaining, v.reset_at, v.retry_after_ms,
		   v.request_id::text,
		   CASE WHEN v.reason = 'missing' THEN 'Bearer realm="api"'
				WHEN v.status = 401 THEN 'Bearer realm="api", error="invalid_token"'
				WHEN v.reason = 'insufficient_scope'
				THEN format('Bearer realm="api", error="insufficient_scope", scope="%s"', $2) END,
		   CASE WHEN v.rate_limit IS NOT NULL THEN format('"default";q=%s;w=60', v.rate_limit) END,
		   CASE WHEN v.rate_limit IS NOT NULL
				THEN format('"default";r=%s;t=%s', v.remaining,
							greatest(0, ceil(extract(epoch FROM v.reset_at - clock_timestamp())))::int) END,
		   CASE WHEN v.status = 429 THEN ceil(v.retry_after_ms / 1000.0)::int::text END,
		   CASE WHEN v.status <> 200 THEN jsonb_build_object(
				'type', 'about:blank',
				'title', CASE v.status WHEN 401 THEN 'Unauthorized' WHEN 403 THEN 'Forbidden'
									   ELSE 'Too Many Requests' END,
				'status', v.status, 'detail', v.reason) END
	  FROM pixl_verify_token($1, $2, $3, $4, $5, $6) v
$$;
REVOKE ALL ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) TO app_server;

\echo 'examples: SHIM pixl_log_response(text, ...), pixl_log_responses for decimal ids (schema pixl_shim)'
CREATE SCHEMA pixl_shim;
CREATE FUNCTION pixl_shim.pixl_log_response(request_id text, status int, response_ms double precision)
	RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_catalog
AS $$ SELECT public.pixl_log_response($1::bigint, $2, $3) $$;
CREATE FUNCTION pixl_shim.pixl_log_responses(request_ids text[], statuses int[], response_ms double precision[])
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_catalog
AS $$
DECLARE r record; n bigint := 0;
BEGIN
	FOR r IN SELECT * FROM unnest(request_ids, statuses, response_ms) AS u(id, st, ms) LOOP
		PERFORM public.pixl_log_response(r.id::bigint, r.st, r.ms);
		n := n + 1;
	END LOOP;
	RETURN n;
END $$;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pixl_shim FROM PUBLIC;
GRANT USAGE ON SCHEMA pixl_shim TO app_server;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pixl_shim TO app_server;
SELECT format('ALTER ROLE app_server IN DATABASE %I SET search_path = pixl_shim, "$user", public',
			  current_database()) \gexec
\endif
