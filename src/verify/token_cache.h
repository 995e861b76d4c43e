/*-------------------------------------------------------------------------
 *
 * token_cache.h
 *		Per-backend cache of the token rows that verification needs.
 *
 * Entries are keyed by the SHA-256 of a presented secret.  A miss reads the
 * registry directly through its unique indexes under a fresh latest
 * snapshot; changes evict the entries they touch at commit, in every
 * backend (token_inval.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_TOKEN_CACHE_H
#define PIXL_TOKEN_CACHE_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/inet.h"
#include "utils/jsonb.h"

#include "common/scopes.h"
#include "common/token_format.h"
#include "verify/rate_limit.h"

typedef struct PixlCachedToken
{
	uint8		hash[PIXL_HASH_LEN];	/* key: SHA-256 of the secret */
	char		token_id[PIXL_TOKEN_ID_LEN];
	PixlTokenMode mode;
	PixlScopeBits scope_bits;
	int			rate_limit;		/* least(token limit, plan maximum) */
	bool		revoked;
	bool		exposed;		/* revoked because its secret leaked */
	bool		disabled;
	bool		disabled_inactive;	/* disabled_reason 'inactive' (hygiene
									 * sweep): the answer may say so */
	bool		has_expiry;
	bool		is_previous;	/* hash of the previous secret, in its grace */
	bool		insecure_notify;	/* the store's insecure_transport_action
									 * is notify (not revoke) */
	TimestampTz expires_at;		/* if has_expiry */
	TimestampTz valid_until;	/* if is_previous */
	uint32		store_hash;		/* pixl_inval_name_hash of store_id */
	uint32		plan_hash;		/* ... of the store's plan */
	PixlRateKey rate_key;		/* the rate limiter's key, hashed once, and
								 * where its slot was last found */
	PixlQuotaKey quota_key;		/* the period allowances (quota.c) */
	void	   *usage_link;		/* the usage count entry last added to, or
								 * NULL (usage_aggregate.c checks it) */
	int			n_allowed_ips;	/* -1: any address */
	inet	   *allowed_ips;	/* n_allowed_ips cidr values, contiguous */
	text	   *store_id;		/* in the cache's memory context */
	ArrayType  *scopes;			/* prebuilt text[] of scope_bits */
	Jsonb	   *metadata;		/* NULL if none */
} PixlCachedToken;

/* Fixed size of one allowed_ips element (an inet in short form). */
#define PIXL_INET_SIZE	MAXALIGN(sizeof(inet))

/*
 * The cached row for a secret hash: pixl_token_cache_find() catches up with
 * published changes and probes the cache (NULL: a miss); after a miss,
 * pixl_token_cache_load() reads the row from the registry and caches it
 * (NULL when no token has the hash).  The caller must have called
 * AcceptInvalidationMessages() first, and checks the secret's checksum
 * before a load, never on a hit (token_cache.c); schema is the extension's
 * schema (the namespace of the calling function).  The result stays valid
 * until the next find: evictions happen at its start.  Only the links
 * (rate_key's slot hint, usage_link) may be written by the caller.
 */
extern PixlCachedToken *pixl_token_cache_find(const uint8 *hash);
extern PixlCachedToken *pixl_token_cache_load(const uint8 *hash, Oid schema);

/* Defines pixltoken.token_cache_size; called once from _PG_init. */
extern void pixl_token_cache_init(void);

#endif							/* PIXL_TOKEN_CACHE_H */
