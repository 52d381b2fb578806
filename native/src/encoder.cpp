// The whole encoder, forward and backward (encoder.h). Each step is a *_forward / *_backward pair;
// the products go through gemm, exp and tanh through the ISA table; rows and (text, head) pairs
// run on threads, column sums by column blocks, so results depend only on the thread count.
#include "encoder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

#include "parallel.h"
#include "scratch.h"

namespace laborspace {
namespace {

template <class F>
struct LayerTensors {
  F *ln1_scale, *ln1_bias, *qkv, *qkv_bias, *out, *out_bias, *res = nullptr, *res_bias = nullptr;
  F *ln2_scale, *ln2_bias, *ffn1, *ffn1_bias, *ffn2, *ffn2_bias;
};

template <class F>
struct Tensors {
  F* embeddings;
  std::vector<LayerTensors<F>> layers;
  F *head_weight, *head_bias;
};

// The arena's tensors at `base` in layout order; `specs` collects the layout when given.
template <class F>
Tensors<F> map_tensors(const EncoderDims& dims, F* base, std::vector<TensorSpec>* specs = nullptr) {
  size_t offset = 0;
  auto take = [&](const std::string& name, size_t rows, size_t cols) -> F* {
    if (specs) specs->push_back({name, offset, rows, cols});
    F* p = base ? base + offset : nullptr;
    offset += rows * cols;
    return p;
  };
  Tensors<F> t;
  t.embeddings = take("embeddings", dims.vocab, dims.embed);
  for (size_t l = 0; l < dims.layers.size(); ++l) {
    const EncoderLayerDims& d = dims.layers[l];
    const std::string p = "layer" + std::to_string(l) + ".";
    LayerTensors<F> lt;
    lt.ln1_scale = take(p + "ln1.scale", 1, d.width_in);
    lt.ln1_bias = take(p + "ln1.bias", 1, d.width_in);
    lt.qkv = take(p + "qkv.weight", d.width_in, 3 * d.width_in);
    lt.qkv_bias = take(p + "qkv.bias", 1, 3 * d.width_in);
    lt.out = take(p + "out.weight", d.width_in, d.width_out);
    lt.out_bias = take(p + "out.bias", 1, d.width_out);
    if (d.residual_projection) {
      lt.res = take(p + "residual.weight", d.width_in, d.width_out);
      lt.res_bias = take(p + "residual.bias", 1, d.width_out);
    }
    lt.ln2_scale = take(p + "ln2.scale", 1, d.width_out);
    lt.ln2_bias = take(p + "ln2.bias", 1, d.width_out);
    lt.ffn1 = take(p + "ffn1.weight", d.width_out, d.ffn);
    lt.ffn1_bias = take(p + "ffn1.bias", 1, d.ffn);
    lt.ffn2 = take(p + "ffn2.weight", d.ffn, d.width_out);
    lt.ffn2_bias = take(p + "ffn2.bias", 1, d.width_out);
    t.layers.push_back(lt);
  }
  const size_t pooled = dims.layers.empty() ? dims.embed : dims.layers.back().width_out;
  t.head_weight = take("head.weight", dims.head_out, pooled);
  t.head_bias = take("head.bias", 1, dims.head_out);
  return t;
}

size_t pooled_width(const EncoderDims& dims) { return dims.layers.empty() ? dims.embed : dims.layers.back().width_out; }

template <class V>
float* sized(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// y = LN(x) row by row: (x - mean) / sqrt(var + eps) * scale + bias, statistics in double.
void layer_norm_forward(const float* x, size_t rows, size_t w, const float* scale, const float* bias, float eps, float* y,
                        float* mean, float* rstd) {
  for_rows(rows, 8.0 * w, [&](size_t i) {
    const float* xi = x + i * w;
    double s = 0;
    for (size_t j = 0; j < w; ++j) s += xi[j];
    const double mu = s / double(w);
    double v = 0;
    for (size_t j = 0; j < w; ++j) v += (xi[j] - mu) * (xi[j] - mu);
    const float r = float(1.0 / std::sqrt(v / double(w) + eps));
    mean[i] = float(mu);
    rstd[i] = r;
    float* yi = y + i * w;
    for (size_t j = 0; j < w; ++j) yi[j] = (xi[j] - float(mu)) * r * scale[j] + bias[j];
  });
}

// out[j] = sum over rows of x[i*w + j], by blocks of columns (the same sums on any thread count).
void column_sums(const float* x, size_t rows, size_t w, float* out) {
  const size_t blocks = (w + 63) / 64;
  const size_t threads = std::min(blocks, threads_for(double(rows) * double(w)));
  fork_join(std::max<size_t>(threads, 1), [&](size_t t) {
    const size_t count = std::max<size_t>(threads, 1);
    const size_t c0 = std::min(w, blocks * t / count * 64), c1 = std::min(w, blocks * (t + 1) / count * 64);
    std::fill(out + c0, out + c1, 0.f);
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = c0; j < c1; ++j) out[j] += x[i * w + j];
  });
}

// dx += dL/dx of LN given dy; grad_scale, grad_bias written. dy is overwritten (dy * xhat).
void layer_norm_backward(const float* x, const float* mean, const float* rstd, const float* scale, float* dy, size_t rows,
                         size_t w, float* dx, float* grad_scale, float* grad_bias) {
  column_sums(dy, rows, w, grad_bias);
  for_rows(rows, 12.0 * w, [&](size_t i) {
    const float* xi = x + i * w;
    float* gi = dy + i * w;
    float* di = dx + i * w;
    const float mu = mean[i], r = rstd[i];
    double sum_g = 0, sum_gx = 0;
    for (size_t j = 0; j < w; ++j) {
      const float xhat = (xi[j] - mu) * r, g = gi[j] * scale[j];
      sum_g += g;
      sum_gx += double(g) * xhat;
    }
    const float mg = float(sum_g / double(w)), mgx = float(sum_gx / double(w));
    for (size_t j = 0; j < w; ++j) {
      const float xhat = (xi[j] - mu) * r;
      di[j] += r * (gi[j] * scale[j] - mg - xhat * mgx);
      gi[j] *= xhat;
    }
  });
  column_sums(dy, rows, w, grad_scale);
}

void add_bias_rows(float* y, size_t rows, size_t w, const float* bias, bool relu) {
  for_rows(rows, 2.0 * w, [&](size_t i) {
    float* yi = y + i * w;
    if (relu)
      for (size_t j = 0; j < w; ++j) yi[j] = std::max(0.f, yi[j] + bias[j]);
    else
      for (size_t j = 0; j < w; ++j) yi[j] += bias[j];
  });
}

// Runs job(j) for j in [0, jobs) on the threads `work` is worth, each thread taking the next job
// when done (texts differ in length); each job writes its own outputs.
template <class Fn>
void for_jobs(size_t jobs, double work, Fn&& job) {
  std::atomic<size_t> next{0};
  const size_t threads = std::max<size_t>(1, std::min(jobs, threads_for(work)));
  fork_join(threads, [&](size_t) {
    for (size_t j; (j = next.fetch_add(1)) < jobs;) job(j);
  });
}

// Rows of the probabilities of head h of a text (T tokens from row r0): softmax(scale q k^T).
void attention_probs(const IsaKernels& k, const float* qkv, size_t r0, size_t T, size_t w, size_t depth, size_t h,
                     float scale, float* p) {
  const float* q = qkv + r0 * 3 * w + h * depth;
  gemm(Op::none, Op::transpose, T, T, depth, q, 3 * w, q + w, 3 * w, p, T, false);
  for (size_t i = 0; i < T; ++i) {
    float* pi = p + i * T;
    float top = -INFINITY;
    for (size_t j = 0; j < T; ++j) top = std::max(top, pi[j] *= scale);
    for (size_t j = 0; j < T; ++j) pi[j] -= top;
    k.exp_inplace(pi, T);
    double sum = 0;
    for (size_t j = 0; j < T; ++j) sum += pi[j];
    const float inv = float(1.0 / sum);
    for (size_t j = 0; j < T; ++j) pi[j] *= inv;
  }
}

struct Job {
  size_t text, head;
};

// The (text, head) pairs, longest texts first so the last jobs are short.
std::vector<Job> attention_jobs(const int32_t* offsets, size_t texts, size_t heads) {
  std::vector<size_t> order(texts);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b];
  });
  std::vector<Job> jobs;
  for (size_t s : order)
    for (size_t h = 0; h < heads; ++h) jobs.push_back({s, h});
  return jobs;
}

double attention_work(const int32_t* offsets, size_t texts, size_t w) {
  double work = 0;
  for (size_t s = 0; s < texts; ++s) work += 2.0 * double(offsets[s + 1] - offsets[s]) * (offsets[s + 1] - offsets[s]) * w;
  return work;
}

// ctx = per text and head, softmax(scale q k^T) v; probs kept at prob_offsets unless null.
void attention_forward(const EncoderLayerDims& d, const float* qkv, const int32_t* offsets, size_t texts,
                       const std::vector<size_t>& prob_offsets, float* probs, float* ctx) {
  const IsaKernels& k = active_kernels();
  const size_t w = d.width_in, depth = w / d.heads;
  const std::vector<Job> jobs = attention_jobs(offsets, texts, d.heads);
  for_jobs(jobs.size(), attention_work(offsets, texts, w), [&](size_t j) {
    const size_t s = jobs[j].text, h = jobs[j].head, r0 = offsets[s], T = offsets[s + 1] - offsets[s];
    thread_local std::vector<float> local;
    float* p = probs ? probs + prob_offsets[s] + h * T * T : sized(local, T * T);
    attention_probs(k, qkv, r0, T, w, depth, h, d.query_scale, p);
    gemm(Op::none, Op::none, T, depth, T, p, T, qkv + r0 * 3 * w + 2 * w + h * depth, 3 * w, ctx + r0 * w + h * depth, w, false);
  });
}

// dqkv from dctx: dV = P^T dctx, dS = P (dP - rowsum(dP P)) with dP = dctx V^T, dQ = scale dS K,
// dK = scale dS^T Q. P from the forward's probs, or recomputed when those were not kept.
void attention_backward(const EncoderLayerDims& d, const float* qkv, const int32_t* offsets, size_t texts,
                        const std::vector<size_t>& prob_offsets, const float* probs, const float* grad_ctx,
                        float* grad_qkv) {
  const IsaKernels& k = active_kernels();
  const size_t w = d.width_in, depth = w / d.heads;
  const std::vector<Job> jobs = attention_jobs(offsets, texts, d.heads);
  for_jobs(jobs.size(), 2.0 * attention_work(offsets, texts, w), [&](size_t j) {
    const size_t s = jobs[j].text, h = jobs[j].head, r0 = offsets[s], T = offsets[s + 1] - offsets[s];
    thread_local std::vector<float> local_p, local_dp;
    const float* p = probs ? probs + prob_offsets[s] + h * T * T : nullptr;
    if (!p) {
      attention_probs(k, qkv, r0, T, w, depth, h, d.query_scale, sized(local_p, T * T));
      p = local_p.data();
    }
    const float* q = qkv + r0 * 3 * w + h * depth;
    const float *kk = q + w, *v = q + 2 * w;
    const float* dc = grad_ctx + r0 * w + h * depth;
    float* dq = grad_qkv + r0 * 3 * w + h * depth;
    float* dk = dq + w;
    float* dv = dq + 2 * w;
    float* dp = sized(local_dp, T * T);
    gemm(Op::none, Op::transpose, T, T, depth, dc, w, v, 3 * w, dp, T, false);
    gemm(Op::transpose, Op::none, T, depth, T, p, T, dc, w, dv, 3 * w, false);
    for (size_t i = 0; i < T; ++i) {
      const float* pi = p + i * T;
      float* gi = dp + i * T;
      double dot = 0;
      for (size_t c = 0; c < T; ++c) dot += double(gi[c]) * pi[c];
      for (size_t c = 0; c < T; ++c) gi[c] = d.query_scale * pi[c] * (gi[c] - float(dot));
    }
    gemm(Op::none, Op::none, T, depth, T, dp, T, kk, 3 * w, dq, 3 * w, false);
    gemm(Op::transpose, Op::none, T, depth, T, dp, T, q, 3 * w, dk, 3 * w, false);
  });
}

}  // namespace

std::vector<TensorSpec> encoder_layout(const EncoderDims& dims) {
  std::vector<TensorSpec> specs;
  map_tensors<const float>(dims, nullptr, &specs);
  return specs;
}

size_t encoder_param_count(const EncoderDims& dims) {
  const std::vector<TensorSpec> specs = encoder_layout(dims);
  return specs.back().offset + specs.back().rows * specs.back().cols;
}

std::string check_encoder_dims(const EncoderDims& dims) {
  if (!dims.vocab || !dims.embed || !dims.max_tokens || !dims.head_out) return "vocab, embed, maxTokens and headOut must be positive";
  if (dims.embed % 2) return "embed must be even (the timing signal is sines then cosines)";
  if (dims.layers.empty()) return "the encoder needs at least one layer";
  size_t width = dims.embed;
  for (size_t l = 0; l < dims.layers.size(); ++l) {
    const EncoderLayerDims& d = dims.layers[l];
    const std::string name = "layer " + std::to_string(l);
    if (d.width_in != width) return name + " reads width " + std::to_string(d.width_in) + " but its input has " + std::to_string(width);
    if (!d.heads || d.width_in % d.heads) return name + ": width " + std::to_string(d.width_in) + " does not split into " + std::to_string(d.heads) + " heads";
    if (!d.width_out || !d.ffn) return name + ": widthOut and ffn must be positive";
    if (d.width_in != d.width_out && !d.residual_projection) return name + " changes width, so it needs a residual projection";
    if (!std::isfinite(d.query_scale)) return name + ": the query scale must be finite";
    width = d.width_out;
  }
  return "";
}

Error check_encoder_batch(const EncoderDims& dims, const int32_t* tokens, const int32_t* offsets, size_t texts) {
  if (texts == 0) return {Error::bad_argument, "no texts"};
  if (offsets[0] != 0) return {Error::bad_argument, "offsets must start at 0"};
  for (size_t s = 0; s < texts; ++s) {
    const int64_t len = int64_t(offsets[s + 1]) - offsets[s];
    if (len < 1) return {Error::bad_argument, "text " + std::to_string(s) + " has no tokens"};
    if (size_t(len) > dims.max_tokens)
      return {Error::bad_argument, "text " + std::to_string(s) + " has " + std::to_string(len) + " tokens, more than the model's " + std::to_string(dims.max_tokens)};
  }
  const size_t N = size_t(offsets[texts]);
  for (size_t i = 0; i < N; ++i)
    if (tokens[i] < 0 || size_t(tokens[i]) >= dims.vocab)
      return {Error::bad_argument, "token " + std::to_string(i) + " is " + std::to_string(tokens[i]) + ", outside the vocabulary of " + std::to_string(dims.vocab)};
  return {};
}

Error encoder_forward(const EncoderDims& dims, const float* params, const float* timing, const Adapter& adapter,
                      const int32_t* tokens, const int32_t* offsets, size_t texts, bool recompute, EncoderTape& tape,
                      float* e) {
  if (Error err = check_encoder_batch(dims, tokens, offsets, texts)) return err;
  const size_t N = size_t(offsets[texts]);
  const Tensors<const float> t = map_tensors(dims, params);
  tape.tokens.assign(tokens, tokens + N);
  tape.offsets.assign(offsets, offsets + texts + 1);
  tape.recompute = recompute;
  tape.layers.resize(dims.layers.size());

  // x0 = emb + (emb + timing), as the graph adds them.
  const size_t E = dims.embed;
  float* x = sized(tape.layers[0].x, N * E);
  for (size_t s = 0; s < texts; ++s)
    for (int32_t r = offsets[s]; r < offsets[s + 1]; ++r) {
      const float* row = t.embeddings + size_t(tokens[r]) * E;
      const float* tim = timing + size_t(r - offsets[s]) * E;
      for (size_t j = 0; j < E; ++j) x[size_t(r) * E + j] = row[j] + (row[j] + tim[j]);
    }

  for (size_t l = 0; l < dims.layers.size(); ++l) {
    const EncoderLayerDims& d = dims.layers[l];
    const LayerTensors<const float>& p = t.layers[l];
    EncoderTape::Layer& a = tape.layers[l];
    const size_t wi = d.width_in, wo = d.width_out, F = d.ffn;
    const float* xin = a.x.data();
    float* ln1 = sized(a.ln1, N * wi);
    layer_norm_forward(xin, N, wi, p.ln1_scale, p.ln1_bias, dims.ln_eps, ln1, sized(a.mean1, N), sized(a.rstd1, N));
    float* qkv = sized(a.qkv, N * 3 * wi);
    gemm(Op::none, Op::none, N, 3 * wi, wi, ln1, wi, p.qkv, 3 * wi, qkv, 3 * wi, false);
    add_bias_rows(qkv, N, 3 * wi, p.qkv_bias, false);
    size_t prob_total = 0;
    a.prob_offsets.resize(texts);
    for (size_t s = 0; s < texts; ++s) {
      a.prob_offsets[s] = prob_total;
      const size_t T = offsets[s + 1] - offsets[s];
      prob_total += d.heads * T * T;
    }
    float* probs = recompute ? nullptr : sized(a.probs, prob_total);
    float* ctx = sized(a.ctx, N * wi);
    attention_forward(d, qkv, offsets, texts, a.prob_offsets, probs, ctx);
    float* x1 = sized(a.x1, N * wo);
    gemm(Op::none, Op::none, N, wo, wi, ctx, wi, p.out, wo, x1, wo, false);
    if (p.res) {
      gemm(Op::none, Op::none, N, wo, wi, xin, wi, p.res, wo, x1, wo, true);
      for_rows(N, 2.0 * wo, [&](size_t i) {
        for (size_t j = 0; j < wo; ++j) x1[i * wo + j] += p.out_bias[j] + p.res_bias[j];
      });
    } else {
      for_rows(N, 2.0 * wo, [&](size_t i) {
        for (size_t j = 0; j < wo; ++j) x1[i * wo + j] += p.out_bias[j] + xin[i * wo + j];
      });
    }
    float* ln2 = sized(a.ln2, N * wo);
    layer_norm_forward(x1, N, wo, p.ln2_scale, p.ln2_bias, dims.ln_eps, ln2, sized(a.mean2, N), sized(a.rstd2, N));
    // With recompute, every layer's FFN hidden layer shares layer 0's buffer.
    float* f1 = sized(recompute ? tape.layers[0].f1 : a.f1, N * F);
    gemm(Op::none, Op::none, N, F, wo, ln2, wo, p.ffn1, F, f1, F, false);
    add_bias_rows(f1, N, F, p.ffn1_bias, true);
    float* next = l + 1 < dims.layers.size() ? sized(tape.layers[l + 1].x, N * wo) : sized(tape.out, N * wo);
    gemm(Op::none, Op::none, N, wo, F, f1, F, p.ffn2, wo, next, wo, false);
    for_rows(N, 2.0 * wo, [&](size_t i) {
      for (size_t j = 0; j < wo; ++j) next[i * wo + j] += p.ffn2_bias[j] + x1[i * wo + j];
    });
  }

  const size_t P = pooled_width(dims);
  const float* out = tape.out.data();
  float* pooled = sized(tape.pooled, texts * P);
  for_rows(texts, 2.0 * P * dims.max_tokens / 4, [&](size_t s) {
    float* ps = pooled + s * P;
    std::fill(ps, ps + P, 0.f);
    for (int32_t r = offsets[s]; r < offsets[s + 1]; ++r)
      for (size_t j = 0; j < P; ++j) ps[j] += out[size_t(r) * P + j];
    const float inv = 1.f / float(offsets[s + 1] - offsets[s]);
    for (size_t j = 0; j < P; ++j) ps[j] *= inv;
  });
  const size_t bad = first_non_finite(pooled, texts * P);
  if (bad < texts * P)
    return {Error::non_finite, "the encoder's pooled state of text " + std::to_string(bad / P) + " is not finite (overflowing weights?)"};
  float* hidden = sized(tape.hidden, texts * dims.head_out);
  Error err = head_forward(pooled, texts, P, t.head_weight, t.head_bias, dims.head_out, adapter, hidden, e);
  if (!err) tape.embeddings.assign(e, e + texts * dims.head_out);
  return err;
}

void embedding_gradient(const int32_t* tokens, size_t N, const float* gx, size_t E, SparseRows& embedding) {
  std::vector<int32_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return tokens[a] < tokens[b]; });
  std::vector<size_t> starts;
  embedding.ids.clear();
  for (size_t i = 0; i < N; ++i)
    if (i == 0 || tokens[order[i]] != tokens[order[i - 1]]) {
      starts.push_back(i);
      embedding.ids.push_back(tokens[order[i]]);
    }
  starts.push_back(N);
  embedding.rows.assign(embedding.ids.size() * E, 0.f);
  for_rows(embedding.ids.size(), double(E) * N / std::max<size_t>(1, embedding.ids.size()), [&](size_t u) {
    float* row = embedding.rows.data() + u * E;
    for (size_t i = starts[u]; i < starts[u + 1]; ++i) {
      const float* src = gx + size_t(order[i]) * E;
      for (size_t j = 0; j < E; ++j) row[j] += 2.f * src[j];
    }
  });
}

Error encoder_backward(const EncoderDims& dims, const float* params, const Adapter& adapter, EncoderTape& tape,
                       const float* grad_e, float weight, float* grad, SparseRows& embedding, float* grad_down,
                       float* grad_up, const float* grad_states) {
  const size_t texts = tape.offsets.empty() ? 0 : tape.offsets.size() - 1;
  if (texts == 0) return {Error::bad_argument, "backward before any forward pass"};
  if (!grad_e && !grad_states) return {Error::bad_argument, "backward needs a gradient of the embeddings or of the token states"};
  if (grad_e) {
    const size_t bad = first_non_finite(grad_e, texts * dims.head_out);
    if (bad < texts * dims.head_out) return {Error::non_finite, "the gradient of text " + std::to_string(bad / dims.head_out) + " is not finite"};
  }
  const Tensors<const float> t = map_tensors(dims, params);
  const Tensors<float> g = map_tensors(dims, grad);
  const int32_t* offsets = tape.offsets.data();
  const size_t N = size_t(offsets[texts]), P = pooled_width(dims);
  size_t widest = dims.embed, ffn = 0;
  for (const EncoderLayerDims& d : dims.layers) widest = std::max(widest, d.width_out), ffn = std::max(ffn, d.ffn);

  HeadGrads hg;
  hg.wt = g.head_weight;
  hg.bias = g.head_bias;
  hg.down = grad_down;
  hg.up = grad_up;
  hg.x = sized(tape.grad_pooled, texts * P);
  if (grad_e) {
    if (Error err = head_backward(tape.pooled.data(), t.head_weight, tape.hidden.data(), tape.embeddings.data(), grad_e, texts,
                                  P, dims.head_out, adapter, weight, hg))
      return err;
  } else {
    std::fill(hg.x, hg.x + texts * P, 0.f);
    std::fill(g.head_weight, g.head_weight + dims.head_out * P, 0.f);
    std::fill(g.head_bias, g.head_bias + dims.head_out, 0.f);
    if (adapter.rank && grad_down) std::fill(grad_down, grad_down + adapter.rank * dims.head_out, 0.f);
    if (adapter.rank && grad_up) std::fill(grad_up, grad_up + dims.head_out * adapter.rank, 0.f);
  }
  // Mean pooling: each token of a text gets dL/dpooled / T, plus its own state's gradient.
  float* gx = sized(tape.grad_x, N * widest);
  for_rows(texts, double(P) * dims.max_tokens / 4, [&](size_t s) {
    const float inv = 1.f / float(offsets[s + 1] - offsets[s]);
    for (int32_t r = offsets[s]; r < offsets[s + 1]; ++r)
      for (size_t j = 0; j < P; ++j)
        gx[size_t(r) * P + j] = hg.x[s * P + j] * inv + (grad_states ? grad_states[size_t(r) * P + j] : 0.f);
  });

  float* gx1 = sized(tape.grad_x1, N * widest);
  float* gtmp = sized(tape.grad_tmp, N * widest);
  float* gbig = sized(tape.grad_big, N * ffn);
  for (size_t l = dims.layers.size(); l-- > 0;) {
    const EncoderLayerDims& d = dims.layers[l];
    const LayerTensors<const float>& p = t.layers[l];
    const LayerTensors<float>& q = g.layers[l];
    EncoderTape::Layer& a = tape.layers[l];
    const size_t wi = d.width_in, wo = d.width_out, F = d.ffn;
    // FFN: x' = relu(ln2 W1 + b1) W2 + b2 + x1.
    float* f1 = a.f1.data();
    if (tape.recompute) {
      f1 = tape.layers[0].f1.data();
      gemm(Op::none, Op::none, N, F, wo, a.ln2.data(), wo, p.ffn1, F, f1, F, false);
      add_bias_rows(f1, N, F, p.ffn1_bias, true);
    }
    gemm(Op::transpose, Op::none, F, wo, N, f1, F, gx, wo, q.ffn2, wo, false);
    column_sums(gx, N, wo, q.ffn2_bias);
    gemm(Op::none, Op::transpose, N, F, wo, gx, wo, p.ffn2, wo, gbig, F, false);
    for_rows(N, 2.0 * F, [&](size_t i) {
      for (size_t j = 0; j < F; ++j)
        if (f1[i * F + j] <= 0.f) gbig[i * F + j] = 0.f;
    });
    gemm(Op::transpose, Op::none, wo, F, N, a.ln2.data(), wo, gbig, F, q.ffn1, F, false);
    column_sums(gbig, N, F, q.ffn1_bias);
    gemm(Op::none, Op::transpose, N, wo, F, gbig, F, p.ffn1, F, gtmp, wo, false);
    std::copy(gx, gx + N * wo, gx1);
    layer_norm_backward(a.x1.data(), a.mean2.data(), a.rstd2.data(), p.ln2_scale, gtmp, N, wo, gx1, q.ln2_scale, q.ln2_bias);
    // x1 = ctx Wo + bo + residual.
    gemm(Op::transpose, Op::none, wi, wo, N, a.ctx.data(), wi, gx1, wo, q.out, wo, false);
    column_sums(gx1, N, wo, q.out_bias);
    float* gctx = sized(tape.grad_ctx, N * wi);
    gemm(Op::none, Op::transpose, N, wi, wo, gx1, wo, p.out, wo, gctx, wi, false);
    if (p.res) {
      gemm(Op::transpose, Op::none, wi, wo, N, a.x.data(), wi, gx1, wo, q.res, wo, false);
      column_sums(gx1, N, wo, q.res_bias);
      gemm(Op::none, Op::transpose, N, wi, wo, gx1, wo, p.res, wo, gx, wi, false);
    } else {
      std::copy(gx1, gx1 + N * wo, gx);
    }
    // Attention, then the QKV transform and the first layer norm.
    float* gqkv = sized(tape.grad_qkv, N * 3 * wi);
    attention_backward(d, a.qkv.data(), offsets, texts, a.prob_offsets, tape.recompute ? nullptr : a.probs.data(), gctx, gqkv);
    gemm(Op::transpose, Op::none, wi, 3 * wi, N, a.ln1.data(), wi, gqkv, 3 * wi, q.qkv, 3 * wi, false);
    column_sums(gqkv, N, 3 * wi, q.qkv_bias);
    gemm(Op::none, Op::transpose, N, wi, 3 * wi, gqkv, 3 * wi, p.qkv, 3 * wi, gtmp, wi, false);
    layer_norm_backward(a.x.data(), a.mean1.data(), a.rstd1.data(), p.ln1_scale, gtmp, N, wi, gx, q.ln1_scale, q.ln1_bias);
  }

  embedding_gradient(tape.tokens.data(), N, gx, dims.embed, embedding);
  return {};
}

// Masked-token prediction (encoder.h): the output layer reads the last layer's token states at
// the masked positions, projects them to the embedding width and scores every vocabulary row of
// the (tied) token embeddings. Its gradient reaches the encoder through encoder_backward's
// per-token gradient, and the table twice: every row from the output side, the batch's rows from
// the input side.
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
  add_bias_rows(z, M, E, head.proj_bias, false);
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
