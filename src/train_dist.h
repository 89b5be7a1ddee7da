/* train_dist.h — the MPI side of data-parallel training: what the trainer
 * (train.c) does besides one process's work when it runs on N > 1 ranks.
 *
 * The layout depends on the global batch B only: rank r of N trains the
 * streams (rows) [r*B/N, (r+1)*B/N) of the batcher over all B (B % N == 0).
 * Every step each rank runs forward and backward over its rows; then one
 * small all-reduce sums the losses, target counts and flags (a stop request
 * on any rank, rank 0's clock decisions, a failed rank), and when every
 * rank's loss is finite one fused in-place MPI_Allreduce sums the whole
 * gradient buffer; scaled by (this rank's targets / all targets) before the
 * sum, it is the gradient of the mean over all B*T targets, as one process
 * with batch B computes it (only the summation order differs). Clipping and
 * the optimizer step then run on identical buffers, so the parameters stay
 * identical on every rank. Checkpoints hold the carried state of all B
 * streams (gathered), so a run resumes with any N that divides B.
 *
 * All functions are collective (every rank calls them in the same order)
 * and return 0 or a negative error that is the same on every rank; its
 * message names the rank that failed ("rank 1: ..."). With one rank they
 * reduce to the single-process work. */
#ifndef CRN_TRAIN_DIST_H
#define CRN_TRAIN_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"
#include "rng.h"

/* Flags of one step's exchange: in, this rank's; out, OR over ranks. */
enum {
    CRN_DIST_STOP = 1,     /* a stop was requested (signal) */
    CRN_DIST_TIME_UP = 2,  /* rank 0: the session's time budget is used up */
    CRN_DIST_SAVE_DUE = 4, /* rank 0: --save-every seconds have passed */
};

/* What a step exchanges besides the gradients. */
typedef struct crn_dist_step {
    unsigned flags;   /* CRN_DIST_* in (this rank's), out (any rank's) */
    uint64_t horizon; /* in: rank 0's schedule horizon; out: rank 0's on every rank */
} crn_dist_step;

/* Every rank's rc agreed: 0 if all are 0, else the error of the lowest
 * failing rank with its message prefixed "rank K: " (on every rank). */
int crn_dist_agree_error(int rc);
/* The rows of rank r of n in a global batch B: [*row0, *row0 + *rows),
 * contiguous in rank order; the first B % n ranks have one row more.
 * @return 0 or CRN_EINVAL (B < n: a rank would have none; the message says so). */
int crn_dist_rows(uint32_t B, int r, int n, uint32_t *row0, uint32_t *rows);
/* Rank 0's parameters and optimizer state (buffers and update count) to
 * every rank. opt may be NULL. */
int crn_dist_bcast_model(crn_model *m, crn_optim *opt);
/* Do all ranks hold the same parameters? CRN_EINVAL naming the first rank
 * whose differ (a bug: the steps must keep them identical). */
int crn_dist_check_params(crn_model *m, uint64_t step);
/* Does every rank train on the same corpus? key: a digest of what this rank
 * loaded (file CRC, sizes, vocabulary); CRN_EINVAL naming the rank whose
 * differs, and path. */
int crn_dist_check_corpus(uint64_t key, const char *path);
/* Were all ranks given the same training options? key: a digest of them;
 * CRN_EINVAL naming the rank whose differ (ranks that disagree on, e.g.,
 * --steps would leave the loop at different steps). */
int crn_dist_check_options(uint64_t key);

/* One data-parallel gradient over this rank's rows x, y (T, B) (B = its
 * rows): zero the gradients, forward (dropout from rng) and, if the loss is
 * finite, backward; exchange loss, counts and flags; if every rank's loss is
 * finite, the fused gradient sum, then clipping to clip (0 = off). rc_local
 * is an error of this rank before the step (it takes part, and all fail).
 * *loss, *count: the sums over all ranks; *norm the global norm before
 * clipping (NaN when some rank's loss was not finite).
 * @return 0 or the agreed error. */
int crn_dist_step_gradient(crn_model *m, crn_state *st, const uint32_t *x, const uint32_t *y, uint32_t B,
                           uint32_t T, crn_rng *rng, double clip, crn_dist_step *ex, double *loss, size_t *count,
                           double *norm);

/* Sum nats and count of a validation pass over ranks (with this rank's rc
 * agreed first). */
int crn_dist_sum_eval(int rc, double *nats, uint64_t *count);
/* Did any rank ask to stop (during validation)? 1 / 0, or an error. */
int crn_dist_any(int v);

/* The carried state of all B_all streams from every rank's rows:
 * blocks of (rows, H) in mine (blocks * rows * H) -> blocks of (B_all, H)
 * in all (blocks * B_all * H), rows [row0, row0 + rows) of each from this
 * rank. The result is on every rank. */
int crn_dist_gather_rows(float *all, const float *mine, size_t blocks, uint32_t B_all, uint32_t row0,
                         uint32_t rows, uint32_t H);
/* This rank's rows of all (no communication): the inverse of the gather. */
void crn_dist_take_rows(float *mine, const float *all, size_t blocks, uint32_t B_all, uint32_t row0, uint32_t rows,
                        uint32_t H);

#endif
