/* cell_rnn.c — the Elman cell over one window (see cell.h for the layout):
 *   h_t = act(gx_t + h_{t-1} @ w_h + b_h),  act = tanh or relu.
 * Backward needs only hs: tanh' = 1 - h^2, relu' = [h > 0]. With layer
 * normalisation (cell.h) gx holds x W_x and both projections are normalised
 * here, row by row, in the activation's pass; their gradients go through the
 * LN backward (crn_ln_row_backward). */
#include "cell.h"

/* One stream at one step with layer normalisation: h = act(LN(x W_x) +
 * LN(h_{t-1} W_h) + b_h) in one pass after the statistics, the normalised
 * values saved (xhat; hr in place). */
CRN_INLINE void rnn_ln_row_forward(real *restrict h,         // (H) out: h_t
                                   const real *restrict gx,  // (H) x W_x
                                   real *restrict hr,        // (H) in: h_{t-1} @ w_h; out: normalised
                                   real *restrict xhat,      // (H) out
                                   real *restrict xrs,       // (1) 1/std of x W_x
                                   real *restrict hrs,       // (1)
                                   const real *restrict b_h, // (H)
                                   const crn_ln *ln, int relu, int H) {
    const real *restrict g1 = ln->g_x, *restrict bx = ln->b_x, *restrict g2 = ln->g_h;
    real mx, mh, rx, rh;
    crn_ln_moments(gx, H, &mx, &rx);
    crn_ln_moments(hr, H, &mh, &rh);
    *xrs = rx;
    *hrs = rh;
    CRN_IVDEP
    for (int k = 0; k < H; k++) {
        const real xh = (gx[k] - mx) * rx, hh = (hr[k] - mh) * rh;
        xhat[k] = xh;
        hr[k] = hh;
        const real v = g1[k] * xh + bx[k] + g2[k] * hh + b_h[k];
        h[k] = relu ? (v > 0 ? v : 0) : R_TANH(v);
    }
}

struct rnn_job {
    real *hs, *dgx, *dh;
    const real *gx, *w_h, *b_h, *wp;
    const crn_ln *ln;
    int relu, B, T, H;
};

/* Streams [r0, r1) over the whole window. */
CRN_CLONES static void rnn_forward_rows(const struct rnn_job *j, int r0, int r1) {
    const int B = j->B, H = j->H, n = r1 - r0;
    const size_t BH = (size_t)B * H;
    const real *b_h = j->b_h;
    for (int t = 0; t < j->T; t++) {
        const real *hp = j->hs + (size_t)t * BH + (size_t)r0 * H; // (n, H) h_{t-1}
        real *h = j->hs + (size_t)(t + 1) * BH + (size_t)r0 * H;  // (n, H) h_t
        const real *gx = j->gx + (size_t)t * BH + (size_t)r0 * H; // (n, H)
        const crn_ln *ln = j->ln;
        if (!ln) memcpy(h, gx, (size_t)n * H * sizeof(real));
        const size_t r = (size_t)t * B + r0;
        real *acc = ln ? ln->hhat + r * H : h; // (n, H) the recurrent product
        if (j->wp)
            CRN_FN(crn_gemm_packed)(n, H, H, hp, H, j->wp, !ln, acc, H);
        else if (j->w_h) // else the caller has added (with ln: written) h_{t-1} @ w_h
            CRN_FN(crn_gemm_nn)(n, H, H, hp, H, j->w_h, H, !ln, acc, H);
        if (ln) {
            for (int b = 0; b < n; b++)
                rnn_ln_row_forward(h + (size_t)b * H, gx + (size_t)b * H, acc + (size_t)b * H, ln->xhat + (r + b) * H,
                                   ln->xrs + r + b, ln->hrs + r + b, b_h, ln, j->relu, H);
            continue;
        }
        for (int b = 0; b < n; b++) {
            real *hb = h + (size_t)b * H;
            if (j->relu)
                for (int k = 0; k < H; k++) {
                    real v = hb[k] + b_h[k];
                    hb[k] = v > 0 ? v : 0;
                }
            else
                for (int k = 0; k < H; k++) hb[k] = R_TANH(hb[k] + b_h[k]);
        }
    }
}

static void rnn_forward_part(void *p, int part, int nparts) {
    const struct rnn_job *j = p;
    int r0, r1;
    crn_split_rows(j->B, part, nparts, &r0, &r1);
    if (r0 < r1) rnn_forward_rows(j, r0, r1);
}

void CRN_FN(crn_rnn_forward)(real *hs, const real *gx, const real *w_h, const real *b_h, real *wp, const crn_ln *ln,
                             int relu, int B, int T, int H) {
    if (wp) CRN_FN(crn_pack)(wp, 0, H, H, w_h, H);
    struct rnn_job j = {hs, NULL, NULL, gx, w_h, b_h, wp, ln, relu, B, T, H};
    CRN_FN(crn_parallel)(rnn_forward_part, &j, crn_row_parts(B, (double)H * H));
}

CRN_CLONES static void rnn_backward_rows(const struct rnn_job *j, int r0, int r1) {
    const int B = j->B, H = j->H, n = r1 - r0;
    const size_t BH = (size_t)B * H, nH = (size_t)n * H;
    if (j->ln) memset(j->ln->acc + (size_t)r0 * CRN_LN_ACC(1, H), 0, (size_t)n * CRN_LN_ACC(1, H) * sizeof(real));
    for (int t = j->T - 1; t >= 0; t--) {
        const real *h = j->hs + (size_t)(t + 1) * BH + (size_t)r0 * H; // (n, H)
        const real *d = j->dh + (size_t)t * BH + (size_t)r0 * H;       // (n, H) complete: t+1 added its share
        real *dp = j->dgx + (size_t)t * BH + (size_t)r0 * H;           // (n, H)
        if (j->relu)
            for (size_t k = 0; k < nH; k++) dp[k] = h[k] > 0 ? d[k] : 0;
        else
            for (size_t k = 0; k < nH; k++) dp[k] = d[k] * (1 - h[k] * h[k]);
        const crn_ln *ln = j->ln;
        const size_t r = (size_t)t * B + r0;
        for (int b = 0; ln && b < n; b++)
            crn_ln_row_backward(dp + (size_t)b * H, NULL, ln->dhr + (r + b) * H, dp + (size_t)b * H,
                                ln->acc + (size_t)(r0 + b) * CRN_LN_ACC(1, H), ln->xhat + (r + b) * H,
                                ln->xrs + r + b, ln->hhat + (r + b) * H, ln->hrs + r + b, ln, 1, H);
        if (t > 0) // dh_{t-1} += dpre_t @ w_h^T (with ln: d (h_{t-1} @ w_h))
            CRN_FN(crn_gemm_packed)(n, H, H, ln ? ln->dhr + r * H : dp, H, j->wp, 1,
                                    j->dh + (size_t)(t - 1) * BH + (size_t)r0 * H, H);
    }
}

static void rnn_backward_part(void *p, int part, int nparts) {
    const struct rnn_job *j = p;
    int r0, r1;
    crn_split_rows(j->B, part, nparts, &r0, &r1);
    if (r0 < r1) rnn_backward_rows(j, r0, r1);
}

CRN_CLONES void CRN_FN(crn_rnn_backward)(real *dgx, real *dw_h, real *db_h, real *dh, const real *hs, const real *w_h,
                                         real *wp, const crn_ln *ln, int relu, int B, int T, int H) {
    CRN_FN(crn_pack)(wp, 1, H, H, w_h, H); // w_h^T
    struct rnn_job j = {(real *)hs, dgx, dh, NULL, w_h, NULL, wp, ln, relu, B, T, H};
    CRN_FN(crn_parallel)(rnn_backward_part, &j, crn_row_parts(B, (double)H * H));
    // the weight gradient of the whole window at once: dW_h += H_prev^T (H, T*B) @ dpre (T*B, H)
    CRN_FN(crn_gemm)(1, 0, H, H, T * B, 1, hs, H, ln ? ln->dhr : dgx, H, 1, dw_h, H);
    if (ln)
        crn_ln_reduce(ln, db_h, 0, 0, B, 1, H);
    else
        crn_colsum_acc(db_h, dgx, T * B, H);
}
