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
 * sampling step, with T = 1.
 * dw_h, db_h accumulate (+=); dgx is written (=). */
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

/* ---- Elman RNN: h_t = act(gx_t + h_{t-1} @ w_h + b_h), act = tanh or relu ---- */
void CRN_FN(crn_rnn_forward)(real *hs,         // (T+1, B, H) in: hs[0]; out: hs[1..T]
                             const real *gx,   // (T*B, H) input projection incl. b_x
                             const real *w_h,  // (H, H)
                             const real *b_h,  // (H)
                             real *wp,         // scratch for packed w_h, or NULL
                             int relu, int B, int T, int H);
void CRN_FN(crn_rnn_backward)(real *dgx,        // (T*B, H) out: d loss / d pre-activation
                              real *dw_h,       // (H, H) +=
                              real *db_h,       // (H) +=
                              real *dh,         // (T*B, H) in: d loss / d h_t; clobbered
                              const real *hs,   // (T+1, B, H) from forward
                              const real *w_h,  // (H, H)
                              real *wp,         // scratch: w_h^T packed
                              int relu, int B, int T, int H);

/* ---- LSTM (PyTorch gate order i, f, g, o):
 *   [i f g o]_pre = gx_t + h_{t-1} @ w_h + b_h
 *   i = sig(i_pre), f = sig(f_pre), g = tanh(g_pre), o = sig(o_pre)
 *   c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t) ---- */
void CRN_FN(crn_lstm_forward)(real *hs,         // (T+1, B, H) in: hs[0]; out: hs[1..T]
                              real *cs,         // (T+1, B, H) in: cs[0]; out: cs[1..T]
                              real *gates,      // (T*B, 4H) in: gx incl. b_x; out: i, f, g, o activated
                              const real *w_h,  // (H, 4H)
                              const real *b_h,  // (4H)
                              real *wp,         // scratch for packed w_h, or NULL
                              int B, int T, int H);
void CRN_FN(crn_lstm_backward)(real *dgx,         // (T*B, 4H) out: d loss / d gate pre-activations
                               real *dw_h,        // (H, 4H) +=
                               real *db_h,        // (4H) +=
                               real *dh,          // (T*B, H) in: d loss / d h_t; clobbered
                               real *dc,          // (B, H) scratch: the carried d loss / d c
                               const real *hs,    // (T+1, B, H)
                               const real *cs,    // (T+1, B, H)
                               const real *gates, // (T*B, 4H) activated
                               const real *w_h,   // (H, 4H)
                               real *wp,          // scratch: w_h^T packed
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
                              int B, int T, int H);

#endif
