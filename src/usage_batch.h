/*-------------------------------------------------------------------------
 *
 * usage_batch.h
 *		The wire form of a batch of usage that a standby ships to its
 *		primary: raw records and exact counts, as one bytea.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_BATCH_H
#define PIXL_USAGE_BATCH_H

#include "postgres.h"

#include "usage_aggregate.h"
#include "usage_event.h"

/* A decoded batch (palloc'd arrays, dbid set to MyDatabaseId). */
typedef struct PixlUsageBatch
{
	int			nrecords;
	int			ncounts;
	PixlUsageRecord *records;
	PixlAggSnapshot *counts;
} PixlUsageBatch;

/*
 * Encodes n records and nagg counts (palloc'd bytea).  The form is the
 * in-memory layout behind a header that names its version and the sizes of
 * both structs: primary and standby run the same binary on the same
 * architecture (physical replication requires it), and a standby running
 * another build of pixltoken is refused with a clear error, not misread.
 */
extern bytea *pixl_usage_batch_encode(const PixlUsageRecord *records, int n,
									  const PixlAggSnapshot *counts, int nagg);

/*
 * Decodes and checks a batch from any caller of pixl_ingest_usage: every
 * string is terminated, every field in range, or PX064 is raised.
 */
extern void pixl_usage_batch_decode(const char *data, Size len,
									PixlUsageBatch *batch);

/* Verifications a batch's counts hold (for the ack counters). */
extern int64 pixl_usage_batch_requests(const PixlUsageBatch *batch);

#endif							/* PIXL_USAGE_BATCH_H */
