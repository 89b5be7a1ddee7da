/* test_optim.c — optimizers, gradient clipping and learning-rate schedules.
 *
 * Each optimizer is run for a few steps on small arrays and compared with
 * (a) a reference written here in plain double arithmetic straight from the
 * published update rules (independent of optim.c's float code), and (b) for
 * Adam, AdamW and SGD with momentum, numbers produced by torch.optim itself.
 * The torch literals below were obtained with /usr/bin/python3 (torch
 * 1.13.0a0, CPU, float32 tensors) by this script:
 *
 *   import torch, numpy as np
 *   f32 = lambda x: float(np.float32(x))   # hyperparameters exact in float32
 *   p0 = [0.5, -1.25, 2.0, 0.0, 3.0e-3]
 *   G = [[0.1, -0.2, 0.3, -0.4, 1e-4], [-0.05, 0.25, 0.0, 0.5, -2.0],
 *        [0.3, 0.3, -0.1, 1e-3, 0.7]]
 *   def run(cls, **kw):
 *       p = torch.tensor(p0, dtype=torch.float32, requires_grad=True)
 *       opt = cls([p], **kw)
 *       for g in G:
 *           p.grad = torch.tensor(g, dtype=torch.float32); opt.step()
 *       ... print p and opt.state[p] ('exp_avg', 'exp_avg_sq', 'momentum_buffer')
 *   Adam(lr=f32(2e-3), betas=(f32(.9), f32(.999)), eps=f32(1e-8))
 *   Adam(lr=f32(1e-2), betas=(f32(.8), f32(.99)), eps=f32(1e-6), weight_decay=f32(.1))
 *   AdamW(lr=f32(1e-2), betas=(f32(.9), f32(.999)), eps=f32(1e-8), weight_decay=f32(.05))
 *   SGD(lr=f32(.1), momentum=f32(.9), weight_decay=f32(.01))
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "optim.h"

#define N5 5
static const float P0[N5] = {0.5f, -1.25f, 2.0f, 0.0f, 3.0e-3f};
static const float G3[3][N5] = {
    {0.1f, -0.2f, 0.3f, -0.4f, 1e-4f},
    {-0.05f, 0.25f, 0.0f, 0.5f, -2.0f},
    {0.3f, 0.3f, -0.1f, 1e-3f, 0.7f},
};

/* Distance in units in the last place between two floats of the same sign. */
static long ulp_dist(float a, float b) {
    if (a == b) return 0;
    if ((a < 0) != (b < 0)) return 1000000;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    long d = (long)ia - (long)ib;
    return d < 0 ? -d : d;
}

/* Our float result against torch's: optim.c repeats torch's operations in
 * torch's order (fused where torch fuses), so the results are identical
 * bit for bit; a difference is reported in ulps. */
static void expect_torch(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        long d = ulp_dist(got[i], want[i]);
        ck_assert_msg(d == 0, "%s[%zu]: got %.9e, torch %.9e (%ld ulp)", what, i, (double)got[i],
                      (double)want[i], d);
    }
    printf("  %-16s bit-identical to torch\n", what);
}

/* Float result against the double reference: float32 rounding over a few
 * steps stays within a few ulp relative to the magnitudes involved. */
static void expect_close(const char *what, const float *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double tol = 2e-6 * fabs(want[i]) + 1e-10;
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol, "%s[%zu]: got %.9e, reference %.9e", what,
                      i, (double)got[i], want[i]);
    }
}

/* ---- independent double references ------------------------------------ */

typedef struct ref_state {
    double p[64], m[64], v[64];
    int t;
} ref_state;

static void ref_init(ref_state *r, const float *p, size_t n) {
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) r->p[i] = p[i];
}

/* Kingma & Ba, Algorithm 1 with PyTorch's eps placement:
 * p -= lr * mhat / (sqrt(vhat) + eps') where mhat = m / (1-b1^t) and the eps
 * is added to sqrt(v)/sqrt(1-b2^t). decoupled: AdamW (p *= 1 - lr wd). */
static void ref_adam(ref_state *r, const float *g, size_t n, double lr, double b1, double b2,
                     double eps, double wd, int decoupled) {
    r->t++;
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (decoupled) r->p[i] *= 1 - lr * wd;
        else gi += wd * r->p[i];
        r->m[i] = b1 * r->m[i] + (1 - b1) * gi;
        r->v[i] = b2 * r->v[i] + (1 - b2) * gi * gi;
        double mhat = r->m[i] / (1 - pow(b1, r->t));
        double denom = sqrt(r->v[i]) / sqrt(1 - pow(b2, r->t)) + eps;
        r->p[i] -= lr * mhat / denom;
    }
}

static void ref_rmsprop(ref_state *r, const float *g, size_t n, double lr, double a, double eps) {
    for (size_t i = 0; i < n; i++) {
        r->v[i] = a * r->v[i] + (1 - a) * (double)g[i] * g[i];
        r->p[i] -= lr * g[i] / (sqrt(r->v[i]) + eps);
    }
}

static void ref_adagrad(ref_state *r, const float *g, size_t n, double lr, double eps) {
    for (size_t i = 0; i < n; i++) {
        r->v[i] += (double)g[i] * g[i];
        r->p[i] -= lr * g[i] / sqrt(r->v[i] + eps);
    }
}

static void ref_sgd(ref_state *r, const float *g, size_t n, double lr, double mu, double wd) {
    r->t++;
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] + wd * r->p[i];
        if (mu > 0) {
            r->m[i] = r->t == 1 ? gi : mu * r->m[i] + gi;
            gi = r->m[i];
        }
        r->p[i] -= lr * gi;
    }
}

/* ---- the torch cases --------------------------------------------------- */

static crn_optim *make(crn_optim_config *c, size_t n) {
    crn_optim *o = NULL;
    ck_assert_int_eq(crn_optim_create(&o, c, n), 0);
    ck_assert_ptr_nonnull(o);
    return o;
}

START_TEST(adam_matches_torch) {
    static const float want_p[N5] = {4.961262941e-01f, -1.249382854e+00f, 1.996081591e+00f,
                                     1.420954126e-03f, 3.151897807e-03f};
    static const float want_m[N5] = {3.360000998e-02f, 3.630001098e-02f, 1.430000272e-02f,
                                     1.270000171e-02f, -1.099919155e-01f};
    static const float want_v[N5] = {1.024761950e-04f, 1.923550735e-04f, 9.981881158e-05f,
                                     4.094258766e-04f, 4.485941958e-03f};
    crn_optim_config c;
    crn_optim_config_default(&c, CRN_OPT_ADAM);
    ck_assert_float_eq(c.lr, 2e-3f);
    ck_assert_float_eq(c.weight_decay, 0.0f);
    crn_optim *o = make(&c, N5);
    ck_assert_int_eq(crn_optim_num_buffers(o), 2);
    float p[N5];
    memcpy(p, P0, sizeof p);
    ref_state r;
    ref_init(&r, P0, N5);
    for (int s = 0; s < 3; s++) {
        crn_optim_step(o, p, G3[s], c.lr);
        ref_adam(&r, G3[s], N5, c.lr, c.beta1, c.beta2, c.eps, 0, 0);
    }
    ck_assert_uint_eq(o->t, 3);
    expect_torch("adam p", p, want_p, N5);
    expect_torch("adam exp_avg", crn_optim_buffer(o, 0), want_m, N5);
    expect_torch("adam exp_avg_sq", crn_optim_buffer(o, 1), want_v, N5);
    expect_close("adam p/ref", p, r.p, N5);
    expect_close("adam m/ref", o->m, r.m, N5);
    expect_close("adam v/ref", o->v, r.v, N5);
    crn_optim_destroy(o);
}
END_TEST

START_TEST(adam_l2_matches_torch) {
    static const float want_p[N5] = {4.754786193e-01f, -1.238232851e+00f, 1.973716617e+00f,
                                     6.156832911e-03f, 3.873909358e-03f};
    static const float want_m[N5] = {8.871503174e-02f, 1.382052060e-02f, 1.154647768e-01f,
                                     2.931565046e-02f, -1.800432056e-01f};
    static const float want_v[N5] = {1.434183563e-03f, 1.503227861e-03f, 2.938580001e-03f,
                                     4.053097684e-03f, 4.452879354e-02f};
    crn_optim_config c;
    crn_optim_config_default(&c, CRN_OPT_ADAM);
    c.lr = 1e-2f;
    c.beta1 = 0.8f;
    c.beta2 = 0.99f;
    c.eps = 1e-6f;
    c.weight_decay = 0.1f;
    crn_optim *o = make(&c, N5);
    float p[N5];
    memcpy(p, P0, sizeof p);
    ref_state r;
    ref_init(&r, P0, N5);
    for (int s = 0; s < 3; s++) {
        crn_optim_step(o, p, G3[s], c.lr);
        ref_adam(&r, G3[s], N5, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, 0);
    }
    expect_torch("adam+l2 p", p, want_p, N5);
    expect_torch("adam+l2 m", o->m, want_m, N5);
    expect_torch("adam+l2 v", o->v, want_v, N5);
    expect_close("adam+l2 p/ref", p, r.p, N5);
    crn_optim_destroy(o);
}
END_TEST

START_TEST(adamw_matches_torch) {
    static const float want_p[N5] = {4.798932970e-01f, -1.245049477e+00f, 1.977422714e+00f,
                                     7.095584646e-03f, 3.761266125e-03f};
    static const float want_m[N5] = {3.360000998e-02f, 3.630001098e-02f, 1.430000272e-02f,
                                     1.270000171e-02f, -1.099919155e-01f};
    static const float want_v[N5] = {1.024761950e-04f, 1.923550735e-04f, 9.981881158e-05f,
                                     4.094258766e-04f, 4.485941958e-03f};
    crn_optim_config c;
    crn_optim_config_default(&c, CRN_OPT_ADAMW);
    ck_assert_float_eq(c.weight_decay, 0.01f);
    c.lr = 1e-2f;
    c.weight_decay = 0.05f;
    crn_optim *o = make(&c, N5);
    float p[N5];
    memcpy(p, P0, sizeof p);
    ref_state r;
    ref_init(&r, P0, N5);
    for (int s = 0; s < 3; s++) {
        crn_optim_step(o, p, G3[s], c.lr);
        ref_adam(&r, G3[s], N5, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, 1);
    }
    expect_torch("adamw p", p, want_p, N5);
    expect_torch("adamw m", o->m, want_m, N5);
    expect_torch("adamw v", o->v, want_v, N5);
    expect_close("adamw p/ref", p, r.p, N5);
    crn_optim_destroy(o);
}
END_TEST

START_TEST(sgd_momentum_matches_torch) {
    static const float want_p[N5] = {4.496303797e-01f, -1.266344547e+00f, 1.917603612e+00f,
                                     1.319803949e-02f, 3.127561212e-01f};
    static const float want_b[N5] = {3.493011296e-01f, 3.294823170e-01f, 1.962843239e-01f,
                                     1.276196092e-01f, -1.097838044e+00f};
    crn_optim_config c;
    crn_optim_config_default(&c, CRN_OPT_SGD);
    ck_assert_float_eq(c.lr, 0.1f);
    c.momentum = 0.9f;
    c.weight_decay = 0.01f;
    crn_optim *o = make(&c, N5);
    ck_assert_int_eq(crn_optim_num_buffers(o), 1);
    ck_assert_ptr_eq(crn_optim_buffer(o, 0), o->m);
    ck_assert_ptr_null(crn_optim_buffer(o, 1));
    float p[N5];
    memcpy(p, P0, sizeof p);
    ref_state r;
    ref_init(&r, P0, N5);
    for (int s = 0; s < 3; s++) {
        crn_optim_step(o, p, G3[s], c.lr);
        ref_sgd(&r, G3[s], N5, c.lr, c.momentum, c.weight_decay);
    }
    expect_torch("sgd p", p, want_p, N5);
    expect_torch("sgd momentum", o->m, want_b, N5);
    expect_close("sgd p/ref", p, r.p, N5);
    expect_close("sgd m/ref", o->m, r.m, N5);
    crn_optim_destroy(o);
}
END_TEST

/* ---- every optimizer against its double reference on an odd-sized array
 * (exercises the vectorised loop bodies and their scalar tails) ---------- */

#define NR 37
static void fill(float *x, size_t n, unsigned seed, float scale) {
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = scale * ((float)((s >> 8) & 0xffff) / 65536.0f - 0.5f);
    }
}

static void run_vs_ref(enum crn_optim_kind kind, float momentum, float wd) {
    crn_optim_config c;
    crn_optim_config_default(&c, kind);
    c.momentum = momentum;
    c.weight_decay = wd;
    crn_optim *o = make(&c, NR);
    float p[NR], g[NR];
    fill(p, NR, 7, 2.0f);
    ref_state r;
    ref_init(&r, p, NR);
    for (int s = 0; s < 5; s++) {
        fill(g, NR, 100u + (unsigned)s, 1.0f);
        float lr = c.lr * (1.0f - 0.1f * (float)s); /* a varying lr, as a schedule gives */
        crn_optim_step(o, p, g, lr);
        switch (kind) {
        case CRN_OPT_ADAM: ref_adam(&r, g, NR, lr, c.beta1, c.beta2, c.eps, c.weight_decay, 0); break;
        case CRN_OPT_ADAMW: ref_adam(&r, g, NR, lr, c.beta1, c.beta2, c.eps, c.weight_decay, 1); break;
        case CRN_OPT_RMSPROP: ref_rmsprop(&r, g, NR, lr, c.alpha, c.eps); break;
        case CRN_OPT_ADAGRAD: ref_adagrad(&r, g, NR, lr, c.eps); break;
        case CRN_OPT_SGD: ref_sgd(&r, g, NR, lr, c.momentum, c.weight_decay); break;
        }
    }
    char what[64];
    snprintf(what, sizeof what, "%s p", crn_optim_name(kind));
    expect_close(what, p, r.p, NR);
    if (o->m) expect_close("m", o->m, r.m, NR);
    if (o->v) expect_close("v", o->v, r.v, NR);
    ck_assert_uint_eq(o->t, 5);
    crn_optim_destroy(o);
}

START_TEST(all_vs_reference) {
    run_vs_ref(CRN_OPT_ADAM, 0, 0);
    run_vs_ref(CRN_OPT_ADAMW, 0, 0.01f);
    run_vs_ref(CRN_OPT_RMSPROP, 0, 0);
    run_vs_ref(CRN_OPT_ADAGRAD, 0, 0);
    run_vs_ref(CRN_OPT_SGD, 0, 0);
    run_vs_ref(CRN_OPT_SGD, 0.5f, 0.001f);
}
END_TEST

/* Hand-computed single steps (numbers worked out on paper). */
START_TEST(hand_computed_steps) {
    crn_optim_config c;
    /* rmsprop, alpha 0.95: v = 0.05 * 4 = 0.2; p = 1 - 0.1 * 2 / (sqrt(0.2) + eps) */
    crn_optim_config_default(&c, CRN_OPT_RMSPROP);
    ck_assert_float_eq(c.alpha, 0.95f);
    c.eps = 0;
    crn_optim *o = make(&c, 1);
    ck_assert_int_eq(crn_optim_num_buffers(o), 1);
    ck_assert_ptr_eq(crn_optim_buffer(o, 0), o->v);
    float p = 1.0f, g = 2.0f;
    crn_optim_step(o, &p, &g, 0.1f);
    ck_assert_double_eq_tol(o->v[0], 0.2, 1e-7);
    ck_assert_double_eq_tol(p, 1.0 - 0.2 / sqrt(0.2), 1e-6);
    crn_optim_destroy(o);

    /* adagrad: v = 9 then 9 + 16 = 25; p = 1 - 0.1*3/3 - 0.1*4/5 = 0.82 */
    crn_optim_config_default(&c, CRN_OPT_ADAGRAD);
    c.eps = 0;
    o = make(&c, 1);
    p = 1.0f;
    g = 3.0f;
    crn_optim_step(o, &p, &g, 0.1f);
    g = 4.0f;
    crn_optim_step(o, &p, &g, 0.1f);
    ck_assert_float_eq(o->v[0], 25.0f);
    ck_assert_double_eq_tol(p, 0.82, 1e-6);
    crn_optim_destroy(o);

    /* adam first step: mhat = g, vhat = g^2, so p moves by lr * sign(g) (eps 0) */
    crn_optim_config_default(&c, CRN_OPT_ADAM);
    c.eps = 0;
    o = make(&c, 2);
    float pp[2] = {0.5f, 0.5f}, gg[2] = {3.0f, -0.001f};
    crn_optim_step(o, pp, gg, 0.01f);
    ck_assert_double_eq_tol(pp[0], 0.49, 1e-7);
    ck_assert_double_eq_tol(pp[1], 0.51, 1e-7);
    crn_optim_destroy(o);

    /* plain sgd has no state */
    crn_optim_config_default(&c, CRN_OPT_SGD);
    o = make(&c, 1);
    ck_assert_int_eq(crn_optim_num_buffers(o), 0);
    ck_assert_ptr_null(crn_optim_buffer(o, 0));
    p = 1.0f;
    g = 2.0f;
    crn_optim_step(o, &p, &g, 0.25f);
    ck_assert_float_eq(p, 0.5f);
    crn_optim_destroy(o);
}
END_TEST

START_TEST(names_and_bad_configs) {
    for (int k = CRN_OPT_ADAM; k <= CRN_OPT_SGD; k++) {
        enum crn_optim_kind back;
        ck_assert_int_eq(crn_optim_parse(crn_optim_name((enum crn_optim_kind)k), &back), 0);
        ck_assert_int_eq((int)back, k);
    }
    enum crn_optim_kind kk;
    ck_assert_int_eq(crn_optim_parse("adamax", &kk), CRN_EINVAL);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "adamax"));

    crn_optim_config c;
    crn_optim *o = (crn_optim *)&c; /* must be reset to NULL on failure */
    crn_optim_config_default(&c, CRN_OPT_ADAM);
    c.lr = NAN;
    ck_assert_int_eq(crn_optim_create(&o, &c, 4), CRN_EINVAL);
    ck_assert_ptr_null(o);
    crn_optim_config_default(&c, CRN_OPT_ADAM);
    c.beta1 = 1.0f;
    ck_assert_int_eq(crn_optim_create(&o, &c, 4), CRN_EINVAL);
    crn_optim_config_default(&c, CRN_OPT_SGD);
    c.momentum = -0.5f;
    ck_assert_int_eq(crn_optim_create(&o, &c, 4), CRN_EINVAL);
    crn_optim_config_default(&c, CRN_OPT_RMSPROP);
    c.eps = INFINITY;
    ck_assert_int_eq(crn_optim_create(&o, &c, 4), CRN_EINVAL);
    crn_optim_destroy(NULL);
}
END_TEST

/* Issue 10 item 1: sgd's momentum changed on a live optimizer (train
 * --resume --momentum) must bring the buffers in line with the settings:
 * 0 -> 0.9 gains a zeroed buffer, and from then on the updates are those of
 * an optimizer created with momentum 0.9 whose buffer was zero (which is what
 * torch's fresh buffer amounts to); 0.9 -> 0 drops it. Kind changes are refused. */
START_TEST(reconfigure_sgd_momentum) {
    crn_optim_config c0, c9;
    crn_optim_config_default(&c0, CRN_OPT_SGD);
    c9 = c0;
    c9.momentum = 0.9f;
    crn_optim *o = make(&c0, N5), *fresh = make(&c9, N5);
    float p[N5], q[N5];
    memcpy(p, P0, sizeof p);
    crn_optim_step(o, p, G3[0], c0.lr); /* one plain step */
    memcpy(q, p, sizeof q);
    ck_assert_int_eq(crn_optim_num_buffers(o), 0);
    ck_assert_int_eq(crn_optim_reconfigure(o, &c9), 0);
    ck_assert_int_eq(crn_optim_num_buffers(o), 1);
    ck_assert_ptr_nonnull(o->m);
    ck_assert_uint_eq(o->t, 1);
    for (int i = 0; i < N5; i++) ck_assert_float_eq(o->m[i], 0.0f);
    fresh->t = 1; /* the same point of the run, with a zero buffer */
    for (int s = 1; s < 3; s++) {
        crn_optim_step(o, p, G3[s], c9.lr);
        crn_optim_step(fresh, q, G3[s], c9.lr);
    }
    for (int i = 0; i < N5; i++) {
        ck_assert_float_eq(p[i], q[i]);
        ck_assert_float_eq(o->m[i], fresh->m[i]);
        ck_assert(o->m[i] != 0.0f || G3[1][i] + G3[2][i] == 0.0f); /* the momentum is live */
    }
    ck_assert_int_eq(crn_optim_reconfigure(o, &c0), 0);
    ck_assert_int_eq(crn_optim_num_buffers(o), 0);
    ck_assert_ptr_null(o->m);
    crn_optim_config ca;
    crn_optim_config_default(&ca, CRN_OPT_ADAM);
    ck_assert_int_eq(crn_optim_reconfigure(o, &ca), CRN_EINVAL);
    c9.momentum = 1.5f;
    ck_assert_int_eq(crn_optim_reconfigure(o, &c9), CRN_EINVAL);
    ck_assert_int_eq(crn_optim_num_buffers(o), 0); /* unchanged on error */
    ck_assert(o->cfg.momentum == 0.0f);
    crn_optim_destroy(o);
    crn_optim_destroy(fresh);
}
END_TEST

/* Issue 10 item 4: an update that overflows the state is detected. */
START_TEST(finite_state_check) {
    const enum crn_optim_kind kinds[] = {CRN_OPT_ADAM, CRN_OPT_ADAMW, CRN_OPT_RMSPROP, CRN_OPT_ADAGRAD};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        crn_optim_config c;
        crn_optim_config_default(&c, kinds[k]);
        crn_optim *o = make(&c, N5);
        float p[N5], g[N5];
        memcpy(p, P0, sizeof p);
        memcpy(g, G3[0], sizeof g);
        crn_optim_step(o, p, g, c.lr);
        ck_assert(crn_optim_finite(o, p));
        g[3] = 1e30f; /* finite, but its square is not */
        crn_optim_step(o, p, g, c.lr);
        ck_assert_msg(isinf(o->v[3]), "%s: v %g", crn_optim_name(kinds[k]), o->v[3]);
        ck_assert(!crn_optim_finite(o, p));
        crn_optim_destroy(o);
    }
    crn_optim_config c;
    crn_optim_config_default(&c, CRN_OPT_SGD);
    crn_optim *o = make(&c, N5);
    float p[N5];
    memcpy(p, P0, sizeof p);
    ck_assert(crn_optim_finite(o, p));
    p[4] = NAN;
    ck_assert(!crn_optim_finite(o, p));
    p[4] = -INFINITY;
    ck_assert(!crn_optim_finite(o, p));
    p[4] = 3e38f;
    ck_assert(crn_optim_finite(o, p));
    crn_optim_destroy(o);
}
END_TEST

/* ---- clipping ------------------------------------------------------------ */

START_TEST(clip_below_and_above) {
    float g[3] = {3.0f, 4.0f, 0.0f}; /* norm 5 */
    float keep[3];
    memcpy(keep, g, sizeof g);
    ck_assert_double_eq(crn_clip_grad_norm(g, 3, 5.0), 5.0); /* not above: untouched */
    ck_assert_mem_eq(g, keep, sizeof g);
    ck_assert_double_eq(crn_clip_grad_norm(g, 3, 10.0), 5.0);
    ck_assert_mem_eq(g, keep, sizeof g);
    ck_assert_double_eq(crn_clip_grad_norm(g, 3, 0.0), 5.0); /* 0 = no clipping */
    ck_assert_mem_eq(g, keep, sizeof g);
    ck_assert_double_eq(crn_clip_grad_norm(g, 3, 1.0), 5.0);
    ck_assert_double_eq_tol(g[0], 0.6, 1e-7);
    ck_assert_double_eq_tol(g[1], 0.8, 1e-7);
    ck_assert_float_eq(g[2], 0.0f);

    /* a long array (vector body + tail): 1001 x 0.5 has norm 0.5 sqrt(1001) */
    size_t n = 1001;
    float *big = malloc(n * sizeof *big);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i++) big[i] = (i % 2) ? 0.5f : -0.5f;
    double norm = crn_clip_grad_norm(big, n, 2.0);
    ck_assert_double_eq_tol(norm, 0.5 * sqrt(1001.0), 1e-12);
    double after = 0;
    for (size_t i = 0; i < n; i++) after += (double)big[i] * big[i];
    ck_assert_double_eq_tol(sqrt(after), 2.0, 1e-6);
    /* values too large to square in float are fine in double */
    for (size_t i = 0; i < n; i++) big[i] = 1e30f;
    norm = crn_clip_grad_norm(big, n, 1.0);
    ck_assert(isfinite(norm));
    ck_assert_double_eq_tol(norm / (1e30 * sqrt(1001.0)), 1.0, 1e-6);
    free(big);
    ck_assert_double_eq(crn_clip_grad_norm(NULL, 0, 1.0), 0.0);
}
END_TEST

START_TEST(clip_non_finite) {
    float g[6] = {1.0f, 2.0f, NAN, 4.0f, 5.0f, 6.0f};
    float keep[6];
    memcpy(keep, g, sizeof g);
    double norm = crn_clip_grad_norm(g, 6, 1.0);
    ck_assert(isnan(norm));
    ck_assert_mem_eq(g, keep, sizeof g);
    g[2] = -INFINITY;
    memcpy(keep, g, sizeof g);
    norm = crn_clip_grad_norm(g, 6, 1.0);
    ck_assert(isinf(norm));
    ck_assert_mem_eq(g, keep, sizeof g);
}
END_TEST

/* ---- schedules ----------------------------------------------------------- */

START_TEST(schedule_constant_and_warmup) {
    crn_schedule s = {.kind = CRN_SCHED_CONSTANT, .lr = 0.01f};
    ck_assert_float_eq(crn_schedule_lr(&s, 0), 0.01f);
    ck_assert_float_eq(crn_schedule_lr(&s, 1000000), 0.01f);
    s.warmup = 4;
    ck_assert_float_eq(crn_schedule_lr(&s, 0), (float)(0.01f * 0.25));
    ck_assert_float_eq(crn_schedule_lr(&s, 1), (float)(0.01f * 0.5));
    ck_assert_float_eq(crn_schedule_lr(&s, 3), 0.01f);
    ck_assert_float_eq(crn_schedule_lr(&s, 4), 0.01f);
}
END_TEST

START_TEST(schedule_step_decay) {
    crn_schedule s = {.kind = CRN_SCHED_STEP_DECAY, .lr = 0.002f, .decay = 0.5f,
                      .decay_after = 10, .decay_every = 5};
    const double lr = 0.002f;
    ck_assert_float_eq(crn_schedule_lr(&s, 0), (float)lr);
    ck_assert_float_eq(crn_schedule_lr(&s, 9), (float)lr);
    ck_assert_float_eq(crn_schedule_lr(&s, 10), (float)(lr * 0.5));
    ck_assert_float_eq(crn_schedule_lr(&s, 14), (float)(lr * 0.5));
    ck_assert_float_eq(crn_schedule_lr(&s, 15), (float)(lr * 0.25));
    ck_assert_float_eq(crn_schedule_lr(&s, 19), (float)(lr * 0.25));
    ck_assert_float_eq(crn_schedule_lr(&s, 20), (float)(lr * 0.125));
    s.decay_every = 0; /* one decay only */
    ck_assert_float_eq(crn_schedule_lr(&s, 9), (float)lr);
    ck_assert_float_eq(crn_schedule_lr(&s, 10), (float)(lr * 0.5));
    ck_assert_float_eq(crn_schedule_lr(&s, 100000), (float)(lr * 0.5));
    s.decay_after = 0;
    s.decay_every = 1;
    ck_assert_float_eq(crn_schedule_lr(&s, 0), (float)(lr * 0.5));
    ck_assert_float_eq(crn_schedule_lr(&s, 2), (float)(lr * 0.125));
}
END_TEST

START_TEST(schedule_cosine) {
    crn_schedule s = {.kind = CRN_SCHED_COSINE, .lr = 0.01f, .warmup = 10, .total = 110,
                      .min_lr = 0.001f};
    const double lr = 0.01f, lo = 0.001f;
    ck_assert_float_eq(crn_schedule_lr(&s, 0), (float)(lr / 10));
    ck_assert_float_eq(crn_schedule_lr(&s, 4), (float)(lr / 2));
    ck_assert_float_eq(crn_schedule_lr(&s, 9), (float)lr);
    ck_assert_float_eq(crn_schedule_lr(&s, 10), (float)lr); /* cos(0) = 1 */
    ck_assert_float_eq(crn_schedule_lr(&s, 60), (float)(lo + (lr - lo) * 0.5)); /* halfway */
    ck_assert_float_eq(crn_schedule_lr(&s, 35), (float)(lo + (lr - lo) * 0.5 * (1 + cos(M_PI / 4))));
    ck_assert_float_eq(crn_schedule_lr(&s, 110), (float)lo);
    ck_assert_float_eq(crn_schedule_lr(&s, 5000), (float)lo);
    /* monotone after warm-up */
    float prev = crn_schedule_lr(&s, 10);
    for (uint64_t t = 11; t <= 120; t++) {
        float cur = crn_schedule_lr(&s, t);
        ck_assert_msg(cur <= prev, "cosine rose at step %llu", (unsigned long long)t);
        prev = cur;
    }
    /* no warm-up, default floor 0 */
    crn_schedule z = {.kind = CRN_SCHED_COSINE, .lr = 1.0f, .total = 4};
    ck_assert_float_eq(crn_schedule_lr(&z, 0), 1.0f);
    ck_assert_float_eq(crn_schedule_lr(&z, 2), 0.5f);
    ck_assert_float_eq(crn_schedule_lr(&z, 4), 0.0f);
    /* total <= warmup: warm-up, then the floor */
    crn_schedule w = {.kind = CRN_SCHED_COSINE, .lr = 1.0f, .warmup = 4, .total = 4, .min_lr = 0.25f};
    ck_assert_float_eq(crn_schedule_lr(&w, 3), 1.0f);
    ck_assert_float_eq(crn_schedule_lr(&w, 4), 0.25f);
}
END_TEST

START_TEST(schedule_linear_and_names) {
    crn_schedule s = {.kind = CRN_SCHED_LINEAR, .lr = 1.0f, .warmup = 2, .total = 12, .min_lr = 0.1f};
    ck_assert_float_eq(crn_schedule_lr(&s, 0), 0.5f);
    ck_assert_float_eq(crn_schedule_lr(&s, 2), 1.0f);
    ck_assert_float_eq(crn_schedule_lr(&s, 7), (float)(0.1 + 0.9 * 0.5));
    ck_assert_float_eq(crn_schedule_lr(&s, 12), 0.1f);
    ck_assert_float_eq(crn_schedule_lr(&s, 99), 0.1f);
    static const char *names[] = {"constant", "step", "cosine", "linear"};
    for (int k = 0; k < 4; k++) {
        enum crn_schedule_kind got;
        ck_assert_int_eq(crn_schedule_parse(names[k], &got), 0);
        ck_assert_int_eq(got, k);
        ck_assert_str_eq(crn_schedule_name((enum crn_schedule_kind)k), names[k]);
    }
    enum crn_schedule_kind got;
    ck_assert_int_eq(crn_schedule_parse("exp", &got), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, adam_matches_torch);
    tcase_add_test(tc, schedule_linear_and_names);
    tcase_add_test(tc, adam_l2_matches_torch);
    tcase_add_test(tc, adamw_matches_torch);
    tcase_add_test(tc, sgd_momentum_matches_torch);
    tcase_add_test(tc, all_vs_reference);
    tcase_add_test(tc, hand_computed_steps);
    tcase_add_test(tc, names_and_bad_configs);
    tcase_add_test(tc, reconfigure_sgd_momentum);
    tcase_add_test(tc, finite_state_check);
    tcase_add_test(tc, clip_below_and_above);
    tcase_add_test(tc, clip_non_finite);
    tcase_add_test(tc, schedule_constant_and_warmup);
    tcase_add_test(tc, schedule_step_decay);
    tcase_add_test(tc, schedule_cosine);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
