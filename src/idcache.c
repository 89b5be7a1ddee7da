/* idcache.c — token ids in a mapped file (see idcache.h).
 *
 * Layout: a fixed header of 64-bit fields, the serialised vocabulary, zero
 * padding to a page, then n_tokens ids (uint16 or uint32). */
#include "idcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define IDC_MAGIC "CRNIDS02" /* 02: n_nfc_chars in the header */
#define IDC_ENDIAN 0x0102030405060708ull
#define IDC_ALIGN 4096u

typedef struct idc_header {
    char magic[8];
    uint64_t endian, ids_off, vocab_len;
    crn_idcache_meta m;
    uint64_t ids_crc;
    uint64_t header_crc; /* of the fields above and the vocabulary bytes */
} idc_header;

const char *crn_idcache_status_name(enum crn_idcache_status s) {
    switch (s) {
    case CRN_IDCACHE_NONE: return "none";
    case CRN_IDCACHE_REUSED: return "reused";
    case CRN_IDCACHE_CREATED: return "created";
    case CRN_IDCACHE_STALE: return "stale, rebuilt";
    case CRN_IDCACHE_DAMAGED: return "truncated or corrupt, rebuilt";
    }
    return "?";
}

void crn_idcache_unmap(crn_idcache_map *m) {
    if (m && m->base) munmap(m->base, m->len);
    if (m) memset(m, 0, sizeof *m);
}

void crn_idcache_release(const crn_idcache_map *map, int wide, size_t from, size_t to) {
    if (!map || !map->base || to <= from) return;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    size_t w = wide ? 4 : 2;
    size_t n = (map->len - (size_t)((const uint8_t *)map->ids - (const uint8_t *)map->base)) / w;
    if (to > n) to = n;
    if (to <= from) return;
    uintptr_t lo = (uintptr_t)map->ids + from * w, hi = (uintptr_t)map->ids + to * w;
    lo = (lo + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    hi = hi / (uintptr_t)pg * (uintptr_t)pg;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static uint64_t header_crc(const idc_header *h, const uint8_t *vocab) {
    uint32_t crc = crn_crc32(0, h, offsetof(idc_header, header_crc));
    return crn_crc32(crc, vocab, (size_t)h->vocab_len);
}

/* CRC of the ids and whether all are < V, one pass with pages released. */
static int check_ids(const crn_idcache_map *m, int wide, uint64_t n, uint32_t V, uint32_t *crc_out) {
    const size_t chunk = (size_t)1 << 20;
    uint32_t crc = 0;
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? (size_t)(n - at) : chunk;
        if (wide) {
            const uint32_t *p = (const uint32_t *)m->ids + at;
            for (size_t i = 0; i < k; i++)
                if (p[i] >= V) return 0;
            crc = crn_crc32(crc, p, k * 4);
        } else {
            const uint16_t *p = (const uint16_t *)m->ids + at;
            for (size_t i = 0; i < k; i++)
                if (p[i] >= V) return 0;
            crc = crn_crc32(crc, p, k * 2);
        }
        crn_idcache_release(m, wide, at, at + k);
    }
    *crc_out = crc;
    return 1;
}

/* Is the cached vocabulary (ser, n) the one wanted: built from the text,
 * or equal to the given one? */
static int vocab_matches(const idc_header *h, const uint8_t *ser, const crn_vocab *given) {
    if (!given) return h->m.built == 1;
    uint8_t *g;
    size_t gn;
    if (crn_vocab_serialize(given, &g, &gn) < 0) {
        crn_error_clear();
        return 0;
    }
    int same = gn == h->vocab_len && memcmp(g, ser, gn) == 0;
    free(g);
    return same;
}

int crn_idcache_open(const char *path, const crn_idcache_meta *want, const crn_vocab *given, crn_idcache_meta *got,
                     crn_vocab **vocab, crn_idcache_map *map) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return CRN_IDCACHE_CREATED;
        return crn_error_set(CRN_EIO, "%s: cannot open the token id cache: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return crn_error_set(CRN_EIO, "%s: the token id cache is not a regular file", path);
    }
    if ((uint64_t)st.st_size < sizeof(idc_header) || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return CRN_IDCACHE_DAMAGED;
    }
    size_t len = (size_t)st.st_size;
    void *base = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return crn_error_set(CRN_EIO, "%s: cannot map the token id cache: %s", path, strerror(errno));
    crn_idcache_map m = {.base = base, .len = len};
    idc_header h;
    memcpy(&h, base, sizeof h);
    int rc = CRN_IDCACHE_DAMAGED;
    if (memcmp(h.magic, IDC_MAGIC, 8) != 0 || h.endian != IDC_ENDIAN || h.vocab_len > len - sizeof h ||
        h.ids_off < sizeof h + h.vocab_len || h.ids_off > len || h.m.wide > 1 ||
        header_crc(&h, (const uint8_t *)base + sizeof h) != h.header_crc)
        goto out;
    if (h.m.file_size != want->file_size || h.m.mtime_s != want->mtime_s || h.m.mtime_ns != want->mtime_ns ||
        h.m.file_crc != want->file_crc || h.m.key_crc != want->key_crc ||
        !vocab_matches(&h, (const uint8_t *)base + sizeof h, given)) {
        rc = CRN_IDCACHE_STALE;
        goto out;
    }
    const uint64_t width = h.m.wide ? 4 : 2;
    if (h.m.n_tokens > (len - h.ids_off) / width || h.ids_off + h.m.n_tokens * width != len)
        goto out; /* truncated (or grown) */
    crn_vocab *v = NULL;
    if (crn_vocab_deserialize(&v, (const uint8_t *)base + sizeof h, (size_t)h.vocab_len) < 0) {
        crn_error_clear();
        goto out;
    }
    m.ids = (const uint8_t *)base + h.ids_off;
    uint32_t crc;
    if (!check_ids(&m, (int)h.m.wide, h.m.n_tokens, crn_vocab_size(v), &crc) || crc != h.ids_crc) {
        crn_vocab_destroy(v);
        goto out;
    }
    *got = h.m;
    *vocab = v;
    *map = m;
    return CRN_IDCACHE_REUSED;
out:
    crn_idcache_unmap(&m);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* writing */

struct crn_idcache_writer {
    char *path, *tmp;
    int fd;
    idc_header h;
    uint8_t *vbytes;
    uint64_t n_put;
    uint32_t crc;
    uint8_t buf[1 << 16];
    size_t nbuf;
};

static int write_at(crn_idcache_writer *w, const void *p, size_t n, off_t off) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = pwrite(w->fd, b, n, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return crn_error_set(CRN_EIO, "%s: cannot write the token id cache %s: %s", w->path, w->tmp,
                                         k < 0 ? strerror(errno) : "short write");
        b += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

static int flush_buf(crn_idcache_writer *w) {
    if (!w->nbuf) return 0;
    size_t width = w->h.m.wide ? 4 : 2;
    off_t off = (off_t)(w->h.ids_off + w->n_put * width - w->nbuf);
    int err = write_at(w, w->buf, w->nbuf, off);
    w->crc = crn_crc32(w->crc, w->buf, w->nbuf);
    w->nbuf = 0;
    return err;
}

int crn_idcache_begin(crn_idcache_writer **out, const char *path, const crn_vocab *vocab, uint64_t n_tokens,
                      int wide) {
    *out = NULL;
    crn_idcache_writer *w = calloc(1, sizeof *w);
    size_t plen = strlen(path);
    if (w) w->path = strdup(path);
    if (w) w->tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    int err;
    if (!w || !w->path || !w->tmp) {
        err = crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    w->fd = -1;
    memcpy(w->tmp, path, plen);
    memcpy(w->tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    w->fd = mkstemp(w->tmp);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;
        err = crn_error_set(CRN_EIO, "%s: cannot create the token id cache: %s (it is kept next to the model; "
                            "make that directory writable)", path, strerror(e));
        goto fail;
    }
    (void)fchmod(w->fd, 0644);
    size_t vlen;
    if ((err = crn_vocab_serialize(vocab, &w->vbytes, &vlen))) goto fail;
    memcpy(w->h.magic, IDC_MAGIC, 8);
    w->h.endian = IDC_ENDIAN;
    w->h.vocab_len = vlen;
    w->h.ids_off = (sizeof w->h + vlen + IDC_ALIGN - 1) / IDC_ALIGN * IDC_ALIGN;
    w->h.m.n_tokens = n_tokens;
    w->h.m.wide = wide != 0;
    *out = w;
    return 0;
fail:
    crn_idcache_abort(w);
    return err;
}

int crn_idcache_put(crn_idcache_writer *w, const uint32_t *ids, size_t n) {
    if (n > w->h.m.n_tokens - w->n_put)
        return crn_error_set(CRN_ERANGE, "%s: more ids than counted", w->path);
    size_t width = w->h.m.wide ? 4 : 2;
    for (size_t i = 0; i < n; i++) {
        if (w->nbuf + width > sizeof w->buf) {
            int err = flush_buf(w);
            if (err) return err;
        }
        if (w->h.m.wide) {
            memcpy(w->buf + w->nbuf, &ids[i], 4);
        } else {
            uint16_t v = (uint16_t)ids[i];
            memcpy(w->buf + w->nbuf, &v, 2);
        }
        w->nbuf += width;
        w->n_put++;
    }
    return 0;
}

int crn_idcache_map_written(crn_idcache_writer *w, crn_idcache_map *map) {
    memset(map, 0, sizeof *map);
    int err = flush_buf(w);
    if (err) return err;
    if (w->n_put != w->h.m.n_tokens)
        return crn_error_set(CRN_ERANGE, "%s: %llu ids written, %llu counted", w->path,
                             (unsigned long long)w->n_put, (unsigned long long)w->h.m.n_tokens);
    size_t len = (size_t)(w->h.ids_off + w->h.m.n_tokens * (w->h.m.wide ? 4 : 2));
    if (ftruncate(w->fd, (off_t)len) != 0)
        return crn_error_set(CRN_EIO, "%s: cannot size the token id cache: %s", w->path, strerror(errno));
    void *base = mmap(NULL, len, PROT_READ, MAP_SHARED, w->fd, 0);
    if (base == MAP_FAILED)
        return crn_error_set(CRN_EIO, "%s: cannot map the token id cache: %s", w->path, strerror(errno));
    *map = (crn_idcache_map){.base = base, .len = len, .ids = (const uint8_t *)base + w->h.ids_off};
    return 0;
}

int crn_idcache_commit(crn_idcache_writer *w, const crn_idcache_meta *m) {
    idc_header *h = &w->h;
    h->m = *m;
    h->ids_crc = w->crc;
    h->header_crc = header_crc(h, w->vbytes);
    int err = write_at(w, h, sizeof *h, 0);
    if (!err) err = write_at(w, w->vbytes, (size_t)h->vocab_len, (off_t)sizeof *h);
    if (!err && fsync(w->fd) != 0)
        err = crn_error_set(CRN_EIO, "%s: cannot fsync %s: %s", w->path, w->tmp, strerror(errno));
    if (!err && rename(w->tmp, w->path) != 0)
        err = crn_error_set(CRN_EIO, "%s: cannot rename %s over it: %s", w->path, w->tmp, strerror(errno));
    if (!err) {
        free(w->tmp);
        w->tmp = NULL; /* renamed: nothing to remove */
    }
    crn_idcache_abort(w);
    return err;
}

void crn_idcache_abort(crn_idcache_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->vbytes);
    free(w);
}
