/*-------------------------------------------------------------------------
 *
 * replica_ship.c
 *		A hot standby's usage, shipped to its primary exactly once.
 *
 * A standby cannot write, but its verifications are counted and sampled
 * exactly as on a primary (usage_route.c): the same ring and the same
 * shared-memory counts.  Its usage worker (usage_worker.c, started at
 * consistent state) runs pixl_replica_ship_flush() instead of writing: it
 * connects to the primary over libpq and hands each batch to the primary's
 * pixl_ingest_usage() (replica_ingest.c).
 *
 * Exactly once.  A node is (pixltoken.node_id, incarnation): the
 * incarnation is a random number made when the node's spool is first
 * written, so a second standby configured with the same node id, or a
 * standby rebuilt under an old one, is told apart and refused (PX065)
 * instead of being taken for a retry.  Batches are numbered 1, 2, 3 ... and
 * the protocol per batch is:
 *
 *	1. peek records from the ring and snapshot the counts;
 *	2. write them as the pending batch n to the spool file (fsync'd), then,
 *	   with interrupts held, rename the file into place, subtract the
 *	   counts and consume the records: from here on the batch exists only
 *	   in the spool, never in two places;
 *	3. send it: the primary applies batch n in one transaction if its
 *	   last_seq for the node is n - 1, answers 'duplicate' if it already
 *	   has n, refuses a gap (PX066);
 *	4. after the answer, wait until this standby's replay has passed the
 *	   primary's WAL position read after that commit: the batch is then in
 *	   this node's own copy of pixl_replica_nodes, so after a failover to
 *	   another standby, or a promotion of this one, the dedupe still holds;
 *	5. mark batch n done in the spool; go to 1.
 *
 * What is taken in step 2 passes the primary's checks of a batch
 * (replica_batch.c: counts clamped to the per-batch ceiling, the rest left
 * for the next batch; an item the primary would refuse left out and
 * counted as dead), so a healthy standby never sends a batch that the
 * primary refuses and that would stay pending for ever.
 *
 * A break at any point re-sends the pending batch, which the primary then
 * applies (it never committed) or acknowledges as a duplicate (it did).
 * The spool lives in pg_stat_tmp/, which survives crash restarts and which
 * pg_basebackup does not copy (a new standby gets a new incarnation).
 * What a crash loses is what was still in shared memory, as on a primary,
 * and it is counted the same way (usage_held.c: the spool's counts leave
 * "held" right after the spool file is in place).
 *
 * Only the usage worker of the database touches its spool file: no lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/pg_type.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/node.h"
#include "usage/usage_held.h"
#include "usage/usage_ring.h"
#include "usage/usage_stats.h"
#include "writer/replica_batch.h"
#include "writer/replica_ingest.h"
#include "writer/replica_ship.h"

#define PIXL_SHIP_BATCH_SIZE	1000
#define PIXL_SHIP_FOLD_SIZE		1000
#define PIXL_SHIP_TIMEOUT_MS	60000	/* one round trip, client side */
#define PIXL_SPOOL_MAGIC		0x50584c53	/* "PXLS" */
#define PIXL_SPOOL_VERSION		2	/* 2: lost_through */

static char *pixl_primary_conninfo = NULL;
static bool pixl_ship_test_resend = false;

void
pixl_replica_ship_init(void)
{
	DefineCustomStringVariable("pixltoken.primary_conninfo",
							   "Where a hot standby ships its usage (a libpq connection string).",
							   "Empty: the server's primary_conninfo, with dbname set to each database shipped.",
							   &pixl_primary_conninfo,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("pixltoken.ship_test_resend",
							 "Test only: send every shipped batch twice.",
							 NULL,
							 &pixl_ship_test_resend,
							 false,
							 PGC_SIGHUP,
							 GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							 NULL, NULL, NULL);
}

/* ---- the spool file ---- */

typedef struct PixlSpoolHeader
{
	uint32		magic;
	uint32		version;
	uint64		incarnation;
	int64		seq;			/* pending batch, or the last one done */
	uint32		batch_len;		/* 0: nothing pending */
	int32		events;			/* of the pending batch, for pixl_stats */
	int32		responses;
	int64		requests;
	pg_crc32c	crc;			/* of the header up to here and the batch */
	uint32		unused;			/* version 1's padding */
	/* version 2 */
	int64		lost_through;	/* usage_held.c's lost_total shipped so far */
	pg_crc32c	crc2;			/* of lost_through */
} PixlSpoolHeader;

/* A spool of version 1 (1.1's library) has the header up to lost_through. */
#define PIXL_SPOOL_HEADER_SIZE_1	offsetof(PixlSpoolHeader, lost_through)

typedef struct PixlSpool
{
	bool		loaded;
	PixlSpoolHeader hdr;
	bytea	   *batch;			/* in TopMemoryContext; NULL: none pending */
} PixlSpool;

static PixlSpool spool;
static PGconn *ship_conn = NULL;

static char *pixl_ship_query(const char *sql, int nparams, const Oid *types,
							 const char *const *values, const int *lengths,
							 const int *formats, const char **error);

static char *
pixl_spool_path(const char *suffix)
{
	return psprintf("%s/pixltoken_ship_%u.spool%s", PG_STAT_TMP_DIR,
					MyDatabaseId, suffix);
}

static pg_crc32c
pixl_spool_crc(const PixlSpoolHeader *hdr, const bytea *batch)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, hdr, offsetof(PixlSpoolHeader, crc));
	if (batch)
		COMP_CRC32C(crc, VARDATA(batch), VARSIZE(batch) - VARHDRSZ);
	FIN_CRC32C(crc);
	return crc;
}

/* The crc of version 2's fields, after version 1's header. */
static pg_crc32c
pixl_spool_crc2(const PixlSpoolHeader *hdr)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, (const char *) hdr + PIXL_SPOOL_HEADER_SIZE_1,
				offsetof(PixlSpoolHeader, crc2) - PIXL_SPOOL_HEADER_SIZE_1);
	FIN_CRC32C(crc);
	return crc;
}

/*
 * Writes the spool to its temporary name and fsyncs it; the caller renames
 * it into place (pixl_spool_install), with interrupts held when that must
 * go together with taking the batch out of shared memory.
 */
static void
pixl_spool_prepare(PixlSpoolHeader *hdr, const bytea *batch)
{
	char	   *tmp = pixl_spool_path(".tmp");
	int			fd;

	hdr->magic = PIXL_SPOOL_MAGIC;
	hdr->version = PIXL_SPOOL_VERSION;
	hdr->batch_len = batch ? VARSIZE(batch) - VARHDRSZ : 0;
	hdr->crc = pixl_spool_crc(hdr, batch);
	hdr->unused = 0;
	hdr->crc2 = pixl_spool_crc2(hdr);

	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, hdr, sizeof(*hdr)) != sizeof(*hdr) ||
		(batch && write(fd, VARDATA(batch), hdr->batch_len) != hdr->batch_len))
	{
		if (errno == 0)
			errno = ENOSPC;
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	if (pg_fsync(fd) != 0)
		ereport(data_sync_elevel(ERROR),
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", tmp)));
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", tmp)));
}

/* rename(2) is atomic: the old spool or the new one, never neither. */
static void
pixl_spool_install(void)
{
	char	   *tmp = pixl_spool_path(".tmp");
	char	   *path = pixl_spool_path("");

	if (rename(tmp, path) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m", tmp, path)));
}

static void
pixl_spool_sync_dir(void)
{
	(void) fsync_fname_ext(PG_STAT_TMP_DIR, true, false, LOG);
}

/*
 * Reads the spool or, when there is none and create is true, makes a new
 * incarnation's.  Damage stops shipping (and says what to do).
 */
static void
pixl_spool_load(bool create)
{
	char	   *path = pixl_spool_path("");
	int			fd;
	PixlSpoolHeader hdr;
	bytea	   *batch = NULL;

	if (spool.loaded)
		return;
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno != ENOENT)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", path)));
		if (!create)
		{
			spool.loaded = true;	/* nothing pending */
			return;
		}
		memset(&hdr, 0, sizeof(hdr));
		if (!pg_strong_random(&hdr.incarnation, sizeof(hdr.incarnation)))
			ereport(ERROR,
					(errmsg("could not generate a random incarnation for the usage spool")));
		hdr.incarnation &= PG_INT64_MAX;	/* a positive bigint */
		pixl_spool_prepare(&hdr, NULL);
		pixl_spool_install();
		pixl_spool_sync_dir();
	}
	else
	{
		bool		ok;

		/* version 1 (1.1's library): shipped no loss yet */
		memset(&hdr, 0, sizeof(hdr));
		ok = read(fd, &hdr, PIXL_SPOOL_HEADER_SIZE_1) == PIXL_SPOOL_HEADER_SIZE_1 &&
			hdr.magic == PIXL_SPOOL_MAGIC &&
			(hdr.version == PIXL_SPOOL_VERSION || hdr.version == 1) &&
			hdr.batch_len <= MaxAllocSize - VARHDRSZ;
		if (ok && hdr.version == PIXL_SPOOL_VERSION)
			ok = read(fd, (char *) &hdr + PIXL_SPOOL_HEADER_SIZE_1,
					  sizeof(hdr) - PIXL_SPOOL_HEADER_SIZE_1) ==
				sizeof(hdr) - PIXL_SPOOL_HEADER_SIZE_1 &&
				pixl_spool_crc2(&hdr) == hdr.crc2;

		if (ok && hdr.batch_len > 0)
		{
			batch = MemoryContextAlloc(TopMemoryContext, VARHDRSZ + hdr.batch_len);
			SET_VARSIZE(batch, VARHDRSZ + hdr.batch_len);
			ok = read(fd, VARDATA(batch), hdr.batch_len) == hdr.batch_len;
		}
		CloseTransientFile(fd);
		if (!ok || pixl_spool_crc(&hdr, batch) != hdr.crc)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("usage spool file \"%s\" is damaged", path),
					 errhint("Its batch is lost.  Remove the file and run pixl_replica_reset_node(%d) on the primary to ship again under a new incarnation.",
							 pixl_node_id)));
	}
	spool.hdr = hdr;
	spool.batch = batch;
	spool.loaded = true;
}

/* The pending batch was acknowledged and replayed: mark it done. */
static void
pixl_spool_done(void)
{
	PixlSpoolHeader hdr = spool.hdr;

	hdr.events = hdr.responses = 0;
	hdr.requests = 0;
	pixl_spool_prepare(&hdr, NULL);
	pixl_spool_install();
	pixl_spool_sync_dir();
	spool.hdr = hdr;
	if (spool.batch)
		pfree(spool.batch);
	spool.batch = NULL;
}

/* ---- libpq, waiting on the latch: SIGTERM and reloads get through ---- */

static void
pixl_ship_disconnect(void)
{
	if (ship_conn)
		PQfinish(ship_conn);
	ship_conn = NULL;
}

/* Waits for the socket; false after the deadline. */
static bool
pixl_ship_wait(int events, TimestampTz deadline)
{
	long		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														  deadline);
	int			rc;

	if (timeout <= 0)
		return false;
	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
						   PQsocket(ship_conn), timeout, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/* The conninfo: ours, or the server's primary_conninfo; never logged. */
static PQconninfoOption *
pixl_ship_conninfo(const char **error)
{
	const char *base = (pixl_primary_conninfo && pixl_primary_conninfo[0])
		? pixl_primary_conninfo : PrimaryConnInfo;
	char	   *err = NULL;
	PQconninfoOption *opts;

	if (base == NULL || base[0] == '\0')
	{
		*error = "neither pixltoken.primary_conninfo nor primary_conninfo is set";
		return NULL;
	}
	opts = PQconninfoParse(base, &err);
	if (opts == NULL)
	{
		/* libpq's message names the bad keyword, never a value */
		*error = psprintf("invalid connection string for shipping usage: %s",
						  err ? err : "out of memory");
		if (err)
			PQfreemem(err);
	}
	return opts;
}

static bool
pixl_ship_connect(int idx, const char **error)
{
	PQconninfoOption *opts;
	const char *keywords[64];
	const char *values[64];
	char		appname[NAMEDATALEN];
	int			n = 0;
	TimestampTz deadline;
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;

	if (ship_conn && PQstatus(ship_conn) == CONNECTION_OK)
		return true;
	pixl_ship_disconnect();

	opts = pixl_ship_conninfo(error);
	if (opts == NULL)
		return false;
	for (PQconninfoOption *o = opts; o->keyword && n < 56; o++)
	{
		if (o->val == NULL || o->val[0] == '\0' ||
			strcmp(o->keyword, "replication") == 0 ||
			strcmp(o->keyword, "dbname") == 0 ||
			strcmp(o->keyword, "application_name") == 0)
			continue;
		keywords[n] = o->keyword;
		values[n] = o->val;
		n++;
	}
	snprintf(appname, sizeof(appname), "pixltoken shipper %d", pixl_node_id);
	keywords[n] = "dbname";
	values[n++] = pixl_usage_ring_dbname(idx);
	keywords[n] = "application_name";
	values[n++] = appname;
	keywords[n] = "fallback_application_name";
	values[n++] = appname;
	keywords[n] = NULL;
	values[n] = NULL;

	ship_conn = PQconnectStartParams(keywords, values, false);
	PQconninfoFree(opts);
	if (ship_conn == NULL)
	{
		*error = "out of memory";
		return false;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PIXL_SHIP_TIMEOUT_MS);
	while (PQstatus(ship_conn) != CONNECTION_BAD &&
		   status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
	{
		if (!pixl_ship_wait(status == PGRES_POLLING_READING
							? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE, deadline))
		{
			*error = "timeout connecting to the primary";
			pixl_ship_disconnect();
			return false;
		}
		status = PQconnectPoll(ship_conn);
	}
	if (PQstatus(ship_conn) != CONNECTION_OK)
	{
		*error = pstrdup(PQerrorMessage(ship_conn));
		pixl_ship_disconnect();
		return false;
	}
	if (PQsetnonblocking(ship_conn, 1) != 0)
	{
		*error = pstrdup(PQerrorMessage(ship_conn));
		pixl_ship_disconnect();
		return false;
	}
	/* the server gives up before the client does: no ingest outlives us */
	if (pixl_ship_query("SELECT pg_catalog.set_config('lock_timeout', '5s', false)",
						0, NULL, NULL, NULL, NULL, error) == NULL ||
		pixl_ship_query("SELECT pg_catalog.set_config('statement_timeout', '50s', false)",
						0, NULL, NULL, NULL, NULL, error) == NULL)
	{
		pixl_ship_disconnect();
		return false;
	}
	return true;
}

/*
 * One statement over the connection, waiting on the latch.  Returns the
 * single value of its single row (palloc'd), or NULL with *error set; on
 * any error the connection is dropped, to be made again.
 */
static char *
pixl_ship_query(const char *sql, int nparams, const Oid *types,
				const char *const *values, const int *lengths,
				const int *formats, const char **error)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   PIXL_SHIP_TIMEOUT_MS);
	PGresult   *res;
	PGresult   *last = NULL;
	char	   *value = NULL;
	int			flush;

	if (!PQsendQueryParams(ship_conn, sql, nparams, types, values, lengths,
						   formats, 0))
	{
		*error = pstrdup(PQerrorMessage(ship_conn));
		pixl_ship_disconnect();
		return NULL;
	}
	while ((flush = PQflush(ship_conn)) == 1)
	{
		if (!pixl_ship_wait(WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE, deadline))
			goto timeout;
		if (PQconsumeInput(ship_conn) == 0)
			goto broken;
	}
	if (flush < 0)
		goto broken;
	for (;;)
	{
		while (PQisBusy(ship_conn))
		{
			if (!pixl_ship_wait(WL_SOCKET_READABLE, deadline))
				goto timeout;
			if (PQconsumeInput(ship_conn) == 0)
				goto broken;
		}
		res = PQgetResult(ship_conn);
		if (res == NULL)
			break;
		if (last)
			PQclear(last);
		last = res;
	}
	if (last && PQresultStatus(last) == PGRES_TUPLES_OK &&
		PQntuples(last) == 1 && PQnfields(last) == 1)
		value = pstrdup(PQgetvalue(last, 0, 0));
	else if (last)
	{
		const char *state = PQresultErrorField(last, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY);

		*error = psprintf("primary: %s%s%s", state ? state : "",
						  state ? ": " : "", msg ? msg : "unexpected result");
	}
	else
		*error = "primary: no result";
	if (last)
		PQclear(last);
	return value;

timeout:
	*error = "timeout waiting for the primary";
	pixl_ship_disconnect();
	return NULL;
broken:
	*error = pstrdup(PQerrorMessage(ship_conn));
	pixl_ship_disconnect();
	return NULL;
}

/* ---- shipping ---- */

/* Sends the pending batch; its answer, or NULL with *error. */
static char *
pixl_ship_send(const PixlExtension *ext, const char **error)
{
	static const Oid types[6] = {INT4OID, INT8OID, INT8OID, FLOAT4OID,
	TEXTOID, BYTEAOID};
	char		node[16];
	char		incarnation[32];
	char		seq[32];
	char		share[32];
	const char *values[6];
	int			lengths[6] = {0, 0, 0, 0, 0, 0};
	int			formats[6] = {0, 0, 0, 0, 0, 1};

	snprintf(node, sizeof(node), "%d", pixl_node_id);
	snprintf(incarnation, sizeof(incarnation), UINT64_FORMAT, spool.hdr.incarnation);
	snprintf(seq, sizeof(seq), INT64_FORMAT, spool.hdr.seq);
	snprintf(share, sizeof(share), "%.9g", pixl_rate_limit_share);
	values[0] = node;
	values[1] = incarnation;
	values[2] = seq;
	values[3] = share;
	values[4] = cluster_name && cluster_name[0] ? cluster_name : NULL;
	values[5] = VARDATA(spool.batch);
	lengths[5] = VARSIZE(spool.batch) - VARHDRSZ;

	return pixl_ship_query(psprintf("SELECT %s.pixl_ingest_usage($1, $2, $3, $4, $5, $6)",
									ext->schema),
						   6, types, values, lengths, formats, error);
}

/*
 * Waits until replay passed lsn (the batch's commit is in this node's own
 * pixl_replica_nodes).  False when promoted meanwhile: the worker then
 * applies the spool locally, and the dedupe there says whether it is in.
 */
static bool
pixl_ship_wait_for_replay(int idx, XLogRecPtr lsn)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		said = false;

	while (GetXLogReplayRecPtr(NULL) < lsn)
	{
		if (!RecoveryInProgress())
			return false;
		if (!said && TimestampDifferenceExceeds(start, GetCurrentTimestamp(), 1000))
		{
			/* replay paused or far behind: pixl_stats says so */
			pixl_usage_stats_set_state(idx, PIXL_WORKER_WAITING_FOR_REPLAY);
			said = true;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * Leaves out of what is shipped the items the primary would refuse
 * (replica_batch.c), so that one bad item never wedges the shipping: the
 * request path makes none, but a refused batch would stay in the spool
 * for ever.  Keeps the n records and nagg counts that pass in keep and
 * keep_aggs; returns how many were left out (lost, counted as dead).
 */
static int
pixl_ship_sanitize(int idx, const PixlUsageRecord *batch, int n,
				   const PixlAggSnapshot *aggs, int nagg,
				   PixlUsageRecord *keep, int *nkeep,
				   PixlAggSnapshot *keep_aggs, int *nkeep_aggs)
{
	TimestampTz now = GetCurrentTimestamp();
	const char *field = NULL;
	const char *problem = NULL;
	const char *last = NULL;
	int			dropped = 0;

	*nkeep = *nkeep_aggs = 0;
	for (int i = 0; i < n; i++)
	{
		if ((problem = pixl_usage_batch_check_record(&batch[i], pixl_node_id,
													 now, &field)) == NULL)
			keep[(*nkeep)++] = batch[i];
		else
		{
			dropped++;
			last = psprintf("%s %s", field, problem);
		}
	}
	for (int i = 0; i < nagg; i++)
	{
		if ((problem = pixl_usage_batch_check_count(&aggs[i], now, &field)) == NULL)
			keep_aggs[(*nkeep_aggs)++] = aggs[i];
		else
		{
			dropped++;
			last = psprintf("%s %s", field, problem);
		}
	}
	if (dropped > 0)
	{
		char	   *msg = psprintf("left out of the usage batch: %s", last);

		ereport(WARNING,
				(errmsg("pixltoken usage worker left %d items out of usage batch " INT64_FORMAT " that the primary would refuse",
						dropped, spool.hdr.seq + 1),
				 errdetail("The last: %s.", last)));
		pixl_usage_stats_count_dead(idx, dropped, msg);
	}
	return dropped;
}

/* Takes a new batch out of shared memory into the spool; false if none. */
static bool
pixl_ship_take_batch(int idx, PixlUsageRecord *batch, PixlAggSnapshot *aggs,
					 bool *more)
{
	int			n = pixl_usage_ring_peek(idx, batch, PIXL_SHIP_BATCH_SIZE);
	int			nagg = pixl_usage_aggregate_snapshot(MyDatabaseId, aggs,
													 PIXL_SHIP_FOLD_SIZE);
	PixlSpoolHeader hdr = spool.hdr;
	bytea	   *payload;
	TimestampTz oldest;
	PixlUsageRecord *keep;
	PixlAggSnapshot *keep_aggs;
	int			nkeep;
	int			nkeep_aggs;
	PixlUsageTally tally;

	int64		lost_total = pixl_usage_held_lost_total(idx);

	/* what crashes lost since the last batch (a new file starts at 0) */
	int64		lost_base = lost_total >= spool.hdr.lost_through ?
		spool.hdr.lost_through : 0;
	int64		lost = lost_total - lost_base;

	*more = (n == PIXL_SHIP_BATCH_SIZE || nagg == PIXL_SHIP_FOLD_SIZE);
	if (lost > PIXL_BATCH_MAX_COUNT)
	{
		lost = PIXL_BATCH_MAX_COUNT;
		*more = true;
	}
	if (n == 0 && nagg == 0 && lost == 0)
		return false;
	if (pixl_usage_ring_depth(idx, &oldest) == 0 || oldest == 0)
		oldest = GetCurrentTimestamp();
	pixl_usage_stats_set_spooled(idx, oldest);

	/*
	 * At most PIXL_BATCH_MAX_COUNT per counter: the subtraction below then
	 * takes only that much out of shared memory, the rest goes next.
	 */
	if (pixl_usage_batch_clamp(aggs, nagg))
		*more = true;
	keep = palloc(sizeof(PixlUsageRecord) * Max(n, 1));
	keep_aggs = palloc(sizeof(PixlAggSnapshot) * Max(nagg, 1));
	(void) pixl_ship_sanitize(idx, batch, n, aggs, nagg,
							  keep, &nkeep, keep_aggs, &nkeep_aggs);

	hdr.seq = spool.hdr.seq + 1;
	hdr.lost_through = lost_base + lost;
	tally = pixl_usage_batch_tally(keep, nkeep, keep_aggs, nkeep_aggs);
	hdr.events = (int32) tally.events;
	hdr.responses = (int32) tally.responses;
	hdr.requests = tally.requests;

	payload = pixl_usage_batch_encode(keep, nkeep, keep_aggs, nkeep_aggs, lost);
	pixl_spool_prepare(&hdr, payload);

	/* from here the batch is in the spool only (items left out: lost) */
	HOLD_INTERRUPTS();
	pixl_spool_install();
	pixl_usage_held_sub(idx, pixl_usage_aggregate_subtract(aggs, nagg));
	pixl_usage_ring_consume(idx, n);
	RESUME_INTERRUPTS();
	pixl_spool_sync_dir();

	spool.hdr = hdr;
	spool.batch = MemoryContextAlloc(TopMemoryContext, VARSIZE(payload));
	memcpy(spool.batch, payload, VARSIZE(payload));
	return true;
}

/* Logged once per outage; pixl_stats() shows every last error. */
static void
pixl_ship_failed(int idx, const char *error)
{
	char	   *msg = pstrdup(error);
	int			len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	if (pixl_usage_stats_get_state(idx) != PIXL_WORKER_WAITING_FOR_PRIMARY)
		ereport(LOG,
				(errmsg("pixltoken usage worker could not ship usage to the primary, retrying every second: %s",
						msg)));
	pixl_usage_stats_set_state(idx, PIXL_WORKER_WAITING_FOR_PRIMARY);
	pixl_usage_stats_count_dead(idx, 0, msg);
}

static void
pixl_ship_succeeded(int idx)
{
	if (pixl_usage_stats_get_state(idx) == PIXL_WORKER_WAITING_FOR_PRIMARY)
		ereport(LOG,
				(errmsg("pixltoken usage worker ships usage to the primary again")));
	pixl_usage_stats_set_state(idx, PIXL_WORKER_SHIPPING);
}

bool
pixl_replica_ship_flush(int idx, const PixlExtension *ext,
					  PixlUsageRecord *batch, PixlAggSnapshot *aggs,
					  MemoryContext cxt)
{
	if (pixl_node_id == 0)
	{
		pixl_usage_stats_set_state(idx, PIXL_WORKER_NO_NODE_ID);
		return true;
	}
	if (!spool.loaded)
	{
		pixl_spool_load(true);
		if (spool.batch)		/* left from before a restart */
			pixl_usage_stats_set_spooled(idx, GetCurrentTimestamp());
	}

	for (;;)
	{
		const char *error = NULL;
		char	   *answer;
		char	   *lsn_text;
		bool		more = false;
		XLogRecPtr	lsn;
		bool		lsn_error = false;

		MemoryContextReset(cxt);
		if (!RecoveryInProgress())
			return true;		/* promoted: the worker takes over */
		if (spool.batch == NULL &&
			!pixl_ship_take_batch(idx, batch, aggs, &more))
			return true;

		if (!pixl_ship_connect(idx, &error) ||
			(answer = pixl_ship_send(ext, &error)) == NULL)
		{
			pixl_ship_failed(idx, error);
			return false;
		}
		elog(DEBUG1, "pixltoken usage batch " INT64_FORMAT ": %s",
			 spool.hdr.seq, answer);
		if (pixl_ship_test_resend)
		{
			/* as after a lost answer: the primary must know it has it */
			if ((answer = pixl_ship_send(ext, &error)) == NULL)
			{
				pixl_ship_failed(idx, error);
				return false;
			}
			if (strcmp(answer, "duplicate") != 0)
				elog(ERROR, "usage batch " INT64_FORMAT " sent again was answered \"%s\", not \"duplicate\"",
					 spool.hdr.seq, answer);
		}
		lsn_text = pixl_ship_query("SELECT pg_catalog.pg_current_wal_lsn()",
								   0, NULL, NULL, NULL, NULL, &error);
		if (lsn_text == NULL)
		{
			pixl_ship_failed(idx, error);
			return false;
		}
		lsn = pg_lsn_in_internal(lsn_text, &lsn_error);
		if (lsn_error || !pixl_ship_wait_for_replay(idx, lsn))
			return true;		/* promoted; pending stays in the spool */

		pixl_usage_stats_count_flushed(idx, spool.hdr.events, spool.hdr.responses);
		pixl_usage_stats_count_folded(idx, spool.hdr.requests);
		pixl_spool_done();
		pixl_usage_stats_set_spooled(idx, 0);
		pixl_ship_succeeded(idx);
		if (!more)
			return true;
		CHECK_FOR_INTERRUPTS();
	}
}

void
pixl_replica_ship_apply_spool(const PixlExtension *ext)
{
	const char *outcome;

	if (pixl_node_id == 0)
		return;
	pixl_spool_load(false);
	if (spool.batch == NULL)
		return;
	outcome = pixl_ingest_batch(ext, pixl_node_id, (int64) spool.hdr.incarnation,
								spool.hdr.seq, (float4) pixl_rate_limit_share,
								cluster_name && cluster_name[0] ? cluster_name : NULL,
								VARDATA(spool.batch),
								VARSIZE(spool.batch) - VARHDRSZ);
	ereport(LOG,
			(errmsg("pixltoken usage worker: usage batch " INT64_FORMAT " of node %d, left from before the promotion: %s",
					spool.hdr.seq, pixl_node_id, outcome)));
}

void
pixl_replica_ship_applied(int idx)
{
	if (spool.loaded && spool.batch)
	{
		pixl_usage_stats_count_flushed(idx, spool.hdr.events, spool.hdr.responses);
		pixl_usage_stats_count_folded(idx, spool.hdr.requests);
		pixl_spool_done();
		pixl_usage_stats_set_spooled(idx, 0);
	}
}
