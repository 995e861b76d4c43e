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

#endif							/* PIXL_USAGE_WORKER_H */
