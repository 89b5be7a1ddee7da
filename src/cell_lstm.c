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

void CRN_FN(crn_lstm_forward)(real *hs, real *cs, real *gates, real *tc, const real *w_h, const real *b_h, int B,
                              int T, int H) {
    const size_t BH = (size_t)B * H;
    const int G = 4 * H;
    for (int t = 0; t < T; t++) {
        const real *hp = hs + (size_t)t * BH;          // (B, H) h_{t-1}
        const real *cp = cs + (size_t)t * BH;          // (B, H) c_{t-1}
        real *h = hs + (size_t)(t + 1) * BH;           // (B, H)
        real *c = cs + (size_t)(t + 1) * BH;           // (B, H)
        real *gt = gates + (size_t)t * B * G;          // (B, 4H) holds gx_t
        real *tct = tc + (size_t)t * BH;               // (B, H)
        CRN_FN(crn_gemm)(0, 0, B, G, H, 1, hp, H, w_h, G, 1, gt, G);
        for (int b = 0; b < B; b++) {
            real *gi = gt + (size_t)b * G, *gf = gi + H, *gg = gf + H, *go = gg + H;
            const real *bi = b_h, *bf = b_h + H, *bg = bf + H, *bo = bg + H;
            const real *cpb = cp + (size_t)b * H;
            real *cb = c + (size_t)b * H, *hb = h + (size_t)b * H, *tb = tct + (size_t)b * H;
            for (int j = 0; j < H; j++) {
                real i = crn_sigmoid(gi[j] + bi[j]);
                real f = crn_sigmoid(gf[j] + bf[j]);
                real g = R_TANH(gg[j] + bg[j]);
                real o = crn_sigmoid(go[j] + bo[j]);
                real cn = f * cpb[j] + i * g;
                real th = R_TANH(cn);
                gi[j] = i, gf[j] = f, gg[j] = g, go[j] = o;
                cb[j] = cn;
                tb[j] = th;
                hb[j] = o * th;
            }
        }
    }
}

void CRN_FN(crn_lstm_backward)(real *dgx, real *dw_h, real *db_h, real *dh, real *dc, const real *hs, const real *cs,
                               const real *gates, const real *tc, const real *w_h, int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    const int G = 4 * H;
    memset(dc, 0, BH * sizeof(real)); // nothing flows back from beyond the window
    for (int t = T - 1; t >= 0; t--) {
        const real *cp = cs + (size_t)t * BH;          // (B, H) c_{t-1}
        const real *gt = gates + (size_t)t * B * G;    // (B, 4H)
        const real *tct = tc + (size_t)t * BH;         // (B, H)
        const real *d = dh + (size_t)t * BH;           // (B, H)
        real *dg = dgx + (size_t)t * B * G;            // (B, 4H)
        for (int b = 0; b < B; b++) {
            const real *gi = gt + (size_t)b * G, *gf = gi + H, *gg = gf + H, *go = gg + H;
            const real *cpb = cp + (size_t)b * H, *tb = tct + (size_t)b * H, *db = d + (size_t)b * H;
            real *dcb = dc + (size_t)b * H;
            real *di = dg + (size_t)b * G, *df = di + H, *dgg = df + H, *dov = dgg + H;
            for (int j = 0; j < H; j++) {
                real i = gi[j], f = gf[j], g = gg[j], o = go[j], th = tb[j];
                real dhj = db[j];
                real dcj = dcb[j] + dhj * o * (1 - th * th);
                real dop = dhj * th;
                di[j] = dcj * g * i * (1 - i);
                df[j] = dcj * cpb[j] * f * (1 - f);
                dgg[j] = dcj * i * (1 - g * g);
                dov[j] = dop * o * (1 - o);
                dcb[j] = dcj * f;
            }
        }
        if (t > 0) // dh_{t-1} += dgates_t (B, 4H) @ w_h^T (4H, H)
            CRN_FN(crn_gemm)(0, 1, B, H, G, 1, dg, G, w_h, G, 1, dh + (size_t)(t - 1) * BH, H);
    }
    // dW_h += H_prev^T (H, T*B) @ dgates (T*B, 4H), one GEMM for the window
    CRN_FN(crn_gemm)(1, 0, H, G, T * B, 1, hs, H, dgx, G, 1, dw_h, G);
    crn_colsum_acc(db_h, dgx, T * B, G);
}
