/* cli_show.c — `charrnn show MODEL TEXT -o page.html`: the page of what a
 * model sees in a text (show.h), and the page of `generate --show`. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "kernels.h"
#include "show.h"

static const char *CMD = "show";

static void usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn show MODEL TEXT -o PAGE.html [options]\n"
            "\n"
            "Write one self-contained HTML page (inline CSS and JS, no network) showing\n"
            "what the model sees in TEXT: every character coloured by its surprise (bits =\n"
            "-log2 p given the text before it; the sum equals 'charrnn eval --batch 1'),\n"
            "with a legend and the text's bits per character. Hovering over or tapping a\n"
            "character shows the candidates the model weighed for it; PAGE.html#sel=N opens\n"
            "with character N selected. A panel per neuron draws the text coloured by that\n"
            "unit's activation (blue negative, red positive).\n"
            "\n"
            "Characters are grapheme clusters as written, whatever the model's unit: a jamo\n"
            "model's jamo are summed per syllable, a code point model's tokens per cluster\n"
            "(combining marks, emoji sequences). Invalid UTF-8 is replaced (U+FFFD).\n"
            "\n"
            "Options:\n"
            "  -o, --output PAGE    the HTML file to write ('-' = stdout; required)\n"
            "      --top K          candidates shown per character, [1, %u] (default %u)\n"
            "      --neurons SPEC   units to draw: LAYER:UNIT,... (0-based, e.g. 0:12,1:5),\n"
            "                       'auto' (default) or 'none'. auto picks, for each text\n"
            "                       feature (inside quotes, inside brackets, position in the\n"
            "                       line, start of a line, Hangul vs Latin, inside a word),\n"
            "                       the unit most correlated with it, and labels it with the\n"
            "                       feature and the correlation r\n"
            "      --cell-state     LSTM: draw the cell state c instead of the hidden state h\n"
            "      --max-chars N    show (and score) only the first N characters, [1, %u]\n"
            "                       (default %u; the page says when the text was cut)\n"
            "      --csv FILE       also write a CSV: one row per character with its bits,\n"
            "                       p, the top-K candidates and every unit's activation\n"
            "      --title TEXT     page title (default: the TEXT file's name)\n"
            "      --threads N      threads, 0 = all cores (default 1)\n"
            "  -q, --quiet          no progress line on stderr\n"
            "  -h, --help           show this help\n"
            "\n"
            "Example:\n"
            "  charrnn show model.crn text.txt -o page.html --neurons auto --max-chars 5000\n",
            CRN_SHOW_MAX_TOP, CRN_SHOW_DEFAULT_TOP, CRN_SHOW_MAX_CHARS, CRN_SHOW_DEFAULT_MAX_CHARS);
}

/* Write to path ('-' = stdout) with writer; errors printed. */
typedef int (*write_fn)(FILE *f, const char *name, const crn_show *s, const crn_vocab *v, const void *ud);

static int write_html_fn(FILE *f, const char *name, const crn_show *s, const crn_vocab *v, const void *ud) {
    return crn_show_write_html(f, name, s, v, ud);
}
static int write_csv_fn(FILE *f, const char *name, const crn_show *s, const crn_vocab *v, const void *ud) {
    (void)ud;
    return crn_show_write_csv(f, name, s, v);
}

static int write_out(const char *cmd, const char *path, write_fn fn, const crn_show *s, const crn_vocab *v,
                     const void *ud) {
    int to_stdout = !strcmp(path, "-");
    FILE *f = to_stdout ? stdout : fopen(path, "wb");
    if (!f) {
        cli_error(cmd, "%s: cannot create: %s", path, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    int rc = fn(f, to_stdout ? "stdout" : path, s, v, ud);
    if (!to_stdout && fclose(f) != 0 && rc == 0) rc = crn_error_set(CRN_EIO, "%s: write error", path);
    return rc < 0 ? cli_fail(cmd, rc) : CLI_EXIT_OK;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

enum { O_TOP = 256, O_NEURONS, O_CELL, O_MAX, O_CSV, O_TITLE, O_THREADS };

typedef struct show_args {
    const char *out, *csv, *title, *neurons;
    crn_show_opts o;
    crn_show_unit units[CRN_SHOW_MAX_NEURONS];
    long long threads;
    int quiet;
} show_args;

/* @return -1 to go on, else the exit status. */
static int parse(show_args *a, int argc, char **argv) {
    static const struct option lo[] = {
        {"output", required_argument, 0, 'o'}, {"top", required_argument, 0, O_TOP},
        {"neurons", required_argument, 0, O_NEURONS}, {"cell-state", no_argument, 0, O_CELL},
        {"max-chars", required_argument, 0, O_MAX}, {"csv", required_argument, 0, O_CSV},
        {"title", required_argument, 0, O_TITLE}, {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:q", lo, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'o': a->out = optarg; break;
        case 'q': a->quiet = 1; break;
        case O_TOP:
            if (cli_parse_long(CMD, "--top", optarg, 1, CRN_SHOW_MAX_TOP, &v)) return CLI_EXIT_USAGE;
            a->o.top_k = (uint32_t)v;
            break;
        case O_NEURONS: a->neurons = optarg; break;
        case O_CELL: a->o.cell_state = 1; break;
        case O_MAX:
            if (cli_parse_long(CMD, "--max-chars", optarg, 1, CRN_SHOW_MAX_CHARS, &v)) return CLI_EXIT_USAGE;
            a->o.max_chars = (size_t)v;
            break;
        case O_CSV: a->csv = optarg; break;
        case O_TITLE: a->title = optarg; break;
        case O_THREADS:
            if (cli_parse_long(CMD, "--threads", optarg, 0, 1024, &a->threads)) return CLI_EXIT_USAGE;
            break;
        default: return cli_bad_option(CMD);
        }
    }
    if (argc - optind < 2) return cli_usage_error(CMD, "expected MODEL and TEXT");
    if (argc - optind > 2) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 2]);
    if (!a->out) return cli_usage_error(CMD, "missing -o PAGE.html");
    if (!strcmp(a->neurons, "auto")) {
        a->o.auto_neurons = 1;
    } else if (strcmp(a->neurons, "none")) {
        int n = crn_show_parse_units(a->units, CRN_SHOW_MAX_NEURONS, a->neurons);
        if (n < 0) return cli_usage_error(CMD, "--neurons: %s", crn_error_message());
        a->o.units = a->units;
        a->o.n_units = (size_t)n;
    }
    return -1;
}

static void progress(void *ud, size_t done, size_t total) {
    (void)ud;
    fprintf(stderr, "\rcharrnn show: scored %zu of %zu tokens (%.0f%%)%s", done, total, 100.0 * (double)done / (double)total,
            done == total ? "\n" : "");
}

static void report(const crn_show *s, const char *out) {
    double bpc = crn_show_bits_per_char(s);
    fprintf(stderr, "charrnn show: %zu characters (%zu tokens), %.4f bits/char -> %s\n", s->n_chars, s->n_tokens,
            bpc, out);
    if (s->total_chars > s->n_chars)
        fprintf(stderr, "charrnn show: the text has %zu characters; showing the first %zu (--max-chars)\n",
                s->total_chars, s->n_chars);
    for (size_t u = 0; u < s->n_units; u++)
        fprintf(stderr, "  neuron %u:%u  %-9s r = %+.3f\n", s->units[u].layer, s->units[u].index,
                crn_show_feature_name(s->units[u].feature), s->units[u].corr);
}

int cli_show(int argc, char **argv) {
    show_args a;
    memset(&a, 0, sizeof a);
    crn_show_opts_default(&a.o);
    a.neurons = "auto";
    a.threads = 1;
    int st = parse(&a, argc, argv);
    if (st >= 0) return st;
    const char *mpath = argv[optind], *tpath = argv[optind + 1];
    crn_checkpoint *ck = NULL;
    crn_show *s = NULL;
    uint8_t *text = NULL;
    size_t n = 0;
    int rc;
    st = CLI_EXIT_ERROR;
    if ((rc = crn_checkpoint_load(&ck, mpath)) < 0) return cli_fail(CMD, rc);
    if ((rc = cli_read_file(tpath, &text, &n)) < 0) {
        st = cli_fail(CMD, rc);
        goto done;
    }
    crn_set_threads((int)a.threads);
    if (!a.quiet && isatty(STDERR_FILENO)) a.o.progress = progress;
    else if (!a.quiet) fprintf(stderr, "charrnn show: scoring %s ...\n", tpath);
    if ((rc = crn_show_run(&s, ck->model, ck->vocab, text, n, &a.o)) < 0) {
        crn_error_prefix(rc, "%s", tpath);
        st = cli_fail(CMD, rc);
        goto done;
    }
    crn_show_page pg = {CRN_SHOW_SURPRISE, a.title ? a.title : base_name(tpath), base_name(mpath), NULL};
    if ((st = write_out(CMD, a.out, write_html_fn, s, ck->vocab, &pg)) != CLI_EXIT_OK) goto done;
    if (a.csv && (st = write_out(CMD, a.csv, write_csv_fn, s, ck->vocab, NULL)) != CLI_EXIT_OK) goto done;
    if (!a.quiet) report(s, a.out);
done:
    crn_show_destroy(s);
    free(text);
    crn_checkpoint_destroy(ck);
    return st;
}

int cli_show_generated(const char *cmd, const char *page, const char *model_path, crn_checkpoint *ck,
                       const uint8_t *prompt, size_t prompt_len, const uint8_t *text, size_t text_len,
                       const char *note) {
    crn_show_opts o;
    crn_show_opts_default(&o);
    o.max_chars = CRN_SHOW_MAX_CHARS;
    o.auto_neurons = 1;
    o.prefix = prompt;
    o.prefix_len = prompt_len;
    /* an empty prompt: the generator starts as after a line break (sampler.h) */
    if (!prompt_len && crn_vocab_lookup(ck->vocab, (const uint8_t *)"\n", 1) != CRN_UNK) {
        o.prefix = (const uint8_t *)"\n";
        o.prefix_len = 1;
    }
    crn_show *s = NULL;
    int rc = crn_show_run(&s, ck->model, ck->vocab, text, text_len, &o);
    if (rc < 0) return cli_fail(cmd, rc);
    crn_show_page pg = {CRN_SHOW_GENERATED, "generated text", base_name(model_path), note};
    int st = write_out(cmd, page, write_html_fn, s, ck->vocab, &pg);
    crn_show_destroy(s);
    return st;
}
