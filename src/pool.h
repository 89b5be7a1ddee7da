/* pool.h — the worker threads (pool.c): a persistent pool that runs the
 * parts of a job on the caller and the workers, and the thread count shared
 * by OpenBLAS and the kernels. Compiled as float and as double (real.h). */
#ifndef CRN_POOL_H
#define CRN_POOL_H

#include "real.h"

/* Run fn(arg, part, nparts) for part = 0..nparts-1 on the caller and the
 * persistent worker threads (nparts = min(max_parts, threads)); returns when
 * all parts are done. Workers are started on first use, never per call. */
typedef void (*crn_part_fn)(void *arg, int part, int nparts);
void CRN_FN(crn_parallel)(crn_part_fn fn, void *arg, int max_parts);

/* Threads for OpenBLAS and our own parallel loops (n <= 0: all cores). */
void CRN_FN(crn_set_threads)(int n);
int CRN_FN(crn_get_threads)(void);
/* The count set by crn_set_threads (0 before any call): the kernels split
 * their work only when it is > 1. */
int CRN_FN(crn_pool_threads)(void);

#endif
