/* make_seeds.c — writes the seed corpus of fuzz_model_load: small valid model
 * files covering every section and option the loader knows (three cells,
 * relu/tanh, one-hot and embedding input, 1-2 layers, dropout, every unit,
 * optimizers with 0, 1 and 2 state buffers, with and without a training
 * state carrying hidden state).
 *
 *   fuzz_make_seeds DIR      (DIR must exist; files DIR/seed-N.model)
 *
 * Built against the uninstrumented library; tools/fuzz runs it before each
 * fuzz_model_load session, so the seeds always follow the current format
 * (the copies in tests/fuzz/seeds/fuzz_model_load were made by it too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "train.h"
#include "utf8.h"
#include "vocab.h"

static const char *const texts[] = {
    "hello, world\n",
    "가나다 한국어 텍스트\nabc\n",
    "e\xCC\x81 \xF0\x9F\x98\x80 \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB\n", /* e+combining acute, emoji, ZWJ */
    "강 낚 된 꽃\n",
};

typedef struct {
    enum crn_cell cell;
    enum crn_act act;
    uint32_t embed, hidden, layers;
    float dropout;
    enum crn_unit unit;
    int text;
    int optim; /* -1 none, else enum crn_optim_kind */
    int blob;  /* 0 none, 1 plain, 2 with carried state and patterns */
} seed_spec;

static int write_seed(const char *dir, int idx, const seed_spec *sp) {
    int rc = 0;
    crn_vocab *v = NULL;
    crn_model *m = NULL;
    crn_optim *o = NULL;
    uint8_t *norm = NULL, *blob = NULL;
    size_t nlen = 0, blen = 0;
    crn_train_opts to;
    crn_train_status ts;
    crn_train_opts_default(&to);
    memset(&ts, 0, sizeof ts);
    const char *t = texts[sp->text];
    if ((rc = crn_utf8_normalize(&norm, &nlen, (const uint8_t *)t, strlen(t), CRN_NORM_NFC)) < 0) goto done;
    if ((rc = crn_vocab_create(&v, sp->unit, CRN_NORM_NFC)) < 0) goto done;
    if ((rc = crn_vocab_count(v, norm, nlen)) < 0 || (rc = crn_vocab_finalize(v, 1)) < 0) goto done;
    crn_model_config cfg = {sp->cell, sp->act, crn_vocab_size(v), sp->embed, sp->hidden, sp->layers, sp->dropout};
    if ((rc = crn_model_create(&m, &cfg)) < 0) goto done;
    crn_rng rng;
    crn_rng_seed(&rng, (uint64_t)idx + 1);
    crn_model_init(m, &rng);
    size_t np = crn_model_num_params(m);
    if (sp->optim >= 0) {
        crn_optim_config oc;
        crn_optim_config_default(&oc, (enum crn_optim_kind)sp->optim);
        if (sp->optim == CRN_OPT_SGD) oc.momentum = 0.9f;
        if ((rc = crn_optim_create(&o, &oc, np)) < 0) goto done;
        o->t = 3;
        for (int b = 0; b < crn_optim_num_buffers(o); b++) {
            float *buf = crn_optim_buffer(o, b);
            for (size_t i = 0; i < np; i++) buf[i] = (float)crn_rng_uniform(&rng) * (b ? 0.01f : 0.1f);
        }
    }
    if (sp->blob) {
        to.corpus_path = strdup("corpora/seed.txt");
        to.model = cfg;
        to.unit = sp->unit;
        ts.run_id = 0x1234567890abcdefull + (uint64_t)idx;
        ts.step = 42;
        ts.win = 3;
        ts.lr_scale = 1;
        ts.rng = rng;
        ts.n_evals = 2;
        ts.first_val_bpc = 4.5;
        ts.last_val_bpc = 3.25;
        ts.has_best = 1;
        ts.best_val_bpc = 3.25;
        ts.best_step = 40;
        if (sp->blob == 2) {
            to.keep = calloc(1, sizeof *to.keep);
            to.replace = calloc(1, sizeof *to.replace);
            if (!to.corpus_path || !to.keep || !to.replace) {
                rc = CRN_ENOMEM;
                goto done;
            }
            to.keep[0] = strdup("^[^#]");
            to.n_keep = 1;
            to.replace[0] = strdup("\\s+= ");
            to.n_replace = 1;
            to.batch = 2;
            ts.carry_layers = sp->layers;
            ts.carry_batch = 2;
            ts.carry_hidden = sp->hidden;
            ts.carry_has_c = sp->cell == CRN_CELL_LSTM;
            size_t nc = (size_t)sp->layers * (1 + ts.carry_has_c) * 2 * sp->hidden;
            ts.carry = calloc(nc, sizeof *ts.carry);
            if (!ts.carry) {
                rc = CRN_ENOMEM;
                goto done;
            }
            for (size_t i = 0; i < nc; i++) ts.carry[i] = (float)crn_rng_uniform(&rng) - 0.5f;
        }
        if ((rc = crn_train_blob_encode(&blob, &blen, &to, &ts)) < 0) goto done;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%02d.model", dir, idx);
    rc = crn_checkpoint_save(path, &cfg, v, m, o, blob, blen);
done:
    if (rc < 0) fprintf(stderr, "fuzz_make_seeds: seed %d: %s\n", idx, crn_error_message());
    crn_train_opts_free(&to);
    crn_train_status_free(&ts);
    free(blob);
    free(norm);
    crn_optim_destroy(o);
    crn_model_destroy(m);
    crn_vocab_destroy(v);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
        return 2;
    }
    static const seed_spec specs[] = {
        {CRN_CELL_RNN, CRN_ACT_TANH, 0, 3, 1, 0, CRN_UNIT_CODEPOINT, 0, -1, 0},
        {CRN_CELL_RNN, CRN_ACT_RELU, 2, 3, 2, 0.25f, CRN_UNIT_CODEPOINT, 1, CRN_OPT_SGD, 1},
        {CRN_CELL_LSTM, CRN_ACT_TANH, 0, 4, 1, 0, CRN_UNIT_JAMO, 1, CRN_OPT_ADAM, 2},
        {CRN_CELL_LSTM, CRN_ACT_TANH, 3, 2, 2, 0.5f, CRN_UNIT_GRAPHEME, 2, CRN_OPT_RMSPROP, 0},
        {CRN_CELL_GRU, CRN_ACT_TANH, 0, 3, 1, 0, CRN_UNIT_CODEPOINT, 3, CRN_OPT_ADAGRAD, 2},
        {CRN_CELL_GRU, CRN_ACT_TANH, 2, 2, 2, 0, CRN_UNIT_JAMO, 3, CRN_OPT_ADAMW, 1},
        {CRN_CELL_LSTM, CRN_ACT_TANH, 0, 2, 1, 0, CRN_UNIT_CODEPOINT, 0, -1, 1},
        {CRN_CELL_RNN, CRN_ACT_TANH, 0, 1, 1, 0, CRN_UNIT_GRAPHEME, 2, CRN_OPT_SGD, 0},
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) fails += write_seed(argv[1], (int)i, &specs[i]) < 0;
    return fails ? 1 : 0;
}
