/* fuzz_model_load.c — libFuzzer target: the model-file loader
 * (crn_checkpoint_load), and behind it the vocabulary deserialiser and the
 * training-state decoder.
 *
 * Each input is written to a memfd and loaded through /proc/self/fd/N (the
 * loader takes a path), twice: as it is, and again with every section's
 * CRC-32 recomputed (the layout is in docs/model-format.md: a 16-byte
 * header, then sections u32 type | u32 flags | u64 length | payload | u32
 * CRC over header and payload). Without the second load almost every
 * mutation would stop at the checksum, and the section parsers behind it
 * would never be fuzzed.
 *
 * Invariants: a failed load returns a known error with a message; a
 * successful one is self-consistent (config valid and equal to the model's,
 * vocabulary size = config's, optimizer sized to the parameters), its
 * training state decodes or is refused cleanly, the model runs a step, and
 * save -> load gives the same config, vocabulary and parameter bits, and
 * saving that again gives the same bytes. Leaks are caught by ASan's leak
 * checker at exit. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "fuzz.h"
#include "model.h"
#include "optim.h"
#include "train.h"
#include "vocab.h"

static int g_fd = -1;
static char g_path[64];
static char g_dir[64];
static char g_save1[96], g_save2[96];

static void cleanup(void) {
    unlink(g_save1);
    unlink(g_save2);
    rmdir(g_dir);
}

static void setup(void) {
    if (g_fd >= 0) return;
    g_fd = memfd_create("fuzz-model", 0);
    if (g_fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    /* saves go to a private directory, on tmpfs when there is one */
    snprintf(g_dir, sizeof g_dir, "%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm/crnfuzz.XXXXXX" : "/tmp/crnfuzz.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(g_save1, sizeof g_save1, "%s/a.model", g_dir);
    snprintf(g_save2, sizeof g_save2, "%s/b.model", g_dir);
    atexit(cleanup);
}

static void put_file(const uint8_t *d, size_t n) {
    if (ftruncate(g_fd, 0) != 0) abort();
    size_t w = 0;
    while (w < n) {
        ssize_t k = pwrite(g_fd, d + w, n - w, (off_t)w);
        if (k <= 0) abort();
        w += (size_t)k;
    }
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f != NULL, "cannot reopen %s", path);
    size_t cap = 4096, len = 0;
    uint8_t *b = fuzz_xmalloc(cap);
    size_t k;
    while ((k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            cap *= 2;
            b = realloc(b, cap);
            if (!b) abort();
        }
    }
    fclose(f);
    *n = len;
    return b;
}

static int cfg_equal(const crn_model_config *a, const crn_model_config *b) {
    return a->cell == b->cell && a->act == b->act && a->vocab == b->vocab && a->embed == b->embed &&
           a->hidden == b->hidden && a->layers == b->layers && memcmp(&a->dropout, &b->dropout, sizeof a->dropout) == 0;
}

static void check_loaded(const crn_checkpoint *ck) {
    const crn_model_config *mc = crn_model_config_of(ck->model);
    FUZZ_CHECK(cfg_equal(&ck->cfg, mc), "checkpoint config differs from the model's");
    FUZZ_CHECK(crn_model_config_check(&ck->cfg) == 0, "a loaded config fails its check");
    FUZZ_CHECK(ck->vocab && crn_vocab_size(ck->vocab) == ck->cfg.vocab, "vocab size %u, config %u",
               ck->vocab ? crn_vocab_size(ck->vocab) : 0, ck->cfg.vocab);
    size_t np = crn_model_num_params(ck->model);
    if (ck->optim) FUZZ_CHECK(ck->optim->n == np, "optimizer for %zu parameters, model has %zu", ck->optim->n, np);
    FUZZ_CHECK(!ck->train_blob == !ck->train_blob_len, "train blob %p with length %zu", (void *)ck->train_blob,
               ck->train_blob_len);
    if (ck->train_blob) {
        crn_train_opts o;
        crn_train_status s;
        int rc = crn_train_blob_decode(&o, &s, ck->train_blob, ck->train_blob_len);
        if (rc < 0) FUZZ_CHECK_ERR(rc, "crn_train_blob_decode");
        crn_train_opts_free(&o);
        crn_train_status_free(&s);
    }
    /* the model runs: two sampling steps from <unk> and the last id */
    crn_state *st = NULL;
    FUZZ_CHECK(crn_state_create(&st, ck->model, 1) == 0, "state_create for a loaded model");
    float *logits = fuzz_xmalloc((size_t)ck->cfg.vocab * sizeof *logits);
    uint32_t tok = 0;
    FUZZ_CHECK(crn_model_step(ck->model, st, &tok, logits) == 0, "step");
    tok = ck->cfg.vocab - 1;
    FUZZ_CHECK(crn_model_step(ck->model, st, &tok, logits) == 0, "step");
    free(logits);
    crn_state_destroy(st);
}

/* save -> load -> compare -> save -> same bytes */
static void check_roundtrip(crn_checkpoint *ck) {
    int rc = crn_checkpoint_save(g_save1, &ck->cfg, ck->vocab, ck->model, ck->optim, ck->train_blob,
                                 ck->train_blob_len);
    if (rc < 0) {
        /* refusing to write non-finite numbers is by design */
        FUZZ_CHECK(rc == CRN_ENONFINITE, "saving a loaded model failed: %d", rc);
        FUZZ_CHECK_ERR(rc, "crn_checkpoint_save");
        return;
    }
    crn_checkpoint *ck2 = NULL;
    rc = crn_checkpoint_load(&ck2, g_save1);
    FUZZ_CHECK(rc == 0, "a saved model does not load: %d", rc);
    FUZZ_CHECK(cfg_equal(&ck->cfg, &ck2->cfg), "config changed by save/load");
    size_t np = crn_model_num_params(ck->model);
    FUZZ_CHECK(crn_model_num_params(ck2->model) == np &&
                   !memcmp(crn_model_params(ck->model), crn_model_params(ck2->model), np * sizeof(float)),
               "parameters changed by save/load");
    uint8_t *v1 = NULL, *v2 = NULL;
    size_t l1 = 0, l2 = 0;
    FUZZ_CHECK(crn_vocab_serialize(ck->vocab, &v1, &l1) == 0 && crn_vocab_serialize(ck2->vocab, &v2, &l2) == 0,
               "serialize");
    FUZZ_CHECK(l1 == l2 && !memcmp(v1, v2, l1), "vocabulary changed by save/load");
    free(v1);
    free(v2);
    FUZZ_CHECK(!ck->optim == !ck2->optim, "optimizer state appeared or vanished");
    FUZZ_CHECK(ck->train_blob_len == ck2->train_blob_len &&
                   (!ck->train_blob_len || !memcmp(ck->train_blob, ck2->train_blob, ck->train_blob_len)),
               "training state changed by save/load");
    rc = crn_checkpoint_save(g_save2, &ck2->cfg, ck2->vocab, ck2->model, ck2->optim, ck2->train_blob,
                             ck2->train_blob_len);
    FUZZ_CHECK(rc == 0, "saving a reloaded model failed: %d", rc);
    size_t n1, n2;
    uint8_t *f1 = read_file(g_save1, &n1), *f2 = read_file(g_save2, &n2);
    FUZZ_CHECK(n1 == n2 && !memcmp(f1, f2, n1), "save(load(save(m))) differs from save(m)");
    free(f1);
    free(f2);
    crn_checkpoint_destroy(ck2);
}

static void load_one(const uint8_t *d, size_t n) {
    put_file(d, n);
    crn_error_clear();
    crn_checkpoint *ck = NULL;
    int rc = crn_checkpoint_load(&ck, g_path);
    if (rc < 0) {
        FUZZ_CHECK_ERR(rc, "crn_checkpoint_load");
        FUZZ_CHECK(ck == NULL, "a failed load returned a checkpoint");
        return;
    }
    FUZZ_CHECK(rc == 0 && ck != NULL, "load returned %d and %p", rc, (void *)ck);
    check_loaded(ck);
    check_roundtrip(ck);
    crn_checkpoint_destroy(ck);
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recompute every section's CRC that fits in the buffer; returns whether
 * anything changed. */
static int fix_crcs(uint8_t *b, size_t n) {
    if (n < 16) return 0;
    uint32_t count = rd32(b + 12);
    size_t pos = 16;
    int changed = 0;
    for (uint32_t i = 0; i < count && i < 4096; i++) {
        if (n - pos < 16) break;
        uint64_t len = (uint64_t)rd32(b + pos + 8) | (uint64_t)rd32(b + pos + 12) << 32;
        if (len > n - pos - 16 || n - pos - 16 - len < 4) break;
        uint32_t crc = crn_crc32(0, b + pos, (size_t)(16 + len));
        uint8_t *c = b + pos + 16 + len;
        uint8_t le[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
        if (memcmp(c, le, 4)) {
            memcpy(c, le, 4);
            changed = 1;
        }
        pos += 16 + (size_t)len + 4;
    }
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    load_one(data, size);
    uint8_t *fixed = fuzz_xmalloc(size);
    memcpy(fixed, data, size);
    if (fix_crcs(fixed, size)) load_one(fixed, size);
    free(fixed);
    return 0;
}
