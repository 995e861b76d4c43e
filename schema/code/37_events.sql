------------------------------------------------------------------------------
-- Durable lifecycle events (state/85_events.sql): the outbox, its
-- consumers, leases and dead letters, its partitions and retention, and the
-- Standard Webhooks signature.
--
-- Protocol.  pixl_write_audit calls pixl_event_enqueue in the transaction
-- of the change: one pixl_events row, and one pixl_event_deliveries row
-- per consumer whose store is the event's (or that takes every store).
-- A consumer claims with pixl_events_claim: up to max_events of its
-- deliveries whose visible_at has come, oldest event first, locked FOR
-- UPDATE SKIP LOCKED (two claimers never get the same one) and leased
-- until now + visibility_timeout (attempts + 1).  pixl_events_ack deletes
-- them; pixl_events_nack makes them visible again after retry_after; a
-- lease that runs out makes them claimable again.  A delivery claimed
-- max_attempts times whose last lease ran out (or was nacked) becomes a
-- dead letter at the next claim (dead_at), shown by
-- pixl_event_dead_letters until retried or purged.  Delivery is at least
-- once: a consumer that dies between its POST and its ack delivers again
-- after the lease, with the same webhook-id, which the receiver dedupes.
-- No cursor: the per-event rows are written in the change's transaction,
-- so an event that commits after a later one is never behind anything.
--
-- Consumers and writers: a writer locks pixl_event_deliveries in ROW
-- EXCLUSIVE mode in a statement of its own before it reads the consumers
-- (so that the snapshot of the statement that reads them is taken after
-- any wait, however its plan is cached), and a consumer's
-- creation locks it in SHARE mode before it inserts the consumer.  So the
-- creation waits for the changes that enqueued already (they are before
-- it) and changes that enqueue after wait for its commit and see it: a
-- consumer gets every event of a transaction that commits after its
-- creation, and none before (replay_from hands it those kept since a
-- time, once).
--
-- Who: a consumer of one store is created and used by that store's admins
-- (and platform admins); a consumer of every store (store_id NULL) by
-- platform admins only.  The public functions are SECURITY INVOKER
-- wrappers that hand a caller ticket to their SECURITY DEFINER
-- implementation (code/20_store_admins.sql).  A consumer the caller may
-- not use answers as one that does not exist (PX021).
------------------------------------------------------------------------------

-- Standard Webhooks signature: 'v1,' and base64 of HMAC-SHA256 of
-- msg_id.ts.payload under the key in secret ('whsec_' + base64).
CREATE OR REPLACE FUNCTION pixl_webhook_signature(secret text, msg_id text, ts bigint, payload text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'pixl_webhook_signature'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION pixl_webhook_signature(text, text, bigint, text) IS
	'The Standard Webhooks webhook-signature (v1,<base64 HMAC-SHA256>) of a message for an endpoint secret whsec_...; the secret is never kept';


-- The type of an event: what it is about (token., store. or plan.) and the
-- action in the words of pixl_events_since.
CREATE OR REPLACE FUNCTION pixl_event_type(action text, token_id text, store_id text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN token_id IS NOT NULL THEN 'token.'
				WHEN store_id IS NOT NULL THEN 'store.'
				ELSE 'plan.' END
		   || @extschema@.pixl_event_name(action);
$$;


-- pixltoken.event_retention as an interval (the GUC is in minutes; 30 days
-- when the library is not loaded).
CREATE OR REPLACE FUNCTION pixl_event_retention() RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT s.setting::bigint FROM pg_catalog.pg_settings s
					  WHERE s.name = 'pixltoken.event_retention'), 30 * 24 * 60)
		   * interval '1 minute';
$$;


-- The outbox row of one audit row, its deliveries, and the wake-up.  The
-- payload is thin (Standard Webhooks): type, timestamp, and data with the
-- store, the token and the audit detail but for token metadata (the
-- store's own data, up to 4 kB: read it from pixl_tokens).  The audit
-- never holds a secret or hash, so neither does an event.
CREATE OR REPLACE FUNCTION pixl_event_enqueue(event_id bigint, occurred_at timestamptz, action text,
											  token_id text, store_id text, detail jsonb)
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_type	text := @extschema@.pixl_event_type(action, token_id, store_id);
BEGIN
	INSERT INTO @extschema@.pixl_events AS e (event_id, occurred_at, type, store_id, token_id, payload)
	VALUES (pixl_event_enqueue.event_id, pixl_event_enqueue.occurred_at, v_type,
			pixl_event_enqueue.store_id, pixl_event_enqueue.token_id,
			jsonb_build_object(
				'type', v_type,
				'timestamp', to_char(pixl_event_enqueue.occurred_at AT TIME ZONE 'UTC',
									 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
				'data', (coalesce(pixl_event_enqueue.detail, '{}') - 'metadata')
						|| jsonb_build_object('store_id', pixl_event_enqueue.store_id,
											  'token_id', pixl_event_enqueue.token_id)));
	-- before the snapshot of the statement that reads the consumers
	LOCK TABLE @extschema@.pixl_event_deliveries IN ROW EXCLUSIVE MODE;
	INSERT INTO @extschema@.pixl_event_deliveries AS d (consumer_id, event_id, occurred_at)
	SELECT c.consumer_id, pixl_event_enqueue.event_id, pixl_event_enqueue.occurred_at
	  FROM @extschema@.pixl_event_consumers c
	 WHERE c.store_id IS NULL OR c.store_id = pixl_event_enqueue.store_id;
	IF coalesce(current_setting('pixltoken.event_notify', true), 'on') <> 'off' THEN
		PERFORM pg_notify('pixltoken', '');
	END IF;
END
$$;


------------------------------------------------------------------------------
-- Partitions and retention
------------------------------------------------------------------------------

-- The partition of one UTC day, created if missing (the rows of that day
-- in the default partition move into it).  Only maintenance calls it.
CREATE OR REPLACE FUNCTION pixl_create_event_partition(day date) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_name	text := 'pixl_events_' || to_char(day, 'YYYYMMDD');
	v_from	timestamptz := day::timestamp AT TIME ZONE 'UTC';
	v_to	timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(format('%s.%I', '@extschema@', v_name)) IS NOT NULL THEN
		RETURN false;
	END IF;
	-- Writers out until commit: an insert that opened the table before the
	-- ATTACH would route a row of that day to the default partition and
	-- fail its new constraint.  Writers wait (lock_timeout of the caller's
	-- choosing), once a day.
	LOCK TABLE @extschema@.pixl_events IN SHARE ROW EXCLUSIVE MODE;
	EXECUTE format('CREATE TABLE %s.%I (LIKE @extschema@.pixl_events INCLUDING DEFAULTS)',
				   '@extschema@', v_name);
	EXECUTE format('ALTER TABLE %s.%I ADD PRIMARY KEY (event_id, occurred_at)', '@extschema@', v_name);
	EXECUTE format('REVOKE ALL ON %s.%I FROM PUBLIC', '@extschema@', v_name);
	EXECUTE format('WITH m AS (DELETE FROM @extschema@.pixl_events_default WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *) '
				   'INSERT INTO %s.%I SELECT * FROM m', '@extschema@', v_name)
		USING v_from, v_to;
	EXECUTE format('ALTER TABLE @extschema@.pixl_events ATTACH PARTITION %s.%I FOR VALUES FROM (%L) TO (%L)',
				   '@extschema@', v_name, v_from, v_to);
	RETURN true;
END
$$;


-- Creates the partitions of yesterday to a week ahead, drops the days past
-- pixltoken.event_retention (and their deliveries: never delivered, or
-- dead), and deletes such rows of the default partition.  The usage worker
-- calls it every minute; two runs at once: the second does nothing.
CREATE OR REPLACE FUNCTION pixl_events_maintenance(OUT partitions_created int,
												   OUT partitions_dropped int,
												   OUT rows_purged bigint)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	SET lock_timeout = '2s'	-- a long reader of the events: retry at the next run
AS $$
DECLARE
	v_cutoff	timestamptz := now() - @extschema@.pixl_event_retention();
	v_today		date := (now() AT TIME ZONE 'UTC')::date;
	v_day		date;
	v_n			bigint;
BEGIN
	partitions_created := 0;
	partitions_dropped := 0;
	rows_purged := 0;
	BEGIN
		-- self-conflicting, and no conflict with writers (ROW EXCLUSIVE)
		LOCK TABLE @extschema@.pixl_events_default IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
	EXCEPTION WHEN lock_not_available THEN
		RETURN;					-- another run is under way
	END;
	FOR v_day IN
		SELECT v_today + k FROM generate_series(-1, 7) AS k
		 WHERE v_today + k + 1 > (v_cutoff AT TIME ZONE 'UTC')::date
		ORDER BY 1
	LOOP
		BEGIN
			IF @extschema@.pixl_create_event_partition(v_day) THEN
				partitions_created := partitions_created + 1;
			END IF;
		EXCEPTION WHEN lock_not_available THEN
			EXIT;				-- a long writer: the next run makes it
		END;
	END LOOP;

	partitions_dropped := @extschema@.pixl_drop_day_partitions('@extschema@.pixl_events', v_cutoff);

	DELETE FROM @extschema@.pixl_events_default e WHERE e.occurred_at < v_cutoff;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	rows_purged := v_n;
	-- deliveries past the retention: never acknowledged, or dead
	DELETE FROM @extschema@.pixl_event_deliveries d WHERE d.occurred_at < v_cutoff;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	rows_purged := rows_purged + v_n;
END
$$;

COMMENT ON FUNCTION pixl_events_maintenance() IS
	'Creates the lifecycle events'' daily partitions ahead and drops those past pixltoken.event_retention; the worker calls it every minute';


------------------------------------------------------------------------------
-- Consumers
------------------------------------------------------------------------------

-- The consumer of that name, if the caller (and the calling role) may use
-- it: its store's admins, platform admins; PX021 otherwise, the same
-- answer as for a name no consumer has.
CREATE OR REPLACE FUNCTION pixl_event_consumer_checked(name text, caller oid)
	RETURNS @extschema@.pixl_event_consumers
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c	@extschema@.pixl_event_consumers;
BEGIN
	SELECT * INTO c FROM @extschema@.pixl_event_consumers x
	 WHERE x.name = pixl_event_consumer_checked.name;
	IF c.consumer_id IS NULL OR @extschema@.pixl_role_denied(c.store_id, caller) IS NOT NULL THEN
		PERFORM @extschema@.pixl_raise_hidden('PX021',
			format('no event consumer %s for role "%s"',
				   @extschema@.pixl_quote(left(pixl_event_consumer_checked.name, 70)),
				   (SELECT r.rolname FROM pg_catalog.pg_roles r
					 WHERE r.oid OPERATOR(pg_catalog.=) @extschema@.pixl_calling_role())),
			NULL,
			'Create it with pixl_event_consumer_create(); a store admin uses the consumers of its stores, a consumer of every store is for platform admins.');
	END IF;
	RETURN c;
END
$$;


CREATE OR REPLACE FUNCTION pixl_check_event_claim(max_events int, visibility_timeout interval)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF max_events IS NULL OR max_events NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'invalid max_events %', coalesce(max_events::text, 'NULL')
			USING ERRCODE = 'PX023',
				  HINT = 'Claim 1 to 1000 events at a time.';
	END IF;
	IF visibility_timeout IS NULL OR visibility_timeout <= interval '0'
	   OR visibility_timeout > interval '12 hours' THEN
		RAISE EXCEPTION 'invalid visibility timeout %', coalesce(visibility_timeout::text, 'NULL')
			USING ERRCODE = 'PX023',
				  HINT = 'A lease lasts more than 0 and at most 12 hours, e.g. ''30 seconds'': longer than a delivery takes.';
	END IF;
END
$$;


-- A list of event ids: NULL only where it means "all" (all_ok).
CREATE OR REPLACE FUNCTION pixl_check_event_ids(event_ids bigint[], all_ok boolean)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (event_ids IS NULL AND NOT all_ok)
	   OR array_position(event_ids, NULL) IS NOT NULL OR cardinality(event_ids) > 10000 THEN
		RAISE EXCEPTION 'invalid list of event ids'
			USING ERRCODE = 'PX023',
				  HINT = 'Pass event_id values as the claim returned them: at most 10000, none NULL.';
	END IF;
END
$$;


CREATE OR REPLACE FUNCTION pixl_event_consumer_create_impl(caller_ticket bigint, name text, store_id text,
														   max_attempts int, replay_from timestamptz)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_event_consumer_create(text, text, int, timestamptz)');
	v_id		int;
BEGIN
	IF store_id IS NULL THEN
		PERFORM @extschema@.pixl_assert_platform_admin('create an event consumer of every store', v_caller);
	ELSE
		PERFORM @extschema@.pixl_check_store_id(store_id, v_caller);
		PERFORM @extschema@.pixl_assert_store_admin(store_id, v_caller);
	END IF;
	IF name IS NULL OR name !~ '^[a-z0-9][a-z0-9_.:-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid event consumer name %', @extschema@.pixl_visible(left(name, 70))
			USING ERRCODE = 'PX020',
				  HINT = 'A consumer name is 1 to 63 characters: lower-case ASCII letters and digits, then also ".", "_", ":" or "-", e.g. ''webhooks''.';
	END IF;
	IF max_attempts IS NULL OR max_attempts NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'invalid max_attempts %', coalesce(max_attempts::text, 'NULL')
			USING ERRCODE = 'PX023',
				  HINT = 'A delivery is tried 1 to 1000 times before it becomes a dead letter.';
	END IF;
	-- changes that enqueued already commit first; later ones see this one
	LOCK TABLE @extschema@.pixl_event_deliveries IN SHARE MODE;
	INSERT INTO @extschema@.pixl_event_consumers AS c (name, store_id, max_attempts)
	VALUES (name, store_id, max_attempts)
	ON CONFLICT ON CONSTRAINT pixl_event_consumers_name_key DO NOTHING
	RETURNING c.consumer_id INTO v_id;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'event consumer % already exists', @extschema@.pixl_quote(name)
			USING ERRCODE = 'PX022',
				  HINT = 'Consumer names are shared by every store: choose another, e.g. with the store id in it.';
	END IF;
	IF replay_from IS NOT NULL THEN
		INSERT INTO @extschema@.pixl_event_deliveries AS d (consumer_id, event_id, occurred_at)
		SELECT v_id, e.event_id, e.occurred_at
		  FROM @extschema@.pixl_events e
		 WHERE e.occurred_at >= replay_from
		   AND (pixl_event_consumer_create_impl.store_id IS NULL
				OR e.store_id = pixl_event_consumer_create_impl.store_id);
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION pixl_event_consumer_create(name text, store_id text DEFAULT NULL,
													  max_attempts int DEFAULT 10,
													  replay_from timestamptz DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_event_consumer_create_impl(@extschema@.pixl_caller_ticket(), $1, $2, $3, $4);
END
$$;

COMMENT ON FUNCTION pixl_event_consumer_create(text, text, int, timestamptz) IS
	'A named consumer of one store''s lifecycle events (NULL: every store, platform admins only); it gets the events committed after it';


CREATE OR REPLACE FUNCTION pixl_event_consumer_drop_impl(caller_ticket bigint, name text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c	@extschema@.pixl_event_consumers := @extschema@.pixl_event_consumer_checked(name,
		@extschema@.pixl_redeem_caller_ticket(caller_ticket, '@extschema@.pixl_event_consumer_drop(text)'));
BEGIN
	DELETE FROM @extschema@.pixl_event_consumers x WHERE x.consumer_id = c.consumer_id;
END
$$;

CREATE OR REPLACE FUNCTION pixl_event_consumer_drop(name text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_event_consumer_drop_impl(@extschema@.pixl_caller_ticket(), $1);
END
$$;

COMMENT ON FUNCTION pixl_event_consumer_drop(text) IS
	'Removes an event consumer and its undelivered and dead deliveries';


------------------------------------------------------------------------------
-- Claim, acknowledge, release
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pixl_events_claim_impl(caller_ticket bigint, consumer text, max_events int,
												  visibility_timeout interval)
	RETURNS TABLE (event_id bigint, webhook_id text, type text, occurred_at timestamptz,
				   store_id text, token_id text, body text, attempt int)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_caller	oid := @extschema@.pixl_redeem_caller_ticket(caller_ticket,
		'@extschema@.pixl_events_claim(text, int, interval)');
	c			@extschema@.pixl_event_consumers;
	v_now		timestamptz := clock_timestamp();
BEGIN
	PERFORM @extschema@.pixl_check_event_claim(max_events, visibility_timeout);
	c := @extschema@.pixl_event_consumer_checked(consumer, v_caller);
	-- tried max_attempts times, the last lease over: a dead letter
	UPDATE @extschema@.pixl_event_deliveries d
	   SET dead_at = v_now
	 WHERE d.consumer_id = c.consumer_id
	   AND d.event_id IN (SELECT x.event_id FROM @extschema@.pixl_event_deliveries x
						   WHERE x.consumer_id = c.consumer_id AND x.dead_at IS NULL
							 AND x.visible_at <= v_now AND x.attempts >= c.max_attempts
							 FOR UPDATE SKIP LOCKED);
	-- the event is read with its delivery: one not visible (its row being
	-- moved out of the default partition) is not leased either
	RETURN QUERY
	WITH picked AS (
		SELECT x.event_id, e.webhook_id, e.type, e.occurred_at, e.store_id, e.token_id, e.payload
		  FROM @extschema@.pixl_event_deliveries x
		  JOIN @extschema@.pixl_events e ON e.event_id = x.event_id AND e.occurred_at = x.occurred_at
		 WHERE x.consumer_id = c.consumer_id AND x.dead_at IS NULL
		   AND x.visible_at <= v_now AND x.attempts < c.max_attempts
		 ORDER BY x.event_id
		 LIMIT max_events
		   FOR UPDATE OF x SKIP LOCKED),
	claimed AS (
		UPDATE @extschema@.pixl_event_deliveries d
		   SET attempts = d.attempts + 1, visible_at = v_now + visibility_timeout, claimed_at = v_now
		  FROM picked p
		 WHERE d.consumer_id = c.consumer_id AND d.event_id = p.event_id
		RETURNING d.event_id, d.attempts)
	SELECT p.event_id, p.webhook_id, p.type, p.occurred_at, p.store_id, p.token_id,
		   p.payload::text, k.attempts
	  FROM claimed k
	  JOIN picked p ON p.event_id = k.event_id
	 ORDER BY p.event_id;
END
$$;

CREATE OR REPLACE FUNCTION pixl_events_claim(consumer text, max_events int DEFAULT 100,
											 visibility_timeout interval DEFAULT '30 seconds')
	RETURNS TABLE (event_id bigint, webhook_id text, type text, occurred_at timestamptz,
				   store_id text, token_id text, body text, attempt int)
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM @extschema@.pixl_events_claim_impl(@extschema@.pixl_caller_ticket(), $1, $2, $3);
$$;

COMMENT ON FUNCTION pixl_events_claim(text, int, interval) IS
	'Leases up to max_events of a consumer''s undelivered events, oldest first, for visibility_timeout; body is the exact Standard Webhooks payload to send';


CREATE OR REPLACE FUNCTION pixl_events_ack_impl(caller_ticket bigint, consumer text, event_ids bigint[])
	RETURNS int
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c	@extschema@.pixl_event_consumers := @extschema@.pixl_event_consumer_checked(consumer,
		@extschema@.pixl_redeem_caller_ticket(caller_ticket, '@extschema@.pixl_events_ack(text, bigint[])'));
	v_n	int;
BEGIN
	PERFORM @extschema@.pixl_check_event_ids(event_ids, false);
	DELETE FROM @extschema@.pixl_event_deliveries d
	 WHERE d.consumer_id = c.consumer_id AND d.event_id = ANY (event_ids);
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION pixl_events_ack(consumer text, event_ids bigint[]) RETURNS int
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_events_ack_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_events_ack(text, bigint[]) IS
	'Acknowledges delivered events: they are done for this consumer; returns how many were still pending';


CREATE OR REPLACE FUNCTION pixl_events_nack_impl(caller_ticket bigint, consumer text, event_ids bigint[],
												 retry_after interval, error text)
	RETURNS int
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c	@extschema@.pixl_event_consumers := @extschema@.pixl_event_consumer_checked(consumer,
		@extschema@.pixl_redeem_caller_ticket(caller_ticket,
			'@extschema@.pixl_events_nack(text, bigint[], interval, text)'));
	v_n	int;
BEGIN
	PERFORM @extschema@.pixl_check_event_ids(event_ids, false);
	IF retry_after IS NULL OR retry_after < interval '0' OR retry_after > interval '12 hours' THEN
		RAISE EXCEPTION 'invalid retry_after %', coalesce(retry_after::text, 'NULL')
			USING ERRCODE = 'PX023',
				  HINT = 'Retry after 0 (at once) to 12 hours.';
	END IF;
	UPDATE @extschema@.pixl_event_deliveries d
	   SET visible_at = clock_timestamp() + retry_after,
		   last_error = left(@extschema@.pixl_mask_secrets(error), 500)
	 WHERE d.consumer_id = c.consumer_id AND d.event_id = ANY (event_ids) AND d.dead_at IS NULL;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION pixl_events_nack(consumer text, event_ids bigint[],
											retry_after interval DEFAULT '0', error text DEFAULT NULL)
	RETURNS int
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_events_nack_impl(@extschema@.pixl_caller_ticket(), $1, $2, $3, $4);
$$;

COMMENT ON FUNCTION pixl_events_nack(text, bigint[], interval, text) IS
	'Ends the lease of claimed events that failed: claimable again after retry_after, with the error kept';


------------------------------------------------------------------------------
-- Dead letters and the consumers' state
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW pixl_event_dead_letters WITH (security_barrier = true) AS
SELECT c.name AS consumer,
	   d.event_id,
	   e.webhook_id,
	   e.type,
	   e.store_id,
	   e.token_id,
	   e.occurred_at,
	   d.attempts,
	   d.claimed_at AS last_claimed_at,
	   d.dead_at,
	   d.last_error,
	   e.payload
  FROM @extschema@.pixl_event_deliveries d
  JOIN @extschema@.pixl_event_consumers c ON c.consumer_id = d.consumer_id
  JOIN @extschema@.pixl_events e ON e.event_id = d.event_id AND e.occurred_at = d.occurred_at
 WHERE d.dead_at IS NOT NULL
   AND @extschema@.pixl_store_visible(c.store_id);

COMMENT ON VIEW pixl_event_dead_letters IS
	'Events a consumer''s claims gave up on after max_attempts, for the consumers the caller may use';


CREATE OR REPLACE VIEW pixl_event_consumer_status WITH (security_barrier = true) AS
SELECT c.name AS consumer,
	   c.store_id,
	   c.max_attempts,
	   c.created_at,
	   count(d.event_id) FILTER (WHERE d.dead_at IS NULL AND d.visible_at <= clock_timestamp()) AS ready,
	   count(d.event_id) FILTER (WHERE d.dead_at IS NULL AND d.visible_at > clock_timestamp()) AS leased,
	   count(d.event_id) FILTER (WHERE d.dead_at IS NOT NULL) AS dead,
	   min(d.occurred_at) FILTER (WHERE d.dead_at IS NULL) AS oldest_pending_at
  FROM @extschema@.pixl_event_consumers c
  LEFT JOIN @extschema@.pixl_event_deliveries d ON d.consumer_id = c.consumer_id
 WHERE @extschema@.pixl_store_visible(c.store_id)
 GROUP BY c.consumer_id;

COMMENT ON VIEW pixl_event_consumer_status IS
	'Each event consumer the caller may use: events ready to claim, leased, dead, and the oldest not acknowledged';


CREATE OR REPLACE FUNCTION pixl_event_dead_letters_retry_impl(caller_ticket bigint, consumer text,
															  event_ids bigint[])
	RETURNS int
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c	@extschema@.pixl_event_consumers := @extschema@.pixl_event_consumer_checked(consumer,
		@extschema@.pixl_redeem_caller_ticket(caller_ticket,
			'@extschema@.pixl_event_dead_letters_retry(text, bigint[])'));
	v_n	int;
BEGIN
	PERFORM @extschema@.pixl_check_event_ids(event_ids, true);
	UPDATE @extschema@.pixl_event_deliveries d
	   SET dead_at = NULL, attempts = 0, visible_at = '-infinity', last_error = NULL
	 WHERE d.consumer_id = c.consumer_id AND d.dead_at IS NOT NULL
	   AND (event_ids IS NULL OR d.event_id = ANY (event_ids));
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION pixl_event_dead_letters_retry(consumer text, event_ids bigint[] DEFAULT NULL)
	RETURNS int
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_event_dead_letters_retry_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_event_dead_letters_retry(text, bigint[]) IS
	'Makes a consumer''s dead letters (NULL: all) claimable again with their attempts reset; returns how many';


CREATE OR REPLACE FUNCTION pixl_event_dead_letters_purge_impl(caller_ticket bigint, consumer text,
															  event_ids bigint[])
	RETURNS int
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c	@extschema@.pixl_event_consumers := @extschema@.pixl_event_consumer_checked(consumer,
		@extschema@.pixl_redeem_caller_ticket(caller_ticket,
			'@extschema@.pixl_event_dead_letters_purge(text, bigint[])'));
	v_n	int;
BEGIN
	PERFORM @extschema@.pixl_check_event_ids(event_ids, true);
	DELETE FROM @extschema@.pixl_event_deliveries d
	 WHERE d.consumer_id = c.consumer_id AND d.dead_at IS NOT NULL
	   AND (event_ids IS NULL OR d.event_id = ANY (event_ids));
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION pixl_event_dead_letters_purge(consumer text, event_ids bigint[] DEFAULT NULL)
	RETURNS int
	LANGUAGE sql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_event_dead_letters_purge_impl(@extschema@.pixl_caller_ticket(), $1, $2);
$$;

COMMENT ON FUNCTION pixl_event_dead_letters_purge(text, bigint[]) IS
	'Deletes a consumer''s dead letters (NULL: all); returns how many';


-- Readers of pixl_events (granted SELECT) see their stores' events.
DROP POLICY IF EXISTS pixl_events_visible ON pixl_events;
CREATE POLICY pixl_events_visible ON pixl_events
	FOR SELECT USING (@extschema@.pixl_store_visible(store_id));
