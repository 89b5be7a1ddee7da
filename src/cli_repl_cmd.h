/* cli_repl_cmd.h — the REPL's command language (":temp 0.7", ":stop REGEX",
 * ":reset", ...): a pure parser over sampling settings, no I/O, so it is
 * fuzzed (tests/fuzz/fuzz_repl_command.c) and unit-tested
 * (tests/test_repl_cmd.c) on its own. The CLI side of the sampler. */
#ifndef CRN_CLI_REPL_CMD_H
#define CRN_CLI_REPL_CMD_H

#include <stddef.h>

#include "sampler.h"

enum cli_repl_action {
    CLI_REPL_TEXT = 0,   /* not a command: *text, *text_len is the prompt to generate from */
    CLI_REPL_OK,         /* a setting changed (msg says what) */
    CLI_REPL_SEED,       /* the seed changed: reseed the generator */
    CLI_REPL_RESET,      /* :reset */
    CLI_REPL_SHOW,       /* :show (msg holds the settings) */
    CLI_REPL_HELP,       /* :help (msg holds the help) */
    CLI_REPL_QUIT,       /* :quit */
    CLI_REPL_ERROR,      /* msg explains what is wrong; settings unchanged */
};

/* Parse one input line (without its line break; any bytes). Lines starting
 * with ':' are commands (':' + ':' escapes a literal leading colon: the prompt
 * is the line minus one colon). Settings are updated in place, validated.
 * msg (cap >= 1) always receives a NUL-terminated message ("" if none).
 * @return a cli_repl_action. */
int cli_repl_command(crn_sample_settings *s, const char *line, size_t n, const char **text, size_t *text_len,
                     char *msg, size_t cap);
/* Settings as text (for :show and --verbose), into msg (truncated to cap). */
void cli_sample_settings_describe(const crn_sample_settings *s, char *msg, size_t cap);

#endif
