/*-------------------------------------------------------------------------
 *
 * preload.c
 *		Was the library preloaded, and did the server last stop cleanly?
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"

#include "common/preload.h"

/* True once _PG_init ran from shared_preload_libraries. */
static bool pixl_preloaded = false;

void
pixl_preload_done(void)
{
	pixl_preloaded = true;
}

/*
 * Did the server last stop cleanly?  pg_control says so: "shut down" (or
 * "shut down in recovery" on a standby); an immediate shutdown or a crash
 * leaves "in production" or "in archive recovery".  Asked by the postmaster
 * at its first shared-memory initialisation, before the startup process
 * writes pg_control, and remembered for later crash restarts: what was
 * saved on exit (usage queue and counts) is trusted only after a clean
 * stop, as PostgreSQL trusts its own statistics, because an immediate
 * shutdown kills the usage worker where it stands (perhaps between its
 * commit and taking the batch out of shared memory), yet the postmaster
 * still exits with code 0 and saves.
 */
bool
pixl_last_shutdown_was_clean(void)
{
	static int	clean = -1;

	if (clean < 0)
	{
		bool		crc_ok;
		ControlFileData *control = get_controlfile(DataDir, &crc_ok);

		/*
		 * A base backup's pg_control says "in production" (it was copied
		 * from a running server), but this node has not run yet: its
		 * backup_label, still there until recovery starts, says so.
		 */
		clean = crc_ok && (control->state == DB_SHUTDOWNED ||
						   control->state == DB_SHUTDOWNED_IN_RECOVERY ||
						   access(BACKUP_LABEL_FILE, F_OK) == 0);
		pfree(control);
	}
	return clean;
}

void
pixl_require_preload(void)
{
	if (!pixl_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pixltoken must be loaded via shared_preload_libraries"),
				 errhidestmt(true), /* the statement may hold a secret */
				 errhint("Add pixltoken to shared_preload_libraries in postgresql.conf and restart the server.")));
}
