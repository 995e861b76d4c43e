/*-------------------------------------------------------------------------
 *
 * token_cache.h
 *		Per-backend cache of the token rows that verification needs.
 *
 * Entries are keyed by the SHA-256 of a presented secret.  They are loaded
 * with a fresh latest snapshot and flushed by the relcache invalidation that
 * the statement triggers on the registry, stores and plans send at commit,
 * so a change is seen by the next verification after its commit, never
 * before.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_TOKEN_CACHE_H
#define PIXL_TOKEN_CACHE_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/array.h"

#include "scopes.h"
#include "token_format.h"

typedef struct PixlCachedToken
{
	uint8		hash[PIXL_HASH_LEN];	/* key: SHA-256 of the secret */
	char		token_id[PIXL_TOKEN_ID_LEN];
	PixlTokenMode mode;
	PixlScopeBits scope_bits;
	int			rate_limit;		/* least(token limit, plan maximum) */
	bool		revoked;
	bool		has_expiry;
	bool		is_previous;	/* hash of the previous secret, in its grace */
	TimestampTz expires_at;		/* if has_expiry */
	TimestampTz valid_until;	/* if is_previous */
	text	   *store_id;		/* in the cache's memory context */
	ArrayType  *scopes;			/* prebuilt text[] of scope_bits */
} PixlCachedToken;

/*
 * The cached row for a secret hash, or NULL when no token has it.  The
 * caller must have called AcceptInvalidationMessages() first; schema is the
 * extension's schema (the namespace of the calling function).  The result
 * stays valid until the next call: flushes are deferred to the next lookup.
 */
extern const PixlCachedToken *pixl_token_cache_lookup(const uint8 *hash,
													  Oid schema);

#endif							/* PIXL_TOKEN_CACHE_H */
