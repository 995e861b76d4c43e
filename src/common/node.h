/*-------------------------------------------------------------------------
 *
 * node.h
 *		This node among a primary and its hot standbys: its id, which every
 *		request id carries, and its share of every rate limit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_NODE_H
#define PIXL_NODE_H

#include "postgres.h"

/*
 * A request id is microseconds * PIXL_NODE_IDS + node id (request_id.c),
 * so a node id takes the low PIXL_NODE_ID_BITS bits: 0 is "none", 1 ..
 * PIXL_NODE_ID_MAX are the ids a shipping standby may take.  The SQL
 * spells the same layout (the node ids its tables accept, and the request
 * ids it reads back): keep both in step.
 */
#define PIXL_NODE_ID_BITS	4
#define PIXL_NODE_IDS		(1 << PIXL_NODE_ID_BITS)	/* 0 .. 15 */
#define PIXL_NODE_ID_MAX	(PIXL_NODE_IDS - 1)
#define PIXL_NODE_ID_MASK	((uint64) PIXL_NODE_ID_MAX)

/* The node that issued a request id. */
#define PIXL_REQUEST_ID_NODE(id)	((int) ((uint64) (id) & PIXL_NODE_ID_MASK))

/* pixltoken.node_id: 0 (default) or 1 .. PIXL_NODE_ID_MAX */
extern int	pixl_node_id;

/* pixltoken.rate_limit_share: this node's share of every limit, (0, 1] */
extern double pixl_rate_limit_share;

/*
 * This node's share of a limit or an allowance, floor(limit x share +
 * 1e-6): the rule that keeps the nodes' shares within the limit together
 * (verify/rate_limit.c, "One limit across nodes").
 */
extern int64 pixl_node_share(int64 limit);

/* Defines the settings above; called once from _PG_init. */
extern void pixl_node_init(void);

/*
 * Does this node keep its usage?  A primary does; a standby only with a
 * node id, to ship it.  (A backend-local flag once recovery ended.)
 */
extern bool pixl_node_keeps_usage(void);

#endif							/* PIXL_NODE_H */
