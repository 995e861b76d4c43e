/*-------------------------------------------------------------------------
 *
 * standby.c
 *		How current a hot standby's view is, and the bound past which
 *		verification on a standby refuses to vouch.
 *
 * Verification reads the registry; on a hot standby it reads what has been
 * replayed, which is current as of some time T: its staleness is now - T.
 * How T is measured, and why it is one figure for the whole node (kept in
 * shared memory, raised by whichever process sees the standby caught up),
 * is common/replay_view.c's rule: caught_up, behind, no_stream, unknown.
 * This file applies the bound to it and reports it.
 *
 * Cost.  pixl_standby_past_bound() is called by every verification of a
 * well-formed token.  With the bound at 0 it reads one int; on a primary it
 * adds one RecoveryInProgress() call, which is a backend-local flag once
 * recovery has ended.  On a standby with a bound it first compares the
 * clock with the latest "current as of" this backend has read
 * (known_as_of): a view current as of T stays current as of T, so while
 * now - T is within the bound the staleness is too, and nothing shared is
 * read.  Only past that does it read shared state again: two or three
 * short spinlocked reads (the WAL receiver's and recovery's), the ones
 * pg_stat_wal_receiver and pg_last_xact_replay_timestamp() make, and the
 * node's T (an atomic read; a compare-and-exchange when it rises).  So a
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
 * Locking: the shared state is common/replay_view.c's (spinlocked copies
 * of PostgreSQL's, an atomic of ours).  known_as_of and known_read_at are
 * per backend: a cache of the node's T, never later than it.
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
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/preload.h"
#include "common/replay_view.h"
#include "verify/standby.h"

/* pixltoken.max_standby_staleness, in ms; 0 = no bound */
static int	pixl_max_standby_staleness_ms = 0;

static const char *const basis_names[] = {
	"primary", "caught_up", "behind", "no_stream", "unknown"
};

/*
 * The latest "current as of" this backend read by any rule (0: none
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

	(void) pixl_replay_view(&as_of);
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
	PixlReplayBasis basis = PIXL_BASIS_PRIMARY;

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

		basis = pixl_replay_view(&as_of);
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
