/* idcache.h — a corpus's token ids in a file, mapped read-only, so training
 * holds no id array (memory does not grow with the corpus).
 *
 * The file (by default MODEL.ids, next to the model) is written once, to a
 * temporary file renamed over the target, and reused while its header
 * matches: the corpus file's size, mtime and CRC-32, a CRC-32 of everything
 * that changes the ids (unit, normalisation, invalid-byte policy, min count,
 * validation fraction, cleaning patterns, a given vocabulary), the header's
 * own CRC, and the ids' CRC and range (checked at open, one pass). Anything
 * else is a stale or damaged cache, which the corpus loader rebuilds. The
 * file is in this machine's byte order (a cache, not an exchange format). */
#ifndef CRN_IDCACHE_H
#define CRN_IDCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "vocab.h"

enum crn_idcache_status {
    CRN_IDCACHE_NONE = 0, /* no cache: ids in memory */
    CRN_IDCACHE_REUSED,   /* a valid cache was mapped */
    CRN_IDCACHE_CREATED,  /* there was none: written */
    CRN_IDCACHE_STALE,    /* the corpus or the options changed: rewritten */
    CRN_IDCACHE_DAMAGED,  /* truncated or corrupt: rewritten */
};
const char *crn_idcache_status_name(enum crn_idcache_status s);

/* What the header records besides the vocabulary and the ids (64-bit
 * fields only: the struct is written as it is, without padding). */
typedef struct crn_idcache_meta {
    uint64_t file_size;
    int64_t mtime_s, mtime_ns;
    uint64_t file_crc, key_crc;
    uint64_t n_tokens;
    uint64_t wide;
    uint64_t n_chars, n_nfc_chars, n_val_chars, n_invalid, n_unk, n_lines_dropped;
    uint64_t had_bom;
    uint64_t built; /* the vocabulary was built from the text (else given) */
} crn_idcache_meta;

/* A read-only mapping of a cache file. */
typedef struct crn_idcache_map {
    void *base;
    size_t len;
    const void *ids; /* n_tokens ids inside base */
} crn_idcache_map;
void crn_idcache_unmap(crn_idcache_map *m); /* zeroed or unmapped map: a no-op */

/* Open path if it matches want (file_size, mtime, file_crc, key_crc) and
 * its vocabulary is the given one (given == NULL: one built from the text,
 * with the options the key covers). On a match: *got = the header, *vocab = its vocabulary (caller frees), *map the
 * ids; returns CRN_IDCACHE_REUSED. Returns CRN_IDCACHE_CREATED (no file),
 * STALE or DAMAGED without touching the outputs, or a negative error
 * (unreadable file, out of memory). */
int crn_idcache_open(const char *path, const crn_idcache_meta *want, const crn_vocab *given, crn_idcache_meta *got,
                     crn_vocab **vocab, crn_idcache_map *map);

/* Writing: begin (temporary file next to path; fails with a message naming
 * the directory if it is not writable), put ids in order, map what was
 * written (to finish computing the statistics), commit (header, fsync,
 * rename) or abort (remove the temporary file). */
typedef struct crn_idcache_writer crn_idcache_writer;
int crn_idcache_begin(crn_idcache_writer **out, const char *path, const crn_vocab *vocab, uint64_t n_tokens,
                      int wide);
int crn_idcache_put(crn_idcache_writer *w, const uint32_t *ids /* (n) */, size_t n);
int crn_idcache_map_written(crn_idcache_writer *w, crn_idcache_map *map);
int crn_idcache_commit(crn_idcache_writer *w, const crn_idcache_meta *meta); /* frees w */
void crn_idcache_abort(crn_idcache_writer *w); /* NULL is a no-op; frees w */

/* Hand mapped pages of ids [from, to) back to the kernel (whole pages only),
 * so reading the ids once keeps resident memory flat. */
void crn_idcache_release(const crn_idcache_map *map, int wide, size_t from, size_t to);

#endif
