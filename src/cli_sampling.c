/* cli_sampling.c — the sampling options that `generate` and `repl` share. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "checkpoint.h"
#include "model.h"
#include "sampler.h"

int cli_sampling_option(const char *cmd, int c, const char *arg, crn_sample_settings *s, int *have_seed) {
    long long v;
    double d;
    switch (c) {
    case CLI_OPT_LENGTH:
        if (cli_parse_long(cmd, "--length", arg, 1, CRN_SAMPLE_MAX_LENGTH, &v) < 0) return -1;
        s->length = (uint32_t)v;
        break;
    case CLI_OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(arg, &end, 10);
        if (arg[0] < '0' || arg[0] > '9' || *end || errno == ERANGE) {
            cli_usage_error(cmd, "--seed: '%s' is not a non-negative integer", arg);
            return -1;
        }
        s->seed = u;
        *have_seed = 1;
        break;
    }
    case CLI_OPT_TEMP:
        if (cli_parse_double(cmd, "--temperature", arg, 0, CRN_SAMPLE_MAX_TEMPERATURE, &d) < 0) return -1;
        s->temperature = d;
        break;
    case CLI_OPT_TOPK:
        if (cli_parse_long(cmd, "--top-k", arg, 0, 1000000000, &v) < 0) return -1;
        s->top_k = (uint32_t)v;
        break;
    case CLI_OPT_TOPP:
        if (cli_parse_double(cmd, "--top-p", arg, 0, 1, &d) < 0) return -1;
        if (!(d > 0)) {
            cli_usage_error(cmd, "--top-p: must be greater than 0 (1 = off), got '%s'", arg);
            return -1;
        }
        s->top_p = d;
        break;
    case CLI_OPT_BEAM:
        if (cli_parse_long(cmd, "--beam", arg, 0, CRN_SAMPLE_MAX_BEAM, &v) < 0) return -1;
        s->beam = (uint32_t)v;
        break;
    case CLI_OPT_STOP:
        if (crn_sample_settings_add_stop(s, arg) < 0) {
            cli_usage_error(cmd, "--stop: %s", crn_error_message());
            return -1;
        }
        break;
    case CLI_OPT_KEEP_STOP: s->keep_stop = 1; break;
    case CLI_OPT_MATCH:
        if (crn_sample_settings_set_match(s, arg) < 0) {
            cli_usage_error(cmd, "--match: %s", crn_error_message());
            return -1;
        }
        break;
    case CLI_OPT_STRICT: s->strict = 1; break;
    default:
        return 0;
    }
    return 1;
}

int cli_load_sampling_model(const char *cmd, const char *path, int exact, crn_checkpoint **out) {
    int err = crn_checkpoint_load(out, path);
    if (err >= 0 && !exact) err = crn_model_step_f16((*out)->model, 1);
    if (err < 0) {
        crn_checkpoint_destroy(*out);
        *out = NULL;
        return cli_fail(cmd, err);
    }
    return 0;
}

/* A seed from the clock and the pid (--seed not given), short enough to retype. */
static uint64_t time_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    /* splitmix finaliser: nearby times give unrelated seeds */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (x ^ (x >> 31)) % 1000000000000ull; /* short enough to retype */
}

int cli_sampling_finish(const char *cmd, crn_sample_settings *s, int have_seed) {
    if (crn_sample_settings_check(s) < 0) {
        cli_usage_error(cmd, "%s", crn_error_message());
        return -1;
    }
    if (!have_seed) s->seed = time_seed();
    return 0;
}
