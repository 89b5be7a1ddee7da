/* cell_lstm.c — the LSTM cell over one window (see cell.h for the layout and
 * the formulas; PyTorch gate order i, f, g, o).
 *
 * tanh(c_t) is not saved (a (T*B, H) buffer per layer, 8 % of config C's
 * memory): backward recomputes it from c_t.
 *
 * Backward at step t, with dh the complete gradient w.r.t. h_t and dc the
 * gradient w.r.t. c_t carried from step t+1:
 *   do = dh * tanh(c_t)          dc += dh * o * (1 - tanh(c_t)^2)
 *   di = dc * g   df = dc * c_{t-1}   dg = dc * i   dc_{t-1} = dc * f
 *   pre-activations: sigmoid' = s (1 - s), tanh' = 1 - g^2
 *   dh_{t-1} += dgates_t @ w_h^T
 * With layer normalisation (cell.h): do and dc go through h = o * tanh(LN(c)),
 * and dh_{t-1} += (the LN backward of dgates * g_h) @ w_h^T. */
#include "cell.h"

/* One stream's gates at one step; restrict lets the loop vectorise. */
static inline void lstm_row_forward(real *restrict g,         // (4H) in: pre-activation without b_h; out: i f g o
                                    const real *restrict cp,  // (H) c_{t-1}
                                    real *restrict c,         // (H) c_t
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
        h[j] = o * th;
    }
}

static inline void lstm_row_backward(real *restrict dg,        // (4H) out: d pre-activations
                                     real *restrict dc,        // (H) in: dc_t from t+1; out: dc_{t-1}
                                     const real *restrict g,   // (4H) i f g o
                                     const real *restrict cp,  // (H) c_{t-1}
                                     const real *restrict c,   // (H) c_t
                                     const real *restrict dh,  // (H) d h_t
                                     int H) {
    for (int j = 0; j < H; j++) {
        real i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], th = R_TANH(c[j]), dhj = dh[j];
        real dcj = dc[j] + dhj * o * (1 - th * th);
        dg[j] = dcj * gg * i * (1 - i);
        dg[H + j] = dcj * cp[j] * f * (1 - f);
        dg[2 * H + j] = dcj * i * (1 - gg * gg);
        dg[3 * H + j] = dhj * th * o * (1 - o);
        dc[j] = dcj * f;
    }
}

/* The same with layer normalisation (cell.h): g holds x W_x, hr the
 * recurrent product; both are normalised in place, in the gates' pass (the
 * statistics first, crn_ln_moments_g); h_t = o * tanh(LN(c_t)). The gate
 * activations are not saved: backward recomputes them from the two
 * normalised projections (one (T*B, 4H) buffer fewer to write and read back;
 * the saved window of config A is several times the L2 cache). o waits in
 * chat until LN(c_t) replaces it. */
CRN_INLINE void lstm_ln_row_forward(real *restrict g,         // (4H) in: x W_x; out: normalised
                                    real *restrict hr,        // (4H) in: h_{t-1} @ w_h; out: normalised
                                    real *restrict xrs,       // (4) 1/std per gate
                                    real *restrict hrs,       // (4)
                                    real *restrict chat,      // (H) out: normalised c_t
                                    real *restrict crs,       // (1) its 1/std
                                    const real *restrict cp,  // (H) c_{t-1}
                                    real *restrict c,         // (H) c_t
                                    real *restrict h,         // (H) h_t
                                    const real *restrict b_h, // (4H)
                                    const crn_ln *ln, int H) {
    const real *restrict gx = ln->g_x, *restrict bx = ln->b_x, *restrict gh = ln->g_h;
    const real *restrict gc = ln->g_c, *restrict bc = ln->b_c;
    real mx[4], mh[4];
    crn_ln_moments_g(g, 4, H, mx, xrs);
    crn_ln_moments_g(hr, 4, H, mh, hrs);
    const real m0 = mx[0], m1 = mx[1], m2 = mx[2], m3 = mx[3], n0 = mh[0], n1 = mh[1], n2 = mh[2], n3 = mh[3];
    const real r0 = xrs[0], r1 = xrs[1], r2 = xrs[2], r3 = xrs[3], q0 = hrs[0], q1 = hrs[1], q2 = hrs[2], q3 = hrs[3];
    /* gate k's pre-activation: LN(x W_x) + LN(h W_h) + b_h, the normalised values saved in place */
#define LN_PRE(k, m, r, n, q, out) \
    do { \
        const int u = (k) * H + j; \
        const real xh = (g[u] - (m)) * (r), hh = (hr[u] - (n)) * (q); \
        g[u] = xh; \
        hr[u] = hh; \
        out = gx[u] * xh + bx[u] + gh[u] * hh + b_h[u]; \
    } while (0)
    CRN_IVDEP
    for (int j = 0; j < H; j++) {
        real p0, p1, p2, p3;
        LN_PRE(0, m0, r0, n0, q0, p0);
        LN_PRE(1, m1, r1, n1, q1, p1);
        LN_PRE(2, m2, r2, n2, q2, p2);
        LN_PRE(3, m3, r3, n3, q3, p3);
        real i = crn_sigmoid(p0), f = crn_sigmoid(p1), gg = R_TANH(p2);
        c[j] = f * cp[j] + i * gg;
        chat[j] = crn_sigmoid(p3); // o
    }
#undef LN_PRE
    real mean, r;
    crn_ln_moments(c, H, &mean, &r);
    *crs = r;
    for (int j = 0; j < H; j++) {
        const real o = chat[j], ch = (c[j] - mean) * r;
        chat[j] = ch;
        h[j] = o * R_TANH(gc[j] * ch + bc[j]);
    }
}

/* A gate's pre-activation from the saved normalised projections (u: its
 * index in 4H), as lstm_ln_row_forward formed it. */
#define LSTM_LN_PRE(u) (gx[u] * xh[u] + bx[u] + gh[u] * hh[u] + b_h[u])

/* Its backward. xh (the saved x-side values) becomes d loss / d (x W_x) and
 * hh d loss / d (h_{t-1} @ w_h), each element written after its last read
 * (so dx may be xh and dr hh: in place); acc (CRN_LN_ACC(4, H)) += the LN
 * gradient sums; scratch holds the gates' gradients dp (4H) and
 * d loss / d LN(c_t) (H) (the part's, from the tail of its first stream's acc:
 * it stays in L1). The LN(c_t) backward is folded into the gates'
 * pass (its two sums first). */
CRN_INLINE void lstm_ln_row_backward(real *dx,                  // (4H) out: d (x W_x); may be xh
                                     real *dr,                  // (4H) out: d (h_{t-1} @ w_h); may be hh
                                     real *restrict acc,        // this stream's sums
                                     real *restrict scratch,    // (5H) dp, dy
                                     real *restrict dc,         // (H) in: dc_t from t+1; out: dc_{t-1}
                                     const real *xh,            // (4H) normalised x W_x
                                     const real *restrict xrs,  // (4)
                                     const real *hh,            // (4H) normalised recurrent product
                                     const real *restrict hrs,  // (4)
                                     const real *restrict chat, // (H) normalised c_t
                                     real crs,
                                     const real *restrict cp,   // (H) c_{t-1}
                                     const real *restrict dh,   // (H) d h_t
                                     const real *restrict b_h,  // (4H)
                                     const crn_ln *ln, int H) {
    const real *restrict gx = ln->g_x, *restrict bx = ln->b_x, *restrict gh = ln->g_h;
    const real *restrict gc = ln->g_c, *restrict bc = ln->b_c;
    real *restrict adgc = acc + 16 * H, *restrict adbc = acc + 17 * H;
    real *restrict dp = scratch, *restrict dy = dp + 4 * H;
    CRN_IVDEP
    for (int j = 0; j < H; j++) { // dy = d loss / d LN(c_t)
        const int u = 3 * H + j;
        real o = crn_sigmoid(LSTM_LN_PRE(u)), th = R_TANH(gc[j] * chat[j] + bc[j]), dhj = dh[j];
        real d = dhj * o * (1 - th * th);
        dy[j] = d;
        adgc[j] += d * chat[j];
        adbc[j] += d;
        dp[u] = dhj * th * o * (1 - o);
    }
    real s1, s2; // d c_t through LN(c_t): crs * (dy*g_c - mean(dy*g_c) - chat * mean(dy*g_c*chat))
    crn_ln_sums(dy, gc, chat, H, &s1, &s2);
    s1 /= (real)H;
    s2 /= (real)H;
    CRN_IVDEP
    for (int j = 0; j < H; j++) {
        real i = crn_sigmoid(LSTM_LN_PRE(j)), f = crn_sigmoid(LSTM_LN_PRE(H + j)), gg = R_TANH(LSTM_LN_PRE(2 * H + j));
        real dcj = dc[j] + crs * (dy[j] * gc[j] - s1 - chat[j] * s2);
        dp[j] = dcj * gg * i * (1 - i);
        dp[H + j] = dcj * cp[j] * f * (1 - f);
        dp[2 * H + j] = dcj * i * (1 - gg * gg);
        dc[j] = dcj * f;
    }
    crn_ln_row_backward(dp, NULL, dr, dx, acc, xh, xrs, hh, hrs, ln, 4, H);
}
#undef LSTM_LN_PRE

struct lstm_job {
    real *hs, *cs, *gates, *dgx, *dh, *dc;
    const real *w_h, *b_h, *wp;
    const crn_ln *ln;
    int B, T, H;
};

/* Streams [r0, r1) over the whole window (B rows per step, these rows only). */
CRN_CLONES static void lstm_forward_rows(const struct lstm_job *j, int r0, int r1) {
    const int B = j->B, H = j->H, G = 4 * H, n = r1 - r0;
    const size_t BH = (size_t)B * H;
    for (int t = 0; t < j->T; t++) {
        const real *hp = j->hs + (size_t)t * BH + (size_t)r0 * H;     // (n, H) h_{t-1}
        const real *cp = j->cs + (size_t)t * BH + (size_t)r0 * H;     // (n, H) c_{t-1}
        real *h = j->hs + (size_t)(t + 1) * BH + (size_t)r0 * H;      // (n, H)
        real *c = j->cs + (size_t)(t + 1) * BH + (size_t)r0 * H;      // (n, H)
        real *gt = j->gates + ((size_t)t * B + r0) * G;               // (n, 4H) holds gx_t
        const crn_ln *ln = j->ln;
        real *acc = ln ? ln->hhat + ((size_t)t * B + r0) * G : gt;     // (n, 4H) the recurrent product
        if (j->wp)
            CRN_FN(crn_gemm_packed)(n, G, H, hp, H, j->wp, !ln, acc, G);
        else if (j->w_h) // else the caller has added (with ln: written) h_{t-1} @ w_h
            CRN_FN(crn_gemm_nn)(n, G, H, hp, H, j->w_h, G, !ln, acc, G);
        if (ln) {
            const size_t r = (size_t)t * B + r0;
            for (int b = 0; b < n; b++)
                lstm_ln_row_forward(gt + (size_t)b * G, acc + (size_t)b * G, ln->xrs + (r + b) * 4,
                                    ln->hrs + (r + b) * 4, ln->chat + (r + b) * H, ln->crs + r + b,
                                    cp + (size_t)b * H, c + (size_t)b * H, h + (size_t)b * H, j->b_h, ln, H);
            continue;
        }
        for (int b = 0; b < n; b++)
            lstm_row_forward(gt + (size_t)b * G, cp + (size_t)b * H, c + (size_t)b * H, h + (size_t)b * H, j->b_h,
                             H);
    }
}

static void lstm_forward_part(void *p, int part, int nparts) {
    const struct lstm_job *j = p;
    int r0, r1;
    crn_split_rows(j->B, part, nparts, &r0, &r1);
    if (r0 < r1) lstm_forward_rows(j, r0, r1);
}

void CRN_FN(crn_lstm_forward)(real *hs, real *cs, real *gates, const real *w_h, const real *b_h, real *wp,
                              const crn_ln *ln, int B, int T, int H) {
    if (wp) CRN_FN(crn_pack)(wp, 0, H, 4 * H, w_h, 4 * H);
    struct lstm_job j = {hs, cs, gates, NULL, NULL, NULL, w_h, b_h, wp, ln, B, T, H};
    CRN_FN(crn_parallel)(lstm_forward_part, &j, crn_row_parts(B, 4.0 * H * H));
}

CRN_CLONES static void lstm_backward_rows(const struct lstm_job *j, int r0, int r1) {
    const int B = j->B, H = j->H, G = 4 * H, n = r1 - r0;
    const size_t BH = (size_t)B * H;
    real *dc = j->dc + (size_t)r0 * H;                                // (n, H)
    memset(dc, 0, (size_t)n * H * sizeof(real)); // nothing flows back from beyond the window
    if (j->ln) memset(j->ln->acc + (size_t)r0 * CRN_LN_ACC(4, H), 0, (size_t)n * CRN_LN_ACC(4, H) * sizeof(real));
    for (int t = j->T - 1; t >= 0; t--) {
        const real *cp = j->cs + (size_t)t * BH + (size_t)r0 * H;     // (n, H) c_{t-1}
        const real *gt = j->gates + ((size_t)t * B + r0) * G;         // (n, 4H)
        const real *ct = j->cs + (size_t)(t + 1) * BH + (size_t)r0 * H; // (n, H) c_t
        const real *d = j->dh + (size_t)t * BH + (size_t)r0 * H;      // (n, H)
        real *dg = j->dgx + ((size_t)t * B + r0) * G;                 // (n, 4H)
        const crn_ln *ln = j->ln;
        const size_t r = (size_t)t * B + r0;
        if (ln)
            for (int b = 0; b < n; b++)
                lstm_ln_row_backward(dg + (size_t)b * G, ln->dhr + (r + b) * G,
                                     ln->acc + (size_t)(r0 + b) * CRN_LN_ACC(4, H),
                                     ln->acc + (size_t)r0 * CRN_LN_ACC(4, H) + CRN_LN_SCRATCH(4, H), dc + (size_t)b * H,
                                     gt + (size_t)b * G, ln->xrs + (r + b) * 4, ln->hhat + (r + b) * G,
                                     ln->hrs + (r + b) * 4, ln->chat + (r + b) * H, ln->crs[r + b],
                                     cp + (size_t)b * H, d + (size_t)b * H, j->b_h, ln, H);
        else
            for (int b = 0; b < n; b++)
                lstm_row_backward(dg + (size_t)b * G, dc + (size_t)b * H, gt + (size_t)b * G, cp + (size_t)b * H,
                                  ct + (size_t)b * H, d + (size_t)b * H, H);
        if (t > 0) // dh_{t-1} += dgates_t (n, 4H) @ w_h^T (4H, H) (with ln: d (h_{t-1} @ w_h))
            CRN_FN(crn_gemm_packed)(n, H, G, ln ? ln->dhr + r * G : dg, G, j->wp, 1,
                                    j->dh + (size_t)(t - 1) * BH + (size_t)r0 * H, H);
    }
}

static void lstm_backward_part(void *p, int part, int nparts) {
    const struct lstm_job *j = p;
    int r0, r1;
    crn_split_rows(j->B, part, nparts, &r0, &r1);
    if (r0 < r1) lstm_backward_rows(j, r0, r1);
}

CRN_CLONES void CRN_FN(crn_lstm_backward)(real *dgx, real *dw_h, real *db_h, real *dh, real *dc, const real *hs,
                                          const real *cs, const real *gates, const real *w_h, const real *b_h,
                                          real *wp, const crn_ln *ln, int B, int T, int H) {
    const int G = 4 * H;
    CRN_FN(crn_pack)(wp, 1, G, H, w_h, G); // w_h^T (4H, H)
    struct lstm_job j = {(real *)hs, (real *)cs, (real *)gates, dgx, dh, dc, w_h, b_h, wp, ln, B, T, H};
    CRN_FN(crn_parallel)(lstm_backward_part, &j, crn_row_parts(B, 4.0 * H * H));
    // dW_h += H_prev^T (H, T*B) @ dgates (T*B, 4H), one GEMM for the window
    CRN_FN(crn_gemm)(1, 0, H, G, T * B, 1, hs, H, ln ? ln->dhr : dgx, G, 1, dw_h, G);
    if (ln)
        crn_ln_reduce(ln, db_h, 0, 1, B, 4, H);
    else
        crn_colsum_acc(db_h, dgx, T * B, G);
}
