/* test_train.c — the training loop as a library: the training-state blob
 * (round trip, every truncation, every flipped byte, bad magic/version),
 * exact resume compared on the full parameter and optimizer buffers,
 * non-finite steps (skipped, learning rate halved, stop after 5 in a row,
 * never saved), a stop request (saves, CRN_EINTR), validation bits/token
 * against crn_evaluate_ids, and that the loss goes down. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autoconf.h"
#include "checkpoint.h"
#include "common.h"
#include "kernels.h"
#include "train.h"

static char g_dir[256];
static char g_text[300];

static int write_text(void) {
    snprintf(g_dir, sizeof g_dir, "%s/crn-test-train.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror(g_dir);
        return -1;
    }
    snprintf(g_text, sizeof g_text, "%s/text.txt", g_dir);
    FILE *f = fopen(g_text, "w");
    if (!f) {
        perror(g_text);
        return -1;
    }
    static const char *words[] = {"the", "cat", "sat", "on", "a", "mat", "하늘은", "파랗고", "바다는", "넓다", "우리는",
                                  "노래한다", "and", "dog"};
    unsigned x = 12345;
    for (int line = 0; line < 300; line++) {
        int n = 3 + (int)((x = x * 1103515245u + 12345u) >> 16) % 6;
        for (int i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            fprintf(f, "%s%s", i ? " " : "", words[(x >> 16) % (sizeof words / sizeof *words)]);
        }
        fputs(".\n", f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static void tiny_opts(crn_train_opts *o, uint64_t steps) {
    crn_train_opts_default(o);
    o->corpus_path = strdup(g_text);
    o->batch = 4;
    o->seq = 12;
    o->model.cell = CRN_CELL_LSTM;
    o->model.layers = 2;
    o->model.hidden = 16;
    o->model.dropout = 0.1f;
    o->max_steps = steps;
    o->eval_every = 5;
    o->threads = 1;
    o->seed = 42;
}

static crn_trainer *run(const crn_train_opts *o, const char *out, int expect_rc) {
    crn_train_start st = {0};
    st.out_path = out;
    crn_trainer *t = NULL;
    ck_assert_int_eq(crn_trainer_create(&t, o, &st), 0);
    int rc = crn_trainer_run(t, NULL, NULL);
    ck_assert_msg(rc == expect_rc, "run returned %d (%s), expected %d", rc, crn_error_message(), expect_rc);
    return t;
}

/* ---- the blob ------------------------------------------------------------ */

static void sample_state(crn_train_opts *o, crn_train_status *s) {
    crn_train_opts_default(o);
    o->corpus_path = strdup("corpus/한국어.txt");
    o->log_path = strdup("log.csv");
    o->n_keep = 2;
    o->keep = calloc(2, sizeof(char *));
    o->keep[0] = strdup("^[가-힣]");
    o->keep[1] = strdup("x+");
    o->n_replace = 1;
    o->replace = calloc(1, sizeof(char *));
    o->replace[0] = strdup("\\s+= ");
    o->max_steps = 1234;
    o->sched.kind = CRN_SCHED_COSINE;
    o->sched.warmup = 17;
    o->init.kind = CRN_INIT_ORTHOGONAL;
    o->init.forget_bias = 0.5f;
    memset(s, 0, sizeof *s);
    s->horizon = 4321;
    s->run_id = 0x1122334455667788ull;
    s->step = 99;
    s->epoch = 3;
    s->win = 7;
    s->elapsed = 12.5;
    s->has_best = 1;
    s->best_val_bpc = 2.25;
    s->best_step = 90;
    s->lr_scale = 0.5;
    crn_rng_seed(&s->rng, 77);
    s->first_val_bpc = 4.5;
    s->last_val_bpc = 2.5;
    s->last_val_bpt = NAN;
    s->last_train_bpc = 2.0;
    s->carry_layers = 2;
    s->carry_batch = 3;
    s->carry_hidden = 4;
    s->carry_has_c = 1;
    s->carry = malloc(2 * 2 * 3 * 4 * sizeof(float));
    for (int i = 0; i < 48; i++) s->carry[i] = (float)i * 0.25f - 3;
}

/* Free a blob and two (options, state) pairs. */
static void free_two(uint8_t *b, crn_train_opts *o, crn_train_opts *o2, crn_train_status *s, crn_train_status *s2) {
    free(b);
    crn_train_opts_free(o);
    crn_train_opts_free(o2);
    crn_train_status_free(s);
    crn_train_status_free(s2);
}

START_TEST(blob_round_trip) {
    crn_train_opts o, o2;
    crn_train_status s, s2;
    sample_state(&o, &s);
    uint8_t *b;
    size_t n;
    ck_assert_int_eq(crn_train_blob_encode(&b, &n, &o, &s), 0);
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n), 0);
    ck_assert_str_eq(o2.corpus_path, o.corpus_path);
    ck_assert_str_eq(o2.log_path, "log.csv");
    ck_assert_uint_eq(o2.n_keep, 2);
    ck_assert_str_eq(o2.keep[0], "^[가-힣]");
    ck_assert_str_eq(o2.keep[1], "x+");
    ck_assert_uint_eq(o2.n_drop, 0);
    ck_assert_uint_eq(o2.n_replace, 1);
    ck_assert_str_eq(o2.replace[0], "\\s+= ");
    ck_assert_uint_eq(o2.max_steps, 1234);
    ck_assert_int_eq(o2.sched.kind, CRN_SCHED_COSINE);
    ck_assert_uint_eq(o2.sched.warmup, 17);
    ck_assert_int_eq(o2.init.kind, CRN_INIT_ORTHOGONAL);
    ck_assert(o2.init.forget_bias == 0.5f);
    ck_assert_uint_eq(s2.horizon, 4321);
    ck_assert_uint_eq(o2.batch, o.batch);
    ck_assert(o2.optim.lr == o.optim.lr && o2.clip == o.clip);
    ck_assert_uint_eq(s2.run_id, s.run_id);
    ck_assert_uint_eq(s2.step, 99);
    ck_assert_uint_eq(s2.epoch, 3);
    ck_assert_uint_eq(s2.win, 7);
    ck_assert(s2.elapsed == 12.5 && s2.best_val_bpc == 2.25 && s2.lr_scale == 0.5);
    ck_assert(isnan(s2.last_val_bpt));
    ck_assert(memcmp(&s2.rng, &s.rng, sizeof s.rng) == 0);
    ck_assert_uint_eq(s2.carry_layers, 2);
    ck_assert_uint_eq(s2.carry_has_c, 1);
    ck_assert_ptr_nonnull(s2.carry);
    ck_assert(memcmp(s2.carry, s.carry, 48 * sizeof(float)) == 0);
    /* re-encoding the decoded state gives the same bytes */
    uint8_t *b2;
    size_t n2;
    ck_assert_int_eq(crn_train_blob_encode(&b2, &n2, &o2, &s2), 0);
    ck_assert_uint_eq(n2, n);
    ck_assert(memcmp(b, b2, n) == 0);
    free(b2);
    free_two(b, &o, &o2, &s, &s2);
}
END_TEST

/* A version-1 blob (no init, no horizon: the 16 trailing bytes of version 2)
 * still loads, as the initialisation version-1 writers used. NaN is a valid
 * forget bias (as drawn), infinity is not. */
START_TEST(blob_version1) {
    crn_train_opts o, o2;
    crn_train_status s, s2;
    sample_state(&o, &s);
    o.init.forget_bias = NAN;
    uint8_t *b;
    size_t n;
    ck_assert_int_eq(crn_train_blob_encode(&b, &n, &o, &s), 0);
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n), 0);
    ck_assert(isnan(o2.init.forget_bias));
    crn_train_opts_free(&o2);
    crn_train_status_free(&s2);
    float inf = INFINITY;
    uint8_t save[4];
    memcpy(save, b + n - 12, 4);
    memcpy(b + n - 12, &inf, 4);
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n), CRN_EFORMAT);
    ck_assert(strstr(crn_error_message(), "forget bias") != NULL);
    memcpy(b + n - 12, save, 4);
    b[8] = 1;
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n), CRN_EFORMAT); /* v1 has no such tail */
    ck_assert(strstr(crn_error_message(), "trailing bytes") != NULL);
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n - 16), 0);
    ck_assert_int_eq(o2.init.kind, CRN_INIT_PYTORCH);
    ck_assert(o2.init.forget_bias == 1.0f);
    ck_assert_uint_eq(s2.horizon, 0);
    ck_assert_uint_eq(s2.step, 99);
    ck_assert_uint_eq(s2.carry_hidden, 4);
    free_two(b, &o, &o2, &s, &s2);
}
END_TEST

/* The quality options by their `charrnn train` names (the public API's
 * charrnn_train_options_set goes through crn_train_opts_set). */
START_TEST(opts_set_quality_options) {
    crn_train_opts o;
    crn_train_opts_default(&o);
    ck_assert_int_eq(o.init.kind, CRN_INIT_PYTORCH);
    ck_assert(isnan(o.init.forget_bias));
    ck_assert_uint_eq(o.model.layer_norm, 1); /* layer normalisation by default */
    ck_assert_int_eq(crn_train_opts_set(&o, "layer-norm", "0"), 0);
    ck_assert_uint_eq(o.model.layer_norm, 0);
    ck_assert_int_eq(crn_train_opts_set(&o, "layer-norm", "1"), 0);
    ck_assert_uint_eq(o.model.layer_norm, 1);
    ck_assert_int_eq(crn_train_opts_set(&o, "layer-norm", "yes"), CRN_EINVAL);
    ck_assert_int_eq(crn_train_opts_set(&o, "cell", "gru"), 0);
    ck_assert_int_eq(o.init.kind, crn_init_default_kind(CRN_CELL_GRU)); /* the default follows the cell */
    ck_assert_int_eq(crn_train_opts_set(&o, "init", "xavier"), 0);
    ck_assert_int_eq(o.init.kind, CRN_INIT_XAVIER);
    ck_assert_int_eq(crn_train_opts_set(&o, "cell", "lstm"), 0);
    ck_assert_int_eq(o.init.kind, CRN_INIT_XAVIER); /* a chosen scheme stays */
    ck_assert_int_eq(crn_train_opts_set(&o, "init", "glorot"), CRN_EINVAL);
    ck_assert_int_eq(crn_train_opts_set(&o, "forget-bias", "2.5"), 0);
    ck_assert(o.init.forget_bias == 2.5f);
    ck_assert_int_eq(crn_train_opts_set(&o, "forget-bias", "1000"), CRN_ERANGE);
    ck_assert_int_eq(crn_train_opts_set(&o, "schedule", "linear"), 0);
    ck_assert_int_eq(o.sched.kind, CRN_SCHED_LINEAR);
    ck_assert_int_eq(crn_train_opts_set(&o, "preset", "small"), 0);
    ck_assert_uint_eq(o.model.layers, 2);
    ck_assert_uint_eq(o.model.hidden, 256);
    ck_assert_uint_eq(o.batch, 32);
    ck_assert_int_eq(crn_train_opts_set(&o, "hidden", "100"), 0); /* set after the preset: wins */
    ck_assert_uint_eq(o.model.hidden, 100);
    ck_assert_int_eq(crn_train_opts_set(&o, "preset", "huge"), CRN_EINVAL);
    crn_train_opts_free(&o);
}
END_TEST

START_TEST(blob_damage) {
    crn_train_opts o, o2;
    crn_train_status s, s2;
    sample_state(&o, &s);
    uint8_t *b;
    size_t n;
    ck_assert_int_eq(crn_train_blob_encode(&b, &n, &o, &s), 0);
    /* every truncation is refused with a message naming the byte */
    for (size_t k = 0; k < n; k++) {
        int rc = crn_train_blob_decode(&o2, &s2, b, k);
        ck_assert_msg(rc == CRN_EFORMAT, "truncated to %zu: rc %d", k, rc);
        ck_assert_msg(strstr(crn_error_message(), "training state at byte") != NULL, "%s", crn_error_message());
    }
    /* trailing garbage too */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, b, n);
    longer[n] = 0;
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, longer, n + 1), CRN_EFORMAT);
    free(longer);
    /* every flipped byte: decoded or refused, never a crash or a leak */
    int refused = 0;
    for (size_t k = 0; k < n; k++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b[k] ^= (uint8_t)(1u << bit);
            int rc = crn_train_blob_decode(&o2, &s2, b, n);
            if (rc == 0) {
                crn_train_opts_free(&o2);
                crn_train_status_free(&s2);
            } else {
                ck_assert_int_eq(rc, CRN_EFORMAT);
                refused++;
            }
            b[k] ^= (uint8_t)(1u << bit);
        }
    }
    ck_assert_int_gt(refused, 30); /* magic, version, lengths, flags, ranges */
    b[0] = 'X';
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n), CRN_EFORMAT);
    ck_assert(strstr(crn_error_message(), "bad magic") != NULL);
    b[0] = 'C';
    b[8] = 9; /* version 9 */
    ck_assert_int_eq(crn_train_blob_decode(&o2, &s2, b, n), CRN_EFORMAT);
    ck_assert(strstr(crn_error_message(), "version 9") != NULL);
    free(b);
    crn_train_opts_free(&o);
    crn_train_status_free(&s);
}
END_TEST

/* ---- the loop -------------------------------------------------------------- */

static int all_finite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

START_TEST(resume_exact) {
    char a[300], b[300];
    path_in(a, sizeof a, "a.ckpt");
    path_in(b, sizeof b, "b.ckpt");
    crn_train_opts o;
    tiny_opts(&o, 13);
    crn_trainer_destroy(run(&o, a, 0));
    /* resume from a.ckpt.resume to 29 steps */
    char ar[310];
    snprintf(ar, sizeof ar, "%s.resume", a);
    crn_checkpoint *ck = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&ck, ar), 0);
    crn_train_opts ro;
    crn_train_status rs;
    ck_assert_int_eq(crn_train_blob_decode(&ro, &rs, ck->train_blob, ck->train_blob_len), 0);
    ck_assert_uint_eq(rs.step, 13);
    ro.max_steps = 29;
    ro.threads = 1;
    crn_train_start st = {0};
    st.out_path = a;
    st.resume = ck;
    st.resume_state = &rs;
    crn_trainer *ta = NULL;
    ck_assert_int_eq(crn_trainer_create(&ta, &ro, &st), 0);
    crn_checkpoint_destroy(ck);
    ck_assert_int_eq(crn_trainer_run(ta, NULL, NULL), 0);
    /* straight to 29 */
    o.max_steps = 29;
    crn_trainer *tb = run(&o, b, 0);
    crn_model *ma = crn_trainer_model(ta), *mb = crn_trainer_model(tb);
    size_t np = crn_model_num_params(ma);
    ck_assert_uint_eq(np, crn_model_num_params(mb));
    ck_assert(memcmp(crn_model_params(ma), crn_model_params(mb), np * sizeof(float)) == 0);
    ck_assert_uint_eq(crn_trainer_state(ta)->step, 29);
    ck_assert(memcmp(&crn_trainer_state(ta)->rng, &crn_trainer_state(tb)->rng, sizeof(crn_rng)) == 0);
    crn_trainer_destroy(ta);
    crn_trainer_destroy(tb);
    /* and the optimizer moments in the saved files */
    char br[310];
    snprintf(br, sizeof br, "%s.resume", b);
    crn_checkpoint *ca = NULL, *cb = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&ca, ar), 0);
    ck_assert_int_eq(crn_checkpoint_load(&cb, br), 0);
    ck_assert_ptr_nonnull(ca->optim);
    ck_assert_uint_eq(ca->optim->t, 29);
    ck_assert_uint_eq(cb->optim->t, 29);
    for (int i = 0; i < crn_optim_num_buffers(ca->optim); i++)
        ck_assert(memcmp(crn_optim_buffer(ca->optim, i), crn_optim_buffer(cb->optim, i), np * sizeof(float)) == 0);
    crn_checkpoint_destroy(ca);
    crn_checkpoint_destroy(cb);
    crn_train_opts_free(&ro);
    crn_train_status_free(&rs);
    crn_train_opts_free(&o);
}
END_TEST

typedef struct lr_trace {
    double first_lr, mid_lr, last_lr, base;
    uint64_t steps, mid_step;
    double mid_elapsed, limit;
} lr_trace;

static void trace_lr(void *ud, const crn_train_report *r) {
    lr_trace *t = ud;
    if (r->event != CRN_EV_STEP) return;
    if (!t->steps) t->first_lr = r->lr;
    if (!t->mid_step && r->elapsed >= t->limit / 2) {
        t->mid_step = r->step;
        t->mid_lr = r->lr;
        t->mid_elapsed = r->elapsed;
    }
    t->last_lr = r->lr;
    t->steps = r->step;
}

/* --time with cosine/linear: the horizon follows the clock, so the rate is
 * the base at the start, about half way (cosine) or half (linear) at half the
 * time, and near zero at the last step; the horizon is in the saved state. */
START_TEST(time_budget_schedule) {
    const enum crn_schedule_kind kinds[] = {CRN_SCHED_COSINE, CRN_SCHED_LINEAR};
    for (int i = 0; i < 2; i++) {
        char a[300];
        path_in(a, sizeof a, i ? "lin.ckpt" : "cos.ckpt");
        crn_train_opts o;
        tiny_opts(&o, 0);
        o.max_steps = 0;
        o.time_limit = 1.5;
        o.eval_every = 0;
        o.sched.kind = kinds[i];
        crn_train_start st = {0};
        st.out_path = a;
        crn_trainer *t = NULL;
        ck_assert_int_eq(crn_trainer_create(&t, &o, &st), 0);
        lr_trace tr = {.limit = 1.5, .base = o.optim.lr};
        ck_assert_int_eq(crn_trainer_run(t, trace_lr, &tr), 0);
        ck_assert_uint_gt(tr.steps, 50);
        ck_assert(fabs(tr.first_lr - tr.base) < 1e-9);
        ck_assert_msg(tr.last_lr < 0.05 * tr.base, "last lr %g", tr.last_lr);
        const double p = tr.mid_elapsed / 1.5, want = i ? 1 - p : 0.5 * (1 + cos(M_PI * p));
        ck_assert_msg(fabs(tr.mid_lr / tr.base - want) < 0.15, "lr at %.2f of the time: %g x base, want %g", p,
                      tr.mid_lr / tr.base, want);
        /* the saved horizon is where the run ended (a stall after the last
         * estimate, e.g. a descheduled process, leaves it a few steps on) */
        ck_assert_uint_ge(crn_trainer_state(t)->horizon, tr.steps);
        ck_assert_uint_le(crn_trainer_state(t)->horizon, tr.steps + tr.steps / 20 + 2);
        crn_trainer_destroy(t);
        crn_train_opts_free(&o);
    }
}
END_TEST

START_TEST(resume_differs_without_state) {
    /* the test above can fail: two runs with different seeds differ */
    char a[300], b[300];
    path_in(a, sizeof a, "d1.ckpt");
    path_in(b, sizeof b, "d2.ckpt");
    crn_train_opts o;
    tiny_opts(&o, 6);
    crn_trainer *t1 = run(&o, a, 0);
    o.seed = 43;
    crn_trainer *t2 = run(&o, b, 0);
    size_t np = crn_model_num_params(crn_trainer_model(t1));
    ck_assert(memcmp(crn_model_params(crn_trainer_model(t1)), crn_model_params(crn_trainer_model(t2)),
                     np * sizeof(float)) != 0);
    crn_trainer_destroy(t1);
    crn_trainer_destroy(t2);
    crn_train_opts_free(&o);
}
END_TEST

START_TEST(nonfinite_skipped) {
    char a[300];
    path_in(a, sizeof a, "nf.ckpt");
    crn_train_opts o;
    tiny_opts(&o, 12);
    crn_train_fault_nan(3, 2); /* steps 3 and 4 */
    crn_trainer *t = run(&o, a, 0);
    crn_train_fault_nan(0, 0);
    const crn_train_status *s = crn_trainer_state(t);
    ck_assert_uint_eq(s->step, 12);
    ck_assert_uint_eq(s->nonfinite_total, 2);
    ck_assert_uint_eq(s->nonfinite_run, 0);
    ck_assert(s->lr_scale == 0.25);
    crn_model *m = crn_trainer_model(t);
    ck_assert(all_finite(crn_model_params(m), crn_model_num_params(m)));
    crn_trainer_destroy(t);
    crn_train_opts_free(&o);
}
END_TEST

START_TEST(nonfinite_stops) {
    char a[300], ar[310];
    path_in(a, sizeof a, "nf2.ckpt");
    snprintf(ar, sizeof ar, "%s.resume", a);
    crn_train_opts o;
    tiny_opts(&o, 50);
    crn_train_fault_nan(2, 1000);
    crn_trainer *t = run(&o, a, CRN_ENONFINITE);
    crn_train_fault_nan(0, 0);
    ck_assert(strstr(crn_error_message(), "non-finite") != NULL);
    ck_assert_uint_eq(crn_trainer_state(t)->step, 7); /* 2 good + 5 bad */
    crn_trainer_destroy(t);
    crn_checkpoint *ck = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&ck, ar), 0);
    ck_assert(all_finite(crn_model_params(ck->model), crn_model_num_params(ck->model)));
    crn_train_opts ro;
    crn_train_status rs;
    ck_assert_int_eq(crn_train_blob_decode(&ro, &rs, ck->train_blob, ck->train_blob_len), 0);
    ck_assert_uint_eq(rs.stop_reason, CRN_TRAIN_STOP_NONFINITE);
    ck_assert_uint_eq(rs.nonfinite_total, 5);
    crn_train_opts_free(&ro);
    crn_train_status_free(&rs);
    crn_checkpoint_destroy(ck);
    crn_train_opts_free(&o);
}
END_TEST

/* Issue 10 item 4: with --clip 0 a finite gradient of 1e30 overflows the
 * second moment (adam, adamw) or the accumulator (rmsprop, adagrad) to
 * infinity. The step must be rolled back like a non-finite
 * loss, and the run must end normally with loadable, finite files (it used to
 * freeze the parameter and then fail at the next save). */
START_TEST(optimizer_overflow_rolled_back) {
    const enum crn_optim_kind kinds[] = {CRN_OPT_ADAM, CRN_OPT_ADAMW, CRN_OPT_RMSPROP, CRN_OPT_ADAGRAD};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        char a[300], ar[310];
        snprintf(a, sizeof a, "%s/ovf-%s.ckpt", g_dir, crn_optim_name(kinds[k]));
        snprintf(ar, sizeof ar, "%s.resume", a);
        crn_train_opts o;
        tiny_opts(&o, 12);
        crn_optim_config_default(&o.optim, kinds[k]);
        o.clip = 0;
        o.model.dropout = 0;
        crn_train_fault_grad(3, 2, 1e30f); /* steps 3 and 4 */
        crn_trainer *t = run(&o, a, 0);
        crn_train_fault_grad(0, 0, 0);
        const crn_train_status *s = crn_trainer_state(t);
        ck_assert_msg(s->nonfinite_total == 2, "%s: %llu steps rolled back", crn_optim_name(kinds[k]),
                      (unsigned long long)s->nonfinite_total);
        ck_assert_uint_eq(s->step, 12);
        ck_assert(s->lr_scale == 0.25);
        crn_trainer_destroy(t);
        for (int f = 0; f < 2; f++) {
            crn_checkpoint *ck = NULL;
            ck_assert_msg(crn_checkpoint_load(&ck, f ? ar : a) == 0, "%s", crn_error_message());
            ck_assert(all_finite(crn_model_params(ck->model), crn_model_num_params(ck->model)));
            ck_assert_ptr_nonnull(ck->optim);
            ck_assert(crn_optim_finite(ck->optim, crn_model_params(ck->model)));
            crn_checkpoint_destroy(ck);
        }
        crn_train_opts_free(&o);
    }
}
END_TEST

START_TEST(stop_request_saves) {
    char a[300], ar[310];
    path_in(a, sizeof a, "stop.ckpt");
    snprintf(ar, sizeof ar, "%s.resume", a);
    crn_train_opts o;
    tiny_opts(&o, 50);
    crn_train_request_stop();
    crn_trainer *t = run(&o, a, CRN_EINTR);
    crn_train_clear_stop();
    ck_assert_uint_eq(crn_trainer_state(t)->step, 0);
    crn_trainer_destroy(t);
    crn_checkpoint *ck = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&ck, a), 0); /* a model file exists even without an eval */
    crn_checkpoint_destroy(ck);
    ck_assert_int_eq(crn_checkpoint_load(&ck, ar), 0);
    ck_assert_ptr_nonnull(ck->train_blob);
    crn_checkpoint_destroy(ck);
    crn_train_opts_free(&o);
}
END_TEST

START_TEST(val_matches_evaluate_ids) {
    char a[300];
    path_in(a, sizeof a, "v.ckpt");
    crn_train_opts o;
    tiny_opts(&o, 60); /* with layer norm (the default) it needs 60 steps to learn 0.3 bits on this text */
    o.eval_every = 15;
    o.model.dropout = 0;
    crn_trainer *t = run(&o, a, 0);
    const crn_train_status *s = crn_trainer_state(t);
    const crn_corpus *c = crn_trainer_corpus(t);
    ck_assert_uint_eq(s->n_evals, 4);
    ck_assert_msg(s->last_val_bpc < s->first_val_bpc - 0.3, "%g -> %g", s->first_val_bpc, s->last_val_bpc); /* it learns */
    double nats;
    uint64_t count;
    ck_assert_int_eq(crn_evaluate_ids(crn_trainer_model(t), c, c->n_train, c->n_tokens, o.batch, o.seq, &nats, &count), 0);
    ck_assert_uint_eq(count, c->n_tokens - c->n_train - 1);
    double bpt = nats / (double)count / M_LN2;
    ck_assert_msg(fabs(bpt - s->last_val_bpt) < 1e-9 * bpt, "%.12f vs %.12f", bpt, s->last_val_bpt);
    ck_assert(fabs(s->last_val_bpc - s->last_val_bpt) < 1e-12); /* codepoint: per char = per token */
    crn_trainer_destroy(t);
    crn_train_opts_free(&o);
}
END_TEST

START_TEST(init_from_extend_keeps_base) {
    char a[300], nt[300];
    path_in(a, sizeof a, "base.ckpt");
    path_in(nt, sizeof nt, "new.txt");
    FILE *f = fopen(nt, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 40; i++) fputs("the cow sat on a 강물 and 새 노래! ¿qué?\n", f);
    fclose(f);
    crn_train_opts o;
    tiny_opts(&o, 6);
    o.model.embed = 0; /* one-hot: l0.w_x has a row per token */
    crn_trainer_destroy(run(&o, a, 0));
    crn_checkpoint *base = NULL, *ck = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&base, a), 0);
    ck_assert_int_eq(crn_checkpoint_load(&ck, a), 0);
    crn_train_opts fo;
    tiny_opts(&fo, 3);
    free(fo.corpus_path);
    fo.corpus_path = strdup(nt);
    crn_train_start st = {0};
    char out[300];
    path_in(out, sizeof out, "ft.ckpt");
    st.out_path = out;
    st.init_from = ck;
    st.extend_vocab = 1;
    crn_trainer *t = NULL;
    ck_assert_int_eq(crn_trainer_create(&t, &fo, &st), 0);
    crn_checkpoint_destroy(ck);
    const crn_vocab *bv = base->vocab, *nv = crn_trainer_corpus(t)->vocab;
    uint32_t V0 = crn_vocab_size(bv), V1 = crn_vocab_size(nv);
    ck_assert_uint_gt(crn_trainer_new_tokens(t), 5); /* c, o? w, 강, 물, 새, !, ¿, q, u, é, ... */
    ck_assert_uint_eq(V1, V0 + crn_trainer_new_tokens(t));
    for (uint32_t id = 0; id < V0; id++) { /* the base mapping never changes */
        size_t l0, l1;
        const uint8_t *t0 = crn_vocab_token(bv, id, &l0), *t1 = crn_vocab_token(nv, id, &l1);
        ck_assert(l0 == l1 && memcmp(t0, t1, l0) == 0);
    }
    ck_assert_uint_eq(crn_trainer_corpus(t)->n_unk, 0);
    /* every base weight is where it was; the new rows/columns are fresh */
    crn_model *m = crn_trainer_model(t);
    int checked = 0;
    for (int i = 0; i < crn_model_num_tensors(base->model); i++) {
        const crn_tensor_info *ti = crn_model_tensor(base->model, i);
        const crn_tensor_info *tn = crn_model_find_tensor(m, ti->name);
        ck_assert_ptr_nonnull(tn);
        for (size_t r = 0; r < ti->rows; r++)
            ck_assert(memcmp(crn_model_params(m) + tn->offset + r * tn->cols,
                             crn_model_params(base->model) + ti->offset + r * ti->cols, ti->cols * sizeof(float)) == 0);
        if (!strcmp(ti->name, "out_w")) {
            ck_assert_uint_eq(tn->cols, V1);
            checked++;
        }
        if (!strcmp(ti->name, "l0.w_x")) {
            ck_assert_uint_eq(tn->rows, V1);
            checked++;
        }
    }
    ck_assert_int_eq(checked, 2);
    ck_assert_int_eq(crn_trainer_run(t, NULL, NULL), 0);
    crn_trainer_destroy(t);
    crn_checkpoint_destroy(base);
    crn_train_opts_free(&o);
    crn_train_opts_free(&fo);
}
END_TEST

/* ---- presets and the automatic configuration ------------------------------ */

START_TEST(preset_params_match_model) {
    for (int p = CRN_PRESET_TINY; p < CRN_PRESET_COUNT; p++) {
        crn_train_opts o;
        crn_train_opts_default(&o);
        crn_preset_apply(&o, (enum crn_preset)p);
        o.model.vocab = 77;
        crn_model *m = NULL;
        ck_assert_int_eq(crn_model_create(&m, &o.model), 0);
        ck_assert_uint_eq(o.model.layer_norm, 1); /* the default */
        ck_assert_uint_eq(crn_preset_params((enum crn_preset)p, 77, 1), crn_model_num_params(m));
        ck_assert(crn_preset_chars_per_s((enum crn_preset)p, 77, 1) > 1000);
        /* layer norm costs time per char */
        ck_assert(crn_preset_chars_per_s((enum crn_preset)p, 77, 0) > crn_preset_chars_per_s((enum crn_preset)p, 77, 1));
        crn_model_destroy(m);
        o.model.layer_norm = 0;
        ck_assert_int_eq(crn_model_create(&m, &o.model), 0);
        ck_assert_uint_eq(crn_preset_params((enum crn_preset)p, 77, 0), crn_model_num_params(m));
        crn_model_destroy(m);
        enum crn_preset got;
        ck_assert_int_eq(crn_preset_parse(crn_preset_name((enum crn_preset)p), &got), 0);
        ck_assert_int_eq(got, p);
    }
    enum crn_preset got;
    ck_assert_int_eq(crn_preset_parse("huge", &got), -1);
    /* bigger presets are slower */
    ck_assert(crn_preset_chars_per_s(CRN_PRESET_SMALL, 66, 1) > crn_preset_chars_per_s(CRN_PRESET_MEDIUM, 66, 1));
    ck_assert(crn_preset_chars_per_s(CRN_PRESET_MEDIUM, 66, 1) > crn_preset_chars_per_s(CRN_PRESET_LARGE, 66, 1));
}
END_TEST

START_TEST(auto_config_follows_the_budget) {
    /* tinyshakespeare's size: a minute -> tiny, ten minutes -> medium (the
     * hand-picked reference), an hour -> large; a text too short for a
     * big model stays small, a tiny one shrinks the batch */
    struct { uint64_t chars; uint32_t V; double secs; enum crn_preset want; } cases[] = {
        {1115394, 66, 60, CRN_PRESET_TINY},      {1115394, 66, 600, CRN_PRESET_MEDIUM},
        {1115394, 66, 3600, CRN_PRESET_LARGE},   {440000, 1477, 3600, CRN_PRESET_SMALL},
        {3000, 30, 600, CRN_PRESET_TINY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        crn_train_opts o;
        crn_train_opts_default(&o);
        crn_auto_input in = {.chars = cases[i].chars, .vocab = cases[i].V, .seconds = cases[i].secs, .val_frac = 0.1};
        char why[512];
        enum crn_preset got = crn_auto_config(&o, &in, why, sizeof why);
        ck_assert_msg(got == cases[i].want, "case %zu: %s", i, why);
        ck_assert(strstr(why, crn_preset_name(got)) != NULL);
        /* cosine over a long run, constant over a short one */
        const double steps =
            (double)crn_preset_chars_per_s(got, cases[i].V, 1) * cases[i].secs * 0.9 / (o.batch * o.seq);
        ck_assert_int_eq(o.sched.kind, steps >= 3000 ? CRN_SCHED_COSINE : CRN_SCHED_CONSTANT);
        if (got == CRN_PRESET_MEDIUM) ck_assert_msg(o.sched.kind == CRN_SCHED_COSINE, "case %zu: %s", i, why);
        ck_assert(4.0 * o.batch * o.seq <= 0.9 * (double)cases[i].chars || o.seq == 8);
        if (got == CRN_PRESET_MEDIUM) ck_assert(o.model.dropout > 0); /* several epochs: dropout */
    }
}
END_TEST

START_TEST(budget_dropout_follows_the_epochs) {
    /* none up to 3 epochs (LSTM, GRU), 0.15 more per doubling, capped at 0.25 */
    const enum crn_cell L = CRN_CELL_LSTM, R = CRN_CELL_RNN;
    ck_assert(crn_dropout_for_epochs(0, L) == 0.0f && crn_dropout_for_epochs(3, L) == 0.0f);
    ck_assert(crn_dropout_for_epochs(-1, L) == 0.0f && crn_dropout_for_epochs(NAN, L) == 0.0f);
    ck_assert_float_eq_tol(crn_dropout_for_epochs(6, L), 0.15f, 1e-6f);
    ck_assert_float_eq_tol(crn_dropout_for_epochs(6, CRN_CELL_GRU), 0.15f, 1e-6f);
    ck_assert_float_eq_tol(crn_dropout_for_epochs(4.5, L), 0.09f, 1e-6f); /* 0.0877, rounded */
    ck_assert_float_eq_tol(crn_dropout_for_epochs(12, L), 0.25f, 1e-6f);
    ck_assert_float_eq_tol(crn_dropout_for_epochs(1000, L), 0.25f, 1e-6f);
    /* the Elman RNN from 7 epochs: none at 6, 0.15 at 14, the cap from 22.2 */
    ck_assert(crn_dropout_for_epochs(6, R) == 0.0f && crn_dropout_for_epochs(7, R) == 0.0f);
    ck_assert(crn_dropout_for_epochs(NAN, R) == 0.0f);
    ck_assert_float_eq_tol(crn_dropout_for_epochs(14, R), 0.15f, 1e-6f);
    ck_assert_float_eq_tol(crn_dropout_for_epochs(21, R), 0.24f, 1e-6f); /* 0.2377, rounded */
    ck_assert_float_eq_tol(crn_dropout_for_epochs(30, R), 0.25f, 1e-6f);
    for (double e = 3; e < 40; e *= 1.1) {
        ck_assert(crn_dropout_for_epochs(e, L) <= crn_dropout_for_epochs(e * 1.1, L));
        ck_assert(crn_dropout_for_epochs(e, R) <= crn_dropout_for_epochs(e * 1.1, R));
        ck_assert(crn_dropout_for_epochs(e, R) <= crn_dropout_for_epochs(e, L));
    }
    /* the epochs of a budget: the least of --epochs, --steps and the time at the measured speed */
    crn_train_opts o;
    crn_train_opts_default(&o);
    o.batch = 10, o.seq = 10, o.time_limit = 0, o.max_steps = 1000, o.max_epochs = 0;
    ck_assert_double_eq_tol(crn_budget_epochs(&o, 10000, 0), 10.0, 1e-9);
    o.max_epochs = 4;
    ck_assert_double_eq_tol(crn_budget_epochs(&o, 10000, 0), 4.0, 1e-9);
    o.max_epochs = 0, o.time_limit = 10;
    ck_assert_double_eq_tol(crn_budget_epochs(&o, 10000, 5000), 10 * 5000 * 0.9 / 10000, 1e-9); /* time first */
    ck_assert_double_eq_tol(crn_budget_epochs(&o, 10000, 0), 10.0, 1e-9);                       /* no speed: steps */
    o.max_steps = 0;
    ck_assert(crn_budget_epochs(&o, 10000, 0) == 0 && crn_budget_epochs(&o, 0, 5000) == 0);
    /* applied to a named model: two layers get it, one does not; the line says why */
    crn_auto_input in = {.chars = 1200000, .vocab = 66, .val_frac = 0.1}; /* 1.08M training tokens */
    o.time_limit = 600, o.model.layers = 2;
    char why[256];
    const float d = crn_budget_dropout(&o, &in, 50000, why, sizeof why); /* 25 epochs */
    ck_assert_float_eq_tol(d, 0.25f, 1e-6f);
    ck_assert(o.model.dropout == d);
    ck_assert_msg(strstr(why, "dropout 0.25 for the budget: 25.0 epochs of 1.1M tokens in 600 s at ~50k tokens/s") == why,
                  "%s", why);
    o.model.layers = 1;
    ck_assert(crn_budget_dropout(&o, &in, 50000, why, sizeof why) == 0.0f && o.model.dropout == 0 && !why[0]);
    o.model.layers = 2, o.time_limit = 60; /* 2.5 epochs: none */
    ck_assert(crn_budget_dropout(&o, &in, 50000, why, sizeof why) == 0.0f && !why[0]);
    o.time_limit = 144; /* 6 epochs: the LSTM's 0.15, none for the Elman RNN */
    ck_assert_float_eq_tol(crn_budget_dropout(&o, &in, 50000, why, sizeof why), 0.15f, 1e-6f);
    o.model.cell = CRN_CELL_RNN;
    ck_assert(crn_budget_dropout(&o, &in, 50000, why, sizeof why) == 0.0f && o.model.dropout == 0 && !why[0]);
    crn_train_opts_free(&o);
}
END_TEST

START_TEST(auto_probe_measures_what_it_needs) {
    /* a text long enough for small but not medium, and a budget that any
     * speed affords: the probe times large? no (the text is too short),
     * medium? no, small: yes, and stops there */
    crn_auto_input in = {.chars = 300000, .vocab = 66, .seconds = 1e7, .val_frac = 0.1};
    ck_assert_int_eq(crn_auto_probe(&in, 1, 1), 0);
    ck_assert(in.cps[CRN_PRESET_SMALL] > 0);
    ck_assert(in.cps[CRN_PRESET_LARGE] == 0 && in.cps[CRN_PRESET_MEDIUM] == 0 && in.cps[CRN_PRESET_TINY] == 0);
    crn_train_opts o;
    crn_train_opts_default(&o);
    char why[512];
    ck_assert_int_eq(crn_auto_config(&o, &in, why, sizeof why), CRN_PRESET_SMALL);
    ck_assert_msg(strstr(why, "(measured)") != NULL, "%s", why);
    /* a budget no speed affords: every preset the text allows is timed, down to tiny */
    crn_auto_input in2 = {.chars = 300000, .vocab = 66, .seconds = 1e-3, .val_frac = 0.1};
    ck_assert_int_eq(crn_auto_probe(&in2, 1, 0), 0);
    ck_assert(in2.cps[CRN_PRESET_SMALL] > 0 && in2.cps[CRN_PRESET_TINY] > 0 && in2.cps[CRN_PRESET_MEDIUM] == 0);
    ck_assert_int_eq(crn_auto_config(&o, &in2, why, sizeof why), CRN_PRESET_TINY);
}
END_TEST

START_TEST(auto_scan_counts_code_points) {
    char p[300];
    path_in(p, sizeof p, "scan.txt");
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("하늘 abca\n", f);   /* 8 code points, 7 distinct */
    fputc(0xff, f);              /* invalid: one character, one shared id */
    fputc(0xfe, f);
    fclose(f);
    crn_auto_input in = {0};
    ck_assert_int_eq(crn_auto_scan(p, CRN_UNIT_CODEPOINT, &in), 0);
    ck_assert_uint_eq(in.chars, 10);
    ck_assert_uint_eq(in.vocab, 7 + 1 + 1);
    /* jamo: 하 = ㅎ ㅏ, 늘 = ㄴ ㅡ ㄹ: 5 + 6 + 2 tokens, 5 + 5 distinct + invalid + <unk> */
    ck_assert_int_eq(crn_auto_scan(p, CRN_UNIT_JAMO, &in), 0);
    ck_assert_uint_eq(in.chars, 13);
    ck_assert_uint_eq(in.vocab, 10 + 1 + 1);
    path_in(p, sizeof p, "missing.txt");
    ck_assert_int_eq(crn_auto_scan(p, CRN_UNIT_CODEPOINT, &in), CRN_EIO);
    ck_assert(strstr(crn_error_message(), "missing.txt") != NULL);
}
END_TEST

/* One window of B streams x T steps (x, y: (T, B), ids below V) forward
 * whole, then its rows [R0, R0 + R) alone as a rank would (with rows: the
 * dropout rows set, crn_model_set_dropout_rows), both from a zero state and
 * with the rng seeded alike (train; else evaluation). Returns the largest
 * |difference| of the part's logits from the whole's rows; *rng_same: the
 * two rngs ended alike. */
static double part_logits_diff(crn_model *m, const uint32_t *x, const uint32_t *y, int B, int T, int R0, int R,
                               int train, int rows, int *rng_same) {
    const int V = (int)crn_model_config_of(m)->vocab;
    crn_state *all = NULL, *part = NULL;
    ck_assert_int_eq(crn_state_create(&all, m, (uint32_t)B), 0);
    ck_assert_int_eq(crn_state_create(&part, m, (uint32_t)R), 0);
    uint32_t *xp = malloc(sizeof *xp * (size_t)R * T), *yp = malloc(sizeof *yp * (size_t)R * T);
    float *la = malloc(sizeof *la * (size_t)B * T * V);
    ck_assert(xp && yp && la);
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            xp[t * R + r] = x[t * B + R0 + r];
            yp[t * R + r] = y[t * B + R0 + r];
        }
    crn_rng r1, r2;
    crn_rng_seed(&r1, 99);
    crn_rng_seed(&r2, 99);
    crn_model_set_dropout_rows(m, 0, 0);
    ck_assert_int_eq(crn_model_forward(m, all, x, y, (uint32_t)B, (uint32_t)T, train ? &r1 : NULL, NULL, NULL), 0);
    memcpy(la, crn_model_logits(m), sizeof *la * (size_t)B * T * V);
    crn_model_set_dropout_rows(m, rows ? (uint32_t)B : 0, rows ? (uint32_t)R0 : 0);
    ck_assert_int_eq(crn_model_forward(m, part, xp, yp, (uint32_t)R, (uint32_t)T, train ? &r2 : NULL, NULL, NULL), 0);
    const float *lp = crn_model_logits(m);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++)
            for (int v = 0; v < V; v++)
                worst = fmax(worst, fabs(lp[(t * R + r) * V + v] - la[(t * B + R0 + r) * V + v]));
    *rng_same = memcmp(&r1, &r2, sizeof r1) == 0;
    crn_model_set_dropout_rows(m, 0, 0);
    free(xp);
    free(yp);
    free(la);
    crn_state_destroy(all);
    crn_state_destroy(part);
    return worst;
}

/* crn_model_set_dropout_rows: a window of rows [1, 3) of 4 streams drops
 * the units one window of all 4 drops (the same logits for those rows) and
 * leaves the rng where the full window does; without it the masks differ. */
START_TEST(dropout_rows_follow_all_streams) {
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .act = CRN_ACT_TANH, .vocab = 9, .embed = 0, .hidden = 8,
                            .layers = 3, .dropout = 0.5f};
    crn_model *m = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng r0;
    crn_rng_seed(&r0, 11);
    crn_model_init(m, &r0);
    enum { B = 4, T = 6, V = 9, R0 = 1, R = 2 };
    ck_assert_int_eq(crn_model_reserve(m, B, T), 0);
    uint32_t x[B * T], y[B * T];
    for (int i = 0; i < B * T; i++) {
        x[i] = (uint32_t)(i * 7 + 3) % V;
        y[i] = (uint32_t)(i * 5 + 1) % V;
    }
    for (int with_rows = 1; with_rows >= 0; with_rows--) {
        int rng_same = 0;
        double worst = part_logits_diff(m, x, y, B, T, R0, R, 1, with_rows, &rng_same);
        if (with_rows) {
            ck_assert_msg(worst < 1e-5, "rows' logits differ by %g", worst);
            ck_assert(rng_same); /* the rng advanced as for all streams */
        } else {
            ck_assert_msg(worst > 1e-3, "without the rows the masks should differ (%g)", worst);
        }
    }
    crn_model_destroy(m);
}
END_TEST

/* Does crn_gemm round a row of C independently of how many rows the call
 * has (M = 2R at once, or R and R)? The Prescott and SkylakeX kernels of
 * OpenBLAS 0.3.21 do for these shapes, its Haswell kernels do not. */
static int gemm_rows_independent(int R, int N, int K) {
    const int M = 2 * R;
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)K * N);
    float *c1 = malloc(sizeof(float) * (size_t)M * N), *c2 = malloc(sizeof(float) * (size_t)M * N);
    ck_assert(a && b && c1 && c2);
    for (int i = 0; i < M * K; i++) a[i] = (float)((i * 37 % 101) - 50) / 67.0f;
    for (int i = 0; i < K * N; i++) b[i] = (float)((i * 53 % 97) - 48) / 71.0f;
    crn_gemm(0, 0, M, N, K, 1, a, K, b, N, 0, c1, N);
    crn_gemm(0, 0, R, N, K, 1, a, K, b, N, 0, c2, N);
    crn_gemm(0, 0, R, N, K, 1, a + (size_t)R * K, K, b, N, 0, c2 + (size_t)R * N, N);
    int same = memcmp(c1, c2, sizeof(float) * (size_t)M * N) == 0;
    free(a);
    free(b);
    free(c1);
    free(c2);
    return same;
}

/* An MPI rank's part of the window (rows [4, 8) of 8 streams x 16 steps,
 * crn_model_set_dropout_rows) takes the products' kernels of the whole
 * window: its own 64 rows alone would go to the small-product kernel, the
 * whole window's 128 rows go to BLAS, and the two round differently (with
 * layer norm by 10^-6 in the logits, amplified over the training steps).
 * So the rank's logits are the whole window's rows bit for bit, with layer
 * norm and dropout, when BLAS rounds a row independently of the row count
 * (checked; else they agree to rounding). */
START_TEST(rank_rows_take_whole_window_kernels) {
    enum { B = 8, T = 16, V = 9, H = 16, R0 = 4, R = 4 };
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .act = CRN_ACT_TANH, .vocab = V, .embed = 0, .hidden = H,
                            .layers = 2, .dropout = 0.3f, .layer_norm = 1};
    crn_model *m = NULL;
    ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
    crn_rng r0;
    crn_rng_seed(&r0, 5);
    crn_model_init(m, &r0);
    ck_assert_int_eq(crn_model_reserve(m, B, T), 0);
    static uint32_t x[B * T], y[B * T];
    for (int i = 0; i < B * T; i++) {
        x[i] = (uint32_t)(i * 7 + i / 5) % V;
        y[i] = (uint32_t)(i * 5 + 1) % V;
    }
    const int exact = gemm_rows_independent(T * R, 4 * H, H) && gemm_rows_independent(T * R, V, H);
    for (int train = 1; train >= 0; train--) { // with dropout, then evaluation
        int rng_same = 0;
        double worst = part_logits_diff(m, x, y, B, T, R0, R, train, 1, &rng_same);
        ck_assert(rng_same);
        if (exact)
            ck_assert_msg(worst == 0, "%s: the rank's logits differ from the whole window's by %g",
                          train ? "dropout" : "eval", worst);
        else
            ck_assert_msg(worst < 1e-5, "%s: the rank's logits differ by %g", train ? "dropout" : "eval", worst);
    }
    if (!exact) printf("rank_rows_take_whole_window_kernels: this BLAS rounds rows by their count: checked to 1e-5\n");
    crn_model_destroy(m);
}
END_TEST

/* The resume rules (docs/training.md "Options on resume"): a refused
 * option names itself and leaves the saved options; one budget replaces all
 * three; the session options apply; the rest stays the run's. */
START_TEST(resume_option_rules) {
    crn_train_opts saved, given;
    crn_train_opts_default(&saved);
    ck_assert_int_eq(crn_train_opts_set(&saved, "corpus", "/old/text.txt"), 0);
    saved.max_steps = 100;
    saved.max_epochs = 3;
    saved.time_limit = 60;
    saved.model.hidden = 64;
    saved.optim.lr = 0.01f;
    crn_train_opts_default(&given);
    uint64_t mask = 0;
    const char *set[][2] = {{"hidden", "32"}, {"steps", "500"}, {"lr", "0.5"}, {"corpus", "/new/text.txt"}};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(crn_train_opts_set(&given, set[i][0], set[i][1]), 0);
        mask |= CRN_TOPT_BIT(crn_train_opt_id(set[i][0]));
    }
    int refused = 99;
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, mask, &refused), CRN_EINVAL);
    ck_assert_int_eq(refused, CRN_TOPT_HIDDEN);
    ck_assert_str_eq(crn_train_opt_name(refused), "hidden");
    ck_assert_msg(strstr(crn_error_message(), "hidden conflicts with the checkpoint (hidden 64)") != NULL, "%s",
                  crn_error_message());
    ck_assert_uint_eq(saved.max_steps, 100); /* unchanged */
    ck_assert_str_eq(saved.corpus_path, "/old/text.txt");
    /* the saved value itself is not a conflict */
    ck_assert_int_eq(crn_train_opts_set(&given, "hidden", "64"), 0);
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, mask, &refused), 0);
    ck_assert_int_eq(refused, -1);
    ck_assert_uint_eq(saved.max_steps, 500); /* steps given: epochs and time go */
    ck_assert_uint_eq(saved.max_epochs, 0);
    ck_assert(saved.time_limit == 0);
    ck_assert(saved.optim.lr == 0.5f);
    ck_assert_str_eq(saved.corpus_path, "/new/text.txt");
    ck_assert_uint_eq(saved.batch, 50); /* not given: the run's */
    /* time alone: per session, the totals go */
    crn_train_opts_free(&given);
    crn_train_opts_default(&given);
    ck_assert_int_eq(crn_train_opts_set(&given, "time", "90s"), 0);
    ck_assert_int_eq(crn_train_opts_set(&given, "lr-decay", "0.5"), 0);
    mask = CRN_TOPT_BIT(CRN_TOPT_TIME) | CRN_TOPT_BIT(CRN_TOPT_LR_DECAY);
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, mask, NULL), 0);
    ck_assert(saved.time_limit == 90);
    ck_assert_uint_eq(saved.max_steps, 0);
    ck_assert_int_eq(saved.sched.kind, CRN_SCHED_STEP_DECAY);
    ck_assert(saved.optim.lr == 0.5f); /* kept from the last session */
    /* no budget given: the run's stay */
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, CRN_TOPT_BIT(CRN_TOPT_SEED), NULL), 0);
    ck_assert(saved.time_limit == 90);
    /* refused whatever the value: preset; refused when different: optimizer, keep */
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, CRN_TOPT_BIT(CRN_TOPT_PRESET), &refused), CRN_EINVAL);
    ck_assert_int_eq(refused, CRN_TOPT_PRESET);
    ck_assert_int_eq(crn_train_opts_set(&given, "optimizer", "sgd"), 0);
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, CRN_TOPT_BIT(CRN_TOPT_OPTIMIZER), &refused), CRN_EINVAL);
    ck_assert_int_eq(refused, CRN_TOPT_OPTIMIZER);
    ck_assert_int_eq(crn_train_opts_set(&given, "keep", "^a"), 0);
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, CRN_TOPT_BIT(CRN_TOPT_KEEP), &refused), CRN_EINVAL);
    ck_assert_int_eq(refused, CRN_TOPT_KEEP);
    ck_assert_uint_eq(saved.model.layer_norm, 1); /* the default */
    ck_assert_int_eq(crn_train_opts_set(&given, "layer-norm", "0"), 0);
    ck_assert_int_eq(crn_train_opts_resume(&saved, &given, CRN_TOPT_BIT(CRN_TOPT_LAYER_NORM), &refused),
                     CRN_EINVAL);
    ck_assert_int_eq(refused, CRN_TOPT_LAYER_NORM);
    /* every option of the table has an id and back */
    for (int id = 0; id < CRN_TOPT_COUNT; id++) ck_assert_int_eq(crn_train_opt_id(crn_train_opt_name(id)), id);
    ck_assert_int_eq(crn_train_opt_id("output"), -1);
    ck_assert_ptr_null(crn_train_opt_name(CRN_TOPT_COUNT));
    crn_train_opts_free(&given);
    crn_train_opts_free(&saved);
}
END_TEST

int main(void) {
    if (write_text()) return 1;
    Suite *s = suite_create("train");
    TCase *tb = tcase_create("blob");
    tcase_add_test(tb, blob_round_trip);
    tcase_add_test(tb, blob_damage);
    tcase_add_test(tb, blob_version1);
    tcase_add_test(tb, opts_set_quality_options);
    tcase_add_test(tb, preset_params_match_model);
    tcase_add_test(tb, auto_config_follows_the_budget);
    tcase_add_test(tb, budget_dropout_follows_the_epochs);
    tcase_add_test(tb, auto_probe_measures_what_it_needs);
    tcase_add_test(tb, auto_scan_counts_code_points);
    tcase_add_test(tb, dropout_rows_follow_all_streams);
    tcase_add_test(tb, rank_rows_take_whole_window_kernels);
    tcase_add_test(tb, resume_option_rules);
    suite_add_tcase(s, tb);
    TCase *tl = tcase_create("loop");
    tcase_set_timeout(tl, 120);
    tcase_add_test(tl, resume_exact);
    tcase_add_test(tl, resume_differs_without_state);
    tcase_add_test(tl, time_budget_schedule);
    tcase_add_test(tl, nonfinite_skipped);
    tcase_add_test(tl, nonfinite_stops);
    tcase_add_test(tl, optimizer_overflow_rolled_back);
    tcase_add_test(tl, stop_request_saves);
    tcase_add_test(tl, val_matches_evaluate_ids);
    tcase_add_test(tl, init_from_extend_keeps_base);
    suite_add_tcase(s, tl);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return failed ? 1 : 0;
}
