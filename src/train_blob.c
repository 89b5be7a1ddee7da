/* train_blob.c — the training state as bytes (the TRAIN section of a model
 * file, format in train.h and docs/training.md): encode, bounds-checked
 * decode, and which file of a run a resume continues from (run_id). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "byteorder.h"
#include "common.h"
#include "train.h"

#define BLOB_MAGIC "CRNTRAIN"
#define BLOB_VERSION 2u
#define BLOB_MAX_STRING (1u << 20)
#define BLOB_MAX_LIST 4096u

void crn_train_status_free(crn_train_status *s) {
    if (!s) return;
    free(s->carry);
    s->carry = NULL;
}


typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void w_bytes(wbuf *w, const void *src, size_t n) {
    if (w->oom) return;
    if (n > w->cap - w->n) {
        size_t cap = w->cap ? w->cap : 256;
        while (n > cap - w->n) {
            if (cap > SIZE_MAX / 2) { w->oom = 1; return; }
            cap *= 2;
        }
        uint8_t *p = realloc(w->p, cap);
        if (!p) { w->oom = 1; return; }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void w_u32(wbuf *w, uint32_t v) {
    uint8_t b[4];
    crn_le_put_u32(b, v);
    w_bytes(w, b, 4);
}

static void w_u64(wbuf *w, uint64_t v) {
    uint8_t b[8];
    crn_le_put_u64(b, v);
    w_bytes(w, b, 8);
}

static void w_f64(wbuf *w, double d) {
    uint8_t b[8];
    crn_le_put_f64(b, d);
    w_bytes(w, b, 8);
}

static void w_f32(wbuf *w, float f) {
    uint8_t b[4];
    crn_le_put_f32(b, f);
    w_bytes(w, b, 4);
}

static void w_str(wbuf *w, const char *s) {
    size_t n = s ? strlen(s) : 0;
    w_u32(w, s ? (uint32_t)n : 0xffffffffu); /* 0xffffffff = NULL */
    if (s) w_bytes(w, s, n);
}

static void w_list(wbuf *w, char *const *a, size_t n) {
    w_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) w_str(w, a[i]);
}

static void w_optim(wbuf *w, const crn_optim_config *c) {
    w_u32(w, (uint32_t)c->kind);
    w_f32(w, c->lr);
    w_f32(w, c->beta1);
    w_f32(w, c->beta2);
    w_f32(w, c->eps);
    w_f32(w, c->weight_decay);
    w_f32(w, c->momentum);
    w_f32(w, c->alpha);
}

int crn_train_blob_encode(uint8_t **out, size_t *len, const crn_train_opts *o, const crn_train_status *s) {
    *out = NULL;
    *len = 0;
    if (o->n_keep > BLOB_MAX_LIST || o->n_drop > BLOB_MAX_LIST || o->n_replace > BLOB_MAX_LIST)
        return crn_error_set(CRN_ERANGE, "training state: too many cleaning patterns (max %u)", BLOB_MAX_LIST);
    wbuf w = {0};
    w_bytes(&w, BLOB_MAGIC, 8);
    w_u32(&w, BLOB_VERSION);
    /* state */
    w_u64(&w, s->run_id);
    w_u64(&w, s->step);
    w_u64(&w, s->epoch);
    w_u64(&w, s->win);
    w_f64(&w, s->elapsed);
    w_u32(&w, (uint32_t)(s->has_best != 0));
    w_f64(&w, s->best_val_bpc);
    w_u64(&w, s->best_step);
    w_u32(&w, s->bad_evals);
    w_u32(&w, s->nonfinite_total);
    w_u32(&w, s->nonfinite_run);
    w_f64(&w, s->lr_scale);
    for (int i = 0; i < 4; i++) w_u64(&w, s->rng.s[i]);
    w_u64(&w, s->n_evals);
    w_f64(&w, s->first_val_bpc);
    w_f64(&w, s->last_val_bpc);
    w_f64(&w, s->last_val_bpt);
    w_f64(&w, s->last_train_bpc);
    w_u64(&w, s->tokens_seen);
    w_u32(&w, s->stop_reason);
    w_u64(&w, s->started_unix);
    /* options */
    w_str(&w, o->corpus_path);
    w_u32(&w, (uint32_t)o->unit);
    w_u32(&w, (uint32_t)o->norm);
    w_u32(&w, (uint32_t)o->invalid);
    w_u64(&w, o->min_count);
    w_f64(&w, o->val_frac);
    w_list(&w, o->keep, o->n_keep);
    w_list(&w, o->drop, o->n_drop);
    w_list(&w, o->replace, o->n_replace);
    w_u32(&w, o->batch);
    w_u32(&w, o->seq);
    w_u32(&w, (uint32_t)o->model.cell);
    w_u32(&w, (uint32_t)o->model.act);
    w_u32(&w, o->model.vocab);
    w_u32(&w, o->model.embed);
    w_u32(&w, o->model.hidden);
    w_u32(&w, o->model.layers);
    w_f32(&w, o->model.dropout);
    w_optim(&w, &o->optim);
    w_f64(&w, o->clip);
    w_u32(&w, (uint32_t)o->sched.kind);
    w_f32(&w, o->sched.lr);
    w_f32(&w, o->sched.decay);
    w_u64(&w, o->sched.decay_after);
    w_u64(&w, o->sched.decay_every);
    w_u64(&w, o->sched.warmup);
    w_u64(&w, o->sched.total);
    w_f32(&w, o->sched.min_lr);
    w_f64(&w, o->time_limit);
    w_u64(&w, o->max_steps);
    w_u64(&w, o->max_epochs);
    w_u64(&w, o->eval_every);
    w_u32(&w, o->patience);
    w_u64(&w, o->save_every_steps);
    w_f64(&w, o->save_every_seconds);
    w_u32(&w, (uint32_t)(o->no_optimizer_state != 0));
    w_u64(&w, o->seed);
    w_str(&w, o->log_path);
    w_u64(&w, o->sample_every);
    w_u32(&w, o->sample_len);
    /* carried state */
    w_u32(&w, s->carry ? s->carry_layers : 0);
    w_u32(&w, s->carry ? s->carry_batch : 0);
    w_u32(&w, s->carry ? s->carry_hidden : 0);
    w_u32(&w, s->carry ? s->carry_has_c : 0);
    if (s->carry) {
        size_t n = (size_t)s->carry_layers * (1u + s->carry_has_c) * s->carry_batch * s->carry_hidden;
        for (size_t i = 0; i < n; i++) w_f32(&w, s->carry[i]);
    }
    /* version 2 */
    w_u32(&w, (uint32_t)o->init.kind);
    w_f32(&w, o->init.forget_bias);
    w_u64(&w, s->horizon);
    if (w.oom) {
        free(w.p);
        return crn_error_set(CRN_ENOMEM, "out of memory encoding the training state");
    }
    *out = w.p;
    *len = w.n;
    return 0;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t n, pos;
    int err;            /* first error code, 0 if none */
} rbuf;

static int r_fail(rbuf *r, const char *what) {
    if (!r->err)
        r->err = crn_error_set(CRN_EFORMAT, "training state at byte %zu: %s", r->pos, what);
    return r->err;
}

static int r_need(rbuf *r, size_t k) {
    if (r->err) return -1;
    if (k > r->n - r->pos) {
        r_fail(r, "truncated");
        return -1;
    }
    return 0;
}

static uint32_t r_u32(rbuf *r) {
    if (r_need(r, 4)) return 0;
    uint32_t v = crn_le_get_u32(r->p + r->pos);
    r->pos += 4;
    return v;
}

static uint64_t r_u64(rbuf *r) {
    if (r_need(r, 8)) return 0;
    uint64_t v = crn_le_get_u64(r->p + r->pos);
    r->pos += 8;
    return v;
}

static double r_f64(rbuf *r) {
    if (r_need(r, 8)) return 0;
    double d = crn_le_get_f64(r->p + r->pos);
    r->pos += 8;
    return d;
}

static float r_f32(rbuf *r) {
    if (r_need(r, 4)) return 0;
    float f = crn_le_get_f32(r->p + r->pos);
    r->pos += 4;
    return f;
}

/* finite and within [lo, hi] */
static double r_f64_in(rbuf *r, double lo, double hi, const char *what) {
    size_t at = r->pos;
    double d = r_f64(r);
    if (!r->err && !(d >= lo && d <= hi)) {
        r->pos = at;
        r_fail(r, what);
    }
    return d;
}

static float r_f32_in(rbuf *r, float lo, float hi, const char *what) {
    size_t at = r->pos;
    float f = r_f32(r);
    if (!r->err && !(f >= lo && f <= hi)) {
        r->pos = at;
        r_fail(r, what);
    }
    return f;
}

static uint32_t r_u32_max(rbuf *r, uint32_t max, const char *what) {
    size_t at = r->pos;
    uint32_t v = r_u32(r);
    if (!r->err && v > max) {
        r->pos = at;
        r_fail(r, what);
    }
    return v;
}

static char *r_str(rbuf *r) {
    size_t at = r->pos;
    uint32_t n = r_u32(r);
    if (r->err || n == 0xffffffffu) return NULL;
    if (n > BLOB_MAX_STRING) {
        r->pos = at;
        r_fail(r, "string length out of range");
        return NULL;
    }
    if (r_need(r, n)) return NULL;
    if (memchr(r->p + r->pos, 0, n)) {
        r_fail(r, "NUL byte inside a string");
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->err = crn_error_set(CRN_ENOMEM, "out of memory decoding the training state");
        return NULL;
    }
    memcpy(s, r->p + r->pos, n);
    s[n] = 0;
    r->pos += n;
    return s;
}

static char **r_list(rbuf *r, size_t *count) {
    *count = 0;
    uint32_t n = r_u32_max(r, BLOB_MAX_LIST, "pattern count out of range");
    if (r->err || n == 0) return NULL;
    char **a = calloc(n, sizeof *a);
    if (!a) {
        r->err = crn_error_set(CRN_ENOMEM, "out of memory decoding the training state");
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        a[i] = r_str(r);
        if (r->err || !a[i]) {
            if (!r->err) r_fail(r, "missing pattern");
            crn_train_list_free(a, n);
            return NULL;
        }
    }
    *count = n;
    return a;
}

/* crn_train_blob_decode, by part: the run status, the options, the carried
 * state, and what version 2 added (read in that order). */
static void decode_status(rbuf *r, crn_train_status *s) {
    s->run_id = r_u64(r);
    s->step = r_u64(r);
    s->epoch = r_u64(r);
    s->win = r_u64(r);
    s->elapsed = r_f64_in(r, 0, 1e12, "elapsed time out of range");
    s->has_best = (int)r_u32_max(r, 1, "bad best flag");
    s->best_val_bpc = r_f64(r);
    s->best_step = r_u64(r);
    s->bad_evals = r_u32(r);
    s->nonfinite_total = r_u32(r);
    s->nonfinite_run = r_u32(r);
    s->lr_scale = r_f64_in(r, 0, 1, "learning-rate scale out of range");
    for (int i = 0; i < 4; i++) s->rng.s[i] = r_u64(r);
    s->n_evals = r_u64(r);
    s->first_val_bpc = r_f64(r);
    s->last_val_bpc = r_f64(r);
    s->last_val_bpt = r_f64(r);
    s->last_train_bpc = r_f64(r);
    s->tokens_seen = r_u64(r);
    s->stop_reason = r_u32_max(r, CRN_TRAIN_STOP_ERROR, "bad stop reason");
    s->started_unix = r_u64(r);
    if (!r->err && s->step > ((uint64_t)1 << 62)) r_fail(r, "step count out of range");
}

static void decode_opts(rbuf *r, crn_train_opts *o) {
    o->corpus_path = r_str(r);
    o->unit = (enum crn_unit)r_u32_max(r, CRN_UNIT_JAMO, "bad unit");
    o->norm = (enum crn_norm)r_u32_max(r, CRN_NORM_NONE, "bad normalisation");
    o->invalid = (enum crn_invalid)r_u32_max(r, CRN_INVALID_SKIP, "bad invalid-input policy");
    o->min_count = r_u64(r);
    o->val_frac = r_f64_in(r, 0, 0.9, "validation fraction out of range");
    o->keep = r_list(r, &o->n_keep);
    o->drop = r_list(r, &o->n_drop);
    o->replace = r_list(r, &o->n_replace);
    o->batch = r_u32_max(r, 1u << 20, "batch out of range");
    o->seq = r_u32_max(r, 1u << 20, "sequence length out of range");
    if (!r->err && (o->batch == 0 || o->seq == 0)) r_fail(r, "batch or sequence length is 0");
    o->model.cell = (enum crn_cell)r_u32_max(r, CRN_CELL_GRU, "bad cell");
    o->model.act = (enum crn_act)r_u32_max(r, CRN_ACT_RELU, "bad activation");
    o->model.vocab = r_u32(r);
    o->model.embed = r_u32(r);
    o->model.hidden = r_u32(r);
    o->model.layers = r_u32(r);
    o->model.dropout = r_f32_in(r, 0, 0.999f, "dropout out of range");
    o->optim.kind = (enum crn_optim_kind)r_u32_max(r, CRN_OPT_SGD, "bad optimizer");
    o->optim.lr = r_f32_in(r, 0, 1e6f, "learning rate out of range");
    o->optim.beta1 = r_f32_in(r, 0, 1, "beta1 out of range");
    o->optim.beta2 = r_f32_in(r, 0, 1, "beta2 out of range");
    o->optim.eps = r_f32_in(r, 0, 1, "eps out of range");
    o->optim.weight_decay = r_f32_in(r, 0, 1e6f, "weight decay out of range");
    o->optim.momentum = r_f32_in(r, 0, 1, "momentum out of range");
    o->optim.alpha = r_f32_in(r, 0, 1, "alpha out of range");
    o->clip = r_f64_in(r, 0, 1e30, "clip out of range");
    o->sched.kind = (enum crn_schedule_kind)r_u32_max(r, CRN_SCHED_LINEAR, "bad schedule");
    o->sched.lr = r_f32_in(r, 0, 1e6f, "schedule lr out of range");
    o->sched.decay = r_f32_in(r, 0, 1e6f, "decay out of range");
    o->sched.decay_after = r_u64(r);
    o->sched.decay_every = r_u64(r);
    o->sched.warmup = r_u64(r);
    o->sched.total = r_u64(r);
    o->sched.min_lr = r_f32_in(r, 0, 1e6f, "min lr out of range");
    o->time_limit = r_f64_in(r, 0, 1e12, "time budget out of range");
    o->max_steps = r_u64(r);
    o->max_epochs = r_u64(r);
    o->eval_every = r_u64(r);
    o->patience = r_u32(r);
    o->save_every_steps = r_u64(r);
    o->save_every_seconds = r_f64_in(r, 0, 1e12, "save interval out of range");
    o->no_optimizer_state = (int)r_u32_max(r, 1, "bad flag");
    o->seed = r_u64(r);
    o->log_path = r_str(r);
    o->sample_every = r_u64(r);
    o->sample_len = r_u32_max(r, 1u << 24, "sample length out of range");
}

static void decode_carry(rbuf *r, crn_train_status *s) {
    s->carry_layers = r_u32_max(r, 1u << 16, "carried state: layers out of range");
    s->carry_batch = r_u32_max(r, 1u << 20, "carried state: batch out of range");
    s->carry_hidden = r_u32_max(r, 1u << 24, "carried state: hidden size out of range");
    s->carry_has_c = r_u32_max(r, 1, "carried state: bad flag");
    if (!r->err && s->carry_layers && s->carry_batch && s->carry_hidden) {
        size_t n = 0;
        if (crn_mul_size((size_t)s->carry_layers * (1u + s->carry_has_c), s->carry_batch, &n) ||
            crn_mul_size(n, s->carry_hidden, &n) || n > (r->n - r->pos) / 4) {
            r_fail(r, "carried state larger than the data");
        } else {
            s->carry = malloc(n * sizeof(float));
            if (!s->carry) {
                r->err = crn_error_set(CRN_ENOMEM, "out of memory decoding the training state");
            } else {
                for (size_t i = 0; i < n; i++) s->carry[i] = r_f32(r);
                for (size_t i = 0; i < n && !r->err; i++)
                    if (!isfinite(s->carry[i])) r_fail(r, "non-finite value in the carried state");
            }
        }
    } else if (!r->err) {
        s->carry_layers = s->carry_batch = s->carry_hidden = s->carry_has_c = 0;
    }
}

static void decode_v2(rbuf *r, uint32_t ver, crn_train_opts *o, crn_train_status *s) {
    if (ver >= 2) {
        o->init.kind = (enum crn_init_kind)r_u32_max(r, CRN_INIT_ORTHOGONAL, "bad init scheme");
        size_t at = r->pos;
        o->init.forget_bias = r_f32(r);
        if (!r->err && isinf(o->init.forget_bias)) {
            r->pos = at;
            r_fail(r, "forget bias out of range");
        }
        s->horizon = r_u64(r);
        if (!r->err && s->horizon > ((uint64_t)1 << 62)) r_fail(r, "schedule horizon out of range");
    } else {
        o->init.kind = CRN_INIT_PYTORCH; /* what version-1 writers used */
        o->init.forget_bias = 1;
    }
}

int crn_train_blob_decode(crn_train_opts *o, crn_train_status *s, const uint8_t *buf, size_t len) {
    crn_train_opts_default(o);
    memset(s, 0, sizeof *s);
    rbuf rr = {buf, len, 0, 0}, *r = &rr;
    if (!buf || len < 12 || memcmp(buf, BLOB_MAGIC, 8))
        return crn_error_set(CRN_EFORMAT, "training state at byte 0: bad magic (not a charrnn training state)");
    r->pos = 8;
    uint32_t ver = r_u32(r);
    if (ver < 1 || ver > BLOB_VERSION) {
        r->pos = 8;
        return crn_error_set(CRN_EFORMAT, "training state at byte 8: version %u is not supported (this build reads %u)",
                             ver, BLOB_VERSION);
    }
    decode_status(r, s);
    decode_opts(r, o);
    decode_carry(r, s);
    decode_v2(r, ver, o, s);
    if (!r->err && r->pos != r->n) r_fail(r, "trailing bytes");
    if (r->err) {
        crn_train_opts_free(o);
        crn_train_status_free(s);
        return r->err;
    }
    return 0;
}

/* ---- which file a resume continues from ----------------------------------- */

/* The run id recorded in a checkpoint's training state, or 0 (none / unreadable). */
static uint64_t checkpoint_run_id(const crn_checkpoint *ck) {
    if (!ck->train_blob) return 0;
    crn_train_opts o;
    crn_train_status s;
    uint64_t id = crn_train_blob_decode(&o, &s, ck->train_blob, ck->train_blob_len) < 0 ? 0 : s.run_id;
    crn_train_opts_free(&o);
    crn_train_status_free(&s);
    return id;
}

/* Does ck (loaded from resume_path) belong to another run than base? */
static int other_run(const crn_checkpoint *ck, const char *base, const char *resume_path, char *note, size_t cap) {
    crn_checkpoint *best = NULL;
    if (!crn_file_exists(base) || crn_checkpoint_load(&best, base) < 0) return 0;
    uint64_t a = checkpoint_run_id(ck), b = checkpoint_run_id(best);
    crn_checkpoint_destroy(best);
    if (!a || !b || a == b) return 0;
    if (cap)
        snprintf(note, cap, "warning: %s belongs to another run (run id %016llx, %s has %016llx); resuming %s",
                 resume_path, (unsigned long long)a, base, (unsigned long long)b, base);
    return 1;
}

int crn_train_open_resume(crn_checkpoint **out, int *from_resume, const char *base, const char *resume_path,
                          char *note, size_t cap) {
    *out = NULL;
    *from_resume = 0;
    if (cap) note[0] = 0;
    crn_checkpoint *ck = NULL;
    if (crn_file_exists(resume_path)) {
        if (crn_checkpoint_load(&ck, resume_path) < 0) {
            if (cap) snprintf(note, cap, "warning: %s; trying %s", crn_error_message(), base);
            ck = NULL;
        } else if (!ck->train_blob || other_run(ck, base, resume_path, note, cap)) {
            crn_checkpoint_destroy(ck);
            ck = NULL;
        }
    }
    if (ck) {
        *from_resume = 1;
        *out = ck;
        return 0;
    }
    int err = crn_checkpoint_load(&ck, base);
    if (err < 0) return err;
    if (!ck->train_blob) {
        crn_checkpoint_destroy(ck);
        return crn_error_set(CRN_EINVAL, "%s has no training state (a model-only file); use --init-from %s to "
                             "fine-tune it", base, base);
    }
    *out = ck;
    return 0;
}

void crn_train_resumed_free(crn_train_resumed *r) {
    if (!r) return;
    free(r->base);
    free(r->resume_path);
    crn_checkpoint_destroy(r->ck);
    crn_train_opts_free(&r->opts);
    crn_train_status_free(&r->state);
    memset(r, 0, sizeof *r);
}

int crn_train_resumed_open(crn_train_resumed *r, const char *path, char *note, size_t cap) {
    memset(r, 0, sizeof *r);
    if (cap) note[0] = 0;
    /* MODEL or MODEL.resume may be named; the run's files are MODEL(.resume) */
    size_t n = strlen(path), k = strlen(CRN_RESUME_SUFFIX);
    if (n > k && !strcmp(path + n - k, CRN_RESUME_SUFFIX)) n -= k;
    r->base = malloc(n + 1);
    r->resume_path = malloc(n + k + 1);
    if (!r->base || !r->resume_path) {
        crn_train_resumed_free(r);
        return crn_error_set(CRN_ENOMEM, "out of memory");
    }
    memcpy(r->base, path, n);
    r->base[n] = 0;
    snprintf(r->resume_path, n + k + 1, "%s%s", r->base, CRN_RESUME_SUFFIX);
    int from_resume = 0;
    int err = crn_train_open_resume(&r->ck, &from_resume, r->base, r->resume_path, note, cap);
    if (err < 0) goto fail;
    r->loaded_from = from_resume ? r->resume_path : r->base;
    if ((err = crn_train_blob_decode(&r->opts, &r->state, r->ck->train_blob, r->ck->train_blob_len)) < 0) {
        crn_error_prefix(err, "%s", r->loaded_from);
        goto fail;
    }
    r->opts.model = r->ck->cfg;
    return 0;
fail:
    crn_train_resumed_free(r);
    return err;
}
