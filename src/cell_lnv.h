/* cell_lnv.h — internal: the vector loops of layer normalisation (cell.h),
 * in two widths. Included by cell.h twice, with CRN_LNV_W 16 and 8: the
 * same loops over chunks of 16 lanes held as one 16-lane GCC vector (one
 * zmm: the AVX-512 clone) or as two of 8 lanes (one ymm each: AVX2; two
 * xmm on the baseline). A 16-lane vector on a target without 64-byte
 * registers keeps its loop-carried accumulators on the stack (GCC moves
 * them through xmm inserts: several times the instructions), and two halves
 * on AVX-512 would double the instructions there; cell.h picks the width
 * from the CPU (crn_lnv_wide). Both widths add the same numbers in the same
 * order: lane i of the 16 sums the elements 16m + i, the lanes are added in
 * a fixed tree, so the two forms agree bit for bit (test_kernels). Never
 * passed by value (that would change the ABI between clones: -Wpsabi). */
#define CRN_LNV_CAT2(a, b) a##_##b
#define CRN_LNV_CAT(a, b) CRN_LNV_CAT2(a, b)
#define CRN_LNV(name) CRN_LNV_CAT(name, CRN_LNV_W)
#define CRN_LNV_NV (16 / CRN_LNV_W) // vectors per chunk of 16
#define CRN_LNV_T CRN_LNV(crn_lnv)

typedef real CRN_LNV_T __attribute__((vector_size(CRN_LNV_W * sizeof(real))));

#define CRN_LNV_LD(v, p) memcpy(&(v), (p), sizeof(CRN_LNV_T))
#define CRN_LNV_ADD(p, v) /* p[0..W) += v */ \
    do { \
        CRN_LNV_T t_, u_ = (v); \
        CRN_LNV_LD(t_, p); \
        t_ += u_; \
        memcpy((p), &t_, sizeof(CRN_LNV_T)); \
    } while (0)

/* The sum of a chunk's 16 lanes a[0..NV): lane i + lane i+8, then i + (i^4),
 * i + (i^2), lane 0 + lane 1. */
CRN_INLINE real CRN_LNV(crn_lnv_sum)(const CRN_LNV_T *a) {
#if CRN_LNV_W == 16
    CRN_LNV_T v = a[0];
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
#else
    CRN_LNV_T v = a[0] + a[1];
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
#endif
    return v[0] + v[1];
}

/* crn_ln_moments_g (cell.h): the blocks' loops interleaved, BG blocks at a
 * time (their accumulators fill half the vector registers); each block is
 * summed alone (lane i adds its elements 16m + i, the tail adds in order,
 * then the lanes in crn_lnv_sum's tree), so G blocks give the figures of G
 * one-block calls. */
#define CRN_LNV_BG (CRN_LNV_W == 16 ? 4 : 2)
CRN_INLINE void CRN_LNV(crn_ln_moments_g)(const real *restrict x, int G, int n, real *mean, real *rs) {
    for (int b0 = 0; b0 < G; b0 += CRN_LNV_BG) {
        const int nb = G - b0 < CRN_LNV_BG ? G - b0 : CRN_LNV_BG;
        const real *restrict xb = x + (size_t)b0 * n;
        real k[CRN_LNV_BG];
        CRN_LNV_T s[CRN_LNV_BG][CRN_LNV_NV] = {{{0}}}, q[CRN_LNV_BG][CRN_LNV_NV] = {{{0}}};
        for (int b = 0; b < nb; b++) k[b] = xb[(size_t)b * n];
        int j = 0;
        for (; j + 16 <= n; j += 16)
            for (int b = 0; b < nb; b++)
                for (int h = 0; h < CRN_LNV_NV; h++) {
                    CRN_LNV_T d;
                    CRN_LNV_LD(d, xb + (size_t)b * n + j + CRN_LNV_W * h);
                    d -= k[b];
                    s[b][h] += d;
                    q[b][h] += d * d;
                }
        for (int b = 0; b < nb; b++) {
            real ts = 0, tq = 0;
            for (int i = j; i < n; i++) {
                real d = xb[(size_t)b * n + i] - k[b];
                ts += d;
                tq += d * d;
            }
            ts += CRN_LNV(crn_lnv_sum)(s[b]);
            tq += CRN_LNV(crn_lnv_sum)(q[b]);
            crn_ln_finish(ts, tq, k[b], n, &mean[b0 + b], &rs[b0 + b]);
        }
    }
}
#undef CRN_LNV_BG

/* crn_ln_moments (cell.h): the shifted sums of x - k and (x - k)^2, as one
 * block of crn_ln_moments_g */
CRN_INLINE void CRN_LNV(crn_ln_moments)(const real *restrict x, int n, real *mean, real *rs) {
    CRN_LNV(crn_ln_moments_g)(x, 1, n, mean, rs);
}

/* crn_ln_sums (cell.h): sum of a * b (n) and of a * b * c */
CRN_INLINE void CRN_LNV(crn_ln_sums)(const real *restrict a, const real *restrict b, const real *restrict c, int n,
                                     real *s1, real *s2) {
    CRN_LNV_T v1[CRN_LNV_NV] = {{0}}, v2[CRN_LNV_NV] = {{0}};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int h = 0; h < CRN_LNV_NV; h++) {
            const int u = j + CRN_LNV_W * h;
            CRN_LNV_T x, y, z;
            CRN_LNV_LD(x, a + u);
            CRN_LNV_LD(y, b + u);
            CRN_LNV_LD(z, c + u);
            x *= y;
            v1[h] += x;
            v2[h] += x * z;
        }
    real t1 = 0, t2 = 0;
    for (; j < n; j++) {
        t1 += a[j] * b[j];
        t2 += a[j] * b[j] * c[j];
    }
    *s1 = t1 + CRN_LNV(crn_lnv_sum)(v1);
    *s2 = t2 + CRN_LNV(crn_lnv_sum)(v2);
}

/* crn_ln_row_backward's first pass over one block of H (cell.h): the
 * gradient sums into adbx, adgx, adbh (only with dy), adgh, and the four LN
 * sums s[0..4) = sum dx*g_x, dx*g_x*xhat, d*g_h, d*g_h*hhat (d = dy, or dx
 * when dy is NULL). */
CRN_INLINE void CRN_LNV(crn_ln_back_sums)(real *restrict s, real *restrict adbx, real *restrict adgx,
                                          real *restrict adbh, real *restrict adgh, const real *restrict dx,
                                          const real *restrict dy, const real *restrict xh,
                                          const real *restrict hh, const real *restrict gx,
                                          const real *restrict gh, int H) {
    const real *restrict d = dy ? dy : dx;
    CRN_LNV_T v1[CRN_LNV_NV] = {{0}}, v2[CRN_LNV_NV] = {{0}}, v3[CRN_LNV_NV] = {{0}}, v4[CRN_LNV_NV] = {{0}};
    int j = 0;
    for (; j + 16 <= H; j += 16)
        for (int h = 0; h < CRN_LNV_NV; h++) {
            const int u = j + CRN_LNV_W * h;
            CRN_LNV_T a, b, xv, hv, g1, g2;
            CRN_LNV_LD(a, dx + u);
            CRN_LNV_LD(xv, xh + u);
            CRN_LNV_LD(hv, hh + u);
            CRN_LNV_LD(g1, gx + u);
            CRN_LNV_LD(g2, gh + u);
            if (dy) CRN_LNV_LD(b, d + u);
            else b = a;
            CRN_LNV_ADD(adbx + u, a);
            CRN_LNV_ADD(adgx + u, a * xv);
            if (dy) CRN_LNV_ADD(adbh + u, b);
            CRN_LNV_ADD(adgh + u, b * hv);
            a *= g1;
            b *= g2;
            v1[h] += a;
            v2[h] += a * xv;
            v3[h] += b;
            v4[h] += b * hv;
        }
    real s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (; j < H; j++) {
        adbx[j] += dx[j];
        adgx[j] += dx[j] * xh[j];
        if (dy) adbh[j] += d[j];
        adgh[j] += d[j] * hh[j];
        real ex = dx[j] * gx[j], eh = d[j] * gh[j];
        s1 += ex;
        s2 += ex * xh[j];
        s3 += eh;
        s4 += eh * hh[j];
    }
    s[0] = s1 + CRN_LNV(crn_lnv_sum)(v1);
    s[1] = s2 + CRN_LNV(crn_lnv_sum)(v2);
    s[2] = s3 + CRN_LNV(crn_lnv_sum)(v3);
    s[3] = s4 + CRN_LNV(crn_lnv_sum)(v4);
}

#undef CRN_LNV_ADD
#undef CRN_LNV_LD
#undef CRN_LNV_T
#undef CRN_LNV_NV
#undef CRN_LNV
#undef CRN_LNV_CAT
#undef CRN_LNV_CAT2
