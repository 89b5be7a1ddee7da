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

/* JSON string output (escapes quotes, backslashes, control characters). */
void cli_json_string(FILE *f, const char *s, size_t n);

#endif
