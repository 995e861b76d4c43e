/*-------------------------------------------------------------------------
 *
 * subtransaction.c
 *		Running a piece of work in an internal subtransaction.
 *
 * The usage worker and pixl_ingest_usage keep one bad item from failing a
 * whole batch, and maintenance from stopping the flushing, by running them
 * in subtransactions; this is the one place that knows the dance around
 * BeginInternalSubTransaction (the pattern of PL/pgSQL's exception blocks).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/resowner.h"

#include "common/subtransaction.h"

ErrorData *
pixl_try_subtransaction(void (*work) (void *arg), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	return edata;
}
