-- pixltoken: the roles of the README ("Privileges"), ready to run with psql
-- as a superuser in the database where pixltoken is installed:
--
--   psql -v ON_ERROR_STOP=1 -d shop -f examples/roles.sql
--
-- Roles are created only if missing (they are cluster-wide); set their
-- passwords yourself (\password app_server).  The examples (examples/node,
-- examples/python) connect as app_server and, for the usage page, token_admin.

-- The API tier: verify and report, nothing else.
SELECT 'CREATE ROLE app_server LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_server') \gexec

-- Logging protection: a secret is a bind parameter of pixl_verify_token,
-- and PostgreSQL logs bind parameters with the statement when
-- log_min_duration_statement / log_statement fire, or when the statement
-- fails.  For the app role, log none of them (0 = no parameter values),
-- whatever the server-wide settings say.  (log_parameter_max_length can
-- only be set by a superuser; a role setting applies at the next login,
-- also through PgBouncer.)
ALTER ROLE app_server SET log_parameter_max_length = 0;
ALTER ROLE app_server SET log_parameter_max_length_on_error = 0;

GRANT EXECUTE ON FUNCTION
	pixl_verify_token(text, text, text, text, text, inet),
	pixl_verify_token_http(text, text, text, text, text, inet),
	pixl_log_response(text, int, double precision),
	pixl_log_responses(text[], int[], double precision[])
	TO app_server;

-- The admin UI / store admins: manage tokens, read usage.
SELECT 'CREATE ROLE token_admin LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'token_admin') \gexec

GRANT EXECUTE ON FUNCTION
	pixl_create_token(text, text, text[], timestamptz, int, text),
	pixl_rotate_token(text, interval),
	pixl_revoke_token(text),
	pixl_update_token(text, text, text[], int, timestamptz),
	pixl_set_store_plan(text, text),
	pixl_usage_summary(text, text),
	pixl_usage_timeline(text, text),
	pixl_usage_endpoints(text, text),
	pixl_recent_calls(text, int, int),
	pixl_stats()
	TO token_admin;
GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO token_admin;

-- Dashboards (README "Dashboards"): the usage views, for the admin role and
-- for a read-only role a dashboard tool such as Grafana logs in as.  Both
-- see only the stores pixl_store_visible() grants them.
GRANT SELECT ON pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store TO token_admin;
SELECT 'CREATE ROLE pixl_dashboard LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pixl_dashboard') \gexec
GRANT SELECT ON pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store TO pixl_dashboard;
