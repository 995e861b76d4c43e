/*-------------------------------------------------------------------------
 *
 * usage_ring.c
 *		The shared-memory rings of raw usage records: one bounded ring per
 *		database of pixltoken.database, of pixltoken.queue_size slots; many
 *		producers (backends), one consumer (that database's worker).
 *
 * Locking protocol:
 *
 *	- head (next slot to fill) and tail (oldest slot not yet written to the
 *	  tables) are 64-bit positions that only grow; they and the worker's
 *	  latch pointer are protected by the ring's spinlock.  Nothing but
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
 *	- The dump file (usage_dumpfile.c) reads and refills the rings in the
 *	  postmaster only, when no other process is attached.
 *
 * Routing (which ring, counts, sampling) is usage_route.c's, the counters
 * are usage_stats.c's; this file only offers the ring by database name,
 * pushing into it and taking from it.  A producer sets the worker's latch
 * when the ring is full or crosses half full; otherwise the worker wakes
 * every pixltoken.flush_interval.  After a crash (of any backend: shared
 * memory is reinitialised) what was queued is lost.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "usage/usage_ring.h"

typedef struct PixlSlot
{
	pg_atomic_uint64 seq;		/* pos + 1 once the record at pos is in */
	TimestampTz queued_at;
	PixlUsageRecord rec;
} PixlSlot;

typedef struct PixlRing
{
	slock_t		mutex;			/* protects head, tail, latch */
	uint64		head;
	uint64		tail;
	Latch	   *latch;			/* the serving worker's, or NULL */
	char		dbname[NAMEDATALEN];
} PixlRing;

typedef struct PixlRingsShared
{
	int			nrings;
	int			ring_size;
	PixlRing	rings[FLEXIBLE_ARRAY_MEMBER];
} PixlRingsShared;

static PixlRingsShared *pixl_rings = NULL;
static PixlSlot *pixl_slots = NULL;

static char *pixl_database_list = NULL; /* pixltoken.database */
static int	pixl_queue_size = 16384;	/* pixltoken.queue_size */

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
pixl_usage_ring_init(void)
{
	const char *raw = GetConfigOption("pixltoken.database", true, false);
	List	   *names;
	const char *error = NULL;

	/*
	 * A placeholder value that the check hook rejects would silently become
	 * the default: refuse to start instead, saying why.
	 */
	if (raw != NULL && !split_database_names(raw, &names, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"pixltoken.database\": %s", error),
				 errhint("List at most %d database names of at most %d bytes each, separated by commas.",
						 PIXL_MAX_QUEUES, NAMEDATALEN - 1)));

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
pixl_rings_shared_size(int nrings)
{
	return add_size(offsetof(PixlRingsShared, rings),
					mul_size(nrings, sizeof(PixlRing)));
}

static Size
pixl_slots_size(int nrings)
{
	return mul_size(mul_size(nrings, pixl_queue_size), sizeof(PixlSlot));
}

void
pixl_usage_ring_shmem_request(void)
{
	int			n = list_length(pixl_usage_database_names());

	RequestAddinShmemSpace(pixl_rings_shared_size(n));
	RequestAddinShmemSpace(pixl_slots_size(n));
}

/* Called with AddinShmemInitLock held (pixltoken.c). */
bool
pixl_usage_ring_shmem_startup(void)
{
	List	   *names = pixl_usage_database_names();
	int			n = list_length(names);
	bool		found;
	bool		found_slots;

	pixl_rings = ShmemInitStruct("pixltoken usage queues",
								 pixl_rings_shared_size(n), &found);
	pixl_slots = ShmemInitStruct("pixltoken usage ring",
								 pixl_slots_size(n), &found_slots);
	if (!found)
	{
		int			i = 0;
		ListCell   *lc;
		Size		nslots = (Size) n * pixl_queue_size;

		pixl_rings->nrings = n;
		pixl_rings->ring_size = pixl_queue_size;
		foreach(lc, names)
		{
			PixlRing   *r = &pixl_rings->rings[i++];

			SpinLockInit(&r->mutex);
			r->head = 0;
			r->tail = 0;
			r->latch = NULL;
			strlcpy(r->dbname, (char *) lfirst(lc), NAMEDATALEN);
		}
		for (Size s = 0; s < nslots; s++)
			pg_atomic_init_u64(&pixl_slots[s].seq, 0);
	}
	return !found;
}

static inline PixlSlot *
pixl_slot(int idx, uint64 pos)
{
	int			size = pixl_rings->ring_size;

	return &pixl_slots[(Size) idx * size + pos % size];
}

int
pixl_usage_ring_count(void)
{
	return pixl_rings ? pixl_rings->nrings : 0;
}

int64
pixl_usage_ring_capacity(void)
{
	return pixl_rings ? pixl_rings->ring_size : 0;
}

const char *
pixl_usage_ring_dbname(int idx)
{
	return pixl_rings->rings[idx].dbname;
}

/* The ring of database dbname, or -1. */
int
pixl_usage_ring_of_name(const char *dbname)
{
	if (pixl_rings == NULL)
		pixl_require_preload();
	for (int i = 0; dbname && i < pixl_rings->nrings; i++)
	{
		if (strcmp(pixl_rings->rings[i].dbname, dbname) == 0)
			return i;
	}
	return -1;
}

/* ---- producers ---- */

/* Puts one record into ring idx; false when it is full. */
bool
pixl_usage_ring_push(int idx, const PixlUsageRecord *rec, TimestampTz queued_at)
{
	PixlRing   *r;
	PixlSlot   *slot;
	uint64		pos = 0;
	uint64		used;
	bool		full;
	Latch	   *latch;
	int			size = pixl_rings->ring_size;

	Assert(idx >= 0 && idx < pixl_rings->nrings);
	r = &pixl_rings->rings[idx];

	SpinLockAcquire(&r->mutex);
	full = (r->head - r->tail >= (uint64) size);
	if (!full)
		pos = r->head++;
	used = r->head - r->tail;
	latch = r->latch;
	SpinLockRelease(&r->mutex);

	if (full)
	{
		if (latch)
			SetLatch(latch);
		return false;
	}

	slot = pixl_slot(idx, pos);
	slot->queued_at = queued_at;
	memcpy(&slot->rec, rec, sizeof(PixlUsageRecord));
	pg_write_barrier();
	pg_atomic_write_u64(&slot->seq, pos + 1);

	/*
	 * Wake the worker when the ring crosses half full; it then drains the
	 * ring before it sleeps again, so later producers need not signal (and
	 * touch the latch's cache line) until the next crossing.
	 */
	if (latch && used * 2 > (uint64) size && (used - 1) * 2 <= (uint64) size)
		SetLatch(latch);
	return true;
}

/* ---- the consumer (the worker of ring idx) ---- */

/* The worker connected to its database: producers wake it. */
void
pixl_usage_ring_attach(int idx)
{
	PixlRing   *r = &pixl_rings->rings[idx];

	SpinLockAcquire(&r->mutex);
	r->latch = MyLatch;
	SpinLockRelease(&r->mutex);
}

void
pixl_usage_ring_detach(int idx)
{
	PixlRing   *r = &pixl_rings->rings[idx];

	/* records queue up until the restarted worker takes them */
	SpinLockAcquire(&r->mutex);
	r->latch = NULL;
	SpinLockRelease(&r->mutex);
}

/*
 * Copies up to max published records from the tail into buf, without
 * consuming them; returns how many.
 */
int
pixl_usage_ring_peek(int idx, PixlUsageRecord *buf, int max)
{
	PixlRing   *r = &pixl_rings->rings[idx];
	uint64		tail;
	uint64		head;
	int			n = 0;

	SpinLockAcquire(&r->mutex);
	tail = r->tail;
	head = r->head;
	SpinLockRelease(&r->mutex);

	while (n < max && tail + n < head)
	{
		uint64		pos = tail + n;
		PixlSlot   *slot = pixl_slot(idx, pos);

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
pixl_usage_ring_consume(int idx, int n)
{
	PixlRing   *r = &pixl_rings->rings[idx];

	SpinLockAcquire(&r->mutex);
	Assert(r->head - r->tail >= (uint64) n);
	r->tail += n;
	SpinLockRelease(&r->mutex);
}

/* ---- observers ---- */

int64
pixl_usage_ring_depth(int idx, TimestampTz *oldest_queued)
{
	PixlRing   *r = &pixl_rings->rings[idx];
	uint64		tail;
	uint64		head;

	*oldest_queued = 0;
	SpinLockAcquire(&r->mutex);
	tail = r->tail;
	head = r->head;
	if (head > tail)
	{
		PixlSlot   *slot = pixl_slot(idx, tail);

		/* the oldest slot cannot be refilled while we hold the lock */
		if (pg_atomic_read_u64(&slot->seq) == tail + 1)
			*oldest_queued = slot->queued_at;
	}
	SpinLockRelease(&r->mutex);

	/* a slot still being filled has no time yet: count it as now */
	if (head > tail && *oldest_queued == 0)
		*oldest_queued = GetCurrentTimestamp();
	return (int64) (head - tail);
}

/* ---- the dump file: postmaster only, no other process attached ---- */

/* How many records from the tail are published (the rest were cut off). */
int64
pixl_usage_ring_published(int idx)
{
	PixlRing   *r = &pixl_rings->rings[idx];
	int64		count = 0;

	for (uint64 pos = r->tail; pos < r->head; pos++)
	{
		if (pg_atomic_read_u64(&pixl_slot(idx, pos)->seq) != pos + 1)
			break;
		count++;
	}
	return count;
}

/* The k-th record from the tail (k < pixl_usage_ring_published()). */
const PixlUsageRecord *
pixl_usage_ring_at(int idx, int64 k, TimestampTz *queued_at)
{
	PixlSlot   *slot = pixl_slot(idx, pixl_rings->rings[idx].tail + k);

	*queued_at = slot->queued_at;
	return &slot->rec;
}

/* Appends a saved record; false when the ring is full. */
bool
pixl_usage_ring_restore(int idx, const PixlUsageRecord *rec,
						TimestampTz queued_at)
{
	PixlRing   *r = &pixl_rings->rings[idx];
	PixlSlot   *slot;

	Assert(!IsUnderPostmaster);
	if (r->head - r->tail >= (uint64) pixl_rings->ring_size)
		return false;
	slot = pixl_slot(idx, r->head);
	slot->queued_at = queued_at;
	slot->rec = *rec;
	pg_atomic_write_u64(&slot->seq, r->head + 1);
	r->head++;
	return true;
}
