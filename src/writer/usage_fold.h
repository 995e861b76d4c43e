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

#endif							/* PIXL_USAGE_FOLD_H */
