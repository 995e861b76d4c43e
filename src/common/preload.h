/*-------------------------------------------------------------------------
 *
 * preload.h
 *		Was the library preloaded, and did the server last stop cleanly?
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_PRELOAD_H
#define PIXL_PRELOAD_H

#include "postgres.h"

/* _PG_init, last, when it ran from shared_preload_libraries. */
extern void pixl_preload_done(void);

/*
 * Every SQL-callable C function starts with this: without preloading there
 * is no shared memory and no worker, and we say so instead of misbehaving.
 */
extern void pixl_require_preload(void);

/* Did the server last stop cleanly (pg_control)?  The postmaster only. */
extern bool pixl_last_shutdown_was_clean(void);

#endif							/* PIXL_PRELOAD_H */
