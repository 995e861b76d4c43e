------------------------------------------------------------------------------
-- Plans, stores and tokens
------------------------------------------------------------------------------

CREATE TABLE pixl_plans (
	plan				text PRIMARY KEY
		CHECK (plan ~ '^[a-z][a-z0-9_]{0,62}$'),
	default_rate_limit	int NOT NULL CHECK (default_rate_limit BETWEEN 1 AND 1000),
	max_rate_limit		int NOT NULL CHECK (max_rate_limit BETWEEN 1 AND 1000),
	CHECK (default_rate_limit <= max_rate_limit),
	-- no column default: pixl_plans_restore_seed fills a missing value (an
	-- INSERT that names three columns, such as a 1.0 dump) from the seed or
	-- with 100, so that restoring a changed seeded plan keeps its cap
	max_tokens			int NOT NULL CHECK (max_tokens BETWEEN 1 AND 1000000),
	-- 1.2: calls (weighted by cost) per period for all tokens of a store
	-- together; NULL: no allowance.  The bound keeps a counter exact in
	-- shared memory (src/verify/quota.c).
	period_quota		bigint CHECK (period_quota BETWEEN 1 AND 100000000000000),
	-- 1.2: the final status classes that count against the allowance
	quota_counts		text NOT NULL DEFAULT 'all'
		CHECK (quota_counts IN ('all', '2xx', '2xx_3xx')),
	-- 1.2: the hygiene policy of the plan's stores (state/80_hygiene.sql;
	-- a store may override it there); NULL: no such rule
	max_lifetime		interval CHECK (max_lifetime BETWEEN interval '1 day' AND interval '100 years'),
	expiry_required		boolean,
	inactive_after		interval CHECK (inactive_after BETWEEN interval '1 day' AND interval '100 years'),
	inactive_action		text CHECK (inactive_action IN ('disable', 'revoke', 'notify')),
	inactive_warning	interval CHECK (inactive_warning BETWEEN interval '0' AND interval '1 year')
);

COMMENT ON TABLE pixl_plans IS 'Rate-limit policy per plan, seeded from the user guide; operators may edit it';

COMMENT ON COLUMN pixl_plans.max_tokens IS
	'Active tokens a store of this plan may hold (revoked and expired ones do not count)';

-- A store holds at most max_tokens active (not revoked, not expired)
-- tokens, so that one store cannot take every rate-limit slot
-- (pixltoken.max_tracked_tokens) and fail other stores' new tokens closed.
-- A plan an operator adds gets 100 unless told otherwise.
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens) VALUES
	('free', 60, 60, 10),
	('starter', 60, 120, 25),
	('growth', 60, 300, 100),
	('pro', 60, 600, 250),
	('enterprise', 60, 1000, 1000);


CREATE TABLE pixl_stores (
	store_id	text PRIMARY KEY
		CHECK (length(store_id) BETWEEN 1 AND 128
			   AND store_id !~ '^\s|\s$|[[:cntrl:]]'),
	plan		text NOT NULL REFERENCES pixl_plans (plan) ON UPDATE CASCADE,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	-- 1.2: NULL, the calendar month in UTC; else the allowance's period
	-- starts at 00:00 UTC on this day of each month
	billing_day	smallint CHECK (billing_day BETWEEN 1 AND 28),
	-- 1.2: a token of the store that came over plain HTTP is revoked
	-- (exposed) or only notified (code/37_transport.sql)
	insecure_transport_action text NOT NULL DEFAULT 'revoke'
		CHECK (insecure_transport_action IN ('revoke', 'notify'))
);

COMMENT ON TABLE pixl_stores IS 'Stores and their plans; unknown stores are created on "free"';


-- One row per token.  Only SHA-256 hashes of secrets are kept.  During a
-- rotation grace period the old secret's hash sits in previous_hash until
-- previous_valid_until.  Read by pixl_verify_token() through a per-backend
-- cache that the statement triggers below invalidate transactionally.
CREATE TABLE pixl_token_registry (
	token_id			text PRIMARY KEY CHECK (token_id ~ '^tok_[0-9A-Za-z]{16}$'),
	store_id			text NOT NULL REFERENCES pixl_stores (store_id),
	name				text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	mode				text NOT NULL CHECK (mode IN ('live', 'test')),
	scope_bits			int NOT NULL CHECK (scope_bits > 0),
	rate_limit			int NOT NULL CHECK (rate_limit BETWEEN 1 AND 1000),
	expires_at			timestamptz,
	secret_hash			bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
	hint				text NOT NULL,
	previous_hash		bytea UNIQUE CHECK (length(previous_hash) = 32),
	previous_valid_until timestamptz,
	created_at			timestamptz NOT NULL DEFAULT now(),
	rotated_at			timestamptz,
	revoked_at			timestamptz,
	CHECK ((previous_hash IS NULL) = (previous_valid_until IS NULL)),
	-- NULL: any address
	allowed_ips			cidr[]
		CHECK (cardinality(allowed_ips) BETWEEN 1 AND 100 AND array_position(allowed_ips, NULL) IS NULL),
	-- a JSON object of at most 4 kB (its text form), returned by verification
	metadata			jsonb
		CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 4096),
	-- set by pixl_disable_token, cleared by pixl_enable_token
	disabled_at			timestamptz,
	disabled_reason		text,
	-- 'revoked' (pixl_revoke_token) or 'exposed' (pixl_report_leaked); NULL
	-- for tokens revoked by 1.0
	revoked_reason		text
		CHECK (revoked_reason IN ('revoked', 'exposed')),
	CHECK (disabled_reason IS NULL OR disabled_at IS NOT NULL),
	-- 1.2: the token's own allowance per period, counted against its own
	-- calls and the store's; at most the plan's when set (the lower wins)
	period_quota		bigint CHECK (period_quota BETWEEN 1 AND 100000000000000)
);

CREATE INDEX ON pixl_token_registry (store_id);

COMMENT ON TABLE pixl_token_registry IS 'Tokens (hashes only); read through the pixl_tokens view';


-- last_used_at lives apart from the registry: the worker updates it all the
-- time, and updates of the registry invalidate every backend's token cache.
-- No foreign key: its check would cost the worker a query per row and take
-- KEY SHARE locks on registry rows (tokens are never deleted anyway).
CREATE TABLE pixl_token_activity (
	token_id		text PRIMARY KEY,
	last_used_at	timestamptz NOT NULL,
	-- rotation telemetry: the usage worker maintains these from verification
	-- events of a previous secret; pixl_rotate_token() starts them over
	previous_secret_last_used_at timestamptz,
	previous_secret_uses bigint NOT NULL DEFAULT 0
);


CREATE TABLE pixl_audit (
	audit_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	actor		text NOT NULL DEFAULT session_user,
	-- 1.2: plan_quota (an edit of a plan's allowance), quota_warning and
	-- quota_exhausted (a store at 80 % and 100 % of it: state/70_quota.sql);
	-- policy (a store's hygiene policy set), clamp (a token's expiry
	-- shortened by a tightened policy), inactive_soon (a token about to be
	-- disabled for not being used)
	action		text NOT NULL CHECK (action IN ('create', 'rotate', 'update', 'revoke', 'plan',
											 'disable', 'enable', 'expose', 'expiring', 'rotation_due',
											 'plan_quota', 'quota_warning', 'quota_exhausted',
											 'policy', 'clamp', 'inactive_soon')),
	token_id	text,
	store_id	text,
	detail		jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX ON pixl_audit (token_id, at);

COMMENT ON TABLE pixl_audit IS 'Who changed which token or plan, when, and what changed; never a secret or hash';


-- pg_dump keeps the data.  Seeded plans are dumped only when an operator
-- changed them (a restore runs CREATE EXTENSION, which seeds them again), and
-- a changed one then replaces its fresh seed row through the trigger below
-- instead of colliding with it.  The seed values are spelled out three
-- times (INSERT and dump filter here, pixl_plans_restore_seed in
-- code/30_tokens.sql): keep them in step.
SELECT pg_catalog.pg_extension_config_dump('pixl_plans',
	$$WHERE (plan, default_rate_limit, max_rate_limit, max_tokens) NOT IN
		(('free', 60, 60, 10), ('starter', 60, 120, 25), ('growth', 60, 300, 100),
		 ('pro', 60, 600, 250), ('enterprise', 60, 1000, 1000))
	   OR period_quota IS NOT NULL OR quota_counts <> 'all'
	   OR max_lifetime IS NOT NULL OR expiry_required IS NOT NULL OR inactive_after IS NOT NULL
	   OR inactive_action IS NOT NULL OR inactive_warning IS NOT NULL$$);

SELECT pg_catalog.pg_extension_config_dump('pixl_stores', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_token_registry', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_token_activity', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_audit', '');

SELECT pg_catalog.pg_extension_config_dump('pixl_audit_audit_id_seq', '');


