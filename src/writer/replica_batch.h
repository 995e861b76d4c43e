/*-------------------------------------------------------------------------
 *
 * replica_batch.h
 *		The wire form of a batch of usage that a standby ships to its
 *		primary: raw records and exact counts, as one bytea.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_REPLICA_BATCH_H
#define PIXL_REPLICA_BATCH_H

#include "postgres.h"

#include "usage/usage_aggregate.h"
#include "usage/usage_event.h"

/* A decoded batch (palloc'd arrays, dbid set to MyDatabaseId). */
typedef struct PixlUsageBatch
{
	int			nrecords;
	int			ncounts;
	PixlUsageRecord *records;
	PixlAggSnapshot *counts;
	int64		lost;			/* verifications the node's crashes lost */
} PixlUsageBatch;

/*
 * Encodes n records, nagg counts and how many verifications the node's
 * crashes lost since its previous batch (palloc'd bytea).  The form is the
 * in-memory layout behind a header that names its version and the sizes of
 * both structs: primary and standby run the same binary on the same
 * architecture (physical replication requires it), and a standby running
 * another build of pixltoken is refused with a clear error, not misread.
 */
extern bytea *pixl_usage_batch_encode(const PixlUsageRecord *records, int n,
									  const PixlAggSnapshot *counts, int nagg,
									  int64 lost);

/*
 * The most a batch counts, per counter (requests, errors, rate_limited,
 * previous_secret_uses, responses, response_errors_up and _down, cost;
 * each latency bucket, and their sum; charged's absolute value), in one item and summed over its items: 2^28, far
 * above what a node verifies between two batches, and low enough that a
 * bigint sum of a year of batches cannot overflow (2^35 batches of the
 * ceiling, one per millisecond, take over a year).  A standby with more
 * ships the rest in its next batches (pixl_usage_batch_clamp).
 */
#define PIXL_BATCH_MAX_COUNT	((int64) 1 << 28)

/*
 * The most response time (microseconds) a batch carries, in one item and
 * summed: a second per response at the ceiling (2^28 s, 2.7e14 us), so
 * bigint sums cannot overflow either; the rest goes in later batches.
 */
#define PIXL_BATCH_MAX_US_SUM	(PIXL_BATCH_MAX_COUNT * 1000000)

/* How far ahead of the primary's clock a standby's times may be. */
#define PIXL_BATCH_CLOCK_SKEW	USECS_PER_DAY

/*
 * Decodes and checks a batch that node node_id sent through any caller of
 * pixl_ingest_usage: every item as pixl_usage_batch_check_* says, or PX064
 * naming the item and the field, before anything is written.
 */
extern void pixl_usage_batch_decode(const char *data, Size len, int node_id,
									PixlUsageBatch *batch);

/*
 * NULL when the primary takes this item from node node_id at time now;
 * else what is wrong, and *field names the field.
 */
extern const char *pixl_usage_batch_check_record(const PixlUsageRecord *rec,
												 int node_id, TimestampTz now,
												 const char **field);
extern const char *pixl_usage_batch_check_count(const PixlAggSnapshot *c,
												TimestampTz now,
												const char **field);

/*
 * Lowers the counts so that each counter sums to at most
 * PIXL_BATCH_MAX_COUNT over the n items; true if any was lowered.
 */
extern bool pixl_usage_batch_clamp(PixlAggSnapshot *counts, int n);

/* What a batch holds, for the counters of pixl_stats. */
typedef struct PixlUsageTally
{
	int64		events;			/* records of verifications */
	int64		responses;		/* records of reported responses */
	int64		requests;		/* verifications the counts hold */
} PixlUsageTally;

extern PixlUsageTally pixl_usage_batch_tally(const PixlUsageRecord *records, int n,
											 const PixlAggSnapshot *counts, int nagg);

#endif							/* PIXL_REPLICA_BATCH_H */
