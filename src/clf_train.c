/* clf_train.c — encoding, bucketed batches, metrics and the training loop of
 * the classifier (clf_train.h). The loop reuses the optimizer, clipping and
 * schedule of optim.c and the stop request of train.c. */
#include "clf_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "corpus.h"
#include "records.h"
#include "regex.h"
#include "train.h"
#include "utf8.h"

/* ---- encoding ------------------------------------------------------------ */

void crn_clf_encoder_init(crn_clf_encoder *e, const crn_vocab *v, uint32_t max_len) {
    memset(e, 0, sizeof *e);
    e->v = v;
    e->max_len = max_len;
}

void crn_clf_encoder_free(crn_clf_encoder *e) {
    free(e->buf);
    e->buf = NULL;
    e->cap = 0;
}

struct crn_clf_cleaner {
    crn_regex **keep, **drop, **repl;
    char **repl_text;
    size_t n_keep, n_drop, n_repl;
};

void crn_clf_cleaner_destroy(crn_clf_cleaner *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_keep; i++) crn_regex_destroy(c->keep[i]);
    for (size_t i = 0; i < c->n_drop; i++) crn_regex_destroy(c->drop[i]);
    for (size_t i = 0; i < c->n_repl; i++) {
        crn_regex_destroy(c->repl[i]);
        free(c->repl_text[i]);
    }
    free(c->keep);
    free(c->drop);
    free(c->repl);
    free(c->repl_text);
    free(c);
}

static int compile_all(crn_regex ***out, size_t *count, char *const *pats, size_t n, const char *what) {
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return crn_error_set(CRN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++, (*count)++) {
        int rc = crn_regex_compile(&(*out)[i], pats[i], 0);
        if (rc) return crn_error_prefix(rc, "%s", what);
    }
    return 0;
}

int crn_clf_cleaner_create(crn_clf_cleaner **out, char *const *keep, size_t n_keep, char *const *drop,
                           size_t n_drop, char *const *replace, size_t n_replace) {
    crn_clf_cleaner *c = calloc(1, sizeof *c);
    if (!c) return crn_error_set(CRN_ENOMEM, "out of memory");
    int rc = compile_all(&c->keep, &c->n_keep, keep, n_keep, "--keep");
    if (!rc) rc = compile_all(&c->drop, &c->n_drop, drop, n_drop, "--drop");
    if (!rc && (!(c->repl = calloc(n_replace ? n_replace : 1, sizeof *c->repl)) ||
                !(c->repl_text = calloc(n_replace ? n_replace : 1, sizeof *c->repl_text))))
        rc = crn_error_set(CRN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_replace && !rc; i++) {
        char *pat = NULL;
        c->n_repl = i + 1; // destroy frees what this one got
        if (!(rc = crn_corpus_split_replace(replace[i], &pat, &c->repl_text[i])) &&
            (rc = crn_regex_compile(&c->repl[i], pat, 0)))
            rc = crn_error_prefix(rc, "--replace");
        free(pat);
    }
    if (rc) {
        crn_clf_cleaner_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Keep/drop (if select) and the replacements on *s (normalised, malloc'ed;
 * replaced and normalised again if a replacement changed it). @return 1
 * selected, 0 not, or an error. */
static int clean_text(const crn_clf_cleaner *c, int select, uint8_t **s, size_t *n, enum crn_norm norm) {
    int keep = !select || c->n_keep == 0;
    for (size_t i = 0; i < c->n_keep && !keep; i++) {
        int rc = crn_regex_search(c->keep[i], *s, *n, 0, NULL, NULL);
        if (rc < 0) return crn_error_prefix(rc, "--keep");
        keep = rc;
    }
    for (size_t i = 0; select && i < c->n_drop && keep; i++) {
        int rc = crn_regex_search(c->drop[i], *s, *n, 0, NULL, NULL);
        if (rc < 0) return crn_error_prefix(rc, "--drop");
        keep = !rc;
    }
    if (!keep) return 0;
    long long changed = 0;
    for (size_t i = 0; i < c->n_repl; i++) {
        uint8_t *r;
        size_t rn;
        long long k = crn_regex_replace(c->repl[i], *s, *n, c->repl_text[i], &r, &rn);
        if (k < 0) return crn_error_prefix((int)k, "--replace");
        free(*s);
        *s = r;
        *n = rn;
        changed += k;
    }
    if (changed) {
        uint8_t *again = NULL;
        size_t an = 0;
        int rc = crn_utf8_normalize(&again, &an, *s, *n, norm);
        if (rc) return rc;
        free(*s);
        *s = again;
        *n = an;
    }
    return 1;
}

int crn_clf_prepare(uint8_t **out, size_t *n, const uint8_t *text, size_t len, enum crn_norm norm,
                    const crn_clf_cleaner *c, int select) {
    *out = NULL;
    int rc = crn_utf8_normalize(out, n, text, len, norm);
    if (rc) return rc;
    if (!c) return 1;
    if ((rc = clean_text(c, select, out, n, norm)) <= 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int crn_clf_encode(crn_clf_encoder *e, const uint8_t *text, size_t len, uint32_t *ids, uint32_t *n, int *truncated) {
    uint8_t *norm = NULL;
    size_t nlen = 0;
    *truncated = 0;
    *n = 0;
    int rc = crn_clf_prepare(&norm, &nlen, text, len, crn_vocab_norm(e->v), e->clean, e->select);
    if (rc <= 0) return rc;
    if (nlen + 1 > e->cap) {
        size_t cap = nlen + 1 > 2 * e->cap ? nlen + 1 : 2 * e->cap;
        uint32_t *b = realloc(e->buf, cap * sizeof *b);
        if (!b) {
            free(norm);
            return crn_error_set(CRN_ENOMEM, "out of memory encoding a line of %zu bytes", nlen);
        }
        e->buf = b;
        e->cap = cap;
    }
    long long k = crn_vocab_encode(e->v, norm, nlen, e->buf, NULL);
    free(norm);
    if (k < 0) return (int)k;
    if (k == 0) e->buf[k++] = CRN_UNK;
    size_t m = e->max_len;
    if ((size_t)k <= m) {
        memcpy(ids, e->buf, (size_t)k * sizeof *ids);
        *n = (uint32_t)k;
        return 0;
    }
    size_t head = (m + 1) / 2, tail = m - head; // head and tail kept
    memcpy(ids, e->buf, head * sizeof *ids);
    memcpy(ids + head, e->buf + (size_t)k - tail, tail * sizeof *ids);
    *n = (uint32_t)m;
    *truncated = 1;
    return 0;
}

void crn_clf_data_free(crn_clf_data *d) {
    if (!d) return;
    free(d->ids);
    free(d->off);
    free(d->label);
    memset(d, 0, sizeof *d);
}

/* ---- batches ------------------------------------------------------------- */

typedef struct keyed {
    uint32_t len, idx;
    uint64_t key;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

void crn_clf_bucket_order(uint32_t *idx, const crn_clf_data *d, const uint32_t *subset, size_t n, uint32_t B,
                          crn_rng *rng) {
    keyed *k = malloc((n ? n : 1) * sizeof *k);
    size_t nb = (n + B - 1) / B;
    uint32_t *order = malloc((nb ? nb : 1) * sizeof *order);
    if (!k || !order) { // no memory for the sort: keep the given order (still correct, only slower)
        for (size_t i = 0; i < n; i++) idx[i] = subset ? subset[i] : (uint32_t)i;
        free(k);
        free(order);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t j = subset ? subset[i] : (uint32_t)i;
        k[i] = (keyed){(uint32_t)(d->off[j + 1] - d->off[j]), j, rng ? crn_rng_u64(rng) : i};
    }
    qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t b = 0; b < nb; b++) order[b] = (uint32_t)b;
    if (rng)
        for (size_t b = nb; b > 1; b--) {
            size_t j = (size_t)crn_rng_below(rng, b);
            uint32_t t = order[b - 1];
            order[b - 1] = order[j];
            order[j] = t;
        }
    size_t w = 0;
    for (size_t b = 0; b < nb; b++)
        for (size_t i = (size_t)order[b] * B; i < n && i < ((size_t)order[b] + 1) * B; i++) idx[w++] = k[i].idx;
    free(k);
    free(order);
}

uint32_t crn_clf_fill_batch(uint32_t *x, uint32_t *len, uint32_t *y, const crn_clf_data *d, const uint32_t *idx,
                            uint32_t b) {
    uint32_t T = 1;
    for (uint32_t i = 0; i < b; i++) {
        len[i] = (uint32_t)(d->off[idx[i] + 1] - d->off[idx[i]]);
        if (len[i] > T) T = len[i];
        if (y) y[i] = d->label[idx[i]];
    }
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t i = 0; i < b; i++) x[(size_t)t * b + i] = t < len[i] ? d->ids[d->off[idx[i]] + t] : 0;
    return T;
}

/* ---- metrics ------------------------------------------------------------- */

int crn_clf_metrics_init(crn_clf_metrics *m, uint32_t C) {
    memset(m, 0, sizeof *m);
    m->confusion = calloc((size_t)C * C, sizeof *m->confusion);
    if (!m->confusion) return crn_error_set(CRN_ENOMEM, "out of memory for a %u-class confusion matrix", C);
    m->C = C;
    return 0;
}

void crn_clf_metrics_free(crn_clf_metrics *m) {
    free(m->confusion);
    m->confusion = NULL;
}

void crn_clf_metrics_reset(crn_clf_metrics *m) {
    memset(m->confusion, 0, (size_t)m->C * m->C * sizeof *m->confusion);
    m->n = 0;
    m->loss_sum = 0;
}

void crn_clf_metrics_add(crn_clf_metrics *m, const float *p, uint32_t y) {
    uint32_t best = 0;
    for (uint32_t k = 1; k < m->C; k++)
        if (p[k] > p[best]) best = k;
    m->confusion[(size_t)y * m->C + best]++;
    m->n++;
    double py = p[y] > 1e-15 ? p[y] : 1e-15; // log loss clipped as scikit-learn does
    m->loss_sum -= log(py);
}

double crn_clf_accuracy(const crn_clf_metrics *m) {
    uint64_t ok = 0;
    for (uint32_t k = 0; k < m->C; k++) ok += m->confusion[(size_t)k * m->C + k];
    return m->n ? (double)ok / (double)m->n : 0;
}

void crn_clf_class_pr(const crn_clf_metrics *m, uint32_t k, double *precision, double *recall) {
    uint64_t tp = m->confusion[(size_t)k * m->C + k], row = 0, col = 0;
    for (uint32_t j = 0; j < m->C; j++) {
        row += m->confusion[(size_t)k * m->C + j];
        col += m->confusion[(size_t)j * m->C + k];
    }
    *precision = col ? (double)tp / (double)col : 0;
    *recall = row ? (double)tp / (double)row : 0;
}

double crn_clf_macro_f1(const crn_clf_metrics *m) {
    double s = 0;
    for (uint32_t k = 0; k < m->C; k++) {
        double p, r;
        crn_clf_class_pr(m, k, &p, &r);
        s += p + r > 0 ? 2 * p * r / (p + r) : 0;
    }
    return m->C ? s / m->C : 0;
}

double crn_clf_log_loss(const crn_clf_metrics *m) { return m->n ? m->loss_sum / (double)m->n : 0; }

int crn_clf_evaluate(crn_clf *m, const crn_clf_data *d, const uint32_t *subset, size_t n, uint32_t B,
                     crn_clf_metrics *out) {
    crn_clf_metrics_reset(out);
    if (n == 0) return 0;
    uint32_t maxT = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t j = subset ? subset[i] : (uint32_t)i, l = (uint32_t)(d->off[j + 1] - d->off[j]);
        maxT = l > maxT ? l : maxT;
    }
    int rc = crn_clf_reserve_predict(m, B, maxT);
    if (rc) return rc;
    uint32_t *idx = malloc(n * sizeof *idx), *x = malloc((size_t)B * maxT * sizeof *x);
    uint32_t *len = malloc((size_t)B * sizeof *len), *y = malloc((size_t)B * sizeof *y);
    if (!idx || !x || !len || !y) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory evaluating %zu lines", n);
        goto out;
    }
    crn_clf_bucket_order(idx, d, subset, n, B, NULL);
    const uint32_t C = crn_clf_config_of(m)->classes;
    for (size_t i = 0; i < n; i += B) {
        uint32_t b = (uint32_t)(n - i < B ? n - i : B);
        uint32_t T = crn_clf_fill_batch(x, len, y, d, idx + i, b);
        if ((rc = crn_clf_forward(m, x, len, NULL, NULL, b, T, NULL, NULL))) goto out;
        const float *p = crn_clf_probs(m);
        for (uint32_t k = 0; k < b; k++) crn_clf_metrics_add(out, p + (size_t)k * C, y[k]);
    }
out:
    free(idx);
    free(x);
    free(len);
    free(y);
    return rc;
}

/* ---- training ------------------------------------------------------------ */

void crn_clf_train_opts_default(crn_clf_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 64;
    crn_optim_config_default(&o->optim, CRN_OPT_ADAM);
    o->clip = 5;
    o->cosine = 1;
    o->seed = 1;
}

/* Everything the loop needs, allocated before it. */
typedef struct loop {
    crn_clf *m;
    const crn_clf_data *d;
    const crn_clf_train_opts *o;
    crn_optim *opt;
    int own_opt;
    crn_clf_metrics met;
    uint32_t *order, *x, *len, *y;
    float *w, cls_w[CRN_CLF_MAX_CLASSES];
    uint32_t maxT;
} loop;

static void loop_free(loop *L) {
    if (L->own_opt) crn_optim_destroy(L->opt);
    crn_clf_metrics_free(&L->met);
    free(L->order);
    free(L->x);
    free(L->len);
    free(L->y);
    free(L->w);
}

static int loop_init(loop *L, crn_clf *m, const crn_clf_data *d, const uint32_t *tr, size_t n_tr,
                     const crn_clf_train_opts *o, crn_optim *opt) {
    memset(L, 0, sizeof *L);
    L->m = m;
    L->d = d;
    L->o = o;
    const uint32_t B = o->batch, C = crn_clf_config_of(m)->classes;
    uint64_t count[CRN_CLF_MAX_CLASSES] = {0};
    L->maxT = 1;
    for (size_t i = 0; i < n_tr; i++) {
        uint32_t l = (uint32_t)(d->off[tr[i] + 1] - d->off[tr[i]]);
        L->maxT = l > L->maxT ? l : L->maxT;
        count[d->label[tr[i]]]++;
    }
    for (uint32_t k = 0; k < C; k++)
        L->cls_w[k] = o->balance && count[k] ? (float)((double)n_tr / ((double)C * (double)count[k])) : 1.0f;
    int rc = 0;
    if (opt) L->opt = opt;
    else if (!(rc = crn_optim_create(&L->opt, &o->optim, crn_clf_num_params(m)))) L->own_opt = 1;
    if (!rc) rc = crn_clf_metrics_init(&L->met, C);
    if (!rc) rc = crn_clf_reserve(m, B, L->maxT);
    if (rc) return rc;
    L->order = malloc((n_tr ? n_tr : 1) * sizeof *L->order);
    L->x = malloc((size_t)B * L->maxT * sizeof *L->x);
    L->len = malloc(B * sizeof *L->len);
    L->y = malloc(B * sizeof *L->y);
    L->w = malloc(B * sizeof *L->w);
    if (!L->order || !L->x || !L->len || !L->y || !L->w) return crn_error_set(CRN_ENOMEM, "out of memory for training");
    return 0;
}

/* Learning rate now: cosine over the budget (steps, epochs or time: the
 * fraction of whichever is furthest along), through crn_schedule_lr. */
static float lr_now(const crn_clf_train_opts *o, uint64_t step, uint64_t steps_per_epoch, double elapsed,
                    double time_horizon) {
    double frac = 0;
    if (o->max_steps) frac = fmax(frac, (double)step / (double)o->max_steps);
    if (o->max_epochs) frac = fmax(frac, (double)step / (double)(o->max_epochs * steps_per_epoch));
    if (time_horizon > 0) frac = fmax(frac, elapsed / time_horizon);
    crn_schedule s = {.kind = o->cosine ? CRN_SCHED_COSINE : CRN_SCHED_CONSTANT, .lr = o->optim.lr, .total = 1000000};
    return crn_schedule_lr(&s, (uint64_t)(fmin(frac, 1.0) * 1e6));
}

/* One optimizer step on lines idx[0..b). */
static int train_step(loop *L, const uint32_t *idx, uint32_t b, float lr, crn_rng *rng, double *loss) {
    uint32_t T = crn_clf_fill_batch(L->x, L->len, L->y, L->d, idx, b);
    for (uint32_t i = 0; i < b; i++) L->w[i] = L->cls_w[L->y[i]];
    crn_clf_zero_grads(L->m);
    int rc = crn_clf_forward(L->m, L->x, L->len, L->y, L->w, b, T, rng, loss);
    if (rc) return rc;
    if (!isfinite(*loss)) return crn_error_set(CRN_ENONFINITE, "non-finite training loss");
    if ((rc = crn_clf_backward(L->m))) return rc;
    double norm = crn_clip_grad_norm(crn_clf_grads(L->m), crn_clf_num_params(L->m), L->o->clip);
    if (!isfinite(norm)) return crn_error_set(CRN_ENONFINITE, "non-finite gradient");
    crn_optim_step(L->opt, crn_clf_params(L->m), crn_clf_grads(L->m), lr);
    if (!crn_optim_finite(L->opt, crn_clf_params(L->m))) /* e.g. adam's second moment overflowed with --clip 0 */
        return crn_error_set(CRN_ENONFINITE, "non-finite weights or optimizer state after the update");
    return 0;
}

/* Where a session is between steps (the run's part is in st). */
typedef struct run {
    crn_clf_event ev;
    crn_train_status *st;
    double loss_acc;
    uint64_t nlines_acc, nsteps_acc, evals_here;
} run;

/* Validation, the best model and the callback; returns < 0 on error. */
static int do_eval(loop *L, run *R, const uint32_t *val_idx, size_t n_val, crn_clf_event_fn cb, void *ud) {
    crn_clf_event *ev = &R->ev;
    crn_train_status *st = R->st;
    ev->kind = 1;
    ev->train_loss = R->nlines_acc ? R->loss_acc / (double)R->nlines_acc : NAN;
    R->loss_acc = 0;
    R->nlines_acc = R->nsteps_acc = 0;
    R->evals_here++;
    st->n_evals++;
    st->last_train_bpc = ev->train_loss;
    double score = 0;
    int rc;
    if (n_val) {
        if ((rc = crn_clf_evaluate(L->m, L->d, val_idx, n_val, L->o->batch, &L->met))) return rc;
        if ((rc = crn_clf_reserve(L->m, L->o->batch, L->maxT))) return rc;
        ev->val_loss = crn_clf_log_loss(&L->met);
        ev->val_acc = crn_clf_accuracy(&L->met);
        ev->val_f1 = crn_clf_macro_f1(&L->met);
        score = ev->val_acc - 1e-9 * ev->val_loss; // accuracy, ties to the lower log loss
        st->last_val_bpc = ev->val_loss;
    }
    ev->improved = !n_val || !st->has_best || score > st->best_val_bpc;
    if (ev->improved) {
        st->has_best = 1;
        st->best_val_bpc = score;
        st->best_step = st->step;
        st->bad_evals = 0;
    } else {
        st->bad_evals++;
    }
    ev->optim = L->opt;
    rc = cb ? cb(ud, ev, ev->improved) : 0;
    return rc < 0 ? rc : 0;
}

void crn_clf_run_begin(crn_train_status *st, uint64_t seed) {
    memset(st, 0, sizeof *st);
    crn_rng_seed(&st->rng, seed);
    st->lr_scale = 1;
}

/* The batch order of epoch e: its own stream, so a resume can rebuild it. */
static void epoch_order(loop *L, const uint32_t *train_idx, size_t n_train, uint64_t e) {
    crn_rng orng;
    crn_rng_seed(&orng, L->o->seed ^ (0x9e3779b97f4a7c15ULL * (e + 1)));
    crn_clf_bucket_order(L->order, L->d, train_idx, n_train, L->o->batch, &orng);
}

/* Has the session reached a budget? Sets st->stop_reason. */
static int budget_reached(const crn_clf_train_opts *o, crn_train_status *st, uint64_t spe, double session) {
    uint32_t why = crn_train_stop_requested()                          ? CRN_TRAIN_STOP_SIGNAL
                   : o->max_steps && st->step >= o->max_steps          ? CRN_TRAIN_STOP_STEPS
                   : o->max_epochs && st->step >= o->max_epochs * spe  ? CRN_TRAIN_STOP_EPOCHS
                   : o->time_limit > 0 && session >= o->time_limit     ? CRN_TRAIN_STOP_TIME
                                                                       : CRN_TRAIN_STOP_NONE;
    if (why) st->stop_reason = why;
    return why != CRN_TRAIN_STOP_NONE;
}

/* The end of a session right after an eval: only the state (its stop reason). */
static int end_session(loop *L, run *R, crn_clf_event_fn cb, void *ud) {
    if (!cb) return 0;
    R->ev.kind = 2;
    R->ev.optim = L->opt;
    int rc = cb(ud, &R->ev, 0);
    return rc < 0 ? rc : 0;
}

int crn_clf_train(crn_clf *m, const crn_clf_data *d, const uint32_t *train_idx, size_t n_train,
                  const uint32_t *val_idx, size_t n_val, const crn_clf_train_opts *o, crn_train_status *st,
                  crn_optim *opt, crn_clf_event_fn cb, void *ud, crn_clf_event *last) {
    if (n_train == 0 || o->batch == 0) return crn_error_set(CRN_EINVAL, "classifier training: no training lines");
    loop L;
    int rc = loop_init(&L, m, d, train_idx, n_train, o, opt);
    const uint32_t B = o->batch;
    const uint64_t spe = (n_train + B - 1) / B;
    const uint64_t eval_every = o->eval_every ? o->eval_every : spe;
    run R = {.st = st};
    R.ev.val_acc = R.ev.val_loss = R.ev.val_f1 = NAN;
    R.ev.total_steps = o->max_steps ? o->max_steps : o->max_epochs ? o->max_epochs * spe : 0;
    R.ev.step = st->step;
    const double elapsed0 = st->elapsed, horizon = o->time_limit > 0 ? elapsed0 + o->time_limit : 0;
    const double t0 = crn_now();
    if (!rc && st->step % spe) epoch_order(&L, train_idx, n_train, st->step / spe); // resumed mid-epoch
    while (!rc) {
        double session = crn_now() - t0;
        R.ev.elapsed = st->elapsed = elapsed0 + session;
        if (budget_reached(o, st, spe, session)) {
            if (R.nsteps_acc || !R.evals_here) {
                rc = do_eval(&L, &R, val_idx, n_val, cb, ud);
            } else {
                rc = end_session(&L, &R, cb, ud);
            }
            break;
        }
        uint64_t pos = st->step % spe;
        if (pos == 0) epoch_order(&L, train_idx, n_train, st->step / spe);
        uint32_t b = (uint32_t)(n_train - pos * B < B ? n_train - pos * B : B);
        double loss = 0;
        R.ev.lr = lr_now(o, st->step, spe, R.ev.elapsed, horizon);
        if ((rc = train_step(&L, L.order + pos * B, b, (float)R.ev.lr, &st->rng, &loss))) {
            if (rc == CRN_ENONFINITE) st->stop_reason = CRN_TRAIN_STOP_NONFINITE;
            break;
        }
        st->step++;
        st->epoch = st->step / spe;
        st->win = st->step % spe;
        st->tokens_seen += b; // lines seen
        R.loss_acc += loss;
        R.nlines_acc += b;
        R.nsteps_acc++;
        R.ev.kind = 0;
        R.ev.train_loss = R.loss_acc / (double)R.nlines_acc; // mean since the last eval
        R.ev.step = st->step;
        R.ev.epoch = (double)st->step / (double)spe;
        if (cb && (rc = cb(ud, &R.ev, 0)) < 0) break;
        rc = 0;
        if (st->step % eval_every == 0) {
            if ((rc = do_eval(&L, &R, val_idx, n_val, cb, ud))) break;
            if (o->patience && st->bad_evals >= o->patience) {
                st->stop_reason = CRN_TRAIN_STOP_PATIENCE;
                rc = end_session(&L, &R, cb, ud);
                break;
            }
        }
    }
    if (!rc && crn_train_stop_requested()) rc = crn_error_set(CRN_EINTR, "interrupted");
    if (last) *last = R.ev;
    loop_free(&L);
    return rc;
}

/* ---- the run state blob ---------------------------------------------------- */

#define CLF_BLOB_MAGIC "CRNCLFRS"
#define CLF_BLOB_VERSION 1u
#define CLF_NO_STR 0xffffffffu

void crn_clf_run_opts_free(crn_clf_run_opts *o) {
    if (!o) return;
    crn_train_opts_free(&o->t);
    free(o->text_col);
    free(o->label_col);
    o->text_col = o->label_col = NULL;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int crn_clf_blob_encode(uint8_t **out, size_t *len, const crn_clf_run_opts *o, const crn_train_status *s) {
    uint8_t *gen = NULL;
    size_t glen = 0;
    int rc = crn_train_blob_encode(&gen, &glen, &o->t, s);
    if (rc) return rc;
    const char *str[2] = {o->text_col, o->label_col};
    size_t n = 8 + 4 * 3 + glen;
    for (int i = 0; i < 2; i++) n += 4 + (str[i] ? strlen(str[i]) : 0);
    uint8_t *b = malloc(n), *p = b;
    if (!b) {
        free(gen);
        return crn_error_set(CRN_ENOMEM, "out of memory encoding the run state");
    }
    memcpy(p, CLF_BLOB_MAGIC, 8);
    put_le32(p + 8, CLF_BLOB_VERSION);
    put_le32(p + 12, o->format);
    put_le32(p + 16, o->balance);
    p += 20;
    for (int i = 0; i < 2; i++) {
        size_t k = str[i] ? strlen(str[i]) : 0;
        put_le32(p, str[i] ? (uint32_t)k : CLF_NO_STR);
        memcpy(p + 4, str[i] ? str[i] : "", k);
        p += 4 + k;
    }
    memcpy(p, gen, glen);
    free(gen);
    *out = b;
    *len = n;
    return 0;
}

static int clf_blob_fail(size_t at, const char *what) {
    return crn_error_set(CRN_EFORMAT, "classifier run state at byte %zu: %s", at, what);
}

int crn_clf_blob_decode(crn_clf_run_opts *o, crn_train_status *s, const uint8_t *buf, size_t len) {
    memset(o, 0, sizeof *o);
    crn_train_opts_default(&o->t);
    memset(s, 0, sizeof *s);
    if (!buf || len < 20 || memcmp(buf, CLF_BLOB_MAGIC, 8)) return clf_blob_fail(0, "bad magic (not a classifier run)");
    if (get_le32(buf + 8) != CLF_BLOB_VERSION) return clf_blob_fail(8, "unsupported version");
    o->format = get_le32(buf + 12);
    o->balance = get_le32(buf + 16);
    if (o->format > CRN_REC_CSV) return clf_blob_fail(12, "bad table format");
    if (o->balance > 1) return clf_blob_fail(16, "bad balance flag");
    size_t at = 20;
    char **str[2] = {&o->text_col, &o->label_col};
    for (int i = 0; i < 2; i++) {
        if (len - at < 4) {
            crn_clf_run_opts_free(o);
            return clf_blob_fail(at, "truncated column name");
        }
        uint32_t k = get_le32(buf + at);
        at += 4;
        if (k == CLF_NO_STR) continue;
        if (k == 0 || k > 4096 || k > len - at || memchr(buf + at, 0, k)) {
            crn_clf_run_opts_free(o);
            return clf_blob_fail(at - 4, "bad column name length");
        }
        if (!(*str[i] = strndup((const char *)buf + at, k))) {
            crn_clf_run_opts_free(o);
            return crn_error_set(CRN_ENOMEM, "out of memory decoding the run state");
        }
        at += k;
    }
    crn_train_opts_free(&o->t);
    int rc = crn_train_blob_decode(&o->t, s, buf + at, len - at);
    if (rc) {
        free(o->text_col);
        free(o->label_col);
        o->text_col = o->label_col = NULL;
        crn_train_opts_default(&o->t);
        crn_error_prefix(rc, "classifier run state from byte %zu", at);
    }
    return rc;
}
