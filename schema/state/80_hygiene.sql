------------------------------------------------------------------------------
-- Token hygiene (code/85_hygiene.sql): a store's own hygiene policy, which
-- overrides its plan's (the policy columns of pixl_plans) column by column,
-- and the inactivity warnings and actions already taken, so that each is
-- taken once.
------------------------------------------------------------------------------

-- NULL in a column: the plan's value.  Written by pixl_set_store_policy().
CREATE TABLE pixl_store_policies (
	store_id			text PRIMARY KEY REFERENCES pixl_stores (store_id),
	max_lifetime		interval CHECK (max_lifetime BETWEEN interval '1 day' AND interval '100 years'),
	expiry_required		boolean,
	inactive_after		interval CHECK (inactive_after BETWEEN interval '1 day' AND interval '100 years'),
	inactive_action		text CHECK (inactive_action IN ('disable', 'revoke', 'notify')),
	inactive_warning	interval CHECK (inactive_warning BETWEEN interval '0' AND interval '1 year'),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	updated_by			text NOT NULL
);

COMMENT ON TABLE pixl_store_policies IS
	'A store''s hygiene policy where it differs from its plan''s (NULL: the plan''s value)';

-- One row per inactivity step taken: the warning ('inactive_soon') and the
-- action ('inactive': disabled, revoked, or only notified) for one period
-- of no use, which starts at clock_from (the last use, creation, rotation
-- or enable).  A token used again starts a new period, with new steps.
CREATE TABLE pixl_hygiene_sent (
	token_id	text NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('inactive_soon', 'inactive')),
	clock_from	timestamptz NOT NULL,
	due_at		timestamptz NOT NULL,	-- when the action is (or was) due
	sent_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (token_id, kind, clock_from)
);

COMMENT ON TABLE pixl_hygiene_sent IS
	'Inactivity warnings and actions already taken, so that each is taken once';

SELECT pg_catalog.pg_extension_config_dump('pixl_store_policies', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_hygiene_sent', '');
