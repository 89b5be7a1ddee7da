/* checkpoint.c — the model file (format in docs/model-format.md).
 *
 *   header   "CHARRNN\0" | u32 version | u32 section count          16 bytes
 *   section  u32 type | u32 flags | u64 length | payload | u32 CRC-32
 *
 * Every integer and float is little-endian and fixed-width, encoded byte by
 * byte with the helpers below (never by writing structs), so a file means
 * the same on every host. The CRC-32 of a section covers its 16 header bytes
 * and its payload, so a flipped bit in a type, flag or length is caught as
 * surely as one in the data.
 *
 * Loading reads the whole file into memory, then walks it with a cursor that
 * checks every read against the bytes that are really there; no size from
 * the file is used (for an allocation, a loop bound or an offset) before it
 * is checked against the file's size and the model config. Saving writes a
 * temp file next to the target, fsyncs it, renames it over the target and
 * fsyncs the directory, so the target is always either the old file or the
 * complete new one. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byteorder.h"
#include "common.h"

#define CKPT_MAGIC "CHARRNN\0"
#define CKPT_MAGIC_LEN 8
#define CKPT_VERSION 1u
#define CKPT_HEADER 16u   /* magic, version, section count */
#define SECT_HEADER 16u   /* type, flags, length */
#define SECT_CRC 4u
#define SECT_MAY_SKIP 1u  /* flag: a reader that does not know the type may skip it */
#define MAX_SECTIONS 4096u

enum { SECT_CONFIG = 1, SECT_VOCAB = 2, SECT_PARAMS = 3, SECT_OPTIM = 4, SECT_TRAIN = 5, SECT_HEAD = 6, SECT_FEATURES = 7,
       SECT_KNOWN_MAX = 7 };
/* FEATURES: u32 bit set of model options that change the layout, written
 * only when one is on (so files without them stay readable by older
 * charrnn, which refuse files with them: the section may not be skipped). */
#define FEATURE_LAYER_NORM 1u
#define FEATURES_KNOWN FEATURE_LAYER_NORM

/* CONFIG: 7 fixed fields (28 bytes), u64 param count, u32 tensor count. */
#define CONFIG_FIXED 40u
/* per tensor: u32 name length, name, u64 offset, u64 rows, u64 cols */
#define TENSOR_NAME_MAX 31u
/* OPTIM: kind, 7 floats, u64 t, u64 n, u32 buffer count, then the buffers. */
#define OPTIM_FIXED 52u

static const char *const sect_names[] = {"?", "CONFIG", "VOCAB", "PARAMS", "OPTIM", "TRAIN", "HEAD", "FEATURES"};

/* HEAD (classifier files): u32 version, kind, classes, pool, direction, max_len, then the class names. */
#define HEAD_FIXED 24u
#define HEAD_VERSION 1u
#define CLASS_NAME_MAX 256u

/* The flags a version-1 writer gives each known section; the loader wants
 * exactly these. */
static uint32_t sect_flags(uint32_t type) {
    return type == SECT_OPTIM || type == SECT_TRAIN ? SECT_MAY_SKIP : 0;
}

/* ---- float arrays, little-endian (byteorder.h) ---------------------------- */

/* Parameters in the model's layout: n floats <-> 4n little-endian bytes. */
static void encode_f32s(uint8_t *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) crn_le_put_f32(out + 4 * i, x[i]);
}
static void decode_f32s(float *out, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = crn_le_get_f32(p + 4 * i);
}

/* Index of the first non-finite value, or n. */
static size_t first_non_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* The parameter buffer and size table of a generator or a classifier. */
typedef struct pview {
    float *p;
    size_t n;
    const crn_tensor_info *tab;
    int nt;
} pview;

static pview view_of_model(crn_model *m) {
    return (pview){crn_model_params(m), crn_model_num_params(m), crn_model_tensor(m, 0), crn_model_num_tensors(m)};
}
static pview view_of_clf(crn_clf *m) {
    return (pview){crn_clf_params(m), crn_clf_num_params(m), crn_clf_tensor(m, 0), crn_clf_num_tensors(m)};
}

/* "l0.w_x[3,17]" for parameter index i (or "#i" if outside every tensor). */
static void describe_param(char *buf, size_t cap, const pview *m, size_t i) {
    int nt = m->nt;
    for (int k = 0; k < nt; k++) {
        const crn_tensor_info *t = &m->tab[k];
        if (i >= t->offset && i - t->offset < t->rows * t->cols) {
            size_t j = i - t->offset;
            if (t->rows == 1) snprintf(buf, cap, "%s[%zu]", t->name, j);
            else snprintf(buf, cap, "%s[%zu,%zu]", t->name, j / t->cols, j % t->cols);
            return;
        }
    }
    snprintf(buf, cap, "#%zu", i);
}

/* ---- loading ------------------------------------------------------------ */

static const char *sect_name(uint32_t type, char *tmp, size_t cap) {
    if (type >= 1 && type <= SECT_KNOWN_MAX) return sect_names[type];
    snprintf(tmp, cap, "of type %u", type);
    return tmp;
}

/* "PATH: section S at byte N: message" */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int fail_at(int code, const char *path, const char *where, uint64_t off, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return crn_error_set(code, "%s: %s at byte %llu: %s", path, where, (unsigned long long)off, msg);
}

/* A bounds-checked cursor over one section's payload. off is the payload's
 * file offset, for messages. */
typedef struct cursor {
    const uint8_t *p;
    uint64_t len, pos, off;
    const char *path, *sect;
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if (c->len - c->pos < n) {
        char where[64];
        snprintf(where, sizeof where, "section %s", c->sect);
        return fail_at(CRN_EFORMAT, c->path, where, c->off + c->pos,
                       "truncated: %s needs %llu bytes, the section has %llu left", what,
                       (unsigned long long)n, (unsigned long long)(c->len - c->pos));
    }
    return 0;
}
static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    int err = need(c, 4, what);
    if (err) return err;
    *v = crn_le_get_u32(c->p + c->pos);
    c->pos += 4;
    return 0;
}
static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    int err = need(c, 8, what);
    if (err) return err;
    *v = crn_le_get_u64(c->p + c->pos);
    c->pos += 8;
    return 0;
}
static int rd_f32(cursor *c, float *v, const char *what) {
    int err = need(c, 4, what);
    if (err) return err;
    *v = crn_le_get_f32(c->p + c->pos);
    c->pos += 4;
    return 0;
}
/* An error about the field just read (at pos - width) or at the cursor. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int bad(const cursor *c, int code, uint64_t field_pos, const char *fmt, ...) {
    char msg[400], where[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "section %s", c->sect);
    return fail_at(code, c->path, where, c->off + field_pos, "%s", msg);
}
static int expect_end(const cursor *c) {
    if (c->pos != c->len)
        return bad(c, CRN_EFORMAT, c->pos, "%llu unexpected bytes at the end of the section",
                   (unsigned long long)(c->len - c->pos));
    return 0;
}

typedef struct sect_loc {
    int present;
    uint64_t hdr;  /* file offset of the section header */
    uint64_t off;  /* file offset of the payload */
    uint64_t len;
} sect_loc;

static int read_whole_file(const char *path, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever
     * before the regular-file check below could refuse it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) close(fd);
        return crn_error_set(e == ENOENT ? CRN_ENOTFOUND : CRN_EIO, "%s: cannot open model file: %s", path,
                             strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return crn_error_set(CRN_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return crn_error_set(CRN_EIO, "%s: is a directory, not a model file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return crn_error_set(CRN_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX - 1) {
        fclose(f);
        return crn_error_set(CRN_ERANGE, "%s: file too large (%lld bytes)", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    /* Header first: a file that is no model (or a newer one) is judged on
     * its 16 bytes alone, so an 8 GB disk image given by mistake is refused
     * at once instead of being read whole first. */
    uint8_t head[CKPT_HEADER];
    size_t hn = fread(head, 1, CRN_MIN(size, sizeof head), f);
    if (hn == CKPT_HEADER && (memcmp(head, CKPT_MAGIC, CKPT_MAGIC_LEN) != 0 || crn_le_get_u32(head + 8) == 0 ||
                              crn_le_get_u32(head + 8) > CKPT_VERSION))
        size = hn;
    uint8_t *b = malloc(size ? size : 1);
    if (!b) {
        fclose(f);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    memcpy(b, head, hn);
    size_t got = hn + (size > hn ? fread(b + hn, 1, size - hn, f) : 0);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(b);
        return crn_error_set(CRN_EIO, "%s: read error", path);
    }
    /* A file that shrank while we read it is judged on what we got. */
    *buf = b;
    *len = got;
    return 0;
}

/* Walk the header and section table: bounds, flags, checksums, duplicates. */
static int scan_sections(const char *path, const uint8_t *b, size_t size, sect_loc loc[SECT_KNOWN_MAX + 1]) {
    if (size < CKPT_MAGIC_LEN || memcmp(b, CKPT_MAGIC, CKPT_MAGIC_LEN) != 0) {
        size_t k = CRN_MIN(size, (size_t)CKPT_MAGIC_LEN);
        if (memcmp(b, CKPT_MAGIC, k) == 0)
            return fail_at(CRN_EFORMAT, path, "header", 0, "truncated: the file is %zu bytes, the header needs %u",
                           size, CKPT_HEADER);
        return fail_at(CRN_EFORMAT, path, "header", 0, "not a charrnn model file (bad magic)");
    }
    if (size < CKPT_HEADER)
        return fail_at(CRN_EFORMAT, path, "header", size, "truncated: the file is %zu bytes, the header needs %u",
                       size, CKPT_HEADER);
    uint32_t version = crn_le_get_u32(b + 8), count = crn_le_get_u32(b + 12);
    if (version > CKPT_VERSION)
        return crn_error_set(CRN_EFORMAT, "%s: format version %u is newer than this charrnn (%u); upgrade charrnn",
                             path, version, CKPT_VERSION);
    if (version == 0) return fail_at(CRN_EFORMAT, path, "header", 8, "format version 0 is invalid");
    /* (A count the file cannot hold fails below, at the section where the
     * file ends; each pass of the loop consumes at least 20 bytes.) */
    if (count == 0 || count > MAX_SECTIONS)
        return fail_at(CRN_EFORMAT, path, "header", 12, "absurd section count %u", count);
    uint64_t pos = CKPT_HEADER;
    for (uint32_t i = 0; i < count; i++) {
        char tmp[32], where[64];
        const uint64_t left = size - pos;
        if (left < 4) {
            snprintf(where, sizeof where, "section #%u", i + 1);
            return fail_at(CRN_EFORMAT, path, where, pos, "truncated: the file ends at byte %zu inside the header",
                           size);
        }
        uint32_t type = crn_le_get_u32(b + pos);
        snprintf(where, sizeof where, "section %s", sect_name(type, tmp, sizeof tmp));
        if (left < SECT_HEADER)
            return fail_at(CRN_EFORMAT, path, where, pos, "truncated: the file ends at byte %zu inside the header",
                           size);
        uint32_t flags = crn_le_get_u32(b + pos + 4);
        uint64_t len = crn_le_get_u64(b + pos + 8);
        if (len > left - SECT_HEADER || left - SECT_HEADER - len < SECT_CRC)
            return fail_at(CRN_EFORMAT, path, where, pos,
                           "truncated: a payload of %llu bytes and its checksum do not fit in the %llu bytes left "
                           "(the file ends at byte %zu)",
                           (unsigned long long)len, (unsigned long long)(left - SECT_HEADER), size);
        uint32_t want = crn_le_get_u32(b + pos + SECT_HEADER + len);
        uint32_t crc = crn_crc32(0, b + pos, (size_t)(SECT_HEADER + len));
        if (crc != want)
            return fail_at(CRN_ECHECKSUM, path, where, pos, "checksum mismatch (stored %08x, computed %08x)", want,
                           crc);
        if (type >= 1 && type <= SECT_KNOWN_MAX) {
            if (flags != sect_flags(type))
                return fail_at(CRN_EFORMAT, path, where, pos + 4, "bad flags 0x%x (expected 0x%x)", flags,
                               sect_flags(type));
            if (loc[type].present) return fail_at(CRN_EFORMAT, path, where, pos, "duplicate section");
            loc[type] = (sect_loc){1, pos, pos + SECT_HEADER, len};
        } else if (!(flags & SECT_MAY_SKIP)) {
            return fail_at(CRN_EFORMAT, path, where, pos,
                           "unknown section type %u that may not be skipped (written by a newer charrnn?)", type);
        }
        pos += SECT_HEADER + len + SECT_CRC;
    }
    if (pos != size)
        return fail_at(CRN_EFORMAT, path, "end of file", pos, "%llu unexpected bytes after the last of %u sections",
                       (unsigned long long)(size - pos), count);
    for (uint32_t t = SECT_CONFIG; t <= SECT_PARAMS; t++)
        if (!loc[t].present)
            return fail_at(CRN_EFORMAT, path, "end of file", size, "missing section %s", sect_names[t]);
    return 0;
}

static cursor cursor_of(const char *path, const uint8_t *b, const sect_loc *l, uint32_t type) {
    return (cursor){b + l->off, l->len, 0, l->off, path, sect_names[type]};
}

/* CONFIG, first part: the model config and the parameter count, checked
 * before anything is allocated. */
static int load_config(cursor *c, crn_model_config *cfg, uint64_t *nparams, uint32_t *ntensors,
                       const sect_loc *params_loc, crn_clf_config *clf, uint32_t features) {
    uint32_t cell, act, vocab, embed, hidden, layers;
    float dropout;
    int err;
    if ((err = rd_u32(c, &cell, "cell")) || (err = rd_u32(c, &act, "activation")) ||
        (err = rd_u32(c, &vocab, "vocabulary size")) || (err = rd_u32(c, &embed, "embedding size")) ||
        (err = rd_u32(c, &hidden, "hidden size")) || (err = rd_u32(c, &layers, "layer count")) ||
        (err = rd_f32(c, &dropout, "dropout")) || (err = rd_u64(c, nparams, "parameter count")) ||
        (err = rd_u32(c, ntensors, "tensor count")))
        return err;
    memset(cfg, 0, sizeof *cfg);
    cfg->cell = (enum crn_cell)cell;
    cfg->act = (enum crn_act)act;
    cfg->vocab = vocab;
    cfg->embed = embed;
    cfg->hidden = hidden;
    cfg->layers = layers;
    cfg->dropout = dropout;
    cfg->layer_norm = (features & FEATURE_LAYER_NORM) != 0;
    /* Enum values are checked here too: the compiler may assume an enum
     * holds one of its values. */
    if (cell > CRN_CELL_GRU) return bad(c, CRN_EFORMAT, 0, "unknown cell type %u", cell);
    if (act > CRN_ACT_RELU) return bad(c, CRN_EFORMAT, 4, "unknown activation %u", act);
    if (crn_model_config_check(cfg) != 0) return bad(c, CRN_EFORMAT, 0, "%s", crn_error_message());
    uint64_t want = 0;
    if (clf) {
        clf->base = *cfg;
        if (crn_clf_config_check(clf) != 0) return bad(c, CRN_EFORMAT, 0, "%s", crn_error_message());
    }
    if ((clf ? crn_clf_expected_params(clf, &want) : crn_model_layout(cfg, NULL, NULL, &want)) != 0 || *nparams != want)
        return bad(c, CRN_EFORMAT, 28, "parameter count %llu does not match the config (%llu)",
                   (unsigned long long)*nparams, (unsigned long long)want);
    /* The parameters must really be in the file before we allocate for them. */
    if (*nparams > params_loc->len / 4 || params_loc->len != *nparams * 4)
        return fail_at(CRN_EFORMAT, c->path, "section PARAMS", params_loc->hdr,
                       "payload of %llu bytes does not hold the %llu float32 parameters of the config",
                       (unsigned long long)params_loc->len, (unsigned long long)*nparams);
    if (*nparams > SIZE_MAX / sizeof(float))
        return bad(c, CRN_ERANGE, 28, "%llu parameters do not fit in memory", (unsigned long long)*nparams);
    return 0;
}

/* CONFIG, second part: the tensor table must be the model's, entry by entry. */
static int check_tensor_table(cursor *c, const pview *m, uint32_t ntensors) {
    int nt = m->nt;
    if (ntensors != (uint32_t)nt)
        return bad(c, CRN_EFORMAT, 36, "tensor table has %u entries, the config implies %d", ntensors, nt);
    for (int k = 0; k < nt; k++) {
        const crn_tensor_info *t = &m->tab[k];
        uint64_t at = c->pos;
        uint32_t nlen;
        int err = rd_u32(c, &nlen, "tensor name length");
        if (err) return err;
        if (nlen == 0 || nlen > TENSOR_NAME_MAX)
            return bad(c, CRN_EFORMAT, at, "tensor %d: name length %u not in [1, %u]", k, nlen, TENSOR_NAME_MAX);
        if ((err = need(c, nlen, "tensor name"))) return err;
        char name[TENSOR_NAME_MAX + 1];
        memcpy(name, c->p + c->pos, nlen);
        name[nlen] = 0;
        for (uint32_t j = 0; j < nlen; j++)
            if (name[j] < 0x21 || name[j] > 0x7e) name[j] = '?'; /* printable in messages */
        c->pos += nlen;
        uint64_t off, rows, cols;
        if ((err = rd_u64(c, &off, "tensor offset")) || (err = rd_u64(c, &rows, "tensor rows")) ||
            (err = rd_u64(c, &cols, "tensor cols")))
            return err;
        if (strlen(t->name) != nlen || memcmp(t->name, c->p + c->pos - 24 - nlen, nlen) != 0)
            return bad(c, CRN_EFORMAT, at, "tensor %d is '%s', the config implies '%s'", k, name, t->name);
        if (off != t->offset || rows != t->rows || cols != t->cols)
            return bad(c, CRN_EFORMAT, at,
                       "tensor %s: offset %llu, shape (%llu, %llu) disagree with the config (%zu, (%zu, %zu))",
                       t->name, (unsigned long long)off, (unsigned long long)rows, (unsigned long long)cols,
                       t->offset, t->rows, t->cols);
    }
    return expect_end(c);
}

static int load_optim(cursor *c, crn_optim **out, size_t nparams) {
    *out = NULL;
    uint32_t kind, nbuf;
    float f[7];
    uint64_t t, n;
    int err;
    if ((err = rd_u32(c, &kind, "optimizer kind"))) return err;
    static const char *const fnames[7] = {"lr", "beta1", "beta2", "eps", "weight_decay", "momentum", "alpha"};
    for (int i = 0; i < 7; i++)
        if ((err = rd_f32(c, &f[i], fnames[i]))) return err;
    if ((err = rd_u64(c, &t, "step count")) || (err = rd_u64(c, &n, "state size")) ||
        (err = rd_u32(c, &nbuf, "buffer count")))
        return err;
    if (kind > CRN_OPT_SGD) return bad(c, CRN_EFORMAT, 0, "unknown optimizer kind %u", kind);
    if (n != nparams)
        return bad(c, CRN_EFORMAT, 40, "optimizer state for %llu parameters, the model has %zu",
                   (unsigned long long)n, nparams);
    if (nbuf > 2 || c->len - c->pos != (uint64_t)nbuf * n * 4)
        return bad(c, CRN_EFORMAT, 48, "%u state buffers of %llu floats do not match the %llu bytes present", nbuf,
                   (unsigned long long)n, (unsigned long long)(c->len - c->pos));
    crn_optim_config oc = {.kind = (enum crn_optim_kind)kind, .lr = f[0], .beta1 = f[1], .beta2 = f[2],
                           .eps = f[3], .weight_decay = f[4], .momentum = f[5], .alpha = f[6]};
    crn_optim *o = NULL;
    err = crn_optim_create(&o, &oc, nparams);
    if (err == CRN_ENOMEM) return err;
    if (err) return bad(c, CRN_EFORMAT, 4, "%s", crn_error_message());
    if (crn_optim_num_buffers(o) != (int)nbuf) {
        int want = crn_optim_num_buffers(o);
        crn_optim_destroy(o);
        return bad(c, CRN_EFORMAT, 48, "%s needs %d state buffers, the file has %u", crn_optim_name(oc.kind),
                   want, nbuf);
    }
    o->t = t;
    for (uint32_t i = 0; i < nbuf; i++) {
        float *buf = crn_optim_buffer(o, (int)i);
        uint64_t at = c->pos;
        decode_f32s(buf, c->p + c->pos, nparams);
        c->pos += (uint64_t)nparams * 4;
        size_t j = first_non_finite(buf, nparams);
        if (j < nparams) {
            crn_optim_destroy(o);
            return bad(c, CRN_EFORMAT, at + 4 * j, "state buffer %u, entry %zu is not finite", i, j);
        }
    }
    *out = o;
    return 0;
}

/* HEAD: the classifier's head, checked field by field; class names unique. */
static int load_head(cursor *c, crn_checkpoint *ck) {
    uint32_t f[6];
    static const char *const what[6] = {"head version", "head kind", "class count", "pooling", "direction", "max length"};
    int err;
    for (int i = 0; i < 6; i++)
        if ((err = rd_u32(c, &f[i], what[i]))) return err;
    if (f[0] != HEAD_VERSION) return bad(c, CRN_EFORMAT, 0, "head version %u unknown (expected %u)", f[0], HEAD_VERSION);
    if (f[2] < 2 || f[2] > CRN_CLF_MAX_CLASSES)
        return bad(c, CRN_EFORMAT, 8, "class count %u not in [2, %u]", f[2], CRN_CLF_MAX_CLASSES);
    if (f[1] != (f[2] == 2 ? 0u : 1u))
        return bad(c, CRN_EFORMAT, 4, "head kind %u does not fit %u classes (0 sigmoid for 2, 1 softmax for more)", f[1], f[2]);
    if (f[3] > CRN_POOL_MAX) return bad(c, CRN_EFORMAT, 12, "unknown pooling %u", f[3]);
    if (f[4] > CRN_BIDIR_ALL) return bad(c, CRN_EFORMAT, 16, "unknown direction %u", f[4]);
    if (f[5] == 0) return bad(c, CRN_EFORMAT, 20, "max length 0");
    ck->clf_cfg.classes = f[2];
    ck->clf_cfg.pool = (enum crn_pool)f[3];
    ck->clf_cfg.bidir = (enum crn_bidir)f[4];
    ck->max_len = f[5];
    ck->class_names = calloc(f[2], sizeof *ck->class_names);
    if (!ck->class_names) return crn_error_set(CRN_ENOMEM, "%s: out of memory", c->path);
    for (uint32_t k = 0; k < f[2]; k++) {
        uint64_t at = c->pos;
        uint32_t n;
        if ((err = rd_u32(c, &n, "class name length"))) return err;
        if (n == 0 || n > CLASS_NAME_MAX) return bad(c, CRN_EFORMAT, at, "class %u: name length %u not in [1, %u]", k, n, CLASS_NAME_MAX);
        if ((err = need(c, n, "class name"))) return err;
        if (crn_utf8_validate(c->p + c->pos, n, NULL) != 0) return bad(c, CRN_EFORMAT, at, "class %u: name is not valid UTF-8", k);
        ck->class_names[k] = malloc(n + 1);
        if (!ck->class_names[k]) return crn_error_set(CRN_ENOMEM, "%s: out of memory", c->path);
        memcpy(ck->class_names[k], c->p + c->pos, n);
        ck->class_names[k][n] = 0;
        c->pos += n;
        for (uint32_t j = 0; j < k; j++)
            if (!strcmp(ck->class_names[j], ck->class_names[k])) return bad(c, CRN_EFORMAT, at, "class %u: duplicate name", k);
    }
    return expect_end(c);
}

int crn_checkpoint_load(crn_checkpoint **out, const char *path) {
    return crn_checkpoint_load_kind(out, path, CRN_CKPT_GENERATOR);
}

int crn_checkpoint_load_kind(crn_checkpoint **out, const char *path, int kinds) {
    *out = NULL;
    uint8_t *b = NULL;
    size_t size = 0;
    int err = read_whole_file(path, &b, &size);
    if (err) return err;
    err = crn_checkpoint_load_mem_kind(out, path, b, size, kinds);
    free(b);
    return err;
}

int crn_checkpoint_load_mem(crn_checkpoint **out, const char *path, const uint8_t *b, size_t size) {
    return crn_checkpoint_load_mem_kind(out, path, b, size, CRN_CKPT_GENERATOR | CRN_CKPT_CLASSIFIER);
}

/* Build the generator or classifier the config (and head) describe, check
 * the tensor table against it and return a view of its parameters. */
static int build_net(cursor *c, crn_checkpoint *ck, uint64_t nparams, uint32_t ntensors, pview *v) {
    int err = ck->class_names ? crn_clf_create(&ck->clf, &ck->clf_cfg) : crn_model_create(&ck->model, &ck->cfg);
    if (err) return err == CRN_ENOMEM ? err : bad(c, CRN_EFORMAT, 0, "%s", crn_error_message());
    *v = ck->clf ? view_of_clf(ck->clf) : view_of_model(ck->model);
    if (v->n != nparams)
        return bad(c, CRN_EFORMAT, 28, "parameter count %llu does not match the model's %zu", (unsigned long long)nparams, v->n);
    return check_tensor_table(c, v, ntensors);
}

int crn_checkpoint_load_mem_kind(crn_checkpoint **out, const char *path, const uint8_t *b, size_t size, int kinds) {
    *out = NULL;
    int err;
    if (!b && size) return crn_error_set(CRN_EINVAL, "%s: no data", path);
    if (!b) b = (const uint8_t *)"";
    crn_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
    sect_loc loc[SECT_KNOWN_MAX + 1];
    memset(loc, 0, sizeof loc);
    if ((err = scan_sections(path, b, size, loc))) goto fail;
    if (loc[SECT_HEAD].present) {
        cursor hc = cursor_of(path, b, &loc[SECT_HEAD], SECT_HEAD);
        if ((err = load_head(&hc, ck))) goto fail;
    }
    if (!(kinds & (ck->class_names ? CRN_CKPT_CLASSIFIER : CRN_CKPT_GENERATOR))) {
        err = ck->class_names
                  ? crn_error_set(CRN_EINVAL, "%s: this is a classifier (%u classes), not a character generator; use "
                                  "'charrnn classify predict|eval' or 'charrnn repl'", path, ck->clf_cfg.classes)
                  : crn_error_set(CRN_EINVAL, "%s: this is a character generator, not a classifier; train one with "
                                  "'charrnn classify train'", path);
        goto fail;
    }

    /* CONFIG: fields, then (with the model built from them) the tensor table. */
    cursor c = cursor_of(path, b, &loc[SECT_CONFIG], SECT_CONFIG);
    uint64_t nparams;
    uint32_t ntensors, features = 0;
    pview v = {0};
    if (loc[SECT_FEATURES].present) {
        cursor fc = cursor_of(path, b, &loc[SECT_FEATURES], SECT_FEATURES);
        if ((err = rd_u32(&fc, &features, "feature bits"))) goto fail;
        if (fc.len != 4) {
            err = bad(&fc, CRN_EFORMAT, 4, "%llu bytes after the feature bits", (unsigned long long)(fc.len - 4));
            goto fail;
        }
        if (features & ~FEATURES_KNOWN) {
            err = bad(&fc, CRN_EFORMAT, 0, "unknown feature bits 0x%x (written by a newer charrnn?)",
                      features & ~FEATURES_KNOWN);
            goto fail;
        }
    }
    if ((err = load_config(&c, &ck->cfg, &nparams, &ntensors, &loc[SECT_PARAMS], ck->class_names ? &ck->clf_cfg : NULL,
                           features)))
        goto fail;
    if ((err = build_net(&c, ck, nparams, ntensors, &v))) goto fail;

    /* VOCAB */
    const sect_loc *vl = &loc[SECT_VOCAB];
    if ((err = crn_vocab_deserialize(&ck->vocab, b + vl->off, (size_t)vl->len))) {
        if (err != CRN_ENOMEM) {
            err = fail_at(CRN_EFORMAT, path, "section VOCAB", vl->off, "%s", crn_error_message());
        }
        goto fail;
    }
    if (crn_vocab_size(ck->vocab) != ck->cfg.vocab) {
        err = fail_at(CRN_EFORMAT, path, "section VOCAB", vl->off,
                      "the vocabulary has %u entries, the config says %u", crn_vocab_size(ck->vocab), ck->cfg.vocab);
        goto fail;
    }

    /* PARAMS (its length was checked against the config above) */
    {
        float *p = v.p;
        const sect_loc *pl = &loc[SECT_PARAMS];
        decode_f32s(p, b + pl->off, (size_t)nparams);
        size_t j = first_non_finite(p, (size_t)nparams);
        if (j < nparams) {
            char what[96];
            describe_param(what, sizeof what, &v, j);
            err = fail_at(CRN_EFORMAT, path, "section PARAMS", pl->off + 4 * (uint64_t)j,
                          "parameter %s is %s (non-finite weights are refused)", what,
                          isnan(p[j]) ? "NaN" : "infinite");
            goto fail;
        }
    }

    if (loc[SECT_OPTIM].present) {
        cursor oc = cursor_of(path, b, &loc[SECT_OPTIM], SECT_OPTIM);
        if ((err = load_optim(&oc, &ck->optim, (size_t)nparams))) goto fail;
    }
    if (loc[SECT_TRAIN].present) {
        const sect_loc *tl = &loc[SECT_TRAIN];
        ck->train_blob = malloc(tl->len ? (size_t)tl->len : 1);
        if (!ck->train_blob) {
            err = crn_error_set(CRN_ENOMEM, "%s: out of memory for the training state", path);
            goto fail;
        }
        memcpy(ck->train_blob, b + tl->off, (size_t)tl->len);
        ck->train_blob_len = (size_t)tl->len;
    }
    *out = ck;
    return 0;
fail:
    crn_checkpoint_destroy(ck);
    return err;
}

void crn_checkpoint_destroy(crn_checkpoint *c) {
    if (!c) return;
    crn_vocab_destroy(c->vocab);
    crn_model_destroy(c->model);
    crn_clf_destroy(c->clf);
    if (c->class_names)
        for (uint32_t k = 0; k < c->clf_cfg.classes; k++) free(c->class_names[k]);
    free(c->class_names);
    crn_optim_destroy(c->optim);
    free(c->train_blob);
    free(c);
}

/* ---- saving ------------------------------------------------------------- */

/* Writes go through this, which keeps the running CRC of the current section
 * and implements the test hook CRN_FAULT_WRITE_AFTER (see checkpoint.h). */
typedef struct writer {
    FILE *f;
    const char *path, *tmp;
    uint64_t written;     /* bytes written to the file so far */
    uint64_t fault_after; /* fail once this many bytes are written (UINT64_MAX: never) */
    uint32_t crc;
    uint64_t sect_left;   /* payload bytes the current section still expects */
    uint8_t chunk[1 << 16];
} writer;

static int w_raw(writer *w, const void *p, size_t n) {
    size_t allowed = n;
    int fault = 0;
    if (w->fault_after != UINT64_MAX && w->written + n > w->fault_after) {
        allowed = w->written >= w->fault_after ? 0 : (size_t)(w->fault_after - w->written);
        fault = 1;
    }
    if (allowed && fwrite(p, 1, allowed, w->f) != allowed) {
        int e = errno;
        return crn_error_set(CRN_EIO, "%s: cannot write %s: %s", w->path, w->tmp, strerror(e ? e : EIO));
    }
    w->written += allowed;
    if (fault)
        return crn_error_set(CRN_EIO, "%s: cannot write %s: %s (simulated by CRN_FAULT_WRITE_AFTER)", w->path,
                             w->tmp, strerror(ENOSPC));
    return 0;
}

static int w_section_begin(writer *w, uint32_t type, uint64_t len) {
    uint8_t h[SECT_HEADER];
    crn_le_put_u32(h, type);
    crn_le_put_u32(h + 4, sect_flags(type));
    crn_le_put_u64(h + 8, len);
    w->crc = crn_crc32(0, h, sizeof h);
    w->sect_left = len;
    return w_raw(w, h, sizeof h);
}

static int w_payload(writer *w, const void *p, size_t n) {
    if (n > w->sect_left)
        return crn_error_set(CRN_EINVAL, "%s: internal error: section payload longer than declared", w->path);
    w->sect_left -= n;
    w->crc = crn_crc32(w->crc, p, n);
    return w_raw(w, p, n);
}

static int w_section_end(writer *w) {
    if (w->sect_left != 0)
        return crn_error_set(CRN_EINVAL, "%s: internal error: section payload shorter than declared", w->path);
    uint8_t c[SECT_CRC];
    crn_le_put_u32(c, w->crc);
    return w_raw(w, c, sizeof c);
}

/* n floats, little-endian, through the chunk buffer (no full-size copy). */
static int w_floats(writer *w, const float *x, size_t n) {
    const size_t per = sizeof w->chunk / 4;
    for (size_t i = 0; i < n; i += per) {
        size_t k = CRN_MIN(per, n - i);
        encode_f32s(w->chunk, x + i, k);
        int err = w_payload(w, w->chunk, k * 4);
        if (err) return err;
    }
    return 0;
}

static uint64_t fault_hook(void) {
#if defined(CRN_TEST_HOOKS) && CRN_TEST_HOOKS
    const char *e = getenv("CRN_FAULT_WRITE_AFTER");
    if (!e || !*e) return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(e, &end, 10);
    if (errno || *end || e[0] == '-') return UINT64_MAX;
    return (uint64_t)v;
#else
    return UINT64_MAX; /* production builds: never */
#endif
}

/* The CONFIG payload (model config, parameter count, tensor table). */
static int encode_config(uint8_t **out, size_t *out_len, const crn_model_config *cfg, const pview *m) {
    int nt = m->nt;
    size_t len = CONFIG_FIXED;
    for (int k = 0; k < nt; k++) len += 4 + strlen(m->tab[k].name) + 24;
    uint8_t *b = malloc(len), *p = b;
    if (!b) return crn_error_set(CRN_ENOMEM, "out of memory encoding the model config");
    crn_le_put_u32(p, (uint32_t)cfg->cell);
    crn_le_put_u32(p + 4, (uint32_t)cfg->act);
    crn_le_put_u32(p + 8, cfg->vocab);
    crn_le_put_u32(p + 12, cfg->embed);
    crn_le_put_u32(p + 16, cfg->hidden);
    crn_le_put_u32(p + 20, cfg->layers);
    crn_le_put_f32(p + 24, cfg->dropout);
    crn_le_put_u64(p + 28, m->n);
    crn_le_put_u32(p + 36, (uint32_t)nt);
    p += CONFIG_FIXED;
    for (int k = 0; k < nt; k++) {
        const crn_tensor_info *t = &m->tab[k];
        size_t nl = strlen(t->name);
        crn_le_put_u32(p, (uint32_t)nl);
        memcpy(p + 4, t->name, nl);
        crn_le_put_u64(p + 4 + nl, t->offset);
        crn_le_put_u64(p + 12 + nl, t->rows);
        crn_le_put_u64(p + 20 + nl, t->cols);
        p += 4 + nl + 24;
    }
    *out = b;
    *out_len = len;
    return 0;
}

/* What one save writes (head: the HEAD payload of a classifier, or NULL). */
typedef struct save_parts {
    const uint8_t *config, *vocab, *head;
    size_t config_len, vocab_len, head_len;
    uint32_t features; /* the FEATURES bits, 0 = no section */
} save_parts;

static int write_all(writer *w, const save_parts *sp, const float *params, size_t nparams, const crn_optim *optim,
                     const uint8_t *train_blob, size_t train_blob_len) {
    const uint8_t *config = sp->config, *vocab = sp->vocab;
    const size_t config_len = sp->config_len, vocab_len = sp->vocab_len;
    int err;
    uint8_t h[CKPT_HEADER];
    memcpy(h, CKPT_MAGIC, CKPT_MAGIC_LEN);
    crn_le_put_u32(h + 8, CKPT_VERSION);
    crn_le_put_u32(h + 12, 3u + (optim != NULL) + (train_blob != NULL) + (sp->head != NULL) + (sp->features != 0));
    if ((err = w_raw(w, h, sizeof h))) return err;

    if (sp->head && ((err = w_section_begin(w, SECT_HEAD, sp->head_len)) || (err = w_payload(w, sp->head, sp->head_len)) ||
                     (err = w_section_end(w))))
        return err;
    if ((err = w_section_begin(w, SECT_CONFIG, config_len)) || (err = w_payload(w, config, config_len)) ||
        (err = w_section_end(w)))
        return err;
    if ((err = w_section_begin(w, SECT_VOCAB, vocab_len)) || (err = w_payload(w, vocab, vocab_len)) ||
        (err = w_section_end(w)))
        return err;
    if ((err = w_section_begin(w, SECT_PARAMS, (uint64_t)nparams * 4)) || (err = w_floats(w, params, nparams)) ||
        (err = w_section_end(w)))
        return err;
    if (sp->features) {
        uint8_t fb[4];
        crn_le_put_u32(fb, sp->features);
        if ((err = w_section_begin(w, SECT_FEATURES, sizeof fb)) || (err = w_payload(w, fb, sizeof fb)) ||
            (err = w_section_end(w)))
            return err;
    }
    if (optim) {
        crn_optim *o = (crn_optim *)optim; /* crn_optim_buffer takes a non-const handle; we only read */
        int nbuf = crn_optim_num_buffers(o);
        uint8_t oh[OPTIM_FIXED];
        const crn_optim_config *c = &optim->cfg;
        crn_le_put_u32(oh, (uint32_t)c->kind);
        crn_le_put_f32(oh + 4, c->lr);
        crn_le_put_f32(oh + 8, c->beta1);
        crn_le_put_f32(oh + 12, c->beta2);
        crn_le_put_f32(oh + 16, c->eps);
        crn_le_put_f32(oh + 20, c->weight_decay);
        crn_le_put_f32(oh + 24, c->momentum);
        crn_le_put_f32(oh + 28, c->alpha);
        crn_le_put_u64(oh + 32, optim->t);
        crn_le_put_u64(oh + 40, optim->n);
        crn_le_put_u32(oh + 48, (uint32_t)nbuf);
        if ((err = w_section_begin(w, SECT_OPTIM, OPTIM_FIXED + (uint64_t)nbuf * optim->n * 4)) ||
            (err = w_payload(w, oh, sizeof oh)))
            return err;
        for (int i = 0; i < nbuf; i++)
            if ((err = w_floats(w, crn_optim_buffer(o, i), optim->n))) return err;
        if ((err = w_section_end(w))) return err;
    }
    if (train_blob) {
        if ((err = w_section_begin(w, SECT_TRAIN, train_blob_len)) ||
            (err = w_payload(w, train_blob, train_blob_len)) || (err = w_section_end(w)))
            return err;
    }
    return 0;
}

/* Directory part of path ("." if none), into buf. */
static void dir_of(char *buf, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == path) snprintf(buf, cap, "/");
    else snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

/* Everything the caller hands us, checked before a byte is written. */
static int check_save_args(const char *path, const crn_model_config *cfg, const crn_vocab *vocab, const pview *model,
                           const crn_optim *optim, const uint8_t *train_blob, size_t train_blob_len) {
    if (crn_vocab_size(vocab) != cfg->vocab)
        return crn_error_set(CRN_EINVAL, "%s: save: the vocabulary has %u entries, the config says %u", path,
                             crn_vocab_size(vocab), cfg->vocab);
    size_t n = model->n;
    const float *p = model->p;
    size_t j = first_non_finite(p, n);
    if (j < n) {
        char what[96];
        describe_param(what, sizeof what, model, j);
        return crn_error_set(CRN_ENONFINITE, "%s: refusing to save: parameter %s is %s", path, what,
                             isnan(p[j]) ? "NaN" : "infinite");
    }
    if (optim) {
        if (optim->n != n)
            return crn_error_set(CRN_EINVAL, "%s: save: optimizer state for %zu parameters, the model has %zu", path,
                                 optim->n, n);
        crn_optim *o = (crn_optim *)optim;
        for (int i = 0; i < crn_optim_num_buffers(o); i++) {
            size_t k = first_non_finite(crn_optim_buffer(o, i), n);
            if (k < n)
                return crn_error_set(CRN_ENONFINITE, "%s: refusing to save: optimizer state %d, entry %zu is not finite",
                                     path, i, k);
        }
    }
    if (!train_blob && train_blob_len)
        return crn_error_set(CRN_EINVAL, "%s: save: training state of %zu bytes without data", path, train_blob_len);
    return 0;
}

static int save_net(const char *path, const crn_model_config *cfg, const crn_vocab *vocab, const pview *model,
                    const uint8_t *head, size_t head_len, const crn_optim *optim, const uint8_t *train_blob,
                    size_t train_blob_len);

int crn_checkpoint_save(const char *path, const crn_model_config *cfg, const crn_vocab *vocab, crn_model *model,
                        const crn_optim *optim, const uint8_t *train_blob, size_t train_blob_len) {
    if (!path || !*path) return crn_error_set(CRN_EINVAL, "save: empty output path");
    if (!cfg || !vocab || !model) return crn_error_set(CRN_EINVAL, "%s: save: missing config, vocabulary or model", path);
    if (crn_model_config_check(cfg)) return crn_error_prefix(CRN_EINVAL, "%s: save", path);
    const crn_model_config *mc = crn_model_config_of(model);
    if (mc->cell != cfg->cell || mc->act != cfg->act || mc->vocab != cfg->vocab || mc->embed != cfg->embed ||
        mc->hidden != cfg->hidden || mc->layers != cfg->layers || mc->layer_norm != cfg->layer_norm)
        return crn_error_set(CRN_EINVAL, "%s: save: the config does not describe the model's layout", path);
    pview v = view_of_model(model);
    return save_net(path, cfg, vocab, &v, NULL, 0, optim, train_blob, train_blob_len);
}

int crn_checkpoint_save_clf(const char *path, const crn_vocab *vocab, crn_clf *clf, const char *const *class_names,
                            uint32_t max_len, const crn_optim *optim, const uint8_t *train_blob,
                            size_t train_blob_len) {
    if (!path || !*path) return crn_error_set(CRN_EINVAL, "save: empty output path");
    if (!vocab || !clf || !class_names || max_len == 0)
        return crn_error_set(CRN_EINVAL, "%s: save: missing vocabulary, classifier, class names or max length", path);
    const crn_clf_config *cc = crn_clf_config_of(clf);
    if (crn_clf_config_check(cc)) return crn_error_prefix(CRN_EINVAL, "%s: save", path);
    size_t len = HEAD_FIXED;
    for (uint32_t k = 0; k < cc->classes; k++) {
        size_t n = class_names[k] ? strlen(class_names[k]) : 0;
        if (n == 0 || n > CLASS_NAME_MAX)
            return crn_error_set(CRN_EINVAL, "%s: save: class %u: name length %zu not in [1, %u]", path, k, n, CLASS_NAME_MAX);
        len += 4 + n;
    }
    uint8_t *h = malloc(len), *q = h;
    if (!h) return crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
    const uint32_t f[6] = {HEAD_VERSION, cc->classes == 2 ? 0u : 1u, cc->classes, (uint32_t)cc->pool,
                           (uint32_t)cc->bidir, max_len};
    for (int i = 0; i < 6; i++, q += 4) crn_le_put_u32(q, f[i]);
    for (uint32_t k = 0; k < cc->classes; k++) {
        size_t n = strlen(class_names[k]);
        crn_le_put_u32(q, (uint32_t)n);
        memcpy(q + 4, class_names[k], n);
        q += 4 + n;
    }
    pview v = view_of_clf(clf);
    int err = save_net(path, &cc->base, vocab, &v, h, len, optim, train_blob, train_blob_len);
    free(h);
    return err;
}

static int save_net(const char *path, const crn_model_config *cfg, const crn_vocab *vocab, const pview *model,
                    const uint8_t *head, size_t head_len, const crn_optim *optim, const uint8_t *train_blob,
                    size_t train_blob_len) {
    int err = check_save_args(path, cfg, vocab, model, optim, train_blob, train_blob_len);
    if (err) return err;
    uint8_t *config = NULL, *vbytes = NULL;
    size_t config_len = 0, vocab_len = 0;
    char *tmp = NULL;
    writer *w = NULL;
    int fd = -1;
    if ((err = encode_config(&config, &config_len, cfg, model))) goto out;
    if ((err = crn_vocab_serialize(vocab, &vbytes, &vocab_len))) {
        crn_error_prefix(err, "%s: save", path);
        goto out;
    }
    size_t plen = strlen(path);
    tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    w = calloc(1, sizeof *w);
    if (!tmp || !w) {
        err = crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        char dir[4096];
        dir_of(dir, sizeof dir, path);
        err = crn_error_set(CRN_EIO, "%s: cannot create a temporary file in directory '%s': %s", path, dir,
                            strerror(e));
        free(tmp);
        tmp = NULL; /* nothing to remove */
        goto out;
    }
    /* mkstemp makes the file 0600; a model file is as readable as any file
     * the user creates (or keeps the mode of the file it replaces). */
    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) mode = st.st_mode & 07777;
    (void)fchmod(fd, mode);
    *w = (writer){.f = fdopen(fd, "wb"), .path = path, .tmp = tmp, .fault_after = fault_hook()};
    if (!w->f) {
        int e = errno;
        err = crn_error_set(CRN_EIO, "%s: cannot open %s: %s", path, tmp, strerror(e));
        goto out;
    }
    fd = -1; /* owned by the FILE now */
    save_parts sp = {config, vbytes, head, config_len, vocab_len, head_len, cfg->layer_norm ? FEATURE_LAYER_NORM : 0};
    err = write_all(w, &sp, model->p, model->n, optim, train_blob, train_blob_len);
    if (!err && fflush(w->f) != 0) {
        int e = errno;
        err = crn_error_set(CRN_EIO, "%s: cannot write %s: %s", path, tmp, strerror(e));
    }
    if (!err && fsync(fileno(w->f)) != 0) {
        int e = errno;
        err = crn_error_set(CRN_EIO, "%s: cannot fsync %s: %s", path, tmp, strerror(e));
    }
    if (fclose(w->f) != 0 && !err) {
        int e = errno;
        err = crn_error_set(CRN_EIO, "%s: cannot close %s: %s", path, tmp, strerror(e));
    }
    w->f = NULL;
    if (err) goto out;
    if (rename(tmp, path) != 0) {
        int e = errno;
        err = crn_error_set(CRN_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(e));
        goto out;
    }
    free(tmp);
    tmp = NULL; /* renamed: nothing to remove */
    /* Make the rename itself durable. Filesystems that cannot fsync a
     * directory say EINVAL; there is nothing more to do on those. */
    char dir[4096];
    dir_of(dir, sizeof dir, path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
            int e = errno;
            err = crn_error_set(CRN_EIO, "%s: saved, but cannot fsync directory '%s': %s", path, dir, strerror(e));
        }
        close(dfd);
    }
out:
    if (fd >= 0) close(fd);
    if (w && w->f) fclose(w->f);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(w);
    free(config);
    free(vbytes);
    return err;
}
