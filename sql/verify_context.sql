-- RLS context: after a 200, pixl_current_token() and pixl_current_store()
-- hold the verified token and store for the rest of the transaction; a
-- failed verification, the end of the transaction, an aborted savepoint or
-- a SET leaves nothing behind.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pixltoken;
RESET client_min_messages;

SELECT token_id AS ida, token AS toka FROM pixl_create_token('ctx-a', 'Ctx A', ARRAY['orders:read']) \gset
SELECT token_id AS idb, token AS tokb FROM pixl_create_token('ctx-b', 'Ctx B', ARRAY['orders:read']) \gset

-- an app table with a policy on the verified store
CREATE TABLE ctx_orders (store_id text, item text);
INSERT INTO ctx_orders VALUES ('ctx-a', 'apple'), ('ctx-a', 'avocado'), ('ctx-b', 'banana');
ALTER TABLE ctx_orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY ctx_orders_store ON ctx_orders USING (store_id = pixl_current_store());
CREATE ROLE ctx_app;
GRANT SELECT ON ctx_orders TO ctx_app;
GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) TO ctx_app;
SET ROLE ctx_app;

-- nothing verified yet
SELECT pixl_current_token() IS NULL AS no_token, pixl_current_store() IS NULL AS no_store,
	   count(*) AS visible FROM ctx_orders;

BEGIN;
SELECT status FROM pixl_verify_token(:'toka', 'orders:read');
SELECT pixl_current_token() = :'ida' AS token_a, pixl_current_store() AS store;
SELECT item FROM ctx_orders ORDER BY item;
-- another token in the same transaction replaces it
SELECT status FROM pixl_verify_token(:'tokb');
SELECT pixl_current_store() AS store, string_agg(item, ',') AS items FROM ctx_orders;
-- a failed verification clears it
SELECT status, reason FROM pixl_verify_token(:'tokb', 'orders:write');
SELECT pixl_current_token() IS NULL AS no_token, count(*) AS visible FROM ctx_orders;
SELECT status FROM pixl_verify_token(:'toka');
COMMIT;
-- a new transaction starts with nothing
SELECT pixl_current_store() IS NULL AS no_store, count(*) AS visible FROM ctx_orders;

-- an aborted savepoint after a 200 clears it (fail closed)
BEGIN;
SELECT status FROM pixl_verify_token(:'toka');
SAVEPOINT s;
SELECT 1 / 0;
ROLLBACK TO SAVEPOINT s;
SELECT pixl_current_store() IS NULL AS no_store, count(*) AS visible FROM ctx_orders;
ROLLBACK;

-- a rolled-back transaction leaves nothing either
BEGIN;
SELECT status FROM pixl_verify_token(:'tokb');
ROLLBACK;
SELECT pixl_current_store() IS NULL AS no_store;

-- nothing a client can set reaches it
BEGIN;
SET LOCAL pixltoken.current_store = 'ctx-a';
ROLLBACK;
BEGIN;
SELECT set_config('pixl.current_store', 'ctx-a', true) IS NOT NULL AS set;
SELECT pixl_current_store() IS NULL AS no_store, count(*) AS visible FROM ctx_orders;
COMMIT;

-- 401 for a revoked token: nothing
RESET ROLE;
SELECT pixl_revoke_token(:'idb');
SET ROLE ctx_app;
BEGIN;
SELECT status, reason FROM pixl_verify_token(:'tokb');
SELECT pixl_current_store() IS NULL AS no_store, count(*) AS visible FROM ctx_orders;
COMMIT;

RESET ROLE;
DROP TABLE ctx_orders;
REVOKE EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) FROM ctx_app;
DROP ROLE ctx_app;
