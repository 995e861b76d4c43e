/*-------------------------------------------------------------------------
 *
 * management.c
 *		SQL-callable C helpers of token management: randomness, hashing,
 *		format and scopes.  The transactional logic around them (validation,
 *		audit, privileges) is plain SQL in schema/code/30_tokens.sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "common/scopes.h"
#include "common/token_format.h"

PG_FUNCTION_INFO_V1(pixl_assert_preloaded);
PG_FUNCTION_INFO_V1(pixl_new_token_id);
PG_FUNCTION_INFO_V1(pixl_new_secret);
PG_FUNCTION_INFO_V1(pixl_secret_hash);
PG_FUNCTION_INFO_V1(pixl_token_checksum);
PG_FUNCTION_INFO_V1(pixl_token_format);
PG_FUNCTION_INFO_V1(pixl_scope_bits);
PG_FUNCTION_INFO_V1(pixl_scope_names);

Datum
pixl_assert_preloaded(PG_FUNCTION_ARGS)
{
	pixl_require_preload();
	PG_RETURN_VOID();
}

Datum
pixl_new_token_id(PG_FUNCTION_ARGS)
{
	char		buf[PIXL_TOKEN_ID_LEN];

	pixl_require_preload();
	pixl_generate_token_id(buf);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf, PIXL_TOKEN_ID_LEN));
}

/* (token, secret_hash, hint) for a new secret of the given mode. */
Datum
pixl_new_secret(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	char		secret[PIXL_SECRET_LEN + 1];
	uint8		hash[PIXL_HASH_LEN];
	bytea	   *hash_datum;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	PixlTokenMode mode;

	pixl_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_UNKNOWN_MODE),
				 errmsg("token mode must not be NULL"),
				 errhint("Valid modes are live and test.")));
	mode = pixl_parse_mode(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	pixl_generate_secret(mode, secret);
	secret[PIXL_SECRET_LEN] = '\0';
	pixl_hash_secret(secret, PIXL_SECRET_LEN, hash);

	hash_datum = (bytea *) palloc(VARHDRSZ + PIXL_HASH_LEN);
	SET_VARSIZE(hash_datum, VARHDRSZ + PIXL_HASH_LEN);
	memcpy(VARDATA(hash_datum), hash, PIXL_HASH_LEN);

	values[0] = PointerGetDatum(cstring_to_text_with_len(secret, PIXL_SECRET_LEN));
	values[1] = PointerGetDatum(hash_datum);
	values[2] = CStringGetTextDatum(pixl_secret_hint(secret));
	explicit_bzero(secret, sizeof(secret));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

Datum
pixl_secret_hash(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	bytea	   *result = (bytea *) palloc(VARHDRSZ + PIXL_HASH_LEN);

	pixl_require_preload();
	SET_VARSIZE(result, VARHDRSZ + PIXL_HASH_LEN);
	pixl_hash_secret(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
					 (uint8 *) VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

Datum
pixl_token_checksum(PG_FUNCTION_ARGS)
{
	text	   *data = PG_GETARG_TEXT_PP(0);
	char		sum[PIXL_CHECKSUM_LEN];

	pixl_require_preload();
	pixl_checksum(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), sum);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(sum, PIXL_CHECKSUM_LEN));
}

Datum
pixl_token_format(PG_FUNCTION_ARGS)
{
	text	   *token;

	pixl_require_preload();
	if (PG_ARGISNULL(0))
		PG_RETURN_TEXT_P(cstring_to_text("missing"));
	token = PG_GETARG_TEXT_PP(0);
	switch (pixl_check_format(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)))
	{
		case PIXL_FORMAT_OK:
			PG_RETURN_TEXT_P(cstring_to_text("ok"));
		case PIXL_FORMAT_MISSING:
			PG_RETURN_TEXT_P(cstring_to_text("missing"));
		case PIXL_FORMAT_TOKEN_ID:
			PG_RETURN_TEXT_P(cstring_to_text("token_id_not_secret"));
		case PIXL_FORMAT_MALFORMED:
			break;
	}
	PG_RETURN_TEXT_P(cstring_to_text("malformed"));
}

Datum
pixl_scope_bits(PG_FUNCTION_ARGS)
{
	pixl_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_EMPTY_SCOPES),
				 errmsg("a token needs at least one scope"),
				 errhint("Pass scopes as a text array, e.g. ARRAY['products:read'].")));
	PG_RETURN_INT32((int32) pixl_scope_bits_from_array(PG_GETARG_ARRAYTYPE_P(0)));
}

Datum
pixl_scope_names(PG_FUNCTION_ARGS)
{
	pixl_require_preload();
	PG_RETURN_ARRAYTYPE_P(pixl_scope_array_from_bits((PixlScopeBits) PG_GETARG_INT32(0)));
}

/*
 * pixl_leaked_secret_hash(secret): the SHA-256 of a reported leaked secret,
 * after checking its format and checksum.  Raises PX078 otherwise, without
 * the statement in the server log: it carries (nearly) a secret.
 */
PG_FUNCTION_INFO_V1(pixl_leaked_secret_hash);

Datum
pixl_leaked_secret_hash(PG_FUNCTION_ARGS)
{
	text	   *token;
	bytea	   *result;
	PixlFormatVerdict verdict = PIXL_FORMAT_MISSING;

	pixl_require_preload();
	if (!PG_ARGISNULL(0))
	{
		token = PG_GETARG_TEXT_PP(0);
		verdict = pixl_check_format(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token));
	}
	if (verdict != PIXL_FORMAT_OK)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_LEAKED_SECRET),
				 errmsg("the reported secret is not a well-formed pixltoken secret (%s)",
						verdict == PIXL_FORMAT_MISSING ? "missing" :
						verdict == PIXL_FORMAT_TOKEN_ID ? "a token id" :
						"wrong prefix, length, alphabet or checksum"),
				 errhint("Report the whole secret (\"sk_live_\" or \"sk_test_\", 32 characters and a 6-character checksum), or its SHA-256 as bytea; revoke a token by id with pixl_revoke_token()."),
				 errhidestmt(true)));
	result = (bytea *) palloc(VARHDRSZ + PIXL_HASH_LEN);
	SET_VARSIZE(result, VARHDRSZ + PIXL_HASH_LEN);
	pixl_hash_secret(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
					 (uint8 *) VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}
