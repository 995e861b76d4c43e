------------------------------------------------------------------------------
-- Plan quotas: what a store admin sees of its allowance, the allowance
-- events, and the audit of a plan's allowance.  The counters themselves
-- are in shared memory (src/verify/quota.c: pixl_quota_used); the rollups'
-- charged column holds what was charged, as of the last fold.
------------------------------------------------------------------------------

-- The end of the allowance period that starts at period_start (00:00 UTC
-- on a day between 1 and 28): the same day of the next month, in UTC
-- whatever the session's time zone.
CREATE OR REPLACE FUNCTION pixl_quota_period_end(period_start timestamptz) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT ((period_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
$$;


-- The allowance this node enforces: with pixltoken.rate_limit_share below 1
-- (a primary and standbys sharing the limits) its share, rounded down as
-- the request path does, by the same C function (src/common/node.c);
-- NULL stays NULL.
CREATE OR REPLACE FUNCTION pixl_quota_node_share(allowance bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pixl_quota_node_share'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;


-- An edit of a plan's allowance (period_quota, or quota_counts: what is
-- charged) is audited: action 'plan_quota', no store (platform admins see
-- it), the plan, old and new values and how many stores are on the plan.
-- It takes effect at once: the row triggers pixl_plans_invalidate evict
-- the plan's tokens from every backend's cache at commit.  A restore of a
-- dump, which replaces a seeded plan from a trigger
-- (pixl_plans_restore_seed), is not an edit.  SECURITY DEFINER: whoever
-- an operator lets edit pixl_plans is audited without rights on pixl_audit.
CREATE OR REPLACE FUNCTION pixl_plans_audit_quota() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.>) 1 THEN
		RETURN NULL;
	END IF;
	PERFORM @extschema@.pixl_write_audit('plan_quota', NULL, NULL,
		pg_catalog.jsonb_build_object(
			'plan', NEW.plan,
			'old_period_quota', OLD.period_quota, 'new_period_quota', NEW.period_quota,
			'old_quota_counts', OLD.quota_counts, 'new_quota_counts', NEW.quota_counts,
			'stores', (SELECT pg_catalog.count(*) FROM @extschema@.pixl_stores s
						WHERE s.plan OPERATOR(pg_catalog.=) NEW.plan)));
	RETURN NULL;
END
$$;

COMMENT ON FUNCTION pixl_plans_audit_quota() IS
	'Audits an edit of a plan''s allowance (period_quota, quota_counts) as action plan_quota';

CREATE OR REPLACE TRIGGER pixl_plans_audit_quota
	AFTER UPDATE OF period_quota, quota_counts ON @extschema@.pixl_plans
	FOR EACH ROW
	WHEN (OLD.period_quota IS DISTINCT FROM NEW.period_quota
		  OR OLD.quota_counts IS DISTINCT FROM NEW.quota_counts)
	EXECUTE FUNCTION @extschema@.pixl_plans_audit_quota();


-- The allowance events that are due and not sent yet; returns them.  A
-- store whose plan has an allowance and whose counter of shared memory
-- (pixl_quota_used, exact on this node) for the current period has reached
-- 80 % of the allowance this node enforces (pixl_quota_node_share) gets
-- one 'quota_warning', at 100 % one 'quota_exhausted' (a store
-- that jumps past both gets both, in that order), once per period: the
-- primary key of pixl_quota_notices decides, so a restart, a crash (after
-- which the counter is rebuilt from the rollups, never above what was
-- counted) or two concurrent calls send none twice.  Rows of periods that
-- ended more than a year ago are removed.
CREATE OR REPLACE FUNCTION pixl_quota_notices()
	RETURNS TABLE (store_id text, action text, period_start timestamptz,
				   used bigint, allowance bigint)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r			record;
BEGIN
	-- the counter counts in the current period unless it was last charged
	-- in an older one (it then reads as 0: src/verify/quota.c); after a
	-- billing day moved back it names a later start, and its count carries
	FOR r IN
		SELECT s.store_id, a.allowance, a.period_start, q.used, t.threshold
		  FROM @extschema@.pixl_stores s
		  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
		 CROSS JOIN LATERAL (
			SELECT @extschema@.pixl_quota_node_share(p.period_quota) AS allowance,
				   @extschema@.pixl_quota_period_start(now(), s.billing_day) AS period_start) a
		 CROSS JOIN LATERAL @extschema@.pixl_quota_used(s.store_id) q
		 CROSS JOIN (VALUES (80::smallint), (100::smallint)) t(threshold)
		 WHERE p.period_quota IS NOT NULL AND a.allowance > 0
		   AND q.period_start >= a.period_start
		   AND q.used * 100 >= a.allowance * t.threshold
		 ORDER BY s.store_id, t.threshold
	LOOP
		INSERT INTO @extschema@.pixl_quota_notices AS n (store_id, period_start, threshold, used, allowance)
		VALUES (r.store_id, r.period_start, r.threshold, r.used, r.allowance)
		ON CONFLICT DO NOTHING;
		CONTINUE WHEN NOT FOUND;
		store_id := r.store_id;
		action := CASE r.threshold WHEN 80 THEN 'quota_warning' ELSE 'quota_exhausted' END;
		period_start := r.period_start;
		used := r.used;
		allowance := r.allowance;
		PERFORM @extschema@.pixl_write_audit(action, NULL, r.store_id,
			jsonb_build_object('period_start', r.period_start,
							   'period_end', @extschema@.pixl_quota_period_end(r.period_start),
							   'percent', r.threshold, 'used', r.used, 'allowance', r.allowance));
		RETURN NEXT;
	END LOOP;
	DELETE FROM @extschema@.pixl_quota_notices n
	 WHERE n.period_start < now() - interval '13 months';
END
$$;

COMMENT ON FUNCTION pixl_quota_notices() IS
	'Records due quota_warning (80 %) / quota_exhausted (100 %) events in pixl_audit (with a NOTIFY pixltoken wake-up), each once per store and period; returns them';


-- Where a store stands: one row with token_id NULL for the store, then
-- one per token of the store that is not revoked or was charged in the
-- period.  allowance is what this node enforces (the plan's, or with
-- pixltoken.rate_limit_share below 1 this node's share of it; a token's
-- own allowance likewise, NULL when it has none and draws on the store's
-- only); remaining is never below 0, NULL without an allowance.  used: the
-- store's from the counter of shared memory, exact on this node (exact
-- true); a token's from the rollups' charged column, as of the last fold
-- (exact false).  A store without an allowance is charged nothing: its
-- rows show the cost of its calls (the rollups' cost column, exact false).
CREATE OR REPLACE FUNCTION pixl_store_quota_impl(caller_ticket bigint, store_id text)
	RETURNS TABLE (token_id text, period_start timestamptz, period_end timestamptz,
				   allowance bigint, used bigint, remaining bigint, exact boolean)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_store_quota(text)');
	v_allowance	bigint;
	v_start		timestamptz;
	v_end		timestamptz;
	v_used		bigint;
BEGIN
	PERFORM @extschema@.pixl_assert_store_admin(store_id, v_caller);
	SELECT @extschema@.pixl_quota_node_share(p.period_quota),
		   @extschema@.pixl_quota_period_start(now(), s.billing_day)
	  INTO v_allowance, v_start
	  FROM @extschema@.pixl_stores s
	  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
	 WHERE s.store_id = pixl_store_quota_impl.store_id;
	IF NOT FOUND THEN
		PERFORM @extschema@.pixl_raise_hidden('PX056',
			format('unknown store %s', @extschema@.pixl_quote(left(store_id, 200))), NULL,
			'A store exists once a platform admin set its plan or a token was created in it.');
	END IF;
	v_end := @extschema@.pixl_quota_period_end(v_start);

	IF v_allowance IS NOT NULL THEN
		-- a counter last charged in an older period reads as 0
		SELECT coalesce(sum(q.used), 0)::bigint INTO v_used
		  FROM @extschema@.pixl_quota_used(store_id) q
		 WHERE q.period_start >= v_start;
	ELSE
		SELECT coalesce(sum(r.cost), 0)::bigint INTO v_used
		  FROM @extschema@.pixl_token_registry t
		  JOIN @extschema@.pixl_usage_rollups r ON r.token_id = t.token_id
		 WHERE t.store_id = pixl_store_quota_impl.store_id AND r.bucket >= v_start;
	END IF;

	token_id := NULL;
	period_start := v_start;
	period_end := v_end;
	allowance := v_allowance;
	used := v_used;
	remaining := CASE WHEN v_allowance IS NOT NULL THEN greatest(v_allowance - v_used, 0) END;
	exact := v_allowance IS NOT NULL;
	RETURN NEXT;

	RETURN QUERY
	SELECT t.token_id, v_start, v_end, @extschema@.pixl_quota_node_share(t.period_quota),
		   u.used, CASE WHEN t.period_quota IS NOT NULL
						THEN greatest(@extschema@.pixl_quota_node_share(t.period_quota) - u.used, 0) END,
		   false
	  FROM @extschema@.pixl_token_registry t
	 CROSS JOIN LATERAL (
		SELECT coalesce(sum(r.charged), 0)::bigint AS charged, coalesce(sum(r.cost), 0)::bigint AS cost
		  FROM @extschema@.pixl_usage_rollups r
		 WHERE r.token_id = t.token_id AND r.bucket >= v_start) c
	 CROSS JOIN LATERAL (SELECT CASE WHEN v_allowance IS NULL AND t.period_quota IS NULL THEN c.cost
									 ELSE c.charged END AS used) u
	 WHERE t.store_id = pixl_store_quota_impl.store_id
	   AND (t.revoked_at IS NULL OR c.charged > 0 OR c.cost > 0)
	 ORDER BY t.token_id;
END
$$;

CREATE OR REPLACE FUNCTION pixl_store_quota(store_id text)
	RETURNS TABLE (token_id text, period_start timestamptz, period_end timestamptz,
				   allowance bigint, used bigint, remaining bigint, exact boolean)
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_store_quota_impl(@extschema@.pixl_caller_ticket(), $1);
$$;

COMMENT ON FUNCTION pixl_store_quota(text) IS
	'A store''s allowance for the current period: the store (token_id NULL, exact) and each token (from the rollups, as of the last fold)';


-- Burn-down of the current period per store with an allowance and UTC day
-- (the days so far): what was charged that day, used up to its end and
-- remaining, from the rollups (as of the last fold), and the even pace
-- (the allowance spread evenly over the period, at the day's end) to draw
-- against.  Only the stores the caller may see; a security barrier like
-- the usage views (70_dashboards.sql).
CREATE OR REPLACE VIEW pixl_quota_burndown WITH (security_barrier) AS
SELECT b.store_id, b.plan, b.period_start, b.period_end, b.allowance, b.day,
	   coalesce(d.charged, 0)::bigint AS charged,
	   (sum(coalesce(d.charged, 0)) OVER w)::bigint AS used,
	   greatest(b.allowance - sum(coalesce(d.charged, 0)) OVER w, 0)::bigint AS remaining,
	   round(b.allowance * least(extract(epoch FROM b.day + interval '1 day' - b.period_start)
								 / extract(epoch FROM b.period_end - b.period_start), 1))::bigint AS even_pace
  FROM (SELECT s.store_id, s.plan, p.period_quota AS allowance, per.period_start,
			   @extschema@.pixl_quota_period_end(per.period_start) AS period_end,
			   g.day AT TIME ZONE 'UTC' AS day
		  FROM @extschema@.pixl_stores s
		  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
		 CROSS JOIN LATERAL (SELECT @extschema@.pixl_quota_period_start(now(), s.billing_day) AS period_start) per
		 CROSS JOIN LATERAL generate_series(per.period_start AT TIME ZONE 'UTC',
											now() AT TIME ZONE 'UTC', interval '1 day') g(day)
		 WHERE p.period_quota IS NOT NULL) b
  LEFT JOIN (SELECT t.store_id, date_trunc('day', r.bucket, 'UTC') AS day, sum(r.charged) AS charged
			   FROM @extschema@.pixl_usage_rollups r
			   JOIN @extschema@.pixl_token_registry t ON t.token_id = r.token_id
			  WHERE r.bucket >= now() - interval '32 days'
			  GROUP BY t.store_id, date_trunc('day', r.bucket, 'UTC')) d
	ON d.store_id = b.store_id AND d.day = b.day
 WHERE @extschema@.pixl_store_visible(b.store_id)
WINDOW w AS (PARTITION BY b.store_id ORDER BY b.day);

COMMENT ON VIEW pixl_quota_burndown IS
	'Allowance burn-down of the current period per store and UTC day (from the rollups), of the stores the caller may see';
