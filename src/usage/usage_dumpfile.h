/*-------------------------------------------------------------------------
 *
 * usage_dumpfile.h
 *		The file that keeps the rings' records across a clean restart.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_USAGE_DUMPFILE_H
#define PIXL_USAGE_DUMPFILE_H

#include "postgres.h"

/*
 * From the shared-memory startup hook, after the rings: in the postmaster,
 * arranges the save at a clean exit and, when the rings were just created,
 * loads the file of the last clean shutdown.
 */
extern void pixl_usage_dumpfile_shmem_startup(bool rings_created);

#endif							/* PIXL_USAGE_DUMPFILE_H */
