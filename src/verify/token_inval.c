/*-------------------------------------------------------------------------
 *
 * token_inval.c
 *		Per-token invalidation of the verification caches.
 *
 * A change of a token (or of a store's plan, or of a plan) must reach every
 * backend's token cache (token_cache.c) exactly at its commit: seen by the
 * very next verification on every connection once the commit is visible,
 * never before, never if it rolls back.  And it must evict only what it
 * changed: one revoke used to empty every backend's whole cache.
 *
 * Collection.  The registry's row triggers queue the changed secret hashes
 * (store and plan triggers queue the store id or plan name) in a
 * transaction-local list.  They are applied to this backend's own cache at
 * once (its own next verification in the transaction reads its own change),
 * again when a subtransaction or the transaction aborts (an entry loaded
 * meanwhile may hold the rolled-back state), and published when it commits.
 * A transaction with more than PENDING_MAX items publishes one "all" item.
 *
 * Prepared transactions.  COMMIT PREPARED runs in another backend, with
 * nothing left to publish.  So PREPARE TRANSACTION instead queues, in the
 * prepared transaction, a relcache invalidation of a marker relation (the
 * extension's pixl_plans, named by the trigger that queued the items); it
 * is sent when the prepared transaction commits, after the commit is
 * visible, and every backend flushes its whole cache on it (coarse, but
 * exact at commit).  The preparing backend evicts its own items at once.
 *
 * The ring.  Shared memory holds RING_SIZE items and a generation counter:
 * the number of items ever published.  Item g sits in slot g % RING_SIZE.
 * At XACT_EVENT_COMMIT (CommitTransaction calls it after
 * ProcArrayEndTransaction, so the commit is already visible to every new
 * snapshot) the committing backend appends its items and advances the
 * generation, before its client learns of the commit.
 *
 * Readers.  Every verification compares the generation with the one its
 * backend has seen (one atomic read).  If it moved, the backend copies the
 * new items and evicts what they name; if more than RING_SIZE were published
 * since, some were overwritten and it flushes its whole cache instead.  A
 * load (a cache miss) reads the generation before taking its snapshot and is
 * caught up after: a change that committed before the read is in the
 * snapshot; one that committed after it is applied at the next lookup, so
 * the loaded entry is used at most by the request concurrent with that
 * commit.
 *
 * Locking protocol.  One spinlock protects the slots and the generation:
 * writers hold it to append and advance; readers hold it to copy a chunk of
 * at most CHUNK items and to check, under the same lock, that none of them
 * was overwritten.  The generation is an atomic so that the common check
 * needs no lock; it is written only under the spinlock.  Nothing under the
 * spinlock allocates, reports or checks for interrupts.
 *
 * Hot standbys get none of this (shared memory is not replicated): the
 * triggers also send a relcache invalidation of the registry, which is
 * WAL-logged, and a standby flushes its whole cache on it (token_cache.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/inval.h"

#include "common/errcodes.h"
#include "verify/token_inval.h"

#define RING_SIZE		4096
#define CHUNK			64
#define PENDING_MAX		256

typedef struct PixlInvalRing
{
	slock_t		mutex;
	pg_atomic_uint64 generation;
	PixlInvalItem items[RING_SIZE];
} PixlInvalRing;

static PixlInvalRing *ring = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This transaction's items. */
static PixlInvalItem pending[PENDING_MAX];
static int	npending = 0;
static bool pending_all = false;
static bool callbacks_registered = false;

/*
 * Secrets this transaction created (a new token, a rotation's new secret):
 * nobody else can have cached them, but this backend may have, so they are
 * evicted here if the transaction aborts, and never published.
 */
static PixlInvalItem local_pending[PENDING_MAX];
static int	nlocal = 0;
static bool local_all = false;

static PixlInvalApplyFn apply_fn = NULL;

/* The relation whose relcache invalidation flushes every cache (2PC). */
static Oid	prepare_marker = InvalidOid;

static void
inval_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PixlInvalRing)));
}

static void
inval_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ring = ShmemInitStruct("pixltoken token invalidations",
						   sizeof(PixlInvalRing), &found);
	if (!found)
	{
		SpinLockInit(&ring->mutex);
		pg_atomic_init_u64(&ring->generation, 0);
		memset(ring->items, 0, sizeof(ring->items));
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init (shared_preload_libraries only). */
void
pixl_token_inval_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = inval_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = inval_shmem_startup;
}

void
pixl_token_inval_set_apply(PixlInvalApplyFn fn)
{
	apply_fn = fn;
}

void
pixl_inval_set_prepare_marker(Oid relid)
{
	prepare_marker = relid;
}

uint32
pixl_inval_name_hash(const char *name, int len)
{
	return hash_bytes((const unsigned char *) name, len);
}

uint64
pixl_inval_generation(void)
{
	if (ring == NULL)
		return 0;
	return pg_atomic_read_u64(&ring->generation);
}

static void
apply_pending_locally(void)
{
	PixlInvalItem all;

	if (apply_fn == NULL)
		return;
	for (int i = 0; i < nlocal; i++)
		apply_fn(&local_pending[i]);
	if (pending_all || local_all)
	{
		memset(&all, 0, sizeof(all));
		all.dbid = MyDatabaseId;
		all.kind = PIXL_INVAL_ALL;
		apply_fn(&all);
		return;
	}
	for (int i = 0; i < npending; i++)
		apply_fn(&pending[i]);
}

static void
publish_pending(void)
{
	PixlInvalItem all;
	const PixlInvalItem *items = pending;
	int			n = npending;
	uint64		gen;

	if (ring == NULL || (n == 0 && !pending_all))
		return;
	if (pending_all)
	{
		memset(&all, 0, sizeof(all));
		all.dbid = MyDatabaseId;
		all.kind = PIXL_INVAL_ALL;
		items = &all;
		n = 1;
	}
	SpinLockAcquire(&ring->mutex);
	gen = pg_atomic_read_u64(&ring->generation);
	for (int i = 0; i < n; i++)
		ring->items[(gen + i) % RING_SIZE] = items[i];
	pg_atomic_write_u64(&ring->generation, gen + n);
	SpinLockRelease(&ring->mutex);
}

static void
reset_pending(void)
{
	npending = 0;
	pending_all = false;
	nlocal = 0;
	local_all = false;
}

static void
inval_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (npending > 0 || pending_all)
			{
				/* sent with COMMIT PREPARED; before AtPrepare_Inval */
				if (!OidIsValid(prepare_marker))
					elog(ERROR, "pixltoken: no invalidation marker for a prepared transaction");
				CacheInvalidateRelcacheByRelid(prepare_marker);
			}
			break;
		case XACT_EVENT_COMMIT:
			/* the commit is visible to snapshots now; no error possible */
			publish_pending();
			reset_pending();
			break;
		case XACT_EVENT_ABORT:
			/* entries loaded after a change may hold the aborted state */
			apply_pending_locally();
			reset_pending();
			break;
		case XACT_EVENT_PREPARE:
			/* this backend may have loaded the prepared state */
			apply_pending_locally();
			reset_pending();
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			reset_pending();
			break;
		default:
			break;
	}
}

static void
inval_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	/* items stay queued (publishing too much is harmless) */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		apply_pending_locally();
}

static void
register_callbacks(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(inval_xact_callback, NULL);
		RegisterSubXactCallback(inval_subxact_callback, NULL);
		callbacks_registered = true;
	}
}

void
pixl_inval_queue_local(const uint8 *hash)
{
	PixlInvalItem *item;

	register_callbacks();
	if (nlocal >= PENDING_MAX)
	{
		local_all = true;
		return;
	}
	item = &local_pending[nlocal++];
	memset(item, 0, sizeof(*item));
	item->dbid = MyDatabaseId;
	item->kind = PIXL_INVAL_SECRET;
	memcpy(item->key, hash, PIXL_HASH_LEN);
}

void
pixl_inval_queue(PixlInvalKind kind, const uint8 *key, int keylen)
{
	PixlInvalItem *item;

	register_callbacks();

	if (kind == PIXL_INVAL_ALL || npending >= PENDING_MAX)
		pending_all = true;
	if (pending_all)
	{
		PixlInvalItem all;

		memset(&all, 0, sizeof(all));
		all.dbid = MyDatabaseId;
		all.kind = PIXL_INVAL_ALL;
		if (apply_fn != NULL)
			apply_fn(&all);
		return;
	}
	item = &pending[npending++];
	memset(item, 0, sizeof(*item));
	item->dbid = MyDatabaseId;
	item->kind = (uint8) kind;
	memcpy(item->key, key, Min(keylen, PIXL_HASH_LEN));
	if (apply_fn != NULL)
		apply_fn(item);
}

void
pixl_inval_catch_up(uint64 *seen)
{
	PixlInvalItem buf[CHUNK];

	if (ring == NULL)
		return;
	while (pg_atomic_read_u64(&ring->generation) != *seen)
	{
		uint64		gen;
		int			n = 0;
		bool		lost = false;

		SpinLockAcquire(&ring->mutex);
		gen = pg_atomic_read_u64(&ring->generation);
		if (gen - *seen > RING_SIZE || gen < *seen)
			lost = true;
		else
		{
			n = (int) Min(gen - *seen, CHUNK);
			for (int i = 0; i < n; i++)
				buf[i] = ring->items[(*seen + i) % RING_SIZE];
		}
		SpinLockRelease(&ring->mutex);

		if (lost)
		{
			/* overwritten before we read them: forget everything */
			buf[0].dbid = MyDatabaseId;
			buf[0].kind = PIXL_INVAL_ALL;
			if (apply_fn != NULL)
				apply_fn(&buf[0]);
			*seen = gen;
			continue;
		}
		for (int i = 0; i < n; i++)
		{
			if (buf[i].dbid == MyDatabaseId && apply_fn != NULL)
				apply_fn(&buf[i]);
		}
		*seen += n;
	}
}
