/* utf8.c — UTF-8 validation with positions, repair, normalisation (utf8proc)
 * and the token iterator (code point / grapheme cluster / Hangul jamo).
 *
 * Validation follows Unicode 15, section 3.9, Table 3-7 ("well-formed UTF-8
 * byte sequences"): overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..FF) are invalid.
 * When a sequence is bad, its "maximal subpart" (the longest prefix of a
 * well-formed sequence, at least one byte) is the unit that repair replaces
 * with one U+FFFD — the W3C/WHATWG "replacement per maximal subpart" rule, so
 * our counts agree with Python's `bytes.decode(errors="replace")`.
 *
 * NUL is structurally valid UTF-8, but a text corpus with NULs is nearly
 * always UTF-16 or binary, so every entry point here treats a NUL byte as an
 * invalid sequence of length 1 (validate reports it by name, repair replaces
 * or drops it, the iterator refuses it). */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "common.h"

/* ---- names ------------------------------------------------------------- */

static const char *const unit_names[] = {"codepoint", "grapheme", "jamo"};
static const char *const norm_names[] = {"nfc", "nfkc", "none"};
static const char *const invalid_names[] = {"error", "replace", "skip"};

/* Index of s in names[0..3), or CRN_EINVAL with a message listing them. */
static int parse_name(const char *s, const char *const names[3], const char *what) {
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return crn_error_set(CRN_EINVAL, "unknown %s '%s' (expected %s, %s or %s)", what, s ? s : "(null)", names[0],
                         names[1], names[2]);
}

const char *crn_unit_name(enum crn_unit u) {
    return (unsigned)u < CRN_ARRAY_LEN(unit_names) ? unit_names[u] : "?";
}
int crn_unit_parse(const char *s, enum crn_unit *out) {
    int i = parse_name(s, unit_names, "token unit");
    if (i < 0) return i;
    *out = (enum crn_unit)i;
    return 0;
}
const char *crn_norm_name(enum crn_norm n) {
    return (unsigned)n < CRN_ARRAY_LEN(norm_names) ? norm_names[n] : "?";
}
int crn_norm_parse(const char *s, enum crn_norm *out) {
    int i = parse_name(s, norm_names, "normalisation");
    if (i < 0) return i;
    *out = (enum crn_norm)i;
    return 0;
}
const char *crn_invalid_name(enum crn_invalid p) {
    return (unsigned)p < CRN_ARRAY_LEN(invalid_names) ? invalid_names[p] : "?";
}
int crn_invalid_parse(const char *s, enum crn_invalid *out) {
    int i = parse_name(s, invalid_names, "invalid-UTF-8 policy");
    if (i < 0) return i;
    *out = (enum crn_invalid)i;
    return 0;
}

/* ---- the decoder everything else uses ----------------------------------- */

/* Scan one sequence at s (n > 0 bytes). Returns its length 1..4 with *cp set
 * when it is well-formed (NUL included: callers decide about it), or minus the
 * length of the maximal invalid subpart (-1..-3). */
static inline int scan(const uint8_t *s, size_t n, int32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int need;
    int32_t c;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 < 0xC2) return -1;     /* continuation byte or overlong C0/C1 lead */
    if (b0 < 0xE0) {
        need = 1;
        c = b0 & 0x1F;
    } else if (b0 < 0xF0) {
        need = 2;
        c = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;      /* overlong */
        else if (b0 == 0xED) hi = 0x9F; /* surrogates D800..DFFF */
    } else if (b0 < 0xF5) {
        need = 3;
        c = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;      /* overlong */
        else if (b0 == 0xF4) hi = 0x8F; /* > U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return -i; /* truncated at the end of the buffer */
        uint8_t b = s[i];
        if (b < lo || b > hi) return -i;
        lo = 0x80;
        hi = 0xBF;
        c = (c << 6) | (b & 0x3F);
    }
    *cp = c;
    return need + 1;
}

int crn_utf8_decode(const uint8_t *s, size_t n, int32_t *cp) {
    if (n == 0) return -1;
    int32_t c;
    int k = scan(s, n, &c);
    if (k < 0) return -1;
    *cp = c;
    return k;
}

int crn_utf8_encode(int32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t crn_utf8_count(const uint8_t *s, size_t n) {
    /* Every code point has exactly one non-continuation byte. */
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += (s[i] & 0xC0) != 0x80;
    return c;
}

size_t crn_utf8_bom_len(const uint8_t *s, size_t n) {
    return (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) ? 3 : 0;
}

/* ---- validation --------------------------------------------------------- */

/* Position of byte offset off in s, whose prefix [0, off) is valid UTF-8. */
static crn_textpos textpos_at(const uint8_t *s, size_t off) {
    crn_textpos p = {off, 1, 1};
    size_t line_start = 0;
    for (size_t i = 0; i < off; i++)
        if (s[i] == '\n') {
            p.line++;
            line_start = i + 1;
        }
    p.col = 1 + crn_utf8_count(s + line_start, off - line_start);
    return p;
}

/* Offset of the first bad sequence (invalid or NUL) at or after from, and its
 * maximal-subpart length in *badlen; n if there is none. */
static size_t find_bad(const uint8_t *s, size_t n, size_t from, int *badlen) {
    size_t i = from;
    while (i < n) {
        /* ASCII run, 8 bytes at a time when no byte has the high bit set and
         * none is NUL (the classic "has zero byte" trick). */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) ||
                ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull))
                break;
            i += 8;
        }
        if (i >= n) break;
        int32_t cp;
        int k = scan(s + i, n - i, &cp);
        if (k < 0) {
            *badlen = -k;
            return i;
        }
        if (cp == 0) {
            *badlen = 1;
            return i;
        }
        i += (size_t)k;
    }
    *badlen = 0;
    return n;
}

int crn_utf8_validate(const uint8_t *s, size_t n, crn_textpos *bad) {
    int badlen;
    size_t off = find_bad(s, n, 0, &badlen);
    if (off == n) return 0;
    crn_textpos p = textpos_at(s, off);
    if (bad) *bad = p;
    if (off == 0 && n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
        return crn_error_set(CRN_EUTF8, "looks like UTF-16 (BOM %02X %02X); convert it with iconv", s[0], s[1]);
    if (s[off] == 0) return crn_error_set(CRN_EUTF8, "NUL byte (byte offset %zu)", off);
    return crn_error_set(CRN_EUTF8, "invalid UTF-8 (byte offset %zu)", off);
}

int crn_utf8_repair(uint8_t **out, size_t *out_len, size_t *n_invalid, const uint8_t *s, size_t n,
                    enum crn_invalid policy) {
    *out = NULL;
    *out_len = 0;
    if (n_invalid) *n_invalid = 0;
    if (policy != CRN_INVALID_ERROR && policy != CRN_INVALID_REPLACE && policy != CRN_INVALID_SKIP)
        return crn_error_set(CRN_EINVAL, "unknown invalid-UTF-8 policy %d", (int)policy);
    if (policy == CRN_INVALID_ERROR) {
        int rc = crn_utf8_validate(s, n, NULL);
        if (rc < 0) return rc;
    }
    /* Pass 1: count the bad sequences and their bytes to size the output. */
    size_t nbad = 0, badbytes = 0, i = 0;
    int badlen;
    while ((i = find_bad(s, n, i, &badlen)) < n) {
        nbad++;
        badbytes += (size_t)badlen;
        i += (size_t)badlen;
    }
    size_t len = n - badbytes;
    if (policy == CRN_INVALID_REPLACE) {
        size_t extra;
        if (crn_mul_size(nbad, 3, &extra) || crn_add_size(len, extra, &len))
            return crn_error_set(CRN_ERANGE, "repaired text too large (%zu bytes)", n);
    }
    uint8_t *o = malloc(len ? len : 1);
    if (!o) return crn_error_set(CRN_ENOMEM, "out of memory repairing %zu bytes of text", n);
    /* Pass 2: copy the good runs, replace or drop the bad ones. */
    size_t w = 0;
    i = 0;
    for (;;) {
        size_t b = find_bad(s, n, i, &badlen);
        memcpy(o + w, s + i, b - i);
        w += b - i;
        if (b == n) break;
        if (policy == CRN_INVALID_REPLACE) {
            memcpy(o + w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
        i = b + (size_t)badlen;
    }
    *out = o;
    *out_len = w;
    if (n_invalid) *n_invalid = nbad;
    return 0;
}

/* ---- normalisation ------------------------------------------------------ */

/* Longest piece we hand to utf8proc before looking for an extra cut point
 * inside a very long line. */
#define NORM_PIECE_SOFT_MAX ((size_t)1 << 20)

/* End of the piece starting at p: just after the next '\n'; in a line
 * longer than NORM_PIECE_SOFT_MAX, also between two ASCII bytes past that
 * mark (two ASCII characters in a row are a normalisation boundary for NFC
 * and NFKC: the second is a starter that composes with nothing before it and
 * blocks any composition across it). Scans are bounded so that a huge
 * single-line text is still cut in linear time. */
static size_t piece_end(const uint8_t *s, size_t n, size_t p) {
    size_t lim = n - p > NORM_PIECE_SOFT_MAX ? p + NORM_PIECE_SOFT_MAX : n;
    const uint8_t *nl = memchr(s + p, '\n', lim - p);
    size_t end = n;
    if (nl) {
        end = (size_t)(nl - s) + 1;
    } else if (lim < n) {
        for (size_t i = lim; i + 1 < n; i++)
            if (s[i] == '\n' || (s[i] < 0x80 && s[i + 1] < 0x80)) {
                end = i + 1;
                break;
            }
    }
    /* NUL is data here, but utf8proc refuses it: a NUL is a piece of its
     * own (a starter that composes with nothing, so a boundary too). */
    const uint8_t *nul = memchr(s + p, 0, end - p);
    if (nul) return nul == s + p ? p + 1 : (size_t)(nul - s);
    return end;
}

/* Canonical ordering in utf8proc_decompose is a bubble sort over the piece,
 * so a run of k combining marks costs k^2 (100,000 marks of alternating
 * classes took 30 s). A piece is therefore also cut before the 31st
 * non-starter in a row: UAX #15's Stream-Safe Text Format limit (that format
 * inserts U+034F CGJ there, which blocks reordering the same way). Text
 * differs from plain NFC only inside such runs, which no language needs. */
#define NORM_MAX_NONSTARTERS 30

static size_t cut_nonstarter_run(const uint8_t *s, size_t p, size_t e) {
    size_t run = 0;
    for (size_t i = p; i < e;) {
        if (s[i] < 0x80) {
            run = 0;
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(e - i), &cp);
        if (k <= 0) return e; /* invalid: utf8proc_decompose reports it */
        if (utf8proc_get_property(cp)->combining_class == 0) run = 0;
        else if (++run > NORM_MAX_NONSTARTERS) return i;
        i += (size_t)k;
    }
    return e;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} growbuf;

static int growbuf_append(growbuf *g, const void *src, size_t n) {
    if (n > g->cap - g->len) {
        size_t need, cap = g->cap ? g->cap : 256;
        if (crn_add_size(g->len, n, &need)) return CRN_ENOMEM;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                cap = need;
                break;
            }
            cap *= 2;
        }
        uint8_t *q = realloc(g->p, cap);
        if (!q) return CRN_ENOMEM;
        g->p = q;
        g->cap = cap;
    }
    memcpy(g->p + g->len, src, n);
    g->len += n;
    return 0;
}

int crn_utf8_normalize(uint8_t **out, size_t *out_len, const uint8_t *s, size_t n, enum crn_norm norm) {
    *out = NULL;
    *out_len = 0;
    if (norm != CRN_NORM_NFC && norm != CRN_NORM_NFKC && norm != CRN_NORM_NONE)
        return crn_error_set(CRN_EINVAL, "unknown normalisation %d", (int)norm);
    if (norm == CRN_NORM_NONE) {
        uint8_t *o = malloc(n ? n : 1);
        if (!o) return crn_error_set(CRN_ENOMEM, "out of memory copying %zu bytes of text", n);
        memcpy(o, s, n);
        *out = o;
        *out_len = n;
        return 0;
    }
    utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    if (norm == CRN_NORM_NFKC) opt |= UTF8PROC_COMPAT;

    int rc = 0;
    growbuf g = {0};
    int32_t *buf = NULL; /* one piece's code points, decomposed, then re-encoded in place */
    size_t bufcap = 0;   /* in code points (plus one for reencode's terminator) */
    size_t p = 0;
    /* NFC rarely changes the length much: start with the input's size. */
    g.cap = n < SIZE_MAX - 16 ? n + 16 : n;
    if (!(g.p = malloc(g.cap))) goto nomem;
    while (p < n) {
        size_t e = piece_end(s, n, p);
        /* Fast path: ASCII is invariant under NFC and NFKC. */
        size_t i = p;
        while (i < e && s[i] < 0x80) i++;
        if (i == e) {
            if (growbuf_append(&g, s + p, e - p)) goto nomem;
            p = e;
            continue;
        }
        e = cut_nonstarter_run(s, i, e);
        for (;;) {
            utf8proc_ssize_t r =
                utf8proc_decompose(s + p, (utf8proc_ssize_t)(e - p), buf, (utf8proc_ssize_t)(bufcap ? bufcap - 1 : 0), opt);
            if (r < 0) {
                if (r == UTF8PROC_ERROR_INVALIDUTF8) {
                    /* Locate it exactly for the message. */
                    int badlen;
                    size_t off = find_bad(s, e, p, &badlen);
                    rc = crn_error_set(CRN_EUTF8, "invalid UTF-8 (byte offset %zu)", off < e ? off : p);
                } else {
                    rc = crn_error_set(CRN_ERANGE, "normalisation failed at byte offset %zu: %s", p,
                                       utf8proc_errmsg(r));
                }
                goto fail;
            }
            if ((size_t)r + 1 <= bufcap) {
                utf8proc_ssize_t len = utf8proc_reencode(buf, r, opt);
                if (len < 0) {
                    rc = crn_error_set(CRN_ERANGE, "normalisation failed at byte offset %zu: %s", p,
                                       utf8proc_errmsg(len));
                    goto fail;
                }
                if (growbuf_append(&g, buf, (size_t)len)) goto nomem;
                break;
            }
            size_t want = (size_t)r + 1;
            if (want < 1024) want = 1024;
            int32_t *nb = realloc(buf, want * sizeof *nb);
            if (!nb) goto nomem;
            buf = nb;
            bufcap = want;
        }
        p = e;
    }
    free(buf);
    *out = g.p;
    *out_len = g.len;
    return 0;
nomem:
    rc = crn_error_set(CRN_ENOMEM, "out of memory normalising %zu bytes of text", n);
fail:
    free(buf);
    free(g.p);
    return rc;
}

/* ---- Hangul ------------------------------------------------------------- */

/* Unicode 15, section 3.12 "Conjoining Jamo Behavior". */
enum {
    SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
    LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT
};

int crn_hangul_split(int32_t cp, int32_t jamo[3]) {
    int32_t si = cp - SBASE;
    if (si < 0 || si >= SCOUNT) return 0;
    jamo[0] = LBASE + si / NCOUNT;
    jamo[1] = VBASE + (si % NCOUNT) / TCOUNT;
    int32_t ti = si % TCOUNT;
    if (ti == 0) return 2;
    jamo[2] = TBASE + ti;
    return 3;
}

int32_t crn_hangul_join(int32_t l, int32_t v, int32_t t) {
    int32_t li = l - LBASE, vi = v - VBASE, ti = t ? t - TBASE : 0;
    if (li < 0 || li >= LCOUNT || vi < 0 || vi >= VCOUNT) return -1;
    if (t && (ti <= 0 || ti >= TCOUNT)) return -1;
    return SBASE + (li * VCOUNT + vi) * TCOUNT + ti;
}

/* ---- token iterator ----------------------------------------------------- */

void crn_tokiter_init(crn_tokiter *it, const uint8_t *s, size_t n, enum crn_unit unit) {
    memset(it, 0, sizeof *it);
    it->s = s;
    it->n = n;
    it->unit = unit;
    it->prev_cp = -1;
}

static int iter_bad(const crn_tokiter *it, size_t off, int32_t cp, int k) {
    (void)it;
    if (k > 0 && cp == 0) return crn_error_set(CRN_EUTF8, "NUL byte (byte offset %zu)", off);
    return crn_error_set(CRN_EUTF8, "invalid UTF-8 (byte offset %zu)", off);
}

int crn_tokiter_next(crn_tokiter *it, const uint8_t **tok, size_t *len) {
    /* Pending jamo of a split syllable come first. */
    if (it->jamo_next < it->njamo) {
        *len = (size_t)crn_utf8_encode(it->jamo[it->jamo_next++], it->buf);
        *tok = it->buf;
        return 1;
    }
    if (it->pos >= it->n) return 0;
    size_t start = it->pos;
    int32_t cp = 0;
    int k = scan(it->s + start, it->n - start, &cp);
    if (k < 0 || cp == 0) return iter_bad(it, start, cp, k);
    it->pos += (size_t)k;

    switch (it->unit) {
    case CRN_UNIT_JAMO: {
        int nj = crn_hangul_split(cp, it->jamo);
        if (nj) {
            it->njamo = nj;
            it->jamo_next = 1;
            *len = (size_t)crn_utf8_encode(it->jamo[0], it->buf);
            *tok = it->buf;
            return 1;
        }
        break;
    }
    case CRN_UNIT_GRAPHEME: {
        /* The break state runs continuously over the whole text (the
         * decision before this token's first code point was already taken
         * with it); prev_cp is the last code point seen. */
        if (it->prev_cp >= 0) (void)utf8proc_grapheme_break_stateful(it->prev_cp, cp, &it->grapheme_state);
        /* Fast path for most of English and Korean: between two code points
         * that are each ASCII (but a CR first: CR LF is one cluster) or a
         * precomposed Hangul syllable there is always a break (UAX #29 GB4,
         * GB5, GB6-8 need jamo, GB9 needs Extend/ZWJ, GB999), and no state
         * carries past it: restart the state machine after cp. */
        int32_t unused[3];
        if (it->pos < it->n && cp != '\r' && (cp < 0x80 || crn_hangul_split(cp, unused))) {
            int32_t c2 = -1;
            uint8_t b = it->s[it->pos];
            if (b < 0x80) c2 = b;
            else if (b >= 0xEA && b <= 0xED) (void)crn_utf8_decode(it->s + it->pos, it->n - it->pos, &c2);
            if (c2 >= 0 && (c2 < 0x80 || crn_hangul_split(c2, unused))) {
                it->prev_cp = -1;
                it->grapheme_state = 0; /* UTF8PROC_BOUNDCLASS_START */
                break;
            }
        }
        int32_t prev = cp;
        while (it->pos < it->n) {
            int32_t c2 = 0;
            int k2 = scan(it->s + it->pos, it->n - it->pos, &c2);
            if (k2 < 0 || c2 == 0) {
                /* The bad sequence ends this cluster; report it next call. */
                break;
            }
            int32_t st = it->grapheme_state;
            if (utf8proc_grapheme_break_stateful(prev, c2, &st)) break;
            it->grapheme_state = st;
            prev = c2;
            it->pos += (size_t)k2;
        }
        it->prev_cp = prev;
        break;
    }
    default:
        break;
    }
    *tok = it->s + start;
    *len = it->pos - start;
    return 1;
}
