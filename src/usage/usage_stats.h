/*-------------------------------------------------------------------------
 *
 * usage_stats.h
 *		Per-database counters of the usage pipeline and the state of each
 *		database's worker, as pixl_stats() shows them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_STATS_H
#define PIXL_USAGE_STATS_H

#include "postgres.h"
#include "datatype/timestamp.h"

/* Counters the request path adds to (idx -1: databases without a ring). */
typedef enum PixlUsageCounter
{
	PIXL_COUNT_DROPPED,
	PIXL_COUNT_SAMPLED_OUT,
	PIXL_COUNT_COUNTS_LOST,
	PIXL_COUNT_RESPONSES_IGNORED
} PixlUsageCounter;

/* What the worker of a ring is doing. */
typedef enum PixlWorkerState
{
	PIXL_WORKER_NOT_RUNNING = 0,
	PIXL_WORKER_CONNECTING,
	PIXL_WORKER_WAITING_FOR_DATABASE,
	PIXL_WORKER_WAITING_FOR_EXTENSION,
	PIXL_WORKER_SERVING,
	PIXL_WORKER_STOPPING,
	/* on a hot standby (replica_ship.c) */
	PIXL_WORKER_SHIPPING,
	PIXL_WORKER_WAITING_FOR_PRIMARY,
	PIXL_WORKER_WAITING_FOR_REPLAY,
	PIXL_WORKER_NO_NODE_ID
} PixlWorkerState;

extern void pixl_usage_stats_shmem_request(void);
extern void pixl_usage_stats_shmem_startup(void);

extern void pixl_usage_stats_add(int idx, PixlUsageCounter counter, int64 n);

/* 0 until its worker looked, else PIXL_SCHEMA_1_0 or PIXL_SCHEMA_1_1. */
extern void pixl_usage_stats_set_served(int idx, int schema_version);
extern void pixl_usage_stats_set_state(int idx, PixlWorkerState state);
extern PixlWorkerState pixl_usage_stats_get_state(int idx);
extern const char *pixl_worker_state_name(PixlWorkerState state);

/* The worker's outcomes. */
extern void pixl_usage_stats_count_flushed(int idx, int64 events,
										   int64 responses);
extern void pixl_usage_stats_count_folded(int idx, int64 counts);
extern void pixl_usage_stats_set_spooled(int idx, TimestampTz since);
extern void pixl_usage_stats_count_dead(int idx, int64 n, const char *error);

/* A snapshot of one database's counters (pixl_stats). */
typedef struct PixlUsageStats
{
	const char *dbname;			/* NULL: databases without a ring */
	PixlWorkerState state;
	int64		queued;
	int64		flushed;
	int64		dropped;		/* raw rows not kept: ring full, no worker */
	int64		sampled_out;	/* raw rows of 429s not sampled */
	int64		responses_applied;
	int64		responses_ignored;
	int64		counts_folded;	/* verifications counted into the rollups */
	int64		counts_lost;	/* verifications not counted (table full, no
								 * worker) */
	int64		dead_letters;
	TimestampTz oldest_queued;	/* 0 when empty */
	TimestampTz last_flush;		/* 0 when never */
	TimestampTz spooled_since;	/* a standby's unacknowledged batch; 0: none */
	TimestampTz last_error_at;	/* 0 when never */
	char		last_error[256];
} PixlUsageStats;

/* idx in 0..count: count is the row of databases without a ring. */
extern void pixl_usage_stats_get(int idx, PixlUsageStats *stats);

#endif							/* PIXL_USAGE_STATS_H */
