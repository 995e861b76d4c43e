-- pixltoken bench population, loaded by bench/run.sh into the bench database.
--
-- 10,000 tokens made with pixl_create_token (as a store admin would), their
-- secrets kept in bench_tokens so that pgbench can pick one by :id.  The
-- random-token verify script reads bench_tokens in the same statement as the
-- verification, and its floor (floor B) is that same read alone, so the
-- lookup is paid on both sides of the ratio.
--
-- Shape as the plain-SQL baseline: store 'store_' || ((id-1) % 1000 + 1);
-- even ids hold {products:write} (write implies read), odd ids
-- {products:read,orders:read}; rate limit 1000/min, the registry's maximum
-- (its CHECK allows 1..1000).  At ~60k calls/s spread over 10,000 tokens
-- each token sees ~360 calls a minute: the random runs never trip the limit
-- (run.sh checks that they all answer 200).
--
-- id 0 is the hot token, shared by all clients in the hot run, alone in
-- store 'store_hot'.  Its 1000/min limit *will* trip: run.sh reports how
-- many hot answers were 200 and how many 429 (see README.md).
--
-- id -1 is the churn token, alone in store 'store_churn': updated every
-- 100 ms (pgbench/churn.sql) while the random-token verification runs.
--
-- In parts (psql -v; without them, everything at once): run.sh first loads
-- `-v last_id=1000` (the extension, the stores, tokens 1..1000) and starts
-- its exactness workload on those at once, as an app would right after
-- CREATE EXTENSION; later `-v first_id=1001` (tokens 1001..10000, the hot
-- and the churn token).
\set ON_ERROR_STOP on
\if :{?first_id}
\else
\set first_id 1
\endif
\if :{?last_id}
\else
\set last_id 10000
\endif
SELECT (:first_id = 1) AS first_part, (:last_id >= 10000) AS last_part \gset

\if :first_part
CREATE EXTENSION pixltoken;

-- Stores on the plan whose maximum is 1000/min, so rate_limit => 1000 is valid.
SELECT count(pixl_set_store_plan('store_' || s, 'enterprise')) AS stores
  FROM generate_series(1, 1000) AS s;
SELECT pixl_set_store_plan('store_hot', 'enterprise');
SELECT pixl_set_store_plan('store_churn', 'enterprise');

CREATE TABLE bench_tokens (
    id       int  PRIMARY KEY,
    tok      text NOT NULL,
    store_id text NOT NULL,
    token_id text NOT NULL
);
\endif

INSERT INTO bench_tokens (id, tok, store_id, token_id)
SELECT i, t.token, 'store_' || ((i - 1) % 1000 + 1), t.token_id
  FROM generate_series(:first_id, :last_id) AS i,
       LATERAL pixl_create_token(
           store_id   => 'store_' || ((i - 1) % 1000 + 1),
           name       => 'bench ' || i,
           scopes     => CASE WHEN i % 2 = 0 THEN ARRAY['products:write']
                              ELSE ARRAY['products:read', 'orders:read'] END,
           rate_limit => 1000) AS t;

\if :last_part
INSERT INTO bench_tokens (id, tok, store_id, token_id)
SELECT 0, t.token, 'store_hot', t.token_id
  FROM pixl_create_token(store_id => 'store_hot', name => 'bench hot',
                         scopes => ARRAY['products:read'], rate_limit => 1000) AS t;

INSERT INTO bench_tokens (id, tok, store_id, token_id)
SELECT -1, t.token, 'store_churn', t.token_id
  FROM pixl_create_token(store_id => 'store_churn', name => 'bench churn',
                         scopes => ARRAY['products:read'], rate_limit => 1000) AS t;
\endif

ANALYZE bench_tokens;
