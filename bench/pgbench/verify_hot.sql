-- pixl_verify_token with every client on the one hot token (bench_tokens id 0).
-- The secret and store are pgbench -D variables (:hottok, :hotstore), sent as
-- parameters of the prepared statement as an app server would: no lookup, so
-- this is divided by floor A (SELECT 1).
SELECT * FROM pixl_verify_token(:hottok, :scope, :hotstore, 'GET', '/v1/products', '203.0.113.7');
