/*-------------------------------------------------------------------------
 *
 * replay_view.h
 *		How current a hot standby's replayed view is: the node's "current
 *		as of", kept in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_REPLAY_VIEW_H
#define PIXL_REPLAY_VIEW_H

#include "postgres.h"

#include "utils/timestamp.h"

/* Which rule measured the view (replay_view.c). */
typedef enum PixlReplayBasis
{
	PIXL_BASIS_PRIMARY,
	PIXL_BASIS_CAUGHT_UP,
	PIXL_BASIS_BEHIND,
	PIXL_BASIS_NO_STREAM,
	PIXL_BASIS_UNKNOWN
} PixlReplayBasis;

extern void pixl_replay_view_shmem_request(void);

/* Called with AddinShmemInitLock held (pixltoken.c). */
extern void pixl_replay_view_shmem_startup(void);

/*
 * Since when this standby has certainly seen everything the primary
 * committed (*as_of; 0 when unknown), and by which rule; a caught-up
 * measurement raises the node's "current as of" for every session.  The
 * caller has checked RecoveryInProgress().
 */
extern PixlReplayBasis pixl_replay_view(TimestampTz *as_of);

#endif							/* PIXL_REPLAY_VIEW_H */
