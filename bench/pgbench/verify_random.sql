-- pixl_verify_token on a uniformly random token of the 10,000, one statement:
-- the secret comes from bench_tokens (as in floor_b.sql) and goes straight
-- into the verification.  :scope comes from pgbench -D scope=products:read
-- (pgbench would substitute ':read' inside a quoted literal).
--
-- The first 100 transactions of each client (-D warm=1; pgbench variables
-- are per client) verify the 10,000 tokens once, 100 per transaction, so
-- that its backend's token cache is warm, as on an app server's long-lived
-- pooled connection.  run.sh measures the steady state after the warm-up
-- seconds only, and counts these events (9,900 more than transactions per
-- client) in the ingestion check.
\if :warm <= 100
SELECT count(*) FROM bench_tokens b, pixl_verify_token(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id > (:warm::int - 1) * 100 AND b.id <= :warm::int * 100;
\set warm :warm + 1
\else
\set id random(1, 10000)
SELECT v.* FROM bench_tokens b, pixl_verify_token(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id = :id;
\endif
