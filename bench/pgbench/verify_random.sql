-- pixl_verify_token on a uniformly random token of the 10,000, one statement:
-- the secret comes from bench_tokens (as in floor_b.sql) and goes straight
-- into the verification.  :scope comes from pgbench -D scope=products:read
-- (pgbench would substitute ':read' inside a quoted literal).
\set id random(1, 10000)
SELECT v.* FROM bench_tokens b, pixl_verify_token(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id = :id;
