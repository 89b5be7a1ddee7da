/* cell_rnn.c — the Elman cell over one window (see cell.h for the layout):
 *   h_t = act(gx_t + h_{t-1} @ w_h + b_h),  act = tanh or relu.
 * Backward needs only hs: tanh' = 1 - h^2, relu' = [h > 0]. */
#include "cell.h"

CRN_CLONES void CRN_FN(crn_rnn_forward)(real *hs, const real *gx, const real *w_h, const real *b_h, real *wp, int relu,
                                        int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    if (wp) CRN_FN(crn_pack)(wp, 0, H, H, w_h, H);
    for (int t = 0; t < T; t++) {
        const real *hp = hs + (size_t)t * BH;  // (B, H) h_{t-1}
        real *h = hs + (size_t)(t + 1) * BH;   // (B, H) h_t
        memcpy(h, gx + (size_t)t * BH, BH * sizeof(real));
        if (wp)
            CRN_FN(crn_gemm_packed)(B, H, H, hp, H, wp, 1, h, H);
        else
            CRN_FN(crn_gemm_nn)(B, H, H, hp, H, w_h, H, 1, h, H);
        for (int b = 0; b < B; b++) {
            real *hb = h + (size_t)b * H;
            if (relu)
                for (int j = 0; j < H; j++) {
                    real v = hb[j] + b_h[j];
                    hb[j] = v > 0 ? v : 0;
                }
            else
                for (int j = 0; j < H; j++) hb[j] = R_TANH(hb[j] + b_h[j]);
        }
    }
}

CRN_CLONES void CRN_FN(crn_rnn_backward)(real *dgx, real *dw_h, real *db_h, real *dh, const real *hs, const real *w_h, real *wp,
                              int relu, int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    CRN_FN(crn_pack)(wp, 1, H, H, w_h, H); // w_h^T
    for (int t = T - 1; t >= 0; t--) {
        const real *h = hs + (size_t)(t + 1) * BH; // (B, H)
        const real *d = dh + (size_t)t * BH;       // (B, H) complete: t+1 already added its share
        real *dp = dgx + (size_t)t * BH;           // (B, H)
        if (relu)
            for (size_t k = 0; k < BH; k++) dp[k] = h[k] > 0 ? d[k] : 0;
        else
            for (size_t k = 0; k < BH; k++) dp[k] = d[k] * (1 - h[k] * h[k]);
        if (t > 0) // dh_{t-1} += dpre_t @ w_h^T
            CRN_FN(crn_gemm_packed)(B, H, H, dp, H, wp, 1, dh + (size_t)(t - 1) * BH, H);
    }
    // the weight gradient of the whole window at once: dW_h += H_prev^T (H, T*B) @ dpre (T*B, H)
    CRN_FN(crn_gemm)(1, 0, H, H, T * B, 1, hs, H, dgx, H, 1, dw_h, H);
    crn_colsum_acc(db_h, dgx, T * B, H);
}
