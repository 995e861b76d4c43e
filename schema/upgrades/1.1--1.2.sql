-- 1.1 -> 1.2: the state changes.  The Makefile replaces each "--#include
-- <file>" line with that file and appends schema/code/, which (re)creates
-- every function, view, trigger, policy, grant and comment.

-- pixl_usage_rows returns the rows of the one stitching of the rollups
-- (pixl_usage_rollups, every column) instead of its own column list: a
-- result type CREATE OR REPLACE cannot change.  Internal, granted to no one.
DROP FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean);

-- The node-id layout of request ids, defined once, and the replica
-- tables' checks that spelled it as 15.
--#include schema/state/05_node_id.sql
ALTER TABLE @extschema@.pixl_replica_nodes
	DROP CONSTRAINT pixl_replica_nodes_node_id_check,
	ADD CONSTRAINT pixl_replica_nodes_node_id_check
		CHECK (node_id BETWEEN 1 AND (1 << @extschema@.pixl_node_id_bits()) - 1);
ALTER TABLE @extschema@.pixl_replica_retired
	DROP CONSTRAINT pixl_replica_retired_node_id_check,
	ADD CONSTRAINT pixl_replica_retired_node_id_check
		CHECK (node_id BETWEEN 1 AND (1 << @extschema@.pixl_node_id_bits()) - 1);

-- What a standby's crashes lost before it shipped it, as its batches say
-- (src/usage/usage_held.c, batch version 4).
ALTER TABLE @extschema@.pixl_replica_nodes
	ADD COLUMN counts_lost bigint NOT NULL DEFAULT 0 CHECK (counts_lost >= 0);
COMMENT ON TABLE @extschema@.pixl_replica_nodes IS
	'Hot standbys that ship their usage here: the last batch applied of each, its rate_limit_share, and the verifications its crashes lost';

-- Plan quotas: an allowance per period for a store's tokens together, the
-- status classes it counts, the store's billing day and a token's own
-- allowance (src/verify/quota.c).  A seeded plan given an allowance is
-- dumped like any changed seeded plan.
ALTER TABLE @extschema@.pixl_plans
	ADD COLUMN period_quota bigint CHECK (period_quota BETWEEN 1 AND 100000000000000),
	ADD COLUMN quota_counts text NOT NULL DEFAULT 'all'
		CHECK (quota_counts IN ('all', '2xx', '2xx_3xx'));
ALTER TABLE @extschema@.pixl_stores
	ADD COLUMN billing_day smallint CHECK (billing_day BETWEEN 1 AND 28);
ALTER TABLE @extschema@.pixl_token_registry
	ADD COLUMN period_quota bigint CHECK (period_quota BETWEEN 1 AND 100000000000000);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.pixl_plans',
	$$WHERE (plan, default_rate_limit, max_rate_limit, max_tokens) NOT IN
		(('free', 60, 60, 10), ('starter', 60, 120, 25), ('growth', 60, 300, 100),
		 ('pro', 60, 600, 250), ('enterprise', 60, 1000, 1000))
	   OR period_quota IS NOT NULL OR quota_counts <> 'all'$$);

-- Weighted calls and the period allowance in the rollups (the usage
-- worker's fold writes them; rows of before count 0).
ALTER TABLE @extschema@.pixl_usage_hourly
	ADD COLUMN cost bigint NOT NULL DEFAULT 0,
	ADD COLUMN charged bigint NOT NULL DEFAULT 0;
ALTER TABLE @extschema@.pixl_usage_daily
	ADD COLUMN cost bigint NOT NULL DEFAULT 0,
	ADD COLUMN charged bigint NOT NULL DEFAULT 0;

-- The scopes the admitted calls required, for the scopes a token was
-- granted but never exercised (pixl_token_scope_use; rows of before kept
-- none: 0).
ALTER TABLE @extschema@.pixl_usage_hourly
	ADD COLUMN scopes_used integer NOT NULL DEFAULT 0;
ALTER TABLE @extschema@.pixl_usage_daily
	ADD COLUMN scopes_used integer NOT NULL DEFAULT 0;

-- Allowance events and edits of a plan's allowance are audited
-- (state/10_tokens.sql), once per store and period (state/70_quota.sql);
-- so are hygiene policies, the expiries they clamp and inactivity warnings.
ALTER TABLE @extschema@.pixl_audit
	DROP CONSTRAINT pixl_audit_action_check,
	ADD CONSTRAINT pixl_audit_action_check
		CHECK (action IN ('create', 'rotate', 'update', 'revoke', 'plan',
						  'disable', 'enable', 'expose', 'expiring', 'rotation_due',
						  'plan_quota', 'quota_warning', 'quota_exhausted',
						  'policy', 'clamp', 'inactive_soon'));
--#include schema/state/70_quota.sql

-- Token hygiene: a policy per plan (these columns) and per store, and the
-- inactivity steps taken (state/80_hygiene.sql).  A seeded plan given a
-- policy is dumped like any changed seeded plan.
ALTER TABLE @extschema@.pixl_plans
	ADD COLUMN max_lifetime interval CHECK (max_lifetime BETWEEN interval '1 day' AND interval '100 years'),
	ADD COLUMN expiry_required boolean,
	ADD COLUMN inactive_after interval CHECK (inactive_after BETWEEN interval '1 day' AND interval '100 years'),
	ADD COLUMN inactive_action text CHECK (inactive_action IN ('disable', 'revoke', 'notify')),
	ADD COLUMN inactive_warning interval CHECK (inactive_warning BETWEEN interval '0' AND interval '1 year');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.pixl_plans',
	$$WHERE (plan, default_rate_limit, max_rate_limit, max_tokens) NOT IN
		(('free', 60, 60, 10), ('starter', 60, 120, 25), ('growth', 60, 300, 100),
		 ('pro', 60, 600, 250), ('enterprise', 60, 1000, 1000))
	   OR period_quota IS NOT NULL OR quota_counts <> 'all'
	   OR max_lifetime IS NOT NULL OR expiry_required IS NOT NULL OR inactive_after IS NOT NULL
	   OR inactive_action IS NOT NULL OR inactive_warning IS NOT NULL$$);
--#include schema/state/80_hygiene.sql
-- Durable lifecycle events: the outbox, its consumers and deliveries
-- (pixl_write_audit feeds them).  Audit rows of before are not copied in:
-- the outbox starts with the upgrade.
--#include schema/state/85_events.sql
-- Credentials over plain HTTP: a store's choice between revoking and
-- notifying (code/37_transport.sql).
ALTER TABLE @extschema@.pixl_stores
	ADD COLUMN insecure_transport_action text NOT NULL DEFAULT 'revoke'
		CHECK (insecure_transport_action IN ('revoke', 'notify'));
