/*-------------------------------------------------------------------------
 *
 * secret_guard.c
 *		Keeps token secrets out of the server log, whatever the settings.
 *
 * A secret reaches the log in the text of a statement (a literal), in the
 * "parameters: $1 = '...'" detail of log_statement / log_min_duration_
 * statement, in auto_explain's plans, in the context line of an error in
 * an extended-protocol query (log_parameter_max_length_on_error), or in an
 * error message that echoes a bad argument.  pixltoken's own messages
 * never echo one (token_format.c's pixl_redact_secrets() is applied to
 * every value they quote), and the operator recipe in README.md turns the
 * parameter logging off for the app-server role.  This hook is the last
 * line: every report that goes to the server log passes through it,
 *
 *	- message, detail, detail_log, hint, context and internal query get the
 *	  characters of anything shaped like a secret ("sk_live_" / "sk_test_"
 *	  and base62 characters) replaced by '*', in place;
 *	- the statement is not logged with the report (errhidestmt) when its
 *	  text holds such a shape.
 *
 * The hook runs in every backend (the library is preloaded), costs one
 * scan of each reported string, and allocates nothing.  Reports that
 * never reach the server log (a client-only NOTICE) do not pass through
 * it; what the client sends itself is the client's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/elog.h"

#include "pixltoken.h"
#include "secret_guard.h"
#include "token_format.h"

static emit_log_hook_type prev_emit_log_hook = NULL;
static bool guard_installed = false;

PG_FUNCTION_INFO_V1(pixl_raise_hidden);
PG_FUNCTION_INFO_V1(pixl_looks_like_secret);

static inline void
redact(char *s)
{
	if (s != NULL)
		pixl_redact_secrets(s, strlen(s));
}

static void
pixl_secret_guard_emit(ErrorData *edata)
{
	redact(edata->message);
	redact(edata->detail);
	redact(edata->detail_log);
	redact(edata->hint);
	redact(edata->context);
	redact(edata->internalquery);
	if (!edata->hide_stmt && debug_query_string != NULL &&
		pixl_contains_secret(debug_query_string, strlen(debug_query_string)))
		edata->hide_stmt = true;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
pixl_secret_guard_init(void)
{
	if (guard_installed)
		return;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pixl_secret_guard_emit;
	guard_installed = true;
}

/*
 * pixl_raise_hidden(sqlstate text, message text, detail text, hint text)
 *
 * RAISE for SQL functions that may have a secret in their statement: PL/
 * pgSQL's RAISE cannot hide the statement from the log.  The texts go out
 * with secret shapes masked and without the statement.
 */
Datum
pixl_raise_hidden(PG_FUNCTION_ARGS)
{
	char	   *state;
	char	   *message;
	char	   *detail = NULL;
	char	   *hint = NULL;
	int			code = ERRCODE_RAISE_EXCEPTION;

	if (PG_ARGISNULL(1))
		elog(ERROR, "pixl_raise_hidden needs a message");
	message = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(0))
	{
		state = text_to_cstring(PG_GETARG_TEXT_PP(0));
		if (strlen(state) == 5 && strspn(state, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5)
			code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
	}
	if (!PG_ARGISNULL(2))
		detail = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		hint = text_to_cstring(PG_GETARG_TEXT_PP(3));
	redact(message);
	redact(detail);
	redact(hint);

	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 errhidestmt(true)));
	PG_RETURN_VOID();
}

/* pixl_looks_like_secret(value text) -> boolean: a secret's shape inside? */
Datum
pixl_looks_like_secret(PG_FUNCTION_ARGS)
{
	text	   *t;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	t = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(pixl_contains_secret(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}
