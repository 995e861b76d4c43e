/*-------------------------------------------------------------------------
 *
 * subtransaction.h
 *		Running a piece of work in an internal subtransaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_SUBTRANSACTION_H
#define PIXL_SUBTRANSACTION_H

#include "postgres.h"

/*
 * Runs work(arg) in an internal subtransaction of the current transaction
 * (as PL/pgSQL runs a block with an EXCEPTION clause).  Returns NULL when
 * it succeeded; else the error, copied into the caller's memory context,
 * with the subtransaction rolled back and the caller's memory context and
 * resource owner restored.  The caller decides what to do with it
 * (ReThrowError, log, keep going).
 */
extern ErrorData *pixl_try_subtransaction(void (*work) (void *arg), void *arg);

#endif							/* PIXL_SUBTRANSACTION_H */
