/* vocab.c — token <-> id tables, counting, encode/decode, (de)serialisation.
 *
 * Storage: every token's bytes live in one arena; tok[] holds (offset,
 * length, count). Two indexes map a token to its slot:
 *   - tokens that are a single code point (all of them in codepoint and jamo
 *     units, most in grapheme unit) go through a two-level direct table,
 *     page[cp >> 8][cp & 255], pages allocated on first use — the hot path
 *     of counting and encoding is then a decode and two loads;
 *   - longer tokens (multi-code-point grapheme clusters) go through an
 *     open-addressing hash table keyed by their bytes.
 * Both store the token's slot in tok[]. tok[0] is always <unk> and is never
 * indexed, so a table value 0 means "absent" — after finalize, when slot ==
 * id, that is CRN_UNK without a branch. (Before finalize slots are in order
 * of first appearance and <unk>'s count is 0.)
 *
 * Extension keeps the ids of a finalized vocabulary and appends a new run of
 * tokens sorted by bytes; runs[] records the run lengths so that a
 * deserialised vocabulary can check that each run is sorted. */
#include "vocab.h"

#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "common.h"

#define CP_LIMIT 0x110000
#define NPAGES (CP_LIMIT >> 8)

typedef struct tok_entry {
    size_t off;     /* bytes at arena + off */
    uint32_t len;
    uint64_t count;
} tok_entry;

struct crn_vocab {
    enum crn_unit unit;
    enum crn_norm norm;
    int finalized;

    uint8_t *arena;
    size_t arena_len, arena_cap;

    tok_entry *tok; /* finalized: indexed by id, tok[0] = <unk> */
    uint32_t ntok, tokcap;

    uint32_t *page[NPAGES]; /* single-code-point tokens: slot, 0 = absent */
    uint32_t *ht;           /* multi-code-point tokens: slot, 0 = empty */
    size_t htcap, htused;   /* htcap a power of two (or 0) */

    uint32_t *runs; /* lengths of the sorted runs of ids 1.. */
    uint32_t nruns;

    size_t max_len; /* longest token in bytes */
};

/* ---- small helpers ------------------------------------------------------ */

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return (alen > blen) - (alen < blen);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* If tok[0..len) is exactly one valid code point (not NUL), return it, else -1. */
static int32_t single_cp(const uint8_t *tok, size_t len) {
    int32_t cp;
    if (len == 0 || len > 4) return -1;
    int k = crn_utf8_decode(tok, len, &cp);
    return (k == (int)len && cp != 0) ? cp : -1;
}

static inline uint32_t cp_get(const crn_vocab *v, int32_t cp) {
    const uint32_t *pg = v->page[cp >> 8];
    return pg ? pg[cp & 255] : 0;
}

static int cp_set(crn_vocab *v, int32_t cp, uint32_t val) {
    uint32_t **pg = &v->page[cp >> 8];
    if (!*pg && !(*pg = calloc(256, sizeof **pg))) return CRN_ENOMEM;
    (*pg)[cp & 255] = val;
    return 0;
}

static uint32_t ht_get(const crn_vocab *v, const uint8_t *p, size_t n) {
    if (!v->htcap) return 0;
    size_t mask = v->htcap - 1, i = (size_t)hash_bytes(p, n) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t s = v->ht[i];
        if (!s) return 0;
        const tok_entry *t = &v->tok[s];
        if (t->len == n && memcmp(v->arena + t->off, p, n) == 0) return s;
    }
}

/* Insert val for bytes known to be absent; grows at load 1/2. */
static int ht_put(crn_vocab *v, const uint8_t *p, size_t n, uint32_t val) {
    if ((v->htused + 1) * 2 > v->htcap) {
        size_t ncap = v->htcap ? v->htcap * 2 : 64;
        uint32_t *nt = calloc(ncap, sizeof *nt);
        if (!nt) return CRN_ENOMEM;
        for (size_t j = 0; j < v->htcap; j++) {
            uint32_t s = v->ht[j];
            if (!s) continue;
            const tok_entry *t = &v->tok[s];
            size_t i = (size_t)hash_bytes(v->arena + t->off, t->len) & (ncap - 1);
            while (nt[i]) i = (i + 1) & (ncap - 1);
            nt[i] = s;
        }
        free(v->ht);
        v->ht = nt;
        v->htcap = ncap;
    }
    size_t mask = v->htcap - 1, i = (size_t)hash_bytes(p, n) & mask;
    while (v->ht[i]) i = (i + 1) & mask;
    v->ht[i] = val;
    v->htused++;
    return 0;
}

/* Slot of a token given by its bytes, 0 if absent. */
static uint32_t find(const crn_vocab *v, const uint8_t *p, size_t n) {
    int32_t cp = single_cp(p, n);
    return cp >= 0 ? cp_get(v, cp) : ht_get(v, p, n);
}

/* Append a token entry (bytes copied to the arena) and return its slot. */
static long long add_entry(crn_vocab *v, const uint8_t *p, size_t n, uint64_t count) {
    if (n > UINT32_MAX || v->ntok == UINT32_MAX - 1)
        return crn_error_set(CRN_ERANGE, "vocabulary too large (%u tokens)", v->ntok);
    if (v->ntok == v->tokcap) {
        uint32_t ncap = v->tokcap ? (v->tokcap > UINT32_MAX / 2 ? UINT32_MAX : v->tokcap * 2) : 256;
        tok_entry *nt = realloc(v->tok, (size_t)ncap * sizeof *nt);
        if (!nt) return crn_error_set(CRN_ENOMEM, "out of memory growing the vocabulary");
        v->tok = nt;
        v->tokcap = ncap;
    }
    if (n > v->arena_cap - v->arena_len) {
        size_t ncap = v->arena_cap ? v->arena_cap : 4096;
        while (ncap - v->arena_len < n) {
            if (ncap > SIZE_MAX / 2) return crn_error_set(CRN_ENOMEM, "out of memory growing the vocabulary");
            ncap *= 2;
        }
        uint8_t *na = realloc(v->arena, ncap);
        if (!na) return crn_error_set(CRN_ENOMEM, "out of memory growing the vocabulary");
        v->arena = na;
        v->arena_cap = ncap;
    }
    memcpy(v->arena + v->arena_len, p, n);
    v->tok[v->ntok] = (tok_entry){v->arena_len, (uint32_t)n, count};
    v->arena_len += n;
    if (n > v->max_len) v->max_len = n;
    return v->ntok++;
}

/* Add an entry and index it. cp is the token's code point if it is a single
 * one, else -1. */
static long long add_indexed(crn_vocab *v, const uint8_t *p, size_t n, int32_t cp, uint64_t count) {
    long long slot = add_entry(v, p, n, count);
    if (slot < 0) return slot;
    int rc = cp >= 0 ? cp_set(v, cp, (uint32_t)slot) : ht_put(v, p, n, (uint32_t)slot);
    if (rc < 0) {
        v->ntok--;
        v->arena_len -= n;
        return crn_error_set(CRN_ENOMEM, "out of memory indexing the vocabulary");
    }
    return slot;
}

static void clear_index(crn_vocab *v) {
    for (size_t i = 0; i < NPAGES; i++) {
        free(v->page[i]);
        v->page[i] = NULL;
    }
    free(v->ht);
    v->ht = NULL;
    v->htcap = v->htused = 0;
}

/* ---- create / destroy --------------------------------------------------- */

int crn_vocab_create(crn_vocab **out, enum crn_unit unit, enum crn_norm norm) {
    *out = NULL;
    if ((unsigned)unit > CRN_UNIT_JAMO) return crn_error_set(CRN_EINVAL, "unknown token unit %d", (int)unit);
    if ((unsigned)norm > CRN_NORM_NONE) return crn_error_set(CRN_EINVAL, "unknown normalisation %d", (int)norm);
    crn_vocab *v = calloc(1, sizeof *v);
    if (!v) return crn_error_set(CRN_ENOMEM, "out of memory creating a vocabulary");
    v->unit = unit;
    v->norm = norm;
    if (add_entry(v, (const uint8_t *)CRN_UNK_TEXT, 3, 0) < 0) {
        free(v->arena);
        free(v->tok);
        free(v);
        return CRN_ENOMEM;
    }
    *out = v;
    return 0;
}

void crn_vocab_destroy(crn_vocab *v) {
    if (!v) return;
    clear_index(v);
    free(v->arena);
    free(v->tok);
    free(v->runs);
    free(v);
}

enum crn_unit crn_vocab_unit(const crn_vocab *v) { return v->unit; }
enum crn_norm crn_vocab_norm(const crn_vocab *v) { return v->norm; }

/* ---- counting ----------------------------------------------------------- */

static int utf8_err(const uint8_t *s, size_t off) {
    if (s[off] == 0) return crn_error_set(CRN_EUTF8, "NUL byte (byte offset %zu)", off);
    return crn_error_set(CRN_EUTF8, "invalid UTF-8 (byte offset %zu)", off);
}

/* Count one single-code-point token. */
static inline int count_cp(crn_vocab *v, int32_t cp) {
    uint32_t s = cp_get(v, cp);
    if (s) {
        v->tok[s].count++;
        return 0;
    }
    uint8_t b[4];
    int k = crn_utf8_encode(cp, b);
    long long r = add_indexed(v, b, (size_t)k, cp, 1);
    return r < 0 ? (int)r : 0;
}

/* Count the tokens of text into v (counting index). */
static int count_into(crn_vocab *v, const uint8_t *text, size_t n) {
    if (v->unit == CRN_UNIT_GRAPHEME) {
        crn_tokiter it;
        crn_tokiter_init(&it, text, n, v->unit);
        const uint8_t *t;
        size_t len;
        int r;
        while ((r = crn_tokiter_next(&it, &t, &len)) == 1) {
            int32_t cp = single_cp(t, len);
            uint32_t s = cp >= 0 ? cp_get(v, cp) : ht_get(v, t, len);
            if (s) {
                v->tok[s].count++;
                continue;
            }
            long long a = add_indexed(v, t, len, cp, 1);
            if (a < 0) return (int)a;
        }
        return r;
    }
    int jamo = v->unit == CRN_UNIT_JAMO;
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int k;
        if (text[i] < 0x80 && text[i]) {
            cp = text[i];
            k = 1;
        } else {
            k = crn_utf8_decode(text + i, n - i, &cp);
            if (k < 0 || cp == 0) return utf8_err(text, i);
        }
        i += (size_t)k;
        int32_t j[3];
        int nj = jamo ? crn_hangul_split(cp, j) : 0;
        int rc = 0;
        if (nj) {
            for (int q = 0; q < nj && !rc; q++) rc = count_cp(v, j[q]);
        } else {
            rc = count_cp(v, cp);
        }
        if (rc < 0) return rc;
    }
    return 0;
}

int crn_vocab_count(crn_vocab *v, const uint8_t *text, size_t n) {
    if (v->finalized) return crn_error_set(CRN_EINVAL, "vocabulary already finalized: cannot count more text");
    return count_into(v, text, n);
}

/* ---- finalize ----------------------------------------------------------- */

typedef struct sort_item {
    const uint8_t *p;
    uint32_t len;
    uint64_t count;
} sort_item;

static int cmp_items(const void *a, const void *b) {
    const sort_item *x = a, *y = b;
    return cmp_bytes(x->p, x->len, y->p, y->len);
}

/* Append the items (already sorted) as ids ntok.. and index them by id;
 * records one run. */
static int append_run(crn_vocab *v, const sort_item *it, uint32_t n) {
    if (n == 0) return 0;
    uint32_t *nr = realloc(v->runs, (v->nruns + 1) * sizeof *nr);
    if (!nr) return crn_error_set(CRN_ENOMEM, "out of memory finalizing the vocabulary");
    v->runs = nr;
    for (uint32_t i = 0; i < n; i++) {
        long long r = add_indexed(v, it[i].p, it[i].len, single_cp(it[i].p, it[i].len), it[i].count);
        if (r < 0) return (int)r;
    }
    v->runs[v->nruns++] = n;
    return 0;
}

int crn_vocab_finalize(crn_vocab *v, uint64_t min_count) {
    if (v->finalized) return crn_error_set(CRN_EINVAL, "vocabulary already finalized");
    if (min_count < 1) min_count = 1;
    int rc = 0;
    sort_item *items = malloc((v->ntok ? v->ntok : 1) * sizeof *items);
    if (!items) return crn_error_set(CRN_ENOMEM, "out of memory finalizing the vocabulary");
    /* Take the old storage; the new one is rebuilt in id order. */
    uint8_t *old_arena = v->arena;
    tok_entry *old_tok = v->tok;
    uint32_t old_n = v->ntok, nkeep = 0;
    uint64_t unk = 0;
    for (uint32_t i = 1; i < old_n; i++) { /* slot 0: <unk> */
        const tok_entry *t = &old_tok[i];
        if (t->count >= min_count)
            items[nkeep++] = (sort_item){old_arena + t->off, t->len, t->count};
        else
            unk += t->count;
    }
    qsort(items, nkeep, sizeof *items, cmp_items);
    clear_index(v);
    v->arena = NULL;
    v->arena_len = v->arena_cap = 0;
    v->tok = NULL;
    v->ntok = v->tokcap = 0;
    v->max_len = 0;
    /* id 0: <unk>, not indexed (lookups of absent tokens give 0 = CRN_UNK). */
    long long r = add_entry(v, (const uint8_t *)CRN_UNK_TEXT, 3, unk);
    if (r < 0) {
        rc = (int)r;
        goto out;
    }
    v->finalized = 1;
    rc = append_run(v, items, nkeep);
out:
    free(items);
    free(old_arena);
    free(old_tok);
    return rc;
}

/* ---- queries ------------------------------------------------------------ */

uint32_t crn_vocab_size(const crn_vocab *v) { return v->finalized ? v->ntok : 0; }

const uint8_t *crn_vocab_token(const crn_vocab *v, uint32_t id, size_t *len) {
    if (!v->finalized || id >= v->ntok) {
        *len = 0;
        return NULL;
    }
    if (id == CRN_UNK) {
        *len = 3;
        return (const uint8_t *)CRN_UNK_TEXT;
    }
    *len = v->tok[id].len;
    return v->arena + v->tok[id].off;
}

uint64_t crn_vocab_freq(const crn_vocab *v, uint32_t id) {
    return (v->finalized && id < v->ntok) ? v->tok[id].count : 0;
}

uint32_t crn_vocab_lookup(const crn_vocab *v, const uint8_t *tok, size_t len) {
    return v->finalized ? find(v, tok, len) : CRN_UNK;
}

size_t crn_vocab_max_token_len(const crn_vocab *v) { return v->max_len > 3 ? v->max_len : 3; }

/* ---- encode ------------------------------------------------------------- */

long long crn_vocab_encode(const crn_vocab *v, const uint8_t *text, size_t n, uint32_t *out, size_t *n_unk) {
    if (n_unk) *n_unk = 0;
    if (!v->finalized) return crn_error_set(CRN_EINVAL, "vocabulary not finalized: cannot encode");
    size_t k = 0, unk = 0;
    if (v->unit == CRN_UNIT_GRAPHEME) {
        crn_tokiter it;
        crn_tokiter_init(&it, text, n, v->unit);
        const uint8_t *t;
        size_t len;
        int r;
        while ((r = crn_tokiter_next(&it, &t, &len)) == 1) {
            uint32_t id = find(v, t, len);
            unk += id == CRN_UNK;
            out[k++] = id;
        }
        if (r < 0) return r;
    } else {
        int jamo = v->unit == CRN_UNIT_JAMO;
        const uint32_t *page0 = v->page[0];
        size_t i = 0;
        while (i < n) {
            uint8_t b = text[i];
            uint32_t id;
            if (b < 0x80 && b) { /* ASCII: one load */
                id = page0 ? page0[b] : 0;
                i++;
            } else {
                int32_t cp, j[3];
                int len = crn_utf8_decode(text + i, n - i, &cp);
                if (len < 0 || cp == 0) return utf8_err(text, i);
                i += (size_t)len;
                int nj = jamo ? crn_hangul_split(cp, j) : 0;
                if (nj) {
                    for (int q = 0; q < nj - 1; q++) {
                        uint32_t jd = cp_get(v, j[q]);
                        unk += jd == CRN_UNK;
                        out[k++] = jd;
                    }
                    cp = j[nj - 1];
                }
                id = cp_get(v, cp);
            }
            unk += id == CRN_UNK;
            out[k++] = id;
        }
    }
    if (n_unk) *n_unk = unk;
    return (long long)k;
}

/* ---- extend ------------------------------------------------------------- */

long long crn_vocab_extend(crn_vocab *v, const uint8_t *text, size_t n) {
    if (!v->finalized) return crn_error_set(CRN_EINVAL, "vocabulary not finalized: cannot extend");
    crn_vocab *tmp = NULL;
    sort_item *items = NULL;
    long long result;
    int rc = crn_vocab_create(&tmp, v->unit, v->norm);
    if (rc < 0) return rc;
    rc = count_into(tmp, text, n);
    if (rc < 0) goto fail;
    items = malloc((tmp->ntok ? tmp->ntok : 1) * sizeof *items);
    if (!items) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory extending the vocabulary");
        goto fail;
    }
    uint32_t nnew = 0;
    for (uint32_t i = 1; i < tmp->ntok; i++) {
        const tok_entry *t = &tmp->tok[i];
        const uint8_t *p = tmp->arena + t->off;
        if (find(v, p, t->len) == CRN_UNK) items[nnew++] = (sort_item){p, t->len, t->count};
    }
    qsort(items, nnew, sizeof *items, cmp_items);
    rc = append_run(v, items, nnew);
    if (rc < 0) goto fail;
    result = nnew;
    free(items);
    crn_vocab_destroy(tmp);
    return result;
fail:
    free(items);
    crn_vocab_destroy(tmp);
    return rc;
}

/* ---- serialisation ------------------------------------------------------ */

/* Layout (all integers little-endian):
 *   "CRNV"  u32 version=1  u32 unit  u32 norm
 *   u32 size (ids including <unk>)  u64 freq of <unk>
 *   u32 nruns  u32 run_len[nruns]        (sum = size - 1; each run sorted)
 *   size-1 times: u32 len, len bytes, u64 freq        (ids 1.. in order) */
#define VOCAB_MAGIC "CRNV"
#define VOCAB_VERSION 1u

int crn_vocab_serialize(const crn_vocab *v, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    if (!v->finalized) return crn_error_set(CRN_EINVAL, "vocabulary not finalized: cannot serialise");
    size_t total = 4 + 4 + 4 + 4 + 4 + 8 + 4 + (size_t)v->nruns * 4;
    for (uint32_t id = 1; id < v->ntok; id++) total += 4 + (size_t)v->tok[id].len + 8;
    uint8_t *b = malloc(total), *p = b;
    if (!b) return crn_error_set(CRN_ENOMEM, "out of memory serialising the vocabulary");
    memcpy(p, VOCAB_MAGIC, 4);
    crn_le_put_u32(p + 4, VOCAB_VERSION);
    crn_le_put_u32(p + 8, (uint32_t)v->unit);
    crn_le_put_u32(p + 12, (uint32_t)v->norm);
    crn_le_put_u32(p + 16, v->ntok);
    crn_le_put_u64(p + 20, v->tok[0].count);
    crn_le_put_u32(p + 28, v->nruns);
    p += 32;
    for (uint32_t r = 0; r < v->nruns; r++, p += 4) crn_le_put_u32(p, v->runs[r]);
    for (uint32_t id = 1; id < v->ntok; id++) {
        const tok_entry *t = &v->tok[id];
        crn_le_put_u32(p, t->len);
        memcpy(p + 4, v->arena + t->off, t->len);
        crn_le_put_u64(p + 4 + t->len, t->count);
        p += 4 + t->len + 8;
    }
    *buf = b;
    *len = total;
    return 0;
}

#define FMT(...) (crn_vocab_destroy(v), crn_error_set(CRN_EFORMAT, __VA_ARGS__))

int crn_vocab_deserialize(crn_vocab **out, const uint8_t *buf, size_t len) {
    *out = NULL;
    crn_vocab *v = NULL;
    if (len < 32) return FMT("vocabulary: truncated header (%zu of 32 bytes)", len);
    if (memcmp(buf, VOCAB_MAGIC, 4) != 0) return FMT("vocabulary: bad magic (byte offset 0)");
    uint32_t ver = crn_le_get_u32(buf + 4), unit = crn_le_get_u32(buf + 8), norm = crn_le_get_u32(buf + 12);
    uint32_t size = crn_le_get_u32(buf + 16), nruns = crn_le_get_u32(buf + 28);
    uint64_t unk = crn_le_get_u64(buf + 20);
    if (ver != VOCAB_VERSION) return FMT("vocabulary: unsupported version %u (byte offset 4)", ver);
    if (unit > CRN_UNIT_JAMO) return FMT("vocabulary: bad token unit %u (byte offset 8)", unit);
    if (norm > CRN_NORM_NONE) return FMT("vocabulary: bad normalisation %u (byte offset 12)", norm);
    size_t pos = 32, rest = len - pos;
    /* Each token takes at least 13 bytes, each run 4: bound the counts by
     * what is actually there before allocating anything. */
    if (size < 1 || (size_t)(size - 1) > rest / 13)
        return FMT("vocabulary: absurd token count %u for %zu bytes (byte offset 16)", size, len);
    if ((size == 1) != (nruns == 0) || nruns > size - 1 || (size_t)nruns > rest / 4)
        return FMT("vocabulary: bad run count %u for %u tokens (byte offset 28)", nruns, size);
    int rc = crn_vocab_create(&v, (enum crn_unit)unit, (enum crn_norm)norm);
    if (rc < 0) return rc;
    v->tok[0].count = unk;
    v->runs = malloc((nruns ? nruns : 1) * sizeof *v->runs);
    if (!v->runs) {
        crn_vocab_destroy(v);
        return crn_error_set(CRN_ENOMEM, "out of memory loading the vocabulary");
    }
    uint64_t sum = 0;
    for (uint32_t r = 0; r < nruns; r++, pos += 4) {
        v->runs[r] = crn_le_get_u32(buf + pos);
        if (v->runs[r] == 0) return FMT("vocabulary: empty run (byte offset %zu)", pos);
        sum += v->runs[r];
    }
    v->nruns = nruns;
    if (sum != size - 1) return FMT("vocabulary: runs cover %llu tokens, expected %u", (unsigned long long)sum, size - 1);
    v->finalized = 1;
    uint32_t run = 0, left_in_run = nruns ? v->runs[0] : 0;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t id = 1; id < size; id++) {
        if (len - pos < 4) return FMT("vocabulary: truncated at token %u (byte offset %zu)", id, pos);
        uint32_t tl = crn_le_get_u32(buf + pos);
        size_t at = pos;
        pos += 4;
        if (tl == 0 || tl > len - pos || len - pos - tl < 8)
            return FMT("vocabulary: token %u length %u out of bounds (byte offset %zu)", id, tl, at);
        const uint8_t *t = buf + pos;
        if (crn_utf8_validate(t, tl, NULL) < 0)
            return FMT("vocabulary: token %u is not valid UTF-8 (byte offset %zu)", id, pos);
        int32_t cp = single_cp(t, tl), jj[3];
        if (v->unit != CRN_UNIT_GRAPHEME && cp < 0)
            return FMT("vocabulary: token %u is not one code point (byte offset %zu)", id, pos);
        if (v->unit == CRN_UNIT_JAMO && crn_hangul_split(cp, jj))
            return FMT("vocabulary: token %u is a Hangul syllable in a jamo vocabulary (byte offset %zu)", id, pos);
        if (left_in_run == 0) {
            left_in_run = v->runs[++run];
            prev = NULL;
        }
        if (prev && cmp_bytes(prev, prev_len, t, tl) >= 0)
            return FMT("vocabulary: token %u out of order or duplicate (byte offset %zu)", id, pos);
        if (find(v, t, tl) != CRN_UNK)
            return FMT("vocabulary: token %u is a duplicate (byte offset %zu)", id, pos);
        uint64_t freq = crn_le_get_u64(t + tl);
        if (add_indexed(v, t, tl, cp, freq) < 0) {
            crn_vocab_destroy(v);
            return CRN_ENOMEM;
        }
        prev = t;
        prev_len = tl;
        left_in_run--;
        pos += tl + 8;
    }
    if (pos != len) return FMT("vocabulary: %zu trailing bytes (byte offset %zu)", len - pos, pos);
    *out = v;
    return 0;
}

#undef FMT

int crn_vocab_clone(crn_vocab **out, const crn_vocab *v) {
    uint8_t *b;
    size_t n;
    *out = NULL;
    int rc = crn_vocab_serialize(v, &b, &n);
    if (rc < 0) return rc;
    rc = crn_vocab_deserialize(out, b, n);
    free(b);
    return rc;
}

/* ---- decoding ----------------------------------------------------------- */

/* Conjoining jamo classes that recompose (modern jamo only, as produced by
 * crn_hangul_split). */
static int is_L(int32_t c) { return c >= 0x1100 && c <= 0x1112; }
static int is_V(int32_t c) { return c >= 0x1161 && c <= 0x1175; }
static int is_T(int32_t c) { return c >= 0x11A8 && c <= 0x11C2; }

void crn_decoder_init(crn_decoder *d, const crn_vocab *v) {
    memset(d, 0, sizeof *d);
    d->v = v;
}

/* Emit what is held: L+V as their syllable, a lone L as itself. At most 3 bytes. */
static size_t flush_held(crn_decoder *d, uint8_t *out) {
    size_t w = 0;
    if (d->nheld == 2) w = (size_t)crn_utf8_encode(crn_hangul_join(d->held[0], d->held[1], 0), out);
    else if (d->nheld == 1) w = (size_t)crn_utf8_encode(d->held[0], out);
    d->nheld = 0;
    return w;
}

size_t crn_decoder_push(crn_decoder *d, uint32_t id, uint8_t *out, size_t cap) {
    const crn_vocab *v = d->v;
    size_t tl;
    const uint8_t *t = id < crn_vocab_size(v) ? crn_vocab_token(v, id, &tl) : NULL;
    if (!t) { /* out-of-range ids read as <unk> */
        t = (const uint8_t *)CRN_UNK_TEXT;
        tl = 3;
    }
    if (cap < tl + 3) {
        crn_error_set(CRN_ERANGE, "decoder: output buffer of %zu bytes too small for token %u", cap, id);
        return 0;
    }
    if (v->unit != CRN_UNIT_JAMO || id == CRN_UNK) {
        size_t w = flush_held(d, out);
        memcpy(out + w, t, tl);
        return w + tl;
    }
    int32_t c = single_cp(t, tl);
    if (is_L(c)) { /* a new syllable may start: emit the old one */
        size_t w = flush_held(d, out);
        d->held[0] = c;
        d->nheld = 1;
        return w;
    }
    if (is_V(c) && d->nheld == 1) {
        d->held[1] = c;
        d->nheld = 2;
        return 0;
    }
    if (is_T(c) && d->nheld == 2) {
        int32_t s = crn_hangul_join(d->held[0], d->held[1], c);
        d->nheld = 0;
        return (size_t)crn_utf8_encode(s, out);
    }
    size_t w = flush_held(d, out);
    memcpy(out + w, t, tl);
    return w + tl;
}

size_t crn_decoder_finish(crn_decoder *d, uint8_t *out, size_t cap) {
    if (cap < 3 && d->nheld) {
        crn_error_set(CRN_ERANGE, "decoder: output buffer of %zu bytes too small to flush", cap);
        return 0;
    }
    return flush_held(d, out);
}

int crn_vocab_decode(const crn_vocab *v, const uint32_t *ids, size_t n, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!v->finalized) return crn_error_set(CRN_EINVAL, "vocabulary not finalized: cannot decode");
    /* Exact upper bound: every id yields at most max(token length, 3) bytes
     * (a held L or L+V flushes as 3 bytes, and a T completing a syllable
     * writes 3 bytes for 3 tokens), plus 3 for the final flush. */
    size_t per = crn_vocab_max_token_len(v), cap;
    if (crn_mul_size(n, per, &cap) || crn_add_size(cap, 3 + CRN_DECODER_HOLD, &cap))
        return crn_error_set(CRN_ERANGE, "decode: %zu ids too many", n);
    uint8_t *o = malloc(cap);
    if (!o) return crn_error_set(CRN_ENOMEM, "out of memory decoding %zu ids", n);
    crn_decoder d;
    crn_decoder_init(&d, v);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += crn_decoder_push(&d, ids[i], o + w, cap - w);
    w += crn_decoder_finish(&d, o + w, cap - w);
    *out = o;
    *out_len = w;
    return 0;
}
