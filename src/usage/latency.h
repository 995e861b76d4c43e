/*-------------------------------------------------------------------------
 *
 * latency.h
 *		Response-time histograms that merge without loss (latency.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_LATENCY_H
#define PIXL_LATENCY_H

#include "postgres.h"

/*
 * Buckets: 0 is [0, 1/16 ms); bucket i >= 1 is
 * [2^(-4 + (i-1)/8), 2^(-4 + i/8)) ms, 8 per doubling, the last ending at
 * 2^27 ms (37.3 hours, above PIXL_MAX_RESPONSE_MS).
 */
#define PIXL_LATENCY_BUCKETS	249
#define PIXL_LATENCY_MAX_MS		134217728.0 /* 2^27: the end of the last bucket */

/*
 * The bucket of a response time in ms (0 <= ms < PIXL_LATENCY_MAX_MS; a
 * value outside goes to the first or last bucket: check it first).
 */
extern int	pixl_latency_bucket(double ms);

/*
 * The histogram (a pixl_latency Datum) of per-bucket counts, as the usage
 * counts of shared memory hold them; (Datum) 0 with *isnull when every
 * count is 0 and responses is 0 (with responses, an empty histogram: its
 * buckets come with a later snapshot, usage_aggregate.c "Latency").
 */
extern Datum pixl_latency_from_counts(const uint32 *counts, int64 responses,
									  bool *isnull);

/* Its text form, for messages and dead letters (palloc'd). */
extern char *pixl_latency_counts_text(const uint32 *counts);

#endif							/* PIXL_LATENCY_H */
