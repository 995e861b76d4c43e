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

#include "common/scopes.h"
#include "usage/usage_event.h"
#include "usage/usage_pending.h"

/*
 * Counts one verification of the current database and queues its raw row
 * when it can.  Never waits, never writes a table.  schema_1_1: the caller
 * is a 1.1 entry point (the installed schema folds counts); store_key: the
 * token's store, as the rate limiter keys it (rate_limit.h), for the count
 * table's per-store share; agg_link: the token's link to its count entry,
 * or NULL (pixl_usage_aggregate_add); charge: what the verification
 * charged to a period allowance, kept for its report, or NULL;
 * scopes_used: the scope the call exercised (the bit of its required
 * scope when it was admitted, else 0), counted with it.  Returns
 * whether the raw record was queued (what carries an event's exposure to
 * the worker).  reportable: the caller hands the request id out, so a
 * response report may come (else no pending entry waits for one: the 403
 * of plain HTTP).
 */
extern bool pixl_usage_record(const PixlUsageEvent *event, bool schema_1_1,
							  const PixlQuotaCharge *charge,
							  PixlScopeBits scopes_used,
							  uint64 store_key, void **agg_link,
							  bool reportable);

/* Queues a response report of the current database (pixl_log_response). */
extern void pixl_usage_record_response(const PixlUsageResponse *response);

/* Counts a response that had nothing to apply to (unkept raw row). */
extern void pixl_usage_count_response_ignored(void);

/*
 * The method or endpoint of a usage event as an analytics key, in place:
 * an endpoint is cut at its first '?' or '#' (the path; the rest of the
 * buffer of size bytes is zeroed), and secret shapes left in either are
 * masked.  Before anything enters shared memory or a table.
 */
extern void pixl_usage_clean_key_text(char *buf, size_t size, bool endpoint);

#endif							/* PIXL_USAGE_ROUTE_H */
