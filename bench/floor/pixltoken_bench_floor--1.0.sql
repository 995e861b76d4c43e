-- pixltoken_bench_floor: the call-shape floor of bench/run.sh.
--
-- Two C functions with exactly the argument list, result row, volatility,
-- strictness, SECURITY DEFINER, SET clauses, parallel safety and row
-- estimate of the pixl_verify_request installed in
-- this database (read from the catalog at CREATE EXTENSION time, so the
-- floor follows 1.0's and 1.1's shapes alike):
--   pixl_bench_floor(...)         returns one row (status 200) and does nothing else;
--   pixl_bench_floor_lookup(...)  also does what a warm verification must:
--                                 SHA-256 of the token and one probe of a
--                                 backend-local hash table keyed by it.
\echo Use "CREATE EXTENSION pixltoken_bench_floor" to load this file. \quit

DO $floor$
DECLARE
	f		oid;
	n		int;
	v_sql	text;
	fname	text;
BEGIN
	SELECT count(*), min(p.oid) INTO n, f
	  FROM pg_catalog.pg_proc p
	  JOIN pg_catalog.pg_depend d
		ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e'
	  JOIN pg_catalog.pg_extension e
		ON d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = e.oid
	 WHERE e.extname = 'pixltoken' AND p.proname = 'pixl_verify_request' AND p.pronargs = 6;
	IF n <> 1 THEN
		RAISE EXCEPTION 'pixltoken_bench_floor: expected one pixl_verify_request with 6 arguments in extension pixltoken, found %', n;
	END IF;
	FOREACH fname IN ARRAY ARRAY['pixl_bench_floor', 'pixl_bench_floor_lookup']
	LOOP
		-- everything PostgreSQL does around the call: strictness, SECURITY
		-- DEFINER and SET clauses (a per-call GUC save/restore) are copied too
		SELECT pg_catalog.format(
				   'CREATE FUNCTION %I(%s) RETURNS %s AS %L, %L LANGUAGE C %s %s %s PARALLEL %s ROWS %s%s',
				   fname,
				   pg_catalog.pg_get_function_arguments(p.oid),
				   pg_catalog.pg_get_function_result(p.oid),
				   'MODULE_PATHNAME', fname,
				   CASE p.provolatile WHEN 'v' THEN 'VOLATILE' WHEN 's' THEN 'STABLE' ELSE 'IMMUTABLE' END,
				   CASE WHEN p.proisstrict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END,
				   CASE WHEN p.prosecdef THEN 'SECURITY DEFINER' ELSE 'SECURITY INVOKER' END,
				   CASE p.proparallel WHEN 'u' THEN 'UNSAFE' WHEN 'r' THEN 'RESTRICTED' ELSE 'SAFE' END,
				   p.prorows,
				   -- the SET lines as pg_get_functiondef prints them (it quotes
				   -- list settings such as search_path element by element)
				   (SELECT pg_catalog.string_agg(l, '')
					  FROM pg_catalog.regexp_split_to_table(pg_catalog.pg_get_functiondef(p.oid), E'\n') AS l
					 WHERE l ~ '^ SET '))
		  INTO v_sql
		  FROM pg_catalog.pg_proc p WHERE p.oid = f;
		RAISE NOTICE '%', v_sql;
		EXECUTE v_sql;
	END LOOP;
END
$floor$;
