/* cell.h — internal: the recurrent cells, one window of one layer each.
 *
 * Division of work with model.c: model.c computes the input projection of the
 * whole window, gx = X @ w_x + b_x (T*B, G*H), as one GEMM (or a row gather
 * for one-hot input), and, in backward, turns dgx into dW_x, db_x and the
 * gradient of the layer input. A cell runs only the recurrence: per step one
 * small GEMM h_{t-1} (B, H) @ w_h (H, G*H), then fused elementwise gates.
 *
 * Saved layout (time-major, rows t*B + b):
 *   hs (T+1, B, H): hs[0] = carried-in h, hs[t+1] = h_t. So hs[0..T-1] is the
 *                   array of previous states (T*B, H) used by the single dW_h
 *                   GEMM, and hs[1..T] the layer output (T*B, H).
 *   cs (T+1, B, H): the same for the LSTM cell state.
 *
 * Backward: dh (T*B, H) holds on entry the gradient of the loss w.r.t. the
 * layer outputs h_t (from the layer above or the output projection); the cell
 * adds the recurrent contributions into it in place (dh[t-1] += ...), so it
 * is clobbered. No gradient flows into the carried-in state (truncated BPTT).
 * The per-step products use a packed copy of w_h (forward) or of w_h^T
 * (backward), made once per window in the scratch wp (crn_pack; sized
 * crn_pack_size(H, G*H) forward, crn_pack_size(G*H, H) backward). Forward
 * with wp == NULL (single steps, where packing would cost as much as the
 * product) reads w_h in place through crn_gemm_nn. Forward with w_h == NULL
 * (and wp == NULL): the caller has already added h_{t-1} @ w_h (to gates for
 * the LSTM, into hg for the GRU, to gx for the RNN); used by the binary16
 * sampling step, with T = 1. With layer normalisation (ln != NULL, see
 * crn_ln below) the recurrent product goes to ln->hhat instead (so with
 * w_h == NULL the caller has written it there), and gx holds x W_x without
 * b_x (the cell normalises it and adds b_x).
 * dw_h, db_h accumulate (+=); dgx is written (=): with ln, the gradient
 * w.r.t. x W_x (through its LN), and the LN gradients accumulate (+=). */
#ifndef CRN_CELL_H
#define CRN_CELL_H

/* Let GCC vectorise the fused gate loops also at -O2 (debugoptimized): the
 * clamps and selects in crn_fexp/crn_ftanh are only if-converted without
 * trapping math (we never inspect FP exception flags), and -O2's "very
 * cheap" cost model refuses loops of unknown trip count. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "tree-vectorize", "vect-cost-model=dynamic")
#endif

/* The cells' fused loops are compiled for AVX-512 and AVX2 as well as the
 * baseline, and the loader picks the widest the CPU has (GCC function
 * multiversioning); the float product build only. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !(defined(CRN_DOUBLE) && CRN_DOUBLE)
#define CRN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CRN_CLONES
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "real.h"

#if defined(CRN_DOUBLE) && CRN_DOUBLE
/* the double build exists for gradient checks: libm, exact as can be */
#define R_EXP exp
#define R_TANH tanh
#else
/* The float build uses call-free exp and tanh so that the fused gate loops
 * vectorise (libm calls would not, and were a third of a training step).
 * Both are the Cephes single-precision algorithms, accurate to a few ulp. */
#define R_EXP crn_fexp
#define R_TANH crn_ftanh

/* e^x: x = k ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^k by
 * building the exponent bits. x is clamped to [-87.3, 88.3] so 2^k stays a
 * normal float (e^-87.3 ~ 1e-38 stands in for anything smaller). Total: NaN
 * passes the clamps, and gives NaN (through r and p); 2^k is built from the
 * bits of the rounding sum in unsigned arithmetic, with no float-to-int
 * conversion or signed shift of whatever a NaN k would be. */
static inline float crn_fexp(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* round x log2(e) to an integer k: 1.5 * 2^23 + k has k in its low
     * mantissa bits (for |k| < 2^22), exactly */
    union { float f; uint32_t u; } kb = {x * 1.44269504088896341f + 12582912.0f};
    float k = kb.f - 12582912.0f;
    float r = x - k * 0.693359375f;      // ln2 split in two for an exact reduction
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { uint32_t u; float f; } s;
    s.u = (kb.u - 0x4b400000u + 127u) << 23; /* (k + 127) << 23: the bits of 2^k */
    return p * s.f;
}

/* tanh: an odd polynomial for |x| < 0.625 (no cancellation near 0), else
 * 1 - 2 / (e^{2|x|} + 1) with the sign restored. */
static inline float crn_ftanh(float x) {
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float big = 1.0f - 2.0f / (crn_fexp(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}
#endif

/* The recurrence over a window is independent per stream, so the cells
 * split the batch rows across the worker threads for the whole window: one
 * hand-off per layer and window instead of one per step, and the gate
 * elementwise work runs in parallel too. Rows [*r0, *r1) of part of nparts. */
static inline void crn_split_rows(int B, int part, int nparts, int *r0, int *r1) {
    *r0 = (int)((long)B * part / nparts);
    *r1 = (int)((long)B * (part + 1) / nparts);
}
/* Parts worth running for B streams whose step costs work multiply-adds. */
static inline int crn_row_parts(int B, double work) { return work * B < 2e4 ? 1 : B; }

static inline real crn_sigmoid(real x) { return (real)1 / ((real)1 + R_EXP(-x)); }

/* Y (N, C) += row vector b (C) on every row. */
static inline void crn_add_rows(real *Y, const real *b, int N, int C) {
    for (int i = 0; i < N; i++) {
        real *y = Y + (size_t)i * C;
        for (int j = 0; j < C; j++) y[j] += b[j];
    }
}

/* db (C) += column sums of X (N, C); column ranges split across the
 * threads for a window (each column summed in row order into a register
 * block, then added: the same result whatever the split). */
CRN_CLONES static void crn_colsum_range(real *restrict db, const real *restrict X, int N, int C, int c0, int c1) {
    enum { W = 32 };
    int j = c0;
    for (; j + W <= c1; j += W) {
        real acc[W] = {0};
        for (int i = 0; i < N; i++) {
            const real *x = X + (size_t)i * C + j;
            for (int k = 0; k < W; k++) acc[k] += x[k];
        }
        for (int k = 0; k < W; k++) db[j + k] += acc[k];
    }
    for (; j < c1; j++) {
        real acc = 0;
        for (int i = 0; i < N; i++) acc += X[(size_t)i * C + j];
        db[j] += acc;
    }
}

struct crn_colsum_job {
    real *db;
    const real *X;
    int N, C;
};

static inline void crn_colsum_part(void *p, int part, int nparts) {
    const struct crn_colsum_job *j = p;
    int nb = (j->C + 31) / 32, b0 = (int)((long)nb * part / nparts), b1 = (int)((long)nb * (part + 1) / nparts);
    int c0 = b0 * 32, c1 = b1 * 32 < j->C ? b1 * 32 : j->C;
    if (c0 < c1) crn_colsum_range(j->db, j->X, j->N, j->C, c0, c1);
}

static inline void crn_colsum_acc(real *db, const real *X, int N, int C) {
    struct crn_colsum_job j = {db, X, N, C};
    CRN_FN(crn_parallel)(crn_colsum_part, &j, (double)N * C < 65536 ? 1 : (C + 31) / 32);
}

/* ---- Layer normalisation (Ba, Kiros & Hinton 2016), --layer-norm ----
 * LN(a; g, b) = g * (a - mean(a)) / sqrt(var(a) + eps) + b, with the mean and
 * the biased variance taken over each gate's H pre-activations on their own
 * (per gate block, as KANN and TensorFlow's LayerNormBasicLSTMCell do: the
 * gates have different scales), eps = 1e-5 (PyTorch's F.layer_norm). The
 * input and the recurrent projection are normalised apart, so the window's
 * input product stays one GEMM outside the recurrence. The LN biases of the
 * two projections are the existing b_x and b_h (a second bias next to them
 * would be redundant); the gains g_x, g_h (G*H) and, for the LSTM, g_c, b_c
 * (H) are extra tensors, gains initialised to 1, biases to 0:
 *   RNN:  h_t = act(LN(x W_x; g_x, b_x) + LN(h W_h; g_h, b_h))
 *   LSTM: [i f g o]_pre = LN(x W_x; g_x, b_x) + LN(h W_h; g_h, b_h)
 *         c_t = f * c_{t-1} + i * g;  h_t = o * tanh(LN(c_t; g_c, b_c))
 *   GRU:  a = LN(x W_x; g_x, b_x), hg = LN(h W_h; g_h, b_h)
 *         r = sig(a_r + hg_r), z = sig(a_z + hg_z), n = tanh(a_n + r * hg_n)
 *         h_t = (1 - z) * n + z * h_{t-1}   (r scales the normalised n-part)
 * The cells normalise both projections row by row as they step (model.c
 * hands them x W_x without b_x), so each row is touched while it is in the
 * cache; the forward saves the normalised values and 1/std per block for
 * backward:  d a = rs * (dy*g - mean(dy*g) - hat * mean(dy*g * hat)).
 * The gradients of the gains and the LN biases are summed per stream in a
 * small scratch (acc) while the rows are hot, then over the streams
 * (crn_ln_reduce): no extra pass over the window, and the same sums in the
 * same order whatever the thread split. */
#define CRN_LN_EPS 1e-5

/* The LN helpers are inlined into their callers whatever their size, so
 * they are compiled for the caller's target clone (AVX-512/AVX2). */
#if defined(__GNUC__)
#define CRN_INLINE static inline __attribute__((always_inline))
#else
#define CRN_INLINE static inline
#endif

/* Before a loop whose pointers do not overlap (restrict is lost when the
 * many pointers of an inlined LN loop would need more run-time alias checks
 * than GCC makes: the loop then stays scalar). */
#if defined(__GNUC__) && !defined(__clang__)
#define CRN_IVDEP _Pragma("GCC ivdep")
#else
#define CRN_IVDEP
#endif

typedef struct crn_ln {
    const real *g_x, *b_x;     // (G*H) gain and bias of LN(x W_x)
    const real *g_h;           // (G*H) gain of LN(h W_h) (its bias is the cell's b_h)
    const real *g_c, *b_c;     // (H) LSTM: gain and bias of LN(c_t)
    real *xhat, *xrs;          // (T*B, G*H) normalised x W_x; (T*B, G) 1/std per row and gate block
    real *hhat, *hrs;          // the same for h_{t-1} @ w_h (hhat holds the product first; see above)
    real *chat, *crs;          // (T*B, H), (T*B) LSTM: c_t
    real *dhr;                 // (T*B, G*H) backward out: d loss / d (h_{t-1} @ w_h)
    real *acc;                 // (B, CRN_LN_ACC(G, H)) backward scratch, per stream
    real *dg_x, *db_x, *dg_h;  // gradients (+=): gains, b_x (db_h is the cell's argument)
    real *dg_c, *db_c;         // (H) LSTM (+=)
} crn_ln;

/* What a forward saves for backward (crn_ln's xhat .. crs), as one record. */
typedef struct crn_ln_saved {
    real *xhat, *xrs, *hhat, *hrs, *chat, *crs;
} crn_ln_saved;

/* ln of one layer: the gains and LN biases at offsets gx, bx, gh and (LSTM)
 * gc, bc of the parameter buffer P, their gradients at the same offsets of D
 * (D NULL: forward only, the gradient pointers NULL), the saved values s and
 * the backward scratch dhr, acc. */
static inline void crn_ln_params(crn_ln *ln, const real *P, real *D, size_t gx, size_t bx, size_t gh, size_t gc,
                                 size_t bc, int lstm, const crn_ln_saved *s, real *dhr, real *acc) {
    *ln = (crn_ln){.g_x = P + gx, .b_x = P + bx, .g_h = P + gh, .g_c = lstm ? P + gc : NULL,
                   .b_c = lstm ? P + bc : NULL, .xhat = s->xhat, .xrs = s->xrs, .hhat = s->hhat, .hrs = s->hrs,
                   .chat = s->chat, .crs = s->crs, .dhr = dhr, .acc = acc};
    if (!D) return;
    ln->dg_x = D + gx;
    ln->db_x = D + bx;
    ln->dg_h = D + gh;
    ln->dg_c = lstm ? D + gc : NULL;
    ln->db_c = lstm ? D + bc : NULL;
}

/* Per stream: sums for db_x, dg_x, db_h, dg_h (G*H each), dg_c, db_c (H),
 * then (from CRN_LN_SCRATCH on) a row's scratch of G*H + H (the LSTM's
 * gate gradients and d loss / d LN(c_t)). */
#define CRN_LN_SCRATCH(G, H) (4 * (size_t)(G) * (H) + 2 * (size_t)(H))
#define CRN_LN_ACC(G, H) (CRN_LN_SCRATCH(G, H) + (size_t)(G) * (H) + (size_t)(H))

/* The mean and 1/std from the shifted sums ts, tq of n values k + d
 * (crn_ln_moments). */
CRN_INLINE void crn_ln_finish(real ts, real tq, real k, int n, real *mean, real *rs) {
    const double m = (double)ts / n, var = (double)tq / n - m * m;
    *mean = (real)(k + m);
    *rs = (real)(1.0 / sqrt((var > 0 ? var : 0) + CRN_LN_EPS));
}

/* The vector loops, in 16 and 8 lanes (cell_lnv.h): _16 for the AVX-512
 * clone, _8 for the others. */
#define CRN_LNV_W 16
#include "cell_lnv.h"
#undef CRN_LNV_W
#define CRN_LNV_W 8
#include "cell_lnv.h"
#undef CRN_LNV_W

/* Whether the 16-lane forms run: the CPU has AVX-512, so the loader picked
 * the cells' avx512f clones (GCC's target_clones resolver asks the same
 * question). Else, and without the clones, the 8-lane forms. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !(defined(CRN_DOUBLE) && CRN_DOUBLE)
#define crn_lnv_wide() __builtin_cpu_supports("avx512f")
#else
#define crn_lnv_wide() 0
#endif

/* Mean and 1/sqrt(var + eps) of x (n) in one pass: the sums of x - k and of
 * (x - k)^2 with the shift k = x[0], var = E[(x-k)^2] - E[x-k]^2 in double.
 * The shift keeps the digits the plain one-pass sum of squares loses when
 * the spread is small against the mean: the cancellation is bounded by
 * (mean - k)^2 / var <= n (k is one of the values), not by mean^2 / var. */
CRN_INLINE void crn_ln_moments(const real *restrict x, int n, real *mean, real *rs) {
    if (crn_lnv_wide()) crn_ln_moments_16(x, n, mean, rs);
    else crn_ln_moments_8(x, n, mean, rs);
}

/* crn_ln_moments of each of the G blocks x + k*n, k < G, the same figures
 * (interleaved loops: independent accumulator chains). */
CRN_INLINE void crn_ln_moments_g(const real *restrict x, int G, int n, real *mean, real *rs) {
    if (crn_lnv_wide()) crn_ln_moments_g_16(x, G, n, mean, rs);
    else crn_ln_moments_g_8(x, G, n, mean, rs);
}

/* sum of a * b (n) and of a * b * c */
CRN_INLINE void crn_ln_sums(const real *restrict a, const real *restrict b, const real *restrict c, int n, real *s1,
                            real *s2) {
    if (crn_lnv_wide()) crn_ln_sums_16(a, b, c, n, s1, s2);
    else crn_ln_sums_8(a, b, c, n, s1, s2);
}

/* One stream at one step, both projections of G gate blocks:
 *   a  (G*H) in: x W_x; out: LN(x W_x; g_x, b_x) + (hg ? 0 : g_h * LN(h W_h))
 *   hr (G*H) in: h_{t-1} @ w_h; out: normalised
 *   hg (G*H) out (GRU; else NULL): g_h * LN(h W_h)   (b_h is added by the cell)
 * xhat, xrs, hrs: the saved normalised input part and the 1/std per block. */
CRN_INLINE void crn_ln_row_forward(real *restrict a, real *restrict hr, real *restrict hg, real *restrict xhat,
                                   real *restrict xrs, real *restrict hrs, const crn_ln *ln, int G, int H) {
    const real *restrict gx = ln->g_x, *restrict bx = ln->b_x, *restrict gh = ln->g_h;
    real mxs[4], mhs[4]; // G <= 4
    crn_ln_moments_g(a, G, H, mxs, xrs);
    crn_ln_moments_g(hr, G, H, mhs, hrs);
    for (int k = 0; k < G; k++) {
        const int o = k * H;
        const real mx = mxs[k], mh = mhs[k], rx = xrs[k], rh = hrs[k];
        if (hg)
            for (int j = o; j < o + H; j++) {
                real xh = (a[j] - mx) * rx, hh = (hr[j] - mh) * rh;
                xhat[j] = xh;
                hr[j] = hh;
                a[j] = gx[j] * xh + bx[j];
                hg[j] = gh[j] * hh;
            }
        else
            for (int j = o; j < o + H; j++) {
                real xh = (a[j] - mx) * rx, hh = (hr[j] - mh) * rh;
                xhat[j] = xh;
                hr[j] = hh;
                a[j] = gx[j] * xh + bx[j] + gh[j] * hh;
            }
    }
}

/* The LN backward of one block: da (n) = rs * (dy*g - mean(dy*g) - hat *
 * mean(dy*g*hat)); da may be dy (in place). */
CRN_INLINE void crn_ln_back(real *da, const real *dy, const real *restrict g, const real *restrict hat, real rs,
                            int n) {
    real s1, s2;
    crn_ln_sums(dy, g, hat, n, &s1, &s2);
    s1 /= (real)n;
    s2 /= (real)n;
    for (int j = 0; j < n; j++) da[j] = rs * (dy[j] * g[j] - s1 - hat[j] * s2);
}

/* Its backward, one stream at one step:
 *   dx (G*H) in: d loss / d LN(x W_x) part
 *   dy (G*H) d loss / d the recurrent LN output (GRU's d hg); NULL: the same as dx
 *   dr (G*H) out: d loss / d (h_{t-1} @ w_h)
 *   xo (G*H) out: d loss / d (x W_x); may be dx
 *   acc (CRN_LN_ACC) += this row's share of db_x, dg_x, db_h (only when dy is
 *   given: else it is db_x's, crn_ln_reduce), dg_h.
 * Per gate block one pass for the four LN sums and the gradient sums, one
 * for the two results (the block is in L1 throughout). The results pass
 * writes each element after its last read, so xo may also be xhat and dr
 * hhat (in place); when dy is NULL, dr may not alias dx (the pass reads
 * d = dx while it writes dr). */
CRN_INLINE void crn_ln_row_backward(const real *dx, const real *restrict dy, real *dr, real *xo,
                                    real *restrict acc, const real *xhat, const real *restrict xrs,
                                    const real *hhat, const real *restrict hrs, const crn_ln *ln, int G, int H) {
    const int GH = G * H;
    const real *restrict gx = ln->g_x, *restrict gh = ln->g_h;
    for (int k = 0; k < G; k++) {
        const int o = k * H;
        const real *d = (dy ? dy : dx) + o, *xh = xhat + o, *hh = hhat + o, *dxk = dx + o;
        const real *restrict gxk = gx + o, *restrict ghk = gh + o;
        real *restrict adbx = acc + o, *restrict adgx = acc + GH + o, *restrict adbh = acc + 2 * GH + o;
        real *restrict adgh = acc + 3 * GH + o, *drk = dr + o, *xok = xo + o;
        real sums[4];
        if (crn_lnv_wide())
            crn_ln_back_sums_16(sums, adbx, adgx, adbh, adgh, dxk, dy ? d : NULL, xh, hh, gxk, ghk, H);
        else
            crn_ln_back_sums_8(sums, adbx, adgx, adbh, adgh, dxk, dy ? d : NULL, xh, hh, gxk, ghk, H);
        const real n = (real)H, rx = xrs[k], rh = hrs[k];
        const real s1 = sums[0] / n, s2 = sums[1] / n, s3 = sums[2] / n, s4 = sums[3] / n;
        CRN_IVDEP
        for (int j = 0; j < H; j++) {
            const real a = d[j], b = dxk[j], x = xh[j], y = hh[j];
            drk[j] = rh * (a * ghk[j] - s3 - y * s4);
            xok[j] = rx * (b * gxk[j] - s1 - x * s2);
        }
    }
}

/* After a window's backward: the per-stream sums of acc (B rows) into the
 * gradients, stream by stream in order; own_bh: acc has db_h's own sums
 * (GRU), else they are db_x's. */
CRN_INLINE void crn_ln_reduce(const crn_ln *ln, real *db_h, int own_bh, int lstm, int B, int G, int H) {
    const size_t GH = (size_t)G * H, n = CRN_LN_ACC(G, H);
    for (int b = 0; b < B; b++) {
        const real *a = ln->acc + (size_t)b * n;
        for (size_t j = 0; j < GH; j++) {
            ln->db_x[j] += a[j];
            ln->dg_x[j] += a[GH + j];
            db_h[j] += a[(own_bh ? 2 * GH : 0) + j];
            ln->dg_h[j] += a[3 * GH + j];
        }
        for (int j = 0; lstm && j < H; j++) {
            ln->dg_c[j] += a[4 * GH + j];
            ln->db_c[j] += a[4 * GH + H + j];
        }
    }
}

/* ---- Elman RNN: h_t = act(gx_t + h_{t-1} @ w_h + b_h), act = tanh or relu ---- */
void CRN_FN(crn_rnn_forward)(real *hs,         // (T+1, B, H) in: hs[0]; out: hs[1..T]
                             const real *gx,   // (T*B, H) input projection incl. b_x
                             const real *w_h,  // (H, H)
                             const real *b_h,  // (H)
                             real *wp,         // scratch for packed w_h, or NULL
                             const crn_ln *ln, // layer normalisation, or NULL
                             int relu, int B, int T, int H);
void CRN_FN(crn_rnn_backward)(real *dgx,        // (T*B, H) out: d loss / d pre-activation
                              real *dw_h,       // (H, H) +=
                              real *db_h,       // (H) +=
                              real *dh,         // (T*B, H) in: d loss / d h_t; clobbered
                              const real *hs,   // (T+1, B, H) from forward
                              const real *w_h,  // (H, H)
                              real *wp,         // scratch: w_h^T packed
                              const crn_ln *ln, // layer normalisation (as in forward), or NULL
                              int relu, int B, int T, int H);

/* ---- LSTM (PyTorch gate order i, f, g, o):
 *   [i f g o]_pre = gx_t + h_{t-1} @ w_h + b_h
 *   i = sig(i_pre), f = sig(f_pre), g = tanh(g_pre), o = sig(o_pre)
 *   c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t) ---- */
void CRN_FN(crn_lstm_forward)(real *hs,         // (T+1, B, H) in: hs[0]; out: hs[1..T]
                              real *cs,         // (T+1, B, H) in: cs[0]; out: cs[1..T]
                              real *gates,      // (T*B, 4H) in: gx incl. b_x; out: i, f, g, o activated
                                                // (with ln: in x W_x, out normalised; see cell_lstm.c)
                              const real *w_h,  // (H, 4H)
                              const real *b_h,  // (4H)
                              real *wp,         // scratch for packed w_h, or NULL
                              const crn_ln *ln, // layer normalisation, or NULL
                              int B, int T, int H);
void CRN_FN(crn_lstm_backward)(real *dgx,         // (T*B, 4H) out: d loss / d gate pre-activations
                               real *dw_h,        // (H, 4H) +=
                               real *db_h,        // (4H) +=
                               real *dh,          // (T*B, H) in: d loss / d h_t; clobbered
                               real *dc,          // (B, H) scratch: the carried d loss / d c
                               const real *hs,    // (T+1, B, H)
                               const real *cs,    // (T+1, B, H)
                               const real *gates, // (T*B, 4H) activated; with ln the normalised x W_x
                               const real *w_h,   // (H, 4H)
                               const real *b_h,   // (4H)
                               real *wp,          // scratch: w_h^T packed
                               const crn_ln *ln,  // layer normalisation (as in forward), or NULL
                               int B, int T, int H);

/* ---- GRU (PyTorch, gate order r, z, n):
 *   hg = h_{t-1} @ w_h + b_h                    (the recurrent part, kept apart)
 *   r = sig(gx_r + hg_r), z = sig(gx_z + hg_z)
 *   n = tanh(gx_n + r * hg_n)                   (b_hn inside the r product)
 *   h_t = (1 - z) * n + z * h_{t-1} ---- */
void CRN_FN(crn_gru_forward)(real *hs,         // (T+1, B, H) in: hs[0]; out: hs[1..T]
                             real *gates,      // (T*B, 3H) in: gx incl. b_x; out: r, z, n activated
                             real *hg,         // (T*B, 3H) out: h_{t-1} @ w_h + b_h
                             const real *w_h,  // (H, 3H)
                             const real *b_h,  // (3H)
                             real *wp,         // scratch for packed w_h, or NULL
                             const crn_ln *ln, // layer normalisation, or NULL
                             int B, int T, int H);
void CRN_FN(crn_gru_backward)(real *dgx,         // (T*B, 3H) out: d loss / d gx
                              real *dhg,         // (T*B, 3H) scratch: d loss / d hg
                              real *dw_h,        // (H, 3H) +=
                              real *db_h,        // (3H) +=
                              real *dh,          // (T*B, H) in: d loss / d h_t; clobbered
                              const real *hs,    // (T+1, B, H)
                              const real *gates, // (T*B, 3H) activated
                              const real *hg,    // (T*B, 3H)
                              const real *w_h,   // (H, 3H)
                              real *wp,          // scratch: w_h^T packed
                              const crn_ln *ln,  // layer normalisation (as in forward), or NULL
                              int B, int T, int H);

#endif
