/* checkpoint.h — the model file (docs/model-format.md): magic, format version,
 * then sections (config, vocabulary, parameters, and optionally optimizer
 * state and training state), each with a type, a length and a CRC-32.
 * Little-endian, fixed-width fields; a section's CRC-32 covers its header
 * (type, flags, length) and its payload. Loading bounds-checks every read and
 * never trusts a size before checking it against the file and the config;
 * any problem is CRN_EFORMAT / CRN_ECHECKSUM with a message naming the file,
 * the section and the byte offset. Saving is atomic: write a temp file in the
 * same directory, fsync it, rename it over the target, fsync the directory. */
#ifndef CRN_CHECKPOINT_H
#define CRN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "model.h"
#include "optim.h"
#include "vocab.h"

/* The training state (step, data position, RNG, options, history) is owned
 * by train.c, which encodes it into a byte string of its own (bounds-checked
 * on decode); the checkpoint stores that string as one checksummed section. */
typedef struct crn_checkpoint {
    crn_model_config cfg;
    crn_vocab *vocab;               /* owned */
    crn_model *model;               /* owned; parameters loaded (generator files; NULL for a classifier) */
    crn_clf *clf;                   /* owned; classifier files only (a HEAD section), else NULL */
    crn_clf_config clf_cfg;         /* classifier: cfg plus the head (classes, pooling, direction) */
    char **class_names;             /* classifier: clf_cfg.classes names (owned), else NULL */
    uint32_t max_len;               /* classifier: the --max-len it was trained with */
    crn_optim *optim;               /* owned; NULL if the file has no optimizer state */
    uint8_t *train_blob;            /* owned (malloc); NULL if the file has no training state */
    size_t train_blob_len;
} crn_checkpoint;

/* Load path. @return 0 or a negative error (message: "PATH: section S at byte
 * N: what is wrong"). Generator files only: a classifier file is refused with
 * CRN_EINVAL ("PATH: this is a classifier ..."), so every generator command
 * gives that clear error. */
int crn_checkpoint_load(crn_checkpoint **out, const char *path);
/* Load a file of the kinds allowed (CRN_CKPT_GENERATOR | CRN_CKPT_CLASSIFIER);
 * the other kind is refused with CRN_EINVAL and a message naming what it is. */
#define CRN_CKPT_GENERATOR 1
#define CRN_CKPT_CLASSIFIER 2
int crn_checkpoint_load_kind(crn_checkpoint **out, const char *path, int kinds);
int crn_checkpoint_load_mem_kind(crn_checkpoint **out, const char *name, const uint8_t *buf, size_t len, int kinds);
/* The same from bytes in memory (fuzzing, embedding), either kind; name
 * stands for the path in messages. The bytes are not kept. */
int crn_checkpoint_load_mem(crn_checkpoint **out, const char *name, const uint8_t *buf, size_t len);
/* Save atomically. optim and train_blob may be NULL (a model-only file).
 * Refuses (CRN_ENONFINITE) non-finite parameters or optimizer state, and
 * (CRN_EINVAL) a cfg/vocab/optim that does not match the model. On any
 * failure (CRN_EIO: the message names the path and the errno text) the temp
 * file is removed and an existing file at path is untouched.
 *
 * Test hook, in test builds only (compiled with CRN_TEST_HOOKS=1: the unit
 * tests and tests/meson.build's charrnn-hooks binary, never the installed
 * library or charrnn): if the environment variable CRN_FAULT_WRITE_AFTER=N
 * is set (read at every save), the save writes at most N bytes of the temp file and
 * then fails as if the disk were full (ENOSPC -> CRN_EIO), so tests can check
 * that a full disk never harms the previous file. Not for normal use. */
int crn_checkpoint_save(const char *path, const crn_model_config *cfg, const crn_vocab *vocab,
                        crn_model *model, const crn_optim *optim,
                        const uint8_t *train_blob, size_t train_blob_len);
/* Save a classifier: the generator's sections plus HEAD (docs/model-format.md):
 * class_names (the config's class count, each 1..256 bytes), max_len > 0. */
int crn_checkpoint_save_clf(const char *path, const crn_vocab *vocab, crn_clf *clf, const char *const *class_names,
                            uint32_t max_len, const crn_optim *optim, const uint8_t *train_blob,
                            size_t train_blob_len);
void crn_checkpoint_destroy(crn_checkpoint *c); /* NULL is a no-op; frees everything owned */

#endif
