/* cli_generate.c — `charrnn generate MODEL [options]`: load a model, prime it
 * with a prompt, stream samples to stdout (or print JSON objects). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "kernels.h"
#include "cli_repl_cmd.h"
#include "sampler.h"

static const char *CMD = "generate";

static void usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn generate MODEL [options]\n"
            "\n"
            "Generate text from a trained model. Output streams to stdout as it is\n"
            "generated (valid UTF-8 at every flush; jamo models recomposed into syllables).\n"
            "Only the continuation is printed (--echo prints the prompt first); each sample\n"
            "ends with a line break if its text does not. Jamo models: when the prompt ends\n"
            "in a syllable the model completes (가 + final ㄴ), the continuation starts with\n"
            "the completed syllable (간), which replaces the prompt's last character.\n"
            "\n"
            "Prompt:\n"
            "  --prompt TEXT        text to prime the model with (default: none, the text\n"
            "                       starts as after a line break)\n"
            "  --prompt-file F      read the prompt from a file\n"
            "  --strict             refuse a prompt with characters the model has never seen\n"
            "                       (default: report them once and feed them as <unk>)\n"
            "  --echo               print the prompt before the continuation\n"
            "\n"
            "Sampling (applied in this order at every step):\n"
            "  --temperature T      1. divide the logits by T, in [0, 100] (default 1.0;\n"
            "                          0, or below 1e-6 = greedy: always the most likely token)\n"
            "  --top-k K            2. keep the K most likely tokens (default 0 = off)\n"
            "  --top-p P            3. keep the smallest most-likely-first set whose\n"
            "                          probability reaches P, in (0, 1] (default 1.0 = off)\n"
            "                       4. draw from what is left, renormalised, with the seeded RNG\n"
            "  --seed N             random seed (default: time-based; shown by --verbose);\n"
            "                       the same seed gives the same output, byte for byte\n"
            "  --beam W             beam search with W beams, [0, %u] (default 0 = off): the\n"
            "                       single most likely continuation (length-normalised\n"
            "                       log-probability); ignores temperature/top-k/top-p, and\n"
            "                       prints at the end instead of streaming\n"
            "\n"
            "Length and stopping:\n"
            "  --length N           characters to generate per sample (NFC code points, as\n"
            "                       read, in every unit; with --beam: tokens), [1, %u]\n"
            "                       (default 500); a Hangul syllable is never cut\n"
            "  --num N              independent samples (default 1)\n"
            "  --stop REGEX         stop as soon as the generated text contains a match (PCRE2,\n"
            "                       UTF+UCP); the match is not printed; repeatable (up to %d).\n"
            "                       '$' is the end of the text so far: use '\\n' for a line end\n"
            "  --keep-stop          print the --stop match too\n"
            "  --match REGEX        constrain the text to match REGEX in full: tokens that\n"
            "                       would make a match impossible get probability zero, and\n"
            "                       generation ends when the text is a complete match (or\n"
            "                       when the model's choice would end an extensible one).\n"
            "                       Example: --match '[가-힣 ]{10,40}[.?!]' gives one Hangul\n"
            "                       sentence. Not with --beam.\n"
            "\n"
            "Output:\n"
            "  --json               one JSON object per sample (no streaming): prompt, text,\n"
            "                       tokens, mean_logprob (nats per token under the model),\n"
            "                       stop_reason (length|stop|match|no_continuation|interrupted), seed,\n"
            "                       replaced (bytes at the prompt's end the text replaces, jamo)\n"
            "  --show PAGE.html     also write the prompt and the text on a 'charrnn show' page,\n"
            "                       each character coloured by the model's probability of it\n"
            "                       (temperature 1); one sample only (--num 1)\n"
            "  --threads N          BLAS threads (default 1: best for batch-1 sampling)\n"
            "  --exact              sample with the float32 weights (default: a binary16\n"
            "                       copy, twice as fast, probabilities within 2e-3)\n"
            "  -v, --verbose        report the seed, settings and speed on stderr\n"
            "  -h, --help           show this help\n"
            "\n"
            "Ctrl-C stops generation (exit status 130). Exit status 2 means a bad option value.\n"
            "\n"
            "Examples:\n"
            "  charrnn generate model.crn --prompt 'ROMEO:' --length 300 --temperature 0.8\n"
            "  charrnn generate ko.crn --prompt '오늘은' --match '[가-힣 ]{10,40}[.?!]' --num 3\n"
            "  charrnn generate model.crn --stop '\\n\\n' --top-p 0.9 --seed 7\n",
            CRN_SAMPLE_MAX_BEAM, CRN_SAMPLE_MAX_LENGTH, CRN_MAX_STOP);
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* --echo with a jamo prompt ending in an open syllable: the syllable is
 * withheld until the run shows whether its text restates it, completed. */
typedef struct echo_tail {
    crn_generator *g;
    const uint8_t *s;
    size_t n;
} echo_tail;

static void echo_tail_flush(echo_tail *e) {
    if (e->n && !crn_generator_replaced(e->g)) fwrite(e->s, 1, e->n, stdout);
    e->n = 0;
}

static int stream_emit(void *user, const uint8_t *s, size_t n) {
    echo_tail_flush(user);
    if (fwrite(s, 1, n, stdout) != n) return 1;
    fflush(stdout);
    return 0;
}

int cli_read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return crn_error_set(CRN_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    int err = 0;
    if (!buf) {
        err = crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= (64u << 20)) {
                err = crn_error_set(CRN_ERANGE, "%s: file larger than 64 MiB", path);
                goto done;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                err = crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) err = crn_error_set(CRN_EIO, "%s: read error", path);
done:
    fclose(f);
    if (err < 0) {
        free(buf);
        return err;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* What the sample loop needs besides the generator. */
typedef struct gen_run {
    long long num;              /* samples */
    int json, echo, verbose;
    const char *show_page;      /* --show PAGE.html or NULL */
    const char *model_path;
    crn_checkpoint *ck;         /* the model (for --show) */
} gen_run;

/* The prompt from --prompt-file or --prompt (neither: none) into a
 * malloc'ed buffer. @return 0 or a negative error. */
static int load_prompt(const char *prompt_file, const char *prompt_arg, uint8_t **prompt, size_t *prompt_len) {
    if (prompt_file) return cli_read_file(prompt_file, prompt, prompt_len);
    if (!prompt_arg) return 0;
    *prompt_len = strlen(prompt_arg);
    if (!(*prompt = malloc(*prompt_len + 1))) return crn_error_set(CRN_ENOMEM, "out of memory");
    memcpy(*prompt, prompt_arg, *prompt_len + 1);
    return 0;
}

/* The samples: reset, prime with the prompt, generate (streamed unless
 * --json), report, and with --show write the page. @return the exit status. */
static int run_samples(crn_generator *g, const crn_sample_settings *s, const uint8_t *prompt, size_t prompt_len,
                       const gen_run *o) {
    int rc, err;
    rc = CLI_EXIT_OK;
    for (long long i = 0; i < o->num && !interrupted; i++) {
        crn_generator_reset(g);
        crn_prime_info info;
        if ((err = crn_generator_prime(g, prompt, prompt_len, &info)) < 0) {
            rc = cli_fail(CMD, err);
            break;
        }
        if (i == 0 && info.n_unk > 0)
            fprintf(stderr,
                    "charrnn generate: the prompt has %zu character%s the model has never seen (%s); fed as <unk>"
                    " (--strict refuses them)\n",
                    info.n_unk, info.n_unk == 1 ? "" : "s", info.unknown);
        echo_tail tail = {g, prompt ? prompt + prompt_len - info.open_raw : NULL,
                          o->echo && !o->json ? info.open_raw : 0};
        if (o->echo && !o->json && prompt_len) {
            fwrite(prompt, 1, prompt_len - tail.n, stdout);
            fflush(stdout);
        }
        crn_gen_result res;
        double t0 = crn_now();
        err = crn_generator_run(g, o->json ? NULL : stream_emit, &tail, &res);
        double dt = crn_now() - t0;
        if (err >= 0) echo_tail_flush(&tail);
        if (err < 0) {
            if (!o->json) fputc('\n', stdout);
            rc = cli_fail(CMD, err);
            break;
        }
        if (o->json) {
            fputs("{\"prompt\": ", stdout);
            cli_json_string(stdout, (const char *)(prompt ? prompt : (const uint8_t *)""), prompt_len);
            fputs(", \"text\": ", stdout);
            cli_json_string(stdout, (const char *)res.text, res.text_len);
            printf(", \"tokens\": %zu, \"mean_logprob\": %.6f, \"stop_reason\": \"%s\", \"seed\": %llu, \"sample\": %lld,"
                   " \"replaced\": %zu}\n",
                   res.tokens, res.mean_logprob, crn_gen_stop_name(res.reason), (unsigned long long)s->seed, i,
                   res.replaced);
        } else if (res.text_len == 0 || res.text[res.text_len - 1] != '\n') {
            fputc('\n', stdout);
        }
        fflush(stdout);
        if (o->verbose)
            fprintf(stderr, "charrnn generate: sample %lld: %zu tokens in %.3f s (%.0f tokens/s), stop: %s, mean log-prob %.4f\n",
                    i + 1, res.tokens, dt, dt > 0 ? (double)res.tokens / dt : 0.0, crn_gen_stop_name(res.reason),
                    res.mean_logprob);
        else if (res.reason == CRN_GEN_STOP_NO_CONTINUATION && s->match)
            fprintf(stderr, "charrnn generate: sample %lld: no token can continue a match of '%s'\n", i + 1, s->match);
        else if (res.reason == CRN_GEN_STOP_NO_CONTINUATION)
            fprintf(stderr, "charrnn generate: sample %lld: stopped early: the jamo drawn do not compose into syllables\n", i + 1);
        if (ferror(stdout)) {
            rc = CLI_EXIT_ERROR;
            break;
        }
        if (o->show_page) {
            char note[2048];
            cli_sample_settings_describe(s, note, sizeof note);
            /* the prompt minus what the text restates (jamo), then the text */
            if ((rc = cli_show_generated(CMD, o->show_page, o->model_path, o->ck, prompt, prompt_len - res.replaced,
                                         res.text, res.text_len, note)) != CLI_EXIT_OK)
                break;
        }
    }
    return rc;
}

enum {
    OPT_PROMPT = 256, OPT_PROMPT_FILE, OPT_NUM, OPT_JSON, OPT_THREADS, OPT_ECHO, OPT_EXACT, OPT_SHOW,
};

int cli_generate(int argc, char **argv) {
    static const struct option opts[] = {
        {"prompt", required_argument, NULL, OPT_PROMPT},
        {"prompt-file", required_argument, NULL, OPT_PROMPT_FILE},
        {"num", required_argument, NULL, OPT_NUM},
        CLI_SAMPLING_OPTIONS,
        {"json", no_argument, NULL, OPT_JSON},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"exact", no_argument, NULL, OPT_EXACT},
        {"show", required_argument, NULL, OPT_SHOW},
        {"echo", no_argument, NULL, OPT_ECHO},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    const char *prompt_arg = NULL, *prompt_file = NULL, *model_path = NULL, *show_page = NULL;
    long long num = 1, threads = 1;
    int json = 0, verbose = 0, echo = 0, have_seed = 0, exact = 0;
    int rc = CLI_EXIT_USAGE;
    uint8_t *prompt = NULL;
    size_t prompt_len = 0;
    crn_checkpoint *ck = NULL;
    crn_generator *g = NULL;

    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            rc = CLI_EXIT_OK;
            goto done;
        case 'v': verbose = 1; break;
        case OPT_PROMPT: prompt_arg = optarg; break;
        case OPT_PROMPT_FILE: prompt_file = optarg; break;
        case OPT_NUM:
            if (cli_parse_long(CMD, "--num", optarg, 1, 1000000, &num) < 0) goto done;
            break;
        case CLI_OPT_LENGTH: case CLI_OPT_SEED: case CLI_OPT_TEMP: case CLI_OPT_TOPK: case CLI_OPT_TOPP:
        case CLI_OPT_BEAM: case CLI_OPT_STOP: case CLI_OPT_KEEP_STOP: case CLI_OPT_MATCH: case CLI_OPT_STRICT:
            if (cli_sampling_option(CMD, c, optarg, &s, &have_seed) < 0) goto done;
            break;
        case OPT_JSON: json = 1; break;
        case OPT_ECHO: echo = 1; break;
        case OPT_EXACT: exact = 1; break;
        case OPT_SHOW: show_page = optarg; break;
        case OPT_THREADS:
            if (cli_parse_long(CMD, "--threads", optarg, 1, 1024, &threads) < 0) goto done;
            break;
        default:
            rc = cli_bad_option(CMD);
            goto done;
        }
    }
    if (optind >= argc) {
        cli_usage_error(CMD, "missing MODEL");
        goto done;
    }
    if (optind + 1 < argc) {
        cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
        goto done;
    }
    model_path = argv[optind];
    if (prompt_arg && prompt_file) {
        cli_usage_error(CMD, "--prompt and --prompt-file exclude each other");
        goto done;
    }
    if (show_page && num > 1) {
        cli_usage_error(CMD, "--show writes one sample's page: use --num 1");
        goto done;
    }
    if (cli_sampling_finish(CMD, &s, have_seed) < 0) goto done;

    rc = CLI_EXIT_ERROR;
    int err;
    if ((err = load_prompt(prompt_file, prompt_arg, &prompt, &prompt_len)) < 0) {
        rc = cli_fail(CMD, err);
        goto done;
    }
    crn_set_threads((int)threads);
    if (cli_load_sampling_model(CMD, model_path, exact, &ck) != 0) {
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    if ((err = crn_generator_create(&g, ck->model, ck->vocab, &s)) < 0) {
        rc = cli_fail(CMD, err);
        goto done;
    }
    if (verbose) {
        char desc[2048];
        cli_sample_settings_describe(&s, desc, sizeof desc);
        fprintf(stderr, "charrnn generate: seed %llu\n%s\n", (unsigned long long)s.seed, desc);
    }
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    crn_generator_set_cancel(g, &interrupted);

    gen_run run = {num, json, echo, verbose, show_page, model_path, ck};
    rc = run_samples(g, &s, prompt, prompt_len, &run);
    sigaction(SIGINT, &old_sa, NULL);
    if (interrupted && rc == CLI_EXIT_OK) {
        fprintf(stderr, "charrnn generate: interrupted\n");
        rc = CLI_EXIT_INTERRUPTED;
    }
done:
    crn_generator_destroy(g);
    crn_checkpoint_destroy(ck);
    free(prompt);
    crn_sample_settings_free(&s);
    return rc;
}
