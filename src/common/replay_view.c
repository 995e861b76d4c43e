/*-------------------------------------------------------------------------
 *
 * replay_view.c
 *		How current a hot standby's replayed view is: the node's "current
 *		as of", kept in shared memory.
 *
 * Verification reads the registry; on a hot standby it reads what has been
 * replayed.  A standby cannot know what the primary committed a moment ago,
 * but it can say since when it has certainly seen everything: its view is
 * "current as of" some time T, and its staleness is now - T.  The rule:
 *
 *	caught_up	The WAL receiver is streaming, has heard from the primary
 *				since it (re)connected, and replay has reached the end of WAL
 *				the primary reported in its last message (latestWalEnd: its
 *				flush position when it sent the message).  Everything the
 *				primary had flushed then is applied: T is that message's
 *				time, the earlier of its send time (primary's clock) and its
 *				receipt time (ours), so a clock skew can only overstate
 *				staleness.  On an idle primary the last *commit* may be hours
 *				old while the standby is fully current; the primary's
 *				keepalives keep T recent.  How recent: the receiver asks for
 *				one after wal_receiver_timeout / 2 of silence, so set
 *				wal_receiver_timeout to at most the bound (docs/replicas.md).
 *				Each such measurement raises the node's T (below).
 *
 *	behind		Streaming, but replay has not reached the primary's reported
 *				end of WAL (a burst being replayed, a long replay, a recovery
 *				conflict, pg_wal_replay_pause(), a backlog after a
 *				reconnection).
 *	no_stream	No live stream (primary down, network broken, receiver
 *				restarting, archive recovery).
 *
 *				In both, T is the later of: the node's T, the latest T that
 *				any process of this node measured as caught_up (replay never
 *				goes back, so the view is still current as of then), and the
 *				primary's timestamp of the last replayed commit or abort
 *				(the view contains it).  Staleness then grows until replay
 *				catches up.  Without a stream this overstates the staleness
 *				of a standby whose primary was idle, which is the safe side:
 *				nobody can say more.  Not used: the start time of the WAL
 *				chunk being replayed (PostgreSQL's clock for
 *				max_standby_streaming_delay) says when replay was caught up
 *				with *receipt*, not with the primary: after a reconnection it
 *				would call a backlog of minutes fresh.
 *
 *	unknown		Neither is known yet: staleness -1, beyond any bound.
 *
 * The node's T.  One pg_atomic_uint64 in shared memory, raised (a CAS loop
 * that only moves it up) by every caught_up measurement: a verification
 * that measures (verify/standby.c), pixl_replica_status(), and the usage
 * worker of each database, which measures at every turn of its loop
 * (every pixltoken.flush_interval, or every second while it has nothing to
 * serve; writer/usage_worker.c), so a standby that nobody
 * asked while it was caught up still knows since when it is current.  So
 * every session of a node gives the same figure, a fresh one as a warm
 * one, and a freshly started standby that caught up and then fell behind
 * (replay paused before any commit was replayed) still knows its T.  It is
 * never understated: T is a time when replay held everything the primary
 * had flushed, and replay does not go back while this shared memory lives.
 * It is made anew, with T unknown, at every start and every crash restart
 * (replay then restarts from a restart point, and hot standby may reopen at
 * a consistent point behind where replay was).  After a promotion the node
 * is a primary and T is not read.
 *
 * PostgreSQL 15's WAL receiver sets its message times to its own start time
 * before it connects; a message from the primary makes send time and receipt
 * time differ, so "heard from the primary" is tested as send != receipt
 * (a coincidental equality only makes us fall back to the other rules).
 * The WAL receiver's fields are read before the replay position, so a
 * message arriving in between can only make us conservative.  Commits made
 * with synchronous_commit = off count from when the primary flushes them.
 *
 * Limitation: on a cascading standby "the primary" is its upstream standby,
 * whose own lag is invisible here (its keepalives are fresh even when it is
 * far behind).  Bound the upstream too; docs/replicas.md says so.
 *
 * Locking: WalRcv fields are read under WalRcv->mutex, copied out, and
 * nothing else happens under it; the replay position and the last commit
 * time under recovery's own spinlock (GetXLogReplayRecPtr,
 * GetLatestXTime).  The node's T is an atomic: read without a lock, raised
 * by compare-and-exchange; nobody waits on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "port/atomics.h"
#include "replication/walreceiver.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "common/replay_view.h"

typedef struct PixlReplayShared
{
	/* TimestampTz: the node's "current as of" while caught up; 0: unknown */
	pg_atomic_uint64 caught_up_as_of;
} PixlReplayShared;

static PixlReplayShared *replay_shared = NULL;

void
pixl_replay_view_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PixlReplayShared)));
}

void
pixl_replay_view_shmem_startup(void)
{
	bool		found;

	replay_shared = ShmemInitStruct("pixltoken replay view",
									sizeof(PixlReplayShared), &found);
	if (!found)
		pg_atomic_init_u64(&replay_shared->caught_up_as_of, 0);
}

/* Raises the node's T to as_of (never lowers it); returns the node's T. */
static TimestampTz
raise_caught_up(TimestampTz as_of)
{
	uint64		old = pg_atomic_read_u64(&replay_shared->caught_up_as_of);

	while ((uint64) as_of > old)
	{
		if (pg_atomic_compare_exchange_u64(&replay_shared->caught_up_as_of,
										   &old, (uint64) as_of))
			return as_of;
	}
	return (TimestampTz) old;
}

PixlReplayBasis
pixl_replay_view(TimestampTz *as_of)
{
	WalRcvState state;
	TimestampTz send_time;
	TimestampTz receipt_time;
	XLogRecPtr	primary_end;
	XLogRecPtr	replayed;
	bool		heard;
	TimestampTz last_commit;
	TimestampTz node_as_of;

	SpinLockAcquire(&WalRcv->mutex);
	state = WalRcv->walRcvState;
	send_time = WalRcv->lastMsgSendTime;
	receipt_time = WalRcv->lastMsgReceiptTime;
	primary_end = WalRcv->latestWalEnd;
	SpinLockRelease(&WalRcv->mutex);

	replayed = GetXLogReplayRecPtr(NULL);

	heard = (state == WALRCV_STREAMING && send_time != receipt_time &&
			 send_time != 0);
	if (heard && replayed >= primary_end)
	{
		/* another process may have measured a later message already */
		*as_of = raise_caught_up(Min(send_time, receipt_time));
		return PIXL_BASIS_CAUGHT_UP;
	}

	node_as_of = (TimestampTz) pg_atomic_read_u64(&replay_shared->caught_up_as_of);
	last_commit = GetLatestXTime();
	*as_of = Max(node_as_of, last_commit);
	if (*as_of == 0)
		return PIXL_BASIS_UNKNOWN;
	return heard ? PIXL_BASIS_BEHIND : PIXL_BASIS_NO_STREAM;
}
