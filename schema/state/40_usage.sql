------------------------------------------------------------------------------
-- Usage: raw events, hourly rollups, maintenance, analytics
-- (the usage worker, src/usage_*.c, feeds these tables)
------------------------------------------------------------------------------

-- One row per counted verification (status 200, 403 or 429).  Partitioned
-- by day (UTC), partitions named pixl_usage_events_YYYYMMDD and created by
-- pixl_run_maintenance(); the default partition takes any event no dated
-- partition covers, so an event is never rejected.  request_id >>
-- pixl_node_id_bits() is the row's at (in microseconds since 2000-01-01),
-- which lets a late pixl_log_response() find its row's partition.
CREATE TABLE pixl_usage_events (
	at				timestamptz NOT NULL,
	request_id		bigint NOT NULL,
	token_id		text NOT NULL,
	store_id		text,
	method			text,
	endpoint		text,
	ip				inet,
	status			smallint NOT NULL,	-- final if reported, else verify_status
	verify_status	smallint NOT NULL,
	response_ms		double precision
) PARTITION BY RANGE (at);

-- Keys and indexes are per partition, not on the parent (an extension
-- member): pg_dump then restores dated partitions, which are not members,
-- with their own indexes and no clash with ones an ATTACH would create.
CREATE TABLE pixl_usage_events_default PARTITION OF pixl_usage_events
	(PRIMARY KEY (request_id, at)) DEFAULT;

CREATE INDEX pixl_usage_events_default_token_at ON pixl_usage_events_default (token_id, at);

COMMENT ON TABLE pixl_usage_events IS
	'Raw usage events, one per counted verification; daily partitions past pixltoken.usage_retention are dropped';


-- Hourly rollups (UTC hours), kept for ever.  method and endpoint are ''
-- when the verification gave none.  Maintained with every write of events
-- and responses, so they are as current as the raw events.
CREATE TABLE pixl_usage_hourly (
	token_id			text NOT NULL,
	bucket				timestamptz NOT NULL,
	method				text NOT NULL,
	endpoint			text NOT NULL,
	requests			bigint NOT NULL,
	errors				bigint NOT NULL,	-- final status >= 400
	response_ms_sum		double precision NOT NULL,
	response_ms_count	bigint NOT NULL,
	PRIMARY KEY (token_id, bucket, method, endpoint),
	latency				@extschema@.pixl_latency,	-- see pixl_usage_daily
	rate_limited		bigint NOT NULL DEFAULT 0,	-- see pixl_usage_daily
	cost				bigint NOT NULL DEFAULT 0,	-- see pixl_usage_daily
	charged				bigint NOT NULL DEFAULT 0,	-- see pixl_usage_daily
	scopes_used			integer NOT NULL DEFAULT 0	-- see pixl_usage_daily
);

COMMENT ON TABLE pixl_usage_hourly IS
	'Usage per token, UTC hour, method and endpoint; what the analytics read for hours not rolled up by day';

-- Lets maintenance read one day of rollups (rows arrive in time order, so a
-- BRIN index stays tight and costs ingestion next to nothing).
CREATE INDEX pixl_usage_hourly_bucket_brin ON pixl_usage_hourly USING brin (bucket);


-- Daily rollups (UTC days) of closed days, kept for ever: the sum of the
-- day's hourly rows.  A busy token has 24 times fewer rows here, so 30d,
-- year and all-time analytics read a few pages instead of thousands of
-- scattered hourly rows; the key includes the counters for index-only
-- scans.  pixl_run_maintenance() rolls up each day once it is over; events
-- and responses for days already rolled up (backfills, late responses) are
-- added here as well as to the hourly rollups.
CREATE TABLE pixl_usage_daily (
	token_id			text NOT NULL,
	bucket				timestamptz NOT NULL,	-- UTC midnight
	method				text NOT NULL,
	endpoint			text NOT NULL,
	requests			bigint NOT NULL,
	errors				bigint NOT NULL,	-- final status >= 400
	response_ms_sum		double precision NOT NULL,
	response_ms_count	bigint NOT NULL,
	PRIMARY KEY (token_id, bucket, method, endpoint)
		INCLUDE (requests, errors, response_ms_sum, response_ms_count),
	latency				@extschema@.pixl_latency,
	rate_limited		bigint NOT NULL DEFAULT 0,
	cost				bigint NOT NULL DEFAULT 0,
	charged				bigint NOT NULL DEFAULT 0,
	scopes_used			integer NOT NULL DEFAULT 0
);

-- The rollups' last columns came after 1.0 (an upgraded table has them at
-- the end, so a fresh one has them there too).  latency: the histogram of
-- the row's response times; NULL on rows with responses written before 1.1
-- (response_ms_count > 0): their quantiles are unknown, and such a row
-- never gets a histogram later (the rollup functions keep it NULL, so no
-- partial histogram passes for a whole one).  rate_limited: rejected
-- requests (verification status 429), for the dashboards; rows written by
-- 1.0 count none.  cost (1.2): the summed weight of the requests (a call
-- weighs 1 unless pixl_verify_token was given a cost; rows written before
-- 1.2 have 0, not their requests), and charged: what of it was charged to
-- the store's period allowance, net of refunds (the allowance counters are
-- rebuilt from it after a restart or crash).  scopes_used (1.2): the set
-- of scopes the row's admitted calls (status 200) required, one bit per
-- scope in the order of src/common/scopes.c (products:read = 1, ...,
-- settings:write = 1024), OR-ed, never summed; 0 on rows of calls that
-- named no scope, of calls that were refused, and on rows written before
-- 1.2 or by pixl_rollup_add (1.0's entry point, backfills), whose scopes
-- were not kept.

COMMENT ON TABLE pixl_usage_daily IS
	'Usage per token, UTC day, method and endpoint, for the days before pixl_usage_daily_state.rolled_up_until';


-- How far the daily rollups go: every day before rolled_up_until (a UTC
-- midnight) is in pixl_usage_daily, no later day is.  No row: nothing is
-- rolled up yet (the install script adds none, so that a restored dump's
-- row is the only one).  Changed only by maintenance, under the exclusive
-- advisory lock that writers of usage share (see pixl_usage_daily_lock).
CREATE TABLE pixl_usage_daily_state (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	rolled_up_until		timestamptz NOT NULL
);


-- Responses whose usage row was not found (yet): kept for an hour in case
-- their event is still on its way, then purged by maintenance.  A 401 has
-- a request id but no usage row, so its response ends here.
CREATE TABLE pixl_usage_unmatched_responses (
	request_id		bigint PRIMARY KEY,
	at				timestamptz NOT NULL,
	status			smallint NOT NULL,
	response_ms		double precision NOT NULL,
	received_at		timestamptz NOT NULL DEFAULT now()
);


-- Dated partitions are created later, outside the extension script, so
-- pg_dump dumps them (definition and rows) as ordinary tables; the members
-- below need marking to have their rows dumped.
SELECT pg_catalog.pg_extension_config_dump('pixl_usage_events_default', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_usage_hourly', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_usage_daily', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_usage_daily_state', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_usage_unmatched_responses', '');
------------------------------------------------------------------------------
-- The last calls of each token and final status (src/usage_recent.c):
-- what pixl_recent_calls shows when pixltoken.request_log = recent (the
-- default), PIXL_RECENT_CALLS (20) slots per (token, status) that the
-- worker overwrites in turn, so that the table follows tokens and
-- statuses, not requests.  A report that comes after its call was written
-- changes status and response_ms in place (the call keeps its slot).  No secret:
-- token ids and analytics keys only.
------------------------------------------------------------------------------
CREATE TABLE @extschema@.pixl_usage_recent (
	token_id		text NOT NULL,
	slot_status		smallint NOT NULL,	-- the status the call was kept under
	slot			smallint NOT NULL CHECK (slot >= 0 AND slot < 20),
	status			smallint NOT NULL,	-- final if reported, else verify_status
	at				timestamptz NOT NULL,
	request_id		bigint NOT NULL,
	method			text,
	endpoint		text,
	ip				inet,
	verify_status	smallint NOT NULL,
	response_ms		double precision,
	PRIMARY KEY (token_id, slot_status, slot)
) WITH (fillfactor = 70);	-- room for HOT updates of a slot

COMMENT ON TABLE @extschema@.pixl_usage_recent IS
	'The last 20 calls of each token and final status (pixltoken.request_log = recent), slots overwritten in turn';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.pixl_usage_recent', '');

-- Records or counts the worker could not write even one by one: kept with
-- their error (pixl_stats().dead_letters, last_error), purged after
-- pixltoken.usage_retention by maintenance.
CREATE TABLE @extschema@.pixl_usage_dead_letters (
	dead_letter_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	kind			text NOT NULL CHECK (kind IN ('event', 'response', 'count')),
	request_id		bigint,
	token_id		text,
	detail			jsonb NOT NULL,
	error			text NOT NULL
);

COMMENT ON TABLE @extschema@.pixl_usage_dead_letters IS
	'Usage records and counts the worker could not write, with the error';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.pixl_usage_dead_letters', '');


-- Held (EXCLUSIVE, NOWAIT) by a running pixl_run_maintenance(): runs never
-- overlap.  A table of the extension, not an advisory key: only its owner
-- (and superusers) can lock it, so no other role can turn maintenance off.
CREATE TABLE @extschema@.pixl_usage_maintenance_lock (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);


-- The counts of shared memory (usage_aggregate.c) are folded by the
-- worker in C (src/usage_fold.c), with set-based upserts of its own.

-- Verifications that waited longer than pixltoken.response_wait for their
-- response report, written out by the worker (usage_pending.c) with the
-- key their count went to, so that a report hours later, or after a
-- restart, still counts once: pixl_log_response finds the row, and the
-- worker deletes it and adds the response to the rollups in one
-- transaction (pixl_apply_late_responses).  Maintenance deletes rows older
-- than a day (a report after that is refused, PX068).  No secret: token
-- ids and analytics keys only.
CREATE TABLE @extschema@.pixl_usage_pending_responses (
	request_id		bigint PRIMARY KEY,
	at				timestamptz NOT NULL,
	token_id		text NOT NULL,
	bucket			timestamptz NOT NULL,
	method			text NOT NULL,
	endpoint		text NOT NULL,
	verify_status	smallint NOT NULL
);

CREATE INDEX pixl_usage_pending_responses_at ON @extschema@.pixl_usage_pending_responses (at);

COMMENT ON TABLE @extschema@.pixl_usage_pending_responses IS
	'Verifications whose response report has not arrived yet, written out of shared memory';
