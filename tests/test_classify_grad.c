/* test_classify_grad.c — finite-difference gradient check of the classifier
 * (classify.c) in double precision (libcrnnum64).
 *
 * For every combination of head (2 classes: sigmoid + BCE; 3 classes:
 * softmax + CE), pooling (last, mean, max), direction (none, last layer, all
 * layers), cell (rnn, lstm, gru), 1 or 2 layers and one-hot / embedding input,
 * without and with layer normalisation in the cells (cell.h: its gains and
 * the LSTM's LN(c) bias set around 1 and 0, not all equal),
 * a padded window of B = 3 lines of lengths 5, 2, 4 (T = 5, so two lines end
 * in padding) with per-line weights is run, and EVERY parameter's analytic
 * gradient is compared with the fourth-order central difference (e = 1e-4),
 * relative error |a - n| / max(|a| + |n|, 1e-6) <= 1e-5 (the bound of
 * test_gradcheck.c). Feature dropout is checked in training mode with the rng
 * re-seeded before every evaluation (the same mask each time).
 *
 * Masking: the loss must not depend on the ids at padded steps (changing them
 * changes nothing, to the last bit), and the analytic gradient of rows only
 * padded steps use is exactly zero (plain LSTM, and every cell with layer
 * norm).
 *
 * The checker can fail: a 1% perturbation of one analytic entry must be
 * reported above the bound.
 *
 * The inference path (a forward without labels) gives the training path's
 * probabilities in every configuration (1..3 layers, with and without
 * layer norm), batched and line by line: the padding invariance. */
#define CRN_DOUBLE 1
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "common.h"
#include "rng.h"

#define clf_create CRN_FN(crn_clf_create)
#define clf_destroy CRN_FN(crn_clf_destroy)
#define clf_params CRN_FN(crn_clf_params)
#define clf_grads CRN_FN(crn_clf_grads)
#define clf_nparams CRN_FN(crn_clf_num_params)
#define clf_init CRN_FN(crn_clf_init)
#define clf_reserve CRN_FN(crn_clf_reserve)
#define clf_forward CRN_FN(crn_clf_forward)
#define clf_backward CRN_FN(crn_clf_backward)
#define clf_zero CRN_FN(crn_clf_zero_grads)
#define clf_find CRN_FN(crn_clf_find_tensor)

#define GC_EPS 1e-4
#define GC_FLOOR 1e-6
#define GC_BOUND 1e-5

enum { GB = 3, GT = 5, GV = 7, GH = 5 };

typedef struct gc {
    crn_clf *m;
    uint32_t x[GT * GB], len[GB], y[GB];
    real w[GB];
    int train;
} gc;

static double loss_of(gc *g) {
    crn_rng rng;
    crn_rng_seed(&rng, 99);
    double s = 0;
    ck_assert_int_eq(clf_forward(g->m, g->x, g->len, g->y, g->w, GB, GT, g->train ? &rng : NULL, &s), 0);
    return s / GB;
}

/* Largest relative error over all parameters; *worst_i its index. */
static double check_all(gc *g, double perturb, size_t *worst_i) {
    real *p = clf_params(g->m), *gr = clf_grads(g->m);
    size_t n = clf_nparams(g->m);
    clf_zero(g->m);
    loss_of(g);
    ck_assert_int_eq(clf_backward(g->m), 0);
    double *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) a[i] = gr[i];
    size_t big = 0; // perturb the largest entry (a zero one would not change)
    for (size_t i = 1; i < n; i++)
        if (fabs(a[i]) > fabs(a[big])) big = i;
    a[big] *= 1 + perturb;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        real p0 = p[i];
        p[i] = p0 + 2 * GC_EPS;
        double f2 = loss_of(g);
        p[i] = p0 + GC_EPS;
        double f1 = loss_of(g);
        p[i] = p0 - GC_EPS;
        double fm1 = loss_of(g);
        p[i] = p0 - 2 * GC_EPS;
        double fm2 = loss_of(g);
        p[i] = p0;
        double num = (-f2 + 8 * f1 - 8 * fm1 + fm2) / (12 * GC_EPS);
        double rel = fabs(a[i] - num) / fmax(fabs(a[i]) + fabs(num), GC_FLOOR);
        if (rel > worst) {
            worst = rel;
            *worst_i = i;
        }
    }
    free(a);
    return worst;
}

static void setup(gc *g, enum crn_cell cell, uint32_t L, uint32_t E, uint32_t C, enum crn_pool pool,
                     enum crn_bidir bidir, float dropout, int ln) {
    crn_clf_config cfg = {.base = {.cell = cell, .act = CRN_ACT_TANH, .vocab = GV, .embed = E, .hidden = GH,
                                   .layers = L, .dropout = dropout, .layer_norm = (uint32_t)ln},
                          .classes = C, .pool = pool, .bidir = bidir};
    ck_assert_int_eq(clf_create(&g->m, &cfg), 0);
    ck_assert_int_eq(clf_reserve(g->m, GB, GT), 0);
    crn_rng rng;
    crn_rng_seed(&rng, 1234 + cell * 7 + L + E + C + pool * 3 + bidir * 11);
    clf_init(g->m, &rng);
    /* larger weights than the default init so gates are not all near-linear */
    real *p = clf_params(g->m);
    for (size_t i = 0; i < clf_nparams(g->m); i++) p[i] *= 1.5;
    /* layer norm: gains around 1 and LN(c) biases around 0, not all equal */
    for (int i = 0; i < CRN_FN(crn_clf_num_tensors)(g->m); i++) {
        const crn_tensor_info *t = CRN_FN(crn_clf_tensor)(g->m, i);
        if (!strstr(t->name, ".ln_")) continue;
        const int bias = strstr(t->name, ".ln_bc") != NULL;
        for (size_t j = 0; j < t->rows * t->cols; j++)
            p[t->offset + j] = (real)((bias ? 0 : 1) + 0.6 * (crn_rng_uniform(&rng) - 0.5));
    }
    const uint32_t lens[GB] = {5, 2, 4};
    for (int b = 0; b < GB; b++) {
        g->len[b] = lens[b];
        g->y[b] = (uint32_t)((b * 2 + 1) % C);
        g->w[b] = (real)(0.5 + 0.25 * b);
    }
    for (int i = 0; i < GT * GB; i++) g->x[i] = (uint32_t)crn_rng_below(&rng, GV);
    g->train = dropout > 0;
}

/* ln: the classifier with layer normalisation in its cells (the LN gains
 * and the LSTM's LN(c) bias are parameters checked like all others). */
static void grad_sweep(int ln) {
    static const enum crn_cell cells[] = {CRN_CELL_RNN, CRN_CELL_LSTM, CRN_CELL_GRU};
    double worst_all = 0;
    int ncases = 0;
    for (int ci = 0; ci < 3; ci++)
        for (uint32_t L = 1; L <= 2; L++)
            for (uint32_t C = 2; C <= 3; C++)
                for (int pool = 0; pool <= CRN_POOL_MAX; pool++)
                    for (int bi = 0; bi <= CRN_BIDIR_ALL; bi++) {
                        if (L == 1 && bi == CRN_BIDIR_ALL) continue; // same as last
                        uint32_t E = (ci + pool + bi) % 2 ? 4 : 0;
                        gc g = {0};
                        setup(&g, cells[ci], L, E, C, (enum crn_pool)pool, (enum crn_bidir)bi, 0, ln);
                        if (ln) ck_assert_ptr_nonnull(clf_find(g.m, L == 2 && bi ? "l1r.ln_gh" : "l0.ln_gx"));
                        size_t wi = 0;
                        double worst = check_all(&g, 0, &wi);
                        if (worst > GC_BOUND)
                            fprintf(stderr, "ln %d cell %d L %u E %u C %u pool %d bidir %d: rel %.3g at %zu\n", ln, ci,
                                    L, E, C, pool, bi, worst, wi);
                        ck_assert_double_le(worst, GC_BOUND);
                        if (ln) { // the LN gains do get a gradient (a check of zeros alone would pass)
                            const crn_tensor_info *t = clf_find(g.m, "l0.ln_gh");
                            double sum = 0;
                            for (size_t j = 0; j < t->cols; j++) sum += fabs(clf_grads(g.m)[t->offset + j]);
                            ck_assert_double_gt(sum, 1e-6);
                        }
                        worst_all = fmax(worst_all, worst);
                        ncases++;
                        clf_destroy(g.m);
                    }
    fprintf(stderr, "classifier gradcheck%s: %d configurations, worst relative error %.3g\n",
            ln ? " (layer norm)" : "", ncases, worst_all);
}

START_TEST(test_grad_sweep) { grad_sweep(0); }
END_TEST

START_TEST(test_grad_sweep_ln) { grad_sweep(1); }
END_TEST

/* The inference path (a forward without labels and rng: rows sorted by
 * length, no padded step, pooling step by step) gives the training path's
 * probabilities, in every configuration, with and without the inference
 * tables, for the whole window and for each line alone (and a changed
 * parameter changes them: the comparison can fail). */
#define INF_TOL 1e-12
static double infer_gap(gc *g, int C) {
    real ref[GB * 3], p[GB * 3];
    double s = 0, worst = 0;
    ck_assert_int_eq(clf_forward(g->m, g->x, g->len, g->y, NULL, GB, GT, NULL, &s), 0);
    memcpy(ref, CRN_FN(crn_clf_probs)(g->m), sizeof(real) * GB * C);
    ck_assert_int_eq(clf_forward(g->m, g->x, g->len, NULL, NULL, GB, GT, NULL, &s), 0);
    memcpy(p, CRN_FN(crn_clf_probs)(g->m), sizeof(real) * GB * C);
    for (int k = 0; k < GB * C; k++) worst = fmax(worst, fabs(p[k] - ref[k]));
    for (int b = 0; b < GB; b++) { // each line alone, in a window of its own length
        uint32_t x1[GT];
        for (uint32_t t = 0; t < g->len[b]; t++) x1[t] = g->x[t * GB + b];
        ck_assert_int_eq(clf_forward(g->m, x1, &g->len[b], NULL, NULL, 1, g->len[b], NULL, &s), 0);
        const real *q = CRN_FN(crn_clf_probs)(g->m);
        for (int k = 0; k < C; k++) worst = fmax(worst, fabs(q[k] - ref[b * C + k]));
    }
    return worst;
}

START_TEST(test_inference_path) {
    static const enum crn_cell cells[] = {CRN_CELL_RNN, CRN_CELL_LSTM, CRN_CELL_GRU};
    int ncases = 0;
    for (int ln = 0; ln <= 1; ln++)
    for (int ci = 0; ci < 3; ci++)
        for (uint32_t L = 1; L <= 3; L++)
            for (int pool = 0; pool <= CRN_POOL_MAX; pool++)
                for (int bi = 0; bi <= CRN_BIDIR_ALL; bi++)
                    for (uint32_t E = 0; E <= 4; E += 4) {
                        const uint32_t C = (uint32_t)(2 + (ci + pool + bi) % 2);
                        gc g = {0};
                        setup(&g, cells[ci], L, E, C, (enum crn_pool)pool, (enum crn_bidir)bi, 0, ln);
                        double gap = infer_gap(&g, (int)C);
                        if (E) {
                            ck_assert_int_eq(CRN_FN(crn_clf_inference_tables)(g.m, 1), 0);
                            gap = fmax(gap, infer_gap(&g, (int)C));
                        }
                        if (gap > INF_TOL)
                            fprintf(stderr, "ln %d cell %d L %u E %u pool %d bidir %d: inference differs by %.3g\n",
                                    ln, ci, L, E, pool, bi, gap);
                        ck_assert_double_le(gap, INF_TOL);
                        if (ci == 2 && L == 2 && bi == CRN_BIDIR_ALL) { // a changed weight of the reverse direction shows
                            const char *w = ln ? "l1r.ln_gh" : "l1r.w_h";
                            CRN_FN(crn_clf_inference_tables)(g.m, 0);
                            clf_params(g.m)[clf_find(g.m, w)->offset] += 0.5;
                            double s = 0;
                            real before[GB * 3];
                            ck_assert_int_eq(clf_forward(g.m, g.x, g.len, g.y, NULL, GB, GT, NULL, &s), 0);
                            memcpy(before, CRN_FN(crn_clf_probs)(g.m), sizeof(real) * GB * C);
                            clf_params(g.m)[clf_find(g.m, w)->offset] -= 0.5;
                            double moved = 0;
                            ck_assert_int_eq(clf_forward(g.m, g.x, g.len, NULL, NULL, GB, GT, NULL, &s), 0);
                            for (uint32_t k = 0; k < GB * C; k++)
                                moved = fmax(moved, fabs(before[k] - CRN_FN(crn_clf_probs)(g.m)[k]));
                            ck_assert_double_gt(moved, 1e3 * INF_TOL);
                        }
                        ncases++;
                        clf_destroy(g.m);
                    }
    fprintf(stderr, "classifier inference path: %d configurations agree within %.0e\n", ncases, INF_TOL);
}
END_TEST

/* The worst relative error of one configuration (one analytic entry
 * perturbed by perturb). */
static double worst_of(enum crn_cell cell, uint32_t L, uint32_t E, uint32_t C, enum crn_pool pool,
                       enum crn_bidir bidir, float dropout, int ln, double perturb) {
    gc g = {0};
    setup(&g, cell, L, E, C, pool, bidir, dropout, ln);
    size_t wi = 0;
    double worst = check_all(&g, perturb, &wi);
    clf_destroy(g.m);
    return worst;
}

START_TEST(test_grad_dropout) {
    for (int ln = 0; ln <= 1; ln++)
        ck_assert_double_le(worst_of(CRN_CELL_LSTM, 2, 4, 3, CRN_POOL_MEAN, CRN_BIDIR_ALL, 0.3f, ln, 0), GC_BOUND);
}
END_TEST

START_TEST(test_checker_can_fail) {
    for (int ln = 0; ln <= 1; ln++)
        ck_assert_double_gt(worst_of(CRN_CELL_GRU, 1, 0, 2, CRN_POOL_LAST, CRN_BIDIR_LAST, 0, ln, 0.01), GC_BOUND);
}
END_TEST

/* Padded steps: their ids change nothing, and gradients of one-hot rows used
 * only at padded steps are exactly 0. */
START_TEST(test_padding_masked) {
    static const enum crn_cell cells[] = {CRN_CELL_LSTM, CRN_CELL_RNN, CRN_CELL_GRU};
    for (int k = 0; k < 4 * (CRN_POOL_MAX + 1); k++) { // plain LSTM, then layer norm with each cell
        const int pool = k % (CRN_POOL_MAX + 1), ln = k > CRN_POOL_MAX, ci = ln ? k / (CRN_POOL_MAX + 1) - 1 : 0;
        gc g = {0};
        setup(&g, cells[ci], 2, 0, 2, (enum crn_pool)pool, CRN_BIDIR_ALL, 0, ln);
        /* ids 0..5 at valid steps, id 6 only at padded steps */
        for (int t = 0; t < GT; t++)
            for (int b = 0; b < GB; b++) g.x[t * GB + b] = t < (int)g.len[b] ? (uint32_t)((t + b) % 6) : 6;
        clf_zero(g.m);
        double f0 = loss_of(&g);
        ck_assert_int_eq(clf_backward(g.m), 0);
        const crn_tensor_info *wx = clf_find(g.m, "l0.w_x"), *wxr = clf_find(g.m, "l0r.w_x");
        const real *gr = clf_grads(g.m);
        for (size_t j = 0; j < wx->cols; j++) {
            ck_assert(gr[wx->offset + 6 * wx->cols + j] == 0);
            ck_assert(gr[wxr->offset + 6 * wxr->cols + j] == 0);
        }
        int nonzero = 0;
        for (size_t j = 0; j < wx->cols; j++) nonzero += gr[wx->offset + 1 * wx->cols + j] != 0;
        ck_assert_int_gt(nonzero, 0); // a used row does get a gradient
        for (int t = 0; t < GT; t++)
            for (int b = 0; b < GB; b++)
                if (t >= (int)g.len[b]) g.x[t * GB + b] = 3;
        ck_assert(loss_of(&g) == f0);
        clf_destroy(g.m);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("classify_grad");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_grad_sweep);
    tcase_add_test(tc, test_grad_sweep_ln);
    tcase_add_test(tc, test_grad_dropout);
    tcase_add_test(tc, test_checker_can_fail);
    tcase_add_test(tc, test_padding_masked);
    tcase_add_test(tc, test_inference_path);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
