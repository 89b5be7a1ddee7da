/* cli_classify.c — `charrnn classify train|predict|eval` and the classifier
 * side of `charrnn repl`: labelled tables in (records.c), the network
 * (classify.c) and its loop (clf_train.c), the model file (checkpoint.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "classify.h"
#include "clf_train.h"
#include "cli.h"
#include "cli_progress.h"
#include "common.h"
#include "kernels.h"
#include "records.h"
#include "train.h"
#include "utf8.h"

#define CMD "classify"

/* ---- shared: class names, data sets ---------------------------------------- */

typedef struct classes {
    char **name;
    uint32_t n;
} classes;

static void classes_free(classes *c) {
    for (uint32_t k = 0; c->name && k < c->n; k++) free(c->name[k]);
    free(c->name);
    c->name = NULL;
    c->n = 0;
}

static long find_class(const classes *c, const uint8_t *s, size_t n) {
    for (uint32_t k = 0; k < c->n; k++)
        if (strlen(c->name[k]) == n && !memcmp(c->name[k], s, n)) return k;
    return -1;
}

static int add_class(classes *c, const uint8_t *s, size_t n) {
    if (c->n >= CRN_CLF_MAX_CLASSES) return crn_error_set(CRN_ERANGE, "more than %u classes", CRN_CLF_MAX_CLASSES);
    char **nn = realloc(c->name, (c->n + 1) * sizeof *nn);
    if (!nn) return crn_error_set(CRN_ENOMEM, "out of memory");
    c->name = nn;
    if (!(c->name[c->n] = strndup((const char *)s, n))) return crn_error_set(CRN_ENOMEM, "out of memory");
    c->n++;
    return 0;
}

static int is_int(const char *s) {
    if (*s == '-' || *s == '+') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static int cmp_class(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    if (is_int(x) && is_int(y)) {
        long long u = strtoll(x, NULL, 10), v = strtoll(y, NULL, 10);
        if (u != v) return u < v ? -1 : 1;
    }
    return strcmp(x, y);
}

/* Classes: --classes a,b,c in that order, else discovered (integers in
 * numeric order, otherwise by bytes). At least two. */
static int discover_classes(classes *c, const crn_records *r, const char *fixed) {
    int rc = 0;
    if (fixed) {
        const char *p = fixed;
        while (!rc) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n == 0) return crn_error_set(CRN_EINVAL, "--classes: empty class name in '%s'", fixed);
            if (find_class(c, (const uint8_t *)p, n) >= 0)
                return crn_error_set(CRN_EINVAL, "--classes: '%.*s' given twice", (int)n, p);
            rc = add_class(c, (const uint8_t *)p, n);
            if (!e) break;
            p = e + 1;
        }
        if (!rc && c->n < 2) rc = crn_error_set(CRN_EINVAL, "--classes: at least two classes are needed");
        return rc;
    }
    for (size_t i = 0; i < crn_records_count(r) && !rc; i++) {
        size_t n;
        const uint8_t *s = crn_records_label(r, i, &n);
        if (find_class(c, s, n) < 0) rc = add_class(c, s, n);
    }
    if (rc) return rc;
    if (c->n < 2)
        return crn_records_fail(r, 0, 1, CRN_EFORMAT, "only one class ('%s') in column '%s'; a classifier needs two or more",
                                c->name[0], crn_records_label_name(r));
    qsort(c->name, c->n, sizeof *c->name, cmp_class);
    return 0;
}

/* Encode every record (labels through cls; cls == NULL: no labels). */
static int build_data(crn_clf_data *d, const crn_records *r, const crn_vocab *v, uint32_t max_len, const classes *cls,
                      crn_clf_cleaner *clean) {
    memset(d, 0, sizeof *d);
    const size_t n = crn_records_count(r);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        crn_records_text(r, i, &len);
        total += len < max_len ? len + 1 : max_len;
    }
    d->ids = malloc((total ? total : 1) * sizeof *d->ids);
    d->off = malloc((n + 1) * sizeof *d->off);
    d->label = calloc(n ? n : 1, sizeof *d->label);
    if (!d->ids || !d->off || !d->label) return crn_error_set(CRN_ENOMEM, "out of memory for %zu lines", n);
    crn_clf_encoder e;
    crn_clf_encoder_init(&e, v, max_len);
    e.clean = clean;
    e.select = 1;
    int rc = 0;
    size_t at = 0, j = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len, ll;
        const uint8_t *s = crn_records_text(r, i, &len);
        uint32_t k;
        int trunc;
        d->off[j] = at;
        if ((rc = crn_clf_encode(&e, s, len, d->ids + at, &k, &trunc))) {
            rc = crn_records_fail(r, i, 0, rc, "%s", crn_error_message());
            break;
        }
        if (k == 0) { // not selected by --keep/--drop
            d->dropped++;
            continue;
        }
        at += k;
        d->truncated += (uint64_t)trunc;
        if (cls) {
            const uint8_t *l = crn_records_label(r, i, &ll);
            long c = find_class(cls, l, ll);
            if (c < 0) rc = crn_records_fail(r, i, 1, CRN_EFORMAT, "label '%.*s' is not one of the %u classes", (int)ll, l, cls->n);
            else d->label[j] = (uint32_t)c;
        }
        j++;
    }
    d->off[j] = at;
    d->n = j;
    crn_clf_encoder_free(&e);
    if (!rc && j == 0)
        rc = crn_error_set(CRN_EEMPTY, "%s: no rows left after --keep/--drop (%zu of %zu dropped)", crn_records_path(r),
                           (size_t)d->dropped, n);
    return rc;
}

/* ---- train ------------------------------------------------------------------ */

static void train_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn classify train DATA -o MODEL [options]\n"
            "       charrnn classify train --resume MODEL [DATA] [options]\n"
            "\n"
            "Train a many-to-one classifier on a TSV or CSV table with a header: one text\n"
            "and one label a row. Two classes: one sigmoid output with binary cross-entropy;\n"
            "more: a softmax with cross-entropy. A part of DATA is held out for validation;\n"
            "MODEL is the best model by validation accuracy (written at each eval that\n"
            "improves it); MODEL.resume is the latest state (parameters, optimizer, step,\n"
            "data position, RNG), written at every eval. Ctrl-C or SIGTERM stops after a\n"
            "last eval (the best model is kept, the state saved for --resume).\n"
            "\n"
            "Data:\n"
            "      --format F           tsv | csv (default: csv if DATA ends in .csv, else tsv;\n"
            "                           csv is RFC 4180, tsv has no quoting)\n"
            "      --text-column C      header name or 1-based number (default document, else text)\n"
            "      --label-column C     header name or number (default label)\n"
            "      --classes A,B,...    class order (default: discovered; integers numerically)\n"
            "      --balance            weight classes by inverse frequency\n"
            "      --val-frac F         held-out fraction for validation (default 0.05)\n"
            "      --max-len N          tokens a line; longer lines keep their first N/2 and\n"
            "                           last N/2 tokens (default 256)\n"
            "      --unit U             codepoint | grapheme | jamo (default codepoint)\n"
            "      --norm N             nfc | nfkc | none (default nfc)\n"
            "      --min-count N        rarer tokens become <unk> (default 2)\n"
            "      --keep REGEX         keep only rows whose text matches (repeatable)\n"
            "      --drop REGEX         drop rows whose text matches (repeatable)\n"
            "      --replace REGEX=TEXT substitute in every text (repeatable, in order)\n"
            "                           (as in train; on the normalised text; stored in MODEL:\n"
            "                           eval selects and replaces the same way, predict and\n"
            "                           repl replace only, as every line gets an answer)\n"
            "Model:\n"
            "      --cell C             rnn | lstm | gru (default gru)\n"
            "      --hidden N           hidden units per direction (default 192)\n"
            "      --embed N            embedding size, 0 = one-hot (default 64)\n"
            "      --layers N           (default 1)\n"
            "      --bidirectional[=W]  also read lines backwards: last (the top layer, the\n"
            "                           default of the flag) or all layers (default: none)\n"
            "      --pool P             last | mean | max over the valid steps (default max)\n"
            "      --dropout F          dropout on the pooled features (default 0.3)\n"
            "      --layer-norm         layer normalisation in every cell, as train (the default)\n"
            "      --no-layer-norm      plain cells, without layer normalisation\n"
            "      --init-from LM       start embedding and recurrent layers from a character\n"
            "                           generator (its vocabulary, unit, cell, sizes and layer\n"
            "                           norm are used, its layer-norm gains copied)\n"
            "Training:\n"
            "      --batch N            lines per step (default 64)\n"
            "      --optim O            adam | adamw | rmsprop | adagrad | sgd (default adam)\n"
            "      --lr F               learning rate (default 2e-3), cosine decay over the budget\n"
            "      --constant-lr        no decay\n"
            "      --clip F             global gradient norm clip, 0 = off (default 5)\n"
            "      --epochs N | --steps N | --time DUR   budget (default --epochs 3)\n"
            "      --eval-every N       steps between evals (default: one epoch)\n"
            "      --patience N         stop after N evals without improvement (default off)\n"
            "      --seed N             (default 1)\n"
            "      --threads N          0 = all cores (default 0)\n"
            "      --log CSV            step,epoch,seconds,lr,train_loss,val_loss,val_acc,val_f1\n"
            "  -o, --output MODEL       the model file (required; with --resume: the resumed MODEL)\n"
            "      --resume MODEL       continue the run of MODEL from MODEL.resume (written at\n"
            "                           every eval and on Ctrl-C): DATA and the options come from\n"
            "                           it; a budget option replaces all three (steps and epochs\n"
            "                           are totals of the run, --time this session's); --lr,\n"
            "                           --clip, --constant-lr, --eval-every, --patience, --log and\n"
            "                           --threads may change; other options must match\n"
            "  -q, --quiet              no progress (else a live line on a terminal, one line per eval)\n"
            "  -h, --help               show this help\n");
}

enum {
    T_FORMAT = 300, T_TEXT, T_LABEL, T_CLASSES, T_BALANCE, T_VAL, T_MAXLEN, T_UNIT, T_NORM, T_MINCOUNT, T_CELL,
    T_HIDDEN, T_EMBED, T_LAYERS, T_BIDIR, T_POOL, T_DROPOUT, T_INIT, T_BATCH, T_OPTIM, T_LR, T_CONST, T_CLIP,
    T_EPOCHS, T_STEPS, T_TIME, T_EVAL, T_PATIENCE, T_SEED, T_THREADS, T_LOG, T_JSON, T_RESUME, T_KEEP, T_DROP, T_REPLACE, T_LN, T_NO_LN, T_END,
};

typedef struct targs {
    crn_records_opts ro;
    const char *classes, *out, *log, *init_from, *data;
    double val_frac;
    long long max_len, min_count, threads;
    enum crn_unit unit;
    enum crn_norm norm;
    crn_clf_config cfg;
    crn_clf_train_opts to;
    int quiet, have_budget;
    const char *resume;
    char **pat[3];                       /* --keep, --drop, --replace as typed (argv strings) */
    size_t n_pat[3];
    unsigned char set[T_END - T_FORMAT]; /* options given */
} targs;

static void targs_free(targs *a) {
    for (int i = 0; i < 3; i++) free(a->pat[i]);
}

/* Options that take a number: {code, name, min, max, where}. */
static int parse_train_opt(targs *a, int c, const char *arg) {
    long long v;
    double x;
    if (c >= T_FORMAT && c < T_END) a->set[c - T_FORMAT] = 1;
    switch (c) {
    case T_RESUME: a->resume = arg; return 0;
    case T_KEEP:
    case T_DROP:
    case T_REPLACE: {
        int w = c - T_KEEP;
        char **p = realloc(a->pat[w], (a->n_pat[w] + 1) * sizeof *p);
        if (!p) return cli_usage_error(CMD, "out of memory"), -1;
        p[a->n_pat[w]++] = (char *)arg;
        a->pat[w] = p;
        return 0;
    }
    case T_FORMAT:
        if (!strcmp(arg, "tsv")) a->ro.format = CRN_REC_TSV;
        else if (!strcmp(arg, "csv")) a->ro.format = CRN_REC_CSV;
        else return cli_usage_error(CMD, "--format: expected tsv or csv, not '%s'", arg), -1;
        return 0;
    case T_TEXT: a->ro.text_col = arg; return 0;
    case T_LABEL: a->ro.label_col = arg; return 0;
    case T_CLASSES: a->classes = arg; return 0;
    case T_BALANCE: a->to.balance = 1; return 0;
    case T_VAL: return cli_parse_double(CMD, "--val-frac", arg, 0, 0.9, &a->val_frac);
    case T_MAXLEN: return cli_parse_long(CMD, "--max-len", arg, 1, 1 << 20, &a->max_len);
    case T_MINCOUNT: return cli_parse_long(CMD, "--min-count", arg, 1, 1LL << 40, &a->min_count);
    case T_UNIT: return crn_unit_parse(arg, &a->unit) ? (cli_usage_error(CMD, "%s", crn_error_message()), -1) : 0;
    case T_NORM: return crn_norm_parse(arg, &a->norm) ? (cli_usage_error(CMD, "%s", crn_error_message()), -1) : 0;
    case T_CELL: return crn_cell_parse(arg, &a->cfg.base.cell) ? (cli_usage_error(CMD, "%s", crn_error_message()), -1) : 0;
    case T_POOL: return crn_pool_parse(arg, &a->cfg.pool) ? (cli_usage_error(CMD, "%s", crn_error_message()), -1) : 0;
    case T_BIDIR:
        if (!arg) a->cfg.bidir = CRN_BIDIR_LAST;
        else if (crn_bidir_parse(arg, &a->cfg.bidir)) return cli_usage_error(CMD, "--bidirectional: %s", crn_error_message()), -1;
        return 0;
    case T_HIDDEN:
        if (cli_parse_long(CMD, "--hidden", arg, 1, 16384, &v) < 0) return -1;
        a->cfg.base.hidden = (uint32_t)v;
        return 0;
    case T_EMBED:
        if (cli_parse_long(CMD, "--embed", arg, 0, 16384, &v) < 0) return -1;
        a->cfg.base.embed = (uint32_t)v;
        return 0;
    case T_LAYERS:
        if (cli_parse_long(CMD, "--layers", arg, 1, 64, &v) < 0) return -1;
        a->cfg.base.layers = (uint32_t)v;
        return 0;
    case T_DROPOUT:
        if (cli_parse_double(CMD, "--dropout", arg, 0, 0.95, &x) < 0) return -1;
        a->cfg.base.dropout = (float)x;
        return 0;
    case T_INIT: a->init_from = arg; return 0;
    case T_LN: a->cfg.base.layer_norm = 1; return 0;
    case T_NO_LN: a->cfg.base.layer_norm = 0; return 0;
    case T_BATCH:
        if (cli_parse_long(CMD, "--batch", arg, 1, 65536, &v) < 0) return -1;
        a->to.batch = (uint32_t)v;
        return 0;
    case T_OPTIM: {
        enum crn_optim_kind k;
        if (crn_optim_parse(arg, &k)) return cli_usage_error(CMD, "%s", crn_error_message()), -1;
        float lr = a->to.optim.lr;
        crn_optim_config_default(&a->to.optim, k);
        a->to.optim.lr = lr;
        return 0;
    }
    case T_LR:
        if (cli_parse_double(CMD, "--lr", arg, 1e-9, 10, &x) < 0) return -1;
        a->to.optim.lr = (float)x;
        return 0;
    case T_CONST: a->to.cosine = 0; return 0;
    case T_CLIP: return cli_parse_double(CMD, "--clip", arg, 0, 1e9, &a->to.clip);
    case T_EPOCHS:
        if (cli_parse_long(CMD, "--epochs", arg, 1, 1LL << 40, &v) < 0) return -1;
        a->to.max_epochs = (uint64_t)v;
        a->have_budget = 1;
        return 0;
    case T_STEPS:
        if (cli_parse_long(CMD, "--steps", arg, 1, 1LL << 50, &v) < 0) return -1;
        a->to.max_steps = (uint64_t)v;
        a->have_budget = 1;
        return 0;
    case T_TIME:
        if (cli_parse_duration(CMD, "--time", arg, &a->to.time_limit) < 0) return -1;
        a->have_budget = 1;
        return 0;
    case T_EVAL:
        if (cli_parse_long(CMD, "--eval-every", arg, 1, 1LL << 50, &v) < 0) return -1;
        a->to.eval_every = (uint64_t)v;
        return 0;
    case T_PATIENCE:
        if (cli_parse_long(CMD, "--patience", arg, 1, 1 << 30, &v) < 0) return -1;
        a->to.patience = (uint32_t)v;
        return 0;
    case T_SEED:
        if (cli_parse_long(CMD, "--seed", arg, 0, (long long)(~0ULL >> 1), &v) < 0) return -1;
        a->to.seed = (uint64_t)v;
        return 0;
    case T_THREADS: return cli_parse_long(CMD, "--threads", arg, 0, 1024, &a->threads);
    case T_LOG: a->log = arg; return 0;
    case 'o': a->out = arg; return 0;
    case 'q': a->quiet = 1; return 0;
    }
    return cli_bad_option(CMD), -1;
}

static int parse_train_args(targs *a, int argc, char **argv) {
    static const struct option lo[] = {
        {"format", required_argument, 0, T_FORMAT}, {"text-column", required_argument, 0, T_TEXT},
        {"label-column", required_argument, 0, T_LABEL}, {"classes", required_argument, 0, T_CLASSES},
        {"balance", no_argument, 0, T_BALANCE}, {"val-frac", required_argument, 0, T_VAL},
        {"max-len", required_argument, 0, T_MAXLEN}, {"unit", required_argument, 0, T_UNIT},
        {"norm", required_argument, 0, T_NORM}, {"min-count", required_argument, 0, T_MINCOUNT},
        {"cell", required_argument, 0, T_CELL}, {"hidden", required_argument, 0, T_HIDDEN},
        {"embed", required_argument, 0, T_EMBED}, {"layers", required_argument, 0, T_LAYERS},
        {"bidirectional", optional_argument, 0, T_BIDIR}, {"pool", required_argument, 0, T_POOL},
        {"dropout", required_argument, 0, T_DROPOUT}, {"init-from", required_argument, 0, T_INIT},
        {"batch", required_argument, 0, T_BATCH}, {"optim", required_argument, 0, T_OPTIM},
        {"lr", required_argument, 0, T_LR}, {"constant-lr", no_argument, 0, T_CONST},
        {"clip", required_argument, 0, T_CLIP}, {"epochs", required_argument, 0, T_EPOCHS},
        {"steps", required_argument, 0, T_STEPS}, {"time", required_argument, 0, T_TIME},
        {"eval-every", required_argument, 0, T_EVAL}, {"patience", required_argument, 0, T_PATIENCE},
        {"seed", required_argument, 0, T_SEED}, {"threads", required_argument, 0, T_THREADS},
        {"log", required_argument, 0, T_LOG}, {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'}, {"resume", required_argument, 0, T_RESUME},
        {"keep", required_argument, 0, T_KEEP}, {"drop", required_argument, 0, T_DROP},
        {"replace", required_argument, 0, T_REPLACE}, {"layer-norm", no_argument, 0, T_LN},
        {"no-layer-norm", no_argument, 0, T_NO_LN},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->ro.need_label = 1;
    a->val_frac = 0.05;
    a->max_len = 256;
    a->min_count = 2;
    a->unit = CRN_UNIT_CODEPOINT;
    a->norm = CRN_NORM_NFC;
    a->cfg.base = (crn_model_config){.cell = CRN_CELL_GRU, .embed = 64, .hidden = 192, .layers = 1, .dropout = 0.3f,
                                     .layer_norm = 1};
    a->cfg.pool = CRN_POOL_MAX;
    crn_clf_train_opts_default(&a->to);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "ho:q", lo, NULL)) != -1) {
        if (c == 'h') {
            train_usage(stdout);
            return 1;
        }
        if (c == '?') return cli_bad_option(CMD), -1;
        if (parse_train_opt(a, c, optarg) < 0) return -1;
    }
    if (optind >= argc && !a->resume) return cli_usage_error(CMD, "train: missing DATA"), -1;
    if (optind + 1 < argc) return cli_usage_error(CMD, "train: unexpected argument '%s'", argv[optind + 1]), -1;
    if (!a->out && !a->resume) return cli_usage_error(CMD, "train: missing -o MODEL"), -1;
    a->data = optind < argc ? argv[optind] : NULL;
    if (!a->have_budget && !a->resume) a->to.max_epochs = 3;
    return 0;
}

typedef struct tctx {
    const targs *a;
    const crn_vocab *v;
    crn_clf *m;
    const classes *cls;
    FILE *log;
    int saved;
    const crn_clf_run_opts *run;  /* the run's options, stored with the state */
    const crn_train_status *st;
    const char *resume_path;      /* MODEL.resume */
    cli_progress *prog;
    uint64_t step0;               /* the session's first step and time (rate, time left) */
    double el0;
    int started;
} tctx;

/* "epoch 1.23 | step 120/2000 | train loss 0.412 | val acc 0.853 (best 0.860) | 812 lines/s | 3m05s left" */
static void status_line(char *buf, size_t n, tctx *t, const crn_clf_event *ev) {
    if (!t->started) {
        t->started = 1;
        t->step0 = ev->step - (ev->step > 0);
        t->el0 = ev->elapsed;
    }
    double dt = ev->elapsed - t->el0, sps = dt > 0 ? (double)(ev->step - t->step0) / dt : 0, left = -1;
    if (ev->total_steps && sps > 0) left = (double)(ev->total_steps - (ev->step < ev->total_steps ? ev->step : ev->total_steps)) / sps;
    if (t->a->to.time_limit > 0) {
        double tl = t->a->to.time_limit - dt;
        left = left < 0 || tl < left ? (tl > 0 ? tl : 0) : left;
    }
    char steps[48], eta[16], tr[16], va[16], best[16];
    if (ev->total_steps) snprintf(steps, sizeof steps, "%llu/%llu", (unsigned long long)ev->step, (unsigned long long)ev->total_steps);
    else snprintf(steps, sizeof steps, "%llu", (unsigned long long)ev->step);
    snprintf(tr, sizeof tr, isfinite(ev->train_loss) ? "%.4f" : "-", ev->train_loss);
    snprintf(va, sizeof va, isfinite(ev->val_acc) ? "%.4f" : "-", ev->val_acc);
    snprintf(best, sizeof best, t->st->has_best && isfinite(ev->val_acc) ? "%.4f" : "-", t->st->best_val_bpc);
    snprintf(buf, n, "epoch %.2f | step %s | lr %.3g | train loss %s | val acc %s (best %s) | %.0f lines/s | %s left",
             ev->epoch, steps, ev->lr, tr, va, best, sps * t->a->to.batch, cli_format_duration(eta, sizeof eta, left));
}

/* The model with the run state, and with opt (MODEL.resume, at every eval)
 * or without (MODEL, the best). */
static int save_state(tctx *t, const char *path, const crn_optim *opt) {
    uint8_t *blob = NULL;
    size_t n = 0;
    int rc = crn_clf_blob_encode(&blob, &n, t->run, t->st);
    if (!rc)
        rc = crn_checkpoint_save_clf(path, t->v, t->m, (const char *const *)t->cls->name, (uint32_t)t->a->max_len, opt,
                                     blob, n);
    free(blob);
    return rc;
}

static int on_event(void *ud, const crn_clf_event *ev, int save) {
    tctx *t = ud;
    char line[320];
    if (ev->kind == 2) return save_state(t, t->resume_path, ev->optim);
    if (ev->kind == 0) {
        if (t->prog) {
            status_line(line, sizeof line, t, ev);
            cli_progress_line(t->prog, line, 0);
        }
        return 0;
    }
    if (save) { // the best model carries the run state too (its cleaning), not the optimizer
        int rc = save_state(t, t->a->out, NULL);
        if (rc) return rc;
        t->saved = 1;
    }
    int rc = save_state(t, t->resume_path, ev->optim);
    if (rc) return rc;
    if (t->log) {
        fprintf(t->log, "%llu,%.4f,%.1f,%.6g,%.6f,%.6f,%.6f,%.6f\n", (unsigned long long)ev->step, ev->epoch,
                ev->elapsed, ev->lr, ev->train_loss, ev->val_loss, ev->val_acc, ev->val_f1);
        fflush(t->log);
    }
    if (t->prog) {
        snprintf(line, sizeof line, "step %llu  epoch %.2f  %.0fs  lr %.3g  train loss %.4f  val loss %.4f  acc %.4f  macro-F1 %.4f%s",
                 (unsigned long long)ev->step, ev->epoch, ev->elapsed, ev->lr, ev->train_loss, ev->val_loss,
                 ev->val_acc, ev->val_f1, save ? "  (best, saved)" : "");
        cli_progress_line(t->prog, line, 1);
    }
    return 0;
}

/* Build the vocabulary from the texts (normalised), unless one is given. */
static int make_vocab(crn_vocab **out, const crn_records *r, const targs *a, const crn_clf_cleaner *clean) {
    crn_vocab *v = NULL;
    int rc = crn_vocab_create(&v, a->unit, a->norm);
    for (size_t i = 0; i < crn_records_count(r) && !rc; i++) {
        size_t n, nn;
        const uint8_t *s = crn_records_text(r, i, &n);
        uint8_t *norm = NULL;
        if ((rc = crn_clf_prepare(&norm, &nn, s, n, a->norm, clean, 1)) > 0) rc = crn_vocab_count(v, norm, nn);
        free(norm);
        if (rc) rc = crn_records_fail(r, i, 0, rc, "%s", crn_error_message());
    }
    if (!rc) rc = crn_vocab_finalize(v, (uint64_t)a->min_count);
    if (rc) crn_vocab_destroy(v);
    else *out = v;
    return rc;
}

/* --init-from: the generator's tensors of the same name; a wider input
 * (bidirectional layers below) takes the generator's rows as its first. */
static int init_from_lm(crn_clf *m, const crn_checkpoint *lm) {
    int copied = 0;
    for (int i = 0; i < crn_model_num_tensors(lm->model); i++) {
        const crn_tensor_info *s = crn_model_tensor(lm->model, i);
        const crn_tensor_info *d = crn_clf_find_tensor(m, s->name);
        if (!d || d->cols != s->cols || d->rows < s->rows) continue;
        memcpy(crn_clf_params(m) + d->offset, crn_model_params(lm->model) + s->offset, s->rows * s->cols * sizeof(float));
        copied++;
    }
    return copied;
}

static void split(uint32_t *idx, size_t n, uint64_t seed) {
    crn_rng rng;
    crn_rng_seed(&rng, seed ^ 0x5eed5a1117ULL);
    for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)crn_rng_below(&rng, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* What a session of `classify train` holds. */
typedef struct tsess {
    crn_records *r;
    crn_vocab *v;          /* owned unless ck holds it */
    crn_checkpoint *lm, *ck;
    crn_clf *m;            /* owned unless ck holds it */
    classes cls;
    crn_clf_run_opts run;
    crn_train_status st;
    char *base, *resume_path;
    int copied;
    crn_clf_cleaner *clean;
} tsess;

static void tsess_free(tsess *s) {
    if (!s->ck) {
        crn_clf_destroy(s->m);
        crn_vocab_destroy(s->v);
    }
    crn_checkpoint_destroy(s->ck);
    crn_checkpoint_destroy(s->lm);
    crn_clf_cleaner_destroy(s->clean);
    classes_free(&s->cls);
    crn_clf_run_opts_free(&s->run);
    crn_train_status_free(&s->st);
    crn_records_destroy(s->r);
    free(s->base);
    free(s->resume_path);
}

static char *dup_or_null(const char *x) { return x ? strdup(x) : NULL; }

/* The run's options from the arguments (a fresh run). */
static int run_opts_of(crn_clf_run_opts *o, const targs *a) {
    memset(o, 0, sizeof *o);
    crn_train_opts *t = &o->t;
    crn_train_opts_default(t);
    t->unit = a->unit;
    t->norm = a->norm;
    t->min_count = (uint64_t)a->min_count;
    t->val_frac = a->val_frac;
    t->batch = a->to.batch;
    t->seq = (uint32_t)a->max_len;
    t->model = a->cfg.base;
    t->optim = a->to.optim;
    t->clip = a->to.clip;
    t->sched.kind = a->to.cosine ? CRN_SCHED_COSINE : CRN_SCHED_CONSTANT;
    t->sched.lr = a->to.optim.lr;
    t->time_limit = a->to.time_limit;
    t->max_steps = a->to.max_steps;
    t->max_epochs = a->to.max_epochs;
    t->eval_every = a->to.eval_every;
    t->patience = a->to.patience;
    t->seed = a->to.seed;
    o->format = (uint32_t)a->ro.format;
    o->balance = (uint32_t)a->to.balance;
    char *abs = realpath(a->data, NULL); // absolute, so --resume works from any directory
    t->corpus_path = abs ? abs : dup_or_null(a->data);
    t->log_path = dup_or_null(a->log);
    o->text_col = dup_or_null(a->ro.text_col);
    o->label_col = dup_or_null(a->ro.label_col);
    char ***dst[3] = {&t->keep, &t->drop, &t->replace};
    size_t *cnt[3] = {&t->n_keep, &t->n_drop, &t->n_replace};
    for (int w = 0; w < 3; w++) {
        if (!a->n_pat[w]) continue;
        if (!(*dst[w] = calloc(a->n_pat[w], sizeof **dst[w]))) return crn_error_set(CRN_ENOMEM, "out of memory");
        for (size_t i = 0; i < a->n_pat[w]; i++, (*cnt[w])++)
            if (!((*dst[w])[i] = strdup(a->pat[w][i]))) return crn_error_set(CRN_ENOMEM, "out of memory");
    }
    if (!t->corpus_path || (a->log && !t->log_path) || (a->ro.text_col && !o->text_col) ||
        (a->ro.label_col && !o->label_col))
        return crn_error_set(CRN_ENOMEM, "out of memory");
    return 0;
}

/* A model option given with --init-from must agree with the generator,
 * whose cells the classifier takes (C23): prints the usage error. */
static int init_from_conflict(const targs *a, const crn_model_config *g) {
    const crn_model_config *c = &a->cfg.base;
    const char *tail = "the classifier takes its cells from the generator (drop the option)";
    if ((a->set[T_LN - T_FORMAT] || a->set[T_NO_LN - T_FORMAT]) && c->layer_norm != g->layer_norm)
        cli_usage_error(CMD, "--%slayer-norm conflicts with --init-from %s (a generator %s layer norm); %s",
                        c->layer_norm ? "" : "no-", a->init_from, g->layer_norm ? "with" : "without", tail);
    else if (a->set[T_CELL - T_FORMAT] && c->cell != g->cell)
        cli_usage_error(CMD, "--cell %s conflicts with --init-from %s (a generator of %s cells); %s", crn_cell_name(c->cell),
                        a->init_from, crn_cell_name(g->cell), tail);
    else if (a->set[T_HIDDEN - T_FORMAT] && c->hidden != g->hidden)
        cli_usage_error(CMD, "--hidden %u conflicts with --init-from %s (a generator with hidden %u); %s", c->hidden,
                        a->init_from, g->hidden, tail);
    else if (a->set[T_EMBED - T_FORMAT] && c->embed != g->embed)
        cli_usage_error(CMD, "--embed %u conflicts with --init-from %s (a generator with embed %u); %s", c->embed,
                        a->init_from, g->embed, tail);
    else if (a->set[T_LAYERS - T_FORMAT] && c->layers != g->layers)
        cli_usage_error(CMD, "--layers %u conflicts with --init-from %s (a generator with %u layers); %s", c->layers,
                        a->init_from, g->layers, tail);
    else
        return 0;
    return 1;
}

static int fresh_setup(tsess *s, targs *a, int *usage) {
    int rc;
    if ((rc = crn_records_load(&s->r, a->data, &a->ro)) || (rc = discover_classes(&s->cls, s->r, a->classes))) return rc;
    if ((a->n_pat[0] || a->n_pat[1] || a->n_pat[2]) &&
        (rc = crn_clf_cleaner_create(&s->clean, a->pat[0], a->n_pat[0], a->pat[1], a->n_pat[1], a->pat[2], a->n_pat[2])))
        return rc;
    if (a->init_from) {
        if ((rc = crn_checkpoint_load_kind(&s->lm, a->init_from, CRN_CKPT_GENERATOR))) return rc;
        const crn_model_config *g = &s->lm->cfg;
        if (init_from_conflict(a, g)) {
            *usage = 1;
            return CRN_EINVAL;
        }
        a->cfg.base.layer_norm = g->layer_norm;
        a->cfg.base.cell = g->cell;
        a->cfg.base.act = g->act;
        a->cfg.base.embed = g->embed;
        a->cfg.base.hidden = g->hidden;
        a->cfg.base.layers = g->layers;
        if ((rc = crn_vocab_clone(&s->v, s->lm->vocab))) return rc;
    } else if ((rc = make_vocab(&s->v, s->r, a, s->clean))) {
        return rc;
    }
    a->cfg.base.vocab = crn_vocab_size(s->v);
    a->cfg.classes = s->cls.n;
    if ((rc = crn_clf_config_check(&a->cfg)) || (rc = crn_clf_create(&s->m, &a->cfg))) return rc;
    crn_rng rng;
    crn_rng_seed(&rng, a->to.seed);
    crn_clf_init(s->m, &rng);
    s->copied = s->lm ? init_from_lm(s->m, s->lm) : 0;
    crn_clf_run_begin(&s->st, a->to.seed);
    s->st.run_id = crn_rng_u64(&rng);
    return run_opts_of(&s->run, a);
}

/* --resume: options that would change the run are refused (one line naming
 * the option and the run's value); @return 0 or -1 (reported). */
static int check_conflicts(const targs *a, const crn_clf_run_opts *r, const crn_checkpoint *ck) {
    const crn_train_opts *t = &r->t;
    const crn_clf_config *c = &ck->clf_cfg;
#define SET(id) (a->set[(id) - T_FORMAT])
#define CONFLICT(id, name, cond, fmt, ...)                                                                          \
    if (SET(id) && (cond))                                                                                           \
        return cli_usage_error(CMD, "--" name " conflicts with the run being resumed (" fmt "); a resumed run "      \
                               "keeps its data, model and optimizer (start a new run to change them)", __VA_ARGS__), -1
    CONFLICT(T_FORMAT, "format", (uint32_t)a->ro.format != r->format, "%s", r->format == CRN_REC_CSV ? "csv" : r->format ? "tsv" : "auto");
    CONFLICT(T_TEXT, "text-column", !r->text_col || strcmp(a->ro.text_col, r->text_col), "%s", r->text_col ? r->text_col : "default");
    CONFLICT(T_LABEL, "label-column", !r->label_col || strcmp(a->ro.label_col, r->label_col), "%s", r->label_col ? r->label_col : "default");
    CONFLICT(T_CLASSES, "classes", 1, "%u classes in the model", c->classes);
    CONFLICT(T_BALANCE, "balance", !r->balance, "%s", "not balanced");
    CONFLICT(T_VAL, "val-frac", a->val_frac != t->val_frac, "%g", t->val_frac);
    CONFLICT(T_MAXLEN, "max-len", (uint32_t)a->max_len != ck->max_len, "%u", ck->max_len);
    CONFLICT(T_UNIT, "unit", a->unit != crn_vocab_unit(ck->vocab), "%s", crn_unit_name(crn_vocab_unit(ck->vocab)));
    CONFLICT(T_NORM, "norm", a->norm != crn_vocab_norm(ck->vocab), "%s", crn_norm_name(crn_vocab_norm(ck->vocab)));
    CONFLICT(T_MINCOUNT, "min-count", (uint64_t)a->min_count != t->min_count, "%llu", (unsigned long long)t->min_count);
    CONFLICT(T_CELL, "cell", a->cfg.base.cell != c->base.cell, "%s", crn_cell_name(c->base.cell));
    CONFLICT(T_HIDDEN, "hidden", a->cfg.base.hidden != c->base.hidden, "%u", c->base.hidden);
    CONFLICT(T_EMBED, "embed", a->cfg.base.embed != c->base.embed, "%u", c->base.embed);
    CONFLICT(T_LAYERS, "layers", a->cfg.base.layers != c->base.layers, "%u", c->base.layers);
    CONFLICT(T_BIDIR, "bidirectional", a->cfg.bidir != c->bidir, "%s", crn_bidir_name(c->bidir));
    CONFLICT(T_POOL, "pool", a->cfg.pool != c->pool, "%s", crn_pool_name(c->pool));
    CONFLICT(T_DROPOUT, "dropout", a->cfg.base.dropout != c->base.dropout, "%g", (double)c->base.dropout);
    CONFLICT(T_LN, "layer-norm", a->cfg.base.layer_norm && !c->base.layer_norm, "%s", "no layer norm");
    CONFLICT(T_NO_LN, "no-layer-norm", !a->cfg.base.layer_norm && c->base.layer_norm, "%s", "layer norm");
    CONFLICT(T_INIT, "init-from", 1, "%s", "its weights are already trained");
    CONFLICT(T_BATCH, "batch", a->to.batch != t->batch, "%u", t->batch);
    CONFLICT(T_OPTIM, "optim", a->to.optim.kind != t->optim.kind, "%s", crn_optim_name(t->optim.kind));
    CONFLICT(T_SEED, "seed", a->to.seed != t->seed, "%llu", (unsigned long long)t->seed);
    char *const *have[3] = {t->keep, t->drop, t->replace};
    const size_t nhave[3] = {t->n_keep, t->n_drop, t->n_replace};
    static const char *const pname[3] = {"keep", "drop", "replace"};
    for (int w = 0; w < 3; w++) {
        int same = a->n_pat[w] == nhave[w];
        for (size_t i = 0; same && i < nhave[w]; i++) same = !strcmp(a->pat[w][i], have[w][i]);
        if (SET(T_KEEP + w) && !same)
            return cli_usage_error(CMD, "--%s conflicts with the run being resumed (%zu --%s patterns); a resumed run "
                                   "keeps its data, model and optimizer (start a new run to change them)",
                                   pname[w], nhave[w], pname[w]), -1;
    }
    char *abs = a->data ? realpath(a->data, NULL) : NULL;
    int other = a->data && strcmp(abs ? abs : a->data, t->corpus_path);
    free(abs);
    if (other)
        return cli_usage_error(CMD, "DATA '%s' conflicts with the run being resumed (%s); a resumed run keeps its "
                               "data, model and optimizer (start a new run to change them)", a->data, t->corpus_path), -1;
#undef CONFLICT
    return 0;
}

/* --resume: the arguments take the run's values, except those that may change. */
static int resume_apply(targs *a, crn_clf_run_opts *r, const crn_checkpoint *ck) {
    crn_train_opts *t = &r->t;
    a->data = t->corpus_path;
    a->ro.format = (enum crn_rec_format)r->format;
    a->ro.text_col = r->text_col;
    a->ro.label_col = r->label_col;
    a->to.balance = (int)r->balance;
    a->val_frac = t->val_frac;
    a->max_len = ck->max_len;
    a->cfg = ck->clf_cfg;
    a->to.batch = t->batch;
    a->to.seed = t->seed;
    float lr = a->to.optim.lr;
    a->to.optim = t->optim;
    if (SET(T_LR)) a->to.optim.lr = lr;
    if (!SET(T_CLIP)) a->to.clip = t->clip;
    if (!SET(T_CONST)) a->to.cosine = t->sched.kind == CRN_SCHED_COSINE;
    if (!a->have_budget) {
        a->to.max_steps = t->max_steps;
        a->to.max_epochs = t->max_epochs;
        a->to.time_limit = t->time_limit;
    }
    if (!SET(T_EVAL)) a->to.eval_every = t->eval_every;
    if (!SET(T_PATIENCE)) a->to.patience = t->patience;
    if (!SET(T_LOG)) a->log = t->log_path;
    /* the run goes on with the options of this session */
    t->optim.lr = t->sched.lr = a->to.optim.lr;
    t->clip = a->to.clip;
    t->sched.kind = a->to.cosine ? CRN_SCHED_COSINE : CRN_SCHED_CONSTANT;
    t->max_steps = a->to.max_steps;
    t->max_epochs = a->to.max_epochs;
    t->time_limit = a->to.time_limit;
    t->eval_every = a->to.eval_every;
    t->patience = a->to.patience;
    if (a->log != t->log_path) {
        free(t->log_path);
        if (!(t->log_path = strdup(a->log))) return crn_error_set(CRN_ENOMEM, "out of memory");
        a->log = t->log_path;
    }
    return 0;
}
#undef SET

/* --resume MODEL (or MODEL.resume): load MODEL.resume and take over its run. */
static int resume_setup(tsess *s, targs *a, int *usage) {
    size_t n = strlen(a->resume), k = strlen(CRN_RESUME_SUFFIX);
    if (!(s->base = strdup(a->resume))) return crn_error_set(CRN_ENOMEM, "out of memory");
    if (n > k && !strcmp(s->base + n - k, CRN_RESUME_SUFFIX)) s->base[n - k] = 0;
    if (!a->out) a->out = s->base;
    size_t m = strlen(s->base) > strlen(a->out) ? strlen(s->base) : strlen(a->out);
    if (!(s->resume_path = malloc(m + k + 1))) return crn_error_set(CRN_ENOMEM, "out of memory");
    sprintf(s->resume_path, "%s%s", s->base, CRN_RESUME_SUFFIX);
    int rc = crn_checkpoint_load_kind(&s->ck, s->resume_path, CRN_CKPT_CLASSIFIER);
    if (rc) return rc;
    if (!s->ck->train_blob || !s->ck->optim)
        return crn_error_set(CRN_EFORMAT, "%s: no run state (optimizer and training state); it cannot be resumed",
                             s->resume_path);
    if ((rc = crn_clf_blob_decode(&s->run, &s->st, s->ck->train_blob, s->ck->train_blob_len)))
        return crn_error_prefix(rc, "%s", s->resume_path);
    sprintf(s->resume_path, "%s%s", a->out, CRN_RESUME_SUFFIX); // this session writes MODEL.resume of -o
    if (check_conflicts(a, &s->run, s->ck) < 0) {
        *usage = 1;
        return CRN_EINVAL;
    }
    if ((rc = resume_apply(a, &s->run, s->ck))) return rc;
    const crn_train_opts *t = &s->run.t;
    if ((t->n_keep || t->n_drop || t->n_replace) &&
        (rc = crn_clf_cleaner_create(&s->clean, t->keep, t->n_keep, t->drop, t->n_drop, t->replace, t->n_replace)))
        return crn_error_prefix(rc, "%s", s->resume_path);
    s->v = s->ck->vocab;
    s->m = s->ck->clf;
    for (uint32_t c = 0; c < s->ck->clf_cfg.classes && !rc; c++)
        rc = add_class(&s->cls, (const uint8_t *)s->ck->class_names[c], strlen(s->ck->class_names[c]));
    if (!rc) rc = crn_records_load(&s->r, a->data, &a->ro);
    return rc;
}

static void print_setup(const targs *a, const tsess *s, size_t n, size_t nval, const crn_clf_data *d) {
    if (a->quiet) return;
    fprintf(stderr, "classify train: %zu lines (%zu train, %zu validation), %u classes, vocab %u (%s), %llu lines cut to %lld tokens\n",
            n, n - nval, nval, s->cls.n, a->cfg.base.vocab, crn_unit_name(crn_vocab_unit(s->v)),
            (unsigned long long)d->truncated, a->max_len);
    fprintf(stderr, "model: %s embed %u hidden %u layers %u%s, %s direction, %s pooling, %zu parameters%s\n",
            crn_cell_name(a->cfg.base.cell), a->cfg.base.embed, a->cfg.base.hidden, a->cfg.base.layers,
            a->cfg.base.layer_norm ? ", layer norm" : "",
            a->cfg.bidir == CRN_BIDIR_NONE ? "forward" : a->cfg.bidir == CRN_BIDIR_LAST ? "bidirectional top layer" : "bidirectional",
            crn_pool_name(a->cfg.pool), crn_clf_num_params(s->m), s->lm ? " (initialised from a generator)" : "");
    if (s->lm) fprintf(stderr, "init-from %s: %d tensors copied\n", a->init_from, s->copied);
    if (d->dropped) fprintf(stderr, "cleaning: %llu rows left out by --keep/--drop\n", (unsigned long long)d->dropped);
    if (s->ck) fprintf(stderr, "resumed the run of %s at step %llu\n", a->resume, (unsigned long long)s->st.step);
}

static int cmd_train(int argc, char **argv) {
    targs a;
    int pr = parse_train_args(&a, argc, argv);
    if (pr) {
        targs_free(&a);
        return pr > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    tsess s = {0};
    crn_clf_data d = {0};
    uint32_t *idx = NULL;
    tctx t = {.a = &a};
    int rc, status = CLI_EXIT_ERROR, usage = 0;
    crn_set_threads((int)a.threads);
    if (a.resume) rc = resume_setup(&s, &a, &usage);
    else rc = fresh_setup(&s, &a, &usage);
    if (usage) {
        status = CLI_EXIT_USAGE;
        goto done;
    }
    if (!rc && !s.resume_path) {
        if (!(s.resume_path = malloc(strlen(a.out) + sizeof CRN_RESUME_SUFFIX))) rc = crn_error_set(CRN_ENOMEM, "out of memory");
        else sprintf(s.resume_path, "%s%s", a.out, CRN_RESUME_SUFFIX);
    }
    if (rc || (rc = build_data(&d, s.r, s.v, (uint32_t)a.max_len, &s.cls, s.clean))) goto fail;
    size_t n = d.n, nval = (size_t)(a.val_frac * (double)n);
    if (!(idx = malloc(n * sizeof *idx))) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory");
        goto fail;
    }
    split(idx, n, a.to.seed);
    if (a.log && !(t.log = fopen(a.log, s.ck ? "a" : "w"))) {
        rc = crn_error_set(CRN_EIO, "%s: cannot open: %s", a.log, strerror(errno));
        goto fail;
    }
    if (t.log && !s.ck) fprintf(t.log, "step,epoch,seconds,lr,train_loss,val_loss,val_acc,val_f1\n");
    print_setup(&a, &s, n, nval, &d);
    t.v = s.v;
    t.m = s.m;
    t.cls = &s.cls;
    t.run = &s.run;
    t.st = &s.st;
    t.resume_path = s.resume_path;
    if (!a.quiet && (rc = cli_progress_create(&t.prog, stderr, -1, 0))) goto fail;
    cli_install_stop_signals();
    crn_clf_event last;
    rc = crn_clf_train(s.m, &d, idx + nval, n - nval, idx, nval, &a.to, &s.st, s.ck ? s.ck->optim : NULL, on_event,
                       &t, &last);
    cli_progress_finish(t.prog);
    if (rc == CRN_EINTR) {
        if (!a.quiet)
            fprintf(stderr, "classify train: interrupted; the best model so far is in %s (step %llu)\n"
                            "  continue with: charrnn classify train --resume %s\n",
                    a.out, (unsigned long long)s.st.step, a.out);
        status = CLI_EXIT_INTERRUPTED;
        goto done;
    }
    if (rc) goto fail;
    if (!a.quiet) fprintf(stderr, "classify train: done in %.0fs; best model in %s\n", last.elapsed, a.out);
    status = CLI_EXIT_OK;
    goto done;
fail:
    cli_progress_finish(t.prog);
    status = cli_fail(CMD, rc);
done:
    cli_progress_destroy(t.prog);
    if (t.log) fclose(t.log);
    free(idx);
    crn_clf_data_free(&d);
    tsess_free(&s);
    targs_free(&a);
    return status;
}

/* ---- predict ---------------------------------------------------------------- */

/* The cleaning a classifier was trained with (its TRAIN section; none if
 * the file has no run state or no patterns). */
static int model_cleaner(crn_clf_cleaner **out, const crn_checkpoint *ck, const char *path) {
    *out = NULL;
    if (!ck->train_blob) return 0;
    crn_clf_run_opts o;
    crn_train_status st;
    int rc = crn_clf_blob_decode(&o, &st, ck->train_blob, ck->train_blob_len);
    if (rc) return crn_error_prefix(rc, "%s", path);
    const crn_train_opts *t = &o.t;
    if (t->n_keep || t->n_drop || t->n_replace)
        rc = crn_clf_cleaner_create(out, t->keep, t->n_keep, t->drop, t->n_drop, t->replace, t->n_replace);
    crn_clf_run_opts_free(&o);
    crn_train_status_free(&st);
    return rc ? crn_error_prefix(rc, "%s", path) : 0;
}

/* A loaded classifier and the buffers to run it on chunks of lines. */
typedef struct runner {
    crn_checkpoint *ck;
    crn_clf_cleaner *clean;  /* replacements only: every line gets an answer */
    crn_clf_encoder enc;
    crn_clf_data d;          /* the current chunk */
    uint32_t *idx, *x, *len;
    float *probs;            /* (chunk, C) in input order */
    size_t cap;              /* lines per chunk */
    uint32_t B;
} runner;

static int runner_open(runner *u, const char *path, size_t chunk, uint32_t B) {
    memset(u, 0, sizeof *u);
    int rc = crn_checkpoint_load_kind(&u->ck, path, CRN_CKPT_CLASSIFIER);
    if (rc) return rc;
    const uint32_t C = u->ck->clf_cfg.classes, T = u->ck->max_len;
    if ((rc = model_cleaner(&u->clean, u->ck, path))) return rc;
    crn_clf_encoder_init(&u->enc, u->ck->vocab, T);
    u->enc.clean = u->clean;
    u->cap = chunk;
    u->B = B;
    u->d.ids = malloc(chunk * T * sizeof *u->d.ids);
    u->d.off = malloc((chunk + 1) * sizeof *u->d.off);
    u->d.label = calloc(chunk, sizeof *u->d.label);
    if (u->d.off) u->d.off[0] = 0;
    u->idx = malloc(chunk * sizeof *u->idx);
    u->x = malloc((size_t)B * T * sizeof *u->x);
    u->len = malloc(B * sizeof *u->len);
    u->probs = malloc(chunk * C * sizeof *u->probs);
    if (!u->d.ids || !u->d.off || !u->d.label || !u->idx || !u->x || !u->len || !u->probs)
        return crn_error_set(CRN_ENOMEM, "out of memory");
    if ((rc = crn_clf_inference_tables(u->ck->clf, 1))) return rc;
    return crn_clf_reserve_predict(u->ck->clf, B, T);
}

static void runner_close(runner *u) {
    crn_clf_encoder_free(&u->enc);
    crn_clf_cleaner_destroy(u->clean);
    crn_clf_data_free(&u->d);
    free(u->idx);
    free(u->x);
    free(u->len);
    free(u->probs);
    crn_checkpoint_destroy(u->ck);
}

/* Add one line (UTF-8 checked by the caller) to the chunk. */
static int runner_add(runner *u, const uint8_t *s, size_t n) {
    size_t i = u->d.n, at = u->d.off[i];
    uint32_t k;
    int trunc;
    int rc = crn_clf_encode(&u->enc, s, n, u->d.ids + at, &k, &trunc);
    if (rc) return rc;
    u->d.off[i + 1] = at + k;
    u->d.n++;
    return 0;
}

/* Probabilities of every line of the chunk, length-bucketed batches. */
static int runner_run(runner *u) {
    const uint32_t C = u->ck->clf_cfg.classes;
    crn_clf_bucket_order(u->idx, &u->d, NULL, u->d.n, u->B, NULL);
    for (size_t i = 0; i < u->d.n; i += u->B) {
        uint32_t b = (uint32_t)(u->d.n - i < u->B ? u->d.n - i : u->B);
        uint32_t T = crn_clf_fill_batch(u->x, u->len, NULL, &u->d, u->idx + i, b);
        int rc = crn_clf_forward(u->ck->clf, u->x, u->len, NULL, NULL, b, T, NULL, NULL);
        if (rc) return rc;
        const float *p = crn_clf_probs(u->ck->clf);
        for (uint32_t k = 0; k < b; k++) memcpy(u->probs + (size_t)u->idx[i + k] * C, p + (size_t)k * C, C * sizeof *p);
    }
    return 0;
}

static void print_prediction(FILE *f, const runner *u, size_t i, int json) {
    const uint32_t C = u->ck->clf_cfg.classes;
    const float *p = u->probs + i * C;
    uint32_t best = 0;
    for (uint32_t k = 1; k < C; k++)
        if (p[k] > p[best]) best = k;
    char **nm = u->ck->class_names;
    if (!json) {
        fprintf(f, "%s\t%.4f\n", nm[best], p[best]);
        return;
    }
    fputs("{\"label\":", f);
    cli_json_string(f, nm[best], strlen(nm[best]));
    fputs(",\"probs\":{", f);
    for (uint32_t k = 0; k < C; k++) {
        if (k) fputc(',', f);
        cli_json_string(f, nm[k], strlen(nm[k]));
        fprintf(f, ":%.6f", p[k]);
    }
    fputs("}}\n", f);
}

/* Flush the chunk: run it, print it in input order, empty it. */
static int runner_flush(runner *u, FILE *out, int json) {
    if (u->d.n == 0) return 0;
    int rc = runner_run(u);
    if (rc) return rc;
    for (size_t i = 0; i < u->d.n; i++) print_prediction(out, u, i, json);
    fflush(out);
    u->d.n = 0;
    u->d.off[0] = 0;
    return 0;
}

/* Input lines of a file descriptor, read in blocks. Before a read that
 * could wait (no whole line buffered and no input ready), idle(ctx) runs:
 * predict answers the lines it holds before it waits for more, so a pipe
 * gets its answers as it goes (a file, always ready, fills whole chunks). */
typedef struct lines {
    int fd;
    char *buf;
    size_t cap, beg, end, scan; /* buffered [beg, end); no '\n' in [beg, scan) */
    int eof;
} lines;

/* The next line (without its '\n') at *s, *n bytes, valid until the next
 * call. @return 1, 0 at the end of the input, or a negative error. */
static int lines_next(lines *r, const char *name, char **s, size_t *n, int (*idle)(void *), void *ctx) {
    for (;;) {
        char *nl = r->end > r->scan ? memchr(r->buf + r->scan, '\n', r->end - r->scan) : NULL;
        if (nl || (r->eof && r->end > r->beg)) {
            *s = r->buf + r->beg;
            *n = nl ? (size_t)(nl - *s) : r->end - r->beg;
            r->beg = r->scan = nl ? (size_t)(nl - r->buf) + 1 : r->end;
            return 1;
        }
        if (r->eof) return 0;
        r->scan = r->end;
        if (r->beg > 0) { // keep the partial line only, at the start
            memmove(r->buf, r->buf + r->beg, r->end - r->beg);
            r->end -= r->beg;
            r->scan -= r->beg;
            r->beg = 0;
        }
        if (r->end == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 1 << 16;
            char *b = realloc(r->buf, cap);
            if (!b) return crn_error_set(CRN_ENOMEM, "out of memory reading a line of %zu bytes", r->end);
            r->buf = b;
            r->cap = cap;
        }
        struct pollfd pf = {.fd = r->fd, .events = POLLIN};
        if (idle && poll(&pf, 1, 0) == 0) {
            int rc = idle(ctx);
            if (rc) return rc;
        }
        ssize_t k = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return crn_error_set(CRN_EIO, "%s: read error: %s", name, strerror(errno));
        if (k == 0) r->eof = 1;
        r->end += (size_t)(k > 0 ? k : 0);
    }
}

typedef struct flush_ctx {
    runner *u;
    int json;
} flush_ctx;

static int flush_idle(void *p) {
    flush_ctx *f = p;
    return runner_flush(f->u, stdout, f->json);
}

static void predict_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn classify predict MODEL [FILE|-] [options]\n"
            "\n"
            "One text a line in (FILE or standard input), one line out per line in, in the\n"
            "same order: LABEL<TAB>PROBABILITY (of that label). An empty line is classified\n"
            "as one unknown token; lines longer than the model's max length keep their head\n"
            "and tail.\n"
            "Batching: lines are read in chunks (--chunk); each chunk is sorted by length,\n"
            "run in batches of similar lengths (--batch) split across the threads, and\n"
            "answered in input order. A chunk is answered when it is full, at the end of\n"
            "the input, or as soon as the input pauses (a pipe or terminal waiting for more),\n"
            "so a line's answer never waits for more than the lines of its own chunk.\n"
            "\n"
            "Options:\n"
            "      --json         one JSON object a line: {\"label\": L, \"probs\": {class: p, ...}}\n"
            "      --chunk N      lines read before answering (default 4096; 1 = answer each line)\n"
            "      --batch N      lines per forward pass (default 256)\n"
            "      --threads N    0 = all cores (default 0)\n"
            "  -h, --help         show this help\n");
}

static int cmd_predict(int argc, char **argv) {
    static const struct option lo[] = {
        {"json", no_argument, 0, T_JSON}, {"chunk", required_argument, 0, T_MAXLEN},
        {"batch", required_argument, 0, T_BATCH}, {"threads", required_argument, 0, T_THREADS},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int json = 0, c;
    long long chunk = 4096, B = 256, threads = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'h': predict_usage(stdout); return CLI_EXIT_OK;
        case T_JSON: json = 1; break;
        case T_MAXLEN: if (cli_parse_long(CMD, "--chunk", optarg, 1, 1 << 20, &chunk) < 0) return CLI_EXIT_USAGE; break;
        case T_BATCH: if (cli_parse_long(CMD, "--batch", optarg, 1, 65536, &B) < 0) return CLI_EXIT_USAGE; break;
        case T_THREADS: if (cli_parse_long(CMD, "--threads", optarg, 0, 1024, &threads) < 0) return CLI_EXIT_USAGE; break;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "predict: missing MODEL");
    if (optind + 2 < argc) return cli_usage_error(CMD, "predict: unexpected argument '%s'", argv[optind + 2]);
    const char *path = optind + 1 < argc ? argv[optind + 1] : "-";
    const int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "(stdin)" : path;
    lines in = {.fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY)};
    if (in.fd < 0) {
        cli_error(CMD, "%s: cannot open: %s", path, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    crn_set_threads((int)threads);
    runner u;
    int rc = runner_open(&u, argv[optind], (size_t)chunk, (uint32_t)(B < chunk ? B : chunk));
    flush_ctx fc = {&u, json};
    char *line = NULL;
    size_t n = 0, lineno = 0;
    while (!rc && (rc = lines_next(&in, name, &line, &n, flush_idle, &fc)) == 1) {
        rc = 0;
        lineno++;
        if (n > 0 && line[n - 1] == '\r') n--;
        crn_textpos bad;
        if ((rc = crn_utf8_validate((const uint8_t *)line, n, &bad))) {
            rc = crn_error_prefix(rc, "%s:%zu:%zu", name, lineno, bad.col);
            break;
        }
        if (!(rc = runner_add(&u, (const uint8_t *)line, n)) && u.d.n == u.cap) rc = runner_flush(&u, stdout, json);
    }
    if (!rc) rc = runner_flush(&u, stdout, json);
    free(in.buf);
    if (!is_stdin) close(in.fd);
    runner_close(&u);
    return rc ? cli_fail(CMD, rc) : CLI_EXIT_OK;
}

/* ---- eval ------------------------------------------------------------------- */

static void eval_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn classify eval MODEL DATA [options]\n"
            "\n"
            "Accuracy, macro-F1, log loss, per-class precision and recall and the confusion\n"
            "matrix (rows: true class, columns: predicted) of a labelled table under a model.\n"
            "Every label must be one of the model's classes.\n"
            "\n"
            "Options:\n"
            "      --json               one JSON object\n"
            "      --format F           tsv | csv (default: by extension)\n"
            "      --text-column C      (default document, else text)\n"
            "      --label-column C     (default label)\n"
            "      --batch N            lines per forward pass (default 256)\n"
            "      --threads N          0 = all cores (default 0)\n"
            "  -h, --help               show this help\n");
}

static void print_metrics(FILE *f, const crn_clf_metrics *mt, char **names, int json) {
    const uint32_t C = mt->C;
    if (!json) {
        fprintf(f, "lines %llu  accuracy %.4f  macro-F1 %.4f  log loss %.4f\n", (unsigned long long)mt->n,
                crn_clf_accuracy(mt), crn_clf_macro_f1(mt), crn_clf_log_loss(mt));
        for (uint32_t k = 0; k < C; k++) {
            double p, r;
            crn_clf_class_pr(mt, k, &p, &r);
            fprintf(f, "class %-12s precision %.4f  recall %.4f  confusion", names[k], p, r);
            for (uint32_t j = 0; j < C; j++) fprintf(f, " %llu", (unsigned long long)mt->confusion[(size_t)k * C + j]);
            fputc('\n', f);
        }
        return;
    }
    fprintf(f, "{\"lines\":%llu,\"accuracy\":%.6f,\"macro_f1\":%.6f,\"log_loss\":%.6f,\"classes\":[", (unsigned long long)mt->n,
            crn_clf_accuracy(mt), crn_clf_macro_f1(mt), crn_clf_log_loss(mt));
    for (uint32_t k = 0; k < C; k++) {
        double p, r;
        crn_clf_class_pr(mt, k, &p, &r);
        fputs(k ? ",{\"label\":" : "{\"label\":", f);
        cli_json_string(f, names[k], strlen(names[k]));
        fprintf(f, ",\"precision\":%.6f,\"recall\":%.6f}", p, r);
    }
    fputs("],\"confusion\":[", f);
    for (uint32_t k = 0; k < C; k++) {
        fputs(k ? ",[" : "[", f);
        for (uint32_t j = 0; j < C; j++) fprintf(f, "%s%llu", j ? "," : "", (unsigned long long)mt->confusion[(size_t)k * C + j]);
        fputc(']', f);
    }
    fputs("]}\n", f);
}

static int cmd_eval(int argc, char **argv) {
    static const struct option lo[] = {
        {"json", no_argument, 0, T_JSON}, {"format", required_argument, 0, T_FORMAT},
        {"text-column", required_argument, 0, T_TEXT}, {"label-column", required_argument, 0, T_LABEL},
        {"batch", required_argument, 0, T_BATCH}, {"threads", required_argument, 0, T_THREADS},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    targs a;
    memset(&a, 0, sizeof a);
    a.ro.need_label = 1;
    a.to.batch = 256;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') {
            eval_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (c == T_JSON) json = 1;
        else if (c == '?') return cli_bad_option(CMD);
        else if (parse_train_opt(&a, c, optarg) < 0) return CLI_EXIT_USAGE;
    }
    if (optind + 2 != argc)
        return optind + 2 > argc ? cli_usage_error(CMD, "eval: expected MODEL DATA")
                                 : cli_usage_error(CMD, "eval: unexpected argument '%s'", argv[optind + 2]);
    crn_set_threads((int)a.threads);
    crn_checkpoint *ck = NULL;
    crn_records *r = NULL;
    crn_clf_data d = {0};
    crn_clf_metrics mt = {0};
    int rc = crn_checkpoint_load_kind(&ck, argv[optind], CRN_CKPT_CLASSIFIER);
    if (!rc) rc = crn_records_load(&r, argv[optind + 1], &a.ro);
    crn_clf_cleaner *clean = NULL;
    if (!rc) rc = model_cleaner(&clean, ck, argv[optind]);
    if (!rc) {
        classes cls = {ck->class_names, ck->clf_cfg.classes};
        rc = build_data(&d, r, ck->vocab, ck->max_len, &cls, clean);
    }
    crn_clf_cleaner_destroy(clean);
    if (!rc) rc = crn_clf_inference_tables(ck->clf, 1);
    if (!rc) rc = crn_clf_metrics_init(&mt, ck->clf_cfg.classes);
    if (!rc) rc = crn_clf_evaluate(ck->clf, &d, NULL, d.n, a.to.batch, &mt);
    if (!rc && d.dropped)
        fprintf(stderr, "classify eval: %llu rows left out by the model's --keep/--drop\n", (unsigned long long)d.dropped);
    if (!rc) print_metrics(stdout, &mt, ck->class_names, json);
    crn_clf_metrics_free(&mt);
    crn_clf_data_free(&d);
    crn_records_destroy(r);
    crn_checkpoint_destroy(ck);
    return rc ? cli_fail(CMD, rc) : CLI_EXIT_OK;
}

/* ---- repl on a classifier ----------------------------------------------------- */

int cli_classify_repl(const char *cmd, const char *path, int threads) {
    crn_checkpoint *probe = NULL;
    if (crn_checkpoint_load_kind(&probe, path, CRN_CKPT_CLASSIFIER | CRN_CKPT_GENERATOR) || !probe->clf) {
        crn_checkpoint_destroy(probe);
        return -1; // not a classifier: the generator repl (which reports load errors)
    }
    crn_checkpoint_destroy(probe);
    crn_set_threads(threads);
    runner u;
    int rc = runner_open(&u, path, 1, 1);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    fprintf(stderr, "%s: classifier with %u classes; type a line (Ctrl-D ends)\n", cmd, u.ck ? u.ck->clf_cfg.classes : 0);
    while (!rc && (fputs("> ", stderr), (n = getline(&line, &cap, stdin)) >= 0)) {
        if (n > 0 && line[n - 1] == '\n') n--;
        if (crn_utf8_validate((const uint8_t *)line, (size_t)n, NULL)) {
            fprintf(stderr, "%s: %s\n", cmd, crn_error_message());
            continue;
        }
        if (!(rc = runner_add(&u, (const uint8_t *)line, (size_t)n))) rc = runner_flush(&u, stdout, 1);
    }
    free(line);
    runner_close(&u);
    return rc ? cli_fail(cmd, rc) : CLI_EXIT_OK;
}

/* ---- info on a classifier --------------------------------------------------- */

/* info --json of a file with a run state (MODEL.resume): where the run is. */
static void print_run_json(crn_checkpoint *ck) {
    crn_clf_run_opts o;
    crn_train_status st;
    if (!ck->train_blob || crn_clf_blob_decode(&o, &st, ck->train_blob, ck->train_blob_len)) return;
    uint32_t oc = 0;
    for (int i = 0; ck->optim && i < crn_optim_num_buffers(ck->optim); i++)
        oc = crn_crc32(oc, crn_optim_buffer(ck->optim, i), crn_clf_num_params(ck->clf) * sizeof(float));
    printf(", \"training\": {\"step\": %llu, \"evals\": %llu, \"stop\": \"%s\", \"data\": ",
           (unsigned long long)st.step, (unsigned long long)st.n_evals, crn_train_stop_name(st.stop_reason));
    cli_json_string(stdout, o.t.corpus_path, strlen(o.t.corpus_path));
    printf(", \"optimizer_crc32\": %u}", oc);
    crn_clf_run_opts_free(&o);
    crn_train_status_free(&st);
}

int cli_classify_info(const char *cmd, const char *path, int json) {
    crn_checkpoint *ck = NULL;
    if (crn_checkpoint_load_kind(&ck, path, CRN_CKPT_CLASSIFIER | CRN_CKPT_GENERATOR) || !ck->clf) {
        crn_checkpoint_destroy(ck);
        return -1;
    }
    (void)cmd;
    const crn_clf_config *c = &ck->clf_cfg;
    const uint32_t C = c->classes;
    if (json) {
        printf("{\"file\": ");
        cli_json_string(stdout, path, strlen(path));
        printf(", \"kind\": \"classifier\", \"head\": \"%s\", \"classes\": [", C == 2 ? "sigmoid" : "softmax");
        for (uint32_t k = 0; k < C; k++) {
            if (k) fputs(", ", stdout);
            cli_json_string(stdout, ck->class_names[k], strlen(ck->class_names[k]));
        }
        printf("], \"pooling\": \"%s\", \"direction\": \"%s\", \"max_len\": %u, \"cell\": \"%s\", \"layers\": %u, "
               "\"hidden\": %u, \"embed\": %u, \"dropout\": %g, \"layer_norm\": %s, \"vocab_size\": %u, "
               "\"unit\": \"%s\", \"normalize\": \"%s\", \"params\": %zu, \"params_crc32\": %u",
               crn_pool_name(c->pool), crn_bidir_name(c->bidir), ck->max_len, crn_cell_name(c->base.cell), c->base.layers,
               c->base.hidden, c->base.embed, (double)c->base.dropout, c->base.layer_norm ? "true" : "false",
               c->base.vocab,
               crn_unit_name(crn_vocab_unit(ck->vocab)), crn_norm_name(crn_vocab_norm(ck->vocab)),
               crn_clf_num_params(ck->clf),
               crn_crc32(0, crn_clf_params(ck->clf), crn_clf_num_params(ck->clf) * sizeof(float)));
        print_run_json(ck);
        printf("}\n");
    } else {
        printf("file        %s\nkind        classifier (%s head, %u classes:", path, C == 2 ? "sigmoid" : "softmax", C);
        for (uint32_t k = 0; k < C; k++) printf(" %s", ck->class_names[k]);
        printf(")\npooling     %s\ndirection   %s\nmax length  %u tokens\n", crn_pool_name(c->pool),
               crn_bidir_name(c->bidir), ck->max_len);
        printf("model       %s, %u layer(s) x %u, embed %u, dropout %g%s\nvocabulary  %u (%s, %s)\nparameters  %zu\n",
               crn_cell_name(c->base.cell), c->base.layers, c->base.hidden, c->base.embed, (double)c->base.dropout,
               c->base.layer_norm ? ", layer norm" : "",
               c->base.vocab, crn_unit_name(crn_vocab_unit(ck->vocab)), crn_norm_name(crn_vocab_norm(ck->vocab)),
               crn_clf_num_params(ck->clf));
    }
    crn_checkpoint_destroy(ck);
    return CLI_EXIT_OK;
}

/* ---- dispatch ----------------------------------------------------------------- */

int cli_classify(int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        fprintf(sub ? stdout : stderr,
                "Usage: charrnn classify train|predict|eval ...\n"
                "\n"
                "  train DATA -o MODEL     train a classifier on a labelled TSV/CSV table\n"
                "  predict MODEL [FILE|-]  label each line\n"
                "  eval MODEL DATA         accuracy, macro-F1, log loss, confusion matrix\n"
                "\n"
                "Run 'charrnn classify SUBCOMMAND --help' for its options.\n");
        return sub ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (!strcmp(sub, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(sub, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(sub, "eval")) return cmd_eval(argc - 1, argv + 1);
    return cli_usage_error(CMD, "unknown subcommand '%s' (expected train, predict or eval)", sub);
}
