/*-------------------------------------------------------------------------
 *
 * usage_event.h
 *		What the request path hands the usage pipeline: events and
 *		response reports, as fixed-size records.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_EVENT_H
#define PIXL_USAGE_EVENT_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/inet.h"

#include "common/token_format.h"

#define PIXL_METHOD_MAX		16	/* bytes kept of the method, incl. '\0' */
#define PIXL_ENDPOINT_MAX	256 /* bytes kept of the endpoint, incl. '\0' */
#define PIXL_MAX_COST		100 /* the most one call may weigh */

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
	bool		previous_secret;	/* verified with the previous secret of a
									 * rotation's grace period */
	bool		counted;		/* set by the pipeline: counted in
								 * usage_aggregate.c, the raw row must not
								 * add to the rollups */
	char		token_id[PIXL_TOKEN_ID_LEN];
	char		method[PIXL_METHOD_MAX];	/* '\0'-terminated, "" if none */
	char		endpoint[PIXL_ENDPOINT_MAX];	/* '\0'-terminated, "" if none */
	inet_struct ip;
	/* last, so that 1.1's layout is a prefix (PIXL_USAGE_RECORD_SIZE_1_1) */
	int32		cost;			/* the call's weight (1 unless given) */
	int32		charged;		/* of it, charged to the period allowance */
	int8		exposure;		/* PixlExposureAction: a credential that came
								 * over plain HTTP, for the worker to revoke
								 * or notify (usage/exposure.c) */
} PixlUsageEvent;

/* What the worker does with the token of an event (exposure). */
typedef enum PixlExposureAction
{
	PIXL_EXPOSURE_NONE = 0,
	PIXL_EXPOSURE_REVOKE = 1,
	PIXL_EXPOSURE_NOTIFY = 2
} PixlExposureAction;

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

/*
 * The size of a record as 1.1 made it (dump file version 2, replica batch
 * version 2): the same layout without cost, charged and exposure, which an
 * event of 1.1 had none of (every call weighed 1, none was charged).
 */
#define PIXL_USAGE_RECORD_SIZE_1_1 \
	(offsetof(PixlUsageRecord, u) + offsetof(PixlUsageEvent, cost))

static inline void
pixl_usage_record_from_1_1(const char *old, PixlUsageRecord *rec)
{
	memset(rec, 0, sizeof(*rec));
	memcpy(rec, old, PIXL_USAGE_RECORD_SIZE_1_1);
	if (rec->kind == PIXL_RECORD_EVENT)
	{
		rec->u.event.cost = 1;
		rec->u.event.charged = 0;
	}
}

/*
 * How a served database's schema takes usage: 1.0 (raw rows carry the
 * counts, nothing sampled) or 1.1 (counts from usage_aggregate.c).
 */
#define PIXL_SCHEMA_1_0		10
#define PIXL_SCHEMA_1_1		11

/*
 * The largest response time pixl_log_response accepts (ms): a day.  Sums
 * of such values cannot overflow a double in any rollup.
 */
#define PIXL_MAX_RESPONSE_MS	86400000.0

#endif							/* PIXL_USAGE_EVENT_H */
