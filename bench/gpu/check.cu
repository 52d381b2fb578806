// GPU check: the CUDA kernels against the CPU kernels on the same inputs, timed both ways, as one
// program with no Node.js (the GPU machines have none). Exits 1 on any mismatch.
// Build and run: bash bench/gpu/check.sh
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../../native/cuda/cuda_topk.h"
#include "../../native/cuda/cuda_training.h"
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
  std::printf("\n%s\n", failures ? "FAILED" : "all CUDA results match the CPU");
  return failures ? 1 : 0;
}
