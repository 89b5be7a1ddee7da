/* model.c — config, the parameter size table and buffer, the activation
 * arena, window forward/backward through the stacked cells, state carry and
 * the single step used for sampling. Compiled as float and as double
 * (real.h); every external symbol goes through CRN_FN.
 *
 * Forward of one layer over a window (T steps of B streams, rows t*B + b):
 *   gx = X @ w_x + b_x        one GEMM over T*B rows (layer 0 one-hot: a row
 *                             gather of w_x; embedding: gather embed rows, GEMM)
 *   recurrence                the cell (cell_*.c): per step h_{t-1} @ w_h
 * then logits = H_top @ out_w + out_b (one GEMM) and the fused softmax
 * cross-entropy, which already writes dlogits (scaled by 1/count) for backward.
 *
 * Backward mirrors it with single GEMMs over the window for dout_w, dW_x,
 * dW_h and the gradients of the layer inputs; only dh_{t-1} += dg_t @ w_h^T
 * runs step by step inside the cells. Nothing is allocated in forward,
 * backward or step: the arena is sized by crn_model_reserve, the step scratch
 * by crn_state_create. */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cell.h"
#include "common.h"
#include "kernels.h"


/* Saved activations of one layer for one window (see cell.h for hs/cs). */
struct layer_cache {
    real *hs;       // (T+1, B, H)
    real *cs;       // (T+1, B, H) LSTM only
    real *gates;    // (T*B, G*H) gx, then activated gates (LSTM, GRU)
    real *hg;       // (T*B, 3H) GRU recurrent projection
    real *mask;     // (T*B, H) dropout mask of this layer's input (l > 0, dropout > 0)
    real *xin;      // (T*B, H) the dropped input (l > 0, dropout > 0)
    real *xhat;     // (T*B, G*H) layer norm: normalised input projection
    real *xrs;      // (T*B, G) its 1/std per gate block
    real *hhat;     // (T*B, G*H) layer norm: normalised recurrent projection (crn_ln)
    real *hrs;      // (T*B, G)
    real *chat;     // (T*B, H) layer norm, LSTM: normalised c_t
    real *crs;      // (T*B)
    const real *in; // the input X of the last forward (T*B, in_l); NULL for layer 0 one-hot
    int dropped;    // dropout was applied to this layer's input in the last forward
};

struct arena {
    struct layer_cache *lc; // (L)
    real *xe;               // (T*B, E) gathered embedding rows
    real *logits;           // (T*B, V)
    real *dlogits;          // (T*B, V)
    real *dh;               // (T*B, H) gradient w.r.t. a layer's outputs (reused down the stack)
    real *dgx;              // (T*B, G*H)
    real *dhg;              // (T*B, 3H) GRU
    real *dc;               // (B, H) LSTM
    real *dxe;              // (T*B, E)
    real *dhr;              // (T*B, G*H) layer norm: d loss / d (h_{t-1} @ w_h)
    real *lnacc;            // (B, CRN_LN_ACC) layer norm: per-stream gradient sums (cell.h)
    real *wp;               // packed w_h (forward) or w_h^T (backward) of one layer; NULL in step arenas
};

enum { ARENA_LOGITS = 1, ARENA_BACKWARD = 2 };

struct layer_params {
    size_t w_x, w_h, b_x, b_h; // offsets into params/grads
    size_t ln_gx, ln_gh, ln_gc, ln_bc; // layer norm gains (and LSTM c bias); unused without
    int in;                    // input width of the layer
};

struct crn_model {
    crn_model_config cfg;
    int G, H, V, E, L;
    real *params, *grads;
    size_t nparams;
    crn_tensor_info *tensors;
    int ntensors;
    size_t embed_off, out_w_off, out_b_off;
    struct layer_params *lp; // (L)

    real *arena_mem;
    struct arena ar;
    uint32_t Bcap, Tcap;
    uint32_t *ids;      // (Tcap*Bcap) the last forward's inputs, for the gathers in backward
    uint32_t fwd_B, fwd_T;
    int fwd_ok;         // a forward with targets ran since the last reserve
    uint16_t *half;     // (nparams) binary16 snapshot of params for crn_model_step, or NULL (float build)
    uint32_t drop_all, drop_row0; // dropout masks drawn for drop_all streams, ours from drop_row0 (0: ours only)
};

struct crn_state {
    uint32_t B, L, H;
    enum crn_cell cell;
    real *h;            // (L, B, H)
    real *c;            // (L, B, H) LSTM, else NULL
    real *mem;          // step scratch
    struct arena ar;    // sized (B, T = 1), no logits/backward
};

/* ------------------------------------------------------------------ */
/* names, config (float build only: they do not depend on real)        */

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
const char *crn_cell_name(enum crn_cell c) {
    switch (c) {
    case CRN_CELL_RNN: return "rnn";
    case CRN_CELL_LSTM: return "lstm";
    case CRN_CELL_GRU: return "gru";
    }
    return "?";
}

int crn_cell_parse(const char *s, enum crn_cell *out) {
    static const enum crn_cell all[] = {CRN_CELL_RNN, CRN_CELL_LSTM, CRN_CELL_GRU};
    for (size_t i = 0; s && i < CRN_ARRAY_LEN(all); i++)
        if (!strcmp(s, crn_cell_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return crn_error_set(CRN_EINVAL, "unknown cell '%s' (expected rnn, lstm or gru)", s ? s : "(null)");
}

const char *crn_act_name(enum crn_act a) {
    switch (a) {
    case CRN_ACT_TANH: return "tanh";
    case CRN_ACT_RELU: return "relu";
    }
    return "?";
}

int crn_act_parse(const char *s, enum crn_act *out) {
    if (s && !strcmp(s, "tanh")) {
        *out = CRN_ACT_TANH;
        return 0;
    }

    if (s && !strcmp(s, "relu")) {
        *out = CRN_ACT_RELU;
        return 0;
    }
    return crn_error_set(CRN_EINVAL, "unknown activation '%s' (expected tanh or relu)", s ? s : "(null)");
}

static const char *const init_names[] = {"pytorch", "xavier", "orthogonal"};

const char *crn_init_name(enum crn_init_kind k) {
    return (unsigned)k < CRN_ARRAY_LEN(init_names) ? init_names[k] : "?";
}

int crn_init_parse(const char *s, enum crn_init_kind *out) {
    for (size_t i = 0; i < CRN_ARRAY_LEN(init_names); i++)
        if (!strcmp(s, init_names[i])) {
            *out = (enum crn_init_kind)i;
            return 0;
        }
    return -1;
}
#endif

/* Limits keep every GEMM dimension (T*B*4H products are size_t, but each of
 * M, N, K and the leading dimensions is an int) and the size table in range. */
#define CRN_MAX_VOCAB (1u << 22)
#define CRN_MAX_HIDDEN 16384u
#define CRN_MAX_EMBED 16384u
#define CRN_MAX_LAYERS 64u

/* static so the double build (linked without the float one) has it too */
static int config_check(const crn_model_config *cfg) {
    if (!cfg) return crn_error_set(CRN_EINVAL, "model config: NULL");
    if ((unsigned)cfg->cell > CRN_CELL_GRU) return crn_error_set(CRN_EINVAL, "model config: cell %d unknown", (int)cfg->cell);
    if ((unsigned)cfg->act > CRN_ACT_RELU)
        return crn_error_set(CRN_EINVAL, "model config: activation %d unknown", (int)cfg->act);
    if (cfg->vocab == 0 || cfg->vocab > CRN_MAX_VOCAB)
        return crn_error_set(CRN_ERANGE, "model config: vocab %u not in [1, %u]", cfg->vocab, CRN_MAX_VOCAB);
    if (cfg->hidden == 0 || cfg->hidden > CRN_MAX_HIDDEN)
        return crn_error_set(CRN_ERANGE, "model config: hidden %u not in [1, %u]", cfg->hidden, CRN_MAX_HIDDEN);
    if (cfg->embed > CRN_MAX_EMBED)
        return crn_error_set(CRN_ERANGE, "model config: embed %u not in [0, %u]", cfg->embed, CRN_MAX_EMBED);
    if (cfg->layers == 0 || cfg->layers > CRN_MAX_LAYERS)
        return crn_error_set(CRN_ERANGE, "model config: layers %u not in [1, %u]", cfg->layers, CRN_MAX_LAYERS);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return crn_error_set(CRN_ERANGE, "model config: dropout %g not in [0, 1)", (double)cfg->dropout);
    if (cfg->layer_norm > 1) return crn_error_set(CRN_EINVAL, "model config: layer_norm %u not 0 or 1", cfg->layer_norm);
    return 0;
}

static int gates_of(enum crn_cell c) { return c == CRN_CELL_LSTM ? 4 : c == CRN_CELL_GRU ? 3 : 1; }

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
int crn_model_config_check(const crn_model_config *cfg) { return config_check(cfg); }

double crn_model_flops_per_token(const crn_model_config *cfg) {
    double H = cfg->hidden, V = cfg->vocab, GH = gates_of(cfg->cell) * H, f = 0;
    for (uint32_t l = 0; l < cfg->layers; l++) {
        double in = l == 0 ? (cfg->embed ? cfg->embed : V) : H;
        f += 2 * in * GH + 2 * H * GH;
    }
    return f + 2 * H * V;
}
#endif

/* ------------------------------------------------------------------ */
/* size table: the one source of the parameter layout (model.h)        */

/* A walk over the layout: every tensor in the buffer's order, recorded in
 * tab (NULL: only counted). */
typedef struct layout_walk {
    crn_tensor_info *tab;
    int n;
    size_t off;
} layout_walk;

/* The next tensor: "name" (layer < 0) or "l<layer>.name", (rows, cols). @return its offset. */
static size_t put(layout_walk *w, const char *name, int layer, size_t rows, size_t cols) {
    size_t at = w->off;
    if (w->tab) {
        crn_tensor_info *t = &w->tab[w->n];
        if (layer < 0) snprintf(t->name, sizeof t->name, "%s", name);
        else snprintf(t->name, sizeof t->name, "l%d.%s", layer, name);
        t->offset = at;
        t->rows = rows;
        t->cols = cols;
    }
    w->n++;
    w->off += rows * cols; // sizes are bounded by crn_model_config_check: no overflow
    return at;
}

/* The layout of a checked config, as model.h lists it; the offsets also into
 * lp (L entries) and off3 (embed, out_w, out_b) when given. */
static void layout(const crn_model_config *cfg, layout_walk *w, struct layer_params *lp, size_t off3[3]) {
    const size_t H = cfg->hidden, V = cfg->vocab, E = cfg->embed, GH = (size_t)gates_of(cfg->cell) * H;
    struct layer_params scratch;
    size_t o[3] = {0, 0, 0};
    if (E > 0) o[0] = put(w, "embed", -1, V, E);
    for (int l = 0; l < (int)cfg->layers; l++) {
        struct layer_params *p = lp ? &lp[l] : &scratch;
        p->in = (int)(l == 0 ? (E > 0 ? E : V) : H);
        p->w_x = put(w, "w_x", l, (size_t)p->in, GH);
        p->w_h = put(w, "w_h", l, H, GH);
        p->b_x = put(w, "b_x", l, 1, GH);
        p->b_h = put(w, "b_h", l, 1, GH);
    }
    o[1] = put(w, "out_w", -1, H, V);
    o[2] = put(w, "out_b", -1, 1, V);
    for (int l = 0; cfg->layer_norm && l < (int)cfg->layers; l++) {
        struct layer_params *p = lp ? &lp[l] : &scratch;
        p->ln_gx = put(w, "ln_gx", l, 1, GH);
        p->ln_gh = put(w, "ln_gh", l, 1, GH);
        if (cfg->cell != CRN_CELL_LSTM) continue;
        p->ln_gc = put(w, "ln_gc", l, 1, H);
        p->ln_bc = put(w, "ln_bc", l, 1, H);
    }
    if (off3) memcpy(off3, o, sizeof o);
}

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
int crn_model_layout(const crn_model_config *cfg, crn_tensor_info *tab, int *ntensors, uint64_t *nparams) {
    int rc = config_check(cfg);
    if (rc) return rc;
    layout_walk w = {tab, 0, 0};
    layout(cfg, &w, NULL, NULL);
    if (ntensors) *ntensors = w.n;
    if (nparams) *nparams = (uint64_t)w.off;
    return 0;
}
#endif

int CRN_FN(crn_model_create)(crn_model **out, const crn_model_config *cfg) {
    *out = NULL;
    int rc = config_check(cfg);
    if (rc) return rc;
    crn_model *m = calloc(1, sizeof *m);
    if (!m) return crn_error_set(CRN_ENOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->G = gates_of(cfg->cell);
    m->H = (int)cfg->hidden;
    m->V = (int)cfg->vocab;
    m->E = (int)cfg->embed;
    m->L = (int)cfg->layers;
    layout_walk count = {NULL, 0, 0};
    layout(cfg, &count, NULL, NULL);
    m->tensors = calloc((size_t)count.n, sizeof *m->tensors);
    m->lp = calloc((size_t)m->L, sizeof *m->lp);
    m->ar.lc = calloc((size_t)m->L, sizeof *m->ar.lc);
    if (!m->tensors || !m->lp || !m->ar.lc) {
        rc = crn_error_set(CRN_ENOMEM, "model: out of memory");
        goto fail;
    }
    layout_walk w = {m->tensors, 0, 0};
    size_t off3[3];
    layout(cfg, &w, m->lp, off3);
    m->ntensors = w.n;
    m->embed_off = off3[0];
    m->out_w_off = off3[1];
    m->out_b_off = off3[2];
    m->nparams = w.off;
    m->params = crn_calloc(w.off, sizeof(real));
    m->grads = crn_calloc(w.off, sizeof(real));
    if (!m->params || !m->grads) {
        rc = crn_error_set(CRN_ENOMEM, "model: cannot allocate %zu parameters", w.off);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    CRN_FN(crn_model_destroy)(m);
    return rc;
}

void CRN_FN(crn_model_destroy)(crn_model *m) {
    if (!m) return;
    crn_free(m->params);
    crn_free(m->grads);
    crn_free(m->arena_mem);
    free(m->ids);
    free(m->half);
    free(m->ar.lc);
    free(m->lp);
    free(m->tensors);
    free(m);
}

const crn_model_config *CRN_FN(crn_model_config_of)(const crn_model *m) { return &m->cfg; }
real *CRN_FN(crn_model_params)(crn_model *m) { return m->params; }
real *CRN_FN(crn_model_grads)(crn_model *m) { return m->grads; }
size_t CRN_FN(crn_model_num_params)(const crn_model *m) { return m->nparams; }
int CRN_FN(crn_model_num_tensors)(const crn_model *m) { return m->ntensors; }

const crn_tensor_info *CRN_FN(crn_model_tensor)(const crn_model *m, int i) {
    return i >= 0 && i < m->ntensors ? &m->tensors[i] : NULL;
}

const crn_tensor_info *CRN_FN(crn_model_find_tensor)(const crn_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

void CRN_FN(crn_model_zero_grads)(crn_model *m) { memset(m->grads, 0, m->nparams * sizeof(real)); }

/* The layer's crn_ln from its parameters (gradients into D, NULL in
 * forward) and saved buffers; NULL without layer norm. */
static const crn_ln *layer_ln(crn_ln *ln, const crn_model *m, const struct arena *ar, int l, real *D) {
    if (!m->cfg.layer_norm) return NULL;
    const struct layer_params *p = &m->lp[l];
    const struct layer_cache *c = &ar->lc[l];
    const crn_ln_saved s = {c->xhat, c->xrs, c->hhat, c->hrs, c->chat, c->crs};
    const int lstm = m->cfg.cell == CRN_CELL_LSTM; // its backward writes d (h_{t-1} @ w_h) over hhat
    crn_ln_params(ln, m->params, D, p->ln_gx, p->b_x, p->ln_gh, p->ln_gc, p->ln_bc, lstm, &s,
                  lstm ? c->hhat : ar->dhr, ar->lnacc);
    return ln;
}

/* Layer norm gains 1, the LSTM cell-state bias 0 (after the draws, which
 * leave every other tensor as it is without layer norm). */
static void ln_init(crn_model *m) {
    const size_t GH = (size_t)m->G * m->H;
    for (int l = 0; m->cfg.layer_norm && l < m->L; l++) {
        const struct layer_params *p = &m->lp[l];
        for (size_t j = 0; j < GH; j++) m->params[p->ln_gx + j] = m->params[p->ln_gh + j] = 1;
        if (m->cfg.cell != CRN_CELL_LSTM) continue;
        for (int j = 0; j < m->H; j++) {
            m->params[p->ln_gc + j] = 1;
            m->params[p->ln_bc + j] = 0;
        }
    }
}

/* Xavier/Glorot-uniform: each of the G gate blocks (columns g*H..g*H+H-1)
 * of a (rows, G*H) tensor gets U(-a, a), a = sqrt(6 / (rows + H)); row-major
 * draws. */
static void init_xavier(real *w, size_t rows, int G, int H, crn_rng *rng) {
    const double a = sqrt(6.0 / (double)(rows + (size_t)H));
    for (size_t j = 0; j < rows * (size_t)G * (size_t)H; j++) w[j] = (real)((2.0 * crn_rng_uniform(rng) - 1.0) * a);
}

/* Each (H, H) gate block of w (H, G*H) := a random orthogonal matrix:
 * modified Gram-Schmidt (in double) on the rows of a Gaussian matrix, drawn
 * row-major. tmp (H*H). A (numerically) dependent row is redrawn. */
static void init_orthogonal(real *w, int G, int H, double *tmp, crn_rng *rng) {
    const size_t GH = (size_t)G * H;
    for (int g = 0; g < G; g++) {
        for (int r = 0; r < H; r++) {
            double *q = tmp + (size_t)r * H;
            for (int tries = 0; tries < 8; tries++) {
                for (int j = 0; j < H; j++) {
                    double u1 = crn_rng_uniform(rng), u2 = crn_rng_uniform(rng);
                    q[j] = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
                }
                for (int k = 0; k < r; k++) {
                    const double *p = tmp + (size_t)k * H;
                    double d = 0;
                    for (int j = 0; j < H; j++) d += p[j] * q[j];
                    for (int j = 0; j < H; j++) q[j] -= d * p[j];
                }
                double nrm = 0;
                for (int j = 0; j < H; j++) nrm += q[j] * q[j];
                nrm = sqrt(nrm);
                if (nrm > 1e-6) {
                    for (int j = 0; j < H; j++) q[j] /= nrm;
                    break;
                }
            }
        }
        for (int r = 0; r < H; r++)
            for (int j = 0; j < H; j++) w[(size_t)r * GH + (size_t)g * H + j] = (real)tmp[(size_t)r * H + j];
    }
}

/* Tensors in table order, each row-major, one draw per element:
 * embed ~ N(0, 1) (Box-Muller, two uniforms per element), everything else
 * uniform(-1/sqrt(H), 1/sqrt(H)); then the scheme's redraws layer by layer
 * (w_x, then w_h), then the LSTM forget-gate biases (model.h). */
void CRN_FN(crn_model_init_spec)(crn_model *m, crn_rng *rng, const crn_init_spec *spec) {
    crn_init_spec def;
    if (!spec) {
        crn_init_spec_default(&def);
        def.kind = crn_init_default_kind(m->cfg.cell);
        spec = &def;
    }
    const double k = 1.0 / sqrt((double)m->H);
    for (int i = 0; i < m->ntensors; i++) {
        const crn_tensor_info *t = &m->tensors[i];
        real *p = m->params + t->offset;
        size_t n = t->rows * t->cols;
        if (!strcmp(t->name, "embed")) {
            for (size_t j = 0; j < n; j++) {
                double u1 = crn_rng_uniform(rng), u2 = crn_rng_uniform(rng);
                p[j] = (real)(sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2));
            }
        } else {
            for (size_t j = 0; j < n; j++) p[j] = (real)((2.0 * crn_rng_uniform(rng) - 1.0) * k);
        }
    }
    const size_t GH = (size_t)m->G * m->H;
    double *tmp = spec->kind == CRN_INIT_ORTHOGONAL ? malloc((size_t)m->H * m->H * sizeof *tmp) : NULL;
    if (spec->kind != CRN_INIT_PYTORCH)
        for (int l = 0; l < m->L; l++) {
            const struct layer_params *lp = &m->lp[l];
            init_xavier(m->params + lp->w_x, (size_t)lp->in, m->G, m->H, rng);
            if (tmp) init_orthogonal(m->params + lp->w_h, m->G, m->H, tmp, rng);
            else init_xavier(m->params + lp->w_h, (size_t)m->H, m->G, m->H, rng);
            memset(m->params + lp->b_x, 0, GH * sizeof(real));
            memset(m->params + lp->b_h, 0, GH * sizeof(real));
        }
    free(tmp); /* (without memory for it, orthogonal falls back to Xavier for w_h) */
    if (m->cfg.cell == CRN_CELL_LSTM && isfinite(spec->forget_bias))
        for (int l = 0; l < m->L; l++)
            for (int j = 0; j < m->H; j++) {
                m->params[m->lp[l].b_x + m->H + j] = (real)spec->forget_bias;
                m->params[m->lp[l].b_h + m->H + j] = 0;
            }
    ln_init(m);
#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
    if (m->half) crn_f16_from_f32(m->half, m->params, m->nparams); // keep the sampling snapshot current
#endif
}

void CRN_FN(crn_model_init)(crn_model *m, crn_rng *rng) { CRN_FN(crn_model_init_spec)(m, rng, NULL); }

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
int crn_model_step_f16(crn_model *m, int enable) {
    if (!enable) {
        free(m->half);
        m->half = NULL;
        return 0;
    }
    if (!m->half) {
        m->half = malloc(m->nparams * sizeof *m->half);
        if (!m->half) return crn_error_set(CRN_ENOMEM, "model: cannot allocate the binary16 sampling weights (%zu)", m->nparams);
    }
    /* the whole buffer, so every tensor keeps its offset; only the product
     * weights are read */
    crn_f16_from_f32(m->half, m->params, m->nparams);
    return 0;
}

/* One step of one stream with the binary16 weights: per layer the input
 * and recurrent products stream the half-precision rows (the cells then
 * only apply the gates: w_h == NULL), then the output layer. */
static void step_f16(crn_model *m, crn_state *st, uint32_t tok, real *logits) {
    const int H = m->H, GH = m->G * m->H, V = m->V, E = m->E;
    const real *P = m->params;
    const uint16_t *W = m->half;
    struct arena *ar = &st->ar;
    const real *in = NULL;
    int in_w = 0;
    for (int l = 0; l < m->L; l++) {
        struct layer_cache *c = &ar->lc[l];
        const struct layer_params *p = &m->lp[l];
        real *g = c->gates; // (1, GH)
        const int lnorm = (int)m->cfg.layer_norm; // b_x comes with the LN of x W_x
        if (l == 0 && E == 0) {
            const real *w = P + p->w_x + (size_t)tok * GH; // one-hot: a float row
            for (int j = 0; j < GH; j++) g[j] = w[j] + (lnorm ? 0 : P[p->b_x + j]);
        } else {
            if (l == 0) {
                in = P + m->embed_off + (size_t)tok * E;
                in_w = E;
            }
            if (lnorm)
                memset(g, 0, (size_t)GH * sizeof(real));
            else
                memcpy(g, P + p->b_x, (size_t)GH * sizeof(real));
            crn_gemv_f16(GH, in_w, in, W + p->w_x, GH, g);
        }
        crn_ln lnb;
        const crn_ln *ln = layer_ln(&lnb, m, ar, l, NULL);
        real *hp = st->h + (size_t)l * H;
        real *rec = ln ? c->hhat : m->cfg.cell == CRN_CELL_GRU ? c->hg : g; // receives h_{t-1} @ w_h
        if (ln || m->cfg.cell == CRN_CELL_GRU) memset(rec, 0, (size_t)GH * sizeof(real));
        crn_gemv_f16(GH, H, hp, W + p->w_h, GH, rec);
        memcpy(c->hs, hp, (size_t)H * sizeof(real));
        switch (m->cfg.cell) {
        case CRN_CELL_RNN:
            crn_rnn_forward(c->hs, g, NULL, P + p->b_h, NULL, ln, m->cfg.act == CRN_ACT_RELU, 1, 1, H);
            break;
        case CRN_CELL_LSTM:
            memcpy(c->cs, st->c + (size_t)l * H, (size_t)H * sizeof(real));
            crn_lstm_forward(c->hs, c->cs, g, NULL, P + p->b_h, NULL, ln, 1, 1, H);
            memcpy(st->c + (size_t)l * H, c->cs + H, (size_t)H * sizeof(real));
            break;
        case CRN_CELL_GRU:
            crn_gru_forward(c->hs, g, c->hg, NULL, P + p->b_h, NULL, ln, 1, 1, H);
            break;
        }
        memcpy(hp, c->hs + H, (size_t)H * sizeof(real));
        in = c->hs + H;
        in_w = H;
    }
    memcpy(logits, P + m->out_b_off, (size_t)V * sizeof(real));
    crn_gemv_f16(V, H, in, W + m->out_w_off, V, logits);
}
#endif

/* ------------------------------------------------------------------ */
/* arena                                                               */

/* Carve (or, with base == NULL, just count) the arena for B streams x T
 * steps. Every buffer starts on a 16-element (64-byte for float) boundary.
 * Returns the element count, or 0 on size overflow. */
static size_t carve(const crn_model *m, struct arena *ar, real *base, size_t B, size_t T, int flags) {
    size_t off = 0;
    int overflow = 0;
#define TAKE(ptr, n)                                                                                                   \
    do {                                                                                                               \
        size_t n_ = (n);                                                                                               \
        n_ = (n_ + 15) & ~(size_t)15;                                                                                  \
        (ptr) = base ? base + off : NULL;                                                                              \
        if (crn_add_size(off, n_, &off)) overflow = 1;                                                                 \
    } while (0)
    size_t H = (size_t)m->H, GH = (size_t)m->G * H, V = (size_t)m->V, E = (size_t)m->E;
    size_t TB, BH, TBH, TBGH, T1BH;
    if (crn_mul_size(T, B, &TB) || crn_mul_size(B, H, &BH) || crn_mul_size(TB, H, &TBH) ||
        crn_mul_size(TB, GH, &TBGH) || crn_mul_size(T + 1, BH, &T1BH) || crn_mul_size(TB, V, &(size_t){0}) ||
        crn_mul_size(TB, E, &(size_t){0}))
        return 0;
    int lstm = m->cfg.cell == CRN_CELL_LSTM, gru = m->cfg.cell == CRN_CELL_GRU;
    int drop = (flags & ARENA_BACKWARD) && m->cfg.dropout > 0;
    for (int l = 0; l < m->L; l++) {
        struct layer_cache *c = &ar->lc[l];
        memset(c, 0, sizeof *c);
        TAKE(c->hs, T1BH);
        if (lstm) TAKE(c->cs, T1BH);
        TAKE(c->gates, TBGH);
        if (gru) TAKE(c->hg, TBGH);
        if (drop && l > 0) {
            TAKE(c->mask, TBH);
            TAKE(c->xin, TBH);
        }
        if (m->cfg.layer_norm) {
            if (!lstm) TAKE(c->xhat, TBGH); // (the LSTM normalises x W_x in gates)
            TAKE(c->xrs, TB * m->G);
            TAKE(c->hhat, TBGH);
            TAKE(c->hrs, TB * m->G);
            if (lstm) {
                TAKE(c->chat, TBH);
                TAKE(c->crs, TB);
            }
        }
    }
    ar->xe = ar->logits = ar->dlogits = ar->dh = ar->dgx = ar->dhg = ar->dc = ar->dxe = ar->wp = NULL;
    ar->dhr = ar->lnacc = NULL;
    if (E) TAKE(ar->xe, TB * E);
    if (flags & ARENA_LOGITS) TAKE(ar->logits, TB * V);
    if (flags & ARENA_BACKWARD) {
        TAKE(ar->dlogits, TB * V);
        TAKE(ar->dh, TBH);
        TAKE(ar->dgx, TBGH);
        if (gru) TAKE(ar->dhg, TBGH);
        if (lstm) TAKE(ar->dc, BH);
        if (E) TAKE(ar->dxe, TB * E);
        if (m->cfg.layer_norm && !lstm) TAKE(ar->dhr, TBGH); // (the LSTM's is in place over hhat)
        if (m->cfg.layer_norm) TAKE(ar->lnacc, B * CRN_LN_ACC(m->G, H));
    }
    if (flags & ARENA_BACKWARD) { // training windows: pack w_h per window
        size_t pf = CRN_FN(crn_pack_size)(m->H, m->G * m->H), pb = CRN_FN(crn_pack_size)(m->G * m->H, m->H);
        TAKE(ar->wp, pf > pb ? pf : pb);
    }
#undef TAKE
    return overflow ? 0 : off;
}

int CRN_FN(crn_model_reserve)(crn_model *m, uint32_t B, uint32_t T) {
    if (B == 0 || T == 0) return crn_error_set(CRN_EINVAL, "model reserve: B=%u, T=%u must be > 0", B, T);
    if (B <= m->Bcap && T <= m->Tcap) return 0;
    /* grow to cover both the old and the new window shape */
    B = CRN_MAX(B, m->Bcap);
    T = CRN_MAX(T, m->Tcap);
    /* every GEMM has M = T*B rows; each must fit an int, and so must T*B*G*H
     * for the pointer arithmetic done in int-sized steps */
    if ((uint64_t)B * T > (uint64_t)INT_MAX / ((uint64_t)m->G * m->H + m->V + 1))
        return crn_error_set(CRN_ERANGE, "model reserve: window B=%u x T=%u too large", B, T);
    size_t n = carve(m, &m->ar, NULL, B, T, ARENA_LOGITS | ARENA_BACKWARD);
    if (n == 0) return crn_error_set(CRN_ERANGE, "model reserve: window B=%u x T=%u too large", B, T);
    real *mem = crn_calloc(n, sizeof(real));
    uint32_t *ids = calloc((size_t)B * T, sizeof *ids);
    if (!mem || !ids) {
        crn_free(mem);
        free(ids);
        return crn_error_set(CRN_ENOMEM, "model reserve: cannot allocate %zu activations for B=%u x T=%u", n, B, T);
    }
    crn_free(m->arena_mem);
    free(m->ids);
    m->arena_mem = mem;
    m->ids = ids;
    carve(m, &m->ar, mem, B, T, ARENA_LOGITS | ARENA_BACKWARD);
    m->Bcap = B;
    m->Tcap = T;
    m->fwd_ok = 0;
    return 0;
}

/* ------------------------------------------------------------------ */
/* state                                                               */

int CRN_FN(crn_state_create)(crn_state **out, const crn_model *m, uint32_t B) {
    *out = NULL;
    if (B == 0 || (uint64_t)B > (uint64_t)INT_MAX / ((uint64_t)m->G * m->H + m->V + 1))
        return crn_error_set(CRN_EINVAL, "state: batch %u out of range", B);
    crn_state *s = calloc(1, sizeof *s);
    if (!s) return crn_error_set(CRN_ENOMEM, "state: out of memory");
    s->B = B;
    s->L = (uint32_t)m->L;
    s->H = (uint32_t)m->H;
    s->cell = m->cfg.cell;
    size_t n = (size_t)m->L * B * m->H;
    s->h = crn_calloc(n, sizeof(real));
    if (m->cfg.cell == CRN_CELL_LSTM) s->c = crn_calloc(n, sizeof(real));
    s->ar.lc = calloc((size_t)m->L, sizeof *s->ar.lc);
    size_t ns = s->ar.lc ? carve(m, &s->ar, NULL, B, 1, 0) : 0;
    s->mem = ns ? crn_calloc(ns, sizeof(real)) : NULL;
    if (!s->h || (m->cfg.cell == CRN_CELL_LSTM && !s->c) || !s->mem) {
        CRN_FN(crn_state_destroy)(s);
        return crn_error_set(CRN_ENOMEM, "state: cannot allocate for batch %u", B);
    }
    carve(m, &s->ar, s->mem, B, 1, 0);
    *out = s;
    return 0;
}

void CRN_FN(crn_state_destroy)(crn_state *s) {
    if (!s) return;
    crn_free(s->h);
    crn_free(s->c);
    crn_free(s->mem);
    free(s->ar.lc);
    free(s);
}

void CRN_FN(crn_state_reset)(crn_state *s) {
    size_t n = (size_t)s->L * s->B * s->H;
    memset(s->h, 0, n * sizeof(real));
    if (s->c) memset(s->c, 0, n * sizeof(real));
}

uint32_t CRN_FN(crn_state_batch)(const crn_state *s) { return s->B; }

real *CRN_FN(crn_state_h)(crn_state *s, uint32_t l) {
    return l < s->L ? s->h + (size_t)l * s->B * s->H : NULL;
}

real *CRN_FN(crn_state_c)(crn_state *s, uint32_t l) {
    return s->c && l < s->L ? s->c + (size_t)l * s->B * s->H : NULL;
}

void CRN_FN(crn_state_copy_stream)(crn_state *dst, uint32_t dst_b, const crn_state *src, uint32_t src_b) {
    if (dst_b >= dst->B || src_b >= src->B || dst->L != src->L || dst->H != src->H) return;
    size_t H = dst->H;
    for (uint32_t l = 0; l < dst->L; l++) {
        memmove(dst->h + ((size_t)l * dst->B + dst_b) * H, src->h + ((size_t)l * src->B + src_b) * H,
                H * sizeof(real));
        if (dst->c && src->c)
            memmove(dst->c + ((size_t)l * dst->B + dst_b) * H, src->c + ((size_t)l * src->B + src_b) * H,
                    H * sizeof(real));
    }
}

static int state_matches(const crn_model *m, const crn_state *st) {
    return st->L == (uint32_t)m->L && st->H == (uint32_t)m->H && st->cell == m->cfg.cell;
}

/* ------------------------------------------------------------------ */
/* forward                                                             */

/* Y[r] = b + (rows ? W[rows[r]] : 0) for r < N (b == NULL: 0, rows only), Y (N, C): the bias rows a
 * window's product accumulates into, or the one-hot gather. Rows split
 * across the threads for a window. */
struct rows_job {
    real *Y;
    const real *b, *W;
    const uint32_t *rows;
    int N, C;
};

static void bias_rows_part(void *p, int part, int nparts) {
    const struct rows_job *j = p;
    const int r0 = (int)((long)j->N * part / nparts), r1 = (int)((long)j->N * (part + 1) / nparts), C = j->C;
    for (int r = r0; r < r1; r++) {
        real *restrict y = j->Y + (size_t)r * C;
        const real *restrict b = j->b;
        if (j->rows && !b) {
            memcpy(y, j->W + (size_t)j->rows[r] * C, (size_t)C * sizeof(real));
        } else if (j->rows) {
            const real *restrict w = j->W + (size_t)j->rows[r] * C;
            for (int k = 0; k < C; k++) y[k] = w[k] + b[k];
        } else
            memcpy(y, b, (size_t)C * sizeof(real));
    }
}

static void bias_rows(real *Y, const real *b, const real *W, const uint32_t *rows, int N, int C) {
    struct rows_job j = {Y, b, W, rows, N, C};
    CRN_FN(crn_parallel)(bias_rows_part, &j, (double)N * C < 65536 ? 1 : N);
}

/* dW[rows[r]] += G[r] for r < N (the transpose of the gather): rows may
 * repeat, so the threads split the columns. */
static void scatter_part(void *p, int part, int nparts) {
    const struct rows_job *j = p;
    const int nb = (j->C + 15) / 16, b0 = (int)((long)nb * part / nparts), b1 = (int)((long)nb * (part + 1) / nparts);
    const int c0 = b0 * 16, c1 = b1 * 16 < j->C ? b1 * 16 : j->C;
    for (int r = 0; r < j->N; r++) {
        real *restrict dw = j->Y + (size_t)j->rows[r] * j->C;
        const real *restrict g = j->b + (size_t)r * j->C;
        for (int k = c0; k < c1; k++) dw[k] += g[k];
    }
}

static void scatter_rows(real *dW, const real *G, const uint32_t *rows, int N, int C) {
    struct rows_job j = {dW, G, NULL, rows, N, C};
    CRN_FN(crn_parallel)(scatter_part, &j, (double)N * C < 65536 ? 1 : (C + 15) / 16);
}

/* Inverted dropout of a layer's input in (T*B, H): keep with probability
 * 1-p, scaled by 1/(1-p). With drop_all > B the masks of all drop_all
 * streams are drawn per step, and rows drop_row0 .. drop_row0+B-1 kept. */
static void dropout_masks(crn_model *m, struct layer_cache *c, const real *in, crn_rng *rng, int B, int T) {
    const double pd = m->cfg.dropout;
    const real keep = (real)(1.0 / (1.0 - pd));
    const size_t H = (size_t)m->H, BH = (size_t)B * H;
    const int part = m->drop_all > (uint32_t)B;
    const size_t before = part ? (size_t)m->drop_row0 * H : 0;
    const size_t after = part ? ((size_t)m->drop_all - m->drop_row0 - (size_t)B) * H : 0;
    for (int t = 0; t < T; t++) {
        for (size_t k = 0; k < before; k++) (void)crn_rng_uniform(rng);
        for (size_t k = (size_t)t * BH; k < (size_t)(t + 1) * BH; k++) {
            real mk = crn_rng_uniform(rng) < pd ? 0 : keep;
            c->mask[k] = mk;
            c->xin[k] = in[k] * mk;
        }
        for (size_t k = 0; k < after; k++) (void)crn_rng_uniform(rng);
    }
}

void CRN_FN(crn_model_set_dropout_rows)(crn_model *m, uint32_t B_all, uint32_t row0) {
    m->drop_all = B_all;
    m->drop_row0 = row0;
}

/* The stacked layers and the output projection over T steps of B streams;
 * st carries the state in and out. logits (T*B, V). B_all: the streams of
 * the whole window when these B are a rank's part of it (else B): the
 * products' kernel is chosen by T * B_all, so a rank's rows are computed by
 * the kernel one process computes them with (the two round differently). */
static void forward_core(crn_model *m, struct arena *ar, crn_state *st, const uint32_t *x, int B, int B_all, int T,
                         crn_rng *rng, real *logits) {
    const int H = m->H, GH = m->G * m->H, V = m->V, E = m->E, TB = T * B;
    const int small = (long)T * B_all <= 64; // a step (sampling): the small-product kernel, no BLAS call overhead
    const size_t BH = (size_t)B * H;
    const real *P = m->params;
    const real *in = NULL; // (T*B, in_l) the current layer's input
    for (int l = 0; l < m->L; l++) {
        struct layer_cache *c = &ar->lc[l];
        const struct layer_params *p = &m->lp[l];
        real *gx = c->gates; // (T*B, GH)
        const int lnorm = (int)m->cfg.layer_norm; // then gx = x W_x: the cell adds b_x with the LN
        c->dropped = 0;
        if (l == 0 && E == 0) {
            // one-hot input: gx[row] = w_x[x[row]] + b_x, a gather
            bias_rows(gx, lnorm ? NULL : P + p->b_x, P + p->w_x, x, TB, GH);
            c->in = NULL;
        } else {
            if (l == 0) {
                for (int r = 0; r < TB; r++)
                    memcpy(ar->xe + (size_t)r * E, P + m->embed_off + (size_t)x[r] * E, (size_t)E * sizeof(real));
                in = ar->xe;
            } else if (rng && m->cfg.dropout > 0 && c->mask) {
                // inverted dropout: keep with probability 1-p, scaled by 1/(1-p)
                dropout_masks(m, c, in, rng, B, T);
                in = c->xin;
                c->dropped = 1;
            }
            c->in = in;
            const int in_w = p->in;
            if (!lnorm) bias_rows(gx, P + p->b_x, NULL, NULL, TB, GH);
            if (small)
                CRN_FN(crn_gemm_nn)(TB, GH, in_w, in, in_w, P + p->w_x, GH, !lnorm, gx, GH);
            else
                CRN_FN(crn_gemm)(0, 0, TB, GH, in_w, 1, in, in_w, P + p->w_x, GH, !lnorm, gx, GH);
        }
        crn_ln lnb;
        const crn_ln *ln = layer_ln(&lnb, m, ar, l, NULL);
        memcpy(c->hs, st->h + (size_t)l * BH, BH * sizeof(real));
        switch (m->cfg.cell) {
        case CRN_CELL_RNN:
            CRN_FN(crn_rnn_forward)(c->hs, gx, P + p->w_h, P + p->b_h, ar->wp, ln, m->cfg.act == CRN_ACT_RELU, B, T,
                                    H);
            break;
        case CRN_CELL_LSTM:
            memcpy(c->cs, st->c + (size_t)l * BH, BH * sizeof(real));
            CRN_FN(crn_lstm_forward)(c->hs, c->cs, gx, P + p->w_h, P + p->b_h, ar->wp, ln, B, T, H);
            memcpy(st->c + (size_t)l * BH, c->cs + (size_t)T * BH, BH * sizeof(real));
            break;
        case CRN_CELL_GRU:
            CRN_FN(crn_gru_forward)(c->hs, gx, c->hg, P + p->w_h, P + p->b_h, ar->wp, ln, B, T, H);
            break;
        }
        memcpy(st->h + (size_t)l * BH, c->hs + (size_t)T * BH, BH * sizeof(real));
        in = c->hs + BH; // (T*B, H) this layer's outputs h_0..h_{T-1}
    }
    // logits = H_top (T*B, H) @ out_w (H, V) + out_b
    bias_rows(logits, P + m->out_b_off, NULL, NULL, TB, V);
    if (small)
        CRN_FN(crn_gemm_nn)(TB, V, H, in, H, P + m->out_w_off, V, 1, logits, V);
    else
        CRN_FN(crn_gemm)(0, 0, TB, V, H, 1, in, H, P + m->out_w_off, V, 1, logits, V);
}

static int check_ids(const uint32_t *x, size_t n, uint32_t V, int allow_ignore, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (x[i] >= V && !(allow_ignore && x[i] == CRN_IGNORE))
            return crn_error_set(CRN_EINVAL, "model: %s id %u at position %zu out of range (vocab %u)", what, x[i], i,
                                 V);
    return 0;
}

int CRN_FN(crn_model_forward)(crn_model *m, crn_state *st, const uint32_t *x, const uint32_t *y, uint32_t B,
                              uint32_t T, crn_rng *rng, double *loss_sum, size_t *count) {
    m->fwd_ok = 0;
    if (B == 0 || T == 0 || B > m->Bcap || T > m->Tcap)
        return crn_error_set(CRN_EINVAL, "model forward: window B=%u x T=%u beyond the reserved %u x %u", B, T, m->Bcap,
                             m->Tcap);
    if (!st || st->B != B || !state_matches(m, st))
        return crn_error_set(CRN_EINVAL, "model forward: state (batch %u) does not match the window (B=%u) or model",
                             st ? st->B : 0, B);
    size_t TB = (size_t)T * B;
    int rc = check_ids(x, TB, m->cfg.vocab, 0, "input");
    if (!rc && y) rc = check_ids(y, TB, m->cfg.vocab, 1, "target");
    if (rc) return rc;
    memcpy(m->ids, x, TB * sizeof *x);
    const uint32_t B_all = m->drop_all > B ? m->drop_all : B; // a rank's part: the kernels of the whole window
    forward_core(m, &m->ar, st, x, (int)B, (int)B_all, (int)T, rng, m->ar.logits);
    double loss = 0;
    size_t cnt = 0;
    if (y) {
        for (size_t i = 0; i < TB; i++) cnt += y[i] != CRN_IGNORE;
        real scale = cnt ? (real)(1.0 / (double)cnt) : 0;
        loss = CRN_FN(crn_softmax_xent)(m->ar.dlogits, m->ar.logits, y, TB, (size_t)m->V, scale, &cnt);
        m->fwd_ok = 1;
        m->fwd_B = B;
        m->fwd_T = T;
    }
    if (loss_sum) *loss_sum = loss;
    if (count) *count = cnt;
    return 0;
}

const real *CRN_FN(crn_model_logits)(const crn_model *m) { return m->ar.logits; }

/* ------------------------------------------------------------------ */
/* backward                                                            */

int CRN_FN(crn_model_backward)(crn_model *m) {
    if (!m->fwd_ok) return crn_error_set(CRN_EINVAL, "model backward: no forward with targets to differentiate");
    m->fwd_ok = 0; // the saved values are consumed (model.h)
    struct arena *ar = &m->ar;
    const int B = (int)m->fwd_B, T = (int)m->fwd_T, TB = T * B;
    const int H = m->H, GH = m->G * m->H, V = m->V, E = m->E;
    const size_t BH = (size_t)B * H;
    const real *P = m->params;
    real *D = m->grads;
    const real *top = ar->lc[m->L - 1].hs + BH; // (T*B, H)

    // output layer: dout_w += H_top^T @ dlogits, dout_b += colsum, dH_top = dlogits @ out_w^T
    CRN_FN(crn_gemm)(1, 0, H, V, TB, 1, top, H, ar->dlogits, V, 1, D + m->out_w_off, V);
    crn_colsum_acc(D + m->out_b_off, ar->dlogits, TB, V);
    real *dh = ar->dh; // (T*B, H)
    CRN_FN(crn_gemm)(0, 1, TB, H, V, 1, ar->dlogits, V, P + m->out_w_off, V, 0, dh, H);

    for (int l = m->L - 1; l >= 0; l--) {
        const struct layer_cache *c = &ar->lc[l];
        const struct layer_params *p = &m->lp[l];
        crn_ln lnb;
        const crn_ln *ln = layer_ln(&lnb, m, ar, l, D);
        // (T*B, GH); the LSTM with layer norm writes it over its saved x side, in place
        real *dgx = ln && m->cfg.cell == CRN_CELL_LSTM ? c->gates : ar->dgx;
        switch (m->cfg.cell) {
        case CRN_CELL_RNN:
            CRN_FN(crn_rnn_backward)(dgx, D + p->w_h, D + p->b_h, dh, c->hs, P + p->w_h, ar->wp, ln,
                                     m->cfg.act == CRN_ACT_RELU, B, T, H);
            break;
        case CRN_CELL_LSTM:
            CRN_FN(crn_lstm_backward)(dgx, D + p->w_h, D + p->b_h, dh, ar->dc, c->hs, c->cs, c->gates,
                                      P + p->w_h, P + p->b_h, ar->wp, ln, B, T, H);
            break;
        case CRN_CELL_GRU:
            CRN_FN(crn_gru_backward)(dgx, ar->dhg, D + p->w_h, D + p->b_h, dh, c->hs, c->gates, c->hg, P + p->w_h,
                                     ar->wp, ln, B, T, H);
            break;
        }
        if (!ln) crn_colsum_acc(D + p->b_x, dgx, TB, GH); // (with ln the cell has summed it and dgx = d (x W_x))
        if (l == 0 && E == 0) {
            // one-hot: dW_x[x[row]] += dgx[row], the transpose of the gather
            scatter_rows(D + p->w_x, dgx, m->ids, TB, GH);
            continue;
        }
        // dW_x += X^T (in, T*B) @ dgx (T*B, GH)
        CRN_FN(crn_gemm)(1, 0, p->in, GH, TB, 1, c->in, p->in, dgx, GH, 1, D + p->w_x, GH);
        if (l == 0) {
            // embedding: dX = dgx @ w_x^T (T*B, E), scattered into the used rows
            CRN_FN(crn_gemm)(0, 1, TB, E, GH, 1, dgx, GH, P + p->w_x, GH, 0, ar->dxe, E);
            for (int r = 0; r < TB; r++) {
                real *de = D + m->embed_off + (size_t)m->ids[r] * E;
                const real *g = ar->dxe + (size_t)r * E;
                for (int j = 0; j < E; j++) de[j] += g[j];
            }
        } else {
            // gradient w.r.t. the outputs of layer l-1, through the dropout mask;
            // it overwrites dh, which the cell has consumed (one buffer, not two)
            CRN_FN(crn_gemm)(0, 1, TB, H, GH, 1, dgx, GH, P + p->w_x, GH, 0, dh, H);
            if (c->dropped) {
                size_t n = (size_t)TB * H;
                for (size_t k = 0; k < n; k++) dh[k] *= c->mask[k];
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* single step                                                         */

int CRN_FN(crn_model_step)(crn_model *m, crn_state *st, const uint32_t *tokens, real *logits) {
    if (!st || !state_matches(m, st)) return crn_error_set(CRN_EINVAL, "model step: state does not match the model");
    int rc = check_ids(tokens, st->B, m->cfg.vocab, 0, "input");
    if (rc) return rc;
#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
    if (m->half && st->B == 1) {
        step_f16(m, st, tokens[0], logits);
        return 0;
    }
#endif
    forward_core(m, &st->ar, st, tokens, (int)st->B, (int)st->B, 1, NULL, logits);
    return 0;
}
