/*-------------------------------------------------------------------------
 *
 * usage_worker.c
 *		The background worker that drains a database's usage into tables.
 *
 * One worker per database of pixltoken.database (queue idx = main_arg).
 * Its loop: wait on the latch (at most pixltoken.flush_interval; producers
 * wake it early when the ring is more than half full), then write what is
 * queued and what was counted, a batch per transaction, worker_spi style;
 * every minute run pixl_run_maintenance() (and the lifecycle reminders and
 * the hygiene sweep, and the events' partitions and retention,
 * pixl_events_maintenance());
 * after each fold, the allowance events (pixl_quota_notices()); on a hot
 * standby, at every turn, a measurement of how current the node is
 * (common/replay_view.c), so that it knows even when no session asks.
 *
 * A batch is: up to PIXL_BATCH_SIZE raw records peeked from the ring, then,
 * when a fold is due, a snapshot of up to PIXL_FOLD_SIZE counts of
 * usage_aggregate.c (folded by usage_fold.c).  A fold is due every
 * pixltoken.fold_interval (default 10 s) and when an hour ends (so that
 * the past hour's entries can be removed at once): a key that takes many
 * verifications between folds costs one rollup row write, not one per
 * batch.  After
 * the commit, with interrupts held, the records leave the ring and the
 * snapshot is subtracted: a worker that fails or dies before loses
 * nothing, and nothing is written twice.
 *
 * Failures.  Every transaction runs with lock_timeout and
 * statement_timeout (pixltoken.worker_lock_timeout, ..._statement_timeout),
 * and the session pins search_path, read-only, isolation, replication role
 * and every other setting that changes what its SQL does
 * (pixl_pin_worker_settings).  A batch that fails for a lock or statement
 * timeout is retried later as a whole (logged, last_error in pixl_stats).
 * A batch that fails otherwise is written again record by record, each in
 * a subtransaction; a record (or count) that still fails goes to
 * pixl_usage_dead_letters with its error (counted, last_error) and the
 * rest flows on.  Nothing that any role can lock stalls the worker: it
 * takes no advisory lock; maintenance locks tables only the extension's
 * owner can lock.
 *
 * Allowances.  When it starts serving a database as a primary (at start,
 * after every crash restart, which restarts the worker, after a promotion,
 * and when the extension appears), before its first fold, the worker seeds
 * the period allowance counters of the request path (pixl_quota_seed,
 * verify/quota.c): each store whose plan has an allowance, and each token
 * with its own, that charged anything this period, with what the period
 * charged (net of refunds) before this start: the rollups' charged plus the counts loaded from the
 * clean shutdown's file, not folded yet.  The first seed of a counter since
 * the postmaster started adds that to the calls admitted since (which the
 * counters hold and the rollups do not yet); every later one only raises
 * the counter.  Folds wait for the seed, so nothing is counted twice: a
 * clean restart loses nothing of an allowance.  A backend's crash keeps
 * the counters (quota.c marks them all seeded), and the seed after it
 * changes nothing.  A worker restarted without one (terminated, or the
 * extension re-created) does not seed again (usage_aggregate.c remembers
 * the databases seeded): a counter first charged after its predecessor's
 * seed would have the rollups added to the calls it holds already.  What a
 * crash of the server (or an immediate shutdown) can over-admit: the
 * counts of the last run that were not folded yet (at most
 * pixltoken.fold_interval of calls, default 10 s, per store) are lost
 * with the counters and never reach the rollups, so the new counters
 * start without them (README, loss table; also a crash restart where the
 * counters live in the shared memory that is reset, EXEC_BACKEND builds).
 * A schema without pixl_quota_seed (before 1.2) seeds nothing; a seed
 * that fails is logged and retried every second, and folds wait for it
 * (the raw rows flow on).
 *
 * Signals: SIGTERM is die(), so CHECK_FOR_INTERRUPTS ends even a stuck
 * statement; what is queued stays in the ring (the postmaster saves it on
 * a clean shutdown).  Not registered during pg_upgrade.
 *
 * While the extension is not installed in the database the worker checks
 * every second, logs once, and discards what is queued and counted
 * (counted as dropped and lost): nothing could ever write it.  Only what
 * was there before a look that found no pixltoken, not even one being
 * created (pixl_worker_discard): verifications right after, or inside the
 * transaction of, CREATE EXTENSION are kept for the worker that serves it.  When the database does not exist
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
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/extension.h"
#include "common/node.h"
#include "common/replay_view.h"
#include "common/subtransaction.h"
#include "usage/exposure.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_held.h"
#include "usage/usage_pending.h"
#include "usage/usage_ring.h"
#include "usage/usage_stats.h"
#include "writer/replica_batch.h"
#include "writer/replica_ingest.h"
#include "writer/replica_ship.h"
#include "writer/usage_fold.h"
#include "writer/usage_recent.h"
#include "writer/usage_store.h"
#include "writer/usage_worker.h"

#define PIXL_BATCH_SIZE				1000
#define PIXL_FOLD_SIZE				1000
#define PIXL_PENDING_BATCH			2000
#define PIXL_MAINTENANCE_INTERVAL_MS	60000
#define PIXL_WAIT_CHECK_MS			1000
#define PIXL_RESTART_SECONDS		2

static int	pixl_flush_interval_ms = 1000;	/* pixltoken.flush_interval */
static int	pixl_fold_interval_ms = 10000;	/* pixltoken.fold_interval */
static int	pixl_usage_retention_min = 90 * 24 * 60;	/* pixltoken.usage_retention */
static int	pixl_worker_lock_timeout_ms = 1000;
static int	pixl_rollup_retention_min = 0;
static int	pixl_worker_statement_timeout_ms = 60000;

void
pixl_usage_worker_init(void)
{
	DefineCustomIntVariable("pixltoken.flush_interval",
							"Longest time usage waits in shared memory before the worker writes it.",
							"At most this much usage is lost if a backend crashes (see README).",
							&pixl_flush_interval_ms,
							1000, 10, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.fold_interval",
							"How often the worker folds the usage counts of shared memory into the rollups.",
							"Counts, final statuses, response times and last_used_at reach the tables this often (and at every new hour); at most this much of them is lost if a backend crashes.",
							&pixl_fold_interval_ms,
							10000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.usage_retention",
							"How long raw usage events are kept; older daily partitions are dropped.",
							"Rollups have a retention of their own (pixltoken.rollup_retention).",
							&pixl_usage_retention_min,
							90 * 24 * 60, 24 * 60, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.rollup_retention",
							"How long hourly and daily usage rollups are kept; 0 keeps them for ever.",
							NULL,
							&pixl_rollup_retention_min,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.worker_lock_timeout",
							"lock_timeout of the usage worker's transactions.",
							NULL,
							&pixl_worker_lock_timeout_ms,
							1000, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.worker_statement_timeout",
							"Longest transaction of the usage worker (a statement_timeout for the whole batch).",
							NULL,
							&pixl_worker_statement_timeout_ms,
							60000, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

static void
pixl_worker_exit(int code, Datum arg)
{
	pixl_usage_ring_detach(DatumGetInt32(arg));
	pixl_usage_stats_set_state(DatumGetInt32(arg), PIXL_WORKER_NOT_RUNNING);
}

void
pixl_usage_worker_register(void)
{
	List	   *names;
	ListCell   *lc;
	int			i = 0;

	/* pg_upgrade must not find a worker connected to the databases */
	if (IsBinaryUpgrade)
		return;

	names = pixl_usage_database_names();
	foreach(lc, names)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
			BGWORKER_BACKEND_DATABASE_CONNECTION;
		/* a hot standby's worker ships its usage (replica_ship.c) */
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
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

/* Sleeps until the latch or a timeout; handles reloads. */
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

	pixl_usage_stats_set_state(idx, PIXL_WORKER_WAITING_FOR_DATABASE);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (;;)
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
	pixl_usage_stats_set_state(idx, PIXL_WORKER_NOT_RUNNING);
	proc_exit(1);				/* restarted after bgw_restart_time */
}

/*
 * The memory context the worker's helpers run in (the loop's), saved when a
 * transaction starts and current again when it ends, committed or aborted:
 * the transaction machinery leaves TopMemoryContext current, and every
 * helper below hands the caller back its own context.
 */
static MemoryContext worker_caller_cxt = NULL;

/* Starts a worker_spi-style transaction with SPI and a snapshot. */
static void
pixl_worker_begin(const char *activity)
{
	char		buf[32];

	worker_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	AcceptInvalidationMessages();
	snprintf(buf, sizeof(buf), "%d", pixl_worker_lock_timeout_ms);
	(void) set_config_option("lock_timeout", buf, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	/* SPI does not arm statement_timeout: the whole transaction is bounded */
	enable_timeout_after(STATEMENT_TIMEOUT, pixl_worker_statement_timeout_ms);
}

static void
pixl_worker_end(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(worker_caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* After an error: the transaction is gone, record why (in cxt). */
static ErrorData *
pixl_worker_abort(MemoryContext cxt)
{
	ErrorData  *edata;

	disable_timeout(STATEMENT_TIMEOUT, false);
	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(worker_caller_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return edata;
}

/* Is the extension installed here, and which schema version? 0: no. */
static int
pixl_worker_extension_version(void)
{
	PixlExtension ext;
	int			version = 0;

	pixl_worker_begin("pixltoken: checking for the extension");
	ext = pixl_extension_lookup();
	if (ext.found)
		version = pixl_usage_schema_version(&ext);
	pixl_worker_end();
	return version;
}

/*
 * Calls a function of the extension's schema (pixl_run_maintenance(), and
 * pixl_lifecycle_reminders(), pixl_hygiene_sweep(), pixl_events_maintenance()
 * and pixl_quota_notices() when they exist) in
 * a subtransaction: a failure is logged and retried at the next interval,
 * and never stops the flushing.
 */
typedef struct PixlCallWork
{
	const PixlExtension *ext;
	const char *function;
} PixlCallWork;

static void
pixl_worker_call_work(void *arg)
{
	PixlCallWork *w = arg;
	int			nestlevel = pixl_pin_search_path();
	int			rc;

	rc = SPI_execute(psprintf("SELECT %s.%s()", w->ext->schema, w->function),
					 false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	pixl_restore_search_path(nestlevel);
}

static void
pixl_worker_call(const PixlExtension *ext, const char *function)
{
	PixlCallWork w = {ext, function};
	ErrorData  *edata = pixl_try_subtransaction(pixl_worker_call_work, &w);

	if (edata)
	{
		ereport(LOG,
				(errmsg("pixltoken usage worker: %s() failed, retrying later: %s",
						function, edata->message)));
		FreeErrorData(edata);
	}
}

static bool
pixl_worker_maintenance(int idx)
{
	PixlExtension ext;

	pixl_worker_begin("pixltoken: maintenance");
	ext = pixl_extension_lookup();
	if (ext.found)
	{
		pixl_worker_call(&ext, "pixl_run_maintenance");
		if (OidIsValid(pixl_extension_function(&ext, "pixl_lifecycle_reminders", 0)))
			pixl_worker_call(&ext, "pixl_lifecycle_reminders");
		if (OidIsValid(pixl_extension_function(&ext, "pixl_hygiene_sweep", 0)))
			pixl_worker_call(&ext, "pixl_hygiene_sweep");
		if (OidIsValid(pixl_extension_function(&ext, "pixl_events_maintenance", 0)))
			pixl_worker_call(&ext, "pixl_events_maintenance");
	}
	pixl_worker_end();
	pixl_usage_aggregate_cleanup(MyDatabaseId);
	return ext.found;
}

/*
 * The allowance events after a fold (pixl_quota_notices(), when the schema
 * has it): 80 % and 100 % of a store's allowance, read from shared memory,
 * sent once per period.  In a transaction of its own, never on the request
 * path; a failure is logged and tried again after the next fold.
 */
static void
pixl_worker_quota_notices(void)
{
	PixlExtension ext;

	pixl_worker_begin("pixltoken: allowance events");
	ext = pixl_extension_lookup();
	if (ext.found &&
		OidIsValid(pixl_extension_function(&ext, "pixl_quota_notices", 0)))
		pixl_worker_call(&ext, "pixl_quota_notices");
	pixl_worker_end();
}

/*
 * Writes one record or count; one that fails for a reason of its own goes
 * to the dead-letter table (usage_store.c).  Transient errors end the whole
 * attempt.  Returns 1 when written, 0 when dead-lettered, and -1 when the
 * item must stay where it is (its dead letter could not be written either:
 * last_error says why).
 */
static int
pixl_worker_store_one(int idx, const PixlExtension *ext,
					  const PixlUsageRecord *rec, const PixlAggSnapshot *agg)
{
	bool		kept;
	const char *error = pixl_usage_store_one(ext, rec, agg, &kept);

	if (error)
		pixl_usage_stats_count_dead(idx, kept ? 0 : 1, error);
	return error == NULL ? 1 : kept ? -1 : 0;
}

/*
 * Runs work() in a transaction of its own and committed() right after its
 * commit, with interrupts held in between: what the transaction wrote
 * leaves shared memory (or the spool) exactly when it is in the tables, and
 * a worker that fails or dies before the commit loses nothing.  NULL, or
 * the error that aborted the transaction (which is then gone).
 */
static ErrorData *
pixl_worker_transaction(const char *activity,
						void (*work) (const PixlExtension *ext, void *arg),
						void (*committed) (void *arg),
						void *arg, MemoryContext cxt)
{
	ErrorData  *volatile edata = NULL;
	uint32		holdoff = InterruptHoldoffCount;

	PG_TRY();
	{
		PixlExtension ext;

		pixl_worker_begin(activity);
		ext = pixl_extension_lookup();
		work(&ext, arg);
		HOLD_INTERRUPTS();
		pixl_worker_end();
		committed(arg);
		RESUME_INTERRUPTS();
	}
	PG_CATCH();
	{
		InterruptHoldoffCount = holdoff;
		edata = pixl_worker_abort(cxt);
	}
	PG_END_TRY();
	return edata;
}

/* One batch: records peeked from the ring, a snapshot of the counts. */
typedef struct PixlWorkerBatch
{
	int			idx;
	int			schema;
	PixlUsageRecord *records;
	int			n;
	PixlAggSnapshot *aggs;
	int			nagg;
	int			ndone;			/* records written or dead-lettered */
	bool		kept;			/* an item stays: its dead letter failed */
	int64		events;			/* of the records */
	int64		responses;
	int64		counts;			/* verifications the snapshot holds */
	bool		write_recent;	/* write out the recent calls too */
} PixlWorkerBatch;

static void
pixl_worker_write_work(const PixlExtension *ext, void *arg)
{
	PixlWorkerBatch *b = arg;

	if (!ext->found || pixl_usage_schema_version(ext) != b->schema)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension pixltoken was dropped, created or updated")));
	pixl_usage_store_batch(ext, b->schema, b->records, b->n, b->aggs, b->nagg);
	if (b->write_recent)
	{
		int			nestlevel = pixl_pin_search_path();

		pixl_usage_recent_write(ext);
		pixl_restore_search_path(nestlevel);
	}
}

static void
pixl_worker_write_committed(void *arg)
{
	PixlWorkerBatch *b = arg;

	pixl_usage_held_sub(b->idx, pixl_usage_aggregate_subtract(b->aggs, b->nagg));
	pixl_exposure_written(b->records, b->n);
	pixl_usage_ring_consume(b->idx, b->n);
	pixl_usage_stats_count_flushed(b->idx, b->events, b->responses);
	pixl_usage_stats_count_folded(b->idx, b->counts);
	if (b->write_recent)
		pixl_usage_recent_written();
}

/*
 * Records stay in order: at the first one that must stay, the later ones
 * are not tried (they leave the ring only behind it).  A count that must
 * stay is simply not subtracted.
 */
static void
pixl_worker_isolate_work(const PixlExtension *ext, void *arg)
{
	PixlWorkerBatch *b = arg;

	if (!ext->found)
		elog(ERROR, "extension pixltoken is not installed");
	b->ndone = b->n;
	b->kept = false;
	b->counts = 0;
	for (int i = 0; i < b->n; i++)
	{
		if (pixl_worker_store_one(b->idx, ext, &b->records[i], NULL) < 0)
		{
			b->ndone = i;
			b->kept = true;
			break;
		}
	}
	for (int i = 0; i < b->nagg; i++)
	{
		PixlAggSnapshot *a = &b->aggs[i];
		int			rc = pixl_worker_store_one(b->idx, ext, NULL, a);

		if (rc > 0)
			b->counts += a->requests;
		else if (rc < 0)
		{
			/* not subtracted: it stays, responses included */
			pixl_usage_aggregate_keep(a);
			b->kept = true;
		}
	}
}

static void
pixl_worker_isolate_committed(void *arg)
{
	PixlWorkerBatch *b = arg;

	pixl_usage_held_sub(b->idx, pixl_usage_aggregate_subtract(b->aggs, b->nagg));
	pixl_exposure_written(b->records, b->ndone);
	pixl_usage_ring_consume(b->idx, b->ndone);
	pixl_usage_stats_count_flushed(b->idx, b->ndone, 0);
	pixl_usage_stats_count_folded(b->idx, b->counts);
}

/*
 * The batch failed for a reason of its own: write it again item by item,
 * each in a subtransaction; an item that fails again goes to the
 * dead-letter table.  Returns false if even that transaction failed, or an
 * item stays queued because its dead letter could not be written (both are
 * tried again after a wait).
 */
static bool
pixl_worker_isolate(PixlWorkerBatch *b, MemoryContext cxt)
{
	ErrorData  *edata;

	edata = pixl_worker_transaction("pixltoken: isolating a failing usage batch",
									pixl_worker_isolate_work,
									pixl_worker_isolate_committed, b, cxt);
	if (edata == NULL)
		return !b->kept;
	pixl_usage_stats_count_dead(b->idx, 0, edata->message);
	ereport(LOG,
			(errmsg("pixltoken usage worker could not write usage, retrying: %s",
					edata->message)));
	FreeErrorData(edata);
	return false;
}

/*
 * Writes everything queued and counted, a batch per transaction.  Returns
 * false when a batch could not be written now (retried after a wait).
 */
static bool
pixl_worker_flush(int idx, int schema, PixlUsageRecord *batch,
				  PixlAggSnapshot *aggs, bool fold, bool write_recent,
				  MemoryContext loop_cxt)
{
	for (;;)
	{
		int			n = pixl_usage_ring_peek(idx, batch, PIXL_BATCH_SIZE);
		int			nagg;
		PixlWorkerBatch b;
		PixlUsageTally tally;
		ErrorData  *edata;

		/*
		 * Counts after records: every peeked event is in the snapshot.  A
		 * 1.0 schema cannot take counts: they wait for ALTER EXTENSION.
		 * Counts are folded only when a fold is due (pixltoken.fold_interval).
		 */
		nagg = fold && schema == PIXL_SCHEMA_1_1
			? pixl_usage_aggregate_snapshot(MyDatabaseId, aggs, PIXL_FOLD_SIZE) : 0;
		if (n == 0 && nagg == 0 && !(write_recent && pixl_usage_recent_pending()))
			return true;
		b = (PixlWorkerBatch) {idx, schema, batch, n, aggs, nagg, n, false, 0, 0, 0,
			write_recent && schema == PIXL_SCHEMA_1_1};
		/* request_log = recent: the calls go to the worker's buffer */
		if (schema == PIXL_SCHEMA_1_1 && pixl_request_log == PIXL_REQUEST_LOG_RECENT)
			pixl_usage_recent_add(batch, n);
		tally = pixl_usage_batch_tally(batch, n, aggs, nagg);
		b.events = tally.events;
		b.responses = tally.responses;
		b.counts = tally.requests;

		edata = pixl_worker_transaction("pixltoken: writing usage",
										pixl_worker_write_work,
										pixl_worker_write_committed, &b,
										loop_cxt);
		if (edata)
		{
			if (b.write_recent)
				pixl_usage_recent_forget();
			ereport(LOG,
					(errmsg("pixltoken usage worker could not write a batch of usage: %s",
							edata->message)));
			pixl_usage_stats_count_dead(idx, 0, edata->message);
			if (pixl_usage_error_is_transient(edata->sqlerrcode))
				return false;
			if (!pixl_worker_isolate(&b, loop_cxt))
				return false;
		}
		MemoryContextReset(loop_cxt);
		if (n < PIXL_BATCH_SIZE && (!fold || nagg < PIXL_FOLD_SIZE))
			return true;

		/*
		 * One fold per call: once every count was taken, the batches that
		 * follow under load write records only (their counts wait for the
		 * next fold), and the recent calls are written once.
		 */
		if (nagg < PIXL_FOLD_SIZE)
			fold = false;
		write_recent = false;
		CHECK_FOR_INTERRUPTS();
	}
}

/* Pending verifications written out and late reports applied, at once. */
typedef struct PixlPendingBatch
{
	PixlPendingItem *spill;
	int			nspill;
	PixlPendingItem *late;
	int			nlate;
} PixlPendingBatch;

static void
pixl_worker_pending_work(const PixlExtension *ext, void *arg)
{
	PixlPendingBatch *b = arg;

	if (!ext->found || pixl_usage_schema_version(ext) != PIXL_SCHEMA_1_1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension pixltoken was dropped, created or updated")));
	pixl_usage_store_pending(ext, b->spill, b->nspill, b->late, b->nlate);
}

static void
pixl_worker_pending_committed(void *arg)
{
	PixlPendingBatch *b = arg;

	pixl_usage_pending_done(b->spill, b->nspill, b->late, b->nlate, true);
}

/*
 * Writes out the verifications that waited too long for their response
 * and applies the late reports (usage_pending.c), a batch per transaction.
 * False when that failed (retried after a wait).
 */
static bool
pixl_worker_pending(int idx, PixlPendingItem *spill, PixlPendingItem *late,
					MemoryContext loop_cxt)
{
	for (;;)
	{
		PixlPendingBatch b = {spill, 0, late, 0};
		ErrorData  *edata;

		pixl_usage_pending_collect(MyDatabaseId, spill, &b.nspill, PIXL_PENDING_BATCH,
								   late, &b.nlate, PIXL_PENDING_BATCH);
		if (b.nspill == 0 && b.nlate == 0)
			return true;
		edata = pixl_worker_transaction("pixltoken: writing pending verifications",
										pixl_worker_pending_work,
										pixl_worker_pending_committed, &b,
										loop_cxt);
		if (edata)
		{
			pixl_usage_pending_done(spill, b.nspill, late, b.nlate, false);
			ereport(LOG,
					(errmsg("pixltoken usage worker could not write pending verifications, retrying: %s",
							edata->message)));
			pixl_usage_stats_count_dead(idx, 0, edata->message);
			return false;
		}
		MemoryContextReset(loop_cxt);
		if (b.nspill < PIXL_PENDING_BATCH && b.nlate < PIXL_PENDING_BATCH)
			return true;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * On a hot standby: ship what is queued and counted to the primary.  The
 * catalog is read in a short transaction of its own: no snapshot is held
 * while waiting on the network (it would hold back replay).
 */
static bool
pixl_worker_ship(int idx, PixlUsageRecord *batch, PixlAggSnapshot *aggs,
				 MemoryContext loop_cxt)
{
	static MemoryContext ship_cxt = NULL;
	PixlExtension ext;
	bool		ok;

	if (pixl_node_id == 0)
	{
		/* nothing is kept without a node id (usage_route.c) */
		pixl_usage_stats_set_state(idx, PIXL_WORKER_NO_NODE_ID);
		return true;
	}
	if (ship_cxt == NULL)
		ship_cxt = AllocSetContextCreate(TopMemoryContext,
										 "pixltoken usage shipping",
										 ALLOCSET_DEFAULT_SIZES);
	pixl_worker_begin("pixltoken: shipping usage");
	ext = pixl_extension_lookup();
	pixl_worker_end();
	if (!ext.found)
		return false;
	ext.schema = pstrdup(ext.schema);
	pgstat_report_activity(STATE_RUNNING, "pixltoken: shipping usage");
	ok = pixl_replica_ship_flush(idx, &ext, batch, aggs, ship_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

static void
pixl_worker_apply_spool_work(const PixlExtension *ext, void *arg)
{
	if (ext->found && pixl_usage_schema_version(ext) == PIXL_SCHEMA_1_1)
		pixl_replica_ship_apply_spool(ext);
}

static void
pixl_worker_release_own_id_work(const PixlExtension *ext, void *arg)
{
	if (ext->found && pixl_usage_schema_version(ext) == PIXL_SCHEMA_1_1)
		pixl_ingest_release_own_id(ext);
}

static void
pixl_worker_nothing_committed(void *arg)
{
}

/*
 * After the spool is applied: a primary forgets its own node id's
 * registration as a standby (replica_ingest.c).  False when that failed
 * (retried later).
 */
static bool
pixl_worker_release_own_id(MemoryContext cxt)
{
	ErrorData  *edata;

	edata = pixl_worker_transaction("pixltoken: releasing this node's id",
									pixl_worker_release_own_id_work,
									pixl_worker_nothing_committed, NULL, cxt);
	if (edata == NULL)
		return true;
	ereport(LOG,
			(errmsg("pixltoken usage worker could not release its node id, retrying: %s",
					edata->message)));
	FreeErrorData(edata);
	return false;
}

static void
pixl_worker_apply_spool_committed(void *arg)
{
	pixl_replica_ship_applied(*(int *) arg);
}

/*
 * After a promotion (or any start as a primary): a batch the node spooled
 * as a standby but never saw acknowledged is applied here, once.  False
 * when that failed (retried later).
 */
static bool
pixl_worker_apply_spool(int idx, MemoryContext cxt)
{
	ErrorData  *edata;

	edata = pixl_worker_transaction("pixltoken: applying the usage spool",
									pixl_worker_apply_spool_work,
									pixl_worker_apply_spool_committed, &idx, cxt);
	if (edata == NULL)
		return true;
	ereport(LOG,
			(errmsg("pixltoken usage worker could not apply its usage spool, retrying: %s",
					edata->message)));
	FreeErrorData(edata);
	return false;
}

/* Seeding the allowance counters: what the transaction found. */
typedef struct PixlSeedWork
{
	int64		seeded;			/* counters seeded; -1: no pixl_quota_seed */
} PixlSeedWork;

static void
pixl_worker_seed_work(const PixlExtension *ext, void *arg)
{
	PixlSeedWork *w = arg;
	PixlAggCharged *charged;
	int			n;
	int			nestlevel;

	if (!ext->found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension pixltoken was dropped")));
	/* seeded by a predecessor since the server (re)started: done */
	n = pixl_usage_aggregate_loaded(MyDatabaseId, &charged);
	if (n < 0)
		return;
	nestlevel = pixl_pin_search_path();
	w->seeded = pixl_usage_seed_quotas(ext, charged, n);
	pixl_restore_search_path(nestlevel);
}

static void
pixl_worker_seed_committed(void *arg)
{
	/* in the counters now: a later seed must not add them again */
	pixl_usage_aggregate_seeded(MyDatabaseId);
}

/*
 * Seeds the allowance counters from the rollups and the counts not folded
 * yet (see "Allowances" at the top).  False when that failed (retried
 * after a wait; no fold until it is done).
 */
static bool
pixl_worker_seed(int idx, MemoryContext cxt)
{
	PixlSeedWork w = {0};
	ErrorData  *edata;

	edata = pixl_worker_transaction("pixltoken: seeding the allowance counters",
									pixl_worker_seed_work,
									pixl_worker_seed_committed, &w, cxt);
	if (edata)
	{
		ereport(LOG,
				(errmsg("pixltoken usage worker could not seed the allowance counters, retrying: %s",
						edata->message)));
		pixl_usage_stats_count_dead(idx, 0, edata->message);
		FreeErrorData(edata);
		return false;
	}
	if (w.seeded > 0)
		ereport(LOG,
				(errmsg("pixltoken usage worker seeded %lld allowance counters of database \"%s\" from the rollups",
						(long long) w.seeded, pixl_usage_ring_dbname(idx))));
	return true;
}

/*
 * Nothing can write the records of a database without the extension: they
 * are discarded (counted).  only_if_absent: only what was queued and counted
 * before a look at pg_extension that found no pixltoken, not even one being
 * created by a transaction still in progress, so that verifications made
 * right after (or inside the transaction of) CREATE EXTENSION, before the
 * worker has seen it, are kept for it.
 */
static void
pixl_worker_discard(int idx, PixlUsageRecord *batch, PixlAggSnapshot *aggs,
					bool only_if_absent)
{
	int64		total = 0;
	int			n;
	bool		absent = true;

	for (;;)
	{
		int			nagg = pixl_usage_aggregate_snapshot(MyDatabaseId, aggs,
														 PIXL_FOLD_SIZE);

		n = pixl_usage_ring_peek(idx, batch, PIXL_BATCH_SIZE);
		if (n == 0 && nagg == 0)
			break;
		if (only_if_absent)
		{
			bool		present;

			pixl_worker_begin("pixltoken: checking for the extension");
			present = pixl_extension_maybe_present();
			pixl_worker_end();
			if (present)
			{
				absent = false;
				break;
			}
		}
		/* counts too: they would land in a later, unrelated installation */
		pixl_usage_held_sub(idx, pixl_usage_aggregate_subtract(aggs, nagg));
		for (int i = 0; i < nagg; i++)
			pixl_usage_stats_add(idx, PIXL_COUNT_COUNTS_LOST, aggs[i].requests);
		pixl_usage_ring_consume(idx, n);
		pixl_usage_stats_add(idx, PIXL_COUNT_DROPPED, n);
		total += n;
	}
	pixl_usage_aggregate_cleanup(MyDatabaseId);
	/* their responses could only land in what was just discarded */
	if (absent)
		(void) pixl_usage_pending_discard(MyDatabaseId, false);

	if (total > 0)
		ereport(LOG,
				(errmsg("pixltoken usage worker discarded %lld queued usage records",
						(long long) total),
				 errdetail("Extension pixltoken is not installed in database \"%s\".",
						   pixl_usage_ring_dbname(idx))));
}

void
pixl_usage_worker_main(Datum main_arg)
{
	int			idx = DatumGetInt32(main_arg);
	const char *dbname;
	MemoryContext loop_cxt;
	PixlUsageRecord *batch;
	PixlAggSnapshot *aggs;
	PixlPendingItem *spill;
	PixlPendingItem *late;
	int			served = 0;
	bool		logged_wait = false;
	TimestampTz last_maintenance = 0;
	TimestampTz last_check = 0;
	bool		spool_applied = false;
	bool		own_id_released = false;
	bool		quota_seeded = false;
	TimestampTz cleaned_hour = 0;
	TimestampTz last_fold = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (idx < 0 || idx >= pixl_usage_ring_count())
		proc_exit(0);
	dbname = pixl_usage_ring_dbname(idx);

	if (pixl_usage_stats_get_state(idx) == PIXL_WORKER_CONNECTING)
		pixl_worker_wait_for_database(idx, dbname);

	pixl_usage_stats_set_state(idx, PIXL_WORKER_CONNECTING);
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pixl_usage_ring_attach(idx);
	before_shmem_exit(pixl_worker_exit, Int32GetDatum(idx));
	pixl_usage_stats_set_state(idx, PIXL_WORKER_WAITING_FOR_EXTENSION);

	/* for the whole session, whatever the database or role set */
	pixl_pin_worker_settings();

	loop_cxt = AllocSetContextCreate(TopMemoryContext,
									 "pixltoken usage worker",
									 ALLOCSET_DEFAULT_SIZES);
	batch = MemoryContextAlloc(TopMemoryContext,
							   sizeof(PixlUsageRecord) * PIXL_BATCH_SIZE);
	aggs = MemoryContextAlloc(TopMemoryContext,
							  sizeof(PixlAggSnapshot) * PIXL_FOLD_SIZE);
	spill = MemoryContextAlloc(TopMemoryContext,
							   sizeof(PixlPendingItem) * PIXL_PENDING_BATCH);
	late = MemoryContextAlloc(TopMemoryContext,
							  sizeof(PixlPendingItem) * PIXL_PENDING_BATCH);

	/* what a predecessor that died mid-transaction left marked */
	pixl_usage_pending_recover(MyDatabaseId);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		ok = true;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);

		/*
		 * On a hot standby, measure how current it is: a caught-up
		 * measurement gives every session of the node its "current as of",
		 * even if no session asked while it was caught up (replay_view.c).
		 */
		if (RecoveryInProgress())
		{
			TimestampTz as_of;

			(void) pixl_replay_view(&as_of);
		}

		/* the schema may appear, go, or be upgraded: look every second */
		if (!served || TimestampDifferenceExceeds(last_check, now, PIXL_WAIT_CHECK_MS))
		{
			int			version = pixl_worker_extension_version();

			last_check = now;
			if (version != served)
			{
				served = version;
				quota_seeded = false;
				pixl_usage_stats_set_served(idx, served);
				if (served)
				{
					pixl_usage_stats_set_state(idx, RecoveryInProgress()
											   ? PIXL_WORKER_SHIPPING
											   : PIXL_WORKER_SERVING);
					logged_wait = false;
					last_maintenance = 0;
				}
				else
					pixl_usage_stats_set_state(idx, PIXL_WORKER_WAITING_FOR_EXTENSION);
			}
			if (!served)
			{
				pixl_worker_discard(idx, batch, aggs, true);
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

		if (served && RecoveryInProgress())
		{
			/* a hot standby ships (1.1 schemas only: 1.0 has no ingest) */
			if (served == PIXL_SCHEMA_1_1)
				ok = pixl_worker_ship(idx, batch, aggs, loop_cxt);
			else
				pixl_worker_discard(idx, batch, aggs, false);
			/* a standby cannot write them out: past the wait they go */
			(void) pixl_usage_pending_discard(MyDatabaseId, true);
			if (TimestampDifferenceExceeds(last_maintenance, now,
										   PIXL_MAINTENANCE_INTERVAL_MS))
			{
				pixl_usage_aggregate_cleanup(MyDatabaseId);
				last_maintenance = now;
			}
		}
		else if (served)
		{
			if (!spool_applied)
			{
				/* first time as a primary: maybe just promoted */
				pixl_usage_stats_set_state(idx, PIXL_WORKER_SERVING);
				spool_applied = pixl_worker_apply_spool(idx, loop_cxt);
			}
			if (spool_applied && !own_id_released)
				own_id_released = pixl_worker_release_own_id(loop_cxt);
			/* the allowances before the first fold (see the top) */
			if (!quota_seeded && served == PIXL_SCHEMA_1_1)
				quota_seeded = pixl_worker_seed(idx, loop_cxt);
			{
				/* fold rarely, and at once when an hour ends (see the top) */
				bool		fold = (quota_seeded || served != PIXL_SCHEMA_1_1) &&
					(TimestampDifferenceExceeds(last_fold, now,
												pixl_fold_interval_ms) ||
					 now - now % USECS_PER_HOUR != cleaned_hour);

				/* a nearly full buffer of recent calls is written on its own */
				ok = pixl_worker_flush(idx, served, batch, aggs, fold,
									   fold || pixl_usage_recent_full(), loop_cxt);
				if (ok && fold)
				{
					last_fold = now;
					pixl_worker_quota_notices();
				}
			}
			if (ok && served == PIXL_SCHEMA_1_1)
				ok = pixl_worker_pending(idx, spill, late, loop_cxt);
			if (!ok)
				last_check = 0; /* the schema may have changed: look again */
			else if (now - now % USECS_PER_HOUR != cleaned_hour)
			{
				/* a new hour: give the stores their shares back at once */
				pixl_usage_aggregate_cleanup(MyDatabaseId);
				cleaned_hour = now - now % USECS_PER_HOUR;
			}
			if (TimestampDifferenceExceeds(last_maintenance, now,
										   PIXL_MAINTENANCE_INTERVAL_MS))
			{
				(void) pixl_worker_maintenance(idx);
				last_maintenance = now;
			}
		}

		pixl_worker_wait(!served || !ok ? PIXL_WAIT_CHECK_MS : pixl_flush_interval_ms);
	}
}
