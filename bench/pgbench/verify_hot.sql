-- pixl_verify_request (1.1's entry point) with every client on the one hot token (bench_tokens
-- id 0, limit 1000/min: after the first 1000 calls of a minute every answer
-- is a 429).  The secret and store are pgbench -D variables (:hottok,
-- :hotstore), sent as parameters of the prepared statement as an app server
-- would.  ÷ floor_hot.sql.  (:scope comes from -D scope=products:read:
-- pgbench would substitute ':read' inside a quoted literal.)
SELECT status FROM pixl_verify_request(:hottok, :scope, :hotstore, 'GET', '/v1/products', '203.0.113.7');
