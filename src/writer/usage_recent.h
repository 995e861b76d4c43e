/*-------------------------------------------------------------------------
 *
 * usage_recent.h
 *		The last calls of each token and status, kept by the worker and
 *		written to pixl_usage_recent (pixltoken.request_log = recent).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_RECENT_H
#define PIXL_USAGE_RECENT_H

#include "postgres.h"

#include "common/extension.h"
#include "usage/usage_event.h"

/* pixltoken.request_log */
typedef enum PixlRequestLog
{
	PIXL_REQUEST_LOG_RECENT,	/* the last calls per token and status */
	PIXL_REQUEST_LOG_ALL		/* every call, in pixl_usage_events */
} PixlRequestLog;

extern int	pixl_request_log;

/*
 * Does this process keep the recent calls of what it writes (the usage
 * worker with request_log = recent)?  Others (a primary ingesting a
 * standby's batch) write raw rows.
 */
extern bool pixl_usage_recent_keeps_calls(void);

#define PIXL_RECENT_CALLS	20	/* per token and final status */

extern void pixl_usage_recent_init(void);	/* GUC, from _PG_init */

/*
 * Takes the counted events and the responses of n records peeked from the
 * ring into the worker's buffer.  Idempotent: records peeked again after a
 * failed transaction are recognised by their request id.
 */
extern void pixl_usage_recent_add(const PixlUsageRecord *recs, int n);

/* Should the buffer be written out now (it is nearly full)? */
extern bool pixl_usage_recent_full(void);

/* Does the buffer hold calls? */
extern bool pixl_usage_recent_pending(void);

/*
 * Writes the buffered calls that are ready (answered, or older than the
 * grace a response gets) into schema's pixl_usage_recent, in the caller's
 * transaction (SPI, pinned search_path); after the commit the caller calls
 * pixl_usage_recent_written(), after an abort pixl_usage_recent_forget().
 */
extern void pixl_usage_recent_write(const PixlExtension *ext);
extern void pixl_usage_recent_written(void);
extern void pixl_usage_recent_forget(void);

#endif							/* PIXL_USAGE_RECENT_H */
