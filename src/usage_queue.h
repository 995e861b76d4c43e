/*-------------------------------------------------------------------------
 *
 * usage_queue.h
 *		The shared-memory rings of raw usage records, and routing.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_QUEUE_H
#define PIXL_USAGE_QUEUE_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "request_id.h"
#include "usage_event.h"

extern void pixl_usage_queue_init(void);	/* GUCs, from _PG_init */

/* The database names of pixltoken.database, deduplicated. */
extern List *pixl_usage_database_names(void);

extern void pixl_usage_queue_shmem_request(void);
extern void pixl_usage_queue_shmem_startup(void);

/*
 * The request path: counts one verification of the current database and
 * queues its raw row when it can.  Never waits, never writes a table.
 */
extern void pixl_usage_record(const PixlUsageEvent *event);

/* Queues a response report of the current database (pixl_log_response). */
extern void pixl_usage_record_response(const PixlUsageResponse *response);

/* Counts a response that had nothing to apply to (unkept raw row). */
extern void pixl_usage_count_response_ignored(void);

/* What the worker of a queue is doing, for pixl_stats(). */
typedef enum PixlWorkerState
{
	PIXL_WORKER_NOT_RUNNING = 0,
	PIXL_WORKER_CONNECTING,
	PIXL_WORKER_WAITING_FOR_DATABASE,
	PIXL_WORKER_WAITING_FOR_EXTENSION,
	PIXL_WORKER_SERVING,
	PIXL_WORKER_STOPPING
} PixlWorkerState;

extern const char *pixl_worker_state_name(PixlWorkerState state);

/*
 * How a served database's schema takes usage: 1.0 (raw rows carry the
 * counts, nothing sampled) or 1.1 (counts from usage_aggregate.c).
 */
#define PIXL_SCHEMA_1_0		10
#define PIXL_SCHEMA_1_1		11

/* The consumer side, used by the worker of queue idx (usage_worker.c). */
extern int	pixl_usage_queue_count(void);
extern int64 pixl_usage_queue_capacity(void);	/* slots per ring */
extern const char *pixl_usage_queue_dbname(int idx);
extern void pixl_usage_queue_attach(int idx, Oid dboid);
extern void pixl_usage_queue_detach(int idx);
extern void pixl_usage_queue_set_served(int idx, int schema_version);
extern void pixl_usage_queue_set_state(int idx, PixlWorkerState state);
extern PixlWorkerState pixl_usage_queue_get_state(int idx);
extern int	pixl_usage_queue_peek(int idx, PixlUsageRecord *buf, int max);
extern void pixl_usage_queue_consume(int idx, int n, int64 events,
									 int64 responses, bool flushed);
extern void pixl_usage_queue_count_folded(int idx, int64 counts);
extern void pixl_usage_queue_count_dead(int idx, int64 n, const char *error);

/* A snapshot of one queue's counters (pixl_stats). */
typedef struct PixlQueueStats
{
	const char *dbname;			/* NULL: databases without a queue */
	PixlWorkerState state;
	int64		queued;
	int64		flushed;
	int64		dropped;		/* raw rows not kept: queue full, no worker */
	int64		sampled_out;	/* raw rows of 429s not sampled */
	int64		responses_applied;
	int64		responses_ignored;
	int64		counts_folded;	/* verifications counted into the rollups */
	int64		counts_lost;	/* verifications not counted (table full, no
								 * worker) */
	int64		dead_letters;
	TimestampTz oldest_queued;	/* 0 when empty */
	TimestampTz last_flush;		/* 0 when never */
	TimestampTz last_error_at;	/* 0 when never */
	char		last_error[256];
} PixlQueueStats;

/* idx in 0..count: count is the row of databases without a queue. */
extern void pixl_usage_queue_stats(int idx, PixlQueueStats *stats);

#endif							/* PIXL_USAGE_QUEUE_H */
