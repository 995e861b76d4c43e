/*-------------------------------------------------------------------------
 *
 * usage_pending.c
 *		Verifications waiting for their response report, so that every
 *		report lands exactly once in the aggregates of its key.
 *
 * Every counted verification (200, 403, 429) of a served database gets an
 * entry here on the request path, keyed by its request id: the key its
 * count went to in usage_aggregate.c (hour, token, method, endpoint, after
 * any "(other)" substitution) and its verification status.  A report
 * (pixl_log_response(s), after the MAC check of the id) takes the entry
 * and adds the response to that key's aggregate entry: a response, its
 * time, and whether it turned the verification's status into an error or
 * back.  The worker folds those with the counts (same snapshot/subtract
 * protocol), so error rate, success rate and response times are exact
 * whatever raw rows are kept.  Taking the entry is the "once": a second
 * report finds none and is refused (PX068).
 *
 * Responses usually come within milliseconds; an entry that waits longer
 * than pixltoken.response_wait (or any waiting entry, when the table is
 * more than half full) is written out by the worker of its database into
 * pixl_usage_pending_responses (request id -> key), so that a report hours
 * later, or after a crash or restart that lost the entry, still counts.
 * A report that finds no entry looks for the row (usage_sql.c); when there
 * is one it puts a "late" entry here, and the worker deletes the row and
 * adds the response to the rollups in one transaction: a row deleted is
 * counted, exactly once, whatever the reports race.
 *
 * States of an entry, and who moves them:
 *   PENDING  --report-->  gone, response added to the aggregates
 *   PENDING  --worker collects-->  SPILLING (a copy is being written)
 *   SPILLING --report-->  REPORTED (the response waits in the entry)
 *   SPILLING --worker committed-->  gone (the row holds it)
 *   SPILLING --worker failed-->  PENDING
 *   REPORTED --worker committed-->  LATE (row and response: applied next)
 *   REPORTED --worker failed-->  gone, response added to the aggregates
 *   LATE     --worker committed the row's delete-->  gone
 *   REPORTED, LATE --report-->  refused (a report is on its way)
 * A worker that died mid-transaction left SPILLING or REPORTED entries:
 * its successor treats them as "failed" when it starts, as the load of a
 * clean shutdown's file does (the worker's transaction and the state
 * change after its commit run with interrupts held, so SIGTERM never ends
 * a worker between them).
 *
 * Locking protocol: PIXL_PENDING_PARTITIONS shared hash tables, each with
 * its own LWLock (tranche "pixltoken pending responses"); a request id's
 * table is its hash code modulo their number.  Add, claim and the worker's
 * per-item changes hold that table's lock exclusive; the worker's scans
 * (collect, recover, discard) take one table's lock at a time, so a
 * verification waits at most for one table's scan, never for all of them.
 * No other lock is taken while one is held (the aggregate entry is updated
 * after release).
 *
 * Bounded memory: pixltoken.pending_responses entries, a sixteenth of them
 * per table.  A verification that finds its table full gets none: its
 * request id says so (MAC flag, request_id.c) and its report is accepted
 * and ignored.  Late entries may go past the bound by what reports are in
 * flight (they hold no key).
 *
 * Clean shutdown saves the entries to a file that the next start loads;
 * a crash loses them (README, loss table): reports of those requests are
 * refused unless the entry had been written out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "usage/usage_pending.h"

#define PIXL_PENDING_PARTITIONS	16
#define PIXL_PENDING_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pixltoken_pending.dat"
#define PIXL_PENDING_FILE_MAGIC	0x50584c50	/* "PXLP" */
#define PIXL_PENDING_FILE_VERSION	2	/* 2: with the allowance charge */

typedef enum PixlPendingState
{
	PIXL_PENDING = 0,
	PIXL_SPILLING,
	PIXL_REPORTED,
	PIXL_LATE
} PixlPendingState;

typedef struct PixlPendingEntry
{
	int64		request_id;		/* hash key: first */
	int16		state;			/* PixlPendingState */
	int16		verify_status;
	int16		status;			/* REPORTED, LATE: the report's */
	double		response_ms;
	TimestampTz at;				/* verification time */
	PixlAggKey	key;
	PixlQuotaCharge charge;		/* handed to the one report that takes it */
} PixlPendingEntry;

typedef struct PixlPendingFileHeader
{
	uint32		magic;
	uint32		version;
	uint32		entry_size;
	int64		count;
} PixlPendingFileHeader;

int			pixl_response_wait_ms = 10000;	/* pixltoken.response_wait */
static int	pixl_pending_max = 16384;	/* pixltoken.pending_responses */

static LWLockPadded *pend_locks = NULL;
static HTAB *pend_hash[PIXL_PENDING_PARTITIONS];

/* Entries one table may hold: pixltoken.pending_responses over the tables. */
static long
table_max(void)
{
	return (pixl_pending_max + PIXL_PENDING_PARTITIONS - 1) / PIXL_PENDING_PARTITIONS;
}

/* Entries in all tables (read without locks: a gauge). */
static long
pending_entries(void)
{
	long		n = 0;

	for (int i = 0; i < PIXL_PENDING_PARTITIONS; i++)
		n += hash_get_num_entries(pend_hash[i]);
	return n;
}

static void pixl_usage_pending_save(int code, Datum arg);
static void pixl_usage_pending_load(void);

void
pixl_usage_pending_init(void)
{
	DefineCustomIntVariable("pixltoken.pending_responses",
							"Verifications kept in shared memory until their response is reported or written out.",
							"A verification that finds the table full gets no entry: its response report is ignored.",
							&pixl_pending_max,
							16384, 256, 4194304,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pixltoken.response_wait",
							"How long a verification waits in shared memory for its response report before the worker writes it to pixl_usage_pending_responses.",
							NULL,
							&pixl_response_wait_ms,
							10000, 100, 86400000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

void
pixl_usage_pending_shmem_request(void)
{
	RequestAddinShmemSpace(mul_size(PIXL_PENDING_PARTITIONS,
									hash_estimate_size(table_max(),
													   sizeof(PixlPendingEntry))));
	RequestNamedLWLockTranche("pixltoken pending responses", PIXL_PENDING_PARTITIONS);
}

/* Called with AddinShmemInitLock held (pixltoken.c), after the aggregates. */
void
pixl_usage_pending_shmem_startup(void)
{
	HASHCTL		info;
	long		before;

	pend_locks = GetNamedLWLockTranche("pixltoken pending responses");
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(int64);
	info.entrysize = sizeof(PixlPendingEntry);
	for (int i = 0; i < PIXL_PENDING_PARTITIONS; i++)
	{
		char		name[64];

		snprintf(name, sizeof(name), "pixltoken pending responses %d", i);
		pend_hash[i] = ShmemInitHash(name, table_max(), table_max(),
									 &info, HASH_ELEM | HASH_BLOBS);
	}
	before = pending_entries();
	if (!IsUnderPostmaster)
	{
		on_shmem_exit(pixl_usage_pending_save, (Datum) 0);
		if (before == 0)
			pixl_usage_pending_load();
	}
}

/* A request id's hash code; its table and lock follow from it. */
static inline uint32
id_hash(const int64 *request_id)
{
	return get_hash_value(pend_hash[0], request_id);
}

static inline HTAB *
table_of(uint32 hashcode)
{
	return pend_hash[hashcode % PIXL_PENDING_PARTITIONS];
}

static inline LWLock *
partition_lock(uint32 hashcode)
{
	return &pend_locks[hashcode % PIXL_PENDING_PARTITIONS].lock;
}

bool
pixl_usage_pending_add(int64 request_id, const PixlAggKey *key,
					   TimestampTz at, int16 verify_status,
					   const PixlQuotaCharge *charge)
{
	uint32		h;
	LWLock	   *lock;
	PixlPendingEntry *e;
	bool		found;

	if (pend_hash[0] == NULL)
		return false;
	h = id_hash(&request_id);
	if (hash_get_num_entries(table_of(h)) >= table_max())
		return false;
	lock = partition_lock(h);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(table_of(h), &request_id, h, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		LWLockRelease(lock);
		return false;
	}
	if (!found)
	{
		e->state = PIXL_PENDING;
		e->verify_status = verify_status;
		e->status = 0;
		e->response_ms = 0;
		e->at = at;
		e->key = *key;
		if (charge != NULL)
			e->charge = *charge;
		else
			memset(&e->charge, 0, sizeof(e->charge));
	}
	LWLockRelease(lock);
	return found ? false : true;
}

PixlClaim
pixl_usage_pending_claim(int64 request_id, int16 status, double response_ms,
						 bool dry_run, PixlQuotaCharge *charge,
						 PixlAggKey *counted_under)
{
	uint32		h = id_hash(&request_id);
	LWLock	   *lock = partition_lock(h);
	PixlPendingEntry *e;
	PixlAggKey	key;
	int16		verify_status = 0;
	bool		add = false;
	PixlClaim	result;

	memset(&key, 0, sizeof(key));
	memset(charge, 0, sizeof(*charge));
	memset(counted_under, 0, sizeof(*counted_under));
	LWLockAcquire(lock, dry_run ? LW_SHARED : LW_EXCLUSIVE);
	e = hash_search_with_hash_value(table_of(h), &request_id, h, HASH_FIND, NULL);
	if (e == NULL)
		result = PIXL_CLAIM_ABSENT;
	else if (e->state == PIXL_PENDING)
	{
		result = PIXL_CLAIM_COUNTED;
		if (!dry_run)
		{
			key = e->key;
			verify_status = e->verify_status;
			*charge = e->charge;
			*counted_under = e->key;
			add = true;
			(void) hash_search_with_hash_value(table_of(h), &request_id, h,
											   HASH_REMOVE, NULL);
		}
	}
	else if (e->state == PIXL_SPILLING)
	{
		/* the worker is writing it out: the response waits for its outcome */
		result = PIXL_CLAIM_COUNTED;
		if (!dry_run)
		{
			e->state = PIXL_REPORTED;
			e->status = status;
			e->response_ms = response_ms;
			*charge = e->charge;
			*counted_under = e->key;
			e->charge.charged = 0;	/* handed out: never twice */
		}
	}
	else
		result = PIXL_CLAIM_TAKEN;
	LWLockRelease(lock);

	if (add &&
		!pixl_usage_aggregate_add_response(&key, verify_status, status, response_ms))
		ereport(LOG,
				(errmsg("pixltoken: a response report was lost: the usage count table is full"),
				 errhint("Raise pixltoken.aggregate_entries.")));
	return result;
}

PixlClaim
pixl_usage_pending_add_late(int64 request_id, int16 status, double response_ms)
{
	uint32		h = id_hash(&request_id);
	LWLock	   *lock = partition_lock(h);
	PixlPendingEntry *e;
	bool		found;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(table_of(h), &request_id, h, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		LWLockRelease(lock);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of shared memory for response reports"),
				 errhint("Report again later, or raise pixltoken.pending_responses.")));
	}
	if (found)
	{
		LWLockRelease(lock);
		return PIXL_CLAIM_TAKEN;
	}
	memset(&e->key, 0, sizeof(e->key));
	e->key.dbid = MyDatabaseId;
	e->state = PIXL_LATE;
	e->verify_status = 0;
	e->status = status;
	e->response_ms = response_ms;
	e->at = GetCurrentTimestamp();
	LWLockRelease(lock);
	return PIXL_CLAIM_COUNTED;
}

static void
copy_item(const PixlPendingEntry *e, PixlPendingItem *item)
{
	item->request_id = e->request_id;
	item->key = e->key;
	item->at = e->at;
	item->verify_status = e->verify_status;
	item->status = e->status;
	item->response_ms = e->response_ms;
}

void
pixl_usage_pending_collect(Oid dbid, PixlPendingItem *spill, int *nspill,
						   int max, PixlPendingItem *late, int *nlate, int maxlate)
{
	HASH_SEQ_STATUS status;
	PixlPendingEntry *e;
	TimestampTz cutoff = GetCurrentTimestamp() -
		(TimestampTz) pixl_response_wait_ms * 1000;
	long		entries = pending_entries();
	bool		crowded = entries > (long) pixl_pending_max / 2;

	*nspill = 0;
	*nlate = 0;
	if (entries == 0)
		return;
	for (int i = 0; i < PIXL_PENDING_PARTITIONS; i++)
	{
		if (hash_get_num_entries(pend_hash[i]) == 0)
			continue;
		LWLockAcquire(&pend_locks[i].lock, LW_EXCLUSIVE);
		hash_seq_init(&status, pend_hash[i]);
		while ((e = hash_seq_search(&status)) != NULL)
		{
			if (e->key.dbid != dbid)
				continue;
			if (e->state == PIXL_LATE && *nlate < maxlate)
				copy_item(e, &late[(*nlate)++]);
			else if (e->state == PIXL_PENDING && *nspill < max &&
					 (crowded || e->at <= cutoff))
			{
				e->state = PIXL_SPILLING;
				copy_item(e, &spill[(*nspill)++]);
			}
		}
		LWLockRelease(&pend_locks[i].lock);
	}
}

void
pixl_usage_pending_done(const PixlPendingItem *spill, int nspill,
						const PixlPendingItem *late, int nlate, bool committed)
{
	for (int i = 0; i < nspill + nlate; i++)
	{
		const PixlPendingItem *item = i < nspill ? &spill[i] : &late[i - nspill];
		int64		id = item->request_id;
		uint32		h = id_hash(&id);
		LWLock	   *lock = partition_lock(h);
		PixlPendingEntry *e;
		PixlPendingEntry copy;
		bool		apply = false;

		LWLockAcquire(lock, LW_EXCLUSIVE);
		e = hash_search_with_hash_value(table_of(h), &id, h, HASH_FIND, NULL);
		if (e && i < nspill)
		{
			if (e->state == PIXL_SPILLING)
			{
				if (committed)
					(void) hash_search_with_hash_value(table_of(h), &id, h, HASH_REMOVE, NULL);
				else
					e->state = PIXL_PENDING;
			}
			else if (e->state == PIXL_REPORTED)
			{
				if (committed)
					e->state = PIXL_LATE;	/* its row is to be deleted */
				else
				{
					copy = *e;
					apply = true;
					(void) hash_search_with_hash_value(table_of(h), &id, h, HASH_REMOVE, NULL);
				}
			}
		}
		else if (e && committed && e->state == PIXL_LATE)
			(void) hash_search_with_hash_value(table_of(h), &id, h, HASH_REMOVE, NULL);
		LWLockRelease(lock);
		if (apply)
			(void) pixl_usage_aggregate_add_response(&copy.key, copy.verify_status,
													 copy.status, copy.response_ms);
	}
}

void
pixl_usage_pending_recover(Oid dbid)
{
	HASH_SEQ_STATUS status;
	PixlPendingEntry *e;
	PixlPendingEntry *reported = NULL;
	int			n = 0;
	int			size = 0;

	for (int i = 0; i < PIXL_PENDING_PARTITIONS; i++)
	{
		LWLockAcquire(&pend_locks[i].lock, LW_EXCLUSIVE);
		hash_seq_init(&status, pend_hash[i]);
		while ((e = hash_seq_search(&status)) != NULL)
		{
			if (e->key.dbid != dbid)
				continue;
			if (e->state == PIXL_SPILLING)
				e->state = PIXL_PENDING;
			else if (e->state == PIXL_REPORTED)
			{
				/* palloc under an LWLock is fine: an error releases it */
				if (n >= size)
				{
					size = Max(size * 2, 64);
					reported = reported ? repalloc(reported, sizeof(PixlPendingEntry) * size)
						: palloc(sizeof(PixlPendingEntry) * size);
				}
				reported[n++] = *e;
				(void) hash_search(pend_hash[i], &e->request_id, HASH_REMOVE, NULL);
			}
		}
		LWLockRelease(&pend_locks[i].lock);
	}
	for (int i = 0; i < n; i++)
		(void) pixl_usage_aggregate_add_response(&reported[i].key,
												 reported[i].verify_status,
												 reported[i].status,
												 reported[i].response_ms);
}

int64
pixl_usage_pending_discard(Oid dbid, bool expired_only)
{
	HASH_SEQ_STATUS status;
	PixlPendingEntry *e;
	TimestampTz cutoff = GetCurrentTimestamp() -
		(TimestampTz) pixl_response_wait_ms * 1000;
	int64		n = 0;

	for (int i = 0; i < PIXL_PENDING_PARTITIONS; i++)
	{
		LWLockAcquire(&pend_locks[i].lock, LW_EXCLUSIVE);
		hash_seq_init(&status, pend_hash[i]);
		while ((e = hash_seq_search(&status)) != NULL)
		{
			if (e->key.dbid != dbid)
				continue;
			if (expired_only && !(e->state == PIXL_PENDING && e->at <= cutoff))
				continue;
			(void) hash_search(pend_hash[i], &e->request_id, HASH_REMOVE, NULL);
			n++;
		}
		LWLockRelease(&pend_locks[i].lock);
	}
	return n;
}

/* ---- saving and loading on clean shutdown and start ---- */

/* on_shmem_exit callback of the postmaster: on a clean exit, save entries. */
static void
pixl_usage_pending_save(int code, Datum arg)
{
	FILE	   *file;
	PixlPendingFileHeader hdr;
	HASH_SEQ_STATUS status;
	PixlPendingEntry *e;

	if (code != 0 || pend_hash[0] == NULL)
		return;
	file = AllocateFile(PIXL_PENDING_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;
	hdr.magic = PIXL_PENDING_FILE_MAGIC;
	hdr.version = PIXL_PENDING_FILE_VERSION;
	hdr.entry_size = sizeof(PixlPendingEntry);
	hdr.count = pending_entries();
	if (fwrite(&hdr, sizeof(hdr), 1, file) != 1)
		goto error;
	for (int i = 0; i < PIXL_PENDING_PARTITIONS; i++)
	{
		hash_seq_init(&status, pend_hash[i]);
		while ((e = hash_seq_search(&status)) != NULL)
		{
			if (fwrite(e, sizeof(*e), 1, file) != 1)
			{
				hash_seq_term(&status);
				goto error;
			}
		}
	}
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(PIXL_PENDING_FILE ".tmp", PIXL_PENDING_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", PIXL_PENDING_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(PIXL_PENDING_FILE ".tmp");
}

/*
 * SPILLING and REPORTED entries stay as saved: the database's worker
 * settles them when it starts (pixl_usage_pending_recover).
 */
static void
pixl_usage_pending_load(void)
{
	FILE	   *file;
	PixlPendingFileHeader hdr;
	int64		lost = 0;

	file = AllocateFile(PIXL_PENDING_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", PIXL_PENDING_FILE)));
		return;
	}
	if (!pixl_last_shutdown_was_clean())
	{
		ereport(LOG,
				(errmsg("pixltoken: discarding the pending verifications saved at an immediate shutdown")));
		goto done;
	}
	if (fread(&hdr, sizeof(hdr), 1, file) != 1 ||
		hdr.magic != PIXL_PENDING_FILE_MAGIC ||
		hdr.version != PIXL_PENDING_FILE_VERSION ||
		hdr.entry_size != sizeof(PixlPendingEntry) || hdr.count < 0)
	{
		ereport(LOG,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ignoring file \"%s\" of an incompatible format", PIXL_PENDING_FILE)));
		goto done;
	}
	for (int64 i = 0; i < hdr.count; i++)
	{
		PixlPendingEntry s;
		PixlPendingEntry *e;
		uint32		h;
		bool		found;

		if (fread(&s, sizeof(s), 1, file) != 1)
		{
			ereport(LOG,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("file \"%s\" is truncated", PIXL_PENDING_FILE)));
			break;
		}
		h = id_hash(&s.request_id);
		e = hash_get_num_entries(table_of(h)) < table_max()
			? hash_search_with_hash_value(table_of(h), &s.request_id, h,
										  HASH_ENTER_NULL, &found) : NULL;
		if (e == NULL)
		{
			lost++;
			continue;
		}
		*e = s;
	}
	if (lost > 0)
		ereport(LOG,
				(errmsg("pixltoken: discarded %lld saved pending verifications", (long long) lost),
				 errdetail("pixltoken.pending_responses shrank.")));
done:
	FreeFile(file);
	unlink(PIXL_PENDING_FILE);
}
