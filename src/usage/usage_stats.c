/*-------------------------------------------------------------------------
 *
 * usage_stats.c
 *		Per-database counters of the usage pipeline and the state of each
 *		database's worker, read by pixl_stats().
 *
 * One entry per ring (usage_ring.c) and one more for the databases without
 * a ring (counted, never written).  Locking protocol:
 *
 *	- served, the worker state and every counter are atomics, written and
 *	  read without a lock (pixl_stats may see them a moment apart).
 *	- last_error and last_error_at are protected by the entry's spinlock;
 *	  only their bytes are copied under it (the message is cut to size
 *	  before).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/atomics.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "usage/usage_ring.h"
#include "usage/usage_stats.h"

typedef struct PixlUsageEntry
{
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
	pg_atomic_uint64 spooled_since;	/* TimestampTz; 0: no batch spooled */
	slock_t		mutex;			/* protects last_error_at, last_error */
	TimestampTz last_error_at;
	char		last_error[256];
} PixlUsageEntry;

/* entries[0 .. nrings - 1]: the rings; entries[nrings]: no ring. */
static PixlUsageEntry *pixl_entries = NULL;
static int	pixl_nrings = 0;

static Size
pixl_usage_stats_size(int nrings)
{
	return mul_size(nrings + 1, sizeof(PixlUsageEntry));
}

void
pixl_usage_stats_shmem_request(void)
{
	RequestAddinShmemSpace(pixl_usage_stats_size(list_length(pixl_usage_database_names())));
}

/* Called with AddinShmemInitLock held (pixltoken.c), after the rings. */
void
pixl_usage_stats_shmem_startup(void)
{
	bool		found;

	pixl_nrings = list_length(pixl_usage_database_names());
	pixl_entries = ShmemInitStruct("pixltoken usage stats",
								   pixl_usage_stats_size(pixl_nrings), &found);
	if (found)
		return;
	for (int i = 0; i <= pixl_nrings; i++)
	{
		PixlUsageEntry *e = &pixl_entries[i];

		pg_atomic_init_u32(&e->served, 0);
		pg_atomic_init_u32(&e->state, PIXL_WORKER_NOT_RUNNING);
		pg_atomic_init_u64(&e->flushed, 0);
		pg_atomic_init_u64(&e->dropped, 0);
		pg_atomic_init_u64(&e->sampled_out, 0);
		pg_atomic_init_u64(&e->responses_applied, 0);
		pg_atomic_init_u64(&e->responses_ignored, 0);
		pg_atomic_init_u64(&e->counts_folded, 0);
		pg_atomic_init_u64(&e->counts_lost, 0);
		pg_atomic_init_u64(&e->dead_letters, 0);
		pg_atomic_init_u64(&e->last_flush, 0);
		SpinLockInit(&e->mutex);
		e->last_error_at = 0;
		e->last_error[0] = '\0';
	}
}

/* The entry of ring idx; -1 (or count): of the databases without one. */
static inline PixlUsageEntry *
pixl_entry(int idx)
{
	return &pixl_entries[idx >= 0 ? idx : pixl_nrings];
}

/* Adds n to a counter of ring idx (-1: of the databases without one). */
void
pixl_usage_stats_add(int idx, PixlUsageCounter counter, int64 n)
{
	PixlUsageEntry *e = pixl_entry(idx);
	pg_atomic_uint64 *c;

	switch (counter)
	{
		case PIXL_COUNT_DROPPED:
			c = &e->dropped;
			break;
		case PIXL_COUNT_SAMPLED_OUT:
			c = &e->sampled_out;
			break;
		case PIXL_COUNT_COUNTS_LOST:
			c = &e->counts_lost;
			break;
		case PIXL_COUNT_RESPONSES_IGNORED:
			c = &e->responses_ignored;
			break;
		default:
			elog(ERROR, "unknown usage counter %d", (int) counter);
			return;
	}
	pg_atomic_fetch_add_u64(c, (uint64) n);
}

void
pixl_usage_stats_set_served(int idx, int schema_version)
{
	pg_atomic_write_u32(&pixl_entries[idx].served, (uint32) schema_version);
}

void
pixl_usage_stats_set_state(int idx, PixlWorkerState state)
{
	pg_atomic_write_u32(&pixl_entries[idx].state, (uint32) state);
}

PixlWorkerState
pixl_usage_stats_get_state(int idx)
{
	return (PixlWorkerState) pg_atomic_read_u32(&pixl_entries[idx].state);
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
		case PIXL_WORKER_SHIPPING:
			return "shipping";
		case PIXL_WORKER_WAITING_FOR_PRIMARY:
			return "waiting for primary";
		case PIXL_WORKER_WAITING_FOR_REPLAY:
			return "waiting for replay";
		case PIXL_WORKER_NO_NODE_ID:
			return "no node id";
	}
	return "unknown";
}

/* Records of ring idx written to the tables. */
void
pixl_usage_stats_count_flushed(int idx, int64 events, int64 responses)
{
	PixlUsageEntry *e = &pixl_entries[idx];

	pg_atomic_fetch_add_u64(&e->flushed, events);
	pg_atomic_fetch_add_u64(&e->responses_applied, responses);
	pg_atomic_write_u64(&e->last_flush, (uint64) GetCurrentTimestamp());
}

/* A standby's batch waits in its spool since then (0: none). */
void
pixl_usage_stats_set_spooled(int idx, TimestampTz since)
{
	pg_atomic_write_u64(&pixl_entries[idx].spooled_since, (uint64) since);
}

void
pixl_usage_stats_count_folded(int idx, int64 counts)
{
	pg_atomic_fetch_add_u64(&pixl_entries[idx].counts_folded, counts);
}

/* n records or counts went to the dead-letter table; error says why. */
void
pixl_usage_stats_count_dead(int idx, int64 n, const char *error)
{
	PixlUsageEntry *e = &pixl_entries[idx];
	char		buf[sizeof(e->last_error)];
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_fetch_add_u64(&e->dead_letters, n);
	strlcpy(buf, error, sizeof(buf));
	SpinLockAcquire(&e->mutex);
	memcpy(e->last_error, buf, sizeof(buf));
	e->last_error_at = now;
	SpinLockRelease(&e->mutex);
}

void
pixl_usage_stats_get(int idx, PixlUsageStats *stats)
{
	PixlUsageEntry *e = pixl_entry(idx < pixl_nrings ? idx : -1);

	memset(stats, 0, sizeof(*stats));
	if (idx >= pixl_nrings)
	{
		stats->dbname = NULL;
		stats->state = PIXL_WORKER_NOT_RUNNING;
	}
	else
	{
		stats->dbname = pixl_usage_ring_dbname(idx);
		stats->state = (PixlWorkerState) pg_atomic_read_u32(&e->state);
		stats->queued = pixl_usage_ring_depth(idx, &stats->oldest_queued);
	}
	stats->flushed = (int64) pg_atomic_read_u64(&e->flushed);
	stats->dropped = (int64) pg_atomic_read_u64(&e->dropped);
	stats->sampled_out = (int64) pg_atomic_read_u64(&e->sampled_out);
	stats->responses_applied = (int64) pg_atomic_read_u64(&e->responses_applied);
	stats->responses_ignored = (int64) pg_atomic_read_u64(&e->responses_ignored);
	stats->counts_folded = (int64) pg_atomic_read_u64(&e->counts_folded);
	stats->counts_lost = (int64) pg_atomic_read_u64(&e->counts_lost);
	stats->dead_letters = (int64) pg_atomic_read_u64(&e->dead_letters);
	stats->last_flush = (TimestampTz) pg_atomic_read_u64(&e->last_flush);
	stats->spooled_since = (TimestampTz) pg_atomic_read_u64(&e->spooled_since);
	SpinLockAcquire(&e->mutex);
	stats->last_error_at = e->last_error_at;
	memcpy(stats->last_error, e->last_error, sizeof(stats->last_error));
	SpinLockRelease(&e->mutex);
}
