/* blas.h — which OpenBLAS kernel family runs, and which one this CPU could run.
 *
 * Debian 12's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernels from the CPU's
 * family and model numbers. On a CPU newer than the library (e.g. Intel
 * Sapphire Rapids) the lookup fails and it falls back to its generic SSE3
 * "Prescott" kernels: every window GEMM then runs at a fraction of the speed
 * the CPU's AVX2/AVX-512 units give. OpenBLAS reads OPENBLAS_CORETYPE once,
 * when it is loaded, so a library cannot switch kernels for its host program;
 * it can only tell. The CLI acts on the advice by re-executing itself with
 * OPENBLAS_CORETYPE set (cli.c). */
#ifndef CRN_BLAS_H
#define CRN_BLAS_H

/* The kernel family OpenBLAS chose at load time ("Prescott", "Haswell",
 * "SkylakeX", "Zen", ...). Never NULL. */
const char *crn_blas_core(void);

/* The OPENBLAS_CORETYPE value this CPU should use instead, or NULL when the
 * loaded kernels are already right (or nothing better is known): non-NULL
 * only when OpenBLAS fell back to a generic x86 family while the CPU has
 * AVX2+FMA ("HASWELL") or AVX-512 F/CD/BW/DQ/VL ("SKYLAKEX"). */
const char *crn_blas_better_core(void);

#endif
