------------------------------------------------------------------------------
-- Durable lifecycle events: the outbox and its consumers
-- (code/37_events.sql has the functions and the protocol).
--
-- pixl_write_audit, the one place every audited change goes through, adds
-- one pixl_events row per pixl_audit row in the same transaction (same
-- event_id as the audit_id), and one pixl_event_deliveries row per
-- consumer that takes the event's store: per-event delivery state, so
-- that a consumer never skips an event that commits after a later one.
-- Events are partitioned by UTC day (pixl_events_YYYYMMDD, made ahead and
-- dropped past pixltoken.event_retention by pixl_events_maintenance(),
-- which the usage worker calls every minute; not extension members, so
-- that pg_dump dumps them); the default partition takes any event no dated
-- partition covers.
------------------------------------------------------------------------------

CREATE TABLE pixl_events (
	event_id	bigint NOT NULL,		-- the audit_id of its pixl_audit row
	-- the Standard Webhooks message id (webhook-id): random, so that two
	-- databases never send the same one
	webhook_id	text NOT NULL
		DEFAULT 'evt_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''),
	occurred_at	timestamptz NOT NULL,
	type		text NOT NULL,			-- e.g. token.revoked
	store_id	text,					-- NULL: a plan-wide change (platform admins only)
	token_id	text,
	payload		jsonb NOT NULL			-- {"type", "timestamp", "data"}: what is delivered
) PARTITION BY RANGE (occurred_at);

CREATE TABLE pixl_events_default PARTITION OF pixl_events
	(PRIMARY KEY (event_id, occurred_at)) DEFAULT;

COMMENT ON TABLE pixl_events IS
	'Lifecycle events (the outbox), one per audited change, written in its transaction; daily partitions past pixltoken.event_retention are dropped';


CREATE TABLE pixl_event_consumers (
	consumer_id		int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name			text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,62}$'),
	store_id		text CHECK (length(store_id) BETWEEN 1 AND 128),	-- NULL: every store
	max_attempts	int NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
	created_at		timestamptz NOT NULL DEFAULT now(),
	created_by		text NOT NULL DEFAULT session_user
);

COMMENT ON TABLE pixl_event_consumers IS
	'Named consumers of the lifecycle events: one store''s, or every store''s (platform admins)';


-- One row per (consumer, event) not acknowledged yet.  visible_at: when it
-- may be claimed (a claim moves it to the end of the lease); attempts:
-- claims so far; dead_at: set once attempts reached the consumer's
-- max_attempts and the last lease ran out (a dead letter).
CREATE TABLE pixl_event_deliveries (
	consumer_id		int NOT NULL REFERENCES pixl_event_consumers ON DELETE CASCADE,
	event_id		bigint NOT NULL,
	occurred_at		timestamptz NOT NULL,
	attempts		int NOT NULL DEFAULT 0,
	visible_at		timestamptz NOT NULL DEFAULT '-infinity',
	claimed_at		timestamptz,
	dead_at			timestamptz,
	last_error		text CHECK (length(last_error) <= 500),
	PRIMARY KEY (consumer_id, event_id)
);

CREATE INDEX pixl_event_deliveries_claimable ON pixl_event_deliveries (consumer_id, visible_at)
	WHERE dead_at IS NULL;

COMMENT ON TABLE pixl_event_deliveries IS
	'Per consumer and event: not acknowledged yet, with its lease, attempts and dead-letter state';


SELECT pg_catalog.pg_extension_config_dump('pixl_events_default', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_event_consumers', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_event_consumers_consumer_id_seq', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_event_deliveries', '');

-- Readers granted SELECT on pixl_events see the events of their stores.
ALTER TABLE pixl_events ENABLE ROW LEVEL SECURITY;
