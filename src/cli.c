/* cli.c — main: subcommand dispatch, --help/--version, and the option-value
 * helpers every command shares. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "common.h"
#include "config.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"train", cli_train, "train a model on a UTF-8 text file"},
    {"generate", cli_generate, "generate text from a model (prompt, sampling, regex stop/match)"},
    {"repl", cli_repl, "interactive sampling prompt"},
    {"eval", cli_eval, "bits per character of a text under a model"},
    {"show", cli_show, "an HTML page of a text's surprise, candidates and neurons"},
    {"info", cli_info, "describe a model file"},
    {"vocab", cli_vocab, "token statistics of a text file"},
    {"bench", cli_bench, "time training and sampling (see also tools/bench)"},
    {"classify", cli_classify, "many-to-one: train, predict and evaluate text classifiers"},
};

static void usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn <command> [options]\n"
            "\n"
            "Character-level text generation with recurrent networks (RNN, LSTM, GRU).\n"
            "Works on Unicode code points, grapheme clusters or Hangul jamo.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < CRN_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Options:\n"
            "  -h, --help     show this help\n"
            "  -V, --version  show the version\n"
            "\n"
            "Run 'charrnn <command> --help' for the options of a command.\n");
}

/* OpenBLAS fell back to generic SSE3 kernels on a CPU it does not know
 * (blas.h): run again with the kernel family the CPU supports. An
 * OPENBLAS_CORETYPE the user set (to anything) wins, and CHARRNN_BLAS_KEEP=1
 * keeps the kernels OpenBLAS chose. CHARRNN_BLAS_FROM tells --version what
 * OpenBLAS had picked. When exec fails, the loaded kernels are used. */
static void reexec_with_better_blas(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("CHARRNN_BLAS_KEEP")) return;
    const char *better = crn_blas_better_core();
    if (!better) return;
    if (setenv("CHARRNN_BLAS_FROM", crn_blas_core(), 1) || setenv("OPENBLAS_CORETYPE", better, 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("CHARRNN_BLAS_FROM");
}

static void print_version(void) {
    printf("charrnn %s\n", CRN_VERSION);
    const char *from = getenv("CHARRNN_BLAS_FROM");
    if (from && getenv("OPENBLAS_CORETYPE"))
        printf("OpenBLAS kernels: %s (chosen by charrnn: OpenBLAS had fallen back to %s on this CPU)\n",
               crn_blas_core(), from);
    else
        printf("OpenBLAS kernels: %s\n", crn_blas_core());
}

int main(int argc, char **argv) {
    reexec_with_better_blas(argv);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        if (!strcmp(cmd, "help") && argc > 2) {
            char *help_argv[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < CRN_ARRAY_LEN(commands); i++)
                if (!strcmp(argv[2], commands[i].name)) return commands[i].fn(2, help_argv);
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        print_version();
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < CRN_ARRAY_LEN(commands); i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    if (cmd[0] == '-')
        fprintf(stderr, "charrnn: unknown option '%s'\nTry 'charrnn --help'.\n", cmd);
    else
        fprintf(stderr, "charrnn: unknown command '%s'\nTry 'charrnn --help' for the list of commands.\n", cmd);
    return CLI_EXIT_USAGE;
}

void cli_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "charrnn %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, int err) {
    const char *msg = crn_error_message();
    cli_error(cmd, "%s", msg && *msg ? msg : crn_strerror(err));
    return err == CRN_EINTR ? CLI_EXIT_INTERRUPTED : CLI_EXIT_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "charrnn %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'charrnn %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_bad_option(const char *cmd) {
    fprintf(stderr, "Try 'charrnn %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE) {
        cli_usage_error(cmd, "%s: '%s' is not an integer", opt, s);
        return -1;
    }
    if (v < min || v > max) {
        cli_usage_error(cmd, "%s: %lld is out of range [%lld, %lld]", opt, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v)) {
        cli_usage_error(cmd, "%s: '%s' is not a number", opt, s);
        return -1;
    }
    if (v < min || v > max) {
        cli_usage_error(cmd, "%s: %g is out of range [%g, %g]", opt, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_duration(const char *cmd, const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mult = 1;
    if (end != s && *end && !end[1]) {
        switch (*end) {
        case 's': mult = 1; end++; break;
        case 'm': mult = 60; end++; break;
        case 'h': mult = 3600; end++; break;
        default: break;
        }
    }
    if (end == s || *end || errno == ERANGE || !isfinite(v)) {
        cli_usage_error(cmd, "%s: '%s' is not a duration (examples: 90s, 10m, 1.5h)", opt, s);
        return -1;
    }
    if (v <= 0) {
        cli_usage_error(cmd, "%s: the duration must be positive, got '%s'", opt, s);
        return -1;
    }
    *out = v * mult;
    return 0;
}

void cli_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}
