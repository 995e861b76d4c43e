/* STUB: to be replaced by the verification module. */
#include "postgres.h"
#include "pixltoken.h"
