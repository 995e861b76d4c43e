/*-------------------------------------------------------------------------
 *
 * quota.h
 *		Period allowances (plan quotas) in shared memory, checked with the
 *		rate limiter's minute window.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_QUOTA_H
#define PIXL_QUOTA_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "common/token_format.h"

#define PIXL_COST_MAX		100 /* the largest cost of one call */
#define PIXL_QUOTA_MAX		INT64CONST(100000000000000) /* the tables' CHECK */

/* Which final status classes count against the allowance (pixl_plans). */
typedef enum PixlQuotaCounts
{
	PIXL_QUOTA_COUNTS_ALL = 0,
	PIXL_QUOTA_COUNTS_2XX,
	PIXL_QUOTA_COUNTS_2XX_3XX
} PixlQuotaCounts;

/*
 * A token's allowances, filled by the token cache at load; store_key is
 * the rate limiter's (PixlRateKey.store_key), token_key is 0 unless the
 * token has an allowance of its own.
 */
typedef struct PixlQuotaKey
{
	int64		store_allowance;	/* the plan's; 0: none */
	int64		token_allowance;	/* least(token's own, plan's); 0: none */
	uint64		store_key;
	uint64		token_key;
	int16		billing_day;	/* 1..28 */
	int16		counts;			/* PixlQuotaCounts */
} PixlQuotaKey;

/* What one check found (all zero when the token has no allowance). */
typedef struct PixlQuotaDecision
{
	bool		applies;		/* an allowance was checked */
	bool		exceeded;		/* false: admitted, or not checked */
	bool		table_full;		/* no counter could be made: fail closed */
	bool		binding_token;	/* the token's allowance is the tighter one */
	int64		allowance;		/* this node's share of the binding one */
	int64		remaining;		/* after this call, of the binding one */
	int32		period_no;		/* days from 2000-01-01 to the period start */
	TimestampTz period_start;
	TimestampTz period_end;
	int32		period_left_s;	/* seconds to period_end, rounded up */
	int16		charged;		/* cost charged to the allowance */
} PixlQuotaDecision;

/* Where the counters of one check are, between the steps below. */
typedef struct PixlQuotaCheck
{
	const PixlQuotaKey *key;
	void	   *store_counter;
	void	   *token_counter;
	int64		store_limit;	/* this node's share */
	int64		token_limit;
	uint64		period_no;
} PixlQuotaCheck;

extern void pixl_quota_init(void);
extern void pixl_quota_shmem_request(void);
extern void pixl_quota_shmem_startup(void);

extern uint64 pixl_quota_store_key(Oid dbid, const char *store_id,
								   int store_len);
extern void pixl_quota_key_init(PixlQuotaKey *key, Oid dbid,
								const char *token_id, uint64 store_key,
								int64 plan_quota, int64 token_quota,
								int billing_day, int counts);
extern bool pixl_quota_wanted(const PixlQuotaKey *key);

/* For rate_limit.c: the steps of a check (see quota.c's header). */
extern void pixl_quota_prepare(PixlQuotaCheck *check, const PixlQuotaKey *key,
							   TimestampTz now, PixlQuotaDecision *decision);
extern bool pixl_quota_charge(PixlQuotaCheck *check, int cost,
							  PixlQuotaDecision *decision);
extern void pixl_quota_peek(PixlQuotaCheck *check, int cost,
							PixlQuotaDecision *decision);

/* A refund of a charge, for a response report; false if not refunded. */
extern bool pixl_quota_refund(uint64 store_key, uint64 token_key,
							  int32 period_no, int billing_day, int cost,
							  TimestampTz now);
extern bool pixl_quota_status_counts(int counts, int status);

#endif							/* PIXL_QUOTA_H */
