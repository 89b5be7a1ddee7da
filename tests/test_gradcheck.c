/* test_gradcheck.c — finite-difference gradient check of the whole model in
 * double precision (libcrnnum64: the same sources as the product, compiled
 * with real = double).
 *
 * For every configuration — rnn tanh, rnn relu, lstm, gru; 1 and 2 layers;
 * one-hot and embedding input — a window of T = 5 steps of B = 3 streams with
 * a non-zero carried-in state (h and c) and two ignored targets is run, and
 * EVERY parameter's analytic gradient (crn_model_backward) is compared with
 * the fourth-order central difference
 *   (-f(p + 2e) + 8 f(p + e) - 8 f(p - e) + f(p - 2e)) / (12 e),  e = 1e-4,
 * f = the mean cross-entropy over the counted targets, every evaluation
 * starting from the same carried-in state. (The plain two-point difference
 * with e = 1e-5 agrees too, but its rounding noise, ~5e-11 absolute, is 10x
 * larger; the 4-point stencil keeps the noise near 1e-11 so the bound can be
 * tight.)
 *
 * relative error = |analytic - numeric| / max(|analytic| + |numeric|, 1e-6);
 * the floor keeps entries whose gradient is ~0 (rows of unused one-hot ids,
 * relu units that are off, analytic exactly 0 vs numeric ~1e-13) from
 * dividing rounding noise by zero. The bound is 1e-5, 10x under the 1e-4
 * asked for; the errors seen are 1e-8..3e-6 (printed per configuration).
 *
 * Dropout: off in the main sweep (eval mode, rng = NULL). One extra case runs
 * a 2-layer LSTM with dropout 0.3 in training mode, re-seeding the rng to the
 * same seed before every evaluation, so every evaluation draws the same mask
 * and f is a smooth function of the parameters.
 *
 * The whole sweep runs again with layer normalisation (--layer-norm), and
 * once with layer norm and dropout together.
 *
 * A last test proves the checker can fail: one analytic gradient entry is
 * perturbed by 1% and the checker must report a relative error above the
 * bound. */
#define CRN_DOUBLE 1
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "rng.h"

/* the double build's names (crn_model_create_f64, ...) under the plain ones */
#define crn_model_create CRN_FN(crn_model_create)
#define crn_model_destroy CRN_FN(crn_model_destroy)
#define crn_model_params CRN_FN(crn_model_params)
#define crn_model_grads CRN_FN(crn_model_grads)
#define crn_model_num_params CRN_FN(crn_model_num_params)
#define crn_model_num_tensors CRN_FN(crn_model_num_tensors)
#define crn_model_tensor CRN_FN(crn_model_tensor)
#define crn_model_find_tensor CRN_FN(crn_model_find_tensor)
#define crn_model_init_spec CRN_FN(crn_model_init_spec)
#define crn_state_create CRN_FN(crn_state_create)
#define crn_state_destroy CRN_FN(crn_state_destroy)
#define crn_state_h CRN_FN(crn_state_h)
#define crn_state_c CRN_FN(crn_state_c)
#define crn_model_reserve CRN_FN(crn_model_reserve)
#define crn_model_forward CRN_FN(crn_model_forward)
#define crn_model_backward CRN_FN(crn_model_backward)
#define crn_model_zero_grads CRN_FN(crn_model_zero_grads)

#define GC_EPS 1e-4
#define GC_FLOOR 1e-6
#define GC_BOUND 1e-5

enum { GB = 3, GT = 5, GV = 7, GH = 6 };

typedef struct gc_case {
    crn_model *m;
    crn_state *st;
    real *h0, *c0;   // (L, B, H) the carried-in state every evaluation starts from
    uint32_t x[GT * GB], y[GT * GB];
    int train;       // dropout active, rng re-seeded before each evaluation
    uint32_t L;
} gc_case;

static void load_state(gc_case *g) {
    for (uint32_t l = 0; l < g->L; l++) {
        memcpy(crn_state_h(g->st, l), g->h0 + (size_t)l * GB * GH, sizeof(real) * GB * GH);
        real *c = crn_state_c(g->st, l);
        if (c) memcpy(c, g->c0 + (size_t)l * GB * GH, sizeof(real) * GB * GH);
    }
}

/* the mean loss over the counted targets */
static double eval_loss(gc_case *g) {
    crn_rng rng;
    crn_rng_seed(&rng, 99);
    double loss = 0;
    size_t count = 0;
    load_state(g);
    int rc = crn_model_forward(g->m, g->st, g->x, g->y, GB, GT, g->train ? &rng : NULL, &loss, &count);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_gt(count, 0);
    return loss / (double)count;
}

static void case_setup(gc_case *g, enum crn_cell cell, enum crn_act act, uint32_t E, uint32_t L, float dropout,
                       uint32_t ln, uint64_t seed) {
    memset(g, 0, sizeof *g);
    crn_model_config cfg = {.cell = cell, .act = act, .vocab = GV, .embed = E, .hidden = GH, .layers = L,
                            .dropout = dropout, .layer_norm = ln};
    ck_assert_int_eq(crn_model_create(&g->m, &cfg), 0);
    ck_assert_int_eq(crn_model_reserve(g->m, GB, GT), 0);
    ck_assert_int_eq(crn_state_create(&g->st, g->m, GB), 0);
    g->L = L;
    g->train = dropout > 0;
    crn_rng rng;
    crn_rng_seed(&rng, seed);
    /* PyTorch's uniform init for every cell (the check needs small, generic
     * weights; the orthogonal default of rnn/gru would put relu kinks and
     * tanh saturation within the finite-difference step) */
    crn_init_spec spec = {CRN_INIT_PYTORCH, 1.0f};
    crn_model_init_spec(g->m, &rng, &spec);
    /* widen the biases a little so that no parameter's gradient is trivially
     * zero by symmetry (the LSTM forget bias init is a constant) */
    real *p = crn_model_params(g->m);
    for (int i = 0; i < crn_model_num_tensors(g->m); i++) {
        const crn_tensor_info *t = crn_model_tensor(g->m, i);
        if (t->rows == 1)
            for (size_t j = 0; j < t->cols; j++) p[t->offset + j] += 0.3 * (crn_rng_uniform(&rng) - 0.5);
    }
    g->h0 = calloc((size_t)L * GB * GH, sizeof(real));
    g->c0 = calloc((size_t)L * GB * GH, sizeof(real));
    for (size_t k = 0; k < (size_t)L * GB * GH; k++) {
        g->h0[k] = crn_rng_uniform(&rng) - 0.5;            // non-zero carried-in state
        g->c0[k] = 2 * crn_rng_uniform(&rng) - 1;
    }
    /* x uses only some ids, so one-hot rows of unused ids have zero gradient
     * (and must be computed as exactly zero) */
    for (int i = 0; i < GT * GB; i++) {
        g->x[i] = (uint32_t)crn_rng_below(&rng, GV - 1);
        g->y[i] = (uint32_t)crn_rng_below(&rng, GV);
    }
    g->y[4] = 0xffffffffu; // ignored targets
    g->y[GT * GB - 1] = 0xffffffffu;
}

static void case_free(gc_case *g) {
    crn_state_destroy(g->st);
    crn_model_destroy(g->m);
    free(g->h0);
    free(g->c0);
}

/* analytic gradient of the mean loss, copied out */
static real *analytic(gc_case *g) {
    size_t n = crn_model_num_params(g->m);
    crn_model_zero_grads(g->m);
    (void)eval_loss(g);
    ck_assert_int_eq(crn_model_backward(g->m), 0);
    real *a = malloc(n * sizeof(real));
    memcpy(a, crn_model_grads(g->m), n * sizeof(real));
    return a;
}

typedef struct gc_result {
    double max_rel, max_abs;
    char where[160];
} gc_result;

/* Compare grads (analytic, same layout as the parameters) with central
 * differences on every parameter. */
static gc_result check_grads(gc_case *g, const real *grads) {
    gc_result r = {0, 0, ""};
    real *p = crn_model_params(g->m);
    for (int i = 0; i < crn_model_num_tensors(g->m); i++) {
        const crn_tensor_info *t = crn_model_tensor(g->m, i);
        size_t n = t->rows * t->cols;
        for (size_t j = 0; j < n; j++) {
            size_t k = t->offset + j;
            real save = p[k];
            double f[4];
            static const double at[4] = {2, 1, -1, -2};
            for (int q = 0; q < 4; q++) {
                p[k] = save + at[q] * GC_EPS;
                f[q] = eval_loss(g);
            }
            p[k] = save;
            double num = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * GC_EPS), a = grads[k];
            double abs_err = fabs(a - num);
            double rel = abs_err / fmax(fabs(a) + fabs(num), GC_FLOOR);
            if (abs_err > r.max_abs) r.max_abs = abs_err;
            if (rel > r.max_rel) {
                r.max_rel = rel;
                snprintf(r.where, sizeof r.where, "%s[%zu] a=%.6g n=%.6g", t->name, j, a, num);
            }
        }
    }
    return r;
}

/* crn_cell_name lives in the float library only */
static const char *cell_str(enum crn_cell c) { return c == CRN_CELL_LSTM ? "lstm" : c == CRN_CELL_GRU ? "gru" : "rnn"; }

static void run_case(enum crn_cell cell, enum crn_act act, uint32_t E, uint32_t L, float dropout, uint32_t ln) {
    gc_case g;
    case_setup(&g, cell, act, E, L, dropout, ln, 1000 + 100 * cell + 10 * act + E + L + 7 * ln);
    real *a = analytic(&g);
    /* the gradient is not trivially zero: most entries are used */
    size_t n = crn_model_num_params(g.m), nz = 0;
    for (size_t k = 0; k < n; k++) nz += a[k] != 0;
    ck_assert_msg(nz > n / 3, "only %zu of %zu gradient entries non-zero", nz, n);
    if (g.train) { /* dropout is really active: the training loss differs from the evaluation loss */
        double lt = eval_loss(&g);
        g.train = 0;
        double le = eval_loss(&g);
        g.train = 1;
        ck_assert_msg(fabs(lt - le) > 1e-6, "dropout changed nothing (%g vs %g)", lt, le);
    }
    gc_result r = check_grads(&g, a);
    printf("gradcheck %-4s %-4s L=%u %-7s dropout=%.1f%s: %4zu params, max rel err %.3e, max abs err %.3e (%s)\n",
           cell_str(cell), cell != CRN_CELL_RNN ? "" : act == CRN_ACT_RELU ? "relu" : "tanh", L, E ? "embed" : "one-hot",
           (double)dropout, ln ? " layer-norm" : "", n, r.max_rel, r.max_abs, r.where);
    if (ln) { /* every layer-norm tensor is there and has a gradient */
        int nln = 0;
        for (int i = 0; i < crn_model_num_tensors(g.m); i++) {
            const crn_tensor_info *t = crn_model_tensor(g.m, i);
            if (!strstr(t->name, ".ln_")) continue;
            nln++;
            size_t nzt = 0;
            for (size_t j = 0; j < t->cols; j++) nzt += a[t->offset + j] != 0;
            // (a relu unit that is off for the whole window has zero gradients)
            ck_assert_msg(nzt == t->cols || (act == CRN_ACT_RELU && 2 * nzt > t->cols),
                          "%s: %zu of %zu gradient entries non-zero", t->name, nzt, t->cols);
        }
        ck_assert_int_eq(nln, (int)L * (cell == CRN_CELL_LSTM ? 4 : 2));
    }
    ck_assert_msg(r.max_rel < GC_BOUND, "%s L=%u E=%u: max relative error %.3e at %s", cell_str(cell), L, E,
                  r.max_rel, r.where);
    free(a);
    case_free(&g);
}

static const struct { enum crn_cell c; enum crn_act a; } cells[] = {
    {CRN_CELL_RNN, CRN_ACT_TANH}, {CRN_CELL_RNN, CRN_ACT_RELU}, {CRN_CELL_LSTM, CRN_ACT_TANH}, {CRN_CELL_GRU, CRN_ACT_TANH}};

START_TEST(test_gradcheck_all) {
    int i = _i / 4, L = 1 + (_i / 2) % 2, E = (_i % 2) ? 5 : 0;
    run_case(cells[i].c, cells[i].a, (uint32_t)E, (uint32_t)L, 0.0f, 0);
}
END_TEST

/* the same sweep with layer normalisation (cell.h): every parameter,
 * the gains and the LSTM cell-state bias included */
START_TEST(test_gradcheck_layer_norm) {
    int i = _i / 4, L = 1 + (_i / 2) % 2, E = (_i % 2) ? 5 : 0;
    run_case(cells[i].c, cells[i].a, (uint32_t)E, (uint32_t)L, 0.0f, 1);
}
END_TEST

START_TEST(test_gradcheck_dropout) {
    run_case(CRN_CELL_LSTM, CRN_ACT_TANH, 0, 2, 0.3f, 0);
    run_case(CRN_CELL_GRU, CRN_ACT_TANH, 5, 3, 0.5f, 0);
    run_case(CRN_CELL_LSTM, CRN_ACT_TANH, 5, 2, 0.3f, 1);
}
END_TEST

START_TEST(test_gradcheck_can_fail) {
    gc_case g;
    case_setup(&g, CRN_CELL_GRU, CRN_ACT_TANH, 5, 2, 0.0f, 0, 77);
    real *a = analytic(&g);
    const crn_tensor_info *t = crn_model_find_tensor(g.m, "l0.w_h");
    ck_assert_ptr_nonnull(t);
    size_t k = t->offset + 7;
    ck_assert(fabs(a[k]) > 1e-4);
    a[k] *= 1.01; // a 1% error in a single entry
    gc_result r = check_grads(&g, a);
    printf("gradcheck with l0.w_h[7] perturbed by 1%%: max rel err %.3e (%s)\n", r.max_rel, r.where);
    ck_assert_msg(r.max_rel > GC_BOUND, "the perturbed gradient passed the check (%.3e)", r.max_rel);
    ck_assert_msg(strstr(r.where, "l0.w_h[7] ") != NULL, "worst entry reported at %s", r.where);
    free(a);
    case_free(&g);
}
END_TEST

START_TEST(test_backward_accumulates) {
    gc_case g;
    case_setup(&g, CRN_CELL_LSTM, CRN_ACT_TANH, 0, 2, 0.0f, 1, 5);
    real *a = analytic(&g); // zeroed, one backward
    ck_assert_int_eq(crn_model_backward(g.m), CRN_EINVAL); // it consumed its forward
    (void)eval_loss(&g);
    ck_assert_int_eq(crn_model_backward(g.m), 0); // the same window again adds
    const real *d = crn_model_grads(g.m);
    for (size_t k = 0; k < crn_model_num_params(g.m); k++) ck_assert(fabs(d[k] - 2 * a[k]) <= 1e-12 * (1 + fabs(a[k])));
    free(a);
    case_free(&g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_gradcheck_all, 0, 16);
    tcase_add_loop_test(tc, test_gradcheck_layer_norm, 0, 16);
    tcase_add_test(tc, test_gradcheck_dropout);
    tcase_add_test(tc, test_gradcheck_can_fail);
    tcase_add_test(tc, test_backward_accumulates);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); // keep the printed figures in order
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
