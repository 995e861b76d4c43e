------------------------------------------------------------------------------
-- Token hygiene (state/80_hygiene.sql): a policy per store, defaulted by
-- its plan, enforced when an expiry is set (create, update, rotate), and
-- the inactivity sweep of the usage worker.
--
-- A policy, as the functions below pass it around, is a jsonb object:
--   max_lifetime      interval or null: a token's expiry is at most this
--                     long after its creation or last rotation (a token
--                     must then have an expiry)
--   expiry_required   boolean: a token must have an expiry
--   inactive_after    interval or null: the inactivity rule is off when null
--   inactive_action   disable | revoke | notify (null when the rule is off)
--   inactive_warning  interval: the warning's lead before the action, also
--                     the least a clamp leaves a token (7 days unless set)
--
-- Locking: a change of a store's policy locks the store's row (FOR NO KEY
-- UPDATE, as pixl_set_store_plan) and then the token rows it clamps; a
-- create locks the same store row before it reads the policy, so the two
-- see each other's result.  Updates and rotations lock the token row
-- (pixl_lock_token) before they read the policy, and a clamp waits for
-- that lock and then reads the row again.  The sweep locks each token row
-- it acts on and checks its state again under the lock.
------------------------------------------------------------------------------

-- The effective policy of a plan's row and a store's override (NULL: the
-- store has none): the override's value where it has one, else the plan's.
CREATE OR REPLACE FUNCTION pixl_policy_merge(p @extschema@.pixl_plans, sp @extschema@.pixl_store_policies)
	RETURNS jsonb
	LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object(
		'max_lifetime', coalesce(sp.max_lifetime, p.max_lifetime),
		'expiry_required', coalesce(sp.expiry_required, p.expiry_required, false),
		'inactive_after', coalesce(sp.inactive_after, p.inactive_after),
		'inactive_action', CASE WHEN coalesce(sp.inactive_after, p.inactive_after) IS NOT NULL
								THEN coalesce(sp.inactive_action, p.inactive_action, 'disable') END,
		'inactive_warning', coalesce(sp.inactive_warning, p.inactive_warning, interval '7 days'));
$$;


-- A store's effective policy now (a store not created yet: plan free's).
CREATE OR REPLACE FUNCTION pixl_policy_of(store_id text) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_policy_merge(p, sp)
	  FROM @extschema@.pixl_plans p
	  LEFT JOIN @extschema@.pixl_store_policies sp
		ON sp.store_id OPERATOR(pg_catalog.=) pixl_policy_of.store_id
	 WHERE p.plan OPERATOR(pg_catalog.=) coalesce(
		(SELECT s.plan FROM @extschema@.pixl_stores s
		  WHERE s.store_id OPERATOR(pg_catalog.=) pixl_policy_of.store_id), 'free');
$$;


-- Refuses an expiry the policy does not allow (PX034: none where one is
-- required; PX033: later than base + max_lifetime).  base: the start of the
-- secret's lifetime (now for a new token, the creation or last rotation for
-- an update).  old_expiry: the token's expiry before an update (is_new
-- false); an update that shortens an expiry, or keeps none, is always
-- allowed, so a token a clamp left beyond its lifetime can still be edited.
CREATE OR REPLACE FUNCTION pixl_check_policy_expiry(store_id text, policy jsonb, new_expiry timestamptz,
													base timestamptz, old_expiry timestamptz, is_new boolean)
	RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_max	interval := (policy->>'max_lifetime')::interval;
BEGIN
	IF new_expiry IS NULL AND (is_new OR old_expiry IS NOT NULL)
	   AND ((policy->>'expiry_required')::boolean OR v_max IS NOT NULL) THEN
		RAISE EXCEPTION 'store % requires tokens to expire', @extschema@.pixl_quote(store_id)
			USING ERRCODE = 'PX034',
				  DETAIL = CASE WHEN v_max IS NOT NULL
							   THEN format('Its hygiene policy lets a token live at most %s from its creation or last rotation.', v_max)
							   ELSE 'Its hygiene policy requires an expiry on every token.' END,
				  HINT = CASE WHEN v_max IS NOT NULL
							 THEN format('Pass an expires_at no later than %s.', base + v_max)
							 ELSE 'Pass an expires_at, e.g. now() + interval ''90 days''.' END;
	END IF;
	IF v_max IS NOT NULL AND new_expiry > base + v_max
	   AND (is_new OR old_expiry IS NULL OR new_expiry > old_expiry) THEN
		RAISE EXCEPTION 'expiry % is beyond the maximum token lifetime of store %',
			new_expiry, @extschema@.pixl_quote(store_id)
			USING ERRCODE = 'PX033',
				  DETAIL = format('Its hygiene policy lets a token live at most %s from its creation or last rotation, here until %s.',
								  v_max, base + v_max),
				  HINT = CASE WHEN is_new THEN format('Pass an expires_at no later than %s.', base + v_max)
							 ELSE format('Pass an expires_at no later than %s, or rotate the token (pixl_rotate_token) to start a new lifetime.', base + v_max) END;
	END IF;
END
$$;


-- Clamps the expiry of the store's tokens that are not revoked and not
-- expired (disabled ones included) to the policy's max_lifetime: to the
-- creation or last rotation + max_lifetime, but never sooner than now +
-- inactive_warning (a tightened policy never breaks a token on its next
-- use), and never later than the token's own expiry.  Each clamp is
-- audited ('clamp', old and new expiry).  Returns how many were clamped.
-- Tokens without an expiry under expiry_required alone are left as they are
-- (nothing says how long they should live; pixl_token_hygiene shows them).
CREATE OR REPLACE FUNCTION pixl_hygiene_clamp(store_id text, policy jsonb) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_max	interval := (policy->>'max_lifetime')::interval;
	v_floor	timestamptz := clock_timestamp() + (policy->>'inactive_warning')::interval;
	v_new	timestamptz;
	v_n		integer := 0;
	r		record;
BEGIN
	IF v_max IS NULL THEN
		RETURN 0;
	END IF;
	FOR r IN SELECT t.token_id, t.expires_at, coalesce(t.rotated_at, t.created_at) AS since
			   FROM @extschema@.pixl_token_registry t
			  WHERE t.store_id OPERATOR(pg_catalog.=) pixl_hygiene_clamp.store_id
				AND t.revoked_at IS NULL
				AND (t.expires_at IS NULL OR t.expires_at OPERATOR(pg_catalog.>) clock_timestamp())
			  ORDER BY t.token_id
				FOR NO KEY UPDATE LOOP
		v_new := greatest(r.since + v_max, v_floor);
		CONTINUE WHEN r.expires_at IS NOT NULL AND r.expires_at <= v_new;
		UPDATE @extschema@.pixl_token_registry t SET expires_at = v_new
		 WHERE t.token_id OPERATOR(pg_catalog.=) r.token_id;
		PERFORM @extschema@.pixl_write_audit('clamp', r.token_id, pixl_hygiene_clamp.store_id,
			jsonb_build_object('old_expires_at', r.expires_at, 'new_expires_at', v_new,
							   'max_lifetime', v_max));
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;


-- After a change that may change a store's effective policy (its own, its
-- plan's, or its move to another plan): if the policy differs from old,
-- clamps its tokens and audits one 'policy' row (old and new policy, how
-- many tokens were clamped, and what changed it).  The caller holds the
-- store's row lock.  Returns the number clamped.
CREATE OR REPLACE FUNCTION pixl_hygiene_policy_changed(store_id text, old_policy jsonb, why jsonb)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_new	jsonb := @extschema@.pixl_policy_of(store_id);
	v_n		integer;
BEGIN
	IF v_new = old_policy THEN
		RETURN 0;
	END IF;
	v_n := @extschema@.pixl_hygiene_clamp(store_id, v_new);
	PERFORM @extschema@.pixl_write_audit('policy', NULL, store_id,
		jsonb_build_object('old', old_policy, 'new', v_new, 'clamped', v_n) || why);
	RETURN v_n;
END
$$;


CREATE OR REPLACE FUNCTION pixl_set_store_policy_impl(caller_ticket bigint, store_id text,
													  max_lifetime interval, expiry_required boolean,
													  inactive_after interval, inactive_action text,
													  inactive_warning interval)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_set_store_policy(text, interval, boolean, interval, text, interval)');
	v_store		text := pixl_set_store_policy_impl.store_id;
	v_plan		@extschema@.pixl_plans;
	v_row		@extschema@.pixl_store_policies;
	v_old		jsonb;
	v_new		jsonb;
	v_bounds	jsonb;
	v_rank		jsonb := '{"notify": 1, "disable": 2, "revoke": 3}';
	v_why		text;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(v_store, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(v_store, v_caller);
	IF (max_lifetime IS NOT NULL AND max_lifetime NOT BETWEEN interval '1 day' AND interval '100 years')
	   OR (inactive_after IS NOT NULL AND inactive_after NOT BETWEEN interval '1 day' AND interval '100 years')
	   OR (inactive_warning IS NOT NULL AND inactive_warning NOT BETWEEN interval '0' AND interval '1 year') THEN
		RAISE EXCEPTION 'invalid hygiene policy for store %', @extschema@.pixl_quote(v_store)
			USING ERRCODE = 'PX036',
				  HINT = 'max_lifetime and inactive_after are between 1 day and 100 years, inactive_warning between 0 and 1 year; NULL takes the plan''s value.';
	END IF;
	IF inactive_action IS NOT NULL AND inactive_action NOT IN ('disable', 'revoke', 'notify') THEN
		RAISE EXCEPTION 'invalid inactive action %', @extschema@.pixl_quote(left(inactive_action, 60))
			USING ERRCODE = 'PX036',
				  HINT = 'The action on an inactive token is disable, revoke or notify; NULL takes the plan''s (disable if it has none).';
	END IF;

	INSERT INTO @extschema@.pixl_stores AS s (store_id, plan) VALUES (v_store, 'free')
	ON CONFLICT ON CONSTRAINT pixl_stores_pkey DO NOTHING;
	IF FOUND THEN
		PERFORM @extschema@.pixl_write_audit('plan', NULL, v_store,
			jsonb_build_object('old_plan', NULL, 'new_plan', 'free'));
	END IF;
	SELECT p.* INTO STRICT v_plan
	  FROM @extschema@.pixl_stores s JOIN @extschema@.pixl_plans p ON p.plan = s.plan
	 WHERE s.store_id = v_store
	   FOR NO KEY UPDATE OF s;
	v_old := @extschema@.pixl_policy_of(v_store);

	v_row := ROW(v_store, max_lifetime, expiry_required, inactive_after, inactive_action, inactive_warning,
				 now(), pg_catalog.pg_get_userbyid(@extschema@.pixl_calling_role()));
	v_new := @extschema@.pixl_policy_merge(v_plan, v_row);
	IF (v_new->>'inactive_after')::interval <= (v_new->>'inactive_warning')::interval THEN
		RAISE EXCEPTION 'inactivity warning % is not shorter than the inactive period %',
			v_new->>'inactive_warning', v_new->>'inactive_after'
			USING ERRCODE = 'PX036',
				  HINT = 'The warning comes inactive_warning before the action: make it shorter than inactive_after.';
	END IF;

	-- Store admins may only tighten: the policy must be at least as strict
	-- as the plan's in every rule.  Platform admins may set anything.
	IF @extschema@.pixl_role_denied(NULL, v_caller) IS NOT NULL THEN
		v_bounds := @extschema@.pixl_policy_merge(v_plan, NULL);
		IF v_bounds->>'max_lifetime' IS NOT NULL
		   AND (v_new->>'max_lifetime')::interval > (v_bounds->>'max_lifetime')::interval THEN
			v_why := format('plan "%s" allows a lifetime of at most %s', v_plan.plan, v_bounds->>'max_lifetime');
		ELSIF (v_bounds->>'expiry_required')::boolean AND NOT (v_new->>'expiry_required')::boolean THEN
			v_why := format('plan "%s" requires an expiry', v_plan.plan);
		ELSIF v_bounds->>'inactive_after' IS NOT NULL
			  AND (v_new->>'inactive_after')::interval > (v_bounds->>'inactive_after')::interval THEN
			v_why := format('plan "%s" acts on tokens unused for %s', v_plan.plan, v_bounds->>'inactive_after');
		ELSIF v_bounds->>'inactive_action' IS NOT NULL
			  AND (v_rank->>(v_new->>'inactive_action'))::int < (v_rank->>(v_bounds->>'inactive_action'))::int THEN
			v_why := format('plan "%s" has the inactive action %s (notify < disable < revoke)', v_plan.plan, v_bounds->>'inactive_action');
		END IF;
		IF v_why IS NOT NULL THEN
			RAISE EXCEPTION 'only platform admins may loosen the hygiene policy of store %', @extschema@.pixl_quote(v_store)
				USING ERRCODE = 'PX035',
					  DETAIL = format('The policy asked for is looser than the plan''s: %s.', v_why),
					  HINT = 'A store admin may make the policy stricter than the plan''s, not looser; ask a platform admin.';
		END IF;
	END IF;

	IF num_nulls(max_lifetime, expiry_required, inactive_after, inactive_action, inactive_warning) = 5 THEN
		DELETE FROM @extschema@.pixl_store_policies sp WHERE sp.store_id = v_store;
	ELSE
		INSERT INTO @extschema@.pixl_store_policies AS sp VALUES (v_row.*)
		ON CONFLICT ON CONSTRAINT pixl_store_policies_pkey DO UPDATE
		   SET max_lifetime = EXCLUDED.max_lifetime, expiry_required = EXCLUDED.expiry_required,
			   inactive_after = EXCLUDED.inactive_after, inactive_action = EXCLUDED.inactive_action,
			   inactive_warning = EXCLUDED.inactive_warning, updated_at = EXCLUDED.updated_at,
			   updated_by = EXCLUDED.updated_by;
	END IF;
	RETURN @extschema@.pixl_hygiene_policy_changed(v_store, v_old,
		jsonb_build_object('plan', v_plan.plan,
						   'override', jsonb_strip_nulls(jsonb_build_object(
								'max_lifetime', max_lifetime, 'expiry_required', expiry_required,
								'inactive_after', inactive_after, 'inactive_action', inactive_action,
								'inactive_warning', inactive_warning))));
END
$$;

CREATE OR REPLACE FUNCTION pixl_set_store_policy(store_id text,
												 max_lifetime interval DEFAULT NULL,
												 expiry_required boolean DEFAULT NULL,
												 inactive_after interval DEFAULT NULL,
												 inactive_action text DEFAULT NULL,
												 inactive_warning interval DEFAULT NULL)
	RETURNS integer
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_set_store_policy_impl(@extschema@.pixl_caller_ticket(), $1, $2, $3, $4, $5, $6);
$$;

COMMENT ON FUNCTION pixl_set_store_policy(text, interval, boolean, interval, text, interval) IS
	'Sets a store''s hygiene policy (NULL: the plan''s value; all NULL: the plan''s policy); clamps its tokens'' expiry when tightened; returns how many were clamped';


-- An edit of a plan's policy columns applies to its stores at once: each
-- store whose effective policy changes gets its 'policy' row and its
-- clamps, in the editing transaction.  A restore of a dump, which replaces
-- a seeded plan from a trigger (pixl_plans_restore_seed), is not an edit.
-- SECURITY DEFINER: whoever an operator lets edit pixl_plans is audited
-- without rights on pixl_audit or the registry.
CREATE OR REPLACE FUNCTION pixl_plans_hygiene_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r	record;
BEGIN
	IF pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.>) 1 THEN
		RETURN NULL;
	END IF;
	FOR r IN SELECT s.store_id, @extschema@.pixl_policy_merge(OLD, sp) AS old_policy
			   FROM @extschema@.pixl_stores s
			   LEFT JOIN @extschema@.pixl_store_policies sp ON sp.store_id OPERATOR(pg_catalog.=) s.store_id
			  WHERE s.plan OPERATOR(pg_catalog.=) NEW.plan
			  ORDER BY s.store_id
				FOR NO KEY UPDATE OF s LOOP
		PERFORM @extschema@.pixl_hygiene_policy_changed(r.store_id, r.old_policy,
			pg_catalog.jsonb_build_object('plan', NEW.plan, 'plan_edited', true));
	END LOOP;
	RETURN NULL;
END
$$;

COMMENT ON FUNCTION pixl_plans_hygiene_changed() IS
	'Applies an edit of a plan''s hygiene policy to its stores: clamps and policy audit rows';

CREATE OR REPLACE TRIGGER pixl_plans_hygiene_changed
	AFTER UPDATE OF max_lifetime, expiry_required, inactive_after, inactive_action, inactive_warning
	ON @extschema@.pixl_plans
	FOR EACH ROW EXECUTE FUNCTION @extschema@.pixl_plans_hygiene_changed();


-- The inactivity sweep: for each token that is not revoked, disabled or
-- expired, of a store whose policy has inactive_after, the period of no
-- use starts at the latest of its last use (pixl_token_activity, written
-- by the usage worker), creation, last rotation and last enable.  At
-- inactive_after - inactive_warning into it: one 'inactive_soon' event
-- (due_at: when the action comes, never less than inactive_warning away).
-- At due_at: disable (reason 'inactive', audited 'disable' with that
-- reason), or revoke (audited 'revoke' with reason 'inactive'); 'notify'
-- does nothing more than the warning.  Each step once per period, recorded
-- in pixl_hygiene_sent; a use, rotation or enable starts a new period.
-- Two concurrent sweeps take each step once (the primary key decides).
CREATE OR REPLACE FUNCTION pixl_hygiene_sweep()
	RETURNS TABLE (token_id text, store_id text, action text, due_at timestamptz)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_now	timestamptz := clock_timestamp();
	v_due	timestamptz;
	r		record;
BEGIN
	FOR r IN
		WITH pol AS (
			SELECT s.store_id, @extschema@.pixl_policy_merge(p, sp) AS policy
			  FROM @extschema@.pixl_stores s
			  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
			  LEFT JOIN @extschema@.pixl_store_policies sp ON sp.store_id = s.store_id
		)
		SELECT t.token_id, t.store_id, c.clock_from,
			   (pol.policy->>'inactive_after')::interval AS after,
			   least((pol.policy->>'inactive_warning')::interval,
					 (pol.policy->>'inactive_after')::interval) AS lead,
			   pol.policy->>'inactive_action' AS what,
			   a.last_used_at
		  FROM pol
		  JOIN @extschema@.pixl_token_registry t ON t.store_id = pol.store_id
		  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
		 CROSS JOIN LATERAL (
			SELECT greatest(t.created_at, t.rotated_at, a.last_used_at,
							(SELECT max(e.at) FROM @extschema@.pixl_audit e
							  WHERE e.token_id = t.token_id AND e.action = 'enable')) AS clock_from) c
		 WHERE pol.policy->>'inactive_after' IS NOT NULL
		   AND t.revoked_at IS NULL AND t.disabled_at IS NULL
		   AND (t.expires_at IS NULL OR t.expires_at > v_now)
		   AND c.clock_from + (pol.policy->>'inactive_after')::interval
			   - least((pol.policy->>'inactive_warning')::interval,
					   (pol.policy->>'inactive_after')::interval) <= v_now
		 ORDER BY t.token_id
	LOOP
		-- the warning, once per period
		v_due := greatest(r.clock_from + r.after, v_now + r.lead);
		INSERT INTO @extschema@.pixl_hygiene_sent AS h (token_id, kind, clock_from, due_at)
		VALUES (r.token_id, 'inactive_soon', r.clock_from, v_due)
		ON CONFLICT DO NOTHING;
		IF FOUND THEN
			PERFORM @extschema@.pixl_write_audit('inactive_soon', r.token_id, r.store_id,
				jsonb_build_object('due_at', v_due, 'action', r.what,
								   'inactive_since', r.clock_from, 'last_used_at', r.last_used_at,
								   'inactive_after', r.after));
			token_id := r.token_id;
			store_id := r.store_id;
			action := 'inactive_soon';
			due_at := v_due;
			RETURN NEXT;
		ELSE
			SELECT h.due_at INTO v_due FROM @extschema@.pixl_hygiene_sent h
			 WHERE h.token_id = r.token_id AND h.kind = 'inactive_soon' AND h.clock_from = r.clock_from;
		END IF;
		CONTINUE WHEN r.what = 'notify' OR v_due > v_now;

		-- the action, once per period, on the row as it is now
		PERFORM 1 FROM @extschema@.pixl_token_registry t
		  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
		 WHERE t.token_id = r.token_id AND t.revoked_at IS NULL AND t.disabled_at IS NULL
		   AND (t.expires_at IS NULL OR t.expires_at > v_now)
		   AND greatest(t.created_at, t.rotated_at, a.last_used_at,
						(SELECT max(e.at) FROM @extschema@.pixl_audit e
						  WHERE e.token_id = t.token_id AND e.action = 'enable')) <= r.clock_from
		   FOR NO KEY UPDATE OF t;
		CONTINUE WHEN NOT FOUND;
		INSERT INTO @extschema@.pixl_hygiene_sent AS h (token_id, kind, clock_from, due_at)
		VALUES (r.token_id, 'inactive', r.clock_from, v_due)
		ON CONFLICT DO NOTHING;
		CONTINUE WHEN NOT FOUND;
		IF r.what = 'revoke' THEN
			UPDATE @extschema@.pixl_token_registry t
			   SET revoked_at = now(), revoked_reason = 'revoked'
			 WHERE t.token_id = r.token_id;
			PERFORM @extschema@.pixl_write_audit('revoke', r.token_id, r.store_id,
				jsonb_build_object('reason', 'inactive', 'inactive_since', r.clock_from,
								   'inactive_after', r.after));
		ELSE
			UPDATE @extschema@.pixl_token_registry t
			   SET disabled_at = now(), disabled_reason = 'inactive'
			 WHERE t.token_id = r.token_id;
			PERFORM @extschema@.pixl_write_audit('disable', r.token_id, r.store_id,
				jsonb_build_object('reason', 'inactive', 'inactive_since', r.clock_from,
								   'inactive_after', r.after));
		END IF;
		token_id := r.token_id;
		store_id := r.store_id;
		action := CASE r.what WHEN 'revoke' THEN 'revoke' ELSE 'disable' END;
		due_at := v_due;
		RETURN NEXT;
	END LOOP;
END
$$;

COMMENT ON FUNCTION pixl_hygiene_sweep() IS
	'Warns of, then disables or revokes, tokens unused for their store''s inactive_after, each step once; returns the steps taken';


-- Each store's effective hygiene policy, for the stores the reader sees.
CREATE OR REPLACE VIEW pixl_store_hygiene_policies WITH (security_barrier = true) AS
SELECT s.store_id,
	   s.plan,
	   (e.policy->>'max_lifetime')::interval AS max_lifetime,
	   (e.policy->>'expiry_required')::boolean AS expiry_required,
	   (e.policy->>'inactive_after')::interval AS inactive_after,
	   e.policy->>'inactive_action' AS inactive_action,
	   (e.policy->>'inactive_warning')::interval AS inactive_warning,
	   sp.store_id IS NOT NULL AS store_override
  FROM @extschema@.pixl_stores s
  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
  LEFT JOIN @extschema@.pixl_store_policies sp ON sp.store_id = s.store_id
 CROSS JOIN LATERAL (SELECT @extschema@.pixl_policy_merge(p, sp) AS policy) e
 WHERE @extschema@.pixl_store_visible(s.store_id);

COMMENT ON VIEW pixl_store_hygiene_policies IS 'Each store''s effective hygiene policy (its own, else its plan''s)';


-- Hygiene figures per token that is not revoked and not expired (disabled
-- ones included), for the stores the reader sees.  Days are whole days,
-- rounded down.  New columns go at the end.
CREATE OR REPLACE VIEW pixl_token_hygiene WITH (security_barrier = true) AS
SELECT t.token_id,
	   t.store_id,
	   t.name,
	   CASE WHEN t.disabled_at IS NOT NULL THEN 'disabled' ELSE 'active' END AS status,
	   t.disabled_reason,
	   a.last_used_at,
	   floor(extract(epoch FROM clock_timestamp() - a.last_used_at) / 86400)::int AS days_since_last_use,
	   coalesce(t.rotated_at, t.created_at) AS secret_since,
	   floor(extract(epoch FROM clock_timestamp() - coalesce(t.rotated_at, t.created_at)) / 86400)::int AS secret_age_days,
	   t.expires_at,
	   t.expires_at IS NULL AS no_expiry,
	   coalesce(t.expires_at <= clock_timestamp() + coalesce(nullif(current_setting('pixltoken.expiring_soon', true), '')::interval, interval '30 days'), false) AS expiring_soon,
	   CASE WHEN t.previous_valid_until > clock_timestamp() THEN t.previous_valid_until END AS previous_secret_valid_until,
	   coalesce(t.previous_valid_until > clock_timestamp() AND a.previous_secret_last_used_at IS NOT NULL, false)
		   AS previous_secret_in_use,
	   a.previous_secret_last_used_at,
	   ARRAY(SELECT b FROM (VALUES
				(1, 'expiry_required', t.expires_at IS NULL
					AND ((e.policy->>'expiry_required')::boolean OR e.policy->>'max_lifetime' IS NOT NULL)),
				(2, 'max_lifetime', t.expires_at > coalesce(t.rotated_at, t.created_at) + (e.policy->>'max_lifetime')::interval),
				(3, 'inactive', c.clock_from + (e.policy->>'inactive_after')::interval <= clock_timestamp()))
				AS x(n, b, breached)
			  WHERE x.breached ORDER BY x.n) AS policy_breaches,
	   e.policy->>'inactive_action' AS inactive_action,
	   CASE WHEN t.disabled_at IS NULL AND e.policy->>'inactive_after' IS NOT NULL
			THEN coalesce(h.due_at, c.clock_from + (e.policy->>'inactive_after')::interval) END AS inactive_action_at,
	   CASE WHEN t.disabled_at IS NULL AND e.policy->>'inactive_after' IS NOT NULL
			THEN greatest(floor(extract(epoch FROM coalesce(h.due_at, c.clock_from + (e.policy->>'inactive_after')::interval)
										- clock_timestamp()) / 86400), 0)::int END AS days_until_inactive_action,
	   -- the scopes of the last 90 days (pixl_token_scope_use)
	   su.exercised AS scopes_exercised,
	   su.unused AS scopes_unused,
	   su.narrower_scopes
  FROM @extschema@.pixl_token_registry t
  JOIN @extschema@.pixl_stores s ON s.store_id = t.store_id
  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
  LEFT JOIN @extschema@.pixl_store_policies sp ON sp.store_id = t.store_id
  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
 CROSS JOIN LATERAL (SELECT @extschema@.pixl_policy_merge(p, sp) AS policy) e
 CROSS JOIN LATERAL (
	SELECT greatest(t.created_at, t.rotated_at, a.last_used_at,
					(SELECT max(ev.at) FROM @extschema@.pixl_audit ev
					  WHERE ev.token_id = t.token_id AND ev.action = 'enable')) AS clock_from) c
  LEFT JOIN @extschema@.pixl_hygiene_sent h
	ON h.token_id = t.token_id AND h.kind = 'inactive_soon' AND h.clock_from = c.clock_from
  LEFT JOIN @extschema@.pixl_scope_use_rows(NULL, 90, NULL) su ON su.token_id = t.token_id
 WHERE t.revoked_at IS NULL
   AND (t.expires_at IS NULL OR t.expires_at > clock_timestamp())
   AND @extschema@.pixl_store_visible(t.store_id);

COMMENT ON VIEW pixl_token_hygiene IS
	'Per token not revoked or expired: days since last use, secret age, expiry, old secret still in use, policy breaches, inactivity action, scopes exercised and unused in the last 90 days and the narrower set';
