/*-------------------------------------------------------------------------
 *
 * store_access.c
 *		Who is asking, for the store-scoped administration of 11_*.sql.
 *
 * The management and analytics functions are SECURITY DEFINER: inside
 * them current_user is the extension's owner, and session_user is the
 * login role even after SET ROLE.  The role whose stores count is the one
 * in effect at the top level of the session: the login role, or the role
 * chosen with SET ROLE / SET SESSION AUTHORIZATION.  PostgreSQL keeps it
 * as the "outer" user id, which SECURITY DEFINER functions and views do
 * not change; so a SECURITY DEFINER wrapper written by someone else lends
 * no store of its owner to its callers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "pixltoken.h"

PG_FUNCTION_INFO_V1(pixl_calling_role);

/* pixl_calling_role() -> oid: the role whose stores this session may manage */
Datum
pixl_calling_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
