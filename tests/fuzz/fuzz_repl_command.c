/* fuzz_repl_command.c — libFuzzer target: the REPL command parser
 * (cli_repl_command in cli_repl_cmd.h) and the settings it edits, one token
 * choice with the resulting settings, and — like the REPL does — a short
 * generation turn for each prompt line, on a tiny model (codepoint or jamo
 * vocabulary, chosen by bit 0 of byte 0), with the --stop/--match regexes
 * and beam settings the commands set.
 *
 * Input: byte 0 = message buffer size (1..256), then lines separated by '\n'
 * fed in order to one settings struct (so sequences like ":beam 4" then
 * ":match x" are explored). Invariants: the result is a known action; msg is
 * NUL-terminated inside its buffer; a prompt (CLI_REPL_TEXT) is a slice of
 * the line; CLI_REPL_ERROR leaves the settings unchanged; the settings always
 * pass crn_sample_settings_check and the parser's own cross-field rules
 * (beam search without --match, beam x length bounded); a sampled token is
 * in range and never <unk>; a generation turn emits complete UTF-8 chunks
 * whose concatenation is the result text, within the length, with a known
 * stop reason, and (sampling, stop match withheld) no text matching a stop
 * regex. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "regex.h"
#include "fuzz.h"
#include "rng.h"
#include "utf8.h"
#include "cli_repl_cmd.h"
#include "sampler.h"
#include "utf8.h"
#include "vocab.h"

static int settings_equal(const crn_sample_settings *a, const crn_sample_settings *b) {
    if (a->temperature != b->temperature || a->top_k != b->top_k || a->top_p != b->top_p || a->seed != b->seed ||
        a->length != b->length || a->beam != b->beam || a->keep_stop != b->keep_stop || a->strict != b->strict ||
        a->keep_state != b->keep_state || a->n_stop != b->n_stop)
        return 0;
    for (uint32_t i = 0; i < a->n_stop; i++)
        if (strcmp(a->stop[i], b->stop[i])) return 0;
    if (!a->match != !b->match) return 0;
    return !a->match || !strcmp(a->match, b->match);
}

static void check_settings(const crn_sample_settings *s) {
    int rc = crn_sample_settings_check(s);
    FUZZ_CHECK(rc == 0, "settings fail their own check: %d", rc);
    FUZZ_CHECK(s->temperature >= 0 && s->temperature <= CRN_SAMPLE_MAX_TEMPERATURE, "temperature %g", s->temperature);
    FUZZ_CHECK(s->top_p > 0 && s->top_p <= 1, "top_p %g", s->top_p);
    FUZZ_CHECK(s->length >= 1 && s->length <= CRN_SAMPLE_MAX_LENGTH, "length %u", s->length);
    FUZZ_CHECK(s->beam <= CRN_SAMPLE_MAX_BEAM, "beam %u", s->beam);
    FUZZ_CHECK(s->n_stop <= CRN_MAX_STOP, "n_stop %u", s->n_stop);
    for (uint32_t i = 0; i < s->n_stop; i++) FUZZ_CHECK(s->stop[i] != NULL, "stop[%u] is NULL", i);
    if (s->beam >= 2) {
        FUZZ_CHECK(s->match == NULL, "beam %u together with match", s->beam);
        FUZZ_CHECK((uint64_t)s->beam * s->length <= 10000000u, "beam %u x length %u", s->beam, s->length);
    }
}


/* Two tiny models, built once: an LSTM over a codepoint vocabulary and a GRU
 * over a jamo vocabulary of a short Korean/English text. */
typedef struct {
    crn_vocab *v;
    crn_model *m;
} tiny_model;
static tiny_model g_models[2];

static void build_models(void) {
    if (g_models[0].m) return;
    static const char text[] = "안녕하세요, 세계! 한국어 닭 값.\nhello world? abc 123\n";
    for (int k = 0; k < 2; k++) {
        uint8_t *norm = NULL;
        size_t nn = 0;
        FUZZ_CHECK(crn_utf8_normalize(&norm, &nn, (const uint8_t *)text, sizeof text - 1, CRN_NORM_NFC) == 0, "nfc");
        FUZZ_CHECK(crn_vocab_create(&g_models[k].v, k ? CRN_UNIT_JAMO : CRN_UNIT_CODEPOINT, CRN_NORM_NFC) == 0 &&
                       crn_vocab_count(g_models[k].v, norm, nn) == 0 && crn_vocab_finalize(g_models[k].v, 1) == 0,
                   "tiny vocabulary");
        free(norm);
        crn_model_config cfg = {k ? CRN_CELL_GRU : CRN_CELL_LSTM, CRN_ACT_TANH, crn_vocab_size(g_models[k].v), 0, 4, 1, 0, 0};
        FUZZ_CHECK(crn_model_create(&g_models[k].m, &cfg) == 0, "tiny model");
        crn_rng r;
        crn_rng_seed(&r, 7 + (uint64_t)k);
        crn_model_init(g_models[k].m, &r);
    }
}

typedef struct {
    uint8_t buf[4096];
    size_t len;
    int overflow;
} sink;

static int collect(void *user, const uint8_t *p, size_t n) {
    sink *k = user;
    FUZZ_CHECK(n > 0 && ref_utf8_wellformed(p, n), "an emitted chunk of %zu bytes is not complete UTF-8", n);
    if (n > sizeof k->buf - k->len) k->overflow = 1;
    else memcpy(k->buf + k->len, p, n), k->len += n;
    return 0;
}

/* One REPL turn: configure the generator with s (length and beam clamped to
 * keep a turn cheap), prime with the prompt, run. */
static void turn(crn_generator *g, const crn_sample_settings *s0, const char *prompt, size_t n) {
    crn_sample_settings s;
    FUZZ_CHECK(crn_sample_settings_copy(&s, s0) == 0, "copy");
    if (s.length > 24) s.length = 24;
    if (s.beam > 4) s.beam = 4;
    int rc = crn_generator_configure(g, &s);
    if (rc < 0) {
        FUZZ_CHECK_ERR(rc, "crn_generator_configure");
        crn_sample_settings_free(&s);
        return;
    }
    if (!s.keep_state) crn_generator_reset(g);
    crn_prime_info info;
    rc = crn_generator_prime(g, (const uint8_t *)prompt, n, &info);
    if (rc < 0) {
        FUZZ_CHECK_ERR(rc, "crn_generator_prime");
        FUZZ_CHECK(rc != CRN_EUTF8 || !ref_utf8_wellformed((const uint8_t *)prompt, n) || memchr(prompt, 0, n),
                   "valid prompt refused as invalid UTF-8");
        crn_sample_settings_free(&s);
        return;
    }
    FUZZ_CHECK(info.n_unk <= info.tokens && memchr(info.unknown, 0, sizeof info.unknown), "prime info");
    sink k = {.len = 0, .overflow = 0};
    crn_gen_result res;
    rc = crn_generator_run(g, collect, &k, &res);
    if (rc < 0) {
        FUZZ_CHECK_ERR(rc, "crn_generator_run");
    } else {
        FUZZ_CHECK(res.reason >= CRN_GEN_STOP_LENGTH && res.reason <= CRN_GEN_STOP_INTERRUPTED, "stop reason %d", (int)res.reason);
        FUZZ_CHECK(ref_utf8_wellformed(res.text, res.text_len), "result text is not UTF-8");
        if (s.beam >= 2) { /* beam search: length counts tokens */
            FUZZ_CHECK(res.tokens <= s.length, "%zu tokens for length %u", res.tokens, s.length);
            FUZZ_CHECK(res.reason != CRN_GEN_STOP_LENGTH || res.tokens == s.length,
                       "length stop after %zu of %u tokens", res.tokens, s.length);
        } else { /* sampling: length counts characters (NFC code points); a jamo prompt's open
                  * syllable may be restated, completed, as the first one */
            uint8_t *nfc = NULL;
            size_t nn = 0, chars = 0;
            if (crn_utf8_normalize(&nfc, &nn, res.text, res.text_len, CRN_NORM_NFC) == 0) {
                for (size_t i = 0; i < nn; i++) chars += (nfc[i] & 0xC0) != 0x80;
                FUZZ_CHECK(chars <= (size_t)s.length + 1, "%zu characters for length %u", chars, s.length);
            }
            free(nfc);
        }
        if (!k.overflow)
            FUZZ_CHECK(k.len == res.text_len && (k.len == 0 || !memcmp(k.buf, res.text, k.len)),
                       "emitted chunks (%zu bytes) differ from the result text (%zu bytes)", k.len, res.text_len);
        if (s.beam < 2 && !s.keep_stop) {
            for (uint32_t i = 0; i < s.n_stop; i++) {
                crn_regex *re = NULL;
                if (crn_regex_compile(&re, s.stop[i], 0) < 0) continue;
                size_t ms = 0, me = 0;
                int m = crn_regex_search(re, res.text, res.text_len, 0, &ms, &me);
                FUZZ_CHECK(m != 1, "emitted text contains a match [%zu, %zu) of stop regex '%s'", ms, me, s.stop[i]);
                crn_regex_destroy(re);
            }
        }
    }
    crn_sample_settings_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    crn_error_clear();
    size_t cap = 1 + data[0];
    char *msg = fuzz_xmalloc(cap + 1);
    msg[cap] = 0x5A; /* canary just past the buffer */
    crn_sample_settings s, before;
    crn_sample_settings_init(&s);
    check_settings(&s);

    /* logits for the token draws: a small vocabulary from the input */
    enum { V = 7 };
    real logits[V];
    for (int i = 0; i < V; i++) logits[i] = (real)((int)data[(size_t)i % size] - 128) / 16;
    void *scratch = fuzz_xmalloc(crn_sample_scratch_size(V));
    crn_rng rng;
    crn_rng_seed(&rng, size);
    build_models();
    tiny_model *tm = &g_models[data[0] & 1];
    crn_generator *g = NULL;
    FUZZ_CHECK(crn_generator_create(&g, tm->m, tm->v, &s) == 0, "generator_create with default settings");
    int turns = 0;

    const uint8_t *p = data + 1, *end = data + size;
    int lines = 0;
    while (p <= end && lines++ < 64) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        /* the line in its own allocation so ASan sees any read past it */
        char *line = fuzz_xmalloc(n);
        memcpy(line, p, n);
        FUZZ_CHECK(crn_sample_settings_copy(&before, &s) == 0, "settings copy");
        const char *text = NULL;
        size_t tl = 0;
        memset(msg, 0x7F, cap);
        int act = cli_repl_command(&s, line, n, &text, &tl, msg, cap);
        FUZZ_CHECK(act >= CLI_REPL_TEXT && act <= CLI_REPL_ERROR, "unknown action %d", act);
        FUZZ_CHECK(memchr(msg, 0, cap) != NULL, "msg is not NUL-terminated within %zu bytes", cap);
        FUZZ_CHECK(msg[cap] == 0x5A, "msg written past its %zu bytes", cap);
        if (act == CLI_REPL_TEXT) {
            FUZZ_CHECK(text >= line && tl <= n && text + tl <= line + n, "prompt is not a slice of the line");
            FUZZ_CHECK(settings_equal(&s, &before), "a prompt line changed the settings");
            if (turns++ < 4) turn(g, &s, text, tl);
        } else {
            FUZZ_CHECK(n >= 1 && line[0] == ':', "a line not starting with ':' was a command (%d)", act);
        }
        if (act == CLI_REPL_ERROR) {
            FUZZ_CHECK(settings_equal(&s, &before), "an error changed the settings");
            FUZZ_CHECK(msg[0] != 0 || cap == 1, "an error without a message");
        }
        check_settings(&s);
        if (act == CLI_REPL_SEED) crn_generator_seed(g, s.seed);
        if (act == CLI_REPL_RESET) crn_generator_reset(g);
        crn_sample_settings_free(&before);
        free(line);

        uint32_t tok = crn_sample_logits(logits, V, &s, &rng, scratch);
        FUZZ_CHECK(tok >= 1 && tok < V, "sampled token %u of %d", tok, V);
        if (!nl) break;
        p = nl + 1;
    }
    char small[24];
    cli_sample_settings_describe(&s, small, sizeof small);
    FUZZ_CHECK(memchr(small, 0, sizeof small) != NULL, "describe did not terminate");
    cli_sample_settings_describe(&s, msg, cap);
    FUZZ_CHECK(memchr(msg, 0, cap) != NULL && msg[cap] == 0x5A, "describe overflowed");
    crn_generator_destroy(g);
    crn_sample_settings_free(&s);
    free(scratch);
    free(msg);
    return 0;
}
