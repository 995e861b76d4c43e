/*-------------------------------------------------------------------------
 *
 * http_answer.h
 *		The HTTP form of a verification: WWW-Authenticate, RateLimit-Policy,
 *		RateLimit, Retry-After and an RFC 9457 problem body.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_HTTP_ANSWER_H
#define PIXL_HTTP_ANSWER_H

#include "postgres.h"
#include "datatype/timestamp.h"

typedef struct PixlHttpFacts
{
	int			status;
	const char *reason;
	const char *scope;			/* the scope asked for, or NULL */
	bool		disabled_inactive;	/* a 401 disabled for inactivity */
	bool		charged;		/* went through the rate limit */
	int			rate_limit;		/* effective limit, if charged */
	int			remaining;		/* if charged */
	TimestampTz reset_at;		/* if charged */
	int			retry_after_ms; /* on 429 */
	int			retry_after_s;	/* on 429: the same, uncapped, in seconds */
	TimestampTz now;			/* the database clock at the verification */
	bool		quota;			/* a period allowance applies (if charged) */
	int64		quota_allowance;	/* this node's share of the binding one */
	int64		quota_remaining;
	TimestampTz quota_period_start;
	TimestampTz quota_period_end;
	int			quota_period_left_s;	/* seconds to its end, rounded up */
	bool		quota_exceeded; /* the 429 is the allowance's */
	bool		quota_table_full;	/* ... because no counter could be made */
} PixlHttpFacts;

#define PIXL_HTTP_NCOLS 5

/* Settings pixltoken.http_realm and pixltoken.problem_base_uri. */
extern void pixl_http_init(void);

/*
 * www_authenticate, ratelimit_policy, ratelimit, retry_after (text) and
 * problem (jsonb), NULL where the header does not apply.
 */
extern void pixl_http_answer(const PixlHttpFacts *facts, Datum *values,
							 bool *nulls);

#endif							/* PIXL_HTTP_ANSWER_H */
