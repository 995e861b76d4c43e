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
	char		token_id[PIXL_TOKEN_ID_LEN];
	char		method[PIXL_METHOD_MAX];	/* '\0'-terminated, "" if none */
	char		endpoint[PIXL_ENDPOINT_MAX];	/* '\0'-terminated, "" if none */
	inet_struct ip;
} PixlUsageEvent;

extern void pixl_usage_queue_shmem_request(void);
extern void pixl_usage_queue_shmem_startup(void);

/*
 * A request id: unique for the cluster's lifetime, increasing, and carrying
 * the verification time; *at receives that time.
 */
extern int64 pixl_next_request_id(TimestampTz *at);

/* Queues one verification event of the current database. */
extern void pixl_usage_record(const PixlUsageEvent *event);

#endif							/* PIXL_USAGE_QUEUE_H */
