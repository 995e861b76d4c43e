------------------------------------------------------------------------------
-- C helpers: randomness, hashing, format and scopes
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pixl_new_token_id() RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_new_token_id'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_new_secret(mode text, OUT token text, OUT secret_hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'pixl_new_secret'
	LANGUAGE C VOLATILE PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_secret_hash(token text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_secret_hash'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_token_checksum(data text) RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_token_checksum'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_token_format(token text) RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_token_format'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION pixl_token_format(text) IS
	'What the format check alone says of a token: ok, missing, malformed or token_id_not_secret';


CREATE OR REPLACE FUNCTION pixl_scope_bits(scopes text[]) RETURNS int
	AS 'MODULE_PATHNAME', 'pixl_scope_bits'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_scope_names(scope_bits int) RETURNS text[]
	AS 'MODULE_PATHNAME', 'pixl_scope_names'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_check_expiry(expires_at timestamptz) RETURNS void
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
CREATE OR REPLACE FUNCTION pixl_resolve_rate_limit(store_id text, rate_limit int) RETURNS int
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

CREATE OR REPLACE FUNCTION pixl_set_store_plan(store_id text, plan text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_set_store_plan_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;

------------------------------------------------------------------------------
-- Input that 1.0 accepted silently, and per-store token caps.  Each failure has its own SQLSTATE (README.md).
------------------------------------------------------------------------------

-- A value for a message with every character outside printable ASCII
-- spelled out as <U+XXXX>, so that look-alikes are visible; secrets masked
-- as in pixl_quote.
CREATE OR REPLACE FUNCTION pixl_visible(value text) RETURNS text
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
-- is new since 1.1 must also use the documented alphabet: ASCII letters and
-- digits, then letters, digits, '.', '_', ':' and '-' (PX044), so that
-- "shop-1" with an invisible U+200B in front or a U+00A0 at the end is not
-- a second store that looks like the first.  It must not look like a
-- secret either (PX045).  Stores that already exist keep working whatever
-- their id (grandfathered).  The alphabet is only checked for a caller who
-- may administer the store: anyone else gets PX040, whether or not a store
-- has that id (else PX044 against PX040 would tell).
CREATE OR REPLACE FUNCTION pixl_check_store_id(store_id text, caller oid) RETURNS void
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


-- Free text that is stored (a disable reason, a leak source) keeps the
-- action it describes and loses the secret: the characters of every secret
-- shape after its prefix become '*', as in the server log.
CREATE OR REPLACE FUNCTION pixl_mask_secrets(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_mask_secrets'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;


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


CREATE OR REPLACE FUNCTION pixl_plans_restore_seed() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE @extschema@.pixl_plans p
	   SET default_rate_limit = NEW.default_rate_limit,
		   max_rate_limit = NEW.max_rate_limit,
		   max_tokens = coalesce(NEW.max_tokens, p.max_tokens),
		   period_quota = NEW.period_quota,
		   quota_counts = coalesce(NEW.quota_counts, 'all'),
		   max_lifetime = NEW.max_lifetime,
		   expiry_required = NEW.expiry_required,
		   inactive_after = NEW.inactive_after,
		   inactive_action = NEW.inactive_action,
		   inactive_warning = NEW.inactive_warning
	 WHERE p.plan = NEW.plan
	   AND (p.plan, p.default_rate_limit, p.max_rate_limit, p.max_tokens) IN
		   (('free', 60, 60, 10), ('starter', 60, 120, 25), ('growth', 60, 300, 100),
			('pro', 60, 600, 250), ('enterprise', 60, 1000, 1000))
	   AND p.period_quota IS NULL AND p.quota_counts = 'all'
	   AND p.max_lifetime IS NULL AND p.expiry_required IS NULL AND p.inactive_after IS NULL
	   AND p.inactive_action IS NULL AND p.inactive_warning IS NULL;
	IF FOUND THEN
		RETURN NULL;			-- the untouched seed row now has the new values
	END IF;
	NEW.max_tokens := coalesce(NEW.max_tokens, 100);
	RETURN NEW;
END
$$;

COMMENT ON FUNCTION pixl_plans_restore_seed() IS
	'Lets a restored dump replace an untouched seeded plan instead of colliding with it';

CREATE OR REPLACE TRIGGER pixl_plans_restore_seed
	BEFORE INSERT ON pixl_plans
	FOR EACH ROW EXECUTE FUNCTION pixl_plans_restore_seed();


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
CREATE OR REPLACE FUNCTION pixl_enforce_store_token_cap() RETURNS trigger
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

CREATE OR REPLACE TRIGGER pixl_token_registry_store_cap
	BEFORE INSERT ON pixl_token_registry
	FOR EACH ROW EXECUTE FUNCTION pixl_enforce_store_token_cap();

CREATE OR REPLACE TRIGGER pixl_token_registry_store_cap_reactivate
	BEFORE UPDATE OF expires_at ON pixl_token_registry
	FOR EACH ROW WHEN (OLD.expires_at IS DISTINCT FROM NEW.expires_at) EXECUTE FUNCTION pixl_enforce_store_token_cap();


-- Token cache: per-token invalidation (src/token_cache.c,
-- src/token_inval.c).  Row triggers name what changed (the old row's
-- secret hashes, store or plan), published to every backend at commit.
-- TRUNCATE empties the database's caches.
CREATE OR REPLACE FUNCTION pixl_token_cache_row_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'pixl_token_cache_row_changed'
	LANGUAGE C;


CREATE OR REPLACE TRIGGER pixl_token_registry_invalidate
	AFTER INSERT OR UPDATE OR DELETE ON @extschema@.pixl_token_registry
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('token');

CREATE OR REPLACE TRIGGER pixl_token_registry_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_token_registry
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();

CREATE OR REPLACE TRIGGER pixl_stores_invalidate
	AFTER UPDATE OR DELETE ON @extschema@.pixl_stores
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('store');

CREATE OR REPLACE TRIGGER pixl_stores_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_stores
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();

CREATE OR REPLACE TRIGGER pixl_plans_invalidate
	AFTER UPDATE OR DELETE ON @extschema@.pixl_plans
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed('plan');

CREATE OR REPLACE TRIGGER pixl_plans_invalidate_all
	AFTER TRUNCATE ON @extschema@.pixl_plans
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.pixl_token_cache_row_changed();


-- The calling backend's token cache: hits and misses since the backend
-- started, entries evicted (by a change or to make room), whole flushes,
-- entries held, and the shared invalidation generation.  For monitoring and
-- for the tests of per-token eviction.
CREATE OR REPLACE FUNCTION pixl_cache_stats(OUT hits bigint, OUT misses bigint,
								 OUT evictions bigint, OUT flushes bigint,
								 OUT entries bigint, OUT generation bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pixl_cache_stats'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION pixl_cache_stats() IS
	'This backend''s token cache: hits, misses, evictions, flushes, entries, invalidation generation';


-- Every audited change is also a lifecycle event in the outbox
-- (pixl_events, one row with the audit row's id, and a delivery per
-- consumer of its store: code/37_events.sql) and a NOTIFY pixltoken, in
-- the same transaction (a consumer never gets a change that rolled back).
-- The channel is a wake-up only: PostgreSQL has no privilege on LISTEN or
-- NOTIFY, so any role that can connect hears it and can send it.  The
-- payload is empty (PostgreSQL folds equal notifications of a transaction
-- into one); pixltoken.event_notify = off sends none.  PL/pgSQL: the
-- outbox's function comes later in the script.
CREATE OR REPLACE FUNCTION pixl_write_audit(action text, token_id text, store_id text, detail jsonb)
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint;
	v_at	timestamptz;
BEGIN
	INSERT INTO @extschema@.pixl_audit AS a (action, token_id, store_id, detail)
	VALUES (pixl_write_audit.action, pixl_write_audit.token_id, pixl_write_audit.store_id,
			pixl_write_audit.detail)
	RETURNING a.audit_id, a.at INTO v_id, v_at;
	PERFORM @extschema@.pixl_event_enqueue(v_id, v_at, pixl_write_audit.action, pixl_write_audit.token_id,
										   pixl_write_audit.store_id, pixl_write_audit.detail);
END
$$;


-- An audit action in the words of the lifecycle events (pixl_events_since
-- and the outbox's types).
CREATE OR REPLACE FUNCTION pixl_event_name(action text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE action WHEN 'create' THEN 'created'
					   WHEN 'rotate' THEN 'rotated'
					   WHEN 'update' THEN 'updated'
					   WHEN 'revoke' THEN 'revoked'
					   WHEN 'plan' THEN 'plan_changed'
					   WHEN 'disable' THEN 'disabled'
					   WHEN 'enable' THEN 'enabled'
					   WHEN 'expose' THEN 'exposed'
					   WHEN 'plan_quota' THEN 'plan_quota_changed'
					   WHEN 'policy' THEN 'policy_changed'
					   WHEN 'clamp' THEN 'policy_clamped'
					   ELSE action END;
$$;


-- What the lifecycle events were, after audit id after_id: the audit rows
-- of the stores the calling role sees (pixl_store_visible), in id order,
-- at most max_rows; action in the events' words (created, updated,
-- rotated, revoked, plan_changed, disabled, enabled, exposed, expiring,
-- rotation_due, quota_warning, quota_exhausted, plan_quota_changed,
-- policy_changed, policy_clamped, inactive_soon).
-- SECURITY INVOKER: the caller needs SELECT on pixl_audit, whose policy
-- also applies.  Ids follow insertion, not commit: a
-- transaction that commits after a later one can add an id below a
-- consumer's cursor, so consumers re-read an overlap (README).
CREATE OR REPLACE FUNCTION pixl_events_since(after_id bigint DEFAULT 0, max_rows integer DEFAULT 1000)
	RETURNS TABLE (audit_id bigint, at timestamptz, action text, token_id text,
				   store_id text, detail jsonb)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.audit_id, a.at, @extschema@.pixl_event_name(a.action),
		   a.token_id, a.store_id, a.detail
	  FROM @extschema@.pixl_audit a
	 WHERE a.audit_id OPERATOR(pg_catalog.>) coalesce(after_id, 0)
	   AND @extschema@.pixl_store_visible(a.store_id)
	 ORDER BY a.audit_id
	 LIMIT greatest(coalesce(max_rows, 1000), 0);
$$;

COMMENT ON FUNCTION pixl_events_since(bigint, integer) IS
	'Lifecycle events (audit rows) of the caller''s stores after an audit id, in id order: what a NOTIFY pixltoken wake-up is about';


------------------------------------------------------------------------------
-- Validation of the new arguments (PX070-PX081, listed in README.md)
------------------------------------------------------------------------------

-- An allowlist from text: each element a network in CIDR notation (a bare
-- address is one host).  NULL: any address.  On update, '{}' removes it.
CREATE OR REPLACE FUNCTION pixl_check_allowed_ips(allowed_ips text[]) RETURNS cidr[]
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
CREATE OR REPLACE FUNCTION pixl_check_metadata(metadata jsonb) RETURNS void
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


CREATE OR REPLACE FUNCTION pixl_check_reason(reason text) RETURNS void
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


CREATE OR REPLACE FUNCTION pixl_check_source(source text) RETURNS void
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
CREATE OR REPLACE FUNCTION pixl_leaked_secret_hash(secret text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'pixl_leaked_secret_hash'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;


------------------------------------------------------------------------------
-- Token management: wrappers and implementations
------------------------------------------------------------------------------

-- Each public management function is a SECURITY INVOKER wrapper that hands
-- a caller ticket to its SECURITY DEFINER implementation (name_impl), which
-- checks the store for the ticket's role as well as for the calling role
-- (code/20_store_admins.sql, src/store_access.c).
CREATE OR REPLACE FUNCTION pixl_create_token_impl(caller_ticket bigint, store_id text, name text, scopes text[],
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
	-- the store's hygiene policy, under the store's row lock that a policy
	-- change takes too (code/85_hygiene.sql)
	PERFORM 1 FROM @extschema@.pixl_stores s WHERE s.store_id = v_store FOR NO KEY UPDATE;
	PERFORM @extschema@.pixl_check_policy_expiry(v_store, @extschema@.pixl_policy_of(v_store),
		v_expires, now(), NULL, true);
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

CREATE OR REPLACE FUNCTION pixl_create_token(store_id text, name text, scopes text[],
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


CREATE OR REPLACE FUNCTION pixl_update_token_impl(caller_ticket bigint, token_id text, name text, scopes text[],
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
		PERFORM @extschema@.pixl_check_policy_expiry(r.store_id, @extschema@.pixl_policy_of(r.store_id),
			v_expires, coalesce(r.rotated_at, r.created_at), r.expires_at, false);
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

CREATE OR REPLACE FUNCTION pixl_update_token(token_id text,
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


CREATE OR REPLACE FUNCTION pixl_rotate_token_impl(caller_ticket bigint, token_id text, grace interval)
	RETURNS text
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_rotate_token(text, interval)');
	r			@extschema@.pixl_token_registry;
	v_secret	record;
	v_policy	jsonb;
	v_max		interval;
	v_expires	timestamptz;
	v_detail	jsonb := '{}';
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
	-- A rotation starts a new lifetime: under a maximum lifetime, an expiry
	-- beyond it (or none) becomes now + max_lifetime, audited with the
	-- rotation.  Under expiry_required alone, a token without an expiry is
	-- refused (PX034): the policy does not say which expiry to give it.
	v_policy := @extschema@.pixl_policy_of(r.store_id);
	v_max := (v_policy->>'max_lifetime')::interval;
	v_expires := r.expires_at;
	IF v_max IS NOT NULL AND (r.expires_at IS NULL OR r.expires_at > now() + v_max) THEN
		v_expires := now() + v_max;
		v_detail := jsonb_build_object('expires_at', jsonb_build_object('old', r.expires_at, 'new', v_expires));
	ELSIF r.expires_at IS NULL AND (v_policy->>'expiry_required')::boolean THEN
		RAISE EXCEPTION 'store % requires tokens to expire', @extschema@.pixl_quote(r.store_id)
			USING ERRCODE = 'PX034',
				  DETAIL = format('Token %s has no expiry, and the store''s hygiene policy requires one.',
								  @extschema@.pixl_quote(token_id)),
				  HINT = 'Give it an expiry first with pixl_update_token(expires_at => ...).';
	END IF;

	SELECT * INTO v_secret FROM @extschema@.pixl_new_secret(r.mode);
	UPDATE @extschema@.pixl_token_registry t
	   SET secret_hash = v_secret.secret_hash,
		   hint = v_secret.hint,
		   previous_hash = CASE WHEN grace > interval '0' THEN r.secret_hash END,
		   previous_valid_until = CASE WHEN grace > interval '0' THEN clock_timestamp() + grace END,
		   rotated_at = now(),
		   expires_at = v_expires
	 WHERE t.token_id = r.token_id;
	-- the previous secret's telemetry starts over with this rotation
	UPDATE @extschema@.pixl_token_activity a
	   SET previous_secret_last_used_at = NULL, previous_secret_uses = 0
	 WHERE a.token_id = r.token_id;

	PERFORM @extschema@.pixl_write_audit('rotate', r.token_id, r.store_id,
		jsonb_build_object('grace', grace::text, 'old_hint', r.hint, 'new_hint', v_secret.hint) || v_detail);
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

COMMENT ON FUNCTION pixl_rotate_token(text, interval) IS
	'New secret for the same token; the old one stops at commit, or after grace';


CREATE OR REPLACE FUNCTION pixl_revoke_token_impl(caller_ticket bigint, token_id text) RETURNS void
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

COMMENT ON FUNCTION pixl_revoke_token(text) IS
	'Irreversibly disables a token for every connection once the transaction commits';


CREATE OR REPLACE FUNCTION pixl_disable_token_impl(caller_ticket bigint, token_id text, reason text) RETURNS void
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

CREATE OR REPLACE FUNCTION pixl_disable_token(token_id text, reason text DEFAULT NULL) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_disable_token_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;


CREATE OR REPLACE FUNCTION pixl_enable_token_impl(caller_ticket bigint, token_id text) RETURNS void
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

CREATE OR REPLACE FUNCTION pixl_enable_token(token_id text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_enable_token_impl(@extschema@.pixl_caller_ticket(), $1);
END
$$;

COMMENT ON FUNCTION pixl_disable_token(text, text) IS
	'Suspends a token (401 disabled) for every connection once the transaction commits; pixl_enable_token() undoes it';

COMMENT ON FUNCTION pixl_enable_token(text) IS
	'Ends a disable; revoked tokens cannot be enabled';


-- A leaked secret, by its SHA-256: the token it belongs to (as its current
-- secret, or its previous one while still in its grace) is revoked at once with reason exposed, and the
-- report is audited with its source.  The answer is the same whether or
-- not a token has this hash, and whatever state it is in: nothing for a
-- caller who does not hold the secret to learn.
CREATE OR REPLACE FUNCTION pixl_report_leaked(secret_sha256 bytea, source text) RETURNS void
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


CREATE OR REPLACE FUNCTION pixl_report_leaked(secret text, source text) RETURNS void
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_check_source(source);
	SELECT @extschema@.pixl_report_leaked(@extschema@.pixl_leaked_secret_hash(secret), source);
$$;

COMMENT ON FUNCTION pixl_report_leaked(bytea, text) IS
	'Revokes the token of a leaked secret (given as its SHA-256) with reason exposed; answers nothing either way';

COMMENT ON FUNCTION pixl_report_leaked(text, text) IS
	'Revokes the token of a leaked secret with reason exposed after checking its format; answers nothing either way';


-- 1.0's columns unchanged (status gains 'exposed' and 'disabled'), new ones
-- at the end; only the stores the caller may see (security_barrier: CREATE
-- OR REPLACE VIEW resets options not given).
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

COMMENT ON VIEW pixl_tokens IS 'Tokens with their computed status; never shows a hash';
