/* cell_gru.c — the GRU cell over one window, exactly PyTorch's nn.GRU (see
 * cell.h for the formulas; gate order r, z, n; b_hn stays inside the r
 * product, which is why hg = h_{t-1} @ w_h + b_h is saved apart from gx).
 *
 * Backward at step t, with dh the complete gradient w.r.t. h_t:
 *   dn = dh * (1 - z)   dz = dh * (h_{t-1} - n)   dh_{t-1} += dh * z
 *   dn_pre = dn * (1 - n^2)      -> dgx_n = dn_pre,  dhg_n = dn_pre * r
 *   dr = dn_pre * hg_n           -> dgx_r = dhg_r = dr * r (1 - r)
 *   dz_pre = dz * z (1 - z)      -> dgx_z = dhg_z = dz_pre
 *   dh_{t-1} += dhg_t @ w_h^T
 * With layer normalisation (cell.h) gx = LN(x W_x; g_x, b_x) and
 * hg = g_h * LN(h_{t-1} @ w_h) + b_h, both computed here row by row, and
 * dh_{t-1} += (the LN backward of dhg_t) @ w_h^T. */
#include "cell.h"

/* One stream at one step; restrict lets the loops vectorise. */
static inline void gru_row_forward(real *restrict g,         // (3H) in: gx; out: r z n
                                   real *restrict hg,        // (3H) in: h_{t-1} @ w_h; out: + b_h
                                   real *restrict h,         // (H) h_t
                                   const real *restrict hp,  // (H) h_{t-1}
                                   const real *restrict b_h, // (3H)
                                   int H) {
    for (int j = 0; j < 3 * H; j++) hg[j] += b_h[j];
    for (int j = 0; j < H; j++) {
        real r = crn_sigmoid(g[j] + hg[j]);
        real z = crn_sigmoid(g[H + j] + hg[H + j]);
        real n = R_TANH(g[2 * H + j] + r * hg[2 * H + j]);
        g[j] = r;
        g[H + j] = z;
        g[2 * H + j] = n;
        h[j] = (1 - z) * n + z * hp[j];
    }
}

static inline void gru_row_backward(real *restrict dx,        // (3H) out: d gx
                                    real *restrict dhg,       // (3H) out: d hg
                                    real *restrict dprev,     // (H) += d h_{t-1} (direct path); NULL at t = 0
                                    const real *restrict g,   // (3H) r z n
                                    const real *restrict hg,  // (3H)
                                    const real *restrict hp,  // (H) h_{t-1}
                                    const real *restrict dh,  // (H) d h_t
                                    int H) {
    for (int j = 0; j < H; j++) {
        real r = g[j], z = g[H + j], n = g[2 * H + j], dhj = dh[j];
        real dnp = dhj * (1 - z) * (1 - n * n);
        real dzp = dhj * (hp[j] - n) * z * (1 - z);
        real drp = dnp * hg[2 * H + j] * r * (1 - r);
        dx[j] = drp;
        dx[H + j] = dzp;
        dx[2 * H + j] = dnp;
        dhg[j] = drp;
        dhg[H + j] = dzp;
        dhg[2 * H + j] = dnp * r;
    }
    if (dprev)
        for (int j = 0; j < H; j++) dprev[j] += dh[j] * g[H + j];
}

struct gru_job {
    real *hs, *gates, *hg, *dgx, *dhg, *dh;
    const real *w_h, *b_h, *wp;
    const crn_ln *ln;
    int B, T, H;
};

/* Streams [r0, r1) over the whole window. */
CRN_CLONES static void gru_forward_rows(const struct gru_job *j, int r0, int r1) {
    const int B = j->B, H = j->H, G = 3 * H, n = r1 - r0;
    const size_t BH = (size_t)B * H;
    for (int t = 0; t < j->T; t++) {
        const real *hp = j->hs + (size_t)t * BH + (size_t)r0 * H; // (n, H) h_{t-1}
        real *h = j->hs + (size_t)(t + 1) * BH + (size_t)r0 * H;  // (n, H)
        real *gt = j->gates + ((size_t)t * B + r0) * G;           // (n, 3H) holds gx_t
        real *ht = j->hg + ((size_t)t * B + r0) * G;              // (n, 3H)
        const crn_ln *ln = j->ln;
        const size_t r = (size_t)t * B + r0;
        real *acc = ln ? ln->hhat + r * G : ht; // (n, 3H) the recurrent product
        if (j->wp)
            CRN_FN(crn_gemm_packed)(n, G, H, hp, H, j->wp, 0, acc, G);
        else if (j->w_h) // else the caller has written h_{t-1} @ w_h into hg (with ln: hhat)
            CRN_FN(crn_gemm_nn)(n, G, H, hp, H, j->w_h, G, 0, acc, G);
        for (int b = 0; ln && b < n; b++) // gates = LN(x W_x) + b_x, hg = g_h * LN(h W_h) (+ b_h below)
            crn_ln_row_forward(gt + (size_t)b * G, acc + (size_t)b * G, ht + (size_t)b * G, ln->xhat + (r + b) * G,
                               ln->xrs + (r + b) * 3, ln->hrs + (r + b) * 3, ln, 3, H);
        for (int b = 0; b < n; b++)
            gru_row_forward(gt + (size_t)b * G, ht + (size_t)b * G, h + (size_t)b * H, hp + (size_t)b * H, j->b_h, H);
    }
}

static void gru_forward_part(void *p, int part, int nparts) {
    const struct gru_job *j = p;
    int r0, r1;
    crn_split_rows(j->B, part, nparts, &r0, &r1);
    if (r0 < r1) gru_forward_rows(j, r0, r1);
}

void CRN_FN(crn_gru_forward)(real *hs, real *gates, real *hg, const real *w_h, const real *b_h, real *wp,
                             const crn_ln *ln, int B, int T, int H) {
    if (wp) CRN_FN(crn_pack)(wp, 0, H, 3 * H, w_h, 3 * H);
    struct gru_job j = {hs, gates, hg, NULL, NULL, NULL, w_h, b_h, wp, ln, B, T, H};
    CRN_FN(crn_parallel)(gru_forward_part, &j, crn_row_parts(B, 3.0 * H * H));
}

CRN_CLONES static void gru_backward_rows(const struct gru_job *j, int r0, int r1) {
    const int B = j->B, H = j->H, G = 3 * H, n = r1 - r0;
    const size_t BH = (size_t)B * H;
    if (j->ln) memset(j->ln->acc + (size_t)r0 * CRN_LN_ACC(3, H), 0, (size_t)n * CRN_LN_ACC(3, H) * sizeof(real));
    for (int t = j->T - 1; t >= 0; t--) {
        const real *hp = j->hs + (size_t)t * BH + (size_t)r0 * H; // (n, H) h_{t-1}
        const real *gt = j->gates + ((size_t)t * B + r0) * G;     // (n, 3H)
        const real *ht = j->hg + ((size_t)t * B + r0) * G;        // (n, 3H)
        const real *d = j->dh + (size_t)t * BH + (size_t)r0 * H;  // (n, H)
        real *dx = j->dgx + ((size_t)t * B + r0) * G;             // (n, 3H)
        real *dr = j->dhg + ((size_t)t * B + r0) * G;             // (n, 3H)
        real *dprev = t > 0 ? j->dh + (size_t)(t - 1) * BH + (size_t)r0 * H : NULL;
        for (int b = 0; b < n; b++)
            gru_row_backward(dx + (size_t)b * G, dr + (size_t)b * G, dprev ? dprev + (size_t)b * H : NULL,
                             gt + (size_t)b * G, ht + (size_t)b * G, hp + (size_t)b * H, d + (size_t)b * H, H);
        const crn_ln *ln = j->ln;
        const size_t r = (size_t)t * B + r0;
        for (int b = 0; ln && b < n; b++)
            crn_ln_row_backward(dx + (size_t)b * G, dr + (size_t)b * G, ln->dhr + (r + b) * G,
                                dx + (size_t)b * G, ln->acc + (size_t)(r0 + b) * CRN_LN_ACC(3, H), ln->xhat + (r + b) * G,
                                ln->xrs + (r + b) * 3, ln->hhat + (r + b) * G, ln->hrs + (r + b) * 3, ln, 3, H);
        if (dprev) // dh_{t-1} += dhg_t (n, 3H) @ w_h^T (3H, H) (with ln: d (h_{t-1} @ w_h))
            CRN_FN(crn_gemm_packed)(n, H, G, ln ? ln->dhr + r * G : dr, G, j->wp, 1, dprev, H);
    }
}

static void gru_backward_part(void *p, int part, int nparts) {
    const struct gru_job *j = p;
    int r0, r1;
    crn_split_rows(j->B, part, nparts, &r0, &r1);
    if (r0 < r1) gru_backward_rows(j, r0, r1);
}

CRN_CLONES void CRN_FN(crn_gru_backward)(real *dgx, real *dhg, real *dw_h, real *db_h, real *dh, const real *hs,
                                         const real *gates, const real *hg, const real *w_h, real *wp,
                                         const crn_ln *ln, int B, int T, int H) {
    const int G = 3 * H;
    CRN_FN(crn_pack)(wp, 1, G, H, w_h, G); // w_h^T (3H, H)
    struct gru_job j = {(real *)hs, (real *)gates, (real *)hg, dgx, dhg, dh, w_h, NULL, wp, ln, B, T, H};
    CRN_FN(crn_parallel)(gru_backward_part, &j, crn_row_parts(B, 3.0 * H * H));
    // dW_h += H_prev^T (H, T*B) @ dhg (T*B, 3H)
    CRN_FN(crn_gemm)(1, 0, H, G, T * B, 1, hs, H, ln ? ln->dhr : dhg, G, 1, dw_h, G);
    if (ln)
        crn_ln_reduce(ln, db_h, 1, 0, B, 3, H);
    else
        crn_colsum_acc(db_h, dhg, T * B, G);
}
