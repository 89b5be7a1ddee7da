/* kernels.h — the numeric kernels every layer uses: one matrix-product entry
 * point (OpenBLAS cblas_sgemm / cblas_dgemm) with a plain-loop reference,
 * the small per-step products (AVX2, and AVX-512 for the packed one), the
 * fused softmax cross-entropy, and the binary16 weight kernels of sampling.
 * The worker threads they split large products across are pool.h's.
 * All matrices are row-major. Compiled as float and as double (real.h). */
#ifndef CRN_KERNELS_H
#define CRN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "real.h"

/* The instruction sets of the hand-written kernels (float build on x86-64;
 * elsewhere always plain C). crn_kernels_isa: the CPU's best level, at most
 * the cap set by crn_kernels_set_isa (default: no cap). The cap is for tests
 * and benchmarks that compare the levels; set it before any work starts. */
enum { CRN_ISA_PLAIN = 0, CRN_ISA_AVX2 = 1, CRN_ISA_AVX512 = 2 };
void CRN_FN(crn_kernels_set_isa)(int max);
int CRN_FN(crn_kernels_isa)(void);
/* "plain", "avx2", "avx512" (the --isa names of charrnn bench); "?" else. */
const char *crn_kernels_isa_name(int isa);

/* C (M, N) = alpha * op(A) @ op(B) + beta * C, with op(A) (M, K), op(B) (K, N);
 * ta/tb nonzero means A/B are stored transposed. cblas semantics, row-major. */
void CRN_FN(crn_gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                      const real *B, int ldb, real beta, real *C, int ldc);
/* The same with plain loops (tests compare the two). */
void CRN_FN(crn_gemm_ref)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                          const real *B, int ldb, real beta, real *C, int ldc);

/* C (M, N) = A (M, K) @ B (K, N) + beta * C with beta 0 or 1 (other values go
 * to crn_gemm), row-major, no transposes: the small per-step products of the
 * recurrence (M = batch) and of sampling (M = 1). Float build on x86-64 with
 * AVX2+FMA: a register-blocked kernel that reads B in place (a 16-column
 * panel of B stays in L1 while every row block of A passes over it, so no
 * packing is needed), its column blocks split across the worker threads for
 * large products. Elsewhere (double build, other CPUs): crn_gemm. */
void CRN_FN(crn_gemm_nn)(int M, int N, int K, const real *A, int lda, const real *B, int ldb, real beta, real *C,
                         int ldc);
/* The same product with op(B) pre-packed by crn_pack: panels of 16 columns,
 * each (K, 16) contiguous, zero-padded past N. Packing once per window
 * makes every per-step read of B contiguous (a row stride of a power of two
 * floats, e.g. 4H = 512, maps a column panel onto two L1 sets). With
 * AVX-512F: register blocks of 8 rows x 3 panels, the parts of whole
 * three-panel groups split across the worker threads; else the AVX2 kernel
 * above; else plain loops. */
void CRN_FN(crn_gemm_packed)(int M, int N, int K, const real *A, int lda, const real *Bp, real beta, real *C,
                             int ldc);
/* The same product for a caller that splits the work itself (the
 * classifier's inference path, one call per thread): with AVX-512F an
 * AVX-512 kernel on the calling thread (one zmm a panel row, 8 rows x 3
 * panels a register block, K in blocks of 128); else crn_gemm_packed
 * (whose own split runs serially inside a crn_parallel part). */
void CRN_FN(crn_gemm_packed_local)(int M, int N, int K, const real *A, int lda, const real *Bp, real beta, real *C,
                                   int ldc);
/* Elements of a packed op(B) (K, N): K * (N rounded up to 16). */
size_t CRN_FN(crn_pack_size)(int K, int N);
/* Bp = op(B) (K, N) packed; tb nonzero: B is stored (N, K), ldb its row stride. */
void CRN_FN(crn_pack)(real *Bp, int tb, int K, int N, const real *B, int ldb);

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
/* IEEE binary16 copies of weights, for sampling only (crn_model_step_f16):
 * half the bytes per token, so a small model's weights stay in L2. */
/* dst[i] = src[i] rounded to nearest even binary16 (overflow -> inf). */
void crn_f16_from_f32(uint16_t *dst, const float *src, size_t n);
/* The same for one value, plain C (the reference), and back to float. */
uint16_t crn_f16_from_f32_ref(float f);
float crn_f16_to_f32_ref(uint16_t h);
/* c (N) += a (K) @ W (K, N), W binary16 row-major with row stride ldw; AVX2
 * and F16C when the CPU has them (columns split across the threads for
 * large products), else crn_gemv_f16_ref. */
void crn_gemv_f16(int N, int K, const float *a, const uint16_t *W, int ldw, float *c);
void crn_gemv_f16_ref(int N, int K, const float *a, const uint16_t *W, int ldw, float *c);
#endif

/* Fused softmax + cross-entropy over N rows of V logits.
 * targets[i] == CRN_IGNORE (common.h) skips row i (its dlogits row is 0).
 * Writes dlogits = (softmax(logits) - onehot(target)) * scale for each
 * counted row (scale is typically 1/count); returns the summed loss in nats
 * (double accumulation) and the number of counted rows in *count.
 * Numerically stable (max subtracted). dlogits may alias logits. */
double CRN_FN(crn_softmax_xent)(real *dlogits, const real *logits, const uint32_t *targets,
                                size_t N, size_t V, real scale, size_t *count);

#endif
