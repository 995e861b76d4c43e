------------------------------------------------------------------------------
-- Store-scoped administration
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

CREATE OR REPLACE FUNCTION pixl_calling_role() RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_calling_role'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION pixl_calling_role() IS
	'The role whose stores the session manages: the login role or the one chosen with SET ROLE, never a SECURITY DEFINER owner';


-- Caller tickets: made by a wrapper as its caller (SECURITY INVOKER),
-- redeemed once by the implementation, which gets the role back.
CREATE OR REPLACE FUNCTION pixl_caller_ticket() RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_caller_ticket'
	LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pixl_caller_ticket() IS
	'A one-use ticket that records current_user, for the implementation behind a pixltoken function';

CREATE OR REPLACE FUNCTION pixl_redeem_caller_ticket(ticket bigint, entry regprocedure) RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_redeem_caller_ticket'
	LANGUAGE C VOLATILE;


-- The first of the calling role and caller (NULL: current_user) that may
-- not manage the store (NULL store: that is not a platform admin), or NULL.
CREATE OR REPLACE FUNCTION pixl_role_denied(store_id text, caller oid) RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_role_denied'
	LANGUAGE C STABLE;


-- RAISE for SQL code whose statement may hold a secret: the statement is
-- not logged with the error, and secret shapes in the texts are masked.
CREATE OR REPLACE FUNCTION pixl_raise_hidden(sqlstate text, message text,
								  detail text DEFAULT NULL, hint text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_raise_hidden'
	LANGUAGE C VOLATILE PARALLEL SAFE;


CREATE OR REPLACE FUNCTION pixl_looks_like_secret(value text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_looks_like_secret'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION pixl_looks_like_secret(text) IS
	'True when the text holds something shaped like a token secret (sk_live_/sk_test_ and base62)';


-- C, SECURITY INVOKER: they read current_user and the calling role
-- themselves, and pixl_store_admins without the reader's privileges.
CREATE OR REPLACE FUNCTION pixl_is_platform_admin() RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_is_platform_admin'
	LANGUAGE C STABLE;

COMMENT ON FUNCTION pixl_is_platform_admin() IS
	'True when the calling role and current_user are superusers or have the privileges of pixl_platform_admin';


-- Views and policies call it as their reader.
CREATE OR REPLACE FUNCTION pixl_store_visible(store_id text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_store_visible'
	LANGUAGE C STABLE;

COMMENT ON FUNCTION pixl_store_visible(text) IS
	'True when the calling role (pixl_calling_role) and current_user are platform admins or administer the store';


-- The "not your store" error, PX040.  Its message names the value the
-- caller passed and the role that may not manage it, never whether the
-- store or token exists.
CREATE OR REPLACE FUNCTION pixl_raise_not_your_store(what text, value text, denied oid) RETURNS void
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
CREATE OR REPLACE FUNCTION pixl_borrow_detail(denied oid) RETURNS text
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
CREATE OR REPLACE FUNCTION pixl_assert_store_admin(store_id text, caller oid) RETURNS void
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


CREATE OR REPLACE FUNCTION pixl_assert_platform_admin(action text, caller oid) RETURNS void
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
CREATE OR REPLACE FUNCTION pixl_grant_store_impl(caller_ticket bigint, role_name text, store_id text) RETURNS boolean
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

CREATE OR REPLACE FUNCTION pixl_grant_store(role_name text, store_id text) RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_grant_store_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_grant_store(text, text) IS
	'Lets a role (and the roles that have its privileges) administer a store; platform admins only; false if it already did';


CREATE OR REPLACE FUNCTION pixl_revoke_store_impl(caller_ticket bigint, role_name text, store_id text) RETURNS boolean
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

CREATE OR REPLACE FUNCTION pixl_revoke_store(role_name text, store_id text) RETURNS boolean
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_revoke_store_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_revoke_store(text, text) IS
	'Ends a role''s administration of a store; platform admins only; false if it had none';

DROP POLICY IF EXISTS pixl_store_admins_visible ON pixl_store_admins;
CREATE POLICY pixl_store_admins_visible ON pixl_store_admins
	FOR SELECT USING (@extschema@.pixl_store_visible(store_id));

DROP POLICY IF EXISTS pixl_audit_visible ON pixl_audit;
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
CREATE OR REPLACE FUNCTION pixl_token_store_checked(token_id text, hint text, caller oid) RETURNS text
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
CREATE OR REPLACE FUNCTION pixl_lock_token(token_id text, caller oid)
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
CREATE OR REPLACE FUNCTION pixl_check_usage_token(token_id text, caller oid) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_token_store_checked(token_id,
		'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.', caller);
END
$$;


-- The analytics functions, as implementations with a caller ticket behind
-- the public wrappers (pixl_usage_summary, _timeline, _endpoints).  They
-- read the rollups through pixl_usage_rows, with latency percentiles from
-- the rows' histograms: NULL where a row of the period has responses but
-- no histogram, as rows written before 1.1 do.
CREATE OR REPLACE FUNCTION pixl_usage_summary_impl(caller_ticket bigint, token_id text, period text)
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


CREATE OR REPLACE FUNCTION pixl_usage_timeline_impl(caller_ticket bigint, token_id text, period text)
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


CREATE OR REPLACE FUNCTION pixl_usage_endpoints_impl(caller_ticket bigint, token_id text, period text)
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


-- SQL, not PL/pgSQL: the argument status and the result column status
-- share their name (the public contract).
CREATE OR REPLACE FUNCTION pixl_recent_calls_impl(caller_ticket bigint, token_id text, status int, lim int)
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


CREATE OR REPLACE FUNCTION pixl_set_store_plan_impl(caller_ticket bigint, store_id text, plan text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_set_store_plan(text, text)');
	v_old	text;
	v_policy jsonb;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(store_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(store_id, v_caller);
	-- A plan is what the store pays for (rate caps, token cap, period
	-- allowance): a store admin granted this function still may not choose
	-- it, or it would raise its own allowance.  Checked after the store so
	-- that another store's admin gets the same PX040 as before.
	PERFORM @extschema@.pixl_assert_platform_admin('move a store to another plan', v_caller);
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
		v_policy := @extschema@.pixl_policy_of(store_id);
		UPDATE @extschema@.pixl_stores s SET plan = pixl_set_store_plan_impl.plan, updated_at = now()
		 WHERE s.store_id = pixl_set_store_plan_impl.store_id;
	END IF;
	PERFORM @extschema@.pixl_write_audit('plan', NULL, store_id,
		jsonb_build_object('old_plan', v_old, 'new_plan', plan));
	-- the new plan's hygiene policy applies at once (code/85_hygiene.sql)
	PERFORM @extschema@.pixl_hygiene_policy_changed(store_id,
		coalesce(v_policy, @extschema@.pixl_policy_merge(
			(SELECT p FROM @extschema@.pixl_plans p WHERE p.plan = 'free'), NULL)),
		jsonb_build_object('old_plan', v_old, 'new_plan', plan));
END
$$;
