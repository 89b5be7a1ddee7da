/* optim.h — optimizers over flat parameter arrays (the model's one buffer),
 * global-norm gradient clipping, and learning-rate schedules.
 * Optimizer state (moments) has the parameters' layout: m[i], v[i] belong to
 * params[i]. */
#ifndef CRN_OPTIM_H
#define CRN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

enum crn_optim_kind {
    CRN_OPT_ADAM = 0,    /* Kingma & Ba, bias-corrected (PyTorch's Adam) */
    CRN_OPT_ADAMW = 1,   /* decoupled weight decay (PyTorch's AdamW) */
    CRN_OPT_RMSPROP = 2, /* char-rnn's: v = a v + (1-a) g^2; p -= lr g / (sqrt(v) + eps) */
    CRN_OPT_ADAGRAD = 3, /* min-char-rnn's: v += g^2; p -= lr g / sqrt(v + eps) */
    CRN_OPT_SGD = 4,     /* with optional (PyTorch-style) momentum */
};

typedef struct crn_optim_config {
    enum crn_optim_kind kind;
    float lr;            /* base learning rate; default 2e-3 */
    float beta1, beta2;  /* adam/adamw: 0.9, 0.999 */
    float eps;           /* adam 1e-8, rmsprop 1e-8, adagrad 1e-8 */
    float weight_decay;  /* adamw: default 0.01; others: L2 added to the gradient (default 0) */
    float momentum;      /* sgd: default 0 */
    float alpha;         /* rmsprop decay: default 0.95 (char-rnn) */
} crn_optim_config;

const char *crn_optim_name(enum crn_optim_kind k);
int crn_optim_parse(const char *s, enum crn_optim_kind *out);
/* Defaults for kind (lr 2e-3 for adam/adamw/rmsprop, 0.1 for adagrad and sgd). */
void crn_optim_config_default(crn_optim_config *c, enum crn_optim_kind kind);

typedef struct crn_optim {
    crn_optim_config cfg;
    size_t n;            /* number of parameters */
    uint64_t t;          /* updates done (Adam bias correction) */
    float *m;            /* first moment / momentum buffer / NULL (n) */
    float *v;            /* second moment / accumulator / NULL (n) */
} crn_optim;

int crn_optim_create(crn_optim **out, const crn_optim_config *cfg, size_t n);
void crn_optim_destroy(crn_optim *o); /* NULL is a no-op */
/* Change the settings of a live optimizer (same kind: CRN_EINVAL otherwise),
 * keeping its update count and the state both settings have; a state array the
 * new settings need and the old ones lacked (sgd momentum 0 -> mu) starts at
 * zero (for sgd's buffer the same as a fresh start), one they no longer need
 * is freed. So the buffers always match the settings, as checkpoints require.
 * On error o is unchanged. @return 0, CRN_EINVAL or CRN_ENOMEM. */
int crn_optim_reconfigure(crn_optim *o, const crn_optim_config *cfg);
/* Number of state arrays (0, 1 or 2) and access, for checkpoints. Order:
 * m (if the kind has it: adam/adamw, sgd with momentum > 0), then v
 * (adam/adamw, rmsprop, adagrad). crn_optim_buffer returns NULL past the end. */
int crn_optim_num_buffers(const crn_optim *o);
float *crn_optim_buffer(crn_optim *o, int i);
/* One update with learning rate lr (the schedule's value this step): t += 1,
 * then per element (wd = weight_decay; scalars computed in double from the
 * float settings and rounded to float once; element math in float):
 *   adam:    g' = g + wd p; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
 *            p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   adamw:   p *= 1 - lr wd, then adam's update with g' = g
 *   rmsprop: g' = g + wd p; v = a v + (1-a) g'^2; p -= lr g' / (sqrt(v) + eps)
 *   adagrad: g' = g + wd p; v += g'^2; p -= lr g' / sqrt(v + eps)
 *   sgd:     g' = g + wd p; with momentum mu > 0: m = g' at t = 1, else
 *            m = mu m + g'; p -= lr m (without momentum: p -= lr g')
 * These are torch.optim's Adam/AdamW/SGD (torch 1.13 single-tensor CPU path,
 * same operation order), char-rnn's rmsprop and min-char-rnn's Adagrad.
 * Never allocates. */
void crn_optim_step(crn_optim *o, float *params, const float *grads, float lr);

/* 1 if params (n) and every state array are all finite, else 0: an update
 * can overflow (adam's v = b2 v + (1-b2) g^2 is infinite for |g| above ~6e20,
 * rmsprop's and adagrad's above ~1.8e19, sgd's p or momentum for a huge lr g)
 * although the gradient was finite; the trainer then rolls the step back.
 * Reads the bits (no FP compares), one pass over each array. */
int crn_optim_finite(const crn_optim *o, const float *params);

/* Global L2 norm of g (double accumulation); if max_norm > 0 and the norm
 * exceeds it, scale g by (float)(max_norm / norm). Returns the norm before clipping
 * (NaN/Inf if g has a non-finite entry; then g is left as it is). */
double crn_clip_grad_norm(float *g, size_t n, double max_norm);

enum crn_schedule_kind { CRN_SCHED_CONSTANT = 0, CRN_SCHED_STEP_DECAY = 1, CRN_SCHED_COSINE = 2, CRN_SCHED_LINEAR = 3 };
typedef struct crn_schedule {
    enum crn_schedule_kind kind;
    float lr;              /* base */
    float decay;           /* step decay: lr *= decay every decay_every steps after decay_after */
    uint64_t decay_after;  /* char-rnn's learning_rate_decay_after, in steps */
    uint64_t decay_every;  /* default: one epoch's steps */
    uint64_t warmup;       /* linear warm-up steps (cosine; also allowed with the others) */
    uint64_t total;        /* cosine, linear: steps to decay to min_lr (with only a time
                            * budget the trainer re-estimates it as it goes, train.h) */
    float min_lr;          /* cosine/linear floor, default 0 */
} crn_schedule;
/* "constant", "step", "cosine", "linear"; parse returns 0 or -1. */
const char *crn_schedule_name(enum crn_schedule_kind k);
int crn_schedule_parse(const char *s, enum crn_schedule_kind *out);
/* Learning rate at step (0-based), computed in double, returned as float.
 * warm(step) = (step + 1) / warmup while step < warmup (warmup > 0), else 1.
 *   constant:   lr * warm(step)
 *   step decay: lr * decay^k * warm(step), k = 0 while step < decay_after,
 *               else 1 + (step - decay_after) / decay_every (integer division;
 *               decay_every = 0: k = 1, a single decay). So the first step
 *               that uses the decayed rate is step decay_after, as in char-rnn
 *               (it decays after the update that ends epoch decay_after).
 *   cosine:     lr * warm(step) while step < warmup; then
 *               min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2,
 *               p = min(1, (step - warmup) / (total - warmup)) (p = 1 when
 *               total <= warmup), so step >= total gives min_lr.
 *   linear:     as cosine with min_lr + (lr - min_lr) * (1 - p). */
float crn_schedule_lr(const crn_schedule *s, uint64_t step);

#endif
