-- The call-shape floor (bench/floor/): pixl_bench_floor() has
-- pixl_verify_request's exact signature and result row and does nothing.
-- Same arguments as verify_hot.sql, so verify_hot ÷ this is what
-- verification costs beyond PostgreSQL's own cost of such a call.
SELECT status FROM pixl_bench_floor(:hottok, :scope, :hotstore, 'GET', '/v1/products', '203.0.113.7');
