/*-------------------------------------------------------------------------
 *
 * usage_pending.h
 *		Verifications waiting for their response report, so that every
 *		report lands exactly once in the aggregates of its key.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_PENDING_H
#define PIXL_USAGE_PENDING_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "usage/usage_aggregate.h"

/*
 * What a verification charged to a period allowance (verify/quota.c),
 * kept with its entry so that its report can give it back: the report
 * takes it with the entry, so at most one report ever sees it.
 */
typedef struct PixlQuotaCharge
{
	uint64		store_key;		/* 0: no store allowance */
	uint64		token_key;		/* 0: no allowance of the token's own */
	int32		period;			/* the period's number */
	int16		charged;		/* cost charged; 0: nothing */
	int16		counts;			/* the plan's counted classes */
	int16		billing_day;	/* the store's, 1..28: the period's anchor */
} PixlQuotaCharge;

/* A pending verification as the worker copies it. */
typedef struct PixlPendingItem
{
	int64		request_id;
	PixlAggKey	key;			/* what its verification was counted under */
	TimestampTz at;				/* verification time */
	int16		verify_status;
	int16		status;			/* a report's (late items) */
	double		response_ms;
} PixlPendingItem;

/* What a report found (pixl_usage_pending_claim). */
typedef enum PixlClaim
{
	PIXL_CLAIM_COUNTED,			/* counted (or handed to the worker) */
	PIXL_CLAIM_ABSENT,			/* no entry: maybe written out, see below */
	PIXL_CLAIM_TAKEN			/* already reported */
} PixlClaim;

extern void pixl_usage_pending_init(void);	/* GUCs, from _PG_init */
extern void pixl_usage_pending_shmem_request(void);
extern void pixl_usage_pending_shmem_startup(void);

/* How long an entry waits before the worker writes it out (ms). */
extern int	pixl_response_wait_ms;

/*
 * The request path: one entry for a counted verification.  False when the
 * table is full (the report of that request will be ignored).
 */
extern bool pixl_usage_pending_add(int64 request_id, const PixlAggKey *key,
								   TimestampTz at, int16 verify_status,
								   const PixlQuotaCharge *charge);

/*
 * A report: takes the entry of request_id and counts the response in the
 * aggregates; *charge (zeroed if none) is what its verification charged
 * to an allowance, handed out once, with *counted_under, the aggregate key
 * its verification was counted under (for pixl_usage_aggregate_refund).
 * With dry_run, only says what a report would find.
 */
extern PixlClaim pixl_usage_pending_claim(int64 request_id, int16 status,
										  double response_ms, bool dry_run,
										  PixlQuotaCharge *charge,
										  PixlAggKey *counted_under);

/*
 * A report of a request written out to pixl_usage_pending_responses (the
 * caller found its row): hands it to the worker, which applies it and
 * deletes the row in one transaction.  PIXL_CLAIM_TAKEN if another report
 * of it is already on its way.
 */
extern PixlClaim pixl_usage_pending_add_late(int64 request_id, int16 status,
											 double response_ms);

/*
 * The worker of dbid: marks up to max entries that waited longer than
 * pixltoken.response_wait (all waiting ones when the table is crowded) as
 * being written out and copies them into spill; copies up to maxlate late
 * reports into late.  After its transaction, pixl_usage_pending_done()
 * with whether it committed.
 */
extern void pixl_usage_pending_collect(Oid dbid, PixlPendingItem *spill, int *nspill,
									   int max, PixlPendingItem *late, int *nlate,
									   int maxlate);
extern void pixl_usage_pending_done(const PixlPendingItem *spill, int nspill,
									const PixlPendingItem *late, int nlate,
									bool committed);

/*
 * The worker, when it starts: entries of dbid left marked by a worker that
 * died mid-transaction are pending again (or counted, if reported).
 */
extern void pixl_usage_pending_recover(Oid dbid);

/*
 * Drops dbid's entries: all (the extension is gone), or (a standby, which
 * cannot write them out) those that waited longer than
 * pixltoken.response_wait.  Returns how many.
 */
extern int64 pixl_usage_pending_discard(Oid dbid, bool expired_only);

#endif							/* PIXL_USAGE_PENDING_H */
