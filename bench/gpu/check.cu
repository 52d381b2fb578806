// GPU check: the CUDA kernels against the CPU kernels on the same inputs, timed both ways, as one
// program with no Node.js (the GPU machines have none). Exits 1 on any mismatch.
// Build and run: bash bench/gpu/check.sh
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "../../native/cuda/cuda_encoder.h"
#include "../../native/cuda/cuda_topk.h"
#include "../../native/cuda/cuda_training.h"
#include "../../native/src/encoder.h"
#include "../../native/src/kernels.h"
#include "../../native/src/training.h"

using namespace laborspace;

namespace {

std::vector<float> random_matrix(size_t n, unsigned seed, float scale = 1.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

template <class Fn>
double median_ms(Fn&& fn, int reps = 10) {
  fn();  // warm-up (and CUDA context start)
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    ++failures;
    std::printf("MISMATCH: %s\n", what);
  }
}

void check_topk(size_t m, size_t n, size_t d, size_t k, Metric metric) {
  const std::vector<float> q = random_matrix(m * d, 1), x = random_matrix(n * d, 2);
  std::vector<int32_t> ci(m * k), gi(m * k);
  std::vector<float> cs(m * k), gs(m * k);
  size_t k_out = 0;
  const double cpu = median_ms([&] { topk(q.data(), m, x.data(), n, d, k, metric, nullptr, ci.data(), cs.data(), &k_out); }, 5);
  Error err;
  const double gpu = median_ms([&] { err = cuda::topk(q.data(), m, x.data(), n, d, k, metric, nullptr, gi.data(), gs.data()); }, 5);
  expect(!err, err.message.c_str());
  double max_diff = 0;
  size_t rank_mismatch = 0;
  for (size_t i = 0; i < m * k; ++i) {
    max_diff = std::max(max_diff, double(std::fabs(cs[i] - gs[i])));
    rank_mismatch += ci[i] != gi[i];
  }
  std::printf("| topk %zux%zux%zu k=%zu %s | %.2f | %.2f | %.1fx | %.1e | %zu rank swaps |\n", m, n, d, k,
              metric == Metric::dot ? "dot" : "cosine", cpu, gpu, cpu / gpu, max_diff, rank_mismatch);
  expect(max_diff < 1e-3, "topk scores differ");
  expect(rank_mismatch <= m * k / 1000, "topk ranks differ beyond near-ties");
}

// Largest difference between two gradients, and the largest magnitude of the first.
void compare(const std::vector<float>& a, const std::vector<float>& b, double* max_diff, double* max_abs) {
  for (size_t i = 0; i < a.size(); ++i) {
    *max_diff = std::max(*max_diff, double(std::fabs(a[i] - b[i])));
    *max_abs = std::max(*max_abs, double(std::fabs(a[i])));
  }
}

// One training step on both devices; rank > 0 adds the adapter, !dense freezes the dense layer.
void check_step(Loss loss, const char* name, size_t batch, size_t d, size_t rank = 0, bool dense = true) {
  const size_t rows = loss_sides(loss) * batch;
  const std::vector<float> x = random_matrix(rows * d, 3), w = random_matrix(d * d, 4, 0.05f), b = random_matrix(d, 5, 0.01f);
  const std::vector<float> down = random_matrix(rank * d, 7, 0.05f), up = random_matrix(d * rank, 8, 0.05f);
  std::vector<float> targets = random_matrix(batch, 6);
  for (float& t : targets) t = std::fabs(t);
  LossParams params;
  params.targets = targets.data();
  params.weight = 0.5f;
  Adapter adapter;
  adapter.rank = rank;
  adapter.down = down.data();
  adapter.up = up.data();
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
  const double cpu = median_ms([&] { head_loss_step(loss, x.data(), batch, d, w.data(), b.data(), d, adapter, params, &cl, grads_of(c)); });
  Error err;
  const double gpu = median_ms([&] { err = cuda::head_loss_step(loss, x.data(), batch, d, w.data(), b.data(), d, adapter, params, &gl, grads_of(g)); });
  expect(!err, err.message.c_str());
  double max_diff = 0, max_abs = 0;
  for (int i = 0; i < 4; ++i) compare(c[i], g[i], &max_diff, &max_abs);
  std::printf("| %s + head%s, batch %zu | %.2f | %.2f | %.1fx | loss %.1e, grads %.1e (max |grad| %.1e) | |\n", name,
              rank ? (dense ? " + adapter" : " (frozen) + adapter") : "", batch, cpu, gpu, cpu / gpu, std::fabs(cl - gl),
              max_diff, max_abs);
  expect(std::fabs(cl - gl) <= 1e-4 * (1 + std::fabs(cl)), "loss differs");
  expect(max_diff <= 1e-5 + 1e-3 * max_abs, "gradients differ");
}


// The whole encoder's forward and backward on both devices, on random weights (layer norms near 1)
// and `texts` texts of random lengths 1..max_tokens, with a random dL/de.
void check_encoder(const char* name, const EncoderDims& dims, size_t texts) {
  const size_t count = encoder_param_count(dims);
  std::vector<float> params = random_matrix(count, 11, 0.05f);
  for (const TensorSpec& t : encoder_layout(dims))
    if (t.name.find("scale") != std::string::npos)
      for (size_t i = 0; i < t.rows * t.cols; ++i) params[t.offset + i] += 1.f;
  const std::vector<float> timing = random_matrix(dims.max_tokens * dims.embed, 12, 0.5f);
  std::mt19937 gen(13);
  std::vector<int32_t> offsets{0}, tokens;
  for (size_t s = 0; s < texts; ++s) {
    const int32_t len = int32_t(1 + gen() % dims.max_tokens);
    for (int32_t i = 0; i < len; ++i) tokens.push_back(int32_t(gen() % dims.vocab));
    offsets.push_back(offsets.back() + len);
  }
  const std::vector<float> grad_e = random_matrix(texts * dims.head_out, 14, 0.1f);
  std::vector<float> ce(texts * dims.head_out), ge(ce.size()), cg(count), gg(count), pooled;
  EncoderTape tape;
  SparseRows cr, gr;
  Error cerr, gerr;
  const double cpu = median_ms([&] {
    cerr = encoder_forward(dims, params.data(), timing.data(), Adapter{}, tokens.data(), offsets.data(), texts, false, tape, ce.data());
    if (!cerr) cerr = encoder_backward(dims, params.data(), Adapter{}, tape, grad_e.data(), 0.5f, cg.data(), cr, nullptr, nullptr);
  }, 3);
  const std::unique_ptr<cuda::Encoder> gpu_encoder = cuda::Encoder::open(dims, timing.data(), &gerr);
  expect(gpu_encoder != nullptr, gerr.message.c_str());
  if (!gpu_encoder) return;
  const double gpu = median_ms([&] {
    gerr = gpu_encoder->forward(params.data(), tokens.data(), offsets.data(), texts, ge.data(), pooled);
    if (!gerr) gerr = gpu_encoder->backward(grad_e.data(), 0.5f, gg.data(), gr);
  }, 3);
  expect(!cerr, cerr.message.c_str());
  expect(!gerr, gerr.message.c_str());
  double worst_cos = 1;
  for (size_t s = 0; s < texts; ++s) {
    double dot = 0, na = 0, nb = 0;
    for (size_t j = 0; j < dims.head_out; ++j) {
      const double a = ce[s * dims.head_out + j], b = ge[s * dims.head_out + j];
      dot += a * b, na += a * a, nb += b * b;
    }
    worst_cos = std::min(worst_cos, dot / std::sqrt(na * nb));
  }
  // The arena past the embeddings, then the embedding table's rows (same ids, same order).
  const size_t first = encoder_layout(dims)[1].offset;
  double max_diff = 0, max_abs = 0;
  compare(std::vector<float>(cg.begin() + first, cg.end()), std::vector<float>(gg.begin() + first, gg.end()), &max_diff, &max_abs);
  expect(cr.ids == gr.ids, "embedding gradient rows differ");
  if (cr.ids == gr.ids) compare(cr.rows, gr.rows, &max_diff, &max_abs);
  std::printf("| encoder %s, %zu texts (%d tokens) | %.2f | %.2f | %.1fx | cosine %.7f, grads %.1e (max |grad| %.1e) | |\n", name,
              texts, offsets.back(), cpu, gpu, cpu / gpu, worst_cos, max_diff, max_abs);
  expect(worst_cos >= 0.99999, "encoder embeddings differ");
  expect(max_diff <= 1e-5 + 1e-3 * max_abs, "encoder gradients differ");
}

}  // namespace

int main() {
  if (cuda::device_count() == 0) {
    std::printf("no CUDA device answers: nothing to check\n");
    return 0;
  }
  std::printf("GPU: %s; CPU kernels: %s on %zu threads\n\n", cuda::device_name().c_str(), isa_name(active_kernels().isa), thread_count());
  std::printf("| case | cpu ms | cuda ms | speed-up | max diff | |\n|---|---|---|---|---|---|\n");
  check_topk(1000, 20000, 512, 10, Metric::dot);
  check_topk(1000, 20000, 512, 10, Metric::cosine);
  check_topk(37, 5003, 513, 128, Metric::cosine);
  check_topk(5000, 100000, 512, 10, Metric::dot);
  const std::pair<Loss, const char*> losses[] = {{Loss::mnrl, "mnrl"}, {Loss::triplet, "triplet"}, {Loss::cosine_mse, "cosine_mse"}, {Loss::cosent, "cosent"}};
  for (size_t batch : {256, 1024})
    for (const auto& [loss, name] : losses) check_step(loss, name, batch, 512);
  check_step(Loss::mnrl, "mnrl (ragged)", 77, 300);
  check_step(Loss::mnrl, "mnrl", 256, 512, 16);
  check_step(Loss::cosent, "cosent", 256, 512, 16, false);
  check_step(Loss::triplet, "triplet (ragged)", 77, 300, 5);
  EncoderDims tiny;  // odd sizes: widths that split into heads unevenly across layers, a projection
  tiny.vocab = 53, tiny.embed = 6, tiny.max_tokens = 9, tiny.head_out = 7;
  tiny.layers = {{6, 10, 3, 11, true, 0.6f}, {10, 10, 5, 7, false, 0.4f}};
  check_encoder("tiny", tiny, 13);
  EncoderDims use;  // Universal Sentence Encoder lite's sizes (src/encoder/use-lite.ts)
  use.vocab = 8002, use.embed = 256, use.max_tokens = 128, use.head_out = 512;
  use.layers = {{256, 512, 4, 1536, true, 0.125f}, {512, 512, 4, 1536, false, 0.0883883f}};
  check_encoder("USE lite", use, 128);
  std::printf("\n%s\n", failures ? "FAILED" : "all CUDA results match the CPU");
  return failures ? 1 : 0;
}
