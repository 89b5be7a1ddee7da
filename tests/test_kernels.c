/* test_kernels.c — the GEMM entry point against its plain-loop reference
 * (float and double builds, odd shapes, all transpose combinations,
 * alpha/beta, padded leading dimensions), the fused softmax cross-entropy
 * against a naive double reference, and the sampling step against the
 * window forward for every cell. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cell.h"
#include "common.h"
#include "kernels.h"
#include "model.h"
#include "rng.h"

/* The double build's kernels (libcrnnum64); kernels.h is included as float. */
void crn_gemm_f64(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda, const double *B,
                  int ldb, double beta, double *C, int ldc);
void crn_gemm_ref_f64(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
                      const double *B, int ldb, double beta, double *C, int ldc);
double crn_softmax_xent_f64(double *dlogits, const double *logits, const uint32_t *targets, size_t N, size_t V,
                            double scale, size_t *count);

static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {2, 1, 9}, {1, 31, 1}, {1, 40, 23}, {64, 3, 100}};

/* One shape, one transpose combination: op(A) (M, K), op(B) (K, N), stored
 * with leading dimensions padded by pad (lda > cols when pad > 0). */
#define DEFINE_GEMM_CASE(NAME, T, GEMM, REF, TOL)                                                                      \
    static double NAME(int ta, int tb, int M, int N, int K, int pad, T alpha, T beta, crn_rng *rng) {                 \
        int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;                                        \
        int lda = ac + pad, ldb = bc + pad, ldc = N + pad;                                                             \
        T *A = malloc(sizeof(T) * (size_t)ar * lda), *Bm = malloc(sizeof(T) * (size_t)br * ldb);                      \
        T *C1 = malloc(sizeof(T) * (size_t)M * ldc), *C2 = malloc(sizeof(T) * (size_t)M * ldc);                       \
        for (int i = 0; i < ar * lda; i++) A[i] = (T)(2 * crn_rng_uniform(rng) - 1);                                   \
        for (int i = 0; i < br * ldb; i++) Bm[i] = (T)(2 * crn_rng_uniform(rng) - 1);                                  \
        for (int i = 0; i < M * ldc; i++) C1[i] = C2[i] = (T)(2 * crn_rng_uniform(rng) - 1);                           \
        if (beta == 0) /* beta == 0 must overwrite C, even NaN */                                                      \
            for (int i = 0; i < M * ldc; i++) C1[i] = C2[i] = (T)NAN;                                                  \
        GEMM(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C1, ldc);                                                  \
        REF(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C2, ldc);                                                   \
        double worst = 0; /* error / tolerance, must stay <= 1 */                                                      \
        for (int i = 0; i < M; i++)                                                                                    \
            for (int j = 0; j < ldc; j++) {                                                                            \
                double a = C1[i * ldc + j], b = C2[i * ldc + j];                                                       \
                if (j >= N) { /* padding untouched */                                                                  \
                    if (!(a == b || (isnan(a) && isnan(b)))) worst = INFINITY;                                         \
                    continue;                                                                                          \
                }                                                                                                      \
                if (!isfinite(a)) worst = INFINITY;                                                                    \
                double tol = (TOL) * (K + 1) * (1 + fabs(b));                                                          \
                double e = fabs(a - b) / tol;                                                                          \
                if (e > worst) worst = e;                                                                              \
            }                                                                                                          \
        free(A), free(Bm), free(C1), free(C2);                                                                         \
        return worst;                                                                                                  \
    }
DEFINE_GEMM_CASE(gemm_case_f32, float, crn_gemm, crn_gemm_ref, 1e-6)
DEFINE_GEMM_CASE(gemm_case_f64, double, crn_gemm_f64, crn_gemm_ref_f64, 1e-14)

START_TEST(test_gemm_float_and_double) {
    crn_rng rng;
    crn_rng_seed(&rng, 42);
    const double ab[][2] = {{1, 0}, {1, 1}, {0.5, -2}, {-1.25, 0.75}};
    for (size_t s = 0; s < CRN_ARRAY_LEN(shapes); s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int pad = 0; pad < 5; pad += 3)
                    for (size_t k = 0; k < CRN_ARRAY_LEN(ab); k++) {
                        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                        double e32 = gemm_case_f32(ta, tb, M, N, K, pad, (float)ab[k][0], (float)ab[k][1], &rng);
                        double e64 = gemm_case_f64(ta, tb, M, N, K, pad, ab[k][0], ab[k][1], &rng);
                        ck_assert_msg(e32 <= 1.0, "float gemm %dx%dx%d ta=%d tb=%d pad=%d alpha=%g beta=%g: err/tol %g",
                                      M, N, K, ta, tb, pad, ab[k][0], ab[k][1], e32);
                        ck_assert_msg(e64 <= 1.0, "double gemm %dx%dx%d ta=%d tb=%d pad=%d alpha=%g beta=%g: err/tol %g",
                                      M, N, K, ta, tb, pad, ab[k][0], ab[k][1], e64);
                    }
}
END_TEST

START_TEST(test_gemm_detects_difference) {
    /* the comparison itself must be able to fail: a product with one wrong
     * input entry differs from the reference well beyond the tolerance */
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C1[4], C2[4];
    crn_gemm(0, 0, 2, 2, 3, 1, A, 3, B, 2, 0, C1, 2);
    A[0] += 1e-3f;
    crn_gemm_ref(0, 0, 2, 2, 3, 1, A, 3, B, 2, 0, C2, 2);
    ck_assert(fabsf(C1[0] - C2[0]) > 1e-6f * 4 * (1 + fabsf(C2[0])));
    /* plain values: [[1,2,3],[4,5,6]] @ [[1,0],[0,1],[1,1]] = [[4,5],[10,11]] */
    ck_assert_float_eq(C1[0], 4);
    ck_assert_float_eq(C1[1], 5);
    ck_assert_float_eq(C1[2], 10);
    ck_assert_float_eq(C1[3], 11);
}
END_TEST

/* The small-product kernel (AVX2 register blocks, M = 1 path, K blocks,
 * masked column tails, the column split across threads) against the plain
 * loops: shapes around every block edge (6 rows, 8/16/64 columns, K = 256),
 * padded leading dimensions, beta 0 (overwrites NaN) and 1, 1 and 2 threads. */
START_TEST(test_gemm_nn_matches_reference) {
    static const int Ms[] = {1, 2, 5, 6, 7, 13, 50, 64};
    static const int Ns[] = {1, 3, 8, 9, 15, 16, 17, 40, 63, 64, 65, 100, 129, 200};
    static const int Ks[] = {1, 5, 37, 256, 300, 513};
    crn_rng rng;
    crn_rng_seed(&rng, 77);
    double worst = 0;
    int cases = 0;
    for (int th = 1; th <= 2; th++) {
        crn_set_threads(th);
        for (size_t a = 0; a < CRN_ARRAY_LEN(Ms); a++)
            for (size_t b = 0; b < CRN_ARRAY_LEN(Ns); b++)
                for (size_t c = 0; c < CRN_ARRAY_LEN(Ks); c++) {
                    int M = Ms[a], N = Ns[b], K = Ks[c], pad = (int)((a + b + c) % 3) * 3;
                    if ((double)M * N * K > 3e6) continue;
                    int lda = K + pad, ldb = N + pad, ldc = N + pad;
                    float *A = malloc(sizeof(float) * (size_t)M * lda), *Bm = malloc(sizeof(float) * (size_t)K * ldb);
                    float *C1 = malloc(sizeof(float) * (size_t)M * ldc), *C2 = malloc(sizeof(float) * (size_t)M * ldc);
                    for (int i = 0; i < M * lda; i++) A[i] = (float)(2 * crn_rng_uniform(&rng) - 1);
                    for (int i = 0; i < K * ldb; i++) Bm[i] = (float)(2 * crn_rng_uniform(&rng) - 1);
                    for (int beta = 0; beta <= 1; beta++) {
                        for (int i = 0; i < M * ldc; i++)
                            C1[i] = C2[i] = beta ? (float)(2 * crn_rng_uniform(&rng) - 1) : NAN;
                        crn_gemm_nn(M, N, K, A, lda, Bm, ldb, (float)beta, C1, ldc);
                        crn_gemm_ref(0, 0, M, N, K, 1, A, lda, Bm, ldb, (float)beta, C2, ldc);
                        /* ck_assert per element would be slow (each is a pipe write): collect, assert once */
                        int pad_ok = 1, finite = 1;
                        double w = 0;
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < ldc; j++) {
                                double x = C1[i * ldc + j], y = C2[i * ldc + j];
                                if (j >= N) { /* padding untouched */
                                    pad_ok &= x == y || (isnan(x) && isnan(y));
                                    continue;
                                }
                                finite &= isfinite(x) != 0;
                                double e = fabs(x - y) / (1e-6 * (K + 1) * (1 + fabs(y)));
                                w = e > w ? e : w;
                            }
                        ck_assert_msg(pad_ok, "gemm_nn %dx%dx%d wrote into the padding", M, N, K);
                        ck_assert_msg(finite, "gemm_nn %dx%dx%d beta=%d: non-finite result", M, N, K, beta);
                        ck_assert_msg(w <= 1, "gemm_nn %dx%dx%d beta=%d threads=%d: err/tol %g", M, N, K, beta, th, w);
                        worst = w > worst ? w : worst;
                        cases++;
                    }
                    /* the comparison can fail: one changed entry of B moves a column */
                    Bm[(K - 1) * ldb + N - 1] += 0.5f;
                    crn_gemm_nn(M, N, K, A, lda, Bm, ldb, 0, C1, ldc);
                    ck_assert(fabs(C1[(M - 1) * ldc + N - 1] - C2[(M - 1) * ldc + N - 1]) > 1e-3 * fabs(A[(M - 1) * lda + K - 1]) ||
                              A[(M - 1) * lda + K - 1] == 0);
                    free(A), free(Bm), free(C1), free(C2);
                }
    }
    crn_set_threads(1);
    printf("gemm_nn: %d cases, worst err/tol %.3g\n", cases, worst);
}
END_TEST

/* The packed products (crn_gemm_packed, and crn_gemm_packed_local) at every
 * instruction-set level this CPU has (plain loops, AVX2, AVX-512: the level
 * capped by crn_kernels_set_isa): op(B) packed from B stored (K, N) or
 * transposed (N, K), against the plain loops on the same shapes; the zero
 * padding of the last panel must not leak into C. */
typedef void (*packed_fn)(int, int, int, const float *, int, const float *, float, float *, int);
START_TEST(test_gemm_packed_matches_reference) {
    static const int Ms[] = {1, 4, 6, 7, 9, 50};
    static const int Ns[] = {1, 9, 16, 17, 33, 100, 128, 384};
    static const int Ks[] = {1, 7, 128, 129, 257, 520};
    static const packed_fn fns[] = {crn_gemm_packed, crn_gemm_packed_local};
    static const char *const names[] = {"gemm_packed", "gemm_packed_local"};
    crn_rng rng;
    crn_rng_seed(&rng, 78);
    int cases = 0, levels = 0;
    for (int isa = CRN_ISA_PLAIN; isa <= CRN_ISA_AVX512; isa++) {
    crn_kernels_set_isa(isa);
    if (crn_kernels_isa() != isa) continue; // the CPU lacks this level
    levels++;
    for (int th = 1; th <= 2; th++)
    for (int fi = 0; fi < 2; fi++) {
        crn_set_threads(th);
        for (size_t a = 0; a < CRN_ARRAY_LEN(Ms); a++)
            for (size_t b = 0; b < CRN_ARRAY_LEN(Ns); b++)
                for (size_t c = 0; c < CRN_ARRAY_LEN(Ks); c++)
                    for (int tb = 0; tb <= 1; tb++) {
                        int M = Ms[a], N = Ns[b], K = Ks[c], pad = (int)((a + b + c) % 2) * 5;
                        int lda = K + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                        size_t nb = (size_t)(tb ? N : K) * ldb;
                        float *A = malloc(sizeof(float) * (size_t)M * lda), *Bm = malloc(sizeof(float) * nb);
                        float *Bp = malloc(sizeof(float) * crn_pack_size(K, N));
                        float *C1 = malloc(sizeof(float) * (size_t)M * ldc), *C2 = malloc(sizeof(float) * (size_t)M * ldc);
                        ck_assert_uint_eq(crn_pack_size(K, N), (size_t)K * ((N + 15) / 16 * 16));
                        for (int i = 0; i < M * lda; i++) A[i] = (float)(2 * crn_rng_uniform(&rng) - 1);
                        for (size_t i = 0; i < nb; i++) Bm[i] = (float)(2 * crn_rng_uniform(&rng) - 1);
                        crn_pack(Bp, tb, K, N, Bm, ldb);
                        for (int beta = 0; beta <= 1; beta++) {
                            for (int i = 0; i < M * ldc; i++)
                                C1[i] = C2[i] = beta ? (float)(2 * crn_rng_uniform(&rng) - 1) : NAN;
                            fns[fi](M, N, K, A, lda, Bp, (float)beta, C1, ldc);
                            crn_gemm_ref(0, tb, M, N, K, 1, A, lda, Bm, ldb, (float)beta, C2, ldc);
                            int ok = 1;
                            double w = 0;
                            for (int i = 0; i < M; i++)
                                for (int j = 0; j < ldc; j++) {
                                    double x = C1[i * ldc + j], y = C2[i * ldc + j];
                                    if (j >= N)
                                        ok &= x == y || (isnan(x) && isnan(y));
                                    else {
                                        ok &= isfinite(x) != 0;
                                        double e = fabs(x - y) / (1e-6 * (K + 1) * (1 + fabs(y)));
                                        w = e > w ? e : w;
                                    }
                                }
                            ck_assert_msg(ok && w <= 1, "%s isa %d %dx%dx%d tb=%d beta=%d threads=%d: err/tol %g%s",
                                          names[fi], isa, M, N, K, tb, beta, th, w,
                                          ok ? "" : ", padding or non-finite");
                            cases++;
                        }
                        free(A), free(Bm), free(Bp), free(C1), free(C2);
                    }
    }
    }
    crn_kernels_set_isa(CRN_ISA_AVX512);
    crn_set_threads(1);
    ck_assert_int_ge(levels, 1);
    printf("gemm_packed, gemm_packed_local: %d cases over %d instruction-set levels\n", cases, levels);
}
END_TEST

/* Large products split across the pool (rows of C, or columns when C is
 * wider than tall; each part one single-threaded sgemm, called from two
 * threads at once) against the plain loops, every transpose combination. */
START_TEST(test_gemm_split_threads) {
    static const int sh[][3] = {{301, 77, 53}, {40, 530, 61}, {257, 129, 33}};
    crn_rng rng;
    crn_rng_seed(&rng, 13);
    crn_set_threads(2);
    for (size_t s = 0; s < CRN_ARRAY_LEN(sh); s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                double e = gemm_case_f32(ta, tb, sh[s][0], sh[s][1], sh[s][2], 3, 0.75f, 1.0f, &rng);
                ck_assert_msg(e <= 1.0, "split gemm %dx%dx%d ta=%d tb=%d: err/tol %g", sh[s][0], sh[s][1], sh[s][2], ta,
                              tb, e);
            }
    crn_set_threads(1);
}
END_TEST

/* The softmax cross-entropy of a whole window split across threads: the
 * same dlogits bit for bit, the same count, the loss to rounding. */
START_TEST(test_softmax_xent_threads) {
    enum { N = 3001, V = 37 };
    float *l = malloc(sizeof(float) * N * V), *d1 = malloc(sizeof(float) * N * V), *d2 = malloc(sizeof(float) * N * V);
    uint32_t *t = malloc(sizeof(uint32_t) * N);
    crn_rng rng;
    crn_rng_seed(&rng, 11);
    for (int i = 0; i < N * V; i++) l[i] = (float)(6 * crn_rng_uniform(&rng) - 3);
    for (int i = 0; i < N; i++) t[i] = i % 17 == 0 ? 0xffffffffu : (uint32_t)crn_rng_below(&rng, V);
    size_t c1 = 0, c2 = 0;
    crn_set_threads(1);
    double L1 = crn_softmax_xent(d1, l, t, N, V, 0.5f, &c1);
    crn_set_threads(2);
    double L2 = crn_softmax_xent(d2, l, t, N, V, 0.5f, &c2);
    crn_set_threads(1);
    ck_assert_uint_eq(c1, c2);
    ck_assert_uint_eq(c1, N - (N + 16) / 17);
    ck_assert_msg(fabs(L1 - L2) <= 1e-12 * fabs(L1), "loss %.17g vs %.17g", L1, L2);
    ck_assert_msg(memcmp(d1, d2, sizeof(float) * N * V) == 0, "dlogits differ between 1 and 2 threads");
    free(l), free(d1), free(d2), free(t);
}
END_TEST

/* Column sums split across threads: bit-identical to one thread and equal
 * to a plain double sum within float rounding. */
START_TEST(test_colsum_threads) {
    enum { N = 1003, C = 133 };
    float *X = malloc(sizeof(float) * N * C), d1[C], d2[C];
    crn_rng rng;
    crn_rng_seed(&rng, 12);
    for (int i = 0; i < N * C; i++) X[i] = (float)(2 * crn_rng_uniform(&rng) - 1);
    for (int j = 0; j < C; j++) d1[j] = d2[j] = (float)j; // accumulates (+=)
    crn_set_threads(1);
    crn_colsum_acc(d1, X, N, C);
    crn_set_threads(2);
    crn_colsum_acc(d2, X, N, C);
    crn_set_threads(1);
    ck_assert_msg(memcmp(d1, d2, sizeof d1) == 0, "column sums differ between 1 and 2 threads");
    for (int j = 0; j < C; j++) {
        double ref = j;
        for (int i = 0; i < N; i++) ref += X[i * C + j];
        ck_assert_msg(fabs(d1[j] - ref) < 1e-3, "column %d: %g vs %g", j, d1[j], ref);
    }
    free(X);
}
END_TEST

/* Every part runs exactly once, on 1 to 4 threads, more parts asked than threads. */
static void count_part(void *arg, int part, int nparts) {
    int *hits = arg;
    __atomic_fetch_add(&hits[part], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&hits[16], nparts, __ATOMIC_RELAXED);
}

START_TEST(test_parallel_after_fork) {
    /* a child of a process with workers has none: jobs still complete */
    crn_set_threads(2);
    int hits[17] = {0};
    crn_parallel(count_part, hits, 2);
    ck_assert_int_eq(hits[0] + hits[1], 2);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int h[17] = {0};
        for (int rep = 0; rep < 50; rep++) crn_parallel(count_part, h, 2);
        _exit(h[0] + h[1] == 100 ? 0 : 1);
    }
    int status = -1;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    crn_set_threads(1);
}
END_TEST

START_TEST(test_parallel_parts) {
    for (int th = 1; th <= 4; th++) {
        crn_set_threads(th);
        ck_assert_int_eq(crn_get_threads(), th);
        for (int rep = 0; rep < 200; rep++) {
            int hits[17] = {0};
            crn_parallel(count_part, hits, 3);
            int n = th < 3 ? th : 3;
            for (int p = 0; p < 16; p++) ck_assert_int_eq(hits[p], p < n ? 1 : 0);
            ck_assert_int_eq(hits[16], n * n);
        }
    }
    crn_set_threads(1);
}
END_TEST

START_TEST(test_fast_exp_tanh) {
    /* the call-free float exp/tanh of the cells against libm in double */
    double worst_e = 0, worst_t = 0, worst_s = 0;
    for (int i = 0; i <= 400000; i++) {
        float x = -87.0f + 175.0f * (float)i / 400000.0f;
        double e = exp((double)x);
        worst_e = fmax(worst_e, fabs(crn_fexp(x) - e) / e);
        float y = -20.0f + 40.0f * (float)i / 400000.0f;
        double t = tanh((double)y);
        worst_t = fmax(worst_t, fabs(crn_ftanh(y) - t) / fmax(fabs(t), 1e-30));
        double s = 1 / (1 + exp(-(double)y));
        worst_s = fmax(worst_s, fabs(crn_sigmoid(y) - s) / s);
    }
    for (float y = 1e-30f; y < 1; y *= 1.7f) /* tiny arguments: tanh(y) = y to full precision */
        worst_t = fmax(worst_t, fabs(crn_ftanh(-y) + tanh((double)y)) / tanh((double)y));
    printf("fast exp max rel err %.2e, tanh %.2e, sigmoid %.2e\n", worst_e, worst_t, worst_s);
    ck_assert_msg(worst_e < 5e-7, "exp rel err %g", worst_e);
    ck_assert_msg(worst_t < 5e-7, "tanh rel err %g", worst_t);
    ck_assert_msg(worst_s < 5e-7, "sigmoid rel err %g", worst_s);
    /* saturation: finite, and the right limits */
    ck_assert(crn_fexp(-1000.0f) >= 0 && crn_fexp(-1000.0f) < 1e-37f);
    ck_assert(isfinite(crn_fexp(1000.0f)));
    ck_assert_float_eq(crn_ftanh(100.0f), 1.0f);
    ck_assert_float_eq(crn_ftanh(-100.0f), -1.0f);
    ck_assert_float_eq(crn_ftanh(0.0f), 0.0f);
    /* total (issue 10 item 6): NaN in, NaN out, with no undefined behaviour on
     * the way (it used to convert NaN to an integer and shift a negative int:
     * the UBSan build stops there); infinities saturate like large values */
    volatile float nan = NAN, inf = INFINITY; /* not folded at compile time */
    ck_assert(isnan(crn_fexp(nan)));
    ck_assert(isnan(crn_fexp(-nan)));
    ck_assert(isnan(crn_ftanh(nan)));
    ck_assert(isnan(crn_sigmoid(nan)));
    ck_assert_float_eq(crn_fexp(inf), crn_fexp(1000.0f));
    ck_assert_float_eq(crn_fexp(-inf), crn_fexp(-1000.0f));
    ck_assert_float_eq(crn_ftanh(inf), 1.0f);
    ck_assert_float_eq(crn_ftanh(-inf), -1.0f);
    /* exact powers of two where the polynomial is exact: 2^k built right at
     * both ends of the exponent range */
    ck_assert_float_eq(crn_fexp(0.0f), 1.0f);
    ck_assert_float_eq_tol(crn_fexp(88.0f), (float)exp(88.0), 1e-6f * (float)exp(88.0));
    ck_assert_float_eq_tol(crn_fexp(-87.0f), (float)exp(-87.0), 1e-6f * (float)exp(-87.0));
}
END_TEST

/* naive softmax cross-entropy of one row, in double */
static double naive_row(double *d, const float *l, size_t V, uint32_t t, double scale) {
    double mx = -INFINITY, s = 0;
    for (size_t j = 0; j < V; j++) mx = fmax(mx, l[j]);
    for (size_t j = 0; j < V; j++) s += exp((double)l[j] - mx);
    for (size_t j = 0; j < V; j++) d[j] = exp((double)l[j] - mx) / s * scale - (j == t ? scale : 0);
    return -((double)l[t] - mx - log(s));
}

START_TEST(test_softmax_xent) {
    crn_rng rng;
    crn_rng_seed(&rng, 7);
    enum { N = 9, V = 37 };
    float logits[N * V], d[N * V], alias[N * V];
    uint32_t y[N];
    for (int i = 0; i < N * V; i++) logits[i] = (float)(8 * crn_rng_uniform(&rng) - 4);
    for (int i = 0; i < N; i++) y[i] = (uint32_t)crn_rng_below(&rng, V);
    y[2] = 0xffffffffu;                 // ignored
    y[6] = 0xffffffffu;                 // ignored
    for (int j = 0; j < V; j++) logits[4 * V + j] += 1000; // large logits: still finite
    logits[5 * V + 3] = 90;             // one dominant logit
    y[5] = 3;
    size_t count = 0;
    const float scale = 1.0f / 7;
    double loss = crn_softmax_xent(d, logits, y, N, V, scale, &count);
    ck_assert_uint_eq(count, 7);
    double ref = 0, dref[V];
    for (int i = 0; i < N; i++) {
        if (y[i] == 0xffffffffu) {
            for (int j = 0; j < V; j++) ck_assert_float_eq(d[i * V + j], 0);
            continue;
        }
        ref += naive_row(dref, logits + i * V, V, y[i], scale);
        for (int j = 0; j < V; j++)
            ck_assert_msg(fabs(d[i * V + j] - dref[j]) < 1e-6, "row %d col %d: %g vs %g", i, j, d[i * V + j], dref[j]);
    }
    ck_assert(isfinite(loss));
    ck_assert_msg(fabs(loss - ref) < 1e-5 * (1 + ref), "loss %.9g vs naive %.9g", loss, ref);
    /* dlogits may alias logits */
    memcpy(alias, logits, sizeof alias);
    double loss2 = crn_softmax_xent(alias, alias, y, N, V, scale, NULL);
    ck_assert(loss2 == loss);
    for (int i = 0; i < N * V; i++) ck_assert(alias[i] == d[i]);
    /* the double build */
    double ld[N * V], dd[N * V];
    for (int i = 0; i < N * V; i++) ld[i] = logits[i];
    double loss64 = crn_softmax_xent_f64(dd, ld, y, N, V, 1.0 / 7, &count);
    ck_assert_uint_eq(count, 7);
    ck_assert_msg(fabs(loss64 - ref) < 1e-9 * (1 + ref), "double loss %.12g vs %.12g", loss64, ref);
}
END_TEST

/* Step (sampling) vs window forward: a window of T steps run by
 * crn_model_forward and the same tokens fed one step at a time through
 * crn_model_step from the same non-zero state give the same logits at every
 * step, and the same final state. */
static void step_vs_forward(enum crn_cell cell, enum crn_act act, uint32_t E, uint32_t L) {
    enum { B = 3, T = 5, V = 11, H = 9 };
    crn_model_config cfg = {.cell = cell, .act = act, .vocab = V, .embed = E, .hidden = H, .layers = L, .dropout = 0.25f};
    crn_model *m = NULL;
    crn_state *s1 = NULL, *s2 = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng rng;
    crn_rng_seed(&rng, 1234 + cell * 10 + act + E + L);
    crn_model_init(m, &rng);
    ck_assert_int_eq(crn_model_reserve(m, B, T), 0);
    ck_assert_int_eq(crn_state_create(&s1, m, B), 0);
    ck_assert_int_eq(crn_state_create(&s2, m, B), 0);
    for (uint32_t l = 0; l < L; l++) {
        real *h1 = crn_state_h(s1, l), *h2 = crn_state_h(s2, l);
        for (int k = 0; k < B * H; k++) h1[k] = h2[k] = (float)(crn_rng_uniform(&rng) - 0.5);
        if (cell == CRN_CELL_LSTM) {
            real *c1 = crn_state_c(s1, l), *c2 = crn_state_c(s2, l);
            for (int k = 0; k < B * H; k++) c1[k] = c2[k] = (float)(2 * crn_rng_uniform(&rng) - 1);
        } else {
            ck_assert_ptr_null(crn_state_c(s1, l));
        }
    }
    uint32_t x[T * B];
    for (int i = 0; i < T * B; i++) x[i] = (uint32_t)crn_rng_below(&rng, V);
    double loss = -1;
    size_t count = 99;
    ck_assert_int_eq(crn_model_forward(m, s1, x, NULL, B, T, NULL, &loss, &count), 0);
    ck_assert_uint_eq(count, 0);
    const float *lw = crn_model_logits(m);
    float ls[B * V];
    double worst = 0;
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(crn_model_step(m, s2, x + t * B, ls), 0);
        for (int k = 0; k < B * V; k++) {
            ck_assert(isfinite(ls[k]));
            worst = fmax(worst, fabs(ls[k] - lw[t * B * V + k]) / (1 + fabs(lw[t * B * V + k])));
        }
    }
    ck_assert_msg(worst < 1e-5, "%s/%s E=%u L=%u: step vs forward logits differ by %g", crn_cell_name(cell),
                  crn_act_name(act), E, L, worst);
    for (uint32_t l = 0; l < L; l++)
        for (int k = 0; k < B * H; k++) {
            ck_assert(fabsf(crn_state_h(s1, l)[k] - crn_state_h(s2, l)[k]) < 1e-5f);
            if (cell == CRN_CELL_LSTM) ck_assert(fabsf(crn_state_c(s1, l)[k] - crn_state_c(s2, l)[k]) < 1e-5f);
        }
    /* the comparison can fail: a different carried state changes the logits */
    crn_state_h(s2, 0)[0] += 0.5f;
    if (cell == CRN_CELL_LSTM) crn_state_c(s2, 0)[0] += 0.5f;
    float ls2[B * V];
    crn_state *s3 = NULL;
    ck_assert_int_eq(crn_state_create(&s3, m, B), 0);
    for (uint32_t l = 0; l < L; l++) {
        memcpy(crn_state_h(s3, l), crn_state_h(s2, l), sizeof(float) * B * H);
        if (cell == CRN_CELL_LSTM) memcpy(crn_state_c(s3, l), crn_state_c(s2, l), sizeof(float) * B * H);
    }
    crn_state_h(s3, 0)[0] -= 0.5f;
    if (cell == CRN_CELL_LSTM) crn_state_c(s3, 0)[0] -= 0.5f;
    ck_assert_int_eq(crn_model_step(m, s2, x, ls), 0);
    ck_assert_int_eq(crn_model_step(m, s3, x, ls2), 0);
    double diff = 0;
    for (int k = 0; k < V; k++) diff = fmax(diff, fabs(ls[k] - ls2[k]));
    ck_assert_msg(diff > 1e-4, "perturbed state did not change the logits (%g)", diff);
    /* reset zeroes the state; out-of-range ids are rejected */
    crn_state_reset(s3);
    for (uint32_t l = 0; l < L; l++)
        for (int k = 0; k < B * H; k++) ck_assert(crn_state_h(s3, l)[k] == 0);
    uint32_t bad[B] = {0, V, 1};
    ck_assert_int_eq(crn_model_step(m, s3, bad, ls), CRN_EINVAL);
    crn_state_destroy(s3);
    crn_state_destroy(s1);
    crn_state_destroy(s2);
    crn_model_destroy(m);
}

START_TEST(test_step_matches_forward) {
    static const struct { enum crn_cell c; enum crn_act a; } cells[] = {
        {CRN_CELL_RNN, CRN_ACT_TANH}, {CRN_CELL_RNN, CRN_ACT_RELU}, {CRN_CELL_LSTM, CRN_ACT_TANH}, {CRN_CELL_GRU, CRN_ACT_TANH}};
    for (size_t i = 0; i < CRN_ARRAY_LEN(cells); i++)
        for (uint32_t E = 0; E <= 4; E += 4)
            for (uint32_t L = 1; L <= 2; L++) step_vs_forward(cells[i].c, cells[i].a, E, L);
}
END_TEST

/* The threaded paths (batch rows of the recurrence split across threads,
 * large products split into parts) against one thread: the same loss,
 * logits and gradients for every cell, odd B and H not a multiple of 8. */
static void threads_agree(enum crn_cell cell, uint32_t E) {
    /* big enough that every split path runs: rows of the recurrence, large
     * products, the softmax rows, column sums, bias rows, the one-hot
     * gather and scatter (each from 65536 elements or 1e6 multiply-adds) */
    enum { B = 9, T = 60, V = 130, H = 130 };
    crn_model_config cfg = {.cell = cell, .vocab = V, .embed = E, .hidden = H, .layers = 2};
    crn_model *m = NULL;
    crn_state *st = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng rng;
    crn_rng_seed(&rng, 99 + cell);
    crn_model_init(m, &rng);
    ck_assert_int_eq(crn_model_reserve(m, B, T), 0);
    ck_assert_int_eq(crn_state_create(&st, m, B), 0);
    static uint32_t x[T * B], y[T * B];
    for (int i = 0; i < T * B; i++) x[i] = (uint32_t)crn_rng_below(&rng, V), y[i] = (uint32_t)crn_rng_below(&rng, V);
    size_t np = crn_model_num_params(m);
    float *g1 = malloc(np * sizeof(float)), *l1 = malloc(sizeof(float) * T * B * V);
    double loss[2];
    double worst_g = 0, worst_l = 0, gnorm = 0;
    for (int th = 1; th <= 2; th++) {
        crn_set_threads(th);
        crn_state_reset(st);
        crn_model_zero_grads(m);
        /* two windows, so the carried state goes through the threaded path too */
        ck_assert_int_eq(crn_model_forward(m, st, x, y, B, T, NULL, &loss[th - 1], NULL), 0);
        ck_assert_int_eq(crn_model_forward(m, st, y, x, B, T, NULL, &loss[th - 1], NULL), 0);
        ck_assert_int_eq(crn_model_backward(m), 0);
        const float *g = crn_model_grads(m), *l = crn_model_logits(m);
        if (th == 1) {
            memcpy(g1, g, np * sizeof(float));
            memcpy(l1, l, sizeof(float) * T * B * V);
            for (size_t i = 0; i < np; i++) gnorm = fmax(gnorm, fabs(g[i]));
            continue;
        }
        for (size_t i = 0; i < np; i++) worst_g = fmax(worst_g, fabs(g[i] - g1[i]));
        for (int i = 0; i < T * B * V; i++) worst_l = fmax(worst_l, fabs(l[i] - l1[i]) / (1 + fabs(l1[i])));
    }
    crn_set_threads(1);
    ck_assert_msg(gnorm > 1e-4, "%s: gradients are all ~0 (%g), the comparison would be empty", crn_cell_name(cell), gnorm);
    ck_assert_msg(fabs(loss[0] - loss[1]) <= 1e-5 * fabs(loss[0]), "%s E=%u: loss %.9g (1 thread) vs %.9g (2)",
                  crn_cell_name(cell), E, loss[0], loss[1]);
    ck_assert_msg(worst_l <= 1e-5, "%s E=%u: logits differ by %g", crn_cell_name(cell), E, worst_l);
    ck_assert_msg(worst_g <= 1e-5 * gnorm, "%s E=%u: gradients differ by %g (max |g| %g)", crn_cell_name(cell), E,
                  worst_g, gnorm);
    free(g1), free(l1);
    crn_state_destroy(st);
    crn_model_destroy(m);
}

START_TEST(test_threads_agree) {
    for (int c = CRN_CELL_RNN; c <= CRN_CELL_GRU; c++) {
        threads_agree((enum crn_cell)c, 0);
        threads_agree((enum crn_cell)c, 5);
    }
}
END_TEST

/* binary16: the vector conversion against the plain-C reference on edge
 * cases and random values (all rounding ties included), the round trip
 * within half an ulp, and the half-weight matrix-vector product against its
 * reference on odd shapes. */
START_TEST(test_f16_conversion_and_gemv) {
    static const float edge[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, -70000.0f, 6.1035156e-05f,
                                 6.0975552e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 1e-10f, 0.1f, 1.0009766f,
                                 1.00048828125f, 1.00146484375f, INFINITY, -INFINITY};
    enum { N = 4096 };
    float src[N];
    uint16_t h[N];
    crn_rng rng;
    crn_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) {
        if (i < (int)CRN_ARRAY_LEN(edge))
            src[i] = edge[i];
        else if (i < 1024) { // exact ties between two halves: 11 significant bits + a half unit
            union { float f; uint32_t u; } v = {.u = (uint32_t)(crn_rng_below(&rng, 0x8e) + 0x71) << 23 |
                                                  (uint32_t)crn_rng_below(&rng, 1u << 10) << 13 | 0x1000u};
            src[i] = i & 1 ? -v.f : v.f;
        } else
            src[i] = (float)((2 * crn_rng_uniform(&rng) - 1) * pow(2.0, (double)crn_rng_below(&rng, 40) - 30));
    }
    crn_f16_from_f32(h, src, N);
    int mism = 0;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        mism += h[i] != crn_f16_from_f32_ref(src[i]);
        float back = crn_f16_to_f32_ref(h[i]);
        if (fabsf(src[i]) >= 6.103515625e-05f && fabsf(src[i]) <= 65504.0f)
            worst = fmax(worst, fabs((double)back - src[i]) / fabs((double)src[i]));
    }
    ck_assert_msg(mism == 0, "%d of %d vector conversions differ from the reference", mism, N);
    ck_assert_msg(worst <= 1.0 / 2048, "binary16 round trip rel err %g > 2^-11", worst);
    ck_assert_uint_eq(crn_f16_from_f32_ref(65520.0f), 0x7c00);
    ck_assert_uint_eq(crn_f16_from_f32_ref(1.0f), 0x3c00);
    ck_assert_uint_eq(crn_f16_from_f32_ref(-2.0f), 0xc000);
    ck_assert_uint_eq(crn_f16_from_f32_ref(5.9604645e-08f), 0x0001);
    ck_assert(isnan(crn_f16_to_f32_ref(crn_f16_from_f32_ref(NAN))));
    ck_assert_float_eq(crn_f16_to_f32_ref(0x7bff), 65504.0f);

    static const int shapes16[][2] = {{1, 1}, {7, 3}, {8, 4}, {65, 128}, {100, 37}, {513, 129}, {2048, 160}};
    for (int th = 1; th <= 2; th++) {
        crn_set_threads(th);
        for (size_t s = 0; s < CRN_ARRAY_LEN(shapes16); s++) {
            int Nc = shapes16[s][0], K = shapes16[s][1], ldw = Nc + (int)(s % 2) * 3;
            uint16_t *W = malloc(sizeof(uint16_t) * (size_t)K * ldw);
            float *a = malloc(sizeof(float) * K), *c1 = malloc(sizeof(float) * Nc), *c2 = malloc(sizeof(float) * Nc);
            for (int i = 0; i < K * ldw; i++) W[i] = crn_f16_from_f32_ref((float)(2 * crn_rng_uniform(&rng) - 1));
            for (int i = 0; i < K; i++) a[i] = (float)(2 * crn_rng_uniform(&rng) - 1);
            for (int i = 0; i < Nc; i++) c1[i] = c2[i] = (float)(crn_rng_uniform(&rng) - 0.5);
            crn_gemv_f16(Nc, K, a, W, ldw, c1);
            crn_gemv_f16_ref(Nc, K, a, W, ldw, c2);
            double w = 0;
            for (int i = 0; i < Nc; i++) w = fmax(w, fabs(c1[i] - c2[i]) / (1e-6 * (K + 1) * (1 + fabs(c2[i]))));
            ck_assert_msg(w <= 1, "gemv_f16 %dx%d threads=%d: err/tol %g", Nc, K, th, w);
            free(W), free(a), free(c1), free(c2);
        }
    }
    crn_set_threads(1);
}
END_TEST

/* Sampling with binary16 weights (with and without layer norm): at each of
 * 40 steps, one step from the same state, the softmax distribution stays within 2e-3 (max abs per
 * probability) and 1e-4 nats KL of the float path, for every cell; a weight
 * change after the snapshot is visible (the comparison can fail). */
static void f16_step_close(enum crn_cell cell, uint32_t E, uint32_t ln) {
    enum { V = 37, H = 70, STEPS = 40 };
    crn_model_config cfg = {.cell = cell, .vocab = V, .embed = E, .hidden = H, .layers = 2, .layer_norm = ln};
    crn_model *m = NULL;
    crn_state *s1 = NULL, *s2 = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng rng;
    crn_rng_seed(&rng, 321 + cell + E);
    crn_model_init(m, &rng);
    /* trained weights are larger than the init: scale them up so the logits
     * spread (a flat distribution would hide differences) */
    float *P = crn_model_params(m);
    for (size_t i = 0; i < crn_model_num_params(m); i++) P[i] *= 3.0f;
    ck_assert_int_eq(crn_state_create(&s1, m, 1), 0);
    ck_assert_int_eq(crn_state_create(&s2, m, 1), 0);
    float l1[V], l2[V];
    double worst_p = 0, worst_kl = 0, spread = 0;
    uint32_t tok = 1;
    for (int t = 0; t < STEPS; t++) {
        crn_state_copy_stream(s2, 0, s1, 0); // one step from the same state
        ck_assert_int_eq(crn_model_step_f16(m, 0), 0);
        ck_assert_int_eq(crn_model_step(m, s1, &tok, l1), 0);
        ck_assert_int_eq(crn_model_step_f16(m, 1), 0);
        ck_assert_int_eq(crn_model_step(m, s2, &tok, l2), 0);
        double m1 = -INFINITY, m2 = -INFINITY, z1 = 0, z2 = 0, kl = 0;
        for (int k = 0; k < V; k++) m1 = fmax(m1, l1[k]), m2 = fmax(m2, l2[k]);
        for (int k = 0; k < V; k++) z1 += exp(l1[k] - m1), z2 += exp(l2[k] - m2);
        double pmax = 0, pmin = 1;
        for (int k = 0; k < V; k++) {
            double p1 = exp(l1[k] - m1) / z1, p2 = exp(l2[k] - m2) / z2;
            worst_p = fmax(worst_p, fabs(p1 - p2));
            kl += p1 * (log(p1) - log(p2));
            pmax = fmax(pmax, p1), pmin = fmin(pmin, p1);
        }
        worst_kl = fmax(worst_kl, kl);
        spread = fmax(spread, pmax - pmin);
        tok = (uint32_t)crn_rng_below(&rng, V);
    }
    printf("binary16 step %s E=%u%s: max |dp| %.2e, KL %.2e (spread %.2f)\n", crn_cell_name(cell), E,
           ln ? " layer-norm" : "", worst_p, worst_kl, spread);
    ck_assert_msg(spread > 0.05, "%s: distributions too flat to compare (%g)", crn_cell_name(cell), spread);
    ck_assert_msg(worst_p <= 2e-3 && worst_kl <= 1e-4, "%s E=%u: binary16 step: max |dp| %g, KL %g",
                  crn_cell_name(cell), E, worst_p, worst_kl);
    /* the comparison can fail: a stale snapshot after a weight change differs */
    const crn_tensor_info *ow = crn_model_find_tensor(m, "out_w");
    for (size_t i = 0; i < ow->rows * ow->cols; i++) P[ow->offset + i] *= 2.0f;
    ck_assert_int_eq(crn_model_step(m, s2, &tok, l2), 0);
    ck_assert_int_eq(crn_model_step_f16(m, 0), 0);
    ck_assert_int_eq(crn_model_step(m, s1, &tok, l1), 0);
    double d = 0;
    for (int k = 0; k < V; k++) d = fmax(d, fabs(l1[k] - l2[k]));
    ck_assert_msg(d > 1e-2, "%s: stale snapshot not detected (%g)", crn_cell_name(cell), d);
    crn_state_destroy(s1);
    crn_state_destroy(s2);
    crn_model_destroy(m);
}

START_TEST(test_f16_step_close_to_float) {
    for (int c = CRN_CELL_RNN; c <= CRN_CELL_GRU; c++) {
        f16_step_close((enum crn_cell)c, 0, 0);
        f16_step_close((enum crn_cell)c, 6, 0);
        f16_step_close((enum crn_cell)c, 0, 1); // layer normalisation: the f16 path's own LN calls
        f16_step_close((enum crn_cell)c, 6, 1);
    }
}
END_TEST

/* The init schemes of model.h: pytorch draws, the forget bias override,
 * Xavier bounds and zero biases, orthogonal gate blocks of w_h. */
START_TEST(test_init_schemes) {
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .vocab = 10, .embed = 0, .hidden = 8, .layers = 2};
    crn_model *m = NULL, *ref = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    ck_assert_int_eq(crn_model_create(&ref, &cfg), 0);
    const size_t n = crn_model_num_params(m), H = 8, GH = 32;
    crn_rng rng;
    crn_rng_seed(&rng, 5);
    crn_model_init(ref, &rng);
    const float *r = crn_model_params(ref), *p = crn_model_params(m);
    int forget_is_one = 1;
    for (size_t j = 0; j < n; j++) {
        ck_assert(fabsf(r[j]) <= 1 / sqrtf(8)); /* one-hot: every tensor is uniform(+-1/sqrt(H)) */
        if (j >= crn_model_find_tensor(ref, "l0.b_x")->offset + H && j < crn_model_find_tensor(ref, "l0.b_x")->offset + 2 * H)
            forget_is_one &= r[j] == 1;
    }
    ck_assert(!forget_is_one);
    /* forget bias 1: the same draws, the LSTM forget biases replaced */
    crn_init_spec sp;
    crn_init_spec_default(&sp);
    sp.forget_bias = 1;
    crn_rng_seed(&rng, 5);
    crn_model_init_spec(m, &rng, &sp);
    size_t changed = 0;
    for (int l = 0; l < 2; l++) {
        char nx[16], nh[16];
        snprintf(nx, sizeof nx, "l%d.b_x", l);
        snprintf(nh, sizeof nh, "l%d.b_h", l);
        const size_t ox = crn_model_find_tensor(m, nx)->offset, oh = crn_model_find_tensor(m, nh)->offset;
        for (size_t j = 0; j < H; j++) {
            ck_assert_float_eq(p[ox + H + j], 1);
            ck_assert_float_eq(p[oh + H + j], 0);
        }
    }
    for (size_t j = 0; j < n; j++) changed += p[j] != r[j];
    ck_assert_uint_le(changed, 2 * 2 * H);
    ck_assert_uint_ge(changed, 2 * H);
    /* xavier: bounds per tensor, zero biases */
    sp.kind = CRN_INIT_XAVIER;
    sp.forget_bias = NAN;
    crn_model_init_spec(m, &rng, &sp);
    for (int l = 0; l < 2; l++) {
        char nm[16];
        snprintf(nm, sizeof nm, "l%d.w_x", l);
        const crn_tensor_info *wx = crn_model_find_tensor(m, nm);
        const float a = sqrtf(6.0f / (float)(wx->rows + H));
        float mx = 0;
        for (size_t j = 0; j < wx->rows * GH; j++) mx = fmaxf(mx, fabsf(p[wx->offset + j]));
        ck_assert(mx <= a && mx > 0.5f * a);
        snprintf(nm, sizeof nm, "l%d.b_h", l);
        for (size_t j = 0; j < GH; j++) ck_assert_float_eq(p[crn_model_find_tensor(m, nm)->offset + j], 0);
    }
    /* orthogonal: every (H, H) gate block of w_h has orthonormal rows */
    sp.kind = CRN_INIT_ORTHOGONAL;
    crn_model_init_spec(m, &rng, &sp);
    const size_t wh = crn_model_find_tensor(m, "l1.w_h")->offset;
    for (size_t g = 0; g < 4; g++)
        for (size_t a = 0; a < H; a++)
            for (size_t b = 0; b < H; b++) {
                double d = 0;
                for (size_t k = 0; k < H; k++) d += (double)p[wh + a * GH + g * H + k] * p[wh + b * GH + g * H + k];
                ck_assert(fabs(d - (a == b)) < 1e-5);
            }
    /* the default of a GRU (and RNN) is orthogonal */
    ck_assert_int_eq(crn_init_default_kind(CRN_CELL_GRU), CRN_INIT_ORTHOGONAL);
    ck_assert_int_eq(crn_init_default_kind(CRN_CELL_RNN), CRN_INIT_ORTHOGONAL);
    ck_assert_int_eq(crn_init_default_kind(CRN_CELL_LSTM), CRN_INIT_PYTORCH);
    crn_model_config gc = {.cell = CRN_CELL_GRU, .vocab = 10, .embed = 4, .hidden = 8, .layers = 1};
    crn_model *gm = NULL;
    ck_assert_int_eq(crn_model_create(&gm, &gc), 0);
    crn_model_init(gm, &rng);
    const float *gp = crn_model_params(gm);
    const size_t gwh = crn_model_find_tensor(gm, "l0.w_h")->offset, G3 = 24;
    for (size_t g = 0; g < 3; g++)
        for (size_t a = 0; a < H; a++) {
            double d = 0;
            for (size_t k2 = 0; k2 < H; k2++) d += (double)gp[gwh + a * G3 + g * H + k2] * gp[gwh + a * G3 + g * H + k2];
            ck_assert(fabs(d - 1) < 1e-5);
        }
    crn_model_destroy(gm);
    /* names */
    enum crn_init_kind k;
    ck_assert_int_eq(crn_init_parse("orthogonal", &k), 0);
    ck_assert_int_eq(k, CRN_INIT_ORTHOGONAL);
    ck_assert_str_eq(crn_init_name(CRN_INIT_XAVIER), "xavier");
    ck_assert_int_eq(crn_init_parse("he", &k), -1);
    crn_model_destroy(m);
    crn_model_destroy(ref);
}
END_TEST

START_TEST(test_model_table_and_errors) {
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .vocab = 10, .embed = 6, .hidden = 8, .layers = 2};
    crn_model *m = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    /* embed (10,6), per layer w_x (in,32) w_h (8,32) b_x b_h (32), out_w (8,10), out_b (10) */
    size_t expect = 60 + (6 * 32 + 8 * 32 + 64) + (8 * 32 + 8 * 32 + 64) + 80 + 10;
    ck_assert_uint_eq(crn_model_num_params(m), expect);
    ck_assert_int_eq(crn_model_num_tensors(m), 11);
    const crn_tensor_info *t = crn_model_find_tensor(m, "l1.w_h");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->offset, 60 + 512 + 256);
    ck_assert_uint_eq(t->rows, 8);
    ck_assert_uint_eq(t->cols, 32);
    ck_assert_ptr_null(crn_model_find_tensor(m, "l2.w_h"));
    size_t sum = 0;
    for (int i = 0; i < crn_model_num_tensors(m); i++) {
        ck_assert_uint_eq(crn_model_tensor(m, i)->offset, sum);
        sum += crn_model_tensor(m, i)->rows * crn_model_tensor(m, i)->cols;
    }
    ck_assert_uint_eq(sum, expect);
    crn_rng rng;
    crn_rng_seed(&rng, 1);
    crn_model_init(m, &rng);
    const crn_tensor_info *bx = crn_model_find_tensor(m, "l0.b_x");
    const float *p = crn_model_params(m);
    for (int j = 0; j < 32; j++) ck_assert(fabsf(p[bx->offset + j]) <= 1 / sqrtf(8)); /* default: drawn, as PyTorch */
    /* forward beyond the reserve, mismatched state, bad ids */
    crn_state *st = NULL;
    ck_assert_int_eq(crn_state_create(&st, m, 2), 0);
    uint32_t x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {1, 2, 3, 4, 5, 10};
    ck_assert_int_eq(crn_model_forward(m, st, x, y, 2, 3, NULL, NULL, NULL), CRN_EINVAL);
    ck_assert_int_eq(crn_model_reserve(m, 2, 3), 0);
    ck_assert_int_eq(crn_model_forward(m, st, x, y, 2, 3, NULL, NULL, NULL), CRN_EINVAL); // y[5] = 10 >= V
    ck_assert_int_eq(crn_model_backward(m), CRN_EINVAL);
    y[5] = 0xffffffffu;
    double loss = 0;
    size_t count = 0;
    ck_assert_int_eq(crn_model_forward(m, st, x, y, 2, 3, NULL, &loss, &count), 0);
    ck_assert_uint_eq(count, 5);
    ck_assert(loss > 0 && isfinite(loss));
    ck_assert_int_eq(crn_model_backward(m), 0);
    ck_assert_int_eq(crn_model_forward(m, st, x, y, 1, 3, NULL, NULL, NULL), CRN_EINVAL); // B != state's
    /* reserving a longer window for fewer streams keeps room for the old one */
    ck_assert_int_eq(crn_model_reserve(m, 1, 6), 0);
    ck_assert_int_eq(crn_model_forward(m, st, x, y, 2, 3, NULL, &loss, &count), 0);
    ck_assert_uint_eq(count, 5);
    crn_state *s1 = NULL;
    ck_assert_int_eq(crn_state_create(&s1, m, 1), 0);
    ck_assert_int_eq(crn_model_forward(m, s1, x, y, 1, 6, NULL, &loss, &count), 0);
    ck_assert_uint_eq(count, 5);
    ck_assert_int_eq(crn_model_backward(m), 0);
    crn_state_destroy(s1);
    crn_state_destroy(st);
    crn_model_destroy(m);
    crn_model_destroy(NULL);
    crn_state_destroy(NULL);
    cfg.hidden = 0;
    ck_assert_int_eq(crn_model_create(&m, &cfg), CRN_ERANGE);
    ck_assert_ptr_null(m);
    cfg.hidden = 8;
    cfg.dropout = 1.0f;
    ck_assert_int_eq(crn_model_config_check(&cfg), CRN_ERANGE);
    enum crn_cell c;
    enum crn_act a;
    ck_assert_int_eq(crn_cell_parse("gru", &c), 0);
    ck_assert_int_eq(c, CRN_CELL_GRU);
    ck_assert_int_eq(crn_cell_parse("GRUU", &c), CRN_EINVAL);
    ck_assert_int_eq(crn_act_parse("relu", &a), 0);
    ck_assert_int_eq(a, CRN_ACT_RELU);
    ck_assert_str_eq(crn_cell_name(CRN_CELL_LSTM), "lstm");
    /* the benchmark peer's canonical configs (shared/bench/README.md): same
     * parameter counts (two biases per gate, as PyTorch) and FLOPs per char */
    static const struct { crn_model_config c; size_t params; double flops; } peer[] = {
        {{.cell = CRN_CELL_LSTM, .vocab = 65, .embed = 0, .hidden = 128, .layers = 2}, 240321, 476416},
        {{.cell = CRN_CELL_RNN, .vocab = 65, .embed = 64, .hidden = 256, .layers = 2}, 234881, 459264},
        {{.cell = CRN_CELL_LSTM, .vocab = 65, .embed = 64, .hidden = 512, .layers = 2}, 3322497, 6620160},
        {{.cell = CRN_CELL_GRU, .vocab = 65, .embed = 64, .hidden = 256, .layers = 2}, 662913, 1311232},
    };
    for (size_t i = 0; i < CRN_ARRAY_LEN(peer); i++) {
        ck_assert_int_eq(crn_model_create(&m, &peer[i].c), 0);
        ck_assert_uint_eq(crn_model_num_params(m), peer[i].params);
        ck_assert_double_eq(crn_model_flops_per_token(&peer[i].c), peer[i].flops);
        crn_model_destroy(m);
    }
}
END_TEST

/* ---- layer normalisation's row kernels (cell.h) against plain loops ------
 * The fast kernels take the statistics in one shifted pass with 16-lane
 * vector sums and fuse the gradient sums into the LN sums' pass; the
 * reference is the textbook form in double: two-pass mean and variance,
 * one loop per quantity. Widths below, at and above the 16 lanes, with
 * tails; values with a large mean against their spread (where an
 * unshifted one-pass variance in float loses every digit). */
static void ref_ln_moments(const float *x, int n, double *mean, double *rs) {
    double m = 0, v = 0;
    for (int j = 0; j < n; j++) m += x[j];
    m /= n;
    for (int j = 0; j < n; j++) v += (x[j] - m) * (x[j] - m);
    *mean = m;
    *rs = 1 / sqrt(v / n + CRN_LN_EPS);
}

static double rel_err(double got, double want) { return fabs(got - want) / (fabs(want) + 1e-6); }

START_TEST(test_ln_kernels_match_reference) {
    static const int widths[] = {1, 5, 16, 17, 40, 128, 131};
    crn_rng rng;
    crn_rng_seed(&rng, 77);
    double worst_m = 0, worst_f = 0, worst_b = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
        for (int G = 1; G <= 4; G++)
            for (int gru = 0; gru <= 1; gru++) {
                const int H = widths[wi], GH = G * H;
                const double shift = wi % 2 ? 1000.0 : 0.0, spread = wi % 2 ? 0.01 : 1.0;
                float *buf = malloc(sizeof(float) * (size_t)(22 * GH + 8));
                float *a = buf, *hr = a + GH, *hg = hr + GH, *xhat = hg + GH, *gx = xhat + GH, *bx = gx + GH;
                float *gh = bx + GH, *dx = gh + GH, *dy = dx + GH, *dr = dy + GH, *acc = dr + GH; // acc: 4 GH
                float *a0 = acc + 4 * GH, *hr0 = a0 + GH, *dx0 = hr0 + GH, *acc0 = dx0 + GH;     // acc0: 4 GH
                float xrs[4], hrs[4];
                for (int j = 0; j < GH; j++) {
                    a0[j] = (float)(shift + spread * (2 * crn_rng_uniform(&rng) - 1));
                    hr0[j] = (float)(-shift / 2 + 3 * spread * (2 * crn_rng_uniform(&rng) - 1));
                    gx[j] = (float)(0.5 + crn_rng_uniform(&rng));
                    bx[j] = (float)(crn_rng_uniform(&rng) - 0.5);
                    gh[j] = (float)(0.5 + crn_rng_uniform(&rng));
                    dx0[j] = (float)(2 * crn_rng_uniform(&rng) - 1);
                    dy[j] = (float)(2 * crn_rng_uniform(&rng) - 1);
                }
                for (int j = 0; j < 4 * GH; j++) acc0[j] = (float)crn_rng_uniform(&rng);
                crn_ln ln = {.g_x = gx, .b_x = bx, .g_h = gh};
                memcpy(a, a0, sizeof(float) * GH);
                memcpy(hr, hr0, sizeof(float) * GH);
                crn_ln_row_forward(a, hr, gru ? hg : NULL, xhat, xrs, hrs, &ln, G, H);
                for (int k = 0; k < G; k++) {
                    const int o = k * H;
                    double mx, rx, mh, rh;
                    ref_ln_moments(a0 + o, H, &mx, &rx);
                    ref_ln_moments(hr0 + o, H, &mh, &rh);
                    float m1, r1;
                    crn_ln_moments(a0 + o, H, &m1, &r1);
                    /* the mean to its float rounding (plus 1e-5 of the spread), 1/std to 1e-4 */
                    double em = fabs(m1 - mx) / (fabs(mx) * 1.2e-7 + 1e-5 / rx) * 1e-4;
                    if (H > 1) worst_m = fmax(worst_m, fmax(em, rel_err(r1, rx)));
                    if (H > 1) worst_m = fmax(worst_m, fmax(rel_err(xrs[k], rx), rel_err(hrs[k], rh)));
                    /* the mean is kept in float (as before): a value's error is its and the mean's
                     * rounding in units of the spread, 1 + |mean| * rs ulps */
                    const double cond = 1 + fmax(fabs(mx) * rx, fabs(mh) * rh);
                    for (int j = o; j < o + H; j++) {
                        double xh = (a0[j] - mx) * rx, hh = (hr0[j] - mh) * rh;
                        double want_a = gx[j] * xh + bx[j] + (gru ? 0 : gh[j] * hh);
                        double e = fabs(xhat[j] - xh) + fabs(hr[j] - hh) + fabs(a[j] - want_a);
                        if (gru) e += fabs(hg[j] - gh[j] * hh);
                        worst_f = fmax(worst_f, e / cond);
                    }
                }
                /* backward, from the forward's saved values (xhat, hr = hhat, xrs, hrs) */
                memcpy(dx, dx0, sizeof(float) * GH);
                memcpy(acc, acc0, sizeof(float) * 4 * GH);
                crn_ln_row_backward(dx, gru ? dy : NULL, dr, dx, acc, xhat, xrs, hr, hrs, &ln, G, H);
                /* in place (the LSTM's form): the results over xhat and hhat, bit for bit the same */
                float *ip = malloc(sizeof(float) * (size_t)(7 * GH)), *ix = ip, *ih = ix + GH, *id = ih + GH;
                float *iacc = id + GH;
                memcpy(ix, xhat, sizeof(float) * GH);
                memcpy(ih, hr, sizeof(float) * GH);
                memcpy(id, dx0, sizeof(float) * GH);
                memcpy(iacc, acc0, sizeof(float) * 4 * GH);
                crn_ln_row_backward(id, gru ? dy : NULL, ih, ix, iacc, ix, xrs, ih, hrs, &ln, G, H);
                ck_assert_msg(!memcmp(ix, dx, sizeof(float) * GH) && !memcmp(ih, dr, sizeof(float) * GH) &&
                                  !memcmp(iacc, acc, sizeof(float) * 4 * GH),
                              "in-place LN backward differs (G=%d H=%d gru=%d)", G, H, gru);
                free(ip);
                for (int k = 0; k < G; k++) {
                    const int o = k * H;
                    const float *d = gru ? dy : dx0;
                    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
                    for (int j = o; j < o + H; j++) s1 += (double)dx0[j] * gx[j];
                    for (int j = o; j < o + H; j++) s2 += (double)dx0[j] * gx[j] * xhat[j];
                    for (int j = o; j < o + H; j++) s3 += (double)d[j] * gh[j];
                    for (int j = o; j < o + H; j++) s4 += (double)d[j] * gh[j] * hr[j];
                    s1 /= H, s2 /= H, s3 /= H, s4 /= H;
                    for (int j = o; j < o + H; j++) {
                        double want_dx = xrs[k] * (dx0[j] * gx[j] - s1 - xhat[j] * s2);
                        double want_dr = hrs[k] * (d[j] * gh[j] - s3 - hr[j] * s4);
                        double want_bx = acc0[j] + dx0[j], want_gx = acc0[GH + j] + (double)dx0[j] * xhat[j];
                        double want_bh = acc0[2 * GH + j] + (gru ? dy[j] : 0);
                        double want_gh = acc0[3 * GH + j] + (double)d[j] * hr[j];
                        double scale = xrs[k] + hrs[k];
                        worst_b = fmax(worst_b, (fabs(dx[j] - want_dx) + fabs(dr[j] - want_dr)) / scale);
                        worst_b = fmax(worst_b, fabs(acc[j] - want_bx) + fabs(acc[GH + j] - want_gx) +
                                                    fabs(acc[2 * GH + j] - want_bh) + fabs(acc[3 * GH + j] - want_gh));
                    }
                }
                free(buf);
            }
    printf("layer-norm kernels vs plain loops: moments %.2g, forward %.2g, backward %.2g\n", worst_m, worst_f,
           worst_b);
    ck_assert_msg(worst_m < 1e-4, "moments: %g", worst_m);
    ck_assert_msg(worst_f < 1e-5, "forward: %g", worst_f);
    ck_assert_msg(worst_b < 1e-4, "backward: %g", worst_b);
}
END_TEST

/* The two widths of the LN vector loops (cell_lnv.h: one 16-lane vector
 * for the AVX-512 clone, two 8-lane halves for the others) add the same
 * numbers in the same order: their results agree bit for bit, at widths
 * below, at and above 16 lanes, with tails, with and without dy. */
START_TEST(test_ln_widths_agree) {
    static const int widths[] = {1, 5, 8, 16, 17, 24, 40, 128, 131};
    crn_rng rng;
    crn_rng_seed(&rng, 78);
    int compared = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const int H = widths[wi];
        float *buf = malloc(sizeof(float) * (size_t)(15 * H));
        float *x = buf, *y = x + H, *z = y + H, *dx = z + H, *dy = dx + H, *gx = dy + H, *gh = gx + H;
        float *acc8 = gh + H, *acc16 = acc8 + 4 * H; // 4 H each
        for (int j = 0; j < 7 * H; j++) buf[j] = (float)(0.25 + 2 * crn_rng_uniform(&rng) - 1);
        float m8, r8, m16, r16, a8, b8, a16, b16;
        crn_ln_moments_8(x, H, &m8, &r8);
        crn_ln_moments_16(x, H, &m16, &r16);
        crn_ln_sums_8(x, y, z, H, &a8, &b8);
        crn_ln_sums_16(x, y, z, H, &a16, &b16);
        ck_assert_msg(memcmp(&m8, &m16, sizeof m8) == 0 && memcmp(&r8, &r16, sizeof r8) == 0,
                      "moments H=%d: %.9g %.9g against %.9g %.9g", H, m8, r8, m16, r16);
        ck_assert_msg(memcmp(&a8, &a16, sizeof a8) == 0 && memcmp(&b8, &b16, sizeof b8) == 0,
                      "sums H=%d: %.9g %.9g against %.9g %.9g", H, a8, b8, a16, b16);
        /* G blocks at once (x .. gh as blocks): both widths, and each block as crn_ln_moments has it */
        for (int G = 1; G <= 4; G++) {
            float gm8[4], gr8[4], gm16[4], gr16[4];
            crn_ln_moments_g_8(x, G, H, gm8, gr8);
            crn_ln_moments_g_16(x, G, H, gm16, gr16);
            for (int k = 0; k < G; k++) {
                float m1, r1;
                crn_ln_moments_16(x + (size_t)k * H, H, &m1, &r1);
                ck_assert_msg(!memcmp(&gm8[k], &m1, sizeof m1) && !memcmp(&gr8[k], &r1, sizeof r1) &&
                                  !memcmp(&gm16[k], &m1, sizeof m1) && !memcmp(&gr16[k], &r1, sizeof r1),
                              "moments of %d blocks, block %d, H=%d: %.9g %.9g / %.9g %.9g against %.9g %.9g", G, k,
                              H, gm8[k], gr8[k], gm16[k], gr16[k], m1, r1);
            }
        }
        for (int withdy = 0; withdy <= 1; withdy++) {
            for (int j = 0; j < 4 * H; j++) acc8[j] = acc16[j] = (float)crn_rng_uniform(&rng);
            float s8[4], s16[4];
            const float *d = withdy ? dy : NULL;
            crn_ln_back_sums_8(s8, acc8, acc8 + H, acc8 + 2 * H, acc8 + 3 * H, dx, d, x, y, gx, gh, H);
            crn_ln_back_sums_16(s16, acc16, acc16 + H, acc16 + 2 * H, acc16 + 3 * H, dx, d, x, y, gx, gh, H);
            ck_assert_msg(memcmp(s8, s16, sizeof s8) == 0, "back sums H=%d dy=%d: %.9g against %.9g", H, withdy,
                          s8[0], s16[0]);
            ck_assert_msg(memcmp(acc8, acc16, sizeof(float) * 4 * (size_t)H) == 0, "back acc H=%d dy=%d", H,
                          withdy);
            ck_assert(s8[1] != 0 && acc8[H] != 0); // there was something to sum
            compared++;
        }
        free(buf);
    }
    ck_assert_int_eq(compared, 2 * (int)(sizeof widths / sizeof *widths));
}
END_TEST

int main(void) {
    crn_set_threads(1);
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gemm_float_and_double);
    tcase_add_test(tc, test_gemm_detects_difference);
    tcase_add_test(tc, test_gemm_nn_matches_reference);
    tcase_add_test(tc, test_gemm_packed_matches_reference);
    tcase_add_test(tc, test_parallel_parts);
    tcase_add_test(tc, test_parallel_after_fork);
    tcase_add_test(tc, test_softmax_xent);
    tcase_add_test(tc, test_softmax_xent_threads);
    tcase_add_test(tc, test_gemm_split_threads);
    tcase_add_test(tc, test_colsum_threads);
    tcase_add_test(tc, test_fast_exp_tanh);
    tcase_add_test(tc, test_step_matches_forward);
    tcase_add_test(tc, test_threads_agree);
    tcase_add_test(tc, test_f16_conversion_and_gemv);
    tcase_add_test(tc, test_f16_step_close_to_float);
    tcase_add_test(tc, test_model_table_and_errors);
    tcase_add_test(tc, test_init_schemes);
    tcase_add_test(tc, test_ln_kernels_match_reference);
    tcase_add_test(tc, test_ln_widths_agree);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
