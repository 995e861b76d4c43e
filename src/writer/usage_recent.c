/*-------------------------------------------------------------------------
 *
 * usage_recent.c
 *		The last calls of each token and final status: what the usage
 *		page's "recent calls" shows, kept without one row per request.
 *
 * With pixltoken.request_log = recent (the default) the worker does not
 * write a raw row per verification.  It keeps, in its own memory, the
 * last PIXL_RECENT_CALLS calls of every (token, final status) it saw
 * since its last write-out; a response report moves its call to the
 * status it reports and gives it its response time.  Every
 * pixltoken.fold_interval (with the counts, usage_fold.c) the calls that
 * are ready go to pixl_usage_recent, PIXL_RECENT_CALLS slots per (token,
 * status) overwritten in turn: one row write per call kept, none for a
 * call that a later one of its token and status pushed out before the
 * write-out, and a table whose size follows tokens and statuses, never
 * requests.  pixl_recent_calls() reads it (and pixl_usage_events, where
 * pixltoken.request_log = all writes every call).
 *
 * A call is ready when it was answered, or when PIXL_RECENT_GRACE_MS
 * passed without a report.  A report that comes after its call was
 * written (within pixltoken.response_wait) changes the row's status and
 * response time in place at the next write-out: the call keeps the slot of
 * the status it was written under (slot_status), so a status's 20 slots
 * may hold a few calls that were answered with another status.  Every
 * report counts in the aggregates in any case (usage_pending.c).
 *
 * Exactly once without locks: the buffer belongs to the worker process.
 * Records are added when peeked from the ring and recognised by request
 * id when peeked again after a failed transaction; a write-out changes the
 * buffer only after its transaction committed (pixl_usage_recent_written).
 * What the buffer holds is lost when the worker exits (a restart, a crash,
 * SIGTERM): at most one fold interval of recent calls, never a count.
 *
 * A key buffers up to twice the calls it shows, so that when reports move
 * some of its newest calls to other statuses, its newest PIXL_RECENT_CALLS
 * are still there; of the ready calls only those among a key's newest
 * PIXL_RECENT_CALLS are written.
 *
 * Memory: a pool of PIXL_RECENT_POOL calls of about 100 bytes (their
 * endpoint strings are shared: 26 MB in all); when three
 * quarters are in use the worker writes the recent calls out at once
 * (the counts wait for their fold).  A call that finds the pool empty is
 * not kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "usage/usage_pending.h"
#include "writer/usage_recent.h"

#define PIXL_RECENT_POOL		262144
/*
 * Calls a key buffers: twice what it shows, so that calls its reports move
 * to other statuses leave it the newest PIXL_RECENT_CALLS of its own.
 */
#define PIXL_RECENT_BUFFERED	(2 * PIXL_RECENT_CALLS)
#define PIXL_RECENT_GRACE_MS	2000
#define PIXL_RECENT_KEYS_MAX	262144	/* idle keys are forgotten past this */

int			pixl_request_log = PIXL_REQUEST_LOG_RECENT;

static const struct config_enum_entry request_log_options[] = {
	{"recent", PIXL_REQUEST_LOG_RECENT, false},
	{"all", PIXL_REQUEST_LOG_ALL, false},
	{NULL, 0, false}
};

struct RecentKey;

/* One buffered call. */
typedef struct RecentCall
{
	struct RecentKey *key;		/* the key that holds it (dynahash entries
								 * stay where they are) */
	int64		request_id;
	TimestampTz at;
	int16		verify_status;
	int16		status;			/* final if answered */
	bool		answered;
	bool		has_ip;
	double		response_ms;
	inet_struct ip;
	char		method[PIXL_METHOD_MAX];
	const char *endpoint;		/* interned (RecentEndpoint) */
	int32		next_free;		/* free list link */
} RecentCall;

/* An endpoint string the buffered calls share (most calls share a few). */
typedef struct RecentEndpoint
{
	char		endpoint[PIXL_ENDPOINT_MAX];	/* hash key */
	int32		refs;
} RecentEndpoint;

typedef struct RecentKeyId
{
	char		token_id[PIXL_TOKEN_ID_LEN];
	int16		status;
} RecentKeyId;

/* The buffered calls of one (token, status), oldest first. */
typedef struct RecentKey
{
	RecentKeyId id;				/* hash key */
	int16		next_slot;		/* slot the next written call takes */
	bool		slot_known;		/* next_slot was read from the table */
	int16		ncalls;
	int32		calls[PIXL_RECENT_BUFFERED];	/* pool indexes */
	int16		nwriting;		/* the first nwriting calls leave at the
								 * write-out ... */
	int16		nskipping;		/* ... the first nskipping of them unwritten */
} RecentKey;

typedef struct RecentById
{
	int64		request_id;		/* hash key */
	int32		call;
} RecentById;

/*
 * A call written out lately, for a report that comes after: found by
 * request id, its row by primary key.  Kept for pixltoken.response_wait.
 */
typedef struct RecentWritten
{
	int64		request_id;		/* hash key */
	char		token_id[PIXL_TOKEN_ID_LEN];
	int16		slot_status;
	int16		slot;
	TimestampTz written_at;
	bool		late;			/* a report came: in the late list */
	int16		status;			/* the report's */
	double		response_ms;
} RecentWritten;

static RecentCall *pool = NULL;
static int32 pool_free = -1;
static int	pool_used = 0;
static HTAB *keys = NULL;
static HTAB *by_id = NULL;
static HTAB *written = NULL;
static HTAB *endpoints = NULL;
static int	nlate = 0;
static bool writing = false;

void
pixl_usage_recent_init(void)
{
	DefineCustomEnumVariable("pixltoken.request_log",
							 "Which calls are kept as rows: the last ones per token and status (recent), or every one (all).",
							 "recent keeps what pixl_recent_calls shows; all writes one row per verification into pixl_usage_events.",
							 &pixl_request_log,
							 PIXL_REQUEST_LOG_RECENT,
							 request_log_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

static void
recent_setup(void)
{
	HASHCTL		ctl;

	if (pool != NULL)
		return;
	pool = MemoryContextAllocHuge(TopMemoryContext,
								  sizeof(RecentCall) * PIXL_RECENT_POOL);
	for (int i = 0; i < PIXL_RECENT_POOL; i++)
		pool[i].next_free = i + 1 < PIXL_RECENT_POOL ? i + 1 : -1;
	pool_free = 0;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(RecentKeyId);
	ctl.entrysize = sizeof(RecentKey);
	keys = hash_create("pixltoken recent calls", 4096, &ctl,
					   HASH_ELEM | HASH_BLOBS);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(RecentById);
	by_id = hash_create("pixltoken recent calls by id", 4096, &ctl,
						HASH_ELEM | HASH_BLOBS);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(RecentWritten);
	written = hash_create("pixltoken recent calls written", 4096, &ctl,
						  HASH_ELEM | HASH_BLOBS);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = PIXL_ENDPOINT_MAX;
	ctl.entrysize = sizeof(RecentEndpoint);
	endpoints = hash_create("pixltoken recent call endpoints", 1024, &ctl,
							HASH_ELEM | HASH_BLOBS);
}

static const char *
endpoint_intern(const char *endpoint)
{
	RecentEndpoint *e;
	bool		found;

	e = hash_search(endpoints, endpoint, HASH_ENTER, &found);
	if (!found)
		e->refs = 0;
	e->refs++;
	return e->endpoint;
}

static void
endpoint_release(const char *endpoint)
{
	/* endpoint points at its entry's key, the first member */
	RecentEndpoint *e = (RecentEndpoint *) endpoint;

	if (--e->refs == 0)
		(void) hash_search(endpoints, e->endpoint, HASH_REMOVE, NULL);
}

static void
call_free(int32 c)
{
	(void) hash_search(by_id, &pool[c].request_id, HASH_REMOVE, NULL);
	endpoint_release(pool[c].endpoint);
	pool[c].next_free = pool_free;
	pool_free = c;
	pool_used--;
}

static RecentKey *
key_get(const char *token_id, int16 status)
{
	RecentKeyId id;
	RecentKey  *k;
	bool		found;

	memset(&id, 0, sizeof(id));
	memcpy(id.token_id, token_id, PIXL_TOKEN_ID_LEN);
	id.status = status;
	k = hash_search(keys, &id, HASH_ENTER, &found);
	if (!found)
	{
		k->next_slot = 0;
		k->slot_known = false;
		k->ncalls = 0;
		k->nwriting = 0;
		k->nskipping = 0;
	}
	return k;
}

/*
 * Puts call c into k, in time order; when k is full the oldest call goes
 * (c itself, if it is the oldest).  Returns false when c was not kept.
 */
static bool
key_insert(RecentKey *k, int32 c)
{
	int			pos = k->ncalls;

	pool[c].key = k;
	while (pos > 0 && pool[k->calls[pos - 1]].at > pool[c].at)
		pos--;
	if (k->ncalls == PIXL_RECENT_BUFFERED)
	{
		if (pos == 0)
			return false;
		call_free(k->calls[0]);
		memmove(&k->calls[0], &k->calls[1], sizeof(int32) * (pos - 1));
		k->calls[pos - 1] = c;
		return true;
	}
	memmove(&k->calls[pos + 1], &k->calls[pos], sizeof(int32) * (k->ncalls - pos));
	k->calls[pos] = c;
	k->ncalls++;
	return true;
}

static void
key_remove(RecentKey *k, int32 c)
{
	for (int i = 0; i < k->ncalls; i++)
	{
		if (k->calls[i] == c)
		{
			memmove(&k->calls[i], &k->calls[i + 1], sizeof(int32) * (k->ncalls - i - 1));
			k->ncalls--;
			return;
		}
	}
}

static void
recent_add_event(const PixlUsageEvent *ev)
{
	RecentById *r;
	bool		found;
	int32		c;

	r = hash_search(by_id, &ev->request_id, HASH_ENTER, &found);
	if (found)
		return;					/* peeked again */
	if (pool_free < 0)
	{
		(void) hash_search(by_id, &ev->request_id, HASH_REMOVE, NULL);
		return;
	}
	c = pool_free;
	pool_free = pool[c].next_free;
	pool_used++;
	r->call = c;
	pool[c].request_id = ev->request_id;
	pool[c].at = ev->at;
	pool[c].verify_status = ev->status;
	pool[c].status = ev->status;
	pool[c].answered = false;
	pool[c].response_ms = 0;
	pool[c].has_ip = ev->has_ip;
	pool[c].ip = ev->ip;
	memcpy(pool[c].method, ev->method, PIXL_METHOD_MAX);
	pool[c].endpoint = endpoint_intern(ev->endpoint);
	/* the token id lives in the key */
	if (!key_insert(key_get(ev->token_id, ev->status), c))
		call_free(c);
}

static void
recent_add_response(const PixlUsageResponse *resp)
{
	RecentById *r = hash_search(by_id, &resp->request_id, HASH_FIND, NULL);
	RecentKey  *from;
	int32		c;
	char		token_id[PIXL_TOKEN_ID_LEN];

	if (r == NULL)
	{
		/* written out already: its row changes at the next write-out */
		RecentWritten *w = hash_search(written, &resp->request_id, HASH_FIND, NULL);

		if (w != NULL && !w->late)
		{
			w->late = true;
			w->status = resp->status;
			w->response_ms = resp->response_ms;
			nlate++;
		}
		return;
	}
	c = r->call;
	if (pool[c].answered)
		return;					/* peeked again */
	from = pool[c].key;
	pool[c].answered = true;
	pool[c].response_ms = resp->response_ms;
	if (resp->status == pool[c].status)
		return;
	/* the call moves to the status it reports */
	memcpy(token_id, from->id.token_id, PIXL_TOKEN_ID_LEN);
	key_remove(from, c);
	pool[c].status = resp->status;
	if (!key_insert(key_get(token_id, resp->status), c))
		call_free(c);
}

void
pixl_usage_recent_add(const PixlUsageRecord *recs, int n)
{
	recent_setup();
	Assert(!writing);
	for (int i = 0; i < n; i++)
	{
		if (recs[i].kind == PIXL_RECORD_EVENT && recs[i].u.event.counted)
			recent_add_event(&recs[i].u.event);
		else if (recs[i].kind == PIXL_RECORD_RESPONSE)
			recent_add_response(&recs[i].u.response);
	}
}

bool
pixl_usage_recent_keeps_calls(void)
{
	return pixl_request_log == PIXL_REQUEST_LOG_RECENT && pool != NULL;
}

bool
pixl_usage_recent_pending(void)
{
	return pool != NULL && (pool_used > 0 || nlate > 0);
}

bool
pixl_usage_recent_full(void)
{
	return pool != NULL && pool_used >= PIXL_RECENT_POOL / 4 * 3;
}

/* Reads the slot after the newest written call of keys not known yet. */
static void
recent_read_slots(const PixlExtension *ext, RecentKey **todo, int n)
{
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	Datum	   *statuses = palloc(sizeof(Datum) * n);
	Oid			argtypes[2] = {TEXTARRAYOID, INT2ARRAYOID};
	Datum		args[2];
	int			rc;

	for (int i = 0; i < n; i++)
	{
		tokens[i] = pixl_token_id_text(todo[i]->id.token_id);
		statuses[i] = Int16GetDatum(todo[i]->id.status);
		todo[i]->next_slot = 0;
	}
	args[0] = PointerGetDatum(pixl_array(tokens, NULL, n, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(statuses, NULL, n, INT2OID));
	rc = SPI_execute_with_args(psprintf("SELECT DISTINCT ON (r.token_id, r.slot_status) r.token_id, r.slot_status, r.slot "
										"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS u(t, s) "
										"JOIN %s.pixl_usage_recent r ON r.token_id OPERATOR(pg_catalog.=) u.t "
										"AND r.slot_status OPERATOR(pg_catalog.=) u.s "
										"ORDER BY r.token_id, r.slot_status, r.at DESC, r.request_id DESC",
										ext->schema),
							   2, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		char	   *tok = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		int16		status = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[r],
														 SPI_tuptable->tupdesc, 2, &isnull));
		int16		slot = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[r],
													   SPI_tuptable->tupdesc, 3, &isnull));
		RecentKeyId id;
		RecentKey  *k;

		if (tok == NULL || strlen(tok) > PIXL_TOKEN_ID_LEN)
			continue;
		memset(&id, 0, sizeof(id));
		memcpy(id.token_id, tok, strlen(tok));
		id.status = status;
		k = hash_search(keys, &id, HASH_FIND, NULL);
		if (k)
			k->next_slot = (slot + 1) % PIXL_RECENT_CALLS;
	}
	for (int i = 0; i < n; i++)
		todo[i]->slot_known = true;
}

/* Reports that came after their call was written: the rows change. */
static void
recent_write_late(const PixlExtension *ext)
{
	HASH_SEQ_STATUS seq;
	RecentWritten *w;
	Datum	   *tok = palloc(sizeof(Datum) * nlate);
	Datum	   *slot_status = palloc(sizeof(Datum) * nlate);
	Datum	   *slot = palloc(sizeof(Datum) * nlate);
	Datum	   *rid = palloc(sizeof(Datum) * nlate);
	Datum	   *status = palloc(sizeof(Datum) * nlate);
	Datum	   *ms = palloc(sizeof(Datum) * nlate);
	Oid			argtypes[6] = {TEXTARRAYOID, INT2ARRAYOID, INT2ARRAYOID,
	INT8ARRAYOID, INT2ARRAYOID, FLOAT8ARRAYOID};
	Datum		args[6];
	int			n = 0;
	int			rc;

	hash_seq_init(&seq, written);
	while ((w = hash_seq_search(&seq)) != NULL)
	{
		if (!w->late || n >= nlate)
			continue;
		tok[n] = pixl_token_id_text(w->token_id);
		slot_status[n] = Int16GetDatum(w->slot_status);
		slot[n] = Int16GetDatum(w->slot);
		rid[n] = Int64GetDatum(w->request_id);
		status[n] = Int16GetDatum(w->status);
		ms[n] = Float8GetDatum(w->response_ms);
		n++;
	}
	args[0] = PointerGetDatum(pixl_array(tok, NULL, n, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(slot_status, NULL, n, INT2OID));
	args[2] = PointerGetDatum(pixl_array(slot, NULL, n, INT2OID));
	args[3] = PointerGetDatum(pixl_array(rid, NULL, n, INT8OID));
	args[4] = PointerGetDatum(pixl_array(status, NULL, n, INT2OID));
	args[5] = PointerGetDatum(pixl_array(ms, NULL, n, FLOAT8OID));
	/* a slot overwritten meanwhile holds another request: left alone */
	rc = SPI_execute_with_args(psprintf("UPDATE %s.pixl_usage_recent r SET status = u.st, response_ms = u.ms "
										"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
										"pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
										"pg_catalog.unnest($6)) AS u(t, ss, sl, id, st, ms) "
										"WHERE r.token_id OPERATOR(pg_catalog.=) u.t "
										"AND r.slot_status OPERATOR(pg_catalog.=) u.ss "
										"AND r.slot OPERATOR(pg_catalog.=) u.sl "
										"AND r.request_id OPERATOR(pg_catalog.=) u.id",
										ext->schema),
							   6, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

void
pixl_usage_recent_write(const PixlExtension *ext)
{
	HASH_SEQ_STATUS seq;
	RecentKey  *k;
	TimestampTz ready_before = GetCurrentTimestamp() -
		(TimestampTz) PIXL_RECENT_GRACE_MS * 1000;
	int			n = 0;
	int			nunknown = 0;
	RecentKey **unknown;
	Datum	   *tok, *status, *slot, *at, *rid, *method, *endpoint, *ip, *vstatus, *ms;
	bool	   *ip_null, *ms_null, *method_null, *endpoint_null;
	Oid			argtypes[10] = {TEXTARRAYOID, INT2ARRAYOID, INT2ARRAYOID,
		TIMESTAMPTZARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	INETARRAYOID, INT2ARRAYOID, FLOAT8ARRAYOID};
	Datum		args[10];
	int			rc;
	long		nkeys;

	if (pool == NULL)
		return;
	if (nlate > 0)
		recent_write_late(ext);
	if (pool_used == 0)
	{
		writing = true;
		return;
	}

	/* which calls go: the ready prefix of each key (time order) */
	nkeys = hash_get_num_entries(keys);
	unknown = palloc(sizeof(RecentKey *) * nkeys);
	hash_seq_init(&seq, keys);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		int			m = 0;

		while (m < k->ncalls &&
			   (pool[k->calls[m]].answered || pool[k->calls[m]].at < ready_before))
			m++;
		k->nwriting = m;
		/* only the newest PIXL_RECENT_CALLS are shown: older ones go unwritten */
		k->nskipping = Max(0, Min(m, k->ncalls - PIXL_RECENT_CALLS));
		n += m - k->nskipping;
		if (m > k->nskipping && !k->slot_known)
			unknown[nunknown++] = k;
	}
	writing = true;
	if (n == 0)
		return;
	if (nunknown > 0)
		recent_read_slots(ext, unknown, nunknown);

	tok = palloc(sizeof(Datum) * n);
	status = palloc(sizeof(Datum) * n);
	slot = palloc(sizeof(Datum) * n);
	at = palloc(sizeof(Datum) * n);
	rid = palloc(sizeof(Datum) * n);
	method = palloc(sizeof(Datum) * n);
	endpoint = palloc(sizeof(Datum) * n);
	ip = palloc(sizeof(Datum) * n);
	vstatus = palloc(sizeof(Datum) * n);
	ms = palloc(sizeof(Datum) * n);
	ip_null = palloc(sizeof(bool) * n);
	ms_null = palloc(sizeof(bool) * n);
	method_null = palloc(sizeof(bool) * n);
	endpoint_null = palloc(sizeof(bool) * n);
	n = 0;
	hash_seq_init(&seq, keys);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		for (int i = k->nskipping; i < k->nwriting; i++)
		{
			RecentCall *c = &pool[k->calls[i]];

			tok[n] = pixl_token_id_text(k->id.token_id);
			status[n] = Int16GetDatum(k->id.status);
			slot[n] = Int16GetDatum((k->next_slot + i - k->nskipping) % PIXL_RECENT_CALLS);
			at[n] = TimestampTzGetDatum(c->at);
			rid[n] = Int64GetDatum(c->request_id);
			method_null[n] = (c->method[0] == '\0');
			method[n] = method_null[n] ? (Datum) 0 : CStringGetTextDatum(c->method);
			endpoint_null[n] = (c->endpoint[0] == '\0');
			endpoint[n] = endpoint_null[n] ? (Datum) 0 : CStringGetTextDatum(c->endpoint);
			ip_null[n] = !c->has_ip;
			if (c->has_ip)
			{
				inet	   *v = palloc0(sizeof(inet));

				v->inet_data = c->ip;
				SET_INET_VARSIZE(v);
				ip[n] = InetPGetDatum(v);
			}
			else
				ip[n] = (Datum) 0;
			vstatus[n] = Int16GetDatum(c->verify_status);
			ms_null[n] = !c->answered;
			ms[n] = Float8GetDatum(c->response_ms);
			n++;
		}
	}
	args[0] = PointerGetDatum(pixl_array(tok, NULL, n, TEXTOID));
	args[1] = PointerGetDatum(pixl_array(status, NULL, n, INT2OID));
	args[2] = PointerGetDatum(pixl_array(slot, NULL, n, INT2OID));
	args[3] = PointerGetDatum(pixl_array(at, NULL, n, TIMESTAMPTZOID));
	args[4] = PointerGetDatum(pixl_array(rid, NULL, n, INT8OID));
	args[5] = PointerGetDatum(pixl_array(method, method_null, n, TEXTOID));
	args[6] = PointerGetDatum(pixl_array(endpoint, endpoint_null, n, TEXTOID));
	args[7] = PointerGetDatum(pixl_array(ip, ip_null, n, INETOID));
	args[8] = PointerGetDatum(pixl_array(vstatus, NULL, n, INT2OID));
	args[9] = PointerGetDatum(pixl_array(ms, ms_null, n, FLOAT8OID));
	rc = SPI_execute_with_args(psprintf("INSERT INTO %s.pixl_usage_recent AS r (token_id, slot_status, slot, at, "
										"request_id, method, endpoint, ip, verify_status, response_ms, status) "
										"SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
										"pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
										"pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8), "
										"pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($2)) "
										"ON CONFLICT (token_id, slot_status, slot) DO UPDATE "
										"SET at = excluded.at, request_id = excluded.request_id, "
										"method = excluded.method, endpoint = excluded.endpoint, "
										"ip = excluded.ip, verify_status = excluded.verify_status, "
										"response_ms = excluded.response_ms, status = excluded.status",
										ext->schema),
							   10, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

void
pixl_usage_recent_written(void)
{
	HASH_SEQ_STATUS seq;
	RecentKey  *k;
	TimestampTz now = GetCurrentTimestamp();

	if (pool == NULL)
		return;

	/* the late reports are applied; calls written long ago are forgotten */
	{
		RecentWritten *w;
		TimestampTz expired = now - (TimestampTz) pixl_response_wait_ms * 1000;

		hash_seq_init(&seq, written);
		while ((w = hash_seq_search(&seq)) != NULL)
		{
			if (w->late || w->written_at < expired)
				(void) hash_search(written, &w->request_id, HASH_REMOVE, NULL);
		}
		nlate = 0;
	}

	hash_seq_init(&seq, keys);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		int			m = k->nwriting;

		if (m == 0)
			continue;
		for (int i = 0; i < m; i++)
		{
			RecentCall *c = &pool[k->calls[i]];
			RecentWritten *w;

			/* an answered call changes no more; others may be reported */
			if (i >= k->nskipping && !c->answered)
			{
				w = hash_search(written, &c->request_id, HASH_ENTER, NULL);
				memcpy(w->token_id, k->id.token_id, PIXL_TOKEN_ID_LEN);
				w->slot_status = k->id.status;
				w->slot = (k->next_slot + i - k->nskipping) % PIXL_RECENT_CALLS;
				w->written_at = now;
				w->late = false;
			}
			call_free(k->calls[i]);
		}
		memmove(&k->calls[0], &k->calls[m], sizeof(int32) * (k->ncalls - m));
		k->ncalls -= m;
		k->next_slot = (k->next_slot + m - k->nskipping) % PIXL_RECENT_CALLS;
		k->nwriting = 0;
		k->nskipping = 0;
	}
	writing = false;

	/* forget idle keys when there are many (their slot is read again) */
	if (hash_get_num_entries(keys) > PIXL_RECENT_KEYS_MAX)
	{
		hash_seq_init(&seq, keys);
		while ((k = hash_seq_search(&seq)) != NULL)
		{
			if (k->ncalls == 0)
				(void) hash_search(keys, &k->id, HASH_REMOVE, NULL);
		}
	}
}

void
pixl_usage_recent_forget(void)
{
	HASH_SEQ_STATUS seq;
	RecentKey  *k;

	if (pool == NULL)
		return;
	hash_seq_init(&seq, keys);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		k->nwriting = 0;
		k->nskipping = 0;
		/* the slots read in the failed transaction may not hold */
		k->slot_known = false;
	}
	writing = false;
}
