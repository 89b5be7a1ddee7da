/* blas.c — which OpenBLAS kernel family runs, and which one this CPU could
 * run (see blas.h). */
#include "blas.h"

#include <string.h>

#include <cblas.h>

const char *crn_blas_core(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

/* The generic families OpenBLAS falls back to when it does not know an x86
 * CPU: none of them uses AVX2. */
static int is_generic_x86(const char *core) {
    static const char *const generic[] = {"Prescott", "Core2", "Penryn", "Nehalem", "Katmai", "Coppermine",
                                          "Northwood", "Banias", "Atom", "Dunnington", "Opteron", "Barcelona"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (!strcmp(core, generic[i])) return 1;
    return 0;
}

const char *crn_blas_better_core(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!is_generic_x86(crn_blas_core())) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "SKYLAKEX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "HASWELL";
#endif
    return NULL;
}
