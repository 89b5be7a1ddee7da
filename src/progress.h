/* progress.h — what the training loop tells the outside world, and the
 * terminal progress display that turns it into text.
 *
 * The loop (train.c) never prints: it calls a crn_progress_fn with a
 * crn_train_report at every step and at every event (eval, save, skipped
 * non-finite step, sample). crn_progress_report() is one such callback: on a
 * TTY it keeps one live line on its stream, redrawn in place ("\r" + clear to
 * end of line) at most ~8 times a second; on anything else it writes one plain
 * line per evaluation (and one per save/warning), so logs stay readable. */
#ifndef CRN_PROGRESS_H
#define CRN_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* The terminal display. tty: 1 live line, 0 plain lines, -1 decide with
 * isatty(fileno(f)). quiet: print nothing at all. */
typedef struct crn_progress crn_progress;
int crn_progress_create(crn_progress **out, FILE *f, int tty, int quiet);
void crn_progress_destroy(crn_progress *p); /* NULL is a no-op */
/* A crn_progress_fn: ud is the crn_progress. */
void crn_progress_report(void *ud, const crn_train_report *r);
/* A line the caller formatted (another loop's status, e.g. `classify
 * train`): on a TTY the live line, redrawn at most ~8 times a second, and
 * a final line (an eval) stays on screen; otherwise only final lines are
 * printed, one plain line each. */
void crn_progress_line(crn_progress *p, const char *line, int final);
/* End the live line (newline) so the caller can print below it. */
void crn_progress_finish(crn_progress *p);

/* "1h02m", "3m05s", "42s" into buf (for the display and the CLI). */
const char *crn_format_duration(char *buf, size_t n, double seconds);

#endif
