------------------------------------------------------------------------------
-- The last calls of each token and final status (src/usage_recent.c):
-- what pixl_recent_calls shows when pixltoken.request_log = recent (the
-- default), PIXL_RECENT_CALLS (20) slots per (token, status) that the
-- worker overwrites in turn, so that the table follows tokens and
-- statuses, not requests.  A report that comes after its call was written
-- changes status and response_ms in place (the call keeps its slot).  No secret: token ids and analytics keys only.
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
) WITH (fillfactor = 70);		-- room for HOT updates of a slot
COMMENT ON TABLE @extschema@.pixl_usage_recent IS
	'The last 20 calls of each token and final status (pixltoken.request_log = recent), slots overwritten in turn';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.pixl_usage_recent', '');
REVOKE ALL ON @extschema@.pixl_usage_recent FROM PUBLIC;
