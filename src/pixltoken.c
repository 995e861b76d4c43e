/*-------------------------------------------------------------------------
 *
 * pixltoken.c
 *		Module entry point: GUCs, shared-memory hooks, worker registration.
 *
 * _PG_init only delegates.  Each module that owns shared state exposes a
 * *_shmem_request() and a *_shmem_startup() function and documents its own
 * locking protocol at the top of its file.
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

#include "pixltoken.h"
#include "rate_limit.h"
#include "usage_queue.h"
#include "usage_worker.h"
#include "verify.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *pixl_database_list = NULL;
int			pixl_max_tracked_tokens = 10000;
int			pixl_token_cache_size = 16384;
int			pixl_queue_size = 16384;
int			pixl_flush_interval_ms = 1000;
int			pixl_usage_retention_min = 90 * 24 * 60;

bool		pixl_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void pixl_shmem_request(void);
static void pixl_shmem_startup(void);

void
pixl_require_preload(void)
{
	if (!pixl_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pixltoken must be loaded via shared_preload_libraries"),
				 errhint("Add pixltoken to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static void
define_gucs(void)
{
	DefineCustomStringVariable("pixltoken.database",
							   "Database, or comma-separated databases, whose usage tables the worker serves.",
							   "One background worker is started per database at server start.",
							   &pixl_database_list,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.max_tracked_tokens",
							"Tokens whose rate-limit window is kept in shared memory.",
							"Tokens idle for over a minute are evicted to make room.",
							&pixl_max_tracked_tokens,
							10000, 100, 10000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.token_cache_size",
							"Tokens each backend keeps in its verification cache.",
							"About 300 bytes each; past this, one entry is evicted per new token.",
							&pixl_token_cache_size,
							16384, 16, 10000000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.queue_size",
							"Usage events the shared-memory queue holds per served database.",
							NULL,
							&pixl_queue_size,
							16384, 64, 4194304,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.flush_interval",
							"Longest time a usage event waits in the queue before the worker writes it.",
							"At most this much usage is lost if the whole server crashes.",
							&pixl_flush_interval_ms,
							1000, 10, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.usage_retention",
							"How long raw usage events are kept; older daily partitions are dropped.",
							"Hourly rollups are kept for ever.",
							&pixl_usage_retention_min,
							90 * 24 * 60, 24 * 60, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("pixltoken");
}

void
_PG_init(void)
{
	/*
	 * Without shared_preload_libraries there is no shared memory and no
	 * worker: stay quiet here, and let every SQL entry point say what to do.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	define_gucs();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pixl_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pixl_shmem_startup;

	pixl_usage_worker_register();
	pixl_verify_module_init();

	pixl_preloaded = true;
}

static void
pixl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	pixl_rate_limit_shmem_request();
	pixl_usage_queue_shmem_request();
}

static void
pixl_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pixl_rate_limit_shmem_startup();
	pixl_usage_queue_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}
