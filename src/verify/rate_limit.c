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
 * Locking protocol.  The table is an array of slots, split into
 * RATE_PARTITIONS ranges of equal size; an entry lives in the range of its
 * partition, key.hash % RATE_PARTITIONS, found by linear probing from its
 * home slot inside that range (wrapping within it).  Each partition has a
 * named LWLock, and the stores' table has one more.
 *
 *	- To find an entry and update its counters: hold its partition lock in
 *	  LW_SHARED and take the entry's spinlock.  Nothing under the spinlock
 *	  allocates, reports or checks for interrupts: values are copied out
 *	  and the decision is computed after release.  The lookup is one probe
 *	  sequence and no hashing: the key carries its hash (below), and first
 *	  a look at the slot where this backend last found the entry (the
 *	  key's slot_hint, kept in the token cache), taken only if that slot
 *	  is used and holds the key; both are read under the partition lock,
 *	  so the entry cannot move meanwhile.
 *	- To insert or delete entries (the sweep of idle ones): hold the
 *	  partition lock in LW_EXCLUSIVE.  Deletion closes the gap by shifting
 *	  later entries of the probe sequence back.  The sweep takes one
 *	  partition at a time, never two.
 *	- The stores' lock, LW_EXCLUSIVE, is taken only while inserting or
 *	  deleting entries, after the partition lock and never before one.
 *	- The entry count, the sweep clock and the counters are atomics and
 *	  need no lock; the per-partition entry counts are under their
 *	  partition lock; full_from and full_until are written only by the
 *	  postmaster at (re)initialisation.
 *
 * Weighted calls and period allowances.  A call of cost c (1..100) is
 * admitted iff total + c <= limit and adds c to the newest second, so the
 * bounds above hold for costs as for requests; one with a cost above the
 * room waits until enough leaves the window.  A token with a period
 * allowance (quota.c) is checked inside the same spinlock, after the window
 * has room and before the window is charged: the call is charged to the
 * window and to every allowance, or to none of them (quota.c proves it).
 * A refusal by the allowance leaves the window untouched and waits until
 * the period's end (retry_after_ms is an int: at most 24.8 days;
 * retry_after_s carries the whole wait).
 *
 * Capacity is pixltoken.max_tracked_tokens.  Each store may hold at most
 * its fair share of it, an eighth (at least 10 entries): a store that
 * churns through tokens fails its own new tokens closed, not other stores'.
 * A store's entries are counted exactly, in a small open-addressing table
 * keyed by key.store_key, a SipHash of (database, store id) under the
 * cluster's secret key (request_id.c): two stores share a count only if
 * their 64-bit keyed hashes are equal, which nobody without the key can
 * aim for.  The slot hash is keyed too, so no store can pick tokens that
 * crowd one partition.  Each partition's range has room for 11/8 of its
 * mean share plus 64 slots and takes entries up to 7/8 of that, so that
 * probe sequences stay short and a partition does not fill before the
 * whole table does (a million tokens: a range of 86001, at most 75251 in
 * one, against a mean of 62500 and a standard deviation of 250).  Entries
 * idle for over 61 s (an empty window: nothing is lost) are evicted in
 * bulk, one partition after the other, when the table is 90% full or an
 * insert finds no room; the pass frees every idle entry and notes the
 * second at which the next entry can become idle, and no pass runs before
 * it (so a pass never runs only to free nothing again a second later).  If
 * there is still no room the request fails closed: a 429 with
 * retry_after_ms 1000, counted by pixl_rate_limit_table_full_rejections.
 *
 * Crash restarts.  A crash of one backend makes the postmaster reinitialise
 * PostgreSQL's shared memory, but not the slots: they live in an anonymous
 * shared mapping the postmaster makes when it asks for shared memory,
 * which every child inherits and the reset does not touch.  So after such
 * a restart every window is where it was, and the exact bound holds
 * without an outage.  A backend may have died anywhere, so before any
 * child starts the postmaster rebuilds the table from the slots without
 * trusting them: each slot's spinlock is initialised again, a slot whose
 * state is not "used" or which is in the wrong partition is dropped (an
 * insert marks a slot used only once it is filled), every total is
 * recomputed from its counters (a window whose counters sum above any
 * limit counts as full), a newest second in the future is set to now
 * (we assume the clock is not stepped back), and every entry is placed
 * again from its home slot (an interrupted shift may have left a gap in a
 * probe sequence, or an entry twice: a move fills the new slot before it
 * frees the old one, and the copies are merged, counter by counter, taking
 * the larger).  The entry counts and the stores' table, which live in
 * PostgreSQL's shared memory, are counted again from the slots; the
 * eviction and rejection counters restart at 0.  Every loop of the rebuild
 * is bounded by the table's size.  pixltoken.test_crash_at_move (superuser,
 * for tests) makes a backend crash in the middle of a move, either way.
 *
 * A new postmaster (a start after a crash of the whole server, or after a
 * backend's crash with restart_after_crash off) maps new, empty slots.  A
 * clean shutdown removes
 * pg_stat_tmp/pixltoken_rate_limit.running; a crash leaves it, and the
 * next start then starts every window full: until 61 s after it, a token
 * that enters the table is charged its whole limit in the second of the
 * restart.  So no token exceeds its limit in any 60 s window across a
 * crash of the server, at the price of a minute of 429s (a backend crash
 * within that minute keeps its end).  A clean shutdown within that minute
 * does not forget it: it writes the restart's second into the file instead
 * of removing it, and a clean start that finds a second there starts full
 * until 61 s after that second (a crashed node that pg_auto_failover brings
 * back runs its crash recovery, stops cleanly and starts again, all within
 * the minute; an empty file is a crash).  Otherwise a clean restart resets
 * the counters (SPEC allows it); an immediate shutdown (pg_ctl -m immediate),
 * whose postmaster exits as if clean, counts as a server crash: pg_control
 * says the server did not shut down.  Built with EXEC_BACKEND (no fork,
 * so no inherited mapping), or if the mapping cannot be made, the slots
 * live in PostgreSQL's shared memory and every crash restart is treated
 * as a crash of the server.
 *
 * Size.  A slot is 168 bytes on x86-64 Linux, where slock_t is one byte
 * (a four-byte slock_t makes it 176): state, spinlock and total (4), hash
 * (4), store key (8), database (4), newest second (4), token id (20) and
 * 61 uint16 counters (122), aligned to 8.  Per tracked token that is
 * 11/8 x 168 = 231 bytes of slots, plus 5/4 x 16 = 20 bytes of the stores'
 * table (a 16-byte RateStore): 251 bytes, and 16 x 64 slots and 64 stores
 * besides (see pixl_rate_limit_shmem_size(), whose figure the regression
 * test checks: a million tokens take 251 million bytes, 240 MiB, under
 * 256 MiB).  The slots' mapping is not part of PostgreSQL's
 * shared_memory_size; the stores' table (20 bytes per token) is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "common/errcodes.h"
#include "common/node.h"
#include "common/preload.h"
#include "common/request_id.h"
#include "verify/rate_limit.h"

#define RATE_WINDOW_SECS	60
#define RATE_BUCKETS		(RATE_WINDOW_SECS + 1)	/* seconds s-60 .. s */
#define RATE_PARTITIONS		16
#define RATE_TRANCHE		"pixltoken_rate_limit"
#define RATE_STORES_LOCK	RATE_PARTITIONS /* the tranche's last lock */
#define RATE_SHARE_DIVISOR	8	/* a store may hold 1/8 of the table */
#define RATE_SHARE_MIN		10
#define RATE_SWEEP_PERCENT	90	/* sweep once the table is this full */
/* the count a window starts with after a crash: above every limit */
#define RATE_FULL			(PG_UINT16_MAX - 1)
/*
 * In pg_stat_tmp, which pg_basebackup leaves out (a standby made from a
 * running primary must not take the primary's mark for a crash of its own)
 * and which nothing empties at start.
 */
#define RATE_RUNNING_FILE	PG_STAT_TMP_DIR "/pixltoken_rate_limit.running"

/* A slot's state: written last on insert, first on delete. */
#define RATE_SLOT_EMPTY		0x00
#define RATE_SLOT_USED		0xA5
#define RATE_SLOT_UNPLACED	0x5A	/* during a rebuild only */

#define RATE_MAGIC			UINT64CONST(0x7069786c726c7431)
/* domain words of the keyed hashes (request_id.c) */
#define RATE_DOMAIN_TOKEN	0x726c746bU

typedef struct RateSlot
{
	uint8		state;			/* RATE_SLOT_* */
	slock_t		mutex;			/* protects total, newest, counts */
	uint16		total;			/* sum of counts[] */
	uint32		hash;			/* key.hash */
	uint64		store_key;		/* key.store_key */
	Oid			dbid;
	uint32		newest;			/* newest second seen, since 2000-01-01 */
	char		token_id[PIXL_TOKEN_ID_LEN];
	uint16		counts[RATE_BUCKETS];	/* second x lives in x % RATE_BUCKETS */
} RateSlot;

/* What the postmaster's crash reset leaves alone. */
typedef struct RatePersist
{
	uint64		magic;			/* RATE_MAGIC once initialised */
	uint32		range;			/* slots per partition */
	uint32		full_from;		/* after a server crash: the restart's second */
	uint32		full_until;		/* windows start full before this second */
	RateSlot	slots[FLEXIBLE_ARRAY_MEMBER];	/* partition p: p x range .. */
} RatePersist;

typedef struct RateStore
{
	uint64		key;			/* a store_key; 0: free */
	uint32		count;			/* the store's entries */
} RateStore;

typedef struct PixlRateShared
{
	LWLockPadded *locks;		/* the partitions', then the stores' */
	pg_atomic_uint32 entries;	/* live entries, <= pixl_max_tracked_tokens */
	pg_atomic_uint64 next_sweep;	/* no sweep before this second */
	pg_atomic_uint64 full_rejections;
	pg_atomic_uint64 share_rejections;	/* of them, for a store's share */
	pg_atomic_uint64 sweeps;
	pg_atomic_uint64 swept;
	uint32		part_entries[RATE_PARTITIONS];	/* under the partition lock */
	uint32		nstores;		/* size of stores[] */
	RateStore	stores[FLEXIBLE_ARRAY_MEMBER];	/* under the stores' lock */
} PixlRateShared;

static PixlRateShared *rate_shared = NULL;
static RatePersist *rate_persist = NULL;
static bool rate_persist_mapped = false;	/* by mmap, in the postmaster */
static uint32 rate_range = 0;	/* slots per partition */

/* pixltoken.test_clock_offset: seconds added to the clock, for tests */
static int	rate_test_clock_offset = 0;

/* pixltoken.test_crash_at_move: see move_slot(), for tests */
static int	rate_test_crash_at_move = 0;
static int	rate_moves = 0;		/* moves made by this backend */

/* pixltoken.max_tracked_tokens */
static int	pixl_max_tracked_tokens = 10000;

PG_FUNCTION_INFO_V1(pixl_rate_limit_shmem_size);
PG_FUNCTION_INFO_V1(pixl_rate_limit_stats);

void
pixl_rate_limit_init(void)
{
	DefineCustomIntVariable("pixltoken.max_tracked_tokens",
							"Tokens whose rate-limit window is kept in shared memory.",
							"Tokens idle for over a minute are evicted to make room.",
							&pixl_max_tracked_tokens,
							10000, 100, 10000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pixltoken.test_clock_offset",
							"Seconds added to the rate limiter's clock (for tests only).",
							"Lets a test see windows a minute later without waiting.",
							&rate_test_clock_offset,
							0, 0, 40 * 86400,
							PGC_SUSET,
							GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL | GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pixltoken.test_crash_at_move",
							"Makes this backend crash in the middle of a rate-limit table move (for tests only).",
							"n > 0: at its nth move, once the copy is marked used and before the original is freed; n < 0: at move -n, once the original is freed.",
							&rate_test_crash_at_move,
							0, -1000000, 1000000,
							PGC_SUSET,
							GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							NULL, NULL, NULL);
}

/* This node's quota of a limit: see "One limit across nodes". */
static int
pixl_rate_node_quota(int limit)
{
	if (pixl_rate_limit_share >= 1.0)
		return limit;
	return (int) pixl_node_share(limit);
}


static int
store_share(void)
{
	return Max(pixl_max_tracked_tokens / RATE_SHARE_DIVISOR, RATE_SHARE_MIN);
}

/* Slots per partition: room for 11/8 of its mean share, and 64 more. */
static uint32
partition_range(int64 tokens)
{
	int64		mean = (tokens + RATE_PARTITIONS - 1) / RATE_PARTITIONS;

	return (uint32) (mean * 11 / 8 + 64);
}

/* The most entries a partition takes: probe sequences stay short. */
static inline uint32
partition_cap(void)
{
	return rate_range - rate_range / 8;
}

static uint32
store_slots(int64 tokens)
{
	return (uint32) (tokens * 5 / 4 + 64);
}

static Size
persist_size(int64 tokens)
{
	return add_size(offsetof(RatePersist, slots),
					mul_size(sizeof(RateSlot),
							 mul_size(RATE_PARTITIONS, partition_range(tokens))));
}

static Size
shared_size(int64 tokens)
{
	return add_size(offsetof(PixlRateShared, stores),
					mul_size(sizeof(RateStore), store_slots(tokens)));
}

static Size
rate_shmem_size(int64 tokens)
{
	return add_size(MAXALIGN(shared_size(tokens)), MAXALIGN(persist_size(tokens)));
}

/*
 * In the postmaster: a clean shutdown says so for the next start, or, while
 * the windows still start full after a crash, hands that minute on (the
 * restart's second in the file).  If the file cannot be written it stays
 * empty: the next start then counts a crash, a whole minute from then.
 */
static void
rate_shmem_exit(int code, Datum arg)
{
	uint32		now_sec = (uint32) (GetCurrentTimestamp() / USECS_PER_SEC);
	FILE	   *f;

	if (code != 0)
		return;
	if (rate_persist == NULL || now_sec >= rate_persist->full_until)
	{
		unlink(RATE_RUNNING_FILE);
		return;
	}
	f = fopen(RATE_RUNNING_FILE, "w");
	if (f == NULL)
		return;
	fprintf(f, "%u\n", rate_persist->full_from);
	fclose(f);
}

/*
 * The start after a clean shutdown within a crash's minute: the second of
 * that crash's restart, from the file; 0 if the file holds none (it was
 * left by a crash).
 */
static uint32
rate_full_from_file(void)
{
	FILE	   *f = AllocateFile(RATE_RUNNING_FILE, PG_BINARY_R);
	unsigned int from = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%u", &from) != 1)
		from = 0;
	FreeFile(f);
	return (uint32) from;
}

void
pixl_rate_key_init(PixlRateKey *key, Oid dbid, const char *token_id,
				   const char *store_id, int store_len)
{
	uint32		tk[2 + PIXL_TOKEN_ID_LEN / sizeof(uint32)];

	StaticAssertStmt(PIXL_TOKEN_ID_LEN % sizeof(uint32) == 0,
					 "token id must fill whole words");
	memset(key, 0, sizeof(*key));
	key->slot_hint = PG_UINT32_MAX;
	key->dbid = dbid;
	memcpy(key->token_id, token_id, PIXL_TOKEN_ID_LEN);

	tk[0] = RATE_DOMAIN_TOKEN;
	tk[1] = dbid;
	memcpy(&tk[2], token_id, PIXL_TOKEN_ID_LEN);
	key->hash = (uint32) pixl_keyed_hash(tk, sizeof(tk));
	/* the allowance counters key a store the same way (quota.c) */
	key->store_key = pixl_quota_store_key(dbid, store_id, store_len);
}

void
pixl_rate_limit_shmem_request(void)
{
	Size		size = MAXALIGN(shared_size(pixl_max_tracked_tokens));

#ifndef EXEC_BACKEND
	/* the postmaster's own mapping: children inherit it, resets keep it */
	if (rate_persist == NULL)
	{
		Size		psize = persist_size(pixl_max_tracked_tokens);
		void	   *p = mmap(NULL, psize, PROT_READ | PROT_WRITE,
							 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			ereport(LOG,
					(errmsg("pixltoken: could not map %zu bytes for the rate-limit windows: %m",
							psize),
					 errdetail("The windows are kept in PostgreSQL's shared memory instead, so every crash restart starts them full for a minute.")));
		else
		{
			rate_persist = (RatePersist *) p;
			rate_persist_mapped = true;
		}
	}
#endif
	if (!rate_persist_mapped)
		size = add_size(size, MAXALIGN(persist_size(pixl_max_tracked_tokens)));
	RequestAddinShmemSpace(size);
	RequestNamedLWLockTranche(RATE_TRANCHE, RATE_PARTITIONS + 1);
}

static inline RateSlot *
slot_at(uint32 part, uint32 pos)
{
	return &rate_persist->slots[(Size) part * rate_range + pos];
}

static inline uint32
home_of(uint32 hash)
{
	return (hash / RATE_PARTITIONS) % rate_range;
}

static inline bool
slot_matches(const RateSlot *s, uint32 hash, Oid dbid, const char *token_id)
{
	return s->hash == hash && s->dbid == dbid &&
		memcmp(s->token_id, token_id, PIXL_TOKEN_ID_LEN) == 0;
}

/* The key's slot, or NULL.  Caller holds its partition lock, either mode. */
static RateSlot *
find_slot(const PixlRateKey *key)
{
	uint32		part = key->hash % RATE_PARTITIONS;
	uint32		pos = home_of(key->hash);

	for (uint32 n = 0; n < rate_range; n++)
	{
		RateSlot   *s = slot_at(part, pos);

		if (s->state != RATE_SLOT_USED)
			return NULL;
		if (slot_matches(s, key->hash, key->dbid, key->token_id))
			return s;
		if (++pos == rate_range)
			pos = 0;
	}
	return NULL;
}

/*
 * find_slot() through the key's link: the slot where this backend last
 * found the entry is taken if it still holds the key (entries move only
 * under the partition lock held exclusively, and a key is in at most one
 * used slot), else the probe sequence is walked and the link updated.
 * Caller holds the key's partition lock, either mode.
 */
static inline RateSlot *
find_slot_linked(PixlRateKey *key)
{
	uint32		part = key->hash % RATE_PARTITIONS;
	RateSlot   *s;

	if (key->slot_hint < rate_range)
	{
		s = slot_at(part, key->slot_hint);
		if (s->state == RATE_SLOT_USED &&
			slot_matches(s, key->hash, key->dbid, key->token_id))
			return s;
	}
	s = find_slot(key);
	if (s != NULL)
		key->slot_hint = (uint32) (s - slot_at(part, 0));
	return s;
}

/*
 * The store's slot in the stores' table, or the free slot where it would
 * go; NULL if neither (cannot happen: the table has more slots than there
 * are entries).  Caller holds the stores' lock, or is the postmaster.
 */
static RateStore *
store_lookup(uint64 key)
{
	uint32		n = rate_shared->nstores;
	uint32		pos = (uint32) (key % n);

	for (uint32 i = 0; i < n; i++)
	{
		RateStore  *st = &rate_shared->stores[pos];

		if (st->key == key || st->key == 0)
			return st;
		if (++pos == n)
			pos = 0;
	}
	return NULL;
}

/* Counts one more entry of the store, unless it holds share already. */
static bool
store_add(uint64 key, uint32 share)
{
	RateStore  *st = store_lookup(key);

	if (st == NULL || (st->key != 0 && st->count >= share) || share == 0)
		return false;
	if (st->key == 0)
	{
		st->key = key;
		st->count = 0;
	}
	st->count++;
	return true;
}

/* Counts one entry of the store less; frees its slot at zero. */
static void
store_remove(uint64 key)
{
	RateStore  *st = store_lookup(key);
	uint32		n = rate_shared->nstores;
	uint32		hole;
	uint32		pos;

	if (st == NULL || st->key == 0)
		return;
	if (st->count > 1)
	{
		st->count--;
		return;
	}
	/* free the slot, shifting back what probed past it */
	hole = pos = (uint32) (st - rate_shared->stores);
	for (uint32 i = 1; i < n; i++)
	{
		RateStore  *next;
		uint32		home;

		if (++pos == n)
			pos = 0;
		next = &rate_shared->stores[pos];
		if (next->key == 0)
			break;
		home = (uint32) (next->key % n);
		/* it may move back unless its home lies after the hole */
		if ((pos - home + n) % n >= (pos - hole + n) % n)
		{
			rate_shared->stores[hole] = *next;
			hole = pos;
		}
	}
	rate_shared->stores[hole].key = 0;
	rate_shared->stores[hole].count = 0;
}

/*
 * Moves an entry into an empty slot: the new copy is complete before it
 * is marked used, and the old one freed only then, so a crash in between
 * leaves the entry twice (merged by the rebuild), never lost.
 */
static void
move_slot(RateSlot *dst, RateSlot *src)
{
	memcpy((char *) dst + offsetof(RateSlot, mutex),
		   (char *) src + offsetof(RateSlot, mutex),
		   sizeof(RateSlot) - offsetof(RateSlot, mutex));
	pg_write_barrier();
	dst->state = RATE_SLOT_USED;
	rate_moves++;
	if (unlikely(rate_test_crash_at_move == rate_moves))
		abort();				/* the test of a crash with the entry twice */
	pg_write_barrier();
	src->state = RATE_SLOT_EMPTY;
	if (unlikely(rate_test_crash_at_move == -rate_moves))
		abort();				/* ... and with a gap in a probe sequence */
}

/*
 * Frees slot hole of the partition and shifts back the entries whose probe
 * sequence passed it.  Caller holds the partition lock exclusively.
 */
static void
delete_slot(uint32 part, uint32 hole)
{
	uint32		pos = hole;

	slot_at(part, hole)->state = RATE_SLOT_EMPTY;
	for (uint32 i = 1; i < rate_range; i++)
	{
		RateSlot   *next;
		uint32		home;

		if (++pos == rate_range)
			pos = 0;
		next = slot_at(part, pos);
		if (next->state != RATE_SLOT_USED)
			break;
		home = home_of(next->hash);
		if ((pos - home + rate_range) % rate_range >=
			(pos - hole + rate_range) % rate_range)
		{
			move_slot(slot_at(part, hole), next);
			hole = pos;
		}
	}
}

/*
 * After a crash: a window whose total matches its counters and whose
 * newest second is not in the future.  Counters summing above any limit
 * (only garbage can) make a full window, never room.
 */
static void
repair_window(RateSlot *s, uint32 now_sec)
{
	uint32		sum = 0;

	if (s->newest > now_sec)
		s->newest = now_sec;
	for (int i = 0; i < RATE_BUCKETS; i++)
		sum += s->counts[i];
	if (sum > RATE_FULL)
	{
		memset(s->counts, 0, sizeof(s->counts));
		s->counts[s->newest % RATE_BUCKETS] = RATE_FULL;
		sum = RATE_FULL;
	}
	s->total = (uint16) sum;
}

/*
 * Rebuilds one partition's range after a crash restart, in the postmaster
 * before any child runs; returns its entries.  Valid entries are marked
 * unplaced and placed again one by one at the first slot from their home
 * that is empty or unplaced (whose entry then takes the next turn), so
 * every probe sequence crosses only placed entries; a second copy of an
 * entry met on the way is merged into it.
 */
static uint32
rebuild_partition(uint32 part, uint32 now_sec)
{
	RateSlot	item;
	RateSlot	other;
	uint32		placed = 0;

	for (uint32 pos = 0; pos < rate_range; pos++)
	{
		RateSlot   *s = slot_at(part, pos);

		if (s->state == RATE_SLOT_USED &&
			s->hash % RATE_PARTITIONS == part && s->dbid != InvalidOid)
		{
			SpinLockInit(&s->mutex);
			repair_window(s, now_sec);
			s->state = RATE_SLOT_UNPLACED;
		}
		else
			s->state = RATE_SLOT_EMPTY;
	}

	for (uint32 pos = 0; pos < rate_range; pos++)
	{
		if (slot_at(part, pos)->state != RATE_SLOT_UNPLACED)
			continue;
		item = *slot_at(part, pos);
		slot_at(part, pos)->state = RATE_SLOT_EMPTY;
		/* each turn places an entry, so at most rate_range turns */
		for (uint32 turn = 0; turn < rate_range; turn++)
		{
			uint32		q = home_of(item.hash);
			RateSlot   *t = NULL;
			uint32		n;

			for (n = 0; n < rate_range; n++)
			{
				t = slot_at(part, q);
				if (t->state != RATE_SLOT_USED ||
					slot_matches(t, item.hash, item.dbid, item.token_id))
					break;
				if (++q == rate_range)
					q = 0;
			}
			if (n == rate_range)
				break;			/* no room: cannot happen, one slot is free */
			if (t->state == RATE_SLOT_USED)
			{
				/* the same entry twice: keep the larger of each counter */
				t->newest = Max(t->newest, item.newest);
				for (int i = 0; i < RATE_BUCKETS; i++)
					t->counts[i] = Max(t->counts[i], item.counts[i]);
				repair_window(t, now_sec);
				break;
			}
			other = *t;
			*t = item;
			t->state = RATE_SLOT_USED;
			placed++;
			if (other.state != RATE_SLOT_UNPLACED)
				break;
			item = other;
		}
	}
	return placed;
}

/*
 * After a crash restart of this postmaster: the slots as the children left
 * them, made consistent, and everything derived from them counted again.
 */
static void
rebuild_after_crash(void)
{
	uint32		now_sec = (uint32) (GetCurrentTimestamp() / USECS_PER_SEC);
	uint32		entries = 0;

	for (uint32 part = 0; part < RATE_PARTITIONS; part++)
	{
		rate_shared->part_entries[part] = rebuild_partition(part, now_sec);
		entries += rate_shared->part_entries[part];
		for (uint32 pos = 0; pos < rate_range; pos++)
		{
			RateSlot   *s = slot_at(part, pos);

			if (s->state == RATE_SLOT_USED && s->store_key != 0)
				(void) store_add(s->store_key, PG_UINT32_MAX);
		}
	}
	pg_atomic_write_u32(&rate_shared->entries, entries);
	ereport(LOG,
			(errmsg("pixltoken: kept the rate-limit windows of %u tokens across the crash restart",
					entries)));
}

/* Called under AddinShmemInitLock. */
void
pixl_rate_limit_shmem_startup(void)
{
	bool		found;
	bool		persist_found = false;
	FILE	   *f;

	rate_range = partition_range(pixl_max_tracked_tokens);
	rate_shared = ShmemInitStruct("pixltoken rate limit",
								  shared_size(pixl_max_tracked_tokens), &found);
	if (!rate_persist_mapped)
		rate_persist = ShmemInitStruct("pixltoken rate-limit windows",
									   persist_size(pixl_max_tracked_tokens),
									   &persist_found);
	if (found)
		return;

	rate_shared->locks = GetNamedLWLockTranche(RATE_TRANCHE);
	pg_atomic_init_u32(&rate_shared->entries, 0);
	pg_atomic_init_u64(&rate_shared->next_sweep, 0);
	pg_atomic_init_u64(&rate_shared->full_rejections, 0);
	pg_atomic_init_u64(&rate_shared->share_rejections, 0);
	pg_atomic_init_u64(&rate_shared->sweeps, 0);
	pg_atomic_init_u64(&rate_shared->swept, 0);
	memset(rate_shared->part_entries, 0, sizeof(rate_shared->part_entries));
	rate_shared->nstores = store_slots(pixl_max_tracked_tokens);
	memset(rate_shared->stores, 0,
		   mul_size(sizeof(RateStore), rate_shared->nstores));
	if (!rate_persist_mapped && !persist_found)
		memset(rate_persist, 0, persist_size(pixl_max_tracked_tokens));

	if (rate_persist->magic == RATE_MAGIC && rate_persist->range == rate_range)
		rebuild_after_crash();
	else
	{
		/* a new mapping (mmap zero-fills it): a start of the postmaster */
		uint32		now_sec = (uint32) (GetCurrentTimestamp() / USECS_PER_SEC);
		bool		marked = (access(RATE_RUNNING_FILE, F_OK) == 0);
		bool		clean = pixl_last_shutdown_was_clean();
		uint32		handed_on = (marked && clean) ? rate_full_from_file() : 0;

		rate_persist->full_from = now_sec;
		rate_persist->full_until = 0;
		if (handed_on != 0)
		{
			/* a clean restart within a crash's minute: to that minute's end */
			rate_persist->full_from = Min(handed_on, now_sec);
			if (rate_persist->full_from + RATE_BUCKETS > now_sec)
			{
				rate_persist->full_until = rate_persist->full_from + RATE_BUCKETS;
				ereport(LOG,
						(errmsg("pixltoken: the server crashed less than a minute ago; every rate-limit window starts full for %u more seconds",
								rate_persist->full_until - now_sec)));
			}
		}
		else if (marked || !clean)
		{
			/* the file is there, empty, if the last run did not end cleanly */
			rate_persist->full_until = now_sec + RATE_BUCKETS;
			ereport(LOG,
					(errmsg("pixltoken: the server did not shut down cleanly; every rate-limit window starts full for %d seconds",
							RATE_BUCKETS)));
		}
		rate_persist->range = rate_range;
		pg_write_barrier();
		/* only a mapping that outlives the reset can be rebuilt from */
		if (rate_persist_mapped)
			rate_persist->magic = RATE_MAGIC;
	}

	f = AllocateFile(RATE_RUNNING_FILE, PG_BINARY_W);
	if (f == NULL || FreeFile(f) != 0)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("pixltoken: could not create file \"%s\": %m", RATE_RUNNING_FILE)));
	if (!IsUnderPostmaster)
		on_shmem_exit(rate_shmem_exit, (Datum) 0);
}

static inline uint32
second_of(TimestampTz t)
{
	if (t < 0)
		return 0;
	return (uint32) (t / USECS_PER_SEC);
}

/*
 * Removes every entry whose window is empty (newest second more than 60 s
 * ago), one partition at a time, and sets the earliest second at which the
 * next pass can free anything.  Caller holds no partition lock and has
 * moved next_sweep past now_sec (so no other backend sweeps meanwhile).
 */
static void
sweep_idle_entries(uint32 now_sec)
{
	LWLock	   *stores_lock = &rate_shared->locks[RATE_STORES_LOCK].lock;
	uint64		freed = 0;
	uint32		next_idle = PG_UINT32_MAX;

	for (uint32 part = 0; part < RATE_PARTITIONS; part++)
	{
		bool		stores_locked = false;
		uint32		pos = 0;

		LWLockAcquire(&rate_shared->locks[part].lock, LW_EXCLUSIVE);
		/* each round frees an entry or moves on: bounded by range + entries */
		while (pos < rate_range)
		{
			RateSlot   *s = slot_at(part, pos);

			if (s->state != RATE_SLOT_USED)
			{
				pos++;
				continue;
			}
			/* with the partition held exclusively, nobody holds the spinlock */
			if (s->newest + RATE_WINDOW_SECS < now_sec)
			{
				if (s->store_key != 0)
				{
					if (!stores_locked)
						LWLockAcquire(stores_lock, LW_EXCLUSIVE);
					stores_locked = true;
					store_remove(s->store_key);
				}
				delete_slot(part, pos);
				rate_shared->part_entries[part]--;
				pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
				freed++;
				continue;		/* a later entry may have moved here */
			}
			next_idle = Min(next_idle, s->newest + RATE_WINDOW_SECS + 1);
			pos++;
		}
		if (stores_locked)
			LWLockRelease(stores_lock);
		LWLockRelease(&rate_shared->locks[part].lock);
	}

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
 * Inserts the key's entry; returns NULL if the table or the partition is
 * full or the key's store has used its share (*share_full then).  Caller
 * holds the partition lock exclusively.
 */
static RateSlot *
insert_entry(const PixlRateKey *key, uint32 now_sec, bool *share_full)
{
	uint32		part = key->hash % RATE_PARTITIONS;
	uint32		pos;
	RateSlot   *s;
	uint32		n;

	*share_full = false;
	s = find_slot(key);
	if (s != NULL)
		return s;				/* another backend inserted it meanwhile */
	if (rate_shared->part_entries[part] >= partition_cap())
		return NULL;

	/* reserve room first, so that the count never exceeds the capacity */
	if (pg_atomic_fetch_add_u32(&rate_shared->entries, 1) >=
		(uint32) pixl_max_tracked_tokens)
	{
		pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
		return NULL;
	}
	/* and the store's share */
	if (key->store_key != 0)
	{
		LWLock	   *stores_lock = &rate_shared->locks[RATE_STORES_LOCK].lock;
		bool		counted;

		LWLockAcquire(stores_lock, LW_EXCLUSIVE);
		counted = store_add(key->store_key, (uint32) store_share());
		LWLockRelease(stores_lock);
		if (!counted)
		{
			pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
			*share_full = true;
			return NULL;
		}
	}

	/* below the cap, the range has an empty slot */
	pos = home_of(key->hash);
	for (n = 0; n < rate_range; n++)
	{
		s = slot_at(part, pos);
		if (s->state != RATE_SLOT_USED)
			break;
		if (++pos == rate_range)
			pos = 0;
	}
	if (unlikely(n == rate_range))
	{
		/* cannot happen (the counts are exact); never overwrite an entry */
		if (key->store_key != 0)
		{
			LWLockAcquire(&rate_shared->locks[RATE_STORES_LOCK].lock, LW_EXCLUSIVE);
			store_remove(key->store_key);
			LWLockRelease(&rate_shared->locks[RATE_STORES_LOCK].lock);
		}
		pg_atomic_fetch_sub_u32(&rate_shared->entries, 1);
		return NULL;
	}

	SpinLockInit(&s->mutex);
	s->hash = key->hash;
	s->store_key = key->store_key;
	s->dbid = key->dbid;
	memcpy(s->token_id, key->token_id, PIXL_TOKEN_ID_LEN);
	s->total = 0;
	s->newest = now_sec;
	memset(s->counts, 0, sizeof(s->counts));
	if (now_sec < rate_persist->full_until)
	{
		/* after a crash: as if the whole limit was used at the restart */
		uint32		from = rate_persist->full_from;

		s->newest = Max(now_sec, from);
		s->counts[from % RATE_BUCKETS] = RATE_FULL;
		s->total = RATE_FULL;
	}
	/* used only once whole: a crash before this leaves it empty */
	pg_write_barrier();
	s->state = RATE_SLOT_USED;
	rate_shared->part_entries[part]++;
	return s;
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

/*
 * The wait until a rejected call is admitted: by the window (if it had no
 * room for the cost) and by the allowance (to the period's end; 1 s when no
 * counter could be made), whichever is later.
 */
static void
rejection_wait(PixlRateDecision *decision, TimestampTz now, TimestampTz window_at)
{
	int64		wait_us = 0;

	if (window_at > 0)
		wait_us = window_at - now;
	if (decision->quota.exceeded)
	{
		if (decision->quota.table_full)
			wait_us = Max(wait_us, USECS_PER_SEC);
		else
			wait_us = Max(wait_us, decision->quota.period_end - now);
	}
	decision->retry_after_ms = (int) Min(Max((wait_us + 999) / 1000, 1),
										 (int64) PG_INT32_MAX);
	decision->retry_after_s = (int) Max((wait_us + USECS_PER_SEC - 1) / USECS_PER_SEC, 1);
}

/*
 * One call of cost against the window and, for an admission, the period
 * allowances of quota (NULL: none): all are charged or none (quota.c's
 * header), a 403 (PIXL_RATE_CHARGE) only the window.
 */
void
pixl_rate_limit_check(PixlRateKey *key, int limit, TimestampTz now,
					  PixlRateAction action, int cost,
					  const PixlQuotaKey *quota, PixlRateDecision *decision)
{
	LWLock	   *lock;
	RateSlot   *entry;
	uint32		now_sec;
	uint32		newest;
	uint16		counts[RATE_BUCKETS];
	int			total;
	bool		accepted;
	bool		counted;
	bool		room;
	bool		quota_charged = false;
	PixlQuotaCheck qcheck;

	Assert(rate_shared != NULL);
	Assert(cost >= 1 && cost <= PIXL_COST_MAX);
	now += (TimestampTz) rate_test_clock_offset * USECS_PER_SEC;
	now_sec = second_of(now);
	/* the tables' CHECKs keep limits within 1..1000; uint16 must not wrap */
	limit = Max(Min(limit, PG_UINT16_MAX - 1), 1);
	/* this node's share of it (share 1: the limit itself) */
	limit = pixl_rate_node_quota(limit);
	decision->limit = limit;
	/* the allowance's counters, made before any lock of ours is held */
	pixl_quota_prepare(&qcheck, quota, now, &decision->quota);
	if (limit == 0)
	{
		/* never admitted here while the share stays: no entry is kept */
		pixl_quota_peek(&qcheck, cost, &decision->quota);
		decision->quota.exceeded = false;
		decision->remaining = 0;
		decision->reset_at = now + (TimestampTz) RATE_WINDOW_SECS * USECS_PER_SEC;
		decision->accepted = (action == PIXL_RATE_CHARGE);
		decision->retry_after_ms = decision->accepted ? 0 : RATE_WINDOW_SECS * 1000;
		decision->retry_after_s = decision->retry_after_ms / 1000;
		return;
	}

	/* no hashing here: the key carries its keyed hash */
	lock = &rate_shared->locks[key->hash % RATE_PARTITIONS].lock;

	LWLockAcquire(lock, LW_SHARED);
	entry = find_slot_linked(key);
	if (entry == NULL)
	{
		bool		share_full;

		LWLockRelease(lock);
		/* keep room ahead: bulk eviction once the table is 90% full */
		if (pg_atomic_read_u32(&rate_shared->entries) >=
			(uint32) ((int64) pixl_max_tracked_tokens * RATE_SWEEP_PERCENT / 100))
			maybe_sweep(now_sec);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		entry = insert_entry(key, now_sec, &share_full);
		if (entry == NULL)
		{
			LWLockRelease(lock);
			maybe_sweep(now_sec);
			LWLockAcquire(lock, LW_EXCLUSIVE);
			entry = insert_entry(key, now_sec, &share_full);
		}
		if (entry == NULL)
		{
			LWLockRelease(lock);
			/* fail closed: an untracked token is never unlimited */
			pixl_quota_peek(&qcheck, cost, &decision->quota);
			decision->quota.exceeded = false;
			decision->remaining = 0;
			decision->reset_at = now + USECS_PER_SEC;
			if (action == PIXL_RATE_ADMIT)
			{
				pg_atomic_fetch_add_u64(&rate_shared->full_rejections, 1);
				if (share_full)
					pg_atomic_fetch_add_u64(&rate_shared->share_rejections, 1);
				decision->accepted = false;
				decision->retry_after_ms = 1000;
				decision->retry_after_s = 1;
			}
			else
			{
				decision->accepted = true;
				decision->retry_after_ms = 0;
				decision->retry_after_s = 0;
			}
			return;
		}
		/* an exclusive lock serves the update as well as a shared one */
		key->slot_hint = (uint32) (entry - slot_at(key->hash % RATE_PARTITIONS, 0));
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
	room = entry->total + cost <= limit;
	/* an admission with room in the window: the allowances, all or none */
	if (room && action == PIXL_RATE_ADMIT)
		quota_charged = pixl_quota_charge(&qcheck, cost, &decision->quota);
	counted = room && (action != PIXL_RATE_ADMIT || quota_charged);
	if (counted)
	{
		/* a clock a hair behind the newest second counts in the newest */
		entry->counts[entry->newest % RATE_BUCKETS] += cost;
		entry->total += cost;
	}
	newest = entry->newest;
	total = entry->total;
	memcpy(counts, entry->counts, sizeof(counts));
	SpinLockRelease(&entry->mutex);
	LWLockRelease(lock);

	/* not charged to the allowance: its figures, and whether it had room */
	if (!room || action != PIXL_RATE_ADMIT)
	{
		pixl_quota_peek(&qcheck, cost, &decision->quota);
		if (action != PIXL_RATE_ADMIT)
			decision->quota.exceeded = false;	/* a 403 stays a 403 */
	}

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
	{
		decision->retry_after_ms = 0;
		decision->retry_after_s = 0;
	}
	else if (!room)
	{
		/* admitted once the total leaves room for the cost */
		TimestampTz at = (TimestampTz)
			second_total_drops_below(counts, total, newest,
									 Min(total, limit - cost + 1)) * USECS_PER_SEC;

		Assert(total + cost > limit);
		rejection_wait(decision, now, at);
	}
	else
		rejection_wait(decision, now, 0);	/* the allowance alone */
}

TimestampTz
pixl_rate_limit_now(void)
{
	return GetCurrentTimestamp() +
		(TimestampTz) rate_test_clock_offset * USECS_PER_SEC;
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
	if (rate_persist->full_until == 0)
		nulls[7] = true;
	else
		values[7] = TimestampTzGetDatum((TimestampTz) rate_persist->full_until * USECS_PER_SEC);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
