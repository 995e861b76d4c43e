/*-------------------------------------------------------------------------
 *
 * usage_store.h
 *		Writes usage records and counts into the tables of the current
 *		database (the worker's transaction).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_STORE_H
#define PIXL_USAGE_STORE_H

#include "postgres.h"

#include "utils/array.h"

#include "common/extension.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_event.h"
#include "usage/usage_pending.h"

/* PIXL_SCHEMA_1_1 when the installed schema folds counts, else 1_0. */
extern int	pixl_usage_schema_version(const PixlExtension *ext);

/*
 * Writes n records (raw rows; responses) and nagg counts in the current
 * transaction; the caller has SPI and a snapshot.  Events go first, then
 * counts, then responses, so that a response finds its row and rollup.
 */
extern void pixl_usage_store_batch(const PixlExtension *ext, int schema,
								   const PixlUsageRecord *recs, int n,
								   const PixlAggSnapshot *aggs, int nagg);

/* Lock and statement timeouts and the like: retry the whole attempt. */
extern bool pixl_usage_error_is_transient(int sqlerrcode);

/*
 * Writes pending verifications out to pixl_usage_pending_responses and
 * applies late reports (usage_pending.c), in the caller's transaction.
 */
extern void pixl_usage_store_pending(const PixlExtension *ext,
									 const PixlPendingItem *spill, int nspill,
									 const PixlPendingItem *late, int nlate);

/*
 * Writes one record or one count in a subtransaction; one that fails for a
 * reason of its own goes to the dead-letter table (logged) and its error
 * message is returned; NULL when written.  When its dead letter cannot be
 * written either, *kept is set (1.1 schema): the caller must keep the item
 * where it is (the message says why).  Transient errors are re-thrown.
 */
extern const char *pixl_usage_store_one(const PixlExtension *ext,
										const PixlUsageRecord *rec,
										const PixlAggSnapshot *agg,
										bool *kept);

/*
 * Writes a batch in a subtransaction; if it fails for a reason of its own,
 * item by item with pixl_usage_store_one.  Returns how many items went to
 * the dead-letter table (the last one's error in *last_error).  An item
 * whose dead letter cannot be written raises an error: nothing is applied.
 */
extern int	pixl_usage_store_batch_isolating(const PixlExtension *ext,
											 const PixlUsageRecord *recs, int n,
											 const PixlAggSnapshot *aggs, int nagg,
											 const char **last_error);

#endif							/* PIXL_USAGE_STORE_H */
