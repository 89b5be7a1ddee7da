/* classify.h — the many-to-one network: (embedding) -> L stacked recurrent
 * layers (each forward only, or forward and backward in time) -> pooling over
 * the valid steps of each line -> one linear head: a sigmoid with binary
 * cross-entropy for two classes, a softmax with cross-entropy for more.
 *
 * Batches are padded, time-major windows x[t*B + b] with a length len[b] per
 * stream (1 <= len[b] <= T). Padded steps never change the result:
 *   - the forward direction runs over all T steps, but a padded step t >= len
 *     only feeds later padded steps, and pooling reads t < len only;
 *   - the backward direction runs the same cell over each stream's valid
 *     prefix reversed (row t*B+b <- row (len-1-t)*B+b for t < len, padded
 *     rows stay in place), so its state at natural position t has read
 *     exactly the steps t..len-1; the reversal is an involution, used as is
 *     for the outputs and for the gradients;
 *   - in backward the gradient at padded steps is exactly zero (nothing
 *     downstream reads them), so no mask is needed there.
 * Layer l's output (T*B, D_l*H) is the concatenation [forward | backward]
 * (D_l = 2 if the layer is bidirectional); the next layer reads it as input.
 *
 * Pooling (F = D_top*H features per line):
 *   last  forward half: h at t = len-1; backward half: h at t = 0 (the state
 *         after reading the whole line backwards), as PyTorch's h_n
 *   mean  mean over t < len of the top layer's output
 *   max   per feature, max over t < len (the gradient goes to the argmax)
 * Then inverted dropout on the features (training only, cfg.base.dropout),
 * logits z = f @ head_w + head_b with K = 1 output for two classes (z is the
 * log-odds of class 1) or K = C outputs.
 *
 * Parameters: one buffer with a size table, in this order:
 *   embed (V, E)                 only if E > 0
 *   for each layer l, direction d (d = 1 named "l<l>r"):
 *     l.w_x (in_l, G*H), l.w_h (H, G*H), l.b_x (G*H), l.b_h (G*H)
 *     in_0 = E (or V, one-hot), in_l = D_{l-1}*H
 *   head_w (F, K), head_b (K)
 *   only with cfg.base.layer_norm, for each layer l, direction d (after all
 *   the above, as in model.h):
 *     l.ln_gx (G*H), l.ln_gh (G*H), LSTM: l.ln_gc (H), l.ln_bc (H)
 * The forward-direction tensors have the names and layout of a generator's
 * (model.h), so a language model can initialise them (--init-from).
 * Layer normalisation (cfg.base.layer_norm) is the cells' own (cell.h), in
 * every layer and direction: gx is then x W_x without b_x (the cell adds
 * b_x with the LN), in training and in the inference path alike.
 * Initialisation: model.h's (uniform(-1/sqrt(H), 1/sqrt(H)), embedding N(0,1),
 * LSTM forget bias 1), the head uniform(-1/sqrt(F), 1/sqrt(F)).
 *
 * Loss: the weighted mean over the B lines, sum_b w_b loss_b / B (w = NULL:
 * all 1). Compiled as float and as double (real.h, CRN_FN). */
#ifndef CRN_CLASSIFY_H
#define CRN_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "real.h"
#include "rng.h"

enum crn_pool { CRN_POOL_LAST = 0, CRN_POOL_MEAN = 1, CRN_POOL_MAX = 2 };
enum crn_bidir { CRN_BIDIR_NONE = 0, CRN_BIDIR_LAST = 1, CRN_BIDIR_ALL = 2 };

#define CRN_CLF_MAX_CLASSES 4096u

typedef struct crn_clf_config {
    crn_model_config base;  /* cell, act, vocab, embed, hidden, layers, layer_norm; dropout on the pooled features */
    uint32_t classes;       /* C, 2..CRN_CLF_MAX_CLASSES */
    enum crn_pool pool;
    enum crn_bidir bidir;
} crn_clf_config;

/* Names and parsing (float build only). */
const char *crn_pool_name(enum crn_pool p);
int crn_pool_parse(const char *s, enum crn_pool *out);
const char *crn_bidir_name(enum crn_bidir b);
int crn_bidir_parse(const char *s, enum crn_bidir *out);
/* @return 0 or CRN_EINVAL/CRN_ERANGE naming the field. */
int crn_clf_config_check(const crn_clf_config *cfg);
/* Number of parameters cfg implies (overflow-checked); -1 on overflow. */
int crn_clf_expected_params(const crn_clf_config *cfg, uint64_t *out);
/* Forward matmul FLOPs per token of a line (both directions), for reports. */
double crn_clf_flops_per_token(const crn_clf_config *cfg);

#if defined(CRN_DOUBLE) && CRN_DOUBLE
#define crn_clf crn_clf_f64
#endif
typedef struct crn_clf crn_clf;

int CRN_FN(crn_clf_create)(crn_clf **out, const crn_clf_config *cfg);
void CRN_FN(crn_clf_destroy)(crn_clf *m); /* NULL is a no-op */
const crn_clf_config *CRN_FN(crn_clf_config_of)(const crn_clf *m);
real *CRN_FN(crn_clf_params)(crn_clf *m);
real *CRN_FN(crn_clf_grads)(crn_clf *m);
size_t CRN_FN(crn_clf_num_params)(const crn_clf *m);
int CRN_FN(crn_clf_num_tensors)(const crn_clf *m);
const crn_tensor_info *CRN_FN(crn_clf_tensor)(const crn_clf *m, int i);
const crn_tensor_info *CRN_FN(crn_clf_find_tensor)(const crn_clf *m, const char *name);
void CRN_FN(crn_clf_init)(crn_clf *m, crn_rng *rng);
void CRN_FN(crn_clf_zero_grads)(crn_clf *m);

/* Size the activation arenas for up to B lines x T steps (allocates): the
 * training arena (every activation backward needs) and the inference one. */
int CRN_FN(crn_clf_reserve)(crn_clf *m, uint32_t B, uint32_t T);
/* Size only the inference arena, what a forward without labels and rng
 * needs (allocates): O(B * (2G + 8) * H) for one layer, no activations
 * kept (plus B*T*(G*H + 4H) for the outputs between layers if L > 1). */
int CRN_FN(crn_clf_reserve_predict)(crn_clf *m, uint32_t B, uint32_t T);

/* Forward over a padded window: x (T, B) ids, len (B) valid steps (1..T),
 * y (B) class indices or NULL (no loss), w (B) example weights or NULL.
 * rng != NULL: training mode (dropout). Writes the summed weighted loss in
 * nats to *loss_sum (may be NULL; 0 without labels). Probabilities:
 * crn_clf_probs.
 * Without labels and rng (inference) it runs apart from the training path,
 * in the inference arena (crn_clf_reserve_predict): rows sorted by length,
 * no padded step computed, no activations kept, the top layer pooled step
 * by step, the rows split across the threads (pool.h) with no
 * synchronisation; the probabilities equal the training path's up to float
 * rounding (summation order), whatever the batch and thread count. No
 * backward follows it.
 * @return 0 or CRN_EINVAL (sizes, ids, lengths, labels out of range). */
int CRN_FN(crn_clf_forward)(crn_clf *m, const uint32_t *x, const uint32_t *len, const uint32_t *y,
                            const real *w, uint32_t B, uint32_t T, crn_rng *rng, double *loss_sum);
/* Inference tables (embedding input only): enable != 0 precomputes, per
 * direction of layer 0, embed @ w_x + b_x (V, G*H), so a forward without
 * labels and rng reads gx as rows of it instead of a product (a third of the
 * work of a 1-layer model). Like crn_model_step_f16, the table is NOT updated
 * when the parameters change: call again after changing them, or pass 0.
 * Equal to the product path up to float rounding (summation order).
 * @return 0 or CRN_ENOMEM. */
int CRN_FN(crn_clf_inference_tables)(crn_clf *m, int enable);
/* Class probabilities of the last forward, (B, C). */
const real *CRN_FN(crn_clf_probs)(const crn_clf *m);
/* Backward of the last forward with labels; accumulates (+=) into grads the
 * gradient of sum_b w_b loss_b / B. */
int CRN_FN(crn_clf_backward)(crn_clf *m);

#endif
