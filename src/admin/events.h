/*-------------------------------------------------------------------------
 *
 * events.h
 *		Settings of the lifecycle events' outbox, and the Standard Webhooks
 *		signature helper.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_EVENTS_H
#define PIXL_EVENTS_H

extern void pixl_events_init(void);

#endif							/* PIXL_EVENTS_H */
