-- pixltoken dashboard benchmark: population and helpers, loaded by
-- bench/dashboards.sh (psql variables :events, :busy_share, :days, :batch).
--
-- 1,000 tokens (100 stores x 10), made with pixl_create_token.  Token n = 1
-- is the busy one: it gets :busy_share of all events, the other 999 share
-- the rest uniformly.  Events are spread uniformly over the last :days days
-- and loaded in time order, :batch at a time, through pixl_backfill_usage()
-- (raw rows, hourly rollups and last_used_at, as the worker writes them).
-- Event shape: 12 (method, endpoint) pairs with a skewed popularity, ~95%
-- 2xx, ~4% 4xx (incl. 403 and 429), ~1% 500, response times around 80 ms.
\set ON_ERROR_STOP on

CREATE EXTENSION pixltoken;

CREATE TABLE dash_tokens (n int PRIMARY KEY, token_id text NOT NULL);
INSERT INTO dash_tokens
SELECT i, t.token_id
  FROM generate_series(1, 1000) AS i,
       LATERAL pixl_create_token('store_' || ((i - 1) % 100 + 1), 'dash ' || i,
                                 ARRAY['products:read', 'orders:read']) AS t;

CREATE TABLE dash_endpoints (k int PRIMARY KEY, method text NOT NULL, endpoint text NOT NULL);
INSERT INTO dash_endpoints VALUES
    (0, 'GET', '/v1/products'), (1, 'GET', '/v1/orders'), (2, 'GET', '/v1/products/{id}'),
    (3, 'POST', '/v1/orders'), (4, 'GET', '/v1/customers'), (5, 'PUT', '/v1/products/{id}'),
    (6, 'GET', '/v1/orders/{id}'), (7, 'POST', '/v1/products'), (8, 'GET', '/v1/analytics'),
    (9, 'DELETE', '/v1/products/{id}'), (10, 'GET', '/v1/webhooks'), (11, 'POST', '/v1/webhooks');

-- One batch of events: the b-th of nb time slices of [t0, t1).
CREATE FUNCTION dash_load_batch(b int, nb int, n int, t0 timestamptz, t1 timestamptz, busy float8)
    RETURNS bigint LANGUAGE sql AS $$
    WITH e AS (
        SELECT t0 + (t1 - t0) * ((b + random()) / nb) AS at,
               CASE WHEN random() < busy THEN 1 ELSE 2 + floor(random() * 999)::int END AS tn,
               floor(12 * random() ^ 2)::int AS k,
               random() AS r,
               -ln(1 - random()) * 80 AS ms
          FROM generate_series(1, n)
    ), x AS (
        SELECT e.at, t.token_id, p.method, p.endpoint,
               CASE WHEN e.r < 0.95 THEN 200 WHEN e.r < 0.97 THEN 404 WHEN e.r < 0.98 THEN 422
                    WHEN e.r < 0.985 THEN 403 WHEN e.r < 0.99 THEN 429 ELSE 500 END AS status,
               round(e.ms::numeric, 3)::float8 AS ms,
               ('198.51.100.' || (e.tn % 250 + 1))::inet AS ip
          FROM e JOIN dash_tokens t ON t.n = e.tn JOIN dash_endpoints p ON p.k = e.k
    )
    SELECT pixl_backfill_usage(array_agg(token_id ORDER BY at), array_agg(at ORDER BY at),
                               array_agg(method ORDER BY at), array_agg(endpoint ORDER BY at),
                               array_agg(status ORDER BY at), array_agg(ms ORDER BY at),
                               array_agg(ip ORDER BY at))
      FROM x;
$$;

-- Median / min of `runs` executions of a query, server side (EXECUTE, so
-- planning is included, as for a dashboard's call), after one warm-up.
CREATE FUNCTION dash_time(q text, runs int, OUT median_ms float8, OUT min_ms float8, OUT nrows bigint)
    LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; ms float8[] := '{}';
BEGIN
    -- s::text makes every column be computed: a bare count(*) lets the
    -- planner drop an inlined one-row aggregate entirely
    EXECUTE format('SELECT count(*) FROM (%s) s WHERE s::text IS NOT NULL', q) INTO nrows;
    FOR i IN 1..runs LOOP
        t0 := clock_timestamp();
        EXECUTE format('SELECT count(*) FROM (%s) s WHERE s::text IS NOT NULL', q) INTO nrows;
        ms := ms || extract(epoch FROM clock_timestamp() - t0) * 1000;
    END LOOP;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY m), min(m) INTO median_ms, min_ms FROM unnest(ms) m;
END $$;

-- The same answers computed from raw events only (what a user without
-- rollups would write), for the comparison and the equality check.
CREATE FUNCTION dash_since(period text) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE period WHEN 'today' THEN now() - interval '24 hours' WHEN '7d' THEN now() - interval '7 days'
                       WHEN '30d' THEN now() - interval '30 days' WHEN 'year' THEN now() - interval '365 days'
                       ELSE '-infinity'::timestamptz END $$;

CREATE FUNCTION raw_summary(tok text, period text)
    RETURNS TABLE (total_requests bigint, requests_today bigint, avg_response_ms float8, error_rate float8)
    LANGUAGE sql STABLE AS $$
    SELECT count(*),
           (SELECT count(*) FROM pixl_usage_events d WHERE d.token_id = tok AND d.at >= now() - interval '24 hours'),
           avg(e.response_ms),
           100.0::float8 * count(*) FILTER (WHERE e.status >= 400) / nullif(count(*), 0)
      FROM pixl_usage_events e WHERE e.token_id = tok AND e.at >= dash_since(period) $$;

CREATE FUNCTION raw_timeline(tok text, period text)
    RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint)
    LANGUAGE sql STABLE AS $$
    WITH u AS (SELECT CASE WHEN period IN ('today', '7d') THEN 'hour' WHEN period IN ('30d', 'year') THEN 'day'
                           ELSE 'month' END AS unit),
         f AS (SELECT date_trunc(u.unit, CASE WHEN period = 'all'
                        THEN least((SELECT created_at FROM pixl_token_registry WHERE token_id = tok),
                                   (SELECT min(at) FROM pixl_usage_events WHERE token_id = tok))
                        ELSE dash_since(period) END) AS first, u.unit FROM u),
         c AS (SELECT greatest(date_trunc(f.unit, e.at), f.first) AS b, count(*) AS n,
                      count(*) FILTER (WHERE e.status >= 400) AS err
                 FROM pixl_usage_events e, f
                WHERE e.token_id = tok AND e.at >= dash_since(period) GROUP BY 1)
    SELECT g.b, coalesce(c.n, 0), coalesce(c.err, 0)
      FROM f, generate_series(f.first, date_trunc(f.unit, now()), ('1 ' || f.unit)::interval) AS g(b)
      LEFT JOIN c ON c.b = g.b ORDER BY 1 $$;

CREATE FUNCTION raw_endpoints(tok text, period text)
    RETURNS TABLE (method text, endpoint text, requests bigint, success_rate float8, avg_response_ms float8)
    LANGUAGE sql STABLE AS $$
    SELECT e.method, e.endpoint, count(*),
           100.0::float8 * count(*) FILTER (WHERE e.status < 400) / count(*), avg(e.response_ms)
      FROM pixl_usage_events e WHERE e.token_id = tok AND e.at >= dash_since(period)
     GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 $$;
