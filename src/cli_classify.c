/* cli_classify.c — `charrnn classify train|predict|eval` and the classifier
 * side of `charrnn repl`: labelled tables in (records.c), the network
 * (classify.c) and its loop (clf_train.c), the model file (checkpoint.c). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "classify.h"
#include "clf_train.h"
#include "cli.h"
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
static int build_data(crn_clf_data *d, const crn_records *r, const crn_vocab *v, uint32_t max_len, const classes *cls) {
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
    int rc = 0;
    size_t at = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len, ll;
        const uint8_t *s = crn_records_text(r, i, &len);
        uint32_t k;
        int trunc;
        d->off[i] = at;
        if ((rc = crn_clf_encode(&e, s, len, d->ids + at, &k, &trunc))) {
            rc = crn_records_fail(r, i, 0, rc, "%s", crn_error_message());
            break;
        }
        at += k;
        d->truncated += (uint64_t)trunc;
        if (cls) {
            const uint8_t *l = crn_records_label(r, i, &ll);
            long c = find_class(cls, l, ll);
            if (c < 0) rc = crn_records_fail(r, i, 1, CRN_EFORMAT, "label '%.*s' is not one of the %u classes", (int)ll, l, cls->n);
            else d->label[i] = (uint32_t)c;
        }
    }
    d->off[n] = at;
    d->n = n;
    crn_clf_encoder_free(&e);
    return rc;
}

/* ---- train ------------------------------------------------------------------ */

static void train_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn classify train DATA -o MODEL [options]\n"
            "\n"
            "Train a many-to-one classifier on a TSV or CSV table with a header: one text\n"
            "and one label a row. Two classes: one sigmoid output with binary cross-entropy;\n"
            "more: a softmax with cross-entropy. A part of DATA is held out for validation;\n"
            "MODEL is the best model by validation accuracy (written at each eval that\n"
            "improves it). Ctrl-C stops after a last eval (the best model is kept).\n"
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
            "Model:\n"
            "      --cell C             rnn | lstm | gru (default gru)\n"
            "      --hidden N           hidden units per direction (default 192)\n"
            "      --embed N            embedding size, 0 = one-hot (default 64)\n"
            "      --layers N           (default 1)\n"
            "      --bidirectional[=W]  also read lines backwards: last (the top layer, the\n"
            "                           default of the flag) or all layers (default: none)\n"
            "      --pool P             last | mean | max over the valid steps (default max)\n"
            "      --dropout F          dropout on the pooled features (default 0.3)\n"
            "      --init-from LM       start embedding and recurrent layers from a character\n"
            "                           generator (its vocabulary, unit, cell and sizes are used)\n"
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
            "  -o, --output MODEL       the model file (required)\n"
            "  -q, --quiet              no progress lines\n"
            "  -h, --help               show this help\n");
}

enum {
    T_FORMAT = 300, T_TEXT, T_LABEL, T_CLASSES, T_BALANCE, T_VAL, T_MAXLEN, T_UNIT, T_NORM, T_MINCOUNT, T_CELL,
    T_HIDDEN, T_EMBED, T_LAYERS, T_BIDIR, T_POOL, T_DROPOUT, T_INIT, T_BATCH, T_OPTIM, T_LR, T_CONST, T_CLIP,
    T_EPOCHS, T_STEPS, T_TIME, T_EVAL, T_PATIENCE, T_SEED, T_THREADS, T_LOG, T_JSON,
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
} targs;

/* Options that take a number: {code, name, min, max, where}. */
static int parse_train_opt(targs *a, int c, const char *arg) {
    long long v;
    double x;
    switch (c) {
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
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->ro.need_label = 1;
    a->val_frac = 0.05;
    a->max_len = 256;
    a->min_count = 2;
    a->unit = CRN_UNIT_CODEPOINT;
    a->norm = CRN_NORM_NFC;
    a->cfg.base = (crn_model_config){.cell = CRN_CELL_GRU, .embed = 64, .hidden = 192, .layers = 1, .dropout = 0.3f};
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
    if (optind >= argc) return cli_usage_error(CMD, "train: missing DATA"), -1;
    if (optind + 1 < argc) return cli_usage_error(CMD, "train: unexpected argument '%s'", argv[optind + 1]), -1;
    if (!a->out) return cli_usage_error(CMD, "train: missing -o MODEL"), -1;
    a->data = argv[optind];
    if (!a->have_budget) a->to.max_epochs = 3;
    return 0;
}

typedef struct tctx {
    const targs *a;
    const crn_vocab *v;
    crn_clf *m;
    const classes *cls;
    FILE *log;
    int saved;
} tctx;

static int on_event(void *ud, const crn_clf_event *ev, int save) {
    tctx *t = ud;
    if (ev->kind != 1) return 0;
    if (save) {
        int rc = crn_checkpoint_save_clf(t->a->out, t->v, t->m, (const char *const *)t->cls->name,
                                         (uint32_t)t->a->max_len, NULL, NULL, 0);
        if (rc) return rc;
        t->saved = 1;
    }
    if (t->log) {
        fprintf(t->log, "%llu,%.4f,%.1f,%.6g,%.6f,%.6f,%.6f,%.6f\n", (unsigned long long)ev->step, ev->epoch,
                ev->elapsed, ev->lr, ev->train_loss, ev->val_loss, ev->val_acc, ev->val_f1);
        fflush(t->log);
    }
    if (!t->a->quiet)
        fprintf(stderr, "step %llu  epoch %.2f  %.0fs  lr %.3g  train loss %.4f  val loss %.4f  acc %.4f  macro-F1 %.4f%s\n",
                (unsigned long long)ev->step, ev->epoch, ev->elapsed, ev->lr, ev->train_loss, ev->val_loss,
                ev->val_acc, ev->val_f1, save ? "  (best, saved)" : "");
    return 0;
}

/* Build the vocabulary from the texts (normalised), unless one is given. */
static int make_vocab(crn_vocab **out, const crn_records *r, const targs *a) {
    crn_vocab *v = NULL;
    int rc = crn_vocab_create(&v, a->unit, a->norm);
    for (size_t i = 0; i < crn_records_count(r) && !rc; i++) {
        size_t n, nn;
        const uint8_t *s = crn_records_text(r, i, &n);
        uint8_t *norm = NULL;
        if (!(rc = crn_utf8_normalize(&norm, &nn, s, n, a->norm))) rc = crn_vocab_count(v, norm, nn);
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

static int cmd_train(int argc, char **argv) {
    targs a;
    int pr = parse_train_args(&a, argc, argv);
    if (pr) return pr > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    crn_records *r = NULL;
    crn_vocab *v = NULL;
    crn_checkpoint *lm = NULL;
    crn_clf *m = NULL;
    classes cls = {0};
    crn_clf_data d = {0};
    uint32_t *idx = NULL;
    tctx t = {.a = &a};
    int rc, status = CLI_EXIT_ERROR;
    crn_set_threads((int)a.threads);
    if ((rc = crn_records_load(&r, a.data, &a.ro)) || (rc = discover_classes(&cls, r, a.classes))) goto fail;
    if (a.init_from) {
        if ((rc = crn_checkpoint_load_kind(&lm, a.init_from, CRN_CKPT_GENERATOR))) goto fail;
        a.cfg.base.cell = lm->cfg.cell;
        a.cfg.base.act = lm->cfg.act;
        a.cfg.base.embed = lm->cfg.embed;
        a.cfg.base.hidden = lm->cfg.hidden;
        a.cfg.base.layers = lm->cfg.layers;
        if ((rc = crn_vocab_clone(&v, lm->vocab))) goto fail;
    } else if ((rc = make_vocab(&v, r, &a))) {
        goto fail;
    }
    a.cfg.base.vocab = crn_vocab_size(v);
    a.cfg.classes = cls.n;
    if ((rc = crn_clf_config_check(&a.cfg)) || (rc = crn_clf_create(&m, &a.cfg))) goto fail;
    crn_rng rng;
    crn_rng_seed(&rng, a.to.seed);
    crn_clf_init(m, &rng);
    int copied = lm ? init_from_lm(m, lm) : 0;
    if ((rc = build_data(&d, r, v, (uint32_t)a.max_len, &cls))) goto fail;
    size_t n = d.n, nval = (size_t)(a.val_frac * (double)n);
    if (!(idx = malloc(n * sizeof *idx))) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory");
        goto fail;
    }
    split(idx, n, a.to.seed);
    if (a.log && !(t.log = fopen(a.log, "w"))) {
        rc = crn_error_set(CRN_EIO, "%s: cannot open: %s", a.log, strerror(errno));
        goto fail;
    }
    if (t.log) fprintf(t.log, "step,epoch,seconds,lr,train_loss,val_loss,val_acc,val_f1\n");
    if (!a.quiet) {
        fprintf(stderr, "classify train: %zu lines (%zu train, %zu validation), %u classes, vocab %u (%s), %llu lines cut to %lld tokens\n",
                n, n - nval, nval, cls.n, a.cfg.base.vocab, crn_unit_name(crn_vocab_unit(v)),
                (unsigned long long)d.truncated, a.max_len);
        fprintf(stderr, "model: %s embed %u hidden %u layers %u, %s direction, %s pooling, %zu parameters%s\n",
                crn_cell_name(a.cfg.base.cell), a.cfg.base.embed, a.cfg.base.hidden, a.cfg.base.layers,
                a.cfg.bidir == CRN_BIDIR_NONE ? "forward" : a.cfg.bidir == CRN_BIDIR_LAST ? "bidirectional top layer" : "bidirectional",
                crn_pool_name(a.cfg.pool), crn_clf_num_params(m), lm ? " (initialised from a generator)" : "");
        if (lm) fprintf(stderr, "init-from %s: %d tensors copied\n", a.init_from, copied);
    }
    t.v = v;
    t.m = m;
    t.cls = &cls;
    cli_install_stop_signals();
    crn_clf_event last;
    rc = crn_clf_train(m, &d, idx + nval, n - nval, idx, nval, &a.to, on_event, &t, &last);
    if (rc == CRN_EINTR) {
        if (!a.quiet) fprintf(stderr, "classify train: interrupted; the best model so far is in %s\n", a.out);
        status = CLI_EXIT_INTERRUPTED;
        goto done;
    }
    if (rc) goto fail;
    if (!a.quiet) fprintf(stderr, "classify train: done in %.0fs; best model in %s\n", last.elapsed, a.out);
    status = CLI_EXIT_OK;
    goto done;
fail:
    status = cli_fail(CMD, rc);
done:
    if (t.log) fclose(t.log);
    free(idx);
    crn_clf_data_free(&d);
    crn_clf_destroy(m);
    classes_free(&cls);
    crn_vocab_destroy(v);
    crn_checkpoint_destroy(lm);
    crn_records_destroy(r);
    return status;
}

/* ---- predict ---------------------------------------------------------------- */

/* A loaded classifier and the buffers to run it on chunks of lines. */
typedef struct runner {
    crn_checkpoint *ck;
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
    crn_clf_encoder_init(&u->enc, u->ck->vocab, T);
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
    return crn_clf_reserve(u->ck->clf, B, T);
}

static void runner_close(runner *u) {
    crn_clf_encoder_free(&u->enc);
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

static void predict_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn classify predict MODEL [FILE|-] [options]\n"
            "\n"
            "One text a line in (FILE or standard input), one line out per line in, in the\n"
            "same order: LABEL<TAB>PROBABILITY (of that label). Lines are read and answered\n"
            "in chunks (--chunk), each run in length-bucketed batches. An empty line is\n"
            "classified as one unknown token; lines longer than the model's max length keep\n"
            "their head and tail.\n"
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
    FILE *in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!in) {
        cli_error(CMD, "%s: cannot open: %s", path, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    crn_set_threads((int)threads);
    runner u;
    int rc = runner_open(&u, argv[optind], (size_t)chunk, (uint32_t)(B < chunk ? B : chunk));
    char *line = NULL;
    size_t lcap = 0, lineno = 0;
    ssize_t n;
    while (!rc && (n = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n') n--;
        if (n > 0 && line[n - 1] == '\r') n--;
        crn_textpos bad;
        if ((rc = crn_utf8_validate((const uint8_t *)line, (size_t)n, &bad))) {
            rc = crn_error_prefix(rc, "%s:%zu:%zu", strcmp(path, "-") ? path : "(stdin)", lineno, bad.col);
            break;
        }
        if (!(rc = runner_add(&u, (const uint8_t *)line, (size_t)n)) && u.d.n == u.cap) rc = runner_flush(&u, stdout, json);
    }
    if (!rc) rc = runner_flush(&u, stdout, json);
    free(line);
    if (in != stdin) fclose(in);
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
    if (!rc) {
        classes cls = {ck->class_names, ck->clf_cfg.classes};
        rc = build_data(&d, r, ck->vocab, ck->max_len, &cls);
    }
    if (!rc) rc = crn_clf_inference_tables(ck->clf, 1);
    if (!rc) rc = crn_clf_metrics_init(&mt, ck->clf_cfg.classes);
    if (!rc) rc = crn_clf_evaluate(ck->clf, &d, NULL, d.n, a.to.batch, &mt);
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
               "\"hidden\": %u, \"embed\": %u, \"dropout\": %g, \"vocab_size\": %u, \"unit\": \"%s\", "
               "\"normalize\": \"%s\", \"params\": %zu}\n",
               crn_pool_name(c->pool), crn_bidir_name(c->bidir), ck->max_len, crn_cell_name(c->base.cell), c->base.layers,
               c->base.hidden, c->base.embed, (double)c->base.dropout, c->base.vocab,
               crn_unit_name(crn_vocab_unit(ck->vocab)), crn_norm_name(crn_vocab_norm(ck->vocab)),
               crn_clf_num_params(ck->clf));
    } else {
        printf("file        %s\nkind        classifier (%s head, %u classes:", path, C == 2 ? "sigmoid" : "softmax", C);
        for (uint32_t k = 0; k < C; k++) printf(" %s", ck->class_names[k]);
        printf(")\npooling     %s\ndirection   %s\nmax length  %u tokens\n", crn_pool_name(c->pool),
               crn_bidir_name(c->bidir), ck->max_len);
        printf("model       %s, %u layer(s) x %u, embed %u, dropout %g\nvocabulary  %u (%s, %s)\nparameters  %zu\n",
               crn_cell_name(c->base.cell), c->base.layers, c->base.hidden, c->base.embed, (double)c->base.dropout,
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
