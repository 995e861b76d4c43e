
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
