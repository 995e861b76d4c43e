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

#include "common/extension.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_event.h"

/* Defines the module's settings; called once from _PG_init. */
extern void pixl_replica_ship_init(void);

/*
 * The usage worker of ring idx on a standby (usage_worker.c): ships what is
 * queued and counted, a batch at a time, each spooled before it is sent.
 * Returns false when a batch could not be shipped now (retried after a
 * wait); returns true early when the node was promoted meanwhile.
 */
extern bool pixl_replica_ship_flush(int idx, const PixlExtension *ext,
								  PixlUsageRecord *batch, PixlAggSnapshot *aggs,
								  MemoryContext cxt);

/*
 * The usage worker after a promotion, in a transaction with SPI: applies a
 * batch still in the spool through pixl_ingest_usage of this (now primary)
 * node, which says whether the old primary already had it.
 */
extern void pixl_replica_ship_apply_spool(const PixlExtension *ext);
/* ... and after that transaction committed: the batch is done. */
extern void pixl_replica_ship_applied(int idx);

#endif							/* PIXL_REPLICA_SHIP_H */
