/*-------------------------------------------------------------------------
 *
 * usage_dumpfile.c
 *		The file that keeps the rings' records across a clean restart.
 *
 * What is still queued when the postmaster exits cleanly is saved to a
 * file, as pg_stat_statements saves its entries, and loaded into the rings
 * (by database name) at the next start; the file is then removed, so that
 * a later crash cannot load it twice.  After a crash nothing is saved, and
 * what was queued is lost.  Only the postmaster reads and writes the file,
 * when no other process is attached to the rings: no lock is needed.  A
 * file of 1.1 (version 2, whose events had no cost or charged) is loaded
 * with every event's cost 1 and charged 0, which is what they were.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "usage/exposure.h"
#include "usage/usage_dumpfile.h"
#include "usage/usage_ring.h"

#define PIXL_QUEUE_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pixltoken_queue.dat"
#define PIXL_QUEUE_FILE_MAGIC	0x50584c51	/* "PXLQ" */
#define PIXL_QUEUE_FILE_VERSION	3	/* 3: an event's cost, charged and
										 * exposure */
#define PIXL_QUEUE_FILE_VERSION_1_1	2	/* still read (PIXL_USAGE_RECORD_SIZE_1_1) */

typedef struct PixlQueueFileHeader
{
	uint32		magic;
	uint32		version;
	uint32		record_size;
	int32		nqueues;
} PixlQueueFileHeader;

static void pixl_usage_dumpfile_save(int code, Datum arg);
static void pixl_usage_dumpfile_load(void);

void
pixl_usage_dumpfile_shmem_startup(bool rings_created)
{
	/* Only the postmaster saves and loads the rings. */
	if (IsUnderPostmaster)
		return;
	on_shmem_exit(pixl_usage_dumpfile_save, (Datum) 0);
	if (rings_created)
		pixl_usage_dumpfile_load();
}

/*
 * on_shmem_exit callback of the postmaster.  On a clean exit (code 0) the
 * queued records go to a file; after a crash nothing is saved.
 */
static void
pixl_usage_dumpfile_save(int code, Datum arg)
{
	FILE	   *file;
	PixlQueueFileHeader hdr;

	if (code != 0)
		return;

	file = AllocateFile(PIXL_QUEUE_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;

	hdr.magic = PIXL_QUEUE_FILE_MAGIC;
	hdr.version = PIXL_QUEUE_FILE_VERSION;
	hdr.record_size = sizeof(PixlUsageRecord);
	hdr.nqueues = pixl_usage_ring_count();
	if (fwrite(&hdr, sizeof(hdr), 1, file) != 1)
		goto error;

	for (int i = 0; i < hdr.nqueues; i++)
	{
		char		dbname[NAMEDATALEN];
		int64		count;

		/* every backend is gone: only published slots count */
		count = pixl_usage_ring_published(i);
		memset(dbname, 0, sizeof(dbname));
		strlcpy(dbname, pixl_usage_ring_dbname(i), NAMEDATALEN);
		if (fwrite(dbname, NAMEDATALEN, 1, file) != 1 ||
			fwrite(&count, sizeof(count), 1, file) != 1)
			goto error;
		for (int64 k = 0; k < count; k++)
		{
			TimestampTz queued_at;
			const PixlUsageRecord *rec = pixl_usage_ring_at(i, k, &queued_at);

			if (fwrite(&queued_at, sizeof(TimestampTz), 1, file) != 1 ||
				fwrite(rec, sizeof(PixlUsageRecord), 1, file) != 1)
				goto error;
		}
		if (count > 0)
			elog(LOG, "pixltoken: saved %lld queued usage records of database \"%s\"",
				 (long long) count, dbname);
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
 * Loads the file of the last clean shutdown into the rings (by database
 * name), then removes it so that a later crash cannot load it twice.
 */
static void
pixl_usage_dumpfile_load(void)
{
	FILE	   *file;
	PixlQueueFileHeader hdr;

	file = AllocateFile(PIXL_QUEUE_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", PIXL_QUEUE_FILE)));
		return;
	}
	if (!pixl_last_shutdown_was_clean())
	{
		ereport(LOG,
				(errmsg("pixltoken: discarding the usage queue saved at an immediate shutdown"),
				 errdetail("The usage worker may have written part of it already.")));
		goto done;
	}

	if (fread(&hdr, sizeof(hdr), 1, file) != 1 ||
		hdr.magic != PIXL_QUEUE_FILE_MAGIC ||
		!((hdr.version == PIXL_QUEUE_FILE_VERSION &&
		   hdr.record_size == sizeof(PixlUsageRecord)) ||
		  (hdr.version == PIXL_QUEUE_FILE_VERSION_1_1 &&
		   hdr.record_size == PIXL_USAGE_RECORD_SIZE_1_1)) ||
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
		int			idx;
		int64		lost = 0;

		if (fread(dbname, NAMEDATALEN, 1, file) != 1 ||
			fread(&count, sizeof(count), 1, file) != 1 || count < 0)
			goto corrupt;
		dbname[NAMEDATALEN - 1] = '\0';
		idx = pixl_usage_ring_of_name(dbname);
		for (int64 k = 0; k < count; k++)
		{
			TimestampTz queued_at;
			PixlUsageRecord rec;
			char		old[PIXL_USAGE_RECORD_SIZE_1_1];

			if (fread(&queued_at, sizeof(queued_at), 1, file) != 1)
				goto corrupt;
			if (hdr.version == PIXL_QUEUE_FILE_VERSION_1_1)
			{
				if (fread(old, sizeof(old), 1, file) != 1)
					goto corrupt;
				pixl_usage_record_from_1_1(old, &rec);
			}
			else if (fread(&rec, sizeof(rec), 1, file) != 1)
				goto corrupt;
			if (idx < 0 || !pixl_usage_ring_restore(idx, &rec, queued_at))
				lost++;
			else
				pixl_exposure_restore(&rec);
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
