/* train_opts.c — the options of a training run: defaults, copy and free,
 * and setting one by name ("hidden" = "128") with the ranges `charrnn train`
 * accepts (the public API's charrnn_train_options_set goes through here, so
 * a program gets the same checks as the command line). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autoconf.h"
#include "common.h"
#include "train.h"

enum kind { K_U32, K_U64, K_F32, K_F64, K_INT, K_DURATION, K_STR, K_LIST, K_FLAG, K_FLAG32, K_ENUM };

typedef struct opt_desc {
    const char *name;
    enum kind kind;
    size_t off;         /* offset into crn_train_opts */
    double lo, hi;      /* numeric range */
    int (*parse)(const char *s, crn_train_opts *o); /* K_ENUM */
} opt_desc;

static int p_unit(const char *s, crn_train_opts *o) { return crn_unit_parse(s, &o->unit); }
static int p_norm(const char *s, crn_train_opts *o) { return crn_norm_parse(s, &o->norm); }
static int p_invalid(const char *s, crn_train_opts *o) { return crn_invalid_parse(s, &o->invalid); }
static int p_cell(const char *s, crn_train_opts *o) {
    enum crn_cell old = o->model.cell;
    if (crn_cell_parse(s, &o->model.cell)) return -1;
    /* an init scheme still at the old cell's default follows the cell */
    if (o->init.kind == crn_init_default_kind(old)) o->init.kind = crn_init_default_kind(o->model.cell);
    return 0;
}
static int p_init(const char *s, crn_train_opts *o) { return crn_init_parse(s, &o->init.kind); }
/* a preset sets the model shape, dropout, batch and seq (options set later win) */
static int p_preset(const char *s, crn_train_opts *o) {
    enum crn_preset p;
    if (crn_preset_parse(s, &p) || p == CRN_PRESET_NONE) return -1;
    enum crn_cell old = o->model.cell;
    crn_preset_apply(o, p);
    if (o->init.kind == crn_init_default_kind(old)) o->init.kind = crn_init_default_kind(o->model.cell);
    return 0;
}
static int p_act(const char *s, crn_train_opts *o) { return crn_act_parse(s, &o->model.act); }
static int p_optim(const char *s, crn_train_opts *o) {
    enum crn_optim_kind k;
    if (crn_optim_parse(s, &k)) return -1;
    if (k != o->optim.kind) { /* the kind's defaults, keeping a learning rate already set */
        float lr = o->optim.lr;
        crn_optim_config_default(&o->optim, k);
        o->optim.lr = lr;
    }
    return 0;
}
static int p_sched(const char *s, crn_train_opts *o) { return crn_schedule_parse(s, &o->sched.kind); }

#define OFF(f) offsetof(crn_train_opts, f)
#define BIG ((double)(1ull << 50))
static const opt_desc descs[] = {
    [CRN_TOPT_CORPUS] = {"corpus", K_STR, OFF(corpus_path), 0, 0, NULL},
    [CRN_TOPT_UNIT] = {"unit", K_ENUM, 0, 0, 0, p_unit},
    [CRN_TOPT_NORMALIZE] = {"normalize", K_ENUM, 0, 0, 0, p_norm},
    [CRN_TOPT_INVALID] = {"invalid", K_ENUM, 0, 0, 0, p_invalid},
    [CRN_TOPT_MIN_COUNT] = {"min-count", K_U64, OFF(min_count), 1, (double)(1ull << 40), NULL},
    [CRN_TOPT_VAL_FRAC] = {"val-frac", K_F64, OFF(val_frac), 0, 0.9, NULL},
    [CRN_TOPT_KEEP] = {"keep", K_LIST, OFF(keep), 0, 0, NULL},
    [CRN_TOPT_DROP] = {"drop", K_LIST, OFF(drop), 0, 0, NULL},
    [CRN_TOPT_REPLACE] = {"replace", K_LIST, OFF(replace), 0, 0, NULL},
    [CRN_TOPT_CELL] = {"cell", K_ENUM, 0, 0, 0, p_cell},
    [CRN_TOPT_ACTIVATION] = {"activation", K_ENUM, 0, 0, 0, p_act},
    [CRN_TOPT_LAYERS] = {"layers", K_U32, OFF(model.layers), 1, 64, NULL},
    [CRN_TOPT_HIDDEN] = {"hidden", K_U32, OFF(model.hidden), 1, 16384, NULL},
    [CRN_TOPT_EMBED] = {"embed", K_U32, OFF(model.embed), 0, 16384, NULL},
    [CRN_TOPT_DROPOUT] = {"dropout", K_F32, OFF(model.dropout), 0, 0.99, NULL},
    [CRN_TOPT_LAYER_NORM] = {"layer-norm", K_FLAG32, OFF(model.layer_norm), 0, 0, NULL},
    [CRN_TOPT_INIT] = {"init", K_ENUM, 0, 0, 0, p_init},
    [CRN_TOPT_FORGET_BIAS] = {"forget-bias", K_F32, OFF(init.forget_bias), -100, 100, NULL},
    [CRN_TOPT_PRESET] = {"preset", K_ENUM, 0, 0, 0, p_preset},
    [CRN_TOPT_BATCH] = {"batch", K_U32, OFF(batch), 1, 1 << 16, NULL},
    [CRN_TOPT_SEQ] = {"seq", K_U32, OFF(seq), 1, 1 << 16, NULL},
    [CRN_TOPT_OPTIMIZER] = {"optimizer", K_ENUM, 0, 0, 0, p_optim},
    [CRN_TOPT_LR] = {"lr", K_F32, OFF(optim.lr), 1e-12, 100, NULL},
    [CRN_TOPT_WEIGHT_DECAY] = {"weight-decay", K_F32, OFF(optim.weight_decay), 0, 100, NULL},
    [CRN_TOPT_MOMENTUM] = {"momentum", K_F32, OFF(optim.momentum), 0, 0.9999, NULL},
    [CRN_TOPT_CLIP] = {"clip", K_F64, OFF(clip), 0, 1e30, NULL},
    [CRN_TOPT_SCHEDULE] = {"schedule", K_ENUM, 0, 0, 0, p_sched},
    [CRN_TOPT_LR_DECAY] = {"lr-decay", K_F32, OFF(sched.decay), 1e-6, 1, NULL},
    [CRN_TOPT_LR_DECAY_AFTER] = {"lr-decay-after", K_U64, OFF(sched.decay_after), 0, BIG, NULL},
    [CRN_TOPT_WARMUP] = {"warmup", K_U64, OFF(sched.warmup), 0, BIG, NULL},
    [CRN_TOPT_TIME] = {"time", K_DURATION, OFF(time_limit), 0, 0, NULL},
    [CRN_TOPT_STEPS] = {"steps", K_U64, OFF(max_steps), 1, BIG, NULL},
    [CRN_TOPT_EPOCHS] = {"epochs", K_U64, OFF(max_epochs), 1, (double)(1ull << 40), NULL},
    [CRN_TOPT_EVAL_EVERY] = {"eval-every", K_U64, OFF(eval_every), 0, BIG, NULL},
    [CRN_TOPT_PATIENCE] = {"patience", K_U32, OFF(patience), 0, 1 << 30, NULL},
    [CRN_TOPT_SAVE_EVERY] = {"save-every", K_U64, OFF(save_every_steps), 1, BIG, NULL},
    [CRN_TOPT_NO_OPTIMIZER_STATE] = {"no-optimizer-state", K_FLAG, OFF(no_optimizer_state), 0, 0, NULL},
    [CRN_TOPT_SEED] = {"seed", K_U64, OFF(seed), 0, (double)INT64_MAX, NULL},
    [CRN_TOPT_THREADS] = {"threads", K_INT, OFF(threads), 0, 1024, NULL},
    [CRN_TOPT_LOG] = {"log", K_STR, OFF(log_path), 0, 0, NULL},
    [CRN_TOPT_SAMPLE_EVERY] = {"sample-every", K_U64, OFF(sample_every), 0, BIG, NULL},
    [CRN_TOPT_SAMPLE_LEN] = {"sample-len", K_U32, OFF(sample_len), 1, 100000, NULL},
};
_Static_assert(CRN_ARRAY_LEN(descs) == CRN_TOPT_COUNT && CRN_TOPT_COUNT <= 64, "one table row per option id");

int crn_train_opt_id(const char *name) {
    for (size_t i = 0; name && i < CRN_ARRAY_LEN(descs); i++)
        if (descs[i].name && !strcmp(descs[i].name, name)) return (int)i;
    return -1;
}

const char *crn_train_opt_name(int id) { return id >= 0 && id < CRN_TOPT_COUNT ? descs[id].name : NULL; }

/* The whole string is a number in [lo, hi] (integers: no fraction). */
static int parse_num(const opt_desc *d, const char *s, int integer, double *out) {
    char *end;
    errno = 0;
    double v = integer ? (double)strtoull(s, &end, 10) : strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v) || (integer && *s == '-'))
        return crn_error_set(CRN_EINVAL, "%s: '%s' is not %s", d->name, s, integer ? "an integer" : "a number");
    if (v < d->lo || v > d->hi)
        return crn_error_set(CRN_ERANGE, "%s: %s is outside [%g, %g]", d->name, s, d->lo, d->hi);
    *out = v;
    return 0;
}

/* "90", "90s", "10m", "1.5h" -> seconds > 0. */
static int parse_duration(const opt_desc *d, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end), mult = 1;
    if (end != s && *end && !end[1]) {
        if (*end == 's') end++;
        else if (*end == 'm') mult = 60, end++;
        else if (*end == 'h') mult = 3600, end++;
    }
    if (end == s || *end || errno == ERANGE || !isfinite(v) || !(v > 0))
        return crn_error_set(CRN_EINVAL, "%s: '%s' is not a positive duration (examples: 90s, 10m, 1.5h)", d->name, s);
    *out = v * mult;
    return 0;
}

static int push_list(crn_train_opts *o, const opt_desc *d, const char *value) {
    char ***list = (char ***)((char *)o + d->off);
    size_t *n = d->off == OFF(keep) ? &o->n_keep : d->off == OFF(drop) ? &o->n_drop : &o->n_replace;
    if (d->off == OFF(replace) && !strchr(value, '='))
        return crn_error_set(CRN_EINVAL, "replace: '%s' has no '=' (expected REGEX=TEXT)", value);
    char *copy = strdup(value);
    char **grown = copy ? realloc(*list, (*n + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        return crn_error_set(CRN_ENOMEM, "out of memory");
    }
    grown[(*n)++] = copy;
    *list = grown;
    return 0;
}

int crn_train_opts_set(crn_train_opts *o, const char *name, const char *value) {
    if (!o || !name || !value) return crn_error_set(CRN_EINVAL, "training option: NULL argument");
    int id = crn_train_opt_id(name);
    if (id < 0) return crn_error_set(CRN_ENOTFOUND, "'%s' is not a training option", name);
    const opt_desc *d = &descs[id];
    void *field = (char *)o + d->off;
    double v = 0;
    int err = 0;
    switch (d->kind) {
    case K_ENUM:
        if (d->parse(value, o)) return crn_error_set(CRN_EINVAL, "%s: '%s' is not a valid value", name, value);
        return 0;
    case K_FLAG:
    case K_FLAG32:
        if (strcmp(value, "0") && strcmp(value, "1")) return crn_error_set(CRN_EINVAL, "%s: expected 0 or 1", name);
        if (d->kind == K_FLAG) *(int *)field = value[0] == '1';
        else *(uint32_t *)field = value[0] == '1';
        return 0;
    case K_STR: {
        char *copy = strdup(value);
        if (!copy) return crn_error_set(CRN_ENOMEM, "out of memory");
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case K_LIST: return push_list(o, d, value);
    case K_DURATION:
        if ((err = parse_duration(d, value, &v)) < 0) return err;
        *(double *)field = v;
        return 0;
    default: break;
    }
    if ((err = parse_num(d, value, d->kind != K_F32 && d->kind != K_F64, &v)) < 0) return err;
    switch (d->kind) {
    case K_U32: *(uint32_t *)field = (uint32_t)v; break;
    case K_U64: *(uint64_t *)field = (uint64_t)strtoull(value, NULL, 10); break; /* exact past 2^53 */
    case K_F32: *(float *)field = (float)v; break;
    case K_F64: *(double *)field = v; break;
    case K_INT: *(int *)field = (int)v; break;
    default: break;
    }
    if (d->off == OFF(save_every_steps)) o->save_every_seconds = 0;
    if (d->off == OFF(sched.decay) && o->sched.kind == CRN_SCHED_CONSTANT) o->sched.kind = CRN_SCHED_STEP_DECAY;
    return 0;
}

/* ---- defaults, free, copy ------------------------------------------------ */

void crn_train_opts_default(crn_train_opts *o) {
    memset(o, 0, sizeof *o);
    crn_corpus_opts data; /* the data defaults are the corpus loader's */
    crn_corpus_opts_default(&data);
    o->unit = data.unit;
    o->norm = data.norm;
    o->invalid = data.invalid;
    o->min_count = data.min_count;
    o->val_frac = data.val_frac;
    o->batch = 50;
    o->seq = 50;
    o->model.cell = CRN_CELL_LSTM;
    o->model.act = CRN_ACT_TANH;
    o->model.embed = 0;
    o->model.hidden = 128;
    o->model.layers = 2;
    o->model.dropout = 0;
    o->model.layer_norm = 1; /* docs/training.md, "Layer normalisation": better per step and per minute */
    crn_init_spec_default(&o->init);
    crn_optim_config_default(&o->optim, CRN_OPT_ADAM);
    o->clip = 5;
    o->sched.kind = CRN_SCHED_CONSTANT;
    o->sched.lr = o->optim.lr;
    o->sched.decay = 1;
    o->eval_every = 500;
    o->save_every_seconds = 600;
    o->seed = 123;
    o->sample_len = 200;
}

void crn_train_list_free(char **a, size_t n) {
    if (!a) return;
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

void crn_train_opts_free(crn_train_opts *o) {
    if (!o) return;
    free(o->corpus_path);
    free(o->log_path);
    crn_train_list_free(o->keep, o->n_keep);
    crn_train_list_free(o->drop, o->n_drop);
    crn_train_list_free(o->replace, o->n_replace);
    o->corpus_path = o->log_path = NULL;
    o->keep = o->drop = o->replace = NULL;
    o->n_keep = o->n_drop = o->n_replace = 0;
}

static int dup_str(char **dst, const char *src) {
    *dst = NULL;
    if (!src) return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

/* *dst := a copy of src (NULL for NULL), the old string freed. @return 0 or -1 (dst unchanged). */
static int dup_replace(char **dst, const char *src) {
    char *copy = NULL;
    if (dup_str(&copy, src)) return -1;
    free(*dst);
    *dst = copy;
    return 0;
}

static int dup_list(char ***dst, char *const *src, size_t n) {
    *dst = NULL;
    if (!n) return 0;
    char **a = calloc(n, sizeof *a);
    if (!a) return -1;
    for (size_t i = 0; i < n; i++) {
        if (dup_str(&a[i], src[i])) {
            crn_train_list_free(a, i);
            return -1;
        }
    }
    *dst = a;
    return 0;
}

int crn_train_opts_copy(crn_train_opts *dst, const crn_train_opts *src) {
    *dst = *src;
    dst->corpus_path = dst->log_path = NULL;
    dst->keep = dst->drop = dst->replace = NULL;
    size_t nk = src->n_keep, nd = src->n_drop, nr = src->n_replace;
    dst->n_keep = dst->n_drop = dst->n_replace = 0;
    if (dup_str(&dst->corpus_path, src->corpus_path) || dup_str(&dst->log_path, src->log_path))
        goto fail;
    if (dup_list(&dst->keep, src->keep, nk)) goto fail;
    dst->n_keep = nk;
    if (dup_list(&dst->drop, src->drop, nd)) goto fail;
    dst->n_drop = nd;
    if (dup_list(&dst->replace, src->replace, nr)) goto fail;
    dst->n_replace = nr;
    return 0;
fail:
    crn_train_opts_free(dst);
    return crn_error_set(CRN_ENOMEM, "out of memory copying training options");
}

/* ---- the options of a session of a run (docs/training.md "Options on resume") */

int crn_train_opts_check(const crn_train_opts *o) {
    if (o->model.cell != CRN_CELL_RNN && o->model.act != CRN_ACT_TANH)
        return crn_error_set(CRN_EINVAL, "activation %s applies to cell rnn only (this run's cell is %s)",
                             crn_act_name(o->model.act), crn_cell_name(o->model.cell));
    if ((o->sched.kind == CRN_SCHED_COSINE || o->sched.kind == CRN_SCHED_LINEAR) && !o->max_steps &&
        !o->max_epochs && !o->sched.total && !(o->time_limit > 0))
        return crn_error_set(CRN_EINVAL, "schedule %s needs a budget (time, steps or epochs: the length of the "
                             "decay)", crn_schedule_name(o->sched.kind));
    return 0;
}

#define GIVEN(id) (mask & CRN_TOPT_BIT(CRN_TOPT_##id))

int crn_train_opts_apply_session(crn_train_opts *dst, const crn_train_opts *given, uint64_t mask) {
    const crn_train_opts *u = given;
    if (GIVEN(OPTIMIZER) && u->optim.kind != dst->optim.kind) crn_optim_config_default(&dst->optim, u->optim.kind);
    if (GIVEN(LR)) dst->optim.lr = u->optim.lr;
    if (GIVEN(WEIGHT_DECAY)) dst->optim.weight_decay = u->optim.weight_decay;
    if (GIVEN(MOMENTUM)) dst->optim.momentum = u->optim.momentum;
    if (GIVEN(CLIP)) dst->clip = u->clip;
    if (GIVEN(SCHEDULE)) dst->sched.kind = u->sched.kind;
    if (GIVEN(LR_DECAY)) {
        dst->sched.decay = u->sched.decay;
        if (!GIVEN(SCHEDULE)) dst->sched.kind = CRN_SCHED_STEP_DECAY;
    }
    if (GIVEN(LR_DECAY_AFTER)) dst->sched.decay_after = u->sched.decay_after;
    if (GIVEN(WARMUP)) dst->sched.warmup = u->sched.warmup;
    if (GIVEN(TIME) || GIVEN(STEPS) || GIVEN(EPOCHS)) { /* one budget replaces all three */
        dst->time_limit = GIVEN(TIME) ? u->time_limit : 0;
        dst->max_steps = GIVEN(STEPS) ? u->max_steps : 0;
        dst->max_epochs = GIVEN(EPOCHS) ? u->max_epochs : 0;
        if (dst->sched.kind == CRN_SCHED_COSINE || dst->sched.kind == CRN_SCHED_LINEAR)
            dst->sched.total = 0; /* recomputed from the new budget */
    }
    if (GIVEN(EVAL_EVERY)) dst->eval_every = u->eval_every;
    if (GIVEN(PATIENCE)) dst->patience = u->patience;
    if (GIVEN(SAVE_EVERY)) {
        dst->save_every_steps = u->save_every_steps;
        dst->save_every_seconds = u->save_every_seconds;
    }
    if (GIVEN(NO_OPTIMIZER_STATE)) dst->no_optimizer_state = u->no_optimizer_state;
    if (GIVEN(SEED)) dst->seed = u->seed;
    if (GIVEN(THREADS)) dst->threads = u->threads;
    if (GIVEN(SAMPLE_EVERY)) dst->sample_every = u->sample_every;
    if (GIVEN(SAMPLE_LEN)) dst->sample_len = u->sample_len;
    if (GIVEN(LOG) && dup_replace(&dst->log_path, u->log_path)) return crn_error_set(CRN_ENOMEM, "out of memory");
    return 0;
}

static int same_list(char *const *a, size_t na, char *const *b, size_t nb) {
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i])) return 0;
    return 1;
}

/* The first given option that contradicts the checkpoint's ck: its id, and
 * the message. @return 0 or CRN_EINVAL. */
static int resume_conflict(const crn_train_opts *ck, const crn_train_opts *u, uint64_t mask, int *refused) {
#define CONFLICT(id, cond, fmt, ...)                                                                          \
    if (GIVEN(id) && (cond)) {                                                                                \
        *refused = CRN_TOPT_##id;                                                                             \
        return crn_error_set(CRN_EINVAL, "%s conflicts with the checkpoint (" fmt "); a resumed run keeps its " \
                             "model, data and optimizer settings", descs[CRN_TOPT_##id].name, __VA_ARGS__);   \
    }
    CONFLICT(CELL, u->model.cell != ck->model.cell, "cell %s", crn_cell_name(ck->model.cell));
    CONFLICT(ACTIVATION, u->model.act != ck->model.act, "activation %s", crn_act_name(ck->model.act));
    CONFLICT(LAYERS, u->model.layers != ck->model.layers, "layers %u", ck->model.layers);
    CONFLICT(HIDDEN, u->model.hidden != ck->model.hidden, "hidden %u", ck->model.hidden);
    CONFLICT(EMBED, u->model.embed != ck->model.embed, "embed %u", ck->model.embed);
    CONFLICT(DROPOUT, u->model.dropout != ck->model.dropout, "dropout %g", (double)ck->model.dropout);
    CONFLICT(LAYER_NORM, u->model.layer_norm != ck->model.layer_norm, "layer norm %s",
             ck->model.layer_norm ? "on" : "off");
    CONFLICT(INIT, u->init.kind != ck->init.kind, "init %s", crn_init_name(ck->init.kind));
    CONFLICT(FORGET_BIAS, !(u->init.forget_bias == ck->init.forget_bias), "forget bias %g",
             (double)ck->init.forget_bias);
    CONFLICT(PRESET, 1, "%s", "the model exists");
    CONFLICT(UNIT, u->unit != ck->unit, "unit %s", crn_unit_name(ck->unit));
    CONFLICT(NORMALIZE, u->norm != ck->norm, "normalize %s", crn_norm_name(ck->norm));
    CONFLICT(INVALID, u->invalid != ck->invalid, "invalid %s", crn_invalid_name(ck->invalid));
    CONFLICT(MIN_COUNT, u->min_count != ck->min_count, "min-count %llu", (unsigned long long)ck->min_count);
    CONFLICT(VAL_FRAC, u->val_frac != ck->val_frac, "val-frac %g", ck->val_frac);
    CONFLICT(BATCH, u->batch != ck->batch, "batch %u", ck->batch);
    CONFLICT(SEQ, u->seq != ck->seq, "seq %u", ck->seq);
    CONFLICT(OPTIMIZER, u->optim.kind != ck->optim.kind, "optimizer %s", crn_optim_name(ck->optim.kind));
    CONFLICT(KEEP, !same_list(u->keep, u->n_keep, ck->keep, ck->n_keep), "%zu keep patterns", ck->n_keep);
    CONFLICT(DROP, !same_list(u->drop, u->n_drop, ck->drop, ck->n_drop), "%zu drop patterns", ck->n_drop);
    CONFLICT(REPLACE, !same_list(u->replace, u->n_replace, ck->replace, ck->n_replace), "%zu replace patterns",
             ck->n_replace);
#undef CONFLICT
    return 0;
}

int crn_train_opts_resume(crn_train_opts *saved, const crn_train_opts *given, uint64_t mask, int *refused) {
    int dummy, err;
    if (!refused) refused = &dummy;
    *refused = -1;
    if ((err = resume_conflict(saved, given, mask, refused)) < 0) return err;
    if (GIVEN(CORPUS) && dup_replace(&saved->corpus_path, given->corpus_path))
        return crn_error_set(CRN_ENOMEM, "out of memory");
    return crn_train_opts_apply_session(saved, given, mask);
}
#undef GIVEN
