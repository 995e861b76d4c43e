/*-------------------------------------------------------------------------
 *
 * usage_queue.c
 *		The shared-memory rings of raw usage records, and routing.
 *
 * Rings.  One bounded ring per database of pixltoken.database, of
 * pixltoken.queue_size slots; many producers (backends), one consumer (that
 * database's worker).  Locking protocol:
 *
 *	- head (next slot to fill) and tail (oldest slot not yet written to the
 *	  tables) are 64-bit positions that only grow; they, the worker's latch
 *	  pointer and last_error are protected by the queue's spinlock.  Nothing
 *	  but reading and bumping them (and copying last_error's bytes) happens
 *	  under it: no palloc, no ereport, no memcpy of a record.
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
 * Routing (the request path; it never waits and never writes a table).  A
 * backend uses the ring of its own database (found by name once per
 * session).  When that database's worker found a 1.1 schema, every
 * verification is counted in usage_aggregate.c (exact counts, folded into
 * the rollups by the worker) and its raw row is queued unless it is a 429
 * that is not the token's sample of this second.  Until the worker has
 * looked (it is starting), or with a 1.0 schema (library upgraded, ALTER
 * EXTENSION not run yet), raw records carry their counts as in 1.0 and
 * nothing is sampled.  When the ring is full the raw row is dropped and
 * counted (and, for a record that carried its count, the count too).  A
 * database that is not in pixltoken.database keeps nothing: its
 * verifications are counted in the pixl_stats() row of datname NULL
 * (counts_lost); the README says to add it to pixltoken.database.  A
 * producer sets the worker's latch when the ring is full or crosses half
 * full; otherwise the worker wakes every pixltoken.flush_interval.
 *
 * Shutdown.  What is still queued when the postmaster exits cleanly is
 * saved to a file, as pg_stat_statements saves its entries, and loaded into
 * the rings again at the next start.  After a crash (of any backend: shared
 * memory is reinitialised) what was queued is lost.
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
#include "commands/dbcommands.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "pixltoken.h"
#include "request_id.h"
#include "usage_aggregate.h"
#include "usage_queue.h"

#define PIXL_QUEUE_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pixltoken_queue.dat"
#define PIXL_QUEUE_FILE_MAGIC	0x50584c51	/* "PXLQ" */
#define PIXL_QUEUE_FILE_VERSION	2
#define PIXL_MAX_QUEUES		64

typedef struct PixlSlot
{
	pg_atomic_uint64 seq;		/* pos + 1 once the record at pos is in */
	TimestampTz queued_at;
	PixlUsageRecord rec;
} PixlSlot;

typedef struct PixlQueue
{
	slock_t		mutex;			/* protects head, tail, latch, last_error */
	uint64		head;
	uint64		tail;
	Latch	   *latch;			/* the serving worker's, or NULL */
	pg_atomic_uint32 dboid;		/* database of the connected worker */
	pg_atomic_uint32 served;	/* 0, or PIXL_SCHEMA_1_0 / PIXL_SCHEMA_1_1 */
	pg_atomic_uint32 state;		/* PixlWorkerState */
	pg_atomic_uint64 flushed;
	pg_atomic_uint64 dropped;
	pg_atomic_uint64 sampled_out;
	pg_atomic_uint64 responses_applied;
	pg_atomic_uint64 responses_ignored;
	pg_atomic_uint64 counts_folded;
	pg_atomic_uint64 counts_lost;
	pg_atomic_uint64 dead_letters;
	pg_atomic_uint64 last_flush;	/* TimestampTz */
	TimestampTz last_error_at;
	char		last_error[256];
	char		dbname[NAMEDATALEN];
} PixlQueue;

typedef struct PixlUsageShared
{
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
} PixlQueueFileHeader;

static PixlUsageShared *pixl_usage = NULL;
static PixlSlot *pixl_slots = NULL;

static char *pixl_database_list = NULL; /* pixltoken.database */
static int	pixl_queue_size = 16384;	/* pixltoken.queue_size */

static void pixl_usage_queue_shutdown(int code, Datum arg);
static void pixl_usage_queue_load(void);

/*
 * Splits a pixltoken.database value into its names, deduplicated, in
 * order.  Returns false with *error set for a value the queues cannot
 * serve in full: bad list syntax, an empty or too long name, too many.
 */
static bool
split_database_names(const char *value, List **result, const char **error)
{
	char	   *raw;
	List	   *names = NIL;
	ListCell   *lc;

	*result = NIL;
	if (value == NULL || value[0] == '\0')
		return true;
	raw = pstrdup(value);
	if (!SplitGUCList(raw, ',', &names))
	{
		*error = "invalid list syntax: use a comma-separated list of database names";
		return false;
	}
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		ListCell   *lc2;
		bool		dup = false;

		if (name[0] == '\0')
		{
			*error = "empty database name";
			return false;
		}
		if (strlen(name) >= NAMEDATALEN)
		{
			*error = psprintf("database name \"%.*s...\" is longer than %d bytes",
							  20, name, NAMEDATALEN - 1);
			return false;
		}
		foreach(lc2, *result)
		{
			if (strcmp((char *) lfirst(lc2), name) == 0)
				dup = true;
		}
		if (dup)
			continue;
		if (list_length(*result) >= PIXL_MAX_QUEUES)
		{
			*error = psprintf("more than %d databases", PIXL_MAX_QUEUES);
			return false;
		}
		*result = lappend(*result, pstrdup(name));
	}
	return true;
}

static bool
check_database_list(char **newval, void **extra, GucSource source)
{
	List	   *names;
	const char *error = NULL;

	if (split_database_names(*newval, &names, &error))
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("invalid value for parameter \"pixltoken.database\": %s", error);
	GUC_check_errhint("List at most %d database names of at most %d bytes each, separated by commas.",
					  PIXL_MAX_QUEUES, NAMEDATALEN - 1);
	return false;
}

void
pixl_usage_queue_init(void)
{
	DefineCustomStringVariable("pixltoken.database",
							   "Database, or comma-separated databases, whose usage tables the worker serves.",
							   "One background worker is started per database at server start.",
							   &pixl_database_list,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_LIST_INPUT,
							   check_database_list, NULL, NULL);

	DefineCustomIntVariable("pixltoken.queue_size",
							"Raw usage records the shared-memory ring holds per served database.",
							"When it is full, raw rows are dropped (counted); counts stay exact.",
							&pixl_queue_size,
							16384, 64, 4194304,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
}

/* The names of pixltoken.database (validated by its check hook). */
List *
pixl_usage_database_names(void)
{
	List	   *names;
	const char *error = NULL;

	if (!split_database_names(pixl_database_list, &names, &error))
		elog(ERROR, "invalid pixltoken.database: %s", error);
	return names;
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
	pg_atomic_init_u64(&q->dropped, 0);
	pg_atomic_init_u64(&q->sampled_out, 0);
	pg_atomic_init_u64(&q->responses_applied, 0);
	pg_atomic_init_u64(&q->responses_ignored, 0);
	pg_atomic_init_u64(&q->counts_folded, 0);
	pg_atomic_init_u64(&q->counts_lost, 0);
	pg_atomic_init_u64(&q->dead_letters, 0);
	pg_atomic_init_u64(&q->last_flush, 0);
	q->last_error_at = 0;
	q->last_error[0] = '\0';
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
pixl_enqueue(int idx, const PixlUsageRecord *rec, TimestampTz queued_at)
{
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
 * The queue of this backend's database, by name (cached for the session):
 * found even before its worker has connected and said how to serve it.
 */
static int
pixl_my_queue(void)
{
	static int	my_idx = -2;

	if (my_idx == -2)
	{
		char	   *name = get_database_name(MyDatabaseId);

		my_idx = -1;
		for (int i = 0; name && i < pixl_usage->nqueues; i++)
		{
			if (strcmp(pixl_usage->queues[i].dbname, name) == 0)
				my_idx = i;
		}
	}
	return my_idx;
}

void
pixl_usage_record(const PixlUsageEvent *event)
{
	PixlUsageRecord rec;
	int			idx;
	PixlQueue  *q;
	uint32		schema;

	if (pixl_usage == NULL)
		pixl_require_preload();

	idx = pixl_my_queue();
	q = idx >= 0 ? &pixl_usage->queues[idx] : NULL;
	schema = q ? pg_atomic_read_u32(&q->served) : 0;
	if (q == NULL)
	{
		/* no worker serves this database: nothing could ever write it */
		pg_atomic_fetch_add_u64(&pixl_usage->other.counts_lost, 1);
		pg_atomic_fetch_add_u64(&pixl_usage->other.dropped, 1);
		pixl_request_id_mark_unkept(event->request_id);
		return;
	}

	memset(&rec, 0, sizeof(rec));
	rec.kind = PIXL_RECORD_EVENT;
	rec.u.event = *event;
	rec.u.event.dbid = MyDatabaseId;

	if (schema == PIXL_SCHEMA_1_1)
	{
		rec.u.event.counted = true;
		if (!pixl_usage_aggregate_add(&rec.u.event))
			pg_atomic_fetch_add_u64(&q->counts_lost, 1);
		if (event->status == 429 && !pixl_usage_aggregate_sample_429(&rec.u.event))
		{
			pg_atomic_fetch_add_u64(&q->sampled_out, 1);
			pixl_request_id_mark_unkept(event->request_id);
			return;
		}
	}
	if (pixl_enqueue(idx, &rec, event->at) != PIXL_QUEUED)
	{
		pg_atomic_fetch_add_u64(&q->dropped, 1);
		if (!rec.u.event.counted)
			pg_atomic_fetch_add_u64(&q->counts_lost, 1);
		pixl_request_id_mark_unkept(event->request_id);
	}
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
	if (pixl_enqueue(pixl_my_queue(), &rec, GetCurrentTimestamp()) != PIXL_QUEUED)
		pg_atomic_fetch_add_u64(&pixl_counters_of(MyDatabaseId)->responses_ignored, 1);
}

void
pixl_usage_count_response_ignored(void)
{
	if (pixl_usage == NULL)
		pixl_require_preload();
	pg_atomic_fetch_add_u64(&pixl_counters_of(MyDatabaseId)->responses_ignored, 1);
}

/* ---- consumer side (the worker of queue idx) ---- */

int
pixl_usage_queue_count(void)
{
	return pixl_usage ? pixl_usage->nqueues : 0;
}

int64
pixl_usage_queue_capacity(void)
{
	return pixl_usage ? pixl_usage->queue_size : 0;
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
pixl_usage_queue_set_served(int idx, int schema_version)
{
	pg_atomic_write_u32(&pixl_usage->queues[idx].served, (uint32) schema_version);
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

void
pixl_usage_queue_count_folded(int idx, int64 counts)
{
	pg_atomic_fetch_add_u64(&pixl_usage->queues[idx].counts_folded, counts);
}

/* n records or counts went to the dead-letter table; error says why. */
void
pixl_usage_queue_count_dead(int idx, int64 n, const char *error)
{
	PixlQueue  *q = &pixl_usage->queues[idx];
	char		buf[sizeof(q->last_error)];
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_fetch_add_u64(&q->dead_letters, n);
	strlcpy(buf, error, sizeof(buf));
	SpinLockAcquire(&q->mutex);
	memcpy(q->last_error, buf, sizeof(buf));
	q->last_error_at = now;
	SpinLockRelease(&q->mutex);
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
	stats->dropped = (int64) pg_atomic_read_u64(&q->dropped);
	stats->sampled_out = (int64) pg_atomic_read_u64(&q->sampled_out);
	stats->responses_applied = (int64) pg_atomic_read_u64(&q->responses_applied);
	stats->responses_ignored = (int64) pg_atomic_read_u64(&q->responses_ignored);
	stats->counts_folded = (int64) pg_atomic_read_u64(&q->counts_folded);
	stats->counts_lost = (int64) pg_atomic_read_u64(&q->counts_lost);
	stats->dead_letters = (int64) pg_atomic_read_u64(&q->dead_letters);
	stats->last_flush = (TimestampTz) pg_atomic_read_u64(&q->last_flush);
	SpinLockAcquire(&q->mutex);
	stats->last_error_at = q->last_error_at;
	memcpy(stats->last_error, q->last_error, sizeof(stats->last_error));
	SpinLockRelease(&q->mutex);
}

/* ---- saving and loading on clean shutdown and start ---- */

/*
 * on_shmem_exit callback of the postmaster.  On a clean exit (code 0) the
 * queued records go to a file; after a crash nothing is saved.
 */
static void
pixl_usage_queue_shutdown(int code, Datum arg)
{
	FILE	   *file;
	PixlQueueFileHeader hdr;
	int			size;

	if (pixl_usage == NULL || code != 0)
		return;

	size = pixl_usage->queue_size;
	file = AllocateFile(PIXL_QUEUE_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;

	hdr.magic = PIXL_QUEUE_FILE_MAGIC;
	hdr.version = PIXL_QUEUE_FILE_VERSION;
	hdr.record_size = sizeof(PixlUsageRecord);
	hdr.nqueues = pixl_usage->nqueues;
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
