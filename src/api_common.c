/* api_common.c — the public API's version, error and thread calls. */
#include "charrnn.h"
#include "blas.h"
#include "common.h"
#include "config.h"
#include "kernels.h"

/* The public codes are the internal ones. */
#define SAME(e) ((int)CHARRNN_##e == (int)CRN_##e)
_Static_assert(SAME(ENOMEM) && SAME(EIO) && SAME(EINVAL) && SAME(EUTF8) && SAME(EREGEX) && SAME(EFORMAT) &&
                   SAME(ECHECKSUM) && SAME(EEMPTY) && SAME(ERANGE) && SAME(ELIMIT) && SAME(ENONFINITE) &&
                   SAME(EINTR) && SAME(ENOTFOUND),
               "public and internal error codes differ");

int charrnn_version(void) { return CHARRNN_VERSION; }
const char *charrnn_version_string(void) { return CRN_VERSION; }
const char *charrnn_strerror(int err) { return crn_strerror(err); }
const char *charrnn_last_error(void) { return crn_error_message(); }
void charrnn_set_threads(int n) { crn_set_threads(n); }
const char *charrnn_blas_core(void) { return crn_blas_core(); }
const char *charrnn_blas_better_core(void) { return crn_blas_better_core(); }
