/*-------------------------------------------------------------------------
 *
 * usage_aggregate.c
 *		Exact usage counts in shared memory, folded into the rollups.
 *
 * Every counted verification (200, 403, 429) adds one to the entry of its
 * (database, UTC hour, token, method, endpoint) here, on the request path
 * (and its cost to cost, and what it charged to the period allowance to
 * charged; a response report that gives the charge back subtracts it from
 * charged of that same entry: exactly once, as the report counts),
 * whether or not its raw row fits into the ring or is sampled out: the
 * rollups and last_used_at are made from these counts, never from raw
 * rows, so that under overload only raw rows are lost.  The database's
 * worker folds the counts into pixl_usage_hourly / pixl_usage_daily and
 * pixl_token_activity, one upsert per key (usage_store.c).
 *
 * A response report (pixl_log_response) adds to the entry its verification
 * was counted under (usage_pending.c keeps that key until the report):
 * responses, their times, and how many turned a verification's status to
 * an error or back; folded like the counts.
 *
 * Exactly once: the worker copies the counters (snapshot), writes them,
 * and only after its transaction committed subtracts what it copied (with
 * interrupts held between commit and subtraction).  A worker that fails or
 * dies before commit leaves the counts in place for the next attempt;
 * counts added meanwhile stay.  A crash of any backend reinitialises shared
 * memory: what was not folded yet is lost (README, loss table), never
 * counted twice; how many verifications that was is counted
 * (usage_held.c, which the callers tell what each add and subtraction
 * moved).
 *
 * Bounded memory: pixltoken.aggregate_entries entries, shared fairly.
 * Each store (key: the rate limiter's keyed hash of (database, store id),
 * rate_limit.h, computed once per token by the token cache) may hold at
 * most its share of the entries, an eighth (at least 16), counted exactly
 * per store.  A key not yet present is counted under its own name while
 * its store holds less than its share and the table is less than three
 * quarters full; otherwise under its token's "(other)" endpoint of that
 * hour, which its store may add past its share, up to half a share more:
 * so a store that sends ever new endpoints (even as 429s) crowds only its
 * own tokens into "(other)", never another store's.  When even that does
 * not fit (the table is full, or the store holds its share and a half) the
 * count is lost and counted (pixl_stats().counts_lost).  The worker
 * removes its spent entries of past hours, which gives their store its
 * share back.
 *
 * The endpoint cap is kept here too, and only here: a token's hour holds
 * at most pixltoken.max_endpoints_per_hour distinct (method, endpoint)
 * entries (a third hash, keyed by database, hour and token, counts them);
 * a new key past that counts under the token's "(other)" of the hour.
 * Entries of the current hour stay (with zero counts) after they are
 * folded, so the cap holds for the whole hour; only a restart in the
 * middle of an hour, which keeps entries with counts only, can let an
 * hour's rollups hold a few more rows than the cap.
 *
 * Locking protocol: one LWLock.  To add to an existing entry or to read or
 * subtract counters, hold it shared and use the entry's atomics; to insert
 * or remove an entry, and to read or change the per-store and per-token-hour
 * entry counts (the second and third shared hash tables), hold it
 * exclusive.  Only
 * the worker of an entry's database removes it, so the worker may keep
 * pointers to its entries between snapshot and subtraction.
 *
 * Links.  A backend keeps a pointer to the entry it last added a token's
 * count to (in the token cache entry, usage_link) and, holding the lock
 * shared, uses it only if the entry's key equals the whole key of the new
 * count (every field, entry_is_key_of), else it does the hash lookup.  That is exact: keys are unique
 * among live entries, entries are inserted and removed only under the lock
 * held exclusively, and removal sets the removed element's dbid to
 * InvalidOid (no count's key has it), so a link to a removed entry never
 * matches, and one to a slot reused for another key matches only that
 * key's live entry.  The memory stays shared memory of this table (a
 * dynahash element is never freed), so a stale link is safe to read; a
 * crash restart, which makes the table anew, ends every backend and its
 * links with it.
 *
 * The samples of rejected requests use a separate, lock-free array of
 * "last sampled second" slots indexed by a hash of (database, token).
 *
 * Latency.  An entry also counts its responses per latency bucket
 * (latency.h: 249 buckets of 4 bytes, 996 bytes an entry), folded as the
 * rollup row's histogram.  A response adds to its bucket before it adds to
 * responses, and a snapshot reads responses before the buckets (a read
 * barrier between): what a snapshot reads of a response that is being
 * added is its bucket, or both.  So once adds are done, a bucket count is
 * left after the subtraction only with a response count left: an entry
 * that ENTRY_HAS_COUNTS calls empty holds no bucket count, and is removed
 * (exclusive lock: no add under way) without losing one.  One fold's
 * histogram may still count a response more or fewer than its responses
 * (the next fold evens it out); a fold with responses but no bucket count
 * writes an empty histogram, never NULL (which marks rows of before 1.1).
 * A bucket counts at most 2^32 - 1 responses between two folds.
 *
 * Scopes.  An entry also keeps the set of scopes its admitted calls
 * required (scopes_used, one bit per scope of common/scopes.h), OR-ed in
 * by the call before it adds to requests (a full barrier), and read by a
 * snapshot after requests and a read barrier: a snapshot that counts a
 * call has its scope.  A set is folded with a bit-OR (usage_fold.c), so
 * folding a bit twice changes nothing: scopes_used is never subtracted,
 * and lasts as long as the entry, its hour.  It alone does not make an
 * entry worth folding (ENTRY_HAS_COUNTS): it comes with a request.  A call
 * whose bit the entry has already only reads it (no atomic write on the
 * hot path for the common case), one that exercised none not even that.
 *
 * Clean shutdown saves the entries with counts to a file that the next
 * start loads (as the queue's records are saved, usage_dumpfile.c).  A
 * file of 1.1 (version 5, no cost or charged) is loaded with cost =
 * requests and charged 0, which is what its calls were; one of version 6
 * (no scopes) with no scope used; a file of an older version is ignored
 * (logged), as before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "usage/usage_aggregate.h"

#define PIXL_AGG_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pixltoken_aggregates.dat"
#define PIXL_AGG_FILE_MAGIC	0x50584c41	/* "PXLA" */
#define PIXL_AGG_FILE_VERSION	7	/* 2: rate_limited; 3: store_key or responses; 4: both; 5: latency; 6: cost, charged; 7: scopes_used */
#define PIXL_AGG_FILE_VERSION_1_1	5	/* still read: cost = requests, charged 0 */
#define PIXL_AGG_FILE_VERSION_NO_SCOPES	6	/* still read: no scope used */
#define PIXL_SAMPLE_SLOTS	16384	/* power of 2 */
#define PIXL_OTHER_ENDPOINT	"(other)"
#define PIXL_STORE_SHARE_DIVISOR	8
#define PIXL_STORE_SHARE_MIN	16
#define PIXL_SEEDED_MAX		64	/* pixltoken.database's most databases */

typedef struct PixlAggEntry
{
	PixlAggKey	key;			/* hash key: first */
	pg_atomic_uint64 requests;
	pg_atomic_uint64 errors;
	pg_atomic_uint64 rate_limited;
	pg_atomic_uint64 previous_secret_uses;
	pg_atomic_uint64 last_used; /* TimestampTz, a maximum */
	pg_atomic_uint64 previous_secret_last;	/* TimestampTz, a maximum */
	pg_atomic_uint64 responses;
	pg_atomic_uint64 response_errors_up;
	pg_atomic_uint64 response_errors_down;
	pg_atomic_uint64 response_us_sum;
	pg_atomic_uint64 cost;
	pg_atomic_uint64 charged;	/* int64 in two's complement: refunds of
								 * folded calls make it negative */
	uint64		store_key;		/* its store's share; 0: none */
	int64		loaded_charged; /* of charged, loaded from the file and not
								 * seeded yet (exclusive lock to change) */
	/* responses per latency bucket (latency.h): "Latency" at the top */
	pg_atomic_uint32 latency[PIXL_LATENCY_BUCKETS];
	/* PixlScopeBits, a set: "Scopes" at the top (in the tail padding) */
	pg_atomic_uint32 scopes_used;
} PixlAggEntry;

/*
 * Has the entry anything to fold?  cost and charged on their own too: a
 * snapshot may take a count's requests but not yet its cost (added after),
 * and a refund may come after its call was folded.
 */
#define ENTRY_HAS_COUNTS(e) \
	(pg_atomic_read_u64(&(e)->requests) != 0 || \
	 pg_atomic_read_u64(&(e)->previous_secret_uses) != 0 || \
	 pg_atomic_read_u64(&(e)->responses) != 0 || \
	 pg_atomic_read_u64(&(e)->cost) != 0 || \
	 pg_atomic_read_u64(&(e)->charged) != 0)

/* Entries a store holds (under the exclusive lock). */
typedef struct PixlAggStore
{
	uint64		store_key;		/* hash key */
	int32		entries;
} PixlAggStore;

/* Endpoint entries of one token and hour (under the exclusive lock). */
typedef struct PixlAggTokenHourKey
{
	Oid			dbid;
	TimestampTz hour;
	char		token_id[PIXL_TOKEN_ID_LEN];
} PixlAggTokenHourKey;

typedef struct PixlAggTokenHour
{
	PixlAggTokenHourKey key;	/* hash key */
	int32		endpoints;
} PixlAggTokenHour;

/* A record of the file: the counts, and the store they are charged to. */
typedef struct PixlAggFileRecord
{
	PixlAggSnapshot s;
	uint64		store_key;
} PixlAggFileRecord;

typedef struct PixlAggShared
{
	LWLock	   *lock;
	pg_atomic_uint64 sample_slots[PIXL_SAMPLE_SLOTS];
	/* databases whose allowances were seeded since the memory was made */
	int			nseeded;
	Oid			seeded[PIXL_SEEDED_MAX];
} PixlAggShared;

typedef struct PixlAggFileHeader
{
	uint32		magic;
	uint32		version;
	uint32		entry_size;
	int64		count;
} PixlAggFileHeader;

static int	pixl_aggregate_max = 16384;	/* pixltoken.aggregate_entries */
static int	pixl_max_endpoints_per_hour = 100;	/* pixltoken.max_endpoints_per_hour */

static PixlAggShared *agg = NULL;
static HTAB *agg_hash = NULL;
static HTAB *agg_stores = NULL;
static HTAB *agg_token_hours = NULL;

static void pixl_usage_aggregate_save(int code, Datum arg);
static void pixl_usage_aggregate_load(void);

void
pixl_usage_aggregate_init(void)
{
	DefineCustomIntVariable("pixltoken.aggregate_entries",
							"Usage counts (token, hour, method, endpoint) kept in shared memory until the worker folds them into the rollups.",
							"A store holds at most an eighth; past that, or past three quarters full, new endpoints count as \"(other)\"; when full, counts are lost (pixl_stats().counts_lost).",
							&pixl_aggregate_max,
							16384, 256, 4194304,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pixltoken.max_endpoints_per_hour",
							"Distinct (method, endpoint) rollup rows per token and hour.",
							"Counts of further endpoints go to the token's \"(other)\" row of that hour.",
							&pixl_max_endpoints_per_hour,
							100, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
}

void
pixl_usage_aggregate_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PixlAggShared)));
	RequestAddinShmemSpace(hash_estimate_size(pixl_aggregate_max,
											  sizeof(PixlAggEntry)));
	RequestAddinShmemSpace(hash_estimate_size(pixl_aggregate_max,
											  sizeof(PixlAggStore)));
	RequestAddinShmemSpace(hash_estimate_size(pixl_aggregate_max,
											  sizeof(PixlAggTokenHour)));
	RequestNamedLWLockTranche("pixltoken usage aggregates", 1);
}

/* Called with AddinShmemInitLock held (pixltoken.c). */
void
pixl_usage_aggregate_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	agg = ShmemInitStruct("pixltoken usage aggregates",
						  sizeof(PixlAggShared), &found);
	if (!found)
	{
		agg->lock = &(GetNamedLWLockTranche("pixltoken usage aggregates"))->lock;
		agg->nseeded = 0;
		for (int i = 0; i < PIXL_SAMPLE_SLOTS; i++)
			pg_atomic_init_u64(&agg->sample_slots[i], 0);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(PixlAggKey);
	info.entrysize = sizeof(PixlAggEntry);
	agg_hash = ShmemInitHash("pixltoken usage aggregate entries",
							 pixl_aggregate_max, pixl_aggregate_max,
							 &info, HASH_ELEM | HASH_BLOBS);
	/* a store holds at least one entry: as many stores as entries */
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(PixlAggStore);
	agg_stores = ShmemInitHash("pixltoken usage aggregate stores",
							   pixl_aggregate_max, pixl_aggregate_max,
							   &info, HASH_ELEM | HASH_BLOBS);
	/* a token's hour holds at least one entry: as many as entries */
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(PixlAggTokenHourKey);
	info.entrysize = sizeof(PixlAggTokenHour);
	agg_token_hours = ShmemInitHash("pixltoken usage aggregate token hours",
									pixl_aggregate_max, pixl_aggregate_max,
									&info, HASH_ELEM | HASH_BLOBS);

	if (!IsUnderPostmaster)
	{
		on_shmem_exit(pixl_usage_aggregate_save, (Datum) 0);
		if (!found)
			pixl_usage_aggregate_load();
	}
}

static void
atomic_max_u64(pg_atomic_uint64 *ptr, uint64 value)
{
	uint64		old = pg_atomic_read_u64(ptr);

	while (old < value)
	{
		if (pg_atomic_compare_exchange_u64(ptr, &old, value))
			break;
	}
}

static void
entry_add(PixlAggEntry *e, const PixlUsageEvent *ev, PixlScopeBits scopes)
{
	/* before requests: see "Scopes" at the top */
	if (scopes != 0 && (pg_atomic_read_u32(&e->scopes_used) & scopes) != scopes)
		pg_atomic_fetch_or_u32(&e->scopes_used, scopes);
	pg_atomic_fetch_add_u64(&e->requests, 1);
	pg_atomic_fetch_add_u64(&e->cost, (uint64) ev->cost);
	if (ev->charged != 0)
		pg_atomic_fetch_add_u64(&e->charged, (uint64) ev->charged);
	if (ev->status >= 400)
		pg_atomic_fetch_add_u64(&e->errors, 1);
	if (ev->status == 429)
		pg_atomic_fetch_add_u64(&e->rate_limited, 1);
	atomic_max_u64(&e->last_used, (uint64) ev->at);
	if (ev->previous_secret)
	{
		pg_atomic_fetch_add_u64(&e->previous_secret_uses, 1);
		atomic_max_u64(&e->previous_secret_last, (uint64) ev->at);
	}
}

static void
entry_init(PixlAggEntry *e, uint64 store_key)
{
	pg_atomic_init_u64(&e->requests, 0);
	pg_atomic_init_u64(&e->errors, 0);
	pg_atomic_init_u64(&e->rate_limited, 0);
	pg_atomic_init_u64(&e->previous_secret_uses, 0);
	pg_atomic_init_u64(&e->last_used, 0);
	pg_atomic_init_u64(&e->previous_secret_last, 0);
	pg_atomic_init_u64(&e->responses, 0);
	pg_atomic_init_u64(&e->response_errors_up, 0);
	pg_atomic_init_u64(&e->response_errors_down, 0);
	pg_atomic_init_u64(&e->response_us_sum, 0);
	pg_atomic_init_u64(&e->cost, 0);
	pg_atomic_init_u64(&e->charged, 0);
	e->store_key = store_key;
	e->loaded_charged = 0;
	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
		pg_atomic_init_u32(&e->latency[i], 0);
	pg_atomic_init_u32(&e->scopes_used, 0);
}

static int
store_share(void)
{
	return Max(pixl_aggregate_max / PIXL_STORE_SHARE_DIVISOR,
			   PIXL_STORE_SHARE_MIN);
}

/* Entries store_key holds.  Exclusive lock held. */
static int
store_entries(uint64 store_key)
{
	PixlAggStore *st;

	if (store_key == 0)
		return 0;
	st = hash_search(agg_stores, &store_key, HASH_FIND, NULL);
	return st ? st->entries : 0;
}

/* Is key a token's "(other)" entry? */
static inline bool
key_is_other(const PixlAggKey *key)
{
	return key->method[0] == '\0' && strcmp(key->endpoint, PIXL_OTHER_ENDPOINT) == 0;
}

static void
token_hour_key(const PixlAggKey *key, PixlAggTokenHourKey *th)
{
	memset(th, 0, sizeof(*th));
	th->dbid = key->dbid;
	th->hour = key->hour;
	memcpy(th->token_id, key->token_id, PIXL_TOKEN_ID_LEN);
}

/* Endpoint entries key's token holds in key's hour.  Exclusive lock held. */
static int
token_hour_endpoints(const PixlAggKey *key)
{
	PixlAggTokenHourKey th;
	PixlAggTokenHour *t;

	token_hour_key(key, &th);
	t = hash_search(agg_token_hours, &th, HASH_FIND, NULL);
	return t ? t->endpoints : 0;
}

/*
 * Adds delta to the endpoint entries of key's token and hour; false when
 * there is no room to start counting them.  Exclusive lock held.
 */
static bool
token_hour_adjust(const PixlAggKey *key, int delta)
{
	PixlAggTokenHourKey th;
	PixlAggTokenHour *t;
	bool		found;

	if (key_is_other(key))
		return true;
	token_hour_key(key, &th);
	t = hash_search(agg_token_hours, &th, delta > 0 ? HASH_ENTER_NULL : HASH_FIND,
					&found);
	if (t == NULL)
		return delta <= 0;
	if (delta > 0 && !found)
		t->endpoints = 0;
	t->endpoints += delta;
	if (t->endpoints <= 0)
		(void) hash_search(agg_token_hours, &th, HASH_REMOVE, NULL);
	return true;
}

/*
 * Inserts key (new) for store_key; NULL when the table is full.  Exclusive
 * lock held.
 */
static PixlAggEntry *
entry_insert(const PixlAggKey *key, uint64 store_key)
{
	PixlAggEntry *e;
	PixlAggStore *st = NULL;
	bool		found;

	if (store_key != 0)
	{
		/* as many store slots as entries: there is room unless full */
		st = hash_search(agg_stores, &store_key, HASH_ENTER_NULL, &found);
		if (st == NULL)
			return NULL;
		if (!found)
			st->entries = 0;
	}
	e = hash_search(agg_hash, key, HASH_ENTER_NULL, &found);
	if (e != NULL && !token_hour_adjust(key, 1))
	{
		(void) hash_search(agg_hash, key, HASH_REMOVE, NULL);
		e = NULL;
	}
	if (e == NULL)
	{
		if (st && st->entries == 0)
			(void) hash_search(agg_stores, &store_key, HASH_REMOVE, NULL);
		return NULL;
	}
	Assert(!found);
	entry_init(e, store_key);
	if (st)
		st->entries++;
	return e;
}

/* Removes entry e and gives its store the entry back.  Exclusive lock held. */
static void
entry_remove(PixlAggEntry *e)
{
	uint64		store_key = e->store_key;
	PixlAggEntry *gone;

	(void) token_hour_adjust(&e->key, -1);
	gone = hash_search(agg_hash, &e->key, HASH_REMOVE, NULL);

	/* no backend's link matches a removed entry (see the top) */
	if (gone != NULL)
		gone->key.dbid = InvalidOid;
	if (store_key != 0)
	{
		PixlAggStore *st = hash_search(agg_stores, &store_key, HASH_FIND, NULL);

		if (st && --st->entries <= 0)
			(void) hash_search(agg_stores, &store_key, HASH_REMOVE, NULL);
	}
}


static void
entry_add_response(PixlAggEntry *e, int16 verify_status, int16 status,
				   double response_ms)
{
	/* the bucket before responses: see "Latency" at the top */
	pg_atomic_fetch_add_u32(&e->latency[pixl_latency_bucket(response_ms)], 1);
	pg_atomic_fetch_add_u64(&e->responses, 1);
	if (status >= 400 && verify_status < 400)
		pg_atomic_fetch_add_u64(&e->response_errors_up, 1);
	if (status < 400 && verify_status >= 400)
		pg_atomic_fetch_add_u64(&e->response_errors_down, 1);
	/* at most a day (PIXL_MAX_RESPONSE_MS) each: no overflow in practice */
	pg_atomic_fetch_add_u64(&e->response_us_sum,
							(uint64) rint(response_ms * 1000.0));
}

/* The UTC hour of a moment. */
static inline TimestampTz
hour_of(TimestampTz at)
{
	TimestampTz hour = at - at % USECS_PER_HOUR;

	if (at < 0 && at % USECS_PER_HOUR != 0)
		hour -= USECS_PER_HOUR;
	return hour;
}

/* The key of an event (hour, token, method, endpoint of its database). */
static void
pixl_usage_aggregate_key(const PixlUsageEvent *ev, PixlAggKey *key)
{
	memset(key, 0, sizeof(*key));
	key->dbid = ev->dbid;
	key->hour = hour_of(ev->at);
	memcpy(key->token_id, ev->token_id, PIXL_TOKEN_ID_LEN);
	strlcpy(key->method, ev->method, PIXL_METHOD_MAX);
	strlcpy(key->endpoint, ev->endpoint, PIXL_ENDPOINT_MAX);
}

/*
 * Is e the entry of ev's key?  The key of ev is its fields as they are:
 * method and endpoint are '\0'-padded to their full size (usage_event.h),
 * as keys are.
 */
static inline bool
entry_is_key_of(const PixlAggEntry *e, const PixlUsageEvent *ev, TimestampTz hour)
{
	StaticAssertStmt(sizeof(e->key.method) == sizeof(ev->method) &&
					 sizeof(e->key.endpoint) == sizeof(ev->endpoint),
					 "an event's method and endpoint are a key's");
	return e->key.dbid == ev->dbid && e->key.hour == hour &&
		memcmp(e->key.token_id, ev->token_id, PIXL_TOKEN_ID_LEN) == 0 &&
		memcmp(e->key.method, ev->method, PIXL_METHOD_MAX) == 0 &&
		memcmp(e->key.endpoint, ev->endpoint, PIXL_ENDPOINT_MAX) == 0;
}

bool
pixl_usage_aggregate_add(const PixlUsageEvent *ev, PixlScopeBits scopes_used,
						 uint64 store_key, void **link, PixlAggKey *used)
{
	PixlAggKey	key;
	PixlAggEntry *e;
	long		total;
	int			held;
	int			share = store_share();
	TimestampTz hour = hour_of(ev->at);

	LWLockAcquire(agg->lock, LW_SHARED);
	/* the caller's link, if it is still this key's entry (see the top) */
	e = link ? (PixlAggEntry *) *link : NULL;
	if (e != NULL && entry_is_key_of(e, ev, hour))
	{
		entry_add(e, ev, scopes_used);
		if (used)
			*used = e->key;
		LWLockRelease(agg->lock);
		return true;
	}

	pixl_usage_aggregate_key(ev, &key);
	e = hash_search(agg_hash, &key, HASH_FIND, NULL);
	if (e)
	{
		entry_add(e, ev, scopes_used);
		LWLockRelease(agg->lock);
		if (link)
			*link = e;
		if (used)
			*used = key;
		return true;
	}
	LWLockRelease(agg->lock);

	LWLockAcquire(agg->lock, LW_EXCLUSIVE);
	e = hash_search(agg_hash, &key, HASH_FIND, NULL);
	if (e == NULL)
	{
		total = hash_get_num_entries(agg_hash);
		held = store_entries(store_key);
		if (total < (long) pixl_aggregate_max * 3 / 4 && held < share &&
			token_hour_endpoints(&key) < pixl_max_endpoints_per_hour)
			e = entry_insert(&key, store_key);
		else
		{
			/*
			 * Crowded, the store holds its share, or the token's hour its
			 * endpoints: a new key counts as its token's "(other)", which the
			 * store may add up to half a share past its share.
			 */
			memset(key.method, 0, sizeof(key.method));
			memset(key.endpoint, 0, sizeof(key.endpoint));
			strlcpy(key.endpoint, PIXL_OTHER_ENDPOINT, PIXL_ENDPOINT_MAX);
			e = hash_search(agg_hash, &key, HASH_FIND, NULL);
			if (e == NULL && held < share + share / 2)
				e = entry_insert(&key, store_key);
		}
	}
	if (e == NULL)
	{
		LWLockRelease(agg->lock);
		return false;
	}
	entry_add(e, ev, scopes_used);
	LWLockRelease(agg->lock);
	/* not a link to "(other)": it would never match the key */
	if (link && memcmp(&e->key, &key, sizeof(key)) == 0)
		*link = e;
	if (used)
		*used = key;
	return true;
}

bool
pixl_usage_aggregate_add_response(const PixlAggKey *key, int16 verify_status,
								  int16 status, double response_ms)
{
	PixlAggEntry *e;

	LWLockAcquire(agg->lock, LW_SHARED);
	e = hash_search(agg_hash, key, HASH_FIND, NULL);
	if (e)
	{
		entry_add_response(e, verify_status, status, response_ms);
		LWLockRelease(agg->lock);
		return true;
	}
	LWLockRelease(agg->lock);

	LWLockAcquire(agg->lock, LW_EXCLUSIVE);
	e = hash_search(agg_hash, key, HASH_FIND, NULL);
	/* its count was folded and the entry removed: charged to no store */
	if (e == NULL)
		e = entry_insert(key, 0);
	if (e == NULL)
	{
		LWLockRelease(agg->lock);
		return false;
	}
	entry_add_response(e, verify_status, status, response_ms);
	LWLockRelease(agg->lock);
	return true;
}

bool
pixl_usage_aggregate_refund(const PixlAggKey *key, int64 amount)
{
	PixlAggEntry *e;

	LWLockAcquire(agg->lock, LW_SHARED);
	e = hash_search(agg_hash, key, HASH_FIND, NULL);
	if (e == NULL)
	{
		LWLockRelease(agg->lock);
		LWLockAcquire(agg->lock, LW_EXCLUSIVE);
		e = hash_search(agg_hash, key, HASH_FIND, NULL);
		/* its count was folded and the entry removed: charged to no store */
		if (e == NULL)
			e = entry_insert(key, 0);
	}
	if (e != NULL)
		pg_atomic_fetch_sub_u64(&e->charged, (uint64) amount);
	LWLockRelease(agg->lock);
	return e != NULL;
}

bool
pixl_usage_aggregate_sample_429(const PixlUsageEvent *ev)
{
	uint32		h = hash_bytes((const unsigned char *) ev->token_id,
							   PIXL_TOKEN_ID_LEN) ^ ev->dbid;
	pg_atomic_uint64 *slot = &agg->sample_slots[h & (PIXL_SAMPLE_SLOTS - 1)];
	uint64		second = (uint64) (ev->at / USECS_PER_SEC) + 1;
	uint64		old = pg_atomic_read_u64(slot);

	if (old >= second)
		return false;
	return pg_atomic_compare_exchange_u64(slot, &old, second);
}

int
pixl_usage_aggregate_snapshot(Oid dbid, PixlAggSnapshot *buf, int max)
{
	HASH_SEQ_STATUS status;
	PixlAggEntry *e;
	int			n = 0;

	LWLockAcquire(agg->lock, LW_SHARED);
	hash_seq_init(&status, agg_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		PixlAggSnapshot *s;

		if (e->key.dbid != dbid)
			continue;
		if (!ENTRY_HAS_COUNTS(e))
			continue;
		if (n >= max)
		{
			hash_seq_term(&status);
			break;
		}
		s = &buf[n++];
		s->key = e->key;
		s->entry = e;
		s->requests = (int64) pg_atomic_read_u64(&e->requests);
		s->errors = (int64) pg_atomic_read_u64(&e->errors);
		s->rate_limited = (int64) pg_atomic_read_u64(&e->rate_limited);
		s->previous_secret_uses = (int64) pg_atomic_read_u64(&e->previous_secret_uses);
		s->last_used = (TimestampTz) pg_atomic_read_u64(&e->last_used);
		s->previous_secret_last = (TimestampTz) pg_atomic_read_u64(&e->previous_secret_last);
		s->responses = (int64) pg_atomic_read_u64(&e->responses);
		s->response_errors_up = (int64) pg_atomic_read_u64(&e->response_errors_up);
		s->response_errors_down = (int64) pg_atomic_read_u64(&e->response_errors_down);
		s->response_us_sum = (int64) pg_atomic_read_u64(&e->response_us_sum);
		s->cost = (int64) pg_atomic_read_u64(&e->cost);
		s->charged = (int64) pg_atomic_read_u64(&e->charged);
		/* responses before their buckets: see "Latency" at the top */
		pg_read_barrier();
		for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
			s->latency[i] = pg_atomic_read_u32(&e->latency[i]);
		/* after requests and the barrier: see "Scopes" at the top */
		s->scopes_used = (int32) pg_atomic_read_u32(&e->scopes_used);
	}
	LWLockRelease(agg->lock);
	return n;
}

int64
pixl_usage_aggregate_subtract(const PixlAggSnapshot *buf, int n)
{
	int64		requests = 0;

	LWLockAcquire(agg->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
	{
		PixlAggEntry *e = (PixlAggEntry *) buf[i].entry;

		requests += buf[i].requests;

		pg_atomic_fetch_sub_u64(&e->requests, (uint64) buf[i].requests);
		pg_atomic_fetch_sub_u64(&e->errors, (uint64) buf[i].errors);
		pg_atomic_fetch_sub_u64(&e->rate_limited, (uint64) buf[i].rate_limited);
		pg_atomic_fetch_sub_u64(&e->previous_secret_uses,
								(uint64) buf[i].previous_secret_uses);
		pg_atomic_fetch_sub_u64(&e->responses, (uint64) buf[i].responses);
		pg_atomic_fetch_sub_u64(&e->response_errors_up,
								(uint64) buf[i].response_errors_up);
		pg_atomic_fetch_sub_u64(&e->response_errors_down,
								(uint64) buf[i].response_errors_down);
		pg_atomic_fetch_sub_u64(&e->response_us_sum,
								(uint64) buf[i].response_us_sum);
		pg_atomic_fetch_sub_u64(&e->cost, (uint64) buf[i].cost);
		pg_atomic_fetch_sub_u64(&e->charged, (uint64) buf[i].charged);
		for (int b = 0; b < PIXL_LATENCY_BUCKETS; b++)
			if (buf[i].latency[b] != 0)
				pg_atomic_fetch_sub_u32(&e->latency[b], buf[i].latency[b]);
	}
	LWLockRelease(agg->lock);
	return requests;
}

int64
pixl_usage_aggregate_requests(Oid dbid)
{
	HASH_SEQ_STATUS seq;
	PixlAggEntry *e;
	int64		requests = 0;

	Assert(!IsUnderPostmaster);
	hash_seq_init(&seq, agg_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->key.dbid == dbid)
			requests += (int64) pg_atomic_read_u64(&e->requests);
	return requests;
}

void
pixl_usage_aggregate_keep(PixlAggSnapshot *snap)
{
	/* every count subtract takes: the key, entry and times stay */
	snap->requests = snap->errors = snap->rate_limited = 0;
	snap->previous_secret_uses = 0;
	snap->responses = snap->response_errors_up = snap->response_errors_down = 0;
	snap->response_us_sum = 0;
	memset(snap->latency, 0, sizeof(snap->latency));
	snap->cost = snap->charged = 0;
	/* scopes_used is never subtracted: it stays either way */
}

int
pixl_usage_aggregate_loaded(Oid dbid, PixlAggCharged **out)
{
	HASH_SEQ_STATUS status;
	PixlAggEntry *e;
	int			n = 0;
	long		max;

	/* at most every entry; none is inserted while the lock is held */
	LWLockAcquire(agg->lock, LW_SHARED);
	for (int i = 0; i < agg->nseeded; i++)
	{
		if (agg->seeded[i] == dbid)
		{
			LWLockRelease(agg->lock);
			*out = NULL;
			return -1;
		}
	}
	max = hash_get_num_entries(agg_hash);
	*out = palloc(sizeof(PixlAggCharged) * Max(max, 1));
	hash_seq_init(&status, agg_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		int64		charged = e->loaded_charged;

		if (e->key.dbid != dbid || charged == 0)
			continue;
		if (n >= max)
		{
			hash_seq_term(&status);
			break;
		}
		(*out)[n].hour = e->key.hour;
		memcpy((*out)[n].token_id, e->key.token_id, PIXL_TOKEN_ID_LEN);
		(*out)[n].charged = charged;
		n++;
	}
	LWLockRelease(agg->lock);
	return n;
}

void
pixl_usage_aggregate_seeded(Oid dbid)
{
	HASH_SEQ_STATUS status;
	PixlAggEntry *e;

	LWLockAcquire(agg->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, agg_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->key.dbid == dbid)
			e->loaded_charged = 0;
	}
	if (agg->nseeded < PIXL_SEEDED_MAX)
		agg->seeded[agg->nseeded++] = dbid;
	LWLockRelease(agg->lock);
}

void
pixl_usage_aggregate_cleanup(Oid dbid)
{
	HASH_SEQ_STATUS status;
	PixlAggEntry *e;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz hour = now - now % USECS_PER_HOUR;

	LWLockAcquire(agg->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, agg_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->key.dbid == dbid && e->key.hour < hour && !ENTRY_HAS_COUNTS(e))
			entry_remove(e);
	}
	LWLockRelease(agg->lock);
}

int64
pixl_usage_aggregate_entries(void)
{
	int64		n;

	if (agg == NULL)
		return 0;
	LWLockAcquire(agg->lock, LW_SHARED);
	n = hash_get_num_entries(agg_hash);
	LWLockRelease(agg->lock);
	return n;
}

/* ---- saving and loading on clean shutdown and start ---- */

/* on_shmem_exit callback of the postmaster: on a clean exit, save counts. */
static void
pixl_usage_aggregate_save(int code, Datum arg)
{
	FILE	   *file;
	PixlAggFileHeader hdr;
	HASH_SEQ_STATUS status;
	PixlAggEntry *e;
	int64		count = 0;

	if (code != 0 || agg_hash == NULL)
		return;

	file = AllocateFile(PIXL_AGG_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;
	hash_seq_init(&status, agg_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (ENTRY_HAS_COUNTS(e))
			count++;
	}
	hdr.magic = PIXL_AGG_FILE_MAGIC;
	hdr.version = PIXL_AGG_FILE_VERSION;
	hdr.entry_size = sizeof(PixlAggFileRecord);
	hdr.count = count;
	if (fwrite(&hdr, sizeof(hdr), 1, file) != 1)
		goto error;
	hash_seq_init(&status, agg_hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		PixlAggFileRecord r;

		if (!ENTRY_HAS_COUNTS(e))
			continue;
		memset(&r, 0, sizeof(r));
		r.s.key = e->key;
		r.s.requests = (int64) pg_atomic_read_u64(&e->requests);
		r.s.errors = (int64) pg_atomic_read_u64(&e->errors);
		r.s.rate_limited = (int64) pg_atomic_read_u64(&e->rate_limited);
		r.s.previous_secret_uses = (int64) pg_atomic_read_u64(&e->previous_secret_uses);
		r.s.last_used = (TimestampTz) pg_atomic_read_u64(&e->last_used);
		r.s.previous_secret_last = (TimestampTz) pg_atomic_read_u64(&e->previous_secret_last);
		r.s.responses = (int64) pg_atomic_read_u64(&e->responses);
		r.s.response_errors_up = (int64) pg_atomic_read_u64(&e->response_errors_up);
		r.s.response_errors_down = (int64) pg_atomic_read_u64(&e->response_errors_down);
		r.s.response_us_sum = (int64) pg_atomic_read_u64(&e->response_us_sum);
		r.s.cost = (int64) pg_atomic_read_u64(&e->cost);
		r.s.charged = (int64) pg_atomic_read_u64(&e->charged);
		for (int b = 0; b < PIXL_LATENCY_BUCKETS; b++)
			r.s.latency[b] = pg_atomic_read_u32(&e->latency[b]);
		r.s.scopes_used = (int32) pg_atomic_read_u32(&e->scopes_used);
		r.store_key = e->store_key;
		if (fwrite(&r, sizeof(r), 1, file) != 1)
		{
			hash_seq_term(&status);
			goto error;
		}
	}
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(PIXL_AGG_FILE ".tmp", PIXL_AGG_FILE, LOG);
	if (count > 0)
		elog(LOG, "pixltoken: saved %lld usage counts not yet in the rollups",
			 (long long) count);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", PIXL_AGG_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(PIXL_AGG_FILE ".tmp");
}

static void
pixl_usage_aggregate_load(void)
{
	FILE	   *file;
	PixlAggFileHeader hdr;
	int64		lost = 0;

	file = AllocateFile(PIXL_AGG_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", PIXL_AGG_FILE)));
		return;
	}
	if (!pixl_last_shutdown_was_clean())
	{
		/* usage_worker.c may have folded part of them: never twice */
		ereport(LOG,
				(errmsg("pixltoken: discarding the usage counts saved at an immediate shutdown")));
		goto done;
	}
	if (fread(&hdr, sizeof(hdr), 1, file) != 1 ||
		hdr.magic != PIXL_AGG_FILE_MAGIC ||
		!((hdr.version == PIXL_AGG_FILE_VERSION &&
		   hdr.entry_size == sizeof(PixlAggFileRecord)) ||
		  (hdr.version == PIXL_AGG_FILE_VERSION_NO_SCOPES &&
		   hdr.entry_size == PIXL_AGG_SNAPSHOT_SIZE_NO_SCOPES + sizeof(uint64)) ||
		  (hdr.version == PIXL_AGG_FILE_VERSION_1_1 &&
		   hdr.entry_size == PIXL_AGG_SNAPSHOT_SIZE_1_1 + sizeof(uint64))) ||
		hdr.count < 0)
	{
		ereport(LOG,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ignoring file \"%s\" of an incompatible format", PIXL_AGG_FILE)));
		goto done;
	}
	for (int64 i = 0; i < hdr.count; i++)
	{
		PixlAggFileRecord r;
		PixlAggSnapshot s;
		PixlAggEntry *e;

		memset(&r, 0, sizeof(r));
		if (hdr.version == PIXL_AGG_FILE_VERSION_1_1)
		{
			/* 1.1's record: its snapshot, then the store */
			char		old[PIXL_AGG_SNAPSHOT_SIZE_1_1];

			if (fread(old, sizeof(old), 1, file) == 1 &&
				fread(&r.store_key, sizeof(r.store_key), 1, file) == 1)
				pixl_agg_snapshot_from_1_1(old, &r.s);
			else
				hdr.count = -1;
		}
		else if (hdr.version == PIXL_AGG_FILE_VERSION_NO_SCOPES)
		{
			/* version 6's record: its snapshot, then the store */
			char		old[PIXL_AGG_SNAPSHOT_SIZE_NO_SCOPES];

			if (fread(old, sizeof(old), 1, file) == 1 &&
				fread(&r.store_key, sizeof(r.store_key), 1, file) == 1)
				pixl_agg_snapshot_from_no_scopes(old, &r.s);
			else
				hdr.count = -1;
		}
		else if (fread(&r, sizeof(r), 1, file) != 1)
			hdr.count = -1;
		if (hdr.count < 0)
		{
			ereport(LOG,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("file \"%s\" is truncated", PIXL_AGG_FILE)));
			break;
		}
		s = r.s;
		/* within their store's share when counted: not checked again */
		e = hash_search(agg_hash, &s.key, HASH_FIND, NULL);
		if (e == NULL)
			e = entry_insert(&s.key, r.store_key);
		if (e == NULL)
		{
			lost += s.requests;
			continue;
		}
		pg_atomic_fetch_add_u64(&e->requests, (uint64) s.requests);
		pg_atomic_fetch_add_u64(&e->errors, (uint64) s.errors);
		pg_atomic_fetch_add_u64(&e->rate_limited, (uint64) s.rate_limited);
		pg_atomic_fetch_add_u64(&e->previous_secret_uses, (uint64) s.previous_secret_uses);
		atomic_max_u64(&e->last_used, (uint64) s.last_used);
		atomic_max_u64(&e->previous_secret_last, (uint64) s.previous_secret_last);
		pg_atomic_fetch_add_u64(&e->responses, (uint64) s.responses);
		pg_atomic_fetch_add_u64(&e->response_errors_up, (uint64) s.response_errors_up);
		pg_atomic_fetch_add_u64(&e->response_errors_down, (uint64) s.response_errors_down);
		pg_atomic_fetch_add_u64(&e->response_us_sum, (uint64) s.response_us_sum);
		pg_atomic_fetch_add_u64(&e->cost, (uint64) s.cost);
		pg_atomic_fetch_add_u64(&e->charged, (uint64) s.charged);
		e->loaded_charged += s.charged;
		for (int b = 0; b < PIXL_LATENCY_BUCKETS; b++)
			pg_atomic_fetch_add_u32(&e->latency[b], s.latency[b]);
		pg_atomic_fetch_or_u32(&e->scopes_used, (uint32) s.scopes_used);
	}
	if (lost > 0)
		ereport(LOG,
				(errmsg("pixltoken: discarded %lld saved usage counts", (long long) lost),
				 errdetail("pixltoken.aggregate_entries shrank.")));
done:
	FreeFile(file);
	unlink(PIXL_AGG_FILE);
}
