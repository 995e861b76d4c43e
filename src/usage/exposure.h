/*-------------------------------------------------------------------------
 *
 * exposure.h
 *		Credentials that came over plain HTTP: this node's marks of the
 *		tokens whose revocation is on its way to the tables, the cap on
 *		exposures per minute, and their counters (pixl_transport_stats).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_EXPOSURE_H
#define PIXL_EXPOSURE_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "usage/usage_event.h"

extern void pixl_exposure_init(void);
extern void pixl_exposure_shmem_request(void);
extern void pixl_exposure_shmem_startup(void);

/*
 * Is the token marked for revocation on this node (handed to the worker,
 * not yet seen revoked)?  One atomic read while nothing is marked.
 */
extern bool pixl_exposure_marked(Oid dbid, const char *token_id);

/*
 * A known, unrevoked token came over plain HTTP: what to hand the worker.
 * store_key: its store's hashed key (the rate limiter's); notify: the
 * store's setting asks for a notification only.  NONE when the token is
 * already on its way (marked by an earlier request) or when the minute's
 * cap (pixltoken.insecure_revocations_per_minute, or the store's quarter
 * of it) is reached; else the action, marked until the worker has written
 * it.
 */
extern PixlExposureAction pixl_exposure_admit(Oid dbid, const char *token_id,
											  uint64 store_key, bool notify,
											  TimestampTz now);

/* A record loaded from the queue file at startup: its mark again. */
extern void pixl_exposure_restore(const PixlUsageRecord *rec);

/* The hand-over failed (the usage record was not queued). */
extern void pixl_exposure_unqueued(Oid dbid, const char *token_id);

/*
 * The marks of the exposures among these records, once their transaction
 * committed (the worker), or of one token seen revoked (a verification).
 */
extern void pixl_exposure_written(const PixlUsageRecord *recs, int n);
extern void pixl_exposure_clear(Oid dbid, const char *token_id);

/* Every 403 insecure_transport, whatever the token. */
extern void pixl_exposure_count_rejection(void);

#endif							/* PIXL_EXPOSURE_H */
