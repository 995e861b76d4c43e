/*-------------------------------------------------------------------------
 *
 * usage_worker.c
 *		The background worker that drains a usage queue into tables.
 *
 * One worker per database of pixltoken.database (queue idx = main_arg).
 * Its loop: wait on the latch (at most pixltoken.flush_interval; producers
 * wake it early when the queue is more than half full), then write what is
 * queued in batches, one transaction per batch, worker_spi style; every
 * minute run pixl_run_maintenance().  Records leave the ring only after
 * their batch committed, so a worker that dies loses nothing: the restarted
 * worker finds them.  On SIGTERM it drains the queue before exiting.
 *
 * While the extension is not installed in the database the worker checks
 * every second, logs once, and discards what is queued (counted as
 * dropped): nothing could ever write it.  When the database does not exist
 * the connection fails once with FATAL; the restarted worker then waits
 * for the database connected to no database (logging once) and restarts
 * when it appears.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pixltoken.h"
#include "usage_extension.h"
#include "usage_queue.h"
#include "usage_worker.h"

#define PIXL_BATCH_SIZE				1000
#define PIXL_MAINTENANCE_INTERVAL_MS	60000
#define PIXL_WAIT_CHECK_MS			1000
#define PIXL_RESTART_SECONDS		2

static volatile sig_atomic_t got_sigterm = false;

/* SIGTERM: finish the current batch, drain the queue, then exit. */
static void
pixl_worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
pixl_worker_exit(int code, Datum arg)
{
	pixl_usage_queue_detach(DatumGetInt32(arg));
	pixl_usage_queue_set_state(DatumGetInt32(arg), PIXL_WORKER_NOT_RUNNING);
}

void
pixl_usage_worker_register(void)
{
	List	   *names = pixl_usage_database_names();
	ListCell   *lc;
	int			i = 0;

	foreach(lc, names)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
			BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = PIXL_RESTART_SECONDS;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pixltoken");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "pixl_usage_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pixltoken usage worker for %s",
				 (char *) lfirst(lc));
		snprintf(worker.bgw_type, BGW_MAXLEN, "pixltoken usage worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		worker.bgw_notify_pid = 0;
		RegisterBackgroundWorker(&worker);
		i++;
	}
}

/* Sleeps until the latch, a timeout or SIGTERM; handles reloads. */
static void
pixl_worker_wait(long timeout_ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * The last attempt to connect died (the database does not exist): connect
 * to no database, wait until it exists, and exit to be restarted into it.
 */
static void
pixl_worker_wait_for_database(int idx, const char *dbname)
{
	bool		logged = false;

	pixl_usage_queue_set_state(idx, PIXL_WORKER_WAITING_FOR_DATABASE);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_activity(STATE_IDLE, NULL);

	while (!got_sigterm)
	{
		Oid			dboid;

		StartTransactionCommand();
		dboid = get_database_oid(dbname, true);
		CommitTransactionCommand();
		if (OidIsValid(dboid))
			break;
		if (!logged)
		{
			ereport(LOG,
					(errmsg("pixltoken usage worker waits for database \"%s\" to be created",
							dbname),
					 errhint("Create the database, or remove it from pixltoken.database.")));
			logged = true;
		}
		pixl_worker_wait(PIXL_WAIT_CHECK_MS);
	}
	pixl_usage_queue_set_state(idx, PIXL_WORKER_NOT_RUNNING);
	proc_exit(1);				/* restarted after bgw_restart_time */
}

/* Starts a worker_spi-style transaction with SPI and a snapshot. */
static void
pixl_worker_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	AcceptInvalidationMessages();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
pixl_worker_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Is the extension installed here? */
static bool
pixl_worker_extension_present(void)
{
	bool		present;

	pixl_worker_begin("pixltoken: checking for the extension");
	present = (pixl_usage_extension(NULL) != NULL);
	pixl_worker_end();
	return present;
}

/*
 * Runs pixl_run_maintenance() in a subtransaction: a failure (it gives up
 * after lock_timeout when a long query holds the default partition) is
 * logged and retried at the next interval, and never stops the flushing.
 */
static bool
pixl_worker_maintenance(void)
{
	char	   *schema;
	bool		present;
	MemoryContext oldcontext;

	pixl_worker_begin("pixltoken: partition maintenance");
	schema = pixl_usage_extension(NULL);
	present = (schema != NULL);
	if (present)
	{
		int			rc;

		oldcontext = CurrentMemoryContext;
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcontext);
		PG_TRY();
		{
			int			nestlevel = pixl_pin_search_path();

			rc = SPI_execute(psprintf("SELECT %s.pixl_run_maintenance()", schema),
							 false, 0);
			pixl_restore_search_path(nestlevel);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcontext);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			ereport(LOG,
					(errmsg("pixltoken usage maintenance failed, retrying in a minute: %s",
							edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	pixl_worker_end();
	return present;
}

/*
 * Writes everything queued, a batch per transaction.  Returns false when
 * the extension turned out to be missing.
 */
static bool
pixl_worker_flush(int idx, PixlUsageRecord *batch, MemoryContext loop_cxt)
{
	for (;;)
	{
		int			n = pixl_usage_queue_peek(idx, batch, PIXL_BATCH_SIZE);
		int64		events;
		int64		responses;
		bool		stored;

		if (n == 0)
			return true;
		pixl_worker_begin("pixltoken: writing usage records");
		stored = pixl_usage_store(batch, n, &events, &responses);
		pixl_worker_end();
		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		if (!stored)
			return false;
		pixl_usage_queue_consume(idx, n, events, responses, true);
		if (n < PIXL_BATCH_SIZE)
			return true;
		CHECK_FOR_INTERRUPTS();
	}
}

/* Nothing can write the records of a database without the extension. */
static void
pixl_worker_discard(int idx, PixlUsageRecord *batch)
{
	int64		total = 0;
	int			n;

	while ((n = pixl_usage_queue_peek(idx, batch, PIXL_BATCH_SIZE)) > 0)
	{
		pixl_usage_queue_consume(idx, n, n, 0, false);
		total += n;
	}
	if (total > 0)
		ereport(LOG,
				(errmsg("pixltoken usage worker discarded %lld queued usage records",
						(long long) total),
				 errdetail("Extension pixltoken is not installed in database \"%s\".",
						   pixl_usage_queue_dbname(idx))));
}

void
pixl_usage_worker_main(Datum main_arg)
{
	int			idx = DatumGetInt32(main_arg);
	const char *dbname;
	MemoryContext loop_cxt;
	PixlUsageRecord *batch;
	bool		served = false;
	bool		logged_wait = false;
	TimestampTz last_maintenance = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, pixl_worker_sigterm);
	BackgroundWorkerUnblockSignals();

	if (idx < 0 || idx >= pixl_usage_queue_count())
		proc_exit(0);
	dbname = pixl_usage_queue_dbname(idx);

	if (pixl_usage_queue_get_state(idx) == PIXL_WORKER_CONNECTING)
		pixl_worker_wait_for_database(idx, dbname);

	pixl_usage_queue_set_state(idx, PIXL_WORKER_CONNECTING);
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pixl_usage_queue_attach(idx, MyDatabaseId);
	before_shmem_exit(pixl_worker_exit, Int32GetDatum(idx));
	pixl_usage_queue_set_state(idx, PIXL_WORKER_WAITING_FOR_EXTENSION);

	loop_cxt = AllocSetContextCreate(TopMemoryContext,
									 "pixltoken usage worker",
									 ALLOCSET_DEFAULT_SIZES);
	batch = MemoryContextAlloc(TopMemoryContext,
							   sizeof(PixlUsageRecord) * PIXL_BATCH_SIZE);

	for (;;)
	{
		TimestampTz now;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);

		if (!served)
		{
			served = pixl_worker_extension_present();
			MemoryContextSwitchTo(loop_cxt);
			if (served)
			{
				pixl_usage_queue_set_served(idx, true);
				pixl_usage_queue_set_state(idx, PIXL_WORKER_SERVING);
				logged_wait = false;
				last_maintenance = 0;
			}
			else
			{
				pixl_usage_queue_set_served(idx, false);
				pixl_usage_queue_set_state(idx, PIXL_WORKER_WAITING_FOR_EXTENSION);
				pixl_worker_discard(idx, batch);
				if (!logged_wait)
				{
					ereport(LOG,
							(errmsg("pixltoken usage worker waits for extension pixltoken in database \"%s\"",
									dbname),
							 errhint("Run CREATE EXTENSION pixltoken in that database.")));
					logged_wait = true;
				}
			}
		}

		if (served)
		{
			served = pixl_worker_flush(idx, batch, loop_cxt);
			now = GetCurrentTimestamp();
			if (served && TimestampDifferenceExceeds(last_maintenance, now,
													 PIXL_MAINTENANCE_INTERVAL_MS))
			{
				served = pixl_worker_maintenance();
				MemoryContextSwitchTo(loop_cxt);
				last_maintenance = now;
			}
			if (!served)
				continue;		/* the extension is gone: say so, discard */
		}

		if (got_sigterm)
			break;
		pixl_worker_wait(served ? pixl_flush_interval_ms : PIXL_WAIT_CHECK_MS);
	}

	pixl_usage_queue_set_state(idx, PIXL_WORKER_STOPPING);
	proc_exit(1);				/* 1: after pg_terminate_backend, restart */
}
