/*-------------------------------------------------------------------------
 *
 * request_id.h
 *		Request ids of verifications, and their opaque text form.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_REQUEST_ID_H
#define PIXL_REQUEST_ID_H

#include "postgres.h"
#include "datatype/timestamp.h"

#include "common/node.h"

extern void pixl_request_id_shmem_request(void);
extern void pixl_request_id_shmem_startup(void);

/*
 * A request id: unique for the cluster's lifetime, increasing, and carrying
 * the verification time; *at receives that time (id / 16).
 */
extern int64 pixl_next_request_id(TimestampTz *at);

/* The verification time an id carries. */
#define PIXL_REQUEST_ID_TIME(id)	((TimestampTz) ((id) / PIXL_NODE_IDS))

/*
 * The text form of a request id that 1.1 hands to callers (palloc'd): the
 * id and a keyed MAC, so that it cannot be guessed or forged, and exact in
 * every client language (a string).  The MAC also says whether the
 * request's raw usage row was kept (see pixl_request_id_mark_unkept).
 */
extern text *pixl_request_id_text(int64 request_id);

/*
 * The reverse: the id of a text form (or of the decimal digits of a sealed
 * bigint id), or an error (PX032) for a malformed or forged one.  *kept tells whether the request's raw row was kept,
 * *pending whether its verification got a pending entry (usage_pending.c).
 */
extern int64 pixl_request_id_parse(text *t, bool *kept, bool *pending);

/*
 * The sealed bigint form, for the 1.0 result type of pixl_verify_token
 * (request_id bigint), which 1.1 keeps so that statements prepared under
 * 1.0 survive the update: a keyed permutation of 63 bits (a Feistel
 * network under the cluster's key, request_id.c) of the id and the same two
 * flags as the text form.  Nobody without the key can make one that opens
 * to an id of the last PIXL_SEALED_MAX_AGE_USECS; a guess opens to a
 * random id, which almost never has a verification waiting.
 */
#define PIXL_SEALED_MAX_AGE_USECS	((int64) 31 * USECS_PER_DAY)
#define PIXL_SEALED_SKEW_USECS		((int64) 60 * USECS_PER_SEC)
extern int64 pixl_request_id_seal(int64 request_id);

/* The reverse; false for a value this cluster did not make (or too old). */
extern bool pixl_request_id_unseal(int64 sealed, int64 *request_id,
								   bool *kept, bool *pending);

/*
 * The usage recorder (usage_route.c) calls this when the raw row of
 * request_id was not kept (a sampled-out 429, or a full queue); the next
 * pixl_request_id_text() of that id in this backend says so.
 */
extern void pixl_request_id_mark_unkept(int64 request_id);

/* The same for a verification that got no pending entry (usage_route.c). */
extern void pixl_request_id_mark_unpending(int64 request_id);

/*
 * SipHash-2-4 of data under the cluster's secret key (the one of the
 * request ids' MACs): a hash whose collisions cannot be searched for.
 * Start data with a domain word of the caller's own.
 */
extern uint64 pixl_keyed_hash(const void *data, Size len);

#endif							/* PIXL_REQUEST_ID_H */
