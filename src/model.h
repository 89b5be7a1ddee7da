/* model.h — the character model: (embedding) -> L stacked recurrent cells ->
 * linear -> softmax, at every step of a window.
 *
 * Parameters live in one contiguous buffer carved by a size table (gradients
 * and optimizer state use the same layout, so clipping, the update and
 * save/load are flat loops). Tensor order and layout (row-major):
 *
 *   embed     (V, E)        only if E > 0 (learned embedding)
 *   for each layer l = 0..L-1, in_l = (l == 0 ? (E > 0 ? E : V) : H), G = 1/4/3 for rnn/lstm/gru:
 *     l.w_x   (in_l, G*H)   input weights, stored transposed w.r.t. PyTorch's weight_ih_l (G*H, in_l),
 *                           so a window's input projection is X (B*T, in) @ w_x and a one-hot
 *                           input is the row w_x[id] (a gather, never a product)
 *     l.w_h   (H, G*H)      recurrent weights (PyTorch weight_hh_l transposed)
 *     l.b_x   (G*H)         PyTorch bias_ih_l
 *     l.b_h   (G*H)         PyTorch bias_hh_l
 *   out_w     (H, V)        output weights (PyTorch Linear.weight transposed)
 *   out_b     (V)
 *   only with layer_norm, for each layer l (after all the above, so the
 *   other tensors keep their offsets and their initial values):
 *     l.ln_gx (G*H)         gain of LN(x W_x), init 1 (b_x is its bias)
 *     l.ln_gh (G*H)         gain of LN(h W_h), init 1 (b_h is its bias)
 *     l.ln_gc (H)           LSTM only: gain of LN(c_t), init 1
 *     l.ln_bc (H)           LSTM only: bias of LN(c_t), init 0
 *
 * Gate order within G*H is PyTorch's: LSTM i,f,g,o; GRU r,z,n. Initialisation:
 * crn_model_init_spec below (uniform(-1/sqrt(H), 1/sqrt(H)) for every cell
 * tensor and the output layer, PyTorch's default, N(0,1) for the embedding;
 * Xavier / orthogonal variants; an optional LSTM forget-gate bias).
 *
 * Windows are time-major: token ids x[t*B + b], states (B, H) per layer.
 * Compiled as float and as double (real.h); see CRN_FN. */
#ifndef CRN_MODEL_H
#define CRN_MODEL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "real.h"
#include "rng.h"

enum crn_cell { CRN_CELL_RNN = 0, CRN_CELL_LSTM = 1, CRN_CELL_GRU = 2 };
enum crn_act { CRN_ACT_TANH = 0, CRN_ACT_RELU = 1 };

typedef struct crn_model_config {
    enum crn_cell cell;
    enum crn_act act;   /* rnn only */
    uint32_t vocab;     /* V */
    uint32_t embed;     /* E, 0 = one-hot input */
    uint32_t hidden;    /* H */
    uint32_t layers;    /* L */
    float dropout;      /* inverted dropout between layers (training only), [0, 1) */
    uint32_t layer_norm; /* 1 = layer normalisation in every cell (cell.h), 0 = off */
} crn_model_config;

/* Names and parsing shared with the CLI and checkpoints (these and
 * crn_model_flops_per_token are built in the float library only). */
const char *crn_cell_name(enum crn_cell c);
int crn_cell_parse(const char *s, enum crn_cell *out);
const char *crn_act_name(enum crn_act a);
int crn_act_parse(const char *s, enum crn_act *out);
/* Check a config (sizes > 0, limits that keep every size in range).
 * @return 0 or CRN_EINVAL/CRN_ERANGE with a message naming the field. */
int crn_model_config_check(const crn_model_config *cfg);

typedef struct crn_tensor_info {
    char name[32];      /* "embed", "l0.w_x", ..., "out_w", "out_b" */
    size_t offset;      /* into the parameter buffer, in elements */
    size_t rows, cols;  /* shape; vectors have rows = 1 */
} crn_tensor_info;

/* The parameter layout a config implies, the one source of it (the table
 * above; crn_model_create carves its buffer by it, the checkpoint loader
 * checks a file's count against it): the tensors in the buffer's order
 * into tab (room for *ntensors entries; NULL: only count), their number and
 * the parameter count. @return 0 or the error of crn_model_config_check. */
int crn_model_layout(const crn_model_config *cfg, crn_tensor_info *tab, int *ntensors, uint64_t *nparams);

/* In the double build the handle types are distinct (crn_model_f64). */
#if defined(CRN_DOUBLE) && CRN_DOUBLE
#define crn_model crn_model_f64
#define crn_state crn_state_f64
#endif
typedef struct crn_model crn_model;   /* parameters, gradients, activation arena */
typedef struct crn_state crn_state;   /* hidden (and cell) state of B streams */

int CRN_FN(crn_model_create)(crn_model **out, const crn_model_config *cfg);
void CRN_FN(crn_model_destroy)(crn_model *m); /* NULL is a no-op */
const crn_model_config *CRN_FN(crn_model_config_of)(const crn_model *m);

/* Parameter buffer, gradient buffer (same layout), their length, size table. */
real *CRN_FN(crn_model_params)(crn_model *m);
real *CRN_FN(crn_model_grads)(crn_model *m);
size_t CRN_FN(crn_model_num_params)(const crn_model *m);
int CRN_FN(crn_model_num_tensors)(const crn_model *m);
const crn_tensor_info *CRN_FN(crn_model_tensor)(const crn_model *m, int i);
/* Find a tensor by name; NULL if absent. */
const crn_tensor_info *CRN_FN(crn_model_find_tensor)(const crn_model *m, const char *name);

/* Initialisation schemes (`--init`). Every scheme first draws the tensors as
 * CRN_INIT_PYTORCH does (so the draws are the same up to that point), then:
 *   pytorch     nothing more: uniform(-1/sqrt(H), 1/sqrt(H)) for every cell
 *               weight and bias and the output layer, as torch.nn.LSTM/GRU/RNN
 *               and nn.Linear(H, V) do; embed N(0, 1) as nn.Embedding
 *   xavier      cell weights redrawn Xavier/Glorot-uniform per gate block,
 *               w ~ U(-a, a), a = sqrt(6 / (in + H)); cell biases 0
 *   orthogonal  as xavier, but each (H, H) gate block of w_h is a random
 *               orthogonal matrix (Gram-Schmidt of a Gaussian matrix)
 * Then, for an LSTM, if forget_bias is finite: b_x[f] = forget_bias and
 * b_h[f] = 0 (so the gate's total bias is forget_bias). */
enum crn_init_kind { CRN_INIT_PYTORCH = 0, CRN_INIT_XAVIER = 1, CRN_INIT_ORTHOGONAL = 2 };
typedef struct crn_init_spec {
    enum crn_init_kind kind;
    float forget_bias;  /* LSTM; NaN = as drawn by the scheme */
} crn_init_spec;
/* The default scheme for a cell, chosen by issue 12's equal-step study
 * against PyTorch (docs/training.md): pytorch for the LSTM (its forget bias
 * as drawn: a bias of 1 cost ~0.1 bit/char at 1,000 steps), orthogonal for
 * the RNN and GRU (~0.03-0.04 bit/char better than pytorch). */
static inline enum crn_init_kind crn_init_default_kind(enum crn_cell c) {
    return c == CRN_CELL_LSTM ? CRN_INIT_PYTORCH : CRN_INIT_ORTHOGONAL;
}
/* The default spec of an LSTM (the default cell): pytorch, bias as drawn;
 * for another cell set kind = crn_init_default_kind(cell). */
static inline void crn_init_spec_default(crn_init_spec *s) {
    s->kind = crn_init_default_kind(CRN_CELL_LSTM);
    s->forget_bias = NAN;
}
const char *crn_init_name(enum crn_init_kind k);
int crn_init_parse(const char *s, enum crn_init_kind *out);

/* Initialise all parameters from rng with the scheme spec (NULL = the
 * default of the model's cell). */
void CRN_FN(crn_model_init_spec)(crn_model *m, crn_rng *rng, const crn_init_spec *spec);
/* crn_model_init_spec with the default spec. */
void CRN_FN(crn_model_init)(crn_model *m, crn_rng *rng);

/* State of B streams: h (and c for LSTM) per layer, zero after create/reset. */
int CRN_FN(crn_state_create)(crn_state **out, const crn_model *m, uint32_t B);
void CRN_FN(crn_state_destroy)(crn_state *s); /* NULL is a no-op */
void CRN_FN(crn_state_reset)(crn_state *s);
uint32_t CRN_FN(crn_state_batch)(const crn_state *s);
/* h (B, H) of layer l; c (B, H) of layer l (LSTM only, else NULL). */
real *CRN_FN(crn_state_h)(crn_state *s, uint32_t l);
real *CRN_FN(crn_state_c)(crn_state *s, uint32_t l);
/* Copy stream src_b of src into stream dst_b of dst (beam search). */
void CRN_FN(crn_state_copy_stream)(crn_state *dst, uint32_t dst_b, const crn_state *src, uint32_t src_b);

/* Size the activation arena for windows of up to B streams x T steps
 * (allocates; call outside the step loop). */
int CRN_FN(crn_model_reserve)(crn_model *m, uint32_t B, uint32_t T);

/* Forward over one window: x, y (T, B) token ids (y[i] == CRN_IGNORE skips
 * that target); the state st (B streams) is the carried-in state and is
 * overwritten with the state after the last step. rng != NULL means
 * training mode (dropout active); NULL means evaluation. Saves what backward
 * needs. Writes the summed loss in nats to *loss_sum and the number of counted
 * targets to *count (either may be NULL).
 * @return 0 or CRN_EINVAL (B, T beyond crn_model_reserve, B != state's B). */
int CRN_FN(crn_model_forward)(crn_model *m, crn_state *st, const uint32_t *x, const uint32_t *y,
                              uint32_t B, uint32_t T, crn_rng *rng, double *loss_sum, size_t *count);
/* Dropout masks as for a window of B_all streams of which this model's
 * windows are rows [row0, row0 + B) (an MPI rank's part): every forward with
 * dropout draws the masks of all B_all rows from rng, in the order one
 * process with B_all streams draws them, and keeps its own rows. So N ranks
 * drop the same units as one process, and every rank's rng advances alike.
 * B_all = 0 (the default) or B_all == B: the window is all the streams. */
void CRN_FN(crn_model_set_dropout_rows)(crn_model *m, uint32_t B_all, uint32_t row0);
/* Logits of the last forward, (T*B, V), time-major rows. */
const real *CRN_FN(crn_model_logits)(const crn_model *m);
/* Backward through the last forward's window (BPTT, no gradient into the
 * carried-in state: truncated). The loss differentiated is the mean over the
 * counted targets. Gradients are accumulated (+=) into crn_model_grads().
 * It consumes the forward (the LSTM with layer norm writes its gradients
 * over the saved values, in place): a second backward needs a new forward,
 * else CRN_EINVAL. */
int CRN_FN(crn_model_backward)(crn_model *m);
void CRN_FN(crn_model_zero_grads)(crn_model *m);

/* One step for sampling: tokens (B) -> logits (B, V), advancing st by one
 * step. No allocation (uses scratch sized by crn_state_create). */
int CRN_FN(crn_model_step)(crn_model *m, crn_state *st, const uint32_t *tokens, real *logits);

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
/* Sampling with binary16 weights (float build only). enable != 0 snapshots
 * the product weights (w_x fed by a dense input, w_h, out_w) in IEEE half
 * precision; from then on crn_model_step at batch 1 reads the snapshot (half
 * the bytes per token; biases, embedding and one-hot rows stay float). The
 * snapshot is NOT updated when the parameters change: call again after
 * changing them (crn_model_init refreshes it), or pass 0 to go back to the
 * float weights. The output distribution stays within a tested tolerance of
 * the float path (tests/test_kernels.c). @return 0 or CRN_ENOMEM. */
int crn_model_step_f16(crn_model *m, int enable);
#endif

/* Forward matmul FLOPs per token (2*m*n*k, the dense one-hot counted as the
 * peer counts it), for throughput reports. */
double crn_model_flops_per_token(const crn_model_config *cfg);

#endif
