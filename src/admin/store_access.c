/*-------------------------------------------------------------------------
 *
 * store_access.c
 *		Who is asking, for the store-scoped administration of 11_*.sql.
 *
 * The rule: a store check (and a platform-admin check) holds for the
 * calling role AND for the role whose rights the call runs with.
 *
 *	- The calling role is the role in effect at the top level of the
 *	  session: the login role, or the one chosen with SET ROLE / SET
 *	  SESSION AUTHORIZATION.  PostgreSQL keeps it as the "outer" user id,
 *	  which SECURITY DEFINER functions and views do not change; so a
 *	  SECURITY DEFINER function owned by a platform admin lends its callers
 *	  nothing (pixl_calling_role()).
 *	- The role whose rights the call runs with is current_user where the
 *	  call is made: the owner of the innermost SECURITY DEFINER function on
 *	  the way (a store admin's function that a platform admin, a view or a
 *	  trigger runs), else the calling role.  Checking it means such a
 *	  function cannot borrow the stores of whoever runs it.
 *
 * PostgreSQL does not tell a SECURITY DEFINER function whom it replaced:
 * inside pixltoken's own management functions current_user is the
 * extension's owner.  Hence two mechanisms:
 *
 *	Read paths (pixl_tokens, the usage views, the row-level security of
 *	pixl_audit and pixl_store_admins) call pixl_store_visible(), which is
 *	SECURITY INVOKER C: it reads GetUserId() and GetOuterUserId() itself
 *	and scans pixl_store_admins directly (no SQL, no privilege of the
 *	reader needed, no search_path involved).
 *
 *	Management and analytics functions are SECURITY INVOKER wrappers with
 *	the public names, signatures, defaults, comments and grants; each
 *	calls a SECURITY DEFINER implementation (name_impl) with a caller
 *	ticket made by pixl_caller_ticket(), SECURITY INVOKER, which records
 *	GetUserId() at the call site under a random 64-bit nonce in backend
 *	memory.  The implementation redeems it first thing
 *	(pixl_redeem_caller_ticket: one use, all forgotten at transaction end),
 *	which also checks that the recorded role has EXECUTE on the public
 *	function, and passes the role to every check.  A ticket records only the
 *	real current_user of whoever asked for it, so a forged or replayed one
 *	gains nothing; the implementations may therefore be executable by
 *	PUBLIC, and calling one directly is the same as calling its public
 *	function.  (Granting each implementation to the roles of its public
 *	function instead would break every GRANT written for 1.0 or from the
 *	README after the upgrade: a wrapper runs its implementation as the
 *	caller, who would need both grants.)  Code that runs as the caller
 *	itself (a view's expression, an invoker trigger) may mint the caller's
 *	ticket and hand it to another role's function; it could as well call
 *	the public function with the caller's rights, so that gives nothing new.
 *
 * Considered and not taken: recording the replaced user in an fmgr hook
 * (needs the library loaded before any function is looked up, and runs for
 * every function call of the backend), and a GUC set by the wrapper (any
 * role can set a GUC).  pixl_verify_token uses none of this: no check, no
 * ticket, no transaction callback on the request path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/errcodes.h"

PG_FUNCTION_INFO_V1(pixl_calling_role);
PG_FUNCTION_INFO_V1(pixl_caller_ticket);
PG_FUNCTION_INFO_V1(pixl_redeem_caller_ticket);
PG_FUNCTION_INFO_V1(pixl_role_denied);
PG_FUNCTION_INFO_V1(pixl_store_visible);
PG_FUNCTION_INFO_V1(pixl_is_platform_admin);

/*
 * Outstanding tickets of this backend.  A ticket is redeemed right after it
 * is made (the wrapper passes it straight on), so a handful is plenty; a
 * ring, so that tickets an error left unredeemed are overwritten rather
 * than fill it.  Cleared at the end of every transaction.
 */
#define PIXL_MAX_TICKETS 32

typedef struct PixlTicket
{
	uint64		nonce;			/* 0: free */
	Oid			role;
} PixlTicket;

static PixlTicket tickets[PIXL_MAX_TICKETS];
static int	next_ticket = 0;
static bool tickets_callback_registered = false;

static void
tickets_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			memset(tickets, 0, sizeof(tickets));
			next_ticket = 0;
			break;
		default:
			break;
	}
}

/* pixl_calling_role() -> oid: the role in effect at the top level */
Datum
pixl_calling_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}

/* pixl_caller_ticket() -> bigint: records current_user of the call site */
Datum
pixl_caller_ticket(PG_FUNCTION_ARGS)
{
	uint64		nonce = 0;

	while (nonce == 0)
	{
		if (!pg_strong_random(&nonce, sizeof(nonce)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a caller ticket")));
	}
	if (!tickets_callback_registered)
	{
		RegisterXactCallback(tickets_xact_callback, NULL);
		tickets_callback_registered = true;
	}
	tickets[next_ticket].nonce = nonce;
	tickets[next_ticket].role = GetUserId();
	next_ticket = (next_ticket + 1) % PIXL_MAX_TICKETS;
	PG_RETURN_INT64((int64) nonce);
}

/*
 * pixl_redeem_caller_ticket(ticket bigint, entry regprocedure) -> oid: the
 * role the ticket recorded, once; that role must be allowed to EXECUTE the
 * public function entry, as it would have been checked had it called it.
 */
Datum
pixl_redeem_caller_ticket(PG_FUNCTION_ARGS)
{
	Oid			entry = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	Oid			role = InvalidOid;

	if (!PG_ARGISNULL(0) && PG_GETARG_INT64(0) != 0)
	{
		uint64		nonce = (uint64) PG_GETARG_INT64(0);

		for (int i = 0; i < PIXL_MAX_TICKETS; i++)
		{
			if (tickets[i].nonce == nonce)
			{
				role = tickets[i].role;
				tickets[i].nonce = 0;
				tickets[i].role = InvalidOid;
				break;
			}
		}
	}
	if (!OidIsValid(role) || !OidIsValid(entry))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_NO_CALLER_TICKET),
				 errmsg("no valid caller ticket"),
				 errdetail("The implementation functions of pixltoken are called by its public functions, which record who is calling."),
				 errhint("Call %s instead.",
						 OidIsValid(entry) ? format_procedure(entry) : "the public function")));
	if (pg_proc_aclcheck(entry, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", get_func_name(entry))));
	PG_RETURN_OID(role);
}

static bool
role_is_platform_admin(Oid role)
{
	Oid			platform;

	if (superuser_arg(role))
		return true;
	platform = get_role_oid("pixl_platform_admin", true);
	return OidIsValid(platform) && has_privs_of_role(role, platform);
}

/*
 * Does role administer store_id (a row of pixl_store_admins names a role
 * whose privileges it has)?  schema: the extension's schema.  Read directly
 * through the table's store index, under the statement's snapshot, as the
 * SQL it replaces did; row-level security is for readers, not for this.
 */
static bool
role_administers_store(Oid role, Oid schema, text *store_id)
{
	Oid			relid = get_relname_relid("pixl_store_admins", schema);
	Oid			indexid = get_relname_relid("pixl_store_admins_store", schema);
	Relation	rel;
	TupleDesc	desc;
	AttrNumber	att_role;
	AttrNumber	att_store;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		elog(ERROR, "pixltoken: pixl_store_admins or its index is missing");
	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	att_role = get_attnum(relid, "role_name");
	att_store = get_attnum(relid, "store_id");
	if (att_role == InvalidAttrNumber || att_store == InvalidAttrNumber)
		elog(ERROR, "pixltoken: pixl_store_admins has changed shape");
	ScanKeyEntryInitialize(&key, 0, att_store, BTEqualStrategyNumber,
						   InvalidOid, TupleDescAttr(desc, att_store - 1)->attcollation,
						   F_TEXTEQ, PointerGetDatum(store_id));
	scan = systable_beginscan(rel, indexid, true,
							  ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(),
							  1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, att_role, desc, &isnull);
		Oid			admin;

		if (isnull)
			continue;
		admin = get_role_oid(TextDatumGetCString(d), true);
		found = OidIsValid(admin) && has_privs_of_role(role, admin);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* store_id NULL: platform admins only (a token that does not exist) */
static bool
role_may(Oid role, Oid schema, text *store_id)
{
	if (role_is_platform_admin(role))
		return true;
	return store_id != NULL && role_administers_store(role, schema, store_id);
}

/*
 * The first of (calling role, acting role) that may not manage store_id,
 * or InvalidOid.  acting: the role a caller ticket recorded; InvalidOid
 * for current_user.
 */
static Oid
denied_role(FunctionCallInfo fcinfo, text *store_id, Oid acting)
{
	Oid			schema = get_func_namespace(fcinfo->flinfo->fn_oid);
	Oid			outer = GetOuterUserId();

	if (!OidIsValid(acting))
		acting = GetUserId();
	if (!role_may(outer, schema, store_id))
		return outer;
	if (acting != outer && !role_may(acting, schema, store_id))
		return acting;
	return InvalidOid;
}

/*
 * pixl_role_denied(store_id text, caller oid) -> oid: the role (calling
 * role first, then caller) that may not manage the store, NULL when both
 * may.  store_id NULL asks for platform admins; caller NULL is current_user.
 */
Datum
pixl_role_denied(PG_FUNCTION_ARGS)
{
	Oid			denied;

	denied = denied_role(fcinfo, PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
						 PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1));
	if (!OidIsValid(denied))
		PG_RETURN_NULL();
	PG_RETURN_OID(denied);
}

/* pixl_store_visible(store_id text) -> boolean, for views and policies */
Datum
pixl_store_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!OidIsValid(denied_role(fcinfo,
										   PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
										   InvalidOid)));
}

/* pixl_is_platform_admin() -> boolean */
Datum
pixl_is_platform_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!OidIsValid(denied_role(fcinfo, NULL, InvalidOid)));
}
