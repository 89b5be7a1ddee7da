/* cli_progress.c — the training display of `charrnn train` (see cli_progress.h). */
#include "cli_progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"

#define REDRAW_INTERVAL 0.125 /* seconds between live-line redraws */

struct cli_progress {
    FILE *f;
    int tty, quiet;
    int live;            /* a live line is on screen (no newline yet) */
    int width;           /* terminal columns (tty only; the live line must not wrap) */
    double last_draw;
};

int cli_progress_create(cli_progress **out, FILE *f, int tty, int quiet) {
    *out = NULL;
    cli_progress *p = calloc(1, sizeof *p);
    if (!p) return crn_error_set(CRN_ENOMEM, "out of memory");
    p->f = f ? f : stderr;
    p->tty = tty >= 0 ? tty : isatty(fileno(p->f));
    p->quiet = quiet;
    p->last_draw = -1e9;
    p->width = 0;
    if (p->tty) {
        struct winsize ws;
        if (ioctl(fileno(p->f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) p->width = ws.ws_col;
    }
    *out = p;
    return 0;
}

void cli_progress_destroy(cli_progress *p) {
    if (!p) return;
    cli_progress_finish(p);
    free(p);
}

const char *cli_format_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return buf;
    }
    unsigned long long t = (unsigned long long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%lluh%02llum", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%llum%02llus", t / 60, t % 60);
    else snprintf(buf, n, "%llus", t);
    return buf;
}

static void fmt_bpc(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.3f", v);
    else snprintf(buf, n, "-");
}

/* Cut the (ASCII) live line to the terminal width so "\r" redraws it. */
static void fit(const cli_progress *p, char *line) {
    if (p->width > 0 && strlen(line) >= (size_t)p->width) line[p->width - 1] = 0;
}

static void clear_live(cli_progress *p) {
    if (p->live) {
        fputs("\r\033[K", p->f);
        p->live = 0;
    }
}

void cli_progress_finish(cli_progress *p) {
    if (!p) return;
    if (p->live) {
        fputc('\n', p->f);
        p->live = 0;
        fflush(p->f);
    }
}

/* "epoch 1.23 | step 120/2000 | train 2.345 | val 2.401 (best 2.390) | 81.2k chars/s | 3m05s left" */
static void status_line(char *buf, size_t n, const crn_train_report *r) {
    char steps[48], tr[16], va[16], best[16], eta[16], rate[24];
    if (r->total_steps) snprintf(steps, sizeof steps, "%llu/%llu", (unsigned long long)r->step,
                                 (unsigned long long)r->total_steps);
    else snprintf(steps, sizeof steps, "%llu", (unsigned long long)r->step);
    fmt_bpc(tr, sizeof tr, r->train_bpc);
    fmt_bpc(va, sizeof va, r->val_bpc);
    fmt_bpc(best, sizeof best, r->best_val_bpc);
    if (r->chars_per_s >= 1e4) snprintf(rate, sizeof rate, "%.1fk", r->chars_per_s / 1000);
    else snprintf(rate, sizeof rate, "%.0f", r->chars_per_s);
    cli_format_duration(eta, sizeof eta, r->eta);
    snprintf(buf, n, "epoch %.2f | step %s | train %s | val %s (best %s) | %s chars/s | %s left", r->epoch, steps, tr,
             va, best, rate, eta);
}

void cli_progress_report(void *ud, const crn_train_report *r) {
    cli_progress *p = ud;
    if (!p || p->quiet) return;
    char line[320];
    switch (r->event) {
    case CRN_EV_START:
        clear_live(p);
        fprintf(p->f, "training %s\n", r->message ? r->message : "");
        break;
    case CRN_EV_STEP:
        if (!p->tty) return;
        {
            double now = crn_now();
            if (now - p->last_draw < REDRAW_INTERVAL) return;
            p->last_draw = now;
        }
        status_line(line, sizeof line, r);
        fit(p, line);
        fprintf(p->f, "\r%s\033[K", line);
        p->live = 1;
        break;
    case CRN_EV_EVAL:
        status_line(line, sizeof line, r);
        if (p->tty) {
            if (r->improved) strncat(line, " *", sizeof line - strlen(line) - 1);
            fit(p, line);
            fprintf(p->f, "\r%s\033[K", line);
            p->live = 1;
            p->last_draw = crn_now();
        } else {
            fprintf(p->f, "%s%s\n", line, r->improved ? " (saved best)" : "");
        }
        break;
    case CRN_EV_SAVE:
        return; /* the final report names the files */
    case CRN_EV_WARN:
        clear_live(p);
        fprintf(p->f, "warning: %s\n", r->message ? r->message : "");
        break;
    case CRN_EV_SAMPLE:
        clear_live(p);
        if (isfinite(r->val_bpc))
            fprintf(p->f, "---- sample at step %llu (validation %.3f bits/char) ----\n", (unsigned long long)r->step,
                    r->val_bpc);
        else
            fprintf(p->f, "---- sample at step %llu ----\n", (unsigned long long)r->step);
        fwrite(r->text, 1, r->text_len, p->f);
        fprintf(p->f, "\n----\n");
        break;
    case CRN_EV_DONE:
        cli_progress_finish(p);
        {
            char el[16];
            fprintf(p->f, "%s after %llu steps (%s)\n", r->message ? r->message : "done",
                    (unsigned long long)r->step, cli_format_duration(el, sizeof el, r->elapsed));
        }
        break;
    }
    fflush(p->f);
}

void cli_progress_line(cli_progress *p, const char *line, int final) {
    if (!p || p->quiet) return;
    if (!p->tty) {
        if (final) fprintf(p->f, "%s\n", line);
        fflush(p->f);
        return;
    }
    double now = crn_now();
    if (!final && now - p->last_draw < REDRAW_INTERVAL) return;
    p->last_draw = now;
    char buf[320];
    snprintf(buf, sizeof buf, "%s", line);
    fit(p, buf);
    fprintf(p->f, "\r%s\033[K%s", buf, final ? "\n" : "");
    p->live = !final;
    fflush(p->f);
}
