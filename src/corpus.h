/* corpus.h — a text file turned into token ids, ready for training.
 *
 * Loading: mmap the file, drop a leading UTF-8 BOM, check/repair UTF-8 (error
 * names path:line:col and the byte offset of the original file), normalise,
 * clean line by line with PCRE2 (keep, drop, then each replace in order; the
 * patterns see a normalised line without its '\n' or '\r\n', and lines
 * changed by a replacement are normalised again), count tokens into a vocabulary (unless one is given),
 * then encode into a compact id array (uint16 when the vocabulary has <= 65536
 * ids, else uint32). Work is done in pieces cut after '\n', so memory is the
 * id array plus a few copies of one piece (a piece is never cut inside a
 * line: the longest line bounds it).
 *
 * Split: the last val_frac of the ids is the validation split (contiguous).
 *
 * Batching (karpathy/char-rnn layout, as ../shared/bench/torch_charrnn.py):
 * the train ids are cut into B rows of L = n_win*T ids (n_win = (n_train-1) /
 * (B*T); the tail that does not fill a window is dropped); window w of row b
 * is ids[b*L + w*T .. +T) with targets shifted by one. At the end of an epoch
 * the window index wraps to 0 and the caller resets the model state. */
#ifndef CRN_CORPUS_H
#define CRN_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "idcache.h"
#include "regex.h"
#include "utf8.h"
#include "vocab.h"

typedef struct crn_corpus_opts {
    enum crn_unit unit;         /* default CRN_UNIT_CODEPOINT */
    enum crn_norm norm;         /* default CRN_NORM_NFC */
    enum crn_invalid invalid;   /* default CRN_INVALID_ERROR */
    uint64_t min_count;         /* default 1 */
    double val_frac;            /* default 0.1; 0 = no validation split */
    /* cleaning, applied per line in this order; patterns as typed by the user */
    const char **keep; size_t n_keep;       /* keep only lines matching any */
    const char **drop; size_t n_drop;       /* drop lines matching any */
    const char **replace; size_t n_replace; /* "REGEX=TEXT", split at the last '=' not escaped by '\' */
    /* Keep the ids in this file, mapped (see idcache.h), instead of in memory:
     * created or rebuilt when missing or stale, reused otherwise. Regular
     * files only (a pipe is loaded into memory as without it). NULL = memory. */
    const char *id_cache;
} crn_corpus_opts;

void crn_corpus_opts_default(crn_corpus_opts *o);

/* Split a --replace argument "REGEX=TEXT" at the last '=' not escaped by a
 * backslash; the regex keeps its backslashes ('\=' is a literal '=' to
 * PCRE2), the text loses the backslash of each '\='. *re and *text are
 * malloc'ed. @return 0 or CRN_EINVAL (no '=', empty regex). */
int crn_corpus_split_replace(const char *spec, char **re, char **text);

/* Test builds only (CRN_TEST_HOOKS; not thread-safe): the target size of a
 * piece in bytes and how much prepared text pass 1 may keep for pass 2 (0 =
 * always prepare twice). Defaults 8 MiB and 64 MiB; piece 0 restores the
 * default piece size. */
#if defined(CRN_TEST_HOOKS) && CRN_TEST_HOOKS
void crn_corpus_tune(size_t piece_bytes, size_t cache_bytes);
#endif

typedef struct crn_corpus {
    char *path;
    crn_vocab *vocab;        /* owned */
    int wide;                /* ids are uint32 (else uint16) */
    void *ids;               /* n_tokens ids (in memory, or inside map) */
    crn_idcache_map map;     /* the mapped id cache, or zero */
    enum crn_idcache_status id_cache_status;
    uint32_t text_crc;       /* CRC-32 of the file's bytes (with an id cache; else 0) */
    size_t n_tokens;
    size_t n_train;          /* ids [0, n_train) train, [n_train, n_tokens) validation */
    /* statistics */
    uint64_t n_bytes;        /* bytes of the file */
    uint64_t n_chars;        /* code points after cleaning and normalisation */
    uint64_t n_nfc_chars;    /* NFC code points of that text (= n_chars unless normalisation is none):
                              * the denominator of every bits-per-char figure */
    uint64_t n_val_chars;    /* NFC code points of the validation split's text */
    uint64_t n_invalid;      /* invalid sequences repaired (replace/skip) */
    uint64_t n_unk;          /* tokens mapped to <unk> */
    uint64_t n_lines_dropped;
    int had_bom;
} crn_corpus;

/* Load path with opts. If vocab is non-NULL it is used (copied) instead of
 * building one (evaluation and fine-tuning); unknown tokens count in n_unk.
 * @return 0 or a negative error with a message naming the file (missing,
 *         directory, unreadable, empty after cleaning, invalid UTF-8 at
 *         path:line:col (byte offset N), bad regex). */
int crn_corpus_load(crn_corpus **out, const char *path, const crn_corpus_opts *opts, const crn_vocab *vocab);
/* Same from memory (tests, prompts); name is used in messages. */
int crn_corpus_from_memory(crn_corpus **out, const char *name, const uint8_t *text, size_t n,
                           const crn_corpus_opts *opts, const crn_vocab *vocab);
void crn_corpus_destroy(crn_corpus *c); /* NULL is a no-op */

/* The characters predicted when all n_tokens of c are scored as one text
 * (count targets): the NFC code points of the source text after the first
 * (every unit, also under --normalize none); for code points of composed
 * text (nfc, nfkc) that is exactly the targets, as the PyTorch peer counts. The bits
 * per char denominator of `charrnn eval` and charrnn_score. */
double crn_corpus_chars_predicted(const crn_corpus *c, uint64_t count);

static inline uint32_t crn_corpus_id(const crn_corpus *c, size_t i) {
    return c->wide ? ((const uint32_t *)c->ids)[i] : ((const uint16_t *)c->ids)[i];
}

/* Truncated-BPTT batch iterator over the train split (layout above). */
typedef struct crn_batcher {
    const crn_corpus *c;
    size_t B, T;
    size_t row_len;    /* L */
    size_t n_win;      /* windows per epoch */
    size_t win;        /* next window */
    uint64_t epoch;    /* completed epochs */
    size_t rel_win;    /* mapped ids of windows before this one are released */
    size_t row0, rows; /* the rows [row0, row0 + rows) of the B this batcher fills (all B by default) */
} crn_batcher;

/* @return 0, or CRN_EEMPTY / CRN_ERANGE if the train split is shorter than one
 *         window of B*T+1 ids (the message says how many are needed). */
int crn_batcher_init(crn_batcher *bt, const crn_corpus *c, size_t B, size_t T);
/* Fill x and y (T, B) time-major: x[t*B + b]. *reset is set to 1 when this
 * window starts an epoch (window 0, including the very first call: the
 * caller zeroes the carried state), else 0. */
void crn_batcher_next(crn_batcher *bt, uint32_t *x, uint32_t *y, int *reset);
/* Fill only rows [row0, row0 + rows) of the B (one MPI rank's part): x and y
 * become (T, rows). The layout (row length, windows per epoch) still follows
 * B, so the rows are those of a batcher over all B. row0 + rows <= B. */
void crn_batcher_set_rows(crn_batcher *bt, size_t row0, size_t rows);

/* Validation layout (as the peer's evaluate): of the validation ids
 * v = ids[n_train, n_tokens), the n = n_val-1 (input v[i], target v[i+1])
 * pairs are cut into B rows of L = ceil(n/B); padded positions have input 0
 * and target CRN_IGNORE; each row starts from a zero state. Fills window w (T, B) of that layout;
 * returns the number of windows. */
size_t crn_val_windows(const crn_corpus *c, size_t B, size_t T);
void crn_val_window(const crn_corpus *c, size_t B, size_t T, size_t w, uint32_t *x, uint32_t *y);
/* The same layout over any range of ids [begin, end) (crn_evaluate_ids):
 * positions t0 .. t0+T-1 of each of the B rows into x, y (T, B). */
void crn_range_window(const crn_corpus *c, size_t begin, size_t end, size_t B, size_t t0, size_t T, uint32_t *x,
                      uint32_t *y);
/* Rows [b0, b0 + nb) of the B rows of that layout only: x, y (T, nb). */
void crn_range_window_rows(const crn_corpus *c, size_t begin, size_t end, size_t B, size_t b0, size_t nb, size_t t0,
                           size_t T, uint32_t *x, uint32_t *y);

#endif
