-- Run beside verify_random.sql by run.sh: one other token (bench_tokens
-- id -1, :churntok) is updated every 100 ms, as an admin UI or a plan
-- change would; each update commits a change every verifying backend must
-- see.  The rate reached is printed in results.md.
\set n random(1, 1000000000)
SELECT pixl_update_token(:churntok, name => 'churn ' || :n::text);
\sleep 100 ms
