-- pixltoken: the roles of the README ("Privileges"), ready to run with psql
-- as a superuser in the database where pixltoken is installed:
--
--   psql -v ON_ERROR_STOP=1 -d shop -f examples/roles.sql
--
-- Roles are created only if missing (they are cluster-wide); set their
-- passwords yourself (\password app_server).  Grants name functions, not
-- signatures: every version's overloads of each function present in this
-- database are granted, so the file works on 1.0 and 1.1 alike.  The
-- examples connect as app_server, the usage page as token_admin, Grafana
-- as pixl_dashboard.

-- A grant of EXECUTE on every function of these names in pixltoken's schema.
\set grant 'SELECT format(''GRANT EXECUTE ON FUNCTION %s TO %I'', p.oid::regprocedure, :''role'') FROM pg_proc p JOIN pg_extension e ON e.extnamespace = p.pronamespace AND e.extname = ''pixltoken'' WHERE p.proname = ANY (string_to_array(:''functions'', '' '')) ORDER BY 1'

------------------------------------------------------------------------------
-- The API tier: verify and report, nothing else.
------------------------------------------------------------------------------
SELECT 'CREATE ROLE app_server LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_server') \gexec

-- Logging protection (README "Security"): a secret is a bind parameter of
-- pixl_verify_request, and PostgreSQL prints bind parameters in the server log
-- with the statement when log_min_duration_statement / log_statement /
-- auto_explain fire, or when the statement fails.  For the app role, none
-- of them (0 = no parameter values), whatever the server-wide settings say.
-- log_parameter_max_length can only be set by a superuser, so the role
-- cannot undo it; a role setting applies at the next login, also through
-- PgBouncer.  Do the same for every role that passes secrets.
ALTER ROLE app_server SET log_parameter_max_length = 0;
ALTER ROLE app_server SET log_parameter_max_length_on_error = 0;

\set role app_server
\set functions 'pixl_verify_request pixl_verify_token_http pixl_log_response pixl_log_responses pixl_verify_token'
:grant \gexec

------------------------------------------------------------------------------
-- The admin UI: manage tokens, read usage.
------------------------------------------------------------------------------
SELECT 'CREATE ROLE token_admin LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'token_admin') \gexec
\set role token_admin
\set functions 'pixl_create_token pixl_rotate_token pixl_revoke_token pixl_update_token pixl_disable_token pixl_enable_token pixl_set_store_plan pixl_usage_summary pixl_usage_timeline pixl_usage_endpoints pixl_recent_calls pixl_token_scope_use pixl_stats pixl_events_since pixl_store_quota pixl_set_token_quota pixl_set_store_policy pixl_event_consumer_create pixl_event_consumer_drop pixl_events_claim pixl_events_ack pixl_events_nack pixl_event_dead_letters_retry pixl_event_dead_letters_purge pixl_set_insecure_transport_action pixl_transport_stats'
:grant \gexec
GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO token_admin;
-- the hygiene views (1.2), where they exist
SELECT format('GRANT SELECT ON %s TO token_admin', string_agg(c.oid::regclass::text, ', '))
  FROM pg_class c
 WHERE c.relname IN ('pixl_token_hygiene', 'pixl_store_hygiene_policies')
   AND c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'pixltoken')
HAVING count(*) > 0 \gexec

------------------------------------------------------------------------------
-- Dashboards (README "Dashboards"): the usage views, for the admin UI and
-- for a read-only role a dashboard tool such as Grafana logs in as.
------------------------------------------------------------------------------
SELECT 'CREATE ROLE pixl_dashboard LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pixl_dashboard') \gexec
SELECT format('GRANT SELECT ON %s TO token_admin, pixl_dashboard', string_agg(c.oid::regclass::text, ', '))
  FROM pg_class c
 WHERE c.relname IN ('pixl_usage_by_hour', 'pixl_usage_by_day', 'pixl_usage_by_store', 'pixl_quota_burndown')
   AND c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'pixltoken')
HAVING count(*) > 0 \gexec

-- 1.2: the lifecycle events of their stores (README "Lifecycle events and
-- webhooks")
SELECT format('GRANT SELECT ON %s TO token_admin', string_agg(c.oid::regclass::text, ', '))
  FROM pg_class c
 WHERE c.relname IN ('pixl_events', 'pixl_event_dead_letters', 'pixl_event_consumer_status')
   AND c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'pixltoken')
HAVING count(*) > 0 \gexec

------------------------------------------------------------------------------
-- The webhook relay (examples/webhooks/relay.py, 1.2): claims the events of
-- every store, so a member of pixl_platform_admin (which can also grant
-- stores with pixl_grant_store: give this role nothing else).  It passes
-- endpoint secrets to pixl_webhook_signature as bind parameters: never in
-- the server log, as for app_server.
------------------------------------------------------------------------------
SELECT 'CREATE ROLE event_relay LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'event_relay') \gexec
ALTER ROLE event_relay SET log_parameter_max_length = 0;
ALTER ROLE event_relay SET log_parameter_max_length_on_error = 0;
\set role event_relay
\set functions 'pixl_events_claim pixl_events_ack pixl_events_nack pixl_webhook_signature'
:grant \gexec

------------------------------------------------------------------------------
-- Which stores they see.  Where pixltoken scopes administration by store
-- (1.1, README "Privileges"), these two are the platform's own admin UI
-- and dashboard: members of pixl_platform_admin, they see every store.  An
-- admin of some stores only gets pixl_grant_store(role, store) instead.
------------------------------------------------------------------------------
SELECT format('GRANT pixl_platform_admin TO %I', r)
  FROM unnest(ARRAY['token_admin', 'pixl_dashboard', 'event_relay']) r
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = 'pixl_platform_admin') \gexec
