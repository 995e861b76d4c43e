/*-------------------------------------------------------------------------
 *
 * rate_limit.c
 *		The rolling one-minute rate limit, kept in shared memory.
 *
 * The window.  Each tracked (database, token) pair has a ring of 61
 * per-second counters covering the seconds s-60 .. s, where s is the newest
 * second the entry has seen, and the running total of the ring.  A request
 * in second s is admitted iff that total is below the limit.
 *
 *	- Never more than `limit` accepted in any rolling 60 s: a request at time
 *	  v with u-60 < v <= u has floor(v) >= floor(u)-60, so every request of
 *	  the 60 s ending at an admission u is in the ring when u is admitted,
 *	  and the total stays below the limit before each admission.
 *	- At most 1 s later than an exact sliding log: a request at t_k (in
 *	  second k) leaves the ring at second k+61, i.e. at floor(t_k)+61 <=
 *	  t_k+61, while an exact log would release it at t_k+60.
 *
 * So a 429's retry_after_ms walks the buckets from the oldest to find when
 * enough requests leave the window (also when a lowered limit left the
 * total above the new limit), and reset_at is when `remaining` next grows.
 * Backends read the clock before taking the entry's spinlock, so their
 * seconds may arrive out of order by a few microseconds; a second older than
 * the ring's newest is counted in the newest, which only keeps a request in
 * the window longer.  Counters are uint16: a total never exceeds the
 * largest limit, 1000.
 *
 * One limit across nodes.  Each node (a primary and its hot standbys, which
 * share nothing at run time) holds pixltoken.rate_limit_share of every
 * limit and admits at most its quota, floor(limit x share + 1e-6), in any
 * rolling 60 s: the window above with the quota as its limit.  With shares
 * summing to at most 1 over n nodes, the quotas sum to at most
 * limit + n x 1e-6 (plus the double rounding of share and product, below
 * 1e-12 for limits up to 1000), an integer below limit + 1 for any n under
 * a million: so at most `limit` across the cluster.  The 1e-6 keeps a
 * product that should be a whole number (0.29 x 100) from rounding down to
 * one less.  The quota may be 0 (a limit below 1/share): there is no room
 * that could be given to a node without breaking the sum, so that node
 * answers every such request 429 with retry_after_ms of a whole window and
 * keeps no entry for it.  The share is read per request (reload changes it
 * at once; a lowered quota is handled like a lowered limit); share 1, the
 * default, skips the multiplication.
 *
 * Locking protocol.  The table is a partitioned shared dynahash with
 * RATE_PARTITIONS named LWLocks; an entry's partition is its hash code
 * modulo RATE_PARTITIONS.
 *
 *	- To find an entry and update its counters: hold its partition lock in
 *	  LW_SHARED and take the entry's spinlock.  Nothing under the spinlock
 *	  allocates, reports or checks for interrupts: values are copied out
 *	  and the decision is computed after release.
 *	- To insert an entry: hold its partition lock in LW_EXCLUSIVE.
 *	- To delete entries (the sweep of idle ones): hold every partition lock
 *	  in LW_EXCLUSIVE, taken in ascending order, and never while holding one
 *	  of them already.
 *	- The entry count, the per-store counts, the sweep clock and the
 *	  counters are atomics and need no lock; full_until is written once,
 *	  when the shared memory is initialised.
 *
 * Capacity is pixltoken.max_tracked_tokens.  Each store may hold at most
 * its fair share of it, a eighth (at least 10 entries): a store that
 * churns through tokens fails its own new tokens closed, not other stores'.
 * Stores are told apart by a hash of their id (key.store_hash; 0: no
 * store given, no share applies) counted in RATE_STORE_BUCKETS atomics, so
 * two stores whose hashes share a bucket share one budget.  Entries idle for
 * over 61 s (an empty window: nothing is lost) are evicted in bulk, in one
 * pass under every partition lock, when the table is 90% full or a store's
 * share is used up; the pass frees every idle entry and notes the second at
 * which the next entry can become idle, and no pass runs before it (so a
 * pass never runs only to free nothing again a second later).  If there is
 * still no room the request fails closed: a 429 with retry_after_ms 1000,
 * counted by pixl_rate_limit_table_full_rejections.
 *
 * Crash restarts.  The counters live in shared memory only.  A clean
 * shutdown removes pg_stat_tmp/pixltoken_rate_limit.running; a crash (of a
 * backend, which reinitialises shared memory, or of the whole server)
 * leaves it, and the next initialisation then starts every window full:
 * until 61 s after it, a token that enters the table is charged its whole
 * limit in the second of the restart.  So no token exceeds its limit in
 * any 60 s window across a crash, at the price of a minute of 429s.  A clean
 * restart resets the counters (SPEC allows it); an immediate shutdown
 * (pg_ctl -m immediate), whose postmaster exits as if clean, counts as a
 * crash: pg_control says the server did not shut down.

 * Size.  An entry is 24 bytes of key, 8 of spinlock, total and newest
 * second, and 122 of counters: 154, MAXALIGNed to 160, plus dynahash's
 * 16-byte element header and about 8 bytes of bucket pointer per element:
 * hash_estimate_size() gives about 185 bytes per tracked token, so one
 * million tokens take about 185 MB (see pixl_rate_limit_shmem_size(), which
 * the regression test checks against 256 MB).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "common/hashfn.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

#include "pixltoken.h"
#include "rate_limit.h"

#define RATE_WINDOW_SECS	60
#define RATE_BUCKETS		(RATE_WINDOW_SECS + 1)	/* seconds s-60 .. s */
#define RATE_PARTITIONS		16
#define RATE_TRANCHE		"pixltoken_rate_limit"
#define RATE_STORE_BUCKETS	1024
#define RATE_SHARE_DIVISOR	8	/* a store may hold 1/8 of the table */
#define RATE_SHARE_MIN		10
#define RATE_SWEEP_PERCENT	90	/* sweep once the table is this full */
#define RATE_QUOTA_EPSILON	1e-6	/* see "One limit across nodes" */
/* the count a window starts with after a crash: above every limit */
#define RATE_FULL			(PG_UINT16_MAX - 1)
/*
 * In pg_stat_tmp, which pg_basebackup leaves out (a standby made from a
 * running primary must not take the primary's mark for a crash of its own)
 * and which nothing empties at start.
 */
#define RATE_RUNNING_FILE	PG_STAT_TMP_DIR "/pixltoken_rate_limit.running"

typedef struct PixlRateEntry
{
	PixlRateKey key;			/* hash key; must be first */
	slock_t		mutex;			/* protects the fields below */
	uint16		total;			/* sum of counts[] */
	uint32		newest;			/* newest second seen, since 2000-01-01 */
	uint16		counts[RATE_BUCKETS];	/* second x lives in x % RATE_BUCKETS */
} PixlRateEntry;

typedef struct PixlRateShared
{
	LWLockPadded *locks;		/* RATE_PARTITIONS partition locks */
	uint32		full_from;		/* after a crash: the second of the restart */
	uint32		full_until;		/* windows start full before this second */
	pg_atomic_uint32 entries;	/* live entries, <= pixl_max_tracked_tokens */
	pg_atomic_uint64 next_sweep;	/* no sweep before this second */
	pg_atomic_uint64 full_rejections;
	pg_atomic_uint64 share_rejections;	/* of them, for a store's share */
	pg_atomic_uint64 sweeps;
	pg_atomic_uint64 swept;
	pg_atomic_uint32 store_entries[RATE_STORE_BUCKETS];
} PixlRateShared;

static PixlRateShared *rate_shared = NULL;
static HTAB *rate_table = NULL;

/* pixltoken.test_clock_offset: seconds added to the clock, for tests */
static int	rate_test_clock_offset = 0;

/* pixltoken.rate_limit_share */
double		pixl_rate_limit_share = 1.0;

PG_FUNCTION_INFO_V1(pixl_rate_limit_shmem_size);
PG_FUNCTION_INFO_V1(pixl_rate_limit_stats);

static bool
check_rate_limit_share(double *newval, void **extra, GucSource source)
{
	if (*newval <= 0.0)
	{
		GUC_check_errdetail("The share must be greater than 0 and at most 1.");
		GUC_check_errhint("Give each node a share of every rate limit so that the shares of all nodes sum to at most 1, e.g. 0.5 on a primary and on its one standby.");
		return false;
	}
	return true;
}

void
pixl_rate_limit_init(void)
{
	DefineCustomRealVariable("pixltoken.rate_limit_share",
							 "This node's share of every token's rate limit.",
							 "Each node admits at most floor(limit x share) requests of a token in any rolling 60 s; keep the shares of a primary and its standbys summing to at most 1.",
							 &pixl_rate_limit_share,
							 1.0, 0.0, 1.0,
							 PGC_SIGHUP,
							 0,
							 check_rate_limit_share, NULL, NULL);
	DefineCustomIntVariable("pixltoken.test_clock_offset",
							"Seconds added to the rate limiter's clock (for tests only).",
							"Lets a test see windows a minute later without waiting.",
							&rate_test_clock_offset,
							0, 0, 86400,
							PGC_SUSET,
							GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL | GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* This node's quota of a limit: see "One limit across nodes". */
int
pixl_rate_node_quota(int limit)
{
	if (pixl_rate_limit_share >= 1.0)
		return limit;
	return (int) floor((double) limit * pixl_rate_limit_share + RATE_QUOTA_EPSILON);
}

static int
store_share(void)
{
	return Max(pixl_max_tracked_tokens / RATE_SHARE_DIVISOR, RATE_SHARE_MIN);
}

/* In the postmaster: a clean shutdown says so for the next start. */
static void
rate_shmem_exit(int code, Datum arg)
{
	if (code == 0)
		unlink(RATE_RUNNING_FILE);
}

static Size
rate_shmem_size(int64 tokens)
{
	return add_size(MAXALIGN(sizeof(PixlRateShared)),
					hash_estimate_size(tokens, sizeof(PixlRateEntry)));
}

void
pixl_rate_limit_shmem_request(void)
{
	RequestAddinShmemSpace(rate_shmem_size(pixl_max_tracked_tokens));
	RequestNamedLWLockTranche(RATE_TRANCHE, RATE_PARTITIONS);
}

/* Called under AddinShmemInitLock. */
void
pixl_rate_limit_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	rate_shared = ShmemInitStruct("pixltoken rate limit",
								  sizeof(PixlRateShared), &found);
	if (!found)
	{
		bool		crashed;
		FILE	   *f;

		rate_shared->locks = GetNamedLWLockTranche(RATE_TRANCHE);
		pg_atomic_init_u32(&rate_shared->entries, 0);
		pg_atomic_init_u64(&rate_shared->next_sweep, 0);
		pg_atomic_init_u64(&rate_shared->full_rejections, 0);
		pg_atomic_init_u64(&rate_shared->share_rejections, 0);
		pg_atomic_init_u64(&rate_shared->sweeps, 0);
		pg_atomic_init_u64(&rate_shared->swept, 0);
		for (int i = 0; i < RATE_STORE_BUCKETS; i++)
			pg_atomic_init_u32(&rate_shared->store_entries[i], 0);

		/* the file is there if the last run did not end cleanly */
		crashed = (access(RATE_RUNNING_FILE, F_OK) == 0 ||
				   !pixl_last_shutdown_was_clean());
		rate_shared->full_from = (uint32) (GetCurrentTimestamp() / USECS_PER_SEC);
		rate_shared->full_until = crashed ? rate_shared->full_from + RATE_BUCKETS : 0;
		if (crashed)
			ereport(LOG,
					(errmsg("pixltoken: the server did not shut down cleanly; every rate-limit window starts full for %d seconds",
							RATE_BUCKETS)));
		f = AllocateFile(RATE_RUNNING_FILE, PG_BINARY_W);
		if (f == NULL || FreeFile(f) != 0)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("pixltoken: could not create file \"%s\": %m", RATE_RUNNING_FILE)));
		if (!IsUnderPostmaster)
			on_shmem_exit(rate_shmem_exit, (Datum) 0);
	}

	info.keysize = sizeof(PixlRateKey);
	info.entrysize = sizeof(PixlRateEntry);
	info.num_partitions = RATE_PARTITIONS;
	rate_table = ShmemInitHash("pixltoken rate limit hash",
							   pixl_max_tracked_tokens,
							   pixl_max_tracked_tokens,
							   &info,
							   HASH_ELEM | HASH_BLOBS | HASH_PARTITION);
}

static inline uint32
second_of(TimestampTz t)
{
	if (t < 0)
		return 0;
	return (uint32) (t / USECS_PER_SEC);
}

static inline void
count_store_entry(const PixlRateKey *key, int delta)
{
	pg_atomic_uint32 *c;

	if (key->store_hash == 0)
		return;
	c = &rate_shared->store_entries[key->store_hash % RATE_STORE_BUCKETS];
	if (delta > 0)
		pg_atomic_fetch_add_u32(c, 1);
	else
		pg_atomic_fetch_sub_u32(c, 1);
}

/*
 * Removes every entry whose window is empty (newest second more than 60 s
 * ago), in one pass, and sets the earliest second at which the next pass
 * can free anything.  Caller holds no partition lock and has moved
 * next_sweep past now_sec (so no other backend sweeps meanwhile).
 */
static void
sweep_idle_entries(uint32 now_sec)
{
	HASH_SEQ_STATUS status;
	PixlRateEntry *entry;
	uint64		freed = 0;
	uint32		next_idle = PG_UINT32_MAX;

	for (int i = 0; i < RATE_PARTITIONS; i++)
		LWLockAcquire(&rate_shared->locks[i].lock, LW_EXCLUSIVE);

	hash_seq_init(&status, rate_table);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		/* with every lock held exclusively, nobody holds the spinlock */
		if (entry->newest + RATE_WINDOW_SECS < now_sec)
		{
			count_store_entry(&entry->key, -1);
			hash_search(rate_table, &entry->key, HASH_REMOVE, NULL);
			pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
			freed++;
		}
		else
			next_idle = Min(next_idle, entry->newest + RATE_WINDOW_SECS + 1);
	}

	for (int i = RATE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&rate_shared->locks[i].lock);

	pg_atomic_fetch_add_u64(&rate_shared->sweeps, 1);
	pg_atomic_fetch_add_u64(&rate_shared->swept, freed);
	/* nothing can be freed before the first entry turns idle */
	pg_atomic_write_u64(&rate_shared->next_sweep,
						Max((uint64) now_sec + 1, (uint64) next_idle));
}

/* Sweeps when one is due; at most one backend at a time. */
static void
maybe_sweep(uint32 now_sec)
{
	uint64		next = pg_atomic_read_u64(&rate_shared->next_sweep);

	if (now_sec >= next &&
		pg_atomic_compare_exchange_u64(&rate_shared->next_sweep, &next,
									   (uint64) now_sec + 1))
		sweep_idle_entries(now_sec);
}

/*
 * Inserts the key's entry; returns NULL if the table is full or the key's
 * store has used its share (*share_full then).  Caller holds the partition
 * lock exclusively.
 */
static PixlRateEntry *
insert_entry(const PixlRateKey *key, uint32 hashcode, uint32 now_sec,
			 bool *share_full)
{
	PixlRateEntry *entry;
	bool		found;

	*share_full = false;
	entry = hash_search_with_hash_value(rate_table, key, hashcode,
										HASH_FIND, NULL);
	if (entry != NULL)
		return entry;			/* another backend inserted it meanwhile */

	/* reserve a slot first, so that the count never exceeds the capacity */
	if (pg_atomic_fetch_add_u32(&rate_shared->entries, 1) >=
		(uint32) pixl_max_tracked_tokens)
	{
		pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
		return NULL;
	}
	/* and the store's share */
	if (key->store_hash != 0 &&
		pg_atomic_fetch_add_u32(&rate_shared->store_entries[key->store_hash % RATE_STORE_BUCKETS], 1) >=
		(uint32) store_share())
	{
		count_store_entry(key, -1);
		pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
		*share_full = true;
		return NULL;
	}
	entry = hash_search_with_hash_value(rate_table, key, hashcode,
										HASH_ENTER_NULL, &found);
	if (entry == NULL)
	{
		count_store_entry(key, -1);
		pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
		return NULL;
	}
	Assert(!found);
	SpinLockInit(&entry->mutex);
	entry->total = 0;
	entry->newest = now_sec;
	memset(entry->counts, 0, sizeof(entry->counts));
	if (now_sec < rate_shared->full_until)
	{
		/* after a crash: as if the whole limit was used at the restart */
		uint32		from = rate_shared->full_from;

		entry->newest = Max(now_sec, from);
		entry->counts[from % RATE_BUCKETS] = RATE_FULL;
		entry->total = RATE_FULL;
	}
	return entry;
}

/*
 * The first time (in seconds since 2000) at which the window total drops
 * below target, walking from the oldest bucket; counts[] is indexed by
 * second % RATE_BUCKETS and newest is the ring's newest second.
 */
static uint32
second_total_drops_below(const uint16 *counts, int total, uint32 newest,
						 int target)
{
	uint32		oldest = newest >= RATE_WINDOW_SECS ? newest - RATE_WINDOW_SECS : 0;

	for (uint32 sec = oldest; sec <= newest; sec++)
	{
		total -= counts[sec % RATE_BUCKETS];
		if (total < target)
			return sec + RATE_BUCKETS;	/* second sec leaves the ring then */
	}
	return newest + RATE_BUCKETS;	/* not reached: total < target at the end */
}

void
pixl_rate_limit_check(const PixlRateKey *key, int limit, TimestampTz now,
					  PixlRateAction action, PixlRateDecision *decision)
{
	uint32		hashcode;
	LWLock	   *lock;
	PixlRateEntry *entry;
	uint32		now_sec;
	uint32		newest;
	uint16		counts[RATE_BUCKETS];
	int			total;
	bool		accepted;
	bool		counted;

	Assert(rate_table != NULL);
	now += (TimestampTz) rate_test_clock_offset * USECS_PER_SEC;
	now_sec = second_of(now);
	/* the tables' CHECKs keep limits within 1..1000; uint16 must not wrap */
	limit = Max(Min(limit, PG_UINT16_MAX - 1), 1);
	/* this node's share of it (share 1: the limit itself) */
	limit = pixl_rate_node_quota(limit);
	decision->limit = limit;
	if (limit == 0)
	{
		/* never admitted here while the share stays: no entry is kept */
		decision->remaining = 0;
		decision->reset_at = now + (TimestampTz) RATE_WINDOW_SECS * USECS_PER_SEC;
		decision->accepted = (action == PIXL_RATE_CHARGE);
		decision->retry_after_ms = decision->accepted ? 0 : RATE_WINDOW_SECS * 1000;
		return;
	}

	hashcode = get_hash_value(rate_table, key);
	lock = &rate_shared->locks[hashcode % RATE_PARTITIONS].lock;

	LWLockAcquire(lock, LW_SHARED);
	entry = hash_search_with_hash_value(rate_table, key, hashcode,
										HASH_FIND, NULL);
	if (entry == NULL)
	{
		bool		share_full;

		LWLockRelease(lock);
		/* keep room ahead: bulk eviction once the table is 90% full */
		if (pg_atomic_read_u32(&rate_shared->entries) >=
			(uint32) ((int64) pixl_max_tracked_tokens * RATE_SWEEP_PERCENT / 100))
			maybe_sweep(now_sec);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		entry = insert_entry(key, hashcode, now_sec, &share_full);
		if (entry == NULL)
		{
			LWLockRelease(lock);
			maybe_sweep(now_sec);
			LWLockAcquire(lock, LW_EXCLUSIVE);
			entry = insert_entry(key, hashcode, now_sec, &share_full);
		}
		if (entry == NULL)
		{
			LWLockRelease(lock);
			/* fail closed: an untracked token is never unlimited */
			decision->remaining = 0;
			decision->reset_at = now + USECS_PER_SEC;
			if (action == PIXL_RATE_ADMIT)
			{
				pg_atomic_fetch_add_u64(&rate_shared->full_rejections, 1);
				if (share_full)
					pg_atomic_fetch_add_u64(&rate_shared->share_rejections, 1);
				decision->accepted = false;
				decision->retry_after_ms = 1000;
			}
			else
			{
				decision->accepted = true;
				decision->retry_after_ms = 0;
			}
			return;
		}
		/* an exclusive lock serves the update as well as a shared one */
	}

	SpinLockAcquire(&entry->mutex);
	if (now_sec > entry->newest)
	{
		/* clear the seconds that left the window since the newest one */
		if (now_sec - entry->newest >= RATE_BUCKETS)
		{
			memset(entry->counts, 0, sizeof(entry->counts));
			entry->total = 0;
		}
		else
		{
			for (uint32 sec = entry->newest + 1; sec <= now_sec; sec++)
			{
				entry->total -= entry->counts[sec % RATE_BUCKETS];
				entry->counts[sec % RATE_BUCKETS] = 0;
			}
		}
		entry->newest = now_sec;
	}
	counted = entry->total < limit;
	if (counted)
	{
		/* a clock a hair behind the newest second counts in the newest */
		entry->counts[entry->newest % RATE_BUCKETS]++;
		entry->total++;
	}
	newest = entry->newest;
	total = entry->total;
	memcpy(counts, entry->counts, sizeof(counts));
	SpinLockRelease(&entry->mutex);
	LWLockRelease(lock);

	/* a 403 is charged when there is room, and is never turned into a 429 */
	accepted = counted || action == PIXL_RATE_CHARGE;
	decision->accepted = accepted;
	decision->remaining = Max(limit - total, 0);

	/* remaining grows once the total drops below min(total, limit) */
	if (total == 0)
		decision->reset_at = now;
	else
		decision->reset_at = (TimestampTz)
			second_total_drops_below(counts, total, newest,
									 Min(total, limit)) * USECS_PER_SEC;

	if (accepted)
		decision->retry_after_ms = 0;
	else
	{
		/* admitted once the total is below the limit */
		TimestampTz at = (TimestampTz)
			second_total_drops_below(counts, total, newest, limit) * USECS_PER_SEC;
		int64		wait_us = at - now;

		decision->retry_after_ms = (int) Max((wait_us + 999) / 1000, 1);
	}
}

int64
pixl_rate_limit_tracked_tokens(void)
{
	if (rate_shared == NULL)
		return 0;
	return (int64) pg_atomic_read_u32(&rate_shared->entries);
}

int64
pixl_rate_limit_table_full_rejections(void)
{
	if (rate_shared == NULL)
		return 0;
	return (int64) pg_atomic_read_u64(&rate_shared->full_rejections);
}

/*
 * pixl_rate_limit_shmem_size(tokens int) -> bigint: the shared memory the
 * limiter asks for to track that many tokens.
 */
Datum
pixl_rate_limit_shmem_size(PG_FUNCTION_ARGS)
{
	int32		tokens = PG_GETARG_INT32(0);

	if (tokens < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of tokens must be positive"),
				 errhint("Pass the planned value of pixltoken.max_tracked_tokens.")));
	PG_RETURN_INT64((int64) rate_shmem_size(tokens));
}

/*
 * pixl_rate_limit_stats(): the limiter's table, for operators and tests.
 */
Datum
pixl_rate_limit_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {false};

	pixl_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != 8)
		elog(ERROR, "pixl_rate_limit_stats must return 8 columns");
	values[0] = Int64GetDatum(pg_atomic_read_u32(&rate_shared->entries));
	values[1] = Int32GetDatum(pixl_max_tracked_tokens);
	values[2] = Int32GetDatum(store_share());
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->sweeps));
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->swept));
	values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->full_rejections));
	values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->share_rejections));
	if (rate_shared->full_until == 0)
		nulls[7] = true;
	else
		values[7] = TimestampTzGetDatum((TimestampTz) rate_shared->full_until * USECS_PER_SEC);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
