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
