/*-------------------------------------------------------------------------
 *
 * usage_fold.h
 *		Folds shared-memory usage counts into the rollups (the worker).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_FOLD_H
#define PIXL_USAGE_FOLD_H

#include "postgres.h"

#include "common/extension.h"
#include "usage/usage_aggregate.h"

/*
 * Adds n counts to the hourly (and, for rolled-up days, daily) rollups and
 * the tokens' activity of extension ext, in the caller's transaction; the
 * caller has SPI and has pinned search_path.
 */
extern void pixl_usage_fold(const PixlExtension *ext, const PixlAggSnapshot *aggs, int n);

/*
 * Seeds the period allowance counters of extension ext (the worker, when
 * it starts serving the database as a primary, before its first fold): for
 * every store whose plan has an allowance, and every token with an
 * allowance of its own, that charged something this period, calls
 * pixl_quota_seed with what the current period charged before this start: the rollups' charged plus charged, the n
 * counts loaded from the clean shutdown's file (pixl_usage_aggregate_loaded).
 * The caller's transaction, with SPI and search_path pinned.  Returns the
 * counters seeded, or -1 when the schema has no pixl_quota_seed.
 */
extern int64 pixl_usage_seed_quotas(const PixlExtension *ext,
									const PixlAggCharged *charged, int n);

#endif							/* PIXL_USAGE_FOLD_H */
