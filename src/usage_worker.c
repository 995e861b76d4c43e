/* STUB: to be replaced by the usage-worker module. */
#include "postgres.h"
#include "usage_worker.h"

void pixl_usage_worker_register(void) {}
void pixl_usage_worker_main(Datum main_arg) { (void) main_arg; }
