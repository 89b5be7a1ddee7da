/* cell_gru.c — the GRU cell over one window, exactly PyTorch's nn.GRU (see
 * cell.h for the formulas; gate order r, z, n; b_hn stays inside the r
 * product, which is why hg = h_{t-1} @ w_h + b_h is saved apart from gx).
 *
 * Backward at step t, with dh the complete gradient w.r.t. h_t:
 *   dn = dh * (1 - z)   dz = dh * (h_{t-1} - n)   dh_{t-1} += dh * z
 *   dn_pre = dn * (1 - n^2)      -> dgx_n = dn_pre,  dhg_n = dn_pre * r
 *   dr = dn_pre * hg_n           -> dgx_r = dhg_r = dr * r (1 - r)
 *   dz_pre = dz * z (1 - z)      -> dgx_z = dhg_z = dz_pre
 *   dh_{t-1} += dhg_t @ w_h^T */
#include "cell.h"

void CRN_FN(crn_gru_forward)(real *hs, real *gates, real *hg, const real *w_h, const real *b_h, int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    const int G = 3 * H;
    for (int t = 0; t < T; t++) {
        const real *hp = hs + (size_t)t * BH;  // (B, H) h_{t-1}
        real *h = hs + (size_t)(t + 1) * BH;   // (B, H)
        real *gt = gates + (size_t)t * B * G;  // (B, 3H) holds gx_t
        real *ht = hg + (size_t)t * B * G;     // (B, 3H)
        CRN_FN(crn_gemm)(0, 0, B, G, H, 1, hp, H, w_h, G, 0, ht, G);
        for (int b = 0; b < B; b++) {
            real *gr = gt + (size_t)b * G, *gz = gr + H, *gn = gz + H;
            real *hr = ht + (size_t)b * G, *hz = hr + H, *hn = hz + H;
            const real *hpb = hp + (size_t)b * H;
            real *hb = h + (size_t)b * H;
            for (int j = 0; j < H; j++) {
                hr[j] += b_h[j];
                hz[j] += b_h[H + j];
                hn[j] += b_h[2 * H + j];
                real r = crn_sigmoid(gr[j] + hr[j]);
                real z = crn_sigmoid(gz[j] + hz[j]);
                real n = R_TANH(gn[j] + r * hn[j]);
                gr[j] = r, gz[j] = z, gn[j] = n;
                hb[j] = (1 - z) * n + z * hpb[j];
            }
        }
    }
}

void CRN_FN(crn_gru_backward)(real *dgx, real *dhg, real *dw_h, real *db_h, real *dh, const real *hs,
                              const real *gates, const real *hg, const real *w_h, int B, int T, int H) {
    const size_t BH = (size_t)B * H;
    const int G = 3 * H;
    for (int t = T - 1; t >= 0; t--) {
        const real *hp = hs + (size_t)t * BH;        // (B, H) h_{t-1}
        const real *gt = gates + (size_t)t * B * G;  // (B, 3H)
        const real *ht = hg + (size_t)t * B * G;     // (B, 3H)
        const real *d = dh + (size_t)t * BH;         // (B, H)
        real *dx = dgx + (size_t)t * B * G;          // (B, 3H)
        real *dr = dhg + (size_t)t * B * G;          // (B, 3H)
        real *dprev = t > 0 ? dh + (size_t)(t - 1) * BH : NULL;
        for (int b = 0; b < B; b++) {
            const real *gr = gt + (size_t)b * G, *gz = gr + H, *gn = gz + H;
            const real *hn = ht + (size_t)b * G + 2 * H;
            const real *hpb = hp + (size_t)b * H, *db = d + (size_t)b * H;
            real *dxr = dx + (size_t)b * G, *dxz = dxr + H, *dxn = dxz + H;
            real *dhr = dr + (size_t)b * G, *dhz = dhr + H, *dhn = dhz + H;
            for (int j = 0; j < H; j++) {
                real r = gr[j], z = gz[j], n = gn[j], dhj = db[j];
                real dnp = dhj * (1 - z) * (1 - n * n);
                real dzp = dhj * (hpb[j] - n) * z * (1 - z);
                real drp = dnp * hn[j] * r * (1 - r);
                dxr[j] = drp, dxz[j] = dzp, dxn[j] = dnp;
                dhr[j] = drp, dhz[j] = dzp, dhn[j] = dnp * r;
            }
            if (dprev) {
                real *dpb = dprev + (size_t)b * H;
                for (int j = 0; j < H; j++) dpb[j] += db[j] * gz[j];
            }
        }
        if (dprev) // dh_{t-1} += dhg_t (B, 3H) @ w_h^T (3H, H)
            CRN_FN(crn_gemm)(0, 1, B, H, G, 1, dr, G, w_h, G, 1, dprev, H);
    }
    // dW_h += H_prev^T (H, T*B) @ dhg (T*B, 3H)
    CRN_FN(crn_gemm)(1, 0, H, G, T * B, 1, hs, H, dhg, G, 1, dw_h, G);
    crn_colsum_acc(db_h, dhg, T * B, G);
}
