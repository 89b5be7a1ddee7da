/* autoconf.h — a model and batch for a time budget: the presets of
 * `charrnn train --preset` and the automatic choice made when a new run is
 * given no model options (docs/training.md, "Configuration for the budget").
 *
 * The choice uses the corpus size and vocabulary, the time budget and the
 * training speed of this machine, measured by a short probe (crn_auto_probe;
 * without it, estimated from the FLOPs at the reference machine's ~150
 * GFLOPS): the number of training tokens in the budget, against each
 * preset's parameter count and the corpus length. */
#ifndef CRN_AUTOCONF_H
#define CRN_AUTOCONF_H

#include <stddef.h>
#include <stdint.h>

#include "train.h"
#include "utf8.h"

enum crn_preset { CRN_PRESET_NONE = 0, CRN_PRESET_TINY, CRN_PRESET_SMALL, CRN_PRESET_MEDIUM, CRN_PRESET_LARGE };
#define CRN_PRESET_COUNT 5

const char *crn_preset_name(enum crn_preset p);
/* "tiny", "small", "medium", "large"; @return 0 or -1. */
int crn_preset_parse(const char *s, enum crn_preset *out);

/* Set o's cell, layers, hidden, embed, dropout, batch and seq to preset p's
 * (p != CRN_PRESET_NONE). */
void crn_preset_apply(crn_train_opts *o, enum crn_preset p);

/* Parameters of a preset's model for a vocabulary of V tokens (with layer
 * normalisation's gains when layer_norm). */
uint64_t crn_preset_params(enum crn_preset p, uint32_t V, int layer_norm);
/* Estimated training speed of preset p for a vocabulary of V tokens on the
 * reference machine, with or without layer normalisation, characters per
 * second (autoconf.c; used when no probe measured it). */
double crn_preset_chars_per_s(enum crn_preset p, uint32_t V, int layer_norm);

/* What the choice is made from. */
typedef struct crn_auto_input {
    uint64_t chars;     /* tokens in the corpus (crn_auto_scan: code points, or jamo) */
    uint32_t vocab;     /* distinct tokens (+1 for <unk>) */
    double seconds;     /* the time budget */
    double val_frac;    /* share of the text kept for validation */
    /* Training speed per preset in chars/s as measured on this machine by
     * crn_auto_probe (0 = not measured: crn_preset_chars_per_s's estimate). */
    double cps[CRN_PRESET_COUNT];
} crn_auto_input;

/* Measure the training speed of the presets the choice can reach, on this
 * machine with the run's thread count and layer-norm setting: from the
 * largest down, each preset the text is long enough for is timed by
 * crn_probe_speed with its model and batch, into in->cps, until one fits
 * the budget (the rest are not needed). About 3 s at most on 2 cores
 * (large: ~0.3 s a step).
 * Allocates; call before training. @return 0 or a negative error. */
int crn_auto_probe(crn_auto_input *in, int threads, uint32_t layer_norm);

/* Count the tokens and distinct tokens of a UTF-8 file in a unit: code
 * points (codepoint, and grapheme, whose clusters are about one code point
 * in composed text), or, for jamo, a Hangul syllable as its 2-3 conjoining
 * jamo (bytes that are not valid UTF-8 count as one token each, with one
 * shared id). @return 0 or CRN_EIO / CRN_ENOMEM with a message naming the file. */
int crn_auto_scan(const char *path, enum crn_unit unit, crn_auto_input *in);

/* Training speed of a model configuration at batch B x window T on this
 * machine with `threads` threads (0: one a core): two warm-up gradient
 * steps (forward, backward, clip) on random ids, then timed ones for at
 * least 0.25 s (and two steps), as chars/s into *cps. Allocates.
 * @return 0 or a negative error. */
int crn_probe_speed(const crn_model_config *cfg, uint32_t B, uint32_t T, int threads, double *cps);

/* Dropout against overfitting for a budget of `epochs` passes over the
 * training text: 0 up to F, then 0.15 x log2(epochs / F) up to 0.25 (from
 * 3.2 F epochs on), rounded to 0.01, with F = 3 for the gated cells and 7
 * for the Elman RNN, which overfits later (docs/training.md, "Dropout for
 * the budget"). */
float crn_dropout_for_epochs(double epochs, enum crn_cell cell);

/* Passes over train_chars training tokens that o's budget covers: the least
 * of --epochs, --steps x batch x seq, and the time limit at cps chars/s
 * (less the share evaluations take; ignored when cps is 0). 0 without one. */
double crn_budget_epochs(const crn_train_opts *o, double train_chars, double cps);

/* The dropout of a new run that names its model but not its dropout:
 * crn_dropout_for_epochs of the epochs o's budget covers over in's
 * training text (cps: the run's measured chars/s, 0 for a budget without
 * time), 0 for one layer (dropout acts between layers). Sets
 * o->model.dropout; when it is not 0, writes one line saying why into why
 * (cap bytes; else ""). @return the dropout. */
float crn_budget_dropout(crn_train_opts *o, const crn_auto_input *in, double cps, char *why, size_t cap);

/* Pick the preset, dropout, embedding, learning rate and schedule for in and
 * apply them to o (priced with o's layer-norm setting) (a decaying cosine schedule over the time budget). Writes
 * one line saying what was chosen and why into why (cap bytes).
 * @return the preset chosen. */
enum crn_preset crn_auto_config(crn_train_opts *o, const crn_auto_input *in, char *why, size_t cap);

#endif
