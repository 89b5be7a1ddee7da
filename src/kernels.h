/* kernels.h — the numeric kernels every layer uses: one matrix-product entry
 * point (OpenBLAS cblas_sgemm / cblas_dgemm) with a plain-loop reference,
 * fused elementwise activations, and the fused softmax cross-entropy.
 * All matrices are row-major. Compiled as float and as double (real.h). */
#ifndef CRN_KERNELS_H
#define CRN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "real.h"

/* C (M, N) = alpha * op(A) @ op(B) + beta * C, with op(A) (M, K), op(B) (K, N);
 * ta/tb nonzero means A/B are stored transposed. cblas semantics, row-major. */
void CRN_FN(crn_gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                      const real *B, int ldb, real beta, real *C, int ldc);
/* The same with plain loops (tests compare the two). */
void CRN_FN(crn_gemm_ref)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                          const real *B, int ldb, real beta, real *C, int ldc);

/* Threads for OpenBLAS and our own parallel loops (n <= 0: all cores). */
void CRN_FN(crn_set_threads)(int n);
int CRN_FN(crn_get_threads)(void);

/* Fused softmax + cross-entropy over N rows of V logits.
 * targets[i] == 0xffffffff (CRN_IGNORE) skips row i (its dlogits row is 0).
 * Writes dlogits = (softmax(logits) - onehot(target)) * scale for each
 * counted row (scale is typically 1/count); returns the summed loss in nats
 * (double accumulation) and the number of counted rows in *count.
 * Numerically stable (max subtracted). dlogits may alias logits. */
double CRN_FN(crn_softmax_xent)(real *dlogits, const real *logits, const uint32_t *targets,
                                size_t N, size_t V, real scale, size_t *count);

#endif
