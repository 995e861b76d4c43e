/* STUB: to be replaced by the rate-limit module. */
#include "postgres.h"
#include "rate_limit.h"

void pixl_rate_limit_shmem_request(void) {}
void pixl_rate_limit_shmem_startup(void) {}

void
pixl_rate_limit_check(const PixlRateKey *key, int limit, TimestampTz now,
					  PixlRateAction action, PixlRateDecision *decision)
{
	(void) key; (void) now; (void) action;
	decision->accepted = true;
	decision->remaining = limit;
	decision->reset_at = now;
	decision->retry_after_ms = 0;
}

int64 pixl_rate_limit_tracked_tokens(void) { return 0; }
int64 pixl_rate_limit_table_full_rejections(void) { return 0; }
