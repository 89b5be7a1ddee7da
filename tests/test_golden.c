/* test_golden.c — the float model against PyTorch golden values.
 *
 * tools/make-golden.py (PyTorch, float64) writes one fixture per case into
 * tests/golden/ (format: tests/golden/README.md): a tiny model's weights in
 * our layout, a window of ids with ignored targets, a non-zero carried-in
 * state, and the expected logits, loss, final state and every gradient. Here
 * the float build loads the same weights by tensor name, runs
 * crn_model_forward + crn_model_backward and compares.
 *
 * Metric, per compared tensor a against the reference b:
 *     err = max_i |a_i - b_i| / max(max_i |b_i|, 1e-12)
 * (max-abs error over the reference's max-norm), for the loss the plain
 * relative error; every tensor of a case must be within GOLD_TOL. The worst
 * value of each case is printed ("golden <case>: ..."). The elementwise
 * relative error max_i |a_i - b_i| / max(|b_i|, 1e-3) is printed too, for
 * information (it is dominated by float32 rounding of tiny entries).
 *
 * Also checked against the same values, within GOLD_TOL: crn_model_step run
 * T times from the carried-in state (logits and final state); a second
 * crn_model_backward doubles every gradient (+=); a model configured with
 * dropout 0.5 gives the golden forward in evaluation mode (rng NULL). And a
 * malformed fixture is rejected with a "file:line: message" error (no
 * crash), a perturbed fixture fails the comparison.
 *
 * The *-ln cases are layer-normalised models (--layer-norm): the same
 * checks, the single steps included (forward-vs-step agreement of the LN
 * cells).
 *
 * Fixture directory: env CRN_GOLDEN_DIR (set by meson). */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "corpus.h"
#include "model.h"
#include "rng.h"

#define GOLD_TOL 1e-5
#define GOLD_MAX_BLOCKS 64
#define GOLD_MAX_ELEMS (1u << 20)  /* per block, and far above any fixture */
#define GOLD_MAX_DIM 4096u         /* header sizes */
#define GOLD_MAX_FILE (16u << 20)

static const char *const CASES[] = {
    "rnn-tanh-1-onehot", "rnn-relu-2-embed", "lstm-1-onehot",
    "lstm-2-embed",      "gru-1-embed",      "gru-2-onehot",
    /* layer normalisation (header 'ln 1'; tools/make-golden.py's manual reference) */
    "rnn-tanh-2-embed-ln", "lstm-2-onehot-ln", "lstm-1-embed-ln", "gru-2-onehot-ln",
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

/* ---- the fixture and its loader ----------------------------------------- */

typedef struct gold_block {
    char kind[8];   /* ids param grad h0 c0 hT cT logits loss */
    char name[32];  /* tensor name, layer number, or "-" */
    size_t rows, cols;
    double *v;      /* rows * cols, row-major */
    int line;       /* of the block header, for messages */
} gold_block;

typedef struct gold {
    char src[256];       /* file name for messages */
    char case_name[64];
    enum crn_cell cell;
    enum crn_act act;
    uint32_t V, E, H, L, T, B, count;
    uint32_t ln; /* layer normalisation (optional key, default 0) */
    gold_block blk[GOLD_MAX_BLOCKS];
    int nblk;
} gold;

static void gold_free(gold *g) {
    for (int i = 0; i < g->nblk; i++) free(g->blk[i].v);
    g->nblk = 0;
}

/* Line cursor over a NUL-terminated buffer; skips blank and '#' lines. */
typedef struct cursor {
    char *p;
    int line;
} cursor;

/* The next content line (NUL-terminated in place, trailing '\r' dropped),
 * or NULL at the end of the buffer. */
static char *next_line(cursor *c) {
    while (*c->p) {
        char *s = c->p;
        char *e = strchr(s, '\n');
        if (e) {
            *e = 0;
            c->p = e + 1;
        } else {
            c->p = s + strlen(s);
        }
        c->line++;
        size_t n = strlen(s);
        if (n && s[n - 1] == '\r') s[--n] = 0;
        const char *q = s + strspn(s, " \t");
        if (*q == 0 || *q == '#') continue;
        return s;
    }
    return NULL;
}

/* Split a line in place into at most max words; returns the count, or
 * max + 1 if there are more. */
static int split(char *s, char **w, int max) {
    int n = 0;
    for (;;) {
        s += strspn(s, " \t");
        if (*s == 0) return n;
        if (n == max) return max + 1;
        w[n++] = s;
        s += strcspn(s, " \t");
        if (*s) *s++ = 0;
    }
}

/* Parse an unsigned decimal in [lo, hi]. */
static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    if (*s < '0' || *s > '9') return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_size(const char *s, size_t *out) {
    uint32_t v;
    if (parse_u32(s, 1, GOLD_MAX_ELEMS, &v)) return -1;
    *out = v;
    return 0;
}

/* A finite number that strtod consumes completely. */
static int parse_double(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return (end == s || *end || !isfinite(*out)) ? -1 : 0;
}

static const char *const KINDS[] = {"ids", "param", "grad", "h0", "c0", "hT", "cT", "logits", "loss"};

static const gold_block *gold_find(const gold *g, const char *kind, const char *name) {
    for (int i = 0; i < g->nblk; i++)
        if (!strcmp(g->blk[i].kind, kind) && !strcmp(g->blk[i].name, name)) return &g->blk[i];
    return NULL;
}

static const gold_block *gold_find_layer(const gold *g, const char *kind, uint32_t l) {
    char name[16];
    snprintf(name, sizeof name, "%u", l);
    return gold_find(g, kind, name);
}

/* Record "src:line: message" and return CRN_EFORMAT. */
static int gold_fail(const gold *g, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int gold_fail(const gold *g, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return crn_error_set(CRN_EFORMAT, "%s:%d: %s", g->src, line, msg);
    return crn_error_set(CRN_EFORMAT, "%s: %s", g->src, msg);
}

/* Header key -> field; each must appear exactly once. */
static int header_key(gold *g, char **w, int line, unsigned *seen) {
    static const char *const keys[] = {"case", "cell", "act", "V", "E", "H", "L", "T", "B", "count", "ln"};
    int k = -1;
    for (int i = 0; i < 11; i++)
        if (!strcmp(w[0], keys[i])) k = i;
    if (k < 0) return 1; /* not a header key */
    if (*seen & (1u << k)) return gold_fail(g, line, "header key '%s' given twice", w[0]);
    *seen |= 1u << k;
    uint32_t *num[] = {NULL, NULL, NULL, &g->V, &g->E, &g->H, &g->L, &g->T, &g->B, &g->count, &g->ln};
    if (k == 0) {
        if (strlen(w[1]) >= sizeof g->case_name) return gold_fail(g, line, "case name too long");
        strcpy(g->case_name, w[1]);
    } else if (k == 1) {
        if (!strcmp(w[1], "rnn")) g->cell = CRN_CELL_RNN;
        else if (!strcmp(w[1], "lstm")) g->cell = CRN_CELL_LSTM;
        else if (!strcmp(w[1], "gru")) g->cell = CRN_CELL_GRU;
        else return gold_fail(g, line, "unknown cell '%s'", w[1]);
    } else if (k == 2) {
        if (!strcmp(w[1], "tanh")) g->act = CRN_ACT_TANH;
        else if (!strcmp(w[1], "relu")) g->act = CRN_ACT_RELU;
        else return gold_fail(g, line, "unknown activation '%s'", w[1]);
    } else if (k == 10 ? parse_u32(w[1], 0, 1, num[k]) : parse_u32(w[1], k == 4 ? 0 : 1, GOLD_MAX_DIM, num[k])) {
        return gold_fail(g, line, "%s: '%s' is not an integer in [%d, %u]", w[0], w[1], k == 4 || k == 10 ? 0 : 1,
                         k == 10 ? 1 : GOLD_MAX_DIM);
    }
    return 0;
}

/* Parse fixture text (len bytes, need not be NUL-terminated) into g.
 * Syntax only; gold_validate checks the contents against the header. */
static int gold_parse(gold *g, const char *src, const char *text, size_t len) {
    memset(g, 0, sizeof *g);
    snprintf(g->src, sizeof g->src, "%s", src);
    if (memchr(text, 0, len)) return gold_fail(g, 0, "NUL byte at offset %zu", (size_t)((const char *)memchr(text, 0, len) - text));
    char *buf = malloc(len + 1);
    if (!buf) return crn_error_set(CRN_ENOMEM, "%s: out of memory", src);
    memcpy(buf, text, len);
    buf[len] = 0;
    cursor c = {buf, 0};
    char *w[8];
    int rc = 0, ended = 0;
    unsigned seen = 0;

    char *s = next_line(&c);
    if (!s) {
        rc = gold_fail(g, 0, "empty fixture");
        goto out;
    }
    if (split(s, w, 8) != 2 || strcmp(w[0], "golden") || strcmp(w[1], "1")) {
        rc = gold_fail(g, c.line, "expected 'golden 1' (format magic, version 1)");
        goto out;
    }
    while ((s = next_line(&c))) {
        int line = c.line;
        int n = split(s, w, 8);
        if (n == 1 && !strcmp(w[0], "end")) {
            ended = 1;
            break;
        }
        if (n == 2) {
            if (g->nblk) {
                rc = gold_fail(g, line, "header key '%s' after the first block", w[0]);
                goto out;
            }
            rc = header_key(g, w, line, &seen);
            if (rc < 0) goto out;
            if (rc > 0) {
                rc = gold_fail(g, line, "unknown header key '%s'", w[0]);
                goto out;
            }
            continue;
        }
        if (n != 4) {
            rc = gold_fail(g, line, "expected a block header 'kind name rows cols', got %d words", n);
            goto out;
        }
        int known = 0;
        for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) known |= !strcmp(w[0], KINDS[k]);
        if (!known) {
            rc = gold_fail(g, line, "unknown block kind '%s'", w[0]);
            goto out;
        }
        if (strlen(w[1]) >= sizeof g->blk[0].name) {
            rc = gold_fail(g, line, "block name '%.40s...' longer than %zu bytes", w[1], sizeof g->blk[0].name - 1);
            goto out;
        }
        size_t rows, cols;
        if (parse_size(w[2], &rows) || parse_size(w[3], &cols) || rows * cols > GOLD_MAX_ELEMS) {
            rc = gold_fail(g, line, "block %s %s: bad size '%s x %s' (each in [1, %u], product <= %u)", w[0],
                           w[1], w[2], w[3], GOLD_MAX_ELEMS, GOLD_MAX_ELEMS);
            goto out;
        }
        if (gold_find(g, w[0], w[1])) {
            rc = gold_fail(g, line, "block %s %s given twice", w[0], w[1]);
            goto out;
        }
        if (g->nblk == GOLD_MAX_BLOCKS) {
            rc = gold_fail(g, line, "more than %d blocks", GOLD_MAX_BLOCKS);
            goto out;
        }
        gold_block *b = &g->blk[g->nblk];
        b->v = malloc(rows * cols * sizeof *b->v);
        if (!b->v) {
            rc = crn_error_set(CRN_ENOMEM, "%s:%d: out of memory", src, line);
            goto out;
        }
        g->nblk++;
        strcpy(b->kind, w[0]);
        strcpy(b->name, w[1]);
        b->rows = rows;
        b->cols = cols;
        b->line = line;
        for (size_t r = 0; r < rows; r++) {
            char *row = next_line(&c);
            if (!row) {
                rc = gold_fail(g, c.line, "block %s %s: file ends after %zu of %zu rows", b->kind, b->name, r, rows);
                goto out;
            }
            /* cols words exactly: split into a heap array, a row can be long */
            size_t got = 0;
            char *p = row;
            for (;;) {
                p += strspn(p, " \t");
                if (*p == 0) break;
                char *word = p;
                p += strcspn(p, " \t");
                if (*p) *p++ = 0;
                if (got == cols) {
                    rc = gold_fail(g, c.line, "block %s %s row %zu: more than %zu values", b->kind, b->name, r, cols);
                    goto out;
                }
                if (parse_double(word, &b->v[r * cols + got])) {
                    rc = gold_fail(g, c.line, "block %s %s row %zu: '%.40s' is not a finite number", b->kind,
                                   b->name, r, word);
                    goto out;
                }
                got++;
            }
            if (got != cols) {
                rc = gold_fail(g, c.line, "block %s %s row %zu: %zu values, expected %zu", b->kind, b->name, r,
                               got, cols);
                goto out;
            }
        }
    }
    if (!ended) {
        rc = gold_fail(g, c.line, "no 'end' line (truncated fixture?)");
        goto out;
    }
    if ((s = next_line(&c))) {
        rc = gold_fail(g, c.line, "content after 'end'");
        goto out;
    }
    if ((seen & ((1u << 10) - 1)) != (1u << 10) - 1) { /* all but the optional 'ln' */
        static const char *const keys[] = {"case", "cell", "act", "V", "E", "H", "L", "T", "B", "count"};
        for (int k = 0; k < 10; k++)
            if (!(seen & (1u << k))) {
                rc = gold_fail(g, 0, "header key '%s' missing", keys[k]);
                goto out;
            }
    }
out:
    free(buf);
    if (rc) gold_free(g);
    return rc;
}

/* Check that block (kind, name) exists with shape rows x cols. */
static int need(const gold *g, const char *kind, const char *name, size_t rows, size_t cols, const gold_block **out) {
    const gold_block *b = gold_find(g, kind, name);
    if (!b) return gold_fail(g, 0, "block %s %s missing", kind, name);
    if (b->rows != rows || b->cols != cols)
        return gold_fail(g, b->line, "block %s %s is %zu x %zu, expected %zu x %zu", kind, name, b->rows, b->cols,
                         rows, cols);
    if (out) *out = b;
    return 0;
}

/* Contents against the header: ids in range, count, states per layer, the
 * outputs' shapes, every param with a grad of the same shape, parameters
 * exactly representable in float (the C side must load the same numbers). */
static int gold_validate(gold *g) {
    size_t TB = (size_t)g->T * g->B;
    const gold_block *x, *y;
    int rc;
    if (g->act == CRN_ACT_RELU && g->cell != CRN_CELL_RNN) return gold_fail(g, 0, "act relu is for cell rnn only");
    if ((rc = need(g, "ids", "x", g->T, g->B, &x)) || (rc = need(g, "ids", "y", g->T, g->B, &y))) return rc;
    uint32_t counted = 0;
    for (size_t i = 0; i < TB; i++) {
        double xv = x->v[i], yv = y->v[i];
        if (xv != floor(xv) || xv < 0 || xv >= g->V)
            return gold_fail(g, x->line, "x[%zu] = %g is not an id in [0, V=%u)", i, xv, g->V);
        if (yv != floor(yv) || yv < -1 || yv >= g->V)
            return gold_fail(g, y->line, "y[%zu] = %g is not an id in [0, V=%u) or -1", i, yv, g->V);
        counted += yv >= 0;
    }
    if (counted != g->count)
        return gold_fail(g, y->line, "y has %u counted targets, header count says %u", counted, g->count);
    for (uint32_t l = 0; l < g->L; l++) {
        char name[16];
        snprintf(name, sizeof name, "%u", l);
        if ((rc = need(g, "h0", name, g->B, g->H, NULL)) || (rc = need(g, "hT", name, g->B, g->H, NULL))) return rc;
        if (g->cell == CRN_CELL_LSTM &&
            ((rc = need(g, "c0", name, g->B, g->H, NULL)) || (rc = need(g, "cT", name, g->B, g->H, NULL))))
            return rc;
    }
    if ((rc = need(g, "logits", "-", TB, g->V, NULL)) || (rc = need(g, "loss", "-", 1, 1, NULL))) return rc;
    int nparam = 0, nstate = 0;
    for (int i = 0; i < g->nblk; i++) {
        const gold_block *b = &g->blk[i];
        int is_state = b->kind[0] == 'h' || b->kind[0] == 'c';
        if (is_state) {
            uint32_t l;
            if (parse_u32(b->name, 0, g->L - 1, &l))
                return gold_fail(g, b->line, "block %s %s: not a layer number in [0, L=%u)", b->kind, b->name, g->L);
            if (b->kind[0] == 'c' && g->cell != CRN_CELL_LSTM)
                return gold_fail(g, b->line, "block %s %s: cell state for a non-LSTM cell", b->kind, b->name);
            nstate++;
        }
        if (!strcmp(b->kind, "grad") && !gold_find(g, "param", b->name))
            return gold_fail(g, b->line, "grad %s has no param block", b->name);
        if (strcmp(b->kind, "param")) continue;
        nparam++;
        if ((rc = need(g, "grad", b->name, b->rows, b->cols, NULL))) return rc;
        for (size_t k = 0; k < b->rows * b->cols; k++)
            if ((double)(float)b->v[k] != b->v[k])
                return gold_fail(g, b->line, "param %s[%zu] = %.17g is not exactly a float", b->name, k, b->v[k]);
    }
    if (nparam == 0) return gold_fail(g, 0, "no param blocks");
    if (nstate != (int)g->L * (g->cell == CRN_CELL_LSTM ? 4 : 2)) return gold_fail(g, 0, "unexpected state blocks");
    return 0;
}

/* Read and validate a fixture file. */
static int gold_load(gold *g, const char *path) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) return crn_error_set(CRN_ENOTFOUND, "%s: cannot open", path);
    char *text = malloc(GOLD_MAX_FILE);
    if (!text) {
        fclose(f);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(text, 1, GOLD_MAX_FILE, f);
    int rc = 0;
    if (ferror(f)) rc = crn_error_set(CRN_EIO, "%s: read error", path);
    else if (n == GOLD_MAX_FILE) rc = crn_error_set(CRN_EFORMAT, "%s: larger than %u bytes", path, GOLD_MAX_FILE);
    fclose(f);
    if (!rc) rc = gold_parse(g, path, text, n);
    free(text);
    if (!rc && (rc = gold_validate(g))) gold_free(g);
    return rc;
}

static void fixture_path(char *out, size_t n, const char *name) {
    const char *dir = getenv("CRN_GOLDEN_DIR");
    ck_assert_msg(dir && *dir, "CRN_GOLDEN_DIR is not set (meson test sets it to tests/golden)");
    ck_assert_msg((size_t)snprintf(out, n, "%s/%s.txt", dir, name) < n, "fixture path too long");
}

/* ---- running a case ----------------------------------------------------- */

typedef struct err_stat {
    double norm;     /* max |a-b| / max(max |b|, 1e-12) */
    double elem;     /* max |a-b| / max(|b|, 1e-3) */
} err_stat;

typedef struct report {
    double loss, logits, state, grads;  /* worst normwise error of each kind */
    double worst, worst_elem;
    char worst_what[48], worst_elem_what[48];
    double step;   /* crn_model_step, T times from the carried-in state: logits and final state */
    double accum;  /* the window's forward and backward again: gradients must be exactly doubled (+=) */
    double eval;   /* dropout 0.5 model, evaluation-mode forward (rng NULL): dropout must be off */
} report;

/* Compare a with the reference b * scale. */
static err_stat compare_scaled(const real *a, const double *b, double scale, size_t n) {
    double maxdiff = 0, maxref = 0, elem = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i] * scale);
        if (!(d <= maxdiff)) maxdiff = d; /* NaN sticks */
        if (fabs(b[i] * scale) > maxref) maxref = fabs(b[i] * scale);
        double e = d / fmax(fabs(b[i] * scale), 1e-3);
        if (!(e <= elem)) elem = e;
    }
    err_stat s = {maxdiff / fmax(maxref, 1e-12), elem};
    return s;
}

static err_stat compare(const real *a, const double *b, size_t n) { return compare_scaled(a, b, 1.0, n); }

static void worse(double *slot, err_stat s) {
    if (!(s.norm <= *slot)) *slot = s.norm;
}

static void note(report *r, double *slot, err_stat s, const char *kind, const char *name) {
    if (!(s.norm <= *slot)) *slot = s.norm;
    if (!(s.norm <= r->worst)) {
        r->worst = s.norm;
        snprintf(r->worst_what, sizeof r->worst_what, "%s%s%s", kind, *name ? " " : "", name);
    }
    if (!(s.elem <= r->worst_elem)) {
        r->worst_elem = s.elem;
        snprintf(r->worst_elem_what, sizeof r->worst_elem_what, "%s%s%s", kind, *name ? " " : "", name);
    }
}

/* Load g's weights into a new model (every fixture tensor must exist with
 * the same shape, every model tensor must be covered; the rest of the
 * buffer is NaN so a read outside the tensors shows). */
static int load_model(const gold *g, float dropout, crn_model **out) {
    crn_model_config cfg = {g->cell, g->act, g->V, g->E, g->H, g->L, dropout, g->ln};
    crn_model *m = NULL;
    int rc = crn_model_create(&m, &cfg);
    if (rc) return rc;
    real *p = crn_model_params(m);
    size_t np = crn_model_num_params(m);
    for (size_t i = 0; i < np; i++) p[i] = (real)NAN;
    for (int i = 0; i < g->nblk; i++) {
        const gold_block *b = &g->blk[i];
        if (strcmp(b->kind, "param")) continue;
        const crn_tensor_info *ti = crn_model_find_tensor(m, b->name);
        if (!ti) {
            rc = gold_fail(g, b->line, "model has no tensor '%s'", b->name);
            goto fail;
        }
        if (ti->rows != b->rows || ti->cols != b->cols || ti->offset > np || ti->rows * ti->cols > np - ti->offset) {
            rc = gold_fail(g, b->line, "tensor %s: model has %zu x %zu at offset %zu (of %zu), fixture %zu x %zu",
                           b->name, ti->rows, ti->cols, ti->offset, np, b->rows, b->cols);
            goto fail;
        }
        for (size_t k = 0; k < b->rows * b->cols; k++) p[ti->offset + k] = (real)b->v[k];
    }
    for (int i = 0; i < crn_model_num_tensors(m); i++) {
        const crn_tensor_info *ti = crn_model_tensor(m, i);
        if (!gold_find(g, "param", ti->name)) {
            rc = gold_fail(g, 0, "model tensor '%s' is not in the fixture", ti->name);
            goto fail;
        }
    }
    *out = m;
    return 0;
fail:
    crn_model_destroy(m);
    return rc;
}

/* Carried-in state of every layer from the fixture. */
static int load_state(const gold *g, crn_state *st) {
    for (uint32_t l = 0; l < g->L; l++) {
        real *h = crn_state_h(st, l), *c = crn_state_c(st, l);
        if (!h) return gold_fail(g, 0, "crn_state_h(%u) is NULL", l);
        if ((g->cell == CRN_CELL_LSTM) != (c != NULL))
            return gold_fail(g, 0, "crn_state_c(%u) is %sNULL for cell %d", l, c ? "not " : "", (int)g->cell);
        const gold_block *h0 = gold_find_layer(g, "h0", l), *c0 = gold_find_layer(g, "c0", l);
        for (size_t k = 0; k < (size_t)g->B * g->H; k++) h[k] = (real)h0->v[k];
        if (c)
            for (size_t k = 0; k < (size_t)g->B * g->H; k++) c[k] = (real)c0->v[k];
    }
    return 0;
}

/* Worst error of the state st against the fixture's final state, into *slot. */
static void compare_state(const gold *g, crn_state *st, double *slot) {
    for (uint32_t l = 0; l < g->L; l++) {
        worse(slot, compare(crn_state_h(st, l), gold_find_layer(g, "hT", l)->v, (size_t)g->B * g->H));
        if (g->cell == CRN_CELL_LSTM)
            worse(slot, compare(crn_state_c(st, l), gold_find_layer(g, "cT", l)->v, (size_t)g->B * g->H));
    }
}

/* Forward + backward of the fixture's window; fills r. */
static int run_case(const gold *g, report *r) {
    memset(r, 0, sizeof *r);
    size_t TB = (size_t)g->T * g->B;
    crn_model *m = NULL;
    crn_state *st = NULL;
    uint32_t *x = malloc(TB * sizeof *x), *y = malloc(TB * sizeof *y);
    real *step_logits = malloc((size_t)g->B * g->V * sizeof *step_logits);
    int rc = CRN_ENOMEM;
    if (!x || !y || !step_logits) goto out;
    const gold_block *bx = gold_find(g, "ids", "x"), *by = gold_find(g, "ids", "y");
    for (size_t i = 0; i < TB; i++) {
        x[i] = (uint32_t)bx->v[i];
        y[i] = by->v[i] < 0 ? CRN_IGNORE : (uint32_t)by->v[i];
    }
    if ((rc = load_model(g, 0.0f, &m))) goto out;
    if ((rc = crn_model_reserve(m, g->B, g->T))) goto out;
    if ((rc = crn_state_create(&st, m, g->B))) goto out;
    if ((rc = load_state(g, st))) goto out;
    crn_model_zero_grads(m);

    /* training mode (an rng) with dropout 0: the path backward follows */
    crn_rng rng;
    crn_rng_seed(&rng, 42);
    double loss_sum = 0;
    size_t count = 0;
    if ((rc = crn_model_forward(m, st, x, y, g->B, g->T, &rng, &loss_sum, &count))) goto out;
    if (count != g->count) {
        rc = gold_fail(g, 0, "forward counted %zu targets, expected %u", count, g->count);
        goto out;
    }
    double loss = loss_sum / (double)count, ref = gold_find(g, "loss", "-")->v[0];
    err_stat ls = {fabs(loss - ref) / fabs(ref), fabs(loss - ref) / fmax(fabs(ref), 1e-3)};
    if (isnan(loss)) ls.norm = ls.elem = INFINITY;
    note(r, &r->loss, ls, "loss", "");
    note(r, &r->logits, compare(crn_model_logits(m), gold_find(g, "logits", "-")->v, TB * g->V), "logits", "");
    for (uint32_t l = 0; l < g->L; l++) {
        char name[16];
        snprintf(name, sizeof name, "%u", l);
        note(r, &r->state, compare(crn_state_h(st, l), gold_find(g, "hT", name)->v, (size_t)g->B * g->H), "hT", name);
        if (g->cell == CRN_CELL_LSTM)
            note(r, &r->state, compare(crn_state_c(st, l), gold_find(g, "cT", name)->v, (size_t)g->B * g->H), "cT",
                 name);
    }

    if ((rc = crn_model_backward(m))) goto out;
    const real *gr = crn_model_grads(m);
    for (int i = 0; i < g->nblk; i++) {
        const gold_block *b = &g->blk[i];
        if (strcmp(b->kind, "grad")) continue;
        const crn_tensor_info *ti = crn_model_find_tensor(m, b->name);
        note(r, &r->grads, compare(gr + ti->offset, b->v, b->rows * b->cols), "grad", b->name);
    }

    /* a backward consumes its forward: a second one is refused; the same
     * window run again accumulates: 2x the gradients */
    if (crn_model_backward(m) != CRN_EINVAL) {
        rc = gold_fail(g, 0, "a second backward of one forward was not refused");
        goto out;
    }
    if ((rc = load_state(g, st))) goto out;
    crn_rng_seed(&rng, 42);
    if ((rc = crn_model_forward(m, st, x, y, g->B, g->T, &rng, NULL, NULL))) goto out;
    if ((rc = crn_model_backward(m))) goto out;
    for (int i = 0; i < g->nblk; i++) {
        const gold_block *b = &g->blk[i];
        if (strcmp(b->kind, "grad")) continue;
        const crn_tensor_info *ti = crn_model_find_tensor(m, b->name);
        worse(&r->accum, compare_scaled(gr + ti->offset, b->v, 2.0, b->rows * b->cols));
    }

    /* The same window one step at a time from the carried-in state, in
     * evaluation mode, as the sampler runs it. */
    if ((rc = load_state(g, st))) goto out;
    const double *ref_logits = gold_find(g, "logits", "-")->v;
    for (uint32_t t = 0; t < g->T; t++) {
        if ((rc = crn_model_step(m, st, x + (size_t)t * g->B, step_logits))) goto out;
        worse(&r->step, compare(step_logits, ref_logits + (size_t)t * g->B * g->V, (size_t)g->B * g->V));
    }
    compare_state(g, st, &r->step);
    crn_state_destroy(st);
    st = NULL;
    crn_model_destroy(m);
    m = NULL;

    /* Dropout is for training only: with dropout 0.5 configured, an
     * evaluation-mode forward (rng NULL) must still give the golden values. */
    if ((rc = load_model(g, 0.5f, &m)) || (rc = crn_model_reserve(m, g->B, g->T)) ||
        (rc = crn_state_create(&st, m, g->B)) || (rc = load_state(g, st)))
        goto out;
    if ((rc = crn_model_forward(m, st, x, y, g->B, g->T, NULL, &loss_sum, &count))) goto out;
    err_stat es = {fabs(loss_sum / (double)count - ref) / fabs(ref), 0};
    if (isnan(loss_sum) || count != g->count) es.norm = INFINITY;
    worse(&r->eval, es);
    worse(&r->eval, compare(crn_model_logits(m), ref_logits, TB * g->V));
    compare_state(g, st, &r->eval);
    rc = 0;
out:
    if (rc == CRN_ENOMEM && !*crn_error_message()) crn_error_set(rc, "%s: out of memory", g->src);
    crn_state_destroy(st);
    crn_model_destroy(m);
    free(step_logits);
    free(y);
    free(x);
    return rc;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_case) {
    char path[1024];
    fixture_path(path, sizeof path, CASES[_i]);
    gold g;
    crn_error_clear();
    int rc = gold_load(&g, path);
    ck_assert_msg(rc == 0, "loading %s: %s", path, crn_error_message());
    ck_assert_str_eq(g.case_name, CASES[_i]);
    report r;
    rc = run_case(&g, &r);
    gold_free(&g);
    ck_assert_msg(rc == 0, "%s: %s (%s)", CASES[_i], crn_error_message(), crn_strerror(rc));
    printf("golden %-18s loss %.1e  logits %.1e  state %.1e  grads %.1e | worst %.1e (%s)"
           " | elementwise worst %.1e (%s) | step %.1e  accum %.1e  eval %.1e\n",
           CASES[_i], r.loss, r.logits, r.state, r.grads, r.worst, r.worst_what, r.worst_elem, r.worst_elem_what,
           r.step, r.accum, r.eval);
    fflush(stdout);
    ck_assert_msg(r.worst <= GOLD_TOL, "%s: %s differs from PyTorch by %.3g (relative to its max-norm) > %g",
                  CASES[_i], r.worst_what, r.worst, GOLD_TOL);
    ck_assert_msg(r.step <= GOLD_TOL, "%s: crn_model_step differs by %.3g > %g", CASES[_i], r.step, GOLD_TOL);
    ck_assert_msg(r.accum <= GOLD_TOL, "%s: a second forward and backward do not double the gradients: %.3g", CASES[_i],
                  r.accum);
    ck_assert_msg(r.eval <= GOLD_TOL, "%s: evaluation-mode forward of a dropout model differs by %.3g", CASES[_i],
                  r.eval);
}
END_TEST

/* The comparison has teeth: one expected gradient entry moved by 1e-4 of
 * itself (the tensor's largest), or one weight moved by 1e-2, must each
 * make the case fail. */
START_TEST(test_perturbed_fixture_fails) {
    char path[1024];
    fixture_path(path, sizeof path, "lstm-2-embed");
    gold g;
    int rc = gold_load(&g, path);
    ck_assert_msg(rc == 0, "%s", crn_error_message());
    report r;
    ck_assert_msg(run_case(&g, &r) == 0, "%s", crn_error_message());
    ck_assert_msg(r.worst <= GOLD_TOL, "unperturbed case fails: %.3g", r.worst);

    /* an expected gradient entry: the largest of l1.w_h, + 1e-4 of it */
    gold_block *b = (gold_block *)gold_find(&g, "grad", "l1.w_h");
    ck_assert_ptr_nonnull(b);
    size_t arg = 0;
    for (size_t k = 1; k < b->rows * b->cols; k++)
        if (fabs(b->v[k]) > fabs(b->v[arg])) arg = k;
    double saved = b->v[arg];
    b->v[arg] += 1e-4 * fabs(saved);
    ck_assert_int_eq(run_case(&g, &r), 0);
    printf("perturbed grad l1.w_h[%zu] by 1e-4: worst %.2e (%s)\n", arg, r.worst, r.worst_what);
    fflush(stdout);
    ck_assert_msg(r.worst > GOLD_TOL && !strcmp(r.worst_what, "grad l1.w_h"), "perturbation not detected: %.3g (%s)",
                  r.worst, r.worst_what);
    b->v[arg] = saved;

    /* a weight: the model then disagrees with every expected value */
    b = (gold_block *)gold_find(&g, "param", "l0.w_h");
    ck_assert_ptr_nonnull(b);
    b->v[3] = (double)(float)(b->v[3] + 1e-2);
    ck_assert_int_eq(run_case(&g, &r), 0);
    printf("perturbed param l0.w_h[3] by 1e-2: worst %.2e (%s), logits %.2e\n", r.worst, r.worst_what, r.logits);
    fflush(stdout);
    ck_assert_msg(r.worst > GOLD_TOL && r.logits > GOLD_TOL, "weight perturbation not detected: %.3g", r.worst);
    gold_free(&g);
}
END_TEST

/* A small valid fixture (values need not be a real model's: this only
 * exercises the loader) and edits that must each be rejected. */
static const char TINY[] =
    "# tiny\n"
    "golden 1\n"
    "case tiny\ncell rnn\nact tanh\nV 2\nE 0\nH 1\nL 1\nT 1\nB 1\ncount 1\n"
    "ids x 1 1\n0\n"
    "ids y 1 1\n1\n"
    "param l0.w_x 2 1\n0.5\n-0.25\n"
    "param l0.w_h 1 1\n0.125\n"
    "param l0.b_x 1 1\n0\n"
    "param l0.b_h 1 1\n0\n"
    "param out_w 1 2\n1 -1\n"
    "param out_b 1 2\n0 0\n"
    "h0 0 1 1\n0.5\n"
    "logits - 1 2\n0.1 0.2\n"
    "loss - 1 1\n0.5\n"
    "hT 0 1 1\n0.25\n"
    "grad l0.w_x 2 1\n0.1\n0\n"
    "grad l0.w_h 1 1\n0.1\n"
    "grad l0.b_x 1 1\n0.1\n"
    "grad l0.b_h 1 1\n0.1\n"
    "grad out_w 1 2\n0.1 -0.1\n"
    "grad out_b 1 2\n0.1 -0.1\n"
    "end\n";

static const struct {
    const char *from, *to, *why;
} EDITS[] = {
    {"golden 1\n", "golden 2\n", "version"},
    {"end\n", "", "no end line"},
    {"grad out_b 1 2\n0.1 -0.1\nend\n", "grad out_b 1 2\n0.1\n", "file ends inside a block"},
    {"ids x 1 1\n0\n", "ids x 1 1\n0 1\n", "too many values on a row"},
    {"out_w 1 2\n1 -1\n", "out_w 1 2\n1\n", "too few values on a row"},
    {"0.125\n", "0.125x\n", "not a number"},
    {"0.125\n", "nan\n", "NaN"},
    {"0.125\n", "1e999\n", "overflow"},
    {"0.125\n", "0.1\n", "param not exactly a float"},
    {"param l0.w_h 1 1", "param l0.w_h 99999 99999", "huge block"},
    {"param l0.w_h 1 1", "param l0.w_h 2 1", "rows run into the next block"},
    {"param l0.w_h 1 1", "param l0.w_h 0 1", "zero rows"},
    {"param l0.w_h 1 1", "param l0.w_h -1 1", "negative rows"},
    {"param l0.w_h 1 1", "param l0.w_h 1", "short block header"},
    {"param l0.w_h", "param l0.w_h_with_a_name_that_is_far_too_long_for_a_tensor", "long name"},
    {"param l0.b_h", "param l0.b_x", "duplicate block"},
    {"param l0.b_h 1 1", "weight l0.b_h 1 1", "unknown kind"},
    {"grad out_b 1 2\n0.1 -0.1\n", "grad out_b 2 1\n0.1\n-0.1\n", "grad shape differs from param"},
    {"grad out_b 1 2\n0.1 -0.1\n", "", "param without grad"},
    {"V 2\n", "V 0\n", "V = 0"},
    {"V 2\n", "V two\n", "V not a number"},
    {"V 2\n", "V 2\nV 2\n", "header key twice"},
    {"E 0\n", "", "missing header key"},
    {"cell rnn\n", "cell transformer\n", "unknown cell"},
    {"act tanh\n", "act relu\nfoo 1\n", "unknown header key"},
    {"ids x 1 1\n0\n", "ids x 1 1\n2\n", "x id out of range"},
    {"ids x 1 1\n0\n", "ids x 1 1\n0.5\n", "x id not an integer"},
    {"ids y 1 1\n1\n", "ids y 1 1\n-1\n", "count does not match"},
    {"ids y 1 1\n1\n", "ids y 1 1\n-2\n", "y id out of range"},
    {"ids x 1 1\n0\n", "ids x 1 2\n0 0\n", "x shape"},
    {"hT 0 1 1\n0.25\n", "", "missing final state"},
    {"h0 0 1 1", "h0 7 1 1", "layer out of range"},
    {"h0 0 1 1\n0.5\n", "h0 0 1 1\n0.5\nc0 0 1 1\n0.5\n", "cell state for an rnn"},
    {"loss - 1 1\n0.5\n", "", "missing loss"},
    {"end\n", "end\nparam x 1 1\n0\n", "content after end"},
    {"case tiny\n", "", "header key missing"},
    {"golden 1\ncase tiny\n", "case tiny\ngolden 1\n", "magic not first"},
    {"ids x 1 1\n0\n", "ids x 1 1\n0\nV 3\n", "header key after a block"},
};
#define NEDITS ((int)(sizeof EDITS / sizeof EDITS[0]))

/* TINY with the first occurrence of from replaced by to (malloc'd). */
static char *edit(const char *from, const char *to) {
    const char *at = strstr(TINY, from);
    ck_assert_msg(at != NULL, "edit '%s' does not apply", from);
    size_t n = strlen(TINY) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    size_t pre = (size_t)(at - TINY);
    memcpy(s, TINY, pre);
    strcpy(s + pre, to);
    strcat(s, at + strlen(from));
    return s;
}

START_TEST(test_loader_accepts_tiny) {
    gold g;
    int rc = gold_parse(&g, "tiny.txt", TINY, strlen(TINY));
    ck_assert_msg(rc == 0, "%s", crn_error_message());
    rc = gold_validate(&g);
    ck_assert_msg(rc == 0, "%s", crn_error_message());
    ck_assert_int_eq(g.nblk, 18);
    ck_assert_uint_eq(g.V, 2);
    ck_assert(gold_find(&g, "param", "l0.w_x")->v[1] == -0.25);
    gold_free(&g);
    /* CRLF line ends and a missing final newline are fine */
    size_t n = strlen(TINY);
    char *crlf = malloc(2 * n + 1), *q = crlf;
    ck_assert_ptr_nonnull(crlf);
    for (const char *p = TINY; *p; p++) {
        if (*p == '\n') *q++ = '\r';
        *q++ = *p;
    }
    rc = gold_parse(&g, "crlf.txt", crlf, (size_t)(q - crlf) - 2);
    ck_assert_msg(rc == 0, "%s", crn_error_message());
    ck_assert_int_eq(gold_validate(&g), 0);
    gold_free(&g);
    free(crlf);
}
END_TEST

START_TEST(test_loader_rejects) {
    char *s = edit(EDITS[_i].from, EDITS[_i].to);
    gold g;
    crn_error_clear();
    int rc = gold_parse(&g, "tiny.txt", s, strlen(s));
    if (rc == 0) {
        rc = gold_validate(&g);
        gold_free(&g);
    }
    free(s);
    printf("rejects %-30s -> %s\n", EDITS[_i].why, crn_error_message());
    ck_assert_msg(rc == CRN_EFORMAT, "%s: accepted (rc %d)", EDITS[_i].why, rc);
    ck_assert_msg(!strncmp(crn_error_message(), "tiny.txt", 8), "%s: message '%s' does not name the file",
                  EDITS[_i].why, crn_error_message());
}
END_TEST

START_TEST(test_loader_nul_and_empty) {
    gold g;
    static const char nul[] = "golden 1\n\0case tiny\n";
    ck_assert_int_eq(gold_parse(&g, "nul.txt", nul, sizeof nul - 1), CRN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "NUL"));
    ck_assert_int_eq(gold_parse(&g, "empty.txt", "", 0), CRN_EFORMAT);
    ck_assert_int_eq(gold_parse(&g, "comments.txt", "# only\n\n", 8), CRN_EFORMAT);
    ck_assert_int_eq(gold_load(&g, "/nonexistent/fixture.txt"), CRN_ENOTFOUND);
}
END_TEST

/* A real fixture cut at every 37th byte before "end", or with a digit turned
 * into a letter, is rejected (and never crashes). */
START_TEST(test_loader_truncated_real) {
    char path[1024];
    fixture_path(path, sizeof path, "lstm-2-embed");
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    ck_assert_msg(n > 0 && n < sizeof text, "%s: unexpected size %zu", path, n);
    gold g;
    size_t end = (size_t)(strstr(text, "\nend\n") - text);
    int rejected = 0;
    for (size_t cut = 0; cut <= end; cut += 37) {
        int rc = gold_parse(&g, "cut.txt", text, cut);
        if (rc == 0) {
            rc = gold_validate(&g);
            gold_free(&g);
        }
        ck_assert_msg(rc == CRN_EFORMAT, "cut at byte %zu: accepted (rc %d)", cut, rc);
        rejected++;
    }
    /* a digit replaced by a letter (outside comments and the free-text case
     * name): always rejected */
    int flipped = 0;
    for (size_t at = 0; at < n; at += 53) {
        char saved = text[at];
        text[at] = 'q';
        int rc = gold_parse(&g, "flip.txt", text, n);
        if (rc == 0) {
            rc = gold_validate(&g);
            gold_free(&g);
        }
        text[at] = saved;
        const char *line = text + at;
        while (line > text && line[-1] != '\n') line--;
        if (saved >= '0' && saved <= '9' && *line != '#' && strncmp(line, "case ", 5)) {
            ck_assert_msg(rc == CRN_EFORMAT, "byte %zu ('%c') -> 'q': accepted", at, saved);
            flipped++;
        }
    }
    printf("lstm-2-embed: %d truncations and %d corrupted digits rejected\n", rejected, flipped);
}
END_TEST

int main(void) {
    Suite *s = suite_create("golden");
    TCase *tl = tcase_create("loader");
    tcase_add_test(tl, test_loader_accepts_tiny);
    tcase_add_loop_test(tl, test_loader_rejects, 0, NEDITS);
    tcase_add_test(tl, test_loader_nul_and_empty);
    tcase_add_test(tl, test_loader_truncated_real);
    suite_add_tcase(s, tl);
    TCase *tc = tcase_create("pytorch");
    tcase_add_loop_test(tc, test_case, 0, NCASES);
    tcase_add_test(tc, test_perturbed_fixture_fails);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
