-- Usage batches made by hand, as a standby's shipper (src/writer/replica_batch.c)
-- makes them, for the tests of pixl_ingest_usage: a header, then records
-- of 360 bytes, then counts of 1424 bytes, then an int64 (lost), in the in-memory layout of a
-- 64-bit little-endian build (src/usage/usage_event.h, src/usage/usage_aggregate.h).
-- sql/replica_ingest.sql checks these sizes against the build's own first.
-- pg_temp.batch_1_1() makes the same batch in 1.1's layout (version 2:
-- records of 344 bytes and counts of 1400, without cost, charged and
-- exposure); pg_temp.batch_no_scopes() in the layout of version 3 (1.2 in
-- development: records of 352 bytes, without exposure, and counts of 1416,
-- without scopes_used).
-- Included with \i; pg_temp functions, so one session.

-- little-endian integers and doubles
CREATE FUNCTION pg_temp.le(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT string_agg(substr(b, i, 1), ''::bytea ORDER BY i DESC)
		FROM generate_series(1, length(b)) i$$;
CREATE FUNCTION pg_temp.u32(v bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.le(int4send(v::int))$$;
CREATE FUNCTION pg_temp.i64(v bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.le(int8send(v))$$;
CREATE FUNCTION pg_temp.f64(v float8) RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.le(float8send(v))$$;
CREATE FUNCTION pg_temp.zeros(n int) RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT decode(repeat('00', n), 'hex')$$;
-- s padded with zero bytes to n bytes (terminated if shorter than n)
CREATE FUNCTION pg_temp.str(s bytea, n int) RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT s || pg_temp.zeros(n - length(s))$$;
-- a timestamptz as PostgreSQL keeps it: microseconds since 2000-01-01 UTC
CREATE FUNCTION pg_temp.us(t timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE AS
	$$SELECT (extract(epoch FROM t) * 1000000)::bigint - 946684800000000$$;

-- a batch header: magic, version, record size, count size, records, counts
CREATE FUNCTION pg_temp.header(version int, rsize int, csize int, nrec int, ncount int)
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.u32(1347963970) || pg_temp.u32(version) || pg_temp.u32(rsize) ||
			 pg_temp.u32(csize) || pg_temp.u32(nrec) || pg_temp.u32(ncount)$$;

-- An event record (kind 1): request id = at * 16 + node, as a node makes it
-- (or rid when given); status; token id; method and endpoint (bytes);
-- cost and charged; exposure (0 none, 1 revoke, 2 notify: a token that
-- came over plain HTTP).
CREATE FUNCTION pg_temp.event(node int, at timestamptz, status int, token_id text,
							  method bytea, endpoint bytea, rid bigint DEFAULT NULL,
							  flag int DEFAULT 1, cost int DEFAULT 1, charged int DEFAULT 0,
							  exposure int DEFAULT 0)
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.u32(1) || pg_temp.zeros(4)
		  || pg_temp.i64(coalesce(rid, pg_temp.us(at) * 16 + node))
		  || pg_temp.i64(coalesce(rid / 16, pg_temp.us(at)))
		  || pg_temp.u32(0)							-- dbid
		  || substr(pg_temp.le(int2send(status::int2)), 1, 2)
		  || '\x00'::bytea || '\x00'::bytea			-- has_ip, previous_secret
		  || set_byte('\x00'::bytea, 0, flag)		-- counted
		  || pg_temp.str(convert_to(token_id, 'UTF8'), 20)
		  || pg_temp.str(method, 16) || pg_temp.str(endpoint, 256)
		  || pg_temp.zeros(18 + 1)					-- ip, padding
		  || pg_temp.u32(cost) || pg_temp.u32(charged)
		  || set_byte('\x00'::bytea, 0, exposure) || pg_temp.zeros(7)	-- exposure, padding
	$$;

-- A response record (kind 2) to request id rid.
CREATE FUNCTION pg_temp.response(rid bigint, status int, ms float8)
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.u32(2) || pg_temp.zeros(4)
		  || pg_temp.i64(rid) || pg_temp.i64(rid / 16) || pg_temp.u32(0)
		  || substr(pg_temp.le(int2send(status::int2)), 1, 2) || pg_temp.zeros(2)
		  || pg_temp.f64(ms) || pg_temp.zeros(352 - 32)$$;

-- A count: hour, token id, method, endpoint, requests, errors,
-- rate_limited, previous_secret_uses, last_used (NULL: none), and the
-- response counters (responses, response_errors_up, _down, response_us_sum),
-- and the latency histogram: lat[i] responses in bucket i - 1 (0..248,
-- src/usage/latency.h; uint32 counts, then 4 bytes of padding; pg_temp.lat()),
-- then cost (NULL: requests) and charged, then scopes_used (and 4 bytes
-- of padding).
CREATE FUNCTION pg_temp.count(hour timestamptz, token_id text, method bytea,
							  endpoint bytea, requests bigint, errors bigint DEFAULT 0,
							  rate_limited bigint DEFAULT 0, previous bigint DEFAULT 0,
							  last_used timestamptz DEFAULT NULL, last_used_us bigint DEFAULT NULL,
							  responses bigint DEFAULT 0, errors_up bigint DEFAULT 0,
							  errors_down bigint DEFAULT 0, us_sum bigint DEFAULT 0,
							  lat bigint[] DEFAULT '{}', cost bigint DEFAULT NULL,
							  charged bigint DEFAULT 0, scopes int DEFAULT 0)
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.u32(0) || pg_temp.zeros(4) || pg_temp.i64(pg_temp.us(hour))
		  || pg_temp.str(convert_to(token_id, 'UTF8'), 20)
		  || pg_temp.str(method, 16) || pg_temp.str(endpoint, 256)
		  || pg_temp.zeros(4 + 8)					-- padding, entry
		  || pg_temp.i64(requests) || pg_temp.i64(errors) || pg_temp.i64(rate_limited)
		  || pg_temp.i64(previous)
		  || pg_temp.i64(coalesce(last_used_us, pg_temp.us(last_used), 0))
		  || pg_temp.i64(0)
		  || pg_temp.i64(responses) || pg_temp.i64(errors_up) || pg_temp.i64(errors_down)
		  || pg_temp.i64(us_sum)
		  || (SELECT string_agg(pg_temp.le(int4send(coalesce(lat[b + 1], 0)::bit(32)::int)),
								''::bytea ORDER BY b)
				FROM generate_series(0, 248) AS b)
		  || pg_temp.zeros(4)
		  || pg_temp.i64(coalesce(cost, requests)) || pg_temp.i64(charged)
		  || pg_temp.u32(scopes) || pg_temp.zeros(4)$$;

-- The lat argument of pg_temp.count for these response times (ms).
CREATE FUNCTION pg_temp.lat(ms float8[]) RETURNS bigint[] LANGUAGE sql IMMUTABLE AS
	$$SELECT array_agg(coalesce(x.count, 0) ORDER BY b)
		FROM generate_series(0, 248) AS b
		LEFT JOIN (SELECT CASE WHEN k.lower_ms = 0 THEN 0
							   ELSE round(8 * log(2, k.lower_ms::numeric))::int + 33 END AS bucket,
						  k.count
					 FROM pixl_latency_buckets((SELECT pixl_latency_of(m) FROM unnest(ms) AS m)) k) x
		  ON x.bucket = b$$;

-- A batch of these records and counts, and what the node's crashes lost
-- since its previous batch (version 4's last field).
CREATE FUNCTION pg_temp.batch(records bytea[], counts bytea[] DEFAULT '{}', lost bigint DEFAULT 0)
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.header(4, 360, 1424, cardinality(records), cardinality(counts))
		  || coalesce((SELECT string_agg(r, ''::bytea ORDER BY i)
						 FROM unnest(records) WITH ORDINALITY AS u(r, i)), '')
		  || coalesce((SELECT string_agg(c, ''::bytea ORDER BY i)
						 FROM unnest(counts) WITH ORDINALITY AS u(c, i)), '')
		  || pg_temp.i64(lost)$$;

-- The same batch as a standby made it before scopes and exposures were
-- recorded (version 3, 1.2 in development): its records without their last
-- field, exposure (and its padding), its counts without theirs, scopes_used.
CREATE FUNCTION pg_temp.batch_no_scopes(records bytea[], counts bytea[] DEFAULT '{}')
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.header(3, 352, 1416, cardinality(records), cardinality(counts))
		  || coalesce((SELECT string_agg(substr(r, 1, 352), ''::bytea ORDER BY i)
						 FROM unnest(records) WITH ORDINALITY AS u(r, i)), '')
		  || coalesce((SELECT string_agg(substr(c, 1, 1416), ''::bytea ORDER BY i)
						 FROM unnest(counts) WITH ORDINALITY AS u(c, i)), '')$$;

-- The same batch as a standby of 1.1 made it (version 2): its records and
-- counts without their last fields, cost and charged (and exposure).
CREATE FUNCTION pg_temp.batch_1_1(records bytea[], counts bytea[] DEFAULT '{}')
	RETURNS bytea LANGUAGE sql IMMUTABLE AS
	$$SELECT pg_temp.header(2, 344, 1400, cardinality(records), cardinality(counts))
		  || coalesce((SELECT string_agg(substr(r, 1, 344), ''::bytea ORDER BY i)
						 FROM unnest(records) WITH ORDINALITY AS u(r, i)), '')
		  || coalesce((SELECT string_agg(substr(c, 1, 1400), ''::bytea ORDER BY i)
						 FROM unnest(counts) WITH ORDINALITY AS u(c, i)), '')$$;
