/*-------------------------------------------------------------------------
 *
 * pixltoken.h
 *		Declarations shared by the modules of the pixltoken extension.
 *
 * One request's way through the extension, and the file that owns each step:
 *
 *	token_format.c	format and checksum check, generation, SHA-256 hash
 *	scopes.c		scope names <-> bits; the scope check is one AND
 *	token_cache.c	per-backend cache of token rows, kept honest by
 *					transactional relcache invalidation
 *	rate_limit.c	the rolling one-minute limit, in shared memory
 *	usage_queue.c	request ids and the shared-memory queue of usage events
 *	usage_worker.c	the background worker that drains the queue into tables
 *	verify.c		pixl_verify_token() and pixl_log_response()
 *	management.c	C helpers for the SQL token-management functions
 *	pixltoken.c		_PG_init: GUCs, shared-memory hooks, worker registration
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXLTOKEN_H
#define PIXLTOKEN_H

#include "postgres.h"

/*
 * SQLSTATEs of pixltoken's own errors: class "PX".  They are listed, with
 * their meaning, in README.md; SQL code raises the same codes.
 */
#define ERRCODE_PIXL_UNKNOWN_SCOPE			MAKE_SQLSTATE('P','X','0','0','1')
#define ERRCODE_PIXL_DUPLICATE_SCOPE		MAKE_SQLSTATE('P','X','0','0','2')
#define ERRCODE_PIXL_EMPTY_SCOPES			MAKE_SQLSTATE('P','X','0','0','3')
#define ERRCODE_PIXL_UNKNOWN_MODE			MAKE_SQLSTATE('P','X','0','0','8')
#define ERRCODE_PIXL_UNKNOWN_PERIOD			MAKE_SQLSTATE('P','X','0','1','5')
#define ERRCODE_PIXL_INVALID_STATUS			MAKE_SQLSTATE('P','X','0','1','6')
#define ERRCODE_PIXL_INVALID_RESPONSE_TIME	MAKE_SQLSTATE('P','X','0','1','7')
#define ERRCODE_PIXL_INVALID_RETENTION		MAKE_SQLSTATE('P','X','0','3','0')
#define ERRCODE_PIXL_INVALID_USAGE_ARG		MAKE_SQLSTATE('P','X','0','3','1')
#define ERRCODE_PIXL_INVALID_REQUEST_ID		MAKE_SQLSTATE('P','X','0','3','2')
/* verify (PX070-PX089); the others are raised by SQL (see README.md) */
#define ERRCODE_PIXL_INVALID_LEAKED_SECRET	MAKE_SQLSTATE('P','X','0','7','8')

/* GUCs (pixltoken.c) */
extern char *pixl_database_list;	/* pixltoken.database */
extern int	pixl_max_tracked_tokens;	/* pixltoken.max_tracked_tokens */
extern int	pixl_token_cache_size;	/* pixltoken.token_cache_size */
extern int	pixl_queue_size;		/* pixltoken.queue_size (events) */
extern int	pixl_flush_interval_ms; /* pixltoken.flush_interval */
extern int	pixl_usage_retention_min;	/* pixltoken.usage_retention */

/* True once _PG_init ran from shared_preload_libraries. */
extern bool pixl_preloaded;

/*
 * Every SQL-callable C function starts with this: without preloading there
 * is no shared memory and no worker, and we say so instead of misbehaving.
 */
extern void pixl_require_preload(void);

#endif							/* PIXLTOKEN_H */
