/* fuzz_repl_command.c — libFuzzer target: the REPL command parser
 * (crn_repl_command in sampler.h) and the settings it edits, plus one token
 * choice with the resulting settings.
 *
 * Input: byte 0 = message buffer size (1..256), then lines separated by '\n'
 * fed in order to one settings struct (so sequences like ":beam 4" then
 * ":match x" are explored). Invariants: the result is a known action; msg is
 * NUL-terminated inside its buffer; a prompt (CRN_REPL_TEXT) is a slice of
 * the line; CRN_REPL_ERROR leaves the settings unchanged; the settings always
 * pass crn_sample_settings_check and the parser's own cross-field rules
 * (beam search without --match, beam x length bounded); a sampled token is
 * in range and never <unk>. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz.h"
#include "rng.h"
#include "sampler.h"

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
        int act = crn_repl_command(&s, line, n, &text, &tl, msg, cap);
        FUZZ_CHECK(act >= CRN_REPL_TEXT && act <= CRN_REPL_ERROR, "unknown action %d", act);
        FUZZ_CHECK(memchr(msg, 0, cap) != NULL, "msg is not NUL-terminated within %zu bytes", cap);
        FUZZ_CHECK(msg[cap] == 0x5A, "msg written past its %zu bytes", cap);
        if (act == CRN_REPL_TEXT) {
            FUZZ_CHECK(text >= line && tl <= n && text + tl <= line + n, "prompt is not a slice of the line");
            FUZZ_CHECK(settings_equal(&s, &before), "a prompt line changed the settings");
        } else {
            FUZZ_CHECK(n >= 1 && line[0] == ':', "a line not starting with ':' was a command (%d)", act);
        }
        if (act == CRN_REPL_ERROR) {
            FUZZ_CHECK(settings_equal(&s, &before), "an error changed the settings");
            FUZZ_CHECK(msg[0] != 0 || cap == 1, "an error without a message");
        }
        check_settings(&s);
        crn_sample_settings_free(&before);
        free(line);

        uint32_t tok = crn_sample_logits(logits, V, &s, &rng, scratch);
        FUZZ_CHECK(tok >= 1 && tok < V, "sampled token %u of %d", tok, V);
        if (!nl) break;
        p = nl + 1;
    }
    char small[24];
    crn_sample_settings_describe(&s, small, sizeof small);
    FUZZ_CHECK(memchr(small, 0, sizeof small) != NULL, "describe did not terminate");
    crn_sample_settings_describe(&s, msg, cap);
    FUZZ_CHECK(memchr(msg, 0, cap) != NULL && msg[cap] == 0x5A, "describe overflowed");
    crn_sample_settings_free(&s);
    free(scratch);
    free(msg);
    return 0;
}
