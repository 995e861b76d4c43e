/*-------------------------------------------------------------------------
 *
 * pixltoken.h
 *		Declarations shared by the modules of the pixltoken extension.
 *
 * One request's way through the extension, and the file that owns each step:
 *
 *	token_format.c	format and checksum check, generation, SHA-256 hash
 *	scopes.c		scope names <-> bits; the scope check is one AND
 *	standby.c		on a hot standby: refuse to vouch past the staleness bound
 *	token_cache.c	per-backend cache of token rows, loaded by index probes
 *	token_inval.c	per-token invalidation of those caches at commit
 *	rate_limit.c	the rolling one-minute limit, in shared memory
 *	verify.c		pixl_verify_token() and pixl_verify_token_http()
 *	http_answer.c	the HTTP headers and problem body of a verification
 *	verify_context.c pixl_current_token() / pixl_current_store()
 *	request_id.c	request ids and their unforgeable text form
 *	usage_route.c	the request's way into usage: count, sample, queue
 *	usage_aggregate.c exact usage counts in shared memory
 *	latency.c		response-time histograms (pixl_latency)
 *	usage_ring.c	the shared-memory rings of raw usage rows
 *	usage_stats.c	per-database usage counters, worker states (pixl_stats)
 *	usage_dumpfile.c the rings' file across a clean restart
 *
 * The worker's way, and the rest:
 *
 *	usage_worker.c	the background worker that writes rows and counts
 *	usage_store.c	what the worker writes, the way COPY does
 *	extension.c the extension's catalog entries; pinned search_path
 *	usage_sql.c		pixl_log_response(s) and pixl_stats()
 *	management.c	C helpers for the SQL token-management functions
 *	store_access.c	who is asking, for store-scoped administration
 *	secret_guard.c	secrets kept out of the server log
 *	lifecycle.c		settings of the lifecycle reminders
 *	pixltoken.c		_PG_init: delegates to each module
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
/* security: PX040-PX059 (SQL raises all but PX043 and PX047 itself) */
#define ERRCODE_PIXL_NOT_YOUR_STORE			MAKE_SQLSTATE('P','X','0','4','0')
#define ERRCODE_PIXL_STORE_TOKEN_CAP		MAKE_SQLSTATE('P','X','0','4','1')
#define ERRCODE_PIXL_NAME_CONTROL_CHARS		MAKE_SQLSTATE('P','X','0','4','2')
#define ERRCODE_PIXL_SCOPE_ARRAY_SHAPE		MAKE_SQLSTATE('P','X','0','4','3')
#define ERRCODE_PIXL_STORE_ID_ALPHABET		MAKE_SQLSTATE('P','X','0','4','4')
#define ERRCODE_PIXL_SECRET_MISPLACED		MAKE_SQLSTATE('P','X','0','4','5')
#define ERRCODE_PIXL_UNKNOWN_ROLE			MAKE_SQLSTATE('P','X','0','4','6')
#define ERRCODE_PIXL_NO_CALLER_TICKET		MAKE_SQLSTATE('P','X','0','4','7')
/* pixl_latency histograms (latency.c): PX048, PX049, PX052 */
#define ERRCODE_PIXL_INVALID_LATENCY		MAKE_SQLSTATE('P','X','0','4','8')
#define ERRCODE_PIXL_LATENCY_OUT_OF_RANGE	MAKE_SQLSTATE('P','X','0','4','9')
/* PX050: token metadata nested too deep (20_tokens.sql) */
#define ERRCODE_PIXL_INVALID_RAISE			MAKE_SQLSTATE('P','X','0','5','1')
#define ERRCODE_PIXL_INVALID_QUANTILE		MAKE_SQLSTATE('P','X','0','5','2')
/* the usage pipeline: PX060-PX069 */
#define ERRCODE_PIXL_RESPONSE_TIME_TOO_LARGE	MAKE_SQLSTATE('P','X','0','6','0')
#define ERRCODE_PIXL_RESPONSE_ARRAYS		MAKE_SQLSTATE('P','X','0','6','1')
#define ERRCODE_PIXL_RETENTION_BELOW_SETTING	MAKE_SQLSTATE('P','X','0','6','2')
/* a usage partition or its index dropped outside maintenance (30_usage.sql) */
#define ERRCODE_PIXL_USAGE_PARTITION_GUARD	MAKE_SQLSTATE('P','X','0','6','3')
#define ERRCODE_PIXL_INVALID_USAGE_BATCH	MAKE_SQLSTATE('P','X','0','6','4')
#define ERRCODE_PIXL_NODE_ID_TAKEN			MAKE_SQLSTATE('P','X','0','6','5')
#define ERRCODE_PIXL_SHIP_SEQUENCE_GAP		MAKE_SQLSTATE('P','X','0','6','6')
#define ERRCODE_PIXL_RESPONSE_OTHER_NODE	MAKE_SQLSTATE('P','X','0','6','7')
/* a second report of a request, or one whose pending entry is gone */
#define ERRCODE_PIXL_RESPONSE_REPORTED		MAKE_SQLSTATE('P','X','0','6','8')
/* verify: PX070-PX089 (SQL raises all but PX078 and PX081 itself) */
#define ERRCODE_PIXL_INVALID_LEAKED_SECRET	MAKE_SQLSTATE('P','X','0','7','8')
/* a 1.1 verification without a scope: pass one, or '*' for any */
#define ERRCODE_PIXL_SCOPE_REQUIRED			MAKE_SQLSTATE('P','X','0','8','1')

/* GUCs defined in pixltoken.c (the others: in their modules' *_init()) */
extern int	pixl_max_tracked_tokens;	/* pixltoken.max_tracked_tokens */
extern int	pixl_token_cache_size;	/* pixltoken.token_cache_size */

/* True once _PG_init ran from shared_preload_libraries. */
extern bool pixl_preloaded;

/*
 * Every SQL-callable C function starts with this: without preloading there
 * is no shared memory and no worker, and we say so instead of misbehaving.
 */
extern void pixl_require_preload(void);

/* Did the server last stop cleanly (pg_control)?  The postmaster only. */
extern bool pixl_last_shutdown_was_clean(void);

#endif							/* PIXLTOKEN_H */
