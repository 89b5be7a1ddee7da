/* test_api.c — the public API (charrnn.h only, linked against the shared
 * libcharrnn as a program outside the tree would be): version, errors and
 * their messages, training from options with a progress callback and a
 * stop request, model info, generation (determinism, reset, fork, every
 * sampling setting, refused settings leave the old ones), scoring. */
#include <charrnn.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256], g_text[300], g_model[300];
static const char TEXT_LINE[] = "the cat sat on the mat. the dog ran in the park.\n";

static void setup_dir(void) {
    snprintf(g_dir, sizeof g_dir, "%s/crn-test-api.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_text, sizeof g_text, "%s/text.txt", g_dir);
    snprintf(g_model, sizeof g_model, "%s/m.crn", g_dir);
    FILE *f = fopen(g_text, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 40; i++) fputs(TEXT_LINE, f);
    fclose(f);
}

static charrnn_train_options *tiny_options(const char *steps) {
    charrnn_train_options *o = NULL;
    ck_assert_int_eq(charrnn_train_options_create(&o), 0);
    const char *kv[][2] = {{"corpus", g_text}, {"output", g_model}, {"steps", steps}, {"hidden", "32"},
                           {"layers", "1"}, {"batch", "4"}, {"seq", "16"}, {"threads", "1"},
                           {"eval-every", "20"}, {"lr", "0.01"}, {"seed", "5"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        ck_assert_msg(charrnn_train_options_set(o, kv[i][0], kv[i][1]) == 0, "%s: %s", kv[i][0], charrnn_last_error());
    return o;
}

typedef struct counts {
    int start, steps, evals, done;
    uint64_t stop_at;
} counts;

static int on_progress(void *user, const charrnn_progress *p) {
    counts *c = user;
    if (p->event == CHARRNN_EVENT_START) c->start++;
    if (p->event == CHARRNN_EVENT_STEP) c->steps++;
    if (p->event == CHARRNN_EVENT_EVAL) c->evals++;
    if (p->event == CHARRNN_EVENT_DONE) c->done++;
    return c->stop_at && p->event == CHARRNN_EVENT_STEP && p->step >= c->stop_at;
}

/* Train the model every generation test uses (once per process). */
static void train_model(void) {
    static int done;
    if (done) return;
    setup_dir();
    charrnn_train_options *o = tiny_options("120");
    charrnn_trainer *t = NULL;
    ck_assert_msg(charrnn_trainer_create(&t, o) == 0, "%s", charrnn_last_error());
    counts c = {0};
    ck_assert_msg(charrnn_trainer_run(t, on_progress, &c) == 0, "%s", charrnn_last_error());
    charrnn_train_status st;
    ck_assert_int_eq(charrnn_trainer_get_status(t, &st), 0);
    ck_assert_uint_eq(st.step, 120);
    ck_assert_int_eq(c.steps, 120);
    ck_assert_int_eq(c.start, 1);
    ck_assert_int_eq(c.done, 1);
    ck_assert_int_ge(c.evals, 6);
    ck_assert(isfinite(st.best_val_bpc));
    charrnn_trainer_destroy(t);
    charrnn_train_options_destroy(o);
    ck_assert_int_eq(access(g_model, R_OK), 0);
    done = 1;
}

START_TEST(version_and_errors) {
    ck_assert_int_eq(charrnn_version(), CHARRNN_VERSION);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CHARRNN_VERSION_MAJOR, CHARRNN_VERSION_MINOR, CHARRNN_VERSION_PATCH);
    ck_assert_str_eq(charrnn_version_string(), want);
    ck_assert_str_eq(charrnn_strerror(CHARRNN_EUTF8), "invalid UTF-8");
    charrnn_model_destroy(NULL);
    charrnn_generator_destroy(NULL);
    charrnn_train_options_destroy(NULL);
    charrnn_trainer_destroy(NULL);
    charrnn_model *m = (charrnn_model *)&want; /* must be reset to NULL on failure */
    int err = charrnn_model_load(&m, "/nonexistent/dir/x.crn");
    ck_assert_int_lt(err, 0);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(charrnn_last_error(), "/nonexistent/dir/x.crn"));
    ck_assert_int_eq(charrnn_model_load_memory(&m, "CRNM", 4), CHARRNN_EFORMAT);
}
END_TEST

START_TEST(train_options_checked) {
    charrnn_train_options *o = NULL;
    ck_assert_int_eq(charrnn_train_options_create(&o), 0);
    ck_assert_int_eq(charrnn_train_options_set(o, "no-such-option", "1"), CHARRNN_ENOTFOUND);
    ck_assert_int_eq(charrnn_train_options_set(o, "hidden", "0"), CHARRNN_ERANGE);
    ck_assert_ptr_nonnull(strstr(charrnn_last_error(), "hidden"));
    ck_assert_int_eq(charrnn_train_options_set(o, "hidden", "12x"), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_train_options_set(o, "layers", "-1"), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_train_options_set(o, "cell", "transformer"), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_train_options_set(o, "layer-norm", "2"), CHARRNN_EINVAL); /* "0" or "1" */
    ck_assert_int_eq(charrnn_train_options_set(o, "layer-norm", "0"), 0); /* off (the default is 1) */
    ck_assert_int_eq(charrnn_train_options_set(o, "time", "0"), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_train_options_set(o, "replace", "no equals sign"), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_train_options_set(o, "time", "1.5h"), 0);
    ck_assert_int_eq(charrnn_train_options_set(o, "cell", "gru"), 0);
    ck_assert_int_eq(charrnn_train_options_set(o, "keep", "a"), 0);
    ck_assert_int_eq(charrnn_train_options_set(o, "keep", "b"), 0);
    charrnn_trainer *t = (charrnn_trainer *)o;
    ck_assert_int_eq(charrnn_trainer_create(&t, o), CHARRNN_EINVAL); /* no corpus */
    ck_assert_ptr_null(t);
    charrnn_train_options_destroy(o);
    /* the CLI's checks of a whole set of options (crn_train_opts_check) */
    train_model();
    o = tiny_options("5");
    ck_assert_int_eq(charrnn_train_options_set(o, "activation", "relu"), 0); /* with the default lstm */
    ck_assert_int_eq(charrnn_trainer_create(&t, o), CHARRNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(charrnn_last_error(), "activation relu applies to cell rnn only"));
    ck_assert_int_eq(charrnn_train_options_set(o, "cell", "rnn"), 0);
    ck_assert_int_eq(charrnn_train_options_set(o, "schedule", "cosine"), 0); /* its length: the 5 steps */
    char out[320];
    snprintf(out, sizeof out, "%s/checked.crn", g_dir);
    ck_assert_int_eq(charrnn_train_options_set(o, "output", out), 0);
    ck_assert_msg(charrnn_trainer_create(&t, o) == 0, "%s", charrnn_last_error());
    charrnn_trainer_destroy(t);
    charrnn_train_options_destroy(o);
}
END_TEST

START_TEST(train_stop_request) {
    train_model();
    char out[320];
    snprintf(out, sizeof out, "%s/stopped.crn", g_dir);
    charrnn_train_options *o = tiny_options("1000");
    ck_assert_int_eq(charrnn_train_options_set(o, "output", out), 0);
    charrnn_trainer *t = NULL;
    ck_assert_int_eq(charrnn_trainer_create(&t, o), 0);
    counts c = {.stop_at = 7};
    ck_assert_int_eq(charrnn_trainer_run(t, on_progress, &c), CHARRNN_EINTR);
    charrnn_train_status st;
    ck_assert_int_eq(charrnn_trainer_get_status(t, &st), 0);
    ck_assert_uint_eq(st.step, 7);
    ck_assert_int_eq(access(out, R_OK), 0); /* saved on the way out */
    charrnn_trainer_request_stop(t);       /* before a run: it stops at once */
    ck_assert_int_eq(charrnn_trainer_run(t, NULL, NULL), CHARRNN_EINTR);
    ck_assert_int_eq(charrnn_trainer_get_status(t, &st), 0);
    ck_assert_uint_eq(st.step, 7);
    charrnn_trainer_destroy(t);
    charrnn_train_options_destroy(o);
}
END_TEST

/* The payload of section type (model-format.md: 16-byte header, then
 * type u32, flags u32, length u64, payload, crc u32) of file path, malloc'ed. */
static unsigned char *section_of(const char *path, uint32_t type, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char *out = NULL, h[16];
    ck_assert_int_eq(fread(h, 1, 16, f), 16);
    uint32_t count = h[12] | h[13] << 8 | h[14] << 16 | (uint32_t)h[15] << 24;
    for (uint32_t i = 0; i < count && !out; i++) {
        ck_assert_int_eq(fread(h, 1, 16, f), 16);
        uint32_t t = h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24;
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--) n = n << 8 | h[8 + b];
        if (t == type) {
            ck_assert_ptr_nonnull(out = malloc(n ? n : 1));
            ck_assert_uint_eq(fread(out, 1, n, f), n);
            *len = n;
        } else {
            ck_assert_int_eq(fseek(f, (long)n + 4, SEEK_CUR), 0);
        }
    }
    fclose(f);
    ck_assert_msg(out != NULL, "%s: no section %u", path, type);
    return out;
}

/* The PARAMS (3) and OPTIM (4) sections of two files are the same bytes. */
static void same_sections(const char *a, const char *b) {
    for (uint32_t type = 3; type <= 4; type++) {
        size_t na = 0, nb = 0;
        unsigned char *pa = section_of(a, type, &na), *pb = section_of(b, type, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert_msg(memcmp(pa, pb, na) == 0, "section %u of %s and %s differ", type, a, b);
        free(pa);
        free(pb);
    }
}

/* Stopped at 13 of 29 steps and resumed (the run's budget again) is, with
 * one thread, bit-for-bit the run of 29 steps in one go; a resume may not
 * change the model. */
START_TEST(train_resume_exact) {
    train_model();
    char a[320], b[320], ar[330], br[330];
    snprintf(a, sizeof a, "%s/a.crn", g_dir);
    snprintf(b, sizeof b, "%s/b.crn", g_dir);
    snprintf(ar, sizeof ar, "%s.resume", a);
    snprintf(br, sizeof br, "%s.resume", b);
    charrnn_train_options *o = tiny_options("29");
    ck_assert_int_eq(charrnn_train_options_set(o, "output", a), 0);
    ck_assert_int_eq(charrnn_train_options_set(o, "dropout", "0.2"), 0); /* the RNG stream resumes too */
    charrnn_trainer *t = NULL;
    ck_assert_int_eq(charrnn_trainer_create(&t, o), 0);
    counts c = {.stop_at = 13};
    ck_assert_int_eq(charrnn_trainer_run(t, on_progress, &c), CHARRNN_EINTR);
    charrnn_trainer_destroy(t);
    /* refused: a model option; the output elsewhere */
    charrnn_train_options *r = NULL;
    ck_assert_int_eq(charrnn_train_options_create(&r), 0);
    ck_assert_int_eq(charrnn_train_options_set(r, "resume", a), 0);
    ck_assert_int_eq(charrnn_train_options_set(r, "hidden", "16"), 0);
    ck_assert_int_eq(charrnn_trainer_create(&t, r), CHARRNN_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(charrnn_last_error(), "hidden conflicts with the checkpoint (hidden 32)"), "%s",
                  charrnn_last_error());
    charrnn_train_options_destroy(r);
    ck_assert_int_eq(charrnn_train_options_create(&r), 0);
    ck_assert_int_eq(charrnn_train_options_set(r, "resume", ar), 0); /* MODEL.resume names the run too */
    ck_assert_int_eq(charrnn_train_options_set(r, "output", b), 0);
    ck_assert_int_eq(charrnn_trainer_create(&t, r), CHARRNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(charrnn_last_error(), "its own files"));
    /* resumed: threads is not saved; the same hidden is no conflict */
    ck_assert_int_eq(charrnn_train_options_set(r, "output", a), 0);
    ck_assert_int_eq(charrnn_train_options_set(r, "threads", "1"), 0);
    ck_assert_int_eq(charrnn_train_options_set(r, "hidden", "32"), 0);
    ck_assert_msg(charrnn_trainer_create(&t, r) == 0, "%s", charrnn_last_error());
    charrnn_train_status st;
    ck_assert_int_eq(charrnn_trainer_get_status(t, &st), 0);
    ck_assert_uint_eq(st.step, 13);
    counts c2 = {0};
    ck_assert_msg(charrnn_trainer_run(t, on_progress, &c2) == 0, "%s", charrnn_last_error());
    ck_assert_int_eq(charrnn_trainer_get_status(t, &st), 0);
    ck_assert_uint_eq(st.step, 29);
    ck_assert_int_eq(c2.steps, 29 - 13);
    charrnn_trainer_destroy(t);
    charrnn_train_options_destroy(r);
    /* in one go */
    ck_assert_int_eq(charrnn_train_options_set(o, "output", b), 0);
    ck_assert_int_eq(charrnn_trainer_create(&t, o), 0);
    ck_assert_int_eq(charrnn_trainer_run(t, NULL, NULL), 0);
    charrnn_train_status sb;
    ck_assert_int_eq(charrnn_trainer_get_status(t, &sb), 0);
    ck_assert_uint_eq(sb.step, 29);
    ck_assert(st.last_train_bpc == sb.last_train_bpc);
    charrnn_trainer_destroy(t);
    charrnn_train_options_destroy(o);
    same_sections(ar, br);
    same_sections(a, b); /* the best models (validation at 20 and 29) */
}
END_TEST

static charrnn_model *load(void) {
    train_model();
    charrnn_model *m = NULL;
    ck_assert_msg(charrnn_model_load(&m, g_model) == 0, "%s", charrnn_last_error());
    return m;
}

START_TEST(model_info) {
    charrnn_model *m = load();
    charrnn_model_info info;
    ck_assert_int_eq(charrnn_model_get_info(m, &info), 0);
    ck_assert_str_eq(info.cell, "lstm");
    ck_assert_str_eq(info.unit, "codepoint");
    ck_assert_uint_eq(info.layers, 1);
    ck_assert_uint_eq(info.hidden, 32);
    ck_assert_uint_eq(info.embed, 0);
    /* <unk> + the distinct characters of TEXT_LINE (ASCII) */
    unsigned char seen[256] = {0};
    uint32_t distinct = 0;
    for (const char *p = TEXT_LINE; *p; p++) distinct += !seen[(unsigned char)*p]++;
    ck_assert_uint_eq(info.vocab_size, 1 + distinct);
    /* one-hot LSTM: w_x (V, 4H), w_h (H, 4H), two biases (4H), out_w (H, V), out_b (V), and the layer
     * normalisation of the default: gains g_x, g_h (4H), g_c and b_c (H) */
    size_t V = info.vocab_size, H = 32;
    ck_assert_uint_eq(info.num_params, V * 4 * H + H * 4 * H + 8 * H + H * V + V + 10 * H);
    ck_assert(info.has_optimizer_state && info.has_training_state);
    size_t len = 0;
    const char *tok = charrnn_model_token(m, 1, &len);
    ck_assert(tok && len == 1 && tok[0] == '\n'); /* ids sorted by bytes: '\n' first */
    ck_assert_ptr_null(charrnn_model_token(m, info.vocab_size, &len));
    charrnn_model_destroy(m);
}
END_TEST

typedef struct sink {
    char buf[4096];
    size_t n;
    int calls;
} sink;

static int collect(void *user, const char *text, size_t len) {
    sink *s = user;
    ck_assert_uint_le(s->n + len, sizeof s->buf);
    memcpy(s->buf + s->n, text, len);
    s->n += len;
    s->calls++;
    return 0;
}

static void gen(charrnn_generator *g, sink *s, charrnn_generation *res) {
    memset(s, 0, sizeof *s);
    ck_assert_msg(charrnn_generator_generate(g, collect, s, res) == 0, "%s", charrnn_last_error());
    ck_assert_uint_eq(res->text_len, s->n);
    ck_assert(!memcmp(res->text, s->buf, s->n));
}

START_TEST(generate_deterministic_reset_fork) {
    charrnn_model *m = load();
    charrnn_generator *a = NULL, *b = NULL, *f = NULL;
    ck_assert_int_eq(charrnn_generator_create(&a, m), 0);
    ck_assert_int_eq(charrnn_generator_create(&b, m), 0);
    ck_assert_int_eq(charrnn_generator_set_length(a, 80), 0);
    ck_assert_int_eq(charrnn_generator_set_length(b, 80), 0);
    ck_assert_int_eq(charrnn_generator_set_seed(a, 9), 0);
    ck_assert_int_eq(charrnn_generator_set_seed(b, 9), 0);
    ck_assert_int_eq(charrnn_generator_prime(a, "the ", 4), 0);
    ck_assert_int_eq(charrnn_generator_prime(b, "the ", 4), 0);
    sink s1, s2, s3;
    charrnn_generation r1, r2, r3;
    /* fork the primed a: same state, same RNG */
    ck_assert_int_eq(charrnn_generator_fork(&f, a), 0);
    gen(a, &s1, &r1);
    gen(b, &s2, &r2);
    gen(f, &s3, &r3);
    ck_assert_int_eq(r1.stop_reason, CHARRNN_STOP_LENGTH);
    ck_assert_uint_eq(r1.tokens, 80);
    ck_assert(s1.n == s2.n && !memcmp(s1.buf, s2.buf, s1.n));
    ck_assert(s1.n == s3.n && !memcmp(s1.buf, s3.buf, s1.n));
    ck_assert(r1.mean_logprob < 0 && r1.mean_logprob == r3.mean_logprob);
    /* the state advanced: a second run continues, it does not repeat */
    gen(a, &s2, &r2);
    ck_assert(s1.n != s2.n || memcmp(s1.buf, s2.buf, s1.n));
    /* reset + reseed + prime: the first text again */
    charrnn_generator_reset(a);
    ck_assert_int_eq(charrnn_generator_set_seed(a, 9), 0);
    ck_assert_int_eq(charrnn_generator_prime(a, "the ", 4), 0);
    gen(a, &s2, &r2);
    ck_assert(s1.n == s2.n && !memcmp(s1.buf, s2.buf, s1.n));
    /* another seed, another text */
    charrnn_generator_reset(b);
    ck_assert_int_eq(charrnn_generator_set_seed(b, 10), 0);
    ck_assert_int_eq(charrnn_generator_prime(b, "the ", 4), 0);
    gen(b, &s2, &r2);
    ck_assert(s1.n != s2.n || memcmp(s1.buf, s2.buf, s1.n));
    /* unknown characters are counted (or refused when strict) */
    ck_assert_int_eq(charrnn_generator_prime(b, "xyz", 3), 3);
    ck_assert_int_eq(charrnn_generator_set_strict(b, 1), 0);
    ck_assert_int_eq(charrnn_generator_prime(b, "q", 1), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_generator_prime(b, "\xff", 1), CHARRNN_EUTF8);
    charrnn_generator_destroy(f);
    charrnn_generator_destroy(b);
    charrnn_generator_destroy(a);
    charrnn_model_destroy(m);
}
END_TEST

START_TEST(generate_settings) {
    charrnn_model *m = load();
    charrnn_generator *g = NULL;
    ck_assert_int_eq(charrnn_generator_create(&g, m), 0);
    /* refused values leave the settings as they were */
    ck_assert_int_eq(charrnn_generator_set_temperature(g, 101), CHARRNN_ERANGE);
    ck_assert_int_eq(charrnn_generator_set_top_p(g, 0), CHARRNN_ERANGE);
    ck_assert_int_eq(charrnn_generator_set_length(g, 0), CHARRNN_ERANGE);
    ck_assert_int_eq(charrnn_generator_set_beam(g, 65), CHARRNN_ERANGE);
    ck_assert_int_eq(charrnn_generator_add_stop(g, "("), CHARRNN_EREGEX);
    ck_assert_int_eq(charrnn_generator_add_stop(g, "x*"), CHARRNN_EINVAL);
    ck_assert_int_eq(charrnn_generator_set_match(g, "[a-"), CHARRNN_EREGEX);
    sink s;
    charrnn_generation r;
    gen(g, &s, &r);
    ck_assert_uint_eq(r.tokens, 500); /* the default length survived */

    ck_assert_int_eq(charrnn_generator_set_length(g, 300), 0);
    ck_assert_int_eq(charrnn_generator_set_temperature(g, 0.7), 0);
    ck_assert_int_eq(charrnn_generator_set_top_k(g, 5), 0);
    ck_assert_int_eq(charrnn_generator_set_top_p(g, 0.9), 0);
    ck_assert_int_eq(charrnn_generator_add_stop(g, "\\."), 0);
    gen(g, &s, &r);
    ck_assert(memchr(s.buf, '.', s.n) == NULL); /* the stop match is withheld */
    ck_assert_int_eq(r.stop_reason, CHARRNN_STOP_REGEX);
    ck_assert_int_eq(charrnn_generator_set_keep_stop(g, 1), 0);
    gen(g, &s, &r);
    ck_assert(s.n > 0 && s.buf[s.n - 1] == '.');
    ck_assert_int_eq(charrnn_generator_clear_stops(g), 0);

    ck_assert_int_eq(charrnn_generator_set_match(g, "[a-z]+ [a-z]+"), 0);
    charrnn_generator_reset(g);
    gen(g, &s, &r);
    ck_assert(r.stop_reason == CHARRNN_STOP_MATCH || r.stop_reason == CHARRNN_STOP_LENGTH);
    ck_assert(memchr(s.buf, ' ', s.n) != NULL);
    for (size_t i = 0; i < s.n; i++) ck_assert(s.buf[i] == ' ' || (s.buf[i] >= 'a' && s.buf[i] <= 'z'));
    ck_assert_int_eq(charrnn_generator_set_match(g, NULL), 0);

    ck_assert_int_eq(charrnn_generator_set_beam(g, 4), 0);
    ck_assert_int_eq(charrnn_generator_set_length(g, 40), 0);
    gen(g, &s, &r);
    ck_assert_uint_eq(r.tokens, 40);
    ck_assert_int_eq(s.calls, 1); /* beam search cannot stream */
    charrnn_generator_destroy(g);
    charrnn_model_destroy(m);
}
END_TEST

START_TEST(score_text) {
    charrnn_model *m = load();
    charrnn_score_result a, b;
    ck_assert_int_eq(charrnn_score(m, TEXT_LINE, strlen(TEXT_LINE), &a), 0);
    ck_assert_uint_eq(a.tokens, strlen(TEXT_LINE));
    ck_assert_uint_eq(a.targets, a.tokens - 1);
    ck_assert_uint_eq(a.unknown, 0);
    ck_assert(isfinite(a.bits_per_char) && a.bits_per_char > 0);
    ck_assert(a.bits_per_char == a.bits_per_token); /* code points */
    /* the text it learnt scores better than the same characters shuffled */
    static const char shuffled[] = "k.hta dte o nhmar e ta tsgtn.h aeehrctp hotdan h\n";
    ck_assert_uint_eq(strlen(shuffled), strlen(TEXT_LINE));
    ck_assert_int_eq(charrnn_score(m, shuffled, strlen(shuffled), &b), 0);
    ck_assert_msg(a.bits_per_char < b.bits_per_char - 0.5, "%f vs %f", a.bits_per_char, b.bits_per_char);
    ck_assert_int_eq(charrnn_score(m, "t", 1, &b), CHARRNN_EEMPTY);
    ck_assert_int_eq(charrnn_score(m, "ab\xc3", 3, &b), CHARRNN_EUTF8);
    ck_assert_int_eq(charrnn_score(m, "xyz", 3, &b), 0);
    ck_assert_uint_eq(b.unknown, 3);
    charrnn_model_destroy(m);
}
END_TEST

static void remove_dir(void) {
    static const char *files[] = {"text.txt", "m.crn", "m.crn.resume", "stopped.crn", "stopped.crn.resume"};
    char p[400];
    if (!g_dir[0]) return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, files[i]);
        unlink(p);
    }
    rmdir(g_dir);
}

int main(void) {
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, version_and_errors);
    tcase_add_test(tc, train_options_checked);
    tcase_add_test(tc, train_stop_request);
    tcase_add_test(tc, train_resume_exact);
    tcase_add_test(tc, model_info);
    tcase_add_test(tc, generate_deterministic_reset_fork);
    tcase_add_test(tc, generate_settings);
    tcase_add_test(tc, score_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* one trained model for all tests */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_dir();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
