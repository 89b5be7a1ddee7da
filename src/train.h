/* train.h — the training loop: truncated BPTT over a corpus, gradient
 * clipping, the optimizer, validation, the best model, checkpoints and
 * resume, early stopping, and stop requests (signals).
 *
 * Files. Training into MODEL writes two checkpoints, both complete and
 * loadable by every command:
 *   MODEL         the best model by validation loss (written at each eval
 *                 that improves it; with no validation split, the latest).
 *                 It also carries the optimizer state (unless
 *                 no_optimizer_state) and the training state of that moment.
 *   MODEL.resume  the latest state: parameters, optimizer state and training
 *                 state (step, data position, carried hidden state, RNG,
 *                 options, history), written at every eval, every save_every,
 *                 at the end and when stopped by a signal.
 * Resuming loads MODEL.resume (falling back to MODEL if it is missing,
 * damaged, or belongs to another run: its run_id differs from MODEL's; see
 * crn_train_open_resume) and continues exactly: with one thread, N steps +
 * resume to N+M gives bit-for-bit the parameters and optimizer state of N+M
 * steps in one go.
 *
 * The training state is a little-endian byte string owned by this file
 * (format below, crn_train_blob_*), stored by checkpoint.c as one
 * checksummed section; decoding bounds-checks every field. */
#ifndef CRN_TRAIN_H
#define CRN_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "corpus.h"
#include "model.h"
#include "optim.h"
#include "train_report.h"
#include "rng.h"

#define CRN_RESUME_SUFFIX ".resume"
/* The corpus's token ids are kept in MODEL + this, mapped (see idcache.h):
 * made on the first run, reused while the corpus and options are unchanged,
 * deletable at any time. */
#define CRN_IDS_SUFFIX ".ids"

/* Options of a run. Strings and string arrays are owned (malloc'ed) and freed
 * by crn_train_opts_free(). */
typedef struct crn_train_opts {
    /* data */
    char *corpus_path;
    enum crn_unit unit;
    enum crn_norm norm;
    enum crn_invalid invalid;
    uint64_t min_count;
    double val_frac;
    char **keep; size_t n_keep;
    char **drop; size_t n_drop;
    char **replace; size_t n_replace;
    uint32_t batch, seq;            /* B streams x T steps per window */
    /* model (cfg.vocab is set from the corpus) */
    crn_model_config model;
    crn_init_spec init;             /* initialisation of a fresh model (--init, --forget-bias) */
    /* optimisation */
    crn_optim_config optim;
    double clip;                    /* global-norm clip, 0 = off; default 5 */
    crn_schedule sched;             /* sched.lr is taken from optim.lr */
    /* budget: whichever comes first (0 = none); steps and epochs are totals
     * for the whole run, the time is this session's (a resumed run gets it again) */
    double time_limit;              /* seconds of this session */
    uint64_t max_steps;
    uint64_t max_epochs;
    /* evaluation, early stopping, checkpoints */
    uint64_t eval_every;            /* steps; 0 = only at the end */
    uint32_t patience;              /* evals without improvement; 0 = off */
    uint64_t save_every_steps;      /* 0 = off */
    double save_every_seconds;      /* 0 = off */
    int no_optimizer_state;         /* MODEL (the best) without optimizer state */
    /* misc */
    uint64_t seed;
    int threads;                    /* <= 0: all cores (not saved) */
    char *log_path;                 /* CSV log or NULL */
    uint64_t sample_every;          /* steps (at evals); 0 = off */
    uint32_t sample_len;            /* tokens per sample */
} crn_train_opts;

/* Defaults (stated in `charrnn train --help`). */
void crn_train_opts_default(crn_train_opts *o);
void crn_train_opts_free(crn_train_opts *o);    /* frees the owned strings; NULL ok */
/* Free a string list of the options (keep, drop, replace) and its n strings; NULL ok. */
void crn_train_list_free(char **a, size_t n);
/* Deep copy (dst is overwritten, not freed first). @return 0 or CRN_ENOMEM. */
int crn_train_opts_copy(crn_train_opts *dst, const crn_train_opts *src);
/* Set one option by the name of its `charrnn train` long option ("hidden",
 * "lr", "keep" (appends), "time" (a duration: 90s, 10m, 1.5h), ...), with the
 * CLI's ranges (train_opts.c). @return 0, CRN_ENOTFOUND (no such option),
 * CRN_EINVAL / CRN_ERANGE (bad value; o unchanged) or CRN_ENOMEM. */
int crn_train_opts_set(crn_train_opts *o, const char *name, const char *value);

/* The options by name, as bits of a mask of the ones a session gives
 * (bit 1 << CRN_TOPT_x: option x was given). In the order of train_opts.c's table. */
enum crn_train_opt {
    CRN_TOPT_CORPUS, CRN_TOPT_UNIT, CRN_TOPT_NORMALIZE, CRN_TOPT_INVALID, CRN_TOPT_MIN_COUNT, CRN_TOPT_VAL_FRAC,
    CRN_TOPT_KEEP, CRN_TOPT_DROP, CRN_TOPT_REPLACE, CRN_TOPT_CELL, CRN_TOPT_ACTIVATION, CRN_TOPT_LAYERS,
    CRN_TOPT_HIDDEN, CRN_TOPT_EMBED, CRN_TOPT_DROPOUT, CRN_TOPT_LAYER_NORM, CRN_TOPT_INIT, CRN_TOPT_FORGET_BIAS,
    CRN_TOPT_PRESET, CRN_TOPT_BATCH, CRN_TOPT_SEQ, CRN_TOPT_OPTIMIZER, CRN_TOPT_LR, CRN_TOPT_WEIGHT_DECAY,
    CRN_TOPT_MOMENTUM, CRN_TOPT_CLIP, CRN_TOPT_SCHEDULE, CRN_TOPT_LR_DECAY, CRN_TOPT_LR_DECAY_AFTER,
    CRN_TOPT_WARMUP, CRN_TOPT_TIME, CRN_TOPT_STEPS, CRN_TOPT_EPOCHS, CRN_TOPT_EVAL_EVERY, CRN_TOPT_PATIENCE,
    CRN_TOPT_SAVE_EVERY, CRN_TOPT_NO_OPTIMIZER_STATE, CRN_TOPT_SEED, CRN_TOPT_THREADS, CRN_TOPT_LOG,
    CRN_TOPT_SAMPLE_EVERY, CRN_TOPT_SAMPLE_LEN, CRN_TOPT_COUNT
};
#define CRN_TOPT_BIT(id) ((uint64_t)1 << (id))
/* The id of the option named name ("hidden"), or -1; and back (NULL if none). */
int crn_train_opt_id(const char *name);
const char *crn_train_opt_name(int id);

/* The options that may change between sessions of a run, from given into
 * dst: those whose bit is in mask (only their fields of given are read).
 * Rules (docs/training.md "Options on resume"): an optimizer kind that
 * differs starts from its defaults (then lr, weight-decay, momentum as
 * given); lr-decay without schedule selects the step schedule; giving any of
 * time, steps, epochs replaces all three (a cosine/linear schedule's length
 * is then recomputed). Used for fresh runs too (dst = the defaults).
 * @return 0 or CRN_ENOMEM. */
int crn_train_opts_apply_session(crn_train_opts *dst, const crn_train_opts *given, uint64_t mask);
/* Options that cannot work together, refused before a run starts (a
 * session's final options): an activation other than tanh with a cell other
 * than rnn; a cosine or linear schedule without a budget to decay over.
 * @return 0 or CRN_EINVAL naming them. */
int crn_train_opts_check(const crn_train_opts *o);
/* The options of a resumed session: saved (the run's, decoded from its
 * checkpoint, model = the checkpoint's config) with the given ones (mask as
 * above) applied by crn_train_opts_apply_session, corpus (a path) replaced
 * if given. Refused: an option that would make the saved state meaningless
 * (cell, activation, layers, hidden, embed, dropout, layer-norm, init,
 * forget-bias, unit, normalize, invalid, min-count, val-frac, keep, drop,
 * replace, batch, seq, optimizer, when given a value other than the saved
 * one; preset always). saved is modified in place.
 * @return 0, CRN_EINVAL ("hidden conflicts with the checkpoint (hidden 128);
 *         a resumed run keeps its model, data and optimizer settings";
 *         *refused = the option's id, else -1; saved is then unchanged) or
 *         CRN_ENOMEM. */
int crn_train_opts_resume(crn_train_opts *saved, const crn_train_opts *given, uint64_t mask, int *refused);

enum crn_train_stop {
    CRN_TRAIN_STOP_NONE = 0, CRN_TRAIN_STOP_STEPS = 1, CRN_TRAIN_STOP_EPOCHS = 2, CRN_TRAIN_STOP_TIME = 3,
    CRN_TRAIN_STOP_PATIENCE = 4, CRN_TRAIN_STOP_SIGNAL = 5, CRN_TRAIN_STOP_NONFINITE = 6, CRN_TRAIN_STOP_ERROR = 7,
};
const char *crn_train_stop_name(enum crn_train_stop r);

/* Where a run is: everything, besides the parameters and optimizer moments,
 * that an exact resume needs, and a summary of the history for `info`. */
typedef struct crn_train_status {
    uint64_t run_id;                /* random per fresh run: MODEL and MODEL.resume must agree */
    uint64_t step;                  /* optimizer steps done (skipped steps count too) */
    uint64_t epoch, win;            /* batcher position: completed epochs, next window */
    double elapsed;                 /* training seconds so far */
    int has_best;
    double best_val_bpc;
    uint64_t best_step;
    uint32_t bad_evals;             /* evals since the best (patience) */
    uint32_t nonfinite_total, nonfinite_run;
    double lr_scale;                /* halved after each non-finite step (1 otherwise) */
    uint64_t horizon;               /* time-budgeted cosine/linear schedule: the step the decay
                                     * ends at, as last estimated (0 = not yet estimated) */
    crn_rng rng;                    /* dropout stream */
    /* history */
    uint64_t n_evals;
    double first_val_bpc, last_val_bpc, last_val_bpt, last_train_bpc;
    uint64_t tokens_seen;
    uint32_t stop_reason;           /* enum crn_train_stop of the last session */
    uint64_t started_unix;          /* wall-clock start of the run */
    /* carried hidden state (B streams): per layer h (B, H), then c (B, H) for LSTM */
    uint32_t carry_layers, carry_batch, carry_hidden, carry_has_c;
    float *carry;                   /* owned; NULL if none */
} crn_train_status;

void crn_train_status_free(crn_train_status *s); /* frees carry; NULL ok */

/* Training state blob (all little-endian):
 *   "CRNTRAIN" u32 version(2; version 1 is read too)
 *   state fields in the order of crn_train_status up to started_unix
 *     (u64/u32, f64 as IEEE bits)
 *   options in the order of crn_train_opts up to sample_len, without init
 *     (strings: u32 length + bytes; arrays: u32 count + strings)
 *   carried state: u32 L, B, H, has_c, then L*(1+has_c)*B*H f32
 *   version 2 only: u32 init kind, f32 forget bias (NaN = as drawn),
 *     u64 horizon (version 1 reads as: pytorch init, forget bias 1, horizon 0)
 * @return 0, or CRN_ENOMEM / CRN_EFORMAT ("training state at byte N: ..."). */
int crn_train_blob_encode(uint8_t **out, size_t *len, const crn_train_opts *o, const crn_train_status *s);
int crn_train_blob_decode(crn_train_opts *o, crn_train_status *s, const uint8_t *buf, size_t len);

/* The checkpoint a resume of the run whose files are base (MODEL) and
 * resume_path (MODEL.resume) continues from: resume_path if it loads, has a
 * training state and its run_id agrees with base's (or base has none), else
 * base. *from_resume says which. note (cap bytes, may be 0) receives a
 * warning line when resume_path was passed over ("" if none).
 * @return 0, the load error of base, or CRN_EINVAL if base has no training
 *         state (a model-only file). */
int crn_train_open_resume(crn_checkpoint **out, int *from_resume, const char *base, const char *resume_path,
                          char *note, size_t cap);

/* A run to continue, opened from MODEL or MODEL.resume (path): its files,
 * the checkpoint resumed (crn_train_open_resume), its saved options
 * (model = the checkpoint's config) and state. */
typedef struct crn_train_resumed {
    char *base, *resume_path;       /* MODEL, MODEL.resume (owned) */
    const char *loaded_from;        /* base or resume_path: the file resumed */
    crn_checkpoint *ck;             /* owned (NULL once handed over) */
    crn_train_opts opts;            /* the run's options */
    crn_train_status state;         /* the run's state */
} crn_train_resumed;

/* Open the run path names (MODEL or MODEL.resume); note as for
 * crn_train_open_resume. @return 0 or a negative error (r is then freed). */
int crn_train_resumed_open(crn_train_resumed *r, const char *path, char *note, size_t cap);
void crn_train_resumed_free(crn_train_resumed *r); /* NULL ok; r zeroed */

/* Ask a running loop to stop after the current step (async-signal-safe). */
void crn_train_request_stop(void);
int crn_train_stop_requested(void);
void crn_train_clear_stop(void);
/* Test builds only (CRN_TEST_HOOKS): steps from_step .. from_step+count-1
 * (0-based) see a NaN loss. */
#if defined(CRN_TEST_HOOKS) && CRN_TEST_HOOKS
void crn_train_fault_nan(uint64_t from_step, uint64_t count);
/* Steps [from_step, from_step + count) get gradient element 0 set to value
 * (after clipping), e.g. 1e30 with --clip 0 to overflow an optimizer's state. */
void crn_train_fault_grad(uint64_t from_step, uint64_t count, float value);
#endif

/* How a run starts. */
typedef struct crn_train_start {
    const char *out_path;           /* MODEL (required) */
    crn_checkpoint *resume;         /* continue this run (its blob decoded into the opts passed) */
    const crn_train_status *resume_state;
    crn_checkpoint *init_from;      /* start from these weights and vocabulary, fresh optimizer */
    int extend_vocab;               /* with init_from: new tokens get new rows */
    int log_append;                 /* append to the CSV log (resume) */
} crn_train_start;

typedef struct crn_trainer crn_trainer;

/* Load the corpus, build or take over the model, optimizer and state.
 * Takes ownership of start->resume/init_from's vocab, model and optim (their
 * fields are set to NULL). @return 0 or a negative error. */
int crn_trainer_create(crn_trainer **out, const crn_train_opts *opts, crn_train_start *start);
void crn_trainer_destroy(crn_trainer *t); /* NULL is a no-op */
/* Run until a budget, patience, a stop request or an error. cb may be NULL.
 * @return 0 (budget or patience reached), CRN_EINTR (stop requested; state
 *         saved), CRN_ENONFINITE (repeated non-finite steps), or an error. */
int crn_trainer_run(crn_trainer *t, crn_progress_fn cb, void *ud);
/* A flag checked between steps (and during validation) besides the
 * process-wide crn_train_request_stop: non-zero stops the run as a signal
 * does. NULL = none. */
void crn_trainer_set_stop_flag(crn_trainer *t, volatile sig_atomic_t *flag);
/* The gradient half of one training step (the trainer's, and the bench's):
 * zero the gradients, forward over the window x, y (T, B) from st (the
 * carried state, advanced; dropout from rng, NULL = none), and if the loss
 * is finite backward and clip the global norm to clip (0 = off). *loss is the
 * summed loss in nats over *count targets, *norm the norm before clipping
 * (NaN if the loss is not finite: then nothing was back-propagated). The
 * caller updates with crn_optim_step when both are finite. No allocation.
 * @return 0 or a negative error (sizes beyond crn_model_reserve). */
int crn_train_step_gradient(crn_model *m, crn_state *st, const uint32_t *x, const uint32_t *y, uint32_t B,
                            uint32_t T, crn_rng *rng, double clip, double *loss, size_t *count, double *norm);

/* After run: the state, the corpus, the model (read only). */
const crn_train_status *crn_trainer_state(const crn_trainer *t);
const crn_corpus *crn_trainer_corpus(const crn_trainer *t);
crn_model *crn_trainer_model(crn_trainer *t);
/* Number of tokens the fine-tuning corpus had that the base vocabulary lacks
 * (mapped to <unk>, or added with extend_vocab). */
uint64_t crn_trainer_new_tokens(const crn_trainer *t);
/* Did MODEL get written in this session or an earlier one of the run? */
int crn_trainer_has_model_file(const crn_trainer *t);

/* Cross-entropy of ids[begin, end) of a corpus under a model, in the
 * validation layout (B rows of ceil(n/B) targets, each row from a zero state,
 * windows of T): the summed loss in nats and the number of targets. Used by
 * `charrnn eval`. Reserves the model arena for (B, T). */
int crn_evaluate_ids(crn_model *m, const crn_corpus *c, size_t begin, size_t end, uint32_t B, uint32_t T,
                     double *nats, uint64_t *count);

#endif
