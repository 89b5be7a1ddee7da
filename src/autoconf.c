/* autoconf.c — presets and the automatic configuration for a time budget
 * (autoconf.h). */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "pool.h"
#include "rng.h"
#include "utf8.h"

typedef struct preset {
    const char *name;
    uint32_t layers, hidden, embed, batch, seq;
    float dropout;          /* with --preset; the automatic choice sets its own */
} preset;

/* Speed, when crn_auto_probe did not measure it (the automatic choice of
 * `charrnn train` always probes): the reference machine trains the canonical
 * configurations without layer normalisation at about 150 GFLOPS counted as
 * 3 x the forward FLOPs per char (issue 12's measured throughputs: A 105k,
 * B 105k, C 8.1k, D 37k chars/s = 150, 145, 161, 146; uncalibrated since),
 * so a preset's chars/s is estimated as 150e9 / (3 x its forward FLOPs per
 * char for the corpus's vocabulary), capped at 120k (small products run below
 * that rate), and divided by layer normalisation's cost factor (below) when
 * the run has it (the default). docs/training.md has the table. */
#define AUTO_GFLOPS 150.0
#define AUTO_MAX_CHARS_PER_S 120000.0
/* Layer normalisation's cost: CPU time per training step with it over
 * without, minus 1, measured at --threads 1 on the configuration named
 * (docs/training.md, "Layer normalisation", "Cost"): its elementwise work
 * per token grows with H while the products' grows with H^2, so the extra
 * share is scaled by H_ref / H for a preset of width H. */
static const struct {
    double extra; /* measured extra share of the step time */
    double h_ref; /* at this hidden size */
} ln_cost[] = {
    [CRN_CELL_RNN] = {0.11, 256},  /* config B: rnn 2x256, embed 64, batch 32 x seq 64 */
    [CRN_CELL_LSTM] = {0.17, 128}, /* config A: lstm 2x128, one-hot, batch 50 x seq 50 */
    [CRN_CELL_GRU] = {0.07, 256},  /* config D: gru 2x256, embed 64, batch 32 x seq 64 */
};

static const preset presets[CRN_PRESET_COUNT] = {
    [CRN_PRESET_NONE] = {"none", 0, 0, 0, 0, 0, 0},
    [CRN_PRESET_TINY] = {"tiny", 1, 128, 32, 32, 64, 0.0f},
    [CRN_PRESET_SMALL] = {"small", 2, 256, 64, 32, 64, 0.1f},
    [CRN_PRESET_MEDIUM] = {"medium", 2, 384, 64, 32, 64, 0.25f},
    [CRN_PRESET_LARGE] = {"large", 2, 512, 64, 32, 100, 0.3f},
};

/* Tokens of training per parameter the budget must afford for a preset to
 * be picked, and the least corpus characters per parameter. */
#define AUTO_TOKENS_PER_PARAM 3.0
#define AUTO_CHARS_PER_PARAM 0.25
/* Fewest estimated steps for which the schedule is cosine to zero over the
 * budget (constant below). */
#define AUTO_DECAY_MIN_STEPS 3000.0
/* Dropout for the budget: none up to this many epochs (the gated cells;
 * the Elman cell's later, ..._RNN), then DROPOUT_PER_DOUBLING more for each
 * doubling, up to DROPOUT_MAX (crn_dropout_for_epochs; 0.2 at 7.8 epochs,
 * as the automatic choice's measured 10-minute run had). */
#define DROPOUT_FROM_EPOCHS 3.0
#define DROPOUT_FROM_EPOCHS_RNN 7.0
#define DROPOUT_PER_DOUBLING 0.15
#define DROPOUT_MAX 0.25
/* Least time the speed probe of one model times its steps for. */
#define PROBE_SECONDS 0.25
/* Share of the budget spent in steps (the rest: evaluations, saves). */
#define AUTO_TRAIN_SHARE 0.9

const char *crn_preset_name(enum crn_preset p) {
    return (unsigned)p < CRN_PRESET_COUNT ? presets[p].name : "?";
}

int crn_preset_parse(const char *s, enum crn_preset *out) {
    for (int i = CRN_PRESET_TINY; i < CRN_PRESET_COUNT; i++)
        if (!strcmp(s, presets[i].name)) {
            *out = (enum crn_preset)i;
            return 0;
        }
    return -1;
}

void crn_preset_apply(crn_train_opts *o, enum crn_preset p) {
    const preset *q = &presets[p];
    o->model.cell = CRN_CELL_LSTM;
    o->model.layers = q->layers;
    o->model.hidden = q->hidden;
    o->model.embed = q->embed;
    o->model.dropout = q->dropout;
    o->batch = q->batch;
    o->seq = q->seq;
}

uint64_t crn_preset_params(enum crn_preset p, uint32_t V, int layer_norm) {
    const preset *q = &presets[p];
    const crn_model_config cfg = {.cell = CRN_CELL_LSTM, .vocab = V, .embed = q->embed, .hidden = q->hidden,
                                  .layers = q->layers, .layer_norm = layer_norm ? 1u : 0u};
    uint64_t n = 0;
    return crn_model_layout(&cfg, NULL, NULL, &n) < 0 ? 0 : n;
}

double crn_preset_chars_per_s(enum crn_preset p, uint32_t V, int layer_norm) {
    const preset *q = &presets[p];
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .vocab = V, .embed = q->embed, .hidden = q->hidden,
                            .layers = q->layers};
    double cps = AUTO_GFLOPS * 1e9 / (3.0 * crn_model_flops_per_token(&cfg));
    if (cps > AUTO_MAX_CHARS_PER_S) cps = AUTO_MAX_CHARS_PER_S;
    return layer_norm ? cps / (1 + ln_cost[cfg.cell].extra * ln_cost[cfg.cell].h_ref / q->hidden) : cps;
}

int crn_auto_scan(const char *path, enum crn_unit unit, crn_auto_input *in) {
    FILE *f = fopen(path, "rb");
    if (!f) return crn_error_set(CRN_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *seen = calloc(0x110000 / 8 + 1, 1);
    uint8_t buf[1 << 16];
    size_t have = 0, k;
    uint64_t chars = 0;
    uint32_t distinct = 0;
    int bad_seen = 0, rc = 0;
    if (!seen) {
        fclose(f);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory scanning the corpus", path);
    }
    while ((k = fread(buf + have, 1, sizeof buf - have, f)) > 0 || have > 0) {
        size_t n = have + k, i = 0;
        const int eof = k == 0;
        while (i < n && (eof || n - i >= 4)) { /* keep a possibly split sequence for the next read */
            int32_t cp;
            int len = crn_utf8_decode(buf + i, n - i, &cp);
            if (len < 0) {
                len = 1;
                if (!bad_seen) distinct++;
                bad_seen = 1;
            } else {
                int32_t part[3] = {cp, 0, 0};
                const int np = unit == CRN_UNIT_JAMO && crn_hangul_split(cp, part) > 0 ? crn_hangul_split(cp, part) : 1;
                for (int j = 0; j < np; j++)
                    if (!(seen[part[j] >> 3] & (1u << (part[j] & 7)))) {
                        seen[part[j] >> 3] |= (uint8_t)(1u << (part[j] & 7));
                        distinct++;
                    }
                chars += (uint64_t)np - 1;
            }
            chars++;
            i += (size_t)len;
        }
        have = n - i;
        memmove(buf, buf + i, have);
        if (eof) break;
    }
    if (ferror(f)) rc = crn_error_set(CRN_EIO, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    free(seen);
    if (rc) return rc;
    in->chars = chars;
    in->vocab = distinct + 1; /* <unk> */
    return 0;
}

static void fmt_count(char *b, size_t n, double v) {
    if (v >= 1e6) snprintf(b, n, "%.1fM", v / 1e6);
    else if (v >= 1e3) snprintf(b, n, "%.0fk", v / 1e3);
    else snprintf(b, n, "%.0f", v);
}

/* Training characters of the text (the validation share left out). */
static double train_chars_of(const crn_auto_input *in) { return (double)in->chars * (1.0 - in->val_frac); }

/* chars/s of preset p: measured by the probe, else estimated. */
static double speed_of(const crn_auto_input *in, enum crn_preset p, int ln) {
    return in->cps[p] > 0 ? in->cps[p] : crn_preset_chars_per_s(p, in->vocab, ln);
}

/* Is the text long enough for preset p's parameters? */
static int text_fits(const crn_auto_input *in, enum crn_preset p, int ln) {
    return train_chars_of(in) >= AUTO_CHARS_PER_PARAM * (double)crn_preset_params(p, in->vocab, ln);
}

/* Does the budget afford enough training tokens per parameter of preset p? */
static int budget_fits(const crn_auto_input *in, enum crn_preset p, int ln) {
    const double tokens = speed_of(in, p, ln) * in->seconds * AUTO_TRAIN_SHARE;
    return tokens >= AUTO_TOKENS_PER_PARAM * (double)crn_preset_params(p, in->vocab, ln);
}

int crn_probe_speed(const crn_model_config *cfg, uint32_t B, uint32_t T, int threads, double *cps) {
    crn_set_threads(threads);
    const uint32_t V = cfg->vocab;
    crn_model *m = NULL;
    crn_state *st = NULL;
    uint32_t *x = malloc(sizeof *x * B * T), *y = malloc(sizeof *y * B * T);
    crn_rng rng;
    int rc = 0;
    *cps = 0;
    crn_rng_seed(&rng, 1);
    if (!x || !y) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory probing the training speed");
        goto out;
    }
    if ((rc = crn_model_create(&m, cfg)) < 0 || (rc = crn_model_reserve(m, B, T)) < 0 ||
        (rc = crn_state_create(&st, m, B)) < 0)
        goto out;
    crn_model_init(m, &rng);
    for (size_t i = 0; i < (size_t)B * T; i++) {
        x[i] = (uint32_t)crn_rng_below(&rng, V);
        y[i] = (uint32_t)crn_rng_below(&rng, V);
    }
    /* two warm-up steps (the buffers' first touches), then timed ones until
     * at least two have run and PROBE_SECONDS have passed */
    double t0 = 0, dt = 0;
    int timed = 0;
    for (int s = 0;; s++) {
        double loss, norm;
        size_t count;
        if (s == 2) t0 = crn_now();
        if ((rc = crn_train_step_gradient(m, st, x, y, B, T, &rng, 5.0, &loss, &count, &norm)) < 0) goto out;
        if (s < 2) continue;
        timed = s - 1;
        dt = crn_now() - t0;
        if (timed >= 2 && dt >= PROBE_SECONDS) break;
    }
    *cps = dt > 0 ? (double)timed * B * T / dt : 0;
out:
    crn_state_destroy(st);
    crn_model_destroy(m);
    free(x);
    free(y);
    return rc;
}

/* Time one preset's model and batch (crn_probe_speed). */
static int probe_preset(enum crn_preset p, uint32_t V, uint32_t layer_norm, int threads, double *cps) {
    const preset *q = &presets[p];
    crn_model_config cfg = {.cell = CRN_CELL_LSTM, .act = CRN_ACT_TANH, .vocab = V, .embed = q->embed,
                            .hidden = q->hidden, .layers = q->layers, .dropout = q->dropout,
                            .layer_norm = layer_norm};
    return crn_probe_speed(&cfg, q->batch, q->seq, threads, cps);
}

int crn_auto_probe(crn_auto_input *in, int threads, uint32_t layer_norm) {
    for (int p = CRN_PRESET_LARGE; p >= CRN_PRESET_TINY; p--) {
        if (p > CRN_PRESET_TINY && !text_fits(in, (enum crn_preset)p, (int)layer_norm)) continue;
        int rc = probe_preset((enum crn_preset)p, in->vocab, layer_norm, threads, &in->cps[p]);
        if (rc < 0) return rc;
        if (budget_fits(in, (enum crn_preset)p, (int)layer_norm)) break;
    }
    return 0;
}

/* Dropout against overfitting, from the passes over the text: the
 * equal-time runs of docs/training.md ("Dropout for the budget") overfit
 * without it after about 2.5 (config D, GRU), 6 (A, LSTM) and 14 (B, Elman
 * RNN) epochs, while at 1,000 steps (2-2.5 epochs) dropout only slows
 * learning; a preset that the automatic choice sizes to the budget overfits
 * after ~6 (Korean, small: docs/training.md). The Elman cell starts later,
 * in proportion (3 x 14 / 6): at 120 s (6-8 epochs) B did better without
 * it. Smooth in the epochs, so a probe's few per cent of noise moves it
 * little. */
float crn_dropout_for_epochs(double epochs, enum crn_cell cell) {
    const double from = cell == CRN_CELL_RNN ? DROPOUT_FROM_EPOCHS_RNN : DROPOUT_FROM_EPOCHS;
    if (!(epochs > from)) return 0.0f;
    const double d = DROPOUT_PER_DOUBLING * log2(epochs / from);
    return (float)(round(100.0 * (d < DROPOUT_MAX ? d : DROPOUT_MAX)) / 100.0);
}

double crn_budget_epochs(const crn_train_opts *o, double train_chars, double cps) {
    if (!(train_chars > 0)) return 0;
    double e = -1;
    if (o->max_epochs > 0) e = (double)o->max_epochs;
    if (o->max_steps > 0) {
        const double s = (double)o->max_steps * o->batch * o->seq / train_chars;
        if (e < 0 || s < e) e = s;
    }
    if (o->time_limit > 0 && cps > 0) {
        const double s = cps * o->time_limit * AUTO_TRAIN_SHARE / train_chars;
        if (e < 0 || s < e) e = s;
    }
    return e < 0 ? 0 : e;
}

float crn_budget_dropout(crn_train_opts *o, const crn_auto_input *in, double cps, char *why, size_t cap) {
    const double train_chars = train_chars_of(in), epochs = crn_budget_epochs(o, train_chars, cps);
    const float d = o->model.layers > 1 ? crn_dropout_for_epochs(epochs, o->model.cell) : 0.0f;
    o->model.dropout = d;
    if (cap) why[0] = 0;
    if (d > 0 && cap) {
        char ch[16];
        fmt_count(ch, sizeof ch, train_chars);
        int n = snprintf(why, cap, "dropout %g for the budget: %.1f epochs of %s tokens", (double)d, epochs, ch);
        if (n > 0 && (size_t)n < cap && o->time_limit > 0 && cps > 0 &&
            (!o->max_steps || cps * o->time_limit * AUTO_TRAIN_SHARE < (double)o->max_steps * o->batch * o->seq))
            n += snprintf(why + n, cap - (size_t)n, " in %.0f s at ~%.0fk tokens/s (measured)", o->time_limit,
                          cps / 1e3);
        if (n > 0 && (size_t)n < cap) snprintf(why + n, cap - (size_t)n, "; --dropout 0 turns it off");
    }
    return d;
}

enum crn_preset crn_auto_config(crn_train_opts *o, const crn_auto_input *in, char *why, size_t cap) {
    const double train_chars = train_chars_of(in);
    const int ln = (int)o->model.layer_norm;
    enum crn_preset pick = CRN_PRESET_TINY;
    for (int p = CRN_PRESET_LARGE; p > CRN_PRESET_TINY; p--)
        if (text_fits(in, (enum crn_preset)p, ln) && budget_fits(in, (enum crn_preset)p, ln)) {
            pick = (enum crn_preset)p;
            break;
        }
    crn_preset_apply(o, pick);
    const double P = (double)crn_preset_params(pick, in->vocab, ln);
    const double cps = speed_of(in, pick, ln), tokens = cps * in->seconds * AUTO_TRAIN_SHARE;
    const double epochs = train_chars > 0 ? tokens / train_chars : 0;
    const float dropout = pick >= CRN_PRESET_SMALL ? crn_dropout_for_epochs(epochs, o->model.cell) : 0.0f;
    o->model.dropout = dropout;
    /* a short text: fewer streams, then shorter windows, so it holds >= 4 windows */
    while (o->batch > 1 && train_chars < 4.0 * o->batch * o->seq) o->batch /= 2;
    while (o->seq > 8 && train_chars < 4.0 * o->batch * o->seq) o->seq /= 2;
    if (in->vocab > 1000 && o->model.embed < 128) o->model.embed = 128; /* a large vocabulary wants a wider input */
    /* decay to zero pays once the run is long enough to flatten out; over a
     * short one (1,000 steps of config A: cosine 3.06 vs constant 2.81
     * bits/char, docs/training.md) the full rate is worth more */
    const double steps = tokens / ((double)o->batch * o->seq);
    o->sched.kind = steps >= AUTO_DECAY_MIN_STEPS ? CRN_SCHED_COSINE : CRN_SCHED_CONSTANT;
    crn_optim_config_default(&o->optim, CRN_OPT_ADAM);
    char tok[16], par[16], ch[16];
    fmt_count(tok, sizeof tok, tokens);
    fmt_count(par, sizeof par, P);
    fmt_count(ch, sizeof ch, train_chars);
    snprintf(why, cap,
             "auto configuration: preset %s (lstm %ux%u%s, embed %u, dropout %g, batch %u x seq %u, adam lr %g, %s): "
             "~%s training tokens (~%.0f steps) in %.0f s at ~%.0fk tokens/s (%s) = %.1f per parameter (%s), "
             "%.1f epochs of %s tokens, vocabulary %u",
             presets[pick].name, o->model.layers, o->model.hidden, ln ? " layer norm" : "", o->model.embed,
             (double)dropout, o->batch, o->seq, (double)o->optim.lr,
             o->sched.kind == CRN_SCHED_COSINE ? "cosine to 0 over the budget" : "constant rate: a short run",
             tok, steps, in->seconds, cps / 1e3, in->cps[pick] > 0 ? "measured" : "estimated", tokens / P, par,
             epochs, ch, in->vocab);
    return pick;
}
