/* show.h — what a model sees in a text: per-character surprise, the
 * candidates it weighed at each step, unit activations and how they follow
 * simple text features; written as one self-contained HTML page
 * (`charrnn show`, `charrnn generate --show`) or as CSV.
 *
 * Characters. The page's unit is the extended grapheme cluster of the
 * normalised text (UAX #29, utf8proc), whatever the model's token unit: a
 * code point model's tokens inside one cluster (a base and its combining
 * marks, an emoji ZWJ sequence) and a jamo model's jamo of one syllable are
 * summed into one character, so text is drawn as it was written.
 *
 * Scoring is eval's: the normalised text is encoded with the model's
 * vocabulary and run as one stream from a zero state through
 * crn_model_forward (B = 1, T = 1), whose loss is the fused softmax
 * cross-entropy eval sums; so the sum of a text's bits equals `charrnn eval
 * --batch 1` on that text. The first token is not predicted (as in eval).
 *
 * Activations: after the last token of a character, every unit's hidden
 * state h (or, with cell_state, an LSTM's cell state c), per layer.
 *
 * Features (crn_show_feature), per character, for --neurons auto:
 *   quote     1 inside "...", “...”, «...», 「...」 or 『...』 (marks included)
 *   bracket   1 inside (...), [...] or {...} at any depth (brackets included)
 *   linepos   characters since the last line break (0 = first of a line)
 *   linestart 1 for the first character of a line
 *   hangul    1 Hangul, -1 Latin letter, 0 anything else (all 0 unless both occur)
 *   word      1 letters, marks and digits, 0 anything else
 * Each unit's Pearson correlation with each feature is computed over the
 * shown characters; a constant feature correlates with nothing (0). */
#ifndef CRN_SHOW_H
#define CRN_SHOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "vocab.h"

#define CRN_SHOW_DEFAULT_TOP 5u
#define CRN_SHOW_MAX_TOP 50u
#define CRN_SHOW_DEFAULT_MAX_CHARS 20000u
#define CRN_SHOW_MAX_CHARS 1000000u
#define CRN_SHOW_MAX_NEURONS 32u

enum crn_show_feature {
    CRN_FEAT_QUOTE = 0, CRN_FEAT_BRACKET, CRN_FEAT_LINEPOS, CRN_FEAT_LINESTART, CRN_FEAT_HANGUL, CRN_FEAT_WORD,
    CRN_FEAT_COUNT
};
/* "quote", "bracket", ...; a short description for the page ("inside quotes"). */
const char *crn_show_feature_name(int f);
const char *crn_show_feature_label(int f);

/* One unit: layer and index, and (filled by crn_show_run) the feature it
 * follows best and that correlation (feature -1 if every feature is constant). */
typedef struct crn_show_unit {
    uint32_t layer, index;
    int feature;
    double corr;
} crn_show_unit;

/* Parse "L:i,L:j,..." (layers and units 0-based) into units (cap entries).
 * @return the count (>= 1) or CRN_EINVAL with a message naming the entry. */
int crn_show_parse_units(crn_show_unit *units, size_t cap, const char *spec);

typedef struct crn_show_opts {
    uint32_t top_k;            /* candidates per character, [1, CRN_SHOW_MAX_TOP]; default 5 */
    size_t max_chars;          /* characters shown (and scored), [1, CRN_SHOW_MAX_CHARS]; default 20000 */
    int cell_state;            /* activations are LSTM cell states (else hidden states) */
    int auto_neurons;          /* choose units: the best unused unit for each feature */
    const crn_show_unit *units; size_t n_units; /* or these (at most CRN_SHOW_MAX_NEURONS) */
    /* Context scored before the text and drawn dimmed (generate: the prompt).
     * Its characters are shown and count against max_chars, not in bits/char. */
    const uint8_t *prefix; size_t prefix_len;
    /* Called every 1024 tokens scored and at the end (may be NULL). */
    void (*progress)(void *ud, size_t done, size_t total);
    void *progress_ud;
} crn_show_opts;

void crn_show_opts_default(crn_show_opts *o);

typedef struct crn_show_char {
    size_t byte, len;          /* the character's bytes in crn_show.text */
    size_t tok, ntok;          /* its tokens in crn_show.ids */
    double bits;               /* -log2 p summed over its predicted tokens; NaN if none was predicted */
    int prefix;                /* part of the prefix (prompt) */
} crn_show_char;

typedef struct crn_show {
    uint8_t *text; size_t text_len;   /* normalised text shown (prefix + text, cut at the cap) */
    crn_show_char *chars; size_t n_chars;
    size_t total_chars;               /* characters of prefix + text before the cap */
    uint32_t *ids; size_t n_tokens;
    double *tok_bits;                 /* (n_tokens) -log2 p of each token; NaN for the first */
    uint32_t top_k;
    uint32_t *top_ids; float *top_p;  /* (n_chars, top_k): the distribution the first token of
                                         each character was drawn from; p = 0 where none */
    uint32_t layers, hidden;
    int cell_state;
    float *act;                       /* (n_chars, layers * hidden), layer-major within a row */
    float *feat;                      /* (CRN_FEAT_COUNT, n_chars) */
    crn_show_unit *units; size_t n_units;
    double bits;                      /* summed over the non-prefix characters */
    uint64_t codepoints;              /* NFC code points of the non-prefix text */
    size_t n_unk;                     /* tokens not in the vocabulary (scored as <unk>) */
    size_t n_invalid;                 /* invalid UTF-8 sequences replaced by U+FFFD */
} crn_show;

/* Run the model m (vocabulary v) over text[0, n) (any bytes: a BOM is
 * dropped, invalid UTF-8 replaced by U+FFFD as eval does, then normalised
 * with the vocabulary's normalisation). Reserves m's arena for (1, 1).
 * @return 0, or CRN_EEMPTY (no tokens), CRN_EINVAL (a unit out of range,
 *         cell_state without LSTM, bad options), CRN_ERANGE (activations of
 *         max_chars characters would not fit in memory), CRN_ENONFINITE (the
 *         model's output overflows: blown-up weights), CRN_ENOMEM. */
int crn_show_run(crn_show **out, crn_model *m, const crn_vocab *v, const uint8_t *text, size_t n,
                 const crn_show_opts *o);
void crn_show_destroy(crn_show *s); /* NULL is a no-op */

/* Bits per character of the non-prefix text: bits / (code points - 1) as
 * eval counts them (NaN if fewer than 2). */
double crn_show_bits_per_char(const crn_show *s);

/* The page. */
enum crn_show_mode {
    CRN_SHOW_SURPRISE = 0,     /* colour: surprise in bits of each character */
    CRN_SHOW_GENERATED = 1,    /* colour: probability of each generated character */
};
typedef struct crn_show_page {
    enum crn_show_mode mode;
    const char *title;         /* e.g. the text's file name (escaped on output) */
    const char *model_name;    /* e.g. the model's path */
    const char *note;          /* an extra line (e.g. sampling settings), or NULL */
} crn_show_page;

/* Write the HTML page (inline CSS and JS, no external resource; every
 * character of the text escaped) / the CSV (one row per character:
 * index, char, tokens, bits, p, top-k candidates and their p, then every
 * unit's activation l<L>.h<i> or l<L>.c<i>).
 * @return 0 or CRN_EIO (name names the output in the message). */
int crn_show_write_html(FILE *f, const char *name, const crn_show *s, const crn_vocab *v, const crn_show_page *pg);
int crn_show_write_csv(FILE *f, const char *name, const crn_show *s, const crn_vocab *v);

#endif
