/*-------------------------------------------------------------------------
 *
 * usage_queue.c
 *		Request ids and the shared-memory queues of usage records.
 *
 * Request ids.  One pg_atomic_uint64 is a hybrid clock: a new id is
 * max(last id + 1, now in microseconds * 16), installed by a CAS loop, and
 * the verification's time is id / 16.  So ids are unique and increasing, and
 * an id alone names its usage row's time, hence its partition.  The last id
 * is saved on clean shutdown (and kept in the postmaster across a crash
 * restart), and the clock restarts from max(now * 16, that mark).  We assume
 * the system clock is not stepped back across a crash of the whole server;
 * ids run ahead of the clock only above 16 verifications per microsecond.
 *
 * Queues.  One bounded ring per database of pixltoken.database, of
 * pixltoken.queue_size slots; many producers (backends), one consumer (that
 * database's worker).  Locking protocol:
 *
 *	- head (next slot to fill) and tail (oldest slot not yet written to the
 *	  tables) are 64-bit positions that only grow; they, and the worker's
 *	  latch pointer, are protected by the queue's spinlock.  Nothing but
 *	  reading and bumping them happens under it: no palloc, no ereport, no
 *	  memcpy of a record.
 *	- A producer reserves position pos = head++ under the spinlock (unless
 *	  head - tail == size: full), then, outside the lock, copies its record
 *	  into slot pos % size, issues a write barrier and publishes by setting
 *	  the slot's seq to pos + 1.
 *	- The consumer reads slots from tail on while seq == pos + 1 (then a read
 *	  barrier and a copy), stopping at the first slot still being filled.  It
 *	  advances tail under the spinlock only after the copied records were
 *	  committed to the tables, so a worker that dies leaves its records in
 *	  the ring for the next one, and a slot is never refilled while it may
 *	  still be read.
 *	- dboid, served, the worker state and the counters are atomics, read
 *	  without a lock (pixl_stats may see them a moment apart).
 *
 * Routing.  A backend uses the queue whose worker connected to its own
 * database (dboid) and marked it served, i.e. found the extension there.
 * Otherwise the backend writes its record through to the tables itself
 * (usage_store.c) and counts it: records are never dropped and never go to
 * another database's queue.  When the queue of a serving worker is full, the
 * backend waits for room (counted in events_waited) instead of writing a
 * table from the hot path: a write-through there would take row locks on
 * rollups and last_used_at that the worker then waits for, behind the
 * caller's transaction, while the queue stays full.  Only if the worker
 * frees no room for QUEUE_FULL_WAIT_MS (it is dead or stuck) does the
 * backend write through.  A producer sets the worker's latch when the queue
 * is full or crosses half full; otherwise the worker wakes every
 * pixltoken.flush_interval.
 *
 * Shutdown.  On SIGTERM the worker drains its queue.  What is still queued
 * when the postmaster exits cleanly (records of a database whose worker is
 * not serving, or that arrived after the drain) is saved to a file, as
 * pg_stat_statements saves its entries, and loaded into the queues again at
 * the next start.  After a crash nothing is saved: at most what was queued
 * (about one flush interval) is lost.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "pixltoken.h"
#include "usage_queue.h"

#define PIXL_QUEUE_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pixltoken_queue.dat"
#define PIXL_QUEUE_FILE_MAGIC	0x50584c51	/* "PXLQ" */
#define PIXL_QUEUE_FILE_VERSION	1
#define PIXL_MAX_QUEUES		64

/* How long a producer waits for room in a full queue before writing through. */
#define QUEUE_FULL_WAIT_MS	2000

typedef struct PixlSlot
{
	pg_atomic_uint64 seq;		/* pos + 1 once the record at pos is in */
	TimestampTz queued_at;
	PixlUsageRecord rec;
} PixlSlot;

typedef struct PixlQueue
{
	slock_t		mutex;			/* protects head, tail, latch */
	uint64		head;
	uint64		tail;
	Latch	   *latch;			/* the serving worker's, or NULL */
	pg_atomic_uint32 dboid;		/* database of the connected worker */
	pg_atomic_uint32 served;	/* worker found the extension */
	pg_atomic_uint32 state;		/* PixlWorkerState */
	pg_atomic_uint64 flushed;
	pg_atomic_uint64 written_through;
	pg_atomic_uint64 waited;		/* records that waited for room */
	pg_atomic_uint64 dropped;
	pg_atomic_uint64 responses_applied;
	pg_atomic_uint64 last_flush;	/* TimestampTz */
	char		dbname[NAMEDATALEN];
} PixlQueue;

typedef struct PixlUsageShared
{
	pg_atomic_uint64 last_request_id;
	int			nqueues;
	int			queue_size;
	PixlQueue	other;			/* counters of databases without a queue */
	PixlQueue	queues[FLEXIBLE_ARRAY_MEMBER];
} PixlUsageShared;

typedef struct PixlQueueFileHeader
{
	uint32		magic;
	uint32		version;
	uint32		record_size;
	int32		nqueues;
	int64		last_request_id;
} PixlQueueFileHeader;

static PixlUsageShared *pixl_usage = NULL;
static PixlSlot *pixl_slots = NULL;

/* The postmaster keeps the last id here across a crash restart. */
static uint64 pixl_postmaster_last_id = 0;

static void pixl_usage_queue_shutdown(int code, Datum arg);
static void pixl_usage_queue_load(void);

/*
 * The names of pixltoken.database, deduplicated, in order; at most
 * PIXL_MAX_QUEUES.  Used for the shared-memory size and the workers.
 */
List *
pixl_usage_database_names(void)
{
	char	   *raw;
	List	   *names = NIL;
	List	   *result = NIL;
	ListCell   *lc;

	if (pixl_database_list == NULL || pixl_database_list[0] == '\0')
		return NIL;
	raw = pstrdup(pixl_database_list);
	if (!SplitGUCList(raw, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in parameter \"pixltoken.database\": \"%s\"",
						pixl_database_list),
				 errhint("Use a comma-separated list of database names.")));
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		ListCell   *lc2;
		bool		dup = false;

		if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
			continue;
		foreach(lc2, result)
		{
			if (strcmp((char *) lfirst(lc2), name) == 0)
				dup = true;
		}
		if (!dup && list_length(result) < PIXL_MAX_QUEUES)
			result = lappend(result, pstrdup(name));
	}
	return result;
}

static Size
pixl_usage_shared_size(int nqueues)
{
	return add_size(offsetof(PixlUsageShared, queues),
					mul_size(nqueues, sizeof(PixlQueue)));
}

static Size
pixl_usage_slots_size(int nqueues)
{
	return mul_size(mul_size(nqueues, pixl_queue_size), sizeof(PixlSlot));
}

void
pixl_usage_queue_shmem_request(void)
{
	int			n = list_length(pixl_usage_database_names());

	RequestAddinShmemSpace(pixl_usage_shared_size(n));
	RequestAddinShmemSpace(pixl_usage_slots_size(n));
}

static void
pixl_queue_init(PixlQueue *q, const char *dbname)
{
	SpinLockInit(&q->mutex);
	q->head = 0;
	q->tail = 0;
	q->latch = NULL;
	pg_atomic_init_u32(&q->dboid, InvalidOid);
	pg_atomic_init_u32(&q->served, 0);
	pg_atomic_init_u32(&q->state, PIXL_WORKER_NOT_RUNNING);
	pg_atomic_init_u64(&q->flushed, 0);
	pg_atomic_init_u64(&q->written_through, 0);
	pg_atomic_init_u64(&q->dropped, 0);
	pg_atomic_init_u64(&q->responses_applied, 0);
	pg_atomic_init_u64(&q->last_flush, 0);
	strlcpy(q->dbname, dbname, NAMEDATALEN);
}

/* Called with AddinShmemInitLock held (pixltoken.c). */
void
pixl_usage_queue_shmem_startup(void)
{
	List	   *names = pixl_usage_database_names();
	int			n = list_length(names);
	bool		found;
	bool		found_slots;

	pixl_usage = ShmemInitStruct("pixltoken usage queues",
								 pixl_usage_shared_size(n), &found);
	pixl_slots = ShmemInitStruct("pixltoken usage ring",
								 pixl_usage_slots_size(n), &found_slots);
	if (!found)
	{
		int			i = 0;
		ListCell   *lc;
		Size		nslots = (Size) n * pixl_queue_size;

		pg_atomic_init_u64(&pixl_usage->last_request_id,
						   Max((uint64) GetCurrentTimestamp() * 16,
							   pixl_postmaster_last_id));
		pixl_usage->nqueues = n;
		pixl_usage->queue_size = pixl_queue_size;
		pixl_queue_init(&pixl_usage->other, "");
		foreach(lc, names)
			pixl_queue_init(&pixl_usage->queues[i++], (char *) lfirst(lc));
		for (Size s = 0; s < nslots; s++)
			pg_atomic_init_u64(&pixl_slots[s].seq, 0);
	}

	/* Only the postmaster saves and loads the queues. */
	if (!IsUnderPostmaster)
	{
		on_shmem_exit(pixl_usage_queue_shutdown, (Datum) 0);
		if (!found)
			pixl_usage_queue_load();
	}
}

int64
pixl_next_request_id(TimestampTz *at)
{
	uint64		candidate;
	uint64		old;
	uint64		id;

	if (pixl_usage == NULL)
		pixl_require_preload();

	candidate = (uint64) GetCurrentTimestamp() * 16;
	old = pg_atomic_read_u64(&pixl_usage->last_request_id);
	for (;;)
	{
		id = Max(old + 1, candidate);
		if (pg_atomic_compare_exchange_u64(&pixl_usage->last_request_id,
										   &old, id))
			break;
	}
	*at = (TimestampTz) (id / 16);
	return (int64) id;
}

/* The queue served for database dbid, or -1. */
static int
pixl_queue_of(Oid dbid)
{
	for (int i = 0; i < pixl_usage->nqueues; i++)
	{
		if (pg_atomic_read_u32(&pixl_usage->queues[i].dboid) == dbid)
			return i;
	}
	return -1;
}

static PixlQueue *
pixl_counters_of(Oid dbid)
{
	int			idx = pixl_queue_of(dbid);

	return idx >= 0 ? &pixl_usage->queues[idx] : &pixl_usage->other;
}

typedef enum PixlEnqueueResult
{
	PIXL_QUEUED,
	PIXL_NOT_SERVED,			/* no worker serves this database */
	PIXL_QUEUE_FULL
} PixlEnqueueResult;

/* Puts one record into the queue of the current database, if it can. */
static PixlEnqueueResult
pixl_enqueue(const PixlUsageRecord *rec, TimestampTz queued_at)
{
	int			idx = pixl_queue_of(MyDatabaseId);
	PixlQueue  *q;
	PixlSlot   *slot;
	uint64		pos = 0;
	uint64		used;
	bool		full;
	Latch	   *latch;
	int			size = pixl_usage->queue_size;

	if (idx < 0)
		return PIXL_NOT_SERVED;
	q = &pixl_usage->queues[idx];
	if (!pg_atomic_read_u32(&q->served))
		return PIXL_NOT_SERVED;

	SpinLockAcquire(&q->mutex);
	full = (q->head - q->tail >= (uint64) size);
	if (!full)
		pos = q->head++;
	used = q->head - q->tail;
	latch = q->latch;
	SpinLockRelease(&q->mutex);

	if (full)
	{
		if (latch)
			SetLatch(latch);
		return PIXL_QUEUE_FULL;
	}

	slot = &pixl_slots[(Size) idx * size + pos % size];
	slot->queued_at = queued_at;
	memcpy(&slot->rec, rec, sizeof(PixlUsageRecord));
	pg_write_barrier();
	pg_atomic_write_u64(&slot->seq, pos + 1);

	/*
	 * Wake the worker when the queue crosses half full; it then drains the
	 * queue before it sleeps again, so later producers need not signal (and
	 * touch the latch's cache line) until the next crossing.
	 */
	if (latch && used * 2 > (uint64) size && (used - 1) * 2 <= (uint64) size)
		SetLatch(latch);
	return PIXL_QUEUED;
}

/*
 * Queues a record, waiting for room in a full queue (see the header comment),
 * or writes it through when no worker serves this database or the wait ends.
 */
static void
pixl_queue_or_write_through(const PixlUsageRecord *rec, TimestampTz queued_at)
{
	int			waited_ms = 0;

	for (;;)
	{
		switch (pixl_enqueue(rec, queued_at))
		{
			case PIXL_QUEUED:
				return;
			case PIXL_NOT_SERVED:
				pixl_usage_write_through(rec, 1);
				return;
			case PIXL_QUEUE_FULL:
				break;
		}
		if (waited_ms == 0)
			pg_atomic_fetch_add_u64(&pixl_counters_of(MyDatabaseId)->waited, 1);
		if (waited_ms >= QUEUE_FULL_WAIT_MS)
		{
			pixl_usage_write_through(rec, 1);
			return;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited_ms++;
	}
}

void
pixl_usage_record(const PixlUsageEvent *event)
{
	PixlUsageRecord rec;

	if (pixl_usage == NULL)
		pixl_require_preload();

	memset(&rec, 0, sizeof(rec));
	rec.kind = PIXL_RECORD_EVENT;
	rec.u.event = *event;
	rec.u.event.dbid = MyDatabaseId;
	pixl_queue_or_write_through(&rec, event->at);
}

void
pixl_usage_record_response(const PixlUsageResponse *response)
{
	PixlUsageRecord rec;

	if (pixl_usage == NULL)
		pixl_require_preload();

	memset(&rec, 0, sizeof(rec));
	rec.kind = PIXL_RECORD_RESPONSE;
	rec.u.response = *response;
	rec.u.response.dbid = MyDatabaseId;
	pixl_queue_or_write_through(&rec, GetCurrentTimestamp());
}

void
pixl_usage_count_written_through(Oid dbid, int64 events, int64 responses)
{
	PixlQueue  *q = pixl_counters_of(dbid);

	pg_atomic_fetch_add_u64(&q->written_through, events);
	pg_atomic_fetch_add_u64(&q->responses_applied, responses);
}

void
pixl_usage_count_dropped(Oid dbid, int64 n)
{
	pg_atomic_fetch_add_u64(&pixl_counters_of(dbid)->dropped, n);
}

/* ---- consumer side (the worker of queue idx) ---- */

int
pixl_usage_queue_count(void)
{
	return pixl_usage ? pixl_usage->nqueues : 0;
}

const char *
pixl_usage_queue_dbname(int idx)
{
	return pixl_usage->queues[idx].dbname;
}

/* The worker connected to its database: producers may find the queue. */
void
pixl_usage_queue_attach(int idx, Oid dboid)
{
	PixlQueue  *q = &pixl_usage->queues[idx];

	SpinLockAcquire(&q->mutex);
	q->latch = MyLatch;
	SpinLockRelease(&q->mutex);
	pg_atomic_write_u32(&q->dboid, dboid);
}

void
pixl_usage_queue_detach(int idx)
{
	PixlQueue  *q = &pixl_usage->queues[idx];

	/* served stays: records queue up until the restarted worker takes them */
	SpinLockAcquire(&q->mutex);
	q->latch = NULL;
	SpinLockRelease(&q->mutex);
}

void
pixl_usage_queue_set_served(int idx, bool served)
{
	pg_atomic_write_u32(&pixl_usage->queues[idx].served, served ? 1 : 0);
}

void
pixl_usage_queue_set_state(int idx, PixlWorkerState state)
{
	pg_atomic_write_u32(&pixl_usage->queues[idx].state, (uint32) state);
}

PixlWorkerState
pixl_usage_queue_get_state(int idx)
{
	return (PixlWorkerState) pg_atomic_read_u32(&pixl_usage->queues[idx].state);
}

int64
pixl_usage_queue_length(int idx)
{
	PixlQueue  *q = &pixl_usage->queues[idx];
	uint64		used;

	SpinLockAcquire(&q->mutex);
	used = q->head - q->tail;
	SpinLockRelease(&q->mutex);
	return (int64) used;
}

/*
 * Copies up to max published records from the tail into buf, without
 * consuming them; returns how many.
 */
int
pixl_usage_queue_peek(int idx, PixlUsageRecord *buf, int max)
{
	PixlQueue  *q = &pixl_usage->queues[idx];
	int			size = pixl_usage->queue_size;
	uint64		tail;
	uint64		head;
	int			n = 0;

	SpinLockAcquire(&q->mutex);
	tail = q->tail;
	head = q->head;
	SpinLockRelease(&q->mutex);

	while (n < max && tail + n < head)
	{
		uint64		pos = tail + n;
		PixlSlot   *slot = &pixl_slots[(Size) idx * size + pos % size];

		if (pg_atomic_read_u64(&slot->seq) != pos + 1)
			break;				/* a producer is still copying it in */
		pg_read_barrier();
		memcpy(&buf[n], &slot->rec, sizeof(PixlUsageRecord));
		n++;
	}
	return n;
}

/* The first n records are in the tables (or dropped): free their slots. */
void
pixl_usage_queue_consume(int idx, int n, int64 events, int64 responses,
						 bool flushed)
{
	PixlQueue  *q = &pixl_usage->queues[idx];

	SpinLockAcquire(&q->mutex);
	Assert(q->head - q->tail >= (uint64) n);
	q->tail += n;
	SpinLockRelease(&q->mutex);

	if (flushed)
	{
		pg_atomic_fetch_add_u64(&q->flushed, events);
		pg_atomic_fetch_add_u64(&q->responses_applied, responses);
		pg_atomic_write_u64(&q->last_flush, (uint64) GetCurrentTimestamp());
	}
	else
		pg_atomic_fetch_add_u64(&q->dropped, events + responses);
}

const char *
pixl_worker_state_name(PixlWorkerState state)
{
	switch (state)
	{
		case PIXL_WORKER_NOT_RUNNING:
			return "not running";
		case PIXL_WORKER_CONNECTING:
			return "connecting";
		case PIXL_WORKER_WAITING_FOR_DATABASE:
			return "waiting for database";
		case PIXL_WORKER_WAITING_FOR_EXTENSION:
			return "waiting for extension";
		case PIXL_WORKER_SERVING:
			return "serving";
		case PIXL_WORKER_STOPPING:
			return "stopping";
	}
	return "unknown";
}

void
pixl_usage_queue_stats(int idx, PixlQueueStats *stats)
{
	PixlQueue  *q;

	memset(stats, 0, sizeof(*stats));
	if (idx >= pixl_usage->nqueues)
	{
		q = &pixl_usage->other;
		stats->dbname = NULL;
		stats->state = PIXL_WORKER_NOT_RUNNING;
	}
	else
	{
		int			size = pixl_usage->queue_size;
		uint64		tail;
		uint64		head;

		q = &pixl_usage->queues[idx];
		stats->dbname = q->dbname;
		stats->state = (PixlWorkerState) pg_atomic_read_u32(&q->state);

		SpinLockAcquire(&q->mutex);
		tail = q->tail;
		head = q->head;
		if (head > tail)
		{
			PixlSlot   *slot = &pixl_slots[(Size) idx * size + tail % size];

			/* a slot still being filled has no time yet: count it as now */
			if (pg_atomic_read_u64(&slot->seq) == tail + 1)
				stats->oldest_queued = slot->queued_at;
		}
		SpinLockRelease(&q->mutex);
		stats->queued = (int64) (head - tail);
		if (head > tail && stats->oldest_queued == 0)
			stats->oldest_queued = GetCurrentTimestamp();
	}
	stats->flushed = (int64) pg_atomic_read_u64(&q->flushed);
	stats->written_through = (int64) pg_atomic_read_u64(&q->written_through);
	stats->waited = (int64) pg_atomic_read_u64(&q->waited);
	stats->dropped = (int64) pg_atomic_read_u64(&q->dropped);
	stats->responses_applied = (int64) pg_atomic_read_u64(&q->responses_applied);
	stats->last_flush = (TimestampTz) pg_atomic_read_u64(&q->last_flush);
}

/* ---- saving and loading on clean shutdown and start ---- */

/*
 * on_shmem_exit callback of the postmaster.  On a clean exit (code 0) the
 * queued records and the last request id go to a file; on a crash restart
 * only the last id is kept, in the postmaster's memory.
 */
static void
pixl_usage_queue_shutdown(int code, Datum arg)
{
	FILE	   *file;
	PixlQueueFileHeader hdr;
	int			size;

	if (pixl_usage == NULL)
		return;
	pixl_postmaster_last_id = Max(pixl_postmaster_last_id,
								  pg_atomic_read_u64(&pixl_usage->last_request_id));
	if (code != 0)
		return;

	size = pixl_usage->queue_size;
	file = AllocateFile(PIXL_QUEUE_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;

	hdr.magic = PIXL_QUEUE_FILE_MAGIC;
	hdr.version = PIXL_QUEUE_FILE_VERSION;
	hdr.record_size = sizeof(PixlUsageRecord);
	hdr.nqueues = pixl_usage->nqueues;
	hdr.last_request_id = (int64) pg_atomic_read_u64(&pixl_usage->last_request_id);
	if (fwrite(&hdr, sizeof(hdr), 1, file) != 1)
		goto error;

	for (int i = 0; i < pixl_usage->nqueues; i++)
	{
		PixlQueue  *q = &pixl_usage->queues[i];
		int64		count = 0;
		uint64		pos;

		/* every backend is gone: only published slots count */
		for (pos = q->tail; pos < q->head; pos++)
		{
			if (pg_atomic_read_u64(&pixl_slots[(Size) i * size + pos % size].seq) != pos + 1)
				break;
			count++;
		}
		if (fwrite(q->dbname, NAMEDATALEN, 1, file) != 1 ||
			fwrite(&count, sizeof(count), 1, file) != 1)
			goto error;
		for (pos = q->tail; pos < q->tail + count; pos++)
		{
			PixlSlot   *slot = &pixl_slots[(Size) i * size + pos % size];

			if (fwrite(&slot->queued_at, sizeof(TimestampTz), 1, file) != 1 ||
				fwrite(&slot->rec, sizeof(PixlUsageRecord), 1, file) != 1)
				goto error;
		}
		if (count > 0)
			elog(LOG, "pixltoken: saved %lld queued usage records of database \"%s\"",
				 (long long) count, q->dbname);
	}

	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(PIXL_QUEUE_FILE ".tmp", PIXL_QUEUE_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", PIXL_QUEUE_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(PIXL_QUEUE_FILE ".tmp");
}

/*
 * Loads the file of the last clean shutdown into the queues (by database
 * name), then removes it so that a later crash cannot load it twice.
 */
static void
pixl_usage_queue_load(void)
{
	FILE	   *file;
	PixlQueueFileHeader hdr;
	int			size = pixl_usage->queue_size;

	file = AllocateFile(PIXL_QUEUE_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", PIXL_QUEUE_FILE)));
		return;
	}

	if (fread(&hdr, sizeof(hdr), 1, file) != 1 ||
		hdr.magic != PIXL_QUEUE_FILE_MAGIC ||
		hdr.version != PIXL_QUEUE_FILE_VERSION ||
		hdr.record_size != sizeof(PixlUsageRecord) ||
		hdr.nqueues < 0 || hdr.nqueues > PIXL_MAX_QUEUES)
	{
		ereport(LOG,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ignoring file \"%s\" of an incompatible format", PIXL_QUEUE_FILE)));
		goto done;
	}

	if ((uint64) hdr.last_request_id > pg_atomic_read_u64(&pixl_usage->last_request_id))
		pg_atomic_write_u64(&pixl_usage->last_request_id, (uint64) hdr.last_request_id);

	for (int i = 0; i < hdr.nqueues; i++)
	{
		char		dbname[NAMEDATALEN];
		int64		count;
		int			idx = -1;
		int64		lost = 0;

		if (fread(dbname, NAMEDATALEN, 1, file) != 1 ||
			fread(&count, sizeof(count), 1, file) != 1 || count < 0)
			goto corrupt;
		dbname[NAMEDATALEN - 1] = '\0';
		for (int j = 0; j < pixl_usage->nqueues; j++)
		{
			if (strcmp(pixl_usage->queues[j].dbname, dbname) == 0)
				idx = j;
		}
		for (int64 k = 0; k < count; k++)
		{
			TimestampTz queued_at;
			PixlUsageRecord rec;
			PixlQueue  *q;
			PixlSlot   *slot;

			if (fread(&queued_at, sizeof(queued_at), 1, file) != 1 ||
				fread(&rec, sizeof(rec), 1, file) != 1)
				goto corrupt;
			if (idx < 0)
			{
				lost++;
				continue;
			}
			q = &pixl_usage->queues[idx];
			if (q->head - q->tail >= (uint64) size)
			{
				lost++;
				continue;
			}
			slot = &pixl_slots[(Size) idx * size + q->head % size];
			slot->queued_at = queued_at;
			slot->rec = rec;
			pg_atomic_write_u64(&slot->seq, q->head + 1);
			q->head++;
		}
		if (count > lost)
			elog(LOG, "pixltoken: loaded %lld queued usage records of database \"%s\"",
				 (long long) (count - lost), dbname);
		if (lost > 0)
			ereport(LOG,
					(errmsg("pixltoken: discarded %lld saved usage records of database \"%s\"",
							(long long) lost, dbname),
					 errdetail("The database is no longer in pixltoken.database, or pixltoken.queue_size shrank.")));
	}
	goto done;

corrupt:
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("file \"%s\" is truncated", PIXL_QUEUE_FILE)));
done:
	FreeFile(file);
	unlink(PIXL_QUEUE_FILE);
}
