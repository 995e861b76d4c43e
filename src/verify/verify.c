/*-------------------------------------------------------------------------
 *
 * verify.c
 *		pixl_verify_token(): the hot path of every API request.
 *
 * The checks run cheapest first, and each answers with a row instead of an
 * error: the format (no table is touched for garbage), the SHA-256 and the
 * per-backend cache (token_cache.c; the checksum only on a miss, see
 * verify_core), exposure and revocation, disabling, expiry (clock time),
 * the IP allowlist (a 403 that consumes no quota), the store, the scope
 * (one AND), and last the shared-memory rate limit (rate_limit.c; the
 * cached token keeps links to its slot and its usage count entry, so a
 * warm verification makes one hash lookup).  Only a scope argument that is
 * not one of the eleven (nor '*'), or is NULL where 1.1 requires one,
 * raises: that is a bug of the caller, not of the presented token.
 *
 * A weighted call (the cost overloads of 1.2: the same three functions
 * with a seventh argument, cost 1..100, else PX053) charges its cost to
 * the minute window and to the token's period allowances (quota.c); a
 * call over an allowance is a 429 quota_exceeded.  The pending record of
 * the call keeps what it charged, for a refund by its response report.
 *
 * The transport overloads (1.2: an eighth argument, transport 'http',
 * 'https' or NULL for unknown, else PX057; no defaults either, so every
 * earlier call form resolves as before) follow draft-ietf-httpapi-privacy
 * for a credential that came over plain HTTP: the answer is 403
 * insecure_transport with no other column, identical for valid, invalid,
 * revoked and garbage tokens (no token id, request id or rate-limit state,
 * nothing charged).  The lookup itself runs as it would over HTTPS (the
 * format and checksum first, which anyone can compute; then the cache or
 * an index probe for every well-formed secret), so its timing tells no
 * more than the same secret sent over HTTPS would.  A known token that is
 * not revoked is then exposed: its usage record (status 403, counted like
 * every 403) carries the exposure to the worker, which revokes it with
 * reason exposed (or only notifies, by the store's
 * insecure_transport_action) in the transaction that stores the record;
 * until then usage/exposure.c marks it on this node, so that its next
 * secure use here answers 401 exposed at once.  At most
 * pixltoken.insecure_revocations_per_minute exposures are handed over per
 * minute on a node, a quarter of them for one store (exposure.c).
 *
 * Four entry points share verify_core().  pixl_verify_token keeps 1.0's
 * result type for ever (eleven columns, request_id bigint), so that a
 * statement an app server prepared under 1.0 survives ALTER EXTENSION
 * UPDATE: its 1.0 definition (symbol pixl_verify_token: usage kept as 1.0
 * kept it) and its 1.1 definition (pixl_verify_token_1_1: usage counted as
 * 1.1 counts it) both hand out the sealed bigint form of the request id
 * (request_id.c), and both read a NULL scope as 1.0 did: no scope check.
 * pixl_verify_request (1.1's columns: request_id as opaque text, then
 * metadata, previous_secret_used and staleness_ms) and
 * pixl_verify_token_http (the same, then the HTTP answer of http_answer.c)
 * require a scope: NULL is an error (PX081), '*' asks for none.  Their
 * columns are only ever added at the end (README, "Upgrading").  Each
 * checks the column count of the definition it was called with.
 * staleness_ms (how old a hot standby's view of its primary may be,
 * standby.c; NULL on a primary) is asked for only by the 1.1 shapes, on
 * every answer and before the lookup, so that the view the answer comes
 * from is at least as current as the figure says; on a primary it costs
 * one RecoveryInProgress() call.  A 200 sets the transaction's RLS context
 * (verify_context.c), any other answer clears it.
 *
 * The ip argument is normalised first: an IPv4-mapped IPv6 address
 * (::ffff:203.0.113.9, what a server listening on :: sees) is the IPv4
 * address, for the allowlist and for the usage row.
 *
 * Nothing here writes to a table, takes a transaction id or calls a
 * sequence; verifications of an existing token (200, 403, 429) get a
 * request id and a usage event for usage_route.c.  The secret never leaves
 * this function except as its hash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/detoast.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "common/request_id.h"
#include "common/scopes.h"
#include "common/token_format.h"
#include "usage/exposure.h"
#include "usage/usage_route.h"
#include "verify/http_answer.h"
#include "verify/rate_limit.h"
#include "verify/standby.h"
#include "verify/token_cache.h"
#include "verify/verify_context.h"

/* Anything longer than this cannot be a secret: rejected before detoasting. */
#define VERIFY_MAX_TOKEN_BYTES	256

/* Result columns of pixl_verify_token (1.0), then 1.1's, then the HTTP form */
enum
{
	COL_STATUS,
	COL_REASON,
	COL_TOKEN_ID,
	COL_STORE_ID,
	COL_MODE,
	COL_SCOPES,
	COL_RATE_LIMIT,
	COL_REMAINING,
	COL_RESET_AT,
	COL_RETRY_AFTER_MS,
	COL_REQUEST_ID,
	VERIFY_NCOLS_1_0,
	COL_METADATA = VERIFY_NCOLS_1_0,
	COL_PREVIOUS_SECRET_USED,
	COL_STALENESS_MS,
	VERIFY_NCOLS_1_1,
	COL_HTTP_FIRST = VERIFY_NCOLS_1_1,
	VERIFY_NCOLS_HTTP = VERIFY_NCOLS_1_1 + PIXL_HTTP_NCOLS
};

/* Arguments */
enum
{
	ARG_TOKEN,
	ARG_SCOPE,
	ARG_STORE_ID,
	ARG_METHOD,
	ARG_ENDPOINT,
	ARG_IP,
	ARG_COST,					/* the cost overloads (1.2) only */
	ARG_TRANSPORT				/* the transport overloads (1.2) only */
};

/*
 * Built once per backend and entry point: the result row type and the
 * extension's schema.
 */
typedef struct VerifyShape
{
	const char *name;
	int			natts;
	Oid			fn_oid;
	Oid			schema;
	TupleDesc	desc;
} VerifyShape;

static VerifyShape shape_1_0 = {"pixl_verify_token", VERIFY_NCOLS_1_0, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_legacy = {"pixl_verify_token", VERIFY_NCOLS_1_0, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_1_1 = {"pixl_verify_request", VERIFY_NCOLS_1_1, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_http = {"pixl_verify_token_http", VERIFY_NCOLS_HTTP, InvalidOid, InvalidOid, NULL};
/* the cost overloads: their own oids, so no shape is rebuilt per call */
static VerifyShape shape_cost_legacy = {"pixl_verify_token", VERIFY_NCOLS_1_0, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_cost_1_1 = {"pixl_verify_request", VERIFY_NCOLS_1_1, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_cost_http = {"pixl_verify_token_http", VERIFY_NCOLS_HTTP, InvalidOid, InvalidOid, NULL};
/* the transport overloads, likewise */
static VerifyShape shape_tr_legacy = {"pixl_verify_token", VERIFY_NCOLS_1_0, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_tr_1_1 = {"pixl_verify_request", VERIFY_NCOLS_1_1, InvalidOid, InvalidOid, NULL};
static VerifyShape shape_tr_http = {"pixl_verify_token_http", VERIFY_NCOLS_HTTP, InvalidOid, InvalidOid, NULL};

/* What a verification found out, before it becomes a row. */
typedef struct VerifyOutcome
{
	int			status;
	const char *reason;
	const PixlCachedToken *tok; /* NULL: no token row */
	bool		full;			/* 200/403/429 of a token: every column */
	bool		charged;		/* went through the rate limit */
	PixlRateDecision decision;
	int64		request_id;
	bool		has_request_id;
	TimestampTz at;
	int			scope_idx;		/* -1: no scope check */
	bool		on_standby;		/* staleness_ms was asked for, on a standby */
	int64		staleness_ms;	/* if on_standby; -1: unknown */
	int			cost;			/* 1 unless the cost overloads say more */
} VerifyOutcome;

/* What an entry point asks of verify_core(). */
typedef struct VerifyMode
{
	bool		want_staleness; /* 1.1's columns: staleness_ms */
	bool		schema_1_1;		/* usage counted as 1.1 counts it */
	bool		null_scope_any; /* 1.0's reading of a NULL scope */
} VerifyMode;

static const VerifyMode mode_1_0 = {false, false, true};
static const VerifyMode mode_legacy = {false, true, true};
static const VerifyMode mode_1_1 = {true, true, false};

PG_FUNCTION_INFO_V1(pixl_verify_token);
PG_FUNCTION_INFO_V1(pixl_verify_token_1_1);
PG_FUNCTION_INFO_V1(pixl_verify_request);
PG_FUNCTION_INFO_V1(pixl_verify_token_http);
PG_FUNCTION_INFO_V1(pixl_verify_token_cost);
PG_FUNCTION_INFO_V1(pixl_verify_request_cost);
PG_FUNCTION_INFO_V1(pixl_verify_token_http_cost);
PG_FUNCTION_INFO_V1(pixl_verify_token_transport);
PG_FUNCTION_INFO_V1(pixl_verify_request_transport);
PG_FUNCTION_INFO_V1(pixl_verify_token_http_transport);

static void
shape_init(FunctionCallInfo fcinfo, VerifyShape *shape)
{
	TupleDesc	desc;
	MemoryContext old;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != shape->natts)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s was called with a definition of %d result columns, this library expects %d",
						shape->name, desc->natts, shape->natts),
				 errhint("Run ALTER EXTENSION pixltoken UPDATE.")));
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (shape->desc != NULL)
		FreeTupleDesc(shape->desc);
	shape->desc = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(old);
	shape->schema = get_func_namespace(fcinfo->flinfo->fn_oid);
	shape->fn_oid = fcinfo->flinfo->fn_oid;
}

/* Copies at most maxbytes-1 bytes of a text argument, cut at a character. */
static void
copy_clipped(FunctionCallInfo fcinfo, int argno, char *dst, int maxbytes)
{
	struct varlena *t;
	int			len;

	dst[0] = '\0';
	if (PG_ARGISNULL(argno))
		return;
	t = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno));
	/* a slice is enough, however long a toasted argument is */
	if (VARATT_IS_EXTERNAL(t) || VARATT_IS_COMPRESSED(t))
		t = (struct varlena *) DatumGetTextPSlice(PointerGetDatum(t), 0, maxbytes);
	len = VARSIZE_ANY_EXHDR(t);
	/* what fits needs no cut (the hot path: a method, a short endpoint) */
	if (len >= maxbytes)
		len = pg_mbcliplen(VARDATA_ANY(t), len, maxbytes - 1);
	memcpy(dst, VARDATA_ANY(t), len);
	dst[len] = '\0';
}

/*
 * cost: the call's weight, counted in usage with what quota charged to the
 * period allowance (0 when it was not admitted, or has no allowance).
 * scope_idx: the scope the call required (-1: none); an admitted call
 * (200) exercised it, a refused one (403 insufficient_scope, 429) did not.
 * exposure: what the worker is to do with a token that came over plain
 * HTTP; reportable: the request id is handed out (pixl_usage_record).
 * Whether the raw record was queued.
 */
static bool
record_usage(FunctionCallInfo fcinfo, const inet *ip, int64 request_id,
			 TimestampTz at, PixlCachedToken *tok, int status, bool schema_1_1,
			 int cost, const PixlQuotaDecision *quota, int scope_idx,
			 PixlExposureAction exposure, bool reportable)
{
	PixlUsageEvent ev;
	PixlQuotaCharge charge;

	memset(&ev, 0, sizeof(ev));
	/* what a response report may refund: the charge and where it went */
	memset(&charge, 0, sizeof(charge));
	if (quota->charged > 0)
	{
		charge.charged = quota->charged;
		charge.period = quota->period_no;
		charge.counts = tok->quota_key.counts;
		charge.billing_day = tok->quota_key.billing_day;
		charge.store_key = tok->quota_key.store_allowance > 0 ?
			tok->quota_key.store_key : 0;
		charge.token_key = tok->quota_key.token_key;
	}
	ev.request_id = request_id;
	ev.at = at;
	ev.dbid = MyDatabaseId;
	ev.status = (int16) status;
	ev.cost = cost;
	ev.charged = quota->charged;
	ev.previous_secret = tok->is_previous;
	ev.exposure = (int8) exposure;
	memcpy(ev.token_id, tok->token_id, PIXL_TOKEN_ID_LEN);
	copy_clipped(fcinfo, ARG_METHOD, ev.method, PIXL_METHOD_MAX);
	copy_clipped(fcinfo, ARG_ENDPOINT, ev.endpoint, PIXL_ENDPOINT_MAX);
	/* the path, no secret: before anything is shared */
	pixl_usage_clean_key_text(ev.method, PIXL_METHOD_MAX, false);
	pixl_usage_clean_key_text(ev.endpoint, PIXL_ENDPOINT_MAX, true);
	if (ip != NULL)
	{
		ev.has_ip = true;
		memcpy(&ev.ip, VARDATA_ANY(ip),
			   Min(VARSIZE_ANY_EXHDR(ip), sizeof(inet_struct)));
	}
	/* the cache entry's link to its count entry saves the lookup */
	return pixl_usage_record(&ev, schema_1_1,
							 charge.charged > 0 ? &charge : NULL,
							 status == 200 && scope_idx >= 0 ?
							 (PixlScopeBits) 1 << scope_idx : 0,
							 tok->rate_key.store_key, &tok->usage_link,
							 reportable);
}

/*
 * The ip argument, or NULL; an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
 * with a prefix of 96 bits or more) as the IPv4 address it stands for, so
 * that an IPv4 allowlist admits it and usage rows name one address once.
 */
static inet *
normalised_ip(FunctionCallInfo fcinfo)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	inet	   *ip;
	inet	   *v4;

	if (PG_ARGISNULL(ARG_IP))
		return NULL;
	ip = PG_GETARG_INET_PP(ARG_IP);
	if (ip_family(ip) != PGSQL_AF_INET6 || ip_bits(ip) < 96 ||
		memcmp(ip_addr(ip), mapped, sizeof(mapped)) != 0)
		return ip;
	v4 = (inet *) palloc0(sizeof(inet));
	ip_family(v4) = PGSQL_AF_INET;
	ip_bits(v4) = ip_bits(ip) - 96;
	memcpy(ip_addr(v4), ip_addr(ip) + 12, 4);
	SET_INET_VARSIZE(v4);
	return v4;
}

/*
 * Is ip (normalised) inside one of the token's allowed networks?  An
 * IPv4-mapped address is also tried as given, so that an allowlist written
 * with mapped networks (::ffff:203.0.113.0/120) keeps admitting it.
 */
static bool
ip_allowed(FunctionCallInfo fcinfo, const inet *ip, const PixlCachedToken *tok)
{
	Datum		given;

	if (tok->n_allowed_ips < 0)
		return true;
	if (ip == NULL)
		return false;
	given = PG_GETARG_DATUM(ARG_IP);
	for (int i = 0; i < tok->n_allowed_ips; i++)
	{
		Datum		net = PointerGetDatum(&tok->allowed_ips[i]);

		if (DatumGetBool(DirectFunctionCall2(network_subeq, PointerGetDatum(ip), net)) ||
			((const void *) ip != DatumGetPointer(given) &&
			 DatumGetBool(DirectFunctionCall2(network_subeq, given, net))))
			return true;
	}
	return false;
}

/*
 * The transport argument of the transport overloads: true for 'http',
 * false for 'https' or NULL (unknown, as without the argument); a URI
 * scheme, so compared without regard to case.  Anything else is a bug of
 * the caller: PX057.
 */
static bool
transport_is_plain(FunctionCallInfo fcinfo)
{
	text	   *t;
	const char *p;
	int			len;

	if (PG_NARGS() <= ARG_TRANSPORT || PG_ARGISNULL(ARG_TRANSPORT))
		return false;
	t = PG_GETARG_TEXT_PP(ARG_TRANSPORT);
	p = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);
	if (len == 4 && pg_strncasecmp(p, "http", 4) == 0)
		return true;
	if (len == 5 && pg_strncasecmp(p, "https", 5) == 0)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_TRANSPORT),
			 errmsg("transport must be 'http', 'https' or NULL"),
			 errdetail("The transport is the scheme the request arrived by; NULL when the caller cannot tell."),
			 errhint("Pass 'https' for a request that came over TLS, 'http' for one that did not.")));
	return false;				/* keep the compiler quiet */
}

/*
 * A credential that came over plain HTTP (see the opening comment): the
 * answer is the same whatever tok is.  tok: the token the lookup found
 * (NULL: none, or no lookup).  A known token not yet revoked gets a usage
 * record (403) and, within the cap, the exposure for the worker.
 */
static void
insecure_transport(FunctionCallInfo fcinfo, const inet *ip,
				   const VerifyMode *mode, PixlCachedToken *tok,
				   VerifyOutcome *out)
{
	TimestampTz now = GetCurrentTimestamp();

	pixl_exposure_count_rejection();
	if (tok != NULL && !tok->revoked &&
		!(tok->is_previous && now >= tok->valid_until))
	{
		PixlQuotaDecision none;
		PixlExposureAction action;
		int64		request_id;

		memset(&none, 0, sizeof(none));
		action = pixl_exposure_admit(MyDatabaseId, tok->token_id,
									 tok->rate_key.store_key,
									 tok->insecure_notify, now);
		/* a request id for the usage row only: the answer has none */
		request_id = pixl_next_request_id(&now);
		if (!record_usage(fcinfo, ip, request_id, now, tok, 403,
						  mode->schema_1_1, out->cost, &none, -1, action, false) &&
			action != PIXL_EXPOSURE_NONE)
			pixl_exposure_unqueued(MyDatabaseId, tok->token_id);
	}
	out->status = 403;
	out->reason = "insecure_transport";
	out->tok = NULL;
	out->at = now;
	pixl_context_clear();
}

/*
 * One verification.  mode->want_staleness: fill out->on_standby and
 * out->staleness_ms (1.1's result has the column, 1.0's has not).
 */
static void
verify_core(FunctionCallInfo fcinfo, Oid schema, const VerifyMode *mode,
			VerifyOutcome *out)
{
	PixlCachedToken *tok = NULL;
	int			status;
	const char *reason;
	bool		past_bound = false;
	bool		want_staleness = mode->want_staleness;
	bool		insecure;
	inet	   *ip;

	memset(out, 0, sizeof(*out));
	out->scope_idx = -1;
	out->cost = 1;

	/* the cost overloads: a caller's bug too when out of range */
	if (PG_NARGS() > ARG_COST)
	{
		if (PG_ARGISNULL(ARG_COST) || PG_GETARG_INT32(ARG_COST) < 1 ||
			PG_GETARG_INT32(ARG_COST) > PIXL_COST_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_COST_RANGE),
					 errmsg("cost must be between 1 and %d", PIXL_COST_MAX),
					 errdetail("A call's cost is charged to the minute window and to the period allowance.")));
		out->cost = PG_GETARG_INT32(ARG_COST);
	}
	insecure = transport_is_plain(fcinfo);

	/*
	 * A caller's bug, whatever the token: raise before anything else.  "*"
	 * asks for no scope; NULL did so in 1.0, and 1.0's pixl_verify_token
	 * keeps that reading, while 1.1's functions refuse it, so that a route
	 * that forgot its scope fails closed.
	 */
	if (PG_ARGISNULL(ARG_SCOPE))
	{
		if (!mode->null_scope_any)
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_SCOPE_REQUIRED),
					 errmsg("scope must not be NULL"),
					 errdetail("A verification checks the scope its route needs."),
					 errhint("Pass the route's scope, or '*' when any valid token of the store may call it.")));
	}
	else
	{
		text	   *scope = PG_GETARG_TEXT_PP(ARG_SCOPE);

		if (VARSIZE_ANY_EXHDR(scope) != 1 || *VARDATA_ANY(scope) != '*')
		{
			out->scope_idx = pixl_scope_index(VARDATA_ANY(scope),
											  VARSIZE_ANY_EXHDR(scope));
			if (out->scope_idx < 0)
				pixl_report_unknown_scope(VARDATA_ANY(scope),
										  VARSIZE_ANY_EXHDR(scope));
		}
	}
	ip = normalised_ip(fcinfo);

	/*
	 * 1.1: how current this node's view is, for every answer, measured
	 * before the lookup (see the opening comment); with the bound, for the
	 * 503 below
	 */
	if (want_staleness)
		out->on_standby = pixl_standby_check(&out->staleness_ms, &past_bound);

	/* 1. format and checksum, without detoasting anything oversized */
	if (PG_ARGISNULL(ARG_TOKEN))
	{
		status = 401;
		reason = "missing";
	}
	else if (toast_raw_datum_size(PG_GETARG_DATUM(ARG_TOKEN)) >
			 VARHDRSZ + VERIFY_MAX_TOKEN_BYTES)
	{
		status = 401;
		reason = "malformed";
	}
	else
	{
		text	   *token = PG_GETARG_TEXT_PP(ARG_TOKEN);
		const char *p = VARDATA_ANY(token);
		size_t		len = VARSIZE_ANY_EXHDR(token);

		switch (pixl_check_shape(p, len))
		{
			case PIXL_FORMAT_MISSING:
				status = 401;
				reason = "missing";
				break;
			case PIXL_FORMAT_MALFORMED:
				status = 401;
				reason = "malformed";
				break;
			case PIXL_FORMAT_TOKEN_ID:
				status = 401;
				reason = "token_id_not_secret";
				break;
			case PIXL_FORMAT_OK:
			default:
				{
					uint8		hash[PIXL_HASH_LEN];

					/*
					 * replicas (src/verify/standby.c): a hot standby past
					 * pixltoken.max_standby_staleness refuses to vouch,
					 * touching no table, cache or limit (a bad checksum is
					 * still malformed).
					 */
					if (want_staleness ? past_bound : pixl_standby_past_bound())
					{
						status = 401;
						reason = "malformed";
						if (pixl_checksum_ok(p))
						{
							status = 503;
							reason = "stale";
						}
						break;
					}

					/*
					 * 2. the row, from the cache or the registry.  The
					 * checksum is checked on a miss only, before the load:
					 * so every hash in the cache is that of a string with a
					 * valid checksum, and a string with a wrong one differs
					 * from all of them; its SHA-256 could match a cached
					 * hash only by a SHA-256 collision.  A hit therefore
					 * proves the checksum, and garbage with a wrong checksum
					 * still answers 401 malformed after one probe of the
					 * backend's cache, touching no table.
					 */
					pixl_hash_secret(p, len, hash);
					AcceptInvalidationMessages();
					tok = pixl_token_cache_find(hash);
					if (tok == NULL)
					{
						if (!pixl_checksum_ok(p))
						{
							status = 401;
							reason = "malformed";
							break;
						}
						tok = pixl_token_cache_load(hash, schema);
					}
					status = 0;
					reason = NULL;
				}
				break;
		}
	}

	/* plain HTTP: one answer for every token, whatever the lookup found */
	if (insecure)
	{
		insecure_transport(fcinfo, ip, mode, status == 0 ? tok : NULL, out);
		return;
	}

	if (status == 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		/* 3. checks of the row that end in 401, then the allowlist */
		if (tok == NULL ||
			(tok->is_previous && now >= tok->valid_until))
		{
			status = 401;
			reason = "unknown";
			tok = NULL;
		}
		else if (tok->exposed ||
				 (!tok->revoked && pixl_exposure_marked(MyDatabaseId, tok->token_id)))
		{
			/*
			 * exposed in the registry, or over plain HTTP on this node and
			 * on its way there (exposure.c); once revoked, the mark has
			 * served (a hot standby's worker never clears it)
			 */
			status = 401;
			reason = "exposed";
			if (tok->revoked)
				pixl_exposure_clear(MyDatabaseId, tok->token_id);
		}
		else if (tok->revoked)
		{
			/* revoked otherwise meanwhile: a mark has served too */
			pixl_exposure_clear(MyDatabaseId, tok->token_id);
			status = 401;
			reason = "revoked";
		}
		else if (tok->disabled)
		{
			status = 401;
			reason = "disabled";
		}
		else if (tok->has_expiry && now >= tok->expires_at)
		{
			status = 401;
			reason = "expired";
		}
		else if (!ip_allowed(fcinfo, ip, tok))
		{
			/* no quota, no request id, no usage row: like a 401 */
			status = 403;
			reason = "ip_not_allowed";
		}
		out->at = now;
	}

	if (status == 0)
	{
		/* 4. store and scope: 403, still charged to the rate limit */
		status = 200;
		reason = "ok";
		if (!PG_ARGISNULL(ARG_STORE_ID))
		{
			text	   *store = PG_GETARG_TEXT_PP(ARG_STORE_ID);

			if (VARSIZE_ANY_EXHDR(store) != VARSIZE_ANY_EXHDR(tok->store_id) ||
				memcmp(VARDATA_ANY(store), VARDATA_ANY(tok->store_id),
					   VARSIZE_ANY_EXHDR(store)) != 0)
			{
				status = 403;
				reason = "wrong_store";
			}
		}
		if (status == 200 && out->scope_idx >= 0 &&
			(tok->scope_bits & pixl_scope_accepting_mask(out->scope_idx)) == 0)
		{
			status = 403;
			reason = "insufficient_scope";
		}

		/* 5. the rolling minute, at the request's own time */
		out->request_id = pixl_next_request_id(&out->at);
		out->has_request_id = true;
		/*
		 * the cache hashed the key once, with the store for its share, and
		 * keeps its link to the slot
		 */
		pixl_rate_limit_check(&tok->rate_key, tok->rate_limit, out->at,
							  status == 200 ? PIXL_RATE_ADMIT : PIXL_RATE_CHARGE,
							  out->cost,
							  pixl_quota_wanted(&tok->quota_key) ? &tok->quota_key : NULL,
							  &out->decision);
		out->charged = true;
		if (!out->decision.accepted)
		{
			status = 429;
			reason = out->decision.quota.exceeded ? "quota_exceeded" : "rate_limited";
		}
		out->full = true;

		(void) record_usage(fcinfo, ip, out->request_id, out->at, tok, status,
							mode->schema_1_1, out->cost, &out->decision.quota,
							out->scope_idx, PIXL_EXPOSURE_NONE, true);
	}

	out->status = status;
	out->reason = reason;
	out->tok = tok;

	/* the transaction's RLS context */
	if (status == 200)
		pixl_context_set(tok->token_id, tok->store_id);
	else
		pixl_context_clear();
}

/* The columns 1.0 and 1.1 share (request_id is left to the caller). */
static void
fill_common(const VerifyOutcome *out, Datum *values, bool *nulls)
{
	const PixlCachedToken *tok = out->tok;

	nulls[COL_STATUS] = false;
	values[COL_STATUS] = Int32GetDatum(out->status);
	nulls[COL_REASON] = false;
	values[COL_REASON] = CStringGetTextDatum(out->reason);
	if (tok == NULL)
		return;
	nulls[COL_TOKEN_ID] = false;
	values[COL_TOKEN_ID] = PointerGetDatum(cstring_to_text_with_len(tok->token_id, PIXL_TOKEN_ID_LEN));
	nulls[COL_STORE_ID] = false;
	values[COL_STORE_ID] = PointerGetDatum(tok->store_id);
	if (!out->full)
		return;
	nulls[COL_MODE] = false;
	values[COL_MODE] = CStringGetTextDatum(pixl_mode_name(tok->mode));
	nulls[COL_SCOPES] = false;
	values[COL_SCOPES] = PointerGetDatum(tok->scopes);
	nulls[COL_RATE_LIMIT] = false;
	values[COL_RATE_LIMIT] = Int32GetDatum(out->decision.limit);	/* node's quota */
	nulls[COL_REMAINING] = false;
	values[COL_REMAINING] = Int32GetDatum(out->decision.remaining);
	nulls[COL_RESET_AT] = false;
	values[COL_RESET_AT] = TimestampTzGetDatum(out->decision.reset_at);
	if (out->status == 429)
	{
		nulls[COL_RETRY_AFTER_MS] = false;
		values[COL_RETRY_AFTER_MS] = Int32GetDatum(out->decision.retry_after_ms);
	}
}

/* 1.1's columns: request_id as text, metadata, previous_secret_used, staleness_ms. */
static void
fill_1_1(const VerifyOutcome *out, Datum *values, bool *nulls)
{
	fill_common(out, values, nulls);
	if (out->has_request_id)
	{
		nulls[COL_REQUEST_ID] = false;
		values[COL_REQUEST_ID] = PointerGetDatum(pixl_request_id_text(out->request_id));
	}
	if (out->tok != NULL)
	{
		nulls[COL_PREVIOUS_SECRET_USED] = false;
		values[COL_PREVIOUS_SECRET_USED] = BoolGetDatum(out->tok->is_previous);
		if (out->full && out->tok->metadata != NULL)
		{
			nulls[COL_METADATA] = false;
			values[COL_METADATA] = PointerGetDatum(out->tok->metadata);
		}
	}
	if (out->on_standby && out->staleness_ms >= 0)
	{
		nulls[COL_STALENESS_MS] = false;
		values[COL_STALENESS_MS] = Int64GetDatum(out->staleness_ms);
	}
}

/* One row, materialized; the executor frees the descriptor we hand it. */
static void
return_row(FunctionCallInfo fcinfo, TupleDesc desc, Datum *values, bool *nulls)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	Tuplestorestate *tupstore;

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupstore = tuplestore_begin_heap(false, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tupstore;
	rsinfo->setDesc = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(old);
	tuplestore_putvalues(tupstore, desc, values, nulls);
}

static void
enter(FunctionCallInfo fcinfo, VerifyShape *shape)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	pixl_require_preload();
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (shape->desc == NULL || shape->fn_oid != fcinfo->flinfo->fn_oid)
		shape_init(fcinfo, shape);
}

/* 1.0's result type: eleven columns, request_id bigint (sealed). */
static Datum
verify_token_1_0_shape(FunctionCallInfo fcinfo, VerifyShape *shape,
					   const VerifyMode *mode)
{
	Datum		values[VERIFY_NCOLS_1_0];
	bool		nulls[VERIFY_NCOLS_1_0];
	VerifyOutcome out;

	enter(fcinfo, shape);
	verify_core(fcinfo, shape->schema, mode, &out);
	memset(nulls, true, sizeof(nulls));
	fill_common(&out, values, nulls);
	if (out.has_request_id)
	{
		nulls[COL_REQUEST_ID] = false;
		values[COL_REQUEST_ID] = Int64GetDatum(pixl_request_id_seal(out.request_id));
	}
	return_row(fcinfo, shape->desc, values, nulls);
	return (Datum) 0;
}

/* 1.0's definition of pixl_verify_token (a database not yet updated). */
Datum
pixl_verify_token(PG_FUNCTION_ARGS)
{
	return verify_token_1_0_shape(fcinfo, &shape_1_0, &mode_1_0);
}

/* 1.1's definition of pixl_verify_token: 1.0's result, 1.1's counting. */
Datum
pixl_verify_token_1_1(PG_FUNCTION_ARGS)
{
	return verify_token_1_0_shape(fcinfo, &shape_legacy, &mode_legacy);
}

static Datum
verify_request_shape(FunctionCallInfo fcinfo, VerifyShape *shape)
{
	Datum		values[VERIFY_NCOLS_1_1];
	bool		nulls[VERIFY_NCOLS_1_1];
	VerifyOutcome out;

	enter(fcinfo, shape);
	verify_core(fcinfo, shape->schema, &mode_1_1, &out);
	memset(nulls, true, sizeof(nulls));
	fill_1_1(&out, values, nulls);
	return_row(fcinfo, shape->desc, values, nulls);
	return (Datum) 0;
}

Datum
pixl_verify_request(PG_FUNCTION_ARGS)
{
	return verify_request_shape(fcinfo, &shape_1_1);
}

static Datum
verify_http_shape(FunctionCallInfo fcinfo, VerifyShape *shape)
{
	Datum		values[VERIFY_NCOLS_HTTP];
	bool		nulls[VERIFY_NCOLS_HTTP];
	VerifyOutcome out;
	PixlHttpFacts facts;

	enter(fcinfo, shape);
	verify_core(fcinfo, shape->schema, &mode_1_1, &out);
	memset(nulls, true, sizeof(nulls));
	fill_1_1(&out, values, nulls);

	memset(&facts, 0, sizeof(facts));
	facts.status = out.status;
	facts.reason = out.reason;
	facts.scope = out.scope_idx >= 0 ? TextDatumGetCString(PG_GETARG_DATUM(ARG_SCOPE)) : NULL;
	facts.disabled_inactive = out.tok != NULL && out.tok->disabled_inactive;
	facts.charged = out.charged;
	facts.rate_limit = out.charged ? out.decision.limit : 0;	/* node's quota */
	facts.remaining = out.decision.remaining;
	facts.reset_at = out.decision.reset_at;
	facts.retry_after_ms = out.decision.retry_after_ms;
	facts.retry_after_s = out.decision.retry_after_s;
	facts.now = out.at ? out.at : GetCurrentTimestamp();
	if (out.charged && out.decision.quota.applies)
	{
		facts.quota = true;
		facts.quota_allowance = out.decision.quota.allowance;
		facts.quota_remaining = out.decision.quota.remaining;
		facts.quota_period_start = out.decision.quota.period_start;
		facts.quota_period_end = out.decision.quota.period_end;
		facts.quota_period_left_s = out.decision.quota.period_left_s;
		facts.quota_exceeded = out.decision.quota.exceeded;
		facts.quota_table_full = out.decision.quota.table_full;
	}
	pixl_http_answer(&facts, values + COL_HTTP_FIRST, nulls + COL_HTTP_FIRST);

	return_row(fcinfo, shape->desc, values, nulls);
	return (Datum) 0;
}

Datum
pixl_verify_token_http(PG_FUNCTION_ARGS)
{
	return verify_http_shape(fcinfo, &shape_http);
}

/* The cost overloads (1.2): the same answers, cost charged. */
Datum
pixl_verify_token_cost(PG_FUNCTION_ARGS)
{
	return verify_token_1_0_shape(fcinfo, &shape_cost_legacy, &mode_legacy);
}

Datum
pixl_verify_request_cost(PG_FUNCTION_ARGS)
{
	return verify_request_shape(fcinfo, &shape_cost_1_1);
}

Datum
pixl_verify_token_http_cost(PG_FUNCTION_ARGS)
{
	return verify_http_shape(fcinfo, &shape_cost_http);
}

/* The transport overloads (1.2): the same answers, and plain HTTP's 403. */
Datum
pixl_verify_token_transport(PG_FUNCTION_ARGS)
{
	return verify_token_1_0_shape(fcinfo, &shape_tr_legacy, &mode_legacy);
}

Datum
pixl_verify_request_transport(PG_FUNCTION_ARGS)
{
	return verify_request_shape(fcinfo, &shape_tr_1_1);
}

Datum
pixl_verify_token_http_transport(PG_FUNCTION_ARGS)
{
	return verify_http_shape(fcinfo, &shape_tr_http);
}
