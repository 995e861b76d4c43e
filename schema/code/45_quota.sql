------------------------------------------------------------------------------
-- Plan quotas (src/verify/quota.c): a period allowance per store, shared by
-- its tokens, checked with the minute window on the request path; the
-- period's arithmetic, shared-memory readers, and who may set what.
------------------------------------------------------------------------------

-- The start of the allowance period holding ts: 00:00 UTC on billing_day
-- (NULL: 1) of that month or the one before.  The same C function the
-- request path uses, so analytics and the limiter agree on every boundary.
CREATE OR REPLACE FUNCTION pixl_quota_period_start(ts timestamptz, billing_day smallint DEFAULT NULL)
	RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'pixl_quota_period_start'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION pixl_quota_period_start(timestamptz, smallint) IS
	'Start of the allowance period holding a moment: 00:00 UTC on the billing day (NULL: the 1st) of that month or the one before';

-- This node's counter of a store's allowance, from shared memory (no row
-- when the store has none yet).  Internal: owner only; pixl_store_quota
-- reads it for store admins.
CREATE OR REPLACE FUNCTION pixl_quota_used(store_id text)
	RETURNS TABLE (period_start timestamptz, used bigint)
	AS 'MODULE_PATHNAME', 'pixl_quota_used'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION pixl_quota_used(text) IS
	'This node''s shared-memory count of a store''s allowance in its current period (internal)';

-- Raises a counter (the store's, or with token_id that token's own) to at
-- least used for the period starting at period_start; never lowers it.
-- The usage worker calls it at start and after a crash restart, from the
-- rollups.  Internal: owner only.
CREATE OR REPLACE FUNCTION pixl_quota_seed(store_id text, period_start timestamptz, used bigint,
										   token_id text DEFAULT NULL)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_quota_seed'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION pixl_quota_seed(text, timestamptz, bigint, text) IS
	'Raises this node''s counter of a store''s (or a token''s) allowance for a period to at least a value; returns the counter (internal)';

-- The quota counters' table: size and fail-closed rejections.
CREATE OR REPLACE FUNCTION pixl_quota_stats(OUT counters bigint,
											OUT max_quota_counters int,
											OUT table_full_rejections bigint)
	AS 'MODULE_PATHNAME', 'pixl_quota_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION pixl_quota_stats() IS
	'Allowance counters in shared memory, their capacity, and requests refused because the table was full';


-- A token's own allowance per period (NULL: none, the store's alone).  It
-- can only be at or below the plan's allowance: a store admin never gets
-- more than the plan sells (plans are platform-admin data).  Audited.
CREATE OR REPLACE FUNCTION pixl_set_token_quota_impl(caller_ticket bigint, token_id text, period_quota bigint)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_set_token_quota(text, bigint)');
	r			@extschema@.pixl_token_registry;
	v_plan		text;
	v_max		bigint;
BEGIN
	r := @extschema@.pixl_lock_token(pixl_set_token_quota_impl.token_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(r.store_id, v_caller);
	IF period_quota IS NOT NULL AND period_quota NOT BETWEEN 1 AND 100000000000000 THEN
		PERFORM @extschema@.pixl_raise_hidden('PX055',
			format('allowance %s is out of range', period_quota), NULL,
			'An allowance is between 1 and 100000000000000 calls per period; NULL removes the token''s own.');
	END IF;
	-- the store's row first (FOR SHARE): a plan change waits for us
	SELECT s.plan INTO v_plan FROM @extschema@.pixl_stores s
	 WHERE s.store_id OPERATOR(pg_catalog.=) r.store_id FOR SHARE;
	SELECT p.period_quota INTO v_max FROM @extschema@.pixl_plans p
	 WHERE p.plan OPERATOR(pg_catalog.=) v_plan FOR SHARE;
	IF period_quota IS NOT NULL AND v_max IS NOT NULL AND period_quota > v_max THEN
		PERFORM @extschema@.pixl_raise_hidden('PX054',
			format('allowance %s exceeds the allowance of plan "%s"', period_quota, v_plan),
			format('The store is on plan "%s", whose allowance is %s calls per period, shared by all its tokens.', v_plan, v_max),
			format('Use an allowance between 1 and %s; only a platform admin can move the store to a larger plan.', v_max));
	END IF;
	IF period_quota IS NOT DISTINCT FROM r.period_quota THEN
		RETURN;					-- nothing changes, nothing to audit
	END IF;
	UPDATE @extschema@.pixl_token_registry t SET period_quota = pixl_set_token_quota_impl.period_quota
	 WHERE t.token_id OPERATOR(pg_catalog.=) r.token_id;
	PERFORM @extschema@.pixl_write_audit('update', r.token_id, r.store_id,
		jsonb_build_object('period_quota', jsonb_build_object('old', r.period_quota, 'new', period_quota)));
END
$$;

CREATE OR REPLACE FUNCTION pixl_set_token_quota(token_id text, period_quota bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_set_token_quota_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;

COMMENT ON FUNCTION pixl_set_token_quota(text, bigint) IS
	'Sets a token''s own allowance per period, at most the plan''s (NULL: none); takes effect at once';


-- The day of the month a store's period starts (NULL: the calendar month in
-- UTC).  Billing data, like plans: platform admins only, since moving the
-- day moves the period's start and could hand a store a fresh allowance.
CREATE OR REPLACE FUNCTION pixl_set_store_billing_day_impl(caller_ticket bigint, store_id text, billing_day int)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_set_store_billing_day(text, int)');
	v_old		smallint;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(store_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(store_id, v_caller);
	PERFORM @extschema@.pixl_assert_platform_admin('set a store''s billing day', v_caller);
	IF billing_day IS NOT NULL AND billing_day NOT BETWEEN 1 AND 28 THEN
		PERFORM @extschema@.pixl_raise_hidden('PX055',
			format('billing day %s is out of range', billing_day), NULL,
			'A billing day is between 1 and 28 (every month has it); NULL is the calendar month.');
	END IF;
	SELECT s.billing_day INTO v_old FROM @extschema@.pixl_stores s
	 WHERE s.store_id OPERATOR(pg_catalog.=) pixl_set_store_billing_day_impl.store_id
	   FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		PERFORM @extschema@.pixl_raise_hidden('PX040',
			format('store %s does not exist', @extschema@.pixl_quote(store_id)), NULL,
			'Create it with pixl_set_store_plan() first.');
	END IF;
	IF v_old IS NOT DISTINCT FROM billing_day THEN
		RETURN;
	END IF;
	UPDATE @extschema@.pixl_stores s SET billing_day = pixl_set_store_billing_day_impl.billing_day, updated_at = now()
	 WHERE s.store_id OPERATOR(pg_catalog.=) pixl_set_store_billing_day_impl.store_id;
	PERFORM @extschema@.pixl_write_audit('plan', NULL, store_id,
		jsonb_build_object('billing_day', jsonb_build_object('old', v_old, 'new', billing_day)));
END
$$;

CREATE OR REPLACE FUNCTION pixl_set_store_billing_day(store_id text, billing_day int) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_set_store_billing_day_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;

COMMENT ON FUNCTION pixl_set_store_billing_day(text, int) IS
	'Anchors a store''s allowance period to a day of the month (1-28, 00:00 UTC; NULL: the calendar month); platform admins only';


REVOKE ALL ON FUNCTION pixl_quota_used(text), pixl_quota_seed(text, timestamptz, bigint, text), pixl_quota_stats(),
	pixl_set_token_quota_impl(bigint, text, bigint), pixl_set_store_billing_day_impl(bigint, text, int),
	pixl_set_token_quota(text, bigint), pixl_set_store_billing_day(text, int) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_set_token_quota_impl(bigint, text, bigint),
	pixl_set_store_billing_day_impl(bigint, text, int) TO PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_set_store_billing_day(text, int) TO pixl_platform_admin;

REVOKE ALL ON FUNCTION pixl_verify_token(text, text, text, text, text, inet, int),
	pixl_verify_request(text, text, text, text, text, inet, int),
	pixl_verify_token_http(text, text, text, text, text, inet, int) FROM PUBLIC;
