/*-------------------------------------------------------------------------
 *
 * verify_context.c
 *		pixl_current_token() and pixl_current_store(): what the last
 *		verification of this transaction admitted.
 *
 * An app that verifies a request and then queries its own tables in the
 * same transaction can write row-level security policies such as
 *
 *		CREATE POLICY p ON orders USING (store_id = pixl_current_store());
 *
 * The values are C statics of this backend, not settings: nothing a client
 * can SET, set_config() or RESET reaches them.  Every verification sets them
 * (a 200) or clears them (any other answer), and the end of the transaction
 * (commit, abort or prepare) clears them, as does the abort of a
 * subtransaction (fail closed), so a pooled connection's next
 * transaction starts with nothing.  Parallel workers do not share them: the
 * functions are PARALLEL RESTRICTED.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "common/token_format.h"
#include "verify/verify_context.h"

/* store ids are at most 128 characters, of at most 4 bytes each */
#define CONTEXT_STORE_MAX	(128 * 4)

static bool context_valid = false;
static char context_token[PIXL_TOKEN_ID_LEN];
static char context_store[CONTEXT_STORE_MAX];
static int	context_store_len = 0;
static bool callback_registered = false;

PG_FUNCTION_INFO_V1(pixl_current_token);
PG_FUNCTION_INFO_V1(pixl_current_store);

/* A verification in an aborted subtransaction may have set it: fail closed. */
static void
context_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		context_valid = false;
}

static void
context_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			context_valid = false;
			break;
		default:
			break;
	}
}

void
pixl_context_set(const char *token_id, const text *store_id)
{
	int			len = VARSIZE_ANY_EXHDR(store_id);

	if (!callback_registered)
	{
		RegisterXactCallback(context_xact_callback, NULL);
		RegisterSubXactCallback(context_subxact_callback, NULL);
		callback_registered = true;
	}
	if (len > CONTEXT_STORE_MAX)
	{
		/* cannot happen (CHECK on pixl_stores); fail closed */
		context_valid = false;
		return;
	}
	memcpy(context_token, token_id, PIXL_TOKEN_ID_LEN);
	memcpy(context_store, VARDATA_ANY(store_id), len);
	context_store_len = len;
	context_valid = true;
}

void
pixl_context_clear(void)
{
	context_valid = false;
}

Datum
pixl_current_token(PG_FUNCTION_ARGS)
{
	if (!context_valid || !IsTransactionState())
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(context_token, PIXL_TOKEN_ID_LEN));
}

Datum
pixl_current_store(PG_FUNCTION_ARGS)
{
	if (!context_valid || !IsTransactionState())
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(context_store, context_store_len));
}
