/*-------------------------------------------------------------------------
 *
 * usage_worker.h
 *		The background worker that drains the usage queue into tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_WORKER_H
#define PIXL_USAGE_WORKER_H

#include "postgres.h"
#include "fmgr.h"

/* GUCs of the worker, from _PG_init. */
extern void pixl_usage_worker_init(void);

/* Registers one worker per database of pixltoken.database (from _PG_init). */
extern void pixl_usage_worker_register(void);

extern PGDLLEXPORT void pixl_usage_worker_main(Datum main_arg);

extern int	pixl_flush_interval_ms;	/* pixltoken.flush_interval */
extern int	pixl_usage_retention_min;	/* pixltoken.usage_retention */

#endif							/* PIXL_USAGE_WORKER_H */
