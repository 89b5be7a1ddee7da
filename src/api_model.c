/* api_model.c — the public API's models: load, inspect, score a text. */
#include <math.h>
#include <stdlib.h>

#include "api.h"
#include "common.h"
#include "corpus.h"
#include "train.h"

static int wrap(charrnn_model **out, crn_checkpoint *ck) {
    charrnn_model *m = calloc(1, sizeof *m);
    if (!m) {
        crn_checkpoint_destroy(ck);
        return crn_error_set(CRN_ENOMEM, "out of memory");
    }
    m->ck = ck;
    *out = m;
    return 0;
}

int charrnn_model_load(charrnn_model **out, const char *path) {
    if (!out) return crn_error_set(CRN_EINVAL, "charrnn_model_load: out is NULL");
    *out = NULL;
    if (!path) return crn_error_set(CRN_EINVAL, "charrnn_model_load: path is NULL");
    crn_checkpoint *ck;
    int err = crn_checkpoint_load(&ck, path);
    return err < 0 ? err : wrap(out, ck);
}

int charrnn_model_load_memory(charrnn_model **out, const void *data, size_t len) {
    if (!out) return crn_error_set(CRN_EINVAL, "charrnn_model_load_memory: out is NULL");
    *out = NULL;
    if (!data && len) return crn_error_set(CRN_EINVAL, "charrnn_model_load_memory: data is NULL");
    crn_checkpoint *ck;
    int err = crn_checkpoint_load_mem(&ck, "<memory>", data, len);
    return err < 0 ? err : wrap(out, ck);
}

void charrnn_model_destroy(charrnn_model *m) {
    if (!m) return;
    crn_checkpoint_destroy(m->ck);
    free(m);
}

int charrnn_model_get_info(const charrnn_model *m, charrnn_model_info *info) {
    if (!m || !info) return crn_error_set(CRN_EINVAL, "charrnn_model_get_info: NULL argument");
    const crn_model_config *c = &m->ck->cfg;
    info->cell = crn_cell_name(c->cell);
    info->activation = crn_act_name(c->act);
    info->unit = crn_unit_name(crn_vocab_unit(m->ck->vocab));
    info->normalization = crn_norm_name(crn_vocab_norm(m->ck->vocab));
    info->vocab_size = c->vocab;
    info->embed = c->embed;
    info->hidden = c->hidden;
    info->layers = c->layers;
    info->dropout = c->dropout;
    info->num_params = crn_model_num_params(m->ck->model);
    info->has_optimizer_state = m->ck->optim != NULL;
    info->has_training_state = m->ck->train_blob != NULL;
    return 0;
}

const char *charrnn_model_token(const charrnn_model *m, uint32_t id, size_t *len) {
    if (!m || id >= crn_vocab_size(m->ck->vocab)) return NULL;
    size_t n = 0;
    const uint8_t *tok = crn_vocab_token(m->ck->vocab, id, &n);
    if (len) *len = n;
    return (const char *)tok;
}

int charrnn_model_set_half_precision(charrnn_model *m, int enable) {
    if (!m) return crn_error_set(CRN_EINVAL, "charrnn_model_set_half_precision: model is NULL");
    return crn_model_step_f16(m->ck->model, enable != 0);
}

/* Windows of the scoring pass (one stream, B = 1). */
#define SCORE_T 128u

int charrnn_score(charrnn_model *m, const char *text, size_t len, charrnn_score_result *out) {
    if (!m || (!text && len) || !out) return crn_error_set(CRN_EINVAL, "charrnn_score: NULL argument");
    crn_vocab *v = m->ck->vocab;
    crn_corpus_opts co;
    crn_corpus_opts_default(&co);
    co.unit = crn_vocab_unit(v);
    co.norm = crn_vocab_norm(v);
    co.val_frac = 0;
    crn_corpus *c = NULL;
    int err = crn_corpus_from_memory(&c, "text", (const uint8_t *)(text ? text : ""), len, &co, v);
    if (err < 0) return err;
    if (c->n_tokens < 2) {
        err = crn_error_set(CRN_EEMPTY, "text: %zu token%s, at least 2 are needed to score", c->n_tokens,
                            c->n_tokens == 1 ? "" : "s");
        goto done;
    }
    double nats = 0;
    uint64_t count = 0;
    if ((err = crn_evaluate_ids(m->ck->model, c, 0, c->n_tokens, 1, SCORE_T, &nats, &count)) < 0) goto done;
    if (!isfinite(nats)) {
        err = crn_error_set(CRN_ENONFINITE, "the model's predictions are not finite (NaN/Inf): its weights have "
                            "blown up");
        goto done;
    }
    double chars = crn_corpus_chars_predicted(c, count);
    double bits = nats / M_LN2;
    out->bits_per_char = bits / chars;
    out->bits_per_token = count ? bits / (double)count : NAN;
    out->chars = c->n_chars;
    out->tokens = c->n_tokens;
    out->targets = count;
    out->unknown = c->n_unk;
done:
    crn_corpus_destroy(c);
    return err;
}
