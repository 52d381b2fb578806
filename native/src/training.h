// Training kernels: the trainable head (dense + tanh + L2 normalisation) with its backward pass,
// the relation losses on unit embeddings with their gradients, and AdamW. Plain C++ on row-major
// float32 matrices; the products go through gemm (kernels.h), tanh and exp through the ISA table.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace laborspace {

// The optional low-rank residual adapter after the head's tanh: u = h + (h down^T) up^T, with down
// (rank x dout) and up (dout x rank); rank 0 means none. Training starts it with up = 0, so it
// begins as the identity and the pretrained head is unchanged.
struct Adapter {
  const float* down = nullptr;
  const float* up = nullptr;
  size_t rank = 0;
};

// e = normalize(u), u = tanh(x W^T + bias) (+ the adapter), for x (B x din), W stored as wt
// (dout x din) so that the forward product is the same Q X^T the scoring driver computes. h
// (B x dout) keeps tanh's output for the backward pass; e may not alias h.
Error head_forward(const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout,
                   const Adapter& adapter, float* h, float* e);

// Where the head's gradients go: a null grad_wt (and grad_bias) leaves the dense layer frozen and
// skips its product; grad_down and grad_up are written when the head has an adapter; x, when
// given, receives dL/dx (the whole encoder's training goes on through it).
struct HeadGrads {
  float* wt = nullptr;
  float* bias = nullptr;
  float* down = nullptr;
  float* up = nullptr;
  float* x = nullptr;
};

// Gradients of a loss L with respect to the head's parameters, given dL/de times `weight`.
Error head_backward(const float* x, const float* wt, const float* h, const float* e, const float* grad_e, size_t batch, size_t din,
                    size_t dout, const Adapter& adapter, float weight, const HeadGrads& grads);

// Multiple-negatives ranking loss with in-batch negatives: rows of a (batch) and p (candidates >=
// batch) are unit vectors, p_i the positive of a_i and every other p_j a negative (the rows past
// the batch are extra negatives, e.g. sampled from the targets' type), except where `excluded`
// (batch x candidates, or null) is set: a known positive of a_i in disguise. Cross-entropy over
// scale * a_i . p_j. `symmetric` (candidates == batch only) averages it with the same loss from p
// to a. Writes dL/da (batch x d) and dL/dp (candidates x d).
double mnrl_loss(const float* a, const float* p, size_t batch, size_t candidates, size_t d, float scale, bool symmetric,
                 const uint8_t* excluded, float* grad_a, float* grad_p);

// Triplet loss: mean over i of max(0, dist(a_i, p_i) - dist(a_i, n_i) + margin), dist = 1 - cosine
// (unit rows) or Euclidean distance. Writes dL/da, dL/dp, dL/dn.
double triplet_loss(const float* a, const float* p, const float* n, size_t batch, size_t d, float margin, bool euclidean,
                    float* grad_a, float* grad_p, float* grad_n);

// Cosine-similarity loss: mean over i of (a_i . b_i - target_i)^2 for unit rows. Writes dL/da, dL/db.
double cosine_mse_loss(const float* a, const float* b, const float* target, size_t batch, size_t d, float* grad_a,
                       float* grad_b);

// CoSENT: log(1 + sum over pairs (i, j) with target_i > target_j of exp(scale * (cos_j - cos_i))),
// cos_i = a_i . b_i for unit rows. Writes dL/da, dL/db.
double cosent_loss(const float* a, const float* b, const float* target, size_t batch, size_t d, float scale,
                   float* grad_a, float* grad_b);

// Distillation toward a teacher space: mean over pairs i != j of (e_i . e_j - t_i . t_j)^2, for unit
// rows e and t (rows x d), times `weight`. Adds its gradient with respect to e into grad (it keeps
// the pretrained space's similarities among a batch's texts while the relation loss moves them).
double distill_loss(const float* e, const float* t, size_t rows, size_t d, float weight, float* grad);

enum class Loss { mnrl, triplet, cosine_mse, cosent };

struct LossParams {
  float scale = 20.f;              // MNRL and CoSENT
  float margin = 0.25f;            // triplet (cosine distance)
  const float* targets = nullptr;  // cosine MSE and CoSENT: one per pair
  float weight = 1.f;              // multiplies the gradients
  size_t candidates = 0;           // MNRL: positives plus extra negatives (0: the batch, none extra)
  const uint8_t* excluded = nullptr;  // MNRL: batch x candidates, 1 for a known positive (mnrl_loss)
  const float* teacher = nullptr;  // distillation: the pretrained space's unit rows, one per row the loss reads
  float distill = 0.f;             // distillation: the term's weight (distill_loss)
};

// Sides of a batch a loss reads: anchors and positives, and negatives for the triplet loss.
inline size_t loss_sides(Loss loss) { return loss == Loss::triplet ? 3 : 2; }

// Rows a loss reads for `batch` pairs: its sides, or for MNRL the anchors then its candidates.
inline size_t loss_rows(Loss loss, size_t batch, const LossParams& params) {
  return loss == Loss::mnrl && params.candidates ? batch + params.candidates : loss_sides(loss) * batch;
}

// The loss over unit rows stacked as loss_sides(loss) sides of `batch` rows (anchors, positives,
// negatives; MNRL: the anchors, then params.candidates rows), and its unweighted gradient into
// grad (same shape); plus distill_loss over every row when params.teacher is given.
double loss_on_sides(Loss loss, const float* e, size_t batch, size_t d, const LossParams& params, float* grad);

// The head and a loss, forward and backward, over a batch whose sides are stacked in x
// (loss_rows rows of din: anchors, positives, negatives): the head runs once over
// every side and its backward pass once over their stacked gradients. Writes the unweighted loss,
// and the gradients `grads` asks for scaled by params.weight.
Error head_loss_step(Loss loss, const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout,
                     const Adapter& adapter, const LossParams& params, double* loss_out, const HeadGrads& grads);

// One AdamW step (decoupled weight decay) on n parameters; `step` counts from 1.
void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int step);

}  // namespace laborspace
