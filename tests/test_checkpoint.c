/* test_checkpoint.c — the model file: round trips for every cell type,
 * truncation at every byte, a flipped byte anywhere, wrong magic, future
 * versions, absurd sizes (patched into otherwise valid files, with the CRC
 * fixed so the size check itself must catch them), non-finite weights,
 * atomic saves under a simulated full disk (CRN_FAULT_WRITE_AFTER) and
 * saving into a missing directory.
 *
 * With CRN_FUZZ_SEEDS_DIR=DIR in the environment it also writes its small
 * model file to DIR/checkpoint-small.crn, a seed for the loader's fuzzer.
 *
 * The test walks the file with its own little parser, written from
 * docs/model-format.md (16-byte header; sections of u32 type, u32 flags,
 * u64 length, payload, u32 CRC-32 over header and payload). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "vocab.h"

static const char TEXT[] =
    "안녕하세요, 세계! 오늘은 날씨가 맑습니다.\n"
    "Hello, world. The quick brown fox jumps over the lazy dog.\n"
    "한국어와 English가 섞인 문장입니다 — 괜찮아요?\n";

/* ---- fixtures ------------------------------------------------------------ */

typedef struct fixture {
    crn_model_config cfg;
    crn_vocab *vocab;
    crn_model *model;
    crn_optim *optim;
    uint8_t blob[40];
    size_t blob_len;
} fixture;

/* The damaged-file tests use a tiny vocabulary so the file is small enough
 * to cut and corrupt at every byte. */
static const char SHORT_TEXT[] = "한글 abc 한";

static uint32_t fixture_layer_norm; /* set by the layer-norm test */

static void fixture_make_text(fixture *f, const char *text, enum crn_cell cell, enum crn_act act, uint32_t embed,
                              uint32_t hidden, uint32_t layers, enum crn_unit unit, uint64_t seed) {
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(crn_vocab_create(&f->vocab, unit, CRN_NORM_NFC), 0);
    ck_assert_int_eq(crn_vocab_count(f->vocab, (const uint8_t *)text, strlen(text)), 0);
    ck_assert_int_eq(crn_vocab_finalize(f->vocab, 1), 0);
    f->cfg = (crn_model_config){.cell = cell, .act = act, .vocab = crn_vocab_size(f->vocab), .embed = embed,
                                .hidden = hidden, .layers = layers, .dropout = 0.25f,
                                .layer_norm = fixture_layer_norm};
    ck_assert_int_eq(crn_model_create(&f->model, &f->cfg), 0);
    crn_rng rng;
    crn_rng_seed(&rng, seed);
    crn_model_init(f->model, &rng);
    /* an optimizer with non-trivial state: two Adam steps on made-up grads */
    crn_optim_config oc;
    crn_optim_config_default(&oc, CRN_OPT_ADAM);
    size_t n = crn_model_num_params(f->model);
    ck_assert_int_eq(crn_optim_create(&f->optim, &oc, n), 0);
    float *g = malloc(n * sizeof *g);
    ck_assert_ptr_nonnull(g);
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < n; i++) g[i] = (crn_rng_uniformf(&rng) - 0.5f) * 0.1f;
        crn_optim_step(f->optim, crn_model_params(f->model), g, oc.lr);
    }
    free(g);
    for (size_t i = 0; i < sizeof f->blob; i++) f->blob[i] = (uint8_t)(i * 37 + 11);
    f->blob_len = sizeof f->blob;
}

static void fixture_make(fixture *f, enum crn_cell cell, enum crn_act act, uint32_t embed, uint32_t hidden,
                         uint32_t layers, enum crn_unit unit, uint64_t seed) {
    fixture_make_text(f, TEXT, cell, act, embed, hidden, layers, unit, seed);
}

static void fixture_free(fixture *f) {
    crn_optim_destroy(f->optim);
    crn_model_destroy(f->model);
    crn_vocab_destroy(f->vocab);
}

static int save_fixture(const char *path, fixture *f, int with_state) {
    return crn_checkpoint_save(path, &f->cfg, f->vocab, f->model, with_state ? f->optim : NULL,
                               with_state ? f->blob : NULL, with_state ? f->blob_len : 0);
}

/* A fresh directory per test. */
static char dir[256];
static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/crn-test-ckpt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}
static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}
static int count_entries(void) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n ? (size_t)n : 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}
static void write_file(const char *path, const uint8_t *b, size_t n) {
    /* a new file each time: truncating an existing one makes ext4 flush it
     * on close (auto_da_alloc), which would make these tests slow */
    unlink(path);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- the test's own view of the format ------------------------------------ */

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t x) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t x) {
    wr32(p, (uint32_t)x);
    wr32(p + 4, (uint32_t)(x >> 32));
}

enum { T_CONFIG = 1, T_VOCAB = 2, T_PARAMS = 3, T_OPTIM = 4, T_TRAIN = 5, T_FEATURES = 7 };
typedef struct sect {
    uint32_t type, flags;
    size_t hdr, off, len; /* header offset, payload offset, payload length */
} sect;

static int parse(const uint8_t *b, size_t n, sect *s, int max) {
    ck_assert_uint_ge(n, 16);
    ck_assert_int_eq(memcmp(b, "CHARRNN\0", 8), 0);
    ck_assert_uint_eq(rd32(b + 8), 1);
    int count = (int)rd32(b + 12);
    ck_assert_int_le(count, max);
    size_t pos = 16;
    for (int i = 0; i < count; i++) {
        s[i].hdr = pos;
        s[i].type = rd32(b + pos);
        s[i].flags = rd32(b + pos + 4);
        s[i].len = (size_t)rd64(b + pos + 8);
        s[i].off = pos + 16;
        pos += 16 + s[i].len + 4;
        ck_assert_uint_le(pos, n);
    }
    ck_assert_uint_eq(pos, n);
    return count;
}
static const sect *find(const sect *s, int n, uint32_t type) {
    for (int i = 0; i < n; i++)
        if (s[i].type == type) return &s[i];
    ck_abort_msg("section %u not found", type);
    return NULL;
}
static void fix_crc(uint8_t *b, const sect *s) {
    wr32(b + s->off + s->len, crn_crc32(0, b + s->hdr, 16 + s->len));
}

/* Load a byte image through a file; returns the error, message in msg. */
static int load_bytes(const char *path, const uint8_t *b, size_t n, char *msg, size_t cap) {
    write_file(path, b, n);
    crn_checkpoint *c = NULL;
    int err = crn_checkpoint_load(&c, path);
    snprintf(msg, cap, "%s", crn_error_message());
    if (err && getenv("CRN_TEST_VERBOSE")) printf("    [%d] %s\n", err, msg);
    if (err == 0) ck_assert_ptr_nonnull(c);
    else ck_assert_ptr_null(c);
    crn_checkpoint_destroy(c);
    return err;
}

/* ---- round trips ------------------------------------------------------------ */

static void check_same(const fixture *f, crn_checkpoint *c, int with_state) {
    ck_assert_int_eq(c->cfg.cell, f->cfg.cell);
    ck_assert_int_eq(c->cfg.act, f->cfg.act);
    ck_assert_uint_eq(c->cfg.vocab, f->cfg.vocab);
    ck_assert_uint_eq(c->cfg.embed, f->cfg.embed);
    ck_assert_uint_eq(c->cfg.hidden, f->cfg.hidden);
    ck_assert_uint_eq(c->cfg.layers, f->cfg.layers);
    ck_assert_float_eq(c->cfg.dropout, f->cfg.dropout);
    ck_assert_uint_eq(c->cfg.layer_norm, f->cfg.layer_norm);
    /* vocabulary: same unit, normalisation, tokens, frequencies */
    ck_assert_int_eq(crn_vocab_unit(c->vocab), crn_vocab_unit(f->vocab));
    ck_assert_int_eq(crn_vocab_norm(c->vocab), crn_vocab_norm(f->vocab));
    ck_assert_uint_eq(crn_vocab_size(c->vocab), crn_vocab_size(f->vocab));
    for (uint32_t id = 0; id < crn_vocab_size(f->vocab); id++) {
        size_t la, lb;
        const uint8_t *a = crn_vocab_token(f->vocab, id, &la), *b = crn_vocab_token(c->vocab, id, &lb);
        ck_assert_uint_eq(la, lb);
        ck_assert_int_eq(memcmp(a, b, la), 0);
        ck_assert_uint_eq(crn_vocab_freq(f->vocab, id), crn_vocab_freq(c->vocab, id));
    }
    /* parameters: bit for bit */
    size_t n = crn_model_num_params(f->model);
    ck_assert_uint_eq(crn_model_num_params(c->model), n);
    ck_assert_int_eq(memcmp(crn_model_params(c->model), crn_model_params(f->model), n * sizeof(float)), 0);
    if (!with_state) {
        ck_assert_ptr_null(c->optim);
        ck_assert_ptr_null(c->train_blob);
        ck_assert_uint_eq(c->train_blob_len, 0);
        return;
    }
    ck_assert_ptr_nonnull(c->optim);
    ck_assert_int_eq(c->optim->cfg.kind, f->optim->cfg.kind);
    ck_assert_int_eq(memcmp(&c->optim->cfg.lr, &f->optim->cfg.lr, sizeof(float)), 0);
    ck_assert_float_eq(c->optim->cfg.beta1, f->optim->cfg.beta1);
    ck_assert_float_eq(c->optim->cfg.beta2, f->optim->cfg.beta2);
    ck_assert_float_eq(c->optim->cfg.eps, f->optim->cfg.eps);
    ck_assert_float_eq(c->optim->cfg.weight_decay, f->optim->cfg.weight_decay);
    ck_assert_float_eq(c->optim->cfg.alpha, f->optim->cfg.alpha);
    ck_assert_uint_eq(c->optim->t, f->optim->t);
    ck_assert_uint_eq(c->optim->n, n);
    ck_assert_int_eq(crn_optim_num_buffers(c->optim), crn_optim_num_buffers(f->optim));
    for (int i = 0; i < crn_optim_num_buffers(f->optim); i++)
        ck_assert_int_eq(memcmp(crn_optim_buffer(c->optim, i), crn_optim_buffer(f->optim, i), n * sizeof(float)), 0);
    ck_assert_uint_eq(c->train_blob_len, f->blob_len);
    ck_assert_int_eq(memcmp(c->train_blob, f->blob, f->blob_len), 0);
}

static const struct {
    enum crn_cell cell;
    enum crn_act act;
    uint32_t embed, hidden, layers;
    enum crn_unit unit;
} CASES[] = {
    {CRN_CELL_RNN, CRN_ACT_TANH, 0, 8, 2, CRN_UNIT_CODEPOINT},
    {CRN_CELL_RNN, CRN_ACT_RELU, 5, 6, 1, CRN_UNIT_CODEPOINT},
    {CRN_CELL_LSTM, CRN_ACT_TANH, 0, 7, 2, CRN_UNIT_JAMO},
    {CRN_CELL_LSTM, CRN_ACT_TANH, 4, 5, 3, CRN_UNIT_GRAPHEME},
    {CRN_CELL_GRU, CRN_ACT_TANH, 0, 6, 1, CRN_UNIT_CODEPOINT},
    {CRN_CELL_GRU, CRN_ACT_TANH, 3, 9, 2, CRN_UNIT_JAMO},
};

START_TEST(round_trip) {
    make_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/model.crn", dir);
    fixture f;
    fixture_make(&f, CASES[_i].cell, CASES[_i].act, CASES[_i].embed, CASES[_i].hidden, CASES[_i].layers,
                 CASES[_i].unit, 42 + (uint64_t)_i);
    for (int with_state = 0; with_state <= 1; with_state++) {
        ck_assert_msg(save_fixture(path, &f, with_state) == 0, "%s", crn_error_message());
        crn_checkpoint *c = NULL;
        ck_assert_msg(crn_checkpoint_load(&c, path) == 0, "%s", crn_error_message());
        check_same(&f, c, with_state);
        /* the loaded model saves to the same bytes */
        size_t n1, n2;
        uint8_t *b1 = read_file(path, &n1);
        crn_checkpoint *cm = NULL;
        ck_assert_int_eq(crn_checkpoint_load_mem(&cm, "mem", b1, n1), 0);
        check_same(&f, cm, with_state);
        crn_checkpoint_destroy(cm);
        char path2[600];
        snprintf(path2, sizeof path2, "%s/again.crn", dir);
        ck_assert_int_eq(crn_checkpoint_save(path2, &c->cfg, c->vocab, c->model, c->optim, c->train_blob,
                                             c->train_blob_len),
                         0);
        uint8_t *b2 = read_file(path2, &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_int_eq(memcmp(b1, b2, n1), 0);
        free(b1);
        free(b2);
        crn_checkpoint_destroy(c);
        unlink(path2);
    }
    /* the saved file is readable by others like any created file */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0444, 0444);
    ck_assert_int_eq(count_entries(), 1);
    fixture_free(&f);
    crn_checkpoint_destroy(NULL);
    remove_dir();
}
END_TEST

START_TEST(empty_train_blob_and_plain_sgd) {
    make_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    fixture f;
    fixture_make(&f, CRN_CELL_GRU, CRN_ACT_TANH, 0, 4, 1, CRN_UNIT_CODEPOINT, 3);
    crn_optim_config oc;
    crn_optim_config_default(&oc, CRN_OPT_SGD); /* no state buffers at all */
    crn_optim *sgd;
    ck_assert_int_eq(crn_optim_create(&sgd, &oc, crn_model_num_params(f.model)), 0);
    sgd->t = 12345678901ull;
    static const uint8_t empty[1] = {0};
    ck_assert_int_eq(crn_checkpoint_save(path, &f.cfg, f.vocab, f.model, sgd, empty, 0), 0);
    crn_checkpoint *c = NULL;
    ck_assert_msg(crn_checkpoint_load(&c, path) == 0, "%s", crn_error_message());
    ck_assert_ptr_nonnull(c->optim);
    ck_assert_int_eq(c->optim->cfg.kind, CRN_OPT_SGD);
    ck_assert_uint_eq(c->optim->t, 12345678901ull);
    ck_assert_int_eq(crn_optim_num_buffers(c->optim), 0);
    ck_assert_ptr_nonnull(c->train_blob);
    ck_assert_uint_eq(c->train_blob_len, 0);
    crn_checkpoint_destroy(c);
    crn_optim_destroy(sgd);
    fixture_free(&f);
    remove_dir();
}
END_TEST

/* The bytes on disk are what docs/model-format.md says, field by field. */
START_TEST(layout_matches_docs) {
    make_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    fixture f;
    fixture_make_text(&f, "ab", CRN_CELL_GRU, CRN_ACT_TANH, 0, 2, 1, CRN_UNIT_CODEPOINT, 4);
    f.optim->cfg.momentum = 0.5f; /* any value round-trips, even unused */
    ck_assert_int_eq(save_fixture(path, &f, 1), 0);
    size_t n;
    uint8_t *b = read_file(path, &n);
    sect s[8];
    int ns = parse(b, n, s, 8);
    ck_assert_int_eq(ns, 5);
    static const uint32_t order[5] = {T_CONFIG, T_VOCAB, T_PARAMS, T_OPTIM, T_TRAIN};
    static const uint32_t flags[5] = {0, 0, 0, 1, 1};
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(s[i].type, order[i]);
        ck_assert_uint_eq(s[i].flags, flags[i]);
        ck_assert_uint_eq(rd32(b + s[i].off + s[i].len), crn_crc32(0, b + s[i].hdr, 16 + s[i].len));
    }
    /* CONFIG: V = 3 (<unk>, a, b), one-hot GRU, H = 2, L = 1 */
    const uint8_t *c = b + s[0].off;
    ck_assert_uint_eq(rd32(c + 0), 2);  /* gru */
    ck_assert_uint_eq(rd32(c + 4), 0);  /* tanh */
    ck_assert_uint_eq(rd32(c + 8), 3);
    ck_assert_uint_eq(rd32(c + 12), 0);
    ck_assert_uint_eq(rd32(c + 16), 2);
    ck_assert_uint_eq(rd32(c + 20), 1);
    ck_assert_uint_eq(rd32(c + 24), 0x3e800000u); /* 0.25f */
    /* w_x (3, 6), w_h (2, 6), b_x (1, 6), b_h (1, 6), out_w (2, 3), out_b (1, 3) */
    static const struct { const char *name; uint64_t rows, cols; } T[] = {
        {"l0.w_x", 3, 6}, {"l0.w_h", 2, 6}, {"l0.b_x", 1, 6}, {"l0.b_h", 1, 6}, {"out_w", 2, 3}, {"out_b", 1, 3}};
    uint64_t count = 0;
    for (size_t i = 0; i < CRN_ARRAY_LEN(T); i++) count += T[i].rows * T[i].cols;
    ck_assert_uint_eq(rd64(c + 28), count);
    ck_assert_uint_eq(rd32(c + 36), CRN_ARRAY_LEN(T));
    size_t pos = 40;
    uint64_t off = 0;
    for (size_t i = 0; i < CRN_ARRAY_LEN(T); i++) {
        size_t nl = strlen(T[i].name);
        ck_assert_uint_eq(rd32(c + pos), nl);
        ck_assert_int_eq(memcmp(c + pos + 4, T[i].name, nl), 0);
        ck_assert_uint_eq(rd64(c + pos + 4 + nl), off);
        ck_assert_uint_eq(rd64(c + pos + 12 + nl), T[i].rows);
        ck_assert_uint_eq(rd64(c + pos + 20 + nl), T[i].cols);
        pos += 4 + nl + 24;
        off += T[i].rows * T[i].cols;
    }
    ck_assert_uint_eq(pos, s[0].len);
    /* VOCAB: crn_vocab_serialize's bytes, verbatim */
    uint8_t *vb;
    size_t vlen;
    ck_assert_int_eq(crn_vocab_serialize(f.vocab, &vb, &vlen), 0);
    ck_assert_uint_eq(s[1].len, vlen);
    ck_assert_int_eq(memcmp(b + s[1].off, vb, vlen), 0);
    free(vb);
    /* PARAMS: little-endian float32 bit patterns */
    ck_assert_uint_eq(s[2].len, 4 * count);
    const float *p = crn_model_params(f.model);
    for (uint64_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &p[i], 4);
        ck_assert_uint_eq(rd32(b + s[2].off + 4 * i), bits);
    }
    /* OPTIM: adam, 7 floats, t, n, 2 buffers (m then v) */
    const uint8_t *o = b + s[3].off;
    ck_assert_uint_eq(rd32(o), 0);
    const float want[7] = {2e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.5f, 0.95f};
    for (int i = 0; i < 7; i++) {
        uint32_t bits;
        memcpy(&bits, &want[i], 4);
        ck_assert_uint_eq(rd32(o + 4 + 4 * i), bits);
    }
    ck_assert_uint_eq(rd64(o + 32), 2);
    ck_assert_uint_eq(rd64(o + 40), count);
    ck_assert_uint_eq(rd32(o + 48), 2);
    ck_assert_uint_eq(s[3].len, 52 + 2 * 4 * count);
    for (uint64_t i = 0; i < count; i++) {
        uint32_t mb, vbits;
        memcpy(&mb, &f.optim->m[i], 4);
        memcpy(&vbits, &f.optim->v[i], 4);
        ck_assert_uint_eq(rd32(o + 52 + 4 * i), mb);
        ck_assert_uint_eq(rd32(o + 52 + 4 * (count + i)), vbits);
    }
    /* TRAIN: the blob, verbatim */
    ck_assert_uint_eq(s[4].len, f.blob_len);
    ck_assert_int_eq(memcmp(b + s[4].off, f.blob, f.blob_len), 0);
    free(b);
    fixture_free(&f);
    remove_dir();
}
END_TEST

/* ---- damaged files ---------------------------------------------------------- */

/* A small file with every section, its bytes and its section table. */
static uint8_t *small_file(const char *path, size_t *n, sect *s, int *ns) {
    fixture f;
    fixture_make_text(&f, SHORT_TEXT, CRN_CELL_LSTM, CRN_ACT_TANH, 3, 2, 1, CRN_UNIT_CODEPOINT, 9);
    ck_assert_int_eq(save_fixture(path, &f, 1), 0);
    fixture_free(&f);
    uint8_t *b = read_file(path, n);
    *ns = parse(b, *n, s, 8);
    ck_assert_int_eq(*ns, 5);
    /* seeds for the model-file fuzzer, on request */
    const char *seeds = getenv("CRN_FUZZ_SEEDS_DIR");
    if (seeds && *seeds) {
        char sp[1024];
        snprintf(sp, sizeof sp, "%s/checkpoint-small.crn", seeds);
        write_file(sp, b, *n);
    }
    return b;
}

static const char *section_of(const sect *s, int ns, size_t off) {
    static const char *names[] = {"?", "CONFIG", "VOCAB", "PARAMS", "OPTIM", "TRAIN"};
    if (off < 16) return "header";
    for (int i = 0; i < ns; i++)
        if (off >= s[i].hdr && off < s[i].off + s[i].len + 4) return names[s[i].type];
    return "?";
}

/* crn_model_layout is the layout the model is carved by (every cell, with
 * and without embedding and layer norm), and its count is model.h's formula. */
START_TEST(layout_is_the_models) {
    for (int cell = CRN_CELL_RNN; cell <= CRN_CELL_GRU; cell++)
        for (uint32_t embed = 0; embed <= 3; embed += 3)
            for (uint32_t ln = 0; ln <= 1; ln++) {
                crn_model_config cfg = {.cell = (enum crn_cell)cell, .vocab = 7, .embed = embed, .hidden = 5,
                                        .layers = 2, .layer_norm = ln};
                int nt = -1;
                uint64_t np = 0;
                ck_assert_int_eq(crn_model_layout(&cfg, NULL, &nt, &np), 0);
                crn_tensor_info *tab = calloc((size_t)nt, sizeof *tab);
                ck_assert_ptr_nonnull(tab);
                ck_assert_int_eq(crn_model_layout(&cfg, tab, NULL, NULL), 0);
                crn_model *m = NULL;
                ck_assert_int_eq(crn_model_create(&m, &cfg), 0);
                ck_assert_int_eq(nt, crn_model_num_tensors(m));
                ck_assert_uint_eq(np, crn_model_num_params(m));
                for (int k = 0; k < nt; k++) {
                    const crn_tensor_info *t = crn_model_tensor(m, k);
                    ck_assert_str_eq(tab[k].name, t->name);
                    ck_assert_uint_eq(tab[k].offset, t->offset);
                    ck_assert_uint_eq(tab[k].rows, t->rows);
                    ck_assert_uint_eq(tab[k].cols, t->cols);
                }
                const uint64_t G = cell == CRN_CELL_LSTM ? 4 : cell == CRN_CELL_GRU ? 3 : 1, H = 5, V = 7;
                uint64_t want = V * embed + ((embed ? embed : V) + H + 2) * G * H + (H + H + 2) * G * H + H * V + V;
                if (ln) want += 2 * (2 * G * H + (cell == CRN_CELL_LSTM ? 2 * H : 0));
                ck_assert_uint_eq(np, want);
                ck_assert_int_eq(nt, 8 + (embed ? 3 : 2) + (ln ? (cell == CRN_CELL_LSTM ? 8 : 4) : 0));
                crn_model_destroy(m);
                free(tab);
            }
    crn_model_config bad = {.cell = CRN_CELL_LSTM, .vocab = 7, .hidden = 0, .layers = 1};
    ck_assert_int_lt(crn_model_layout(&bad, NULL, NULL, NULL), 0);
}
END_TEST

START_TEST(truncated_at_every_byte) {
    make_dir();
    char path[512], tpath[600], msg[1200];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    snprintf(tpath, sizeof tpath, "%s/cut.crn", dir);
    sect s[8];
    int ns;
    size_t n;
    uint8_t *b = small_file(path, &n, s, &ns);
    printf("  truncating a %zu-byte file at every offset\n", n);
    char msg2[1200];
    for (size_t k = 0; k < n; k++) {
        /* in memory too, from an exact-size copy (ASan sees any overread) */
        uint8_t *cut = malloc(k ? k : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, b, k);
        crn_checkpoint *cm = NULL;
        int err_mem = crn_checkpoint_load_mem(&cm, tpath, cut, k);
        ck_assert_ptr_null(cm);
        snprintf(msg2, sizeof msg2, "%s", crn_error_message());
        free(cut);
        int err = load_bytes(tpath, b, k, msg, sizeof msg);
        ck_assert_int_eq(err_mem, err);
        ck_assert_str_eq(msg2, msg);
        ck_assert_msg(err == CRN_EFORMAT, "cut at %zu: got %d (%s)", k, err, msg);
        ck_assert_msg(strstr(msg, tpath) != NULL, "cut at %zu: message lacks the path: %s", k, msg);
        ck_assert_msg(strstr(msg, "at byte") != NULL, "cut at %zu: message lacks the offset: %s", k, msg);
        /* the message names the part the file ends in */
        char want[32];
        snprintf(want, sizeof want, "%s", section_of(s, ns, k));
        for (int i = 0; i < ns; i++) /* too little of a header left to know its type */
            if (k >= s[i].hdr && k - s[i].hdr < 4) snprintf(want, sizeof want, "section #%d", i + 1);
        ck_assert_msg(strstr(msg, want) != NULL, "cut at %zu (in %s): %s", k, want, msg);
    }
    /* and the whole file still loads */
    ck_assert_int_eq(load_bytes(tpath, b, n, msg, sizeof msg), 0);
    free(b);
    remove_dir();
}
END_TEST

START_TEST(flipped_byte_anywhere) {
    make_dir();
    char path[512], tpath[600], msg[1200];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    snprintf(tpath, sizeof tpath, "%s/bad.crn", dir);
    sect s[8];
    int ns;
    size_t n;
    uint8_t *b = small_file(path, &n, s, &ns);
    uint8_t *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    int nchk = 0;
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t k = 0; k < n; k++) {
        for (size_t mi = 0; mi < sizeof masks; mi++) {
            memcpy(c, b, n);
            c[k] ^= masks[mi];
            int err = load_bytes(tpath, c, n, msg, sizeof msg);
            ck_assert_msg(err == CRN_ECHECKSUM || err == CRN_EFORMAT, "flip 0x%02x at %zu (%s): got %d (%s)",
                          masks[mi], k, section_of(s, ns, k), err, msg);
            nchk += err == CRN_ECHECKSUM;
        }
    }
    /* inside any payload it is the checksum that notices, naming the section */
    for (int i = 0; i < ns; i++) {
        size_t k = s[i].off + s[i].len / 2;
        memcpy(c, b, n);
        c[k] ^= 0x10;
        int err = load_bytes(tpath, c, n, msg, sizeof msg);
        ck_assert_msg(err == CRN_ECHECKSUM, "flip in %s payload: %d (%s)", section_of(s, ns, k), err, msg);
        char want[1024];
        snprintf(want, sizeof want, "%s: section %s at byte %zu: checksum mismatch", tpath, section_of(s, ns, k),
                 s[i].hdr);
        ck_assert_msg(strstr(msg, want) == msg, "want '%s...', got '%s'", want, msg);
    }
    printf("  %zu single-byte corruptions x %zu masks refused (%d by checksum)\n", n, sizeof masks, nchk);
    free(c);
    free(b);
    remove_dir();
}
END_TEST

START_TEST(wrong_magic_and_version) {
    make_dir();
    char path[512], tpath[600], msg[1200], want[800];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    snprintf(tpath, sizeof tpath, "%s/bad.crn", dir);
    sect s[8];
    int ns;
    size_t n;
    uint8_t *b = small_file(path, &n, s, &ns);
    uint8_t *c = malloc(n);
    ck_assert_ptr_nonnull(c);

    memcpy(c, b, n);
    c[6] = 'X';
    ck_assert_int_eq(load_bytes(tpath, c, n, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "bad magic") != NULL, "%s", msg);
    const char text[] = "this is just a text file, not a model\n";
    ck_assert_int_eq(load_bytes(tpath, (const uint8_t *)text, sizeof text - 1, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "bad magic") != NULL, "%s", msg);
    ck_assert_int_eq(load_bytes(tpath, (const uint8_t *)"", 0, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "truncated") != NULL, "%s", msg);

    memcpy(c, b, n);
    wr32(c + 8, 7);
    ck_assert_int_eq(load_bytes(tpath, c, n, msg, sizeof msg), CRN_EFORMAT);
    snprintf(want, sizeof want, "%s: format version 7 is newer than this charrnn (1); upgrade charrnn", tpath);
    ck_assert_str_eq(msg, want);
    wr32(c + 8, 0);
    ck_assert_int_eq(load_bytes(tpath, c, n, msg, sizeof msg), CRN_EFORMAT);

    /* section counts: zero, too many for the file, absurd */
    uint32_t counts[] = {0, 6, 1000, 0xffffffffu, 4};
    for (size_t i = 0; i < CRN_ARRAY_LEN(counts); i++) {
        memcpy(c, b, n);
        wr32(c + 12, counts[i]);
        ck_assert_msg(load_bytes(tpath, c, n, msg, sizeof msg) == CRN_EFORMAT, "count %u: %s", counts[i], msg);
    }
    /* trailing garbage */
    uint8_t *d = malloc(n + 3);
    ck_assert_ptr_nonnull(d);
    memcpy(d, b, n);
    memset(d + n, 0, 3);
    ck_assert_int_eq(load_bytes(tpath, d, n + 3, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "unexpected bytes") != NULL, "%s", msg);
    free(d);

    /* not a file at all */
    crn_checkpoint *ck = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&ck, dir), CRN_EIO);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), dir));
    snprintf(want, sizeof want, "%s/nope.crn", dir);
    ck_assert_int_eq(crn_checkpoint_load(&ck, want), CRN_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), want));
    ck_assert_ptr_null(ck);
    free(c);
    free(b);
    remove_dir();
}
END_TEST

/* Patch a field inside a section's payload, fix that section's CRC, load. */
typedef struct patch {
    uint32_t type;
    size_t at;    /* offset inside the payload */
    int width;    /* 4 or 8 */
    uint64_t value;
    const char *expect; /* substring of the message */
} patch;

START_TEST(absurd_sizes) {
    make_dir();
    char path[512], tpath[600], msg[1200];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    snprintf(tpath, sizeof tpath, "%s/bad.crn", dir);
    sect s[8];
    int ns;
    size_t n;
    uint8_t *b = small_file(path, &n, s, &ns);
    uint8_t *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    const sect *cs = find(s, ns, T_CONFIG);
    const uint64_t np = rd64(b + cs->off + 28);
    const patch P[] = {
        {T_CONFIG, 0, 4, 9, "cell"},
        {T_CONFIG, 4, 4, 5, "activation"},
        {T_CONFIG, 8, 4, 1u << 31, "vocab"},                /* a vocabulary of 2^31 */
        {T_CONFIG, 8, 4, 0, "vocab"},
        {T_CONFIG, 16, 4, 0, "hidden"},                     /* hidden size 0 */
        {T_CONFIG, 16, 4, 0xffffffffu, "hidden"},
        {T_CONFIG, 20, 4, 0, "layers"},
        {T_CONFIG, 12, 4, 0xffffffffu, "embed"},
        {T_CONFIG, 24, 4, 0x7fc00000u, "dropout"},          /* NaN */
        {T_CONFIG, 28, 8, UINT64_MAX, "parameter count"},   /* overflows size_t */
        {T_CONFIG, 28, 8, UINT64_MAX / 4 + 1, "parameter count"},
        {T_CONFIG, 28, 8, 0, "parameter count"},
        {T_CONFIG, 28, 8, np + 1, "parameter count"},
        {T_CONFIG, 36, 4, 0xffffffffu, "tensor table"},
        {T_CONFIG, 36, 4, 2, "tensor table"},
        {T_CONFIG, 40, 4, 0xffffffffu, "name length"},     /* first tensor's name length */
        {T_CONFIG, 40, 4, 0, "name length"},
        {T_CONFIG, 40 + 4 + 5, 8, 1, "disagree"},           /* "embed" offset */
        {T_CONFIG, 40 + 4 + 5 + 8, 8, 1ull << 40, "disagree"}, /* "embed" rows */
        {T_CONFIG, 40 + 4, 4, 0x64626d65u /* "embd" */, "tensor 0"},
        {T_VOCAB, 16, 4, 1u << 31, "VOCAB"},                /* vocab token count 2^31 */
        {T_VOCAB, 16, 4, 2, "VOCAB"},                       /* fewer tokens than the config */
        {T_OPTIM, 0, 4, 9, "optimizer kind"},
        {T_OPTIM, 4, 4, 0x7f800000u, "learning rate"},      /* lr = inf */
        {T_OPTIM, 40, 8, UINT64_MAX, "parameters"},        /* state size */
        {T_OPTIM, 40, 8, np - 1, "parameters"},
        {T_OPTIM, 48, 4, 3, "buffers"},
        {T_OPTIM, 48, 4, 1, "buffers"},
        {T_OPTIM, 52, 4, 0xff800000u, "not finite"},        /* -inf in the first moment */
        {T_PARAMS, 8, 4, 0x7fc00000u, "NaN"},               /* NaN weight */
        {T_PARAMS, 4, 4, 0x7f800000u, "infinite"},
    };
    for (size_t i = 0; i < CRN_ARRAY_LEN(P); i++) {
        memcpy(c, b, n);
        const sect *t = find(s, ns, P[i].type);
        ck_assert_uint_le(P[i].at + (size_t)P[i].width, t->len);
        if (P[i].width == 4) wr32(c + t->off + P[i].at, (uint32_t)P[i].value);
        else wr64(c + t->off + P[i].at, P[i].value);
        fix_crc(c, t);
        int err = load_bytes(tpath, c, n, msg, sizeof msg);
        ck_assert_msg(err == CRN_EFORMAT, "patch %zu (%s): got %d: %s", i, P[i].expect, err, msg);
        ck_assert_msg(strstr(msg, P[i].expect) != NULL, "patch %zu: expected '%s' in: %s", i, P[i].expect, msg);
        ck_assert_msg(strstr(msg, tpath) == msg, "patch %zu: message should start with the path: %s", i, msg);
        ck_assert_msg(strstr(msg, " at byte ") != NULL, "patch %zu: no offset in: %s", i, msg);
    }
    /* the weight message names the tensor and element */
    {
        memcpy(c, b, n);
        const sect *t = find(s, ns, T_PARAMS);
        wr32(c + t->off + 4 * (np - 1), 0x7fc00000u); /* the last parameter is out_b[V-1] */
        fix_crc(c, t);
        ck_assert_int_eq(load_bytes(tpath, c, n, msg, sizeof msg), CRN_EFORMAT);
        ck_assert_msg(strstr(msg, "out_b[") != NULL, "%s", msg);
    }
    /* section lengths that run past the end or overflow */
    const uint64_t lens[] = {UINT64_MAX, UINT64_MAX - 15, (uint64_t)n, 1ull << 62};
    for (int i = 0; i < ns; i++) {
        for (size_t j = 0; j < CRN_ARRAY_LEN(lens); j++) {
            memcpy(c, b, n);
            wr64(c + s[i].hdr + 8, lens[j]);
            int err = load_bytes(tpath, c, n, msg, sizeof msg);
            ck_assert_msg(err == CRN_EFORMAT, "section %u length %llu: %d %s", s[i].type,
                          (unsigned long long)lens[j], err, msg);
            ck_assert_msg(strstr(msg, "truncated") != NULL, "%s", msg);
        }
    }
    free(c);
    free(b);
    remove_dir();
}
END_TEST

/* Sections of unknown types: skipped if flagged "may skip", refused if not;
 * a missing required section is refused; a duplicate too. */
START_TEST(unknown_and_missing_sections) {
    make_dir();
    char path[512], tpath[600], msg[1200];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    snprintf(tpath, sizeof tpath, "%s/x.crn", dir);
    sect s[8];
    int ns;
    size_t n;
    uint8_t *b = small_file(path, &n, s, &ns);
    const uint8_t extra_payload[5] = {1, 2, 3, 4, 5};
    uint8_t *c = malloc(n + 16 + 5 + 4);
    ck_assert_ptr_nonnull(c);
    for (int skip = 0; skip <= 1; skip++) {
        memcpy(c, b, n);
        uint8_t *e = c + n;
        wr32(e, 77);
        wr32(e + 4, skip ? 1u : 0u);
        wr64(e + 8, sizeof extra_payload);
        memcpy(e + 16, extra_payload, sizeof extra_payload);
        wr32(e + 21, crn_crc32(0, e, 21));
        wr32(c + 12, (uint32_t)ns + 1);
        int err = load_bytes(tpath, c, n + 25, msg, sizeof msg);
        if (skip) ck_assert_msg(err == 0, "%s", msg);
        else {
            ck_assert_int_eq(err, CRN_EFORMAT);
            ck_assert_msg(strstr(msg, "type 77") != NULL, "%s", msg);
        }
    }
    /* drop PARAMS: a file of CONFIG, VOCAB, OPTIM, TRAIN */
    const sect *p = find(s, ns, T_PARAMS);
    size_t plen = 16 + p->len + 4;
    memcpy(c, b, p->hdr);
    memcpy(c + p->hdr, b + p->hdr + plen, n - p->hdr - plen);
    wr32(c + 12, (uint32_t)ns - 1);
    ck_assert_int_eq(load_bytes(tpath, c, n - plen, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "missing section PARAMS") != NULL, "%s", msg);
    /* TRAIN twice */
    const sect *t = find(s, ns, T_TRAIN);
    size_t tlen = 16 + t->len + 4;
    uint8_t *d = malloc(n + tlen);
    ck_assert_ptr_nonnull(d);
    memcpy(d, b, n);
    memcpy(d + n, b + t->hdr, tlen);
    wr32(d + 12, (uint32_t)ns + 1);
    ck_assert_int_eq(load_bytes(tpath, d, n + tlen, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "duplicate") != NULL, "%s", msg);
    free(d);
    free(c);
    free(b);
    remove_dir();
}
END_TEST

/* Layer norm: the FEATURES section (bit 0) is written only for such a
 * model, read back, and required; files without it (every older file)
 * load as layer norm off. */
START_TEST(layer_norm_features) {
    make_dir();
    char path[512], tpath[600], msg[1200];
    snprintf(path, sizeof path, "%s/m.crn", dir);
    snprintf(tpath, sizeof tpath, "%s/x.crn", dir);
    sect s[8];
    size_t n;
    /* without layer norm: no FEATURES section, the version-1 layout as before */
    uint8_t *b = small_file(path, &n, s, &(int){0});
    for (int i = 0; i < 5; i++) ck_assert_uint_ne(s[i].type, T_FEATURES);
    free(b);
    fixture_layer_norm = 1;
    fixture f;
    fixture_make_text(&f, SHORT_TEXT, CRN_CELL_LSTM, CRN_ACT_TANH, 3, 2, 1, CRN_UNIT_CODEPOINT, 9);
    fixture_layer_norm = 0;
    ck_assert_ptr_nonnull(crn_model_find_tensor(f.model, "l0.ln_gc"));
    ck_assert_int_eq(save_fixture(path, &f, 1), 0);
    crn_checkpoint *c = NULL;
    ck_assert_msg(crn_checkpoint_load(&c, path) == 0, "%s", crn_error_message());
    check_same(&f, c, 1);
    crn_checkpoint_destroy(c);
    b = read_file(path, &n);
    int ns = parse(b, n, s, 8);
    ck_assert_int_eq(ns, 6);
    const sect *fs = find(s, ns, T_FEATURES);
    ck_assert_uint_eq(fs->flags, 0); /* an older charrnn must refuse the file, not skip the section */
    ck_assert_uint_eq(fs->len, 4);
    ck_assert_uint_eq(rd32(b + fs->off), 1);
    uint8_t *d = malloc(n + 4);
    ck_assert_ptr_nonnull(d);
    /* unknown feature bits */
    memcpy(d, b, n);
    wr32(d + fs->off, 3);
    fix_crc(d, fs);
    ck_assert_int_eq(load_bytes(tpath, d, n, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "section FEATURES") && strstr(msg, "unknown feature bits 0x2"), "%s", msg);
    /* feature bit cleared: the tensors no longer match the config */
    memcpy(d, b, n);
    wr32(d + fs->off, 0);
    fix_crc(d, fs);
    ck_assert_int_eq(load_bytes(tpath, d, n, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "parameter count") != NULL, "%s", msg);
    /* section dropped: the same */
    size_t flen = 16 + fs->len + 4;
    memcpy(d, b, fs->hdr);
    memcpy(d + fs->hdr, b + fs->hdr + flen, n - fs->hdr - flen);
    wr32(d + 12, (uint32_t)ns - 1);
    ck_assert_int_eq(load_bytes(tpath, d, n - flen, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "parameter count") != NULL, "%s", msg);
    /* a longer payload */
    memcpy(d, b, fs->off + 4);
    wr32(d + fs->off + 4, 0);
    memcpy(d + fs->off + 8, b + fs->off + 4, n - fs->off - 4);
    wr64(d + fs->hdr + 8, 8);
    sect fl = *fs;
    fl.len = 8;
    fix_crc(d, &fl);
    ck_assert_int_eq(load_bytes(tpath, d, n + 4, msg, sizeof msg), CRN_EFORMAT);
    ck_assert_msg(strstr(msg, "4 bytes after the feature bits") != NULL, "%s", msg);
    /* a config that says otherwise is refused at save */
    f.cfg.layer_norm = 0;
    ck_assert_int_eq(save_fixture(tpath, &f, 0), CRN_EINVAL);
    ck_assert_msg(strstr(crn_error_message(), "does not describe") != NULL, "%s", crn_error_message());
    free(d);
    free(b);
    fixture_free(&f);
    remove_dir();
}
END_TEST

/* ---- saving --------------------------------------------------------------- */

START_TEST(atomic_save_under_full_disk) {
    make_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/model.crn", dir);
    fixture f;
    fixture_make(&f, CRN_CELL_LSTM, CRN_ACT_TANH, 4, 6, 2, CRN_UNIT_CODEPOINT, 1);
    ck_assert_int_eq(save_fixture(path, &f, 1), 0);
    size_t n0;
    uint8_t *before = read_file(path, &n0);
    /* new weights, so a successful save would change the file */
    crn_rng rng;
    crn_rng_seed(&rng, 999);
    crn_model_init(f.model, &rng);
    const uint64_t cuts[] = {0, 1, 15, 16, 17, 100, n0 / 2, n0 - 5, n0 - 1};
    for (size_t i = 0; i < CRN_ARRAY_LEN(cuts); i++) {
        char v[32];
        snprintf(v, sizeof v, "%llu", (unsigned long long)cuts[i]);
        ck_assert_int_eq(setenv("CRN_FAULT_WRITE_AFTER", v, 1), 0);
        int err = save_fixture(path, &f, 1);
        ck_assert_msg(err == CRN_EIO, "fault after %s bytes: got %d (%s)", v, err, crn_error_message());
        ck_assert_msg(strstr(crn_error_message(), path) != NULL, "%s", crn_error_message());
        ck_assert_msg(strstr(crn_error_message(), strerror(ENOSPC)) != NULL, "%s", crn_error_message());
        size_t n1;
        uint8_t *after = read_file(path, &n1);
        ck_assert_uint_eq(n1, n0);
        ck_assert_msg(memcmp(after, before, n0) == 0, "fault after %s bytes changed the old file", v);
        free(after);
        ck_assert_msg(count_entries() == 1, "fault after %s bytes left a temp file", v);
        crn_checkpoint *c = NULL;
        ck_assert_msg(crn_checkpoint_load(&c, path) == 0, "%s", crn_error_message());
        crn_checkpoint_destroy(c);
    }
    /* the fault hook fires exactly at the size: a budget of the full size succeeds */
    char v[32];
    snprintf(v, sizeof v, "%zu", n0);
    setenv("CRN_FAULT_WRITE_AFTER", v, 1);
    ck_assert_msg(save_fixture(path, &f, 1) == 0, "%s", crn_error_message());
    unsetenv("CRN_FAULT_WRITE_AFTER");
    size_t n2;
    uint8_t *now = read_file(path, &n2);
    ck_assert_uint_eq(n2, n0);
    ck_assert(memcmp(now, before, n0) != 0);
    free(now);
    crn_checkpoint *c = NULL;
    ck_assert_int_eq(crn_checkpoint_load(&c, path), 0);
    check_same(&f, c, 1);
    crn_checkpoint_destroy(c);

    /* a failed first save leaves nothing at all */
    char fresh[600];
    snprintf(fresh, sizeof fresh, "%s/fresh.crn", dir);
    setenv("CRN_FAULT_WRITE_AFTER", "50", 1);
    ck_assert_int_eq(save_fixture(fresh, &f, 0), CRN_EIO);
    unsetenv("CRN_FAULT_WRITE_AFTER");
    ck_assert_int_eq(access(fresh, F_OK), -1);
    ck_assert_int_eq(count_entries(), 1);
    free(before);
    fixture_free(&f);
    remove_dir();
}
END_TEST

START_TEST(save_refusals) {
    make_dir();
    char path[512], bad[700];
    snprintf(path, sizeof path, "%s/model.crn", dir);
    fixture f;
    fixture_make(&f, CRN_CELL_RNN, CRN_ACT_TANH, 0, 5, 1, CRN_UNIT_CODEPOINT, 5);
    /* a missing directory: the message names the path */
    snprintf(bad, sizeof bad, "%s/no/such/dir/model.crn", dir);
    ck_assert_int_eq(save_fixture(bad, &f, 1), CRN_EIO);
    ck_assert_msg(strstr(crn_error_message(), bad) != NULL, "%s", crn_error_message());
    ck_assert_msg(strstr(crn_error_message(), strerror(ENOENT)) != NULL, "%s", crn_error_message());

    /* the target is a directory: the rename fails, the temp file goes */
    snprintf(bad, sizeof bad, "%s/adir", dir);
    ck_assert_int_eq(mkdir(bad, 0755), 0);
    ck_assert_int_eq(save_fixture(bad, &f, 1), CRN_EIO);
    ck_assert_msg(strstr(crn_error_message(), bad) != NULL, "%s", crn_error_message());
    ck_assert_int_eq(count_entries(), 1);
    ck_assert_int_eq(rmdir(bad), 0);
    /* a read-only directory (root may write anyway: then skip) */
    if (geteuid() != 0) {
        snprintf(bad, sizeof bad, "%s/ro", dir);
        ck_assert_int_eq(mkdir(bad, 0555), 0);
        char inro[800];
        snprintf(inro, sizeof inro, "%s/model.crn", bad);
        ck_assert_int_eq(save_fixture(inro, &f, 1), CRN_EIO);
        ck_assert_msg(strstr(crn_error_message(), inro) != NULL, "%s", crn_error_message());
        ck_assert_msg(strstr(crn_error_message(), strerror(EACCES)) != NULL, "%s", crn_error_message());
        ck_assert_int_eq(rmdir(bad), 0);
    } else {
        printf("  running as root: read-only directory case skipped\n");
    }

    ck_assert_int_eq(save_fixture(path, &f, 1), 0);
    size_t n0;
    uint8_t *before = read_file(path, &n0);
    /* non-finite weights are never written */
    float *p = crn_model_params(f.model);
    const crn_tensor_info *t = crn_model_find_tensor(f.model, "l0.w_h");
    ck_assert_ptr_nonnull(t);
    float keep = p[t->offset + 7];
    p[t->offset + 7] = NAN;
    ck_assert_int_eq(save_fixture(path, &f, 1), CRN_ENONFINITE);
    ck_assert_msg(strstr(crn_error_message(), "l0.w_h[1,2]") != NULL, "%s", crn_error_message());
    p[t->offset + 7] = -INFINITY;
    ck_assert_int_eq(save_fixture(path, &f, 0), CRN_ENONFINITE);
    p[t->offset + 7] = keep;
    f.optim->v[3] = NAN;
    ck_assert_int_eq(save_fixture(path, &f, 1), CRN_ENONFINITE);
    f.optim->v[3] = 0;
    /* inconsistent arguments */
    crn_model_config other = f.cfg;
    other.hidden++;
    ck_assert_int_eq(crn_checkpoint_save(path, &other, f.vocab, f.model, NULL, NULL, 0), CRN_EINVAL);
    other = f.cfg;
    other.vocab--;
    ck_assert_int_eq(crn_checkpoint_save(path, &other, f.vocab, f.model, NULL, NULL, 0), CRN_EINVAL);
    crn_optim_config oc;
    crn_optim_config_default(&oc, CRN_OPT_RMSPROP);
    crn_optim *small;
    ck_assert_int_eq(crn_optim_create(&small, &oc, 3), 0);
    ck_assert_int_eq(crn_checkpoint_save(path, &f.cfg, f.vocab, f.model, small, NULL, 0), CRN_EINVAL);
    crn_optim_destroy(small);

    size_t n1;
    uint8_t *after = read_file(path, &n1);
    ck_assert_uint_eq(n1, n0);
    ck_assert_int_eq(memcmp(before, after, n0), 0);
    ck_assert_int_eq(count_entries(), 1);
    free(before);
    free(after);
    fixture_free(&f);
    remove_dir();
}
END_TEST

int main(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, round_trip, 0, (int)CRN_ARRAY_LEN(CASES));
    tcase_add_test(tc, empty_train_blob_and_plain_sgd);
    tcase_add_test(tc, layout_matches_docs);
    tcase_add_test(tc, layout_is_the_models);
    tcase_add_test(tc, truncated_at_every_byte);
    tcase_add_test(tc, flipped_byte_anywhere);
    tcase_add_test(tc, wrong_magic_and_version);
    tcase_add_test(tc, absurd_sizes);
    tcase_add_test(tc, unknown_and_missing_sections);
    tcase_add_test(tc, layer_norm_features);
    tcase_add_test(tc, atomic_save_under_full_disk);
    tcase_add_test(tc, save_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
