/*-------------------------------------------------------------------------
 *
 * standby.h
 *		How current a hot standby's view of the registry is, and the bound
 *		past which verification on a standby refuses to vouch.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_STANDBY_H
#define PIXL_STANDBY_H

#include "postgres.h"


/* Defines the module's settings; called once from _PG_init. */
extern void pixl_standby_init(void);


/*
 * How often (at most) pixl_standby_check() reads shared state, per backend.
 */
#define PIXL_STANDBY_REFRESH_MS 100

/*
 * For a verification that reports its staleness (1.1's staleness_ms).  On a
 * primary: false (and *past_bound false), after one RecoveryInProgress()
 * call.  On a standby: true; *staleness_ms is now minus the node's
 * "current as of" as this backend last read it, read again only when that
 * reading is PIXL_STANDBY_REFRESH_MS old or past the bound (so no spinlock
 * on most calls), never smaller than a fresh measurement, -1 when unknown; and
 * *past_bound says whether that figure is past
 * pixltoken.max_standby_staleness, as pixl_standby_past_bound() would.
 */
extern bool pixl_standby_check(int64 *staleness_ms, bool *past_bound);

/*
 * True when this node is a standby whose staleness is past (or cannot be
 * held to) pixltoken.max_standby_staleness.  With the bound at 0, or on a
 * primary, it returns false without reading any shared state.
 */
extern bool pixl_standby_past_bound(void);

#endif							/* PIXL_STANDBY_H */
