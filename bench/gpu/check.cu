// GPU check: the CUDA kernels against the CPU kernels on the same inputs, timed both ways, as one
// program with no Node.js (the GPU machines have none). Exits 1 on any mismatch.
// Build and run: bash bench/gpu/check.sh
#include <cstdio>
#include <utility>
#include <vector>

#include "../../native/check/cuda_compare.h"
#include "../../native/cuda/cuda_topk.h"
#include "../../native/src/kernels.h"

using namespace laborspace;
using namespace laborspace::check;

namespace {

void check_topk(size_t m, size_t n, size_t d, size_t k, Metric metric) {
  const std::vector<float> q = random_matrix(m * d, 1), x = random_matrix(n * d, 2);
  std::vector<int32_t> ci(m * k), gi(m * k);
  std::vector<float> cs(m * k), gs(m * k);
  size_t k_out = 0;
  const double cpu = median_ms([&] { topk(q.data(), m, x.data(), n, d, k, metric, nullptr, ci.data(), cs.data(), &k_out); }, 5);
  Error err;
  const double gpu = median_ms([&] { err = cuda::topk(q.data(), m, x.data(), n, d, k, metric, nullptr, gi.data(), gs.data()); }, 5);
  expect(!err, err.message);
  double largest = 0;
  const double max_diff = max_abs_diff(cs.data(), gs.data(), m * k, &largest);
  size_t rank_mismatch = 0;
  for (size_t i = 0; i < m * k; ++i) rank_mismatch += ci[i] != gi[i];
  std::printf("| topk %zux%zux%zu k=%zu %s | %.2f | %.2f | %.1fx | %.1e | %zu rank swaps |\n", m, n, d, k,
              metric == Metric::dot ? "dot" : "cosine", cpu, gpu, cpu / gpu, max_diff, rank_mismatch);
  expect(max_diff < 1e-3, "topk scores differ");
  expect(rank_mismatch <= m * k / 1000, "topk ranks differ beyond near-ties");
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
    for (const auto& [loss, name] : losses) check_head_step(loss, name, batch, 512, 0, true, 10);
  check_head_step(Loss::mnrl, "mnrl (ragged)", 77, 300, 0, true, 10);
  check_head_step(Loss::mnrl, "mnrl", 256, 512, 16, true, 10);
  check_head_step(Loss::cosent, "cosent", 256, 512, 16, false, 10);
  check_head_step(Loss::triplet, "triplet (ragged)", 77, 300, 5, true, 10);
  check_encoder("tiny", tiny_encoder_dims(), 13, 3);
  EncoderDims use;  // Universal Sentence Encoder lite's sizes (src/encoder/use-lite.ts)
  use.vocab = 8002, use.embed = 256, use.max_tokens = 128, use.head_out = 512;
  use.layers = {{256, 512, 4, 1536, true, 0.125f}, {512, 512, 4, 1536, false, 0.0883883f}};
  const StepTimes step = check_encoder("USE lite", use, 128, 3);
  // The default training's epoch: 92,952 pairs of the bundled data (bench:encoder-train), in steps
  // of 64 pairs, the forward and backward passes alone (the loss and AdamW add little).
  const double steps = 92952.0 / 64;
  if (step.gpu_ms > 0)
    std::printf("\none epoch of the bundled data (%.0f steps of 64 pairs; these texts average %.0f tokens, the corpus's 45): "
                "%.1f min on the GPU, %.1f min on the CPU\n",
                steps, double(step.tokens) / 128, steps * step.gpu_ms / 60000, steps * step.cpu_ms / 60000);
  std::printf("\n%s\n", failures ? "FAILED" : "all CUDA results match the CPU");
  return failures ? 1 : 0;
}
