/*-------------------------------------------------------------------------
 *
 * exposure.c
 *		Credentials that came over plain HTTP (transport => 'http'): what
 *		this node knows before the worker has made it durable.
 *
 * A verification cannot write a table, so a known token that arrived over
 * plain HTTP is handed to the usage worker on its usage record (the
 * event's exposure field): the worker revokes it (or only notifies, by the
 * store's setting) through pixl_expose_insecure() in the transaction that
 * stores the record, and a hot standby's record travels to its primary
 * with the usage batch.  Until then this node marks the token here, so
 * that its next secure use on this node answers 401 exposed at once.
 *
 * A mark is a slot of a small fixed table (dbid, token id, action).  The
 * worker clears the marks of the records it wrote once their transaction
 * committed (the registry's row then says exposed, and every backend's
 * token cache evicts it at that commit); a verification that finds a
 * marked token already revoked clears its mark too (a hot standby, which
 * learns of the revocation by replay).  A full table overwrites its oldest
 * mark.  A clean restart keeps the records (usage_dumpfile.c) and so their
 * marks; a crash loses both, and the exposure with them.
 *
 * The cap: at most pixltoken.insecure_revocations_per_minute exposures
 * (revocations and notifications) are handed over per clock minute on this
 * node, and of them at most a quarter (at least one) for one store, so
 * that one store's misconfigured clients cannot use up the minute of all
 * others; beyond either the 403 is still answered, the token is left
 * alone, and capped counts it.  A store's count of the minute takes one of
 * 256 entries (by its key; an entry of an earlier minute is free again);
 * with all 256 taken this minute, a further store has only the node's cap.
 * A token already marked is not handed over again and does not count.
 *
 * Locking protocol.  One LWLock (tranche "pixltoken exposures") protects
 * the slots, the cap's minute and counts (the node's and the buckets'); marked is an atomic with the
 * number of used slots, written under the lock in exclusive mode and read
 * without it, so that a verification while nothing is marked costs one
 * atomic read (a mark set concurrently is seen by the next verification).
 * Lookups take the lock shared; a clear (every verification of a revoked
 * token while anything is marked) looks shared first and takes it
 * exclusive only for a token that has a mark.  The counters are atomics.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "common/preload.h"
#include "common/token_format.h"
#include "usage/exposure.h"

#define EXPOSURE_SLOTS	256
#define EXPOSURE_STORES	256
#define EXPOSURE_TRANCHE	"pixltoken exposures"

typedef struct ExposureSlot
{
	Oid			dbid;			/* InvalidOid: free */
	char		token_id[PIXL_TOKEN_ID_LEN];
	int8		action;			/* PixlExposureAction */
	TimestampTz at;
} ExposureSlot;

typedef struct ExposureShared
{
	LWLock	   *lock;
	pg_atomic_uint32 marked;	/* slots in use */
	int64		cap_minute;		/* under lock */
	int			cap_count;		/* under lock */
	uint64		store_key[EXPOSURE_STORES]; /* under lock */
	int64		store_minute[EXPOSURE_STORES];	/* under lock; 0: free */
	int			store_count[EXPOSURE_STORES];	/* under lock */
	pg_atomic_uint64 rejections;
	pg_atomic_uint64 revocations;
	pg_atomic_uint64 notifications;
	pg_atomic_uint64 capped;
	pg_atomic_uint64 unqueued;
	ExposureSlot slots[EXPOSURE_SLOTS];
} ExposureShared;

static ExposureShared *exposure = NULL;

/* pixltoken.insecure_revocations_per_minute */
static int	insecure_per_minute = 60;

PG_FUNCTION_INFO_V1(pixl_transport_stats);

void
pixl_exposure_init(void)
{
	DefineCustomIntVariable("pixltoken.insecure_revocations_per_minute",
							"Tokens that came over plain HTTP this node revokes (or notifies) per minute at most.",
							"Beyond it the 403 insecure_transport is still answered, the token is left alone and exposures_capped counts it; 0 hands none over.",
							&insecure_per_minute,
							60, 0, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
}

void
pixl_exposure_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(ExposureShared));
	RequestNamedLWLockTranche(EXPOSURE_TRANCHE, 1);
}

/* Called with AddinShmemInitLock held (pixltoken.c). */
void
pixl_exposure_shmem_startup(void)
{
	bool		found;

	exposure = ShmemInitStruct("pixltoken exposures", sizeof(ExposureShared),
							   &found);
	if (found)
		return;
	memset(exposure, 0, sizeof(ExposureShared));
	exposure->lock = &(GetNamedLWLockTranche(EXPOSURE_TRANCHE))->lock;
	pg_atomic_init_u32(&exposure->marked, 0);
	pg_atomic_init_u64(&exposure->rejections, 0);
	pg_atomic_init_u64(&exposure->revocations, 0);
	pg_atomic_init_u64(&exposure->notifications, 0);
	pg_atomic_init_u64(&exposure->capped, 0);
	pg_atomic_init_u64(&exposure->unqueued, 0);
}

/* The slot of a token, or -1; the caller holds the lock. */
static int
find_slot(Oid dbid, const char *token_id)
{
	for (int i = 0; i < EXPOSURE_SLOTS; i++)
	{
		const ExposureSlot *s = &exposure->slots[i];

		if (s->dbid == dbid && OidIsValid(dbid) &&
			memcmp(s->token_id, token_id, PIXL_TOKEN_ID_LEN) == 0)
			return i;
	}
	return -1;
}

/* Frees slot i; the caller holds the lock in exclusive mode. */
static void
free_slot(int i)
{
	exposure->slots[i].dbid = InvalidOid;
	pg_atomic_sub_fetch_u32(&exposure->marked, 1);
}

bool
pixl_exposure_marked(Oid dbid, const char *token_id)
{
	int			i;
	bool		revoke;

	if (pg_atomic_read_u32(&exposure->marked) == 0)
		return false;
	LWLockAcquire(exposure->lock, LW_SHARED);
	i = find_slot(dbid, token_id);
	revoke = i >= 0 && exposure->slots[i].action == PIXL_EXPOSURE_REVOKE;
	LWLockRelease(exposure->lock);
	return revoke;
}

PixlExposureAction
pixl_exposure_admit(Oid dbid, const char *token_id, uint64 store_key,
					bool notify, TimestampTz now)
{
	PixlExposureAction action = notify ? PIXL_EXPOSURE_NOTIFY : PIXL_EXPOSURE_REVOKE;
	int64		minute = now / USECS_PER_MINUTE;
	int			store = -1;
	int			store_cap = Max(insecure_per_minute / 4, 1);
	int			victim = -1;

	LWLockAcquire(exposure->lock, LW_EXCLUSIVE);
	if (find_slot(dbid, token_id) >= 0)
	{
		/* on its way already */
		LWLockRelease(exposure->lock);
		return PIXL_EXPOSURE_NONE;
	}
	if (minute != exposure->cap_minute)
	{
		exposure->cap_minute = minute;
		exposure->cap_count = 0;
	}
	/* the store's entry of this minute, else a free one */
	for (int i = 0; i < EXPOSURE_STORES; i++)
	{
		if (exposure->store_minute[i] == minute &&
			exposure->store_key[i] == store_key)
		{
			store = i;
			break;
		}
		if (store < 0 && exposure->store_minute[i] != minute)
			store = i;
	}
	if (store >= 0 && (exposure->store_minute[store] != minute ||
					   exposure->store_key[store] != store_key))
	{
		exposure->store_key[store] = store_key;
		exposure->store_minute[store] = minute;
		exposure->store_count[store] = 0;
	}
	if (exposure->cap_count >= insecure_per_minute ||
		(store >= 0 && exposure->store_count[store] >= store_cap))
	{
		LWLockRelease(exposure->lock);
		pg_atomic_fetch_add_u64(&exposure->capped, 1);
		return PIXL_EXPOSURE_NONE;
	}
	exposure->cap_count++;
	if (store >= 0)
		exposure->store_count[store]++;
	/* a free slot, else the oldest mark */
	for (int i = 0; i < EXPOSURE_SLOTS; i++)
	{
		if (!OidIsValid(exposure->slots[i].dbid))
		{
			victim = i;
			break;
		}
		if (victim < 0 || exposure->slots[i].at < exposure->slots[victim].at)
			victim = i;
	}
	if (!OidIsValid(exposure->slots[victim].dbid))
		pg_atomic_add_fetch_u32(&exposure->marked, 1);
	exposure->slots[victim].dbid = dbid;
	memcpy(exposure->slots[victim].token_id, token_id, PIXL_TOKEN_ID_LEN);
	exposure->slots[victim].action = (int8) action;
	exposure->slots[victim].at = now;
	LWLockRelease(exposure->lock);
	pg_atomic_fetch_add_u64(action == PIXL_EXPOSURE_REVOKE ?
							&exposure->revocations : &exposure->notifications, 1);
	return action;
}

/*
 * A record loaded from the queue file at startup (usage_dumpfile.c): its
 * mark comes back with it, outside the cap (it was counted before the
 * restart).  At shared-memory startup, before any backend: no lock.
 */
void
pixl_exposure_restore(const PixlUsageRecord *rec)
{
	const PixlUsageEvent *ev = &rec->u.event;
	int			victim = -1;

	if (rec->kind != PIXL_RECORD_EVENT || ev->exposure == PIXL_EXPOSURE_NONE ||
		find_slot(ev->dbid, ev->token_id) >= 0)
		return;
	for (int i = 0; i < EXPOSURE_SLOTS; i++)
	{
		if (!OidIsValid(exposure->slots[i].dbid))
		{
			victim = i;
			break;
		}
	}
	if (victim < 0)
		return;
	exposure->slots[victim].dbid = ev->dbid;
	memcpy(exposure->slots[victim].token_id, ev->token_id, PIXL_TOKEN_ID_LEN);
	exposure->slots[victim].action = ev->exposure;
	exposure->slots[victim].at = ev->at;
	pg_atomic_add_fetch_u32(&exposure->marked, 1);
}

void
pixl_exposure_clear(Oid dbid, const char *token_id)
{
	int			i;

	if (pg_atomic_read_u32(&exposure->marked) == 0)
		return;
	/*
	 * Every verification of a revoked token comes here while anything is
	 * marked: look under the shared lock, so that only a token that has a
	 * mark takes the lock exclusive (and only once)
	 */
	LWLockAcquire(exposure->lock, LW_SHARED);
	i = find_slot(dbid, token_id);
	LWLockRelease(exposure->lock);
	if (i < 0)
		return;
	LWLockAcquire(exposure->lock, LW_EXCLUSIVE);
	i = find_slot(dbid, token_id);		/* again: it may have moved or gone */
	if (i >= 0)
		free_slot(i);
	LWLockRelease(exposure->lock);
}

void
pixl_exposure_unqueued(Oid dbid, const char *token_id)
{
	pg_atomic_fetch_add_u64(&exposure->unqueued, 1);
	/* nothing will make it durable: the token stays as the tables say */
	pixl_exposure_clear(dbid, token_id);
}

void
pixl_exposure_written(const PixlUsageRecord *recs, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (recs[i].kind == PIXL_RECORD_EVENT &&
			recs[i].u.event.exposure != PIXL_EXPOSURE_NONE)
			pixl_exposure_clear(recs[i].u.event.dbid, recs[i].u.event.token_id);
	}
}

void
pixl_exposure_count_rejection(void)
{
	pg_atomic_fetch_add_u64(&exposure->rejections, 1);
}

/*
 * pixl_transport_stats(): this node's counters since it started, and the
 * tokens marked now.
 */
Datum
pixl_transport_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {0};

	pixl_require_preload();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&exposure->rejections));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&exposure->revocations));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&exposure->notifications));
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&exposure->capped));
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&exposure->unqueued));
	values[5] = Int32GetDatum((int32) pg_atomic_read_u32(&exposure->marked));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
