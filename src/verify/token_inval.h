/*-------------------------------------------------------------------------
 *
 * token_inval.h
 *		Per-token invalidation of the verification caches: a transaction's
 *		changes, published at commit to a shared-memory ring.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_TOKEN_INVAL_H
#define PIXL_TOKEN_INVAL_H

#include "postgres.h"

#include "common/token_format.h"

typedef enum PixlInvalKind
{
	PIXL_INVAL_ALL,				/* every cached token of the database */
	PIXL_INVAL_SECRET,			/* key: the SHA-256 of a secret */
	PIXL_INVAL_STORE,			/* key: pixl_inval_name_hash(store_id) */
	PIXL_INVAL_PLAN				/* key: pixl_inval_name_hash(plan) */
} PixlInvalKind;

typedef struct PixlInvalItem
{
	Oid			dbid;
	uint8		kind;			/* PixlInvalKind */
	uint8		key[PIXL_HASH_LEN];
} PixlInvalItem;

/* Applies one item to this backend's cache (token_cache.c registers it). */
typedef void (*PixlInvalApplyFn) (const PixlInvalItem *item);

extern void pixl_token_inval_init(void);
extern void pixl_token_inval_set_apply(PixlInvalApplyFn fn);

/*
 * The relation whose relcache invalidation a prepared transaction with
 * items sends at COMMIT PREPARED (set by the triggers; see token_inval.c).
 */
extern void pixl_inval_set_prepare_marker(Oid relid);

/* 32-bit hash of a store id or plan name, as kept in cache entries. */
extern uint32 pixl_inval_name_hash(const char *name, int len);

/*
 * Queues an item for the current transaction: applied to this backend's
 * cache at once (and again if the (sub)transaction aborts), published to
 * every backend of the database when it commits, dropped otherwise.
 */
extern void pixl_inval_queue(PixlInvalKind kind, const uint8 *key, int keylen);

/*
 * Queues a secret hash this transaction created: evicted from this
 * backend's cache if the (sub)transaction aborts, never published.
 */
extern void pixl_inval_queue_local(const uint8 *hash);

/*
 * Brings this backend's cache up to date with the published ring: applies
 * every item published since *seen (or one PIXL_INVAL_ALL if the ring has
 * overwritten some) and advances *seen.  One atomic read when nothing
 * changed.
 */
extern void pixl_inval_catch_up(uint64 *seen);

/* The ring's generation now (items published so far). */
extern uint64 pixl_inval_generation(void);

#endif							/* PIXL_TOKEN_INVAL_H */
