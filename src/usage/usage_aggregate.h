/*-------------------------------------------------------------------------
 *
 * usage_aggregate.h
 *		Exact usage counts in shared memory, folded into the rollups.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_AGGREGATE_H
#define PIXL_USAGE_AGGREGATE_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "common/scopes.h"
#include "usage/latency.h"
#include "usage/usage_event.h"

/* The key of a count: what one rollup row is keyed by, plus the database. */
typedef struct PixlAggKey
{
	Oid			dbid;
	TimestampTz hour;			/* UTC hour of the verifications */
	char		token_id[PIXL_TOKEN_ID_LEN];
	char		method[PIXL_METHOD_MAX];
	char		endpoint[PIXL_ENDPOINT_MAX];
} PixlAggKey;

/* A copy of one entry's counters, taken by the worker. */
typedef struct PixlAggSnapshot
{
	PixlAggKey	key;
	void	   *entry;			/* the shared entry (worker only) */
	int64		requests;
	int64		errors;			/* verification status >= 400 */
	int64		rate_limited;	/* verification status 429 */
	int64		previous_secret_uses;
	TimestampTz last_used;		/* 0: none */
	TimestampTz previous_secret_last;	/* 0: none */
	/* response reports of the key's verifications (usage_pending.c) */
	int64		responses;
	int64		response_errors_up; /* final >= 400, verification < 400 */
	int64		response_errors_down;	/* final < 400, verification >= 400 */
	int64		response_us_sum;	/* response times, microseconds */
	/* their histogram (latency.h); may count responses not in responses yet */
	uint32		latency[PIXL_LATENCY_BUCKETS];
	/* last, so that 1.1's layout is a prefix (PIXL_AGG_SNAPSHOT_SIZE_1_1) */
	int64		cost;			/* summed cost of the counted verifications */
	int64		charged;		/* cost charged to the allowance, minus
								 * refunds: may be negative (a refund of a
								 * call folded before) */
	/* last, so that the layout before it is a prefix (..._NO_SCOPES) */
	int32		scopes_used;	/* PixlScopeBits: the scopes the key's
								 * admitted calls required (a set, never
								 * subtracted) */
} PixlAggSnapshot;

/*
 * The size of a snapshot as 1.1 made it (aggregate file version 5, replica
 * batch version 2), without cost and charged: a call of 1.1 weighed 1 and
 * was never charged.
 */
#define PIXL_AGG_SNAPSHOT_SIZE_1_1	offsetof(PixlAggSnapshot, cost)

static inline void
pixl_agg_snapshot_from_1_1(const char *old, PixlAggSnapshot *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s, old, PIXL_AGG_SNAPSHOT_SIZE_1_1);
	s->cost = s->requests;
	s->charged = 0;
}

/*
 * The size of a snapshot before scopes were recorded (aggregate file
 * version 6, replica batch version 3): the same layout without
 * scopes_used, read as no scope used (the calls' scopes were not kept).
 */
#define PIXL_AGG_SNAPSHOT_SIZE_NO_SCOPES	offsetof(PixlAggSnapshot, scopes_used)

static inline void
pixl_agg_snapshot_from_no_scopes(const char *old, PixlAggSnapshot *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s, old, PIXL_AGG_SNAPSHOT_SIZE_NO_SCOPES);
}

extern void pixl_usage_aggregate_init(void);	/* GUCs, from _PG_init */
extern void pixl_usage_aggregate_shmem_request(void);
extern void pixl_usage_aggregate_shmem_startup(void);

/*
 * Counts one verification (the hot path: a shared lock and atomics; an
 * exclusive lock only for a key new this hour).  scopes_used: the scope
 * the call exercised (the bit of the scope it required, when it was
 * admitted with a 200; 0 otherwise), OR-ed into the entry.  store_key: the token's
 * store as the rate limiter keys it (never 0), whose share of the table a
 * new key takes.  Returns false when the count was lost (the table, or the
 * store's share and its "(other)" allowance, was full; the caller counts
 * it); else *used (if not NULL) is the key it was counted under.  link, if
 * not NULL, is the caller's link to the entry of its last count of this
 * token (NULL at first): used when it is still this count's entry, and
 * updated (usage_aggregate.c, "Links").
 */
extern bool pixl_usage_aggregate_add(const PixlUsageEvent *ev,
									 PixlScopeBits scopes_used,
									 uint64 store_key, void **link,
									 PixlAggKey *used);


/*
 * Adds one response report to the entry of key (made if missing, never
 * moved to "(other)": key is what the verification was counted under).
 * False when the table was full and the response was lost.
 */
extern bool pixl_usage_aggregate_add_response(const PixlAggKey *key,
											  int16 verify_status,
											  int16 status, double response_ms);

/*
 * A refund (a response report whose final status the plan does not count
 * gave the charge back to the allowance): lowers charged of the entry of
 * key, what the verification was counted under (pixl_usage_pending_claim
 * hands it out with the charge, once), by amount; the entry is made if
 * missing, and charged goes negative when the call was folded already, so
 * that the next fold lowers the rollup's.  False when the table was full
 * and the refund was lost from the rollups (the allowance has it back).
 */
extern bool pixl_usage_aggregate_refund(const PixlAggKey *key, int64 amount);

/*
 * Should the raw row of this rejected (429) verification be kept?  At most
 * one per token and second (lock-free; tokens sharing a slot share it).
 */
extern bool pixl_usage_aggregate_sample_429(const PixlUsageEvent *ev);

/*
 * The worker of database dbid: copies up to max entries with counts into
 * buf (palloc'd by the caller); after its transaction committed it
 * subtracts exactly what it copied (pixl_usage_aggregate_subtract), so
 * that counts added meanwhile stay, and a worker that dies before commit
 * loses nothing.  Only that worker removes entries of its database, so the
 * copied keys stay valid until subtracted.
 */
extern int	pixl_usage_aggregate_snapshot(Oid dbid, PixlAggSnapshot *buf, int max);
/* returns the verifications subtracted (for usage_held.c) */
extern int64 pixl_usage_aggregate_subtract(const PixlAggSnapshot *buf, int n);

/*
 * The verifications database dbid's counts hold; for the postmaster at
 * shared-memory initialisation, before any child runs (no lock).
 */
extern int64 pixl_usage_aggregate_requests(Oid dbid);

/*
 * Marks a copied entry as not written: its counts, all of them, stay in
 * shared memory when the batch is subtracted.
 */
extern void pixl_usage_aggregate_keep(PixlAggSnapshot *snap);

/* Charged to the allowance, of one entry (pixl_usage_aggregate_loaded). */
typedef struct PixlAggCharged
{
	TimestampTz hour;
	char		token_id[PIXL_TOKEN_ID_LEN];
	int64		charged;
} PixlAggCharged;

/*
 * The worker, before it seeds the allowance counters: what the entries of
 * dbid loaded from the clean shutdown's file had charged (the last run's
 * calls, in no counter and not folded yet; palloc'd array in *out; how
 * many).  Calls since the start are not in it: the counters hold them.
 * -1 when dbid was seeded already since this shared memory was made (a
 * worker restarted without a crash restart must not seed again: counters
 * made since would have the rollups added to the calls they hold).  Once
 * the seed is done, pixl_usage_aggregate_seeded(dbid) says so and forgets
 * the loaded charges.
 */
extern int	pixl_usage_aggregate_loaded(Oid dbid, PixlAggCharged **out);
extern void pixl_usage_aggregate_seeded(Oid dbid);

/* Removes the spent entries of dbid's past hours (the worker, now and then). */
extern void pixl_usage_aggregate_cleanup(Oid dbid);

/* Entries in use, and counts lost because the table was full. */
extern int64 pixl_usage_aggregate_entries(void);

#endif							/* PIXL_USAGE_AGGREGATE_H */
