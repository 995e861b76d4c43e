-- Floor B: the same bench_tokens lookup that verify_random.sql does, alone.
-- verify_random.sql is divided by this, so the lookup is not counted as
-- verification cost (nor hidden from it).
\set id random(1, 10000)
SELECT tok FROM bench_tokens WHERE id = :id;
