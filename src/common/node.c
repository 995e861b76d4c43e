/*-------------------------------------------------------------------------
 *
 * node.c
 *		This node among a primary and its hot standbys: pixltoken.node_id
 *		and pixltoken.rate_limit_share.
 *
 * The node id is the low PIXL_NODE_ID_BITS bits of every request id this
 * node hands out (request_id.c), the name a standby's shipper gives its
 * batches (writer/replica_ship.c), and what the primary's ingest checks
 * them against (writer/replica_ingest.c).  The share is applied by the rate
 * limiter (verify/rate_limit.c), shown in the HTTP answer's headers, and
 * reported by a standby with every batch it ships.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xlog.h"
#include "utils/guc.h"

#include "common/node.h"

/* the settings' descriptions below spell the range out */
StaticAssertDecl(PIXL_NODE_ID_MAX == 15, "node ids are 1 to 15");

int			pixl_node_id = 0;
double		pixl_rate_limit_share = 1.0;

static bool
check_rate_limit_share(double *newval, void **extra, GucSource source)
{
	if (*newval <= 0.0)
	{
		GUC_check_errdetail("The share must be greater than 0 and at most 1.");
		GUC_check_errhint("Give each node a share of every rate limit so that the shares of all nodes sum to at most 1, e.g. 0.5 on a primary and on its one standby.");
		return false;
	}
	return true;
}

/* 1e-6 keeps a product that should be whole (0.29 x 100) from rounding down */
#define NODE_SHARE_EPSILON	1e-6

int64
pixl_node_share(int64 limit)
{
	if (pixl_rate_limit_share >= 1.0)
		return limit;
	return (int64) floor((double) limit * pixl_rate_limit_share + NODE_SHARE_EPSILON);
}

void
pixl_node_init(void)
{
	DefineCustomIntVariable("pixltoken.node_id",
							"This node's id among a primary and its standbys, 1 to 15; 0 for none.",
							"A hot standby ships its usage to the primary only with an id of its own.  Every request id carries it.",
							&pixl_node_id,
							0, 0, PIXL_NODE_ID_MAX,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomRealVariable("pixltoken.rate_limit_share",
							 "This node's share of every token's rate limit.",
							 "Each node admits at most floor(limit x share) requests of a token in any rolling 60 s; keep the shares of a primary and its standbys summing to at most 1.",
							 &pixl_rate_limit_share,
							 1.0, 0.0, 1.0,
							 PGC_SIGHUP,
							 0,
							 check_rate_limit_share, NULL, NULL);
}

bool
pixl_node_keeps_usage(void)
{
	return pixl_node_id > 0 || !RecoveryInProgress();
}
