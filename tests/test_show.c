/* test_show.c — `charrnn show`'s analysis (show.h) against independent
 * references: characters are grapheme clusters in every unit (combining
 * marks, emoji sequences, jamo, RTL, tabs); surprise, candidates and
 * activations agree with stepping the model token by token
 * (crn_model_step, another path than the forward show uses) and with
 * eval's crn_evaluate_ids; features by hand; auto units are the argmax of
 * correlations recomputed here; the cap; option errors; escaping. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "corpus.h"
#include "model.h"
#include "rng.h"
#include "show.h"
#include "train.h"
#include "vocab.h"

/* a, q + combining acute, b, space, woman-woman-girl (ZWJ), space, 가, 나, tab, שלום, line break */
static const char *MIXED = "aq\xcc\x81" "b \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 "
                           "가나\t\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d\n";
static const char *PROSE = "The cat said \"hello (to me)\".\n하늘은 파랗고 (바다는) \"넓다\".\nA b c; 가나다.\n";

static crn_vocab *make_vocab(const char *text, enum crn_unit unit) {
    crn_vocab *v = NULL;
    ck_assert_int_eq(crn_vocab_create(&v, unit, CRN_NORM_NFC), 0);
    ck_assert_int_eq(crn_vocab_count(v, (const uint8_t *)text, strlen(text)), 0);
    ck_assert_int_eq(crn_vocab_finalize(v, 1), 0);
    return v;
}

static crn_model *make_model(uint32_t V, enum crn_cell cell, uint32_t layers, uint64_t seed) {
    crn_model_config cfg = {.cell = cell, .act = CRN_ACT_TANH, .vocab = V, .embed = 0, .hidden = 8, .layers = layers};
    crn_model *m = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng r;
    crn_rng_seed(&r, seed);
    crn_model_init(m, &r);
    real *p = crn_model_params(m);
    for (size_t i = 0; i < crn_model_num_params(m); i++) p[i] *= 3; /* peaked distributions */
    return m;
}

static crn_show *run(crn_model *m, const crn_vocab *v, const char *text, const crn_show_opts *o) {
    crn_show *s = NULL;
    int rc = crn_show_run(&s, m, v, (const uint8_t *)text, strlen(text), o);
    ck_assert_msg(rc == 0, "crn_show_run: %s", crn_error_message());
    return s;
}

START_TEST(test_clusters) {
    static const size_t lens[] = {1, 3, 1, 1, 18, 1, 3, 3, 1, 2, 2, 2, 2, 1};
    for (int unit = 0; unit < 3; unit++) {
        crn_vocab *v = make_vocab(MIXED, (enum crn_unit)unit);
        crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 1, 7);
        crn_show_opts o;
        crn_show_opts_default(&o);
        crn_show *s = run(m, v, MIXED, &o);
        ck_assert_uint_eq(s->n_chars, CRN_ARRAY_LEN(lens));
        ck_assert_uint_eq(s->text_len, strlen(MIXED));
        ck_assert(memcmp(s->text, MIXED, s->text_len) == 0);
        size_t at = 0, toks = 0;
        for (size_t i = 0; i < s->n_chars; i++) {
            ck_assert_uint_eq(s->chars[i].byte, at);
            ck_assert_uint_eq(s->chars[i].len, lens[i]);
            ck_assert_uint_eq(s->chars[i].tok, toks);
            at += lens[i];
            toks += s->chars[i].ntok;
        }
        ck_assert_uint_eq(toks, s->n_tokens);
        /* tokens per character: q+accent 2 code points, the emoji 5, 가 2 jamo */
        ck_assert_uint_eq(s->chars[1].ntok, unit == CRN_UNIT_GRAPHEME ? 1 : 2);
        ck_assert_uint_eq(s->chars[4].ntok, unit == CRN_UNIT_GRAPHEME ? 1 : 5);
        ck_assert_uint_eq(s->chars[6].ntok, unit == CRN_UNIT_JAMO ? 2 : 1);
        /* a character's bits are its tokens' bits; the first token is not predicted */
        ck_assert(isnan(s->chars[0].bits));
        double total = 0;
        for (size_t i = 1; i < s->n_chars; i++) {
            double b = 0;
            for (size_t t = s->chars[i].tok; t < s->chars[i].tok + s->chars[i].ntok; t++) b += s->tok_bits[t];
            ck_assert_double_eq_tol(s->chars[i].bits, b, 1e-12);
            total += b;
        }
        ck_assert_double_eq_tol(s->bits, total, 1e-9);
        ck_assert_uint_eq(s->codepoints, crn_utf8_count((const uint8_t *)MIXED, strlen(MIXED)));
        crn_show_destroy(s);
        crn_model_destroy(m);
        crn_vocab_destroy(v);
    }
}
END_TEST

/* -log2 softmax(logits)[y] in double */
static double ref_bits(const real *l, uint32_t V, uint32_t y) {
    double mx = -INFINITY, sum = 0;
    for (uint32_t j = 0; j < V; j++) mx = fmax(mx, l[j]);
    for (uint32_t j = 0; j < V; j++) sum += exp(l[j] - mx);
    return -((l[y] - mx) - log(sum)) / M_LN2;
}

static void check_against_step(enum crn_cell cell, enum crn_unit unit, int cell_state) {
    crn_vocab *v = make_vocab(PROSE, unit);
    uint32_t V = crn_vocab_size(v);
    crn_model *m = make_model(V, cell, 2, 11);
    crn_show_opts o;
    crn_show_opts_default(&o);
    o.top_k = 3;
    o.cell_state = cell_state;
    crn_show *s = run(m, v, PROSE, &o);
    const crn_model_config *cfg = crn_model_config_of(m);
    uint32_t H = cfg->hidden, L = cfg->layers;
    crn_state *st = NULL;
    ck_assert_int_eq(crn_state_create(&st, m, 1), 0);
    real *logits = malloc(V * sizeof *logits);
    size_t ci = 0;
    for (size_t t = 0; t < s->n_tokens; t++) {
        ck_assert_int_eq(crn_model_step(m, st, &s->ids[t], logits), 0);
        const crn_show_char *c = &s->chars[ci];
        if (t + 1 < s->n_tokens) {
            ck_assert_double_eq_tol(s->tok_bits[t + 1], ref_bits(logits, V, s->ids[t + 1]), 1e-4);
            if (t + 1 == c->tok + c->ntok) { /* the candidates for the next character */
                const uint32_t *ti = s->top_ids + (ci + 1) * o.top_k;
                const float *tp = s->top_p + (ci + 1) * o.top_k;
                for (uint32_t k = 0; k < o.top_k; k++) {
                    double p = exp2(-ref_bits(logits, V, ti[k]));
                    ck_assert_double_eq_tol(tp[k], p, 1e-5);
                    if (k) ck_assert(tp[k] <= tp[k - 1]);
                    int above = 0; /* no token outside the list is more likely */
                    for (uint32_t j = 0; j < V; j++) above += exp2(-ref_bits(logits, V, j)) > p + 1e-6;
                    ck_assert_int_le(above, (int)k);
                }
            }
        }
        if (t + 1 == c->tok + c->ntok) {
            for (uint32_t l = 0; l < L; l++) {
                const real *a = cell_state ? crn_state_c(st, l) : crn_state_h(st, l);
                for (uint32_t j = 0; j < H; j++)
                    ck_assert_double_eq_tol(s->act[ci * L * H + l * H + j], a[j], 1e-5);
            }
            ci++;
        }
    }
    ck_assert_uint_eq(ci, s->n_chars);
    /* eval's scoring of the same text (one row, windows of 1 and of 16) */
    crn_corpus *corp = NULL;
    crn_corpus_opts co;
    crn_corpus_opts_default(&co);
    co.unit = unit;
    co.val_frac = 0;
    ck_assert_int_eq(crn_corpus_from_memory(&corp, "prose", (const uint8_t *)PROSE, strlen(PROSE), &co, v), 0);
    ck_assert_uint_eq(corp->n_tokens, s->n_tokens);
    for (size_t t = 0; t < s->n_tokens; t++) ck_assert_uint_eq(crn_corpus_id(corp, t), s->ids[t]);
    double nats;
    uint64_t count;
    ck_assert_int_eq(crn_evaluate_ids(m, corp, 0, corp->n_tokens, 1, 1, &nats, &count), 0);
    ck_assert_uint_eq(count, s->n_tokens - 1);
    ck_assert_double_eq_tol(s->bits, nats / M_LN2, 1e-9 * s->bits);
    ck_assert_int_eq(crn_evaluate_ids(m, corp, 0, corp->n_tokens, 1, 16, &nats, &count), 0);
    ck_assert_double_eq_tol(s->bits, nats / M_LN2, 1e-5 * s->bits);
    double bpc = crn_show_bits_per_char(s);
    ck_assert_double_eq_tol(bpc, s->bits / (double)(corp->n_chars - 1), 1e-12);
    crn_corpus_destroy(corp);
    free(logits);
    crn_state_destroy(st);
    crn_show_destroy(s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}

START_TEST(test_agrees_with_step_and_eval) {
    check_against_step(CRN_CELL_LSTM, CRN_UNIT_CODEPOINT, 0);
    check_against_step(CRN_CELL_LSTM, CRN_UNIT_JAMO, 1);
    check_against_step(CRN_CELL_GRU, CRN_UNIT_GRAPHEME, 0);
    check_against_step(CRN_CELL_RNN, CRN_UNIT_CODEPOINT, 0);
}
END_TEST

START_TEST(test_features) {
    const char *text = "a \"bc\" (d\ne) 가x";
    /*                   a  sp  "  b  c  "  sp  (  d  \n  e  )  sp  가  x */
    static const float quote[] = {0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const float brack[] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0};
    static const float lpos[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4};
    static const float lstart[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    static const float hangul[] = {-1, 0, 0, -1, -1, 0, 0, 0, -1, 0, -1, 0, 0, 1, -1};
    static const float word[] = {1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1};
    const float *want[CRN_FEAT_COUNT] = {quote, brack, lpos, lstart, hangul, word};
    crn_vocab *v = make_vocab(text, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 1, 3);
    crn_show_opts o;
    crn_show_opts_default(&o);
    crn_show *s = run(m, v, text, &o);
    ck_assert_uint_eq(s->n_chars, 15);
    for (int f = 0; f < CRN_FEAT_COUNT; f++)
        for (size_t i = 0; i < 15; i++)
            ck_assert_msg(s->feat[f * 15 + i] == want[f][i], "feature %s at %zu: %g, want %g", crn_show_feature_name(f),
                          i, (double)s->feat[f * 15 + i], (double)want[f][i]);
    crn_show_destroy(s);
    /* without Hangul, the Hangul/Latin feature is constant (and picks no unit) */
    o.auto_neurons = 1;
    s = run(m, v, "a \"bc\" (d\ne)", &o);
    for (size_t i = 0; i < s->n_chars; i++) ck_assert(s->feat[CRN_FEAT_HANGUL * s->n_chars + i] == 0);
    for (size_t u = 0; u < s->n_units; u++) ck_assert_int_ne(s->units[u].feature, CRN_FEAT_HANGUL);
    crn_show_destroy(s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

/* Pearson r recomputed with the two-pass textbook formula. */
static double pearson(const float *x, size_t sx, const float *y, size_t n) {
    double mx = 0, my = 0, cxy = 0, cxx = 0, cyy = 0;
    for (size_t i = 0; i < n; i++) mx += x[i * sx], my += y[i];
    mx /= (double)n, my /= (double)n;
    for (size_t i = 0; i < n; i++) {
        cxy += (x[i * sx] - mx) * (y[i] - my);
        cxx += (x[i * sx] - mx) * (x[i * sx] - mx);
        cyy += (y[i] - my) * (y[i] - my);
    }
    return cxx > 0 && cyy > 0 ? cxy / sqrt(cxx * cyy) : 0;
}

START_TEST(test_auto_units) {
    crn_vocab *v = make_vocab(PROSE, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 2, 5);
    crn_show_opts o;
    crn_show_opts_default(&o);
    o.auto_neurons = 1;
    crn_show *s = run(m, v, PROSE, &o);
    size_t U = (size_t)s->layers * s->hidden, n = s->n_chars;
    ck_assert_uint_eq(s->n_units, CRN_FEAT_COUNT); /* PROSE varies every feature */
    int seen[CRN_FEAT_COUNT] = {0};
    for (size_t u = 0; u < s->n_units; u++) {
        const crn_show_unit *x = &s->units[u];
        size_t j = (size_t)x->layer * s->hidden + x->index;
        ck_assert(x->feature >= 0 && x->feature < CRN_FEAT_COUNT && !seen[x->feature]);
        seen[x->feature] = 1;
        double r = pearson(s->act + j, U, s->feat + (size_t)x->feature * n, n);
        ck_assert_double_eq_tol(x->corr, r, 1e-6);
        if (u) ck_assert(fabs(x->corr) <= fabs(s->units[u - 1].corr));
        /* no unit not chosen before this feature's turn follows it better */
        for (size_t k = 0; k < U; k++) {
            int used = 0;
            for (size_t w = 0; w < s->n_units; w++)
                used |= (size_t)s->units[w].layer * s->hidden + s->units[w].index == k &&
                        s->units[w].feature < x->feature;
            if (!used) ck_assert(fabs(pearson(s->act + k, U, s->feat + (size_t)x->feature * n, n)) <= fabs(r) + 1e-9);
        }
    }
    crn_show_destroy(s);
    /* given units keep their order and get their best feature */
    crn_show_unit units[2] = {{1, 3, 0, 0}, {0, 0, 0, 0}};
    o.auto_neurons = 0;
    o.units = units;
    o.n_units = 2;
    s = run(m, v, PROSE, &o);
    ck_assert_uint_eq(s->n_units, 2);
    ck_assert_uint_eq(s->units[0].layer, 1);
    ck_assert_uint_eq(s->units[0].index, 3);
    int f = s->units[0].feature;
    ck_assert(f >= 0);
    for (int g = 0; g < CRN_FEAT_COUNT; g++)
        ck_assert(fabs(pearson(s->act + s->hidden + 3, U, s->feat + (size_t)g * n, n)) <= fabs(s->units[0].corr) + 1e-9);
    crn_show_destroy(s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

static void on_progress(void *ud, size_t done, size_t total) {
    size_t *last = ud;
    ck_assert_uint_gt(done, last[0]);
    ck_assert_uint_le(done, total);
    last[0] = done;
    last[1] = total;
}

START_TEST(test_progress) {
    char *text = malloc(3001);
    for (int i = 0; i < 3000; i++) text[i] = "ab \n"[i % 4];
    text[3000] = 0;
    crn_vocab *v = make_vocab(text, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_RNN, 1, 4);
    crn_show_opts o;
    crn_show_opts_default(&o);
    size_t last[2] = {0, 0};
    o.progress = on_progress;
    o.progress_ud = last;
    crn_show *s = run(m, v, text, &o);
    ck_assert_uint_eq(last[0], 3000); /* 1024, 2048, then the end */
    ck_assert_uint_eq(last[1], 3000);
    crn_show_destroy(s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
    free(text);
}
END_TEST

START_TEST(test_cap_prefix_and_errors) {
    crn_vocab *v = make_vocab(MIXED, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_GRU, 1, 9);
    crn_show_opts o;
    crn_show_opts_default(&o);
    o.max_chars = 5;
    crn_show *s = run(m, v, MIXED, &o);
    ck_assert_uint_eq(s->n_chars, 5);
    ck_assert_uint_eq(s->total_chars, 14);
    ck_assert_uint_eq(s->text_len, 1 + 3 + 1 + 1 + 18);
    crn_show_destroy(s);
    /* a prefix is context: shown, scored, not counted */
    o.max_chars = 100;
    o.prefix = (const uint8_t *)"ab";
    o.prefix_len = 2;
    s = run(m, v, "가나", &o);
    ck_assert_uint_eq(s->n_chars, 4);
    ck_assert(s->chars[0].prefix && s->chars[1].prefix && !s->chars[2].prefix && !s->chars[3].prefix);
    ck_assert_double_eq_tol(s->bits, s->chars[2].bits + s->chars[3].bits, 1e-12);
    ck_assert_double_eq_tol(crn_show_bits_per_char(s), s->bits / 2, 1e-12);
    crn_show_destroy(s);
    o.prefix = NULL;
    o.prefix_len = 0;
    /* errors */
    o.cell_state = 1;
    ck_assert_int_eq(crn_show_run(&s, m, v, (const uint8_t *)"ab", 2, &o), CRN_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert(strstr(crn_error_message(), "only in LSTM"));
    o.cell_state = 0;
    crn_show_unit u = {1, 0, 0, 0};
    o.units = &u;
    o.n_units = 1;
    ck_assert_int_eq(crn_show_run(&s, m, v, (const uint8_t *)"ab", 2, &o), CRN_EINVAL);
    ck_assert(strstr(crn_error_message(), "1:0 is out of range"));
    o.n_units = 0;
    ck_assert_int_eq(crn_show_run(&s, m, v, (const uint8_t *)"\xef\xbb\xbf", 3, &o), CRN_EEMPTY);
    o.top_k = 0;
    ck_assert_int_eq(crn_show_run(&s, m, v, (const uint8_t *)"ab", 2, &o), CRN_EINVAL);
    /* invalid UTF-8 is replaced, as eval does */
    o.top_k = 2;
    s = run(m, v, "a\xff" "b", &o);
    ck_assert_uint_eq(s->n_chars, 3);
    ck_assert_uint_eq(s->n_invalid, 1);
    ck_assert(memcmp(s->text + 1, "\xef\xbf\xbd", 3) == 0);
    crn_show_destroy(s);
    crn_show_destroy(NULL);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

START_TEST(test_parse_units) {
    crn_show_unit u[4];
    ck_assert_int_eq(crn_show_parse_units(u, 4, "0:1,1:22"), 2);
    ck_assert_uint_eq(u[1].layer, 1);
    ck_assert_uint_eq(u[1].index, 22);
    ck_assert_int_eq(crn_show_parse_units(u, 4, "3:0"), 1);
    const char *bad[] = {"", "x", "1", "1:", ":2", "1:2,", "1:2;3:4", "-1:2", "1:99999999999", "1:2 "};
    for (size_t i = 0; i < CRN_ARRAY_LEN(bad); i++)
        ck_assert_msg(crn_show_parse_units(u, 4, bad[i]) == CRN_EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(crn_show_parse_units(u, 2, "0:1,0:2,0:3"), CRN_ERANGE);
}
END_TEST

START_TEST(test_html_escapes) {
    const char *text = "<script>document.title='PWNED'</script> & \"q\" 'a' </div><div id=pwn>\x01\n";
    crn_vocab *v = make_vocab(text, CRN_UNIT_CODEPOINT);
    crn_model *m = make_model(crn_vocab_size(v), CRN_CELL_LSTM, 1, 2);
    crn_show_opts o;
    crn_show_opts_default(&o);
    o.auto_neurons = 1;
    crn_show *s = run(m, v, text, &o);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    crn_show_page pg = {CRN_SHOW_SURPRISE, "<b>title</b>", "m&m", NULL};
    ck_assert_int_eq(crn_show_write_html(f, "mem", s, v, &pg), 0);
    fclose(f);
    ck_assert_ptr_null(strstr(buf, "PWNED'</script>"));
    ck_assert_ptr_null(strstr(buf, "<div id=pwn"));
    ck_assert_ptr_null(strstr(buf, "<b>title"));
    ck_assert_ptr_nonnull(strstr(buf, "&lt;b&gt;title&lt;/b&gt;"));
    ck_assert_ptr_nonnull(strstr(buf, "\">&lt;</span>")); /* the text's '<', one character per span */
    ck_assert_ptr_nonnull(strstr(buf, "\">&quot;</span>"));
    ck_assert_ptr_nonnull(strstr(buf, "\">&#39;</span>"));
    ck_assert_ptr_nonnull(strstr(buf, "m&amp;m"));
    ck_assert_ptr_nonnull(strstr(buf, "&#x2401;")); /* U+0001 drawn as its Control Picture */
    /* exactly our two script elements; the JSON block holds no '<' at all */
    size_t scripts = 0;
    for (const char *p = buf; (p = strstr(p, "<script")); p++) scripts++;
    ck_assert_uint_eq(scripts, 2);
    const char *d = strstr(buf, "id=\"crn-data\">"), *e = strstr(d, "</script>");
    for (const char *p = d + 14; p < e; p++) ck_assert(*p != '<');
    free(buf);
    crn_show_destroy(s);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
}
END_TEST

int main(void) {
    Suite *su = suite_create("show");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_clusters);
    tcase_add_test(tc, test_agrees_with_step_and_eval);
    tcase_add_test(tc, test_features);
    tcase_add_test(tc, test_auto_units);
    tcase_add_test(tc, test_cap_prefix_and_errors);
    tcase_add_test(tc, test_parse_units);
    tcase_add_test(tc, test_progress);
    tcase_add_test(tc, test_html_escapes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
