/* train.c — the training loop (see train.h for the files it writes and the
 * resume guarantee).
 *
 * One step: next window (T, B) from the batcher -> on an epoch wrap zero the
 * carried state -> zero grads -> forward (dropout from the run's RNG) ->
 * backward -> clip by global norm -> lr = schedule(step) * lr_scale ->
 * optimizer update. Everything the step touches is allocated in
 * crn_trainer_create; the loop itself never allocates (saving a checkpoint
 * does, but that is not a step).
 *
 * A non-finite loss or gradient norm skips the update, rolls parameters and
 * optimizer state back to the last good state (a copy taken at the start of
 * the session and after every eval whose loss was finite: weights can be
 * finite yet blown up, so the step's own inputs are not enough), zeroes the
 * carried state (computed with the bad weights), halves lr_scale and is
 * reported; CRN_NONFINITE_MAX in a row stop the run with CRN_ENONFINITE. So
 * no checkpoint ever holds non-finite weights, and the one written at such a
 * stop holds the last good state. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "kernels.h"
#include "sampler.h"
#include "train_dist.h"

#define CRN_NONFINITE_MAX 5
#define CRN_DIST_CHECK_EVERY 100 /* steps between parameter checksum comparisons of the ranks (debug builds) */
#define TRAIN_SAMPLE_TEMPERATURE 0.8 /* of the samples shown during training */

static volatile sig_atomic_t g_stop;

#if defined(CRN_TEST_HOOKS) && CRN_TEST_HOOKS
/* test hook: steps [from, from + count) (0-based, before the step) get a NaN loss */
static uint64_t g_fault_from, g_fault_count;

void crn_train_fault_nan(uint64_t from_step, uint64_t count) {
    g_fault_from = from_step;
    g_fault_count = count;
}
#define FAULT_NAN(step) (g_fault_count && (step) >= g_fault_from && (step) < g_fault_from + g_fault_count)

/* test hook: steps [from, from + count) get gradient element 0 set to value
 * (after clipping: the tests use --clip 0) */
static uint64_t g_fault_grad_from, g_fault_grad_count;
static float g_fault_grad;

void crn_train_fault_grad(uint64_t from_step, uint64_t count, float value) {
    g_fault_grad_from = from_step;
    g_fault_grad_count = count;
    g_fault_grad = value;
}
#define FAULT_GRAD(step) (g_fault_grad_count && (step) - g_fault_grad_from < g_fault_grad_count)
#else
#define FAULT_NAN(step) 0
#define FAULT_GRAD(step) 0
static const float g_fault_grad = 0;
#endif


void crn_train_request_stop(void) { g_stop = 1; }
int crn_train_stop_requested(void) { return g_stop != 0; }
void crn_train_clear_stop(void) { g_stop = 0; }

const char *crn_train_stop_name(enum crn_train_stop r) {
    switch (r) {
    case CRN_TRAIN_STOP_NONE: return "running";
    case CRN_TRAIN_STOP_STEPS: return "step budget reached";
    case CRN_TRAIN_STOP_EPOCHS: return "epoch budget reached";
    case CRN_TRAIN_STOP_TIME: return "time budget reached";
    case CRN_TRAIN_STOP_PATIENCE: return "early stop (patience)";
    case CRN_TRAIN_STOP_SIGNAL: return "interrupted";
    case CRN_TRAIN_STOP_NONFINITE: return "stopped: repeated non-finite steps";
    case CRN_TRAIN_STOP_ERROR: return "error";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* the trainer */

struct crn_trainer {
    crn_train_opts o;
    crn_train_status s;
    char *out_path;
    char *resume_path;
    crn_corpus *corpus;
    crn_model *model;
    crn_optim *optim;
    crn_batcher bt;
    crn_state *st;          /* carried training state (B streams) */
    crn_state *eval_st;     /* validation state (B streams) */
    crn_state *sample_st;   /* 1 stream */
    uint32_t *x, *y;        /* (T, B) */
    float *good_params;     /* (n_params) the last good state, for a rollback */
    float *good_buf[2];     /* optimizer buffers then (NULL when the kind has fewer) */
    uint64_t good_t;        /* optimizer update count then */
    size_t carry_len;
    real *sample_logits;    /* (V) */
    void *sample_scratch;   /* crn_sample_scratch_size(V) bytes */
    uint8_t *sample_buf;
    size_t sample_cap, max_token_len;
    crn_rng sample_rng;
    FILE *log;
    int log_append;
    double tokens_per_char; /* to turn train bits/token into bits/char */
    uint64_t new_tokens;
    int model_written;
    int has_val;
    int timed_sched;        /* cosine/linear with a time budget: the horizon follows the clock */
    char start_note[256];
    volatile sig_atomic_t *stop_flag; /* this trainer's stop request (NULL: none) */
    /* data parallel (train_dist.h): this rank trains rows [row0, row0 + rows) of the B streams */
    int rank, nranks;
    uint32_t row0, rows;
    float *carry_mine;      /* its carried state (carry_size(rows)), gathered into s.carry to save */
    crn_dist_step ex;       /* the last step's exchange: flags of every rank, rank 0's horizon */
};

/* A stop was requested: process-wide (a signal) or for this trainer. */
static int stop_asked(const crn_trainer *t) { return g_stop || (t->stop_flag && *t->stop_flag); }

void crn_trainer_set_stop_flag(crn_trainer *t, volatile sig_atomic_t *flag) { t->stop_flag = flag; }

/* The batcher wraps lazily: after an epoch's last window win == n_win. */
static uint64_t epochs_done(const crn_batcher *bt) {
    return bt->epoch + (bt->win >= bt->n_win ? 1 : 0);
}

static size_t carry_size(const crn_model_config *cfg, uint32_t B) {
    return (size_t)cfg->layers * (cfg->cell == CRN_CELL_LSTM ? 2u : 1u) * B * cfg->hidden;
}

static void carry_save(crn_state *st, const crn_model_config *cfg, uint32_t B, float *dst) {
    size_t bh = (size_t)B * cfg->hidden;
    for (uint32_t l = 0; l < cfg->layers; l++) {
        memcpy(dst, crn_state_h(st, l), bh * sizeof(float));
        dst += bh;
        if (cfg->cell == CRN_CELL_LSTM) {
            memcpy(dst, crn_state_c(st, l), bh * sizeof(float));
            dst += bh;
        }
    }
}

static void carry_load(crn_state *st, const crn_model_config *cfg, uint32_t B, const float *src) {
    size_t bh = (size_t)B * cfg->hidden;
    for (uint32_t l = 0; l < cfg->layers; l++) {
        memcpy(crn_state_h(st, l), src, bh * sizeof(float));
        src += bh;
        if (cfg->cell == CRN_CELL_LSTM) {
            memcpy(crn_state_c(st, l), src, bh * sizeof(float));
            src += bh;
        }
    }
}

static uint64_t make_run_id(uint64_t seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    crn_rng r;
    crn_rng_seed(&r, seed ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40));
    uint64_t id = crn_rng_u64(&r);
    return id ? id : 1;
}

/* Copy the overlapping (rows, cols) block of every tensor of src into the
 * tensor of the same name in dst (fine-tuning with a grown vocabulary: the
 * vocabulary-sized dimension of embed / l0.w_x / out_w / out_b grows, the
 * new rows/columns keep dst's fresh initialisation). */
static void copy_weights(crn_model *dst, crn_model *src) {
    const real *sp = crn_model_params(src);
    real *dp = crn_model_params(dst);
    for (int i = 0; i < crn_model_num_tensors(src); i++) {
        const crn_tensor_info *a = crn_model_tensor(src, i);
        const crn_tensor_info *b = crn_model_find_tensor(dst, a->name);
        if (!b) continue;
        size_t rows = CRN_MIN(a->rows, b->rows), cols = CRN_MIN(a->cols, b->cols);
        for (size_t r = 0; r < rows; r++)
            memcpy(dp + b->offset + r * b->cols, sp + a->offset + r * a->cols, cols * sizeof(real));
    }
}

/* cached: ids in the file MODEL.ids (see CRN_IDS_SUFFIX), else in memory. */
static int load_corpus(crn_trainer *t, const crn_vocab *vocab, int cached) {
    crn_corpus_opts co;
    crn_corpus_opts_default(&co);
    co.unit = t->o.unit;
    co.norm = t->o.norm;
    co.invalid = t->o.invalid;
    co.min_count = t->o.min_count;
    co.val_frac = t->o.val_frac;
    co.keep = (const char **)t->o.keep;
    co.n_keep = t->o.n_keep;
    co.drop = (const char **)t->o.drop;
    co.n_drop = t->o.n_drop;
    co.replace = (const char **)t->o.replace;
    co.n_replace = t->o.n_replace;
    crn_corpus_destroy(t->corpus);
    t->corpus = NULL;
    char *ids_path = NULL;
    if (cached) {
        size_t plen = strlen(t->out_path);
        if (!(ids_path = malloc(plen + sizeof CRN_IDS_SUFFIX))) return crn_error_set(CRN_ENOMEM, "out of memory");
        memcpy(ids_path, t->out_path, plen);
        memcpy(ids_path + plen, CRN_IDS_SUFFIX, sizeof CRN_IDS_SUFFIX);
        co.id_cache = ids_path;
    }
    int rc = crn_corpus_load(&t->corpus, t->o.corpus_path, &co, vocab);
    free(ids_path);
    return rc;
}

/* Tokens of the fine-tuning corpus missing from base: add them (extend) and
 * return how many distinct ones there were. */
static long long extend_vocab(crn_trainer *t, crn_vocab *base) {
    int rc = load_corpus(t, NULL, 0); /* only its vocabulary is used: no id cache */
    if (rc < 0) return rc;
    const crn_vocab *nv = t->corpus->vocab;
    long long added = 0;
    for (uint32_t id = 1; id < crn_vocab_size(nv); id++) {
        size_t len;
        const uint8_t *tok = crn_vocab_token(nv, id, &len);
        if (crn_vocab_lookup(base, tok, len) != CRN_UNK) continue;
        long long k = crn_vocab_extend(base, tok, len);
        if (k < 0) return k;
        added += k;
    }
    return added;
}

/* crn_trainer_create, phase 1: the options and the run's two file paths. */
static int trainer_paths(crn_trainer *t, const crn_train_start *start) {
    if (!start || !start->out_path || !*start->out_path)
        return crn_error_set(CRN_EINVAL, "train: no output model path");
    if (!t->o.corpus_path) return crn_error_set(CRN_EINVAL, "train: no corpus path");
    if (t->o.batch == 0 || t->o.seq == 0)
        return crn_error_set(CRN_EINVAL, "train: batch and sequence length must be > 0");
    size_t plen = strlen(start->out_path);
    t->out_path = strdup(start->out_path);
    t->resume_path = malloc(plen + sizeof CRN_RESUME_SUFFIX);
    if (!t->out_path || !t->resume_path) return crn_error_set(CRN_ENOMEM, "out of memory");
    memcpy(t->resume_path, start->out_path, plen);
    memcpy(t->resume_path + plen, CRN_RESUME_SUFFIX, sizeof CRN_RESUME_SUFFIX);
    t->log_append = start->log_append;
    return 0;
}

/* Phase 2, continue a run: everything from the checkpoint (its vocabulary
 * goes to *vocab, the caller's to free). */
static int start_resume(crn_trainer *t, crn_train_start *start, crn_vocab **vocab) {
    crn_checkpoint *ck = start->resume;
    int rc;
    if (!start->resume_state) return crn_error_set(CRN_EINVAL, "train: resume without a training state");
    t->s = *start->resume_state;
    t->s.carry = NULL;
    if (start->resume_state->carry) {
        size_t n = (size_t)t->s.carry_layers * (1u + t->s.carry_has_c) * t->s.carry_batch * t->s.carry_hidden;
        t->s.carry = malloc(n * sizeof(float));
        if (!t->s.carry) return crn_error_set(CRN_ENOMEM, "out of memory");
        memcpy(t->s.carry, start->resume_state->carry, n * sizeof(float));
    }
    *vocab = ck->vocab;
    ck->vocab = NULL;
    t->model = ck->model;
    ck->model = NULL;
    if ((rc = load_corpus(t, *vocab, 1)) < 0) return rc;
    if (crn_vocab_size(t->corpus->vocab) != crn_model_config_of(t->model)->vocab)
        return crn_error_set(CRN_EFORMAT, "%s: vocabulary size %u does not match the model's %u", t->o.corpus_path,
                             crn_vocab_size(t->corpus->vocab), crn_model_config_of(t->model)->vocab);
    if (t->corpus->n_unk && t->o.min_count <= 1) /* with min_count > 1 rare tokens are <unk> by design */
        snprintf(t->start_note, sizeof t->start_note,
                 "%llu tokens of %s are not in the model's vocabulary (mapped to <unk>)",
                 (unsigned long long)t->corpus->n_unk, t->o.corpus_path);
    if (ck->optim && ck->optim->cfg.kind == t->o.optim.kind && ck->optim->n == crn_model_num_params(t->model)) {
        t->optim = ck->optim;
        ck->optim = NULL;
        /* new settings (e.g. sgd --momentum): the state buffers follow them */
        if ((rc = crn_optim_reconfigure(t->optim, &t->o.optim)) < 0) return rc;
    } else if (!t->start_note[0]) {
        snprintf(t->start_note, sizeof t->start_note, "%s; the optimizer starts fresh",
                 ck->optim ? "the optimizer differs from the checkpoint's" : "the checkpoint has no optimizer state");
    }
    return 0;
}

/* Phase 2, fine-tune: weights and vocabulary of a trained model. */
static int start_finetune(crn_trainer *t, crn_train_start *start, crn_vocab **vocab, crn_rng *init_rng) {
    crn_checkpoint *ck = start->init_from;
    int rc;
    *vocab = ck->vocab;
    ck->vocab = NULL;
    if (start->extend_vocab) {
        long long added = extend_vocab(t, *vocab);
        if (added < 0) return (int)added;
        t->new_tokens = (uint64_t)added;
    }
    if ((rc = load_corpus(t, *vocab, 1)) < 0) return rc;
    if (!start->extend_vocab) t->new_tokens = t->corpus->n_unk;
    crn_model_config cfg = *crn_model_config_of(ck->model);
    cfg.vocab = crn_vocab_size(t->corpus->vocab);
    cfg.dropout = t->o.model.dropout;
    if ((rc = crn_model_config_check(&cfg)) < 0) return rc;
    if ((rc = crn_model_create(&t->model, &cfg)) < 0) return rc;
    crn_model_init(t->model, init_rng);
    copy_weights(t->model, ck->model);
    t->o.model = cfg;
    return 0;
}

/* Phase 2, a fresh model. */
static int start_fresh(crn_trainer *t, crn_rng *init_rng) {
    int rc;
    if ((rc = load_corpus(t, NULL, 1)) < 0) return rc;
    crn_model_config cfg = t->o.model;
    cfg.vocab = crn_vocab_size(t->corpus->vocab);
    if ((rc = crn_model_config_check(&cfg)) < 0) return rc;
    if ((rc = crn_model_create(&t->model, &cfg)) < 0) return rc;
    crn_model_init_spec(t->model, init_rng, &t->o.init);
    return 0;
}

/* Phase 3: the status of a new run (fine-tune or fresh). */
static void status_fresh(crn_trainer *t, const crn_rng *init_rng) {
    memset(&t->s, 0, sizeof t->s);
    t->s.run_id = make_run_id(t->o.seed);
    t->s.rng = *init_rng; /* dropout continues the init stream */
    t->s.lr_scale = 1;
    t->s.best_val_bpc = NAN;
    t->s.first_val_bpc = t->s.last_val_bpc = t->s.last_val_bpt = t->s.last_train_bpc = NAN;
    t->s.started_unix = (uint64_t)time(NULL);
}

/* Phase 4: the optimizer, the batcher (at the resumed position) and the
 * schedule's defaults that need the corpus. */
static int setup_optimization(crn_trainer *t, int resume) {
    int rc;
    const crn_corpus *c = t->corpus;
    if (!t->optim) {
        if ((rc = crn_optim_create(&t->optim, &t->o.optim, crn_model_num_params(t->model))) < 0) return rc;
    }
    if ((rc = crn_batcher_init(&t->bt, c, t->o.batch, t->o.seq)) < 0) return rc;
    crn_batcher_set_rows(&t->bt, t->row0, t->rows); /* this rank's streams (all of them in one process) */
    if (resume) {
        if (t->s.win <= t->bt.n_win) { /* win == n_win: the wrap happens at the next window */
            t->bt.win = (size_t)t->s.win;
            t->bt.epoch = t->s.epoch;
        } else { /* the corpus changed under us: start its next epoch */
            t->bt.win = 0;
            t->bt.epoch = t->s.epoch + 1;
        }
    }
    /* schedule: base lr from the optimizer; defaults that need the corpus */
    t->o.sched.lr = t->o.optim.lr;
    if (t->o.sched.kind == CRN_SCHED_STEP_DECAY && t->o.sched.decay_every == 0)
        t->o.sched.decay_every = t->bt.n_win;
    const int decaying = t->o.sched.kind == CRN_SCHED_COSINE || t->o.sched.kind == CRN_SCHED_LINEAR;
    t->timed_sched = decaying && t->o.time_limit > 0;
    if (decaying && t->o.sched.total == 0) {
        if (t->o.max_steps) t->o.sched.total = t->o.max_steps;
        else if (t->o.max_epochs) t->o.sched.total = t->o.max_epochs * t->bt.n_win;
        else if (!t->timed_sched)
            return crn_error_set(CRN_EINVAL, "the %s schedule needs a budget (--time, --steps or --epochs)",
                                 t->o.sched.kind == CRN_SCHED_LINEAR ? "linear" : "cosine");
    }
    return 0;
}

/* Phase 5: everything a step touches, sized once for (B, T), and the
 * carried hidden state (restored on resume when it fits). */
static int setup_step_buffers(crn_trainer *t, int resume) {
    int rc;
    const crn_model_config *cfg = crn_model_config_of(t->model);
    uint32_t B = t->o.batch, T = t->o.seq, R = t->rows; /* R of the B streams are this rank's */
    if ((rc = crn_model_reserve(t->model, R, T)) < 0) return rc;
    if ((rc = crn_state_create(&t->st, t->model, R)) < 0) return rc;
    if ((rc = crn_state_create(&t->eval_st, t->model, R)) < 0) return rc;
    crn_model_set_dropout_rows(t->model, B, t->row0);
    t->carry_len = carry_size(cfg, B);
    if (t->nranks > 1 && !(t->carry_mine = malloc(carry_size(cfg, R) * sizeof(float))))
        return crn_error_set(CRN_ENOMEM, "out of memory");
    size_t bt_n = (size_t)R * T;
    t->x = malloc(bt_n * sizeof *t->x);
    t->y = malloc(bt_n * sizeof *t->y);
    if (!t->x || !t->y) return crn_error_set(CRN_ENOMEM, "out of memory for (B=%u, T=%u) buffers", B, T);
    const size_t np = crn_model_num_params(t->model);
    int ok = (t->good_params = malloc(np * sizeof(float))) != NULL;
    for (int i = 0; ok && i < crn_optim_num_buffers(t->optim) && i < 2; i++)
        ok = (t->good_buf[i] = malloc(np * sizeof(float))) != NULL;
    if (!ok) return crn_error_set(CRN_ENOMEM, "out of memory for the rollback copy of %zu parameters", np);
    if (resume) {
        if (t->s.carry && t->s.carry_layers == cfg->layers && t->s.carry_batch == B &&
            t->s.carry_hidden == cfg->hidden && t->s.carry_has_c == (cfg->cell == CRN_CELL_LSTM)) {
            const float *mine = t->s.carry;
            if (t->nranks > 1) { /* this rank's streams of the saved ones */
                crn_dist_take_rows(t->carry_mine, t->s.carry, (size_t)cfg->layers * (1u + t->s.carry_has_c), B,
                                   t->row0, R, cfg->hidden);
                mine = t->carry_mine;
            }
            carry_load(t->st, cfg, R, mine);
        }
        else if (t->s.carry && !t->start_note[0])
            snprintf(t->start_note, sizeof t->start_note, "the carried hidden state does not fit (B changed); starting from zero");
    }
    free(t->s.carry);
    t->s.carry = malloc(t->carry_len * sizeof(float));
    if (!t->s.carry) return crn_error_set(CRN_ENOMEM, "out of memory");
    t->s.carry_layers = cfg->layers;
    t->s.carry_batch = B;
    t->s.carry_hidden = cfg->hidden;
    t->s.carry_has_c = cfg->cell == CRN_CELL_LSTM;
    return 0;
}

/* Phase 6: the buffers of the samples shown during training. */
static int setup_samples(crn_trainer *t) {
    if (!t->o.sample_every || !t->o.sample_len) return 0;
    const crn_vocab *v = t->corpus->vocab;
    uint32_t V = crn_vocab_size(v);
    for (uint32_t id = 0; id < V; id++) {
        size_t len;
        crn_vocab_token(v, id, &len);
        if (len > t->max_token_len) t->max_token_len = len;
    }
    t->sample_cap = (size_t)t->o.sample_len * (t->max_token_len + 4) + 2 * CRN_DECODER_HOLD + 64;
    t->sample_buf = malloc(t->sample_cap);
    t->sample_logits = malloc((size_t)V * sizeof(real));
    t->sample_scratch = malloc(crn_sample_scratch_size(V));
    if (!t->sample_buf || !t->sample_logits || !t->sample_scratch)
        return crn_error_set(CRN_ENOMEM, "out of memory for samples");
    int rc = crn_state_create(&t->sample_st, t->model, 1);
    if (rc < 0) return rc;
    crn_rng_seed(&t->sample_rng, t->o.seed ^ 0x5a5a5a5a5a5a5a5aull);
    return 0;
}

/* Phase 2 (resume, fine-tune or fresh). With ranks: rank 0 first (it makes
 * the id cache the others then reuse), then the others; each outcome agreed,
 * then every rank's corpus compared with rank 0's. */
static int start_model(crn_trainer *t, crn_train_start *start, crn_vocab **vocab, crn_rng *init_rng) {
    int rc = 0;
    for (int turn = 0; turn < (t->nranks > 1 ? 2 : 1); turn++) {
        if ((t->rank == 0) == (turn == 0)) {
            if (start->resume) rc = start_resume(t, start, vocab);
            else if (start->init_from) rc = start_finetune(t, start, vocab, init_rng);
            else rc = start_fresh(t, init_rng);
        }
        if (t->nranks > 1) rc = crn_dist_agree_error(rc);
        if (rc < 0) return rc;
    }
    if (t->nranks == 1) return 0;
    const crn_corpus *c = t->corpus;
    uint64_t key = crn_crc32(0, &c->n_tokens, sizeof c->n_tokens);
    key = crn_crc32((uint32_t)key, &c->n_train, sizeof c->n_train);
    uint32_t v = crn_vocab_size(c->vocab);
    key = crn_crc32((uint32_t)key, &v, sizeof v);
    key = key << 32 | c->text_crc;
    return crn_dist_check_corpus(key, t->o.corpus_path);
}

/* With ranks, at the end of crn_trainer_create: rank 0's parameters,
 * optimizer state, run id and files to all (so the ranks start alike). */
static int dist_share_start(crn_trainer *t) {
    int32_t written = t->model_written;
    crn_train_status none; /* the options only (their encoding in the training state) */
    memset(&none, 0, sizeof none);
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc = crn_dist_agree_error(crn_train_blob_encode(&blob, &len, &t->o, &none));
    if (rc < 0) return rc;
    uint64_t key = crn_crc32(0, blob, len);
    free(blob);
    if ((rc = crn_dist_check_options(key)) < 0) return rc;
    rc = crn_dist_bcast_model(t->model, t->optim);
    if (!rc) rc = crn_dist_bcast(&t->s.run_id, sizeof t->s.run_id, 0);
    if (!rc) rc = crn_dist_bcast(&t->s.started_unix, sizeof t->s.started_unix, 0);
    if (!rc) rc = crn_dist_bcast(&written, sizeof written, 0);
    t->model_written = written;
    return rc;
}

int crn_trainer_create(crn_trainer **out, const crn_train_opts *opts, crn_train_start *start) {
    *out = NULL;
    int rc;
    crn_vocab *vocab = NULL; /* ours to free (the corpus copies it) */
    crn_trainer *t = calloc(1, sizeof *t);
    if (!t) return crn_error_set(CRN_ENOMEM, "out of memory");
    if ((rc = crn_train_opts_copy(&t->o, opts)) < 0) {
        free(t);
        return rc;
    }
    t->rank = crn_dist_rank();
    t->nranks = crn_dist_size();
    t->rows = t->o.batch;
    rc = trainer_paths(t, start);
    if (rc >= 0 && t->nranks > 1) rc = crn_dist_rows(t->o.batch, t->rank, t->nranks, &t->row0, &t->rows);
    if (t->nranks > 1) rc = crn_dist_agree_error(rc);
    if (rc < 0) goto fail;
    crn_rng init_rng;
    crn_rng_seed(&init_rng, t->o.seed);
    if ((rc = start_model(t, start, &vocab, &init_rng)) < 0) goto fail;
    if (!start->resume) status_fresh(t, &init_rng);
    crn_vocab_destroy(vocab);
    vocab = NULL;
    t->o.model = *crn_model_config_of(t->model);
    const crn_corpus *c = t->corpus;
    t->has_val = c->n_tokens - c->n_train >= 2;
    /* per NFC code point of the text in every unit (exactly 1 for code points of
     * composed text; under --normalize none, decomposed text has more tokens) */
    t->tokens_per_char = 1;
    if (c->n_nfc_chars > 0) t->tokens_per_char = (double)c->n_tokens / (double)c->n_nfc_chars;
    rc = setup_optimization(t, start->resume != NULL);
    if (rc >= 0) rc = setup_step_buffers(t, start->resume != NULL);
    if (rc >= 0) rc = setup_samples(t);
    if (t->nranks > 1) rc = crn_dist_agree_error(rc);
    if (rc < 0) goto fail;
    /* Does MODEL exist already (an earlier session of this run)? */
    struct stat sb;
    t->model_written = start->resume && stat(t->out_path, &sb) == 0;
    if (t->nranks > 1 && (rc = dist_share_start(t)) < 0) goto fail;
    *out = t;
    return 0;
fail:
    crn_vocab_destroy(vocab);
    crn_trainer_destroy(t);
    return rc;
}

void crn_trainer_destroy(crn_trainer *t) {
    if (!t) return;
    if (t->log) fclose(t->log);
    crn_state_destroy(t->st);
    crn_state_destroy(t->eval_st);
    crn_state_destroy(t->sample_st);
    crn_optim_destroy(t->optim);
    crn_model_destroy(t->model);
    crn_corpus_destroy(t->corpus);
    free(t->x);
    free(t->y);
    free(t->good_params);
    free(t->carry_mine);
    free(t->good_buf[0]);
    free(t->good_buf[1]);
    free(t->sample_logits);
    free(t->sample_scratch);
    free(t->sample_buf);
    free(t->out_path);
    free(t->resume_path);
    crn_train_status_free(&t->s);
    crn_train_opts_free(&t->o);
    free(t);
}

const crn_train_status *crn_trainer_state(const crn_trainer *t) { return &t->s; }
const crn_corpus *crn_trainer_corpus(const crn_trainer *t) { return t->corpus; }
crn_model *crn_trainer_model(crn_trainer *t) { return t->model; }
uint64_t crn_trainer_new_tokens(const crn_trainer *t) { return t->new_tokens; }
int crn_trainer_has_model_file(const crn_trainer *t) { return t->model_written; }

/* ------------------------------------------------------------------------ */
/* the loop's pieces */

typedef struct loop {
    crn_progress_fn cb;
    void *ud;
    double t0, base_elapsed;
    double seg_t0;            /* start of the current throughput segment */
    uint64_t seg_tokens;      /* tokens trained in it */
    double eval_seconds;      /* time spent evaluating/saving in it (excluded) */
    double train_nats;        /* since the last eval */
    uint64_t train_count;
    double lr;
    double chars_per_s;
    uint64_t last_eval_step, last_sample_step;
    double last_save_time;
    uint64_t last_save_step;
    uint64_t start_step;      /* the step this session started at */
} loop;

/* A time-budgeted decaying schedule: re-estimate the step the decay ends at
 * from this session's measured time per step (evals and saves included)
 * and the time left, capped by a step/epoch budget (sched.total). Until 4
 * steps are measured the saved horizon stands (0 on a fresh run: no decay
 * yet). The last step that fits gets p close to 1. */
#define HORIZON_MIN_STEPS 4
static void update_horizon(crn_trainer *t, const loop *L) {
    if (!t->timed_sched) return;
    const uint64_t k = t->s.step - L->start_step;
    if (k < HORIZON_MIN_STEPS) return;
    const double used = crn_now() - L->t0, per_step = used / (double)k;
    double left = t->o.time_limit - used;
    if (left < 0) left = 0;
    double more = per_step > 0 ? floor(left / per_step) : 0;
    if (more > 1e15) more = 1e15;
    uint64_t h = t->s.step + (uint64_t)more + 1;
    if (t->o.sched.total && h > t->o.sched.total) h = t->o.sched.total;
    t->s.horizon = h;
}

/* The learning rate of the next step (schedule, horizon, lr_scale). */
static double step_lr(const crn_trainer *t) {
    crn_schedule s = t->o.sched;
    if (t->timed_sched) s.total = t->s.horizon ? t->s.horizon : ((uint64_t)1 << 62);
    return crn_schedule_lr(&s, t->s.step) * t->s.lr_scale;
}

static double elapsed_now(const crn_trainer *t, const loop *L) {
    (void)t;
    return L->base_elapsed + (crn_now() - L->t0);
}

static void fill_report(const crn_trainer *t, const loop *L, crn_train_report *r, enum crn_train_event ev) {
    memset(r, 0, sizeof *r);
    r->event = ev;
    r->step = t->s.step;
    r->total_steps = t->o.max_steps;
    if (t->o.max_epochs && t->bt.n_win) {
        uint64_t ep_steps = t->o.max_epochs * t->bt.n_win;
        if (!r->total_steps || ep_steps < r->total_steps) r->total_steps = ep_steps;
    }
    r->epoch = (double)t->bt.epoch + (t->bt.n_win ? (double)t->bt.win / (double)t->bt.n_win : 0);
    r->elapsed = elapsed_now(t, L);
    r->time_limit = t->o.time_limit;
    r->eta = -1;
    double seg = crn_now() - L->seg_t0 - L->eval_seconds;
    uint64_t seg_steps = L->seg_tokens / ((uint64_t)t->o.batch * t->o.seq);
    if (r->total_steps && seg_steps > 0 && seg > 0) {
        double left = (double)(r->total_steps > r->step ? r->total_steps - r->step : 0);
        r->eta = left * seg / (double)seg_steps;
    }
    if (r->time_limit > 0) {
        double left = r->time_limit - (crn_now() - L->t0); /* the time budget is per session */
        if (left < 0) left = 0;
        if (r->eta < 0 || left < r->eta) r->eta = left;
    }
    r->train_bpc = L->train_count ? L->train_nats / (double)L->train_count / M_LN2 * t->tokens_per_char : NAN;
    r->val_bpc = t->s.n_evals ? t->s.last_val_bpc : NAN;
    r->val_bpt = t->s.n_evals ? t->s.last_val_bpt : NAN;
    r->best_val_bpc = t->s.has_best ? t->s.best_val_bpc : NAN;
    r->best_step = t->s.best_step;
    r->lr = L->lr;
    r->chars_per_s = L->chars_per_s;
    if (seg > 0 && L->seg_tokens) r->chars_per_s = (double)L->seg_tokens / t->tokens_per_char / seg;
}

static void report_event(crn_trainer *t, loop *L, enum crn_train_event ev, const char *msg, const char *path) {
    if (!L->cb) return;
    crn_train_report r;
    fill_report(t, L, &r, ev);
    r.message = msg;
    r.path = path;
    L->cb(L->ud, &r);
}

/* Write a checkpoint. with_optim: include the optimizer state. */
static int save_to(crn_trainer *t, loop *L, const char *path, int with_optim) {
    const crn_model_config *cfg = crn_model_config_of(t->model);
    int rc = 0;
    if (t->nranks > 1) { /* the carried state of all streams, from every rank */
        carry_save(t->st, cfg, t->rows, t->carry_mine);
        const size_t blocks = (size_t)cfg->layers * (cfg->cell == CRN_CELL_LSTM ? 2u : 1u);
        rc = crn_dist_gather_rows(t->s.carry, t->carry_mine, blocks, t->o.batch, t->row0, t->rows, cfg->hidden);
        if (rc < 0) return rc;
    } else {
        carry_save(t->st, cfg, t->o.batch, t->s.carry);
    }
    t->s.win = t->bt.win;
    t->s.epoch = t->bt.epoch;
    t->s.elapsed = elapsed_now(t, L);
    if (t->rank == 0) { /* only rank 0 writes */
        uint8_t *blob = NULL;
        size_t len = 0;
        rc = crn_train_blob_encode(&blob, &len, &t->o, &t->s);
        if (rc >= 0)
            rc = crn_checkpoint_save(path, cfg, t->corpus->vocab, t->model, with_optim ? t->optim : NULL, blob, len);
        free(blob);
    }
    if (t->nranks > 1) rc = crn_dist_agree_error(rc);
    if (rc < 0) return rc;
    report_event(t, L, CRN_EV_SAVE, NULL, path);
    return 0;
}

static int save_resume(crn_trainer *t, loop *L) {
    int rc = save_to(t, L, t->resume_path, 1);
    L->last_save_time = crn_now();
    L->last_save_step = t->s.step;
    return rc;
}

static int save_best(crn_trainer *t, loop *L) {
    int rc = save_to(t, L, t->out_path, !t->o.no_optimizer_state); /* agreed by every rank */
    if (rc == 0) t->model_written = 1;
    return rc;
}

/* Validation pass: summed nats and targets. @return 0, 1 if a stop was
 * requested midway (no result), or a negative error. */
static int validate(crn_trainer *t, double *nats, uint64_t *count) {
    const crn_corpus *c = t->corpus;
    uint32_t B = t->o.batch, T = t->o.seq;
    size_t nw = crn_val_windows(c, B, T);
    double total = 0;
    uint64_t n = 0;
    int rc = 0;
    crn_state_reset(t->eval_st);
    for (size_t w = 0; w < nw; w++) {
        /* Ctrl-C: a long validation pass must not delay the save (all ranks leave it together) */
        int stop = t->nranks > 1 ? crn_dist_any(stop_asked(t)) : stop_asked(t);
        if (stop) return stop;
        crn_range_window_rows(c, c->n_train, c->n_tokens, B, t->row0, t->rows, w * T, T, t->x, t->y);
        double l = 0;
        size_t k = 0;
        if ((rc = crn_model_forward(t->model, t->eval_st, t->x, t->y, t->rows, T, NULL, &l, &k)) < 0) break;
        total += l;
        n += k;
    }
    *nats = total;
    *count = n;
    if (t->nranks > 1) return crn_dist_sum_eval(rc, nats, count);
    return rc;
}

static void sample(crn_trainer *t, loop *L) {
    const crn_vocab *v = t->corpus->vocab;
    uint32_t V = crn_vocab_size(v);
    crn_state_reset(t->sample_st);
    uint32_t tok = crn_vocab_lookup(v, (const uint8_t *)"\n", 1);
    crn_decoder d;
    crn_decoder_init(&d, v);
    size_t n = 0;
    crn_sample_settings ss; /* the sampler's draw (never <unk>) at a fixed temperature */
    crn_sample_settings_init(&ss);
    ss.temperature = TRAIN_SAMPLE_TEMPERATURE;
    for (uint32_t i = 0; i < t->o.sample_len; i++) {
        if (crn_model_step(t->model, t->sample_st, &tok, t->sample_logits) < 0) break;
        tok = crn_sample_logits(t->sample_logits, V, &ss, &t->sample_rng, t->sample_scratch);
        if (t->sample_cap - n < CRN_DECODER_HOLD + t->max_token_len + 8) break;
        n += crn_decoder_push(&d, tok, t->sample_buf + n, t->sample_cap - n);
    }
    if (t->sample_cap - n >= CRN_DECODER_HOLD + 8) n += crn_decoder_finish(&d, t->sample_buf + n, t->sample_cap - n);
    if (!L->cb) return;
    crn_train_report r;
    fill_report(t, L, &r, CRN_EV_SAMPLE);
    r.text = (const char *)t->sample_buf;
    r.text_len = n;
    L->cb(L->ud, &r);
}

static void log_row(crn_trainer *t, const crn_train_report *r) {
    if (!t->log) return;
    char val[32] = "", tr[32] = "";
    if (isfinite(r->val_bpc)) snprintf(val, sizeof val, "%.6f", r->val_bpc);
    if (isfinite(r->train_bpc)) snprintf(tr, sizeof tr, "%.6f", r->train_bpc);
    fprintf(t->log, "%llu,%.4f,%.3f,%s,%s,%.6g,%.1f\n", (unsigned long long)r->step, r->epoch, r->elapsed, tr, val,
            r->lr, r->chars_per_s);
    fflush(t->log);
}

/* The last good parameters and optimizer state (for the rollback after a
 * non-finite step): keep the current ones, or restore the kept ones. */
static void good_keep(crn_trainer *t) {
    const size_t bytes = crn_model_num_params(t->model) * sizeof(float);
    memcpy(t->good_params, crn_model_params(t->model), bytes);
    for (int i = 0; i < 2 && t->good_buf[i]; i++) memcpy(t->good_buf[i], crn_optim_buffer(t->optim, i), bytes);
    t->good_t = t->optim->t;
}

static void good_restore(crn_trainer *t) {
    const size_t bytes = crn_model_num_params(t->model) * sizeof(float);
    memcpy(crn_model_params(t->model), t->good_params, bytes);
    for (int i = 0; i < 2 && t->good_buf[i]; i++) memcpy(crn_optim_buffer(t->optim, i), t->good_buf[i], bytes);
    t->optim->t = t->good_t;
}

/* Evaluate, log, keep the best, sample; *stop set by patience. */

static int do_eval(crn_trainer *t, loop *L, int *stop) {
    crn_train_report r;
    fill_report(t, L, &r, CRN_EV_EVAL);
    L->chars_per_s = r.chars_per_s;
    t->s.last_train_bpc = r.train_bpc;
    if (t->has_val) {
        double nats = 0;
        uint64_t count = 0;
        int rc = validate(t, &nats, &count);
        if (rc < 0) return rc;
        if (rc == 1) { /* interrupted: this eval does not count */
            *stop = CRN_TRAIN_STOP_SIGNAL;
            return 0;
        }
        const crn_corpus *c = t->corpus;
        /* per NFC code point: for code points of composed text (nfc, nfkc) these
         * are the targets (as the peer counts) */
        double chars = t->o.unit == CRN_UNIT_CODEPOINT && t->o.norm != CRN_NORM_NONE
                           ? (double)count
                           : (double)(c->n_val_chars > 1 ? c->n_val_chars - 1 : 1);
        double bpt = count ? nats / (double)count / M_LN2 : NAN;
        double bpc = chars > 0 ? nats / M_LN2 / chars : NAN;
        t->s.n_evals++;
        if (t->s.n_evals == 1) t->s.first_val_bpc = bpc;
        t->s.last_val_bpc = bpc;
        t->s.last_val_bpt = bpt;
        r.val_bpc = bpc;
        r.val_bpt = bpt;
        if (isfinite(bpc) && (!t->s.has_best || bpc < t->s.best_val_bpc)) {
            t->s.has_best = 1;
            t->s.best_val_bpc = bpc;
            t->s.best_step = t->s.step;
            t->s.bad_evals = 0;
            r.improved = 1;
            if ((rc = save_best(t, L)) < 0) return rc;
        } else {
            t->s.bad_evals++;
        }
        r.best_val_bpc = t->s.best_val_bpc;
        r.best_step = t->s.best_step;
        if (isfinite(bpc)) good_keep(t);
    } else {
        if (isfinite(r.train_bpc)) good_keep(t);
        int rc = save_best(t, L); /* no validation split: the latest is the best we know */
        if (rc < 0) return rc;
    }
    log_row(t, &r);
    if (L->cb) L->cb(L->ud, &r);
    if (t->o.sample_every && t->sample_buf && t->s.step >= L->last_sample_step + t->o.sample_every) {
        if (t->rank == 0) sample(t, L);
        L->last_sample_step = t->s.step;
    }
    int rc = save_resume(t, L);
    if (rc < 0) return rc;
    L->last_eval_step = t->s.step;
    L->train_nats = 0;
    L->train_count = 0;
    /* a new throughput segment starts after the eval */
    L->seg_t0 = crn_now();
    L->seg_tokens = 0;
    L->eval_seconds = 0;
    if (t->o.patience && t->s.bad_evals >= t->o.patience) *stop = CRN_TRAIN_STOP_PATIENCE;
    return 0;
}

static int open_log(crn_trainer *t) {
    if (!t->o.log_path || t->rank != 0) return 0;
    struct stat sb;
    int exists = stat(t->o.log_path, &sb) == 0 && sb.st_size > 0;
    t->log = fopen(t->o.log_path, t->log_append ? "a" : "w");
    if (!t->log)
        return crn_error_set(CRN_EIO, "%s: cannot open the log for writing: %s", t->o.log_path, strerror(errno));
    if (!t->log_append || !exists) fprintf(t->log, "step,epoch,seconds,train_bpc,val_bpc,lr,chars_per_s\n");
    fflush(t->log);
    return 0;
}

int crn_train_step_gradient(crn_model *m, crn_state *st, const uint32_t *x, const uint32_t *y, uint32_t B,
                            uint32_t T, crn_rng *rng, double clip, double *loss, size_t *count, double *norm) {
    crn_model_zero_grads(m);
    *loss = 0;
    *count = 0;
    *norm = NAN;
    int rc = crn_model_forward(m, st, x, y, B, T, rng, loss, count);
    if (rc < 0) return rc;
    if (!isfinite(*loss)) return 0;
    if ((rc = crn_model_backward(m)) < 0) return rc;
    *norm = crn_clip_grad_norm(crn_model_grads(m), crn_model_num_params(m), clip);
    return 0;
}

/* The end of crn_trainer_run: the final eval (unless stopped by a signal or
 * non-finite steps), the last saves, the DONE event, the return code. */
static int finish_run(crn_trainer *t, loop *L, int stop) {
    int rc;
    t->s.stop_reason = (uint32_t)stop;
    if (stop == CRN_TRAIN_STOP_SIGNAL || stop == CRN_TRAIN_STOP_NONFINITE) {
        /* no final eval: stop promptly; keep a model file in any case */
        if ((rc = save_resume(t, L)) < 0) goto error;
        if (!t->model_written && (rc = save_best(t, L)) < 0) goto error;
    } else if (L->last_eval_step != t->s.step || t->s.n_evals == 0) {
        int st2 = 0;
        if ((rc = do_eval(t, L, &st2)) < 0) goto error;
        if (st2 == CRN_TRAIN_STOP_SIGNAL) { /* interrupted during the final eval */
            stop = CRN_TRAIN_STOP_SIGNAL;
            t->s.stop_reason = (uint32_t)stop;
            if ((rc = save_resume(t, L)) < 0) goto error;
        }
    } else {
        if ((rc = save_resume(t, L)) < 0) goto error; /* records the stop reason */
    }
    /* never end without a model file (e.g. no eval improved in a resumed run
     * writing to a new path): then MODEL is the latest state */
    if (!t->model_written && (rc = save_best(t, L)) < 0) goto error;
    report_event(t, L, CRN_EV_DONE, crn_train_stop_name((enum crn_train_stop)stop), NULL);
    if (stop == CRN_TRAIN_STOP_SIGNAL)
        return crn_error_set(CRN_EINTR, "interrupted at step %llu; saved %s", (unsigned long long)t->s.step,
                             t->resume_path);
    if (stop == CRN_TRAIN_STOP_NONFINITE)
        return crn_error_set(CRN_ENONFINITE,
                             "%d non-finite steps in a row at step %llu (loss or gradient is NaN/Inf); "
                             "try a lower --lr or --clip; the last good state is in %s",
                             CRN_NONFINITE_MAX, (unsigned long long)t->s.step, t->resume_path);
    return 0;
error:
    t->s.stop_reason = CRN_TRAIN_STOP_ERROR;
    return rc;
}

/* A data-parallel step's gradient (train_dist.h): rank 0 contributes its
 * clock's decisions (time budget, --save-every seconds, the schedule's
 * horizon), every rank its stop request; all get the same back. */
static int dist_step(crn_trainer *t, loop *L, double *loss, size_t *count, double *norm) {
    unsigned flags = stop_asked(t) ? CRN_DIST_STOP : 0u;
    if (t->rank == 0) {
        const double now = crn_now();
        if (t->o.time_limit > 0 && now - L->t0 >= t->o.time_limit) flags |= CRN_DIST_TIME_UP;
        if (t->o.save_every_seconds > 0 && now - L->last_save_time >= t->o.save_every_seconds)
            flags |= CRN_DIST_SAVE_DUE;
        update_horizon(t, L);
    }
    t->ex.flags = flags;
    t->ex.horizon = t->s.horizon;
    int rc = crn_dist_step_gradient(t->model, t->st, t->x, t->y, t->rows, t->o.seq, &t->s.rng, t->o.clip, &t->ex,
                                    loss, count, norm);
    if (rc < 0) return rc;
    t->s.horizon = t->ex.horizon;
#ifndef NDEBUG
    if ((t->s.step + 1) % CRN_DIST_CHECK_EVERY == 0 && (rc = crn_dist_check_params(t->model, t->s.step)) < 0)
        return rc;
#endif
    return 0;
}

int crn_trainer_run(crn_trainer *t, crn_progress_fn cb, void *ud) {
    int rc = open_log(t);
    if (t->nranks > 1) rc = crn_dist_agree_error(rc);
    if (rc < 0) return rc;
    crn_set_threads(t->o.threads);
    loop L;
    memset(&L, 0, sizeof L);
    L.cb = cb;
    L.ud = ud;
    L.t0 = L.seg_t0 = L.last_save_time = crn_now();
    L.base_elapsed = t->s.elapsed;
    L.last_eval_step = L.last_sample_step = L.last_save_step = t->s.step;
    L.start_step = t->s.step;
    L.lr = step_lr(t);
    t->s.stop_reason = CRN_TRAIN_STOP_NONE;

    const crn_model_config *cfg = crn_model_config_of(t->model);
    const uint32_t B = t->o.batch, T = t->o.seq;
    real *params = crn_model_params(t->model);
    real *grads = crn_model_grads(t->model);
    const size_t np = crn_model_num_params(t->model);
    char msg[256];

    {
        char buf[200];
        snprintf(buf, sizeof buf, "%s %ux%u, %zu parameters, vocabulary %u, %zu train / %zu val tokens",
                 crn_cell_name(cfg->cell), cfg->layers, cfg->hidden, np, cfg->vocab, t->corpus->n_train,
                 t->corpus->n_tokens - t->corpus->n_train);
        report_event(t, &L, CRN_EV_START, buf, NULL);
        if (t->start_note[0]) report_event(t, &L, CRN_EV_WARN, t->start_note, NULL);
    }

    good_keep(t); /* loaded or fresh weights are finite (the loader refuses others) */
    int stop = CRN_TRAIN_STOP_NONE;
    for (;;) {
        /* ---- budgets, checked between steps ---- */
        /* (ranks: the clock and signals as the last step's exchange had them) */
        const int dist = t->nranks > 1;
        double session = crn_now() - L.t0;
        if (t->o.max_steps && t->s.step >= t->o.max_steps) stop = CRN_TRAIN_STOP_STEPS;
        else if (t->o.max_epochs && epochs_done(&t->bt) >= t->o.max_epochs) stop = CRN_TRAIN_STOP_EPOCHS;
        else if (t->o.time_limit > 0 && (dist ? (t->ex.flags & CRN_DIST_TIME_UP) != 0 : session >= t->o.time_limit))
            stop = CRN_TRAIN_STOP_TIME;
        else if (dist ? (t->ex.flags & CRN_DIST_STOP) != 0 : stop_asked(t)) stop = CRN_TRAIN_STOP_SIGNAL;
        if (stop) break;

        /* ---- one step ---- */
        int reset = 0;
        crn_batcher_next(&t->bt, t->x, t->y, &reset);
        if (reset) crn_state_reset(t->st);
        double loss, norm;
        size_t count;
        if (dist) rc = dist_step(t, &L, &loss, &count, &norm);
        else rc = crn_train_step_gradient(t->model, t->st, t->x, t->y, B, T, &t->s.rng, t->o.clip, &loss, &count, &norm);
        if (rc < 0) goto error;
        if (FAULT_NAN(t->s.step)) loss = NAN;
        if (FAULT_GRAD(t->s.step) && isfinite(loss)) grads[0] = g_fault_grad;
        float lr = 0;
        int state_ok = 1;
        if (isfinite(loss) && isfinite(norm)) {
            if (!dist) update_horizon(t, &L);
            lr = (float)step_lr(t);
            crn_optim_step(t->optim, params, grads, lr);
            state_ok = crn_optim_finite(t->optim, params); /* e.g. adam's v overflowed with --clip 0 */
        }
        if (!isfinite(loss) || !isfinite(norm) || !state_ok) {
            good_restore(t);
            crn_state_reset(t->st);
            t->s.nonfinite_total++;
            t->s.nonfinite_run++;
            t->s.lr_scale *= 0.5;
            t->s.step++;
            snprintf(msg, sizeof msg, "step %llu: non-finite %s; update skipped, learning rate halved (%u in a row)",
                     (unsigned long long)t->s.step,
                     !isfinite(loss) ? "loss" : !isfinite(norm) ? "gradient" : "weights or optimizer state",
                     t->s.nonfinite_run);
            report_event(t, &L, CRN_EV_WARN, msg, NULL);
            if (t->s.nonfinite_run >= CRN_NONFINITE_MAX) {
                stop = CRN_TRAIN_STOP_NONFINITE;
                break;
            }
            continue;
        }
        t->s.nonfinite_run = 0;
        L.lr = lr;
        t->s.step++;
        t->s.tokens_seen += (uint64_t)B * T;
        L.seg_tokens += (uint64_t)B * T;
        L.train_nats += loss;
        L.train_count += count;
        report_event(t, &L, CRN_EV_STEP, NULL, NULL);

        /* ---- evaluation and checkpoints ---- */
        if (t->o.eval_every && t->s.step % t->o.eval_every == 0) {
            if ((rc = do_eval(t, &L, &stop)) < 0) goto error;
            if (stop) break;
        } else {
            int due = (t->o.save_every_steps && t->s.step - L.last_save_step >= t->o.save_every_steps) ||
                      (t->o.save_every_seconds > 0 && (dist ? (t->ex.flags & CRN_DIST_SAVE_DUE) != 0
                                                            : crn_now() - L.last_save_time >= t->o.save_every_seconds));
            if (due) {
                double ts = crn_now();
                if ((rc = save_resume(t, &L)) < 0) goto error;
                L.eval_seconds += crn_now() - ts;
            }
        }
    }

    /* ---- the end ---- */
    return finish_run(t, &L, stop);
error:
    t->s.stop_reason = CRN_TRAIN_STOP_ERROR;
    return rc;
}

/* ------------------------------------------------------------------------ */

int crn_evaluate_ids(crn_model *m, const crn_corpus *c, size_t begin, size_t end, uint32_t B, uint32_t T,
                     double *nats, uint64_t *count) {
    *nats = 0;
    *count = 0;
    if (end > c->n_tokens || begin > end) return crn_error_set(CRN_EINVAL, "evaluate: bad range");
    if (end - begin < 2) return crn_error_set(CRN_EEMPTY, "%s: fewer than 2 tokens to evaluate", c->path);
    if (B == 0 || T == 0) return crn_error_set(CRN_EINVAL, "evaluate: B and T must be > 0");
    int rc;
    size_t n = end - begin - 1;            /* (input, target) pairs */
    if (n < B) B = (uint32_t)n;
    size_t Lr = (n + B - 1) / B;           /* row length */
    uint32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    crn_state *st = NULL;
    if (!x || !y) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = crn_model_reserve(m, B, T)) < 0) goto done;
    if ((rc = crn_state_create(&st, m, B)) < 0) goto done;
    double total = 0;
    uint64_t cnt = 0;
    for (size_t t0 = 0; t0 < Lr; t0 += T) {
        uint32_t Tw = (uint32_t)CRN_MIN((size_t)T, Lr - t0);
        crn_range_window(c, begin, end, B, t0, Tw, x, y); /* the validation layout (corpus.c) */
        double l = 0;
        size_t k = 0;
        if ((rc = crn_model_forward(m, st, x, y, B, Tw, NULL, &l, &k)) < 0) goto done;
        total += l;
        cnt += k;
    }
    *nats = total;
    *count = cnt;
    rc = 0;
done:
    crn_state_destroy(st);
    free(x);
    free(y);
    return rc;
}
