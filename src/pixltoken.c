/*-------------------------------------------------------------------------
 *
 * pixltoken.c
 *		Module entry point: _PG_init and the shared-memory hooks.
 *
 * _PG_init only delegates: each module defines its own settings in its
 * *_init() function, and each module that owns shared state exposes a
 * *_shmem_request() and a *_shmem_startup() function and documents its own
 * locking protocol at the top of its file.  This file calls every module;
 * no module calls it.
 *
 * The source tree, in floors: a file uses only files of its own directory
 * or of a directory below it (tools/src_graph.py --check keeps it so: no
 * circle, and verify/ and writer/ never use each other).
 *
 * common/ - what every other part uses
 *	errcodes.h		the registry of every PX SQLSTATE, C's and SQL's
 *	preload.c		shared_preload_libraries required; did the server stop cleanly
 *	node.c			this node among a primary and its standbys: node id (its
 *					bits in every request id) and share of every rate limit
 *	request_id.c	request ids and their unforgeable text form; the keyed hash
 *	token_format.c	format and checksum check, generation, SHA-256 hash
 *	scopes.c		scope names <-> bits; the scope check is one AND
 *	secret_guard.c	secrets kept out of the server log
 *	subtransaction.c running a piece of work in a subtransaction
 *	extension.c		the extension's catalog entries; pinned search_path;
 *					arrays for its SQL functions
 *
 * usage/ - what a request leaves in shared memory
 *	usage_route.c	the request's way into usage: count, sample, queue
 *	usage_event.h	the usage record of one verification or response
 *	usage_ring.c	the shared-memory rings of raw usage rows
 *	usage_aggregate.c exact usage counts in shared memory
 *	latency.c		response-time histograms (pixl_latency)
 *	usage_pending.c	verifications waiting for their response report
 *	usage_stats.c	per-database usage counters, worker states (pixl_stats)
 *	usage_dumpfile.c the rings' file across a clean restart
 *	exposure.c		credentials over plain HTTP: marks until revoked, the cap
 *
 * verify/ - the request path (never waits on, writes or locks a table)
 *	verify.c		pixl_verify_token() and pixl_verify_token_http()
 *	token_cache.c	per-backend cache of token rows, loaded by index probes
 *	token_inval.c	per-token invalidation of those caches at commit
 *	rate_limit.c	the rolling one-minute limit, in shared memory
 *	quota.c		the period allowances, checked with the minute window
 *	standby.c		on a hot standby: refuse to vouch past the staleness bound
 *	http_answer.c	the HTTP headers and problem body of a verification
 *	verify_context.c pixl_current_token() / pixl_current_store()
 *
 * writer/ - the background worker's way into the tables
 *	usage_worker.c	the background worker that writes rows and counts
 *	usage_store.c	what the worker writes, the way COPY does
 *	usage_fold.c	shared-memory counts folded into the rollups
 *	usage_recent.c	the recent calls of each token
 *	and the replica path, a standby's usage on its way to the primary:
 *	replica_ship.c	a standby's worker ships batches, spooled, exactly once
 *	replica_batch.c	the batch format, its checks and tally
 *	replica_ingest.c the primary's side: pixl_ingest_usage()
 *
 * admin/ - C helpers of the SQL layer
 *	management.c	C helpers for the SQL token-management functions
 *	store_access.c	who is asking, for store-scoped administration
 *	usage_sql.c		pixl_log_response(s) and pixl_stats()
 *	usage_guard.c	the usage partitions' indexes guarded from DROP INDEX
 *	lifecycle.c		settings of the lifecycle reminders
 *	events.c		settings of the events' outbox; the webhook signature
 *
 * pixltoken.c		_PG_init: delegates to each module
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "admin/events.h"
#include "admin/lifecycle.h"
#include "common/node.h"
#include "common/preload.h"
#include "common/replay_view.h"
#include "common/request_id.h"
#include "common/secret_guard.h"
#include "common/token_format.h"
#include "usage/exposure.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_dumpfile.h"
#include "usage/usage_held.h"
#include "usage/usage_pending.h"
#include "usage/usage_ring.h"
#include "usage/usage_stats.h"
#include "verify/http_answer.h"
#include "verify/quota.h"
#include "verify/rate_limit.h"
#include "verify/standby.h"
#include "verify/token_cache.h"
#include "verify/token_inval.h"
#include "writer/replica_ship.h"
#include "writer/usage_recent.h"
#include "writer/usage_worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void pixl_shmem_request(void);
static void pixl_shmem_startup(void);

void
_PG_init(void)
{
	/* no secret in the server log, preloaded or not (secret_guard.c) */
	pixl_secret_guard_init();

	/*
	 * Without shared_preload_libraries there is no shared memory and no
	 * worker: stay quiet here, and let every SQL entry point say what to do.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	pixl_rate_limit_init();
	pixl_quota_init();
	pixl_token_cache_init();
	pixl_node_init();
	pixl_usage_ring_init();
	pixl_usage_aggregate_init();
	pixl_usage_pending_init();
	pixl_exposure_init();
	pixl_usage_recent_init();
	pixl_usage_worker_init();
	pixl_standby_init();
	pixl_replica_ship_init();
	MarkGUCPrefixReserved("pixltoken");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pixl_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pixl_shmem_startup;

	pixl_usage_worker_register();
	pixl_token_inval_init();
	pixl_http_init();
	pixl_lifecycle_init();
	pixl_events_init();
	/* SHA-256 set up once, in the postmaster: backends inherit it */
	pixl_hash_preload();

	pixl_preload_done();
}

static void
pixl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	/* every preloaded library is in by now */
	pixl_secret_guard_check_order();

	pixl_rate_limit_shmem_request();
	pixl_quota_shmem_request();
	pixl_request_id_shmem_request();
	pixl_replay_view_shmem_request();
	pixl_usage_ring_shmem_request();
	pixl_usage_stats_shmem_request();
	pixl_usage_aggregate_shmem_request();
	pixl_usage_pending_shmem_request();
	pixl_exposure_shmem_request();
}

static void
pixl_shmem_startup(void)
{
	bool		rings_created;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pixl_rate_limit_shmem_startup();
	pixl_quota_shmem_startup();
	pixl_request_id_shmem_startup();
	pixl_replay_view_shmem_startup();
	rings_created = pixl_usage_ring_shmem_startup();
	pixl_usage_stats_shmem_startup();
	/* before the queue file, whose records bring their marks back */
	pixl_exposure_shmem_startup();
	pixl_usage_dumpfile_shmem_startup(rings_created);
	pixl_usage_aggregate_shmem_startup();
	pixl_usage_held_shmem_startup();
	pixl_usage_pending_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}
