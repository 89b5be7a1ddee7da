/* optim.c — optimizers over the model's flat parameter buffer, global-norm
 * clipping and learning-rate schedules (formulas in optim.h).
 *
 * The per-element arithmetic mirrors PyTorch's CPU kernels operation by
 * operation (scalars derived in double, then rounded to float once, tensor
 * operations in float, left to right, fused where torch fuses), so with float32-representable
 * hyperparameters our Adam/AdamW/SGD updates match torch.optim's to the bit
 * (tests/test_optim.c checks that against torch's own numbers). Every
 * update loop is a plain loop over restrict pointers with no branches in the
 * body, which the compiler vectorises. The loops with sqrtf need
 * -fno-math-errno for that (GCC otherwise keeps sqrtf's errno path as a
 * branch, and neither `#pragma GCC optimize` nor the function attribute lifts
 * it), so meson.build compiles this library with it: Adam goes from ~14 to
 * ~4 ns per parameter. crn_optim_step never allocates. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *const optim_names[] = {"adam", "adamw", "rmsprop", "adagrad", "sgd"};

const char *crn_optim_name(enum crn_optim_kind k) {
    if ((unsigned)k < CRN_ARRAY_LEN(optim_names)) return optim_names[k];
    return "unknown";
}

int crn_optim_parse(const char *s, enum crn_optim_kind *out) {
    if (!s) return crn_error_set(CRN_EINVAL, "optimizer: missing name");
    for (size_t i = 0; i < CRN_ARRAY_LEN(optim_names); i++) {
        if (strcmp(s, optim_names[i]) == 0) {
            *out = (enum crn_optim_kind)i;
            return 0;
        }
    }
    return crn_error_set(CRN_EINVAL,
                         "unknown optimizer '%s' (expected adam, adamw, rmsprop, adagrad or sgd)", s);
}

void crn_optim_config_default(crn_optim_config *c, enum crn_optim_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lr = (kind == CRN_OPT_ADAGRAD || kind == CRN_OPT_SGD) ? 0.1f : 2e-3f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = kind == CRN_OPT_ADAMW ? 0.01f : 0.0f;
    c->momentum = 0.0f;
    c->alpha = 0.95f;
}

/* Which state arrays a configuration needs. */
static int needs_m(const crn_optim_config *c) {
    return c->kind == CRN_OPT_ADAM || c->kind == CRN_OPT_ADAMW ||
           (c->kind == CRN_OPT_SGD && c->momentum != 0.0f);
}
static int needs_v(const crn_optim_config *c) {
    return c->kind == CRN_OPT_ADAM || c->kind == CRN_OPT_ADAMW || c->kind == CRN_OPT_RMSPROP ||
           c->kind == CRN_OPT_ADAGRAD;
}

static int check_config(const crn_optim_config *c) {
    if ((unsigned)c->kind >= CRN_ARRAY_LEN(optim_names))
        return crn_error_set(CRN_EINVAL, "optimizer: unknown kind %d", (int)c->kind);
    if (!isfinite(c->lr) || c->lr < 0)
        return crn_error_set(CRN_EINVAL, "optimizer: learning rate %g must be finite and >= 0", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return crn_error_set(CRN_EINVAL, "optimizer: betas (%g, %g) must be in [0, 1)", c->beta1, c->beta2);
    if (!isfinite(c->eps) || c->eps < 0)
        return crn_error_set(CRN_EINVAL, "optimizer: eps %g must be finite and >= 0", c->eps);
    if (!isfinite(c->weight_decay) || c->weight_decay < 0)
        return crn_error_set(CRN_EINVAL, "optimizer: weight decay %g must be finite and >= 0",
                             c->weight_decay);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return crn_error_set(CRN_EINVAL, "optimizer: momentum %g must be in [0, 1)", c->momentum);
    if (!(c->alpha >= 0 && c->alpha < 1))
        return crn_error_set(CRN_EINVAL, "optimizer: rmsprop alpha %g must be in [0, 1)", c->alpha);
    return 0;
}

int crn_optim_create(crn_optim **out, const crn_optim_config *cfg, size_t n) {
    *out = NULL;
    int err = check_config(cfg);
    if (err) return err;
    crn_optim *o = calloc(1, sizeof *o);
    if (!o) return crn_error_set(CRN_ENOMEM, "optimizer: out of memory");
    o->cfg = *cfg;
    o->n = n;
    o->t = 0;
    if (needs_m(cfg) && !(o->m = crn_calloc(n, sizeof(float)))) goto oom;
    if (needs_v(cfg) && !(o->v = crn_calloc(n, sizeof(float)))) goto oom;
    *out = o;
    return 0;
oom:
    crn_optim_destroy(o);
    return crn_error_set(CRN_ENOMEM, "optimizer: out of memory for %zu-parameter state", n);
}

void crn_optim_destroy(crn_optim *o) {
    if (!o) return;
    crn_free(o->m);
    crn_free(o->v);
    free(o);
}

int crn_optim_reconfigure(crn_optim *o, const crn_optim_config *cfg) {
    int err = check_config(cfg);
    if (err) return err;
    if (cfg->kind != o->cfg.kind)
        return crn_error_set(CRN_EINVAL, "optimizer: cannot change %s into %s", crn_optim_name(o->cfg.kind),
                             crn_optim_name(cfg->kind));
    if (needs_v(cfg) != (o->v != NULL)) /* v depends on the kind only */
        return crn_error_set(CRN_EINVAL, "optimizer: state does not match its %s settings",
                             crn_optim_name(o->cfg.kind));
    if (needs_m(cfg) && !o->m && !(o->m = crn_calloc(o->n, sizeof(float))))
        return crn_error_set(CRN_ENOMEM, "optimizer: out of memory for %zu-parameter state", o->n);
    if (!needs_m(cfg) && o->m) {
        crn_free(o->m);
        o->m = NULL;
    }
    o->cfg = *cfg;
    return 0;
}

/* Buffers in a fixed order: m (if present), then v (if present). */
int crn_optim_num_buffers(const crn_optim *o) { return (o->m != NULL) + (o->v != NULL); }

float *crn_optim_buffer(crn_optim *o, int i) {
    if (i == 0) return o->m ? o->m : o->v;
    if (i == 1 && o->m) return o->v;
    return NULL;
}

/* torch's add(x, alpha=a) runs as a fused multiply-add (vec::fmadd) on CPU:
 * c + a*b rounded once. The product of two floats is exact in double, so one
 * double addition rounded to float gives the same result except in the rare
 * double-rounding ties, and unlike fmaf() it vectorises without -mfma. */
static inline float fmadd(float a, float b, float c) { return (float)((double)a * b + c); }

/* Adam / AdamW (torch 1.13 _single_tensor_adam / _single_tensor_adamw):
 *   [adamw] p *= 1 - lr*wd            [adam] g' = g + wd*p
 *   m = m*b1 + (1-b1)*g'
 *   v = v*b2 + (1-b2)*g'*g'
 *   p = p + (-lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps),  bc_k = 1 - b_k^t */
static void step_adam(crn_optim *o, float *restrict p, const float *restrict g, float lr) {
    const crn_optim_config *c = &o->cfg;
    const size_t n = o->n;
    float *restrict m = o->m, *restrict v = o->v;
    const double t = (double)o->t;
    const double bc1 = 1.0 - pow((double)c->beta1, t);
    const double bc2 = 1.0 - pow((double)c->beta2, t);
    const float b1 = c->beta1, b2 = c->beta2;
    const float omb1 = (float)(1.0 - (double)c->beta1);
    const float omb2 = (float)(1.0 - (double)c->beta2);
    const float neg_step = (float)-((double)lr / bc1);
    const float bc2s = (float)sqrt(bc2);
    const float eps = c->eps;
    if (c->kind == CRN_OPT_ADAMW) {
        const float shrink = (float)(1.0 - (double)lr * (double)c->weight_decay);
        for (size_t i = 0; i < n; i++) {
            float pi = p[i] * shrink;
            float gi = g[i];
            float mi = fmadd(omb1, gi, m[i] * b1);
            float vi = fmadd(omb2 * gi, gi, v[i] * b2); /* addcmul: fused too */
            m[i] = mi;
            v[i] = vi;
            p[i] = pi + neg_step * mi / (sqrtf(vi) / bc2s + eps);
        }
    } else {
        const float wd = c->weight_decay;
        for (size_t i = 0; i < n; i++) {
            float gi = fmadd(wd, p[i], g[i]);
            float mi = fmadd(omb1, gi, m[i] * b1);
            float vi = fmadd(omb2 * gi, gi, v[i] * b2); /* addcmul: fused too */
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] + neg_step * mi / (sqrtf(vi) / bc2s + eps);
        }
    }
}

/* char-rnn's optim.rmsprop: v = v*a + (1-a)*g*g; p = p + (-lr) * g / (sqrt(v) + eps). */
static void step_rmsprop(crn_optim *o, float *restrict p, const float *restrict g, float lr) {
    const crn_optim_config *c = &o->cfg;
    float *restrict v = o->v;
    const float a = c->alpha, oma = (float)(1.0 - (double)c->alpha);
    const float eps = c->eps, wd = c->weight_decay, nlr = -lr;
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i] + wd * p[i];
        float vi = v[i] * a + oma * gi * gi;
        v[i] = vi;
        p[i] = p[i] + nlr * gi / (sqrtf(vi) + eps);
    }
}

/* min-char-rnn's Adagrad: v += g*g; p = p + (-lr) * g / sqrt(v + eps). */
static void step_adagrad(crn_optim *o, float *restrict p, const float *restrict g, float lr) {
    const crn_optim_config *c = &o->cfg;
    float *restrict v = o->v;
    const float eps = c->eps, wd = c->weight_decay, nlr = -lr;
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i] + wd * p[i];
        float vi = v[i] + gi * gi;
        v[i] = vi;
        p[i] = p[i] + nlr * gi / sqrtf(vi + eps);
    }
}

/* torch.optim.SGD (dampening 0, no Nesterov): g' = g + wd*p;
 * with momentum: buf = g' on the first step, then buf = buf*mu + g'; d = buf;
 * p = p + (-lr) * d. */
static void step_sgd(crn_optim *o, float *restrict p, const float *restrict g, float lr) {
    const crn_optim_config *c = &o->cfg;
    const float wd = c->weight_decay, nlr = -lr;
    const size_t n = o->n;
    if (!o->m) {
        for (size_t i = 0; i < n; i++) p[i] = fmadd(nlr, fmadd(wd, p[i], g[i]), p[i]);
        return;
    }
    float *restrict b = o->m;
    const float mu = c->momentum;
    if (o->t == 1) {
        for (size_t i = 0; i < n; i++) {
            float gi = fmadd(wd, p[i], g[i]);
            b[i] = gi;
            p[i] = fmadd(nlr, gi, p[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float bi = b[i] * mu + fmadd(wd, p[i], g[i]);
            b[i] = bi;
            p[i] = fmadd(nlr, bi, p[i]);
        }
    }
}

void crn_optim_step(crn_optim *o, float *params, const float *grads, float lr) {
    o->t++;
    switch (o->cfg.kind) {
    case CRN_OPT_ADAM:
    case CRN_OPT_ADAMW: step_adam(o, params, grads, lr); break;
    case CRN_OPT_RMSPROP: step_rmsprop(o, params, grads, lr); break;
    case CRN_OPT_ADAGRAD: step_adagrad(o, params, grads, lr); break;
    case CRN_OPT_SGD: step_sgd(o, params, grads, lr); break;
    }
}

/* 1 if no element of x (n) is Inf or NaN: an all-ones exponent. An integer
 * OR-reduction, which vectorises without any FP flags. */
static int all_finite(const float *restrict x, size_t n) {
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

int crn_optim_finite(const crn_optim *o, const float *params) {
    return all_finite(params, o->n) && (!o->m || all_finite(o->m, o->n)) && (!o->v || all_finite(o->v, o->n));
}

double crn_clip_grad_norm(float *g, size_t n, double max_norm) {
    /* Four partial sums keep the loop vectorisable without -ffast-math
     * (the order is fixed, so the result is deterministic). */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)g[i] * g[i];
        s1 += (double)g[i + 1] * g[i + 1];
        s2 += (double)g[i + 2] * g[i + 2];
        s3 += (double)g[i + 3] * g[i + 3];
    }
    for (; i < n; i++) s0 += (double)g[i] * g[i];
    double norm = sqrt((s0 + s1) + (s2 + s3));
    if (!isfinite(norm)) return norm;
    if (max_norm > 0 && norm > max_norm) {
        const float scale = (float)(max_norm / norm);
        for (size_t j = 0; j < n; j++) g[j] *= scale;
    }
    return norm;
}

static const char *const sched_names[] = {"constant", "step", "cosine", "linear"};

const char *crn_schedule_name(enum crn_schedule_kind k) {
    return (unsigned)k < sizeof sched_names / sizeof *sched_names ? sched_names[k] : "?";
}

int crn_schedule_parse(const char *s, enum crn_schedule_kind *out) {
    for (size_t i = 0; i < sizeof sched_names / sizeof *sched_names; i++)
        if (!strcmp(s, sched_names[i])) {
            *out = (enum crn_schedule_kind)i;
            return 0;
        }
    return -1;
}

float crn_schedule_lr(const crn_schedule *s, uint64_t step) {
    const double base = s->lr;
    const int warming = s->warmup > 0 && step < s->warmup;
    const double warm = warming ? (double)(step + 1) / (double)s->warmup : 1.0;
    double lr;
    switch (s->kind) {
    case CRN_SCHED_STEP_DECAY: {
        uint64_t k = 0;
        if (step >= s->decay_after)
            k = s->decay_every ? (step - s->decay_after) / s->decay_every + 1 : 1;
        lr = base * pow((double)s->decay, (double)k) * warm;
        break;
    }
    case CRN_SCHED_COSINE:
    case CRN_SCHED_LINEAR: {
        if (warming) {
            lr = base * warm;
        } else {
            double prog = 1.0;
            if (s->total > s->warmup) {
                prog = (double)(step - s->warmup) / (double)(s->total - s->warmup);
                if (prog > 1.0) prog = 1.0;
            }
            const double floor_lr = s->min_lr;
            const double f = s->kind == CRN_SCHED_LINEAR ? 1.0 - prog : 0.5 * (1.0 + cos(M_PI * prog));
            lr = floor_lr + (base - floor_lr) * f;
        }
        break;
    }
    case CRN_SCHED_CONSTANT:
    default: lr = base * warm; break;
    }
    return (float)lr;
}
