------------------------------------------------------------------------------
-- Credentials over plain HTTP (draft-ietf-httpapi-privacy): a store's
-- choice between revoking and notifying, and the usage worker's way to
-- make an exposure durable (src/usage/exposure.c, src/verify/verify.c).
------------------------------------------------------------------------------

-- A store's insecure_transport_action: 'revoke' (the default: a token that
-- came over plain HTTP is revoked with reason exposed) or 'notify' (only an
-- 'expose' audit row, the token stays valid).  The store's admins choose
-- (it is their tokens' risk), as do platform admins; audited as a store
-- change ('plan', like the billing day).  The change reaches every
-- verification at commit (the stores' trigger evicts the store's tokens).
CREATE OR REPLACE FUNCTION pixl_set_insecure_transport_action_impl(caller_ticket bigint, store_id text, action text)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_set_insecure_transport_action(text, text)');
	v_old		text;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(store_id, v_caller);
	PERFORM @extschema@.pixl_assert_store_admin(store_id, v_caller);
	IF action IS NULL OR action NOT IN ('revoke', 'notify') THEN
		PERFORM @extschema@.pixl_raise_hidden('PX058',
			format('insecure transport action must be revoke or notify, not %s',
				   coalesce(@extschema@.pixl_quote(left(action, 40)), 'NULL')), NULL,
			'revoke: a token that came over plain HTTP is revoked (exposed); notify: it is only reported as an expose event.');
	END IF;
	SELECT s.insecure_transport_action INTO v_old FROM @extschema@.pixl_stores s
	 WHERE s.store_id OPERATOR(pg_catalog.=) pixl_set_insecure_transport_action_impl.store_id
	   FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		PERFORM @extschema@.pixl_raise_hidden('PX040',
			format('store %s does not exist', @extschema@.pixl_quote(store_id)), NULL,
			'Create it with pixl_set_store_plan() first.');
	END IF;
	IF v_old OPERATOR(pg_catalog.=) action THEN
		RETURN;
	END IF;
	UPDATE @extschema@.pixl_stores s
	   SET insecure_transport_action = pixl_set_insecure_transport_action_impl.action, updated_at = now()
	 WHERE s.store_id OPERATOR(pg_catalog.=) pixl_set_insecure_transport_action_impl.store_id;
	PERFORM @extschema@.pixl_write_audit('plan', NULL, store_id,
		jsonb_build_object('insecure_transport_action', jsonb_build_object('old', v_old, 'new', action)));
END
$$;

CREATE OR REPLACE FUNCTION pixl_set_insecure_transport_action(store_id text, action text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_set_insecure_transport_action_impl(@extschema@.pixl_caller_ticket(), $1, $2);
END
$$;

COMMENT ON FUNCTION pixl_set_insecure_transport_action(text, text) IS
	'What happens to a store''s token that came over plain HTTP: revoke (the default, reason exposed) or notify (an expose event only); the store''s admins and platform admins';


-- The usage worker's call, in the transaction that stores the usage
-- records that carry the exposures: each token (by id) that came over
-- plain HTTP on some node, with what that node decided from the store's
-- setting when it answered, and when.  revoke: a token not yet revoked is
-- revoked with reason exposed and audited ('expose', source
-- insecure_transport); one revoked meanwhile is left as it is, so the
-- call is idempotent.  notify: an 'expose' audit row with action notify,
-- at most one per token per day, for a token not revoked.  Granted to no
-- one; SECURITY DEFINER and search_path-immune as every function the
-- worker calls.
CREATE OR REPLACE FUNCTION pixl_expose_insecure(token_ids text[], actions text[], seen_at timestamptz[])
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r	record;
	t	record;
BEGIN
	FOR r IN SELECT DISTINCT ON (u.token_id) u.token_id, u.action, u.at
			   FROM unnest(token_ids, actions, seen_at) AS u(token_id, action, at)
			  WHERE u.token_id IS NOT NULL
			  ORDER BY u.token_id, (u.action OPERATOR(pg_catalog.=) 'revoke') DESC, u.at
	LOOP
		IF r.action OPERATOR(pg_catalog.=) 'revoke' THEN
			UPDATE @extschema@.pixl_token_registry g
			   SET revoked_at = now(), revoked_reason = 'exposed'
			 WHERE g.token_id OPERATOR(pg_catalog.=) r.token_id
			   AND g.revoked_at IS NULL
			RETURNING g.store_id, g.hint INTO t;
			IF FOUND THEN
				PERFORM @extschema@.pixl_write_audit('expose', r.token_id, t.store_id,
					jsonb_build_object('source', 'insecure_transport', 'action', 'revoke',
									   'seen_at', r.at, 'hint', t.hint));
			END IF;
		ELSIF r.action OPERATOR(pg_catalog.=) 'notify' THEN
			SELECT g.store_id, g.hint INTO t FROM @extschema@.pixl_token_registry g
			 WHERE g.token_id OPERATOR(pg_catalog.=) r.token_id
			   AND g.revoked_at IS NULL;
			IF FOUND AND NOT EXISTS (
					SELECT 1 FROM @extschema@.pixl_audit a
					 WHERE a.token_id OPERATOR(pg_catalog.=) r.token_id
					   AND a.at OPERATOR(pg_catalog.>) (r.at OPERATOR(pg_catalog.-) interval '1 day')
					   AND a.action OPERATOR(pg_catalog.=) 'expose'
					   AND (a.detail OPERATOR(pg_catalog.->>) 'source') OPERATOR(pg_catalog.=) 'insecure_transport') THEN
				PERFORM @extschema@.pixl_write_audit('expose', r.token_id, t.store_id,
					jsonb_build_object('source', 'insecure_transport', 'action', 'notify',
									   'seen_at', r.at, 'hint', t.hint));
			END IF;
		ELSE
			RAISE EXCEPTION 'unknown exposure action %', r.action;
		END IF;
	END LOOP;
END
$$;

COMMENT ON FUNCTION pixl_expose_insecure(text[], text[], timestamptz[]) IS
	'Internal (the usage worker): revokes (reason exposed) or notifies the tokens that came over plain HTTP; idempotent';
