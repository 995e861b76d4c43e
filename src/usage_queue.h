/*-------------------------------------------------------------------------
 *
 * usage_queue.h
 *		Request ids and the shared-memory queue of usage events.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_QUEUE_H
#define PIXL_USAGE_QUEUE_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/inet.h"

#include "token_format.h"

#define PIXL_METHOD_MAX		16	/* bytes kept of the method, incl. '\0' */
#define PIXL_ENDPOINT_MAX	256 /* bytes kept of the endpoint, incl. '\0' */

/*
 * One verification of an existing token (status 200, 403 or 429).  Fixed
 * size, so that it can sit in a slot of the shared ring; longer methods and
 * endpoints are cut at a character boundary (see README).
 */
typedef struct PixlUsageEvent
{
	int64		request_id;
	TimestampTz at;				/* moment of verification (clock time) */
	Oid			dbid;
	int16		status;			/* the verification's status */
	bool		has_ip;
	bool		previous_secret;	/* the previous secret of a rotation's
									 * grace period was presented */
	char		token_id[PIXL_TOKEN_ID_LEN];
	char		method[PIXL_METHOD_MAX];	/* '\0'-terminated, "" if none */
	char		endpoint[PIXL_ENDPOINT_MAX];	/* '\0'-terminated, "" if none */
	inet_struct ip;
} PixlUsageEvent;

/* The database names of pixltoken.database, deduplicated. */
extern List *pixl_usage_database_names(void);

extern void pixl_usage_queue_shmem_request(void);
extern void pixl_usage_queue_shmem_startup(void);

/*
 * A request id: unique for the cluster's lifetime, increasing, and carrying
 * the verification time; *at receives that time.
 */
extern int64 pixl_next_request_id(TimestampTz *at);

/* Queues one verification event of the current database. */
extern void pixl_usage_record(const PixlUsageEvent *event);

/*
 * A response report of pixl_log_response(): the final status and response
 * time of an earlier request, applied to the usage row of request_id.
 */
typedef struct PixlUsageResponse
{
	int64		request_id;
	TimestampTz at;				/* request_id / 16: the row's partition key */
	Oid			dbid;
	int16		status;
	double		response_ms;
} PixlUsageResponse;

typedef enum PixlRecordKind
{
	PIXL_RECORD_EVENT = 1,
	PIXL_RECORD_RESPONSE = 2
} PixlRecordKind;

/* What a slot of the ring holds; responses share the ring with events. */
typedef struct PixlUsageRecord
{
	int32		kind;			/* PixlRecordKind */
	union
	{
		PixlUsageEvent event;
		PixlUsageResponse response;
	}			u;
} PixlUsageRecord;

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

/* Queues a response report of the current database (pixl_log_response). */
extern void pixl_usage_record_response(const PixlUsageResponse *response);

/* The consumer side, used by the worker of queue idx (usage_worker.c). */
extern int	pixl_usage_queue_count(void);
extern const char *pixl_usage_queue_dbname(int idx);
extern void pixl_usage_queue_attach(int idx, Oid dboid);
extern void pixl_usage_queue_detach(int idx);
extern void pixl_usage_queue_set_served(int idx, bool served);
extern void pixl_usage_queue_set_state(int idx, PixlWorkerState state);
extern PixlWorkerState pixl_usage_queue_get_state(int idx);
extern int	pixl_usage_queue_peek(int idx, PixlUsageRecord *buf, int max);
extern void pixl_usage_queue_consume(int idx, int n, int64 events,
									 int64 responses, bool flushed);
extern int64 pixl_usage_queue_length(int idx);

/* A snapshot of one queue's counters (pixl_stats). */
typedef struct PixlQueueStats
{
	const char *dbname;			/* NULL: databases without a queue */
	PixlWorkerState state;
	int64		queued;
	int64		flushed;
	int64		written_through;
	int64		waited;
	int64		dropped;
	int64		responses_applied;
	TimestampTz oldest_queued;	/* 0 when empty */
	TimestampTz last_flush;		/* 0 when never */
} PixlQueueStats;

/* idx in 0..count: count is the row of databases without a queue. */
extern void pixl_usage_queue_stats(int idx, PixlQueueStats *stats);

/* Counts records written through by the caller or dropped (usage_store.c). */
extern void pixl_usage_count_written_through(Oid dbid, int64 events,
											 int64 responses);
extern void pixl_usage_count_dropped(Oid dbid, int64 n);

/*
 * usage_store.c: the quoted schema (palloc'd) and owner of the extension in
 * the current database, or NULL when it is not installed.  Needs SPI.
 */
extern char *pixl_usage_extension(Oid *owner);

/*
 * usage_store.c: writes records into the usage tables of the current
 * database with SPI (the caller has a transaction and is SPI-connected).
 * Returns false, writing nothing, when the extension is not installed.
 */
extern bool pixl_usage_store(const PixlUsageRecord *recs, int n,
							 int64 *events, int64 *responses);

/* Writes records through from a backend, as the extension's owner. */
extern void pixl_usage_write_through(const PixlUsageRecord *recs, int n);

#endif							/* PIXL_USAGE_QUEUE_H */
