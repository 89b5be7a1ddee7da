/* dist.h — the seam to MPI for data-parallel training: rank and size,
 * broadcast, the in-place fused gradient all-reduce, reductions for
 * validation and agreement checks.
 *
 * Built with Open MPI (meson -Dmpi=auto|enabled) the functions call MPI
 * once crn_dist_init() found the process started by mpirun (or another
 * launcher that sets the Open MPI or PMI environment); otherwise, and in a
 * build without MPI, there is one rank and every call is a no-op that
 * returns 0. All calls are collective: every rank must make them in the same
 * order. Errors are negative CRN_E* codes with a message; the library never
 * aborts the job itself (crn_dist_abort is for the CLI). */
#ifndef CRN_DIST_H
#define CRN_DIST_H

#include <stddef.h>
#include <stdint.h>

/* 1 if this binary was built with MPI. */
int crn_dist_built(void);
/* Start MPI if launched by mpirun (idempotent; a no-op otherwise).
 * @return 0, or CRN_EIO if MPI_Init failed. */
int crn_dist_init(int *argc, char ***argv);
/* Finish MPI if crn_dist_init started it. */
void crn_dist_finalize(void);
int crn_dist_rank(void); /* 0 without MPI */
int crn_dist_size(void); /* 1 without MPI */

/* Broadcast n bytes from root to every rank. */
int crn_dist_bcast(void *buf /* (n) bytes */, size_t n, int root);
/* In-place sums over ranks (one fused call for the whole buffer). */
int crn_dist_sum_f32(float *buf /* (n) */, size_t n);
int crn_dist_sum_f64(double *buf /* (n) */, size_t n);
int crn_dist_sum_u64(uint64_t *buf /* (n) */, size_t n);
/* The largest of v over ranks. */
int crn_dist_max_i32(int32_t *v);
/* Does every rank hold the same v? *first_diff = the lowest rank whose v
 * differs from rank 0's (or -1). */
int crn_dist_agree_u64(uint64_t v, int *first_diff);
/* The lowest rank whose flag is non-zero, or -1 if none (in *lowest). */
int crn_dist_lowest(int flag, int *lowest);
/* Stop every rank of the job with this exit status (does not return when
 * MPI runs; without MPI it returns and the caller exits). */
void crn_dist_abort(int status);

#endif
