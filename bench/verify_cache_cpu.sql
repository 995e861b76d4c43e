-- Server-side CPU cost of verification with a cold and a warm token cache
-- run in a fresh connection, as a superuser (it reads
-- /proc/<pid>/schedstat, the backend's CPU time in ns, which a loaded VM
-- disturbs far less than wall-clock time), in a database with a table
--   toks(n int, token text) of 10,000 tokens of a store on 'enterprise',
--   rate limit 1000 (see the setup below).
-- The cold pass is all cache misses; the difference cold - warm is the cost
-- of a miss.  Each run makes 60,000 verifications, 6 per token.
--
--   SELECT pixl_set_store_plan('bench', 'enterprise');
--   CREATE TABLE toks AS SELECT n, c.token_id, c.token FROM generate_series(1, 10000) n,
--       LATERAL pixl_create_token('bench', 'b' || n, ARRAY['orders:read'], rate_limit => 1000) c;
--   psql -X -q -f bench/verify_cache_cpu.sql
CREATE FUNCTION pg_temp.cpu_ns() RETURNS bigint LANGUAGE sql AS $$
	SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/schedstat'), ' ', 1)::bigint $$;
DO $$
DECLARE
	toks text[] := ARRAY(SELECT token FROM toks ORDER BY n);
	c bigint[] := '{}';
	s int;
BEGIN
	FOR pass IN 1 .. 6 LOOP
		c := c || pg_temp.cpu_ns();
		FOR i IN 1 .. 10000 LOOP
			SELECT v.status INTO s FROM pixl_verify_token(toks[i]) v;
		END LOOP;
	END LOOP;
	c := c || pg_temp.cpu_ns();
	RAISE NOTICE 'cpu per call: cold % us, warm % us',
		round((c[2] - c[1]) / 10000 / 1000.0, 2),
		round((c[7] - c[2]) / 50000 / 1000.0, 2);
END
$$;
