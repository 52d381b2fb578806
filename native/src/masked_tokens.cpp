// Masked-token prediction on the whole encoder (encoder.h): the output layer reads the last
// layer's token states at the masked positions, projects them to the embedding width and scores
// every vocabulary row of the (tied) token embeddings. Its gradient reaches the encoder through
// encoder_backward's per-token gradient, and the table twice: every row from the output side,
// the batch's rows from the input side.
#include <algorithm>
#include <cmath>
#include <vector>

#include "encoder.h"
#include "parallel.h"

namespace laborspace {
namespace {

template <class V>
float* sized(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// out[j] = sum over rows of x[i*w + j]; rows in order, so the sums do not depend on threads.
void column_sums(const float* x, size_t rows, size_t w, float* out) {
  std::fill(out, out + w, 0.f);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < w; ++j) out[j] += x[i * w + j];
}

}  // namespace

Error masked_token_step(const EncoderDims& dims, const float* params, const MaskedTokenHead& head, EncoderTape& tape,
                        const int32_t* positions, const int32_t* targets, size_t count, float* grad,
                        const MaskedTokenGrads& head_grads, double* loss) {
  const size_t texts = tape.offsets.empty() ? 0 : tape.offsets.size() - 1;
  if (texts == 0) return {Error::bad_argument, "the masked-token step needs a forward pass first"};
  if (count == 0) return {Error::bad_argument, "no masked positions"};
  const size_t N = size_t(tape.offsets[texts]), V = dims.vocab, E = dims.embed;
  const size_t P = dims.layers.back().width_out;
  std::vector<uint8_t> seen(N, 0);
  for (size_t i = 0; i < count; ++i) {
    if (positions[i] < 0 || size_t(positions[i]) >= N)
      return {Error::bad_argument, "masked position " + std::to_string(i) + " is " + std::to_string(positions[i]) + ", outside the batch's " + std::to_string(N) + " tokens"};
    if (seen[positions[i]]++) return {Error::bad_argument, "position " + std::to_string(positions[i]) + " is masked twice"};
    if (targets[i] < 0 || size_t(targets[i]) >= V)
      return {Error::bad_argument, "target " + std::to_string(i) + " is " + std::to_string(targets[i]) + ", outside the vocabulary of " + std::to_string(V)};
  }
  const float* table = params;  // the embeddings lead the arena (encoder_layout)
  const size_t M = count;
  const float* states = tape.out.data();
  float* h = sized(tape.masked_states, M * P);
  for (size_t i = 0; i < M; ++i) std::copy_n(states + size_t(positions[i]) * P, P, h + i * P);

  // z = h proj + proj_bias; logits = z E^T + vocab_bias.
  float* z = sized(tape.masked_z, M * E);
  gemm(Op::none, Op::none, M, E, P, h, P, head.proj, E, z, E, false);
  for (size_t i = 0; i < M; ++i)
    for (size_t j = 0; j < E; ++j) z[i * E + j] += head.proj_bias[j];
  float* logits = sized(tape.masked_logits, M * V);
  gemm(Op::none, Op::transpose, M, V, E, z, E, table, E, logits, V, false);

  // Softmax cross-entropy row by row; logits become dL/dlogits = (softmax - onehot) / M.
  const IsaKernels& k = active_kernels();
  std::vector<double> row_loss(M);
  for_rows(M, 12.0 * V, [&](size_t i) {
    float* li = logits + i * V;
    float top = -INFINITY;
    for (size_t j = 0; j < V; ++j) top = std::max(top, li[j] += head.vocab_bias[j]);
    const float target = li[targets[i]];
    for (size_t j = 0; j < V; ++j) li[j] -= top;
    k.exp_inplace(li, V);
    double sum = 0;
    for (size_t j = 0; j < V; ++j) sum += li[j];
    row_loss[i] = double(top) + std::log(sum) - double(target);
    const float inv = float(1.0 / (sum * double(M)));
    for (size_t j = 0; j < V; ++j) li[j] *= inv;
    li[targets[i]] -= 1.f / float(M);
  });
  double total = 0;
  for (double l : row_loss) total += l;
  *loss = total / double(M);
  if (!std::isfinite(*loss)) return {Error::non_finite, "the masked-token loss is not finite (overflowing weights?)"};

  // The output layer's gradients; dE's output side goes straight into the arena's embedding slot.
  column_sums(logits, M, V, head_grads.vocab_bias);
  gemm(Op::transpose, Op::none, V, E, M, logits, V, z, E, grad, E, false);
  float* gz = sized(tape.masked_grad_z, M * E);
  gemm(Op::none, Op::none, M, E, V, logits, V, table, E, gz, E, false);
  column_sums(gz, M, E, head_grads.proj_bias);
  gemm(Op::transpose, Op::none, P, E, M, h, P, gz, E, head_grads.proj, E, false);
  // dL/dh = gz proj^T (into h's buffer, read for the last time above), scattered to the positions.
  gemm(Op::none, Op::transpose, M, P, E, gz, E, head.proj, E, h, P, false);
  float* gstates = sized(tape.masked_grad_states, N * P);
  std::fill(gstates, gstates + N * P, 0.f);
  for (size_t i = 0; i < M; ++i) std::copy_n(h + i * P, P, gstates + size_t(positions[i]) * P);

  // The encoder below, then the input side of the table added to its output side.
  SparseRows input;
  if (Error err = encoder_backward(dims, params, Adapter{}, tape, nullptr, 1.f, grad, input, nullptr, nullptr, gstates)) return err;
  for (size_t u = 0; u < input.ids.size(); ++u) {
    float* row = grad + size_t(input.ids[u]) * E;
    const float* add = input.rows.data() + u * E;
    for (size_t j = 0; j < E; ++j) row[j] += add[j];
  }
  return {};
}

}  // namespace laborspace
