/*-------------------------------------------------------------------------
 *
 * verify.h
 *		The verification module: pixl_verify_token() and what it owns
 *		(token cache, invalidation ring, HTTP answer, RLS context,
 *		lifecycle settings).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_VERIFY_H
#define PIXL_VERIFY_H

/* Called from _PG_init: the module's settings and shared memory. */
extern void pixl_verify_module_init(void);

#endif							/* PIXL_VERIFY_H */
