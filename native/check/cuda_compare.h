// The CUDA training kernels against the CPU's on the same inputs, timed both ways, one table row per
// case: shared by bench/gpu/check.cu (a GPU, full sizes) and native/check/cuda_kernels_check.cpp
// (the emulated runtime, small odd sizes). `failures` counts the mismatches.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../cuda/cuda_encoder.h"
#include "../cuda/cuda_training.h"
#include "../src/agreement.h"
#include "../src/encoder.h"
#include "../src/training.h"

namespace laborspace::check {

inline int failures = 0;

inline void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("MISMATCH: %s\n", what.c_str());
  }
}

inline std::vector<float> random_matrix(size_t n, unsigned seed, float scale = 1.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// The median of `reps` timed calls after one untimed (the warm-up, and the CUDA context's start);
// with reps 0, the one call's time.
template <class Fn>
double median_ms(Fn&& fn, int reps) {
  std::vector<double> t;
  for (int r = reps ? -1 : 0; r < std::max(reps, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (r >= 0) t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// An encoder of odd sizes: 3 heads of 2, a residual projection 6 -> 10, then 5 heads of 2.
inline EncoderDims tiny_encoder_dims() {
  EncoderDims tiny;
  tiny.vocab = 53, tiny.embed = 6, tiny.max_tokens = 9, tiny.head_out = 7;
  tiny.layers = {{6, 10, 3, 11, true, 0.6f}, {10, 10, 5, 7, false, 0.4f}};
  return tiny;
}

// One head step (the head and a loss, forward and backward) on both devices; rank > 0 adds the
// adapter, !dense freezes the dense layer.
inline void check_head_step(Loss loss, const char* name, size_t batch, size_t d, size_t rank, bool dense, int reps) {
  const size_t rows = loss_sides(loss) * batch;
  const std::vector<float> x = random_matrix(rows * d, 3), w = random_matrix(d * d, 4, 0.05f), b = random_matrix(d, 5, 0.01f);
  const std::vector<float> down = random_matrix(rank * d, 7, 0.05f), up = random_matrix(d * rank, 8, 0.05f);
  std::vector<float> targets = random_matrix(batch, 6);
  for (float& t : targets) t = std::fabs(t);
  LossParams params;
  params.targets = targets.data();
  params.weight = 0.5f;
  const Adapter adapter{down.data(), up.data(), rank};
  // Gradients: dW, dbias, d down, d up, on the CPU and on the GPU.
  std::vector<float> c[4] = {std::vector<float>(d * d), std::vector<float>(d), std::vector<float>(rank * d), std::vector<float>(d * rank)};
  std::vector<float> g[4] = {c[0], c[1], c[2], c[3]};
  auto grads_of = [&](std::vector<float>* v) {
    HeadGrads grads;
    if (dense) grads.wt = v[0].data(), grads.bias = v[1].data();
    if (rank) grads.down = v[2].data(), grads.up = v[3].data();
    return grads;
  };
  double cl = 0, gl = 0;
  const double cpu = median_ms([&] { head_loss_step(loss, x.data(), batch, d, w.data(), b.data(), d, adapter, params, &cl, grads_of(c)); }, reps);
  Error err;
  const double gpu = median_ms([&] { err = cuda::head_loss_step(loss, x.data(), batch, d, w.data(), b.data(), d, adapter, params, &gl, grads_of(g)); }, reps);
  expect(!err, err.message);
  double diff = 0, largest = 0;
  for (int i = 0; i < 4; ++i) diff = std::max(diff, max_abs_diff(c[i].data(), g[i].data(), c[i].size(), &largest));
  std::printf("| %s + head%s, batch %zu, dim %zu | %.2f | %.2f | %.1fx | loss %.1e, grads %.1e (max |grad| %.1e) | |\n", name,
              rank ? (dense ? " + adapter" : " (frozen) + adapter") : "", batch, d, cpu, gpu, cpu / gpu, std::fabs(cl - gl), diff,
              largest);
  expect(std::fabs(cl - gl) <= 1e-4 * (1 + std::fabs(cl)), std::string(name) + ": the head step's loss differs");
  expect(diff <= 1e-5 + 1e-3 * largest, std::string(name) + ": the head step's gradients differ");
}

// The whole encoder's forward and backward on both devices: random weights (of a spread that keeps
// the head's tanh off its flat ends; layer-norm scales near 1), `texts` texts of random lengths (the first max_tokens long), a random dL/de; the
// embeddings' cosines, then each tensor's gradient on its own and the embedding table's rows.
// Returns the median times of a step on each device (the GPU's 0 where none opened) and the
// batch's tokens.
struct StepTimes {
  double cpu_ms = 0, gpu_ms = 0;
  size_t tokens = 0;
};
inline StepTimes check_encoder(const char* name, const EncoderDims& dims, size_t texts, int reps) {
  const size_t count = encoder_param_count(dims);
  std::vector<float> params = random_matrix(count, 11, 0.7f / std::sqrt(float(dims.embed)));
  for (const TensorSpec& t : encoder_layout(dims))
    if (t.name.find("scale") != std::string::npos)
      for (size_t i = 0; i < t.rows * t.cols; ++i) params[t.offset + i] += 1.f;
  const std::vector<float> timing = random_matrix(dims.max_tokens * dims.embed, 12, 0.5f);
  std::mt19937 gen(13);
  std::vector<int32_t> offsets{0}, tokens;
  for (size_t s = 0; s < texts; ++s) {
    const int32_t len = s == 0 ? int32_t(dims.max_tokens) : int32_t(1 + gen() % dims.max_tokens);
    for (int32_t i = 0; i < len; ++i) tokens.push_back(int32_t(gen() % dims.vocab));
    offsets.push_back(offsets.back() + len);
  }
  const std::vector<float> grad_e = random_matrix(texts * dims.head_out, 14, 0.5f);
  std::vector<float> ce(texts * dims.head_out), ge(ce.size()), cg(count), gg(count), pooled;
  EncoderTape tape;
  SparseRows cr, gr;
  Error cerr, gerr;
  const double cpu = median_ms([&] {
    cerr = encoder_forward(dims, params.data(), timing.data(), Adapter{}, tokens.data(), offsets.data(), texts, false, tape, ce.data());
    if (!cerr) cerr = encoder_backward(dims, params.data(), Adapter{}, tape, grad_e.data(), 0.5f, cg.data(), cr, nullptr, nullptr);
  }, reps);
  expect(!cerr, "CPU encoder: " + cerr.message);
  const std::unique_ptr<cuda::Encoder> gpu_encoder = cuda::Encoder::open(dims, timing.data(), &gerr);
  expect(gpu_encoder != nullptr, "CUDA encoder: " + gerr.message);
  if (!gpu_encoder) return {cpu, 0, size_t(offsets.back())};
  const double gpu = median_ms([&] {
    gerr = gpu_encoder->forward(params.data(), tokens.data(), offsets.data(), texts, ge.data(), pooled);
    if (!gerr) gerr = gpu_encoder->backward(grad_e.data(), 0.5f, gg.data(), gr);
  }, reps);
  expect(!gerr, "CUDA encoder: " + gerr.message);
  const double worst_cos = worst_row_cosine(ce.data(), ge.data(), texts, dims.head_out);
  expect(worst_cos >= 0.99999, std::string(name) + ": the encoder's embeddings differ (cosine " + std::to_string(worst_cos) + ")");
  double worst = 0;  // the largest gradient difference relative to its tensor's largest value
  for (const TensorSpec& t : encoder_layout(dims)) {
    if (t.name == "embeddings") continue;
    double largest = 0;
    const double d = max_abs_diff(cg.data() + t.offset, gg.data() + t.offset, t.rows * t.cols, &largest);
    expect(d <= 1e-5 + 1e-3 * largest, std::string(name) + ": the gradient of " + t.name + " differs by " + std::to_string(d));
    worst = std::max(worst, d / (1e-5 + largest));
  }
  expect(cr.ids == gr.ids, std::string(name) + ": the embedding gradient has other rows");
  double largest = 0;
  const double rows = cr.ids == gr.ids ? max_abs_diff(cr.rows.data(), gr.rows.data(), cr.rows.size(), &largest) : INFINITY;
  expect(rows <= 1e-5 + 1e-3 * largest, std::string(name) + ": the embedding table's gradient differs by " + std::to_string(rows));
  std::printf("| encoder %s, %zu texts (%d tokens) | %.2f | %.2f | %.1fx | cosine %.7f, grads %.1e of their largest, embedding rows %.1e | |\n",
              name, texts, offsets.back(), cpu, gpu, cpu / gpu, worst_cos, worst, rows);
  return {cpu, gpu, size_t(offsets.back())};
}

}  // namespace laborspace::check
