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

#include "usage_aggregate.h"
#include "usage_event.h"
#include "usage_extension.h"

/* PIXL_SCHEMA_1_1 when the installed schema folds counts, else 1_0. */
extern int	pixl_usage_schema_version(const PixlExtension *ext);

/*
 * Writes n records (raw rows; responses) and nagg counts in the current
 * transaction; the caller has SPI and a snapshot.  Events go first, then
 * counts, then responses, so that a response finds its row and rollup.
 */
extern void pixl_usage_store_batch(const PixlExtension *ext,
								   const PixlUsageRecord *recs, int n,
								   const PixlAggSnapshot *aggs, int nagg);

/*
 * Keeps a record (or a count) that cannot be written in the dead-letter
 * table, with its error.  Returns false when that fails too (1.0 schema).
 */
extern bool pixl_usage_store_dead_letter(const PixlExtension *ext,
										 const PixlUsageRecord *rec,
										 const PixlAggSnapshot *agg,
										 const char *error);

#endif							/* PIXL_USAGE_STORE_H */
