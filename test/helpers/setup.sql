-- Common start of the token-management regression tests (included with \i
-- from the tree's root, where pg_regress runs psql): the extensions, a fixed
-- time zone, and pg_temp.err(), which runs a statement and returns its
-- SQLSTATE, message, detail and hint (no line numbers that change with the
-- code, as VERBOSITY verbose would print).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pixltoken;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
SET timezone = 'UTC';
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.err(q text)
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
	RETURN NEXT;
END
$$;
