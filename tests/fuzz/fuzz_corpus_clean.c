/* fuzz_corpus_clean.c — libFuzzer target: the corpus pipeline with a user
 * regex (crn_corpus_from_memory), the PCRE2 wrapper, and the batchers.
 *
 * Input layout:
 *   byte 0   bits 0-1 what the pattern is for: keep, drop, replace, all three
 *            bits 2-3 invalid-UTF-8 policy (mod 3), 4-5 unit (mod 3), 6-7 norm (mod 3)
 *   byte 1   bit 0 validation split 0.1 (else none), bits 1-2 min_count - 1,
 *            bit 3 load a second time with the first corpus's vocabulary,
 *            bits 4-5 batch B - 1, bits 6-7 seq T - 1
 *   then     the pattern (for replace: "REGEX=TEXT") up to the first '\n'
 *   then     the text
 * A bad pattern must give CRN_EREGEX/CRN_EINVAL with a message, a
 * pathological one CRN_ELIMIT — never a crash or a hang (libFuzzer's -timeout
 * catches those). A loaded corpus must be self-consistent: ids below the
 * vocabulary size, splits in range, batcher windows equal to the id array
 * shifted by one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "corpus.h"
#include "fuzz.h"
#include "regex.h"

static void check_corpus(const crn_corpus *c, int val, size_t B, size_t T) {
    uint32_t V = crn_vocab_size(c->vocab);
    FUZZ_CHECK(V >= 1 && c->wide == (V > 65536), "vocab size %u, wide %d", V, c->wide);
    FUZZ_CHECK(c->n_train <= c->n_tokens, "n_train %zu > n_tokens %zu", c->n_train, c->n_tokens);
    if (!val) FUZZ_CHECK(c->n_train == c->n_tokens, "no validation split, but n_train %zu of %zu", c->n_train, c->n_tokens);
    for (size_t i = 0; i < c->n_tokens; i++)
        FUZZ_CHECK(crn_corpus_id(c, i) < V, "id %u at %zu >= vocab size %u", crn_corpus_id(c, i), i, V);

    crn_batcher bt;
    int rc = crn_batcher_init(&bt, c, B, T);
    uint32_t *x = fuzz_xmalloc(B * T * sizeof *x), *y = fuzz_xmalloc(B * T * sizeof *y);
    if (rc < 0) {
        FUZZ_CHECK_ERR(rc, "crn_batcher_init");
        FUZZ_CHECK(c->n_train < B * T + 1, "batcher refused %zu tokens for B %zu T %zu", c->n_train, B, T);
    } else {
        FUZZ_CHECK(bt.n_win >= 1 && B * bt.row_len + 1 <= c->n_train, "batcher layout %zu windows, row %zu",
                   bt.n_win, bt.row_len);
        size_t nw = bt.n_win + 1; /* one wrap too */
        if (nw > 64) nw = 64;
        for (size_t w = 0; w < nw; w++) {
            size_t win = w % bt.n_win;
            int reset = -1;
            crn_batcher_next(&bt, x, y, &reset);
            FUZZ_CHECK(reset == (win == 0), "window %zu: reset %d", w, reset);
            for (size_t b = 0; b < B; b++)
                for (size_t t = 0; t < T; t++) {
                    size_t i = b * bt.row_len + win * T + t;
                    FUZZ_CHECK(x[t * B + b] == crn_corpus_id(c, i) && y[t * B + b] == crn_corpus_id(c, i + 1),
                               "window %zu (%zu, %zu) is not ids[%zu], ids[%zu]", w, t, b, i, i + 1);
                }
        }
    }
    size_t nvw = crn_val_windows(c, B, T);
    size_t nv = c->n_tokens - c->n_train;
    size_t pairs = 0;
    for (size_t w = 0; w < nvw && w < 64; w++) {
        crn_val_window(c, B, T, w, x, y);
        for (size_t k = 0; k < B * T; k++) {
            FUZZ_CHECK(x[k] < V, "val window %zu: input id %u", w, x[k]);
            FUZZ_CHECK(y[k] < V || y[k] == CRN_IGNORE, "val window %zu: target %u", w, y[k]);
            pairs += y[k] != CRN_IGNORE;
        }
    }
    if (nvw <= 64) FUZZ_CHECK(pairs == (nv >= 2 ? nv - 1 : 0), "val windows hold %zu pairs of %zu", pairs, nv);
    free(x);
    free(y);
}

/* The wrapper on its own: compile, search, replace, prefix. */
static void check_regex(const char *pat, const uint8_t *text, size_t n) {
    crn_regex *re = NULL;
    int rc = crn_regex_compile(&re, pat, 0);
    if (rc < 0) {
        FUZZ_CHECK(rc == CRN_EREGEX, "compile returned %d", rc);
        FUZZ_CHECK_ERR(rc, "crn_regex_compile");
        FUZZ_CHECK(re == NULL, "compile failed but left a regex");
        return;
    }
    FUZZ_CHECK(strcmp(crn_regex_pattern(re), pat) == 0, "pattern not kept");
    size_t start = 0, guard = 0;
    while (start <= n && guard++ < 64) {
        size_t ms = 0, me = 0;
        rc = crn_regex_search(re, text, n, start, &ms, &me);
        if (rc <= 0) {
            if (rc < 0) FUZZ_CHECK_ERR(rc, "crn_regex_search");
            break;
        }
        FUZZ_CHECK(start <= ms && ms <= me && me <= n, "match [%zu, %zu) from %zu in %zu bytes", ms, me, start, n);
        start = me > ms ? me : me + 1;
    }
    uint8_t *out = NULL;
    size_t olen = 0;
    long long k = crn_regex_replace(re, text, n, "<$0>", &out, &olen);
    if (k < 0) FUZZ_CHECK_ERR(k, "crn_regex_replace");
    else FUZZ_CHECK(out != NULL, "replace returned %lld and no text", k);
    free(out);
    crn_regex_destroy(re);

    rc = crn_regex_compile(&re, pat, CRN_REGEX_ANCHORED | CRN_REGEX_ENDANCHORED);
    FUZZ_CHECK(rc == 0, "pattern compiles unanchored but not anchored: %d", rc);
    for (size_t cut = 0; cut <= n && cut <= 8; cut++) {
        rc = crn_regex_prefix(re, text, cut);
        if (rc < 0) FUZZ_CHECK_ERR(rc, "crn_regex_prefix");
        else FUZZ_CHECK(rc <= CRN_PREFIX_EXTENSIBLE, "prefix class %d", rc);
    }
    crn_regex_destroy(re);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    crn_error_clear();
    uint8_t b0 = data[0], b1 = data[1];
    const uint8_t *rest = data + 2;
    size_t nrest = size - 2;
    const uint8_t *nl = memchr(rest, '\n', nrest);
    size_t plen = nl ? (size_t)(nl - rest) : nrest;
    const uint8_t *text = nl ? nl + 1 : rest + nrest;
    size_t n = nrest - (nl ? plen + 1 : plen);
    if (memchr(rest, 0, plen)) return 0; /* a C string pattern cannot hold NUL */
    char *pat = fuzz_xmalloc(plen + 1);
    memcpy(pat, rest, plen);
    pat[plen] = 0;

    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    int mode = b0 & 3;
    const char *pats[1] = {pat};
    if (mode == 0 || mode == 3) o.keep = pats, o.n_keep = 1;
    if (mode == 1 || mode == 3) o.drop = pats, o.n_drop = 1;
    if (mode == 2 || mode == 3) o.replace = pats, o.n_replace = 1;
    o.invalid = (enum crn_invalid)((b0 >> 2 & 3) % 3);
    o.unit = (enum crn_unit)((b0 >> 4 & 3) % 3);
    o.norm = (enum crn_norm)((b0 >> 6 & 3) % 3);
    int val = b1 & 1;
    o.val_frac = val ? 0.1 : 0;
    o.min_count = 1 + (b1 >> 1 & 3);
    size_t B = 1 + (b1 >> 4 & 3), T = 1 + (b1 >> 6 & 3);

    if (mode >= 2) {
        char *re = NULL, *rtext = NULL;
        int rc = crn_corpus_split_replace(pat, &re, &rtext);
        if (rc < 0) FUZZ_CHECK_ERR(rc, "crn_corpus_split_replace");
        else FUZZ_CHECK(re && rtext && strlen(re) > 0 && strlen(re) < plen, "split_replace('%s')", pat);
        free(re);
        free(rtext);
    } else {
        check_regex(pat, text, n);
    }

    crn_corpus *c = NULL;
    int rc = crn_corpus_from_memory(&c, "fuzz", text, n, &o, NULL);
    if (rc < 0) {
        FUZZ_CHECK_ERR(rc, "crn_corpus_from_memory");
        FUZZ_CHECK(c == NULL, "failed load left a corpus");
    } else {
        check_corpus(c, val, B, T);
        if (b1 & 8) {
            /* again with that vocabulary (evaluation / fine-tuning path) */
            crn_corpus *c2 = NULL;
            crn_corpus_opts o2 = o;
            o2.n_keep = o2.n_drop = o2.n_replace = 0;
            rc = crn_corpus_from_memory(&c2, "fuzz2", text, n, &o2, c->vocab);
            if (rc < 0) {
                FUZZ_CHECK_ERR(rc, "crn_corpus_from_memory(vocab)");
            } else {
                FUZZ_CHECK(crn_vocab_size(c2->vocab) == crn_vocab_size(c->vocab), "given vocabulary changed size");
                check_corpus(c2, val, B, T);
            }
            crn_corpus_destroy(c2);
        }
    }
    crn_corpus_destroy(c);
    free(pat);
    return 0;
}
