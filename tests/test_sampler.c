/* test_sampler.c — sampling order and filters, the generation loop (seeded
 * determinism, argmax, --stop, --match, streaming UTF-8 in every unit, regex
 * limits), beam search against enumeration, and the REPL command parser.
 * Models are built in memory: random ones (crn_model_init, scaled up so the
 * distributions are peaked) and ones with known, constant probabilities
 * (every weight zero, so the logits are the output bias). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "regex.h"
#include "rng.h"
#include "sampler.h"
#include "utf8.h"
#include "vocab.h"

static const char *TEXT = "abc가나다 .\n";

static crn_vocab *make_vocab(const char *text, enum crn_unit unit) {
    crn_vocab *v = NULL;
    ck_assert_int_eq(crn_vocab_create(&v, unit, CRN_NORM_NFC), 0);
    ck_assert_int_eq(crn_vocab_count(v, (const uint8_t *)text, strlen(text)), 0);
    ck_assert_int_eq(crn_vocab_finalize(v, 1), 0);
    return v;
}

static crn_model *make_model(uint32_t V, enum crn_cell cell, uint64_t seed, float scale) {
    crn_model_config cfg = {.cell = cell, .act = CRN_ACT_TANH, .vocab = V, .embed = 0, .hidden = 8, .layers = 1};
    crn_model *m = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng r;
    crn_rng_seed(&r, seed);
    crn_model_init(m, &r);
    real *p = crn_model_params(m);
    for (size_t i = 0; i < crn_model_num_params(m); i++) p[i] *= scale;
    return m;
}

/* Every weight zero and out_b = log(prob): the same distribution at every step. */
static crn_model *make_const_model(uint32_t V, const double *prob) {
    crn_model *m = make_model(V, CRN_CELL_LSTM, 1, 0.0f);
    const crn_tensor_info *ob = crn_model_find_tensor(m, "out_b");
    ck_assert_ptr_nonnull(ob);
    real *b = crn_model_params(m) + ob->offset;
    for (uint32_t i = 0; i < V; i++) b[i] = prob[i] > 0 ? (real)log(prob[i]) : (real)-1e4;
    return m;
}

static uint32_t id_of(const crn_vocab *v, const char *tok) {
    uint32_t id = crn_vocab_lookup(v, (const uint8_t *)tok, strlen(tok));
    ck_assert_uint_ne(id, CRN_UNK);
    return id;
}

typedef struct sink {
    char buf[65536];
    size_t len;
    int chunks;
    int bad_utf8; /* chunks that were not valid UTF-8 on their own */
} sink;

static int sink_emit(void *user, const uint8_t *s, size_t n) {
    sink *k = user;
    crn_textpos bad;
    if (crn_utf8_validate(s, n, &bad) < 0) k->bad_utf8++;
    if (k->len + n < sizeof k->buf) {
        memcpy(k->buf + k->len, s, n);
        k->len += n;
    }
    k->chunks++;
    return 0;
}

/* Prime with prompt (fresh state), generate, check the streamed bytes equal
 * the result text; returns the result (text copied into k). */
static int gen_text(crn_model *m, const crn_vocab *v, const crn_sample_settings *s, const char *prompt, sink *k,
                    crn_gen_result *res) {
    crn_generator *g = NULL;
    ck_assert_int_eq(crn_generator_create(&g, m, v, s), 0);
    memset(k, 0, sizeof *k);
    int err = crn_generator_prime(g, (const uint8_t *)prompt, strlen(prompt), NULL);
    if (!err) err = crn_generator_run(g, sink_emit, k, res);
    if (!err) {
        ck_assert_uint_eq(res->text_len, k->len);
        ck_assert(!memcmp(res->text, k->buf, k->len));
        ck_assert_int_eq(k->bad_utf8, 0);
    }
    crn_generator_destroy(g);
    return err;
}

START_TEST(test_determinism) {
    crn_vocab *v = make_vocab(TEXT, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 7, 4.0f);
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = 300;
    s.seed = 42;
    static sink a, b, c;
    crn_gen_result ra, rb, rc;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &a, &ra), 0);
    ck_assert_int_eq(gen_text(m, v, &s, "a", &b, &rb), 0);
    ck_assert_uint_eq(ra.tokens, 300);
    ck_assert_int_eq(ra.reason, CRN_GEN_STOP_LENGTH);
    ck_assert_uint_eq(crn_utf8_count((const uint8_t *)a.buf, a.len), 300);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert(!memcmp(a.buf, b.buf, a.len));
    ck_assert(ra.mean_logprob == rb.mean_logprob);
    ck_assert(ra.mean_logprob < 0);
    s.seed = 43;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &c, &rc), 0);
    ck_assert(c.len != a.len || memcmp(a.buf, c.buf, a.len));
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* Temperature 0: every generated token is the argmax (excluding <unk>) of the
 * logits at that step, checked by replaying the sequence on a fresh state. */
START_TEST(test_argmax) {
    crn_vocab *v = make_vocab(TEXT, CRN_UNIT_CODEPOINT);
    uint32_t V = crn_vocab_size(v);
    crn_model *m = make_model(V, CRN_CELL_GRU, 11, 3.0f);
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = 100;
    s.temperature = 0;
    s.top_k = 2; /* irrelevant at T = 0 */
    static sink k;
    crn_gen_result res;
    ck_assert_int_eq(gen_text(m, v, &s, "가", &k, &res), 0);
    ck_assert_uint_eq(res.tokens, 100);
    uint32_t ids[512];
    long long n = crn_vocab_encode(v, (const uint8_t *)k.buf, k.len, ids, NULL);
    ck_assert_int_eq(n, 100);
    crn_state *st = NULL;
    ck_assert_int_eq(crn_state_create(&st, m, 1), 0);
    real logits[64];
    uint32_t tok = id_of(v, "가");
    double lp = 0;
    for (long long t = 0; t < n; t++) {
        ck_assert_int_eq(crn_model_step(m, st, &tok, logits), 0);
        uint32_t best = 1;
        for (uint32_t i = 2; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        ck_assert_uint_eq(ids[t], best);
        double mx = -INFINITY, sum = 0;
        for (uint32_t i = 0; i < V; i++) mx = fmax(mx, logits[i]);
        for (uint32_t i = 0; i < V; i++) sum += exp(logits[i] - mx);
        lp += logits[best] - mx - log(sum);
        tok = ids[t];
    }
    ck_assert_double_eq_tol(res.mean_logprob, lp / (double)n, 1e-9);
    crn_state_destroy(st);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* Issue 10 item 5: a tiny positive temperature is greedy. 0x1p-1074 (the
 * least subnormal) made 1/T infinite and every weight NaN, and the draw fell
 * back to the smallest id, token 1, whatever the model said. */
START_TEST(test_tiny_temperature) {
    const double prob[6] = {0.01, 0.09, 0.2, 0.5, 0.15, 0.05}; /* the argmax is id 3 */
    crn_model *m = make_const_model(6, prob);
    crn_state *st = NULL;
    ck_assert_int_eq(crn_state_create(&st, m, 1), 0);
    real logits[6];
    uint32_t one = 1;
    ck_assert_int_eq(crn_model_step(m, st, &one, logits), 0);
    void *scratch = malloc(crn_sample_scratch_size(6));
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    const double temps[] = {0x1p-1074, 0x1p-1022, 1e-300, 1e-12, 9.99e-7, 0};
    crn_rng r;
    crn_rng_seed(&r, 9);
    for (size_t i = 0; i < sizeof temps / sizeof *temps; i++) {
        s.temperature = temps[i];
        ck_assert_int_eq(crn_sample_settings_check(&s), 0);
        for (int k = 0; k < 50; k++) {
            uint32_t t = crn_sample_logits(logits, 6, &s, &r, scratch);
            ck_assert_msg(t == 3, "T = %g drew token %u, not the most likely 3", temps[i], t);
        }
    }
    /* at the minimum itself sampling is still greedy in effect (no NaN) */
    s.temperature = CRN_SAMPLE_MIN_TEMPERATURE;
    ck_assert_uint_eq(crn_sample_logits(logits, 6, &s, &r, scratch), 3);
    /* the REPL's :temp says so too: tests/test_repl_cmd.c */
    crn_sample_settings_free(&s);
    free(scratch);
    crn_state_destroy(st);
    crn_model_destroy(m);
}
END_TEST

/* Known distribution over 9 tokens; top-k and top-p only ever return the
 * allowed set, with frequencies matching the renormalised probabilities
 * (each within 5 standard deviations). */
static void check_filter(const double *prob, uint32_t V, const crn_sample_settings *s, const int *allowed) {
    crn_model *m = make_const_model(V, prob);
    crn_state *st = NULL;
    ck_assert_int_eq(crn_state_create(&st, m, 1), 0);
    real logits[16];
    uint32_t zero = 1;
    ck_assert_int_eq(crn_model_step(m, st, &zero, logits), 0);
    void *scratch = malloc(crn_sample_scratch_size(V));
    crn_rng r;
    crn_rng_seed(&r, 5);
    double mass = 0, T = s->temperature;
    double q[16];
    for (uint32_t i = 0; i < V; i++) {
        q[i] = allowed[i] ? pow(prob[i], 1.0 / T) : 0;
        mass += q[i];
    }
    enum { N = 40000 };
    long count[16] = {0};
    for (int i = 0; i < N; i++) {
        uint32_t t = crn_sample_logits(logits, V, s, &r, scratch);
        ck_assert_uint_lt(t, V);
        ck_assert_msg(allowed[t], "token %u is outside the allowed set", t);
        count[t]++;
    }
    for (uint32_t i = 0; i < V; i++) {
        double pi = q[i] / mass, expect = N * pi, sd = sqrt(N * pi * (1 - pi));
        ck_assert_msg(fabs(count[i] - expect) <= 5 * sd + 1e-9, "token %u: %ld draws, expected %.1f ± %.1f", i,
                      count[i], expect, sd);
    }
    free(scratch);
    crn_state_destroy(st);
    crn_model_destroy(m);
}

START_TEST(test_top_k_top_p) {
    /* id 0 is <unk>: never drawn even though it has mass */
    const double prob[9] = {0.10, 0.30, 0.05, 0.20, 0.15, 0.08, 0.06, 0.04, 0.02};
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    int all[9] = {0, 1, 1, 1, 1, 1, 1, 1, 1};
    check_filter(prob, 9, &s, all);
    s.top_k = 3; /* 0.30, 0.20, 0.15 */
    int k3[9] = {0, 1, 0, 1, 1, 0, 0, 0, 0};
    check_filter(prob, 9, &s, k3);
    s.top_k = 0;
    s.top_p = 0.6; /* of the mass without <unk> (0.9): 0.30+0.20 = 0.5/0.9 = 0.56 < 0.6, +0.15 -> 0.72 */
    check_filter(prob, 9, &s, k3);
    s.top_p = 0.5; /* 0.30+0.20 = 0.556 >= 0.5 */
    int p2[9] = {0, 1, 0, 1, 0, 0, 0, 0, 0};
    check_filter(prob, 9, &s, p2);
    s.top_k = 4;   /* 0.30 .20 .15 .08 -> 0.73; p = 0.9 * 0.73 = .657: .30+.20+.15 = .65 < .657 -> all 4 */
    s.top_p = 0.9;
    int k4[9] = {0, 1, 0, 1, 1, 1, 0, 0, 0};
    check_filter(prob, 9, &s, k4);
    s.top_k = 0;
    s.top_p = 1e-9; /* the single most likely */
    int one[9] = {0, 1, 0, 0, 0, 0, 0, 0, 0};
    check_filter(prob, 9, &s, one);
    s.top_p = 1;
    s.temperature = 0.5; /* sharper: p^2 renormalised */
    check_filter(prob, 9, &s, all);
    s.temperature = 2;
    s.top_k = 3;
    check_filter(prob, 9, &s, k3);
}
END_TEST

/* The whole loop honours top-k: a known distribution, text from the allowed tokens only. */
START_TEST(test_top_k_generator) {
    crn_vocab *v = make_vocab("abcde", CRN_UNIT_CODEPOINT);
    double prob[6] = {0, 0.1, 0.4, 0.3, 0.15, 0.05}; /* <unk> a b c d e */
    crn_model *m = make_const_model(6, prob);
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.top_k = 2;
    s.length = 2000;
    static sink k;
    crn_gen_result res;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
    ck_assert_uint_eq(k.len, 2000);
    double lp = 0;
    for (size_t i = 0; i < k.len; i++) {
        ck_assert(k.buf[i] == 'b' || k.buf[i] == 'c');
        lp += log(k.buf[i] == 'b' ? 0.4 : 0.3);
    }
    /* mean log-probability under the model itself (not the top-k renormalised one) */
    ck_assert_double_eq_tol(res.mean_logprob, lp / 2000, 1e-5);
    s.temperature = 0.7; /* the other path to the normaliser */
    ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
    lp = 0;
    for (size_t i = 0; i < k.len; i++) lp += log(k.buf[i] == 'b' ? 0.4 : 0.3);
    ck_assert_double_eq_tol(res.mean_logprob, lp / 2000, 1e-5);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

START_TEST(test_stop) {
    crn_vocab *v = make_vocab(TEXT, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 3, 2.0f);
    crn_regex *re = NULL;
    const char *pat = "[가나]+[다.]";
    ck_assert_int_eq(crn_regex_compile(&re, pat, 0), 0);
    int stopped = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        crn_sample_settings s;
        crn_sample_settings_init(&s);
        s.length = 200;
        s.seed = seed;
        ck_assert_int_eq(crn_sample_settings_add_stop(&s, pat), 0);
        ck_assert_int_eq(crn_sample_settings_add_stop(&s, "zzz"), 0);
        static sink keep, cut;
        crn_gen_result rk, rc;
        s.keep_stop = 1;
        ck_assert_int_eq(gen_text(m, v, &s, "a", &keep, &rk), 0);
        s.keep_stop = 0;
        ck_assert_int_eq(gen_text(m, v, &s, "a", &cut, &rc), 0);
        ck_assert_int_eq(rk.reason, rc.reason);
        size_t ms, me;
        int found = crn_regex_search(re, (const uint8_t *)keep.buf, keep.len, 0, &ms, &me);
        ck_assert_int_ge(found, 0);
        if (rk.reason == CRN_GEN_STOP_REGEX) {
            stopped++;
            /* the first match ends the kept text, and the cut text is what precedes it */
            ck_assert_int_eq(found, 1);
            ck_assert_uint_eq(me, keep.len);
            ck_assert_uint_eq(cut.len, ms);
            ck_assert(!memcmp(cut.buf, keep.buf, ms));
        } else {
            ck_assert_int_eq(rk.reason, CRN_GEN_STOP_LENGTH);
            ck_assert_int_eq(found, 0);
            ck_assert_uint_eq(keep.len, cut.len);
        }
        ck_assert_int_eq(crn_regex_search(re, (const uint8_t *)cut.buf, cut.len, 0, NULL, NULL), 0);
        crn_sample_settings_free(&s);
    }
    ck_assert_int_gt(stopped, 5);
    crn_regex_destroy(re);
    /* patterns that match the empty string or do not compile are refused */
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    ck_assert_int_eq(crn_sample_settings_add_stop(&s, "x*"), CRN_EINVAL);
    ck_assert_int_eq(crn_sample_settings_add_stop(&s, "(unclosed"), CRN_EREGEX);
    ck_assert_int_eq(s.n_stop, 0);
    crn_sample_settings_free(&s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* --match: every output that ends with reason "match" matches in full, an
 * output cut by --length is still a possible prefix; with nothing able to
 * start a match the reason is "no_continuation". */
START_TEST(test_match) {
    crn_vocab *v = make_vocab(TEXT, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 5, 2.0f);
    const char *pats[] = {"[가-힣 ]{3,10}[.]", "a(b|c)+\\.", "(가나)+다"};
    for (size_t pi = 0; pi < CRN_ARRAY_LEN(pats); pi++) {
        crn_regex *re = NULL;
        ck_assert_int_eq(crn_regex_compile(&re, pats[pi], CRN_REGEX_ANCHORED | CRN_REGEX_ENDANCHORED), 0);
        int complete = 0;
        for (uint64_t seed = 1; seed <= 30; seed++) {
            crn_sample_settings s;
            crn_sample_settings_init(&s);
            s.length = 60;
            s.seed = seed;
            s.top_k = seed % 3 ? 0 : 5;
            ck_assert_int_eq(crn_sample_settings_set_match(&s, pats[pi]), 0);
            static sink k;
            crn_gen_result res;
            ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
            int st = crn_regex_prefix(re, (const uint8_t *)k.buf, k.len);
            if (res.reason == CRN_GEN_STOP_MATCH) {
                complete++;
                ck_assert_msg(st == CRN_PREFIX_COMPLETE || st == CRN_PREFIX_EXTENSIBLE,
                              "'%.*s' does not match '%s'", (int)k.len, k.buf, pats[pi]);
            } else {
                /* ran out of length, or (top-k leaving too few candidates) of
                 * continuations: still a possible prefix */
                if (res.reason == CRN_GEN_STOP_NO_CONTINUATION) ck_assert_uint_ne(s.top_k, 0);
                else ck_assert_int_eq(res.reason, CRN_GEN_STOP_LENGTH);
                ck_assert_int_eq(st, CRN_PREFIX_PARTIAL);
            }
            crn_sample_settings_free(&s);
        }
        ck_assert_msg(complete >= 15, "pattern %s: only %d of 30 complete", pats[pi], complete);
        crn_regex_destroy(re);
    }
    /* nothing in the vocabulary can start a match */
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    ck_assert_int_eq(crn_sample_settings_set_match(&s, "xyz"), 0);
    static sink k;
    crn_gen_result res;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
    ck_assert_int_eq(res.reason, CRN_GEN_STOP_NO_CONTINUATION);
    ck_assert_uint_eq(k.len, 0);
    /* temperature 0 with --match: the most likely acceptable token each time */
    s.temperature = 0;
    ck_assert_int_eq(crn_sample_settings_set_match(&s, "[abc]{5}"), 0);
    ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
    ck_assert_int_eq(res.reason, CRN_GEN_STOP_MATCH);
    ck_assert_uint_eq(k.len, 5);
    crn_sample_settings_free(&s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* Every unit streams valid UTF-8 chunks; in jamo mode --match sees syllables. */
START_TEST(test_units_utf8) {
    const char *text = "한국어 문장입니다. 가나다라 마바사! 하늘과 바람과 별과 시.\n"
                       "e\xCC\x81t\xC3\xA9 na\xC3\xAFve \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ok?\n";
    enum crn_unit units[] = {CRN_UNIT_CODEPOINT, CRN_UNIT_GRAPHEME, CRN_UNIT_JAMO};
    for (size_t u = 0; u < 3; u++) {
        crn_vocab *v = make_vocab(text, units[u]);
        crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 21 + u, 2.0f);
        for (uint64_t seed = 1; seed <= 10; seed++) {
            crn_sample_settings s;
            crn_sample_settings_init(&s);
            s.length = 200;
            s.seed = seed;
            static sink k;
            crn_gen_result res;
            ck_assert_int_eq(gen_text(m, v, &s, "한", &k, &res), 0); /* gen_text checks every chunk */
            ck_assert_int_gt(k.chunks, 10);
            crn_textpos bad;
            ck_assert_int_eq(crn_utf8_validate((const uint8_t *)k.buf, k.len, &bad), 0);
            if (units[u] == CRN_UNIT_JAMO) {
                /* with a stop pattern in play too */
                ck_assert_int_eq(crn_sample_settings_add_stop(&s, "[다시]\\."), 0);
                ck_assert_int_eq(gen_text(m, v, &s, "한", &k, &res), 0);
                ck_assert_int_eq(crn_sample_settings_set_match(&s, "[가-힣]{2,4}[ .!]"), 0);
                crn_sample_settings_clear_stops(&s);
                ck_assert_int_eq(gen_text(m, v, &s, "한", &k, &res), 0);
                crn_regex *re = NULL;
                ck_assert_int_eq(crn_regex_compile(&re, s.match, CRN_REGEX_ANCHORED | CRN_REGEX_ENDANCHORED), 0);
                int st = crn_regex_prefix(re, (const uint8_t *)k.buf, k.len);
                ck_assert_msg(res.reason == CRN_GEN_STOP_MATCH && (st == CRN_PREFIX_COMPLETE || st == CRN_PREFIX_EXTENSIBLE),
                              "jamo match: reason %s, '%.*s'", crn_gen_stop_name(res.reason), (int)k.len, k.buf);
                crn_regex_destroy(re);
            }
            crn_sample_settings_free(&s);
        }
        crn_model_destroy(m);
        crn_vocab_destroy(v);
    }
}
END_TEST

/* Is s (n bytes) unchanged by NFC? */
static int is_nfc(const char *s, size_t n) {
    uint8_t *o = NULL;
    size_t on = 0;
    ck_assert_int_eq(crn_utf8_normalize(&o, &on, (const uint8_t *)s, n, CRN_NORM_NFC), 0);
    int same = on == n && !memcmp(o, s, n);
    free(o);
    return same;
}

/* The last code point of s (n > 0 bytes). */
static int32_t last_cp_of(const char *s, size_t n, size_t *len) {
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--;
    int32_t cp = -1;
    if (i > 0) crn_utf8_decode((const uint8_t *)s + i - 1, n - i + 1, &cp);
    *len = n - i + 1;
    return cp;
}

/* Any conjoining jamo (U+1100..U+11FF) in s? */
static int has_jamo(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = crn_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        ck_assert_int_gt(l, 0);
        if (cp >= 0x1100 && cp <= 0x11FF) return 1;
        i += (size_t)l;
    }
    return 0;
}

/* Issue 10 item 2: jamo unit across the prompt boundary and at the end.
 * The prompt 가 is fed as L V; a continuation starting with a final consonant
 * must print the completed syllable (각/간, res.replaced = the prompt's 3
 * bytes), never a bare U+11A8; the text never contains a jamo; --length
 * counts characters (and a syllable is finished, never cut). Before the fix
 * the text began with bare finals, ended in bare leading consonants, and
 * had `length` jamo tokens (fewer characters). */
START_TEST(test_jamo_prompt_boundary) {
    crn_vocab *v = make_vocab("가각간나난 다닥\n", CRN_UNIT_JAMO);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 5, 2.0f);
    const char *prompts[] = {"가", "\xE1\x84\x80\xE1\x85\xA1" /* 가 typed as conjoining L V */, "나 가"};
    for (int pi = 0; pi < 3; pi++) {
        int completed = 0, plain = 0;
        const char *prompt = prompts[pi];
        size_t pn = strlen(prompt);
        for (uint64_t seed = 1; seed <= 200; seed++) {
            crn_sample_settings s;
            crn_sample_settings_init(&s);
            s.length = 1 + seed % 6;
            s.seed = seed;
            s.temperature = 1.5;
            static sink k;
            crn_gen_result res;
            ck_assert_int_eq(gen_text(m, v, &s, prompt, &k, &res), 0);
            ck_assert_int_eq(res.reason, CRN_GEN_STOP_LENGTH);
            ck_assert_msg(crn_utf8_count((const uint8_t *)k.buf, k.len) == s.length, "seed %llu: %zu chars, want %u",
                          (unsigned long long)seed, crn_utf8_count((const uint8_t *)k.buf, k.len), s.length);
            ck_assert_msg(!has_jamo(k.buf, k.len), "seed %llu: a bare jamo in '%.*s'", (unsigned long long)seed,
                          (int)k.len, k.buf);
            /* the prompt (minus what the text replaces) + the text reads as NFC text */
            static char full[70000];
            size_t keep = pn - res.replaced;
            memcpy(full, prompt, keep);
            memcpy(full + keep, k.buf, k.len);
            if (pi != 1) ck_assert_msg(is_nfc(full, keep + k.len), "seed %llu: '%.*s' is not NFC",
                                       (unsigned long long)seed, (int)(keep + k.len), full);
            if (res.replaced) {
                ck_assert_uint_eq(res.replaced, pi == 1 ? 6 : 3);
                int32_t cp;
                ck_assert_int_eq(crn_utf8_decode((const uint8_t *)k.buf, k.len, &cp), 3);
                ck_assert_msg(cp > 0xAC00 && cp <= 0xAC1B, "seed %llu: the text starts with U+%04X, not 가+final",
                              (unsigned long long)seed, (unsigned)cp);
                completed++;
            } else {
                plain++;
            }
            crn_sample_settings_free(&s);
        }
        ck_assert_msg(completed >= 10 && plain >= 10, "prompt %d: %d completed, %d plain", pi, completed, plain);
    }
    /* the prime reports the open syllable's bytes; a closed one is not carried */
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = 3;
    crn_generator *g = NULL;
    ck_assert_int_eq(crn_generator_create(&g, m, v, &s), 0);
    crn_prime_info info;
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"가", 3, &info), 0);
    ck_assert_uint_eq(info.open_raw, 3);
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"각", 3, &info), 0);
    ck_assert_uint_eq(info.open_raw, 0);
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"가 ", 4, &info), 0);
    ck_assert_uint_eq(info.open_raw, 0);
    /* REPL with the state kept: every turn's prompt carries its syllable, and
     * a run without a new prompt continues the last one's: an L V syllable it
     * ended in may be completed (restated) */
    int completed = 0, continued = 0;
    for (int turn = 0; turn < 60; turn++) {
        crn_gen_result res;
        static sink k;
        memset(&k, 0, sizeof k);
        ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"다", 3, &info), 0);
        ck_assert_int_eq(crn_generator_run(g, sink_emit, &k, &res), 0);
        ck_assert(!has_jamo(k.buf, k.len));
        ck_assert_uint_eq(crn_utf8_count((const uint8_t *)k.buf, k.len), 3);
        if (res.replaced) {
            int32_t cp;
            crn_utf8_decode((const uint8_t *)k.buf, k.len, &cp);
            ck_assert(cp > 0xB2E4 && cp <= 0xB2FF); /* 다 + a final */
            completed++;
        }
        size_t last_len = 0;
        int32_t last = last_cp_of(k.buf, k.len, &last_len);
        memset(&k, 0, sizeof k);
        ck_assert_int_eq(crn_generator_run(g, sink_emit, &k, &res), 0);
        ck_assert(!has_jamo(k.buf, k.len));
        if (res.replaced) {
            int32_t cp;
            crn_utf8_decode((const uint8_t *)k.buf, k.len, &cp);
            ck_assert_uint_eq(res.replaced, 3);
            ck_assert_msg(last >= 0xAC00 && (last - 0xAC00) % 28 == 0 && cp > last && cp <= last + 27,
                          "U+%04X restated as U+%04X", (unsigned)last, (unsigned)cp);
            continued++;
        }
    }
    ck_assert_int_gt(completed, 0);
    ck_assert_int_gt(continued, 0);
    /* --match sees the composed text: completions of the prompt's syllable
     * are possible under a Hangul-only pattern (a bare final never was) */
    completed = 0;
    ck_assert_int_eq(crn_sample_settings_set_match(&s, "[가-힣 ]+"), 0);
    s.temperature = 1.5;
    for (uint64_t seed = 1; seed <= 100; seed++) {
        s.seed = seed;
        static sink k;
        crn_gen_result res;
        ck_assert_int_eq(gen_text(m, v, &s, "가", &k, &res), 0);
        ck_assert(!has_jamo(k.buf, k.len));
        completed += res.replaced > 0;
    }
    ck_assert_int_gt(completed, 0);
    crn_sample_settings_free(&s);
    crn_generator_destroy(g);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* Issue 10 item 2: --length counts NFC code points in the grapheme unit too
 * (a cluster is never cut: the last one may end past `length`). */
START_TEST(test_length_counts_chars) {
    /* g + U+0308 and 👍 + U+1F3FD have no precomposed form: 2-code-point clusters */
    crn_vocab *v = make_vocab("ag\xCC\x88 b\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD\n", CRN_UNIT_GRAPHEME);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_GRU, 8, 1.0f);
    int over = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        crn_sample_settings s;
        crn_sample_settings_init(&s);
        s.length = 30;
        s.seed = seed;
        static sink k;
        crn_gen_result res;
        ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
        size_t n = crn_utf8_count((const uint8_t *)k.buf, k.len);
        ck_assert_msg(n == 30 || n == 31, "seed %llu: %zu code points", (unsigned long long)seed, n);
        ck_assert_uint_le(res.tokens, 30);
        over += n == 31;
        crn_sample_settings_free(&s);
    }
    ck_assert_int_lt(over, 40);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* A jamo model whose top-k set holds only a leading consonant: the vowel that
 * completes it is drawn from the whole distribution (not a lone consonant
 * dropped and drawn again forever); with no vowel in the vocabulary at all,
 * the run ends (no_continuation) after a bounded number of tokens. */
START_TEST(test_jamo_top_k_composes) {
    crn_vocab *v = make_vocab("\xEB\x82\x98 ", CRN_UNIT_JAMO); /* 나: ㄴ ㅏ, and a space */
    uint32_t V = crn_vocab_size(v), L = id_of(v, "\xE1\x84\x82");
    double prob[8] = {0};
    ck_assert_uint_le(V, 8);
    for (uint32_t i = 1; i < V; i++) prob[i] = i == L ? 0.9 : 0.1 / (V - 2);
    crn_model *m = make_const_model(V, prob);
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = 10;
    s.top_k = 1;
    static sink k;
    crn_gen_result res;
    ck_assert_int_eq(gen_text(m, v, &s, "", &k, &res), 0);
    ck_assert_msg(res.reason == CRN_GEN_STOP_LENGTH, "reason %s after %zu tokens", crn_gen_stop_name(res.reason),
                  res.tokens);
    ck_assert_uint_eq(crn_utf8_count((const uint8_t *)k.buf, k.len), 10);
    ck_assert_msg(k.len == 30 && !memcmp(k.buf, "\xEB\x82\x98", 3), "%.*s", (int)k.len, k.buf);
    crn_model_destroy(m);
    crn_vocab_destroy(v);

    v = make_vocab("\xE1\x84\x82 a", CRN_UNIT_JAMO); /* a lone conjoining ㄴ: no vowel to complete it */
    V = crn_vocab_size(v);
    L = id_of(v, "\xE1\x84\x82");
    ck_assert_uint_le(V, 8);
    for (uint32_t i = 1; i < V; i++) prob[i] = i == L ? 0.97 : 0.03 / (V - 2);
    m = make_const_model(V, prob);
    ck_assert_int_eq(gen_text(m, v, &s, "", &k, &res), 0);
    ck_assert_msg(res.reason == CRN_GEN_STOP_NO_CONTINUATION, "reason %s after %zu tokens",
                  crn_gen_stop_name(res.reason), res.tokens);
    ck_assert_uint_le(res.tokens, 4 * 10 + 64);
    crn_sample_settings_free(&s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* A catastrophic-backtracking pattern fails with CRN_ELIMIT in bounded time. */
START_TEST(test_pathological) {
    crn_vocab *v = make_vocab("ab", CRN_UNIT_CODEPOINT);
    double prob[3] = {0, 0.85, 0.15}; /* mostly 'a', sometimes 'b' */
    crn_model *m = make_const_model(3, prob);
    double t0 = crn_now();
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = 400;
    ck_assert_int_eq(crn_sample_settings_set_match(&s, "(a|aa)+(a|aa)+[cd]"), 0);
    static sink k;
    crn_gen_result res;
    int err = gen_text(m, v, &s, "a", &k, &res);
    ck_assert_msg(err == CRN_ELIMIT, "match: got %d (%s), reason %s after %zu tokens", err, crn_error_message(),
                  crn_gen_stop_name(res.reason), res.tokens);
    crn_sample_settings_free(&s);
    crn_sample_settings_init(&s);
    s.length = 400;
    ck_assert_int_eq(crn_sample_settings_add_stop(&s, "(a+)+[0-9]"), 0);
    err = gen_text(m, v, &s, "a", &k, &res);
    ck_assert_msg(err == CRN_ELIMIT, "stop: got %d (%s)", err, crn_error_message());
    crn_sample_settings_free(&s);
    ck_assert_msg(crn_now() - t0 < 20, "took %.1f s", crn_now() - t0);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* Beam search with W >= (choices)^(L-1) keeps every prefix, so it must find
 * the most likely sequence of L tokens, found here by enumeration. */
START_TEST(test_beam) {
    crn_vocab *v = make_vocab("ab\n", CRN_UNIT_CODEPOINT);
    uint32_t V = crn_vocab_size(v); /* <unk> \n a b */
    ck_assert_uint_eq(V, 4);
    crn_model *m = make_model(V, CRN_CELL_LSTM, 9, 3.0f);
    enum { L = 4 };
    crn_state *st = NULL, *tmp = NULL;
    ck_assert_int_eq(crn_state_create(&st, m, 1), 0);
    ck_assert_int_eq(crn_state_create(&tmp, m, 1), 0);
    double best = -INFINITY;
    uint32_t best_seq[L] = {0};
    for (int code = 0; code < 81; code++) {
        uint32_t seq[L];
        for (int i = 0, c = code; i < L; i++, c /= 3) seq[i] = 1 + (uint32_t)(c % 3);
        crn_state_reset(st);
        uint32_t tok = id_of(v, "a");
        real logits[4];
        double lp = 0;
        for (int i = 0; i < L; i++) {
            ck_assert_int_eq(crn_model_step(m, st, &tok, logits), 0);
            double mx = -INFINITY, sum = 0;
            for (uint32_t j = 0; j < V; j++) mx = fmax(mx, logits[j]);
            for (uint32_t j = 0; j < V; j++) sum += exp(logits[j] - mx);
            lp += logits[seq[i]] - mx - log(sum);
            tok = seq[i];
        }
        if (lp > best) {
            best = lp;
            memcpy(best_seq, seq, sizeof seq);
        }
    }
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = L;
    s.beam = 27;
    static sink k;
    crn_gen_result res;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
    uint8_t *want = NULL;
    size_t want_len = 0;
    ck_assert_int_eq(crn_vocab_decode(v, best_seq, L, &want, &want_len), 0);
    ck_assert_uint_eq(k.len, want_len);
    ck_assert(!memcmp(k.buf, want, want_len));
    ck_assert_uint_eq(res.tokens, L);
    ck_assert_double_eq_tol(res.mean_logprob, best / L, 1e-5);
    /* a --stop pattern cuts the beam's text at its first match */
    ck_assert_uint_gt(want_len, 1);
    char pat[8];
    snprintf(pat, sizeof pat, "%c", (char)want[1]);
    ck_assert_int_eq(crn_sample_settings_add_stop(&s, pat), 0);
    static sink cut;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &cut, &res), 0);
    ck_assert_int_eq(res.reason, CRN_GEN_STOP_REGEX);
    ck_assert_ptr_null(memchr(cut.buf, want[1], cut.len));
    ck_assert(cut.len <= 1 && !memcmp(cut.buf, want, cut.len));
    crn_sample_settings_clear_stops(&s);
    /* greedy can only do as well or worse */
    s.beam = 0;
    s.temperature = 0;
    ck_assert_int_eq(gen_text(m, v, &s, "a", &k, &res), 0);
    ck_assert(res.mean_logprob <= best / L + 1e-9);
    free(want);
    crn_state_destroy(st);
    crn_state_destroy(tmp);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* The state carries across runs: prime "ab" then run == prime "a", prime "b", run. */
START_TEST(test_state_carry) {
    crn_vocab *v = make_vocab(TEXT, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_RNN, 13, 3.0f);
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.temperature = 0;
    s.length = 30;
    crn_generator *g = NULL;
    ck_assert_int_eq(crn_generator_create(&g, m, v, &s), 0);
    static sink a, b;
    crn_gen_result res;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"ab", 2, NULL), 0);
    ck_assert_int_eq(crn_generator_run(g, sink_emit, &a, &res), 0);
    crn_generator_reset(g);
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"a", 1, NULL), 0);
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"b", 1, NULL), 0);
    ck_assert_int_eq(crn_generator_run(g, sink_emit, &b, &res), 0);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert(!memcmp(a.buf, b.buf, a.len));
    /* unknown characters: counted, or refused in strict mode */
    crn_prime_info info;
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"aXbX", 4, &info), 0);
    ck_assert_uint_eq(info.tokens, 4);
    ck_assert_uint_eq(info.n_unk, 2);
    ck_assert_str_eq(info.unknown, "X");
    s.strict = 1;
    ck_assert_int_eq(crn_generator_configure(g, &s), 0);
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"aXb", 3, &info), CRN_EINVAL);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "'X'"));
    ck_assert_int_eq(crn_generator_prime(g, (const uint8_t *)"a\xFF", 2, &info), CRN_EUTF8);
    /* bad settings are refused and the old ones stay */
    s.top_p = 0;
    ck_assert_int_eq(crn_generator_configure(g, &s), CRN_ERANGE);
    crn_generator_destroy(g);
    crn_generator_destroy(NULL);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

static int stop_after_3(void *user, const uint8_t *s, size_t n) {
    (void)s;
    (void)n;
    return ++*(int *)user >= 3;
}

/* The emit callback and the cancel flag both stop a run ("interrupted"). */
START_TEST(test_interrupt) {
    crn_vocab *v = make_vocab(TEXT, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 17, 2.0f);
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    s.length = 1000;
    crn_generator *g = NULL;
    ck_assert_int_eq(crn_generator_create(&g, m, v, &s), 0);
    int calls = 0;
    crn_gen_result res;
    ck_assert_int_eq(crn_generator_run(g, stop_after_3, &calls, &res), 0);
    ck_assert_int_eq(res.reason, CRN_GEN_STOP_INTERRUPTED);
    ck_assert_int_eq(calls, 3);
    ck_assert_uint_lt(res.tokens, 10);
    volatile sig_atomic_t flag = 1;
    crn_generator_set_cancel(g, &flag);
    ck_assert_int_eq(crn_generator_run(g, NULL, NULL, &res), 0);
    ck_assert_int_eq(res.reason, CRN_GEN_STOP_INTERRUPTED);
    ck_assert_uint_eq(res.tokens, 0);
    crn_generator_destroy(g);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

int main(void) {
    Suite *su = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_argmax);
    tcase_add_test(tc, test_tiny_temperature);
    tcase_add_test(tc, test_top_k_top_p);
    tcase_add_test(tc, test_top_k_generator);
    tcase_add_test(tc, test_stop);
    tcase_add_test(tc, test_match);
    tcase_add_test(tc, test_units_utf8);
    tcase_add_test(tc, test_jamo_prompt_boundary);
    tcase_add_test(tc, test_length_counts_chars);
    tcase_add_test(tc, test_jamo_top_k_composes);
    tcase_add_test(tc, test_pathological);
    tcase_add_test(tc, test_beam);
    tcase_add_test(tc, test_state_carry);
    tcase_add_test(tc, test_interrupt);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
