/* kernels.c — the one matrix-product entry point (OpenBLAS), its plain-loop
 * reference, thread control and the fused softmax cross-entropy.
 * Compiled as float and as double (real.h): every symbol goes through CRN_FN. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#if defined(CRN_DOUBLE) && CRN_DOUBLE
#define CRN_BLAS_GEMM cblas_dgemm
#define CRN_BLAS_GEMV cblas_dgemv
#define R_EXP exp
#else
#define CRN_BLAS_GEMM cblas_sgemm
#define CRN_BLAS_GEMV cblas_sgemv
#define R_EXP expf
#endif

#define CRN_IGNORE_ID 0xffffffffu

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

static int g_threads = 0;

void CRN_FN(crn_set_threads)(int n) {
    if (n <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n = nc > 0 ? (int)nc : 1;
    }
    g_threads = n;
    openblas_set_num_threads(n);
}

int CRN_FN(crn_get_threads)(void) { return g_threads > 0 ? g_threads : openblas_get_num_threads(); }

double CRN_FN(crn_softmax_xent)(real *dlogits, const real *logits, const uint32_t *targets, size_t N, size_t V,
                                real scale, size_t *count) {
    double loss = 0.0;
    size_t counted = 0;
    for (size_t i = 0; i < N; i++) {
        const real *l = logits + i * V;
        real *d = dlogits + i * V;
        uint32_t t = targets[i];
        if (t == CRN_IGNORE_ID || t >= V) {
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
