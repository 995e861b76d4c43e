------------------------------------------------------------------------------
-- Lifecycle reminders: a pixl_audit row with action
-- 'expiring' (pixltoken.expiry_reminder before expires_at) or
-- 'rotation_due' (pixltoken.rotation_reminder after the creation or last
-- rotation) and its NOTIFY pixltoken wake-up (pixl_write_audit), once per
-- token and due date, recorded here so that a restart does not repeat
-- them.  The usage worker calls pixl_lifecycle_reminders()
-- from its periodic maintenance; an operator may call it any time.
------------------------------------------------------------------------------

CREATE TABLE pixl_lifecycle_reminders_sent (
	token_id	text NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('expiring', 'rotation_due')),
	due_for		timestamptz NOT NULL,	-- the expiry, or the secret's creation/rotation
	sent_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (token_id, kind, due_for)
);

COMMENT ON TABLE pixl_lifecycle_reminders_sent IS
	'Lifecycle reminders already sent, so that each is sent once';

SELECT pg_catalog.pg_extension_config_dump('pixl_lifecycle_reminders_sent', '');
