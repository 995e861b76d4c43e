/* STUB: to be replaced by the usage-queue module. */
#include "postgres.h"
#include "utils/timestamp.h"
#include "usage_queue.h"

void pixl_usage_queue_shmem_request(void) {}
void pixl_usage_queue_shmem_startup(void) {}

int64
pixl_next_request_id(TimestampTz *at)
{
	static int64 last = 0;
	*at = GetCurrentTimestamp();
	last = Max(last + 1, *at * 16);
	return last;
}

void
pixl_usage_record(const PixlUsageEvent *event)
{
	(void) event;
}
