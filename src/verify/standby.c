/*-------------------------------------------------------------------------
 *
 * standby.c
 *		How current a hot standby's view is, and the bound past which
 *		verification on a standby refuses to vouch.
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
 *
 *	behind		Streaming, but replay has not reached the primary's reported
 *				end of WAL (a burst being replayed, a long replay, a recovery
 *				conflict, pg_wal_replay_pause(), a backlog after a
 *				reconnection).
 *	no_stream	No live stream (primary down, network broken, receiver
 *				restarting, archive recovery).
 *
 *				In both, T is the later of: the last T this backend computed
 *				as caught_up (replay never goes back, so the view is still
 *				current as of then), and the primary's timestamp of the last
 *				replayed commit or abort (the view contains it).  Staleness
 *				then grows until replay catches up.  Without a stream this
 *				overstates the staleness of a standby whose primary was idle,
 *				which is the safe side: nobody can say more.  Not used: the
 *				start time of the WAL chunk being replayed (PostgreSQL's
 *				clock for max_standby_streaming_delay) says when replay was
 *				caught up with *receipt*, not with the primary: after a
 *				reconnection it would call a backlog of minutes fresh.
 *
 *	unknown		Neither is known yet: staleness -1, beyond any bound.
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
 * Cost.  pixl_standby_past_bound() is called by every verification of a
 * well-formed token.  With the bound at 0 it reads one int; on a primary it
 * adds one RecoveryInProgress() call, which is a backend-local flag once
 * recovery has ended.  On a standby with a bound it first compares the
 * clock with the latest "current as of" this backend has computed
 * (known_as_of): a view current as of T stays current as of T, so while
 * now - T is within the bound the staleness is too, and nothing shared is
 * read.  Only past that does it read shared state again: two or three
 * short spinlocked reads (the WAL receiver's and recovery's), the ones
 * pg_stat_wal_receiver and pg_last_xact_replay_timestamp() make.  So a
 * verifying backend takes no shared spinlock except about once per bound
 * minus staleness, and never when the standby is past the bound for long
 * enough to matter less than the answer.
 *
 * 1.1's entry points (verify.c) report the staleness in every answer
 * (staleness_ms) and call pixl_standby_check() instead: on a primary one
 * RecoveryInProgress() call and nothing else; on a standby now -
 * known_as_of, with the shared state read again only when this backend
 * last read it PIXL_STANDBY_REFRESH_MS or more ago, or when the older
 * figure is past the bound (measured again before refusing, as above).  So
 * the figure is what a measurement at most that long ago said plus the
 * time since: never less than the staleness a fresh measurement would give
 * (the safe side), and a busy backend reads shared state about ten times a
 * second, whatever its rate.  The answer's status and its figure come from
 * the same measurement: a 503 says more than the bound, any other answer
 * at most the bound.  verify.c asks before its lookup: the snapshot the
 * answer is made from is then at least as current as the figure says (the
 * replay position read here is replayed, its invalidations queued, before
 * AcceptInvalidationMessages() and the fresh snapshot of the lookup).
 *
 * Locking: WalRcv fields are read under WalRcv->mutex, copied out, and
 * nothing else happens under it.  caught_up_as_of, known_as_of and
 * known_read_at are per backend: no shared state of our own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/walreceiver.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "verify/standby.h"

/* pixltoken.max_standby_staleness, in ms; 0 = no bound */
static int	pixl_max_standby_staleness_ms = 0;

typedef enum PixlStandbyBasis
{
	PIXL_BASIS_PRIMARY,
	PIXL_BASIS_CAUGHT_UP,
	PIXL_BASIS_BEHIND,
	PIXL_BASIS_NO_STREAM,
	PIXL_BASIS_UNKNOWN
} PixlStandbyBasis;

static const char *const basis_names[] = {
	"primary", "caught_up", "behind", "no_stream", "unknown"
};

/*
 * The latest "current as of" this backend computed while caught up: still
 * true later, since replay only moves forward.
 */
static TimestampTz caught_up_as_of = 0;

/*
 * The latest "current as of" this backend computed by any rule (0: none
 * yet): the view is current as of it from then on, so the staleness is at
 * most now - known_as_of.
 */
static TimestampTz known_as_of = 0;

/* When this backend last read the shared state (0: never). */
static TimestampTz known_read_at = 0;

/*
 * A bound shorter than wal_receiver_timeout cannot hold on a standby whose
 * primary is idle: the receiver asks for a keepalive only after half of
 * wal_receiver_timeout of silence, so a caught-up standby would answer 503
 * between keepalives.  Said once, by the postmaster, at start and when the
 * bound is reloaded (wal_receiver_timeout is read from the same files
 * before this library's settings at start).  Not refused: the value is
 * right on a primary, and a test may want a bound that is always past.
 */
static bool
check_max_standby_staleness(int *newval, void **extra, GucSource source)
{
	if (!IsUnderPostmaster && *newval > 0 &&
		(wal_receiver_timeout <= 0 || wal_receiver_timeout > *newval))
		ereport(WARNING,
				(errmsg("pixltoken.max_standby_staleness (%d ms) is shorter than wal_receiver_timeout (%d ms)",
						*newval, wal_receiver_timeout),
				 errdetail("A standby of an idle primary hears from it only after half of wal_receiver_timeout of silence, so a caught-up standby would answer 503 \"stale\" in between."),
				 errhint("On standbys, set wal_receiver_timeout to at most pixltoken.max_standby_staleness.")));
	return true;
}

void
pixl_standby_init(void)
{
	DefineCustomIntVariable("pixltoken.max_standby_staleness",
							"On a hot standby, verification answers 503 'stale' when the standby's view may be older than this.",
							"0 means no bound.  Staleness is measured as pixl_replica_status() shows it; a primary ignores this setting.",
							&pixl_max_standby_staleness_ms,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							check_max_standby_staleness, NULL, NULL);
}

/*
 * Since when this standby has certainly seen everything the primary
 * committed (*as_of; 0 when unknown), and by which rule.  The caller has
 * checked RecoveryInProgress().
 */
static PixlStandbyBasis
standby_view(TimestampTz *as_of)
{
	WalRcvState state;
	TimestampTz send_time;
	TimestampTz receipt_time;
	XLogRecPtr	primary_end;
	XLogRecPtr	replayed;
	bool		heard;
	TimestampTz last_commit;

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
		*as_of = Min(send_time, receipt_time);
		if (*as_of > caught_up_as_of)
			caught_up_as_of = *as_of;
		return PIXL_BASIS_CAUGHT_UP;
	}

	last_commit = GetLatestXTime();
	*as_of = Max(caught_up_as_of, last_commit);
	if (*as_of == 0)
		return PIXL_BASIS_UNKNOWN;
	return heard ? PIXL_BASIS_BEHIND : PIXL_BASIS_NO_STREAM;
}

static int64
staleness_ms_since(TimestampTz as_of, TimestampTz now)
{
	if (as_of == 0)
		return -1;
	if (now <= as_of)
		return 0;
	return (now - as_of) / 1000;
}

/*
 * Reads the shared state and moves known_as_of forward; the staleness as of
 * now (-1: unknown).  The caller has checked RecoveryInProgress().
 */
static int64
refresh_known_as_of(TimestampTz now)
{
	TimestampTz as_of;

	(void) standby_view(&as_of);
	if (as_of > known_as_of)
		known_as_of = as_of;
	known_read_at = now;
	return staleness_ms_since(known_as_of, now);
}

/*
 * On a primary: false, at the cost of one RecoveryInProgress() check.
 * On a standby: true, and *staleness_ms is how old the standby's view of the
 * primary may be (see standby.c for the rule), or -1 when it cannot tell.
 */
static bool
pixl_standby_staleness(int64 *staleness_ms)
{
	if (!RecoveryInProgress())
		return false;
	*staleness_ms = refresh_known_as_of(GetCurrentTimestamp());
	return true;
}

static bool
beyond_bound(int64 staleness_ms)
{
	return pixl_max_standby_staleness_ms > 0 &&
		(staleness_ms < 0 || staleness_ms > pixl_max_standby_staleness_ms);
}

bool
pixl_standby_check(int64 *staleness_ms, bool *past_bound)
{
	TimestampTz now;
	int64		ms;
	bool		fresh = false;

	*past_bound = false;
	if (!RecoveryInProgress())
		return false;
	now = GetCurrentTimestamp();
	if (known_read_at != 0 && now >= known_read_at &&
		now - known_read_at < PIXL_STANDBY_REFRESH_MS * INT64CONST(1000))
		ms = staleness_ms_since(known_as_of, now);
	else
	{
		ms = refresh_known_as_of(now);
		fresh = true;
	}
	/* past the bound by an older measurement: measure again before refusing */
	if (!fresh && beyond_bound(ms))
		ms = refresh_known_as_of(now);
	*staleness_ms = ms;
	*past_bound = beyond_bound(ms);
	return true;
}

bool
pixl_standby_past_bound(void)
{
	int64		staleness_ms;

	if (pixl_max_standby_staleness_ms <= 0)
		return false;
	if (!RecoveryInProgress())
		return false;
	/* within the bound as of what this backend already knows: no shared read */
	if (known_as_of != 0 &&
		staleness_ms_since(known_as_of, GetCurrentTimestamp()) <= pixl_max_standby_staleness_ms)
		return false;
	if (!pixl_standby_staleness(&staleness_ms))
		return false;
	return beyond_bound(staleness_ms);
}

static Datum
interval_ms(int64 ms)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = ms * 1000;
	return IntervalPGetDatum(iv);
}

/* Result columns of pixl_replica_status() */
enum
{
	RS_IS_STANDBY,
	RS_STALENESS,
	RS_LAST_REPLAYED_COMMIT,
	RS_BOUND,
	RS_BASIS,
	RS_NCOLS
};

PG_FUNCTION_INFO_V1(pixl_replica_status);

/*
 * pixl_replica_status(): is this node a standby, how stale is its view (the
 * rule above; NULL on a primary or when unknown), the primary's time of the
 * last replayed commit, the configured bound (NULL when none), and which
 * rule measured the staleness.
 */
Datum
pixl_replica_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[RS_NCOLS];
	bool		nulls[RS_NCOLS];
	PixlStandbyBasis basis = PIXL_BASIS_PRIMARY;

	pixl_require_preload();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != RS_NCOLS)
		elog(ERROR, "pixl_replica_status must return %d columns", RS_NCOLS);

	memset(nulls, true, sizeof(nulls));
	values[RS_IS_STANDBY] = BoolGetDatum(RecoveryInProgress());
	nulls[RS_IS_STANDBY] = false;
	if (RecoveryInProgress())
	{
		TimestampTz as_of;
		TimestampTz last_commit;
		int64		ms;

		basis = standby_view(&as_of);
		ms = staleness_ms_since(as_of, GetCurrentTimestamp());
		if (ms >= 0)
		{
			values[RS_STALENESS] = interval_ms(ms);
			nulls[RS_STALENESS] = false;
		}
		last_commit = GetLatestXTime();
		if (last_commit != 0)
		{
			values[RS_LAST_REPLAYED_COMMIT] = TimestampTzGetDatum(last_commit);
			nulls[RS_LAST_REPLAYED_COMMIT] = false;
		}
	}
	if (pixl_max_standby_staleness_ms > 0)
	{
		values[RS_BOUND] = interval_ms(pixl_max_standby_staleness_ms);
		nulls[RS_BOUND] = false;
	}
	values[RS_BASIS] = CStringGetTextDatum(basis_names[basis]);
	nulls[RS_BASIS] = false;

	desc = BlessTupleDesc(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
