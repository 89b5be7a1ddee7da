/* test_overfit.c — a 2-layer LSTM trained with plain SGD (p -= lr * g, with
 * the gradient's global norm clipped at 5 so the first steps cannot blow up)
 * on one short mixed Korean/English sentence must memorise it: the mean loss
 * over the window drops below 0.05 bits per token. Every step starts from a
 * zero state, the whole sentence is one window (x = s[0..n-2], y = s[1..n-1]).
 * A second check: evaluating after training (eval mode, fresh state) gives
 * the same low loss, and greedy decoding from the first character through
 * crn_model_step reproduces the sentence. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "model.h"
#include "rng.h"

static const char *sentence = "한국어와 English가 섞인 짧은 문장을 외운다.";

/* minimal UTF-8 decoder for the test's own literal (valid by construction) */
static size_t decode(const char *s, uint32_t *cp, size_t cap) {
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && n < cap) {
        uint32_t c = *p;
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (len > 1) c &= 0xFFu >> (len + 1);
        for (int i = 1; i < len; i++) c = (c << 6) | (p[i] & 0x3F);
        cp[n++] = c;
        p += len;
    }
    return n;
}

START_TEST(test_lstm_overfits_sentence) {
    uint32_t cps[128], vocab[128], ids[128];
    size_t n = decode(sentence, cps, 128), V = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < V && vocab[j] != cps[i]) j++;
        if (j == V) vocab[V++] = cps[i];
        ids[i] = (uint32_t)j;
    }
    ck_assert_uint_gt(n, 20);
    const uint32_t T = (uint32_t)n - 1;
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .vocab = (uint32_t)V, .embed = 0, .hidden = 48, .layers = 2};
    crn_model *m = NULL;
    crn_state *st = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng rng;
    crn_rng_seed(&rng, 2026);
    crn_model_init(m, &rng);
    ck_assert_int_eq(crn_model_reserve(m, 1, T), 0);
    ck_assert_int_eq(crn_state_create(&st, m, 1), 0);
    float *p = crn_model_params(m), *g = crn_model_grads(m);
    const size_t np = crn_model_num_params(m);
    const float lr = 1.0f, clip = 5.0f;
    double bits = INFINITY, first = 0;
    int step = 0;
    const double t0 = crn_now();
    for (step = 0; step < 3000 && bits >= 0.05; step++) {
        double loss = 0;
        size_t count = 0;
        crn_state_reset(st);
        crn_model_zero_grads(m);
        ck_assert_int_eq(crn_model_forward(m, st, ids, ids + 1, 1, T, &rng, &loss, &count), 0);
        ck_assert_uint_eq(count, T);
        ck_assert_int_eq(crn_model_backward(m), 0);
        bits = loss / (double)count / log(2.0);
        if (step == 0) first = bits;
        double norm = 0;
        for (size_t k = 0; k < np; k++) norm += (double)g[k] * g[k];
        norm = sqrt(norm);
        ck_assert(isfinite(norm));
        float s = norm > clip ? (float)(clip / norm) : 1.0f;
        for (size_t k = 0; k < np; k++) p[k] -= lr * s * g[k];
    }
    printf("overfit: %zu tokens, vocab %zu: %.3f -> %.4f bits/token in %d SGD steps, %.2f s\n", (size_t)T, V, first,
           bits, step, crn_now() - t0);
    ck_assert_msg(bits < 0.05, "loss still %.4f bits/token after %d steps", bits, step);
    ck_assert(first > 3.0); // it started from (about) uniform: log2(V) bits

    /* evaluation mode from a fresh state agrees */
    double loss = 0;
    size_t count = 0;
    crn_state_reset(st);
    ck_assert_int_eq(crn_model_forward(m, st, ids, ids + 1, 1, T, NULL, &loss, &count), 0);
    ck_assert_msg(loss / count / log(2.0) < 0.06, "eval loss %.4f bits", loss / count / log(2.0));

    /* greedy sampling through crn_model_step reproduces the sentence */
    float logits[128];
    uint32_t tok = ids[0];
    crn_state_reset(st);
    for (uint32_t t = 0; t < T; t++) {
        ck_assert_int_eq(crn_model_step(m, st, &tok, logits), 0);
        uint32_t best = 0;
        for (uint32_t v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        ck_assert_msg(best == ids[t + 1], "greedy step %u: got token %u, want %u", t, best, ids[t + 1]);
        tok = best;
    }
    crn_state_destroy(st);
    crn_model_destroy(m);
}
END_TEST

int main(void) {
    crn_set_threads(1);
    Suite *s = suite_create("overfit");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lstm_overfits_sentence);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
