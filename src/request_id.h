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

/* The text form of a request id that 1.1 hands to callers (palloc'd). */
extern text *pixl_request_id_text(int64 request_id);

#endif							/* PIXL_REQUEST_ID_H */
