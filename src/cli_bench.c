/* cli_bench.c — `charrnn bench`: training and sampling throughput of the
 * canonical configurations A-D of ../shared/bench/README.md, measured the way
 * the PyTorch peer (../shared/bench/torch_charrnn.py) measures itself, so the
 * two numbers can be put side by side (tools/bench does that):
 *
 *   data      codepoint tokens, first 90 % train (val_frac 0.1), no
 *             normalisation (the peer reads the file as it is)
 *   training  karpathy window layout (crn_batcher), state carried and reset
 *             at each epoch wrap; a step = zero grads, forward + loss,
 *             backward, global-norm clip 5, Adam 2e-3; seed 123
 *   tput      train_chars_per_s = batch*seq*(steps - warmup) / time after the
 *             first `warmup` steps
 *   sampling  batch 1, temperature 1, `sample_len` tokens from "\n" with
 *             crn_model_step and the sampler's draw (crn_sample_logits); two 50-token warm-up
 *             runs, then only the loop is timed
 *   eval      with --eval, validation bits/char after training over the
 *             peer's layout (crn_val_window: batch rows, zero start state,
 *             state carried over --eval-seq windows)
 *   machine   foreign_cpu_frac: share of the machine's CPU time used by other
 *             processes during the timed training (from /proc/stat and
 *             /proc/self/stat, the peer's formula); peak RSS = ru_maxrss
 *
 * Several configurations run each in a fresh child process (fork + exec of
 * /proc/self/exe) so ru_maxrss is per configuration. `--gemm-peak` times
 * cblas_sgemm 2048^3 instead (the % of peak reference). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "corpus.h"
#include "kernels.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "sampler.h"
#include "train.h"
#include "vocab.h"

#define CMD "bench"
#define DEFAULT_CORPUS "tinyshakespeare.txt"

typedef struct bench_config {
    const char *name;
    enum crn_cell cell;
    uint32_t layers, hidden, embed, seq, batch;
} bench_config;

/* ../shared/bench/README.md, "Canonical configs". */
static const bench_config canonical[] = {
    {"A", CRN_CELL_LSTM, 2, 128, 0, 50, 50},
    {"B", CRN_CELL_RNN, 2, 256, 64, 64, 32},
    {"C", CRN_CELL_LSTM, 2, 512, 64, 100, 64},
    {"D", CRN_CELL_GRU, 2, 256, 64, 64, 32},
};

typedef struct bench_opts {
    const char *configs;  /* "A", "A,B", "all"; NULL = all (A with custom shapes) */
    const char *corpus;
    double seconds;       /* 0 = use steps */
    long long steps;      /* 0 = use seconds */
    long long warmup;
    long long sample_len;
    long long threads;
    long long seed;
    double lr, clip, temperature;
    double peak_gflops;   /* 0 = unknown: pct_of_peak is null */
    int json;
    int eval;             /* validation bits/char after training (as the peer without --no-eval) */
    int layer_norm;       /* layer normalisation (charrnn train's default; not in the peer); --no-layer-norm: 0 */
    int isa;              /* the kernels' instruction set at most this (--isa); CRN_ISA_AVX512: the CPU's best */
    long long eval_seq;
    int gemm_peak;
    long long gemm_n;
    const char *tag;
    /* overrides of the configuration (custom shapes) */
    long long o_layers, o_hidden, o_embed, o_seq, o_batch;
    const char *o_cell;
} bench_opts;

/* ---- machine accounting (the peer's cpu_snapshot / foreign_cpu) -------- */

typedef struct cpu_snap {
    unsigned long long busy, steal, own; /* clock ticks */
    int ok;
} cpu_snap;

static cpu_snap cpu_snapshot(void) {
    cpu_snap s = {0, 0, 0, 0};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return s;
    /* "cpu  user nice system idle iowait irq softirq steal ..." */
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n < 7) return s;
    s.busy = v[0] + v[1] + v[2] + v[5] + v[6]; /* user nice system irq softirq */
    s.steal = n >= 8 ? v[7] : 0;

    char buf[4096];
    f = fopen("/proc/self/stat", "r");
    if (!f) return s;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* the command name may hold spaces or ')': fields start after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p) return s;
    p++;
    /* after ')': state(0) ppid(1) ... utime(11) stime(12) */
    unsigned long long utime = 0, stime = 0;
    int field = -1;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 11) utime = strtoull(tok, NULL, 10);
        if (field == 12) {
            stime = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field < 12) return s;
    s.own = utime + stime;
    s.ok = 1;
    return s;
}

static int ncpu_affinity(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

/* Fraction of the machine's CPUs used by *other* processes between a and b
 * (and the steal fraction); -1 if unknown. Rounded to 4 decimals as the peer. */
static void foreign_cpu(const cpu_snap *a, const cpu_snap *b, double wall, double *foreign, double *steal) {
    *foreign = *steal = -1;
    if (!a->ok || !b->ok || wall <= 0) return;
    double clk = (double)sysconf(_SC_CLK_TCK);
    double denom = wall * ncpu_affinity();
    double f = ((double)(b->busy - a->busy) - ((double)b->own - (double)a->own)) / clk;
    double st = (double)(b->steal - a->steal) / clk;
    *foreign = round(fmax(f, 0.0) / denom * 1e4) / 1e4;
    *steal = round(st / denom * 1e4) / 1e4;
}

static double rss_now_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return NAN;
    char line[256];
    double mb = NAN;
    while (fgets(line, sizeof line, f)) {
        long long kb;
        if (sscanf(line, "VmRSS: %lld", &kb) == 1) {
            mb = (double)kb / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

/* ---- JSON helpers ---------------------------------------------------------- */

static void json_num(const char *key, double v, int prec, int *first) {
    printf("%s\"%s\": ", *first ? "" : ", ", key);
    *first = 0;
    if (isfinite(v)) printf("%.*f", prec, v);
    else printf("null");
}
static void json_opt(const char *key, double v, int prec, int *first) { /* v < 0: null */
    json_num(key, v < 0 ? NAN : v, prec, first);
}
static void json_str(const char *key, const char *s, int *first) {
    printf("%s\"%s\": ", *first ? "" : ", ", key);
    *first = 0;
    if (s) cli_json_string(stdout, s, strlen(s));
    else printf("null");
}
static void json_env(int *first) {
    static const char *keys[] = {"OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                 "OMP_NUM_THREADS",      "OMP_WAIT_POLICY",   "LD_LIBRARY_PATH"};
    printf("%s\"env\": {", *first ? "" : ", ");
    *first = 0;
    int f2 = 1;
    for (size_t i = 0; i < CRN_ARRAY_LEN(keys); i++) json_str(keys[i], getenv(keys[i]), &f2);
    printf("}, \"blas\": {");
    f2 = 1;
    json_str("corename", openblas_get_corename(), &f2);
    json_str("config", openblas_get_config(), &f2);
    json_num("num_threads", openblas_get_num_threads(), 0, &f2);
    printf("}");
}
static void json_date(int *first) {
    char buf[64];
    time_t t = time(NULL);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm)) buf[0] = '\0';
    json_str("date", buf, first);
}

/* ---- sampling ------------------------------------------------------------------ */

/* n tokens at batch 1 from a zero state, first fed first, each drawn by the
 * sampler (crn_sample_logits) at s's temperature. logits (V), scratch
 * crn_sample_scratch_size(V) bytes. */
static int sample_run(crn_model *m, crn_state *st, uint32_t first, uint32_t *out, size_t n,
                      const crn_sample_settings *s, crn_rng *rng, float *logits, void *scratch, uint32_t V) {
    crn_state_reset(st);
    uint32_t tok = first;
    for (size_t i = 0; i < n; i++) {
        int rc = crn_model_step(m, st, &tok, logits);
        if (rc < 0) return rc;
        tok = crn_sample_logits(logits, V, s, rng, scratch);
        out[i] = tok;
    }
    return 0;
}

/* ---- one configuration ------------------------------------------------------------ */

static void config_label(const bench_config *bc, char *buf, size_t n) {
    char emb[32];
    if (bc->embed) snprintf(emb, sizeof emb, "emb %u", (unsigned)bc->embed);
    else snprintf(emb, sizeof emb, "one-hot");
    snprintf(buf, n, "%s %ux%u %s, seq %u x batch %u", crn_cell_name(bc->cell), (unsigned)bc->layers,
             (unsigned)bc->hidden, emb, (unsigned)bc->seq, (unsigned)bc->batch);
}

/* What one configuration measured (printed by print_result). */
typedef struct bench_result {
    uint32_t V;
    size_t n_train, n_val, n_params;
    double load_s, rss_base, rss_peak;
    long long step;
    double epochs, train_s, tput, chars_per_step, tail; /* tail: train bits/char of the last 100 steps */
    double foreign, steal;
    double val_bpc, eval_s;
    size_t val_targets;
    double sample_cps, sample_foreign, sample_steal;
    uint8_t *text;                                        /* head of the sample (owned) */
    size_t text_len;
    double fpc, gflops;
} bench_result;

/* Training: the peer's loop, step for step (the trainer's gradient step,
 * then the update). @return -1 ok, else the exit status. */
static int train_loop(const bench_opts *o, const bench_config *bc, crn_model *m, crn_state *st, crn_optim *opt,
                      crn_batcher *bt, crn_rng *rng, uint32_t *x, uint32_t *y, bench_result *r) {
    const uint32_t B = bc->batch, T = bc->seq;
    float *params = crn_model_params(m), *grads = crn_model_grads(m);
    int rc;
    double losses[100]; /* mean loss (nats) of the last 100 steps, a ring */
    size_t n_losses = 0;
    long long step = 0;
    const long long warmup = o->warmup;
    double t_warm = 0;
    cpu_snap snap_warm = {0, 0, 0, 0};
    const double t_start = crn_now();
    for (;;) {
        if (o->steps > 0 && step >= o->steps) break;
        if (o->steps <= 0 && crn_now() - t_start >= o->seconds) break;
        int reset = 0;
        crn_batcher_next(bt, x, y, &reset);
        if (reset) crn_state_reset(st);
        double loss_sum, norm;
        size_t count;
        if ((rc = crn_train_step_gradient(m, st, x, y, B, T, rng, o->clip, &loss_sum, &count, &norm)) < 0)
            return cli_fail(CMD, rc);
        if (!isfinite(norm)) {
            cli_error(CMD, "config %s: gradient norm is %g at step %lld", bc->name, norm, step + 1);
            return CLI_EXIT_ERROR;
        }
        crn_optim_step(opt, params, grads, (float)o->lr);
        losses[n_losses++ % 100] = count ? loss_sum / (double)count : NAN;
        step++;
        if (step == warmup) {
            t_warm = crn_now();
            snap_warm = cpu_snapshot();
        }
    }
    const double t_end = crn_now();
    const cpu_snap snap_end = cpu_snapshot();
    const double train_s = t_end - t_start;
    const double chars_per_step = (double)B * T;
    double tput, foreign = -1, steal = -1;
    if (step > warmup && warmup > 0) {
        tput = chars_per_step * (double)(step - warmup) / (t_end - t_warm);
        foreign_cpu(&snap_warm, &snap_end, t_end - t_warm, &foreign, &steal);
    } else if (step > warmup) { /* --warmup 0: time from the start */
        tput = chars_per_step * (double)step / train_s;
    } else {
        tput = train_s > 0 ? chars_per_step * (double)step / train_s : NAN;
    }
    double tail = 0;
    size_t n_tail = n_losses < 100 ? n_losses : 100;
    for (size_t i = 0; i < n_tail; i++) tail += losses[i];
    tail = n_tail ? tail / (double)n_tail / log(2.0) : NAN;
    r->step = step;
    r->train_s = train_s;
    r->chars_per_step = chars_per_step;
    r->tput = tput;
    r->foreign = foreign;
    r->steal = steal;
    r->tail = tail;
    r->epochs = (double)bt->epoch + (bt->n_win ? (double)bt->win / (double)bt->n_win : 0);
    return -1;
}

/* Validation bits/char (the peer's evaluate). @return -1 ok, else the exit status. */
static int eval_val(const bench_opts *o, crn_model *m, crn_state *st, const crn_corpus *corpus, uint32_t B,
                    bench_result *r) {
    int rc;
    const uint32_t ET = (uint32_t)o->eval_seq;
    const size_t n_val_win = crn_val_windows(corpus, B, ET);
    const double te = crn_now();
    uint32_t *ex = malloc((size_t)B * ET * sizeof *ex), *ey = malloc((size_t)B * ET * sizeof *ey);
    if (!ex || !ey) {
        free(ex), free(ey);
        cli_error(CMD, "out of memory");
        return CLI_EXIT_ERROR;
    }
    double total = 0;
    size_t counted = 0;
    rc = crn_model_reserve(m, B, ET);
    if (rc >= 0) crn_state_reset(st);
    for (size_t w = 0; rc >= 0 && w < n_val_win; w++) {
        double ls = 0;
        size_t cnt = 0;
        crn_val_window(corpus, B, ET, w, ex, ey);
        rc = crn_model_forward(m, st, ex, ey, B, ET, NULL, &ls, &cnt);
        total += ls, counted += cnt;
    }
    free(ex), free(ey);
    if (rc < 0) return cli_fail(CMD, rc);
    r->val_bpc = counted ? total / (double)counted / log(2.0) : NAN;
    r->val_targets = counted;
    r->eval_s = crn_now() - te;
    return -1;
}

/* Sampling at batch 1: speed and the head of the text. sample holds
 * max(sample_len, 50) ids, logits V floats, scratch the sampler's.
 * @return -1 ok, else the exit status. */
static int sample_speed(const bench_opts *o, crn_model *m, crn_state *st1, const crn_corpus *corpus,
                        uint32_t *sample, float *logits, void *scratch, bench_result *r) {
    int rc;
    const uint32_t V = r->V;
    uint32_t first = crn_vocab_lookup(corpus->vocab, (const uint8_t *)"\n", 1);
    if (first == CRN_UNK && corpus->n_train > 0) first = crn_corpus_id(corpus, 0);
    crn_sample_settings ss;
    crn_sample_settings_init(&ss);
    ss.temperature = o->temperature;
    crn_rng srng;
    /* the weights are final: sample from their binary16 snapshot (half the
     * bytes per token; tolerance tested in tests/test_kernels.c) */
    if ((rc = crn_model_step_f16(m, 1)) < 0) return cli_fail(CMD, rc);
    for (int w = 0; w < 2; w++) { /* warm-up, as the peer's two 50-token calls */
        crn_rng_seed(&srng, (uint64_t)o->seed);
        if ((rc = sample_run(m, st1, first, sample, 50, &ss, &srng, logits, scratch, V)) < 0) return cli_fail(CMD, rc);
    }
    crn_rng_seed(&srng, (uint64_t)o->seed);
    const cpu_snap s0 = cpu_snapshot();
    const double ts = crn_now();
    rc = sample_run(m, st1, first, sample, (size_t)o->sample_len, &ss, &srng, logits, scratch, V);
    const double sample_s = crn_now() - ts;
    const cpu_snap s1 = cpu_snapshot();
    if (rc < 0) return cli_fail(CMD, rc);
    r->sample_cps = (double)o->sample_len / sample_s;
    /* /proc/stat counts in clock ticks (10 ms): meaningless for short loops */
    if (sample_s >= 1.0) foreign_cpu(&s0, &s1, sample_s, &r->sample_foreign, &r->sample_steal);
    size_t head = o->sample_len < 120 ? (size_t)o->sample_len : 120;
    if ((rc = crn_vocab_decode(corpus->vocab, sample, head, &r->text, &r->text_len)) < 0) return cli_fail(CMD, rc);
    return -1;
}

/* One configuration's result: a JSON object (--json) or one line. */
static void print_result(const bench_opts *o, const bench_config *bc, const bench_result *r) {
    char label[96];
    config_label(bc, label, sizeof label);
    if (o->json) {
        int f = 1;
        printf("{");
        json_str("bench", "charrnn", &f);
        json_str("tag", o->tag, &f);
        json_date(&f);
        json_num("threads", (double)o->threads, 0, &f);
        json_env(&f);
        printf(", \"config\": {");
        int f2 = 1;
        json_str("name", bc->name, &f2);
        json_str("cell", crn_cell_name(bc->cell), &f2);
        json_num("layers", bc->layers, 0, &f2);
        json_num("hidden", bc->hidden, 0, &f2);
        json_num("embed", bc->embed, 0, &f2);
        json_num("seq", bc->seq, 0, &f2);
        json_num("batch", bc->batch, 0, &f2);
        json_num("lr", o->lr, 6, &f2);
        json_num("clip", o->clip, 3, &f2);
        json_num("seed", (double)o->seed, 0, &f2);
        json_opt("seconds", o->steps > 0 ? -1 : o->seconds, 2, &f2);
        json_opt("steps", o->steps > 0 ? (double)o->steps : -1, 0, &f2);
        json_num("warmup", (double)o->warmup, 0, &f2);
        json_num("sample_len", (double)o->sample_len, 0, &f2);
        json_num("temperature", o->temperature, 3, &f2);
        json_num("threads", (double)o->threads, 0, &f2);
        json_str("data", o->corpus, &f2);
        json_num("eval", o->eval, 0, &f2);
        json_num("eval_seq", (double)o->eval_seq, 0, &f2);
        json_num("layer_norm", o->layer_norm, 0, &f2);
        json_str("isa", crn_kernels_isa_name(crn_kernels_isa()), &f2);
        printf("}");
        json_num("vocab", r->V, 0, &f);
        json_num("n_train", (double)r->n_train, 0, &f);
        json_num("n_val", (double)r->n_val, 0, &f);
        json_num("params", (double)r->n_params, 0, &f);
        json_num("load_s", r->load_s, 3, &f);
        json_num("steps", (double)r->step, 0, &f);
        json_num("epochs", r->epochs, 3, &f);
        json_num("train_s", r->train_s, 2, &f);
        json_num("train_chars_per_s", r->tput, 1, &f);
        json_num("train_chars_per_s_overall", r->train_s > 0 ? r->chars_per_step * (double)r->step / r->train_s : NAN,
                 1, &f);
        json_num("train_bpc_last100", r->tail, 4, &f);
        json_num("val_bpc", r->val_bpc, 4, &f);
        json_num("eval_s", r->eval_s, 2, &f);
        json_num("val_targets", o->eval ? (double)r->val_targets : NAN, 0, &f);
        json_num("sample_chars_per_s", r->sample_cps, 1, &f);
        printf(", \"sample_head\": ");
        cli_json_string(stdout, r->text ? (const char *)r->text : "", r->text ? r->text_len : 0);
        json_num("flops_per_char_fwd", r->fpc, 0, &f);
        json_num("train_gflops", r->gflops, 2, &f);
        json_num("pct_of_peak", o->peak_gflops > 0 ? 100 * r->gflops / o->peak_gflops : NAN, 1, &f);
        json_num("rss_base_mb", r->rss_base, 1, &f);
        json_num("peak_rss_mb", r->rss_peak, 1, &f);
        json_opt("foreign_cpu_frac", r->foreign, 4, &f);
        json_opt("steal_frac", r->steal, 4, &f);
        json_opt("sample_foreign_cpu_frac", r->sample_foreign, 4, &f);
        printf("}\n");
    } else {
        printf("%s %s%s, %s kernels: train %.0f chars/s (%lld steps, %.1f s, %.1f GFLOPS", bc->name, label,
               o->layer_norm ? ", layer norm" : ", no layer norm", crn_kernels_isa_name(crn_kernels_isa()), r->tput,
               r->step, r->train_s, r->gflops);
        if (o->peak_gflops > 0) printf(", %.1f %% of %.0f", 100 * r->gflops / o->peak_gflops, o->peak_gflops);
        printf(", bpc %.3f)", r->tail);
        if (o->eval) printf(", val bpc %.4f", r->val_bpc);
        if (o->sample_len > 0) printf(", sample %.0f chars/s", r->sample_cps);
        printf(", peak RSS %.1f MB, foreign CPU ", r->rss_peak);
        if (r->foreign >= 0)
            printf("%.4f%s\n", r->foreign, r->foreign > 0.02 ? " (contaminated: machine not idle)" : "");
        else printf("n/a\n");
    }
    fflush(stdout);
}

static int run_config(const bench_opts *o, const bench_config *bc) {
    int status = CLI_EXIT_ERROR, rc;
    crn_corpus *corpus = NULL;
    crn_model *m = NULL;
    crn_state *st = NULL, *st1 = NULL;
    crn_optim *opt = NULL;
    uint32_t *x = NULL, *y = NULL, *sample = NULL;
    float *logits = NULL;
    void *probs = NULL; /* the sampler's scratch */
    bench_result r = {.val_bpc = NAN, .eval_s = NAN, .sample_cps = NAN, .sample_foreign = -1, .sample_steal = -1};

    crn_set_threads((int)o->threads);

    double t0 = crn_now();
    crn_corpus_opts copts;
    crn_corpus_opts_default(&copts);
    copts.unit = CRN_UNIT_CODEPOINT;
    copts.norm = CRN_NORM_NONE; /* the peer reads the text as it is */
    copts.val_frac = 0.1;
    if ((rc = crn_corpus_load(&corpus, o->corpus, &copts, NULL)) < 0) {
        status = cli_fail(CMD, rc);
        goto done;
    }
    r.load_s = crn_now() - t0;
    const uint32_t V = crn_vocab_size(corpus->vocab);
    const uint32_t B = bc->batch, T = bc->seq;

    crn_model_config mc = {
        .cell = bc->cell, .act = CRN_ACT_TANH, .vocab = V, .embed = bc->embed,
        .hidden = bc->hidden, .layers = bc->layers, .dropout = 0.0f, .layer_norm = (uint32_t)o->layer_norm,
    };
    crn_rng rng;
    crn_rng_seed(&rng, (uint64_t)o->seed);
    crn_batcher bt;
    crn_optim_config oc;
    crn_optim_config_default(&oc, CRN_OPT_ADAM);
    oc.lr = (float)o->lr;
    if ((rc = crn_model_config_check(&mc)) < 0 || (rc = crn_model_create(&m, &mc)) < 0 ||
        (rc = crn_model_reserve(m, B, T)) < 0 || (rc = crn_state_create(&st, m, B)) < 0 ||
        (rc = crn_state_create(&st1, m, 1)) < 0 ||
        (rc = crn_optim_create(&opt, &oc, crn_model_num_params(m))) < 0 ||
        (rc = crn_batcher_init(&bt, corpus, B, T)) < 0) {
        status = cli_fail(CMD, rc);
        goto done;
    }
    crn_model_init(m, &rng);
    x = malloc((size_t)B * T * sizeof *x);
    y = malloc((size_t)B * T * sizeof *y);
    sample = malloc((size_t)(o->sample_len > 50 ? o->sample_len : 50) * sizeof *sample);
    logits = malloc((size_t)V * sizeof *logits);
    probs = malloc(crn_sample_scratch_size(V));
    if (!x || !y || !sample || !logits || !probs) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    r.V = V;
    r.n_train = corpus->n_train;
    r.n_val = corpus->n_tokens - corpus->n_train;
    r.n_params = crn_model_num_params(m);
    r.rss_base = rss_now_mb();

    if ((status = train_loop(o, bc, m, st, opt, &bt, &rng, x, y, &r)) >= 0) goto done;
    if (o->eval && (status = eval_val(o, m, st, corpus, B, &r)) >= 0) goto done;
    if (o->sample_len > 0 && (status = sample_speed(o, m, st1, corpus, sample, logits, probs, &r)) >= 0) goto done;
    r.fpc = crn_model_flops_per_token(&mc);
    r.gflops = 3 * r.fpc * r.tput / 1e9; /* backward counted as 2x forward */
    r.rss_peak = peak_rss_mb();
    print_result(o, bc, &r);
    status = CLI_EXIT_OK;

done:
    free(r.text);
    free(probs);
    free(logits);
    free(sample);
    free(y);
    free(x);
    crn_optim_destroy(opt);
    crn_state_destroy(st1);
    crn_state_destroy(st);
    crn_model_destroy(m);
    crn_corpus_destroy(corpus);
    return status;
}

/* ---- sgemm peak ----------------------------------------------------------------- */

static int gemm_peak(const bench_opts *o) {
    const int n = (int)o->gemm_n;
    const double min_s = o->seconds > 0 ? o->seconds : 2.0;
    crn_set_threads((int)o->threads);
    /* the peak is OpenBLAS's own with all the threads (as the peer measures
     * it): crn_set_threads keeps OpenBLAS at 1 and splits products itself */
    openblas_set_num_threads((int)o->threads);
    float *a = crn_calloc((size_t)n * n, sizeof(float));
    float *b = crn_calloc((size_t)n * n, sizeof(float));
    float *c = crn_calloc((size_t)n * n, sizeof(float));
    if (!a || !b || !c) {
        crn_free(a), crn_free(b), crn_free(c);
        cli_error(CMD, "out of memory for three %dx%d matrices", n, n);
        return CLI_EXIT_ERROR;
    }
    crn_rng rng;
    crn_rng_seed(&rng, (uint64_t)o->seed);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = crn_rng_uniformf(&rng) - 0.5f;
        b[i] = crn_rng_uniformf(&rng) - 0.5f;
    }
    const double flops = 2.0 * n * (double)n * n;
    for (int w = 0; w < 2; w++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    /* run for >= min_s and >= 5 times; keep every time for the median */
    size_t cap = 64, k = 0;
    double *times = malloc(cap * sizeof *times);
    const cpu_snap s0 = cpu_snapshot();
    const double t_begin = crn_now();
    while (times && (crn_now() - t_begin < min_s || k < 5)) {
        double t = crn_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = crn_now() - t;
        if (k == cap) {
            double *nt = realloc(times, 2 * cap * sizeof *times);
            if (!nt) break;
            times = nt, cap *= 2;
        }
        times[k++] = t;
    }
    const double wall = crn_now() - t_begin;
    const cpu_snap s1 = cpu_snapshot();
    crn_free(a), crn_free(b), crn_free(c);
    if (!times || k == 0) {
        free(times);
        cli_error(CMD, "out of memory");
        return CLI_EXIT_ERROR;
    }
    /* insertion sort: k is small */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && times[j - 1] > times[j]; j--) {
            double t = times[j];
            times[j] = times[j - 1], times[j - 1] = t;
        }
    const double best = flops / times[0] / 1e9, median = flops / times[k / 2] / 1e9;
    free(times);
    double foreign, steal;
    foreign_cpu(&s0, &s1, wall, &foreign, &steal);
    if (o->json) {
        int f = 1;
        printf("{");
        json_str("bench", "charrnn_gemm_peak", &f);
        json_str("tag", o->tag, &f);
        json_date(&f);
        json_num("n", n, 0, &f);
        json_num("threads", (double)o->threads, 0, &f);
        json_env(&f);
        json_num("runs", (double)k, 0, &f);
        json_num("seconds", wall, 2, &f);
        json_num("gflops", best, 1, &f);
        json_num("gflops_median", median, 1, &f);
        json_opt("foreign_cpu_frac", foreign, 4, &f);
        printf("}\n");
    } else {
        printf("sgemm %d^3, %lld threads, %s kernel: best %.1f GFLOPS, median %.1f (%zu runs, %.1f s), foreign CPU ",
               n, o->threads, openblas_get_corename(), best, median, k, wall);
        if (foreign >= 0) printf("%.4f%s\n", foreign, foreign > 0.02 ? " (contaminated: machine not idle)" : "");
        else printf("n/a\n");
    }
    return CLI_EXIT_OK;
}

/* ---- options and dispatch ---------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn bench [options]\n"
            "\n"
            "Time training and sampling of the canonical configurations of\n"
            "../shared/bench/README.md the way the PyTorch peer measures itself\n"
            "(tools/bench runs both side by side and prints the comparison).\n"
            "\n"
            "  A  lstm 2x128 one-hot, seq 50 x batch 50    C  lstm 2x512 emb 64, seq 100 x batch 64\n"
            "  B  rnn  2x256 emb 64, seq 64 x batch 32     D  gru  2x256 emb 64, seq 64 x batch 32\n"
            "\n"
            "Options:\n"
            "      --config LIST     A, B, C, D, a comma list (A,B) or all (the default; A when\n"
            "                        shapes are overridden); several configurations run one\n"
            "                        after another, each in its own process\n"
            "      --corpus PATH     text file (default $CRN_SHARED_CORPORA/" DEFAULT_CORPUS ",\n"
            "                        else ../shared/corpora/" DEFAULT_CORPUS " from the current\n"
            "                        directory or from the build directory's parent)\n"
            "      --seconds S       train for S seconds (default 10)\n"
            "      --steps N         train for N steps instead\n"
            "      --warmup N        steps excluded from the throughput (default 5)\n"
            "      --sample-len N    tokens sampled at batch 1 (default 2000; 0 = skip)\n"
            "      --temperature T   sampling temperature (default 1)\n"
            "      --threads N       BLAS / worker threads (default 2)\n"
            "      --peak-gflops G   sgemm peak, to report %% of peak\n"
            "      --tag TEXT        label copied to the JSON\n"
            "      --json            one JSON object per line (fields as the peer's)\n"
            "      --eval            validation bits/char after training (off: throughput runs)\n"
            "      --eval-seq N      window of the validation pass (default 256; state is carried)\n"
            "      --gemm-peak       time cblas_sgemm 2048^3 (best of >= 2 s) and print GFLOPS\n"
            "      --isa LEVEL       use our kernels' plain, avx2 or avx512 code at most (default:\n"
            "                        the best this CPU has), to compare the levels\n"
            "  Custom shapes (override the configuration):\n"
            "      --cell rnn|lstm|gru  --layers N  --hidden N  --embed N (0 = one-hot)\n"
            "      --seq N  --batch N  --lr X (2e-3)  --clip X (5)  --seed N (123)\n"
            "      --layer-norm      layer normalisation in the cells, as charrnn train (the default)\n"
            "      --no-layer-norm   plain cells, as charrnn train --no-layer-norm (the peer's model)\n"
            "  -h, --help            show this help\n"
            "\n"
            "Throughput = batch*seq*(steps-warmup) / time after the warm-up steps (whole\n"
            "step: forward, loss, backward, clip, Adam). GFLOPS = 3 x forward FLOP/char x\n"
            "chars/s. foreign CPU = share of the machine used by other processes while\n"
            "timing; above 0.02 the numbers are contaminated.\n");
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* Default corpus: $CRN_SHARED_CORPORA, ../shared/corpora from the current
 * directory, then from the parent of the executable's directory (build/). */
static const char *default_corpus(char *buf, size_t n) {
    const char *env = getenv("CRN_SHARED_CORPORA");
    if (env && *env) {
        int w = snprintf(buf, n, "%s/%s", env, DEFAULT_CORPUS);
        if (w > 0 && (size_t)w < n && file_exists(buf)) return buf;
    }
    snprintf(buf, n, "../shared/corpora/%s", DEFAULT_CORPUS);
    if (file_exists(buf)) return buf;
    char exe[2048];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        for (int up = 0; up < 2; up++) { /* .../build/charrnn -> .../build -> ... */
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = '\0';
        }
        int w = snprintf(buf, n, "%s/../shared/corpora/%s", exe, DEFAULT_CORPUS);
        if (w > 0 && (size_t)w < n && file_exists(buf)) return buf;
    }
    return NULL;
}

/* Several configurations: re-run this program once per configuration with
 * "--config X" appended (the last --config wins), so each gets a fresh
 * process and its own peak RSS. */
static int run_children(int argc, char **argv, const bench_config *list, size_t n) {
    char **av = calloc((size_t)argc + 4, sizeof *av); /* argv[0] is "bench" */
    if (!av) {
        cli_error(CMD, "out of memory");
        return CLI_EXIT_ERROR;
    }
    int status = CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        av[0] = "charrnn";
        for (int k = 0; k < argc; k++) av[k + 1] = argv[k];
        av[argc + 1] = "--config";
        av[argc + 2] = (char *)list[i].name;
        av[argc + 3] = NULL;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            cli_error(CMD, "fork: %s", strerror(errno));
            status = CLI_EXIT_ERROR;
            break;
        }
        if (pid == 0) {
            execv("/proc/self/exe", av);
            cli_error(CMD, "exec /proc/self/exe: %s", strerror(errno));
            _exit(CLI_EXIT_ERROR);
        }
        int ws;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : CLI_EXIT_ERROR;
        if (code != CLI_EXIT_OK) {
            status = code;
            if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGINT) break;
        }
    }
    free(av);
    return status;
}

enum {
    OPT_CONFIG = 256, OPT_CORPUS, OPT_SECONDS, OPT_STEPS, OPT_WARMUP, OPT_SAMPLE_LEN, OPT_TEMP, OPT_THREADS,
    OPT_PEAK, OPT_TAG, OPT_JSON, OPT_GEMM, OPT_GEMM_N, OPT_CELL, OPT_LAYERS, OPT_HIDDEN, OPT_EMBED, OPT_SEQ,
    OPT_BATCH, OPT_LR, OPT_CLIP, OPT_SEED, OPT_EVAL, OPT_EVAL_SEQ, OPT_LN, OPT_NO_LN, OPT_ISA,
};

/* The configurations to run (--config, then the shape overrides) into list
 * (room for all canonical ones). @return -1 ok, else the exit status. */
static int config_list(bench_opts *o, bench_config *list, size_t *out_n) {
    const int custom_shape = o->o_cell || o->o_layers >= 0 || o->o_hidden >= 0 || o->o_embed >= 0 || o->o_seq >= 0 ||
                             o->o_batch >= 0;
    if (!o->configs) o->configs = custom_shape ? "A" : "all";
    size_t n_list = 0;
    if (!strcmp(o->configs, "all")) {
        for (size_t i = 0; i < CRN_ARRAY_LEN(canonical); i++) list[n_list++] = canonical[i];
    } else {
        const char *p = o->configs;
        for (;;) {
            size_t len = strcspn(p, ",");
            size_t i = 0;
            while (i < CRN_ARRAY_LEN(canonical) && !(len == 1 && canonical[i].name[0] == p[0])) i++;
            if (i == CRN_ARRAY_LEN(canonical) || n_list == CRN_ARRAY_LEN(canonical))
                return cli_usage_error(CMD, "--config: '%.*s' is not one of A, B, C, D, all (or a comma list)",
                                       (int)len, p);
            list[n_list++] = canonical[i];
            if (!p[len]) break;
            p += len + 1;
        }
    }
    int custom = 0;
    enum crn_cell cell = CRN_CELL_LSTM;
    if (o->o_cell) {
        if (crn_cell_parse(o->o_cell, &cell) < 0)
            return cli_usage_error(CMD, "--cell: '%s' is not one of rnn, lstm, gru", o->o_cell);
        custom = 1;
    }
    for (size_t i = 0; i < n_list; i++) {
        bench_config *bc = &list[i];
        if (o->o_cell) bc->cell = cell;
        if (o->o_layers >= 0) bc->layers = (uint32_t)o->o_layers, custom = 1;
        if (o->o_hidden >= 0) bc->hidden = (uint32_t)o->o_hidden, custom = 1;
        if (o->o_embed >= 0) bc->embed = (uint32_t)o->o_embed, custom = 1;
        if (o->o_seq >= 0) bc->seq = (uint32_t)o->o_seq, custom = 1;
        if (o->o_batch >= 0) bc->batch = (uint32_t)o->o_batch, custom = 1;
        if (custom) bc->name = "custom";
    }
    if (custom && n_list > 1)
        return cli_usage_error(CMD, "custom shapes (--cell, --hidden, ...) need a single --config");
    *out_n = n_list;
    return -1;
}

static int parse_isa(const char *arg, int *isa) {
    for (int l = CRN_ISA_PLAIN; l <= CRN_ISA_AVX512; l++)
        if (strcmp(arg, crn_kernels_isa_name(l)) == 0) {
            *isa = l;
            return 0;
        }
    cli_usage_error(CMD, "--isa: '%s' is not plain, avx2 or avx512", arg);
    return 1;
}

int cli_bench(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"corpus", required_argument, NULL, OPT_CORPUS},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"sample-len", required_argument, NULL, OPT_SAMPLE_LEN},
        {"temperature", required_argument, NULL, OPT_TEMP},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"peak-gflops", required_argument, NULL, OPT_PEAK},
        {"tag", required_argument, NULL, OPT_TAG},
        {"json", no_argument, NULL, OPT_JSON},
        {"eval", no_argument, NULL, OPT_EVAL},
        {"eval-seq", required_argument, NULL, OPT_EVAL_SEQ},
        {"gemm-peak", no_argument, NULL, OPT_GEMM},
        {"gemm-n", required_argument, NULL, OPT_GEMM_N},
        {"cell", required_argument, NULL, OPT_CELL},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"hidden", required_argument, NULL, OPT_HIDDEN},
        {"embed", required_argument, NULL, OPT_EMBED},
        {"seq", required_argument, NULL, OPT_SEQ},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"lr", required_argument, NULL, OPT_LR},
        {"clip", required_argument, NULL, OPT_CLIP},
        {"seed", required_argument, NULL, OPT_SEED},
        {"layer-norm", no_argument, NULL, OPT_LN},
        {"no-layer-norm", no_argument, NULL, OPT_NO_LN},
        {"isa", required_argument, NULL, OPT_ISA},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_opts o = {
        .configs = NULL, .warmup = 5, .sample_len = 2000, .threads = 2, .seed = 123, .lr = 2e-3, .clip = 5,
        .temperature = 1, .eval_seq = 256, .gemm_n = 2048, .tag = "", .o_layers = -1, .o_hidden = -1, .o_embed = -1,
        .o_seq = -1, .o_batch = -1, .layer_norm = 1, .isa = CRN_ISA_AVX512,
    };
    /* getopt_long permutes argv: keep the original order for child processes */
    char **orig = calloc((size_t)argc + 1, sizeof *orig);
    if (!orig) {
        cli_error(CMD, "out of memory");
        return CLI_EXIT_ERROR;
    }
    memcpy(orig, argv, (size_t)argc * sizeof *orig);
    int status = CLI_EXIT_USAGE;
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'h': usage(stdout); status = CLI_EXIT_OK; goto out;
        case OPT_CONFIG: o.configs = optarg; break;
        case OPT_LN: o.layer_norm = 1; break;
        case OPT_NO_LN: o.layer_norm = 0; break;
        case OPT_ISA: bad = parse_isa(optarg, &o.isa); break;
        case OPT_CORPUS: o.corpus = optarg; break;
        case OPT_SECONDS: bad = cli_parse_duration(CMD, "--seconds", optarg, &o.seconds); o.steps = 0; break;
        case OPT_STEPS: bad = cli_parse_long(CMD, "--steps", optarg, 1, 1000000000, &o.steps); o.seconds = 0; break;
        case OPT_WARMUP: bad = cli_parse_long(CMD, "--warmup", optarg, 0, 1000000, &o.warmup); break;
        case OPT_SAMPLE_LEN: bad = cli_parse_long(CMD, "--sample-len", optarg, 0, 100000000, &o.sample_len); break;
        case OPT_TEMP: bad = cli_parse_double(CMD, "--temperature", optarg, 1e-3, 1e3, &o.temperature); break;
        case OPT_THREADS: bad = cli_parse_long(CMD, "--threads", optarg, 1, 1024, &o.threads); break;
        case OPT_PEAK: bad = cli_parse_double(CMD, "--peak-gflops", optarg, 0, 1e6, &o.peak_gflops); break;
        case OPT_TAG: o.tag = optarg; break;
        case OPT_JSON: o.json = 1; break;
        case OPT_EVAL: o.eval = 1; break;
        case OPT_EVAL_SEQ: bad = cli_parse_long(CMD, "--eval-seq", optarg, 1, 1000000, &o.eval_seq); break;
        case OPT_GEMM: o.gemm_peak = 1; break;
        case OPT_GEMM_N: bad = cli_parse_long(CMD, "--gemm-n", optarg, 1, 16384, &o.gemm_n); break;
        case OPT_CELL: o.o_cell = optarg; break;
        case OPT_LAYERS: bad = cli_parse_long(CMD, "--layers", optarg, 1, 64, &o.o_layers); break;
        case OPT_HIDDEN: bad = cli_parse_long(CMD, "--hidden", optarg, 1, 65536, &o.o_hidden); break;
        case OPT_EMBED: bad = cli_parse_long(CMD, "--embed", optarg, 0, 65536, &o.o_embed); break;
        case OPT_SEQ: bad = cli_parse_long(CMD, "--seq", optarg, 1, 1000000, &o.o_seq); break;
        case OPT_BATCH: bad = cli_parse_long(CMD, "--batch", optarg, 1, 1000000, &o.o_batch); break;
        case OPT_LR: bad = cli_parse_double(CMD, "--lr", optarg, 0, 10, &o.lr); break;
        case OPT_CLIP: bad = cli_parse_double(CMD, "--clip", optarg, 0, 1e9, &o.clip); break;
        case OPT_SEED: bad = cli_parse_long(CMD, "--seed", optarg, 0, INT64_MAX, &o.seed); break;
        default: status = cli_bad_option(CMD); goto out;
        }
        if (bad) goto out;
    }
    if (optind < argc) {
        status = cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (o.seconds <= 0 && o.steps <= 0) o.seconds = 10;
    crn_kernels_set_isa(o.isa);

    if (o.gemm_peak) {
        status = gemm_peak(&o);
        goto out;
    }

    /* the configuration list */
    bench_config list[CRN_ARRAY_LEN(canonical)];
    size_t n_list = 0;
    if ((status = config_list(&o, list, &n_list)) >= 0) goto out;

    char corpus_buf[4096];
    if (!o.corpus) {
        o.corpus = default_corpus(corpus_buf, sizeof corpus_buf);
        if (!o.corpus) {
            cli_error(CMD, "no corpus: %s not found in $CRN_SHARED_CORPORA or ../shared/corpora; use --corpus PATH",
                      DEFAULT_CORPUS);
            status = CLI_EXIT_ERROR;
            goto out;
        }
    }
    if (n_list > 1) status = run_children(argc, orig, list, n_list);
    else status = run_config(&o, &list[0]);

out:
    free(orig);
    return status;
}
