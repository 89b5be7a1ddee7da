/* cli_repl_cmd.c — the REPL's command language (cli_repl_cmd.h): parse one
 * input line into a prompt or a change of the sampling settings, and the
 * settings as text (:show, generate --verbose). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_repl_cmd.h"
#include "common.h"

static void msgf(char *msg, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void msgf(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    if (rc < 0) msg[0] = 0;
}

void cli_sample_settings_describe(const crn_sample_settings *s, char *msg, size_t cap) {
    size_t at = 0;
    int rc = snprintf(msg, cap,
                      "temperature %g, top-k %u%s, top-p %g, length %u, seed %llu, beam %u%s, keep state %s, keep stop %s",
                      s->temperature, s->top_k, s->top_k ? "" : " (off)", s->top_p, s->length,
                      (unsigned long long)s->seed, s->beam, s->beam >= 2 ? "" : " (off: sampling)",
                      s->keep_state ? "on" : "off", s->keep_stop ? "on" : "off");
    if (rc < 0 || (size_t)rc >= cap) return;
    at = (size_t)rc;
    for (uint32_t i = 0; i < s->n_stop && at < cap; i++) {
        rc = snprintf(msg + at, cap - at, "\nstop '%s'", s->stop[i]);
        if (rc < 0) return;
        at += (size_t)rc;
    }
    if (at < cap) (void)snprintf(msg + at, cap - at, "\nmatch %s%s%s", s->match ? "'" : "",
                                 s->match ? s->match : "(none)", s->match ? "'" : "");
}

static const char repl_help[] =
    "Type a line to prime the model with it and see the continuation.\n"
    "Commands:\n"
    "  :temp T       temperature in [0, 100] (0, or below 1e-6 = always the most likely token)\n"
    "  :topk K       sample among the K most likely tokens (0 = off)\n"
    "  :topp P       nucleus sampling: smallest set with probability >= P, in (0, 1]\n"
    "  :len N        characters to generate per line, [1, 1000000]\n"
    "  :seed N       reseed the random generator\n"
    "  :beam W       beam search with W beams (0 = off, sampling)\n"
    "  :stop REGEX   add a stop pattern (':stop' alone clears them)\n"
    "  :match REGEX  constrain the output to match REGEX (':match' alone clears it)\n"
    "  :keep on|off  carry the hidden state across lines (a running conversation)\n"
    "  :reset        clear the hidden state\n"
    "  :show         show the settings\n"
    "  :help         this help\n"
    "  :quit         leave (Ctrl-D too); Ctrl-C stops a generation\n"
    "A line starting with '::' is sent as text starting with ':'.";

static int parse_u64(const char *a, unsigned long long max, unsigned long long *out) {
    if (*a < '0' || *a > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(a, &end, 10);
    if (*end || errno == ERANGE || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_dbl(const char *a, double *out) {
    char *end;
    errno = 0;
    double v = strtod(a, &end);
    if (!*a || *end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* The numeric settings (:temp :topk :topp :len :seed :beam). @return the
 * action, or -1 if cmd is none of them. */
static int number_command(crn_sample_settings *s, const char *cmd, const char *arg, int has_arg, char *msg, size_t cap) {
    double d;
    unsigned long long u;
    if (!strcmp(cmd, "temp") || !strcmp(cmd, "temperature")) {
        if (!has_arg || parse_dbl(arg, &d) < 0 || !(d >= 0 && d <= CRN_SAMPLE_MAX_TEMPERATURE)) {
            msgf(msg, cap, ":temp wants a number in [0, %g], got '%s'", CRN_SAMPLE_MAX_TEMPERATURE, arg);
            return CLI_REPL_ERROR;
        }
        s->temperature = d;
        msgf(msg, cap, "temperature %g%s", d, d < CRN_SAMPLE_MIN_TEMPERATURE ? " (argmax)" : "");
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "topk")) {
        if (!has_arg || parse_u64(arg, 1000000000ull, &u) < 0) {
            msgf(msg, cap, ":topk wants an integer in [0, 1000000000] (0 = off), got '%s'", arg);
            return CLI_REPL_ERROR;
        }
        s->top_k = (uint32_t)u;
        msgf(msg, cap, "top-k %u%s", s->top_k, u ? "" : " (off)");
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "topp")) {
        if (!has_arg || parse_dbl(arg, &d) < 0 || !(d > 0 && d <= 1)) {
            msgf(msg, cap, ":topp wants a number in (0, 1], got '%s'", arg);
            return CLI_REPL_ERROR;
        }
        s->top_p = d;
        msgf(msg, cap, "top-p %g%s", d, d == 1 ? " (off)" : "");
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "len") || !strcmp(cmd, "length")) {
        if (!has_arg || parse_u64(arg, CRN_SAMPLE_MAX_LENGTH, &u) < 0 || u < 1 ||
            (s->beam >= 2 && u * s->beam > 10000000ull)) {
            msgf(msg, cap, ":len wants an integer in [1, %u], got '%s'", CRN_SAMPLE_MAX_LENGTH, arg);
            return CLI_REPL_ERROR;
        }
        s->length = (uint32_t)u;
        msgf(msg, cap, "length %u", s->length);
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "seed")) {
        if (!has_arg || parse_u64(arg, UINT64_MAX, &u) < 0) {
            msgf(msg, cap, ":seed wants a non-negative integer, got '%s'", arg);
            return CLI_REPL_ERROR;
        }
        s->seed = u;
        msgf(msg, cap, "seed %llu", u);
        return CLI_REPL_SEED;
    }
    if (!strcmp(cmd, "beam")) {
        if (!has_arg || parse_u64(arg, CRN_SAMPLE_MAX_BEAM, &u) < 0 || (u >= 2 && u * s->length > 10000000ull)) {
            msgf(msg, cap, ":beam wants an integer in [0, %u] (0 or 1 = off), got '%s'", CRN_SAMPLE_MAX_BEAM, arg);
            return CLI_REPL_ERROR;
        }
        if (u >= 2 && s->match) {
            msgf(msg, cap, ":beam cannot be combined with :match (clear it with ':match')");
            return CLI_REPL_ERROR;
        }
        s->beam = (uint32_t)u;
        msgf(msg, cap, "beam %u%s", s->beam, u >= 2 ? "" : " (off: sampling)");
        return CLI_REPL_OK;
    }
    return -1;
}

/* The patterns and the rest (:stop :match :keep :reset :show :help :quit).
 * @return the action, or -1 if cmd is none of them. */
static int other_command(crn_sample_settings *s, const char *cmd, const char *arg, int has_arg, char *msg, size_t cap) {
    if (!strcmp(cmd, "stop")) {
        if (!has_arg) {
            crn_sample_settings_clear_stops(s);
            msgf(msg, cap, "stop patterns cleared");
            return CLI_REPL_OK;
        }
        if (crn_sample_settings_add_stop(s, arg) < 0) {
            msgf(msg, cap, ":stop: %s", crn_error_message());
            return CLI_REPL_ERROR;
        }
        msgf(msg, cap, "stop pattern '%s' added (%u in all)", arg, s->n_stop);
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "match")) {
        if (has_arg && s->beam >= 2) {
            msgf(msg, cap, ":match cannot be combined with beam search (':beam 0' first)");
            return CLI_REPL_ERROR;
        }
        if (crn_sample_settings_set_match(s, has_arg ? arg : NULL) < 0) {
            msgf(msg, cap, ":match: %s", crn_error_message());
            return CLI_REPL_ERROR;
        }
        if (has_arg) msgf(msg, cap, "match '%s'", arg);
        else msgf(msg, cap, "match cleared");
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "keep")) {
        if (!strcmp(arg, "on")) s->keep_state = 1;
        else if (!strcmp(arg, "off")) s->keep_state = 0;
        else {
            msgf(msg, cap, ":keep wants 'on' or 'off', got '%s'", arg);
            return CLI_REPL_ERROR;
        }
        msgf(msg, cap, "keep state %s", s->keep_state ? "on" : "off");
        return CLI_REPL_OK;
    }
    if (!strcmp(cmd, "reset") || !strcmp(cmd, "show") || !strcmp(cmd, "help") || !strcmp(cmd, "quit") ||
        !strcmp(cmd, "q") || !strcmp(cmd, "exit")) {
        if (has_arg) {
            msgf(msg, cap, ":%s takes no argument", cmd);
            return CLI_REPL_ERROR;
        }
        if (!strcmp(cmd, "reset")) {
            msgf(msg, cap, "hidden state cleared");
            return CLI_REPL_RESET;
        }
        if (!strcmp(cmd, "show")) {
            cli_sample_settings_describe(s, msg, cap);
            return CLI_REPL_SHOW;
        }
        if (!strcmp(cmd, "help")) {
            msgf(msg, cap, "%s", repl_help);
            return CLI_REPL_HELP;
        }
        return CLI_REPL_QUIT;
    }
    return -1;
}

int cli_repl_command(crn_sample_settings *s, const char *line, size_t n, const char **text, size_t *text_len,
                     char *msg, size_t cap) {
    msg[0] = 0;
    *text = line;
    *text_len = n;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    *text_len = n;
    if (n == 0 || line[0] != ':') return CLI_REPL_TEXT;
    if (n >= 2 && line[1] == ':') {
        *text = line + 1;
        *text_len = n - 1;
        return CLI_REPL_TEXT;
    }
    /* command word and argument (leading blanks skipped, kept verbatim after) */
    char cmd[16], arg[1024];
    size_t i = 1, c = 0;
    while (i < n && line[i] != ' ' && line[i] != '\t') {
        if (c + 1 < sizeof cmd) cmd[c++] = line[i];
        else c = sizeof cmd; /* too long: cannot be a command */
        i++;
    }
    if (c >= sizeof cmd) c = sizeof cmd - 1, cmd[0] = '?';
    cmd[c] = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t alen = n - i;
    if (alen >= sizeof arg) {
        msgf(msg, cap, "argument too long (%zu bytes, at most %zu)", alen, sizeof arg - 1);
        return CLI_REPL_ERROR;
    }
    if (memchr(line + i, 0, alen)) {
        msgf(msg, cap, "the argument contains a NUL byte");
        return CLI_REPL_ERROR;
    }
    memcpy(arg, line + i, alen);
    arg[alen] = 0;
    /* the validity of UTF-8 in patterns is left to PCRE2, which reports it */
    int has_arg = alen > 0;
    int act = number_command(s, cmd, arg, has_arg, msg, cap);
    if (act < 0) act = other_command(s, cmd, arg, has_arg, msg, cap);
    if (act >= 0) return act;
    if (!cmd[0]) msgf(msg, cap, "a command name must follow ':' (try :help)");
    else msgf(msg, cap, "unknown command ':%s' (try :help)", cmd);
    return CLI_REPL_ERROR;
}
