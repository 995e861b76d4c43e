/*-------------------------------------------------------------------------
 *
 * rate_limit.h
 *		The rolling one-minute rate limit, kept in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_RATE_LIMIT_H
#define PIXL_RATE_LIMIT_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "common/token_format.h"
#include "verify/quota.h"

/*
 * A token is tracked per database: restored copies never share counters.
 * Fill it with pixl_rate_key_init(), which hashes it under the cluster's
 * secret key; the token cache does that once per token.  slot_hint is a
 * backend-local link to the entry, kept up to date by
 * pixl_rate_limit_check() (which is why it takes the key non-const) and
 * only ever trusted after comparing the slot's key.
 */
typedef struct PixlRateKey
{
	uint32		hash;			/* keyed hash of (dbid, token_id) */
	Oid			dbid;
	uint64		store_key;		/* keyed hash of (dbid, store id), never 0 */
	char		token_id[PIXL_TOKEN_ID_LEN];
	uint32		slot_hint;		/* where the entry was last found in its
								 * partition; PG_UINT32_MAX: nowhere yet */
} PixlRateKey;

typedef enum PixlRateAction
{
	PIXL_RATE_ADMIT,			/* a request that passed every other check */
	PIXL_RATE_CHARGE			/* a 403: consumes quota if any is left */
} PixlRateAction;

typedef struct PixlRateDecision
{
	int			limit;			/* this node's quota of the token's limit */
	bool		accepted;		/* false: answer 429 */
	int			remaining;		/* requests left in the window after this one */
	TimestampTz reset_at;		/* when remaining next grows */
	int			retry_after_ms; /* on rejection: wait until accepted; else 0;
								 * at most PG_INT32_MAX (24.8 days) */
	int			retry_after_s;	/* the same wait in seconds, rounded up,
								 * never capped below a period's end */
	PixlQuotaDecision quota;	/* the period allowance, if the token has one */
} PixlRateDecision;

extern void pixl_rate_limit_init(void);	/* settings; from _PG_init */
extern void pixl_rate_limit_shmem_request(void);
extern void pixl_rate_limit_shmem_startup(void);

extern void pixl_rate_key_init(PixlRateKey *key, Oid dbid,
							   const char *token_id,
							   const char *store_id, int store_len);
extern void pixl_rate_limit_check(PixlRateKey *key, int limit,
								  TimestampTz now, PixlRateAction action,
								  int cost, const PixlQuotaKey *quota,
								  PixlRateDecision *decision);

/* The limiter's clock: now, moved by pixltoken.test_clock_offset. */
extern TimestampTz pixl_rate_limit_now(void);

/* For pixl_stats(). */
extern int64 pixl_rate_limit_tracked_tokens(void);
extern int64 pixl_rate_limit_table_full_rejections(void);

#endif							/* PIXL_RATE_LIMIT_H */
