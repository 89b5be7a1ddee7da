/* cli_progress.h — the terminal progress display of `charrnn train`: a
 * crn_progress_fn (train_report.h) that turns the loop's reports into text.
 * On a TTY it keeps one live line on its stream, redrawn in place ("\r" +
 * clear to end of line) at most ~8 times a second; on anything else it
 * writes one plain line per evaluation (and one per save/warning), so logs
 * stay readable. */
#ifndef CRN_CLI_PROGRESS_H
#define CRN_CLI_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

#include "train_report.h"

/* The terminal display. tty: 1 live line, 0 plain lines, -1 decide with
 * isatty(fileno(f)). quiet: print nothing at all. */
typedef struct cli_progress cli_progress;
int cli_progress_create(cli_progress **out, FILE *f, int tty, int quiet);
void cli_progress_destroy(cli_progress *p); /* NULL is a no-op */
/* A crn_progress_fn: ud is the cli_progress. */
void cli_progress_report(void *ud, const crn_train_report *r);
/* A line the caller formatted (another loop's status, e.g. `classify
 * train`): on a TTY the live line, redrawn at most ~8 times a second, and
 * a final line (an eval) stays on screen; otherwise only final lines are
 * printed, one plain line each. */
void cli_progress_line(cli_progress *p, const char *line, int final);
/* End the live line (newline) so the caller can print below it. */
void cli_progress_finish(cli_progress *p);

/* "1h02m", "3m05s", "42s" into buf (for the display and the CLI). */
const char *cli_format_duration(char *buf, size_t n, double seconds);

#endif
