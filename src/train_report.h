/* train_report.h — what the training loop tells the outside world: a
 * crn_progress_fn called with a crn_train_report at every step and at every
 * event (eval, save, skipped non-finite step, sample). The loop (train.c)
 * never prints; the CLI's display (cli_progress.h) and the public API's
 * callback (api_train.c) turn reports into what their users see. */
#ifndef CRN_TRAIN_REPORT_H
#define CRN_TRAIN_REPORT_H

#include <stddef.h>
#include <stdint.h>

enum crn_train_event {
    CRN_EV_START = 0,    /* before the first step (message: what is being trained) */
    CRN_EV_STEP = 1,     /* after every optimizer step */
    CRN_EV_EVAL = 2,     /* after a validation pass (val_* set) */
    CRN_EV_SAVE = 3,     /* a checkpoint was written (path) */
    CRN_EV_WARN = 4,     /* something worth a line: skipped non-finite step, ... (message) */
    CRN_EV_SAMPLE = 5,   /* a short sample of the model's text (text, text_len) */
    CRN_EV_DONE = 6,     /* the loop ended (message: why) */
};

typedef struct crn_train_report {
    enum crn_train_event event;
    uint64_t step;          /* optimizer steps done in the whole run */
    uint64_t total_steps;   /* step budget (0: none) */
    double epoch;           /* fractional epochs done */
    double elapsed;         /* training seconds in the whole run (resumes add up) */
    double time_limit;      /* time budget of this session in seconds (0: none) */
    double eta;             /* seconds to the nearest budget (< 0: unknown) */
    double train_bpc;       /* mean train bits per char since the last eval */
    double val_bpc;         /* last validation bits per char (NaN before the first) */
    double val_bpt;         /* last validation bits per token (NaN before the first) */
    double best_val_bpc;    /* best so far (NaN: none) */
    uint64_t best_step;
    int improved;           /* EVAL: this eval is the new best */
    double lr;              /* learning rate of the last step */
    double chars_per_s;     /* training throughput since the last eval */
    const char *path;       /* SAVE: the file written */
    const char *message;    /* START/WARN/DONE: one line */
    const char *text;       /* SAMPLE: UTF-8 text (not NUL-terminated) */
    size_t text_len;
} crn_train_report;

typedef void (*crn_progress_fn)(void *ud, const crn_train_report *r);

#endif
