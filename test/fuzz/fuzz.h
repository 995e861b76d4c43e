/* Shared by the libFuzzer harness and its stubs (test/fuzz). */
#ifndef PIXL_FUZZ_H
#define PIXL_FUZZ_H

#include <setjmp.h>

#include "utils/array.h"

extern sigjmp_buf fuzz_jmp;
extern char fuzz_errmsg[4096];
extern int	fuzz_errcode;

/* A text[] of nelems (NULL where nulls[i]), ndim dimensions, lower bound lb. */
extern ArrayType *fuzz_text_array(Datum *elems, bool *nulls, int nelems,
								  int ndim, int lb);

#endif
