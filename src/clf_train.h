/* clf_train.h — classification on top of classify.h: text -> ids with the
 * --max-len policy, labelled data sets, length-bucketed batches, the
 * training loop (optimizer, clipping, schedule, budgets, best model by
 * validation accuracy, stop requests) and the metrics. Library code: returns
 * error codes, never prints; the CLI (cli_classify.c) reports. */
#ifndef CRN_CLF_TRAIN_H
#define CRN_CLF_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "optim.h"
#include "train.h"
#include "vocab.h"

/* ---- text -> ids ---------------------------------------------------------
 * Normalised with the vocabulary's form, split into its unit, unknown tokens
 * -> <unk>. Lines longer than max_len tokens keep their first ceil(max_len/2)
 * and last floor(max_len/2) tokens (the head and the tail: the opening and
 * the final verdict of a review); an empty line becomes one <unk>. */
/* ---- cleaning (train's --keep/--drop/--replace, stored in the model) -----
 * On the normalised text: keep only texts matching any keep pattern (if
 * any), drop texts matching any drop pattern, then each replacement in
 * order ("REGEX=TEXT", split by crn_corpus_split_replace; PCRE2 through
 * regex.c); a text a replacement changed is normalised again. */
typedef struct crn_clf_cleaner crn_clf_cleaner;
int crn_clf_cleaner_create(crn_clf_cleaner **out, char *const *keep, size_t n_keep, char *const *drop,
                           size_t n_drop, char *const *replace, size_t n_replace);
void crn_clf_cleaner_destroy(crn_clf_cleaner *c); /* NULL is a no-op */
/* *out (malloc'ed, *n bytes) <- text normalised with norm and cleaned by c
 * (NULL: none; keep/drop only if select). @return 1 (selected), 0 (not
 * selected; *out NULL) or a negative error. */
int crn_clf_prepare(uint8_t **out, size_t *n, const uint8_t *text, size_t len, enum crn_norm norm,
                    const crn_clf_cleaner *c, int select);

typedef struct crn_clf_encoder {
    const crn_vocab *v;
    uint32_t max_len;
    uint32_t *buf;   /* scratch, grown as needed */
    size_t cap;
    crn_clf_cleaner *clean; /* NULL: none (not owned) */
    int select;      /* apply keep/drop (labelled tables); else only the replacements (predict answers every line) */
} crn_clf_encoder;

void crn_clf_encoder_init(crn_clf_encoder *e, const crn_vocab *v, uint32_t max_len);
void crn_clf_encoder_free(crn_clf_encoder *e);
/* ids (max_len) <- text; *n = ids written (1..max_len; 0: the text is not
 * selected by keep/drop); *truncated set if cut.
 * @return 0 or CRN_EUTF8 / CRN_ENOMEM / a regex error (CRN_ELIMIT ...). */
int crn_clf_encode(crn_clf_encoder *e, const uint8_t *text, size_t len, uint32_t *ids, uint32_t *n, int *truncated);

/* ---- data sets ---------------------------------------------------------- */
typedef struct crn_clf_data {
    size_t n;
    uint32_t *ids;   /* all lines' ids, concatenated */
    size_t *off;     /* (n + 1) line i is ids[off[i] .. off[i+1]) */
    uint32_t *label; /* (n) class index */
    uint64_t truncated;
    uint64_t dropped; /* rows not selected by keep/drop (not in the set) */
} crn_clf_data;

void crn_clf_data_free(crn_clf_data *d);

/* Batches of up to B lines of similar length: lines sorted by length (ties
 * in a random order from rng), cut into runs of B, the runs shuffled. idx
 * (n) receives the order; a batch is idx[k*B .. min(n, (k+1)*B)). */
void crn_clf_bucket_order(uint32_t *idx, const crn_clf_data *d, const uint32_t *subset, size_t n, uint32_t B,
                          crn_rng *rng);
/* Fill a padded window (T*B time-major, id 0 at padded steps) from lines
 * idx[0..b); returns T (the longest line). */
uint32_t crn_clf_fill_batch(uint32_t *x, uint32_t *len, uint32_t *y, const crn_clf_data *d, const uint32_t *idx,
                            uint32_t b);

/* ---- metrics ------------------------------------------------------------ */
typedef struct crn_clf_metrics {
    uint32_t C;
    uint64_t n;
    uint64_t *confusion; /* (C, C): [true][predicted] */
    double loss_sum;     /* nats */
} crn_clf_metrics;

int crn_clf_metrics_init(crn_clf_metrics *m, uint32_t C);
void crn_clf_metrics_free(crn_clf_metrics *m);
void crn_clf_metrics_reset(crn_clf_metrics *m);
/* Add one line: probabilities p (C), true class y. */
void crn_clf_metrics_add(crn_clf_metrics *m, const float *p, uint32_t y);
double crn_clf_accuracy(const crn_clf_metrics *m);
double crn_clf_macro_f1(const crn_clf_metrics *m);
double crn_clf_log_loss(const crn_clf_metrics *m); /* mean nats */
/* Precision and recall of class k (0 when undefined). */
void crn_clf_class_pr(const crn_clf_metrics *m, uint32_t k, double *precision, double *recall);

/* Metrics of lines subset[0..n) (all lines if subset == NULL) in batches of
 * B. Reserves the classifier for (B, longest line). */
int crn_clf_evaluate(crn_clf *m, const crn_clf_data *d, const uint32_t *subset, size_t n, uint32_t B,
                     crn_clf_metrics *out);

/* ---- training ----------------------------------------------------------- */
typedef struct crn_clf_train_opts {
    uint32_t batch;              /* lines per step (default 64) */
    crn_optim_config optim;      /* default adam, lr 2e-3 */
    double clip;                 /* global-norm clip (default 5; 0 off) */
    int cosine;                  /* cosine decay to 0 over the budget (default 1) */
    double time_limit;           /* seconds (0: none) */
    uint64_t max_steps, max_epochs;
    uint64_t eval_every;         /* steps (0: once per epoch) */
    uint32_t patience;           /* evals without improvement (0: off) */
    int balance;                 /* weight classes by inverse frequency */
    uint64_t seed;
} crn_clf_train_opts;

void crn_clf_train_opts_default(crn_clf_train_opts *o);

typedef struct crn_clf_event {
    int kind;                    /* 0 step, 1 eval, 2 end of the session without an eval (save the state) */
    uint64_t step, total_steps;
    double epoch, elapsed, lr;
    double train_loss;           /* mean over the steps since the last eval */
    double val_loss, val_acc, val_f1;
    int improved;
    const crn_optim *optim;      /* the optimizer (its moments), for the resume file */
} crn_clf_event;

/* Called at every step and eval; at an eval that improves the best, save is
 * set and the callback must write the model (return < 0 stops the run with
 * that error). At every eval the run state (crn_clf_train's st) is current,
 * so the callback can write the resume file: after an eval, the state,
 * the parameters and ev->optim are all a resume needs. */
typedef int (*crn_clf_event_fn)(void *ud, const crn_clf_event *ev, int save);

/* The run state of a classifier run is the generator's crn_train_status
 * (train.h), fields used: run_id, step, epoch and win (the position in the
 * epoch's batch order), elapsed, has_best, best_val_bpc (here the best
 * validation score: accuracy, ties to the lower log loss), best_step,
 * bad_evals, rng (the dropout stream), n_evals, last_val_bpc (validation log
 * loss), last_train_bpc (training loss), stop_reason, started_unix. The batch
 * order of epoch e comes from a stream seeded by (seed, e) alone, so a resume
 * rebuilds it. A fresh run starts from crn_clf_run_begin. */
void crn_clf_run_begin(crn_train_status *st, uint64_t seed);

/* Train on train_idx[0..n_train), validate on val_idx[0..n_val) (n_val may be
 * 0: the latest model is "best"), from the run state st (updated in place)
 * and the optimizer opt (its moments; NULL: a fresh one from o->optim; not
 * taken over). Budgets are totals of the run, except time_limit (this
 * session's; the cosine horizon is then the elapsed time so far plus it).
 * With one thread, stopping at step N and resuming gives bit for bit the
 * run of N+M steps in one go (same budget, or a constant learning rate).
 * Stops at a budget, patience, a stop request (crn_train_request_stop: then
 * CRN_EINTR after a last eval) or a non-finite loss (CRN_ENONFINITE).
 * Allocates before the loop only. */
int crn_clf_train(crn_clf *m, const crn_clf_data *d, const uint32_t *train_idx, size_t n_train,
                  const uint32_t *val_idx, size_t n_val, const crn_clf_train_opts *o, crn_train_status *st,
                  crn_optim *opt, crn_clf_event_fn cb, void *ud, crn_clf_event *last);

/* ---- the run state blob (the checkpoint's training-state section) -------
 * A classifier run's options: the generator's crn_train_opts for what they
 * share (corpus_path = DATA, unit, norm, min_count, val_frac, batch, seq =
 * max_len, model, optim, clip, sched.kind (cosine or constant), time_limit,
 * max_steps, max_epochs, eval_every, patience, seed, log_path) and the
 * table's own. Classes, pooling and direction are in the model's HEAD. */
typedef struct crn_clf_run_opts {
    crn_train_opts t;
    uint32_t format;             /* enum crn_rec_format */
    uint32_t balance;
    char *text_col, *label_col;  /* owned; NULL: the default column */
} crn_clf_run_opts;

void crn_clf_run_opts_free(crn_clf_run_opts *o); /* NULL ok */
/* Layout (little-endian): "CRNCLFRS" u32 version(1) u32 format u32 balance,
 * text_col and label_col (u32 length + bytes; 0xffffffff = none), then the
 * generator's training state blob (crn_train_blob_encode) to the end.
 * @return 0, or CRN_ENOMEM / CRN_EFORMAT ("classifier run state at byte N: ..."). */
int crn_clf_blob_encode(uint8_t **out, size_t *len, const crn_clf_run_opts *o, const crn_train_status *s);
int crn_clf_blob_decode(crn_clf_run_opts *o, crn_train_status *s, const uint8_t *buf, size_t len);

#endif
