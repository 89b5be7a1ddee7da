/* cli_train.c — `charrnn train CORPUS -o MODEL [options]`: option parsing,
 * resume/fine-tune set-up, signals, and the final report. The loop is in
 * train.c; the display in cli_progress.c. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autoconf.h"
#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "cli_progress.h"
#include "cli_dist.h"
#include "dist.h"
#include "train.h"

#define CMD "train"
#define DEFAULT_TIME 300.0 /* seconds, when no budget is given */
/* A named model's corpus below this size is counted before the budget's
 * dropout is chosen; a larger one only if the budget may cover enough
 * epochs for dropout. */
#define SCAN_NOW_BYTES (64u << 20)

static void usage(FILE *f) {
    fprintf(f,
        "Usage: charrnn train CORPUS -o MODEL [options]\n"
        "       charrnn train --resume MODEL [CORPUS] [options]\n"
        "       charrnn train CORPUS -o MODEL --init-from BASE [--extend-vocab] [options]\n"
        "\n"
        "Train a character model on a UTF-8 text file. MODEL always holds the best\n"
        "model by validation loss (a complete, resumable checkpoint); MODEL.resume holds\n"
        "the latest state (written at every eval, every --save-every, at the end and on\n"
        "Ctrl-C). --resume MODEL continues from MODEL.resume (or MODEL if it is missing)\n"
        "exactly where training stopped. Ctrl-C finishes the current step, saves and\n"
        "exits with status 130; a second Ctrl-C aborts at once (saves are atomic).\n"
        "\n"
        "Output:\n"
        "  -o, --output MODEL        model file to write (with --resume: default the resumed MODEL)\n"
        "\n"
        "Corpus:\n"
        "      --unit U              codepoint | grapheme | jamo (default codepoint)\n"
        "      --normalize N         nfc | nfkc | none (default nfc)\n"
        "      --invalid P           invalid UTF-8: error | replace | skip (default error)\n"
        "      --min-count N         rarer tokens map to <unk> (default 1)\n"
        "      --keep REGEX          keep only lines matching (repeatable)\n"
        "      --drop REGEX          drop lines matching (repeatable)\n"
        "      --replace REGEX=TEXT  substitute in every line (repeatable, in order)\n"
        "      --val-frac F          last fraction of the text used for validation (default 0.1; 0 = none)\n"
        "\n"
        "Model:\n"
        "      --cell C              rnn | lstm | gru (default lstm)\n"
        "      --activation A        rnn cell: tanh | relu (default tanh)\n"
        "      --layers N            stacked layers (default 2)\n"
        "      --hidden N            hidden units per layer (default 128)\n"
        "      --embed N             embedding width, 0 = one-hot input (default 0)\n"
        "      --dropout P           dropout between layers, [0, 1) (default: from the epochs the budget\n"
        "                            covers, timed by a short probe: 0 up to F, then 0.15 x log2(epochs/F)\n"
        "                            up to 0.25, F = 3 (lstm, gru) or 7 (rnn); said in one line when not 0)\n"
        "      --layer-norm          layer normalisation in every cell (Ba et al. 2016; the default)\n"
        "      --no-layer-norm       plain cells, without layer normalisation\n"
        "      --init S              initialisation: pytorch | xavier | orthogonal (default: pytorch for\n"
        "                            lstm, uniform +-1/sqrt(hidden) for every weight and bias as PyTorch;\n"
        "                            orthogonal for rnn and gru, orthogonal recurrent gate blocks)\n"
        "      --forget-bias F       LSTM: set the forget-gate bias to F (default: as drawn by --init)\n"
        "      --preset P            tiny | small | medium | large: a model and batch for the budget\n"
        "                            (see below; options given explicitly win)\n"
        "\n"
        "Optimisation:\n"
        "      --batch N             parallel streams B (default 50)\n"
        "      --seq N               steps per window T, truncated BPTT (default 50)\n"
        "      --optimizer O         adam | adamw | rmsprop | adagrad | sgd (default adam)\n"
        "      --lr F                learning rate (default 2e-3; adagrad and sgd 0.1)\n"
        "      --weight-decay F      adamw: decoupled (default 0.01); others: L2 (default 0)\n"
        "      --momentum F          sgd momentum (default 0)\n"
        "      --clip F              clip gradients to this global norm, 0 = off (default 5)\n"
        "      --schedule S          constant | step | cosine | linear (default constant; step if\n"
        "                            --lr-decay is given). cosine and linear decay to 0 at the end of\n"
        "                            the budget; with --time the end is re-estimated from the measured\n"
        "                            time per step, so the rate reaches ~0 when the time runs out\n"
        "      --lr-decay F          step schedule: multiply lr by F ... (default 1 = none)\n"
        "      --lr-decay-after N    ... from step N on, then once more every epoch (default 0)\n"
        "      --warmup N            linear warm-up steps (default 0)\n"
        "\n"
        "Budget (whichever comes first; with --resume, giving any of these replaces all three):\n"
        "      --time D              wall-clock time of this session, e.g. 90s, 10m, 1.5h\n"
        "                            (default 5m when no budget option is given; a resumed run\n"
        "                            without budget options gets its original --time again)\n"
        "      --steps N             total optimizer steps of the run, counting resumed ones\n"
        "                            (default: no limit)\n"
        "      --epochs N            total passes over the training text (default: no limit)\n"
        "\n"
        "Validation and checkpoints:\n"
        "      --eval-every N        validate every N steps and at the end (default 500; 0 = end only)\n"
        "      --patience N          stop after N evals without improvement (default 0 = off)\n"
        "      --save-every N|D      also save MODEL.resume every N steps, or every D (with a unit,\n"
        "                            e.g. 10m) (default 10m)\n"
        "      --no-optimizer-state  write MODEL without optimizer state (smaller; MODEL.resume keeps it)\n"
        "      --resume MODEL        continue a run; options come from the checkpoint unless given\n"
        "                            (model shape, unit, cleaning, batch, seq and optimizer cannot change)\n"
        "      --init-from BASE      fine-tune: start from BASE's weights and vocabulary (fresh optimizer);\n"
        "                            characters BASE lacks map to <unk>\n"
        "      --extend-vocab        with --init-from: give new characters new rows instead\n"
        "\n"
        "Other:\n"
        "      --seed N              random seed (default 123); with --threads 1 runs are bit-identical\n"
        "      --threads N           threads, 0 = all cores (default 0; under mpirun each rank\n"
        "                            gets the cores of its machine / the ranks on it)\n"
        "      --log FILE.csv        CSV log: step,epoch,seconds,train_bpc,val_bpc,lr,chars_per_s\n"
        "      --sample-every N      print a short sample at evals, at most every N steps (default 0 = off)\n"
        "      --sample-len N        tokens per sample (default 200)\n"
        "  -q, --quiet               no progress output\n"
        "  -h, --help                show this help\n"
        "\n"
        "Automatic configuration: a new run given no model shape (--cell, --activation,\n"
        "--layers, --hidden, --embed), no --preset, no --init-from and only a time budget\n"
        "picks a preset, dropout, batch and schedule (cosine to 0 over a long budget) from\n"
        "the corpus size, its vocabulary and the time, and prints its choice and why in one\n"
        "line; --dropout, --batch, --seq, --lr, --schedule, ... given explicitly win. Presets:\n"
        "  tiny   lstm 1x128, embed 32, dropout 0, batch 32 x seq 64\n"
        "  small  lstm 2x256, embed 64, dropout 0.1, batch 32 x seq 64\n"
        "  medium lstm 2x384, embed 64, dropout 0.25, batch 32 x seq 64\n"
        "  large  lstm 2x512, embed 64, dropout 0.3, batch 32 x seq 100\n"
        "\n"
        "Progress goes to stderr: on a terminal one live line (epoch, step, train and\n"
        "validation bits per char, chars/s, time left); otherwise one line per eval.\n"
        "Bits per char are per NFC code point of the source text in every unit.\n"
        "\n"
        "Several processes (MPI):\n%s\n",
        crn_dist_built()
            ? "  This build has Open MPI: mpirun -np N charrnn train ... trains data-parallel\n"
              "  on N ranks (--hostfile for several machines). --batch is the global batch\n"
              "  (at least N: each rank trains about batch/N streams), so N ranks follow one\n"
              "  process; only rank 0 prints and writes files; --resume works with another N.\n"
              "  Without --threads each rank takes its machine's cores / the ranks on it.\n"
              "  SIGTERM or SIGUSR1 to mpirun stops every rank at one step; rank 0 saves.\n"
              "  See docs/distributed.md."
            : "  This build has no MPI. To enable it, install Open MPI (tools/setup installs\n"
              "  libopenmpi-dev and openmpi-bin) and rebuild:\n"
              "    meson configure build -Dmpi=enabled && meson compile -C build");
}

enum {
    O_UNIT = 256, O_NORM, O_INVALID, O_MINCOUNT, O_KEEP, O_DROP, O_REPLACE, O_VALFRAC,
    O_CELL, O_ACT, O_LAYERS, O_HIDDEN, O_EMBED, O_DROPOUT, O_LN, O_NO_LN,
    O_BATCH, O_SEQ, O_OPTIM, O_LR, O_WD, O_MOMENTUM, O_CLIP, O_SCHED, O_DECAY, O_DECAY_AFTER, O_WARMUP,
    O_TIME, O_STEPS, O_EPOCHS, O_EVAL, O_PATIENCE, O_SAVE, O_NOOPT, O_RESUME, O_INIT, O_EXTEND,
    O_SEED, O_THREADS, O_LOG, O_SAMPLE, O_SAMPLE_LEN, O_INIT_SCHEME, O_FORGET, O_PRESET, O_END
};

static const struct option long_opts[] = {
    {"output", required_argument, 0, 'o'},
    {"unit", required_argument, 0, O_UNIT},
    {"normalize", required_argument, 0, O_NORM},
    {"invalid", required_argument, 0, O_INVALID},
    {"min-count", required_argument, 0, O_MINCOUNT},
    {"keep", required_argument, 0, O_KEEP},
    {"drop", required_argument, 0, O_DROP},
    {"replace", required_argument, 0, O_REPLACE},
    {"val-frac", required_argument, 0, O_VALFRAC},
    {"cell", required_argument, 0, O_CELL},
    {"activation", required_argument, 0, O_ACT},
    {"layers", required_argument, 0, O_LAYERS},
    {"hidden", required_argument, 0, O_HIDDEN},
    {"embed", required_argument, 0, O_EMBED},
    {"dropout", required_argument, 0, O_DROPOUT},
    {"layer-norm", no_argument, 0, O_LN},
    {"no-layer-norm", no_argument, 0, O_NO_LN},
    {"batch", required_argument, 0, O_BATCH},
    {"seq", required_argument, 0, O_SEQ},
    {"optimizer", required_argument, 0, O_OPTIM},
    {"lr", required_argument, 0, O_LR},
    {"weight-decay", required_argument, 0, O_WD},
    {"momentum", required_argument, 0, O_MOMENTUM},
    {"clip", required_argument, 0, O_CLIP},
    {"schedule", required_argument, 0, O_SCHED},
    {"lr-decay", required_argument, 0, O_DECAY},
    {"lr-decay-after", required_argument, 0, O_DECAY_AFTER},
    {"warmup", required_argument, 0, O_WARMUP},
    {"time", required_argument, 0, O_TIME},
    {"steps", required_argument, 0, O_STEPS},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"eval-every", required_argument, 0, O_EVAL},
    {"patience", required_argument, 0, O_PATIENCE},
    {"save-every", required_argument, 0, O_SAVE},
    {"no-optimizer-state", no_argument, 0, O_NOOPT},
    {"resume", required_argument, 0, O_RESUME},
    {"init-from", required_argument, 0, O_INIT},
    {"extend-vocab", no_argument, 0, O_EXTEND},
    {"seed", required_argument, 0, O_SEED},
    {"threads", required_argument, 0, O_THREADS},
    {"log", required_argument, 0, O_LOG},
    {"sample-every", required_argument, 0, O_SAMPLE},
    {"sample-len", required_argument, 0, O_SAMPLE_LEN},
    {"init", required_argument, 0, O_INIT_SCHEME},
    {"forget-bias", required_argument, 0, O_FORGET},
    {"preset", required_argument, 0, O_PRESET},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static const char *opt_name(int id) {
    for (const struct option *o = long_opts; o->name; o++)
        if (o->val == id) return o->name;
    return "?";
}

/* Everything the user typed, before it is merged with defaults or a checkpoint. */
typedef struct args {
    unsigned char set[O_END];
    uint64_t given;             /* the same as bits CRN_TOPT_BIT(crn_train_opt_id(name)) */
    crn_train_opts o;           /* only fields whose option is set are meaningful */
    const char *out, *resume, *init_from, *corpus;
    int extend, quiet;
    enum crn_preset preset;
} args;

static int parse_sched(const char *s, enum crn_schedule_kind *k) { return crn_schedule_parse(s, k); }

/* A new run gets the automatic configuration when it names no model shape,
 * no preset and no base model, and its only budget is time (given, or the
 * default). */
static int wants_auto(const args *a) {
    static const int shape[] = {O_CELL, O_ACT, O_LAYERS, O_HIDDEN, O_EMBED, O_PRESET, O_STEPS, O_EPOCHS};
    for (size_t i = 0; i < CRN_ARRAY_LEN(shape); i++)
        if (a->set[shape[i]]) return 0;
    return !a->init_from && !a->resume;
}

/* Data and cleaning options: option c (value optarg, named on in messages) into a->o.
 * @return -1 handled, -2 not one of these, else the exit status. */
static int parse_data_option(args *a, int c, const char *on) {
    crn_train_opts *o = &a->o;
    long long v;
    double d;
    switch (c) {
    case O_UNIT:
        if (crn_unit_parse(optarg, &o->unit)) return cli_usage_error(CMD, "--unit: '%s' is not codepoint, grapheme or jamo", optarg);
        break;
    case O_NORM:
        if (crn_norm_parse(optarg, &o->norm)) return cli_usage_error(CMD, "--normalize: '%s' is not nfc, nfkc or none", optarg);
        break;
    case O_INVALID:
        if (crn_invalid_parse(optarg, &o->invalid)) return cli_usage_error(CMD, "--invalid: '%s' is not error, replace or skip", optarg);
        break;
    case O_MINCOUNT:
        if (cli_parse_long(CMD, on, optarg, 1, (long long)1 << 40, &v)) return CLI_EXIT_USAGE;
        o->min_count = (uint64_t)v;
        break;
    case O_KEEP:
        if (crn_train_opts_set(o, "keep", optarg) < 0) return cli_fail(CMD, CRN_ENOMEM);
        break;
    case O_DROP:
        if (crn_train_opts_set(o, "drop", optarg) < 0) return cli_fail(CMD, CRN_ENOMEM);
        break;
    case O_REPLACE:
        if (!strchr(optarg, '=')) return cli_usage_error(CMD, "--replace: '%s' has no '=' (expected REGEX=TEXT)", optarg);
        if (crn_train_opts_set(o, "replace", optarg) < 0) return cli_fail(CMD, CRN_ENOMEM);
        break;
    case O_VALFRAC:
        if (cli_parse_double(CMD, on, optarg, 0, 0.9, &d)) return CLI_EXIT_USAGE;
        o->val_frac = d;
        break;
    default: return -2;
    }
    return -1;
}

/* Model and optimizer options: option c (value optarg, named on in messages) into a->o.
 * @return -1 handled, -2 not one of these, else the exit status. */
static int parse_model_option(args *a, int c, const char *on) {
    crn_train_opts *o = &a->o;
    long long v;
    double d;
    switch (c) {
    case O_CELL:
        if (crn_cell_parse(optarg, &o->model.cell)) return cli_usage_error(CMD, "--cell: '%s' is not rnn, lstm or gru", optarg);
        break;
    case O_ACT:
        if (crn_act_parse(optarg, &o->model.act)) return cli_usage_error(CMD, "--activation: '%s' is not tanh or relu", optarg);
        break;
    case O_LAYERS:
        if (cli_parse_long(CMD, on, optarg, 1, 64, &v)) return CLI_EXIT_USAGE;
        o->model.layers = (uint32_t)v;
        break;
    case O_HIDDEN:
        if (cli_parse_long(CMD, on, optarg, 1, 16384, &v)) return CLI_EXIT_USAGE; /* model.c's CRN_MAX_HIDDEN */
        o->model.hidden = (uint32_t)v;
        break;
    case O_EMBED:
        if (cli_parse_long(CMD, on, optarg, 0, 16384, &v)) return CLI_EXIT_USAGE; /* CRN_MAX_EMBED */
        o->model.embed = (uint32_t)v;
        break;
    case O_DROPOUT:
        if (cli_parse_double(CMD, on, optarg, 0, 0.99, &d)) return CLI_EXIT_USAGE;
        o->model.dropout = (float)d;
        break;
    case O_LN: o->model.layer_norm = 1; break;
    case O_NO_LN: o->model.layer_norm = 0; break;
    case O_INIT_SCHEME:
        if (crn_init_parse(optarg, &o->init.kind))
            return cli_usage_error(CMD, "--init: '%s' is not pytorch, xavier or orthogonal", optarg);
        break;
    case O_FORGET:
        if (cli_parse_double(CMD, on, optarg, -100, 100, &d)) return CLI_EXIT_USAGE;
        o->init.forget_bias = (float)d;
        break;
    case O_PRESET:
        if (crn_preset_parse(optarg, &a->preset))
            return cli_usage_error(CMD, "--preset: '%s' is not tiny, small, medium or large", optarg);
        break;
    case O_BATCH:
        if (cli_parse_long(CMD, on, optarg, 1, 1 << 16, &v)) return CLI_EXIT_USAGE;
        o->batch = (uint32_t)v;
        break;
    case O_SEQ:
        if (cli_parse_long(CMD, on, optarg, 1, 1 << 16, &v)) return CLI_EXIT_USAGE;
        o->seq = (uint32_t)v;
        break;
    case O_OPTIM:
        if (crn_optim_parse(optarg, &o->optim.kind))
            return cli_usage_error(CMD, "--optimizer: '%s' is not adam, adamw, rmsprop, adagrad or sgd", optarg);
        break;
    case O_LR:
        if (cli_parse_double(CMD, on, optarg, 1e-12, 100, &d)) return CLI_EXIT_USAGE;
        o->optim.lr = (float)d;
        break;
    case O_WD:
        if (cli_parse_double(CMD, on, optarg, 0, 100, &d)) return CLI_EXIT_USAGE;
        o->optim.weight_decay = (float)d;
        break;
    case O_MOMENTUM:
        if (cli_parse_double(CMD, on, optarg, 0, 0.9999, &d)) return CLI_EXIT_USAGE;
        o->optim.momentum = (float)d;
        break;
    case O_CLIP:
        if (cli_parse_double(CMD, on, optarg, 0, 1e30, &d)) return CLI_EXIT_USAGE;
        o->clip = d;
        break;
    case O_SCHED:
        if (parse_sched(optarg, &o->sched.kind)) return cli_usage_error(CMD, "--schedule: '%s' is not constant, step, cosine or linear", optarg);
        break;
    case O_DECAY:
        if (cli_parse_double(CMD, on, optarg, 1e-6, 1, &d)) return CLI_EXIT_USAGE;
        o->sched.decay = (float)d;
        break;
    case O_DECAY_AFTER:
        if (cli_parse_long(CMD, on, optarg, 0, (long long)1 << 50, &v)) return CLI_EXIT_USAGE;
        o->sched.decay_after = (uint64_t)v;
        break;
    case O_WARMUP:
        if (cli_parse_long(CMD, on, optarg, 0, (long long)1 << 50, &v)) return CLI_EXIT_USAGE;
        o->sched.warmup = (uint64_t)v;
        break;
    default: return -2;
    }
    return -1;
}

/* Budget, checkpoint and run options: option c (value optarg, named on in messages) into a->o.
 * @return -1 handled, -2 not one of these, else the exit status. */
static int parse_run_option(args *a, int c, const char *on) {
    crn_train_opts *o = &a->o;
    long long v;
    double d;
    switch (c) {
    case O_TIME:
        if (cli_parse_duration(CMD, on, optarg, &d)) return CLI_EXIT_USAGE;
        o->time_limit = d;
        break;
    case O_STEPS:
        if (cli_parse_long(CMD, on, optarg, 1, (long long)1 << 50, &v)) return CLI_EXIT_USAGE;
        o->max_steps = (uint64_t)v;
        break;
    case O_EPOCHS:
        if (cli_parse_long(CMD, on, optarg, 1, (long long)1 << 40, &v)) return CLI_EXIT_USAGE;
        o->max_epochs = (uint64_t)v;
        break;
    case O_EVAL:
        if (cli_parse_long(CMD, on, optarg, 0, (long long)1 << 50, &v)) return CLI_EXIT_USAGE;
        o->eval_every = (uint64_t)v;
        break;
    case O_PATIENCE:
        if (cli_parse_long(CMD, on, optarg, 0, 1 << 30, &v)) return CLI_EXIT_USAGE;
        o->patience = (uint32_t)v;
        break;
    case O_SAVE: {
        size_t n = strlen(optarg);
        if (n && strspn(optarg, "0123456789") == n) {
            if (cli_parse_long(CMD, on, optarg, 1, (long long)1 << 50, &v)) return CLI_EXIT_USAGE;
            o->save_every_steps = (uint64_t)v;
            o->save_every_seconds = 0;
        } else {
            if (cli_parse_duration(CMD, on, optarg, &d)) return CLI_EXIT_USAGE;
            o->save_every_seconds = d;
            o->save_every_steps = 0;
        }
        break;
    }
    case O_NOOPT: o->no_optimizer_state = 1; break;
    case O_SEED:
        if (cli_parse_long(CMD, on, optarg, 0, INT64_MAX, &v)) return CLI_EXIT_USAGE;
        o->seed = (uint64_t)v;
        break;
    case O_THREADS:
        if (cli_parse_long(CMD, on, optarg, 0, 1024, &v)) return CLI_EXIT_USAGE;
        o->threads = (int)v;
        break;
    case O_LOG:
        free(o->log_path);
        if (!(o->log_path = strdup(optarg))) return cli_fail(CMD, CRN_ENOMEM);
        break;
    case O_SAMPLE:
        if (cli_parse_long(CMD, on, optarg, 0, (long long)1 << 50, &v)) return CLI_EXIT_USAGE;
        o->sample_every = (uint64_t)v;
        break;
    case O_SAMPLE_LEN:
        if (cli_parse_long(CMD, on, optarg, 1, 100000, &v)) return CLI_EXIT_USAGE;
        o->sample_len = (uint32_t)v;
        break;
    default: return -2;
    }
    return -1;
}

/* Parse argv into a. @return -1 ok, else the exit status. */
static int parse_args(args *a, int argc, char **argv) {
    crn_train_opts *o = &a->o;
    crn_train_opts_default(o);
    int c;
    opterr = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", long_opts, NULL)) != -1) {
        if (c == '?') return cli_bad_option(CMD);
        if (c >= O_UNIT && c < O_END) {
            a->set[c] = 1;
            int id = crn_train_opt_id(c == O_NO_LN ? "layer-norm" : opt_name(c)); /* its "0" */
            if (id >= 0) a->given |= CRN_TOPT_BIT(id);
        }
        char optbuf[48];
        snprintf(optbuf, sizeof optbuf, "--%s", c >= O_UNIT ? opt_name(c) : "output");
        const char *on = optbuf;
        switch (c) {
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'q': a->quiet = 1; break;
        case 'o': a->out = optarg; break;
        case O_RESUME: a->resume = optarg; break;
        case O_INIT: a->init_from = optarg; break;
        case O_EXTEND: a->extend = 1; break;
        default: {
            int r = parse_data_option(a, c, on);
            if (r == -2) r = parse_model_option(a, c, on);
            if (r == -2) r = parse_run_option(a, c, on);
            if (r == -2) return cli_bad_option(CMD);
            if (r >= 0) return r;
        }
        }
    }
    if (optind < argc) a->corpus = argv[optind++];
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* ---- signals: first SIGINT/SIGTERM/SIGHUP asks the loop to stop; SA_RESETHAND
 * restores the default action, so a second one aborts at once. ---- */
static void on_signal(int sig) {
    (void)sig;
    crn_train_request_stop();
}

void cli_install_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART; /* a save in progress must not see EINTR */
    /* under mpirun a rank may get the signal twice (from the terminal or a
     * process group, and forwarded by mpirun): the first must not end it;
     * a second Ctrl-C makes mpirun kill the job */
    if (crn_dist_size() > 1) sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* mpirun forwards SIGUSR1 to every rank without killing them afterwards */
    if (crn_dist_size() > 1) sigaction(SIGUSR1, &sa, NULL);
    /* a closed terminal or ssh session saves too, unless hang-ups are
     * ignored (nohup): then training goes on as the user asked */
    struct sigaction old;
    if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(SIGHUP, &sa, NULL);
}

/* The directory of path must exist and be writable (the checkpoint is
 * written as a temp file next to it, then renamed). */
static int check_writable_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        cli_error(CMD, "cannot write %s: directory '%s': %s", path, dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        cli_error(CMD, "cannot write %s: '%s' is not a directory", path, dir);
        return -1;
    }
    if (access(dir, W_OK) != 0) {
        cli_error(CMD, "cannot write %s: directory '%s' is not writable: %s", path, dir, strerror(errno));
        return -1;
    }
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        cli_error(CMD, "cannot write %s: it is a directory", path);
        return -1;
    }
    return 0;
}

/* Refuse to write over the corpus: "-o corpus.txt" (or its MODEL.resume or
 * --log) would replace the text by a model file. Compared by device and
 * inode, so another spelling of the same path is caught too. */
static int check_not_corpus(const char *path, const char *suffix, const char *corpus) {
    struct stat a, b;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s%s", path, suffix);
    if (!corpus || stat(buf, &a) != 0 || stat(corpus, &b) != 0) return 0;
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) return 0;
    cli_error(CMD, "cannot write %s: it is the corpus %s", buf, corpus);
    return -1;
}

/* dst := src through a temp file and rename (dst is never half-written). */
static int copy_file(const char *dst, const char *src) {
    size_t n = strlen(dst);
    char *tmp = malloc(n + 16);
    if (!tmp) return crn_error_set(CRN_ENOMEM, "out of memory");
    snprintf(tmp, n + 16, "%s.tmp-copy", dst);
    FILE *in = fopen(src, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
    int rc = 0;
    if (!in || !out) {
        rc = crn_error_set(CRN_EIO, "%s: cannot copy to %s: %s", src, dst, strerror(errno));
    } else {
        char buf[1 << 16];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, k, out) != k) break;
        if (ferror(in) || ferror(out) || fflush(out) || fsync(fileno(out)))
            rc = crn_error_set(CRN_EIO, "%s: cannot copy to %s: %s", src, dst, strerror(errno));
    }
    if (in) fclose(in);
    if (out && fclose(out) && !rc) rc = crn_error_set(CRN_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, dst)) rc = crn_error_set(CRN_EIO, "%s: cannot rename to %s: %s", tmp, dst, strerror(errno));
    if (rc && out) unlink(tmp);
    free(tmp);
    return rc;
}

/* Under mpirun without --threads: the cores of this machine shared by the
 * ranks on it (Open MPI says how many: OMPI_COMM_WORLD_LOCAL_SIZE). */
static int rank_threads(int threads) {
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (threads > 0 || crn_dist_size() == 1 || !local) return threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN), k = strtol(local, NULL, 10);
    if (cores < 1 || k < 1) return threads;
    return cores / k > 1 ? (int)(cores / k) : 1;
}

/* One `charrnn train`: what was typed and what it sets up (freed in cli_train). */
typedef struct session {
    args a;
    crn_train_opts opts;
    crn_train_resumed run;         /* --resume: the run's files, options and state */
    crn_checkpoint *ck;            /* --init-from: the loaded file */
    crn_trainer *tr;
    cli_progress *prog;
    crn_train_start start;
    crn_auto_input in;             /* the corpus's counts and speeds for the choices made for the budget */
    uint64_t corpus_bytes;         /* its size (wants_budget_dropout) */
} session;

/* --resume: the run's files, its options and state, what the command line changes.
 * @return -1 ok, else the exit status. */
static int setup_resume(session *S) {
    int rc;
    char note[1024];
    crn_train_resumed *R = &S->run;
    rc = crn_train_resumed_open(R, S->a.resume, note, sizeof note);
    if (note[0]) cli_error(CMD, "%s", note);
    if (rc < 0) return cli_fail(CMD, rc);
    if (S->a.corpus) {
        free(S->a.o.corpus_path);
        if (!(S->a.o.corpus_path = strdup(S->a.corpus))) return cli_fail(CMD, CRN_ENOMEM);
        S->a.given |= CRN_TOPT_BIT(CRN_TOPT_CORPUS);
    }
    int refused = -1;
    if ((rc = crn_train_opts_resume(&R->opts, &S->a.o, S->a.given, &refused)) < 0) {
        if (refused < 0) return cli_fail(CMD, rc);
        const int no = refused == CRN_TOPT_LAYER_NORM && !S->a.o.model.layer_norm; /* --no-layer-norm */
        return cli_usage_error(CMD, "--%s%s (start a new run, or use --init-from)", no ? "no-" : "",
                               crn_error_message());
    }
    if (S->a.init_from) return cli_usage_error(CMD, "--resume and --init-from cannot be combined");
    crn_train_opts_free(&S->opts);
    S->opts = R->opts; /* moved: the session's options from here on */
    crn_train_opts_default(&R->opts);
    if (!S->opts.corpus_path)
        return cli_usage_error(CMD, "%s does not record its corpus; give CORPUS", R->loaded_from);
    S->start.resume = R->ck;
    S->start.resume_state = &R->state;
    S->start.log_append = 1;
    S->start.out_path = S->a.out ? S->a.out : R->base;
    if (S->a.out && strcmp(S->a.out, R->base)) {
        /* a new home for the run: it starts with the run's best model */
        if (crn_dist_rank() == 0 && crn_file_exists(R->base) && (rc = copy_file(S->a.out, R->base)) < 0)
            return cli_fail(CMD, rc);
        S->start.log_append = S->a.set[O_LOG] ? 0 : 1;
    }
    return -1;
}

/* A new run whose model is named but not its dropout gets the dropout its
 * budget calls for (crn_budget_dropout). */
static int wants_budget_dropout(const args *a) {
    return !a->set[O_DROPOUT] && !a->set[O_PRESET] && !a->init_from && !a->resume && !wants_auto(a);
}

/* A new run (fresh or --init-from), first part: the corpus, the data and
 * tokenizer options, the base model, and the corpus's counts when the
 * automatic choice needs them. Every rank's outcome is agreed before
 * choose_model (which has collective steps). @return -1 ok, else the exit status. */
static int setup_fresh(session *S) {
    int rc;
    if (!S->a.corpus) return cli_usage_error(CMD, "missing CORPUS (the text file to train on)");
    if (!S->a.out) return cli_usage_error(CMD, "missing -o MODEL (where to write the model)");
    if (S->a.extend && !S->a.init_from) return cli_usage_error(CMD, "--extend-vocab needs --init-from BASE");
    crn_train_opts *u = &S->a.o;
    /* absolute, so --resume works from any directory (as typed if it cannot be resolved) */
    S->opts.corpus_path = realpath(S->a.corpus, NULL);
    if (!S->opts.corpus_path) S->opts.corpus_path = strdup(S->a.corpus);
    if (!S->opts.corpus_path) return cli_fail(CMD, CRN_ENOMEM);
    if (S->a.set[O_UNIT]) S->opts.unit = u->unit;
    if (S->a.set[O_NORM]) S->opts.norm = u->norm;
    if (S->a.set[O_INVALID]) S->opts.invalid = u->invalid;
    if (S->a.set[O_MINCOUNT]) S->opts.min_count = u->min_count;
    if (S->a.set[O_VALFRAC]) S->opts.val_frac = u->val_frac;
    /* the lists were parsed into a.o; move them */
    S->opts.keep = u->keep; S->opts.n_keep = u->n_keep; u->keep = NULL; u->n_keep = 0;
    S->opts.drop = u->drop; S->opts.n_drop = u->n_drop; u->drop = NULL; u->n_drop = 0;
    S->opts.replace = u->replace; S->opts.n_replace = u->n_replace; u->replace = NULL; u->n_replace = 0;
    /* the last of --layer-norm / --no-layer-norm (before the automatic choice, which prices it) */
    if (S->a.set[O_LN] || S->a.set[O_NO_LN]) S->opts.model.layer_norm = u->model.layer_norm;
    if (S->a.init_from) {
        static const int shape[] = {O_CELL, O_ACT, O_LAYERS, O_HIDDEN, O_EMBED, O_LN, O_NO_LN, O_UNIT, O_NORM,
                                    O_PRESET};
        for (size_t i = 0; i < CRN_ARRAY_LEN(shape); i++)
            if (S->a.set[shape[i]])
                return cli_usage_error(CMD, "--%s cannot be combined with --init-from (the model shape and "
                                       "tokenizer come from %s)", opt_name(shape[i]), S->a.init_from);
        if ((rc = crn_checkpoint_load(&S->ck, S->a.init_from)) < 0) return cli_fail(CMD, rc);
        S->opts.unit = crn_vocab_unit(S->ck->vocab);
        S->opts.norm = crn_vocab_norm(S->ck->vocab);
        S->start.init_from = S->ck;
        S->start.extend_vocab = S->a.extend;
    }
    S->in.val_frac = S->opts.val_frac;
    S->in.seconds = S->a.set[O_TIME] ? u->time_limit : DEFAULT_TIME;
    /* counted now (its errors agreed before choose_model), unless large and
     * a named model's; a corpus that cannot be read gets no dropout for the
     * budget here, and the trainer says what is wrong with it */
    struct stat st;
    const uint32_t layers = S->a.set[O_LAYERS] ? u->model.layers : S->opts.model.layers; /* one: no dropout */
    const int named = wants_budget_dropout(&S->a) && layers > 1 && !stat(S->opts.corpus_path, &st) &&
                      S_ISREG(st.st_mode);
    if (named) S->corpus_bytes = (uint64_t)st.st_size;
    if ((wants_auto(&S->a) || (named && S->corpus_bytes < SCAN_NOW_BYTES)) &&
        (rc = crn_auto_scan(S->opts.corpus_path, S->opts.unit, &S->in)) < 0)
        return cli_fail(CMD, rc);
    return -1;
}

/* The automatic choice: probe the presets, rank 0's speeds for every rank
 * (so all choose alike), choose. @return -1 ok, else the exit status. */
static int choose_auto(session *S) {
    const crn_train_opts *u = &S->a.o;
    const int threads = S->a.set[O_THREADS] ? u->threads : S->opts.threads;
    int rc = crn_auto_probe(&S->in, rank_threads(threads), S->opts.model.layer_norm);
    const int shared = crn_dist_bcast(S->in.cps, sizeof S->in.cps, 0); /* reached by every rank */
    if (rc < 0 || (rc = shared) < 0) return cli_fail(CMD, rc);
    for (int p = 0; p < CRN_PRESET_COUNT; p++) S->in.cps[p] *= crn_dist_size(); /* the ranks train at once */
    char why[512];
    crn_auto_config(&S->opts, &S->in, why, sizeof why);
    if (!S->a.quiet) fprintf(stderr, "%s\n", why);
    return -1;
}

/* Dropout for a named model's budget (wants_budget_dropout): the run's
 * speed probed when the budget is time (rank 0's for every rank: one
 * collective step, whatever each rank's corpus), the corpus counted now if
 * setup_fresh left it (a large one) and the most epochs the budget may
 * cover (a text holds a token per 4 bytes or more) call for dropout.
 * @return -1 ok, else the exit status. */
static int choose_budget_dropout(session *S) {
    crn_train_opts *o = &S->opts;
    if (o->model.layers < 2) return -1;
    const uint32_t ranks = (uint32_t)crn_dist_size(), rows = (o->batch + ranks - 1) / ranks;
    double cps = 0;
    int rc = 0;
    if (o->time_limit > 0) {
        crn_model_config cfg = o->model;
        cfg.vocab = S->in.vocab ? S->in.vocab : 256; /* not counted yet: a typical vocabulary */
        rc = crn_probe_speed(&cfg, rows, o->seq, rank_threads(o->threads), &cps);
        const int shared = crn_dist_bcast(&cps, sizeof cps, 0); /* reached by every rank */
        if (rc < 0 || (rc = shared) < 0) return cli_fail(CMD, rc);
        cps *= ranks;
    }
    if (!S->in.chars) {
        const double least = (double)S->corpus_bytes / 4 * (1.0 - S->in.val_frac);
        if (crn_dropout_for_epochs(crn_budget_epochs(o, least, cps), o->model.cell) == 0) return -1;
        if ((rc = crn_auto_scan(o->corpus_path, o->unit, &S->in)) < 0) return cli_fail(CMD, rc);
    }
    char why[256];
    crn_budget_dropout(o, &S->in, cps, why, sizeof why);
    if (why[0] && !S->a.quiet) fprintf(stderr, "%s\n", why);
    return -1;
}

/* A new run, second part: the preset or the automatic choice, the model
 * options typed over it, the session options, then the budget's dropout.
 * Every rank calls it (collective probes). @return -1 ok, else the exit status. */
static int choose_model(session *S) {
    int status;
    crn_train_opts *u = &S->a.o;
    if (S->a.set[O_PRESET]) crn_preset_apply(&S->opts, S->a.preset);
    else if (wants_auto(&S->a) && (status = choose_auto(S)) >= 0) return status;
    /* what was typed wins over the preset or the automatic choice */
    if (S->a.set[O_BATCH]) S->opts.batch = u->batch;
    if (S->a.set[O_SEQ]) S->opts.seq = u->seq;
    if (S->a.set[O_CELL]) S->opts.model.cell = u->model.cell;
    if (S->a.set[O_ACT]) S->opts.model.act = u->model.act;
    if (S->a.set[O_LAYERS]) S->opts.model.layers = u->model.layers;
    if (S->a.set[O_HIDDEN]) S->opts.model.hidden = u->model.hidden;
    if (S->a.set[O_EMBED]) S->opts.model.embed = u->model.embed;
    if (S->a.set[O_DROPOUT]) S->opts.model.dropout = u->model.dropout;
    S->opts.init.kind = S->a.set[O_INIT_SCHEME] ? u->init.kind : crn_init_default_kind(S->opts.model.cell);
    if (S->a.set[O_FORGET]) S->opts.init.forget_bias = u->init.forget_bias;
    int rc;
    if ((rc = crn_train_opts_apply_session(&S->opts, &S->a.o, S->a.given)) < 0) return cli_fail(CMD, rc);
    if (!S->a.set[O_TIME] && !S->a.set[O_STEPS] && !S->a.set[O_EPOCHS]) S->opts.time_limit = DEFAULT_TIME;
    if (wants_budget_dropout(&S->a) && (status = choose_budget_dropout(S)) >= 0) return status;
    S->start.out_path = S->a.out;
    if (S->a.init_from && !strcmp(S->a.init_from, S->a.out))
        cli_error(CMD, "warning: -o is the --init-from model; it will be overwritten by the fine-tuned one");
    return -1;
}

/* Refuse what would fail later (or harm the corpus). @return -1 ok, else the exit status. */
static int check_outputs(session *S) {
    if (crn_train_opts_check(&S->opts) < 0) return cli_usage_error(CMD, "%s", crn_error_message());
    if (check_writable_dir(S->start.out_path) < 0) return CLI_EXIT_ERROR; /* fail now, not at the first save */
    if (check_not_corpus(S->start.out_path, "", S->opts.corpus_path) < 0 ||
        check_not_corpus(S->start.out_path, CRN_RESUME_SUFFIX, S->opts.corpus_path) < 0 ||
        check_not_corpus(S->start.out_path, CRN_IDS_SUFFIX, S->opts.corpus_path) < 0 ||
        (S->opts.log_path && check_not_corpus(S->opts.log_path, "", S->opts.corpus_path) < 0))
        return CLI_EXIT_ERROR;
    return -1;
}

/* A corpus of 256 MB or more takes a while to open (the id cache is built,
 * or the corpus and the cache are read once to check their CRC-32s): say so
 * before the wait, unless --quiet. */
static void note_large_corpus(const session *S) {
    struct stat st;
    if (S->a.quiet || stat(S->opts.corpus_path, &st) != 0 || st.st_size < (off_t)256 << 20) return;
    fprintf(stderr, "reading %s (%.1f GB): its token ids are encoded or checked first (about a minute per GB)\n",
            S->opts.corpus_path, (double)st.st_size / 1e9);
}

/* What is being resumed or fine-tuned (unless --quiet). */
static void report_start(const session *S) {
    if (S->a.quiet) return;
    const crn_corpus *corp = crn_trainer_corpus(S->tr);
    if (corp->id_cache_status != CRN_IDCACHE_NONE)
        fprintf(stderr, "token ids: %s%s (%s)\n", S->start.out_path, CRN_IDS_SUFFIX,
                crn_idcache_status_name(corp->id_cache_status));
    if (S->a.resume)
        fprintf(stderr, "resuming %s at step %llu (epoch %llu)\n", S->run.loaded_from,
                (unsigned long long)S->run.state.step, (unsigned long long)S->run.state.epoch);
    if (S->a.init_from) {
        uint64_t nt = crn_trainer_new_tokens(S->tr);
        if (S->a.extend)
            fprintf(stderr, "fine-tuning from %s: %llu new tokens added to the vocabulary\n", S->a.init_from,
                    (unsigned long long)nt);
        else if (nt)
            fprintf(stderr, "fine-tuning from %s: %llu tokens of the corpus are not in its vocabulary and map "
                    "to <unk> (use --extend-vocab to learn them)\n", S->a.init_from, (unsigned long long)nt);
        else
            fprintf(stderr, "fine-tuning from %s\n", S->a.init_from);
    }
}

/* How the run ended, on stderr; @return the exit status. */
static int report_end(const session *S, int rc) {
    const crn_train_status *s = crn_trainer_state(S->tr);
    char best[160] = "";
    if (s->has_best)
        snprintf(best, sizeof best, " (validation %.4f bits/char at step %llu)", s->best_val_bpc,
                 (unsigned long long)s->best_step);
    if (rc == CRN_EINTR) {
        fprintf(stderr,
                "charrnn train: interrupted after step %llu; nothing lost.\n"
                "  best model:   %s%s\n"
                "  latest state: %s%s\n"
                "  continue with: charrnn train --resume %s\n",
                (unsigned long long)s->step, S->start.out_path, best, S->start.out_path, CRN_RESUME_SUFFIX,
                S->start.out_path);
        return CLI_EXIT_INTERRUPTED;
    }
    if (rc < 0) return cli_fail(CMD, rc);
    if (!S->a.quiet)
        fprintf(stderr, "model: %s%s\nlatest state: %s%s (continue with --resume %s and a larger budget)\n",
                S->start.out_path, best, S->start.out_path, CRN_RESUME_SUFFIX, S->start.out_path);
    return CLI_EXIT_OK;
}

int cli_train(int argc, char **argv) {
    session ses, *S = &ses;
    memset(S, 0, sizeof *S);
    crn_train_opts_default(&S->opts);
    int status, rc;

    /* under mpirun: data-parallel over the ranks (train_dist.h); rank 0 talks */
    if ((rc = crn_dist_init(&argc, &argv)) < 0) { status = cli_fail(CMD, rc); goto done; }
    cli_dist_quiet_others();
    status = parse_args(&S->a, argc, argv);
    if (status < 0) status = S->a.resume ? setup_resume(S) : setup_fresh(S);
    if ((status = cli_dist_agree(CMD, status)) >= 0) goto done; /* any rank's exit is every rank's */
    if (!S->a.resume) status = choose_model(S);
    if (status < 0) status = check_outputs(S);
    if ((status = cli_dist_agree(CMD, status)) >= 0) goto done;
    status = CLI_EXIT_ERROR;
    S->opts.threads = rank_threads(S->opts.threads);
    if ((rc = cli_progress_create(&S->prog, stderr, -1, S->a.quiet)) < 0) { status = cli_fail(CMD, rc); goto done; }
    if (crn_dist_rank() == 0) note_large_corpus(S);
    /* trainer_create and trainer_run agree on their outcome across ranks */
    if ((rc = crn_trainer_create(&S->tr, &S->opts, &S->start)) < 0) { status = cli_fail(CMD, rc); goto done; }
    if (crn_dist_rank() == 0) report_start(S);
    crn_checkpoint_destroy(S->ck);
    S->ck = NULL;
    crn_checkpoint_destroy(S->run.ck);
    S->run.ck = NULL;

    cli_install_stop_signals();
    rc = crn_trainer_run(S->tr, crn_dist_rank() == 0 ? cli_progress_report : NULL, S->prog);
    cli_progress_finish(S->prog);
    status = report_end(S, rc);
done:
    crn_dist_finalize();
    crn_trainer_destroy(S->tr);
    cli_progress_destroy(S->prog);
    crn_checkpoint_destroy(S->ck);
    crn_train_resumed_free(&S->run);
    crn_train_opts_free(&S->opts);
    crn_train_opts_free(&S->a.o);
    return status;
}
