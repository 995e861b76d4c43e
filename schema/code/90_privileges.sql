------------------------------------------------------------------------------
-- Privileges: who may call or read what.  A function is executable by
-- PUBLIC unless revoked here (the public wrappers check their caller
-- themselves); tables and views are their owner's unless granted.  REVOKE
-- and GRANT are idempotent, so every upgrade runs this file again; the
-- roles granted to are created in state/.
------------------------------------------------------------------------------

REVOKE ALL ON FUNCTION pixl_assert_preloaded() FROM PUBLIC;

REVOKE ALL ON pixl_usage_events, pixl_usage_events_default, pixl_usage_hourly, pixl_usage_daily, pixl_usage_daily_state, pixl_usage_unmatched_responses FROM PUBLIC;

REVOKE ALL ON @extschema@.pixl_usage_recent FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.pixl_latency_add(@extschema@.pixl_latency, @extschema@.pixl_latency), @extschema@.pixl_latency_add(@extschema@.pixl_latency, double precision), @extschema@.pixl_latency_count(@extschema@.pixl_latency), @extschema@.pixl_latency_quantile(@extschema@.pixl_latency, double precision), @extschema@.pixl_latency_quantiles(@extschema@.pixl_latency, double precision[]), @extschema@.pixl_latency_buckets(@extschema@.pixl_latency) TO PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean) FROM PUBLIC;

REVOKE ALL ON @extschema@.pixl_usage_rollups FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_usage_summary(text, text), pixl_usage_timeline(text, text), pixl_usage_endpoints(text, text) FROM PUBLIC;

-- scopes granted but not exercised: granted like the analytics
REVOKE ALL ON FUNCTION pixl_token_scope_use(text, integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_token_scope_use_impl(bigint, text, integer) TO PUBLIC;

REVOKE ALL ON pixl_store_admins FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_raise_hidden(text, text, text, text), pixl_is_platform_admin(), pixl_raise_not_your_store(text, text, oid), pixl_borrow_detail(oid), pixl_role_denied(text, oid), pixl_redeem_caller_ticket(bigint, regprocedure), pixl_token_store_checked(text, text, oid), pixl_lock_token(text, oid), pixl_check_usage_token(text, oid), pixl_assert_store_admin(text, oid), pixl_assert_platform_admin(text, oid), pixl_grant_store(text, text), pixl_revoke_store(text, text), pixl_grant_store_impl(bigint, text, text), pixl_revoke_store_impl(bigint, text, text), pixl_set_store_plan_impl(bigint, text, text), pixl_usage_summary_impl(bigint, text, text), pixl_usage_timeline_impl(bigint, text, text), pixl_usage_endpoints_impl(bigint, text, text), pixl_recent_calls_impl(bigint, text, int, int), pixl_caller_ticket() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_store_visible(text), pixl_looks_like_secret(text), pixl_calling_role() TO PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_caller_ticket(), pixl_grant_store_impl(bigint, text, text), pixl_revoke_store_impl(bigint, text, text), pixl_set_store_plan_impl(bigint, text, text), pixl_usage_summary_impl(bigint, text, text), pixl_usage_timeline_impl(bigint, text, text), pixl_usage_endpoints_impl(bigint, text, text), pixl_recent_calls_impl(bigint, text, int, int) TO PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_grant_store(text, text), pixl_revoke_store(text, text) TO pixl_platform_admin;

GRANT SELECT ON pixl_store_admins TO pixl_platform_admin;

REVOKE ALL ON FUNCTION pixl_check_store_id(text, oid) FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_mask_secrets(text) FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_visible(text), pixl_enforce_store_token_cap() FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_rate_limit_stats() FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_token_cache_row_changed() FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_cache_stats() FROM PUBLIC;

REVOKE ALL ON pixl_lifecycle_reminders_sent FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_setting_interval(text), pixl_lifecycle_reminders() FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_events_since(bigint, integer) FROM PUBLIC;

-- plan quotas (65_quota.sql): pixl_store_quota is granted like the
-- analytics, its implementation checks the caller ticket
REVOKE ALL ON pixl_quota_notices FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_quota_notices(), pixl_plans_audit_quota(), pixl_store_quota(text), pixl_quota_node_share(bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_store_quota_impl(bigint, text) TO PUBLIC;

REVOKE ALL ON pixl_quota_burndown FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_new_token_id(), pixl_new_secret(text), pixl_secret_hash(text), pixl_plans_restore_seed(), pixl_quote(text), pixl_check_name(text), pixl_check_expiry(timestamptz), pixl_resolve_rate_limit(text, int), pixl_write_audit(text, text, text, jsonb), pixl_set_store_plan(text, text), pixl_rotate_token(text, interval), pixl_revoke_token(text) FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_check_allowed_ips(text[]), pixl_check_metadata(jsonb), pixl_check_reason(text), pixl_check_source(text), pixl_leaked_secret_hash(text), pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb), pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb), pixl_disable_token(text, text), pixl_enable_token(text), pixl_report_leaked(bytea, text), pixl_report_leaked(text, text), pixl_create_token_impl(bigint, text, text, text[], timestamptz, int, text, text[], jsonb), pixl_update_token_impl(bigint, text, text, text[], int, timestamptz, text[], jsonb), pixl_rotate_token_impl(bigint, text, interval), pixl_revoke_token_impl(bigint, text), pixl_disable_token_impl(bigint, text, text), pixl_enable_token_impl(bigint, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_create_token_impl(bigint, text, text, text[], timestamptz, int, text, text[], jsonb), pixl_update_token_impl(bigint, text, text, text[], int, timestamptz, text[], jsonb), pixl_rotate_token_impl(bigint, text, interval), pixl_revoke_token_impl(bigint, text), pixl_disable_token_impl(bigint, text, text), pixl_enable_token_impl(bigint, text) TO PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_guard_usage_partitions() FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_guard_usage_index_drop() FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_guard_usage_indexes() FROM PUBLIC;

REVOKE ALL ON @extschema@.pixl_usage_dead_letters, @extschema@.pixl_usage_maintenance_lock, @extschema@.pixl_usage_pending_responses FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_verify_request(text, text, text, text, text, inet) FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) FROM PUBLIC;

-- credentials over plain HTTP (40_verify.sql, 37_transport.sql): the
-- transport overloads are granted like the others (README); the worker's
-- function and the counters are the owner's; a store's setting goes
-- through its caller ticket
REVOKE ALL ON FUNCTION pixl_verify_token(text, text, text, text, text, inet, int, text),
	pixl_verify_request(text, text, text, text, text, inet, int, text),
	pixl_verify_token_http(text, text, text, text, text, inet, int, text),
	pixl_transport_stats(), pixl_expose_insecure(text[], text[], timestamptz[]),
	pixl_set_insecure_transport_action(text, text),
	pixl_set_insecure_transport_action_impl(bigint, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_set_insecure_transport_action_impl(bigint, text, text) TO PUBLIC;

REVOKE ALL ON FUNCTION pixl_current_token(), pixl_current_store() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_current_token(), pixl_current_store() TO PUBLIC;

REVOKE ALL ON pixl_plans, pixl_stores, pixl_token_registry, pixl_token_activity, pixl_audit, pixl_tokens FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_insert_usage(bigint[], timestamptz[], text[], text[], text[], inet[], int[], int[], double precision[]), pixl_store_events(bigint[], timestamptz[], text[], text[], text[], inet[], int[]), pixl_apply_responses(bigint[], timestamptz[], int[], double precision[]), pixl_log_response(bigint, int, double precision), pixl_create_usage_partition(date), pixl_drop_day_partitions(regclass, timestamptz), pixl_usage_retention(), pixl_run_maintenance(interval), pixl_backfill_usage(text[], timestamptz[], text[], text[], int[], double precision[], inet[]), pixl_usage_period_start(text), pixl_usage_daily_until(), pixl_check_recent_calls(text, int, int), pixl_recent_calls(text, int, int) FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_rollup_add(text[], timestamptz[], text[], text[], bigint[], bigint[], double precision[], bigint[], bigint[], @extschema@.pixl_latency[]), @extschema@.pixl_activity_add(text[], timestamptz[], bigint[], timestamptz[]), @extschema@.pixl_write_pending(bigint[], timestamptz[], text[], timestamptz[], text[], text[], int[]), @extschema@.pixl_apply_late_responses(bigint[], int[], double precision[]), @extschema@.pixl_match_unmatched(bigint[]), @extschema@.pixl_rollup_retention(), @extschema@.pixl_log_response(text, int, double precision), @extschema@.pixl_log_responses(text[], int[], double precision[]), @extschema@.pixl_stats() FROM PUBLIC;

REVOKE ALL ON pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_replica_status() FROM PUBLIC;

REVOKE ALL ON @extschema@.pixl_replica_nodes FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) FROM PUBLIC;

REVOKE ALL ON @extschema@.pixl_replica_retired FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node(integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node_impl(bigint, integer) TO PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.pixl_replica_reset_node(integer) TO pixl_replica_operator;

-- the node-id layout: for the replica tables' checks and the writers of
-- usage, which run as the owner
REVOKE ALL ON FUNCTION @extschema@.pixl_node_id_bits() FROM PUBLIC;

-- token hygiene (85_hygiene.sql): pixl_set_store_policy is granted like the
-- management functions, its implementation checks the caller ticket; the
-- views like pixl_tokens.  pixl_policy_merge stays executable by PUBLIC:
-- the views call it as their reader.
REVOKE ALL ON pixl_store_policies, pixl_hygiene_sent, pixl_store_hygiene_policies, pixl_token_hygiene FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_policy_of(text), pixl_check_policy_expiry(text, jsonb, timestamptz, timestamptz, timestamptz, boolean), pixl_hygiene_clamp(text, jsonb), pixl_hygiene_policy_changed(text, jsonb, jsonb), pixl_set_store_policy(text, interval, boolean, interval, text, interval), pixl_set_store_policy_impl(bigint, text, interval, boolean, interval, text, interval), pixl_plans_hygiene_changed(), pixl_hygiene_sweep() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_set_store_policy_impl(bigint, text, interval, boolean, interval, text, interval) TO PUBLIC;
-- lifecycle events (37_events.sql): the public functions are granted like
-- the management functions (store admins, the relay's role), their
-- implementations check the caller ticket; the outbox's tables are the
-- owner's (pixl_events may be granted SELECT: its policy scopes it)
REVOKE ALL ON pixl_events, pixl_events_default, pixl_event_consumers, pixl_event_deliveries, pixl_event_dead_letters, pixl_event_consumer_status FROM PUBLIC;

REVOKE ALL ON FUNCTION pixl_event_type(text, text, text), pixl_event_retention(), pixl_event_enqueue(bigint, timestamptz, text, text, text, jsonb), pixl_create_event_partition(date), pixl_events_maintenance(), pixl_event_consumer_checked(text, oid), pixl_check_event_claim(int, interval), pixl_check_event_ids(bigint[], boolean), pixl_event_consumer_create(text, text, int, timestamptz), pixl_event_consumer_drop(text), pixl_events_claim(text, int, interval), pixl_events_ack(text, bigint[]), pixl_events_nack(text, bigint[], interval, text), pixl_event_dead_letters_retry(text, bigint[]), pixl_event_dead_letters_purge(text, bigint[]) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_event_consumer_create_impl(bigint, text, text, int, timestamptz), pixl_event_consumer_drop_impl(bigint, text), pixl_events_claim_impl(bigint, text, int, interval), pixl_events_ack_impl(bigint, text, bigint[]), pixl_events_nack_impl(bigint, text, bigint[], interval, text), pixl_event_dead_letters_retry_impl(bigint, text, bigint[]), pixl_event_dead_letters_purge_impl(bigint, text, bigint[]) TO PUBLIC;

GRANT EXECUTE ON FUNCTION pixl_webhook_signature(text, text, bigint, text), pixl_event_name(text) TO PUBLIC;
