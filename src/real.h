/* real.h — the numeric type of the model code.
 *
 * kernels.c, cell_*.c and model.c are compiled twice: as float (libcrnnum, the
 * product) and, with -DCRN_DOUBLE=1, as double (libcrnnum64, used only by the
 * finite-difference gradient checks, so central differences are meaningful).
 * Every external symbol of those files is wrapped in CRN_FN() so the two
 * builds can be linked into one test binary. */
#ifndef CRN_REAL_H
#define CRN_REAL_H

#if defined(CRN_DOUBLE) && CRN_DOUBLE
typedef double real;
#define CRN_FN(name) name##_f64
#define CRN_REAL_NAME "double"
#else
typedef float real;
#define CRN_FN(name) name
#define CRN_REAL_NAME "float"
#endif

#endif
