// The CUDA training kernels (native/cuda) against the CPU's on a machine without a GPU: built by
// scripts/check-cuda-emulated.sh against the emulated runtime (cuda_emulation/cuda_runtime.h), at
// small odd sizes: the whole encoder's forward and backward, and the head step for every loss.
// On a GPU, bench/gpu/check.sh compares the same kernels at full size. Exits 1 on any mismatch.
#include <cstdio>
#include <utility>

#include "cuda_compare.h"

using namespace laborspace;
using laborspace::check::failures;

int main() {
  std::printf("| case | cpu ms | emulated cuda ms | ratio | max diff | |\n|---|---|---|---|---|---|\n");
  const EncoderDims tiny = check::tiny_encoder_dims();
  check::check_encoder("tiny", tiny, 13, 0);
  EncoderDims longer = tiny;  // a text longer than a block has threads
  longer.max_tokens = 260;
  check::check_encoder("260 tokens", longer, 1, 0);
  for (const auto& [loss, name] : {std::pair{Loss::mnrl, "mnrl"}, {Loss::triplet, "triplet"}, {Loss::cosine_mse, "cosine_mse"}, {Loss::cosent, "cosent"}})
    check::check_head_step(loss, name, 9, 37, 0, true, 0);
  check::check_head_step(Loss::mnrl, "mnrl", 9, 37, 3, true, 0);
  check::check_head_step(Loss::cosent, "cosent", 9, 37, 3, false, 0);
  std::printf("\n%s\n", failures ? "FAILED" : "the CUDA kernels match the CPU's (on the emulated runtime)");
  return failures ? 1 : 0;
}
