/* cell_lstm.c — the LSTM cell over one window (see cell.h for the layout and
 * the formulas; PyTorch gate order i, f, g, o).
 *
 * Backward at step t, with dh the complete gradient w.r.t. h_t and dc the
 * gradient w.r.t. c_t carried from step t+1:
 *   do = dh * tanh(c_t)          dc += dh * o * (1 - tanh(c_t)^2)
 *   di = dc * g   df = dc * c_{t-1}   dg = dc * i   dc_{t-1} = dc * f
 *   pre-activations: sigmoid' = s (1 - s), tanh' = 1 - g^2
 *   dh_{t-1} += dgates_t @ w_h^T */
#include "cell.h"

/* One stream's gates at one step; restrict lets the loop vectorise. */
static inline void lstm_row_forward(real *restrict g,         // (4H) in: pre-activation without b_h; out: i f g o
                                    const real *restrict cp,  // (H) c_{t-1}
                                    real *restrict c,         // (H) c_t
                                    real *restrict tc,        // (H) tanh(c_t)
                                    real *restrict h,         // (H) h_t
                                    const real *restrict b_h, // (4H)
                                    int H) {
    for (int j = 0; j < H; j++) {
        real i = crn_sigmoid(g[j] + b_h[j]);
        real f = crn_sigmoid(g[H + j] + b_h[H + j]);
        real gg = R_TANH(g[2 * H + j] + b_h[2 * H + j]);
        real o = crn_sigmoid(g[3 * H + j] + b_h[3 * H + j]);
        real cn = f * cp[j] + i * gg;
        real th = R_TANH(cn);
        g[j] = i;
        g[H + j] = f;
        g[2 * H + j] = gg;
        g[3 * H + j] = o;
        c[j] = cn;
        tc[j] = th;
        h[j] = o * th;
    }
}

static inline void lstm_row_backward(real *restrict dg,        // (4H) out: d pre-activations
                                     real *restrict dc,        // (H) in: dc_t from t+1; out: dc_{t-1}
                                     const real *restrict g,   // (4H) i f g o
                                     const real *restrict cp,  // (H) c_{t-1}
                                     const real *restrict tc,  // (H) tanh(c_t)
                                     const real *restrict dh,  // (H) d h_t
                                     int H) {
    for (int j = 0; j < H; j++) {
        real i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], th = tc[j], dhj = dh[j];
        real dcj = dc[j] + dhj * o * (1 - th * th);
        dg[j] = dcj * gg * i * (1 - i);
        dg[H + j] = dcj * cp[j] * f * (1 - f);
        dg[2 * H + j] = dcj * i * (1 - gg * gg);
        dg[3 * H + j] = dhj * th * o * (1 - o);
        dc[j] = dcj * f;
    }
}

CRN_CLONES void CRN_FN(crn_lstm_forward)(real *hs, real *cs, real *gates, real *tc, const real *w_h, const real *b_h, real *wp,
                                         int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    const int G = 4 * H;
    if (wp) CRN_FN(crn_pack)(wp, 0, H, G, w_h, G);
    for (int t = 0; t < T; t++) {
        const real *hp = hs + (size_t)t * BH;          // (B, H) h_{t-1}
        const real *cp = cs + (size_t)t * BH;          // (B, H) c_{t-1}
        real *h = hs + (size_t)(t + 1) * BH;           // (B, H)
        real *c = cs + (size_t)(t + 1) * BH;           // (B, H)
        real *gt = gates + (size_t)t * B * G;          // (B, 4H) holds gx_t
        real *tct = tc + (size_t)t * BH;               // (B, H)
        if (wp)
            CRN_FN(crn_gemm_packed)(B, G, H, hp, H, wp, 1, gt, G);
        else
            CRN_FN(crn_gemm_nn)(B, G, H, hp, H, w_h, G, 1, gt, G);
        for (int b = 0; b < B; b++)
            lstm_row_forward(gt + (size_t)b * G, cp + (size_t)b * H, c + (size_t)b * H, tct + (size_t)b * H,
                             h + (size_t)b * H, b_h, H);
    }
}

CRN_CLONES void CRN_FN(crn_lstm_backward)(real *dgx, real *dw_h, real *db_h, real *dh, real *dc, const real *hs, const real *cs,
                               const real *gates, const real *tc, const real *w_h, real *wp, int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    const int G = 4 * H;
    CRN_FN(crn_pack)(wp, 1, G, H, w_h, G); // w_h^T (4H, H)
    memset(dc, 0, BH * sizeof(real)); // nothing flows back from beyond the window
    for (int t = T - 1; t >= 0; t--) {
        const real *cp = cs + (size_t)t * BH;          // (B, H) c_{t-1}
        const real *gt = gates + (size_t)t * B * G;    // (B, 4H)
        const real *tct = tc + (size_t)t * BH;         // (B, H)
        const real *d = dh + (size_t)t * BH;           // (B, H)
        real *dg = dgx + (size_t)t * B * G;            // (B, 4H)
        for (int b = 0; b < B; b++)
            lstm_row_backward(dg + (size_t)b * G, dc + (size_t)b * H, gt + (size_t)b * G, cp + (size_t)b * H,
                              tct + (size_t)b * H, d + (size_t)b * H, H);
        if (t > 0) // dh_{t-1} += dgates_t (B, 4H) @ w_h^T (4H, H)
            CRN_FN(crn_gemm_packed)(B, H, G, dg, G, wp, 1, dh + (size_t)(t - 1) * BH, H);
    }
    // dW_h += H_prev^T (H, T*B) @ dgates (T*B, 4H), one GEMM for the window
    CRN_FN(crn_gemm)(1, 0, H, G, T * B, 1, hs, H, dgx, G, 1, dw_h, G);
    crn_colsum_acc(db_h, dgx, T * B, G);
}
