------------------------------------------------------------------------------
-- Allowance events: a pixl_audit row with action 'quota_warning' (a store
-- has used 80 % of its plan's period_quota) or 'quota_exhausted' (100 %)
-- and its NOTIFY pixltoken wake-up (pixl_write_audit), once per store,
-- period and threshold, recorded here so that a restart does not repeat
-- them.  The usage worker calls pixl_quota_notices() after each fold; an
-- operator may call it any time.
------------------------------------------------------------------------------

CREATE TABLE pixl_quota_notices (
	store_id		text NOT NULL,
	period_start	timestamptz NOT NULL,
	threshold		smallint NOT NULL CHECK (threshold IN (80, 100)),	-- percent of the allowance
	used			bigint NOT NULL,	-- when it was sent
	allowance		bigint NOT NULL,
	sent_at			timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (store_id, period_start, threshold)
);

COMMENT ON TABLE pixl_quota_notices IS
	'Allowance events already sent (80 % and 100 % of a store''s allowance), so that each is sent once per period';

SELECT pg_catalog.pg_extension_config_dump('pixl_quota_notices', '');
