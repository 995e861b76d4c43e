/*-------------------------------------------------------------------------
 *
 * usage_route.h
 *		The request path's way into the usage pipeline.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_ROUTE_H
#define PIXL_USAGE_ROUTE_H

#include "postgres.h"

#include "usage_event.h"

/*
 * Counts one verification of the current database and queues its raw row
 * when it can.  Never waits, never writes a table.
 */
extern void pixl_usage_record(const PixlUsageEvent *event);

/* Queues a response report of the current database (pixl_log_response). */
extern void pixl_usage_record_response(const PixlUsageResponse *response);

/* Counts a response that had nothing to apply to (unkept raw row). */
extern void pixl_usage_count_response_ignored(void);

#endif							/* PIXL_USAGE_ROUTE_H */
