/* train_dist.c — data-parallel training on MPI ranks (see train_dist.h). */
#include "train_dist.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "optim.h"

int crn_dist_agree_error(int rc) {
    if (crn_dist_size() == 1) return rc;
    int from, err = crn_dist_lowest(rc < 0, &from);
    if (err) return err;
    if (from < 0) return 0;
    struct {
        int32_t rc;
        char msg[500];
    } m;
    memset(&m, 0, sizeof m);
    if (crn_dist_rank() == from) {
        m.rc = rc;
        snprintf(m.msg, sizeof m.msg, "%s", crn_error_message());
    }
    if ((err = crn_dist_bcast(&m, sizeof m, from)) < 0) return err;
    m.msg[sizeof m.msg - 1] = 0;
    return crn_error_set(m.rc < 0 ? m.rc : CRN_EIO, "rank %d: %s", from, m.msg);
}

int crn_dist_rows(uint32_t B, int r, int n, uint32_t *row0, uint32_t *rows) {
    if (n < 1 || B < (uint32_t)n)
        return crn_error_set(CRN_EINVAL, "--batch %u is smaller than the %d MPI ranks: give at least %d (the batch "
                             "is global: each rank trains at least one of its streams)", B, n, n);
    /* the first B % n ranks take one stream more */
    const uint32_t base = B / (uint32_t)n, extra = B % (uint32_t)n, ur = (uint32_t)r;
    *rows = base + (ur < extra);
    *row0 = ur * base + (ur < extra ? ur : extra);
    return 0;
}

int crn_dist_bcast_model(crn_model *m, crn_optim *opt) {
    const size_t bytes = crn_model_num_params(m) * sizeof(float);
    int rc = crn_dist_bcast(crn_model_params(m), bytes, 0);
    for (int i = 0; !rc && opt && i < crn_optim_num_buffers(opt); i++)
        rc = crn_dist_bcast(crn_optim_buffer(opt, i), bytes, 0);
    if (!rc && opt) rc = crn_dist_bcast(&opt->t, sizeof opt->t, 0);
    return rc;
}

int crn_dist_check_params(crn_model *m, uint64_t step) {
    uint64_t crc = crn_crc32(0, crn_model_params(m), crn_model_num_params(m) * sizeof(float));
    int diff = -1, rc = crn_dist_agree_u64(crc, &diff);
    if (rc < 0) return rc;
    if (diff >= 0)
        return crn_error_set(CRN_EINVAL, "rank %d: its parameters differ from rank 0's after step %llu (a bug in the "
                             "data-parallel step; please report it)", diff, (unsigned long long)step);
    return 0;
}

int crn_dist_check_corpus(uint64_t key, const char *path) {
    int diff = -1, rc = crn_dist_agree_u64(key, &diff);
    if (rc < 0) return rc;
    if (diff >= 0)
        return crn_error_set(CRN_EINVAL, "rank %d: its corpus differs from rank 0's %s (checksum, size or "
                             "vocabulary): every rank must read the same text", diff, path);
    return 0;
}

int crn_dist_check_options(uint64_t key) {
    int diff = -1, rc = crn_dist_agree_u64(key, &diff);
    if (rc < 0) return rc;
    if (diff >= 0)
        return crn_error_set(CRN_EINVAL, "rank %d: its training options differ from rank 0's: give every rank "
                             "the same command line", diff);
    return 0;
}

/* The small exchange of a step, summed as doubles (exact: small integers,
 * and sums of loss terms in whatever order MPI takes). */
enum { X_LOSS, X_COUNT, X_NONFINITE, X_FAILED, X_STOP, X_TIME_UP, X_SAVE_DUE, X_HORIZON, X_N };

int crn_dist_step_gradient(crn_model *m, crn_state *st, const uint32_t *x, const uint32_t *y, uint32_t B,
                           uint32_t T, crn_rng *rng, double clip, crn_dist_step *ex, double *loss, size_t *count,
                           double *norm) {
    float *g = crn_model_grads(m);
    const size_t np = crn_model_num_params(m);
    double l = 0;
    size_t k = 0;
    crn_model_zero_grads(m);
    *loss = NAN;
    *count = 0;
    *norm = NAN;
    int rc = crn_model_forward(m, st, x, y, B, T, rng, &l, &k);
    if (rc >= 0 && isfinite(l)) rc = crn_model_backward(m);
    double v[X_N] = {0};
    v[X_LOSS] = rc < 0 ? 0 : l;
    v[X_COUNT] = (double)k;
    v[X_NONFINITE] = rc >= 0 && !isfinite(l);
    v[X_FAILED] = rc < 0;
    v[X_STOP] = (ex->flags & CRN_DIST_STOP) != 0;
    v[X_TIME_UP] = (ex->flags & CRN_DIST_TIME_UP) != 0;
    v[X_SAVE_DUE] = (ex->flags & CRN_DIST_SAVE_DUE) != 0;
    v[X_HORIZON] = crn_dist_rank() == 0 ? (double)ex->horizon : 0;
    int err = crn_dist_sum_f64(v, X_N);
    if (err < 0) return err;
    if (v[X_FAILED] > 0) return crn_dist_agree_error(rc);
    ex->flags = (v[X_STOP] > 0 ? CRN_DIST_STOP : 0u) | (v[X_TIME_UP] > 0 ? CRN_DIST_TIME_UP : 0u) |
                (v[X_SAVE_DUE] > 0 ? CRN_DIST_SAVE_DUE : 0u);
    ex->horizon = (uint64_t)v[X_HORIZON];
    *count = (size_t)v[X_COUNT];
    if (v[X_NONFINITE] > 0) return 0; /* every rank skips the update (loss stays NaN) */
    *loss = v[X_LOSS];
    /* backward took the mean over this rank's k targets: weight it by
     * k / all, so the sum is the mean over all targets (also when the ranks
     * have different numbers of streams; 1/N: exact for N a power of two) */
    if (v[X_COUNT] > 0 && (double)k != v[X_COUNT]) {
        const float w = (float)((double)k / v[X_COUNT]);
        for (size_t i = 0; i < np; i++) g[i] *= w;
    }
    if ((err = crn_dist_sum_f32(g, np)) < 0) return err;
    *norm = crn_clip_grad_norm(g, np, clip);
    return 0;
}

int crn_dist_sum_eval(int rc, double *nats, uint64_t *count) {
    int err = crn_dist_agree_error(rc);
    if (err < 0) return err;
    double v[2] = {*nats, (double)*count};
    if ((err = crn_dist_sum_f64(v, 2)) < 0) return err;
    *nats = v[0];
    *count = (uint64_t)v[1];
    return 0;
}

int crn_dist_any(int v) {
    int32_t x = v != 0;
    int rc = crn_dist_max_i32(&x);
    return rc < 0 ? rc : x;
}

int crn_dist_gather_rows(float *all, const float *mine, size_t blocks, uint32_t B_all, uint32_t row0,
                         uint32_t rows, uint32_t H) {
    const size_t bh = (size_t)B_all * H, rh = (size_t)rows * H;
    memset(all, 0, blocks * bh * sizeof *all);
    for (size_t k = 0; k < blocks; k++) memcpy(all + k * bh + (size_t)row0 * H, mine + k * rh, rh * sizeof *all);
    /* the rows are disjoint: a sum with zeros elsewhere is the gather, exact */
    return crn_dist_sum_f32(all, blocks * bh);
}

void crn_dist_take_rows(float *mine, const float *all, size_t blocks, uint32_t B_all, uint32_t row0, uint32_t rows,
                        uint32_t H) {
    const size_t bh = (size_t)B_all * H, rh = (size_t)rows * H;
    for (size_t k = 0; k < blocks; k++) memcpy(mine + k * rh, all + k * bh + (size_t)row0 * H, rh * sizeof *mine);
}
