// The whole encoder on the GPU (cuda_encoder.h), step for step as encoder.cpp: the products on the
// shared tiled kernel (cuda_gemm.cuh), rows (layer norms, biases, the head) one block per row, and
// attention one block per (token, head) over its own text's tokens, so packed texts of ragged
// lengths need no padding. Nothing accumulates with atomics: a step gives the same result every
// time. The embedding table's sparse gradient is summed on the host (encoder.cpp's
// embedding_gradient) from dL/dx0, the one large copy back.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_encoder.h"
#include "cuda_rows.cuh"
#include "cuda_util.cuh"

namespace laborspace::cuda {

struct LayerBuffers {
  KeptBuffer<float> x, ln1, mean1, rstd1, qkv, probs, ctx, x1, ln2, mean2, rstd2, f1;
};

struct EncoderBuffers {
  std::vector<TensorSpec> specs;
  size_t param_count = 0;
  KeptBuffer<float> params, grad, timing;
  KeptBuffer<int32_t> tokens, positions, text_of, offsets;
  KeptBuffer<long long> prob_offsets;
  std::vector<LayerBuffers> layers;
  KeptBuffer<float> out, pooled, hidden, e;
  KeptBuffer<float> grad_e, grad_u, grad_pooled, gx, gx1, gtmp, gbig, gqkv, gctx, grad_scores;
  // The last forward's batch, on the host.
  std::vector<int32_t> host_tokens, host_offsets;
  std::vector<float> host_gx;
  size_t texts = 0, prob_total = 0;
  bool has_forward = false;

  const float* param(const std::string& name) const { return params.ptr + offset(name); }
  float* gradient(const std::string& name) { return grad.ptr + offset(name); }
  size_t offset(const std::string& name) const {
    for (const TensorSpec& s : specs)
      if (s.name == name) return s.offset;
    throw CudaFailure{"no tensor " + name};
  }
};

namespace {

// x0[r] = emb[tok] + (emb[tok] + timing[pos]), as the graph adds them: one block per token.
__global__ void embed_tokens(const float* emb, const float* timing, const int32_t* tokens, const int32_t* positions, int E,
                             float* x) {
  const int r = blockIdx.x;
  const float* row = emb + size_t(tokens[r]) * E;
  const float* tim = timing + size_t(positions[r]) * E;
  for (int j = threadIdx.x; j < E; j += kRowThreads) x[size_t(r) * E + j] = row[j] + (row[j] + tim[j]);
}

// y = LN(x) per row, keeping the mean and 1/std for the backward pass.
__global__ void layer_norm_rows(const float* x, int w, const float* scale, const float* bias, float eps, float* y, float* mean,
                                float* rstd) {
  __shared__ float scratch[kRowThreads];
  const size_t o = size_t(blockIdx.x) * w;
  float s = 0;
  for (int j = threadIdx.x; j < w; j += kRowThreads) s += x[o + j];
  const float mu = block_sum(s, scratch) / float(w);
  float v = 0;
  for (int j = threadIdx.x; j < w; j += kRowThreads) v += (x[o + j] - mu) * (x[o + j] - mu);
  const float r = rsqrtf(block_sum(v, scratch) / float(w) + eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = r;
  }
  for (int j = threadIdx.x; j < w; j += kRowThreads) y[o + j] = (x[o + j] - mu) * r * scale[j] + bias[j];
}

// dx += dL/dx of LN given dy per row; dy becomes dy * xhat (for the scale's column sums).
__global__ void layer_norm_backward_rows(const float* x, const float* mean, const float* rstd, const float* scale, int w,
                                         float* dy, float* dx) {
  __shared__ float scratch[kRowThreads];
  const size_t o = size_t(blockIdx.x) * w;
  const float mu = mean[blockIdx.x], r = rstd[blockIdx.x];
  float sg = 0, sgx = 0;
  for (int j = threadIdx.x; j < w; j += kRowThreads) {
    const float g = dy[o + j] * scale[j];
    sg += g;
    sgx += g * (x[o + j] - mu) * r;
  }
  const float mg = block_sum(sg, scratch) / float(w), mgx = block_sum(sgx, scratch) / float(w);
  for (int j = threadIdx.x; j < w; j += kRowThreads) {
    const float xhat = (x[o + j] - mu) * r;
    dx[o + j] += r * (dy[o + j] * scale[j] - mg - xhat * mgx);
    dy[o + j] *= xhat;
  }
}

// y += bias (+ bias2) (+ residual), then ReLU when asked: the biases and residuals after a product.
__global__ void add_rows(float* y, int w, const float* bias, const float* bias2, const float* residual, bool relu) {
  const size_t o = size_t(blockIdx.x) * w;
  for (int j = threadIdx.x; j < w; j += kRowThreads) {
    float v = y[o + j] + bias[j] + (bias2 ? bias2[j] : 0.f) + (residual ? residual[o + j] : 0.f);
    y[o + j] = relu ? fmaxf(v, 0.f) : v;
  }
}

// g = 0 where the ReLU's output was 0.
__global__ void relu_mask(const float* f, size_t n, float* g) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    if (f[i] <= 0.f) g[i] = 0.f;
}

// Where a token's attention lives: its text's first row r0, length T, its row within the text,
// and the start of the text's heads x T x T block of probabilities.
struct TokenSpan {
  int r0, T, row;
  long long probs;
};

__device__ TokenSpan span_of(int token, const int32_t* text_of, const int32_t* offsets, const long long* prob_offsets) {
  const int s = text_of[token];
  return {offsets[s], offsets[s + 1] - offsets[s], token - offsets[s], prob_offsets[s]};
}

// Copies the depth floats at `from` into the block's shared memory, after the max_tokens floats the
// kernel keeps per key, and waits for every thread: the query's or dctx's row of one head.
__device__ const float* stage_head_row(const float* from, int depth, int max_tokens, float* shared) {
  float* row = shared + max_tokens;
  for (int d = threadIdx.x; d < depth; d += kRowThreads) row[d] = from[d];
  __syncthreads();
  return row;
}

// Row `row` of head h's probabilities, softmax(scale q k^T) over the text's T tokens, and ctx of
// that token for the head: one block per (token, head). Dynamic shared memory: max T + depth floats.
__global__ void attention_forward_rows(const float* qkv, const int32_t* text_of, const int32_t* offsets,
                                       const long long* prob_offsets, int w, int depth, int max_tokens, float scale,
                                       float* probs, float* ctx) {
  extern __shared__ float shared[];
  __shared__ float scratch[kRowThreads];
  const int i = blockIdx.x, h = blockIdx.y;
  const TokenSpan sp = span_of(i, text_of, offsets, prob_offsets);
  const size_t ld = size_t(3) * w;
  float* p = shared;
  const float* q = stage_head_row(qkv + i * ld + h * depth, depth, max_tokens, shared);
  float top = -INFINITY;
  for (int j = threadIdx.x; j < sp.T; j += kRowThreads) {
    const float* k = qkv + (sp.r0 + j) * ld + w + h * depth;
    float s = 0;
    for (int d = 0; d < depth; ++d) s += q[d] * k[d];
    p[j] = s * scale;
    top = fmaxf(top, p[j]);
  }
  top = block_max(top, scratch);
  float sum = 0;
  for (int j = threadIdx.x; j < sp.T; j += kRowThreads) sum += (p[j] = expf(p[j] - top));
  const float inv = 1.f / block_sum(sum, scratch);
  float* out = probs + sp.probs + (size_t(h) * sp.T + sp.row) * sp.T;
  for (int j = threadIdx.x; j < sp.T; j += kRowThreads) out[j] = p[j] *= inv;
  __syncthreads();
  for (int d = threadIdx.x; d < depth; d += kRowThreads) {
    const float* v = qkv + sp.r0 * ld + 2 * w + h * depth + d;
    float acc = 0;
    for (int j = 0; j < sp.T; ++j) acc += p[j] * v[j * ld];
    ctx[size_t(i) * w + h * depth + d] = acc;
  }
}

// The query side of attention's backward pass for one (token, head): dP = dctx V^T over the row,
// dS = scale P (dP - rowsum(dP P)) kept in grad_scores, dQ = dS K.
__global__ void attention_backward_queries(const float* qkv, const float* probs, const float* grad_ctx,
                                           const int32_t* text_of, const int32_t* offsets, const long long* prob_offsets,
                                           int w, int depth, int max_tokens, float scale, float* grad_scores,
                                           float* grad_qkv) {
  extern __shared__ float shared[];
  __shared__ float scratch[kRowThreads];
  const int i = blockIdx.x, h = blockIdx.y;
  const TokenSpan sp = span_of(i, text_of, offsets, prob_offsets);
  const size_t ld = size_t(3) * w;
  float* ds = shared;
  const float* dc = stage_head_row(grad_ctx + size_t(i) * w + h * depth, depth, max_tokens, shared);
  const size_t row = sp.probs + (size_t(h) * sp.T + sp.row) * sp.T;
  float dot = 0;
  for (int j = threadIdx.x; j < sp.T; j += kRowThreads) {
    const float* v = qkv + (sp.r0 + j) * ld + 2 * w + h * depth;
    float s = 0;
    for (int d = 0; d < depth; ++d) s += dc[d] * v[d];
    ds[j] = s;
    dot += s * probs[row + j];
  }
  dot = block_sum(dot, scratch);
  for (int j = threadIdx.x; j < sp.T; j += kRowThreads) grad_scores[row + j] = ds[j] = scale * probs[row + j] * (ds[j] - dot);
  __syncthreads();
  for (int d = threadIdx.x; d < depth; d += kRowThreads) {
    const float* k = qkv + sp.r0 * ld + w + h * depth + d;
    float acc = 0;
    for (int j = 0; j < sp.T; ++j) acc += ds[j] * k[j * ld];
    grad_qkv[i * ld + h * depth + d] = acc;
  }
}

// The key and value side for one (token, head) as column `row` of its text: dK = dS^T Q, dV = P^T dctx.
__global__ void attention_backward_keys(const float* qkv, const float* probs, const float* grad_scores, const float* grad_ctx,
                                        const int32_t* text_of, const int32_t* offsets, const long long* prob_offsets, int w,
                                        int depth, float* grad_qkv) {
  const int j = blockIdx.x, h = blockIdx.y;
  const TokenSpan sp = span_of(j, text_of, offsets, prob_offsets);
  const size_t ld = size_t(3) * w, head = sp.probs + size_t(h) * sp.T * sp.T;
  for (int d = threadIdx.x; d < depth; d += blockDim.x) {
    float dk = 0, dv = 0;
    for (int i = 0; i < sp.T; ++i) {
      const size_t at = head + size_t(i) * sp.T + sp.row;
      dk += grad_scores[at] * qkv[(sp.r0 + i) * ld + h * depth + d];
      dv += probs[at] * grad_ctx[size_t(sp.r0 + i) * w + h * depth + d];
    }
    grad_qkv[j * ld + w + h * depth + d] = dk;
    grad_qkv[j * ld + 2 * w + h * depth + d] = dv;
  }
}

// pooled[s] = the mean of its text's token states: one block per text.
__global__ void mean_pool(const float* states, const int32_t* offsets, int P, float* pooled) {
  const int s = blockIdx.x, r0 = offsets[s], T = offsets[s + 1] - r0;
  for (int j = threadIdx.x; j < P; j += kRowThreads) {
    float acc = 0;
    for (int r = r0; r < r0 + T; ++r) acc += states[size_t(r) * P + j];
    pooled[size_t(s) * P + j] = acc / float(T);
  }
}

// dL/dstate of each token: its text's dL/dpooled / T.
__global__ void mean_pool_backward(const float* grad_pooled, const int32_t* text_of, const int32_t* offsets, int P,
                                   float* gx) {
  const int r = blockIdx.x, s = text_of[r];
  const float inv = 1.f / float(offsets[s + 1] - offsets[s]);
  for (int j = threadIdx.x; j < P; j += kRowThreads) gx[size_t(r) * P + j] = grad_pooled[size_t(s) * P + j] * inv;
}

void launched(const char* what) { check(cudaGetLastError(), what); }

void column_sums_into(const float* x, int rows, int cols, float* out) {
  column_sums<<<unsigned((cols + 255) / 256), 256>>>(x, rows, cols, out);
  launched("column sums");
}

void copy_device(float* to, const float* from, size_t n) {
  check(cudaMemcpy(to, from, n * sizeof(float), cudaMemcpyDeviceToDevice), "device copy");
}

size_t last_width(const EncoderDims& dims) { return dims.layers.back().width_out; }

bool fits_int(size_t n) { return n < size_t(INT32_MAX); }

}  // namespace

Encoder::Encoder(const EncoderDims& dims) : dims_(dims), d_(new EncoderBuffers) {
  d_->specs = encoder_layout(dims);
  d_->param_count = encoder_param_count(dims);
  d_->layers.resize(dims.layers.size());
}

std::unique_ptr<Encoder> Encoder::open(const EncoderDims& dims, const float* timing, Error* err) {
  std::unique_ptr<Encoder> encoder(new Encoder(dims));
  try {
    const size_t n = dims.max_tokens * dims.embed;
    check(cudaMemcpy(encoder->d_->timing.sized(n), timing, n * sizeof(float), cudaMemcpyHostToDevice), "copy timing");
  } catch (const CudaFailure& f) {
    *err = {Error::device, "CUDA: " + f.what};
    return nullptr;
  }
  return encoder;
}

Encoder::~Encoder() = default;

Error Encoder::forward(const float* params, const int32_t* tokens, const int32_t* offsets, size_t texts, float* e,
                       std::vector<float>& pooled) {
  if (Error err = check_encoder_batch(dims_, tokens, offsets, texts)) return err;
  const size_t N = size_t(offsets[texts]), P = last_width(dims_), H = dims_.head_out;
  if (!fits_int(N * 3 * std::max(P, dims_.embed)) || !fits_int(d_->param_count)) return {Error::bad_argument, "batch too large for the CUDA path"};
  EncoderBuffers& b = *d_;
  b.has_forward = false;
  try {
    b.host_tokens.assign(tokens, tokens + N);
    b.host_offsets.assign(offsets, offsets + texts + 1);
    std::vector<int32_t> positions(N), text_of(N);
    std::vector<long long> prob_offsets(texts);
    size_t prob_heads = 0;
    for (const EncoderLayerDims& d : dims_.layers) prob_heads = std::max(prob_heads, d.heads);
    b.prob_total = 0;
    for (size_t s = 0; s < texts; ++s) {
      const size_t T = size_t(offsets[s + 1] - offsets[s]);
      prob_offsets[s] = (long long)b.prob_total;
      b.prob_total += prob_heads * T * T;
      for (int32_t r = offsets[s]; r < offsets[s + 1]; ++r) {
        positions[r] = r - offsets[s];
        text_of[r] = int32_t(s);
      }
    }
    auto upload = [](auto& to, const auto* from, size_t n, const char* what) {
      check(cudaMemcpy(to.sized(n), from, n * sizeof(*from), cudaMemcpyHostToDevice), what);
    };
    upload(b.params, params, b.param_count, "copy params");
    upload(b.tokens, tokens, N, "copy tokens");
    upload(b.positions, positions.data(), N, "copy positions");
    upload(b.text_of, text_of.data(), N, "copy token texts");
    upload(b.offsets, offsets, texts + 1, "copy offsets");
    upload(b.prob_offsets, prob_offsets.data(), texts, "copy probability offsets");
    b.texts = texts;
    const int n = int(N);

    const size_t E = dims_.embed;
    embed_tokens<<<n, kRowThreads>>>(b.params.ptr, b.timing.ptr, b.tokens.ptr, b.positions.ptr, int(E), b.layers[0].x.sized(N * E));
    launched("embedding lookup");
    for (size_t l = 0; l < dims_.layers.size(); ++l) {
      const EncoderLayerDims& d = dims_.layers[l];
      LayerBuffers& a = b.layers[l];
      const std::string p = "layer" + std::to_string(l) + ".";
      const int wi = int(d.width_in), wo = int(d.width_out), F = int(d.ffn), depth = int(d.width_in / d.heads);
      const float* x = a.x.ptr;
      layer_norm_rows<<<n, kRowThreads>>>(x, wi, b.param(p + "ln1.scale"), b.param(p + "ln1.bias"), dims_.ln_eps,
                                          a.ln1.sized(N * wi), a.mean1.sized(N), a.rstd1.sized(N));
      launched("layer norm");
      gemm<false, false>(n, 3 * wi, wi, a.ln1.ptr, wi, b.param(p + "qkv.weight"), 3 * wi, a.qkv.sized(N * 3 * wi), 3 * wi);
      add_rows<<<n, kRowThreads>>>(a.qkv.ptr, 3 * wi, b.param(p + "qkv.bias"), nullptr, nullptr, false);
      launched("qkv bias");
      const size_t shared = (dims_.max_tokens + size_t(depth)) * sizeof(float);
      attention_forward_rows<<<dim3(unsigned(n), unsigned(d.heads)), kRowThreads, shared>>>(
          a.qkv.ptr, b.text_of.ptr, b.offsets.ptr, b.prob_offsets.ptr, wi, depth, int(dims_.max_tokens), d.query_scale,
          a.probs.sized(b.prob_total), a.ctx.sized(N * wi));
      launched("attention");
      float* x1 = a.x1.sized(N * wo);
      gemm<false, false>(n, wo, wi, a.ctx.ptr, wi, b.param(p + "out.weight"), wo, x1, wo);
      if (d.residual_projection) {
        gemm<false, false>(n, wo, wi, x, wi, b.param(p + "residual.weight"), wo, x1, wo, true);
        add_rows<<<n, kRowThreads>>>(x1, wo, b.param(p + "out.bias"), b.param(p + "residual.bias"), nullptr, false);
      } else {
        add_rows<<<n, kRowThreads>>>(x1, wo, b.param(p + "out.bias"), nullptr, x, false);
      }
      launched("attention residual");
      layer_norm_rows<<<n, kRowThreads>>>(x1, wo, b.param(p + "ln2.scale"), b.param(p + "ln2.bias"), dims_.ln_eps,
                                          a.ln2.sized(N * wo), a.mean2.sized(N), a.rstd2.sized(N));
      launched("layer norm");
      gemm<false, false>(n, F, wo, a.ln2.ptr, wo, b.param(p + "ffn1.weight"), F, a.f1.sized(N * F), F);
      add_rows<<<n, kRowThreads>>>(a.f1.ptr, F, b.param(p + "ffn1.bias"), nullptr, nullptr, true);
      launched("ffn bias");
      float* next = l + 1 < dims_.layers.size() ? b.layers[l + 1].x.sized(N * wo) : b.out.sized(N * wo);
      gemm<false, false>(n, wo, F, a.f1.ptr, F, b.param(p + "ffn2.weight"), wo, next, wo);
      add_rows<<<n, kRowThreads>>>(next, wo, b.param(p + "ffn2.bias"), nullptr, x1, false);
      launched("ffn residual");
    }
    mean_pool<<<unsigned(texts), kRowThreads>>>(b.out.ptr, b.offsets.ptr, int(P), b.pooled.sized(texts * P));
    launched("mean pooling");
    pooled.resize(texts * P);
    check(cudaMemcpy(pooled.data(), b.pooled.ptr, texts * P * sizeof(float), cudaMemcpyDeviceToHost), "copy pooled");
    const size_t bad = first_non_finite(pooled.data(), texts * P);
    if (bad < texts * P)
      return {Error::non_finite, "the encoder's pooled state of text " + std::to_string(bad / P) + " is not finite (overflowing weights?)"};
    // The head: e = normalize(tanh(pooled W^T + bias)).
    const int t = int(texts);
    gemm<false, true>(t, int(H), int(P), b.pooled.ptr, int(P), b.param("head.weight"), int(P), b.hidden.sized(texts * H), int(H));
    tanh_bias<<<t, kRowThreads>>>(b.hidden.ptr, b.param("head.bias"), int(H));
    normalize_rows<<<t, kRowThreads>>>(b.hidden.ptr, int(H), b.e.sized(texts * H));
    launched("head");
    check(cudaMemcpy(e, b.e.ptr, texts * H * sizeof(float), cudaMemcpyDeviceToHost), "copy embeddings");
    const size_t bad_e = first_non_finite(e, texts * H);
    if (bad_e < texts * H)
      return {Error::non_finite, "the head's output for text " + std::to_string(bad_e / H) + " is not finite (NaN from overflowing inputs)"};
  } catch (const CudaFailure& f) {
    return {Error::device, "CUDA: " + f.what};
  }
  b.has_forward = true;
  return {};
}

Error Encoder::backward(const float* grad_e, float weight, float* grad, SparseRows& embedding) {
  EncoderBuffers& b = *d_;
  if (!b.has_forward) return {Error::bad_argument, "backward before any forward pass"};
  const size_t texts = b.texts, N = size_t(b.host_offsets[texts]), P = last_width(dims_), H = dims_.head_out;
  const size_t bad = first_non_finite(grad_e, texts * H);
  if (bad < texts * H) return {Error::non_finite, "the gradient of text " + std::to_string(bad / H) + " is not finite"};
  size_t widest = dims_.embed, ffn = 0;
  for (const EncoderLayerDims& d : dims_.layers) widest = std::max(widest, d.width_out), ffn = std::max(ffn, d.ffn);
  try {
    const int n = int(N), t = int(texts);
    check(cudaMemcpy(b.grad_e.sized(texts * H), grad_e, texts * H * sizeof(float), cudaMemcpyHostToDevice), "copy gradient");
    b.grad.sized(b.param_count);
    // The head: dL/du through the normalisation (times the weight), through tanh, then dW, dbias, dpooled.
    float* gu = b.grad_u.sized(texts * H);
    head_grad_u<<<t, kRowThreads>>>(b.hidden.ptr, b.e.ptr, b.grad_e.ptr, int(H), weight, gu);
    tanh_grad<<<t, kRowThreads>>>(b.hidden.ptr, int(H), gu);
    launched("head backward");
    gemm<true, false>(int(H), int(P), t, gu, int(H), b.pooled.ptr, int(P), b.gradient("head.weight"), int(P));
    column_sums_into(gu, t, int(H), b.gradient("head.bias"));
    gemm<false, false>(t, int(P), int(H), gu, int(H), b.param("head.weight"), int(P), b.grad_pooled.sized(texts * P), int(P));
    float* gx = b.gx.sized(N * widest);
    float* gx1 = b.gx1.sized(N * widest);
    float* gtmp = b.gtmp.sized(N * widest);
    float* gbig = b.gbig.sized(N * ffn);
    mean_pool_backward<<<n, kRowThreads>>>(b.grad_pooled.ptr, b.text_of.ptr, b.offsets.ptr, int(P), gx);
    launched("mean pooling backward");
    for (size_t l = dims_.layers.size(); l-- > 0;) {
      const EncoderLayerDims& d = dims_.layers[l];
      LayerBuffers& a = b.layers[l];
      const std::string p = "layer" + std::to_string(l) + ".";
      const int wi = int(d.width_in), wo = int(d.width_out), F = int(d.ffn), depth = int(d.width_in / d.heads);
      // FFN: x' = relu(ln2 W1 + b1) W2 + b2 + x1.
      gemm<true, false>(F, wo, n, a.f1.ptr, F, gx, wo, b.gradient(p + "ffn2.weight"), wo);
      column_sums_into(gx, n, wo, b.gradient(p + "ffn2.bias"));
      gemm<false, true>(n, F, wo, gx, wo, b.param(p + "ffn2.weight"), wo, gbig, F);
      relu_mask<<<1024, 256>>>(a.f1.ptr, N * size_t(F), gbig);
      launched("relu backward");
      gemm<true, false>(wo, F, n, a.ln2.ptr, wo, gbig, F, b.gradient(p + "ffn1.weight"), F);
      column_sums_into(gbig, n, F, b.gradient(p + "ffn1.bias"));
      gemm<false, true>(n, wo, F, gbig, F, b.param(p + "ffn1.weight"), F, gtmp, wo);
      copy_device(gx1, gx, N * wo);
      column_sums_into(gtmp, n, wo, b.gradient(p + "ln2.bias"));
      layer_norm_backward_rows<<<n, kRowThreads>>>(a.x1.ptr, a.mean2.ptr, a.rstd2.ptr, b.param(p + "ln2.scale"), wo, gtmp, gx1);
      launched("layer norm backward");
      column_sums_into(gtmp, n, wo, b.gradient(p + "ln2.scale"));
      // x1 = ctx Wo + bo + residual.
      gemm<true, false>(wi, wo, n, a.ctx.ptr, wi, gx1, wo, b.gradient(p + "out.weight"), wo);
      column_sums_into(gx1, n, wo, b.gradient(p + "out.bias"));
      float* gctx = b.gctx.sized(N * wi);
      gemm<false, true>(n, wi, wo, gx1, wo, b.param(p + "out.weight"), wo, gctx, wi);
      if (d.residual_projection) {
        gemm<true, false>(wi, wo, n, a.x.ptr, wi, gx1, wo, b.gradient(p + "residual.weight"), wo);
        column_sums_into(gx1, n, wo, b.gradient(p + "residual.bias"));
        gemm<false, true>(n, wi, wo, gx1, wo, b.param(p + "residual.weight"), wo, gx, wi);
      } else {
        copy_device(gx, gx1, N * wo);
      }
      // Attention, then the QKV transform and the first layer norm.
      float* gqkv = b.gqkv.sized(N * 3 * wi);
      float* gs = b.grad_scores.sized(b.prob_total);
      const dim3 grid(unsigned(n), unsigned(d.heads));
      const size_t shared = (dims_.max_tokens + size_t(depth)) * sizeof(float);
      attention_backward_queries<<<grid, kRowThreads, shared>>>(a.qkv.ptr, a.probs.ptr, gctx, b.text_of.ptr, b.offsets.ptr,
                                                                b.prob_offsets.ptr, wi, depth, int(dims_.max_tokens),
                                                                d.query_scale, gs, gqkv);
      launched("attention backward (queries)");
      attention_backward_keys<<<grid, 64>>>(a.qkv.ptr, a.probs.ptr, gs, gctx, b.text_of.ptr, b.offsets.ptr, b.prob_offsets.ptr,
                                            wi, depth, gqkv);
      launched("attention backward (keys and values)");
      gemm<true, false>(wi, 3 * wi, n, a.ln1.ptr, wi, gqkv, 3 * wi, b.gradient(p + "qkv.weight"), 3 * wi);
      column_sums_into(gqkv, n, 3 * wi, b.gradient(p + "qkv.bias"));
      gemm<false, true>(n, wi, 3 * wi, gqkv, 3 * wi, b.param(p + "qkv.weight"), 3 * wi, gtmp, wi);
      column_sums_into(gtmp, n, wi, b.gradient(p + "ln1.bias"));
      layer_norm_backward_rows<<<n, kRowThreads>>>(a.x.ptr, a.mean1.ptr, a.rstd1.ptr, b.param(p + "ln1.scale"), wi, gtmp, gx);
      launched("layer norm backward");
      column_sums_into(gtmp, n, wi, b.gradient(p + "ln1.scale"));
    }
    // Every tensor after the embeddings, then dL/dx0 for the embedding table's rows.
    const size_t first = b.specs[1].offset;
    check(cudaMemcpy(grad + first, b.grad.ptr + first, (b.param_count - first) * sizeof(float), cudaMemcpyDeviceToHost),
          "copy gradients");
    const size_t E = dims_.embed;
    b.host_gx.resize(N * E);
    check(cudaMemcpy(b.host_gx.data(), gx, N * E * sizeof(float), cudaMemcpyDeviceToHost), "copy input gradient");
  } catch (const CudaFailure& f) {
    return {Error::device, "CUDA: " + f.what};
  }
  embedding_gradient(b.host_tokens.data(), N, b.host_gx.data(), dims_.embed, embedding);
  return {};
}

}  // namespace laborspace::cuda
