/*-------------------------------------------------------------------------
 *
 * request_id.c
 *		Request ids of verifications, and their opaque text form.
 *
 * PLACEHOLDER until the usage pipeline work replaces it: the text form is
 * the decimal id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "request_id.h"

text *
pixl_request_id_text(int64 request_id)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT, request_id);
	return cstring_to_text(buf);
}
