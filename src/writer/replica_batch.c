/*-------------------------------------------------------------------------
 *
 * replica_batch.c
 *		Encoding and checking the batches a standby ships (replica_ship.c)
 *		and its primary ingests (replica_ingest.c).
 *
 * A batch is a header, then the records, then the counts, each in its
 * in-memory layout.  Decoding trusts nothing: pixl_ingest_usage is callable
 * by whatever role it is granted to, so every item is checked the way the
 * request path would have made it, before anything is written: kinds,
 * statuses, booleans, token id alphabet, address families; strings
 * terminated within their size and valid in the database encoding (or
 * pg_dump's output would not load); times from 2000-01-01 to a day ahead
 * of this server's clock, hours on the hour (or dumps would not load and
 * rollups would not sum); request ids of the sending node only (its events
 * cannot take another node's ids, its responses cannot rewrite another
 * node's rows); counts from 0 to PIXL_BATCH_MAX_COUNT, per item and summed
 * over the batch (a latency histogram: each bucket and their sum; charged,
 * which refunds of calls shipped before make negative, within minus and
 * plus the ceiling, its absolute values summed).  The database is this one,
 * whatever the batch says.  A batch of version 2 (a standby still running
 * 1.1's library, during a rolling update) is taken with every event's
 * cost 1, every count's cost its requests and charged 0; one of version 3
 * (a standby of 1.2 in development) with no scope used and no exposure.
 * A count's scopes_used holds only bits of the eleven scopes.  Version 4
 * appends one int64 after the counts: how many verifications the
 * standby's crashes lost since its previous batch (usage_held.c), 0 to
 * PIXL_BATCH_MAX_COUNT; a batch of version 3 says 0.  The
 * standby runs the same checks on what it ships (replica_ship.c), so a
 * healthy standby never sends a batch the primary refuses.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/request_id.h"
#include "common/scopes.h"
#include "common/token_format.h"
#include "usage/usage_route.h"
#include "writer/replica_batch.h"

#define PIXL_BATCH_MAGIC	0x50584c42	/* "PXLB" */
#define PIXL_BATCH_VERSION	4			/* 2: latency histograms; 3: cost, charged
										 * (in development); 4: exposure,
										 * scopes_used, lost */
#define PIXL_BATCH_VERSION_1_1	2		/* still taken: a standby of 1.1 */
#define PIXL_BATCH_VERSION_NO_SCOPES	3	/* still taken: no scope used, no
											 * exposure, lost 0 */
/* a record of version 3: the same layout up to its exposure, which it lacks */
#define PIXL_BATCH_RECORD_SIZE_V3 \
	TYPEALIGN(MAXIMUM_ALIGNOF, offsetof(PixlUsageRecord, u) + offsetof(PixlUsageEvent, exposure))
#define PIXL_BATCH_MAX_ITEMS	100000

typedef struct PixlBatchHeader
{
	uint32		magic;
	uint32		version;
	uint32		record_size;
	uint32		count_size;
	int32		nrecords;
	int32		ncounts;
} PixlBatchHeader;

bytea *
pixl_usage_batch_encode(const PixlUsageRecord *records, int n,
						const PixlAggSnapshot *counts, int nagg, int64 lost)
{
	Size		len = sizeof(PixlBatchHeader) + sizeof(PixlUsageRecord) * n +
		sizeof(PixlAggSnapshot) * nagg + sizeof(int64);
	bytea	   *result = palloc(VARHDRSZ + len);
	char	   *p = VARDATA(result);
	PixlBatchHeader hdr;

	SET_VARSIZE(result, VARHDRSZ + len);
	hdr.magic = PIXL_BATCH_MAGIC;
	hdr.version = PIXL_BATCH_VERSION;
	hdr.record_size = sizeof(PixlUsageRecord);
	hdr.count_size = sizeof(PixlAggSnapshot);
	hdr.nrecords = n;
	hdr.ncounts = nagg;
	memcpy(p, &hdr, sizeof(hdr));
	p += sizeof(hdr);
	if (n > 0)
		memcpy(p, records, sizeof(PixlUsageRecord) * n);
	p += sizeof(PixlUsageRecord) * n;
	for (int i = 0; i < nagg; i++)
	{
		PixlAggSnapshot c = counts[i];

		c.entry = NULL;			/* an address in the standby's memory */
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
	}
	memcpy(p, &lost, sizeof(lost));
	return result;
}

static void
pixl_batch_damaged(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
			 errmsg("invalid usage batch: %s", what),
			 errhint("Batches are made by the usage shipper of a standby running the same build of pixltoken.")));
}

/* NULL when s is terminated within size bytes and valid in this database */
static const char *
pixl_check_text(const char *s, Size size)
{
	if (memchr(s, '\0', size) == NULL)
		return psprintf("is not terminated within %d bytes", (int) size);
	if (!pg_verifymbstr(s, strlen(s), true))
		return "is not valid in the database encoding";
	return NULL;
}

/* A time a node can have seen: from 2000-01-01 (0) to now plus a skew. */
static const char *
pixl_check_time(TimestampTz t, TimestampTz now)
{
	if (t < 0)
		return "is before 2000-01-01";
	if (t > now + PIXL_BATCH_CLOCK_SKEW)
		return "is more than a day ahead of this server's clock";
	return NULL;
}

/* A bool read from untrusted bytes: 0 or 1 only. */
static bool
pixl_is_bool(const bool *b)
{
	return *(const unsigned char *) b <= 1;
}

static const char *
pixl_check_count_value(int64 v)
{
	if (v < 0)
		return "is negative";
	if (v > PIXL_BATCH_MAX_COUNT)
		return psprintf("is above the ceiling of " INT64_FORMAT " per batch",
						(int64) PIXL_BATCH_MAX_COUNT);
	return NULL;
}

/* The request id of a node's record: positive, its time, the node's bits. */
static const char *
pixl_check_request_id(int64 id, TimestampTz at, int node_id, TimestampTz now,
					  const char **field)
{
	const char *problem;

	*field = "request_id";
	if (id <= 0)
		return "is not positive";
	if (at != PIXL_REQUEST_ID_TIME(id))
	{
		*field = "at";
		return "disagrees with the request id";
	}
	if (PIXL_REQUEST_ID_NODE(id) != node_id)
		return psprintf("was not issued by node %d", node_id);
	*field = "at";
	if ((problem = pixl_check_time(at, now)) != NULL)
		return problem;
	return NULL;
}

const char *
pixl_usage_batch_check_record(const PixlUsageRecord *rec, int node_id,
							  TimestampTz now, const char **field)
{
	const char *problem;

	*field = "kind";
	if (rec->kind == PIXL_RECORD_EVENT)
	{
		const PixlUsageEvent *ev = &rec->u.event;

		if ((problem = pixl_check_request_id(ev->request_id, ev->at, node_id,
											 now, field)) != NULL)
			return problem;
		*field = "status";
		if (ev->status != 200 && ev->status != 403 && ev->status != 429)
			return "is not 200, 403 or 429";
		*field = "cost";
		if (ev->cost < 1 || ev->cost > PIXL_MAX_COST)
			return psprintf("is not between 1 and %d", PIXL_MAX_COST);
		*field = "charged";
		if (ev->charged < 0 || ev->charged > ev->cost)
			return "is not between 0 and the cost";
		if (ev->charged > 0 && ev->status != 200)
			return "is not 0 for a call that was not admitted";
		*field = "exposure";
		if (ev->exposure != PIXL_EXPOSURE_NONE &&
			((ev->exposure != PIXL_EXPOSURE_REVOKE &&
			  ev->exposure != PIXL_EXPOSURE_NOTIFY) || ev->status != 403))
			return "is not a 403's revoke or notify";
		*field = !pixl_is_bool(&ev->has_ip) ? "has_ip" :
			!pixl_is_bool(&ev->previous_secret) ? "previous_secret" :
			!pixl_is_bool(&ev->counted) ? "counted" : NULL;
		if (*field)
			return "is not a boolean";
		*field = "token_id";
		if (!pixl_is_token_id(ev->token_id))
			return "is not a token id";
		*field = "method";
		if ((problem = pixl_check_text(ev->method, PIXL_METHOD_MAX)) != NULL)
			return problem;
		*field = "endpoint";
		if ((problem = pixl_check_text(ev->endpoint, PIXL_ENDPOINT_MAX)) != NULL)
			return problem;
		*field = "ip";
		if (ev->has_ip)
		{
			int			maxbits = ev->ip.family == PGSQL_AF_INET ? 32 : 128;

			if ((ev->ip.family != PGSQL_AF_INET && ev->ip.family != PGSQL_AF_INET6) ||
				ev->ip.bits > maxbits)
				return "is not a client address";
		}
		return NULL;
	}
	if (rec->kind == PIXL_RECORD_RESPONSE)
	{
		const PixlUsageResponse *r = &rec->u.response;

		/* bound to the node: a response never reaches another node's row */
		if ((problem = pixl_check_request_id(r->request_id, r->at, node_id,
											 now, field)) != NULL)
			return problem;
		*field = "status";
		if (r->status < 100 || r->status > 599)
			return "is not between 100 and 599";
		*field = "response_ms";
		if (!(r->response_ms >= 0 && r->response_ms <= PIXL_MAX_RESPONSE_MS))
			return "is not between 0 and a day";
		return NULL;
	}
	return "is not a known record kind";
}

const char *
pixl_usage_batch_check_count(const PixlAggSnapshot *c, TimestampTz now,
							 const char **field)
{
	const char *problem;
	const struct
	{
		const char *name;
		int64		value;
	}			counters[] = {
		{"requests", c->requests},
		{"errors", c->errors},
		{"rate_limited", c->rate_limited},
		{"previous_secret_uses", c->previous_secret_uses},
		{"responses", c->responses},
		{"response_errors_up", c->response_errors_up},
		{"response_errors_down", c->response_errors_down},
	};

	*field = "token_id";
	if (!pixl_is_token_id(c->key.token_id))
		return "is not a token id";
	*field = "method";
	if ((problem = pixl_check_text(c->key.method, PIXL_METHOD_MAX)) != NULL)
		return problem;
	*field = "endpoint";
	if ((problem = pixl_check_text(c->key.endpoint, PIXL_ENDPOINT_MAX)) != NULL)
		return problem;
	*field = "hour";
	if ((problem = pixl_check_time(c->key.hour, now)) != NULL)
		return problem;
	if (c->key.hour % USECS_PER_HOUR != 0)
		return "is not on the hour";
	/* no relation among them: a snapshot reads each counter on its own */
	for (int i = 0; i < (int) lengthof(counters); i++)
	{
		*field = counters[i].name;
		if ((problem = pixl_check_count_value(counters[i].value)) != NULL)
			return problem;
	}
	*field = "latency";
	{
		int64		sum = 0;

		for (int b = 0; b < PIXL_LATENCY_BUCKETS; b++)
		{
			if ((problem = pixl_check_count_value(c->latency[b])) != NULL)
				return psprintf("bucket %d %s", b, problem);
			sum += c->latency[b];
		}
		if ((problem = pixl_check_count_value(sum)) != NULL)
			return psprintf("sum %s", problem);
	}
	*field = "cost";
	if (c->cost < 0)
		return "is negative";
	if (c->cost > PIXL_BATCH_MAX_COUNT)
		return psprintf("is above the ceiling of " INT64_FORMAT " per batch",
						(int64) PIXL_BATCH_MAX_COUNT);
	*field = "charged";
	if (c->charged < -PIXL_BATCH_MAX_COUNT || c->charged > PIXL_BATCH_MAX_COUNT)
		return psprintf("is not between -" INT64_FORMAT " and " INT64_FORMAT " per batch",
						(int64) PIXL_BATCH_MAX_COUNT, (int64) PIXL_BATCH_MAX_COUNT);
	*field = "scopes_used";
	if ((c->scopes_used & ~(((int32) 1 << PIXL_NUM_SCOPES) - 1)) != 0)
		return psprintf("has a bit of no scope (0x%x)", (unsigned) c->scopes_used);
	*field = "response_us_sum";
	if (c->response_us_sum < 0)
		return "is negative";
	if (c->response_us_sum > PIXL_BATCH_MAX_US_SUM)
		return psprintf("is above the ceiling of " INT64_FORMAT " per batch",
						(int64) PIXL_BATCH_MAX_US_SUM);
	*field = "last_used";
	if (c->last_used != 0 && (problem = pixl_check_time(c->last_used, now)) != NULL)
		return problem;
	*field = "previous_secret_last";
	if (c->previous_secret_last != 0 &&
		(problem = pixl_check_time(c->previous_secret_last, now)) != NULL)
		return problem;
	return NULL;
}

bool
pixl_usage_batch_clamp(PixlAggSnapshot *counts, int n)
{
	int64		left[8] = {PIXL_BATCH_MAX_COUNT, PIXL_BATCH_MAX_COUNT,
		PIXL_BATCH_MAX_COUNT, PIXL_BATCH_MAX_COUNT, PIXL_BATCH_MAX_COUNT,
	PIXL_BATCH_MAX_COUNT, PIXL_BATCH_MAX_COUNT, PIXL_BATCH_MAX_US_SUM};
	int64		left_latency = PIXL_BATCH_MAX_COUNT;
	int64		left_cost = PIXL_BATCH_MAX_COUNT;
	int64		left_charged = PIXL_BATCH_MAX_COUNT;
	bool		clamped = false;

	for (int i = 0; i < n; i++)
	{
		int64	   *v[8] = {&counts[i].requests, &counts[i].errors,
			&counts[i].rate_limited, &counts[i].previous_secret_uses,
			&counts[i].responses, &counts[i].response_errors_up,
		&counts[i].response_errors_down, &counts[i].response_us_sum};

		for (int k = 0; k < 8; k++)
		{
			if (*v[k] > left[k])
			{
				*v[k] = left[k];
				clamped = true;
			}
			left[k] -= Max(*v[k], 0);
		}
		if (counts[i].cost > left_cost)
		{
			counts[i].cost = left_cost;
			clamped = true;
		}
		left_cost -= Max(counts[i].cost, 0);
		/* charged in either direction: its absolute values sum */
		if (counts[i].charged > left_charged || counts[i].charged < -left_charged)
		{
			counts[i].charged = counts[i].charged > 0 ? left_charged : -left_charged;
			clamped = true;
		}
		left_charged -= Abs(counts[i].charged);
		for (int b = 0; b < PIXL_LATENCY_BUCKETS; b++)
		{
			if ((int64) counts[i].latency[b] > left_latency)
			{
				counts[i].latency[b] = (uint32) left_latency;
				clamped = true;
			}
			left_latency -= counts[i].latency[b];
		}
	}
	return clamped;
}

static void
pixl_batch_refuse(const char *array, int index, const char *kind,
				  const char *field, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
			 errmsg("invalid usage batch: %s %s", field, problem),
			 errdetail("The field is %s of %s[%d]%s; nothing of the batch was applied.",
					   field, array, index, kind),
			 errhint("Batches are made by the usage shipper of a standby running the same build of pixltoken.")));
}

void
pixl_usage_batch_decode(const char *data, Size len, int node_id,
						PixlUsageBatch *batch)
{
	PixlBatchHeader hdr;
	TimestampTz now = GetCurrentTimestamp();
	int64		sums[11] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	static const char *const sum_names[11] = {"requests", "errors",
		"rate_limited", "previous_secret_uses", "responses",
		"response_errors_up", "response_errors_down", "response_us_sum",
	"latency", "cost", "charged"};
	Size		record_size;
	Size		count_size;

	if (len < sizeof(hdr))
		pixl_batch_damaged("too short");
	memcpy(&hdr, data, sizeof(hdr));
	if (hdr.magic != PIXL_BATCH_MAGIC)
		pixl_batch_damaged("not a usage batch");
	/* this build's version, or an older one (a standby not updated yet) */
	record_size = hdr.version == PIXL_BATCH_VERSION_1_1
		? PIXL_USAGE_RECORD_SIZE_1_1
		: hdr.version == PIXL_BATCH_VERSION_NO_SCOPES
		? PIXL_BATCH_RECORD_SIZE_V3 : sizeof(PixlUsageRecord);
	count_size = hdr.version == PIXL_BATCH_VERSION_1_1
		? PIXL_AGG_SNAPSHOT_SIZE_1_1
		: hdr.version == PIXL_BATCH_VERSION_NO_SCOPES
		? PIXL_AGG_SNAPSHOT_SIZE_NO_SCOPES : sizeof(PixlAggSnapshot);
	if ((hdr.version != PIXL_BATCH_VERSION &&
		 hdr.version != PIXL_BATCH_VERSION_NO_SCOPES &&
		 hdr.version != PIXL_BATCH_VERSION_1_1) ||
		hdr.record_size != record_size ||
		hdr.count_size != count_size)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
				 errmsg("usage batch of version %u made by another build of pixltoken",
						hdr.version),
				 errdetail("This build takes version %u with records of %u bytes and counts of %u bytes; the batch has records of %u bytes and counts of %u bytes.",
						   PIXL_BATCH_VERSION, (unsigned) sizeof(PixlUsageRecord),
						   (unsigned) sizeof(PixlAggSnapshot), hdr.record_size,
						   hdr.count_size),
				 errhint("Run the same pixltoken library on the primary and its standbys.")));
	if (hdr.nrecords < 0 || hdr.ncounts < 0 ||
		hdr.nrecords > PIXL_BATCH_MAX_ITEMS || hdr.ncounts > PIXL_BATCH_MAX_ITEMS ||
		len != sizeof(hdr) + record_size * hdr.nrecords +
		count_size * hdr.ncounts +
		(hdr.version == PIXL_BATCH_VERSION ? sizeof(int64) : 0))
		pixl_batch_damaged("length does not match its header");

	batch->lost = 0;
	if (hdr.version == PIXL_BATCH_VERSION)
	{
		memcpy(&batch->lost, data + len - sizeof(int64), sizeof(int64));
		if (batch->lost < 0 || batch->lost > PIXL_BATCH_MAX_COUNT)
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
					 errmsg("invalid usage batch: lost out of range"),
					 errdetail("The batch says its node's crashes lost " INT64_FORMAT " verifications; 0 to " INT64_FORMAT " are taken; nothing of the batch was applied.",
							   batch->lost, PIXL_BATCH_MAX_COUNT),
					 errhint("Batches are made by the usage shipper of a standby running the same build of pixltoken.")));
	}

	batch->nrecords = hdr.nrecords;
	batch->ncounts = hdr.ncounts;
	batch->records = palloc(sizeof(PixlUsageRecord) * Max(hdr.nrecords, 1));
	batch->counts = palloc(sizeof(PixlAggSnapshot) * Max(hdr.ncounts, 1));
	data += sizeof(hdr);
	if (hdr.version == PIXL_BATCH_VERSION_1_1)
	{
		for (int i = 0; i < hdr.nrecords; i++, data += record_size)
			pixl_usage_record_from_1_1(data, &batch->records[i]);
		for (int i = 0; i < hdr.ncounts; i++, data += count_size)
			pixl_agg_snapshot_from_1_1(data, &batch->counts[i]);
	}
	else if (hdr.version == PIXL_BATCH_VERSION_NO_SCOPES)
	{
		/* records without their exposure: none */
		for (int i = 0; i < hdr.nrecords; i++, data += record_size)
		{
			memset(&batch->records[i], 0, sizeof(PixlUsageRecord));
			memcpy(&batch->records[i], data, record_size);
		}
		for (int i = 0; i < hdr.ncounts; i++, data += count_size)
			pixl_agg_snapshot_from_no_scopes(data, &batch->counts[i]);
	}
	else
	{
		memcpy(batch->records, data, sizeof(PixlUsageRecord) * hdr.nrecords);
		data += sizeof(PixlUsageRecord) * hdr.nrecords;
		memcpy(batch->counts, data, sizeof(PixlAggSnapshot) * hdr.ncounts);
	}

	/* every item before anything is written: a batch is in whole or not */
	for (int i = 0; i < batch->nrecords; i++)
	{
		PixlUsageRecord *rec = &batch->records[i];
		const char *field;
		const char *problem = pixl_usage_batch_check_record(rec, node_id, now,
															&field);

		if (problem)
		{
			if (rec->kind != PIXL_RECORD_EVENT && rec->kind != PIXL_RECORD_RESPONSE)
				pixl_batch_damaged("unknown record kind");
			pixl_batch_refuse("records", i,
							  rec->kind == PIXL_RECORD_EVENT ? " (an event)" : " (a response)",
							  field, problem);
		}
		if (rec->kind == PIXL_RECORD_EVENT)
		{
			/* usage keys are paths and hold no secret, whoever made them */
			pixl_usage_clean_key_text(rec->u.event.method, PIXL_METHOD_MAX, false);
			pixl_usage_clean_key_text(rec->u.event.endpoint, PIXL_ENDPOINT_MAX, true);
			rec->u.event.dbid = MyDatabaseId;
		}
		else
			rec->u.response.dbid = MyDatabaseId;
	}
	for (int i = 0; i < batch->ncounts; i++)
	{
		PixlAggSnapshot *c = &batch->counts[i];
		const char *field;
		const char *problem = pixl_usage_batch_check_count(c, now, &field);

		if (problem)
			pixl_batch_refuse("counts", i, "", field, problem);
		sums[0] += c->requests;
		sums[1] += c->errors;
		sums[2] += c->rate_limited;
		sums[3] += c->previous_secret_uses;
		sums[4] += c->responses;
		sums[5] += c->response_errors_up;
		sums[6] += c->response_errors_down;
		sums[7] += c->response_us_sum;
		for (int b = 0; b < PIXL_LATENCY_BUCKETS; b++)
			sums[8] += c->latency[b];
		sums[9] += c->cost;
		sums[10] += Abs(c->charged);
		pixl_usage_clean_key_text(c->key.method, PIXL_METHOD_MAX, false);
		pixl_usage_clean_key_text(c->key.endpoint, PIXL_ENDPOINT_MAX, true);
		c->key.dbid = MyDatabaseId;
		c->entry = NULL;
	}
	/* sums of at most 100000 items of at most 2^48 each: no overflow */
	for (int k = 0; k < 11; k++)
		if (sums[k] > (k == 7 ? PIXL_BATCH_MAX_US_SUM : PIXL_BATCH_MAX_COUNT))
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_INVALID_USAGE_BATCH),
					 errmsg("invalid usage batch: %s above the ceiling", sum_names[k]),
					 errdetail("The %s of the batch's counts sum to " INT64_FORMAT ", more than " INT64_FORMAT " per batch; nothing of the batch was applied.",
							   sum_names[k], sums[k],
							   k == 7 ? PIXL_BATCH_MAX_US_SUM : PIXL_BATCH_MAX_COUNT),
					 errhint("Batches are made by the usage shipper of a standby running the same build of pixltoken.")));
}

PixlUsageTally
pixl_usage_batch_tally(const PixlUsageRecord *records, int n,
					   const PixlAggSnapshot *counts, int nagg)
{
	PixlUsageTally t = {0, 0, 0};

	for (int i = 0; i < n; i++)
	{
		if (records[i].kind == PIXL_RECORD_EVENT)
			t.events++;
		else
			t.responses++;
	}
	for (int i = 0; i < nagg; i++)
		t.requests += counts[i].requests;
	return t;
}
