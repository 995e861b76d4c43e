/*-------------------------------------------------------------------------
 *
 * scopes.h
 *		The eleven scopes of the user guide, as bits.
 *
 * A token's scopes are stored as the bit set it was granted.  Checking a
 * required scope is one AND with that scope's "accepting mask": the scope's
 * own bit, plus the X:write bit when the scope is X:read.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_SCOPES_H
#define PIXL_SCOPES_H

#include "postgres.h"
#include "utils/array.h"

typedef uint32 PixlScopeBits;

#define PIXL_NUM_SCOPES 11

/* Bit of one scope name, or -1 if it is not one of the eleven. */
extern int	pixl_scope_index(const char *name, size_t len);

/* Mask a token's bits must intersect to be granted scope number idx. */
extern PixlScopeBits pixl_scope_accepting_mask(int idx);

/*
 * Validates a scope list (non-empty, no NULLs, no unknown or duplicate
 * names) and returns its bits; raises the PX00x errors otherwise.
 */
extern PixlScopeBits pixl_scope_bits_from_array(ArrayType *scopes);

/* The names of the granted scopes, in the guide's order, as text[]. */
extern ArrayType *pixl_scope_array_from_bits(PixlScopeBits bits);

/* Raises ERRCODE_PIXL_UNKNOWN_SCOPE naming the bad value. */
extern void pixl_report_unknown_scope(const char *name, size_t len) pg_attribute_noreturn();

#endif							/* PIXL_SCOPES_H */
