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
#include "vocab.h"

/* ---- text -> ids ---------------------------------------------------------
 * Normalised with the vocabulary's form, split into its unit, unknown tokens
 * -> <unk>. Lines longer than max_len tokens keep their first ceil(max_len/2)
 * and last floor(max_len/2) tokens (the head and the tail: the opening and
 * the final verdict of a review); an empty line becomes one <unk>. */
typedef struct crn_clf_encoder {
    const crn_vocab *v;
    uint32_t max_len;
    uint32_t *buf;   /* scratch, grown as needed */
    size_t cap;
} crn_clf_encoder;

void crn_clf_encoder_init(crn_clf_encoder *e, const crn_vocab *v, uint32_t max_len);
void crn_clf_encoder_free(crn_clf_encoder *e);
/* ids (max_len) <- text; *n = ids written (1..max_len); *truncated set if cut.
 * @return 0 or CRN_EUTF8 / CRN_ENOMEM. */
int crn_clf_encode(crn_clf_encoder *e, const uint8_t *text, size_t len, uint32_t *ids, uint32_t *n, int *truncated);

/* ---- data sets ---------------------------------------------------------- */
typedef struct crn_clf_data {
    size_t n;
    uint32_t *ids;   /* all lines' ids, concatenated */
    size_t *off;     /* (n + 1) line i is ids[off[i] .. off[i+1]) */
    uint32_t *label; /* (n) class index */
    uint64_t truncated;
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
    int kind;                    /* 0 step, 1 eval */
    uint64_t step, total_steps;
    double epoch, elapsed, lr;
    double train_loss;           /* mean over the steps since the last eval */
    double val_loss, val_acc, val_f1;
    int improved;
} crn_clf_event;

/* Called at every step and eval; at an eval that improves the best, save is
 * set and the callback must write the model (return < 0 stops the run with
 * that error). */
typedef int (*crn_clf_event_fn)(void *ud, const crn_clf_event *ev, int save);

/* Train on train_idx[0..n_train), validate on val_idx[0..n_val) (n_val may be
 * 0: the latest model is "best"). Stops at a budget, patience, a stop
 * request (crn_train_request_stop: then CRN_EINTR after a last eval) or a
 * non-finite loss (CRN_ENONFINITE). Allocates before the loop only. */
int crn_clf_train(crn_clf *m, const crn_clf_data *d, const uint32_t *train_idx, size_t n_train,
                  const uint32_t *val_idx, size_t n_val, const crn_clf_train_opts *o, crn_clf_event_fn cb, void *ud,
                  crn_clf_event *last);

#endif
