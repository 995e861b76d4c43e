/*-------------------------------------------------------------------------
 *
 * usage_held.h
 *		How many verifications each database's shared-memory counts hold,
 *		in a file mapping that outlives a crash, so that what a crash
 *		discards is counted.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_HELD_H
#define PIXL_USAGE_HELD_H

#include "postgres.h"

/*
 * Called with AddinShmemInitLock held (pixltoken.c), after the counts
 * (usage_aggregate.c) and the stats (usage_stats.c): the postmaster counts
 * what the last run held and this start did not load back as lost.
 */
extern void pixl_usage_held_shmem_startup(void);

/* One verification was added to ring idx's database's counts. */
extern void pixl_usage_held_add(int idx, Oid dbid);

/* n verifications left ring idx's counts (written, spooled or discarded). */
extern void pixl_usage_held_sub(int idx, int64 n);

#endif							/* PIXL_USAGE_HELD_H */
