// The whole sentence encoder, forward and backward: Universal Sentence Encoder lite's graph as the
// converted ONNX model computes it (src/encoder/use-lite.ts), for any sizes, so that tests can run
// it at tiny odd shapes. Texts are packed end to end (no padding): per-token work runs over all
// tokens of the batch at once, attention per text and head.
//
//   x0 = emb[tok] + (emb[tok] + timing[pos])
//   per layer: h = LN(x); [q k v] = h Wqkv + b; a = softmax(scale q k^T) v per head;
//              x1 = a Wo + bo + (x Wr + br, or x when the widths match);
//              x' = relu(LN(x1) W1 + b1) W2 + b2 + x1
//   pooled = mean over the text's tokens; e = normalize(tanh(pooled Wt^T + bt) (+ adapter))
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"
#include "training.h"

namespace laborspace {

struct EncoderLayerDims {
  size_t width_in = 0, width_out = 0, heads = 0, ffn = 0;
  bool residual_projection = false;  // x Wr + br on the attention residual (required when widths differ)
  float query_scale = 1.f;
};

struct EncoderDims {
  size_t vocab = 0, embed = 0, max_tokens = 0, head_out = 0;
  std::vector<EncoderLayerDims> layers;
  float ln_eps = 1e-6f;
};

// One parameter tensor of the flat arena: rows x cols floats at `offset`. Matrices are [in, out]
// as the ONNX graph holds them, except the head's weight, [out, in] as the head kernels take it.
struct TensorSpec {
  std::string name;
  size_t offset, rows, cols;
};

// The arena's tensors in order: embeddings, then per layer ln1.scale, ln1.bias, qkv.weight,
// qkv.bias, out.weight, out.bias, [residual.weight, residual.bias], ln2.scale, ln2.bias,
// ffn1.weight, ffn1.bias, ffn2.weight, ffn2.bias, then head.weight, head.bias.
std::vector<TensorSpec> encoder_layout(const EncoderDims& dims);
size_t encoder_param_count(const EncoderDims& dims);
// An empty string when the sizes make a graph, else what is wrong with them.
std::string check_encoder_dims(const EncoderDims& dims);

// What a forward pass keeps for the backward pass, and the backward pass's own buffers; kept
// between calls, so a training loop allocates once. Not shared between threads.
struct EncoderTape {
  std::vector<int32_t> tokens, offsets;  // of the last forward
  struct Layer {
    std::vector<float> x, ln1, mean1, rstd1, qkv, probs, ctx, x1, ln2, mean2, rstd2, f1;
    std::vector<size_t> prob_offsets;  // start of each text's heads x T x T probabilities
  };
  std::vector<Layer> layers;
  std::vector<float> out, pooled, hidden, embeddings;
  bool recompute = false;            // the forward kept no FFN activations or probabilities
  // Backward scratch.
  std::vector<float> grad_x, grad_x1, grad_tmp, grad_big, grad_qkv, grad_ctx, grad_pooled, grad_scores;
  // The masked-token step's (masked_token_step).
  std::vector<float> masked_states, masked_z, masked_logits, masked_grad_z, masked_grad_states;
};

// An empty error when tokens[offsets[0] .. offsets[texts]) is a batch the encoder can read: offsets
// from 0, every text 1 to max_tokens long, every token inside the vocabulary.
Error check_encoder_batch(const EncoderDims& dims, const int32_t* tokens, const int32_t* offsets, size_t texts);

// Forward over `texts` texts whose tokens are tokens[offsets[i] .. offsets[i+1]). params is the
// arena (encoder_layout), timing the max_tokens x embed timing table. Writes e (texts x head_out)
// and keeps what the backward pass needs in the tape; with `recompute`, the FFN's hidden layer
// and the attention probabilities are dropped and recomputed by the backward pass (a third of
// the memory, a tenth more time).
Error encoder_forward(const EncoderDims& dims, const float* params, const float* timing, const Adapter& adapter,
                      const int32_t* tokens, const int32_t* offsets, size_t texts, bool recompute, EncoderTape& tape,
                      float* e);

// The embedding table's gradient: only rows of tokens in the batch, ids ascending.
struct SparseRows {
  std::vector<int32_t> ids;
  std::vector<float> rows;  // ids.size() x embed
};

// The embedding table's gradient from dL/dx0 (N tokens x E): x0 = 2 emb[tok] + timing, so each
// distinct token's row sums twice its positions' gradients, in position order.
void embedding_gradient(const int32_t* tokens, size_t N, const float* gx, size_t E, SparseRows& embedding);

// Gradients of a loss given dL/de (texts x head_out) times `weight` for the last forward on `tape`: grad is an
// arena-sized array whose tensors are overwritten, except the embeddings, which go to `embedding`
// (the arena's embedding slot is left untouched); grad_down / grad_up for an adapter. A loss that
// reads the last layer's token states as well (or instead: grad_e null, the head's gradients then
// zero) gives dL/d(states) in grad_states (tokens x the last layer's width), added as it is.
Error encoder_backward(const EncoderDims& dims, const float* params, const Adapter& adapter, EncoderTape& tape,
                       const float* grad_e, float weight, float* grad, SparseRows& embedding, float* grad_down,
                       float* grad_up, const float* grad_states = nullptr);

// Masked-token prediction, the "context learning" stage before relation training: the output
// layer is tied to the token embeddings E (vocab x embed). For masked position r of the last
// forward on `tape`, z = states[r] proj + proj_bias (the last layer's width -> embed) and
// logits = z E^T + vocab_bias; the loss is the mean cross-entropy against the original tokens.
struct MaskedTokenHead {
  const float *proj, *proj_bias, *vocab_bias;  // width x embed, embed, vocab
};
struct MaskedTokenGrads {
  float *proj, *proj_bias, *vocab_bias;  // as MaskedTokenHead's, overwritten
};
// positions[i] (a packed token index, distinct) held token targets[i] before masking, for i < count.
// Writes *loss and every arena tensor's gradient into grad, the embedding slot included (dense:
// the tied output layer reaches every row; the input side adds the batch's rows), the head's zero.
Error masked_token_step(const EncoderDims& dims, const float* params, const MaskedTokenHead& head, EncoderTape& tape,
                        const int32_t* positions, const int32_t* targets, size_t count, float* grad,
                        const MaskedTokenGrads& head_grads, double* loss);

}  // namespace laborspace
