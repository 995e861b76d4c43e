/*-------------------------------------------------------------------------
 *
 * usage_route.c
 *		The request path's way into the usage pipeline: count, sample,
 *		queue.  It never waits and never writes a table.
 *
 * A backend uses the ring of its own database (found by name once per
 * session).  A verification through a 1.1 entry point (which exists only
 * under a 1.1 schema) is counted in usage_aggregate.c (exact counts, folded
 * into the rollups by the worker) from the first one on, whatever its
 * worker is doing (starting, waiting for the extension, not yet looked):
 * its raw row is queued unless it is a 429 that is not the token's sample
 * of this second, and a full ring only drops raw rows.  Through 1.0's entry
 * point (library upgraded, ALTER EXTENSION not run yet) raw records carry
 * their counts as in 1.0 and nothing is sampled; when the ring is full such
 * a record is dropped with its count (both counted).  A
 * database that is not in pixltoken.database keeps nothing: its
 * verifications are counted in the pixl_stats() row of datname NULL
 * (counts_lost); the README says to add it to pixltoken.database.  A hot
 * standby keeps its usage like a primary when it has a node id, and its
 * worker ships it (replica_ship.c); without one it keeps nothing (counted
 * the same way).  Raw
 * rows not kept are marked for the request id's text form (request_id.c),
 * so that pixl_log_response knows there is no row to update.  Every
 * counted verification also gets a pending entry for its response report
 * (usage_pending.c: one hash insert under a partition lock), but the 403
 * of a request over plain HTTP, whose request id is never handed out; one
 * that gets none (table full, count lost, a 1.0 schema) is marked the same
 * way, and its report is accepted and ignored.
 *
 * An event's method and endpoint are analytics keys: the endpoint is its
 * path (the query string and fragment are dropped, they are no key and
 * often carry credentials), and no secret shape is kept in either
 * (pixl_usage_clean_key_text, applied where they enter: verify.c, and the
 * batches a standby ships, replica_batch.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/node.h"
#include "common/request_id.h"
#include "common/token_format.h"
#include "usage/usage_aggregate.h"
#include "usage/usage_held.h"
#include "usage/usage_pending.h"
#include "usage/usage_ring.h"
#include "usage/usage_route.h"
#include "usage/usage_stats.h"

/* The ring of this backend's database, cached for the session. */
static int
pixl_my_queue(void)
{
	static int	my_idx = -2;

	if (my_idx == -2)
		my_idx = pixl_usage_ring_of_name(get_database_name(MyDatabaseId));
	return my_idx;
}

void
pixl_usage_clean_key_text(char *buf, size_t size, bool endpoint)
{
	size_t		len = strnlen(buf, size);

	if (endpoint)
	{
		size_t		cut = strcspn(buf, "?#");

		if (cut < len)
		{
			memset(buf + cut, 0, size - cut);
			len = cut;
		}
	}
	pixl_redact_secrets(buf, len);
}

bool
pixl_usage_record(const PixlUsageEvent *event, bool schema_1_1,
				  const PixlQuotaCharge *charge, PixlScopeBits scopes_used,
				  uint64 store_key, void **agg_link, bool reportable)
{
	PixlUsageRecord rec;
	PixlAggKey	key;
	int			idx = pixl_my_queue();
	bool		pending = false;
	bool		pushed;

	if (idx < 0 || !pixl_node_keeps_usage())
	{
		/*
		 * No worker serves this database, or this is a hot standby without
		 * a node id (it cannot ship): nothing could ever write it.
		 */
		pixl_usage_stats_add(-1, PIXL_COUNT_COUNTS_LOST, 1);
		pixl_usage_stats_add(-1, PIXL_COUNT_DROPPED, 1);
		pixl_request_id_mark_unkept(event->request_id);
		pixl_request_id_mark_unpending(event->request_id);
		return false;
	}
	memset(&rec, 0, sizeof(rec));
	rec.kind = PIXL_RECORD_EVENT;
	rec.u.event = *event;
	rec.u.event.dbid = MyDatabaseId;

	if (schema_1_1)
	{
		rec.u.event.counted = true;
		if (!pixl_usage_aggregate_add(&rec.u.event, scopes_used, store_key,
									  agg_link, &key))
			pixl_usage_stats_add(idx, PIXL_COUNT_COUNTS_LOST, 1);
		else
		{
			/* after the add: a crash in between loses it uncounted, unanswered */
			pixl_usage_held_add(idx, MyDatabaseId);
			if (reportable)
			pending = pixl_usage_pending_add(event->request_id, &key, event->at,
											 event->status, charge);
		}
		if (!pending)
			pixl_request_id_mark_unpending(event->request_id);
		if (event->status == 429 && !pixl_usage_aggregate_sample_429(&rec.u.event))
		{
			pixl_usage_stats_add(idx, PIXL_COUNT_SAMPLED_OUT, 1);
			pixl_request_id_mark_unkept(event->request_id);
			return false;
		}
	}
	pushed = pixl_usage_ring_push(idx, &rec, event->at);
	if (!pushed)
	{
		pixl_usage_stats_add(idx, PIXL_COUNT_DROPPED, 1);
		if (!rec.u.event.counted)
			pixl_usage_stats_add(idx, PIXL_COUNT_COUNTS_LOST, 1);
		pixl_request_id_mark_unkept(event->request_id);
	}
	/* a 1.0 entry point: the raw row carries the count, and its response */
	if (!rec.u.event.counted)
		pixl_request_id_mark_unpending(event->request_id);
	return pushed;
}

void
pixl_usage_record_response(const PixlUsageResponse *response)
{
	PixlUsageRecord rec;
	int			idx = pixl_my_queue();

	memset(&rec, 0, sizeof(rec));
	rec.kind = PIXL_RECORD_RESPONSE;
	rec.u.response = *response;
	rec.u.response.dbid = MyDatabaseId;
	if (idx < 0 || !pixl_usage_ring_push(idx, &rec, GetCurrentTimestamp()))
		pixl_usage_stats_add(idx, PIXL_COUNT_RESPONSES_IGNORED, 1);
}

void
pixl_usage_count_response_ignored(void)
{
	pixl_usage_stats_add(pixl_my_queue(), PIXL_COUNT_RESPONSES_IGNORED, 1);
}
