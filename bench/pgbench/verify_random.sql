-- pixl_verify_request (1.1's entry point) on a uniformly random token of the 10,000 (all answer
-- 200: 10,000 tokens at these rates stay far under 1000/min each).
-- ÷ floor_random.sql (warm, and with -C fresh connections).
-- The first 100 transactions of each client (-D warm=1; pgbench variables
-- are per client) make the same call for the 10,000 tokens once, 100 per
-- transaction, so that its backend is warm, as an app server's long-lived
-- pooled connection is.  run.sh measures after the warm-up seconds only.
-- With -C (fresh connections) run.sh passes -D warm=101: no warm-up.
-- The secret comes from bench_tokens in the same statement: pgbench cannot
-- hold 10,000 secrets, and the floor pays the same lookup.
\if :warm <= 100
SELECT count(*) FROM bench_tokens b, pixl_verify_request(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id > (:warm::int - 1) * 100 AND b.id <= :warm::int * 100;
\set warm :warm + 1
\else
\set id random(1, 10000)
SELECT v.status FROM bench_tokens b, pixl_verify_request(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id = :id;
\endif
