/* cli.h — shared helpers of the command-line front end. Only the CLI prints
 * and exits; each command is `int cli_NAME(int argc, char **argv)` returning
 * the process exit status (0 ok, 1 runtime error, 2 usage error, 130
 * interrupted). argv[0] is the command name. */
#ifndef CRN_CLI_H
#define CRN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_INTERRUPTED 130

int cli_vocab(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_repl(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_classify(int argc, char **argv);
/* repl on a classifier: label each line typed. @return the exit status, or
 * -1 if path is not a classifier (the generator repl takes over). */
int cli_classify_repl(const char *cmd, const char *path, int threads);
/* First SIGINT/SIGTERM/SIGHUP asks a training loop to stop (crn_train_request_stop);
 * a second one aborts at once. */
void cli_install_stop_signals(void);
/* info on a classifier: its config and head. @return the exit status, or -1
 * if path is not a classifier. */
int cli_classify_info(const char *cmd, const char *path, int json);
int cli_show(int argc, char **argv);

/* "charrnn CMD: message\n" on stderr (printf-style). */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Report the library's last error for a failed call and return CLI_EXIT_ERROR. */
int cli_fail(const char *cmd, int err);
/* Usage error: message plus "Try 'charrnn CMD --help'." and return 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* getopt_long's "unrecognized option" already printed: add the hint, return 2. */
int cli_bad_option(const char *cmd);

/* Strict number parsing for option values: the whole string must parse and
 * lie in [min, max]; on failure print a usage error naming the option and
 * return -1. */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long long min, long long max, long long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max, double *out);
/* Durations: "90", "90s", "10m", "1.5h" -> seconds (> 0). */
int cli_parse_duration(const char *cmd, const char *opt, const char *s, double *out);

/* Sampling options shared by `generate` and `repl`: getopt_long codes, the
 * table entries (CLI_SAMPLING_OPTIONS inside a struct option array) and one
 * handler, so both commands parse and check them the same way. */
enum {
    CLI_OPT_LENGTH = 512, CLI_OPT_SEED, CLI_OPT_TEMP, CLI_OPT_TOPK, CLI_OPT_TOPP, CLI_OPT_BEAM,
    CLI_OPT_STOP, CLI_OPT_KEEP_STOP, CLI_OPT_MATCH, CLI_OPT_STRICT,
};
#define CLI_SAMPLING_OPTIONS                                     \
    {"length", required_argument, NULL, CLI_OPT_LENGTH},         \
    {"seed", required_argument, NULL, CLI_OPT_SEED},             \
    {"temperature", required_argument, NULL, CLI_OPT_TEMP},      \
    {"top-k", required_argument, NULL, CLI_OPT_TOPK},            \
    {"top-p", required_argument, NULL, CLI_OPT_TOPP},            \
    {"beam", required_argument, NULL, CLI_OPT_BEAM},             \
    {"stop", required_argument, NULL, CLI_OPT_STOP},             \
    {"keep-stop", no_argument, NULL, CLI_OPT_KEEP_STOP},         \
    {"match", required_argument, NULL, CLI_OPT_MATCH},           \
    {"strict", no_argument, NULL, CLI_OPT_STRICT}
struct crn_sample_settings;
/* Apply sampling option c (value arg) to s; *have_seed is set by --seed.
 * @return 1 handled, 0 not a sampling option, -1 bad value (usage error printed). */
int cli_sampling_option(const char *cmd, int c, const char *arg, struct crn_sample_settings *s, int *have_seed);

/* After the options: check s (usage error printed: -1) and, without
 * --seed, pick a time-based seed. @return 0 or -1. */
int cli_sampling_finish(const char *cmd, struct crn_sample_settings *s, int have_seed);

/* Load a model for sampling (generate, repl). Unless exact, batch-1 steps
 * read a half-precision copy of the weights (half the memory traffic per
 * token; the distribution stays within a tested tolerance of float32, see
 * crn_model_step_f16). @return 0, or CLI_EXIT_ERROR after printing the error. */
struct crn_checkpoint;
int cli_load_sampling_model(const char *cmd, const char *path, int exact, struct crn_checkpoint **out);

/* Read a whole file (at most 64 MiB) into *out (malloc'ed).
 * @return 0 or CRN_EIO / CRN_ENOMEM / CRN_ERANGE with a message naming path. */
int cli_read_file(const char *path, uint8_t **out, size_t *len);

/* `generate --show PAGE` (cli_show.c): the prompt and the generated text on
 * a show page, coloured by the model's probability of each character.
 * @return 0 or CLI_EXIT_ERROR after printing the error. */
int cli_show_generated(const char *cmd, const char *page, const char *model_path, struct crn_checkpoint *ck,
                       const uint8_t *prompt, size_t prompt_len, const uint8_t *text, size_t text_len,
                       const char *note);

/* JSON string output (escapes quotes, backslashes, control characters). */
void cli_json_string(FILE *f, const char *s, size_t n);

#endif
