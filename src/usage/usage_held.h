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

/*
 * Verifications of ring idx's database that crashes discarded, in total
 * since the file was made (a new standby makes a new one: pg_stat_tmp/ is
 * not in base backups); a standby ships it to its primary
 * (writer/replica_ship.c).
 */
extern int64 pixl_usage_held_lost_total(int idx);

#endif							/* PIXL_USAGE_HELD_H */
