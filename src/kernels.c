/* kernels.c — the one matrix-product entry point (OpenBLAS), its plain-loop
 * reference, the small-product AVX2 kernels, the fused softmax cross-entropy
 * and the binary16 weights of sampling (conversion and a gemv, each with its
 * plain-C reference). The worker threads are pool.c's.
 * Compiled as float and as double (real.h): every symbol goes through CRN_FN. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The AVX2/FMA kernels: float build on x86-64 with GCC or clang, picked at
 * run time (the binary stays portable; -Dnative is not needed). */
#if !(defined(CRN_DOUBLE) && CRN_DOUBLE) && defined(__x86_64__) && defined(__GNUC__)
#define CRN_FAST_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define CRN_FAST_X86 0
#endif

/* The instruction set the kernels use: the CPU's best, capped by
 * crn_kernels_set_isa (the tests run every level against the plain loops). */
static int isa_cap = CRN_ISA_AVX512;

void CRN_FN(crn_kernels_set_isa)(int max) { isa_cap = max; }

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
const char *crn_kernels_isa_name(int isa) {
    static const char *const names[] = {"plain", "avx2", "avx512"};
    return isa >= CRN_ISA_PLAIN && isa <= CRN_ISA_AVX512 ? names[isa] : "?";
}
#endif

int CRN_FN(crn_kernels_isa)(void) {
#if CRN_FAST_X86
    static int cpu = -1;
    if (cpu < 0)
        cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                  ? CRN_ISA_AVX512
              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? CRN_ISA_AVX2
                                                                                : CRN_ISA_PLAIN;
    return cpu < isa_cap ? cpu : isa_cap;
#else
    return CRN_ISA_PLAIN;
#endif
}

#if defined(CRN_DOUBLE) && CRN_DOUBLE
#define CRN_BLAS_GEMM cblas_dgemm
#define CRN_BLAS_GEMV cblas_dgemv
#define R_EXP exp
#else
#define CRN_BLAS_GEMM cblas_sgemm
#define CRN_BLAS_GEMV cblas_sgemv
#define R_EXP expf
#endif

/* C = beta * C for the degenerate K == 0 product (BLAS implementations
 * differ in how they treat it, and beta == 0 must clear NaNs). */
static void scale_c(int M, int N, real beta, real *C, int ldc) {
    for (int i = 0; i < M; i++) {
        real *c = C + (size_t)i * ldc;
        if (beta == 0)
            memset(c, 0, (size_t)N * sizeof(real));
        else
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
struct gemm_job {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
};

static void gemm_part(void *p, int part, int nparts) {
    const struct gemm_job *j = p;
    const CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans, tb = j->tb ? CblasTrans : CblasNoTrans;
    if (j->M >= j->N) { // rows of C: rows of op(A)
        int nb = (j->M + 7) / 8, b0 = (int)((long)nb * part / nparts), b1 = (int)((long)nb * (part + 1) / nparts);
        int r0 = b0 * 8, r1 = b1 * 8 < j->M ? b1 * 8 : j->M;
        if (r0 >= r1) return;
        const float *A = j->ta ? j->A + r0 : j->A + (size_t)r0 * j->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, j->N, j->K, j->alpha, A, j->lda, j->B, j->ldb, j->beta,
                    j->C + (size_t)r0 * j->ldc, j->ldc);
    } else { // columns of C: columns of op(B)
        int nb = (j->N + 15) / 16, b0 = (int)((long)nb * part / nparts), b1 = (int)((long)nb * (part + 1) / nparts);
        int c0 = b0 * 16, c1 = b1 * 16 < j->N ? b1 * 16 : j->N;
        if (c0 >= c1) return;
        const float *B = j->tb ? j->B + (size_t)c0 * j->ldb : j->B + c0;
        cblas_sgemm(CblasRowMajor, ta, tb, j->M, c1 - c0, j->K, j->alpha, j->A, j->lda, B, j->ldb, j->beta,
                    j->C + c0, j->ldc);
    }
}
#endif

void CRN_FN(crn_gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                      const real *B, int ldb, real beta, real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    if (M == 1) {
        /* one row (sampling at batch 1): a matrix-vector product, which skips
         * the packing a GEMM does. c (N) = alpha * op(B)^T a + beta * c, with a
         * the row of op(A): contiguous, or a column of stride lda if ta. */
        if (tb) // B stored (N, K)
            CRN_BLAS_GEMV(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, ta ? lda : 1, beta, C, 1);
        else    // B stored (K, N)
            CRN_BLAS_GEMV(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, ta ? lda : 1, beta, C, 1);
        return;
    }
#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
    /* large products: split the rows (or, if C is wider than tall, the
     * columns) of C across the pool, one single-threaded sgemm per part */
    if (CRN_FN(crn_pool_threads)() > 1 && (double)M * N * K >= 1e6) {
        struct gemm_job j = {ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
        CRN_FN(crn_parallel)(gemm_part, &j, M >= N ? (M + 7) / 8 : (N + 15) / 16);
        return;
    }
#endif
    CRN_BLAS_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                  A, lda, B, ldb, beta, C, ldc);
}

void CRN_FN(crn_gemm_ref)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                          const real *B, int ldb, real beta, real *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0; /* double accumulation: the reference should be the more exact one */
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
            }
            real *c = &C[(size_t)i * ldc + j];
            /* beta == 0 overwrites C (NaN in C must not propagate), as in BLAS */
            *c = (real)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * *c));
        }
    }
}

/* ------------------------------------------------------------------ */
/* small products: C (M, N) = A (M, K) @ B (K, N) (+ C)                 */

size_t CRN_FN(crn_pack_size)(int K, int N) { return (size_t)K * (size_t)((N + 15) / 16 * 16); }

void CRN_FN(crn_pack)(real *Bp, int tb, int K, int N, const real *B, int ldb) {
    for (int j0 = 0; j0 < N; j0 += 16) {
        real *P = Bp + (size_t)j0 * K; // panel j0 / 16: (K, 16)
        int w = N - j0 < 16 ? N - j0 : 16;
        for (int k = 0; k < K; k++) {
            real *d = P + (size_t)k * 16;
            if (tb)
                for (int c = 0; c < w; c++) d[c] = B[(size_t)(j0 + c) * ldb + k];
            else
                memcpy(d, B + (size_t)k * ldb + j0, (size_t)w * sizeof(real));
            for (int c = w; c < 16; c++) d[c] = 0;
        }
    }
}

#if CRN_FAST_X86
#define TGT __attribute__((target("avx2,fma")))
#define AINL __attribute__((always_inline)) inline

enum { KC = 256 }; // K block: a 16-column panel of B is KC * 64 bytes, in L1

/* One register block: mr (1..6) rows x nv (1, 2) vectors of 8 columns over
 * kc steps; the last vector masked when msk (a tail of < 8 columns).
 * acc: add to C (else overwrite). 12 accumulators + 2 B vectors + 1
 * broadcast fit the 16 ymm registers. */
static AINL TGT void mk(int mr, int nv, int msk, __m256i mask, int kc, const float *A, int lda, const float *B,
                        int ldb, float *C, int ldc, int acc) {
    __m256 c0[6], c1[6];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *b = B + (size_t)k * ldb;
        __m256 b0, b1 = _mm256_setzero_ps();
        if (nv == 1)
            b0 = msk ? _mm256_maskload_ps(b, mask) : _mm256_loadu_ps(b);
        else {
            b0 = _mm256_loadu_ps(b);
            b1 = msk ? _mm256_maskload_ps(b + 8, mask) : _mm256_loadu_ps(b + 8);
        }
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++)
            if (i < mr) {
                __m256 a = _mm256_broadcast_ss(A + (size_t)i * lda + k);
                c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
                if (nv == 2) c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
            }
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)
        if (i < mr) {
            float *c = C + (size_t)i * ldc;
            if (nv == 1) {
                if (msk) {
                    __m256 v = acc ? _mm256_add_ps(c0[i], _mm256_maskload_ps(c, mask)) : c0[i];
                    _mm256_maskstore_ps(c, mask, v);
                } else
                    _mm256_storeu_ps(c, acc ? _mm256_add_ps(c0[i], _mm256_loadu_ps(c)) : c0[i]);
            } else {
                _mm256_storeu_ps(c, acc ? _mm256_add_ps(c0[i], _mm256_loadu_ps(c)) : c0[i]);
                if (msk) {
                    __m256 v = acc ? _mm256_add_ps(c1[i], _mm256_maskload_ps(c + 8, mask)) : c1[i];
                    _mm256_maskstore_ps(c + 8, mask, v);
                } else
                    _mm256_storeu_ps(c + 8, acc ? _mm256_add_ps(c1[i], _mm256_loadu_ps(c + 8)) : c1[i]);
            }
        }
}

/* The row blocks of one column block (width: nv vectors, masked tail). The
 * M rows are cut into ceil(M / 6) blocks of near-equal height (25 rows:
 * 5 x 5, not 4 x 6 + 1: a 1-row block waits on two FMA chains and costs
 * almost as much as a full one). */
#define MK_ROWS(NV, MSK)                                                                                               \
    static TGT void rows_##NV##_##MSK(int M, int kc, __m256i mask, const float *A, int lda, const float *B, int ldb,  \
                                      float *C, int ldc, int acc) {                                                    \
        const int nb = (M + 5) / 6, base = M / nb, extra = M % nb;                                                     \
        for (int b = 0, i = 0; b < nb; b++) {                                                                          \
            const int mr = base + (b < extra);                                                                         \
            const float *Ai = A + (size_t)i * lda;                                                                     \
            float *Ci = C + (size_t)i * ldc;                                                                           \
            switch (mr) {                                                                                              \
            case 6: mk(6, NV, MSK, mask, kc, Ai, lda, B, ldb, Ci, ldc, acc); break;                                    \
            case 5: mk(5, NV, MSK, mask, kc, Ai, lda, B, ldb, Ci, ldc, acc); break;                                    \
            case 4: mk(4, NV, MSK, mask, kc, Ai, lda, B, ldb, Ci, ldc, acc); break;                                    \
            case 3: mk(3, NV, MSK, mask, kc, Ai, lda, B, ldb, Ci, ldc, acc); break;                                    \
            case 2: mk(2, NV, MSK, mask, kc, Ai, lda, B, ldb, Ci, ldc, acc); break;                                    \
            default: mk(1, NV, MSK, mask, kc, Ai, lda, B, ldb, Ci, ldc, acc); break;                                   \
            }                                                                                                          \
            i += mr;                                                                                                   \
        }                                                                                                              \
    }
MK_ROWS(2, 0)
MK_ROWS(1, 0)
MK_ROWS(1, 1)
MK_ROWS(2, 1)

/* One row (M = 1, sampling): 64 columns at a time, eight independent
 * accumulators so the FMA latency is hidden (a 1 x 16 block would wait on
 * two dependency chains). */
static TGT void row1_64(int kc, const float *a, const float *B, int ldb, float *c, int acc) {
    __m256 s[8];
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++) s[v] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *b = B + (size_t)k * ldb;
        __m256 x = _mm256_broadcast_ss(a + k);
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) s[v] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8 * v), s[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++)
        _mm256_storeu_ps(c + 8 * v, acc ? _mm256_add_ps(s[v], _mm256_loadu_ps(c + 8 * v)) : s[v]);
}

/* One row (M = 1), columns [j0, j1) of an unpacked B, in the order B is
 * stored: four rows of B at a time stream contiguously into the row of C
 * (kept in L1), so the reads are sequential whatever the row stride (a
 * column walk with a stride of 2^k floats would thrash a few L1 sets). */
static TGT void row1_stream(int K, const float *a, const float *B, int ldb, float *c, int acc, int j0, int j1) {
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const int r = (j1 - j0) & 7, jv = j1 - r;
    const __m256i mask = _mm256_loadu_si256((const __m256i *)(lanes + 8 - r));
    if (!acc) {
        for (int j = j0; j < jv; j += 8) _mm256_storeu_ps(c + j, _mm256_setzero_ps());
        if (r) _mm256_maskstore_ps(c + jv, mask, _mm256_setzero_ps());
    }
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const __m256 x0 = _mm256_broadcast_ss(a + k), x1 = _mm256_broadcast_ss(a + k + 1);
        const __m256 x2 = _mm256_broadcast_ss(a + k + 2), x3 = _mm256_broadcast_ss(a + k + 3);
        const float *b0 = B + (size_t)k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        for (int j = j0; j < jv; j += 8) {
            __m256 s0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b0 + j), _mm256_loadu_ps(c + j));
            __m256 s1 = _mm256_mul_ps(x1, _mm256_loadu_ps(b1 + j));
            s0 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(b2 + j), s0);
            s1 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(b3 + j), s1);
            _mm256_storeu_ps(c + j, _mm256_add_ps(s0, s1));
        }
        if (r) {
            __m256 s0 = _mm256_fmadd_ps(x0, _mm256_maskload_ps(b0 + jv, mask), _mm256_maskload_ps(c + jv, mask));
            __m256 s1 = _mm256_mul_ps(x1, _mm256_maskload_ps(b1 + jv, mask));
            s0 = _mm256_fmadd_ps(x2, _mm256_maskload_ps(b2 + jv, mask), s0);
            s1 = _mm256_fmadd_ps(x3, _mm256_maskload_ps(b3 + jv, mask), s1);
            _mm256_maskstore_ps(c + jv, mask, _mm256_add_ps(s0, s1));
        }
    }
    for (; k < K; k++) {
        const __m256 x0 = _mm256_broadcast_ss(a + k);
        const float *b0 = B + (size_t)k * ldb;
        for (int j = j0; j < jv; j += 8)
            _mm256_storeu_ps(c + j, _mm256_fmadd_ps(x0, _mm256_loadu_ps(b0 + j), _mm256_loadu_ps(c + j)));
        if (r)
            _mm256_maskstore_ps(c + jv, mask,
                                _mm256_fmadd_ps(x0, _mm256_maskload_ps(b0 + jv, mask), _mm256_maskload_ps(c + jv, mask)));
    }
}

/* Columns [j0, j1) of the product, all K blocks. packed: B is crn_pack'ed
 * (panels of 16 columns, zero-padded, so their loads need no mask). */
static TGT void nn_range(int M, int K, const float *A, int lda, const float *B, int ldb, int packed, int acc0,
                         float *C, int ldc, int j0, int j1) {
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC, acc = acc0 || k0 > 0;
        const float *Ak = A + k0;
        int j = j0;
        if (M == 1 && !packed) {
            if ((j1 - j0) * kc >= 16384) { // large: stream B in storage order
                row1_stream(kc, Ak, B + (size_t)k0 * ldb, ldb, C, acc, j0, j1);
                continue;
            }
            for (; j + 64 <= j1; j += 64) row1_64(kc, Ak, B + (size_t)k0 * ldb + j, ldb, C + j, acc);
        }
        for (; j + 16 <= j1; j += 16) {
            const float *Bj = packed ? B + (size_t)j * K + (size_t)k0 * 16 : B + (size_t)k0 * ldb + j;
            rows_2_0(M, kc, _mm256_setzero_si256(), Ak, lda, Bj, packed ? 16 : ldb, C + j, ldc, acc);
        }
        int r = j1 - j; // 0..15 columns left
        if (r == 0) continue;
        const float *Bj = packed ? B + (size_t)j * K + (size_t)k0 * 16 : B + (size_t)k0 * ldb + j;
        const int lb = packed ? 16 : ldb;
        __m256i mask = _mm256_loadu_si256((const __m256i *)(lanes + 8 - (r & 7)));
        if (r == 8)
            rows_1_0(M, kc, mask, Ak, lda, Bj, lb, C + j, ldc, acc);
        else if (r < 8)
            rows_1_1(M, kc, mask, Ak, lda, Bj, lb, C + j, ldc, acc);
        else
            rows_2_1(M, kc, mask, Ak, lda, Bj, lb, C + j, ldc, acc);
    }
}

static int have_avx2(void) {
    return CRN_FN(crn_kernels_isa)() >= CRN_ISA_AVX2;
}

struct nn_job {
    int M, N, K, lda, ldb, ldc, acc, packed;
    const float *A, *B;
    float *C;
};

static void nn_part(void *p, int part, int nparts) {
    const struct nn_job *j = p;
    int nb = (j->N + 15) / 16; // column blocks of 16, split evenly
    int b0 = (int)((long)nb * part / nparts), b1 = (int)((long)nb * (part + 1) / nparts);
    int c0 = b0 * 16, c1 = b1 * 16 < j->N ? b1 * 16 : j->N;
    if (c0 < c1) nn_range(j->M, j->K, j->A, j->lda, j->B, j->ldb, j->packed, j->acc, j->C, j->ldc, c0, c1);
}
#endif

/* ------------------------------------------------------------------ */
/* the packed product with AVX-512 (the per-step recurrence)           */

#if CRN_FAST_X86
#define TGT512 __attribute__((target("avx512f")))
enum { KC512 = 128 }; // K block: three 16-column panels are 3 * KC512 * 64 bytes = 24 KB, in L1

static int have_avx512(void) {
    return CRN_FN(crn_kernels_isa)() >= CRN_ISA_AVX512;
}

/* One register block: mr (1..8) rows x np (1..3) panels of 16 columns (one
 * zmm each) over kc steps; Bp the first panel at step 0 of the block, the
 * panels K * 16 apart; the last panel's columns masked by mlast. acc: add
 * to C (else overwrite). 24 accumulators + 3 B vectors + 1 broadcast fit
 * the 32 zmm registers. */
static AINL TGT512 void mk512(int mr, int np, __mmask16 mlast, int kc, const float *A, int lda, const float *Bp, int K,
                              float *C, int ldc, int acc) {
    __m512 c[8][3];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
#pragma GCC unroll 3
        for (int p = 0; p < 3; p++) c[i][p] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b[3];
#pragma GCC unroll 3
        for (int p = 0; p < 3; p++)
            b[p] = p < np ? _mm512_loadu_ps(Bp + (size_t)p * 16 * K + (size_t)k * 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            if (i < mr) {
                const __m512 a = _mm512_set1_ps(A[(size_t)i * lda + k]);
#pragma GCC unroll 3
                for (int p = 0; p < 3; p++)
                    if (p < np) c[i][p] = _mm512_fmadd_ps(a, b[p], c[i][p]);
            }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        if (i < mr)
#pragma GCC unroll 3
            for (int p = 0; p < 3; p++)
                if (p < np) {
                    float *cp = C + (size_t)i * ldc + 16 * p;
                    const __mmask16 m = p == np - 1 ? mlast : (__mmask16)0xffff;
                    const __m512 v = acc ? _mm512_add_ps(c[i][p], _mm512_maskz_loadu_ps(m, cp)) : c[i][p];
                    _mm512_mask_storeu_ps(cp, m, v);
                }
}

#define MK512_NP(MR)                                                                                                   \
    switch (np) {                                                                                                      \
    case 3: mk512(MR, 3, mlast, kc, A, lda, Bp, K, C, ldc, acc); break;                                                \
    case 2: mk512(MR, 2, mlast, kc, A, lda, Bp, K, C, ldc, acc); break;                                                \
    default: mk512(MR, 1, mlast, kc, A, lda, Bp, K, C, ldc, acc); break;                                               \
    }

static TGT512 void block512(int mr, int np, __mmask16 mlast, int kc, const float *A, int lda, const float *Bp, int K,
                            float *C, int ldc, int acc) {
    switch (mr) {
    case 8: MK512_NP(8) break;
    case 7: MK512_NP(7) break;
    case 6: MK512_NP(6) break;
    case 5: MK512_NP(5) break;
    case 4: MK512_NP(4) break;
    case 3: MK512_NP(3) break;
    case 2: MK512_NP(2) break;
    default: MK512_NP(1) break;
    }
}
#undef MK512_NP

/* K blocks, groups of three panels, row blocks of near-equal height (at
 * most 8): a panel group stays in L1 while every row block passes over it. */
static TGT512 void packed512(int M, int N, int K, const float *A, int lda, const float *Bp, int acc0, float *C,
                             int ldc) {
    const int P = (N + 15) / 16, nb = (M + 7) / 8, base = M / nb, extra = M % nb;
    const __mmask16 tail = N % 16 ? (__mmask16)((1u << (N % 16)) - 1) : (__mmask16)0xffff;
    for (int k0 = 0; k0 < K; k0 += KC512) {
        const int kc = K - k0 < KC512 ? K - k0 : KC512, acc = acc0 || k0 > 0;
        for (int p0 = 0; p0 < P; p0 += 3) {
            const int np = P - p0 < 3 ? P - p0 : 3;
            const __mmask16 mlast = p0 + np == P ? tail : (__mmask16)0xffff;
            const float *Bj = Bp + (size_t)p0 * 16 * K + (size_t)k0 * 16;
            for (int b = 0, i = 0; b < nb; b++) {
                const int mr = base + (b < extra);
                block512(mr, np, mlast, kc, A + (size_t)i * lda + k0, lda, Bj, K, C + (size_t)i * ldc + 16 * p0, ldc,
                         acc);
                i += mr;
            }
        }
    }
}

/* Panel groups [g0, g1) of three (packed512's register block) of one part. */
static void packed512_part(void *p, int part, int nparts) {
    const struct nn_job *j = p;
    const int ng = (j->N + 47) / 48;
    const int g0 = (int)((long)ng * part / nparts), g1 = (int)((long)ng * (part + 1) / nparts);
    const int c0 = g0 * 48, c1 = g1 * 48 < j->N ? g1 * 48 : j->N;
    if (c0 < c1)
        packed512(j->M, c1 - c0, j->K, j->A, j->lda, j->B + (size_t)c0 * j->K, j->acc, j->C + c0, j->ldc);
}
#endif


void CRN_FN(crn_gemm_nn)(int M, int N, int K, const real *A, int lda, const real *B, int ldb, real beta, real *C,
                         int ldc) {
#if CRN_FAST_X86
    if (M > 0 && N > 0 && K > 0 && (beta == 0 || beta == 1) && have_avx2()) {
        struct nn_job j = {M, N, K, lda, ldb, ldc, beta != 0, 0, A, B, C};
        /* two parts pay off above ~100k multiply-adds (a hand-off to a
         * spinning worker is ~1 us); a single row (sampling) only from ~300k,
         * where splitting also doubles the bandwidth for weights beyond L2 */
        double work = (double)M * N * K;
        int parts = work < (M == 1 ? 3e5 : 1e5) ? 1 : (N + 15) / 16;
        CRN_FN(crn_parallel)(nn_part, &j, parts);
        return;
    }
#endif
    CRN_FN(crn_gemm)(0, 0, M, N, K, 1, A, lda, B, ldb, beta, C, ldc);
}

static double softmax_xent_rows(real *dlogits, const real *logits, const uint32_t *targets, size_t N, size_t V,
                                real scale, size_t *count);

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
struct xent_job {
    real *d;
    const real *l;
    const uint32_t *t;
    size_t N, V;
    real scale;
    double loss[64];
    size_t count[64];
};

static void xent_part(void *p, int part, int nparts) {
    struct xent_job *j = p;
    size_t r0 = j->N * (size_t)part / (size_t)nparts, r1 = j->N * (size_t)(part + 1) / (size_t)nparts;
    j->loss[part] = softmax_xent_rows(j->d + r0 * j->V, j->l + r0 * j->V, j->t + r0, r1 - r0, j->V, j->scale,
                                      &j->count[part]);
}
#endif

double CRN_FN(crn_softmax_xent)(real *dlogits, const real *logits, const uint32_t *targets, size_t N, size_t V,
                                real scale, size_t *count) {
#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
    /* rows split across the threads for a whole window; the partial losses
     * are summed in part order (the same total whatever the timing) */
    if (CRN_FN(crn_pool_threads)() > 1 && N * V >= 65536) {
        struct xent_job j = {dlogits, logits, targets, N, V, scale, {0}, {0}};
        int parts = CRN_FN(crn_pool_threads)() < 64 ? CRN_FN(crn_pool_threads)() : 64;
        for (int i = 0; i < 64; i++) j.count[i] = 0, j.loss[i] = 0;
        CRN_FN(crn_parallel)(xent_part, &j, parts);
        double loss = 0;
        size_t cnt = 0;
        for (int i = 0; i < 64; i++) loss += j.loss[i], cnt += j.count[i];
        if (count) *count = cnt;
        return loss;
    }
#endif
    return softmax_xent_rows(dlogits, logits, targets, N, V, scale, count);
}

static double softmax_xent_rows(real *dlogits, const real *logits, const uint32_t *targets, size_t N, size_t V,
                                real scale, size_t *count) {
    double loss = 0.0;
    size_t counted = 0;
    for (size_t i = 0; i < N; i++) {
        const real *l = logits + i * V;
        real *d = dlogits + i * V;
        uint32_t t = targets[i];
        if (t == CRN_IGNORE || t >= V) {
            /* ignored (out-of-range ids are the caller's bug; treat them as ignored
             * rather than read out of bounds) */
            memset(d, 0, V * sizeof(real));
            continue;
        }
        real mx = l[0];
        for (size_t j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        real lt = l[t]; /* read before d (which may alias l) is written */
        real sum = 0;
        for (size_t j = 0; j < V; j++) {
            real e = R_EXP(l[j] - mx);
            d[j] = e;
            sum += e;
        }
        /* loss = log(sum exp(l)) - l[t] = log(sum) + mx - l[t] */
        loss += log((double)sum) + (double)mx - (double)lt;
        real k = scale / sum;
        for (size_t j = 0; j < V; j++) d[j] *= k;
        d[t] -= scale;
        counted++;
    }
    if (count) *count = counted;
    return loss;
}

void CRN_FN(crn_gemm_packed)(int M, int N, int K, const real *A, int lda, const real *Bp, real beta, real *C,
                             int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
#if CRN_FAST_X86
    if ((beta == 0 || beta == 1) && have_avx2()) {
        struct nn_job j = {M, N, K, lda, 16, ldc, beta != 0, 1, A, Bp, C};
        double work = (double)M * N * K;
        if (have_avx512()) { // parts of whole panel groups (packed512's register block is 3 panels)
            CRN_FN(crn_parallel)(packed512_part, &j, work < 1e5 ? 1 : (N + 47) / 48);
            return;
        }
        CRN_FN(crn_parallel)(nn_part, &j, work < 1e5 ? 1 : (N + 15) / 16);
        return;
    }
#endif
    /* plain loops over the packed layout (double build, other CPUs) */
    for (int i = 0; i < M; i++) {
        const real *a = A + (size_t)i * lda;
        real *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) {
            const real *b = Bp + (size_t)(j / 16) * 16 * K + (j % 16);
            real acc = 0;
            for (int k = 0; k < K; k++) acc += a[k] * b[(size_t)k * 16];
            c[j] = beta == 0 ? acc : beta * c[j] + acc;
        }
    }
}

/* ------------------------------------------------------------------ */
/* binary16 weights for sampling (float build only)                    */

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
uint16_t crn_f16_from_f32_ref(float f) {
    union { float f; uint32_t u; } v = {f};
    const uint32_t sign = (v.u >> 16) & 0x8000u, ax = v.u & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0)); // inf, NaN
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); // rounds to >= 65520: inf
    if (ax < 0x38800000u) { // below 2^-14: a subnormal half (units of 2^-24), or 0
        if (ax < 0x33000000u) return (uint16_t)sign; // <= 2^-25 rounds to 0
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        const int shift = 126 - (int)(ax >> 23); // 14..24
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu; // exponent rebiased 127 -> 15
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float crn_f16_to_f32_ref(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    union { float f; uint32_t u; } v;
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-8f; // m * 2^-24, exact
        return sign ? -f : f;
    }
    v.u = e == 31 ? sign | 0x7f800000u | (m << 13) : sign | ((e + 112) << 23) | (m << 13);
    return v.f;
}

void crn_gemv_f16_ref(int N, int K, const float *a, const uint16_t *W, int ldw, float *c) {
    for (int j = 0; j < N; j++) {
        double acc = 0;
        for (int k = 0; k < K; k++) acc += (double)a[k] * crn_f16_to_f32_ref(W[(size_t)k * ldw + j]);
        c[j] = (float)(c[j] + acc);
    }
}

#if CRN_FAST_X86
static int have_f16c(void) {
    static int v = -1;
    /* CPUID leaf 1, ECX bit 29; clang 14 does not know "f16c" as a
     * __builtin_cpu_supports feature string, so ask the CPU directly. */
    if (v < 0) {
        unsigned a, b, c, d;
        v = have_avx2() && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    }
    return v;
}

#define TGT16 __attribute__((target("avx2,fma,f16c")))

static TGT16 void f16_convert(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = crn_f16_from_f32_ref(src[i]);
}

static inline TGT16 __m256 ld16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* Columns [j0, j1): four rows of W at a time stream into c (as row1_stream). */
static TGT16 void gemv16_range(int K, const float *a, const uint16_t *W, int ldw, float *c, int j0, int j1) {
    const int jv = j0 + (j1 - j0) / 8 * 8;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const __m256 x0 = _mm256_broadcast_ss(a + k), x1 = _mm256_broadcast_ss(a + k + 1);
        const __m256 x2 = _mm256_broadcast_ss(a + k + 2), x3 = _mm256_broadcast_ss(a + k + 3);
        const uint16_t *b0 = W + (size_t)k * ldw, *b1 = b0 + ldw, *b2 = b1 + ldw, *b3 = b2 + ldw;
        for (int j = j0; j < jv; j += 8) {
            __m256 s0 = _mm256_fmadd_ps(x0, ld16(b0 + j), _mm256_loadu_ps(c + j));
            __m256 s1 = _mm256_mul_ps(x1, ld16(b1 + j));
            s0 = _mm256_fmadd_ps(x2, ld16(b2 + j), s0);
            s1 = _mm256_fmadd_ps(x3, ld16(b3 + j), s1);
            _mm256_storeu_ps(c + j, _mm256_add_ps(s0, s1));
        }
        for (int j = jv; j < j1; j++)
            c[j] += a[k] * crn_f16_to_f32_ref(b0[j]) + a[k + 1] * crn_f16_to_f32_ref(b1[j]) +
                    a[k + 2] * crn_f16_to_f32_ref(b2[j]) + a[k + 3] * crn_f16_to_f32_ref(b3[j]);
    }
    for (; k < K; k++) {
        const __m256 x0 = _mm256_broadcast_ss(a + k);
        const uint16_t *b0 = W + (size_t)k * ldw;
        for (int j = j0; j < jv; j += 8)
            _mm256_storeu_ps(c + j, _mm256_fmadd_ps(x0, ld16(b0 + j), _mm256_loadu_ps(c + j)));
        for (int j = jv; j < j1; j++) c[j] += a[k] * crn_f16_to_f32_ref(b0[j]);
    }
}

struct gemv16_job {
    int N, K, ldw;
    const float *a;
    const uint16_t *W;
    float *c;
};

static void gemv16_part(void *p, int part, int nparts) {
    const struct gemv16_job *j = p;
    int nb = (j->N + 7) / 8, b0 = (int)((long)nb * part / nparts), b1 = (int)((long)nb * (part + 1) / nparts);
    int c0 = b0 * 8, c1 = b1 * 8 < j->N ? b1 * 8 : j->N;
    if (c0 < c1) gemv16_range(j->K, j->a, j->W, j->ldw, j->c, c0, c1);
}
#endif

void crn_f16_from_f32(uint16_t *dst, const float *src, size_t n) {
#if CRN_FAST_X86
    if (have_f16c()) {
        f16_convert(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = crn_f16_from_f32_ref(src[i]);
}

void crn_gemv_f16(int N, int K, const float *a, const uint16_t *W, int ldw, float *c) {
    if (N <= 0 || K <= 0) return;
#if CRN_FAST_X86
    if (have_f16c()) {
        struct gemv16_job j = {N, K, ldw, a, W, c};
        CRN_FN(crn_parallel)(gemv16_part, &j, (double)N * K < 3e5 ? 1 : (N + 7) / 8);
        return;
    }
#endif
    crn_gemv_f16_ref(N, K, a, W, ldw, c);
}
#endif

void CRN_FN(crn_gemm_packed_local)(int M, int N, int K, const real *A, int lda, const real *Bp, real beta, real *C,
                                   int ldc) {
#if CRN_FAST_X86
    if (M > 0 && N > 0 && K > 0 && (beta == 0 || beta == 1) && have_avx512()) {
        packed512(M, N, K, A, lda, Bp, beta != 0, C, ldc);
        return;
    }
#endif
    CRN_FN(crn_gemm_packed)(M, N, K, A, lda, Bp, beta, C, ldc);
}
