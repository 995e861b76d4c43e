------------------------------------------------------------------------------
-- Lifecycle reminders (state/50_lifecycle.sql): expiry and rotation
-- reminders written to pixl_audit with a NOTIFY, once per token and date.
------------------------------------------------------------------------------

-- A GUC in minutes (as current_setting shows it, e.g. '7d') as an interval.
CREATE OR REPLACE FUNCTION pixl_setting_interval(name text) RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT current_setting(name)::interval;
$$;


-- Sends the reminders that are due and not sent yet; returns them.  Tokens
-- that are revoked, disabled or already expired get none.  Two concurrent
-- calls send each reminder once (the primary key decides).
CREATE OR REPLACE FUNCTION pixl_lifecycle_reminders()
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
