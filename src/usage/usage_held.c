/*-------------------------------------------------------------------------
 *
 * usage_held.c
 *		How many verifications each database's shared-memory counts hold,
 *		in a file mapping that outlives a crash, so that what a crash
 *		discards is counted.
 *
 * The counts (usage_aggregate.c) live in PostgreSQL's shared memory, which
 * a crash takes with it: a crash restart after a backend's crash makes it
 * anew, and a kill -9 of the postmaster (or an immediate shutdown, whose
 * saved counts are discarded) leaves only files.  What they held is lost
 * (README, loss table); this file makes the loss counted.  Per database
 * of pixltoken.database, a counter "held": +1 when a verification is added
 * to the counts (usage_route.c, after the add), -n when n leave them
 * (written by the primary's worker after its commit, spooled by a
 * standby's after the spool file is in place, or discarded), always right
 * after the step that makes them someone else's.  It lives in a file,
 * pg_stat_tmp/pixltoken_counts_held.map, mapped MAP_SHARED by the
 * postmaster and inherited by every child: its pages are the kernel's, so
 * they keep the last value written when every process of the server is
 * killed.  A crash of the operating system (or a power loss) can lose
 * them: then the loss of that crash is not counted.
 *
 * At every shared-memory initialisation (start and crash restart) the
 * postmaster, before any child runs, reads the file: what a database's
 * counts held at the end of the last run, minus what this start loaded
 * back into them (the counts a clean shutdown saved; nothing after a crash
 * or an immediate shutdown), is lost: added to counts_lost of pixl_stats()
 * for that database (the row of the databases without a ring when it is
 * no longer in pixltoken.database), to lost_total (kept in the file, what
 * a standby ships to its primary), and logged.  Then "held" starts at what
 * was loaded.  A verification being counted when its backend is killed,
 * or one counted and not yet answered when a crash restart ends its
 * session, may be counted as lost although its client got no answer: a
 * crash restart can overstate the loss by one per session that was
 * verifying; a kill -9 of the postmaster alone cannot (backends answer
 * what they are verifying before they notice).  A crash in the few
 * instructions between a batch's commit (or spool) and its "-n" counts
 * that batch as lost although it was kept: never the other way round.
 * One more gap: a start without a file of ours (the first start of this
 * library, or pg_stat_tmp/ wiped) that loads counts a clean shutdown saved
 * cannot tell which database they belong to, so until the next start a
 * crash's loss is counted short by what is left of those counts.
 *
 * Cost.  The request path adds one to one of PIXL_HELD_SHARDS counters of
 * its database, each on its own cache line, picked by the backend's
 * process number, so backends rarely share a line; "held" is their sum.
 * pg_stat_tmp/ is not in base backups, so a new standby starts without
 * the primary's figures.
 *
 * Locking: atomics only.  Only the postmaster writes anything else in the
 * file, and only while no child runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "utils/memutils.h"

#include "usage/usage_aggregate.h"
#include "usage/usage_held.h"
#include "usage/usage_ring.h"
#include "usage/usage_stats.h"

#define PIXL_HELD_FILE		PG_STAT_TMP_DIR "/pixltoken_counts_held.map"
#define PIXL_HELD_MAGIC		0x50584c48	/* "PXLH" */
#define PIXL_HELD_VERSION	1
#define PIXL_HELD_SHARDS	16

typedef struct PixlHeldShard
{
	pg_atomic_uint64 n;			/* adds minus subtractions, modulo 2^64 */
	char		pad[PG_CACHE_LINE_SIZE - sizeof(pg_atomic_uint64)];
} PixlHeldShard;

typedef struct PixlHeldSlot
{
	char		dbname[NAMEDATALEN];
	pg_atomic_uint32 dbid;		/* of the counts it holds; 0: none yet */
	uint32		unused;
	pg_atomic_uint64 lost_total;
	char		pad[2 * PG_CACHE_LINE_SIZE - NAMEDATALEN - 2 * sizeof(uint32) -
					sizeof(pg_atomic_uint64)];
	PixlHeldShard shard[PIXL_HELD_SHARDS];
} PixlHeldSlot;

typedef struct PixlHeldHeader
{
	uint32		magic;
	uint32		version;
	uint32		nslots;
	uint32		slot_size;
	char		pad[PG_CACHE_LINE_SIZE - 4 * sizeof(uint32)];
} PixlHeldHeader;

#define PIXL_HELD_SIZE(n)	(sizeof(PixlHeldHeader) + (Size) (n) * sizeof(PixlHeldSlot))

/* The mapping (the postmaster's, inherited); NULL: none (counted nothing). */
static PixlHeldSlot *held_slots = NULL;
static int	held_nslots = 0;
static void *held_map = NULL;
static Size held_map_size = 0;

static int64
slot_held(PixlHeldSlot *slot)
{
	uint64		sum = 0;

	for (int i = 0; i < PIXL_HELD_SHARDS; i++)
		sum += pg_atomic_read_u64(&slot->shard[i].n);
	return (int64) sum;
}

/*
 * The old file's slots, copied out (palloc'd), or NULL when there is none
 * or it is not ours.
 */
static PixlHeldSlot *
read_old_file(int *nslots)
{
	int			fd = OpenTransientFile(PIXL_HELD_FILE, O_RDONLY | PG_BINARY);
	PixlHeldHeader hdr;
	PixlHeldSlot *slots = NULL;
	Size		len;

	*nslots = 0;
	if (fd < 0)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", PIXL_HELD_FILE)));
		return NULL;
	}
	if (read(fd, &hdr, sizeof(hdr)) != sizeof(hdr) ||
		hdr.magic != PIXL_HELD_MAGIC || hdr.version != PIXL_HELD_VERSION ||
		hdr.slot_size != sizeof(PixlHeldSlot) || hdr.nslots > 10000)
	{
		ereport(LOG,
				(errmsg("ignoring file \"%s\" of an incompatible format: what the last run's usage counts held is not known",
						PIXL_HELD_FILE)));
		CloseTransientFile(fd);
		return NULL;
	}
	len = (Size) hdr.nslots * sizeof(PixlHeldSlot);
	slots = palloc(Max(len, 1));
	if (len > 0 && read(fd, slots, len) != (ssize_t) len)
	{
		ereport(LOG,
				(errmsg("file \"%s\" is truncated: what the last run's usage counts held is not known",
						PIXL_HELD_FILE)));
		pfree(slots);
		slots = NULL;
	}
	else
		*nslots = hdr.nslots;
	CloseTransientFile(fd);
	return slots;
}

/* Writes the new file whole (image of PIXL_HELD_SIZE(nslots) bytes). */
static bool
write_new_file(const char *image, Size len)
{
	int			fd = OpenTransientFile(PIXL_HELD_FILE ".tmp",
									   O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);

	if (fd < 0 || write(fd, image, len) != (ssize_t) len ||
		CloseTransientFile(fd) != 0 ||
		rename(PIXL_HELD_FILE ".tmp", PIXL_HELD_FILE) != 0)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", PIXL_HELD_FILE),
				 errdetail("What a crash discards of the usage counts is not counted until the next start.")));
		return false;
	}
	return true;
}

static void
map_file(Size len)
{
	int			fd;
	void	   *p;

	fd = OpenTransientFile(PIXL_HELD_FILE, O_RDWR | PG_BINARY);
	if (fd < 0)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", PIXL_HELD_FILE)));
		return;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CloseTransientFile(fd);
	if (p == MAP_FAILED)
	{
		ereport(LOG,
				(errmsg("could not map file \"%s\": %m", PIXL_HELD_FILE)));
		return;
	}
	held_map = p;
	held_map_size = len;
	held_nslots = ((PixlHeldHeader *) p)->nslots;
	held_slots = (PixlHeldSlot *) ((char *) p + sizeof(PixlHeldHeader));
}

void
pixl_usage_held_shmem_startup(void)
{
	List	   *names = pixl_usage_database_names();
	int			nslots = list_length(names);
	int			nold;
	PixlHeldSlot *old;
	char	   *image;
	PixlHeldHeader *hdr;
	PixlHeldSlot *slots;
	Size		len = PIXL_HELD_SIZE(nslots);
	bool	   *matched;
	int			i;
	ListCell   *lc;

	if (IsUnderPostmaster)
	{
		/* EXEC_BACKEND: a child maps what its postmaster made */
		if (held_map == NULL)
			map_file(len);
		return;
	}

	/* a crash restart: the postmaster's mapping of the last run */
	if (held_map != NULL)
	{
		(void) munmap(held_map, held_map_size);
		held_map = NULL;
		held_slots = NULL;
		held_nslots = 0;
	}

	old = read_old_file(&nold);
	matched = palloc0(sizeof(bool) * Max(nold, 1));
	image = palloc0(len);
	hdr = (PixlHeldHeader *) image;
	hdr->magic = PIXL_HELD_MAGIC;
	hdr->version = PIXL_HELD_VERSION;
	hdr->nslots = nslots;
	hdr->slot_size = sizeof(PixlHeldSlot);
	slots = (PixlHeldSlot *) (image + sizeof(PixlHeldHeader));

	i = 0;
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		PixlHeldSlot *s = &slots[i];
		Oid			dbid = InvalidOid;
		int64		lost_total = 0;
		int64		loaded = 0;

		strlcpy(s->dbname, name, NAMEDATALEN);
		for (int j = 0; j < nold; j++)
		{
			if (!matched[j] && strncmp(old[j].dbname, name, NAMEDATALEN) == 0)
			{
				int64		was = slot_held(&old[j]);

				matched[j] = true;
				dbid = pg_atomic_read_u32(&old[j].dbid);
				lost_total = (int64) pg_atomic_read_u64(&old[j].lost_total);
				if (OidIsValid(dbid))
					loaded = pixl_usage_aggregate_requests(dbid);
				if (was > loaded)
				{
					ereport(LOG,
							(errmsg("pixltoken: %lld usage counts of database \"%s\" were lost with shared memory (a crash or an immediate shutdown)",
									(long long) (was - loaded), name),
							 errdetail("They are counted in counts_lost of pixl_stats().")));
					pixl_usage_stats_add(i, PIXL_COUNT_COUNTS_LOST, was - loaded);
					lost_total += was - loaded;
				}
				break;
			}
		}
		pg_atomic_init_u32(&s->dbid, dbid);
		pg_atomic_init_u64(&s->lost_total, (uint64) lost_total);
		for (int k = 0; k < PIXL_HELD_SHARDS; k++)
			pg_atomic_init_u64(&s->shard[k].n, k == 0 ? (uint64) loaded : 0);
		i++;
	}
	/* databases no longer served: their loss goes to the row of the rest */
	for (int j = 0; j < nold; j++)
	{
		int64		was;

		if (matched[j] || (was = slot_held(&old[j])) <= 0)
			continue;
		ereport(LOG,
				(errmsg("pixltoken: %lld usage counts of database \"%s\" were lost with shared memory (a crash or an immediate shutdown)",
						(long long) was, old[j].dbname)));
		pixl_usage_stats_add(-1, PIXL_COUNT_COUNTS_LOST, was);
	}

	if (write_new_file(image, len))
		map_file(len);
	pfree(image);
	pfree(matched);
	if (old)
		pfree(old);
}

static inline PixlHeldSlot *
held_slot(int idx)
{
	if (held_slots == NULL || idx < 0 || idx >= held_nslots)
		return NULL;
	return &held_slots[idx];
}

void
pixl_usage_held_add(int idx, Oid dbid)
{
	PixlHeldSlot *s = held_slot(idx);
	int			shard = MyProc ? MyProc->pgprocno % PIXL_HELD_SHARDS : 0;

	if (s == NULL)
		return;
	if (pg_atomic_read_u32(&s->dbid) != dbid)
		pg_atomic_write_u32(&s->dbid, dbid);
	pg_atomic_fetch_add_u64(&s->shard[shard].n, 1);
}

void
pixl_usage_held_sub(int idx, int64 n)
{
	PixlHeldSlot *s = held_slot(idx);
	int			shard = MyProc ? MyProc->pgprocno % PIXL_HELD_SHARDS : 0;

	if (s == NULL || n == 0)
		return;
	pg_atomic_fetch_sub_u64(&s->shard[shard].n, (uint64) n);
}

int64
pixl_usage_held_lost_total(int idx)
{
	PixlHeldSlot *s = held_slot(idx);

	return s ? (int64) pg_atomic_read_u64(&s->lost_total) : 0;
}
