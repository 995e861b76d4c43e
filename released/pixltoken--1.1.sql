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
/* pixltoken 1.0 -> 1.1 — upgrade script, assembled from src/sql/1.0--1.1/ by the Makefile. */

\echo Use "ALTER EXTENSION pixltoken UPDATE TO '1.1'" to load this file. \quit

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

------------------------------------------------------------------------------
-- Latency histograms (src/latency.c): response times in base-2 exponential
-- buckets, 8 per doubling from 1/16 ms to 2^27 ms (37.3 h).  Exact counts,
-- so they merge by adding: a quantile has the rank percentile_disc takes
-- and is within 4.43 % of percentile_disc's value (1/32 ms below 1/16 ms),
-- whatever was merged.  Before the rollups and the analytics that use it
-- (30_usage.sql, 11_store_admins.sql), hence this fragment's place.
------------------------------------------------------------------------------
CREATE TYPE @extschema@.pixl_latency;

CREATE FUNCTION @extschema@.pixl_latency_in(cstring) RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_in'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_out(@extschema@.pixl_latency) RETURNS cstring
	AS 'MODULE_PATHNAME', 'pixl_latency_out'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_recv(internal) RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_recv'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_send(@extschema@.pixl_latency) RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_latency_send'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.pixl_latency (
	INPUT = @extschema@.pixl_latency_in,
	OUTPUT = @extschema@.pixl_latency_out,
	RECEIVE = @extschema@.pixl_latency_recv,
	SEND = @extschema@.pixl_latency_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE @extschema@.pixl_latency IS
	'Response-time histogram: {lower_ms: count, ...}, 8 buckets per doubling; quantiles within 4.43 %, merged without loss';

-- Non-strict: NULL is no histogram (NULL + h = h), so that an upsert can
-- write pixl_latency_add(row.latency, excluded.latency).
CREATE FUNCTION @extschema@.pixl_latency_add(a @extschema@.pixl_latency, b @extschema@.pixl_latency)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_add'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, @extschema@.pixl_latency) IS
	'The sum of two histograms (NULL counts as none)';
CREATE FUNCTION @extschema@.pixl_latency_add(h @extschema@.pixl_latency, response_ms double precision)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_add_ms'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, double precision) IS
	'The histogram with one response time (ms) more (NULL histogram: none; NULL time: unchanged)';

CREATE FUNCTION @extschema@.pixl_latency_count(h @extschema@.pixl_latency) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_latency_count'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_count(@extschema@.pixl_latency) IS
	'Response times counted in a histogram';

CREATE FUNCTION @extschema@.pixl_latency_quantile(h @extschema@.pixl_latency, fraction double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME', 'pixl_latency_quantile'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_quantile(@extschema@.pixl_latency, double precision) IS
	'The response time (ms) at a fraction (0.95: p95), at percentile_disc''s rank and within 4.43 % of its value; NULL when empty';

CREATE FUNCTION @extschema@.pixl_latency_quantiles(h @extschema@.pixl_latency, fractions double precision[])
	RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pixl_latency_quantiles'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.pixl_latency_quantiles(@extschema@.pixl_latency, double precision[]) IS
	'pixl_latency_quantile for each fraction; NULL when empty';

CREATE FUNCTION @extschema@.pixl_latency_buckets(h @extschema@.pixl_latency,
	OUT lower_ms double precision, OUT upper_ms double precision, OUT count bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_latency_buckets'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 40;
COMMENT ON FUNCTION @extschema@.pixl_latency_buckets(@extschema@.pixl_latency) IS
	'The buckets with a count: [lower_ms, upper_ms) and the count (for heatmaps)';

-- Aggregates: dense counts as internal state, with combine and
-- serialization functions, so that they run in parallel.
CREATE FUNCTION @extschema@.pixl_latency_merge_trans(internal, @extschema@.pixl_latency)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_merge_trans'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_of_trans(internal, double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_of_trans'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_final(internal)
	RETURNS @extschema@.pixl_latency
	AS 'MODULE_PATHNAME', 'pixl_latency_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_serialize(internal)
	RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_latency_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.pixl_latency_deserialize(bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'pixl_latency_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE @extschema@.pixl_latency_merge(@extschema@.pixl_latency) (
	SFUNC = @extschema@.pixl_latency_merge_trans,
	STYPE = internal,
	SSPACE = 2008,
	FINALFUNC = @extschema@.pixl_latency_final,
	COMBINEFUNC = @extschema@.pixl_latency_combine,
	SERIALFUNC = @extschema@.pixl_latency_serialize,
	DESERIALFUNC = @extschema@.pixl_latency_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.pixl_latency_merge(@extschema@.pixl_latency) IS
	'The sum of histograms (NULLs skipped; NULL when all are NULL)';

CREATE AGGREGATE @extschema@.pixl_latency_of(double precision) (
	SFUNC = @extschema@.pixl_latency_of_trans,
	STYPE = internal,
	SSPACE = 2008,
	FINALFUNC = @extschema@.pixl_latency_final,
	COMBINEFUNC = @extschema@.pixl_latency_combine,
	SERIALFUNC = @extschema@.pixl_latency_serialize,
	DESERIALFUNC = @extschema@.pixl_latency_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.pixl_latency_of(double precision) IS
	'The histogram of response times in ms (NULLs skipped; NULL when all are NULL)';

-- Pure functions of their arguments, for everyone (as the type is).
GRANT EXECUTE ON FUNCTION
	@extschema@.pixl_latency_add(@extschema@.pixl_latency, @extschema@.pixl_latency),
	@extschema@.pixl_latency_add(@extschema@.pixl_latency, double precision),
	@extschema@.pixl_latency_count(@extschema@.pixl_latency),
	@extschema@.pixl_latency_quantile(@extschema@.pixl_latency, double precision),
	@extschema@.pixl_latency_quantiles(@extschema@.pixl_latency, double precision[]),
	@extschema@.pixl_latency_buckets(@extschema@.pixl_latency)
	TO PUBLIC;

-- The histogram of each rollup row's response times.  NULL on rows with
-- responses written before 1.1 (response_ms_count > 0): their quantiles
-- are unknown, and such a row never gets a histogram later (the rollup
-- functions keep it NULL, so no partial histogram passes for a whole one).
ALTER TABLE @extschema@.pixl_usage_hourly ADD COLUMN latency @extschema@.pixl_latency;
ALTER TABLE @extschema@.pixl_usage_daily ADD COLUMN latency @extschema@.pixl_latency;

-- Usage of a token since a moment, per method, endpoint and bucket, from
-- the rollups only (1.1: never the raw events, which are kept for the
-- recent calls and as a sample, not for every request): the whole UTC
-- days rolled up (when by_day) from pixl_usage_daily, every other hour
-- from pixl_usage_hourly, starting with since's own hour in whole: a
-- period's start is rounded down to its UTC hour.  Each hour is counted at
-- one level only.  With the rows' latency histograms (NULL on rows of
-- before 1.1 that have responses).
DROP FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean);
CREATE FUNCTION @extschema@.pixl_usage_rows(token_id text, since timestamptz, by_day boolean DEFAULT true)
	RETURNS TABLE (bucket timestamptz, method text, endpoint text,
				   requests bigint, errors bigint,
				   response_ms_sum double precision, response_ms_count bigint,
				   latency @extschema@.pixl_latency)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_hour	timestamptz := date_trunc('hour', since, 'UTC');	-- first hour
	v_day	timestamptz := date_trunc('day', v_hour, 'UTC');	-- first whole day
	v_until	timestamptz := '-infinity';		-- days before it are in pixl_usage_daily
BEGIN
	IF v_day < v_hour THEN
		v_day := v_day + interval '1 day';
	END IF;
	IF by_day THEN
		v_until := coalesce((SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s),
							'-infinity');
	END IF;
	IF v_until <= v_day THEN
		-- no whole day rolled up: every hour from the hourly rollups
		v_day := 'infinity';
		v_until := 'infinity';
	END IF;
	RETURN QUERY
		SELECT d.bucket, d.method, d.endpoint, d.requests, d.errors,
			   d.response_ms_sum, d.response_ms_count, d.latency
		  FROM @extschema@.pixl_usage_daily d
		 WHERE d.token_id = pixl_usage_rows.token_id AND d.bucket >= v_day AND d.bucket < v_until
		UNION ALL
		SELECT h.bucket, h.method, h.endpoint, h.requests, h.errors,
			   h.response_ms_sum, h.response_ms_count, h.latency
		  FROM @extschema@.pixl_usage_hourly h
		 WHERE h.token_id = pixl_usage_rows.token_id
		   AND ((h.bucket >= v_hour AND h.bucket < v_day) OR h.bucket >= v_until);
END
$$;
REVOKE ALL ON FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean) FROM PUBLIC;
------------------------------------------------------------------------------
-- Store-scoped administration (issue #7.3)
--
-- Who is asking: the role in effect at the top level of the session (the
-- login role, or the one chosen with SET ROLE: pixl_calling_role()) AND the
-- role whose rights the call runs with (current_user where the call is
-- made: the owner of a SECURITY DEFINER function on the way).  Every store
-- and platform-admin check holds for both (src/store_access.c): the public
-- management and analytics functions are SECURITY INVOKER wrappers that
-- hand a caller ticket to a SECURITY DEFINER implementation (name_impl).
--
-- Platform admins: superusers and every role with the privileges of the
-- NOLOGIN role pixl_platform_admin (membership with INHERIT).  They see and
-- manage every store and grant stores to store admins.  The role is
-- cluster-wide: the first CREATE EXTENSION (or upgrade) in any database
-- creates it, later ones find it, DROP EXTENSION leaves it, and its members
-- are platform admins in every database of the cluster that has pixltoken.
--
-- Store admins: roles listed in pixl_store_admins (by name, so that a dump
-- restored into another cluster with the same roles keeps them), and every
-- role with the privileges of one of them.  Nothing else sees a store: a
-- role that is neither gets "not your store" (PX040) for every store, the
-- same answer whether or not the store or token exists.
------------------------------------------------------------------------------

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_platform_admin') THEN
		CREATE ROLE pixl_platform_admin NOLOGIN;
	END IF;
END
$$;

CREATE FUNCTION pixl_calling_role() RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_calling_role'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pixl_calling_role() IS
	'The role whose stores the session manages: the login role or the one chosen with SET ROLE, never a SECURITY DEFINER owner';

-- Caller tickets: made by a wrapper as its caller (SECURITY INVOKER),
-- redeemed once by the implementation, which gets the role back.
CREATE FUNCTION pixl_caller_ticket() RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_caller_ticket'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pixl_caller_ticket() IS
	'A one-use ticket that records current_user, for the implementation behind a pixltoken function';
CREATE FUNCTION pixl_redeem_caller_ticket(ticket bigint, entry regprocedure) RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_redeem_caller_ticket'
	LANGUAGE C VOLATILE;

-- The first of the calling role and caller (NULL: current_user) that may
-- not manage the store (NULL store: that is not a platform admin), or NULL.
CREATE FUNCTION pixl_role_denied(store_id text, caller oid) RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_role_denied'
	LANGUAGE C STABLE;

-- RAISE for SQL code whose statement may hold a secret: the statement is
-- not logged with the error, and secret shapes in the texts are masked.
CREATE FUNCTION pixl_raise_hidden(sqlstate text, message text,
								  detail text DEFAULT NULL, hint text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_raise_hidden'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION pixl_looks_like_secret(value text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_looks_like_secret'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pixl_looks_like_secret(text) IS
	'True when the text holds something shaped like a token secret (sk_live_/sk_test_ and base62)';

-- Values quoted into messages never show a secret (whatever argument it
-- arrived in): its characters after the prefix are masked.
CREATE OR REPLACE FUNCTION pixl_quote(value text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce('"' || regexp_replace(regexp_replace(value, '[[:cntrl:]]', '?', 'g'),
										  '(sk_(live|test)_)[0-9A-Za-z]+', '\1***', 'g')
					|| '"', 'NULL');
$$;

CREATE TABLE pixl_store_admins (
	role_name	text NOT NULL CHECK (length(role_name) BETWEEN 1 AND 63),
	store_id	text NOT NULL CHECK (length(store_id) BETWEEN 1 AND 128),
	granted_at	timestamptz NOT NULL DEFAULT now(),
	granted_by	text NOT NULL DEFAULT session_user,
	PRIMARY KEY (role_name, store_id)
);
CREATE INDEX pixl_store_admins_store ON pixl_store_admins (store_id);
COMMENT ON TABLE pixl_store_admins IS
	'Which roles (by name) administer which stores; changed with pixl_grant_store / pixl_revoke_store';
SELECT pg_catalog.pg_extension_config_dump('pixl_store_admins', '');

-- C, SECURITY INVOKER: they read current_user and the calling role
-- themselves, and pixl_store_admins without the reader's privileges.
CREATE FUNCTION pixl_is_platform_admin() RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_is_platform_admin'
	LANGUAGE C STABLE;
COMMENT ON FUNCTION pixl_is_platform_admin() IS
	'True when the calling role and current_user are superusers or have the privileges of pixl_platform_admin';

-- Views and policies call it as their reader.
CREATE FUNCTION pixl_store_visible(store_id text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_store_visible'
	LANGUAGE C STABLE;
COMMENT ON FUNCTION pixl_store_visible(text) IS
	'True when the calling role (pixl_calling_role) and current_user are platform admins or administer the store';

-- The "not your store" error, PX040.  Its message names the value the
-- caller passed and the role that may not manage it, never whether the
-- store or token exists.
CREATE FUNCTION pixl_raise_not_your_store(what text, value text, denied oid) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_role	text := coalesce((SELECT r.rolname::text FROM pg_catalog.pg_roles r
							   WHERE r.oid OPERATOR(pg_catalog.=) denied), '?');
BEGIN
	PERFORM @extschema@.pixl_raise_hidden('PX040',
		CASE what
			WHEN 'store' THEN format('store %s is not administered by role "%s"',
									 @extschema@.pixl_quote(left(value, 200)), v_role)
			ELSE format('%s %s is not in a store administered by role "%s"',
						what, @extschema@.pixl_quote(left(value, 200)), v_role) END,
		@extschema@.pixl_borrow_detail(denied),
		'A platform admin grants a store with pixl_grant_store(role, store_id); SET ROLE to a role that has it.');
END
$$;

-- The detail of a PX040 for the role a call runs with, not the calling role.
CREATE FUNCTION pixl_borrow_detail(denied oid) RETURNS text
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN denied OPERATOR(pg_catalog.<>) @extschema@.pixl_calling_role() THEN
		format('The call runs with the rights of role "%s" (the owner of a SECURITY DEFINER function on the way); the check holds for it as well as for the calling role "%s".',
			   (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) denied),
			   (SELECT r.rolname FROM pg_catalog.pg_roles r
				 WHERE r.oid OPERATOR(pg_catalog.=) @extschema@.pixl_calling_role())) END;
$$;

-- caller: the role of the implementation's caller ticket; NULL (the
-- registry's trigger) is current_user.
CREATE FUNCTION pixl_assert_store_admin(store_id text, caller oid) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_denied	oid := @extschema@.pixl_role_denied(store_id, caller);
BEGIN
	IF v_denied IS NOT NULL THEN
		PERFORM @extschema@.pixl_raise_not_your_store('store', store_id, v_denied);
	END IF;
END
$$;
COMMENT ON FUNCTION pixl_assert_store_admin(text, oid) IS
	'Raises PX040 unless the calling role and the caller administer the store (or are platform admins)';

CREATE FUNCTION pixl_assert_platform_admin(action text, caller oid) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_denied	oid := @extschema@.pixl_role_denied(NULL, caller);
BEGIN
	IF v_denied IS NOT NULL THEN
		PERFORM @extschema@.pixl_raise_hidden('PX040',
			format('only platform admins may %s', action), @extschema@.pixl_borrow_detail(v_denied),
			'Platform admins are superusers and members of pixl_platform_admin.');
	END IF;
END
$$;

-- A store admin may be a role that does not log in (a group): its members
-- with INHERIT administer the store too.
CREATE FUNCTION pixl_grant_store_impl(caller_ticket bigint, role_name text, store_id text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_grant_store(text, text)');
BEGIN
	PERFORM @extschema@.pixl_assert_platform_admin('grant stores', v_caller);
	PERFORM @extschema@.pixl_check_store_id(store_id, v_caller);
	IF role_name IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
										 WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX046',
			format('role %s does not exist', @extschema@.pixl_quote(left(role_name, 63))), NULL,
			'Create the role first (CREATE ROLE), then grant it the store.');
	END IF;
	INSERT INTO @extschema@.pixl_store_admins AS a (role_name, store_id)
	VALUES (role_name, store_id)
	ON CONFLICT ON CONSTRAINT pixl_store_admins_pkey DO NOTHING;
	RETURN FOUND;
END
$$;
CREATE FUNCTION pixl_grant_store(role_name text, store_id text) RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_grant_store_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;
COMMENT ON FUNCTION pixl_grant_store(text, text) IS
	'Lets a role (and the roles that have its privileges) administer a store; platform admins only; false if it already did';

CREATE FUNCTION pixl_revoke_store_impl(caller_ticket bigint, role_name text, store_id text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_assert_platform_admin('revoke stores',
		@extschema@.pixl_redeem_caller_ticket(caller_ticket, '@extschema@.pixl_revoke_store(text, text)'));
	DELETE FROM @extschema@.pixl_store_admins a
	 WHERE a.role_name OPERATOR(pg_catalog.=) pixl_revoke_store_impl.role_name
	   AND a.store_id OPERATOR(pg_catalog.=) pixl_revoke_store_impl.store_id;
	RETURN FOUND;
END
$$;
CREATE FUNCTION pixl_revoke_store(role_name text, store_id text) RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_revoke_store_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;
COMMENT ON FUNCTION pixl_revoke_store(text, text) IS
	'Ends a role''s administration of a store; platform admins only; false if it had none';

-- Readers of the mapping and of the audit see the rows of their stores.
-- The owner (who writes through the SECURITY DEFINER functions and runs
-- pg_dump as a superuser) is not subject to them.
ALTER TABLE pixl_store_admins ENABLE ROW LEVEL SECURITY;
CREATE POLICY pixl_store_admins_visible ON pixl_store_admins
	FOR SELECT USING (@extschema@.pixl_store_visible(store_id));
ALTER TABLE pixl_audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY pixl_audit_visible ON pixl_audit
	FOR SELECT USING (@extschema@.pixl_store_visible(store_id));

------------------------------------------------------------------------------
-- The checks in the 1.0 functions that find a token or a store
------------------------------------------------------------------------------

-- The store of a token id, after the checks that the management functions
-- (pixl_lock_token) and the analytics functions (pixl_check_usage_token)
-- share: no secret where the id belongs (never echoed, statement not
-- logged), the calling role administers the token's store (a store admin
-- gets PX040 for a token of another store and for a token that does not
-- exist alike), and the token exists (PX011).  hint: the PX011 hint, which
-- 1.0 worded differently for the two families.  caller: the role of the
-- implementation's caller ticket, checked too.
CREATE FUNCTION pixl_token_store_checked(token_id text, hint text, caller oid) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_store		text;
	v_denied	oid;
BEGIN
	IF @extschema@.pixl_looks_like_secret(token_id) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX011',
			'a token secret was passed where a token id is expected', NULL, hint);
	END IF;
	SELECT t.store_id INTO v_store FROM @extschema@.pixl_token_registry t
	 WHERE t.token_id = pixl_token_store_checked.token_id;
	v_denied := @extschema@.pixl_role_denied(v_store, caller);	-- platform admins: every store, NULL included
	IF v_denied IS NOT NULL THEN
		PERFORM @extschema@.pixl_raise_not_your_store('token', token_id, v_denied);
	END IF;
	IF v_store IS NULL THEN
		PERFORM @extschema@.pixl_raise_hidden('PX011',
			format('token %s does not exist', @extschema@.pixl_quote(left(token_id, 200))), NULL, hint);
	END IF;
	RETURN v_store;
END
$$;

-- The token's row, locked, after pixl_token_store_checked; and not revoked.
-- (1.0's pixl_lock_token(text) knew no caller.)
DROP FUNCTION pixl_lock_token(text);
CREATE FUNCTION pixl_lock_token(token_id text, caller oid)
	RETURNS @extschema@.pixl_token_registry
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.pixl_token_registry;
BEGIN
	PERFORM @extschema@.pixl_token_store_checked(token_id,
		'Pass the token id ("tok_" and 16 characters) as listed in pixl_tokens, not the secret.', caller);
	-- tokens are never deleted: the row is there (STRICT: else an error)
	SELECT * INTO STRICT r FROM @extschema@.pixl_token_registry t
	 WHERE t.token_id = pixl_lock_token.token_id
	   FOR NO KEY UPDATE;	-- keys never change; no conflict with FK checks of usage writes
	IF r.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'token % is revoked', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX012',
				  DETAIL = format('It was revoked at %s; revocation cannot be undone.', r.revoked_at),
				  HINT = 'Create a new token with pixl_create_token().';
	END IF;
	RETURN r;
END
$$;

-- Analytics are for existing tokens (revoked ones included) of the
-- caller's stores: pixl_token_store_checked.
DROP FUNCTION pixl_check_usage_token(text);
CREATE FUNCTION pixl_check_usage_token(token_id text, caller oid) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_token_store_checked(token_id,
		'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.', caller);
END
$$;

-- The arguments of pixl_recent_calls; its implementation checks the token
-- first (1.0 did that here).
CREATE OR REPLACE FUNCTION pixl_check_recent_calls(token_id text, status int, lim int)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
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

-- The analytics functions of 1.0, as implementations with a caller ticket
-- (their bodies are 1.0's but for the check) behind wrappers of the same
-- name, arguments, defaults, comments and grants.  1.1 adds latency
-- percentiles after 1.0's columns (from the rollups' histograms,
-- 10_latency.sql; NULL where a row of the period has responses but no
-- histogram, as rows written before 1.1 do): the public functions are
-- re-created (DROP + CREATE), their grants copied below.
SELECT set_config('pixl_upgrade.acl_usage_summary', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_usage_summary(text, text)'::pg_catalog.regprocedure;
SELECT set_config('pixl_upgrade.acl_usage_timeline', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_usage_timeline(text, text)'::pg_catalog.regprocedure;
SELECT set_config('pixl_upgrade.acl_usage_endpoints', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_usage_endpoints(text, text)'::pg_catalog.regprocedure;
DROP FUNCTION pixl_usage_summary(text, text);
DROP FUNCTION pixl_usage_timeline(text, text);
DROP FUNCTION pixl_usage_endpoints(text, text);

CREATE FUNCTION pixl_usage_summary_impl(caller_ticket bigint, token_id text, period text)
	RETURNS TABLE (total_requests bigint, requests_today bigint,
				   avg_response_ms double precision, error_rate double precision,
				   p50_ms double precision, p95_ms double precision,
				   p99_ms double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_usage_summary(text, text)');
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id, v_caller);
	-- today's total is requests_today: one pass
	RETURN QUERY
	SELECT s.total, s.today, s.avg_ms, s.err,
		   s.q[1], s.q[2], s.q[3]
	  FROM (SELECT coalesce(sum(u.requests), 0)::bigint AS total,
				   CASE WHEN period = 'today' THEN coalesce(sum(u.requests), 0)::bigint
						ELSE (SELECT coalesce(sum(t.requests), 0)::bigint
								FROM @extschema@.pixl_usage_rows(pixl_usage_summary_impl.token_id,
																 now() - interval '24 hours') t)
				   END AS today,
				   sum(u.response_ms_sum) / nullif(sum(u.response_ms_count), 0) AS avg_ms,
				   100.0::double precision * sum(u.errors) / nullif(sum(u.requests), 0) AS err,
				   @extschema@.pixl_latency_quantiles(
					   CASE WHEN bool_or(u.latency IS NULL AND u.response_ms_count > 0) THEN NULL
							ELSE @extschema@.pixl_latency_merge(u.latency) END,
					   '{0.5, 0.95, 0.99}'::double precision[]) AS q
			  FROM @extschema@.pixl_usage_rows(pixl_usage_summary_impl.token_id, v_since) u) s;
END
$$;
CREATE FUNCTION pixl_usage_summary(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (total_requests bigint, requests_today bigint,
				   avg_response_ms double precision, error_rate double precision,
				   p50_ms double precision, p95_ms double precision,
				   p99_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_usage_summary_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;
COMMENT ON FUNCTION pixl_usage_summary(text, text) IS
	'Total requests of the period, requests of the last 24 hours, average response time, error rate (percent of status >= 400), and the 50th, 95th and 99th percentile response times (within 4.43 %; NULL if the period has responses folded before 1.1)';

CREATE FUNCTION pixl_usage_timeline_impl(caller_ticket bigint, token_id text, period text)
	RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint,
				   p95_ms double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_usage_timeline(text, text)');
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
	PERFORM @extschema@.pixl_check_usage_token(token_id, v_caller);
	IF period = 'all' THEN
		SELECT least(min(t.created_at), (SELECT min(h.bucket) FROM @extschema@.pixl_usage_hourly h
										  WHERE h.token_id = pixl_usage_timeline_impl.token_id))
		  INTO v_first
		  FROM @extschema@.pixl_token_registry t
		 WHERE t.token_id = pixl_usage_timeline_impl.token_id;
	ELSE
		v_first := v_since;
	END IF;
	v_first := date_trunc(v_unit, v_first);

	RETURN QUERY
	SELECT g.b, coalesce(sum(u.requests), 0)::bigint, coalesce(sum(u.errors), 0)::bigint,
		   @extschema@.pixl_latency_quantile(
			   CASE WHEN bool_or(u.latency IS NULL AND u.response_ms_count > 0) THEN NULL
					ELSE @extschema@.pixl_latency_merge(u.latency) END, 0.95)
	  FROM generate_series(v_first, date_trunc(v_unit, now()), ('1 ' || v_unit)::interval) AS g(b)
	  LEFT JOIN @extschema@.pixl_usage_rows(pixl_usage_timeline_impl.token_id, v_since, v_by_day) u
		ON greatest(date_trunc(v_unit, u.bucket), v_first) = g.b
	 GROUP BY g.b
	 ORDER BY g.b;
END
$$;
CREATE FUNCTION pixl_usage_timeline(token_id text, period text)
	RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint,
				   p95_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_usage_timeline_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;
COMMENT ON FUNCTION pixl_usage_timeline(text, text) IS
	'Requests, errors and the 95th percentile response time per hour (today, 7d), day (30d, year) or month (all), empty buckets included';

CREATE FUNCTION pixl_usage_endpoints_impl(caller_ticket bigint, token_id text, period text)
	RETURNS TABLE (method text, endpoint text, requests bigint,
				   success_rate double precision, avg_response_ms double precision,
				   p95_ms double precision)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_usage_endpoints(text, text)');
	v_since	timestamptz := @extschema@.pixl_usage_period_start(period);
BEGIN
	PERFORM @extschema@.pixl_check_usage_token(token_id, v_caller);
	RETURN QUERY
	SELECT nullif(u.method, ''), nullif(u.endpoint, ''), sum(u.requests)::bigint,
		   100.0::double precision * (sum(u.requests) - sum(u.errors)) / sum(u.requests),
		   sum(u.response_ms_sum) / nullif(sum(u.response_ms_count), 0),
		   @extschema@.pixl_latency_quantile(
			   CASE WHEN bool_or(u.latency IS NULL AND u.response_ms_count > 0) THEN NULL
					ELSE @extschema@.pixl_latency_merge(u.latency) END, 0.95)
	  FROM @extschema@.pixl_usage_rows(pixl_usage_endpoints_impl.token_id, v_since) u
	 GROUP BY u.method, u.endpoint
	HAVING sum(u.requests) > 0
	 ORDER BY 3 DESC, 1, 2;
END
$$;
CREATE FUNCTION pixl_usage_endpoints(token_id text, period text DEFAULT '30d')
	RETURNS TABLE (method text, endpoint text, requests bigint,
				   success_rate double precision, avg_response_ms double precision,
				   p95_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_usage_endpoints_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;
COMMENT ON FUNCTION pixl_usage_endpoints(text, text) IS
	'Requests, success rate (percent of status < 400), average and 95th percentile response time per method and endpoint, most called first';

-- The grants of 1.0's analytics functions, on their 1.1 forms (EXECUTE
-- only, as 1.0 granted; PUBLIC never).
REVOKE ALL ON FUNCTION pixl_usage_summary(text, text), pixl_usage_timeline(text, text),
	pixl_usage_endpoints(text, text) FROM PUBLIC;
DO $$
DECLARE
	r	record;
BEGIN
	FOR r IN
		SELECT DISTINCT f.fn, a.grantee
		  FROM (VALUES ('summary', '@extschema@.pixl_usage_summary(text, text)'),
					   ('timeline', '@extschema@.pixl_usage_timeline(text, text)'),
					   ('endpoints', '@extschema@.pixl_usage_endpoints(text, text)')) AS f(k, fn),
			   pg_catalog.aclexplode(nullif(pg_catalog.current_setting('pixl_upgrade.acl_usage_' OPERATOR(pg_catalog.||) f.k), '')::pg_catalog.aclitem[]) AS a
		 WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) 0 AND a.grantee OPERATOR(pg_catalog.<>) a.grantor
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', r.fn,
								  pg_catalog.pg_get_userbyid(r.grantee));
	END LOOP;
END
$$;

-- SQL, not PL/pgSQL: the argument status and the result column status
-- share their name (the public contract).
CREATE FUNCTION pixl_recent_calls_impl(caller_ticket bigint, token_id text, status int, lim int)
	RETURNS TABLE (at timestamptz, method text, endpoint text, status int,
				   ip inet, response_ms double precision)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_check_usage_token($2,
		@extschema@.pixl_redeem_caller_ticket($1, '@extschema@.pixl_recent_calls(text, int, int)'));
	SELECT @extschema@.pixl_check_recent_calls($2, $3, $4);
	-- the last calls kept per status (request_log = recent) and the full
	-- log (request_log = all): a call is in one of them
	SELECT c.at, c.method, c.endpoint, c.status::int, c.ip, c.response_ms
	  FROM (SELECT r.at, r.request_id, r.method, r.endpoint, r.status, r.ip, r.response_ms
			  FROM @extschema@.pixl_usage_recent r
			 WHERE r.token_id = $2
			   AND ($3 IS NULL OR r.status = $3)
			UNION ALL
			(SELECT e.at, e.request_id, e.method, e.endpoint, e.status, e.ip, e.response_ms
			   FROM @extschema@.pixl_usage_events e
			  WHERE e.token_id = $2
				AND ($3 IS NULL OR e.status = $3)
			  ORDER BY e.at DESC, e.request_id DESC
			  LIMIT $4)) c
	 ORDER BY c.at DESC, c.request_id DESC
	 LIMIT $4;
$$;
CREATE OR REPLACE FUNCTION pixl_recent_calls(token_id text, status int DEFAULT NULL, lim int DEFAULT 20)
	RETURNS TABLE (at timestamptz, method text, endpoint text, status int,
				   ip inet, response_ms double precision)
	LANGUAGE sql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_recent_calls_impl(@extschema@.pixl_caller_ticket(), $1, $2, $3);
$$;

CREATE FUNCTION pixl_set_store_plan_impl(caller_ticket bigint, store_id text, plan text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_set_store_plan(text, text)');
	v_old	text;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(store_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(store_id, v_caller);
	IF plan IS NULL OR NOT EXISTS (SELECT 1 FROM @extschema@.pixl_plans p WHERE p.plan = pixl_set_store_plan_impl.plan) THEN
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
		 WHERE s.store_id = pixl_set_store_plan_impl.store_id
		   FOR NO KEY UPDATE;	-- no conflict with token inserts of the store
		IF v_old = plan THEN
			RETURN;				-- no change, nothing to audit
		END IF;
		UPDATE @extschema@.pixl_stores s SET plan = pixl_set_store_plan_impl.plan, updated_at = now()
		 WHERE s.store_id = pixl_set_store_plan_impl.store_id;
	END IF;
	PERFORM @extschema@.pixl_write_audit('plan', NULL, store_id,
		jsonb_build_object('old_plan', v_old, 'new_plan', plan));
END
$$;
CREATE OR REPLACE FUNCTION pixl_set_store_plan(store_id text, plan text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_set_store_plan_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;

-- pixl_tokens shows the caller's stores only.  security_barrier: else the
-- planner may run a reader's own (leaky) function in a WHERE clause on rows
-- of other stores before the filter.  (The token fragments may redefine
-- the view with more columns: they keep both the filter and the option, which
-- CREATE OR REPLACE VIEW resets unless it is given again.)
CREATE OR REPLACE VIEW pixl_tokens WITH (security_barrier = true) AS
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
  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
 WHERE @extschema@.pixl_store_visible(t.store_id);

REVOKE ALL ON pixl_store_admins FROM PUBLIC;
REVOKE ALL ON FUNCTION
	pixl_raise_hidden(text, text, text, text),
	pixl_is_platform_admin(), pixl_raise_not_your_store(text, text, oid),
	pixl_borrow_detail(oid), pixl_role_denied(text, oid),
	pixl_redeem_caller_ticket(bigint, regprocedure),
	pixl_token_store_checked(text, text, oid),
	pixl_lock_token(text, oid), pixl_check_usage_token(text, oid),
	pixl_assert_store_admin(text, oid), pixl_assert_platform_admin(text, oid),
	pixl_grant_store(text, text), pixl_revoke_store(text, text),
	pixl_grant_store_impl(bigint, text, text), pixl_revoke_store_impl(bigint, text, text),
	pixl_set_store_plan_impl(bigint, text, text),
	pixl_usage_summary_impl(bigint, text, text), pixl_usage_timeline_impl(bigint, text, text),
	pixl_usage_endpoints_impl(bigint, text, text), pixl_recent_calls_impl(bigint, text, int, int),
	pixl_caller_ticket()
	FROM PUBLIC;
-- Readers of pixl_tokens, pixl_audit and the usage views call these as
-- themselves; they say nothing about other stores.
GRANT EXECUTE ON FUNCTION pixl_store_visible(text), pixl_looks_like_secret(text),
	pixl_calling_role() TO PUBLIC;
-- The implementations behind the public functions, and the ticket their
-- wrappers make as the caller: each implementation lets in only a ticket
-- whose role may EXECUTE its public function, so calling it directly is
-- calling the public function, and EXECUTE is granted on the public names.
GRANT EXECUTE ON FUNCTION pixl_caller_ticket(),
	pixl_grant_store_impl(bigint, text, text), pixl_revoke_store_impl(bigint, text, text),
	pixl_set_store_plan_impl(bigint, text, text),
	pixl_usage_summary_impl(bigint, text, text), pixl_usage_timeline_impl(bigint, text, text),
	pixl_usage_endpoints_impl(bigint, text, text), pixl_recent_calls_impl(bigint, text, int, int)
	TO PUBLIC;
GRANT EXECUTE ON FUNCTION pixl_grant_store(text, text), pixl_revoke_store(text, text)
	TO pixl_platform_admin;
GRANT SELECT ON pixl_store_admins TO pixl_platform_admin;
------------------------------------------------------------------------------
-- Input that 1.0 accepted silently (issue #7.4), and per-store token caps
-- (issue #7.3).  Each failure has its own SQLSTATE (README.md).
------------------------------------------------------------------------------

-- A value for a message with every character outside printable ASCII
-- spelled out as <U+XXXX>, so that look-alikes are visible; secrets masked
-- as in pixl_quote.
CREATE FUNCTION pixl_visible(value text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce('"' || string_agg(CASE WHEN c ~ '^[ -~]$' THEN c
										   ELSE format('<U+%s>', upper(lpad(to_hex(ascii(c)), 4, '0'))) END,
									  '' ORDER BY n) || '"', 'NULL')
	  FROM regexp_split_to_table(regexp_replace(value, '(sk_(live|test)_)[0-9A-Za-z]+', '\1***', 'g'), '')
		   WITH ORDINALITY AS t(c, n);
$$;

-- Store ids.  1.0's rules stay (PX010: 1 to 128 characters, no surrounding
-- spaces, no control characters; also the table's CHECK).  A store id that
-- is new in 1.1 must also use the documented alphabet: ASCII letters and
-- digits, then letters, digits, '.', '_', ':' and '-' (PX044), so that
-- "shop-1" with an invisible U+200B in front or a U+00A0 at the end is not
-- a second store that looks like the first.  It must not look like a
-- secret either (PX045).  Stores that already exist keep working whatever
-- their id (grandfathered).  The alphabet is only checked for a caller who
-- may administer the store: anyone else gets PX040, whether or not a store
-- has that id (else PX044 against PX040 would tell).
DROP FUNCTION pixl_check_store_id(text);
CREATE FUNCTION pixl_check_store_id(store_id text, caller oid) RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF @extschema@.pixl_looks_like_secret(store_id) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX045',
			'a token secret was passed where a store id is expected', NULL,
			'Pass the store id; never put a secret where it would be stored.');
	END IF;
	IF store_id IS NULL OR length(store_id) NOT BETWEEN 1 AND 128
	   OR store_id ~ '^\s|\s$|[[:cntrl:]]' THEN
		RAISE EXCEPTION 'invalid store id %', @extschema@.pixl_quote(left(store_id, 200))
			USING ERRCODE = 'PX010',
				  HINT = 'A store id is 1 to 128 characters, without surrounding spaces or control characters.';
	END IF;
	IF store_id !~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.pixl_stores s WHERE s.store_id = pixl_check_store_id.store_id) THEN
		PERFORM @extschema@.pixl_assert_store_admin(store_id, caller);
		RAISE EXCEPTION 'store id % has characters outside the store id alphabet', @extschema@.pixl_visible(store_id)
			USING ERRCODE = 'PX044',
				  HINT = 'A new store id starts with an ASCII letter or digit, followed by ASCII letters, digits, ".", "_", ":" or "-".';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION pixl_check_store_id(text, oid) FROM PUBLIC;

-- Free text that is stored (a disable reason, a leak source) keeps the
-- action it describes and loses the secret: the characters of every secret
-- shape after its prefix become '*', as in the server log.
CREATE FUNCTION pixl_mask_secrets(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_mask_secrets'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION pixl_mask_secrets(text) FROM PUBLIC;

-- Token names: 1.0's rules (PX004), no control characters and no invisible
-- format characters (zero-width, bidirectional overrides) (PX042), and
-- nothing shaped like a secret, which would then sit in pixl_tokens and
-- the audit (PX045).
CREATE OR REPLACE FUNCTION pixl_check_name(name text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF @extschema@.pixl_looks_like_secret(name) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX045',
			'a token secret was passed where a token name is expected', NULL,
			'Name the token after what uses it, e.g. ''Mobile App''; never put a secret where it would be stored.');
	END IF;
	IF name IS NULL OR btrim(name) = '' OR length(name) > 200 THEN
		RAISE EXCEPTION 'invalid token name %', @extschema@.pixl_quote(left(name, 60))
			USING ERRCODE = 'PX004',
				  HINT = 'A token name is required: 1 to 200 characters, not only spaces, e.g. ''Mobile App''.';
	END IF;
	IF name ~ '[[:cntrl:]]'
	   OR (pg_catalog.getdatabaseencoding() = 'UTF8'
		   AND name ~ '[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]') THEN
		RAISE EXCEPTION 'token name % contains control or invisible characters', @extschema@.pixl_visible(left(name, 60))
			USING ERRCODE = 'PX042',
				  HINT = 'Use printable characters only: no tabs, line breaks, zero-width or bidirectional control characters.';
	END IF;
END
$$;

------------------------------------------------------------------------------
-- Per-store token caps, by plan.  A store holds at most max_tokens active
-- (not revoked, not expired) tokens, so that one store cannot take every
-- rate-limit slot (pixltoken.max_tracked_tokens) and fail other stores' new
-- tokens closed.  Defaults: free 10, starter 25, growth 100, pro 250,
-- enterprise 1000; a plan an operator adds gets 100 unless told otherwise.
------------------------------------------------------------------------------

-- No column default: pixl_plans_restore_seed fills a missing value (an
-- INSERT that names three columns, such as a 1.0 dump) from the seed or
-- with 100, so that restoring a changed seeded plan keeps its cap.
ALTER TABLE pixl_plans ADD COLUMN max_tokens int CHECK (max_tokens BETWEEN 1 AND 1000000);
UPDATE pixl_plans p SET max_tokens = coalesce(v.max_tokens, 100)
  FROM pixl_plans q
  LEFT JOIN (VALUES ('free', 10), ('starter', 25), ('growth', 100), ('pro', 250),
					('enterprise', 1000)) AS v(plan, max_tokens) ON v.plan = q.plan
 WHERE p.plan = q.plan;
ALTER TABLE pixl_plans ALTER COLUMN max_tokens SET NOT NULL;
COMMENT ON COLUMN pixl_plans.max_tokens IS
	'Active tokens a store of this plan may hold (revoked and expired ones do not count)';

-- Seeded plans are dumped only when changed: the seed now has four values.
SELECT pg_catalog.pg_extension_config_dump('pixl_plans',
	$$WHERE (plan, default_rate_limit, max_rate_limit, max_tokens) NOT IN
		(('free', 60, 60, 10), ('starter', 60, 120, 25), ('growth', 60, 300, 100),
		 ('pro', 60, 600, 250), ('enterprise', 60, 1000, 1000))$$);

CREATE OR REPLACE FUNCTION pixl_plans_restore_seed() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE @extschema@.pixl_plans p
	   SET default_rate_limit = NEW.default_rate_limit,
		   max_rate_limit = NEW.max_rate_limit,
		   max_tokens = coalesce(NEW.max_tokens, p.max_tokens)
	 WHERE p.plan = NEW.plan
	   AND (p.plan, p.default_rate_limit, p.max_rate_limit, p.max_tokens) IN
		   (('free', 60, 60, 10), ('starter', 60, 120, 25), ('growth', 60, 300, 100),
			('pro', 60, 600, 250), ('enterprise', 60, 1000, 1000));
	IF FOUND THEN
		RETURN NULL;			-- the untouched seed row now has the new values
	END IF;
	NEW.max_tokens := coalesce(NEW.max_tokens, 100);
	RETURN NEW;
END
$$;

-- Enforced on the registry itself, whoever creates the token: the calling
-- role must administer the store (PX040; the create functions check it
-- first, this is the backstop), and the store must be under its cap.  Rows
-- that a restore copies in keep their old created_at and are not checked
-- (a store may be over its cap after a plan change).  The store's row is
-- locked so that concurrent creates count each other.  The same check, under
-- the same lock, when an update makes an expired token active again (a new
-- expiry, or none): else short-lived tokens, extended once expired, would
-- beat the cap.  Disabled tokens count as active (they are neither revoked
-- nor expired), so enabling one changes nothing; rotation refuses expired
-- tokens.
CREATE FUNCTION pixl_enforce_store_token_cap() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_plan	text;
	v_cap	int;
	v_n		bigint;
	v_now	timestamptz := clock_timestamp();
BEGIN
	IF TG_OP = 'INSERT' AND NEW.created_at IS DISTINCT FROM now() THEN
		RETURN NEW;
	END IF;
	IF TG_OP = 'UPDATE' THEN
		IF OLD.expires_at IS NULL OR OLD.expires_at > v_now	-- it was not expired
		   OR NEW.revoked_at IS NOT NULL OR NEW.expires_at <= v_now THEN	-- nor is it active now
			RETURN NEW;
		END IF;
	END IF;
	PERFORM @extschema@.pixl_assert_store_admin(NEW.store_id, NULL);
	SELECT s.plan INTO v_plan FROM @extschema@.pixl_stores s
	 WHERE s.store_id = NEW.store_id
	   FOR NO KEY UPDATE;
	SELECT p.max_tokens INTO v_cap FROM @extschema@.pixl_plans p WHERE p.plan = v_plan;
	SELECT count(*) INTO v_n FROM @extschema@.pixl_token_registry t
	 WHERE t.store_id = NEW.store_id
	   AND t.token_id <> NEW.token_id
	   AND t.revoked_at IS NULL
	   AND (t.expires_at IS NULL OR t.expires_at > clock_timestamp());
	IF v_n >= v_cap AND TG_OP = 'UPDATE' THEN
		RAISE EXCEPTION 'store % already has % active tokens, the most plan "%" allows',
			@extschema@.pixl_quote(NEW.store_id), v_n, v_plan
			USING ERRCODE = 'PX041',
				  DETAIL = format('Token %s has expired; a new expiry would make it active again, and active tokens count against the cap.',
								  @extschema@.pixl_quote(NEW.token_id)),
				  HINT = 'Revoke tokens that are no longer used, or move the store to a larger plan with pixl_set_store_plan().';
	ELSIF v_n >= v_cap THEN
		RAISE EXCEPTION 'store % already has % active tokens, the most plan "%" allows',
			@extschema@.pixl_quote(NEW.store_id), v_n, v_plan
			USING ERRCODE = 'PX041',
				  HINT = 'Revoke tokens that are no longer used, or move the store to a larger plan with pixl_set_store_plan().';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER pixl_token_registry_store_cap
	BEFORE INSERT ON pixl_token_registry
	FOR EACH ROW EXECUTE FUNCTION pixl_enforce_store_token_cap();
CREATE TRIGGER pixl_token_registry_store_cap_reactivate
	BEFORE UPDATE OF expires_at ON pixl_token_registry
	FOR EACH ROW WHEN (OLD.expires_at IS DISTINCT FROM NEW.expires_at) EXECUTE FUNCTION pixl_enforce_store_token_cap();

REVOKE ALL ON FUNCTION pixl_visible(text), pixl_enforce_store_token_cap() FROM PUBLIC;
------------------------------------------------------------------------------
-- The rate limiter's table (src/rate_limit.c): size, fair share per store,
-- bulk evictions, and whether windows still start full after a crash.
------------------------------------------------------------------------------

CREATE FUNCTION pixl_rate_limit_stats(OUT tokens_tracked bigint,
									  OUT max_tracked_tokens int,
									  OUT store_share int,
									  OUT sweeps bigint,
									  OUT tokens_evicted bigint,
									  OUT table_full_rejections bigint,
									  OUT store_share_rejections bigint,
									  OUT full_windows_until timestamptz)
	AS 'MODULE_PATHNAME', 'pixl_rate_limit_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION pixl_rate_limit_stats() IS
	'Rate-limit table: tracked tokens, capacity, per-store share, eviction passes and evicted tokens, fail-closed rejections (all, and for a store''s share), and until when windows start full after a crash';
REVOKE ALL ON FUNCTION pixl_rate_limit_stats() FROM PUBLIC;

------------------------------------------------------------------------------
-- Token cache: per-token invalidation (issue #8.6; src/token_cache.c,
-- src/token_inval.c).  1.0's statement triggers emptied every backend's
-- whole cache on any change; row triggers now name what changed (the old
-- row's secret hashes, store or plan), published to every backend at
-- commit.  TRUNCATE still empties the database's caches.
------------------------------------------------------------------------------

DROP TRIGGER pixl_token_registry_invalidate ON @extschema@.pixl_token_registry;
DROP TRIGGER pixl_stores_invalidate ON @extschema@.pixl_stores;
DROP TRIGGER pixl_plans_invalidate ON @extschema@.pixl_plans;
-- (its C symbol stays, for a 1.0 schema running on this library)
DROP FUNCTION pixl_invalidate_token_cache();

CREATE FUNCTION pixl_token_cache_row_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'pixl_token_cache_row_changed'
	LANGUAGE C;
REVOKE ALL ON FUNCTION pixl_token_cache_row_changed() FROM PUBLIC;

CREATE TRIGGER pixl_token_registry_invalidate
	AFTER INSERT OR UPDATE OR DELETE ON @extschema@.pixl_token_registry
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('token');
CREATE TRIGGER pixl_token_registry_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_token_registry
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();
CREATE TRIGGER pixl_stores_invalidate
	AFTER UPDATE OR DELETE ON @extschema@.pixl_stores
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('store');
CREATE TRIGGER pixl_stores_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_stores
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();
CREATE TRIGGER pixl_plans_invalidate
	AFTER UPDATE OR DELETE ON @extschema@.pixl_plans
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('plan');
CREATE TRIGGER pixl_plans_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_plans
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();

-- The calling backend's token cache: hits and misses since the backend
-- started, entries evicted (by a change or to make room), whole flushes,
-- entries held, and the shared invalidation generation.  For monitoring and
-- for the tests of per-token eviction.
CREATE FUNCTION pixl_cache_stats(OUT hits bigint, OUT misses bigint,
								 OUT evictions bigint, OUT flushes bigint,
								 OUT entries bigint, OUT generation bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pixl_cache_stats'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pixl_cache_stats() IS
	'This backend''s token cache: hits, misses, evictions, flushes, entries, invalidation generation';
REVOKE ALL ON FUNCTION pixl_cache_stats() FROM PUBLIC;

------------------------------------------------------------------------------
-- Lifecycle reminders (issue #9.8): a pixl_audit row with action
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

-- A GUC in minutes (as current_setting shows it, e.g. '7d') as an interval.
CREATE FUNCTION pixl_setting_interval(name text) RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT current_setting(name)::interval;
$$;

-- Sends the reminders that are due and not sent yet; returns them.  Tokens
-- that are revoked, disabled or already expired get none.  Two concurrent
-- calls send each reminder once (the primary key decides).
CREATE FUNCTION pixl_lifecycle_reminders()
	RETURNS TABLE (token_id text, store_id text, action text, due_at timestamptz)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_expiry	interval := @extschema@.pixl_setting_interval('pixltoken.expiry_reminder');
	v_rotation	interval := @extschema@.pixl_setting_interval('pixltoken.rotation_reminder');
	v_now		timestamptz := clock_timestamp();
	r			record;
BEGIN
	FOR r IN
		SELECT t.token_id, t.store_id, d.kind, d.due_for, d.due_at
		  FROM @extschema@.pixl_token_registry t
		 CROSS JOIN LATERAL (
			SELECT 'expiring' AS kind, t.expires_at AS due_for, t.expires_at AS due_at
			 WHERE v_expiry > interval '0' AND t.expires_at IS NOT NULL
			   AND t.expires_at - v_expiry <= v_now
			UNION ALL
			SELECT 'rotation_due', coalesce(t.rotated_at, t.created_at),
				   coalesce(t.rotated_at, t.created_at) + v_rotation
			 WHERE v_rotation > interval '0'
			   AND coalesce(t.rotated_at, t.created_at) + v_rotation <= v_now
		 ) d
		 WHERE t.revoked_at IS NULL AND t.disabled_at IS NULL
		   AND (t.expires_at IS NULL OR t.expires_at > v_now)
		 ORDER BY t.token_id, d.kind
	LOOP
		INSERT INTO @extschema@.pixl_lifecycle_reminders_sent AS s (token_id, kind, due_for)
		VALUES (r.token_id, r.kind, r.due_for)
		ON CONFLICT DO NOTHING;
		CONTINUE WHEN NOT FOUND;
		PERFORM @extschema@.pixl_write_audit(r.kind, r.token_id, r.store_id,
			jsonb_build_object('due_at', r.due_at));
		token_id := r.token_id;
		store_id := r.store_id;
		action := r.kind;
		due_at := r.due_at;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION pixl_lifecycle_reminders() IS
	'Records due expiring / rotation_due reminders in pixl_audit (with a NOTIFY pixltoken wake-up), each once; returns them';

REVOKE ALL ON pixl_lifecycle_reminders_sent FROM PUBLIC;
REVOKE ALL ON FUNCTION pixl_setting_interval(text), pixl_lifecycle_reminders() FROM PUBLIC;

------------------------------------------------------------------------------
-- Tokens 1.1 (issue #9): IP allowlists, metadata, reversible disable, leak
-- reports, lifecycle NOTIFY, store-scoped administration.
------------------------------------------------------------------------------

-- allowed_ips: NULL = any address.  metadata: a JSON object of at most 4 kB
-- (its text form), returned by verification.  disabled_at/_reason: set by
-- pixl_disable_token, cleared by pixl_enable_token.  revoked_reason:
-- 'revoked' (pixl_revoke_token) or 'exposed' (pixl_report_leaked); NULL for
-- tokens revoked by 1.0.
ALTER TABLE @extschema@.pixl_token_registry
	ADD COLUMN allowed_ips cidr[]
		CHECK (cardinality(allowed_ips) BETWEEN 1 AND 100 AND array_position(allowed_ips, NULL) IS NULL),
	ADD COLUMN metadata jsonb
		CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 4096),
	ADD COLUMN disabled_at timestamptz,
	ADD COLUMN disabled_reason text,
	ADD COLUMN revoked_reason text
		CHECK (revoked_reason IN ('revoked', 'exposed')),
	ADD CHECK (disabled_reason IS NULL OR disabled_at IS NOT NULL);

ALTER TABLE @extschema@.pixl_audit DROP CONSTRAINT pixl_audit_action_check;
ALTER TABLE @extschema@.pixl_audit ADD CONSTRAINT pixl_audit_action_check
	CHECK (action IN ('create', 'rotate', 'update', 'revoke', 'plan',
					  'disable', 'enable', 'expose', 'expiring', 'rotation_due'));

-- Every audited change is also a NOTIFY pixltoken, in the same transaction
-- (a listener never hears of a change that rolled back).  The channel is a
-- wake-up only: PostgreSQL has no privilege on LISTEN or NOTIFY, so any
-- role that can connect hears it and can send it.  The payload is empty
-- (PostgreSQL folds equal notifications of a transaction into one), and a
-- listener reads what happened with pixl_events_since(), through the
-- store-scoped policy of pixl_audit.
CREATE OR REPLACE FUNCTION pixl_write_audit(action text, token_id text, store_id text, detail jsonb)
	RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO @extschema@.pixl_audit (action, token_id, store_id, detail)
	VALUES (action, token_id, store_id, detail);
	SELECT pg_catalog.pg_notify('pixltoken', '');
$$;

-- What the lifecycle events were, after audit id after_id: the audit rows
-- of the stores the calling role sees (pixl_store_visible), in id order,
-- at most max_rows; action in the events' words (created, updated,
-- rotated, revoked, plan_changed, disabled, enabled, exposed, expiring,
-- rotation_due).  SECURITY INVOKER: the caller needs SELECT on pixl_audit,
-- whose policy also applies.  Ids follow insertion, not commit: a
-- transaction that commits after a later one can add an id below a
-- consumer's cursor, so consumers re-read an overlap (README).
CREATE FUNCTION pixl_events_since(after_id bigint DEFAULT 0, max_rows integer DEFAULT 1000)
	RETURNS TABLE (audit_id bigint, at timestamptz, action text, token_id text,
				   store_id text, detail jsonb)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.audit_id, a.at,
		   CASE a.action WHEN 'create' THEN 'created'
						 WHEN 'rotate' THEN 'rotated'
						 WHEN 'update' THEN 'updated'
						 WHEN 'revoke' THEN 'revoked'
						 WHEN 'plan' THEN 'plan_changed'
						 WHEN 'disable' THEN 'disabled'
						 WHEN 'enable' THEN 'enabled'
						 WHEN 'expose' THEN 'exposed'
						 ELSE a.action END,
		   a.token_id, a.store_id, a.detail
	  FROM @extschema@.pixl_audit a
	 WHERE a.audit_id OPERATOR(pg_catalog.>) coalesce(after_id, 0)
	   AND @extschema@.pixl_store_visible(a.store_id)
	 ORDER BY a.audit_id
	 LIMIT greatest(coalesce(max_rows, 1000), 0);
$$;
COMMENT ON FUNCTION pixl_events_since(bigint, integer) IS
	'Lifecycle events (audit rows) of the caller''s stores after an audit id, in id order: what a NOTIFY pixltoken wake-up is about';
REVOKE ALL ON FUNCTION pixl_events_since(bigint, integer) FROM PUBLIC;

------------------------------------------------------------------------------
-- Validation of the new arguments (PX070-PX081, listed in README.md)
------------------------------------------------------------------------------

-- An allowlist from text: each element a network in CIDR notation (a bare
-- address is one host).  NULL: any address.  On update, '{}' removes it.
CREATE FUNCTION pixl_check_allowed_ips(allowed_ips text[]) RETURNS cidr[]
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_out	cidr[] := '{}';
	v_elem	text;
BEGIN
	IF allowed_ips IS NULL THEN
		RETURN NULL;
	END IF;
	IF cardinality(allowed_ips) > 100 THEN
		RAISE EXCEPTION 'allowlist of % networks is too long', cardinality(allowed_ips)
			USING ERRCODE = 'PX072',
				  HINT = 'An allowlist holds 1 to 100 networks; use wider networks (e.g. 10.0.0.0/8).';
	END IF;
	FOREACH v_elem IN ARRAY allowed_ips LOOP
		IF v_elem IS NULL THEN
			RAISE EXCEPTION 'allowlist contains NULL'
				USING ERRCODE = 'PX071',
					  HINT = 'List networks such as ''203.0.113.0/24'' or ''2001:db8::/32''; pass NULL instead of the whole list to allow any address.';
		END IF;
		BEGIN
			v_out := v_out || v_elem::cidr;
		EXCEPTION WHEN invalid_text_representation OR invalid_binary_representation
					   OR numeric_value_out_of_range THEN
			RAISE EXCEPTION 'invalid network % in allowlist', @extschema@.pixl_quote(left(v_elem, 60))
				USING ERRCODE = 'PX070',
					  HINT = 'Use CIDR notation with no bits set right of the mask, e.g. ''203.0.113.0/24'', ''198.51.100.7'' or ''2001:db8::/32''.';
		END;
	END LOOP;
	RETURN v_out;
END
$$;

-- Metadata: no secret anywhere in it, keys included (PX045, as for names:
-- it is returned by every verification and kept in the audit), and at
-- most 32 levels of nesting, the object itself being the first (PX050): a
-- client's JSON decoder may recurse per level on every verification.
CREATE FUNCTION pixl_check_metadata(metadata jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF metadata IS NULL THEN
		RETURN;
	END IF;
	IF @extschema@.pixl_looks_like_secret(metadata::text) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX045',
			'a token secret was passed in token metadata', NULL,
			'Keep data such as ''{"customer": "acme"}'' in metadata; never put a secret where it would be stored.');
	END IF;
	IF jsonb_typeof(metadata) <> 'object' THEN
		RAISE EXCEPTION 'metadata must be a JSON object, not %', jsonb_typeof(metadata)
			USING ERRCODE = 'PX074',
				  HINT = 'Pass an object such as ''{"customer": "acme"}''; on update, ''null'' removes the metadata.';
	END IF;
	IF octet_length(metadata::text) > 4096 THEN
		RAISE EXCEPTION 'metadata of % bytes is too large', octet_length(metadata::text)
			USING ERRCODE = 'PX073',
				  HINT = 'Token metadata is at most 4096 bytes as JSON text; keep large data in your own tables.';
	END IF;
	-- containers only, and never past level 33: bounded by the 4 kB above
	IF EXISTS (
		WITH RECURSIVE c(v, depth) AS (
			SELECT metadata, 1
			UNION ALL
			SELECT e.v, c.depth + 1
			  FROM c, LATERAL (SELECT o.value FROM jsonb_each(CASE WHEN jsonb_typeof(c.v) = 'object' THEN c.v ELSE '{}' END) o
							   UNION ALL
							   SELECT a.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c.v) = 'array' THEN c.v ELSE '[]' END) a) AS e(v)
			 WHERE c.depth <= 32 AND jsonb_typeof(e.v) IN ('object', 'array'))
		SELECT 1 FROM c WHERE c.depth > 32) THEN
		RAISE EXCEPTION 'metadata is nested more than 32 levels deep'
			USING ERRCODE = 'PX050',
				  HINT = 'Token metadata is a flat or shallow JSON object (at most 32 levels of objects and arrays).';
	END IF;
END
$$;

CREATE FUNCTION pixl_check_reason(reason text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF reason IS NOT NULL AND (btrim(reason) = '' OR length(reason) > 200 OR reason ~ '[[:cntrl:]]') THEN
		RAISE EXCEPTION 'invalid disable reason %', @extschema@.pixl_quote(left(reason, 60))
			USING ERRCODE = 'PX075',
				  HINT = 'A reason is 1 to 200 characters without control characters, or NULL.';
	END IF;
END
$$;

CREATE FUNCTION pixl_check_source(source text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF source IS NULL OR btrim(source) = '' OR length(source) > 200 OR source ~ '[[:cntrl:]]' THEN
		RAISE EXCEPTION 'invalid leak source %', @extschema@.pixl_quote(left(source, 60))
			USING ERRCODE = 'PX080',
				  HINT = 'Say where the secret was found, 1 to 200 characters, e.g. ''github secret scanning: acme/app''.';
	END IF;
END
$$;

-- The SHA-256 of a reported secret after its format check (PX078; C, so
-- that the error hides the statement).
CREATE FUNCTION pixl_leaked_secret_hash(secret text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_leaked_secret_hash'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

------------------------------------------------------------------------------
-- Grants survive the signature changes below (DROP + CREATE): the old
-- function's EXECUTE grants are copied to the new one.  Used and dropped
-- by this script.
------------------------------------------------------------------------------
CREATE FUNCTION pixl_upgrade_copy_grants(old_acl aclitem[], new_fn regprocedure)
	RETURNS void
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r	record;
BEGIN
	FOR r IN SELECT DISTINCT a.grantee FROM aclexplode(old_acl) a
			  WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> 0
				AND a.grantee <> a.grantor LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', new_fn, pg_get_userbyid(r.grantee));
	END LOOP;
END
$$;

SELECT set_config('pixl_upgrade.acl_create', coalesce(p.proacl::text, ''), true),
	   set_config('pixl_upgrade.acl_update', coalesce(u.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p, pg_catalog.pg_proc u
 WHERE p.oid = '@extschema@.pixl_create_token(text, text, text[], timestamptz, int, text)'::pg_catalog.regprocedure
   AND u.oid = '@extschema@.pixl_update_token(text, text, text[], int, timestamptz)'::pg_catalog.regprocedure;

DROP FUNCTION pixl_create_token(text, text, text[], timestamptz, int, text);
DROP FUNCTION pixl_update_token(text, text, text[], int, timestamptz);

------------------------------------------------------------------------------
-- Token management 1.1
------------------------------------------------------------------------------

-- Each public management function is a SECURITY INVOKER wrapper that hands
-- a caller ticket to its SECURITY DEFINER implementation (name_impl), which
-- checks the store for the ticket's role as well as for the calling role
-- (11_store_admins.sql, src/store_access.c).
CREATE FUNCTION pixl_create_token_impl(caller_ticket bigint, store_id text, name text, scopes text[],
									   expires_at timestamptz, rate_limit int, mode text,
									   allowed_ips text[], metadata jsonb)
	RETURNS TABLE (token_id text, token text)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb)');
	v_store		text := pixl_create_token_impl.store_id;
	v_bits		int;
	v_limit		int;
	v_expires	timestamptz := nullif(pixl_create_token_impl.expires_at, 'infinity');
	v_ips		cidr[];
	v_secret	record;
	v_id		text;
BEGIN
	-- validate everything before writing anything
	PERFORM @extschema@.pixl_check_store_id(v_store, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(v_store, v_caller);
	PERFORM @extschema@.pixl_check_name(pixl_create_token_impl.name);
	v_bits := @extschema@.pixl_scope_bits(pixl_create_token_impl.scopes);
	PERFORM @extschema@.pixl_check_expiry(v_expires);
	v_limit := @extschema@.pixl_resolve_rate_limit(v_store, pixl_create_token_impl.rate_limit);
	v_ips := nullif(@extschema@.pixl_check_allowed_ips(pixl_create_token_impl.allowed_ips), '{}');
	PERFORM @extschema@.pixl_check_metadata(pixl_create_token_impl.metadata);
	SELECT * INTO v_secret FROM @extschema@.pixl_new_secret(pixl_create_token_impl.mode);

	INSERT INTO @extschema@.pixl_stores AS s (store_id, plan) VALUES (v_store, 'free')
	ON CONFLICT (store_id) DO NOTHING;
	IF FOUND THEN
		PERFORM @extschema@.pixl_write_audit('plan', NULL, v_store,
			jsonb_build_object('old_plan', NULL, 'new_plan', 'free'));
	END IF;

	v_id := @extschema@.pixl_new_token_id();
	INSERT INTO @extschema@.pixl_token_registry
		(token_id, store_id, name, mode, scope_bits, rate_limit, expires_at, secret_hash, hint,
		 allowed_ips, metadata)
	VALUES (v_id, v_store, pixl_create_token_impl.name, pixl_create_token_impl.mode, v_bits, v_limit,
			v_expires, v_secret.secret_hash, v_secret.hint, v_ips, pixl_create_token_impl.metadata);

	PERFORM @extschema@.pixl_write_audit('create', v_id, v_store,
		jsonb_build_object('name', pixl_create_token_impl.name,
						   'mode', pixl_create_token_impl.mode,
						   'scopes', @extschema@.pixl_scope_names(v_bits),
						   'rate_limit', v_limit,
						   'expires_at', v_expires,
						   'hint', v_secret.hint)
		|| jsonb_strip_nulls(jsonb_build_object('allowed_ips', v_ips,
												'metadata', pixl_create_token_impl.metadata)));

	token_id := v_id;
	token := v_secret.token;
	RETURN NEXT;
END
$$;
CREATE FUNCTION pixl_create_token(store_id text, name text, scopes text[],
								  expires_at timestamptz DEFAULT NULL,
								  rate_limit int DEFAULT NULL,
								  mode text DEFAULT 'live',
								  allowed_ips text[] DEFAULT NULL,
								  metadata jsonb DEFAULT NULL)
	RETURNS TABLE (token_id text, token text)
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_create_token_impl(@extschema@.pixl_caller_ticket(),
													 $1, $2, $3, $4, $5, $6, $7, $8);
$$;
COMMENT ON FUNCTION pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb) IS
	'Creates a token; the secret is returned this once and never stored';

CREATE FUNCTION pixl_update_token_impl(caller_ticket bigint, token_id text, name text, scopes text[],
									   rate_limit int, expires_at timestamptz,
									   allowed_ips text[], metadata jsonb)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb)');
	r			@extschema@.pixl_token_registry;
	v_name		text;
	v_bits		int;
	v_limit		int;
	v_expires	timestamptz;
	v_ips		cidr[];
	v_meta		jsonb;
	v_changes	jsonb := '{}';
BEGIN
	r := @extschema@.pixl_lock_token(pixl_update_token_impl.token_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(r.store_id, v_caller);
	v_name := coalesce(pixl_update_token_impl.name, r.name);
	v_bits := CASE WHEN pixl_update_token_impl.scopes IS NULL THEN r.scope_bits
				   ELSE @extschema@.pixl_scope_bits(pixl_update_token_impl.scopes) END;
	v_limit := CASE WHEN pixl_update_token_impl.rate_limit IS NULL THEN r.rate_limit
					ELSE @extschema@.pixl_resolve_rate_limit(r.store_id, pixl_update_token_impl.rate_limit) END;
	-- NULL leaves the expiry unchanged; 'infinity' removes it
	v_expires := CASE WHEN pixl_update_token_impl.expires_at IS NULL THEN r.expires_at
					  ELSE nullif(pixl_update_token_impl.expires_at, 'infinity') END;
	-- NULL leaves the allowlist unchanged; '{}' removes it
	v_ips := CASE WHEN pixl_update_token_impl.allowed_ips IS NULL THEN r.allowed_ips
				  ELSE nullif(@extschema@.pixl_check_allowed_ips(pixl_update_token_impl.allowed_ips), '{}') END;
	-- NULL leaves the metadata unchanged; JSON null removes it
	IF pixl_update_token_impl.metadata IS NULL THEN
		v_meta := r.metadata;
	ELSIF pixl_update_token_impl.metadata = 'null'::jsonb THEN
		v_meta := NULL;
	ELSE
		PERFORM @extschema@.pixl_check_metadata(pixl_update_token_impl.metadata);
		v_meta := pixl_update_token_impl.metadata;
	END IF;
	PERFORM @extschema@.pixl_check_name(v_name);
	IF pixl_update_token_impl.expires_at IS NOT NULL THEN
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
	IF v_ips IS DISTINCT FROM r.allowed_ips THEN
		v_changes := v_changes || jsonb_build_object('allowed_ips', jsonb_build_object('old', r.allowed_ips, 'new', v_ips));
	END IF;
	IF v_meta IS DISTINCT FROM r.metadata THEN
		v_changes := v_changes || jsonb_build_object('metadata', jsonb_build_object('old', r.metadata, 'new', v_meta));
	END IF;
	IF v_changes = '{}' THEN
		RETURN;					-- nothing changes, nothing to audit
	END IF;

	UPDATE @extschema@.pixl_token_registry t
	   SET name = v_name, scope_bits = v_bits, rate_limit = v_limit, expires_at = v_expires,
		   allowed_ips = v_ips, metadata = v_meta
	 WHERE t.token_id = r.token_id;
	PERFORM @extschema@.pixl_write_audit('update', r.token_id, r.store_id, v_changes);
END
$$;
CREATE FUNCTION pixl_update_token(token_id text,
								  name text DEFAULT NULL,
								  scopes text[] DEFAULT NULL,
								  rate_limit int DEFAULT NULL,
								  expires_at timestamptz DEFAULT NULL,
								  allowed_ips text[] DEFAULT NULL,
								  metadata jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_update_token_impl(@extschema@.pixl_caller_ticket(),
												  $1, $2, $3, $4, $5, $6, $7);
END
$$;
COMMENT ON FUNCTION pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb) IS
	'Changes a token''s name, scopes, rate limit, expiry, IP allowlist or metadata; NULL leaves a field unchanged';

SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_create'), '')::aclitem[],
		'@extschema@.pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb)'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_update'), '')::aclitem[],
		'@extschema@.pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb)');

CREATE FUNCTION pixl_rotate_token_impl(caller_ticket bigint, token_id text, grace interval)
	RETURNS text
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_rotate_token(text, interval)');
	r			@extschema@.pixl_token_registry;
	v_secret	record;
BEGIN
	IF grace IS NULL OR grace < interval '0' OR grace > interval '7 days' THEN
		RAISE EXCEPTION 'invalid grace period %', coalesce(grace::text, 'NULL')
			USING ERRCODE = 'PX014',
				  HINT = 'Use an interval between 0 (the old secret stops at commit) and 7 days.';
	END IF;
	r := @extschema@.pixl_lock_token(token_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(r.store_id, v_caller);
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
	-- the previous secret's telemetry starts over with this rotation
	UPDATE @extschema@.pixl_token_activity a
	   SET previous_secret_last_used_at = NULL, previous_secret_uses = 0
	 WHERE a.token_id = r.token_id;

	PERFORM @extschema@.pixl_write_audit('rotate', r.token_id, r.store_id,
		jsonb_build_object('grace', grace::text, 'old_hint', r.hint, 'new_hint', v_secret.hint));
	RETURN v_secret.token;
END
$$;
CREATE OR REPLACE FUNCTION pixl_rotate_token(token_id text, grace interval DEFAULT '0')
	RETURNS text
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_rotate_token_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

CREATE FUNCTION pixl_revoke_token_impl(caller_ticket bigint, token_id text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_revoke_token(text)');
	r	@extschema@.pixl_token_registry;
BEGIN
	r := @extschema@.pixl_lock_token(token_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(r.store_id, v_caller);
	-- a secret still in its rotation grace stays known, so it answers
	-- "revoked" too rather than "unknown"
	UPDATE @extschema@.pixl_token_registry t
	   SET revoked_at = now(), revoked_reason = 'revoked'
	 WHERE t.token_id = r.token_id;
	PERFORM @extschema@.pixl_write_audit('revoke', r.token_id, r.store_id,
		jsonb_build_object('name', r.name, 'hint', r.hint));
END
$$;
CREATE OR REPLACE FUNCTION pixl_revoke_token(token_id text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_revoke_token_impl(@extschema@.pixl_caller_ticket(), $1);
END
$$;

CREATE FUNCTION pixl_disable_token_impl(caller_ticket bigint, token_id text, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_disable_token(text, text)');
	r	@extschema@.pixl_token_registry;
BEGIN
	PERFORM @extschema@.pixl_check_reason(reason);
	r := @extschema@.pixl_lock_token(token_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(r.store_id, v_caller);
	IF r.disabled_at IS NOT NULL THEN
		RAISE EXCEPTION 'token % is already disabled', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX076',
				  DETAIL = format('It was disabled at %s.', r.disabled_at),
				  HINT = 'Enable it with pixl_enable_token().';
	END IF;
	reason := @extschema@.pixl_mask_secrets(reason);	-- kept, never with a secret
	UPDATE @extschema@.pixl_token_registry t
	   SET disabled_at = now(), disabled_reason = reason
	 WHERE t.token_id = r.token_id;
	PERFORM @extschema@.pixl_write_audit('disable', r.token_id, r.store_id,
		jsonb_build_object('reason', reason));
END
$$;
CREATE FUNCTION pixl_disable_token(token_id text, reason text DEFAULT NULL) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_disable_token_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;
COMMENT ON FUNCTION pixl_disable_token(text, text) IS
	'Suspends a token (401 disabled) for every connection once the transaction commits; pixl_enable_token() undoes it';

CREATE FUNCTION pixl_enable_token_impl(caller_ticket bigint, token_id text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_enable_token(text)');
	r	@extschema@.pixl_token_registry;
BEGIN
	r := @extschema@.pixl_lock_token(token_id, v_caller);		-- PX012 when revoked
	PERFORM @extschema@.pixl_assert_store_admin(r.store_id, v_caller);
	IF r.disabled_at IS NULL THEN
		RAISE EXCEPTION 'token % is not disabled', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX077',
				  HINT = 'Only a token disabled with pixl_disable_token() can be enabled.';
	END IF;
	UPDATE @extschema@.pixl_token_registry t
	   SET disabled_at = NULL, disabled_reason = NULL
	 WHERE t.token_id = r.token_id;
	PERFORM @extschema@.pixl_write_audit('enable', r.token_id, r.store_id,
		jsonb_build_object('disabled_at', r.disabled_at, 'reason', r.disabled_reason));
END
$$;
CREATE FUNCTION pixl_enable_token(token_id text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_enable_token_impl(@extschema@.pixl_caller_ticket(), $1);
END
$$;
COMMENT ON FUNCTION pixl_enable_token(text) IS
	'Ends a disable; revoked tokens cannot be enabled';

-- A leaked secret, by its SHA-256: the token it belongs to (as its current
-- secret, or its previous one while still in its grace) is revoked at once with reason exposed, and the
-- report is audited with its source.  The answer is the same whether or
-- not a token has this hash, and whatever state it is in: nothing for a
-- caller who does not hold the secret to learn.
CREATE FUNCTION pixl_report_leaked(secret_sha256 bytea, source text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r	@extschema@.pixl_token_registry;
BEGIN
	PERFORM @extschema@.pixl_check_source(source);
	source := @extschema@.pixl_mask_secrets(source);	-- kept, never with a secret
	IF secret_sha256 IS NULL OR length(secret_sha256) <> 32 THEN
		RAISE EXCEPTION 'a SHA-256 is 32 bytes, not %', coalesce(length(secret_sha256)::text, 'NULL')
			USING ERRCODE = 'PX079',
				  HINT = 'Pass sha256(convert_to(secret, ''UTF8'')), or the secret itself to pixl_report_leaked(text, text).';
	END IF;
	FOR r IN SELECT * FROM @extschema@.pixl_token_registry t
			  WHERE t.secret_hash = secret_sha256
				 OR (t.previous_hash = secret_sha256 AND t.previous_valid_until > clock_timestamp())
				FOR NO KEY UPDATE LOOP
		UPDATE @extschema@.pixl_token_registry t
		   SET revoked_at = coalesce(t.revoked_at, now()), revoked_reason = 'exposed'
		 WHERE t.token_id = r.token_id;
		PERFORM @extschema@.pixl_write_audit('expose', r.token_id, r.store_id,
			jsonb_build_object('source', source,
							   'which_secret', CASE WHEN r.secret_hash = secret_sha256 THEN 'current' ELSE 'previous' END,
							   'was_revoked', r.revoked_at IS NOT NULL,
							   'hint', r.hint));
	END LOOP;
END
$$;
COMMENT ON FUNCTION pixl_report_leaked(bytea, text) IS
	'Revokes the token of a leaked secret (given as its SHA-256) with reason exposed; answers nothing either way';

CREATE FUNCTION pixl_report_leaked(secret text, source text) RETURNS void
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_check_source(source);
	SELECT @extschema@.pixl_report_leaked(@extschema@.pixl_leaked_secret_hash(secret), source);
$$;
COMMENT ON FUNCTION pixl_report_leaked(text, text) IS
	'Revokes the token of a leaked secret with reason exposed after checking its format; answers nothing either way';

REVOKE ALL ON FUNCTION
	pixl_check_allowed_ips(text[]), pixl_check_metadata(jsonb), pixl_check_reason(text),
	pixl_check_source(text), pixl_leaked_secret_hash(text),
	pixl_upgrade_copy_grants(aclitem[], regprocedure),
	pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
	pixl_disable_token(text, text), pixl_enable_token(text),
	pixl_report_leaked(bytea, text), pixl_report_leaked(text, text),
	pixl_create_token_impl(bigint, text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_update_token_impl(bigint, text, text, text[], int, timestamptz, text[], jsonb),
	pixl_rotate_token_impl(bigint, text, interval), pixl_revoke_token_impl(bigint, text),
	pixl_disable_token_impl(bigint, text, text), pixl_enable_token_impl(bigint, text)
	FROM PUBLIC;
-- Each lets in only a caller ticket whose role may EXECUTE the public
-- function (11_store_admins.sql): grants are made on the public names.
GRANT EXECUTE ON FUNCTION
	pixl_create_token_impl(bigint, text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_update_token_impl(bigint, text, text, text[], int, timestamptz, text[], jsonb),
	pixl_rotate_token_impl(bigint, text, interval), pixl_revoke_token_impl(bigint, text),
	pixl_disable_token_impl(bigint, text, text), pixl_enable_token_impl(bigint, text)
	TO PUBLIC;
------------------------------------------------------------------------------
-- Usage pipeline 1.1 (issue #8, and #7's pipeline items): counts from
-- shared memory, raw rows only where kept, no advisory locks, dead letters,
-- text request ids.  (src/usage_*.c, src/request_id.c)
------------------------------------------------------------------------------

-- Uses of a rotation's previous secret during its grace period, counted
-- exactly by the worker like every other use.
ALTER TABLE @extschema@.pixl_token_activity
	ADD COLUMN previous_secret_last_used_at timestamptz,
	ADD COLUMN previous_secret_uses bigint NOT NULL DEFAULT 0;

-- Rejected requests (verification status 429) per rollup row, for the
-- dashboards; rows written by 1.0 count none.
ALTER TABLE @extschema@.pixl_usage_hourly
	ADD COLUMN rate_limited bigint NOT NULL DEFAULT 0;
ALTER TABLE @extschema@.pixl_usage_daily
	ADD COLUMN rate_limited bigint NOT NULL DEFAULT 0;

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

------------------------------------------------------------------------------
-- Writers of usage and the daily roll-up: writers hold pixl_usage_daily_state
-- in ROW EXCLUSIVE mode from before their first usage-table access to their
-- commit; maintenance takes SHARE ROW EXCLUSIVE (which waits for writers and
-- blocks new ones) to roll a day up and move rolled_up_until.  So a writer
-- adds an event of a rolled-up day to pixl_usage_daily exactly when its
-- hourly row is not part of what maintenance summed.  Replaces 1.0's
-- advisory lock, which any role could take and so stall the worker.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_usage_daily_until() RETURNS timestamptz
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	LOCK TABLE @extschema@.pixl_usage_daily_state IN ROW EXCLUSIVE MODE;
	RETURN (SELECT s.rolled_up_until FROM @extschema@.pixl_usage_daily_state s);
END
$$;

-- The one place that adds to the rollups (REVIEW: the arithmetic was
-- written five times).  Adds counts per (token, hour, method, endpoint) to
-- pixl_usage_hourly, and to pixl_usage_daily for days already rolled up.
-- A token's hour holds at most pixltoken.max_endpoints_per_hour distinct
-- (method, endpoint) rows: counts of further ones go to its
-- (method '', endpoint '(other)') row.  Deltas (a response changing a
-- row's status) come through here too, with requests 0.  latencies: the
-- histograms of the response times (pixl_latency, 10_latency.sql), added
-- to a row's unless the row has responses but no histogram (written
-- before 1.1): that one stays NULL rather than become a partial one.
CREATE FUNCTION @extschema@.pixl_rollup_add(token_ids text[], buckets timestamptz[],
											methods text[], endpoints text[],
											requests bigint[], errors bigint[],
											ms_sums double precision[],
											ms_counts bigint[],
											rate_limited bigint[],
											latencies @extschema@.pixl_latency[])
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_daily	timestamptz := coalesce(@extschema@.pixl_usage_daily_until(), '-infinity');
	v_cap	int := coalesce(nullif(current_setting('pixltoken.max_endpoints_per_hour', true), '')::int, 100);
BEGIN
	WITH src AS (
		SELECT u.token_id, date_trunc('hour', u.bucket, 'UTC') AS bucket,
			   coalesce(u.method, '') AS method, coalesce(u.endpoint, '') AS endpoint,
			   sum(u.requests)::bigint AS requests, sum(u.errors)::bigint AS errors,
			   sum(u.ms_sum) AS ms_sum, sum(u.ms_count)::bigint AS ms_count,
			   sum(u.rate_limited)::bigint AS rate_limited,
			   @extschema@.pixl_latency_merge(u.latency) AS latency
		  FROM unnest(token_ids, buckets, methods, endpoints, requests, errors,
					  ms_sums, ms_counts, rate_limited, latencies)
			AS u(token_id, bucket, method, endpoint, requests, errors, ms_sum, ms_count,
				 rate_limited, latency)
		 GROUP BY 1, 2, 3, 4
	), known AS (
		SELECT s.*,
			   (s.method = '' AND s.endpoint = '(other)')
			   OR EXISTS (SELECT 1 FROM @extschema@.pixl_usage_hourly h
						   WHERE h.token_id = s.token_id AND h.bucket = s.bucket
							 AND h.method = s.method AND h.endpoint = s.endpoint) AS present
		  FROM src s
	), room AS (
		SELECT k.*,
			   v_cap - (SELECT count(*) FROM @extschema@.pixl_usage_hourly h
						 WHERE h.token_id = k.token_id AND h.bucket = k.bucket
						   AND NOT (h.method = '' AND h.endpoint = '(other)')) AS free,
			   row_number() OVER (PARTITION BY k.token_id, k.bucket, k.present
								  ORDER BY k.requests DESC, k.method, k.endpoint) AS rn
		  FROM known k
	), agg AS (
		SELECT r.token_id, r.bucket,
			   CASE WHEN r.present OR r.rn <= r.free THEN r.method ELSE '' END AS method,
			   CASE WHEN r.present OR r.rn <= r.free THEN r.endpoint ELSE '(other)' END AS endpoint,
			   sum(r.requests)::bigint AS requests, sum(r.errors)::bigint AS errors,
			   sum(r.ms_sum) AS ms_sum, sum(r.ms_count)::bigint AS ms_count,
			   sum(r.rate_limited)::bigint AS rate_limited,
			   @extschema@.pixl_latency_merge(r.latency) AS latency
		  FROM room r
		 GROUP BY 1, 2, 3, 4
	), hourly AS (
		INSERT INTO @extschema@.pixl_usage_hourly AS h
			(token_id, bucket, method, endpoint, requests, errors,
			 response_ms_sum, response_ms_count, rate_limited, latency)
		SELECT a.token_id, a.bucket, a.method, a.endpoint, a.requests, a.errors,
			   a.ms_sum, a.ms_count, a.rate_limited, a.latency
		  FROM agg a
		ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
		   SET requests = h.requests + excluded.requests,
			   errors = h.errors + excluded.errors,
			   response_ms_sum = h.response_ms_sum + excluded.response_ms_sum,
			   response_ms_count = h.response_ms_count + excluded.response_ms_count,
			   rate_limited = h.rate_limited + excluded.rate_limited,
			   latency = CASE WHEN h.latency IS NULL AND h.response_ms_count > 0 THEN NULL
							  ELSE @extschema@.pixl_latency_add(h.latency, excluded.latency) END
	)
	INSERT INTO @extschema@.pixl_usage_daily AS d
		(token_id, bucket, method, endpoint, requests, errors,
		 response_ms_sum, response_ms_count, rate_limited, latency)
	SELECT a.token_id, date_trunc('day', a.bucket, 'UTC'), a.method, a.endpoint,
		   sum(a.requests), sum(a.errors), sum(a.ms_sum), sum(a.ms_count),
		   sum(a.rate_limited), @extschema@.pixl_latency_merge(a.latency)
	  FROM agg a
	 WHERE a.bucket < v_daily
	 GROUP BY 1, 2, 3, 4
	ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
	   SET requests = d.requests + excluded.requests,
		   errors = d.errors + excluded.errors,
		   response_ms_sum = d.response_ms_sum + excluded.response_ms_sum,
		   response_ms_count = d.response_ms_count + excluded.response_ms_count,
		   rate_limited = d.rate_limited + excluded.rate_limited,
		   latency = CASE WHEN d.latency IS NULL AND d.response_ms_count > 0 THEN NULL
						  ELSE @extschema@.pixl_latency_add(d.latency, excluded.latency) END;
END
$$;

-- last_used_at (and the previous secret's use) of tokens, once per token.
CREATE FUNCTION @extschema@.pixl_activity_add(token_ids text[], last_used timestamptz[],
											  previous_uses bigint[],
											  previous_last timestamptz[])
	RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO @extschema@.pixl_token_activity AS a
		(token_id, last_used_at, previous_secret_last_used_at, previous_secret_uses)
	SELECT u.token_id, max(u.last_used), max(u.previous_last), coalesce(sum(u.previous_uses), 0)
	  FROM unnest(token_ids, last_used, previous_uses, previous_last)
		AS u(token_id, last_used, previous_uses, previous_last)
	 WHERE u.last_used IS NOT NULL
	   AND EXISTS (SELECT 1 FROM @extschema@.pixl_token_registry r WHERE r.token_id = u.token_id)
	 GROUP BY u.token_id
	ON CONFLICT (token_id) DO UPDATE
	   SET last_used_at = greatest(a.last_used_at, excluded.last_used_at),
		   previous_secret_last_used_at = greatest(a.previous_secret_last_used_at,
												   excluded.previous_secret_last_used_at),
		   previous_secret_uses = a.previous_secret_uses + excluded.previous_secret_uses;
$$;

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

CREATE FUNCTION @extschema@.pixl_write_pending(request_ids bigint[], ats timestamptz[],
											   token_ids text[], buckets timestamptz[],
											   methods text[], endpoints text[],
											   verify_statuses int[])
	RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO @extschema@.pixl_usage_pending_responses
		(request_id, at, token_id, bucket, method, endpoint, verify_status)
	SELECT u.request_id, u.at, u.token_id, u.bucket, u.method, u.endpoint, u.verify_status
	  FROM unnest(request_ids, ats, token_ids, buckets, methods, endpoints, verify_statuses)
		AS u(request_id, at, token_id, bucket, method, endpoint, verify_status)
	ON CONFLICT (request_id) DO NOTHING;
$$;

-- Late reports: each deletes its request's row and adds its response to
-- the rollups of the row's key, in this one transaction; a report whose
-- row is gone adds nothing.  Returns the responses added.
CREATE FUNCTION @extschema@.pixl_apply_late_responses(request_ids bigint[], statuses int[],
													  response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
	v_tok	text[];
	v_at	timestamptz[];
	v_meth	text[];
	v_end	text[];
	v_err	bigint[];
	v_ms	double precision[];
	v_lat	@extschema@.pixl_latency[];
BEGIN
	PERFORM @extschema@.pixl_usage_daily_until();	-- lock order: see above
	WITH d AS (
		DELETE FROM @extschema@.pixl_usage_pending_responses p
		 USING unnest(request_ids, statuses, response_ms) AS u(request_id, status, response_ms)
		 WHERE p.request_id = u.request_id
		RETURNING p.token_id, p.bucket, p.method, p.endpoint, p.verify_status,
				  u.status, u.response_ms
	)
	SELECT count(*), array_agg(d.token_id), array_agg(d.bucket), array_agg(d.method),
		   array_agg(d.endpoint),
		   array_agg(((d.status >= 400)::int - (d.verify_status >= 400)::int)::bigint),
		   array_agg(d.response_ms),
		   array_agg(@extschema@.pixl_latency_add(NULL::@extschema@.pixl_latency, d.response_ms))
	  INTO n, v_tok, v_at, v_meth, v_end, v_err, v_ms, v_lat
	  FROM d;
	IF n > 0 THEN
		PERFORM @extschema@.pixl_rollup_add(v_tok, v_at, v_meth, v_end,
			array_fill(0::bigint, ARRAY[n::int]), v_err, v_ms,
			array_fill(1::bigint, ARRAY[n::int]), array_fill(0::bigint, ARRAY[n::int]), v_lat);
	END IF;
	RETURN n;
END
$$;

-- Responses that arrived before their event (rare) land on the rows just
-- inserted.
CREATE FUNCTION @extschema@.pixl_match_unmatched(request_ids bigint[]) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ids		bigint[];
	v_ats		timestamptz[];
	v_statuses	int[];
	v_ms		double precision[];
BEGIN
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
END
$$;

-- Inserts events with their counts (1.0's worker path, and backfills):
-- raw rows, then the rollups and last_used_at of the rows inserted.
CREATE OR REPLACE FUNCTION @extschema@.pixl_insert_usage(request_ids bigint[], ats timestamptz[],
														 token_ids text[], methods text[],
														 endpoints text[], ips inet[],
														 statuses int[], verify_statuses int[],
														 response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
	v_tok	text[];
	v_at	timestamptz[];
	v_meth	text[];
	v_end	text[];
	v_err	bigint[];
	v_ms	double precision[];
	v_msc	bigint[];
	v_rl	bigint[];
	v_lat	@extschema@.pixl_latency[];
BEGIN
	PERFORM @extschema@.pixl_usage_daily_until();	-- lock order: see above
	WITH ins AS (
		INSERT INTO @extschema@.pixl_usage_events AS e
			(at, request_id, token_id, store_id, method, endpoint, ip,
			 status, verify_status, response_ms)
		SELECT u.at, u.request_id, u.token_id, r.store_id, u.method, u.endpoint,
			   u.ip, u.status, u.verify_status, u.response_ms
		  FROM unnest(request_ids, ats, token_ids, methods, endpoints, ips,
					  statuses, verify_statuses, response_ms)
			AS u(request_id, at, token_id, method, endpoint, ip, status,
				 verify_status, response_ms)
		  LEFT JOIN @extschema@.pixl_token_registry r ON r.token_id = u.token_id
		ON CONFLICT DO NOTHING
		RETURNING e.at, e.token_id, e.method, e.endpoint, e.status, e.response_ms,
				  e.verify_status
	)
	SELECT count(*), array_agg(i.token_id), array_agg(i.at), array_agg(i.method),
		   array_agg(i.endpoint), array_agg((i.status >= 400)::int::bigint),
		   array_agg(coalesce(i.response_ms, 0)),
		   array_agg((i.response_ms IS NOT NULL)::int::bigint),
		   array_agg((i.verify_status = 429)::int::bigint),
		   array_agg(@extschema@.pixl_latency_add(NULL::@extschema@.pixl_latency, i.response_ms))
	  INTO n, v_tok, v_at, v_meth, v_end, v_err, v_ms, v_msc, v_rl, v_lat
	  FROM ins i;
	IF n > 0 THEN
		PERFORM @extschema@.pixl_rollup_add(v_tok, v_at, v_meth, v_end,
			array_fill(1::bigint, ARRAY[n::int]), v_err, v_ms, v_msc, v_rl, v_lat);
		PERFORM @extschema@.pixl_activity_add(v_tok, v_at,
			array_fill(0::bigint, ARRAY[n::int]), array_fill(NULL::timestamptz, ARRAY[n::int]));
	END IF;
	PERFORM @extschema@.pixl_match_unmatched(request_ids);
	RETURN n;
END
$$;

-- Sets the final status and response time of usage rows (what
-- pixl_recent_calls shows).  The rollups are not touched: every response
-- reaches them through the aggregates (usage_pending.c), raw row or not.
-- A request's response is reported once (PX068 refuses a second).
-- Responses without a row yet go to pixl_usage_unmatched_responses.
-- Returns the rows updated.
CREATE OR REPLACE FUNCTION @extschema@.pixl_apply_responses(request_ids bigint[], ats timestamptz[],
															statuses int[],
															response_ms double precision[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		bigint;
BEGIN
	WITH src AS (
		SELECT DISTINCT ON (u.request_id) u.request_id, u.at, u.status, u.response_ms
		  FROM unnest(request_ids, ats, statuses, response_ms) WITH ORDINALITY
			AS u(request_id, at, status, response_ms, ord)
		 ORDER BY u.request_id, u.ord DESC
	), upd AS (
		UPDATE @extschema@.pixl_usage_events e
		   SET status = s.status, response_ms = s.response_ms
		  FROM src s
		 WHERE e.request_id = s.request_id AND e.at = s.at
		RETURNING e.request_id
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
	SELECT count(*) INTO n FROM upd u;
	RETURN n;
END
$$;

------------------------------------------------------------------------------
-- Maintenance
------------------------------------------------------------------------------

-- The partition of one UTC day, created if missing.  1.1: the schema is
-- written as @extschema@ gives it (already quoted), never through %I again,
-- so a schema name that needs quotes works.
CREATE OR REPLACE FUNCTION @extschema@.pixl_create_usage_partition(day date) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_name	text := 'pixl_usage_events_' || to_char(day, 'YYYYMMDD');
	v_from	timestamptz := day::timestamp AT TIME ZONE 'UTC';
	v_to	timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(format('%s.%I', '@extschema@', v_name)) IS NOT NULL THEN
		RETURN false;
	END IF;
	EXECUTE format('CREATE TABLE %s.%I (LIKE @extschema@.pixl_usage_events INCLUDING DEFAULTS)',
				   '@extschema@', v_name);
	EXECUTE format('ALTER TABLE %s.%I ADD PRIMARY KEY (request_id, at)', '@extschema@', v_name);
	EXECUTE format('CREATE INDEX %I ON %s.%I (token_id, at)', v_name || '_token_at', '@extschema@', v_name);
	EXECUTE format('REVOKE ALL ON %s.%I FROM PUBLIC', '@extschema@', v_name);
	EXECUTE format('WITH m AS (DELETE FROM @extschema@.pixl_usage_events_default WHERE at >= $1 AND at < $2 RETURNING *) '
				   'INSERT INTO %s.%I SELECT * FROM m', '@extschema@', v_name)
		USING v_from, v_to;
	EXECUTE format('ALTER TABLE @extschema@.pixl_usage_events ATTACH PARTITION %s.%I FOR VALUES FROM (%L) TO (%L)',
				   '@extschema@', v_name, v_from, v_to);
	RETURN true;
END
$$;

-- pixltoken.rollup_retention as an interval, NULL for ever (0).
CREATE FUNCTION @extschema@.pixl_rollup_retention() RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT nullif(coalesce(nullif(current_setting('pixltoken.rollup_retention', true), '')::bigint, 0), 0)
		   * interval '1 minute';
$$;

-- 1.1: no advisory locks (see pixl_usage_maintenance_lock and
-- pixl_usage_daily_until); a retention shorter than pixltoken.usage_retention
-- is refused (PX062), so a role granted this function cannot wipe history;
-- rollups past pixltoken.rollup_retention and dead letters past the raw
-- retention are purged.
CREATE OR REPLACE FUNCTION @extschema@.pixl_run_maintenance(retention interval DEFAULT NULL,
															OUT partitions_created int,
															OUT partitions_dropped int,
															OUT rows_purged bigint)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET lock_timeout = '2s'	-- a long query on the default partition: retry later
AS $$
DECLARE
	v_setting	interval := @extschema@.pixl_usage_retention();
	v_retention	interval := coalesce(retention, v_setting);
	v_rollups	interval := @extschema@.pixl_rollup_retention();
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
	IF v_retention < v_setting THEN
		RAISE EXCEPTION 'usage retention % is shorter than pixltoken.usage_retention (%)',
			v_retention, v_setting
			USING ERRCODE = 'PX062',
				  HINT = 'Pass NULL or a longer interval; to keep less, lower pixltoken.usage_retention (a server setting).';
	END IF;
	BEGIN
		LOCK TABLE @extschema@.pixl_usage_maintenance_lock IN EXCLUSIVE MODE NOWAIT;
	EXCEPTION WHEN lock_not_available THEN
		RETURN;					-- another run is under way
	END;
	v_cutoff := now() - v_retention;
	partitions_created := 0;
	partitions_dropped := 0;
	rows_purged := 0;

	-- Roll the days that are over up into pixl_usage_daily, first (before
	-- any partition lock: see pixl_usage_daily_until).  Writers wait for
	-- this transaction to end, so only once a day; if they keep their lock
	-- past lock_timeout the roll-up is left to the next run.
	SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
	IF v_done IS NULL OR v_done < v_until THEN
		BEGIN
			LOCK TABLE @extschema@.pixl_usage_daily_state IN SHARE ROW EXCLUSIVE MODE;
			-- a new snapshot: every writer that saw the old state has committed
			SELECT s.rolled_up_until INTO v_done FROM @extschema@.pixl_usage_daily_state s;
			-- the hourly rows are the truth: a daily row is replaced, not added to
			-- (a day with an hour of responses but no histogram has none)
			INSERT INTO @extschema@.pixl_usage_daily AS d
				(token_id, bucket, method, endpoint, requests, errors,
				 response_ms_sum, response_ms_count, rate_limited, latency)
			SELECT h.token_id, date_trunc('day', h.bucket, 'UTC'), h.method, h.endpoint,
				   sum(h.requests), sum(h.errors), sum(h.response_ms_sum), sum(h.response_ms_count),
				   sum(h.rate_limited),
				   CASE WHEN bool_or(h.latency IS NULL AND h.response_ms_count > 0) THEN NULL
						ELSE @extschema@.pixl_latency_merge(h.latency) END
			  FROM @extschema@.pixl_usage_hourly h
			 WHERE h.bucket >= coalesce(v_done, '-infinity') AND h.bucket < v_until
			 GROUP BY 1, 2, 3, 4
			ON CONFLICT (token_id, bucket, method, endpoint) DO UPDATE
			   SET requests = excluded.requests, errors = excluded.errors,
				   response_ms_sum = excluded.response_ms_sum,
				   response_ms_count = excluded.response_ms_count,
				   rate_limited = excluded.rate_limited,
				   latency = excluded.latency;
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
		  FROM pg_catalog.pg_inherits i
		  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
		 WHERE i.inhparent OPERATOR(pg_catalog.=) '@extschema@.pixl_usage_events'::regclass
		   AND c.relname ~ '^pixl_usage_events_[0-9]{8}$'
		   AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= v_cutoff
		 ORDER BY 1
	LOOP
		EXECUTE format('DROP TABLE %s.%I', '@extschema@', r.relname);
		partitions_dropped := partitions_dropped + 1;
	END LOOP;

	DELETE FROM @extschema@.pixl_usage_events_default e WHERE e.at < v_cutoff;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	rows_purged := v_n;
	DELETE FROM @extschema@.pixl_usage_unmatched_responses u
	 WHERE u.received_at < now() - interval '1 hour';
	DELETE FROM @extschema@.pixl_usage_pending_responses p
	 WHERE p.at < now() - interval '1 day';
	DELETE FROM @extschema@.pixl_usage_dead_letters x WHERE x.at < v_cutoff;
	IF v_rollups IS NOT NULL THEN
		DELETE FROM @extschema@.pixl_usage_hourly h WHERE h.bucket < now() - v_rollups;
		GET DIAGNOSTICS v_n = ROW_COUNT;
		rows_purged := rows_purged + v_n;
		DELETE FROM @extschema@.pixl_usage_daily d WHERE d.bucket < date_trunc('day', now() - v_rollups, 'UTC');
		GET DIAGNOSTICS v_n = ROW_COUNT;
		rows_purged := rows_purged + v_n;
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.pixl_run_maintenance(interval) IS
	'Creates usage partitions ahead, drops raw usage past pixltoken.usage_retention (never a shorter retention) and rollups past pixltoken.rollup_retention; the worker calls it every minute';

------------------------------------------------------------------------------
-- Dated usage partitions are not members of the extension (pg_dump must
-- dump them), and they live in the extension's schema: the owner of that
-- schema (PG15: the database owner owns public) could DROP them, which the
-- schema owner may do to any table in it, and their indexes (and those of
-- the default partition), which are not attached to an index of the
-- parent.  This event trigger refuses the drop of a
-- pixl_usage_events_YYYYMMDD partition of the extension's schema, and of
-- an index named after a usage partition (pixl_usage_events_YYYYMMDD_* or
-- pixl_usage_events_default_*: the names pixl_create_usage_partition and
-- 1.0 give them; a dropped index's table is gone from the catalogs by
-- sql_drop), unless the current role is (a member of) the extension's
-- owner, as maintenance (SECURITY DEFINER) and superusers are.  PX063.
-- pixl_guard_usage_indexes does the same for ALTER INDEX (and ALTER TABLE
-- naming an index) on an index of a usage partition.
------------------------------------------------------------------------------
CREATE FUNCTION @extschema@.pixl_guard_usage_partitions() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_owner		oid;
	v_schema	name;
	r			record;
BEGIN
	SELECT e.extowner, n.nspname INTO v_owner, v_schema
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	 WHERE e.extname OPERATOR(pg_catalog.=) 'pixltoken';
	IF v_owner IS NULL OR pg_catalog.pg_has_role(v_owner, 'MEMBER') THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT o.object_type, o.object_name
		  FROM pg_catalog.pg_event_trigger_dropped_objects() o
		 WHERE o.schema_name OPERATOR(pg_catalog.=) v_schema
		   AND ((o.object_type OPERATOR(pg_catalog.=) 'table'
				 AND o.object_name OPERATOR(pg_catalog.~) '^pixl_usage_events_[0-9]{8}$')
				OR (o.object_type OPERATOR(pg_catalog.=) 'index'
					AND o.object_name OPERATOR(pg_catalog.~) '^pixl_usage_events_([0-9]{8}|default)_'))
		 ORDER BY o.object_type OPERATOR(pg_catalog.=) 'index'
	LOOP
		IF r.object_type OPERATOR(pg_catalog.=) 'index' THEN
			RAISE EXCEPTION 'index % of a usage partition can only be dropped by pixl_run_maintenance()', r.object_name
				USING ERRCODE = 'PX063',
					  HINT = 'The indexes of usage partitions go with their partitions, which maintenance drops past pixltoken.usage_retention.';
		END IF;
		RAISE EXCEPTION 'usage partition % can only be dropped by pixl_run_maintenance()', r.object_name
			USING ERRCODE = 'PX063',
				  HINT = 'Raw usage past pixltoken.usage_retention is dropped by maintenance; lower that setting to keep less.';
	END LOOP;
END
$$;
CREATE EVENT TRIGGER pixl_guard_usage_partitions ON sql_drop
	EXECUTE FUNCTION @extschema@.pixl_guard_usage_partitions();
REVOKE ALL ON FUNCTION @extschema@.pixl_guard_usage_partitions() FROM PUBLIC;

-- DROP INDEX [CONCURRENTLY] of a usage partition's index, refused before
-- it starts (src/usage_guard.c: CONCURRENTLY commits its first steps
-- before sql_drop fires).
CREATE FUNCTION @extschema@.pixl_guard_usage_index_drop() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'pixl_guard_usage_index_drop'
	LANGUAGE C;
CREATE EVENT TRIGGER pixl_guard_usage_index_drop ON ddl_command_start
	WHEN TAG IN ('DROP INDEX')
	EXECUTE FUNCTION @extschema@.pixl_guard_usage_index_drop();
REVOKE ALL ON FUNCTION @extschema@.pixl_guard_usage_index_drop() FROM PUBLIC;

CREATE FUNCTION @extschema@.pixl_guard_usage_indexes() RETURNS event_trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_owner		oid;
	v_schema	oid;
	r			record;
BEGIN
	SELECT e.extowner, e.extnamespace INTO v_owner, v_schema
	  FROM pg_catalog.pg_extension e
	 WHERE e.extname OPERATOR(pg_catalog.=) 'pixltoken';
	IF v_owner IS NULL OR pg_catalog.pg_has_role(v_owner, 'MEMBER') THEN
		RETURN;
	END IF;
	FOR r IN
		SELECT ic.relname AS index_name
		  FROM pg_catalog.pg_event_trigger_ddl_commands() c
		  JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) c.objid
		  JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) ic.oid
		  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) i.indrelid
		 WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
		   AND t.relnamespace OPERATOR(pg_catalog.=) v_schema
		   AND t.relname OPERATOR(pg_catalog.~) '^pixl_usage_events_([0-9]{8}|default)$'
	LOOP
		RAISE EXCEPTION 'index % of a usage partition can only be changed by pixl_run_maintenance()', r.index_name
			USING ERRCODE = 'PX063',
				  HINT = 'The indexes of usage partitions are made and dropped with their partitions by maintenance.';
	END LOOP;
END
$$;
CREATE EVENT TRIGGER pixl_guard_usage_indexes ON ddl_command_end
	WHEN TAG IN ('ALTER INDEX', 'ALTER TABLE')
	EXECUTE FUNCTION @extschema@.pixl_guard_usage_indexes();
REVOKE ALL ON FUNCTION @extschema@.pixl_guard_usage_indexes() FROM PUBLIC;

------------------------------------------------------------------------------
-- Loading historical usage: two events of one microsecond, in two calls,
-- are two events (issue #8).
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_backfill_usage(token_ids text[], ats timestamptz[],
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

	-- 1.1: ids of one microsecond continue after those already stored for
	-- it (1.0 restarted at at * 16 in every call, and ON CONFLICT then
	-- silently dropped a second call's event of the same microsecond)
	SELECT array_agg(x.id ORDER BY x.ord), array_agg(x.vs ORDER BY x.ord)
	  INTO v_ids, v_vs
	  FROM (SELECT u.ord,
				   greatest(((extract(epoch FROM u.at) - 946684800) * 1000000)::bigint * 16 - 1,
							(SELECT max(e.request_id) FROM @extschema@.pixl_usage_events e
							  WHERE e.at = u.at))
				   + row_number() OVER (PARTITION BY u.at ORDER BY u.ord) AS id,
				   CASE WHEN u.st IN (403, 429) THEN u.st ELSE 200 END AS vs
			  FROM unnest(ats, statuses) WITH ORDINALITY AS u(at, st, ord)) x;

	-- analytics keys as verification makes them (usage_route.c): the
	-- endpoint is its path, no secret is kept in either
	IF methods IS NOT NULL THEN
		methods := ARRAY(SELECT @extschema@.pixl_mask_secrets(m)
						   FROM unnest(methods) WITH ORDINALITY AS u(m, o) ORDER BY o);
	END IF;
	IF endpoints IS NOT NULL THEN
		endpoints := ARRAY(SELECT @extschema@.pixl_mask_secrets(substring(e FROM '^[^?#]*'))
							 FROM unnest(endpoints) WITH ORDINALITY AS u(e, o) ORDER BY o);
	END IF;
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

------------------------------------------------------------------------------
-- Responses (src/usage_sql.c).  1.1 takes the text request ids of
-- pixl_verify_token 1.1 (src/request_id.c: a keyed MAC, unforgeable, exact
-- in every client language).  1.0's bigint form, which any caller can
-- guess, goes in 45_request_ids.sql, with its grants carried over to
-- these two.
------------------------------------------------------------------------------

-- Not STRICT: NULL arguments are an error that says so.
CREATE FUNCTION @extschema@.pixl_log_response(request_id text, status int,
											  response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response_1_1'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pixl_log_response(text, int, double precision) IS
	'Reports the final HTTP status and response time of a verified request, once; counted in the rollups, and on its usage row if kept';

CREATE FUNCTION @extschema@.pixl_log_responses(request_ids text[], statuses int[],
											   response_ms double precision[])
	RETURNS int
	AS 'MODULE_PATHNAME', 'pixl_log_responses'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pixl_log_responses(text[], int[], double precision[]) IS
	'pixl_log_response for many requests at once; all or nothing; returns how many were counted';

------------------------------------------------------------------------------
-- pixl_stats 1.1: the 1.0 columns, then the new counters
------------------------------------------------------------------------------
-- its EXECUTE grants are carried over by 45_request_ids.sql
SELECT set_config('pixl_upgrade.acl_stats', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_stats()'::pg_catalog.regprocedure;
DROP FUNCTION @extschema@.pixl_stats();
CREATE FUNCTION @extschema@.pixl_stats(OUT datname text, OUT worker_state text,
									   OUT tokens_tracked bigint,
									   OUT rate_limit_full_rejections bigint,
									   OUT events_queued bigint, OUT events_flushed bigint,
									   OUT events_written_through bigint,
									   OUT events_waited bigint,
									   OUT events_dropped bigint,
									   OUT responses_applied bigint,
									   OUT flush_lag interval, OUT last_flush_at timestamptz,
									   OUT events_sampled_out bigint,
									   OUT counts_folded bigint,
									   OUT counts_lost bigint,
									   OUT responses_ignored bigint,
									   OUT dead_letters bigint,
									   OUT last_error text,
									   OUT last_error_at timestamptz,
									   OUT aggregate_entries bigint,
									   OUT queue_capacity bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pixl_stats_1_1'
	LANGUAGE C VOLATILE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION @extschema@.pixl_stats() IS
	'Usage pipeline and rate limiter counters: one row per database of pixltoken.database, one (datname NULL) for all others';

REVOKE ALL ON @extschema@.pixl_usage_dead_letters, @extschema@.pixl_usage_maintenance_lock,
	@extschema@.pixl_usage_pending_responses FROM PUBLIC;
REVOKE ALL ON FUNCTION
	@extschema@.pixl_rollup_add(text[], timestamptz[], text[], text[], bigint[], bigint[], double precision[], bigint[], bigint[], @extschema@.pixl_latency[]),
	@extschema@.pixl_activity_add(text[], timestamptz[], bigint[], timestamptz[]),
	@extschema@.pixl_write_pending(bigint[], timestamptz[], text[], timestamptz[], text[], text[], int[]),
	@extschema@.pixl_apply_late_responses(bigint[], int[], double precision[]),
	@extschema@.pixl_match_unmatched(bigint[]),
	@extschema@.pixl_rollup_retention(),
	@extschema@.pixl_log_response(text, int, double precision),
	@extschema@.pixl_log_responses(text[], int[], double precision[]),
	@extschema@.pixl_stats()
	FROM PUBLIC;

------------------------------------------------------------------------------
-- Verification 1.1 (issue #9; src/verify.c, http_answer.c, verify_context.c)
------------------------------------------------------------------------------

-- pixl_verify_token keeps 1.0's result type for ever (eleven columns,
-- request_id bigint): a statement an app server prepared under 1.0 ("SELECT
-- * FROM pixl_verify_token($1, ...)") is planned again after the update and
-- must find the same columns.  CREATE OR REPLACE keeps its oid and grants;
-- the 1.1 symbol counts usage as 1.1 does, and its request_id is the sealed
-- bigint form (src/request_id.c: unforgeable, taken by pixl_log_response
-- (bigint, ...)).  A NULL scope still means "no scope check" here, as in
-- 1.0; 1.1's functions below refuse it.
CREATE OR REPLACE FUNCTION pixl_verify_token(token text,
											 scope text DEFAULT NULL,
											 store_id text DEFAULT NULL,
											 method text DEFAULT NULL,
											 endpoint text DEFAULT NULL,
											 ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_1_1'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) IS
	'1.0''s verification, with 1.0''s result columns for app servers written against 1.0: status 200, 401, 403, 429 or 503; new code calls pixl_verify_request';
SELECT set_config('pixl_upgrade.acl_verify', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_verify_token(text, text, text, text, text, inet)'::pg_catalog.regprocedure;

-- 1.1's verification: 1.0's ten first columns, request_id as opaque text,
-- then metadata, previous_secret_used and staleness_ms (on a hot standby,
-- how old its view of the primary may be, in ms, src/standby.c; NULL on a
-- primary and on a standby that cannot tell; bigint: a standby's lag has no
-- upper bound, int ms would end at 24.8 days).  Later versions only ever
-- add columns at the end, so a statement that names its columns survives
-- every update (README, "Upgrading").  A scope is required: NULL is an
-- error (PX081), '*' asks for none.
--
-- Not STRICT (a NULL token is a 401 "missing"), VOLATILE (rate limit and
-- clock), PARALLEL UNSAFE (fresh snapshot, shared counters, RLS context).
-- It reads the registry directly (no SQL), so EXECUTE is all an app-server
-- role needs (whoever could execute pixl_verify_token may execute it);
-- README.md shows that grant.
CREATE FUNCTION pixl_verify_request(token text,
									scope text DEFAULT NULL,
									store_id text DEFAULT NULL,
									method text DEFAULT NULL,
									endpoint text DEFAULT NULL,
									ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint)
	AS 'MODULE_PATHNAME', 'pixl_verify_request'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION pixl_verify_request(text, text, text, text, text, inet) IS
	'Verifies an API token for one request: status 200, 401, 403, 429 or 503 (a hot standby too far behind) with the reason, rate-limit state and staleness; never raises for a bad token; columns are only ever added at the end';
REVOKE ALL ON FUNCTION pixl_verify_request(text, text, text, text, text, inet) FROM PUBLIC;
SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_verify'), '')::aclitem[],
		'@extschema@.pixl_verify_request(text, text, text, text, text, inet)');

-- The same verification, and the finished HTTP answer: header values ready
-- to copy (NULL when the header does not apply) and the RFC 9457 problem
-- body (NULL on 200).  README.md has the mapping table.  Like
-- pixl_verify_request, its columns are only ever added at the end (after
-- problem), and its scope is required.
CREATE FUNCTION pixl_verify_token_http(token text,
									   scope text DEFAULT NULL,
									   store_id text DEFAULT NULL,
									   method text DEFAULT NULL,
									   endpoint text DEFAULT NULL,
									   ip inet DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text,
				   mode text, scopes text[], rate_limit int, remaining int,
				   reset_at timestamptz, retry_after_ms int, request_id text,
				   metadata jsonb, previous_secret_used boolean,
				   staleness_ms bigint,
				   www_authenticate text, ratelimit_policy text, ratelimit text,
				   retry_after text, problem jsonb)
	AS 'MODULE_PATHNAME', 'pixl_verify_token_http'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) IS
	'pixl_verify_token plus WWW-Authenticate, RateLimit-Policy, RateLimit, Retry-After and a problem+json body';
REVOKE ALL ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) FROM PUBLIC;
SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_verify'), '')::aclitem[],
		'@extschema@.pixl_verify_token_http(text, text, text, text, text, inet)');

-- The token and store the last verification of this transaction admitted
-- (200), else NULL; for row-level security policies.  C statics, not
-- settings: no SET reaches them; cleared at transaction end.
CREATE FUNCTION pixl_current_token() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_current_token'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION pixl_current_store() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_current_store'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pixl_current_token() IS
	'Token id admitted by the last verification of this transaction, or NULL';
COMMENT ON FUNCTION pixl_current_store() IS
	'Store id of the token admitted by the last verification of this transaction, or NULL';
-- harmless to anyone (they only reveal what the caller's own transaction
-- verified): granted to PUBLIC so that policies of any role can use them
REVOKE ALL ON FUNCTION pixl_current_token(), pixl_current_store() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pixl_current_token(), pixl_current_store() TO PUBLIC;


------------------------------------------------------------------------------
-- pixl_tokens 1.1
------------------------------------------------------------------------------

-- Rotation telemetry: the usage worker maintains these from verification
-- events of a previous secret (the pipeline's fragment may have added them
-- already); pixl_rotate_token() starts them over.
ALTER TABLE @extschema@.pixl_token_activity
	ADD COLUMN IF NOT EXISTS previous_secret_last_used_at timestamptz,
	ADD COLUMN IF NOT EXISTS previous_secret_uses bigint NOT NULL DEFAULT 0;

-- 1.0's columns unchanged (status gains 'exposed' and 'disabled'), new ones
-- at the end; only the stores the caller may see (security_barrier, as in
-- 11_store_admins.sql: CREATE OR REPLACE VIEW resets options not given).
CREATE OR REPLACE VIEW pixl_tokens WITH (security_barrier = true) AS
SELECT t.token_id,
	   t.store_id,
	   t.name,
	   t.mode,
	   t.hint,
	   @extschema@.pixl_scope_names(t.scope_bits) AS scopes,
	   t.rate_limit,
	   least(t.rate_limit, p.max_rate_limit) AS effective_rate_limit,
	   t.expires_at,
	   CASE WHEN t.revoked_reason = 'exposed' THEN 'exposed'
			WHEN t.revoked_at IS NOT NULL THEN 'revoked'
			WHEN t.disabled_at IS NOT NULL THEN 'disabled'
			WHEN t.expires_at <= clock_timestamp() THEN 'expired'
			ELSE 'active' END AS status,
	   t.created_at,
	   a.last_used_at,
	   t.rotated_at,
	   t.revoked_at,
	   t.allowed_ips,
	   t.metadata,
	   t.disabled_at,
	   t.disabled_reason,
	   CASE WHEN t.previous_valid_until > clock_timestamp()
			THEN t.previous_valid_until END AS previous_secret_valid_until,
	   a.previous_secret_last_used_at,
	   coalesce(a.previous_secret_uses, 0) AS previous_secret_uses
  FROM @extschema@.pixl_token_registry t
  JOIN @extschema@.pixl_stores s ON s.store_id = t.store_id
  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
 WHERE @extschema@.pixl_store_visible(t.store_id);

------------------------------------------------------------------------------
-- 1.0's bigint request ids could be guessed: any caller could rewrite
-- another store's usage row with them, and JavaScript rounds them.  1.1's
-- pixl_verify_request hands out unforgeable text ids (40_verify.sql), and
-- pixl_verify_token, which keeps 1.0's result type for app servers written
-- against 1.0, hands out sealed bigint ids (src/request_id.c: a keyed
-- permutation, as unforgeable as the text form's MAC).  So 1.0's
-- pixl_log_response(bigint, ...) stays, for those app servers' reports
-- (single, or batched as "SELECT pixl_log_response(id, ...) FROM
-- unnest($1::bigint[], ...)"), now taking only sealed ids of this cluster
-- (PX032 otherwise) and counting each response once, as the text form
-- does.  CREATE OR REPLACE keeps its grants; whoever could report
-- responses before may do so with the text forms too; pixl_stats
-- (re-created with new columns by 30_usage.sql) keeps its grants too.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION @extschema@.pixl_log_response(request_id bigint, status int,
														 response_ms double precision)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_log_response_sealed'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pixl_log_response(bigint, int, double precision) IS
	'Reports the final HTTP status and response time of a request verified by pixl_verify_token (its sealed bigint id), once; counted in the rollups, and on its usage row if kept';
SELECT set_config('pixl_upgrade.acl_log', coalesce(p.proacl::text, ''), true)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = '@extschema@.pixl_log_response(bigint, int, double precision)'::pg_catalog.regprocedure;

SELECT @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_log'), '')::aclitem[],
		'@extschema@.pixl_log_response(text, int, double precision)'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_log'), '')::aclitem[],
		'@extschema@.pixl_log_responses(text[], int[], double precision[])'),
	   @extschema@.pixl_upgrade_copy_grants(
		nullif(current_setting('pixl_upgrade.acl_stats'), '')::aclitem[],
		'@extschema@.pixl_stats()');

------------------------------------------------------------------------------
-- Dashboards (issue #10.2): usage views a SQL dashboard tool (Grafana,
-- Metabase, psql) can query directly.  They read the rollups, never the raw
-- events, so any time range over 10 million events costs a scan of rollup
-- rows only (hourly: one row per token, UTC hour, method and endpoint;
-- daily: per UTC day).  Token names and stores are joined in.  Every view
-- shows only the stores the caller may see (pixl_store_visible), and is a
-- security barrier so that no function of the caller's query sees the rows
-- of other stores.  Granted to no one: README "Dashboards" shows the grant.
--
-- Columns of every view: store_id, token_id, token_name, bucket (UTC hour
-- or UTC midnight), method, endpoint ('' in the rollups shown as NULL),
-- requests, errors (final status >= 400), rate_limited (answered 429;
-- rollup rows written by 1.0 count none), response_ms_sum and response_ms_count (to
-- average correctly across rows: sum(response_ms_sum) /
-- sum(response_ms_count)), avg_response_ms, error_rate (percent); then
-- latency (the pixl_latency histogram of the response times: merge rows
-- with pixl_latency_merge, list buckets with pixl_latency_buckets for a
-- heatmap) and p50_ms, p95_ms, p99_ms of the row (within 4.43 %).
-- latency and the percentiles are NULL where responses were folded before
-- 1.1 (no histogram was kept then).
------------------------------------------------------------------------------

CREATE VIEW pixl_usage_by_hour WITH (security_barrier) AS
SELECT t.store_id,
	   h.token_id,
	   t.name AS token_name,
	   h.bucket,
	   nullif(h.method, '') AS method,
	   nullif(h.endpoint, '') AS endpoint,
	   h.requests,
	   h.errors,
	   h.rate_limited,
	   h.response_ms_sum,
	   h.response_ms_count,
	   h.response_ms_sum / nullif(h.response_ms_count, 0) AS avg_response_ms,
	   100.0::double precision * h.errors / nullif(h.requests, 0) AS error_rate,
	   h.latency,
	   @extschema@.pixl_latency_quantile(h.latency, 0.5) AS p50_ms,
	   @extschema@.pixl_latency_quantile(h.latency, 0.95) AS p95_ms,
	   @extschema@.pixl_latency_quantile(h.latency, 0.99) AS p99_ms
  FROM @extschema@.pixl_usage_hourly h
  JOIN @extschema@.pixl_token_registry t ON t.token_id = h.token_id
 WHERE @extschema@.pixl_store_visible(t.store_id);
COMMENT ON VIEW pixl_usage_by_hour IS
	'Usage per token, UTC hour, method and endpoint (hourly rollups), of the stores the caller may see';

-- Closed days that maintenance rolled up come from pixl_usage_daily, the
-- days after them from the hourly rollups summed per UTC day: each hour is
-- counted once.  The token join is inside each branch, so that a filter on
-- store_id or token_id reaches the rollups' (token_id, bucket, ...) keys.
CREATE VIEW pixl_usage_by_day WITH (security_barrier) AS
SELECT u.store_id,
	   u.token_id,
	   u.token_name,
	   u.bucket,
	   nullif(u.method, '') AS method,
	   nullif(u.endpoint, '') AS endpoint,
	   u.requests,
	   u.errors,
	   u.rate_limited,
	   u.response_ms_sum,
	   u.response_ms_count,
	   u.response_ms_sum / nullif(u.response_ms_count, 0) AS avg_response_ms,
	   100.0::double precision * u.errors / nullif(u.requests, 0) AS error_rate,
	   u.latency,
	   @extschema@.pixl_latency_quantile(u.latency, 0.5) AS p50_ms,
	   @extschema@.pixl_latency_quantile(u.latency, 0.95) AS p95_ms,
	   @extschema@.pixl_latency_quantile(u.latency, 0.99) AS p99_ms
  FROM (SELECT t.store_id, d.token_id, t.name AS token_name, d.bucket, d.method, d.endpoint,
			   d.requests, d.errors, d.rate_limited, d.response_ms_sum, d.response_ms_count,
			   d.latency
		  FROM @extschema@.pixl_usage_daily d
		  JOIN @extschema@.pixl_token_registry t ON t.token_id = d.token_id
		 WHERE d.bucket < coalesce((SELECT s.rolled_up_until
									  FROM @extschema@.pixl_usage_daily_state s), '-infinity')
		UNION ALL
		SELECT t.store_id, h.token_id, t.name, date_trunc('day', h.bucket, 'UTC'), h.method, h.endpoint,
			   sum(h.requests)::bigint, sum(h.errors)::bigint, sum(h.rate_limited)::bigint,
			   sum(h.response_ms_sum), sum(h.response_ms_count)::bigint,
			   CASE WHEN bool_or(h.latency IS NULL AND h.response_ms_count > 0) THEN NULL
					ELSE @extschema@.pixl_latency_merge(h.latency) END
		  FROM @extschema@.pixl_usage_hourly h
		  JOIN @extschema@.pixl_token_registry t ON t.token_id = h.token_id
		 WHERE h.bucket >= coalesce((SELECT s.rolled_up_until
									   FROM @extschema@.pixl_usage_daily_state s), '-infinity')
		 GROUP BY t.store_id, h.token_id, t.name, date_trunc('day', h.bucket, 'UTC'), h.method, h.endpoint) u
 WHERE @extschema@.pixl_store_visible(u.store_id);
COMMENT ON VIEW pixl_usage_by_day IS
	'Usage per token, UTC day, method and endpoint (daily rollups, hourly ones for days not rolled up yet), of the stores the caller may see';

-- Per store and UTC day: the overview panel of a dashboard.
CREATE VIEW pixl_usage_by_store WITH (security_barrier) AS
SELECT s.store_id, s.bucket, s.tokens_used, s.requests, s.errors, s.rate_limited,
	   s.response_ms_sum, s.response_ms_count, s.avg_response_ms, s.error_rate,
	   s.latency,
	   @extschema@.pixl_latency_quantile(s.latency, 0.5) AS p50_ms,
	   @extschema@.pixl_latency_quantile(s.latency, 0.95) AS p95_ms,
	   @extschema@.pixl_latency_quantile(s.latency, 0.99) AS p99_ms
  FROM (SELECT d.store_id,
			   d.bucket,
			   count(DISTINCT d.token_id) AS tokens_used,
			   sum(d.requests)::bigint AS requests,
			   sum(d.errors)::bigint AS errors,
			   sum(d.rate_limited)::bigint AS rate_limited,
			   sum(d.response_ms_sum) AS response_ms_sum,
			   sum(d.response_ms_count)::bigint AS response_ms_count,
			   sum(d.response_ms_sum) / nullif(sum(d.response_ms_count), 0) AS avg_response_ms,
			   100.0::double precision * sum(d.errors) / nullif(sum(d.requests), 0) AS error_rate,
			   CASE WHEN bool_or(d.latency IS NULL AND d.response_ms_count > 0) THEN NULL
					ELSE @extschema@.pixl_latency_merge(d.latency) END AS latency
		  FROM @extschema@.pixl_usage_by_day d
		 GROUP BY d.store_id, d.bucket) s;
COMMENT ON VIEW pixl_usage_by_store IS
	'Usage per store and UTC day, of the stores the caller may see';

REVOKE ALL ON pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store FROM PUBLIC;
------------------------------------------------------------------------------
-- Replicas (issue #11): how current a hot standby's view is (src/standby.c).
------------------------------------------------------------------------------

-- One row.  On a primary: is_standby false, basis 'primary', staleness and
-- last_replayed_commit NULL.  On a standby: staleness is how old its view of
-- the primary may be (NULL when it cannot tell, which counts as beyond any
-- bound), measured by the rule named in basis ('caught_up', 'behind',
-- 'no_stream', 'unknown'; src/standby.c, docs/replicas.md).  bound is
-- pixltoken.max_standby_staleness, NULL when unset (0).
CREATE FUNCTION @extschema@.pixl_replica_status(
	OUT is_standby boolean, OUT staleness interval,
	OUT last_replayed_commit timestamptz, OUT bound interval,
	OUT basis text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pixl_replica_status'
	LANGUAGE C VOLATILE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.pixl_replica_status() IS
	'Whether this node is a hot standby, how stale its view of the primary may be, and the bound past which verification answers 503 stale';
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_status() FROM PUBLIC;

------------------------------------------------------------------------------
-- Usage shipped from hot standbys (src/usage_ship.c, src/usage_ingest.c).
------------------------------------------------------------------------------

-- One row per standby that ships: (node_id, incarnation) names it, last_seq
-- is the last batch applied.  Not dumped: a restored database has new
-- standbys, which register afresh.
CREATE TABLE @extschema@.pixl_replica_nodes (
	node_id		smallint PRIMARY KEY CHECK (node_id BETWEEN 1 AND 15),
	incarnation	bigint NOT NULL CHECK (incarnation > 0),
	node_name	text,
	last_seq	bigint NOT NULL CHECK (last_seq >= 0),
	share		real CHECK (share > 0 AND share <= 1),
	first_seen	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_ack_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.pixl_replica_nodes IS
	'Hot standbys that ship their usage here: the last batch applied of each, and its rate_limit_share';
REVOKE ALL ON @extschema@.pixl_replica_nodes FROM PUBLIC;

CREATE FUNCTION @extschema@.pixl_ingest_usage(node_id integer,
	incarnation bigint, seq bigint, share real, node_name text, batch bytea)
	RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_ingest_usage'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) IS
	'Applies a batch of usage shipped by a hot standby, at most once: applied or duplicate (grant it to the role the standbys connect as)';
REVOKE ALL ON FUNCTION @extschema@.pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) FROM PUBLIC;

-- Incarnations forgotten by pixl_replica_reset_node: refused for ever
-- (PX065), so that a batch the old incarnation sends again is never
-- counted twice.  Not dumped, as pixl_replica_nodes.
CREATE TABLE @extschema@.pixl_replica_retired (
	node_id		smallint NOT NULL CHECK (node_id BETWEEN 1 AND 15),
	incarnation	bigint NOT NULL CHECK (incarnation > 0),
	node_name	text,
	last_seq	bigint NOT NULL,
	retired_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	retired_by	name NOT NULL,
	PRIMARY KEY (node_id, incarnation)
);
COMMENT ON TABLE @extschema@.pixl_replica_retired IS
	'Incarnations of standbys forgotten by pixl_replica_reset_node: their batches are refused for ever';
REVOKE ALL ON @extschema@.pixl_replica_retired FROM PUBLIC;

-- Replication operators: the NOLOGIN role pixl_replica_operator (members
-- with INHERIT) and superusers reset nodes.  Not platform admins, who read
-- every store's usage: resetting a node decides what is counted.  The role
-- is cluster-wide, created by the first CREATE EXTENSION (or upgrade) that
-- misses it, as pixl_platform_admin.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_replica_operator') THEN
		CREATE ROLE pixl_replica_operator NOLOGIN;
	END IF;
END
$$;

-- Forgets a standby, so that a rebuilt one (a new incarnation) may take its
-- node id.  The forgotten incarnation is retired for ever.  Replication
-- operators only, for the calling role and for the caller (a wrapper with
-- a caller ticket, as in 11_store_admins.sql).
CREATE FUNCTION @extschema@.pixl_replica_reset_node_impl(caller_ticket bigint, node_id integer)
	RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	v_row	@extschema@.pixl_replica_nodes;
	v_role	oid := @extschema@.pixl_calling_role();
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_replica_reset_node(integer)');
	v_denied	oid;
BEGIN
	-- the calling role first, then the role the call runs with
	SELECT who.role INTO v_denied
	  FROM pg_catalog.unnest(ARRAY[v_role, v_caller]) WITH ORDINALITY AS who(role, n)
	 WHERE NOT (coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
						   WHERE r.oid OPERATOR(pg_catalog.=) who.role), false)
				OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
							WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_replica_operator'
							  AND pg_catalog.pg_has_role(who.role, r.oid, 'USAGE')))
	 ORDER BY who.n LIMIT 1;
	IF FOUND THEN
		PERFORM @extschema@.pixl_raise_hidden('PX040',
			'only replication operators may reset replica nodes',
			@extschema@.pixl_borrow_detail(v_denied),
			'Replication operators are superusers and members of pixl_replica_operator.');
	END IF;
	DELETE FROM @extschema@.pixl_replica_nodes n
		WHERE n.node_id OPERATOR(pg_catalog.=) pixl_replica_reset_node_impl.node_id
		RETURNING * INTO v_row;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	INSERT INTO @extschema@.pixl_replica_retired
		(node_id, incarnation, node_name, last_seq, retired_by)
	VALUES (v_row.node_id, v_row.incarnation, v_row.node_name, v_row.last_seq,
			v_role::regrole::text)
	ON CONFLICT DO NOTHING;
	RAISE LOG 'pixltoken: replica node % (%) forgotten by %: last batch %',
		v_row.node_id, v_row.node_name, v_role::regrole, v_row.last_seq;
	RETURN true;
END;
$$;
CREATE FUNCTION @extschema@.pixl_replica_reset_node(node_id integer)
	RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT @extschema@.pixl_replica_reset_node_impl(@extschema@.pixl_caller_ticket(), $1);
$$;
COMMENT ON FUNCTION @extschema@.pixl_replica_reset_node(integer) IS
	'Forgets a standby that ships usage, so that another (or a rebuilt one) may use its node id; the forgotten incarnation is refused for ever';
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node(integer) TO pixl_replica_operator;

-- Helpers of this upgrade only.
DROP FUNCTION pixl_upgrade_copy_grants(aclitem[], regprocedure);
