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

#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "common/errcodes.h"
#include "verify/rate_limit.h"
#include "common/request_id.h"
#include "common/secret_guard.h"
#include "verify/standby.h"
#include "common/token_format.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_pending.h"
#include "writer/usage_recent.h"
#include "usage/usage_dumpfile.h"
#include "usage/usage_ring.h"
#include "writer/replica_ship.h"
#include "usage/usage_stats.h"
#include "writer/usage_worker.h"
#include "verify/verify.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

int			pixl_max_tracked_tokens = 10000;
int			pixl_token_cache_size = 16384;

bool		pixl_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void pixl_shmem_request(void);
static void pixl_shmem_startup(void);

/*
 * Did the server last stop cleanly?  pg_control says so: "shut down" (or
 * "shut down in recovery" on a standby); an immediate shutdown or a crash
 * leaves "in production" or "in archive recovery".  Asked by the postmaster
 * at its first shared-memory initialisation, before the startup process
 * writes pg_control, and remembered for later crash restarts: what was
 * saved on exit (usage queue and counts) is trusted only after a clean
 * stop, as PostgreSQL trusts its own statistics, because an immediate
 * shutdown kills the usage worker where it stands (perhaps between its
 * commit and taking the batch out of shared memory), yet the postmaster
 * still exits with code 0 and saves.
 */
bool
pixl_last_shutdown_was_clean(void)
{
	static int	clean = -1;

	if (clean < 0)
	{
		bool		crc_ok;
		ControlFileData *control = get_controlfile(DataDir, &crc_ok);

		/*
		 * A base backup's pg_control says "in production" (it was copied
		 * from a running server), but this node has not run yet: its
		 * backup_label, still there until recovery starts, says so.
		 */
		clean = crc_ok && (control->state == DB_SHUTDOWNED ||
						   control->state == DB_SHUTDOWNED_IN_RECOVERY ||
						   access(BACKUP_LABEL_FILE, F_OK) == 0);
		pfree(control);
	}
	return clean;
}

void
pixl_require_preload(void)
{
	if (!pixl_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pixltoken must be loaded via shared_preload_libraries"),
				 errhidestmt(true), /* the statement may hold a secret */
				 errhint("Add pixltoken to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static void
pixl_core_gucs_init(void)
{
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
}

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

	pixl_core_gucs_init();
	pixl_rate_limit_init();
	pixl_usage_ring_init();
	pixl_usage_aggregate_init();
	pixl_usage_pending_init();
	pixl_usage_recent_init();
	pixl_usage_worker_init();
	pixl_standby_init();
	pixl_usage_ship_init();
	MarkGUCPrefixReserved("pixltoken");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pixl_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pixl_shmem_startup;

	pixl_usage_worker_register();
	pixl_verify_module_init();
	/* SHA-256 set up once, in the postmaster: backends inherit it */
	pixl_hash_preload();

	pixl_preloaded = true;
}

static void
pixl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	/* every preloaded library is in by now */
	pixl_secret_guard_check_order();

	pixl_rate_limit_shmem_request();
	pixl_request_id_shmem_request();
	pixl_usage_ring_shmem_request();
	pixl_usage_stats_shmem_request();
	pixl_usage_aggregate_shmem_request();
	pixl_usage_pending_shmem_request();
}

static void
pixl_shmem_startup(void)
{
	bool		rings_created;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pixl_rate_limit_shmem_startup();
	pixl_request_id_shmem_startup();
	rings_created = pixl_usage_ring_shmem_startup();
	pixl_usage_stats_shmem_startup();
	pixl_usage_dumpfile_shmem_startup(rings_created);
	pixl_usage_aggregate_shmem_startup();
	pixl_usage_pending_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}
