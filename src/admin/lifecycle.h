/*-------------------------------------------------------------------------
 *
 * lifecycle.h
 *		Settings of the lifecycle reminders.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_LIFECYCLE_H
#define PIXL_LIFECYCLE_H

extern void pixl_lifecycle_init(void);

#endif							/* PIXL_LIFECYCLE_H */
