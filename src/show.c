/* show.c — run a model over a text for `charrnn show`: characters (grapheme
 * clusters), per-token surprise from the forward pass eval uses, the top-k
 * candidates at each character, activations, text features and the units
 * that follow them (show.h). The page itself is written by show_html.c. */
#include "show.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common.h"
#include "corpus.h"
#include "utf8.h"

#define ACT_MAX_BYTES ((size_t)1 << 30) /* activations kept for the page */

static const char *const feat_names[CRN_FEAT_COUNT] = {"quote", "bracket", "linepos", "linestart", "hangul", "word"};
static const char *const feat_labels[CRN_FEAT_COUNT] = {
    "inside quotes", "inside brackets", "position in the line", "start of a line", "Hangul (+) vs Latin (-)",
    "inside a word",
};

const char *crn_show_feature_name(int f) { return f >= 0 && f < CRN_FEAT_COUNT ? feat_names[f] : "none"; }
const char *crn_show_feature_label(int f) { return f >= 0 && f < CRN_FEAT_COUNT ? feat_labels[f] : "no feature"; }

void crn_show_opts_default(crn_show_opts *o) {
    memset(o, 0, sizeof *o);
    o->top_k = CRN_SHOW_DEFAULT_TOP;
    o->max_chars = CRN_SHOW_DEFAULT_MAX_CHARS;
}

static int parse_u32(const char **p, uint32_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s++ - '0');
        if (v > UINT32_MAX) return -1;
    }
    *out = (uint32_t)v;
    *p = s;
    return 0;
}

int crn_show_parse_units(crn_show_unit *units, size_t cap, const char *spec) {
    size_t n = 0;
    const char *p = spec;
    for (;;) {
        const char *start = p;
        crn_show_unit u = {0, 0, -1, 0};
        if (parse_u32(&p, &u.layer) || *p++ != ':' || parse_u32(&p, &u.index) || (*p && *p != ',')) {
            size_t len = strcspn(start, ",");
            return crn_error_set(CRN_EINVAL, "neuron '%.*s' is not LAYER:UNIT (e.g. 0:12; both 0-based)",
                                 (int)CRN_MIN(len, (size_t)40), start);
        }
        if (n == cap) return crn_error_set(CRN_ERANGE, "more than %zu neurons", cap);
        units[n++] = u;
        if (!*p) break;
        p++;
    }
    return (int)n;
}

void crn_show_destroy(crn_show *s) {
    if (!s) return;
    free(s->text);
    free(s->chars);
    free(s->ids);
    free(s->tok_bits);
    free(s->top_ids);
    free(s->top_p);
    free(s->act);
    free(s->feat);
    free(s->units);
    free(s);
}

/* BOM dropped, invalid UTF-8 replaced (as eval's default), normalised. */
static int prepare(uint8_t **out, size_t *out_len, size_t *n_invalid, const uint8_t *s, size_t n,
                   enum crn_norm norm) {
    size_t bom = crn_utf8_bom_len(s, n), k = 0, rlen;
    uint8_t *rep = NULL;
    int rc = crn_utf8_repair(&rep, &rlen, &k, s + bom, n - bom, CRN_INVALID_REPLACE);
    if (rc < 0) return rc;
    *n_invalid += k;
    rc = crn_utf8_normalize(out, out_len, rep, rlen, norm);
    free(rep);
    return rc;
}

/* The shown text: prefix + text, normalised; *prefix_end = prefix bytes. */
static int join_text(crn_show *s, const crn_vocab *v, const crn_show_opts *o, const uint8_t *text, size_t n,
                     size_t *prefix_end) {
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int rc;
    enum crn_norm norm = crn_vocab_norm(v);
    if (o->prefix_len && (rc = prepare(&a, &na, &s->n_invalid, o->prefix, o->prefix_len, norm)) < 0) goto done;
    if ((rc = prepare(&b, &nb, &s->n_invalid, text, n, norm)) < 0) goto done;
    if (!(s->text = malloc(na + nb + 1))) {
        rc = crn_error_set(CRN_ENOMEM, "out of memory");
        goto done;
    }
    if (na) memcpy(s->text, a, na);
    if (nb) memcpy(s->text + na, b, nb);
    s->text_len = na + nb;
    *prefix_end = na;
    rc = 0;
done:
    free(a);
    free(b);
    return rc;
}

/* NFC code points of a cluster: bits per char are per NFC code point, as
 * eval's, also for decomposed text read with --normalize none. */
static size_t nfc_codepoints(const uint8_t *p, size_t n) {
    size_t k = crn_utf8_count(p, n);
    uint8_t *o;
    size_t on;
    if (k > 1 && crn_utf8_normalize(&o, &on, p, n, CRN_NORM_NFC) == 0) {
        k = crn_utf8_count(o, on);
        free(o);
    }
    return k;
}

/* Cut the text into grapheme clusters (at most max_chars kept; all counted)
 * and encode each into tokens. */
static int segment(crn_show *s, const crn_vocab *v, size_t max_chars, size_t prefix_end) {
    crn_tokiter it;
    const uint8_t *tok;
    size_t len, cap = 64, cut = s->text_len;
    int r;
    if (!(s->chars = malloc(cap * sizeof *s->chars))) return crn_error_set(CRN_ENOMEM, "out of memory");
    crn_tokiter_init(&it, s->text, s->text_len, CRN_UNIT_GRAPHEME);
    while ((r = crn_tokiter_next(&it, &tok, &len)) == 1) {
        size_t byte = (size_t)(tok - s->text);
        if (s->total_chars++ >= max_chars) {
            if (cut == s->text_len) cut = byte;
            continue;
        }
        if (s->n_chars == cap) {
            crn_show_char *nc = realloc(s->chars, 2 * cap * sizeof *nc);
            if (!nc) return crn_error_set(CRN_ENOMEM, "out of memory");
            s->chars = nc;
            cap *= 2;
        }
        s->chars[s->n_chars++] = (crn_show_char){byte, len, 0, 0, NAN, byte < prefix_end};
    }
    if (r < 0) return r;
    s->text_len = cut;
    if (!s->n_chars) return crn_error_set(CRN_EEMPTY, "no text to show");
    /* every token takes at least one byte of text (vocab.h) */
    if (!(s->ids = malloc(cut * sizeof *s->ids))) return crn_error_set(CRN_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n_chars; i++) {
        crn_show_char *c = &s->chars[i];
        size_t unk = 0;
        long long k = crn_vocab_encode(v, s->text + c->byte, c->len, s->ids + s->n_tokens, &unk);
        if (k < 0) return (int)k;
        c->tok = s->n_tokens;
        c->ntok = (size_t)k;
        s->n_tokens += (size_t)k;
        s->n_unk += unk;
    }
    return 0;
}

static int alloc_arrays(crn_show *s, const crn_model_config *cfg, uint32_t k) {
    size_t units = (size_t)cfg->layers * cfg->hidden, nact, nbytes;
    if (crn_mul_size(s->n_chars, units, &nact) || crn_mul_size(nact, sizeof(float), &nbytes) ||
        nbytes > ACT_MAX_BYTES)
        return crn_error_set(CRN_ERANGE, "the activations of %zu characters x %zu units would take over %zu MiB; "
                             "show fewer characters", s->n_chars, units, ACT_MAX_BYTES >> 20);
    s->top_k = k;
    s->layers = cfg->layers;
    s->hidden = cfg->hidden;
    s->tok_bits = malloc(s->n_tokens * sizeof *s->tok_bits);
    s->top_ids = calloc(s->n_chars * k, sizeof *s->top_ids);
    s->top_p = calloc(s->n_chars * k, sizeof *s->top_p);
    s->act = malloc(nbytes);
    s->feat = malloc((size_t)CRN_FEAT_COUNT * s->n_chars * sizeof *s->feat);
    if (!s->tok_bits || !s->top_ids || !s->top_p || !s->act || !s->feat)
        return crn_error_set(CRN_ENOMEM, "out of memory");
    return 0;
}

/* The k most likely tokens of softmax(logits) (V), most likely first. */
static void top_k(uint32_t *ids, float *p, uint32_t k, const real *logits, uint32_t V) {
    double mx = -INFINITY, sum = 0;
    for (uint32_t j = 0; j < V; j++) mx = fmax(mx, (double)logits[j]);
    for (uint32_t j = 0; j < V; j++) sum += exp((double)logits[j] - mx);
    uint32_t n = 0;
    for (uint32_t j = 0; j < V; j++) {
        float pj = (float)(exp((double)logits[j] - mx) / sum);
        if (n == k && pj <= p[k - 1]) continue;
        uint32_t at = n < k ? n++ : k - 1;
        while (at > 0 && p[at - 1] < pj) {
            p[at] = p[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        p[at] = pj;
        ids[at] = j;
    }
}

/* One stream from a zero state, one token per forward (B = 1, T = 1): each
 * step's loss is the next token's surprise, its logits the next
 * character's candidates, the state after it the activations. */
static int score(crn_show *s, crn_model *m, const crn_show_opts *o) {
    crn_state *st = NULL;
    const crn_model_config *cfg = crn_model_config_of(m);
    uint32_t V = cfg->vocab, H = cfg->hidden;
    int rc;
    if ((rc = crn_model_reserve(m, 1, 1)) < 0 || (rc = crn_state_create(&st, m, 1)) < 0) goto done;
    size_t ci = 0;
    s->tok_bits[0] = NAN;
    for (size_t t = 0; t < s->n_tokens; t++) {
        uint32_t x = s->ids[t], y = t + 1 < s->n_tokens ? s->ids[t + 1] : CRN_IGNORE;
        double nats = 0;
        if ((rc = crn_model_forward(m, st, &x, &y, 1, 1, NULL, &nats, NULL)) < 0) goto done;
        if (!isfinite(nats)) { /* finite weights can still overflow: a run that diverged */
            rc = crn_error_set(CRN_ENONFINITE, "the model's predictions are not finite (NaN/Inf): its weights have "
                               "blown up; use an earlier checkpoint");
            goto done;
        }
        const crn_show_char *c = &s->chars[ci];
        if (y != CRN_IGNORE) {
            s->tok_bits[t + 1] = nats / M_LN2;
            if (t + 1 == c->tok + c->ntok) /* the next token starts the next character */
                top_k(s->top_ids + (ci + 1) * s->top_k, s->top_p + (ci + 1) * s->top_k, s->top_k,
                      crn_model_logits(m), V);
        }
        if (t + 1 == c->tok + c->ntok) {
            float *row = s->act + ci * (size_t)cfg->layers * H;
            for (uint32_t l = 0; l < cfg->layers; l++) {
                const real *a = o->cell_state ? crn_state_c(st, l) : crn_state_h(st, l);
                for (uint32_t j = 0; j < H; j++) row[(size_t)l * H + j] = (float)a[j];
            }
            ci++;
        }
        if (o->progress && ((t + 1) % 1024 == 0 || t + 1 == s->n_tokens)) o->progress(o->progress_ud, t + 1, s->n_tokens);
    }
    for (size_t i = 0; i < s->n_chars; i++) {
        crn_show_char *c = &s->chars[i];
        for (size_t t = c->tok; t < c->tok + c->ntok; t++) {
            if (isnan(s->tok_bits[t])) continue;
            c->bits = isnan(c->bits) ? s->tok_bits[t] : c->bits + s->tok_bits[t];
        }
        if (!c->prefix && !isnan(c->bits)) s->bits += c->bits;
        if (!c->prefix) s->codepoints += nfc_codepoints(s->text + c->byte, c->len);
    }
    rc = 0;
done:
    crn_state_destroy(st);
    return rc;
}

static int is_hangul(int32_t cp) {
    return (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F) ||
           (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xD7B0 && cp <= 0xD7FF);
}

static int is_latin_letter(int32_t cp) {
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z')) return 1;
    if (cp == 0xD7 || cp == 0xF7) return 0;
    return (cp >= 0xC0 && cp <= 0x24F) || (cp >= 0x1E00 && cp <= 0x1EFF);
}

static int is_word(int32_t cp) {
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO);
}

/* 1 opening, -1 closing, 2 toggling ("), 0 no quote mark. */
static int quote_kind(int32_t cp) {
    switch (cp) {
    case '"': return 2;
    case 0x201C: case 0xAB: case 0x300C: case 0x300E: return 1;
    case 0x201D: case 0xBB: case 0x300D: case 0x300F: return -1;
    default: return 0;
    }
}

static void features(crn_show *s) {
    int inq = 0, prev_nl = 1;
    size_t depth = 0, col = 0, n = s->n_chars;
    for (size_t i = 0; i < n; i++) {
        int32_t cp = 0;
        const crn_show_char *c = &s->chars[i];
        if (crn_utf8_decode(s->text + c->byte, c->len, &cp) < 0) cp = 0xFFFD;
        int q = quote_kind(cp), open = q == 1 || (q == 2 && !inq), close = q == -1 || (q == 2 && inq);
        s->feat[CRN_FEAT_QUOTE * n + i] = (float)(inq || q != 0);
        if (open) inq = 1;
        if (close) inq = 0;
        int ob = cp == '(' || cp == '[' || cp == '{', cb = cp == ')' || cp == ']' || cp == '}';
        s->feat[CRN_FEAT_BRACKET * n + i] = (float)(depth > 0 || ob);
        if (ob) depth++;
        if (cb && depth) depth--;
        s->feat[CRN_FEAT_LINEPOS * n + i] = (float)col;
        s->feat[CRN_FEAT_LINESTART * n + i] = (float)prev_nl;
        s->feat[CRN_FEAT_HANGUL * n + i] = is_hangul(cp) ? 1.0f : is_latin_letter(cp) ? -1.0f : 0.0f;
        s->feat[CRN_FEAT_WORD * n + i] = (float)is_word(cp);
        prev_nl = cp == '\n';
        col = prev_nl ? 0 : col + 1;
    }
    /* Hangul vs Latin means nothing in a text without both */
    size_t nh = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        nh += s->feat[CRN_FEAT_HANGUL * n + i] > 0;
        nl += s->feat[CRN_FEAT_HANGUL * n + i] < 0;
    }
    if (!nh || !nl) memset(s->feat + CRN_FEAT_HANGUL * n, 0, n * sizeof *s->feat);
}

/* corr (CRN_FEAT_COUNT, units): Pearson correlation of each unit with each
 * feature over the characters (0 where either is constant). */
static void correlate(const crn_show *s, double *corr, size_t units) {
    size_t n = s->n_chars;
    double fm[CRN_FEAT_COUNT], fs[CRN_FEAT_COUNT];
    for (int f = 0; f < CRN_FEAT_COUNT; f++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++) m += s->feat[f * n + i];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) v += (s->feat[f * n + i] - m) * (s->feat[f * n + i] - m);
        fm[f] = m;
        fs[f] = sqrt(v);
    }
    for (size_t j = 0; j < units; j++) {
        double m = 0, v = 0, cov[CRN_FEAT_COUNT] = {0};
        for (size_t i = 0; i < n; i++) m += s->act[i * units + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double a = s->act[i * units + j] - m;
            v += a * a;
            for (int f = 0; f < CRN_FEAT_COUNT; f++) cov[f] += a * (s->feat[f * n + i] - fm[f]);
        }
        for (int f = 0; f < CRN_FEAT_COUNT; f++) {
            double d = sqrt(v) * fs[f];
            corr[f * units + j] = d > 0 ? cov[f] / d : 0;
        }
    }
}

static int cmp_abs_corr(const void *a, const void *b) {
    double x = fabs(((const crn_show_unit *)a)->corr), y = fabs(((const crn_show_unit *)b)->corr);
    return (x < y) - (x > y);
}

/* Units shown: the given ones labelled with their best feature, or (auto)
 * the best unused unit for each non-constant feature, strongest first. */
static int choose_units(crn_show *s, const crn_show_opts *o) {
    size_t units = (size_t)s->layers * s->hidden;
    double *corr = malloc((size_t)CRN_FEAT_COUNT * units * sizeof *corr);
    s->units = calloc(CRN_FEAT_COUNT + o->n_units + 1, sizeof *s->units);
    if (!corr || !s->units) {
        free(corr);
        return crn_error_set(CRN_ENOMEM, "out of memory");
    }
    correlate(s, corr, units);
    for (size_t u = 0; u < o->n_units; u++) {
        crn_show_unit x = o->units[u];
        size_t j = (size_t)x.layer * s->hidden + x.index;
        x.feature = -1;
        x.corr = 0;
        for (int f = 0; f < CRN_FEAT_COUNT; f++)
            if (fabs(corr[f * units + j]) > fabs(x.corr)) x.feature = f, x.corr = corr[f * units + j];
        s->units[s->n_units++] = x;
    }
    for (int f = 0; o->auto_neurons && f < CRN_FEAT_COUNT; f++) {
        size_t best = units;
        for (size_t j = 0; j < units; j++) {
            int used = 0;
            for (size_t u = 0; u < s->n_units; u++) used |= (size_t)s->units[u].layer * s->hidden + s->units[u].index == j;
            if (!used && corr[f * units + j] != 0 &&
                (best == units || fabs(corr[f * units + j]) > fabs(corr[f * units + best])))
                best = j;
        }
        if (best < units)
            s->units[s->n_units++] = (crn_show_unit){(uint32_t)(best / s->hidden), (uint32_t)(best % s->hidden), f,
                                                     corr[f * units + best]};
    }
    if (o->auto_neurons) qsort(s->units, s->n_units, sizeof *s->units, cmp_abs_corr);
    free(corr);
    return 0;
}

static int check_opts(const crn_model_config *cfg, const crn_show_opts *o) {
    if (o->top_k < 1 || o->top_k > CRN_SHOW_MAX_TOP)
        return crn_error_set(CRN_EINVAL, "top-k %u is out of range [1, %u]", o->top_k, CRN_SHOW_MAX_TOP);
    if (o->max_chars < 1 || o->max_chars > CRN_SHOW_MAX_CHARS)
        return crn_error_set(CRN_EINVAL, "max-chars %zu is out of range [1, %u]", o->max_chars, CRN_SHOW_MAX_CHARS);
    if (o->n_units > CRN_SHOW_MAX_NEURONS)
        return crn_error_set(CRN_ERANGE, "%zu neurons; at most %u", o->n_units, CRN_SHOW_MAX_NEURONS);
    if (o->cell_state && cfg->cell != CRN_CELL_LSTM)
        return crn_error_set(CRN_EINVAL, "cell states exist only in LSTM models; this one is %s",
                             crn_cell_name(cfg->cell));
    for (size_t u = 0; u < o->n_units; u++)
        if (o->units[u].layer >= cfg->layers || o->units[u].index >= cfg->hidden)
            return crn_error_set(CRN_EINVAL, "neuron %u:%u is out of range: the model has %u layer%s of %u units "
                                 "(0-based)", o->units[u].layer, o->units[u].index, cfg->layers,
                                 cfg->layers == 1 ? "" : "s", cfg->hidden);
    return 0;
}

int crn_show_run(crn_show **out, crn_model *m, const crn_vocab *v, const uint8_t *text, size_t n,
                 const crn_show_opts *o) {
    *out = NULL;
    const crn_model_config *cfg = crn_model_config_of(m);
    int rc = check_opts(cfg, o);
    if (rc < 0) return rc;
    if (cfg->vocab != crn_vocab_size(v)) return crn_error_set(CRN_EINVAL, "model and vocabulary sizes differ");
    crn_show *s = calloc(1, sizeof *s);
    if (!s) return crn_error_set(CRN_ENOMEM, "out of memory");
    s->cell_state = o->cell_state;
    size_t prefix_end = 0;
    if ((rc = join_text(s, v, o, text, n, &prefix_end)) < 0 || (rc = segment(s, v, o->max_chars, prefix_end)) < 0 ||
        (rc = alloc_arrays(s, cfg, CRN_MIN(o->top_k, cfg->vocab))) < 0 || (rc = score(s, m, o)) < 0)
        goto fail;
    features(s);
    if ((rc = choose_units(s, o)) < 0) goto fail;
    *out = s;
    return 0;
fail:
    crn_show_destroy(s);
    return rc;
}

double crn_show_bits_per_char(const crn_show *s) {
    /* eval predicts every character but the first; a prefix (prompt) is context */
    double den = (double)s->codepoints - (s->chars[0].prefix ? 0 : 1);
    return den > 0 ? s->bits / den : NAN;
}
