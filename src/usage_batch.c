/*-------------------------------------------------------------------------
 *
 * usage_batch.c
 *		Encoding and checking the batches a standby ships (usage_ship.c)
 *		and its primary ingests (usage_ingest.c).
 *
 * A batch is a header, then the records, then the counts, each in its
 * in-memory layout.  Decoding trusts nothing: pixl_ingest_usage is callable
 * by whatever role it is granted to, so every record is checked the way
 * the request path would have made it (kinds, statuses, terminated
 * strings, token id alphabet, address families, non-negative counts), and
 * the database is this one, whatever the batch says.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "miscadmin.h"
#include "utils/inet.h"

#include "pixltoken.h"
#include "request_id.h"
#include "token_format.h"
#include "usage_batch.h"
#include "usage_route.h"

#define PIXL_BATCH_MAGIC	0x50584c42	/* "PXLB" */
#define PIXL_BATCH_VERSION	1
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
						const PixlAggSnapshot *counts, int nagg)
{
	Size		len = sizeof(PixlBatchHeader) + sizeof(PixlUsageRecord) * n +
		sizeof(PixlAggSnapshot) * nagg;
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

static bool
pixl_terminated(const char *s, Size size)
{
	return memchr(s, '\0', size) != NULL;
}

static void
pixl_check_event(PixlUsageEvent *ev)
{
	if (ev->request_id <= 0 || ev->at != PIXL_REQUEST_ID_TIME(ev->request_id))
		pixl_batch_damaged("request id and time disagree");
	if (ev->status != 200 && ev->status != 403 && ev->status != 429)
		pixl_batch_damaged("event status is not 200, 403 or 429");
	if (!pixl_is_token_id(ev->token_id))
		pixl_batch_damaged("malformed token id");
	if (!pixl_terminated(ev->method, PIXL_METHOD_MAX) ||
		!pixl_terminated(ev->endpoint, PIXL_ENDPOINT_MAX))
		pixl_batch_damaged("unterminated method or endpoint");
	pixl_usage_clean_key_text(ev->method, PIXL_METHOD_MAX, false);
	pixl_usage_clean_key_text(ev->endpoint, PIXL_ENDPOINT_MAX, true);
	if (ev->has_ip)
	{
		int			maxbits = ev->ip.family == PGSQL_AF_INET ? 32 : 128;

		if ((ev->ip.family != PGSQL_AF_INET && ev->ip.family != PGSQL_AF_INET6) ||
			ev->ip.bits > maxbits)
			pixl_batch_damaged("invalid client address");
	}
	ev->dbid = MyDatabaseId;
}

static void
pixl_check_response(PixlUsageResponse *r)
{
	if (r->request_id <= 0 || r->at != PIXL_REQUEST_ID_TIME(r->request_id))
		pixl_batch_damaged("request id and time disagree");
	if (r->status < 100 || r->status > 599)
		pixl_batch_damaged("response status out of range");
	if (!(r->response_ms >= 0 && r->response_ms <= PIXL_MAX_RESPONSE_MS))
		pixl_batch_damaged("response time out of range");
	r->dbid = MyDatabaseId;
}

static void
pixl_check_count(PixlAggSnapshot *c)
{
	if (!pixl_is_token_id(c->key.token_id) ||
		!pixl_terminated(c->key.method, PIXL_METHOD_MAX) ||
		!pixl_terminated(c->key.endpoint, PIXL_ENDPOINT_MAX))
		pixl_batch_damaged("malformed count key");
	pixl_usage_clean_key_text(c->key.method, PIXL_METHOD_MAX, false);
	pixl_usage_clean_key_text(c->key.endpoint, PIXL_ENDPOINT_MAX, true);
	/* no relation among them: a snapshot reads each counter on its own */
	if (c->requests < 0 || c->errors < 0 || c->rate_limited < 0 ||
		c->previous_secret_uses < 0)
		pixl_batch_damaged("negative count");
	c->key.dbid = MyDatabaseId;
	c->entry = NULL;
}

void
pixl_usage_batch_decode(const char *data, Size len, PixlUsageBatch *batch)
{
	PixlBatchHeader hdr;

	if (len < sizeof(hdr))
		pixl_batch_damaged("too short");
	memcpy(&hdr, data, sizeof(hdr));
	if (hdr.magic != PIXL_BATCH_MAGIC)
		pixl_batch_damaged("not a usage batch");
	if (hdr.version != PIXL_BATCH_VERSION ||
		hdr.record_size != sizeof(PixlUsageRecord) ||
		hdr.count_size != sizeof(PixlAggSnapshot))
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
		len != sizeof(hdr) + sizeof(PixlUsageRecord) * hdr.nrecords +
		sizeof(PixlAggSnapshot) * hdr.ncounts)
		pixl_batch_damaged("length does not match its header");

	batch->nrecords = hdr.nrecords;
	batch->ncounts = hdr.ncounts;
	batch->records = palloc(sizeof(PixlUsageRecord) * Max(hdr.nrecords, 1));
	batch->counts = palloc(sizeof(PixlAggSnapshot) * Max(hdr.ncounts, 1));
	data += sizeof(hdr);
	memcpy(batch->records, data, sizeof(PixlUsageRecord) * hdr.nrecords);
	data += sizeof(PixlUsageRecord) * hdr.nrecords;
	memcpy(batch->counts, data, sizeof(PixlAggSnapshot) * hdr.ncounts);

	for (int i = 0; i < batch->nrecords; i++)
	{
		PixlUsageRecord *rec = &batch->records[i];

		if (rec->kind == PIXL_RECORD_EVENT)
			pixl_check_event(&rec->u.event);
		else if (rec->kind == PIXL_RECORD_RESPONSE)
			pixl_check_response(&rec->u.response);
		else
			pixl_batch_damaged("unknown record kind");
	}
	for (int i = 0; i < batch->ncounts; i++)
		pixl_check_count(&batch->counts[i]);
}

int64
pixl_usage_batch_requests(const PixlUsageBatch *batch)
{
	int64		n = 0;

	for (int i = 0; i < batch->ncounts; i++)
		n += batch->counts[i].requests;
	return n;
}
