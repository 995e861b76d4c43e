/*-------------------------------------------------------------------------
 *
 * verify_context.h
 *		The verified token and store of the current transaction, for
 *		row-level security policies (pixl_current_token/_store).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_VERIFY_CONTEXT_H
#define PIXL_VERIFY_CONTEXT_H

#include "postgres.h"

/* After a 200: token and store of the rest of the transaction. */
extern void pixl_context_set(const char *token_id, const text *store_id);

/* After any other answer: nothing. */
extern void pixl_context_clear(void);

#endif							/* PIXL_VERIFY_CONTEXT_H */
