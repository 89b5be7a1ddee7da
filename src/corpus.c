/* corpus.c — a text file turned into token ids: mmap, BOM, UTF-8 check or
 * repair, normalisation, line cleaning with PCRE2, vocabulary, compact ids,
 * train/validation split, and the two batch layouts (training windows and
 * validation windows).
 *
 * Two passes over the text, each piece by piece (a piece ends after a '\n'):
 *   pass 1: prepare the piece (repair, normalise, clean), count its code
 *           points, and count its tokens into the vocabulary (the number of
 *           tokens is then the sum of the vocabulary's frequencies);
 *   pass 2: prepare it again and encode it into the id array.
 * Preparing is deterministic, so both passes see the same text. The
 * prepared pieces of pass 1 are kept while their total stays under a cache
 * limit (a small corpus is prepared once); a large file is prepared twice
 * rather than held in memory. Peak memory is thus the id array plus about
 * six times one piece (raw, repaired, normalised, cleaned copies and the
 * uint32 ids of the piece) plus the cache; a line longer than a piece makes
 * its piece that long (a piece is never cut inside a line, because cleaning
 * works on lines and normalisation must not see a cut inside a character
 * sequence). */
#include "corpus.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#if defined(CRN_TEST_HOOKS) && CRN_TEST_HOOKS
static size_t piece_bytes = (size_t)8 << 20;  /* target size of one piece */
static size_t cache_bytes = (size_t)64 << 20; /* prepared text kept from pass 1 */

void crn_corpus_tune(size_t piece, size_t cache) {
    piece_bytes = piece ? piece : (size_t)8 << 20;
    cache_bytes = cache;
}
#else
static const size_t piece_bytes = (size_t)8 << 20;
static const size_t cache_bytes = (size_t)64 << 20;
#endif

void crn_corpus_opts_default(crn_corpus_opts *o) {
    memset(o, 0, sizeof *o);
    o->unit = CRN_UNIT_CODEPOINT;
    o->norm = CRN_NORM_NFC;
    o->invalid = CRN_INVALID_ERROR;
    o->min_count = 1;
    o->val_frac = 0.1;
}

int crn_corpus_split_replace(const char *spec, char **re_out, char **text_out) {
    *re_out = *text_out = NULL;
    size_t n = strlen(spec);
    /* the last '=' preceded by an even number of backslashes */
    size_t eq = n;
    for (size_t i = n; i-- > 0;) {
        if (spec[i] != '=') continue;
        size_t bs = 0;
        while (bs < i && spec[i - 1 - bs] == '\\') bs++;
        if (bs % 2 == 0) {
            eq = i;
            break;
        }
    }
    if (eq == n) return crn_error_set(CRN_EINVAL, "--replace '%s': expected REGEX=TEXT (no unescaped '=')", spec);
    if (eq == 0) return crn_error_set(CRN_EINVAL, "--replace '%s': the regex before '=' is empty", spec);
    char *re = malloc(eq + 1);
    char *text = malloc(n - eq);
    if (!re || !text) {
        free(re);
        free(text);
        return crn_error_set(CRN_ENOMEM, "--replace: out of memory");
    }
    /* The regex keeps its backslashes ('\=' is a literal '=' to PCRE2); the
     * text loses the one of an escaped '=' (PCRE2's replacement syntax would
     * keep the backslash). */
    memcpy(re, spec, eq);
    re[eq] = 0;
    size_t o = 0;
    for (size_t i = eq + 1; i < n; i++) {
        if (spec[i] == '\\' && i + 1 < n && spec[i + 1] == '=') continue;
        text[o++] = spec[i];
    }
    text[o] = 0;
    *re_out = re;
    *text_out = text;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* loading state */

typedef struct loader {
    const char *name;
    const crn_corpus_opts *o;
    enum crn_norm norm;
    enum crn_unit unit;
    crn_regex **keep, **drop, **repl_re;
    char **repl_text;
    size_t n_keep, n_drop, n_repl;
    /* statistics of pass 1 */
    uint64_t n_chars, n_nfc_chars, n_tokens, n_invalid, n_dropped, n_lines;
} loader;

static void loader_free(loader *L) {
    for (size_t i = 0; i < L->n_keep; i++) crn_regex_destroy(L->keep[i]);
    for (size_t i = 0; i < L->n_drop; i++) crn_regex_destroy(L->drop[i]);
    for (size_t i = 0; i < L->n_repl; i++) {
        crn_regex_destroy(L->repl_re[i]);
        free(L->repl_text[i]);
    }
    free(L->keep);
    free(L->drop);
    free(L->repl_re);
    free(L->repl_text);
}

static int compile_list(const loader *L, const char *what, const char **pats, size_t n, crn_regex ***out) {
    *out = NULL;
    if (!n) return 0;
    crn_regex **r = calloc(n, sizeof *r);
    if (!r) return crn_error_set(CRN_ENOMEM, "%s: out of memory", L->name);
    *out = r;
    for (size_t i = 0; i < n; i++) {
        int err = crn_regex_compile(&r[i], pats[i] ? pats[i] : "", 0);
        if (err) return crn_error_prefix(err, "%s: %s", L->name, what);
    }
    return 0;
}

static int loader_init(loader *L, const char *name, const crn_corpus_opts *o, const crn_vocab *vocab) {
    memset(L, 0, sizeof *L);
    L->name = name;
    L->o = o;
    L->unit = vocab ? crn_vocab_unit(vocab) : o->unit;
    L->norm = vocab ? crn_vocab_norm(vocab) : o->norm;
    if (!(o->val_frac >= 0 && o->val_frac < 1))
        return crn_error_set(CRN_EINVAL, "%s: validation fraction %g is not in [0, 1)", name, o->val_frac);
    int err;
    /* the counts are set as the arrays fill, so loader_free frees what exists */
    if ((err = compile_list(L, "--keep", o->keep, o->n_keep, &L->keep))) {
        L->n_keep = o->n_keep;
        return err;
    }
    L->n_keep = o->n_keep;
    if ((err = compile_list(L, "--drop", o->drop, o->n_drop, &L->drop))) {
        L->n_drop = o->n_drop;
        return err;
    }
    L->n_drop = o->n_drop;
    if (o->n_replace) {
        L->repl_re = calloc(o->n_replace, sizeof *L->repl_re);
        L->repl_text = calloc(o->n_replace, sizeof *L->repl_text);
        if (!L->repl_re || !L->repl_text) return crn_error_set(CRN_ENOMEM, "%s: out of memory", name);
        L->n_repl = o->n_replace;
        for (size_t i = 0; i < o->n_replace; i++) {
            char *pat;
            if ((err = crn_corpus_split_replace(o->replace[i] ? o->replace[i] : "", &pat, &L->repl_text[i])))
                return crn_error_prefix(err, "%s", name);
            err = crn_regex_compile(&L->repl_re[i], pat, 0);
            free(pat);
            if (err) return crn_error_prefix(err, "%s: --replace", name);
        }
    }
    return 0;
}

/* Line and column (1-based; column in code points) of byte `at` of s, which
 * is valid UTF-8 before `at`. */
static void locate(const uint8_t *s, size_t at, size_t *line, size_t *col) {
    size_t ln = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        if (s[i] == '\n') {
            ln++;
            c = 1;
        } else if ((s[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = ln;
    *col = c;
}

/* Growable output buffer. */
typedef struct obuf {
    uint8_t *p;
    size_t n, cap;
} obuf;

static int obuf_put(obuf *b, const uint8_t *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) {
            if (cap > SIZE_MAX / 2) return CRN_ENOMEM;
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) return CRN_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* Keep/drop/replace each line of s[0..n) (valid, normalised) into *out.
 * line0 is the 1-based number of the piece's first line (for messages). */
static int clean_lines(loader *L, const uint8_t *s, size_t n, size_t line0, int count_stats, uint8_t **out,
                       size_t *out_len) {
    obuf b = {0};
    uint8_t *cur = NULL; /* the line while replacements rewrite it */
    int err = 0;
    size_t line = line0;
    for (size_t pos = 0; pos < n; line++) {
        const uint8_t *nl = memchr(s + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - s) : n; /* the line without its '\n' */
        size_t next = nl ? end + 1 : n;
        const uint8_t *ln = s + pos;
        size_t len = end - pos;
        /* a CRLF line is matched without its '\r' (so '$' and '.*' behave), and
         * keeps it */
        int cr = nl && len > 0 && ln[len - 1] == '\r';
        len -= (size_t)cr;
        int keep = L->n_keep == 0;
        for (size_t i = 0; i < L->n_keep && !keep; i++) {
            int rc = crn_regex_search(L->keep[i], ln, len, 0, NULL, NULL);
            if (rc < 0) {
                err = crn_error_prefix(rc, "%s:%zu: --keep", L->name, line);
                goto done;
            }
            keep = rc;
        }
        for (size_t i = 0; i < L->n_drop && keep; i++) {
            int rc = crn_regex_search(L->drop[i], ln, len, 0, NULL, NULL);
            if (rc < 0) {
                err = crn_error_prefix(rc, "%s:%zu: --drop", L->name, line);
                goto done;
            }
            keep = !rc;
        }
        if (!keep) {
            if (count_stats) L->n_dropped++;
            pos = next;
            continue;
        }
        for (size_t i = 0; i < L->n_repl; i++) {
            uint8_t *r;
            size_t rn;
            long long rc = crn_regex_replace(L->repl_re[i], ln, len, L->repl_text[i], &r, &rn);
            if (rc < 0) {
                err = crn_error_prefix((int)rc, "%s:%zu: --replace", L->name, line);
                goto done;
            }
            free(cur);
            cur = r;
            ln = r;
            len = rn;
        }
        if (obuf_put(&b, ln, len) || (cr && obuf_put(&b, (const uint8_t *)"\r", 1)) ||
            (nl && obuf_put(&b, (const uint8_t *)"\n", 1))) {
            err = crn_error_set(CRN_ENOMEM, "%s: out of memory while cleaning", L->name);
            goto done;
        }
        free(cur);
        cur = NULL;
        pos = next;
    }
done:
    free(cur);
    if (err) {
        free(b.p);
        return err;
    }
    if (!b.p) b.p = malloc(1); /* every line dropped: an empty, non-NULL buffer */
    if (!b.p) return crn_error_set(CRN_ENOMEM, "%s: out of memory", L->name);
    *out = b.p;
    *out_len = b.n;
    return 0;
}

/* Turn the raw piece base[off..off+n) — starting at line `line0` of the
 * input — into prepared text (*out malloc'ed): valid UTF-8 (or an error
 * naming the position in the original input), normalised, cleaned. */
static int prepare(loader *L, const uint8_t *base, size_t off, size_t n, size_t line0, int count_stats,
                   uint8_t **out, size_t *out_len) {
    const uint8_t *s = base + off;
    uint8_t *valid = NULL, *norm = NULL, *clean = NULL;
    size_t valid_n = n, norm_n = 0, clean_n = 0;
    int err;
    /* UTF-16 is refused whatever --invalid says: repairing it would train on
     * (or score) a U+FFFD or NUL for every other byte. FF and FE never occur
     * in UTF-8, so this BOM is never the start of a UTF-8 text. */
    if (off == 0 && n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
        return crn_error_set(CRN_EUTF8, "%s:1:1: looks like UTF-16 (BOM %02X %02X), not UTF-8; convert it with "
                             "iconv -f UTF-16 -t UTF-8", L->name, s[0], s[1]);
    if (L->o->invalid == CRN_INVALID_ERROR) {
        crn_textpos bad;
        err = crn_utf8_validate(s, n, &bad);
        if (err) {
            /* Position in the original input, computed here from the piece (the
             * piece starts at a line start, except that a BOM may precede the
             * first line: columns count code points after the BOM). */
            size_t at = bad.byte <= n ? bad.byte : 0;
            size_t ln, col;
            locate(s, at, &ln, &col);
            size_t file_byte = off + at;
            ln += line0 - 1;
            if (file_byte == 0 && n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
                return crn_error_set(CRN_EUTF8, "%s:%zu:%zu: looks like UTF-16 (BOM %02X %02X), not UTF-8; convert it "
                                     "with iconv -f UTF-16 -t UTF-8",
                                     L->name, ln, col, s[0], s[1]);
            if (at < n && s[at] == 0)
                return crn_error_set(CRN_EUTF8, "%s:%zu:%zu: NUL byte (byte offset %zu); is this UTF-16 or binary?",
                                     L->name, ln, col, file_byte);
            return crn_error_set(CRN_EUTF8, "%s:%zu:%zu: invalid UTF-8 (byte offset %zu)", L->name, ln, col,
                                 file_byte);
        }
    } else {
        size_t k = 0;
        err = crn_utf8_repair(&valid, &valid_n, &k, s, n, L->o->invalid);
        if (err) return crn_error_prefix(err, "%s:%zu", L->name, line0);
        if (count_stats) L->n_invalid += k;
        s = valid;
    }
    err = crn_utf8_normalize(&norm, &norm_n, s, valid_n, L->norm);
    free(valid);
    if (err) return crn_error_prefix(err, "%s:%zu", L->name, line0);
    if (!L->n_keep && !L->n_drop && !L->n_repl) {
        *out = norm;
        *out_len = norm_n;
        return 0;
    }
    /* zero padding after the text the regexes run on (see CRN_REGEX_PAD) */
    uint8_t *padded = realloc(norm, norm_n + CRN_REGEX_PAD);
    if (!padded) {
        free(norm);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory", L->name);
    }
    norm = padded;
    memset(norm + norm_n, 0, CRN_REGEX_PAD);
    err = clean_lines(L, norm, norm_n, line0, count_stats, &clean, &clean_n);
    free(norm);
    if (err) return err;
    if (L->n_repl && L->norm != CRN_NORM_NONE) {
        /* a replacement text may be unnormalised or join characters that now
         * compose: normalise once more (idempotent on the rest) */
        err = crn_utf8_normalize(&norm, &norm_n, clean, clean_n, L->norm);
        free(clean);
        if (err) return crn_error_prefix(err, "%s:%zu", L->name, line0);
        clean = norm;
        clean_n = norm_n;
    }
    *out = clean;
    *out_len = clean_n;
    return 0;
}

/* End of the piece that starts at pos: after the last '\n' within
 * piece_bytes, or after the first '\n' beyond if the line is longer, or n. */
static size_t piece_end(const uint8_t *s, size_t n, size_t pos) {
    if (n - pos <= piece_bytes) return n;
    for (size_t i = pos + piece_bytes; i > pos; i--)
        if (s[i - 1] == '\n') return i;
    const uint8_t *nl = memchr(s + pos + piece_bytes, '\n', n - pos - piece_bytes);
    return nl ? (size_t)(nl - s) + 1 : n;
}

/* Longest line the loader accepts: a line is one piece, held in memory a few
 * times over. Checked in pass 1 before the search for its end goes further,
 * so a huge file without line breaks (binary, sparse) fails fast instead of
 * being scanned to its end first. */
#define CRN_CORPUS_MAX_LINE ((size_t)256 << 20)

/* 1 if the piece starting at pos would hold a line longer than
 * CRN_CORPUS_MAX_LINE (it then starts at pos: piece_end found no '\n' in the
 * first piece_bytes). */
static int line_too_long(const uint8_t *s, size_t n, size_t pos) {
    if (n - pos <= CRN_CORPUS_MAX_LINE || n - pos <= piece_bytes) return 0;
    return !memchr(s + pos, '\n', CRN_CORPUS_MAX_LINE);
}

/* Same, over prepared text that is already in memory (for encoding). */
static size_t chunk_end(const uint8_t *s, size_t n, size_t pos) { return piece_end(s, n, pos); }

static size_t count_codepoints(const uint8_t *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (s[i] & 0xC0) != 0x80;
    return k;
}

/* Add the NFC code points of a prepared piece to L->n_nfc_chars: its code
 * points when the normalisation composes (nfc, nfkc) or it is ASCII, else
 * those of its NFC form (normalisation never crosses a piece: pieces end
 * at line breaks). */
static int count_nfc_piece(loader *L, const uint8_t *piece, size_t pn) {
    size_t i = 0;
    if (L->norm == CRN_NORM_NONE)
        while (i < pn && piece[i] < 0x80) i++;
    if (i == pn || L->norm != CRN_NORM_NONE) {
        L->n_nfc_chars += count_codepoints(piece, pn);
        return 0;
    }
    uint8_t *nf;
    size_t nn;
    int err = crn_utf8_normalize(&nf, &nn, piece, pn, CRN_NORM_NFC);
    if (err) return err;
    L->n_nfc_chars += count_codepoints(nf, nn);
    free(nf);
    return 0;
}

static size_t count_lines(const uint8_t *s, size_t n) {
    size_t k = 0;
    for (const uint8_t *p = s, *e = s + n; (p = memchr(p, '\n', (size_t)(e - p))); p++) k++;
    return k;
}

/* Hand pages of a mapping that are done with back to the kernel, so a large
 * file's resident size stays at about one piece. */
static void release_pages(const uint8_t *map, size_t from, size_t to) {
    if (!map) return;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    size_t a = (from + (size_t)pg - 1) / (size_t)pg * (size_t)pg, b = to / (size_t)pg * (size_t)pg;
    if (b > a) (void)madvise((void *)(map + a), b - a, MADV_DONTNEED);
}

/* Encode prepared text into c->ids (or the cache writer w) starting at *at. */
static int encode_text(crn_corpus *c, crn_idcache_writer *w, const char *name, const uint8_t *s, size_t n, size_t *at,
                       uint32_t **tmp, size_t *tmp_cap) {
    for (size_t pos = 0; pos < n;) {
        size_t end = chunk_end(s, n, pos);
        size_t len = end - pos;
        if (len > *tmp_cap) {
            uint32_t *t = realloc(*tmp, len * sizeof *t);
            if (!t) return crn_error_set(CRN_ENOMEM, "%s: out of memory (%zu ids)", name, len);
            *tmp = t;
            *tmp_cap = len;
        }
        size_t unk = 0;
        long long k = crn_vocab_encode(c->vocab, s + pos, len, *tmp, &unk);
        if (k < 0) return crn_error_prefix((int)k, "%s", name);
        if ((size_t)k > c->n_tokens - *at)
            return crn_error_set(CRN_ERANGE, "%s: the text gave more tokens the second time (%zu > %zu)", name,
                                 *at + (size_t)k, c->n_tokens);
        c->n_unk += unk;
        if (w) {
            int err = crn_idcache_put(w, *tmp, (size_t)k);
            if (err) return err;
        } else if (c->wide) {
            memcpy((uint32_t *)c->ids + *at, *tmp, (size_t)k * sizeof(uint32_t));
        } else {
            uint16_t *d = (uint16_t *)c->ids + *at;
            for (long long i = 0; i < k; i++) d[i] = (uint16_t)(*tmp)[i];
        }
        *at += (size_t)k;
        pos = end;
    }
    return 0;
}

/* NFC code points of the text of ids [from, to): decoded in chunks, each
 * normalised up to its last '\n' (normalisation never crosses a newline). */
static int count_nfc_chars(const crn_corpus *c, size_t from, size_t to, uint64_t *out) {
    *out = 0;
    crn_decoder d;
    crn_decoder_init(&d, c->vocab);
    obuf b = {0};
    uint8_t tmp[CRN_DECODER_HOLD + 64];
    int err = 0;
    /* flush when the buffer reaches `flush_at`; doubled while no newline
     * comes, so a text without newlines is not rescanned for each token */
    size_t flush_at = (size_t)1 << 20;
    size_t released = from;
    for (size_t i = from; i <= to; i++) {
        size_t k;
        if (i < to) {
            uint32_t id = crn_corpus_id(c, i);
            size_t tl;
            crn_vocab_token(c->vocab, id, &tl);
            if (tl + CRN_DECODER_HOLD > sizeof tmp) {
                /* a grapheme longer than the scratch buffer: decode it alone */
                uint8_t *big = malloc(tl + CRN_DECODER_HOLD);
                if (!big) {
                    err = CRN_ENOMEM;
                    break;
                }
                k = crn_decoder_push(&d, id, big, tl + CRN_DECODER_HOLD);
                err = obuf_put(&b, big, k);
                free(big);
                if (err) break;
                continue;
            }
            k = crn_decoder_push(&d, id, tmp, sizeof tmp);
        } else {
            k = crn_decoder_finish(&d, tmp, sizeof tmp);
        }
        if ((err = obuf_put(&b, tmp, k))) break;
        if (b.n >= flush_at || i == to) {
            size_t cut = b.n;
            if (i < to) {
                while (cut > 0 && b.p[cut - 1] != '\n') cut--;
                if (cut == 0) { /* no newline yet: keep collecting */
                    flush_at = b.n * 2;
                    continue;
                }
            }
            uint8_t *nf;
            size_t nn;
            if ((err = crn_utf8_normalize(&nf, &nn, b.p, cut, CRN_NORM_NFC))) break;
            *out += count_codepoints(nf, nn);
            free(nf);
            crn_idcache_release(&c->map, c->wide, released, i);
            released = i;
            memmove(b.p, b.p + cut, b.n - cut);
            b.n -= cut;
        }
    }
    free(b.p);
    if (err == CRN_ENOMEM) return crn_error_set(CRN_ENOMEM, "%s: out of memory", c->path);
    if (err) return crn_error_prefix(err, "%s: validation split", c->path);
    return 0;
}

/* Train tokens of n, as the peer: int(n * (1 - val_frac)). */
static size_t train_split(size_t n, double val_frac) {
    size_t k = (size_t)((double)n * (1.0 - val_frac));
    return k > n ? n : k;
}

/* load_text, pass 2: encode the prepared text (kept from pass 1 in cache,
 * or prepared again) into c->ids, or into the id cache file w when w is not
 * NULL (c->n_tokens and c->wide are set). */
static int encode_pass(crn_corpus *c, crn_idcache_writer *w, loader *L, const uint8_t *text, size_t n, size_t bom,
                       const uint8_t *map, const obuf *cache, int caching) {
    uint8_t *piece = NULL;
    uint32_t *tmp = NULL;
    size_t tmp_cap = 0, line = 1;
    char b1[32];
    int err;
    if (!w && !(c->ids = malloc(c->n_tokens * (c->wide ? sizeof(uint32_t) : sizeof(uint16_t))))) {
        err = crn_error_set(CRN_ENOMEM, "%s: out of memory for %s token ids", c->path, crn_fmt_count(b1, c->n_tokens));
        goto done;
    }
    size_t at = 0;
    if (caching) {
        if ((err = encode_text(c, w, c->path, cache->p, cache->n, &at, &tmp, &tmp_cap))) goto done;
    } else {
        for (size_t pos = bom; pos < n;) {
            size_t end = piece_end(text, n, pos);
            size_t pn;
            if ((err = prepare(L, text, pos, end - pos, line, 0, &piece, &pn))) goto done;
            if ((err = encode_text(c, w, c->path, piece, pn, &at, &tmp, &tmp_cap))) goto done;
            free(piece);
            piece = NULL;
            line += count_lines(text + pos, end - pos);
            release_pages(map, pos, end);
            pos = end;
        }
    }
    if (at != c->n_tokens) {
        err = crn_error_set(CRN_ERANGE, "%s: encoding gave %zu tokens, counting %zu", c->path, at, c->n_tokens);
        goto done;
    }
    err = 0;
done:
    free(piece);
    free(tmp);
    return err;
}

/* The corpus's vocabulary: a copy of given, or a new one to count into. */
static int start_vocab(crn_corpus *c, const loader *L, const crn_vocab *given) {
    if (!given) return crn_vocab_create(&c->vocab, L->unit, L->norm);
    uint8_t *ser;
    size_t sn;
    int err = crn_vocab_serialize(given, &ser, &sn);
    if (err) return err;
    err = crn_vocab_deserialize(&c->vocab, ser, sn);
    free(ser);
    return err;
}

/* Pass 1 over text[bom, n): prepare every piece, count its characters, and
 * its tokens (into given's count in L, or the vocabulary being built);
 * prepared text goes to cache while *caching and it fits (else caching
 * stops). *line ends one past the last line. */
static int count_pass(crn_corpus *c, loader *L, const uint8_t *text, size_t n, size_t bom, const uint8_t *map,
                      const crn_vocab *given, obuf *cache, int *caching, size_t *line) {
    uint8_t *piece = NULL;
    int err = 0;
    for (size_t pos = bom; pos < n;) {
        if (line_too_long(text, n, pos)) {
            err = crn_error_set(CRN_ERANGE, "%s:%zu: line longer than %u MiB (byte offset %zu); charrnn reads text "
                                "line by line: add line breaks first (e.g. fold -w 10000)", c->path, *line,
                                (unsigned)(CRN_CORPUS_MAX_LINE >> 20), pos);
            goto done;
        }
        size_t end = piece_end(text, n, pos);
        size_t pn;
        if ((err = prepare(L, text, pos, end - pos, *line, 1, &piece, &pn))) goto done;
        L->n_chars += count_codepoints(piece, pn);
        if ((err = count_nfc_piece(L, piece, pn))) goto done;
        if (given) {
            /* tokens counted here; a vocabulary being built counts them itself */
            crn_tokiter it;
            crn_tokiter_init(&it, piece, pn, L->unit);
            const uint8_t *tok;
            size_t tl;
            int rc;
            while ((rc = crn_tokiter_next(&it, &tok, &tl)) == 1) L->n_tokens++;
            if (rc < 0) {
                err = crn_error_prefix(rc, "%s:%zu", c->path, *line);
                goto done;
            }
        } else if ((err = crn_vocab_count(c->vocab, piece, pn))) {
            err = crn_error_prefix(err, "%s", c->path);
            goto done;
        }
        if (*caching) {
            if (cache->n + pn > cache_bytes) {
                *caching = 0;
                free(cache->p);
                *cache = (obuf){0};
            } else if (obuf_put(cache, piece, pn)) {
                err = crn_error_set(CRN_ENOMEM, "%s: out of memory", c->path);
                goto done;
            }
        }
        free(piece);
        piece = NULL;
        *line += count_lines(text + pos, end - pos);
        release_pages(map, pos, end);
        pos = end;
    }
done:
    free(piece);
    return err;
}

/* The whole pipeline over an input in memory (or mapped): map != NULL when
 * pages may be released after use. With want (the id cache's key), the ids
 * go to the file o->id_cache instead of memory, and prepared text is not
 * cached between the passes (memory stays that of a few pieces). */
static int load_text(crn_corpus *c, const uint8_t *text, size_t n, const uint8_t *map, const crn_corpus_opts *o,
                     const crn_vocab *given, crn_idcache_meta *want) {
    loader L;
    obuf cache = {0};
    int caching = cache_bytes > 0 && !want;
    crn_idcache_writer *w = NULL;
    char b1[32], b2[32];
    int err = loader_init(&L, c->path, o, given);
    if (err) goto done;

    size_t bom = crn_utf8_bom_len(text, n);
    c->had_bom = bom > 0;
    if (n == 0 || n == bom) {
        err = crn_error_set(CRN_EEMPTY, "%s: empty file%s", c->path, bom ? " (only a byte order mark)" : "");
        goto done;
    }

    if ((err = start_vocab(c, &L, given))) goto done;

    /* ---- pass 1: prepare, count -------------------------------------- */
    size_t line = 1;
    if ((err = count_pass(c, &L, text, n, bom, map, given, &cache, &caching, &line))) goto done;
    c->n_chars = L.n_chars;
    c->n_nfc_chars = L.n_nfc_chars;
    c->n_invalid = L.n_invalid;
    c->n_lines_dropped = L.n_dropped;
    if (!given) {
        /* every counted token has an id or went to <unk>, whose frequency is
         * the total of the tokens mapped to it */
        if ((err = crn_vocab_finalize(c->vocab, o->min_count))) {
            err = crn_error_prefix(err, "%s", c->path);
            goto done;
        }
        for (uint32_t id = 0, V = crn_vocab_size(c->vocab); id < V; id++)
            L.n_tokens += crn_vocab_freq(c->vocab, id);
    }
    if (L.n_tokens == 0) {
        if (L.n_dropped)
            err = crn_error_set(CRN_EEMPTY, "%s: no text left after cleaning (%s of %s lines dropped)", c->path,
                                crn_fmt_count(b1, L.n_dropped), crn_fmt_count(b2, line - 1 + (text[n - 1] != '\n')));
        else
            err = crn_error_set(CRN_EEMPTY, "%s: no text (nothing left after removing invalid bytes)", c->path);
        goto done;
    }

    /* ---- pass 2: encode ---------------------------------------------- */
    c->n_tokens = L.n_tokens;
    c->wide = crn_vocab_size(c->vocab) > 65536u;
    if (want && (err = crn_idcache_begin(&w, o->id_cache, c->vocab, c->n_tokens, c->wide))) goto done;
    if ((err = encode_pass(c, w, &L, text, n, bom, map, &cache, caching))) goto done;
    if (w) {
        if ((err = crn_idcache_map_written(w, &c->map))) goto done;
        c->ids = (void *)c->map.ids;
    }

    /* ---- split --------------------------------------------------------- */
    c->n_train = train_split(c->n_tokens, o->val_frac);
    if (c->n_train < c->n_tokens && (err = count_nfc_chars(c, c->n_train, c->n_tokens, &c->n_val_chars)))
        goto done;
    if (w) {
        want->n_tokens = c->n_tokens;
        want->wide = c->wide;
        want->n_chars = c->n_chars;
        want->n_nfc_chars = c->n_nfc_chars;
        want->n_val_chars = c->n_val_chars;
        want->n_invalid = c->n_invalid;
        want->n_unk = c->n_unk;
        want->n_lines_dropped = c->n_lines_dropped;
        want->had_bom = c->had_bom;
        err = crn_idcache_commit(w, want);
        w = NULL;
        if (err) goto done;
    }
    err = 0;
done:
    crn_idcache_abort(w);
    free(cache.p);
    loader_free(&L);
    return err;
}

static int corpus_new(crn_corpus **out, const char *name) {
    crn_corpus *c = calloc(1, sizeof *c);
    if (!c) return crn_error_set(CRN_ENOMEM, "%s: out of memory", name);
    c->path = strdup(name ? name : "(memory)");
    if (!c->path) {
        free(c);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory", name);
    }
    *out = c;
    return 0;
}

int crn_corpus_from_memory(crn_corpus **out, const char *name, const uint8_t *text, size_t n,
                           const crn_corpus_opts *opts, const crn_vocab *vocab) {
    *out = NULL;
    crn_corpus_opts def;
    if (!opts) {
        crn_corpus_opts_default(&def);
        opts = &def;
    }
    crn_corpus *c = NULL;
    int err = corpus_new(&c, name ? name : "(memory)");
    if (err) return err;
    static const uint8_t empty[1] = {0};
    c->n_bytes = n;
    err = load_text(c, text ? text : empty, text ? n : 0, NULL, opts, vocab, NULL);
    if (err) {
        crn_corpus_destroy(c);
        return err;
    }
    *out = c;
    return 0;
}

/* CRC-32 of the options that change the ids besides the text and the
 * vocabulary (val_frac too: the header holds the validation split's size). */
static uint32_t cache_key(const crn_corpus_opts *o) {
    int32_t e[3] = {(int32_t)o->unit, (int32_t)o->norm, (int32_t)o->invalid};
    uint32_t crc = crn_crc32(0, e, sizeof e);
    crc = crn_crc32(crc, &o->min_count, sizeof o->min_count);
    crc = crn_crc32(crc, &o->val_frac, sizeof o->val_frac);
    const char **lists[3] = {o->keep, o->drop, o->replace};
    size_t counts[3] = {o->n_keep, o->n_drop, o->n_replace};
    for (int l = 0; l < 3; l++) {
        crc = crn_crc32(crc, &counts[l], sizeof counts[l]);
        for (size_t i = 0; i < counts[l]; i++) {
            const char *p = lists[l][i] ? lists[l][i] : "";
            crc = crn_crc32(crc, p, strlen(p) + 1);
        }
    }
    return crc;
}

/* A mapped regular file with opts->id_cache: reuse the cache if it matches
 * (the file's size, mtime and CRC, the options), else load and write it. */
static int load_cached(crn_corpus *c, const uint8_t *map, size_t n, const struct stat *st, const crn_corpus_opts *o,
                       const crn_vocab *given) {
    uint32_t crc = 0;
    for (size_t pos = 0, step = (size_t)8 << 20; pos < n; pos += step) {
        size_t k = n - pos < step ? n - pos : step;
        crc = crn_crc32(crc, map + pos, k);
        release_pages(map, pos, pos + k);
    }
    c->text_crc = crc;
    crn_idcache_meta want = {.file_size = n, .mtime_s = (int64_t)st->st_mtim.tv_sec,
                             .mtime_ns = (int64_t)st->st_mtim.tv_nsec, .file_crc = crc,
                             .key_crc = cache_key(o), .built = given == NULL}, got;
    crn_vocab *v = NULL;
    int rc = crn_idcache_open(o->id_cache, &want, given, &got, &v, &c->map);
    if (rc < 0) return rc;
    c->id_cache_status = (enum crn_idcache_status)rc;
    if (rc != CRN_IDCACHE_REUSED) return load_text(c, map, n, map, o, given, &want);
    c->vocab = v;
    c->ids = (void *)c->map.ids;
    c->wide = got.wide;
    c->n_tokens = (size_t)got.n_tokens;
    c->n_chars = got.n_chars;
    c->n_nfc_chars = got.n_nfc_chars;
    c->n_val_chars = got.n_val_chars;
    c->n_invalid = got.n_invalid;
    c->n_unk = got.n_unk;
    c->n_lines_dropped = got.n_lines_dropped;
    c->had_bom = got.had_bom;
    c->n_train = train_split(c->n_tokens, o->val_frac);
    return 0;
}

#define CRN_CORPUS_MAX_STREAM ((size_t)1 << 30)

int crn_corpus_load(crn_corpus **out, const char *path, const crn_corpus_opts *opts, const crn_vocab *vocab) {
    *out = NULL;
    crn_corpus_opts def;
    if (!opts) {
        crn_corpus_opts_default(&def);
        opts = &def;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) return crn_error_set(CRN_ENOTFOUND, "%s: no such file", path);
        return crn_error_set(CRN_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return crn_error_set(CRN_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return crn_error_set(CRN_EINVAL, "%s: is a directory, not a text file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        /* a pipe or a device (/dev/stdin): read it all, then as from memory */
        obuf b = {0};
        uint8_t chunk[65536];
        ssize_t k;
        int err = 0;
        while ((k = read(fd, chunk, sizeof chunk)) != 0) {
            if (k < 0) {
                if (errno == EINTR) continue;
                err = crn_error_set(CRN_EIO, "%s: cannot read: %s", path, strerror(errno));
                break;
            }
            if (obuf_put(&b, chunk, (size_t)k)) {
                err = crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
                break;
            }
            /* a stream is held in memory whole (a file is mapped): bound it,
             * or /dev/zero or an endless pipe would eat all memory */
            if (b.n > CRN_CORPUS_MAX_STREAM) {
                err = crn_error_set(CRN_ERANGE, "%s: more than %u MiB from a pipe or device; save the text to a "
                                    "regular file (files are mapped, not read into memory)", path,
                                    (unsigned)(CRN_CORPUS_MAX_STREAM >> 20));
                break;
            }
        }
        close(fd);
        if (!err && b.n == 0) err = crn_error_set(CRN_EEMPTY, "%s: empty file", path);
        if (!err) err = crn_corpus_from_memory(out, path, b.p, b.n, opts, vocab);
        free(b.p);
        return err;
    }
    if (st.st_size == 0) {
        close(fd);
        return crn_error_set(CRN_EEMPTY, "%s: empty file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return crn_error_set(CRN_ERANGE, "%s: too large to map", path);
    }
    size_t n = (size_t)st.st_size;
    void *map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return crn_error_set(CRN_EIO, "%s: cannot map: %s", path, strerror(e));
    (void)madvise(map, n, MADV_SEQUENTIAL);

    crn_corpus *c = NULL;
    int err = corpus_new(&c, path);
    if (!err) {
        c->n_bytes = n;
        if (opts->id_cache)
            err = load_cached(c, map, n, &st, opts, vocab);
        else
            err = load_text(c, map, n, map, opts, vocab, NULL);
    }
    munmap(map, n);
    if (err) {
        crn_corpus_destroy(c);
        return err;
    }
    *out = c;
    return 0;
}

void crn_corpus_destroy(crn_corpus *c) {
    if (!c) return;
    crn_vocab_destroy(c->vocab);
    if (c->map.base)
        crn_idcache_unmap(&c->map);
    else
        free(c->ids);
    free(c->path);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* batching */

int crn_batcher_init(crn_batcher *bt, const crn_corpus *c, size_t B, size_t T) {
    memset(bt, 0, sizeof *bt);
    char b1[32], b2[32], b3[32], b4[32];
    if (B == 0 || T == 0) return crn_error_set(CRN_EINVAL, "batch %zu x seq %zu: both must be positive", B, T);
    size_t bt_n;
    if (crn_mul_size(B, T, &bt_n) || bt_n == SIZE_MAX)
        return crn_error_set(CRN_ERANGE, "batch %zu x seq %zu is too large", B, T);
    if (c->n_train < bt_n + 1)
        return crn_error_set(c->n_train ? CRN_ERANGE : CRN_EEMPTY,
                             "%s: train split has %s tokens; batch %s x seq %s needs at least %s", c->path,
                             crn_fmt_count(b1, c->n_train), crn_fmt_count(b2, B), crn_fmt_count(b3, T), crn_fmt_count(b4, bt_n + 1));
    bt->c = c;
    bt->B = B;
    bt->T = T;
    bt->n_win = (c->n_train - 1) / bt_n;
    bt->row_len = bt->n_win * T;
    return 0;
}

/* Mapped ids: release rows [b*L + w0*T, b*L + w1*T) of B rows (plus the
 * page before, left by the previous call's rounding). */
static void release_rows(const crn_corpus *c, size_t v0, size_t B, size_t L, size_t T, size_t w0, size_t w1) {
    size_t back = 4096 / (c->wide ? 4 : 2);
    for (size_t b = 0; b < B; b++) {
        size_t lo = b * L + w0 * T, hi = b * L + w1 * T;
        lo = lo > back ? lo - back : 0;
        crn_idcache_release(&c->map, c->wide, v0 + lo, v0 + hi);
    }
}

/* Release every this many windows (about 64 KiB of each row). */
static size_t release_every(const crn_corpus *c, size_t T) {
    size_t k = ((size_t)64 << 10) / (T * (c->wide ? 4 : 2));
    return k ? k : 1;
}

void crn_batcher_next(crn_batcher *bt, uint32_t *x, uint32_t *y, int *reset) {
    if (bt->win >= bt->n_win) {
        bt->win = 0;
        bt->rel_win = 0;
        bt->epoch++;
    }
    *reset = bt->win == 0;
    const size_t B = bt->B, T = bt->T, L = bt->row_len;
    for (size_t b = 0; b < B; b++) {
        size_t base = b * L + bt->win * T; /* + T <= B*L <= n_train - 1 */
        for (size_t t = 0; t < T; t++) {
            x[t * B + b] = crn_corpus_id(bt->c, base + t);
            y[t * B + b] = crn_corpus_id(bt->c, base + t + 1);
        }
    }
    bt->win++;
    if (bt->c->map.base && (bt->win < bt->rel_win || bt->win - bt->rel_win >= release_every(bt->c, T))) {
        size_t w0 = bt->win < bt->rel_win ? 0 : bt->rel_win; /* the caller moved win back (resume) */
        release_rows(bt->c, 0, B, L, T, w0, bt->win);
        bt->rel_win = bt->win;
    }
}

/* Rows of the validation layout: n pairs, L = ceil(n / B) per row. */
static size_t val_pairs(const crn_corpus *c) {
    size_t nv = c->n_tokens - c->n_train;
    return nv >= 2 ? nv - 1 : 0;
}

size_t crn_val_windows(const crn_corpus *c, size_t B, size_t T) {
    size_t n = val_pairs(c);
    if (!n || !B || !T) return 0;
    size_t L = n / B + (n % B != 0);
    return L / T + (L % T != 0);
}

void crn_range_window(const crn_corpus *c, size_t begin, size_t end, size_t B, size_t t0, size_t T, uint32_t *x,
                      uint32_t *y) {
    size_t n = end - begin >= 2 ? end - begin - 1 : 0; /* (input, target) pairs */
    size_t L = B ? n / B + (n % B != 0) : 0;
    for (size_t t = 0; t < T; t++) {
        size_t pos = t0 + t; /* position within the row */
        for (size_t b = 0; b < B; b++) {
            size_t i = b * L + pos; /* pair index */
            if (pos < L && i < n) {
                x[t * B + b] = crn_corpus_id(c, begin + i);
                y[t * B + b] = crn_corpus_id(c, begin + i + 1);
            } else {
                x[t * B + b] = 0;
                y[t * B + b] = CRN_IGNORE;
            }
        }
    }
    /* mapped ids: hand back what each row has read, about every 64 KiB (positions as windows of 1) */
    size_t k = release_every(c, 1), p1 = t0 + T;
    if (c->map.base && (p1 / k != t0 / k || p1 >= L))
        release_rows(c, begin, B, L, 1, p1 > k + T ? p1 - k - T : 0, p1 < L ? p1 : L);
}

void crn_val_window(const crn_corpus *c, size_t B, size_t T, size_t w, uint32_t *x, uint32_t *y) {
    crn_range_window(c, c->n_train, c->n_tokens, B, w * T, T, x, y);
}

double crn_corpus_chars_predicted(const crn_corpus *c, uint64_t count) {
    /* the NFC code points of the text after the first; for code points of
     * composed text (nfc, nfkc) exactly the targets (as the PyTorch peer counts) */
    if (crn_vocab_unit(c->vocab) == CRN_UNIT_CODEPOINT && crn_vocab_norm(c->vocab) != CRN_NORM_NONE)
        return (double)count;
    return (double)(c->n_nfc_chars > 1 ? c->n_nfc_chars - 1 : 1);
}
