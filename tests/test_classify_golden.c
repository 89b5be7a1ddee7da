/* test_classify_golden.c — the float classifier (classify.c) against PyTorch:
 * nn.Embedding -> nn.LSTM / nn.GRU (bidirectional=True for the layers the
 * case names) over pack_padded_sequence (so padded steps are masked) ->
 * masked last/mean/max pooling -> nn.Linear, BCE-with-logits or cross-
 * entropy weighted per line. The fixtures tests/golden/clf-*.txt are written
 * by tools/make-golden.py in float64 from float32-exact inputs.
 *
 * Fixture: "golden-clf 1", header lines "key value" (case, cell, V, E, H, L,
 * C, pool, bidir, T, B), then blocks "kind name rows cols" followed by rows
 * of numbers (ids x T B, ids len 1 B, ids y 1 B, weights w 1 B, param NAME,
 * probs - B C, loss - 1 1, grad NAME), "end".
 *
 * Tolerance: normwise relative error (max |a - b| / max |b|) <= 2e-5 for
 * probabilities, loss and every gradient tensor; a perturbed fixture must
 * fail (the comparison can fail). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "common.h"
#include "kernels.h"
#include "rng.h"

#define TOL 2e-5

static const char *const CASES[] = {"clf-lstm-bi-all-last", "clf-lstm-bi-last-mean", "clf-gru-bi-all-max",
                                    "clf-lstm-fwd-last"};

typedef struct blk {
    char kind[16], name[32];
    size_t rows, cols;
    double *v;
} blk;

typedef struct fixture {
    crn_clf_config cfg;
    uint32_t T, B;
    blk b[128];
    int nb;
} fixture;

static void fixture_free(fixture *f) {
    for (int i = 0; i < f->nb; i++) free(f->b[i].v);
}

static const blk *find(const fixture *f, const char *kind, const char *name) {
    for (int i = 0; i < f->nb; i++)
        if (!strcmp(f->b[i].kind, kind) && !strcmp(f->b[i].name, name)) return &f->b[i];
    return NULL;
}

/* Parse; every read checked (a short or malformed fixture fails the test). */
static void load(fixture *f, const char *name) {
    char path[4096];
    const char *dir = getenv("CRN_GOLDEN_DIR");
    snprintf(path, sizeof path, "%s/%s.txt", dir ? dir : "tests/golden", name);
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    memset(f, 0, sizeof *f);
    char line[256], key[32], val[32];
    int magic = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (!strncmp(line, "golden-clf 1", 12)) {
            magic = 1;
            continue;
        }
        ck_assert(magic);
        if (!strcmp(line, "end\n")) break;
        blk b = {0};
        if (sscanf(line, "%15s %31s %zu %zu", b.kind, b.name, &b.rows, &b.cols) == 4) {
            ck_assert(f->nb < 128 && b.rows * b.cols > 0 && b.rows * b.cols < 1000000);
            b.v = malloc(b.rows * b.cols * sizeof *b.v);
            for (size_t i = 0; i < b.rows * b.cols; i++) ck_assert(fscanf(fp, "%lf", &b.v[i]) == 1);
            f->b[f->nb++] = b;
            continue;
        }
        ck_assert(sscanf(line, "%31s %31s", key, val) == 2);
        unsigned u = (unsigned)strtoul(val, NULL, 10);
        if (!strcmp(key, "cell")) ck_assert_int_eq(crn_cell_parse(val, &f->cfg.base.cell), 0);
        else if (!strcmp(key, "pool")) ck_assert_int_eq(crn_pool_parse(val, &f->cfg.pool), 0);
        else if (!strcmp(key, "bidir")) ck_assert_int_eq(crn_bidir_parse(val, &f->cfg.bidir), 0);
        else if (!strcmp(key, "V")) f->cfg.base.vocab = u;
        else if (!strcmp(key, "E")) f->cfg.base.embed = u;
        else if (!strcmp(key, "H")) f->cfg.base.hidden = u;
        else if (!strcmp(key, "L")) f->cfg.base.layers = u;
        else if (!strcmp(key, "C")) f->cfg.classes = u;
        else if (!strcmp(key, "T")) f->T = u;
        else if (!strcmp(key, "B")) f->B = u;
    }
    fclose(fp);
    ck_assert(magic && f->T > 0 && f->B > 0);
}

static double normwise(const float *a, const double *b, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d;
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return md / fmax(mr, 1e-12);
}

/* The fixture's classifier with its parameters, reserved for (B, T). */
static crn_clf *make_model(const fixture *f) {
    crn_clf *m = NULL;
    ck_assert_int_eq(crn_clf_create(&m, &f->cfg), 0);
    ck_assert_int_eq(crn_clf_reserve(m, f->B, f->T), 0);
    for (int i = 0; i < crn_clf_num_tensors(m); i++) {
        const crn_tensor_info *t = crn_clf_tensor(m, i);
        const blk *b = find(f, "param", t->name);
        ck_assert_msg(b && b->rows == t->rows && b->cols == t->cols, "param %s missing or misshaped", t->name);
        for (size_t j = 0; j < t->rows * t->cols; j++) crn_clf_params(m)[t->offset + j] = (float)b->v[j];
    }
    return m;
}

/* Worst error over probabilities, loss and gradients of one fixture. */
static double run(fixture *f) {
    crn_clf *m = make_model(f);
    const blk *bx = find(f, "ids", "x"), *bl = find(f, "ids", "len"), *by = find(f, "ids", "y"), *bw = find(f, "weights", "w");
    const blk *bp = find(f, "probs", "-"), *bs = find(f, "loss", "-");
    ck_assert(bx && bl && by && bw && bp && bs);
    uint32_t x[256], len[32], y[32];
    float w[32];
    ck_assert(f->T * f->B <= 256 && f->B <= 32);
    for (size_t i = 0; i < (size_t)f->T * f->B; i++) x[i] = (uint32_t)bx->v[i];
    for (uint32_t b = 0; b < f->B; b++) {
        len[b] = (uint32_t)bl->v[b];
        y[b] = (uint32_t)by->v[b];
        w[b] = (float)bw->v[b];
    }
    double loss = 0;
    crn_clf_zero_grads(m);
    ck_assert_int_eq(crn_clf_forward(m, x, len, y, w, f->B, f->T, NULL, &loss), 0);
    ck_assert_int_eq(crn_clf_backward(m), 0);
    double worst = normwise(crn_clf_probs(m), bp->v, (size_t)f->B * f->cfg.classes);
    float l = (float)(loss / f->B);
    worst = fmax(worst, normwise(&l, bs->v, 1));
    for (int i = 0; i < crn_clf_num_tensors(m); i++) {
        const crn_tensor_info *t = crn_clf_tensor(m, i);
        const blk *g = find(f, "grad", t->name);
        ck_assert_msg(g != NULL, "grad %s missing", t->name);
        double e = normwise(crn_clf_grads(m) + t->offset, g->v, t->rows * t->cols);
        if (e > TOL) fprintf(stderr, "  grad %s: %.3g\n", t->name, e);
        worst = fmax(worst, e);
    }
    crn_clf_destroy(m);
    return worst;
}

START_TEST(test_case) {
    fixture f;
    load(&f, CASES[_i]);
    double e = run(&f);
    fprintf(stderr, "%s: worst normwise error %.3g\n", CASES[_i], e);
    ck_assert_double_le(e, TOL);
    fixture_free(&f);
}
END_TEST

START_TEST(test_perturbed_fails) {
    fixture f;
    load(&f, CASES[0]);
    blk *g = (blk *)find(&f, "grad", "l0r.w_h");
    ck_assert_ptr_nonnull(g);
    size_t big = 0;
    for (size_t i = 1; i < g->rows * g->cols; i++)
        if (fabs(g->v[i]) > fabs(g->v[big])) big = i;
    g->v[big] *= 1.01;
    ck_assert_double_gt(run(&f), TOL);
    fixture_free(&f);
}
END_TEST

/* The inference tables (embed @ w_x + b_x gathered) give the product path's
 * probabilities up to float rounding, in every fixture. */
START_TEST(test_inference_tables) {
    fixture f;
    load(&f, CASES[_i]);
    crn_clf *m = make_model(&f);
    const blk *bx = find(&f, "ids", "x"), *bl = find(&f, "ids", "len");
    uint32_t x[256], len[32];
    for (size_t i = 0; i < (size_t)f.T * f.B; i++) x[i] = (uint32_t)bx->v[i];
    for (uint32_t b = 0; b < f.B; b++) len[b] = (uint32_t)bl->v[b];
    const size_t n = (size_t)f.B * f.cfg.classes;
    float p0[64], p1[64];
    ck_assert_int_eq(crn_clf_forward(m, x, len, NULL, NULL, f.B, f.T, NULL, NULL), 0);
    memcpy(p0, crn_clf_probs(m), n * sizeof *p0);
    ck_assert_int_eq(crn_clf_inference_tables(m, 1), 0);
    ck_assert_int_eq(crn_clf_forward(m, x, len, NULL, NULL, f.B, f.T, NULL, NULL), 0);
    memcpy(p1, crn_clf_probs(m), n * sizeof *p1);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)p0[i] - p1[i]));
    ck_assert_double_le(worst, 1e-6);
    crn_clf_destroy(m);
    fixture_free(&f);
}
END_TEST

/* The inference path (no labels) against PyTorch's probabilities too, on
 * one thread and on two. */
START_TEST(test_inference_golden) {
    fixture f;
    load(&f, CASES[_i]);
    crn_clf *m = make_model(&f);
    const blk *bx = find(&f, "ids", "x"), *bl = find(&f, "ids", "len"), *bp = find(&f, "probs", "-");
    uint32_t x[256], len[32];
    for (size_t i = 0; i < (size_t)f.T * f.B; i++) x[i] = (uint32_t)bx->v[i];
    for (uint32_t b = 0; b < f.B; b++) len[b] = (uint32_t)bl->v[b];
    for (int threads = 1; threads <= 2; threads++) {
        crn_set_threads(threads);
        ck_assert_int_eq(crn_clf_forward(m, x, len, NULL, NULL, f.B, f.T, NULL, NULL), 0);
        ck_assert_double_le(normwise(crn_clf_probs(m), bp->v, (size_t)f.B * f.cfg.classes), TOL);
    }
    crn_set_threads(1);
    crn_clf_destroy(m);
    fixture_free(&f);
}
END_TEST

/* Batching: a window of 61 lines of lengths 1..40 in a shuffled order gives,
 * row for row, the probabilities of each line alone, on 1 and 2 threads
 * (the inference rows are sorted and split across the threads inside). */
START_TEST(test_inference_batching) {
    enum { NB = 61, NT = 40, V = 23 };
    crn_clf_config cfg = {.base = {.cell = (enum crn_cell)_i, .act = CRN_ACT_TANH, .vocab = V, .embed = 8,
                                   .hidden = 24, .layers = _i == CRN_CELL_LSTM ? 2 : 1},
                          .classes = _i == CRN_CELL_RNN ? 3 : 2, .pool = CRN_POOL_MAX, .bidir = CRN_BIDIR_ALL};
    if (_i == CRN_CELL_RNN) cfg.pool = CRN_POOL_MEAN;
    crn_clf *m = NULL;
    ck_assert_int_eq(crn_clf_create(&m, &cfg), 0);
    crn_rng rng;
    crn_rng_seed(&rng, 7 + (uint64_t)_i);
    crn_clf_init(m, &rng);
    ck_assert_int_eq(crn_clf_reserve_predict(m, NB, NT), 0);
    ck_assert_int_eq(crn_clf_inference_tables(m, 1), 0);
    static uint32_t x[NT * NB], len[NB], one[NT];
    for (int b = 0; b < NB; b++) len[b] = 1 + (uint32_t)crn_rng_below(&rng, NT);
    len[5] = NT;
    for (int i = 0; i < NT * NB; i++) x[i] = (uint32_t)crn_rng_below(&rng, V);
    const uint32_t C = cfg.classes;
    static float alone[NB * 3];
    crn_set_threads(1);
    for (int b = 0; b < NB; b++) {
        for (uint32_t t = 0; t < len[b]; t++) one[t] = x[t * NB + b];
        ck_assert_int_eq(crn_clf_forward(m, one, &len[b], NULL, NULL, 1, len[b], NULL, NULL), 0);
        memcpy(alone + (size_t)b * C, crn_clf_probs(m), C * sizeof(float));
    }
    for (int threads = 1; threads <= 2; threads++) {
        crn_set_threads(threads);
        ck_assert_int_eq(crn_clf_forward(m, x, len, NULL, NULL, NB, NT, NULL, NULL), 0);
        double worst = 0;
        for (size_t k = 0; k < (size_t)NB * C; k++) worst = fmax(worst, fabs((double)crn_clf_probs(m)[k] - alone[k]));
        ck_assert_double_le(worst, 1e-5);
    }
    /* and the rows are the caller's: swapping two lines swaps their answers */
    for (uint32_t t = 0; t < NT; t++) {
        uint32_t v = x[t * NB + 0];
        x[t * NB + 0] = x[t * NB + 5];
        x[t * NB + 5] = v;
    }
    uint32_t l0 = len[0];
    len[0] = len[5];
    len[5] = l0;
    ck_assert_int_eq(crn_clf_forward(m, x, len, NULL, NULL, NB, NT, NULL, NULL), 0);
    for (uint32_t k = 0; k < C; k++) {
        ck_assert_double_le(fabs((double)crn_clf_probs(m)[k] - alone[5 * C + k]), 1e-5);
        ck_assert_double_le(fabs((double)crn_clf_probs(m)[5 * C + k] - alone[k]), 1e-5);
    }
    ck_assert_double_gt(fabs((double)alone[0] - alone[5 * C]), 1e-4); // the two lines do differ
    crn_set_threads(1);
    crn_clf_destroy(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("classify_golden");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_case, 0, (int)(sizeof CASES / sizeof *CASES));
    tcase_add_test(tc, test_perturbed_fails);
    tcase_add_loop_test(tc, test_inference_tables, 0, (int)(sizeof CASES / sizeof *CASES));
    tcase_add_loop_test(tc, test_inference_golden, 0, (int)(sizeof CASES / sizeof *CASES));
    tcase_add_loop_test(tc, test_inference_batching, CRN_CELL_RNN, CRN_CELL_GRU + 1);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
