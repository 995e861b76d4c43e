/*-------------------------------------------------------------------------
 *
 * replica_ingest.h
 *		The primary's side of usage shipping (pixl_ingest_usage).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_REPLICA_INGEST_H
#define PIXL_REPLICA_INGEST_H

#include "postgres.h"

#include "common/extension.h"

/*
 * Applies batch seq of node (node_id, incarnation) at most once, in the
 * current transaction (SPI connected): "applied" or "duplicate"; raises
 * PX064 (damaged), PX065 (another standby's node id) or PX066 (a gap).
 */
extern const char *pixl_ingest_batch(const PixlExtension *ext, int node_id,
									 int64 incarnation, int64 seq, float4 share,
									 const char *node_name,
									 const char *data, Size len);
extern void pixl_ingest_release_own_id(const PixlExtension *ext);

#endif							/* PIXL_REPLICA_INGEST_H */
