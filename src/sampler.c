/* sampler.c — sampling (temperature -> top-k -> top-p -> draw), the
 * generation loop with streaming output, --stop hold-back, --match
 * constrained sampling, beam search, and the REPL command parser.
 * See sampler.h for the semantics. */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "regex.h"
#include "utf8.h"

/* ---- settings ------------------------------------------------------------- */

void crn_sample_settings_init(crn_sample_settings *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 1.0;
    s->top_k = 0;
    s->top_p = 1.0;
    s->seed = 0;
    s->length = 500;
    s->beam = 0;
}

void crn_sample_settings_clear_stops(crn_sample_settings *s) {
    for (uint32_t i = 0; i < s->n_stop; i++) {
        free(s->stop[i]);
        s->stop[i] = NULL;
    }
    s->n_stop = 0;
}

void crn_sample_settings_free(crn_sample_settings *s) {
    if (!s) return;
    crn_sample_settings_clear_stops(s);
    free(s->match);
    s->match = NULL;
}

static char *dup_str(const char *p) {
    size_t n = strlen(p) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, p, n);
    return d;
}

int crn_sample_settings_copy(crn_sample_settings *dst, const crn_sample_settings *src) {
    *dst = *src;
    dst->n_stop = 0;
    dst->match = NULL;
    for (uint32_t i = 0; i < CRN_MAX_STOP; i++) dst->stop[i] = NULL;
    for (uint32_t i = 0; i < src->n_stop; i++) {
        if (!(dst->stop[i] = dup_str(src->stop[i]))) goto nomem;
        dst->n_stop = i + 1;
    }
    if (src->match && !(dst->match = dup_str(src->match))) goto nomem;
    return 0;
nomem:
    crn_sample_settings_free(dst);
    return crn_error_set(CRN_ENOMEM, "sampling settings: out of memory");
}

int crn_sample_settings_add_stop(crn_sample_settings *s, const char *pattern) {
    if (s->n_stop >= CRN_MAX_STOP)
        return crn_error_set(CRN_ERANGE, "too many stop patterns (at most %d)", CRN_MAX_STOP);
    crn_regex *re = NULL;
    int err = crn_regex_compile(&re, pattern, 0);
    if (err < 0) return err;
    static const uint8_t empty[1] = {0};
    int rc = crn_regex_search(re, empty, 0, 0, NULL, NULL);
    crn_regex_destroy(re);
    if (rc < 0) return rc;
    if (rc == 1)
        return crn_error_set(CRN_EINVAL, "stop pattern '%s' matches the empty string (it would stop at once)",
                             pattern);
    char *d = dup_str(pattern);
    if (!d) return crn_error_set(CRN_ENOMEM, "stop pattern: out of memory");
    s->stop[s->n_stop++] = d;
    return 0;
}

int crn_sample_settings_set_match(crn_sample_settings *s, const char *pattern) {
    char *d = NULL;
    if (pattern) {
        crn_regex *re = NULL;
        int err = crn_regex_compile(&re, pattern, CRN_REGEX_ANCHORED | CRN_REGEX_ENDANCHORED);
        if (err < 0) return err;
        crn_regex_destroy(re);
        if (!(d = dup_str(pattern))) return crn_error_set(CRN_ENOMEM, "match pattern: out of memory");
    }
    free(s->match);
    s->match = d;
    return 0;
}

int crn_sample_settings_check(const crn_sample_settings *s) {
    if (!(s->temperature >= 0 && s->temperature <= CRN_SAMPLE_MAX_TEMPERATURE))
        return crn_error_set(CRN_ERANGE, "temperature %g is out of range [0, %g]", s->temperature,
                             CRN_SAMPLE_MAX_TEMPERATURE);
    if (!(s->top_p > 0 && s->top_p <= 1))
        return crn_error_set(CRN_ERANGE, "top-p %g is out of range (0, 1]", s->top_p);
    if (s->length < 1 || s->length > CRN_SAMPLE_MAX_LENGTH)
        return crn_error_set(CRN_ERANGE, "length %u is out of range [1, %u]", s->length, CRN_SAMPLE_MAX_LENGTH);
    if (s->beam > CRN_SAMPLE_MAX_BEAM)
        return crn_error_set(CRN_ERANGE, "beam width %u is out of range [0, %u]", s->beam, CRN_SAMPLE_MAX_BEAM);
    if (s->beam >= 2 && (uint64_t)s->beam * s->length > 10000000u)
        return crn_error_set(CRN_ERANGE, "beam width x length = %llu is too large (at most 10000000)",
                             (unsigned long long)s->beam * s->length);
    if (s->beam >= 2 && s->match)
        return crn_error_set(CRN_EINVAL, "--match cannot be combined with beam search");
    if (s->n_stop > CRN_MAX_STOP) return crn_error_set(CRN_ERANGE, "too many stop patterns");
    return 0;
}

/* ---- one step's candidates -------------------------------------------------- */

typedef struct cand {
    double w;     /* unnormalised probability (T > 0) or the logit (T == 0) */
    uint32_t id;
} cand;

/* Most likely first; ties by smaller id, so the order is total and the
 * result deterministic whatever the sort does. */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->w > y->w) return -1;
    if (x->w < y->w) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Move the k best (cand_cmp order) to c[0..k) (unordered). Quickselect with
 * median-of-three pivots: O(n) expected, no allocation. */
static void select_top(cand *c, uint32_t n, uint32_t k) {
    uint32_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        /* median of three to c[mid] */
        if (cand_cmp(&c[mid], &c[lo]) < 0) { cand t = c[mid]; c[mid] = c[lo]; c[lo] = t; }
        if (cand_cmp(&c[hi - 1], &c[lo]) < 0) { cand t = c[hi - 1]; c[hi - 1] = c[lo]; c[lo] = t; }
        if (cand_cmp(&c[hi - 1], &c[mid]) < 0) { cand t = c[hi - 1]; c[hi - 1] = c[mid]; c[mid] = t; }
        cand pivot = c[mid];
        /* three-way partition: [lo, lt) better, [lt, gt) equal, [gt, hi) worse */
        uint32_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            int r = cand_cmp(&c[i], &pivot);
            if (r < 0) { cand t = c[lt]; c[lt] = c[i]; c[i] = t; lt++; i++; }
            else if (r > 0) { gt--; cand t = c[gt]; c[gt] = c[i]; c[i] = t; }
            else i++;
        }
        if (k <= lt) hi = lt;
        else if (k >= gt) lo = gt;
        else return;
    }
}

/* Sort c[0..n) best first, in place (heapsort: no allocation, unlike
 * glibc's qsort, which may malloc a merge buffer, inside the step loop). */
static void sift_down(cand *c, size_t root, size_t n) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        /* a max-heap of "worst first" order, so the sorted result is best first */
        if (child + 1 < n && cand_cmp(&c[child + 1], &c[child]) > 0) child++;
        if (cand_cmp(&c[child], &c[root]) <= 0) return;
        cand t = c[root];
        c[root] = c[child];
        c[child] = t;
        root = child;
    }
}

static void sort_cands(cand *c, size_t n) {
    if (n < 2) return;
    for (size_t i = n / 2; i-- > 0;) sift_down(c, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        cand t = c[0];
        c[0] = c[end];
        c[end] = t;
        sift_down(c, 0, end);
    }
}

typedef struct pick {
    cand *c;      /* (V) scratch */
    uint32_t n;   /* live candidates c[0..n) */
    double total; /* sum of their w (T > 0) */
    int greedy;   /* T < CRN_SAMPLE_MIN_TEMPERATURE (e.g. 0): w holds logits, take the max */
    double lse;   /* log sum exp of all V logits if computed on the way (T == 1), else NAN */
} pick;

/* Steps 1-3 of the documented order: fill p with the filtered candidates. */
static void pick_prepare(pick *p, const real *logits, uint32_t V, const crn_sample_settings *s) {
    uint32_t first = V > 1 ? 1 : 0; /* never <unk> unless it is all there is */
    cand *c = p->c;
    uint32_t n = 0;
    p->greedy = !(s->temperature >= CRN_SAMPLE_MIN_TEMPERATURE); /* 1/T would be huge or infinite */
    p->lse = NAN;
    if (p->greedy) {
        for (uint32_t i = first; i < V; i++) c[n++] = (cand){(double)logits[i], i};
        p->n = n;
        p->total = 0;
        return;
    }
    double mx = -INFINITY;
    for (uint32_t i = first; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double inv_t = 1.0 / s->temperature;
    for (uint32_t i = first; i < V; i++) c[n++] = (cand){exp(((double)logits[i] - mx) * inv_t), i};
    if (s->temperature == 1) { /* the model's own normaliser comes for free */
        double sum = first ? exp((double)logits[0] - mx) : 0;
        for (uint32_t i = 0; i < n; i++) sum += c[i].w;
        p->lse = mx + log(sum);
    }
    if (s->top_k > 0 && s->top_k < n) {
        select_top(c, n, s->top_k);
        n = s->top_k;
    }
    double total = 0;
    if (s->top_p < 1) {
        sort_cands(c, n);
        double all = 0;
        for (uint32_t i = 0; i < n; i++) all += c[i].w;
        double want = s->top_p * all, cum = 0;
        uint32_t keep = 0;
        while (keep < n) {
            cum += c[keep].w;
            keep++;
            if (cum >= want) break;
        }
        n = keep;
        total = cum;
    } else {
        for (uint32_t i = 0; i < n; i++) total += c[i].w;
    }
    p->n = n;
    p->total = total;
}

/* Step 4: draw a live candidate; returns its index in p->c, or -1 if none
 * is left. When the probability mass left has underflowed to zero but
 * candidates remain, the largest w (first in c order) is taken. */
static long pick_draw(pick *p, crn_rng *rng) {
    if (p->n == 0) return -1;
    cand *c = p->c;
    if (p->greedy || !(p->total > 0)) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < p->n; i++)
            if (cand_cmp(&c[i], &c[best]) < 0) best = i;
        return best;
    }
    double u = crn_rng_uniform(rng) * p->total;
    double cum = 0;
    uint32_t last = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        if (c[i].w <= 0) continue;
        cum += c[i].w;
        last = i;
        if (u < cum) return i;
    }
    return last; /* rounding: u landed past the accumulated sum */
}

/* Zero a rejected candidate: it leaves the live set, the rest renormalise. */
static void pick_remove(pick *p, long i) {
    if (!p->greedy) p->total -= p->c[i].w;
    p->c[i] = p->c[--p->n];
    if (p->total < 0) p->total = 0;
}

uint32_t crn_sample_logits(const real *logits, uint32_t V, const crn_sample_settings *s, crn_rng *rng,
                           void *scratch) {
    pick p = {.c = scratch};
    pick_prepare(&p, logits, V, s);
    long i = pick_draw(&p, rng);
    return i < 0 ? 0 : p.c[i].id;
}

size_t crn_sample_scratch_size(uint32_t V) { return (size_t)(V ? V : 1) * sizeof(cand); }

/* log softmax(logits)[t] over all V (the model's own distribution, T = 1). */
static double log_prob(const real *logits, uint32_t V, uint32_t t) {
    double mx = -INFINITY;
    for (uint32_t i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (uint32_t i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[t] - mx - log(sum);
}

/* ---- the generator ------------------------------------------------------------ */

const char *crn_gen_stop_name(enum crn_gen_stop r) {
    switch (r) {
    case CRN_GEN_STOP_LENGTH: return "length";
    case CRN_GEN_STOP_REGEX: return "stop";
    case CRN_GEN_STOP_MATCH: return "match";
    case CRN_GEN_STOP_NO_CONTINUATION: return "no_continuation";
    case CRN_GEN_STOP_INTERRUPTED: return "interrupted";
    default: return "none";
    }
}

struct crn_generator {
    crn_model *m;
    const crn_vocab *v;
    uint32_t V;
    size_t max_tok;             /* longest token in bytes */
    crn_sample_settings s;      /* owned copy */
    crn_regex *stop[CRN_MAX_STOP];
    crn_regex *match;
    crn_rng rng;
    volatile sig_atomic_t *cancel;

    crn_state *st;              /* B = 1: the sampling stream */
    int have_logits;            /* logits[0..V) hold the next-token distribution of st */
    real *logits;               /* (W, V), W = max(1, beam) */
    cand *cands;                /* (V) */

    uint8_t *gen;               /* generated text of the current run, + room for trial decodes */
    size_t gen_cap;
    crn_decoder dec;
    /* jamo: the prompt's last syllable while it may still be completed (L V,
     * or L), for the next run's first token to decide (crn_generator_run) */
    int32_t carry[2];
    int ncarry;
    size_t carry_raw;           /* its bytes at the end of the prompt as given */
    size_t replaced;            /* this run's text restates (replaces) that many prompt bytes */

    /* beam search (beam >= 2) */
    uint32_t W;
    crn_state *bst[2];          /* B = W each, double-buffered */
    uint32_t *btok[2];          /* (W, length) token histories */
    double *bscore[2];          /* (W) summed log-probabilities */
    uint32_t *bfeed;            /* (W) */
    double *cscore;             /* (W) top candidates, best first */
    uint32_t *cbeam, *ctok;     /* (W) */
};

static void free_beams(crn_generator *g) {
    for (int i = 0; i < 2; i++) {
        crn_state_destroy(g->bst[i]);
        g->bst[i] = NULL;
        free(g->btok[i]);
        g->btok[i] = NULL;
        free(g->bscore[i]);
        g->bscore[i] = NULL;
    }
    free(g->bfeed);
    free(g->cscore);
    free(g->cbeam);
    free(g->ctok);
    g->bfeed = g->cbeam = g->ctok = NULL;
    g->cscore = NULL;
    g->W = 0;
}

static void free_regexes(crn_regex **stop, crn_regex **match) {
    for (int i = 0; i < CRN_MAX_STOP; i++) {
        crn_regex_destroy(stop[i]);
        stop[i] = NULL;
    }
    crn_regex_destroy(*match);
    *match = NULL;
}

void crn_generator_destroy(crn_generator *g) {
    if (!g) return;
    free_regexes(g->stop, &g->match);
    free_beams(g);
    crn_state_destroy(g->st);
    free(g->logits);
    free(g->cands);
    free(g->gen);
    crn_sample_settings_free(&g->s);
    free(g);
}

int crn_generator_create(crn_generator **out, crn_model *m, const crn_vocab *v, const crn_sample_settings *s) {
    *out = NULL;
    int err;
    uint32_t V = crn_vocab_size(v);
    if (crn_model_config_of(m)->vocab != V)
        return crn_error_set(CRN_EINVAL, "model has %u output tokens but the vocabulary %u",
                             crn_model_config_of(m)->vocab, V);
    crn_generator *g = calloc(1, sizeof *g);
    if (!g) return crn_error_set(CRN_ENOMEM, "generator: out of memory");
    g->m = m;
    g->v = v;
    g->V = V;
    crn_sample_settings_init(&g->s);
    for (uint32_t i = 0; i < V; i++) {
        size_t len = 0;
        (void)crn_vocab_token(v, i, &len);
        if (len > g->max_tok) g->max_tok = len;
    }
    if (g->max_tok < 4) g->max_tok = 4;
    if ((err = crn_state_create(&g->st, m, 1)) < 0) goto fail;
    if (!(g->cands = malloc((size_t)V * sizeof *g->cands))) goto nomem;
    if ((err = crn_generator_configure(g, s)) < 0) goto fail;
    crn_rng_seed(&g->rng, s->seed);
    *out = g;
    return 0;
nomem:
    err = crn_error_set(CRN_ENOMEM, "generator: out of memory");
fail:
    crn_generator_destroy(g);
    return err;
}

int crn_generator_configure(crn_generator *g, const crn_sample_settings *s) {
    int err = crn_sample_settings_check(s);
    if (err < 0) return err;
    crn_regex *stop[CRN_MAX_STOP] = {0}, *match = NULL;
    crn_sample_settings copy;
    crn_sample_settings_init(&copy);
    real *logits = NULL;
    uint8_t *gen = NULL;
    int rebuilt = 0;
    for (uint32_t i = 0; i < s->n_stop; i++)
        if ((err = crn_regex_compile(&stop[i], s->stop[i], 0)) < 0) goto fail;
    if (s->match && (err = crn_regex_compile(&match, s->match, CRN_REGEX_ANCHORED | CRN_REGEX_ENDANCHORED)) < 0)
        goto fail;
    if ((err = crn_sample_settings_copy(&copy, s)) < 0) goto fail;

    uint32_t W = s->beam >= 2 ? s->beam : 1;
    /* Output bytes never exceed the tokens' bytes (jamo recompose to fewer);
     * the slack is for trial decodes of a candidate past gen_len. */
    size_t gen_cap;
    if (crn_mul_size(s->length, g->max_tok, &gen_cap) < 0 ||
        crn_add_size(gen_cap, 4 * CRN_DECODER_HOLD + 2 * g->max_tok + 16, &gen_cap) < 0) {
        err = crn_error_set(CRN_ERANGE, "length %u is too large", s->length);
        goto fail;
    }
    size_t nlog;
    if (crn_mul_size(W, g->V, &nlog) < 0 || !(logits = calloc(nlog, sizeof *logits))) goto nomem;
    /* zeroed: PCRE2's JIT may read a little past the subject (valgrind-clean) */
    if (!(gen = calloc(gen_cap, 1))) goto nomem;
    if (g->logits && g->have_logits) memcpy(logits, g->logits, (size_t)g->V * sizeof *logits);

    /* beams */
    if (W >= 2 && (W != g->W || !g->btok[0] || s->length != g->s.length)) {
        rebuilt = 1;
        free_beams(g);
        for (int i = 0; i < 2; i++) {
            if ((err = crn_state_create(&g->bst[i], g->m, W)) < 0) goto fail;
            if (!(g->btok[i] = malloc((size_t)W * s->length * sizeof(uint32_t)))) goto nomem;
            if (!(g->bscore[i] = malloc(W * sizeof(double)))) goto nomem;
        }
        if (!(g->bfeed = calloc(W, sizeof(uint32_t))) || !(g->cscore = malloc(W * sizeof(double))) ||
            !(g->cbeam = malloc(W * sizeof(uint32_t))) || !(g->ctok = malloc(W * sizeof(uint32_t))))
            goto nomem;
        g->W = W;
    } else if (W < 2) {
        free_beams(g);
    }

    free_regexes(g->stop, &g->match);
    memcpy(g->stop, stop, sizeof stop);
    g->match = match;
    crn_sample_settings_free(&g->s);
    g->s = copy;
    free(g->logits);
    g->logits = logits;
    free(g->gen);
    g->gen = gen;
    g->gen_cap = gen_cap;
    return 0;
nomem:
    err = crn_error_set(CRN_ENOMEM, "generator: out of memory");
fail:
    if (rebuilt) free_beams(g); /* half-built: run refuses beam search until a configure succeeds */
    free_regexes(stop, &match);
    crn_sample_settings_free(&copy);
    free(logits);
    free(gen);
    return err;
}

void crn_generator_seed(crn_generator *g, uint64_t seed) {
    g->s.seed = seed;
    crn_rng_seed(&g->rng, seed);
}

void crn_generator_reset(crn_generator *g) {
    crn_state_reset(g->st);
    g->have_logits = 0;
    g->ncarry = 0;
}

size_t crn_generator_replaced(const crn_generator *g) { return g->replaced; }

void crn_generator_set_cancel(crn_generator *g, volatile sig_atomic_t *flag) { g->cancel = flag; }

int crn_generator_fork(crn_generator **out, const crn_generator *g) {
    crn_generator *f;
    int err = crn_generator_create(&f, g->m, g->v, &g->s);
    if (err < 0) return err;
    crn_state_copy_stream(f->st, 0, g->st, 0);
    f->have_logits = g->have_logits;
    if (g->have_logits) memcpy(f->logits, g->logits, (size_t)g->V * sizeof *f->logits);
    f->rng = g->rng;
    f->cancel = g->cancel;
    *out = f;
    return 0;
}

/* Weights that are finite but blown up (a run that diverged) overflow in the
 * forward pass: sampling from NaN/Inf logits would print garbage. */
static int check_logits(const real *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return crn_error_set(CRN_ENONFINITE, "the model's output is not finite (NaN/Inf): its weights have "
                                 "blown up; use an earlier checkpoint");
    return 0;
}

static int feed(crn_generator *g, uint32_t id) {
    int err = crn_model_step(g->m, g->st, &id, g->logits);
    if (err < 0) return err;
    if ((err = check_logits(g->logits, g->V)) < 0) return err;
    g->have_logits = 1;
    return 0;
}

static int is_L(int32_t c) { return c >= 0x1100 && c <= 0x1112; }
static int is_V(int32_t c) { return c >= 0x1161 && c <= 0x1175; }
static int is_T(int32_t c) { return c >= 0x11A8 && c <= 0x11C2; }

/* The code point of a one-code-point token, else -1. */
static int32_t token_cp(const crn_vocab *v, uint32_t id) {
    size_t len = 0;
    const uint8_t *t = id < crn_vocab_size(v) ? crn_vocab_token(v, id, &len) : NULL;
    int32_t cp;
    if (!t || len == 0 || crn_utf8_decode(t, len, &cp) != (int)len) return -1;
    return cp;
}

/* Does token tok continue the syllable the decoder holds (a vowel after a
 * leading consonant, a final consonant after L V)? */
static int continues_syllable(const crn_vocab *v, const crn_decoder *d, uint32_t tok) {
    int32_t c = d->nheld ? token_cp(v, tok) : -1;
    return (d->nheld == 1 && is_V(c)) || (d->nheld == 2 && is_T(c));
}

/* Jamo text stays composed: a vowel only after a leading consonant (and
 * then nothing else), a final consonant only after L V. */
static int jamo_allowed(const crn_vocab *v, const crn_decoder *d, uint32_t tok) {
    int32_t c = token_cp(v, tok);
    if (d->nheld == 1) return is_V(c);
    return is_V(c) ? 0 : is_T(c) ? d->nheld == 2 : 1;
}

/* The last code point of valid UTF-8 s (n > 0 bytes); *len its bytes. */
static int32_t last_cp(const uint8_t *s, size_t n, size_t *len) {
    size_t i = n;
    while (i > 0 && (s[i - 1] & 0xC0) == 0x80) i--;
    int32_t cp = -1;
    if (i == 0 || crn_utf8_decode(s + i - 1, n - i + 1, &cp) < 0) return -1;
    *len = n - i + 1;
    return cp;
}

/* Jamo: after priming with ids (nt), remember an open last syllable (L V or a
 * lone L) for the next run, if the prompt as given ends in it (a precomposed
 * L V syllable, or the conjoining jamo themselves; other spellings, e.g. a
 * compatibility character NFKC turns into a syllable, are left closed).
 * @return its bytes at the end of prompt (0: none). */
static size_t set_carry(crn_generator *g, const uint32_t *ids, size_t nt, const uint8_t *prompt, size_t n) {
    int32_t a = nt >= 2 ? token_cp(g->v, ids[nt - 2]) : -1, b = nt >= 1 ? token_cp(g->v, ids[nt - 1]) : -1;
    size_t l1 = 0, l0 = 0;
    int32_t c1 = last_cp(prompt, n, &l1), c0 = l1 < n ? last_cp(prompt, n - l1, &l0) : -1;
    int32_t j[3];
    size_t raw = 0;
    if (is_L(a) && is_V(b)) {
        if (crn_hangul_split(c1, j) == 2 && j[0] == a && j[1] == b) raw = l1;
        else if (c1 == b && c0 == a) raw = l1 + l0;
        g->carry[0] = a;
        g->carry[1] = b;
        g->ncarry = raw ? 2 : 0;
    } else if (is_L(b)) {
        if (c1 == b) raw = l1;
        g->carry[0] = b;
        g->ncarry = raw ? 1 : 0;
    }
    g->carry_raw = raw;
    return raw;
}

/* Append the distinct unknown character tok to info->unknown if it fits. */
static void note_unknown(crn_prime_info *info, const uint8_t *tok, size_t len) {
    size_t have = strlen(info->unknown);
    for (size_t i = 0; i + len <= have; i++)
        if (!memcmp(info->unknown + i, tok, len)) return;
    if (have + len + 1 > sizeof info->unknown) return;
    memcpy(info->unknown + have, tok, len);
    info->unknown[have + len] = 0;
}

int crn_generator_prime(crn_generator *g, const uint8_t *prompt, size_t n, crn_prime_info *info) {
    crn_prime_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    int err;
    uint8_t *norm = NULL;
    uint32_t *ids = NULL;
    if (n == 0) {
        if (g->have_logits) return 0;
        uint32_t nl = crn_vocab_lookup(g->v, (const uint8_t *)"\n", 1);
        g->ncarry = 0;
        return feed(g, nl);
    }
    crn_textpos bad;
    if ((err = crn_utf8_validate(prompt, n, &bad)) < 0) return crn_error_prefix(err, "prompt");
    size_t nn = 0;
    if ((err = crn_utf8_normalize(&norm, &nn, prompt, n, crn_vocab_norm(g->v))) < 0) goto done;
    /* every token takes at least one byte; a 3-byte syllable gives <= 3 jamo */
    if (!(ids = malloc((nn + 1) * sizeof *ids))) {
        err = crn_error_set(CRN_ENOMEM, "prompt: out of memory");
        goto done;
    }
    crn_tokiter it;
    crn_tokiter_init(&it, norm, nn, crn_vocab_unit(g->v));
    size_t nt = 0;
    const uint8_t *tok;
    size_t len;
    int rc;
    while ((rc = crn_tokiter_next(&it, &tok, &len)) == 1) {
        uint32_t id = crn_vocab_lookup(g->v, tok, len);
        if (id == CRN_UNK) {
            if (g->s.strict) {
                err = crn_error_set(CRN_EINVAL, "prompt: '%.*s' (byte offset %zu) is a character the model has never seen",
                                    (int)len, (const char *)tok, it.pos >= len ? it.pos - len : 0);
                goto done;
            }
            info->n_unk++;
            note_unknown(info, tok, len);
        }
        if (nt < nn + 1) ids[nt++] = id;
    }
    if (rc < 0) {
        err = crn_error_prefix(rc, "prompt");
        goto done;
    }
    g->ncarry = 0;
    for (size_t i = 0; i < nt; i++)
        if ((err = feed(g, ids[i])) < 0) goto done;
    info->tokens = nt;
    if (crn_vocab_unit(g->v) == CRN_UNIT_JAMO) info->open_raw = set_carry(g, ids, nt, prompt, n);
    err = 0;
done:
    free(norm);
    free(ids);
    return err;
}

/* ---- the run ----------------------------------------------------------------- */

typedef struct run {
    crn_generator *g;
    crn_emit_fn emit;
    void *user;
    size_t gen_len;   /* final decoded bytes in g->gen */
    size_t emitted;   /* of which passed to emit */
    size_t cut;       /* with a stop match: end of the text to keep */
    size_t chars;     /* code points in g->gen[0..gen_len) */
    int carried;      /* g->dec holds the prompt's open syllable, not yet decided */
    int stopped;      /* a stop regex matched */
    int cancelled;    /* emit asked to stop */
} run;

static int emit_upto(run *r, size_t end) {
    if (end > r->emitted) {
        if (r->emit && !r->cancelled && r->emit(r->user, r->g->gen + r->emitted, end - r->emitted)) r->cancelled = 1;
        r->emitted = end;
    }
    return 0;
}

static size_t cp_len(uint8_t b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

/* After new text was appended: stop at the first --stop match, otherwise
 * emit everything that can no longer be the start of a match. final: no more
 * text will come (emit the rest). @return 0 or a negative error. */
static int stop_check(run *r, int final) {
    crn_generator *g = r->g;
    if (g->s.n_stop == 0) return emit_upto(r, r->gen_len);
    /* Nothing before `emitted` can start a match (that is why it was
     * emitted), so search from there; the full subject keeps lookbehind. */
    size_t best_s = SIZE_MAX, best_e = 0;
    for (uint32_t k = 0; k < g->s.n_stop; k++) {
        size_t ms, me;
        int rc = crn_regex_search(g->stop[k], g->gen, r->gen_len, r->emitted, &ms, &me);
        if (rc < 0) return crn_error_prefix(rc, "--stop");
        if (rc == 1 && (ms < best_s || (ms == best_s && me < best_e))) {
            best_s = ms;
            best_e = me;
        }
    }
    if (best_s != SIZE_MAX) {
        r->stopped = 1;
        r->cut = g->s.keep_stop ? best_e : best_s;
        return emit_upto(r, r->cut);
    }
    if (final) return emit_upto(r, r->gen_len);
    size_t i = r->emitted;
    while (i < r->gen_len) {
        int hold = 0;
        for (uint32_t k = 0; k < g->s.n_stop && !hold; k++) {
            int rc = crn_regex_prefix(g->stop[k], g->gen + i, r->gen_len - i);
            if (rc < 0) return crn_error_prefix(rc, "--stop");
            hold = rc != CRN_PREFIX_NONE;
        }
        if (hold) break;
        i += cp_len(g->gen[i]);
    }
    if (i > r->gen_len) i = r->gen_len;
    return emit_upto(r, i);
}

/* --match status of gen[0..gen_len) + bytes at gen+gen_len when the decoder
 * d holds jamo: the best status over the syllables the held jamo can still
 * become (any non-NONE wins). extra = bytes already written at gen+gen_len. */
static int match_status(crn_generator *g, size_t gen_len, size_t extra, const crn_decoder *d) {
    uint8_t *at = g->gen + gen_len + extra;
    size_t base = gen_len + extra;
    if (d->nheld == 0) return crn_regex_prefix(g->match, g->gen, base);
    if (d->nheld <= 2 && is_L(d->held[0]) && (d->nheld == 1 || is_V(d->held[1]))) {
        int v0 = d->nheld == 2 ? d->held[1] : 0x1161, v1 = d->nheld == 2 ? d->held[1] : 0x1175;
        int best = CRN_PREFIX_NONE;
        for (int32_t v = v0; v <= v1; v++)
            for (int32_t t = 0; t <= 27; t++) {
                int32_t syl = crn_hangul_join(d->held[0], v, t ? 0x11A7 + t : 0);
                if (syl < 0) continue;
                int w = crn_utf8_encode(syl, at);
                int rc = crn_regex_prefix(g->match, g->gen, base + (size_t)w);
                if (rc < 0) return rc;
                if (rc != CRN_PREFIX_NONE) return rc;
            }
        return best;
    }
    crn_decoder d2 = *d;
    size_t w = crn_decoder_finish(&d2, at, g->gen_cap - base);
    return crn_regex_prefix(g->match, g->gen, base + w);
}

/* Status if generation stopped now (held jamo flushed as they are; the
 * prompt's undecided syllable is not part of the text). */
static int match_status_now(crn_generator *g, const run *r) {
    crn_decoder d2 = g->dec;
    if (r->carried) crn_decoder_init(&d2, g->v);
    size_t w = crn_decoder_finish(&d2, g->gen + r->gen_len, g->gen_cap - r->gen_len);
    return crn_regex_prefix(g->match, g->gen, r->gen_len + w);
}

/* The first generated token decides the prompt's open syllable: it is
 * completed (the text restates it) or left alone (dropped from the decoder). */
static void decide_carry(crn_generator *g, run *r, crn_decoder *d, uint32_t tok) {
    if (!r->carried) return;
    if (continues_syllable(g->v, d, tok)) g->replaced = g->carry_raw;
    else crn_decoder_init(d, g->v);
    r->carried = 0;
}

/* Do the settings cut the distribution (top-k or top-p)? */
static int truncates(const crn_sample_settings *s) { return s->top_k > 0 || s->top_p < 1; }

static int cancelled(const crn_generator *g, const run *r) { return r->cancelled || (g->cancel && *g->cancel); }

static int run_sample(crn_generator *g, run *r, crn_gen_result *res) {
    int err;
    const uint32_t V = g->V;
    const int jamo = crn_vocab_unit(g->v) == CRN_UNIT_JAMO;
    double lp_sum = 0;
    size_t ntok = 0;
    enum crn_gen_stop reason = CRN_GEN_STOP_NONE;
    pick p = {.c = g->cands};
    crn_sample_settings wide = g->s; /* read only: the same draw without top-k/top-p */
    wide.top_k = 0;
    wide.top_p = 1;
    /* a character costs at most 3 jamo tokens; a lone consonant that cannot
     * be completed is dropped, so bound the tokens a run may spend */
    const size_t max_tokens = 4 * (size_t)g->s.length + 64;
    while (reason == CRN_GEN_STOP_NONE) {
        if (cancelled(g, r)) {
            reason = CRN_GEN_STOP_INTERRUPTED;
            break;
        }
        /* length counts characters; a syllable being built counts as one and
         * is finished first (jamo held: open) */
        const int open = jamo && g->dec.nheld > 0;
        const int full = r->chars + (size_t)(open && !r->carried) >= g->s.length;
        if (full && !open) {
            reason = CRN_GEN_STOP_LENGTH;
            break;
        }
        int now = CRN_PREFIX_PARTIAL;
        if (g->match) {
            now = match_status_now(g, r);
            if (now < 0) return crn_error_prefix(now, "--match");
            if (now == CRN_PREFIX_COMPLETE) {
                reason = CRN_GEN_STOP_MATCH;
                break;
            }
        }
        if (ntok >= max_tokens) { /* tokens keep being spent without text (dropped jamo): give up */
            reason = CRN_GEN_STOP_NO_CONTINUATION;
            break;
        }
        pick_prepare(&p, g->logits, V, &g->s);
        int composed = jamo; /* draw only what keeps the jamo composed (jamo_allowed) */
        int widened = !truncates(&g->s);
        uint32_t tok = 0;
        for (int first = 1;; first = 0) {
            long i = pick_draw(&p, &g->rng);
            if (i < 0 && composed && !widened) { /* nothing allowed in the top-k/top-p set: try them all */
                widened = 1;
                pick_prepare(&p, g->logits, V, &wide);
                continue;
            }
            if (i < 0 && composed) { /* nothing allowed can follow: drop a lone consonant, draw from all */
                if (g->dec.nheld == 1) {
                    crn_decoder_init(&g->dec, g->v);
                    r->carried = 0;
                }
                composed = 0;
                pick_prepare(&p, g->logits, V, &g->s);
                continue;
            }
            if (i < 0) {
                reason = now == CRN_PREFIX_EXTENSIBLE ? CRN_GEN_STOP_MATCH : CRN_GEN_STOP_NO_CONTINUATION;
                break;
            }
            tok = p.c[i].id;
            if (composed && !jamo_allowed(g->v, &g->dec, tok)) {
                pick_remove(&p, i);
                continue;
            }
            if (!g->match) break;
            crn_decoder d2 = g->dec;
            if (r->carried && !continues_syllable(g->v, &d2, tok)) crn_decoder_init(&d2, g->v);
            size_t w = crn_decoder_push(&d2, tok, g->gen + r->gen_len, g->gen_cap - r->gen_len);
            int st = match_status(g, r->gen_len, w, &d2);
            if (st < 0) return crn_error_prefix(st, "--match");
            if (st != CRN_PREFIX_NONE) break;
            if (first && now == CRN_PREFIX_EXTENSIBLE) { /* the model chose to end the match */
                reason = CRN_GEN_STOP_MATCH;
                break;
            }
            pick_remove(&p, i);
        }
        if (reason != CRN_GEN_STOP_NONE) break;
        if (full && !continues_syllable(g->v, &g->dec, tok)) { /* tok starts the next character: not taken */
            reason = CRN_GEN_STOP_LENGTH;
            break;
        }
        decide_carry(g, r, &g->dec, tok);
        lp_sum += isfinite(p.lse) ? (double)g->logits[tok] - p.lse : log_prob(g->logits, V, tok);
        ntok++;
        size_t w = crn_decoder_push(&g->dec, tok, g->gen + r->gen_len, g->gen_cap - r->gen_len);
        r->chars += crn_utf8_count(g->gen + r->gen_len, w);
        r->gen_len += w;
        if ((err = feed(g, tok)) < 0) return err;
        if ((err = stop_check(r, 0)) < 0) return err;
        if (r->stopped) reason = CRN_GEN_STOP_REGEX;
    }
    res->reason = reason;
    res->tokens = ntok;
    res->mean_logprob = ntok ? lp_sum / (double)ntok : 0;
    return 0;
}

/* Insert (score, beam, tok) into the best-first top list of n (<= W) entries. */
static void top_insert(crn_generator *g, uint32_t *n, double score, uint32_t beam, uint32_t tok) {
    uint32_t W = g->W, k = *n;
    if (k == W) {
        if (!(score > g->cscore[W - 1])) return;
        k = W - 1;
    }
    while (k > 0 && score > g->cscore[k - 1]) {
        g->cscore[k] = g->cscore[k - 1];
        g->cbeam[k] = g->cbeam[k - 1];
        g->ctok[k] = g->ctok[k - 1];
        k--;
    }
    g->cscore[k] = score;
    g->cbeam[k] = beam;
    g->ctok[k] = tok;
    if (*n < W) (*n)++;
}

static int run_beam(crn_generator *g, run *r, crn_gen_result *res) {
    int err;
    const uint32_t V = g->V, W = g->W, L = g->s.length;
    uint32_t first = V > 1 ? 1 : 0;
    int cur = 0;
    uint32_t nb = 1, step;
    crn_state_copy_stream(g->bst[0], 0, g->st, 0);
    g->bscore[0][0] = 0;
    for (step = 0; step < L; step++) {
        if (cancelled(g, r)) break;
        uint32_t nc = 0;
        for (uint32_t b = 0; b < nb; b++) {
            const real *row = g->logits + (size_t)b * V;
            double mx = -INFINITY, sum = 0;
            for (uint32_t i = 0; i < V; i++)
                if (row[i] > mx) mx = row[i];
            for (uint32_t i = 0; i < V; i++) sum += exp((double)row[i] - mx);
            double base = g->bscore[cur][b] - mx - log(sum);
            for (uint32_t t = first; t < V; t++) top_insert(g, &nc, base + (double)row[t], b, t);
        }
        int nxt = 1 - cur;
        for (uint32_t j = 0; j < nc; j++) {
            uint32_t b = g->cbeam[j];
            memcpy(g->btok[nxt] + (size_t)j * L, g->btok[cur] + (size_t)b * L, step * sizeof(uint32_t));
            g->btok[nxt][(size_t)j * L + step] = g->ctok[j];
            g->bscore[nxt][j] = g->cscore[j];
            crn_state_copy_stream(g->bst[nxt], j, g->bst[cur], b);
            g->bfeed[j] = g->ctok[j];
        }
        for (uint32_t j = nc; j < W; j++) g->bfeed[j] = g->bfeed[0]; /* idle streams */
        cur = nxt;
        nb = nc;
        if ((err = crn_model_step(g->m, g->bst[cur], g->bfeed, g->logits)) < 0) return err;
        if ((err = check_logits(g->logits, (size_t)nb * V)) < 0) return err;
    }
    /* every beam has the same length here, so dividing by it keeps the order;
     * it matters only for comparing runs of different lengths */
    uint32_t best = 0;
    for (uint32_t j = 1; j < nb; j++)
        if (g->bscore[cur][j] > g->bscore[cur][best]) best = j;
    uint32_t ntok = step;
    if (ntok > 0) {
        crn_state_copy_stream(g->st, 0, g->bst[cur], best);
        memmove(g->logits, g->logits + (size_t)best * V, (size_t)V * sizeof *g->logits);
        g->have_logits = 1;
    }
    for (uint32_t i = 0; i < ntok; i++) {
        uint32_t tok = g->btok[cur][(size_t)best * L + i];
        decide_carry(g, r, &g->dec, tok);
        r->gen_len += crn_decoder_push(&g->dec, tok, g->gen + r->gen_len, g->gen_cap - r->gen_len);
    }
    res->reason = ntok < L ? CRN_GEN_STOP_INTERRUPTED : CRN_GEN_STOP_LENGTH;
    res->tokens = ntok;
    res->mean_logprob = ntok ? g->bscore[cur][best] / (double)ntok : 0;
    return 0;
}

int crn_generator_run(crn_generator *g, crn_emit_fn emit, void *user, crn_gen_result *res) {
    int err;
    memset(res, 0, sizeof *res);
    if (!g->have_logits && (err = crn_generator_prime(g, NULL, 0, NULL)) < 0) return err;
    run r = {.g = g, .emit = emit, .user = user};
    crn_decoder_init(&g->dec, g->v);
    g->replaced = 0;
    if (g->ncarry) { /* the prompt's open syllable, for the first token to decide */
        memcpy(g->dec.held, g->carry, sizeof g->carry);
        g->dec.nheld = g->ncarry;
        r.carried = 1;
        g->ncarry = 0;
    }
    if (g->s.beam >= 2 && (g->W != g->s.beam || !g->btok[0] || !g->btok[1]))
        return crn_error_set(CRN_ENOMEM, "beam search buffers are missing (an earlier configure failed)");
    err = g->s.beam >= 2 ? run_beam(g, &r, res) : run_sample(g, &r, res);
    if (err < 0) return err;
    if (!r.stopped) {
        /* never end in the prompt's undecided syllable or a lone leading consonant */
        if (r.carried || g->dec.nheld == 1) crn_decoder_init(&g->dec, g->v);
        if (g->dec.nheld == 2) { /* a following run without a prompt (REPL, :keep on) may still complete it */
            memcpy(g->carry, g->dec.held, sizeof g->carry);
            g->ncarry = 2;
            g->carry_raw = 3; /* every modern L V syllable is 3 bytes of UTF-8 */
        }
        r.gen_len += crn_decoder_finish(&g->dec, g->gen + r.gen_len, g->gen_cap - r.gen_len);
        if ((err = stop_check(&r, 1)) < 0) return err;
        if (r.stopped) res->reason = CRN_GEN_STOP_REGEX;
    }
    if (r.cancelled) res->reason = CRN_GEN_STOP_INTERRUPTED;
    res->text = g->gen;
    res->text_len = r.emitted;
    res->replaced = g->replaced;
    return 0;
}
