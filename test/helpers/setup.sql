-- Common start of the token-management regression tests (included with \i
-- from the tree's root, where pg_regress runs psql): the extensions, a fixed
-- time zone, and pg_temp.err(), the suites' one way to catch an error:
-- pg_temp.err(q) runs the statement q and returns its SQLSTATE, message,
-- detail and hint (00000 and 'no error' if it succeeds; no line numbers
-- that change with the code, as VERBOSITY verbose would print);
-- pg_temp.err(q, mask) also replaces every match of the regular expression
-- mask in the message, detail and hint with '<masked>' (for ids and numbers
-- that change from run to run).
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
