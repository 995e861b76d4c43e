/*-------------------------------------------------------------------------
 *
 * usage_store.c
 *		Writes usage records into the tables of the current database.
 *
 * The worker and the write-through path of a backend share one code path:
 * records are turned into arrays and handed to the SQL functions
 * pixl_store_events() and pixl_apply_responses() of sql/src/30_usage.sql,
 * which hold the logic (rows, rollups, last_used_at).  A backend writes
 * through as the extension's owner (the functions are not granted to
 * anyone), in a subtransaction, so that a failure never fails the caller's
 * verification: the record is then counted as dropped, with a WARNING.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pixltoken.h"
#include "usage_extension.h"
#include "usage_queue.h"

/*
 * The schema (palloc'd, quoted) and owner of the extension in this
 * database, or NULL when it is not installed: catalog look-ups in C, never
 * SQL that a search_path could redirect (usage_extension.c).
 */
char *
pixl_usage_extension(Oid *owner)
{
	PixlExtension ext = pixl_extension_lookup();

	if (!ext.found)
		return NULL;
	if (owner)
		*owner = ext.owner;
	return ext.schema;
}

static Datum
pixl_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

static ArrayType *
pixl_array(Datum *values, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1];

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	dims[0] = n;
	lbs[0] = 1;
	return construct_md_array(values, nulls, 1, dims, lbs, type,
							  typlen, typbyval, typalign);
}

static void
pixl_store_event_batch(const char *schema, const PixlUsageRecord *recs, int n,
					   int nevents)
{
	Datum	   *ids = palloc(sizeof(Datum) * nevents);
	Datum	   *ats = palloc(sizeof(Datum) * nevents);
	Datum	   *tokens = palloc(sizeof(Datum) * nevents);
	Datum	   *methods = palloc(sizeof(Datum) * nevents);
	bool	   *method_nulls = palloc(sizeof(bool) * nevents);
	Datum	   *endpoints = palloc(sizeof(Datum) * nevents);
	bool	   *endpoint_nulls = palloc(sizeof(bool) * nevents);
	Datum	   *ips = palloc(sizeof(Datum) * nevents);
	bool	   *ip_nulls = palloc(sizeof(bool) * nevents);
	Datum	   *statuses = palloc(sizeof(Datum) * nevents);
	Oid			argtypes[7] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, INETARRAYOID, INT4ARRAYOID};
	Datum		args[7];
	char	   *sql;
	int			k = 0;
	int			rc;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageEvent *ev;
		char		token_id[PIXL_TOKEN_ID_LEN + 1];

		if (recs[i].kind != PIXL_RECORD_EVENT)
			continue;
		ev = &recs[i].u.event;
		memcpy(token_id, ev->token_id, PIXL_TOKEN_ID_LEN);
		token_id[PIXL_TOKEN_ID_LEN] = '\0';
		ids[k] = Int64GetDatum(ev->request_id);
		ats[k] = TimestampTzGetDatum(ev->at);
		tokens[k] = CStringGetTextDatum(token_id);
		methods[k] = pixl_text_or_null(ev->method, &method_nulls[k]);
		endpoints[k] = pixl_text_or_null(ev->endpoint, &endpoint_nulls[k]);
		ip_nulls[k] = !ev->has_ip;
		if (ev->has_ip)
		{
			inet	   *ip = palloc0(sizeof(inet));

			ip->inet_data = ev->ip;
			SET_INET_VARSIZE(ip);
			ips[k] = InetPGetDatum(ip);
		}
		else
			ips[k] = (Datum) 0;
		statuses[k] = Int32GetDatum(ev->status);
		k++;
	}

	args[0] = PointerGetDatum(pixl_array(ids, NULL, k, INT8OID));
	args[1] = PointerGetDatum(pixl_array(ats, NULL, k, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(tokens, NULL, k, TEXTOID));
	args[3] = PointerGetDatum(pixl_array(methods, method_nulls, k, TEXTOID));
	args[4] = PointerGetDatum(pixl_array(endpoints, endpoint_nulls, k, TEXTOID));
	args[5] = PointerGetDatum(pixl_array(ips, ip_nulls, k, INETOID));
	args[6] = PointerGetDatum(pixl_array(statuses, NULL, k, INT4OID));

	sql = psprintf("SELECT %s.pixl_store_events($1, $2, $3, $4, $5, $6, $7)", schema);
	rc = SPI_execute_with_args(sql, 7, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

static void
pixl_apply_response_batch(const char *schema, const PixlUsageRecord *recs,
						  int n, int nresponses)
{
	Datum	   *ids = palloc(sizeof(Datum) * nresponses);
	Datum	   *ats = palloc(sizeof(Datum) * nresponses);
	Datum	   *statuses = palloc(sizeof(Datum) * nresponses);
	Datum	   *ms = palloc(sizeof(Datum) * nresponses);
	Oid			argtypes[4] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT4ARRAYOID,
	FLOAT8ARRAYOID};
	Datum		args[4];
	char	   *sql;
	int			k = 0;
	int			rc;

	for (int i = 0; i < n; i++)
	{
		const PixlUsageResponse *r;

		if (recs[i].kind != PIXL_RECORD_RESPONSE)
			continue;
		r = &recs[i].u.response;
		ids[k] = Int64GetDatum(r->request_id);
		ats[k] = TimestampTzGetDatum(r->at);
		statuses[k] = Int32GetDatum(r->status);
		ms[k] = Float8GetDatum(r->response_ms);
		k++;
	}

	args[0] = PointerGetDatum(pixl_array(ids, NULL, k, INT8OID));
	args[1] = PointerGetDatum(pixl_array(ats, NULL, k, TIMESTAMPTZOID));
	args[2] = PointerGetDatum(pixl_array(statuses, NULL, k, INT4OID));
	args[3] = PointerGetDatum(pixl_array(ms, NULL, k, FLOAT8OID));

	sql = psprintf("SELECT %s.pixl_apply_responses($1, $2, $3, $4)", schema);
	rc = SPI_execute_with_args(sql, 4, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

/*
 * Writes recs: events first, then responses, so that a response finds its
 * event when both are in one batch.  The caller has a transaction, an
 * active snapshot and an SPI connection.
 */
bool
pixl_usage_store(const PixlUsageRecord *recs, int n,
				 int64 *events, int64 *responses)
{
	char	   *schema;
	int			nevents = 0;
	int			nresponses = 0;
	int			nestlevel;

	*events = 0;
	*responses = 0;
	schema = pixl_usage_extension(NULL);
	if (schema == NULL)
		return false;

	for (int i = 0; i < n; i++)
	{
		if (recs[i].kind == PIXL_RECORD_EVENT)
			nevents++;
		else if (recs[i].kind == PIXL_RECORD_RESPONSE)
			nresponses++;
	}
	nestlevel = pixl_pin_search_path();
	if (nevents > 0)
		pixl_store_event_batch(schema, recs, n, nevents);
	if (nresponses > 0)
		pixl_apply_response_batch(schema, recs, n, nresponses);
	pixl_restore_search_path(nestlevel);
	*events = nevents;
	*responses = nresponses;
	return true;
}

/*
 * A backend writes records itself: no worker serves its database, or the
 * queue is full.  The rows belong to the caller's transaction.  In a
 * read-only transaction or on a standby nothing can be written: the records
 * are counted as dropped.
 */
void
pixl_usage_write_through(const PixlUsageRecord *recs, int n)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int64 events = 0;
	volatile int64 responses = 0;
	volatile bool stored = false;

	if (!IsTransactionState() || XactReadOnly || RecoveryInProgress())
	{
		pixl_usage_count_dropped(MyDatabaseId, n);
		return;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		Oid			save_userid;
		int			save_sec_context;
		Oid			owner = InvalidOid;
		int64		ev;
		int64		resp;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (pixl_usage_extension(&owner) != NULL)
		{
			GetUserIdAndSecContext(&save_userid, &save_sec_context);
			SetUserIdAndSecContext(owner, save_sec_context |
								   SECURITY_LOCAL_USERID_CHANGE |
								   SECURITY_RESTRICTED_OPERATION);
			stored = pixl_usage_store(recs, n, &ev, &resp);
			events = ev;
			responses = resp;
			SetUserIdAndSecContext(save_userid, save_sec_context);
		}
		SPI_finish();
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		/* a cancel or shutdown is the caller's business, not ours */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);

		pixl_usage_count_dropped(MyDatabaseId, n);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("pixltoken could not write a usage record: %s", edata->message),
				 errhint("The record is counted in events_dropped of pixl_stats().")));
		FreeErrorData(edata);
		return;
	}
	PG_END_TRY();

	if (stored)
		pixl_usage_count_written_through(MyDatabaseId, events, responses);
	else
		pixl_usage_count_dropped(MyDatabaseId, n);
}
