/* STUB: to be replaced by the token-cache module. */
#include "postgres.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/rel.h"

#include "pixltoken.h"

PG_FUNCTION_INFO_V1(pixl_invalidate_token_cache);

Datum
pixl_invalidate_token_cache(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pixl_invalidate_token_cache: not called by trigger manager");
	CacheInvalidateRelcache(trigdata->tg_relation);
	PG_RETURN_POINTER(NULL);
}
