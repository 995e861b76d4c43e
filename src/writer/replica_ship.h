/*-------------------------------------------------------------------------
 *
 * replica_ship.h
 *		A hot standby's usage, shipped to its primary exactly once.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_REPLICA_SHIP_H
#define PIXL_REPLICA_SHIP_H

#include "postgres.h"

#include "usage/usage_aggregate.h"
#include "usage/usage_event.h"
#include "common/extension.h"

/* pixltoken.node_id: 0 (default) or 1..15; in every request id. */
extern int	pixl_node_id;

/* Defines the module's settings; called once from _PG_init. */
extern void pixl_usage_ship_init(void);

/*
 * Does this node keep its usage?  A primary does; a standby only with a
 * node id, to ship it.  (A backend-local flag once recovery ended.)
 */
extern bool pixl_usage_ship_keeps_usage(void);

/*
 * The usage worker of ring idx on a standby (usage_worker.c): ships what is
 * queued and counted, a batch at a time, each spooled before it is sent.
 * Returns false when a batch could not be shipped now (retried after a
 * wait); returns true early when the node was promoted meanwhile.
 */
extern bool pixl_usage_ship_flush(int idx, const PixlExtension *ext,
								  PixlUsageRecord *batch, PixlAggSnapshot *aggs,
								  MemoryContext cxt);

/*
 * The usage worker after a promotion, in a transaction with SPI: applies a
 * batch still in the spool through pixl_ingest_usage of this (now primary)
 * node, which says whether the old primary already had it.
 */
extern void pixl_usage_ship_apply_spool(const PixlExtension *ext);
/* ... and after that transaction committed: the batch is done. */
extern void pixl_usage_ship_applied(int idx);

#endif							/* PIXL_REPLICA_SHIP_H */
