-- An app that verifies every request and reports every response, as the
-- examples do (examples/python/pixl_auth.py, examples/node/src/pixl-auth.js):
-- pixl_verify_request, then pixl_log_response with the request id it returned.
-- Every response is a 500 in 25 ms, so the analytics must say error rate
-- 100.0 and 25 ms for every token (run.sh's exactness check).  One
-- verification per transaction: run.sh counts them (pgbench's transactions,
-- and pg_stat_user_functions with track_functions = all for these sessions).
-- A random token of the first :ntok (1,000 or 10,000) of bench_tokens; the
-- secret comes from bench_tokens in the same statement (pgbench cannot hold
-- 10,000 secrets).
\set id random(1, :ntok)
SELECT pixl_log_response(v.request_id, 500, 25) FROM bench_tokens b, pixl_verify_request(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id = :id;
