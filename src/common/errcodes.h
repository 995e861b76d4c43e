/*-------------------------------------------------------------------------
 *
 * errcodes.h
 *		The registry of pixltoken's own SQLSTATEs, class "PX": every code,
 *		whether C or SQL raises it.
 *
 * C raises a code through its ERRCODE_PIXL_* name; SQL spells the same
 * five characters ('PX004') and raises them with RAISE or
 * pixl_raise_hidden().  A code marked "SQL" is raised by SQL only; its name
 * here reserves it.  A new code is added here first.  README.md lists each
 * code with its meaning for users.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_ERRCODES_H
#define PIXL_ERRCODES_H

#include "postgres.h"

/* tokens, scopes and their administration: PX001-PX017 */
/* unknown scope */
#define ERRCODE_PIXL_UNKNOWN_SCOPE			MAKE_SQLSTATE('P','X','0','0','1')
/* duplicate scope */
#define ERRCODE_PIXL_DUPLICATE_SCOPE		MAKE_SQLSTATE('P','X','0','0','2')
/* empty or NULL scope list */
#define ERRCODE_PIXL_EMPTY_SCOPES			MAKE_SQLSTATE('P','X','0','0','3')
/* invalid token name (SQL) */
#define ERRCODE_PIXL_INVALID_TOKEN_NAME		MAKE_SQLSTATE('P','X','0','0','4')
/* rate limit outside 1..1000 (SQL) */
#define ERRCODE_PIXL_RATE_LIMIT_RANGE		MAKE_SQLSTATE('P','X','0','0','5')
/* rate limit above the store plan's maximum (SQL) */
#define ERRCODE_PIXL_RATE_LIMIT_ABOVE_PLAN	MAKE_SQLSTATE('P','X','0','0','6')
/* expiry in the past (SQL) */
#define ERRCODE_PIXL_EXPIRY_IN_PAST			MAKE_SQLSTATE('P','X','0','0','7')
/* unknown mode (not live / test) */
#define ERRCODE_PIXL_UNKNOWN_MODE			MAKE_SQLSTATE('P','X','0','0','8')
/* unknown plan (SQL) */
#define ERRCODE_PIXL_UNKNOWN_PLAN			MAKE_SQLSTATE('P','X','0','0','9')
/* invalid store id (SQL) */
#define ERRCODE_PIXL_INVALID_STORE_ID		MAKE_SQLSTATE('P','X','0','1','0')
/* no such token (SQL) */
#define ERRCODE_PIXL_NO_SUCH_TOKEN			MAKE_SQLSTATE('P','X','0','1','1')
/* token is revoked (SQL) */
#define ERRCODE_PIXL_TOKEN_REVOKED			MAKE_SQLSTATE('P','X','0','1','2')
/* token is expired (cannot be rotated) (SQL) */
#define ERRCODE_PIXL_TOKEN_EXPIRED			MAKE_SQLSTATE('P','X','0','1','3')
/* invalid rotation grace period (SQL) */
#define ERRCODE_PIXL_INVALID_GRACE			MAKE_SQLSTATE('P','X','0','1','4')
/* unknown analytics period */
#define ERRCODE_PIXL_UNKNOWN_PERIOD			MAKE_SQLSTATE('P','X','0','1','5')
/* invalid HTTP status */
#define ERRCODE_PIXL_INVALID_STATUS			MAKE_SQLSTATE('P','X','0','1','6')
/* invalid response time */
#define ERRCODE_PIXL_INVALID_RESPONSE_TIME	MAKE_SQLSTATE('P','X','0','1','7')

/* lifecycle events and webhooks: PX018-PX029 */
/* invalid webhook secret (not whsec_ + base64 of 24 to 64 bytes) */
#define ERRCODE_PIXL_INVALID_WEBHOOK_SECRET	MAKE_SQLSTATE('P','X','0','1','8')
/* invalid webhook message id, timestamp or payload */
#define ERRCODE_PIXL_INVALID_WEBHOOK_INPUT	MAKE_SQLSTATE('P','X','0','1','9')
/* invalid event consumer name (SQL) */
#define ERRCODE_PIXL_INVALID_CONSUMER_NAME	MAKE_SQLSTATE('P','X','0','2','0')
/* no such event consumer for the calling role (SQL) */
#define ERRCODE_PIXL_NO_SUCH_CONSUMER		MAKE_SQLSTATE('P','X','0','2','1')
/* event consumer already exists (SQL) */
#define ERRCODE_PIXL_CONSUMER_EXISTS		MAKE_SQLSTATE('P','X','0','2','2')
/* invalid claim, lease or consumer argument (SQL) */
#define ERRCODE_PIXL_INVALID_EVENT_ARG		MAKE_SQLSTATE('P','X','0','2','3')

/* usage arguments: PX030-PX032 */
/* invalid usage retention */
#define ERRCODE_PIXL_INVALID_RETENTION		MAKE_SQLSTATE('P','X','0','3','0')
/* invalid usage argument */
#define ERRCODE_PIXL_INVALID_USAGE_ARG		MAKE_SQLSTATE('P','X','0','3','1')
/* invalid request id */
#define ERRCODE_PIXL_INVALID_REQUEST_ID		MAKE_SQLSTATE('P','X','0','3','2')

/* token hygiene policies: PX033-PX036 */
/* expiry beyond the store's maximum token lifetime */
#define ERRCODE_PIXL_POLICY_LIFETIME		MAKE_SQLSTATE('P','X','0','3','3')
/* no expiry where the store's policy requires one */
#define ERRCODE_PIXL_POLICY_EXPIRY_REQUIRED	MAKE_SQLSTATE('P','X','0','3','4')
/* a store admin loosening a policy beyond the plan's */
#define ERRCODE_PIXL_POLICY_LOOSER_THAN_PLAN	MAKE_SQLSTATE('P','X','0','3','5')
/* invalid hygiene policy value */
#define ERRCODE_PIXL_INVALID_POLICY			MAKE_SQLSTATE('P','X','0','3','6')

/* security: PX040-PX052 */
/* not your store */
#define ERRCODE_PIXL_NOT_YOUR_STORE			MAKE_SQLSTATE('P','X','0','4','0')
/* the store's plan allows no more active tokens */
#define ERRCODE_PIXL_STORE_TOKEN_CAP		MAKE_SQLSTATE('P','X','0','4','1')
/* token name with control or invisible characters */
#define ERRCODE_PIXL_NAME_CONTROL_CHARS		MAKE_SQLSTATE('P','X','0','4','2')
/* scope list not one-dimensional from 1 */
#define ERRCODE_PIXL_SCOPE_ARRAY_SHAPE		MAKE_SQLSTATE('P','X','0','4','3')
/* store id outside the alphabet */
#define ERRCODE_PIXL_STORE_ID_ALPHABET		MAKE_SQLSTATE('P','X','0','4','4')
/* a secret where a store id, name or metadata belongs */
#define ERRCODE_PIXL_SECRET_MISPLACED		MAKE_SQLSTATE('P','X','0','4','5')
/* pixl_grant_store for a role that does not exist */
#define ERRCODE_PIXL_UNKNOWN_ROLE			MAKE_SQLSTATE('P','X','0','4','6')
/* implementation function called without a ticket */
#define ERRCODE_PIXL_NO_CALLER_TICKET		MAKE_SQLSTATE('P','X','0','4','7')
/* invalid pixl_latency histogram */
#define ERRCODE_PIXL_INVALID_LATENCY		MAKE_SQLSTATE('P','X','0','4','8')
/* response time outside pixl_latency's range */
#define ERRCODE_PIXL_LATENCY_OUT_OF_RANGE	MAKE_SQLSTATE('P','X','0','4','9')
/* metadata nested too deep (SQL) */
#define ERRCODE_PIXL_METADATA_TOO_DEEP		MAKE_SQLSTATE('P','X','0','5','0')
/* pixl_raise_hidden called wrongly */
#define ERRCODE_PIXL_INVALID_RAISE			MAKE_SQLSTATE('P','X','0','5','1')
/* quantile fraction outside 0..1 */
#define ERRCODE_PIXL_INVALID_QUANTILE		MAKE_SQLSTATE('P','X','0','5','2')

/* plan quotas: PX053-PX055 */
/* a verification's cost outside 1..100 */
#define ERRCODE_PIXL_COST_RANGE				MAKE_SQLSTATE('P','X','0','5','3')
/* a token's allowance above its plan's */
#define ERRCODE_PIXL_QUOTA_ABOVE_PLAN		MAKE_SQLSTATE('P','X','0','5','4')
/* an allowance or billing day out of range */
#define ERRCODE_PIXL_QUOTA_RANGE			MAKE_SQLSTATE('P','X','0','5','5')

/* the usage pipeline and the replica path: PX060-PX068 */
/* response time too large to be summed */
#define ERRCODE_PIXL_RESPONSE_TIME_TOO_LARGE	MAKE_SQLSTATE('P','X','0','6','0')
/* pixl_log_responses arrays of different lengths */
#define ERRCODE_PIXL_RESPONSE_ARRAYS		MAKE_SQLSTATE('P','X','0','6','1')
/* retention shorter than pixltoken.usage_retention */
#define ERRCODE_PIXL_RETENTION_BELOW_SETTING	MAKE_SQLSTATE('P','X','0','6','2')
/* usage partition or its index dropped outside maintenance */
#define ERRCODE_PIXL_USAGE_PARTITION_GUARD	MAKE_SQLSTATE('P','X','0','6','3')
/* a shipped usage batch refused */
#define ERRCODE_PIXL_INVALID_USAGE_BATCH	MAKE_SQLSTATE('P','X','0','6','4')
/* node id of another node, or incarnation reset */
#define ERRCODE_PIXL_NODE_ID_TAKEN			MAKE_SQLSTATE('P','X','0','6','5')
/* a shipped batch out of sequence */
#define ERRCODE_PIXL_SHIP_SEQUENCE_GAP		MAKE_SQLSTATE('P','X','0','6','6')
/* a response for another node's request */
#define ERRCODE_PIXL_RESPONSE_OTHER_NODE	MAKE_SQLSTATE('P','X','0','6','7')
/* a response reported twice, or its verification gone */
#define ERRCODE_PIXL_RESPONSE_REPORTED		MAKE_SQLSTATE('P','X','0','6','8')

/* 1.1's token arguments and verification: PX070-PX081 */
/* invalid network in allowed_ips (SQL) */
#define ERRCODE_PIXL_INVALID_ALLOWED_IP		MAKE_SQLSTATE('P','X','0','7','0')
/* NULL element in allowed_ips (SQL) */
#define ERRCODE_PIXL_NULL_ALLOWED_IP		MAKE_SQLSTATE('P','X','0','7','1')
/* allowed_ips longer than 100 networks (SQL) */
#define ERRCODE_PIXL_TOO_MANY_ALLOWED_IPS	MAKE_SQLSTATE('P','X','0','7','2')
/* metadata over 4096 bytes (SQL) */
#define ERRCODE_PIXL_METADATA_TOO_LARGE		MAKE_SQLSTATE('P','X','0','7','3')
/* metadata not a JSON object (SQL) */
#define ERRCODE_PIXL_METADATA_NOT_OBJECT	MAKE_SQLSTATE('P','X','0','7','4')
/* invalid disable reason (SQL) */
#define ERRCODE_PIXL_INVALID_DISABLE_REASON	MAKE_SQLSTATE('P','X','0','7','5')
/* token is already disabled (SQL) */
#define ERRCODE_PIXL_TOKEN_DISABLED			MAKE_SQLSTATE('P','X','0','7','6')
/* token is not disabled (SQL) */
#define ERRCODE_PIXL_TOKEN_NOT_DISABLED		MAKE_SQLSTATE('P','X','0','7','7')
/* reported secret not well-formed */
#define ERRCODE_PIXL_INVALID_LEAKED_SECRET	MAKE_SQLSTATE('P','X','0','7','8')
/* reported SHA-256 not 32 bytes (SQL) */
#define ERRCODE_PIXL_INVALID_LEAKED_HASH	MAKE_SQLSTATE('P','X','0','7','9')
/* invalid leak source (SQL) */
#define ERRCODE_PIXL_INVALID_LEAK_SOURCE	MAKE_SQLSTATE('P','X','0','8','0')
/* a 1.1 verification without a scope */
#define ERRCODE_PIXL_SCOPE_REQUIRED			MAKE_SQLSTATE('P','X','0','8','1')

/* plan quotas' surface: PX056 */
/* pixl_store_quota for a store that does not exist (SQL) */
#define ERRCODE_PIXL_UNKNOWN_STORE			MAKE_SQLSTATE('P','X','0','5','6')

/* credentials over plain HTTP: PX057-PX058 */
/* a verification's transport not 'http', 'https' or NULL */
#define ERRCODE_PIXL_INVALID_TRANSPORT		MAKE_SQLSTATE('P','X','0','5','7')
/* a store's insecure_transport_action not 'revoke' or 'notify' (SQL) */
#define ERRCODE_PIXL_INVALID_INSECURE_ACTION	MAKE_SQLSTATE('P','X','0','5','8')

#endif							/* PIXL_ERRCODES_H */
