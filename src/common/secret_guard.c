/*-------------------------------------------------------------------------
 *
 * secret_guard.c
 *		Keeps token secrets out of the server log, whatever the settings,
 *		and out of what pg_stat_statements keeps of utility statements.
 *
 * A secret reaches the log in the text of a statement (a literal), in the
 * "parameters: $1 = '...'" detail of log_statement / log_min_duration_
 * statement, in auto_explain's plans, in the context line of an error in
 * an extended-protocol query (log_parameter_max_length_on_error), in the
 * node dumps of debug_print_parse / _rewritten / _plan (a constant's bytes
 * as decimal numbers), or in an error message that echoes a bad argument.
 * pixltoken's own messages never echo one (token_format.c's
 * pixl_redact_secrets() is applied to every value they quote), and the
 * operator recipe in README.md turns the parameter logging off for the
 * app-server role.  The emit_log_hook is the last line: every report that
 * goes to the server log passes through it,
 *
 *	- message, detail, detail_log, hint, context and internal query get the
 *	  characters of anything shaped like a secret ("sk_live_" / "sk_test_"
 *	  and base62 characters, also across SQL string continuation) replaced
 *	  by '*', in place, and so do the byte lists of node dumps' constants;
 *	- the statement is not logged with the report (errhidestmt) when its
 *	  text holds such a shape.
 *
 * Cost: one scan of each reported string, no allocation.  The statement is
 * scanned only for a report that the server would log it with (the level
 * is at or above log_min_error_statement, elog.c's rule): the scan then
 * costs less than writing the statement to the log, so a long statement
 * with many warnings costs nothing extra at the default settings.  Reports
 * that never reach the server log (a client-only NOTICE) do not pass
 * through the hook; what the client sends itself is the client's.
 *
 * pg_stat_statements normalizes the constants of plannable statements, but
 * keeps the text of utility statements (EXPLAIN, DECLARE CURSOR, DO, COPY,
 * CALL, ...) as it is.  The ProcessUtility_hook hands the next hook (and
 * the executor below it) a copy of the text with secret shapes masked,
 * same length, so every position in it stays valid.  Hooks run in the
 * reverse order of shared_preload_libraries, so this works only when
 * pixltoken is listed after pg_stat_statements; the postmaster warns at
 * start when another library's utility hook would run first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "common/errcodes.h"
#include "common/secret_guard.h"
#include "common/token_format.h"

static emit_log_hook_type prev_emit_log_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;
static bool guard_installed = false;

PG_FUNCTION_INFO_V1(pixl_raise_hidden);
PG_FUNCTION_INFO_V1(pixl_looks_like_secret);
PG_FUNCTION_INFO_V1(pixl_mask_secrets);

static inline void
redact(char *s)
{
	if (s != NULL)
	{
		pixl_redact_secrets(s, strlen(s));
		pixl_redact_node_dump(s);
	}
}

/*
 * Will the server log print the statement with a report of this level?
 * elog.c's rule for log_min_error_statement, where LOG ranks above ERROR.
 */
static bool
statement_logged_with(int elevel)
{
	if (elevel == LOG || elevel == LOG_SERVER_ONLY)
		return log_min_error_statement == LOG || log_min_error_statement <= ERROR;
	if (elevel == WARNING_CLIENT_ONLY)
		return false;
	if (log_min_error_statement == LOG)
		return elevel >= FATAL;
	return elevel >= log_min_error_statement;
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
		statement_logged_with(edata->elevel) &&
		pixl_contains_secret(debug_query_string, strlen(debug_query_string)))
		edata->hide_stmt = true;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Utility statements go on with their own part of the query string masked
 * (a copy, only when there is something to mask).  Only that part: a
 * string of many statements is not rescanned for each of them.
 */
static void
pixl_secret_guard_utility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	const char *text = queryString;

	if (queryString != NULL)
	{
		size_t		from = pstmt->stmt_location > 0 ? pstmt->stmt_location : 0;
		size_t		len = pstmt->stmt_location >= 0 && pstmt->stmt_len > 0 ?
			(size_t) pstmt->stmt_len : strlen(queryString + from);

		if (pixl_contains_secret(queryString + from, len))
		{
			char	   *copy = pstrdup(queryString);

			pixl_redact_secrets(copy + from, len);
			text = copy;
		}
	}

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, text, readOnlyTree, context, params,
								  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, text, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
pixl_secret_guard_init(void)
{
	if (guard_installed)
		return;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pixl_secret_guard_emit;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = pixl_secret_guard_utility;
	guard_installed = true;
}

/*
 * After every preloaded library's _PG_init (the postmaster): a utility
 * hook installed after ours runs before it, and sees secrets unmasked.
 */
void
pixl_secret_guard_check_order(void)
{
	if (ProcessUtility_hook != pixl_secret_guard_utility)
		ereport(WARNING,
				(errmsg("pixltoken is not the last library in shared_preload_libraries that hooks utility statements"),
				 errdetail("A library listed after it, such as pg_stat_statements, sees the text of EXPLAIN, DECLARE CURSOR, DO and other utility statements before pixltoken masks token secrets in it."),
				 errhint("List pixltoken last in shared_preload_libraries.")));
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
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_RAISE),
				 errmsg("pixl_raise_hidden needs a message"),
				 errhidestmt(true)));
	message = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(0))
	{
		state = text_to_cstring(PG_GETARG_TEXT_PP(0));
		/* five digits or upper-case letters, of an error class */
		if (strlen(state) != 5 ||
			strspn(state, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 5 ||
			(state[0] == '0' && (state[1] == '0' || state[1] == '1' || state[1] == '2')))
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_INVALID_RAISE),
					 errmsg("invalid SQLSTATE passed to pixl_raise_hidden"),
					 errhint("A SQLSTATE is five digits or upper-case ASCII letters, of an error class (not 00, 01 or 02); NULL raises P0001."),
					 errhidestmt(true)));
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

/*
 * pixl_mask_secrets(value text) -> text: the value with the characters of
 * every secret shape after its prefix replaced by '*' (same length), as
 * the log guard masks them.  For free text that is stored.
 */
Datum
pixl_mask_secrets(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_P_COPY(0);

	pixl_redact_secrets(VARDATA(t), VARSIZE(t) - VARHDRSZ);
	PG_RETURN_TEXT_P(t);
}
