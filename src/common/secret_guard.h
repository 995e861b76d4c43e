/*-------------------------------------------------------------------------
 *
 * secret_guard.h
 *		Keeps token secrets out of the server log (an emit_log_hook).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_SECRET_GUARD_H
#define PIXL_SECRET_GUARD_H

/* Installs the hook; called first thing in _PG_init, preloaded or not. */
extern void pixl_secret_guard_init(void);

/* Warns when a library's utility hook runs before ours (postmaster). */
extern void pixl_secret_guard_check_order(void);

#endif							/* PIXL_SECRET_GUARD_H */
