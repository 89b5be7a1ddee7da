/* classify.c — the many-to-one network (classify.h): size table, arenas,
 * forward/backward through the stacked (optionally bidirectional) cells,
 * pooling and the sigmoid/softmax head, and the inference forward. The recurrences are the cells of
 * cell_*.c; products go through crn_gemm. Compiled as float and double. */
#include "classify.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell.h"
#include "common.h"
#include "kernels.h"

struct dir_params {
    size_t w_x, w_h, b_x, b_h;
    size_t ln_gx, ln_gh, ln_gc, ln_bc; // layer norm gains (and LSTM c bias); unused without
    int in;
};


struct dir_cache {
    real *hs, *cs;   // (T+1, B, H); cs LSTM only
    real *gates, *hg; // (T*B, G*H); hg GRU only
    real *xin;       // (T*B, in) this direction's input rows (embedding gather or permuted copy); NULL: one-hot
    crn_ln_saved ln; // layer norm only: xhat, hhat (T*B, G*H), xrs, hrs (T*B, G), LSTM chat (T*B, H), crs (T*B)
};

struct crn_clf {
    crn_clf_config cfg;
    int G, H, V, E, L, C, K, F;
    int *D;                   // (L) directions per layer
    struct dir_params *dp;    // (L*2)
    real *params, *grads;
    size_t nparams;
    crn_tensor_info *tensors;
    int ntensors;
    size_t embed_off, head_w_off, head_b_off;

    uint32_t Bcap, Tcap;
    real *mem;
    struct dir_cache *dc;     // (L*2)
    real **out;               // (L) layer outputs (T*B, D_l*H)
    real *feat, *fmask, *logits, *probs, *dz, *dfeat;
    real *dA, *dB, *dh, *dgx, *dhg, *dcs, *dtmp, *wp;
    real *dhr, *lnacc;        // layer norm: (T*B, G*H) d (h_{t-1} @ w_h); (B, CRN_LN_ACC) per-stream sums
    uint32_t *ids[2];         // (T*B) natural and reversed ids
    uint32_t *perm;           // (T*B) the reversal of each stream's valid prefix
    uint32_t *argmax;         // (B*F) time step of each max
    uint32_t *len;            // (B)
    real *table[2];           // (V, G*H) embed @ l0.w_x + l0.b_x per direction (inference), or NULL

    /* the inference arena (crn_clf_reserve_predict): a forward without labels
     * and rng keeps no activations, only each slot's last RING states */
    uint32_t pBcap, pTcap;
    real *pmem;
    real *pring, *pcring;     // (B slots, RING, H) states h (and c: LSTM) of the current chain of steps
    real *pg, *phg;           // (B, G*H) one step's gates (in: gx) and recurrent product (GRU)
    real *pemb;               // (B, E) one step's embedding rows (layer 0 without a table)
    real *pgx;                // (B*T, G*H) a layer's input projection, slot-major (L > 1)
    real *pio[2];             // (B*T, 2H) layer outputs, slot-major (L > 1)
    real *ppack;              // (L*2, psz) w_h packed per direction
    crn_ln_saved pln;         // (B rows) layer norm: one step's saved values per slot (not read again)
    size_t psz;
    uint32_t *pord;           // (B) the rows by length, longest first
    uint32_t *pcnt;           // (T+1) counting-sort scratch
    real fwd_loss_scale;
    uint32_t fwd_B, fwd_T;
    int fwd_ok, fwd_dropped;
};

static int gates_of(enum crn_cell c) { return c == CRN_CELL_LSTM ? 4 : c == CRN_CELL_GRU ? 3 : 1; }
static int dirs_of(const crn_clf_config *c, uint32_t l) {
    return c->bidir == CRN_BIDIR_ALL || (c->bidir == CRN_BIDIR_LAST && l + 1 == c->base.layers) ? 2 : 1;
}

/* ---- names, config (float build) ---------------------------------------- */

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
static const char *const pool_names[] = {"last", "mean", "max"};
static const char *const bidir_names[] = {"none", "last", "all"};

const char *crn_pool_name(enum crn_pool p) { return (unsigned)p <= CRN_POOL_MAX ? pool_names[p] : "?"; }
const char *crn_bidir_name(enum crn_bidir b) { return (unsigned)b <= CRN_BIDIR_ALL ? bidir_names[b] : "?"; }

int crn_pool_parse(const char *s, enum crn_pool *out) {
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, pool_names[i])) {
            *out = (enum crn_pool)i;
            return 0;
        }
    return crn_error_set(CRN_EINVAL, "unknown pooling '%s' (expected last, mean or max)", s ? s : "(null)");
}

int crn_bidir_parse(const char *s, enum crn_bidir *out) {
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, bidir_names[i])) {
            *out = (enum crn_bidir)i;
            return 0;
        }
    return crn_error_set(CRN_EINVAL, "unknown direction '%s' (expected none, last or all)", s ? s : "(null)");
}

int crn_clf_expected_params(const crn_clf_config *cfg, uint64_t *out) {
    const uint64_t V = cfg->base.vocab, E = cfg->base.embed, H = cfg->base.hidden;
    const uint64_t GH = (uint64_t)gates_of(cfg->base.cell) * H;
    uint64_t n = V * E, prev = 0;
    for (uint32_t l = 0; l < cfg->base.layers; l++) {
        uint64_t in = l == 0 ? (E ? E : V) : prev, D = (uint64_t)dirs_of(cfg, l);
        uint64_t add = D * (in + H + 2) * GH; // in < 2^35, GH < 2^17: fits
        if (cfg->base.layer_norm) add += D * (2 * GH + (cfg->base.cell == CRN_CELL_LSTM ? 2 * H : 0));
        if (add > UINT64_MAX - n) return -1;
        n += add;
        prev = D * H;
    }
    uint64_t K = cfg->classes == 2 ? 1 : cfg->classes;
    *out = n + prev * K + K; // prev <= 2^15, K <= 2^12
    return 0;
}

int crn_clf_config_check(const crn_clf_config *cfg) {
    if (crn_model_config_check(&cfg->base)) return crn_error_prefix(CRN_EINVAL, "classifier");
    if (cfg->classes < 2 || cfg->classes > CRN_CLF_MAX_CLASSES)
        return crn_error_set(CRN_ERANGE, "classifier config: %u classes not in [2, %u]", cfg->classes,
                             CRN_CLF_MAX_CLASSES);
    if ((unsigned)cfg->pool > CRN_POOL_MAX) return crn_error_set(CRN_EINVAL, "classifier config: pooling %d unknown", (int)cfg->pool);
    if ((unsigned)cfg->bidir > CRN_BIDIR_ALL)
        return crn_error_set(CRN_EINVAL, "classifier config: direction %d unknown", (int)cfg->bidir);
    uint64_t n;
    if (crn_clf_expected_params(cfg, &n) || n > ((uint64_t)1 << 40))
        return crn_error_set(CRN_ERANGE, "classifier config: too many parameters");
    return 0;
}

double crn_clf_flops_per_token(const crn_clf_config *cfg) {
    double H = cfg->base.hidden, GH = gates_of(cfg->base.cell) * H, f = 0, prev = 0;
    for (uint32_t l = 0; l < cfg->base.layers; l++) {
        double in = l == 0 ? (cfg->base.embed ? cfg->base.embed : cfg->base.vocab) : prev;
        f += dirs_of(cfg, l) * (2 * in * GH + 2 * H * GH);
        prev = dirs_of(cfg, l) * H;
    }
    return f;
}
#endif

/* ---- size table ---------------------------------------------------------- */

static void add_tensor(crn_clf *m, const char *name, size_t rows, size_t cols, size_t *off) {
    crn_tensor_info *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = *off;
    t->rows = rows;
    t->cols = cols;
    *off += rows * cols;
}

static void build_table(crn_clf *m) {
    size_t off = 0, GH = (size_t)m->G * m->H;
    char name[32];
    if (m->E > 0) {
        m->embed_off = off;
        add_tensor(m, "embed", (size_t)m->V, (size_t)m->E, &off);
    }
    int prev = 0;
    for (int l = 0; l < m->L; l++) {
        for (int d = 0; d < m->D[l]; d++) {
            struct dir_params *p = &m->dp[2 * l + d];
            const char *sfx = d ? "r" : "";
            p->in = l == 0 ? (m->E > 0 ? m->E : m->V) : prev;
            snprintf(name, sizeof name, "l%d%s.w_x", l, sfx);
            p->w_x = off;
            add_tensor(m, name, (size_t)p->in, GH, &off);
            snprintf(name, sizeof name, "l%d%s.w_h", l, sfx);
            p->w_h = off;
            add_tensor(m, name, (size_t)m->H, GH, &off);
            snprintf(name, sizeof name, "l%d%s.b_x", l, sfx);
            p->b_x = off;
            add_tensor(m, name, 1, GH, &off);
            snprintf(name, sizeof name, "l%d%s.b_h", l, sfx);
            p->b_h = off;
            add_tensor(m, name, 1, GH, &off);
        }
        prev = m->D[l] * m->H;
    }
    m->head_w_off = off;
    add_tensor(m, "head_w", (size_t)m->F, (size_t)m->K, &off);
    m->head_b_off = off;
    add_tensor(m, "head_b", 1, (size_t)m->K, &off);
    for (int l = 0; m->cfg.base.layer_norm && l < m->L; l++) // model.h's LN tensors, after all the others
        for (int d = 0; d < m->D[l]; d++) {
            struct dir_params *p = &m->dp[2 * l + d];
            static const char *const nm[4] = {"ln_gx", "ln_gh", "ln_gc", "ln_bc"};
            size_t *at[4] = {&p->ln_gx, &p->ln_gh, &p->ln_gc, &p->ln_bc};
            for (int k = 0; k < (m->G == 4 ? 4 : 2); k++) {
                snprintf(name, sizeof name, "l%d%s.%s", l, d ? "r" : "", nm[k]);
                *at[k] = off;
                add_tensor(m, name, 1, k < 2 ? GH : (size_t)m->H, &off);
            }
        }
    m->nparams = off;
}

/* The double build has no crn_model_config_check (float only): the fields
 * it relies on are checked here. */
static int basic_check(const crn_clf_config *c) {
    const crn_model_config *b = &c->base;
    if ((unsigned)b->cell > CRN_CELL_GRU || b->vocab == 0 || b->hidden == 0 || b->hidden > 16384 || b->layers == 0 ||
        b->layers > 64 || b->embed > 16384 || b->vocab > (1u << 22) || c->classes < 2 ||
        c->classes > CRN_CLF_MAX_CLASSES || (unsigned)c->pool > CRN_POOL_MAX || (unsigned)c->bidir > CRN_BIDIR_ALL ||
        b->layer_norm > 1 || !(b->dropout >= 0 && b->dropout < 1))
        return crn_error_set(CRN_EINVAL, "classifier: invalid config");
    return 0;
}

int CRN_FN(crn_clf_create)(crn_clf **out, const crn_clf_config *cfg) {
    *out = NULL;
    int rc = basic_check(cfg);
    if (rc) return rc;
    crn_clf *m = calloc(1, sizeof *m);
    if (!m) return crn_error_set(CRN_ENOMEM, "classifier: out of memory");
    m->cfg = *cfg;
    m->G = gates_of(cfg->base.cell);
    m->H = (int)cfg->base.hidden;
    m->V = (int)cfg->base.vocab;
    m->E = (int)cfg->base.embed;
    m->L = (int)cfg->base.layers;
    m->C = (int)cfg->classes;
    m->K = m->C == 2 ? 1 : m->C;
    m->D = calloc((size_t)m->L, sizeof *m->D);
    m->dp = calloc((size_t)m->L * 2, sizeof *m->dp);
    m->dc = calloc((size_t)m->L * 2, sizeof *m->dc);
    m->out = calloc((size_t)m->L, sizeof *m->out);
    m->tensors = calloc((size_t)16 * m->L + 3, sizeof *m->tensors);
    if (!m->D || !m->dp || !m->dc || !m->out || !m->tensors) {
        rc = crn_error_set(CRN_ENOMEM, "classifier: out of memory");
        goto fail;
    }
    for (int l = 0; l < m->L; l++) m->D[l] = dirs_of(cfg, (uint32_t)l);
    m->F = m->D[m->L - 1] * m->H;
    build_table(m);
    m->params = crn_calloc(m->nparams, sizeof(real));
    m->grads = crn_calloc(m->nparams, sizeof(real));
    if (!m->params || !m->grads) {
        rc = crn_error_set(CRN_ENOMEM, "classifier: cannot allocate %zu parameters", m->nparams);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    CRN_FN(crn_clf_destroy)(m);
    return rc;
}

static void free_arena(crn_clf *m) {
    crn_free(m->mem);
    free(m->ids[0]);
    free(m->ids[1]);
    free(m->perm);
    free(m->argmax);
    free(m->len);
    m->mem = NULL;
    m->ids[0] = m->ids[1] = m->perm = m->argmax = m->len = NULL;
}

static void free_predict(crn_clf *m) {
    crn_free(m->pmem);
    free(m->pord);
    free(m->pcnt);
    m->pmem = NULL;
    m->pord = m->pcnt = NULL;
    m->pBcap = m->pTcap = 0;
}

void CRN_FN(crn_clf_destroy)(crn_clf *m) {
    if (!m) return;
    free_arena(m);
    free_predict(m);
    crn_free(m->table[0]);
    crn_free(m->table[1]);
    crn_free(m->params);
    crn_free(m->grads);
    free(m->D);
    free(m->dp);
    free(m->dc);
    free(m->out);
    free(m->tensors);
    free(m);
}

const crn_clf_config *CRN_FN(crn_clf_config_of)(const crn_clf *m) { return &m->cfg; }
real *CRN_FN(crn_clf_params)(crn_clf *m) { return m->params; }
real *CRN_FN(crn_clf_grads)(crn_clf *m) { return m->grads; }
size_t CRN_FN(crn_clf_num_params)(const crn_clf *m) { return m->nparams; }
int CRN_FN(crn_clf_num_tensors)(const crn_clf *m) { return m->ntensors; }
const crn_tensor_info *CRN_FN(crn_clf_tensor)(const crn_clf *m, int i) {
    return i >= 0 && i < m->ntensors ? &m->tensors[i] : NULL;
}
const crn_tensor_info *CRN_FN(crn_clf_find_tensor)(const crn_clf *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}
void CRN_FN(crn_clf_zero_grads)(crn_clf *m) { memset(m->grads, 0, m->nparams * sizeof(real)); }

void CRN_FN(crn_clf_init)(crn_clf *m, crn_rng *rng) {
    const double k = 1.0 / sqrt((double)m->H), kh = 1.0 / sqrt((double)m->F);
    for (int i = 0; i < m->ntensors; i++) {
        const crn_tensor_info *t = &m->tensors[i];
        real *p = m->params + t->offset;
        size_t n = t->rows * t->cols;
        int head = t->offset >= m->head_w_off;
        if (!strcmp(t->name, "embed")) {
            for (size_t j = 0; j < n; j++) {
                double u1 = crn_rng_uniform(rng), u2 = crn_rng_uniform(rng);
                p[j] = (real)(sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2));
            }
        } else {
            for (size_t j = 0; j < n; j++) p[j] = (real)((2.0 * crn_rng_uniform(rng) - 1.0) * (head ? kh : k));
        }
    }
    if (m->cfg.base.cell == CRN_CELL_LSTM)
        for (int l = 0; l < m->L; l++)
            for (int d = 0; d < m->D[l]; d++)
                for (int j = 0; j < m->H; j++) {
                    m->params[m->dp[2 * l + d].b_x + m->H + j] = 1;
                    m->params[m->dp[2 * l + d].b_h + m->H + j] = 0;
                }
    for (int l = 0; m->cfg.base.layer_norm && l < m->L; l++) // LN gains 1, the LSTM's LN(c) bias 0
        for (int d = 0; d < m->D[l]; d++) {
            const struct dir_params *p = &m->dp[2 * l + d];
            for (int j = 0; j < m->G * m->H; j++) m->params[p->ln_gx + j] = m->params[p->ln_gh + j] = 1;
            for (int j = 0; m->G == 4 && j < m->H; j++) {
                m->params[p->ln_gc + j] = 1;
                m->params[p->ln_bc + j] = 0;
            }
        }
}

/* ---- arena ---------------------------------------------------------------- */

/* Take n elements (rounded up to 16: 64-byte aligned) at off of base (NULL: count only). */
#define TAKE(ptr, n)                                                                                                   \
    do {                                                                                                               \
        (ptr) = base ? base + off : NULL;                                                                              \
        off += ((size_t)(n) + 15) & ~(size_t)15;                                                                       \
    } while (0)

/* Carve (base NULL: count) at *at what layer normalisation saves for rows
 * rows (nothing without it). */
static void carve_ln(const crn_clf *m, crn_ln_saved *c, real *base, size_t *at, size_t rows) {
    size_t off = *at;
    const size_t H = (size_t)m->H, G = (size_t)m->G;
    memset(c, 0, sizeof *c);
    if (!m->cfg.base.layer_norm) return;
    if (G != 4) TAKE(c->xhat, rows * G * H); // (the LSTM normalises x W_x in its gates buffer)
    TAKE(c->xrs, rows * G);
    TAKE(c->hhat, rows * G * H);
    TAKE(c->hrs, rows * G);
    if (G == 4) {
        TAKE(c->chat, rows * H);
        TAKE(c->crs, rows);
    }
    *at = off;
}

/* Carve (base NULL: count) the float arena of training for B x T (the
 * pooled features, logits and probabilities are the inference arena's). */
static size_t carve(crn_clf *m, real *base, size_t B, size_t T) {
    size_t off = 0;
    const size_t H = (size_t)m->H, GH = (size_t)m->G * H, TB = T * B, BH = B * H;
    int lstm = m->cfg.base.cell == CRN_CELL_LSTM, gru = m->cfg.base.cell == CRN_CELL_GRU;
    size_t maxin = 2 * H > (size_t)m->E ? 2 * H : (size_t)m->E;
    for (int l = 0; l < m->L; l++) {
        for (int d = 0; d < m->D[l]; d++) {
            struct dir_cache *c = &m->dc[2 * l + d];
            memset(c, 0, sizeof *c);
            TAKE(c->hs, (T + 1) * BH);
            if (lstm) TAKE(c->cs, (T + 1) * BH);
            TAKE(c->gates, TB * GH);
            if (gru) TAKE(c->hg, TB * GH);
            if ((l > 0 && d == 1) || (l == 0 && m->E > 0)) TAKE(c->xin, TB * (size_t)m->dp[2 * l + d].in);
            carve_ln(m, &c->ln, base, &off, TB);
        }
        TAKE(m->out[l], TB * (size_t)m->D[l] * H);
    }
    const size_t BF = B * (size_t)m->F;
    TAKE(m->fmask, BF);
    TAKE(m->dfeat, BF);
    TAKE(m->dz, B * (size_t)m->K);
    TAKE(m->dA, TB * 2 * H);
    TAKE(m->dB, TB * 2 * H);
    TAKE(m->dh, TB * H);
    TAKE(m->dgx, TB * GH);
    if (gru) TAKE(m->dhg, TB * GH);
    if (lstm) TAKE(m->dcs, BH);
    TAKE(m->dtmp, TB * maxin);
    m->dhr = m->lnacc = NULL;
    if (m->cfg.base.layer_norm) {
        TAKE(m->dhr, TB * GH);
        TAKE(m->lnacc, B * CRN_LN_ACC(m->G, m->H));
    }
    size_t pf = CRN_FN(crn_pack_size)(m->H, m->G * m->H), pb = CRN_FN(crn_pack_size)(m->G * m->H, m->H);
    TAKE(m->wp, pf > pb ? pf : pb);
    return off;
}

enum { RING = 8 }; // states kept per slot in inference: a chain of steps wraps around every RING - 1 steps

/* Carve (base NULL: count) the inference arena for B x T. */
static size_t carve_predict(crn_clf *m, real *base, size_t B, size_t T) {
    size_t off = 0;
    const size_t H = (size_t)m->H, GH = (size_t)m->G * H;
    TAKE(m->feat, B * (size_t)m->F);
    TAKE(m->logits, B * (size_t)m->K);
    TAKE(m->probs, B * (size_t)m->C);
    TAKE(m->pring, B * RING * H);
    m->pcring = m->phg = m->pemb = m->pgx = m->pio[0] = m->pio[1] = NULL;
    if (m->cfg.base.cell == CRN_CELL_LSTM) TAKE(m->pcring, B * RING * H);
    TAKE(m->pg, B * GH);
    if (m->cfg.base.cell == CRN_CELL_GRU) TAKE(m->phg, B * GH);
    if (m->E > 0) TAKE(m->pemb, B * (size_t)m->E);
    if (m->L > 1) {
        TAKE(m->pgx, B * T * GH);
        TAKE(m->pio[0], B * T * 2 * H);
        if (m->L > 2) TAKE(m->pio[1], B * T * 2 * H);
    }
    m->psz = CRN_FN(crn_pack_size)(m->H, m->G * m->H);
    TAKE(m->ppack, m->psz * 2 * (size_t)m->L);
    carve_ln(m, &m->pln, base, &off, B);
    return off;
}
#undef TAKE

int CRN_FN(crn_clf_reserve_predict)(crn_clf *m, uint32_t B, uint32_t T) {
    if (B == 0 || T == 0) return crn_error_set(CRN_EINVAL, "classifier reserve: B=%u, T=%u must be > 0", B, T);
    if (B <= m->pBcap && T <= m->pTcap) return 0;
    B = CRN_MAX(B, m->pBcap);
    T = CRN_MAX(T, m->pTcap);
    uint64_t width = (uint64_t)m->G * m->H + 2 * (uint64_t)m->H + 1;
    if ((uint64_t)B * T > (uint64_t)INT_MAX / width || (uint64_t)B * (m->F + RING * (uint64_t)m->H) > INT_MAX)
        return crn_error_set(CRN_ERANGE, "classifier reserve: window B=%u x T=%u too large", B, T);
    free_predict(m);
    size_t n = carve_predict(m, NULL, B, T);
    m->pmem = crn_calloc(n, sizeof(real));
    m->pord = calloc(B, sizeof(uint32_t));
    m->pcnt = calloc((size_t)T + 1, sizeof(uint32_t));
    if (!m->pmem || !m->pord || !m->pcnt) {
        free_predict(m);
        return crn_error_set(CRN_ENOMEM, "classifier reserve: cannot allocate %zu activations", n);
    }
    carve_predict(m, m->pmem, B, T);
    m->pBcap = B;
    m->pTcap = T;
    return 0;
}

int CRN_FN(crn_clf_reserve)(crn_clf *m, uint32_t B, uint32_t T) {
    int rc = CRN_FN(crn_clf_reserve_predict)(m, B, T);
    if (rc) return rc;
    if (B <= m->Bcap && T <= m->Tcap) return 0;
    B = CRN_MAX(B, m->Bcap);
    T = CRN_MAX(T, m->Tcap);
    uint64_t width = (uint64_t)m->G * m->H * 2 + (uint64_t)m->E + (uint64_t)m->V + 1;
    if (m->cfg.base.layer_norm) width += (uint64_t)m->G * m->H * 4 + (uint64_t)m->H + 2 * (uint64_t)m->G + 1;
    if ((uint64_t)B * (T + 1) > (uint64_t)INT_MAX / width || (uint64_t)B * m->F > INT_MAX)
        return crn_error_set(CRN_ERANGE, "classifier reserve: window B=%u x T=%u too large", B, T);
    free_arena(m);
    m->Bcap = m->Tcap = 0;
    size_t n = carve(m, NULL, B, T), TB = (size_t)B * T;
    m->mem = crn_calloc(n, sizeof(real));
    m->ids[0] = calloc(TB, sizeof(uint32_t));
    m->ids[1] = calloc(TB, sizeof(uint32_t));
    m->perm = calloc(TB, sizeof(uint32_t));
    m->argmax = calloc((size_t)B * m->F, sizeof(uint32_t));
    m->len = calloc(B, sizeof(uint32_t));
    if (!m->mem || !m->ids[0] || !m->ids[1] || !m->perm || !m->argmax || !m->len) {
        free_arena(m);
        return crn_error_set(CRN_ENOMEM, "classifier reserve: cannot allocate %zu activations", n);
    }
    carve(m, m->mem, B, T);
    m->Bcap = B;
    m->Tcap = T;
    m->fwd_ok = 0;
    return 0;
}

/* ---- forward -------------------------------------------------------------- */

/* Direction d of layer l's crn_ln (cell.h) over the saved values c,
 * gradients into D (NULL: forward only); NULL without layer norm. */
static const crn_ln *dir_ln(crn_ln *ln, const crn_clf *m, int l, int d, const crn_ln_saved *c, real *D) {
    if (!m->cfg.base.layer_norm) return NULL;
    const struct dir_params *p = &m->dp[2 * l + d];
    crn_ln_params(ln, m->params, D, p->ln_gx, p->b_x, p->ln_gh, p->ln_gc, p->ln_bc,
                  m->cfg.base.cell == CRN_CELL_LSTM, c, m->dhr, m->lnacc); // dhr, lnacc: the training arena's
    return ln;
}

/* gx (N, GH) = b_x on every row, or 0 with layer norm (the cell adds b_x
 * with the LN of x W_x). */
static void bias_init(const crn_clf *m, const struct dir_params *p, real *gx, int N) {
    const int GH = m->G * m->H;
    if (m->cfg.base.layer_norm) {
        memset(gx, 0, (size_t)N * GH * sizeof(real));
        return;
    }
    for (int r = 0; r < N; r++) memcpy(gx + (size_t)r * GH, m->params + p->b_x, (size_t)GH * sizeof(real));
}

int CRN_FN(crn_clf_inference_tables)(crn_clf *m, int enable) {
    for (int d = 0; d < 2; d++) {
        crn_free(m->table[d]);
        m->table[d] = NULL;
    }
    if (!enable || m->E == 0) return 0;
    const int GH = m->G * m->H;
    for (int d = 0; d < m->D[0]; d++) {
        const struct dir_params *p = &m->dp[d];
        real *t = m->table[d] = crn_calloc((size_t)m->V * GH, sizeof(real));
        if (!t) return crn_error_set(CRN_ENOMEM, "classifier: cannot allocate the %d x %d input table", m->V, GH);
        bias_init(m, p, t, m->V);
        CRN_FN(crn_gemm)(0, 0, m->V, GH, m->E, 1, m->params + m->embed_off, m->E, m->params + p->w_x, GH, 1, t, GH);
    }
    return 0;
}

/* dst row r = src row perm[r], rows of C values. */
static void permute_rows(real *dst, const real *src, const uint32_t *perm, int N, int C) {
    for (int r = 0; r < N; r++) memcpy(dst + (size_t)r * C, src + (size_t)perm[r] * C, (size_t)C * sizeof(real));
}

/* The input rows direction d of layer l > 0 reads: the layer below's output
 * (forward) or its permuted copy (backward). */
static const real *dir_input(const crn_clf *m, int l, int d) {
    return l > 0 && d == 0 ? m->out[l - 1] : m->dc[2 * l + d].xin;
}

/* One direction of layer l: input rows, projection, recurrence, outputs
 * into out[l] columns [d*H, (d+1)*H). */
static void dir_forward(crn_clf *m, int l, int d, int B, int T) {
    const int H = m->H, GH = m->G * H, TB = T * B, DH = m->D[l] * H;
    const struct dir_params *p = &m->dp[2 * l + d];
    struct dir_cache *c = &m->dc[2 * l + d];
    const real *P = m->params;
    const uint32_t *ids = m->ids[d];
    real *gx = c->gates;
    bias_init(m, p, gx, TB);
    if (l == 0 && m->E == 0) {
        for (int r = 0; r < TB; r++) {
            real *g = gx + (size_t)r * GH;
            const real *w = P + p->w_x + (size_t)ids[r] * GH;
            for (int k = 0; k < GH; k++) g[k] += w[k];
        }
    } else {
        if (l == 0)
            for (int r = 0; r < TB; r++)
                memcpy(c->xin + (size_t)r * m->E, P + m->embed_off + (size_t)ids[r] * m->E, (size_t)m->E * sizeof(real));
        else if (d == 1)
            permute_rows(c->xin, m->out[l - 1], m->perm, TB, p->in);
        CRN_FN(crn_gemm)(0, 0, TB, GH, p->in, 1, dir_input(m, l, d), p->in, P + p->w_x, GH, 1, gx, GH);
    }
    const size_t BH = (size_t)B * H;
    memset(c->hs, 0, BH * sizeof(real));
    crn_ln lnb;
    const crn_ln *ln = dir_ln(&lnb, m, l, d, &c->ln, NULL);
    switch (m->cfg.base.cell) {
    case CRN_CELL_RNN:
        CRN_FN(crn_rnn_forward)(c->hs, gx, P + p->w_h, P + p->b_h, m->wp, ln, m->cfg.base.act == CRN_ACT_RELU, B, T,
                                H);
        break;
    case CRN_CELL_LSTM:
        memset(c->cs, 0, BH * sizeof(real));
        CRN_FN(crn_lstm_forward)(c->hs, c->cs, gx, P + p->w_h, P + p->b_h, m->wp, ln, B, T, H);
        break;
    case CRN_CELL_GRU:
        CRN_FN(crn_gru_forward)(c->hs, gx, c->hg, P + p->w_h, P + p->b_h, m->wp, ln, B, T, H);
        break;
    }
    real *o = m->out[l] + d * H;
    for (int r = 0; r < TB; r++) {
        int src = d ? (int)m->perm[r] : r;
        memcpy(o + (size_t)r * DH, c->hs + BH + (size_t)src * H, (size_t)H * sizeof(real));
    }
}

/* Pooling of the top layer into feat (B, F). */
static void pool_forward(crn_clf *m, int B) {
    const int H = m->H, F = m->F, D = m->D[m->L - 1];
    const real *o = m->out[m->L - 1]; // (T*B, F)
    for (int b = 0; b < B; b++) {
        real *f = m->feat + (size_t)b * F;
        const int n = (int)m->len[b];
        switch (m->cfg.pool) {
        case CRN_POOL_LAST:
            memcpy(f, o + ((size_t)(n - 1) * B + b) * F, (size_t)H * sizeof(real));
            if (D == 2) memcpy(f + H, o + (size_t)b * F + H, (size_t)H * sizeof(real));
            break;
        case CRN_POOL_MEAN:
            memset(f, 0, (size_t)F * sizeof(real));
            for (int t = 0; t < n; t++) {
                const real *x = o + ((size_t)t * B + b) * F;
                for (int j = 0; j < F; j++) f[j] += x[j];
            }
            for (int j = 0; j < F; j++) f[j] /= (real)n;
            break;
        case CRN_POOL_MAX: {
            uint32_t *am = m->argmax + (size_t)b * F;
            memcpy(f, o + (size_t)b * F, (size_t)F * sizeof(real));
            memset(am, 0, (size_t)F * sizeof *am);
            for (int t = 1; t < n; t++) {
                const real *x = o + ((size_t)t * B + b) * F;
                for (int j = 0; j < F; j++)
                    if (x[j] > f[j]) {
                        f[j] = x[j];
                        am[j] = (uint32_t)t;
                    }
            }
            break;
        }
        }
    }
}

/* Head: dropout, logits, probabilities, loss and dz (scaled for backward). */
static double head_forward(crn_clf *m, const uint32_t *y, const real *w, int B, crn_rng *rng) {
    const int F = m->F, K = m->K, C = m->C;
    const size_t BF = (size_t)B * F;
    m->fwd_dropped = 0;
    if (rng && m->cfg.base.dropout > 0) {
        const double pd = m->cfg.base.dropout;
        const real keep = (real)(1.0 / (1.0 - pd));
        for (size_t k = 0; k < BF; k++) {
            m->fmask[k] = crn_rng_uniform(rng) < pd ? 0 : keep;
            m->feat[k] *= m->fmask[k];
        }
        m->fwd_dropped = 1;
    }
    CRN_FN(crn_gemm)(0, 0, B, K, F, 1, m->feat, F, m->params + m->head_w_off, K, 0, m->logits, K);
    crn_add_rows(m->logits, m->params + m->head_b_off, B, K);
    double loss = 0;
    const real inv_b = (real)(1.0 / B);
    for (int b = 0; b < B; b++) {
        const real *z = m->logits + (size_t)b * K;
        real *pr = m->probs + (size_t)b * C, *dz = y ? m->dz + (size_t)b * K : NULL; // dz: training arena only
        const real wb = w ? w[b] : 1;
        if (K == 1) {
            real p1 = crn_sigmoid(z[0]);
            pr[0] = 1 - p1;
            pr[1] = p1;
            if (y) {
                // BCE with logits, stable: max(z,0) - y z + log(1 + e^{-|z|})
                double zz = z[0], yy = y[b];
                loss += wb * ((zz > 0 ? zz : 0) - yy * zz + log1p(exp(-fabs(zz))));
                dz[0] = (p1 - (real)y[b]) * wb * inv_b;
            }
        } else {
            real mx = z[0];
            for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
            double s = 0;
            for (int k = 0; k < K; k++) s += exp((double)(z[k] - mx));
            for (int k = 0; k < K; k++) pr[k] = (real)(exp((double)(z[k] - mx)) / s);
            if (y) {
                loss += wb * (log(s) - (double)(z[y[b]] - mx));
                for (int k = 0; k < K; k++) dz[k] = (pr[k] - (k == (int)y[b])) * wb * inv_b;
            }
        }
    }
    return loss;
}

/* ---- inference -------------------------------------------------------------
 * A forward without labels and rng keeps no activations. The rows of the
 * window are sorted by length, longest first, and dealt out to the parts
 * (threads) in turn: part p of P takes sorted rows p, p + P, p + 2P, ...,
 * which it keeps in its own slots s .. s + np in that order, so at every step
 * the rows still running (t < len) are a prefix of its slots: no padded step
 * is computed. The backward direction's step t reads position len - 1 - t,
 * so it runs the same prefixes. Each step is one product h_{t-1} (n, H) @
 * w_h (packed once per window) and the cell's fused gates (the cells of
 * cell_*.c with T = 1, as a generator's sampling step); gx is read from the
 * inference table (layer 0) or from a whole-window product of the layer
 * below's outputs (layers > 0). The states of a part form a chain of steps
 * in its ring (the cell reads h_{t-1} at hs[0] and writes h_t right after
 * it), moved back to the ring's start when it reaches the end. The top
 * layer is pooled step by step into feat; lower layers' outputs are stored
 * slot-major at natural positions for the next layer's product. Streams
 * never mix, so the parts run on the threads with no synchronisation. */

struct infer_job {
    crn_clf *m;
    const uint32_t *x, *len; // (T, B), (B)
    int B, T;
};

struct part {
    int p, nparts; // this part of nparts
    int np, s;     // its rows and first slot
};

/* Original row of part q's local row i. */
static inline uint32_t row_of(const crn_clf *m, const struct part *q, int i) {
    return m->pord[q->p + (size_t)i * q->nparts];
}

/* gx (n, GH) of part q's n running rows at step t of direction d of layer l. */
static void step_input(crn_clf *m, const struct infer_job *j, const struct part *q, int l, int d, int t, int n,
                       real *g) {
    const int GH = m->G * m->H, E = m->E;
    const struct dir_params *p = &m->dp[2 * l + d];
    const real *P = m->params;
    for (int i = 0; i < n; i++) {
        const uint32_t b = row_of(m, q, i);
        const int pos = d ? (int)j->len[b] - 1 - t : t;
        real *gi = g + (size_t)i * GH;
        if (l > 0) {
            memcpy(gi, m->pgx + ((size_t)(q->s + i) * j->T + pos) * GH, (size_t)GH * sizeof(real));
            continue;
        }
        const uint32_t id = j->x[(size_t)pos * j->B + b];
        if (m->table[d]) {
            memcpy(gi, m->table[d] + (size_t)id * GH, (size_t)GH * sizeof(real));
        } else if (E == 0) {
            const real *w = P + p->w_x + (size_t)id * GH, *bx = P + p->b_x;
            if (m->cfg.base.layer_norm) memcpy(gi, w, (size_t)GH * sizeof(real));
            else for (int k = 0; k < GH; k++) gi[k] = bx[k] + w[k];
        } else {
            bias_init(m, p, gi, 1);
            memcpy(m->pemb + (size_t)(q->s + i) * E, P + m->embed_off + (size_t)id * E, (size_t)E * sizeof(real));
        }
    }
    if (l == 0 && !m->table[d] && E > 0)
        CRN_FN(crn_gemm_nn)(n, GH, E, m->pemb + (size_t)q->s * E, E, P + p->w_x, GH, 1, g, GH);
}

/* Layer l > 0, direction d: gx (np*T, GH) = the layer below's outputs of
 * part q's slots @ w_x + b_x, one product (padded positions included). */
static void layer_input(crn_clf *m, const struct infer_job *j, const struct part *q, int l, int d) {
    const int GH = m->G * m->H, rows = q->np * j->T;
    const struct dir_params *p = &m->dp[2 * l + d];
    const real *P = m->params;
    real *gx = m->pgx + (size_t)q->s * j->T * GH;
    bias_init(m, p, gx, rows);
    CRN_FN(crn_gemm)(0, 0, rows, GH, p->in, 1, m->pio[(l - 1) & 1] + (size_t)q->s * j->T * p->in, p->in, P + p->w_x,
                     GH, 1, gx, GH);
}

/* One step of part q's n rows of direction d of layer l: h_t (at hp + n*H)
 * from h_{t-1} (hp), gates g holding gx (x W_x without b_x with layer norm,
 * whose saved values go to the part's slots of pln and are not read again). */
static void cell_step(const crn_clf *m, const struct part *q, int l, int d, const real *pack, real *hp, real *cp,
                      real *g, real *hg, int n) {
    const int H = m->H, G = m->G, GH = G * H;
    const real *b_h = m->params + m->dp[2 * l + d].b_h;
    const size_t s = (size_t)q->s;
    const crn_ln_saved *pc = &m->pln;
    const crn_ln_saved c = {pc->xhat ? pc->xhat + s * GH : NULL, pc->xrs ? pc->xrs + s * G : NULL,
                               pc->hhat ? pc->hhat + s * GH : NULL, pc->hrs ? pc->hrs + s * G : NULL,
                               pc->chat ? pc->chat + s * H : NULL, pc->crs ? pc->crs + s : NULL};
    crn_ln lnb;
    const crn_ln *ln = dir_ln(&lnb, m, l, d, &c, NULL);
    /* the recurrent product: added to the gates, or written apart (the GRU's hg, LN's hhat) */
    real *rec = ln ? c.hhat : m->cfg.base.cell == CRN_CELL_GRU ? hg : g;
    CRN_FN(crn_gemm_packed_local)(n, GH, H, hp, H, pack, rec == g, rec, GH);
    switch (m->cfg.base.cell) {
    case CRN_CELL_RNN:
        CRN_FN(crn_rnn_forward)(hp, g, NULL, b_h, NULL, ln, m->cfg.base.act == CRN_ACT_RELU, n, 1, H);
        break;
    case CRN_CELL_LSTM:
        CRN_FN(crn_lstm_forward)(hp, cp, g, NULL, b_h, NULL, ln, n, 1, H);
        break;
    case CRN_CELL_GRU:
        CRN_FN(crn_gru_forward)(hp, g, hg, NULL, b_h, NULL, ln, n, 1, H);
        break;
    }
}

/* f (H) = the elementwise max of f and x, as pool_forward's (f kept unless
 * x > f), branch-free so that it vectorises. */
CRN_CLONES static void max_into(real *restrict f, const real *restrict x, int H) {
    for (int k = 0; k < H; k++) f[k] = x[k] > f[k] ? x[k] : f[k];
}

/* After step t: the states h (n, H) of part q's running rows, of which
 * [n1, n) have ended. The top layer pools them into feat (as pool_forward),
 * a lower layer stores them for the next. */
static void step_output(crn_clf *m, const struct infer_job *j, const struct part *q, int l, int d, int t, int n,
                        int n1, const real *h) {
    const int H = m->H, F = m->F;
    if (l + 1 < m->L) {
        const int DH = m->D[l] * H;
        for (int i = 0; i < n; i++) {
            const int pos = d ? (int)j->len[row_of(m, q, i)] - 1 - t : t;
            memcpy(m->pio[l & 1] + ((size_t)(q->s + i) * j->T + pos) * DH + d * H, h + (size_t)i * H,
                   (size_t)H * sizeof(real));
        }
        return;
    }
    const enum crn_pool pool = m->cfg.pool;
    for (int i = pool == CRN_POOL_LAST ? n1 : 0; i < n; i++) {
        real *f = m->feat + (size_t)row_of(m, q, i) * F + d * H;
        const real *x = h + (size_t)i * H;
        if (pool == CRN_POOL_LAST || t == 0)
            memcpy(f, x, (size_t)H * sizeof(real));
        else if (pool == CRN_POOL_MEAN)
            for (int k = 0; k < H; k++) f[k] += x[k];
        else
            max_into(f, x, H);
    }
}

/* Direction d of layer l over part q's rows. */
static void dir_infer(crn_clf *m, const struct infer_job *j, const struct part *q, int l, int d) {
    const int H = m->H, GH = m->G * H;
    const size_t cap = (size_t)q->np * RING * H;
    real *ring = m->pring + (size_t)q->s * RING * H;
    real *cring = m->pcring ? m->pcring + (size_t)q->s * RING * H : NULL;
    real *g = m->pg + (size_t)q->s * GH, *hg = m->phg ? m->phg + (size_t)q->s * GH : NULL;
    const real *pack = m->ppack + (size_t)(2 * l + d) * m->psz;
    if (l > 0) layer_input(m, j, q, l, d);
    int n = q->np;
    size_t o = 0, nH = (size_t)n * H;
    memset(ring, 0, nH * sizeof(real));
    if (cring) memset(cring, 0, nH * sizeof(real));
    for (int t = 0; n > 0; t++) {
        nH = (size_t)n * H;
        if (o + 2 * nH > cap) { // the chain reached the ring's end: h_{t-1} back to its start
            memmove(ring, ring + o, nH * sizeof(real));
            if (cring) memmove(cring, cring + o, nH * sizeof(real));
            o = 0;
        }
        step_input(m, j, q, l, d, t, n, g);
        cell_step(m, q, l, d, pack, ring + o, cring ? cring + o : NULL, g, hg, n);
        int n1 = n;
        while (n1 > 0 && (int)j->len[row_of(m, q, n1 - 1)] <= t + 1) n1--;
        step_output(m, j, q, l, d, t, n, n1, ring + o + nH);
        o += nH;
        n = n1;
    }
}

static void infer_part(void *arg, int part, int nparts) {
    const struct infer_job *j = arg;
    crn_clf *m = j->m;
    const int base = j->B / nparts, extra = j->B % nparts;
    struct part q = {part, nparts, base + (part < extra), part * base + (part < extra ? part : extra)};
    if (q.np == 0) return;
    for (int l = 0; l < m->L; l++)
        for (int d = 0; d < m->D[l]; d++) dir_infer(m, j, &q, l, d);
    if (m->cfg.pool == CRN_POOL_MEAN)
        for (int i = 0; i < q.np; i++) {
            const uint32_t b = row_of(m, &q, i);
            real *f = m->feat + (size_t)b * m->F;
            for (int k = 0; k < m->F; k++) f[k] /= (real)j->len[b];
        }
}

static void infer_forward(crn_clf *m, const uint32_t *x, const uint32_t *len, int B, int T) {
    uint32_t *cnt = m->pcnt; // counting sort, longest first, stable
    memset(cnt, 0, ((size_t)T + 1) * sizeof *cnt);
    for (int b = 0; b < B; b++) cnt[len[b]]++;
    for (uint32_t t = (uint32_t)T, at = 0; t >= 1; t--) {
        uint32_t c = cnt[t];
        cnt[t] = at;
        at += c;
    }
    for (int b = 0; b < B; b++) m->pord[cnt[len[b]]++] = (uint32_t)b;
    const int GH = m->G * m->H;
    for (int l = 0; l < m->L; l++)
        for (int d = 0; d < m->D[l]; d++)
            CRN_FN(crn_pack)(m->ppack + (size_t)(2 * l + d) * m->psz, 0, m->H, GH, m->params + m->dp[2 * l + d].w_h, GH);
    struct infer_job j = {m, x, len, B, T};
    int parts = CRN_FN(crn_pool_threads)();
    parts = parts < 1 ? 1 : parts > B ? B : parts;
    CRN_FN(crn_parallel)(infer_part, &j, parts);
    head_forward(m, NULL, NULL, B, NULL);
}

static int check_inputs(const crn_clf *m, const uint32_t *x, const uint32_t *len, const uint32_t *y, uint32_t B,
                        uint32_t T, int infer) {
    const uint32_t Bcap = infer ? m->pBcap : m->Bcap, Tcap = infer ? m->pTcap : m->Tcap;
    if (B == 0 || T == 0 || B > Bcap || T > Tcap)
        return crn_error_set(CRN_EINVAL, "classifier forward: window B=%u x T=%u beyond the reserved %u x %u", B, T,
                             Bcap, Tcap);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (x[i] >= (uint32_t)m->V)
            return crn_error_set(CRN_EINVAL, "classifier forward: id %u at %zu out of range (vocab %d)", x[i], i, m->V);
    for (uint32_t b = 0; b < B; b++) {
        if (len[b] == 0 || len[b] > T)
            return crn_error_set(CRN_EINVAL, "classifier forward: length %u of line %u not in [1, %u]", len[b], b, T);
        if (y && y[b] >= (uint32_t)m->C)
            return crn_error_set(CRN_EINVAL, "classifier forward: label %u of line %u out of range (%d classes)", y[b],
                                 b, m->C);
    }
    return 0;
}

int CRN_FN(crn_clf_forward)(crn_clf *m, const uint32_t *x, const uint32_t *len, const uint32_t *y, const real *w,
                            uint32_t B, uint32_t T, crn_rng *rng, double *loss_sum) {
    m->fwd_ok = 0;
    const int infer = y == NULL && rng == NULL;
    int rc = check_inputs(m, x, len, y, B, T, infer);
    if (rc) return rc;
    if (infer) {
        infer_forward(m, x, len, (int)B, (int)T);
        if (loss_sum) *loss_sum = 0;
        return 0;
    }
    const size_t TB = (size_t)B * T;
    memcpy(m->len, len, B * sizeof *len);
    memcpy(m->ids[0], x, TB * sizeof *x);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t b = 0; b < B; b++) {
            size_t r = (size_t)t * B + b;
            m->perm[r] = (uint32_t)(t < len[b] ? (size_t)(len[b] - 1 - t) * B + b : r);
        }
    for (size_t r = 0; r < TB; r++) m->ids[1][r] = x[m->perm[r]];
    for (int l = 0; l < m->L; l++)
        for (int d = 0; d < m->D[l]; d++) dir_forward(m, l, d, (int)B, (int)T);
    pool_forward(m, (int)B);
    double loss = head_forward(m, y, w, (int)B, rng);
    if (y) {
        m->fwd_ok = 1;
        m->fwd_B = B;
        m->fwd_T = T;
    }
    if (loss_sum) *loss_sum = loss;
    return 0;
}

const real *CRN_FN(crn_clf_probs)(const crn_clf *m) { return m->probs; }

/* ---- backward ------------------------------------------------------------- */

/* Head and pooling: dz -> dfeat -> dout (T*B, F) of the top layer. */
static void head_pool_backward(crn_clf *m, real *dout, int B, int T) {
    const int F = m->F, K = m->K, H = m->H, D = m->D[m->L - 1];
    real *G = m->grads;
    CRN_FN(crn_gemm)(1, 0, F, K, B, 1, m->feat, F, m->dz, K, 1, G + m->head_w_off, K);
    crn_colsum_acc(G + m->head_b_off, m->dz, B, K);
    CRN_FN(crn_gemm)(0, 1, B, F, K, 1, m->dz, K, m->params + m->head_w_off, K, 0, m->dfeat, F);
    const size_t BF = (size_t)B * F;
    if (m->fwd_dropped)
        for (size_t k = 0; k < BF; k++) m->dfeat[k] *= m->fmask[k];
    memset(dout, 0, (size_t)T * BF * sizeof(real));
    for (int b = 0; b < B; b++) {
        const real *df = m->dfeat + (size_t)b * F;
        const int n = (int)m->len[b];
        switch (m->cfg.pool) {
        case CRN_POOL_LAST:
            memcpy(dout + ((size_t)(n - 1) * B + b) * F, df, (size_t)H * sizeof(real));
            if (D == 2) memcpy(dout + (size_t)b * F + H, df + H, (size_t)H * sizeof(real));
            break;
        case CRN_POOL_MEAN:
            for (int t = 0; t < n; t++) {
                real *g = dout + ((size_t)t * B + b) * F;
                for (int j = 0; j < F; j++) g[j] = df[j] / (real)n;
            }
            break;
        case CRN_POOL_MAX: {
            const uint32_t *am = m->argmax + (size_t)b * F;
            for (int j = 0; j < F; j++) dout[((size_t)am[j] * B + b) * F + j] += df[j];
            break;
        }
        }
    }
}

/* One direction of layer l: dout (T*B, D*H) natural order -> parameter
 * gradients and, for l > 0, the gradient of the layer input added to
 * dprev (T*B, in) (d == 0 writes it, d == 1 adds). */
static void dir_backward(crn_clf *m, int l, int d, const real *dout, real *dprev, int B, int T) {
    const int H = m->H, GH = m->G * H, TB = T * B, DH = m->D[l] * H;
    const struct dir_params *p = &m->dp[2 * l + d];
    const struct dir_cache *c = &m->dc[2 * l + d];
    const real *P = m->params;
    real *G = m->grads, *dh = m->dh, *dgx = m->dgx;
    for (int r = 0; r < TB; r++) {
        int src = d ? (int)m->perm[r] : r;
        memcpy(dh + (size_t)r * H, dout + (size_t)src * DH + d * H, (size_t)H * sizeof(real));
    }
    crn_ln lnb;
    const crn_ln *ln = dir_ln(&lnb, m, l, d, &c->ln, G);
    switch (m->cfg.base.cell) {
    case CRN_CELL_RNN:
        CRN_FN(crn_rnn_backward)(dgx, G + p->w_h, G + p->b_h, dh, c->hs, P + p->w_h, m->wp, ln,
                                 m->cfg.base.act == CRN_ACT_RELU, B, T, H);
        break;
    case CRN_CELL_LSTM:
        CRN_FN(crn_lstm_backward)(dgx, G + p->w_h, G + p->b_h, dh, m->dcs, c->hs, c->cs, c->gates, P + p->w_h,
                                  P + p->b_h, m->wp, ln, B, T, H);
        break;
    case CRN_CELL_GRU:
        CRN_FN(crn_gru_backward)(dgx, m->dhg, G + p->w_h, G + p->b_h, dh, c->hs, c->gates, c->hg, P + p->w_h, m->wp,
                                 ln, B, T, H);
        break;
    }
    if (!ln) crn_colsum_acc(G + p->b_x, dgx, TB, GH); // (with ln the cell has summed it and dgx = d (x W_x))
    const uint32_t *ids = m->ids[d];
    if (l == 0 && m->E == 0) {
        for (int r = 0; r < TB; r++) {
            real *dw = G + p->w_x + (size_t)ids[r] * GH;
            const real *g = dgx + (size_t)r * GH;
            for (int k = 0; k < GH; k++) dw[k] += g[k];
        }
        return;
    }
    CRN_FN(crn_gemm)(1, 0, p->in, GH, TB, 1, dir_input(m, l, d), p->in, dgx, GH, 1, G + p->w_x, GH);
    real *dx = (l > 0 && d == 0) ? dprev : m->dtmp; // (T*B, in)
    CRN_FN(crn_gemm)(0, 1, TB, p->in, GH, 1, dgx, GH, P + p->w_x, GH, 0, dx, p->in);
    if (l == 0) {
        for (int r = 0; r < TB; r++) {
            real *de = G + m->embed_off + (size_t)ids[r] * m->E;
            const real *g = dx + (size_t)r * m->E;
            for (int j = 0; j < m->E; j++) de[j] += g[j];
        }
    } else if (d == 1) {
        for (int r = 0; r < TB; r++) {
            real *g = dprev + (size_t)m->perm[r] * p->in;
            const real *s = dx + (size_t)r * p->in;
            for (int j = 0; j < p->in; j++) g[j] += s[j];
        }
    }
}

int CRN_FN(crn_clf_backward)(crn_clf *m) {
    if (!m->fwd_ok) return crn_error_set(CRN_EINVAL, "classifier backward: no forward with labels to differentiate");
    const int B = (int)m->fwd_B, T = (int)m->fwd_T;
    real *dcur = m->dA, *dprev = m->dB;
    head_pool_backward(m, dcur, B, T);
    for (int l = m->L - 1; l >= 0; l--) {
        for (int d = 0; d < m->D[l]; d++) dir_backward(m, l, d, dcur, dprev, B, T);
        real *t = dcur;
        dcur = dprev;
        dprev = t;
    }
    return 0;
}
