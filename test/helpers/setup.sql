\set ECHO none
-- Common start of the token-management regression tests (included with \i
-- from the tree's root, where pg_regress runs psql; not echoed, so that a
-- change here does not rewrite every expected file): the extensions, a fixed
-- time zone, and pg_temp.err(), the suites' one way to catch an error:
-- pg_temp.err(q) runs the statement q and returns its SQLSTATE, message,
-- detail and hint (00000 and 'no error' if it succeeds; no line numbers
-- that change with the code, as VERBOSITY verbose would print);
-- pg_temp.err(q, mask) also replaces every match of the regular expression
-- mask in the message, detail and hint with '<masked>' (for ids and numbers
-- that change from run to run).  pg_temp.roll_up() runs the maintenance
-- until every closed UTC day is rolled up: pixl_run_maintenance() returns
-- no row when the worker's own run holds its lock, and the worker's run
-- then does the same work.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pixltoken;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
SET timezone = 'UTC';
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.err(q text, mask text DEFAULT NULL)
	RETURNS TABLE (state text, message text, detail text, hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := '00000';
	message := 'no error';
	RETURN NEXT;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	IF mask IS NOT NULL THEN
		message := regexp_replace(message, mask, '<masked>', 'g');
		detail := regexp_replace(detail, mask, '<masked>', 'g');
		hint := regexp_replace(hint, mask, '<masked>', 'g');
	END IF;
	RETURN NEXT;
END
$$;

CREATE FUNCTION pg_temp.roll_up() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		PERFORM pixl_run_maintenance();
		IF EXISTS (SELECT 1 FROM pixl_usage_daily_state
				   WHERE rolled_up_until >= date_trunc('day', now(), 'UTC')) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END
$$;
\set ECHO all
