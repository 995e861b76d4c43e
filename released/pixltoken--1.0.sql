/* pixltoken 1.0 — install script, assembled from sql/src/ by the Makefile. */

\echo Use "CREATE EXTENSION pixltoken" to load this file. \quit

-- Fails with a hint when the library is not in shared_preload_libraries,
-- so CREATE EXTENSION stops before creating anything half-usable.
CREATE FUNCTION pixl_assert_preloaded() RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_assert_preloaded'
	LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION pixl_assert_preloaded() FROM PUBLIC;
SELECT @extschema@.pixl_assert_preloaded();

------------------------------------------------------------------------------
-- Plans, stores and tokens
------------------------------------------------------------------------------

CREATE TABLE pixl_plans (
	plan				text PRIMARY KEY
		CHECK (plan ~ '^[a-z][a-z0-9_]{0,62}$'),
	default_rate_limit	int NOT NULL CHECK (default_rate_limit BETWEEN 1 AND 1000),
	max_rate_limit		int NOT NULL CHECK (max_rate_limit BETWEEN 1 AND 1000),
	CHECK (default_rate_limit <= max_rate_limit)
);
COMMENT ON TABLE pixl_plans IS 'Rate-limit policy per plan, seeded from the user guide; operators may edit it';

INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit) VALUES
	('free', 60, 60),
	('starter', 60, 120),
	('growth', 60, 300),
	('pro', 60, 600),
	('enterprise', 60, 1000);

CREATE TABLE pixl_stores (
	store_id	text PRIMARY KEY
		CHECK (length(store_id) BETWEEN 1 AND 128
			   AND store_id !~ '^\s|\s$|[[:cntrl:]]'),
	plan		text NOT NULL REFERENCES pixl_plans (plan) ON UPDATE CASCADE,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
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
	CHECK ((previous_hash IS NULL) = (previous_valid_until IS NULL))
);
CREATE INDEX ON pixl_token_registry (store_id);
COMMENT ON TABLE pixl_token_registry IS 'Tokens (hashes only); read through the pixl_tokens view';

-- last_used_at lives apart from the registry: the worker updates it all the
-- time, and updates of the registry invalidate every backend's token cache.
-- No foreign key: its check would cost the worker a query per row and take
-- KEY SHARE locks on registry rows (tokens are never deleted anyway).
CREATE TABLE pixl_token_activity (
	token_id		text PRIMARY KEY,
	last_used_at	timestamptz NOT NULL
);

CREATE TABLE pixl_audit (
	audit_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	actor		text NOT NULL DEFAULT session_user,
	action		text NOT NULL CHECK (action IN ('create', 'rotate', 'update', 'revoke', 'plan')),
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
-- times in this file (INSERT, dump filter, trigger): keep them in step.
SELECT pg_catalog.pg_extension_config_dump('pixl_plans',
	$$WHERE (plan, default_rate_limit, max_rate_limit) NOT IN
		(('free', 60, 60), ('starter', 60, 120), ('growth', 60, 300),
		 ('pro', 60, 600), ('enterprise', 60, 1000))$$);

CREATE FUNCTION pixl_plans_restore_seed() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE @extschema@.pixl_plans p
	   SET default_rate_limit = NEW.default_rate_limit,
		   max_rate_limit = NEW.max_rate_limit
	 WHERE p.plan = NEW.plan
	   AND (p.plan, p.default_rate_limit, p.max_rate_limit) IN
		   (('free', 60, 60), ('starter', 60, 120), ('growth', 60, 300),
			('pro', 60, 600), ('enterprise', 60, 1000));
	IF FOUND THEN
		RETURN NULL;			-- the untouched seed row now has the new values
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION pixl_plans_restore_seed() IS
	'Lets a restored dump replace an untouched seeded plan instead of colliding with it';
CREATE TRIGGER pixl_plans_restore_seed
	BEFORE INSERT ON pixl_plans
	FOR EACH ROW EXECUTE FUNCTION pixl_plans_restore_seed();
SELECT pg_catalog.pg_extension_config_dump('pixl_stores', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_token_registry', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_token_activity', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_audit', '');
SELECT pg_catalog.pg_extension_config_dump('pixl_audit_audit_id_seq', '');

------------------------------------------------------------------------------
-- C helpers: randomness, hashing, format and scopes
------------------------------------------------------------------------------

CREATE FUNCTION pixl_new_token_id() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_new_token_id'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION pixl_new_secret(mode text, OUT token text, OUT secret_hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'pixl_new_secret'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION pixl_secret_hash(token text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_secret_hash'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION pixl_token_checksum(data text) RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_token_checksum'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION pixl_token_format(token text) RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_token_format'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pixl_token_format(text) IS
	'What the format check alone says of a token: ok, missing, malformed or token_id_not_secret';

CREATE FUNCTION pixl_scope_bits(scopes text[]) RETURNS int
	AS 'MODULE_PATHNAME', 'pixl_scope_bits'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION pixl_scope_names(scope_bits int) RETURNS text[]
	AS 'MODULE_PATHNAME', 'pixl_scope_names'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Statement trigger: every committed change of tokens, stores or plans
-- reaches every backend's token cache at its next verification.  Inserts
-- need none: caches hold only tokens that exist (unknown secrets are not
-- cached), and a new store or plan has no cached token yet; so creating
-- tokens does not empty every connection's cache.
CREATE FUNCTION pixl_invalidate_token_cache() RETURNS trigger
	AS 'MODULE_PATHNAME', 'pixl_invalidate_token_cache'
	LANGUAGE C;

CREATE TRIGGER pixl_token_registry_invalidate
	AFTER UPDATE OR DELETE OR TRUNCATE ON pixl_token_registry
	FOR EACH STATEMENT EXECUTE FUNCTION pixl_invalidate_token_cache();
CREATE TRIGGER pixl_stores_invalidate
	AFTER UPDATE OR DELETE OR TRUNCATE ON pixl_stores
	FOR EACH STATEMENT EXECUTE FUNCTION pixl_invalidate_token_cache();
CREATE TRIGGER pixl_plans_invalidate
	AFTER UPDATE OR DELETE OR TRUNCATE ON pixl_plans
	FOR EACH STATEMENT EXECUTE FUNCTION pixl_invalidate_token_cache();

------------------------------------------------------------------------------
-- Validation shared by create and update.  Each failure has its own SQLSTATE
-- (class PX, listed in README.md), names the bad value and hints at the
-- allowed ones.
------------------------------------------------------------------------------

-- A value quoted for an error message: "value", control characters shown
-- as '?', or NULL.
CREATE FUNCTION pixl_quote(value text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce('"' || regexp_replace(value, '[[:cntrl:]]', '?', 'g') || '"', 'NULL');
$$;

CREATE FUNCTION pixl_check_store_id(store_id text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF store_id IS NULL OR length(store_id) NOT BETWEEN 1 AND 128
	   OR store_id ~ '^\s|\s$|[[:cntrl:]]' THEN
		RAISE EXCEPTION 'invalid store id %', @extschema@.pixl_quote(store_id)
			USING ERRCODE = 'PX010',
				  HINT = 'A store id is 1 to 128 characters, without surrounding spaces or control characters.';
	END IF;
END
$$;

CREATE FUNCTION pixl_check_name(name text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR btrim(name) = '' OR length(name) > 200 THEN
		RAISE EXCEPTION 'invalid token name %', @extschema@.pixl_quote(left(name, 60))
			USING ERRCODE = 'PX004',
				  HINT = 'A token name is required: 1 to 200 characters, not only spaces, e.g. ''Mobile App''.';
	END IF;
END
$$;

CREATE FUNCTION pixl_check_expiry(expires_at timestamptz) RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF expires_at IS NOT NULL AND expires_at <> 'infinity' AND expires_at <= clock_timestamp() THEN
		RAISE EXCEPTION 'expiry % is in the past', expires_at
			USING ERRCODE = 'PX007',
				  HINT = 'Use a future time, or NULL (''infinity'' in pixl_update_token) for a token that never expires.';
	END IF;
END
$$;

-- The limit a token of this store gets for a requested value (NULL: the
-- plan's default), checked against 1..1000 and the plan's maximum.
CREATE FUNCTION pixl_resolve_rate_limit(store_id text, rate_limit int) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_plan	text := 'free';
	v_def	int;
	v_max	int;
BEGIN
	SELECT s.plan INTO v_plan FROM @extschema@.pixl_stores s WHERE s.store_id = pixl_resolve_rate_limit.store_id;
	v_plan := coalesce(v_plan, 'free');
	SELECT p.default_rate_limit, p.max_rate_limit INTO v_def, v_max
	  FROM @extschema@.pixl_plans p WHERE p.plan = v_plan;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown plan "%"', v_plan
			USING ERRCODE = 'PX009',
				  HINT = 'New stores start on plan "free"; restore it in pixl_plans.';
	END IF;
	IF rate_limit IS NULL THEN
		RETURN least(v_def, v_max);
	END IF;
	IF rate_limit NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'rate limit % is out of range', rate_limit
			USING ERRCODE = 'PX005',
				  HINT = 'A rate limit is between 1 and 1000 requests per minute.';
	END IF;
	IF rate_limit > v_max THEN
		RAISE EXCEPTION 'rate limit % exceeds the maximum of plan "%"', rate_limit, v_plan
			USING ERRCODE = 'PX006',
				  DETAIL = format('Store %s is on plan "%s", whose maximum is %s requests per minute.',
								  @extschema@.pixl_quote(store_id), v_plan, v_max),
				  HINT = format('Use a rate limit between 1 and %s, or move the store to a larger plan with pixl_set_store_plan().', v_max);
	END IF;
	RETURN rate_limit;
END
$$;

-- The token's row, locked, after checking it exists and is not revoked.
CREATE FUNCTION pixl_lock_token(token_id text)
	RETURNS @extschema@.pixl_token_registry
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r	@extschema@.pixl_token_registry;
BEGIN
	SELECT * INTO r FROM @extschema@.pixl_token_registry t
	 WHERE t.token_id = pixl_lock_token.token_id
	   FOR NO KEY UPDATE;	-- keys never change; no conflict with FK checks of usage writes
	IF NOT FOUND AND token_id ~ '^sk_' THEN
		-- never echo what may be a secret into a message (and the log)
		RAISE EXCEPTION 'a token secret was passed where a token id is expected'
			USING ERRCODE = 'PX011',
				  HINT = 'Pass the token id ("tok_" and 16 characters) as listed in pixl_tokens, not the secret.';
	ELSIF NOT FOUND THEN
		RAISE EXCEPTION 'token % does not exist', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX011',
				  HINT = 'Pass the token id ("tok_" and 16 characters) as listed in pixl_tokens, not the secret.';
	END IF;
	IF r.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'token % is revoked', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX012',
				  DETAIL = format('It was revoked at %s; revocation cannot be undone.', r.revoked_at),
				  HINT = 'Create a new token with pixl_create_token().';
	END IF;
	RETURN r;
END
$$;

CREATE FUNCTION pixl_write_audit(action text, token_id text, store_id text, detail jsonb)
	RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO @extschema@.pixl_audit (action, token_id, store_id, detail)
	VALUES (action, token_id, store_id, detail);
$$;

------------------------------------------------------------------------------
-- Token management
------------------------------------------------------------------------------

CREATE FUNCTION pixl_set_store_plan(store_id text, plan text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_old	text;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(store_id);
	IF plan IS NULL OR NOT EXISTS (SELECT 1 FROM @extschema@.pixl_plans p WHERE p.plan = pixl_set_store_plan.plan) THEN
		RAISE EXCEPTION 'unknown plan %', @extschema@.pixl_quote(plan)
			USING ERRCODE = 'PX009',
				  HINT = 'Valid plans are ' ||
					(SELECT string_agg(p.plan, ', ' ORDER BY p.max_rate_limit, p.plan) FROM @extschema@.pixl_plans p) || '.';
	END IF;

	-- a new store; ON CONFLICT so that two sessions creating the same store
	-- at once do not fail on the primary key
	INSERT INTO @extschema@.pixl_stores (store_id, plan) VALUES (store_id, plan)
	ON CONFLICT ON CONSTRAINT pixl_stores_pkey DO NOTHING;
	IF NOT FOUND THEN
		SELECT s.plan INTO v_old FROM @extschema@.pixl_stores s
		 WHERE s.store_id = pixl_set_store_plan.store_id
		   FOR NO KEY UPDATE;	-- no conflict with token inserts of the store
		IF v_old = plan THEN
			RETURN;				-- no change, nothing to audit
		END IF;
		UPDATE @extschema@.pixl_stores s SET plan = pixl_set_store_plan.plan, updated_at = now()
		 WHERE s.store_id = pixl_set_store_plan.store_id;
	END IF;
	PERFORM @extschema@.pixl_write_audit('plan', NULL, store_id,
		jsonb_build_object('old_plan', v_old, 'new_plan', plan));
END
$$;

CREATE FUNCTION pixl_create_token(store_id text, name text, scopes text[],
								  expires_at timestamptz DEFAULT NULL,
								  rate_limit int DEFAULT NULL,
								  mode text DEFAULT 'live')
	RETURNS TABLE (token_id text, token text)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_store		text := pixl_create_token.store_id;
	v_bits		int;
	v_limit		int;
	v_expires	timestamptz := nullif(pixl_create_token.expires_at, 'infinity');
	v_secret	record;
	v_id		text;
BEGIN
	-- validate everything before writing anything
	PERFORM @extschema@.pixl_check_store_id(v_store);
	PERFORM @extschema@.pixl_check_name(pixl_create_token.name);
	v_bits := @extschema@.pixl_scope_bits(pixl_create_token.scopes);
	PERFORM @extschema@.pixl_check_expiry(v_expires);
	v_limit := @extschema@.pixl_resolve_rate_limit(v_store, pixl_create_token.rate_limit);
	SELECT * INTO v_secret FROM @extschema@.pixl_new_secret(pixl_create_token.mode);

	INSERT INTO @extschema@.pixl_stores AS s (store_id, plan) VALUES (v_store, 'free')
	ON CONFLICT (store_id) DO NOTHING;
	IF FOUND THEN
		PERFORM @extschema@.pixl_write_audit('plan', NULL, v_store,
			jsonb_build_object('old_plan', NULL, 'new_plan', 'free'));
	END IF;

	v_id := @extschema@.pixl_new_token_id();
	INSERT INTO @extschema@.pixl_token_registry
		(token_id, store_id, name, mode, scope_bits, rate_limit, expires_at, secret_hash, hint)
	VALUES (v_id, v_store, pixl_create_token.name, pixl_create_token.mode, v_bits, v_limit,
			v_expires, v_secret.secret_hash, v_secret.hint);

	PERFORM @extschema@.pixl_write_audit('create', v_id, v_store,
		jsonb_build_object('name', pixl_create_token.name,
						   'mode', pixl_create_token.mode,
						   'scopes', @extschema@.pixl_scope_names(v_bits),
						   'rate_limit', v_limit,
						   'expires_at', v_expires,
						   'hint', v_secret.hint));

	token_id := v_id;
	token := v_secret.token;
	RETURN NEXT;
END
$$;
COMMENT ON FUNCTION pixl_create_token(text, text, text[], timestamptz, int, text) IS
	'Creates a token; the secret is returned this once and never stored';

CREATE FUNCTION pixl_rotate_token(token_id text, grace interval DEFAULT '0')
	RETURNS text
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r			@extschema@.pixl_token_registry;
	v_secret	record;
BEGIN
	IF grace IS NULL OR grace < interval '0' OR grace > interval '7 days' THEN
		RAISE EXCEPTION 'invalid grace period %', coalesce(grace::text, 'NULL')
			USING ERRCODE = 'PX014',
				  HINT = 'Use an interval between 0 (the old secret stops at commit) and 7 days.';
	END IF;
	r := @extschema@.pixl_lock_token(token_id);
	IF r.expires_at IS NOT NULL AND r.expires_at <= clock_timestamp() THEN
		RAISE EXCEPTION 'token % is expired', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX013',
				  DETAIL = format('It expired at %s.', r.expires_at),
				  HINT = 'Extend it first with pixl_update_token(expires_at => ...), or create a new token.';
	END IF;

	SELECT * INTO v_secret FROM @extschema@.pixl_new_secret(r.mode);
	UPDATE @extschema@.pixl_token_registry t
	   SET secret_hash = v_secret.secret_hash,
		   hint = v_secret.hint,
		   previous_hash = CASE WHEN grace > interval '0' THEN r.secret_hash END,
		   previous_valid_until = CASE WHEN grace > interval '0' THEN clock_timestamp() + grace END,
		   rotated_at = now()
	 WHERE t.token_id = r.token_id;

	PERFORM @extschema@.pixl_write_audit('rotate', r.token_id, r.store_id,
		jsonb_build_object('grace', grace::text, 'old_hint', r.hint, 'new_hint', v_secret.hint));
	RETURN v_secret.token;
END
$$;
COMMENT ON FUNCTION pixl_rotate_token(text, interval) IS
	'New secret for the same token; the old one stops at commit, or after grace';

CREATE FUNCTION pixl_revoke_token(token_id text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r	@extschema@.pixl_token_registry;
BEGIN
	r := @extschema@.pixl_lock_token(token_id);
	-- a secret still in its rotation grace stays known, so it answers
	-- "revoked" too rather than "unknown"
	UPDATE @extschema@.pixl_token_registry t
	   SET revoked_at = now()
	 WHERE t.token_id = r.token_id;
	PERFORM @extschema@.pixl_write_audit('revoke', r.token_id, r.store_id,
		jsonb_build_object('name', r.name, 'hint', r.hint));
END
$$;
COMMENT ON FUNCTION pixl_revoke_token(text) IS
	'Irreversibly disables a token for every connection once the transaction commits';

CREATE FUNCTION pixl_update_token(token_id text,
								  name text DEFAULT NULL,
								  scopes text[] DEFAULT NULL,
								  rate_limit int DEFAULT NULL,
								  expires_at timestamptz DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r			@extschema@.pixl_token_registry;
	v_name		text;
	v_bits		int;
	v_limit		int;
	v_expires	timestamptz;
	v_changes	jsonb := '{}';
BEGIN
	r := @extschema@.pixl_lock_token(pixl_update_token.token_id);
	v_name := coalesce(pixl_update_token.name, r.name);
	v_bits := CASE WHEN pixl_update_token.scopes IS NULL THEN r.scope_bits
				   ELSE @extschema@.pixl_scope_bits(pixl_update_token.scopes) END;
	v_limit := CASE WHEN pixl_update_token.rate_limit IS NULL THEN r.rate_limit
					ELSE @extschema@.pixl_resolve_rate_limit(r.store_id, pixl_update_token.rate_limit) END;
	-- NULL leaves the expiry unchanged; 'infinity' removes it
	v_expires := CASE WHEN pixl_update_token.expires_at IS NULL THEN r.expires_at
					  ELSE nullif(pixl_update_token.expires_at, 'infinity') END;
	PERFORM @extschema@.pixl_check_name(v_name);
	IF pixl_update_token.expires_at IS NOT NULL THEN
		PERFORM @extschema@.pixl_check_expiry(v_expires);
	END IF;

	IF v_name IS DISTINCT FROM r.name THEN
		v_changes := v_changes || jsonb_build_object('name', jsonb_build_object('old', r.name, 'new', v_name));
	END IF;
	IF v_bits IS DISTINCT FROM r.scope_bits THEN
		v_changes := v_changes || jsonb_build_object('scopes', jsonb_build_object(
			'old', @extschema@.pixl_scope_names(r.scope_bits), 'new', @extschema@.pixl_scope_names(v_bits)));
	END IF;
	IF v_limit IS DISTINCT FROM r.rate_limit THEN
		v_changes := v_changes || jsonb_build_object('rate_limit', jsonb_build_object('old', r.rate_limit, 'new', v_limit));
	END IF;
	IF v_expires IS DISTINCT FROM r.expires_at THEN
		v_changes := v_changes || jsonb_build_object('expires_at', jsonb_build_object('old', r.expires_at, 'new', v_expires));
	END IF;
	IF v_changes = '{}' THEN
		RETURN;					-- nothing changes, nothing to audit
	END IF;

	UPDATE @extschema@.pixl_token_registry t
	   SET name = v_name, scope_bits = v_bits, rate_limit = v_limit, expires_at = v_expires
	 WHERE t.token_id = r.token_id;
	PERFORM @extschema@.pixl_write_audit('update', r.token_id, r.store_id, v_changes);
END
$$;
COMMENT ON FUNCTION pixl_update_token(text, text, text[], int, timestamptz) IS
	'Changes a token''s name, scopes, rate limit or expiry; NULL leaves a field unchanged';

CREATE VIEW pixl_tokens AS
SELECT t.token_id,
	   t.store_id,
	   t.name,
	   t.mode,
	   t.hint,
	   @extschema@.pixl_scope_names(t.scope_bits) AS scopes,
	   t.rate_limit,
	   least(t.rate_limit, p.max_rate_limit) AS effective_rate_limit,
	   t.expires_at,
	   CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
			WHEN t.expires_at <= clock_timestamp() THEN 'expired'
			ELSE 'active' END AS status,
	   t.created_at,
	   a.last_used_at,
	   t.rotated_at,
	   t.revoked_at
  FROM @extschema@.pixl_token_registry t
  JOIN @extschema@.pixl_stores s ON s.store_id = t.store_id
  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id;
COMMENT ON VIEW pixl_tokens IS 'Tokens with their computed status; never shows a hash';

-- Nothing here is for PUBLIC but the pure format and scope helpers (the
-- pixl_tokens view calls pixl_scope_names as its reader): README.md shows the grants for an admin role
-- and for an app-server role.
REVOKE ALL ON pixl_plans, pixl_stores, pixl_token_registry, pixl_token_activity,
	pixl_audit, pixl_tokens FROM PUBLIC;
REVOKE ALL ON FUNCTION
	pixl_new_token_id(), pixl_new_secret(text), pixl_secret_hash(text),
	pixl_invalidate_token_cache(), pixl_plans_restore_seed(), pixl_quote(text),
	pixl_check_store_id(text), pixl_check_name(text), pixl_check_expiry(timestamptz),
	pixl_resolve_rate_limit(text, int), pixl_lock_token(text),
	pixl_write_audit(text, text, text, jsonb),
	pixl_set_store_plan(text, text),
	pixl_create_token(text, text, text[], timestamptz, int, text),
	pixl_rotate_token(text, interval), pixl_revoke_token(text),
	pixl_update_token(text, text, text[], int, timestamptz)
	FROM PUBLIC;

------------------------------------------------------------------------------
-- Verification: the hot path (src/verify.c, token_cache.c, rate_limit.c)
------------------------------------------------------------------------------

-- Not STRICT (a NULL token is a 401 "missing"), VOLATILE (rate limit and
-- clock), PARALLEL UNSAFE (it uses a fresh snapshot and shared counters).
-- It reads the registry as the registry's owner, so EXECUTE is all an
-- app-server role needs; README.md shows that grant.
CREATE FUNCTION pixl_verify_token(token text,
								  scope text DEFAULT NULL,
								  store_id text DEFAULT NULL,
								  method text DEFAULT NULL,
								  endpoint text DEFAULT NULL,
								  ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_token'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) IS
	'Verifies an API token for one request: status 200, 401, 403 or 429 with the reason and rate-limit state; never raises for a bad token';
REVOKE ALL ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) FROM PUBLIC;

-- Shared memory the rate limiter needs for a number of tracked tokens, to
-- size pixltoken.max_tracked_tokens.
CREATE FUNCTION pixl_rate_limit_shmem_size(tokens int) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_rate_limit_shmem_size'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pixl_rate_limit_shmem_size(int) IS
	'Bytes of shared memory the rate limiter asks for to track this many tokens';
------------------------------------------------------------------------------
-- Usage: raw events, hourly rollups, maintenance, analytics
-- (src/usage_queue.c, usage_worker.c and usage_store.c feed these tables)
------------------------------------------------------------------------------

-- One row per counted verification (status 200, 403 or 429).  Partitioned
-- by day (UTC), partitions named pixl_usage_events_YYYYMMDD and created by
-- pixl_run_maintenance(); the default partition takes any event no dated
-- partition covers, so an event is never rejected.  request_id / 16 is the
-- row's at (in microseconds since 2000-01-01), which lets a late
-- pixl_log_response() find its row's partition.
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
	PRIMARY KEY (token_id, bucket, method, endpoint)
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
		INCLUDE (requests, errors, response_ms_sum, response_ms_count)
);
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
-- Writing usage (called by the worker and by write-through in C, and by
-- pixl_backfill_usage; granted to no one)
------------------------------------------------------------------------------

-- Writers of usage and the daily roll-up of maintenance: writers hold this
-- advisory lock shared from before their first table access to their
-- commit, maintenance takes it exclusive to roll a day up and move
-- pixl_usage_daily_state.rolled_up_until.  So a writer adds an event of a
-- rolled-up day to pixl_usage_daily exactly when its hourly row is not part
-- of what maintenance summed.  Maintenance takes it before any other lock
-- of its own, and writers before theirs, so the two never wait in opposite
-- orders (a deadlock).  The key is hashtext('pixltoken daily rollup').
CREATE FUNCTION pixl_usage_daily_until() RETURNS timestamptz
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock_shared(hashtext('pixltoken daily rollup'));
	RETURN (SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s);
END
$$;

-- Inserts events and adds them to the rollups and last_used_at.  An event
-- already present (same request_id and at: a batch written again after a
-- worker died between commit and dequeue) is skipped, rollups included.
-- Events of days already rolled up by day (a backfill) go to
-- pixl_usage_daily too.
CREATE FUNCTION pixl_insert_usage(request_ids bigint[], ats timestamptz[],
								  token_ids text[], methods text[],
								  endpoints text[], ips inet[],
								  statuses int[], verify_statuses int[],
								  response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	v_ids		bigint[];
	v_ats		timestamptz[];
	v_statuses	int[];
	v_ms		double precision[];
	v_daily		timestamptz := @extschema@.pixl_usage_daily_until();
BEGIN
	WITH src AS (
		SELECT u.*
		  FROM unnest(request_ids, ats, token_ids, methods, endpoints, ips,
					  statuses, verify_statuses, response_ms)
			AS u(request_id, at, token_id, method, endpoint, ip, status,
				 verify_status, response_ms)
	), ins AS (
		INSERT INTO @extschema@.pixl_usage_events AS e
			(at, request_id, token_id, store_id, method, endpoint, ip,
			 status, verify_status, response_ms)
		SELECT s.at, s.request_id, s.token_id, r.store_id, s.method, s.endpoint,
			   s.ip, s.status, s.verify_status, s.response_ms
		  FROM src s
		  LEFT JOIN @extschema@.pixl_token_registry r ON r.token_id = s.token_id
		ON CONFLICT DO NOTHING
		RETURNING e.at, e.token_id, e.method, e.endpoint, e.status, e.response_ms
	), rollup AS (
		INSERT INTO @extschema@.pixl_usage_hourly AS h
			(token_id, bucket, method, endpoint, requests, errors,
			 response_ms_sum, response_ms_count)
		SELECT i.token_id, date_trunc('hour', i.at, 'UTC'),
			   coalesce(i.method, ''), coalesce(i.endpoint, ''),
			   count(*), count(*) FILTER (WHERE i.status >= 400),
			   coalesce(sum(i.response_ms), 0), count(i.response_ms)
		  FROM ins i
		 GROUP BY 1, 2, 3, 4
		ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
		   SET requests = h.requests + excluded.requests,
			   errors = h.errors + excluded.errors,
			   response_ms_sum = h.response_ms_sum + excluded.response_ms_sum,
			   response_ms_count = h.response_ms_count + excluded.response_ms_count
	), daily AS (
		INSERT INTO @extschema@.pixl_usage_daily AS d
			(token_id, bucket, method, endpoint, requests, errors,
			 response_ms_sum, response_ms_count)
		SELECT i.token_id, date_trunc('day', i.at, 'UTC'),
			   coalesce(i.method, ''), coalesce(i.endpoint, ''),
			   count(*), count(*) FILTER (WHERE i.status >= 400),
			   coalesce(sum(i.response_ms), 0), count(i.response_ms)
		  FROM ins i
		 WHERE i.at < v_daily
		 GROUP BY 1, 2, 3, 4
		ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
		   SET requests = d.requests + excluded.requests,
			   errors = d.errors + excluded.errors,
			   response_ms_sum = d.response_ms_sum + excluded.response_ms_sum,
			   response_ms_count = d.response_ms_count + excluded.response_ms_count
	), activity AS (
		INSERT INTO @extschema@.pixl_token_activity AS a (token_id, last_used_at)
		SELECT i.token_id, max(i.at)
		  FROM ins i
		 WHERE EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry r
						WHERE r.token_id = i.token_id)
		 GROUP BY i.token_id
		ON CONFLICT (token_id) DO UPDATE
		   SET last_used_at = greatest(a.last_used_at, excluded.last_used_at)
	)
	SELECT count(*) INTO n FROM ins;

	-- responses that arrived before their event (rare: written through)
	IF EXISTS (SELECT 1 FROM @extschema@.pixl_usage_unmatched_responses) THEN
		WITH m AS (
			DELETE FROM @extschema@.pixl_usage_unmatched_responses u
			 WHERE u.request_id = ANY (request_ids)
			RETURNING u.request_id, u.at, u.status, u.response_ms
		)
		SELECT array_agg(m.request_id), array_agg(m.at), array_agg(m.status::int),
			   array_agg(m.response_ms)
		  INTO v_ids, v_ats, v_statuses, v_ms
		  FROM m;
		IF v_ids IS NOT NULL THEN
			PERFORM @extschema@.pixl_apply_responses(v_ids, v_ats, v_statuses, v_ms);
		END IF;
	END IF;
	RETURN n;
END
$$;

-- What the worker writes for queued verification events.
CREATE FUNCTION pixl_store_events(request_ids bigint[], ats timestamptz[],
								  token_ids text[], methods text[],
								  endpoints text[], ips inet[], statuses int[])
	RETURNS bigint
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_insert_usage(request_ids, ats, token_ids, methods,
		endpoints, ips, statuses, statuses,
		array_fill(NULL::double precision, ARRAY[cardinality(request_ids)]));
$$;

-- Sets the final status and response time of usage rows and moves their
-- rollups along (old values out, new values in).  The last report of a
-- request wins.  Responses without a row go to
-- pixl_usage_unmatched_responses.  Returns the rows updated.  A late
-- response on a day already rolled up by day moves its daily row too.
CREATE FUNCTION pixl_apply_responses(request_ids bigint[], ats timestamptz[],
									 statuses int[], response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
	v_daily	timestamptz := @extschema@.pixl_usage_daily_until();
BEGIN
	WITH src AS (
		SELECT DISTINCT ON (u.request_id) u.request_id, u.at, u.status, u.response_ms
		  FROM unnest(request_ids, ats, statuses, response_ms) WITH ORDINALITY
			AS u(request_id, at, status, response_ms, ord)
		 ORDER BY u.request_id, u.ord DESC
	), upd AS (
		-- o is the row as it was before this statement
		UPDATE @extschema@.pixl_usage_events e
		   SET status = s.status, response_ms = s.response_ms
		  FROM src s, @extschema@.pixl_usage_events o
		 WHERE e.request_id = s.request_id AND e.at = s.at
		   AND o.request_id = s.request_id AND o.at = s.at
		RETURNING e.request_id, e.token_id, e.at, e.method, e.endpoint,
				  o.status AS old_status, o.response_ms AS old_ms,
				  e.status AS new_status, e.response_ms AS new_ms
	), rollup AS (
		UPDATE @extschema@.pixl_usage_hourly h
		   SET errors = h.errors + d.errors,
			   response_ms_sum = h.response_ms_sum + d.ms_sum,
			   response_ms_count = h.response_ms_count + d.ms_count
		  FROM (SELECT u.token_id, date_trunc('hour', u.at, 'UTC') AS bucket,
					   coalesce(u.method, '') AS method,
					   coalesce(u.endpoint, '') AS endpoint,
					   sum((u.new_status >= 400)::int - (u.old_status >= 400)::int) AS errors,
					   sum(coalesce(u.new_ms, 0) - coalesce(u.old_ms, 0)) AS ms_sum,
					   sum((u.new_ms IS NOT NULL)::int - (u.old_ms IS NOT NULL)::int) AS ms_count
				  FROM upd u
				 GROUP BY 1, 2, 3, 4) d
		 WHERE h.token_id = d.token_id AND h.bucket = d.bucket
		   AND h.method = d.method AND h.endpoint = d.endpoint
	), daily AS (
		UPDATE @extschema@.pixl_usage_daily h
		   SET errors = h.errors + d.errors,
			   response_ms_sum = h.response_ms_sum + d.ms_sum,
			   response_ms_count = h.response_ms_count + d.ms_count
		  FROM (SELECT u.token_id, date_trunc('day', u.at, 'UTC') AS bucket,
					   coalesce(u.method, '') AS method,
					   coalesce(u.endpoint, '') AS endpoint,
					   sum((u.new_status >= 400)::int - (u.old_status >= 400)::int) AS errors,
					   sum(coalesce(u.new_ms, 0) - coalesce(u.old_ms, 0)) AS ms_sum,
					   sum((u.new_ms IS NOT NULL)::int - (u.old_ms IS NOT NULL)::int) AS ms_count
				  FROM upd u
				 WHERE u.at < v_daily
				 GROUP BY 1, 2, 3, 4) d
		 WHERE h.token_id = d.token_id AND h.bucket = d.bucket
		   AND h.method = d.method AND h.endpoint = d.endpoint
	), unmatched AS (
		INSERT INTO @extschema@.pixl_usage_unmatched_responses AS x
			(request_id, at, status, response_ms)
		SELECT s.request_id, s.at, s.status, s.response_ms
		  FROM src s
		 WHERE NOT EXISTS (SELECT 1 FROM upd u WHERE u.request_id = s.request_id)
		ON CONFLICT (request_id) DO UPDATE
		   SET status = excluded.status, response_ms = excluded.response_ms,
			   received_at = excluded.received_at
	)
	SELECT count(*) INTO n FROM upd;
	RETURN n;
END
$$;

------------------------------------------------------------------------------
-- pixl_log_response and pixl_stats (src/usage_sql.c)
------------------------------------------------------------------------------

-- Queued like a verification event; errors only for invalid arguments.
-- Not STRICT: NULL arguments are an error that says so.
CREATE FUNCTION pixl_log_response(request_id bigint, status int,
								  response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pixl_log_response(bigint, int, double precision) IS
	'Reports the final HTTP status and response time of a verified request; lands on its usage row';

CREATE FUNCTION pixl_stats(OUT datname text, OUT worker_state text,
						   OUT tokens_tracked bigint,
						   OUT rate_limit_full_rejections bigint,
						   OUT events_queued bigint, OUT events_flushed bigint,
						   OUT events_written_through bigint,
						   OUT events_waited bigint,
						   OUT events_dropped bigint,
						   OUT responses_applied bigint,
						   OUT flush_lag interval, OUT last_flush_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION pixl_stats() IS
	'Usage pipeline and rate limiter counters: one row per database of pixltoken.database, one (datname NULL) for all others';

------------------------------------------------------------------------------
-- Maintenance (pg_partman's split: the logic is here, the worker calls it
-- every minute, an operator may call it any time)
------------------------------------------------------------------------------

-- The partition of one UTC day, created if missing; rows of that day
-- waiting in the default partition move into it.  Returns true if created.
CREATE FUNCTION pixl_create_usage_partition(day date) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_name	text := 'pixl_usage_events_' || to_char(day, 'YYYYMMDD');
	v_from	timestamptz := day::timestamp AT TIME ZONE 'UTC';
	v_to	timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(format('%I.%I', '@extschema@', v_name)) IS NOT NULL THEN
		RETURN false;
	END IF;
	EXECUTE format('CREATE TABLE %I.%I (LIKE %I.pixl_usage_events INCLUDING DEFAULTS)',
				   '@extschema@', v_name, '@extschema@');
	EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY (request_id, at)', '@extschema@', v_name);
	EXECUTE format('CREATE INDEX %I ON %I.%I (token_id, at)', v_name || '_token_at', '@extschema@', v_name);
	EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', '@extschema@', v_name);
	EXECUTE format('WITH m AS (DELETE FROM %I.pixl_usage_events_default WHERE at >= $1 AND at < $2 RETURNING *) '
				   'INSERT INTO %I.%I SELECT * FROM m',
				   '@extschema@', '@extschema@', v_name)
		USING v_from, v_to;
	EXECUTE format('ALTER TABLE %I.pixl_usage_events ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
				   '@extschema@', '@extschema@', v_name, v_from, v_to);
	RETURN true;
END
$$;

-- pixltoken.usage_retention as an interval (the GUC is in minutes).
CREATE FUNCTION pixl_usage_retention() RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT s.setting::bigint FROM pg_catalog.pg_settings s
					  WHERE s.name = 'pixltoken.usage_retention'), 90 * 24 * 60)
		   * interval '1 minute';
$$;

-- Creates the partitions of yesterday .. 7 days ahead (and of any day
-- within retention whose rows wait in the default partition), drops the
-- partitions, and default-partition rows, older than the retention, and
-- purges unmatched responses older than an hour.  Runs never overlap: a
-- second concurrent call returns at once with NULLs.
CREATE FUNCTION pixl_run_maintenance(retention interval DEFAULT NULL,
									 OUT partitions_created int,
									 OUT partitions_dropped int,
									 OUT rows_purged bigint)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET lock_timeout = '2s'	-- a long query on the default partition: retry later
AS $$
DECLARE
	v_retention	interval := coalesce(retention, @extschema@.pixl_usage_retention());
	v_cutoff	timestamptz;
	v_today		date := (now() AT TIME ZONE 'UTC')::date;
	v_day		date;
	v_n			bigint;
	v_until		timestamptz := date_trunc('day', now(), 'UTC');
	v_done		timestamptz;
	r			record;
BEGIN
	IF v_retention <= interval '0' THEN
		RAISE EXCEPTION 'invalid usage retention %', v_retention
			USING ERRCODE = 'PX030',
				  HINT = 'Use a positive interval, e.g. ''90 days''.';
	END IF;
	IF NOT pg_try_advisory_xact_lock(hashtext('pixltoken maintenance')) THEN
		RETURN;					-- another run is under way
	END IF;
	v_cutoff := now() - v_retention;
	partitions_created := 0;
	partitions_dropped := 0;
	rows_purged := 0;

	-- Roll the days that are over up into pixl_usage_daily, first (before
	-- any partition lock: see pixl_usage_daily_until).  Writers wait for
	-- this transaction to end, so only once a day; if they keep the lock
	-- past lock_timeout the roll-up is left to the next run.
	SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
	IF v_done IS NULL OR v_done < v_until THEN
		BEGIN
			PERFORM pg_advisory_xact_lock(hashtext('pixltoken daily rollup'));
			-- a new snapshot: every writer that saw the old state has committed
			SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
			-- the hourly rows are the truth: a daily row is replaced, not added to
			INSERT INTO @extschema@.pixl_usage_daily AS d
				(token_id, bucket, method, endpoint, requests, errors,
				 response_ms_sum, response_ms_count)
			SELECT h.token_id, date_trunc('day', h.bucket, 'UTC'), h.method, h.endpoint,
				   sum(h.requests), sum(h.errors), sum(h.response_ms_sum), sum(h.response_ms_count)
			  FROM @extschema@.pixl_usage_hourly h
			 WHERE h.bucket >= coalesce(v_done, '-infinity') AND h.bucket < v_until
			 GROUP BY 1, 2, 3, 4
			ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
			   SET requests = excluded.requests, errors = excluded.errors,
				   response_ms_sum = excluded.response_ms_sum,
				   response_ms_count = excluded.response_ms_count;
			INSERT INTO @extschema@.pixl_usage_daily_state AS s (rolled_up_until)
			VALUES (greatest(v_until, v_done))
			ON CONFLICT (singleton) DO UPDATE SET rolled_up_until = excluded.rolled_up_until;
		EXCEPTION WHEN lock_not_available THEN
			NULL;				-- writers busy: the next run rolls these days up
		END;
	END IF;

	FOR v_day IN
		SELECT v_today + k FROM generate_series(-1, 7) AS k
		 WHERE v_today + k + 1 > (v_cutoff AT TIME ZONE 'UTC')::date
		UNION
		SELECT DISTINCT (e.at AT TIME ZONE 'UTC')::date
		  FROM @extschema@.pixl_usage_events_default e
		 WHERE e.at >= v_cutoff AND e.at < 'infinity'
		ORDER BY 1
	LOOP
		IF @extschema@.pixl_create_usage_partition(v_day) THEN
			partitions_created := partitions_created + 1;
		END IF;
	END LOOP;

	FOR r IN
		SELECT c.relname
		  FROM pg_inherits i
		  JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = '@extschema@.pixl_usage_events'::regclass
		   AND c.relname ~ '^pixl_usage_events_[0-9]{8}$'
		   AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= v_cutoff
		 ORDER BY 1
	LOOP
		EXECUTE format('DROP TABLE %I.%I', '@extschema@', r.relname);
		partitions_dropped := partitions_dropped + 1;
	END LOOP;

	DELETE FROM @extschema@.pixl_usage_events_default e WHERE e.at < v_cutoff;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	rows_purged := v_n;
	DELETE FROM @extschema@.pixl_usage_unmatched_responses u
	 WHERE u.received_at < now() - interval '1 hour';
END
$$;
COMMENT ON FUNCTION pixl_run_maintenance(interval) IS
	'Creates usage partitions ahead, drops raw usage past pixltoken.usage_retention (rollups stay); the worker calls it every minute';

------------------------------------------------------------------------------
-- Loading historical usage
------------------------------------------------------------------------------

-- Loads events with explicit times (a migration, or tests): raw rows (for
-- days still within the retention), rollups and last_used_at, as the worker
-- would have written them.  Arrays are parallel; methods, endpoints,
-- response_ms and ips may be NULL; statuses default to 200.  Request ids are
-- at * 16 + n (n counting events of the same microsecond in this call), so
-- loading the same microsecond of the same data twice is a unique error.
CREATE FUNCTION pixl_backfill_usage(token_ids text[], ats timestamptz[],
									methods text[] DEFAULT NULL,
									endpoints text[] DEFAULT NULL,
									statuses int[] DEFAULT NULL,
									response_ms double precision[] DEFAULT NULL,
									ips inet[] DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			int := coalesce(cardinality(token_ids), 0);
	v_bad		text;
	v_status	int;
	v_ms		double precision;
	v_cutoff	timestamptz := now() - @extschema@.pixl_usage_retention();
	v_day		date;
	v_ids		bigint[];
	v_vs		int[];
BEGIN
	IF cardinality(ats) IS DISTINCT FROM n
	   OR coalesce(cardinality(methods), n) <> n OR coalesce(cardinality(endpoints), n) <> n
	   OR coalesce(cardinality(statuses), n) <> n OR coalesce(cardinality(response_ms), n) <> n
	   OR coalesce(cardinality(ips), n) <> n THEN
		RAISE EXCEPTION 'usage arrays of different lengths'
			USING ERRCODE = 'PX031',
				  HINT = format('Pass %s elements in every array that is not NULL (one per event).', n);
	END IF;
	IF n = 0 THEN
		RETURN 0;
	END IF;

	SELECT t INTO v_bad FROM unnest(token_ids) AS t
	 WHERE t IS NULL OR NOT EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry g WHERE g.token_id = t)
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'token % does not exist', @extschema@.pixl_quote(v_bad)
			USING ERRCODE = 'PX011',
				  HINT = 'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.';
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(ats) AS a WHERE a IS NULL OR NOT isfinite(a)) THEN
		RAISE EXCEPTION 'invalid event time %',
			(SELECT coalesce(a::text, 'NULL') FROM unnest(ats) AS a WHERE a IS NULL OR NOT isfinite(a) LIMIT 1)
			USING ERRCODE = 'PX031',
				  HINT = 'Every event needs a finite time.';
	END IF;
	SELECT s INTO v_status FROM unnest(statuses) AS s WHERE s IS NULL OR s NOT BETWEEN 100 AND 599 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid HTTP status %', coalesce(v_status::text, 'NULL')
			USING ERRCODE = 'PX016',
				  HINT = 'An HTTP status is between 100 and 599.';
	END IF;
	SELECT m INTO v_ms FROM unnest(response_ms) AS m
	 WHERE m < 0 OR m = 'NaN' OR m IN ('Infinity', '-Infinity') LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'invalid response time % ms', v_ms
			USING ERRCODE = 'PX017',
				  HINT = 'A response time is a finite number of milliseconds, 0 or more.';
	END IF;

	-- before the partition locks below (see pixl_usage_daily_until)
	PERFORM @extschema@.pixl_usage_daily_until();
	-- partitions for the days still within retention
	FOR v_day IN
		SELECT DISTINCT (a AT TIME ZONE 'UTC')::date FROM unnest(ats) AS a WHERE a >= v_cutoff
	LOOP
		PERFORM @extschema@.pixl_create_usage_partition(v_day);
	END LOOP;

	SELECT array_agg(x.id ORDER BY x.ord), array_agg(x.vs ORDER BY x.ord)
	  INTO v_ids, v_vs
	  FROM (SELECT u.ord,
				   ((extract(epoch FROM u.at) - 946684800) * 1000000)::bigint * 16
				   + row_number() OVER (PARTITION BY u.at ORDER BY u.ord) - 1 AS id,
				   CASE WHEN u.st IN (403, 429) THEN u.st ELSE 200 END AS vs
			  FROM unnest(ats, statuses) WITH ORDINALITY AS u(at, st, ord)) x;

	n := @extschema@.pixl_insert_usage(
		v_ids, ats, token_ids,
		coalesce(methods, array_fill(NULL::text, ARRAY[n])),
		coalesce(endpoints, array_fill(NULL::text, ARRAY[n])),
		coalesce(ips, array_fill(NULL::inet, ARRAY[n])),
		coalesce(statuses, array_fill(200, ARRAY[n])),
		v_vs,
		coalesce(response_ms, array_fill(NULL::double precision, ARRAY[n])));
	-- raw events past the retention are only in the rollups, as if
	-- maintenance had already run
	DELETE FROM @extschema@.pixl_usage_events_default e
	 WHERE e.at < v_cutoff AND e.request_id = ANY (v_ids);
	RETURN n;
END
$$;
COMMENT ON FUNCTION pixl_backfill_usage(text[], timestamptz[], text[], text[], int[], double precision[], inet[]) IS
	'Loads historical usage events with explicit times into raw events, rollups and last_used_at';

------------------------------------------------------------------------------
-- Analytics (the user guide's "Viewing Token Usage")
------------------------------------------------------------------------------

-- The start of a period: today is the last 24 hours, year the last 365 days.
CREATE FUNCTION pixl_usage_period_start(period text) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	CASE period
		WHEN 'today' THEN RETURN now() - interval '24 hours';
		WHEN '7d' THEN RETURN now() - interval '7 days';
		WHEN '30d' THEN RETURN now() - interval '30 days';
		WHEN 'year' THEN RETURN now() - interval '365 days';
		WHEN 'all' THEN RETURN '-infinity';
		ELSE
			RAISE EXCEPTION 'unknown period %', @extschema@.pixl_quote(period)
				USING ERRCODE = 'PX015',
					  HINT = 'Valid periods are today, 7d, 30d, year and all.';
	END CASE;
END
$$;

-- Analytics are for existing tokens (revoked ones included); an unknown id
-- is the same error as in the management functions.
CREATE FUNCTION pixl_check_usage_token(token_id text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry t
					WHERE t.token_id = pixl_check_usage_token.token_id) THEN
		RAISE EXCEPTION 'token % does not exist', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX011',
				  HINT = 'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.';
	END IF;
END
$$;

-- Usage of a token since a moment, per method, endpoint and bucket: the
-- whole UTC days rolled up (when by_day) from pixl_usage_daily, the other
-- whole hours after since's hour from pixl_usage_hourly, since's own hour
-- from the raw events (exact to the microsecond while they are retained).
-- Each moment is counted at one level only.  A year of a busy token is
-- then ~365 x endpoints daily rows plus at most two days of hourly ones,
-- instead of 24 times as many scattered hourly rows.
--
-- PL/pgSQL with EXECUTE, not an (uninlinable: SET search_path) SQL
-- function: the bounds reach the planner as constants, so the raw branch
-- is planned over the one partition of since's hour, not ~100 with
-- run-time pruning (planning that was most of a "today" call), and a
-- STABLE function reads rolled_up_until and the rollups in one snapshot.
CREATE FUNCTION pixl_usage_rows(token_id text, since timestamptz, by_day boolean DEFAULT true)
	RETURNS TABLE (bucket timestamptz, method text, endpoint text,
				   requests bigint, errors bigint,
				   response_ms_sum double precision, response_ms_count bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_hour	timestamptz := date_trunc('hour', since, 'UTC');
	v_first	timestamptz := v_hour + interval '1 hour';	-- first whole hour
	v_day	timestamptz := date_trunc('day', v_first, 'UTC');	-- first whole day
	v_until	timestamptz := '-infinity';		-- days before it are in pixl_usage_daily
BEGIN
	IF v_day < v_first THEN
		v_day := v_day + interval '1 day';
	END IF;
	IF by_day THEN
		v_until := coalesce((SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s),
							'-infinity');
	END IF;
	IF v_until <= v_day THEN
		-- no whole day rolled up: every whole hour from the hourly rollups
		v_day := 'infinity';
		v_until := 'infinity';
	END IF;
	RETURN QUERY EXECUTE $q$
		SELECT d.bucket, d.method, d.endpoint, d.requests, d.errors,
			   d.response_ms_sum, d.response_ms_count
		  FROM @extschema@.pixl_usage_daily d
		 WHERE d.token_id = $1 AND d.bucket >= $4 AND d.bucket < $5
		UNION ALL
		SELECT h.bucket, h.method, h.endpoint, h.requests, h.errors,
			   h.response_ms_sum, h.response_ms_count
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = $1 AND h.bucket >= $3 AND h.bucket < $4
		UNION ALL
		SELECT h.bucket, h.method, h.endpoint, h.requests, h.errors,
			   h.response_ms_sum, h.response_ms_count
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = $1 AND h.bucket >= $5
		UNION ALL
		SELECT $6, coalesce(e.method, ''), coalesce(e.endpoint, ''),
			   count(*), count(*) FILTER (WHERE e.status >= 400),
			   coalesce(sum(e.response_ms), 0), count(e.response_ms)
		  FROM @extschema@.pixl_usage_events e
		 WHERE e.token_id = $1 AND e.at >= $2 AND e.at < $3
		 GROUP BY 2, 3
		$q$ USING token_id, since, v_first, v_day, v_until, v_hour;
END
$$;

CREATE FUNCTION pixl_usage_summary(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (total_requests bigint, requests_today bigint,
				   avg_response_ms double precision, error_rate double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	-- today's total is requests_today: one pass
	RETURN QUERY
	SELECT coalesce(sum(u.requests), 0)::bigint,
		   CASE WHEN period = 'today' THEN coalesce(sum(u.requests), 0)::bigint
				ELSE (SELECT coalesce(sum(t.requests), 0)::bigint
						FROM @extschema@.pixl_usage_rows(pixl_usage_summary.token_id,
														 now() - interval '24 hours') t)
		   END,
		   sum(u.response_ms_sum) / nullif(sum(u.response_ms_count), 0),
		   100.0::double precision * sum(u.errors) / nullif(sum(u.requests), 0)
	  FROM @extschema@.pixl_usage_rows(pixl_usage_summary.token_id, v_since) u;
END
$$;
COMMENT ON FUNCTION pixl_usage_summary(text, text) IS
	'Total requests of the period, requests of the last 24 hours, average response time and error rate (percent of status >= 400)';

CREATE FUNCTION pixl_usage_timeline(token_id text, period text)
	RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
	v_unit	text := CASE WHEN period IN ('today', '7d') THEN 'hour'
						 WHEN period IN ('30d', 'year') THEN 'day'
						 ELSE 'month' END;
	v_first	timestamptz;
	-- Daily rollups are UTC days: they fit day and month buckets only when
	-- the session's days are UTC days too; otherwise hourly rows (slower,
	-- same answer).
	v_by_day	boolean := v_unit <> 'hour'
		AND lower(current_setting('TimeZone')) IN
			('utc', 'etc/utc', 'uct', 'etc/uct', 'gmt', 'etc/gmt', 'gmt0', 'etc/gmt0',
			 'gmt+0', 'etc/gmt+0', 'gmt-0', 'etc/gmt-0', 'greenwich', 'etc/greenwich',
			 'universal', 'etc/universal', 'zulu', 'etc/zulu');
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	IF period = 'all' THEN
		SELECT least(min(t.created_at), (SELECT min(h.bucket) FROM @extschema@.pixl_usage_hourly h
										  WHERE h.token_id = pixl_usage_timeline.token_id))
		  INTO v_first
		  FROM @extschema@.pixl_token_registry t
		 WHERE t.token_id = pixl_usage_timeline.token_id;
	ELSE
		v_first := v_since;
	END IF;
	v_first := date_trunc(v_unit, v_first);

	RETURN QUERY
	SELECT g.b, coalesce(sum(u.requests), 0)::bigint, coalesce(sum(u.errors), 0)::bigint
	  FROM generate_series(v_first, date_trunc(v_unit, now()), ('1 ' || v_unit)::interval) AS g(b)
	  LEFT JOIN @extschema@.pixl_usage_rows(pixl_usage_timeline.token_id, v_since, v_by_day) u
		ON greatest(date_trunc(v_unit, u.bucket), v_first) = g.b
	 GROUP BY g.b
	 ORDER BY g.b;
END
$$;
COMMENT ON FUNCTION pixl_usage_timeline(text, text) IS
	'Requests and errors per hour (today, 7d), day (30d, year) or month (all), empty buckets included';

CREATE FUNCTION pixl_usage_endpoints(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (method text, endpoint text, requests bigint,
				   success_rate double precision, avg_response_ms double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	RETURN QUERY
	SELECT nullif(u.method, ''), nullif(u.endpoint, ''), sum(u.requests)::bigint,
		   100.0::double precision * (sum(u.requests) - sum(u.errors)) / sum(u.requests),
		   sum(u.response_ms_sum) / nullif(sum(u.response_ms_count), 0)
	  FROM @extschema@.pixl_usage_rows(pixl_usage_endpoints.token_id, v_since) u
	 GROUP BY u.method, u.endpoint
	HAVING sum(u.requests) > 0
	 ORDER BY 3 DESC, 1, 2;
END
$$;
COMMENT ON FUNCTION pixl_usage_endpoints(text, text) IS
	'Requests, success rate (percent of status < 400) and average response time per method and endpoint, most called first';

CREATE FUNCTION pixl_check_recent_calls(token_id text, status int, lim int)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id);
	IF status IS NOT NULL AND status NOT BETWEEN 100 AND 599 THEN
		RAISE EXCEPTION 'invalid HTTP status %', status
			USING ERRCODE = 'PX016',
				  HINT = 'An HTTP status is between 100 and 599, or NULL for every status.';
	END IF;
	IF lim IS NULL OR lim NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'invalid limit %', coalesce(lim::text, 'NULL')
			USING ERRCODE = 'PX031',
				  HINT = 'Ask for 1 to 1000 calls.';
	END IF;
END
$$;

-- SQL, not PL/pgSQL: the argument status and the result column status
-- share their name (the public contract).
CREATE FUNCTION pixl_recent_calls(token_id text, status int DEFAULT NULL, lim int DEFAULT 20)
	RETURNS TABLE (at timestamptz, method text, endpoint text, status int,
				   ip inet, response_ms double precision)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_check_recent_calls($1, $2, $3);
	SELECT e.at, e.method, e.endpoint, e.status::int, e.ip, e.response_ms
	  FROM @extschema@.pixl_usage_events e
	 WHERE e.token_id = $1
	   AND ($2 IS NULL OR e.status = $2)
	 ORDER BY e.at DESC, e.request_id DESC
	 LIMIT $3;
$$;
COMMENT ON FUNCTION pixl_recent_calls(text, int, int) IS
	'The latest calls of a token, newest first, optionally of one status';

REVOKE ALL ON pixl_usage_events, pixl_usage_events_default, pixl_usage_hourly,
	pixl_usage_daily, pixl_usage_daily_state, pixl_usage_unmatched_responses FROM PUBLIC;
REVOKE ALL ON FUNCTION
	pixl_insert_usage(bigint[], timestamptz[], text[], text[], text[], inet[], int[], int[], double precision[]),
	pixl_store_events(bigint[], timestamptz[], text[], text[], text[], inet[], int[]),
	pixl_apply_responses(bigint[], timestamptz[], int[], double precision[]),
	pixl_log_response(bigint, int, double precision),
	pixl_stats(),
	pixl_create_usage_partition(date),
	pixl_usage_retention(),
	pixl_run_maintenance(interval),
	pixl_backfill_usage(text[], timestamptz[], text[], text[], int[], double precision[], inet[]),
	pixl_usage_period_start(text),
	pixl_check_usage_token(text),
	pixl_usage_rows(text, timestamptz, boolean),
	pixl_usage_daily_until(),
	pixl_usage_summary(text, text),
	pixl_usage_timeline(text, text),
	pixl_usage_endpoints(text, text),
	pixl_check_recent_calls(text, int, int),
	pixl_recent_calls(text, int, int)
	FROM PUBLIC;
