-- The HTTP form (pixl_verify_token_http, when installed) on the hot token:
-- every column, as an app copying the header values and the problem body
-- would read them.  ÷ verify_hot.sql.
SELECT v.* FROM pixl_verify_token_http(:hottok, :scope, :hotstore, 'GET', '/v1/products', '203.0.113.7') v;
