/*-------------------------------------------------------------------------
 *
 * replica_ingest.c
 *		The primary's side of usage shipping: pixl_ingest_usage().
 *
 * A standby's shipper (replica_ship.c) sends batch seq of node (node_id,
 * incarnation); this applies it at most once, in the caller's transaction:
 *
 *	row := the node's row of pixl_replica_nodes, locked FOR UPDATE NOWAIT
 *		   (a second shipper of the same node fails fast, and retries);
 *	no row				PX065 if (node_id, incarnation) was reset
 *						(pixl_replica_retired: its old batches counted,
 *						a re-sent one must not count again); else
 *						register the node; last_seq := seq - 1
 *	other incarnation	PX065: another standby has this node id
 *	seq <= last_seq		'duplicate': applied before, nothing written
 *	seq > last_seq + 1	PX066: a gap, never skipped silently
 *	seq = last_seq + 1	write records and counts exactly as the usage
 *						worker does (usage_store.c; items that fail for a
 *						reason of their own go to the dead-letter table),
 *						last_seq := seq, counts_lost += the verifications
 *						the batch says the node's crashes lost; 'applied'
 *
 * The batch is checked whole before anything is written (replica_batch.c):
 * one bad item refuses it (PX064).
 *
 * The write and the new last_seq commit together, so a batch is in, with
 * its number, or neither.  A promoted standby applies its leftover batch
 * through the same function (replica_ship.c), against the pixl_replica_nodes
 * it replayed, and then forgets the row of its own id (a primary owns its
 * id; pixl_ingest_release_own_id).  Every statement names its schema and
 * runs with search_path pinned; the SQL function is SECURITY DEFINER,
 * granted to the shippers' role only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "common/errcodes.h"
#include "common/extension.h"
#include "common/node.h"
#include "common/preload.h"
#include "writer/replica_batch.h"
#include "writer/replica_ingest.h"
#include "writer/usage_store.h"

static void
pixl_ingest_exec(const char *sql, int nargs, Oid *types, Datum *args,
				 const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, args, nulls,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

const char *
pixl_ingest_batch(const PixlExtension *ext, int node_id, int64 incarnation,
				  int64 seq, float4 share, const char *node_name,
				  const char *data, Size len)
{
	PixlUsageBatch batch;
	Oid			types[6] = {INT2OID, INT8OID, TEXTOID, INT8OID, FLOAT4OID, INT8OID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int64		last_seq;
	const char *last_error = NULL;
	int			nestlevel;
	int			dead;

	pixl_usage_batch_decode(data, len, node_id, &batch);

	args[0] = Int16GetDatum((int16) node_id);
	args[1] = Int64GetDatum(incarnation);
	if (node_name)
		args[2] = CStringGetTextDatum(node_name);
	else
		nulls[2] = 'n';
	args[3] = Int64GetDatum(seq);
	args[4] = Float4GetDatum(share);
	args[5] = Int64GetDatum(batch.lost);

	nestlevel = pixl_pin_search_path();
	pixl_ingest_exec(psprintf("SELECT incarnation, last_seq FROM %s.pixl_replica_nodes"
							  " WHERE node_id OPERATOR(pg_catalog.=) $1 FOR UPDATE NOWAIT",
							  ext->schema),
					 1, types, args, nulls, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		/* an incarnation once reset never comes back: its batches counted */
		pixl_ingest_exec(psprintf("SELECT 1 FROM %s.pixl_replica_retired"
								  " WHERE node_id OPERATOR(pg_catalog.=) $1"
								  " AND incarnation OPERATOR(pg_catalog.=) $2",
								  ext->schema),
						 2, types, args, nulls, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_NODE_ID_TAKEN),
					 errmsg("incarnation " INT64_FORMAT " of node id %d was reset", incarnation, node_id),
					 errdetail("pixl_replica_reset_node(%d) retired it: the batches it sent before were counted, and it may not send again.",
							   node_id),
					 errhint("Stop the standby, remove its usage spool files (pg_stat_tmp/pixltoken_ship_*.spool) and start it: it ships under a new incarnation.")));
		pixl_ingest_exec(psprintf("INSERT INTO %s.pixl_replica_nodes"
								  " (node_id, incarnation, node_name, last_seq, share)"
								  " VALUES ($1, $2, $3, $4 OPERATOR(pg_catalog.-) 1, $5)",
								  ext->schema),
						 5, types, args, nulls, SPI_OK_INSERT);
		last_seq = seq - 1;
	}
	else
	{
		bool		isnull;
		int64		registered = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc,
															 1, &isnull));

		last_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2, &isnull));
		if (registered != incarnation)
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_NODE_ID_TAKEN),
					 errmsg("node id %d is registered to another standby", node_id),
					 errdetail("Each standby that ships usage needs its own pixltoken.node_id."),
					 errhint("Give this standby another node id, or, if the other standby is gone for good, run pixl_replica_reset_node(%d) on the primary.",
							 node_id)));
	}

	if (seq <= last_seq)
	{
		pixl_ingest_exec(psprintf("UPDATE %s.pixl_replica_nodes SET last_ack_at = pg_catalog.now()"
								  " WHERE node_id OPERATOR(pg_catalog.=) $1",
								  ext->schema),
						 1, types, args, nulls, SPI_OK_UPDATE);
		pixl_restore_search_path(nestlevel);
		return "duplicate";
	}
	if (seq > last_seq + 1)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_SHIP_SEQUENCE_GAP),
				 errmsg("usage batch " INT64_FORMAT " of node %d does not follow batch " INT64_FORMAT,
						seq, node_id, last_seq),
				 errdetail("Batches in between are missing; nothing was applied."),
				 errhint("If those batches are lost for good, stop the standby, remove its usage spool files (pg_stat_tmp/pixltoken_ship_*.spool), run pixl_replica_reset_node(%d) on the primary and start the standby: it ships under a new incarnation.",
						 node_id)));

	dead = pixl_usage_store_batch_isolating(ext, batch.records, batch.nrecords,
											batch.counts, batch.ncounts,
											&last_error);
	if (dead > 0)
		ereport(WARNING,
				(errmsg("%d items of usage batch " INT64_FORMAT " of node %d went to pixl_usage_dead_letters",
						dead, seq, node_id),
				 errdetail("The last error: %s", last_error)));

	pixl_ingest_exec(psprintf("UPDATE %s.pixl_replica_nodes"
							  " SET last_seq = $4, last_ack_at = pg_catalog.now(),"
							  " share = $5, node_name = $3,"
							  " counts_lost = counts_lost OPERATOR(pg_catalog.+) $6"
							  " WHERE node_id OPERATOR(pg_catalog.=) $1",
							  ext->schema),
					 6, types, args, nulls, SPI_OK_UPDATE);
	pixl_restore_search_path(nestlevel);
	return "applied";
}

/*
 * A primary owns its node id: no standby ships under it while this node is
 * the primary (pixl_ingest_usage refuses it).  So a promoted node forgets
 * the registration its life as a standby left under its id (replicated
 * from the primary it shipped to): when it follows another primary again,
 * under a new incarnation (pg_rewind removes the spool, pg_basebackup does
 * not copy it: what pg_auto_failover does to a node that comes back), its
 * batches are taken without a reset.  The incarnation is not retired: a
 * spool that survived goes on with its next batch, registered anew.  Run
 * only once this node's own spool holds no pending batch (a re-sent batch
 * would find no last_seq to be a duplicate of).
 */
void
pixl_ingest_release_own_id(const PixlExtension *ext)
{
	Oid			types[1] = {INT2OID};
	Datum		args[1];
	char		nulls[1] = {' '};
	int			nestlevel;

	if (pixl_node_id == 0)
		return;
	args[0] = Int16GetDatum((int16) pixl_node_id);
	nestlevel = pixl_pin_search_path();
	pixl_ingest_exec(psprintf("DELETE FROM %s.pixl_replica_nodes"
							  " WHERE node_id OPERATOR(pg_catalog.=) $1",
							  ext->schema),
					 1, types, args, nulls, SPI_OK_DELETE);
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("pixltoken usage worker: node id %d is this primary's own; its registration as a standby is forgotten",
						pixl_node_id)));
	pixl_restore_search_path(nestlevel);
}

PG_FUNCTION_INFO_V1(pixl_ingest_usage);

/*
 * pixl_ingest_usage(node_id int, incarnation bigint, seq bigint,
 *					 share real, node_name text, batch bytea) RETURNS text
 */
Datum
pixl_ingest_usage(PG_FUNCTION_ARGS)
{
	int32		node_id;
	int64		incarnation;
	int64		seq;
	float4		share;
	bytea	   *batch;
	PixlExtension ext;
	const char *outcome;

	pixl_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) ||
		PG_ARGISNULL(3) || PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
				 errmsg("invalid usage batch: only node_name may be NULL")));
	node_id = PG_GETARG_INT32(0);
	incarnation = PG_GETARG_INT64(1);
	seq = PG_GETARG_INT64(2);
	share = PG_GETARG_FLOAT4(3);
	batch = PG_GETARG_BYTEA_PP(5);

	if (node_id < 1 || node_id > PIXL_NODE_ID_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
				 errmsg("invalid node id %d", node_id),
				 errhint("pixltoken.node_id of a standby that ships usage is 1 to %d.",
						 PIXL_NODE_ID_MAX)));
	if (node_id == pixl_node_id)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_NODE_ID_TAKEN),
				 errmsg("node id %d is this primary's own", node_id),
				 errhint("Give each node its own pixltoken.node_id: request ids of two nodes with one id collide.")));
	if (incarnation <= 0 || seq < 1 || !(share > 0 && share <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
				 errmsg("invalid usage batch: incarnation, sequence or share out of range")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("usage can only be ingested on a primary"),
				 errhint("Point pixltoken.primary_conninfo of the shipping standby at the primary.")));

	ext = pixl_extension_lookup();
	if (!ext.found)
		elog(ERROR, "extension pixltoken is not installed");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outcome = pixl_ingest_batch(&ext, node_id, incarnation, seq, share,
								PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)),
								VARDATA_ANY(batch), VARSIZE_ANY_EXHDR(batch));
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}
