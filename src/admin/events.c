/*-------------------------------------------------------------------------
 *
 * events.c
 *		Settings of the lifecycle events' outbox (schema/code/37_events.sql)
 *		and pixl_webhook_signature(), the Standard Webhooks signature of a
 *		message, computed with PostgreSQL's own HMAC (common/hmac.h).
 *
 * The endpoint secret is an argument, never kept: no table, setting or
 * message holds it, errors about it never quote it, and no error of this
 * function logs the statement (whose text may hold the secret).  The decoded key
 * sits in a buffer of this frame until the HMAC context has taken it, and
 * is wiped then (pg_hmac_free clears the context's copy).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "admin/events.h"
#include "common/errcodes.h"

PG_FUNCTION_INFO_V1(pixl_webhook_signature);

/* the Standard Webhooks rule: a key of 24 to 64 random bytes */
#define PIXL_WEBHOOK_KEY_MIN	24
#define PIXL_WEBHOOK_KEY_MAX	64
#define PIXL_WEBHOOK_PREFIX		"whsec_"
#define PIXL_WEBHOOK_ID_MAX		256

static int	event_retention_min = 30 * 24 * 60;
static bool event_notify = true;

static void webhook_input_error(const char *message, const char *hint) pg_attribute_noreturn();

void
pixl_events_init(void)
{
	DefineCustomIntVariable("pixltoken.event_retention",
							"Lifecycle events (pixl_events) older than this are dropped, with their undelivered and dead deliveries.",
							"Dropped a UTC day at a time by pixl_events_maintenance(), which the usage worker calls every minute.",
							&event_retention_min,
							30 * 24 * 60, 24 * 60, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("pixltoken.event_notify",
							 "Whether a transaction that records a lifecycle event sends the NOTIFY pixltoken wake-up.",
							 "Off: consumers poll; commits of changes no longer queue on the server's notification lock.",
							 &event_notify,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

/*
 * Errors of this function do not log the statement: its text may hold the
 * secret as a literal.
 */
static void
webhook_input_error(const char *message, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_WEBHOOK_INPUT),
			 errmsg("%s", message),
			 errhint("%s", hint),
			 errhidestmt(true)));
}

/*
 * pixl_webhook_signature(secret text, msg_id text, ts bigint, payload text)
 * -> text: 'v1,' and the base64 of HMAC-SHA256(key, msg_id.ts.payload),
 * key being the base64-decoded secret after its optional "whsec_" prefix.
 */
Datum
pixl_webhook_signature(PG_FUNCTION_ARGS)
{
	text	   *secret_t;
	text	   *id_t;
	text	   *payload_t;
	int64		ts;
	const char *secret;
	int			secret_len;
	char		key[PIXL_WEBHOOK_KEY_MAX * 2];
	int			key_len;
	char		tsbuf[32];
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char		out[3 + 64];
	int			out_len;
	pg_hmac_ctx *ctx;
	bool		ok;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_WEBHOOK_SECRET),
				 errmsg("webhook secret is NULL"),
				 errhint("Pass the endpoint's secret, \"whsec_\" followed by the base64 of 24 to 64 random bytes."),
				 errhidestmt(true)));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		webhook_input_error("webhook message id, timestamp and payload are required",
							"Pass the event's webhook_id, the webhook-timestamp in seconds since 1970 and the exact body sent.");

	secret_t = PG_GETARG_TEXT_PP(0);
	id_t = PG_GETARG_TEXT_PP(1);
	ts = PG_GETARG_INT64(2);
	payload_t = PG_GETARG_TEXT_PP(3);

	if (VARSIZE_ANY_EXHDR(id_t) < 1 || VARSIZE_ANY_EXHDR(id_t) > PIXL_WEBHOOK_ID_MAX)
		webhook_input_error("invalid webhook message id",
							"A message id is 1 to 256 bytes, such as the event's webhook_id.");
	if (ts < 0)
		webhook_input_error("invalid webhook timestamp",
							"A webhook timestamp is the number of seconds since 1970-01-01 00:00 UTC.");

	secret = VARDATA_ANY(secret_t);
	secret_len = VARSIZE_ANY_EXHDR(secret_t);
	if (secret_len >= (int) strlen(PIXL_WEBHOOK_PREFIX) &&
		memcmp(secret, PIXL_WEBHOOK_PREFIX, strlen(PIXL_WEBHOOK_PREFIX)) == 0)
	{
		secret += strlen(PIXL_WEBHOOK_PREFIX);
		secret_len -= strlen(PIXL_WEBHOOK_PREFIX);
	}
	/* a base64 text longer than this cannot decode to at most 64 bytes */
	key_len = -1;
	if (secret_len > 0 && pg_b64_dec_len(secret_len) <= (int) sizeof(key))
		key_len = pg_b64_decode(secret, secret_len, key, sizeof(key));
	if (key_len < PIXL_WEBHOOK_KEY_MIN || key_len > PIXL_WEBHOOK_KEY_MAX)
	{
		explicit_bzero(key, sizeof(key));
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_WEBHOOK_SECRET),
				 errmsg("invalid webhook secret"),
				 errdetail("It is not the base64 of 24 to 64 bytes (its text is not shown)."),
				 errhint("Use the endpoint's secret: \"whsec_\" followed by the base64 of 24 to 64 random bytes."),
				 errhidestmt(true)));
	}

	snprintf(tsbuf, sizeof(tsbuf), INT64_FORMAT, ts);

	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
	{
		explicit_bzero(key, sizeof(key));
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errhidestmt(true)));
	}
	ok = pg_hmac_init(ctx, (const uint8 *) key, key_len) == 0;
	explicit_bzero(key, sizeof(key));
	ok = ok &&
		pg_hmac_update(ctx, (const uint8 *) VARDATA_ANY(id_t), VARSIZE_ANY_EXHDR(id_t)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) ".", 1) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) tsbuf, strlen(tsbuf)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) ".", 1) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) VARDATA_ANY(payload_t), VARSIZE_ANY_EXHDR(payload_t)) == 0 &&
		pg_hmac_final(ctx, mac, sizeof(mac)) == 0;
	if (!ok)
	{
		const char *why = pstrdup(pg_hmac_error(ctx));

		pg_hmac_free(ctx);
		ereport(ERROR,
				(errmsg_internal("could not compute HMAC-SHA256: %s", why),
				 errhidestmt(true)));
	}
	pg_hmac_free(ctx);

	memcpy(out, "v1,", 3);
	out_len = pg_b64_encode((const char *) mac, sizeof(mac), out + 3, sizeof(out) - 3);
	if (out_len < 0)
		elog(ERROR, "could not encode the signature as base64");
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, 3 + out_len));
}
