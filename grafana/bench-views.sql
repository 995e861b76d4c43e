-- The timed queries of grafana/bench-views.sh.
CREATE FUNCTION pg_temp.t(q text, runs int DEFAULT 7) RETURNS text LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; ms float8[] := '{}'; n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM (%s) s', q) INTO n;
	FOR i IN 1..runs LOOP
		t0 := clock_timestamp();
		EXECUTE format('SELECT count(*) FROM (%s) s', q) INTO n;
		ms := ms || extract(epoch FROM clock_timestamp() - t0) * 1000;
	END LOOP;
	RETURN format('%s ms (%s rows)', round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY m) FROM unnest(ms) m)::numeric, 1), n);
END $$;
\pset format unaligned
\pset fieldsep ' | '
\pset tuples_only on
SELECT '| query | median |';
SELECT '|---|---:|';
SELECT '| ' || d || ' | ' || pg_temp.t(q) || ' |' FROM (VALUES
 ('one store, last 24 h, per hour (by_hour)',
  $$SELECT bucket, sum(requests), sum(errors) FROM pixl_usage_by_hour WHERE store_id = 'store_7' AND bucket >= now() - interval '24 hours' GROUP BY 1$$),
 ('one store, last 7 days, per hour (by_hour)',
  $$SELECT bucket, sum(requests), sum(errors) FROM pixl_usage_by_hour WHERE store_id = 'store_7' AND bucket >= now() - interval '7 days' GROUP BY 1$$),
 ('one store, 90 days, per day (by_day)',
  $$SELECT bucket, sum(requests), sum(errors) FROM pixl_usage_by_day WHERE store_id = 'store_7' GROUP BY 1$$),
 ('the busy token''s store, 90 days, per endpoint (by_day)',
  $$SELECT method, endpoint, sum(requests), sum(response_ms_sum) / sum(response_ms_count) FROM pixl_usage_by_day WHERE store_id = 'store_1' GROUP BY 1, 2$$),
 ('all stores, last 24 h, per hour (by_hour)',
  $$SELECT bucket, sum(requests), sum(errors) FROM pixl_usage_by_hour WHERE bucket >= now() - interval '24 hours' GROUP BY 1$$),
 ('all stores, last 7 days, top tokens (by_hour)',
  $$SELECT token_name, sum(requests) FROM pixl_usage_by_hour WHERE bucket >= now() - interval '7 days' GROUP BY 1 ORDER BY 2 DESC LIMIT 50$$),
 ('all stores, 30 days, per store and day (by_store)',
  $$SELECT * FROM pixl_usage_by_store WHERE bucket >= now() - interval '30 days'$$),
 ('all stores, 90 days, per day (by_day)',
  $$SELECT bucket, sum(requests) FROM pixl_usage_by_day GROUP BY 1$$)
) v(d, q);
