/* api_train.c — the public API's training: options by name (train_opts.c),
 * a fresh or resumed run through the trainer (train.c; a resume merges the
 * options set over the run's by crn_train_opts_resume, as `charrnn train
 * --resume`), progress reports translated for the caller's callback, a
 * per-trainer stop request. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "common.h"
#include "train.h"

#define DEFAULT_TIME 300.0 /* seconds, when no budget is given (as `charrnn train`) */

struct charrnn_train_options {
    crn_train_opts o;
    uint64_t given;           /* CRN_TOPT_BIT of every option set */
    char *out_path;
    char *resume_path;        /* "resume": continue this run */
};

struct charrnn_trainer {
    crn_trainer *t;
    volatile sig_atomic_t stop;
    charrnn_progress_fn cb;   /* of the run in progress */
    void *user;
};

int charrnn_train_options_create(charrnn_train_options **out) {
    if (!out) return crn_error_set(CRN_EINVAL, "charrnn_train_options_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return crn_error_set(CRN_ENOMEM, "out of memory");
    crn_train_opts_default(&(*out)->o);
    return 0;
}

void charrnn_train_options_destroy(charrnn_train_options *o) {
    if (!o) return;
    crn_train_opts_free(&o->o);
    free(o->out_path);
    free(o->resume_path);
    free(o);
}

int charrnn_train_options_set(charrnn_train_options *o, const char *name, const char *value) {
    if (!o || !name || !value) return crn_error_set(CRN_EINVAL, "charrnn_train_options_set: NULL argument");
    char **path = !strcmp(name, "output") ? &o->out_path : !strcmp(name, "resume") ? &o->resume_path : NULL;
    if (!path) {
        int err = crn_train_opts_set(&o->o, name, value);
        if (err < 0) return err;
        o->given |= CRN_TOPT_BIT(crn_train_opt_id(name));
        return 0;
    }
    char *copy = strdup(value);
    if (!copy) return crn_error_set(CRN_ENOMEM, "out of memory");
    free(*path);
    *path = copy;
    return 0;
}

/* A fresh run from the options set over the defaults. */
static int create_fresh(crn_trainer **out, const charrnn_train_options *o) {
    if (!o->o.corpus_path) return crn_error_set(CRN_EINVAL, "training options: no corpus");
    if (!o->out_path) return crn_error_set(CRN_EINVAL, "training options: no output");
    crn_train_opts opts;
    int err = crn_train_opts_copy(&opts, &o->o);
    if (err < 0) return err;
    if (!opts.time_limit && !opts.max_steps && !opts.max_epochs) opts.time_limit = DEFAULT_TIME;
    if ((err = crn_train_opts_check(&opts)) < 0) {
        crn_train_opts_free(&opts);
        return err;
    }
    char *abs_corpus = realpath(opts.corpus_path, NULL); /* resumable from any directory */
    if (abs_corpus) {
        free(opts.corpus_path);
        opts.corpus_path = abs_corpus;
    }
    crn_train_start start;
    memset(&start, 0, sizeof start);
    start.out_path = o->out_path;
    err = crn_trainer_create(out, &opts, &start);
    crn_train_opts_free(&opts);
    return err;
}

/* Continue the run o->resume_path names: its options, with those set over
 * them by the resume rules, written to its own files. */
static int create_resumed(crn_trainer **out, const charrnn_train_options *o) {
    crn_train_resumed run;
    int err = crn_train_resumed_open(&run, o->resume_path, NULL, 0);
    if (err < 0) return err;
    if ((err = crn_train_opts_resume(&run.opts, &o->o, o->given, NULL)) < 0) goto done;
    if ((err = crn_train_opts_check(&run.opts)) < 0) goto done;
    if (!run.opts.corpus_path) {
        err = crn_error_set(CRN_EINVAL, "%s does not record its corpus; set corpus", run.loaded_from);
        goto done;
    }
    if (o->out_path && strcmp(o->out_path, run.base)) {
        err = crn_error_set(CRN_EINVAL, "output %s: a resumed run continues in its own files (%s)", o->out_path,
                            run.base);
        goto done;
    }
    crn_train_start start;
    memset(&start, 0, sizeof start);
    start.out_path = run.base;
    start.resume = run.ck;
    start.resume_state = &run.state;
    start.log_append = 1;
    err = crn_trainer_create(out, &run.opts, &start);
done:
    crn_train_resumed_free(&run);
    return err;
}

int charrnn_trainer_create(charrnn_trainer **out, const charrnn_train_options *o) {
    if (!out) return crn_error_set(CRN_EINVAL, "charrnn_trainer_create: out is NULL");
    *out = NULL;
    if (!o) return crn_error_set(CRN_EINVAL, "charrnn_trainer_create: options are NULL");
    charrnn_trainer *t = calloc(1, sizeof *t);
    if (!t) return crn_error_set(CRN_ENOMEM, "out of memory");
    int err = o->resume_path ? create_resumed(&t->t, o) : create_fresh(&t->t, o);
    if (err < 0) {
        free(t);
        return err;
    }
    crn_trainer_set_stop_flag(t->t, &t->stop);
    *out = t;
    return 0;
}

void charrnn_trainer_destroy(charrnn_trainer *t) {
    if (!t) return;
    crn_trainer_destroy(t->t);
    free(t);
}

_Static_assert((int)CHARRNN_EVENT_START == (int)CRN_EV_START && (int)CHARRNN_EVENT_STEP == (int)CRN_EV_STEP &&
                   (int)CHARRNN_EVENT_EVAL == (int)CRN_EV_EVAL && (int)CHARRNN_EVENT_SAVE == (int)CRN_EV_SAVE &&
                   (int)CHARRNN_EVENT_WARN == (int)CRN_EV_WARN && (int)CHARRNN_EVENT_SAMPLE == (int)CRN_EV_SAMPLE &&
                   (int)CHARRNN_EVENT_DONE == (int)CRN_EV_DONE,
               "public and internal training events differ");

static void on_report(void *ud, const crn_train_report *r) {
    charrnn_trainer *t = ud;
    charrnn_progress p = {
        .event = (int)r->event,
        .step = r->step,
        .total_steps = r->total_steps,
        .epoch = r->epoch,
        .elapsed = r->elapsed,
        .eta = r->eta,
        .train_bpc = r->train_bpc,
        .val_bpc = r->val_bpc,
        .best_val_bpc = r->best_val_bpc,
        .best_step = r->best_step,
        .lr = r->lr,
        .chars_per_s = r->chars_per_s,
        .message = r->message,
        .path = r->path,
        .text = r->text,
        .text_len = r->text_len,
    };
    if (t->cb(t->user, &p)) t->stop = 1;
}

int charrnn_trainer_run(charrnn_trainer *t, charrnn_progress_fn cb, void *user) {
    if (!t) return crn_error_set(CRN_EINVAL, "charrnn_trainer_run: trainer is NULL");
    t->cb = cb;
    t->user = user;
    int err = crn_trainer_run(t->t, cb ? on_report : NULL, t);
    t->cb = NULL;
    t->stop = 0;
    return err;
}

void charrnn_trainer_request_stop(charrnn_trainer *t) {
    if (t) t->stop = 1;
}

int charrnn_trainer_get_status(const charrnn_trainer *t, charrnn_train_status *out) {
    if (!t || !out) return crn_error_set(CRN_EINVAL, "charrnn_trainer_get_status: NULL argument");
    const crn_train_status *s = crn_trainer_state(t->t);
    out->step = s->step;
    out->epoch = s->epoch;
    out->elapsed = s->elapsed;
    out->best_val_bpc = s->has_best ? s->best_val_bpc : NAN;
    out->best_step = s->best_step;
    out->last_train_bpc = s->last_train_bpc;
    return 0;
}
