/*-------------------------------------------------------------------------
 *
 * http_answer.c
 *		Finished HTTP header values and problem bodies for a verification,
 *		computed where the facts (and the clock) are.
 *
 *	- WWW-Authenticate (RFC 6750 section 3): `Bearer realm="..."` alone when
 *	  no token was sent; `error="invalid_token"` and an error_description on
 *	  every other 401; `error="insufficient_scope"` with `scope="..."` on a
 *	  403 insufficient_scope.  Other 403s and 429s have no challenge; nor
 *	  has 403 insecure_transport (a request over plain HTTP): a challenge
 *	  would invite the client to send its credentials again the same way
 *	  (draft-ietf-httpapi-privacy), and its answer is the same whatever
 *	  token came.
 *	- RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11):
 *	  `"default";q=<limit>;w=60` and `"default";r=<remaining>;t=<seconds>`
 *	  (q: the limit this node enforces, its share of the token's, rate_limit.c),
 *	  t the whole seconds until remaining next grows, rounded up, on the
 *	  database clock; for every answer that went through the rate limit
 *	  (200, 403 wrong_store / insufficient_scope, 429).  One model, one
 *	  rounding: the window of rate_limit.c, where a request leaves at the
 *	  end of the 61st whole second after its own, so t may be 61 with w=60
 *	  (never more), and on a 429 t and Retry-After are the same number.
 *	- With a period allowance (quota.c), a second RateLimit-Policy item
 *	  `"monthly";q=<allowance>;w=<the period's seconds>`, and RateLimit
 *	  names the binding policy: on a 429 the one that refused (the
 *	  allowance's when both did), else the one with fewer calls remaining
 *	  (the minute's on a tie), `"monthly";r=<remaining>;t=<seconds to the
 *	  period's end>` for the allowance.
 *	- Retry-After (RFC 9110): on 429 the t of RateLimit, at least 1 (the
 *	  wait of retry_after_ms rounded up to whole seconds); 1 on a 503
 *	  `stale` (a hot standby too far behind its primary, standby.c).
 *	- An RFC 9457 problem body for every non-200: type (the base URI setting
 *	  followed by the reason), title, status, detail, and the reason.  No
 *	  detail ever holds a secret, a token id or a store id.  A token
 *	  disabled for inactivity (reason 'inactive', set by the hygiene sweep)
 *	  says so in the detail; other disable reasons are free text a store
 *	  admin typed and are never shown.
 *
 * The realm is checked when set: it is copied into a quoted string, so it
 * may hold no '"', '\' or control character.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "common/node.h"
#include "verify/http_answer.h"
#include "verify/rate_limit.h"

#define RATE_WINDOW_S	60

static char *http_realm = NULL;
static char *problem_base_uri = NULL;

typedef struct ReasonText
{
	const char *reason;
	const char *title;
	const char *detail;			/* insufficient_scope and rate_limited add more */
} ReasonText;

static const ReasonText reason_texts[] = {
	{"missing", "Missing token", "The request carries no API token."},
	{"malformed", "Malformed token", "The API token is not well-formed: its prefix, length, alphabet or checksum is wrong."},
	{"token_id_not_secret", "Token id instead of secret", "A token id was sent where the token's secret is expected."},
	{"unknown", "Unknown token", "The API token is not known."},
	{"expired", "Expired token", "The API token has expired."},
	{"revoked", "Revoked token", "The API token has been revoked."},
	{"disabled", "Disabled token", "The API token is disabled."},
	{"exposed", "Exposed token", "The API token was exposed (reported as leaked, or sent over plain HTTP) and has been revoked: create a new token, and send it over HTTPS only."},
	{"insufficient_scope", "Insufficient scope", "The API token lacks the required scope."},
	{"wrong_store", "Wrong store", "The API token does not belong to the requested store."},
	{"ip_not_allowed", "Address not allowed", "The API token may not be used from this address."},
	{"rate_limited", "Rate limit exceeded", "The API token's rate limit is exhausted."},
	{"quota_exceeded", "Quota exceeded", "The allowance of this period is used up."},
	{"insecure_transport", "HTTPS required", "The request came over plain HTTP, which exposes its credentials: send API requests over HTTPS only. A token sent over plain HTTP must be treated as exposed and may have been revoked."},
	{"stale", "Replica too far behind", "This database replica is too far behind its primary to vouch for API tokens; the token may well be valid: retry, preferably on another node."},
};

static bool
check_realm(char **newval, void **extra, GucSource source)
{
	for (const char *p = *newval; *p; p++)
	{
		if (*p == '"' || *p == '\\' || (unsigned char) *p < 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("The realm is sent as a quoted string: no double quote, backslash or control character.");
			return false;
		}
	}
	return true;
}

/*
 * What clients are told: superusers only (a database owner could otherwise
 * ALTER DATABASE ... SET a base URI that points every app session's
 * problem types at a site of its choosing).
 */
void
pixl_http_init(void)
{
	DefineCustomStringVariable("pixltoken.http_realm",
							   "Realm of the WWW-Authenticate challenges of pixl_verify_token_http().",
							   NULL,
							   &http_realm,
							   "api",
							   PGC_SUSET,
							   0,
							   check_realm, NULL, NULL);
	DefineCustomStringVariable("pixltoken.problem_base_uri",
							   "Prefix of the type URI of the problem bodies of pixl_verify_token_http(); the reason is appended.",
							   NULL,
							   &problem_base_uri,
							   "urn:pixltoken:problem:",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}

static const ReasonText *
reason_text(const char *reason)
{
	for (size_t i = 0; i < lengthof(reason_texts); i++)
	{
		if (strcmp(reason_texts[i].reason, reason) == 0)
			return &reason_texts[i];
	}
	return NULL;
}

static int
ceil_seconds(int64 usec)
{
	if (usec <= 0)
		return 0;
	return (int) ((usec + USECS_PER_SEC - 1) / USECS_PER_SEC);
}

void
pixl_http_answer(const PixlHttpFacts *f, Datum *values, bool *nulls)
{
	const ReasonText *rt = reason_text(f->reason);
	StringInfoData buf;
	int			retry_s = f->retry_after_s > 0 ? f->retry_after_s :
		ceil_seconds((int64) f->retry_after_ms * 1000);
	int			t = 0;

	for (int i = 0; i < PIXL_HTTP_NCOLS; i++)
		nulls[i] = true;

	/* WWW-Authenticate */
	if (f->status == 401 || (f->status == 403 &&
							 strcmp(f->reason, "insufficient_scope") == 0))
	{
		initStringInfo(&buf);
		appendStringInfo(&buf, "Bearer realm=\"%s\"", http_realm);
		if (f->status == 401 && strcmp(f->reason, "missing") != 0)
			appendStringInfo(&buf, ", error=\"invalid_token\", error_description=\"%s\"",
							 rt ? rt->detail : "The API token is not valid.");
		else if (f->status == 403)
		{
			appendStringInfoString(&buf, ", error=\"insufficient_scope\", error_description=\"The API token lacks the required scope.\"");
			if (f->scope)
				appendStringInfo(&buf, ", scope=\"%s\"", f->scope);
		}
		nulls[0] = false;
		values[0] = CStringGetTextDatum(buf.data);
	}

	/* RateLimit-Policy and RateLimit */
	if (f->charged)
	{
		/*
		 * a 429's reset_at is the moment it would be admitted, the same
		 * moment as retry_after_ms: one number for both headers
		 */
		t = ceil_seconds(f->reset_at - f->now);
		if (f->status == 429)
		{
			retry_s = Max(retry_s, 1);
			t = retry_s;
		}
		nulls[1] = false;
		nulls[2] = false;
		if (!f->quota)
			values[1] = CStringGetTextDatum(psprintf("\"default\";q=%d;w=%d",
													 f->rate_limit, RATE_WINDOW_S));
		else
			values[1] = CStringGetTextDatum(psprintf("\"default\";q=%d;w=%d, \"monthly\";q=" INT64_FORMAT ";w=%d",
													 f->rate_limit, RATE_WINDOW_S,
													 f->quota_allowance,
													 ceil_seconds(f->quota_period_end - f->quota_period_start)));
		if (f->quota &&
			(f->quota_exceeded ||
			 (f->status != 429 && f->quota_remaining < (int64) Max(f->remaining, 0))))
		{
			int			qt = f->quota_exceeded ? Max(retry_s, 1) :
				f->quota_period_left_s;

			values[2] = CStringGetTextDatum(psprintf("\"monthly\";r=" INT64_FORMAT ";t=%d",
													 Max(f->quota_remaining, 0), qt));
		}
		else
			values[2] = CStringGetTextDatum(psprintf("\"default\";r=%d;t=%d",
													 Max(f->remaining, 0), t));
	}

	/* Retry-After */
	if (f->status == 429)
	{
		nulls[3] = false;
		values[3] = CStringGetTextDatum(psprintf("%d", Max(retry_s, 1)));
	}
	else if (f->status == 503)
	{
		/* a standby past pixltoken.max_standby_staleness (standby.c) */
		nulls[3] = false;
		values[3] = CStringGetTextDatum("1");
	}

	/* problem+json */
	if (f->status != 200)
	{
		char	   *detail;

		if (strcmp(f->reason, "insufficient_scope") == 0 && f->scope)
			detail = psprintf("The API token lacks the scope %s.", f->scope);
		else if (strcmp(f->reason, "rate_limited") == 0 && f->rate_limit == 0)
			detail = psprintf("This node admits none of the API token's requests: its share of the token's rate limit is below one request per %d seconds; retry on another node.",
							  RATE_WINDOW_S);
		else if (strcmp(f->reason, "rate_limited") == 0 &&
				 pixl_rate_limit_share < 1.0)
			detail = psprintf("This node's share of the API token's rate limit, %d requests per %d seconds, is exhausted; retry in %d seconds, or on another node.",
							  f->rate_limit, RATE_WINDOW_S, Max(retry_s, 1));
		else if (strcmp(f->reason, "quota_exceeded") == 0 && f->quota_table_full)
			detail = psprintf("This node cannot keep count of the allowance right now; retry in %d seconds.",
							  Max(retry_s, 1));
		else if (strcmp(f->reason, "quota_exceeded") == 0)
			detail = psprintf("The allowance of " INT64_FORMAT " calls for this period is used up; it renews in %d seconds.",
							  f->quota_allowance, Max(retry_s, 1));
		else if (strcmp(f->reason, "rate_limited") == 0)
			detail = psprintf("The API token's rate limit of %d requests per %d seconds is exhausted; retry in %d seconds.",
							  f->rate_limit, RATE_WINDOW_S, Max(retry_s, 1));
		else if (strcmp(f->reason, "disabled") == 0 && f->disabled_inactive)
			detail = pstrdup("The API token is disabled: reason inactive (it was not used for the period its store's hygiene policy allows); a store admin can enable it again.");
		else
			detail = pstrdup(rt ? rt->detail : "The API token was not accepted.");

		initStringInfo(&buf);
		appendStringInfoString(&buf, "{\"type\": ");
		{
			char	   *type = psprintf("%s%s", problem_base_uri, f->reason);

			escape_json(&buf, type);
		}
		appendStringInfoString(&buf, ", \"title\": ");
		escape_json(&buf, rt ? rt->title : f->reason);
		appendStringInfo(&buf, ", \"status\": %d, \"detail\": ", f->status);
		escape_json(&buf, detail);
		appendStringInfoString(&buf, ", \"reason\": ");
		escape_json(&buf, f->reason);
		appendStringInfoChar(&buf, '}');
		nulls[4] = false;
		values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	}
}
