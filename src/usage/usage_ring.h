/*-------------------------------------------------------------------------
 *
 * usage_ring.h
 *		The shared-memory rings of raw usage records, one per served
 *		database (pixltoken.database), and that list's settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_RING_H
#define PIXL_USAGE_RING_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "usage/usage_event.h"

/* Most databases pixltoken.database may list (one ring and worker each). */
#define PIXL_MAX_QUEUES		64

extern void pixl_usage_ring_init(void); /* GUCs, from _PG_init */

/* The database names of pixltoken.database, deduplicated, in order. */
extern List *pixl_usage_database_names(void);

extern void pixl_usage_ring_shmem_request(void);

/* Returns true when it created the rings (first start or crash restart). */
extern bool pixl_usage_ring_shmem_startup(void);

/* Rings by position (0 .. count - 1) and by database name (-1: none). */
extern int	pixl_usage_ring_count(void);
extern int64 pixl_usage_ring_capacity(void);	/* slots per ring */
extern const char *pixl_usage_ring_dbname(int idx);
extern int	pixl_usage_ring_of_name(const char *dbname);

/* Producers (usage_route.c): false when the ring is full. */
extern bool pixl_usage_ring_push(int idx, const PixlUsageRecord *rec,
								 TimestampTz queued_at);

/* The consumer, the worker of ring idx (usage_worker.c). */
extern void pixl_usage_ring_attach(int idx);	/* producers wake MyLatch */
extern void pixl_usage_ring_detach(int idx);
extern int	pixl_usage_ring_peek(int idx, PixlUsageRecord *buf, int max);
extern void pixl_usage_ring_consume(int idx, int n);

/* Records in ring idx, and when the oldest was queued (pixl_stats). */
extern int64 pixl_usage_ring_depth(int idx, TimestampTz *oldest_queued);

/*
 * The dump file (usage_dumpfile.c), in the postmaster only, when no other
 * process is attached: the published records from the tail, and refilling.
 */
extern int64 pixl_usage_ring_published(int idx);
extern const PixlUsageRecord *pixl_usage_ring_at(int idx, int64 k,
												 TimestampTz *queued_at);
extern bool pixl_usage_ring_restore(int idx, const PixlUsageRecord *rec,
									TimestampTz queued_at);

#endif							/* PIXL_USAGE_RING_H */
