/* cli_vocab.c — `charrnn vocab CORPUS`: token statistics of a text file as
 * the training pipeline sees it (same cleaning, normalisation and unit), as
 * text or one JSON object. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "corpus.h"

#define CMD "vocab"
#define DEFAULT_TOP 20

static void usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn vocab CORPUS [options]\n"
            "\n"
            "Token statistics of a UTF-8 text file, after the same cleaning and\n"
            "normalisation as training: bytes, characters, tokens, distinct tokens,\n"
            "invalid sequences, dropped lines, and the most frequent tokens.\n"
            "\n"
            "Options:\n"
            "  --unit U            token unit: codepoint, grapheme or jamo (default: codepoint)\n"
            "  --normalize N       nfc, nfkc or none (default: nfc)\n"
            "  --invalid P         invalid UTF-8: error, replace (U+FFFD) or skip (default: error)\n"
            "  --min-count N       tokens seen fewer than N times would map to <unk>;\n"
            "                      reports the vocabulary size that gives (default: 1)\n"
            "  --keep REGEX        keep only lines matching REGEX (repeatable: any of them)\n"
            "  --drop REGEX        drop lines matching REGEX (repeatable; after --keep)\n"
            "  --replace RE=TEXT   replace every match of RE by TEXT ($1, ${name}; repeatable,\n"
            "                      applied in order after --keep/--drop; '\\=' is a literal '=')\n"
            "  --top N             list the N most frequent tokens (default: %d; 0 = none)\n"
            "  --json              print one JSON object instead of text\n"
            "  -h, --help          show this help\n"
            "\n"
            "Regexes are PCRE2 with UTF and Unicode properties; they see normalised lines\n"
            "without the newline (or CR LF). Statistics cover the whole file (no\n"
            "validation split).\n",
            DEFAULT_TOP);
}

/* Visible form of a token for the text report: controls and blanks escaped. */
static void show_token(FILE *f, const uint8_t *tok, size_t n) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = crn_utf8_decode(tok + i, n - i, &cp);
        if (k <= 0) {
            fprintf(f, "\\x%02X", tok[i]);
            i++;
            continue;
        }
        switch (cp) {
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case ' ': fputs("\xE2\x90\xA0", f); break; /* ␠ */
        default:
            if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0xA0 || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) ||
                (cp >= 0x2028 && cp <= 0x202F) || cp == 0x3000 || cp == 0xFEFF)
                fprintf(f, "<U+%04X>", (unsigned)cp);
            else
                fwrite(tok + i, 1, (size_t)k, f);
        }
        i += (size_t)k;
    }
}

static void show_codepoints(FILE *f, const uint8_t *tok, size_t n) {
    int first = 1;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = crn_utf8_decode(tok + i, n - i, &cp);
        if (k <= 0) break;
        fprintf(f, "%sU+%04X", first ? "" : " ", (unsigned)cp);
        first = 0;
        i += (size_t)k;
    }
}

typedef struct ranked {
    uint32_t id;
    uint64_t freq;
} ranked;

static int by_freq(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->freq != y->freq) return x->freq < y->freq ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

enum { OPT_UNIT = 256, OPT_NORM, OPT_INVALID, OPT_MIN_COUNT, OPT_KEEP, OPT_DROP, OPT_REPLACE, OPT_TOP, OPT_JSON };

/* The tokens (ids 1..) most frequent first; *kept of them reach min_count,
 * the others add up to *rare occurrences. NULL if out of memory. */
static ranked *rank_tokens(const crn_vocab *v, long long min_count, uint64_t *kept, uint64_t *rare) {
    uint32_t V = crn_vocab_size(v);
    size_t distinct = V - 1;
    ranked *rk = malloc((distinct + 1) * sizeof *rk);
    if (!rk) return NULL;
    for (uint32_t id = 1; id < V; id++) {
        uint64_t f = crn_vocab_freq(v, id);
        rk[id - 1] = (ranked){id, f};
        if (f >= (uint64_t)min_count) (*kept)++;
        else *rare += f;
    }
    qsort(rk, distinct, sizeof *rk, by_freq);
    return rk;
}

/* What `vocab` found, for the two output formats. */
typedef struct vocab_stats {
    const char *path;
    const crn_corpus *c;
    const crn_corpus_opts *o;
    size_t distinct, show;     /* distinct tokens; how many of the most frequent to list */
    long long min_count;
    uint64_t kept, rare;       /* tokens kept with min_count; occurrences that would be <unk> */
    const ranked *rk;          /* tokens, most frequent first */
} vocab_stats;

static void print_json(const vocab_stats *v) {
    printf("{\"file\": ");
    cli_json_string(stdout, v->path, strlen(v->path));
    printf(", \"bytes\": %llu, \"bom\": %s, \"unit\": \"%s\", \"normalize\": \"%s\", \"invalid_policy\": \"%s\"",
           (unsigned long long)v->c->n_bytes, v->c->had_bom ? "true" : "false", crn_unit_name(v->o->unit),
           crn_norm_name(v->o->norm), crn_invalid_name(v->o->invalid));
    printf(", \"chars\": %llu, \"tokens\": %zu, \"distinct\": %zu, \"invalid\": %llu, \"lines_dropped\": %llu",
           (unsigned long long)v->c->n_chars, v->c->n_tokens, v->distinct, (unsigned long long)v->c->n_invalid,
           (unsigned long long)v->c->n_lines_dropped);
    printf(", \"min_count\": %lld, \"vocab_size\": %llu, \"unk_tokens\": %llu, \"top\": [", v->min_count,
           (unsigned long long)(v->kept + 1), (unsigned long long)v->rare);
    for (size_t i = 0; i < v->show; i++) {
        size_t tl;
        const uint8_t *tok = crn_vocab_token(v->c->vocab, v->rk[i].id, &tl);
        printf("%s{\"token\": ", i ? ", " : "");
        cli_json_string(stdout, (const char *)tok, tl);
        printf(", \"count\": %llu}", (unsigned long long)v->rk[i].freq);
    }
    printf("]}\n");
}

static void print_text(const vocab_stats *v) {
    char b[32];
    printf("file:               %s\n", v->path);
    printf("bytes:              %s\n", crn_fmt_count(b, v->c->n_bytes));
    printf("BOM:                %s\n", v->c->had_bom ? "yes (UTF-8 byte order mark, dropped)" : "no");
    printf("unit:               %s\n", crn_unit_name(v->o->unit));
    printf("normalize:          %s\n", crn_norm_name(v->o->norm));
    printf("characters:         %s (code points after cleaning)\n", crn_fmt_count(b, v->c->n_chars));
    printf("tokens:             %s\n", crn_fmt_count(b, v->c->n_tokens));
    printf("distinct tokens:    %s\n", crn_fmt_count(b, v->distinct));
    printf("invalid sequences:  %s (--invalid %s)\n", crn_fmt_count(b, v->c->n_invalid), crn_invalid_name(v->o->invalid));
    printf("lines dropped:      %s\n", crn_fmt_count(b, v->c->n_lines_dropped));
    if (v->min_count > 1) {
        printf("vocabulary:         %s ids with --min-count %lld (incl. <unk>); ", crn_fmt_count(b, v->kept + 1), v->min_count);
        printf("%s tokens would be <unk>\n", crn_fmt_count(b, v->rare));
    }
    if (v->show) {
        printf("\ntop %zu tokens:\n", v->show);
        for (size_t i = 0; i < v->show; i++) {
            size_t tl;
            const uint8_t *tok = crn_vocab_token(v->c->vocab, v->rk[i].id, &tl);
            printf("%6zu  %12s  %6.2f%%  ", i + 1, crn_fmt_count(b, v->rk[i].freq),
                   v->c->n_tokens ? 100.0 * (double)v->rk[i].freq / (double)v->c->n_tokens : 0.0);
            show_token(stdout, tok, tl);
            printf("  (");
            show_codepoints(stdout, tok, tl);
            printf(")\n");
        }
    }
}

/* What `charrnn vocab` was given (the lists are argc + 1 long). */
typedef struct vocab_args {
    crn_corpus_opts o;
    long long min_count, top;
    int json;
    const char **keep, **drop, **repl;
    const char *path;
} vocab_args;

/* Options and CORPUS into a (its lists allocated). @return -1 ok, else the exit status. */
static int parse_args(vocab_args *a, int argc, char **argv) {
    static const struct option longopts[] = {
        {"unit", required_argument, NULL, OPT_UNIT},
        {"normalize", required_argument, NULL, OPT_NORM},
        {"invalid", required_argument, NULL, OPT_INVALID},
        {"min-count", required_argument, NULL, OPT_MIN_COUNT},
        {"keep", required_argument, NULL, OPT_KEEP},
        {"drop", required_argument, NULL, OPT_DROP},
        {"replace", required_argument, NULL, OPT_REPLACE},
        {"top", required_argument, NULL, OPT_TOP},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    crn_corpus_opts *o = &a->o;
    /* getopt names argv[0] in its messages: make that "charrnn vocab" */
    char *argv0 = argv[0];
    argv[0] = (char *)"charrnn " CMD;
    optind = 1;
    opterr = 1;
    int ch, status = -1;
    while (status < 0 && (ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            usage(stdout);
            status = CLI_EXIT_OK;
            break;
        case OPT_UNIT:
            if (crn_unit_parse(optarg, &o->unit))
                status = cli_usage_error(CMD, "--unit: '%s' is not one of codepoint, grapheme, jamo", optarg);
            break;
        case OPT_NORM:
            if (crn_norm_parse(optarg, &o->norm))
                status = cli_usage_error(CMD, "--normalize: '%s' is not one of nfc, nfkc, none", optarg);
            break;
        case OPT_INVALID:
            if (crn_invalid_parse(optarg, &o->invalid))
                status = cli_usage_error(CMD, "--invalid: '%s' is not one of error, replace, skip", optarg);
            break;
        case OPT_MIN_COUNT:
            if (cli_parse_long(CMD, "--min-count", optarg, 1, INT64_MAX, &a->min_count)) status = CLI_EXIT_USAGE;
            break;
        case OPT_TOP:
            if (cli_parse_long(CMD, "--top", optarg, 0, 1000000000, &a->top)) status = CLI_EXIT_USAGE;
            break;
        case OPT_KEEP: a->keep[o->n_keep++] = optarg; break;
        case OPT_DROP: a->drop[o->n_drop++] = optarg; break;
        case OPT_REPLACE: a->repl[o->n_replace++] = optarg; break;
        case OPT_JSON: a->json = 1; break;
        default: status = cli_bad_option(CMD); break;
        }
    }
    argv[0] = argv0;
    if (status >= 0) return status;
    if (optind >= argc) return cli_usage_error(CMD, "missing the CORPUS file");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s' (one CORPUS file)", argv[optind + 1]);
    a->path = argv[optind];
    return -1;
}

int cli_vocab(int argc, char **argv) {
    vocab_args a = {.min_count = 1, .top = DEFAULT_TOP};
    crn_corpus_opts_default(&a.o);
    a.o.val_frac = 0; /* statistics of the whole file */
    /* the repeatable options: at most argc of each */
    a.keep = calloc((size_t)argc + 1, sizeof *a.keep);
    a.drop = calloc((size_t)argc + 1, sizeof *a.drop);
    a.repl = calloc((size_t)argc + 1, sizeof *a.repl);
    crn_corpus *c = NULL;
    ranked *rk = NULL;
    int status;
    if (!a.keep || !a.drop || !a.repl) {
        cli_error(CMD, "out of memory");
        status = CLI_EXIT_ERROR;
        goto out;
    }
    a.o.keep = a.keep;
    a.o.drop = a.drop;
    a.o.replace = a.repl;
    if ((status = parse_args(&a, argc, argv)) >= 0) goto out;

    /* Built with min_count 1 so every distinct token is listed; what
     * --min-count would do is computed from the frequencies. */
    int err = crn_corpus_load(&c, a.path, &a.o, NULL);
    if (err) {
        status = cli_fail(CMD, err);
        goto out;
    }
    size_t distinct = crn_vocab_size(c->vocab) - 1;
    uint64_t kept = 0, rare = 0;
    if (!(rk = rank_tokens(c->vocab, a.min_count, &kept, &rare))) {
        cli_error(CMD, "out of memory");
        status = CLI_EXIT_ERROR;
        goto out;
    }
    size_t show = (size_t)a.top < distinct ? (size_t)a.top : distinct;

    vocab_stats vs = {a.path, c, &a.o, distinct, show, a.min_count, kept, rare, rk};
    if (a.json) print_json(&vs);
    else print_text(&vs);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error(CMD, "cannot write the output");
        status = CLI_EXIT_ERROR;
        goto out;
    }
    status = CLI_EXIT_OK;
out:
    free(rk);
    crn_corpus_destroy(c);
    free(a.keep);
    free(a.drop);
    free(a.repl);
    return status;
}
